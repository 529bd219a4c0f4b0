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
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from . import metrics
from ._base import ExplainerMixin
from ._explanation import Explanation
from ._fista import SearchProblem, solve
from ._gradients import is_keras_model, make_backend
from ._gradients._base import ignoring_feature_name_warnings
from ._gradients._keras import detect_output_kind
from ._progress import logger, progress_bar
from ._validation import (check_feature_range, check_pair, check_probabilities, class_indices,
                          feature_mask, is_prefitted, per_feature, resolve_estimator,
                          validate_float_data)
from .costs import median_absolute_deviation


class ExplanationNotFoundWarning(UserWarning):
    """Some instances got no explanation: their rows are NaN and ``found`` is False.

    The message says how many, and what may help (or that nothing will, when the model's
    gradient vanished).

    Examples
    --------
    >>> import warnings
    >>> from skcem import ExplanationNotFoundWarning
    >>> warnings.simplefilter("ignore", ExplanationNotFoundWarning)  # rely on ``found``
    """


class TargetWarning(UserWarning):
    """Some instances are explained against a class that makes their explanation trivial.

    A PN asked against a class the model does not predict, or a counterfactual whose target
    is the instance's own class: the instance itself would be the answer, so none is given.

    Examples
    --------
    >>> import warnings
    >>> from skcem import TargetWarning
    >>> warnings.simplefilter("error", TargetWarning)  # make such requests errors
    >>> warnings.resetwarnings()
    """


