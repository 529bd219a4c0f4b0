import numpy as np
import pytest

from skcem._modes import MODES
from skcem.costs import HingeAttack, one_hot
from skcem._fista import SearchProblem, _evaluate
from skcem._gradients import NumericalAutoencoder, NumericalBackend

from .conftest import softmax_model_gradient


def test_numerical_vjp_matches_logistic_regression_gradient(iris, iris_model):
    X, _ = iris
    rng = np.random.default_rng(0)
    cotangent = rng.normal(size=(10, 3))
    backend = NumericalBackend(iris_model.predict_proba, eps=1e-4)
    numeric = backend.proba_vjp(X[:10], cotangent)
    analytic = softmax_model_gradient(iris_model, X[:10], cotangent)
    np.testing.assert_allclose(numeric, analytic, rtol=1e-5, atol=1e-8)
    # one call for all 2 * n * d shifted rows of the batch
    assert backend.n_model_rows == 2 * 10 * X.shape[1]


def test_numerical_vjp_accepts_per_feature_steps(iris, iris_model):
    X, _ = iris
    eps = np.array([1e-4, 2e-4, 5e-5, 1e-4])
    cotangent = np.tile([1.0, -1.0, 0.0], (5, 1))
    numeric = NumericalBackend(iris_model.predict_proba, eps=eps).proba_vjp(X[:5], cotangent)
    np.testing.assert_allclose(numeric, softmax_model_gradient(iris_model, X[:5], cotangent),
                               rtol=1e-5, atol=1e-8)


def test_hinge_derivative_matches_differences():
    proba = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.35, 0.45, 0.2]])
    target = one_hot(np.array([0, 1, 2]), 3)
    for mode in ("PN", "PP"):
        hinge = HingeAttack(mode, kappa=0.05)
        loss, dloss = hinge.value(proba, target), hinge.gradient(proba, target)
        h = 1e-6
        for k in range(3):
            shifted = proba.copy()
            shifted[:, k] += h
            numeric = (hinge.value(shifted, target) - loss) / h
            np.testing.assert_allclose(dloss[:, k], numeric, atol=1e-4)


@pytest.mark.parametrize("mode", ["PN", "PP"])
def test_attack_gradient_is_gradient_of_attack_term_wrt_iterate(iris, iris_model, mode):
    """grad_a f(z(a)) by the optimizer equals differences of f(z(a)) along a (PP: dz/da=-1)."""
    X, _ = iris
    rows = np.array([0, 20, 120])
    x0 = X[rows]
    target = iris_model.predict(x0)
    # iterates where the hinge is active: a PN at x0 (kappa keeps it active), a PP that has
    # removed most of x0 (the model sees mostly background)
    no_info = np.median(X, axis=0)
    problem = SearchProblem(x0=x0, target=target, n_classes=3, mode=MODES[mode],
                            no_info_val=no_info, lower=X.min(0), upper=X.max(0), kappa=0.3,
                            l1_weight=0.1)
    adv = x0 + 0.01 if mode == "PN" else 0.9 * x0 + 0.1 * no_info
    backend = NumericalBackend(iris_model.predict_proba, eps=1e-5)
    grad = _evaluate(backend, problem, x0, adv, np.arange(len(rows)),
                     with_attack_grad=True).attack_grad

    def f(a):
        z = MODES[mode].model_input(a, x0, problem.background)
        return HingeAttack(mode, 0.3).value(iris_model.predict_proba(z), one_hot(target, 3))

    assert np.all(f(adv) > 0), "the test point must have an active hinge"
    h = 1e-6
    numeric = np.stack([(f(adv + h * e) - f(adv - h * e)) / (2 * h)
                        for e in np.eye(x0.shape[1])], axis=1)
    np.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-7)


def test_autoencoder_gradient_matches_differences():
    rng = np.random.default_rng(1)
    W = rng.normal(size=(4, 4)) * 0.5

    def autoencoder(Z):
        return np.tanh(Z @ W)

    Z = rng.normal(size=(3, 4))
    loss, grad = NumericalAutoencoder(autoencoder, eps=1e-5)(Z)
    np.testing.assert_allclose(loss, np.sum((autoencoder(Z) - Z) ** 2, axis=1))
    h = 1e-6
    numeric = np.stack([
        (np.sum((autoencoder(Z + h * e) - Z - h * e) ** 2, 1)
         - np.sum((autoencoder(Z - h * e) - Z + h * e) ** 2, 1)) / (2 * h)
        for e in np.eye(4)], axis=1)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-7)
