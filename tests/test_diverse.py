"""Diverse counterfactuals: ``CounterfactualExplainer(n_counterfactuals=k)`` and the diversity
measures of :mod:`skcem.metrics`."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import make_column_transformer
from sklearn.datasets import load_wine
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier

from skcem import CounterfactualExplainer, ExplanationNotFoundWarning
from skcem.costs import median_absolute_deviation
from skcem.metrics import continuous_diversity, count_diversity

from .conftest import FAST, small_mixed_forest


def _explain(explainer, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        return explainer.explain(X)


@pytest.fixture(scope="module")
def forest(iris):
    X, y = iris
    return RandomForestClassifier(30, random_state=0).fit(X, y)


@pytest.fixture(scope="module")
def table():
    """A small table with a categorical column, and a Pipeline that takes it raw."""
    rng = np.random.default_rng(0)
    n = 400
    frame = pd.DataFrame({"income": rng.normal(50, 15, n), "age": rng.integers(20, 70, n),
                          "hours": rng.normal(40, 8, n),
                          "job": rng.choice(["clerk", "manager", "nurse", "driver"], n)})
    score = (frame["income"] - 50) / 15 + (frame["hours"] - 40) / 8 \
        + frame["job"].eq("manager") * 1.5 + (frame["age"] - 45) / 20
    y = (score + rng.normal(0, 0.3, n) > 0.5).astype(int)
    model = make_pipeline(
        make_column_transformer((OneHotEncoder(handle_unknown="ignore"), ["job"]),
                                remainder="passthrough"),
        LogisticRegression(max_iter=1000)).fit(frame, y)
    return frame, y, model


def _check_ranked(explanation, model, k, rows):
    """Each instance's answers: valid, distinct, closest first, rank 0 the explanation."""
    answers = explanation.counterfactuals
    distance = explanation.counterfactual_distance
    assert distance.shape == (rows, k)
    found = np.isfinite(distance)
    np.testing.assert_array_equal(found[:, 0], explanation.found)
    np.testing.assert_allclose(distance[:, 0][explanation.found],
                               explanation.distance[explanation.found])
    for i in np.flatnonzero(explanation.found):
        ranks = np.flatnonzero(found[i])
        # Found ranks come first, by increasing distance: rank 0 is the closest.
        np.testing.assert_array_equal(ranks, np.arange(ranks.size))
        assert np.all(np.diff(distance[i, :ranks.size]) >= 0)
        if hasattr(answers, "loc"):
            mine = answers.loc[explanation.X.index[i]].iloc[ranks]
            assert not mine.duplicated().any()
            expected = explanation.explanation.iloc[[i]].reset_index(drop=True)
            pd.testing.assert_frame_equal(mine.iloc[[0]].reset_index(drop=True), expected,
                                          check_dtype=False)
            predicted = model.predict(mine)
            original = model.predict(explanation.X.iloc[[i]])[0]
        else:
            mine = answers[i, ranks]
            assert len(np.unique(mine, axis=0)) == ranks.size
            # No near copies: the same features changed by amounts within 10%.
            delta = mine - explanation.X[i]
            for a in range(ranks.size):
                for b in range(a):
                    same = (delta[a] != 0) == (delta[b] != 0)
                    assert not (np.all(same) and np.all(
                        np.abs(delta[a] - delta[b])
                        <= 0.1 * np.maximum(np.abs(delta[a]), np.abs(delta[b])))), (a, b)
                    # nor the same moves, one farther in every feature
                    assert not (np.all(np.sign(delta[a]) == np.sign(delta[b])) and (
                        np.all(np.abs(delta[a]) >= np.abs(delta[b]))
                        or np.all(np.abs(delta[a]) <= np.abs(delta[b])))), (a, b)
            np.testing.assert_array_equal(mine[0], explanation.explanation[i])
            predicted = model.predict(mine)
            original = model.predict(explanation.X[[i]])[0]
        # target_class="other": each answer of any class but the instance's
        assert np.all(predicted != original)
        assert explanation.counterfactual_pred[i, 0] == explanation.explanation_pred[i]
        np.testing.assert_array_equal(explanation.counterfactual_pred[i, ranks], predicted)
        assert np.all(explanation.counterfactual_pred[i, ranks.size:] == None)  # noqa: E711


