import warnings

import numpy as np
import pytest

from skcem import CEMExplainer, ExplanationNotFoundWarning
from skcem import costs

from .conftest import FAST

rng = np.random.default_rng(0)
X0 = rng.normal(size=(3, 5))
INPUT_TERMS = [
    costs.L1(X0),
    costs.L2(X0),
    costs.L1(X0, weights=1 / np.array([0.5, 1.0, 2.0, 4.0, 0.25])),
    costs.L2(X0, weights=np.array([1.0, 2.0, 0.5, 0.0, 3.0])),
    # array-like as documented: lists too (L2's gradient raised on them)
    costs.L1(X0[0].tolist(), weights=[1.0, 2.0, 0.5, 0.0, 3.0]),
    costs.L2(X0[0].tolist(), weights=[1.0, 2.0, 0.5, 0.0, 3.0]),
]
PROBA = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.35, 0.45, 0.2]])
TARGET = costs.one_hot(np.array([0, 2, 2]), 3)
OUTPUT_TERMS = [costs.HingeAttack("PN", 0.1), costs.HingeAttack("PP", 0.1),
                costs.NegLogLikelihood(), costs.LeaveClassLikelihood()]


def _differences(value, x, h=1e-6):
    grads = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[index] += h
        down[index] -= h
        grads[index] = (value(up)[index[0]] - value(down)[index[0]]) / (2 * h)
    return grads


@pytest.mark.parametrize("term", INPUT_TERMS, ids=lambda t: type(t).__name__)
def test_input_term_gradient_matches_differences(term):
    x = X0 + rng.normal(size=X0.shape)  # away from the L1 kinks
    np.testing.assert_allclose(term.gradient(x), _differences(term.value, x), rtol=1e-5,
                               atol=1e-7)


def test_input_term_values():
    x = X0 + 1.0
    np.testing.assert_allclose(costs.L1(X0).value(x), 5.0)
    np.testing.assert_allclose(costs.L2(X0).value(x), 5.0)
    mad = np.array([0.5, 1.0, 2.0, 4.0, 0.25])
    np.testing.assert_allclose(costs.L1(X0, weights=1 / mad).value(x), np.sum(1 / mad))


@pytest.mark.parametrize("term", OUTPUT_TERMS, ids=lambda t: type(t).__name__)
def test_output_term_gradient_matches_differences(term):
    np.testing.assert_allclose(term.gradient(PROBA, TARGET),
                               _differences(lambda p: term.value(p, TARGET), PROBA),
                               rtol=1e-5, atol=1e-6)


def test_output_terms_run_on_tensorflow_with_the_same_code():
    tf = pytest.importorskip("tensorflow")
    import tensorflow.experimental.numpy as tnp

    for term in OUTPUT_TERMS:
        value = term.value(tf.constant(PROBA), tf.constant(TARGET), xp=tnp)
        grad = term.gradient(tf.constant(PROBA), tf.constant(TARGET), xp=tnp)
        np.testing.assert_allclose(np.asarray(value), term.value(PROBA, TARGET), rtol=1e-6)
        np.testing.assert_allclose(np.asarray(grad), term.gradient(PROBA, TARGET), rtol=1e-6)
    for term in INPUT_TERMS[:3]:
        np.testing.assert_allclose(np.asarray(term.value(tf.constant(X0 + 1.0), xp=tnp)),
                                   term.value(X0 + 1.0), rtol=1e-6)


def test_mad_and_its_fallback():
    X = np.array([[1.0, 5.0, 3.0], [2.0, 5.0, 3.0], [3.0, 5.0, 3.0], [4.0, 5.0, 3.0],
                  [100.0, 9.0, 3.0]])
    mad = costs.median_absolute_deviation(X)
    assert mad[0] == 1.0  # |x - 3| -> [2, 1, 0, 1, 97], median 1
    assert mad[1] == pytest.approx(0.8)  # MAD 0: mean absolute deviation (4 / 5)
    assert mad[2] == 1.0  # constant: 1


# --- CEMExplainer: immutable features and the MAD distance ----------------------------------

