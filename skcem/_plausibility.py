"""Which answers still look like data: pairs of categories that (almost) never occur together.

An answer made of a training row of the wanted class with the instance's immutable columns
set back can pair categories no person has (a husband who is female): each column is fine
alone, the pair is not. :class:`CategoryPairs` learns, from the data given to ``fit``, how
often each pair of categories of two columns occurs, and calls a pair *rare* when fewer than
``min_share`` of the rows hold it. The gradient-free steps (:mod:`skcem._neighbors`) refuse an
answer that holds a rare pair the instance itself does not: a change never creates one.
"""

from itertools import combinations

import numpy as np

# A pair of categories held by fewer than this share of the data given to fit is rare; with
# fewer than 1 / MIN_SHARE rows, only pairs never seen are.
MIN_SHARE = 1e-4


class CategoryPairs:
    """The rare pairs of categories of a table's categorical columns.

    Parameters
    ----------
    min_share : float, default=MIN_SHARE
        A pair held by fewer than this share of the rows (and by no row at all, whatever the
        number of rows) is rare.

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
        threshold = self.min_share * len(Z)
        self.rare_ = {}
        for j, k in combinations(self.columns_, 2):
            known = ~(np.isnan(Z[:, j]) | np.isnan(Z[:, k]))
            counts = np.zeros((n_categories[j], n_categories[k]))
            np.add.at(counts, (Z[known, j].astype(int), Z[known, k].astype(int)), 1)
            self.rare_[j, k] = (counts < threshold) | (counts == 0)
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
            known = changed & ~(np.isnan(a) | np.isnan(b))
            if not known.any():
                continue
            hit = np.zeros(len(E), dtype=bool)
            hit[known] = rare[a[known].astype(int), b[known].astype(int)]
            created |= hit
        return created


def rare_pair_counts(answers, instances, train, min_share=MIN_SHARE):
    """How many pairs of categories each answer holds that are rare in ``train`` and that its
    instance does not hold (pairs with a missing code are left out).

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
    threshold = min_share * len(train)
    n_codes = int(max(answers.max(initial=0), instances.max(initial=0),
                      train.max(initial=0))) + 1
    for j, k in combinations(range(answers.shape[1]), 2):
        seen = (train[:, j] >= 0) & (train[:, k] >= 0)
        table = np.zeros((n_codes, n_codes))
        np.add.at(table, (train[seen, j], train[seen, k]), 1)
        a, b = answers[:, j], answers[:, k]
        known = (a >= 0) & (b >= 0) & ((a != instances[:, j]) | (b != instances[:, k]))
        held = np.zeros(len(answers))
        held[known] = table[a[known], b[known]]
        counts += known & ((held < threshold) | (held == 0))
    return counts
