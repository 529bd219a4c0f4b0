import warnings

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from skcem import CEMExplainer, CounterfactualExplainer, GradientSimilarityExplainer, SkcemWarning

from .conftest import FAST


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_X_is_rejected_in_fit_and_transform(iris, iris_model, bad):
    X, _ = iris
    X_bad = X[:5].copy()
    X_bad[2, 1] = bad
    message = "Input X contains NaN.*CEMExplainer explains rows with missing values only " \
        "for a model that takes them.*allow_nan=False.*Impute" \
        if np.isnan(bad) else "Input X contains inf"
    with pytest.raises(ValueError, match=message):
        CEMExplainer(iris_model).fit(X_bad)
    cem = CEMExplainer(iris_model).fit(X)
    with pytest.raises(ValueError, match=message):
        cem.transform(X_bad)
    assert np.isnan(X_bad[2, 1]) or np.isinf(X_bad[2, 1])


def _snapshot(value):
    if hasattr(value, "copy"):
        return value.copy()
    return [v.copy() if hasattr(v, "copy") else v for v in value]


def _assert_same(before, after):
    if hasattr(after, "equals"):  # pandas
        assert after.equals(before) and list(after.columns) == list(before.columns)
    elif isinstance(after, np.ndarray):
        np.testing.assert_array_equal(after, before)
        assert after.dtype == before.dtype
    else:
        for b, a in zip(before, after):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", ["array", "frame"])
@pytest.mark.parametrize("mode", ["PN", "PP", "CF"])
def test_no_input_is_mutated(iris, iris_model, kind, mode):
    """Every array the user passes is bit for bit the same after fit and explain."""
    from skcem import CounterfactualExplainer

    X, y = iris
    X = X.copy()
    if kind == "frame":
        pd = pytest.importorskip("pandas")
        X = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    rows = X[40:60] if kind == "array" else X.iloc[40:60]
    labels = y[40:60].copy()
    feature_range = (np.full(4, -3.0), np.full(4, 3.0))
    immutable = np.array([True, False, False, False])
    no_info = np.zeros(4)
    inputs = [X, rows, labels, feature_range, immutable, no_info]
    before = [_snapshot(v) for v in inputs]
    common = dict(feature_range=feature_range, immutable_features=immutable, max_iterations=30,
                  c_steps=2)
    if mode == "CF":
        target = np.full(20, 2)
        inputs.append(target)
        before.append(target.copy())
        explainer = CounterfactualExplainer(iris_model, target_class=target, **common)
        labels_for_explain = None
    else:
        explainer = CEMExplainer(iris_model, mode=mode, no_info_val=no_info, **common)
        labels_for_explain = labels
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        explainer.fit(X).explain(rows, labels_for_explain)
    for b, a in zip(before, inputs):
        _assert_same(b, a)


def test_wrong_number_of_features(iris, iris_model):
    X, _ = iris
    cem = CEMExplainer(iris_model).fit(X)
    with pytest.raises(ValueError, match="X has 3 features, but CEMExplainer is expecting 4"):
        cem.explain(X[:2, :3])


def test_one_dimensional_and_empty_X(iris, iris_model):
    X, _ = iris
    with pytest.raises(ValueError, match="Expected 2D array"):
        CEMExplainer(iris_model).fit(X[0])
    with pytest.raises(ValueError, match="0 sample"):
        CEMExplainer(iris_model).fit(X[:0])
    cem = CEMExplainer(iris_model).fit(X)
    with pytest.raises(ValueError, match="0 sample"):
        cem.transform(X[:0])


@pytest.mark.parametrize("output, message", [
    (lambda Z: np.ones((len(Z), 3)), "sum to 1"),
    (lambda Z: np.full((len(Z), 2), [1.5, -0.5]), r"in \[0, 1\]"),
    (lambda Z: np.full((len(Z), 2), np.nan), r"in \[0, 1\]"),
    (lambda Z: np.ones(len(Z)), "shape"),
])
def test_predict_proba_must_return_probabilities(iris, output, message):
    X, _ = iris
    # a plain function is named as what it is, not as a predict_proba it does not have
    with pytest.raises(ValueError, match=f"^`estimator` must return .*{message}"):
        CEMExplainer(output).fit(X)


@pytest.mark.parametrize("params, match", [
    ({"mode": "XX"}, "'mode' parameter"),
    ({"no_info_type": "mode"}, "'no_info_type' parameter"),
    ({"beta": -0.1}, "'beta' parameter"),
    ({"kappa": -1.0}, "'kappa' parameter"),
    ({"kappa": 1.0}, "'kappa' parameter"),
    ({"gamma": -1.0}, "'gamma' parameter"),
    ({"max_iterations": 0}, "'max_iterations' parameter"),
    ({"c_init": 0.0}, "'c_init' parameter"),
    ({"eps": (1e-3, 0.0)}, "`eps` must be > 0"),
    ({"eps": (-1e-3, 1e-3)}, "`eps` must be > 0"),
    ({"eps": (1e-3, [1e-3, 1e-3])}, "`eps` must be a scalar or have one value per feature"),
    ({"clip": (1.0, -1.0)}, "`clip` must be"),
    ({"feature_range": (1.0, -1.0)}, "`feature_range` needs min <= max"),
    ({"feature_range": (np.zeros(4), np.array([1, 1, -1, 1]))}, "feature 2 has min"),
    ({"feature_range": (0.0, 1.0, 2.0)}, "`feature_range` must be a pair"),
    ({"no_info_val": [0.0, 1.0]}, "`no_info_val` must be a scalar or have one value"),
    ({"gamma": 1.0}, "`gamma` > 0 needs an `autoencoder`"),
])
def test_bad_parameters_name_the_parameter(iris, iris_model, params, match):
    X, _ = iris
    with pytest.raises(ValueError, match=match):
        CEMExplainer(iris_model, **params).fit(X)


def test_y_needed_only_to_fit_a_classifier(iris):
    X, y = iris
    with pytest.raises(ValueError, match="requires y to be passed"):
        CEMExplainer().fit(X)
    assert CEMExplainer(max_iterations=5).fit(X, y).classes_.tolist() == [0, 1, 2]
    # an unfitted Pipeline on a table with text: was wrapped in "X has categorical columns
    # [...], but `estimator` fails on them ... pass a Pipeline that one-hot encodes them"
    pd = pytest.importorskip("pandas")
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame = pd.DataFrame({"colour": ["red", "blue"] * 75, "size": X[:, 0]})
    model = make_pipeline(make_column_transformer((OneHotEncoder(), ["colour"]),
                                                  remainder="passthrough"), LogisticRegression())
    with pytest.raises(ValueError, match="^CEMExplainer requires y to be passed"):
        CEMExplainer(model).fit(frame)


def test_transform_before_fit(iris):
    X, _ = iris
    with pytest.raises(NotFittedError):
        CEMExplainer().transform(X)


def test_y_of_wrong_length_in_explain(iris, iris_model):
    X, _ = iris
    cem = CEMExplainer(iris_model).fit(X)
    with pytest.raises(ValueError, match=r"`y` must have shape \(3,\)"):
        cem.explain(X[:3], y=[0, 1])


def test_probe_iterations_below_max_iterations(iris, iris_model):
    X, _ = iris
    with pytest.raises(ValueError, match="`probe_iterations` \\(500\\) must be below"):
        CEMExplainer(iris_model, max_iterations=50, probe_iterations=500).fit(X)


def test_array_after_a_dataframe_fit_is_taken_in_the_fits_order_with_a_warning(iris,
                                                                               iris_model):
    pd = pytest.importorskip("pandas")
    X, _ = iris
    frame = pd.DataFrame(X, columns=["sl", "sw", "pl", "pw"])
    cem = CEMExplainer(iris_model, max_iterations=20, c_steps=2).fit(frame)
    with pytest.warns(UserWarning, match="fitted on a DataFrame.*sl, sw, pl, pw"):
        from_array = cem.transform(X[50:52])
    np.testing.assert_array_equal(from_array, cem.transform(frame.iloc[50:52]))
    # so is a list of rows (whose ``index`` is a method, not the rows' labels)
    with pytest.warns(UserWarning, match="fitted on a DataFrame"):
        from_list = cem.explain(X[50:52].tolist())
    np.testing.assert_array_equal(from_list.explanation, from_array)


