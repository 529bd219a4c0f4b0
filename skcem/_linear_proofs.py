"""Proofs that no admissible answer exists, for models whose decision is linear.

A model whose ``decision_function`` is affine in the features (a ``LogisticRegression``, a
linear SVM or discriminant analysis, behind scalers or a PCA) and whose ``predict`` is the
class of the largest score puts a row in class ``k`` exactly where ``W x + b`` has its largest
entry at ``k``: a polyhedron. The answers a search may return lie in a box (the feature range,
immutable features held, ``directions``, a PN's moves away from the no-information value:
their convex hull), so a linear program over the box tells whether any row of it is in a
wanted class. Where none is, no setting of the search can find an answer, and the warning says
so instead of advising a larger ``c``. The box is a relaxation (whole numbers, decimals and a
PN's two sides of the no-information value are left out), so an infeasible program is a proof;
a feasible one proves nothing.

The same program, with the distance as its objective, gives the closest answer of the box in
a wanted class (:func:`closest_of_class`): the search's last resort for rows whose answers
need moves no gradient step or training row reaches, such as a PN's across the
no-information value on several features at once.
"""

import time

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp

# relative error above which the decision is not taken for affine (rounding stays far below)
_AFFINE_RTOL = 1e-7
# tangents of each square on either side (halving from the box's width: within an eighth)
_TANGENTS = 10


def predicts_largest_score(estimator):
    """Whether ``estimator``'s ``predict`` is, by construction, the class of the largest
    ``decision_function`` score (the sign of one score): a scikit-learn linear classifier or
    linear discriminant analysis, alone or at the end of a Pipeline (frozen or not), or a
    one-vs-rest classifier of such models with decision functions. Not a wrapper such as a
    threshold classifier or a bagging ensemble, whose ``predict`` follows other numbers,
    however close to these."""
    from sklearn.base import is_classifier
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.svm import LinearSVC

    from ._decision_scores import DecisionScores
    from ._wrappers import frozen_inner

    if isinstance(estimator, DecisionScores):  # the softmax skcem puts around its scores
        estimator = estimator.estimator
    estimator = frozen_inner(estimator)
    if isinstance(estimator, Pipeline):
        estimator = frozen_inner(estimator.steps[-1][1])
    if isinstance(estimator, OneVsRestClassifier):  # the argmax of its models' scores
        inner = getattr(estimator, "estimators_", [])
        return len(inner) > 0 and all(predicts_largest_score(model) and
                                      hasattr(model, "decision_function") for model in inner)
    return isinstance(estimator, (LinearDiscriminantAnalysis, LinearSVC)) or (
        type(estimator).__module__.startswith("sklearn.linear_model")
        and is_classifier(estimator))


def largest_score(W, b, X):
    """The class position of each row of ``X`` by ``W x + b``: that of the largest score
    (one score: 1 where it is positive)."""
    scores = X @ W.T + b
    return (scores[:, 0] > 0).astype(int) if len(W) == 1 else scores.argmax(axis=1)


def affine_decision(decision, n_features, centre, scale):
    """``(W, b)`` with ``decision(x) = W @ x + b`` for every row ``x`` (as many columns per
    row as the model has scores), or None where the decision is not affine.

    ``decision`` maps an array of rows to their scores; it is asked once, about ``centre``,
    ``centre`` moved by ``scale`` along each feature, and three random rows that check the
    affine map it gives.
    """
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    rng = np.random.default_rng(0)
    probes = centre + scale * rng.uniform(-3.0, 3.0, size=(3, n_features))
    rows = np.vstack([centre, centre + np.diag(scale), probes])
    try:
        scores = np.asarray(decision(rows), dtype=float)
    except (TypeError, ValueError, AttributeError):
        return None
    scores = scores.reshape(len(rows), -1)
    if not np.isfinite(scores).all():
        return None
    W = ((scores[1:n_features + 1] - scores[0]) / scale[:, None]).T
    b = scores[0] - W @ centre
    expected = probes @ W.T + b
    size = np.abs(scores).max() + 1.0
    if np.abs(expected - scores[n_features + 1:]).max() > _AFFINE_RTOL * size:
        return None
    return W, b


