"""The exact search for tree models: certified closest answers by mixed-integer programming.

A tree ensemble's class scores are constant on boxes: its thresholds cut each numeric column
into intervals, and which interval every column lies in decides the leaf of every tree, hence
the scores and ``predict``. The closest valid answer therefore solves a mixed-integer program
(one per instance, solved by HiGHS through :func:`scipy.optimize.milp`):

* **Where each column lies.** For a numeric column with sorted thresholds ``t_1 < ... < t_K``
  (all trees together), binaries ``v_k = [z > t_k]`` with ``v_1 >= ... >= v_K``; the interval
  ``(t_k, t_k+1]`` is chosen when ``v_k - v_k+1 = 1``. A categorical column has one binary
  per category code, exactly one of them 1.
* **What it costs.** The explainer's distance is a sum over columns of a convex function of
  each column's change (L1 and L2 parts, per-feature weights, a changed category costing its
  L1 plus L2 weight, as in the gradient-free search), so the cheapest point of an interval is
  the admissible point nearest to the instance, found before solving: the instance itself in
  its own interval, else the interval's end nearest to it, a small step inside (so that the
  model, which compares in float32, sees it on the intended side of the threshold), rounded
  into the interval for integer columns and to a float column's decimals (``decimals``: the
  first value past the threshold in float64 and in float32 alike). Every constraint shapes
  that admissible set:
  immutable columns (and missing cells) keep their value, ``directions`` keep one side,
  ``feature_range`` bounds it, a PN keeps only values farther from the no-information value
  than the instance's (a categorical PN: any category but the no-information one).
  Intervals with no admissible point are ruled out. The objective is thus exact: no
  linearisation of the distance. No answer creates a pair of categories (almost) absent
  from the ``fit`` data, as in the gradient-free search: a code that would make one with a
  column the program leaves alone is ruled out, and two codes that make one together are
  never both chosen.
* **Which leaf each tree gives.** A flow per tree: its root carries 1, every inner node passes
  its flow to its two children, and a child may carry flow only when the row goes its way
  (``z <= t`` or not; a categorical split, the codes that go left). With the columns' binaries
  fixed, the flow reaches exactly the row's leaf in every tree.
* **Validity.** The class scores are linear in the leaves' flows (forests: averaged
  probabilities; boosting: summed raw values and a baseline). A counterfactual's target must
  beat every other class, a PN's explained class must be beaten by one of them (binaries
  choose which, for more than two classes), with the margin ``kappa`` of a PN (for two-class
  boosting, the raw value at which the probabilities differ by ``kappa``). A tie counts for the
  class the model's ``predict`` gives it; a win needs the margin ``_MARGIN`` on the scores.

**Budgets.** The gradient-free search (:mod:`skcem._neighbors`) first gives each instance a
valid answer; its distance ``D`` bounds the program, and programs of growing budgets ``D/16,
D/8, D/4, D/2`` and just below ``D`` are solved in turn, each budget both a row and HiGHS's
objective cutoff (which prunes its search by the relaxation's bounds): intervals and categories
that alone cost more than the budget are left out, and so is every tree node whose box has no
admissible point within the budget (the distance is a sum over columns, so a box's cheapest
point costs the sum of each column's cheapest interval in it), which makes the first programs
small. A leaf is left out too where, with every other tree's best reachable leaf, the scores
still fall short of validity (each tree gives one leaf: a bound the program's relaxation, which
weighs every leaf alone, does not see); a budget where a tree keeps no leaf has no answer,
without a program. The first with an answer holds the optimum; each without one proves that the
optimum costs more than its budget; when none has one, the heuristic's answer is the optimum
(HiGHS, which takes no starting answer, then only proves that nothing is cheaper).

The answer is then checked with the estimator's own ``predict`` (and probabilities, as every
search's answers are). Were it rejected (a tie or a threshold rounding the other way), the
program is solved again with every win needing ``_MARGIN`` and steps 100 (then 10^4) times
larger inside the intervals; an answer rejected every time is reported as not found.

Each instance has ``max_time`` seconds for all its programs; one too large for HiGHS to read
in the time left (``_COLUMNS_PER_SECOND``) is not started. One stopped by the time limit gets
the best answer found so far (the heuristic's, if the programs found none better) with its
proven relative gap (``gap``: how far its distance may be above the optimum, as a fraction of
it, from the best lower bound proven); a proven optimum has ``gap`` 0 (HiGHS's
``mip_rel_gap`` of ``_REL_GAP``). Rows with missing values get the gradient-free search's
answer with no proven gap (NaN): a tree sends a missing value its own way, which the program
does not model.
"""

import time
import warnings
from dataclasses import dataclass, replace

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp

from threadpoolctl import threadpool_limits

from ._decimals import round_to_decimals
from ._fista import SearchResult
from ._neighbors import NeighborSearch
from ._polish import points_of
from ._warnings import catching_warnings

# What a win needs on the class scores beyond a tie, and HiGHS's feasibility tolerance for
# the programs' rows below it (its default, 1e-6, let a program take a tie for a win: the
# answer, refused by ``predict``, left a proven optimum with a gap).
_MARGIN = 1e-6
_FEASIBILITY_TOLERANCE = 1e-7
# The relative gap at which HiGHS calls an answer optimal.
_REL_GAP = 1e-6
# The budgets of the programs below the heuristic's distance, as fractions of it (halving
# measured better than steps of sqrt(2) on Adult: median 2.2 s against 4.0 s per row).
_BUDGET_FRACTIONS = (1 / 16, 1 / 8, 1 / 4, 1 / 2)
# How many of a program's columns HiGHS reads and presolves a second, about (a 200-tree
# forest's whole program on Adult, 2.1 million columns, took it 5.8 s to stop at a 2 s time
# limit): a larger program than the time left allows is not started, the row's time is up.
_COLUMNS_PER_SECOND = 500_000
# Multiples of a column's decimals tried past a threshold that float32 rounds them onto.
_FLOAT32_STEPS = 8
# Tries per instance: with ties allowed and the smallest steps, then strict.
_TRIES = ((False, 1.0), (True, 100.0), (True, 1e4))


@dataclass
class ExactResult(SearchResult):
    """A :class:`~skcem._fista.SearchResult` with each answer's proven relative ``gap`` to the
    optimum (0: optimal; NaN where nothing was found, or for the heuristic's answer of a row
    with missing values) and each program's ``seconds``."""

    seconds: np.ndarray | None = None


