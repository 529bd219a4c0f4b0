"""Missing values (issue 24, item 4): explained where the estimator takes them, refused
clearly where it does not. A missing cell stays missing in the answer, never moves and adds
nothing to distances or metrics."""

import warnings

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from skcem import CEMExplainer, CounterfactualExplainer, ExplanationNotFoundWarning
from skcem._validation import accepts_missing_values
from skcem.costs import median_absolute_deviation
from skcem.metrics import explanation_metrics, proximity

pd = pytest.importorskip("pandas")

FAST = dict(max_iterations=200, c_steps=3)


def quiet_explain(explainer, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return explainer.explain(X)


@pytest.fixture(scope="module")
def holes():
    """Six breast-cancer columns with a tenth of the cells missing, and models."""
    X, y = load_breast_cancer(return_X_y=True)
    X = X[:, :6]
    X = X.copy()
    X[np.random.default_rng(0).random(X.shape) < 0.1] = np.nan
    imputed = make_pipeline(SimpleImputer(), StandardScaler(),
                            LogisticRegression(max_iter=1000)).fit(X, y)
    boosting = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(X, y)
    rows = np.flatnonzero(np.isnan(X).any(axis=1))[:6]
    return X, y, rows, {"imputed": imputed, "boosting": boosting}


def make_table(n=300, seed=0):
    rng = np.random.default_rng(seed)
    job = rng.choice(["clerk", "engineer", "manager"], size=n).astype(object)
    age = rng.integers(18, 70, size=n).astype(float)
    income = rng.normal(40.0, 12.0, size=n).round(1)
    score = 0.08 * (age - 40) + 0.1 * (income - 40) + np.where(job == "manager", 1.5, 0.0)
    X = pd.DataFrame({"age": age, "job": job, "income": income})
    job[rng.random(n) < 0.1] = None
    X["job"] = job
    X.loc[rng.random(n) < 0.1, "income"] = np.nan
    return X, (score + rng.normal(0, 0.5, size=n) > 0.5).astype(int)


def imputing_pipeline():
    encode = ColumnTransformer([
        ("job", make_pipeline(SimpleImputer(strategy="most_frequent"),
                              OneHotEncoder(handle_unknown="ignore")), ["job"]),
        ("numbers", make_pipeline(SimpleImputer(), StandardScaler()), ["age", "income"])])
    return make_pipeline(encode, LogisticRegression(max_iter=1000))


def test_accepts_missing_values_asks_the_estimators_tags():
    assert accepts_missing_values(None) is False
    assert accepts_missing_values(LogisticRegression()) is False
    assert accepts_missing_values(HistGradientBoostingClassifier()) is True
    # A Pipeline's first step decides (scikit-learn's own Pipeline tags do not say).
    assert accepts_missing_values(make_pipeline(SimpleImputer(), LogisticRegression()))
    assert not accepts_missing_values(make_pipeline(LogisticRegression()))
    assert accepts_missing_values(imputing_pipeline()) is True
    # Columns passed through: the next step decides, which a trial tells.
    passing = ColumnTransformer([("a", SimpleImputer(), [0])], remainder="passthrough")
    assert accepts_missing_values(make_pipeline(passing, LogisticRegression())) is None
    assert accepts_missing_values(lambda Z: Z) is None  # a trial decides
    # A FunctionTransformer runs the user's function, whatever its tags say: a trial decides.
    from sklearn.preprocessing import FunctionTransformer

    assert accepts_missing_values(make_pipeline(FunctionTransformer(np.log1p),
                                                LogisticRegression())) is None


def test_wrappers_take_missing_values_where_their_model_does(holes):
    """Found by a user: a FixedThresholdClassifier around a HistGradientBoosting model was
    refused on rows with missing values (the wrapper's tags say allow_nan=False), though its
    predict takes them."""
    from sklearn.frozen import FrozenEstimator
    from sklearn.model_selection import FixedThresholdClassifier, TunedThresholdClassifierCV

    boosting = HistGradientBoostingClassifier(max_iter=20)
    assert accepts_missing_values(FixedThresholdClassifier(boosting)) is True
    assert accepts_missing_values(TunedThresholdClassifierCV(LogisticRegression())) is False
    X, y, _, _ = holes
    model = FixedThresholdClassifier(boosting, threshold=0.8).fit(X, y)
    assert accepts_missing_values(FrozenEstimator(model)) is True
    exp = CounterfactualExplainer(model).fit(X, y).explain(X[:10])
    found = exp.found
    assert found.sum() >= 8
    assert (model.predict(exp.explanation[found]) != model.predict(X[:10][found])).all()
    np.testing.assert_array_equal(np.isnan(exp.explanation[found]), np.isnan(X[:10][found]))


@pytest.mark.parametrize("model", ["imputed", "boosting"])
@pytest.mark.parametrize("search", ["fista", "neighbors"])
@pytest.mark.parametrize("make", [
    lambda m, s: CounterfactualExplainer(m, search=s, **FAST),
    lambda m, s: CEMExplainer(m, mode="PN", search=s, **FAST),
    lambda m, s: CEMExplainer(m, mode="PP", search=s, **FAST),
], ids=["CF", "PN", "PP"])
def test_missing_cells_stay_missing_in_found_answers(holes, model, search, make):
    X, _, rows, models = holes
    if model == "boosting" and search == "fista":
        pytest.skip("flat gradients: the gradient search finds nothing for trees")
    before = X.copy()
    explainer = make(models[model], search).fit(X)
    exp = quiet_explain(explainer, X[rows])
    np.testing.assert_array_equal(X, before)  # never written to
    assert exp.found.sum() >= 2
    found = exp.found
    np.testing.assert_array_equal(np.isnan(exp.explanation[found]), np.isnan(X[rows][found]))
    assert np.all(np.isfinite(exp.distance[found]))
    # Valid by the model, which is asked with the missing cells.
    predicted = models[model].predict(exp.explanation[found])
    if exp.mode == "PN":
        assert np.all(predicted != exp.X_pred[found])
    else:
        assert np.all(predicted == (exp.X_pred[found] if exp.mode == "PP"
                                    else exp.explanation_pred[found]))
    for changed, x in zip(exp.changes(), X[rows]):
        assert not any(np.isnan(x[int(name[1:])]) for name in changed)


@pytest.mark.parametrize("make", [
    lambda m: CounterfactualExplainer(m, distance="mad", plausibility=1.0, **FAST),
    lambda m: CEMExplainer(m, mode="PN", plausibility=1.0, **FAST)], ids=["CF", "PN"])
def test_plausibility_takes_rows_with_missing_cells(holes, make):
    """Found by a user: the plausibility term of the default search's polish crashed on an
    answer keeping a missing cell ("cannot reshape array of size 0"); its neighbours are
    now found over the answer's known cells."""
    X, _, rows, models = holes
    explainer = make(models["imputed"]).fit(X)
    exp = quiet_explain(explainer, X[rows])
    found = exp.found
    assert found.sum() >= 4
    np.testing.assert_array_equal(np.isnan(exp.explanation[found]), np.isnan(X[rows][found]))
    assert np.all(models["imputed"].predict(exp.explanation[found]) != exp.X_pred[found])


def test_plausibility_neighbours_of_a_row_with_missing_cells_are_over_its_known_cells():
    from skcem._plausibility import ClassNeighborhood

    rng = np.random.default_rng(0)
    Z = rng.normal(size=(60, 4))
    Z[:, 3] = rng.integers(0, 3, 60)  # a categorical column of codes
    pred = (Z[:, 0] > 0).astype(int)
    categorical = np.array([False, False, False, True])
    term = ClassNeighborhood(1.0, n_neighbors=5).fit(Z, pred, categorical, np.ones(4),
                                                     np.zeros(4))
    E = Z[:3] + 0.1
    target = np.array([1, 0, 1])
    holed = E.copy()
    holed[0, 1] = np.nan
    holed[1, 3] = np.nan
    # a missing cell counts as no difference: as if every learnt row held the answer's value
    for i, column in ((0, 1), (1, 3)):
        others = np.delete(np.arange(4), column)
        sub = ClassNeighborhood(1.0, n_neighbors=5).fit(
            Z[:, others], pred, categorical[others], np.ones(3), np.zeros(3))
        np.testing.assert_allclose(term.share(holed[[i]], target[[i]], True),
                                   sub.share(E[[i]][:, others], target[[i]], True))
    np.testing.assert_allclose(term.share(holed[[2]], target[[2]], True),
                               term.share(E[[2]], target[[2]], True))


@pytest.mark.parametrize("mode", ["CF", "PN"])
def test_exact_search_answers_rows_with_missing_values_with_no_proven_gap(holes, mode):
    X, _, rows, models = holes
    boosting = models["boosting"]
    explainer = CEMExplainer(boosting, mode="PN", search="exact", max_time=2) if mode == "PN" \
        else CounterfactualExplainer(boosting, search="exact", max_time=2)
    complete = np.flatnonzero(~np.isnan(X).any(axis=1))[:2]
    explainer.fit(X)
    with pytest.warns(UserWarning, match=r"of the exact search are the gradient-free"):
        exp = explainer.explain(X[np.r_[rows, complete]])
    holed = np.arange(len(rows))
    assert exp.found[holed].sum() >= 2
    found = holed[exp.found[holed]]
    assert np.all(np.isnan(exp.gap[found]))  # no proven gap where the program does not go
    np.testing.assert_array_equal(np.isnan(exp.explanation[found]), np.isnan(X[rows][found]))
    predicted = boosting.predict(exp.explanation[found])
    assert np.all((predicted == exp.X_pred[found]) == (mode == "PP"))
    assert np.all(exp.gap[len(rows):][exp.found[len(rows):]] >= 0)


def test_a_missing_cell_adds_nothing_to_the_distance(holes):
    X, _, rows, models = holes
    cf = CounterfactualExplainer(models["imputed"], distance="l1", search="neighbors").fit(X)
    exp = quiet_explain(cf, X[rows])
    found = exp.found
    l1 = np.nansum(np.abs(exp.explanation[found] - X[rows][found]), axis=1)
    np.testing.assert_allclose(exp.distance[found], l1)
    assert np.all(proximity(exp, cf.feature_range_)[found] > 0)


def test_mad_and_ranges_leave_missing_values_out(holes):
    X, _, _, models = holes
    cf = CounterfactualExplainer(models["imputed"], distance="mad", search="neighbors").fit(X)
    np.testing.assert_allclose(cf.mad_, median_absolute_deviation(X))
    assert np.all(np.isfinite(cf.mad_))
    np.testing.assert_allclose(cf.feature_range_[0], np.nanmin(X, axis=0))
    cem = CEMExplainer(models["imputed"]).fit(X)
    np.testing.assert_allclose(cem.no_info_val_, np.nanmedian(X, axis=0))


def test_a_table_with_none_in_a_text_column():
    X, y = make_table()
    model = imputing_pipeline().fit(X, y)
    rows = X[X["job"].isna() | X["income"].isna()].iloc[:8]
    before = rows.copy()
    for explainer in (CounterfactualExplainer(model, distance="mad"),
                      CEMExplainer(model, mode="PN"),
                      CEMExplainer(model, mode="PP", immutable_features=["job"]),
                      # The gradient search moves the numbers only: the category immutable.
                      CounterfactualExplainer(model, search="fista", immutable_features=["job"],
                                              distance="mad", max_iterations=100,
                                              c_steps=2)):
        explainer.fit(X)
        assert sorted(explainer.categories_[1]) == ["clerk", "engineer", "manager"]
        exp = quiet_explain(explainer, rows)
        pd.testing.assert_frame_equal(rows, before)
        assert exp.found.sum() >= 4
        shown = exp.explanation[exp.found]
        pd.testing.assert_frame_equal(shown.isna(), rows[exp.found].isna())
        for changed, (_, row) in zip(exp.changes(), rows.iterrows()):
            assert not [name for name in changed if pd.isna(row[name])]
        table = explanation_metrics(model, rows, exp.explanation, mode=exp.mode, X_train=X,
                                    background=None if exp.mode != "PP" else
                                    dict(zip(X.columns, exp.background)) | {
                                        "job": explainer.categories_[1][
                                            int(exp.background[1])]},
                                    immutable_features=["job"] if explainer.immutable_mask_.any()
                                    else None)
        assert table["valid"][exp.found].all()
        assert np.isfinite(table.loc[exp.found, ["l0", "l1", "ynn"]].to_numpy()).all()
        if explainer.immutable_mask_.any():  # a kept-missing immutable cell is no violation
            assert (table.loc[exp.found, "violations"] == 0).all()


def test_missing_values_met_only_in_explain():
    X, y = make_table()
    model = imputing_pipeline().fit(X, y)
    complete = X.dropna()
    cf = CounterfactualExplainer(model, distance="mad").fit(complete)
    assert cf.__sklearn_tags__().input_tags.allow_nan
    rows = X[X["job"].isna()].iloc[:5]
    exp = quiet_explain(cf, rows)
    assert exp.found.all() and exp.explanation["job"].isna().all()


def test_a_model_without_missing_values_gets_one_error_in_fit_and_explain():
    X, y = make_table()
    complete = X.assign(job=X["job"].fillna("clerk"), income=X["income"].fillna(40.0))
    encode = ColumnTransformer([("job", OneHotEncoder(handle_unknown="ignore"), ["job"]),
                                ("numbers", StandardScaler(), ["age", "income"])])
    model = make_pipeline(encode, LogisticRegression(max_iter=1000)).fit(complete, y)
    # the one-hot encoder takes a missing job (no category: all zeros), the scaler's column a
    # missing income only as NaN, which the logistic regression refuses: that column is named
    message = (r"Input X contains NaN \(in 'income'\): CounterfactualExplainer "
               r"explains rows with missing values only for a model that takes them")
    with pytest.raises(ValueError, match=message):
        CounterfactualExplainer(model).fit(X)
    cf = CounterfactualExplainer(model).fit(complete)
    with pytest.raises(ValueError, match=message):
        cf.explain(X[X["job"].isna() | X["income"].isna()])
    rows = X[X["job"].isna() & X["income"].notna()].iloc[:4]
    exp = quiet_explain(cf, rows)
    assert exp.found.any() and exp.explanation["job"].isna().all()
    assert np.all(model.predict(exp.explanation[exp.found]) != model.predict(rows[exp.found]))
    with pytest.raises(ValueError, match=r"\(in 'job'\).*allow_nan=False"):
        CounterfactualExplainer().fit(X.assign(income=complete["income"]), y)
    assert not CounterfactualExplainer().__sklearn_tags__().input_tags.allow_nan


def test_a_plain_function_is_tried():
    X, y = load_breast_cancer(return_X_y=True)
    X = X[:, :4].copy()
    X[::7, 1] = np.nan
    imputed = make_pipeline(SimpleImputer(), StandardScaler(),
                            LogisticRegression()).fit(X, y)
    cf = CounterfactualExplainer(lambda Z: imputed.predict_proba(Z), search="neighbors").fit(
        X, y)
    exp = quiet_explain(cf, X[:15:7])
    assert exp.found.all() and np.isnan(exp.explanation[:, 1]).all()
    complete = LogisticRegression(max_iter=5000).fit(np.nan_to_num(X), y)
    with pytest.raises(ValueError, match="Input X contains NaN.*failed, or gave no finite"):
        CounterfactualExplainer(lambda Z: complete.predict_proba(Z)).fit(X, y)


def test_infinity_and_columns_without_values_are_still_errors(holes):
    X, y, _, models = holes
    bad = X.copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="Input X contains inf"):
        CounterfactualExplainer(models["imputed"]).fit(bad)
    empty = X.copy()
    empty[:, 2] = np.nan
    with pytest.raises(ValueError, match=r"columns \[2\] hold only missing values"):
        CounterfactualExplainer(models["boosting"]).fit(empty)
    # found by a user: the message said "to learn their range from" where feature_range
    # gave it
    with pytest.raises(ValueError, match=r"its range unless feature_range gives it, and "
                                         r"whether the model takes it missing\), also for an "
                                         r"immutable one: fit on rows that hold some"):
        CounterfactualExplainer(models["boosting"], feature_range=(-10, 10),
                                immutable_features=[2]).fit(empty)