def test_k_answers_distinct_valid_ordered_gradient_free(iris, forest):
    X, _ = iris
    explainer = CounterfactualExplainer(forest, n_counterfactuals=4).fit(X)
    assert explainer.search_ == "neighbors"
    exp = _explain(explainer, X[::15])
    assert exp.counterfactuals.shape == (10, 4, 4)
    _check_ranked(exp, forest, 4, 10)
    assert np.isfinite(exp.counterfactual_distance).sum(axis=1)[exp.found].mean() >= 2.5


def test_k_exact_answers_in_a_frame_with_each_ranks_class(iris):
    X, y = iris
    tree = DecisionTreeClassifier(max_depth=4, random_state=0).fit(X, y)
    exp = _explain(CounterfactualExplainer(tree, n_counterfactuals=3, search="exact").fit(X),
                   X[::30])
    _check_ranked(exp, tree, 3, len(X[::30]))
    frame = exp.to_frame()
    assert frame.shape[0] == 3 * len(X[::30])
    ranks = frame.index.get_level_values("rank")
    # the proven gap is rank 0's (the exact answer); the alternatives have none
    np.testing.assert_array_equal(frame["gap"][ranks == 0], exp.gap)
    assert frame["gap"][ranks > 0].isna().all()
    found = frame["found"].to_numpy(bool)
    np.testing.assert_array_equal(frame["CF_class"][found].astype(int),
                                  tree.predict(frame[[f"x{j}" for j in range(4)]][found]))


@pytest.mark.parametrize("search", ["auto", "fista"])
def test_k_answers_after_the_gradient_search(iris, iris_model, search):
    X, _ = iris
    explainer = CounterfactualExplainer(iris_model, n_counterfactuals=3, search=search,
                                        C=0.05, **FAST).fit(X)
    assert explainer.search_ == "fista"
    exp = _explain(explainer, X[::25])
    _check_ranked(exp, iris_model, 3, len(X[::25]))
    assert np.isfinite(exp.counterfactual_distance[:, 1]).any()


def test_a_closer_alternative_than_the_gradient_answer_comes_first():
    """After the gradient search, an alternative of the gradient-free steps that is closer
    than the gradient's answer is rank 0, and the explanation (found by a user: MAD
    distances on a scaled logistic model)."""
    X, y = load_wine(return_X_y=True)
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    explainer = CounterfactualExplainer(model, n_counterfactuals=4, distance="mad",
                                        max_iterations=100).fit(X)
    rows = X[[20, 40, 120]]
    exp = _explain(explainer, rows)
    single = _explain(CounterfactualExplainer(model, distance="mad", max_iterations=100)
                      .fit(X), rows)
    gradient = _explain(CounterfactualExplainer(model, distance="mad", max_iterations=100,
                                                search="fista").fit(X), rows)
    _check_ranked(exp, model, 4, len(rows))
    assert np.all(exp.distance[exp.found] <= single.distance[exp.found] + 1e-9)
    # closer than the gradient's answer (as one answer's gradient-free steps find too)
    assert np.any(exp.distance < gradient.distance - 1e-3)
    proba = model.predict_proba(exp.explanation[exp.found])
    np.testing.assert_allclose(exp.explanation_proba[exp.found], proba, rtol=1e-6)