def reaches_class(W, b, box, k):
    """Whether some row of the admissible ``box`` (see :func:`admissible_box`) has class
    ``k`` by ``W x + b``: the largest score at ``k`` (one score: class 1 where it is
    positive, 0 elsewhere). Ties and a margin of rounding count as reached: only a clear
    "no" is a proof."""
    lower, upper, gap_lower, gap_upper = box
    if len(W) == 1:  # one score: the best end of each feature (both are in the set)
        sign = 1.0 if k == 1 else -1.0
        w = sign * W[0]
        best = np.where(w > 0, w * upper, w * lower).sum() + sign * b[0]
        return best > -_margin(W, b, lower, upper)
    n = W.shape[1]
    others = [j for j in range(len(W)) if j != k]
    gaps = np.flatnonzero(gap_lower < gap_upper)
    # variables: x (n), t, one binary per gap (0: below it, 1: above it); minimise t with
    # s_j(x) - s_k(x) <= t for every other class j: class k is reachable where t <= 0
    m = n + 1 + len(gaps)
    rows = [np.hstack([W[others] - W[k], -np.ones((len(others), 1)),
                       np.zeros((len(others), len(gaps)))])]
    upper_bounds = [b[k] - b[others]]
    gap_rows, gap_bounds = _sides_of_gaps(box, gaps, m, n + 1)
    rows, upper_bounds = rows + gap_rows, upper_bounds + gap_bounds
    cost = np.zeros(m)
    cost[n] = 1.0
    bounds = Bounds(np.r_[lower, -np.inf, np.zeros(len(gaps))],
                    np.r_[upper, np.inf, np.ones(len(gaps))])
    integrality = np.r_[np.zeros(n + 1), np.ones(len(gaps))]
    result = milp(cost, constraints=LinearConstraint(np.vstack(rows), -np.inf,
                                                     np.concatenate(upper_bounds)),
                  bounds=bounds, integrality=integrality)
    if result.status != 0:
        return result.status != 2  # infeasible (2) cannot be: t is free; anything else: no proof
    return result.fun < _margin(W, b, lower, upper)


def _sides_of_gaps(box, gaps, n_variables, first_binary):
    """The rows ``A v <= u`` (as lists of arrays) that keep each feature of ``gaps`` out of
    its gap: below it where its binary (at ``first_binary`` onwards) is 0, above it where 1."""
    lower, upper, gap_lower, gap_upper = box
    rows, upper_bounds = [], []
    for g, j in enumerate(gaps):
        # x_j <= gap_lower_j + (upper_j - gap_lower_j) z and x_j >= gap_upper_j - (gap_upper_j
        # - lower_j) (1 - z)
        below = np.zeros(n_variables)
        below[j], below[first_binary + g] = 1.0, -(upper[j] - gap_lower[j])
        above = np.zeros(n_variables)
        above[j], above[first_binary + g] = -1.0, gap_upper[j] - lower[j]
        rows += [below[None], above[None]]
        upper_bounds += [[gap_lower[j]], [-lower[j]]]
    return rows, upper_bounds