class _Structure:
    """The parts of the program that every instance shares: variables and tree constraints.

    Variables, in order: the numeric columns' threshold binaries ``v``, the categorical
    columns' category binaries ``w``, and one flow per node of every tree ``y``. Each row of
    ``A`` has an ``owner``: the inner node whose split it writes, or -1 (the columns' own
    rows), so that an instance's program keeps only the rows of the nodes it can reach.
    """

    def __init__(self, ensemble, categorical, n_categories):
        self.ensemble = ensemble
        n_nodes = len(ensemble.left)
        inner = ensemble.left >= 0
        is_categorical_split = np.zeros(n_nodes, bool)
        is_categorical_split[list(ensemble.left_codes)] = True
        numeric_nodes = inner & ~is_categorical_split
        if np.any(~categorical[ensemble.feature[is_categorical_split]]):
            raise ValueError("search='exact' found a categorical split on a numeric column.")
        if np.any(categorical[ensemble.feature[numeric_nodes]]):
            raise ValueError("search='exact' found a numeric split on a categorical column: "
                             "give the model its categories through an encoder.")
        n_var = 0
        # Numeric columns: sorted thresholds and the step inside each (the largest of the
        # splits sharing it); each numeric split's threshold binary.
        self.cuts, self.steps, self.v_start = {}, {}, {}
        self.side_tests = {}  # per cut, the model's own test of a value's side
        self.cut_index = np.full(n_nodes, -1)
        for j in np.unique(ensemble.feature[numeric_nodes]):
            at = numeric_nodes & (ensemble.feature == j)
            cuts, inverse = np.unique(ensemble.threshold[at], return_inverse=True)
            steps = np.zeros(len(cuts))
            np.maximum.at(steps, inverse, ensemble.margin[at])
            self.cuts[j], self.steps[j], self.v_start[j] = cuts, steps, n_var
            nodes = np.zeros(len(cuts), int)
            nodes[inverse] = np.flatnonzero(at)
            self.side_tests[j] = ensemble.side_test(nodes)
            self.cut_index[at] = inverse
            n_var += len(cuts)
        self.n_v = n_var
        self.w_start = {}
        for j in np.unique(ensemble.feature[is_categorical_split]):
            self.w_start[int(j)] = n_var
            n_var += int(n_categories[j])
        self.n_categories = n_categories
        self.y_start = y = n_var
        self.n_var = n_var + n_nodes
        self.integrality = np.zeros(self.n_var)
        self.integrality[:self.y_start] = 1

        rows, cols, vals, lower, upper, owner = [], [], [], [], [], []
        n_rows = 0

        def add(row_cols, row_vals, lo, hi, row_owner, present=None):
            """Rows given as arrays: ``row_cols`` and ``row_vals`` of shape (n, width), and
            which of their entries are ``present`` (all by default)."""
            nonlocal n_rows
            row_cols, row_vals = np.atleast_2d(row_cols), np.atleast_2d(row_vals)
            count = row_cols.shape[0]
            row_vals = np.broadcast_to(row_vals, row_cols.shape)
            if present is None:
                present = np.ones(row_cols.shape, bool)
            rows.append(np.nonzero(present)[0] + n_rows)
            cols.append(row_cols[present])
            vals.append(row_vals[present])
            lower.append(np.broadcast_to(lo, count))
            upper.append(np.broadcast_to(hi, count))
            owner.append(np.broadcast_to(row_owner, count))
            n_rows += count

        for j, start in self.v_start.items():  # v_k >= v_k+1
            k = np.arange(len(self.cuts[j]) - 1)
            if k.size:
                add(np.c_[start + k + 1, start + k], [[1.0, -1.0]], -np.inf, 0.0, -1)
        for j, start in self.w_start.items():  # one category
            count = int(n_categories[j])
            add(np.arange(start, start + count)[None], np.ones((1, count)), 1.0, 1.0, -1)
        nodes = np.flatnonzero(inner)
        left, right = ensemble.left[nodes], ensemble.right[nodes]
        add(np.c_[y + left, y + right, y + nodes], [[1.0, 1.0, -1.0]], 0.0, 0.0, nodes)
        nodes = np.flatnonzero(numeric_nodes)
        v = np.array([self.v_start[j] for j in ensemble.feature[nodes]], dtype=int) \
            + self.cut_index[nodes] if nodes.size else np.zeros(0, int)
        # The left child only if z <= t_k (v = 0), the right one only if z > t_k (v = 1).
        add(np.c_[y + ensemble.left[nodes], v], [[1.0, 1.0]], -np.inf, 1.0, nodes)
        add(np.c_[y + ensemble.right[nodes], v], [[1.0, -1.0]], -np.inf, 0.0, nodes)
        split_nodes, split_codes, goes_left = _padded_codes(ensemble.left_codes)
        if len(split_nodes):
            # codes past the answers' ones have no binary: a category declared at explain by
            # a row of the batch (one fit never met), which no answer takes; its code would
            # stand for the next column's first binary
            answered = split_codes & (np.arange(split_codes.shape[1])
                                      < n_categories[ensemble.feature[split_nodes]][:, None])
            self._add_categorical_splits(add, split_nodes, answered, goes_left & answered)
        self.A = sparse.csr_array((np.concatenate(vals), (np.concatenate(rows),
                                                          np.concatenate(cols))),
                                  shape=(n_rows, self.n_var))
        self.A_lower, self.A_upper = np.concatenate(lower), np.concatenate(upper)
        self.row_owner = np.concatenate(owner)
        self.lb = np.zeros(self.n_var)
        self.ub = np.ones(self.n_var)
        self.lb[y + ensemble.roots] = 1.0  # each root carries the whole flow
        self.is_leaf = ~inner
        self.leaf_scores = ensemble.leaf_scores
        tree_of = np.zeros(n_nodes, int)
        tree_of[ensemble.roots] = 1
        self.node_tree = np.cumsum(tree_of) - 1
        # Nodes by depth, for the reachability pass of each instance.
        self.levels = []
        frontier = ensemble.roots[inner[ensemble.roots]]
        while len(frontier):
            self.levels.append(np.sort(frontier))
            children = np.r_[ensemble.left[frontier], ensemble.right[frontier]]
            frontier = children[inner[children]]
        order = np.argsort(split_nodes)
        self.categorical_nodes = split_nodes[order]
        width = int(max(n_categories.max(initial=0), 1))
        self.categorical_left = np.zeros((len(self.categorical_nodes), width), bool)
        # (codes past the answers' ones, of categories no answer takes, are left out)
        kept = min(width, goes_left.shape[1])
        self.categorical_left[:, :kept] = goes_left[order, :kept]
        self.categorical_position = np.full(n_nodes, -1)
        self.categorical_position[self.categorical_nodes] = np.arange(len(self.categorical_nodes))
        self._split_boxes(len(categorical))

    def _add_categorical_splits(self, add, nodes, held, left):
        """Per categorical split, a child may carry flow only where the chosen code goes its
        way: ``y_child <= sum of the codes' binaries``, the left child's row, then the right
        one's, node by node (every split's rows built at once)."""
        ensemble = self.ensemble
        # Rows 2i and 2i + 1: node i's left and right child. Entry 0 of a row is the child's
        # flow, entry 1 + k the binary of code k, where code k goes that child's way.
        side = np.empty((2 * len(nodes), held.shape[1]), bool)
        side[0::2], side[1::2] = left, held & ~left
        entries = np.c_[np.ones(len(side), bool), side]
        starts = np.array([self.w_start[int(j)] for j in ensemble.feature[nodes]])
        children = np.c_[ensemble.left[nodes], ensemble.right[nodes]].ravel()
        columns = np.c_[self.y_start + children, np.repeat(starts, 2)[:, None]
                        + np.arange(held.shape[1])]
        values = np.broadcast_to(np.r_[1.0, -np.ones(held.shape[1])], entries.shape)
        add(columns, values, -np.inf, 0.0, np.repeat(nodes, 2), present=entries)

    def _split_boxes(self, d):
        """Each inner node's box on the column it splits: the intervals (``box_low`` to
        ``box_high``, of that column's cuts) or the categories (``box_codes``, per categorical
        node) its ancestors leave to the rows reaching it."""
        ensemble = self.ensemble
        n_nodes = len(ensemble.left)
        self.box_low = np.zeros(n_nodes, int)
        self.box_high = np.zeros(n_nodes, int)
        self.box_codes = np.ones_like(self.categorical_left)
        for j, cuts in self.cuts.items():
            self.box_high[ensemble.feature == j] = len(cuts)
        # Per node of the current level: its nearest ancestor splitting each column, and
        # whether it lies right of that ancestor's split.
        frontier = ensemble.roots
        ancestor = np.full((len(frontier), d), -1)
        went_right = np.zeros((len(frontier), d), bool)
        while len(frontier):
            inner = ensemble.left[frontier] >= 0
            frontier, ancestor, went_right = frontier[inner], ancestor[inner], went_right[inner]
            if not len(frontier):
                break
            j = ensemble.feature[frontier]
            rows = np.arange(len(frontier))
            a, right = ancestor[rows, j], went_right[rows, j]
            has = a >= 0
            numeric = has & (self.cut_index[frontier] >= 0)
            node, a_n, right_n = frontier[numeric], a[numeric], right[numeric]
            k = self.cut_index[a_n]
            self.box_low[node] = np.where(right_n, np.maximum(self.box_low[a_n], k + 1),
                                          self.box_low[a_n])
            self.box_high[node] = np.where(right_n, self.box_high[a_n],
                                           np.minimum(self.box_high[a_n], k))
            categorical = has & (self.cut_index[frontier] < 0)
            node = self.categorical_position[frontier[categorical]]
            a_c = self.categorical_position[a[categorical]]
            goes = np.where(right[categorical][:, None], ~self.categorical_left[a_c],
                            self.categorical_left[a_c])
            self.box_codes[node] = self.box_codes[a_c] & goes
            ancestor[rows, j] = frontier
            children = np.r_[ensemble.left[frontier], ensemble.right[frontier]]
            ancestor = np.r_[ancestor, ancestor]
            went_right = np.r_[went_right, went_right]
            went_right[rows, j] = False
            went_right[len(frontier) + rows, j] = True
            frontier = children

    def box_costs(self, interval_costs, code_costs):
        """Per node, the cost of the cheapest admissible point of its box (inf where it
        holds none).

        The distance is a sum over columns, so the cheapest point of a box costs the sum over
        columns of the cheapest admissible interval (or category) the box leaves that column.
        ``interval_costs`` maps each numeric column to the cost of each of its intervals,
        ``code_costs`` each categorical column to the cost of each code (inf where not
        admissible, and past the column's codes up to the widest column's).
        """
        ensemble = self.ensemble
        cost = np.full(len(ensemble.left), np.inf)
        cost[ensemble.roots] = 0.0  # the instance itself lies in every root's box
        numeric_tables = {j: _RangeMin(c) for j, c in interval_costs.items()}
        for nodes in self.levels:
            nodes = nodes[np.isfinite(cost[nodes])]
            if not len(nodes):
                continue
            here, left, right = (np.empty(len(nodes)) for _ in range(3))
            k = self.cut_index[nodes]
            numeric = k >= 0
            features = ensemble.feature[nodes]
            for j in np.unique(features[numeric]):
                at = numeric & (features == j)
                low, high, kj = self.box_low[nodes[at]], self.box_high[nodes[at]], k[at]
                table = numeric_tables[int(j)]
                here[at] = table.min(low, high)
                left[at] = table.min(low, np.minimum(high, kj))
                right[at] = table.min(np.maximum(low, kj + 1), high)
            if not numeric.all():
                position = self.categorical_position[nodes[~numeric]]
                codes = np.stack([code_costs[int(j)] for j in features[~numeric]])
                box, goes = self.box_codes[position], self.categorical_left[position]
                here[~numeric] = np.where(box, codes, np.inf).min(axis=1)
                left[~numeric] = np.where(box & goes, codes, np.inf).min(axis=1)
                right[~numeric] = np.where(box & ~goes, codes, np.inf).min(axis=1)
            base = cost[nodes] - here
            cost[ensemble.left[nodes]] = base + left
            cost[ensemble.right[nodes]] = base + right
        return cost


