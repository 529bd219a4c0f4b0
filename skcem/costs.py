"""Cost terms: distances between instances and losses on model outputs, each with its gradient.

Each term is defined once, with array operations taken from a namespace ``xp``: numpy on the
black-box path, ``tensorflow.experimental.numpy`` or ``jax.numpy`` inside the Keras path's
compiled function (numpy for Keras on torch, where the attack's gradient is held fixed), and
tensors of the module's device for PyTorch modules
(``skcem._gradients._torch.TorchNamespace``). The CEM
objective of ``skcem._fista`` is assembled from them: the elastic net is :class:`L2` plus
:class:`L1` with scalar or per-feature weights (``beta / MAD`` for the MAD distance, see
:func:`median_absolute_deviation`), the attack term is :class:`HingeAttack` for CEM and
:class:`NegLogLikelihood` for counterfactuals of a given class (ceml's regularized cost),
:class:`LeaveClassLikelihood` for counterfactuals of any other class.

Input terms (``value(x)``, ``gradient(x)``) measure an instance ``x`` against an origin
``x0``; output terms (``value(proba, target_onehot)``, ``gradient(proba, target_onehot)``)
measure model outputs ``proba`` of shape (n_samples, n_classes) against targets one-hot
encoded in the same shape (:func:`one_hot` of the class indices), their gradient being with
respect to the outputs. Values are per row.
"""

import warnings

import numpy as np

from ._warnings import catching_warnings


_OFFSET_DOC = """The term for a model whose class is the argmax of ``proba + offset`` rather
        than of its probabilities (a decision threshold).

        Parameters
        ----------
        offset : array-like of shape (n_classes,)
            Added to the probabilities before the class is taken.

        Returns
        -------
        term : {kind}
            {what}
        """


class Cost:
    """Base class of the cost terms."""

    def key(self):
        """Identifies the term and its settings (compiled functions are cached by it);
        array-like settings by their values."""
        def setting(value):
            if isinstance(value, (str, int, float, bool, tuple)) or value is None:
                return value
            array = np.asarray(value)
            return (array.dtype.str, array.shape, array.tobytes())
        return (type(self).__name__,) + tuple(sorted(
            (name, setting(value)) for name, value in vars(self).items()))

    def with_decision_offset(self, offset):
        return self

    with_decision_offset.__doc__ = _OFFSET_DOC.format(
        kind="Cost", what="Itself, unless the term depends on which class wins "
                           "(:class:`HingeAttack`).")


def _method_doc(summary, inputs, returns):
    """A value or gradient method's docstring: ``summary``, its parameters (an input term's
    ``x`` or an output term's ``proba, target_onehot``), what it returns."""
    if inputs:
        arguments = """x : array of shape (n_samples, n_features)
            Instances, in the namespace ``xp``.
        xp : module, default=numpy
            The array namespace of ``x``."""
    else:
        arguments = """proba : array of shape (n_samples, n_classes)
            The model's probabilities, in the namespace ``xp``.
        target_onehot : array of shape (n_samples, n_classes)
            Each row's class one-hot encoded (:func:`one_hot`).
        xp : module, default=numpy
            The array namespace of ``proba``."""
    return f"""{summary}

        Parameters
        ----------
        {arguments}

        Returns
        -------
        {returns}
        """


_INPUT_VALUE = _method_doc("The term's value for each row of ``x``.", True,
                           "value : array of shape (n_samples,)")
_OUTPUT_VALUE = _method_doc("The term's value for each row of ``proba``.", False,
                            "value : array of shape (n_samples,)")
_OUTPUT_GRADIENT = _method_doc("The gradient with respect to ``proba``.", False,
                               "gradient : array of shape (n_samples, n_classes)")

_INPUT_TERM_PARAMETERS = """
    Parameters
    ----------
    x0 : float or array-like, default=0.0
        The origin: one value per feature, or one row per instance (shape of ``x``).
    weights : float or array-like of shape (n_features,), default=1.0
        Per-feature weights.
"""