class _SumAboveFour:
    """A classifier stub: class 1 where the row's values (missing ones left out) sum above 4."""

    def predict(self, X):
        return (np.nansum(np.asarray(X, dtype=float), axis=1) > 4).astype(int)


def test_explanation_metrics_leave_missing_cells_out():
    X = np.array([[1.0, np.nan, 3.0], [np.nan, 2.0, 0.0]])
    counterfactuals = np.array([[2.0, np.nan, 3.0], [np.nan, 5.0, 0.0]])
    train = np.array([[1.0, 2.0, np.nan], [3.0, np.nan, 4.0], [0.0, 1.0, 1.0]])
    table = explanation_metrics(_SumAboveFour(), X, counterfactuals, X_train=train,
                                n_neighbors=2, immutable_features=[0], mad=[1.0, 1.0, 1.0])
    assert table["valid"].all()
    np.testing.assert_array_equal(table["l0"], [1, 1])
    np.testing.assert_array_equal(table["l1"], [1.0, 3.0])
    np.testing.assert_array_equal(table["violations"], [1, 0])  # x0 changed; not its NaN
    assert np.isfinite(table["ynn"]).all()
    # A PP keeps the missing cell missing: not kept, and no violation when immutable; an
    # immutable feature is kept by construction, not counted (the second row keeps nothing)
    keeps = np.array([[1.0, np.nan, 3.0], [np.nan, 2.0, 0.0]])
    pp = explanation_metrics(_SumAboveFour(), X, keeps, mode="PP", background=[0.0, 0.0, 0.0],
                             immutable_features=[1], mad=[1.0, 1.0, 1.0])
    np.testing.assert_array_equal(pp["l0"], [2, 0])
    np.testing.assert_array_equal(pp["violations"], [0, 0])


