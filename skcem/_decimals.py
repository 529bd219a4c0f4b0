"""Answers in the decimals of their columns.

A float column whose values given to ``fit`` all hold a few decimals (amounts in cents, a
measurement to 0.1) gets answers in those decimals. The searches move numbers continuously:
an answer lies a float32 step past a tree's threshold, or where a gradient step stopped
(2.7500008724923233), which is no value the column holds. Each such cell is rounded, the
nearest value of the column's decimals first, else one step further the mode's way (a PN
or counterfactual changes a little more, a PP keeps a little more of the instance), and a
rounded answer is kept only where the model still gives it the answer's class (one call for
all rows, per way); otherwise the search's own value stays. A change that a rounded answer no
longer needs is then undone (as the polish undoes them), and answers that rounding made one
are kept once.

``search="auto"`` rounds each candidate before they compete (the gradient search's answers,
polished or not, and the gradient-free search's), so that the cheapest is chosen as the user
gets it; the exact search rounds the gradient-free answer that bounds its programs, whose
points already hold the decimals (:class:`~skcem._exact_search.ExactSearch`).
"""

from dataclasses import replace

import numpy as np
from threadpoolctl import threadpool_limits

from ._neighbors import _Batch

# Decimals looked for, at most.
_MAX_DECIMALS = 6
# Distinct values a column must hold for its decimals to be read from them (as for whole
# numbers in float columns: a 0/1 column may be a share or a probability to its model).
_MIN_VALUES = 3
# Per precision of the values: how far from a multiple of a step of the decimals a value may
# lie, and the finest step read, as shares of the column's largest magnitude. float64 values
# (read from text, computed) hold their decimals to a few units of 1e-16; values that are all
# float32 numbers (float32 data, read as float64) to two float32 units, and a step finer than
# 1e-5 of the largest is float32's resolution, not the data's.
_PRECISIONS = ((1e-12, 1e-10), (2.4e-7, 1e-5))


def column_decimals(X, candidates):
    """Per column, the decimals all its finite values hold (0, whole numbers, to
    ``_MAX_DECIMALS``); -1 for columns that are not ``candidates``, hold fewer than
    ``_MIN_VALUES`` distinct values, or hold values of no such decimals."""
    X = np.asarray(X, dtype=float)
    decimals = np.full(X.shape[1], -1)
    for j in np.flatnonzero(candidates):
        values = X[:, j][np.isfinite(X[:, j])]
        largest = np.max(np.abs(values), initial=0.0)
        if largest == 0 or np.unique(values).size < _MIN_VALUES:
            continue
        precisions = _PRECISIONS if np.all(values.astype(np.float32) == values) \
            else _PRECISIONS[:1]
        decimals[j] = next((places for tolerance, finest in precisions
                            for places in _places(values, largest, tolerance, finest)), -1)
    return decimals


def _places(values, largest, tolerance, finest):
    """The decimals ``values`` hold within ``tolerance`` (none, or one)."""
    for places in range(_MAX_DECIMALS + 1):
        scale = 10.0 ** places
        if largest * scale * finest > 1:
            return
        scaled = values * scale
        if np.all(np.abs(scaled - np.rint(scaled)) <= largest * scale * tolerance):
            yield places
            return


def round_to_decimals(backend, problem, result, decimals, whole=None, revert=True):
    """See :func:`_round_to_decimals`; its model calls are few and small: one OpenMP thread
    (histogram gradient boosting's woke its threads 300 times slower on a busy machine)."""
    with threadpool_limits(limits=1, user_api="openmp"):
        return _round_to_decimals(backend, problem, result, decimals, whole, revert)