def test_k_answers_on_a_raw_table(table):
    frame, _, model = table
    rows = frame.iloc[:12].set_axis([f"r{i}" for i in range(12)])
    explainer = CounterfactualExplainer(model, n_counterfactuals=3, distance="mad").fit(frame)
    exp = _explain(explainer, rows)
    answers = exp.counterfactuals
    assert isinstance(answers, pd.DataFrame)
    assert list(answers.columns) == list(frame.columns)
    assert answers.index.names[1] == "rank"
    assert list(answers.index[:3]) == [("r0", 0), ("r0", 1), ("r0", 2)]
    assert answers["job"].dtype == frame["job"].dtype
    _check_ranked(exp, model, 3, 12)
    # Shown by to_frame (one row per rank) and changes (one list per instance).
    shown = exp.to_frame()
    assert shown.shape[0] == 36 and shown.index.names[1] == "rank"
    np.testing.assert_array_equal(shown["found"].to_numpy(),
                                  np.isfinite(exp.counterfactual_distance).ravel())
    changes = exp.changes()
    assert len(changes) == 12
    for i, listed in enumerate(changes):
        assert len(listed) == int(np.isfinite(exp.counterfactual_distance[i]).sum())
        assert all(listed) and len({tuple(sorted(c.items())) for c in listed}) == len(listed)


def test_one_counterfactual_is_the_default_path(iris, forest):
    X, _ = iris
    default = _explain(CounterfactualExplainer(forest).fit(X), X[::15])
    one = _explain(CounterfactualExplainer(forest, n_counterfactuals=1).fit(X), X[::15])
    np.testing.assert_array_equal(default.explanation, one.explanation)
    assert one.counterfactuals.shape == (10, 1, 4)
    np.testing.assert_array_equal(one.counterfactuals[:, 0], one.explanation)
    assert one.to_frame().shape[0] == 10
    assert isinstance(one.changes()[0], dict)


def test_bad_n_counterfactuals(iris, forest):
    X, _ = iris
    with pytest.raises(ValueError, match="n_counterfactuals"):
        CounterfactualExplainer(forest, n_counterfactuals=0).fit(X)


def test_count_and_continuous_diversity():
    answers = np.array([[[1.0, 2.0, 3.0], [1.0, 5.0, 3.0], [0.0, 5.0, 3.0]],
                        [[1.0, 2.0, 3.0], [np.nan] * 3, [np.nan] * 3]])
    # Pairs differ in 1, 2 and 1 of 3 features; one answer has no pair.
    np.testing.assert_allclose(count_diversity(answers), [4 / 9, np.nan])
    # |differences| over MADs (1, 3, 1): pairs (0, 1, 0), (1, 1, 0), (1, 0, 0), over 9 cells.
    np.testing.assert_allclose(continuous_diversity(answers, mad=[1.0, 3.0, 1.0]),
                               [4 / 9, np.nan])
    frame = pd.DataFrame({"x": [0.0, 2.0, 1.0, 1.0], "job": ["a", "b", "a", "a"]},
                         index=pd.MultiIndex.from_product([[10, 11], [0, 1]]))
    np.testing.assert_allclose(count_diversity(frame), [1.0, 0.0])
    np.testing.assert_allclose(continuous_diversity(frame, mad={"x": 2.0}), [1.0, 0.0])
    np.testing.assert_allclose(count_diversity([frame.loc[10], frame.loc[11]]), [1.0, 0.0])


def test_diversity_of_sets_that_hold_an_outcome_column():
    """Found by a user: DiCE's final_cfs_df holds the outcome; count_diversity counted it
    as a feature (0.278 for 0.312) and continuous_diversity failed inside pandas (or, given
    an X_train with the outcome, scaled it too). Features can be named; a column X_train
    lacks is refused, naming it."""
    X_train = pd.DataFrame({"age": [20.0, 30.0, 40.0, 50.0, 60.0],
                            "job": ["a", "b", "a", "c", "b"]})
    answers = pd.DataFrame({"age": [25.0, 35.0, 25.0], "job": ["a", "a", "c"],
                            "income": [1, 1, 1]})
    # pairs (0, 1): age differs; (0, 2): job; (1, 2): both
    assert count_diversity([answers], features=["age", "job"])[0] == pytest.approx(4 / 6)
    assert count_diversity([answers])[0] == pytest.approx(4 / 9)  # income counted, alike
    assert count_diversity([answers], features="age")[0] == pytest.approx(2 / 3)  # one name
    with pytest.raises(ValueError, match="`features` names no column"):
        count_diversity([answers], features=[])
    with pytest.raises(ValueError, match=r"hold columns that X_train lacks: \['income'\]"):
        continuous_diversity([answers], X_train)
    mad = np.median(np.abs(X_train.age - X_train.age.median()))
    assert continuous_diversity([answers], X_train, features=["age", "job"])[0] == \
        pytest.approx((10 + 0 + 10) / 3 / mad)


