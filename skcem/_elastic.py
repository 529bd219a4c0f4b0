"""The polish's steps for distances with an L2 part, on tree models' split points.

A PN's elastic net (``beta * L1 + L2^2``, in MADs with ``distance="mad"``) is mostly its
squared part: moving two features by 1 costs 2, one by 2 costs 4. Its closest answers move
many features a little, where the steps of :mod:`skcem._polish` (a start from a training
row, a margin path one split point of one feature at a time, pairs of moves) mostly end at
one or two large moves. These steps build answers that spread the change:

1. **Sweep** (:func:`sweep_trials`). Each numeric feature of each instance moved alone to
   split points (geometric in their rank, up to ``_SWEEP_POINTS`` a side): what each move
   costs and buys of the model's margin. Each feature's closest valid move is an answer.
2. **Separable** (:func:`separable`). The sweep's moves combined as if the margin were a sum
   over features (a forest's and a boosting's nearly are): for each of ``_N_MULTIPLIERS``
   prices ``lam`` of margin, each feature takes its move of best ``lam * gain - cost``;
   the combinations asked of the model, the valid ones kept.
3. **Slope lines** (:class:`SlopeLines`). From each instance, the margin bought per MAD of
   a margin path's step on each feature gives a direction, each feature in proportion to
   its slope (the closest point of a linear margin for a squared distance); the line along
   it is asked at ``_LINE_STEPS``, its first valid point kept, and from the last invalid
   one again (``_SLOPE_ROUNDS`` lines).
4. **Shrunk and blended** (:func:`shrunk_and_blended`). Each instance's closest answer
   shrunk towards the instance (every change by the same fraction), and halfway to each of
   its next closest distinct answers; from there the margin paths of the last repairs
   (:func:`skcem._polish.repair`, in the same model calls) regain the class within the
   closest answer's distance.

The answers of steps 1-3 (the cheapest ``_KEPT`` of each instance; their independent
questions share model calls) join the margin paths of the first repairs before they are
scanned; step 4 comes last. Each is valid, asked of the model.

Measured (``benchmarks/bench_optimality.py``): the PNs of the forests and boosting models
of its four tables within 5% of the exact optimum at the median and 20% at the 90th
percentile (before: four cases up to 38% at the 90th percentile).
"""

from dataclasses import dataclass

import numpy as np

# The numbers that the trials of one step (each a whole row) hold at most: instances are
# taken a few at a time where a thousand features would make millions of numbers a row.
MAX_TRIAL_NUMBERS = 2**23

# Split points a feature is swept to on each side (geometric in their rank: the nearest
# ones all, farther ones thinned).
_SWEEP_POINTS = 24
# Valid single moves kept per instance (each feature's closest; the cheapest features).
_SINGLE_KEPT = 8
# Prices of margin tried by the separable combination per instance, at quantiles of its
# moves' cost per margin; the valid combinations kept per instance.
_N_MULTIPLIERS = 16
_SEPARABLE_KEPT = 5
# A combination is asked only where the margin it would buy, were it a sum, makes up at
# least this share of what the instance lacks (the sum underestimates some).
_SEPARABLE_REACH = 0.5
# Lines along the slopes per instance, and the points asked on each (MADs from its start).
_SLOPE_ROUNDS = 3
_LINE_STEPS = 0.1 * 1.3 ** np.arange(22)
# Answers of the sweep, the separable combinations and the lines kept per instance.
_KEPT = 3
# The closest answer shrunk to these fractions of its changes, and blended halfway with its
# next closest distinct answers (this many).
_SHRINK_FRACTIONS = (0.5, 0.7)
_N_BLENDS = 2


@dataclass(frozen=True)
class Sweep:
    """Single moves of the instances ``rows`` (:func:`sweep_trials`): ``row`` (an index
    into ``rows``) moved on ``feature`` to ``value`` gives ``trials``, ``ok`` where valid,
    ``gain`` of margin at ``cost`` of distance (both from the instance, whose margin is
    ``margin``)."""

    rows: np.ndarray
    margin: np.ndarray
    row: np.ndarray
    feature: np.ndarray
    value: np.ndarray
    trials: np.ndarray
    ok: np.ndarray
    gain: np.ndarray
    cost: np.ndarray


