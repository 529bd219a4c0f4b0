"""Exact VJPs of ``skcem._gradients._exact`` against central differences of ``predict_proba``.

Run ``python tests/test_exact_gradients.py`` for a timing comparison on the digits data set.
"""

import time
import warnings

import numpy as np
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_digits, make_classification
from sklearn.decomposition import PCA
from sklearn.discriminant_analysis import (
    LinearDiscriminantAnalysis,
    QuadraticDiscriminantAnalysis,
)
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression, Perceptron, RidgeClassifier, SGDClassifier
from sklearn.model_selection import GridSearchCV
from sklearn.multiclass import OneVsRestClassifier
from sklearn.feature_selection import SelectFromModel, SelectKBest, VarianceThreshold
from sklearn.impute import SimpleImputer
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    MaxAbsScaler,
    MinMaxScaler,
    Normalizer,
    OneHotEncoder,
    PolynomialFeatures,
    RobustScaler,
    StandardScaler,
)
from sklearn.svm import LinearSVC, SVC

from skcem._decision_scores import DecisionScores
from skcem._gradients._exact import UnsupportedModel, exact_proba_vjp, supports_exact_gradients

_DATA = {}


def _data(n_classes):
    if n_classes not in _DATA:
        X, y = make_classification(
            n_samples=120, n_features=6, n_informative=4, n_redundant=1,
            n_classes=n_classes, n_clusters_per_class=1, random_state=n_classes,
        )
        _DATA[n_classes] = (X, y)
    return _DATA[n_classes]


def _mlp(activation):
    return MLPClassifier((7, 5), activation=activation, max_iter=300, random_state=0)


def _ct(remainder):
    return ColumnTransformer(
        [
            ("scaled", StandardScaler(), [0, 2]),
            ("poly", PolynomialFeatures(2), [1, 3]),
            ("same", "passthrough", [4]),
        ],
        remainder=remainder,
    )