def _day_of_year(frame):
    return pd.DataFrame({"day": frame["when"].dt.dayofyear.astype(float),
                         "amount": frame["amount"]})


def test_missing_times_behind_a_function_the_model_takes():
    from sklearn.preprocessing import FunctionTransformer

    rng = np.random.default_rng(0)
    n = 300
    X = pd.DataFrame({"when": pd.Timestamp("2021-01-01")
                      + pd.to_timedelta(rng.integers(0, 700, n), unit="D"),
                      "amount": rng.normal(100, 30, n)})
    X.loc[rng.random(n) < 0.1, "when"] = pd.NaT
    y = np.where((_day_of_year(X)["day"].fillna(0) > 200) | (X["amount"] > 120), "late",
                 "early")
    model = make_pipeline(FunctionTransformer(_day_of_year),
                          HistGradientBoostingClassifier(max_iter=30, random_state=0)).fit(X, y)
    rows = X[X["when"].isna()].iloc[:3]
    exp = quiet_explain(CounterfactualExplainer(model).fit(X), rows)
    assert exp.found.any()
    found = exp.explanation[exp.found]
    assert found["when"].isna().all()  # a missing time stays missing
    assert np.all(model.predict(found) != model.predict(rows[exp.found]))


def test_missing_values_are_tried_where_they_fall():
    # the one-hot encoder takes a missing colour, the discretizer no missing number: the
    # ColumnTransformer was refused as a whole (allow_nan of every transformer)
    from sklearn.preprocessing import KBinsDiscretizer

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"colour": rng.choice(["red", "blue", None], 200).astype(object),
                      "x": rng.normal(size=200), "z": rng.normal(size=200)})
    y = (X["x"] + (X["colour"] == "red") > 0.5).astype(int)
    bins = KBinsDiscretizer(4, encode="onehot-dense", quantile_method="averaged_inverted_cdf")
    model = make_pipeline(ColumnTransformer([
        ("colour", OneHotEncoder(handle_unknown="ignore"), ["colour"]),
        ("numbers", bins, ["x", "z"])]), LogisticRegression()).fit(X, y)
    assert accepts_missing_values(model) is None  # a trial tells
    cf = CounterfactualExplainer(model).fit(X)
    rows = X[X["colour"].isna()].iloc[:3]
    exp = quiet_explain(cf, rows)
    assert exp.found.all() and exp.explanation["colour"].isna().all()
    assert np.all(model.predict(exp.explanation) != model.predict(rows))
    with pytest.raises(ValueError, match=r"Input X contains NaN \(in 'x'\)"):
        cf.explain(rows.assign(x=np.nan))
    assert accepts_missing_values(make_pipeline(ColumnTransformer([("numbers", bins, ["x"])]),
                                                LogisticRegression())) is False


