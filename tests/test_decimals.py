"""Answers hold the decimals of their columns (amounts in cents, measurements to 0.1)."""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skcem import CEMExplainer, CounterfactualExplainer
from skcem._decimals import column_decimals


def _table(n=400, seed=0):
    """A price in cents, a rate to 0.1, a count and a float without decimals."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"price": np.round(rng.uniform(0, 50, n), 2),
                      "rate": np.round(rng.uniform(0, 10, n), 1).astype(np.float32),
                      "count": rng.integers(0, 20, n),
                      "noise": rng.normal(size=n)})
    y = ((X["price"] / 5 + X["rate"] + X["count"] / 4 + X["noise"]) > 12).astype(int)
    return X, y


def _off_grid(values, decimals):
    values = np.asarray(values, float)
    scale = 10.0 ** np.maximum(decimals, 0)
    return (decimals >= 0) & np.isfinite(values) & \
        (np.abs(values * scale - np.rint(values * scale)) > 1e-6 * np.maximum(
            np.abs(values * scale), 1))


def test_column_decimals_reads_the_datas_own_places():
    X, _ = _table()
    assert column_decimals(X, np.ones(4, bool)).tolist() == [2, 1, 0, -1]
    # Only the columns asked about (whole numbers and categories are not).
    assert column_decimals(X, np.array([False, True, False, False])).tolist() == [-1, 1, -1, -1]
    # Two values (a 0/1 flag may be a share to its model), and places finer than float32
    # holds at the column's magnitude; but float64 amounts in cents and whole numbers of any
    # size hold theirs.
    rng = np.random.default_rng(0)
    flag = rng.integers(0, 2, 100).astype(float)
    large = (np.arange(100) * 0.01 + 1e6).astype(np.float32)
    cents = np.round(rng.uniform(1000, 5000, 100), 2)
    salaries = np.round(rng.uniform(2e4, 3e5, 100))
    halves = rng.choice([0.5, 1.5, 2.5], 100)
    assert column_decimals(np.c_[flag, large, cents, salaries, halves],
                           np.ones(5, bool)).tolist() == [-1, -1, 2, 0, 1]


@pytest.mark.parametrize("model", [RandomForestClassifier(30, random_state=0),
                                   HistGradientBoostingClassifier(max_iter=30, random_state=0),
                                   make_pipeline(StandardScaler(), LogisticRegression())])
@pytest.mark.parametrize("mode", ["CF", "PN"])
def test_changed_cells_hold_their_columns_decimals(model, mode):
    X, y = _table()
    model.fit(X, y)
    params = dict(distance="mad")
    explainer = CounterfactualExplainer(model, **params) if mode == "CF" else \
        CEMExplainer(model, mode="PN", **params)
    explainer.fit(X)
    np.testing.assert_array_equal(explainer.decimals_, [2, 1, -1, -1])
    rows = X.iloc[:30]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exp = explainer.explain(rows)
    answers = exp.explanation[exp.found]
    assert len(answers) >= 20
    changed = (answers[["price", "rate"]] != rows[exp.found][["price", "rate"]]).to_numpy()
    # (Where neither the nearest value nor the next one further keeps the class -- a tree
    # may give the instance's class back a step further -- the search's own value stays.)
    off = _off_grid(answers[["price", "rate"]], np.array([2, 1]))
    assert off.sum() <= 0.1 * changed.sum()
    moved = answers["price"].to_numpy() != rows["price"].to_numpy()[exp.found]
    assert moved.any()
    # Still answers by the model's own predict, and the distances are the answers'.
    predicted = model.predict(answers)
    assert np.all(predicted != model.predict(rows[exp.found]))


def test_rounding_keeps_every_answer_and_only_what_the_model_accepts(monkeypatch):
    """An answer whose rounded cells the model would put back in the instance's class keeps
    the search's own values: rounding never loses an answer."""
    from skcem import _decimals

    X, y = _table(seed=1)
    model = RandomForestClassifier(30, random_state=0).fit(X, y)
    rows = X.iloc[:40]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rounded = CounterfactualExplainer(model, distance="mad").fit(X).explain(rows)
        monkeypatch.setattr(_decimals, "_MAX_DECIMALS", -1)
        raw = CounterfactualExplainer(model, distance="mad").fit(X).explain(rows)
    np.testing.assert_array_equal(rounded.found, raw.found)
    assert _off_grid(raw.explanation[["price", "rate"]], np.array([2, 1])).any()
    valid = model.predict(rounded.explanation[rounded.found]) != \
        model.predict(rows[rounded.found])
    assert valid.all()
    # Answers in the columns' decimals, about as close as without them.
    found = rounded.found
    assert not _off_grid(rounded.explanation[["price", "rate"]], np.array([2, 1])).any()
    assert np.mean(rounded.distance[found]) <= 1.05 * np.mean(raw.distance[found])


