"""Exact vector-Jacobian products of ``predict_proba`` for fitted scikit-learn models.

Every supported estimator is compiled into a pair of batched functions::

    forward(X) -> (Y, cache)        # Y is what the estimator's method returns
    backward(cache, gY) -> gX       # gX[i] = sum_k gY[i, k] * dY[i, k] / dX[i]

Pairs are composed backwards through Pipelines, ColumnTransformers, one-vs-rest and
calibration wrappers. There is no Python loop over rows; loops run over layers,
classes, pipeline steps or calibrated sub-models only.

Conventions at non-differentiable points
----------------------------------------
* Clipping (``modified_huber`` probabilities, ``MinMaxScaler(clip=True)``,
  ``MaxAbsScaler(clip=True)``): a value exactly on the clip boundary gets the
  derivative of the unclipped side (slope inside the interval).
* ReLU at exactly 0: derivative 0 (the convention of sklearn's own back-propagation).
* ``Normalizer(norm="l1")``: ``d|x_j|/dx_j = sign(x_j)``, 0 at ``x_j == 0``.
  ``Normalizer(norm="max")``: ties for the largest ``|x_j|`` go to the first index
  (``np.argmax``).
* Isotonic calibration: the calibrator is piecewise linear in the score. Inside a
  segment the segment's slope is used; at an interior threshold the slope of the
  segment to its right (one-sided), at the upper end the slope of the last segment,
  outside ``[X_min_, X_max_]`` 0 (the calibrator clips its input). Flat segments
  give 0.
* Normalisations that fall back to a uniform distribution when every unnormalised
  probability is 0 (OvR logistic/modified_huber, calibration) are locally constant
  there and get gradient 0.

Tables
------
With a table (``exact_proba_vjp(..., table=codec)``) the rows hold category codes. The
ColumnTransformer that first receives them may encode categorical columns with any
transformer (``OneHotEncoder``, ``OrdinalEncoder``, a Pipeline with an imputer...): the
gradient search never moves a category (categories move in the neighbour search only), so
such a part is constant for each row and its exact derivative is 0; its output is computed
by the transformer itself on the decoded columns, once per distinct block of categories. A
part mixing categorical and numeric columns is unsupported.

Memory: caches are O(n * width) per layer/step. Exceptions (all still free of any
O(n * d**2) term): QuadraticDiscriminantAnalysis keeps one (n, d) whitened copy per
class, PolynomialFeatures keeps (n, n_output_features, degree) factors, and
one-vs-rest / calibration ensembles keep one cache per sub-model.
"""

import copy

import numpy as np
from scipy import sparse
from scipy.special import expit

from sklearn.calibration import CalibratedClassifierCV, _SigmoidCalibration
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.discriminant_analysis import (
    LinearDiscriminantAnalysis,
    QuadraticDiscriminantAnalysis,
)
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.linear_model._base import LinearClassifierMixin
from sklearn.multiclass import OneVsRestClassifier, _ConstantPredictor
from sklearn.feature_selection import SelectorMixin
from sklearn.impute import SimpleImputer
from sklearn.naive_bayes import GaussianNB
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    MaxAbsScaler,
    MinMaxScaler,
    Normalizer,
    PolynomialFeatures,
    RobustScaler,
    StandardScaler,
)
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted

from .._decision_scores import DecisionScores
from .._wrappers import is_refitted_search

try:
    from sklearn.frozen import FrozenEstimator
except ImportError:  # sklearn < 1.6
    FrozenEstimator = None

__all__ = ["ProbaVJP", "UnsupportedModel", "exact_proba_vjp", "supports_exact_gradients"]


class UnsupportedModel(TypeError):
    """Raised when no exact gradient is available for an estimator or one of its steps."""


# --------------------------------------------------------------------------------------
# registry and composition
# --------------------------------------------------------------------------------------

_REGISTRY = {}


def _register(cls, *methods):
    """Register ``builder(est, path) -> (forward, backward)`` for ``cls.method``."""

    def decorator(builder):
        for method in methods:
            _REGISTRY[(cls, method)] = builder
        return builder

    return decorator


def _describe(path):
    return " > ".join(path) if path else "<top level>"


def _thresholds_probabilities(est, method):
    """Whether ``est`` is a fitted threshold classifier asked for ``predict_proba``, which it
    answers with its ``estimator_``'s (its ``predict`` thresholds them)."""
    from sklearn.model_selection import FixedThresholdClassifier, TunedThresholdClassifierCV

    return method == "predict_proba" and hasattr(est, "estimator_") and \
        isinstance(est, (FixedThresholdClassifier, TunedThresholdClassifierCV))


def _unsupported(est, method, path, why=""):
    name = est if isinstance(est, str) else type(est).__name__
    msg = f"{name} (at {_describe(path)}) has no exact {method} gradient"
    raise UnsupportedModel(msg + (f": {why}" if why else ""))