MODELS = {
    "lr": lambda: LogisticRegression(),
    "ovr_lr": lambda: OneVsRestClassifier(LogisticRegression()),
    "sgd_log": lambda: SGDClassifier(loss="log_loss", random_state=0),
    "sgd_mhuber": lambda: make_pipeline(
        StandardScaler(), SGDClassifier(loss="modified_huber", alpha=0.1, random_state=0)
    ),
    **{f"mlp_{a}": (lambda a=a: _mlp(a)) for a in ("identity", "logistic", "tanh", "relu")},
    "lda": lambda: LinearDiscriminantAnalysis(),
    "qda": lambda: QuadraticDiscriminantAnalysis(reg_param=0.05),
    "gnb": lambda: GaussianNB(),
    "cal_sigmoid_lr": lambda: CalibratedClassifierCV(LogisticRegression(), cv=3),
    "cal_sigmoid_gnb": lambda: CalibratedClassifierCV(GaussianNB(), cv=3),
    "cal_sigmoid_qda": lambda: CalibratedClassifierCV(
        QuadraticDiscriminantAnalysis(reg_param=0.05), cv=3
    ),
    "cal_sigmoid_hinge_noens": lambda: CalibratedClassifierCV(
        make_pipeline(StandardScaler(), SGDClassifier(random_state=0)), cv=3, ensemble=False
    ),
    # LinearClassifierMixin's decision function, inside the calibration that gives them
    # probabilities (they had numerical gradients: 107 s for 3 iris counterfactuals)
    "cal_sigmoid_linearsvc": lambda: CalibratedClassifierCV(
        make_pipeline(StandardScaler(), LinearSVC()), cv=3),
    "cal_sigmoid_ridge": lambda: CalibratedClassifierCV(RidgeClassifier(), cv=3),
    "cal_sigmoid_perceptron": lambda: CalibratedClassifierCV(
        make_pipeline(StandardScaler(), Perceptron(random_state=0)), cv=3, ensemble=False),
    "grid_search_lr": lambda: GridSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, cv=3),
    "cal_isotonic_lr": lambda: CalibratedClassifierCV(
        LogisticRegression(), method="isotonic", cv=3
    ),
    "cal_isotonic_mlp": lambda: CalibratedClassifierCV(
        _mlp("tanh"), method="isotonic", cv=2
    ),
    "pipe_standard_lr": lambda: make_pipeline(StandardScaler(), LogisticRegression()),
    "pipe_imputer_lr": lambda: make_pipeline(SimpleImputer(add_indicator=True),
                                             StandardScaler(), LogisticRegression()),
    "pipe_minmax_clip_mlp": lambda: make_pipeline(MinMaxScaler(clip=True), _mlp("logistic")),
    "pipe_maxabs_lr": lambda: make_pipeline(MaxAbsScaler(), LogisticRegression()),
    "pipe_robust_gnb": lambda: make_pipeline(RobustScaler(), GaussianNB()),
    "pipe_pca_whiten_lr": lambda: make_pipeline(PCA(4, whiten=True), LogisticRegression()),
    "pipe_pca_qda": lambda: make_pipeline(PCA(3), QuadraticDiscriminantAnalysis()),
    **{
        f"pipe_normalizer_{n}": (
            lambda n=n: make_pipeline(Normalizer(n), StandardScaler(), LogisticRegression())
        )
        for n in ("l2", "l1", "max")
    },
    "pipe_poly2": lambda: make_pipeline(
        StandardScaler(), PolynomialFeatures(2), LogisticRegression(max_iter=300)
    ),
    "pipe_poly3_inter_nobias": lambda: make_pipeline(
        StandardScaler(),
        PolynomialFeatures(3, interaction_only=True, include_bias=False),
        LogisticRegression(max_iter=300),
    ),
    "pipe_poly3": lambda: make_pipeline(
        StandardScaler(), PolynomialFeatures(3), LogisticRegression(max_iter=300)
    ),
    "pipe_identity_passthrough": lambda: Pipeline(
        [("id", FunctionTransformer()), ("skip", "passthrough"), ("lr", LogisticRegression())]
    ),
    "pipe_nested": lambda: Pipeline(
        [
            ("pre", make_pipeline(RobustScaler(), PCA(5))),
            ("post", make_pipeline(MinMaxScaler(), Normalizer())),
            ("clf", _mlp("tanh")),
        ]
    ),
    "pipe_ct_drop": lambda: make_pipeline(_ct("drop"), LogisticRegression(max_iter=300)),
    "pipe_ct_passthrough": lambda: make_pipeline(
        _ct("passthrough"), StandardScaler(), LogisticRegression(max_iter=300)
    ),
    "cal_frozen_pipe": "frozen",
    # element-wise numpy functions and feature selectors
    "pipe_exp_log1p_sqrt": lambda: make_pipeline(
        FunctionTransformer(np.exp), FunctionTransformer(np.log1p), FunctionTransformer(np.sqrt),
        LogisticRegression()),
    "pipe_tanh_arcsinh_cbrt": lambda: make_pipeline(
        FunctionTransformer(np.tanh), FunctionTransformer(np.arcsinh),
        FunctionTransformer(np.cbrt), StandardScaler(), LogisticRegression()),
    "pipe_select_k_best": lambda: make_pipeline(SelectKBest(k=3), LogisticRegression()),
    "pipe_variance_from_model": lambda: make_pipeline(
        VarianceThreshold(0.5), SelectFromModel(LogisticRegression(), max_features=2,
                                                threshold=-np.inf),
        _mlp("tanh")),
    # classifiers without predict_proba: the softmax of their decision function
    "scores_linearsvc": ("scores", lambda: make_pipeline(StandardScaler(), LinearSVC())),
    "scores_ridge": ("scores", lambda: RidgeClassifier()),
    "scores_sgd_hinge": ("scores", lambda: make_pipeline(StandardScaler(),
                                                         SGDClassifier(random_state=0))),
}


def _fit(name, n_classes):
    X, y = _data(n_classes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if MODELS[name] == "frozen":
            inner = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
            return CalibratedClassifierCV(FrozenEstimator(inner)).fit(X, y)
        if isinstance(MODELS[name], tuple):
            return DecisionScores(MODELS[name][1]().fit(X, y))
        return MODELS[name]().fit(X, y)


def _points(X, seed):
    """Data rows moved slightly (off isotonic thresholds and clip boundaries) and far away."""
    rng = np.random.default_rng(seed)
    near = X[:25] + 0.05 * rng.standard_normal((25, X.shape[1]))
    far = 3.0 * X.std(axis=0) * rng.standard_normal((15, X.shape[1]))
    return np.vstack([near, far])


def central_differences(predict_proba, Z, cotangent, rel_step=1e-6):
    """``sum_k cotangent[:, k] * dP_k / dZ`` by central differences, all rows at once."""
    grad = np.empty_like(Z)
    for j in range(Z.shape[1]):
        h = rel_step * np.maximum(1.0, np.abs(Z[:, j]))
        Zp, Zm = Z.copy(), Z.copy()
        Zp[:, j] += h
        Zm[:, j] -= h
        dP = (predict_proba(Zp) - predict_proba(Zm)) / (2 * h[:, None])
        grad[:, j] = np.sum(cotangent * dP, axis=1)
    return grad


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("name", list(MODELS))
def test_vjp_matches_central_differences(name, n_classes):
    X, _ = _data(n_classes)
    est = _fit(name, n_classes)
    assert supports_exact_gradients(est)
    Z = _points(X, seed=n_classes)
    cot = np.random.default_rng(1).standard_normal((Z.shape[0], n_classes))

    proba, grad = exact_proba_vjp(est)(Z, cot, return_proba=True)
    np.testing.assert_allclose(proba, est.predict_proba(Z), rtol=0, atol=1e-12)

    fd = central_differences(est.predict_proba, Z, cot)
    scale = max(np.abs(fd).max(), 1e-3)
    err = np.abs(grad - fd).max() / scale
    print(f"{name}[{n_classes}]: max |exact - fd| / max |fd| = {err:.1e}")
    assert err < 1e-6
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-7 * scale)


