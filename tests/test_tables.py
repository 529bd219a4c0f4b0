"""Tables with categorical columns and a preprocessing Pipeline as the model (issue 12)."""

import json
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.compose import ColumnTransformer, make_column_transformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import (FunctionTransformer, OneHotEncoder, OrdinalEncoder,
                                   StandardScaler)

from skcem import CEMExplainer, CounterfactualExplainer, ExplanationNotFoundWarning
from skcem._gradients import ExactBackend
from skcem._gradients._exact import exact_proba_vjp
from skcem._tabular import TableCodec

pd = pytest.importorskip("pandas")

CATEGORICAL = ["job", "city", "sex"]
NUMERIC = ["age", "income", "hours"]


def make_table(n=600, seed=0, string_dtype="str"):
    """A census-like table whose label depends on numbers and categories alike."""
    rng = np.random.default_rng(seed)
    job = rng.choice(["clerk", "engineer", "farmer", "manager"], size=n)
    city = rng.choice(["north", "south", "east"], size=n)
    sex = rng.choice(["F", "M"], size=n)
    age = rng.integers(18, 70, size=n)
    income = rng.normal(40.0, 12.0, size=n).round(1)
    hours = rng.integers(10, 60, size=n)
    score = (0.08 * (age - 40) + 0.1 * (income - 40) + 0.05 * (hours - 35)
             + np.select([job == "engineer", job == "manager", job == "farmer"], [1.5, 2.0, -1.0],
                         0.0)
             + np.where(city == "north", 0.7, 0.0) + rng.normal(0, 0.5, size=n))
    X = pd.DataFrame({"age": age, "job": job, "income": income, "city": city, "hours": hours,
                      "sex": sex})
    for column in CATEGORICAL:
        X[column] = X[column].astype(string_dtype)
    return X, (score > 0.5).astype(int)


def pipeline(classifier):
    encode = ColumnTransformer([("categories", OneHotEncoder(handle_unknown="ignore"),
                                 CATEGORICAL), ("numbers", StandardScaler(), NUMERIC)])
    return make_pipeline(encode, classifier)


@pytest.fixture(scope="module")
def table():
    X, y = make_table()
    lr = pipeline(LogisticRegression(max_iter=1000)).fit(X, y)
    forest = pipeline(RandomForestClassifier(60, random_state=0)).fit(X, y)
    return X, y, {"lr": lr, "forest": forest}


def explain(explainer, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        return explainer.explain(X)


def valid_by_predict(model, explanation, mode):
    found = explanation.found
    pred = model.predict(explanation.explanation[found])
    original = model.predict(explanation.X[found])
    return pred == original if mode == "PP" else pred != original


SETTINGS = [(CounterfactualExplainer, {}), (CEMExplainer, {"mode": "PN"}),
            (CEMExplainer, {"mode": "PP"})]


@pytest.mark.parametrize("model_name", ["lr", "forest"])
@pytest.mark.parametrize("Explainer, params", SETTINGS)
def test_answers_are_valid_rows_inside_the_constraints(table, model_name, Explainer, params):
    X, _, models = table
    model = models[model_name]
    explainer = Explainer(model, immutable_features=["sex"], directions={"age": "increase"},
                          distance="mad", **params).fit(X)
    assert explainer.search_ == "neighbors"
    rows = X.iloc[:40]
    exp = explain(explainer, rows)
    found = exp.found
    mode = params.get("mode", "CF")
    assert found.mean() >= (0.95 if mode != "PN" else 0.5)
    assert valid_by_predict(model, exp, mode).all()
    out = exp.explanation
    assert isinstance(out, pd.DataFrame) and out.index.equals(rows.index)
    assert list(out.columns) == list(X.columns)
    for column in CATEGORICAL:
        assert set(out.loc[found, column]) <= set(X[column])
        assert out[column].dtype == X[column].dtype
    assert (out.loc[found, "sex"] == rows.loc[found, "sex"]).all()  # immutable
    assert (out.loc[found, "age"] >= rows.loc[found, "age"]).all()  # increase only
    assert out.loc[found, "age"].dtype.kind in "iu" or \
        np.all(out.loc[found, "age"] == np.round(out.loc[found, "age"]))
    lower, upper = X[NUMERIC].min(), X[NUMERIC].max()
    assert ((out.loc[found, NUMERIC] >= lower) & (out.loc[found, NUMERIC] <= upper)).all().all()


@pytest.mark.parametrize("model_name", ["lr", "forest"])
@pytest.mark.parametrize("Explainer, params", SETTINGS)
def test_no_change_can_be_reverted_alone(table, model_name, Explainer, params):
    """Every changed feature is needed: reverting any one of them breaks validity."""
    X, _, models = table
    model = models[model_name]
    explainer = Explainer(model, **params).fit(X)
    exp = explain(explainer, X.iloc[40:60])
    mode = params.get("mode", "CF")
    unchanged = exp.X if mode != "PP" else None
    background = explainer._codec.decode(
        np.broadcast_to(exp.background, exp.encoded["X"].shape).copy(), for_model=False,
        index=exp.X.index) if mode == "PP" else None
    checked = 0
    for i in np.flatnonzero(exp.found):
        answer = exp.explanation.iloc[[i]]
        reference = (unchanged if mode != "PP" else background).iloc[[i]]
        changed = [c for c in X.columns if answer[c].iloc[0] != reference[c].iloc[0]]
        original = model.predict(exp.X.iloc[[i]])[0]
        for column in changed:
            trial = answer.copy()
            trial[column] = reference[column].to_numpy()
            still = model.predict(trial)[0] == original if mode == "PP" \
                else model.predict(trial)[0] != original
            assert not still, (i, column)
            checked += 1
    assert checked > 0


def test_pn_categories_avoid_the_no_information_category_and_pp_keeps_or_removes(table):
    X, _, models = table
    no_info = {"job": "clerk", "city": "east"}
    pn = CEMExplainer(models["lr"], mode="PN", no_info_val=no_info).fit(X)
    exp = explain(pn, X.iloc[:60])
    changed = exp.explanation["job"] != exp.X["job"]
    assert not (exp.explanation.loc[exp.found & changed, "job"] == "clerk").any()
    pp = CEMExplainer(models["lr"], mode="PP", no_info_val=no_info).fit(X)
    exp = explain(pp, X.iloc[:60])
    kept_or_removed = (exp.explanation["city"] == exp.X["city"]) | \
        (exp.explanation["city"] == "east")
    assert kept_or_removed[exp.found].all()
    assert pp.no_info_val_[list(X.columns).index("job")] == \
        list(pp.categories_[1]).index("clerk")


def test_no_information_category_defaults_to_the_most_frequent(table):
    X, _, models = table
    cem = CEMExplainer(models["lr"]).fit(X)
    j = list(X.columns).index("job")
    most_frequent = X["job"].value_counts().idxmax()
    assert cem.categories_[j][int(cem.no_info_val_[j])] == most_frequent
    assert cem.categorical_mask_.tolist() == [c in CATEGORICAL for c in X.columns]


@pytest.mark.parametrize("string_dtype", ["object", "category", "str"])
def test_string_dtypes(string_dtype):
    X, y = make_table(300, string_dtype=string_dtype)
    model = pipeline(LogisticRegression(max_iter=1000)).fit(X, y)
    exp = explain(CounterfactualExplainer(model).fit(X), X.iloc[:10])
    assert exp.found.all()
    assert (exp.explanation.dtypes == X.dtypes).all()
    assert (model.predict(exp.explanation) != model.predict(X.iloc[:10])).all()


def test_pipeline_that_drops_and_reorders_columns(table):
    X, y, _ = table
    encode = ColumnTransformer([("numbers", StandardScaler(), ["hours", "income", "age"]),
                                ("categories", OneHotEncoder(handle_unknown="ignore"),
                                 ["job"])], remainder="drop")  # city and sex unused
    model = make_pipeline(encode, LogisticRegression(max_iter=1000)).fit(X, y)
    exp = explain(CounterfactualExplainer(model).fit(X), X.iloc[:30])
    assert exp.found.mean() >= 0.95
    assert (model.predict(exp.explanation[exp.found]) != model.predict(X.iloc[:30][exp.found])
            ).all()
    # The model ignores them: a change there would be redundant.
    assert (exp.explanation.loc[exp.found, ["city", "sex"]]
            == X.iloc[:30].loc[exp.found, ["city", "sex"]]).all().all()


def test_unseen_category_the_model_refuses_is_named(table):
    X, y, _ = table
    encode = ColumnTransformer([("categories", OneHotEncoder(), CATEGORICAL),
                                ("numbers", StandardScaler(), NUMERIC)])
    model = make_pipeline(encode, LogisticRegression(max_iter=1000)).fit(X, y)
    cem = CEMExplainer(model).fit(X)
    bad = X.iloc[:3].copy()
    bad["job"] = ["clerk", "astronaut", "farmer"]
    with pytest.raises(ValueError, match="X column 'job' holds 'astronaut', a category "
                                         "neither seen in fit nor known to the model's "
                                         "encoders \\(known: [a-z', ]*'clerk'[a-z', ]*\\), "
                                         "in the rows at positions 1 of X\\. .*explain the "
                                         "other rows, or fit it on data that holds this one"):
        cem.explain(bad)


@pytest.mark.parametrize("model_name", ["lr", "forest"])
@pytest.mark.parametrize("Explainer, params", SETTINGS)
def test_unseen_category_the_model_takes_is_explained(table, model_name, Explainer, params):
    # The encoders ignore unknown categories: such a row is explained, keeping its category
    # (sex is immutable) or changing it to one fit met, never to another unseen one.
    X, _, models = table
    model = models[model_name]
    explainer = Explainer(model, immutable_features=["sex"], **params).fit(X)
    before = explain(explainer, X.iloc[:8])
    rows = X.iloc[:8].copy()
    rows["job"] = ["astronaut", "clerk", "farmer", "astronaut", "diver", "clerk",
                   "manager", "engineer"]
    rows.loc[rows.index[[1, 2]], "sex"] = "X"
    given = rows.copy()
    with pytest.warns(UserWarning, match="5 of 8 instances hold categories fit never met, "
                                         "which the model takes \\('job': 'astronaut', "
                                         "'diver'; 'sex': 'X'\\)"):
        exp = explain(explainer, rows)
    pd.testing.assert_frame_equal(rows, given)
    assert exp.found.sum() >= 6
    assert valid_by_predict(model, exp, params.get("mode", "CF")).all()
    answers = exp.explanation[exp.found]
    assert (answers["sex"] == rows["sex"][exp.found]).all()
    if params.get("mode") == "PP":  # kept, or the background's category
        assert set(answers["job"]) <= set(X["job"]) | {"astronaut", "diver"}
    else:
        changed = answers["job"] != rows["job"][exp.found]
        assert set(answers["job"][changed]) <= set(X["job"])
    # The search's own probabilities of rows holding the new categories are the model's.
    declaring = explainer._declaring_categories_of(rows)
    Z = declaring._codec.encode(rows)
    assert np.array_equal(declaring._get_backend().predict_proba(Z),
                          model.predict_proba(declaring._codec.decode(Z)))
    # The fitted explainer itself still knows fit's categories only.
    assert "astronaut" not in list(explainer._codec.categories_[1])
    # Rows without them are explained as before.
    again = explain(explainer, X.iloc[:8])
    pd.testing.assert_frame_equal(again.explanation, before.explanation)


def test_explaining_unseen_categories_leaves_the_fitted_explainer_as_it_was(table):
    """Found by a review: explain declared a category fit never met on the fitted explainer
    (its codec, trees and backend), so that it changed at explain, and later answers'
    Categoricals carried the category."""
    import joblib

    X, _, models = table
    explainer = CounterfactualExplainer(models["forest"]).fit(X)
    before = explain(explainer, X.iloc[:4])  # the explainer's caches made
    state = joblib.hash(explainer)
    rows = X.iloc[:4].assign(job=["astronaut", "clerk", "astronaut", "farmer"])
    with pytest.warns(UserWarning, match="2 of 4 instances hold categories fit never met"):
        explain(explainer, rows)
    assert joblib.hash(explainer) == state
    again = explain(explainer, X.iloc[:4])
    pd.testing.assert_frame_equal(again.explanation, before.explanation)


def test_transform_follows_set_output(table):
    X, _, models = table
    cf = CounterfactualExplainer(models["lr"]).fit(X)
    array = cf.transform(X.iloc[:5])
    assert isinstance(array, np.ndarray) and array.dtype == object and array.shape == (5, 6)
    frame = cf.set_output(transform="pandas").transform(X.iloc[:5])
    assert isinstance(frame, pd.DataFrame) and (frame.dtypes == X.dtypes).all()
    assert frame.index.equals(X.index[:5])


def test_not_found_rows_are_missing_with_a_warning(table):
    X, _, models = table
    # Every column immutable but hours, restricted to its instance's value: nothing can change.
    cf = CounterfactualExplainer(models["lr"], immutable_features=[c for c in X.columns
                                                                   if c != "hours"],
                                 feature_range={"hours": (35, 36)}, search="neighbors").fit(X)
    rows = X.iloc[:10]
    # (a linear model, its categories all immutable: a linear program proves it)
    with pytest.warns(ExplanationNotFoundWarning, match="none exists: the model's decision "
                                                        "is linear"):
        exp = cf.explain(rows)
    assert not exp.found.all()
    missing = exp.explanation[~exp.found]
    assert missing.isna().all().all()
    # the gradient search, completed by the gradient-free one, does not point at the latter
    completed = clone(cf).set_params(search="auto").fit(X)
    assert completed.search_ == "fista"
    with pytest.warns(ExplanationNotFoundWarning) as record:
        completed.explain(X[X["hours"].between(35, 36)].iloc[:5])
    message = str(record[0].message)
    assert "none exists" in message and "may find them" not in message


def test_changes_and_to_frame_show_categories(table):
    X, _, models = table
    exp = explain(CounterfactualExplainer(models["lr"]).fit(X), X.iloc[:20])
    changes = exp.changes()
    arrows = [v for row in changes for k, v in row.items() if k in CATEGORICAL]
    assert arrows and all(" → " in v for v in arrows)
    i = next(i for i, row in enumerate(changes) if any(k in CATEGORICAL for k in row))
    column = next(k for k in changes[i] if k in CATEGORICAL)
    assert changes[i][column] == f"{X[column].iloc[i]} → {exp.explanation[column].iloc[i]}"
    frame = exp.to_frame()
    assert list(frame.columns[:6]) == list(X.columns) and frame.index.equals(X.index[:20])
    assert exp.to_json()  # plain values only


def test_float32_cells_read_as_the_numbers_they_hold(table):
    """Found by a user: a float32 column's 46.51 showed as 46.5099983215332 in changes(),
    fixed() and to_json(): a float32 reads as its shortest decimal (the same float32)."""
    import json

    X, y, _ = table
    X32 = X.astype({"income": np.float32})
    model = pipeline(LogisticRegression(max_iter=1000)).fit(X32, y)
    exp = explain(CounterfactualExplainer(model, immutable_features=["income"],
                                          distance="mad").fit(X32), X32.iloc[:10])
    fixed = [row["income"] for row in exp.fixed() if row]
    assert fixed and all(isinstance(v, float) and v == float(str(np.float32(v)))
                         for v in fixed)
    np.testing.assert_array_equal(np.float32(fixed), X32["income"].iloc[:10][exp.found])
    assert fixed == [round(v, 1) for v in fixed]  # the table's one decimal, no float32 tail
    rows = json.loads(exp.to_json())["explanation"]
    incomes = [row[list(X.columns).index("income")] for row in rows if row[0] is not None]
    assert incomes == fixed
    moved = CounterfactualExplainer(model, distance="mad", directions={"age": "increase"})
    values = [row["income"] for row in explain(moved.fit(X32), X32.iloc[:20]).changes()
              if "income" in row]
    assert values and all(v == float(str(np.float32(v))) for v in values)


def test_changes_of_a_pp_are_what_it_keeps(table):
    X, _, models = table
    cem = CEMExplainer(models["lr"], mode="PP").fit(X)
    exp = explain(cem, X.iloc[:20])
    assert exp.found.sum() >= 10
    for i, kept in enumerate(exp.changes()):
        if not exp.found[i]:
            continue
        expected = [X.columns[j] for j in np.flatnonzero(exp.perturbation[i] != 0)]
        assert list(kept) == expected
        assert len(kept) < X.shape[1]
        for name, value in kept.items():
            assert value == exp.explanation[name].iloc[i]
            if name in CATEGORICAL:
                assert value == X[name].iloc[i]  # a kept category is the instance's


def test_a_categorical_change_costs_one_mad(table):
    X, _, models = table
    cf = CounterfactualExplainer(models["lr"], distance="mad").fit(X)
    exp = explain(cf, X.iloc[:30])
    delta = exp.delta
    categorical = cf.categorical_mask_
    expected = (np.abs(delta[:, ~categorical]) / cf.mad_[~categorical]).sum(axis=1) \
        + delta[:, categorical].sum(axis=1)
    assert np.allclose(exp.distance[exp.found], expected[exp.found])
    assert np.all(cf.mad_[categorical] == 1.0)


def test_estimator_none_encodes_the_categories(table):
    X, y, _ = table
    cf = CounterfactualExplainer(None).fit(X, y)
    exp = explain(cf, X.iloc[:10])
    assert exp.found.all()
    assert (cf.estimator_.predict(exp.explanation) != cf.estimator_.predict(X.iloc[:10])).all()


def test_bad_table_parameters_are_named(table):
    X, _, models = table
    with pytest.raises(ValueError, match="`directions` gives categorical column 'job' a "
                                         "direction, but its categories have no order"):
        CounterfactualExplainer(models["lr"], directions={"job": "increase"}).fit(X)
    with pytest.raises(ValueError, match=r"`directions\['age'\]` must be one of"):
        CounterfactualExplainer(models["lr"], directions={"age": "up"}).fit(X)
    with pytest.raises(ValueError, match="`feature_range` names an unknown column 'height'"):
        CounterfactualExplainer(models["lr"], feature_range={"height": (0, 1)}).fit(X)
    with pytest.raises(ValueError, match=r"`no_info_val\['job'\]` is 'pilot', not a category"):
        CEMExplainer(models["lr"], no_info_val={"job": "pilot"}).fit(X)
    with pytest.raises(ValueError, match="search='fista' cannot move categorical columns"):
        CounterfactualExplainer(models["lr"], search="fista").fit(X)


@pytest.mark.parametrize("bounds", [(None, None), (0.0, np.inf), (np.nan, 1.0), 1.0, "ab",
                                    (1.0, 2.0, 3.0)])
def test_a_column_range_that_is_no_pair_of_finite_numbers_is_named(table, bounds):
    """Found by a user: a NaN or infinite bound was taken (a NaN bound), and the model then
    asked about NaN rows ("Input X contains NaN"); a number alone failed inside. (One None
    leaves that side to the data.)"""
    X, _, models = table
    for Explainer in (CEMExplainer, CounterfactualExplainer):
        with pytest.raises(ValueError, match=r"`feature_range\['age'\]` must be"):
            Explainer(models["lr"], feature_range={"age": bounds}).fit(X)


@pytest.mark.parametrize("value", [np.nan, np.inf, None, "old"])
def test_a_column_no_information_value_that_is_no_finite_number_is_named(table, value):
    X, _, models = table
    with pytest.raises(ValueError, match=r"`no_info_val\['age'\]` must be a finite number"):
        CEMExplainer(models["lr"], no_info_val={"age": value}).fit(X)


def test_an_array_after_a_dataframe_fit_takes_the_fits_columns_with_a_warning(table):
    X, _, models = table
    cf = CounterfactualExplainer(models["lr"]).fit(X)
    with pytest.warns(UserWarning, match="X does not have feature names, but the explainer "
                                         r"was fitted on a DataFrame.*\(age, job, income") \
            as caught:
        from_array = explain(cf, X.iloc[:6].to_numpy())
    # once (a review: said twice, for the categories fit never met and for the codes)
    assert sum("does not have feature names" in str(w.message) for w in caught) == 1
    from_frame = explain(cf, X.iloc[:6])
    np.testing.assert_array_equal(from_array.found, from_frame.found)
    np.testing.assert_array_equal(from_array.encoded["explanation"],
                                  from_frame.encoded["explanation"])
    with pytest.raises(ValueError, match="fitted on a DataFrame of 6 columns"):
        cf.explain(X.iloc[:6, :4].to_numpy())
    with pytest.raises(ValueError, match=r"X is a pandas Series, one row: .*df.iloc\[\[i\]\]"):
        cf.explain(X.iloc[0])
    # a new user's: a sparse matrix was told "X has shape ()"
    from scipy import sparse

    with pytest.raises(TypeError, match=r"Sparse data was passed.*toarray\(\)"):
        cf.explain(sparse.csr_matrix(np.ones((2, X.shape[1]))))


def test_inputs_are_not_mutated(table):
    X, _, models = table
    rows = X.iloc[:8].copy()
    before = rows.copy()
    explain(CEMExplainer(models["forest"], mode="PN").fit(X), rows)
    pd.testing.assert_frame_equal(rows, before)


def test_integer_coded_categories_in_an_array():
    rng = np.random.default_rng(1)
    colour = rng.integers(0, 4, size=400)  # four categories coded 0..3, no order
    x = rng.normal(size=400)
    y = ((colour == 2) | (x > 1)).astype(int)
    X = np.column_stack([x, colour]).astype(float)
    model = RandomForestClassifier(50, random_state=0).fit(X, y)
    cf = CounterfactualExplainer(model, categorical_features=[1]).fit(X)
    exp = explain(cf, X[:30])
    assert exp.found.mean() >= 0.95
    colours = set(np.asarray(exp.explanation[exp.found][:, 1], dtype=float))
    assert colours <= {0.0, 1.0, 2.0, 3.0}
    assert (model.predict(exp.explanation[exp.found].astype(float))
            != model.predict(X[:30][exp.found])).all()


def test_metrics_l1_is_the_explainers_mad_distance(table):
    """One MAD for the explainer and the metrics: a counterfactual's MAD-L1 is its distance."""
    from skcem.metrics import explanation_metrics

    X, _, models = table
    cf = CounterfactualExplainer(models["forest"], distance="mad").fit(X)
    rows = X.iloc[:20]
    exp = explain(cf, rows)
    metrics = explanation_metrics(models["forest"], rows, exp.explanation, X_train=X)
    assert metrics["valid"][exp.found].all()
    assert np.allclose(metrics["l1"][exp.found], exp.distance[exp.found])


def _central_differences(model, codec, Z, cotangent, step=1e-6):
    grad = np.zeros_like(Z)
    for j in np.flatnonzero(~codec.categorical_):
        h = step * max(1.0, np.abs(Z[:, j]).max())
        up, down = Z.copy(), Z.copy()
        up[:, j] += h
        down[:, j] -= h
        diff = model.predict_proba(codec.decode(up)) - model.predict_proba(codec.decode(down))
        grad[:, j] = (diff * cotangent).sum(axis=1) / (2 * h)
    return grad


@pytest.mark.filterwarnings("ignore:X does not have valid feature names")
@pytest.mark.parametrize("encode_categories", [
    OneHotEncoder(handle_unknown="ignore"),
    make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(drop="first")),
    OrdinalEncoder(),
], ids=["onehot", "imputer-onehot-drop", "ordinal"])
@pytest.mark.parametrize("classifier", [LogisticRegression(max_iter=1000),
                                        MLPClassifier((16,), max_iter=2000, random_state=0)],
                         ids=["lr", "mlp"])
