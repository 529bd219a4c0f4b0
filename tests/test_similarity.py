import pickle
import tracemalloc
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import DataConversionWarning
from sklearn.linear_model import (ARDRegression, BayesianRidge, ElasticNetCV, Lasso, LassoLars,
                                  LinearRegression, LogisticRegression, MultiTaskLasso,
                                  OrthogonalMatchingPursuit, Perceptron, Ridge, RidgeClassifier,
                                  RidgeClassifierCV, RidgeCV, SGDClassifier, SGDRegressor)
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from sklearn.utils.estimator_checks import parametrize_with_checks

from skcem import GradientSimilarityExplainer, SkcemWarning
from skcem._param_grads import make_param_gradients
from skcem._similarity import similarity


def _parameters(model):
    """The model's parameter arrays in skcem's flattening order (weights before intercepts)."""
    if hasattr(model, "coefs_"):
        arrays = []
        for W, b in zip(model.coefs_, model.intercepts_):
            arrays += [W, b]
        return arrays
    if np.ndim(model.intercept_) == 0:  # a scalar cannot be perturbed in place
        model.intercept_ = np.atleast_1d(model.intercept_).astype(float)
    return [model.coef_, model.intercept_] if model.fit_intercept else [model.coef_]


def _loss(model, X, y):
    """Per-example loss through scikit-learn's own predictions (for a one-vs-rest
    SGDClassifier of several classes, its training loss: the classes' binary log losses;
    for a margin loss, that loss of its decision function on targets ±1, summed over its
    one-vs-rest classes)."""
    margin = "squared_error" if isinstance(model, (RidgeClassifier, RidgeClassifierCV)) else \
        getattr(model, "loss", None) if isinstance(model, (LinearSVC, SGDClassifier,
                                                           Perceptron)) else None
    if margin in ("hinge", "squared_hinge", "perceptron", "squared_error"):
        z = model.decision_function(X).reshape(len(X), -1)
        classes = model.classes_[1:] if z.shape[1] == 1 else model.classes_
        t = np.where(classes[None, :] == np.asarray(y)[:, None], 1.0, -1.0)
        per_class = {"hinge": np.maximum(0, 1 - t * z),
                     "squared_hinge": np.maximum(0, 1 - t * z) ** 2,
                     "perceptron": np.maximum(0, -t * z),
                     "squared_error": (z - t) ** 2}[margin]
        return per_class.sum(axis=1)
    if isinstance(model, SGDClassifier) and len(model.classes_) > 2:
        p = 1 / (1 + np.exp(-model.decision_function(X)))
        own = model.classes_[None, :] == np.asarray(y)[:, None]
        return -np.sum(np.log(np.where(own, p, 1 - p)), axis=1)
    if hasattr(model, "classes_"):
        proba = model.predict_proba(X)
        return -np.log(proba[np.arange(len(X)), np.searchsorted(model.classes_, y)])
    pred = model.predict(X).reshape(len(X), -1)
    return np.mean((pred - np.asarray(y).reshape(len(X), -1)) ** 2, axis=1)


def _finite_difference_grads(model, X, y, h=1e-6):
    columns = []
    for array in _parameters(model):
        for index in np.ndindex(array.shape):  # row-major, perturbing the model in place
            array[index] += h
            up = _loss(model, X, y)
            array[index] -= 2 * h
            down = _loss(model, X, y)
            array[index] += h
            columns.append((up - down) / (2 * h))
    return np.stack(columns, axis=1)


def _models(digits):
    X, y = digits
    X, y = X[:300], y[:300]
    y_reg = X[:, 20] * 2 + X[:, 35]
    y_two = np.column_stack([y_reg, X[:, 10]])
    binary = y % 2
    return [
        (LogisticRegression(max_iter=500).fit(X, y), X, y),
        (LogisticRegression(max_iter=500).fit(X, binary), X, binary),
        (LinearRegression().fit(X, y_reg), X, y_reg),
        (Ridge(fit_intercept=False).fit(X, y_two), X, y_two),
        (SGDRegressor(random_state=0).fit(X, y_reg), X, y_reg),
        (SGDClassifier(loss="log_loss", random_state=0).fit(X, y), X, y),
        (SGDClassifier(loss="log_loss", random_state=0).fit(X, binary), X, binary),
        (MLPClassifier((8,), max_iter=200, random_state=0).fit(X, y), X, y),
        (MLPClassifier((6, 5), activation="tanh", max_iter=200, random_state=0).fit(X, binary),
         X, binary),
        (MLPRegressor(hidden_layer_sizes=(7,), activation="logistic", max_iter=200,
                      random_state=0).fit(X, y_two), X, y_two),
        # margin losses: one-vs-rest on targets ±1
        (LinearSVC().fit(X, y), X, y),
        (LinearSVC(loss="hinge", dual=True, max_iter=5000).fit(X, binary), X, binary),
        (RidgeClassifier().fit(X, y), X, y),
        (RidgeClassifier(fit_intercept=False).fit(X, binary), X, binary),
        (SGDClassifier(random_state=0).fit(X, y), X, y),
        (SGDClassifier(loss="perceptron", random_state=0).fit(X, binary), X, binary),
        (SGDClassifier(loss="squared_hinge", random_state=0).fit(X, binary), X, binary),
        (Perceptron(random_state=0).fit(X, y), X, y),
        (RidgeClassifierCV().fit(X, binary), X, binary),
        # linear regressors fitted to the squared error, their penalties aside
        (RidgeCV().fit(X, y_two), X, y_two),
        (Lasso(alpha=0.1).fit(X, y_reg), X, y_reg),
        (ElasticNetCV(cv=3).fit(X, y_reg), X, y_reg),
        (MultiTaskLasso(alpha=0.1).fit(X, y_two), X, y_two),
        (LassoLars(alpha=0.01).fit(X, y_reg), X, y_reg),
        (OrthogonalMatchingPursuit(n_nonzero_coefs=5).fit(X, y_reg), X, y_reg),
        (BayesianRidge().fit(X, y_reg), X, y_reg),
        (ARDRegression().fit(X, y_reg), X, y_reg),
    ]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_sklearn_per_example_gradients_match_finite_differences(digits):
    for model, X, y in _models(digits):
        gradients = make_param_gradients(model)
        analytic = gradients(X[:4], y[:4])
        numeric = _finite_difference_grads(model, X[:4], y[:4])
        assert analytic.shape == (4, gradients.n_params)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-4, atol=1e-6,
                                   err_msg=type(model).__name__)


@pytest.mark.parametrize("sim_fn", ["grad_dot", "grad_cos", "grad_asym_dot"])
@pytest.mark.parametrize("precompute", [False, True])
def test_scores_equal_one_at_a_time_computation(digits, digits_model, sim_fn, precompute):
    X, y = digits
    X_train, y_train, X_test = X[:100], y[:100], X[1300:1307]
    explainer = GradientSimilarityExplainer(digits_model, sim_fn=sim_fn, batch_size=16,
                                            precompute_grads=precompute).fit(X_train, y_train)
    scores = explainer.transform(X_test)
    gradients = make_param_gradients(digits_model)
    expected = np.empty_like(scores)
    target = digits_model.predict(X_test)
    for i in range(len(X_test)):
        g_a = gradients(X_test[i:i + 1], target[i:i + 1])[0]
        for j in range(len(X_train)):
            g_b = gradients(X_train[j:j + 1], y_train[j:j + 1])[0]
            dot = g_a @ g_b
            expected[i, j] = {
                "grad_dot": dot,
                "grad_cos": dot / (np.linalg.norm(g_a) * np.linalg.norm(g_b)),
                "grad_asym_dot": dot / (g_b @ g_b + 1e-7),
            }[sim_fn]
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-12)


def test_grad_cos_of_an_instance_with_itself_is_one(digits, digits_model):
    X, y = digits
    explainer = GradientSimilarityExplainer(digits_model, sim_fn="grad_cos").fit(X[:50], y[:50])
    scores = explainer.explain(X[:50], y[:50]).scores
    # the exact cosine: 1 however small the gradient (confident instances have tiny ones)
    sq_norms = np.sum(make_param_gradients(digits_model)(X[:50], y[:50]) ** 2, axis=1)
    assert np.sum(sq_norms < 1e-6) >= 5, "the test needs confidently fitted instances"
    np.testing.assert_allclose(np.diag(scores)[sq_norms > 0], 1.0, rtol=1e-9)
    assert np.all(scores <= 1 + 1e-9) and np.all(scores >= -1 - 1e-9)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_rows_whose_probability_rounds_to_one_keep_their_loss_gradient():
    """Found by a user: p - 1 computed from predict_proba is exactly 0 past a decision
    value of 37, so a confidently fitted row's gradient was 0 (binary) or lost its own
    class's component (softmax), and grad_cos ranked it last against itself."""
    from scipy.special import expit
    from sklearn.linear_model import SGDClassifier
    from sklearn.neural_network import MLPClassifier

    from sklearn.datasets import load_breast_cancer
    from sklearn.preprocessing import StandardScaler

    X, binary = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    lr = LogisticRegression(C=1e4, max_iter=10000).fit(X, binary)
    # decision values up to 200 whatever the solver's float rounding (its margins differ
    # by machine and BLAS threads): past about 350 a gradient's squared norm underflows
    scale = 200.0 / np.abs(lr.decision_function(X)).max()
    lr.coef_ *= scale
    lr.intercept_ *= scale
    z = lr.decision_function(X)
    assert np.sum(np.abs(z) > 40) >= 20, "the test needs saturated rows"
    residual = np.where(binary == 1, -expit(-z), expit(z))  # p - y without cancellation
    expected = np.hstack([residual[:, None] * X, residual[:, None]])
    np.testing.assert_allclose(make_param_gradients(lr)(X, binary), expected, rtol=1e-12)
    # three classes, one saturated row of a known softmax: p - onehot = (-2e, e, e) / (1 + 2e)
    three = LogisticRegression(max_iter=2000).fit(X[:300], np.arange(300) % 3)
    three.coef_[:] = 0.0
    three.intercept_[:] = [50.0, 0.0, 0.0]
    small = np.exp(-50.0) / (1 + 2 * np.exp(-50.0))
    delta = make_param_gradients(three)(X[:1], [0])[0, -3:]
    np.testing.assert_allclose(delta, [-2 * small, small, small], rtol=1e-12)
    for model in (lr, SGDClassifier(loss="log_loss", random_state=0).fit(X, binary),
                  MLPClassifier((16,), max_iter=500, random_state=0).fit(X, binary)):
        explainer = GradientSimilarityExplainer(model, sim_fn="grad_cos").fit(X[:300],
                                                                            binary[:300])
        assert np.all(explainer.self_influence() > 0), type(model).__name__
        ranked = explainer.explain(X[:300], binary[:300]).ordered_indices[:, 0]
        np.testing.assert_array_equal(ranked, np.arange(300), err_msg=type(model).__name__)


