"""Which answers still look like data: rare pairs of categories, and the class of the rows around.

An answer made of a training row of the wanted class with the instance's immutable columns
set back can pair categories no person has (a husband who is female): each column is fine
alone, the pair is not. :class:`CategoryPairs` learns, from the data given to ``fit``, how
often each pair of categories of two columns occurs, and calls a pair *rare* when fewer than
``min_share`` of the rows hold it. The gradient-free steps (:mod:`skcem._neighbors`) refuse an
answer that holds a rare pair the instance itself does not: a change never creates one.

:class:`ClassNeighborhood` is the ``plausibility`` term of the same steps: how far an answer
is from lying among rows that the model puts in its class.
"""

from itertools import combinations

import numpy as np
from scipy.spatial.distance import cdist

# A pair of categories held by fewer than this share of the data given to fit is rare; with
# fewer than 1 / MIN_SHARE rows, only pairs never seen are, unless the next rule says so.
MIN_SHARE = 1e-4
# ... and so is a pair held by fewer than this share of the rows its two categories would
# give it if they were independent: on 4,000 Adult rows the one male "Wife" is 1 of the 128
# that the numbers of men and of wives predict (noise in the data), where a pair of two
# categories of one row each (identifiers) is held by the row that each one has.
MIN_SHARE_OF_EXPECTED = 0.01
# The searches judge the pairs of two columns only where the rows are enough to: this many
# rows, on average, per pair the rows hold (a chi-squared test's usual minimum per cell).
# Columns of many categories each (token ids, 20 values at 10 positions, 200 rows) hold
# most of their pairs once, by chance: refusing every other pair left near-copies of
# training rows as the only answers. A city that lies in one state (600 rows, 20 pairs held
# of 200) and every pair of Adult's columns are judged.
MIN_ROWS_PER_PAIR = 5


def _rare(counts, n_rows, min_share):
    """Which pairs of a contingency table ``counts`` (rows: one column's codes, columns: the
    other's; ``n_rows`` rows counted) are rare."""
    expected = np.outer(counts.sum(axis=1), counts.sum(axis=0)) / max(n_rows, 1)
    rare = (counts < min_share * n_rows) | (counts == 0) | \
        (counts < MIN_SHARE_OF_EXPECTED * expected)
    # a category no row holds (declared, or met after fit): the rows say nothing of its pairs
    return rare & (expected > 0)


def _judged(counts, n_rows):
    """Whether ``n_rows`` rows can tell the rare pairs of a contingency table at all: at
    least ``MIN_ROWS_PER_PAIR`` rows, on average, per pair the rows hold."""
    return n_rows >= MIN_ROWS_PER_PAIR * np.count_nonzero(counts)


class CategoryPairs:
    """The rare pairs of categories of a table's categorical columns.

    Parameters
    ----------
    min_share : float, default=MIN_SHARE
        A pair held by fewer than this share of the rows (and by no row at all, whatever the
        number of rows) is rare, and so is one held by fewer than 1% of the rows that the
        counts of its two categories predict for it were they independent; either only for
        two columns whose pairs the rows can tell: ``MIN_ROWS_PER_PAIR`` (5) rows or more, on
        average, per pair they hold.

    Attributes
    ----------
    columns_ : ndarray of int
        The categorical columns, by position.
    rare_ : dict of (int, int) to ndarray of bool
        For each pair of categorical columns ``(j, k)``, ``rare_[j, k][a, b]`` says whether
        the codes ``a`` of ``j`` and ``b`` of ``k`` are rare together.
    """

    def __init__(self, min_share=MIN_SHARE):
        self.min_share = min_share

    def fit(self, Z, categorical, n_categories):
        """Count the pairs of category codes in ``Z`` (missing codes are left out).

        Parameters
        ----------
        Z : ndarray of shape (n_samples, n_features)
            Rows in the search's numbers: category codes in the categorical columns.
        categorical : ndarray of bool, shape (n_features,)
        n_categories : sequence of int
            The number of categories of each column (ignored for numeric ones).
        """
        self.columns_ = np.flatnonzero(categorical)
        self.rare_ = {}
        for j, k in combinations(self.columns_, 2):
            known = ~(np.isnan(Z[:, j]) | np.isnan(Z[:, k]))
            counts = np.zeros((n_categories[j], n_categories[k]))
            np.add.at(counts, (Z[known, j].astype(int), Z[known, k].astype(int)), 1)
            n_rows = int(known.sum())
            self.rare_[j, k] = _rare(counts, n_rows, self.min_share) if \
                _judged(counts, n_rows) else np.zeros(counts.shape, dtype=bool)
        return self

    def created(self, E, x0):
        """Rows of ``E`` holding a rare pair that their instance ``x0`` does not hold.

        Parameters
        ----------
        E : ndarray of shape (n, n_features)
            Answers, in the search's numbers.
        x0 : ndarray of shape (n, n_features)
            Their instances.

        Returns
        -------
        created : ndarray of bool, shape (n,)
        """
        created = np.zeros(len(E), dtype=bool)
        for (j, k), rare in self.rare_.items():
            a, b = E[:, j], E[:, k]
            changed = (a != x0[:, j]) | (b != x0[:, k])
            # (codes past the table: categories fit never met, which its rows cannot judge)
            known = changed & ~(np.isnan(a) | np.isnan(b)) & (a < rare.shape[0]) & \
                (b < rare.shape[1])
            if not known.any():
                continue
            hit = np.zeros(len(E), dtype=bool)
            hit[known] = rare[a[known].astype(int), b[known].astype(int)]
            created |= hit
        return created


