import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from skcem import _tabular_metrics as tabular_metrics
from skcem._tabular_metrics import METRICS
from skcem.metrics import explanation_metrics, summarize_metrics


class ThresholdClassifier:
    """Class 1 where column ``column`` exceeds ``threshold``; records its calls."""

    def __init__(self, column=0, threshold=0.5):
        self.column = column
        self.threshold = threshold
        self.calls = []

    def predict(self, X):
        self.calls.append(X)
        values = X[self.column] if isinstance(X, pd.DataFrame) else np.asarray(X)[:, self.column]
        return (np.asarray(values, dtype=float) > self.threshold).astype(int)


@pytest.fixture
def mixed():
    """One categorical and two numeric columns; MAD of a is 1, MAD of b is 2."""
    X_train = pd.DataFrame({
        "color": ["red", "blue", "red", "green", "blue"],
        "a": [0.0, 1.0, 2.0, 3.0, 4.0],
        "b": [0.0, 2.0, 4.0, 6.0, 8.0],
    })
    X = pd.DataFrame({"color": ["red", "blue"], "a": [0.0, 0.0], "b": [4.0, 4.0]},
                     index=["p", "q"])
    E = pd.DataFrame({"color": ["blue", "blue"], "a": [2.0, 3.0], "b": [3.0, 4.0]},
                     index=["p", "q"])
    return X, E, X_train


def test_norms_by_hand(mixed):
    X, E, X_train = mixed
    table = explanation_metrics(ThresholdClassifier("a"), X, E, X_train=X_train)
    assert list(table.columns) == list(METRICS)
    assert list(table.index) == ["p", "q"]
    # row p: color changes (1), a by 2 -> 2 MAD, b by -1 -> 0.5 MAD
    assert table.loc["p", "l0"] == 3
    assert table.loc["p", "l1"] == pytest.approx(3.5)
    assert table.loc["p", "l2"] == pytest.approx(np.sqrt(1 + 4 + 0.25))
    assert table.loc["p", "linf"] == pytest.approx(2.0)
    # row q: only a, by 3 MAD
    assert table.loc["q", ["l0", "l1", "l2", "linf"]].tolist() == pytest.approx([1, 3, 3, 3])
    assert table["valid"].dtype == bool and table["valid"].all()
    assert (table["violations"] == 0).all()
    assert table["seconds"].isna().all()


def test_mad_fallbacks_and_override():
    X_train = np.array([[0.0, 0.0], [0.0, 5.0], [0.0, 5.0], [0.0, 5.0], [5.0, 5.0]])
    # columns 0 and 1: MAD 0 -> mean absolute deviation from the median, 1.0; constant: 1
    X = np.array([[0.0, 5.0]])
    E = np.array([[4.0, 1.0]])
    table = explanation_metrics(ThresholdClassifier(0, 3.0), X, E, X_train=X_train)
    assert table.loc[0, "l1"] == pytest.approx(4.0 + 4.0)
    const = explanation_metrics(ThresholdClassifier(0, 3.0), X, E, X_train=np.ones((3, 2)),
                                n_neighbors=1)
    assert const.loc[0, "l1"] == pytest.approx(4.0 + 4.0)
    given = explanation_metrics(ThresholdClassifier(0, 3.0), X, E, X_train=X_train,
                                mad={0: 4.0})
    assert given.loc[0, "l1"] == pytest.approx(1.0 + 4.0)
    given = explanation_metrics(ThresholdClassifier(0, 3.0), X, E, mad=[4.0, 0.5])
    assert given.loc[0, "l1"] == pytest.approx(1.0 + 8.0)
    with pytest.raises(ValueError, match="mad"):
        explanation_metrics(ThresholdClassifier(), X, E, mad={0: 0.0})


def test_validity_modes_and_target():
    X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    E = np.array([[1.0, 0.0], [1.0, 1.0], [0.2, 0.0]])
    model = ThresholdClassifier(0, 0.5)
    for mode in ("CF", "PN"):
        table = explanation_metrics(model, X, E, mode=mode)
        assert table["valid"].tolist() == [True, False, False]
    # a wanted class replaces "any other class", even the original one
    table = explanation_metrics(model, X, E, mode="CF", target=[1, 1, 0])
    assert table["valid"].tolist() == [True, True, True]
    table = explanation_metrics(model, X, E, mode="CF", target=0)
    assert table["valid"].tolist() == [False, False, True]
    table = explanation_metrics(model, X, E, mode="CF", target=[None, 1, np.nan])
    assert table["valid"].tolist() == [True, True, False]
    # PP: the class of X kept; changes measured from the background
    table = explanation_metrics(model, X, E, mode="PP", background=[0.0, 0.0])
    assert table["valid"].tolist() == [False, True, True]
    assert table["l0"].tolist() == [1, 2, 1]