def test_classification_targets_default_to_predictions(digits, digits_model):
    X, y = digits
    explainer = GradientSimilarityExplainer(digits_model).fit(X[:80], y[:80])
    default = explainer.explain(X[1300:1305])
    given = explainer.explain(X[1300:1305], digits_model.predict(X[1300:1305]))
    np.testing.assert_array_equal(default.target, digits_model.predict(X[1300:1305]))
    np.testing.assert_allclose(default.scores, given.scores)
    other = explainer.explain(X[1300:1305], (digits_model.predict(X[1300:1305]) + 1) % 10)
    assert not np.allclose(other.scores, default.scores)


def test_explanation_ranks_and_neighbors(digits, digits_model):
    import json

    X, y = digits
    explainer = GradientSimilarityExplainer(digits_model, sim_fn="grad_cos").fit(X[:60], y[:60])
    exp = explainer.explain(X[:3])
    order = exp.ordered_indices
    assert np.all(np.diff(np.take_along_axis(exp.scores, order, axis=1), axis=1) <= 0)
    np.testing.assert_array_equal(exp.most_similar, X[:60][order[:, 0]])
    np.testing.assert_array_equal(exp.least_similar, X[:60][order[:, -1]])
    scores, indices = explainer.kneighbors(X[:3], n_neighbors=4)
    np.testing.assert_array_equal(indices, order[:, :4])
    np.testing.assert_allclose(scores, np.take_along_axis(exp.scores, order[:, :4], axis=1))
    np.testing.assert_array_equal(explainer.kneighbors(X[:3], 2, return_scores=False),
                                  order[:, :2])
    assert json.loads(json.dumps(exp.to_dict()))["sim_fn"] == "grad_cos"
    loaded = json.loads(exp.to_json())  # as an Explanation's
    np.testing.assert_allclose(loaded["scores"], exp.scores)
    assert loaded["ordered_indices"] == exp.ordered_indices.tolist()


def test_regression_needs_targets_at_explain_time(digits):
    X, _ = digits
    y = X[:, 20] * 2 + X[:, 35]
    explainer = GradientSimilarityExplainer(Ridge(), task="regression").fit(X[:100], y[:100])
    for call in (explainer.transform, explainer.kneighbors, explainer.self_influence):
        with pytest.raises(ValueError, match=r"pass y \(explain\(X, y\), kneighbors\(X, "
                                             r"y=y\), self_influence\(X, y\)\)"):
            call(X[:3])
    assert explainer.kneighbors(X[:3], 2, y=y[:3])[1].shape == (3, 2)
    # targets that are no finite numbers (found by a trial: NaN scores and neighbours)
    for bad, said in ((np.nan, "NaN or infinite"), (np.inf, "NaN or infinite"),
                      ("a", "values that are not numbers, such as 'a'")):
        targets = y[:3].astype(object)
        targets[1] = bad
        for call in (lambda t: explainer.kneighbors(X[:3], 2, y=t),
                     lambda t: explainer.explain(X[:3], t),
                     lambda t: explainer.self_influence(X[:3], t)):
            with pytest.raises(ValueError, match=f"`y` holds {said}"):
                call(targets)
    exp = explainer.explain(X[:3], y[:3])
    assert exp.scores.shape == (3, 100)
    # fit_transform scores the training set at its own targets.
    regression = GradientSimilarityExplainer(Ridge(), task="regression")
    scores = regression.fit_transform(X[:100], y[:100])
    np.testing.assert_allclose(scores, explainer.explain(X[:100], y[:100]).scores)


def test_a_regressor_needs_task_regression_and_a_classifier_refuses_it(digits):
    X, _ = digits
    y = X[:, 20] * 2 + X[:, 35]
    # The targets would default to the regressor's own predictions: all scores 0.
    with pytest.raises(ValueError, match=r"is a regressor \(Ridge\): set task='regression'"):
        GradientSimilarityExplainer(Ridge().fit(X[:100], y[:100])).fit(X[:100], y[:100])
    # ... and a classifier refuses it: its gradients are its cross-entropy's whatever the task
    labels = (y > np.median(y)).astype(int)
    classifier = LogisticRegression(max_iter=500).fit(X[:100], labels[:100])
    unfitted = LogisticRegression(max_iter=1)
    # said before labels given as numbers (found by a user: "labels that the fitted
    # estimator does not know: [0.0, 1.0]") and before an unfitted one is fitted
    for targets in (labels[:100], labels[:100].astype(float)):
        for model in (classifier, unfitted):
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                with pytest.raises(ValueError, match=r"task='regression', but `estimator` is "
                                                     r"a classifier \(LogisticRegression\)"):
                    GradientSimilarityExplainer(model, task="regression").fit(X[:100], targets)
    assert not hasattr(unfitted, "coef_")


def test_a_pipeline_is_its_last_step_on_the_rows_of_the_others(digits):
    """Found by a user: a Pipeline (a scaler and a LogisticRegression) was refused."""
    pd = pytest.importorskip("pandas")
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.preprocessing import OneHotEncoder

    X, y = digits
    X, y = X[:300], y[:300]
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    rows = pipe[:-1].transform(X)
    for sim_fn in ("grad_dot", "grad_cos"):
        ours = GradientSimilarityExplainer(pipe, sim_fn=sim_fn).fit(X[:200], y[:200])
        last = GradientSimilarityExplainer(pipe[-1], sim_fn=sim_fn).fit(rows[:200], y[:200])
        np.testing.assert_allclose(ours.explain(X[250:260], y[250:260]).scores,
                                   last.explain(rows[250:260], y[250:260]).scores, rtol=1e-12)
        np.testing.assert_array_equal(ours.transform(X[250:260]), last.transform(rows[250:260]))
    # columns picked by name in a DataFrame, a sparse one-hot encoding, fitted here
    frame = pd.DataFrame(X[:, :6], columns=list("abcdef")).assign(kind=np.round(4 * X[:, 20]))
    model = make_pipeline(make_column_transformer((OneHotEncoder(), ["kind"]),
                                                  remainder=StandardScaler(),
                                                  sparse_threshold=1.0),
                          LogisticRegression(max_iter=500))
    explainer = GradientSimilarityExplainer(model).fit(frame.iloc[:200], y[:200])
    fitted = explainer.estimator_
    encoded = fitted[:-1].transform(frame).toarray()
    expected = GradientSimilarityExplainer(fitted[-1]).fit(encoded[:200], y[:200])
    np.testing.assert_allclose(explainer.explain(frame.iloc[250:255], y[250:255]).scores,
                               expected.explain(encoded[250:255], y[250:255]).scores,
                               rtol=1e-12)
    forest = make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=3))
    with pytest.raises(TypeError, match="or a Pipeline ending in one.*got a Pipeline ending in "
                                        "RandomForestClassifier"):
        GradientSimilarityExplainer(forest).fit(X[:50], y[:50])


def test_a_pipelines_steps_transform_many_batches_at_once(digits):
    """Found by a user: every batch of 64 training rows went through the Pipeline's earlier
    steps alone; a ColumnTransformer's cost per call made 20,000 Adult rows 10-25 times as
    slow as transforming them at once. The same scores, from a few calls."""
    from sklearn.preprocessing import FunctionTransformer

    X, y = digits
    X, y = X[:500], y[:500]
    calls = []

    def scaled(rows):
        calls.append(len(rows))
        return rows / 16.0

    pipe = make_pipeline(FunctionTransformer(scaled), LogisticRegression(max_iter=300))
    pipe.fit(X[:400], y[:400])
    last = GradientSimilarityExplainer(pipe[-1], batch_size=16).fit(X[:400] / 16.0, y[:400])
    for precompute, n_components in ((False, None), (True, None), (False, 8)):
        explainer = GradientSimilarityExplainer(pipe, batch_size=16, precompute_grads=precompute,
                                                n_components=n_components, random_state=0)
        explainer.fit(X[:400], y[:400])
        expected = last.set_params(precompute_grads=precompute, n_components=n_components,
                                   random_state=0).fit(X[:400] / 16.0, y[:400])
        del calls[:]
        np.testing.assert_allclose(explainer.explain(X[400:], y[400:]).scores,
                                   expected.explain(X[400:] / 16.0, y[400:]).scores, rtol=1e-12)
        np.testing.assert_allclose(explainer.self_influence(), expected.self_influence(),
                                   rtol=1e-12)
        # the test rows' first batch (which sizes their chunks), then the other 84 at once;
        # the 400 training rows at once (explain's, unless stored; self_influence's)
        assert sorted(calls) == [16, 84] + [400] * (2 - precompute), calls


