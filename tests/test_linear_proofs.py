"""Proofs that no answer exists, for models whose decision is linear (skcem/_linear_proofs.py):
the not-found warning says so instead of advising a larger c; and the closest answer of the
admissible box, which search="auto" gives the rows its searches leave."""

import itertools
import warnings

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skcem import CEMExplainer, CounterfactualExplainer
from skcem._linear_proofs import (admissible_box, affine_decision, closest_of_class,
                                  reaches_class)


def _classes_on_grid(W, b, box, steps=41):
    """The classes of a dense grid of the box's admissible points (the gap left out)."""
    lower, upper, gap_lower, gap_upper = box
    axes = [np.linspace(lo, hi, steps) for lo, hi in zip(lower, upper)]
    points = np.array(list(itertools.product(*axes)))
    inside_gap = (points > gap_lower) & (points < gap_upper)
    points = points[~inside_gap.any(axis=1)]
    scores = points @ W.T + b
    return set((scores[:, 0] > 0).astype(int)) if len(W) == 1 else set(scores.argmax(axis=1))


@pytest.mark.parametrize("n_classes", [2, 3])
def test_a_class_is_unreachable_only_where_no_admissible_point_has_it(n_classes):
    rng = np.random.default_rng(0)
    lower, upper = np.zeros(3), np.ones(3)
    proofs = reached = 0
    for trial in range(60):
        W = rng.normal(size=(1 if n_classes == 2 else n_classes, 3))
        b = rng.normal(size=len(W))
        x = rng.uniform(0, 1, 3)
        box = admissible_box(x, lower, upper, rng.random(3) < 0.2,
                             rng.choice([-1, 0, 1], 3), no_info_val=rng.uniform(0, 1, 3)
                             if trial % 2 else None)
        on_grid = _classes_on_grid(W, b, box)
        for k in range(n_classes):
            if reaches_class(W, b, box, k):
                reached += 1
            else:  # a proof: no point of the box has the class
                proofs += 1
                assert k not in on_grid, (trial, k)
    assert proofs >= 10 and reached >= 10  # both kinds of answer were put to the test


def test_a_class_that_only_the_gap_holds_is_unreachable():
    """The gap's "above" side was left open (a sign), so a class whose points all lie
    inside a PN's gap was called reachable."""
    x, v = np.array([0.4]), np.array([0.5])
    box = admissible_box(x, np.zeros(1), np.ones(1), np.zeros(1, bool), np.zeros(1),
                         no_info_val=v)
    # class 0 below 0.45, class 1 between 0.45 and 0.55 (inside the gap 0.4-0.6), 2 above
    W, b = np.array([[-20.0], [0.0], [20.0]]), np.array([9.0, 0.0, -11.0])
    assert reaches_class(W, b, box, 0) and reaches_class(W, b, box, 2)
    assert not reaches_class(W, b, box, 1)


@pytest.mark.parametrize("squares", [False, True])
def test_the_closest_answer_of_the_box_is_the_grids_best_or_better(squares):
    rng = np.random.default_rng(1)
    lower, upper = np.zeros(3), np.ones(3)
    steps = 31
    compared = 0
    for trial in range(40):
        W = rng.normal(size=(3, 3)) * 3
        b = rng.normal(size=3)
        x = rng.uniform(0, 1, 3)
        box = admissible_box(x, lower, upper, rng.random(3) < 0.2, rng.choice([-1, 0, 1], 3),
                             no_info_val=rng.uniform(0, 1, 3) if trial % 2 else None)
        l1, l2 = rng.uniform(0.5, 2, 3), rng.uniform(0.5, 2, 3) if squares else np.zeros(3)
        axes = [np.linspace(lo, hi, steps) for lo, hi in zip(*box[:2])]
        points = np.array(list(itertools.product(*axes)))
        points = points[~((points > box[2]) & (points < box[3])).any(axis=1)]
        cost = (l1 * np.abs(points - x) + l2 * (points - x) ** 2).sum(axis=1)
        for k in range(3):
            row = closest_of_class(W, b, x, box, k, l1, l2, margin=1e-6)
            scores = points @ W.T + b
            on_grid = points[scores.argmax(axis=1) == k]
            if row is None:  # none: then no point of the grid has the class either
                assert not len(on_grid), (trial, k)
                continue
            assert (row @ W.T + b).argmax() == k
            assert np.all((row >= box[0]) & (row <= box[1]))
            assert not np.any((row > box[2]) & (row < box[3]))
            if len(on_grid):
                compared += 1
                found = (l1 * np.abs(row - x) + l2 * (row - x) ** 2).sum()
                # the squares by tangents: within an eighth of each square's size between them
                best = cost[scores.argmax(axis=1) == k].min()
                assert found <= best * (1.13 if squares else 1.0) + 1e-9, (trial, k)
    assert compared >= 40