def test_exact_gradients_of_a_table_pipeline_are_central_differences(
        table, encode_categories, classifier):
    X, y, _ = table
    encode = ColumnTransformer([("numbers", StandardScaler(), NUMERIC),
                                ("categories", encode_categories, CATEGORICAL)])
    model = make_pipeline(encode, classifier).fit(X, y)
    codec = TableCodec().fit(X)
    Z = codec.encode(X.iloc[:25])
    cotangent = np.random.default_rng(0).normal(size=(25, 2))
    proba, grad = exact_proba_vjp(model, table=codec)(Z, cotangent, return_proba=True)
    np.testing.assert_allclose(proba, model.predict_proba(X.iloc[:25]), rtol=1e-12)
    np.testing.assert_allclose(grad, _central_differences(model, codec, Z, cotangent),
                               rtol=1e-6, atol=1e-9)
    assert np.abs(grad[:, ~codec.categorical_]).max() > 1e-3
    np.testing.assert_array_equal(grad[:, codec.categorical_], 0.0)


@pytest.mark.filterwarnings("ignore:X does not have valid feature names")
@pytest.mark.parametrize("classifier", [
    LogisticRegression(max_iter=1000), SGDClassifier(loss="modified_huber", random_state=0),
    FrozenEstimator(LogisticRegression(max_iter=1000))], ids=["lr", "sgd-huber", "frozen"])