def test_sgd_classifier_of_another_loss_is_refused_before_it_is_fitted(digits):
    X, y = digits
    with pytest.raises(TypeError, match=r"SGDClassifier\(loss in 'log_loss', 'hinge', "
                                        r"'squared_hinge', 'perceptron'\).*got SGDClassifier"):
        GradientSimilarityExplainer(SGDClassifier(loss="huber")).fit(X[:100], y[:100])


def test_fit_transform_of_a_classifier_is_fit_then_transform(digits, digits_model):
    X, y = digits
    explainer = GradientSimilarityExplainer(digits_model)
    scores = explainer.fit_transform(X[:50], y[:50])
    np.testing.assert_allclose(scores, explainer.transform(X[:50]))


@parametrize_with_checks([GradientSimilarityExplainer(),
                          GradientSimilarityExplainer(sim_fn="grad_cos", precompute_grads=True),
                          GradientSimilarityExplainer(n_components=8, random_state=0,
                                                      precompute_grads=True)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_clone_pickle_pipeline(digits, digits_model):
    X, y = digits
    explainer = GradientSimilarityExplainer(digits_model, sim_fn="grad_cos")
    assert clone(explainer).estimator is digits_model
    explainer.fit(X[:50], y[:50])
    restored = pickle.loads(pickle.dumps(explainer))
    np.testing.assert_allclose(restored.transform(X[:2]), explainer.transform(X[:2]))
    pipe = make_pipeline(StandardScaler(), GradientSimilarityExplainer(
        MLPClassifier((8,), max_iter=300, random_state=0))).fit(X[:200], y[:200])
    assert pipe.transform(X[:3]).shape == (3, 200)


@pytest.mark.parametrize("params, fit_y, match", [
    ({"sim_fn": "grad_l2"}, True, "'sim_fn' parameter"),
    ({"task": "ranking"}, True, "'task' parameter"),
    ({"n_components": 0}, True, "'n_components' parameter"),
    ({"n_components": True}, True, "`n_components` is a number of random projections"),
    ({"input_shape": (8, 8)}, True, "`input_shape` applies to Keras and PyTorch models; got "
                                    r"input_shape=\(8, 8\) with MLPClassifier"),
    ({"n_jobs": "all"}, True, "'n_jobs' parameter"),
    ({"loss": "hinge"}, True, "`loss` must be 'auto' for scikit-learn models"),
    ({}, False, "requires y to be passed"),
])
def test_bad_parameters(digits, digits_model, params, fit_y, match):
    X, y = digits
    with pytest.raises(ValueError, match=match):
        GradientSimilarityExplainer(digits_model, **params).fit(X[:20], y[:20] if fit_y else None)


def test_bad_input(digits, digits_model):
    from sklearn.svm import SVC

    X, y = digits
    explainer = GradientSimilarityExplainer(digits_model).fit(X[:20], y[:20])
    bad = X[:2].copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        explainer.transform(bad)
    with pytest.raises(ValueError, match="X has 10 features"):
        explainer.transform(X[:2, :10])
    with pytest.raises(ValueError, match="one target per row"):
        explainer.explain(X[:3], y[:2])
    with pytest.raises(ValueError, match="labels the model does not know"):
        explainer.explain(X[:2], [3, 42])
    with pytest.raises(ValueError, match="y has 19 targets for the 20 rows of X"):
        GradientSimilarityExplainer(digits_model).fit(X[:20], y[:19])
    with pytest.raises(TypeError, match="must be a Keras model, a PyTorch module or one of"):
        GradientSimilarityExplainer(SVC().fit(X[:50], y[:50])).fit(X[:50], y[:50])
    # the model's kind before its data's (found by a trial: a forest on a table with text
    # was told to encode the text, then refused)
    from sklearn.ensemble import RandomForestClassifier

    forest = RandomForestClassifier(3, random_state=0).fit(X[:50], y[:50])
    with pytest.raises(TypeError, match=r"got RandomForestClassifier: a model of trees \(or "
                                        r"neighbours\) is piecewise constant"):
        GradientSimilarityExplainer(forest).fit(np.where(X[:50] > 5, "high", "low"), y[:50])
    crammer_singer = LinearSVC(multi_class="crammer_singer").fit(X[:50], y[:50])
    with pytest.raises(TypeError, match=r'LinearSVC\(multi_class="ovr"\).*got LinearSVC'):
        GradientSimilarityExplainer(crammer_singer).fit(X[:50], y[:50])
    with pytest.raises(TypeError, match=r"SGDClassifier\(loss in 'log_loss', 'hinge', "):
        GradientSimilarityExplainer(SGDClassifier(loss="huber").fit(X[:50], y[:50])).fit(
            X[:50], y[:50])
    with pytest.raises(ValueError, match="n_neighbors"):
        explainer.kneighbors(X[:2], n_neighbors=0)


def test_on_the_fly_gradients_keep_memory_at_batch_scale(digits, digits_model):
    X, y = digits
    n_train = 1000
    n_params = make_param_gradients(digits_model).n_params
    all_grads_bytes = n_train * n_params * 8
    peaks = {}
    for precompute in (False, True):
        explainer = GradientSimilarityExplainer(digits_model, batch_size=32,
                                                precompute_grads=precompute)
        tracemalloc.start()
        explainer.fit(X[:n_train], y[:n_train]).transform(X[1300:1302])
        peaks[precompute] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    # precomputed gradients are kept factorised: (inputs, output gradients) of each layer
    assert peaks[True] > explainer.grads_train_.nbytes
    assert explainer.grads_train_.nbytes < 0.1 * all_grads_bytes
    assert peaks[False] < 0.25 * all_grads_bytes


def _keras_model():
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(12, activation="tanh"),
        keras.layers.Dense(10, activation="softmax"),
    ])


@pytest.mark.parametrize("kind", ["mlp", "logistic", "keras"])
def test_factorised_scores_equal_materialised_ones(digits, digits_model, kind):
    X, y = digits
    X_train, y_train, X_test = X[:150], y[:150], X[1300:1310]
    model = {"mlp": lambda: digits_model,
             "logistic": lambda: LogisticRegression(max_iter=500).fit(X[:300], y[:300]),
             "keras": _keras_model}[kind]()
    gradients = make_param_gradients(model, input_shape=(8, 8, 1) if kind == "keras" else None)
    if kind == "keras":
        assert len(gradients.dense_layers) == 2  # the Conv2D's gradients stay materialised
        X_train, X_test = X_train.astype(np.float32), X_test.astype(np.float32)
    for sim_fn in ("grad_dot", "grad_cos", "grad_asym_dot"):
        explainer = GradientSimilarityExplainer(model, sim_fn=sim_fn, batch_size=32,
                                                precompute_grads=True).fit(X_train, y_train)
        target = explainer.explain(X_test).target
        expected = similarity(gradients(X_test, target).astype(float),
                              gradients(X_train, explainer.y_train_).astype(float), sim_fn)
        np.testing.assert_allclose(explainer.transform(X_test), expected, rtol=1e-4,
                                   atol=1e-6 * np.abs(expected).max(), err_msg=sim_fn)
        on_the_fly = clone(explainer).set_params(precompute_grads=False).fit(X_train, y_train)
        # Keras computes in float32, whose kernels may round differently for the stored
        # and the on-the-fly batches.
        rtol = 1e-5 if kind == "keras" else 1e-9
        np.testing.assert_allclose(on_the_fly.transform(X_test), explainer.transform(X_test),
                                   rtol=rtol, atol=1e-12)


def test_tensorflow_products_by_blocks_of_rows_equal_numpy_ones(monkeypatch):
    pytest.importorskip("tensorflow")
    from skcem._param_grads import _keras

    monkeypatch.setattr(_keras, "_COPY_BYTES", 3 * 5 * 4)  # 3 rows of 5 float32 at a time
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((4, 5)), rng.standard_normal((11, 5))
    for dtype in (np.float32, np.float64):
        np.testing.assert_allclose(_keras.tensorflow_matmul_t(x.astype(dtype), y.astype(dtype)),
                                   x @ y.T, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["mlp", "keras"])