def _colour_table():
    rng = np.random.default_rng(0)
    n = 400
    X = pd.DataFrame({"age": rng.integers(18, 75, n), "hours": rng.uniform(10, 80, n).round(1),
                      "gain": rng.exponential(2000, n).round(0),
                      "color": rng.choice(["red", "green", "blue"], n).astype(object)})
    y = ((X.age - 45) / 10 + (X.hours - 45) / 15 + X.gain / 3000 + (X.color == "red")
         + rng.normal(0, 0.5, n) > 0.7).astype(int)
    X.loc[rng.random(n) < 0.1, "color"] = None
    return X, y


@pytest.mark.parametrize("search", ["fista", "auto"])
def test_several_answers_keep_each_rows_own_missing_and_immutable_cells(search):
    # A sub-batch kept the whole batch's mask of missing cells: another row's answers got its
    # missing cell, and the row with it got the cell filled (an immutable column changed).
    X, y = _colour_table()
    encode = make_pipeline(SimpleImputer(strategy="constant", fill_value="?"),
                           OneHotEncoder(handle_unknown="ignore"))
    model = make_pipeline(ColumnTransformer([("n", StandardScaler(), ["age", "hours", "gain"]),
                                             ("c", encode, ["color"])]),
                          LogisticRegression()).fit(X[:300], y[:300])
    rows = X.iloc[300:340]
    assert rows.color.isna().any()
    explainer = CounterfactualExplainer(
        model, search=search, distance="mad", n_counterfactuals=3, immutable_features=["color"],
        directions={"age": "increase", "hours": "increase", "gain": "increase"}).fit(X[:300])
    exp = quiet_explain(explainer, rows)
    answers = exp.counterfactuals.dropna(how="all")
    assert len(answers) > 20
    own = rows.color.loc[answers.index.get_level_values(0)].to_numpy()
    kept = (answers.color.to_numpy() == own) | (answers.color.isna().to_numpy() & pd.isna(own))
    assert kept.all(), answers[~kept]
    ranks = exp.counterfactual_pred[np.isfinite(exp.counterfactual_distance)]
    np.testing.assert_array_equal(model.predict(answers.astype(X.dtypes.to_dict())), ranks)


