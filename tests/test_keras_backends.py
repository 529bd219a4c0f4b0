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
    # confident outputs: a softmax's cross-entropy is clipped, logits' is not, on any backend
    model.set_weights([4.0 * w for w in model.get_weights()])
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
        if key.endswith(("_found", "_X_pred", "_explanation_pred", "_own_pred")):
            continue  # search outputs: only their validity is compared
        scale = np.abs(expected).max()
        np.testing.assert_allclose(answers[key], expected, rtol=1e-4, atol=1e-5 * scale,
                                   err_msg=f"{key} on {backend}")
    np.testing.assert_array_equal(answers[f"{model}_X_pred"],
                                  expected_answers[f"{model}_X_pred"])
    _assert_valid(answers, model)
    _assert_valid(expected_answers, model)


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
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env={**os.environ, "KERAS_BACKEND": "numpy",
                                 "PYTHONWARNINGS": "ignore"}, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("OK")
