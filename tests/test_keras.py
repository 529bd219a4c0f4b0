import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

from skcem import CEMExplainer, CounterfactualExplainer, ExplanationNotFoundWarning

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

FAST = dict(max_iterations=200, c_steps=4)


@pytest.fixture(scope="module")
def digits_images(digits):
    X, y = digits
    return X.astype("float32"), y


@pytest.fixture(scope="module")
def cnn(digits_images):
    X, y = digits_images
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(X[:1200].reshape(-1, 8, 8, 1), y[:1200], epochs=15, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="module")
def autoencoder(digits_images):
    X, _ = digits_images
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Flatten(),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(64, activation="sigmoid"),
        keras.layers.Reshape((8, 8, 1)),
    ])
    model.compile("adam", "mse")
    images = X[:1200].reshape(-1, 8, 8, 1)
    model.fit(images, images, epochs=30, batch_size=32, verbose=0)
    return model


def _predict(model, rows):
    return model.predict(rows.reshape(-1, 8, 8, 1), verbose=0).argmax(axis=1)


def _explain(cem, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        return cem.explain(X)


IMAGE = dict(no_info_val=0.0, feature_range=(0.0, 1.0))


def test_keras_pn_and_pp_are_valid(cnn, digits_images):
    X, _ = digits_images
    test = X[1200:1216]
    pn = _explain(CEMExplainer(cnn, mode="PN", **IMAGE, **FAST).fit(X[:1200]), test)
    assert pn.found.mean() >= 0.75 and pn.input_shape == (8, 8, 1)  # 16 of 16 here
    found = pn.found
    assert np.all(_predict(cnn, pn.PN[found]) != pn.X_pred[found])
    moved = np.abs(pn.PN - pn.X)[found] > 1e-9
    assert np.all(pn.PN[found][moved] > pn.X[found][moved])  # pixels only added (v = 0)

    pp = _explain(CEMExplainer(cnn, mode="PP", **IMAGE, **FAST).fit(X[:1200]), test)
    assert pp.found.mean() >= 0.75  # 16 of 16 here
    found = pp.found
    np.testing.assert_array_equal(_predict(cnn, pp.PP[found]), pp.X_pred[found])
    assert np.all(pp.PP[found] <= pp.X[found] + 1e-6) and np.all(pp.PP[found] >= -1e-6)
    images, pps = pp.as_images()
    assert images.shape == (16, 8, 8, 1) and pps.shape == (16, 8, 8, 1)


@pytest.mark.parametrize("mode", ["PN", "PP"])
def test_autodiff_gradient_equals_numerical_gradient(cnn, digits_images, mode):
    from skcem.costs import HingeAttack, one_hot
    from skcem._gradients import NumericalBackend, make_backend

    X, _ = digits_images
    keras_backend = make_backend(cnn, eps=1e-3, n_features=64)
    Z = X[1200:1206].astype(float)
    proba = keras_backend.predict_proba(Z)
    # kappa large enough for an active hinge in both modes
    target = one_hot(proba.argmax(axis=1) if mode == "PN" else np.argsort(proba)[:, -2], 10)
    hinge = HingeAttack(mode, kappa=1.0)
    autodiff = keras_backend.evaluate(Z, Z, target, hinge).attack_grad
    numerical = NumericalBackend(keras_backend.predict_proba, eps=1e-3).evaluate(
        Z, Z, target, hinge).attack_grad
    assert np.abs(autodiff).max() > 1e-3
    # float32 differences across ReLU kinks: compare whole gradients, row by row
    error = np.linalg.norm(autodiff - numerical, axis=1) / np.linalg.norm(numerical, axis=1)
    assert np.all(error < 0.02), error


def test_autoencoder_term_lowers_reconstruction_error(cnn, autoencoder, digits_images):
    X, _ = digits_images
    test = X[1200:1212]

    def ae_error(exp):
        rows = exp.PN[exp.found].reshape(-1, 8, 8, 1)
        return np.mean(np.sum((autoencoder.predict(rows, verbose=0) - rows) ** 2,
                              axis=(1, 2, 3)))

    errors = {}
    for gamma in (0.0, 10.0):
        cem = CEMExplainer(cnn, mode="PN", gamma=gamma, autoencoder=autoencoder, **IMAGE,
                           **FAST).fit(X[:1200])
        exp = _explain(cem, test)
        assert exp.found.mean() >= 0.75
        errors[gamma] = ae_error(exp)
    assert errors[10.0] < errors[0.0]


def test_keras_backend_answers_each_row_as_if_alone(cnn, digits_images):
    """A batch's rows do not mix: each row's probabilities and gradients are those of the
    row evaluated alone, to float32 rounding (kernels round differently per batch size)."""
    from skcem._gradients import make_backend
    from skcem.costs import HingeAttack, one_hot

    X, _ = digits_images
    backend = make_backend(cnn, eps=1e-3, n_features=64)
    Z = X[1200:1204].astype(float)
    Z_s = np.clip(Z + 0.05 * np.arange(1, 5)[:, None], 0, 1)
    target = one_hot(backend.predict_proba(Z).argmax(axis=1), 10)
    hinge = HingeAttack("PN", kappa=1.0)
    together = backend.evaluate(Z, Z_s, target, hinge)
    for i in range(len(Z)):
        alone = backend.evaluate(Z[i:i + 1], Z_s[i:i + 1], target[i:i + 1], hinge)
        np.testing.assert_allclose(alone.proba_adv, together.proba_adv[i:i + 1],
                                   rtol=1e-4, atol=1e-6)
        scale = np.abs(together.attack_grad[i]).max()
        assert scale > 0
        np.testing.assert_allclose(alone.attack_grad, together.attack_grad[i:i + 1],
                                   rtol=1e-4, atol=1e-5 * scale)


@pytest.mark.parametrize("probe", [None, "auto"])
def test_keras_batch_and_one_by_one_both_give_valid_answers(cnn, digits_images, probe):
    # Batch independence of the optimizer is tested bit for bit on the float64 numpy path
    # (test_cem.py::test_batch_equals_one_by_one); here float32 kernels round differently
    # for different batch sizes, and a success test on the edge can send a search to a
    # neighbouring c, so only what holds on any machine is asserted: every answer valid,
    # a PN that only adds, in both runs.
    X, _ = digits_images
    test = X[1200:1204]
    for batch_size in (4, 1):
        exp = _explain(CEMExplainer(cnn, mode="PN", batch_size=batch_size,
                                    probe_iterations=probe, **IMAGE, **FAST).fit(X[:1200]),
                       test)
        assert exp.found.all()
        assert np.all(_predict(cnn, exp.PN) != exp.X_pred)
        assert np.all(exp.PN >= exp.X - 1e-6)
        assert np.all(exp.distance > 0)


def test_early_stopping_on_keras_path(cnn, digits_images):
    X, _ = digits_images
    test = X[1200:1208]
    full = dict(IMAGE, probe_iterations=None, **FAST)
    fixed = _explain(CEMExplainer(cnn, mode="PN", **full).fit(X[:1200]), test)
    early = _explain(CEMExplainer(cnn, mode="PN", tol=1e-4, n_iter_no_change=20,
                                  **full).fit(X[:1200]), test)
    assert early.meta["n_model_rows"] < 0.7 * fixed.meta["n_model_rows"]
    assert early.found.sum() >= fixed.found.sum() - 1


def test_eager_mode_untouched_and_pickle(cnn, digits_images):
    import pickle

    X, _ = digits_images
    cem = CEMExplainer(cnn, mode="PP", max_iterations=20, c_steps=1, **IMAGE).fit(X[:200])
    _explain(cem, X[1200:1202])
    assert tf.executing_eagerly()
    assert float(tf.reduce_sum(tf.ones(3))) == 3.0
    restored = pickle.loads(pickle.dumps(cem))
    np.testing.assert_allclose(restored.transform(X[1200:1202]), cem.transform(X[1200:1202]),
                               atol=1e-6)


def test_wrong_input_shape_is_reported(cnn, digits_images):
    X, _ = digits_images
    with pytest.raises(ValueError, match=r"`input_shape` \(4, 4, 1\) holds 16 values per "
                       r"instance, but X has 64 columns"):
        CEMExplainer(cnn, input_shape=(4, 4, 1)).fit(X[:50])
    with pytest.raises(ValueError, match=r"Keras model's input shape \(8, 8, 1\) holds 64 "
                       r"values per instance, but X has 10 columns"):
        CEMExplainer(cnn).fit(X[:50, :10])


def test_a_model_never_built_is_refused_and_left_unbuilt(digits_images):
    """Found by a user: following the advice to pass input_shape, skcem built a Sequential
    never called, and explained its random weights without a word."""
    from skcem import GradientSimilarityExplainer

    X, y = digits_images
    model = keras.Sequential([keras.layers.Dense(16), keras.layers.Dense(10, "softmax")])
    for explainer in (CEMExplainer(model, input_shape=(64,)),
                      CounterfactualExplainer(model, input_shape=(64,)),
                      GradientSimilarityExplainer(model, input_shape=(64,))):
        with pytest.raises(ValueError, match=r"`estimator` \(Sequential\) was never built, so "
                                             "it holds no trained weights"):
            explainer.fit(X[:50], y[:50])
    assert not model.built


def test_a_subclassed_model_takes_flat_rows_without_input_shape(digits_images):
    """Found by a user: a subclassed keras.Model cannot tell its input shape, and every
    explainer asked for `input_shape` even for the flat rows it takes."""
    from skcem import GradientSimilarityExplainer

    X, y = digits_images
    X = X / 16

    class TwoLayers(keras.Model):
        def __init__(self):
            super().__init__()
            self.hidden = keras.layers.Dense(16, activation="relu")
            self.out = keras.layers.Dense(10, activation="softmax")

        def call(self, x):
            return self.out(self.hidden(x))

    keras.utils.set_random_seed(0)
    model = TwoLayers()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(X[:1000], y[:1000], epochs=10, verbose=0)
    twin = keras.Sequential([keras.Input((64,)), keras.layers.Dense(16, activation="relu"),
                             keras.layers.Dense(10, activation="softmax")])
    twin.set_weights(model.get_weights())
    rows = X[1000:1004]
    for Explainer in (CEMExplainer, CounterfactualExplainer):
        exp = _explain(Explainer(model, **FAST).fit(X[:500]), rows)
        assert exp.found.all()
        predicted = np.asarray(model(exp.explanation.astype("float32"))).argmax(axis=1)
        np.testing.assert_array_equal(predicted, exp.explanation_pred.astype(int))
        assert (predicted != exp.X_pred).all()
    scores = GradientSimilarityExplainer(model).fit(X[:200], y[:200]).explain(rows).scores
    expected = GradientSimilarityExplainer(twin).fit(X[:200], y[:200]).explain(rows).scores
    # float32 gradients of one path and factorised float64 products of the other
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6 * np.abs(expected).max())

    class Convolutional(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = keras.layers.Conv2D(4, 3)
            self.out = keras.layers.Dense(10, activation="softmax")

        def call(self, x):
            return self.out(keras.ops.reshape(self.conv(x), (-1, 144)))

    images = Convolutional()
    images(X[:2].reshape(-1, 8, 8, 1))
    for explainer in (CEMExplainer(images), GradientSimilarityExplainer(images)):
        with pytest.raises(ValueError, match=r"fails on rows reshaped to \(64,\) .*; pass the "
                                             r"`input_shape` it takes"):
            explainer.fit(X[:50], y[:50])
    # a user's: Keras's message printed the rows themselves, and cut before the shapes
    network = keras.Sequential([keras.Input((None, None, 1)), keras.layers.Conv2D(4, 3),
                                keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)])
    with pytest.raises(ValueError, match=r"fails on rows reshaped to \(64,\)") as error:
        CEMExplainer(network, input_shape=(64,)).fit(X[:50])
    assert "[[" not in str(error.value) and "(None, None, None, 1)" in str(error.value)
    # a shape the model does not declare, of as many numbers: its images scrambled
    network = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3),
                                keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)])
    for wrong in [(64,), (4, 16, 1), (8, 4, 2)]:
        for explainer in (CEMExplainer(network, input_shape=wrong),
                          GradientSimilarityExplainer(network, input_shape=wrong)):
            with pytest.raises(ValueError, match=r"`input_shape` .* differs from the shape the "
                                                 r"Keras model declares for one instance, "
                                                 r"\(8, 8, 1\)"):
                explainer.fit(X[:50], y[:50])