def test_a_pns_box_keeps_both_sides_of_the_no_information_value():
    x, v = np.array([0.2, 0.5]), np.array([0.4, 0.5])
    lower, upper, gap_lower, gap_upper = admissible_box(
        x, np.zeros(2), np.ones(2), np.zeros(2, bool), np.zeros(2), no_info_val=v)
    # 0.2 is 0.2 below 0.4: 0 to 0.2, or 0.6 and above; at the value itself, anywhere
    np.testing.assert_allclose([lower[0], gap_lower[0], gap_upper[0], upper[0]],
                               [0.0, 0.2, 0.6, 1.0])
    assert lower[1] == 0.0 and upper[1] == 1.0 and not gap_lower[1] < gap_upper[1]


def test_only_an_affine_decision_is_read_as_one():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    y = (X[:, 0] - X[:, 1] > 0).astype(int)
    linear = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    W, b = affine_decision(linear.decision_function, 4, np.zeros(4), np.ones(4))
    np.testing.assert_allclose(X @ W.T[:, 0] + b, linear.decision_function(X), rtol=1e-9,
                               atol=1e-9)
    mlp = MLPClassifier((8,), max_iter=300, random_state=0).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert affine_decision(lambda Z: mlp.predict_proba(Z)[:, 1], 4, np.zeros(4),
                               np.ones(4)) is None


def test_the_warning_says_no_answer_exists_where_a_linear_program_proves_it():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3)) * [1, 10, 100]
    y = (X[:, 0] + X[:, 1] / 10 - X[:, 2] / 100 > 0).astype(int)
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    rows = X[y == 0][:4]
    # feature 0 held, the others allowed only the way that keeps class 0: no answer exists
    held = CounterfactualExplainer(model, immutable_features=[0], search="fista",
                                   directions={1: "decrease", 2: "increase"}).fit(X)
    with pytest.warns(UserWarning, match=r"For 4 of them none exists: the model's decision is "
                                         r"linear") as caught:
        exp = held.explain(rows)
    assert not exp.found.any()
    assert not any("c_init" in str(w.message) for w in caught)
    # the other ways open: answers (the proof was no formality)
    free = CounterfactualExplainer(model, immutable_features=[0]).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert free.explain(rows).found.all()


def test_proofs_follow_the_labels_and_only_models_that_predict_their_largest_score():
    """Found by a review: the proof compared labels with class positions (so it never held
    for labels other than 0..k-1), and a wrapper whose predict follows other numbers than
    the scores (a threshold near 0.5, bagging's mean probability) got a false proof."""
    from sklearn.ensemble import BaggingClassifier
    from sklearn.model_selection import FixedThresholdClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3)) * [1, 10, 100]
    y = (X[:, 0] + X[:, 1] / 10 - X[:, 2] / 100 > 0).astype(int)
    named = np.array(["no", "yes"])[y]
    rows = X[y == 0][:4]
    options = dict(immutable_features=[0], search="fista",
                   directions={1: "decrease", 2: "increase"})
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, named)
    with pytest.warns(UserWarning, match=r"For 4 of them none exists"):
        CounterfactualExplainer(model, **options).fit(X).explain(rows)
    for wrapped in (FixedThresholdClassifier(LogisticRegression(), threshold=0.499),
                    BaggingClassifier(LogisticRegression(), n_estimators=3, random_state=0)):
        wrapped.fit(X, named)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            CounterfactualExplainer(wrapped, **options).fit(X).explain(rows)
        proven = any("none exists" in str(w.message) for w in caught)
        if isinstance(wrapped, BaggingClassifier):
            assert not proven
        else:
            # the threshold read (on the decision's logistic function): a true proof, as
            # every move the constraints admit lowers the decision, the instance itself
            # the best point
            coef = wrapped.estimator_.coef_[0]
            assert coef[1] > 0 and coef[2] < 0
            assert proven and np.all(wrapped.predict(rows) == "no")


