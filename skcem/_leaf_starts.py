"""Starts of the gradient-free search read off a single decision tree's leaves.

A decision tree's class is constant on each leaf's box (the intersection of the splits on the
way to it), so the closest answer of a wanted class is the nearest point of one of those
leaves' boxes: the instance with each feature clipped into the box. The gradient-free search
starts from training rows, and a tree's probabilities are flat (its margin paths have no
slope to follow), so a leaf that no training row of its class lies near is otherwise missed.
The cheapest few boxes of each instance, made admissible and checked by the model, join the
search's starts; its polish then works on them like on any start.
"""

import numpy as np

from ._fista import _rows
from ._polish import _band_edges
from ._tree_models import read_tree_ensemble

# Leaves made starts per instance (the cheapest after admissibility).
_LEAF_STARTS = 3
# Candidate values (instances x leaves x features) built at once.
_MAX_BOX_VALUES = 2**22


class LeafBoxes:
    """The boxes of a one-tree :class:`~skcem._tree_models.TreeEnsemble`'s leaves.

    Attributes
    ----------
    lower, upper : ndarray of shape (n_leaves, n_features)
        Each leaf's numeric box, a split's margin inside its sides (trees compare in
        float32); categorical splits are left to the model's check.
    leaf_class : ndarray of int, shape (n_leaves,)
        The class the tree gives each leaf.
    """

    def __init__(self, ensemble, n_features):
        lower, upper, leaves = [], [], []
        stack = [(int(ensemble.roots[0]), np.full(n_features, -np.inf),
                  np.full(n_features, np.inf))]
        while stack:
            node, lo, hi = stack.pop()
            if ensemble.left[node] < 0:
                lower.append(lo)
                upper.append(hi)
                leaves.append(node)
                continue
            j, t = ensemble.feature[node], ensemble.threshold[node]
            left_hi, right_lo = hi.copy(), lo.copy()
            if np.isfinite(t):  # a numeric split: left where z <= t
                left_hi[j] = min(hi[j], t - ensemble.margin[node])
                right_lo[j] = max(lo[j], t + ensemble.margin[node])
            stack.append((int(ensemble.left[node]), lo, left_hi))
            stack.append((int(ensemble.right[node]), right_lo, hi))
        self.lower, self.upper = np.array(lower), np.array(upper)
        scores = ensemble.leaf_scores[np.array(leaves)] + ensemble.base
        self.leaf_class = np.argmax(scores, axis=1)

    @staticmethod
    def _nearest(search, owner, lower, upper):
        """The point of each box ``[lower, upper]`` nearest to its instance among the
        admissible ones, feature by feature: within the feature range, in the allowed
        direction, a frozen cell at the instance's value, a PN's move outside the band about
        the no-information value. NaN where a feature has no such point in the box."""
        problem = search.problem
        x0 = problem.x0[owner]
        lower = np.maximum(lower, _rows(problem.lower, owner))
        upper = np.minimum(upper, _rows(problem.upper, owner))
        if problem.directions is not None:
            lower = np.where(problem.directions > 0, np.maximum(lower, x0), lower)
            upper = np.where(problem.directions < 0, np.minimum(upper, x0), upper)
        # whole numbers inside the box in integer and categorical columns
        lower = np.where(search.whole, np.ceil(lower), lower)
        upper = np.where(search.whole, np.floor(upper), upper)
        points = np.clip(x0, lower, upper)
        band = _band_edges(search, owner)
        if band is not None:  # a PN: a move into the band goes to its nearest edge instead
            v, above, below = band
            inside = (points != x0) & (np.abs(points - v) <= np.abs(x0 - v))
            up_ok, down_ok = above <= upper, below >= lower
            to_above = up_ok & (~down_ok | (np.abs(above - x0) <= np.abs(below - x0)))
            edge = np.where(to_above, np.maximum(above, lower), np.minimum(below, upper))
            points = np.where(inside & (up_ok | down_ok), edge, points)
            points = np.where(inside & ~(up_ok | down_ok), np.nan, points)
        frozen = problem.frozen(owner)
        if frozen is not None:
            points = np.where(frozen, np.where((x0 >= lower) & (x0 <= upper), x0, np.nan),
                              points)
        return np.where(lower > upper, np.nan, points)

    @classmethod
    def of(cls, ensemble, n_features):
        """The boxes of a single tree's leaves, else None (ensembles: one box per tree)."""
        if ensemble is None or len(ensemble.roots) != 1:
            return None
        return cls(ensemble, n_features)

    def starts(self, search, rows):
        """``(owner, E)``: for each instance of ``rows``, the nearest points of its cheapest
        boxes of a wanted class, made admissible and valid by the model."""
        problem = search.problem
        targets = problem.target[rows]
        owners, starts = [], []
        block = max(1, _MAX_BOX_VALUES // max(1, self.lower.size))
        for start in range(0, rows.size, block):
            part = np.arange(start, min(start + block, rows.size))
            same = self.leaf_class[None, :] == targets[part, None]
            wanted = same if problem.mode.wants_target else ~same
            i, leaf = np.nonzero(wanted)
            if i.size == 0:
                continue
            owner = rows[part][i]
            points = self._nearest(search, owner, self.lower[leaf], self.upper[leaf])
            feasible = ~np.isnan(points).any(axis=1)
            owner, points = owner[feasible], points[feasible]
            points = search.admissible(points, owner)
            changed = np.any(points != problem.x0[owner], axis=1)
            owner, points = owner[changed], points[changed]
            if owner.size == 0:
                continue
            keep = search.cheapest(owner, points, _LEAF_STARTS)
            owners.append(owner[keep])
            starts.append(points[keep])
        if not owners:
            return np.empty(0, int), np.empty((0, problem.x0.shape[1]))
        owner, E = np.concatenate(owners), np.concatenate(starts)
        valid = search.valid(E, owner)
        return owner[valid], E[valid]


def single_tree_leaves(estimator, codec, n_features):
    """The :class:`LeafBoxes` of a ``DecisionTreeClassifier`` (alone or at the end of a
    Pipeline the exact search can follow), else None."""
    model = estimator[-1] if hasattr(estimator, "steps") else estimator
    if type(model).__name__ not in ("DecisionTreeClassifier", "ExtraTreeClassifier"):
        return None
    try:
        ensemble = read_tree_ensemble(estimator, codec, n_features)
    except (TypeError, ValueError):
        return None
    return LeafBoxes.of(ensemble, n_features)