def _compile(est, method, path):
    """Return ``(forward, backward)`` for ``getattr(est, method)``.

    The registered builder is used only if ``est``'s class inherits the very same
    ``method`` as the registered class, so that a subclass overriding the method is
    reported as unsupported rather than differentiated wrongly.
    """
    if est is None or (isinstance(est, str) and est == "passthrough"):
        if method == "transform":
            return _identity()
        _unsupported("passthrough", method, path)
    if isinstance(est, str):
        _unsupported(est, method, path)
    if FrozenEstimator is not None and isinstance(est, FrozenEstimator):
        return _compile(est.estimator, method, path + ["FrozenEstimator.estimator"])
    if is_refitted_search(est):
        return _compile(est.best_estimator_, method,
                        path + [f"{type(est).__name__}.best_estimator_"])
    if _thresholds_probabilities(est, method):
        return _compile(est.estimator_, method, path + [f"{type(est).__name__}.estimator_"])
    for cls in type(est).__mro__:
        builder = _REGISTRY.get((cls, method))
        if builder is None:
            continue
        if _definition(type(est), method) is not _definition(cls, method):
            break
        return builder(est, path)
    _unsupported(est, method, path, "estimator class not supported")


def _definition(cls, name):
    # Raw class attribute: available_if descriptors build a new wrapper on every access.
    for klass in cls.__mro__:
        if name in vars(klass):
            return vars(klass)[name]
    return None


def _identity():
    return (lambda X: (X, None)), (lambda cache, g: g)


def _chain(*nodes):
    """Compose nodes left to right; the backward pass runs right to left."""
    forwards = [f for f, _ in nodes]
    backwards = [b for _, b in nodes]

    def forward(X):
        caches = []
        for f in forwards:
            X, cache = f(X)
            caches.append(cache)
        return X, caches

    def backward(caches, g):
        for b, cache in zip(reversed(backwards), reversed(caches)):
            g = b(cache, g)
        return g

    return forward, backward


def _elementwise(f, df_from_output):
    """Node for ``Y = f(X)`` with ``dY/dX`` expressed through ``Y``."""
    return (lambda X: ((Y := f(X)), Y)), (lambda Y, g: g * df_from_output(Y))


# --------------------------------------------------------------------------------------
# probability heads
# --------------------------------------------------------------------------------------


