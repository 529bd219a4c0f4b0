"""The gradient-free search: for models whose gradients vanish and for categorical columns.

Trees, boosting and k-NN have piecewise constant probabilities: their gradient is zero almost
everywhere, so FISTA cannot move. Category codes cannot be interpolated at all. This search
needs only the model's probabilities, batched over all instances of a batch in each call:

1. **Start from valid answers.** A PN or counterfactual starts from the training rows (given
   to ``fit``) that the model puts in a wanted class, each first made admissible for the
   instance: immutable features and moves the mode or ``directions`` forbid are set back to
   the instance's values, numeric values clipped to the feature range. Those made of the 350
   rows nearest to the instance and of the 50 the model is most sure of are ranked in the
   explainer's distance; the ``n_candidates`` nearest are asked, more in rounds while fewer than
   ``n_starts`` are valid, all the rest where none is; the ``n_starts`` nearest valid ones are
   refined (of each other class, where any of several is wanted: a PN, or a counterfactual of
   any other class, of a model of more than two classes). A PN also tries its farthest
   admissible answer. A PP starts from the instance itself (it keeps everything).
2. **Undo what is not needed.** Greedily, every change is tried reverted alone (to the
   instance's value; for a PP, to the no-information value: the feature is removed); all the
   reverts that stay valid are tried together, else the one saving most distance is kept.
   It ends when no change can be reverted alone: no redundant change is left.
3. **Shrink what is left.** Each remaining numeric change is bisected towards its unchanged
   value, as far as the answer stays valid (integer columns stay whole numbers).
   On tree models (``points``) a PN's or counterfactual's changes are moved to the split
   thresholds instead, and more answers are built on them (:mod:`skcem._polish`).

A missing cell of the instance (NaN) never moves and the answer keeps it missing; a missing
cell of a training row is no value to move to (the instance's value stays).

On tree models the answers of the rows asked again in one search are remembered (the
polish asks a tenth to a half of its rows more than once), where the model's rows cost more
than finding them again (:class:`_Answers`; a tree model's answer to a row does not depend
on the other rows of its call, so the answers are the same).

Every answer is valid by construction (each step keeps validity, asked of the model); the best
start of each instance is returned in the :class:`~skcem._fista.SearchResult` of the gradient
search, so that both strategies give the explainers the same thing. Asked for several answers
per instance (``n_answers``), it refines more starts (``2 * n_answers``) and sparse answers
(one or two moves alone), and keeps distinct ones, closest first, preferring answers that
change few features, other ones than those kept (:func:`choose_diverse`); on tree models
the polish is then lighter (:func:`~skcem._polish.polish_on_splits`, ``several``).

With a plausibility term (``SearchProblem.plausibility``, see :mod:`skcem._plausibility`)
the steps minimise the distance plus that term: the starts refined are the cheapest of more
valid candidates, and as many again the cheapest of the nearest rows of a wanted class that
the constraints leave whole (rows of the data, among their class), a revert or a bisection
step that costs more plausibility than it saves distance is refused, and the cheapest answer
is kept.
"""

import time
import warnings
from dataclasses import dataclass
from functools import cached_property
from itertools import repeat

import numpy as np
from scipy.spatial.distance import cdist
from threadpoolctl import threadpool_limits

from ._fista import SearchResult, _rows
from ._elastic import MAX_TRIAL_NUMBERS, distinct_rows
from ._modes import MODES, Mode
from ._polish import polish_on_splits
from ._warnings import catching_warnings
from ._wrappers import probability_inner

# Distances computed at once when ranking the pool (32 MB of float64).
_MAX_RANKED_VALUES = 2**22
# Pool rows made admissible and ranked per instance: the nearest (before the constraints),
# and the ones the model is most sure of, which resist what the constraints undo.
_PRESELECTED = 400
_MOST_CONFIDENT = 50
# Answers with at most this many numeric changes shrink them one by one only.
_ONE_BY_ONE = 4
# Starts refined per answer asked, when several are: refined starts often end at the same
# answer (the reverts undo what told them apart), so more are refined than kept.
_STARTS_PER_ANSWER = 2
# Starts refined for one answer of a smooth model (no split points): on Adult's logistic and
# MLP Pipelines, 8 instead of 3 gave answers 1-8% closer on average, none farther, for 15-45%
# more model rows (a tree model's polish on its split points costs more per start).
_SMOOTH_STARTS = 8
# Two answers that change the same features, numeric ones by amounts this close (relative to
# the larger change) and categorical ones to the same category, are one answer.
_NEAR_COPY = 0.1
# choose_diverse's first pass: answers on fresh features that change at most this many.
_FRESH_CHANGES = 2
# Sparse answers (one or two moves) refined per answer asked.
_SPARSE_PER_ANSWER = 3
# Valid pairs of moves refined for one answer of a smooth model, per instance.
_PAIRS_KEPT = 12
# Steps of a PP's removal path at most (see NeighborSearch._removal_paths).
_MAX_REMOVALS = 64
# With a plausibility term: valid candidates compared per start (n_starts) refined.
_PLAUSIBLE_CANDIDATES = 10
# Numbers (rows times features) of one model call of the gradient-free search: 2**23, 10,700
# MNIST rows.
_MAX_CALL_NUMBERS = 2**23
# Valid single reverts of an answer up to which, where they are not valid together, the
# revert undoes the best one a round (more: the most of the best that are valid together).
_REVERTS_ONE_AT_A_TIME = 32
# Moves paired by the sparse answers of one instance at most (pairs grow as their square:
# an image's 1,568 moves to its pixels' range ends would make 1.2 million pairs).
_MAX_PAIRED_MOVES = 64
# With a plausibility term: rows of a wanted class left whole by the constraints, compared
# per instance (the cheapest n_starts are refined too).
_WHOLE_CANDIDATES = 10


def choose_diverse(candidates, difference, categorical, n_answers):
    """Positions of up to ``n_answers`` distinct rows of ``candidates``, closest first.

    The first candidate (the closest) is always kept. The others are taken fewest changed
    features first (then closest), in passes: first those that change at most
    ``_FRESH_CHANGES`` features, none of them changed by an answer kept; then those that
    change another set of features than each answer kept; then any other one left that is
    no near copy of one kept: that changes the same features to another category, or a
    numeric one by more than ``_NEAR_COPY`` of the larger of the two changes, and not only
    farther (or only closer) the same way in each.
    Sparse answers that change other features make a set whose pairs differ in many features
    (DiCE's count diversity) while each changes few; a fresh answer that changes many would
    buy diversity with sparsity.

    Parameters
    ----------
    candidates : ndarray of shape (n_candidates, n_features)
        One instance's valid answers, closest first.
    difference : ndarray of shape (n_candidates, n_features)
        Each answer's change (1.0 for a changed category, 0 for none).
    categorical : ndarray of bool, shape (n_features,)
        Categorical features.
    n_answers : int
        How many to keep at most.

    Returns
    -------
    positions : list of int
        The first candidate's position first, then the others' in increasing order.
    """
    changed = np.abs(difference) > 0
    # Rows compared by their bytes: identical answers (missing cells included) are one.
    keys = [row.tobytes() for row in np.where(candidates == 0, 0.0, candidates)]
    change_sets = [row.tobytes() for row in changed]
    order = 1 + np.argsort(changed[1:].sum(axis=1), kind="stable")
    chosen, kept_rows, kept_sets = [0], {keys[0]}, {change_sets[0]}
    touched = changed[0].copy()

    def take(position):
        chosen.append(position)
        kept_rows.add(keys[position])
        kept_sets.add(change_sets[position])
        touched[:] |= changed[position]

    n_changed = changed.sum(axis=1)
    for fresh_features_only in (True, False):
        for position in order:
            if len(chosen) == n_answers:
                break
            if keys[position] in kept_rows or change_sets[position] in kept_sets:
                continue
            if fresh_features_only and (n_changed[position] > _FRESH_CHANGES
                                        or np.any(changed[position] & touched)):
                continue
            take(position)
    def near_copy(position, kept):
        if change_sets[position] != change_sets[kept]:
            return False
        same = changed[position]
        if np.any(candidates[position, same & categorical]
                  != candidates[kept, same & categorical]):
            return False
        numeric = same & ~categorical
        a, b = difference[position, numeric], difference[kept, numeric]
        scale = np.maximum(np.abs(a), np.abs(b))
        if np.all(np.abs(a - b) <= _NEAR_COPY * scale):
            return True
        # The same moves, one farther in every feature: nothing the closer one does not offer
        # (on a tree model, often the very same leaves).
        same_way = np.all(np.sign(a) == np.sign(b))
        return bool(same_way and (np.all(np.abs(a) >= np.abs(b))
                                  or np.all(np.abs(a) <= np.abs(b))))

    for position in order:
        if len(chosen) == n_answers:
            break
        if keys[position] not in kept_rows and \
                not any(near_copy(position, kept) for kept in chosen):
            take(position)
    return chosen[:1] + sorted(chosen[1:])