def test_fewer_answers_than_asked_are_named(iris, forest):
    """Found by a user: n_counterfactuals=10 gave 1 to 4 answers a row, and only a row with
    none was warned about (DiCE says "Only 3 (required 10)")."""
    X, _ = iris
    explainer = CounterfactualExplainer(forest, n_counterfactuals=10,
                                        immutable_features=[0, 1]).fit(X)
    with pytest.warns(ExplanationNotFoundWarning, match=r"\d+ of 5 instances got fewer than "
                                                        r"the 10 counterfactuals asked"):
        answers = explainer.explain(X[[0, 50, 60, 100, 120]])
    counts = np.isfinite(answers.counterfactual_distance).sum(axis=1)
    assert (counts[answers.found] < 10).any()


def test_two_missing_categories_are_no_difference():
    # an instance's missing cell stays missing in all its answers: no diversity there
    index = pd.MultiIndex.from_product([[0], [0, 1, 2]])
    for missing in ([None, None, None], pd.array([pd.NA, "x", pd.NA], dtype="string"),
                    pd.Series([np.nan] * 3, dtype="str")):
        frame = pd.DataFrame({"a": [0.1, 0.5, 0.9], "c": missing}, index=index)
        # pairs differ in a, and in c where exactly one of the two is missing
        expected = (3 + sum(pd.isna(frame.c.iloc[i]) != pd.isna(frame.c.iloc[j])
                            for i, j in ((0, 1), (0, 2), (1, 2)))) / 6
        np.testing.assert_allclose(count_diversity(frame), [expected])
    np.testing.assert_allclose(count_diversity(frame.assign(c=["x", None, "x"])), [5 / 6])


def test_diversity_of_an_explanation(iris, forest):
    X, _ = iris
    exp = _explain(CounterfactualExplainer(forest, n_counterfactuals=3).fit(X), X[::30])
    counts = count_diversity(exp)
    assert counts.shape == (5,) and np.all((counts[np.isfinite(counts)] > 0)
                                           & (counts[np.isfinite(counts)] <= 1))
    assert np.all(continuous_diversity(exp, X)[np.isfinite(counts)] > 0)


def test_diversity_keeps_instances_that_share_a_label_apart(iris, forest):
    # a repeated id merged two instances' answers into one set; a MultiIndex of X lost its
    # names in the counterfactuals' index
    X, _ = iris
    columns = ["sl", "sw", "pl", "pw"]
    cf = CounterfactualExplainer(forest, n_counterfactuals=3).fit(
        pd.DataFrame(X, columns=columns))
    rows = X[[0, 60, 0, 120]]
    plain = _explain(cf, pd.DataFrame(rows, columns=columns))
    labelled = _explain(cf, pd.DataFrame(rows, columns=columns, index=["a", "b", "a", "c"]))
    np.testing.assert_array_equal(count_diversity(labelled), count_diversity(plain))
    np.testing.assert_array_equal(continuous_diversity(labelled, X),
                                  continuous_diversity(plain, X))
    assert count_diversity(plain).shape == (4,)
    index = pd.MultiIndex.from_tuples([("u", 1), ("u", 2), ("v", 1), ("v", 2)],
                                      names=["group", "n"])
    grouped = _explain(cf, pd.DataFrame(rows, columns=columns, index=index))
    assert list(grouped.counterfactuals.index.names) == ["group", "n", "rank"]
    assert list(grouped.to_frame().index.names) == ["group", "n", "rank"]
    np.testing.assert_array_equal(count_diversity(grouped), count_diversity(plain))
    # a MultiIndex's labels are written as lists, which read back as its tuples
    loaded = json.loads(grouped.to_json())
    assert pd.MultiIndex.from_tuples(map(tuple, loaded["index"])).equals(index)