def closest_of_class(W, b, x, box, k, l1, l2, margin, whole=None, time_limit=None,
                     beaten=None, least_margin=None):
    """The row of the admissible ``box`` closest to ``x`` whose class by ``W x + b`` is
    ``k``, with every other score ``margin`` below ``k``'s (one score: ``margin`` on its
    side of 0), or None where the program finds none in ``time_limit`` seconds. With
    ``beaten`` (class positions), only their scores must be ``margin`` below ``k``'s, the
    others' ``least_margin``: a PN need beat only the class it explains by its margin.

    The distance is ``sum(l1 * |d| + l2 * d**2)`` (``d = row - x``; weights per feature):
    its L1 part exactly, its squares by the largest of tangents at ``d`` halving from the
    width of the box (within an eighth of the square between tangents, down to 2**-9 of
    the width). ``whole`` marks features that take whole numbers. The point is HiGHS's,
    within its tolerances: callers check it with the model.
    """
    lower, upper, gap_lower, gap_upper = box
    n = W.shape[1]
    gaps = np.flatnonzero(gap_lower < gap_upper)
    l1 = np.broadcast_to(np.asarray(l1, dtype=float), (n,))
    l2 = np.broadcast_to(np.asarray(l2, dtype=float), (n,))
    squared = np.flatnonzero((l2 > 0) & (upper > lower))
    width = np.maximum(upper - lower, np.finfo(float).tiny)[squared]
    slopes = np.concatenate([width / 2.0**i for i in range(_TANGENTS)])
    slopes = np.concatenate([slopes, -slopes])
    owners = np.tile(np.arange(len(squared)), 2 * _TANGENTS)
    # variables: x (n), |x - row| (n), one term per squared feature, one binary per gap;
    # the rows sparse (a wide model's dense ones took gigabytes)
    first_square, first_binary = 2 * n, 2 * n + len(squared)
    m = first_binary + len(gaps)
    at = np.arange(n)

    def block(row_index, columns, values, n_rows):
        return sparse.csr_matrix((values, (row_index, columns)), shape=(n_rows, m))

    ones = np.ones(n)
    rows = [block(np.r_[at, at], np.r_[at, n + at], np.r_[ones, -ones], n),
            block(np.r_[at, at], np.r_[at, n + at], np.r_[-ones, -ones], n)]
    upper_bounds = [x, -x]
    if squared.size:
        # l2 (2 a d - a^2) <= q for each tangent point a: q >= l2 d^2 at d = a, below it elsewhere
        count = np.arange(len(slopes))
        rows.append(block(np.r_[count, count], np.r_[squared[owners], first_square + owners],
                          np.r_[2 * slopes * l2[squared[owners]], -np.ones(len(slopes))],
                          len(slopes)))
        upper_bounds.append(l2[squared[owners]] * (2 * slopes * x[squared[owners]]
                                                   + slopes**2))
    others = [j for j in range(len(W)) if j != k]
    scores = W[[0]] * (1.0 if k == 1 else -1.0) if len(W) == 1 else W[k] - W[others]
    offsets = b[[0]] * (1.0 if k == 1 else -1.0) if len(W) == 1 else b[k] - b[others]
    margins = np.full(len(scores), float(margin))
    if beaten is not None and len(W) > 1:
        margins = np.where(np.isin(others, beaten), margin,
                           margin if least_margin is None else least_margin)
    rows.append(sparse.hstack([sparse.csr_matrix(-scores),
                               sparse.csr_matrix((len(scores), m - n))]))
    upper_bounds.append(offsets - margins)
    gap_rows, gap_bounds = _sides_of_gaps(box, gaps, m, first_binary)
    rows += [sparse.csr_matrix(row) for row in gap_rows]
    upper_bounds += gap_bounds
    cost = np.concatenate([np.zeros(n), l1, np.ones(len(squared)), np.zeros(len(gaps))])
    bounds = Bounds(np.r_[lower, np.zeros(n), np.zeros(len(squared)), np.zeros(len(gaps))],
                    np.r_[upper, np.full(n + len(squared), np.inf), np.ones(len(gaps))])
    whole = np.zeros(n, bool) if whole is None else np.asarray(whole, bool)
    integrality = np.r_[whole.astype(float), np.zeros(n + len(squared)), np.ones(len(gaps))]
    started = time.monotonic()
    options = {} if time_limit is None else {"time_limit": float(time_limit)}
    constraints = LinearConstraint(sparse.vstack(rows, format="csr"), -np.inf,
                                   np.concatenate(upper_bounds))
    result = milp(cost, constraints=constraints, bounds=bounds, integrality=integrality,
                  options=options)
    left = None if time_limit is None else time_limit - (time.monotonic() - started)
    if result.status == 4 and (left is None or left > 0):
        # HiGHS's "solve error", met after its presolve on small programs
        result = milp(cost, constraints=constraints, bounds=bounds, integrality=integrality,
                      options={"presolve": False} if left is None else
                      {"presolve": False, "time_limit": left})
    if result.x is None:
        return None
    row = np.clip(np.where(whole, np.round(result.x[:n]), result.x[:n]), lower, upper)
    # the solver's tolerance moves unchanged features by rounding noise: not a change
    noise = 1e-9 * (upper - lower + np.abs(x))
    row = np.where(np.abs(row - x) <= noise, x, row)
    inside = (row > gap_lower) & (row < gap_upper)  # by the solver's tolerance
    nearer_below = row - gap_lower < gap_upper - row
    return np.where(inside, np.where(nearer_below, gap_lower, gap_upper), row)