def test_logistic_regression_validity():
    rng = np.random.default_rng(0)
    X_train = rng.normal(size=(60, 2))
    model = LogisticRegression().fit(X_train, (X_train[:, 0] > 0).astype(int))
    X = np.array([[-2.0, 0.0], [2.0, 0.0]])
    E = np.array([[2.0, 0.0], [1.5, 0.0]])
    table = explanation_metrics(model, X, E, X_train=X_train)
    assert table["valid"].tolist() == [True, False]


def test_redundancy_and_predict_calls():
    model = ThresholdClassifier(0, 0.5)
    X = np.zeros((3, 3))
    E = np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [1.0, 2.0, 3.0]])
    X_train = np.random.default_rng(0).normal(size=(20, 3))
    table = explanation_metrics(model, X, E, X_train=X_train)
    assert table["redundancy"].tolist() == [1, 0, 2]
    # X, the explanations, the redundancy rows, X_train
    assert len(model.calls) == 4
    assert len(model.calls[2]) == 2 + 1 + 3


def test_a_set_back_that_creates_a_rare_pair_is_no_redundancy():
    """Setting ``relationship`` back alone would pair "Divorced" with "Husband", which no
    training row holds: the search refuses such answers, so the change is not redundant
    (with ``X_train``, which tells the rare pairs; without it, it counts)."""

    class Married:  # class 1 for the divorced, whatever the relationship
        def predict(self, X):
            return (np.asarray(X["marital"]) == "Divorced").astype(int)

    X_train = pd.DataFrame({"marital": ["Married"] * 5 + ["Divorced"] * 5,
                            "relationship": ["Husband"] * 5 + ["Not-in-family"] * 5})
    X = pd.DataFrame({"marital": ["Married"], "relationship": ["Husband"]})
    E = pd.DataFrame({"marital": ["Divorced"], "relationship": ["Not-in-family"]})
    assert explanation_metrics(Married(), X, E)["redundancy"].tolist() == [1]
    table = explanation_metrics(Married(), X, E, X_train=X_train)
    assert table["redundancy"].tolist() == [0]
    assert table["rare_pairs"].tolist() == [0]


def test_redundancy_pp_reverts_to_background():
    model = ThresholdClassifier(0, 0.5)
    X = np.array([[1.0, 1.0]])
    E = np.array([[1.0, 1.0]])
    table = explanation_metrics(model, X, E, mode="PP", background=np.zeros(2))
    assert table.loc[0, "valid"] and table.loc[0, "redundancy"] == 1
    assert np.isnan(explanation_metrics(model, X, -E, mode="PP",
                                        background=np.zeros(2)).loc[0, "redundancy"])


def test_violations():
    X = pd.DataFrame({"age": [30.0, 30.0], "income": [10.0, 10.0], "sex": ["f", "f"]})
    E = pd.DataFrame({"age": [25.0, 30.0], "income": [200.0, 5.0], "sex": ["m", "f"]})
    kwargs = dict(immutable_features=["sex"], directions={"age": "increase"},
                  feature_range={"income": (0, 100)})
    table = explanation_metrics(ThresholdClassifier("income", 50), X, E, **kwargs)
    # row 0: sex changed, age decreased, income outside its range; row 1: income 5 is fine
    assert table["violations"].tolist() == [3, 0]
    table = explanation_metrics(ThresholdClassifier("income", 50), X, E,
                                directions={"income": "increase"})
    assert table["violations"].tolist() == [0, 1]


