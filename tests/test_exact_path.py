"""The explainers on exact scikit-learn gradients: the numerical path's answers, fewer rows."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits, load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skcem import CEMExplainer, CounterfactualExplainer, ExplanationNotFoundWarning
from skcem._gradients import ExactBackend, NumericalBackend

FAST = dict(max_iterations=300, c_steps=5)


def _explain(explainer, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        return explainer.explain(X)


def _iris():
    X, y = load_iris(return_X_y=True)
    return X, make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y), {}


# Median L1 of the exact path against the numerical one: equal to 1% on smooth models. On a
# ReLU network central differences straddle the kinks and the searches part: on 12 digits the
# exact path's medians were 16% smaller or 25% larger, by the sample; on 60, 1.6% (PN) and
# 3% (PP) smaller. There it must not be larger (worse) by more than 5%.
L1_RTOL = {"iris": 0.01, "cancer": 0.01, "digits": None}


def _cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return X, make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y), {}


def _digits():
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    model = MLPClassifier((32,), max_iter=400, random_state=0).fit(X[:1200], y[:1200])
    return X, model, {"no_info_val": 0.0, "feature_range": (0.0, 1.0)}


@pytest.mark.parametrize("setting", [_iris, _cancer, _digits], ids=["iris", "cancer", "digits"])
@pytest.mark.parametrize("mode", ["PN", "PP"])
def test_exact_path_gives_the_numerical_paths_answers(setting, mode):
    rtol = L1_RTOL[setting.__name__.strip("_")]
    X, model, params = setting()
    # 12 rows of a smooth model; 60 of the ReLU network, whose searches part at the kinks.
    n_rows = 60 if setting is _digits else 12
    rows = X[::max(1, len(X) // n_rows)][:n_rows]
    answers = {}
    for gradient in ("exact", "numerical"):
        # The gradient search alone: both paths' gradients compared, not what "auto" adds.
        cem = CEMExplainer(model, mode=mode, gradient=gradient, clip=(-1e3, 1e3),
                           search="fista", **params, **FAST).fit(X)
        answers[gradient] = _explain(cem, rows)
    exact, numerical = answers["exact"], answers["numerical"]
    assert isinstance(cem._backend, NumericalBackend) and not isinstance(cem._backend,
                                                                         ExactBackend)
    assert exact.found.sum() >= numerical.found.sum() >= 6
    both = exact.found & numerical.found
    l1 = {k: np.median(np.abs(a.perturbation[both]).sum(axis=1)) for k, a in answers.items()}
    if rtol is None:
        assert l1["exact"] <= 1.05 * l1["numerical"]
    else:
        assert l1["exact"] == pytest.approx(l1["numerical"], rel=rtol)
    assert exact.meta["n_model_rows"] < numerical.meta["n_model_rows"] / 2


def test_exact_is_the_default_where_supported_and_counterfactuals_use_it():
    X, model, _ = _iris()
    assert isinstance(CEMExplainer(model).fit(X)._backend, ExactBackend)
    cf = CounterfactualExplainer(model, **FAST).fit(X)
    assert isinstance(cf._backend, ExactBackend)
    exp = _explain(cf, X[::30])
    assert exp.found.all()
    np.testing.assert_array_equal(model.predict(exp.explanation) != model.predict(X[::30]), True)


def test_exact_on_an_unsupported_step_names_it():
    X, y = load_iris(return_X_y=True)
    forest = make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=5)).fit(X, y)
    with pytest.raises(TypeError, match="RandomForestClassifier"):
        CEMExplainer(forest, gradient="exact").fit(X)
    assert not isinstance(CEMExplainer(forest).fit(X)._backend, ExactBackend)


@pytest.mark.parametrize("setting", [_iris, _digits], ids=["iris", "digits"])
@pytest.mark.parametrize("mode", ["PN", "PP"])
def test_search_probabilities_from_the_compiled_model_give_the_same_answers(setting, mode):
    X, model, params = setting()
    cem = CEMExplainer(model, mode=mode, batch_size=8, max_iterations=100, c_steps=3,
                       **params).fit(X)
    rows = X[::max(1, len(X) // 16)][:16]
    compiled = _explain(cem, rows)
    # The estimator's own predict_proba at every iteration, as the numerical path asks it.
    cem._backend.vjp_is_predict_proba = False
    estimator = _explain(cem, rows)
    np.testing.assert_array_equal(compiled.explanation, estimator.explanation)
    np.testing.assert_array_equal(compiled.explanation_proba, estimator.explanation_proba)
    assert compiled.meta == estimator.meta


def test_the_search_does_not_call_the_estimators_predict_proba_at_every_iteration():
    X, model, _ = _iris()
    calls = []
    predict_proba = model.predict_proba

    def counting(Z):
        calls.append(len(Z))
        return predict_proba(Z)

    model.predict_proba = counting  # the instance's, so the compiled model is unchanged
    cem = CEMExplainer(model, mode="PN", max_iterations=50, c_steps=2, search="fista").fit(X)
    del calls[:]
    _explain(cem, X[:10])
    assert isinstance(cem._backend, ExactBackend)
    # the final answers' checks, and those of their rounding to iris's one decimal
    assert 0 < len(calls) <= 4