def _padded_codes(left_codes):
    """A tree ensemble's categorical splits (``{node: codes going left}``) as arrays: the
    nodes, in the dict's order, and per node which codes it holds and which go left, padded
    to the longest."""
    nodes = np.fromiter(left_codes, int, len(left_codes))
    lengths = np.fromiter(map(len, left_codes.values()), int, len(left_codes))
    held = np.arange(lengths.max(initial=0)) < lengths[:, None]
    goes_left = np.zeros(held.shape, bool)
    if len(nodes):
        goes_left[held] = np.concatenate(list(left_codes.values()))
    return nodes, held, goes_left


class _RangeMin:
    """Minima of ``values`` over index ranges ``[low, high]`` (a sparse table)."""

    def __init__(self, values):
        self.table = [np.asarray(values, float)]
        width = 1
        while 2 * width <= len(values):
            previous = self.table[-1]
            self.table.append(np.minimum(previous[:-width], previous[width:]))
            width *= 2

    def min(self, low, high):
        """Per pair, the minimum over ``low..high`` (inf where the range is empty)."""
        low, high = np.asarray(low), np.asarray(high)
        empty = high < low
        span = np.maximum(high - low + 1, 1)
        level = np.floor(np.log2(span)).astype(int)
        out = np.full(len(low), np.inf)
        for lev in np.unique(level[~empty]):
            at = ~empty & (level == lev)
            row = self.table[lev]
            out[at] = np.minimum(row[low[at]], row[high[at] - (1 << lev) + 1])
        return out


