"""The gradient-free search's last step on tree models: each change moved to a split.

A tree model's answer can change only where some split's threshold is crossed: between two
consecutive thresholds of a column, every value gives the same leaves. So the closest value
of a changed feature that keeps the answer valid, the others fixed, is one of a few points:
the instance's own value, or a threshold just crossed (a small step inside it, the side away
from the instance), between the instance's value and the answer's. :func:`scan_splits` asks
the model about those points, for every changed feature of every answer of a batch in one
call, and moves each answer along the feature whose best point saves most distance, or
along all of them where together they stay valid; it repeats while some answer gets closer.

Unlike the bisection of :meth:`~skcem._neighbors._Batch.shrink`, which assumes that validity
holds up to one point of the move, it finds a valid point beyond an invalid stretch (a tree
model's class may come and go along a line), and lands on the threshold itself rather than
near it; it needs a call per round instead of a few per changed feature.

:func:`split_points` reads the points from the model (:func:`~skcem._tree_models.
read_tree_ensemble`); for other models there are none and the bisection stays.
"""

from dataclasses import dataclass

import numpy as np

from ._tree_models import read_tree_ensemble

# Points asked per changed feature and round: more are thinned evenly (the next rounds ask
# again between the closest valid one and the instance).
_MAX_POINTS = 48
# Split points of an unchanged feature tried per side when it replaces a change.
_SWAP_POINTS = 16
# Steps of the margin path at most, and its step sizes (1, 2, 4, ... split points).
_MAX_STEPS = 40
_N_OFFSETS = 5
# Rounds of the scan at most: each moves every answer along one feature at least.
_MAX_ROUNDS = 12


@dataclass(frozen=True)
class SplitPoints:
    """Per numeric column, the values just above and just below each of its thresholds.

    ``above[j]`` holds the smallest values a split on column ``j`` sends right (sorted), and
    ``below[j]`` the largest it sends left; empty for a column without numeric split.
    """

    above: tuple
    below: tuple


def split_points(estimator, codec, n_features, whole):
    """The :class:`SplitPoints` of a tree model (alone or behind a Pipeline the exact
    search can follow), or None for any other model."""
    try:
        ensemble = read_tree_ensemble(estimator, codec, n_features)
    except (ValueError, TypeError, AttributeError):
        return None
    return points_of(ensemble, n_features, whole)


def points_of(ensemble, n_features, whole):
    """The :class:`SplitPoints` of a :class:`~skcem._tree_models.TreeEnsemble`: thresholds
    moved inside each side by the step the exact search uses; whole numbers for ``whole``
    columns."""
    numeric = (ensemble.left >= 0) & np.isfinite(ensemble.threshold)
    above, below = [], []
    for j in range(n_features):
        at = numeric & (ensemble.feature == j)
        t, step = ensemble.threshold[at], ensemble.margin[at]
        up, down = t + step, t - step
        if whole[j]:  # the smallest integer above t, the largest at most t
            up, down = np.floor(up) + 1, np.floor(down)
        above.append(np.unique(up))
        below.append(np.unique(down))
    return SplitPoints(tuple(above), tuple(below))