@pytest.mark.parametrize("call", ["explain", "transform", "fit_transform", "pipeline"])
def test_warnings_point_at_the_callers_line(iris, iris_model, call):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    X, _ = iris
    outside = X[:2] * 100  # beyond the fitted feature range: a UserWarning
    cem = CEMExplainer(iris_model, max_iterations=5, c_steps=1).fit(X)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if call == "pipeline":
            make_pipeline(FunctionTransformer(), cem).fit(X).transform(outside)
        elif call == "fit_transform":
            cem.set_params(feature_range=(-1.0, 1.0)).fit_transform(outside)
        else:
            getattr(cem, call)(outside)
    ours = [w for w in caught if "outside `feature_range_`" in str(w.message)]
    assert ours and all(w.filename == __file__ for w in ours), [w.filename for w in caught]


def test_every_warning_of_skcem_is_a_skcem_warning(iris, iris_model):
    """Found by a user: some warnings were plain UserWarnings, which only a filter on every
    library's UserWarnings silenced (``module="skcem"`` filters see the caller's line)."""
    from skcem import SkcemWarning

    X, _ = iris
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        CEMExplainer(iris_model, feature_range=(2.0, 5.0), max_iterations=5,
                     c_steps=1).fit(X).transform(X[:3])
        CEMExplainer(iris_model, immutable_features=[0], directions={0: "increase"},
                     max_iterations=5, c_steps=1).fit(X)
        CounterfactualExplainer(iris_model, max_iterations=5, c_steps=1).fit(X).explain(
            X[:2], [0, 1])
    messages = {str(w.message)[:30] for w in caught}
    assert len(messages) >= 3, messages
    assert all(issubclass(w.category, SkcemWarning) for w in caught), \
        [(w.category, str(w.message)[:60]) for w in caught]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", SkcemWarning)
        CEMExplainer(iris_model, feature_range=(2.0, 5.0), max_iterations=5,
                     c_steps=1).fit(X).transform(X[:3])
    assert not caught


def test_not_found_warning_names_rows_with_no_room_to_move():
    from sklearn.linear_model import LogisticRegression

    from skcem import CEMExplainer, CounterfactualExplainer, ExplanationNotFoundWarning

    X = np.array([[0.0], [1.0], [0.2], [0.8]])
    model = LogisticRegression().fit(X, [0, 1, 0, 1])
    # Every feature immutable: nothing can change.
    cf = CounterfactualExplainer(model, immutable_features=[0]).fit(X)
    with pytest.warns(ExplanationNotFoundWarning, match="2 of them have no admissible change"):
        cf.explain(X[:2])
    # A PN of rows at the ends of the range, no_info_val in the middle: no move away from it.
    cem = CEMExplainer(model, mode="PN", no_info_val=0.5).fit(X)
    with pytest.warns(ExplanationNotFoundWarning) as record:
        exp = cem.explain(X)
    message = str(record[0].message)
    assert "found no PN for 2 of 4" in message and "2 of them have no admissible change" in message
    assert "(X's rows 0, 1)" in message  # which ones, not only how many
    assert not exp.found[:2].any() and exp.found[2:].all()


@pytest.mark.parametrize("Explainer", ["CEMExplainer", "CounterfactualExplainer"])
def test_a_classifier_with_a_decision_function_only_is_explained(iris, Explainer):
    """SVC, LinearSVC, RidgeClassifier: their classes scored by the softmax of their decision
    function, every answer in another class by their own predict; the user's model is left
    as it is (no predict_proba added)."""
    import skcem
    from sklearn.linear_model import RidgeClassifier
    from sklearn.svm import SVC, LinearSVC

    X, y = iris
    rows = X[::15]
    for model in (SVC(), LinearSVC(), RidgeClassifier()):
        model.fit(X, y)
        explainer = getattr(skcem, Explainer)(model, max_iterations=200, c_steps=4).fit(X)
        scores = model.decision_function(rows)
        proba = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
        np.testing.assert_allclose(explainer.estimator_.predict_proba(rows), proba, rtol=1e-12)
        exp = explainer.explain(rows)
        assert exp.found.mean() >= 0.9, type(model).__name__
        np.testing.assert_array_equal(exp.X_pred, model.predict(rows))
        answers = exp.explanation[exp.found]
        assert (model.predict(answers) != model.predict(rows[exp.found])).all()
        assert not hasattr(model, "predict_proba")
    # a binary one's single score s: [1 - expit(s), expit(s)], the class predict gives
    binary = LinearSVC().fit(X, y == 2)
    proba = getattr(skcem, Explainer)(binary).fit(X).estimator_.predict_proba(rows)
    s = binary.decision_function(rows)
    np.testing.assert_allclose(proba[:, 1], 1 / (1 + np.exp(-s)), rtol=1e-12)
    np.testing.assert_array_equal(binary.classes_[proba.argmax(axis=1)], binary.predict(rows))


@pytest.mark.parametrize("Explainer", ["CEMExplainer", "CounterfactualExplainer"])
def test_a_classifier_without_scores_is_shown_the_way(iris, Explainer):
    """Hard voting scores no class; a threshold classifier on a decision function predicts
    by a moved threshold, which its scores' largest would not follow."""
    import skcem
    from sklearn.ensemble import VotingClassifier
    from sklearn.model_selection import FixedThresholdClassifier
    from sklearn.naive_bayes import GaussianNB
    from sklearn.svm import SVC, LinearSVC

    X, y = iris
    hard = VotingClassifier([("nb", GaussianNB()), ("svc", SVC())]).fit(X, y)
    with pytest.raises(ValueError, match=rf"{Explainer} needs a classifier with predict_proba "
                                         r"or decision_function .*VotingClassifier has none it "
                                         r"can use\. VotingClassifier\(voting='soft'\) gives"):
        getattr(skcem, Explainer)(hard).fit(X)
    # Found by a review: an SVC's scores of each pair of classes were read as its classes'
    pairs = SVC(decision_function_shape="ovo").fit(X, y)
    with pytest.raises(ValueError, match=r"SVC has none it can use\. Its decision_function "
                                         r"scores each pair of classes .*set_params\("
                                         r"decision_function_shape='ovr'\) on the fitted"):
        getattr(skcem, Explainer)(pairs).fit(X)
    pairs.set_params(decision_function_shape="ovr")  # as it says
    assert getattr(skcem, Explainer)(pairs, max_iterations=100, c_steps=2).fit(X)
    # behind a Pipeline: the parameter as the Pipeline's set_params takes it (a review's)
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    piped = make_pipeline(StandardScaler(), SVC(decision_function_shape="ovo")).fit(X, y)
    with pytest.raises(ValueError, match=r"set_params\(svc__decision_function_shape='ovr'\)"):
        getattr(skcem, Explainer)(piped).fit(X)
    piped.set_params(svc__decision_function_shape="ovr")  # as it says
    assert getattr(skcem, Explainer)(piped, max_iterations=100, c_steps=2).fit(X)
    moved = FixedThresholdClassifier(LinearSVC(), threshold=0.5).fit(X, y == 2)
    with pytest.raises(ValueError, match=r"FixedThresholdClassifier has none it can use\. "
                                         r"CalibratedClassifierCV"):
        getattr(skcem, Explainer)(moved).fit(X)


@pytest.mark.parametrize("Explainer", ["CEMExplainer", "CounterfactualExplainer"])
def test_a_regressor_is_told_that_classifiers_are_explained(iris, Explainer):
    """Not the predict_proba hint: CalibratedClassifierCV cannot take a regressor."""
    import skcem
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from sklearn.cluster import KMeans
    from sklearn.ensemble import IsolationForest

    X, y = iris
    for model in (LinearRegression(), make_pipeline(StandardScaler(), LinearRegression())):
        with pytest.raises(ValueError, match=r"must be a classifier; .* is a regressor"):
            getattr(skcem, Explainer)(model.fit(X, y)).fit(X)
    # nor an outlier detector or a clusterer, which CalibratedClassifierCV cannot take either
    for model, kind in ((IsolationForest(random_state=0), "an outlier detector"),
                        (KMeans(3, random_state=0), "a clusterer")):
        with pytest.raises(ValueError, match=rf"must be a classifier; {type(model).__name__} "
                                             rf"is {kind}\. skcem explains classifiers"):
            getattr(skcem, Explainer)(model.fit(X)).fit(X)


