"""GradientSimilarityExplainer: which training instances a model finds alike, by loss gradients."""

from dataclasses import dataclass, fields
from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._base import ExplainerMixin
from ._explanation import _to_builtin
from ._gradients import is_keras_model
from ._gradients._base import ignoring_feature_name_warnings
from ._gradients._keras import detect_output_kind
from ._param_grads import check_supported, make_param_gradients
from ._progress import progress_bar
from ._validation import is_prefitted, resolve_estimator, validate_float_data


def _safe_divide(numerator, denominator):
    """``numerator / denominator``, and 0 where the denominator is 0 (a zero gradient)."""
    out = np.zeros(np.broadcast_shapes(numerator.shape, denominator.shape))
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


# grad_asym_dot's denominator ||g_b||^2 + 1e-7, as the reference: a training point the model
# fits perfectly has a float32 gradient that is rounding noise, and dividing by its exact
# squared norm would give it unbounded scores.
_ASYM_STABILITY = 1e-7


def similarity(test_grads, train_grads, sim_fn, train_sq_norms=None):
    """Scores between rows of two gradient matrices (ALGORITHMS.md, "Gradient similarity").

    ``grad_cos`` is the exact cosine: a gradient of norm 0 scores 0. (The reference adds 1e-7
    to the product of norms, which shrinks the scores of confidently classified instances,
    gradient norms near 1e-4, towards 0.) ``grad_asym_dot`` is the reference's
    ``g_a . g_b / (||g_b||^2 + 1e-7)``, bounded for perfectly fitted training points.
    """
    scores = test_grads @ train_grads.T
    if sim_fn == "grad_dot":
        return scores
    if train_sq_norms is None:
        train_sq_norms = np.einsum("ij,ij->i", train_grads, train_grads)
    if sim_fn == "grad_asym_dot":
        return scores / (train_sq_norms[None, :] + _ASYM_STABILITY)
    test_norms = np.linalg.norm(test_grads, axis=1)
    return _safe_divide(scores, test_norms[:, None] * np.sqrt(train_sq_norms)[None, :])


@dataclass
class SimilarityExplanation:
    """Similarity of test instances to the training set.

    Attributes
    ----------
    scores : ndarray of shape (n_test, n_train)
        Score of each training instance for each test instance (higher: more similar).
    ordered_indices : ndarray of shape (n_test, n_train)
        Training indices by decreasing score.
    most_similar : ndarray of shape (n_test, n_features)
        The most similar training instance of each test instance.
    least_similar : ndarray of shape (n_test, n_features)
        The least similar training instance of each test instance.
    X : ndarray of shape (n_test, n_features)
    target : ndarray of shape (n_test,) or (n_test, n_outputs)
        The targets whose loss gradients were compared (predictions unless given).
    sim_fn : str

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from skcem import GradientSimilarityExplainer
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = LogisticRegression(max_iter=1000).fit(X, y)
    >>> exp = GradientSimilarityExplainer(clf).fit(X, y).explain(X[:2])
    >>> exp.scores.shape, exp.ordered_indices.shape
    ((2, 150), (2, 150))
    """

    scores: np.ndarray
    ordered_indices: np.ndarray
    most_similar: np.ndarray
    least_similar: np.ndarray
    X: np.ndarray
    target: np.ndarray
    sim_fn: str

    def to_dict(self):
        """A dict of plain Python values, ready for ``json``."""
        return {f.name: _to_builtin(getattr(self, f.name)) for f in fields(self)}


