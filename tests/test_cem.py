import json
import warnings

import numpy as np
import pytest

from skcem import CEMExplainer, ExplanationNotFoundWarning, TargetWarning
from skcem import metrics

from .conftest import FAST


def _moved(exp):
    return np.abs(exp.explanation - exp.X) > 1e-10


def test_pn_changes_class_and_only_adds(digits, digits_model, digits_test):
    X, _ = digits
    cem = CEMExplainer(digits_model, mode="PN", **FAST).fit(X[:1200])
    exp = cem.explain(digits_test)
    assert exp.found.mean() >= 0.9
    found = exp.found
    pn_pred = digits_model.predict(exp.PN[found])
    np.testing.assert_array_equal(pn_pred, exp.explanation_pred[found].astype(int))
    assert np.all(pn_pred != exp.X_pred[found])
    v = cem.no_info_val_
    moved = _moved(exp)[found]
    away = np.abs(exp.PN[found] - v) > np.abs(exp.X[found] - v)
    assert moved.any()
    assert np.all(away[moved]), "a PN feature moved towards the no-information value"


def test_pp_keeps_class_and_only_removes(digits, digits_model, digits_test):
    X, _ = digits
    cem = CEMExplainer(digits_model, mode="PP", **FAST).fit(X[:1200])
    exp = cem.explain(digits_test)
    assert exp.found.mean() >= 0.9
    found = exp.found
    pp, x0 = exp.PP[found], exp.X[found]
    np.testing.assert_array_equal(digits_model.predict(pp), exp.X_pred[found])
    v = exp.background
    # every feature lies between the background and the original: a part of x0
    assert np.all(np.abs(pp - v) <= np.abs(x0 - v) + 1e-12)
    assert np.all((pp - v) * (x0 - v) >= -1e-12)
    # and a PP is a small part: most features are removed entirely
    assert np.median(metrics.n_changed(exp)[found]) < 0.5 * X.shape[1]


def test_pp_found_on_iris_black_box(iris, iris_model):
    """The reference finds no black-box PP on iris; the right PP gradient does."""
    X, _ = iris
    cem = CEMExplainer(iris_model, mode="PP", **FAST).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        exp = cem.explain(X[::10])
    assert exp.found.mean() >= 0.8
    np.testing.assert_array_equal(iris_model.predict(exp.PP[exp.found]), exp.X_pred[exp.found])


def test_feature_range_is_respected(iris, iris_model):
    X, _ = iris
    lower, upper = X.min(0) + 0.3, X.max(0) - 0.3
    cem = CEMExplainer(iris_model, mode="PN", feature_range=(lower, upper), clip=(-1e3, 1e3),
                       **FAST).fit(X)
    inside = np.all((X >= lower) & (X <= upper), axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        exp = cem.explain(X[inside][::3])
    assert exp.found.any()
    pn = exp.PN[exp.found]
    assert np.all(pn >= lower - 1e-12) and np.all(pn <= upper + 1e-12)


def test_scalar_feature_range_and_no_info_val(digits, digits_model, digits_test):
    X, _ = digits
    cem = CEMExplainer(digits_model, mode="PN", feature_range=(0.0, 0.8), no_info_val=0.0,
                       **FAST).fit(X[:200])
    np.testing.assert_array_equal(cem.no_info_val_, np.zeros(64))
    np.testing.assert_array_equal(cem.feature_range_[1], np.full(64, 0.8))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        exp = cem.explain(digits_test[:4])
    moved = _moved(exp)
    assert np.all(exp.PN[moved] <= 0.8 + 1e-12)


def test_larger_beta_gives_sparser_answers(digits, digits_model):
    # A mean over 100 rows: one row's search is chaotic (another CPU's rounding sent a
    # median over 12 rows from 13 to 12 features for both betas); over these rows the means
    # are 13.6-14.6 and 10.3-11.2 features whatever rounding noise the rows are given.
    X, _ = digits
    l0 = {}
    for beta in (0.01, 0.5):
        cem = CEMExplainer(digits_model, mode="PN", beta=beta, search="fista",
                           **FAST).fit(X[:1200])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExplanationNotFoundWarning)
            exp = cem.explain(X[1200:1300])
        l0[beta] = metrics.n_changed(exp)
    both = np.isfinite(l0[0.01]) & np.isfinite(l0[0.5])
    assert both.sum() >= 70
    assert l0[0.5][both].mean() < l0[0.01][both].mean() - 1


