"""What distinguishes a pertinent negative, a pertinent positive and a counterfactual.

Each mode is one object that owns everything mode-specific of the algorithm (Dhurandhar et al.,
2018), written once for every model kind: what the model sees of the iterate (and the sign of that
map), the direction a feature may move, the pinned value of an immutable feature, the loss on the
probabilities, the success test, which instances would only get a trivial answer, and what an
explanation's perturbation is measured from. The optimizer (:mod:`skcem._fista`) and the explanation
(:mod:`skcem._explanation`) ask the mode; they never branch on it.

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

from ._array_api import namespace
from .costs import HingeAttack, LeaveClassLikelihood, NegLogLikelihood


class Mode:
    """The mode-specific parts of the search; subclasses define one mode each.

    Attributes
    ----------
    name : str
        "PN", "PP" or "CF", as in :attr:`skcem.Explanation.mode`.
    input_sign : float
        Derivative of :meth:`model_input` with respect to the iterate (element-wise).
    requires_change : bool
        Whether an answer equal to the instance is ruled out (it is no explanation).
    wants_target : bool
        Whether success means the target class (PP, CF) or another class (PN).
    """

    name = ""
    input_sign = 1.0
    requires_change = True
    wants_target = True

    def model_input(self, adv, x0, background):
        """What the classifier is shown for the iterate ``adv``; at the best iterate, the
        answer."""
        return adv

    def project(self, candidate, x0, no_info_val):
        """Keep a feature's move only in the direction the mode allows, else reset it to
        ``x0``."""
        return candidate

    def project_categorical(self, candidate, x0, no_info_val):
        """:meth:`project` for category codes: which other categories a column may take."""
        return candidate

    def iterate(self, answer, x0, background):
        """The iterate whose :meth:`model_input` is ``answer`` (its inverse)."""
        return answer

    def round_whole(self, answer, x0):
        """``answer`` in whole numbers, rounded away from ``x0``: a little more of the same
        change, which keeps its direction and (mostly) its class."""
        return np.where(answer > x0, np.ceil(answer),
                        np.where(answer < x0, np.floor(answer), answer))

    def pinned(self, x0, background):
        """The iterate's value for a feature that never changes."""
        return x0

    def farthest(self, x0, no_info_val, lower, upper):
        """The most extreme answer the mode admits inside the range, or None when the mode
        has no direction (the gradient-free search tries it as a start)."""
        return None

    def loss(self, kappa):
        """The loss on the probabilities (a term of :mod:`skcem.costs`)."""
        raise NotImplementedError

    def margin_ok(self, proba, target, kappa):
        """The probabilities' side of the success test."""
        return namespace(proba).argmax(proba, axis=1) == target

    def margin(self, proba, target, kappa):
        """How far the probabilities are inside the success region (> 0 inside)."""
        rows = np.arange(len(proba))
        others = proba.copy()
        others[rows, target] = -np.inf
        return proba[rows, target] - others.max(axis=1)

    def is_success(self, proba, target, kappa, pred=None, changed=None,
                   predict_decides=False):
        """Success of each row: by the probabilities (with the ``kappa`` margin), by the
        estimator's own ``predict`` where given (class indices ``pred``), and, where
        ``changed`` is given, only for answers that differ from the instance. With
        ``predict_decides`` (a model whose ``predict`` is not the argmax of its
        probabilities, such as a multiclass SVC's votes) and no margin asked (``kappa`` 0),
        ``predict`` alone. A row of non-finite probabilities (a model that cannot score it)
        is no success: its argmax would read NaN as the first class."""
        xp = namespace(proba)
        ok = xp.all(xp.isfinite(proba), axis=1)
        if not (predict_decides and pred is not None and kappa == 0):
            ok &= self.margin_ok(proba, target, kappa)
        if pred is not None:
            ok &= (pred == target) == self.wants_target
        if changed is not None:
            ok &= changed
        return ok

    def searchable(self, explained, target, predicted):
        """False for instances whose only answer would be the instance itself."""
        return np.ones(len(target), dtype=bool)

    def perturbation_reference(self, X, background):
        """What an explanation's perturbation is measured from."""
        return X


