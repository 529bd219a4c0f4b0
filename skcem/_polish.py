"""The gradient-free search's last steps on tree models, on the models' split points.

A tree model's answer can change only where some split's threshold is crossed: between two
consecutive thresholds of a column every value gives the same leaves. So the moves worth
asking the model about are few: to a threshold just crossed (a small step inside it, as the
exact search places its answers), to the instance's own value, or, for a PN, to the edge of
the values its direction rule forbids. :func:`readable_trees` and :func:`points_of` read
those thresholds from the model (:func:`~skcem._tree_models.read_tree_ensemble`; the
explainer checks them against the model's classes of its fit rows); for other
piecewise-constant models (trees behind a step the reading does not follow, nearest
neighbours) :func:`data_points` stands the data's own values in for them; for smooth models
there are none and the bisection of :meth:`~skcem._neighbors._Batch.shrink` stays. On them,
:func:`polish_on_splits` takes the answers of the gradient-free search (valid, reverted):

1. **Scan** (:func:`scan_splits`). Every changed numeric feature of every answer is set, in
   one call for the batch, to each split point between its value and the instance's (and to
   the instance's); each answer takes, of the valid ones, the move saving most, or all
   features' best moves together where that stays valid; while some answer gets closer.
   Unlike a bisection it finds a valid point beyond an invalid stretch (a tree model's class
   may come and go along a line) and lands on the threshold itself.
2. **Margin path** (:func:`margin_path`). From each instance itself, one step at a time, the
   numeric feature moved (1, 2, 4, ... split points) that buys most of the model's margin per
   unit of distance, until valid; then scanned. A forest's class often needs many small
   changes that no training row shows.
3. **Exchanges** (:func:`exchange`). On each instance's two closest answers, pairs of
   moves: a changed feature 1, 2, 4 or 8 points towards the instance (or back to it) while
   another, among the moves that buy most margin per distance, moves away, or across the
   instance's value to its other side; the pair saving most is kept while one saves any;
   then scanned. A change often shrinks only with another feature's help, which neither a
   scan nor a revert gives, and a forest's class may come on both sides of a value, at
   different prices.
4. **Repairs** (:func:`repair`). On each instance's two closest answers, each of their two
   largest changes undone (all the way, or half of it) and the class regained by the margin
   path's steps on the other features, within the answer's distance; then scanned. The
   first repairs climb with the margin paths of step 2 (the same model calls), from the
   closest answers of step 1; the last from the closest after step 3. Where the optimum
   moves several features a little, a search from training rows often moves one or two a
   long way, and neither the scans nor the pair exchanges trade one large change for
   several small ones. Trying, in each step of a repair, only the features that scored best
   in its last step, and giving up those that would end farther, keeps them cheap. The
   closest answer alone often lies where no single or paired move leads closer, and the
   next one elsewhere.

5. **Categories** (:func:`polish_categories`, on tables with categorical columns). The steps
   above move numeric features only, and the categories of an answer are those of the
   training rows it started from: on UCI Adult the closest answer often changes other
   categories (two or three of them) and moves a numeric feature less far. The last repair
   also climbs from the same starts with steps that set a categorical feature to another
   category (:func:`_category_steps`), and from starts where each changed category, or all
   of them, is undone; then the sweep of single moves (categories too) and their separable
   combinations, the exchanges (a category undone or changed with a numeric move) and a
   repair, all with categorical steps, from the closest answers. Each path is its own: the
   numeric paths end where they would without categories, so no answer gets farther.

With an L2 part in the distance (a PN's elastic net), the closest answers move many features a
little, and the steps of :mod:`skcem._elastic` take over from the margin paths from the
instances (which still run for the instances they leave without an answer): single moves swept
from each instance and combined as if the margin were a sum over features, lines along the
margin's slopes (their answers scanned with the margin paths of the first repairs), and,
climbing with the last repairs, the closest answer shrunk towards its instance or blended with
the next closest ones. Not for a single tree, whose leaf boxes give its closest answers
(:mod:`skcem._leaf_starts`).

Every step asks the model and keeps validity; no answer gets farther. The answers of all
steps go to :meth:`~skcem._neighbors._Batch.result`, which keeps each instance's closest.
With several answers asked per instance (``n_counterfactuals``), many more answers are
polished and each round costs a model call: the scans are coarser, the margin paths are
traced only for instances with fewer distinct answers than asked, and there are no
exchanges nor repairs.
"""

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ._elastic import (MAX_TRIAL_NUMBERS, best_answers, shrunk_and_blended,
                       spread_answers)
from ._tree_models import read_tree_ensemble