def test_feature_range_as_a_pair_like_the_explainers():
    X = np.array([[30.0, 10.0], [30.0, 10.0]])
    E = np.array([[30.0, 200.0], [-5.0, 5.0]])
    model = ThresholdClassifier(1, 50)
    # one pair of numbers for all features; a pair of arrays (an explainer's feature_range_)
    for feature_range in [(0, 100), (np.array([0.0, 0.0]), np.array([100.0, 100.0]))]:
        table = explanation_metrics(model, X, E, feature_range=feature_range)
        assert table["violations"].tolist() == [1, 1]
    table = explanation_metrics(model, X, E, feature_range=(np.array([-10.0, 0.0]), 1000))
    assert table["violations"].tolist() == [0, 0]
    with pytest.raises(ValueError, match="feature_range must be a dict"):
        explanation_metrics(model, X, E, feature_range=(0, 1, 2))
    with pytest.raises(ValueError, match="low > high"):
        explanation_metrics(model, X, E, feature_range=(5, 1))


def test_ynn_constructed(monkeypatch):
    # class 1 where feature 0 > 0.5; training rows: four of class 1 near 10, then class 0
    # rows at 3 and 4, far class 0 rows at -10
    X_train = np.array([[10.0], [10.5], [11.0], [9.5], [3.0], [4.0], [-10.0], [-11.0]])
    X = np.array([[0.0], [0.0], [0.0]])
    E = np.array([[10.0], [6.0], [np.nan]])
    model = ThresholdClassifier(0, 0.5)
    monkeypatch.setattr(tabular_metrics, "_BLOCK_ELEMENTS", len(X_train))  # one row a block
    table = explanation_metrics(model, X, E, X_train=X_train, n_neighbors=5, mad=[1.0])
    # all training rows but those at -10, -11 are of class 1, so are E0 and E1
    assert table["ynn"].tolist()[:2] == pytest.approx([1.0, 1.0])
    # now the rows at 3 and 4 are of class 0; E0 at 10 and E1 at 6 still of class 1
    table = explanation_metrics(ThresholdClassifier(0, 5.0), X, E, X_train=X_train,
                                n_neighbors=5, mad=[1.0])
    # E0's nearest: 10, 10.5, 9.5, 11, 4 -> 4 of 5; E1's: 4, 3, 9.5, 10, 10.5 -> 3 of 5
    assert table["ynn"].tolist()[:2] == pytest.approx([0.8, 0.6])
    assert np.isnan(table.loc[2, "ynn"])
    assert np.isnan(explanation_metrics(model, X, E).loc[0, "ynn"])


def test_ynn_categorical_distance():
    X_train = pd.DataFrame({"c": ["x", "x", "y", "y"], "v": [0.0, 0.0, 0.0, 0.0]})

    class ByCategory:
        def predict(self, X):
            return (X["c"] == "y").astype(int).to_numpy()

    X = pd.DataFrame({"c": ["x"], "v": [0.0]})
    E = pd.DataFrame({"c": ["y"], "v": [0.0]})
    table = explanation_metrics(ByCategory(), X, E, X_train=X_train, n_neighbors=2)
    assert table.loc[0, "ynn"] == 1.0 and table.loc[0, "l1"] == 1.0


def test_not_found_rows():
    X = pd.DataFrame({"a": [0.0, 0.0], "c": ["u", "v"]})
    E = pd.DataFrame({"a": [np.nan, 1.0], "c": [None, "v"]})
    table = explanation_metrics(ThresholdClassifier("a"), X, E, X_train=X, n_neighbors=1,
                                seconds=[0.5, 0.25])
    assert not table.loc[0, "valid"]
    assert table.loc[0, list(METRICS[1:-1])].isna().all()
    assert table["seconds"].tolist() == [0.5, 0.25]
    assert table.loc[1, "valid"] and table.loc[1, "l0"] == 1
    summary = summarize_metrics(table)
    assert summary["found"] == 1 and summary["validity"] == 0.5
    assert summary["l0_median"] == 1 and summary["seconds_mean"] == 0.25
    none_found = explanation_metrics(ThresholdClassifier(), np.zeros((2, 2)),
                                     np.full((2, 2), np.nan))
    assert not none_found["valid"].any() and none_found["l0"].isna().all()