@pytest.mark.parametrize("batches", [1, 2, None])  # test batches a chunk holds; None: all
def test_test_rows_in_chunks_give_the_exact_scores(digits, digits_model, kind, batches,
                                                   monkeypatch):
    import skcem._similarity

    X, y = digits
    X_train, y_train, X_test = X[:45], y[:45], X[1300:1321]  # 6 blocks, 3 test batches of 8
    model = digits_model if kind == "mlp" else _keras_model()
    if kind == "keras":
        X_train, X_test = X_train.astype(np.float32), X_test.astype(np.float32)
    explainer = GradientSimilarityExplainer(model, sim_fn="grad_cos", batch_size=8)
    explainer.fit(X_train, y_train)
    if batches is not None:
        # the budget of that many batches of this model's test gradients
        first = explainer._fused_test_factors(X_test[:8], np.full(8, -1)) \
            if explainer._fused_products() else explainer._grads(X_test[:8], y[1300:1308])
        monkeypatch.setattr(skcem._similarity, "_TEST_GRADIENT_BUDGET",
                            batches * skcem._similarity._nbytes(first) + 1)
    sizes = []
    if explainer._fused_products():  # the test gradients too are computed batch by batch
        test_factors = explainer._gradients.test_factors
        monkeypatch.setattr(explainer._gradients, "test_factors",
                            lambda X, y: sizes.append(len(X)) or test_factors(X, y))
    target = explainer.explain(X_test).target
    assert max(sizes, default=0) <= 8
    gradients = make_param_gradients(model, input_shape=(8, 8, 1) if kind == "keras" else None)
    expected = similarity(gradients(X_test, target).astype(float),
                          gradients(X_train, explainer.y_train_).astype(float), "grad_cos")
    np.testing.assert_allclose(explainer.transform(X_test), expected, rtol=1e-4,
                               atol=1e-6 * np.abs(expected).max())
    scores, indices = explainer.kneighbors(X_test, n_neighbors=3)
    np.testing.assert_allclose(scores, np.sort(expected, axis=1)[:, ::-1][:, :3], rtol=1e-4)


@pytest.mark.parametrize("precompute", [False, True])
def test_kneighbors_by_blocks_equals_sorting_all_scores(digits, digits_model, precompute,
                                                        monkeypatch):
    import skcem._similarity

    monkeypatch.setattr(skcem._similarity, "_TRAIN_BLOCK", 7)
    X, y = digits
    # duplicated training rows tie: ranked by index, as a stable sort of all the scores
    X_train, y_train = np.vstack([X[:40], X[:40]]), np.concatenate([y[:40], y[:40]])
    explainer = GradientSimilarityExplainer(digits_model, sim_fn="grad_cos", batch_size=9,
                                            precompute_grads=precompute).fit(X_train, y_train)
    scores = explainer.transform(X[1300:1320])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :6]
    top_scores, indices = explainer.kneighbors(X[1300:1320], n_neighbors=6)
    np.testing.assert_array_equal(indices, order)
    np.testing.assert_array_equal(top_scores, np.take_along_axis(scores, order, axis=1))


def test_kneighbors_takes_the_targets_explain_takes(digits, digits_model):
    X, y = digits
    explainer = GradientSimilarityExplainer(digits_model).fit(X[:200], y[:200])
    wrong = (digits_model.predict(X[1300:1310]) + 1) % 10
    scores, indices = explainer.kneighbors(X[1300:1310], n_neighbors=5, y=wrong)
    expected = explainer.explain(X[1300:1310], wrong).ordered_indices[:, :5]
    np.testing.assert_array_equal(indices, expected)
    # with the predictions instead, the neighbours are different ones
    assert not np.array_equal(indices, explainer.kneighbors(X[1300:1310], 5)[1])


def test_kneighbors_never_builds_all_scores(digits, digits_model):
    X, y = digits
    explainer = GradientSimilarityExplainer(digits_model, batch_size=16).fit(X[:1500], y[:1500])
    X_test = np.tile(X[1500:], (3, 1))
    all_scores_bytes = len(X_test) * 1500 * 8
    tracemalloc.start()
    explainer.kneighbors(X_test, n_neighbors=3)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 0.25 * all_scores_bytes


@pytest.mark.parametrize("kind", ["mlp", "keras"])
def test_projected_scores_are_seeded_and_converge(digits, digits_model, kind):
    X, y = digits
    model = digits_model if kind == "mlp" else _keras_model()
    X_train, y_train, X_test = X[:200], y[:200], X[1300:1320]
    exact = GradientSimilarityExplainer(model).fit(X_train, y_train).transform(X_test)
    errors = []
    for n_components in (16, 1024):  # below n_params_ (MLP 2410, Keras 1910)
        explainer = GradientSimilarityExplainer(model, n_components=n_components, random_state=0,
                                                precompute_grads=True).fit(X_train, y_train)
        assert explainer.grads_train_.shape == (200, n_components)
        scores = explainer.transform(X_test)
        errors.append(np.linalg.norm(scores - exact) / np.linalg.norm(exact))
    assert errors[1] < 0.4 * errors[0]  # the error shrinks as 1 / sqrt(n_components)
    again = GradientSimilarityExplainer(model, n_components=1024, random_state=0)
    # computed on the fly, not stored: float32 products summed in another order
    np.testing.assert_allclose(again.fit(X_train, y_train).transform(X_test), scores, rtol=1e-5,
                               atol=1e-6 * np.abs(scores).max())
    other_seed = clone(again).set_params(random_state=1).fit(X_train, y_train)
    assert not np.allclose(other_seed.transform(X_test), scores)


@pytest.mark.parametrize("n_components", [None, 32])
@pytest.mark.parametrize("precompute", [False, True])
def test_n_jobs_gives_the_scores_of_one_process(digits, digits_model, n_components, precompute):
    X, y = digits
    params = dict(sim_fn="grad_cos", batch_size=100, n_components=n_components, random_state=0,
                  precompute_grads=precompute)
    one = GradientSimilarityExplainer(digits_model, **params).fit(X[:300], y[:300])
    two = GradientSimilarityExplainer(digits_model, n_jobs=2, **params).fit(X[:300], y[:300])
    np.testing.assert_array_equal(two.transform(X[1300:1310]), one.transform(X[1300:1310]))


def _reference_gradients(gradients, model, X, y):
    """vectorized_map's per-example gradients, in the order of ``factors(X, y).toarray()``."""
    flat = gradients(X, y)
    columns = np.split(flat, np.cumsum([int(np.prod(w.shape))
                                        for w in model.trainable_weights])[:-1], axis=1)
    by_weight = {id(w): c for w, c in zip(model.trainable_weights, columns)}
    dense = [by_weight.pop(id(w)) for layer in gradients.dense_layers
             for w in (layer.kernel, layer.bias)]
    return np.hstack(dense + list(by_weight.values()))


def _conv_model(first_conv, final_activation="softmax"):
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((9, 10, 2)),
        first_conv,
        keras.layers.Conv2D(3, 2, activation="elu", padding="same"),
        keras.layers.MaxPooling2D(2, padding="same"),
        keras.layers.Dropout(0.3),
        keras.layers.Flatten(),
        keras.layers.Dense(7, activation="tanh"),
        keras.layers.Dense(5, activation=final_activation),
    ])


@pytest.mark.parametrize("conv_params", [
    dict(),
    dict(strides=2, padding="same"),
    dict(strides=(2, 3)),
    dict(dilation_rate=2, padding="same"),
    dict(strides=3, padding="same", use_bias=False, activation="tanh"),
])
@pytest.mark.parametrize("products", ["per offset", "of the patches"])
def test_conv_per_example_gradients_equal_vectorized_ones(conv_params, products, monkeypatch):
    keras = pytest.importorskip("keras")
    from skcem._param_grads import _keras

    # the layers' inputs have 2 and 4 channels: both ways for both layers
    monkeypatch.setattr(_keras, "_OFFSET_PRODUCT_CHANNELS", 1 if products == "per offset" else 99)
    conv_params = {"activation": "relu", **conv_params}
    model = _conv_model(keras.layers.Conv2D(4, (3, 2), **conv_params))
    gradients = make_param_gradients(model, input_shape=(9, 10, 2))
    assert len(gradients.conv_layers) == 2 and len(gradients.dense_layers) == 2
    X = np.random.default_rng(0).standard_normal((11, 180)).astype(np.float32)
    y = np.arange(11) % 5
    expected = _reference_gradients(gradients, model, X, y)
    np.testing.assert_allclose(gradients.factors(X, y).toarray(), expected, rtol=1e-5,
                               atol=1e-6 * np.abs(expected).max())


def test_batched_gradients_of_a_loss_object_on_logits():
    keras = pytest.importorskip("keras")
    model = _conv_model(keras.layers.Conv2D(4, 3, strides=2), final_activation=None)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    gradients = make_param_gradients(model, loss=loss, input_shape=(9, 10, 2))
    X = np.random.default_rng(1).standard_normal((6, 180)).astype(np.float32)
    y = np.arange(6) % 5
    expected = _reference_gradients(gradients, model, X, y)
    # a Loss object averages over the batch: each example must keep its own loss's gradient
    np.testing.assert_allclose(gradients.factors(X, y).toarray(), expected, rtol=1e-5,
                               atol=1e-6 * np.abs(expected).max())


def test_unsupported_conv_layers_fall_back_to_vectorized_gradients():
    keras = pytest.importorskip("keras")

    class MyConv(keras.layers.Conv2D):
        pass

    for first_conv in (MyConv(4, 3), keras.layers.DepthwiseConv2D(3)):
        model = _conv_model(first_conv)
        gradients = make_param_gradients(model, input_shape=(9, 10, 2))
        assert first_conv not in gradients.conv_layers and len(gradients.conv_layers) == 1
        X = np.random.default_rng(2).standard_normal((7, 180)).astype(np.float32)
        y = np.arange(7) % 5
        expected = _reference_gradients(gradients, model, X, y)
        np.testing.assert_allclose(gradients.factors(X, y).toarray(), expected, rtol=1e-5,
                                   atol=1e-6 * np.abs(expected).max())