def test_without_tensorflow_black_box_works_and_keras_says_how_to_install():
    script = textwrap.dedent("""
        import sys
        sys.modules["tensorflow"] = None  # as if TensorFlow were not installed
        import numpy as np
        from sklearn.datasets import load_iris
        from sklearn.linear_model import LogisticRegression
        from skcem import CEMExplainer

        X, y = load_iris(return_X_y=True)
        clf = LogisticRegression(max_iter=500).fit(X, y)
        exp = CEMExplainer(clf, mode="PN", max_iterations=200, c_steps=4).fit(X).explain(X[50:52])
        assert exp.found.any()
        assert "tensorflow" not in [m for m in sys.modules if sys.modules[m] is not None]

        KerasLike = type("Functional", (), {"__module__": "keras.src.models.functional",
                                           "__call__": lambda self, x: x})
        try:
            CEMExplainer(KerasLike()).fit(X)
        except ImportError as exc:
            assert "pip install skcem[tf]" in str(exc), exc
            print("OK")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("OK")


# --- GradientSimilarityExplainer on Keras models -------------------------------------------

def _tape_gradient(model, x, y, loss_fn):
    """One instance's flattened loss gradient, the reference's way (GradientTape)."""
    with tf.GradientTape() as tape:
        value = loss_fn(tf.constant(y[None]), model(tf.constant(x[None]), training=False))
    grads = tape.gradient(value, model.trainable_weights)
    return np.concatenate([tf.convert_to_tensor(g).numpy().ravel() for g in grads])


@pytest.mark.parametrize("sim_fn", ["grad_dot", "grad_cos", "grad_asym_dot"])
def test_keras_similarity_equals_one_at_a_time_tape(cnn, digits_images, sim_fn):
    from skcem import GradientSimilarityExplainer

    X, y = digits_images
    X_train, y_train, X_test = X[:40], y[:40], X[1300:1304]
    explainer = GradientSimilarityExplainer(cnn, sim_fn=sim_fn, batch_size=16)
    explainer.fit(X_train, y_train)
    scores = explainer.transform(X_test)
    loss = keras.losses.sparse_categorical_crossentropy
    target = cnn.predict(X_test.reshape(-1, 8, 8, 1), verbose=0).argmax(axis=1)
    g_test = np.stack([_tape_gradient(cnn, x.reshape(8, 8, 1), t, loss)
                       for x, t in zip(X_test, target)])
    g_train = np.stack([_tape_gradient(cnn, x.reshape(8, 8, 1), t, loss)
                        for x, t in zip(X_train, y_train)])
    dot = g_test @ g_train.T
    expected = {
        "grad_dot": dot,
        "grad_cos": dot / (np.linalg.norm(g_test, axis=1)[:, None]
                           * np.linalg.norm(g_train, axis=1)[None]),
        "grad_asym_dot": dot / (np.sum(g_train**2, axis=1)[None] + 1e-7),
    }[sim_fn]
    if sim_fn == "grad_dot":
        np.testing.assert_allclose(scores, expected, rtol=1e-4,
                                   atol=1e-6 * np.abs(expected).max())
        # self-influence: the squared norms, of the training rows at their labels and of
        # the test rows at their predicted classes
        for own, grads in ((explainer.self_influence(), g_train),
                           (explainer.self_influence(X_test), g_test)):
            np.testing.assert_allclose(own, np.sum(grads**2, axis=1), rtol=1e-4,
                                       atol=1e-6 * np.sum(grads**2, axis=1).max())
        return
    # Normalised scores of a near-zero float32 gradient (a saturated softmax: p_t = 1 - 1e-6)
    # carry its rounding, ~1e-3 relative; they are exact to 1e-4 (of the largest score, as a
    # float32 dot product of nearly orthogonal gradients cancels) wherever gradients are not.
    sq_test, sq_train = np.sum(g_test**2, axis=1), np.sum(g_train**2, axis=1)
    clear = (sq_test[:, None] > 1e-4) & (sq_train[None] > 1e-4)
    assert clear.mean() > 0.5
    scale = np.abs(expected).max()
    np.testing.assert_allclose(scores[clear], expected[clear], rtol=1e-4, atol=1e-4 * scale)
    np.testing.assert_allclose(scores, expected, rtol=1e-2, atol=1e-3 * scale)


def test_keras_similarity_regression_and_custom_loss(digits_images):
    from skcem import GradientSimilarityExplainer

    X, _ = digits_images
    y = X[:, 20] * 2 + X[:, 35]
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(1)])
    model.compile("adam", "mse")
    model.fit(X[:300], y[:300], epochs=5, verbose=0)
    auto = GradientSimilarityExplainer(model, task="regression").fit(X[:50], y[:50])
    with pytest.raises(ValueError, match=r"pass y \(explain\(X, y\)"):
        auto.transform(X[:2])
    mse = auto.explain(X[:3], y[:3]).scores
    mae = GradientSimilarityExplainer(model, task="regression", loss="mean_absolute_error").fit(
        X[:50], y[:50]).explain(X[:3], y[:3]).scores
    assert mse.shape == mae.shape == (3, 50) and not np.allclose(mse, mae)
    g = _tape_gradient(model, X[0].astype("float32"), np.float32(y[0]),
                       keras.losses.mean_squared_error)
    np.testing.assert_allclose(mse[0, 0], g @ g, rtol=1e-4)


@pytest.mark.parametrize("n_classes", [10, 2])
@pytest.mark.parametrize("loss", ["mse", "categorical_crossentropy", lambda y_pred: y_pred])
def test_keras_similarity_loss_of_the_wrong_kind_is_named(digits_images, loss, n_classes):
    # a regression loss, one-hot targets, one argument: TensorFlow's and Keras's own errors,
    # a graph's traceback among them, before; and with two outputs, whose (n, 2) outputs
    # the check's two targets broadcast against (found by a review: the error came later,
    # from inside TensorFlow)
    from skcem import GradientSimilarityExplainer

    X, y = digits_images
    model = keras.Sequential([keras.Input((64,)),
                              keras.layers.Dense(n_classes, activation="softmax")])
    y = y % n_classes
    with pytest.raises(ValueError, match="`loss` fails on the model's outputs and the targets "
                                         r"\(.*a Keras loss, loss\(y_true, y_pred\)"):
        GradientSimilarityExplainer(model, loss=loss).fit(X[:20], y[:20])


def test_keras_similarity_without_trainable_weights(digits_images):
    from skcem import GradientSimilarityExplainer

    X, y = digits_images
    frozen = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10, activation="softmax")])
    frozen.trainable = False
    with pytest.raises(ValueError, match="no trainable weights"):
        GradientSimilarityExplainer(frozen).fit(X[:20], y[:20])


def test_keras_counterfactuals_by_autodiff(cnn, digits_images):
    from skcem import CounterfactualExplainer

    X, _ = digits_images
    cf = CounterfactualExplainer(cnn, target_class=3, C=0.01, max_iterations=300,
                                 feature_range=(0.0, 1.0)).fit(X[:1200])
    exp = _explain(cf, X[1200:1208])
    assert exp.found.mean() >= 0.75
    np.testing.assert_array_equal(_predict(cnn, exp.explanation[exp.found]), 3)


def test_keras_early_stopping_with_autoencoder(cnn, autoencoder, digits_images):
    X, _ = digits_images
    exp = _explain(CEMExplainer(cnn, mode="PP", gamma=10.0, autoencoder=autoencoder, tol=1e-3,
                                **IMAGE, **FAST).fit(X[:1200]), X[1200:1206])
    assert exp.found.mean() >= 0.8
    np.testing.assert_array_equal(_predict(cnn, exp.PP[exp.found]), exp.X_pred[exp.found])


# --- Classifiers that end in logits or in one sigmoid ---------------------------------------

@pytest.fixture(scope="module")
def logits_twin(cnn):
    """The CNN with its softmax removed: the same weights, outputs are logits."""
    twin = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(10),
    ])
    twin.set_weights(cnn.get_weights())
    return twin


@pytest.fixture(scope="module")
def sigmoid_model(digits_images):
    X, y = digits_images
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(8, activation="tanh"),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy")
    model.fit(X[:1200], (y[:1200] >= 5).astype("float32"), epochs=20, verbose=0)
    return model


@pytest.mark.parametrize("mode", ["PN", "PP"])
def test_logits_model_gets_the_explanations_of_its_softmax_twin(cnn, logits_twin,
                                                                digits_images, mode):
    from skcem._gradients._keras import keras_output_kind

    X, _ = digits_images
    test = X[1200:1206]
    assert keras_output_kind(logits_twin, logits_twin(test.reshape(-1, 8, 8, 1))) == "logits"
    twin_cem = CEMExplainer(logits_twin, mode=mode, **IMAGE, **FAST).fit(X[:1200])
    soft_cem = CEMExplainer(cnn, mode=mode, **IMAGE, **FAST).fit(X[:1200])
    # What the search sees of both is the same, to float32 rounding: probabilities and
    # gradients. (Whole searches are not compared: a success test on the edge, rounded
    # differently, can send one to a neighbouring c.)
    from skcem.costs import HingeAttack, one_hot

    Z = test.astype(float)
    Z_s = np.clip(Z + 0.05, 0, 1)
    target = one_hot(soft_cem._backend.predict_proba(Z).argmax(axis=1), 10)
    hinge = HingeAttack(mode, kappa=1.0)
    soft_answer = soft_cem._backend.evaluate(Z, Z_s, target, hinge)
    twin_answer = twin_cem._backend.evaluate(Z, Z_s, target, hinge)
    np.testing.assert_allclose(twin_answer.proba_adv, soft_answer.proba_adv, atol=1e-5)
    np.testing.assert_allclose(twin_answer.attack_grad, soft_answer.attack_grad, rtol=1e-3,
                               atol=1e-5 * np.abs(soft_answer.attack_grad).max())
    twin, soft = _explain(twin_cem, test), _explain(soft_cem, test)
    for exp in (twin, soft):
        assert exp.found.sum() >= 5
        valid = _predict(cnn, exp.explanation[exp.found])
        if mode == "PN":
            assert np.all(valid != exp.X_pred[exp.found])
        else:
            np.testing.assert_array_equal(valid, exp.X_pred[exp.found])
    np.testing.assert_allclose(twin.X_proba, soft.X_proba, atol=1e-5)


@pytest.mark.parametrize("sim_fn", ["grad_dot", "grad_cos"])
def test_logits_model_gets_the_similarity_of_its_softmax_twin(cnn, logits_twin, digits_images,
                                                              sim_fn):
    from skcem import GradientSimilarityExplainer

    X, y = digits_images
    scores = {}
    for name, model in (("soft", cnn), ("logits", logits_twin)):
        explainer = GradientSimilarityExplainer(model, sim_fn=sim_fn).fit(X[:60], y[:60])
        scores[name] = explainer.transform(X[1300:1304])
    assert np.mean(scores["logits"] == 0) < 0.01
    scale = np.abs(scores["soft"]).max()
    np.testing.assert_allclose(scores["logits"], scores["soft"], rtol=1e-3, atol=1e-5 * scale)



@pytest.mark.parametrize("model_name", ["cnn", "logits_twin"])
def test_similarity_targets_come_with_the_test_gradients(model_name, request, digits_images):
    """Without precompute_grads the predicted classes come from the compiled gradient pass,
    and fit does not call the model when its last layer tells what it outputs."""
    from skcem import GradientSimilarityExplainer

    model = request.getfixturevalue(model_name)
    X, y = digits_images
    test = X[1300:1310]
    explainer = GradientSimilarityExplainer(model, batch_size=4).fit(X[:20], y[:20])
    assert "outputs" not in explainer._gradients._compiled
    exp = explainer.explain(test)
    predicted = model.predict(test.reshape(-1, 8, 8, 1), verbose=0).argmax(axis=1)
    np.testing.assert_array_equal(exp.target, predicted)
    stored = GradientSimilarityExplainer(model, batch_size=4, precompute_grads=True)
    np.testing.assert_array_equal(stored.fit(X[:20], y[:20]).explain(test).target, predicted)
    np.testing.assert_allclose(exp.scores, explainer.explain(test, predicted).scores)

def test_one_sigmoid_output_in_all_three_explainers(sigmoid_model, digits_images):
    from skcem import CounterfactualExplainer, GradientSimilarityExplainer

    X, y = digits_images
    test = X[1200:1208]
    s = sigmoid_model.predict(test, verbose=0).ravel()
    predicted = (s > 0.5).astype(int)
    pn = _explain(CEMExplainer(sigmoid_model, mode="PN", **IMAGE, **FAST).fit(X[:1200]), test)
    np.testing.assert_allclose(pn.X_proba, np.column_stack([1 - s, s]), atol=1e-6)
    np.testing.assert_array_equal(pn.X_pred, predicted)
    assert pn.found.sum() >= 6
    after = sigmoid_model.predict(pn.PN[pn.found], verbose=0).ravel() > 0.5
    assert np.all(after.astype(int) != predicted[pn.found])

    cf = _explain(CounterfactualExplainer(sigmoid_model, **FAST).fit(X[:1200]), test)
    assert cf.found.sum() >= 6
    after = sigmoid_model.predict(cf.explanation[cf.found], verbose=0).ravel() > 0.5
    assert np.all(after.astype(int) != predicted[cf.found])

    binary = (y >= 5).astype(int)
    explainer = GradientSimilarityExplainer(sigmoid_model).fit(X[:40], binary[:40])
    scores = explainer.transform(test[:3])
    bce = keras.losses.binary_crossentropy
    g_test = np.stack([_tape_gradient(sigmoid_model, x, np.float32([t]), bce)
                       for x, t in zip(test[:3], predicted[:3])])
    g_train = np.stack([_tape_gradient(sigmoid_model, x, np.float32([t]), bce)
                        for x, t in zip(X[:40], binary[:40])])
    expected = g_test @ g_train.T
    np.testing.assert_allclose(scores, expected, rtol=1e-3, atol=1e-5 * np.abs(expected).max())
    # the model's own compile loss by name (found by a user: the function alone refused the
    # labels' shape (n,) beside the outputs' (n, 1)), as by its Loss object
    for loss in ("binary_crossentropy", keras.losses.BinaryCrossentropy(), bce):
        named = GradientSimilarityExplainer(sigmoid_model, loss=loss).fit(X[:40], binary[:40])
        np.testing.assert_allclose(named.transform(test[:3]), expected, rtol=1e-3,
                                   atol=1e-5 * np.abs(expected).max())


def test_similarity_input_shape_mismatch_is_one_line(cnn, digits_images):
    from skcem import GradientSimilarityExplainer

    X, y = digits_images
    with pytest.raises(ValueError, match=r"input shape \(8, 8, 1\) holds 64 values per "
                                         r"instance, but X has 10 columns"):
        GradientSimilarityExplainer(cnn).fit(X[:20, :10], y[:20])


def test_a_flat_autoencoder_explains_a_cnn_in_its_own_shape(cnn, autoencoder, digits_images):
    X, _ = digits_images
    flat = keras.Sequential([keras.Input((64,)), keras.layers.Reshape((8, 8, 1)), autoencoder,
                             keras.layers.Flatten()])
    test = X[1200:1206]
    answers = {}
    for name, ae in (("image", autoencoder), ("flat", flat)):
        cem = CEMExplainer(cnn, mode="PN", gamma=10.0, autoencoder=ae, **IMAGE,
                           **FAST).fit(X[:1200])
        answers[name] = _explain(cem, test)
    assert cem._backend.autoencoder.input_shape == (64,)
    # The same auto-encoder either way: the same answers.
    np.testing.assert_array_equal(answers["flat"].found, answers["image"].found)
    np.testing.assert_allclose(answers["flat"].PN, answers["image"].PN, atol=1e-4)
    narrow = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32)])
    with pytest.raises(ValueError, match="`autoencoder` returns 32 values for an instance of "
                                         "64: it must reconstruct its input"):
        CEMExplainer(cnn, gamma=1.0, autoencoder=narrow).fit(X[:50])
    wide = keras.Sequential([keras.Input((32,)), keras.layers.Dense(32)])
    with pytest.raises(ValueError, match=r"`autoencoder`'s input shape \(32,\) holds 32"):
        CEMExplainer(cnn, gamma=1.0, autoencoder=wide).fit(X[:50])


def test_keras_models_the_explainers_cannot_take_are_named(cnn, digits_images):
    from skcem import GradientSimilarityExplainer

    X, y = digits_images
    first, second = keras.Input((32,)), keras.Input((32,))
    joined = keras.layers.Concatenate()([first, second])
    two_inputs = keras.Model([first, second], keras.layers.Dense(10)(joined))
    for params in ({}, {"input_shape": (64,)}):
        with pytest.raises(ValueError, match="`estimator` takes 2 inputs; skcem explains "
                                             "models with one input"):
            CEMExplainer(two_inputs, **params).fit(X[:20])
    # a second (regression) head: its input shape was blamed
    inputs = keras.Input((64,))
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    two_outputs = keras.Model(inputs, [keras.layers.Dense(10, activation="softmax")(hidden),
                                       keras.layers.Dense(1)(hidden)])
    for explainer in (CEMExplainer(two_outputs), GradientSimilarityExplainer(two_outputs)):
        with pytest.raises(ValueError, match=r"`estimator` has 2 outputs; skcem explains "
                                             r"models with one output .*model.outputs\[k\]"):
            explainer.fit(X[:20], y[:20])
    with pytest.raises(ValueError, match=r"`input_shape` \(4, 16, 1\) differs from the shape "
                                         r"the Keras model declares for one instance, "
                                         r"\(8, 8, 1\)"):
        CEMExplainer(cnn, input_shape=(4, 16, 1)).fit(X[:20])
    # alibi's shape holds the batch dimension (found by a user porting its code), and a
    # review's (64,) for a model of (64, 1): axes of one only, taken as the model's own
    assert CEMExplainer(cnn, input_shape=(1, 8, 8, 1)).fit(X[:20])._get_backend() \
        .input_shape == (8, 8, 1)
    column = keras.Sequential([keras.Input((64, 1)), keras.layers.Flatten(),
                               keras.layers.Dense(10, activation="softmax")])
    assert CEMExplainer(column, input_shape=(64,)).fit(X[:20])._get_backend() \
        .input_shape == (64, 1)
    with pytest.raises(ValueError, match=r"dim 4.*X.reshape\(len\(X\), -1\)"):
        CEMExplainer(cnn).fit(X[:20].reshape(-1, 8, 8, 1))
    with pytest.raises(ValueError, match="y holds 2.5, which is not a class index of the "
                                         "Keras model's 10 classes.*task='regression'"):
        GradientSimilarityExplainer(cnn).fit(X[:20], np.full(20, 2.5))
    with pytest.raises(ValueError, match=r"task='regression': y has 1 target.* has 10 output"):
        GradientSimilarityExplainer(cnn, task="regression").fit(X[:20], y[:20])


def test_clone_shares_the_autoencoder(cnn, autoencoder):
    from sklearn.base import clone

    cem = CEMExplainer(cnn, gamma=1.0, autoencoder=autoencoder)
    twin = clone(cem)
    assert twin.autoencoder is autoencoder and twin.estimator is cnn


def test_many_explainers_of_one_model_do_not_warn_of_retracing(cnn, digits_images):
    import logging

    from skcem import GradientSimilarityExplainer

    X, y = digits_images
    messages = []

    class Record(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    handler = Record()
    tf.get_logger().addHandler(handler)
    try:
        for beta in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5):  # as GridSearchCV's clones would
            _explain(CEMExplainer(cnn, beta=beta, max_iterations=5, c_steps=2).fit(X[:50]),
                     X[:2])
            GradientSimilarityExplainer(cnn).fit(X[:20], y[:20]).transform(X[:2])
    finally:
        tf.get_logger().removeHandler(handler)
    assert not [m for m in messages if "retracing" in m]


def test_outputs_that_are_not_probabilities_are_taken_as_logits_with_a_warning(
        cnn, digits_images):
    from skcem._gradients._keras import keras_output_kind

    X, _ = digits_images
    rows = X[:20].reshape(-1, 8, 8, 1)
    scaled = keras.Sequential([cnn, keras.layers.Rescaling(2.0)])  # rows sum to 2
    with pytest.warns(UserWarning, match="Rescaling.*does not output probabilities.*taken as "
                                         "logits"):
        assert keras_output_kind(scaled, scaled(rows)) == "logits"
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # softmax and plain logits: no warning
        assert keras_output_kind(cnn, cnn(rows)) == "probabilities"


def test_a_model_that_bins_its_input_has_a_zero_gradient_not_a_crash():
    # a Discretization layer leaves no gradient path (TensorFlow's None): the gradient-free
    # steps that complete the search answer instead
    from sklearn.datasets import load_iris

    from skcem import CounterfactualExplainer

    keras.utils.set_random_seed(0)
    X, y = load_iris(return_X_y=True)
    X = X.astype(np.float32)
    bins = keras.layers.Discretization(num_bins=6)
    bins.adapt(X)
    inputs = keras.Input((4,))
    hidden = keras.layers.Lambda(lambda t: keras.ops.cast(t, "float32"))(bins(inputs))
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.Dense(8, "relu")(hidden))
    model = keras.Model(inputs, outputs)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(X, y, epochs=30, verbose=0)
    for explainer in (CEMExplainer(model, mode="PN"), CounterfactualExplainer(model)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExplanationNotFoundWarning)
            exp = explainer.fit(X).explain(X[[0, 60, 120]])
        assert exp.found.sum() >= 2
        predicted = model.predict(exp.explanation[exp.found], verbose=0).argmax(axis=1)
        assert np.all(predicted != exp.X_pred[exp.found])


def test_a_float64_model_is_explained():
    """Found by a user: a Keras model built in float64 failed in every explainer (float32
    tensors met its float64 outputs inside the compiled functions)."""
    from skcem import CounterfactualExplainer, GradientSimilarityExplainer

    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, (100, 6))
    y = (X[:, 0] + X[:, 1] > 1).astype(int)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,), dtype="float64"),
                              keras.layers.Dense(8, activation="tanh", dtype="float64"),
                              keras.layers.Dense(2, activation="softmax", dtype="float64")])
    model.compile(keras.optimizers.Adam(0.05), "sparse_categorical_crossentropy")
    model.fit(X, y, epochs=100, verbose=0)
    own = model.predict(X[:6], verbose=0).argmax(axis=1)
    for explainer in (CEMExplainer(model, mode="PN", no_info_val=0.0, feature_range=(0, 1)),
                      CounterfactualExplainer(model, feature_range=(0, 1))):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExplanationNotFoundWarning)
            exp = explainer.fit(X).explain(X[:6])
        assert exp.found.sum() >= 3
        answers = model.predict(exp.explanation[exp.found], verbose=0).argmax(axis=1)
        assert np.all(answers != own[exp.found])
    similarity = GradientSimilarityExplainer(model).fit(X[:20], y[:20])
    scores = similarity.explain(X[:3]).scores

    def gradient(x, target):
        with tf.GradientTape() as tape:
            loss = keras.losses.sparse_categorical_crossentropy(target[None], model(x[None]))
        return np.concatenate([g.numpy().ravel() for g in tape.gradient(
            loss, model.trainable_weights)])

    train = np.array([gradient(X[i], y[i]) for i in range(20)])
    test = np.array([gradient(X[i], own[i]) for i in range(3)])  # the predicted class
    # saturated rows' products (below 1e-5 of the largest) differ by the loss's clipping
    np.testing.assert_allclose(scores, test @ train.T, rtol=1e-4,
                               atol=1e-5 * np.abs(test @ train.T).max())


_SEQUENCE_MODELS = textwrap.dedent("""
    import os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import numpy as np, keras, tensorflow as tf
    from keras import layers, ops
    from skcem import GradientSimilarityExplainer

    def dense_lstm(inp):  # pfor's loop over the LSTM fails when run
        return layers.LSTM(6)(layers.Dense(5)(inp))

    def attention(inp):  # vectorized_map of its gradient corrupted the heap
        h = layers.Dense(8)(inp)
        return layers.GlobalAveragePooling1D()(layers.MultiHeadAttention(2, 4)(h, h))

    def folded(inp):  # a Dense on each example's 4 rows: no outer product per example
        h = layers.Lambda(lambda t: ops.reshape(t, (-1, 3)))(inp)
        h = layers.Dense(5, activation="tanh")(h)
        return layers.Lambda(lambda t: ops.reshape(t, (-1, 20)))(h)

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 12)).astype(np.float32)
    y = np.arange(30) % 3
    for name in sys.argv[1:]:
        inp = keras.Input((4, 3)) if name != "folded" else keras.Input((12,))
        model = keras.Model(inp, layers.Dense(3)(globals()[name](inp)))
        shape = (4, 3) if name != "folded" else (12,)
        scores = GradientSimilarityExplainer(model).fit(X[:24], y[:24]).explain(
            X[24:], y[24:]).scores
        def gradient(x, t):
            with tf.GradientTape() as tape:
                p = model(x.reshape((1,) + shape), training=False)
                value = keras.losses.sparse_categorical_crossentropy(
                    np.array([t]), p, from_logits=True)
            return np.concatenate([g.numpy().ravel() for g in
                                   tape.gradient(value, model.trainable_weights)])
        G = np.stack([gradient(x, t) for x, t in zip(X, y)]).astype(float)
        expected = G[24:] @ G[:24].T
        print(name, np.abs(scores - expected).max() / np.abs(expected).max(), flush=True)