def test_the_default_search_on_trees_with_missing_cells_completes_unanswered_rows():
    # The exact completion of rows the gradient-free search left crashed on a batch with a
    # missing cell (IndexError / a broadcast error).
    from sklearn.ensemble import RandomForestClassifier

    X, y = _colour_table()
    X["gain"] = X.gain.where(np.random.default_rng(1).random(len(X)) > 0.1)
    model = make_pipeline(
        ColumnTransformer([("n", SimpleImputer(), ["age", "hours", "gain"]),
                           ("c", make_pipeline(SimpleImputer(strategy="constant",
                                                             fill_value="?"),
                                               OneHotEncoder(handle_unknown="ignore")),
                            ["color"])]),
        RandomForestClassifier(30, max_depth=5, random_state=0)).fit(X[:300], y[:300])
    explainer = CEMExplainer(model, mode="PN", distance="mad", immutable_features=["color"],
                             directions={"age": "increase"}).fit(X[:300])
    exp = quiet_explain(explainer, X.iloc[300:360])
    assert exp.found.sum() >= 30
    found = exp.explanation[exp.found]
    assert np.all(model.predict(found) != exp.X_pred[exp.found])
    missing = X.iloc[300:360].gain.isna().to_numpy()[exp.found]
    assert missing.any() and found.gain[missing].isna().all()