def test_batch_equals_one_by_one(iris, iris_model):
    X, _ = iris
    params = dict(mode="PN", max_iterations=150, c_steps=4, clip=(-1e3, 1e3))
    rows = X[[5, 55, 105, 140]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        together = CEMExplainer(iris_model, batch_size=4, **params).fit(X).explain(rows)
        alone = CEMExplainer(iris_model, batch_size=1, **params).fit(X).explain(rows)
    np.testing.assert_array_equal(together.found, alone.found)
    np.testing.assert_allclose(together.explanation, alone.explanation, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(together.c, alone.c)


def test_not_found_gives_nan_rows_mask_and_warning(iris, iris_model):
    X, _ = iris
    # a tiny attack weight, one c-step and a few iterations cannot change a setosa's class
    # The gradient search alone ("auto" would complete its answers from the training rows).
    cem = CEMExplainer(iris_model, mode="PN", c_init=1e-3, c_steps=1, max_iterations=5,
                       search="fista").fit(X)
    with pytest.warns(ExplanationNotFoundWarning,
                      match="no PN for 3 of 3.*wider clip.*search=.neighbors"):
        out = cem.transform(X[:3])
    assert np.all(np.isnan(out))
    with pytest.warns(ExplanationNotFoundWarning):
        exp = cem.explain(X[:3])
    assert not exp.found.any()
    assert cem.score(X[:3]) == 0.0


def test_explanation_is_json_serialisable(iris, iris_model):
    X, _ = iris
    cem = CEMExplainer(iris_model, mode="PP", **FAST).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        exp = cem.explain(X[:3])
    data = json.loads(exp.to_json())
    assert data["mode"] == "PP"
    assert len(data["explanation"]) == 3 and len(data["found"]) == 3
    assert data["X_pred"] == exp.X_pred.tolist()
    with pytest.raises(AttributeError, match="PPs, not PNs"):
        exp.PN


def test_explain_against_given_labels(iris, iris_model):
    X, _ = iris
    cem = CEMExplainer(iris_model, mode="PP", **FAST).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        exp = cem.explain(X[:2], y=[1, 1])
    np.testing.assert_array_equal(exp.X_pred, [1, 1])
    assert np.all(exp.explanation_pred[exp.found] == 1)
    with pytest.raises(ValueError, match="`y` holds labels"):
        cem.explain(X[:2], y=[1, 7])


def test_inputs_are_not_mutated(iris, iris_model):
    X, _ = iris
    X_fit, X_exp = X.copy(), X[:4].copy()
    lower, upper = X.min(0), X.max(0)
    bounds = (lower.copy(), upper.copy())
    cem = CEMExplainer(iris_model, feature_range=bounds, no_info_val=np.zeros(4), **FAST)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        cem.fit(X_fit).transform(X_exp)
    np.testing.assert_array_equal(X_fit, X)
    np.testing.assert_array_equal(X_exp, X[:4])
    np.testing.assert_array_equal(bounds[0], lower)
    np.testing.assert_array_equal(cem.no_info_val, np.zeros(4))


def test_callable_predict_proba_is_accepted(iris, iris_model):
    X, _ = iris
    cem = CEMExplainer(iris_model.predict_proba, mode="PP", **FAST).fit(X)
    np.testing.assert_array_equal(cem.classes_, [0, 1, 2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        exp = cem.explain(X[:2])
    assert exp.found.all()


def test_unfitted_estimator_is_cloned_and_fitted(iris):
    from sklearn.linear_model import LogisticRegression

    X, y = iris
    unfitted = LogisticRegression(max_iter=500)
    cem = CEMExplainer(unfitted, **FAST).fit(X, y)
    assert cem.estimator_ is not unfitted
    assert not hasattr(unfitted, "coef_")
    np.testing.assert_array_equal(cem.classes_, [0, 1, 2])


def test_early_stopping_saves_model_rows_and_keeps_answers(digits, digits_model, digits_test):
    X, _ = digits
    results = {}
    for tol in (None, 1e-4):
        cem = CEMExplainer(digits_model, mode="PN", tol=tol, n_iter_no_change=20,
                           probe_iterations=None, **FAST).fit(X[:1200])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExplanationNotFoundWarning)
            results[tol] = cem.explain(digits_test)
    fixed, early = results[None], results[1e-4]
    assert early.meta["n_model_rows"] < 0.7 * fixed.meta["n_model_rows"]
    assert early.found.sum() >= fixed.found.sum() - 1
    assert np.all(digits_model.predict(early.PN[early.found]) != early.X_pred[early.found])


def test_score_rewards_sparse_close_explanations(digits, digits_model, digits_test):
    # The same answers made farther, denser or missing score lower. (A larger beta gives
    # sparser answers but finds fewer: its score is higher on some rows, lower on others.)
    from dataclasses import replace

    X, _ = digits
    cem = CEMExplainer(digits_model, mode="PN", search="fista", **FAST).fit(X[:1200])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        exp = cem.explain(digits_test)
        score = cem.score(digits_test)
    assert 0 < score <= 1
    data_range = (X[:1200].min(axis=0), X[:1200].max(axis=0))
    assert score == pytest.approx(metrics.cem_score(exp, data_range))
    row = np.flatnonzero(exp.found)[0]
    step = exp.explanation[row] - exp.X[row]
    farther, denser = exp.explanation.copy(), exp.explanation.copy()
    farther[row] = exp.X[row] + 2 * step
    unchanged = np.flatnonzero(np.abs(step) <= 1e-8)
    denser[row, unchanged[:5]] += 0.01
    missing = exp.found.copy()
    missing[row] = False
    for worse in (replace(exp, explanation=farther), replace(exp, explanation=denser),
                  replace(exp, found=missing)):
        assert metrics.cem_score(worse, data_range) < score


def test_score_gives_pps_that_keep_nothing_zero(iris, iris_model):
    X, _ = iris
    cem = CEMExplainer(iris_model, mode="PP", **FAST).fit(X)  # the median background
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exp = cem.explain(X[50:100])
        score = cem.score(X[50:100])
    empty = exp.found & (metrics.n_changed(exp) == 0)
    assert 0 < empty.sum() < len(empty)
    per_instance = metrics.sparsity(exp) * metrics.proximity(exp, (X.min(0), X.max(0)))
    assert score == pytest.approx(np.mean(np.where(empty, 0.0, per_instance)))


def test_score_is_scaled_by_the_fit_data_not_by_feature_range(iris, iris_model):
    X, _ = iris
    cem = CEMExplainer(iris_model, mode="PN", feature_range=(-100.0, 100.0), **FAST).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        exp = cem.explain(X[50:70])
        score = cem.score(X[50:70])
    assert exp.found.sum() > 10
    assert score == pytest.approx(metrics.cem_score(exp, (X.min(0), X.max(0))))
    assert score < metrics.cem_score(exp, cem.feature_range_)


def test_to_frame_and_changes(iris, iris_model):
    pd = pytest.importorskip("pandas")
    X, _ = iris
    frame_in = pd.DataFrame(X, columns=["sl", "sw", "pl", "pw"])
    cem = CEMExplainer(iris_model, mode="PN", clip=(-1e3, 1e3), **FAST).fit(frame_in)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        exp = cem.explain(frame_in.iloc[[0, 60]])
    frame = exp.to_frame()
    assert list(frame.columns) == ["sl", "sw", "pl", "pw", "found", "class", "PN_class",
                                   "distance", "c"]
    np.testing.assert_array_equal(frame[["sl", "sw", "pl", "pw"]].to_numpy(), exp.explanation)
    for i, changed in enumerate(exp.changes()):
        moved = np.flatnonzero(np.abs(exp.delta[i]) > 1e-12)
        assert list(changed) == [["sl", "sw", "pl", "pw"][j] for j in moved]


def test_verbose_progress_and_logging(iris, iris_model, capsys, caplog):
    import logging

    X, _ = iris
    cem = CEMExplainer(iris_model, mode="PP", max_iterations=20, c_steps=3, verbose=2).fit(X)
    with caplog.at_level(logging.INFO, logger="skcem"), warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        cem.explain(X[:2])
    assert "CEMExplainer" in capsys.readouterr().err  # the progress bar, on stderr
    # three probing c-steps, then the full schedule at the smallest successful c
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "c-step 1", "c-step 2", "c-step 3", "c-step 4"]



def test_verbose_logging_of_workers_and_of_the_gradient_free_search(iris, caplog):
    """Found by a user: verbose=2 logged nothing with n_jobs=2 (each worker's logger is its
    own), and "c-step 1: median c nan" for the gradient-free search, which has no c."""
    import logging

    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    X, y = iris
    model = LogisticRegression(max_iter=1000).fit(X, y)
    cem = CEMExplainer(model, max_iterations=20, c_steps=2, verbose=2, n_jobs=2,
                       batch_size=10, search="fista").fit(X)
    with caplog.at_level(logging.INFO, logger="skcem"), warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        cem.explain(X[::5])  # three batches, each of three probing c-steps and a full one
    steps = [r.getMessage() for r in caplog.records if r.getMessage().startswith("c-step")]
    assert [m.split(":")[0] for m in steps] == ["c-step 1", "c-step 2", "c-step 3"] * 3
    assert all(m.endswith("of 10 found") for m in steps)
    caplog.clear()
    forest = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y)
    with caplog.at_level(logging.INFO, logger="skcem"):
        CEMExplainer(forest, verbose=2).fit(X).explain(X[::5])
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("gradient-free search: ") for m in messages)
    assert not any("c-step" in m or "median c" in m for m in messages)