def test_a_linear_svm_scored_by_skcem_gets_its_proofs():
    """Found by a review: a LinearSVC (no probabilities: skcem scores it by the softmax of its
    decision function, in a wrapper) lost its proofs."""
    from sklearn.datasets import load_iris
    from sklearn.svm import LinearSVC

    from skcem import CEMExplainer

    X, y = load_iris(return_X_y=True)
    model = LinearSVC(max_iter=10000, random_state=0).fit(X, y)
    cem = CEMExplainer(model, mode="PN", immutable_features=[2, 3]).fit(X)
    with pytest.warns(UserWarning, match=r"For \d+ of them none exists") as caught:
        exp = cem.explain(X[:50])
    message = next(str(w.message) for w in caught if "none exists" in str(w.message))
    proved = int(message.split("For ")[1].split(" of them")[0])
    assert proved >= 20 and proved <= (~exp.found).sum()


def test_a_pns_box_at_the_ends_of_its_range():
    """Found by a review: an instance at its range's end lost its gap (its own side was
    taken for empty), so the program moved it towards the no-information value; and a
    side that holds only the mirror of the instance's value holds no PN move."""
    held, still = np.zeros(1, bool), np.zeros(1)
    box = admissible_box(np.array([0.0]), np.zeros(1), np.full(1, 20.0), held, still,
                         no_info_val=np.array([5.0]))
    np.testing.assert_allclose(np.concatenate(box), [0.0, 20.0, 0.0, 10.0])
    box = admissible_box(np.array([4.0]), np.full(1, 2.0), np.full(1, 4.4), held, still,
                         no_info_val=np.array([3.0]))  # the mirror, 2, is the range's end
    np.testing.assert_allclose(np.concatenate(box[:2]), [4.0, 4.4])
    assert not box[2] < box[3]


def test_the_closest_answer_keeps_whole_numbers_and_unchanged_features_exactly():
    rng = np.random.default_rng(3)
    W, b = rng.normal(size=(3, 6)), rng.normal(size=3)
    x = rng.uniform(0, 10, 6).round()
    lower, upper = np.zeros(6), np.full(6, 10.0)
    box = admissible_box(x, lower, upper, np.zeros(6, bool), np.zeros(6))
    whole = np.array([True, True, True, False, False, False])
    for k in set(range(3)) - {int(np.argmax(W @ x + b))}:
        row = closest_of_class(W, b, x, box, k, np.ones(6), np.ones(6), 1e-6, whole)
        assert np.all(row[whole] == np.round(row[whole]))
        assert np.argmax(W @ row + b) == k
        moved = row != x
        assert moved.any() and np.all(np.abs(row - x)[moved] > 1e-6)  # no noise moves


def test_a_pn_need_beat_only_the_class_it_explains_by_its_margin():
    # scores along one feature: class 0 (-4x + 4) at x = 0, class 2 (0) past x = 1, class 1
    # (x / 2 - 1) past x = 2; class 2 beats class 0 by 1 from x = 1.25 on, but never class
    # 1 by 1 as well
    W, b = np.array([[-4.0], [0.5], [0.0]]), np.array([4.0, -1.0, 0.0])
    x = np.array([0.0])
    box = admissible_box(x, np.array([-5.0]), np.array([5.0]), np.zeros(1, bool), np.zeros(1))
    assert closest_of_class(W, b, x, box, 2, np.ones(1), np.zeros(1), 1.0) is None
    only_zero = closest_of_class(W, b, x, box, 2, np.ones(1), np.zeros(1), 1.0, beaten=[0],
                                 least_margin=1e-9)
    np.testing.assert_allclose(only_zero, [1.25])
    assert np.argmax(W @ only_zero + b) == 2