_SHARED_CONSTRAINTS = {
    "estimator": [HasMethods(["predict_proba"]), callable, None],
    "gradient": [StrOptions({"auto", "exact", "numerical"})],
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

_FLAT_GRADIENT_HINT = (
    "For {n} of them the model's gradient was exactly zero at every step: its probabilities "
    "are piecewise constant there (trees, boosting, k-NN), so gradient steps cannot move and "
    "a larger c_init, c_steps or clip cannot help. A larger finite-difference step (`eps`) "
    "may, or a model with smooth probabilities.")


def _solve_batch(explainer, x0, target, searchable, common, settings, progress=None):
    """One batch, in this process or a joblib worker: the result and its model rows."""
    backend = explainer._get_backend()
    rows_before = backend.n_model_rows
    problem = SearchProblem(x0=x0, target=target, searchable=searchable, **common)
    result = explainer._search(backend, problem, settings, progress=progress)
    return result, backend.n_model_rows - rows_before


class BaseContrastiveExplainer(ExplainerMixin, OneToOneFeatureMixin, TransformerMixin,
                               BaseEstimator):
    """Shared machinery; not for direct use."""

    _transient_attributes = ("_backend",)
    _parameter_constraints: dict = _SHARED_CONSTRAINTS
    # The search: any function with the signature and result of :func:`skcem._fista.solve`.
    # This is the seam for a second strategy (models whose gradients vanish).
    _search = staticmethod(solve)

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None):
        """Resolve the classifier and learn what the explanations need from ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Representative data, typically the training set. DataFrame columns are matched
            by name to a fitted estimator's ``feature_names_in_`` (and put in its order).
        y : array-like of shape (n_samples,), default=None
            Labels; needed only when the classifier must be fitted here (``estimator`` is
            None or not fitted).

        Returns
        -------
        self : object
        """
        prefitted_names = getattr(self.estimator, "feature_names_in_", None) \
            if is_prefitted(self.estimator) else None
        if prefitted_names is None and hasattr(X, "columns") and \
                hasattr(self.estimator, "n_features_in_"):
            warnings.warn("X has feature names, but the fitted `estimator` was fitted without "
                          "them: its columns are taken in the order of X.", UserWarning,
                          stacklevel=3)
        X, y = self._validate(X, y, reset=True, expected_columns=prefitted_names)
        self._check_params(X.shape[1])

        self.estimator_ = resolve_estimator(self.estimator, X, y, type(self).__name__)
        sample = X[:100]
        self._keras_output = None
        if is_keras_model(self.estimator_):
            self._keras_output = detect_output_kind(self.estimator_, sample, self.input_shape)
        classes = getattr(self.estimator_, "classes_", None)
        self.classes_ = None if classes is None else np.asarray(classes)
        self._predict_in_search = self._predict_disagrees(X)
        self._backend = self._make_backend(X.shape[1])
        proba = check_probabilities(self._backend.predict_proba(sample), sample.shape[0])
        if self.classes_ is None:
            self.classes_ = np.arange(proba.shape[1])
        elif len(self.classes_) != proba.shape[1]:
            raise ValueError(f"`estimator` has {len(self.classes_)} classes_ but its "
                             f"predict_proba returns {proba.shape[1]} columns.")
        self.feature_range_ = check_feature_range(self.feature_range, X)
        self.immutable_mask_ = feature_mask(self.immutable_features, X.shape[1],
                                            getattr(self, "feature_names_in_", None),
                                            "immutable_features")
        self._fit_data(X)
        return self

    def _validate(self, X, y=None, *, reset, expected_columns=None):
        if y is None:
            return validate_float_data(self, X, reset=reset,
                                       expected_columns=expected_columns), None
        return validate_float_data(self, X, y, reset=reset, expected_columns=expected_columns)

    def _predict_disagrees(self, X):
        """Whether the estimator's ``predict`` disagrees with the argmax of its probabilities
        on ``X`` or between rows of different classes (near its decision boundaries): the
        search then asks ``predict`` at every iteration. The final answers are always
        checked with ``predict``."""
        model = self.estimator_
        if self.classes_ is None or is_keras_model(model) or \
                not callable(getattr(model, "predict", None)) or \
                not callable(getattr(model, "predict_proba", None)):
            return False
        rng = np.random.default_rng(0)
        sample = X[rng.choice(len(X), size=min(len(X), 200), replace=False)]
        first, second = rng.integers(len(sample), size=(2, 100))
        steps = np.linspace(0.0, 1.0, 11)[:, None, None]
        probe = np.vstack([sample, (sample[first] + steps * (sample[second] - sample[first]))
                           .reshape(-1, X.shape[1])])
        with ignoring_feature_name_warnings():
            proba = np.asarray(model.predict_proba(probe))
            labels = np.asarray(model.predict(probe))
        return bool(np.any(self.classes_[proba.argmax(axis=1)] != labels))

    def _check_params(self, n_features):
        """Checks of values and across parameters, beyond ``_parameter_constraints``.

        Subclasses extend it (calling ``super()``); ``feature_range`` is checked against the
        data by :func:`~skcem._validation.check_feature_range` in ``fit``.
        """
        check_pair(self.eps, "eps", positive=True)
        check_pair(self.clip, "clip", increasing=True)
        per_feature(self.eps[1], n_features, "eps")

    def _fit_data(self, X):
        """What a subclass learns from the data."""

    def _fit_mad(self, X, wanted):
        """Learn ``mad_`` when the distance is MAD-scaled; drop a stale one otherwise."""
        if wanted:
            self.mad_ = median_absolute_deviation(X)
        elif hasattr(self, "mad_"):
            del self.mad_

    def _autoencoder(self):
        """The auto-encoder of the ``gamma`` term, if the explainer has one."""
        return None

    def _make_backend(self, n_features):
        return make_backend(self.estimator_, eps=per_feature(self.eps[1], n_features, "eps"),
                            n_features=n_features, autoencoder=self._autoencoder(),
                            input_shape=self.input_shape,
                            output_kind=getattr(self, "_keras_output", None) or "probabilities",
                            classes=self.classes_,
                            predict_in_search=getattr(self, "_predict_in_search", False),
                            gradient=self.gradient)

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
        return class_indices(labels, self.classes_, name)

    def _targets(self, predicted, proba, y):
        """The class each instance is explained against and the class the search aims at.

        Parameters
        ----------
        predicted : ndarray of int
            The model's class index of each instance (by its ``predict`` when it has one).
        proba : ndarray of shape (n_samples, n_classes)
        y : array-like or None
            As passed to :meth:`explain`.

        Returns
        -------
        explained, target : ndarray of int
        """
        raise NotImplementedError

    def _problem_settings(self):
        """The :class:`~skcem._fista.SearchProblem` fields that the subclass decides: ``mode``,
        ``no_info_val``, ``kappa``, distance weights, ``gamma``."""
        raise NotImplementedError

    def _solver_settings(self):
        """The :class:`~skcem._fista.SolverSettings` of the search."""
        raise NotImplementedError

    def _warn_outside_range(self, X):
        lower, upper = self.feature_range_
        outside = np.any((X < lower) | (X > upper), axis=1)
        if outside.any():
            warnings.warn(f"{int(outside.sum())} of {len(X)} instances have features outside "
                          "`feature_range_`: the explanation keeps the values of the features "
                          "it does not change, and moves a changed one only towards the range.",
                          UserWarning, stacklevel=3)

    @staticmethod
    def _searchable(mode, explained, target, predicted):
        """Instances whose only answer would be the instance itself get none, with a warning."""
        searchable = mode.searchable(explained, target, predicted)
        n_trivial = int((~searchable).sum())
        if n_trivial:
            warnings.warn(f"{n_trivial} of {len(target)} instances get no {mode.name}: the "
                          f"model already gives them the class a {mode.name} must reach, so the "
                          "instance itself would be its trivial answer.", TargetWarning,
                          stacklevel=4)
        return searchable

    def explain(self, X, y=None):
        """Find the explanation of each row of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Instances to explain; DataFrame columns are matched by name.
        y : array-like of shape (n_samples,), default=None
            :class:`CEMExplainer`: the class to explain each instance against (default: the
            model's prediction). :class:`CounterfactualExplainer`: ignored.

        Returns
        -------
        explanation : Explanation
            Explanations, their predictions, the ``found`` mask, distances and final ``c``.
            Warns with :class:`ExplanationNotFoundWarning` when some instances got none.
        """
        check_is_fitted(self)
        index = getattr(X, "index", None)
        X, _ = self._validate(X, reset=False)
        backend = self._get_backend()
        rows_before = backend.n_model_rows
        proba = check_probabilities(backend.predict_proba(X), X.shape[0])
        predicted = backend.predict(X)
        n_rows = backend.n_model_rows - rows_before
        self._warn_outside_range(X)
        explained, target = self._targets(predicted, proba, y)
        settings = self._solver_settings()
        lower, upper = self.feature_range_
        common = dict(n_classes=len(self.classes_), lower=lower, upper=upper,
                      mutable=~self.immutable_mask_ if self.immutable_mask_.any() else None,
                      **self._problem_settings())
        searchable = self._searchable(common["mode"], explained, target, predicted)
        starts = range(0, X.shape[0], self.batch_size)
        bar = progress_bar(len(starts) * settings.c_steps, type(self).__name__,
                           self.verbose >= 1)

        def report(step, c, found):
            bar.update(1)
            logger.log(logging.INFO if self.verbose >= 2 else logging.DEBUG,
                       "c-step %d: median c %.4g, %d of %d found", step + 1, np.median(c),
                       int(found.sum()), found.size)

        batches = [(X[i:i + self.batch_size], target[i:i + self.batch_size],
                    searchable[i:i + self.batch_size]) for i in starts]
        try:
            if self.n_jobs in (None, 1) or len(batches) == 1:
                outcomes = [_solve_batch(self, x0, t, s, common, settings, report)
                            for x0, t, s in batches]
            else:
                # Batches are independent: workers give the same answers as this process.
                outcomes = []
                parallel = Parallel(n_jobs=self.n_jobs, return_as="generator")
                for outcome in parallel(delayed(_solve_batch)(self, x0, t, s, common, settings)
                                        for x0, t, s in batches):
                    outcomes.append(outcome)
                    bar.update(settings.c_steps)
        finally:
            bar.close()
        results = [result for result, _ in outcomes]
        n_rows += sum(rows for _, rows in outcomes)
        return self._assemble(X, index, proba, explained, results, common, n_rows, searchable)

    def _assemble(self, X, index, proba, explained, results, common, n_model_rows, searchable):
        found = np.concatenate([r.found for r in results])
        explanation_proba = np.concatenate([r.explanation_proba for r in results])
        explanation_class = np.concatenate([r.explanation_class for r in results])
        explanation_pred = np.full(found.shape, None, dtype=object)
        explanation_pred[found] = self.classes_[explanation_class[found]]
        # Instances left out on purpose were already named by a TargetWarning.
        n_missing = int((~found & searchable).sum())
        mode = common["mode"].name
        if n_missing:
            flat = np.concatenate([r.flat_gradient for r in results]) & ~found & searchable
            rejected = np.concatenate([r.rejected_by_predict for r in results])
            hint = _FLAT_GRADIENT_HINT.format(n=int(flat.sum())) if flat.any() \
                else self._not_found_hint
            if rejected.any():
                hint += (f" For {int(rejected.sum())} of them the estimator's predict "
                         "disagreed with its predict_proba at the best answer.")
            message = (f"{type(self).__name__} found no {mode} for {n_missing} of "
                       f"{int(searchable.sum())} instances searched; their rows are NaN (see "
                       f"`found`). {hint}")
            logger.log(logging.INFO if self.verbose >= 1 else logging.DEBUG, message)
            warnings.warn(message, ExplanationNotFoundWarning, stacklevel=3)
        names = getattr(self, "feature_names_in_", None)
        return Explanation(
            mode=mode, X=X, X_pred=self.classes_[explained], X_proba=proba,
            explanation=np.concatenate([r.explanation for r in results]),
            explanation_pred=explanation_pred, explanation_proba=explanation_proba,
            found=found, distance=np.concatenate([r.distance for r in results]),
            c=np.concatenate([r.best_c for r in results]),
            background=np.clip(common["no_info_val"], common["lower"], common["upper"]),
            classes=self.classes_, feature_names=None if names is None else list(names),
            input_shape=getattr(self._backend, "input_shape", None), index=index,
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
            # Cross-validation folds often reach beyond the range learned on the others.
            warnings.filterwarnings("ignore", message=r".* have features outside")
            explanation = self.explain(X)
        return metrics.cem_score(explanation, self.feature_range_)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = not is_prefitted(self.estimator)
        return tags