def test_an_answer_that_breaks_a_held_cell_is_left_out_loudly(iris, iris_model):
    # the guard behind the searches: such an answer is a bug, never reported as found
    from skcem import SkcemWarning
    from skcem._fista import SearchResult

    X, _ = iris
    cf = CounterfactualExplainer(iris_model, immutable_features=[0]).fit(X)
    rows = X[:3].copy()
    rows[2, 3] = np.nan
    answers = rows + 0.5
    answers[:, 0] = rows[:, 0]  # rows 0 and 2 keep the immutable feature
    answers[1, 0] += 1.0  # row 1 changes it
    answers[2, 3] = 0.2  # row 2 fills its missing cell
    n = len(rows)
    result = SearchResult(explanation=answers, found=np.ones(n, bool), distance=np.ones(n),
                          best_c=np.ones(n), explanation_proba=np.full((n, 3), 1 / 3),
                          explanation_class=np.zeros(n, int), n_iterations=np.ones(n, int),
                          flat_gradient=np.zeros(n, bool),
                          rejected_by_predict=np.zeros(n, bool))
    with pytest.warns(SkcemWarning, match="2 answers changed an immutable feature or a "
                                          "missing cell and were left out"):
        cf._drop_answers_breaking_held_cells(rows, [result])
    np.testing.assert_array_equal(result.found, [True, False, False])
    assert np.isnan(result.explanation[1:]).all() and np.isnan(result.distance[1:]).all()


