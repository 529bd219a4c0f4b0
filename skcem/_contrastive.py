"""What CEMExplainer and CounterfactualExplainer share: fit, batching, the result, the score.

Both minimise, per instance and in batches, a loss on the model's probabilities plus a distance
to the original with the optimizer of :mod:`skcem._fista`; they differ in the loss, the
allowed directions and the search on ``c``, which subclasses supply through
:meth:`_problem_settings`, :meth:`_solver_settings` and :meth:`_targets`.
"""

import logging
import warnings
from numbers import Integral, Real

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted, validate_data

from . import metrics
from ._base import ExplainerMixin
from ._explanation import CEMExplanation
from ._fista import CEMProblem, solve
from ._gradients import make_backend
from ._progress import logger, progress_bar
from ._validation import (check_feature_range, check_pair, check_probabilities, feature_mask,
                          per_feature, resolve_estimator)
from .costs import median_absolute_deviation


class ExplanationNotFoundWarning(UserWarning):
    """Some instances got no explanation: their rows are NaN and ``found`` is False."""


SHARED_CONSTRAINTS = {
    "feature_range": [tuple, list, None],
    "input_shape": [tuple, list, None],
    "immutable_features": ["array-like", None],
    "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
    "max_iterations": [Interval(Integral, 1, None, closed="left")],
    "eps": [tuple, list],
    "clip": [tuple, list],
    "update_num_grad": [Interval(Integral, 1, None, closed="left")],
    "tol": [Interval(Real, 0, None, closed="neither"), None],
    "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
    "batch_size": [Interval(Integral, 1, None, closed="left")],
    "n_jobs": [Integral, None],
    "verbose": ["verbose"],
}


def _solve_batch(explainer, x0, target, common, settings, progress=None):
    """One batch, in this process or a joblib worker: the result and its model rows."""
    backend = explainer._get_backend()
    rows_before = backend.n_model_rows
    result = solve(backend, CEMProblem(x0=x0, target=target, **common), settings,
                   progress=progress)
    return result, backend.n_model_rows - rows_before