def _nearest_points(x0, cuts, steps, pieces, scale=None, reads_left=None):
    """Per interval of ``cuts`` (K + 1 of them), the admissible point nearest to ``x0``, or
    NaN where there is none.

    ``pieces`` are closed intervals ``(a, b)`` of admissible values (besides ``x0``, always
    admissible). Interval ``k`` is ``(t_k, t_k+1]``, realised inside its ends by their steps.
    With a ``scale``, only multiples of ``1 / scale`` are points: whole numbers (1), or a
    float column's decimals (``10 ** places``), with steps 0 (a model's threshold may lie
    within float32 rounding of an integer, as splits between 31 and 33 do, which only the
    integer 32 meets); on a cut's side by the model's own comparison, ``reads_left(values)``
    (one value per cut: whether the model sends it left), where given: a decimal that a
    scaler maps to within float32 rounding of a split's threshold goes the way the model
    sends it, not the way its raw float64 value lies.
    """
    n = len(cuts) + 1
    low = np.r_[-np.inf, cuts + steps]
    high = np.r_[cuts - steps, np.inf]
    if scale is not None:  # the smallest multiple above t_k, the largest at most t_k+1
        # right of interval k's lower cut, t_k; left of (at most) its upper one, t_k+1; and
        # where the steps are asked (a retry after predict refused an answer), past them
        stepped = np.any(steps > 0)
        sides = {} if reads_left is None else dict(
            above=lambda values: np.r_[True, ~reads_left(values[1:])] &
            (~stepped | (values > low)),
            below=lambda values: np.r_[reads_left(values[:-1]), True] &
            (~stepped | (values <= high)))
        low, high = _multiples_inside(low, high, scale, **sides)
    best = np.full(n, np.nan)
    best_gap = np.full(n, np.inf)
    for a, b in pieces:
        lo, hi = np.maximum(low, a), np.minimum(high, b)
        if scale is not None:
            lo, hi = _multiples_inside(lo, hi, scale, closed=True)
        ok = lo <= hi
        point = np.clip(x0, lo, hi)
        gap = np.where(ok, np.abs(point - x0), np.inf)
        better = gap < best_gap
        best = np.where(better, point, best)
        best_gap = np.where(better, gap, best_gap)
    own = int(np.searchsorted(cuts, x0, side="left"))  # t_own < x0 <= t_own+1
    best[own] = x0
    return best


def _gap(floor, distance):
    """The relative gap of an answer at ``distance`` above a proven lower bound ``floor``."""
    return max(0.0, 1.0 - floor / distance) if distance > 0 else 0.0


def _multiples_inside(low, high, scale, closed=False, above=None, below=None):
    """The smallest multiple of ``1 / scale`` above ``low`` (at least ``low``, ``closed``)
    and the largest at most ``high``, computed as ``k / scale`` (2.76, not 276 * 0.01).

    The ends of an open interval are thresholds, which a model may compare in float32 (the
    scikit-learn trees and XGBoost do) or in float64: without the model's own test of the
    side (``above(values)``, ``below(values)``: one value per end), a multiple counts as
    above ``low`` (at most ``high``) in both (117.45 is 117.449997 in float32, which a split
    at that threshold sends left)."""
    def is_above(k):
        value = k / scale
        if closed:
            return value >= low
        if above is not None:
            return above(value)
        return (value > low) & (value.astype(np.float32) > low)

    def is_below(k):
        value = k / scale
        if closed:
            return value <= high
        if below is not None:
            return below(value)
        return (value <= high) & (value.astype(np.float32) <= high)

    with np.errstate(invalid="ignore", over="ignore"):  # (the products only approximate k)
        first = np.ceil(low * scale) if closed else np.floor(low * scale) + 1
        first = np.where(is_above(first - 1), first - 1, first)
        last = np.floor(high * scale)
        last = np.where(is_below(last + 1), last + 1, last)
        for _ in range(_FLOAT32_STEPS):  # float32 may hold several multiples as one value
            first = np.where(is_above(first), first, first + 1)
            last = np.where(is_below(last), last, last - 1)
    return first / scale, last / scale


