import warnings

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.utils.estimator_checks import parametrize_with_checks

from skcem import CounterfactualExplainer, ExplanationNotFoundWarning


def _explain(cf, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        return cf.explain(X)


@pytest.mark.parametrize("distance", ["l1", "l2", "mad"])
def test_counterfactuals_reach_another_class_on_iris(iris, iris_model, distance):
    X, _ = iris
    cf = CounterfactualExplainer(iris_model, distance=distance, C=0.05,
                                 max_iterations=500).fit(X)
    exp = _explain(cf, X[::10])
    assert exp.found.mean() >= 0.9
    reached = iris_model.predict(exp.explanation[exp.found])
    assert np.all(reached != iris_model.predict(X[::10][exp.found]))
    np.testing.assert_array_equal(exp.explanation_pred[exp.found].astype(int), reached)


def test_target_class_as_label_and_per_instance(iris, iris_model):
    X, _ = iris
    rows = X[[0, 1, 60]]
    cf = CounterfactualExplainer(iris_model, target_class=2, C=0.05, max_iterations=800).fit(X)
    exp = _explain(cf, rows)
    assert exp.found.all()
    np.testing.assert_array_equal(iris_model.predict(exp.explanation), [2, 2, 2])
    per_instance = CounterfactualExplainer(iris_model, target_class=[1, 2, 0], C=0.05,
                                           max_iterations=800).fit(X)
    exp = _explain(per_instance, rows)
    np.testing.assert_array_equal(iris_model.predict(exp.explanation[exp.found]),
                                  np.array([1, 2, 0])[exp.found])
    assert exp.found.sum() >= 2
    # explain's y is not the target (CEMExplainer's is): said, not silently ignored
    with pytest.warns(UserWarning, match=r"explain ignores y: .* set by `target_class`"):
        cf.explain(rows[:1], np.array([0]))


def test_counterfactuals_on_digits_with_an_mlp(digits, digits_model, digits_test):
    X, _ = digits
    cf = CounterfactualExplainer(digits_model, target_class=3, C=0.01, max_iterations=300,
                                 feature_range=(0.0, 1.0)).fit(X[:1200])
    exp = _explain(cf, digits_test)
    assert exp.found.mean() >= 0.8
    assert np.all(digits_model.predict(exp.explanation[exp.found]) == 3)
    assert np.all((exp.explanation[exp.found] >= 0) & (exp.explanation[exp.found] <= 1))


def test_larger_C_gives_closer_counterfactuals(iris, iris_model):
    X, _ = iris
    sizes = {}
    for C in (0.01, 0.3):  # the gradient search's weight: its answers alone
        exp = _explain(CounterfactualExplainer(iris_model, C=C, max_iterations=800,
                                               search="fista").fit(X), X[::10])
        sizes[C] = np.nanmedian(np.abs(exp.delta).sum(axis=1))
    assert sizes[0.3] < sizes[0.01]


def test_immutable_features_never_move(iris, iris_model):
    X, _ = iris
    cf = CounterfactualExplainer(iris_model, immutable_features=[0, 3], C=0.05,
                                 max_iterations=500).fit(X)
    exp = _explain(cf, X[::10])
    assert exp.found.any()
    assert np.array_equal(exp.explanation[exp.found][:, [0, 3]], exp.X[exp.found][:, [0, 3]])


@pytest.mark.parametrize("params, match", [
    ({"distance": "l3"}, "'distance' parameter"),
    ({"C": -1.0}, "'C' parameter"),
    ({"target_class": 7}, "`target_class` holds labels the model does not know"),
    # DiCE's desired_class="opposite" (found by a user porting it)
    ({"target_class": "opposite"}, "give target_class='other' \\(DiCE's 'opposite'\\)"),
    # a valid label beside an unknown one was shown as a string, '2'
    ({"target_class": [2, "x"]}, r"does not know: \['x'\]; classes are \[0, 1, 2\]"),
    ({"target_class": ["other", 2]}, "'other' .* applies to all rows, as target_class='other'"),
    # a dict passed the parameter check and failed on hashing
    ({"target_class": {1: 2}}, "`target_class` must be 'other', a class or one class per row"),
])
def test_bad_parameters(iris, iris_model, params, match):
    X, _ = iris
    with pytest.raises(ValueError, match=match):
        CounterfactualExplainer(iris_model, **params).fit(X).explain(X[:2])


def test_per_instance_targets_must_match_X(iris, iris_model):
    X, _ = iris
    cf = CounterfactualExplainer(iris_model, target_class=[1, 2]).fit(X)
    with pytest.raises(ValueError, match=r"`target_class` must have shape \(3,\)"):
        cf.explain(X[:3])


@parametrize_with_checks([CounterfactualExplainer(max_iterations=30),
                          CounterfactualExplainer(distance="mad", max_iterations=30)])
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        check(estimator)


@pytest.mark.parametrize("kind", [bool, float])
def test_target_class_takes_the_models_own_bool_and_float_labels(iris, kind):
    X, y = iris
    labels = (y == 2).astype(kind)
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(max_iter=1000).fit(X, labels)
    rows = X[:6]  # of the first class
    exp = _explain(CounterfactualExplainer(model, target_class=model.classes_[1], C=0.05,
                                           max_iterations=300).fit(X), rows)
    assert exp.found.sum() >= 4
    np.testing.assert_array_equal(model.predict(exp.explanation[exp.found]),
                                  model.classes_[1])
    with pytest.raises(ValueError, match="target_class"):
        CounterfactualExplainer(model, target_class=3.5).fit(X).explain(rows)


def test_a_class_labelled_other_is_reached_by_labels_per_instance():
    """The scalar "other" means any other class, with a warning when a class has that
    label; one label per instance targets the class."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    labels = np.array(["other", "versicolor", "virginica"])[y]
    model = LogisticRegression(max_iter=1000).fit(X, labels)
    with pytest.warns(UserWarning, match="class labelled 'other'"):
        CounterfactualExplainer(model).fit(X)
    rows = X[[60, 110]]
    exp = CounterfactualExplainer(model, target_class=["other", "other"]).fit(X).explain(rows)
    assert exp.found.all()
    assert (model.predict(exp.explanation) == "other").all()


def test_a_single_far_move_is_found_where_no_training_row_stays_valid():
    # Class 1 needs a large gain, and hours within 5 of the (immutable) age: every training
    # row of class 1 is older, so made admissible (its age set back to the instance's) none
    # stays valid, while moving the gain alone does. The gradient-free search found nothing.
    rng = np.random.default_rng(0)
    age = rng.uniform(40, 60, 400)
    X = np.column_stack([age, age + rng.uniform(-3, 3, 400),
                         np.where(rng.random(400) < 0.5, 0.0, 20000.0)])

    def predict_proba(Z):
        yes = (Z[:, 2] > 10000) & (np.abs(Z[:, 1] - Z[:, 0]) < 5)
        return np.column_stack([np.where(yes, 0.1, 0.9), np.where(yes, 0.9, 0.1)])

    instances = np.array([[20.0, 20.0, 0.0], [25.0, 22.0, 0.0]])
    cf = CounterfactualExplainer(predict_proba, search="neighbors", immutable_features=[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the instances' ages are outside the range
        exp = cf.fit(X, np.argmax(predict_proba(X), axis=1)).explain(instances)
    assert exp.found.all()
    np.testing.assert_array_equal(predict_proba(exp.explanation).argmax(axis=1), [1, 1])
    # the gain alone moved, bisected towards the least the model takes
    np.testing.assert_array_equal(exp.explanation[:, :2], instances[:, :2])
    assert np.all((exp.explanation[:, 2] > 10000) & (exp.explanation[:, 2] < 10500))


def test_one_counterfactual_tries_single_moves_too():
    """Found by a user: on a one-hot table behind a logistic regression, the one answer was
    a category change at MAD distance 1.0 (every start, a training row, changes many
    features), where moving one number alone, which n_counterfactuals=4 offered, cost 0.52."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(0)
    n = 600
    cats, nums = [f"c{i}" for i in range(20)], [f"n{i}" for i in range(20)]
    X = pd.DataFrame({c: rng.choice([f"{c}_{k}" for k in range(3 + i % 8)], n)
                      for i, c in enumerate(cats)})
    for c in nums:
        X[c] = rng.normal(size=n).round(3)
    score = X["n0"] + X["n1"] - X["n2"] + (X["c0"] == "c0_0") * 1.5 \
        + (X["c3"] == "c3_1") * 1.0 - X["c5"].isin(["c5_0", "c5_2"]) * 1.0
    y = (score + rng.normal(scale=0.5, size=n) > 0.3).astype(int)
    encode = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), cats),
                                ("num", StandardScaler(), nums)])
    model = make_pipeline(encode, LogisticRegression(max_iter=2000)).fit(X[:500], y[:500])
    params = dict(distance="mad", immutable_features=["c1", "n3"])
    rows = X[500:505]
    one = CounterfactualExplainer(model, **params).fit(X[:500]).explain(rows)
    four = CounterfactualExplainer(model, n_counterfactuals=4, **params).fit(
        X[:500]).explain(rows)
    assert one.found.all()
    assert np.all(model.predict(one.explanation) != model.predict(rows))
    best_of_four = np.nanmin(four.counterfactual_distance, axis=1)
    assert np.all(one.distance <= 1.1 * best_of_four), (one.distance, best_of_four)