class GradientSimilarityExplainer(ExplainerMixin, TransformerMixin, BaseEstimator):
    """Similarity of test to training instances through the model's loss gradients.

    The gradient of the loss with respect to the model's parameters, ``g(x, y)``, is compared
    between a test instance and every training instance: ``grad_dot`` (``g_a . g_b``),
    ``grad_cos`` (cosine) or ``grad_asym_dot`` (``g_a . g_b / ||g_b||^2``). Per-example
    gradients are computed for whole batches at once: by vectorised autodiff for Keras models,
    in closed form or numpy back-propagation for ``LogisticRegression``, ``LinearRegression``,
    ``Ridge``, ``SGDRegressor``, ``MLPClassifier`` and ``MLPRegressor``.

    Parameters
    ----------
    estimator : Keras model, supported scikit-learn model or None, default=None
        The model. A fitted (or Keras) model is used as it is; an unfitted scikit-learn model
        is cloned and fitted on ``fit(X, y)``; None fits a ``LogisticRegression``
        (classification) or ``Ridge`` (regression).
    loss : "auto", str or Keras loss, default="auto"
        "auto": sparse categorical cross-entropy for classification, mean squared error for
        regression. Other losses are for Keras models only.
    sim_fn : {"grad_dot", "grad_cos", "grad_asym_dot"}, default="grad_dot"
        ``grad_cos`` is the exact cosine (0 where a gradient is 0; the reference adds 1e-7 to
        the product of norms, which shrinks the scores of confidently classified instances);
        ``grad_asym_dot`` is the reference's ``g_a . g_b / (||g_b||^2 + 1e-7)``.
    task : {"classification", "regression"}, default="classification"
        For classification, a test instance's target defaults to the model's predicted class;
        for regression it must be given (:meth:`explain`).
    precompute_grads : bool, default=False
        Keep the training gradients from ``fit``: ``n_train * n_params`` floats (float32 for
        Keras, float64 otherwise), faster explanations. When False they are recomputed, batch by
        batch, for each batch of test instances, and peak memory stays at
        ``O(batch_size * n_params)`` beyond the data and the scores.
    batch_size : int, default=64
        Instances whose gradients are computed together.
    input_shape : tuple or None, default=None
        Shape of one instance for a Keras model; inferred from it when None.
    verbose : int, default=0
        1 shows a progress bar over batches of test instances on stderr.

    Attributes
    ----------
    estimator_ : object
    X_train_ : ndarray of shape (n_train, n_features)
    y_train_ : ndarray of shape (n_train,) or (n_train, n_outputs)
    grads_train_ : ndarray of shape (n_train, n_params) or None
        Only with ``precompute_grads=True``.
    n_params_ : int
    n_features_in_ : int

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from skcem import GradientSimilarityExplainer
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = LogisticRegression(max_iter=1000).fit(X, y)
    >>> sim = GradientSimilarityExplainer(clf, sim_fn="grad_cos").fit(X, y)
    >>> scores, rows = sim.kneighbors(X[:1], n_neighbors=3)
    >>> scores.shape, int(y[rows[0, 0]])
    ((1, 3), 0)
    """

    _transient_attributes = ("_gradients",)
    _parameter_constraints: dict = {
        "estimator": [HasMethods(["predict"]), callable, None],
        "loss": [str, callable],
        "sim_fn": [StrOptions({"grad_dot", "grad_cos", "grad_asym_dot"})],
        "task": [StrOptions({"classification", "regression"})],
        "precompute_grads": ["boolean"],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "input_shape": [tuple, list, None],
        "verbose": ["verbose"],
    }

    def __init__(self, estimator=None, *, loss="auto", sim_fn="grad_dot",
                 task="classification", precompute_grads=False, batch_size=64,
                 input_shape=None, verbose=0):
        self.estimator = estimator
        self.loss = loss
        self.sim_fn = sim_fn
        self.task = task
        self.precompute_grads = precompute_grads
        self.batch_size = batch_size
        self.input_shape = input_shape
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None):
        """Store the training set (and its gradients, with ``precompute_grads``).

        Parameters
        ----------
        X : array-like of shape (n_train, n_features)
        y : array-like of shape (n_train,) or (n_train, n_outputs)
            Training targets: class labels or regression values.

        Returns
        -------
        self : GradientSimilarityExplainer
        """
        if y is None:
            raise ValueError("GradientSimilarityExplainer requires y to be passed, but the "
                             "target y is None: the training gradients are those of the loss "
                             "at the training targets.")
        names = getattr(self.estimator, "feature_names_in_", None) \
            if is_prefitted(self.estimator) else None
        X, y = validate_float_data(self, X, y, reset=True, expected_columns=names,
                                   multi_output=True, y_numeric=self.task == "regression")
        default = (lambda: LogisticRegression(max_iter=1000)) \
            if self.task == "classification" else Ridge
        self.estimator_ = resolve_estimator(self.estimator, X, y, type(self).__name__,
                                            default=default, check=check_supported)
        self._keras_output = None
        if is_keras_model(self.estimator_) and self.task == "classification":
            self._keras_output = detect_output_kind(self.estimator_, X[:100],
                                                    self.input_shape)
        self._gradients = self._make_gradients()
        self.n_params_ = int(self._gradients.n_params)
        self.X_train_ = X.copy()
        self.y_train_ = self._targets(y)
        self.grads_train_ = self._grads(self.X_train_, self.y_train_) \
            if self.precompute_grads else None
        return self

    def _make_gradients(self):
        return make_param_gradients(self.estimator_, loss=self.loss, task=self.task,
                                    input_shape=self.input_shape,
                                    output_kind=getattr(self, "_keras_output", None),
                                    n_features=self.n_features_in_)

    def _get_gradients(self):
        # Compiled TensorFlow functions do not pickle: a restored explainer rebuilds them.
        if getattr(self, "_gradients", None) is None:
            self._gradients = self._make_gradients()
        return self._gradients

    def _targets(self, y):
        """Targets as the gradient functions expect them (Keras: class indices)."""
        y = np.asarray(y)
        if self.task == "classification" and is_keras_model(self.estimator_):
            return y.astype(np.int64)
        return y

    def _grads(self, X, y):
        gradients = self._get_gradients()
        return np.vstack([gradients(X[i:i + self.batch_size], y[i:i + self.batch_size])
                          for i in range(0, len(X), self.batch_size)])

    def _predicted_targets(self, X):
        if is_keras_model(self.estimator_):
            from ._gradients._keras import as_probabilities

            outputs = np.asarray(self.estimator_.predict(
                X.reshape((-1,) + self._get_gradients().input_shape), verbose=0))
            outputs = outputs.reshape(len(X), -1)
            kind = getattr(self, "_keras_output", None) or "probabilities"
            return as_probabilities(outputs, kind).argmax(axis=1)
        with ignoring_feature_name_warnings():
            return self.estimator_.predict(X)

    def _scores(self, X, y):
        n_train = len(self.X_train_)
        scores = np.empty((len(X), n_train))
        train_sq_norms = None
        if self.grads_train_ is not None:
            train_sq_norms = np.einsum("ij,ij->i", self.grads_train_, self.grads_train_)
        starts = range(0, len(X), self.batch_size)
        bar = progress_bar(len(starts), type(self).__name__, self.verbose >= 1)
        try:
            for start in starts:
                rows = slice(start, start + self.batch_size)
                test_grads = self._grads(X[rows], y[rows])
                if self.grads_train_ is not None:
                    scores[rows] = similarity(test_grads, self.grads_train_, self.sim_fn,
                                              train_sq_norms)
                else:
                    for t_start in range(0, n_train, self.batch_size):
                        t_rows = slice(t_start, t_start + self.batch_size)
                        train_grads = self._get_gradients()(self.X_train_[t_rows],
                                                            self.y_train_[t_rows])
                        scores[rows, t_rows] = similarity(test_grads, train_grads,
                                                          self.sim_fn)
                bar.update(1)
        finally:
            bar.close()
        return scores

    def _check_X_y(self, X, y):
        check_is_fitted(self)
        X = validate_float_data(self, X, reset=False)
        if y is None:
            if self.task == "regression":
                raise ValueError("Regression needs the test targets: call explain(X, y) with "
                                 "y; transform(X) alone cannot compute regression gradients.")
            y = self._predicted_targets(X)
        y = np.asarray(y)
        if len(y) != len(X):
            raise ValueError(f"`y` must have one target per row of X ({len(X)}); got "
                             f"{len(y)}.")
        if self.task == "classification" and hasattr(self.estimator_, "classes_"):
            unknown = ~np.isin(y, self.estimator_.classes_)
            if np.any(unknown):
                raise ValueError(f"`y` holds labels the model does not know: "
                                 f"{np.unique(y[unknown]).tolist()}.")
        return X, self._targets(y)

    def transform(self, X):
        """Scores of each row of ``X`` against every training instance.

        Classification only: targets are the model's predicted classes. For regression use
        :meth:`explain` with the targets.

        Parameters
        ----------
        X : array-like of shape (n_test, n_features)

        Returns
        -------
        scores : ndarray of shape (n_test, n_train)
        """
        X, y = self._check_X_y(X, None)
        return self._scores(X, y)

    def explain(self, X, y=None):
        """Scores, ranking and the most and least similar training instances.

        Parameters
        ----------
        X : array-like of shape (n_test, n_features)
        y : array-like of shape (n_test,), default=None
            Targets of the test instances; the model's predictions when None
            (classification only).

        Returns
        -------
        SimilarityExplanation
        """
        X, y = self._check_X_y(X, y)
        scores = self._scores(X, y)
        order = np.argsort(-scores, axis=1, kind="stable")
        return SimilarityExplanation(scores=scores, ordered_indices=order,
                                     most_similar=self.X_train_[order[:, 0]],
                                     least_similar=self.X_train_[order[:, -1]], X=X, target=y,
                                     sim_fn=self.sim_fn)

    def kneighbors(self, X, n_neighbors=5, return_scores=True):
        """The ``n_neighbors`` most similar training instances of each row of ``X``.

        Like ``NearestNeighbors.kneighbors``, with similarity scores (highest first) in place
        of distances.

        Parameters
        ----------
        X : array-like of shape (n_test, n_features)
        n_neighbors : int, default=5
        return_scores : bool, default=True

        Returns
        -------
        scores : ndarray of shape (n_test, n_neighbors)
            Only when ``return_scores``.
        indices : ndarray of shape (n_test, n_neighbors)
            Rows of the training set.
        """
        if not isinstance(n_neighbors, Integral) or not 1 <= n_neighbors:
            raise ValueError(f"`n_neighbors` must be a positive integer; got {n_neighbors!r}.")
        check_is_fitted(self)
        if n_neighbors > len(self.X_train_):
            raise ValueError(f"`n_neighbors` ({n_neighbors}) exceeds the training set size "
                             f"({len(self.X_train_)}).")
        scores = self.transform(X)
        indices = np.argsort(-scores, axis=1, kind="stable")[:, :n_neighbors]
        if return_scores:
            return np.take_along_axis(scores, indices, axis=1), indices
        return indices

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True  # training gradients are taken at the targets
        return tags