class ExactSearch:
    """Callable with the signature and result of :func:`skcem._fista.solve`.

    Parameters
    ----------
    ensemble : TreeEnsemble
        The model's trees on the search's rows (:func:`skcem._tree_models.read_tree_ensemble`).
    whole : ndarray of bool, shape (n_features,)
        Integer columns (and category codes): answers hold whole numbers there.
    max_time : float
        Seconds per instance's program.
    decimals : ndarray of int, shape (n_features,), optional
        The decimals of float columns (-1: none; see :mod:`skcem._decimals`): the program's
        points there hold them, so that its answers are the optimum among such values.
    pool : CandidatePool or None
        Rows of the data given to ``fit``: the gradient-free search
        (:class:`~skcem._neighbors.NeighborSearch`) first finds a good answer from them,
        whose distance bounds the program (intervals and categories that cost more alone are
        ruled out, and so are answers that cost more), and which is the answer, with its
        proven gap, where the program finds none better within ``max_time``.
    """

    def __init__(self, ensemble, whole, max_time, pool=None, decimals=None):
        self.ensemble = ensemble
        self.whole = whole
        self.decimals = decimals
        self.scales = [None] * len(whole) if decimals is None else \
            [10.0 ** p if p >= 0 else None for p in decimals]
        self.max_time = max_time
        self.pool = pool

    def structure(self, problem):
        """The shared program, built once per model and kept with its trees (every batch
        and ``explain`` call reuses it)."""
        d = problem.x0.shape[1]
        categorical = np.zeros(d, bool) if problem.categorical is None \
            else np.asarray(problem.categorical)
        upper = np.broadcast_to(problem.upper, (d,)) if np.ndim(problem.upper) < 2 \
            else np.max(problem.upper, axis=0)
        n_categories = np.where(categorical, np.asarray(upper) + 1, 0).astype(int)
        key = (categorical.tobytes(), n_categories.tobytes())
        cached = getattr(self.ensemble, "_program", None)
        if cached is None or cached[0] != key:
            cached = key, _Structure(self.ensemble, categorical, n_categories)
            self.ensemble._program = cached
        return cached[1]

    def __call__(self, backend, problem, settings=None, progress=None):
        # Many small model calls: OpenMP threads (histogram gradient boosting) cost more to
        # wake than the rows take.
        with threadpool_limits(limits=1, user_api="openmp"):
            return self._search(backend, problem, progress)

    def _search(self, backend, problem, progress):
        ensemble = self.ensemble
        n, d = problem.x0.shape
        check_exact_problem(ensemble, problem.mode, problem.kappa)
        structure = self.structure(problem)
        explanation = np.full((n, d), np.nan)
        distance = np.full(n, np.nan)
        proba = np.full((n, problem.n_classes), np.nan)
        pred = np.full(n, -1)
        rejected = np.zeros(n, bool)
        gap = np.full(n, np.nan)
        seconds = np.zeros(n)
        proven_none = np.zeros(n, bool)
        searchable = np.ones(n, bool) if problem.searchable is None else problem.searchable
        n_calls = 0
        heuristic = None
        if self.pool is not None:
            points = points_of(ensemble, d, self.whole, self.decimals)
            heuristic = NeighborSearch(self.pool, self.whole, points=points)._search(
                backend, replace(problem, searchable=searchable), None)
            if self.decimals is not None:  # a bound among the answers the program has
                heuristic = round_to_decimals(backend, problem, heuristic, self.decimals,
                                              self.whole)
        # The trees send a missing value their own way, which the program does not follow,
        # and a category no answer takes (its dtype's, held by no row given to fit) has no
        # variable in it: such rows get the heuristic's answer, with no proven gap (NaN).
        unmodelled = np.zeros(n, bool)
        if problem.missing is not None:
            unmodelled |= searchable & problem.missing.any(axis=1)
        if problem.categorical is not None and np.any(problem.categorical):
            upper = np.broadcast_to(problem.upper, problem.x0.shape)
            unmodelled |= searchable & np.any(problem.categorical & (problem.x0 > upper), axis=1)
        if unmodelled.any():
            if heuristic is not None:
                for name, array in (("explanation", explanation), ("distance", distance),
                                    ("explanation_proba", proba), ("explanation_class", pred)):
                    array[unmodelled] = getattr(heuristic, name)[unmodelled]
                rejected[unmodelled] = heuristic.rejected_by_predict[unmodelled]
            searchable = searchable & ~unmodelled
        for i in np.flatnonzero(searchable):
            started = time.perf_counter()
            bound = heuristic.distance[i] if heuristic is not None and heuristic.found[i] \
                else np.inf
            deadline = started + self.max_time
            # What the first program proves, the others being stricter: once its answer is
            # refused, theirs prove nothing of the optimum below (a tie predict accepts is
            # what they forbid), and the gap is to this bound.
            floor = None
            for strict, step_scale in _TRIES:
                outcome = self._within_budgets(structure, problem, i, strict, step_scale,
                                               bound, deadline)
                if outcome is None:  # no answer exists (in the first program: a proof)
                    proven_none[i] = floor is None
                    break
                answer, row_gap = outcome
                if answer is None:  # time is up: the heuristic's answer and its gap
                    if heuristic is None or not heuristic.found[i]:
                        break
                    explanation[i] = heuristic.explanation[i]
                    distance[i] = heuristic.distance[i]
                    proba[i] = heuristic.explanation_proba[i]
                    pred[i] = heuristic.explanation_class[i]
                    gap[i] = row_gap if floor is None else _gap(floor, distance[i])
                    rejected[i] = False
                    break
                row = problem.with_missing(answer[None], [i])
                row_proba = backend.predict_proba(row)
                row_pred = backend.predict(row)
                n_calls += 1
                changed = np.any(answer != problem.x0[i]) if problem.mode.requires_change \
                    else None
                ok = problem.mode.is_success(row_proba, problem.target[[i]], problem.kappa,
                                             pred=row_pred, changed=None if changed is None
                                             else np.array([changed]))[0]
                if ok and heuristic is not None and heuristic.found[i] and \
                        heuristic.distance[i] < self._distance(problem, answer, i):
                    # Realised a step farther than the heuristic's own answer: keep that
                    # one (the gap, relative to the larger distance, still holds).
                    answer, row = heuristic.explanation[i], heuristic.explanation[[i]]
                    row_proba = heuristic.explanation_proba[[i]]
                    row_pred = heuristic.explanation_class[[i]]
                if ok:
                    explanation[i] = row[0]
                    distance[i] = self._distance(problem, answer, i)
                    proba[i], pred[i] = row_proba[0], row_pred[0]
                    gap[i] = row_gap if floor is None else _gap(floor, distance[i])
                    rejected[i] = False
                    break
                rejected[i] = True
                if floor is None:
                    floor = self._distance(problem, answer, i) * (1.0 - row_gap)
            if rejected[i] and heuristic is not None and heuristic.found[i]:
                # Every program's answer was refused by ``predict`` (an unchanged value
                # within float32 rounding of a threshold goes the other way there): the
                # heuristic's answer, with its gap to the refused answers' bound.
                explanation[i] = heuristic.explanation[i]
                distance[i] = heuristic.distance[i]
                proba[i] = heuristic.explanation_proba[i]
                pred[i] = heuristic.explanation_class[i]
                gap[i] = _gap(floor, distance[i])
                rejected[i] = False
            seconds[i] = time.perf_counter() - started
        found = np.isfinite(distance)
        if progress is not None:
            progress(0, np.full(n, np.nan), found)
        return ExactResult(explanation=explanation, found=found, distance=distance,
                           best_c=np.full(n, np.nan), explanation_proba=proba,
                           explanation_class=pred, n_iterations=np.full(n, n_calls),
                           flat_gradient=np.zeros(n, bool), rejected_by_predict=rejected,
                           gap=gap, seconds=seconds, proven_none=proven_none & ~found)

    @staticmethod
    def _weights(problem, d):
        return (np.broadcast_to(np.asarray(problem.l1_weight, float), (d,)),
                np.broadcast_to(np.asarray(problem.l2_weight, float), (d,)))

    def _distance(self, problem, answer, i):
        d = problem.x0.shape[1]
        l1, l2 = self._weights(problem, d)
        categorical = np.zeros(d, bool) if problem.categorical is None else problem.categorical
        diff = np.where(categorical, (answer != problem.x0[i]).astype(float),
                        answer - problem.x0[i])
        return float(np.sum(l2 * diff**2 + l1 * np.abs(diff)))

    def _admissible_pieces(self, problem, i, j):
        """Closed intervals of a numeric column's admissible values (besides ``x0``)."""
        x0 = problem.x0[i, j]
        frozen = problem.frozen([i])
        if frozen is not None and np.atleast_2d(frozen)[0, j]:
            return []
        lower = float(np.broadcast_to(problem.lower, problem.x0.shape)[i, j])
        upper = float(np.broadcast_to(problem.upper, problem.x0.shape)[i, j])
        pieces = [(lower, upper)]
        if problem.directions is not None and problem.directions[j] != 0:
            side = (x0, np.inf) if problem.directions[j] > 0 else (-np.inf, x0)
            pieces = [(max(a, side[0]), min(b, side[1])) for a, b in pieces]
        if problem.mode.name == "PN":
            # Farther from the no-information value than x0: |z - v| > |x0 - v|.
            v = float(np.broadcast_to(problem.no_info_val, problem.x0.shape)[i, j])
            r = abs(x0 - v)
            tiny = 4 * np.spacing(np.float32(max(abs(v) + r, 1e-30)))
            away = [(-np.inf, v - r - tiny), (v + r + tiny, np.inf)]
            pieces = [(max(a, c), min(b, e)) for a, b in pieces for c, e in away]
        return [(a, b) for a, b in pieces if a <= b]

    def _allowed_codes(self, problem, i, j, n_codes):
        x0 = int(problem.x0[i, j])
        allowed = np.zeros(n_codes, bool)
        allowed[x0] = True
        frozen = problem.frozen([i])
        if frozen is not None and np.atleast_2d(frozen)[0, j]:
            return allowed
        allowed[:] = True
        if problem.directions is not None and problem.directions[j] != 0:
            # an ordered category's codes follow its order
            allowed[np.arange(n_codes) < x0 if problem.directions[j] > 0
                    else np.arange(n_codes) > x0] = False
        if problem.mode.name == "PN":  # any category but the no-information one
            v = np.broadcast_to(problem.no_info_val, problem.x0.shape)[i, j]
            allowed[np.arange(n_codes) == v] = False
        if problem.permitted is not None and j in problem.permitted:  # feature_range's list
            mask = problem.permitted[j]
            allowed[:len(mask)] &= mask
            allowed[len(mask):] = False
        allowed[x0] = True
        return allowed

    @staticmethod
    def _rare_pair_rows(structure, problem, i, ub):
        """Keep the answer from creating a rare pair of categories, as the gradient-free
        search does (:class:`~skcem._plausibility.CategoryPairs`): a code that makes one with
        a column the program leaves at the instance's value gets ``ub`` 0 (in place), and
        each rare pair of codes of two columns in the program is returned as the positions
        of their binaries, at most one of which may be 1. The instance's own pair is allowed.
        """
        pairs = problem.category_pairs
        if pairs is None:
            return []
        x0 = problem.x0[i]
        rows = []
        for (j, k), rare in pairs.rare_.items():
            in_j, in_k = j in structure.w_start, k in structure.w_start
            if not (in_j or in_k) or np.isnan(x0[j]) or np.isnan(x0[k]):
                continue
            rare = rare.copy()
            rare[int(x0[j]), int(x0[k])] = False
            # the program's binaries cover the categories answers may take, not those a
            # category dtype declares past them (the pairs' tables count those too)
            if in_j:
                rare = rare[:int(structure.n_categories[j])]
            if in_k:
                rare = rare[:, :int(structure.n_categories[k])]
            if in_j and in_k:
                a, b = np.nonzero(rare)
                a, b = a + structure.w_start[j], b + structure.w_start[k]
                keep = (ub[a] > 0) & (ub[b] > 0)
                rows.extend(zip(a[keep], b[keep]))
            elif in_j:
                ub[structure.w_start[j] + np.flatnonzero(rare[:, int(x0[k])])] = 0.0
            else:
                ub[structure.w_start[k] + np.flatnonzero(rare[int(x0[j])])] = 0.0
        return rows

    def _within_budgets(self, structure, problem, i, strict, step_scale, bound, deadline):
        """The best answer of instance ``i`` and its gap, by programs of growing budgets.

        A program whose answers may cost at most a budget ``b`` is much smaller than the
        whole one (intervals and categories that alone cost more, and the tree nodes only they
        reach, are left out). Budgets grow from ``bound / 16`` to just below ``bound``, the
        heuristic's distance: the first with an answer gives the optimum (every cheaper answer
        was within it), and each without one proves that the optimum costs more than ``b``.
        When none has one, the heuristic's answer is optimal: the last program only has to
        prove that nothing is cheaper, not to find it (HiGHS takes no starting answer).

        Returns ``(answer, gap)``; ``(None, gap)`` for the heuristic's answer (gap 0 when
        proven optimal, that of ``bound`` when time ran out first); None when there is no
        answer.
        """
        if not np.isfinite(bound) or bound <= 0:
            budgets = [np.inf]
        else:
            budgets = [bound * fraction for fraction in _BUDGET_FRACTIONS] + \
                [bound * (1 - _REL_GAP)]
        proven = 0.0  # the optimum costs more than this
        for budget in budgets:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            outcome = self._solve_row(structure, problem, i, strict, step_scale, budget,
                                      remaining)
            if outcome is None:
                proven = min(budget, bound)
                continue
            answer, value, lower = outcome
            if answer is None:
                proven = max(proven, lower)
                break
            gap = 0.0 if value <= 0 else max(0.0, (value - max(lower, proven)) / value)
            return answer, gap
        else:
            return (None, 0.0) if np.isfinite(bound) else None
        return None, (max(0.0, (bound - proven) / bound) if 0 < bound < np.inf else 1.0)

    def _solve_row(self, structure, problem, i, strict, step_scale, bound, time_limit):
        """The optimal answer of instance ``i`` among those costing at most ``bound``:
        ``(answer, distance, lower bound)``, the lower bound being the distance where it was
        proven optimal; ``(None, nan, lower bound)`` where time ran out before any; None
        when there is none."""
        d = problem.x0.shape[1]
        x0 = problem.x0[i]
        l1, l2 = self._weights(problem, d)
        n_columns = structure.y_start  # the columns' variables v and w
        cost = np.zeros(n_columns)
        lb, ub = structure.lb[:n_columns].copy(), structure.ub[:n_columns].copy()
        ruled_out = []  # (k-1, k) pairs of v: interval k is never chosen
        constant = 0.0
        points = {}
        limit = bound * (1 + 1e-9) + 1e-12
        first = np.zeros(d, int)
        last = np.zeros(d, int)
        interval_costs, code_costs = {}, {}
        for j, cuts in structure.cuts.items():
            scale = 1.0 if self.whole[j] else self.scales[j]
            # Whole numbers and decimals first without steps (see _nearest_points), then
            # with them.
            steps = structure.steps[j] * step_scale if scale is None or step_scale > 1 \
                else 0.0
            pts = _nearest_points(x0[j], cuts, np.broadcast_to(steps, cuts.shape),
                                  self._admissible_pieces(problem, i, j), scale,
                                  structure.side_tests[j])
            change = np.abs(pts - x0[j])
            interval_cost = l1[j] * change + l2[j] * change**2
            points[j] = pts
            # An interval costing more than the bound alone is never chosen.
            feasible = np.isfinite(pts) & (interval_cost <= limit)
            interval_costs[j] = np.where(feasible, interval_cost, np.inf)
            interval_cost = np.where(feasible, interval_cost, 0.0)
            start, k_count = structure.v_start[j], len(cuts)
            allowed = np.flatnonzero(feasible)
            first[j], last[j] = allowed[0], allowed[-1]  # x0's own is always admissible
            # sum_k cost_k (v_k - v_k+1), with v_0 = 1 and v_K+1 = 0, telescoped.
            constant += interval_cost[0]
            cost[start:start + k_count] = np.diff(interval_cost)
            # Intervals outside [first, last] by bounds, the others by rows.
            lb[start:start + first[j]] = 1.0
            ub[start + last[j]:start + k_count] = 0.0
            inside = np.flatnonzero(~feasible[first[j]:last[j] + 1]) + first[j]
            ruled_out.extend(start + k - 1 for k in inside)
        for j, start in structure.w_start.items():
            n_codes = int(structure.n_categories[j])
            allowed = self._allowed_codes(problem, i, j, n_codes) & (l1[j] + l2[j] <= limit)
            allowed[int(x0[j])] = True
            ub[start:start + n_codes] = allowed
            cost[start:start + n_codes] = l1[j] + l2[j]
            cost[start + int(x0[j])] = 0.0
        pair_rows = self._rare_pair_rows(structure, problem, i, ub)
        for j, start in structure.w_start.items():
            n_codes = int(structure.n_categories[j])
            code_costs[j] = np.full(structure.categorical_left.shape[1], np.inf)
            code_costs[j][:n_codes] = np.where(ub[start:start + n_codes] > 0,
                                               cost[start:start + n_codes], np.inf)
        # Only the nodes whose box holds an admissible point within the bound enter the
        # program: a leaf that alone costs more is never the row's.
        node_cost = structure.box_costs(interval_costs, code_costs)
        reach = node_cost <= limit
        reach = self._drop_hopeless_leaves(structure, problem, i, strict, reach)
        if reach is None:
            return None
        nodes = np.flatnonzero(reach)
        if n_columns + len(nodes) > _COLUMNS_PER_SECOND * time_limit:
            return None, np.nan, 0.0  # HiGHS would overrun the time left just reading it
        columns = np.r_[np.arange(n_columns), structure.y_start + nodes]
        kept_rows = (structure.row_owner < 0) | reach[np.maximum(structure.row_owner, 0)]
        A_tree = structure.A[kept_rows][:, columns]
        n_kept = len(columns)
        leaves = np.flatnonzero(structure.is_leaf[nodes])  # positions among the nodes
        validity, v_lower, v_upper, n_extra = self._validity(structure, problem, i, strict,
                                                             nodes[leaves], n_columns + leaves,
                                                             n_kept)
        c = np.r_[cost, np.zeros(len(nodes) + n_extra)]
        integrality = np.r_[np.ones(n_columns), np.zeros(len(nodes)), np.ones(n_extra)]
        lower_bounds = np.r_[lb, structure.lb[structure.y_start + nodes], np.zeros(n_extra)]
        upper_bounds = np.r_[ub, np.ones(len(nodes) + n_extra)]
        n_total = n_kept + n_extra
        blocks = [sparse.hstack([A_tree, sparse.csr_array((A_tree.shape[0], n_extra))])]
        lower = [structure.A_lower[kept_rows]]
        upper = [structure.A_upper[kept_rows]]
        if ruled_out:  # v_k-1 - v_k = 0
            ruled_out = np.asarray(ruled_out)
            count = len(ruled_out)
            blocks.append(sparse.csr_array(
                (np.tile([1.0, -1.0], count),
                 (np.repeat(np.arange(count), 2), np.c_[ruled_out, ruled_out + 1].ravel())),
                shape=(count, n_total)))
            lower.append(np.zeros(count))
            upper.append(np.zeros(count))
        if pair_rows:  # w_a + w_b <= 1
            pair_rows = np.asarray(pair_rows)
            count = len(pair_rows)
            blocks.append(sparse.csr_array(
                (np.ones(2 * count), (np.repeat(np.arange(count), 2), pair_rows.ravel())),
                shape=(count, n_total)))
            lower.append(np.full(count, -np.inf))
            upper.append(np.ones(count))
        blocks.append(validity)
        lower.append(v_lower)
        upper.append(v_upper)
        if np.isfinite(bound):  # nothing costlier than the bound
            blocks.append(sparse.csr_array(np.r_[cost, np.zeros(n_total - n_columns)][None]))
            lower.append([-np.inf])
            upper.append([limit - constant])
        A = _int32_indices(sparse.vstack(blocks, format="csr"))
        options = {"time_limit": time_limit, "mip_rel_gap": _REL_GAP, "disp": False}
        if np.isfinite(bound):
            # The budget as HiGHS's objective cutoff too: the row alone is only propagated,
            # the cutoff also prunes nodes by their bounds (proofs that nothing is cheaper
            # measured 1.2 to 5 times faster on Adult's forest of depth 8). Just above the
            # row's end, so that it never cuts off an answer the row allows.
            options["objective_bound"] = (limit - constant) + 1e-9 * (1.0 + abs(limit - constant))
        result = _milp(c, integrality=integrality, bounds=Bounds(lower_bounds, upper_bounds),
                       constraints=LinearConstraint(A, np.concatenate(lower),
                                                    np.concatenate(upper)),
                       options=options)
        dual = getattr(result, "mip_dual_bound", None)
        dual = dual + constant if dual is not None and np.isfinite(dual) else 0.0
        if result.x is None:
            return (None, np.nan, dual) if result.status == 1 else None
        x = result.x
        answer = x0.copy()
        for j, cuts in structure.cuts.items():
            start = structure.v_start[j]
            k = int(np.sum(x[start:start + len(cuts)] > 0.5))
            answer[j] = points[j][k]
        for j, start in structure.w_start.items():
            answer[j] = float(np.argmax(x[start:start + int(structure.n_categories[j])]))
        value = result.fun + constant
        return answer, value, value if result.status == 0 else dual

    def _score_rows(self, problem, i, strict, leaf_scores):
        """What validity asks of the leaves' class scores ``leaf_scores``: ``(values, lower,
        any_of)``, one row per class other than the instance's target (or explained) one,
        each row of ``values`` summed over the chosen leaves having to reach ``lower``: all
        rows (a counterfactual) or at least one (``any_of``: a PN)."""
        ensemble = self.ensemble
        t = int(problem.target[i])
        base = ensemble.base

        def wins_tie(a, b):
            return (a > b) if ensemble.ties_to_higher else (a < b)

        def required(a, b):
            """What a's score must exceed b's by for a to beat b."""
            return 0.0 if (wins_tie(a, b) and not strict) else _MARGIN

        others = [c for c in range(ensemble.n_classes) if c != t]
        if problem.mode.wants_target:  # the target beats every other class
            values = np.array([leaf_scores[:, t] - leaf_scores[:, c] for c in others])
            lower = np.array([required(t, c) - (base[t] - base[c]) for c in others])
            return values, lower, False
        # A PN: some other class beats the explained one by kappa.
        kappa = problem.kappa
        if kappa > 0 and not ensemble.is_probability:
            kappa = np.log((1 + kappa) / (1 - kappa)) / ensemble.raw_binary_slope
        values = np.array([leaf_scores[:, c] - leaf_scores[:, t] for c in others])
        lower = np.array([kappa + required(c, t) - (base[c] - base[t]) for c in others])
        return values, lower, len(others) > 1

    def _drop_hopeless_leaves(self, structure, problem, i, strict, reach):
        """``reach`` without the leaves that no valid answer can choose, and without the
        inner nodes left with no leaf; None where no answer is valid.

        Each tree gives one leaf, so the scores' sum is at most the sum over trees of each
        tree's best reachable leaf (a bound the program's relaxation does not see: it weighs
        every leaf alone). A leaf whose value, with every other tree's best, still falls
        short of what validity needs is dropped; the trees' bests then fall, and so on until
        nothing changes.
        """
        leaves = np.flatnonzero(reach & structure.is_leaf)
        values, lower, any_of = self._score_rows(problem, i, strict,
                                                 structure.leaf_scores[leaves])
        tree = structure.node_tree[leaves]
        # Leaves are numbered tree after tree, and every tree keeps the instance's own leaf.
        starts = np.flatnonzero(np.r_[True, tree[1:] != tree[:-1]])
        if len(starts) != len(structure.ensemble.roots):
            return reach
        keep = np.ones(len(leaves), bool)
        slack = 1e-9 * (1.0 + np.abs(lower))
        while True:
            best = np.maximum.reduceat(np.where(keep, values, -np.inf), starts, axis=1)
            if not np.all(np.isfinite(best)):
                return None
            reachable_sum = best.sum(axis=1)
            possible = values - best[:, tree] + reachable_sum[:, None] >= \
                (lower - slack)[:, None]
            still = keep & (possible.any(axis=0) if any_of else possible.all(axis=0))
            if np.array_equal(still, keep):
                break
            keep = still
        reach = reach.copy()
        reach[leaves[~keep]] = False
        ensemble = structure.ensemble
        for nodes in reversed(structure.levels):
            reach[nodes] &= reach[ensemble.left[nodes]] | reach[ensemble.right[nodes]]
        return reach

    def _validity(self, structure, problem, i, strict, leaves, leaf_columns, n_columns):
        """The validity rows of instance ``i`` on the program's columns (``leaves``, the
        nodes, at ``leaf_columns``): ``(A, lower, upper, n_selectors)``, the selectors being
        new binaries after the ``n_columns`` others."""
        values, lower, any_of = self._score_rows(problem, i, strict,
                                                 structure.leaf_scores[leaves])
        n_rows = len(lower)
        n_extra = n_rows if any_of else 0
        rows = sparse.csr_array(
            (values.ravel(), (np.repeat(np.arange(n_rows), len(leaf_columns)),
                              np.tile(leaf_columns, n_rows))),
            shape=(n_rows, n_columns + n_extra))
        if n_extra == 0:
            return rows, lower, np.full(n_rows, np.inf), 0
        # Selectors s_c: where s_c = 1, class c beats t; big-M relaxes the others.
        tree = structure.node_tree[leaves]
        big_m = np.array([max(0.0, need - _lowest(row, tree)) + 1.0
                          for row, need in zip(values, lower)])
        selectors = sparse.csr_array(
            (np.r_[-big_m, np.ones(n_extra)],
             (np.r_[np.arange(n_extra), np.full(n_extra, n_extra)],
              np.r_[n_columns + np.arange(n_extra), n_columns + np.arange(n_extra)])),
            shape=(n_extra + 1, n_columns + n_extra))
        rows = sparse.vstack([sparse.vstack([rows, sparse.csr_array((1, n_columns + n_extra))])
                              + selectors], format="csr")
        return (rows, np.r_[lower - big_m, 1.0], np.full(n_extra + 1, np.inf), n_extra)