""")


def test_similarity_of_recurrent_attention_and_folding_models_equals_a_tape_loop():
    """Found by a user: an LSTM fed by a Dense layer failed when run (pfor), a multi-head
    attention model killed the process (TensorFlow's vectorized_map with oneDNN), and a
    model that folds its batch into rows crashed at a matrix product: each now gets the
    gradients of one example at a time where needed. In a subprocess: a crash is a failure,
    not the end of the test run."""
    result = subprocess.run([sys.executable, "-c", _SEQUENCE_MODELS, "dense_lstm",
                             "attention", "folded"], capture_output=True, text=True,
                            timeout=600, env={**os.environ, "KERAS_BACKEND": "tensorflow"})
    assert result.returncode == 0, result.stderr[-2000:]
    errors = dict(line.split() for line in result.stdout.strip().splitlines())
    assert set(errors) == {"dense_lstm", "attention", "folded"}
    for name, error in errors.items():
        assert float(error) < 1e-4, (name, error)


def test_a_softmax_models_confident_rows_keep_their_gradient():
    """Found by a user: rows whose softmax rounds to 1 in float32 had a gradient of exactly
    zero (the cross-entropy of the probabilities, clipped), so grad_cos scored them 0 against
    themselves; the cross-entropy of the logits under the softmax keeps it."""
    from skcem import GradientSimilarityExplainer

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 6)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(2, activation="softmax")])
    kernel = np.zeros((6, 2), np.float32)
    kernel[0] = [-8.0, 8.0]  # confident: p rounds to 1 where |x0| > 1
    model.set_weights([kernel, np.zeros(2, np.float32)])
    p = model(X).numpy()[np.arange(40), y]
    # within Keras's clip of probabilities (1e-7 of 1), where their cross-entropy has no
    # gradient: whether a softmax rounds such rows to exactly 1 depends on the machine's
    # kernels (0.99999994 at most on an AMD EPYC), the clip does not
    saturated = np.flatnonzero(p > 1.0 - 1e-7)
    assert saturated.size >= 5
    explainer = GradientSimilarityExplainer(model, sim_fn="grad_cos").fit(X, y)
    scores = explainer.explain(X[saturated], y[saturated]).scores
    np.testing.assert_allclose(scores[np.arange(saturated.size), saturated], 1.0, rtol=1e-5)


def test_a_model_with_a_dict_of_outputs_gets_one_clear_error(cnn, digits_images):
    X, _ = digits_images
    by_name = keras.Model(cnn.inputs, {"probs": cnn.outputs[0]})
    for explainer in (CEMExplainer(by_name, mode="PN"), CounterfactualExplainer(by_name)):
        with pytest.raises(TypeError, match="`estimator` must return one tensor of outputs "
                                            "per row.*returns a dict"):
            explainer.fit(X[:50])


def test_a_half_precision_softmax_is_taken_as_probabilities(digits):
    # float16 probabilities sum to 1 within about 1e-3 only: such a model was refused
    from skcem._validation import check_probabilities

    X, y = digits
    keras.utils.set_random_seed(0)

    def network(dtype):
        inputs = keras.Input((64,), dtype=dtype)
        hidden = keras.layers.Dense(32, activation="relu", dtype=dtype)(inputs)
        return keras.Model(inputs, keras.layers.Dense(10, activation="softmax",
                                                      dtype=dtype)(hidden))

    trained, model = network("float32"), network("float16")
    trained.compile("adam", "sparse_categorical_crossentropy")
    trained.fit(X[:1200], y[:1200], epochs=10, verbose=0)
    model.set_weights([w.astype("float16") for w in trained.get_weights()])
    rounded = np.full((3, 10), 0.1002)  # rows that sum to 1.002
    check_probabilities(rounded, 3, estimator=model)
    with pytest.raises(ValueError, match="must return rows that sum to 1; a row sums to 1.002"):
        check_probabilities(rounded, 3, estimator=trained)
    exp = _explain(CounterfactualExplainer(model, max_iterations=200).fit(X[:1200]),
                   X[1200:1210])
    assert exp.found.sum() >= 5
    predicted = model.predict(exp.explanation[exp.found], verbose=0).argmax(axis=1)
    assert np.all(predicted != exp.X_pred[exp.found])


def test_similarity_refuses_ids_outside_a_first_embedding():
    """Found by a trial: a token id past the vocabulary of the Embedding a network starts
    with failed in TensorFlow's graph words (NaN scores on JAX, ranked in silence)."""
    from skcem import GradientSimilarityExplainer

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Embedding(50, 4),
                              keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")])
    rng = np.random.default_rng(0)
    X = rng.integers(0, 50, size=(60, 6)).astype(float)
    y = rng.integers(0, 2, 60)
    explainer = GradientSimilarityExplainer(model).fit(X, y)
    rows = X[:3].copy()
    rows[1, 2] = 9999
    with pytest.raises(ValueError, match=r"X holds 9999 \(row 1, column 2\), no token id of the "
                                         r"Embedding the model starts with \(whole numbers 0 "
                                         r"to 49\)"):
        explainer.kneighbors(rows, 3)
    with pytest.raises(ValueError, match=r"X holds 2\.5 \(row 0, column 0\)"):
        GradientSimilarityExplainer(model).fit(np.full((4, 6), 2.5), [0, 1, 0, 1])
    assert explainer.kneighbors(X[:2], 2)[1].shape == (2, 2)


@pytest.mark.parametrize("head", ["logits", "softmax", "sigmoid"])
def test_similarity_of_rows_the_model_is_sure_of_equals_float64(head):
    """Found by a user: in float32 a probability rounds to 1 past a logit margin of about
    17, where the cross-entropy's gradient p - 1 lost the true class's part (logits, a
    softmax) or vanished (one sigmoid): self_influence was 70% off, grad_cos 0.8."""
    from skcem import GradientSimilarityExplainer

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 4)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    W1 = rng.normal(0, 0.3, (4, 8))
    W1[:, 0] = [2.0, 2.0, 0.0, 0.0]
    b1 = rng.normal(0, 0.1, 8)
    k = 1 if head == "sigmoid" else 2
    W2 = rng.normal(0, 0.3, (8, k))
    W2[0] = [25.0] if head == "sigmoid" else [-12.5, 12.5]
    b2 = np.zeros(k)
    activation = {"logits": None, "softmax": "softmax", "sigmoid": "sigmoid"}[head]
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="tanh"),
                              keras.layers.Dense(k, activation=activation)])
    model.set_weights([w.astype(np.float32) for w in (W1, b1, W2, b2)])
    # the same network and loss in float64, by hand
    h = np.tanh(X.astype(float) @ W1 + b1)
    z = h @ W2 + b2
    margin = np.abs(z[:, 0] if k == 1 else z[:, 1] - z[:, 0])
    assert (margin > 17).sum() >= 10 and margin.max() < 35

    def gradients(labels):
        if k == 1:
            dz = 1 / (1 + np.exp(-z)) - labels[:, None]
        else:
            p = np.exp(z - z.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            dz = p - np.eye(2)[labels]
        da = (dz @ W2.T) * (1 - h ** 2)
        G = np.hstack([np.einsum("ni,nj->nij", X.astype(float), da).reshape(len(X), -1), da,
                       np.einsum("ni,nj->nij", h, dz).reshape(len(X), -1), dz])
        return G / np.linalg.norm(G, axis=1, keepdims=True)

    predicted = (z[:, 0] > 0).astype(int) if k == 1 else z.argmax(axis=1)
    scores = GradientSimilarityExplainer(model, sim_fn="grad_cos").fit(X, y).transform(X)
    # test rows by the model's own classes, training rows by y
    np.testing.assert_allclose(scores, gradients(predicted) @ gradients(y).T, atol=1e-4)
