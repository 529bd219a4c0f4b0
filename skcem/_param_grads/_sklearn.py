"""Per-example gradients of the loss with respect to the parameters of scikit-learn models.

Closed form for linear models, numpy back-propagation for multi-layer perceptrons: the gradient
of each training or test row, for a whole batch at once, without TensorFlow. Every layer is a
dense one, so :meth:`factors` gives the gradients as (input, output gradient) pairs without
building them (see :mod:`._factors`).

Losses: cross-entropy (log loss) of the predicted probabilities for classifiers (for
``SGDClassifier(loss="log_loss")`` with more than two classes, its one-vs-rest training loss:
the binary log losses of its classes, summed), the squared error averaged over outputs (Keras'
``mean_squared_error``) for regressors. Linear classifiers trained on a margin loss have that
training loss, one-vs-rest on targets ``t = ±1`` per class (one score, ``classes_[1]``'s, for
two classes), summed over classes and without the penalty: ``LinearSVC``, ``Perceptron`` and
``SGDClassifier`` their hinge ``max(0, 1 - t z)``, squared hinge ``max(0, 1 - t z)²`` or
perceptron ``max(0, -t z)`` (subgradient 0 at the kink), ``RidgeClassifier`` the squared
error ``(z - t)²``. Parameters are flattened layer by layer, weights (row-major) before
intercepts.
"""

import numpy as np
from scipy import sparse
from scipy.special import expit, softmax
from sklearn.linear_model import (ARDRegression, BayesianRidge, ElasticNet, ElasticNetCV, Lars,
                                  LassoCV, LinearRegression, LogisticRegression,
                                  MultiTaskElasticNetCV, MultiTaskLassoCV,
                                  OrthogonalMatchingPursuit, OrthogonalMatchingPursuitCV,
                                  Perceptron, Ridge, RidgeClassifier, RidgeClassifierCV, RidgeCV,
                                  SGDClassifier, SGDRegressor)
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC

from .._wrappers import loss_inner
from ._factors import GradientFactors

LINEAR_CLASSIFIERS = (LogisticRegression, SGDClassifier, RidgeClassifier, RidgeClassifierCV,
                      LinearSVC, Perceptron)
# Predictions X w + b fitted to the squared error (the penalties aside, as for Ridge): their
# subclasses too (Lasso, MultiTaskLasso, LassoLars, LarsCV...)
LINEAR_REGRESSORS = (LinearRegression, Ridge, RidgeCV, ElasticNet, ElasticNetCV, LassoCV,
                     MultiTaskElasticNetCV, MultiTaskLassoCV, Lars, OrthogonalMatchingPursuit,
                     OrthogonalMatchingPursuitCV, BayesianRidge, ARDRegression, SGDRegressor)
SUPPORTED = LINEAR_CLASSIFIERS + LINEAR_REGRESSORS + (MLPClassifier, MLPRegressor)

_ACTIVATION = {
    "identity": (lambda z: z, lambda a: np.ones_like(a)),
    "relu": (lambda z: np.maximum(z, 0), lambda a: (a > 0).astype(a.dtype)),
    "tanh": (np.tanh, lambda a: 1 - a**2),
    "logistic": (expit, lambda a: a * (1 - a)),
}


def _output_delta(model, output, y):
    """d loss / d (pre-activation output) of a regressor's squared error."""
    y = np.asarray(y, dtype=float).reshape(len(output), -1)
    return 2.0 * (output - y) / output.shape[1]


def _log_loss_delta(model, z, y, one_vs_rest=False):
    """d cross-entropy / d scores ``z``, ``p - onehot(y)``, from the scores: ``p - 1`` is
    ``-expit(-z)`` (or minus the other classes' probabilities under a softmax), not 0 where
    ``p`` rounds to 1 (a decision value past 37: an exactly zero gradient would score 0
    against everything). One logistic output per column: ``classes_[1]``'s for one column,
    each class's own (one-vs-rest) with ``one_vs_rest``; else a softmax over the columns."""
    index = np.searchsorted(model.classes_, y)
    if z.shape[1] == 1:
        target = (index == 1)[:, None]
    else:
        target = np.arange(z.shape[1]) == index[:, None]
    if z.shape[1] == 1 or one_vs_rest:
        return np.where(target, -expit(-z), expit(z))
    delta = softmax(z, axis=1)
    others = np.where(target, 0.0, delta)
    return np.where(target, -others.sum(axis=1, keepdims=True), delta)