def sweep_trials(search, rows, points, category_steps=None):
    """``(row, feature, trials)``: the instances ``rows`` (``row`` an index into it) with
    each numeric feature that may move, alone, at up to ``_SWEEP_POINTS`` split points on
    either side, made admissible; with ``category_steps`` (rows to ``(row, feature,
    value)``, :func:`skcem._polish._category_steps`), each categorical feature too, at each
    other category."""
    problem = search.problem
    Z = problem.x0[rows]
    movable = np.broadcast_to(~search.categorical, Z.shape)
    frozen = problem.frozen(rows)
    if frozen is not None:
        movable = movable & ~np.broadcast_to(frozen, Z.shape)
    movable = movable & np.isfinite(Z)
    out_row, out_feature, out_value = [np.zeros(0, int)], [np.zeros(0, int)], [np.zeros(0)]
    for j in np.flatnonzero(movable.any(axis=0)):
        at = np.flatnonzero(movable[:, j])
        for grid, side in ((points.above[j], 1), (points.below[j], -1)):
            if grid.size == 0:
                continue
            rank = np.unique(np.geomspace(1, grid.size, _SWEEP_POINTS).round().astype(int)) - 1
            if side > 0:  # the points above the value, nearest first
                start = np.searchsorted(grid, Z[at, j], side="right")
                index = start[:, None] + rank[None]
            else:
                start = np.searchsorted(grid, Z[at, j], side="left")
                index = start[:, None] - 1 - rank[None]
            r, k = np.nonzero((index >= 0) & (index < grid.size))
            out_row.append(at[r])
            out_feature.append(np.full(r.size, j))
            out_value.append(grid[index[r, k]])
    if category_steps is not None:
        for out, part in zip((out_row, out_feature, out_value),
                             category_steps(search, Z, rows)):
            out.append(part)
    row, feature = np.concatenate(out_row), np.concatenate(out_feature)
    value = search.admissible_values(np.concatenate(out_value), rows[row], feature)
    moved = value != Z[row, feature]
    row, feature, value = row[moved], feature[moved], value[moved]
    trials = Z[row].copy()
    trials[np.arange(row.size), feature] = value
    return row, feature, trials


def single_moves(search, moves):
    """``(owner, answers)``: each instance's closest valid move of each feature, of the
    ``_SINGLE_KEPT`` cheapest features (a farther valid move of the same feature scans to
    it at best)."""
    valid = np.flatnonzero(moves.ok)
    valid = valid[np.lexsort((moves.cost[valid], moves.feature[valid], moves.row[valid]))]
    row, feature = moves.row[valid], moves.feature[valid]
    valid = valid[np.r_[True, (row[1:] != row[:-1]) | (feature[1:] != feature[:-1])]] \
        if valid.size else valid
    owner = moves.rows[moves.row[valid]]
    keep = search.cheapest(owner, moves.trials[valid], _SINGLE_KEPT)
    return owner[keep], moves.trials[valid][keep]