def test_fit_rows_of_one_class_are_named_as_the_cause(iris):
    """Before, only the explanations' not-found warning came, suggesting a smaller C."""
    from sklearn.ensemble import RandomForestClassifier

    from skcem import CEMExplainer, CounterfactualExplainer

    X, y = iris
    model = RandomForestClassifier(20, random_state=0).fit(X, y)
    setosa = X[y == 0]
    for explainer in (CounterfactualExplainer(model), CEMExplainer(model, mode="PN")):
        with pytest.warns(UserWarning, match="predicts one class, 0, for every row of X "
                                             "given to fit"):
            explainer.fit(setosa)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CEMExplainer(model, mode="PP").fit(setosa)  # a PP keeps the class: no warning
        CounterfactualExplainer(model).fit(X)


def test_a_transformer_as_autoencoder_is_shown_the_function_to_pass(iris, iris_model):
    from sklearn.decomposition import PCA

    from skcem import CEMExplainer

    X, _ = iris
    pca = PCA(2).fit(X)
    with pytest.raises(ValueError, match=r"'autoencoder' .* must be a function of rows.*got "
                                         r"a PCA.*inverse_transform\(ae.transform\(Z\)\)"):
        CEMExplainer(iris_model, gamma=1.0, autoencoder=pca).fit(X)
    CEMExplainer(iris_model, gamma=1.0, max_iterations=5, c_steps=1,
                 autoencoder=lambda Z: pca.inverse_transform(pca.transform(Z))).fit(X)


def test_a_feature_both_immutable_and_directed_is_named(iris, iris_model):
    from skcem import CounterfactualExplainer

    X, _ = iris
    with pytest.warns(UserWarning, match=r"Features \[0\] are in both immutable_features and "
                                         r"directions"):
        CounterfactualExplainer(iris_model, immutable_features=[0],
                                directions={0: "increase", 1: "decrease"}).fit(X)


def test_directions_that_rule_out_every_helpful_move_are_named_as_a_cause():
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    from skcem import CounterfactualExplainer, ExplanationNotFoundWarning

    X, y = make_classification(500, 4, n_informative=3, n_redundant=0, random_state=0)
    model = LogisticRegression().fit(X, y)
    directions = {j: "decrease" if w > 0 else "increase" for j, w in enumerate(model.coef_[0])}
    rows = X[model.predict(X) == 0][:5]
    # a linear model: a linear program proves it, naming the constraints
    with pytest.warns(ExplanationNotFoundWarning, match=r"For 5 of them none exists: the "
                                                        r"model's decision is linear.*"
                                                        r"immutable_features, directions"):
        exp = CounterfactualExplainer(model, directions=directions).fit(X).explain(rows)
    assert not exp.found.any()
    # a model the program does not read: the constraints are named as a likely cause
    def probabilities(Z):
        return model.predict_proba(Z) ** 1.0001 / (model.predict_proba(Z) ** 1.0001).sum(
            axis=1, keepdims=True)

    with pytest.warns(ExplanationNotFoundWarning, match="immutable_features and directions "
                                                        "may also leave no change"):
        exp = CounterfactualExplainer(probabilities, directions=directions).fit(
            X, y).explain(rows)
    assert not exp.found.any()


def test_a_linear_model_on_a_table_of_immutable_categories_gets_its_proof():
    """Found by a user: with every categorical column immutable the linear program was not
    tried, and the warning advised a smaller C or more iterations, which cannot help: the
    decision is affine in the numeric columns at each row's categories."""
    pd = pytest.importorskip("pandas")
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from skcem import CounterfactualExplainer, ExplanationNotFoundWarning

    rng = np.random.default_rng(0)
    n = 400
    X = pd.DataFrame({"city": rng.choice(["a", "b", "c"], n), "x0": rng.normal(size=n),
                      "x1": rng.normal(size=n)})
    shift = X["city"].map({"a": -1.0, "b": 0.0, "c": 1.0})
    y = (X["x0"] + 0.5 * X["x1"] + 2 * shift + rng.normal(0, 0.3, n) > 0).astype(int)
    model = make_pipeline(make_column_transformer((OneHotEncoder(), ["city"]),
                                                  remainder=StandardScaler()),
                          LogisticRegression()).fit(X, y)
    assert (model[-1].coef_[0][-2:] > 0).all()
    rows = X[model.predict(X) == 0].groupby("city").head(2)
    assert rows["city"].nunique() == 3
    directions = {"x0": "decrease", "x1": "decrease"}
    with pytest.warns(ExplanationNotFoundWarning, match=rf"For {len(rows)} of them none "
                                                        r"exists: the model's decision is "
                                                        r"linear"):
        exp = CounterfactualExplainer(model, immutable_features=["city"],
                                      directions=directions).fit(X).explain(rows)
    assert not exp.found.any()
    # where x1 may increase, an answer exists where x1 at the top of its range reaches the
    # class (the decision rises with it): found there, proven absent elsewhere
    explainer = CounterfactualExplainer(model, immutable_features=["city"],
                                        directions={"x0": "decrease"}).fit(X)
    reachable = model.predict(rows.assign(x1=explainer.feature_range_[1][2])) == 1
    assert reachable.any() and not reachable.all()
    with pytest.warns(ExplanationNotFoundWarning, match=rf"For {(~reachable).sum()} of them "
                                                        r"none exists"):
        exp = explainer.explain(rows)
    np.testing.assert_array_equal(exp.found, reachable)
    # a category that may change: no proof (the decision is not affine in a category)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        CounterfactualExplainer(model, directions=directions,
                                search="neighbors").fit(X).explain(rows)
    assert not any("none exists" in str(w.message) for w in caught)


def test_load_mnist_names_a_kind_it_does_not_know(tmp_path):
    from skcem.datasets import load_mnist

    with pytest.raises(ValueError, match=r"`kind` must be 't10k' or 'train'; got 'test'"):
        load_mnist(tmp_path, kind="test")


@pytest.mark.parametrize("Explainer", ["CEMExplainer", "CounterfactualExplainer"])
def test_a_radius_classifier_without_outlier_label_is_refused(iris, Explainer):
    # it raised "No neighbors found" from inside the search, on rows of the search's own
    import skcem
    from sklearn.neighbors import RadiusNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = iris
    for model in (RadiusNeighborsClassifier(radius=2.0).fit(X, y),
                  make_pipeline(StandardScaler(), RadiusNeighborsClassifier())):
        with pytest.raises(ValueError, match="RadiusNeighborsClassifier without outlier_label"):
            getattr(skcem, Explainer)(model).fit(X, y)
    answered = RadiusNeighborsClassifier(radius=2.0, outlier_label="most_frequent").fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exp = getattr(skcem, Explainer)(answered).fit(X).explain(X[::50])
    assert exp.found.any()
    assert np.all(answered.predict(exp.explanation[exp.found]) != exp.X_pred[exp.found])


def test_columns_of_the_same_name_are_named(iris):
    # pandas' own DuplicateError, or an AttributeError, before
    import skcem
    from sklearn.linear_model import LogisticRegression

    pd = pytest.importorskip("pandas")
    X, y = iris
    frame = pd.DataFrame(X, columns=["a", "a", "b", "c"])
    model = LogisticRegression(max_iter=500).fit(X, y)
    for name in ("CEMExplainer", "CounterfactualExplainer", "GradientSimilarityExplainer"):
        Explainer = getattr(skcem, name)
        with pytest.raises(ValueError, match=r"X has columns of the same name \['a'\]"):
            Explainer(model).fit(frame, y)
        with pytest.raises(ValueError, match=r"X has columns of the same name \['a'\]"):
            Explainer(model).fit(X, y).explain(frame)