# d loss / d z of the margin losses, for scores z and targets t = ±1
_MARGIN_DELTAS = {
    "hinge": lambda z, t: -t * (t * z < 1),
    "squared_hinge": lambda z, t: -2.0 * t * np.maximum(0.0, 1.0 - t * z),
    "perceptron": lambda z, t: -t * (t * z < 0),
    "squared_error": lambda z, t: 2.0 * (z - t),
}


def _margin_loss(model):
    """The margin loss ``model`` was trained on (a key of ``_MARGIN_DELTAS``), or None."""
    if isinstance(model, (RidgeClassifier, RidgeClassifierCV)):
        return "squared_error"
    if isinstance(model, (LinearSVC, SGDClassifier, Perceptron)) and \
            model.loss in _MARGIN_DELTAS:
        return model.loss
    return None


def _signed_targets(model, y, n_scores):
    """``±1`` per score column: 1 where ``y`` is its class (one column: ``classes_[1]``)."""
    index = np.searchsorted(model.classes_, y)
    if n_scores == 1:
        return np.where(index == 1, 1.0, -1.0)[:, None]
    return np.where(np.arange(n_scores) == index[:, None], 1.0, -1.0)


class LinearGradients:
    """``LogisticRegression`` (binary and multinomial) and linear regressors."""

    def __init__(self, model):
        self.model = model
        # dense even where the model was sparsified (coef_ a scipy sparse matrix)
        coef = model.coef_.toarray() if sparse.issparse(model.coef_) else model.coef_
        self.coef = np.atleast_2d(coef)
        intercept = np.atleast_1d(getattr(model, "intercept_", 0.0)) * np.ones(len(self.coef))
        self.intercept = intercept
        self.fit_intercept = bool(getattr(model, "fit_intercept", True))
        self.n_params = self.coef.size + (self.coef.shape[0] if self.fit_intercept else 0)

    def _delta(self, X, y):
        z = np.asarray(X @ self.coef.T) + self.intercept
        margin_loss = _margin_loss(self.model)
        if margin_loss is not None:
            return _MARGIN_DELTAS[margin_loss](z, _signed_targets(self.model, y, z.shape[1]))
        if isinstance(self.model, LINEAR_CLASSIFIERS):  # SGD: one logistic output per class
            return _log_loss_delta(self.model, z, y,
                                   one_vs_rest=isinstance(self.model, SGDClassifier))
        return _output_delta(self.model, z, y)

    def __call__(self, X, y):
        delta = self._delta(X, y)
        X = X.toarray() if sparse.issparse(X) else X
        parts = [(delta[:, :, None] * X[:, None, :]).reshape(len(X), -1)]
        if self.fit_intercept:
            parts.append(delta)
        return np.hstack(parts)

    def factors(self, X, y):
        """The gradients of ``X`` as :class:`GradientFactors`: one dense layer."""
        inputs = _with_ones(X) if self.fit_intercept else X
        return GradientFactors([(inputs, self._delta(X, y))])


class MLPGradients:
    """``MLPClassifier`` and ``MLPRegressor``, by back-propagation over a batch."""

    def __init__(self, model):
        self.model = model
        self.activation, self.derivative = _ACTIVATION[model.activation]
        self.n_params = sum(W.size + b.size for W, b in zip(model.coefs_, model.intercepts_))

    def _layers(self, X, y):
        """Each layer's input and the gradient with respect to its output, first layer first."""
        model = self.model
        layers = list(zip(model.coefs_, model.intercepts_))
        activations = [X]
        for i, (W, b) in enumerate(layers):
            z = np.asarray(activations[-1] @ W) + b
            if i < len(layers) - 1:
                activations.append(self.activation(z))
        if hasattr(model, "classes_"):  # a logistic or softmax output, from its scores
            delta = _log_loss_delta(model, z, y)
        else:
            delta = _output_delta(model, _ACTIVATION[model.out_activation_][0](z), y)
        deltas = []
        for i in range(len(layers) - 1, -1, -1):
            deltas.append(delta)
            if i > 0:
                delta = (delta @ layers[i][0].T) * self.derivative(activations[i])
        return list(zip(activations, deltas[::-1]))

    def __call__(self, X, y):
        grads = []
        for a_in, delta in self._layers(X, y):
            a_in = a_in.toarray() if sparse.issparse(a_in) else a_in
            grads.append((a_in[:, :, None] * delta[:, None, :]).reshape(len(delta), -1))
            grads.append(delta)
        return np.hstack(grads)

    def factors(self, X, y):
        """The gradients of ``X`` as :class:`GradientFactors`: one dense layer per layer."""
        return GradientFactors([(_with_ones(a_in), delta) for a_in, delta in self._layers(X, y)])