def scan_splits(search, E, owner, points):
    """Answers ``E`` (valid, of instances ``owner``) with their numeric changes moved as close
    to the unchanged values as the split points allow while they stay valid.

    Parameters
    ----------
    search : skcem._neighbors._Batch
        The batch's constraints, distance and model.
    E : ndarray of shape (n_rows, n_features)
    owner : ndarray of int, shape (n_rows,)
    points : SplitPoints

    Returns
    -------
    E : ndarray of shape (n_rows, n_features)
        A new array; no answer is farther than it was.
    """
    E = E.copy()
    movable = ~search.categorical
    open_rows = np.arange(len(E))
    for _ in range(_MAX_ROUNDS):
        if open_rows.size == 0:
            break
        trial_row, feature, trials = _trials(search, E[open_rows], owner[open_rows], points,
                                             movable)
        if trial_row.size == 0:
            break
        rows = open_rows[trial_row]
        trials = search.admissible(trials, owner[rows])
        ok = search.valid(trials, owner[rows])
        saving = np.where(ok, search.distance(E[rows], owner[rows])
                          - search.distance(trials, owner[rows]), -np.inf)
        ok &= saving > 0
        if not ok.any():
            break
        # Per answer and feature, the point saving most; then per answer, all of those
        # together where that stays valid, else the best one.
        order = np.lexsort((-saving, feature, trial_row))
        order = order[ok[order]]
        key = trial_row[order] * E.shape[1] + feature[order]
        best = order[np.r_[True, key[1:] != key[:-1]]]
        joint = E[open_rows].copy()
        joint[trial_row[best], feature[best]] = trials[best, feature[best]]
        n_moves = np.bincount(trial_row[best], minlength=open_rows.size)
        several = np.flatnonzero(n_moves > 1)
        joint_ok = np.zeros(open_rows.size, bool)
        if several.size:
            joint_rows = search.admissible(joint[several], owner[open_rows[several]])
            joint_ok[several] = search.valid(joint_rows, owner[open_rows[several]]) & (
                search.distance(joint_rows, owner[open_rows[several]])
                < search.distance(E[open_rows[several]], owner[open_rows[several]]))
            joint[several] = joint_rows
        E[open_rows[joint_ok]] = joint[joint_ok]
        by_saving = best[np.lexsort((-saving[best], trial_row[best]))]
        first = by_saving[np.r_[True, trial_row[by_saving][1:] != trial_row[by_saving][:-1]]]
        single = first[~joint_ok[trial_row[first]]]
        E[open_rows[trial_row[single]]] = trials[single]
        open_rows = open_rows[n_moves > 0]
    return E


def _trials(search, E, owner, points, movable):
    """``(row, feature, trials)``: each answer with one changed numeric feature set to one split point
    between its value and its unchanged one (or to the unchanged one), ``row`` its answer."""
    base = search._unchanged_value(E, owner)
    changed = movable & (E != base)
    frozen = search.problem.frozen(owner)
    if frozen is not None:
        changed &= ~frozen
    rows_out, features_out, values_out = [], [], []
    for j in np.flatnonzero(changed.any(axis=0)):
        rows = np.flatnonzero(changed[:, j])
        value, target = E[rows, j], base[rows, j]
        down = value > target  # moving down: the smallest values some split sends right
        grid_down, grid_up = points.above[j], points.below[j]
        # Points strictly between the unchanged value and the answer's.
        lo = np.where(down, np.searchsorted(grid_down, target, side="right"),
                      np.searchsorted(grid_up, value, side="right"))
        hi = np.where(down, np.searchsorted(grid_down, value, side="left"),
                      np.searchsorted(grid_up, target, side="left"))
        count = np.maximum(hi - lo, 0)
        taken = np.minimum(count, _MAX_POINTS)
        row_of = np.repeat(np.arange(rows.size), taken)
        rank = np.arange(taken.sum()) - np.repeat(np.cumsum(taken) - taken, taken)
        # Evenly thinned where there are more than _MAX_POINTS.
        index = lo[row_of] + (rank * count[row_of]) // np.maximum(taken[row_of], 1)
        grid_values = np.where(down[row_of], grid_down[np.minimum(index, grid_down.size - 1)]
                               if grid_down.size else 0.0,
                               grid_up[np.minimum(index, grid_up.size - 1)]
                               if grid_up.size else 0.0)
        rows_out += [rows[row_of], rows]
        features_out += [np.full(row_of.size + rows.size, j)]
        values_out += [grid_values, target]
        edge = _band_edge(search, E[rows], owner[rows], j)
        inside = (edge - target) * (value - edge) > 0
        rows_out.append(rows[inside])
        features_out.append(np.full(inside.sum(), j))
        values_out.append(edge[inside])
    if not rows_out:
        return np.zeros(0, int), np.zeros(0, int), E[:0]
    row = np.concatenate(rows_out)
    feature = np.concatenate(features_out)
    trials = E[row].copy()
    trials[np.arange(row.size), feature] = np.concatenate(values_out)
    return row, feature, trials