@pytest.mark.parametrize("kappa, one_vs_rest", [(0.0, False), (0.2, False), (0.0, True)])
def test_auto_finds_pns_that_must_cross_the_no_information_value_on_several_features(
        kappa, one_vs_rest):
    """Breast cancer, distance="mad": five PNs of a logistic regression need moves across
    the no-information value on several features at once; no gradient step or training row
    reaches them, and the warning advised a larger c_init (which found none either)."""
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    from sklearn.multiclass import OneVsRestClassifier

    linear = LogisticRegression(max_iter=2000)
    # a one-vs-rest classifier of a linear model is one too (found by a new user)
    model = make_pipeline(StandardScaler(),
                          OneVsRestClassifier(linear) if one_vs_rest else linear)
    model.fit(X[:500], y[:500])
    rows = X[500:][[3, 21, 63, 64, 67]]
    explainer = CEMExplainer(model, mode="PN", distance="mad", kappa=kappa)
    explainer.fit(X[:500], y[:500])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exp = explainer.explain(rows)
    assert exp.found.all()
    pn, v = exp.explanation, np.broadcast_to(explainer.no_info_val_, rows.shape)
    explained = model.predict(rows)
    assert np.all(model.predict(pn) != explained)
    proba = model.predict_proba(pn)
    at = np.arange(len(rows))
    # the margin kappa held (the program's scores' margin grows until it does)
    assert np.all(proba[at, 1 - explained] - proba[at, explained] >= kappa - 1e-9)
    changed = pn != rows
    assert np.all(np.abs(pn - v)[changed] > np.abs(rows - v)[changed])  # moves away only
    crossed = changed & (np.sign(pn - v) != np.sign(rows - v))
    assert crossed.sum(axis=1).min() >= 2
    lower, upper = explainer.feature_range_
    assert np.all((pn >= lower) & (pn <= upper) | ~changed)


@pytest.mark.parametrize("response", ["predict_proba", "decision_function"])
@pytest.mark.parametrize("pos_label", [1, 0])
def test_a_threshold_on_a_linear_decision_is_linear_too(response, pos_label):
    """Found by a user: a FixedThresholdClassifier around a logistic regression got "try a
    larger c_init" for PNs that do not exist, where the bare model's were proven absent: a
    threshold on its decision, or on the decision's logistic function, is linear too."""
    from sklearn.model_selection import FixedThresholdClassifier

    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (400, 2))
    y = (X.sum(axis=1) + rng.normal(0, 0.3, 400) > 0).astype(int)
    inner = LogisticRegression(C=100).fit(X, y)
    threshold = 0.99 if response == "predict_proba" else 4.0
    model = FixedThresholdClassifier(inner, threshold=threshold, pos_label=pos_label,
                                     response_method=response).fit(X, y)
    # the second feature held: the rows whose own value cannot reach the other class
    explainer = CounterfactualExplainer(model, immutable_features=[1],
                                        feature_range=(-1, 1)).fit(X)
    rows = X[model.predict(X) != pos_label][:40]
    with pytest.warns(UserWarning, match=r"For \d+ of them none exists: the model's decision "
                                         r"is linear"):
        explained = explainer.explain(rows)
    assert explained.found.any()
    found = explained.found
    assert np.all(model.predict(explained.explanation[found]) == pos_label)
    # every row left is proven: the best admissible value of the first feature fails
    best = rows[~found].copy()
    best[:, 0] = 1.0 if (inner.coef_[0, 0] > 0) == (pos_label == 1) else -1.0
    assert np.all(model.predict(best) != pos_label)


