"""CEMExplainer: the Contrastive Explanation Method as a scikit-learn transformer."""

import sys
import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin, _fit_context
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from . import metrics
from ._attack import MODES
from ._base import ExplainerMixin
from ._explanation import CEMExplanation
from ._fista import CEMProblem, SolverSettings, solve
from ._gradients import make_backend
from ._validation import (check_feature_range, check_pair, check_probabilities, per_feature,
                          resolve_estimator)


class ExplanationNotFoundWarning(UserWarning):
    """Some instances got no explanation: their rows are NaN and ``found`` is False."""


class CEMExplainer(ExplainerMixin, OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Contrastive explanations: pertinent negatives (PN) or pertinent positives (PP).

    For each instance ``x0`` of class ``t``, a **pertinent negative** is the smallest addition
    to ``x0`` -- features moved away from their no-information value -- that changes the
    predicted class; a **pertinent positive** is the smallest part of ``x0`` -- features moved
    towards their no-information value removed -- that still has class ``t``
    (Dhurandhar et al., 2018). Both are found by FISTA on an elastic-net objective with a hinge
    attack term, and a per-instance binary search on the attack weight ``c``; all instances of
    a batch are optimised together.

    Any classifier with ``predict_proba`` (or a plain function returning probabilities) is
    explained through numerical gradients, with numpy only. A Keras 3 model (TensorFlow
    backend, softmax outputs) is differentiated by autodiff in compiled TensorFlow functions
    instead; ``X`` stays 2-D and is reshaped to the model's input shape inside.

    Parameters
    ----------
    estimator : object, callable or None, default=None
        The classifier to explain. A fitted estimator is used as it is; an unfitted one is
        cloned and fitted on ``fit(X, y)``; ``None`` fits a ``LogisticRegression`` on
        ``(X, y)``. A Keras model is used as it is, with autodiff gradients. Another callable
        is taken as a ``predict_proba`` function.
    mode : {"PN", "PP"}, default="PN"
        Find pertinent negatives or pertinent positives.
    kappa : float, default=0.0
        Margin of the hinge attack term: a PN must push the explained class at least
        ``kappa`` (in probability) below another class, a PP keep it that far above all others.
    beta : float, default=0.1
        Weight of the L1 term: larger values give sparser explanations.
    feature_range : tuple (min, max) or None, default=None
        Bounds of the explanation's features, each a scalar or one value per feature. ``None``
        learns the per-feature minimum and maximum of the data passed to ``fit``.
    no_info_val : float, array-like of shape (n_features,) or None, default=None
        The value of each feature that carries no information (an image's background). ``None``
        learns it from the data passed to ``fit`` (see ``no_info_type``).
    no_info_type : {"median", "mean"}, default="median"
        How ``fit`` learns ``no_info_val`` when it is not given.
    gamma : float, default=0.0
        Weight of the auto-encoder term ``||AE(z) - z||^2`` that keeps the explanation close
        to the data manifold. Needs ``autoencoder``.
    autoencoder : Keras model, callable or None, default=None
        The auto-encoder of the ``gamma`` term. A Keras model is differentiated by autodiff
        (whatever the classifier); another callable, mapping rows (n, n_features) to their
        reconstructions, by finite differences. PN penalises ``||AE(a) - a||^2``, PP
        ``||AE(z) - z||^2`` for the kept part ``z``.
    input_shape : tuple or None, default=None
        Shape of one instance as the Keras model(s) expect it (such as ``(28, 28, 1)``);
        inferred from the model when None. ``X`` has ``prod(input_shape)`` columns.
    learning_rate_init : float, default=1e-2
        Initial learning rate, decayed polynomially (power 0.5) to 0 over ``max_iterations``.
    max_iterations : int, default=1000
        FISTA iterations for each value of ``c``.
    c_init : float, default=10.0
        Initial weight of the attack term.
    c_steps : int, default=10
        Number of values of ``c`` tried per instance (binary search).
    eps : tuple (eps0, eps1), default=(1e-3, 1e-3)
        Finite-difference steps, as in the reference. ``eps1`` (a scalar or one value per
        feature) is the step for ``dp/dx``. ``eps0`` is validated but not needed: the hinge's
        derivative with respect to the probabilities is exact in closed form here.
    clip : tuple (min, max), default=(-100.0, 100.0)
        Element-wise bounds of the gradient, applied to the attack term and to the
        regularisation terms separately (as the reference does for black-box models).
    update_num_grad : int, default=1
        Recompute the numerical gradient every ``update_num_grad`` iterations only.
    tol : float or None, default=None
        Early stopping. ``None`` runs the reference's fixed iteration count. Otherwise an
        instance stops iterating for the current ``c`` once its objective has improved by less
        than ``tol`` (relative) for ``n_iter_no_change`` iterations, and leaves the search on
        ``c`` once its bracket on ``c`` is within 5%; finished instances cost no more model
        evaluations.
    n_iter_no_change : int, default=50
        The patience window of early stopping.
    batch_size : int, default=64
        Instances optimised together. A black-box batch sends ``2 * n_features *
        batch_size`` rows to ``predict_proba`` in one call.
    verbose : int, default=0
        1 reports progress over batches on stderr.

    Attributes
    ----------
    estimator_ : object
        The fitted classifier that is explained.
    classes_ : ndarray of shape (n_classes,)
        Its classes.
    no_info_val_ : ndarray of shape (n_features,)
    feature_range_ : tuple of two ndarrays of shape (n_features,)
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Defined only when ``X`` has feature names that are all strings.

    See Also
    --------
    skcem.metrics : validity, sparsity and proximity of the explanations.

    Notes
    -----
    Differences from the reference (alibi 0.9.6 ``CEM``), all deliberate:

    - whole batches of instances are optimised at once, each with its own ``c`` and bracket;
    - the black-box gradient of the attack term uses the exact derivative of the hinge for the
      mode at hand (the reference uses the PN hinge's activity for PPs too, which is why it
      finds no black-box PP on iris);
    - ``clone`` keeps a fitted ``estimator`` as it is (like ``sklearn.frozen.FrozenEstimator``):
      ``GridSearchCV`` over ``beta``, ``kappa`` or ``c_init`` then explains the model it was
      given, with no ``y`` needed. An unfitted ``estimator`` is cloned as usual;
    - a PP is ``x0 - a + clip(no_info_val, *feature_range)``, which is the reference's
      ``x0 - a`` when the no-information value is 0 and stays between the no-information value
      and ``x0`` otherwise (see ``skcem._attack``).

    References
    ----------
    .. [1] A. Dhurandhar et al., "Explanations based on the Missing: Towards Contrastive
       Explanations with Pertinent Negatives", NeurIPS 2018.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from skcem import CEMExplainer
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = LogisticRegression(max_iter=1000).fit(X, y)
    >>> cem = CEMExplainer(clf, mode="PN", max_iterations=200, c_steps=5).fit(X)
    >>> exp = cem.explain(X[:2])
    >>> exp.found.shape
    (2,)
    """

    _transient_attributes = ("_backend",)
    _parameter_constraints: dict = {
        "estimator": [HasMethods(["predict_proba"]), callable, None],
        "mode": [StrOptions(set(MODES))],
        "kappa": [Interval(Real, 0, None, closed="left")],
        "beta": [Interval(Real, 0, None, closed="left")],
        "feature_range": [tuple, list, None],
        "no_info_val": [Real, "array-like", None],
        "no_info_type": [StrOptions({"median", "mean"})],
        "gamma": [Interval(Real, 0, None, closed="left")],
        "autoencoder": [callable, None],
        "input_shape": [tuple, list, None],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "max_iterations": [Interval(Integral, 1, None, closed="left")],
        "c_init": [Interval(Real, 0, None, closed="neither")],
        "c_steps": [Interval(Integral, 1, None, closed="left")],
        "eps": [tuple, list],
        "clip": [tuple, list],
        "update_num_grad": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="neither"), None],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "verbose": ["verbose"],
    }

    def __init__(self, estimator=None, *, mode="PN", kappa=0.0, beta=0.1, feature_range=None,
                 no_info_val=None, no_info_type="median", gamma=0.0, autoencoder=None,
                 input_shape=None, learning_rate_init=1e-2, max_iterations=1000, c_init=10.0, c_steps=10,
                 eps=(1e-3, 1e-3), clip=(-100.0, 100.0), update_num_grad=1, tol=None,
                 n_iter_no_change=50, batch_size=64, verbose=0):
        self.estimator = estimator
        self.mode = mode
        self.kappa = kappa
        self.beta = beta
        self.feature_range = feature_range
        self.no_info_val = no_info_val
        self.no_info_type = no_info_type
        self.gamma = gamma
        self.autoencoder = autoencoder
        self.input_shape = input_shape
        self.learning_rate_init = learning_rate_init
        self.max_iterations = max_iterations
        self.c_init = c_init
        self.c_steps = c_steps
        self.eps = eps
        self.clip = clip
        self.update_num_grad = update_num_grad
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.batch_size = batch_size
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None):
        """Resolve the classifier and learn the no-information value and feature range.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Representative data, typically the training set.
        y : array-like of shape (n_samples,), default=None
            Labels; needed only when the classifier must be fitted here (``estimator`` is
            None or not fitted).

        Returns
        -------
        self : CEMExplainer
        """
        if y is None:
            X = validate_data(self, X, dtype=np.float64)
        else:
            X, y = validate_data(self, X, y, dtype=np.float64)
        check_pair(self.eps, "eps", positive=True)
        check_pair(self.clip, "clip", increasing=True)
        if self.gamma > 0 and self.autoencoder is None:
            raise ValueError("`gamma` > 0 needs an `autoencoder`; pass one or set gamma=0.")
        per_feature(self.eps[1], X.shape[1], "eps")

        self.estimator_ = resolve_estimator(self.estimator, X, y, type(self).__name__)
        self._backend = self._make_backend(X.shape[1])
        proba = check_probabilities(self._backend.predict_proba(X[:100]), min(X.shape[0], 100))
        classes = getattr(self.estimator_, "classes_", None)
        self.classes_ = np.arange(proba.shape[1]) if classes is None else np.asarray(classes)
        if self.no_info_val is None:
            statistic = np.median if self.no_info_type == "median" else np.mean
            self.no_info_val_ = statistic(X, axis=0)
        else:
            self.no_info_val_ = per_feature(self.no_info_val, X.shape[1], "no_info_val")
        self.feature_range_ = check_feature_range(self.feature_range, X)
        return self

    def explain(self, X, y=None):
        """Find the pertinent negative or positive of each row of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Instances to explain.
        y : array-like of shape (n_samples,), default=None
            The class to explain each instance against; defaults to the model's prediction.

        Returns
        -------
        explanation : CEMExplanation
            Explanations, their predictions, the ``found`` mask, distances and final ``c``.
            Warns with :class:`ExplanationNotFoundWarning` when some instances got none.
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        backend = self._get_backend()
        rows_before = backend.n_model_rows
        proba = check_probabilities(backend.predict_proba(X), X.shape[0])
        target = proba.argmax(axis=1) if y is None else self._class_indices(y, X.shape[0])
        settings = SolverSettings(
            learning_rate_init=self.learning_rate_init, max_iterations=self.max_iterations,
            c_init=self.c_init, c_steps=self.c_steps, clip=tuple(map(float, self.clip)),
            update_num_grad=self.update_num_grad, tol=self.tol,
            n_iter_no_change=self.n_iter_no_change)
        lower, upper = self.feature_range_
        results = []
        n_batches = -(-X.shape[0] // self.batch_size)
        for batch, start in enumerate(range(0, X.shape[0], self.batch_size)):
            rows = slice(start, start + self.batch_size)
            problem = CEMProblem(x0=X[rows], target=target[rows],
                                 n_classes=len(self.classes_), mode=self.mode,
                                 no_info_val=self.no_info_val_, lower=lower, upper=upper,
                                 kappa=float(self.kappa), beta=float(self.beta),
                                 gamma=float(self.gamma))
            results.append(solve(backend, problem, settings))
            if self.verbose:
                print(f"[CEMExplainer] batch {batch + 1}/{n_batches}: "
                      f"{int(results[-1].found.sum())} found", file=sys.stderr)
        return self._assemble(X, target, results, backend.n_model_rows - rows_before)

    def _make_backend(self, n_features):
        return make_backend(self.estimator_, eps=per_feature(self.eps[1], n_features, "eps"),
                            autoencoder=self.autoencoder, input_shape=self.input_shape)

    def _get_backend(self):
        # Compiled TensorFlow functions do not pickle: a restored explainer rebuilds them.
        if getattr(self, "_backend", None) is None:
            self._backend = self._make_backend(self.n_features_in_)
        return self._backend

    def _class_indices(self, y, n_samples):
        y = np.asarray(y)
        if y.shape != (n_samples,):
            raise ValueError(f"`y` must have shape ({n_samples},) like X; got {y.shape}.")
        index = np.searchsorted(self.classes_, y)
        index = np.clip(index, 0, len(self.classes_) - 1)
        unknown = self.classes_[index] != y
        if np.any(unknown):
            raise ValueError(f"`y` holds labels the model does not know: "
                             f"{np.unique(y[unknown]).tolist()}; classes are "
                             f"{self.classes_.tolist()}.")
        return index

    def _assemble(self, X, target, results, n_model_rows):
        found = np.concatenate([r.found for r in results])
        explanation_proba = np.concatenate([r.explanation_proba for r in results])
        explanation_pred = np.full(found.shape, None, dtype=object)
        explanation_pred[found] = self.classes_[explanation_proba[found].argmax(axis=1)]
        n_missing = int((~found).sum())
        if n_missing:
            warnings.warn(f"CEMExplainer found no {self.mode} for {n_missing} of {found.size} "
                          "instances; their rows are NaN (see `found`). Try a larger c_init or "
                          "c_steps, more max_iterations, or a wider clip.",
                          ExplanationNotFoundWarning, stacklevel=3)
        lower, upper = self.feature_range_
        names = getattr(self, "feature_names_in_", None)
        return CEMExplanation(
            mode=self.mode, X=X, X_pred=self.classes_[target],
            explanation=np.concatenate([r.explanation for r in results]),
            explanation_pred=explanation_pred, explanation_proba=explanation_proba,
            found=found, distance=np.concatenate([r.distance for r in results]),
            c=np.concatenate([r.best_c for r in results]),
            background=np.clip(self.no_info_val_, lower, upper),
            feature_names=None if names is None else list(names),
            input_shape=getattr(self._backend, "input_shape", None),
            meta={"n_model_rows": n_model_rows,
                  "n_iterations": np.concatenate([r.n_iterations for r in results]).tolist()})

    def transform(self, X):
        """The pertinent negatives or positives of ``X``, one row per instance.

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
        ``GridSearchCV`` tune ``beta``, ``kappa`` and ``c_init`` without a scoring argument.

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