def test_per_row_labels_in_a_series_follow_the_rows_of_a_dataframe(iris, iris_model):
    pd = pytest.importorskip("pandas")
    X, _ = iris
    frame = pd.DataFrame(X, columns=[f"f{j}" for j in range(4)])
    rows = frame.iloc[[100, 0, 50]]  # predicted 2, 0, 1
    wanted = {0: 2, 50: 0, 100: 1}  # by row label; by position every row's own class
    for target in (pd.Series(wanted), pd.Series(wanted).reindex(range(150), fill_value=0)):
        cf = CounterfactualExplainer(iris_model, target_class=target, C=0.05,
                                     max_iterations=500).fit(frame)
        exp = _explain(cf, rows)
        np.testing.assert_array_equal(exp.explanation_pred.astype(int), [1, 2, 0])
    # the default index is positional, as scikit-learn reads y
    positional = CounterfactualExplainer(iris_model, target_class=pd.Series([1, 2, 0]),
                                         C=0.05, max_iterations=500).fit(frame)
    np.testing.assert_array_equal(_explain(positional, rows).explanation_pred.astype(int),
                                  [1, 2, 0])
    stray = CounterfactualExplainer(iris_model, target_class=pd.Series([1, 2, 0], index=[7, 8, 9]),
                                    C=0.05).fit(frame)
    with pytest.raises(ValueError, match=r"`target_class` is a Series whose index lacks rows"):
        stray.explain(rows)