def _band_edge(search, E, owner, j):
    """A PN's closest admissible value of feature ``j`` on the side of ``E``: just farther
    from the no-information value than the instance (NaN for other modes)."""
    problem = search.problem
    if problem.mode.name != "PN":
        return np.full(len(E), np.nan)
    v = np.broadcast_to(problem.no_info_val, problem.x0.shape)[owner, j] \
        if np.ndim(problem.no_info_val) == 2 else np.broadcast_to(
            problem.no_info_val, (problem.x0.shape[1],))[j]
    x0 = problem.x0[owner, j]
    radius = np.abs(x0 - v)
    side = np.sign(E[:, j] - v)
    tiny = 4 * np.spacing(np.float32(np.abs(v) + radius)).astype(float)
    edge = v + side * (radius + tiny)
    if search.whole[j]:  # the nearest whole number strictly outside the band
        edge = np.where(side > 0, np.floor(v + radius) + 1, np.ceil(v - radius) - 1)
    return edge


def swap_changes(search, E, owner, points):
    """For each instance's closest answer in ``E``, the closest valid answers that undo one
    of its changes and move one unchanged numeric feature instead, to the nearest valid of
    its split points (evenly thinned over its range), one per change undone; then scanned
    (:func:`scan_splits`) and reverted. Returns ``(owner, rows)`` of those answers.
    """
    problem = search.problem
    distance = search.distance(E, owner)
    order = np.lexsort((distance, owner))
    best = order[np.r_[True, owner[order][1:] != owner[order][:-1]]]
    E, owner = E[best], owner[best]
    d = E.shape[1]
    base = search._unchanged_value(E, owner)
    changed = E != base
    frozen = problem.frozen(owner)
    free = ~search.categorical & ~changed
    if frozen is not None:
        free &= ~frozen
    lower = np.broadcast_to(problem.lower, problem.x0.shape)[owner]
    upper = np.broadcast_to(problem.upper, problem.x0.shape)[owner]
    directions = np.zeros(d) if problem.directions is None else problem.directions
    trial_row, trial_undo, trial_feature, trial_value = [], [], [], []
    for k in range(d):
        rows = np.flatnonzero(free[:, k])
        if rows.size == 0:
            continue
        x0 = base[rows, k]
        for grid, side in ((points.above[k], 1), (points.below[k], -1)):
            if grid.size == 0 or directions[k] == -side:
                continue
            if side > 0:
                lo = np.searchsorted(grid, x0, side="right")
                hi = np.searchsorted(grid, upper[rows, k], side="right")
            else:
                lo = np.searchsorted(grid, lower[rows, k], side="left")
                hi = np.searchsorted(grid, x0, side="left")
            count = np.maximum(hi - lo, 0)
            taken = np.minimum(count, _SWAP_POINTS)
            row_of = np.repeat(np.arange(rows.size), taken)
            rank = np.arange(taken.sum()) - np.repeat(np.cumsum(taken) - taken, taken)
            index = lo[row_of] + (rank * count[row_of]) // np.maximum(taken[row_of], 1)
            if side < 0:  # the nearest to the instance first, on both sides
                index = hi[row_of] - 1 - (index - lo[row_of])
            trial_row.append(rows[row_of])
            trial_feature.append(np.full(row_of.size, k))
            trial_value.append(grid[index])
    if not trial_row:
        return owner[:0], E[:0]
    row = np.concatenate(trial_row)
    feature = np.concatenate(trial_feature)
    value = np.concatenate(trial_value)
    # Each point with each change undone.
    n_changes = changed[row].sum(axis=1)
    undo = np.nonzero(changed[row])[1]
    row, feature, value = (np.repeat(a, n_changes) for a in (row, feature, value))
    trials = E[row].copy()
    at = np.arange(row.size)
    trials[at, undo] = base[row, undo]
    trials[at, feature] = value
    trials = search.admissible(trials, owner[row])
    ok = search.valid(trials, owner[row])
    if not ok.any():
        return owner[:0], E[:0]
    dist = np.where(ok, search.distance(trials, owner[row]), np.inf)
    # Per answer and change undone, the closest valid trial.
    order = np.lexsort((dist, undo, row))
    order = order[ok[order]]
    key = row[order] * d + undo[order]
    kept = order[np.r_[True, key[1:] != key[:-1]]]
    swapped, swapped_owner = trials[kept], owner[row[kept]]
    swapped = scan_splits(search, swapped, swapped_owner, points)
    return swapped_owner, search.revert(swapped, swapped_owner)


