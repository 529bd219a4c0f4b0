"""Answers in the decimals of their columns.

A float column whose values given to ``fit`` all hold a few decimals (amounts in cents, a
measurement to 0.1) gets answers in those decimals. The searches move numbers continuously:
an answer lies a float32 step past a tree's threshold, or where a gradient step stopped
(2.7500008724923233), which is no value the column holds. Each such cell is rounded, the
nearest value of the column's decimals first, else one step further the mode's way (a PN
or counterfactual changes a little more, a PP keeps a little more of the instance), and a
rounded answer is kept only where the model still gives it the answer's class (one call for
all rows, per way); otherwise the search's own value stays.
"""

from dataclasses import replace

import numpy as np

# Decimals looked for, at most.
_MAX_DECIMALS = 6
# Distinct values a column must hold for its decimals to be read from them.
_MIN_VALUES = 10
# A step of the decimals must be at least this share of the column's largest magnitude:
# finer ones are float32's resolution, not the data's.
_FINEST_STEP = 1e-5
# How far from a multiple of the step a value may lie, as a share of the column's largest
# magnitude (two float32 units: float32 data read as float64).
_TOLERANCE = 2.4e-7


def column_decimals(X, candidates):
    """Per column, the decimals all its finite values hold (0, whole numbers, to
    ``_MAX_DECIMALS``); -1 for
    columns that are not ``candidates``, hold fewer than ``_MIN_VALUES`` distinct values, or
    hold values of no such decimals."""
    X = np.asarray(X, dtype=float)
    decimals = np.full(X.shape[1], -1)
    for j in np.flatnonzero(candidates):
        values = X[:, j][np.isfinite(X[:, j])]
        largest = np.max(np.abs(values), initial=0.0)
        if largest == 0 or np.unique(values).size < _MIN_VALUES:
            continue
        for places in range(_MAX_DECIMALS + 1):
            scale = 10.0 ** places
            if largest * scale * _FINEST_STEP > 1:
                break
            scaled = values * scale
            if np.all(np.abs(scaled - np.rint(scaled)) <= largest * scale * _TOLERANCE):
                decimals[j] = places
                break
    return decimals


def round_to_decimals(backend, problem, result, decimals):
    """``result`` with its answers' changed cells in their columns' ``decimals``, where the
    model keeps each answer's class (every answer, of every rank; the distances follow)."""
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
        more = np.isfinite(result.answer_distance[:, 1:])
        owner, rank = np.nonzero(more)
        answers.append(result.answers[owner, rank + 1])
        owners.append(owner)
        ranks.append(rank + 1)
    else:
        k = 1
    answers, owners, ranks = np.vstack(answers), np.concatenate(owners), \
        np.concatenate(ranks)
    x0 = problem.x0[owners]
    background = np.broadcast_to(problem.background, problem.x0.shape)[owners]
    scale = np.where(columns, 10.0 ** np.maximum(decimals, 0), 1.0)
    on_grid = _on_grid(x0 * scale)
    movable = columns & np.isfinite(answers) & (answers != x0) & (answers != background) \
        & on_grid & ~_on_grid(answers * scale)
    if problem.missing is not None:
        movable &= ~problem.missing[owners]
    todo = np.flatnonzero(movable.any(axis=1))
    if todo.size == 0:
        return result
    lower = np.broadcast_to(problem.lower, problem.x0.shape)[owners]
    upper = np.broadcast_to(problem.upper, problem.x0.shape)[owners]
    rounded = answers.copy()
    proba = np.full((len(answers), problem.n_classes), np.nan)
    pred = np.full(len(answers), -1)
    for way in (np.rint(answers * scale) / scale,
                problem.mode.round_whole(answers * scale, x0 * scale) / scale):
        way = np.clip(way, lower, upper)
        # Never past the instance's value, nor (a PP) past the no-information value.
        keeps_side = ((way - x0) * (answers - x0) >= 0) & \
            ((way - background) * (answers - background) >= 0)
        trial = np.where(movable & keeps_side, way, answers)[todo]
        asked = problem.with_missing(trial, owners[todo])
        trial_proba = backend.predict_proba(asked)
        trial_pred = backend.predict(asked)
        changed = np.any(np.isfinite(asked) & (asked != x0[todo]), axis=1) \
            if problem.mode.requires_change else None
        ok = problem.mode.is_success(trial_proba, problem.target[owners[todo]], problem.kappa,
                                     pred=trial_pred, changed=changed)
        done = todo[ok]
        rounded[done] = trial[ok]
        proba[done], pred[done] = trial_proba[ok], trial_pred[ok]
        todo = todo[~ok]
        if todo.size == 0:
            break
    changed_rows = np.flatnonzero(np.any(rounded != answers, axis=1) & (pred >= 0))
    if changed_rows.size == 0:
        return result
    delta = _distance_terms(problem, rounded, owners, background) - \
        _distance_terms(problem, answers, owners, background)
    return _with_rounded(backend, result, rows, owners, ranks, k, rounded, proba, pred,
                         delta, changed_rows)


def _on_grid(scaled):
    return np.abs(scaled - np.rint(scaled)) <= _TOLERANCE * np.maximum(np.abs(scaled), 1.0)


def _distance_terms(problem, answers, owners, background):
    """Each answer's distance over its numeric cells (the iterate's, as the searches measure:
    a PP's from the no-information value)."""
    x0 = problem.x0[owners]
    change = problem.mode.iterate(answers, x0, background) - x0
    change = np.where(np.isfinite(change), change, 0.0)
    if problem.categorical is not None:
        change = np.where(problem.categorical, 0.0, change)
    l1 = np.broadcast_to(problem.l1_weight, problem.x0.shape)[owners]
    l2 = np.broadcast_to(problem.l2_weight, problem.x0.shape)[owners]
    return np.sum(l1 * np.abs(change) + l2 * change**2, axis=1)


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
            new > 0, 1.0 - (1.0 - gap[owners[first]]) * old / np.where(new > 0, new, 1.0),
            gap[owners[first]])
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