@pytest.mark.parametrize("nested, codes", [(False, False), (True, False), (False, True)])
def test_an_imputers_fill_value_is_no_category_an_answer_takes(nested, codes):
    """Found by a user on Adult: behind SimpleImputer(strategy="constant",
    fill_value="missing"), answers changed workclass "Private → missing", a value no row
    holds (it stands for an unknown one), taken from the encoder's categories."""
    pd = pytest.importorskip("pandas")
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    n = 600
    # a text column, or float codes (whose integer fill -1 the encoder knows as -1.0)
    work = rng.choice([1.0, 2.0, 3.0], n) if codes else \
        rng.choice(["private", "public", "self"], n).astype(object)
    X = pd.DataFrame({"work": work, "hours": rng.integers(10, 70, n).astype(float)})
    X.loc[rng.random(n) < 0.1, "work"] = np.nan if codes else None
    # the unknown ones are the rich: the fill value would be the answer's cheapest change
    y = ((X["work"].isna()) | (X["hours"] > 60)).astype(int)
    fill = -1 if codes else "missing"
    imputer = SimpleImputer(strategy="constant", fill_value=fill)
    categories = make_pipeline(make_pipeline(imputer) if nested else imputer,
                               OneHotEncoder(handle_unknown="ignore"))
    model = make_pipeline(ColumnTransformer([("c", categories, ["work"])],
                                            remainder="passthrough"),
                          RandomForestClassifier(50, random_state=0)).fit(X, y)
    assert fill in list(model[0].named_transformers_["c"][-1].categories_[0])
    explainer = CounterfactualExplainer(model, n_counterfactuals=3,
                                        categorical_features=["work"]).fit(X)
    assert fill not in list(explainer.categories_[0])
    rows = X[(y == 0).to_numpy() & X["work"].notna().to_numpy()].iloc[:20]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exp = explainer.explain(rows)
    assert exp.found.any()
    assert fill not in set(exp.counterfactuals["work"].dropna())


def test_nullable_tables_nas_are_missing_cells_to_the_metrics():
    """pandas' NA (nullable Int64, Float64, boolean columns) is a missing cell like NaN: the
    explained rows are recognised as the Explanation's own, and diversity leaves it out."""
    X, y = make_table(200)
    nullable = X.assign(age=X["age"].astype("Int64"), income=X["income"].astype("Float64"))
    nullable.loc[:9, "age"] = pd.NA
    model = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(
        nullable.astype({"age": float, "income": float, "job": "category"}), y)
    explained = make_pipeline(FunctionTransformer(
        lambda frame: frame.astype({"age": float, "income": float, "job": "category"})), model)
    explainer = CounterfactualExplainer(explained, n_counterfactuals=2).fit(nullable)
    rows = nullable.iloc[:8]
    exp = quiet_explain(explainer, rows)
    assert exp.found.sum() >= 4
    assert rows["age"].isna().all()
    own = explanation_metrics(explained, None, exp)
    given = explanation_metrics(explained, rows, exp)  # the same rows, NA and all
    pd.testing.assert_frame_equal(own, given)
    with pytest.raises(ValueError, match="X is not the rows the Explanation explains"):
        explanation_metrics(explained, rows.assign(income=rows["income"] + 1), exp)
    from skcem.metrics import continuous_diversity, count_diversity

    index = pd.MultiIndex.from_tuples([(0, 0), (0, 1)], names=[None, "rank"])
    for dtype in ("Int64", "Float64", "float64"):
        pair = pd.DataFrame({"a": pd.array([None, None], dtype=dtype), "b": [1.0, 2.0]},
                            index=index)
        np.testing.assert_array_equal(count_diversity(pair), [0.5])
        np.testing.assert_array_equal(continuous_diversity(pair, mad={"a": 1.0, "b": 1.0}),
                                      [1.0])
    only_missing = pd.DataFrame({"a": pd.array([None, None], dtype="Int64"),
                                 "c": ["u", "v"]}, index=index)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy warning of an empty mean: NaN, said
        assert np.isnan(continuous_diversity(only_missing, mad={"a": 1.0})).all()


