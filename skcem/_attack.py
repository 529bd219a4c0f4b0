"""What distinguishes a pertinent negative from a pertinent positive.

Everything mode-specific of ALGORITHMS.md lives here, written once for every model kind:
what the model sees of the iterate, the direction a feature may move and the success test.
The hinge attack loss is :class:`skcem.costs.HingeAttack`.

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
# "CF", a counterfactual (CounterfactualExplainer), moves freely towards a target class: the
# model sees the iterate itself, as for a PN, in any direction.
MOVES_FREELY = "CF"


def model_input(adv, x0, background, mode):
    """What the classifier is shown for the iterate ``adv``; at the best iterate, the answer.

    PN and counterfactual: the iterate itself; PP: the part of ``x0`` that is kept.
    """
    if mode in ("PN", MOVES_FREELY):
        return adv
    return x0 + (background - adv)  # exactly x0 where adv == background


def input_sign(mode):
    """Derivative of :func:`model_input` with respect to ``adv`` (element-wise, constant)."""
    return -1.0 if mode == "PP" else 1.0


def project(candidate, x0, no_info_val, mode):
    """Keep a feature's move only in the direction the mode allows, else reset it to ``x0``.

    PN: only moves away from the no-information value (adding). PP: only moves towards it,
    without crossing it (removing). A counterfactual moves freely.
    """
    if mode == MOVES_FREELY:
        return candidate
    dist_candidate = np.abs(candidate - no_info_val)
    dist_original = np.abs(x0 - no_info_val)
    if mode == "PN":
        keep = dist_candidate > dist_original
    else:
        same_side = (candidate - no_info_val) * (x0 - no_info_val) >= 0
        keep = same_side & (dist_candidate <= dist_original)
    return np.where(keep, candidate, x0)


def is_success(proba, target, mode, kappa, pred=None, changed=None):
    """ALGORITHMS.md's success test, with the ``kappa`` margin on the target's probability.

    A counterfactual succeeds when the target class is predicted. ``pred`` (class indices
    from the estimator's own ``predict``, when it has one) must agree: an answer is valid by
    ``predict`` as well as by the probabilities. ``changed`` (per row) rules out answers that
    leave the instance as it is: those are never explanations.
    """
    rows = np.arange(proba.shape[0])
    shifted = proba.copy()
    if mode == MOVES_FREELY:
        ok = np.argmax(proba, axis=1) == target
        wanted_class = True
    elif mode == "PN":
        shifted[rows, target] += kappa
        ok = np.argmax(shifted, axis=1) != target
        wanted_class = False
    else:
        shifted[rows, target] -= kappa
        ok = np.argmax(shifted, axis=1) == target
        wanted_class = True
    if pred is not None:
        ok &= (pred == target) == wanted_class
    if changed is not None:
        ok &= changed
    return ok


def requires_change(mode):
    """Whether an answer equal to the instance is ruled out: the instance itself is no PN or
    counterfactual (a PP equal to the instance keeps all of it, a legitimate answer)."""
    return mode in ("PN", MOVES_FREELY)