def _round_to_decimals(backend, problem, result, decimals, whole=None, revert=True):
    """``result`` with its answers' changed cells in their columns' ``decimals``, where the
    model keeps each answer's class (every answer, of every rank; the distances follow).

    A rounded answer may no longer need another of its changes (rounding one cell a step
    further can flip the class alone): with ``revert``, those are undone as the
    gradient-free search's polish undoes them (:meth:`~skcem._neighbors._Batch.revert`).
    ``whole`` marks the columns kept whole numbers (category codes, integer columns).
    """
    columns = decimals >= 0
    if not columns.any() or not np.any(result.found):
        return result
    # Every answer as a row: rank 0 (``explanation``), then the others of several answers.
    rows = np.flatnonzero(result.found)
    answers = [result.explanation[rows]]
    owners = [rows]
    ranks = [np.zeros(rows.size, int)]
    if result.answers is not None:
        k = result.answers.shape[1]
        owner, rank = np.nonzero(np.isfinite(result.answer_distance[:, 1:]))
        answers.append(result.answers[owner, rank + 1])
        owners.append(owner)
        ranks.append(rank + 1)
    else:
        k = 1
    answers, owners, ranks = np.vstack(answers), np.concatenate(owners), \
        np.concatenate(ranks)
    x0 = problem.x0[owners]
    if problem.missing is not None:  # the search's coordinates: x0's value in missing cells
        answers = np.where(problem.missing[owners], x0, answers)
    background = np.broadcast_to(problem.background, problem.x0.shape)[owners]
    no_info = np.broadcast_to(problem.no_info_val, problem.x0.shape)[owners]
    scale = np.where(columns, 10.0 ** np.maximum(decimals, 0), 1.0)
    # (A cell within float32 rounding of a value of the decimals is rounded too: an answer
    # one float32 step past a threshold is as close to one as the data's own values.)
    movable = columns & (answers != x0) & (answers != background) & _on_grid(x0 * scale)
    if problem.missing is not None:
        movable &= ~problem.missing[owners]
    if not movable.any():
        return result
    batch = _Batch(backend, problem, np.zeros(len(scale), bool) if whole is None else whole)
    # Inside the range, or between it and an instance outside it (a value only moved
    # towards the range, as the answer's was: 276.528 of an instance at 276.55 above a
    # range ending at 260 rounds to 276.53).
    lowest = np.fmin(np.broadcast_to(problem.lower, problem.x0.shape)[owners],
                     np.fmin(answers, x0))
    highest = np.fmax(np.broadcast_to(problem.upper, problem.x0.shape)[owners],
                      np.fmax(answers, x0))
    ways = []
    for way in (np.rint(answers * scale) / scale,
                problem.mode.round_whole(answers * scale, x0 * scale) / scale):
        way = np.clip(way, lowest, highest)
        # Rounded onto the instance's own value: the change undone, not a change of noise.
        way = np.where(np.rint(way * scale) == np.rint(x0 * scale), x0, way)
        # On the answer's side of the instance (directions), and what the mode admits (a
        # PN farther from the no-information value, a PP between it and the instance).
        iterate = problem.mode.iterate(way, x0, background)
        admissible = ((way - x0) * (answers - x0) >= 0) & \
            (problem.mode.project(iterate, x0, no_info) == iterate)
        ways.append((way, admissible))
    rounded = answers.copy()
    pending = movable.copy()
    # Each way for every cell still pending at once, then each cell alone: a cell whose
    # rounding the model refuses beside the others' may be taken alone.
    for way, admissible in ways:
        _take_valid(batch, rounded, pending, pending & admissible, way, owners)
    for way, admissible in ways:
        _take_valid(batch, rounded, pending, pending & admissible, way, owners,
                    one_at_a_time=True)
    changed_rows = np.flatnonzero(np.any(rounded != answers, axis=1))
    if changed_rows.size == 0:
        return result
    if revert:
        reverted = batch.revert(rounded[changed_rows], owners[changed_rows])
        kept = _valid(batch, reverted, owners[changed_rows])
        rounded[changed_rows[kept]] = reverted[kept]
    final = problem.with_missing(rounded[changed_rows], owners[changed_rows])
    proba = np.full((len(answers), problem.n_classes), np.nan)
    pred = np.full(len(answers), -1)
    proba[changed_rows] = backend.predict_proba(final)
    pred[changed_rows] = backend.predict(final)
    delta = batch.distance(rounded, owners) - batch.distance(answers, owners)
    rounded = problem.with_missing(rounded, owners)
    return _with_rounded(backend, result, rows, owners, ranks, k, rounded, proba, pred,
                         delta, changed_rows)


def _take_valid(batch, rounded, pending, cells, way, owners, one_at_a_time=False):
    """``rounded`` taking ``way``'s values in ``cells`` where the model keeps each answer's
    class (in place; those cells no longer ``pending``): all of a row's cells at once, or
    with ``one_at_a_time``, each cell alone (one row per cell, one call), then a row's
    accepted cells together, else its first."""
    if one_at_a_time:
        row, column = np.nonzero(cells)
        if row.size == 0:
            return
        trials = rounded[row].copy()
        trials[np.arange(row.size), column] = way[row, column]
        ok = _valid(batch, trials, owners[row])
        row, column = row[ok], column[ok]
        together = rounded.copy()
        together[row, column] = way[row, column]
        rows = np.unique(row)
        fits = np.zeros(len(rounded), bool)
        fits[rows] = _valid(batch, together[rows], owners[rows])
        first = np.r_[True, row[1:] != row[:-1]] & ~fits[row]
        taken = fits[row] | first
        rounded[row[taken], column[taken]] = way[row[taken], column[taken]]
        pending[row[taken], column[taken]] = False
        return
    rows = np.flatnonzero(cells.any(axis=1))
    if rows.size == 0:
        return
    trials = np.where(cells[rows], way[rows], rounded[rows])
    ok = _valid(batch, trials, owners[rows])
    rounded[rows[ok]] = trials[ok]
    pending[rows[ok]] &= ~cells[rows[ok]]