def test_infinite_values_are_named_by_column(iris):
    # scikit-learn's message named no column
    from sklearn.linear_model import LogisticRegression

    X, y = iris
    model = LogisticRegression(max_iter=500).fit(X, y)
    bad = X.copy()
    bad[3, 2] = np.inf
    with pytest.raises(ValueError, match=r"contains infinity .*\(in 2\): the explainers need "
                                         "finite values"):
        CEMExplainer(model).fit(bad)
    with pytest.raises(ValueError, match=r"contains infinity .*\(in 2\)"):
        CEMExplainer(model, max_iterations=5).fit(X).explain(bad[:5])
    # finite, but too large to square: the exact search's costs overflowed inside scipy
    from sklearn.ensemble import HistGradientBoostingClassifier

    trees = HistGradientBoostingClassifier(max_iter=5).fit(X, y)
    huge = X[[0, 50, 100]].copy()
    huge[0, 1] = 1e155
    for search in ("auto", "exact"):
        with pytest.raises(ValueError, match=r"holds values above 1e\+153 in absolute value "
                                             r"\(in 1\), whose squares overflow"):
            CEMExplainer(trees, search=search).fit(X).explain(huge)
    # and so are parameters of such values
    for params, name in (({"feature_range": (-1e200, 1e200)}, "`feature_range`"),
                         ({"mode": "PP", "no_info_val": 1e200}, "`no_info_val`")):
        with pytest.raises(ValueError, match=f"{name} holds .*e\\+200, above 1e\\+153"):
            CEMExplainer(model, **params).fit(X)


def test_one_class_in_y_is_named_for_the_default_classifier(iris):
    # scikit-learn's solver message ("needs samples of at least 2 classes") named no y
    X, _ = iris
    with pytest.raises(ValueError, match=r"y holds one class \(\[1\]\): an explanation changes "
                                         "the class"):
        CEMExplainer().fit(X, np.ones(len(X), dtype=int))


def test_integers_by_feature_are_positions_and_said_so_for_integer_labels():
    # immutable_features=[0] held the column labelled 10 (position 0), silently
    pd = pytest.importorskip("pandas")
    from sklearn.linear_model import LogisticRegression

    from skcem import CounterfactualExplainer

    rng = np.random.RandomState(0)
    X = pd.DataFrame(rng.randn(60, 3), columns=[10, 2, 0])
    # fitted on the same frame: scikit-learn keeps no names that are not strings (and skcem
    # does not warn that the model lacks them)
    model = LogisticRegression().fit(X, (X[10] + X[0] > 0).astype(int))
    with pytest.warns(UserWarning, match=r"labelled by integers \[10, 2, 0\], but the integers "
                                         r"in \['immutable_features', 'directions'\] are "
                                         r"positions \(column 10 is 0\)"):
        explainer = CounterfactualExplainer(model, immutable_features=[0],
                                            directions={1: "increase"}).fit(X)
    np.testing.assert_array_equal(explainer.immutable_mask_, [True, False, False])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CounterfactualExplainer(model, immutable_features=[0]).fit(X.set_axis([0, 1, 2], axis=1))
        CounterfactualExplainer(model).fit(X)
    # a label that is no position: the error says integers are positions, and which is 0
    for params in ({"immutable_features": [10]}, {"directions": {10: "increase"}}):
        with pytest.raises(ValueError, match=r"Integers are positions, as in scikit-learn's "
                                             r"ColumnTransformer, .*labelled by integers "
                                             r"\(\[10, 2, 0\]\): give the position \(column "
                                             r"10 is 0\)"):
            CounterfactualExplainer(model, **params).fit(X)


def test_documents_for_a_text_pipeline_get_one_line():
    """Found by a user: a TfidfVectorizer Pipeline's 1-D documents failed in numpy ("could not
    convert string to float")."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from skcem import GradientSimilarityExplainer

    documents = ["good movie great fun", "bad film awful plot", "great acting good story",
                 "awful boring bad"] * 3
    y = np.array([1, 0, 1, 0] * 3)
    model = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(documents, y)
    for explainer in (CEMExplainer(model), CounterfactualExplainer(model)):
        with pytest.raises(ValueError, match="X is 1-D text .* DataFrame column .* "
                                             "ColumnTransformer"):
            explainer.fit(documents)
    # gradient similarity takes them, for a Pipeline (its last step's gradients on the
    # rows its vectorizer makes); a model that is not one is told to be one
    GradientSimilarityExplainer(model).fit(np.array(documents), y)
    with pytest.raises(ValueError, match=r"X is 1-D text \(documents\); `estimator` is not a "
                                         r"Pipeline .* make_pipeline\(TfidfVectorizer\(\)"):
        GradientSimilarityExplainer(model[-1]).fit(np.array(documents), y)
    # a column of them: the vectorizer failed inside ('numpy.ndarray' has no 'lower')
    with pytest.raises(ValueError, match="begins with a TfidfVectorizer, which takes 1-D "
                                         "documents.*ColumnTransformer"):
        CEMExplainer(model).fit(np.array(documents, dtype=object)[:, None])
    # a one-column DataFrame of them: the advice, without refitting, and it works
    import operator

    import pandas as pd
    from sklearn.frozen import FrozenEstimator
    from sklearn.preprocessing import FunctionTransformer

    frame = pd.DataFrame({"review": documents})
    with pytest.raises(ValueError, match=r"which takes 1-D documents, not a table: put the "
                                         r"vectorizer in a ColumnTransformer .* explain "
                                         r"make_pipeline\(FunctionTransformer\(operator\."
                                         r"itemgetter\('review'\)\), FrozenEstimator"):
        CounterfactualExplainer(model).fit(frame)
    # the same for a model scored by its decision function (it was told to one-hot encode)
    from sklearn.svm import LinearSVC

    scored = make_pipeline(TfidfVectorizer(), LinearSVC()).fit(documents, y)
    with pytest.raises(ValueError, match=r"begins with a TfidfVectorizer, which takes 1-D "
                                         r"documents, not a table"):
        CounterfactualExplainer(scored).fit(frame)
    wrapped = make_pipeline(FunctionTransformer(operator.itemgetter("review")),
                            FrozenEstimator(model))
    exp = CounterfactualExplainer(wrapped).fit(frame).explain(frame.iloc[:4])
    assert exp.found.all()
    assert (model.predict(exp.explanation["review"]) != model.predict(documents[:4])).all()


class _EditsItsInput:
    """A fitted model that rounds its input in place before predicting."""

    def __init__(self, model):
        self.model, self.classes_ = model, model.classes_

    def predict_proba(self, X):
        X[:, 1] = np.round(X[:, 1], 1)
        return self.model.predict_proba(X)

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def test_a_column_that_feeds_a_text_vectorizer_is_said_to_be_swapped_whole():
    """Found by a user: answers swapped a customer's review for another's; fit says so, and
    an immutable review stays each row's own."""
    pd = pytest.importorskip("pandas")
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from skcem import CounterfactualExplainer, SkcemWarning

    rng = np.random.default_rng(0)
    words = np.array(["good", "bad", "fast", "slow", "cheap", "rude"])
    X = pd.DataFrame({"age": rng.integers(18, 70, 200),
                      "review": [" ".join(rng.choice(words, 3)) for _ in range(200)]})
    y = (X.review.str.contains("good") | (X.age > 50)).astype(int)
    model = make_pipeline(ColumnTransformer([("age", StandardScaler(), ["age"]),
                                             ("text", TfidfVectorizer(), "review")]),
                          LogisticRegression()).fit(X, y)
    with pytest.warns(SkcemWarning, match=r"columns \['review'\] feed a text vectorizer .* "
                                          "swap it for another row's text"):
        CounterfactualExplainer(model).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exp = CounterfactualExplainer(model, immutable_features=["review"]).fit(X).explain(
            X.iloc[:5])
    assert exp.found.all() and (exp.explanation["review"] == X.review[:5]).all()
    # found by a user: behind a FeatureUnion of ColumnTransformers, the review was taken for
    # an identifier
    from sklearn.pipeline import FeatureUnion

    union = make_pipeline(
        FeatureUnion([("text", ColumnTransformer([("words", make_pipeline(
            TfidfVectorizer()), "review")])), ("age", ColumnTransformer([
                ("age", StandardScaler(), ["age"])]))]),
        LogisticRegression()).fit(X, y)
    # found by a user: a model without probabilities (scored by the softmax of its decision
    # function, in a wrapper) had its text column taken for an identifier too
    from sklearn.svm import LinearSVC

    svc = make_pipeline(ColumnTransformer([("age", StandardScaler(), ["age"]),
                                           ("text", TfidfVectorizer(), "review")]),
                        LinearSVC()).fit(X, y)
    for fitted in (union, svc):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            CounterfactualExplainer(fitted).fit(X)
        said = [str(w.message) for w in caught]
        assert any("columns ['review'] feed a text vectorizer" in text for text in said)
        assert not any("identifiers?" in text for text in said)