@pytest.mark.parametrize("n_classes", [2, 3])
def test_a_linear_model_on_text_and_categories_folds_their_share(table, classifier, n_classes):
    """Found by a user: a TF-IDF text column (categorical: constant for each row) made the
    exact gradient fill its 7,400 columns densely for every row at every step, 7 times
    slower than without it (2**15 hashed words: 25 times). Their share of the linear
    decision is now computed once per row's categories: the same probabilities and
    gradients as the model's own."""
    from sklearn.feature_extraction.text import HashingVectorizer, TfidfVectorizer

    X, y, _ = table
    rng = np.random.default_rng(1)
    X = X.assign(note=[" ".join(rng.choice(["good", "bad", "late", "kind", "rude"], 4))
                       for _ in range(len(X))])
    if n_classes == 3:
        y = np.where(X["income"] > 50, 2, y)
    encode = ColumnTransformer([("text", TfidfVectorizer(), "note"),
                                ("hashed", HashingVectorizer(n_features=2**12), "note"),
                                ("categories", OneHotEncoder(handle_unknown="ignore"),
                                 CATEGORICAL), ("numbers", StandardScaler(), NUMERIC)])
    if isinstance(classifier, FrozenEstimator):
        fitted = make_pipeline(encode, clone(classifier.estimator)).fit(X, y)
        model = make_pipeline(fitted[0], FrozenEstimator(fitted[-1]))
    else:
        model = make_pipeline(encode, clone(classifier)).fit(X, y)
    codec = TableCodec().fit(X)
    Z = codec.encode(X.iloc[:25])
    cotangent = np.random.default_rng(0).normal(size=(25, n_classes))
    vjp = exact_proba_vjp(model, table=codec)
    proba, grad = vjp(Z, cotangent, return_proba=True)
    np.testing.assert_allclose(proba, model.predict_proba(X.iloc[:25]), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(grad, _central_differences(model, codec, Z, cotangent),
                               rtol=1e-6, atol=1e-9)
    assert np.abs(grad[:, ~codec.categorical_]).max() > 1e-4
    np.testing.assert_array_equal(grad[:, codec.categorical_], 0.0)
    # never filled densely, 2**20 hashed words have their exact gradient too (refused as
    # too wide before)
    wide = make_pipeline(ColumnTransformer([
        ("hashed", HashingVectorizer(n_features=2**20), "note"),
        ("numbers", StandardScaler(), NUMERIC)]), LogisticRegression(max_iter=1000)).fit(X, y)
    proba, grad = exact_proba_vjp(wide, table=codec)(Z, cotangent, return_proba=True)
    np.testing.assert_allclose(proba, wide.predict_proba(X.iloc[:25]), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(grad, _central_differences(wide, codec, Z, cotangent),
                               rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("mode", ["PN", "PP"])
def test_fista_on_a_table_with_immutable_categories_uses_exact_gradients(table, mode):
    X, _, models = table
    answers = {}
    for gradient in ("exact", "numerical"):
        cem = CEMExplainer(models["lr"], mode=mode, search="fista", gradient=gradient,
                           immutable_features=CATEGORICAL, max_iterations=200,
                           c_steps=4).fit(X)
        assert isinstance(cem._backend, ExactBackend) == (gradient == "exact")
        answers[gradient] = explain(cem, X.iloc[:8])
    exact, numerical = answers["exact"], answers["numerical"]
    np.testing.assert_array_equal(exact.found, numerical.found)
    assert exact.found.sum() >= 3
    assert valid_by_predict(models["lr"], exact, mode).all()
    found = exact.found
    pd.testing.assert_frame_equal(exact.explanation[CATEGORICAL][found],
                                  X.iloc[:8][CATEGORICAL][found])
    l1 = {k: np.median(np.abs(a.perturbation[a.found]).sum(axis=1)) for k, a in answers.items()}
    assert l1["exact"] == pytest.approx(l1["numerical"], rel=0.01)
    assert exact.meta["n_model_rows"] < numerical.meta["n_model_rows"] / 2


def test_a_part_mixing_categorical_and_numeric_columns_has_no_exact_gradient(table):
    X, y, _ = table
    encode = ColumnTransformer([("all", OneHotEncoder(handle_unknown="ignore"), ["job", "age"]),
                                ("rest", StandardScaler(), ["income", "hours"])])
    model = make_pipeline(encode, LogisticRegression(max_iter=1000)).fit(X, y)
    # age declared a number ("auto" would take it as categories: the encoder encodes it)
    declared = dict(categorical_features=CATEGORICAL, immutable_features=CATEGORICAL)
    with pytest.raises(TypeError, match="ColumnTransformer 'all'.*mixes categorical"):
        CEMExplainer(model, search="fista", gradient="exact", **declared).fit(X)
    cem = CEMExplainer(model, search="fista", **declared).fit(X)
    assert not isinstance(cem._backend, ExactBackend)
    assert CEMExplainer(model).fit(X).categorical_mask_[list(X.columns).index("age")]


@pytest.mark.parametrize("Explainer, params", SETTINGS)
def test_gradient_search_answers_hold_whole_numbers_in_integer_columns(table, Explainer, params):
    X, _, models = table
    rows = X.iloc[:12]
    explainer = Explainer(models["lr"], search="fista", immutable_features=CATEGORICAL,
                          max_iterations=200, c_steps=4, **params).fit(X)
    exp = explain(explainer, rows)
    assert exp.found.sum() >= 4
    found = exp.explanation[exp.found]
    for column in ("age", "hours"):
        assert pd.api.types.is_integer_dtype(exp.explanation[column].dtype), column
        assert (found[column] == np.rint(found[column].astype(float))).all(), column
    assert valid_by_predict(models["lr"], exp, explainer.mode if params else "CF").all()
    shown = [v for row in exp.changes() for k, v in row.items() if k in ("age", "hours")]
    assert shown and all(type(v) is int for v in shown)  # as the column holds them
    if Explainer is CEMExplainer:
        whole = [X.columns.get_loc(c) for c in ("age", "hours")]
        background = explainer.no_info_val_[whole]
        np.testing.assert_array_equal(background, np.rint(background))
    if params.get("mode") == "PN":  # the distance is the rounded answer's own
        d = exp.perturbation[exp.found]
        np.testing.assert_allclose(exp.distance[exp.found],
                                   (d**2).sum(axis=1) + explainer.beta * np.abs(d).sum(axis=1))


@pytest.mark.parametrize("Explainer, params", SETTINGS)
def test_an_integer_array_gets_whole_numbers_too(Explainer, params):
    from sklearn.datasets import load_wine

    X, y = load_wine(return_X_y=True)
    X = np.rint(X * 10).astype(np.int64)  # integer measurements
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    explainer = Explainer(model, max_iterations=200, c_steps=4, **params).fit(X)
    exp = explain(explainer, X[::20])
    assert exp.found.sum() >= 4
    found = exp.explanation[exp.found]
    assert np.array_equal(found, np.rint(found))
    assert not np.array_equal(found, X[::20][exp.found])
    pred = model.predict(found)
    assert np.all((pred == exp.X_pred[exp.found]) == (params.get("mode") == "PP"))


@pytest.mark.parametrize("Explainer, params", [(CEMExplainer, {"mode": "PN"}),
                                               (CounterfactualExplainer, {})])
def test_rounding_keeps_an_integer_value_outside_the_range(Explainer, params):
    # b = -8 lies below its range: the answer needs no change of b, and moving it into
    # the range would be a needless change (for a PN, one towards the no-information value).
    import pandas as pd

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=400), rng.integers(-10, 11, 400)
    X = pd.DataFrame({"a": a, "b": b})
    model = LogisticRegression().fit(X, (a + 0.1 * b > 0.5).astype(int))
    x0 = pd.DataFrame({"a": [0.2], "b": [-8]})
    explainer = Explainer(model, search="fista", feature_range={"b": (-5, 10)}, **params)
    if params:
        explainer.set_params(no_info_val={"a": 0.0, "b": 0})
    exp = explain(explainer.fit(X), x0)
    assert exp.found[0] and exp.explanation["b"].iloc[0] == -8
    assert model.predict(exp.explanation)[0] != model.predict(x0)[0]


@pytest.mark.parametrize("search", ["auto", "fista", "neighbors"])
def test_fractional_bounds_of_an_integer_column_hold_whole_answers(search):
    # a PN pushed k to the bound 1.5, and the column became float
    import pandas as pd

    rng = np.random.RandomState(0)
    X = pd.DataFrame({"k": rng.randint(0, 10, 200), "x": rng.normal(size=200)})
    model = LogisticRegression().fit(X, ((X.k - 4.5) / 3 + X.x > 0).astype(int))
    cem = CEMExplainer(model, mode="PN", search=search, feature_range={"k": (1.5, 7.5)},
                       max_iterations=200, c_steps=4).fit(X)
    assert (cem.feature_range_[0][0], cem.feature_range_[1][0]) == (2.0, 7.0)
    exp = explain(cem, X.iloc[:20])
    assert exp.found.sum() >= 10
    k, k0 = exp.explanation.k[exp.found].astype(float), X.k.iloc[:20][exp.found]
    assert (k == np.rint(k)).all()
    assert ((k == k0) | ((k >= 2) & (k <= 7))).all()  # a changed k is inside the bounds
    assert valid_by_predict(model, exp, "PN").all()
    with pytest.raises(ValueError, match=r"`feature_range` of the integer column 'k', "
                                         r"\(2\.2, 2\.8\), holds no whole number"):
        CEMExplainer(model, feature_range={"k": (2.2, 2.8)}).fit(X)
    # a given no-information value too: a PP's removed k is whole
    pp = CEMExplainer(model, mode="PP", no_info_val={"k": 4.3}, search=search,
                      max_iterations=200, c_steps=4).fit(X)
    assert pp.no_info_val_[0] == 4.0
    kept = explain(pp, X.iloc[:20]).explanation.k.dropna().astype(float)
    assert (kept == np.rint(kept)).all()


def test_datetime_and_timedelta_columns_keep_their_dtypes_and_reach_the_model_as_times():
    import pandas as pd
    from sklearn.preprocessing import FunctionTransformer

    rng = np.random.default_rng(0)
    n = 300
    start = pd.Timestamp("2020-01-01")
    X = pd.DataFrame({"a": rng.normal(size=n),
                      "when": start + pd.to_timedelta(rng.integers(0, 365, n), unit="D"),
                      "zoned": pd.date_range("2021-01-01 08:30", periods=n, freq="h",
                                             tz="Europe/Paris"),
                      "lag": pd.to_timedelta(rng.integers(0, 100, n), unit="min")})
    day = (X["when"] - start).dt.days
    y = (X["a"] + (day - 180) / 60 > 0).astype(int)

    def day_number(frame):  # fails on numbers: the model must be given times
        return frame.apply(lambda column: (column - start).dt.days)

    model = make_pipeline(ColumnTransformer([
        ("a", StandardScaler(), ["a"]),
        ("when", make_pipeline(FunctionTransformer(day_number, feature_names_out="one-to-one"),
                               StandardScaler()), ["when"])]),
        LogisticRegression()).fit(X, y)
    explainer = CounterfactualExplainer(model, distance="mad", immutable_features=["a"])
    exp = explain(explainer.fit(X), X.iloc[:8])
    assert exp.found.sum() >= 6
    found = exp.explanation[exp.found]
    assert (found.dtypes == X.dtypes).all()
    assert np.all(model.predict(found) != model.predict(X.iloc[:8][exp.found]))
    # whole days, the column's own step; the columns the model ignores exactly as they were
    assert (found["when"] == found["when"].dt.normalize()).all()
    assert (found["when"] != X["when"].iloc[:8][exp.found]).all()
    for name in ("zoned", "lag"):
        pd.testing.assert_series_equal(found[name], X[name].iloc[:8][exp.found])
    assert all(set(change) == {"when"} and isinstance(change["when"], pd.Timestamp)
               for change in exp.changes() if change)
    assert '"2020-' in exp.to_json()


def test_times_of_another_unit_or_time_zone_at_explain():
    # Rows whose dates are datetime64[us] against the fit's [ns] were read as a thousandth of
    # their days (distances of 18,768 days for answers 10 to 332 days away); times in a time
    # zone against the fit's naive ones lost it silently.
    import pandas as pd
    from sklearn.preprocessing import FunctionTransformer

    rng = np.random.default_rng(0)
    start = pd.Timestamp("2020-01-01")
    X = pd.DataFrame({"when": (start + pd.to_timedelta(rng.integers(0, 1000, 200), unit="D"))
                      .astype("datetime64[ns]"), "a": rng.normal(size=200)})
    y = (X["when"] > pd.Timestamp("2021-06-01")).astype(int)

    def day_number(frame):
        return frame.apply(lambda column: (column - start).dt.days)

    model = make_pipeline(ColumnTransformer([
        ("when", FunctionTransformer(day_number), ["when"]), ("a", "passthrough", ["a"])]),
        LogisticRegression()).fit(X, y)
    explainer = CounterfactualExplainer(model).fit(X)
    rows = X.iloc[:4]
    expected = explain(explainer, rows)
    assert expected.found.all()
    for unit in ("us", "s"):
        other = explain(explainer, rows.assign(when=rows["when"].astype(f"datetime64[{unit}]")))
        np.testing.assert_array_equal(other.distance, expected.distance)
        pd.testing.assert_series_equal(other.explanation["when"], expected.explanation["when"])
    with pytest.raises(ValueError, match="'when' holds times in time zone Asia/Tokyo"):
        explainer.explain(rows.assign(when=rows["when"].dt.tz_localize("Asia/Tokyo")))


def test_a_models_native_categorical_columns_are_categories():
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(0)
    code, number = rng.integers(0, 5, 600), rng.normal(size=600)
    y = (np.isin(code, [1, 3]) * 2 + number > 1).astype(int)
    X = np.column_stack([code, number]).astype(float)
    model = HistGradientBoostingClassifier(categorical_features=[0], max_iter=30,
                                           random_state=0).fit(X, y)
    cf = CounterfactualExplainer(model).fit(X)
    np.testing.assert_array_equal(cf.categorical_mask_, [True, False])
    exp = explain(cf, X[:20])
    assert exp.found.sum() >= 10
    answers = np.asarray(exp.explanation[exp.found], dtype=float)
    assert set(answers[:, 0]) <= set(range(5))  # whole categories, not codes in between
    assert (model.predict(answers) != model.predict(X[:20][exp.found])).all()
    # Named by the user, or none: the user's choice stands.
    assert not CounterfactualExplainer(model, categorical_features=None).fit(
        X).categorical_mask_.any()


def test_lightgbms_own_categorical_columns_are_categories():
    # they moved as numbers: answers held codes never seen in fit
    lightgbm = pytest.importorskip("lightgbm")
    import pandas as pd

    rng = np.random.RandomState(0)
    X = pd.DataFrame({"x": rng.normal(size=300), "code": rng.choice([0, 3, 10], 300)})
    y = ((X.code != 0) & (X.x > -0.5)).astype(int).to_numpy()
    model = lightgbm.LGBMClassifier(n_estimators=30, min_child_samples=5, verbose=-1).fit(
        X, y, categorical_feature=["code"])
    cf = CounterfactualExplainer(model).fit(X)
    np.testing.assert_array_equal(cf.categorical_mask_, [False, True])
    exp = explain(cf, X.iloc[:30])
    assert exp.found.sum() >= 20
    assert set(exp.explanation.code[exp.found]) <= {0, 3, 10}
    assert (model.predict(exp.explanation[exp.found]) != exp.X_pred[exp.found]).all()
    plain = lightgbm.LGBMClassifier(n_estimators=5, verbose=-1).fit(X, y)
    assert not CounterfactualExplainer(plain).fit(X).categorical_mask_.any()


def test_native_categorical_columns_of_a_pipelines_last_step_are_traced_to_x():
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.preprocessing import FunctionTransformer

    rng = np.random.default_rng(0)
    code, number, other = rng.integers(0, 5, 600), rng.normal(size=600), rng.normal(size=600)
    y = (np.isin(code, [1, 3]) * 2 + number > 1).astype(int)
    X = pd.DataFrame({"number": number, "code": code, "other": other})

    def boosting():
        return HistGradientBoostingClassifier(categorical_features=[0], max_iter=30,
                                              random_state=0)

    # A ColumnTransformer puts the code first: its output names lead back to X's "code".
    reordered = make_pipeline(ColumnTransformer([("codes", "passthrough", ["code"])],
                                                remainder=StandardScaler()), boosting())
    identity = make_pipeline(FunctionTransformer(), boosting())
    for model in (reordered.fit(X, y), identity.fit(X[["code", "number", "other"]], y)):
        rows = X[list(model.feature_names_in_)]
        cf = CounterfactualExplainer(model).fit(rows)
        np.testing.assert_array_equal(cf.categorical_mask_, rows.columns == "code")
        exp = explain(cf, rows.iloc[:20])
        assert exp.found.sum() >= 10
        assert set(exp.explanation["code"][exp.found]) <= set(range(5))
    # Steps that rename columns beyond tracing: a warning asks for categorical_features.
    hidden = make_pipeline(FunctionTransformer(lambda Z: np.asarray(Z)[:, [1, 0, 2]]),
                           boosting()).fit(X, y)
    with pytest.warns(UserWarning, match="could not be traced back.*categorical_features"):
        CounterfactualExplainer(hidden).fit(X)
    # ... but not where X's own text columns are as many (found by a user: codes of them
    # an OrdinalEncoder made, past a step that renames; the warning asked for nothing new)
    texts = X.assign(code=X["code"].map("c{}".format))
    coded = make_pipeline(ColumnTransformer([("codes", OrdinalEncoder(), ["code"])],
                                            remainder="passthrough"),
                          FunctionTransformer(lambda Z: np.asarray(Z)), boosting()).fit(texts, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        cf = CounterfactualExplainer(coded).fit(texts)
    np.testing.assert_array_equal(cf.categorical_mask_, texts.columns == "code")


@pytest.mark.parametrize("Explainer, params", SETTINGS[:2])
def test_mad_search_in_mad_units_keeps_integer_columns_whole(table, Explainer, params):
    X, _, models = table
    explainer = Explainer(models["lr"], search="fista", immutable_features=CATEGORICAL,
                          distance="mad", max_iterations=300, c_steps=4, **params).fit(X)
    exp = explain(explainer, X.iloc[:12])
    assert exp.found.sum() >= 6
    found = exp.explanation[exp.found]
    for column in ("age", "hours"):
        assert pd.api.types.is_integer_dtype(exp.explanation[column].dtype)
        assert (found[column] == np.rint(found[column].astype(float))).all()
    assert valid_by_predict(models["lr"], exp, params.get("mode", "CF")).all()
    d = exp.perturbation[exp.found] / explainer.mad_
    expected = np.abs(d).sum(axis=1) if Explainer is CounterfactualExplainer else \
        (d**2).sum(axis=1) + explainer.beta * np.abs(d).sum(axis=1)
    np.testing.assert_allclose(exp.distance[exp.found], expected)


def test_a_category_the_model_knows_but_fit_did_not_see_is_explained():
    """A rare category (one row, as Adult's "Holand-Netherlands") falls in one fold of a grid
    search: the explainer fitted on the other folds must still take it, since the model
    does, and every fold must score."""
    from sklearn.model_selection import GridSearchCV, KFold

    X, y = make_table(n=240, seed=3)
    X.loc[7, "job"] = "astronaut"
    model = pipeline(LogisticRegression(max_iter=1000)).fit(X, y)
    cem = CEMExplainer(model, mode="PN", max_iterations=50, c_steps=2)
    grid = GridSearchCV(cem, {"beta": [0.05, 0.5]}, cv=KFold(3), error_score="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        grid.fit(X)
    assert np.all(np.isfinite(grid.cv_results_["mean_test_score"]))
    # Fitted without that row, the explainer knows the category from the model's encoder.
    fitted = CEMExplainer(model, mode="PN", max_iterations=50, c_steps=2).fit(X.drop(index=7))
    assert "astronaut" in list(fitted.categories_[list(X.columns).index("job")])
    exp = explain(fitted, X.loc[[7]])
    assert exp.to_frame()["job"].iloc[0] == "astronaut"
    # One the model does not know either, which its encoder ignores, is explained with a
    # warning (test_unseen_category_the_model_takes_is_explained).
    other = X.loc[[8]].copy()
    other["job"] = "pilot"
    with pytest.warns(UserWarning, match="hold categories fit never met.*'job': 'pilot'"):
        fitted.explain(other)


def _spouses(n=2000, seed=0):
    """A census-like table where a husband is male and a wife female, always; being a
    husband raises the class most."""
    rng = np.random.default_rng(seed)
    sex = rng.choice(["M", "F"], n)
    married = rng.random(n) < 0.5
    relationship = np.where(married, np.where(sex == "M", "Husband", "Wife"),
                            rng.choice(["Unmarried", "Own-child"], n))
    hours = rng.integers(10, 70, n)
    score = (2.5 * (relationship == "Husband") + 1.0 * (relationship == "Wife")
             + 0.05 * (hours - 40) + rng.normal(0, 0.5, n))
    X = pd.DataFrame({"sex": sex, "relationship": relationship, "hours": hours})
    encode = ColumnTransformer([("c", OneHotEncoder(), ["sex", "relationship"])],
                               remainder=StandardScaler())
    model = make_pipeline(encode, LogisticRegression()).fit(X, (score > 1.5).astype(int))
    return X, model


def test_answers_never_pair_categories_that_never_occur_together():
    from skcem.metrics import explanation_metrics, summarize_metrics

    X, model = _spouses()
    rows = X[(model.predict(X) == 0) & (X["sex"] == "F")].iloc[:30]
    explainer = CounterfactualExplainer(model, immutable_features=["sex"]).fit(X)
    answers = {}
    for check in (True, False):
        if not check:  # what the search would answer without the check
            explainer._category_pairs = None
        exp = explain(explainer, rows)
        assert exp.found.all()
        frame = exp.to_frame()
        answers[check] = frame[X.columns]
        female_husbands = (frame["sex"] == "F") & (frame["relationship"] == "Husband")
        assert (female_husbands.sum() == 0) == check
    table = explanation_metrics(model, rows, answers[False], X_train=X)
    # how many unchecked answers pair rarely varies with the CPU's rounding (all 30 where
    # numpy's AVX-512 kernels are off): most do, and each such pair counts once
    assert table["rare_pairs"].max() == 1
    assert summarize_metrics(table)["rare_pairs_share"] > 0.5
    table = explanation_metrics(model, rows, answers[True], X_train=X)
    assert summarize_metrics(table)["rare_pairs_share"] == 0.0
    # A pair the instance holds itself is no change: a female husband explained keeps hers.
    odd = X.iloc[[0]].assign(sex="F", relationship="Husband", hours=15)
    kept = explanation_metrics(model, odd, odd, X_train=X)
    assert kept["rare_pairs"].iloc[0] == 0


def test_times_encode_to_whole_steps_and_decode_exactly():
    import pandas as pd

    X = pd.DataFrame({
        "day": pd.to_datetime(["2020-01-03", None, "2020-01-01", "2021-06-30"]),
        "ns": pd.to_datetime([1_600_000_000_123_456_789, 1_600_000_000_000_000_000,
                              1_600_000_000_000_000_001, None]),
        "wait": pd.to_timedelta(["1h", "90min", None, "0s"]),
        # local midnights across a daylight saving change: still whole days
        "local": pd.date_range("2022-03-25", periods=4, freq="D", tz="Europe/Paris")})
    codec = TableCodec().fit(X)
    Z = codec.encode(X)
    assert codec.integer_.all() and not codec.categorical_.any()
    np.testing.assert_array_equal(Z[:, 0], [2, np.nan, 0, 546])  # days since the earliest
    np.testing.assert_array_equal(Z[:, 2], [60, 90, np.nan, 0])  # minutes
    np.testing.assert_array_equal(Z[:, 3], [0, 1, 2, 3])
    pd.testing.assert_frame_equal(codec.decode(Z, for_model=False), X)
    pd.testing.assert_frame_equal(codec.decode(Z), X)


def test_times_of_day_in_the_hour_a_clock_turns_back_keep_their_own_time():
    """Found by a user: 02:30+02:00 on the night Europe/Berlin's clocks turn back (the first
    of two 02:30s) was read as the second, an hour later: the model was asked about another
    instance, and an answer it put in the instance's own class was reported found."""
    import pandas as pd
    from sklearn.preprocessing import FunctionTransformer
    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.default_rng(0)
    n = 300
    utc = pd.Timestamp("2021-10-30 12:00", tz="UTC") + pd.to_timedelta(
        rng.integers(0, 160, n) * 15, unit="min")
    X = pd.DataFrame({"t": utc.tz_convert("Europe/Berlin"), "x": rng.normal(size=n)})
    X.loc[0, "t"] = pd.Timestamp("2021-10-31 02:30+02:00").tz_convert("Europe/Berlin")
    X.loc[1, "t"] = pd.Timestamp("2021-10-31 02:30+01:00").tz_convert("Europe/Berlin")
    codec = TableCodec().fit(X)
    Z = codec.encode(X.iloc[:2])
    assert Z[1, 0] - Z[0, 0] == 60  # an hour of minutes apart, not the same number
    pd.testing.assert_frame_equal(codec.decode(Z), X.iloc[:2])

    def hours(frame):
        return ((frame["t"].dt.tz_convert("UTC") - pd.Timestamp("2021-10-31 01:00", tz="UTC"))
                .dt.total_seconds() / 3600).to_numpy()

    y = (hours(X) >= 0).astype(int)
    model = make_pipeline(FunctionTransformer(lambda frame: np.c_[hours(frame), frame["x"]]),
                          DecisionTreeClassifier(random_state=0)).fit(X, y)
    exp = CounterfactualExplainer(model).fit(X).explain(X.iloc[:2])
    np.testing.assert_array_equal(exp.X_pred, model.predict(X.iloc[:2]))
    assert exp.found.all()
    assert np.all(model.predict(exp.explanation) != model.predict(X.iloc[:2]))
    # found by a review: a daily time of day (02:30 each day, the first of two that night)
    daily = pd.DataFrame({"t": pd.date_range("2025-10-20 02:30", periods=12, freq="D",
                                             tz="Europe/Berlin", ambiguous=True)})
    assert daily["t"].iloc[6] == pd.Timestamp("2025-10-26 00:30", tz="UTC")
    codec = TableCodec().fit(daily)
    pd.testing.assert_frame_equal(codec.decode(codec.encode(daily)), daily)
    # ... and whole wall-clock hours in a zone whose clocks move by half an hour stay so
    hours = pd.DataFrame({"t": pd.date_range("2025-04-05 12:00", periods=48, freq="h")
                          .tz_localize("Australia/Lord_Howe", ambiguous="NaT")})
    assert hours["t"].notna().all() and (hours["t"].dt.minute == 0).all()
    codec = TableCodec().fit(hours)
    Z = codec.encode(hours)
    assert np.all(np.diff(Z[:, 0]) == 1)  # a step of an hour, not half an hour or a minute
    pd.testing.assert_frame_equal(codec.decode(Z), hours)


def test_categories_a_model_ignores_are_undone_together_where_one_alone_is_a_rare_pair():
    # Two text columns of mostly distinct values: undoing one alone pairs the instance's
    # value with the start's, a pair no row shows (refused); both together are the instance's.
    import pandas as pd

    rng = np.random.default_rng(0)
    n = 300
    day = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 1000, n), unit="D")
    X = pd.DataFrame({"signup": day.astype(str),
                      "last": (day + pd.to_timedelta(rng.integers(0, 9000, n), unit="h"))
                      .astype(str),
                      "amount": rng.normal(100, 30, n)})
    model = make_pipeline(ColumnTransformer([("n", StandardScaler(), ["amount"])]),
                          LogisticRegression()).fit(X, np.where(X["amount"] > 100, "hi", "lo"))
    exp = explain(CounterfactualExplainer(model).fit(X), X.iloc[:5])
    assert exp.found.all()
    assert all(set(change) == {"amount"} for change in exp.changes())


def _dated_table():
    """A column of days in 2020 beside a number the model alone reads, and the model."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"when": pd.Timestamp("2020-01-01")
                      + pd.to_timedelta(rng.integers(0, 100, 200), unit="D"),
                      "a": rng.normal(size=200)})
    model = make_pipeline(ColumnTransformer([("a", StandardScaler(), ["a"])]),
                          LogisticRegression()).fit(X, (X["a"] > 0).astype(int))
    return X, model


def test_feature_range_of_time_columns_in_times():
    X, model = _dated_table()
    explainer = CounterfactualExplainer(model, feature_range={
        "when": (pd.Timestamp("2020-01-10 12:00"), pd.Timestamp("2020-02-01"))}).fit(X)
    lower, upper = explainer.feature_range_
    offset = X["when"].min()
    assert (lower[0], upper[0]) == ((pd.Timestamp("2020-01-11") - offset).days,
                                    (pd.Timestamp("2020-02-01") - offset).days)
    # explain takes the bounds as given to fit (times compare by value, not as objects)
    exp = explainer.explain(X.iloc[:10])
    assert exp.found.any()
    when = exp.explanation["when"][exp.found]
    moved = when != X["when"].iloc[:10][exp.found]
    assert when[moved].between(pd.Timestamp("2020-01-11"), pd.Timestamp("2020-02-01")).all()
    # numpy's times and durations are times and durations, not numbers of steps
    for bounds in [(np.datetime64("2020-01-10T12:00"), np.datetime64("2020-02-01")),
                   (offset + np.timedelta64(10, "D"), offset + pd.Timedelta(days=31))]:
        fitted = CounterfactualExplainer(model, feature_range={"when": bounds}).fit(X)
        assert fitted.feature_range_[0][0] == 10 or fitted.feature_range_[0][0] == 11
        assert fitted.explain(X.iloc[:3]).found.any()
    with pytest.raises(ValueError, match=r"feature_range\['when'\].*pair \(low, high\) of times"):
        CounterfactualExplainer(model, feature_range={"when": ("soon", "later")}).fit(X)


def test_answers_keep_nullable_number_dtypes():
    """Int64 and Float64 columns come back as such (before: int64 and float64)."""
    from sklearn.datasets import load_iris
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y = load_iris(return_X_y=True)
    frame = pd.DataFrame({"a": pd.array(np.round(X[:, 0] * 10).astype(int), dtype="Int64"),
                          "b": pd.array(X[:, 1], dtype="Float64"), "c": X[:, 2],
                          "d": X[:, 3]})
    model = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(frame, y)
    exp = CounterfactualExplainer(model).fit(frame).explain(frame.iloc[::30])
    assert exp.found.all()
    assert exp.explanation.dtypes.tolist() == frame.dtypes.tolist()
    assert (model.predict(exp.explanation) != model.predict(frame.iloc[::30])).all()


@pytest.mark.parametrize("Explainer, params", SETTINGS[:2])
def test_a_smooth_model_with_immutable_categories_gets_the_gradient_search(table, Explainer,
                                                                            params):
    # the gradient-free search was picked for any categorical table: on Adult its PNs were a
    # median 10% farther than the gradient search's, up to 8 times
    X, _, models = table
    settings = dict(immutable_features=CATEGORICAL, distance="mad", **params)
    auto = Explainer(models["lr"], **settings).fit(X)
    assert auto.search_ == "fista"
    assert Explainer(models["lr"], immutable_features=["sex"], **params).fit(X).search_ \
        == "neighbors"
    assert Explainer(models["forest"], **settings).fit(X).search_ == "neighbors"
    rows = X.iloc[:20]
    completed = explain(auto, rows)
    alone = explain(Explainer(models["lr"], search="fista", **settings).fit(X), rows)
    # completed and polished: every row the gradient search answers, no farther
    assert np.all(completed.found[alone.found])
    both = alone.found
    assert np.all(completed.distance[both] <= alone.distance[both] * (1 + 1e-9))
    assert valid_by_predict(models["lr"], completed, params.get("mode", "CF")).all()
    np.testing.assert_array_equal(completed.explanation.loc[completed.found, CATEGORICAL],
                                  rows.loc[completed.found, CATEGORICAL])


def test_a_pp_with_immutable_categories_reports_the_tables_distance(table):
    # the gradient search counted the category codes' difference (8 - 1 = 7 units for a kept
    # category): the same answer's distance differed from the gradient-free search's. Kept
    # by construction, immutable categories are no part of a PP's distance at all.
    X, _, models = table
    settings = dict(mode="PP", immutable_features=CATEGORICAL, distance="mad", beta=0.1)
    rows = X.iloc[:12]
    runs = {search: explain(CEMExplainer(models["lr"], search=search, **settings).fit(X), rows)
            for search in ("fista", "neighbors")}
    explainer = CEMExplainer(models["lr"], search="fista", **settings).fit(X)
    exp = runs["fista"]
    assert exp.found.any()
    d = exp.encoded["explanation"] - explainer.no_info_val_
    categorical = explainer.categorical_mask_
    cost = np.where(categorical, 0.0,
                    (d / explainer.mad_) ** 2 + 0.1 * np.abs(d) / explainer.mad_)
    np.testing.assert_allclose(exp.distance[exp.found], cost[exp.found].sum(axis=1))
    same = exp.found & runs["neighbors"].found & np.all(
        exp.encoded["explanation"] == runs["neighbors"].encoded["explanation"], axis=1)
    np.testing.assert_allclose(exp.distance[same], runs["neighbors"].distance[same])


def test_a_pp_never_moves_past_an_instance_outside_the_range():
    # gain 0 is the no-information value, below the range (100, 30000): the gradient search's
    # PP set it to 100 (the range's background), farther from 0 than the instance
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"job": rng.choice(["a", "b", "c"], 300), "age": rng.integers(18, 70, 300),
                      "gain": np.where(rng.random(300) < 0.8, 0, rng.integers(100, 20000, 300))})
    y = ((X["age"] > 40) | (X["gain"] > 5000)).astype(int)
    model = make_pipeline(ColumnTransformer([("job", OneHotEncoder(), ["job"]),
                                             ("numbers", StandardScaler(), ["age", "gain"])]),
                          LogisticRegression()).fit(X, y)
    rows = X[X["gain"] == 0].iloc[:4]
    for search in ("fista", "auto"):
        cem = CEMExplainer(model, mode="PP", immutable_features=["job"], search=search,
                           feature_range={"gain": (100, 30000)}).fit(X)
        exp = explain(cem, rows)
        assert cem.no_info_val_[2] == 0 and exp.found.any()
        np.testing.assert_array_equal(exp.explanation.loc[exp.found, "gain"], 0)
        assert valid_by_predict(model, exp, "PP").all()


def test_a_numeric_array_with_categorical_columns_gives_numbers_back():
    """Found by a user: a float array with a column of category codes came back as an array
    of objects, where ``np.isnan`` fails; its categories are numbers, so are the answers
    (NaN rows where none was found)."""
    rng = np.random.RandomState(3)
    X = np.c_[rng.choice([0, 1, 2, 5], 200), rng.randn(200), rng.randn(200)]
    y = ((X[:, 0] == 2) * 1.5 + X[:, 1] + X[:, 2] / 5 > 1.2).astype(int)
    model = RandomForestClassifier(6, max_depth=4, random_state=0).fit(X, y)
    # the codes and one number immutable: some rows have no answer (NaN rows)
    explainer = CounterfactualExplainer(model, categorical_features=[0],
                                        immutable_features=[0, 1]).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        answers = explainer.transform(X[:20])
        exp = explainer.explain(X[:20])
    assert answers.dtype == np.float64 and exp.explanation.dtype == np.float64
    found = ~np.isnan(answers).all(axis=1)
    np.testing.assert_array_equal(found, exp.found)
    assert found.any() and not found.all()
    assert set(answers[found, 0]) <= {0.0, 1.0, 2.0, 5.0}
    assert np.all(model.predict(answers[found]) != model.predict(X[:20][found]))


def test_decoding_keeps_the_columns_order_and_dtypes_around_the_block_of_floats():
    """The float64 columns are decoded as one block (a thousand columns one Series at a time
    cost 0.18 s a model call); the others, between them, keep their place and dtype."""
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=6), "job": list("xyzxyz"),
                      "b": rng.normal(size=6), "n": rng.integers(0, 9, 6),
                      "c": rng.normal(size=6).astype(np.float32), "d": rng.normal(size=6)})
    X["job"] = X["job"].astype("category")
    codec = TableCodec().fit(X)
    Z = codec.encode(X)
    back = codec.decode(Z, for_model=False, index=X.index)
    pd.testing.assert_frame_equal(back, X)
    for_model = codec.decode(Z, index=X.index)
    assert list(for_model.columns) == list(X.columns)
    np.testing.assert_array_equal(for_model[["a", "b", "d"]], X[["a", "b", "d"]])
    assert for_model["job"].dtype == X["job"].dtype


def test_columns_the_models_encoder_takes_are_categories_whatever_their_dtype():
    # Zip codes given as integers and grades as text of digits, one-hot encoded by the
    # Pipeline: "auto" moved the integers as numbers, to codes the encoder never saw, and the
    # digit texts crashed with an error naming another column.
    rng = np.random.default_rng(11)
    n = 600
    zips = rng.choice(np.arange(10000, 99999), 30, replace=False)
    frame = pd.DataFrame({"age": rng.integers(18, 80, n), "income": rng.normal(50, 15, n),
                          "zip": rng.choice(zips, n),
                          "grade": pd.Series(rng.choice(["1", "2", "3"], n), dtype=object)})
    y = ((frame.age - 45) / 15 + (frame.income - 50) / 15 + frame.zip.isin(zips[:10]) * 1.5
         - (frame.grade == "3") > 0.5).astype(int)
    model = make_pipeline(
        ColumnTransformer([("c", OneHotEncoder(handle_unknown="ignore"), ["zip", "grade"]),
                           ("n", StandardScaler(), ["age", "income"])]),
        LogisticRegression(max_iter=1000)).fit(frame[:500], y[:500])
    for explainer in (CounterfactualExplainer(model, distance="mad"),
                      CEMExplainer(model, mode="PN", distance="mad")):
        explainer.fit(frame[:500])
        np.testing.assert_array_equal(explainer.categorical_mask_, [False, False, True, True])
        exp = explain(explainer, frame[500:530])
        answers = exp.explanation[exp.found]
        assert exp.found.sum() >= 25
        assert answers.zip.isin(zips).all() and answers.grade.isin(["1", "2", "3"]).all()
        assert np.all(model.predict(answers) != exp.X_pred[exp.found])


def test_the_model_sees_the_whole_numbers_the_answers_report():
    # In MAD units a whole number's round trip (k / scale) * scale missed k by an ulp: the
    # model was asked about 53678.99999999999, the answer reported 53679.
    from skcem._fista import ScaledBackend

    class Spy:
        def predict(self, Z):
            self.seen = Z
            return np.zeros(len(Z), int)

    scale = np.array([0.1, 3.7, 1e4 / 3])
    whole = np.array([False, True, True])
    values = np.array([[0.3, 7.0, 53679.0], [1.0, 11.0, 98128.0]])
    spy = Spy()
    ScaledBackend(spy, scale, whole=whole).predict(values / scale)
    np.testing.assert_array_equal(spy.seen[:, 1:], values[:, 1:])
    ScaledBackend(spy, scale).predict(values / scale)  # no integer columns: as computed
    np.testing.assert_allclose(spy.seen, values, rtol=1e-15)


def test_an_answer_whose_class_changed_since_the_search_asked_is_not_found(iris, iris_model):
    from skcem._fista import SearchResult

    X, _ = iris
    cf = CounterfactualExplainer(iris_model).fit(X)
    rows = X[[0, 60, 120]]
    classes = iris_model.predict(rows)
    claimed = classes.copy()
    claimed[1] = (claimed[1] + 1) % 3  # the search's class for row 1 is not the model's
    n = len(rows)
    result = SearchResult(explanation=rows.copy(), found=np.ones(n, bool),
                          distance=np.ones(n), best_c=np.ones(n),
                          explanation_proba=np.full((n, 3), 1 / 3), explanation_class=claimed,
                          n_iterations=np.ones(n, int), flat_gradient=np.zeros(n, bool),
                          rejected_by_predict=np.zeros(n, bool))
    cf._recheck_answers([result])
    np.testing.assert_array_equal(result.found, [True, False, True])
    np.testing.assert_array_equal(result.rejected_by_predict, [False, True, False])
    assert np.isnan(result.explanation[1]).all() and np.isnan(result.distance[1])


def test_answers_that_break_one_hot_columns_are_named():
    # A model fitted on pd.get_dummies' columns: answers set a category's column to 0.99 or
    # two of them to 1 (rows no data holds), without a word.
    from skcem import SkcemWarning
    from skcem._tabular import one_hot_groups

    rng = np.random.default_rng(0)
    n = 600
    raw = pd.DataFrame({"age": rng.normal(40, 10, n), "job": rng.choice(["a", "b", "c"], n),
                        "city": rng.choice(["x", "y"], n)})
    y = ((raw.age - 40) / 10 + (raw.job == "b") * 1.5 - (raw.city == "y") > 0).astype(int)
    X = pd.get_dummies(raw).astype(float).to_numpy()
    assert one_hot_groups(X) == [[1, 2, 3], [4, 5]]
    model = LogisticRegression(max_iter=1000).fit(X, y)
    with pytest.warns(SkcemWarning, match=r"\d+ of \d+ answers leave columns that X holds "
                                          "one-hot encoded"):
        explain(CounterfactualExplainer(model, search="fista").fit(X), X[:20])
    with warnings.catch_warnings():  # the same columns held: no word
        warnings.simplefilter("error", SkcemWarning)
        explain(CounterfactualExplainer(model, immutable_features=[1, 2, 3, 4, 5]).fit(X), X[:20])


def test_answers_that_break_one_hot_columns_with_a_dropped_level_are_named():
    """Found by a user: columns of pd.get_dummies(drop_first=True) hold at most one 1 a row
    (none for the dropped level), which the detection of exactly one 1 missed: 19 of 100
    answers had two 1s in a group, without a word."""
    from skcem import SkcemWarning
    from skcem._tabular import dropped_level_groups

    rng = np.random.default_rng(0)
    raw = pd.DataFrame({"x": rng.normal(size=600), "c": rng.choice(list("abcde"), 600),
                        "is_new": rng.integers(0, 2, 600)})
    y = ((raw.x + (raw.c == "d") * 2 - (raw.c == "a") + raw.is_new) > 0.5).astype(int)
    X = pd.get_dummies(raw, columns=["c"], drop_first=True, dtype=int)
    assert list(X.columns) == ["x", "is_new", "c_b", "c_c", "c_d", "c_e"]
    assert dropped_level_groups(X, X.columns) == [[2, 3, 4, 5]]
    assert dropped_level_groups(X, None) == []  # no names: two rare flags are no group
    model = LogisticRegression().fit(X, y)
    with pytest.warns(SkcemWarning, match=r"\d+ of 100 answers set more than one 1 in "
                                          r"columns named alike .*\(such as c_b, c_c, c_d, "
                                          r"\.\.\.: read as one-hot with a dropped level\)"):
        explain(CounterfactualExplainer(model).fit(X), X.iloc[-100:])


def test_polars_frames_are_read_as_pandas(table):
    """Found by a user: every explainer crashed on a polars DataFrame with an unrelated
    AttributeError, and the metrics dropped its column names."""
    pl = pytest.importorskip("polars")
    from skcem import GradientSimilarityExplainer
    from skcem.metrics import explanation_metrics

    def polars(frame):  # pl.from_pandas needs pyarrow for text columns
        return pl.DataFrame({name: frame[name].tolist() for name in frame.columns})

    X, y, models = table
    model = pipeline(LogisticRegression(max_iter=1000)).fit(polars(X), pl.Series(y))
    expected = CounterfactualExplainer(model).fit(X).explain(X[:6])
    explainer = CounterfactualExplainer(model).fit(polars(X))
    answers = explainer.explain(polars(X[:6]))
    pd.testing.assert_frame_equal(answers.explanation, expected.explanation)
    assert valid_by_predict(model, answers, "CF").all()
    metrics = explanation_metrics(model, polars(X[:6]),
                                  polars(answers.explanation), X_train=X)
    assert metrics["valid"].tolist() == answers.found.tolist()
    with pytest.MonkeyPatch.context() as patch:  # polars's to_pandas needs pyarrow
        def no_pyarrow(self, *args, **kwargs):
            raise ModuleNotFoundError("No module named 'pyarrow'")

        patch.setattr(pl.DataFrame, "to_pandas", no_pyarrow)
        again = explainer.explain(polars(X[:6]))
    pd.testing.assert_frame_equal(again.explanation, expected.explanation)
    numeric = X[NUMERIC]
    similarity = GradientSimilarityExplainer(LogisticRegression(max_iter=1000)).fit(
        polars(numeric), pl.Series(y))
    np.testing.assert_allclose(similarity.explain(polars(numeric[:3])).scores,
                               similarity.explain(numeric[:3]).scores)


def test_columns_labelled_by_integers_are_matched_by_label():
    """Found by a user: with integer (or tuple) column labels, which scikit-learn keeps no
    feature_names_in_ for, columns given in another order were read by position: the answers'
    cells sat under the wrong labels and their classes were wrong."""
    from skcem import GradientSimilarityExplainer

    X, y = make_table()
    X = X[NUMERIC].set_axis([0, 1, 2], axis=1)
    model = LogisticRegression(max_iter=1000).fit(X, y)
    reordered = X[:5][[2, 0, 1]]
    for explainer in (CounterfactualExplainer(model).fit(X),
                      CEMExplainer(model).fit(X)):
        expected = explain(explainer, X[:5])
        with pytest.warns(UserWarning, match="in another order: they are matched by name"):
            answers = explain(explainer, reordered)
        pd.testing.assert_frame_equal(answers.explanation, expected.explanation)
    similarity = GradientSimilarityExplainer(model).fit(X, y)
    with pytest.warns(UserWarning, match="in another order"):
        scores = similarity.explain(reordered).scores
    np.testing.assert_allclose(scores, similarity.explain(X[:5]).scores)


def test_categories_a_dtype_declares_but_no_row_holds_are_not_offered():
    """Found by a user: a category dtype's unused categories were answers (4 of 5 PNs moved to
    one no row holds, unknown to the model's encoder), and a default OneHotEncoder, which
    fails on them, had the explainer refused."""
    X, y = make_table()
    X["city"] = pd.Categorical(X["city"], categories=["west", "north", "south", "east", "up"])
    model = make_pipeline(ColumnTransformer([("categories", OneHotEncoder(), CATEGORICAL),
                                             ("numbers", StandardScaler(), NUMERIC)]),
                          LogisticRegression(max_iter=1000)).fit(X, y)
    city = X.columns.get_loc("city")
    for explainer in (CounterfactualExplainer(model), CEMExplainer(model)):
        explainer.fit(X)
        # the unused ones last, past the range of the answers' codes
        assert list(explainer.categories_[city]) == ["north", "south", "east", "west", "up"]
        assert explainer.feature_range_[1][city] == 2
        answers = explain(explainer, X[:20])
        assert answers.found.sum() >= 15
        assert set(answers.explanation["city"].dropna()) <= {"north", "south", "east"}
        assert answers.explanation["city"].dtype == X["city"].dtype
        assert valid_by_predict(model, answers, "CF").all()
    # an instance may hold one (a model that ignores categories it does not know takes it)
    lenient = make_pipeline(ColumnTransformer([
        ("categories", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
        ("numbers", StandardScaler(), NUMERIC)]), LogisticRegression(max_iter=1000)).fit(X, y)
    rows = X[:6].assign(city=pd.Categorical(["up"] * 6, categories=X["city"].cat.categories))
    for explainer in (CounterfactualExplainer(lenient), CEMExplainer(lenient)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the rows are outside the range of the codes
            answers = explain(explainer.fit(X), rows)
        assert answers.found.sum() >= 5
        assert valid_by_predict(lenient, answers, "CF").all()
        kept = answers.explanation["city"][answers.found]
        assert set(kept) <= {"up", "north", "south", "east"}


def test_arrow_times_and_dictionaries_and_columns_of_other_objects():
    """Found by a user: Arrow timestamps and durations (dtype_backend="pyarrow") were refused
    as "X column None mixes times", Arrow dictionaries were not categories, and a column of
    periods or dates crashed with a bare StopIteration."""
    pa = pytest.importorskip("pyarrow")
    rng = np.random.default_rng(0)
    n = 300
    days, a = rng.integers(0, 1000, n), rng.normal(size=n)
    s = rng.choice(["u", "v", "w"], n)
    y = ((days > 500) ^ (s == "u")).astype(int)
    X = pd.DataFrame({
        "a": pd.array(a, dtype=pd.ArrowDtype(pa.float64())),
        "when": pd.array(pd.Timestamp("2020-01-01") + pd.to_timedelta(days, unit="D"),
                         dtype=pd.ArrowDtype(pa.timestamp("us"))),
        "took": pd.array(pd.to_timedelta(rng.integers(1, 48, n), unit="h"),
                         dtype=pd.ArrowDtype(pa.duration("us"))),
        "s": pd.Series(pd.arrays.ArrowExtensionArray(pa.array(s).dictionary_encode()))})

    def predict_proba(rows):
        after = rows["when"].astype("datetime64[us]") > pd.Timestamp("2021-05-15")
        p = np.where(after.to_numpy() ^ (rows["s"].astype(str) == "u").to_numpy(), 0.9, 0.1)
        return np.column_stack([1 - p, p])

    explainer = CounterfactualExplainer(predict_proba).fit(X, y)
    assert explainer.categorical_mask_.tolist() == [False, False, False, True]
    answers = explain(explainer, X[:10])
    assert answers.found.all()
    assert answers.explanation.dtypes.tolist() == X.dtypes.tolist()
    assert (predict_proba(answers.explanation).argmax(1) != predict_proba(X[:10]).argmax(1)).all()
    untouched = answers.explanation["took"] == X["took"][:10]
    assert untouched.all()  # the model does not read it: never a change

    def by_duration(rows):  # a model that reads the durations as durations
        long = (rows["took"].astype("timedelta64[us]") > pd.Timedelta(hours=24)).to_numpy()
        return np.column_stack([np.where(long, 0.1, 0.9), np.where(long, 0.9, 0.1)])

    answers = explain(CounterfactualExplainer(by_duration).fit(X), X[:10])
    assert answers.found.all() and answers.explanation["took"].dtype == X["took"].dtype
    assert (by_duration(answers.explanation).argmax(1) != by_duration(X[:10]).argmax(1)).all()
    # the closest whole hours (the column's step) on the other side of 24 hours
    hours = answers.explanation["took"].astype("timedelta64[us]") / pd.Timedelta(hours=1)
    long = X["took"][:10].astype("timedelta64[us]") > pd.Timedelta(hours=24)
    np.testing.assert_array_equal(hours, np.where(long, 24, 25))
    # Arrow dates (date32), whole days
    dates = X.assign(when=pd.array([stamp.date() for stamp in X["when"].astype(
        "datetime64[us]")], dtype=pd.ArrowDtype(pa.date32())))
    answers = explain(CounterfactualExplainer(predict_proba).fit(dates, y), dates[:10])
    assert answers.found.all() and answers.explanation["when"].dtype == dates["when"].dtype
    assert (predict_proba(answers.explanation).argmax(1)
            != predict_proba(dates[:10]).argmax(1)).all()
    periods = X.assign(when=pd.period_range("2020-01", periods=n, freq="M"))
    with pytest.raises(ValueError, match=r"X column 'when' holds non-numeric values such as "
                                         r"Period\('2020-01', 'M'\); name it in "
                                         r"`categorical_features`, or convert the column "
                                         r"\(dtype period\[M\]\) to numbers or datetimes"):
        CounterfactualExplainer(predict_proba).fit(periods, y)


def test_to_frame_under_multiindex_columns_warns_of_nothing():
    """Found by a user: to_frame set its columns with partial keys under a MultiIndex, which
    pandas deprecates (five Pandas4Warnings a call)."""
    X, y = make_table()
    X = X[NUMERIC]
    X.columns = pd.MultiIndex.from_tuples([("person", "age"), ("money", "income"),
                                           ("work", "hours")])
    model = LogisticRegression(max_iter=1000).fit(X, y)
    answers = explain(CounterfactualExplainer(model).fit(X), X[:4])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frame = answers.to_frame()
    assert frame["found"].tolist() == answers.found.tolist()
    pd.testing.assert_frame_equal(frame[list(X.columns)], answers.explanation)


def test_multiindex_columns_are_named_by_their_tuples_in_by_feature_parameters():
    """Left from a user's trial: under MultiIndex columns a tuple could not name a column in
    immutable_features, feature_range or directions (a 2-D array, or an unknown key)."""
    X, y = make_table()
    X = X[NUMERIC]
    X.columns = pd.MultiIndex.from_tuples([("person", "age"), ("money", "income"),
                                           ("work", "hours")], names=["group", "feature"])
    model = LogisticRegression(max_iter=1000).fit(X, y)
    explainer = CounterfactualExplainer(
        model, immutable_features=[("person", "age")], directions={("work", "hours"): "increase"},
        feature_range={("money", "income"): (None, 1e9)}).fit(X)
    assert explainer.immutable_mask_.tolist() == [True, False, False]
    assert explainer.directions_.tolist() == [0, 0, 1]
    assert explainer.feature_range_[1][1] == 1e9
    answers = explain(explainer, X[:10])
    found, before = answers.explanation[answers.found], X[:10][answers.found]
    assert len(found) and (found[("person", "age")] == before[("person", "age")]).all()
    assert (found[("work", "hours")] >= before[("work", "hours")]).all()
    assert answers.explanation.columns.names == ["group", "feature"]  # were [None, None]
    with pytest.raises(ValueError, match=r"`immutable_features` names an unknown column "
                                         r"\('person', 'height'\)"):
        CounterfactualExplainer(model, immutable_features=[("person", "height")]).fit(X)


@pytest.mark.parametrize("dtype", ["bool", "boolean"])
def test_a_bool_column_takes_a_direction_false_before_true(dtype):
    """Found by a user: directions={"organic": "increase"} (may only become True) was
    refused, the column's categories having "no order"."""
    from skcem.metrics import explanation_metrics

    rng = np.random.default_rng(0)
    flag = rng.random(300) < 0.5
    flag[0] = True  # True met first: codes in the order met would put it before False
    X = pd.DataFrame({"x": rng.normal(size=300), "flag": pd.array(flag, dtype=dtype)})
    y = (flag + 0.3 * X["x"] + rng.normal(0, 0.1, 300) > 0.5).astype(int)
    model = make_pipeline(make_column_transformer(("passthrough", ["x"]),
                                                  (OneHotEncoder(), ["flag"])),
                          LogisticRegression()).fit(X, y)
    rows = X.iloc[:40]
    answers = explain(CounterfactualExplainer(model, directions={"flag": "increase"}).fit(X),
                      rows)
    assert answers.found.sum() >= 20
    before = rows["flag"].to_numpy(bool)[answers.found]
    after = answers.explanation["flag"].to_numpy(bool)[answers.found]
    assert not np.any(before & ~after)  # never True to False
    assert np.any(~before & after)  # False to True where it pays
    table = explanation_metrics(model, rows, answers.explanation,
                                directions={"flag": "increase"})
    assert table["violations"].fillna(0).sum() == 0


@pytest.mark.parametrize("direction", ["increase", "decrease"])
def test_directions_hold_for_an_ordered_category_in_every_search(direction):
    """Left from a user's trial: education may only rise. The codes of an ordered category
    dtype follow its order, so that every search keeps the direction; an unordered column
    is still refused."""
    from skcem.metrics import explanation_metrics

    X, _ = make_table(n=500, seed=3)
    levels = ["school", "college", "bachelor", "master"]
    rng = np.random.default_rng(7)
    # "college" first in the data: codes in the order met would not follow the dtype's
    education = rng.choice(levels, size=len(X))
    education[0] = "college"
    X = X.assign(education=pd.Categorical(education, categories=levels, ordered=True))
    rank = X["education"].cat.codes.to_numpy()
    y = (rank + 0.04 * (X["hours"] - 35) + rng.normal(0, 0.2, len(X)) > 1.5).astype(int)
    model = pipeline(RandomForestClassifier(40, max_depth=6, random_state=0))
    model.steps[0][1].transformers.append(("education", OneHotEncoder(), ["education"]))
    model.fit(X, y)
    # the other class lies the other way: answers free to, move education against it
    rows = X[model.predict(X) == (1 if direction == "increase" else 0)][:12]
    before = rows["education"].cat.codes.to_numpy()
    sign = 1 if direction == "increase" else -1
    keep = ["sex", "city", "job"]
    free = explain(CounterfactualExplainer(model, immutable_features=keep).fit(X, y), rows)
    against = sign * (free.explanation["education"].cat.codes.to_numpy() - before) < 0
    assert against.sum() >= 6
    # the metrics read the dtype's order too
    table = explanation_metrics(model, rows, free.explanation,
                                directions={"education": direction, "age": "any"})
    assert (table["violations"] >= 1).tolist() == against.tolist()
    with pytest.raises(ValueError, match=r"directions applies to numeric features and to "
                                         r"those of an ordered category dtype; \['job'\]"):
        explanation_metrics(model, rows, free.explanation, directions={"job": direction})
    for options in ({}, {"search": "neighbors"}, {"search": "exact", "max_time": 5},
                    {"n_counterfactuals": 3}, {"plausibility": 1.0}):
        explainer = CounterfactualExplainer(model, immutable_features=keep, directions={
            "education": direction}, **options).fit(X, y)
        answers = explain(explainer, rows)
        assert answers.found.sum() >= 2, options
        for rank_k in range(options.get("n_counterfactuals", 1)):
            ranked = answers.counterfactuals.xs(rank_k, level=1).set_axis(rows.index)
            found = ranked.notna().all(axis=1).to_numpy()
            after = ranked["education"][found].cat.codes.to_numpy()
            assert (sign * (after - before[found]) >= 0).all(), options
            assert (model.predict(ranked[found]) != model.predict(rows[found])).all()
        assert (explanation_metrics(model, rows, answers)["violations"][answers.found] == 0).all()
    with pytest.raises(ValueError, match="`directions` gives categorical column 'job' a "
                                         "direction, but its categories have no order"):
        CounterfactualExplainer(model, directions={"job": direction}).fit(X, y)


def test_fit_params_a_pipeline_refuses_are_not_blamed_on_categories(table):
    """Found by a user: sample_weight given to a Pipeline's fit (which takes step__name) was
    reported as the model failing on the categorical columns."""
    X, y, _ = table
    explainer = CounterfactualExplainer(pipeline(LogisticRegression(max_iter=1000)))
    with pytest.raises(ValueError, match="^Pipeline.fit does not accept the sample_weight"):
        explainer.fit(X, y, sample_weight=np.ones(len(X)))
    explainer.fit(X, y, logisticregression__sample_weight=np.ones(len(X)))


def test_a_category_dtype_of_numbers_is_categorical():
    """Found by a user: a pd.Categorical of integer codes was taken as numbers under "auto",
    and decoding its answers crashed ("Cannot interpret 'CategoricalDtype(...)'")."""
    X, y = make_table()
    X = X[NUMERIC].assign(level=pd.Categorical(X["job"].map(
        {"clerk": 1, "engineer": 2, "farmer": 3, "manager": 4})))

    def predict_proba(rows):  # no encoder to read: the dtype alone tells
        high = (rows["level"].astype(int) >= 3).to_numpy()
        return np.column_stack([np.where(high, 0.2, 0.8), np.where(high, 0.8, 0.2)])

    explainer = CounterfactualExplainer(predict_proba).fit(X)
    assert explainer.categorical_mask_.tolist() == [False, False, False, True]
    answers = explain(explainer, X[:10])
    assert answers.found.all() and answers.explanation["level"].dtype == X["level"].dtype
    assert (predict_proba(answers.explanation).argmax(1)
            != predict_proba(X[:10]).argmax(1)).all()


def test_a_function_fitted_on_a_table_of_times_is_asked_with_times():
    """Found by a user: a plain function fitted on a DataFrame of numbers and times got a
    float array of day counts, which code written for the table could not read."""
    X, y = make_table()
    X = X[NUMERIC].assign(start=pd.Timestamp("2024-01-01")
                          + pd.to_timedelta(X["age"] * 7, unit="D"))
    seen = []

    def predict_proba(rows):
        seen.append(type(rows))
        late = (rows["start"] > pd.Timestamp("2024-07-01")).to_numpy()
        return np.column_stack([np.where(late, 0.2, 0.8), np.where(late, 0.8, 0.2)])

    answers = explain(CounterfactualExplainer(predict_proba).fit(X), X[:8])
    assert set(seen) == {pd.DataFrame}
    assert answers.found.all()
    changed = predict_proba(answers.explanation).argmax(1) != predict_proba(X[:8]).argmax(1)
    assert changed.all()


def test_a_range_bounded_on_one_side_takes_the_datas_other_side():
    """Found by a user: feature_range={"income": (50, None)} was refused."""
    X, y = make_table()
    X = X.assign(start=pd.Timestamp("2024-01-01") + pd.to_timedelta(X["age"], unit="D"))
    model = make_pipeline(ColumnTransformer([
        ("categories", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
        ("numbers", StandardScaler(), NUMERIC)]), LogisticRegression(max_iter=1000)).fit(X, y)
    explainer = CounterfactualExplainer(model, feature_range={
        "income": (50, None), "hours": (None, 40),
        "start": (pd.Timestamp("2024-01-20"), None)}).fit(X)
    lower, upper = explainer.feature_range_
    income, hours, start = (X.columns.get_loc(c) for c in ("income", "hours", "start"))
    assert (lower[income], upper[income]) == (50, X["income"].max())
    assert (lower[hours], upper[hours]) == (X["hours"].min(), 40)
    # in days from the earliest
    assert lower[start] == (pd.Timestamp("2024-01-20") - X["start"].min()).days
    assert upper[start] == (X["start"].max() - X["start"].min()).days
    with pytest.raises(ValueError, match=r"one of them None for the data's own"):
        CounterfactualExplainer(model, feature_range={"income": (None, None)}).fit(X)


def test_float_columns_of_whole_numbers_get_whole_answers():
    """Found by a user: a count column that a missing cell made float got answers such as
    22.500007629417034 months, which no applicant can be told."""
    X, y = make_table()
    X = X[NUMERIC].astype(float)
    X.loc[::9, "hours"] = np.nan
    model = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(X, y)
    explainer = CounterfactualExplainer(model).fit(X)
    answers = explain(explainer, X[:20])
    assert answers.found.sum() >= 18
    for column in ("age", "hours"):  # whole numbers in fit: whole in the answers
        values = answers.explanation[column][answers.found].dropna()
        assert (values == np.round(values)).all(), values
    assert valid_by_predict(model, answers, "CF").all()


def test_a_forest_is_explained_exactly_beside_categories_no_row_holds():
    """Found by a regression sweep: a category dtype's unused categories (past the answers'
    codes since this session) broke the exact program's tables on a forest Pipeline."""
    X, y = make_table()
    X["city"] = pd.Categorical(X["city"], categories=["west", "north", "south", "east", "up"])
    model = make_pipeline(ColumnTransformer([
        ("categories", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
        ("numbers", "passthrough", NUMERIC)]), RandomForestClassifier(30, random_state=0))
    model.fit(X, y)
    rows = X[:8].copy()
    rows.loc[rows.index[:2], "city"] = "up"  # held by no row given to fit
    for search in ("auto", "exact"):
        for explainer in (CounterfactualExplainer(model, search=search),
                          CEMExplainer(model, mode="PN", search=search)):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                answers = explain(explainer.fit(X), rows)
            assert answers.found.sum() >= 6
            assert valid_by_predict(model, answers, "CF").all()
            assert set(answers.explanation["city"].dropna()) <= {"north", "south", "east", "up"}


def test_a_column_of_thousands_of_categories_costs_no_embedding_of_them():
    """Found by a user: the gradient-free search ranked its pool by one-hot embeddings of
    every category, (rows x K) floats: +1.2 GB to explain 5 rows at K=4,000, 3 GB at
    10,000. The distances are computed from the codes, the same sums bit for bit."""
    import tracemalloc

    from scipy.spatial.distance import cdist

    rng = np.random.default_rng(0)
    n, k = 20000, 3000
    frame = pd.DataFrame({"x": rng.normal(size=n), "zip": rng.integers(0, k, n).astype(str)})
    y = (frame.x + (frame.zip.str[-1] == "3") > 0.5).astype(int)
    model = make_pipeline(ColumnTransformer([
        ("n", StandardScaler(), ["x"]), ("c", OneHotEncoder(handle_unknown="ignore"), ["zip"])]),
        LogisticRegression()).fit(frame, y)
    explainer = CounterfactualExplainer(model, search="neighbors").fit(frame)
    tracemalloc.start()
    try:
        answers = explain(explainer, frame.iloc[:5])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert answers.found.all() and peak < 100e6  # an embedding of the pool: 480 MB

    from skcem._neighbors import _Batch

    class Problem:  # what l1_distances reads of a search's problem
        upper = np.array([1.0, 4.0, 1.0])

    search = _Batch.__new__(_Batch)
    search.problem, search.categorical = Problem(), np.array([False, True, False])
    search.l1, search.l2 = np.array([0.7, 1.3, 0.0]), np.array([0.0, 0.0, 2.0])
    A = np.column_stack([rng.normal(size=40), rng.integers(0, 7, 40), rng.normal(size=40)])
    B = np.column_stack([rng.normal(size=60), rng.integers(0, 5, 60), rng.normal(size=60)])
    weight = np.array([0.7, 1.3, np.sqrt(2.0)])

    def embed(Z):
        onehot = np.zeros((len(Z), 6))
        onehot[np.arange(len(Z)), np.minimum(Z[:, 1].astype(int), 5)] = weight[1] / 2
        return np.hstack([np.where([True, False, True], Z, 0.0) * weight, onehot])

    assert np.array_equal(search.l1_distances(A, B), cdist(embed(A), embed(B), "cityblock"))


@pytest.mark.parametrize("dtype", ["int8", "UInt8"])
def test_feature_range_past_an_integer_dtype_is_cut_to_it(dtype):
    """An int8 answer of 148 would be -108: found, and wrong."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.integers(0, 127, 300), "b": rng.integers(0, 120, 300)})
    y = (X["a"] + X["b"] > 150).astype(int)
    X = X.astype({"a": dtype})
    model = LogisticRegression(max_iter=5000).fit(X, y)
    with pytest.warns(UserWarning, match=rf"cut to them: 'a' \({dtype.lower()}: \[\S+, \d+\]\)"):
        explainer = CounterfactualExplainer(model, feature_range={"a": (-300, 400)}).fit(X)
    lower, upper = explainer.feature_range_
    assert (lower[0], upper[0]) == ((-128, 127) if dtype == "int8" else (0, 255))
    rows = X[model.predict(X) == 0].iloc[:10]
    exp = explain(explainer, rows)
    assert exp.found.any()
    answers = exp.explanation[exp.found]
    assert answers["a"].dtype == X["a"].dtype
    assert answers["a"].between(lower[0], upper[0]).all()
    assert (model.predict(answers) == 1).all()


def test_a_truth_value_and_an_equal_number_in_one_column_are_refused():
    """True and 1 are one category to pandas, two to a model that reads them as text: the
    answer's True became 1, reported found and put in the instance's class."""
    X = pd.DataFrame({"age": np.arange(60) % 50 + 18,
                      "code": pd.Series([[1, True, "x"][i % 3] for i in range(60)],
                                        dtype=object)})
    codec = TableCodec()
    with pytest.raises(ValueError, match="X column 'code' holds True and the number 1, which "
                                         "are one category"):
        codec.fit(X)
    fitted = TableCodec().fit(X.assign(code=X["code"].astype(str)))
    later = X.iloc[:3].assign(code=pd.Series(["1", "x", "True"], dtype=object))
    assert fitted.encode(later)[:, 1].tolist() == [0.0, 2.0, 1.0]
    ones = TableCodec().fit(X.assign(code=X["code"].where(X["code"] != True, "x")))  # noqa
    with pytest.raises(ValueError, match="holds True and the number 1"):
        ones.encode(X)  # at explain: True would be read as 1


@pytest.mark.parametrize("pyarrow", [True, False])
def test_polars_output_keeps_the_columns_dtypes(table, pyarrow):
    """Found by a user: set_output(transform="polars") gave every column polars's Object
    dtype (numbers whose mean was None)."""
    pl = pytest.importorskip("polars")
    X, _, models = table
    explainer = CounterfactualExplainer(models["lr"]).fit(X).set_output(transform="polars")
    expected = explain(CounterfactualExplainer(models["lr"]).fit(X), X[:5]).explanation
    with pytest.MonkeyPatch.context() as patch:
        if not pyarrow:
            def no_pyarrow(*args, **kwargs):
                raise ModuleNotFoundError("No module named 'pyarrow'")

            patch.setattr(pl, "from_pandas", no_pyarrow)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = explainer.transform(X[:5])
    assert isinstance(out, pl.DataFrame)
    assert out.columns == list(X.columns)
    assert out.schema["age"].is_integer() and out.schema["income"].is_float()
    assert out.schema["job"] == pl.String
    assert out["age"].to_list() == expected["age"].tolist()
    assert out["job"].to_list() == expected["job"].tolist()


@pytest.mark.parametrize("pyarrow", [True, False])
def test_polars_enum_columns_come_back_as_enums(pyarrow):
    """Found by a user: an Enum column came back Categorical, so pl.concat of the rows and
    their answers failed ("type Categorical is incompatible with expected type Enum")."""
    pl = pytest.importorskip("polars")
    from sklearn.compose import ColumnTransformer

    rng = np.random.RandomState(0)
    plan = rng.choice(["basic", "pro", "max"], 200)
    amount = np.round(rng.gamma(2, 50, 200), 2)
    y = ((amount > 100) & (plan != "basic")).astype(int)
    levels = pl.Enum(["basic", "pro", "max"])
    X = pl.DataFrame({"amount": amount, "plan": pl.Series(plan).cast(levels)})
    model = make_pipeline(ColumnTransformer([("plan", OneHotEncoder(sparse_output=False),
                                              ["plan"])], remainder="passthrough"),
                          LogisticRegression()).fit(X, y)
    explainer = CounterfactualExplainer(model, distance="mad").fit(X)
    explainer.set_output(transform="polars")
    with pytest.MonkeyPatch.context() as patch:
        if not pyarrow:
            def no_pyarrow(*args, **kwargs):
                raise ModuleNotFoundError("No module named 'pyarrow'")

            patch.setattr(pl, "from_pandas", no_pyarrow)
        answers = explainer.transform(X[:5])
    assert answers.schema == X.schema
    assert pl.concat([X[:5], answers]).height == 10
    assert np.all(model.predict(answers) != model.predict(X[:5]))


def test_categories_met_at_explain_keep_the_dtypes_order_and_are_said_at_each_call():
    """Found by a review: declaring a new category rebuilt a category dtype from the
    codec's categories, moving a declared one ('pilot') to the end: a model reading the
    codes then got other codes on every later call."""
    from sklearn.preprocessing import FunctionTransformer

    X, y = make_table()
    order = ["farmer", "pilot", "clerk", "manager", "engineer"]
    X = X.assign(job=pd.Categorical(X["job"], categories=order),
                 city=X["city"].astype("category"))

    def codes(frame):
        return frame.assign(job=frame["job"].cat.codes, city=frame["city"].cat.codes,
                            sex=(frame["sex"] == "F").astype(int))

    model = make_pipeline(FunctionTransformer(codes),
                          RandomForestClassifier(30, random_state=0)).fit(X, y)
    explainer = CounterfactualExplainer(model).fit(X)
    new = X.iloc[[0]].astype({"job": pd.CategoricalDtype(order + ["astronaut"])})
    new["job"] = pd.Categorical(["astronaut"], dtype=new["job"].dtype)
    for _ in range(2):  # said at each call, not only when first met
        with pytest.warns(UserWarning, match="1 of 1 instances hold categories fit never met"):
            explain(explainer, new)
    rows = X.iloc[:20]
    declaring = explainer._declaring_categories_of(new)
    assert list(declaring._codec.dtypes_[1].categories) == order + ["astronaut"]
    Z = declaring._codec.encode(rows)
    np.testing.assert_array_equal(declaring._get_backend().predict_proba(Z),
                                  model.predict_proba(rows))
    exp = explain(explainer, rows)
    assert valid_by_predict(model, exp, "CF").all()
    # Found by a review: the call on `new` declared 'astronaut' on the fitted explainer,
    # and later answers' Categoricals carried it.
    assert list(exp.explanation["job"].cat.categories) == order
    answers = exp.explanation[exp.found]
    assert (model.predict(answers) != model.predict(rows[exp.found])).all()


def test_categories_the_trees_cannot_be_read_with_fail_alike_at_every_call():
    """Found by a review: the first call failed after the codec had taken the new
    categories, and a second identical call then went through."""
    X, y = make_table()
    encode = ColumnTransformer([("categories", OrdinalEncoder(
        handle_unknown="use_encoded_value", unknown_value=np.nan), CATEGORICAL)],
        remainder="passthrough")
    from sklearn.tree import DecisionTreeClassifier

    model = make_pipeline(encode, DecisionTreeClassifier(max_depth=5, random_state=0)).fit(X, y)
    explainer = CounterfactualExplainer(model, search="exact").fit(X)
    rows = X.iloc[:4].assign(job=["astronaut", "clerk", "diver", "farmer"])
    for _ in range(2):
        with pytest.raises(ValueError, match="X holds categories fit never met \\('job': "
                                             "'astronaut', 'diver'\\), which the model takes, "
                                             "but search='exact' cannot read its trees"):
            explainer.explain(rows)
    assert "astronaut" not in list(explainer._codec.categories_[1])
    # the rows without them are explained as before
    assert explain(explainer, X.iloc[:4]).found.any()


def test_a_model_failing_on_a_new_category_in_its_own_way_gets_the_explainers_error():
    from sklearn.base import BaseEstimator, ClassifierMixin

    X, y = make_table()
    fitted = pipeline(LogisticRegression(max_iter=1000)).fit(X, y)

    class Picky(ClassifierMixin, BaseEstimator):
        def fit(self, X, y):
            self.classes_ = fitted.classes_
            return self

        def _check(self, X):
            if not X["job"].isin(["clerk", "engineer", "farmer", "manager"]).all():
                raise RuntimeError("unknown job code")

        def predict(self, X):
            self._check(X)
            return fitted.predict(X)

        def predict_proba(self, X):
            self._check(X)
            return fitted.predict_proba(X)

    explainer = CounterfactualExplainer(Picky().fit(X, y)).fit(X)
    with pytest.raises(ValueError, match="X column 'job' holds 'astronaut', a category "
                                         "neither seen in fit"):
        explainer.explain(X.iloc[:3].assign(job=["astronaut", "clerk", "clerk"]))


def test_no_warning_of_scikit_learns_about_categories_it_ignores(table):
    X, y, _ = table
    encode = ColumnTransformer([("categories", OneHotEncoder(handle_unknown="ignore",
                                                             drop="if_binary"), CATEGORICAL),
                                ("numbers", StandardScaler(), NUMERIC)])
    model = make_pipeline(encode, LogisticRegression(max_iter=1000)).fit(X, y)
    explainer = CounterfactualExplainer(model).fit(X)
    rows = X.iloc[:6].assign(job=["astronaut"] * 3 + ["clerk"] * 3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        explainer.explain(rows)
    assert not [w for w in caught if "Found unknown categories" in str(w.message)]


def test_integer_dtype_bounds_hold_no_wrapped_answers_and_no_empty_range():
    """Found by a review: int64's largest value as a float is 2**63, which wraps to the
    smallest; a range wholly past the dtype was cut to an inverted one."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.integers(0, 100, 200), "b": rng.normal(size=200)})

    def proba(rows):  # class 1 only at the very top of int64
        top = np.asarray(rows, float)[:, 0] >= 9.2e18
        return np.column_stack([~top, top]).astype(float)

    explainer = CounterfactualExplainer(proba, feature_range={"a": (0, 1e30)},
                                        search="neighbors")
    with pytest.warns(UserWarning, match=r"cut to them: 'a' \(int64"):
        explainer.fit(X)
    assert int(explainer.feature_range_[1][0]) <= np.iinfo(np.int64).max
    exp = explain(explainer, X.iloc[:3])
    assert exp.found.all()
    assert (exp.explanation["a"] >= 9.2e18).all()  # found at the top, not wrapped below
    small = X.astype({"a": "int8"})
    with pytest.raises(ValueError, match=r"`feature_range` of the integer column 'a', "
                                         r"\(200, 300\), holds no value of its dtype int8"):
        CounterfactualExplainer(LogisticRegression().fit(small, X["b"] > 0),
                                feature_range={"a": (200, 300)}).fit(small)


def test_a_missing_time_bound_is_no_bound():
    X, model = _dated_table()
    learned = CounterfactualExplainer(model).fit(X).feature_range_
    for missing in (pd.NaT, np.datetime64("NaT")):
        bounds = (missing, pd.Timestamp("2020-03-01"))
        given = CounterfactualExplainer(model, feature_range={"when": bounds}).fit(X)
        assert given.feature_range_[0][0] == learned[0][0]  # the data's, not 1970's
        assert given.feature_range_[1][0] < learned[1][0]


@pytest.mark.parametrize("cells", [[["a"], ["b", "c"]], [{"k": 0}, {"k": 1}]])
def test_a_column_of_lists_or_dicts_gets_one_clear_line(cells):
    """Found by a user: following the advice to name such a column in categorical_features
    crashed inside pandas ("unhashable type: 'list'")."""
    from sklearn.compose import make_column_transformer
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True, as_frame=True)
    X["tags"] = [cells[i % 2] for i in range(len(X))]
    model = make_pipeline(make_column_transformer(("drop", ["tags"]), remainder="passthrough"),
                          LogisticRegression(max_iter=1000)).fit(X, y)
    kind = type(cells[0]).__name__
    for options in ({}, {"categorical_features": ["tags"]}):
        with pytest.raises(ValueError, match=rf"X column 'tags' holds {kind} values such as .*"
                                             "which cannot be categories: convert them to "
                                             "text"):
            CounterfactualExplainer(model, **options).fit(X)


def test_a_tie_for_a_columns_most_frequent_category_is_pointed_out():
    """Found by a user: a free text's no-information value was the first of its texts (each
    seen once), a review of the PP's own class, and most PPs kept nothing."""
    X, y = make_table(200)
    X = X.assign(note=[f"note {i}" for i in range(200)])
    model = pipeline(LogisticRegression(max_iter=1000)).fit(X, y)  # the note not read
    with pytest.warns(UserWarning, match=r"several are as frequent \('note': 200 categories "
                                         r"tie, 'note 0' is taken\)"):
        CEMExplainer(model, mode="PP", max_iterations=50).fit(X)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*several are as frequent")
        CEMExplainer(model, mode="PP", no_info_val={"note": "note 7"}, max_iterations=50).fit(X)
        # chosen, even where it is the one taken; or never moved (found by a review)
        CEMExplainer(model, mode="PP", no_info_val={"note": "note 0"}, max_iterations=50).fit(X)
        CEMExplainer(model, mode="PP", immutable_features=["note"], max_iterations=50).fit(X)


def test_a_hashed_text_of_a_million_columns_is_folded_or_takes_the_numerical_gradient():
    """Found by a user: a HashingVectorizer at its default 2**20 features, its text column
    immutable (as skcem's warning advises), filled a dense row of a million columns at every
    step of the exact gradient: 76 s for 2 rows, and 20 rows never ended. A linear model's
    exact gradient takes the text's share once per row; another model's is refused there,
    and the numerical gradient asks about a few rows per numeric feature."""
    from sklearn.feature_extraction.text import HashingVectorizer

    rng = np.random.default_rng(0)
    words = np.array(["good", "bad", "fine", "poor", "item", "price"])
    X = pd.DataFrame({"text": [" ".join(rng.choice(words, 4)) for _ in range(200)],
                      "price": rng.normal(10, 3, 200), "age": rng.normal(40, 10, 200)})
    y = ((X["price"] > 10) ^ X["text"].str.contains("bad")).astype(int)
    model = make_pipeline(ColumnTransformer([("words", HashingVectorizer(), "text"),
                                            ("numbers", StandardScaler(), ["price", "age"])]),
                          LogisticRegression(max_iter=1000)).fit(X, y)
    network = make_pipeline(ColumnTransformer([
        ("words", HashingVectorizer(n_features=2**17), "text"),
        ("numbers", StandardScaler(), ["price", "age"])]),
        MLPClassifier((8,), max_iter=300, random_state=0)).fit(X, y)
    with pytest.raises(Exception, match=r"131,074 output columns would be filled densely"):
        CounterfactualExplainer(network, immutable_features=["text"], gradient="exact",
                                search="fista").fit(X)
    for gradient, fitted in (("exact", model), ("auto", network)):
        exp = explain(CounterfactualExplainer(fitted, immutable_features=["text"],
                                              search="fista", gradient=gradient,
                                              max_iterations=100, c_steps=3).fit(X),
                      X.iloc[:4])
        assert exp.found.any()
        found = exp.found
        assert (fitted.predict(exp.explanation[found])
                != fitted.predict(X.iloc[:4][found])).all()
        assert (exp.explanation["text"] == X["text"].iloc[:4]).all()


def test_an_identifier_column_is_pointed_out():
    """Found by a user: a customer id (one per row) behind a one-hot encoder that ignores
    unknown ids gave answers such as 'C000250 → C000044', without a word."""
    X, y = make_table(200)
    X = X.assign(customer=[f"C{i:06d}" for i in range(200)])
    encode = ColumnTransformer([("categories", OneHotEncoder(handle_unknown="ignore"),
                                 CATEGORICAL + ["customer"]),
                                ("numbers", StandardScaler(), NUMERIC)])
    model = make_pipeline(encode, LogisticRegression(max_iter=1000)).fit(X, y)
    with pytest.warns(UserWarning, match=r"categorical columns \['customer'\] hold a distinct "
                                         r"value in nearly every row \(identifiers\?\)"):
        CounterfactualExplainer(model).fit(X)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*identifiers")
        CounterfactualExplainer(model, immutable_features=["customer"]).fit(X)
        CounterfactualExplainer(model).fit(X.drop(columns="customer").assign(
            customer="C0"))  # one value: no identifier


def test_feature_range_lists_the_categories_answers_may_take():
    """DiCE's permitted_range for categories (found missing by a trial: feature_range on a
    categorical column was refused): every search keeps to the listed categories or the
    instance's own; the exact optimum is unchanged where the free one already keeps to
    them; explanation_metrics counts another category as a violation."""
    pd = pytest.importorskip("pandas")
    from sklearn.tree import DecisionTreeClassifier

    from skcem.metrics import explanation_metrics

    rng = np.random.default_rng(0)
    n = 600
    X = pd.DataFrame({"age": rng.integers(18, 80, n),
                      "job": rng.choice(["a", "b", "c", "d", "e"], n),
                      "city": rng.choice(["x", "y", "z"], n)})
    y = (X.job.isin(["a", "b"]) ^ (X.age > 45) ^ (X.city == "z")).astype(int).to_numpy()
    model = make_pipeline(make_column_transformer((OneHotEncoder(), ["job", "city"]),
                                                  remainder="passthrough"),
                          DecisionTreeClassifier(max_depth=5, random_state=0)).fit(X, y)
    rows = X.iloc[:30]
    listed = {"job": ["c", "d"]}
    for Explainer, params in ((CounterfactualExplainer, {}),
                              (CounterfactualExplainer, {"search": "exact"}),
                              (CounterfactualExplainer, {"n_counterfactuals": 3}),
                              (CEMExplainer, {}), (CEMExplainer, {"search": "exact"})):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExplanationNotFoundWarning)
            kept = Explainer(model, feature_range=listed, **params).fit(X).explain(rows)
            free = Explainer(model, **params).fit(X).explain(rows)
        several = "n_counterfactuals" in params
        answers = kept.counterfactuals if several else kept.explanation
        own = np.repeat(rows.job.to_numpy(), 3 if several else 1)
        jobs = answers.job.to_numpy()
        assert np.all(pd.isna(jobs) | np.isin(jobs, listed["job"]) | (jobs == own)), params
        free_jobs = (free.counterfactuals if several else free.explanation).job.to_numpy()
        assert not np.all(pd.isna(free_jobs) | np.isin(free_jobs, listed["job"])
                          | (free_jobs == own))  # the list is a constraint here
        found = kept.found
        assert (model.predict(kept.explanation[found]) != model.predict(rows[found])).all()
        if params.get("search") == "exact":
            already = np.isin(free.explanation.job, listed["job"]) | \
                (free.explanation.job.to_numpy() == rows.job.to_numpy())
            np.testing.assert_allclose(kept.distance[already & found],
                                       free.distance[already & found], rtol=1e-9)
            assert np.all(kept.distance[found & free.found] >=
                          free.distance[found & free.found] - 1e-9)
        mode = "CF" if Explainer is CounterfactualExplainer else "PN"
        metrics = explanation_metrics(model, rows, free.explanation, mode=mode,
                                      feature_range=listed)
        outside = free.found & ~np.isin(free.explanation.job, listed["job"]) & \
            (free.explanation.job.to_numpy() != rows.job.to_numpy())
        np.testing.assert_array_equal(metrics["violations"].to_numpy()[outside] >= 1, True)
    with pytest.raises(ValueError, match=r"`feature_range\['job'\]` holds \['q'\], not "
                                         r"categories of that column"):
        CounterfactualExplainer(model, feature_range={"job": ["c", "q"]}).fit(X)
    with pytest.raises(ValueError, match=r"feature_range\['job'\] holds \['q'\], not "
                                         r"categories of that column in X"):
        explanation_metrics(model, rows, rows, mode="CF", feature_range={"job": ["q"]})
    one = CounterfactualExplainer(model, feature_range={"job": "c"}).fit(X).explain(rows)
    jobs = one.explanation.job.to_numpy()
    assert np.all(pd.isna(jobs) | (jobs == "c") | (jobs == rows.job.to_numpy()))


def test_a_function_of_a_table_gets_whole_integer_columns_in_their_dtype():
    """Found by a trial: a served model's function got an int64 column as float64 in every
    call (its schema refused 37.0), and its error was blamed on the categorical columns."""
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    n = 400
    X = pd.DataFrame({"age": rng.integers(18, 80, n), "plan": rng.choice(["a", "b", "c"], n),
                      "income": rng.normal(50, 10, n)})
    y = ((X.age > 45) ^ (X.plan == "b")).astype(int).to_numpy()
    pipe = make_pipeline(make_column_transformer((OneHotEncoder(), ["plan"]),
                                                 remainder="passthrough"),
                         RandomForestClassifier(30, random_state=0)).fit(X, y)
    seen = set()

    def served(rows):
        seen.add(rows["age"].dtype)
        if rows["age"].dtype.kind not in "iu":
            raise ValueError("422: field 'age' must be an integer")
        return pipe.predict_proba(rows)

    exp = CounterfactualExplainer(served).fit(X, y).explain(X.iloc[:10])
    assert seen == {np.dtype(np.int64)} and exp.found.all()
    assert (pipe.predict(exp.explanation) != pipe.predict(X.iloc[:10])).all()

    def refusing(rows):
        raise ValueError("422: field 'income' must be below 100")

    with pytest.raises(ValueError, match=r"^422: field 'income' must be below 100$"):
        CounterfactualExplainer(refusing).fit(X, y)


def test_feature_range_of_an_ordered_category_may_be_a_low_high_pair():
    """Found by a trial: ("HS", "PhD") on an ordered category was read as those two
    categories alone; a (low, high) pair of one is the categories between, ends included."""
    pd = pytest.importorskip("pandas")
    from skcem.metrics import explanation_metrics

    rng = np.random.default_rng(1)
    n = 500
    order = ["none", "HS", "BSc", "MSc", "PhD"]
    X = pd.DataFrame({"age": rng.integers(18, 80, n),
                      "edu": pd.Categorical(rng.choice(order, n), categories=order,
                                            ordered=True)})
    y = ((X.age > 45) ^ X.edu.isin(["MSc", "PhD"])).astype(int).to_numpy()
    model = make_pipeline(make_column_transformer((OrdinalEncoder(), ["edu"]),
                                                  remainder="passthrough"),
                          RandomForestClassifier(30, random_state=0)).fit(X, y)
    explainer = CounterfactualExplainer(model, feature_range={"edu": ("HS", "MSc")}).fit(X)
    np.testing.assert_array_equal(explainer._permitted[1], [False, True, True, True, False])
    exp = explainer.explain(X.iloc[:40])
    edu = exp.explanation.edu.astype(object).to_numpy()
    own = X.edu.iloc[:40].astype(object).to_numpy()
    assert np.all(pd.isna(edu) | np.isin(edu, ["HS", "BSc", "MSc"]) | (edu == own))
    with pytest.raises(ValueError, match="needs low <= high in the column's order"):
        CounterfactualExplainer(model, feature_range={"edu": ("PhD", "HS")}).fit(X)
    outside = X.iloc[:3].copy()
    outside["edu"] = pd.Categorical(["PhD"] * 3, categories=order, ordered=True)
    moved = explanation_metrics(model, X.iloc[:3], outside, mode="CF",
                                feature_range={"edu": ("HS", "MSc")})
    changed = X.edu.iloc[:3].to_numpy() != "PhD"
    np.testing.assert_array_equal(moved["violations"].to_numpy() >= 1, changed)


def test_a_heavy_categorys_answers_cost_no_more_than_keeping_it():
    """Found by a trial: with feature_weights of 100 on two categorical columns, 16 of 40
    answers changed one (cost 100 and more) where the same search with them immutable found
    answers costing 2-7: every answer of that search is admissible under the weights."""
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    n = 600
    jobs = {"clerk": 0.0, "nurse": 0.5, "engineer": 1.5, "manager": 2.0, "farmer": -0.5}
    edu = pd.CategoricalDtype(["HS", "BSc", "MSc", "PhD"], ordered=True)
    X = pd.DataFrame({"job": rng.choice(list(jobs), n),
                      "edu": pd.Categorical(rng.choice(edu.categories, n,
                                                       p=[0.4, 0.3, 0.2, 0.1]), dtype=edu),
                      "age": rng.integers(18, 70, n),
                      "income": np.round(rng.gamma(3, 12, n), 2),
                      "hours": rng.integers(10, 80, n).astype(float)})
    score = (0.04 * (X.income - 36) + 0.8 * X.edu.cat.codes + X.job.map(jobs)
             + 0.03 * (X.hours - 45) + 0.02 * (X.age - 40) + rng.normal(0, 0.5, n))
    y = (score > 1.3).astype(int).to_numpy()
    model = make_pipeline(ColumnTransformer([
        ("job", OneHotEncoder(handle_unknown="ignore"), ["job"]),
        ("edu", OrdinalEncoder(categories=[list(edu.categories)]), ["edu"]),
        ("num", StandardScaler(), ["age", "income", "hours"])]),
        LogisticRegression(max_iter=2000)).fit(X.iloc[:500], y[:500])
    rows = X.iloc[500:540]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        weighed = CounterfactualExplainer(model, distance="mad",
                                          feature_weights={"job": 100, "edu": 100}).fit(
            X.iloc[:500]).explain(rows)
        kept = CounterfactualExplainer(model, distance="mad",
                                       immutable_features=["job", "edu"]).fit(
            X.iloc[:500]).explain(rows)
    both = weighed.found & kept.found
    assert both.sum() >= 20
    # (the weighed search is the gradient-free one, the other the gradient search: their
    # answers differ by a little; a changed heavy category costs 100. One row's only
    # numeric answer moves two features to their ends, which the gradient-free search misses)
    assert np.sum(weighed.distance[both] > 2 * kept.distance[both] + 1e-9) <= 1


@pytest.mark.parametrize("dtype", [object, "string", "str"])
def test_codes_written_in_digits_are_categories(dtype):
    """Found by a user: a column of zip codes ("02134") was read as numbers: a column the
    model drops came back as floats (2134.0), a predict_proba function was asked with
    floats where it was trained on the strings (its answers then invalid by its own
    reading), and pandas' string dtypes failed in fit."""
    rng = np.random.default_rng(3)
    n = 300
    codes = np.array(["02134", "10001", "94105"])
    X = pd.DataFrame({"a": rng.normal(size=n),
                      "zip": pd.Series(codes[rng.integers(0, 3, n)], dtype=dtype)})
    y = (X["a"] > 0).astype(int).to_numpy()
    dropped = make_pipeline(ColumnTransformer([("num", StandardScaler(), ["a"])]),
                            LogisticRegression()).fit(X, y)
    explainer = CounterfactualExplainer(dropped, distance="mad").fit(X)
    assert list(explainer.categorical_mask_) == [False, True]
    rows = X.iloc[:4]
    exp = explain(explainer, rows)
    assert exp.found.all()
    pd.testing.assert_series_equal(exp.explanation["zip"], rows["zip"])

    asked = set()

    def proba(frame):
        asked.update(type(value) for value in frame["zip"])
        p = 1 / (1 + np.exp(-(frame["a"].to_numpy(float)
                              + 3 * (frame["zip"] == "02134").to_numpy(float))))
        return np.c_[1 - p, p]

    rows = X[X["zip"] == "02134"].iloc[:6]
    exp = explain(CounterfactualExplainer(proba, distance="mad").fit(X, y), rows)
    assert asked == {str}
    assert exp.found.any()
    answers = exp.explanation[exp.found]
    assert (proba(answers).argmax(axis=1) != proba(rows[exp.found]).argmax(axis=1)).all()


def test_numbers_in_an_array_of_text_stay_numbers():
    """An array of text (np.loadtxt(dtype=str)) holds its numbers as text: those columns
    stay numeric (a review), where a DataFrame's text columns are categories."""
    from skcem._tabular import auto_categorical

    rows = np.array([["1.5", "a"], ["2", "b"], ["-3e2", "a"]])
    assert list(auto_categorical(rows)) == [False, True]
    assert list(auto_categorical(pd.DataFrame(rows))) == [True, True]


def test_cells_no_answer_changes_come_back_exactly():
    """Found by a user: identifiers beyond 2**53 and nanosecond times over two years went
    through float64 and came back changed (two rows then shared an identifier), in columns
    the answers leave alone."""
    rng = np.random.default_rng(3)
    n = 300
    start = pd.Timestamp("2022-01-01")
    X = pd.DataFrame({
        "a": rng.normal(size=n), "b": rng.normal(size=n),
        "id": 2**53 + 1 + 2 * np.arange(n, dtype=np.int64),
        "at": (start + pd.to_timedelta(rng.integers(0, 2 * 365 * 86400 * 10**9, n),
                                       unit="ns")).astype("datetime64[ns]")})
    y = (X["a"] + X["b"] > 0).astype(int)
    model = make_pipeline(ColumnTransformer([("num", StandardScaler(), ["a", "b"])]),
                          LogisticRegression()).fit(X, y)
    rows = X.iloc[:6]
    for explainer in (CounterfactualExplainer(model, immutable_features=["id", "at"],
                                              n_counterfactuals=2),
                      CEMExplainer(model, mode="PN", immutable_features=["id", "at"])):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            exp = explainer.fit(X).explain(rows)
        # the features of a large scale are immutable: no answer moves them
        assert not [w for w in caught if "differ in scale" in str(w.message)]
        assert exp.found.all()
        for frame in (exp.X, exp.explanation):
            pd.testing.assert_frame_equal(frame[["id", "at"]], rows[["id", "at"]])
        if hasattr(exp, "counterfactuals") and exp.counterfactuals is not None:
            ranked = exp.counterfactuals.dropna()
            given = rows.loc[ranked.index.get_level_values(0)]
            np.testing.assert_array_equal(ranked["id"].to_numpy(np.int64),
                                          given["id"].to_numpy())
            np.testing.assert_array_equal(ranked["at"].to_numpy(), given["at"].to_numpy())


def test_polars_integer_and_boolean_columns_with_nulls_stay_whole_and_boolean():
    """Found by a user: a polars Int64 column with nulls came back from the explainer as
    float64 (polars's to_pandas), its answers and set_output's polars output alike."""
    pl = pytest.importorskip("polars")
    pytest.importorskip("pyarrow")
    from skcem._validation import from_polars

    X, y = make_table()
    X = X[["age", "income"]].astype({"age": int})
    frame = pl.from_pandas(X).with_columns(
        pl.when(pl.int_range(pl.len()) % 7 == 0).then(None).otherwise(pl.col("age"))
        .alias("age"), (pl.col("income") > 40).alias("rich"))
    frame = frame.with_columns(pl.when(pl.int_range(pl.len()) % 5 == 0).then(None)
                               .otherwise(pl.col("rich")).alias("rich"))
    as_pandas = from_polars(frame)
    assert str(as_pandas["age"].dtype) == "Int64" and str(as_pandas["rich"].dtype) == "boolean"
    assert str(from_polars(frame["age"]).dtype) == "Int64"
    assert as_pandas["age"].isna().sum() == frame["age"].null_count()
    model = make_pipeline(FunctionTransformer(
        lambda t: t.astype({"age": float, "rich": float})),
        HistGradientBoostingClassifier(max_iter=20, random_state=0)).fit(as_pandas, y)
    explainer = CounterfactualExplainer(model).fit(frame).set_output(transform="polars")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = explainer.transform(frame[:10])
    assert out.schema["age"] == pl.Int64 and out.schema["rich"] == pl.Boolean
    assert out["age"].null_count() >= frame[:10]["age"].null_count()


def test_an_explanation_is_sliced_by_its_rows(table):
    """Found by a user: exp[0] raised "'Explanation' object is not subscriptable"."""
    X, _, models = table
    rows = X.iloc[:6].set_axis([f"r{i}" for i in range(6)])
    several = explain(CounterfactualExplainer(models["forest"], n_counterfactuals=3).fit(X),
                      rows)
    part = several[[4, 1]]
    assert len(part) == 2 and list(part.index) == ["r4", "r1"]
    pd.testing.assert_frame_equal(part.to_frame(), several.to_frame().loc[["r4", "r1"]])
    assert part.changes() == [several.changes()[4], several.changes()[1]]
    pd.testing.assert_frame_equal(part.counterfactuals,
                                  several.counterfactuals.loc[["r4", "r1"]])
    np.testing.assert_array_equal(part.counterfactual_distance,
                                  several.counterfactual_distance[[4, 1]])
    assert part.meta["n_iterations"] == [several.meta["n_iterations"][i] for i in (4, 1)]
    assert json.loads(part.to_json())["index"] == ["r4", "r1"]
    assert len(several[-1]) == 1 and several[-1].index[0] == "r5"
    assert len(several[several.found]) == int(several.found.sum())
    assert several[2:4].changes() == several.changes()[2:4]
    # a PP whose instances lie outside the range: one background row per instance
    outside = rows.assign(income=rows["income"] * 100)
    pp = explain(CEMExplainer(models["lr"], mode="PP").fit(X), outside)
    assert np.ndim(pp.background) == 2
    assert pp[[3]].changes() == [pp.changes()[3]]
    np.testing.assert_array_equal(pp[[3]].perturbation, pp.perturbation[[3]])
    with pytest.raises(TypeError, match="single bool"):
        several[True]
    with pytest.raises(IndexError):
        several[6]


def test_an_empty_selection_of_several_answers(table):
    """Found by a review: exp[~exp.found] with every row found (n_counterfactuals=3) raised
    "cannot reshape array of size 0" in to_frame and changes, and count_diversity gave one
    NaN instance of a DataFrame's empty selection."""
    from sklearn.datasets import load_iris

    from skcem.metrics import continuous_diversity, count_diversity

    X, _, models = table
    iris, labels = load_iris(return_X_y=True)
    iris_model = LogisticRegression(max_iter=1000).fit(iris, labels)
    for model, data, rows in ((models["forest"], X, X.iloc[:4]),
                              (iris_model, iris, iris[[0, 60, 120]])):
        several = explain(CounterfactualExplainer(model, n_counterfactuals=3).fit(data), rows)
        none = several[[]]
        assert len(none) == 0 and none.changes() == []
        assert none.to_frame().shape[0] == 0
        assert list(count_diversity(none)) == []
        assert list(continuous_diversity(none, X_train=data)) == []


def test_a_complex_column_is_refused_naming_it():
    """Found by a user: a complex128 column lost its imaginary parts with numpy's warning
    only: the model was asked about other instances, and invalid answers were reported
    found."""
    import pandas as pd
    from sklearn.preprocessing import FunctionTransformer

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=100),
                      "z": rng.normal(size=100) + 1j * rng.normal(size=100)})
    y = (X["a"] + X["z"].to_numpy().imag > 0).astype(int)
    model = make_pipeline(FunctionTransformer(lambda frame: np.c_[
        frame["a"].to_numpy(float), np.imag(frame["z"].to_numpy())]),
        LogisticRegression()).fit(X, y)
    with pytest.raises(ValueError, match=r"X column 'z' holds complex numbers"):
        CounterfactualExplainer(model).fit(X)
    # an array too, and for the similarity (scikit-learn's error printed the whole array)
    from skcem import GradientSimilarityExplainer

    with pytest.raises(ValueError, match=r"Complex data not supported: X holds complex "
                                         r"numbers \(skcem moves real"):
        GradientSimilarityExplainer(LogisticRegression()).fit(X.to_numpy(), y)