def test_diversity_errors():
    answers = np.zeros((2, 2, 3))
    with pytest.raises(ValueError, match="X_train"):
        continuous_diversity(answers)
    with pytest.raises(ValueError, match="`mad`"):
        continuous_diversity(answers, mad=[1.0, 2.0])
    with pytest.raises(ValueError, match="`counterfactuals`"):
        count_diversity(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="`atol`"):
        count_diversity(answers, atol=-1)
    with pytest.raises(ValueError, match="`atol`"):  # found by a trial: same answers, 1.0
        count_diversity(answers, atol=float("nan"))
    # a numpy float is a number (found by a review: "must be a non-negative number")
    np.testing.assert_array_equal(count_diversity(answers, atol=np.float32(0.1)), [0.0, 0.0])


def test_continuous_diversity_takes_x_train_by_position_as_wide_as_the_answers():
    """Found by a trial: an X_train with an id column in front gave other features' MADs
    (28.7 for 0.21), a narrower one an IndexError; and features named by position read
    X_train's columns at the positions among those features."""
    rng = np.random.default_rng(0)
    X_train = rng.normal(size=(50, 4)) * [1.0, 10.0, 100.0, 1000.0]
    answers = rng.normal(size=(3, 2, 4)) * [1.0, 10.0, 100.0, 1000.0]
    mad = median_absolute_deviation(X_train)
    by_hand = np.mean(np.abs(answers[:, 0] - answers[:, 1]) / mad, axis=1)
    np.testing.assert_allclose(continuous_diversity(answers, X_train), by_hand)
    np.testing.assert_allclose(continuous_diversity(answers, pd.DataFrame(X_train)), by_hand)
    frame = pd.DataFrame(X_train, columns=list("abcd"))
    named = pd.DataFrame(answers.reshape(6, 4), columns=list("abcd"),
                         index=pd.MultiIndex.from_product([range(3), range(2)]))
    np.testing.assert_allclose(continuous_diversity(named, frame), by_hand)
    polars = pytest.importorskip("polars")  # found by a user: polars' X_train failed
    np.testing.assert_allclose(continuous_diversity(named, polars.from_pandas(frame)), by_hand)
    kept = [1, 3]
    by_hand = np.mean(np.abs(answers[:, 0, kept] - answers[:, 1, kept]) / mad[kept], axis=1)
    np.testing.assert_allclose(continuous_diversity(answers, X_train, features=kept), by_hand)
    for wrong in (np.c_[np.arange(50), X_train], X_train[:, :3], X_train[:, 0]):
        with pytest.raises(ValueError, match=r"X_train must be 2-D with the answers' 4 "
                                             r"columns \(taken by position\); got shape"):
            continuous_diversity(answers, wrong)


def test_cli_writes_every_counterfactual(tmp_path, iris, forest, capsys):
    import joblib

    from skcem.__main__ import main

    X, _ = iris
    joblib.dump(forest, tmp_path / "model.joblib")
    header = "a,b,c,d\n"
    (tmp_path / "train.csv").write_text(header + "\n".join(",".join(map(str, r)) for r in X))
    (tmp_path / "data.csv").write_text(header + "\n".join(",".join(map(str, r))
                                                         for r in X[[0, 60, 120]]))
    command = ["explain", "--model", str(tmp_path / "model.joblib"), "--data",
               str(tmp_path / "data.csv"), "--train", str(tmp_path / "train.csv"),
               "--mode", "CF", "--quiet", "--out", str(tmp_path / "out.json")]
    assert main(command + ["--n-counterfactuals", "3"]) == 0
    rows = json.loads((tmp_path / "out.json").read_text())
    assert {r["row"] for r in rows} == {0, 1, 2}
    for i in range(3):
        mine = [r for r in rows if r["row"] == i]
        assert [r["rank"] for r in mine] == list(range(len(mine)))
        assert len({json.dumps(r["changed"], sort_keys=True) for r in mine}) == len(mine)
        for r in mine:  # each answer's own class (every rank had rank 0's)
            answer = X[[0, 60, 120][i]].copy()
            answer[["abcd".index(name) for name in r["changed"]]] = list(r["changed"].values())
            assert r["CF_class"] == forest.predict(answer[None])[0] != r["class"]
    assert max(r["rank"] for r in rows) == 2
    assert len({r["CF_class"] for r in rows}) > 1
    assert main(command[:-5] + ["--mode", "PN", "--quiet", "--out", str(tmp_path / "o.json"),
                                "--n-counterfactuals", "2"]) == 2
    assert "--n-counterfactuals: only with --mode CF" in capsys.readouterr().err