def test_pipeline_with_strings_dtypes_and_no_mutation():
    rng = np.random.default_rng(0)
    n = 80
    X_train = pd.DataFrame({
        "job": rng.choice(["a", "b", "c"], n),
        "size": pd.Categorical(rng.choice(["S", "L"], n)),
        "owner": rng.random(n) > 0.5,
        "x": rng.normal(size=n),
        "z": rng.normal(size=n),
    })
    y = ((X_train["x"] + 2 * (X_train["job"] == "a")) > 0.5).astype(int)
    model = make_pipeline(
        make_column_transformer(
            (OneHotEncoder(handle_unknown="ignore"), ["job", "size", "owner"]),
            (StandardScaler(), ["x", "z"])),
        LogisticRegression()).fit(X_train, y)
    X = X_train.iloc[:6].copy()
    E = X.astype({"owner": object})
    E["job"] = "a"
    E["x"] = E["x"] + 1.0
    E.iloc[3] = None
    X_copy, E_copy, T_copy = X.copy(), E.copy(), X_train.copy()
    table = explanation_metrics(model, X, E, X_train=X_train, immutable_features=["owner"],
                                background=None)
    pd.testing.assert_frame_equal(X, X_copy)
    pd.testing.assert_frame_equal(E, E_copy)
    pd.testing.assert_frame_equal(X_train, T_copy)
    found = np.array([True, True, True, False, True, True])
    pred_x = model.predict(X)[found]
    pred_e = model.predict(E[found].astype({"owner": bool}))
    assert table["valid"].tolist() == list(np.insert(pred_e != pred_x, 3, False))
    changed_job = (X["job"] != "a").to_numpy()
    assert table["l0"].tolist()[:3] == list((1 + changed_job[:3]).astype(float))
    assert table["violations"].fillna(0).eq(0).all()
    assert table["ynn"][found].between(0, 1).all()


def test_auto_categorical_and_masks():
    X = pd.DataFrame({"s": pd.array(["p", "q"], dtype="string"), "b": [True, False],
                      "k": pd.Categorical(["u", "v"]), "n": [1, 2]})
    E = pd.DataFrame({"s": ["q", "q"], "b": [True, True], "k": ["v", "v"], "n": [1, 4]})
    table = explanation_metrics(ThresholdClassifier("n", 1.5), X, E, mad={"n": 1.0})
    assert table["l1"].tolist() == [2.0, 3.0]  # row 0: s and k changed; row 1: b, n by 2
    assert table["l0"].tolist() == [2.0, 2.0]
    # integer-coded categories in an array
    Xa = np.array([[0.0, 1.0], [0.0, 1.0]])
    Ea = np.array([[5.0, 1.0], [0.0, 2.0]])
    as_cat = explanation_metrics(ThresholdClassifier(), Xa, Ea, categorical_features=[1],
                                 mad=[1.0, 1.0])
    as_mask = explanation_metrics(ThresholdClassifier(), Xa, Ea,
                                  categorical_features=[False, True], mad=[1.0, 1.0])
    assert as_cat["l1"].tolist() == as_mask["l1"].tolist() == [5.0, 1.0]


def test_bad_parameters_raise():
    X = pd.DataFrame({"a": [0.0], "c": ["u"]})
    E = pd.DataFrame({"a": [1.0], "c": ["u"]})
    model = ThresholdClassifier("a")
    with pytest.raises(ValueError, match=r"immutable_features.*'nope'"):
        explanation_metrics(model, X, E, immutable_features=["nope"])
    with pytest.raises(ValueError, match=r"categorical_features.*'zz'"):
        explanation_metrics(model, X, E, categorical_features=["zz"])
    with pytest.raises(ValueError, match="directions"):
        explanation_metrics(model, X, E, directions={"a": "up"})
    with pytest.raises(ValueError, match=r"directions.*categorical"):
        explanation_metrics(model, X, E, directions={"c": "increase"})
    with pytest.raises(ValueError, match=r"feature_range.*'q'"):
        explanation_metrics(model, X, E, feature_range={"q": (0, 1)})
    with pytest.raises(ValueError, match="mode"):
        explanation_metrics(model, X, E, mode="XX")
    with pytest.raises(ValueError, match="background"):
        explanation_metrics(model, X, E, mode="PP")
    with pytest.raises(ValueError, match="background lacks"):
        explanation_metrics(model, X, E, mode="PP", background={"a": 0.0})
    with pytest.raises(ValueError, match="target"):
        explanation_metrics(model, X, E, mode="PN", target=1)
    with pytest.raises(ValueError, match="n_neighbors"):
        explanation_metrics(model, X, E, X_train=X, n_neighbors=2)
    with pytest.raises(ValueError, match="explanations lacks"):
        explanation_metrics(model, X, E[["a"]])
    with pytest.raises(ValueError, match="categorical_features"):
        explanation_metrics(model, X, E, categorical_features=[])
    with pytest.raises(TypeError, match="estimator"):
        explanation_metrics(object(), X, E)
    with pytest.raises(ValueError, match="table"):
        summarize_metrics(pd.DataFrame({"valid": [True]}))