# A column's data values standing in for thresholds at most (data_points), evenly among
# them: on 20,000 rows of distinct values the margin paths' steps of 1 to 16 of them moved
# next to nothing, for 23 times the model rows (nearest neighbours: 15.5 s against 2.6 s
# without them; 7.7 s with 128, answers 6% closer).
_MAX_DATA_POINTS = 128
# Points asked per changed feature and round: more are thinned evenly (the next rounds ask
# again between the closest valid one and the instance).
_MAX_POINTS = 48
# Steps of the margin path at most, and its step sizes (1, 2, 4, ... split points).
_MAX_STEPS = 40
_N_OFFSETS = 5
# Rounds of pair exchanges at most, and the moves of each pair: 1, 2, 4, 8 split points
# towards the instance, 1, 2, 4, ..., 64 away.
_MAX_EXCHANGES = 8
_N_SHRINKS = 4
_N_GROWTH = 7
# Moves away tried in pairs per answer and round: those that buy most margin per distance.
_GROWTH_KEPT = 6
# Rounds of the scan at most: each moves every answer along one feature at least.
_MAX_ROUNDS = 12
# Points and rounds of the scan with several answers per instance: many more answers are
# scanned, and besides the closest they need not land as close; each round is a model call
# (or two) of all of them, which costs a forest most (its trees' overhead) whatever the rows.
_MAX_POINTS_SEVERAL = 16
_MAX_ROUNDS_SEVERAL = 4
# The exchanges and repairs on numeric moves start from each instance's closest answers,
# this many: the closest one alone often lies in a basin that single and paired moves cannot
# leave (breast cancer's forest: the median excess over the optimum 6% with one, 2.7% with
# two). Those that change categories start from the closest alone: on UCI Adult a second
# start bought 0.4% of distance for 15% more model rows.
_N_POLISHED = 2
# Repairs: the largest changes of an answer undone (each alone), how far back (all the way,
# or half of it to a split point), and the steps of the last repair's margin paths (the
# first climbs with the margin paths from the instances, _MAX_STEPS).
_N_UNDONE = 2
_UNDONE_FRACTIONS = (1.0, 0.5)
_MAX_REPAIR_STEPS = 12
# A repair's step tries the features that scored best in its last step, all of them every
# _REFOCUS steps: most features buy no margin near a valid answer, and each is a model row.
_N_FOCUS = 6
_REFOCUS = 4
# A repair gives up where the margin it lacks, bought at its last step's rate times this,
# would take it past its answer's distance (the rates fall along a path: 0.5 allows for
# that; 1 gave up on some that ended closer, 0 ran many to their last step).
_PRUNE = 0.5


@dataclass(frozen=True)
class SplitPoints:
    """Per numeric column, the values just above and just below each of its thresholds.

    ``above[j]`` holds the smallest values a split on column ``j`` sends right (sorted), and
    ``below[j]`` the largest it sends left; empty for a column without numeric split.
    """

    above: tuple
    below: tuple

    @cached_property
    def packed_above(self):
        return _packed(self.above)

    @cached_property
    def packed_below(self):
        return _packed(self.below)


def _packed(grids):
    """``(keys, values, first, count)``: the grids of all columns in one array, sorted by
    column then value, ``keys`` as ``column + 1j * value`` (complex numbers sort by their real
    part first), and where each column's grid starts and how long it is."""
    count = np.array([len(g) for g in grids], dtype=int)
    first = np.concatenate([[0], np.cumsum(count)[:-1]])
    values = np.concatenate(grids) if len(grids) else np.zeros(0)
    keys = np.repeat(np.arange(len(grids)), count) + 1j * values
    return keys, values, first, count


def readable_trees(estimator, codec, n_features):
    """The :class:`~skcem._tree_models.TreeEnsemble` of a tree model (alone or behind a
    Pipeline the exact search can follow), or None for any other model."""
    try:
        return read_tree_ensemble(estimator, codec, n_features)
    except (ValueError, TypeError, AttributeError):
        return None


def points_of(ensemble, n_features, whole, decimals=None):
    """The :class:`SplitPoints` of a :class:`~skcem._tree_models.TreeEnsemble`: thresholds
    moved inside each side by the step the exact search uses; whole numbers for ``whole``
    columns and for float columns of whole numbers (``decimals`` 0; see
    :mod:`skcem._decimals`).

    The answers are rounded to the columns' decimals in the end: a forest's thresholds on
    whole numbers lie halfway between them, and a step just past one, which the rounding
    then doubled, made the search weigh a move at half its cost (a forest on digits: an
    answer 0.89 in MAD-L1 before rounding, 6.46 after). With more decimals the rounding
    moves an answer by a small part of a step, and points of the decimals near each
    threshold, two per threshold where the float32 the trees compare leaves it open,
    made breast cancer's answers farther (median excess 2.2% to 7.1%)."""
    numeric = (ensemble.left >= 0) & np.isfinite(ensemble.threshold)
    return _points(ensemble.feature[numeric], ensemble.threshold[numeric],
                   ensemble.margin[numeric], n_features, whole, decimals)


def numeric_split_points(splits, n_features, whole, decimals=None):
    """The :class:`SplitPoints` of the ``(feature, threshold)`` numeric splits of a model
    whose trees :func:`readable_trees` cannot read (its own categorical splits, see
    :func:`~skcem._tree_models.numeric_splits`), each moved inside its sides by the step
    :func:`points_of` takes (four float32 spacings)."""
    feature, threshold = splits
    # (LightGBM's 1e300 for missing values is no threshold a row meets)
    kept = np.abs(threshold) < np.finfo(np.float32).max
    feature, threshold = feature[kept], threshold[kept]
    margin = 4 * np.spacing(np.abs(threshold).astype(np.float32)).astype(float) + \
        1e-12 * np.abs(threshold)
    return _points(feature, threshold, margin, n_features, whole, decimals)


def _points(feature, threshold, margin, n_features, whole, decimals):
    above, below = [], []
    for j in range(n_features):
        at = feature == j
        t, step = threshold[at], margin[at]
        up, down = t + step, t - step
        if whole[j] or (decimals is not None and decimals[j] == 0):
            # the smallest integer above t, the largest at most t; and past the margin,
            # where it holds one (XGBoost's ``x < 55`` is ``x <= 54.9999962``: 55 is the
            # smallest above, within the margin that keeps the exact search's answers off
            # thresholds; the model, asked of every point, tells)
            up = np.concatenate([np.floor(t) + 1, np.floor(up) + 1])
            down = np.concatenate([np.floor(t), np.floor(down)])
        above.append(np.unique(up))
        below.append(np.unique(down))
    return SplitPoints(tuple(above), tuple(below))