@pytest.mark.parametrize("loss", ["hinge", "perceptron"])
def test_answers_of_a_linear_model_are_the_linear_programs_closest(loss):
    """Found by a user: counterfactuals of a hinge-loss linear model (flat probabilities
    the search moves badly on) were a median 1.22 and up to 1.98 times the closest; the
    linear program, which answered only rows the searches left, now answers each row where
    it is closer."""
    from scipy.optimize import linprog
    from sklearn.datasets import make_classification
    from sklearn.linear_model import SGDClassifier

    X, y = make_classification(300, 6, n_informative=4, n_redundant=0, n_classes=3,
                               n_clusters_per_class=1, random_state=0)
    model = make_pipeline(StandardScaler(), SGDClassifier(loss=loss, random_state=0)).fit(X, y)
    scaler, linear = model
    W = linear.coef_ / scaler.scale_
    b = linear.intercept_ - W @ scaler.mean_
    explainer = CounterfactualExplainer(model, distance="l1").fit(X)
    rows = X[:12]
    exp = explainer.explain(rows)
    assert exp.found.all()
    lower, upper = explainer.feature_range_
    for x, distance, k in zip(rows, exp.distance, model.predict(rows)):
        best = np.inf
        for target in set(range(3)) - {k}:  # moves up (u) and down (v): x + u - v
            gaps = [W[target] - W[j] for j in range(3) if j != target]
            A = [-np.r_[g, -g] for g in gaps]
            slack = [g @ x + b[target] - b[j] for g, j in zip(gaps, set(range(3)) - {target})]
            bounds = [(0, upper[i] - x[i]) for i in range(6)] + \
                [(0, x[i] - lower[i]) for i in range(6)]
            solved = linprog(np.ones(12), A_ub=A, b_ub=slack, bounds=bounds)
            if solved.success:
                best = min(best, solved.fun)
        assert best <= distance <= best * 1.001 + 1e-6
    # several answers asked: the closest, rank 0, is the program's too, and the others
    # distinct valid answers after it
    several = CounterfactualExplainer(model, distance="l1", n_counterfactuals=3).fit(X)
    ranked = several.explain(rows)
    np.testing.assert_allclose(ranked.distance, exp.distance, rtol=1e-9)
    distances = ranked.counterfactual_distance
    assert np.all(np.diff(np.where(np.isnan(distances), np.inf, distances), axis=1) >= 0)


def test_a_linear_programs_answer_competes_in_the_datas_decimals():
    """Found by a review: the program's answer won against the search's before it was
    rounded to the data's decimals, then rounded farther. Each answer is now at most the
    search's own; PNs (an elastic net's squares) are left to the search."""
    pd = pytest.importorskip("pandas")
    from sklearn.datasets import make_classification
    from sklearn.linear_model import SGDClassifier

    X, y = make_classification(300, 5, n_informative=4, n_redundant=0, random_state=1)
    X = pd.DataFrame(np.column_stack([np.round(X[:, :3], 1), np.round(X[:, 3:] * 10)]),
                     columns=list("abcde")).astype({"d": int, "e": int})
    model = make_pipeline(StandardScaler(), SGDClassifier(loss="hinge", random_state=0))
    model.fit(X, y)
    rows = X.iloc[:30]
    for make in (lambda: CounterfactualExplainer(model, distance="l1"),
                 lambda: CEMExplainer(model, mode="PN", kappa=0.1)):
        explainer = make().fit(X)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exp = explainer.explain(rows)
            explainer._complete_linearly = lambda backend, problem, result: result
            searched = explainer.explain(rows)
        assert exp.found.all() and searched.found.all()
        assert np.all(exp.distance <= searched.distance * (1 + 1e-12))
        np.testing.assert_array_equal(exp.explanation[["d", "e"]] % 1, 0)
        np.testing.assert_allclose(exp.explanation[list("abc")] * 10,
                                   np.round(exp.explanation[list("abc")] * 10), atol=1e-9)
        if isinstance(explainer, CEMExplainer):  # squares: the search's answers, as were
            np.testing.assert_array_equal(exp.distance, searched.distance)