def _explain(cem, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        return cem.explain(X)


@pytest.mark.parametrize("mode", ["PN", "PP"])
def test_immutable_features_never_move(iris, iris_model, mode):
    X, _ = iris
    free = _explain(CEMExplainer(iris_model, mode=mode, clip=(-1e3, 1e3), **FAST).fit(X),
                    X[::15])
    moved = np.abs(free.explanation - free.X)[free.found] > 0
    assert moved[:, 2].any(), "feature 2 moves when allowed to"
    cem = CEMExplainer(iris_model, mode=mode, clip=(-1e3, 1e3), immutable_features=[2],
                       **FAST).fit(X)
    exp = _explain(cem, X[::15])
    assert exp.found.any()
    # bit for bit: a PN does not add to it, a PP keeps it whole
    assert np.array_equal(exp.explanation[exp.found][:, 2], exp.X[exp.found][:, 2])


def test_immutable_features_by_name_and_mask(iris, iris_model):
    pd = pytest.importorskip("pandas")
    X, _ = iris
    frame = pd.DataFrame(X, columns=["sl", "sw", "pl", "pw"])
    by_name = CEMExplainer(iris_model, immutable_features=["pl", "pw"], **FAST).fit(frame)
    np.testing.assert_array_equal(by_name.immutable_mask_, [False, False, True, True])
    by_mask = CEMExplainer(iris_model, immutable_features=[False, True, False, False],
                           **FAST).fit(X)
    np.testing.assert_array_equal(by_mask.immutable_mask_, [False, True, False, False])


@pytest.mark.parametrize("features, match", [
    ([7], "out of range"),
    ([True, False], "boolean mask needs 4"),
    (["petal"], "X had no feature names"),
])
def test_bad_immutable_features(iris, iris_model, features, match):
    X, _ = iris
    with pytest.raises(ValueError, match=match):
        CEMExplainer(iris_model, immutable_features=features).fit(X)


def test_unknown_distance(iris, iris_model):
    X, _ = iris
    with pytest.raises(ValueError, match="'distance' parameter"):
        CEMExplainer(iris_model, distance="l3").fit(X)


def test_mad_distance_stops_favouring_the_large_scale_feature():
    """A feature on a 100x scale costs 100x more to move in raw units; MAD units level it."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    X[:, 0] *= 100.0
    y = (2 * X[:, 0] / 100.0 + X[:, 1] + X[:, 2] > 0).astype(int)
    clf = LogisticRegression(max_iter=1000).fit(X, y)
    test = X[:30]
    moved = {}
    for distance in ("elastic", "mad"):
        cem = CEMExplainer(clf, mode="PN", distance=distance, beta=0.5, no_info_val=0.0,
                           clip=(-1e4, 1e4), max_iterations=500, c_steps=6,
                           search="fista").fit(X)
        exp = _explain(cem, test)
        assert exp.found.mean() > 0.5
        moved[distance] = np.mean(np.abs(exp.explanation - exp.X)[exp.found] > 1e-9, axis=0)
    np.testing.assert_allclose(cem.mad_, costs.median_absolute_deviation(X))
    assert moved["elastic"][0] == 0  # in raw units the large-scale feature never moves
    assert moved["mad"][0] > 0.1  # in MAD units it is as cheap as the others


def test_keys_tell_array_settings_apart():
    # terms of other weights or origins shared a key (compiled functions are cached by it)
    a = costs.L1(x0=np.zeros(2), weights=np.array([1.0, 2.0]))
    b = costs.L1(x0=np.ones(2), weights=np.array([5.0, 7.0]))
    assert a.key() != b.key()
    assert a.key() == costs.L1(x0=np.zeros(2), weights=[1.0, 2.0]).key()
    assert hash(a.key()) and costs.HingeAttack("PN", 0.1).key() == \
        costs.HingeAttack("PN", 0.1).key()


@pytest.mark.parametrize("term", [costs.HingeAttack("PN", kappa=0.1), costs.NegLogLikelihood(),
                                  costs.LeaveClassLikelihood()], ids=lambda t: type(t).__name__)
def test_output_terms_refuse_class_indices_for_one_hot_targets(term):
    """Found by a user: class indices as the target were broadcast against the
    probabilities (a hinge of 1.5, a negative cross-entropy) without a word."""
    proba = np.array([[0.6, 0.3, 0.1]])
    for method in (term.value, term.gradient):
        with pytest.raises(ValueError, match=r"`target_onehot` must be one-hot rows of the "
                                             r"shape of `proba` \(1, 3\); got shape \(1,\)"):
            method(proba, np.array([2]))
    assert np.isfinite(term.value(proba, costs.one_hot([0], 3))).all()