def test_a_decimal_column_is_written_to_json():
    """Found by a user: to_json of a pyarrow decimal column's answers raised "Object of type
    Decimal is not JSON serializable"."""
    import decimal

    import pandas as pd
    pa = pytest.importorskip("pyarrow")
    from sklearn.preprocessing import FunctionTransformer

    rng = np.random.default_rng(0)
    a = rng.normal(size=120)
    X = pd.DataFrame({"a": a, "price": pd.array(
        [decimal.Decimal(f"{v:.2f}") for v in rng.normal(size=120)],
        dtype=pd.ArrowDtype(pa.decimal128(10, 2)))})
    y = (a + X["price"].astype(float) > 0).astype(int)
    model = make_pipeline(FunctionTransformer(lambda frame: frame.astype(float).to_numpy()),
                          LogisticRegression()).fit(X, y)
    exp = CounterfactualExplainer(model).fit(X).explain(X.iloc[:3])
    written = json.loads(exp.to_json())
    assert written["X"][0][1] == float(X["price"].iloc[0])
    assert all(isinstance(row[1], float) for row in written["explanation"])


def test_a_native_categorical_booster_in_a_pipeline_keeps_its_split_points(table):
    """Found by a user: the same HistGradientBoosting (its own categorical splits) behind an
    identity step gave answers up to 3.9 times as far as the bare model's: the search's
    points were the data's values, not the model's numeric thresholds."""
    X, y, _ = table
    frame = X.astype({column: "category" for column in CATEGORICAL})
    bare = HistGradientBoostingClassifier(categorical_features="from_dtype", max_iter=40,
                                          random_state=0).fit(frame, y)
    rows = frame.iloc[:30]
    distances = []
    for model in (bare, make_pipeline(FunctionTransformer(), bare)):
        explainer = CounterfactualExplainer(model, distance="mad").fit(frame)
        distances.append(explain(explainer, rows).distance)
    np.testing.assert_allclose(distances[1], distances[0])
    # the OrdinalEncoder's codes beside the numbers it hands on: their thresholds too
    from skcem._tree_models import pipeline_numeric_splits

    coded = make_pipeline(ColumnTransformer([("codes", OrdinalEncoder(), CATEGORICAL)],
                                            remainder="passthrough"),
                          HistGradientBoostingClassifier(categorical_features=[0, 1, 2],
                                                         max_iter=40, random_state=0)).fit(X, y)
    feature, threshold = pipeline_numeric_splits(coded, X.shape[1])
    assert set(feature) == {X.columns.get_loc(c) for c in NUMERIC}
    ages = threshold[feature == X.columns.get_loc("age")]
    assert ages.min() > X["age"].min() and ages.max() < X["age"].max()
    assert pipeline_numeric_splits(make_pipeline(ColumnTransformer(
        [("codes", OrdinalEncoder(), CATEGORICAL)], remainder=StandardScaler()),
        clone(coded[-1])).fit(X, y), X.shape[1])[0].size == 0  # scaled: none in X's units


def test_an_object_column_of_integers_is_answered_in_integers():
    """Found by a user: an object column holding integers came back as floats (57.0)."""
    import pandas as pd
    from sklearn.preprocessing import FunctionTransformer

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=200), rng.integers(0, 100, 200)
    X = pd.DataFrame({"a": a, "b": pd.array(list(b), dtype=object)})
    y = (a + b / 50 > 1).astype(int)
    model = make_pipeline(FunctionTransformer(lambda frame: frame.to_numpy(float)),
                          LogisticRegression()).fit(X, y)
    explainer = CounterfactualExplainer(model, distance="mad").fit(X)
    assert explainer._codec.integer_.tolist() == [False, True]
    exp = explain(explainer, X.iloc[:8])
    answers = exp.explanation["b"][exp.found]
    assert exp.explanation["b"].dtype == object and len(answers)
    assert all(isinstance(v, int) for v in answers)
    assert np.all(model.predict(exp.explanation[exp.found]) != exp.X_pred[exp.found])