@pytest.mark.parametrize("mode", ["PN", "PP"])
def test_probing_search_keeps_answers_at_a_fifth_of_the_iterations(iris, iris_model, mode):
    """probe_iterations (issue 16) at the reference defaults: the same instances found,
    median L1 within 5% and median L0 no larger than the full schedule's, for under a
    quarter of the iterations and model rows."""
    X, _ = iris
    X_test = X[::5]  # 30 instances of all classes
    results = {}
    for probe in (None, 100):
        cem = CEMExplainer(iris_model, mode=mode, probe_iterations=probe).fit(X)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExplanationNotFoundWarning)
            results[probe] = cem.explain(X_test)
    full, probed = results[None], results[100]
    assert full.found.sum() >= 10
    np.testing.assert_array_equal(probed.found, full.found)
    l1 = {probe: np.median(np.abs(exp.perturbation[exp.found]).sum(axis=1))
          for probe, exp in results.items()}
    assert abs(l1[100] - l1[None]) <= 0.05 * l1[None]
    assert np.nanmedian(metrics.n_changed(probed)) <= np.nanmedian(metrics.n_changed(full))
    # 10 probes of 100 iterations and one c-step of 1000, against 10 c-steps of 1000.
    assert np.max(probed.meta["n_iterations"]) == 10 * 100 + 1000
    assert np.min(full.meta["n_iterations"]) == 10 * 1000
    assert probed.meta["n_model_rows"] < 0.25 * full.meta["n_model_rows"]
    pred = iris_model.predict(probed.explanation[probed.found])
    required = pred != probed.X_pred[probed.found] if mode == "PN" \
        else pred == probed.X_pred[probed.found]
    assert required.all()


