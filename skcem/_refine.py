"""What ``search="auto"`` adds to the gradient search on tables: completion and polish.

The gradient search (:mod:`skcem._fista`) minimises a weighted sum, so its answers can keep
changes that the class does not need (the L1 shrinkage only removes small ones), and a row
whose ``c`` never grows enough goes unanswered even where a training row of the wanted class
shows an answer. After it, for the rows of a batch:

1. **Complete.** Rows without an answer get the gradient-free search's
   (:class:`~skcem._neighbors.NeighborSearch`), from the training rows of a wanted class; the
   others keep it where it is closer than the polished gradient answer (with several classes
   the gradient search may settle on a class or boundary several times farther).
2. **Polish.** Every answer has each change that can be reverted alone reverted (greedily,
   the largest saving first), each remaining numeric change bisected towards its unchanged
   value while the answer stays valid, and the reverts tried once more: no change that could
   be reverted alone is left, and every step keeps validity, asked of the model.

Both use the gradient-free search's own steps, on the same problem, constraints and
distance; the reference's optimizer itself is untouched (``search="fista"`` runs it alone).
"""

from dataclasses import replace

import numpy as np

from ._neighbors import NeighborSearch, _Batch, choose_diverse

# Bisection steps per shrunk change, and changes shrunk one by one (the largest first).
_N_BISECTIONS = 7
_MAX_SHRUNK = 32


def complete_and_polish(backend, problem, result, pool, whole, finish=None):
    """``result`` of the gradient search with its unanswered rows completed from ``pool``
    (None: not completed) and every answer polished; a new :class:`SearchResult`.

    Parameters
    ----------
    backend : object
        The search's backend (model rows in, probabilities and classes out).
    problem : SearchProblem
        The batch's problem, in the coordinates of ``result.explanation``.
    result : SearchResult
        The gradient search's answers.
    pool : CandidatePool or None
        Rows the gradient-free search starts from.
    whole : ndarray of bool, shape (n_features,)
        Columns kept whole numbers (category codes and integer columns).
    finish : callable, optional
        ``finish(problem, result)``: the last step of both searches' answers before they
        compete (the rounding to the columns' decimals), so that the cheaper one is chosen
        as the user gets it.
    """
    result = replace(result)
    searchable = np.ones(len(result.found), bool) if problem.searchable is None \
        else problem.searchable
    rows = np.flatnonzero(searchable)
    others = None
    if pool is not None and rows.size:
        # The gradient-free search's answers complete the rows left unanswered and compete
        # with the others: on several classes the gradient search may settle on a class, or
        # a boundary, several times farther than one a training row shows.
        others = NeighborSearch(pool, whole)(backend, subset_problem(problem, rows))
        missing = ~result.found[rows]
        take_answers(result, _subset_result(others, missing), rows[missing])
    answered = np.flatnonzero(result.found)
    if answered.size == 0:
        return result
    batch = _Batch(backend, problem, whole)
    answers = result.explanation[answered]
    polished = batch.revert(answers, answered)
    polished = batch.shrink(polished, answered, _N_BISECTIONS, _MAX_SHRUNK)
    polished = batch.revert(polished, answered)
    # Each step moves towards the unchanged values and keeps validity: a polished answer
    # is never farther (its distance may differ from the search's by rounding only).
    checked = batch.result(polished, answered, len(result.found))
    take_answers(result, checked, answered, keep_c=True)
    if finish is not None:
        result = finish(problem, result)
        if others is not None:
            others = finish(subset_problem(problem, rows), others)
    if others is not None:
        _take_cheaper(result, batch, others, rows)
    return result


def keep_cheaper(backend, problem, result, other, whole):
    """``result`` taking ``other``'s answers where they cost less (both of all instances)."""
    result = replace(result)
    _take_cheaper(result, _Batch(backend, problem, whole), other, np.arange(len(result.found)))
    return result