def test_plot_counterfactuals(iris, forest):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from skcem.plotting import plot_counterfactuals

    X, _ = iris
    exp = _explain(CounterfactualExplainer(forest, n_counterfactuals=3).fit(X), X[[0, 60]])
    fig = plot_counterfactuals(exp, index=1)
    titles = [ax.get_title() for ax in fig.axes]
    assert len(titles) == 3 and titles[0].startswith("rank 0: class")
    found = np.isfinite(exp.counterfactual_distance[1])
    assert [not t.endswith("none") for t in titles] == list(found)
    with pytest.raises(ValueError, match="`axes` must hold 3 axes"):
        plot_counterfactuals(exp, axes=fig.axes[:2])


def test_a_category_alone_that_no_start_shows():
    # job "d" alone gives class 1, but the training rows with "d" are far in z (which the
    # model ignores): none is among an instance's starts, whose categories (a, b, c) need
    # x > 5. Changing job alone is then the closest answer.
    rng = np.random.default_rng(0)
    n = 2000
    frame = pd.DataFrame({"x": rng.uniform(0, 10, n), "z": rng.normal(0, 1, n),
                          "job": rng.choice(["a", "b", "c"], n)})
    far = frame.index[-20:]
    frame.loc[far, "job"] = "d"
    frame.loc[far, "z"] = 1000.0 + np.arange(20)
    y = ((frame["x"] > 5) | frame["job"].eq("d")).astype(int)
    model = make_pipeline(
        make_column_transformer((OneHotEncoder(handle_unknown="ignore"), ["job"]),
                                ("passthrough", ["x"])),
        DecisionTreeClassifier(random_state=0)).fit(frame, y)
    rows = pd.DataFrame({"x": [1.0, 2.0], "z": [0.0, 0.5], "job": ["a", "b"]})
    assert np.all(model.predict(rows) == 0) and np.all(model.predict(rows.assign(job="d")))
    explainer = CounterfactualExplainer(model, n_counterfactuals=3, distance="mad").fit(frame)
    exp = _explain(explainer, rows)
    _check_ranked(exp, model, 3, 2)
    for i in range(2):
        answers = exp.counterfactuals.loc[i]
        assert answers.iloc[0].tolist() == [rows["x"][i], rows["z"][i], "d"]


def test_images_ask_the_model_in_bounded_calls(digits, digits_model, monkeypatch):
    # 2 MNIST rows asked about 853,000 pairs of pixel moves in one call (a 159 GiB tensor,
    # a segfault): an image's moves are tried alone, and no call passes the bound
    import skcem._neighbors as neighbors

    X, _ = digits
    sizes = []

    def predict_proba(Z):
        sizes.append(len(Z))
        return digits_model.predict_proba(Z)

    runs, largest = [], []
    for bound in (neighbors._MAX_CALL_NUMBERS, 64 * 500):
        monkeypatch.setattr(neighbors, "_MAX_CALL_NUMBERS", bound)
        sizes.clear()
        cf = CounterfactualExplainer(predict_proba, n_counterfactuals=3, search="neighbors",
                                     feature_range=(0.0, 16.0))
        runs.append(_explain(cf.fit(X[:300], digits_model.predict(X[:300])), X[300:302]))
        assert max(sizes) <= bound // 64
        largest.append(max(sizes))
    assert largest[0] > 500  # the bounded run did split its calls
    np.testing.assert_array_equal(runs[0].counterfactuals, runs[1].counterfactuals)
    assert runs[0].found.all()