def check_exact_problem(ensemble, mode, kappa):
    """An error for what the exact search cannot do with the model ``ensemble`` (from
    :func:`~skcem._tree_models.read_tree_ensemble`): a PP, or a ``kappa`` margin on a
    boosting model of more than two classes."""
    if mode.name == "PP":
        raise ValueError("search='exact' finds pertinent negatives and counterfactuals; "
                         "use search='neighbors' or 'auto' for pertinent positives.")
    if kappa > 0 and not ensemble.is_probability and ensemble.thresholded:
        raise ValueError("search='exact' cannot hold a `kappa` margin for a threshold "
                         "classifier around a boosting model (the search's margin is on the "
                         "shifted probabilities, not linear in its leaves); use kappa=0.")
    if kappa > 0 and not ensemble.is_probability and ensemble.raw_binary_slope is None:
        raise ValueError("search='exact' cannot hold a `kappa` margin on the probabilities "
                         "of a boosting model of more than two classes (its probabilities "
                         "are not linear in its leaves); use kappa=0.")


def _milp(c, options, **program):
    """:func:`scipy.optimize.milp`, passing HiGHS's ``objective_bound`` and
    ``mip_feasibility_tolerance`` (not among scipy's own options: scipy hands them on
    verbatim, with a warning kept quiet here); without them where this scipy cannot."""
    bound = options.pop("objective_bound", None)
    highs_options = {"mip_feasibility_tolerance": _FEASIBILITY_TOLERANCE}
    if bound is not None:
        highs_options["objective_bound"] = bound
    with catching_warnings():
        # an older scipy warns of what it does not know (mip_rel_gap before 1.11 too)
        warnings.filterwarnings("ignore", "Unrecognized options", RuntimeWarning)
        try:
            return milp(c, options={**options, **highs_options}, **program)
        except (AttributeError, KeyError, TypeError, ValueError):
            return milp(c, options=options, **program)


def _int32_indices(A):
    """``A`` (CSR) with 32-bit indices: scipy 1.12 to 1.14 hand a matrix's indices to HiGHS
    as they are, and HiGHS takes 32-bit ones only ("Buffer dtype mismatch")."""
    if A.nnz < 2**31 and A.shape[1] < 2**31:
        A.indices = A.indices.astype(np.int32, copy=False)
        A.indptr = A.indptr.astype(np.int32, copy=False)
    return A


def _lowest(leaf_values, leaf_tree):
    """The lowest sum over trees of one leaf value each."""
    lowest = np.full(leaf_tree.max() + 1, np.inf)
    np.minimum.at(lowest, leaf_tree, leaf_values)
    return float(lowest[np.isfinite(lowest)].sum())