def margin_path(search, rows, points):
    """Answers built from the instances ``rows`` themselves, one split point at a time: each
    step moves the numeric feature, to the split point (1, 2, 4, ... points beyond its value,
    away from the instance's), that buys most of the model's margin per unit of distance,
    until the answer is valid; then scanned (:func:`scan_splits`) and reverted. Where a
    forest's class needs many small changes, no training row shows them.

    Returns ``(owner, answers)`` of the valid ones.
    """
    problem = search.problem
    Z = problem.x0[rows].copy()
    owner = rows.copy()
    ok, proba = search.ask(Z, owner)
    margin = problem.mode.margin(proba, problem.target[owner], problem.kappa)
    distance = np.zeros(len(rows))
    open_rows = np.flatnonzero(~ok)
    for _ in range(_MAX_STEPS):
        if open_rows.size == 0:
            break
        trial_row, trials = _steps(search, Z[open_rows], owner[open_rows], points)
        if trial_row.size == 0:
            break
        trial_owner = owner[open_rows[trial_row]]
        trial_ok, trial_proba = search.ask(trials, trial_owner)
        gain = problem.mode.margin(trial_proba, problem.target[trial_owner], problem.kappa) \
            - margin[open_rows[trial_row]]
        cost = search.distance(trials, trial_owner) - distance[open_rows[trial_row]]
        # The cheapest valid step, else the most margin bought per unit of distance.
        score = np.where(trial_ok, -cost, gain / np.maximum(cost, 1e-12))
        usable = trial_ok | (gain > 0)
        order = np.lexsort((-score, ~trial_ok, ~usable, trial_row))
        first = order[np.r_[True, trial_row[order][1:] != trial_row[order][:-1]]]
        first = first[usable[first]]
        moved = open_rows[trial_row[first]]
        Z[moved] = trials[first]
        margin[moved] += gain[first]
        distance[moved] += cost[first]
        ok[moved] = trial_ok[first]
        open_rows = moved[~trial_ok[first]]
    if not ok.any():
        return owner[:0], Z[:0]
    Z, owner = Z[ok], owner[ok]
    Z = scan_splits(search, Z, owner, points)
    return owner, search.revert(Z, owner)


def _steps(search, Z, owner, points):
    """``(row, trials)``: each row of ``Z`` with one numeric feature moved 1, 2, 4, ...
    split points farther from the instance (either side where it is unchanged), made
    admissible; trials the constraints undo are left out."""
    problem = search.problem
    base = search._unchanged_value(Z, owner)
    movable = ~search.categorical
    frozen = problem.frozen(owner)
    if frozen is not None:
        frozen = np.broadcast_to(frozen, Z.shape)
    rows_out, features_out, values_out = [], [], []
    offsets = 2 ** np.arange(_N_OFFSETS)
    for k in np.flatnonzero(movable):
        rows = np.arange(len(Z)) if frozen is None else np.flatnonzero(~frozen[:, k])
        value, x0 = Z[rows, k], base[rows, k]
        for grid, side in ((points.above[k], 1), (points.below[k], -1)):
            if grid.size == 0:
                continue
            going = (value - x0) * side >= 0  # unchanged, or already moved this way
            if side > 0:
                start = np.searchsorted(grid, value, side="right") - 1
            else:
                start = np.searchsorted(grid, value, side="left")
            index = start[:, None] + side * offsets[None]
            inside = going[:, None] & (index >= 0) & (index < grid.size)
            r, o = np.nonzero(inside)
            rows_out.append(rows[r])
            features_out.append(np.full(r.size, k))
            values_out.append(grid[index[r, o]])
        for side in (1, -1):  # a PN's band: its edges on both sides of the no-information value
            mirrored = _band_edge(search, _nudged(Z[rows], k, side), owner[rows], k)
            fine = np.isfinite(mirrored) & (Z[rows, k] == x0)
            rows_out.append(rows[fine])
            features_out.append(np.full(fine.sum(), k))
            values_out.append(mirrored[fine])
    if not rows_out:
        return np.zeros(0, int), Z[:0]
    row = np.concatenate(rows_out)
    feature = np.concatenate(features_out)
    trials = Z[row].copy()
    trials[np.arange(row.size), feature] = np.concatenate(values_out)
    trials = search.admissible(trials, owner[row])
    moved = trials[np.arange(row.size), feature] != Z[row, feature]
    return row[moved], trials[moved]


def _nudged(Z, k, side):
    """``Z`` with column ``k`` far to one side (to read a band's edge on that side)."""
    Z = Z.copy()
    Z[:, k] = side * np.inf
    return Z