@pytest.mark.parametrize("explainer", [CEMExplainer, CounterfactualExplainer])
def test_a_model_that_edits_its_input_does_not_edit_the_users(iris, iris_model, explainer):
    X, _ = iris
    X_fit, rows = X.copy(), X[::15].copy()
    fitted = explainer(_EditsItsInput(iris_model), max_iterations=50, c_steps=2).fit(X_fit)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted.explain(rows)
        fitted.score(rows)
    np.testing.assert_array_equal(X_fit, X)
    np.testing.assert_array_equal(rows, X[::15])


class _DuckTyped:
    """A fitted model with ``fit``, but no scikit-learn base class (no tags)."""

    def __init__(self, model, proba=None):
        self.model, self.classes_ = model, model.classes_
        self.proba = proba or model.predict_proba

    def fit(self, X, y=None):
        return self

    def predict_proba(self, X):
        return self.proba(X)

    def predict(self, X):
        return self.model.predict(X)


def test_a_duck_typed_model_with_fit_is_used_as_given(iris, iris_model):
    X, _ = iris
    exp = CounterfactualExplainer(_DuckTyped(iris_model)).fit(X).explain(X[::25])
    assert exp.found.all()
    assert np.all(iris_model.predict(exp.explanation) != exp.X_pred)


@pytest.mark.parametrize("proba, message", [
    (lambda p: p[:, 0], r"must return an array of shape \(n_samples, n_classes\).*got shape "
                        r"\(\d+,\) for \d+ rows: one value per row, a class label or one "
                        r"class's probability\? .* np.c_\[1 - p, p\]"),
    # found by a trial: an ONNX session's outputs failed in numpy's words
    (lambda p: [dict(enumerate(row)) for row in p], r"got a list of dict: one dict of "
                                                    r"probabilities per row \(an ONNX "
                                                    r"classifier's ZipMap output\)"),
    (lambda p: [p.argmax(axis=1), p], r"got a list of ndarray: several outputs, as an ONNX "
                                      r"session's run gives \(labels, probabilities\)"),
    (lambda p: {"probabilities": p.tolist()}, r"got a dict: return the probabilities' array"),
    (lambda p: np.where(np.arange(len(p))[:, None] == 2, np.nan, p),
     r"got NaN or infinite values \(rows \[2\] of those asked\)"),
    (lambda p: p.T, r"must return an array of shape \(n_samples, n_classes\).*got shape "
                    r"\(3, \d+\)"),
    (lambda p: p[:, :2], "returns 2 columns, but the model has 3 classes_")])
def test_probabilities_of_the_wrong_shape_get_one_clear_error(iris, iris_model, proba,
                                                              message):
    X, _ = iris
    model = _DuckTyped(iris_model, lambda X: proba(iris_model.predict_proba(X)))
    with pytest.raises(ValueError, match=message):
        CEMExplainer(model).fit(X)


def test_infinite_values_are_refused_under_assume_finite(iris, iris_model):
    from sklearn import config_context

    from skcem import GradientSimilarityExplainer

    X, y = iris
    rows = X[:5].copy()
    rows[1, 2] = np.inf
    with config_context(assume_finite=True):
        for explainer in (CEMExplainer(iris_model).fit(X),
                          GradientSimilarityExplainer(iris_model).fit(X, y)):
            with pytest.raises(ValueError, match=r"Input X contains infinity \(in 2\)"):
                explainer.transform(rows)


def test_a_fitted_model_of_another_width_is_refused_at_fit(iris, iris_model):
    from skcem import GradientSimilarityExplainer

    X, y = iris
    for precompute in (False, True):
        with pytest.raises(ValueError, match="X has 3 features, but the fitted `estimator` "
                                             r"\(LogisticRegression\) takes 4"):
            GradientSimilarityExplainer(iris_model, precompute_grads=precompute).fit(
                X[:, :3], y)


def test_a_model_that_answers_otherwise_when_asked_again_is_named(iris, iris_model):
    # Noisy probabilities: most "found" answers went back to the instance's class when asked
    # again, with no word of why.
    from skcem import SkcemWarning

    X, _ = iris
    rng = np.random.default_rng(0)

    def noisy(rows):
        proba = iris_model.predict_proba(rows) + rng.uniform(0, 0.15, (len(rows), 3))
        return proba / proba.sum(axis=1, keepdims=True)

    with pytest.warns(SkcemWarning, match="`estimator` gives other probabilities for the same "
                                          "rows when asked again"):
        CounterfactualExplainer(_DuckTyped(iris_model, noisy)).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SkcemWarning)
        CounterfactualExplainer(_DuckTyped(iris_model)).fit(X)

    def random(rows):  # dropout left on: classes that change from call to call
        proba = iris_model.predict_proba(rows) + rng.uniform(0, 2, (len(rows), 3))
        return proba / proba.sum(axis=1, keepdims=True)

    with pytest.raises(ValueError, match=r"`estimator` puts \d+ of 100 rows of X in another "
                                         "class when asked about them again"):
        CounterfactualExplainer(_DuckTyped(iris_model, random)).fit(X)

    # rows tied between two classes, which float noise (a GPU's) tips either way: no refusal
    def tied(rows):
        proba = np.tile([0.5, 0.5, 0.0], (len(rows), 1))
        proba[:, :2] += rng.normal(0, 1e-8, (len(rows), 2)) * [1, -1]
        return proba

    CounterfactualExplainer(_DuckTyped(iris_model, tied)).fit(X)


def test_a_finite_difference_step_lost_on_large_features_is_named(iris):
    # The warning blamed piecewise-constant probabilities: the step was below the rounding.
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from skcem import ExplanationNotFoundWarning

    X, y = iris
    X = X * 1e150
    model = make_pipeline(StandardScaler(), MLPClassifier((16,), max_iter=2000,
                                                          random_state=0)).fit(X, y)
    cem = CEMExplainer(lambda rows: model.predict_proba(rows), search="fista",
                       max_iterations=50, c_steps=2).fit(X, y)
    with pytest.warns(ExplanationNotFoundWarning, match=r"reach [0-9.]+e\+150, where a step of "
                                                        r"eps=0.001 is lost"):
        cem.explain(X[::30])
    cem.set_params(eps=(1e-3, 1e147), distance="mad").fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        assert cem.explain(X[::30]).found.any()


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_rows_the_model_answers_with_nan_or_inf_are_named(iris, iris_model, bad):
    # Far from the data the model gives no number: the warning advised a larger c_init, and
    # infinite values flooded RuntimeWarnings.
    from skcem import ExplanationNotFoundWarning

    X, _ = iris
    lower, upper = X.min(axis=0), X.max(axis=0)

    def partial(rows):
        proba = iris_model.predict_proba(rows)
        proba[((rows < lower) | (rows > upper)).any(axis=1)] = bad
        return proba

    rows = X[::10]
    cem = CEMExplainer(_DuckTyped(iris_model, partial), mode="PN", search="fista",
                       feature_range=(X.min(axis=0) - 3, X.max(axis=0) + 3), **FAST).fit(X)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exp = cem.explain(rows)
    messages = [str(w.message) for w in caught]
    assert not any(issubclass(w.category, RuntimeWarning) for w in caught), messages
    assert exp.found.any()
    assert np.all(iris_model.predict(exp.explanation[exp.found]) != exp.X_pred[exp.found])
    if not exp.found.all():
        assert any(issubclass(w.category, ExplanationNotFoundWarning) and
                   "The model gave NaN or infinite probabilities for" in str(w.message)
                   for w in caught), messages