def test_pandas_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="pip install pandas"):
        explanation_metrics(ThresholdClassifier(), np.zeros((1, 1)), np.ones((1, 1)))


def test_pp_constraints_are_measured_from_the_instance():
    """A PP that keeps an immutable feature violates nothing, though it differs from the
    background there; a kept feature whose removal would break a direction is not redundant."""
    X = pd.DataFrame({"a": [5.0, 1.0], "b": [3.0, 2.0]})
    model = ThresholdClassifier(column="a", threshold=2.0)
    kept = X.copy()  # keeps everything: a valid PP
    table = explanation_metrics(model, X, kept, mode="PP", background={"a": 0.0, "b": 0.0},
                                immutable_features=["a"], directions={"b": "increase"},
                                X_train=X, n_neighbors=1)
    assert table["violations"].tolist() == [0, 0]
    # b can be removed without changing the class, but removing it decreases b: not allowed
    assert table["redundancy"].tolist() == [0, 0]


def test_feature_range_of_a_time_column():
    X = pd.DataFrame({"when": pd.to_datetime(["2020-01-10", "2020-01-10"]),
                      "x": [1.0, 1.0]})
    E = pd.DataFrame({"when": pd.to_datetime(["2020-03-01", "2020-01-05"]), "x": [2.0, 2.0]})
    model = ThresholdClassifier("x", 1.5)
    bounds = (pd.Timestamp("2020-01-01"), pd.Timestamp("2020-02-01"))
    table = explanation_metrics(model, X, E, feature_range={"when": bounds})
    assert table["violations"].tolist() == [1, 0]
    # an explainer's feature_range_ counts a time column in its own steps: left out
    table = explanation_metrics(model, X, E, feature_range=(np.array([0.0, 0.0]),
                                                            np.array([10.0, 10.0])))
    assert table["violations"].tolist() == [0, 0]


def test_a_pps_background_of_a_time_column():
    # A PP's background row holds a time (a Timestamp among objects): compared as a time,
    # not refused as "not numeric" (a user's PP metrics on a table with a date column).
    X = pd.DataFrame({"when": pd.to_datetime(["2020-01-10", "2020-03-01"]), "x": [2.0, 3.0]})
    background = {"when": pd.Timestamp("2020-01-01"), "x": 0.0}
    E = pd.DataFrame({"when": pd.to_datetime(["2020-01-01", "2020-03-01"]), "x": [2.0, 3.0]})
    model = ThresholdClassifier("x", 1.5)
    table = explanation_metrics(model, X, E, mode="PP", background=background)
    # the first PP drops the date (at its background), the second keeps it
    assert table["l0"].tolist() == [1, 2]
    assert table["valid"].tolist() == [True, True]