class BaseContrastiveExplainer(ExplainerMixin, OneToOneFeatureMixin, TransformerMixin,
                               BaseEstimator):
    """Shared machinery; not for direct use."""

    _transient_attributes = ("_backend",)
    autoencoder = None  # only CEMExplainer has an auto-encoder term

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None):
        """Resolve the classifier and learn what the explanations need from ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Representative data, typically the training set.
        y : array-like of shape (n_samples,), default=None
            Labels; needed only when the classifier must be fitted here (``estimator`` is
            None or not fitted).

        Returns
        -------
        self : object
        """
        if y is None:
            X = validate_data(self, X, dtype=np.float64)
        else:
            X, y = validate_data(self, X, y, dtype=np.float64)
        check_pair(self.eps, "eps", positive=True)
        check_pair(self.clip, "clip", increasing=True)
        per_feature(self.eps[1], X.shape[1], "eps")
        self._check_params()

        self.estimator_ = resolve_estimator(self.estimator, X, y, type(self).__name__)
        self._backend = self._make_backend(X.shape[1])
        proba = check_probabilities(self._backend.predict_proba(X[:100]), min(X.shape[0], 100))
        classes = getattr(self.estimator_, "classes_", None)
        self.classes_ = np.arange(proba.shape[1]) if classes is None else np.asarray(classes)
        self.feature_range_ = check_feature_range(self.feature_range, X)
        self.immutable_mask_ = feature_mask(self.immutable_features, X.shape[1],
                                            getattr(self, "feature_names_in_", None),
                                            "immutable_features")
        if self.distance == "mad":
            self.mad_ = median_absolute_deviation(X)
        elif hasattr(self, "mad_"):
            del self.mad_
        self._fit_data(X)
        return self

    def _check_params(self):
        """Checks across parameters, beyond ``_parameter_constraints``."""

    def _fit_data(self, X):
        """What a subclass learns from the data."""

    def _make_backend(self, n_features):
        return make_backend(self.estimator_, eps=per_feature(self.eps[1], n_features, "eps"),
                            autoencoder=self.autoencoder, input_shape=self.input_shape)

    def _get_backend(self):
        # Compiled TensorFlow functions do not pickle: a restored explainer rebuilds them.
        if getattr(self, "_backend", None) is None:
            self._backend = self._make_backend(self.n_features_in_)
        return self._backend

    def _class_indices(self, labels, n_samples, name="y"):
        labels = np.asarray(labels)
        if labels.shape != (n_samples,):
            raise ValueError(f"`{name}` must have shape ({n_samples},) like X; got "
                             f"{labels.shape}.")
        index = np.clip(np.searchsorted(self.classes_, labels), 0, len(self.classes_) - 1)
        unknown = self.classes_[index] != labels
        if np.any(unknown):
            raise ValueError(f"`{name}` holds labels the model does not know: "
                             f"{np.unique(labels[unknown]).tolist()}; classes are "
                             f"{self.classes_.tolist()}.")
        return index

    def explain(self, X, y=None):
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        proba = check_probabilities(self._get_backend().predict_proba(X), X.shape[0])
        explained, target = self._targets(proba, y)
        settings = self._solver_settings()
        lower, upper = self.feature_range_
        common = dict(n_classes=len(self.classes_), lower=lower, upper=upper,
                      mutable=~self.immutable_mask_ if self.immutable_mask_.any() else None,
                      **self._problem_settings())
        starts = range(0, X.shape[0], self.batch_size)
        bar = progress_bar(len(starts) * settings.c_steps, type(self).__name__,
                           self.verbose >= 1)

        def report(step, c, found):
            bar.update(1)
            logger.log(logging.INFO if self.verbose >= 2 else logging.DEBUG,
                       "c-step %d: median c %.4g, %d of %d found", step + 1, np.median(c),
                       int(found.sum()), found.size)

        batches = [(X[i:i + self.batch_size], target[i:i + self.batch_size]) for i in starts]
        try:
            if self.n_jobs in (None, 1) or len(batches) == 1:
                outcomes = [_solve_batch(self, x0, t, common, settings, report)
                            for x0, t in batches]
            else:
                # Batches are independent: workers give the same answers as this process.
                outcomes = []
                parallel = Parallel(n_jobs=self.n_jobs, return_as="generator")
                for outcome in parallel(delayed(_solve_batch)(self, x0, t, common, settings)
                                        for x0, t in batches):
                    outcomes.append(outcome)
                    bar.update(settings.c_steps)
        finally:
            bar.close()
        results = [result for result, _ in outcomes]
        n_rows = sum(rows for _, rows in outcomes)
        return self._assemble(X, proba, explained, results, common, X.shape[0] + n_rows)

    def _assemble(self, X, proba, explained, results, common, n_model_rows):
        found = np.concatenate([r.found for r in results])
        explanation_proba = np.concatenate([r.explanation_proba for r in results])
        explanation_pred = np.full(found.shape, None, dtype=object)
        explanation_pred[found] = self.classes_[explanation_proba[found].argmax(axis=1)]
        n_missing = int((~found).sum())
        mode = common["mode"]
        if n_missing:
            warnings.warn(f"{type(self).__name__} found no {mode} for {n_missing} of "
                          f"{found.size} instances; their rows are NaN (see `found`). "
                          f"{self._not_found_hint}", ExplanationNotFoundWarning, stacklevel=3)
        names = getattr(self, "feature_names_in_", None)
        return CEMExplanation(
            mode=mode, X=X, X_pred=self.classes_[explained], X_proba=proba,
            explanation=np.concatenate([r.explanation for r in results]),
            explanation_pred=explanation_pred, explanation_proba=explanation_proba,
            found=found, distance=np.concatenate([r.distance for r in results]),
            c=np.concatenate([r.best_c for r in results]),
            background=np.clip(common["no_info_val"], common["lower"], common["upper"]),
            classes=self.classes_, feature_names=None if names is None else list(names),
            input_shape=getattr(self._backend, "input_shape", None),
            meta={"n_model_rows": n_model_rows,
                  "n_iterations": np.concatenate([r.n_iterations for r in results]).tolist()})

    def transform(self, X):
        """The explanation of each row of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        X_explained : ndarray of shape (n_samples, n_features)
            Rows are NaN where no explanation was found (with a warning).
        """
        return self.explain(X).explanation

    def score(self, X, y=None):
        """Quality of the explanations of ``X``: higher is better, in [0, 1].

        The mean over instances of ``found * sparsity * proximity`` (:func:`skcem.metrics.
        cem_score`): 0 for an instance without explanation, rising as the explanation involves
        fewer features and moves them less (relative to ``feature_range_``). This lets
        ``GridSearchCV`` tune the explainer without a scoring argument.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : None
            Ignored: instances are explained against the model's own predictions, so that
            ``GridSearchCV``'s true labels cannot reward a model's mistakes with empty
            explanations.

        Returns
        -------
        score : float
        """
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExplanationNotFoundWarning)
            explanation = self.explain(X)
        return metrics.cem_score(explanation, self.feature_range_)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = self.estimator is None
        return tags