def rare_pair_counts(answers, instances, train, min_share=MIN_SHARE):
    """How many pairs of categories each answer holds that are rare in ``train`` and that its
    instance does not hold (pairs with a missing code are left out), of the pairs of
    columns whose pairs ``train`` can tell (``MIN_ROWS_PER_PAIR`` rows or more, on average,
    per pair it holds: not a free-text column's, each text held by a row or two).

    Parameters
    ----------
    answers, instances : ndarray of int, shape (n, n_categorical)
        Joint category codes (-1 for missing) of the answers and their instances.
    train : ndarray of int, shape (n_train, n_categorical)
        The same codes for the training rows.
    min_share : float, default=MIN_SHARE

    Returns
    -------
    counts : ndarray of int, shape (n,)
    """
    counts = np.zeros(len(answers), dtype=int)
    n_codes = int(max(answers.max(initial=0), instances.max(initial=0),
                      train.max(initial=0))) + 1
    for j, k in combinations(range(answers.shape[1]), 2):
        seen = (train[:, j] >= 0) & (train[:, k] >= 0)
        table = np.zeros((n_codes, n_codes))
        np.add.at(table, (train[seen, j], train[seen, k]), 1)
        a, b = answers[:, j], answers[:, k]
        known = (a >= 0) & (b >= 0) & ((a != instances[:, j]) | (b != instances[:, k]))
        n_rows = int(seen.sum())
        if not _judged(table, n_rows):  # as the search: the rows tell no pair of these
            continue
        rare = _rare(table, n_rows, min_share)
        counts += known & rare[np.maximum(a, 0), np.maximum(b, 0)]
    return counts


# Neighbours that decide where an answer lies: the 5 of yNN.
N_NEIGHBORS = 5
# Rows whose crossings to the other class set the plausibility term's reach.
_CROSSING_SAMPLE = 500
# Crossings between classes that ``plausibility=1`` lets an answer go to lie among rows of
# its class only (measured on Adult: benchmarks/bench_tabular.py --plausibility).
_CROSSINGS_PER_WEIGHT = 6.0
# Answer-to-row distances computed at once (32 MB of float64).
_BLOCK_VALUES = 2**22
# Columns whose k-th smallest distance bounds a row's k nearest (see _nearest).
_FIRST_COLUMNS = 1024


def _nearest(distance, k):
    """The columns of the ``k`` smallest distances of each row, smallest first (ties by
    column), of shape (n_rows, k).

    The ``k``-th smallest of the first ``_FIRST_COLUMNS`` columns bounds each row's ``k``-th
    smallest from above: only the few columns within it are sorted, 3-4 times faster than a
    partition of every row (which the plausibility term's steps would spend most of their
    time in).
    """
    head = distance[:, :max(k, _FIRST_COLUMNS)]
    bound = np.partition(head, k - 1, axis=1)[:, k - 1:k]
    row, column = np.nonzero(distance <= bound)
    order = np.lexsort((column, distance[row, column], row))
    row, column = row[order], column[order]
    first = np.searchsorted(row, row)
    return column[np.arange(row.size) - first < k].reshape(len(distance), k)