def test_as_many_components_as_parameters_gives_the_exact_scores(iris, iris_model):
    X, y = iris
    exact = GradientSimilarityExplainer(iris_model).fit(X, y)
    with pytest.warns(UserWarning, match=r"n_components \(64\) is not below.*n_params_=15"):
        wide = GradientSimilarityExplainer(iris_model, n_components=64, random_state=0).fit(X, y)
    assert wide.projection_ is None
    np.testing.assert_allclose(wide.transform(X[:5]), exact.transform(X[:5]))


def test_keras_model_rebuilt_by_pickle_or_file_keeps_its_layout(digits, tmp_path):
    """Unpickling or loading a Keras model calls its layers again while it is rebuilt (their
    ``_inbound_nodes`` grow): its dense layers must still be factorised, and the same way as
    the original's, since joblib workers (``n_jobs``) and pickled explainers use such copies
    beside factors computed on the original. Before, the workers' training factors were
    paired with the wrong layers: silently wrong scores."""
    import pickle

    keras = pytest.importorskip("keras")
    from skcem._param_grads._keras_layers import factorisable_layers

    X, y = digits
    model = _keras_model()
    model.save(tmp_path / "model.keras")
    copies = {"pickled": pickle.loads(pickle.dumps(model)),
              "loaded": keras.models.load_model(tmp_path / "model.keras")}
    names = tuple([layer.name for layer in kind] for kind in factorisable_layers(model))
    assert (len(names[0]), len(names[1])) == (2, 1)
    images = X[:40].astype(np.float32)
    expected = GradientSimilarityExplainer(model, precompute_grads=True).fit(
        images, y[:40]).transform(images[:5])
    for kind, copy in copies.items():
        assert tuple([layer.name for layer in layers]
                     for layers in factorisable_layers(copy)) == names, kind
        explainer = GradientSimilarityExplainer(copy, precompute_grads=True).fit(images, y[:40])
        again = pickle.loads(pickle.dumps(explainer))  # crashed: test factors of another layout
        np.testing.assert_allclose(again.transform(images[:5]), expected, rtol=1e-5,
                                   atol=1e-6 * np.abs(expected).max(), err_msg=kind)


def test_factors_of_two_layouts_are_refused():
    from skcem._param_grads._factors import GradientFactors

    rng = np.random.default_rng(0)
    three = GradientFactors([(rng.normal(size=(4, 5)), rng.normal(size=(4, 4)))] * 3)
    one = GradientFactors([(rng.normal(size=(6, 5)), rng.normal(size=(6, 4)))],
                          rng.normal(size=(6, 40)))
    with pytest.raises(RuntimeError, match="two layouts"):
        three.dot(one)


def test_y_of_another_length_is_named():
    # scikit-learn's "inconsistent numbers of samples: [50, 10]" named neither
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(X, y)
    from skcem import CounterfactualExplainer

    for explainer in (GradientSimilarityExplainer(model), CounterfactualExplainer()):
        with pytest.raises(ValueError, match="y has 10 targets for the 50 rows of X: one "
                                             "target per row"):
            explainer.fit(X[:50], y[:10])


def test_labels_the_model_does_not_know_are_shown_its_classes():
    """Found by a user: the message repeated the unknown labels only."""
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    model = LogisticRegression(max_iter=1000).fit(X, names)
    explainer = GradientSimilarityExplainer(model).fit(X, names)
    with pytest.raises(ValueError, match=r"does not know: \[0, 2\]; classes are "
                                         r"\['setosa', 'versicolor', 'virginica'\]"):
        explainer.kneighbors(X[:2], 3, y=[0, 2])


def test_explain_y_in_a_series_follows_the_rows_of_a_dataframe(digits, digits_model):
    pd = pytest.importorskip("pandas")
    X, y = digits
    frame = pd.DataFrame(X[:300], columns=[f"p{j}" for j in range(X.shape[1])])
    explainer = GradientSimilarityExplainer(digits_model).fit(frame, y[:300])
    rows = frame.iloc[[9, 3, 5]]
    labels = pd.Series(y[:300], index=frame.index)
    shuffled = explainer.explain(rows, labels.sort_index(ascending=False))
    ordered = explainer.explain(rows, y[[9, 3, 5]])
    np.testing.assert_array_equal(shuffled.scores, ordered.scores)


def test_test_rows_with_a_zero_loss_gradient_are_named(iris):
    # Their scores were all 0 and kneighbors returned the first training rows, silently.
    import copy

    from sklearn.linear_model import LogisticRegression

    X, y = iris
    model = LogisticRegression(max_iter=1000).fit(X, y)
    saturated = copy.deepcopy(model)
    saturated.coef_ *= 1e3  # probabilities of exactly 0 and 1 on most rows
    saturated.intercept_ *= 1e3
    proba = saturated.predict_proba(X[::10])
    zero = np.all(proba == (proba == proba.max(axis=1, keepdims=True)), axis=1)
    assert 0 < zero.sum() < len(zero)
    explainer = GradientSimilarityExplainer(saturated, sim_fn="grad_cos").fit(X, y)
    with pytest.warns(SkcemWarning, match=f"{zero.sum()} of {len(zero)} test rows have a loss "
                                          "gradient of exactly zero"):
        scores = explainer.transform(X[::10])
    assert np.all(scores[zero] == 0) and np.all(np.abs(scores[~zero]).max(axis=1) > 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SkcemWarning)
        GradientSimilarityExplainer(model).fit(X, y).kneighbors(X[::10])


def test_reordered_columns_are_matched_by_name_with_a_warning(iris):
    # as the other explainers do (the similarity explainer reordered them silently)
    pd = pytest.importorskip("pandas")
    X, y = iris
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    model = LogisticRegression(max_iter=1000).fit(frame, y)
    explainer = GradientSimilarityExplainer(model).fit(frame, y)
    with pytest.warns(SkcemWarning, match="X's columns are those of `fit` in another order"):
        reordered = explainer.transform(frame.iloc[:5, ::-1])
    np.testing.assert_array_equal(reordered, explainer.transform(frame.iloc[:5]))


def test_regression_targets_must_match_the_models_outputs(iris):
    # One target for a two-output regressor was broadcast to both outputs: wrong scores, no
    # error; the other way round an error about factor layouts.
    X, _ = iris
    Y = np.c_[X[:, 0] + X[:, 1], X[:, 2] - X[:, 3]]
    two = Ridge().fit(X, Y)
    message = r"y has 1 target\(s\) per row, but `estimator` has 2 output\(s\)"
    with pytest.raises(ValueError, match=message):
        GradientSimilarityExplainer(two, task="regression").fit(X, Y[:, 0])
    explainer = GradientSimilarityExplainer(two, task="regression").fit(X, Y)
    with pytest.raises(ValueError, match=message):
        explainer.explain(X[:5], Y[:5, 0])
    assert explainer.explain(X[:5], Y[:5]).scores.shape == (5, len(X))
    one = GradientSimilarityExplainer(Ridge().fit(X, Y[:, 0]), task="regression").fit(
        X, Y[:, 0])
    with pytest.raises(ValueError, match=r"y has 2 target\(s\) per row, but `estimator` has 1"):
        one.explain(X[:5], Y[:5])


def test_an_mlp_regressor_of_another_loss_is_refused_in_one_line(iris):
    X, _ = iris
    model = MLPRegressor(hidden_layer_sizes=(8,), loss="poisson", max_iter=300,
                         random_state=0).fit(
        X, np.exp(X[:, 0] / 4))
    with pytest.raises(TypeError, match=r'MLPRegressor\(loss="squared_error"\).*got '
                                        "MLPRegressor"):
        GradientSimilarityExplainer(model, task="regression").fit(X, np.exp(X[:, 0] / 4))


def test_a_one_column_y_is_flattened_and_y_is_copied(iris, iris_model):
    """Found by a user: a one-column y crashed inside skcem, and the caller's y, kept as it
    was, changed the scores when the caller changed it."""
    X, y = iris
    expected = GradientSimilarityExplainer(iris_model).fit(X, y).explain(X[:4], y[:4]).scores
    column = y[:, None].copy()
    with pytest.warns(DataConversionWarning):
        explainer = GradientSimilarityExplainer(iris_model).fit(X, column)
    column[:] = 0
    with pytest.warns(DataConversionWarning):
        scores = explainer.explain(X[:4], y[:4, None]).scores
    np.testing.assert_allclose(scores, expected, rtol=1e-12)


def test_a_networks_outputs_named_in_another_order_are_named(digits):
    """Found by a user: a network trained on codes in another order than the sorted labels
    got the wrong targets for its training gradients, with no warning."""
    keras = pytest.importorskip("keras")
    X, y = digits
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(X, y, epochs=30, verbose=0)
    names = np.array([f"{9 - digit}" for digit in range(10)])  # sorted: the reverse order
    with pytest.warns(UserWarning, match=r"agree with its predictions on \d% .* with its "
                                         r"outputs in another order \(output 0 = '9'"):
        GradientSimilarityExplainer(model).fit(X[:300], names[y[:300]])
    ordered = np.array([f"digit {digit}" for digit in range(10)])
    explainer = GradientSimilarityExplainer(model).fit(X[:300], ordered[y[:300]])
    np.testing.assert_array_equal(explainer.y_train_, y[:300])