class L1(Cost):
    __doc__ = ("""``sum_j w_j |x_j - x0_j|``, with per-feature weights ``w`` (default 1).
""" + _INPUT_TERM_PARAMETERS)

    def __init__(self, x0=0.0, weights=1.0):
        self.x0 = x0
        self.weights = weights

    def value(self, x, xp=np):
        return xp.sum(self.weights * xp.abs(x - self.x0), axis=1)

    value.__doc__ = _INPUT_VALUE

    def gradient(self, x, xp=np):
        return self.weights * xp.sign(x - self.x0)

    gradient.__doc__ = _method_doc("A subgradient with respect to ``x``: 0 where ``x == x0``.",
                                   True, "gradient : array of the shape of ``x``")


class L2(Cost):
    __doc__ = ("""``sum_j w_j (x_j - x0_j)^2``: squared Euclidean distance, weights ``w``.
""" + _INPUT_TERM_PARAMETERS)

    def __init__(self, x0=0.0, weights=1.0):
        self.x0 = x0
        self.weights = weights

    def value(self, x, xp=np):
        return xp.sum(self.weights * (x - self.x0) ** 2, axis=1)

    value.__doc__ = _INPUT_VALUE

    def gradient(self, x, xp=np):
        # (weights may be a list: the array first; doubling is exact, the same numbers)
        return 2.0 * (self.weights * (x - self.x0))

    gradient.__doc__ = _method_doc("The gradient with respect to ``x``.", True,
                                   "gradient : array of the shape of ``x``")


def median_absolute_deviation(X):
    """Per-feature MAD of ``X``, with a fallback where it is 0.

    A feature whose MAD is 0 (more than half its values equal) falls back to its mean
    absolute deviation from the median, and to 1 where that is 0 too (a constant feature):
    never a division by zero. Missing values (NaN) are left out; an all-missing feature gets 1.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The data, such as the training set.

    Returns
    -------
    mad : ndarray of shape (n_features,)
        Positive scales, in each feature's units.
    """
    X = np.asarray(X, dtype=float)
    with catching_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        deviation = np.abs(X - np.nanmedian(X, axis=0))
        mad = np.nanmedian(deviation, axis=0)
        fallback = np.nanmean(deviation, axis=0)
    mad = np.where(mad > 0, mad, fallback)
    return np.where(np.isfinite(mad) & (mad > 0), mad, 1.0)


def _check_target(proba, target_onehot):
    """Refuse targets that are not one-hot rows like ``proba`` (class indices would be
    broadcast against the probabilities into wrong numbers); numpy arrays only: the
    frameworks' compiled paths build their targets themselves."""
    if isinstance(proba, np.ndarray) and isinstance(target_onehot, np.ndarray) and \
            target_onehot.shape != proba.shape:
        raise ValueError(f"`target_onehot` must be one-hot rows of the shape of `proba` "
                         f"{proba.shape}; got shape {target_onehot.shape} (for class indices "
                         "use skcem.costs.one_hot(indices, n_classes)).")


def one_hot(index, n_classes, xp=np, dtype=float):
    """Rows of the identity matrix picked by ``index``.

    Parameters
    ----------
    index : array of int of shape (n_samples,)
        Class indices, in the namespace ``xp``.
    n_classes : int
        The number of classes.
    xp : module, default=numpy
        The array namespace.
    dtype : dtype, default=float
        The dtype of the rows.

    Returns
    -------
    onehot : array of shape (n_samples, n_classes)
    """
    return xp.take(xp.eye(n_classes, dtype=dtype), index, axis=0)