def _halve(Z):
    """A stand-in auto-encoder: reconstructs every feature at half its value."""
    return 0.5 * np.asarray(Z)


@pytest.mark.filterwarnings("ignore::skcem.ExplanationNotFoundWarning")
def test_auto_momentum_is_off_only_with_the_autoencoder_term(iris, iris_model):
    """momentum="auto": FISTA's momentum without an auto-encoder term, none with one."""
    X, _ = iris
    small = dict(max_iterations=100, c_steps=3, probe_iterations=None)

    def explain(**params):
        return CEMExplainer(iris_model, **small, **params).fit(X).explain(X[::25]).explanation

    np.testing.assert_array_equal(explain(), explain(momentum=True))
    assert not np.allclose(explain(), explain(momentum=False), equal_nan=True)
    with_ae = dict(gamma=1.0, autoencoder=_halve)
    np.testing.assert_array_equal(explain(**with_ae), explain(momentum=False, **with_ae))
    assert not np.allclose(explain(**with_ae), explain(momentum=True, **with_ae),
                           equal_nan=True)


def test_an_autoencoder_term_that_cannot_weigh_says_so(iris, iris_model):
    """Found by a trial: an auto-encoder returning NaN left every row unfound with advice
    on c_init; gamma under the gradient-free search was ignored without a word; a fitted
    regressor as the auto-encoder got scikit-learn's "must be a callable"."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.neural_network import MLPRegressor

    from skcem import SkcemWarning

    X, y = iris
    def partly_infinite(Z):  # infinite for rows whose second feature is above 1
        Z = np.asarray(Z, dtype=float)
        return np.where(Z[:, 1:2] > 1.0, np.inf, Z)

    for broken, n_bad in ((lambda Z: np.asarray(Z) * np.nan, 20),
                          (partly_infinite, int(np.sum(X[:20, 1] > 1.0)))):
        with pytest.raises(ValueError, match=r"`autoencoder` returns NaN or infinite values "
                                             rf"on rows given to fit \({n_bad} of the first "
                                             r"20\)"):
            CEMExplainer(iris_model, gamma=1.0, autoencoder=broken).fit(X)
    # finite on fit's first rows, not on the rows explained (found by a review: the
    # warning advised a larger c_init)
    def late(Z):
        Z = np.asarray(Z, dtype=float)
        return np.where(Z[:, 2:3] > 1.0, np.nan, 0.5 * Z)

    with pytest.warns(ExplanationNotFoundWarning, match=r"The auto-encoder gave NaN or "
                                                        r"infinite reconstructions of \d+ of "
                                                        r"the rows the search asked"):
        CEMExplainer(iris_model, gamma=1.0, autoencoder=late, search="fista",
                     max_iterations=50, c_steps=2).fit(X).explain(X[X[:, 2] > 1.0][:3])
    forest = RandomForestClassifier(20, random_state=0).fit(X, y)
    with pytest.warns(SkcemWarning, match=r"gamma=1 weighs the auto-encoder term in the "
                                          r"gradient search only; search_='neighbors'"):
        CEMExplainer(forest, gamma=1.0, autoencoder=_halve).fit(X)
    regressor = MLPRegressor(hidden_layer_sizes=(2,), max_iter=50).fit(X, X)
    with pytest.raises(ValueError, match="`autoencoder` is a MLPRegressor, not a callable: "
                                         r"pass its method, autoencoder=ae.predict"):
        CEMExplainer(iris_model, gamma=1.0, autoencoder=regressor).fit(X)
    CEMExplainer(iris_model, gamma=1.0, autoencoder=regressor.predict).fit(X)


@pytest.mark.parametrize("c_steps, expected", [(4, 4 * 20 + 200), (1, 200)])
def test_auto_probing_takes_a_tenth_of_the_schedule(iris, iris_model, c_steps, expected):
    """probe_iterations="auto": c_steps probes of max_iterations // 10 and one full c-step;
    with a single c-step there is nothing to probe and the full schedule runs."""
    X, _ = iris
    cem = CEMExplainer(iris_model, max_iterations=200, c_steps=c_steps).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        exp = cem.explain(X[::10])
    assert np.max(exp.meta["n_iterations"]) == expected


def test_to_frame_keeps_features_named_like_its_columns(iris_model, iris):
    """A feature named "c" (or "distance", ...) is kept; to_frame's own column is prefixed."""
    pd = pytest.importorskip("pandas")
    X, _ = iris
    frame = pd.DataFrame(X, columns=["a", "b", "c", "distance"])
    cem = CEMExplainer(iris_model, mode="PP", max_iterations=50, c_steps=2).fit(frame)
    exp = cem.explain(frame.iloc[:3])
    with pytest.warns(UserWarning, match=r"\['distance', 'c'\] share their names with "
                                         r"to_frame's own columns, which are named "
                                         r"\['explanation_distance', 'explanation_c'\] "
                                         r"instead \(the features keep theirs\)"):
        out = exp.to_frame()
    np.testing.assert_array_equal(out["c"], exp.explanation["c"])
    np.testing.assert_array_equal(out["distance"], exp.explanation["distance"])
    np.testing.assert_array_equal(out["explanation_c"], exp.c)
    np.testing.assert_array_equal(out["explanation_distance"], exp.distance)
    # a feature named like the renamed column too keeps its values (skcem's overwrote them)
    frame = pd.DataFrame(X, columns=["a", "found", "explanation_found", "d"])
    exp = CEMExplainer(iris_model, mode="PP", max_iterations=50, c_steps=2).fit(frame).explain(
        frame.iloc[:3])
    with pytest.warns(UserWarning, match=r"named \['explanation_found_'\]"):
        out = exp.to_frame()
    np.testing.assert_array_equal(out["explanation_found"], exp.explanation["explanation_found"])
    np.testing.assert_array_equal(out["explanation_found_"], exp.found)


