"""Gradients of a black-box ``predict_proba`` by central differences (numpy only).

No TensorFlow is imported on this path: a model that only offers ``predict_proba`` (any
scikit-learn classifier, or a plain function) is differentiated numerically.
"""

import numpy as np

from ._base import Evaluation, ignoring_feature_name_warnings, probability_array


# Bound on the values of shifted rows built at once (64 MB of float64): the black-box
# gradient's memory stays flat whatever the width and the batch; calls this size cost no speed.
MAX_SHIFTED_VALUES = 2**23


def central_differences(fn, Z, eps, max_values=None, bounds=None):
    """``d fn(z) / d z_i`` for every row and feature, from as few calls of ``fn`` as fit.

    The ``2 * n * d`` shifted rows go to ``fn`` in chunks of at most ``max_values`` values
    (default :data:`MAX_SHIFTED_VALUES`). With ``bounds`` (``(lower, upper)``, scalars or
    per feature) no shifted value leaves them (nor the row's own value, where that lies
    outside): a shift that would is cut at the bound, and the difference divided by the
    shortened step, one-sided at a bound. Returns an array of shape (n, n_features, n_outputs).
    """
    n, d = Z.shape
    steps = np.broadcast_to(np.asarray(eps, dtype=float), (d,))
    if bounds is not None:
        lower, upper = (np.broadcast_to(np.asarray(b, dtype=float), (d,)) for b in bounds)
    max_values = MAX_SHIFTED_VALUES if max_values is None else max_values
    pairs_per_call = max(1, max_values // (2 * d))
    jacobian = None
    for start in range(0, n * d, pairs_per_call):
        pairs = np.arange(start, min(start + pairs_per_call, n * d))
        instance, feature = np.divmod(pairs, d)
        rows = np.repeat(Z[instance][None], 2, axis=0)
        picked = np.arange(pairs.size)
        rows[0, picked, feature] += steps[feature]
        rows[1, picked, feature] -= steps[feature]
        width = np.broadcast_to(2 * steps[feature], pairs.size)
        if bounds is not None:
            own = Z[instance, feature]
            above = np.minimum(rows[0, picked, feature], np.maximum(upper[feature], own))
            below = np.maximum(rows[1, picked, feature], np.minimum(lower[feature], own))
            cut = (above != rows[0, picked, feature]) | (below != rows[1, picked, feature])
            if cut.any():
                rows[0, picked, feature], rows[1, picked, feature] = above, below
                width = np.where(cut, above - below, width)
        out = np.asarray(fn(rows.reshape(2 * pairs.size, d)), dtype=float)
        out = out.reshape(2, pairs.size, -1)
        if jacobian is None:
            jacobian = np.empty((n * d, out.shape[-1]))
        with np.errstate(invalid="ignore", divide="ignore"):
            slope = (out[0] - out[1]) / width[:, None]
        # a side where the model gave no number (NaN, inf) shows no slope
        jacobian[pairs] = np.where((width[:, None] > 0) & np.isfinite(slope), slope, 0.0)
    return jacobian.reshape(n, d, -1)


class NumericalBackend:
    """Answers the optimizer's questions with a black-box ``predict_proba``.

    Parameters
    ----------
    predict_proba : callable
        Maps an array of shape (n, n_features) to class probabilities (n, n_classes).
    eps : float or ndarray of shape (n_features,)
        Step of the central differences on each input feature.
    autoencoder : object, optional
        The auto-encoder term, such as :class:`NumericalAutoencoder`: called on rows ``Z`` it
        returns ``(||AE(z) - z||^2, its gradient)``; its ``loss(Z)`` returns the first alone.
    predict : callable, optional
        Maps rows to class indices by the estimator's own ``predict``, which may disagree with
        the argmax of ``predict_proba`` (``SVC(probability=True)``).
    predict_in_search : bool, default=False
        Ask ``predict`` for the iterates' classes at every iteration too (for estimators seen
        to disagree); otherwise it only checks the final answers.

    Attributes
    ----------
    n_model_rows : int
        Rows sent to ``predict_proba`` so far: the cost measure of a black-box search.
    input_bounds : tuple of (lower, upper) or None
        The admissible rows (the explainer's ``feature_range_``): the differences' shifted
        rows stay inside, so that the model is never asked about a row outside them.
    """

    # the input gradient is one of finite differences (see ExactBackend)
    finite_differences = True

    def __init__(self, predict_proba, eps, autoencoder=None, predict=None,
                 predict_in_search=False):
        self._predict_proba = predict_proba
        self._predict = predict
        self.predict_in_search = predict_in_search and predict is not None
        self.eps = eps
        self.autoencoder = autoencoder
        self.n_model_rows = 0
        # rows whose probabilities came back NaN or infinite (outside where the model answers)
        self.n_non_finite_rows = 0
        self.input_bounds = None

    @property
    def input_bounds(self):
        return self._input_bounds

    @input_bounds.setter
    def input_bounds(self, bounds):
        self._input_bounds = bounds
        if isinstance(self.autoencoder, NumericalAutoencoder):
            self.autoencoder.input_bounds = bounds

    def predict_proba(self, Z):
        self.n_model_rows += Z.shape[0]
        with ignoring_feature_name_warnings():
            return self._counted(probability_array(self._predict_proba(Z)))

    def _counted(self, proba):
        """``proba``, its rows of NaN or infinite values counted in ``n_non_finite_rows``."""
        if proba.ndim == 2 and not np.isfinite(proba).all():
            self.n_non_finite_rows += int(np.sum(~np.isfinite(proba).all(axis=1)))
        return proba

    def predict(self, Z):
        """Class indices of ``Z``: the estimator's ``predict`` if it has one, else the argmax."""
        if self._predict is None:
            return self.predict_proba(Z).argmax(axis=1)
        self.n_model_rows += Z.shape[0]
        with ignoring_feature_name_warnings():
            return self._predict(Z)

    def proba_vjp(self, Z, cotangent):
        """``sum_k cotangent[:, k] * d p_k / d z``; all 2*n*d shifted rows go in one call."""
        jacobian = central_differences(self.predict_proba, Z, self.eps,
                                       bounds=self.input_bounds)
        return np.einsum("ndk,nk->nd", jacobian, cotangent)

    def evaluate(self, Z_adv, Z_s, target_onehot, loss, *, with_attack_grad=True,
                 with_ae_grad=False, with_ae_loss_at_adv=False):
        """Probabilities at ``Z_adv``; gradients of ``loss`` (and of the AE term) at ``Z_s``.

        ``loss`` is an output term of :mod:`skcem.costs`, such as ``HingeAttack``.

        Two model calls at most: the iterates and slack points together, then the shifted
        copies of the slack points whose hinge is active.
        """
        n = Z_adv.shape[0]
        answer = Evaluation(proba_adv=None)
        if with_attack_grad:
            proba = self._search_proba(np.vstack([Z_adv, Z_s]))
            answer.proba_adv = proba[:n]
            answer.attack_grad = self.loss_gradient(Z_s, proba[n:], target_onehot, loss)
        else:
            answer.proba_adv = self._search_proba(Z_adv)
        if self.predict_in_search:
            answer.pred_adv = self.predict(Z_adv)
        if with_ae_grad:
            _, answer.ae_grad = self.autoencoder(Z_s)
        if with_ae_loss_at_adv:
            answer.ae_loss_adv = self.autoencoder.loss(Z_adv)
        return answer

    def _search_proba(self, Z):
        """``predict_proba`` at the search's iterates."""
        return self.predict_proba(Z)

    def loss_gradient(self, Z, proba, target_onehot, loss):
        """Gradient of an output ``loss`` with respect to ``z``, given ``proba = p(Z)``.

        The loss's derivative with respect to the probabilities is exact; only rows where it
        is not zero (an active hinge) send their shifted copies to the model.
        """
        with np.errstate(invalid="ignore"):
            dloss_dproba = loss.gradient(proba, target_onehot)
        # no direction where the model gave no number
        dloss_dproba[~np.isfinite(dloss_dproba)] = 0.0
        active = np.any(dloss_dproba != 0, axis=1)
        if active.all():
            return self.proba_vjp(Z, dloss_dproba)
        grad = np.zeros_like(Z)
        if np.any(active):
            grad[active] = self.proba_vjp(Z[active], dloss_dproba[active])
        return grad


class NumericalAutoencoder:
    """``||AE(z) - z||^2`` per row and its gradient for a black-box auto-encoder function."""

    def __init__(self, autoencoder, eps):
        self.autoencoder = autoencoder
        self.eps = eps
        self.input_bounds = None
        self.n_non_finite_rows = 0

    def _reconstruct(self, Z):
        return np.asarray(self.autoencoder(Z), dtype=float).reshape(Z.shape[0], -1)

    def _counted(self, residual):
        """``residual``, its rows of NaN or infinite values counted in ``n_non_finite_rows``
        (where the term is undefined: named when nothing is found)."""
        bad = ~np.isfinite(residual).all(axis=1)
        if bad.any():
            self.n_non_finite_rows += int(bad.sum())
        return residual

    def loss(self, Z):
        return np.sum(self._counted(self._reconstruct(Z) - Z) ** 2, axis=1)

    def __call__(self, Z):
        residual = self._counted(self._reconstruct(Z) - Z)
        jacobian = central_differences(self._reconstruct, Z, self.eps,
                                       bounds=self.input_bounds)
        # d/dz ||AE(z) - z||^2 = 2 (J_AE - I)^T (AE(z) - z)
        grad = 2 * (np.einsum("ndk,nk->nd", jacobian, residual) - residual)
        return np.sum(residual**2, axis=1), grad


class ExactBackend(NumericalBackend):
    """:class:`NumericalBackend` with the model's exact input gradient: one backward pass for
    the whole batch in place of ``2 * n_features`` shifted rows per instance.

    Parameters
    ----------
    predict_proba, eps, autoencoder, predict, predict_in_search
        As for :class:`NumericalBackend` (``eps`` serves the auto-encoder term only).
    vjp : ProbaVJP
        The compiled model (:func:`~skcem._gradients._exact.exact_proba_vjp`);
        ``vjp(Z, cotangent)`` is ``sum_k cotangent[:, k] * d p_k / d z`` for every row.
    vjp_is_predict_proba : bool, default=True
        Whether the search's probabilities at every iteration come from the compiled forward
        pass (``vjp.forward``, the same numbers as ``predict_proba``, also for a table's
        decoded rows, without the estimator's input validation and checks) rather than from
        ``predict_proba`` itself.
    """

    finite_differences = False

    def __init__(self, predict_proba, eps, autoencoder=None, predict=None,
                 predict_in_search=False, *, vjp, vjp_is_predict_proba=True):
        super().__init__(predict_proba, eps, autoencoder, predict, predict_in_search)
        self._vjp = vjp
        self.vjp_is_predict_proba = vjp_is_predict_proba

    def proba_vjp(self, Z, cotangent):
        # Rows through the backward pass count as model rows, as a forward pass would.
        self.n_model_rows += Z.shape[0]
        with ignoring_feature_name_warnings():
            return np.asarray(self._vjp(Z, cotangent), dtype=float)

    def _search_proba(self, Z):
        if not self.vjp_is_predict_proba:
            return self.predict_proba(Z)
        self.n_model_rows += Z.shape[0]
        with ignoring_feature_name_warnings():
            return self._counted(self._vjp.forward(Z)[0])