def _coded_wine():
    """Wine, a plain probability function of a model trained on codes 0, 1, 2, and names of
    the classes in the data's own order (not sorted)."""
    from sklearn.datasets import load_wine
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    X, y = load_wine(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    model = LogisticRegression(max_iter=1000).fit(X, y)
    return X, y, model.predict_proba, np.array(["barolo", "grignolino", "barbera"])


def test_labels_in_another_order_than_the_outputs_are_named():
    """Found by a user: a network trained on codes in the data's order got its outputs named
    by the sorted labels, and every answer's class was named wrong with no warning."""
    X, y, proba, names = _coded_wine()
    rows = np.r_[0:20, 60:80, 140:160]
    with pytest.warns(UserWarning, match=r"agree with its predictions on 0% .* on 100% with "
                                         r"its outputs in another order \(output 0 = 'barolo'"):
        CounterfactualExplainer(proba).fit(X[rows], names[y[rows]])
    # integer labels 1, 2, 3 of outputs 0, 1, 2, with no row of class 3: read as indices
    with pytest.warns(UserWarning, match="check that `y` codes each class as the model was "
                                         "trained"):
        CEMExplainer(proba).fit(X[:130], y[:130] + 1)
    # a model that puts every row in one class is poor, not in another order: taken
    def one_class(rows):
        return np.tile([0.1, 0.1, 0.8], (len(rows), 1))

    mostly_barolo = np.r_[0:40, 60:70, 140:150]
    with pytest.warns(UserWarning, match="predicts one class"):
        CounterfactualExplainer(one_class).fit(X[mostly_barolo], names[y[mostly_barolo]])
    # labels whose sorted order is the outputs' own: taken
    sorted_names = np.array(["a_barolo", "b_grignolino", "c_barbera"])
    explainer = CounterfactualExplainer(proba, **FAST).fit(X[rows], sorted_names[y[rows]])
    np.testing.assert_array_equal(explainer.classes_, sorted_names)
    assert explainer.explain(X[rows[:3]]).X_pred.tolist() == ["a_barolo"] * 3


@pytest.mark.parametrize("missing", [None, np.nan])
def test_missing_labels_and_several_columns_of_y_get_one_line(iris, missing):
    X, y = iris
    labels = np.array(["a", "b", "c"], dtype=object)[y]
    labels[[5, 9]] = missing
    for Explainer in (CounterfactualExplainer, GradientSimilarityExplainer):
        with pytest.raises(ValueError, match=r"`y` holds missing labels \(2 of 150 rows, at "
                                             r"positions \[5, 9\]\)"):
            Explainer(None).fit(X, labels)
    pd = pytest.importorskip("pandas")
    with pytest.raises(ValueError, match="`y` holds missing labels"):
        CEMExplainer(None).fit(X, pd.Series(pd.Categorical(labels)))
    multilabel = np.column_stack([y == 0, y >= 1, y == 2]).astype(int)  # rows of two labels
    one_hot = np.column_stack([y == 0, y == 1, y == 2]).astype(int)
    from sklearn.neural_network import MLPClassifier

    for Explainer in (CounterfactualExplainer, GradientSimilarityExplainer):
        with pytest.raises(ValueError, match="`y` has 3 columns: a multi-label or multi-output "
                                             f"target; {Explainer.__name__} explains"):
            Explainer(MLPClassifier()).fit(X, multilabel)
        with pytest.raises(ValueError, match=r"`y` holds one-hot rows \(3 columns\)"):
            Explainer(MLPClassifier()).fit(X, one_hot)


def test_a_dict_of_inputs_is_refused_in_one_line(iris, iris_model):
    """Found by a user: a dict for a two-input model was called 1-D text."""
    X, y = iris
    inputs = {"num": X[:, :2], "cat": X[:, 2:]}
    for explainer in (CEMExplainer(iris_model), GradientSimilarityExplainer(iris_model)):
        with pytest.raises(ValueError, match=r"X is a dict \(keys \['num', 'cat'\]\); skcem "
                                             "takes one 2-D table"):
            explainer.fit(inputs, y)
        explainer.fit(X, y)
        for method in (explainer.explain, explainer.transform):
            with pytest.raises(ValueError, match=r"X is a dict"):
                method(inputs)
            # records, as DiCE's query instances (was "X has shape (1,)")
            with pytest.raises(ValueError, match=r"X is a sequence of dicts .*pd.DataFrame"):
                method([dict(zip("abcd", X[0]))])


def test_parameters_changed_in_place_and_a_model_fitted_again_are_named(iris):
    """Found by a user: a list of immutable features extended in place after fit was
    ignored (answers changed the features it named), and a model fitted again in place was
    searched with the gradients of its old weights."""
    import copy
    import pickle

    from sklearn.linear_model import LogisticRegression

    X, y = iris
    immutable = [0]
    explainer = CounterfactualExplainer(LogisticRegression().fit(X, y),
                                        immutable_features=immutable, **FAST).fit(X)
    immutable.append(2)
    with pytest.raises(NotFittedError, match="immutable_features changed since fit"):
        explainer.explain(X[:3])
    model = LogisticRegression().fit(X, y)
    for Explainer in (CEMExplainer, GradientSimilarityExplainer):
        explainer = Explainer(model).fit(X, y)
        restored = pickle.loads(pickle.dumps(explainer))
        copied = copy.deepcopy(explainer)
        explainer.explain(X[:2])
        model.fit(X, (y + 1) % 3)
        with pytest.raises(NotFittedError, match=r"`estimator` \(LogisticRegression\) was fitted "
                                                 "again since"):
            explainer.explain(X[:2])
        restored.explain(X[:2])  # their own copies of the model, as it was
        copied.explain(X[:2])
        explainer.fit(X, (y + 1) % 3).explain(X[:2])


def test_parameters_of_mapping_and_tuple_subclasses_are_no_change(iris, iris_model):
    """Found by a user: an OrderedDict of directions read as changed since fit, and a named
    tuple feature_range crashed fit."""
    from collections import OrderedDict, namedtuple

    X, _ = iris
    Range = namedtuple("Range", "low high")
    explainer = CounterfactualExplainer(iris_model, directions=OrderedDict({0: "increase"}),
                                        feature_range=Range(-3.0, 3.0), **FAST).fit(X)
    explainer.explain(X[:2])


def test_a_model_that_sets_attributes_when_it_predicts_is_named_with_them(iris, iris_model):
    from sklearn.base import BaseEstimator, ClassifierMixin

    class Counting(ClassifierMixin, BaseEstimator):
        def fit(self, X, y):
            self.classes_ = iris_model.classes_
            return self

        def predict_proba(self, X):
            self.n_calls_ = getattr(self, "n_calls_", 0) + 1
            return iris_model.predict_proba(X)

    X, y = iris
    explainer = CEMExplainer(Counting().fit(X, y), **FAST).fit(X)
    with pytest.raises(NotFittedError, match=r"attributes \['n_calls_'\] are new or changed"):
        explainer.explain(X[:2])


def test_probabilities_in_an_object_array_are_read_as_numbers(iris, iris_model):
    """Found by a regression sweep: an object array of floats from predict_proba, taken
    before, crashed in numpy's isfinite."""
    from sklearn.base import BaseEstimator, ClassifierMixin

    class Objects(ClassifierMixin, BaseEstimator):  # predict too: fit probes its rule
        def fit(self, X, y):
            self.classes_ = iris_model.classes_
            return self

        def predict(self, X):
            return iris_model.predict(X)

        def predict_proba(self, X):
            return iris_model.predict_proba(X).astype(object)

    X, y = iris
    exp = CounterfactualExplainer(Objects().fit(X, y), **FAST).fit(X).explain(X[:5])
    assert exp.found.all()
    assert (iris_model.predict(exp.explanation) != iris_model.predict(X[:5])).all()


def test_classifiers_of_classes_only_and_multilabel_one_vs_rest_get_their_own_line():
    """Found by a user: OutputCodeClassifier (predict only) was told to wrap itself in
    CalibratedClassifierCV, which refuses it; a multi-label OneVsRestClassifier got "rows
    that sum to 1" instead of the multi-label refusal."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier, OutputCodeClassifier

    X, y = load_iris(return_X_y=True)
    codes = OutputCodeClassifier(LogisticRegression(max_iter=500), random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="OutputCodeClassifier answers with classes only") as info:
        CounterfactualExplainer(codes).fit(X)
    assert "CalibratedClassifierCV" not in str(info.value)
    # a Pipeline answers with its last step's classes: that step's way forward (a new
    # user's hard VotingClassifier behind a scaler was told of LogisticRegression only)
    from sklearn.ensemble import VotingClassifier
    from sklearn.naive_bayes import GaussianNB
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    hard = make_pipeline(StandardScaler(), VotingClassifier(
        [("lr", LogisticRegression(max_iter=500)), ("nb", GaussianNB())], voting="hard"))
    with pytest.raises(ValueError, match=r"VotingClassifier\(voting='soft'\) gives them"):
        CounterfactualExplainer(hard.fit(X, y)).fit(X)
    labels = np.column_stack([y == 0, y == 1]).astype(int)
    multilabel = OneVsRestClassifier(LogisticRegression()).fit(X, labels)
    with pytest.raises(ValueError, match="is a multi-output or multi-label classifier"):
        CounterfactualExplainer(multilabel).fit(X)


def test_models_without_probabilities_off_their_data_are_named():
    """Found by a user: a RadiusNeighborsClassifier whose outlier_label is no class, and a
    LabelSpreading whose RBF kernel underflows between rows, got a generic "rows that sum to
    1" / "finite probabilities" error that blamed the user's own rows."""
    from sklearn.datasets import load_breast_cancer, load_iris
    from sklearn.neighbors import RadiusNeighborsClassifier
    from sklearn.preprocessing import StandardScaler
    from sklearn.semi_supervised import LabelSpreading

    X, y = load_iris(return_X_y=True)
    radius = RadiusNeighborsClassifier(radius=1.0, outlier_label=-1).fit(X, y)
    with pytest.raises(ValueError, match=r"whose outlier_label -1 is not one of its classes "
                                         r"\[0, 1, 2\]"):
        CounterfactualExplainer(radius, search="neighbors").fit(X)
    labels = np.array(["a", "b", "c"])[y]  # a text label that is no class either (a review)
    with pytest.raises(ValueError, match=r"whose outlier_label 'z' is not one of its classes"):
        CounterfactualExplainer(RadiusNeighborsClassifier(radius=1.0, outlier_label="z").fit(
            X, labels), search="neighbors").fit(X)
    radius.set_params(outlier_label=2).fit(X, y)
    assert CounterfactualExplainer(radius, search="neighbors").fit(X).explain(X[:3]).found.all()
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)[:400]
    spreading = LabelSpreading().fit(X, y[:400])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # scikit-learn's own 0 / 0
        with pytest.raises(ValueError, match="Not on the rows given to fit, but on rows "
                                             "between them"):
            CounterfactualExplainer(spreading).fit(X)


