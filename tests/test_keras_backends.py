"""Keras models on JAX and torch get the answers of the same model on TensorFlow.

Keras fixes its backend once per process (``KERAS_BACKEND``), so each backend runs in a
subprocess: the same small models, their weights drawn by numpy, explained on the same rows.
Gradients and similarity scores must agree within float32 rounding; whole searches are only
checked for validity (their c-search decisions amplify rounding, so their answers may differ).
"""

import importlib.util
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

SCRIPT = textwrap.dedent("""
    import sys
    import warnings

    import keras
    import numpy as np
    from sklearn.datasets import load_digits

    from skcem import CEMExplainer, GradientSimilarityExplainer
    from skcem._gradients._keras import as_numpy
    from skcem.costs import HingeAttack, NegLogLikelihood

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)


    def with_weights(model, seed, scale):
        rng = np.random.default_rng(seed)
        model.set_weights([rng.normal(0.0, scale, w.shape).astype(np.float32)
                           for w in model.weights])
        return model


    name = sys.argv[2]
    if name == "dense":
        model = with_weights(keras.Sequential([
            keras.Input((64,)), keras.layers.Dense(16, activation="tanh"),
            keras.layers.Dense(10, activation="softmax")]), 0, 0.5)
    else:  # logits: a softmax inside skcem
        model = with_weights(keras.Sequential([
            keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.Flatten(), keras.layers.Dense(10)]), 1, 0.3)
    autoencoder = with_weights(keras.Sequential([
        keras.Input((64,)), keras.layers.Dense(8, activation="relu"),
        keras.layers.Dense(64, activation="sigmoid")]), 2, 0.3)
    rows = X[:4]
    out = {}
    shape = (-1,) + tuple(model.input_shape[1:])
    pred = as_numpy(model(rows.reshape(shape))).argmax(axis=1)
    onehot = np.eye(10, dtype=np.float32)[pred]
    cem = CEMExplainer(model, mode="PN", max_iterations=20, c_steps=2, no_info_val=0.0,
                       feature_range=(0.0, 1.0), gamma=1.0,
                       autoencoder=autoencoder).fit(X[:100])
    backend = cem._get_backend()
    for loss in (HingeAttack("PN", kappa=0.2), NegLogLikelihood()):
        answer = backend.evaluate(rows * 0.9, rows, onehot, loss, with_ae_grad=True,
                                  with_ae_loss_at_adv=True)
        for field in ("proba_adv", "attack_grad", "ae_grad", "ae_loss_adv"):
            out[f"{name}_{type(loss).__name__}_{field}"] = getattr(answer, field)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exp = cem.explain(rows)
    found = exp.found
    out[f"{name}_found"] = found
    out[f"{name}_X_pred"] = exp.X_pred
    out[f"{name}_explanation_pred"] = np.array([-1 if label is None else label
                                                for label in exp.explanation_pred])
    out[f"{name}_own_pred"] = np.full(len(rows), -1)
    if found.any():
        out[f"{name}_own_pred"][found] = as_numpy(
            model(exp.explanation[found].astype(np.float32).reshape(shape))).argmax(axis=1)
    for n_components in (None, 20):
        similarity = GradientSimilarityExplainer(
            model, sim_fn="grad_cos", batch_size=16, n_components=n_components,
            random_state=0).fit(X[:40], y[:40])
        out[f"{name}_similarity_{n_components}"] = similarity.transform(X[100:104])
    out[f"{name}_param_grads"] = similarity._get_gradients()(X[:5], y[:5])
    # one fitted explainer from two threads: the same scores (torch's transforms crashed)
    from concurrent.futures import ThreadPoolExecutor

    parts = [X[100:102], X[102:104]]
    with ThreadPoolExecutor(2) as pool:
        threaded = list(pool.map(similarity.transform, parts * 3))
    sequential = [similarity.transform(part) for part in parts * 3]
    out[f"{name}_threads_difference"] = np.array(max(
        np.abs(a - b).max() / np.abs(b).max() for a, b in zip(threaded, sequential)))
    # confident outputs: rows whose softmax rounds to 1 keep a gradient, on any backend
    model.set_weights([10.0 * w for w in model.get_weights()])
    out[f"{name}_confident_param_grads"] = similarity._get_gradients()(X[:5], y[:5])
    missing = [key for key, value in out.items() if value is None]
    assert not missing, missing
    np.savez(sys.argv[1], **out)
    print("tensorflow imported:", "tensorflow" in sys.modules)
""")