def test_imputed_cells_have_no_gradient_and_the_others_their_own():
    """A SimpleImputer is the identity on the cells it keeps: the standard impute-scale-fit
    Pipeline was sent to numerical gradients (106 s for 15 rows in a user's trial)."""
    from sklearn.impute import SimpleImputer

    X, y = _data(3)
    holes = X.copy()
    holes[::4, 1] = np.nan
    holes[:, 3] = np.nan  # missing in every row: dropped by the imputer
    est = make_pipeline(SimpleImputer(add_indicator=True), StandardScaler(),
                        LogisticRegression()).fit(holes, y)
    Z = holes[:30]
    cot = np.random.default_rng(0).standard_normal((len(Z), 3))
    grad = exact_proba_vjp(est)(Z, cot)
    assert np.all(grad[np.isnan(Z)] == 0) and np.all(grad[:, 3] == 0)

    present = ~np.isnan(Z)
    fd = np.zeros(Z.shape)
    for i, j in zip(*np.nonzero(present)):
        h = 1e-6 * max(1.0, abs(Z[i, j]))
        up, down = Z.copy(), Z.copy()
        up[i, j] += h
        down[i, j] -= h
        fd[i, j] = np.sum(cot[i] * (est.predict_proba(up[[i]]) - est.predict_proba(down[[i]]))
                          ) / (2 * h)
    np.testing.assert_allclose(grad[present], fd[present], rtol=1e-5, atol=1e-8)
    assert np.abs(grad[present]).max() > 1e-3


def test_gradient_not_trivially_zero():
    X, y = _data(3)
    est = make_pipeline(StandardScaler(), PolynomialFeatures(2), LogisticRegression()).fit(X, y)
    grad = exact_proba_vjp(est)(X[:5], np.eye(3)[[0, 1, 2, 0, 1]])
    assert np.abs(grad).min() > 0


def test_rows_are_independent():
    X, y = _data(3)
    vjp = exact_proba_vjp(_fit("pipe_nested", 3))
    cot = np.random.default_rng(0).standard_normal((10, 3))
    batch = vjp(X[:10], cot)
    single = np.vstack([vjp(X[i:i + 1], cot[i:i + 1]) for i in range(10)])
    np.testing.assert_allclose(batch, single, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(
    "make",
    [lambda: _mlp("tanh"), lambda: OneVsRestClassifier(LogisticRegression())],
    ids=["mlp", "ovr"],
)
def test_multilabel(make):
    X, _ = _data(3)
    Y = np.stack([X[:, 0] > 0, X[:, 1] > 0, X[:, 0] + X[:, 2] > 0], axis=1).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = make().fit(X, Y)
    Z = _points(X, seed=0)
    cot = np.random.default_rng(2).standard_normal((Z.shape[0], 3))
    proba, grad = exact_proba_vjp(est)(Z, cot, return_proba=True)
    np.testing.assert_allclose(proba, est.predict_proba(Z), rtol=0, atol=1e-12)
    fd = central_differences(est.predict_proba, Z, cot)
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-7 * np.abs(fd).max())


def test_isotonic_one_sided_slopes():
    from sklearn.isotonic import IsotonicRegression

    from skcem._gradients._exact import _calibrator_node

    cal = IsotonicRegression(out_of_bounds="clip").fit([0.0, 1.0, 2.0, 3.0], [0, 0.2, 0.2, 1])
    forward, backward = _calibrator_node(cal, [])
    t = np.array([-1.0, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0])
    p, slope = forward(t)
    np.testing.assert_allclose(p, cal.predict(t))
    # below range, right of 0, inside, right of 1 (flat), flat, right of 2, last segment, above
    np.testing.assert_allclose(backward(slope, np.ones_like(t)),
                               [0, 0.2, 0.2, 0, 0, 0.8, 0.8, 0])