def test_metrics_of_an_explanation_and_of_arrays():
    """The per-explanation metrics name what they take when given arrays;
    explanation_metrics takes an Explanation as its answers."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    import skcem.metrics as metrics
    from skcem import CounterfactualExplainer

    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(X, y)
    cf = CounterfactualExplainer(model).fit(X)
    exp = cf.explain(X[:4])
    answers = np.asarray(exp.explanation)
    for name, call in (("sparsity", lambda: metrics.sparsity(answers)),
                       ("proximity", lambda: metrics.proximity(answers, cf.feature_range_)),
                       ("cem_score", lambda: metrics.cem_score(answers, cf.feature_range_)),
                       ("validity", lambda: metrics.validity(answers)),
                       ("n_changed", lambda: metrics.n_changed(answers))):
        with pytest.raises(TypeError, match=rf"{name}: `explanation` must be the Explanation"
                                            r".*explanation_metrics"):
            call()
    pd = pytest.importorskip("pandas")
    pd.testing.assert_frame_equal(metrics.explanation_metrics(model, X[:4], exp),
                                  metrics.explanation_metrics(model, X[:4], answers),
                                  check_exact=False)


def test_pp_metrics_of_an_explanation_take_its_background_in_the_columns_values():
    """A PP's kept features are counted against its explainer's no-information row, in the
    columns' own values; a category code given as a text column's background is refused
    (it counted every categorical column as kept)."""
    from sklearn.ensemble import RandomForestClassifier

    from skcem import CEMExplainer

    rng = np.random.RandomState(0)
    n = 200
    X = pd.DataFrame({"age": rng.randint(18, 70, n), "income": rng.normal(50, 15, n).round(1),
                      "job": rng.choice(["a", "b", "c"], n), "sex": rng.choice(["m", "f"], n)})
    y = ((X.income > 55) | (X.job == "a")).astype(int)
    model = make_pipeline(
        make_column_transformer((OneHotEncoder(handle_unknown="ignore"), ["job", "sex"]),
                                (StandardScaler(), ["age", "income"])),
        RandomForestClassifier(30, max_depth=4, random_state=0)).fit(X, y)
    cem = CEMExplainer(model, mode="PP").fit(X)
    exp = cem.explain(X.iloc[:12])
    table = explanation_metrics(model, X.iloc[:12], exp, mode="PP")
    kept = [len(row) for row in exp.changes()]
    assert exp.found.sum() >= 6
    np.testing.assert_array_equal(table.l0.to_numpy()[exp.found], np.array(kept)[exp.found])
    by_hand = {name: (cem.categories_[j][int(cem.no_info_val_[j])]
                      if cem.categories_[j] is not None else cem.no_info_val_[j])
               for j, name in enumerate(X.columns)}
    pd.testing.assert_frame_equal(
        table, explanation_metrics(model, X.iloc[:12], exp, mode="PP", background=by_hand))
    with pytest.raises(ValueError, match=r"background holds 0\.0 for the categorical column "
                                         r"'job'.*no_info_val_ holds category codes"):
        explanation_metrics(model, X.iloc[:12], exp, mode="PP", background=cem.no_info_val_)


def test_a_text_column_the_explained_rows_all_miss_is_categorical_by_the_training_rows():
    rng = np.random.RandomState(0)
    X_train = pd.DataFrame({"a": rng.normal(size=60), "c": rng.choice(["u", "v"], 60)})
    y = (X_train.a > 0).astype(int)
    model = make_pipeline(make_column_transformer(
        (OneHotEncoder(handle_unknown="ignore"), ["c"]), remainder="passthrough"),
        LogisticRegression()).fit(X_train, y)
    X = pd.DataFrame({"a": [-1.0, 1.0], "c": pd.Series([None, None], dtype=object)})
    E = X.assign(a=[1.0, -1.0])
    table = explanation_metrics(model, X, E, X_train=X_train)
    assert table.valid.tolist() == [True, True]
    np.testing.assert_array_equal(table.l0, [1, 1])


def test_a_pps_immutable_features_are_not_counted_as_kept():
    # l0 counted them: one more than Explanation.changes() on every row
    from skcem import CEMExplainer

    rng = np.random.default_rng(3)
    X = pd.DataFrame({"age": rng.integers(18, 80, 300).astype(float),
                      "income": rng.normal(50, 10, 300), "debt": rng.random(300)})
    y = (X["income"] / 10 - 2 * X["debt"] + rng.normal(0, 0.3, 300) > 4.5).astype(int)
    model = LogisticRegression().fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exp = CEMExplainer(model, mode="PP", immutable_features=["age"]).fit(X).explain(
            X.iloc[:6])
        table = explanation_metrics(model, X.iloc[:6], exp, mode="PP",
                                    immutable_features=["age"])
    assert exp.found.any()
    found = np.flatnonzero(exp.found)
    assert table["l0"].iloc[found].tolist() == [len(exp.changes()[i]) for i in found]


def test_a_pps_immutable_features_count_nothing_in_the_metrics():
    """Found by a user: changes() left a PP's immutable features out (kept by construction),
    while n_changed, sparsity, proximity and explanation_metrics (given the Explanation,
    which carries them) counted them, a PP that keeps nothing else as keeping two."""
    from sklearn.datasets import load_wine

    from skcem import CEMExplainer, metrics

    X, y = load_wine(return_X_y=True, as_frame=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    cem = CEMExplainer(model, mode="PP", immutable_features=["alcohol", "proline"]).fit(X)
    rows = X.iloc[[0, 1, 130, 131]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exp = cem.explain(rows)
    kept = np.array([len(c) for c in exp.changes()], dtype=float)
    assert kept.min() == 0 and kept.max() > 0  # some keep nothing but the immutable ones
    np.testing.assert_array_equal(metrics.n_changed(exp), kept)
    np.testing.assert_array_equal(metrics.proximity(exp, cem.feature_range_)[kept == 0], 1.0)
    table = metrics.explanation_metrics(model, rows, exp, mode="PP")
    np.testing.assert_array_equal(table["l0"], kept)
    assert (table["redundancy"] == 0).all()


def test_a_counterfactuals_own_target_class_is_what_its_metrics_hold_it_to(iris, iris_model):
    from dataclasses import replace

    from skcem import CounterfactualExplainer

    X, _ = iris
    predicted = iris_model.predict(X)
    rows = X[predicted == 0][:3]
    other = X[predicted == 1][0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exp = CounterfactualExplainer(iris_model, target_class=2).fit(X).explain(rows)
        anywhere = CounterfactualExplainer(iris_model).fit(X).explain(rows)
    assert exp.found.all() and exp.target_class.tolist() == [2, 2, 2]
    assert anywhere.target_class is None
    assert explanation_metrics(iris_model, rows, exp)["valid"].all()
    # an answer of class 1 is a counterfactual, but not one of class 2
    answers = exp.explanation.copy()
    answers[0] = other
    wrong_class = explanation_metrics(iris_model, rows, replace(exp, explanation=answers))
    assert wrong_class["valid"].tolist() == [False, True, True]
    anywhere = replace(anywhere, explanation=answers)
    assert explanation_metrics(iris_model, rows, anywhere)["valid"].all()
    # rank by rank (to_frame's rows of several answers), each keeps its row's target
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        several = CounterfactualExplainer(iris_model, target_class=2, n_counterfactuals=2,
                                          search="neighbors").fit(X).explain(rows)
    assert several._ranked().target_class.tolist() == [2] * 6


def test_an_explanation_is_measured_on_its_own_rows_only():
    """Found by a user: an Explanation measured with other rows, or its rows shuffled, gave
    wrong metrics (validity 0.3, l0 8.7) without a word."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from skcem import CounterfactualExplainer
    from skcem.metrics import explanation_metrics

    X, y = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=1000).fit(X, y)
    exp = CounterfactualExplainer(model).fit(X).explain(X.iloc[:6])
    expected = explanation_metrics(model, X.iloc[:6], exp)
    pd.testing.assert_frame_equal(explanation_metrics(model, None, exp), expected)
    for other in (X.iloc[6:12], X.iloc[:6].iloc[::-1]):
        with pytest.raises(ValueError, match="X is not the rows the Explanation explains"):
            explanation_metrics(model, other, exp)