def test_empty_pps_are_named_by_a_warning():
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from skcem import TargetWarning

    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    model = LogisticRegression(max_iter=1000).fit(X, y)
    rows = X[::40]
    cem = CEMExplainer(model, mode="PP", max_iterations=100, c_steps=3).fit(X)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exp = cem.explain(rows)
    empty = exp.found & np.all(exp.perturbation == 0, axis=1)
    # The median of the data is of class 1 here: those PPs keep nothing, the others do.
    assert 0 < empty.sum() < len(rows)
    assert np.all(model.predict(exp.background[None]) == exp.X_pred[empty])
    messages = [str(w.message) for w in caught if w.category is TargetWarning]
    assert messages == [f"{empty.sum()} of {len(rows)} PPs keep nothing: the model already "
                        "gives the no-information background (no_info_val clipped to the "
                        "feature range, widened to an instance's value outside it) the "
                        "class the instance is explained in (its own, or y's where "
                        "explain is given y). Choose a no_info_val the model does not put "
                        "in that class for PPs that show what matters."]
    with warnings.catch_warnings():
        warnings.simplefilter("error", TargetWarning)
        CEMExplainer(model, mode="PN", max_iterations=100, c_steps=3).fit(X).explain(rows)


def test_mad_distance_searches_in_mad_units_on_raw_features():
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True)  # raw: feature scales from 1e-3 to 1e3
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(X, y)
    rows = X[::15][:12]
    cem = CEMExplainer(model, mode="PN", distance="mad").fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        exp = cem.explain(rows)
    # In raw units a small-scale feature's threshold (beta / MAD) shrank every move: 6 of 12.
    assert exp.found.sum() >= 10
    assert (model.predict(exp.explanation[exp.found]) != exp.X_pred[exp.found]).all()
    d = exp.perturbation[exp.found] / cem.mad_
    np.testing.assert_allclose(exp.distance[exp.found],
                               (d**2).sum(axis=1) + cem.beta * np.abs(d).sum(axis=1))