def _run(backend, model, path):
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONWARNINGS": "ignore",
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(path), model],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(np.load(path)), result.stdout


def _runs_ok(script, backend, timeout=300):
    """Run ``script`` on the Keras ``backend`` in a fresh process; it must end printing OK."""
    result = subprocess.run([sys.executable, "-c", script, backend], capture_output=True,
                            text=True, env={**os.environ, "KERAS_BACKEND": backend,
                                            "PYTHONWARNINGS": "ignore"}, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("OK")


def _require(module):
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")


@pytest.fixture(scope="module")
def on_tensorflow(tmp_path_factory):
    """The answers on TensorFlow, per model, computed once."""
    _require("tensorflow")
    _require("keras")
    answers = {}

    def reference(model):
        if model not in answers:
            path = tmp_path_factory.mktemp("tensorflow") / "answers.npz"
            answers[model] = _run("tensorflow", model, path)[0]
        return answers[model]
    return reference


def _assert_valid(answers, name):
    found = answers[f"{name}_found"]
    assert found.any(), f"no PN found for the {name} model"
    own = answers[f"{name}_own_pred"][found]
    np.testing.assert_array_equal(own, answers[f"{name}_explanation_pred"][found])
    assert np.all(own != answers[f"{name}_X_pred"][found])


@pytest.mark.parametrize("model", ["dense", "conv"])
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_keras_on_jax_and_torch_answers_as_on_tensorflow(backend, model, on_tensorflow,
                                                         tmp_path):
    _require(backend)
    expected_answers = on_tensorflow(model)
    answers, stdout = _run(backend, model, tmp_path / "answers.npz")
    assert "tensorflow imported: False" in stdout, f"explaining on {backend} imported TensorFlow"
    assert answers.keys() == expected_answers.keys()
    for key, expected in expected_answers.items():
        if key.endswith(("_found", "_X_pred", "_explanation_pred", "_own_pred",
                         "_threads_difference")):
            continue  # search outputs: only their validity is compared
        scale = np.abs(expected).max()
        np.testing.assert_allclose(answers[key], expected, rtol=1e-4, atol=1e-5 * scale,
                                   err_msg=f"{key} on {backend}")
    np.testing.assert_array_equal(answers[f"{model}_X_pred"],
                                  expected_answers[f"{model}_X_pred"])
    _assert_valid(answers, model)
    _assert_valid(expected_answers, model)
    for answer in (answers, expected_answers):  # two threads: the scores of one
        assert answer[f"{model}_threads_difference"] < 1e-5
        # a softmax rounded to 1 still has a gradient (Keras's clipped cross-entropy had none)
        assert np.all(np.abs(answer[f"{model}_confident_param_grads"]).max(axis=1) > 0)


PLACE_SCRIPT = textwrap.dedent("""
    import sys
    import warnings

    backend = sys.argv[1]
    if backend == "jax":
        import jax

        jax.config.update("jax_enable_x64", True)  # float64 book-keeping, as on the host
    import keras
    import numpy as np
    from sklearn.datasets import load_digits

    from skcem import CEMExplainer, CounterfactualExplainer
    from skcem._array_api import HOST

    if backend == "jax":
        from skcem._gradients import _keras_jax as engine

        on_cpu = engine.on_jax_device(jax.devices("cpu")[0])
        device_place = staticmethod(lambda variables: on_cpu)
    else:
        from skcem._gradients import _keras_torch as engine

        device_place = engine.TorchAutodiff.__dict__["array_place"]
    default_place = engine.AUTODIFF.array_place

    X, _ = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    rng = np.random.default_rng(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(16, activation="tanh"),
                              keras.layers.Dense(10, activation="softmax")])
    model.set_weights([rng.normal(0.0, 0.5, w.shape).astype(np.float32)
                       for w in model.weights])
    autoencoder = keras.Sequential([keras.Input((64,)), keras.layers.Dense(8, activation="relu"),
                                    keras.layers.Dense(64, activation="sigmoid")])
    autoencoder.set_weights([rng.normal(0.0, 0.3, w.shape).astype(np.float32)
                             for w in autoencoder.weights])
    common = dict(max_iterations=30, c_steps=2, feature_range=(0.0, 1.0))
    explainers = {
        "pn_ae": CEMExplainer(model, mode="PN", no_info_val=0.0, gamma=1.0,
                              autoencoder=autoencoder, **common),
        "pp": CEMExplainer(model, mode="PP", no_info_val=0.0, **common),
        "pn_stopping": CEMExplainer(model, mode="PN", no_info_val=0.0, tol=1e-4,
                                    n_iter_no_change=5, **common),
        "cf_mad": CounterfactualExplainer(model, distance="mad", **common),
    }
    rows = X[:8]
    out = {}
    for name, explainer in explainers.items():
        explainer.fit(X[:100])
        for where, place in (("host", staticmethod(lambda variables: HOST)),
                             ("device", device_place)):
            type(engine.AUTODIFF).array_place = place
            search_backend = explainer._get_backend()
            kinds = set()
            evaluate = type(search_backend).evaluate

            def spy(self, Z_adv, *args, **kwargs):
                kinds.add(type(Z_adv).__module__.split(".")[0].replace("jaxlib", "jax"))
                return evaluate(self, Z_adv, *args, **kwargs)

            type(search_backend).evaluate = spy
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                exp = explainer.explain(rows)
            type(search_backend).evaluate = evaluate
            out[f"{name}_{where}_explanation"] = exp.explanation
            out[f"{name}_{where}_found"] = exp.found
            out[f"{name}_{where}_kinds"] = np.array(sorted(kinds))
    np.savez(sys.argv[2], **out)
    print("default place on this CPU:", "host" if default_place(
        model.trainable_variables) is HOST else "device")
""")


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_keras_search_on_the_models_arrays_gives_the_hosts_answers(backend, tmp_path):
    """The search's book-keeping on the engine's arrays (JAX's, with fixed shapes; torch's)
    gives the answers of the same search on the host, for PNs with a fused auto-encoder,
    PPs, PNs with early stopping and MAD-scaled counterfactuals. On a CPU, JAX's search
    stays on the host (eager JAX costs more per operation than numpy there); torch's runs
    on tensors, as for a PyTorch module."""
    _require("keras")
    _require(backend)
    path = tmp_path / "answers.npz"
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONWARNINGS": "ignore"}
    result = subprocess.run([sys.executable, "-c", PLACE_SCRIPT, backend, str(path)],
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    expected_default = "host" if backend == "jax" else "device"
    assert f"default place on this CPU: {expected_default}" in result.stdout
    answers = dict(np.load(path))
    for name in ("pn_ae", "pp", "pn_stopping", "cf_mad"):
        assert answers[f"{name}_host_kinds"].tolist() == ["numpy"], name
        assert answers[f"{name}_device_kinds"].tolist() == [backend], name
        found = answers[f"{name}_host_found"]
        assert found.any(), name
        np.testing.assert_array_equal(answers[f"{name}_device_found"], found, err_msg=name)
        np.testing.assert_allclose(answers[f"{name}_device_explanation"],
                                   answers[f"{name}_host_explanation"], rtol=1e-9, atol=1e-12,
                                   err_msg=name)


def test_keras_backend_without_gradients_is_named():
    _require("keras")
    script = textwrap.dedent("""
        import keras
        import numpy as np
        from skcem import CEMExplainer

        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
        try:
            CEMExplainer(model).fit(np.zeros((5, 4), dtype=np.float32))
        except ValueError as exc:
            assert "KERAS_BACKEND" in str(exc) and "'numpy'" in str(exc), exc
            print("OK")
    """)
    _runs_ok(script, "numpy", timeout=120)


def test_keras_on_torch_searches_small_batches_on_one_thread():
    """As for a PyTorch module (tests/test_torch.py): PyTorch's threads wait on each other
    for milliseconds per operation on a busy CPU."""
    _require("keras")
    _require("torch")
    script = textwrap.dedent("""
        import warnings

        import keras
        import numpy as np
        import torch

        from skcem import CEMExplainer

        seen = set()

        def record(x):
            seen.add(torch.get_num_threads())
            return x

        rng = np.random.default_rng(0)
        X = rng.normal(size=(10, 8)).astype(np.float32)
        model = keras.Sequential([keras.Input((8,)), keras.layers.Lambda(record),
                                  keras.layers.Dense(3)])
        torch.set_num_threads(2)
        cem = CEMExplainer(model, mode="PN", max_iterations=5, c_steps=1,
                           search="fista").fit(X)
        seen.clear()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cem.explain(X)
        print("seen", sorted(seen), "after", torch.get_num_threads())
    """)
    env = {**os.environ, "KERAS_BACKEND": "torch", "PYTHONWARNINGS": "ignore"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "seen [1] after 2" in result.stdout, result.stdout


def test_keras_on_torch_names_a_layer_torch_func_cannot_differentiate():
    """Found by a user: an IntegerLookup layer failed inside Keras under torch.func ("Cannot
    access data pointer of Tensor that doesn't have storage") with no word of what to do."""
    _require("keras")
    _require("torch")
    script = textwrap.dedent("""
        import keras
        import numpy as np
        from keras import ops

        from skcem import CEMExplainer

        rng = np.random.default_rng(0)
        X = rng.integers(0, 3, size=(40, 4)).astype(np.float32)
        inputs = keras.Input((4,))
        code = ops.cast(ops.round(inputs[:, 3:4]), "int32")
        embedded = keras.layers.Flatten()(keras.layers.Embedding(5, 2)(
            keras.layers.IntegerLookup(vocabulary=[0, 1, 2])(code)))
        outputs = keras.layers.Dense(3, activation="softmax")(
            keras.layers.Concatenate()([inputs, embedded]))
        model = keras.Model(inputs, outputs)
        try:
            CEMExplainer(model, search="fista", max_iterations=5, c_steps=1).fit(X).explain(
                X[:2])
        except RuntimeError as exc:
            print(exc)
    """)
    env = {**os.environ, "KERAS_BACKEND": "torch", "PYTHONWARNINGS": "ignore"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "cannot be differentiated on the torch backend" in result.stdout, result.stdout
    assert "KERAS_BACKEND=tensorflow" in result.stdout and "\x1b" not in result.stdout


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_similarity_refuses_ids_outside_a_first_embedding_on_every_backend(backend):
    """Found by a review: on the torch backend a Keras model is a torch module too, and its
    token ids past the Embedding's vocabulary were scored (on JAX, NaN)."""
    _require("keras")
    _require(backend)
    script = textwrap.dedent("""
        import keras
        import numpy as np
        from skcem import GradientSimilarityExplainer

        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((5,)), keras.layers.Embedding(10, 4),
                                  keras.layers.GlobalAveragePooling1D(),
                                  keras.layers.Dense(2, activation="softmax")])
        rng = np.random.default_rng(0)
        X = rng.integers(0, 10, size=(40, 5)).astype(float)
        explainer = GradientSimilarityExplainer(model).fit(X, rng.integers(0, 2, 40))
        for bad in (-1.0, 3.5, 10.0):
            rows = X[:2].copy()
            rows[0, 4] = bad
            try:
                explainer.kneighbors(rows, 2)
            except ValueError as exc:
                assert "no token id of the Embedding" in str(exc), exc
            else:
                raise AssertionError(f"{bad} was scored")
        print("OK")
    """)
    _runs_ok(script, backend)


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_a_subclassed_model_whose_call_takes_no_training_flag(backend):
    """Found by a user: ``def call(self, x)``, as Keras's guides write it, failed on JAX and
    torch (``stateless_call`` hands ``training`` on to ``call`` as it is); and a
    ``mixed_bfloat16`` model failed: its similarity on torch (bfloat16 tensors into numpy),
    and, where its outputs are bfloat16 too, its CEM on both (a review)."""
    _require("keras")
    _require(backend)
    script = textwrap.dedent("""
        import sys

        import keras
        import numpy as np
        from skcem import CEMExplainer, CounterfactualExplainer, GradientSimilarityExplainer

        class Net(keras.Model):
            def __init__(self):
                super().__init__()
                self.hidden = keras.layers.Dense(8, activation="tanh")
                self.out = keras.layers.Dense(3, activation="softmax")

            def call(self, x):
                return self.out(self.hidden(x))

        rng = np.random.default_rng(0)
        X = rng.normal(size=(60, 5)).astype(np.float32)
        y = rng.integers(0, 3, 60)
        model = Net()
        model(X[:1])
        model.set_weights([rng.normal(0, 1.0, w.shape).astype(np.float32)
                           for w in model.weights])
        pred = np.asarray(model.predict(X, verbose=0)).argmax(axis=1)
        for explainer in (CEMExplainer(model, max_iterations=50, c_steps=2),
                          CounterfactualExplainer(model, max_iterations=50, c_steps=2)):
            answer = explainer.fit(X).explain(X[:4])
            found = answer.found
            assert found.any(), type(explainer).__name__
            reached = np.asarray(model.predict(answer.explanation[found],
                                               verbose=0)).argmax(axis=1)
            assert np.all(reached != pred[:4][found]), type(explainer).__name__
        scores = GradientSimilarityExplainer(model).fit(X, y).transform(X[:2])
        assert scores.shape == (2, 60) and np.all(np.isfinite(scores))
        keras.config.set_dtype_policy("mixed_bfloat16")
        for last in ("float32", None):  # None: bfloat16 outputs too
            mixed = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8),
                                      keras.layers.Dense(3),
                                      keras.layers.Activation("softmax", dtype=last)])
            scores = GradientSimilarityExplainer(mixed).fit(X, y).transform(X[:2])
            assert scores.shape == (2, 60) and np.all(np.isfinite(scores))
            answer = CEMExplainer(mixed, max_iterations=50, c_steps=2).fit(X).explain(X[:4])
            assert answer.found.any()
        print("OK")
    """)
    _runs_ok(script, backend)


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_explainers_of_one_model_share_its_compiled_functions(backend):
    """A new explainer of the same model (a clone, one per fold of a grid search) had JAX
    compile its functions again: seconds each. They are shared now, by model, input shape,
    outputs, loss and auto-encoder, and keep no model alive."""
    _require("keras")
    _require(backend)
    script = textwrap.dedent("""
        import gc
        import weakref

        import keras
        import numpy as np
        from sklearn.base import clone
        from skcem import CEMExplainer

        X = np.random.default_rng(0).uniform(size=(60, 6)).astype(np.float32)

        def net(seed):
            rng = np.random.default_rng(seed)
            model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="tanh"),
                                      keras.layers.Dense(3, activation="softmax")])
            model.set_weights([rng.normal(0, 1.0, w.shape).astype(np.float32)
                               for w in model.weights])
            return model

        def autoencoder(activation):
            return keras.Sequential([keras.Input((6,)),
                                     keras.layers.Dense(6, activation=activation)])

        def answers(model, ae):
            explainer = CEMExplainer(model, max_iterations=30, c_steps=2, gamma=0.5,
                                     autoencoder=ae).fit(X)
            return explainer, np.asarray(explainer.explain(X[:5]).explanation)

        model, ae = net(0), autoencoder("sigmoid")
        first, a = answers(model, ae)
        second = clone(first).fit(X)
        assert second._get_backend()._predict is first._get_backend()._predict
        np.testing.assert_array_equal(np.asarray(second.explain(X[:5]).explanation), a)
        # another auto-encoder, other weights: not the same answers
        _, b = answers(model, autoencoder("relu"))
        _, c = answers(net(1), ae)
        for other in (b, c):
            assert not np.array_equal(other, a, equal_nan=True)
        # the same weights in another model: the same answers
        np.testing.assert_array_equal(answers(net(0), ae)[1], a)
        # a grid over kappa keeps the most recent functions only (found by a review)
        from skcem._gradients._keras_stateless import _COMPILED, _COMPILED_PER_MODEL

        grid = net(2)
        for kappa in np.linspace(0.0, 0.5, _COMPILED_PER_MODEL + 4):
            CEMExplainer(grid, kappa=kappa, max_iterations=2, c_steps=1).fit(X).explain(X[:1])
        assert len(_COMPILED[grid]) <= _COMPILED_PER_MODEL
        held = weakref.ref(model)
        del model, first, second
        gc.collect()
        assert held() is None, "the cache keeps the model alive"
        print("OK")
    """)
    _runs_ok(script, backend)