class ClassNeighborhood:
    """The plausibility term: how far an answer is from lying among rows of its wanted class.

    An answer whose nearest rows of the data the model puts in another class lies where the
    data of its class does not: at the edge of the class, just over the model's boundary.
    The term is ``weight * reach * (1 - share)``, with ``share`` the part of the answer's
    ``n_neighbors`` nearest rows (of the data given to ``fit``) that the model puts in a
    wanted class (a k-nearest-neighbour estimate of that class's share of the data there:
    yNN's own measure), in the explainer's distance (its L1 part; the square root of its L2
    weights where it has none). A *crossing* is the move from a row to its nearest row of
    another class (nearest by the L1 part); ``reach`` is the median, over rows, of the
    distance of a move six crossings long. A weight of 1 then lets an answer go six typical
    crossings farther to lie among rows of its class only: six times a crossing's distance
    for an L1 distance, 36 times its squared part for an elastic net (a PN's distance), where
    six times the distance would let it go only about 2.5 crossings.

    Parameters
    ----------
    weight : float
        The explainer's ``plausibility``.
    n_neighbors : int, default=N_NEIGHBORS
    """

    def __init__(self, weight, n_neighbors=N_NEIGHBORS):
        self.weight = weight
        self.n_neighbors = n_neighbors

    def fit(self, Z, pred, categorical, l1_weight, l2_weight):
        """Learn the rows and their classes, and the term's reach.

        Parameters
        ----------
        Z : ndarray of shape (n_samples, n_features)
            The rows (the data given to the explainer's ``fit``) in the search's numbers,
            without missing cells.
        pred : ndarray of int, shape (n_samples,)
            The model's class of each.
        categorical : ndarray of bool, shape (n_features,)
        l1_weight, l2_weight : ndarray of shape (n_features,)
            The distance's weights: ``l2_weight * d**2 + l1_weight * |d|`` per feature, with
            ``d`` 1 for a changed category. Neighbours are found with the L1 weights (the
            square roots of the L2 ones where the L1 ones are 0), the reach is measured in
            the distance itself (a crossing's changed category a step of 1, as there).
        """
        self.categorical_ = np.asarray(categorical, bool)
        self.feature_weight_ = np.where(l1_weight > 0, l1_weight, np.sqrt(l2_weight))
        self.numeric_ = Z[:, ~self.categorical_] * self.feature_weight_[~self.categorical_]
        self.codes_ = Z[:, self.categorical_].T.astype(np.int32)  # a column per row: fast
        self.pred_ = np.asarray(pred)
        self.n_neighbors_ = min(self.n_neighbors, len(Z))
        sample = np.random.default_rng(0).permutation(len(Z))[:_CROSSING_SAMPLE]
        nearest = np.full(sample.size, -1)
        for rows, distance in self._distance_blocks(Z[sample]):
            other = self.pred_[None, :] != self.pred_[sample[rows], None]
            distance = np.where(other, distance, np.inf)
            nearest[rows] = np.where(np.isfinite(distance).any(axis=1),
                                     distance.argmin(axis=1), -1)
        sample, nearest = sample[nearest >= 0], nearest[nearest >= 0]
        difference = np.where(self.categorical_, Z[sample] != Z[nearest],
                              np.abs(Z[sample] - Z[nearest]))
        move = _CROSSINGS_PER_WEIGHT * difference
        reach = np.sum(l2_weight * move**2 + l1_weight * move, axis=1)
        self.reach_ = float(np.median(reach)) if reach.size else 0.0
        return self

    def _distance_blocks(self, E):
        """``(rows, distances)``: the distances from blocks of rows of ``E`` to every row
        learnt at fit; a missing cell of ``E`` (which answers keep missing) counts none."""
        step = max(1, _BLOCK_VALUES // max(1, len(self.pred_)))
        weight = self.feature_weight_[self.categorical_].astype(np.float32)
        numeric = E[:, ~self.categorical_] * self.feature_weight_[~self.categorical_]
        coded = E[:, self.categorical_]
        known = ~np.isnan(coded)
        codes = np.where(known, coded, -1).astype(np.int32)
        # Single precision: ranking neighbours needs no more, and it halves the time.
        for start in range(0, len(E), step):
            rows = slice(start, start + step)
            distance = self._numeric_distance(numeric[rows])
            for j in range(codes.shape[1]):
                distance += weight[j] * ((codes[rows, j, None] != self.codes_[j])
                                         & known[rows, j, None])
            yield rows, distance

    def _numeric_distance(self, numeric):
        """The L1 distances of the weighted numeric columns of some rows to every row learnt
        at fit, in float32, over each row's known cells."""
        n = len(numeric)
        if not numeric.shape[1]:
            return np.zeros((n, len(self.pred_)), np.float32)
        missing = np.isnan(numeric)
        if not missing.any():
            return cdist(numeric, self.numeric_, "cityblock").astype(np.float32)
        distance = np.empty((n, len(self.pred_)), np.float32)
        patterns, group = np.unique(missing, axis=0, return_inverse=True)
        for g, pattern in enumerate(patterns):
            members, keep = np.flatnonzero(group.ravel() == g), ~pattern
            distance[members] = cdist(numeric[members][:, keep], self.numeric_[:, keep],
                                      "cityblock") if keep.any() else 0.0
        return distance

    def share(self, E, target, wants_target):
        """The part of each row's nearest rows learnt at fit that lie in its wanted class.

        Parameters
        ----------
        E : ndarray of shape (n, n_features)
            Answers, in the search's numbers.
        target : ndarray of int, shape (n,)
            Each answer's target class.
        wants_target : bool
            Whether the wanted class is ``target`` (a counterfactual) or any other (a PN).

        Returns
        -------
        share : ndarray of shape (n,)
        """
        share = np.empty(len(E))
        k = self.n_neighbors_
        for rows, distance in self._distance_blocks(E):
            nearest = _nearest(distance, k) if k < distance.shape[1] \
                else np.arange(distance.shape[1])[None]
            same = self.pred_[nearest] == target[rows, None]
            share[rows] = (same if wants_target else ~same).mean(axis=1)
        return share

    def penalty(self, E, target, wants_target):
        """``weight * reach * (1 - share)`` of each row of ``E`` (see :meth:`share`)."""
        return self.weight * self.reach_ * (1.0 - self.share(E, target, wants_target))