def test_a_function_of_probabilities_is_read_as_the_explainers_read_it():
    """Found by a user: the explainers take a function returning probabilities (and deep
    models), the metrics refused them ("must be a fitted classifier with a predict
    method"). Its largest output is the class, named by the Explanation's classes."""
    from sklearn.datasets import load_breast_cancer

    from skcem import CounterfactualExplainer

    X, y = load_breast_cancer(return_X_y=True)
    y = np.where(y == 1, "benign", "malignant")
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    answers = CounterfactualExplainer(model.predict_proba, distance="mad").fit(X, y).explain(
        X[:6])
    by_function = explanation_metrics(model.predict_proba, X[:6], answers)
    by_model = explanation_metrics(model, X[:6], answers)
    pd.testing.assert_frame_equal(by_function.drop(columns="seconds"),
                                  by_model.drop(columns="seconds"))
    with pytest.raises(TypeError, match="a function returning probabilities; got int"):
        explanation_metrics(3, X[:6], answers)
    # without the Explanation, its outputs' classes are positions: a label target is refused
    # (a review's valid was False for every row)
    with pytest.raises(ValueError, match="`target` holds class labels"):
        explanation_metrics(model.predict_proba, X[:6], answers.explanation, target="benign")
    # a function of float arrays, explained on a DataFrame of floats, is asked with arrays
    frame = pd.DataFrame(X[:6], columns=[f"f{j}" for j in range(X.shape[1])])

    def of_arrays(rows):
        assert isinstance(rows, np.ndarray)
        return model.predict_proba(rows)

    table = explanation_metrics(of_arrays, frame, pd.DataFrame(answers.explanation,
                                                               columns=frame.columns))
    assert table["valid"].tolist() == by_model["valid"].tolist()