def separable(search, moves):
    """``(owner, combinations)``: the sweep's invalid moves that buy margin, combined as if
    the margin were a sum over features, made admissible (to be asked of the model).

    For a price ``lam`` of margin, each feature takes the move of most ``lam * gain -
    cost`` where that is positive (the minimum of ``cost - lam * gain`` summed over
    features, one move each); the prices are quantiles of each instance's ``cost / gain``.
    """
    rows, Z = moves.rows, search.problem.x0[moves.rows]
    useful = (moves.gain > 0) & ~moves.ok & (moves.cost > 0)
    row, feature = moves.row[useful], moves.feature[useful]
    gain, cost, value = moves.gain[useful], moves.cost[useful], moves.value[useful]
    if row.size == 0:
        return rows[:0], Z[:0]
    order = np.lexsort((feature, row))
    row, feature, gain, cost, value = (a[order] for a in (row, feature, gain, cost, value))
    quantiles = np.linspace(0, 1, _N_MULTIPLIERS + 2)[1:-1]
    price = np.zeros((rows.size, quantiles.size))
    ratio = cost / gain
    bounds = np.flatnonzero(np.r_[True, row[1:] != row[:-1], True])
    for begin, end in zip(bounds[:-1], bounds[1:]):
        price[row[begin]] = np.quantile(ratio[begin:end], quantiles)
    score = price[row] * gain[:, None] - cost[:, None]
    new_group = np.r_[True, (row[1:] != row[:-1]) | (feature[1:] != feature[:-1])]
    best = np.maximum.reduceat(score, np.flatnonzero(new_group), axis=0)
    chosen = (score > 0) & (score == best[np.cumsum(new_group) - 1])
    move, q = np.nonzero(chosen)
    bought = np.zeros(price.shape)
    np.add.at(bought, (row[move], q), gain[move])
    combined = np.repeat(Z[:, None, :], quantiles.size, axis=1)
    combined[row[move], q, feature[move]] = value[move]
    i, q = np.nonzero(bought >= -moves.margin[:, None] * _SEPARABLE_REACH)
    if i.size == 0:
        return rows[:0], Z[:0]
    owner, combined = distinct_rows(rows[i], combined[i, q])
    return owner, search.admissible(combined, owner)


class SlopeLines:
    """Lines from the instances ``rows`` (of margin ``margin``) along their margin's slopes,
    ``_SLOPE_ROUNDS`` at most per instance, each from the last invalid point of the one
    before; :attr:`owners` and :attr:`answers` hold their first valid points.

    The slopes are those of the margin path's steps (``steps_of``,
    :func:`skcem._polish._steps`: 1, 2, 4, ... split points of one feature, passed in by the
    polish that calls these steps): the margin bought per MAD of move, each feature's
    steepest (the far points of the sweep, steeper on average than the near ones, made
    lines that ended farther). Each round is two model calls: :meth:`steps` (asked), then
    :meth:`line` (asked), then :meth:`take`.
    """

    def __init__(self, search, rows, margin, points, steps_of):
        self.search, self.rows, self.points = search, rows, points
        self.steps_of = steps_of
        self.Z = search.problem.x0[rows].copy()
        self.margin = margin.copy()
        self.open = np.arange(rows.size)
        self.owners, self.answers = [rows[:0]], [self.Z[:0]]
        l1, l2 = search.l1, search.l2
        # One MAD in each column's units (the squared part's weight is 1 / MAD^2).
        self.scale = np.where(l2 > 0, 1 / np.sqrt(np.where(l2 > 0, l2, 1)),
                              1 / np.where(l1 > 0, l1, 1))

    def steps(self):
        """``(owner, trials)``: the margin path's steps from the lines' starts."""
        self.row, self.feature, self.trials = self.steps_of(
            self.search, self.Z[self.open], self.rows[self.open], self.points)
        return self.rows[self.open][self.row], self.trials

    def line(self, proba):
        """``(owner, points)``: the points of the lines along the slopes of the steps, whose
        probabilities are ``proba``."""
        problem, Z = self.search.problem, self.Z
        row, feature, trials, start = self.row, self.feature, self.trials, Z[self.open]
        gain = problem.mode.margin(proba, problem.target[self.rows[self.open][row]],
                                   problem.kappa) - self.margin[self.open][row]
        move = (trials[np.arange(row.size), feature] - start[row, feature]) \
            / self.scale[feature]
        slope = np.where(gain > 0, gain / np.maximum(np.abs(move), 1e-12), 0.0)
        # Each feature's steepest move, with its sign.
        direction = np.zeros(start.shape)
        order = np.argsort(slope, kind="stable")
        direction[row[order], feature[order]] = slope[order] * np.sign(move[order])
        norm = np.sqrt(np.sum(direction**2, axis=1))
        sloped = norm > 0
        self.open = self.open[sloped]
        step = direction[sloped] / norm[sloped, None] * self.scale
        line = Z[self.open][:, None, :] + _LINE_STEPS[None, :, None] * step[:, None, :]
        line = np.where(self.search.whole, np.round(line), line)
        line = np.where(self.search.categorical, Z[self.open][:, None, :], line)
        owner = np.repeat(self.rows[self.open], _LINE_STEPS.size)
        self.line_points = self.search.admissible(line.reshape(owner.size, Z.shape[1]),
                                                  owner)
        return owner, self.line_points

    def take(self, ok, proba):
        """Keeps the first valid point of each line (``ok``, ``proba``: the model's answers
        on its points); the next line starts at the last invalid one before it, or, where
        none is valid, at the point of most margin."""
        if self.open.size == 0:
            return
        problem, n_steps = self.search.problem, _LINE_STEPS.size
        owner = np.repeat(self.rows[self.open], n_steps)
        line_margin = problem.mode.margin(proba, problem.target[owner],
                                          problem.kappa).reshape(-1, n_steps)
        ok = ok.reshape(-1, n_steps)
        line = self.line_points.reshape(-1, n_steps, self.Z.shape[1])
        first = np.argmax(ok, axis=1)
        found = np.flatnonzero(ok.any(axis=1))
        self.owners.append(self.rows[self.open[found]])
        self.answers.append(line[found, first[found]])
        start = np.where(ok.any(axis=1), first - 1, np.argmax(line_margin, axis=1))
        going = np.flatnonzero(start >= 0)
        self.Z[self.open[going]] = line[going, start[going]]
        self.margin[self.open[going]] = line_margin[going, start[going]]
        self.open = self.open[going]