def test_a_refitted_search_is_read_through_to_its_best_estimator():
    """Found by a user: FrozenEstimator was looked through, GridSearchCV was not (numerical
    gradients for gradient="exact", the exact tree search and the similarity explainer
    refused it), though it answers with its best_estimator_ alone."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True)
    linear = GridSearchCV(make_pipeline(StandardScaler(), LogisticRegression()),
                          {"logisticregression__C": [0.1, 1.0]}, cv=3).fit(X, y)
    answers = CounterfactualExplainer(linear, gradient="exact", distance="mad",
                                      **FAST).fit(X).explain(X[:4])
    assert answers.found.all()
    assert (linear.predict(answers.explanation) != linear.predict(X[:4])).all()
    forest = GridSearchCV(RandomForestClassifier(10, random_state=0), {"max_depth": [2, 3]},
                          cv=3).fit(X, y)
    answers = CounterfactualExplainer(forest, search="exact", distance="mad").fit(X).explain(
        X[:4])
    assert answers.found.all() and (answers.gap == 0).all()
    plain = GridSearchCV(LogisticRegression(max_iter=5000), {"C": [0.1, 1.0]}, cv=3).fit(
        X[:200], y[:200])
    scores = GradientSimilarityExplainer(plain).fit(X[:50], y[:50]).explain(X[50:52]).scores
    direct = GradientSimilarityExplainer(plain.best_estimator_).fit(X[:50], y[:50]).explain(
        X[50:52]).scores
    np.testing.assert_allclose(scores, direct)


def test_the_not_found_warning_names_a_frames_own_row_labels():
    """Found by a user serving one row a call: every log line said "X's rows 0"."""
    pd = pytest.importorskip("pandas")
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from skcem import ExplanationNotFoundWarning

    X, y = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=1000).fit(X, y)
    explainer = CEMExplainer(model, mode="PN", immutable_features=[1, 2, 3]).fit(X)
    rows = X.iloc[50:56].set_axis([f"request-{i}" for i in range(6)])
    with pytest.warns(ExplanationNotFoundWarning) as record:
        exp = explainer.explain(rows)
    missing = np.flatnonzero(~exp.found)
    assert missing.size
    said = str(next(w.message for w in record
                    if issubclass(w.category, ExplanationNotFoundWarning)))
    positions = ", ".join(map(str, missing))
    labels = ", ".join(repr(f"request-{i}") for i in missing)
    assert f"(X's rows {positions} by position; index {labels})" in said
    assert isinstance(rows, pd.DataFrame)


def test_the_outside_the_range_warning_names_integer_and_tuple_labels():
    """Found by a review: columns labelled 10, 20, ... were named by their positions 0, 1,
    ..., columns that do not exist."""
    pd = pytest.importorskip("pandas")
    from sklearn.datasets import load_wine
    from sklearn.linear_model import LogisticRegression

    X, y = load_wine(return_X_y=True)
    model = LogisticRegression(max_iter=5000).fit(X, y)
    for labels in (list(range(10, 140, 10)), [("wine", j) for j in range(13)]):
        columns = pd.MultiIndex.from_tuples(labels) if isinstance(labels[0], tuple) \
            else labels
        frame = pd.DataFrame(X, columns=columns)
        explainer = CEMExplainer(model, max_iterations=20).fit(frame.iloc[:60])
        rows = frame.iloc[[100, 150]]
        lower, upper = explainer.feature_range_
        outside = np.flatnonzero(((rows < lower) | (rows > upper)).to_numpy().any(axis=0))
        named = ", ".join(repr(labels[j]) for j in outside[:5])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            explainer.explain(rows)
        said = [str(w.message) for w in caught if "outside `feature_range_`" in str(w.message)]
        assert len(said) == 1 and f"`feature_range_` in features {named}" in said[0], \
            (said, named)


def test_catboost_columns_are_matched_by_its_own_feature_names():
    """Found by a trial: CatBoost keeps its columns' names in feature_names_ (not
    feature_names_in_): fit warned the model had none, and columns in another order crashed
    inside CatBoost ("Cannot convert 'M' to float")."""
    catboost = pytest.importorskip("catboost")
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"age": rng.integers(18, 70, 300), "sex": rng.choice(["F", "M"], 300),
                          "income": rng.normal(30, 5, 300).round(1)})
    y = ((frame.age > 40) ^ (frame.sex == "M")).astype(int).to_numpy()
    model = catboost.CatBoostClassifier(iterations=30, depth=3, verbose=0,
                                        cat_features=["sex"]).fit(frame, y)
    reordered = frame[["income", "sex", "age"]]
    with warnings.catch_warnings():
        warnings.simplefilter("error", SkcemWarning)
        explainer = CounterfactualExplainer(model).fit(frame)  # no false warning
    with pytest.warns(SkcemWarning, match="in another order: they are matched by name"):
        explainer = CounterfactualExplainer(model).fit(reordered)
    exp = explainer.explain(frame.iloc[:5])
    assert list(exp.explanation.columns) == list(frame.columns)
    found = exp.explanation[exp.found]
    assert (model.predict(found) != model.predict(frame.iloc[:5][exp.found])).all()


def test_an_array_with_a_categorical_column_is_fitted():
    """Found by a review: looking for text vectorizers read the columns' names, which an
    array has not: fit failed on every array with a categorical column."""
    from sklearn.ensemble import RandomForestClassifier

    from skcem import CounterfactualExplainer

    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(size=200), rng.integers(0, 4, 200)])
    y = (X[:, 0] + (X[:, 1] == 2) > 0.5).astype(int)
    model = RandomForestClassifier(20, random_state=0).fit(X, y)
    explainer = CounterfactualExplainer(model, categorical_features=[1]).fit(X)
    answer = explainer.explain(X[:2])
    assert answer.found.all()
    assert (model.predict(answer.explanation) != model.predict(X[:2])).all()


def test_an_index_out_of_range_on_a_dataframe_gets_the_message_of_an_array():
    pd = pytest.importorskip("pandas")
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(60, 3)), columns=["a", "b", "c"])
    model = LogisticRegression().fit(X, (X["a"] > 0).astype(int))
    for name in ("immutable_features", "categorical_features"):
        with pytest.raises(ValueError, match=rf"`{name}` holds feature indices out of range "
                                             r"for 3 features: \[7\]"):
            CounterfactualExplainer(model, **{name: [7]}).fit(X)


@pytest.fixture(scope="module")
def frame_pipeline():
    pd = pytest.importorskip("pandas")
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"age": rng.integers(18, 80, 120).astype(float),
                      "job": rng.choice(["a", "b", "c"], 120)})
    y = ((X["age"] > 45) ^ (X["job"] == "a")).astype(int)
    model = make_pipeline(make_column_transformer((StandardScaler(), ["age"]),
                                                  (OneHotEncoder(), ["job"])),
                          LogisticRegression()).fit(X, y)
    return X, model


def test_a_model_that_fails_on_an_array_or_on_a_text_cell_is_told_apart(frame_pipeline):
    X, model = frame_pipeline
    # fitted on a DataFrame, given an array: the columns are what is missing, not an encoder
    from sklearn.base import clone
    from sklearn.svm import LinearSVC

    scores_only = clone(model).set_params(logisticregression=LinearSVC()).fit(
        X, model.predict(X))  # no predict_proba: its scores tell
    for fitted in (model, scores_only):
        with pytest.raises(ValueError, match=r"fitted on a DataFrame and fails on X given as "
                                             r"an array.*DataFrame with its columns "
                                             r"\['age', 'job'\]"):
            CounterfactualExplainer(fitted).fit(X.to_numpy())
    # a numeric column holding text: that column is named, not every text column
    aged = X.astype({"age": object})
    aged["age"] = "old"
    with pytest.raises(ValueError, match=r"X has categorical columns \['age'\], but "
                                         r"`estimator` fails on them \(could not convert "
                                         r"string to float: 'old'\)"):
        CounterfactualExplainer(model).fit(aged)
    # an array the model takes (columns picked by position), with a category it never met:
    # the category is the matter, not the array
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    by_position = make_pipeline(make_column_transformer((StandardScaler(), [0]),
                                                        (OneHotEncoder(), [1])),
                                LogisticRegression()).fit(X, model.predict(X))
    assert CounterfactualExplainer(by_position).fit(X.to_numpy()).n_features_in_ == 2
    unseen = X.to_numpy()
    unseen[0, 1] = "zzz"
    with pytest.raises(ValueError, match=r"categorical columns \['1'\], but `estimator` fails "
                                         r"on them \(Found unknown categories \['zzz'\]"):
        CounterfactualExplainer(by_position).fit(unseen)


def test_a_constant_column_is_no_difference_in_scale(iris, iris_model):
    from sklearn.linear_model import LogisticRegression

    X, y = iris
    X = np.c_[X, np.full(len(X), 0.1)]  # its float std is 1e-17, not 0
    assert 0 < X[:, -1].std() < 1e-15
    model = LogisticRegression(max_iter=500).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SkcemWarning)
        CounterfactualExplainer(model).fit(X)
    X[:, 0] *= 1e5  # a real difference of scales is still told
    with pytest.warns(SkcemWarning, match="differ in scale"):
        CounterfactualExplainer(LogisticRegression(max_iter=500).fit(X, y)).fit(X)


def test_metrics_check_their_feature_range_and_tolerance(iris, iris_model):
    from skcem import metrics

    X, _ = iris
    explainer = CounterfactualExplainer(iris_model).fit(X)
    exp = explainer.explain(X[:3])
    for bad, message in [(None, "must be a pair"), (1.0, "must be a pair"),
                         ((0, 1, 2), "must be a pair"),
                         ((np.zeros(3), np.ones(3)), "must be a pair"),
                         ((np.ones(4), np.zeros(4)), "has a lower bound above its upper"),
                         ((np.nan, 1.0), "holds NaN")]:
        with pytest.raises(ValueError, match=rf"`feature_range` {message}"):
            metrics.proximity(exp, bad)
    np.testing.assert_allclose(metrics.proximity(exp, (-3.0, 3.0)),
                               metrics.proximity(exp, (np.full(4, -3.0), np.full(4, 3.0))))
    for atol in (-1, np.nan, "a"):
        with pytest.raises(ValueError, match="`atol` must be a finite number, 0 or more"):
            metrics.n_changed(exp, atol)
        with pytest.raises(ValueError, match="`atol` must be a finite number, 0 or more"):
            exp.changes(atol)


def test_a_functions_labels_of_mixed_kinds_are_named():
    """Found by a user: a plain function with labels 0, "one", "two" failed in numpy's
    words ('<' not supported between instances of 'str' and 'int')."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    classes = np.digitize(X[:, 0] + X[:, 1], [-0.7, 0.7])
    model = LogisticRegression().fit(X, classes)
    labels = np.array([[0, "one", "two"][k] for k in classes], dtype=object)
    with pytest.raises(ValueError, match=r"`y` mixes labels of kinds \['int', 'str'\]"):
        CounterfactualExplainer(model.predict_proba).fit(X, labels)