def test_an_explanations_own_mode_is_the_default(iris, iris_model):
    """Found by a review: PPs valid by predict were scored as counterfactuals (invalid,
    l0 = 4) when mode was left out."""
    from skcem import CEMExplainer
    from skcem.metrics import explanation_metrics

    X, _ = iris
    cem = CEMExplainer(iris_model, mode="PP", max_iterations=200, c_steps=3).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exp = cem.explain(X[[0, 60, 120]])
    assert exp.found.any()
    default = explanation_metrics(iris_model, None, exp)
    given = explanation_metrics(iris_model, None, exp, mode="PP")
    pd.testing.assert_frame_equal(default, given)
    assert default["valid"][exp.found].all()
    with pytest.raises(ValueError, match="mode='CF', but `explanations` are PPs"):
        explanation_metrics(iris_model, None, exp, mode="CF")


def test_several_answers_per_row_are_told_how_to_be_scored():
    """Found by a trial: n_counterfactuals=3's table, indexed by (row, rank), got "must have
    one row per row of X (15); got 45" without the way to score it."""
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    from skcem import CounterfactualExplainer

    X, y = load_iris(return_X_y=True, as_frame=True)
    model = RandomForestClassifier(20, random_state=0).fit(X, y)
    exp = CounterfactualExplainer(model, n_counterfactuals=3).fit(X).explain(X.iloc[:5])
    with pytest.raises(ValueError, match=r"got 15: 3 answers per row \(n_counterfactuals, "
                                         r"indexed by \(row, rank\)\)\? .*"
                                         r"explanations.xs\(0, level=-1\)"):
        explanation_metrics(model, X.iloc[:5], exp.counterfactuals)
    closest = explanation_metrics(model, X.iloc[:5], exp.counterfactuals.xs(0, level=-1))
    np.testing.assert_array_equal(closest["valid"], exp.found)
    stacked = exp.counterfactuals.to_numpy(dtype=float).reshape(5, 3, 4)
    with pytest.raises(ValueError, match=r"got shape \(5, 3, 4\): 3 answers per row\? .*"
                                         r"explanations\[:, 0\]"):
        explanation_metrics(model, X.iloc[:5].to_numpy(), stacked)


def test_targets_seconds_answers_and_estimators_a_table_cannot_score_are_refused(iris,
                                                                               iris_model):
    X, y = iris
    E = X[:3] + 0.1
    with pytest.raises(ValueError, match=r"`target` holds labels the model does not know: "
                                         r"\[9\]; classes are \[0, 1, 2\]"):
        explanation_metrics(iris_model, X[:3], E, target=9)
    with pytest.raises(ValueError, match="seconds must hold numbers"):
        explanation_metrics(iris_model, X[:3], E, seconds="a")
    with pytest.raises(ValueError, match="seconds must be 0 or more"):
        explanation_metrics(iris_model, X[:3], E, seconds=-1.0)
    with pytest.raises(ValueError, match="`explanations` hold infinite values"):
        explanation_metrics(iris_model, X[:3], np.where(E == E[0, 0], np.inf, E))
    from sklearn.linear_model import LinearRegression

    with pytest.raises(TypeError, match="classifier.*regressor LinearRegression"):
        explanation_metrics(LinearRegression().fit(X, y), X[:3], E)
    # a target the model knows, and the seconds given, are taken
    table = explanation_metrics(iris_model, X[:3], E, target=[0, 1, 2], seconds=0.5)
    assert (table["seconds"] == 0.5).all()
    np.testing.assert_array_equal(table["valid"], iris_model.predict(E) == [0, 1, 2])


def test_a_pp_keeping_a_category_feature_range_leaves_out_at_the_background_is_no_redundancy():
    """Found by a user: with feature_range={"size": ["S", "M"]} a PP cannot remove a size to
    the background's "XL", yet the metrics counted keeping it as redundant."""
    model = ThresholdClassifier("a", 0.5)
    X = pd.DataFrame({"a": [1.0], "size": ["M"]})
    kept = pd.DataFrame({"a": [1.0], "size": ["M"]})
    background = {"a": 0.0, "size": "XL"}
    free = explanation_metrics(model, X, kept, mode="PP", background=background,
                               categorical_features=["size"])
    assert free.loc[0, "redundancy"] == 1  # size could go back to XL
    held = explanation_metrics(model, X, kept, mode="PP", background=background,
                               categorical_features=["size"],
                               feature_range={"size": ["M"]})
    assert held.loc[0, "valid"] and held.loc[0, "redundancy"] == 0
