"""The plausibility term: answers pulled among training rows of their class (yNN)."""

import warnings

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from skcem import CEMExplainer, CounterfactualExplainer, ExplanationNotFoundWarning
from skcem.metrics import explanation_metrics

from .test_tables import _spouses

pd = pytest.importorskip("pandas")

IMMUTABLE = ["city"]
DIRECTIONS = {"age": "increase"}


def _people(n=800, seed=0):
    """A mixed table: income, age and job raise the class, the city does not matter."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"income": rng.normal(50, 15, n).round(1),
                      "age": rng.integers(20, 70, n),
                      "job": rng.choice(["clerk", "nurse", "pilot"], n),
                      "city": rng.choice(["north", "south"], n)})
    score = ((X["income"] - 50) / 15 + (X["age"] - 45) / 25 + 1.2 * (X["job"] == "pilot")
             + rng.normal(0, 0.3, n))
    y = (score > 0.6).astype(int)
    encode = ColumnTransformer([("c", OneHotEncoder(), ["job", "city"])],
                               remainder=StandardScaler())
    return X, y, encode


def _explain(explainer, rows):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        return explainer.explain(rows)


def _scored(model, X, rows, exp, mode):
    return explanation_metrics(model, rows, exp.explanation, mode=mode, X_train=X,
                               immutable_features=IMMUTABLE, directions=DIRECTIONS)


@pytest.mark.parametrize("mode", ["CF", "PN"])
@pytest.mark.parametrize("classifier", [LogisticRegression, RandomForestClassifier])
def test_plausibility_raises_ynn_and_keeps_answers_valid(mode, classifier):
    X, y, encode = _people()
    extra = {"n_estimators": 30, "random_state": 0} if classifier is RandomForestClassifier \
        else {}
    model = make_pipeline(encode, classifier(**extra)).fit(X, y)
    rows = X[model.predict(X) == 0].iloc[:40]
    tables = {}
    for weight in (0.0, 1.0):
        params = dict(immutable_features=IMMUTABLE, directions=DIRECTIONS, distance="mad",
                      plausibility=weight)
        explainer = CounterfactualExplainer(model, **params) if mode == "CF" else \
            CEMExplainer(model, mode="PN", **params)
        exp = _explain(explainer.fit(X), rows)
        assert exp.found.mean() > 0.9
        table = _scored(model, X, rows, exp, mode)
        tables[weight] = table[exp.found]
        assert tables[weight]["valid"].all()
        assert tables[weight]["violations"].sum() == 0
    # Minimal answers sit at the model's boundary, half among the other class; the term
    # moves them among rows of their class, for a longer change. A PN moves features away
    # from their no-information value only: made admissible, the rows of its class nearest
    # to the instance become the instance again, and the rows left whole start it there.
    # (PN: 0.60 to 0.915 at 8 starts refined, 0.93 at 3, whose answers were 1% farther)
    gain = 0.15 if mode == "CF" else 0.3
    assert tables[1.0]["ynn"].mean() >= tables[0.0]["ynn"].mean() + gain
    assert tables[1.0]["l1"].mean() > tables[0.0]["l1"].mean()


def test_plausibility_works_after_the_gradient_search():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(600, 4))
    y = (X @ [1.0, 0.5, -0.5, 0.2] + rng.normal(0, 0.3, 600) > 0).astype(int)
    model = LogisticRegression().fit(X, y)
    rows = X[model.predict(X) == 0][:30]
    ynn = {}
    for weight in (0.0, 1.0):
        explainer = CounterfactualExplainer(model, distance="mad", plausibility=weight).fit(X)
        assert explainer.search_ == "fista"
        exp = _explain(explainer, rows)
        assert exp.found.all()
        table = explanation_metrics(model, rows, exp.explanation, X_train=X)
        assert table["valid"].all()
        ynn[weight] = table["ynn"].mean()
    assert ynn[1.0] >= ynn[0.0] + 0.3


def test_plausibility_zero_is_the_default_search():
    X, y, encode = _people()
    model = make_pipeline(encode, LogisticRegression()).fit(X, y)
    rows = X[model.predict(X) == 0].iloc[:30]
    for make in (lambda **p: CounterfactualExplainer(model, n_counterfactuals=3, **p),
                 lambda **p: CEMExplainer(model, mode="PN", **p)):
        default = _explain(make(immutable_features=IMMUTABLE).fit(X), rows)
        off = _explain(make(immutable_features=IMMUTABLE, plausibility=0).fit(X), rows)
        pd.testing.assert_frame_equal(off.explanation, default.explanation)
        np.testing.assert_array_equal(off.distance, default.distance)
        if default.counterfactuals is not None:
            pd.testing.assert_frame_equal(off.counterfactuals, default.counterfactuals)


def test_rare_pairs_change_no_answer_without_one():
    """By default (plausibility=0) the only answers that differ from the search without the
    rare-pair rule are answers that held a rare pair."""
    X, model = _spouses()
    rows = X[model.predict(X) == 0].iloc[:80]
    explainer = CounterfactualExplainer(model, immutable_features=["sex"]).fit(X)
    checked = _explain(explainer, rows).explanation
    explainer._category_pairs = None  # what the search answers without the rule
    unchecked = _explain(explainer, rows).explanation
    rare = explanation_metrics(model, rows, unchecked, X_train=X)["rare_pairs"] > 0
    assert rare.any() and not rare.all()  # both kinds of answers are there
    pd.testing.assert_frame_equal(checked[~rare.to_numpy()], unchecked[~rare.to_numpy()])


def test_several_plausible_counterfactuals():
    X, y, encode = _people()
    model = make_pipeline(encode, LogisticRegression()).fit(X, y)
    rows = X[model.predict(X) == 0].iloc[:20]
    exp = _explain(CounterfactualExplainer(
        model, n_counterfactuals=3, distance="mad", plausibility=1,
        immutable_features=IMMUTABLE, directions=DIRECTIONS).fit(X), rows)
    answers = exp.counterfactuals.dropna(how="all")
    assert len(answers) > len(rows)  # more than one answer for some rows
    instances = rows.loc[answers.index.get_level_values(0)].set_axis(answers.index)
    table = explanation_metrics(model, instances, answers, X_train=X,
                                immutable_features=IMMUTABLE, directions=DIRECTIONS)
    assert table["valid"].all() and table["violations"].sum() == 0
    for _, group in answers.groupby(level=0):
        assert not group.duplicated().any()
    # The first answer of each row is the explanation itself.
    first = exp.counterfactuals.xs(0, level="rank")
    pd.testing.assert_frame_equal(first, exp.explanation, check_names=False)


@pytest.mark.parametrize("value", [-0.5, "high", None])
def test_bad_plausibility_is_refused(value):
    X, y, encode = _people(200)
    model = make_pipeline(encode, LogisticRegression()).fit(X, y)
    with pytest.raises(ValueError, match="plausibility"):
        CounterfactualExplainer(model, plausibility=value).fit(X)


def test_plausibility_refused_where_it_cannot_act():
    X, y, encode = _people(200)
    model = make_pipeline(encode, LogisticRegression()).fit(X, y)
    with pytest.raises(ValueError, match="`plausibility`.*PP"):
        CEMExplainer(model, mode="PP", plausibility=1).fit(X)
    numeric = X[["income", "age"]]
    smooth = LogisticRegression().fit(numeric, y)
    with pytest.raises(ValueError, match="`plausibility` > 0 needs the gradient-free steps"):
        CounterfactualExplainer(smooth, search="fista", plausibility=1).fit(numeric)


@pytest.mark.parametrize("l1_weight, l2_weight, reach", [(1.0, 0.0, 6.0), (0.0, 1.0, 36.0),
                                                         (0.5, 1.0, 39.0)])
def test_plausibility_reach_is_a_move_six_crossings_long(l1_weight, l2_weight, reach):
    """At share 0 the term weighs what a move six crossings long costs in the explainer's
    distance: six crossings' distance for L1, but 36 times a crossing's squared part for L2
    (six times its distance would be a move of sqrt(6) crossings only)."""
    from skcem._plausibility import ClassNeighborhood

    Z = np.arange(20.0)[:, None]  # classes alternate: every crossing is 1 long
    term = ClassNeighborhood(1.0, n_neighbors=1).fit(
        Z, np.arange(20) % 2, np.array([False]), np.array([l1_weight]), np.array([l2_weight]))
    # 4.1 lies nearest to row 4, of class 0: no share of class 1.
    np.testing.assert_allclose(term.penalty(np.array([[4.1]]), np.array([1]), True), [reach])
    np.testing.assert_allclose(term.penalty(np.array([[4.1]]), np.array([0]), True), [0.0])


def test_plausibility_counts_every_row_given_to_fit(monkeypatch):
    """The term's neighbours are found among all the rows given to fit, as yNN's are, not
    among the gradient-free search's pool (capped here at 200 of 800 rows): the term's
    share of each answer is then its yNN."""
    import skcem._contrastive as contrastive

    monkeypatch.setattr(contrastive, "_MAX_POOL_ROWS", 200)
    X, y, encode = _people()
    model = make_pipeline(encode, LogisticRegression()).fit(X, y)
    rows = X[model.predict(X) == 0].iloc[:30]
    explainer = CEMExplainer(model, mode="PN", immutable_features=IMMUTABLE,
                             directions=DIRECTIONS, distance="mad", plausibility=1).fit(X)
    assert len(explainer._pool.Z) == 200
    exp = _explain(explainer, rows)
    found = exp.found
    answers = np.asarray(explainer._codec.encode(exp.explanation[found]), dtype=float)
    share = explainer._class_neighborhood.share(answers, np.zeros(len(answers), int), False)
    ynn = _scored(model, X, rows, exp, "PN")["ynn"].to_numpy()[found]
    np.testing.assert_allclose(share, ynn)


def test_nearest_rows_are_those_of_a_full_sort():
    from skcem._plausibility import _nearest

    rng = np.random.default_rng(0)
    # Whole numbers: many ties, which go to the first column as in a stable sort; the
    # nearest rows lie anywhere, beyond the first columns too.
    distance = rng.integers(0, 40, size=(50, 3000)).astype(np.float32)
    distance[:, :1500] += 5
    for k in (1, 5, 12):
        np.testing.assert_array_equal(_nearest(distance, k),
                                      np.argsort(distance, axis=1, kind="stable")[:, :k])


def test_a_pair_one_noisy_row_holds_is_still_rare_where_its_categories_are_common():
    """On a table of a few thousand rows one male "wife" (noise) made the pair allowed: only
    pairs under 0.01% of the rows were rare, below one row there. A pair far below what
    the counts of its categories predict is rare; a pair of one-row identifiers is not."""
    from skcem._plausibility import CategoryPairs

    rng = np.random.default_rng(0)
    n = 3000
    sex = rng.integers(0, 2, n)  # 0 male, 1 female
    role = np.where(rng.random(n) < 0.3, 2, sex)  # 0 husband, 1 wife, 2 child
    role[0], sex[0] = 1, 0  # one male wife
    ids = np.arange(n)  # an identifier: each code held by one row
    Z = np.column_stack([sex, role, ids, ids]).astype(float)
    pairs = CategoryPairs().fit(Z, np.ones(4, bool), [2, 3, n, n])
    assert pairs.rare_[0, 1][0, 1]  # male wife: 1 row where about 700 are expected
    assert not pairs.rare_[0, 1][0, 2]  # a male child
    assert not pairs.rare_[2, 3][5, 5]  # the identifiers' pair a row holds
    # one no row holds, but which no data of this size could show (1/3000 row expected)
    assert not pairs.rare_[2, 3][5, 6]

    frame = pd.DataFrame({"sex": np.array(["m", "f"])[sex],
                          "role": np.array(["husband", "wife", "child"])[role],
                          "income": rng.normal(50, 15, n).round(1)})
    y = ((frame.role == "wife") | (frame.income > 60)).astype(int)
    model = make_pipeline(
        ColumnTransformer([("c", OneHotEncoder(), ["role"]), ("n", StandardScaler(),
                                                               ["income"])]),
        LogisticRegression(max_iter=1000)).fit(frame, y)
    rows = frame[(frame.sex == "m") & (model.predict(frame) == 0)].iloc[:10]
    assert (model.predict(rows.assign(role="wife")) == 1).all()  # the cheapest flip
    exp = CounterfactualExplainer(model, immutable_features=["sex"],
                                  distance="mad").fit(frame).explain(rows)
    assert exp.found.all()
    assert not (exp.explanation.role == "wife").any()
    table = explanation_metrics(model, rows.assign(role="wife"), rows.assign(role="wife"),
                                X_train=frame)
    assert (table.rare_pairs == 0).all()  # the instances' own pairs
    table = explanation_metrics(model, rows, rows.assign(role="wife"), X_train=frame)
    assert (table.rare_pairs == 1).all()


def test_pairs_are_judged_only_where_the_rows_can_tell():
    """Found by a user: token ids (20 values at each of 10 positions, 200 rows) as
    categories left most pairs unseen, all of them refused as rare, and the answers were
    near-copies of training rows changing 7 or 8 tokens. Two columns' pairs are judged only
    with 5 rows or more per pair of their categories; on a table that has them (Adult's
    30,162 rows), an unseen pair of two rare categories stays rare (judging each pair by its
    own expected count let 16-28% of Adult's PNs pair rare categories)."""
    from skcem._plausibility import CategoryPairs

    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 20, size=(200, 10)).astype(float)
    pairs = CategoryPairs().fit(tokens, np.ones(10, bool), [20] * 10)
    assert not any(rare.any() for rare in pairs.rare_.values())
    common = rng.integers(0, 2, size=(200, 2)).astype(float)  # 50 rows expected per pair
    common[:, 1] = np.where(common[:, 0] == 1, 1, common[:, 1])  # never (1, 0)
    assert CategoryPairs().fit(common, np.ones(2, bool), [2, 2]).rare_[0, 1][1, 0]
    # 40 countries, a few rare, by 5 levels, 5,000 rows: 25 rows a pair on average
    country = rng.choice(40, size=5000, p=np.r_[[0.002] * 10, [0.98 / 30] * 30])
    level = rng.integers(0, 5, size=5000)
    level[country == 0] = 0  # rare country 0 is seen with level 0 only
    table = np.column_stack([country, level]).astype(float)
    rare = CategoryPairs().fit(table, np.ones(2, bool), [40, 5]).rare_[0, 1]
    assert rare[0, 1:].all()  # expected 2 rows each, none seen: rare still
    # a city lies in one state: 600 rows, 20 pairs held of 200 (judging by the pairs the
    # categories could form, 5 x 200 rows, let a review's answers move cities across states)
    city = rng.integers(0, 20, size=600)
    states = np.column_stack([city // 2, city]).astype(float)
    rare = CategoryPairs().fit(states, np.ones(2, bool), [10, 20]).rare_[0, 1]
    assert rare[0, 2:].all() and not rare[0, :2].any()


def test_a_category_no_fit_row_holds_makes_no_rare_pair():
    """Found by a review: the metrics counted a pair with a category fit never met (a new
    city, kept by the answer) as rare, which the search cannot judge and does not."""
    from skcem._plausibility import CategoryPairs, rare_pair_counts

    rng = np.random.default_rng(0)
    Z = np.column_stack([rng.integers(0, 2, 400), rng.integers(0, 3, 400)]).astype(float)
    Z[Z[:, 0] == 1, 1] = np.where(Z[Z[:, 0] == 1, 1] == 2, 0, Z[Z[:, 0] == 1, 1])  # (1, 2) unseen
    pairs = CategoryPairs().fit(Z, np.array([True, True]), [3, 3])  # code 2 of column 0: none
    rare = pairs.rare_[0, 1]
    assert rare[1, 2]  # both categories common, never together: rare
    assert not rare[2].any()  # a category no row holds: nothing to judge
    answers = np.array([[2, 1], [1, 2]])
    instances = np.array([[2, 0], [1, 0]])
    assert rare_pair_counts(answers, instances, Z.astype(int)).tolist() == [0, 1]


def test_a_row_the_plausible_search_leaves_gets_the_answer_without_it(monkeypatch):
    """Found by a user on Adult: a PN found at plausibility=0 was lost at plausibility=1,
    with a warning that no admissible row exists."""
    X, y, encode = _people()
    model = make_pipeline(encode, RandomForestClassifier(30, random_state=0)).fit(X, y)
    rows = X[model.predict(X) == 0].iloc[:12]
    plain = _explain(CEMExplainer(model, mode="PN", distance="mad").fit(X), rows)
    assert plain.found.sum() >= 10
    searched = CEMExplainer._search_once

    def plausible_finds_nothing(self, backend, problem, settings, progress=None):
        result = searched(self, backend, problem, settings, progress)
        if problem.plausibility is not None:  # every second row left unanswered
            result.found = result.found.copy()
            result.found[::2] = False
        return result

    monkeypatch.setattr(CEMExplainer, "_search_once", plausible_finds_nothing)
    weighed = _explain(CEMExplainer(model, mode="PN", distance="mad", plausibility=1.0).fit(X),
                       rows)
    np.testing.assert_array_equal(weighed.found, plain.found)
    left = np.flatnonzero(plain.found)
    left = left[left % 2 == 0]  # the rows the plausible search left
    pd.testing.assert_frame_equal(weighed.explanation.iloc[left], plain.explanation.iloc[left])


def test_a_row_whose_only_answers_create_a_rare_pair_gets_one_with_a_warning(monkeypatch):
    """Found by a user: an Adult row from a country of few fit rows, with the country
    immutable, got no counterfactual (198 fit rows of the other class were valid, each
    pairing the country with a category none of its rows has), and the warning blamed the
    constraints."""
    from sklearn.compose import make_column_transformer

    from skcem import SkcemWarning

    rng = np.random.default_rng(0)
    country = np.where(np.arange(600) < 590, "A", "B")
    job = np.where(country == "B", "x", rng.choice(["x", "y", "z"], 600))
    table = pd.DataFrame({"country": country, "job": job,
                          "age": rng.integers(20, 60, 600).astype(float)})
    model = make_pipeline(make_column_transformer((OneHotEncoder(), ["country", "job"]),
                                                  remainder="passthrough"),
                          LogisticRegression()).fit(table, table.job == "z")
    explainer = CounterfactualExplainer(model, immutable_features=["country"]).fit(table)
    rows = table.iloc[[595, 0, 1]]
    with pytest.warns(SkcemWarning, match=r"^1 of 3 answers pair categories that the rows "
                                          r"given to fit \(almost\) never hold together"):
        answer = explainer.explain(rows)
    assert answer.found.all()
    assert answer.explanation.loc[595].tolist() == ["B", "z", rows.loc[595, "age"]]
    assert np.all(model.predict(answer.explanation) != model.predict(rows))
    # the other rows' answers create no rare pair, as before
    assert explanation_metrics(model, rows, answer.explanation, X_train=table)[
        "rare_pairs"].tolist() == [1, 0, 0]
    # a row with no answer the model takes is searched once, not again without the rule (a
    # review: twice the time for rows with no answer at all)
    from skcem._contrastive import BaseContrastiveExplainer

    searched = []
    search_once = BaseContrastiveExplainer._search_once

    def counted(self, backend, problem, *args, **kwargs):
        searched.append(len(problem.x0))
        return search_once(self, backend, problem, *args, **kwargs)

    monkeypatch.setattr(BaseContrastiveExplainer, "_search_once", counted)
    frozen = CounterfactualExplainer(model, immutable_features=["job"]).fit(table)
    with pytest.warns(ExplanationNotFoundWarning):
        assert not frozen.explain(rows).found.any()
    assert searched == [3]


def test_rare_pairs_are_counted_only_where_the_rows_can_tell_them():
    """Found by a user: explanation_metrics counted rare pairs of a free-text column (each
    text held by a row or two) with a category, which the search does not judge: 7 of 40
    of skcem's own answers flagged, and explain said nothing."""
    from skcem._plausibility import rare_pair_counts

    rng = np.random.default_rng(0)
    n = 400
    text = np.arange(n)  # each row's own text
    color = rng.integers(0, 2, n)
    size = np.where(color == 0, 0, rng.integers(1, 3, n))  # color 0 never with size 1 or 2
    train = np.c_[text, color, size]
    instances = np.array([[3, 1, 1], [5, 1, 2]])
    answers = np.array([[7, 0, 1],   # a new text with color 0 (its text's color was 1),
                        [9, 1, 2]])  # and the pair color 0 / size 1, which never occurs
    np.testing.assert_array_equal(rare_pair_counts(answers, instances, train), [1, 0])


def test_a_pps_category_only_the_rare_pair_rule_keeps_is_held_apart():
    """Found by a user: with sex immutable, Adult PPs of women listed relationship "Wife"
    as what the class rests on, where only the rare-pair rule kept it (the background's
    "Husband" with a woman) and the class stayed without it."""
    rng = np.random.default_rng(0)
    n = 1500
    sex = rng.choice(["M", "F"], n, p=[0.6, 0.4])
    married = rng.random(n) < 0.6
    relationship = np.where(married, np.where(sex == "M", "Husband", "Wife"),
                            rng.choice(["Unmarried", "Own-child"], n))
    hours = rng.integers(10, 70, n)
    X = pd.DataFrame({"sex": sex, "relationship": relationship, "hours": hours})
    y = (hours + rng.normal(0, 3, n) > 45).astype(int)  # the class rests on hours alone
    encode = ColumnTransformer([("c", OneHotEncoder(), ["sex", "relationship"])],
                               remainder=StandardScaler())
    model = make_pipeline(encode, LogisticRegression()).fit(X, y)
    rows = X[(model.predict(X) == 1) & (X["relationship"] == "Wife")].iloc[:10]
    exp = _explain(CEMExplainer(model, mode="PP", immutable_features=["sex"]).fit(X), rows)
    assert exp.encoded["background"]["relationship"].iloc[0] == "Husband"
    assert exp.found.all() and exp.pair_held is not None
    column = list(X.columns).index("relationship")
    held = exp.pair_held[:, column]
    # held exactly where the class stays with the background's relationship
    without = exp.explanation.assign(relationship="Husband")
    np.testing.assert_array_equal(held, model.predict(without) == exp.X_pred.astype(int))
    assert held.all()
    assert all("relationship" not in changes for changes in exp.changes())
    assert all(fixed["relationship"] == "Wife" for fixed in exp.fixed())
    assert exp[:3].pair_held.shape == (3, 3)


def test_categories_the_class_rests_on_together_are_not_held_apart():
    """Found by a review: two kept categories, each of which keeps the class alone, were
    both held apart as kept by the rare-pair rule only; the class rests on the pair
    (either suffices), which changes() must show."""
    rng = np.random.default_rng(0)
    n = 2000
    kind = rng.choice(3, n, p=[0.5, 0.3, 0.2])
    X = pd.DataFrame({"A": np.array(["a0", "a1", "a2"])[kind],
                      "B": np.array(["b0", "b1", "b2"])[kind], "x": rng.normal(size=n)})
    encode = ColumnTransformer([("c", OneHotEncoder(), ["A", "B"])], remainder="passthrough")
    model = make_pipeline(encode, LogisticRegression()).fit(X, (kind == 1).astype(int))
    names = list(model[0].get_feature_names_out())
    coef = np.zeros(len(names))  # either a1 or b1 alone gives class 1
    coef[names.index("c__A_a1")] = coef[names.index("c__B_b1")] = 3.0
    model[-1].coef_, model[-1].intercept_ = coef[None], np.array([-1.5])
    rows = X[kind == 1].iloc[:5]
    exp = _explain(CEMExplainer(model, mode="PP").fit(X), rows)
    assert exp.found.all()
    assert (model.predict(exp.explanation.assign(A="a0", B="b0")) == 0).all()
    assert exp.pair_held is None or not exp.pair_held[:, :2].all(axis=1).any()
    assert all({"A", "B"} <= set(changes) for changes in exp.changes())
