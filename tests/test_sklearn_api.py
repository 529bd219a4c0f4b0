import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from skcem import CEMExplainer, ExplanationNotFoundWarning, GradientSimilarityExplainer

from .conftest import FAST

SMALL = dict(max_iterations=30, c_steps=2)


@parametrize_with_checks([
    CEMExplainer(**SMALL),
    CEMExplainer(mode="PP", **SMALL),
    CEMExplainer(LogisticRegression(), tol=1e-3, **SMALL),
])
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        check(estimator)


@pytest.mark.parametrize("explainer", ["CEMExplainer", "CounterfactualExplainer"])
def test_the_gradient_free_search_writes_no_fitted_state_at_explain(explainer):
    """Found by a user: on a forest, transform added a cache of the trees to the explainer,
    and rows with missing values wrote into a fitted array, which failed after a read-only
    memory-mapped load (scikit-learn's check_dict_unchanged and check_estimators_pickle)."""
    import skcem
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.utils.estimator_checks import check_dict_unchanged, check_estimators_pickle

    estimator = getattr(skcem, explainer)(RandomForestClassifier(10, random_state=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_dict_unchanged(explainer, estimator)
        check_estimators_pickle(explainer, estimator, readonly_memmap=True)
    # the trees as the exact search reads them stay out of the pickle (they weighed as much
    # as the forest, sent again to n_jobs's workers with every batch), read again on load
    X = np.random.default_rng(0).normal(size=(60, 3))
    y = (X[:, 0] > 0).astype(int)
    fitted = getattr(skcem, explainer)(RandomForestClassifier(10, random_state=0).fit(X, y))
    fitted.fit(X)
    assert fitted._exact_trees() is not None and "_fallback_trees" not in fitted.__getstate__()
    loaded = pickle.loads(pickle.dumps(fitted))
    assert loaded._exact_trees() is not None


def test_clone_and_get_set_params(iris_model):
    cem = CEMExplainer(iris_model, mode="PP", beta=0.2, kappa=0.1, c_init=3.0)
    twin = clone(cem)
    assert twin.get_params()["beta"] == 0.2 and twin.get_params()["mode"] == "PP"
    twin.set_params(beta=0.5)
    assert cem.beta == 0.2 and twin.beta == 0.5


def test_pickle_round_trip_gives_same_explanations(iris, iris_model):
    X, _ = iris
    cem = CEMExplainer(iris_model, mode="PP", **FAST).fit(X)
    restored = pickle.loads(pickle.dumps(cem))
    np.testing.assert_array_equal(restored.no_info_val_, cem.no_info_val_)
    np.testing.assert_allclose(restored.transform(X[:3]), cem.transform(X[:3]))


def test_pipeline_with_scaler(iris):
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    pipe = Pipeline([("scale", StandardScaler()),
                     ("cem", CEMExplainer(mode="PP", **FAST))]).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        pp = pipe.transform(X[:5])
    cem = pipe.named_steps["cem"]
    assert pp.shape == (5, 4)
    # the PP lives in the scaled space and keeps the class of the scaled instance
    scaled = pipe.named_steps["scale"].transform(X[:5])
    found = ~np.isnan(pp).any(axis=1)
    assert found.sum() >= 4
    np.testing.assert_array_equal(cem.estimator_.predict(pp[found]),
                                  cem.estimator_.predict(scaled[found]))


def test_grid_search_over_beta_kappa_c_init(iris, iris_model):
    X, _ = iris
    grid = GridSearchCV(CEMExplainer(iris_model, mode="PP", max_iterations=100, c_steps=3),
                        {"beta": [0.01, 0.3], "kappa": [0.0, 0.1], "c_init": [1.0, 10.0]}, cv=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        grid.fit(X[::5])
    assert set(grid.best_params_) == {"beta", "kappa", "c_init"}
    scores = grid.cv_results_["mean_test_score"]
    assert np.all((scores >= 0) & (scores <= 1)) and np.ptp(scores) > 0


def test_feature_names_and_pandas_output(iris, iris_model):
    pd = pytest.importorskip("pandas")
    X, _ = iris
    frame = pd.DataFrame(X, columns=["sl", "sw", "pl", "pw"])
    cem = CEMExplainer(iris_model, mode="PP", **FAST).fit(frame)
    np.testing.assert_array_equal(cem.get_feature_names_out(), ["sl", "sw", "pl", "pw"])
    cem.set_output(transform="pandas")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = cem.transform(frame.iloc[:2])
    assert list(out.columns) == ["sl", "sw", "pl", "pw"]


def test_similarity_scores_follow_pandas_output(iris, iris_model):
    pd = pytest.importorskip("pandas")
    X, y = iris
    frame = pd.DataFrame(X, columns=["sl", "sw", "pl", "pw"])
    explainer = GradientSimilarityExplainer(iris_model).fit(frame.iloc[::10], y[::10])
    names = explainer.get_feature_names_out()
    assert len(names) == 15 and names[0] == "gradientsimilarityexplainer0"
    plain = explainer.transform(frame.iloc[[3, 70]])
    from sklearn import config_context

    with config_context(transform_output="pandas"):
        out = explainer.transform(frame.iloc[[3, 70]])
    assert list(out.index) == [3, 70] and list(out.columns) == list(names)
    np.testing.assert_array_equal(out.to_numpy(), plain)


def test_clone_keeps_the_fitted_model_being_explained(iris, iris_model):
    cem = CEMExplainer(iris_model)
    assert clone(cem).estimator is iris_model
    unfitted = LogisticRegression()
    twin = clone(CEMExplainer(unfitted))
    assert twin.estimator is not unfitted and twin.estimator.get_params() == unfitted.get_params()


def test_nested_parameters_of_a_fitted_model_are_refused_not_applied(iris, iris_model):
    C = iris_model.C
    for explainer in (CEMExplainer(iris_model), GradientSimilarityExplainer(iris_model)):
        with pytest.raises(ValueError, match="estimator__C.*fitted model"):
            clone(explainer).set_params(estimator__C=1e-4)
        assert iris_model.C == C  # the user's model is untouched
        # ... but the values it holds change nothing: get_params' round trip (found by a
        # new user: refused for every explainer of a fitted model)
        params = explainer.get_params(deep=True)
        assert "estimator__C" in params
        clone(explainer).set_params(**params)
        assert clone(explainer).set_params(**{**params, "verbose": 1}).verbose == 1
        with pytest.raises(ValueError, match=r"\['estimator__C'\] on `estimator`"):
            clone(explainer).set_params(**{**params, "estimator__C": 2 * C})
    # An unfitted estimator is fitted by the explainer: its nested parameters apply.
    X, y = iris
    cem = CEMExplainer(LogisticRegression(max_iter=1000))
    cem.set_params(estimator__C=1e-4).fit(X, y)
    assert cem.estimator_.C == 1e-4


def test_wrapped_models_are_read_through_their_wrappers():
    # A FrozenEstimator (or a threshold classifier's probabilities) hid the model inside:
    # trees lost their search, linear models their exact gradients, the similarity refused.
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.frozen import FrozenEstimator
    from sklearn.model_selection import FixedThresholdClassifier

    from skcem import CounterfactualExplainer

    X, y = load_breast_cancer(return_X_y=True)
    rows = X[::50]
    trees = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(X, y)
    bare = CounterfactualExplainer(trees, distance="mad").fit(X)
    frozen = CounterfactualExplainer(FrozenEstimator(trees), distance="mad").fit(X)
    assert bare.search_ == frozen.search_ == "neighbors"
    np.testing.assert_array_equal(frozen.explain(rows).explanation,
                                  bare.explain(rows).explanation)

    scaled = StandardScaler().fit_transform(X)
    linear = LogisticRegression(max_iter=1000).fit(scaled, y)
    for model in (FrozenEstimator(linear),
                  FixedThresholdClassifier(linear, threshold=0.7).fit(scaled, y)):
        cem = CEMExplainer(model, mode="PN", **FAST).fit(scaled)
        assert type(cem._backend).__name__ == "ExactBackend"
        exp = cem.explain(scaled[::50])
        assert exp.found.any()
        assert np.all(model.predict(exp.explanation[exp.found]) != exp.X_pred[exp.found])

    scores = [GradientSimilarityExplainer(model).fit(scaled[:100], y[:100])
              .transform(scaled[::50]) for model in (linear, FrozenEstimator(linear))]
    np.testing.assert_array_equal(scores[0], scores[1])


def test_parameters_read_by_fit_changed_after_fit_ask_for_fit_again(iris, iris_model):
    # immutable_features changed after fit were silently ignored; distance="mad" crashed
    from sklearn.exceptions import NotFittedError

    from skcem import CounterfactualExplainer

    X, y = iris
    cf = CounterfactualExplainer(iris_model, **FAST).fit(X)
    cf.set_params(n_counterfactuals=2).explain(X[:2])  # read where it acts: no refit needed
    for name, value in (("immutable_features", [2, 3]), ("distance", "mad"),
                        ("feature_range", (0.0, 1.0))):
        cf.set_params(**{name: value})
        with pytest.raises(NotFittedError, match=f"{name} changed since fit.*Call fit again"):
            cf.explain(X[:2])
        cf.fit(X)
    exp = cf.explain(X[::30])
    assert np.all(np.abs(exp.explanation - exp.X)[exp.found][:, 2:] < 1e-12)  # immutable

    sim = GradientSimilarityExplainer(iris_model).fit(X, y)
    sim.set_params(sim_fn="grad_cos").transform(X[:2])
    sim.set_params(n_components=2)
    with pytest.raises(NotFittedError, match="n_components changed since fit"):
        sim.transform(X[:2])


def test_fit_parameters_reach_the_model_fitted_here(iris, iris_model):
    # sample_weight was a TypeError naming a private class; metadata routing had no route
    import sklearn

    X, y = iris
    weights = np.where(y == 2, 5.0, 1.0)
    expected = LogisticRegression(max_iter=1000).fit(X, y, sample_weight=weights).coef_
    for explainer in (CEMExplainer(LogisticRegression(max_iter=1000), **FAST),
                      GradientSimilarityExplainer(LogisticRegression(max_iter=1000))):
        fitted = explainer.fit(X, y, sample_weight=weights)
        np.testing.assert_allclose(fitted.estimator_.coef_, expected)
        with pytest.raises(ValueError, match=r"\['sample_weight'\] would fit `estimator`, but "
                                             "it is fitted"):
            clone(explainer).set_params(estimator=iris_model).fit(X, y, sample_weight=weights)
    # alibi passes no_info_type to fit; here it is the explainer's parameter
    with pytest.raises(ValueError, match=r"such as alibi's fit\(no_info_type=\.\.\.\), are "
                                         r"parameters of CEMExplainer\(\.\.\.\)"):
        CEMExplainer(iris_model).fit(X, no_info_type="mean")
    with sklearn.config_context(enable_metadata_routing=True):
        model = LogisticRegression(max_iter=1000).set_fit_request(sample_weight=True)
        search = GridSearchCV(CEMExplainer(model, **FAST), {"beta": [0.1]}, cv=2)
        search.fit(X, y, sample_weight=weights)
        np.testing.assert_allclose(search.best_estimator_.estimator_.coef_, expected)
        with pytest.raises(ValueError, match="sample_weight"):  # not requested: scikit-learn's
            CEMExplainer(LogisticRegression(max_iter=1000), **FAST).fit(
                X, y, sample_weight=weights)


def test_a_pickle_of_another_skcem_version_is_pointed_out(iris, iris_model, monkeypatch):
    """Found by a user: scikit-learn records its version only in its own classes' pickles,
    so a fitted explainer saved by another skcem release loaded without a word."""
    import pickle
    import re

    import skcem
    from skcem import GradientSimilarityExplainer, InconsistentVersionWarning

    X, y = iris
    for explainer in (CEMExplainer(iris_model, max_iterations=50).fit(X),
                      GradientSimilarityExplainer(iris_model).fit(X, y)):
        saved = pickle.dumps(explainer)
        with warnings.catch_warnings():
            warnings.simplefilter("error", InconsistentVersionWarning)
            same = pickle.loads(saved)  # the same version: not a word
        assert not hasattr(same, "_skcem_version")
        saved_by = re.escape(skcem.__version__)
        monkeypatch.setattr(skcem, "__version__", "99.0")
        with pytest.warns(InconsistentVersionWarning, match=rf"pickled by skcem {saved_by} "
                                                            r"and is loaded by skcem 99\.0"):
            pickle.loads(saved)
        monkeypatch.undo()