def test_one_hot_targets_are_refused_in_one_line():
    """Found by a user porting alibi's examples (one-hot Y_train): fit took them, explain
    then failed deep inside Keras, TensorFlow or torch."""
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    one_hot = np.eye(3)[y]
    model = LogisticRegression(max_iter=500).fit(X, y)
    with pytest.raises(ValueError, match=r"`y` holds one-hot rows \(3 columns\); "
                                         r"GradientSimilarityExplainer takes class labels"):
        GradientSimilarityExplainer(model).fit(X, one_hot)
    explainer = GradientSimilarityExplainer(model).fit(X, y)
    with pytest.raises(ValueError, match=r"pass `y.argmax\(axis=1\)`"):
        explainer.explain(X[:3], one_hot[:3])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_self_influence_is_each_rows_own_score_at_its_target(digits, digits_model):
    """Found by a user: the diagonal of fit_transform, the one way to a row's score with
    itself, costs the (n, n) matrix and takes each row at its predicted class, so flipped
    labels did not stand out."""
    X, y = digits
    X_train, y_train = X[:150], y[:150]
    for model in (digits_model, make_pipeline(StandardScaler(), LogisticRegression())):
        explainer = GradientSimilarityExplainer(model).fit(X_train, y_train)
        own = explainer.self_influence()
        np.testing.assert_allclose(own, np.diag(explainer.explain(X_train, y_train).scores),
                                   rtol=1e-10)
        np.testing.assert_array_equal(own, explainer.self_influence(X_train, y_train))
        # without y: at the predicted classes
        predicted = explainer.estimator_.predict(X[300:320])
        np.testing.assert_array_equal(explainer.self_influence(X[300:320]),
                                      explainer.self_influence(X[300:320], predicted))
        # exact whatever the projection
        projected = GradientSimilarityExplainer(model, n_components=16, random_state=0,
                                                precompute_grads=True).fit(X_train, y_train)
        np.testing.assert_allclose(projected.self_influence(), own, rtol=1e-10)
    with pytest.raises(ValueError, match="`y` is given without `X`"):
        explainer.self_influence(y=y_train)
    # labels that are text (found by a trial: compared with -1)
    words = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                      "nine"])
    named = GradientSimilarityExplainer(LogisticRegression(max_iter=300)).fit(
        X_train, words[y_train])
    np.testing.assert_allclose(named.self_influence(X_train[:5], words[y_train[:5]]),
                               named.self_influence()[:5], rtol=1e-12)
    assert named.self_influence(X_train[:5]).shape == (5,)
    # flipped labels stand out: 10 of 300, 7 or more of them among the 10 highest
    noisy = y[:300].copy()
    flipped = np.arange(0, 300, 30)
    noisy[flipped] = (noisy[flipped] + 1) % 10
    model = LogisticRegression(max_iter=300)
    influence = GradientSimilarityExplainer(model).fit(X[:300], noisy).self_influence()
    assert np.isin(np.argsort(-influence)[:10], flipped).sum() >= 7


def test_a_series_y_follows_the_rows_of_a_frame_in_fit_as_in_explain(digits):
    """Found by a user: fit read a Series y by position, explain by X's index."""
    pd = pytest.importorskip("pandas")
    X, y = digits
    frame = pd.DataFrame(X[:200], index=np.arange(200)[::-1] + 1000)
    labels = pd.Series(y[:200], index=frame.index)
    shuffled = labels.sample(frac=1.0, random_state=0)
    model = LogisticRegression(max_iter=300).fit(X[:200], y[:200])
    aligned = GradientSimilarityExplainer(model).fit(frame, shuffled)
    plain = GradientSimilarityExplainer(model).fit(X[:200], y[:200])
    np.testing.assert_array_equal(aligned.y_train_, y[:200])
    # (a DataFrame and an array may take other BLAS paths: equal to rounding)
    np.testing.assert_allclose(aligned.self_influence(), plain.self_influence(), rtol=1e-12)
    with pytest.raises(ValueError, match="`y` is a Series whose index lacks rows of X"):
        GradientSimilarityExplainer(model).fit(frame, pd.Series(y[:200], index=range(5, 205)))


def test_a_similarity_explanation_as_a_table(digits, digits_model):
    pd = pytest.importorskip("pandas")
    X, y = digits
    exp = GradientSimilarityExplainer(digits_model).fit(X[:50], y[:50]).explain(X[60:63])
    frame = exp.to_frame(n_most=4)
    assert list(frame.columns) == ["train_index", "score"]
    assert frame.index.names == ["test", "rank"] and len(frame) == 12
    for i in range(3):
        np.testing.assert_array_equal(frame.loc[i, "train_index"], exp.ordered_indices[i, :4])
        np.testing.assert_array_equal(frame.loc[i, "score"],
                                      np.sort(exp.scores[i])[::-1][:4])
    assert len(exp.to_frame(n_most=500)) == 150
    with pytest.raises(ValueError, match="`n_most` must be a positive integer"):
        exp.to_frame(n_most=0)
    assert isinstance(frame, pd.DataFrame)


def test_a_pipeline_on_a_table_with_text_takes_the_rows_as_they_are():
    """Found by a user: a Pipeline that vectorises a text column and one-hot encodes a
    category was refused ("explains numeric features only"), though its gradients are its
    last step's, on the rows its steps make."""
    pd = pytest.importorskip("pandas")
    from sklearn.compose import make_column_transformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(0)
    words = np.array(["good", "bad", "great", "awful", "item", "product"])
    n = 240
    X = pd.DataFrame({"text": [" ".join(rng.choice(words, 5)) for _ in range(n)],
                      "price": rng.normal(10, 2, n), "city": rng.choice(["a", "b", "c"], n)},
                     index=rng.permutation(n) + 1000)
    y = (X["text"].str.contains("good") ^ (X["price"] > 10)).astype(int).to_numpy()

    def unfitted():
        return make_pipeline(make_column_transformer(
            (TfidfVectorizer(), "text"), (OneHotEncoder(), ["city"]),
            remainder=StandardScaler(), sparse_threshold=0.0), LogisticRegression())

    model = unfitted().fit(X, y)
    rows = model[:-1].transform(X)
    for estimator in (model, unfitted()):
        explainer = GradientSimilarityExplainer(estimator).fit(X.iloc[:200], y[:200])
        fitted = explainer.estimator_
        rows = fitted[:-1].transform(X)
        last = GradientSimilarityExplainer(fitted[-1]).fit(rows[:200], y[:200])
        exp = explainer.explain(X.iloc[210:214], y[210:214])
        np.testing.assert_allclose(exp.scores, last.explain(rows[210:214], y[210:214]).scores,
                                   rtol=1e-12)
        np.testing.assert_allclose(explainer.self_influence(), last.self_influence(),
                                   rtol=1e-12)
        # the training rows as they were given, with their own labels (found by a trial:
        # labelled by position, X_train.loc gave other rows)
        pd.testing.assert_frame_equal(exp.most_similar, X.iloc[exp.ordered_indices[:, 0]])
        pd.testing.assert_index_equal(exp.X.index, X.index[210:214])
        table = exp.to_frame(n_most=2)
        np.testing.assert_array_equal(table["train_label"],
                                      X.index[table["train_index"].to_numpy()])
        import json

        written = json.loads(exp.to_json())
        assert written["train_labels"] == X.index[:200].tolist()
        assert written["most_similar"][0] == X.iloc[exp.ordered_indices[0, 0]].tolist()
    with pytest.raises(ValueError, match="pass a DataFrame of those columns; got ndarray"):
        explainer.explain(X.iloc[:2].to_numpy())
    # a Pipeline of 1-D documents, given a one-column DataFrame of them: its vectorizer
    # reads the column names (found by a trial: fit passed, every later call crashed)
    documents = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(X["text"], y)
    with pytest.raises(ValueError, match=r"first step \(TfidfVectorizer\) reads documents, "
                                         r"one text per row: give them 1-D .* got DataFrame "
                                         r"of shape \(240, 1\)"):
        GradientSimilarityExplainer(documents).fit(X[["text"]], y)
    holed = X.iloc[:200].copy()
    holed.iloc[3, 0] = None
    with pytest.raises(ValueError, match=r"X's columns \['text'\] hold missing values"):
        GradientSimilarityExplainer(model).fit(holed, y[:200])
    pytest.importorskip("matplotlib")
    from skcem.plotting import plot_similarity

    with pytest.raises(ValueError, match="plot_similarity draws rows of numbers"):
        plot_similarity(exp, explainer.X_train_)