def _take_cheaper(result, batch, other, rows):
    """``other``'s answers for ``rows`` where they cost less than ``result``'s (the distance,
    plus the plausibility term where there is one: the gradient search ends at the model's
    boundary, the gradient-free one starts among rows of the class, which that term asks
    for)."""
    better = np.zeros(len(rows), bool)
    found = other.found & result.found[rows]
    better[found] = batch.cost(other.explanation[found], rows[found]) \
        < batch.cost(result.explanation[rows[found]], rows[found])
    if better.any():
        take_answers(result, _subset_result(other, better), rows[better])


def _subset_result(result, keep):
    """The rows ``keep`` of a :class:`SearchResult` (the fields :func:`take_answers` copies)."""
    return replace(result, **{name: getattr(result, name)[keep] for name in (
        "explanation", "found", "distance", "explanation_proba", "explanation_class",
        "rejected_by_predict", "flat_gradient")})


def add_alternatives(backend, problem, result, pool, whole, n_answers, finish=None,
                     **options):
    """``result`` with ``answers``: up to ``n_answers`` distinct answers per instance, its own
    and the gradient-free search's from ``pool`` (its ``options``: see
    :class:`~skcem._neighbors.NeighborSearch`), chosen by
    :func:`~skcem._neighbors.choose_diverse`, closest first; a new :class:`SearchResult`.

    Rank 0 is always ``explanation``: where an alternative is closer than the instance's
    own answer, it becomes the explanation (its probabilities asked of the model).
    Instances without an answer get no alternatives. ``finish(problem, result)`` is the
    last step of the alternatives before they compete with the instance's own answer (as
    in :func:`complete_and_polish`): an exact answer in the data's decimals is not beaten
    by one a hair closer that the rounding then puts farther.
    """
    result = replace(result)
    n, d = result.explanation.shape
    result.answers = np.full((n, n_answers, d), np.nan)
    result.answer_distance = np.full((n, n_answers), np.nan)
    answered = np.flatnonzero(result.found)
    if answered.size == 0:
        return result
    others = NeighborSearch(pool, whole, n_answers=n_answers, **options)(
        backend, subset_problem(problem, answered))
    if finish is not None:
        others = finish(subset_problem(problem, answered), others)
    batch = _Batch(backend, problem, whole)
    for position, instance in enumerate(answered):
        alternative = np.isfinite(others.answer_distance[position])
        candidates = np.vstack([result.explanation[instance],
                                others.answers[position][alternative]])
        distances = np.r_[result.distance[instance],
                          others.answer_distance[position][alternative]]
        closest_first = np.argsort(distances, kind="stable")  # own answer first on ties
        candidates, distances = candidates[closest_first], distances[closest_first]
        owner = np.full(len(candidates), instance)
        kept = choose_diverse(candidates, batch.difference(candidates, owner),
                              batch.categorical, n_answers)
        result.answers[instance, :len(kept)] = candidates[kept]
        result.answer_distance[instance, :len(kept)] = distances[kept]
    return _closest_as_explanation(backend, problem, result, answered)


def add_answers_elsewhere(backend, problem, result, pool, whole, n_answers, **options):
    """``result`` (with ``answers``) where instances got fewer than ``n_answers``: their
    further answers from the gradient-free search with every feature their answers change
    held at the instance's value, chosen as in :func:`add_alternatives`; a new
    :class:`SearchResult`.

    The search refines the starts nearest to the instance; where those all lead to the same
    few features (every start's change of them is the cheapest there), another feature's
    answer lies beyond all of them, and is found only once those features are held.
    """
    counts = np.isfinite(result.answer_distance).sum(axis=1)
    short = np.flatnonzero(result.found & (counts < n_answers))
    if short.size == 0:
        return result
    x0 = problem.x0[short]
    answers = result.answers[short]
    touched = np.any(np.isfinite(answers) & (answers != x0[:, None]), axis=1)
    mutable = np.ones(x0.shape, bool) if problem.mutable is None else \
        np.broadcast_to(problem.mutable_of(short), x0.shape)
    mutable = mutable & ~touched
    searched = short[mutable.any(axis=1)]
    if searched.size == 0:
        return result
    held = replace(subset_problem(problem, searched),
                   mutable=mutable[np.isin(short, searched)])
    others = NeighborSearch(pool, whole, n_answers=n_answers, **options)(backend, held)
    result = replace(result, answers=result.answers.copy(),
                     answer_distance=result.answer_distance.copy())
    batch = _Batch(backend, problem, whole)
    for position, instance in enumerate(searched):
        own = np.isfinite(result.answer_distance[instance])
        new = np.isfinite(others.answer_distance[position])
        if not new.any():
            continue
        candidates = np.vstack([result.answers[instance][own], others.answers[position][new]])
        distances = np.r_[result.answer_distance[instance][own],
                          others.answer_distance[position][new]]
        closest_first = np.argsort(distances, kind="stable")  # own answers first on ties
        candidates, distances = candidates[closest_first], distances[closest_first]
        kept = choose_diverse(candidates, batch.difference(candidates,
                                                           np.full(len(candidates), instance)),
                              batch.categorical, n_answers)
        result.answers[instance] = np.nan
        result.answer_distance[instance] = np.nan
        result.answers[instance, :len(kept)] = candidates[kept]
        result.answer_distance[instance, :len(kept)] = distances[kept]
    return _closest_as_explanation(backend, problem, result, searched)