@pytest.mark.parametrize("search", ["auto", "exact"])
def test_a_row_whose_missing_cell_decides_its_class_is_not_blamed_on_a_time_limit(search):
    """Rows whose class rests on a missing cell (held missing) have no answer; the exact
    search does not model them, and the warning says so rather than a time limit."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=200), "c": rng.choice(list("xyz"), 200)})
    X.loc[:5, "a"] = np.nan
    y = (X["a"].fillna(0) > 0).astype(int)
    model = make_pipeline(ColumnTransformer([("c", OneHotEncoder(), ["c"])],
                                            remainder="passthrough"),
                          HistGradientBoostingClassifier(max_iter=20)).fit(X, y)
    explainer = CounterfactualExplainer(model, search=search).fit(X)
    with pytest.warns(UserWarning, match=r"did not search the 6 with missing cells") as caught:
        exp = explainer.explain(X[:10])
    assert not exp.found[:6].any() and exp.found[6:].all()
    assert not any("time limit" in str(w.message) or "within" in str(w.message)
                   for w in caught if "found no CF" in str(w.message))


def test_similarity_refuses_missing_cells_in_columns_its_pipeline_does_not_impute():
    """Found by a user: a Pipeline that imputes its text columns only; a training row
    missing a number silently never ranked, and a test row's NaN scores were blamed on an
    Embedding. The columns the model refuses get the error of the other explainers."""
    from skcem import GradientSimilarityExplainer

    X, y = make_table(200)
    encode = ColumnTransformer([
        ("job", make_pipeline(SimpleImputer(strategy="most_frequent"),
                              OneHotEncoder(handle_unknown="ignore")), ["job"]),
        ("numbers", StandardScaler(), ["age", "income"])])
    X = X.assign(income=X["income"].fillna(40.0))
    model = make_pipeline(encode, LogisticRegression(max_iter=1000)).fit(X, y)
    explainer = GradientSimilarityExplainer(model).fit(X, y)  # missing jobs: imputed
    assert X["job"].isna().any()
    holed = X.copy()
    holed.loc[3, "income"] = np.nan
    with pytest.raises(ValueError, match=r"Input X contains NaN \(in 'income'\): "
                                         "GradientSimilarityExplainer"):
        GradientSimilarityExplainer(model).fit(holed, y)
    with pytest.raises(ValueError, match=r"contains NaN \(in 'income'\)"):
        explainer.kneighbors(holed.iloc[:5], n_neighbors=2)
    scores = explainer.explain(X.iloc[:5]).scores  # the rows missing a job are scored
    assert np.isfinite(scores).all()
    # a model without probabilities, of text labels, that imputes every column: taken
    from sklearn.svm import LinearSVC

    numbers = holed[["age", "income"]]
    named = np.where(y == 1, "yes", "no")
    svc = make_pipeline(SimpleImputer(), StandardScaler(), LinearSVC()).fit(numbers, named)
    taken = GradientSimilarityExplainer(svc).fit(numbers, named)
    assert np.isfinite(taken.self_influence()).all()


def test_a_function_of_arrays_is_asked_with_floats_where_a_nullable_frame_breaks_it():
    """A plain function that indexes arrays (X[:, 0]) broke on the DataFrame of a table with
    a nullable Int64 column holding NA; it takes float64 rows with NaN."""
    X, y = make_table(200)
    table = X[["age", "income"]].astype({"age": "Int64"})
    table.loc[:20, "age"] = pd.NA
    model = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(
        table.astype(float), y)

    def probabilities(rows):
        return model.predict_proba(np.column_stack([rows[:, 0], rows[:, 1]]))

    explainer = CounterfactualExplainer(probabilities).fit(table, y)
    exp = quiet_explain(explainer, table.iloc[:10])
    assert exp.found.sum() >= 5
    answers = exp.explanation[exp.found].astype(float).to_numpy()
    assert np.all(model.predict(answers) != exp.X_pred[exp.found])


def test_a_model_that_fails_on_complete_rows_too_is_not_blamed_on_missing_values():
    """Found by a new user: a model fitted on numbers, given a text column, failed the
    trial call on a row missing a value, and the error said the model takes no missing
    values (HistGradientBoosting does); the real cause, the text column, came only without
    missing cells."""
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=200), "b": rng.integers(0, 3, 200).astype(float)})
    model = HistGradientBoostingClassifier(max_iter=20).fit(X, (X.a + X.b > 1).astype(int))
    texts = X.assign(b=np.array(["x", "y", "z"])[X.b.astype(int)])
    texts.loc[3, "a"] = np.nan
    with pytest.raises(ValueError, match=r"categorical columns \['b'\], but `estimator` "
                                         r"fails on them"):
        CounterfactualExplainer(model).fit(texts)


def test_no_numpy_warning_from_a_model_fitted_on_missing_values():
    """Found by a user: search="exact" on a HistGradientBoosting fitted with NaN warned
    "invalid value encountered in maximum" (its split of missing values from all others has
    an infinite threshold), and the gradient search's hint "All-NaN slice encountered" for
    a column missing in every row explained."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    y = (X[:, 0] + X[:, 1] - X[:, 2] > 0).astype(int)
    holed = X.copy()
    holed[rng.random(X.shape) < 0.1] = np.nan
    model = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(holed, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        explanation = CounterfactualExplainer(model, search="exact").fit(holed).explain(X[:5])
        assert explanation.found.all() and np.all(explanation.gap == 0)
        assert np.all(model.predict(explanation.explanation) != model.predict(X[:5]))
        rows = X[:5].copy()
        rows[:, 2] = np.nan
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        CounterfactualExplainer(model, search="fista").fit(holed).explain(rows)