def test_isotonic_calibrators_are_their_own_predict_bit_for_bit():
    """Found by a user: calling IsotonicRegression.predict (its validation) took 90% of a
    calibrated model's search; its arithmetic is done directly now, to the bit."""
    from sklearn.isotonic import IsotonicRegression

    from skcem._gradients._exact import _calibrator_node

    rng = np.random.default_rng(0)
    for n in (1, 2, 50):
        scores = rng.normal(size=n)
        cal = IsotonicRegression(out_of_bounds="clip").fit(
            scores, (scores + rng.normal(size=n) > 0).astype(float))
        forward, _ = _calibrator_node(cal, [])
        t = np.concatenate([rng.normal(0, 3, 2000), cal.X_thresholds_,
                            np.nextafter(cal.X_thresholds_, np.inf), [-1e300, 1e300]])
        np.testing.assert_array_equal(forward(t)[0], cal.predict(t))


def test_shape_checks():
    X, y = _data(2)
    vjp = exact_proba_vjp(LogisticRegression().fit(X, y))
    with pytest.raises(ValueError):
        vjp(X[:, :5], np.ones((len(X), 2)))
    with pytest.raises(ValueError):
        vjp(X, np.ones((len(X), 3)))


class _Custom(TransformerMixin, BaseEstimator):
    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return X


class _OverridingScaler(StandardScaler):
    def transform(self, X, copy=None):
        return 2 * super().transform(X, copy=copy)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # SVC(probability=True)
@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda: RandomForestClassifier(n_estimators=3, random_state=0), "RandomForest"),
        (lambda: SVC(probability=True, random_state=0), "SVC"),
        (lambda: KNeighborsClassifier(), "KNeighborsClassifier"),
        (lambda: SGDClassifier(loss="hinge"), "SGDClassifier"),
        (lambda: make_pipeline(StandardScaler(), KNeighborsClassifier()),
         "'kneighborsclassifier'"),
        (lambda: Pipeline([("enc", OneHotEncoder()), ("lr", LogisticRegression())]),
         "OneHotEncoder (at Pipeline step 'enc')"),
        (lambda: Pipeline([("log", FunctionTransformer(np.sin)), ("lr", LogisticRegression())]),
         "FunctionTransformer (at Pipeline step 'log')"),
        (lambda: Pipeline([("mine", _Custom()), ("lr", LogisticRegression())]),
         "_Custom (at Pipeline step 'mine')"),
        (lambda: Pipeline([("sub", _OverridingScaler()), ("lr", LogisticRegression())]),
         "_OverridingScaler"),
        (lambda: Pipeline([
            ("outer", make_pipeline(ColumnTransformer([("onehot", OneHotEncoder(), [0])]))),
            ("lr", LogisticRegression()),
        ]), "OneHotEncoder (at Pipeline step 'outer' > Pipeline step 'columntransformer' > "
            "ColumnTransformer 'onehot')"),
        (lambda: CalibratedClassifierCV(KNeighborsClassifier(), cv=2), "KNeighborsClassifier"),
        (lambda: CalibratedClassifierCV(LogisticRegression(), method="temperature", cv=2),
         "temperature"),
        (lambda: OneVsRestClassifier(SVC()), "SVC"),
    ],
)
def test_unsupported(make, expected):
    if expected == "temperature" and "temperature" not in \
            CalibratedClassifierCV._parameter_constraints["method"][0].options:
        pytest.skip("scikit-learn before 1.8 has no temperature scaling")
    X, y = _data(3)
    Xp = np.round(np.abs(X)) if "OneHot" in expected else X
    est = make().fit(Xp, y)
    assert not supports_exact_gradients(est)
    with pytest.raises(UnsupportedModel, match=expected.replace("(", r"\(").replace(")", r"\)")):
        exact_proba_vjp(est)
    with pytest.raises(TypeError):
        exact_proba_vjp(est)


def timing(n_rows=64, repeats=5):
    """Print exact VJP vs central-difference time for an MLP on digits (64 features)."""
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = MLPClassifier((32,), max_iter=200, random_state=0).fit(X, y)
    Z = X[:n_rows]
    cot = np.random.default_rng(0).standard_normal((n_rows, 10))
    vjp = exact_proba_vjp(est)

    def best(f):
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = f()
            times.append(time.perf_counter() - t0)
        return min(times), out

    t_exact, g = best(lambda: vjp(Z, cot))
    t_fd, fd = best(lambda: central_differences(est.predict_proba, Z, cot))
    err = np.abs(g - fd).max() / np.abs(fd).max()
    print(f"digits MLP(32,), {n_rows} rows x 64 features: exact {1e3 * t_exact:.2f} ms, "
          f"central differences ({2 * 64} predict_proba calls) {1e3 * t_fd:.2f} ms, "
          f"speed-up {t_fd / t_exact:.0f}x, rel. difference {err:.1e}")


if __name__ == "__main__":
    timing()