def _margin(W, b, lower, upper):
    """A tolerance on scores for the box's rounding: above what float64 can tell apart."""
    reach = np.abs(W) @ np.maximum(np.abs(lower), np.abs(upper)) + np.abs(b)
    return 1e-9 * (reach.max() + 1.0)


def admissible_box(x, lower, upper, immutable, directions, no_info_val=None):
    """The values each feature of the row ``x`` may take in an answer, as ``(lower, upper,
    gap_lower, gap_upper)``: within ``[lower, upper]`` but not strictly inside the gap
    (where ``gap_lower < gap_upper``); held where immutable, on the side ``directions``
    allows, and for a PN (``no_info_val`` given) at least as far from it as ``x``, on either
    side (the gap is nearer)."""
    lo, hi = lower.astype(float).copy(), upper.astype(float).copy()
    gap_lo, gap_hi = np.zeros_like(lo), np.zeros_like(lo)
    if no_info_val is not None:
        radius = np.abs(x - no_info_val)
        below, above = no_info_val - radius, no_info_val + radius
        # x's own side holds x; the other side only values past x's mirror (the mirror
        # itself is no farther from the value: no PN move)
        left = (x <= no_info_val) | (lower < below)
        right = (x >= no_info_val) | (upper > above)
        lo = np.where(left, lower, above)
        hi = np.where(right, upper, below)
        both = left & right & (below < above)
        gap_lo, gap_hi = np.where(both, below, 0.0), np.where(both, above, 0.0)
    lo = np.where(directions > 0, np.maximum(lo, x), lo)
    hi = np.where(directions < 0, np.minimum(hi, x), hi)
    held = immutable.copy()
    lo = np.where(held, x, np.minimum(lo, x))
    hi = np.where(held, x, np.maximum(hi, x))
    # a gap the direction cut to one side is no gap: its side alone is left
    gap_lo = np.where(held, 0.0, np.maximum(gap_lo, lo))
    gap_hi = np.where(held, 0.0, np.minimum(gap_hi, hi))
    return lo, hi, gap_lo, gap_hi


def past_the_mirror(box, x, no_info_val):
    """A PN's :func:`admissible_box` with the far edge of each gap moved a little past the
    mirror of ``x`` (which is no farther from ``no_info_val``, hence no move of a PN), and a
    side whose only values that leaves lie outside the range dropped: the set of answers
    :func:`closest_of_class` may return."""
    lower, upper, gap_lower, gap_upper = box
    step = 1e-7 * np.maximum(np.abs(x - no_info_val), np.abs(x)) + 1e-12
    gap = gap_lower < gap_upper
    gap_lower = np.where(gap & (x >= no_info_val), gap_lower - step, gap_lower)
    gap_upper = np.where(gap & (x < no_info_val), gap_upper + step, gap_upper)
    # a mirror at the range's end leaves that side nothing farther: the other side alone
    lower, upper = np.where(gap & (gap_lower < lower), gap_upper, lower), \
        np.where(gap & (gap_upper > upper), gap_lower, upper)
    gap &= (gap_lower >= lower) & (gap_upper <= upper)
    return lower, upper, np.where(gap, gap_lower, 0.0), np.where(gap, gap_upper, 0.0)