def is_piecewise_constant(estimator):
    """Whether a scikit-learn model's probabilities are piecewise constant in its input:
    trees, forests, boosting and nearest neighbours, and soft votes or stacks of them (the
    last step of a Pipeline decides)."""
    from sklearn.base import is_classifier
    from sklearn.ensemble import (AdaBoostClassifier, BaggingClassifier,
                                  GradientBoostingClassifier, HistGradientBoostingClassifier,
                                  StackingClassifier, VotingClassifier)
    from sklearn.ensemble._forest import BaseForest
    from sklearn.neighbors import KNeighborsClassifier, RadiusNeighborsClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.tree import BaseDecisionTree

    if not hasattr(estimator, "get_params"):
        return False  # not a scikit-learn estimator: the probe decides
    estimator = probability_inner(estimator)
    if isinstance(estimator, Pipeline):
        return is_piecewise_constant(estimator[-1])
    if _is_boosted_trees_of_another_library(estimator):
        return True
    inner = getattr(estimator, "estimator", None)
    if isinstance(estimator, (AdaBoostClassifier, BaggingClassifier)):
        return inner is None or is_piecewise_constant(inner)
    if isinstance(estimator, (VotingClassifier, StackingClassifier)):
        # soft votes of trees; a stack whose final step sees their outputs alone
        members = [member for _, member in estimator.estimators if member != "drop"]
        return bool(members) and not getattr(estimator, "passthrough", False) and \
            all(is_piecewise_constant(member) for member in members)
    return is_classifier(estimator) and isinstance(estimator, (
        BaseDecisionTree, BaseForest, GradientBoostingClassifier,
        HistGradientBoostingClassifier, KNeighborsClassifier, RadiusNeighborsClassifier))


def _is_boosted_trees_of_another_library(estimator):
    """LightGBM's, XGBoost's and CatBoost's tree classifiers, told without importing them.

    Their many thresholds lie close to the training values (LightGBM's between adjacent
    bins), so numerical gradients at training rows are often not zero, and the probe of
    :func:`skcem._contrastive` would send them to the gradient search: on breast cancer a
    30-tree LightGBM took 49 s for five counterfactuals there against 0.7 s here.
    LightGBM's linear trees and XGBoost's linear booster are not piecewise constant.
    """
    module = type(estimator).__module__.split(".")[0]
    name = type(estimator).__name__
    if module == "lightgbm" and name == "LGBMClassifier":
        return not estimator.get_params().get("linear_tree", False)
    if module == "xgboost" and name in ("XGBClassifier", "XGBRFClassifier"):
        return estimator.get_params().get("booster") in (None, "gbtree", "dart")
    return module == "catboost" and name == "CatBoostClassifier"


@dataclass(frozen=True)
class CandidatePool:
    """Rows the search may start from: the data given to ``fit`` and the model's classes.

    ``Z`` is in the search's numbers (category codes); ``pred`` holds class indices and
    ``confidence`` the model's probability of that class.
    """

    Z: np.ndarray
    pred: np.ndarray
    confidence: np.ndarray

    @cached_property
    def typical(self):
        """Column medians, missing values left out (0 for a column without values)."""
        with catching_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-missing columns
            return np.nan_to_num(np.nanmedian(self.Z, axis=0))

    @cached_property
    def complete(self):
        """``Z`` with its missing cells at :attr:`typical`, for ranking (``Z`` without any)."""
        missing = np.isnan(self.Z)
        return np.where(missing, self.typical, self.Z) if missing.any() else self.Z