def _ask_together(search, parts):
    """``search.ask`` of the ``(E, owner)`` of ``parts`` in one model call: a list of their
    ``(ok, proba)``."""
    sizes = [len(E) for E, _ in parts]
    if sum(sizes) == 0:
        return [(np.zeros(0, bool), None) for _ in parts]
    ok, proba = search.ask(np.concatenate([E for E, _ in parts]),
                           np.concatenate([owner for _, owner in parts]))
    bounds = np.cumsum([0] + sizes)
    return [(ok[a:b], proba[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


def spread_answers(search, rows, points, steps_of=None, category_steps=None):
    """``(owner, answers)``: the valid answers of :func:`single_moves`, :func:`separable`
    and the :class:`SlopeLines` from the instances ``rows``, the ``_KEPT`` cheapest of
    each; the independent questions of the three share model calls. ``steps_of`` is the
    margin path's steps (:func:`skcem._polish._steps`), which the lines' slopes are
    measured on (None: no lines). ``category_steps``: the sweep's categorical moves (see
    :func:`sweep_trials`)."""
    problem = search.problem
    Z = problem.x0[rows]
    if rows.size == 0:
        return rows, Z
    chunk = max(1, MAX_TRIAL_NUMBERS // (16 * Z.shape[1] ** 2))
    if rows.size > chunk:  # a row's sweep and steps: many whole rows per feature
        parts = [spread_answers(search, rows[start:start + chunk], points, steps_of,
                                category_steps) for start in range(0, rows.size, chunk)]
        return (np.concatenate([owner for owner, _ in parts]),
                np.concatenate([answers for _, answers in parts]))
    lines = None if steps_of is None else \
        SlopeLines(search, rows, np.zeros(rows.size), points, steps_of)
    row, feature, trials = sweep_trials(search, rows, points, category_steps)
    step_owner, steps = (rows[:0], Z[:0]) if lines is None else lines.steps()
    (_, proba), (ok, sweep_proba), (_, step_proba) = _ask_together(
        search, [(Z, rows), (trials, rows[row]), (steps, step_owner)])
    margin = problem.mode.margin(proba, problem.target[rows], problem.kappa)
    gain = problem.mode.margin(sweep_proba, problem.target[rows[row]],
                               problem.kappa) - margin[row]
    cost = search.distance(trials, rows[row]) - search.distance(Z, rows)[row]
    moves = Sweep(rows, margin, row, feature, trials[np.arange(row.size), feature], trials,
                  ok, gain, cost)
    combined_owner, combined = separable(search, moves)
    line_owner, line = (rows[:0], Z[:0])
    if lines is not None:
        lines.margin = margin.copy()
        line_owner, line = lines.line(step_proba)
    (combined_ok, _), (line_ok, line_proba) = _ask_together(
        search, [(combined, combined_owner), (line, line_owner)])
    parts = []
    if lines is not None:
        lines.take(line_ok, line_proba)
        for _ in range(_SLOPE_ROUNDS - 1):
            if lines.open.size == 0:
                break
            step_owner, steps = lines.steps()
            if len(steps) == 0:
                break
            lines.take(*search.ask(*lines.line(search.ask(steps, step_owner)[1])[::-1]))
        parts.append((np.concatenate(lines.owners), np.concatenate(lines.answers)))
    valid = np.flatnonzero(combined_ok)
    valid = valid[search.cheapest(combined_owner[valid], combined[valid], _SEPARABLE_KEPT)]
    parts = [single_moves(search, moves), (combined_owner[valid], combined[valid])] + parts
    owner = np.concatenate([p[0] for p in parts])
    answers = np.concatenate([p[1] for p in parts])
    keep = search.cheapest(owner, answers, _KEPT)
    return owner[keep], answers[keep]


def shrunk_and_blended(search, E, owner):
    """``(Z, owner, budget)``: starts from each instance's closest answer of ``E`` (valid),
    shrunk towards the instance (``_SHRINK_FRACTIONS``) and blended halfway with its next
    ``_N_BLENDS`` closest distinct answers, each with the closest answer's distance as
    budget: the margin path's steps from there (:func:`skcem._polish.repair`) regain the
    class within it, on other features than the closest answer moved, or on the same ones
    less far."""
    x0 = search.problem.x0
    best_owner, best = best_answers(search, E, owner)
    budget = np.full(x0.shape[0], np.inf)
    budget[best_owner] = search.distance(best, best_owner)
    starts, starts_owner = [], []
    for fraction in _SHRINK_FRACTIONS:
        starts.append(np.where(search.categorical, best,
                               x0[best_owner] + fraction * (best - x0[best_owner])))
        starts_owner.append(best_owner)
    distinct_owner, distinct = distinct_rows(owner, E)
    order = np.lexsort((search.distance(distinct, distinct_owner), distinct_owner))
    rank = np.arange(order.size) - np.searchsorted(distinct_owner[order],
                                                   distinct_owner[order])
    for r in range(1, _N_BLENDS + 1):
        other = order[rank == r]
        mine = best[np.searchsorted(best_owner, distinct_owner[other])]
        starts.append(np.where(search.categorical, mine, (mine + distinct[other]) / 2))
        starts_owner.append(distinct_owner[other])
    Z_owner = np.concatenate(starts_owner)
    Z = search.admissible(search.snap_inward(np.concatenate(starts), x0[Z_owner]), Z_owner)
    return Z, Z_owner, budget[Z_owner]


def best_answers(search, E, owner, n=1):
    """``(owner, rows)``: the closest of each instance's answers ``E`` (all valid); with
    ``n > 1``, its ``n`` closest distinct ones, by instance then distance."""
    if owner.size == 0:
        return owner, E
    if n > 1:
        owner, E = distinct_rows(owner, E)
    distance = search.distance(E, owner)
    order = np.lexsort((distance, owner))
    rank = np.arange(order.size) - np.searchsorted(owner[order], owner[order])
    best = order[rank < n]
    return owner[best], E[best]


def distinct_rows(owner, E):
    """``(owner, E)`` without repeated (instance, row) pairs, in their first order."""
    if len(E) == 0:
        return owner, E
    _, first = np.unique(np.column_stack([owner, E]), axis=0, return_index=True)
    first = np.sort(first)
    return owner[first], E[first]