def test_a_text_pipeline_takes_its_documents():
    """Found by a trial: a Pipeline whose first step vectorizes 1-D documents (scikit-learn's
    text classification) was refused, though each document is one row of its last step."""
    pd = pytest.importorskip("pandas")
    from sklearn.feature_extraction.text import TfidfVectorizer

    rng = np.random.default_rng(0)
    words = np.array(["good", "bad", "great", "awful", "movie", "plot", "fun"])
    documents = [" ".join(rng.choice(words, 4)) for _ in range(60)]
    y = np.array(["pos" if ("good" in d) ^ ("bad" in d) else "neg" for d in documents])
    model = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(documents, y)
    explainer = GradientSimilarityExplainer(model).fit(documents[:50], y[:50])
    exp = explainer.explain(documents[50:], y[50:])
    # the last step's gradients on the vectorized rows, by hand: (p - onehot(y)) outer [x, 1]
    vectors = model[0].transform(documents).toarray()
    last = model[-1]
    errors = last.predict_proba(vectors) - (y[:, None] == last.classes_)
    grads = np.hstack([errors[:, 1:] * vectors, errors[:, 1:]])  # binary: one column
    np.testing.assert_allclose(exp.scores, grads[50:] @ grads[:50].T, rtol=1e-10,
                               atol=1e-15)
    assert exp.most_similar.tolist() == [documents[j] for j in exp.ordered_indices[:, 0]]
    np.testing.assert_allclose(explainer.self_influence(), (grads[:50] ** 2).sum(1),
                               rtol=1e-10)
    # a Series keeps its labels, and a Series y follows them
    series = pd.Series(documents, index=[f"doc{i}" for i in range(60)])
    targets = pd.Series(y, index=series.index)
    labelled = GradientSimilarityExplainer(model).fit(series[:50], targets[:50][::-1])
    exp = labelled.explain(series[50:])
    assert exp.most_similar.index.tolist() == series.index[exp.ordered_indices[:, 0]].tolist()
    assert exp.X.index.tolist() == series.index[50:].tolist()
    np.testing.assert_allclose(labelled.self_influence(), explainer.self_influence())
    with pytest.raises(ValueError, match=r"X must be documents too, one per row; got ndarray "
                                         r"of shape \(2, 3\)"):
        explainer.explain(vectors[:2, :3])
    with pytest.raises(ValueError, match=r"not text, such as 3 \(position 1\)"):
        explainer.explain(["good fun", 3])
    with pytest.raises(ValueError, match=r"missing documents \(at positions \[1\]\)"):
        explainer.explain(["good fun", None])
    with pytest.raises(ValueError, match=r"X holds no documents \(0 rows\)"):
        explainer.explain([])
    # found by a review: y of another length was taken, then numpy failed in explain
    with pytest.raises(ValueError, match="y has 49 targets for the 50 rows of X"):
        GradientSimilarityExplainer(model).fit(documents[:50], y[:49])
    # found by a trial: an unsupported wrapper of a text Pipeline was told to be a Pipeline;
    # a Pipeline of a table's columns, given documents, failed in scikit-learn's words
    from sklearn.compose import make_column_transformer
    from sklearn.model_selection import FixedThresholdClassifier

    # (a threshold classifier is read through: its text Pipeline takes the documents)
    wrapped = FixedThresholdClassifier(model, threshold=0.4).fit(documents, y)
    np.testing.assert_allclose(
        GradientSimilarityExplainer(wrapped).fit(documents, y).explain(
            documents[:3], y[:3]).scores,
        GradientSimilarityExplainer(model).fit(documents, y).explain(
            documents[:3], y[:3]).scores)

    # a stateless step (no fitted attribute) before the last: scikit-learn judged the slice
    # pipeline[:-1] unfitted (found by a review)
    from sklearn.base import BaseEstimator, TransformerMixin

    class ToCSC(TransformerMixin, BaseEstimator):
        def fit(self, X, y=None):
            return self

        def transform(self, X):
            return X.tocsc()

    stateless = make_pipeline(TfidfVectorizer(), ToCSC(), LogisticRegression()).fit(documents,
                                                                                      y)
    np.testing.assert_allclose(
        GradientSimilarityExplainer(stateless).fit(documents[:50], y[:50]).transform(
            documents[50:]),
        GradientSimilarityExplainer(model).fit(documents[:50], y[:50]).transform(
            documents[50:]), rtol=1e-10)
    table = pd.DataFrame({"text": documents})
    columns = make_pipeline(make_column_transformer((TfidfVectorizer(), "text")),
                            LogisticRegression()).fit(table, y)
    with pytest.raises(ValueError, match=r"steps fail on 1-D documents .* pass a DataFrame of "
                                         r"its columns"):
        GradientSimilarityExplainer(columns).fit(documents, y)


def test_a_pipeline_picking_numeric_columns_by_name_is_handed_named_rows(digits):
    """Found by a review: a ColumnTransformer picking columns by name, on an all-numeric
    DataFrame, failed wherever the model itself was asked (predicted targets, a regressor's
    outputs at fit): it was handed rows without their names. And a DataFrame of targets
    was read by position, where a Series follows X's index."""
    pd = pytest.importorskip("pandas")
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder

    X, y = digits
    frame = pd.DataFrame(X[:200, :8], columns=[f"p{j}" for j in range(8)]).assign(
        grade=np.arange(200) % 4)
    encode = ColumnTransformer([("grade", OneHotEncoder(), ["grade"]),
                                ("pixels", StandardScaler(), [f"p{j}" for j in range(8)])])
    model = make_pipeline(encode, LogisticRegression(max_iter=500)).fit(frame, y[:200])
    explainer = GradientSimilarityExplainer(model).fit(frame, y[:200])
    predicted = model.predict(frame.iloc[:3])
    np.testing.assert_array_equal(explainer.transform(frame.iloc[:3]),
                                  explainer.explain(frame.iloc[:3], predicted).scores)
    assert explainer.kneighbors(frame.iloc[:3], 2, return_scores=False).shape == (3, 2)
    targets = pd.DataFrame({"a": frame["p3"] * 2, "b": frame["p5"]})
    regressor = make_pipeline(encode, Ridge()).fit(frame, targets)
    fitted = GradientSimilarityExplainer(regressor, task="regression").fit(frame, targets)
    shuffled = GradientSimilarityExplainer(regressor, task="regression").fit(
        frame, targets.sample(frac=1.0, random_state=0))
    np.testing.assert_array_equal(shuffled.self_influence(), fitted.self_influence())
    np.testing.assert_array_equal(
        fitted.explain(frame.iloc[:5], targets.iloc[:5][::-1]).scores,
        fitted.explain(frame.iloc[:5], targets.iloc[:5]).scores)


def test_a_pipeline_that_imputes_takes_missing_values(digits):
    """Found by a trial: a Pipeline imputing missing values was refused ("the gradients of
    their rows are undefined"), though its last step's gradients are taken on the rows it
    completes."""
    from sklearn.impute import SimpleImputer

    X, y = digits
    X = X[:200].copy()
    X[::7, 3] = np.nan
    model = make_pipeline(SimpleImputer(), StandardScaler(),
                          LogisticRegression(max_iter=500)).fit(X, y[:200])
    explainer = GradientSimilarityExplainer(model).fit(X, y[:200])
    rows = model[:-1].transform(X)
    last = GradientSimilarityExplainer(model[-1]).fit(rows, y[:200])
    np.testing.assert_allclose(explainer.explain(X[:7], y[:7]).scores,
                               last.explain(rows[:7], y[:7]).scores, rtol=1e-12)
    assert np.isfinite(explainer.self_influence()).all()
    with pytest.raises(ValueError, match="Input X contains NaN: GradientSimilarityExplainer "
                                         "needs complete rows for this model .*or explain a "
                                         "Pipeline that begins with one"):
        GradientSimilarityExplainer(LogisticRegression(max_iter=500)).fit(X, y[:200])


def test_a_text_pipelines_sparse_rows_stay_sparse():
    """Found by a trial: a text Pipeline's rows were made dense, (rows x vocabulary): a
    HashingVectorizer's 2**20 columns cost 8 MB a document (1.9 GB for 300), and the
    projection's Gaussian map 2**20 x n_components numbers. The same scores, sparse; and a
    sparsified last step (``.sparsify()``, a sparse coef_) failed in numpy."""
    import tracemalloc

    from sklearn.feature_extraction.text import HashingVectorizer, TfidfVectorizer
    from sklearn.preprocessing import FunctionTransformer

    rng = np.random.default_rng(0)
    words = np.array([f"w{i}" for i in range(400)])
    documents = [" ".join(rng.choice(words, 12)) for _ in range(160)]
    y = rng.integers(0, 2, 160)
    dense = FunctionTransformer(lambda rows: rows.toarray(), accept_sparse=True)
    for last in (LogisticRegression(), MLPClassifier((4,), max_iter=200, random_state=0)):
        model = make_pipeline(TfidfVectorizer(), last).fit(documents, y)
        densified = make_pipeline(model[0], dense, model[-1])
        for params in ({}, {"precompute_grads": True}):
            sparse_rows = GradientSimilarityExplainer(model, **params).fit(documents[:120],
                                                                           y[:120])
            dense_rows = GradientSimilarityExplainer(densified, **params).fit(documents[:120],
                                                                              y[:120])
            np.testing.assert_allclose(sparse_rows.transform(documents[120:]),
                                       dense_rows.transform(documents[120:]), atol=1e-12)
            np.testing.assert_allclose(sparse_rows.self_influence(),
                                       dense_rows.self_influence(), atol=1e-12)
    hashed = make_pipeline(HashingVectorizer(n_features=2**18), LogisticRegression()).fit(
        documents, y)
    tracemalloc.start()
    exact = GradientSimilarityExplainer(hashed, precompute_grads=True).fit(
        documents[:120], y[:120]).transform(documents[120:])
    projected = GradientSimilarityExplainer(hashed, n_components=512, random_state=0).fit(
        documents[:120], y[:120])
    scores = projected.transform(documents[120:])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 40 * 2**20  # dense rows: 2 MB each, 240 MB; a Gaussian map 1 GB
    assert np.corrcoef(exact.ravel(), scores.ravel())[0, 1] > 0.95
    # a test row's words unseen in training still count in its projected norm (found by a
    # review: grad_cos of such rows came out 0.70 for 0.50, over 20 seeds)
    unseen = ["zebra xylophone quark wombat yak", " ".join(documents[0].split()[:3])]
    exact = GradientSimilarityExplainer(hashed, sim_fn="grad_cos").fit(
        documents[:120], y[:120]).transform(unseen)
    mean = np.mean([GradientSimilarityExplainer(hashed, sim_fn="grad_cos", n_components=256,
                                                random_state=seed).fit(
        documents[:120], y[:120]).transform(unseen) for seed in range(10)], axis=0)
    assert np.abs(mean - exact).mean() < 0.05
    sparsified = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(documents, y)
    before = GradientSimilarityExplainer(sparsified).fit(documents, y).transform(documents[:5])
    sparsified[-1].sparsify()
    np.testing.assert_allclose(GradientSimilarityExplainer(sparsified).fit(
        documents, y).transform(documents[:5]), before, rtol=1e-12)