def _softmax(S):
    # Same arithmetic as sklearn.utils.extmath.softmax / MLP's inplace_softmax.
    P = np.exp(S - S.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    return P


def _softmax_node():
    def backward(P, g):
        return P * (g - np.sum(g * P, axis=1, keepdims=True))

    return (lambda S: ((P := _softmax(S)), P)), backward


def _binary_sigmoid_node():
    """1-D score ``s`` -> ``[1 - expit(s), expit(s)]``."""

    def forward(s):
        p = expit(s)
        return np.stack([1 - p, p], axis=1), p

    def backward(p, g):
        return (g[:, 1] - g[:, 0]) * p * (1 - p)

    return forward, backward


def _two_column_node():
    """1-D probability ``p`` -> ``[1 - p, p]``."""

    def forward(p):
        return np.stack([1 - p, p], axis=1), None

    return forward, (lambda cache, g: g[:, 1] - g[:, 0])


def _ovr_normalise_node(uniform_if_all_zero):
    """``p = q / q.sum(1)``; rows summing to 0 become uniform or stay as they are."""

    def forward(Q):
        total = Q.sum(axis=1, keepdims=True)
        zero = total[:, 0] == 0
        P = Q / np.where(zero[:, None], 1.0, total)
        if uniform_if_all_zero:
            P[zero] = 1.0 / Q.shape[1]
        return P, (P, total, zero)

    def backward(cache, g):
        P, total, zero = cache
        gQ = (g - np.sum(g * P, axis=1, keepdims=True)) / np.where(zero[:, None], 1.0, total)
        # all-zero rows: uniform output is locally constant, else Q itself passes through
        gQ[zero] = 0.0 if uniform_if_all_zero else g[zero]
        return gQ

    return forward, backward


# --------------------------------------------------------------------------------------
# linear models
# --------------------------------------------------------------------------------------


def _linear_decision(est):
    """``LinearClassifierMixin.decision_function``: 1-D output when coef_ has one row."""
    coef = np.asarray(est.coef_, dtype=np.float64)
    coef = coef.reshape(1, -1) if coef.ndim == 1 else coef
    intercept = np.asarray(est.intercept_, dtype=np.float64)
    one_row = coef.shape[0] == 1

    def forward(X):
        S = X @ coef.T + intercept
        return (S.reshape(-1) if one_row else S), None

    def backward(cache, g):
        return np.outer(g, coef[0]) if one_row else g @ coef

    return forward, backward


@_register(LogisticRegression, "decision_function")
@_register(LinearDiscriminantAnalysis, "decision_function")
@_register(SGDClassifier, "decision_function")
# every classifier that keeps LinearClassifierMixin's decision_function: LinearSVC,
# RidgeClassifier(CV), Perceptron, PassiveAggressiveClassifier (inside
# CalibratedClassifierCV, the user guide's way to give them probabilities)
@_register(LinearClassifierMixin, "decision_function")
def _build_linear_decision(est, path):
    return _linear_decision(est)


@_register(DecisionScores, "predict_proba")
def _build_decision_scores(est, path):
    decision = _compile(est.estimator, "decision_function",
                        path + [f"{type(est).__name__}.estimator"])
    return _chain(decision, _binary_sigmoid_node() if len(est.classes_) == 2 else
                  _softmax_node())


@_register(LogisticRegression, "predict_proba")
@_register(LinearDiscriminantAnalysis, "predict_proba")
def _build_logistic_proba(est, path):
    # Both: expit -> [1-p, p] for <= 2 classes, softmax of the decision function otherwise.
    head = _binary_sigmoid_node() if len(est.classes_) <= 2 else _softmax_node()
    return _chain(_linear_decision(est), head)


def _modified_huber_node():
    def forward(S):
        return (np.clip(S, -1, 1) + 1.0) / 2.0, np.abs(S) <= 1

    return forward, (lambda inside, g: 0.5 * g * inside)


@_register(SGDClassifier, "predict_proba")
def _build_sgd_proba(est, path):
    binary = len(est.classes_) == 2
    if est.loss == "log_loss":
        # _predict_proba_lr: expit, then [1-p, p] or OvR normalisation.
        if binary:
            return _chain(_linear_decision(est), _binary_sigmoid_node())
        squash = _elementwise(expit, lambda P: P * (1 - P))
    elif est.loss == "modified_huber":
        squash = _modified_huber_node()
        if binary:
            return _chain(_linear_decision(est), squash, _two_column_node())
    else:
        _unsupported(est, "predict_proba", path, f"loss={est.loss!r} has no predict_proba")
    return _chain(_linear_decision(est), squash, _ovr_normalise_node(True))


# --------------------------------------------------------------------------------------
# MLP
# --------------------------------------------------------------------------------------

_HIDDEN = {
    "identity": (lambda Z: Z, lambda A: 1.0),
    "logistic": (expit, lambda A: A * (1 - A)),
    "tanh": (np.tanh, lambda A: 1 - A * A),
    "relu": (lambda Z: np.maximum(Z, 0), lambda A: A > 0),
}


@_register(MLPClassifier, "predict_proba")
def _build_mlp_proba(est, path):
    if est.activation not in _HIDDEN:
        _unsupported(est, "predict_proba", path, f"activation={est.activation!r}")
    if est.out_activation_ not in ("softmax", "logistic", "identity"):
        _unsupported(est, "predict_proba", path, f"output {est.out_activation_!r}")
    act, dact = _HIDDEN[est.activation]
    weights = [np.asarray(W, dtype=np.float64) for W in est.coefs_]
    biases = [np.asarray(b, dtype=np.float64) for b in est.intercepts_]
    out = est.out_activation_

    def forward(X):
        hidden = []
        A = X
        for i, (W, b) in enumerate(zip(weights, biases)):
            A = A @ W + b
            if i < len(weights) - 1:
                A = act(A)
                hidden.append(A)
        if out == "softmax":
            A = _softmax(A)
        elif out == "logistic":
            A = expit(A)
        P = np.stack([1 - A[:, 0], A[:, 0]], axis=1) if A.shape[1] == 1 else A
        return P, (hidden, A)

    def backward(cache, g):
        hidden, Y = cache
        if Y.shape[1] == 1:
            g = (g[:, 1] - g[:, 0])[:, None]
        if out == "softmax":
            g = Y * (g - np.sum(g * Y, axis=1, keepdims=True))
        elif out == "logistic":
            g = g * Y * (1 - Y)
        for i in range(len(weights) - 1, 0, -1):
            g = (g @ weights[i].T) * dact(hidden[i - 1])
        return g @ weights[0].T

    return forward, backward


# --------------------------------------------------------------------------------------
# generative classifiers
# --------------------------------------------------------------------------------------


def _qda_scores(est):
    """``QuadraticDiscriminantAnalysis._decision_function`` (log posterior up to a const)."""
    means = [np.asarray(m, dtype=np.float64) for m in est.means_]
    whiten = [R * (S ** (-0.5)) for R, S in zip(est.rotations_, est.scalings_)]
    offset = -0.5 * np.asarray([np.sum(np.log(s)) for s in est.scalings_])
    offset = offset + np.log(est.priors_)

    def forward(X):
        projected = [(X - m) @ W for m, W in zip(means, whiten)]
        norm2 = np.stack([np.sum(Xw**2, axis=1) for Xw in projected], axis=1)
        return -0.5 * norm2 + offset, projected

    def backward(projected, g):
        gX = 0.0
        for k, (Xw, W) in enumerate(zip(projected, whiten)):
            gX = gX - (g[:, k:k + 1] * Xw) @ W.T
        return gX

    return forward, backward


@_register(QuadraticDiscriminantAnalysis, "predict_proba")
def _build_qda_proba(est, path):
    return _chain(_qda_scores(est), _softmax_node())


@_register(QuadraticDiscriminantAnalysis, "decision_function")
def _build_qda_decision(est, path):
    if len(est.classes_) != 2:
        return _qda_scores(est)
    diff = (lambda S: (S[:, 1] - S[:, 0], None)), (lambda c, g: np.stack([-g, g], axis=1))
    return _chain(_qda_scores(est), diff)


@_register(GaussianNB, "predict_proba")
def _build_gnb_proba(est, path):
    theta = np.asarray(est.theta_, dtype=np.float64)
    var = np.asarray(est.var_, dtype=np.float64)
    inv_var = 1.0 / var
    log_prior = np.log(est.class_prior_) - 0.5 * np.sum(np.log(2.0 * np.pi * var), axis=1)

    def forward(X):
        jll = np.stack(
            [-0.5 * np.sum((X - theta[k]) ** 2 / var[k], axis=1) for k in range(len(theta))],
            axis=1,
        )
        return jll + log_prior, X

    def backward(X, g):
        # d jll_k / dx = -(x - theta_k) / var_k, weighted by g_k and summed over k
        return g @ (theta * inv_var) - X * (g @ inv_var)

    return _chain((forward, backward), _softmax_node())


# --------------------------------------------------------------------------------------
# meta-estimators
# --------------------------------------------------------------------------------------


@_register(_ConstantPredictor, "predict_proba")
def _build_constant_proba(est, path):
    y = float(np.asarray(est.y_, dtype=np.float64).reshape(-1)[0])

    def forward(X):
        return np.repeat([[1 - y, y]], X.shape[0], axis=0), X.shape

    return forward, (lambda shape, g: np.zeros(shape))


@_register(OneVsRestClassifier, "predict_proba")
def _build_ovr_proba(est, path):
    subs = [
        _compile(e, "predict_proba", path + [f"OneVsRestClassifier.estimators_[{i}]"])
        for i, e in enumerate(est.estimators_)
    ]

    def stacked_forward(X):
        outs = [f(X) for f, _ in subs]
        return np.stack([P[:, 1] for P, _ in outs], axis=1), outs

    def stacked_backward(outs, g):
        gX = 0.0
        for k, ((_, b), (P, cache)) in enumerate(zip(subs, outs)):
            gP = np.zeros_like(P)
            gP[:, 1] = g[:, k]
            gX = gX + b(cache, gP)
        return gX

    nodes = [(stacked_forward, stacked_backward)]
    if len(subs) == 1:
        nodes.append(_chain(((lambda Y: (Y[:, 0], None)), (lambda c, g: g[:, None])),
                            _two_column_node()))
    if not est.multilabel_:
        # np.divide(..., where=row_sums != 0): zero rows are left untouched
        nodes.append(_ovr_normalise_node(False))
    return _chain(*nodes)


def _calibrator_node(cal, path):
    """Node for one fitted calibrator mapping a 1-D score to a 1-D probability."""
    if isinstance(cal, _SigmoidCalibration):
        a = float(cal.a_)

        def forward(t):
            # _SigmoidCalibration.predict's arithmetic, without its per-call validation
            p = expit(-(cal.a_ * np.ravel(t) + cal.b_))
            return p, -a * p * (1 - p)

    elif isinstance(cal, IsotonicRegression):
        x = np.asarray(cal.X_thresholds_, dtype=np.float64)
        y = np.asarray(cal.y_thresholds_, dtype=np.float64)
        if cal.out_of_bounds != "clip":
            _unsupported(cal, "predict", path, f"out_of_bounds={cal.out_of_bounds!r}")

        def forward(t):
            # IsotonicRegression.predict's arithmetic (scipy's linear interp1d is np.interp),
            # without its per-call validation: 90% of a calibrated model's search time
            t = np.ravel(t)
            p = np.interp(np.clip(t, cal.X_min_, cal.X_max_), x, y) if x.size > 1 else \
                np.full(t.shape, y[0] if y.size else np.nan)
            if x.size < 2:
                return p, np.zeros_like(t)
            seg = np.clip(np.searchsorted(x, t, side="right") - 1, 0, x.size - 2)
            slope = (y[seg + 1] - y[seg]) / (x[seg + 1] - x[seg])
            return p, np.where((t >= x[0]) & (t <= x[-1]), slope, 0.0)

    else:
        _unsupported(cal, "predict", path, "unknown calibrator")
    return forward, (lambda slope, g: g * slope)


def _calibrated_node(cc, n_classes, path):
    """``_CalibratedClassifier.predict_proba`` for methods 'sigmoid' and 'isotonic'."""
    base = cc.estimator
    if cc.method not in ("sigmoid", "isotonic"):
        _unsupported(
            f"CalibratedClassifierCV(method={cc.method!r})", "predict_proba", path,
            "temperature scaling switches its logit transform on the values of the whole "
            "batch, so it is not a row-wise differentiable function",
        )
    # _get_response_values(response_method=["decision_function", "predict_proba"])
    method = "decision_function" if hasattr(base, "decision_function") else "predict_proba"
    base_fwd, base_bwd = _compile(base, method, path + ["estimator"])
    binary_target = type_of_target(base.classes_) == "binary"
    pick = None
    if method == "predict_proba" and binary_target:
        pick = int(np.flatnonzero(base.classes_ == base.classes_[-1])[0])
    cal_nodes = [_calibrator_node(c, path + [f"calibrators[{i}]"])
                 for i, c in enumerate(cc.calibrators)]
    classes = np.asarray(cc.classes)
    columns = np.searchsorted(classes, base.classes_)
    if n_classes == 2:
        columns = columns + 1

    def forward(X):
        R, base_cache = base_fwd(X)
        shape = R.shape
        if pick is not None:
            R = R[:, pick]
        R = R.reshape(R.shape[0], -1)
        proba = np.zeros((X.shape[0], n_classes))
        slopes = []
        for k, (f, _) in enumerate(cal_nodes):
            proba[:, columns[k]], slope = f(R[:, k])
            slopes.append(slope)
        if n_classes == 2:
            proba[:, 0] = 1.0 - proba[:, 1]
            norm = None
        else:
            proba, norm = _ovr_normalise_node(True)[0](proba)
        clamped = (proba > 1.0) & (proba <= 1.0 + 1e-5)
        proba[clamped] = 1.0
        return proba, (base_cache, shape, slopes, norm, clamped)

    def backward(cache, g):
        base_cache, shape, slopes, norm, clamped = cache
        g = np.where(clamped, 0.0, g)
        if n_classes == 2:
            gq = np.zeros_like(g)
            gq[:, 1] = g[:, 1] - g[:, 0]
        else:
            gq = _ovr_normalise_node(True)[1](norm, g)
        gR = np.stack([s * gq[:, columns[k]] for k, s in enumerate(slopes)], axis=1)
        if pick is not None:
            full = np.zeros(shape)
            full[:, pick] = gR[:, 0]
            gR = full
        return base_bwd(base_cache, gR.reshape(shape))

    return forward, backward


@_register(CalibratedClassifierCV, "predict_proba")
def _build_calibrated_proba(est, path):
    n_classes = len(est.classes_)
    subs = [
        _calibrated_node(cc, n_classes, path + [f"CalibratedClassifierCV.calibrated_"
                                                f"classifiers_[{i}]"])
        for i, cc in enumerate(est.calibrated_classifiers_)
    ]
    m = len(subs)

    def forward(X):
        outs = [f(X) for f, _ in subs]
        mean = np.zeros((X.shape[0], n_classes))
        for P, _ in outs:
            mean += P
        return mean / m, [c for _, c in outs]

    def backward(caches, g):
        gX = 0.0
        for (_, b), cache in zip(subs, caches):
            gX = gX + b(cache, g / m)
        return gX

    return forward, backward


def _pipeline_builder(method):
    def builder(est, path, table=None):
        if table is not None and len(est.steps) == 2 and method != "transform":
            folded = _folded_linear_table(est.steps[0][1], est.steps[1][1], method,
                                          path + [f"Pipeline step {est.steps[0][0]!r}"],
                                          table)
            if folded is not None:
                return folded
        nodes = []
        last = len(est.steps) - 1
        for i, (name, step) in enumerate(est.steps):
            step_method = "transform" if i < last else method
            step_path = path + [f"Pipeline step {name!r}"]
            if i == 0 and table is not None:
                nodes.append(_compile_on_table(step, step_method, step_path, table))
            else:
                nodes.append(_compile(step, step_method, step_path))
        return _chain(*nodes)

    return builder


for _method in ("predict_proba", "decision_function", "transform"):
    _REGISTRY[(Pipeline, _method)] = _pipeline_builder(_method)


def _compile_on_table(est, method, path, table):
    """``_compile`` for the step that first receives a table's rows (codes for categories)."""
    if FrozenEstimator is not None and isinstance(est, FrozenEstimator):
        return _compile_on_table(est.estimator, method, path + ["FrozenEstimator.estimator"],
                                 table)
    if is_refitted_search(est):
        return _compile_on_table(est.best_estimator_, method,
                                 path + [f"{type(est).__name__}.best_estimator_"], table)
    if _thresholds_probabilities(est, method):
        return _compile_on_table(est.estimator_, method,
                                 path + [f"{type(est).__name__}.estimator_"], table)
    if isinstance(est, Pipeline):
        return _pipeline_builder(method)(est, path, table)
    if isinstance(est, ColumnTransformer) and method == "transform":
        return _build_column_transformer(est, path, table)
    _unsupported(est, method, path, "it is given category codes; encode the categorical "
                 "columns in a ColumnTransformer")


# Output columns of a ColumnTransformer past which its exact gradient, dense, costs more than
# the numerical one: 2**20 hashed words took 76 s for 2 rows, numerical gradients 0.2 s.
_WIDEST_OUTPUT = 2**16


def _column_parts(est, path, table):
    """A ColumnTransformer's parts: ``(parts, constant, width)``, the compiled parts fed
    numeric columns ``(cols, out, node)``, those fed only categorical ones ``(trans, cols,
    out)``, and the output's width."""
    categorical = np.zeros(est.n_features_in_, dtype=bool) if table is None else \
        np.asarray(table.categorical_, dtype=bool)
    parts, constant = [], []
    for name, trans, columns in est.transformers_:
        out = est.output_indices_[name]
        if (isinstance(trans, str) and trans == "drop") or out.stop == out.start:
            continue
        cols = np.asarray(est._transformer_to_input_indices[name], dtype=np.intp)
        part_path = path + [f"ColumnTransformer {name!r}"]
        if categorical[cols].all():
            # The gradient search never moves a category (FISTA is refused with a mutable
            # one): a part fed only categorical columns is constant for each row.
            scalar = isinstance(columns, (str, int, np.integer))
            constant.append((trans, cols[0] if scalar else cols, out))
        elif categorical[cols].any():
            _unsupported(trans, "transform", part_path,
                         "it mixes categorical and numeric columns")
        else:
            parts.append((cols, out, _compile(trans, "transform", part_path)))
    width = max([out.stop for _, out, _ in parts] + [out.stop for *_, out in constant],
                default=0)
    return parts, constant, width


@_register(ColumnTransformer, "transform")
def _build_column_transformer(est, path, table=None):
    # A sparse output (``sparse_output_``) is built dense here: the same numbers.
    parts, constant, width = _column_parts(est, path, table)
    if width > _WIDEST_OUTPUT:
        _unsupported(est, "transform", path,
                     f"its {width:,} output columns would be filled densely for every row at "
                     "every step (a HashingVectorizer's 2**20), where the numerical gradient "
                     "(gradient='numerical') asks the model about a few rows per numeric "
                     "feature")
    constant_outputs = _constant_parts(constant, table) if constant else None

    def forward(X):
        Y = np.empty((X.shape[0], width))
        if constant_outputs is not None:
            for (_, _, out), Yk in zip(constant, constant_outputs(X)):
                Y[:, out] = Yk
        caches = []
        for cols, out, (f, _) in parts:
            Yk, cache = f(X[:, cols])
            Y[:, out] = Yk
            caches.append(cache)
        return Y, (X.shape, caches)

    def backward(cache, g):
        shape, caches = cache
        gX = np.zeros(shape)
        for (cols, out, (_, b)), c in zip(parts, caches):
            gX[:, cols] += b(c, g[:, out])  # cols are unique within one transformer
        return gX

    return forward, backward


def _folded_linear_table(transformer, last, method, path, table):
    """``Pipeline(ColumnTransformer, linear model)`` on a table whose categorical columns
    feed parts of their own (a vectorizer of a text column, a one-hot encoder): those parts
    are constant for each row (the gradient search never moves a category), so their share
    of the linear decision is computed once per row's categories, and the rows the search
    asks carry the numeric parts' outputs alone, not the text's thousands of columns (a
    vocabulary of 7,400 words made explaining 7 times slower; 2**15 hashed words, 25 times).
    None where it does not apply."""
    while True:  # the linear model inside the wrappers that answer with it
        if FrozenEstimator is not None and isinstance(last, FrozenEstimator):
            last = last.estimator
        elif is_refitted_search(last):
            last = last.best_estimator_
        elif _thresholds_probabilities(last, method):
            last = last.estimator_
        else:
            break
    if not isinstance(transformer, ColumnTransformer) or \
            not isinstance(last, LinearClassifierMixin) or \
            _definition(type(last), "decision_function") is not \
            _definition(LinearClassifierMixin, "decision_function"):
        return None
    parts, constant, _ = _column_parts(transformer, path, table)
    if not constant:
        return None
    coef = np.asarray(last.coef_, dtype=np.float64)
    coef = coef.reshape(1, -1) if coef.ndim == 1 else coef
    n_scores = coef.shape[0]
    kept = [np.arange(out.start, out.stop) for _, out, _ in parts]
    n_kept = sum(len(columns) for columns in kept)
    starts = np.cumsum([0] + [len(columns) for columns in kept])
    # the model on [numeric parts' outputs, each score's constant share], the share's weight 1
    folded = copy.copy(last)
    folded.coef_ = np.hstack([coef[:, np.concatenate(kept)] if kept else
                              np.zeros((n_scores, 0)), np.eye(n_scores)])
    head = _compile(folded, method, path + [f"{type(last).__name__} (folded)"])
    weights = [coef[:, out].T for *_, out in constant]
    shares = _constant_parts(constant, table, combine=lambda outputs: sum(
        output @ weight for output, weight in zip(outputs, weights)))

    def forward(X):
        Y = np.empty((X.shape[0], n_kept + n_scores))
        Y[:, n_kept:] = shares(X)
        caches = []
        for (cols, _, (f, _)), start, stop in zip(parts, starts[:-1], starts[1:]):
            Yk, cache = f(X[:, cols])
            Y[:, start:stop] = Yk
            caches.append(cache)
        out, head_cache = head[0](Y)
        return out, (X.shape, caches, head_cache)

    def backward(cache, g):
        shape, caches, head_cache = cache
        gY = head[1](head_cache, g)
        gX = np.zeros(shape)
        for (cols, _, (_, b)), start, stop, c in zip(parts, starts[:-1], starts[1:], caches):
            gX[:, cols] += b(c, gY[:, start:stop])
        return gX

    return forward, backward


def _constant_parts(constant, table, combine=None):
    """Outputs of the parts fed only categorical columns, by their own ``transform``; with
    ``combine``, ``combine(outputs)`` instead (of the parts' outputs, sparse or dense, for
    several rows: one row each), in one array.

    They depend on a row's categories alone: each distinct combination of categories is
    transformed once and kept, as a search asks the same rows at every iteration.
    """
    categorical_columns = np.flatnonzero(table.categorical_)
    kept = {}

    def outputs(X):
        combinations, inverse = np.unique(X[:, categorical_columns], axis=0,
                                          return_inverse=True)
        keys = [row.tobytes() for row in combinations]
        new = [i for i, key in enumerate(keys) if key not in kept]
        if new:
            first = np.unique(inverse.ravel(), return_index=True)[1][new]
            rows = table.decode(X[first])
            take = rows.iloc.__getitem__ if hasattr(rows, "iloc") else rows.__getitem__
            outputs = [trans.transform(take((slice(None), cols))) for trans, cols, _ in constant]
            if combine is not None:  # (on a sparse output as it is: 2**20 hashed words)
                combined = _dense(combine(outputs))
            values = [_dense(value) for value in outputs] if combine is None else None
            for k, i in enumerate(new):
                kept[keys[i]] = [v[k] for v in values] if combine is None else combined[k]
        inverse = inverse.ravel()
        if combine is not None:
            return np.stack([kept[key] for key in keys])[inverse]
        return [np.stack([kept[key][part] for key in keys])[inverse]
                for part in range(len(constant))]

    return outputs


def _dense(Y):
    return np.asarray(Y.toarray() if sparse.issparse(Y) else Y, dtype=np.float64)


# --------------------------------------------------------------------------------------
# transformers: forward is the transformer's own transform, backward uses the input
# --------------------------------------------------------------------------------------


def _transform_node(est, backward):
    def forward(X):
        return np.asarray(est.transform(X), dtype=np.float64), X

    return forward, backward


@_register(StandardScaler, "transform")
def _build_standard(est, path):
    scale = est.scale_

    def forward(X):
        if not isinstance(X, np.ndarray):
            return np.asarray(est.transform(X), dtype=np.float64), X
        # StandardScaler.transform's arithmetic, without its per-call validation (which
        # cost more than the arithmetic on a batch's rows)
        Z = np.array(X, dtype=np.float64)
        if est.with_mean:
            Z -= est.mean_
        if est.with_std:
            Z /= scale
        return Z, X

    return forward, lambda X, g: g if scale is None else g / scale


@_register(SimpleImputer, "transform")
def _build_simple_imputer(est, path):
    """The identity on the cells it keeps; a missing cell, imputed by a constant, and the
    missing-value indicator columns have no gradient; features it drops (missing in every
    row it was fitted on) neither."""
    statistics = np.asarray(est.statistics_)
    n_features = len(statistics)
    kept = np.arange(n_features)
    if est.strategy != "constant" and not getattr(est, "keep_empty_features", False) and \
            statistics.dtype.kind == "f":
        kept = np.flatnonzero(~np.isnan(statistics))

    def missing(X):
        if isinstance(est.missing_values, float) and np.isnan(est.missing_values):
            return np.isnan(X)
        return X == est.missing_values

    def backward(X, g):
        X = np.asarray(X, dtype=np.float64)
        grad = np.zeros(X.shape)
        grad[:, kept] = g[:, :len(kept)] * ~missing(X[:, kept])
        return grad

    return _transform_node(est, backward)


@_register(RobustScaler, "transform")
def _build_robust(est, path):
    scale = est.scale_ if est.with_scaling else None
    return _transform_node(est, lambda X, g: g if scale is None else g / scale)


@_register(MinMaxScaler, "transform")
def _build_minmax(est, path):
    lo, hi = est.feature_range

    def backward(X, g):
        g = g * est.scale_
        if est.clip:
            raw = X * est.scale_ + est.min_
            g = g * ((raw >= lo) & (raw <= hi))
        return g

    return _transform_node(est, backward)


@_register(MaxAbsScaler, "transform")
def _build_maxabs(est, path):
    def backward(X, g):
        g = g / est.scale_
        if getattr(est, "clip", False):
            g = g * (np.abs(X / est.scale_) <= 1.0)
        return g

    return _transform_node(est, backward)


@_register(PCA, "transform")
def _build_pca(est, path):
    components = np.asarray(est.components_, dtype=np.float64)
    if est.whiten:
        scale = np.sqrt(est.explained_variance_)
        scale[scale < np.finfo(scale.dtype).eps] = np.finfo(scale.dtype).eps
        components = components / scale[:, None]
    return _transform_node(est, lambda X, g: g @ components)


@_register(Normalizer, "transform")
def _build_normalizer(est, path):
    norm = est.norm
    if norm not in ("l1", "l2", "max"):
        _unsupported(est, "transform", path, f"norm={norm!r}")
    tiny = 10 * np.finfo(np.float64).eps

    def backward(X, g):
        absX = np.abs(X)
        if norm == "l2":
            r = np.sqrt(np.einsum("ij,ij->i", X, X))
        elif norm == "l1":
            r = absX.sum(axis=1)
        else:
            r = absX.max(axis=1)
        # _handle_zeros_in_scale: near-zero norms are replaced by 1 (identity map)
        const = r < tiny
        r = np.where(const, 1.0, r)[:, None]
        gx = np.einsum("ij,ij->i", g, X)[:, None] / r**2  # (g . x) / r^2
        if norm == "l2":
            gX = g / r - gx * (X / r)
        elif norm == "l1":
            gX = g / r - gx * np.sign(X)
        else:
            gX = g / r
            rows = np.arange(X.shape[0])
            top = np.argmax(absX, axis=1)
            gX[rows, top] -= gx[:, 0] * np.sign(X[rows, top])
        gX[const] = g[const]
        return gX

    return _transform_node(est, backward)


@_register(PolynomialFeatures, "transform")
def _build_poly(est, path):
    powers = np.asarray(est.powers_, dtype=np.int64)  # (n_out, d)
    n_out, d = powers.shape
    slots = max(1, int((powers > 0).sum(axis=1).max(initial=0)))
    # For each output, the features it depends on (padded with exponent 0 on feature 0).
    feat = np.zeros((n_out, slots), dtype=np.intp)
    expo = np.zeros((n_out, slots), dtype=np.int64)
    for j in range(n_out):
        nz = np.flatnonzero(powers[j])
        feat[j, : nz.size] = nz
        expo[j, : nz.size] = powers[j, nz]
    # (n_out * slots, d) 0/1 matrix adding each (output, slot) term to its feature
    scatter = sparse.csr_matrix(
        (np.ones(n_out * slots), (np.arange(n_out * slots), feat.reshape(-1))),
        shape=(n_out * slots, d),
    )

    def backward(X, g):
        base = X[:, feat]  # (n, n_out, slots)
        factors = base**expo
        deriv = np.empty_like(factors)
        for s in range(slots):
            others = np.prod(np.delete(factors, s, axis=2), axis=2) if slots > 1 else 1.0
            lower = np.where(expo[:, s] > 0, expo[:, s] - 1, 0)
            deriv[:, :, s] = expo[:, s] * base[:, :, s] ** lower * others
        contrib = (g[:, :, None] * deriv).reshape(X.shape[0], -1)
        return np.asarray((scatter.T @ contrib.T).T)

    return _transform_node(est, backward)


# Element-wise numpy functions a FunctionTransformer may apply: the derivative from the
# input and the output.
_ELEMENTWISE = {
    np.log1p: lambda X, Y: 1.0 / (1.0 + X),
    np.log: lambda X, Y: 1.0 / X,
    np.log2: lambda X, Y: 1.0 / (X * np.log(2.0)),
    np.log10: lambda X, Y: 1.0 / (X * np.log(10.0)),
    np.exp: lambda X, Y: Y,
    np.expm1: lambda X, Y: Y + 1.0,
    np.sqrt: lambda X, Y: 0.5 / Y,
    np.cbrt: lambda X, Y: 1.0 / (3.0 * Y**2),
    np.tanh: lambda X, Y: 1.0 - Y**2,
    np.arcsinh: lambda X, Y: 1.0 / np.sqrt(X**2 + 1.0),
}


@_register(FunctionTransformer, "transform")
def _build_function_transformer(est, path):
    if est.func is None:
        return _identity()
    derivative = _ELEMENTWISE.get(est.func)
    if derivative is None or est.kw_args:
        _unsupported(est, "transform", path, f"func={est.func!r} is neither the identity nor "
                     f"one of numpy's {', '.join(f.__name__ for f in _ELEMENTWISE)}")

    def forward(X):
        Y = np.asarray(est.transform(X), dtype=np.float64)
        return Y, (np.asarray(X, dtype=np.float64), Y)

    def backward(cache, g):
        X, Y = cache
        with np.errstate(divide="ignore", invalid="ignore"):
            return g * derivative(X, Y)

    return forward, backward


@_register(SelectorMixin, "transform")
def _build_selector(est, path):
    """A feature selector (``SelectKBest``, ``SelectFromModel``, ``VarianceThreshold``...):
    the kept columns, whose gradients go back to their places."""
    support = np.asarray(est.get_support(), bool)

    def forward(X):
        return np.asarray(X, dtype=np.float64)[:, support], X.shape[1]

    def backward(width, g):
        out = np.zeros((g.shape[0], width))
        out[:, support] = g
        return out

    return forward, backward


# --------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------


class ProbaVJP:
    """The compiled ``predict_proba`` of an estimator and its vector-Jacobian product.

    Calling it, ``vjp(Z, cotangent, return_proba=False)``, runs one forward and one backward
    pass (see :func:`exact_proba_vjp`); :meth:`forward` runs the forward pass alone.
    """

    def __init__(self, forward, backward, n_features):
        self._forward = forward
        self._backward = backward
        self.n_features = n_features

    def forward(self, Z):
        """``predict_proba(Z)`` by the compiled model, and the caches of its backward pass.

        Parameters
        ----------
        Z : array-like of shape (n, n_features)

        Returns
        -------
        proba : ndarray of shape (n, n_classes)
        cache : object
        """
        Z = np.asarray(Z, dtype=np.float64)
        if Z.ndim != 2 or (self.n_features is not None and Z.shape[1] != self.n_features):
            raise ValueError(f"Z must have shape (n, {self.n_features}), got {Z.shape}")
        return self._forward(Z)

    def __call__(self, Z, cotangent, return_proba=False):
        Z = np.asarray(Z, dtype=np.float64)
        P, cache = self.forward(Z)
        cotangent = np.asarray(cotangent, dtype=np.float64)
        if cotangent.shape != P.shape:
            raise ValueError(f"cotangent must have shape {P.shape}, got {cotangent.shape}")
        grad = self._backward(cache, cotangent)
        if np.shape(grad) != Z.shape:
            grad = np.broadcast_to(grad, Z.shape)
        grad = np.array(grad, dtype=np.float64)  # a copy: never a view of a cache
        return (P, grad) if return_proba else grad


def exact_proba_vjp(estimator, *, table=None):
    """Build the exact vector-Jacobian product of ``estimator.predict_proba``.

    Parameters
    ----------
    estimator : fitted classifier
        A supported classifier, or a (nested) Pipeline of supported transformers
        ending in one. See the module docstring for the conventions used at kinks.
    table : TableCodec or None
        When the estimator takes a table (its rows decoded by ``table.decode``), ``Z``
        holds the numbers of the table with a category as its code; a ColumnTransformer
        first met by the rows may then encode categorical columns with any transformer
        (see the module docstring, "Tables").

    Returns
    -------
    vjp : ProbaVJP
        ``vjp(Z, cotangent, return_proba=False)`` with ``Z`` of shape (n, d) and
        ``cotangent`` of shape (n, n_classes) returns the array of shape (n, d) whose
        row ``i`` is ``sum_k cotangent[i, k] * d predict_proba(Z)[i, k] / d Z[i]``.
        With ``return_proba=True`` it returns ``(proba, vjp)``, where ``proba`` is the
        forward pass's value of ``predict_proba(Z)``. One forward and one backward
        pass over the whole batch; ``vjp.forward(Z)`` runs the forward pass alone.

    Raises
    ------
    UnsupportedModel
        If the estimator, or any step of it, has no exact gradient. The message
        names the class and its position (pipeline step names included).
    sklearn.exceptions.NotFittedError
        If the estimator is not fitted.
    """
    check_is_fitted(estimator)
    if table is not None and table.has_categorical:
        forward, backward = _compile_on_table(estimator, "predict_proba", [], table)
    else:
        forward, backward = _compile(estimator, "predict_proba", [])
    return ProbaVJP(forward, backward, getattr(estimator, "n_features_in_", None))


def supports_exact_gradients(estimator):
    """Tell whether :func:`exact_proba_vjp` supports a fitted estimator.

    Parameters
    ----------
    estimator : fitted classifier

    Returns
    -------
    supported : bool
    """
    try:
        exact_proba_vjp(estimator)
    except UnsupportedModel:
        return False
    return True
