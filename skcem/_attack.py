"""What distinguishes a pertinent negative from a pertinent positive.

Everything mode-specific of ALGORITHMS.md lives here, written once for every model kind:
what the model sees of the iterate, the direction a feature may move, the hinge attack loss
(value and derivative with respect to the probabilities) and the success test.

Pertinent positives and the no-information value
------------------------------------------------
The reference feeds the model ``x0 - a`` for a PP, which is "the part of ``x0`` that is kept"
only when the no-information value ``v`` is 0. skcem feeds it ``x0 - a + v_bg`` where
``v_bg = clip(v, lo, hi)`` is the no-information value inside the feature range: with nothing
removed (``a = v_bg``) the model sees ``x0``, with everything removed (``a = x0``) it sees the
blank background ``v_bg``. For ``v = 0`` inside the range this is the reference's formula number
for number; for any other ``v`` (the median of standardised tabular data, MNIST scaled to
``[-0.5, 0.5]`` with ``v = -1``) the PP stays between ``v_bg`` and ``x0`` and inside the feature
range, where the reference's ``x0 - a`` does not. For the same reason the PP projection keeps a
feature only while it lies *between* ``v`` and ``x0``; the reference's ``|a - v| <= |x0 - v|``
also admits the mirror image beyond ``v``, which the shrinkage step's clipping to the feature
range rules out in the reference's own examples anyway.
"""

import numpy as np

MODES = ("PN", "PP")


def model_input(adv, x0, background, mode):
    """What the classifier is shown for the iterate ``adv``."""
    if mode == "PN":
        return adv
    return x0 - adv + background


def input_sign(mode):
    """Derivative of :func:`model_input` with respect to ``adv`` (element-wise, constant)."""
    return 1.0 if mode == "PN" else -1.0


def explanation_from_adv(adv, x0, background, mode):
    """The returned PN (the iterate itself) or PP (the part of ``x0`` that is kept)."""
    return model_input(adv, x0, background, mode)


def project(candidate, x0, no_info_val, mode):
    """Keep a feature's move only in the direction the mode allows, else reset it to ``x0``.

    PN: only moves away from the no-information value (adding). PP: only moves towards it,
    without crossing it (removing).
    """
    dist_candidate = np.abs(candidate - no_info_val)
    dist_original = np.abs(x0 - no_info_val)
    if mode == "PN":
        keep = dist_candidate > dist_original
    else:
        same_side = (candidate - no_info_val) * (x0 - no_info_val) >= 0
        keep = same_side & (dist_candidate <= dist_original)
    return np.where(keep, candidate, x0)


def one_hot(target, n_classes, xp=np, dtype=float):
    """Rows of the identity matrix picked by ``target``."""
    return xp.take(xp.eye(n_classes, dtype=dtype), target, axis=0)


def attack_loss(proba, target_onehot, mode, kappa, xp=np):
    """Hinge attack loss ``f`` and its exact derivative ``df/dp``.

    PN: ``f = max(0, p_t - max_{j != t} p_j + kappa)``;
    PP: ``f = max(0, max_{j != t} p_j - p_t + kappa)``.

    Written once with array operations only, so that ``xp`` may be numpy (black-box path) or
    ``tensorflow.experimental.numpy`` (inside the Keras path's compiled graph).

    Parameters
    ----------
    proba : array of shape (n, n_classes)
    target_onehot : array of shape (n, n_classes)
    mode : {"PN", "PP"}
    kappa : float
    xp : module, default=numpy

    Returns
    -------
    loss : array of shape (n,)
    dloss_dproba : array of shape (n, n_classes)
        Zero on rows where the hinge is inactive, so those rows need no model gradient.
    """
    sign = 1.0 if mode == "PN" else -1.0
    p_target = xp.sum(proba * target_onehot, axis=1)
    others = proba - 2.0 * target_onehot  # the target can never be the runner-up
    runner_up = one_hot(xp.argmax(others, axis=1), proba.shape[1], xp, proba.dtype)
    p_runner_up = xp.sum(proba * runner_up, axis=1)
    margin = sign * (p_target - p_runner_up) + kappa
    active = sign * xp.asarray(margin > 0, dtype=proba.dtype)
    dloss = active[:, None] * (target_onehot - runner_up)
    return xp.maximum(margin, 0.0), dloss


def is_success(proba, target, mode, kappa):
    """ALGORITHMS.md's success test, with the ``kappa`` margin on the target's probability."""
    rows = np.arange(proba.shape[0])
    shifted = proba.copy()
    if mode == "PN":
        shifted[rows, target] += kappa
        return np.argmax(shifted, axis=1) != target
    shifted[rows, target] -= kappa
    return np.argmax(shifted, axis=1) == target