def test_a_dataframe_of_sparse_columns_gets_one_line():
    """Found by a user: pd.DataFrame.sparse.from_spmatrix given to fit raised "Cannot
    interpret 'Sparse[float64, 0.0]' as a data type" from inside skcem."""
    import pandas as pd
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression

    from skcem import GradientSimilarityExplainer

    matrix = sparse.random(200, 30, density=0.1, format="csr", random_state=0)
    y = (matrix[:, :5].sum(axis=1).A1 > matrix[:, 5:10].sum(axis=1).A1).astype(int)
    frame = pd.DataFrame.sparse.from_spmatrix(matrix, columns=[f"f{i}" for i in range(30)])
    model = LogisticRegression().fit(frame, y)
    for explainer in (CEMExplainer(model), CounterfactualExplainer(model),
                      GradientSimilarityExplainer(model)):
        with pytest.raises(ValueError, match=r"X has 30 pandas sparse columns \(such as 'f0'\)"
                                             r".* X.sparse.to_dense\(\)"):
            explainer.fit(frame, y)
    dense = frame.sparse.to_dense()
    explained = CounterfactualExplainer(model).fit(dense).explain(dense.iloc[:3])
    assert explained.found.all()
    with pytest.raises(ValueError, match="pandas sparse columns"):
        CounterfactualExplainer(model).fit(dense).explain(frame.iloc[:3])


@pytest.mark.parametrize("Explainer", [CEMExplainer, CounterfactualExplainer,
                                       GradientSimilarityExplainer])
def test_a_models_class_given_for_the_model_gets_one_line(iris, Explainer):
    """Found by a user: CEMExplainer(nn.Linear) took the class for a function of rows and
    failed inside it ("Linear.__init__() missing 1 required positional argument")."""
    from sklearn.linear_model import LogisticRegression

    X, y = iris
    # (scikit-learn's own check says it first for its estimators' classes in similarity)
    with pytest.raises(TypeError, match=r"`estimator` is the class LogisticRegression, not a "
                                        r"model: give an instance of it "
                                        r"\(LogisticRegression\(...\)|got estimator class "
                                        r"instead \(LogisticRegression\)"):
        Explainer(LogisticRegression).fit(X, y)
    with pytest.raises(TypeError, match=r"`estimator` is the class Plain, not a model"):
        Explainer(type("Plain", (), {"__call__": lambda self, rows: rows})).fit(X, y)
