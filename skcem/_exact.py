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
  into the interval for integer columns. Every constraint shapes that admissible set:
  immutable columns (and missing cells) keep their value, ``directions`` keep one side,
  ``feature_range`` bounds it, a PN keeps only values farther from the no-information value
  than the instance's (a categorical PN: any category but the no-information one).
  Intervals with no admissible point are ruled out. The objective is thus exact: no
  linearisation of the distance.
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

The answer is then checked with the estimator's own ``predict`` (and probabilities, as every
search's answers are). Were it rejected (a tie or a threshold rounding the other way), the
program is solved again with every win needing ``_MARGIN``, and steps 100 times larger inside
the intervals; an answer rejected twice is reported as not found.

Each program has ``max_time`` seconds. An instance whose program is stopped by the time limit
gets the best answer found so far with its proven relative gap (``gap``: how far its distance
may be above the optimum, as a fraction of it); one that has no answer by then is not found.
A proven optimum has ``gap`` 0 (HiGHS's ``mip_rel_gap`` of ``_REL_GAP``).
"""

import time
from dataclasses import dataclass, replace

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp

from threadpoolctl import threadpool_limits

from ._fista import SearchResult
from ._neighbors import NeighborSearch

# What a win needs on the class scores beyond a tie, above HiGHS's feasibility tolerance.
_MARGIN = 1e-6
# The relative gap at which HiGHS calls an answer optimal.
_REL_GAP = 1e-6
# Tries per instance: with ties allowed and the smallest steps, then strict.
_TRIES = ((False, 1.0), (True, 100.0), (True, 1e4))


@dataclass
class ExactResult(SearchResult):
    """A :class:`~skcem._fista.SearchResult` with each answer's proven relative ``gap`` to the
    optimum (0: optimal; NaN where nothing was found) and each program's ``seconds``."""

    gap: np.ndarray | None = None
    seconds: np.ndarray | None = None


class _Structure:
    """The parts of the program that every instance shares: variables and tree constraints.

    Variables, in order: the numeric columns' threshold binaries ``v``, the categorical
    columns' category binaries ``w``, and one flow per node of every tree ``y``.
    """

    def __init__(self, ensemble, categorical, n_categories):
        self.ensemble = ensemble
        inner = ensemble.left >= 0
        numeric_nodes = inner & ~np.isin(np.arange(len(inner)), list(ensemble.left_codes))
        for node in ensemble.left_codes:
            if not categorical[ensemble.feature[node]]:
                raise ValueError("search='exact' found a categorical split on a numeric "
                                 "column.")
        if np.any(categorical[ensemble.feature[numeric_nodes]]):
            raise ValueError("search='exact' found a numeric split on a categorical column: "
                             "give the model its categories through an encoder.")
        n_var = 0
        # Numeric columns: sorted thresholds and the step inside each (the largest of the
        # splits sharing it).
        self.cuts, self.steps, self.v_start = {}, {}, {}
        for j in np.unique(ensemble.feature[numeric_nodes]):
            at = numeric_nodes & (ensemble.feature == j)
            cuts, inverse = np.unique(ensemble.threshold[at], return_inverse=True)
            steps = np.zeros(len(cuts))
            np.maximum.at(steps, inverse, ensemble.margin[at])
            self.cuts[j], self.steps[j], self.v_start[j] = cuts, steps, n_var
            n_var += len(cuts)
        self.n_v = n_var
        self.w_start = {}
        for j in sorted({int(ensemble.feature[node]) for node in ensemble.left_codes}):
            self.w_start[j] = n_var
            n_var += int(n_categories[j])
        self.n_categories = n_categories
        self.y_start = n_var
        n_nodes = len(inner)
        self.n_var = n_var + n_nodes
        self.integrality = np.zeros(self.n_var)
        self.integrality[:self.y_start] = 1

        rows, cols, vals, lower, upper = [], [], [], [], []

        def add(row_cols, row_vals, lo, hi):
            index = len(lower)
            rows.extend([index] * len(row_cols))
            cols.extend(row_cols)
            vals.extend(row_vals)
            lower.append(lo)
            upper.append(hi)

        for j, start in self.v_start.items():  # v_k >= v_k+1
            for k in range(len(self.cuts[j]) - 1):
                add([start + k + 1, start + k], [1.0, -1.0], -np.inf, 0.0)
        for j, start in self.w_start.items():  # one category
            add(list(range(start, start + int(n_categories[j]))),
                [1.0] * int(n_categories[j]), 1.0, 1.0)
        y = self.y_start
        for node in np.flatnonzero(inner):
            left, right = ensemble.left[node], ensemble.right[node]
            add([y + left, y + right, y + node], [1.0, 1.0, -1.0], 0.0, 0.0)
            j = int(ensemble.feature[node])
            if node in ensemble.left_codes:
                goes_left = ensemble.left_codes[node]
                start = self.w_start[j]
                codes = np.arange(len(goes_left))
                add([y + left] + list(start + codes[goes_left]),
                    [1.0] + [-1.0] * int(goes_left.sum()), -np.inf, 0.0)
                add([y + right] + list(start + codes[~goes_left]),
                    [1.0] + [-1.0] * int((~goes_left).sum()), -np.inf, 0.0)
            else:
                k = int(np.searchsorted(self.cuts[j], ensemble.threshold[node]))
                v = self.v_start[j] + k
                add([y + left, v], [1.0, 1.0], -np.inf, 1.0)  # left only if z <= t_k
                add([y + right, v], [1.0, -1.0], -np.inf, 0.0)  # right only if z > t_k
        self.A = sparse.csr_array((vals, (rows, cols)), shape=(len(lower), self.n_var))
        self.A_lower, self.A_upper = np.asarray(lower), np.asarray(upper)
        self.lb = np.zeros(self.n_var)
        self.ub = np.ones(self.n_var)
        self.lb[y + ensemble.roots] = 1.0  # each root carries the whole flow
        leaf = ~inner
        self.leaf_index = y + np.flatnonzero(leaf)
        self.leaf_scores = ensemble.leaf_scores[leaf]
        # The lowest value of each class's score minus another's, over the trees' leaves.
        tree_of = np.zeros(n_nodes, int)
        for t, root in enumerate(ensemble.roots):
            tree_of[root:] = t
        self.leaf_tree = tree_of[leaf]


def _nearest_points(x0, cuts, steps, pieces, whole):
    """Per interval of ``cuts`` (K + 1 of them), the admissible point nearest to ``x0``, or
    NaN where there is none.

    ``pieces`` are closed intervals ``(a, b)`` of admissible values (besides ``x0``, always
    admissible). Interval ``k`` is ``(t_k, t_k+1]``, realised inside its ends by their steps.
    """
    n = len(cuts) + 1
    low = np.r_[-np.inf, cuts + steps]
    high = np.r_[cuts - steps, np.inf]
    best = np.full(n, np.nan)
    best_gap = np.full(n, np.inf)
    for a, b in pieces:
        lo, hi = np.maximum(low, a), np.minimum(high, b)
        if whole:
            lo, hi = np.ceil(lo), np.floor(hi)
        ok = lo <= hi
        point = np.clip(x0, lo, hi)
        gap = np.where(ok, np.abs(point - x0), np.inf)
        better = gap < best_gap
        best = np.where(better, point, best)
        best_gap = np.where(better, gap, best_gap)
    own = int(np.searchsorted(cuts, x0, side="left"))  # t_own < x0 <= t_own+1
    best[own] = x0
    return best


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
    pool : CandidatePool or None
        Rows of the data given to ``fit``: the gradient-free search
        (:class:`~skcem._neighbors.NeighborSearch`) first finds a good answer from them,
        whose distance bounds the program (intervals and categories that cost more alone are
        ruled out, and so are answers that cost more), and which is the answer, with its
        proven gap, where the program finds none better within ``max_time``.
    """

    def __init__(self, ensemble, whole, max_time, pool=None):
        self.ensemble = ensemble
        self.whole = whole
        self.max_time = max_time
        self.pool = pool
        self._structure = None

    def structure(self, problem):
        if self._structure is None:
            d = problem.x0.shape[1]
            categorical = np.zeros(d, bool) if problem.categorical is None \
                else np.asarray(problem.categorical)
            upper = np.broadcast_to(problem.upper, (d,)) if np.ndim(problem.upper) < 2 \
                else np.max(problem.upper, axis=0)
            n_categories = np.where(categorical, np.asarray(upper) + 1, 0).astype(int)
            self._structure = _Structure(self.ensemble, categorical, n_categories)
        return self._structure

    def __call__(self, backend, problem, settings=None, progress=None):
        # Many small model calls: OpenMP threads (histogram gradient boosting) cost more to
        # wake than the rows take.
        with threadpool_limits(limits=1, user_api="openmp"):
            return self._search(backend, problem, progress)

    def _search(self, backend, problem, progress):
        ensemble = self.ensemble
        n, d = problem.x0.shape
        if problem.mode.name == "PP":
            raise ValueError("search='exact' finds pertinent negatives and counterfactuals; "
                             "use search='neighbors' or 'auto' for pertinent positives.")
        if problem.kappa > 0 and not ensemble.is_probability and \
                ensemble.raw_binary_slope is None:
            raise ValueError("search='exact' cannot hold a `kappa` margin on the probabilities "
                             "of a boosting model of more than two classes (its probabilities "
                             "are not linear in its leaves); use kappa=0.")
        structure = self.structure(problem)
        explanation = np.full((n, d), np.nan)
        distance = np.full(n, np.nan)
        proba = np.full((n, problem.n_classes), np.nan)
        pred = np.full(n, -1)
        rejected = np.zeros(n, bool)
        gap = np.full(n, np.nan)
        seconds = np.zeros(n)
        searchable = np.ones(n, bool) if problem.searchable is None else problem.searchable
        n_calls = 0
        if problem.missing is not None:
            # The trees send a missing value their own way, which the program does not follow.
            searchable = searchable & ~problem.missing.any(axis=1)
        heuristic = None
        if self.pool is not None:
            heuristic = NeighborSearch(self.pool, self.whole)._search(
                backend, replace(problem, searchable=searchable), None)
        for i in np.flatnonzero(searchable):
            started = time.perf_counter()
            bound = heuristic.distance[i] if heuristic is not None and heuristic.found[i] \
                else np.inf
            for strict, step_scale in _TRIES:
                outcome = self._solve_row(structure, problem, i, strict, step_scale, bound)
                if outcome is None and np.isfinite(bound):
                    # None within the bound (the heuristic's answer may hold a tie the
                    # program's margin refuses): without it.
                    outcome = self._solve_row(structure, problem, i, strict, step_scale,
                                              np.inf)
                if outcome is None:  # no answer: none exists, or none within max_time
                    break
                answer, row_gap = outcome
                if answer is None:  # time is up: the heuristic's answer and its gap
                    explanation[i] = heuristic.explanation[i]
                    distance[i] = heuristic.distance[i]
                    proba[i] = heuristic.explanation_proba[i]
                    pred[i], gap[i] = heuristic.explanation_class[i], row_gap
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
                if ok:
                    explanation[i] = row[0]
                    distance[i] = self._distance(problem, answer, i)
                    proba[i], pred[i], gap[i] = row_proba[0], row_pred[0], row_gap
                    rejected[i] = False
                    break
                rejected[i] = True
            seconds[i] = time.perf_counter() - started
        found = np.isfinite(distance)
        if progress is not None:
            progress(0, np.full(n, np.nan), found)
        return ExactResult(explanation=explanation, found=found, distance=distance,
                           best_c=np.full(n, np.nan), explanation_proba=proba,
                           explanation_class=pred, n_iterations=np.full(n, n_calls),
                           flat_gradient=np.zeros(n, bool), rejected_by_predict=rejected,
                           gap=gap, seconds=seconds)

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
        if problem.mode.name == "PN":  # any category but the no-information one
            v = np.broadcast_to(problem.no_info_val, problem.x0.shape)[i, j]
            allowed[np.arange(n_codes) == v] = False
            allowed[x0] = True
        return allowed

    def _solve_row(self, structure, problem, i, strict, step_scale, bound):
        """The optimal answer of instance ``i`` and its gap; ``(None, gap)`` where time ran
        out before an answer below ``bound`` was found (the gap is ``bound``'s); None when
        there is no answer below ``bound``."""
        ensemble = self.ensemble
        d = problem.x0.shape[1]
        x0 = problem.x0[i]
        l1, l2 = self._weights(problem, d)
        cost = np.zeros(structure.n_var)
        lb, ub = structure.lb.copy(), structure.ub.copy()
        extra_rows, extra_lower, extra_upper = [], [], []
        constant = 0.0
        points = {}
        for j, cuts in structure.cuts.items():
            whole = bool(self.whole[j])
            pts = _nearest_points(x0[j], cuts, structure.steps[j] * step_scale,
                                  self._admissible_pieces(problem, i, j), whole)
            change = np.abs(pts - x0[j])
            interval_cost = l1[j] * change + l2[j] * change**2
            points[j] = pts
            feasible = np.isfinite(pts)
            # An interval costing more than the bound alone is never chosen.
            feasible &= interval_cost <= bound * (1 + 1e-9) + 1e-12
            interval_cost = np.where(feasible, interval_cost, 0.0)
            start, k_count = structure.v_start[j], len(cuts)
            # sum_k cost_k (v_k - v_k+1), with v_0 = 1 and v_K+1 = 0, telescoped.
            constant += interval_cost[0]
            cost[start:start + k_count] = np.diff(interval_cost)
            for k in np.flatnonzero(~feasible):  # interval k is never chosen
                if k == 0:
                    lb[start] = 1.0
                elif k == k_count:
                    ub[start + k_count - 1] = 0.0
                else:
                    row = np.zeros(structure.n_var)
                    row[start + k - 1], row[start + k] = 1.0, -1.0
                    extra_rows.append(row)
                    extra_lower.append(0.0)
                    extra_upper.append(0.0)
        for j, start in structure.w_start.items():
            n_codes = int(structure.n_categories[j])
            allowed = self._allowed_codes(problem, i, j, n_codes)
            ub[start:start + n_codes] = allowed & (l1[j] + l2[j] <= bound * (1 + 1e-9) + 1e-12)
            ub[start + int(x0[j])] = 1.0
            cost[start:start + n_codes] = l1[j] + l2[j]
            cost[start + int(x0[j])] = 0.0
        validity = self._validity(structure, problem, i, strict)
        n_extra = validity[3] if validity is not None else 0
        c = np.r_[cost, np.zeros(n_extra)]
        integrality = np.r_[structure.integrality, np.ones(n_extra)]
        lb, ub = np.r_[lb, np.zeros(n_extra)], np.r_[ub, np.ones(n_extra)]
        blocks = [sparse.hstack([structure.A, sparse.csr_array((structure.A.shape[0],
                                                                n_extra))])]
        lower, upper = [structure.A_lower], [structure.A_upper]
        if extra_rows:
            blocks.append(sparse.csr_array(np.hstack([np.asarray(extra_rows),
                                                      np.zeros((len(extra_rows), n_extra))])))
            lower.append(extra_lower)
            upper.append(extra_upper)
        rows, row_lower, row_upper, _ = validity
        blocks.append(rows)
        lower.append(row_lower)
        upper.append(row_upper)
        if np.isfinite(bound):  # nothing costlier than the bound
            cutoff = np.zeros(structure.n_var + n_extra)
            cutoff[:structure.n_var] = cost
            blocks.append(sparse.csr_array(cutoff[None]))
            lower.append([-np.inf])
            upper.append([bound * (1 + 1e-9) + 1e-12 - constant])
        A = sparse.vstack(blocks, format="csr")
        result = milp(c, integrality=integrality, bounds=Bounds(lb, ub),
                      constraints=LinearConstraint(A, np.concatenate(lower),
                                                   np.concatenate(upper)),
                      options={"time_limit": self.max_time, "mip_rel_gap": _REL_GAP,
                               "disp": False})
        dual = getattr(result, "mip_dual_bound", None)
        dual = dual + constant if dual is not None and np.isfinite(dual) else 0.0
        if result.x is None:
            if result.status == 1 and np.isfinite(bound):
                return None, max(0.0, (bound - dual) / bound) if bound > 0 else 0.0
            return None
        x = result.x
        answer = x0.copy()
        for j, cuts in structure.cuts.items():
            start = structure.v_start[j]
            k = int(np.sum(x[start:start + len(cuts)] > 0.5))
            answer[j] = points[j][k]
        for j, start in structure.w_start.items():
            answer[j] = float(np.argmax(x[start:start + int(structure.n_categories[j])]))
        value = result.fun + constant
        if result.status == 0:
            row_gap = 0.0
        else:
            row_gap = max(0.0, (value - dual) / value) if value > 0 else 0.0
        return answer, row_gap

    def _validity(self, structure, problem, i, strict):
        """Rows of the validity constraints of instance ``i``: ``(A, lower, upper,
        n_selectors)``, the selectors being new binaries after the structure's variables."""
        ensemble = self.ensemble
        t = int(problem.target[i])
        n_classes = ensemble.n_classes
        scores = structure.leaf_scores
        base = ensemble.base

        def wins_tie(a, b):
            return (a > b) if ensemble.ties_to_higher else (a < b)

        def required(a, b):
            """What a's score must exceed b's by for a to beat b."""
            return 0.0 if (wins_tie(a, b) and not strict) else _MARGIN

        def difference_row(a, b):
            row = np.zeros(structure.n_var)
            row[structure.leaf_index] = scores[:, a] - scores[:, b]
            return row

        others = [c for c in range(n_classes) if c != t]
        if problem.mode.wants_target:  # the target beats every other class
            A = np.array([difference_row(t, c) for c in others])
            lower = np.array([required(t, c) - (base[t] - base[c]) for c in others])
            return sparse.csr_array(A), lower, np.full(len(others), np.inf), 0
        # A PN: some other class beats the explained one by kappa.
        kappa = problem.kappa
        if kappa > 0 and not ensemble.is_probability:
            kappa = np.log((1 + kappa) / (1 - kappa)) / ensemble.raw_binary_slope
        needs = [kappa + required(c, t) - (base[c] - base[t]) for c in others]
        if len(others) == 1:
            return (sparse.csr_array(difference_row(others[0], t)[None]), np.array(needs),
                    np.array([np.inf]), 0)
        # Selectors s_c: where s_c = 1, class c beats t; big-M relaxes the others.
        n_sel = len(others)
        A = np.zeros((n_sel + 1, structure.n_var + n_sel))
        lower = np.zeros(n_sel + 1)
        for position, (c, need) in enumerate(zip(others, needs)):
            row = difference_row(c, t)
            lowest = _lowest(row[structure.leaf_index], structure.leaf_tree)
            big_m = max(0.0, need - lowest) + 1.0
            A[position, :structure.n_var] = row
            A[position, structure.n_var + position] = -big_m
            lower[position] = need - big_m
        A[n_sel, structure.n_var:] = 1.0
        lower[n_sel] = 1.0
        upper = np.full(n_sel + 1, np.inf)
        return sparse.csr_array(A), lower, upper, n_sel


def _lowest(leaf_values, leaf_tree):
    """The lowest sum over trees of one leaf value each."""
    lowest = np.full(leaf_tree.max() + 1, np.inf)
    np.minimum.at(lowest, leaf_tree, leaf_values)
    return float(lowest.sum())