@pytest.mark.parametrize("search", ["exact", "auto"])
def test_no_alternative_is_an_answer_moved_farther(search):
    """Found by a user: rank 1 was rank 0 with the same feature moved farther (c: -0.795 to
    -0.966, 22% more), in the same leaf of every tree: the same explanation twice."""
    df, model = small_mixed_forest()
    explainer = CounterfactualExplainer(model, n_counterfactuals=3, search=search,
                                        distance="mad", immutable_features=["shape"],
                                        directions={"a": "increase"}).fit(df)
    exp = _explain(explainer, df.iloc[:10])
    numeric = ["a", "b", "c"]
    for i, answers in exp.counterfactuals.groupby(level=0):
        answers = answers.dropna(how="all")
        assert (model.predict(answers) != model.predict(df.iloc[[i]])[0]).all()
        delta = (answers[numeric] - df.loc[i, numeric].to_numpy(float)).to_numpy(float)
        colors = answers["color"].to_numpy()
        for a in range(len(answers)):
            for b in range(a):
                farther = np.all(np.sign(delta[a]) == np.sign(delta[b])) and \
                    np.all(np.abs(delta[a]) >= np.abs(delta[b]))
                assert not (farther and colors[a] == colors[b]), (i, answers)


def test_rows_the_gradient_free_search_leaves_get_the_exact_answer_with_several_asked():
    # With n_counterfactuals > 1 the exact completion of search="auto" was skipped: rows it
    # answers with one answer asked went unanswered with three.
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.preprocessing import OrdinalEncoder

    rng = np.random.default_rng(0)
    n = 500
    age, income = rng.integers(18, 75, size=n), rng.normal(50.0, 15.0, size=n).round(2)
    hours, kids = rng.uniform(10, 60, size=n).round(1), rng.integers(0, 5, size=n)
    owner = rng.random(n) < 0.4
    color = rng.choice(["red", "green", "blue", "black"], size=n, p=[0.4, 0.3, 0.2, 0.1])
    city = rng.choice(["A", "B", "C"], size=n)
    score = (0.05 * (age - 45) + 0.06 * (income - 50) + 0.04 * (hours - 35) - 0.3 * (kids - 2)
             + 0.8 * owner + np.select([color == "red", color == "blue"], [0.7, -0.6], 0.0)
             + np.where(city == "B", 0.5, 0.0))
    y = (score + rng.normal(0, 0.7, n) > 0).astype(int)
    frame = pd.DataFrame({"age": age, "income": income, "hours": hours, "kids": kids,
                          "owner": owner, "color": pd.Series(color, dtype=object),
                          "city": pd.Series(city, dtype=object)})
    model = make_pipeline(
        ColumnTransformer([("n", "passthrough", ["age", "income", "hours", "kids"]),
                           ("c", OrdinalEncoder(), ["owner", "color", "city"])]),
        GradientBoostingClassifier(n_estimators=30, max_depth=3, random_state=0)).fit(
            frame[:400], y[:400])
    constraints = dict(immutable_features=["city", "kids"],
                       directions={"age": "increase", "hours": "decrease"},
                       feature_range={"income": (40.0, 80.0), "age": (20.5, 70.5),
                                      "hours": (12.0, 58.0)})
    answers = {k: _explain(CounterfactualExplainer(model, distance="mad", n_counterfactuals=k,
                                                   **constraints).fit(frame[:400]),
                           frame[400:440])
               for k in (1, 3)}
    assert answers[1].found.sum() > 30
    np.testing.assert_array_equal(answers[3].found, answers[1].found)
    first = answers[3].counterfactuals.xs(0, level=1)
    pd.testing.assert_frame_equal(first[answers[3].found], answers[3].explanation.dropna())
    assert np.all(model.predict(answers[3].explanation.dropna())
                  != answers[3].X_pred[answers[3].found])