class PertinentNegative(Mode):
    """The smallest addition -- features moved away from the no-information value -- that
    changes the class."""

    name = "PN"
    wants_target = False

    def project(self, candidate, x0, no_info_val):
        xp = namespace(candidate)
        keep = xp.abs(candidate - no_info_val) > xp.abs(x0 - no_info_val)
        return xp.where(keep, candidate, x0)

    def project_categorical(self, candidate, x0, no_info_val):
        # An addition: any category but the no-information one.
        return np.where(candidate != no_info_val, candidate, x0)

    def loss(self, kappa):
        return HingeAttack("PN", kappa)

    def farthest(self, x0, no_info_val, lower, upper):
        # Every addition pushed to the end of the range away from the no-information value.
        above = x0 > no_info_val
        ties = x0 == no_info_val
        wider_up = (upper - x0) >= (x0 - lower)
        return np.where(above | (ties & wider_up), upper, lower)

    def margin(self, proba, target, kappa):
        return -super().margin(proba, target, 0.0) - kappa

    def margin_ok(self, proba, target, kappa):
        return _argmax_shifted(proba, target, kappa) != target

    def searchable(self, explained, target, predicted):
        # An instance the model does not put in the explained class is its own trivial PN.
        return explained == predicted


class PertinentPositive(Mode):
    """The smallest part of the instance -- features moved towards the no-information value
    removed -- that keeps the class. An answer equal to the instance keeps all of it."""

    name = "PP"
    input_sign = -1.0
    requires_change = False

    def model_input(self, adv, x0, background):
        # Exactly x0 where adv == background, exactly the background where adv == x0 (a
        # removed feature), so that what a PP keeps is exactly 0 elsewhere.
        return namespace(adv).where(adv == x0, background, x0 + (background - adv))

    def iterate(self, answer, x0, background):
        return x0 + (background - answer)

    def round_whole(self, answer, x0):
        # Towards x0: a little more of the instance kept.
        return np.where(answer > x0, np.floor(answer),
                        np.where(answer < x0, np.ceil(answer), answer))

    def project(self, candidate, x0, no_info_val):
        xp = namespace(candidate)
        same_side = (candidate - no_info_val) * (x0 - no_info_val) >= 0
        keep = same_side & (xp.abs(candidate - no_info_val) <= xp.abs(x0 - no_info_val))
        return xp.where(keep, candidate, x0)

    def project_categorical(self, candidate, x0, no_info_val):
        # A categorical is kept or removed (replaced by its no-information category).
        return np.where(candidate == no_info_val, candidate, x0)

    def pinned(self, x0, background):
        return namespace(x0).broadcast_to(background, x0.shape)  # the whole feature kept

    def loss(self, kappa):
        return HingeAttack("PP", kappa)

    def margin(self, proba, target, kappa):
        return super().margin(proba, target, 0.0) - kappa

    def margin_ok(self, proba, target, kappa):
        return _argmax_shifted(proba, target, -kappa) == target

    def perturbation_reference(self, X, background):
        return np.broadcast_to(background, np.shape(X))


class Counterfactual(Mode):
    """The closest instance of a target class: free moves, cross-entropy at the target."""

    name = "CF"

    def loss(self, kappa):
        return NegLogLikelihood()

    def searchable(self, explained, target, predicted):
        # An instance already of its target class is its own trivial counterfactual.
        return target != predicted


class CounterfactualOfAnyOtherClass(Counterfactual):
    """The closest instance of any class but the instance's own (``target_class="other"``):
    free moves, cross-entropy of "not the instance's class". Its ``target`` is the class to
    leave, as a PN's is the class explained."""

    wants_target = False

    def loss(self, kappa):
        return LeaveClassLikelihood()

    def margin(self, proba, target, kappa):
        return -super().margin(proba, target, 0.0)

    def margin_ok(self, proba, target, kappa):
        return namespace(proba).argmax(proba, axis=1) != target

    def searchable(self, explained, target, predicted):
        # The class to leave is the model's own: every instance has an answer to find.
        return target == predicted


def _argmax_shifted(proba, target, shift):
    """The class of each row of ``proba`` once its ``target`` class is raised by ``shift``."""
    xp = namespace(proba)
    at_target = target[:, None] == xp.arange(proba.shape[1])
    return xp.argmax(xp.where(at_target, proba + shift, proba), axis=1)


MODES = {mode.name: mode for mode in (PertinentNegative(), PertinentPositive(),
                                      Counterfactual())}
CEM_MODES = ("PN", "PP")
ANY_OTHER_CLASS = CounterfactualOfAnyOtherClass()