class HingeAttack(Cost):
    """CEM's attack loss on the probabilities ``p`` of the explained class ``t``.

    PN: ``max(0, p_t - max_{j != t} p_j + kappa)``; PP: ``max(0, max_{j != t} p_j - p_t +
    kappa)``. Its gradient is exact (zero where the hinge is inactive).

    Parameters
    ----------
    mode : {"PN", "PP"}
        Which side of the margin the explained class must end on.
    kappa : float, default=0.0
        The confidence margin.
    offset : tuple of float, default=()
        Added to the probabilities before the margin is taken, for a model whose class is
        the argmax of ``proba + offset`` (see :meth:`Cost.with_decision_offset`); () for
        none.
    """

    _SIGNS = {"PN": 1.0, "PP": -1.0}  # PN pushes the explained class down, PP keeps it up

    def __init__(self, mode, kappa=0.0, offset=()):
        if mode not in self._SIGNS:
            raise ValueError(f"`mode` must be 'PN' or 'PP'; got {mode!r}.")
        self.mode = mode
        self.kappa = kappa
        self.offset = offset

    def with_decision_offset(self, offset):
        return HingeAttack(self.mode, self.kappa, tuple(float(v) for v in offset))

    with_decision_offset.__doc__ = _OFFSET_DOC.format(
        kind="HingeAttack", what="The same hinge on ``proba + offset``.")

    def _parts(self, proba, target_onehot, xp):
        _check_target(proba, target_onehot)
        sign = self._SIGNS[self.mode]
        if self.offset:
            proba = proba + xp.asarray(self.offset, dtype=proba.dtype)
        p_target = xp.sum(proba * target_onehot, axis=1)
        others = proba - 2.0 * target_onehot  # the target can never be the runner-up
        runner_up = one_hot(xp.argmax(others, axis=1), proba.shape[1], xp, proba.dtype)
        margin = sign * (p_target - xp.sum(proba * runner_up, axis=1)) + self.kappa
        return sign, margin, runner_up

    def value(self, proba, target_onehot, xp=np):
        _, margin, _ = self._parts(proba, target_onehot, xp)
        return xp.maximum(margin, 0.0)

    value.__doc__ = _OUTPUT_VALUE

    def gradient(self, proba, target_onehot, xp=np):
        sign, margin, runner_up = self._parts(proba, target_onehot, xp)
        active = sign * xp.asarray(margin > 0, dtype=proba.dtype)
        return active[:, None] * (target_onehot - runner_up)

    gradient.__doc__ = _OUTPUT_GRADIENT


class NegLogLikelihood(Cost):
    """``-log p_t``: the cross-entropy of the probabilities at the target class.

    Parameters
    ----------
    floor : float, default=1e-12
        Probabilities are taken as at least this, so that the log stays finite.
    """

    def __init__(self, floor=1e-12):
        self.floor = floor

    def value(self, proba, target_onehot, xp=np):
        _check_target(proba, target_onehot)
        return -xp.log(xp.maximum(xp.sum(proba * target_onehot, axis=1), self.floor))

    value.__doc__ = _OUTPUT_VALUE

    def gradient(self, proba, target_onehot, xp=np):
        _check_target(proba, target_onehot)
        return -target_onehot / xp.maximum(proba, self.floor)

    gradient.__doc__ = _OUTPUT_GRADIENT


class LeaveClassLikelihood(Cost):
    """``-log(sum_{j != t} p_j)``: the cross-entropy of "any class but ``t``".

    The loss of a counterfactual that may take any class other than the instance's ``t``
    (``target_class="other"``): it falls as the probability mass leaves ``t``, whichever
    class takes it. The sum of the other classes' probabilities, rather than ``1 - p_t``, stays
    exact where ``p_t`` is close to 1.

    Parameters
    ----------
    floor : float, default=1e-12
        The other classes' probability is taken as at least this, so that the log stays
        finite.
    """

    def __init__(self, floor=1e-12):
        self.floor = floor

    def value(self, proba, target_onehot, xp=np):
        _check_target(proba, target_onehot)
        return -xp.log(xp.maximum(xp.sum(proba * (1.0 - target_onehot), axis=1), self.floor))

    value.__doc__ = _OUTPUT_VALUE

    def gradient(self, proba, target_onehot, xp=np):
        _check_target(proba, target_onehot)
        others = xp.maximum(xp.sum(proba * (1.0 - target_onehot), axis=1), self.floor)
        return -(1.0 - target_onehot) / others[:, None]

    gradient.__doc__ = _OUTPUT_GRADIENT