def _valid(batch, E, owner):
    """Success of the rows ``E`` by the probabilities and by the estimator's ``predict``."""
    if len(E) == 0:  # (models refuse empty batches)
        return np.zeros(0, bool)
    ok, proba = batch.ask(E, owner)
    problem = batch.problem
    pred = batch.backend.predict(problem.with_missing(E, owner))
    return ok & problem.mode.is_success(proba, problem.target[owner], problem.kappa,
                                        pred=pred)


def _on_grid(scaled):
    """Whether values (times their scale) are whole numbers, within float32 rounding."""
    return np.abs(scaled - np.rint(scaled)) <= _PRECISIONS[-1][0] * np.maximum(
        np.abs(scaled), 1.0)


def _with_rounded(backend, result, rows, owners, ranks, k, rounded, proba, pred, delta,
                  changed_rows):
    """A copy of ``result`` taking the rounded answers ``changed_rows``; with several answers,
    each instance's again closest first."""
    result = replace(result)
    n = len(result.found)
    distance = np.full((n, k), np.nan)
    distance[owners, ranks] = (result.distance[owners] if k == 1
                               else result.answer_distance[owners, ranks])
    distance[owners[changed_rows], ranks[changed_rows]] += delta[changed_rows]
    gap = getattr(result, "gap", None)
    first = changed_rows[ranks[changed_rows] == 0]
    if gap is not None and first.size:
        # What the exact search proved: the optimum is at least (1 - gap) times the old
        # distance, now a smaller share of the answer's.
        old, new = result.distance[owners[first]], distance[owners[first], 0]
        result.gap = gap.copy()
        result.gap[owners[first]] = np.where(
            new > 0, np.maximum(0.0, 1.0 - (1.0 - gap[owners[first]]) * old
                                / np.where(new > 0, new, 1.0)), gap[owners[first]])
    if k == 1:
        i = owners[changed_rows]
        result.explanation = result.explanation.copy()
        result.explanation_proba = result.explanation_proba.copy()
        result.explanation_class = result.explanation_class.copy()
        result.explanation[i] = rounded[changed_rows]
        result.explanation_proba[i] = proba[changed_rows]
        result.explanation_class[i] = pred[changed_rows]
        result.distance = distance[:, 0]
        return result
    answers = result.answers.copy()
    answers[owners[changed_rows], ranks[changed_rows]] = rounded[changed_rows]
    for later in range(1, k):  # two answers rounded to one: the later one goes
        for earlier in range(later):
            same = np.all((answers[:, later] == answers[:, earlier])
                          | (np.isnan(answers[:, later]) & np.isnan(answers[:, earlier])),
                          axis=1) & np.isfinite(distance[:, earlier])
            answers[same, later], distance[same, later] = np.nan, np.nan
    # Rank 0's class and probabilities, for an answer that rounding made the closest.
    probas = np.full((n, k, result.explanation_proba.shape[1]), np.nan)
    classes = np.full((n, k), -1)
    probas[rows, 0], classes[rows, 0] = result.explanation_proba[rows], \
        result.explanation_class[rows]
    probas[owners[changed_rows], ranks[changed_rows]] = proba[changed_rows]
    classes[owners[changed_rows], ranks[changed_rows]] = pred[changed_rows]
    order = np.argsort(np.where(np.isnan(distance), np.inf, distance), axis=1, kind="stable")
    take = np.arange(n)[:, None]
    result.answers, result.answer_distance = answers[take, order], distance[take, order]
    result.explanation = result.explanation.copy()
    result.explanation_proba = result.explanation_proba.copy()
    result.explanation_class = result.explanation_class.copy()
    result.explanation[rows] = result.answers[rows, 0]
    result.explanation_proba[rows] = probas[take, order][rows, 0]
    result.explanation_class[rows] = classes[take, order][rows, 0]
    unknown = rows[result.explanation_class[rows] < 0]  # a rank unrounded, now the closest
    if unknown.size:
        result.explanation_proba[unknown] = backend.predict_proba(result.explanation[unknown])
        result.explanation_class[unknown] = backend.predict(result.explanation[unknown])
    result.distance = result.distance.copy()
    result.distance[rows] = result.answer_distance[rows, 0]
    return result