def test_a_weight_the_chosen_search_does_not_read_is_named(iris):
    """Found by a user porting DiCE's proximity_weight: C=0.01, 1 and 100 gave the same
    answers on a forest (the gradient-free search) without a word."""
    from sklearn.ensemble import RandomForestClassifier

    from skcem import SkcemWarning

    X, y = iris
    forest = RandomForestClassifier(10, random_state=0).fit(X, y)
    with pytest.warns(SkcemWarning, match=r"C=100 weighs the distance .* in the gradient "
                                          r"search only; search_='neighbors'"):
        CounterfactualExplainer(forest, C=100).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SkcemWarning)
        CounterfactualExplainer(forest).fit(X)  # the default: no word


def test_gradient_schedule_settings_the_chosen_search_does_not_read_are_named(iris,
                                                                             iris_model):
    """Found by a review: GridSearchCV over c_init or max_iterations on a forest or an SVC
    (the gradient-free search) tuned nothing without a word."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.svm import SVC

    from skcem import CEMExplainer, SkcemWarning

    X, y = iris
    forest = RandomForestClassifier(10, random_state=0).fit(X, y)
    with pytest.warns(SkcemWarning, match=r"^c_init=3.0, max_iterations=300 set the gradient "
                                          r"search's schedule; search_='neighbors' .* does "
                                          r"not read them: a model of trees"):
        CEMExplainer(forest, c_init=3.0, max_iterations=300).fit(X)
    # soft votes and stacks of trees are trees too: no gradient to finish with (a review)
    from sklearn.ensemble import ExtraTreesClassifier, StackingClassifier, VotingClassifier

    vote = VotingClassifier([("forest", forest), ("extra", ExtraTreesClassifier(
        10, random_state=0))], voting="soft").fit(X, y)
    stack = StackingClassifier([("forest", forest)], final_estimator=LogisticRegression())
    for ensemble in (vote, stack.fit(X, y)):
        with pytest.warns(SkcemWarning, match=r"^c_steps=3 sets .* does not read it: a model "
                                              r"of trees"):
            CounterfactualExplainer(ensemble, c_steps=3).fit(X)
    svc = SVC(random_state=0).fit(X, y)
    with pytest.warns(SkcemWarning, match=r"^clip=\(-5, 5\) sets .* reads it only for the "
                                          r"rows it leaves unanswered"):
        CounterfactualExplainer(svc, clip=(-5, 5)).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SkcemWarning)
        CEMExplainer(forest, clip=[-100, 100.0], eps=[1e-3, np.float64(1e-3)]).fit(X)  # defaults
        CounterfactualExplainer(svc, search="fista", max_iterations=300).fit(X)  # it reads them
        CounterfactualExplainer(iris_model, max_iterations=300).fit(X)  # an exact gradient
        # eps's steps probe the gradient to choose the search (a review)
        CounterfactualExplainer(svc, gradient="numerical", eps=(1e-3, 1e-4)).fit(X)
    # a table whose categories may change: search='fista' would refuse it (a review)
    import pandas as pd
    from sklearn.compose import make_column_transformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    table = pd.DataFrame({"x": X[:, 0], "kind": np.where(X[:, 1] > 3, "wide", "narrow")})
    model = make_pipeline(make_column_transformer((OneHotEncoder(), ["kind"]),
                                                  remainder="passthrough"),
                          LogisticRegression()).fit(table, y)
    with pytest.warns(SkcemWarning, match=r"^max_iterations=300 sets .* does not read it: the "
                                          r"gradient search cannot change categorical"):
        CounterfactualExplainer(model, max_iterations=300).fit(table)


def test_a_target_class_the_model_never_predicts_is_named_in_the_warning():
    """Found by a user: the warning advised a smaller C and more iterations for a class the
    model gives no row."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 3))
    y = np.where(X[:, 0] > 0, 1, 0)
    y[:5] = 2  # too few to be predicted
    model = LogisticRegression(max_iter=1000).fit(X, y)
    assert 2 not in model.predict(X)
    with pytest.warns(ExplanationNotFoundWarning, match="The model puts none of 500 rows given "
                                                        "to fit in class 2: it may never "
                                                        "predict it"):
        CounterfactualExplainer(model, target_class=2).fit(X).explain(X[5:9])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        CounterfactualExplainer(model, target_class=1).fit(X).explain(X[5:9])
    assert not any("puts none" in str(w.message) for w in caught)