def test_pp_in_mad_units_ends_exactly_between_background_and_instance():
    """The gradient search in MAD units gives a removed feature its no-information value
    itself: its round trip through the scale ended up to 1.8e-15 past it (wine)."""
    from sklearn.datasets import load_wine
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_wine(return_X_y=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(X, y)
    cem = CEMExplainer(model, mode="PP", search="fista", distance="mad").fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        exp = cem.explain(X[:40])
    assert exp.found.sum() >= 30
    pp, x = exp.explanation[exp.found], X[:40][exp.found]
    assert np.all(pp >= np.minimum(x, exp.background))
    assert np.all(pp <= np.maximum(x, exp.background))
    assert np.any(pp == exp.background)  # features removed


def test_auto_keeps_the_gradient_free_answer_where_closer():
    """Found by a user: on a 3-class wine model the default search's PNs were up to 5.3x
    farther than search="neighbors" found (the gradient search settled on a farther class
    or boundary); the gradient-free answers now compete with the polished gradient ones."""
    from sklearn.datasets import load_wine
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_wine(return_X_y=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    rows = X[:30]
    distances = {}
    for search in ("auto", "neighbors", "fista"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exp = CEMExplainer(model, mode="PN", search=search).fit(X).explain(rows)
        distances[search] = np.where(exp.found, exp.distance, np.inf)
        if search == "auto":
            assert np.all(model.predict(exp.explanation[exp.found]) !=
                          model.predict(rows[exp.found]))
    both = np.isfinite(distances["neighbors"])
    assert np.all(distances["auto"][both] <= distances["neighbors"][both] * (1 + 1e-9))
    assert np.all(distances["auto"] <= distances["fista"] * (1 + 1e-9))


def test_explain_y_in_a_series_follows_the_rows_of_a_dataframe(iris, iris_model):
    pd = pytest.importorskip("pandas")
    X, _ = iris
    frame = pd.DataFrame(X, columns=[f"f{j}" for j in range(4)])
    rows = frame.iloc[[100, 0, 50]]
    predicted = pd.Series(iris_model.predict(rows.to_numpy()), index=rows.index)
    cem = CEMExplainer(iris_model, mode="PN", max_iterations=200, c_steps=3).fit(frame)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TargetWarning)  # y agrees with the model on every row
        exp = cem.explain(rows, predicted.sort_index())
    assert exp.found.any()
    assert np.all(exp.explanation_pred[exp.found] != predicted.to_numpy()[exp.found])


def test_features_of_far_apart_scales_are_named_unless_one_range_bounds_them_all():
    """A distance in the features' own units over breast cancer's raw columns (areas in the
    thousands, fractal dimensions below 0.1) is dominated by the widest: fit says so. Not
    with distance="mad", and not where one feature_range pair says that every feature shares
    a scale (images, whose edge pixels barely vary: a trial's warning there was noise)."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    from skcem import SkcemWarning

    X, y = load_breast_cancer(return_X_y=True)
    model = LogisticRegression(max_iter=5000).fit(X, y)
    with pytest.warns(SkcemWarning, match=r"X's features differ in scale by a factor of "
                                          r"[0-9.e+]+ \(the standard deviation of "
                                          r"column 23.*so the answers change the features"):
        CEMExplainer(model).fit(X)
    with pytest.warns(SkcemWarning, match=r"so a PP keeps the features of the largest"):
        CEMExplainer(model, mode="PP").fit(X)
    pixels = np.random.default_rng(0).uniform(size=(300, 6)) * [1, 1, 1, 1, 1, 1e-4]
    image_model = LogisticRegression().fit(pixels, pixels[:, 0] > 0.5)
    with pytest.warns(SkcemWarning, match="differ in scale"):
        CEMExplainer(image_model).fit(pixels)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SkcemWarning)
        CEMExplainer(model, distance="mad").fit(X)
        CEMExplainer(image_model, feature_range=(0.0, 1.0)).fit(pixels)
    # a wide common range over features of all scales says nothing of theirs (a review)
    with pytest.warns(SkcemWarning, match="differ in scale"):
        CEMExplainer(model, feature_range=(0.0, 5000.0)).fit(X)


def test_feature_weights_price_a_pns_changes(iris, iris_model):
    """feature_weights in CEM as in CounterfactualExplainer: a heavy feature is left alone
    where another serves, and the distance is the weighted elastic net."""
    X, _ = iris
    rows = X[::10]
    free = CEMExplainer(iris_model, max_iterations=200).fit(X).explain(rows)
    moved = np.abs(free.explanation - rows) > 1e-9
    top = int(np.argmax(moved[free.found].sum(axis=0)))
    weights = np.ones(4)
    weights[top] = 100.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        weighed = CEMExplainer(iris_model, max_iterations=200,
                               feature_weights=weights).fit(X).explain(rows)
    changed = np.abs(weighed.explanation - rows) > 1e-9
    assert changed[weighed.found, top].sum() < moved[free.found, top].sum()
    delta = (weighed.explanation - rows)[weighed.found]
    np.testing.assert_allclose(weighed.distance[weighed.found],
                               (delta**2 + 0.1 * np.abs(delta)) @ weights, rtol=1e-9)