def test_diversity_and_metrics_take_the_explainers_integer_coded_categories():
    """Found by a user: an array's categorical_features were counted as numbers, |0 - 3| / 1,
    by continuous_diversity and by explanation_metrics' l1 (which then disagreed with the
    explainer's own distance)."""
    from skcem.metrics import explanation_metrics

    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(size=400), rng.normal(size=400),
                         rng.integers(0, 4, 400)]).astype(float)
    y = ((X[:, 0] + X[:, 1] + 2 * (X[:, 2] == 3) - (X[:, 2] == 0)) > 0.5).astype(int)
    model = RandomForestClassifier(50, random_state=0).fit(X[:300], y[:300])
    explainer = CounterfactualExplainer(model, distance="mad", n_counterfactuals=3,
                                        categorical_features=[2]).fit(X[:300])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        explanation = explainer.explain(X[300:310])
    mad = median_absolute_deviation(X[:300])
    expected = []
    for answers in explanation.counterfactuals:
        answers = answers[~np.isnan(answers).all(axis=1)]
        first, second = np.triu_indices(len(answers), 1)
        expected.append(np.mean(np.abs(answers[first, :2] - answers[second, :2]) / mad[:2])
                        if len(answers) > 1 else np.nan)
    assert np.allclose(continuous_diversity(explanation, X[:300]), expected, equal_nan=True)
    assert any(np.any(a[:, 2] != a[0, 2]) for a in explanation.counterfactuals)  # codes move
    table = explanation_metrics(model, None, explanation, X_train=X[:300])
    found = explanation.found
    assert np.allclose(table["l1"].to_numpy()[found], explanation.distance[found])
    assert np.any(explanation.explanation[found, 2] != X[300:310][found, 2])


def test_a_bool_column_is_a_category_in_an_object_array_too():
    """Found by a user: the same answers gave 2.0 as a DataFrame and 1.5 as an object array
    (True - False counted as a number)."""
    index = pd.MultiIndex.from_tuples([(0, 0), (0, 1)], names=[None, "rank"])
    frame = pd.DataFrame({"n": [1.0, 3.0], "b": [True, False]}, index=index)
    assert continuous_diversity(frame, mad=[1.0, 1.0]) == [2.0]
    assert continuous_diversity(frame.to_numpy(dtype=object)[None], mad=[1.0, 1.0]) == [2.0]


def test_mad_of_every_feature_with_features():
    """Found by a user: a MAD per feature (an explainer's mad_) was refused with `features`,
    which a full-width X_train is not."""
    answers = np.array([[[1.0, 2, 3], [1, 5, 3], [0, 5, 3]]])
    assert continuous_diversity(answers, mad=[1.0, 2.0, 4.0], features=[1]) == \
        pytest.approx([1.0])
    assert continuous_diversity(answers, mad=[2.0], features=[1]) == pytest.approx([1.0])
    with pytest.raises(ValueError, match=r"one value per feature \(1 of `features`, or 3\)"):
        continuous_diversity(answers, mad=[1.0, 2.0], features=[1])


def test_further_answers_away_from_the_features_of_those_found():
    """Found by a user: a row got 1 of 3 answers, every start nearest to it leading to the
    same feature, where an answer changing three others exists."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y = load_breast_cancer(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(X))
    X, y = X[order], y[order]
    model = make_pipeline(StandardScaler(), HistGradientBoostingClassifier(max_iter=50)).fit(
        X[:-30], y[:-30])
    x = X[-30:][26]
    explainer = CounterfactualExplainer(model, distance="mad", n_counterfactuals=3,
                                        immutable_features=[0, 1],
                                        directions={2: "increase"}).fit(X[:-30])
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExplanationNotFoundWarning)
        explanation = explainer.explain(x[None])
    answers, distances = explanation.counterfactuals[0], explanation.counterfactual_distance[0]
    assert np.all(np.isfinite(distances)) and np.all(np.diff(distances) > 0)
    assert np.array_equal(answers[0], explanation.explanation[0])
    assert np.all(model.predict(answers) != model.predict(x[None]))
    assert np.all(answers[:, :2] == x[:2]) and np.all(answers[:, 2] >= x[2])
    first = answers[0] != x
    assert any(not np.any((answer != x) & first) for answer in answers[1:])