def _closest_as_explanation(backend, problem, result, rows):
    """``result`` whose ``explanation`` of the instances ``rows`` is their rank-0 answer."""
    swapped = rows[np.any(result.answers[rows, 0] != result.explanation[rows], axis=1)]
    if swapped.size == 0:
        return result
    result.explanation = result.explanation.copy()
    result.explanation[swapped] = result.answers[swapped, 0]
    rows_for_model = problem.with_missing(result.answers[swapped, 0], swapped)
    for name, value in (("distance", result.answer_distance[swapped, 0]),
                        ("explanation_proba", backend.predict_proba(rows_for_model)),
                        ("explanation_class", backend.predict(rows_for_model)),
                        ("best_c", np.nan)):
        array = getattr(result, name).copy()
        array[swapped] = value
        setattr(result, name, array)
    return result


def subset_problem(problem, rows):
    """The problem of some of a batch's instances."""
    per_row = {name: getattr(problem, name)[rows] for name in ("x0", "target")}
    for name in ("searchable", "missing"):  # per instance where given
        value = getattr(problem, name)
        if value is not None:
            per_row[name] = value[rows]
    for name in ("no_info_val", "lower", "upper", "mutable"):
        value = getattr(problem, name)
        if np.ndim(value) == 2:
            per_row[name] = value[rows]
    return replace(problem, **per_row)


def unanswered(problem, result):
    """Positions of the rows of ``problem`` that are searched and ``result`` left without an
    answer."""
    searchable = np.ones(len(result.found), bool) if problem.searchable is None \
        else problem.searchable
    return np.flatnonzero(~result.found & searchable)


def take_answers(result, other, rows, keep_c=False):
    """Copy ``other``'s answers for ``rows`` (positions in the batch, or in ``other`` when it
    holds only those rows) into ``result``, where ``other`` found one."""
    source = rows if len(other.found) == len(result.found) else np.arange(len(rows))
    found = other.found[source]
    rows, source = rows[found], source[found]
    result.explanation = result.explanation.copy()
    result.explanation[rows] = other.explanation[source]
    for name in ("found", "distance", "explanation_proba", "explanation_class",
                 "rejected_by_predict", "flat_gradient"):
        values = getattr(result, name).copy()
        values[rows] = getattr(other, name)[source]
        setattr(result, name, values)
    if not keep_c:
        best_c = result.best_c.copy()
        best_c[rows] = np.nan
        result.best_c = best_c
    if result.answers is not None:  # several answers per row: ``other``'s are its only ones
        result.answers, result.answer_distance = \
            result.answers.copy(), result.answer_distance.copy()
        result.answers[rows] = np.nan
        result.answer_distance[rows] = np.nan
        if other.answers is None:
            result.answers[rows, 0] = other.explanation[source]
            result.answer_distance[rows, 0] = other.distance[source]
        else:
            width = min(result.answers.shape[1], other.answers.shape[1])
            result.answers[rows, :width] = other.answers[source, :width]
            result.answer_distance[rows, :width] = other.answer_distance[source, :width]
