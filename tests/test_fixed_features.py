"""Immutable features are held fixed by construction (issue 24, item 5): a PP keeps them
whatever the class rests on, so they are reported apart from what it keeps, in ``changes``,
``fixed``, ``to_frame``, the plot and the command line."""

import json
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from skcem import CEMExplainer, CounterfactualExplainer, TargetWarning
from skcem.__main__ import main
from skcem.metrics import cem_score, proximity, sparsity, validity

pd = pytest.importorskip("pandas")

NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
FIXED = ["sepal_length", "petal_width"]
FAST = dict(max_iterations=300, c_steps=5)


@pytest.fixture(scope="module")
def iris_frame():
    X, y = load_iris(return_X_y=True)
    X = pd.DataFrame(X, columns=NAMES)
    return X, LogisticRegression(max_iter=1000).fit(X, y)


def quiet_explain(explainer, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return explainer.explain(X)


@pytest.mark.parametrize("make", [
    lambda m: CEMExplainer(m, mode="PP", immutable_features=FIXED, **FAST),
    lambda m: CEMExplainer(m, mode="PN", immutable_features=FIXED, **FAST),
    lambda m: CounterfactualExplainer(m, immutable_features=FIXED, **FAST),
], ids=["PP", "PN", "CF"])
def test_changes_leave_immutable_features_to_fixed(iris_frame, make):
    X, model = iris_frame
    rows = X.iloc[[0, 60, 120, 140]]
    exp = quiet_explain(make(model).fit(X), rows)
    assert exp.found.any()
    np.testing.assert_array_equal(exp.immutable, [True, False, False, True])
    for i, (changed, fixed) in enumerate(zip(exp.changes(), exp.fixed())):
        assert not set(changed) & set(FIXED)
        if exp.found[i]:
            assert fixed == {name: rows[name].iloc[i] for name in FIXED}
            assert all(type(value) is float for value in fixed.values())
        else:
            assert fixed == {}
    if exp.mode == "PP":  # what a PP keeps, besides the fixed features
        for i in np.flatnonzero(exp.found):
            kept = [NAMES[j] for j in np.flatnonzero(exp.perturbation[i] != 0)]
            assert list(exp.changes()[i]) == [name for name in kept if name not in FIXED]


def test_to_frame_names_the_fixed_features(iris_frame):
    X, model = iris_frame
    cem = CEMExplainer(model, mode="PP", immutable_features=FIXED, **FAST).fit(X)
    exp = quiet_explain(cem, X.iloc[[0, 60, 120]])
    frame = exp.to_frame()
    assert list(frame.columns) == NAMES + ["found", "class", "PP_class", "distance", "c",
                                           "fixed"]
    assert frame["fixed"].tolist() == ["sepal_length, petal_width" if found else ""
                                       for found in exp.found]
    assert json.loads(exp.to_json())["immutable"] == [True, False, False, True]
    free = quiet_explain(CEMExplainer(model, mode="PP", **FAST).fit(X), X.iloc[[0]])
    assert "fixed" not in free.to_frame() and free.fixed() == [{}]


def test_integer_column_labels_and_kept_categories_are_plain_values():
    """A DataFrame with integer column labels is described by those labels, not x0, x1;
    a PP's kept category is a plain Python value (no numpy scalar)."""
    pd = pytest.importorskip("pandas")
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(100, 3)))
    y = (X[0] + X[1] > 0).astype(int)
    model = LogisticRegression().fit(X.to_numpy(), y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exp = CounterfactualExplainer(model, immutable_features=[2], max_iterations=50) \
            .fit(X).explain(X.iloc[:2])
    assert exp.found.all()
    assert all(set(row) <= {0, 1} and row for row in exp.changes())
    assert exp.fixed()[0].keys() == {2}
    assert exp.to_frame()["fixed"].tolist() == ["2", "2"]

    table = pd.DataFrame({"a": rng.normal(size=200), "vip": rng.choice([True, False], 200)})
    labels = (table.a + table.vip > 0.5).astype(int)
    forest = RandomForestClassifier(10, random_state=0).fit(table, labels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kept = CEMExplainer(forest, mode="PP").fit(table).explain(table.iloc[:6]).changes()
    values = [value for row in kept for value in row.values()]
    assert values and not any(isinstance(value, np.generic) for value in values)


def test_a_pp_that_keeps_only_fixed_features_keeps_nothing(iris_frame):
    X, model = iris_frame
    # Petal widths decide the class: with them immutable, a PP may keep nothing else.
    cem = CEMExplainer(model, mode="PP", immutable_features=["petal_length", "petal_width"],
                       **FAST).fit(X)
    rows = X.iloc[::10]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exp = cem.explain(rows)
    empty = exp.found & np.array([not changed for changed in exp.changes()])
    assert empty.any()
    messages = [str(w.message) for w in caught if w.category is TargetWarning]
    assert messages and messages[0].startswith(f"{empty.sum()} of {len(rows)} PPs keep nothing")
    # They score 0, as PPs that keep nothing do.
    per_instance = validity(exp) * sparsity(exp) * proximity(exp, cem.feature_range_)
    assert per_instance[empty].min() > 0
    assert cem_score(exp, cem.feature_range_) == pytest.approx(
        np.mean(np.where(empty, 0.0, per_instance)))


def test_the_plot_marks_fixed_features(iris_frame):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from skcem.plotting import plot_tabular_explanation

    X, model = iris_frame
    cem = CEMExplainer(model, mode="PP", immutable_features=FIXED, **FAST).fit(X)
    exp = quiet_explain(cem, X.iloc[[60]])
    fig = plot_tabular_explanation(exp)
    labels = fig.axes[0].get_yticklabels()
    assert [label.get_text() for label in labels] == [
        "sepal_length (fixed)", "sepal_width", "petal_length", "petal_width (fixed)"]
    grey = [label.get_color() == "tab:gray" for label in labels]
    assert grey == [True, False, False, True]
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_the_command_line_writes_fixed_features_apart(iris_frame, tmp_path, capsys):
    import joblib

    X, model = iris_frame
    joblib.dump(model, tmp_path / "model.joblib")
    X.to_csv(tmp_path / "train.csv", index=False)
    X.iloc[[0, 60, 120]].to_csv(tmp_path / "data.csv", index=False)
    out = tmp_path / "pp.json"
    code = main(["explain", "--model", str(tmp_path / "model.joblib"), "--data",
                 str(tmp_path / "data.csv"), "--train", str(tmp_path / "train.csv"),
                 "--mode", "PP", "--params", "max_iterations=300", "c_steps=5",
                 "immutable_features=sepal_length,petal_width", "--out", str(out), "--quiet"])
    assert code == 0, capsys.readouterr().err
    rows = json.loads(out.read_text())
    for row, (_, x) in zip(rows, X.iloc[[0, 60, 120]].iterrows()):
        assert not set(row["kept"]) & set(FIXED)
        assert row["fixed"] == ({name: x[name] for name in FIXED} if row["found"] else {})


@pytest.mark.parametrize("search", ["fista", "neighbors"])
def test_a_pps_distance_leaves_its_immutable_features_out(iris_frame, search):
    # they are kept by construction: every PP with all features immutable was found at a
    # distance of 11.2 (what the fixed features differ from the background)
    X, model = iris_frame
    rows = X.iloc[[0, 60, 120]]
    with pytest.warns(TargetWarning, match="keep nothing besides the features their "
                                           r"constraints hold \(Explanation.held: immutable, "
                                           "or kept from the background by directions\\): the "
                                           "model already gives .* with those features at the "
                                           "instance's values,"):
        exp = CEMExplainer(model, mode="PP", immutable_features=NAMES, search=search,
                           **FAST).fit(X).explain(rows)
    assert exp.found.all()
    np.testing.assert_array_equal(exp.distance, 0.0)
    cem = CEMExplainer(model, mode="PP", immutable_features=FIXED, search=search, **FAST).fit(X)
    exp = quiet_explain(cem, rows)
    kept = (exp.explanation.to_numpy() - cem.no_info_val_)[exp.found]
    free = [NAMES.index(name) for name in NAMES if name not in FIXED]
    expected = (kept[:, free] ** 2).sum(axis=1) + cem.beta * np.abs(kept[:, free]).sum(axis=1)
    np.testing.assert_allclose(exp.distance[exp.found], expected)


@pytest.mark.parametrize("search", ["fista", "neighbors"])
def test_the_warning_counts_pps_that_keep_only_what_directions_hold(iris_frame, search):
    """Found by a user: the warning counted PPs that keep nothing besides their immutable
    features, where changes() and the metrics also leave out those directions hold."""
    X, model = iris_frame
    rows = X.iloc[[0, 60, 120, 140]]  # petal lengths 1.4, 3.5, 5.7, 5.6; background 4.35
    free = ["sepal_width", "petal_length"]
    cem = CEMExplainer(model, mode="PP", search=search, directions={"petal_length": "increase"},
                       immutable_features=[n for n in NAMES if n not in free], **FAST).fit(X)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        exp = cem.explain(rows)
    empty = [found and not kept for found, kept in zip(exp.found, exp.changes())]
    assert sum(empty) >= 2  # rows 120 and 140 hold their petal length: sepal width alone
    said = [str(w.message) for w in record if issubclass(w.category, TargetWarning)
            and "keep nothing" in str(w.message)]
    assert len(said) == 1 and said[0].startswith(f"{sum(empty)} of 4 PPs keep nothing")


def test_a_pps_features_that_directions_keep_from_the_background_are_held(iris_frame):
    from skcem.metrics import explanation_metrics, n_changed

    X, model = iris_frame
    rows = X.iloc[[0, 60, 120, 140]]
    # A PP removes a feature by moving it to the background (the median, 4.35, in the
    # column's decimals: 4.4): one
    # that may only increase is kept where it lies above, whatever the class rests on; one
    # that may only decrease where it lies below.
    for direction, held_rows in (("increase", [False, False, True, True]),
                                 ("decrease", [True, True, False, False])):
        cem = CEMExplainer(model, mode="PP", directions={"petal_length": direction},
                           **FAST).fit(X)
        exp = quiet_explain(cem, rows)
        assert exp.found.all()
        assert np.asarray(exp.background)[2] == pytest.approx(4.4)
        expected = np.zeros((4, 4), bool)
        expected[:, 2] = held_rows
        np.testing.assert_array_equal(exp.held, expected)
        for i, (kept, fixed) in enumerate(zip(exp.changes(), exp.fixed())):
            assert ("petal_length" in fixed) == held_rows[i]
            assert "petal_length" not in kept or not held_rows[i]
            if held_rows[i]:
                assert fixed == {"petal_length": rows["petal_length"].iloc[i]}
        assert exp.to_frame()["fixed"].tolist() == ["petal_length" if h else ""
                                                    for h in held_rows]
        counted = [len(kept) for kept in exp.changes()]
        np.testing.assert_array_equal(n_changed(exp), counted)
        np.testing.assert_array_equal(
            explanation_metrics(model, rows, exp, mode="PP")["l0"], counted)
    free = quiet_explain(CEMExplainer(model, mode="PN", directions={"petal_length": "increase"},
                                      **FAST).fit(X), rows)
    assert not free.held.any() and "fixed" not in free.to_frame()


@pytest.mark.parametrize("search", ["fista", "neighbors"])
def test_a_pps_background_is_the_searchs_where_an_instance_lies_outside_the_range(search):
    """Found by a user: an instance's value outside feature_range widens the search's
    background to it, but the Explanation showed the range's: distance 0 beside a "kept"
    feature in changes(), the perturbation and the metrics."""
    from skcem.metrics import explanation_metrics

    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(X, y)
    rows = X[[0, 1, 60, 120]]
    explainer = CEMExplainer(model, mode="PP", no_info_val=0.0, feature_range=(1.0, 8.0),
                             search=search, **FAST).fit(X)
    exp = quiet_explain(explainer, rows)
    background = np.asarray(exp.background)
    # petal widths 0.2 (setosa) lie below 1.0: their background is their own value
    assert background.shape == (4, 4)
    np.testing.assert_array_equal(background[:, 3], np.where(rows[:, 3] < 1, rows[:, 3], 1.0))
    np.testing.assert_array_equal(background[:, :3], 1.0)
    found = exp.found
    assert found.any()
    delta = np.asarray(exp.perturbation)[found]
    # the distance is the elastic net of the perturbation shown
    elastic = (delta ** 2).sum(axis=1) + explainer.beta * np.abs(delta).sum(axis=1)
    np.testing.assert_allclose(exp.distance[found], elastic, rtol=1e-6, atol=1e-9)
    assert [len(kept) for kept in exp.changes()] == \
        (np.abs(np.asarray(exp.perturbation)) > 1e-12).sum(axis=1).tolist()
    metrics = explanation_metrics(model, rows, exp, mode="PP")
    np.testing.assert_array_equal(metrics["l0"][found], (np.abs(delta) > 1e-12).sum(axis=1))
    # the range holds those petal widths at the instance's value: held, and said so
    np.testing.assert_array_equal(exp.held[:, 3], rows[:, 3] < 1)
    assert not exp.held[:, :3].any()
    assert [("x3" in fixed) for fixed in exp.fixed()] == (rows[:, 3] < 1).tolist()
    assert exp.to_frame()["fixed"].tolist() == ["x3" if width < 1 else "" for width in rows[:, 3]]