def test_float_columns_of_only_0_and_1_are_pointed_out():
    """Found by a user: an indicator held as floats came back at 0.087, 0.47..."""
    rng = np.random.default_rng(1)
    numbers = rng.normal(size=(300, 3))
    flag = (rng.random(300) > 0.5).astype(float)
    X = np.column_stack([numbers, flag])
    y = (numbers[:, 0] + numbers[:, 1] + 1.5 * flag - 0.75 > 0).astype(int)
    model = LogisticRegression().fit(X, y)
    with pytest.warns(UserWarning, match="X's float column 3 holds only 0 and 1: the answers "
                                         "may set it between"):
        CounterfactualExplainer(model).fit(X)
    # named categorical, its answers take 0 or 1 only, and no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        explainer = CounterfactualExplainer(model, categorical_features=[3]).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exp = explainer.explain(X[:30])
    assert exp.found.mean() > 0.9
    assert set(np.asarray(exp.explanation, float)[exp.found, 3]) <= {0.0, 1.0}
    # one range for every feature (the pixels of binarised images): no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        CounterfactualExplainer(model, feature_range=(-5.0, 5.0)).fit(X)


def test_feature_weights_price_each_features_change():
    """DiCE's feature_weights (found missing by a trial of a DiCE user): a feature's change
    costs its weight times the distance. The exact search's weighted optimum is the
    brute-force one over the trees' split points; a heavy feature is avoided."""
    import itertools

    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.default_rng(0)
    X = rng.uniform(0, 10, size=(300, 3))
    y = ((X[:, 0] + X[:, 1] > 10) ^ (X[:, 2] > 7)).astype(int)
    tree = DecisionTreeClassifier(max_depth=4, random_state=0).fit(X, y)
    weights = np.array([5.0, 1.0, 0.5])
    explainer = CounterfactualExplainer(tree, search="exact", feature_weights=weights).fit(X)
    np.testing.assert_array_equal(explainer.feature_weights_, weights)
    rows = X[:8]
    exp = explainer.explain(rows)
    lower, upper = explainer.feature_range_
    inner = tree.tree_.feature >= 0
    step = 1e-4
    for i, x0 in enumerate(rows):
        candidates = []
        for j in range(3):
            cuts = tree.tree_.threshold[inner & (tree.tree_.feature == j)]
            candidates.append(np.unique(np.r_[x0[j], lower[j], upper[j], cuts - step,
                                              cuts + step].clip(lower[j], upper[j])))
        grid = np.array(list(itertools.product(*candidates)))
        valid = tree.predict(grid) != tree.predict(x0[None])[0]
        best = np.min(np.abs(grid[valid] - x0) @ weights)
        assert exp.found[i]
        assert best - 3 * step * weights.max() <= exp.distance[i] <= best + 1e-9
        np.testing.assert_allclose(exp.distance[i], np.abs(exp.explanation[i] - x0) @ weights)
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    by_name = CounterfactualExplainer(tree, search="exact",
                                      feature_weights={"a": 5.0, "c": 0.5}).fit(frame)
    np.testing.assert_array_equal(by_name.feature_weights_, weights)
    np.testing.assert_allclose(by_name.explain(frame.iloc[:8]).distance, exp.distance)
    # a heavy feature is left alone where another one serves (the gradient-free search)
    free = CounterfactualExplainer(tree).fit(X).explain(X[:30])
    heavy = CounterfactualExplainer(tree, feature_weights=[1.0, 1.0, 1000.0]).fit(X)
    moved = heavy.explain(X[:30])
    changed = np.abs(moved.explanation - X[:30]) > 1e-9
    assert changed[moved.found, 2].sum() < (np.abs(free.explanation - X[:30]) > 1e-9)[
        free.found, 2].sum()
    for bad, message in (([1.0, -1.0, 1.0], "must be positive numbers"),
                         ([1.0, 2.0], r"one value per feature \(3\)"),
                         ({"d": 2.0}, "feature_weights")):
        with pytest.raises(ValueError, match=message):
            CounterfactualExplainer(tree, feature_weights=bad).fit(frame)


def test_weights_that_even_out_the_scales_silence_the_scale_warning():
    """Found by a review: feature_weights of 1 / std still got "features differ in scale"."""
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    X = X[:, :6]
    model = LogisticRegression(max_iter=5000).fit(X, y)
    with pytest.warns(UserWarning, match="differ in scale"):
        CounterfactualExplainer(model).fit(X)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*differ in scale")
        CounterfactualExplainer(model, feature_weights=1 / X.std(axis=0)).fit(X)