def data_points(X, numeric):
    """Split points for a piecewise-constant model whose trees cannot be read (behind a step
    the exact search does not follow; nearest neighbours): each numeric column's distinct
    values in the data given to ``fit`` (``_MAX_DATA_POINTS`` at most, evenly among them). A
    tree trained on such data splits between two of them, so moving to one crosses every
    split since the last; the model, asked of every point, tells. (Points halfway between
    them as well, two per gap, made breast cancer's forest answers farther: the margin
    paths' steps are counted in points.)"""
    X = np.asarray(X, dtype=float)
    grids = []
    for j in range(X.shape[1]):
        values = np.unique(X[:, j][np.isfinite(X[:, j])]) if numeric[j] else np.zeros(0)
        if values.size > _MAX_DATA_POINTS:  # evenly among them, the ends kept
            values = values[np.linspace(0, values.size - 1, _MAX_DATA_POINTS).astype(int)]
        grids.append(values)
    return SplitPoints(tuple(grids), tuple(grids))


def scan_splits(search, E, owner, points, max_points=_MAX_POINTS, max_rounds=_MAX_ROUNDS):
    """Answers ``E`` (valid, of instances ``owner``) with their numeric changes moved as close
    to the unchanged values as the split points allow while they stay valid.

    Parameters
    ----------
    search : skcem._neighbors._Batch
        The batch's constraints, distance and model.
    E : ndarray of shape (n_rows, n_features)
    owner : ndarray of int, shape (n_rows,)
    points : SplitPoints
    max_points : int, default=_MAX_POINTS
        Points asked per changed feature and round at most (more are thinned evenly).
    max_rounds : int, default=_MAX_ROUNDS
        Rounds at most.

    Returns
    -------
    E : ndarray of shape (n_rows, n_features)
        A new array; no answer is farther than it was.
    """
    E = E.copy()
    movable = ~search.categorical
    open_rows = np.arange(len(E))
    for _ in range(max_rounds):
        if open_rows.size == 0:
            break
        trial_row, feature, trials = _trials(search, E[open_rows], owner[open_rows], points,
                                             movable, max_points)
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


def _trials(search, E, owner, points, movable, max_points):
    """``(row, feature, trials)``: each answer with one changed numeric feature set to one
    split point between its value and its unchanged one (or to the unchanged one, or a PN's
    band edge), ``row`` its answer."""
    base = search._unchanged_value(E, owner)
    changed = movable & (E != base)
    frozen = search.problem.frozen(owner)
    if frozen is not None:
        changed &= ~frozen
    band = _band_edges(search, owner)
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
        taken = np.minimum(count, max_points)
        row_of = np.repeat(np.arange(rows.size), taken)
        rank = np.arange(taken.sum()) - np.repeat(np.cumsum(taken) - taken, taken)
        # Evenly thinned where there are more than max_points.
        index = lo[row_of] + (rank * count[row_of]) // np.maximum(taken[row_of], 1)
        grid_values = np.where(down[row_of], _at(grid_down, index), _at(grid_up, index))
        rows_out += [rows[row_of], rows]
        features_out += [np.full(row_of.size + rows.size, j)]
        values_out += [grid_values, target]
        if band is not None:
            edge = np.where(value > band[0][rows, j], band[1][rows, j], band[2][rows, j])
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


def _band_edges(search, owner):
    """``(v, above, below)``, each of shape (len(owner), n_features): a PN's no-information
    values and the closest admissible values on either side of them, just farther from them
    than the instance (None for other modes)."""
    problem = search.problem
    if problem.mode.name != "PN":
        return None
    v = np.broadcast_to(problem.no_info_val, problem.x0.shape)[owner] \
        if np.ndim(problem.no_info_val) == 2 else \
        np.broadcast_to(problem.no_info_val, (len(owner), problem.x0.shape[1]))
    radius = np.abs(problem.x0[owner] - v)
    tiny = 4 * np.spacing((np.abs(v) + radius).astype(np.float32)).astype(float)
    # Whole numbers: the nearest strictly outside the band.
    above = np.where(search.whole, np.floor(v + radius) + 1, v + radius + tiny)
    below = np.where(search.whole, np.ceil(v - radius) - 1, v - radius - tiny)
    return v, above, below


def margin_path(search, rows, points, repairs=None, categories=False):
    """Answers built from the instances ``rows`` themselves, one split point at a time: each
    step moves the numeric feature, to the split point (1, 2, 4, ... points beyond its value,
    away from the instance's), that buys most of the model's margin per unit of distance;
    a valid step ends the path, the cheapest valid one first. Returns ``(owner, answers)``
    of the paths that end valid (within ``_MAX_STEPS`` steps).

    With ``repairs`` (the starts of :func:`_undone`), their paths climb in the same model
    calls; their steps try the ``_N_FOCUS`` features that scored best in the last one
    (see :func:`_climb`). With ``categories``, the steps also change categories.
    """
    if repairs is None:
        return _climb(search, search.problem.x0[rows].copy(), rows.copy(), points,
                      categories=categories)
    Z, owner, locked, budget = repairs
    d = search.problem.x0.shape[1]
    return _climb(search, np.concatenate([search.problem.x0[rows], Z]),
                  np.concatenate([rows, owner]), points,
                  locked=np.concatenate([np.zeros((rows.size, d), bool), locked]),
                  budget=np.concatenate([np.full(rows.size, np.inf), budget]),
                  n_focus=_N_FOCUS, categories=categories)