def _with_ones(a):
    """``a`` with a column of ones: the input that multiplies a dense layer's bias (sparse
    for sparse ``a``)."""
    if sparse.issparse(a):
        return sparse.hstack([a, np.ones((a.shape[0], 1))], format="csr")
    return np.hstack([a, np.ones((len(a), 1))])


def steps_before_last(pipeline):
    """A Pipeline's transformers before its last step (none for "passthrough"), to apply
    one by one: not the slice ``pipeline[:-1]``, which scikit-learn judges fitted by its last
    step, and a stateless transformer there holds no fitted attribute."""
    return [step for _, step in pipeline.steps[:-1]
            if step is not None and not (isinstance(step, str) and step == "passthrough")]


def transformed_by(steps, X):
    """``X`` through each of ``steps``."""
    for step in steps:
        X = step.transform(X)
    return X


class TransformedGradients:
    """A Pipeline's gradients: those of its last step, on the rows its other steps make."""

    def __init__(self, pipeline, last):
        self.steps = steps_before_last(pipeline)
        self.last = last
        self.n_params = last.n_params
        # a DataFrame for steps fitted on one: columns picked by name need it
        self.columns = getattr(pipeline, "feature_names_in_", None)

    def transformed(self, X):
        if self.columns is not None and not hasattr(X, "columns"):
            import pandas as pd

            X = pd.DataFrame(X, columns=self.columns)
        rows = transformed_by(self.steps, X)
        # sparse rows stay sparse (a text vectorizer's): their factors are products of them
        if sparse.issparse(rows):
            return sparse.csr_matrix(rows, dtype=float)
        return np.asarray(rows, dtype=float)

    def prepared(self, X):
        """``(rows, gradients)``: the rows of ``X`` as the last step takes them, and its
        gradients, whose batches of them then cost no call of the other steps each."""
        return self.transformed(X), self.last

    def __call__(self, X, y):
        return self.last(self.transformed(X), y)

    def factors(self, X, y):
        """The gradients of ``X`` as the last step's :class:`GradientFactors`."""
        return self.last.factors(self.transformed(X), y)


def sklearn_gradients(model):
    """The per-example gradient function of a supported scikit-learn model, or of a Pipeline
    that ends in one."""
    if not is_supported(model):
        raise unsupported_error(model)
    if isinstance(model, Pipeline):
        return TransformedGradients(model, sklearn_gradients(loss_inner(model[-1])))
    if isinstance(model, (MLPClassifier, MLPRegressor)):
        return MLPGradients(model)
    if isinstance(model, LINEAR_CLASSIFIERS + LINEAR_REGRESSORS):
        return LinearGradients(model)
    raise unsupported_error(model)


# The losses computed here, for the models that have several.
_LOSSES = {SGDClassifier: ("log_loss", "hinge", "squared_hinge", "perceptron"),
           SGDRegressor: ("squared_error",), MLPRegressor: ("squared_error",)}


def is_supported(model):
    """Whether the gradients of ``model`` are computed here (``SGDClassifier``: of its log
    loss and margin losses, not the others; ``SGDRegressor`` and ``MLPRegressor``: of their
    squared error; ``LinearSVC``: one-vs-rest, not Crammer-Singer; a Pipeline: of its last
    step)."""
    if isinstance(model, Pipeline):
        return is_supported(loss_inner(model[-1]))
    if isinstance(model, LinearSVC) and model.multi_class != "ovr":
        return False
    return isinstance(model, SUPPORTED) and all(
        getattr(model, "loss", losses[0]) in losses
        for cls, losses in _LOSSES.items() if isinstance(model, cls))


def _losses_named(losses):
    if len(losses) == 1:
        return f'(loss="{losses[0]}")'
    return f"(loss in {', '.join(repr(loss) for loss in losses)})"


def unsupported_error(model):
    names = ", ".join(cls.__name__ + (_losses_named(_LOSSES[cls]) if cls in _LOSSES else "")
                      + ('(multi_class="ovr")' if cls is LinearSVC else "")
                      for cls in SUPPORTED)
    from .._neighbors import is_piecewise_constant

    last = loss_inner(model[-1]) if isinstance(model, Pipeline) else model
    got = type(model).__name__
    if isinstance(model, Pipeline):
        got = f"a Pipeline ending in {type(last).__name__}"
    why = "its loss has no gradient with respect to parameters that skcem can compute"
    if is_piecewise_constant(last):
        why = "a model of trees (or neighbours) is piecewise constant in its parameters: " \
              "its loss has no gradient in them"
    return TypeError(f"`estimator` must be a Keras model, a PyTorch module or one of "
                     f"{names} (or a Pipeline ending in one); got {got}: {why}.")