def test_a_tree_models_split_points_on_floats_of_whole_numbers_are_whole():
    # A forest's thresholds on whole numbers lie halfway between them: the polish moved a
    # feature just past one, at half the cost of the whole step the rounding then made (a
    # forest on digits: one answer 0.89 in MAD-L1 before rounding, 6.46 after). On a float
    # column of whole numbers its points are whole, as on an integer column.
    from sklearn.datasets import load_digits

    X, y = _table(seed=1)
    X = X.to_numpy()  # the count a float column (a DataFrame's integers are whole already)
    model = RandomForestClassifier(30, random_state=0).fit(X, y)
    explainer = CounterfactualExplainer(model, distance="mad").fit(X)
    assert explainer.decimals_[2] == 0
    points = explainer._polish_cuts
    thresholds = np.concatenate([tree.tree_.threshold[tree.tree_.feature == 2]
                                 for tree in explainer.estimator_.estimators_])
    for grid in (points.above[2], points.below[2]):
        assert grid.size and np.all(grid == np.round(grid))
    # each threshold (a half) has the whole numbers on either side of it
    assert set(np.floor(thresholds) + 1) <= set(points.above[2])
    assert set(np.floor(thresholds)) <= set(points.below[2])

    digits, labels = load_digits(return_X_y=True)
    forest = RandomForestClassifier(50, random_state=0).fit(digits, labels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exp = CounterfactualExplainer(forest, distance="mad").fit(digits).explain(
            digits[[29]])
    assert exp.found[0] and forest.predict(exp.explanation)[0] != exp.X_pred[0]
    assert exp.distance[0] < 2.0  # 6.46 with the half steps

def test_arrays_and_several_answers_closest_first():
    X, y = _table(seed=2)
    model = RandomForestClassifier(30, random_state=0).fit(X.to_numpy(), y)
    explainer = CounterfactualExplainer(model, distance="mad", n_counterfactuals=3).fit(
        X.to_numpy())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exp = explainer.explain(X.to_numpy()[:15])
    answers = np.asarray(exp.counterfactuals, float)
    # The count, whole numbers in a float array, is read as such.
    np.testing.assert_array_equal(explainer.decimals_, [2, 1, 0, -1])
    changed = np.isfinite(answers) & (answers != X.to_numpy()[:15, None]) & \
        (explainer.decimals_ >= 0)
    # (Where rounding would undo the answer, the search's own value stays: rarely.)
    assert _off_grid(answers, explainer.decimals_).sum() <= 0.05 * changed.sum()
    d = exp.counterfactual_distance
    assert np.all(np.diff(np.where(np.isnan(d), np.inf, d), axis=1) >= 0)
    np.testing.assert_array_equal(d[:, 0][exp.found], exp.distance[exp.found])
    held = np.isfinite(d)
    assert held[:, 1:].any()
    pred = model.predict(answers.reshape(-1, answers.shape[-1])[held.ravel()])
    assert np.all(pred != np.repeat(model.predict(X.to_numpy()[:15]), held.sum(axis=1)))
    np.testing.assert_array_equal(answers.reshape(15, 3, -1)[:, 0][exp.found],
                                  exp.explanation[exp.found])


def test_a_pn_across_the_no_information_value_takes_the_next_value_further():
    """A PN that crosses the no-information value stops just past the mirror of the
    instance, whose nearest value of the decimals is inadmissible (no farther than the
    instance): the next one further is taken (found by a user: 5 of 10 wine rows kept
    values such as 1.2099990463256831)."""
    from sklearn.datasets import load_wine
    from sklearn.tree import DecisionTreeClassifier

    X, y = load_wine(return_X_y=True)
    model = DecisionTreeClassifier(max_depth=4, random_state=0).fit(X, y)
    explainer = CEMExplainer(model, mode="PN").fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exp = explainer.explain(X[:10])
    assert exp.found.sum() >= 8
    answers, rows = exp.explanation[exp.found], X[:10][exp.found]
    assert not _off_grid(answers, explainer.decimals_).any()
    assert np.all(model.predict(answers) != model.predict(rows))
    v = explainer.no_info_val_
    changed = answers != rows
    assert np.all((np.abs(answers - v) > np.abs(rows - v))[changed])


def test_exact_answers_are_the_optimum_among_values_of_the_decimals(monkeypatch):
    """The exact search's points hold the columns' decimals: its answers are proven optimal
    (gap 0) among such answers, no closer than the continuous optimum and at most a step of
    the decimals farther per changed cell."""
    from skcem import _decimals

    X, y = _table(seed=3)
    X = X[["price", "rate", "noise"]]
    model = RandomForestClassifier(6, max_depth=4, random_state=0).fit(X, y)
    rows = X.iloc[:12]
    explainer = CounterfactualExplainer(model, search="exact").fit(X)
    on_grid = explainer.explain(rows)
    monkeypatch.setattr(_decimals, "_MAX_DECIMALS", -1)
    continuous = CounterfactualExplainer(model, search="exact").fit(X).explain(rows)
    np.testing.assert_array_equal(on_grid.found, continuous.found)
    found = on_grid.found
    assert found.sum() >= 8
    np.testing.assert_array_equal(on_grid.gap[found], 0.0)
    answers = on_grid.explanation[found]
    assert not _off_grid(answers[["price", "rate"]], np.array([2, 1])).any()
    assert _off_grid(continuous.explanation[found][["price", "rate"]], np.array([2, 1])).any()
    np.testing.assert_array_equal(model.predict(answers), 1 - model.predict(rows[found]))
    # (the continuous answers lie a float32 step inside their intervals: a value of the
    # decimals may be a little closer)
    assert np.all(on_grid.distance[found] >= continuous.distance[found] - 1e-5)
    # (the default distance is L1 + L2 in raw units: a step of 0.1 costs at most 0.11)
    changed = (answers[["price", "rate"]] != rows[found][["price", "rate"]]).sum(axis=1)
    assert np.all(on_grid.distance[found] <= continuous.distance[found] + 0.11 * changed
                  + 1e-9)


def test_a_rounded_heuristic_answer_keeps_a_proven_gap():
    """Where the exact search gives the gradient-free search's answer (time up), rounding
    it to the decimals keeps its gap a proof: ``(1 - gap) * distance`` is at most the
    optimum."""
    X, y = _table(seed=3)
    X = X[["price", "rate", "noise"]]
    model = RandomForestClassifier(20, max_depth=5, random_state=0).fit(X, y)
    rows = X.iloc[:10]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hurried = CounterfactualExplainer(model, search="exact", max_time=1e-4).fit(X) \
            .explain(rows)
    # (a time limit no load reaches: the proofs take well under a second on a quiet machine,
    # and a CI machine at load 14 ran past the default 10 s on two of these rows)
    exact = CounterfactualExplainer(model, search="exact", max_time=300).fit(X).explain(rows)
    both = hurried.found & exact.found
    assert both.sum() >= 5 and np.all(exact.gap[both] == 0)
    assert not _off_grid(hurried.explanation[both][["price", "rate"]],
                         np.array([2, 1])).any()
    bound = (1 - hurried.gap[both]) * hurried.distance[both]
    assert np.all(bound <= exact.distance[both] + 1e-9)


def test_the_exact_programs_points_lie_past_thresholds_in_float32_too(monkeypatch):
    """A value of the decimals just above a threshold in float64 may be the threshold in
    float32, which the trees compare (117.45 is 117.449997): the program's points skip it,
    so that its answers are not refused by ``predict`` (a user's breast-cancer forest had
    5 of 10 first answers refused, 2 rows left with nothing proven)."""
    from sklearn.datasets import load_breast_cancer

    from skcem import _exact_search

    edge = np.float32(117.45).astype(float)
    low, _ = _exact_search._multiples_inside(np.array([edge]), np.array([np.inf]), 100.0)
    _, high = _exact_search._multiples_inside(np.array([-np.inf]), np.array([0.3]), 100.0)
    assert low[0] == 117.46 and high[0] == 0.29  # float32(0.3) lies above 0.3

    X, y = load_breast_cancer(return_X_y=True)
    perm = np.random.RandomState(0).permutation(len(X))
    X, y = X[perm], y[perm]
    model = RandomForestClassifier(50, max_depth=6, random_state=0).fit(X[:455], y[:455])
    refused = []
    solve = _exact_search.ExactSearch._solve_row

    def checked(self, structure, problem, i, *args):
        outcome = solve(self, structure, problem, i, *args)
        if outcome is not None and outcome[0] is not None:
            answer = outcome[0][None]
            refused.append(model.predict(answer)[0] == model.predict(problem.x0[[i]])[0])
        return outcome

    monkeypatch.setattr(_exact_search.ExactSearch, "_solve_row", checked)
    # (a time limit no load reaches: at 2 s, a busy CI machine proved one row of six)
    explainer = CounterfactualExplainer(model, search="exact", max_time=300, distance="mad")
    exp = explainer.fit(X[:455]).explain(X[455:461])
    assert exp.found.all() and len(refused) >= 3
    assert not any(refused)


def test_a_pps_learned_background_holds_the_columns_decimals():
    """Found by a user: prices in cents got the median 52.085 as their no-information value,
    which every PP that removes the price showed."""
    X = pd.DataFrame({"price": [10.25, 20.5, 52.08, 52.09, 70.1, 99.99],
                      "rate": [0.5, 1.5, 2.5, 3.5, 4.5, 5.5]})
    y = np.array([0, 0, 0, 1, 1, 1])
    model = LogisticRegression().fit(X, y)
    learned = CEMExplainer(model, mode="PP").fit(X)
    assert learned.decimals_.tolist() == [2, 1]
    assert learned.no_info_val_.tolist() == [52.08, 3.0]  # medians 52.085 and 3.0
    given = CEMExplainer(model, mode="PP", no_info_val={"price": 52.085}).fit(X)
    assert given.no_info_val_.tolist() == [52.085, 3.0]  # a given value stays as given


def test_a_cell_of_an_instance_outside_the_range_rounds_between_the_range_and_it():
    """Found by a user: a price of 276.55 above a range ending at 260 got 276.5281770580651
    from search="fista", where 276.53 (towards the range, and valid) was the rounding: the
    rounding stayed no farther outside the range than the answer itself."""
    X, y = _table()
    X["price"] = X["price"] * 10  # 0 to 500, in cents
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    explainer = CounterfactualExplainer(model, search="fista", distance="mad",
                                        feature_range={"price": (0.0, 250.0)}).fit(X)
    rows = X[X["price"] > 300].iloc[:25]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exp = explainer.explain(rows)
    answers = exp.explanation[exp.found]
    before = rows["price"][exp.found]
    moved = answers["price"] != before
    assert moved.sum() >= 5
    assert not _off_grid(answers["price"][moved], np.array(2)).any()
    # towards the range only, never past the instance
    assert np.all(answers["price"][moved] < before[moved])
    assert np.all(model.predict(answers) != model.predict(rows[exp.found]))