def test_non_finite_scores_are_warned_of():
    """Found by a trial: a Keras model on JAX answered NaN for a token id past its
    embedding's vocabulary, and kneighbors ranked the NaN scores in silence."""
    torch = pytest.importorskip("torch")
    from skcem import SkcemWarning

    class LogOfFirst(torch.nn.Module):  # NaN where the first feature is negative
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(2, 2)

        def forward(self, x):
            return self.linear(x) + 0.0 * torch.log(x[:, :1])

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    X = rng.uniform(0.5, 2.0, size=(40, 2)).astype(np.float32)
    y = (X[:, 1] > 1.2).astype(int)
    explainer = GradientSimilarityExplainer(LogOfFirst()).fit(X, y)
    rows = X[:3].copy()
    rows[1, 0] = -1.0
    with pytest.warns(SkcemWarning, match=r"40 scores are NaN or infinite \(rows \[1\] of "
                                          r"X\)"):
        explainer.explain(rows)
    with pytest.warns(SkcemWarning, match=r"rows \[1\] of X"):
        explainer.kneighbors(rows, 3)
    with pytest.warns(SkcemWarning, match=r"1 self-influences are NaN"):
        explainer.self_influence(rows, y[:3])


def test_merging_the_top_k_keeps_a_stable_sorts_order_ties_included():
    """kneighbors keeps each block's k best by sorting only the scores at or above the k-th
    (a full sort took 80% of its time): the same scores and indices as a stable sort of all,
    ties in index order, with NaN scores and blocks of fewer than k rows."""
    from skcem._similarity import _merge_top_k

    rng = np.random.default_rng(0)
    for trial in range(300):
        n, k, m = rng.integers(1, 30), rng.integers(1, 12), rng.integers(1, 40)
        levels = rng.integers(1, 6)  # few distinct scores: many ties
        kept = -np.sort(-rng.integers(0, levels, (n, k)).astype(float), axis=1)
        kept_indices = np.sort(rng.choice(1000, size=(n, k)), axis=1)
        block = rng.integers(0, levels, (n, m)) * rng.choice([1.0, -1.0])
        if trial % 7 == 0:
            block[0, 0] = np.nan
        block_indices = np.arange(1000, 1000 + m)
        scores, indices = _merge_top_k(kept, kept_indices, block, block_indices, k)
        everything = np.hstack([kept, block])
        every_index = np.hstack([kept_indices, np.broadcast_to(block_indices, block.shape)])
        best = np.argsort(-everything, axis=1, kind="stable")[:, :k]
        np.testing.assert_array_equal(scores, np.take_along_axis(everything, best, axis=1))
        np.testing.assert_array_equal(indices, np.take_along_axis(every_index, best, axis=1))


def test_a_single_text_or_missing_documents_get_one_clear_line():
    """Found by a user: a 0-d array of one text raised IndexError, and [None] was said not to
    be documents ("got list")."""
    pytest.importorskip("pandas")
    from sklearn.feature_extraction.text import TfidfVectorizer

    rng = np.random.default_rng(0)
    words = np.array(["good", "bad", "great", "awful", "movie"])
    documents = [" ".join(rng.choice(words, 4)) for _ in range(40)]
    y = np.array(["pos" if "good" in d else "neg" for d in documents])
    model = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(documents, y)
    explainer = GradientSimilarityExplainer(model).fit(documents, y)
    with pytest.raises(ValueError, match="X must be documents, one text per row"):
        explainer.explain(np.array("a good movie"))
    for missing in ([None], [np.nan]):
        with pytest.raises(ValueError, match=r"X holds missing documents only \(1\)"):
            explainer.explain(missing)
    with pytest.raises(ValueError, match=r"X holds missing documents \(at positions \[0\]\)"):
        explainer.explain([None, "a good movie"])  # its first document missing
    with pytest.raises(ValueError, match="X must be documents too, one per row"):
        explainer.explain([["good", "movie"], ["bad"]])  # tokens, ragged


def test_targets_and_rows_of_the_wrong_kind_get_one_clear_line(digits):
    """Found by a new user: text targets of a regression were stored at fit and failed in
    numpy's words at explain; one row's target given as a scalar failed on len(); a sparse
    matrix got scikit-learn's "Use '.toarray()'", which may not fit in memory."""
    from scipy import sparse

    X, _ = digits
    y = X[:, 20] * 2 + X[:, 35]
    model = Ridge().fit(X[:100], y[:100])
    regression = GradientSimilarityExplainer(model, task="regression")
    with pytest.raises(ValueError, match="`y` holds values that are not numbers, such as "
                                         "'low'"):
        regression.fit(X[:60], np.array(["low", "high"] * 30))
    fitted = regression.fit(X[:60], y[:60].astype(str))  # numbers as text are numbers
    assert fitted.y_train_.dtype.kind == "f"
    np.testing.assert_allclose(fitted.y_train_, y[:60])
    with pytest.raises(ValueError, match=r"one target per row of X; got the single value "
                                         r".*give a list"):
        fitted.explain(X[:1], y[0])
    with pytest.raises(TypeError, match="X is a sparse matrix.*give the Pipeline of the "
                                        "vectorizer"):
        GradientSimilarityExplainer(model, task="regression").fit(
            sparse.csr_matrix(X[:60]), y[:60])
    with pytest.raises(TypeError, match="X is a sparse matrix"):
        fitted.explain(sparse.csr_matrix(X[:2]), y[:2])


def test_to_frame_keeps_the_row_labels_of_dataframes():
    """Found by a user: the counterfactual explanations kept a DataFrame's row labels in
    to_frame, the similarity's gave positions (for the test and the training rows)."""
    pd = pytest.importorskip("pandas")
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True, as_frame=True)
    X = X.set_axis([f"flower{i}" for i in range(len(X))])
    y = y.set_axis(X.index)
    model = LogisticRegression(max_iter=1000).fit(X.to_numpy(), y)
    explanation = GradientSimilarityExplainer(model).fit(X.iloc[::2], y.iloc[::2]).explain(
        X.iloc[[10, 71, 131]])
    frame = explanation.to_frame(n_most=2)
    assert list(frame.index.get_level_values("test")) == [
        "flower10", "flower10", "flower71", "flower71", "flower131", "flower131"]
    assert list(frame["train_label"]) == list(X.iloc[::2].index[frame["train_index"]])
    assert explanation.to_dict()["index"] == ["flower10", "flower71", "flower131"]
    # found by a review: a MultiIndex's tuples in one "test" level, its names lost; a
    # polars frame's positions shown as labels it does not have
    rows = X.iloc[[10, 71]].set_axis(pd.MultiIndex.from_tuples([("a", 1), ("b", 2)],
                                                                names=["group", "id"]))
    frame = GradientSimilarityExplainer(model).fit(X, y).explain(rows).to_frame(n_most=2)
    assert list(frame.index.names) == ["group", "id", "rank"]
    assert frame.index[1] == ("a", 1, 1)
    pl = pytest.importorskip("polars")
    polars_fit = GradientSimilarityExplainer(model).fit(pl.from_pandas(X), y.to_numpy())
    explained = polars_fit.explain(pl.from_pandas(X.iloc[:2]))
    assert explained.train_labels is None and "train_label" not in explained.to_frame()


def test_threshold_classifiers_are_read_through():
    """Found by a user: FixedThresholdClassifier and TunedThresholdClassifierCV around a
    logistic regression were refused ("its loss has no gradient ... skcem can compute"),
    though their probabilities are the inner model's: the scores are its loss gradients'
    products, a test row's target the threshold classifier's own class."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import FixedThresholdClassifier, TunedThresholdClassifierCV

    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X[:300, :8])
    y = y[:300]
    train, labels, test = X[:250], y[:250], X[250:270]
    inner = LogisticRegression().fit(train, labels)
    wrapped = FixedThresholdClassifier(inner, threshold=0.9).fit(train, labels)
    assert np.any(wrapped.predict(test) != inner.predict(test))

    def gradients(rows, targets):
        error = inner.predict_proba(rows)[:, 1] - targets
        return error[:, None] * np.c_[rows, np.ones(len(rows))]

    expected = gradients(test, wrapped.predict(test)) @ gradients(train, labels).T
    scores = GradientSimilarityExplainer(wrapped).fit(train, labels).transform(test)
    np.testing.assert_allclose(scores, expected, rtol=1e-6, atol=1e-9)
    # not fitted yet: fitted on fit's data as any model (found by a review: refused)
    unfitted = FixedThresholdClassifier(LogisticRegression(), threshold=0.9)
    scores = GradientSimilarityExplainer(unfitted).fit(train, labels).transform(test)
    np.testing.assert_allclose(scores, expected, rtol=1e-6, atol=1e-9)
    tuned = make_pipeline(StandardScaler(), TunedThresholdClassifierCV(
        LogisticRegression(), cv=3)).fit(train, labels)
    assert GradientSimilarityExplainer(tuned).fit(train, labels).transform(test).shape == \
        (20, 250)