def _climb(search, Z, owner, points, locked=None, budget=None, max_steps=_MAX_STEPS,
           n_offsets=None, n_focus=None, categories=False):
    """The margin paths of :func:`margin_path` from the rows ``Z`` (of instances ``owner``):
    the features ``locked`` (a mask of ``Z``'s shape) never move, and a path that reaches
    its ``budget`` of distance before it is valid is dropped. With ``n_focus``, a path with a
    finite budget (any path without ``budget``) tries in its next step only the ``n_focus``
    features whose moves scored best in its last step, and all of them again every
    ``_REFOCUS`` steps and when none of those buys margin. A path is also given up where the
    margin it lacks, bought at its last step's rate, would take it past its budget
    (``_PRUNE``). With ``categories`` (for all rows, or a mask of the rows), a step may also
    set a categorical feature to another category. Returns ``(owner, answers)`` of the
    paths that end valid."""
    problem = search.problem
    if len(Z) == 0:
        return owner, Z
    d = Z.shape[1]
    ok, proba = search.ask(Z, owner)
    margin = problem.mode.margin(proba, problem.target[owner], problem.kappa)
    distance = search.distance(Z, owner)
    focus = None if n_focus is None else np.ones(Z.shape, bool)
    # Rows whose trials (one per feature, side and offset, each a whole row) fit in
    # MAX_TRIAL_NUMBERS numbers take a step together: on a thousand features a row's trials
    # hold millions of numbers.
    chunk = max(1, MAX_TRIAL_NUMBERS // (2 * (n_offsets or _N_OFFSETS) * d * d))

    def step_rows(open_rows):
        """One step of the paths ``open_rows`` (Z, margin, distance, ok and focus updated in
        place); returns the rows whose paths go on."""
        allowed = None
        if locked is not None or focus is not None:
            allowed = np.ones((open_rows.size, d), bool)
            if locked is not None:
                allowed &= ~locked[open_rows]
            if focus is not None:
                allowed &= focus[open_rows]
        trial_row, feature, trials = _steps(search, Z[open_rows], owner[open_rows], points,
                                            n_offsets, allowed,
                                            categories if np.ndim(categories) == 0
                                            else categories[open_rows])
        keep = np.ones(trial_row.size, bool)
        cost = search.step_cost(Z[open_rows[trial_row]], owner[open_rows[trial_row]], feature,
                                trials[np.arange(trial_row.size), feature])
        if budget is not None:
            keep &= distance[open_rows[trial_row]] + cost < budget[open_rows[trial_row]]
        trial_row, trials, feature, cost = trial_row[keep], trials[keep], feature[keep], \
            cost[keep]
        if trial_row.size == 0:
            return open_rows[:0]
        trial_owner = owner[open_rows[trial_row]]
        trial_ok, trial_proba = search.ask(trials, trial_owner)
        gain = problem.mode.margin(trial_proba, problem.target[trial_owner], problem.kappa) \
            - margin[open_rows[trial_row]]
        # The cheapest valid step, else the most margin bought per unit of distance.
        score = np.where(trial_ok, -cost, gain / np.maximum(cost, 1e-12))
        usable = trial_ok | (gain > 0)
        order = np.lexsort((-score, ~trial_ok, ~usable, trial_row))
        first = order[np.r_[True, trial_row[order][1:] != trial_row[order][:-1]]]
        stuck = np.ones(open_rows.size, bool)
        stuck[trial_row[first[usable[first]]]] = False
        if focus is not None:
            # Paths that tried only some features and found nothing try them all next.
            partial = ~focus[open_rows].all(axis=1)
            retry = open_rows[stuck & partial]
            focus[open_rows] = _best_features(trial_row[usable], feature[usable],
                                              score[usable], open_rows.size, d, n_focus)
            focus[retry] = True
            if budget is not None:
                focus[~np.isfinite(budget)] = True
        else:
            retry = open_rows[:0]
        first = first[usable[first]]
        moved = open_rows[trial_row[first]]
        Z[moved] = trials[first]
        margin[moved] += gain[first]
        distance[moved] += cost[first]
        ok[moved] = trial_ok[first]
        going = ~trial_ok[first]
        if budget is not None:
            # A path whose margin left, bought at its last step's rate, would take it past
            # its budget is given up (the rates fall along a path).
            rate = score[first]
            going &= distance[moved] - _PRUNE * margin[moved] / np.maximum(rate, 1e-300) \
                < budget[moved]
        return np.concatenate([moved[going], retry])

    open_rows = np.flatnonzero(~ok)
    for step in range(max_steps):
        if open_rows.size == 0:
            break
        if focus is not None and step % _REFOCUS == 0:
            focus[:] = True
        open_rows = np.sort(np.concatenate([
            step_rows(open_rows[start:start + chunk])
            for start in range(0, open_rows.size, chunk)]))
    if not ok.any():
        return owner[:0], Z[:0]
    return owner[ok], Z[ok]


def _best_features(row, feature, score, n_rows, n_features, n_kept):
    """A mask (n_rows, n_features) of each row's ``n_kept`` features of best ``score``."""
    best = np.full(n_rows * n_features, -np.inf)
    np.maximum.at(best, row * n_features + feature, score)
    best = best.reshape(n_rows, n_features)
    if n_kept >= n_features:
        return np.isfinite(best)
    kth = -np.partition(-best, n_kept - 1, axis=1)[:, n_kept - 1]
    return (best >= kth[:, None]) & np.isfinite(best)


def repair(search, E, owner, points, more=None, categories=False):
    """Answers ``E`` (valid, among their instances' closest) with one of their largest
    changes undone and the class regained by other moves (:func:`_undone`, then
    :func:`_climb`). Returns ``(owner, answers)`` of those that end valid, scanned and reverted.

    ``more``: other starts ``(Z, owner, budget)`` that climb in the same model calls, no
    feature locked. With ``categories``, the same starts climb twice in the same calls:
    on numeric moves alone, as without it (each path is its own: those end where they
    would), and also changing categories, with more starts where each changed category,
    or all of them, is undone.
    """
    more = [] if more is None else [(more[0], more[1], np.zeros(more[0].shape, bool),
                                      more[2])]
    parts = [_undone(search, E, owner, points)] + more
    n_numeric = sum(len(part[0]) for part in parts)
    if categories:
        parts += [_undone(search, E, owner, points, categories=True)] + more
    Z, Z_owner, locked, budget = (np.concatenate(part) for part in zip(*parts))
    with_categories = np.arange(len(Z)) >= n_numeric
    new_owner, new = _climb(search, Z, Z_owner, points, locked=locked, budget=budget,
                            max_steps=_MAX_REPAIR_STEPS, n_focus=_N_FOCUS,
                            categories=with_categories)
    return new_owner, search.revert(scan_splits(search, new, new_owner, points), new_owner)


def _undone(search, E, owner, points, categories=False):
    """``(Z, owner, locked, budget)``: the starts of the repairs of answers ``E`` (valid):
    each of the ``_N_UNDONE`` largest numeric changes of each answer (by distance) reverted,
    or moved part of the way back to a split point (``_UNDONE_FRACTIONS``); that feature
    ``locked``, and the answer's distance the ``budget`` of the margin path from there.

    The closest answers often move one or two features a long way where the optimum moves
    several a little: the scan and the exchanges shrink one change at a time, against
    one other at most, and the margin path from the instance takes the same large moves.
    """
    base = search._unchanged_value(E, owner)
    weighted = np.where(~search.categorical & (E != base),
                        search.l1 * np.abs(E - base) + search.l2 * (E - base) ** 2, 0.0)
    frozen = search.problem.frozen(owner)
    if frozen is not None:
        weighted = np.where(frozen, 0.0, weighted)
    largest = np.argsort(-weighted, axis=1, kind="stable")[:, :_N_UNDONE]
    rows, slots = np.nonzero(np.take_along_axis(weighted, largest, axis=1) > 0)
    features = largest[rows, slots]
    starts = []
    for fraction in _UNDONE_FRACTIONS:
        Z = E[rows].copy()
        value = E[rows, features] + fraction * (base[rows, features] - E[rows, features])
        if fraction < 1:
            value = _nearest_point(points, features, value,
                                   E[rows, features] > base[rows, features])
        Z[np.arange(rows.size), features] = value
        starts.append(search.admissible(Z, owner[rows]))
    rows = np.tile(rows, len(_UNDONE_FRACTIONS))
    features = np.tile(features, len(_UNDONE_FRACTIONS))
    locked = np.zeros((rows.size, E.shape[1]), bool)
    locked[np.arange(rows.size), features] = True
    if categories:
        # Each changed category undone alone, and all of them together where there are
        # several (one of a pair undone alone may make a pair the data never shows).
        changed = search.categorical & (E != base) & np.isfinite(E)
        if frozen is not None:
            changed &= ~frozen
        r, j = np.nonzero(changed)
        alone = np.zeros((r.size, E.shape[1]), bool)
        alone[np.arange(r.size), j] = True
        several = np.flatnonzero(changed.sum(axis=1) >= 2)
        undone = np.concatenate([alone, changed[several]])
        category_rows = np.concatenate([r, several])
        starts.append(np.where(undone, base[category_rows], E[category_rows]))
        rows = np.concatenate([rows, category_rows])
        locked = np.concatenate([locked, undone])
    return np.concatenate(starts), owner[rows], locked, search.distance(E[rows], owner[rows])


def _nearest_point(points, features, value, down):
    """Per row, the split point of column ``features`` nearest to ``value``, on the side that
    a move ``down`` (or up) lands on: the smallest value some split sends right when moving
    down, the largest it sends left when moving up; ``value`` where the column has none."""
    out = value.copy()
    for j in np.unique(features):
        at = np.flatnonzero(features == j)
        for side, grid in ((True, points.above[j]), (False, points.below[j])):
            rows = at[down[at] == side]
            if rows.size == 0 or grid.size == 0:
                continue
            index = np.clip(np.searchsorted(grid, value[rows]), 0, grid.size - 1)
            lower = grid[np.maximum(index - 1, 0)]
            upper = grid[index]
            out[rows] = np.where(np.abs(lower - value[rows]) < np.abs(upper - value[rows]),
                                 lower, upper)
    return out


def _steps(search, Z, owner, points, n_offsets=None, allowed=None, categories=False,
           flips=False):
    """``(row, feature, trials)``: each row of ``Z`` with one numeric feature moved 1, 2, 4, ...
    split points farther from the instance (either side where it is unchanged), made
    admissible; trials the constraints undo are left out. With ``flips``, a changed feature
    also moves 1, 2, 4, ... split points to the other side of the instance's value. With
    ``categories`` (for all rows, or a mask of the rows of ``Z``), also each categorical
    feature set to each other category (:func:`_category_steps`)."""
    problem = search.problem
    base = search._unchanged_value(Z, owner)
    movable = ~search.categorical
    frozen = problem.frozen(owner)
    if frozen is not None:
        movable = movable & ~np.broadcast_to(frozen, Z.shape)
    movable = np.broadcast_to(movable, Z.shape)
    if allowed is not None:
        movable = movable & allowed
    offsets = 2 ** np.arange(_N_OFFSETS if n_offsets is None else n_offsets)
    feature = np.broadcast_to(np.arange(Z.shape[1]), Z.shape)
    rows_out, features_out, values_out = [], [], []
    for packed, side in ((points.packed_above, 1), (points.packed_below, -1)):
        keys, grid, first, count = packed
        going = movable & ((Z - base) * side >= 0)  # unchanged, or already moved this way
        # A flip steps from the instance's value: a class that one side of it gives only with
        # a second change may come with this change alone on the other side.
        start_at = np.where(going, Z, base)
        # All features' grids in one sorted array of (feature, value) pairs.
        query = feature + 1j * np.where(np.isfinite(start_at), start_at, 0.0)
        start = np.searchsorted(keys, query, side="right" if side > 0 else "left") - first
        if side > 0:
            start -= 1
        if flips:
            going = movable & np.isfinite(Z)
        index = start[..., None] + side * offsets
        inside = going[..., None] & (index >= 0) & (index < count[feature][..., None])
        r, k, o = np.nonzero(inside)
        rows_out.append(r)
        features_out.append(k)
        values_out.append(grid[first[k] + index[r, k, o]])
    band = _band_edges(search, owner)
    if band is not None:  # a PN's band: its edges on both sides of the no-information value
        r, k = np.nonzero(movable & (Z == base))
        for edge in band[1:]:
            rows_out.append(r)
            features_out.append(k)
            values_out.append(edge[r, k])
    if np.any(categories):
        if np.ndim(categories):  # some rows only
            only = np.broadcast_to(np.asarray(categories)[:, None], Z.shape)
            allowed = only if allowed is None else allowed & only
        r, k, values = _category_steps(search, Z, owner, allowed)
        rows_out.append(r)
        features_out.append(k)
        values_out.append(values)
    if not rows_out:
        return np.zeros(0, int), np.zeros(0, int), Z[:0]
    row = np.concatenate(rows_out)
    feature = np.concatenate(features_out)
    # Each trial changes one cell of an admissible row: that cell alone is made admissible.
    value = search.admissible_values(np.concatenate(values_out), owner[row], feature)
    moved = value != Z[row, feature]
    row, feature = row[moved], feature[moved]
    trials = Z[row].copy()
    trials[np.arange(row.size), feature] = value[moved]
    if np.any(categories):
        # A category that makes a pair the data (almost) never shows can never be valid:
        # no step towards it.
        pairs = search.problem.category_pairs
        moved_category = np.flatnonzero(search.categorical[feature])
        if pairs is not None and moved_category.size:
            problem = search.problem
            rare = pairs.created(
                problem.with_missing(trials[moved_category], owner[row[moved_category]]),
                problem.with_missing(problem.x0[owner[row[moved_category]]],
                                     owner[row[moved_category]]))
            keep = np.ones(row.size, bool)
            keep[moved_category[rare]] = False
            row, feature, trials = row[keep], feature[keep], trials[keep]
    return row, feature, trials


def _category_steps(search, Z, owner, allowed=None):
    """``(row, feature, value)``: each categorical cell of ``Z`` that may move (not frozen,
    not missing, ``allowed``) set to each other category of its column (to be made
    admissible: a category the mode forbids becomes the instance's own)."""
    problem = search.problem
    movable = np.broadcast_to(search.categorical, Z.shape) & np.isfinite(Z)
    frozen = problem.frozen(owner)
    if frozen is not None:
        movable = movable & ~np.broadcast_to(frozen, Z.shape)
    if allowed is not None:
        movable = movable & allowed
    lower, upper = (np.broadcast_to(bound, problem.x0.shape)[owner]
                    for bound in (problem.lower, problem.upper))
    rows_out, features_out, values_out = [np.zeros(0, int)], [np.zeros(0, int)], [np.zeros(0)]
    for j in np.flatnonzero(movable.any(axis=0)):
        rows = np.flatnonzero(movable[:, j])
        n_categories = int(np.max(upper[rows, j])) + 1
        row = np.repeat(rows, n_categories)
        value = np.tile(np.arange(n_categories, dtype=float), rows.size)
        # Each row's own categories only: what another row's range holds is none of its.
        other = (value != Z[row, j]) & (value >= lower[row, j]) & (value <= upper[row, j])
        rows_out.append(row[other])
        features_out.append(np.full(other.sum(), j))
        values_out.append(value[other])
    return (np.concatenate(rows_out), np.concatenate(features_out),
            np.concatenate(values_out))


def exchange(search, E, owner, points, categories=False):
    """Answers ``E`` (valid) improved by pairs of moves: one changed numeric feature moved 1,
    2, 4 or 8 split points towards its unchanged value (or back to it) while another moves 1
    to 64 points away from its own, or from its unchanged value to the other side (the
    ``_GROWTH_KEPT`` such moves that buy most margin per unit of distance); the valid pair
    saving most is kept, while one saves any. Then scanned (:func:`scan_splits`) and
    reverted.
    """
    E = E.copy()
    d = E.shape[1]
    # Rows whose growth trials fit in MAX_TRIAL_NUMBERS numbers take a round together.
    chunk = max(1, MAX_TRIAL_NUMBERS // (2 * _N_GROWTH * d * d))

    def exchange_rows(open_rows):
        """One round of exchanges of the answers ``open_rows`` (``E`` updated in place);
        returns those improved."""
        sub, sub_owner = E[open_rows], owner[open_rows]
        shrink_row, shrink_feature, shrink_value = _towards(search, sub, sub_owner, points,
                                                            categories)
        grow_row, grow_feature, grow_trials = _steps(search, sub, sub_owner, points, _N_GROWTH,
                                                     categories=categories, flips=True)
        grow_row, grow_feature, grow_trials = _most_margin(search, sub, sub_owner, grow_row,
                                                           grow_feature, grow_trials)
        grow_value = grow_trials[np.arange(grow_row.size), grow_feature]
        # Every shrink of a row with every growth of the same row on another feature.
        shrink_order = np.argsort(shrink_row, kind="stable")
        grow_order = np.argsort(grow_row, kind="stable")
        n_shrink = np.bincount(shrink_row, minlength=len(sub))
        n_grow = np.bincount(grow_row, minlength=len(sub))
        n_pairs = n_shrink * n_grow
        if n_pairs.sum() == 0:
            return open_rows[:0]
        pair_row = np.repeat(np.arange(len(sub)), n_pairs)
        rank = np.arange(n_pairs.sum()) - np.repeat(np.cumsum(n_pairs) - n_pairs, n_pairs)
        first_shrink = np.cumsum(n_shrink) - n_shrink
        first_grow = np.cumsum(n_grow) - n_grow
        a = shrink_order[first_shrink[pair_row] + rank // n_grow[pair_row]]
        b = grow_order[first_grow[pair_row] + rank % n_grow[pair_row]]
        keep = shrink_feature[a] != grow_feature[b]
        pair_row, a, b = pair_row[keep], a[keep], b[keep]
        trials = sub[pair_row].copy()
        at = np.arange(pair_row.size)
        trials[at, shrink_feature[a]] = shrink_value[a]
        trials[at, grow_feature[b]] = grow_value[b]
        trials = search.admissible(trials, sub_owner[pair_row])
        saving = search.distance(sub[pair_row], sub_owner[pair_row]) \
            - search.distance(trials, sub_owner[pair_row])
        cheaper = saving > 1e-12 * np.maximum(1.0, np.abs(saving))
        pair_row, trials, saving = pair_row[cheaper], trials[cheaper], saving[cheaper]
        ok = search.valid(trials, sub_owner[pair_row])
        if not ok.any():
            return open_rows[:0]
        pair_row, trials, saving = pair_row[ok], trials[ok], saving[ok]
        order = np.lexsort((-saving, pair_row))
        first = order[np.r_[True, pair_row[order][1:] != pair_row[order][:-1]]]
        E[open_rows[pair_row[first]]] = trials[first]
        return open_rows[pair_row[first]]

    open_rows = np.arange(len(E))
    for _ in range(_MAX_EXCHANGES):
        if open_rows.size == 0:
            break
        open_rows = np.concatenate([exchange_rows(open_rows[start:start + chunk])
                                    for start in range(0, open_rows.size, chunk)])
    E = scan_splits(search, E, owner, points)
    return search.revert(E, owner)


def _most_margin(search, E, owner, row, moved, trials):
    """The ``_GROWTH_KEPT`` trials of each row of ``E`` that buy most of the model's margin
    per unit of distance (those that buy some); as many again of those that change a
    category (a category changed to another costs nothing more: those would crowd out
    every numeric move)."""
    problem = search.problem
    if row.size == 0:
        return row, moved, trials
    _, proba = search.ask(np.concatenate([E, trials]), np.concatenate([owner, owner[row]]))
    margin = problem.mode.margin(proba, problem.target[np.concatenate([owner, owner[row]])],
                                 problem.kappa)
    gain = margin[len(E):] - margin[row]
    cost = search.step_cost(E[row], owner[row], moved, trials[np.arange(row.size), moved])
    score = np.where(gain > 0, gain / np.maximum(cost, 1e-12), -np.inf)
    group = 2 * row + search.categorical[moved]
    order = np.lexsort((-score, group))
    rank = np.arange(order.size) - np.searchsorted(group[order], group[order])
    kept = order[(rank < _GROWTH_KEPT) & np.isfinite(score[order])]
    return row[kept], moved[kept], trials[kept]


def _towards(search, E, owner, points, categories=False):
    """``(row, feature, value)``: each changed numeric feature moved 1, 2, 4 or 8 split
    points towards its unchanged value, or back to it; with ``categories``, each changed
    category back to the instance's."""
    base = search._unchanged_value(E, owner)
    changed = ~search.categorical & (E != base)
    frozen = search.problem.frozen(owner)
    if frozen is not None:
        changed &= ~frozen
    offsets = 2 ** np.arange(_N_SHRINKS)
    rows_out, features_out, values_out = [], [], []
    for j in np.flatnonzero(changed.any(axis=0)):
        rows = np.flatnonzero(changed[:, j])
        value, target = E[rows, j], base[rows, j]
        down = value > target
        grid_down, grid_up = points.above[j], points.below[j]
        lo = np.where(down, np.searchsorted(grid_down, target, side="right"),
                      np.searchsorted(grid_up, value, side="right"))
        hi = np.where(down, np.searchsorted(grid_down, value, side="left"),
                      np.searchsorted(grid_up, target, side="left"))
        # Down: the points below the value, nearest first (hi - o); up: lo - 1 + o.
        index = np.where(down[:, None], hi[:, None] - offsets[None], lo[:, None] - 1 + offsets)
        inside = (index >= lo[:, None]) & (index < hi[:, None])
        r, o = np.nonzero(inside)
        grid_values = np.where(down[r], _at(grid_down, index[r, o]), _at(grid_up, index[r, o]))
        rows_out += [rows[r], rows]
        features_out.append(np.full(r.size + rows.size, j))
        values_out += [grid_values, target]
    if categories:
        r, j = np.nonzero(search.categorical & (E != base) & np.isfinite(E)
                          & (True if frozen is None else ~frozen))
        rows_out += [r]
        features_out += [j]
        values_out += [base[r, j]]
    if not rows_out:
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0)
    return (np.concatenate(rows_out), np.concatenate(features_out),
            np.concatenate(values_out))


def polish_on_splits(search, E, owner, rows, points, several=False, joint=True,
                     spread=True):
    """The gradient-free search's answers ``E`` (valid, reverted; of instances ``owner``)
    scanned, with the margin paths of the instances ``rows``, the exchanges of each
    instance's two closest answers and, with ``joint``, their repairs before and after the
    exchanges
    (see the module's docstring; ``joint=False``: the polish before the repairs, for
    comparisons). With ``several`` (answers kept
    per instance), the scans are coarser (``_MAX_POINTS_SEVERAL`` points per feature and
    round, ``_MAX_ROUNDS_SEVERAL`` rounds) and there are no exchanges: each round of either
    is a model call, and on UCI Adult (a forest, 4 answers) the exchanges moved the closest
    answers by 0.1% of their distance for a sixth of the calls.

    Returns
    -------
    owner : ndarray of int
    answers : ndarray of shape (len(owner), n_features)
        Every one valid: those of ``E``, scanned and reverted, then the new ones.
    """
    coarse = dict(max_points=_MAX_POINTS_SEVERAL, max_rounds=_MAX_ROUNDS_SEVERAL) \
        if several else {}
    # With an L2 part in the distance (a PN's elastic net), the closest answers move many
    # features a little: the steps built for that (skcem._elastic) replace the margin paths
    # from the instances, and climb with the last repairs.
    elastic = spread and joint and not several and bool(np.any(search.l2 > 0))
    E = search.revert(scan_splits(search, E, owner, points, **coarse), owner)
    repairs = None
    if joint and not several:
        # The first repairs climb with the margin paths: the same model calls.
        repairs = _undone(search, *best_answers(search, E, owner, _N_POLISHED)[::-1],
                          points)
    extra_scan = coarse
    if elastic:
        spread_owner, spread = spread_answers(search, rows, points, _steps)
        # The margin paths from the instances only where nothing else found an answer.
        answered = np.zeros(search.problem.x0.shape[0], bool)
        answered[owner] = answered[spread_owner] = True
        extra_owner, extra = margin_path(search, rows[~answered[rows]], points, repairs)
        extra_owner = np.concatenate([extra_owner, spread_owner])
        extra = np.concatenate([extra, spread])
        # The closest answers are scanned again after the exchanges: these need not be
        # scanned to the end (a PN's are many moves, each a row per split point).
        extra_scan = dict(max_points=_MAX_POINTS_SEVERAL, max_rounds=_MAX_ROUNDS_SEVERAL)
    else:
        extra_owner, extra = margin_path(search, rows, points, repairs)
    extra = search.revert(scan_splits(search, extra, extra_owner, points, **extra_scan),
                          extra_owner)
    owner, E = np.concatenate([owner, extra_owner]), np.concatenate([E, extra])
    if several:  # the exchanges' calls buy the closest answer little beside the others
        return owner, E
    best_owner, best = best_answers(search, E, owner, _N_POLISHED)
    owner = np.concatenate([owner, best_owner])
    E = np.concatenate([E, exchange(search, best, best_owner, points)])
    if not joint:
        return owner, E
    # The closest answers, exchanged, repaired once more (with the elastic steps, also
    # shrunk, or blended with the next closest ones, climbing in the same calls).
    more = shrunk_and_blended(search, E, owner) if elastic else None
    # On a table with categories, the repairs also climb changing them, in the same calls.
    categories = bool(search.categorical.any())
    repaired_owner, repaired = repair(
        search, *best_answers(search, E, owner, _N_POLISHED)[::-1], points, more, categories)
    owner, E = np.concatenate([owner, repaired_owner]), np.concatenate([E, repaired])
    if categories:
        owner, E = polish_categories(search, E, owner, rows, points)
    return owner, E


def polish_categories(search, E, owner, rows, points):
    """The answers ``E`` (valid; of instances ``owner``) with more answers built by moves
    that change categories (:func:`_category_steps`), from the instances ``rows`` and from
    each instance's closest answer: the sweep of single moves and their separable
    combinations, the exchanges and a repair, each able to set a categorical feature to
    another category (a repair also undoes a changed category, or all of them), each answer
    scanned and reverted; with an L2 part in the distance, the closest answer shrunk or
    blended (:func:`~skcem._elastic.shrunk_and_blended`) climbs with the repair.

    The steps before move numeric features only, on answers whose categories are those of
    training rows: on UCI Adult the closest answer often changes other categories (several
    of them) and moves a numeric feature less far. They run after those steps, from their
    answers, so that no answer is farther than the steps before give.
    """
    spread_owner, spread = spread_answers(search, rows, points,
                                          category_steps=_category_steps)
    spread = search.revert(scan_splits(search, spread, spread_owner, points), spread_owner)
    owner, E = np.concatenate([owner, spread_owner]), np.concatenate([E, spread])
    best_owner, best = best_answers(search, E, owner)
    owner = np.concatenate([owner, best_owner])
    E = np.concatenate([E, exchange(search, best, best_owner, points, categories=True)])
    more = shrunk_and_blended(search, E, owner) if np.any(search.l2 > 0) else None
    repaired_owner, repaired = repair(search, *best_answers(search, E, owner)[::-1], points,
                                      more, categories=True)
    return np.concatenate([owner, repaired_owner]), np.concatenate([E, repaired])


def _at(grid, index):
    """``grid[index]`` where ``index`` is inside it (the other side's lookups: ignored)."""
    if grid.size == 0:
        return np.zeros(np.shape(index))
    return grid[np.clip(index, 0, grid.size - 1)]