class NeighborSearch:
    """Callable with the signature and result of :func:`skcem._fista.solve`.

    Parameters
    ----------
    pool : CandidatePool
    whole : ndarray of bool, shape (n_features,)
        Columns kept whole numbers (category codes and integer columns).
    n_candidates : int
        Candidates asked per instance in each round.
    n_rounds : int
        Rounds of candidates; then an instance without a valid one asks all the rest.
    n_starts : int
        Valid candidates refined per instance (for one answer of a smooth model, without
        ``points``, at least ``_SMOOTH_STARTS``); the best result is kept.
    n_bisections : int
        Bisection steps when shrinking a numeric change.
    max_shrunk : int
        Numeric changes shrunk one by one per answer (the largest first); beyond, all are
        shrunk together only.
    n_answers : int
        Distinct answers kept per instance (``SearchResult.answers`` when more than one).
        With more than one, at least ``2 * n_answers`` starts are refined.
    points : SplitPoints or None
        A tree model's split points (:func:`skcem._polish.points_of`): a PN's or
        counterfactual's numeric changes are then moved to them instead of bisected, and
        more answers are built on them (:func:`skcem._polish.polish_on_splits`).
    joint : bool
        Whether the polish on split points also runs its repairs.
    leaves : LeafBoxes or None
        A single decision tree's leaf boxes (:mod:`skcem._leaf_starts`): the nearest points
        of the cheapest ones of a wanted class are starts too.
    """

    def __init__(self, pool, whole, *, n_candidates=20, n_rounds=5, n_starts=3,
                 n_bisections=7, max_shrunk=32, n_answers=1, points=None, joint=True,
                 leaves=None):
        self.pool = pool
        self.whole = whole
        self.n_candidates = n_candidates
        self.n_rounds = n_rounds
        self.n_starts = n_starts
        self.n_bisections = n_bisections
        self.max_shrunk = max_shrunk
        self.n_answers = n_answers
        self.points = points
        self.joint = joint
        self.leaves = leaves

    @property
    def _n_refined(self):
        """Starts refined per instance."""
        if self.n_answers == 1:
            return self.n_starts if self.points is not None else \
                max(self.n_starts, _SMOOTH_STARTS)
        return max(self.n_starts, _STARTS_PER_ANSWER * self.n_answers)

    def __call__(self, backend, problem, settings=None, progress=None):
        # Its model calls are many and small: OpenMP threads (histogram gradient boosting)
        # cost more to wake than the rows take, up to 100x on a busy machine.
        with threadpool_limits(limits=1, user_api="openmp"):
            return self._search(backend, problem, progress)

    def _search(self, backend, problem, progress):
        n, d = problem.x0.shape
        # A tree model's answer to a row does not depend on the other rows of its call: the
        # polish asks many rows again (a third to a half of them on PNs), remembered instead.
        search = _Batch(backend, problem, self.whole, memo=self.points is not None)
        searchable = np.ones(n, bool) if problem.searchable is None else problem.searchable
        if problem.mode.requires_change:
            owner, E = self._starts(search, np.flatnonzero(searchable))
            owner, E = self._add_farthest(search, np.flatnonzero(searchable), owner, E)
            owner, E = self._add_sparser_starts(search, np.flatnonzero(searchable), owner, E)
            if self.leaves is not None:  # a single tree: the nearest points of its leaves
                leaf_owner, leaf_E = self.leaves.starts(search, np.flatnonzero(searchable))
                owner, E = np.concatenate([owner, leaf_owner]), np.concatenate([E, leaf_E])
        else:  # a PP keeps everything to begin with
            owner = np.flatnonzero(searchable)
            E = problem.x0[owner].copy()
            valid = search.valid(E, owner)
            # An instance short of the margin kappa may reach it with less: removals first.
            path_owner, path_E = self._removal_paths(search, owner[~valid])
            owner = np.concatenate([owner[valid], path_owner])
            E = np.concatenate([E[valid], path_E])
        sparse_owner, sparse = owner[:0], E[:0]
        if searchable.any() and problem.mode.requires_change:
            # Answers of one or two moves (a number to its range's end, shrunk later, or a
            # category), which the starts, changing many features, may all miss. One answer
            # of a tree model: single moves only (its polish on the split points finds what
            # pairs would, and pairs tripled its rows); of a smooth model, the pairs too (on
            # Adult, PNs 7-35% closer on average, counterfactuals 1-2%, none farther).
            # (an instance without any start too: its answer may need a move no row of
            # the data shows, such as a PN's across the no-information value)
            sparse_owner, sparse = self._sparse_changes(
                search, owner, E, pairs=self.n_answers > 1 or self.points is None,
                instances=np.flatnonzero(searchable))
        if owner.size:
            E = search.revert(E, owner)
        if owner.size or sparse_owner.size:
            # Sparse answers are shrunk before any revert: a change moved to the end of its
            # range makes the other one redundant, which a revert would remove (the two
            # together may need less). Shrunk and reverted with the starts: the same calls.
            owner, E = np.concatenate([owner, sparse_owner]), np.concatenate([E, sparse])
        # The split points' polish minimises the distance alone: with a plausibility term,
        # the shrink and revert steps, which weigh it, polish instead. The polish also runs
        # without any start: its margin paths from the instances may find what no start
        # did (an instance's answer must not depend on the other instances of its batch).
        on_splits = self.points is not None and problem.mode.requires_change \
            and problem.plausibility is None
        if owner.size or on_splits:
            if not on_splits:
                E = search.shrink(E, owner, self.n_bisections, self.max_shrunk)
                E = search.revert(E, owner)
            else:
                # Identical answers would be polished alike: once is enough.
                owner, E = distinct_rows(owner, E)
                paths = np.flatnonzero(searchable)
                several = self.n_answers > 1
                if several:
                    # Many starts already: the margin paths (one model call per step) only
                    # for instances short of answers, and coarser scans (see _polish).
                    paths = paths[np.bincount(owner, minlength=n)[paths] < self.n_answers]
                # A single tree's leaf boxes hold its closest answers already.
                owner, E = polish_on_splits(search, E, owner, paths, self.points,
                                            several=several, joint=self.joint,
                                            spread=self.leaves is None)
                if several and owner.size:
                    # The closest answer of each instance polished as a single answer is:
                    # asking for several must not leave the closest farther than one.
                    best = search.cheapest(owner, E, 1)
                    best_owner, best_E = polish_on_splits(
                        search, E[best], owner[best], np.zeros(0, int), self.points,
                        joint=self.joint, spread=self.leaves is None)
                    owner = np.concatenate([owner, best_owner])
                    E = np.concatenate([E, best_E])
        if not problem.mode.requires_change and owner.size and d <= _MAX_PAIRED_MOVES:
            owner, E = self._regrown(search, owner, E)
        result = search.result(E, owner, n, self.n_answers)
        if progress is not None:
            progress(0, result.best_c, result.found)
        return result

    def _regrown(self, search, owner, E):
        """A PP's answers and, beside the cheapest of each instance, that answer with one
        more feature of the instance kept whole, then shrunk and reverted as the others.

        Features removed one at a time, then shrunk one at a time, stop at a PP that keeps
        much of one feature where a little of two would do (an elastic distance costs a
        large change more than two small ones): with the second feature kept, the first
        may shrink far further (on wine, a HistGradientBoosting's PPs a median 3.3 times
        the distance of the best on a grid before)."""
        best = search.cheapest(owner, E, 1)
        rows, answers = owner[best], E[best]
        x0 = search.problem.x0[rows]
        i, k = np.nonzero((answers != x0) & ~np.isnan(x0))
        if i.size == 0:
            return owner, E
        trials = answers[i].copy()
        trials[np.arange(i.size), k] = x0[i, k]
        valid = search.valid(trials, rows[i])
        if not valid.any():
            return owner, E
        trials, trial_owner = trials[valid], rows[i][valid]
        trials = search.shrink(trials, trial_owner, self.n_bisections, self.max_shrunk)
        trials = search.revert(trials, trial_owner)
        return np.concatenate([owner, trial_owner]), np.concatenate([E, trials])

    def _starts(self, search, rows):
        """The nearest valid admissible candidates: ``(owner, rows)`` with ``owner`` the
        instance of each."""
        problem = search.problem
        ranked, distances, classes = self._ranked(search, rows)
        owners, starts = [], []
        # Where any of several other classes is wanted, the nearest starts of each class
        # (the nearest of all may lie in one class, the closest answer in another).
        per_class = not problem.mode.wants_target and problem.n_classes > 2
        n_valid = np.zeros((rows.size, problem.n_classes if per_class else 1), dtype=int)
        # With a plausibility term, the cheapest of more valid candidates are refined.
        n_collected = self._n_refined if problem.plausibility is None \
            else max(self._n_refined, _PLAUSIBLE_CANDIDATES * self.n_starts)
        enough = n_collected * (problem.n_classes - 1 if per_class else 1)
        for r in range(self.n_rounds + 1):
            columns = slice(r * self.n_candidates, (r + 1) * self.n_candidates)
            wanted = n_valid.sum(axis=1) < enough
            if r == self.n_rounds:  # last: every candidate left, for instances with none
                columns = slice(columns.start, None)
                wanted = n_valid.sum(axis=1) == 0
            asked = wanted[:, None] & np.isfinite(distances[:, columns])
            if not asked.any():
                break
            i, k = np.nonzero(asked)
            candidates = ranked[i, columns.start + k]
            group = classes[i, columns.start + k] if per_class else np.zeros(i.size, int)
            valid = search.valid(candidates, rows[i])
            for position, row, g in zip(i[valid], candidates[valid], group[valid]):
                if n_valid[position, g] < n_collected:
                    owners.append(rows[position])
                    starts.append(row)
                    n_valid[position, g] += 1
        if problem.heavy is not None:
            # the nearest rows with the categories feature_weights makes costly kept: a
            # start that changes one may cost a hundred times one that moves numbers
            held = search.admissible(np.where(problem.heavy, problem.x0[rows][:, None], ranked),
                                     rows)
            kept = np.isfinite(distances) & np.any(held != problem.x0[rows][:, None], axis=2)
            i, k = np.nonzero(kept)
            if i.size:
                candidates = held[i, k]
                valid = search.valid(candidates, rows[i])
                owner, candidate = distinct_rows(rows[i][valid], candidates[valid])
                owner, candidate = _nearest(search, owner, candidate, n_collected)
                owners.extend(owner.tolist())
                starts.extend(list(candidate))
        if not starts:
            return np.empty(0, dtype=int), np.empty((0, problem.x0.shape[1]))
        owners, starts = np.asarray(owners), np.asarray(starts)
        if problem.plausibility is not None:
            # The cheapest of the nearest, and the cheapest of the rows of the class that
            # the constraints leave whole: those lie among their class.
            keep = search.cheapest(owners, starts, self._n_refined)
            whole_owners, whole_rows = self._whole_starts(search, rows)
            extra = search.cheapest(whole_owners, whole_rows, self._n_refined)
            owners = np.concatenate([owners[keep], whole_owners[extra]])
            starts = np.concatenate([starts[keep], whole_rows[extra]])
        return owners, starts

    def _whole_starts(self, search, rows):
        """``(owner, rows)``: per instance, the nearest valid pool rows of a wanted class
        that the constraints leave whole (every cell that may move keeps its value once made
        admissible), ``_WHOLE_CANDIDATES`` at most.

        The nearest rows made admissible (:meth:`_ranked`) are mostly the instance with a
        few of a row's values: a PN's rule sets back every move towards the no-information
        value, so a row of the class (at the most frequent categories) becomes the instance
        again, among rows of the instance's class. A row left whole is a row of the data.
        """
        problem = search.problem
        pool = self.pool
        n_wanted = _WHOLE_CANDIDATES
        d = problem.x0.shape[1]
        frozen = problem.frozen(rows)
        frozen = np.zeros((rows.size, d), bool) if frozen is None \
            else np.broadcast_to(frozen, (rows.size, d))
        owners, candidates = [], []
        for group, members in _wanted_members(problem, pool, rows):
            Z = pool.Z[members]
            block = max(1, _MAX_RANKED_VALUES // (members.size * max(1, d)))
            for start in range(0, group.size, block):
                part = group[start:start + block]
                admissible = search.admissible(np.broadcast_to(Z, (part.size,) + Z.shape),
                                               rows[part])
                # A training row's missing cell takes the instance's value: no move.
                kept = (admissible == Z) | np.isnan(Z) | frozen[part][:, None]
                dist = np.where(kept.all(axis=2), search.distance(admissible, rows[part]),
                                np.inf)
                # Twice as many as wanted are asked: some may be invalid once made whole.
                take = min(2 * n_wanted, members.size)
                order = np.argsort(dist, axis=1, kind="stable")[:, :take]
                for position in range(part.size):
                    nearest = order[position][np.isfinite(dist[position, order[position]])]
                    owners.append(np.full(nearest.size, rows[part[position]]))
                    candidates.append(admissible[position, nearest])
        if not owners:
            return np.empty(0, dtype=int), np.empty((0, d))
        owners, candidates = np.concatenate(owners), np.concatenate(candidates)
        valid = np.flatnonzero(search.valid(candidates, owners))
        # The first valid ones of each instance (nearest first, instances in blocks).
        order = valid[np.argsort(owners[valid], kind="stable")]
        starts_at = np.searchsorted(owners[order], owners[order])
        kept = order[np.arange(order.size) - starts_at < n_wanted]
        return owners[kept], candidates[kept]

    def _removal_paths(self, search, rows):
        """``(owner, answers)``: PPs of the instances ``rows``, whose own rows are not valid
        (short of the margin ``kappa``), by greedy removals: at each step every kept feature
        is tried removed (set to its no-information value), and the removal that makes the
        row valid, else the one that adds most margin, is made; a path without any ends."""
        problem = search.problem
        Z = problem.x0[rows].copy()
        if rows.size == 0:
            return rows, Z
        _, proba = search.ask(Z, rows)
        margin = problem.mode.margin(proba, problem.target[rows], problem.kappa)
        ok = np.zeros(rows.size, bool)
        # As many paths at once as their trials (a row per kept feature) fit in
        # _MAX_CALL_NUMBERS numbers: an image's trials are a row per pixel.
        chunk = max(1, _MAX_CALL_NUMBERS // max(Z.shape[1] ** 2, 1))

        def step(open_rows):
            """One removal of the paths ``open_rows`` (in place); those that go on."""
            _, _, i, _, trials = search.revert_trials(Z[open_rows], rows[open_rows])
            if i.size == 0:
                return open_rows[:0]
            trial_ok, trial_proba = search.ask(trials, rows[open_rows[i]])
            gain = problem.mode.margin(trial_proba, problem.target[rows[open_rows[i]]],
                                       problem.kappa) - margin[open_rows[i]]
            order = np.lexsort((-gain, ~trial_ok, i))  # by row: valid first, then most gain
            first = order[np.r_[True, i[order][1:] != i[order][:-1]]]
            first = first[trial_ok[first] | (gain[first] > 0)]
            moved = open_rows[i[first]]
            Z[moved] = trials[first]
            margin[moved] += gain[first]
            ok[moved] = trial_ok[first]
            return moved[~trial_ok[first]]

        open_rows = np.arange(rows.size)
        for _ in range(min(Z.shape[1], _MAX_REMOVALS)):
            if open_rows.size == 0:
                break
            open_rows = np.concatenate([step(open_rows[start:start + chunk])
                                        for start in range(0, open_rows.size, chunk)])
        return rows[ok], Z[ok]

    def _sparse_changes(self, search, owner, E, pairs=True, instances=None):
        """``(owner, rows)``: the valid answers that make one or two moves alone (one
        without ``pairs``); for several answers, at most ``_SPARSE_PER_ANSWER * n_answers``
        per instance (singles first).

        A move sets a categorical feature to its value in one of the instance's starts, or a
        numeric feature to either end of its range (shrunk later, so that the starts' own
        numeric values would add trials, not answers); every other allowed category of a
        categorical feature is also tried alone (not in pairs: too many), and an instance of
        more than ``_MAX_PAIRED_MOVES`` moves (an image) tries them alone. Answers that change
        one or two features are sparse alternatives to the starts, which change many.
        """
        problem = search.problem
        x0 = problem.x0
        # Moves (instance, feature, value), distinct.
        i, j = np.nonzero((np.abs(search.difference(E, owner)) > 0) & search.categorical)
        move_owner, move_feature, move_value = [owner[i]], [j], [E[i, j]]
        instances = np.unique(owner if instances is None else np.r_[owner, instances])
        for rows, columns, far in _moves_to_the_bounds(search, instances):
            value = far[np.arange(rows.size), columns]
            moved = value != x0[rows, columns]
            move_owner.append(rows[moved])
            move_feature.append(columns[moved])
            move_value.append(value[moved])
        moves = np.unique(np.column_stack([np.concatenate(move_owner),
                                           np.concatenate(move_feature),
                                           np.concatenate(move_value)]), axis=0)
        if moves.size == 0:
            return owner[:0], E[:0]
        move_owner, move_feature = moves[:, 0].astype(int), moves[:, 1].astype(int)
        move_value = moves[:, 2]
        # Singles, and pairs of moves of one instance on two features.
        bounds = np.flatnonzero(np.r_[True, move_owner[1:] != move_owner[:-1], True])
        first, second = [np.arange(len(moves))], [np.arange(len(moves))]
        for begin, stop in zip(bounds[:-1], bounds[1:]):
            if not pairs or stop - begin > _MAX_PAIRED_MOVES:  # an image's pixels: singles
                continue
            a, b = np.triu_indices(stop - begin, k=1)
            a, b = a + begin, b + begin
            other = move_feature[a] != move_feature[b]
            first.append(a[other])
            second.append(b[other])
        first, second = np.concatenate(first), np.concatenate(second)
        # Every other category of each categorical feature, alone: single moves the starts
        # may not show (tried after the moves' singles, before their pairs; not paired).
        extra = np.column_stack(_category_moves(search, instances))
        known = {tuple(move) for move in moves}
        extra = extra[[tuple(move) not in known for move in extra]]
        n_singles = len(moves)
        single_owner = np.concatenate([move_owner, extra[:, 0].astype(int)])
        single_moves = (np.concatenate([move_feature, extra[:, 1].astype(int)]),
                        np.concatenate([move_value, extra[:, 2]]))
        pair_owner = move_owner[first[n_singles:]]
        pair_moves = [(move_feature[moved[n_singles:]], move_value[moved[n_singles:]])
                      for moved in (first, second)]
        if self.n_answers > 1:
            # The first valid ones of each instance, singles first.
            return _valid_trials(
                search, np.concatenate([single_owner, pair_owner]),
                [(np.concatenate([single_moves[0], features]),
                  np.concatenate([single_moves[1], values])) for features, values in pair_moves],
                _SPARSE_PER_ANSWER * self.n_answers)
        # One answer: every valid single (a range's end is cheap only once shrunk), and the
        # first _PAIRS_KEPT valid pairs of an instance (a pair with a move valid alone too:
        # shrunk, its two moves may cost less than one; but every valid pair cost a
        # 32-feature table 11 times the time of the singles for answers 0.7% closer)
        singles = _valid_trials(search, single_owner, [single_moves])
        paired = _valid_trials(search, pair_owner, pair_moves, _PAIRS_KEPT)
        owners = np.concatenate([singles[0], paired[0]])
        order = np.argsort(owners, kind="stable")
        return owners[order], np.concatenate([singles[1], paired[1]])[order]

    def _add_farthest(self, search, rows, owner, E):
        """Instances with fewer than ``n_starts`` valid starts also try the farthest admissible
        answer of the mode, when it has one (a PN's additions pushed to the feature range)."""
        problem = search.problem
        lacking = rows[np.bincount(owner, minlength=problem.x0.shape[0])[rows]
                       < self._n_refined]
        if lacking.size == 0:
            return owner, E
        farthest = problem.mode.farthest(problem.x0[lacking],
                                         _rows(problem.no_info_val, lacking),
                                         _rows(problem.lower, lacking),
                                         _rows(problem.upper, lacking))
        if farthest is None:
            return owner, E
        farthest = np.where(search.categorical, problem.x0[lacking],
                            search.snap_inward(farthest, problem.x0[lacking]))
        farthest = search.admissible(farthest, lacking)
        valid = search.valid(farthest, lacking)
        return (np.concatenate([owner, lacking[valid]]),
                np.concatenate([E, farthest[valid]]))

    def _add_sparser_starts(self, search, rows, owner, E):
        """Instances still without a valid start (or with only starts that change a category
        ``feature_weights`` makes heavy) try sparser ones: where the mode has no rule
        of its own (a counterfactual), the starts a PN would have with the pool's medians as
        its no-information values (its ranked candidates with only the numeric moves away
        from the medians kept, and every numeric feature pushed to the end of its range away
        from them); and single moves (each numeric feature to either end of its range, each
        categorical one to each other category). The valid ones (at most
        ``_SPARSE_PER_ANSWER`` per instance, nearest first) are kept.

        A start is a training row made admissible, which changes many features at once; on a
        model whose class needs one or two features moved far (a capital gain, behind a
        polynomial of its logarithm) none of them may stay valid while a sparser row does."""
        problem = search.problem
        counted = owner
        if problem.heavy is not None:  # starts that change a heavy category count for none
            counted = owner[~np.any(problem.heavy & (E != problem.x0[owner]), axis=1)]
        lacking = rows[np.bincount(counted, minlength=problem.x0.shape[0])[rows] == 0]
        if lacking.size == 0:
            return owner, E
        x0 = problem.x0
        trial_owner, trials = [], []
        if type(problem.mode).project is Mode.project:  # a mode without a rule of its own
            ranked, distances, _ = self._ranked(search, lacking)
            base = x0[lacking][:, None, :]
            sparser = np.where(search.categorical, ranked,
                               MODES["PN"].project(ranked, base, self.pool.typical))
            sparser = search.admissible(sparser, lacking)
            keep = np.isfinite(distances) & np.any(sparser != base, axis=2)
            position, k = np.nonzero(keep)
            trial_owner.append(lacking[position])
            trials.append(sparser[position, k])
            # and a PN's farthest start: every numeric feature pushed to the end of its range
            # away from the medians
            farthest = MODES["PN"].farthest(x0[lacking], self.pool.typical,
                                            _rows(problem.lower, lacking),
                                            _rows(problem.upper, lacking))
            farthest = np.where(search.categorical, x0[lacking],
                                search.snap_inward(farthest, x0[lacking]))
            trial_owner.append(lacking)
            trials.append(search.admissible(farthest, lacking))
        # (on wide tables, each chunk's valid ones only, the nearest: the moves hold a row
        # per instance and feature)
        wide = 2 * lacking.size * int(np.sum(~search.categorical)) * x0.shape[1] \
            > MAX_TRIAL_NUMBERS
        for moved_rows, _, far in _moves_to_the_bounds(search, lacking):
            changed = np.any(far != x0[moved_rows], axis=1)
            moved_rows, far = moved_rows[changed], far[changed]
            if wide:
                valid = search.valid(far, moved_rows)
                moved_rows, far = _nearest(search, moved_rows[valid], far[valid],
                                           _SPARSE_PER_ANSWER)
            trial_owner.append(moved_rows)
            trials.append(far)
        category_owner, feature, value = _category_moves(search, lacking)
        singles = x0[category_owner].copy()
        singles[np.arange(category_owner.size), feature] = value
        trial_owner = np.concatenate(trial_owner + [category_owner]).astype(int)
        trials = np.concatenate(trials + [singles])
        if trial_owner.size == 0:
            return owner, E
        trial_owner, trials = distinct_rows(trial_owner, trials)
        valid = search.valid(trials, trial_owner)
        kept_owner, kept = _nearest(search, trial_owner[valid], trials[valid],
                                    _SPARSE_PER_ANSWER)
        return np.concatenate([owner, kept_owner]), np.concatenate([E, kept])

    def _ranked(self, search, rows):
        """Per instance, the admissible versions of the wanted pool rows, nearest first.

        The pool is first narrowed to the rows nearest to the instance in the L1 part of the
        distance (one ``cdist`` call) and the ones the model is most sure of; only those are
        made admissible.
        """
        problem = search.problem
        pool = self.pool
        depth = _PRESELECTED
        d = problem.x0.shape[1]
        ranked = np.zeros((rows.size, depth, d))
        distances = np.full((rows.size, depth), np.inf)
        classes = np.zeros((rows.size, depth), dtype=int)
        # Missing cells, either side, are ranked as the pool's medians (made admissible,
        # they keep the instance's value).
        x0 = problem.x0[rows]
        complete_rows = x0 if problem.missing is None else \
            np.where(problem.missing[rows], pool.typical, x0)
        for group, members in _wanted_members(problem, pool, rows):
            block = max(1, _MAX_RANKED_VALUES // (members.size * max(1, d)))
            for start in range(0, group.size, block):
                part = group[start:start + block]
                nearby = search.l1_distances(complete_rows[part], pool.complete[members])
                keep = min(_PRESELECTED - _MOST_CONFIDENT, members.size)
                nearby = members[np.argpartition(nearby, keep - 1, axis=1)[:, :keep]]
                sure = members[np.argsort(-pool.confidence[members], kind="stable")
                               [:_MOST_CONFIDENT]]
                nearby = np.hstack([nearby, np.broadcast_to(sure, (part.size, sure.size))])
                keep = nearby.shape[1]
                candidates = search.admissible(pool.Z[nearby], rows[part])
                dist = search.distance(candidates, rows[part])
                changed = np.any(candidates != problem.x0[rows[part]][:, None], axis=2)
                dist = np.where(changed, dist, np.inf)
                take = min(depth, keep)
                order = np.argsort(dist, axis=1, kind="stable")[:, :take]
                local = np.arange(part.size)[:, None]
                ranked[part, :take] = candidates[local, order]
                distances[part, :take] = dist[local, order]
                classes[part, :take] = pool.pred[nearby][local, order]
        return ranked, distances, classes


def toward_whole(values, own, whole):
    """``values`` of whole-number columns (``whole``) rounded towards the instance's
    ``own`` (which stays inside a range that both lie in)."""
    return np.where(whole, own + np.trunc(values - own), values)


def _moves_to_the_bounds(search, instances):
    """Per end of the range, ``(owner, feature, rows)``: each instance with one numeric
    feature set to that end, made admissible (directions, immutable features, the mode's
    moves); in chunks of at most ``MAX_TRIAL_NUMBERS`` numbers (a row per instance and
    feature: on 20,000 features one instance's rows alone hold 400 million)."""
    problem = search.problem
    x0 = problem.x0
    numeric = np.flatnonzero(~search.categorical)
    if numeric.size == 0:
        return
    chunk = max(1, MAX_TRIAL_NUMBERS // x0.shape[1])
    for bound in (problem.lower, problem.upper):
        all_owners = np.repeat(instances, numeric.size)
        all_columns = np.tile(numeric, instances.size)
        for start in range(0, all_owners.size, chunk):
            owner = all_owners[start:start + chunk]
            columns = all_columns[start:start + chunk]
            ends = np.asarray(bound)[owner, columns] if np.ndim(bound) == 2 \
                else np.broadcast_to(bound, x0.shape[1:])[columns]
            own = x0[owner, columns]
            ends = toward_whole(ends, own, search.whole[columns])
            # only the moved cell to make admissible (the others are the instance's): a
            # cell's work, not a row's (on 2,000 features, most of a search's time)
            far = x0[owner].copy()
            far[np.arange(owner.size), columns] = search.admissible_values(ends, owner, columns)
            yield owner, columns, far


def _first_of_each(owner, order, keep):
    """Of ``order`` (positions grouped by their ``owner``), each owner's first ``keep``."""
    starts_at = np.searchsorted(owner[order], owner[order])
    return order[np.arange(order.size) - starts_at < keep]


def _nearest(search, owner, rows, keep):
    """Each instance's ``keep`` rows nearest to it (of ``rows`` owned by ``owner``)."""
    kept = _first_of_each(owner, np.lexsort((search.distance(rows, owner), owner)), keep)
    return owner[kept], rows[kept]


def _valid_trials(search, owner, moves, keep=None):
    """The valid ones of the trials ``x0[owner]`` with each ``(features, values)`` of
    ``moves`` set in them, ordered by instance (in the trials' order within one): each
    instance's first ``keep`` (all with None).

    Built and asked at most ``MAX_TRIAL_NUMBERS`` numbers at a time; the trials of an
    instance that has its ``keep`` are not asked."""
    x0 = search.problem.x0
    chunk = max(1, MAX_TRIAL_NUMBERS // x0.shape[1])
    found = np.zeros(len(x0), int)
    valid_owner, valid_rows = [owner[:0]], [x0[:0]]
    for start in range(0, owner.size, chunk):
        part = np.arange(start, min(start + chunk, owner.size))
        if keep is not None:
            part = part[found[owner[part]] < keep]
        if part.size == 0:
            continue
        rows = x0[owner[part]].copy()
        for features, values in moves:
            rows[np.arange(part.size), features[part]] = values[part]
        valid = search.valid(rows, owner[part])
        valid_owner.append(owner[part][valid])
        valid_rows.append(rows[valid])
        np.add.at(found, owner[part][valid], 1)
    valid_owner, valid_rows = np.concatenate(valid_owner), np.concatenate(valid_rows)
    order = np.argsort(valid_owner, kind="stable")
    if keep is not None:
        order = _first_of_each(valid_owner, order, keep)
    return valid_owner[order], valid_rows[order]


def _category_moves(search, instances):
    """``(owner, feature, value)``: each instance's categorical features set, one at a time,
    to each other category that the constraints allow (a frozen or missing cell: none)."""
    problem = search.problem
    x0 = problem.x0
    owners, features, values = [], [], []
    for j in np.flatnonzero(search.categorical):
        n_categories = int(np.max(np.asarray(problem.upper)[..., j])) + 1
        owner = np.repeat(instances, n_categories)
        trials = x0[owner].copy()
        trials[:, j] = np.tile(np.arange(n_categories), instances.size)
        value = search.admissible(trials, owner)[:, j]
        moved = (value != x0[owner, j]) & ~np.isnan(value) & ~np.isnan(x0[owner, j])
        owners.append(owner[moved])
        features.append(np.full(moved.sum(), j))
        values.append(value[moved])
    if not owners:
        return instances[:0], instances[:0], np.zeros(0)
    return np.concatenate(owners), np.concatenate(features), np.concatenate(values)


class _Batch:
    """One batch's constraints, distance and model questions, on rows owned by instances."""

    def __init__(self, backend, problem, whole, memo=False):
        self.backend = backend
        self.memo = _Answers() if memo else None
        self.problem = problem
        self.whole = whole
        n, d = problem.x0.shape
        self.categorical = np.zeros(d, bool) if problem.categorical is None \
            else problem.categorical
        self.background = np.broadcast_to(problem.background, (n, d))
        # What "unchanged" means: the instance for PN and CF, the background for a PP.
        self.base = np.asarray(problem.mode.perturbation_reference(problem.x0, self.background))
        self.l1 = np.broadcast_to(problem.l1_weight, (d,))
        self.l2 = np.broadcast_to(problem.l2_weight, (d,))
        self.n_calls = 0
        # per instance: an answer the model took was refused for a rare pair it created
        self.refused_for_pairs = np.zeros(n, bool)

    def l1_distances(self, A, B):
        """The distance's L1 part between each row of ``A`` and each of ``B`` (the square
        root of the L2 weights for a distance without L1 part), a change of category
        costing its weight: shape (len(A), len(B)).

        The sums of ``cdist``'s city-block distance between one-hot embeddings (half the
        weight in a category's slot), in their order, without building the embeddings: a
        column of thousands of categories made them gigabytes.
        """
        weight = np.where(self.l1 > 0, self.l1, np.sqrt(self.l2))
        numeric = ~self.categorical
        out = cdist(A[:, numeric] * weight[numeric], B[:, numeric] * weight[numeric],
                    "cityblock") if numeric.any() else np.zeros((len(A), len(B)))
        for j in np.flatnonzero(self.categorical):
            n_categories = int(np.max(np.asarray(self.problem.upper)[..., j])) + 1
            # an instance's category past the answers' ones (declared by its dtype, seen in
            # no row given to fit) in one more slot: unlike every row's
            a = np.minimum(A[:, j].astype(int), n_categories)
            b = np.minimum(B[:, j].astype(int), n_categories)
            half = (a[:, None] != b[None, :]) * (weight[j] / 2)
            out += half  # the two slots that differ, one after the other
            out += half
        return out

    def difference(self, E, owner):
        base = self.base[owner]
        if not self.categorical.any():
            return E - base
        return np.where(self.categorical, (E != base).astype(float), E - base)

    def feature_terms(self, E, owner):
        """Each feature's term of the distance of the rows ``E`` (of instances ``owner``)."""
        diff = self.difference(E, owner if E.ndim == 2 else owner[:, None])
        # the same numbers without the term of a weight that is 0 everywhere (an L1 or L2
        # distance): the distances of wide trials are a large part of the search
        if not self.l2.any():
            return self.l1 * np.abs(diff)
        if not self.l1.any():
            return self.l2 * diff**2
        return self.l2 * diff**2 + self.l1 * np.abs(diff)

    def distance(self, E, owner):
        return np.sum(self.feature_terms(E, owner), axis=-1)

    def step_cost(self, E, owner, feature, value):
        """What setting the cell ``feature`` of each row of ``E`` (of instances ``owner``) to
        ``value`` adds to its distance: one term each, where the distance of whole trial
        rows would read every feature."""
        at = np.arange(len(E))

        def term(values):
            base = self.base[owner, feature]
            diff = np.where(self.categorical[feature], (values != base).astype(float),
                            values - base)
            return self.l2[feature] * diff**2 + self.l1[feature] * np.abs(diff)

        return term(value) - term(E[at, feature])

    def cost(self, E, owner):
        """What the search minimises: the distance, plus the plausibility term where the
        problem has one (:class:`~skcem._plausibility.ClassNeighborhood`)."""
        distance = self.distance(E, owner)
        term = self.problem.plausibility
        if term is None:
            return distance
        return distance + term.penalty(E, self.problem.target[owner],
                                       self.problem.mode.wants_target)

    def admissible(self, candidates, owner):
        """``candidates`` (rows, or a pool broadcast against ``owner``) with every change the
        constraints forbid set back to the instance's value, and so the training rows'
        missing cells."""
        problem = self.problem
        shape = (slice(None),) if candidates.ndim == 2 else (slice(None), None)
        x0 = problem.x0[owner][shape]
        candidates = np.where(np.isnan(candidates), x0, candidates)
        v = _rows(problem.no_info_val, owner)[shape] if np.ndim(problem.no_info_val) == 2 \
            else problem.no_info_val
        mode = problem.mode
        out = np.where(self.categorical, mode.project_categorical(candidates, x0, v),
                       mode.project(candidates, x0, v))
        out = np.where(problem.against_directions(out, x0), x0, out)
        out = np.where(problem.forbidden_codes(out, x0), x0, out)
        frozen = problem.frozen(owner)
        if frozen is not None:
            out = np.where(frozen[shape] if frozen.ndim == 2 else frozen, x0, out)
        lower = _rows(problem.lower, owner)[shape] if np.ndim(problem.lower) == 2 \
            else problem.lower
        upper = _rows(problem.upper, owner)[shape] if np.ndim(problem.upper) == 2 \
            else problem.upper
        clipped = np.clip(out, lower, upper)
        # Clipping may undo a mode's rule (a PN's value beyond the range's end, clipped back
        # to within its band around the no-information value) or a direction: checked again.
        clipped = mode.project(clipped, x0, v)
        clipped = np.where(problem.against_directions(clipped, x0), x0, clipped)
        return np.where(self.categorical | (out == x0), out, clipped)

    def admissible_values(self, values, owner, feature):
        """:meth:`admissible` of one cell per row, without the rows: ``values`` for the
        features ``feature`` of the instances ``owner``, in rows whose other cells are
        admissible already (which :meth:`admissible` leaves as they are)."""
        problem = self.problem
        d = problem.x0.shape[1]

        def cell(array):
            return np.asarray(array)[owner, feature] if np.ndim(array) == 2 \
                else np.broadcast_to(array, (d,))[feature]

        x0 = problem.x0[owner, feature]
        candidates = np.where(np.isnan(values), x0, values)
        v = cell(problem.no_info_val)
        mode = problem.mode
        categorical = self.categorical[feature]
        out = np.where(categorical, mode.project_categorical(candidates, x0, v),
                       mode.project(candidates, x0, v))
        directions = None if problem.directions is None else cell(problem.directions)

        def against(moved):
            if directions is None:
                return np.zeros(moved.shape, bool)
            return ((directions > 0) & (moved < x0)) | ((directions < 0) & (moved > x0))

        out = np.where(against(out), x0, out)
        if problem.permitted is not None:  # a category feature_range does not list
            for j, mask in problem.permitted.items():
                at = np.flatnonzero(np.broadcast_to(feature, out.shape) == j)
                codes = out[at]
                listed = (codes >= 0) & (codes < len(mask))
                listed[listed] = mask[codes[listed].astype(int)]
                out[at] = np.where(listed | (codes == x0[at]), codes, x0[at])
        frozen = problem.frozen(owner)
        if frozen is not None:
            frozen = frozen[np.arange(len(owner)), feature] if np.ndim(frozen) == 2 \
                else np.broadcast_to(frozen, (d,))[feature]
            out = np.where(frozen, x0, out)
        clipped = np.clip(out, cell(problem.lower), cell(problem.upper))
        clipped = mode.project(clipped, x0, v)
        clipped = np.where(against(clipped), x0, clipped)
        return np.where(categorical | (out == x0), out, clipped)

    def ask(self, E, owner):
        """Success of each row and its margin (one model call, two with ``predict``)."""
        problem = self.problem
        if E.shape[0] == 0:  # nothing to ask (models refuse empty batches)
            return np.zeros(0, bool), np.zeros((0, problem.n_classes))
        self.n_calls += 1
        rows = problem.with_missing(E, owner)
        if self.memo is None:
            proba, pred = self._predict(rows)
        else:
            proba, pred = self.memo.predict(rows, self._predict)
        target = problem.target[owner]
        changed = np.any(E != problem.x0[owner], axis=1) if problem.mode.requires_change \
            else None
        # pred is given where predict_in_search: the model's predict then decides
        ok = problem.mode.is_success(proba, target, problem.kappa, pred=pred, changed=changed,
                                     predict_decides=True)
        if problem.category_pairs is not None:
            rare = problem.category_pairs.created(
                rows, problem.with_missing(problem.x0[owner], owner))
            self.refused_for_pairs[owner[ok & rare]] = True
            ok &= ~rare
        return ok, proba

    def _predict(self, rows):
        """The model's probabilities of ``rows``, and its classes where the search asks
        ``predict`` too (else None); at most ``_MAX_CALL_NUMBERS`` numbers a call (a deep
        model's activations grow with its batch: 853,000 MNIST rows asked at once wanted a
        159 GiB tensor)."""
        asks_predict = getattr(self.backend, "predict_in_search", False)
        step = max(1, _MAX_CALL_NUMBERS // max(rows.shape[1], 1))
        parts = [(self.backend.predict_proba(rows[i:i + step]),
                  self.backend.predict(rows[i:i + step]) if asks_predict else None)
                 for i in range(0, len(rows), step)]
        if len(parts) == 1:
            return parts[0]
        return (np.concatenate([proba for proba, _ in parts]),
                np.concatenate([pred for _, pred in parts]) if asks_predict else None)

    def valid(self, E, owner):
        if E.shape[0] == 0:
            return np.zeros(0, bool)
        return self.ask(E, owner)[0]

    def _unchanged_value(self, E, owner):
        """Each feature's value were it reverted, where the constraints allow reverting it."""
        problem = self.problem
        base = self.base[owner]
        if not problem.mode.requires_change:  # a PP removes towards the background
            reverted = self.admissible(base, owner)
            return np.where(reverted != E, reverted, E)
        return base

    def revert_trials(self, E, owner, build=True):
        """Each change of the rows ``E`` (of instances ``owner``) that the constraints let
        be reverted, reverted alone: ``(unchanged, revertible, row, feature, trials)``, the
        values reverted to, the mask of those changes, and each trial's row in ``E`` and
        feature (``trials`` None without ``build``: see :meth:`reverts_valid`)."""
        unchanged = self._unchanged_value(E, owner)
        revertible = E != unchanged
        frozen = self.problem.frozen(owner)
        if frozen is not None:
            revertible &= ~frozen
        row, feature = np.nonzero(revertible)
        if not build:
            return unchanged, revertible, row, feature, None
        trials = E[row].copy()
        trials[np.arange(row.size), feature] = unchanged[row, feature]
        return unchanged, revertible, row, feature, trials

    def reverts_valid(self, E, owner, unchanged, row, feature):
        """Whether each revert of :meth:`revert_trials` leaves its answer valid, its trials
        built and asked at most ``_MAX_CALL_NUMBERS`` numbers at a time: one answer that
        changes each of 20,000 features has 400 million numbers of trials."""
        chunk = max(1, _MAX_CALL_NUMBERS // max(E.shape[1], 1))
        ok = np.empty(row.size, bool)
        for start in range(0, row.size, chunk):
            part = slice(start, start + chunk)
            trials = E[row[part]].copy()
            trials[np.arange(trials.shape[0]), feature[part]] = \
                unchanged[row[part], feature[part]]
            ok[part] = self.valid(trials, owner[row[part]])
        return ok

    def revert(self, E, owner):
        """Greedy: undo changes while the answer stays valid; no redundant change is left."""
        E = E.copy()
        # Answers whose trials (a row per change) fit in _MAX_CALL_NUMBERS numbers are
        # reverted together: a thousand changed features of a thousand make a million.
        chunk = max(1, _MAX_CALL_NUMBERS // max(E.shape[1] ** 2, 1))

        def revert_rows(open_rows):
            """One round of reverts of the answers ``open_rows`` (``E`` updated in place);
            returns those where one was made."""
            plausible = self.problem.plausibility is not None
            unchanged, revertible, i, j, trials = self.revert_trials(E[open_rows],
                                                                      owner[open_rows],
                                                                      build=plausible)
            if i.size == 0:
                return open_rows[:0]
            ok = self.valid(trials, owner[open_rows[i]]) if plausible else \
                self.reverts_valid(E[open_rows], owner[open_rows], unchanged, i, j)
            if plausible:  # a revert may cost plausibility more than it saves
                saving, before = self._saving(E[open_rows], trials, i, owner[open_rows], ok)
                ok &= saving >= 0
            else:  # the distance is a sum over features: a revert saves its feature's term
                saving = np.where(ok, self.feature_terms(E[open_rows], owner[open_rows])[i, j],
                                  -np.inf)
            joint = E[open_rows].copy()
            joint[i[ok], j[ok]] = unchanged[i[ok], j[ok]]
            n_ok = np.bincount(i[ok], minlength=open_rows.size)
            several = np.flatnonzero(n_ok > 1)
            joint_ok = np.zeros(open_rows.size, bool)
            joint_ok[several] = self.valid(joint[several], owner[open_rows[several]])
            if plausible:
                joint_ok[several] = self._costs_no_more(joint[several], owner[open_rows[several]],
                                                        joint_ok[several], before[several])
            E[open_rows[joint_ok]] = joint[joint_ok]
            single = (n_ok > 0) & ~joint_ok
            order = np.lexsort((-saving, i))  # by row, best saving first
            if not plausible:
                many = single & (n_ok > _REVERTS_ONE_AT_A_TIME)
                self._revert_best_together(E, open_rows, many, order[ok[order]], i, j,
                                           unchanged, owner)
                single &= ~many
            best = np.full(open_rows.size, -1)
            first = order[np.r_[True, i[order][1:] != i[order][:-1]]]
            best[i[first]] = j[first]
            rows = np.flatnonzero(single)
            E[open_rows[rows], best[rows]] = unchanged[rows, best[rows]]
            stuck = n_ok == 0
            together = np.zeros(open_rows.size, bool)
            together[stuck] = self._revert_categories_together(
                E, open_rows[stuck], revertible[stuck], unchanged[stuck], owner, plausible)
            return open_rows[(n_ok > 0) | together]

        open_rows = np.arange(E.shape[0])
        while open_rows.size:
            open_rows = np.concatenate([revert_rows(open_rows[start:start + chunk])
                                        for start in range(0, open_rows.size, chunk)])
        return E

    def _revert_best_together(self, E, open_rows, rows, order, i, j, unchanged, owner):
        """For the answers ``open_rows[rows]``, whose valid single reverts (the trials
        ``order``, by row and best saving first) are not valid all together: the most of the
        best of them that are, found by bisection on their number, in place.

        Reverting one a round would take as many rounds as changes, each with a trial per
        change: a start from a training row of a wide table changes every feature.
        """
        rows = np.flatnonzero(rows)
        if rows.size == 0:
            return
        at = np.full(open_rows.size, -1)
        at[rows] = np.arange(rows.size)
        order = order[at[i[order]] >= 0]
        row, feature = at[i[order]], j[order]
        rank = np.arange(order.size) - np.searchsorted(row, row)
        lower = np.ones(rows.size, int)  # the best alone is valid; all of them are not
        upper = np.bincount(row, minlength=rows.size) - 1

        def reverted(count):
            trials = E[open_rows[rows]].copy()
            take = rank < count[row]
            trials[row[take], feature[take]] = unchanged[i[order[take]], feature[take]]
            return trials

        while np.any(lower < upper):
            asked = np.flatnonzero(lower < upper)
            middle = (lower + upper + 1) // 2
            valid = self.valid(reverted(middle)[asked], owner[open_rows[rows[asked]]])
            lower[asked] = np.where(valid, middle[asked], lower[asked])
            upper[asked] = np.where(valid, upper[asked], middle[asked] - 1)
        E[open_rows[rows]] = reverted(lower)

    def _revert_categories_together(self, E, open_rows, revertible, unchanged, owner,
                                    plausible):
        """Where no change can be undone alone, all categorical ones together, in place: a
        category undone alone can make a pair the data never shows (refused), both together
        give back the instance's own. Returns which of ``open_rows`` changed."""
        categorical = revertible & self.categorical
        rows = np.flatnonzero(categorical.sum(axis=1) >= 2)
        done = np.zeros(open_rows.size, bool)
        if rows.size == 0 or plausible:
            return done
        trials = E[open_rows[rows]].copy()
        trials[categorical[rows]] = unchanged[rows][categorical[rows]]
        valid = self.valid(trials, owner[open_rows[rows]])
        E[open_rows[rows[valid]]] = trials[valid]
        done[rows[valid]] = True
        return done

    def cheapest(self, owner, E, n):
        """Positions of the ``n`` rows of least cost of each instance, by instance."""
        cost = self.cost(E, owner)
        order = np.lexsort((cost, owner))
        first = np.searchsorted(owner[order], owner[order])  # each instance's first position
        return order[np.arange(order.size) - first < n]

    def _saving(self, current, trials, i, owner, ok):
        """``(saving, before)``: each trial's cost below its row of ``current`` (row ``i``;
        -inf where not ``ok``), and the cost of the rows of ``current`` that have ``ok``
        trials (NaN for the others). Costs are computed for those rows only."""
        before = np.full(len(current), np.nan)
        rows = np.unique(i[ok])
        before[rows] = self.cost(current[rows], owner[rows])
        saving = np.full(len(trials), -np.inf)
        saving[ok] = before[i[ok]] - self.cost(trials[ok], owner[i[ok]])
        return saving, before

    def _costs_no_more(self, trials, owner, ok, reference):
        """``ok`` where a trial also costs no more than its ``reference`` (costs computed
        where ``ok`` only)."""
        ok = ok.copy()
        rows = np.flatnonzero(ok)
        ok[rows] = self.cost(trials[rows], owner[rows]) <= reference[rows]
        return ok

    def shrink(self, E, owner, n_bisections, max_shrunk):
        """Bisect numeric changes towards their unchanged value while the answer stays valid:
        all together first where there are many, then one by one (the largest
        ``max_shrunk``)."""
        E = E.copy()
        target = self._unchanged_value(E, owner)
        numeric = ~self.categorical & (E != target)
        frozen = self.problem.frozen(owner)
        if frozen is not None:
            numeric &= ~frozen
        if not numeric.any():
            return E
        # All together first only where one by one would be long: many changes.
        rows = np.flatnonzero(numeric.sum(axis=1) > _ONE_BY_ONE)
        E[rows] = self._bisect(E[rows], target[rows], numeric[rows], owner[rows], n_bisections)
        weighted = np.where(numeric, self.l1 * np.abs(E - target)
                            + self.l2 * (E - target) ** 2, -np.inf)
        order = np.argsort(-weighted, axis=1, kind="stable")[:, :max_shrunk]
        for slot in range(order.shape[1]):
            j = order[:, slot]
            rows = np.flatnonzero(numeric[np.arange(len(E)), j])
            if rows.size == 0:
                continue
            mask = np.zeros((rows.size, E.shape[1]), bool)
            mask[np.arange(rows.size), j[rows]] = True
            E[rows] = self._bisect(E[rows], target[rows], mask, owner[rows], n_bisections)
        return E

    def _bisect(self, E, target, mask, owner, n_steps):
        """The largest move of the ``mask``ed features from ``E`` towards ``target`` that
        stays valid, by bisection on the fraction of the move."""
        kept = np.zeros(len(E))
        lower = np.zeros(len(E))
        upper = np.ones(len(E))
        plausible = self.problem.plausibility is not None
        cost = self.cost(E, owner) if plausible else None
        one_cell = len(E) > 0 and bool(np.all(mask.sum(axis=1) == 1))
        if one_cell:  # a cell's work, not a row's (on 2,000 features, most of the time)
            moved = self._moved_cells(E, target, mask, owner)
        else:
            def moved(fraction):
                return self.admissible(self._moved(E, target, mask, fraction), owner)
        for _ in range(n_steps):
            middle = (lower + upper) / 2
            # A PN's move may cross the no-information value: what lands too close to it is
            # set back to the instance (and is then invalid, as its revert was).
            trial = moved(middle)
            ok = self.valid(trial, owner)
            if plausible:  # a move may cost plausibility more than it saves
                ok = self._costs_no_more(trial, owner, ok, cost)
            lower = np.where(ok, middle, lower)
            upper = np.where(ok, upper, middle)
            kept = lower
        return moved(kept)

    def _moved_cells(self, E, target, mask, owner):
        """For rows of ``E`` whose ``mask`` holds one feature each, admissible already: a
        function of the fraction of the move towards ``target``, giving the rows with that
        feature moved and made admissible (:meth:`admissible_values`), as :meth:`admissible`
        of :meth:`_moved` does."""
        rows = np.arange(len(E))
        feature = mask.argmax(axis=1)
        start, end = E[rows, feature], target[rows, feature]
        whole = self.whole[feature]

        def moved(fraction):
            step = fraction * (end - start)
            cells = start + np.where(whole, np.trunc(step), step)
            out = E.copy()
            out[rows, feature] = self.admissible_values(cells, owner, feature)
            return out

        return moved

    def snap_inward(self, E, x0):
        """Whole-number columns rounded towards the instance (inside a range)."""
        return toward_whole(E, x0, self.whole)

    def _moved(self, E, target, mask, fraction):
        step = fraction[:, None] * (target - E)
        step = np.where(self.whole, np.trunc(step), step)  # whole numbers stay whole
        return np.where(mask, E + step, E)

    def result(self, E, owner, n, n_answers=1):
        """The best answer of each instance, checked by the estimator's ``predict``; with
        ``n_answers`` > 1, also up to that many distinct ones (:func:`choose_diverse`)."""
        problem = self.problem
        d = problem.x0.shape[1]
        explanation = np.full((n, d), np.nan)
        distance = np.full(n, np.nan)
        proba = np.full((n, problem.n_classes), np.nan)
        pred = np.full(n, -1)
        rejected = np.zeros(n, bool)
        if owner.size:
            ok, row_proba = self.ask(E, owner)
            answers = problem.with_missing(E, owner)
            has_predict = getattr(self.backend, "_predict", None) is not None
            if getattr(self.backend, "predict_in_search", False):
                row_pred = self.backend.predict(answers)
            else:
                row_pred = self.backend.predict(answers) if has_predict \
                    else row_proba.argmax(axis=1)
                valid = problem.mode.is_success(row_proba, problem.target[owner],
                                                problem.kappa, pred=row_pred)
                rejected_rows = ok & ~valid
                rejected[owner[rejected_rows]] = True
                ok &= valid
            dist = np.where(ok, self.distance(E, owner), np.inf)
            cost = dist
            if self.problem.plausibility is not None:
                cost = np.full(len(E), np.inf)
                cost[ok] = self.cost(E[ok], owner[ok])
            order = np.lexsort((cost, owner))
            first = order[np.r_[True, owner[order][1:] != owner[order][:-1]]]
            first = first[np.isfinite(dist[first])]
            best = owner[first]
            explanation[best] = answers[first]
            distance[best] = dist[first]
            proba[best] = row_proba[first]
            pred[best] = row_pred[first]
            rejected[best] = False
        found = np.isfinite(distance)
        result = SearchResult(explanation=explanation, found=found, distance=distance,
                              best_c=np.full(n, np.nan), explanation_proba=proba,
                              explanation_class=pred,
                              n_iterations=np.full(n, self.n_calls),
                              flat_gradient=np.zeros(n, bool), rejected_by_predict=rejected,
                              refused_for_pairs=self.refused_for_pairs)
        if n_answers > 1:
            result.answers = np.full((n, n_answers, d), np.nan)
            result.answer_distance = np.full((n, n_answers), np.nan)
            if owner.size and np.isfinite(dist).any():
                order = order[np.isfinite(dist[order])]  # valid answers, by instance, closest first
                difference = self.difference(E, owner)
                bounds = np.flatnonzero(np.r_[True, owner[order][1:] != owner[order][:-1], True])
                for start, stop in zip(bounds[:-1], bounds[1:]):
                    rows = order[start:stop]
                    kept = rows[choose_diverse(answers[rows], difference[rows],
                                               self.categorical, n_answers)]
                    instance = owner[rows[0]]
                    result.answers[instance, :kept.size] = answers[kept]
                    result.answer_distance[instance, :kept.size] = dist[kept]
        return result


class _Answers:
    """The model's answers to the rows asked in one search, kept by the rows' values: a row
    asked again is not asked of the model, and each call asks its distinct new rows once.

    Only for models whose answer to a row does not depend on the other rows of the call
    (tree models), where it gives the same answers as asking every row. A row is found by
    its bytes (its float64 values bit for bit: -0.0 and 0.0 are two rows), never by a hash
    of them alone: a 64-bit hash of the values mixed too little told rows of whole numbers
    (category codes) apart badly (UCI Adult's forest, 4 counterfactuals each: 35,596 hashes
    for 35,914 rows), and a call holding two rows of one hash was asked again whole (92,600
    model rows for 50 instances, 37,300 now). Keeping a row costs
    about a microsecond, more than a forest takes to answer it: the first call times the
    model, and rows are kept only where they cost more than ``row_seconds``; once
    ``trial_rows`` rows are asked, only while the rows found again save more time than
    keeping them all costs.
    """

    # Rows kept at most, and their numbers (bounds on memory; beyond, every row is asked
    # again).
    max_rows = 2**20
    max_numbers = 2**25
    row_seconds = 3e-6
    trial_rows = 20000

    def __init__(self):
        self.position = {}
        self.proba = self.pred = None
        self.n_rows = 0
        self.on = None  # undecided
        self.n_asked = self.n_found = 0
        self.model_seconds = self.own_seconds = 0.0
        self.model_rows = 0

    def predict(self, rows, predict):
        """``(proba, pred)`` of ``rows``: ``predict`` (rows to ``(proba, pred)``, ``pred``
        None or an array) called on the distinct rows not asked before."""
        if self.on is False or len(rows) == 0:
            return predict(rows)
        if self.on is None:
            answers = self._timed(predict, rows)
            self.on = self.model_seconds > self.row_seconds * len(rows)
            if self.on:
                self._keep_all(rows, answers)
            return answers
        start = time.perf_counter()
        model_before = self.model_seconds
        answers = self._remembered(rows, predict)
        self.own_seconds += time.perf_counter() - start - (self.model_seconds - model_before)
        if self.n_asked >= self.trial_rows:
            per_row = self.model_seconds / max(self.model_rows, 1)
            saved = self.n_found * per_row
            self.on = saved > self.own_seconds
            if not self.on:
                self.position, self.proba, self.pred = {}, None, None
            self.trial_rows = np.inf  # decided for good
        return answers

    def _timed(self, predict, rows):
        start = time.perf_counter()
        answers = predict(rows)
        self.model_seconds += time.perf_counter() - start
        self.model_rows += len(rows)
        return answers

    @staticmethod
    def _keys(rows):
        """Each row's float64 values as bytes, the key it is kept by."""
        values = np.ascontiguousarray(rows, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] == 0:
            return [values[i].tobytes() for i in range(len(values))]
        return values.view(np.dtype((np.void, values.shape[1] * values.itemsize))) \
            .ravel().tolist()

    def _keep_all(self, rows, answers):
        keys = self._keys(rows)
        first = dict(zip(reversed(keys), range(len(keys) - 1, -1, -1)))
        kept = np.fromiter(first.values(), dtype=int, count=len(first))
        proba, pred = answers
        self._keep(list(first), np.asarray(proba)[kept],
                   None if pred is None else np.asarray(pred)[kept])

    def _remembered(self, rows, predict):
        keys = self._keys(rows)
        index = np.array(list(map(self.position.get, keys, repeat(-1))), dtype=int)
        new = np.flatnonzero(index < 0)
        self.n_asked += len(rows)
        self.n_found += len(rows) - new.size
        if new.size:
            if self.n_rows + new.size > self._row_limit(np.shape(rows)[1]):
                return self._timed(predict, rows)
            first = dict(zip(map(keys.__getitem__, new[::-1]), new[::-1]))
            asked = np.fromiter(first.values(), dtype=int, count=len(first))
            proba, pred = self._timed(predict, rows[asked])
            self._keep(list(first), np.asarray(proba),
                       None if pred is None else np.asarray(pred))
            index[new] = list(map(self.position.__getitem__, map(keys.__getitem__, new)))
        return self.proba[index], None if self.pred is None else self.pred[index]

    def _row_limit(self, width):
        return max(1, min(self.max_rows, self.max_numbers // max(width, 1)))

    def _keep(self, keys, proba, pred):
        n_kept = self.n_rows + len(keys)
        if self.proba is None or n_kept > len(self.proba):
            capacity = max(n_kept, min(2 * (0 if self.proba is None else len(self.proba)),
                                       self._row_limit(len(keys[0]) // 8 if keys else 1)),
                           1024)
            self.proba = _grown(self.proba, proba, capacity, self.n_rows)
            if pred is not None:
                self.pred = _grown(self.pred, pred, capacity, self.n_rows)
        self.proba[self.n_rows:n_kept] = proba
        if pred is not None:
            self.pred[self.n_rows:n_kept] = pred
        self.position.update(zip(keys, range(self.n_rows, n_kept)))
        self.n_rows = n_kept


def _grown(kept, like, capacity, n_rows):
    """A buffer of ``capacity`` rows shaped and typed like ``like``, holding the first
    ``n_rows`` of ``kept`` (None: none)."""
    out = np.empty((capacity,) + like.shape[1:], like.dtype)
    if kept is not None:
        out[:n_rows] = kept[:n_rows]
    return out


def _wanted_members(problem, pool, rows):
    """``(group, members)`` per target of the instances ``rows``: the positions in ``rows``
    with that target, and the pool's rows of a class they want (the target, or any other for
    a PN or a counterfactual of any other class); targets no pool row is wanted for are left
    out."""
    targets = problem.target[rows]
    for target in np.unique(targets):
        same = pool.pred == target
        members = np.flatnonzero(same if problem.mode.wants_target else ~same)
        if members.size:
            yield np.flatnonzero(targets == target), members
