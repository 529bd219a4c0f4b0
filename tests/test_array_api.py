"""The batched search written once for every array library (skcem._array_api).

A softmax regression answers the optimizer in whatever arrays it is handed: numpy on the
host, or JAX arrays (immutable: every update of the batch's book-keeping makes a new array)
when the backend says the search runs there. The answers must be the host's.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from skcem._array_api import HOST, ArrayPlace, namespace, set_rows, to_numpy
from skcem._fista import SearchProblem, SolverSettings, solve
from skcem._gradients._base import Evaluation
from skcem._modes import MODES


class SoftmaxRegression:
    """The optimizer's backend for ``softmax(Z @ W + b)``, answering in the arrays it is
    handed. The model itself computes in numpy, so that only the optimizer's own steps run
    in the other library."""

    def __init__(self, coef, intercept, place=HOST):
        self.coef, self.intercept, self.place = coef, intercept, place
        self.n_model_rows = 0
        self.kinds = set()
        self.batch_sizes = set()

    def array_place(self):
        return self.place

    def _proba(self, Z):
        logits = Z @ self.coef + self.intercept
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def evaluate(self, Z_adv, Z_s, target_onehot, loss, *, with_attack_grad=True,
                 with_ae_grad=False, with_ae_loss_at_adv=False):
        self.kinds.add(type(Z_adv).__name__)
        self.batch_sizes.add(Z_adv.shape[0])
        xp = namespace(Z_s)
        proba = self._proba(to_numpy(Z_s))
        cotangent = loss.gradient(proba, to_numpy(target_onehot))
        # The softmax's Jacobian-vector product, then the linear layer's.
        inner = cotangent * proba - proba * np.sum(cotangent * proba, axis=1, keepdims=True)
        grad = inner @ self.coef.T
        return Evaluation(proba_adv=xp.asarray(self._proba(to_numpy(Z_adv))),
                          attack_grad=xp.asarray(grad) if with_attack_grad else None)

    def predict_proba(self, Z):
        return self._proba(np.asarray(Z, dtype=float))

    def predict(self, Z):
        return self.predict_proba(Z).argmax(axis=1)


@pytest.fixture(scope="module")
def iris_problem():
    X, y = load_iris(return_X_y=True)
    clf = LogisticRegression(max_iter=1000).fit(X, y)
    rows = X[::5]
    return clf, rows, dict(x0=rows, target=clf.predict(rows), n_classes=3,
                           no_info_val=X.min(axis=0), lower=X.min(axis=0),
                           upper=X.max(axis=0), kappa=0.05, l1_weight=0.1)


def test_the_search_on_jax_arrays_gives_the_hosts_answers(iris_problem):
    """Counterfactuals: the cheapest search to run eagerly on JAX, which compiles each
    operation once per shape (PNs' and PPs' book-keeping takes many shapes; the PyTorch
    tests run those on tensors)."""
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    clf, rows, constants = iris_problem
    # The next class, as a counterfactual's target.
    constants = dict(constants, target=(constants["target"] + 1) % 3)
    problem = SearchProblem(mode=MODES["CF"], **constants)
    settings = SolverSettings(max_iterations=40, c_steps=2)
    host = SoftmaxRegression(clf.coef_.T, clf.intercept_)
    expected = solve(host, problem, settings)
    with jax.enable_x64(True):  # float64, as on the host (JAX's default is float32)
        on_jax = SoftmaxRegression(clf.coef_.T, clf.intercept_,
                                   ArrayPlace(namespace(jnp.zeros(1)), jax.devices()[0],
                                              jnp.float64))
        result = solve(on_jax, problem, settings)
    assert host.kinds == {"ndarray"} and on_jax.kinds == {"ArrayImpl"}
    assert expected.found.sum() >= len(rows) // 2
    np.testing.assert_array_equal(result.found, expected.found)
    np.testing.assert_array_equal(result.explanation_class, expected.explanation_class)
    # Only the order of a few sums (the distances) may differ between the two libraries.
    np.testing.assert_allclose(result.explanation, expected.explanation, rtol=1e-9,
                               atol=1e-12)
    np.testing.assert_array_equal(result.n_iterations, expected.n_iterations)


# Early stopping and probing (warm starts): the searches whose instances drop out.
SETTLING = SolverSettings(max_iterations=60, c_steps=3, tol=1e-4, n_iter_no_change=5,
                          probe_iterations=20)


def _assert_same_search(result, expected):
    np.testing.assert_array_equal(result.found, expected.found)
    np.testing.assert_array_equal(result.explanation_class, expected.explanation_class)
    np.testing.assert_allclose(result.explanation, expected.explanation, rtol=1e-9,
                               atol=1e-12)
    np.testing.assert_allclose(result.best_c, expected.best_c, rtol=1e-12)
    np.testing.assert_array_equal(result.n_iterations, expected.n_iterations)
    np.testing.assert_array_equal(result.flat_gradient, expected.flat_gradient)


@pytest.mark.parametrize("mode", ["PN", "PP", "CF"])
def test_fixed_shapes_mask_the_instances_that_are_done(iris_problem, mode):
    """With ``fixed_shapes`` every evaluation gets the whole batch, and instances that
    stopped early or are not searched at a ``c`` are masked: the answers, iteration counts
    and best ``c`` are those of the search that drops them."""
    clf, rows, constants = iris_problem
    if mode == "CF":
        constants = dict(constants, target=(constants["target"] + 1) % 3)
    problem = SearchProblem(mode=MODES[mode], **constants)
    dropping = SoftmaxRegression(clf.coef_.T, clf.intercept_)
    expected = solve(dropping, problem, SETTLING)
    masking = SoftmaxRegression(clf.coef_.T, clf.intercept_, ArrayPlace(np, fixed_shapes=True))
    result = solve(masking, problem, SETTLING)
    assert expected.found.sum() >= len(rows) // 2
    assert len(dropping.batch_sizes) > 2  # instances did drop out
    assert masking.batch_sizes == {len(rows)}
    _assert_same_search(result, expected)


def test_a_search_with_settling_instances_on_jax_arrays_gives_the_hosts_answers(iris_problem):
    """PNs with early stopping and probing on JAX arrays: with fixed shapes each operation
    compiles once (the book-keeping of a shrinking batch compiled again at every size)."""
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    clf, rows, constants = iris_problem
    problem = SearchProblem(mode=MODES["PN"], **constants)
    expected = solve(SoftmaxRegression(clf.coef_.T, clf.intercept_), problem, SETTLING)
    with jax.enable_x64(True):
        on_jax = SoftmaxRegression(clf.coef_.T, clf.intercept_,
                                   ArrayPlace(namespace(jnp.zeros(1)), jax.devices()[0],
                                              jnp.float64, fixed_shapes=True))
        result = solve(on_jax, problem, SETTLING)
    assert on_jax.kinds == {"ArrayImpl"} and on_jax.batch_sizes == {len(rows)}
    _assert_same_search(result, expected)


def test_set_rows_updates_in_place_where_it_can():
    array = np.zeros(4)
    assert set_rows(array, np.array([1, 3]), 2.0) is array
    np.testing.assert_array_equal(array, [0, 2, 0, 2])
    jax = pytest.importorskip("jax")
    immutable = jax.numpy.zeros(4)
    updated = set_rows(immutable, jax.numpy.array([1, 3]), 2.0)
    np.testing.assert_array_equal(to_numpy(updated), [0, 2, 0, 2])
    np.testing.assert_array_equal(to_numpy(immutable), [0, 0, 0, 0])


def test_inputs_of_another_array_library_are_read_as_numpy(tmp_path):
    """A torch tensor as ``X`` (or a JAX array), with scikit-learn's ``array_api_dispatch`` on
    too: each explainer reads it as numpy, with the answers it gives the same numpy rows.
    (``array_api_dispatch`` needs ``SCIPY_ARRAY_API=1`` before scipy is imported: a fresh
    process.)"""
    pytest.importorskip("torch")
    script = tmp_path / "tensors.py"
    script.write_text(
        "import warnings\n"
        "import numpy as np, sklearn, torch\n"
        "from sklearn.datasets import load_iris\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "from skcem import (CEMExplainer, CounterfactualExplainer,\n"
        "                   GradientSimilarityExplainer)\n"
        "warnings.simplefilter('ignore')\n"
        "X, y = load_iris(return_X_y=True)\n"
        "model = LogisticRegression(max_iter=500).fit(X, y)\n"
        "for Explainer in (CEMExplainer, CounterfactualExplainer, GradientSimilarityExplainer):\n"
        "    kwargs = {} if Explainer is GradientSimilarityExplainer else {'max_iterations': 30}\n"
        "    expected = Explainer(model, **kwargs).fit(X, y).transform(X[:3])\n"
        "    for dispatch in (False, True):\n"
        "        with sklearn.config_context(array_api_dispatch=dispatch):\n"
        "            answer = Explainer(model, **kwargs).fit(torch.tensor(X), torch.tensor(y))\\\n"
        "                .transform(torch.tensor(X[:3]))\n"
        "        assert isinstance(answer, np.ndarray), type(answer)\n"
        "        np.testing.assert_array_equal(answer, expected)\n"
        "print('ok')\n")
    _run_with_array_api(script)


def _run_with_array_api(script):
    """Run ``script`` with scipy's array API support on (it must be set before scipy is
    imported: a fresh process); it prints "ok" when its checks hold."""
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          env={**os.environ, "SCIPY_ARRAY_API": "1"}, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_a_model_fitted_on_torch_tensors_under_array_api_dispatch_is_explained(tmp_path):
    """Found by a new user: a LinearDiscriminantAnalysis fitted on torch tensors with
    set_config(array_api_dispatch=True) failed in scikit-learn's words (the explainers ask
    about numpy rows); skcem explains a copy of it holding numpy arrays."""
    pytest.importorskip("torch")
    script = tmp_path / "dispatch.py"
    script.write_text(
        "import numpy as np, sklearn, torch, warnings\n"
        "from sklearn.datasets import load_wine\n"
        "from sklearn.discriminant_analysis import LinearDiscriminantAnalysis\n"
        "from skcem import CounterfactualExplainer\n"
        "X, y = load_wine(return_X_y=True)\n"
        "X = (X - X.mean(0)) / X.std(0)\n"
        "sklearn.set_config(array_api_dispatch=True)\n"
        "Xt, yt = torch.asarray(X), torch.asarray(y)\n"
        "model = LinearDiscriminantAnalysis().fit(Xt, yt)\n"
        "warnings.simplefilter('ignore')\n"
        "exp = CounterfactualExplainer(model).fit(Xt).explain(Xt[:5])\n"
        "assert exp.found.all()\n"
        "after = model.predict(torch.asarray(exp.explanation)).numpy()\n"
        "assert np.all(after != model.predict(Xt[:5]).numpy())\n"
        "assert isinstance(model.coef_, torch.Tensor)  # the user's model as it was\n"
        "print('ok')\n")
    _run_with_array_api(script)


class _FlatBelow(SoftmaxRegression):
    """A softmax regression whose gradient vanishes where the first feature is below 5.5
    (as a discretized model's finite differences do almost everywhere)."""

    def evaluate(self, Z_adv, Z_s, target_onehot, loss, **kwargs):
        evaluation = super().evaluate(Z_adv, Z_s, target_onehot, loss, **kwargs)
        if evaluation.attack_grad is not None:
            evaluation.attack_grad[Z_s[:, 0] < 5.5] = 0.0
        return evaluation


def test_instances_without_a_gradient_at_their_start_are_not_searched(iris_problem):
    """Found by a user: search="auto" ran the finite-difference search for 10 s on a row
    whose gradient vanished, which no c can move."""
    clf, rows, constants = iris_problem
    problem = SearchProblem(mode=MODES["PN"], **constants)
    settings = SolverSettings(max_iterations=40, c_steps=2)
    flat = rows[:, 0] < 5.5
    assert 0 < flat.sum() < len(rows)
    plain = solve(_FlatBelow(clf.coef_.T, clf.intercept_), problem, settings)
    skipping = solve(_FlatBelow(clf.coef_.T, clf.intercept_), problem,
                     SolverSettings(max_iterations=40, c_steps=2, skip_flat_starts=True))
    assert np.all(plain.n_iterations[flat] > 0) and not plain.found[flat].any()
    assert np.all(skipping.n_iterations[flat] == 0) and not skipping.found[flat].any()
    assert skipping.flat_gradient[flat].all()
    for name in ("found", "n_iterations", "explanation", "distance"):
        np.testing.assert_array_equal(getattr(skipping, name)[~flat],
                                      getattr(plain, name)[~flat])
