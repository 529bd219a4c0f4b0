import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.svm import SVC

from skcem import CEMExplainer


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_X_is_rejected_in_fit_and_transform(iris, iris_model, bad):
    X, _ = iris
    X_bad = X[:5].copy()
    X_bad[2, 1] = bad
    with pytest.raises(ValueError, match="Input X contains"):
        CEMExplainer(iris_model).fit(X_bad)
    cem = CEMExplainer(iris_model).fit(X)
    with pytest.raises(ValueError, match="Input X contains"):
        cem.transform(X_bad)
    assert np.isnan(X_bad[2, 1]) or np.isinf(X_bad[2, 1])  # not mutated


def test_wrong_number_of_features(iris, iris_model):
    X, _ = iris
    cem = CEMExplainer(iris_model).fit(X)
    with pytest.raises(ValueError, match="X has 3 features, but CEMExplainer is expecting 4"):
        cem.explain(X[:2, :3])


def test_one_dimensional_and_empty_X(iris, iris_model):
    X, _ = iris
    with pytest.raises(ValueError, match="Expected 2D array"):
        CEMExplainer(iris_model).fit(X[0])
    with pytest.raises(ValueError, match="0 sample"):
        CEMExplainer(iris_model).fit(X[:0])
    cem = CEMExplainer(iris_model).fit(X)
    with pytest.raises(ValueError, match="0 sample"):
        cem.transform(X[:0])


def test_estimator_without_predict_proba(iris):
    X, y = iris
    with pytest.raises(ValueError, match="'estimator' parameter of CEMExplainer must be"):
        CEMExplainer(SVC().fit(X, y)).fit(X)


@pytest.mark.parametrize("output, message", [
    (lambda Z: np.ones((len(Z), 3)), "sum to 1"),
    (lambda Z: np.full((len(Z), 2), [1.5, -0.5]), r"in \[0, 1\]"),
    (lambda Z: np.full((len(Z), 2), np.nan), r"in \[0, 1\]"),
    (lambda Z: np.ones(len(Z)), "shape"),
])
def test_predict_proba_must_return_probabilities(iris, output, message):
    X, _ = iris
    with pytest.raises(ValueError, match=f"estimator.predict_proba.*{message}"):
        CEMExplainer(output).fit(X)


@pytest.mark.parametrize("params, match", [
    ({"mode": "XX"}, "'mode' parameter"),
    ({"no_info_type": "mode"}, "'no_info_type' parameter"),
    ({"beta": -0.1}, "'beta' parameter"),
    ({"kappa": -1.0}, "'kappa' parameter"),
    ({"gamma": -1.0}, "'gamma' parameter"),
    ({"max_iterations": 0}, "'max_iterations' parameter"),
    ({"c_init": 0.0}, "'c_init' parameter"),
    ({"eps": (1e-3, 0.0)}, "`eps` must be > 0"),
    ({"eps": (-1e-3, 1e-3)}, "`eps` must be > 0"),
    ({"eps": (1e-3, [1e-3, 1e-3])}, "`eps` must be a scalar or have one value per feature"),
    ({"clip": (1.0, -1.0)}, "`clip` must be"),
    ({"feature_range": (1.0, -1.0)}, "`feature_range` needs min <= max"),
    ({"feature_range": (np.zeros(4), np.array([1, 1, -1, 1]))}, "feature 2 has min"),
    ({"feature_range": (0.0, 1.0, 2.0)}, "`feature_range` must be a pair"),
    ({"no_info_val": [0.0, 1.0]}, "`no_info_val` must be a scalar or have one value"),
    ({"gamma": 1.0}, "`gamma` > 0 needs an `autoencoder`"),
])
def test_bad_parameters_name_the_parameter(iris, iris_model, params, match):
    X, _ = iris
    with pytest.raises(ValueError, match=match):
        CEMExplainer(iris_model, **params).fit(X)


def test_y_needed_only_to_fit_a_classifier(iris):
    X, y = iris
    with pytest.raises(ValueError, match="requires y to be passed"):
        CEMExplainer().fit(X)
    assert CEMExplainer(max_iterations=5).fit(X, y).classes_.tolist() == [0, 1, 2]


def test_transform_before_fit(iris):
    X, _ = iris
    with pytest.raises(NotFittedError):
        CEMExplainer().transform(X)


def test_y_of_wrong_length_in_explain(iris, iris_model):
    X, _ = iris
    cem = CEMExplainer(iris_model).fit(X)
    with pytest.raises(ValueError, match=r"`y` must have shape \(3,\)"):
        cem.explain(X[:3], y=[0, 1])
