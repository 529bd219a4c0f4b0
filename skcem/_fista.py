"""The batched FISTA optimizer with a binary search on ``c`` (Dhurandhar et al., 2018).

This is the one implementation of the algorithm, for every model kind and for both
explainers built on it (CEM and counterfactuals). Once per iteration it asks a gradient backend
(see :mod:`skcem._gradients`) one question, ``evaluate(Z_adv, Z_s, target_onehot, loss, ...)``:
the class probabilities at the new iterates (for the book-keeping) and, at the new slack points
(for the next step), the gradients of ``loss`` (:class:`skcem.costs.HingeAttack` for CEM) and
of the auto-encoder term ``||AE(z) - z||^2``, with respect to the model input ``z``. A
black-box backend answers with finite differences, a Keras backend with autodiff in one
compiled call. The objective is assembled from the terms of :mod:`skcem.costs`. All instances
of a batch iterate together, each with its own ``c``, bracket and bests; the reference runs
the same search one instance at a time.

The search runs where the backend's model runs (:mod:`skcem._array_api`): a backend with an
``array_place()`` (a PyTorch module's or a Keras model's on torch, on its device; a Keras
model's on JAX, on an accelerator) gets and returns that library's arrays, and the batch's
constants, iterates and bests stay there from the first iteration to the last; the search on
``c`` (one number per instance and c-step) and the final checks run on the host. Every array
operation of the iterations goes through the arrays' namespace, numpy itself on the host, so
that the host path's answers are those it always gave.

One deliberate difference from the reference: the momentum's slack point is clipped to the
feature range (or the instance's own value, where that lies outside), as the iterates are by
the shrinkage step. The reference extrapolates past the range and asks the model there, which
a model with a ``log`` or ``sqrt`` step answers with NaN.
"""

from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from ._array_api import (bool_dtype, copy, int_dtype, namespace, one_hot_like, place_of,
                         set_rows, to_numpy)
from ._modes import Mode
from .costs import L1, L2

_C_UPPER_INIT = 1e10
_C_UPPER_UNSET = 1e9
# With early stopping, an instance leaves the c-search once its bracket on c is this tight
# (relative): the objective is linear in c, so nearby values give the same answer.
_C_BRACKET_RTOL = 0.05


def widened_background(no_info_val, lower, upper, x0):
    """``no_info_val`` clipped to the feature range, widened to the instance's own value
    where that lies outside it: of one row, or of one row per instance of ``x0`` where one
    lies outside."""
    xp = namespace(no_info_val, lower)
    inside = xp.clip(no_info_val, lower, upper)
    outside = (x0 < lower) | (x0 > upper)
    if not bool(xp.any(outside)):
        return inside  # the common case: the same array as before, of one row
    lowest = xp.where(x0 < lower, x0, lower)
    highest = xp.where(x0 > upper, x0, upper)
    return xp.clip(no_info_val, lowest, highest)


@dataclass(frozen=True)
class SearchProblem:
    """The constants of one batch: everything the optimizer needs besides the backend.

    ``mode`` (:mod:`skcem._modes`) owns all that differs between PN, PP and counterfactuals.

    The distance to ``x0`` is ``l2_weight * ||d||_2^2 + l1_weight * ||d||_1`` (weights scalar
    or per feature); it enters the objective times ``distance_weight`` (a counterfactual's
    ``C``; 1 for CEM, whose weight ``c`` is on the attack term). ``searchable`` marks the
    instances that are searched at all (None: all). ``directions`` holds, per feature, +1
    (may only increase), -1 (only decrease) or 0; ``categorical`` marks category codes, which
    only the gradient-free search (:mod:`skcem._neighbors`) moves. ``whole`` marks integer
    columns: the search moves them continuously and rounds its answers there (see
    :func:`round_whole`), in raw units: ``unit`` is the size of one coordinate of the search
    in raw units, per feature (see :meth:`scaled`).

    ``x0`` may hold missing values (NaN): such a cell is immutable. ``missing`` marks them
    (set from ``x0``), and ``x0`` then holds the background there, where the iterate stays:
    the cell adds nothing to the distance, and :meth:`model_input` gives the model the
    missing value, so that the answer keeps it.

    ``category_pairs`` (:class:`~skcem._plausibility.CategoryPairs`, or None) tells the
    gradient-free steps which pairs of categories (almost) never occur together in the data
    given to ``fit``: no answer of theirs creates one. ``plausibility``
    (:class:`~skcem._plausibility.ClassNeighborhood`, or None) adds to the distance that the
    gradient-free steps minimise a term for answers that lie where the data of their class
    does not. ``permitted`` maps a categorical column to the mask of the codes its answers
    may take besides the instance's own (``feature_range``'s lists of categories), or is None.
    ``heavy`` marks the categorical columns ``feature_weights`` weighs above 1: the
    gradient-free search also starts from rows that keep them (None: none).
    """

    x0: np.ndarray
    target: np.ndarray
    n_classes: int
    mode: Mode
    no_info_val: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    kappa: float
    l1_weight: float | np.ndarray
    gamma: float = 0.0
    mutable: np.ndarray | None = None
    l2_weight: float | np.ndarray = 1.0
    distance_weight: float = 1.0
    searchable: np.ndarray | None = None
    directions: np.ndarray | None = None
    categorical: np.ndarray | None = None
    whole: np.ndarray | None = None
    unit: float | np.ndarray = 1.0
    missing: np.ndarray | None = None
    category_pairs: object = None
    plausibility: object = None
    permitted: dict | None = None
    heavy: np.ndarray | None = None

    def __post_init__(self):
        xp = namespace(self.x0)
        cells = xp.isnan(self.x0)
        if xp.any(cells):
            # Frozen: the dataclass's own way to set fields while it is built.
            object.__setattr__(self, "missing", cells)
            object.__setattr__(self, "x0", xp.where(cells, self.background, self.x0))

    # The arrays the iterations read; the others serve the host's steps before and after.
    _ITERATION_FIELDS = ("x0", "target", "no_info_val", "lower", "upper", "l1_weight",
                         "l2_weight", "mutable", "directions", "missing")

    def on(self, place):
        """The problem with the arrays its iterations read on ``place``
        (:class:`~skcem._array_api.ArrayPlace`); itself on the host."""
        if place.on_host:
            return self
        return replace(self, **{name: place.asarray(getattr(self, name))
                                for name in self._ITERATION_FIELDS})

    # The search asks for these at every iteration: computed once per batch.
    @cached_property
    def attack(self):
        """The loss on the probabilities: CEM's hinge, or a counterfactual's cross-entropy."""
        return self.mode.loss(self.kappa)

    @cached_property
    def background(self):
        """No-information value inside the feature range, widened to the instance's own value
        where that lies outside it: what a PP shows for a removed feature (so that one never
        moves past the instance, away from the no-information value)."""
        return widened_background(self.no_info_val, self.lower, self.upper, self.x0)

    @cached_property
    def _target_onehot(self):
        return one_hot_like(self.target, self.n_classes, self.x0)

    def model_input(self, adv, rows=slice(None)):
        answer = self.mode.model_input(adv, self.x0[rows], _rows(self.background, rows))
        return self.with_missing(answer, rows)

    def with_missing(self, rows_values, rows=slice(None)):
        """Rows of the instances ``rows`` with their missing cells missing again (NaN)."""
        if self.missing is None:
            return rows_values
        return namespace(rows_values).where(self.missing[rows], np.nan, rows_values)

    def mutable_of(self, rows):
        """``mutable`` of the instances ``rows``: per feature, or per instance where given
        so (the gradient-free search's further answers, away from the features of those
        found)."""
        return self.mutable[rows] if np.ndim(self.mutable) == 2 else self.mutable

    def frozen(self, rows=slice(None)):
        """The cells that never move, for the instances ``rows``: immutable features and
        missing cells (None when there are none)."""
        if self.missing is None:
            return None if self.mutable is None else ~self.mutable_of(rows)
        missing = self.missing[rows]
        return missing if self.mutable is None else missing | ~self.mutable_of(rows)

    def pinned(self, rows=slice(None)):
        """The iterate of every instance with its immutable features at their fixed value."""
        x0 = self.x0[rows]
        if self.mutable is None:
            return copy(x0)
        return namespace(x0).where(self.mutable_of(rows), x0,
                                   self.mode.pinned(x0, _rows(self.background, rows)))

    def forbidden_codes(self, explanation, x0):
        """Where a categorical column of an explanation holds a category ``permitted`` does
        not list and the instance does not hold."""
        out = np.zeros(np.broadcast_shapes(np.shape(explanation), np.shape(x0)), bool)
        if self.permitted is None:
            return out
        for j, mask in self.permitted.items():
            codes = np.asarray(explanation)[..., j]
            known = np.isfinite(codes)
            allowed = np.zeros(codes.shape, bool)
            allowed[known] = mask[np.clip(codes[known].astype(int), 0, len(mask) - 1)] & \
                (codes[known] < len(mask))
            out[..., j] = known & ~allowed & (codes != np.asarray(x0)[..., j])
        return out

    def against_directions(self, explanation, x0):
        """Where an explanation moved a feature against its allowed direction."""
        if self.directions is None:
            return np.zeros(np.broadcast_shapes(np.shape(explanation), np.shape(x0)), bool)
        return (((self.directions > 0) & (explanation < x0))
                | ((self.directions < 0) & (explanation > x0)))

    def respect_directions(self, adv, rows):
        """Iterates with every feature moved against its direction reset to its unchanged
        value (the instance's, as the model sees it)."""
        if self.directions is None:
            return adv
        x0, background = self.x0[rows], _rows(self.background, rows)
        wrong = self.against_directions(self.mode.model_input(adv, x0, background), x0)
        return namespace(adv).where(wrong, self.mode.pinned(x0, background), adv)

    def target_onehot(self, rows=slice(None)):
        return self._target_onehot[rows]

    def scaled(self, scale):
        """The same problem in coordinates ``u = z / scale`` (one positive scale per feature):
        the distance keeps its value, the bounds and the no-information value follow."""
        return replace(self, x0=self.x0 / scale, no_info_val=self.no_info_val / scale,
                       lower=self.lower / scale, upper=self.upper / scale,
                       l1_weight=self.l1_weight * scale, l2_weight=self.l2_weight * scale**2,
                       unit=self.unit * scale)


class ScaledBackend:
    """A backend seen in the coordinates ``u = z / scale`` of :meth:`SearchProblem.scaled`:
    rows are scaled back before the model sees them, gradients by the chain rule.

    With ``bounds`` (the raw ``(lower, upper)``), a row inside the scaled bounds is inside
    the raw ones too: ``(z / scale) * scale`` may round a bound's value just past it.
    """

    def __init__(self, backend, scale, bounds=None, whole=None):
        self.backend, self.scale = backend, scale
        self.bounds = bounds
        # integer columns: a whole number's round trip through scale is whole again
        self.whole = None if whole is None or not np.any(whole) else np.asarray(whole)
        self._placed = {}  # scale and bounds on the places the search runs on

    def array_place(self):
        """The wrapped backend's place (:mod:`skcem._array_api`)."""
        return place_of(self.backend)

    def _constants(self, U):
        """``scale``, ``bounds`` and ``whole`` where ``U`` is."""
        if isinstance(U, np.ndarray):
            return self.scale, self.bounds, self.whole
        key = (type(U), str(getattr(U, "device", "")))
        if key not in self._placed:
            place = self.array_place()
            self._placed[key] = (place.asarray(self.scale), None if self.bounds is None
                                 else tuple(place.asarray(bound) for bound in self.bounds),
                                 None if self.whole is None else place.asarray(self.whole))
        return self._placed[key]

    def _raw(self, U):
        scale, bounds, whole = self._constants(U)
        Z = U * scale
        xp = namespace(U)
        if whole is not None:
            # (k / scale) * scale may miss k by an ulp: the model must see the k that the
            # answer reports (an encoder reads 53678.99999999999 as an unknown category)
            nearest = xp.round(Z)
            Z = xp.where(whole & (xp.abs(Z - nearest) <= 1e-9 * xp.maximum(xp.abs(Z), 1.0)),
                         nearest, Z)
        if bounds is None:
            return Z
        lower, upper = bounds
        inside = (U >= lower / scale) & (U <= upper / scale)
        return xp.where(inside, xp.clip(Z, lower, upper), Z)

    def evaluate(self, U_adv, U_s, target_onehot, loss, **options):
        answer = self.backend.evaluate(self._raw(U_adv), self._raw(U_s), target_onehot,
                                       loss, **options)
        scale, *_ = self._constants(U_adv)
        for name in ("attack_grad", "ae_grad"):
            if getattr(answer, name, None) is not None:
                setattr(answer, name, getattr(answer, name) * scale)
        return answer

    def predict_proba(self, U):
        return self.backend.predict_proba(self._raw(U))

    def predict(self, U):
        return self.backend.predict(self._raw(U))

    def raw(self, U):
        """Rows of the search's coordinates as the model sees them."""
        return self._raw(U)


class CodedBackend:
    """A backend for a network that takes categorical columns as numbers (integer codes for
    its embeddings, say), seen in the search's category codes: each code becomes its
    category's number before the network sees it. A category has no gradient: its column's
    components are zero (the gradient-free steps change categories).

    ``categories`` holds, per column, the numbers of its categories in code order, or None
    for a numeric column.
    """

    def __init__(self, backend, categories):
        self.backend = backend
        self.columns = [(j, np.asarray(values, dtype=float))
                        for j, values in enumerate(categories) if values is not None]
        self.categorical = np.array([values is not None for values in categories])
        self._placed = {}

    def array_place(self):
        """The wrapped backend's place (:mod:`skcem._array_api`)."""
        return place_of(self.backend)

    def _constants(self, Z):
        if isinstance(Z, np.ndarray):
            return self.columns, self.categorical
        key = (type(Z), str(getattr(Z, "device", "")))
        if key not in self._placed:
            place = self.array_place()
            self._placed[key] = ([(j, place.asarray(values)) for j, values in self.columns],
                                 place.asarray(self.categorical))
        return self._placed[key]

    def _numbers(self, Z):
        xp = namespace(Z)
        columns, _ = self._constants(Z)
        numbers = dict((j, xp.take(values, xp.astype(
            xp.clip(xp.round(Z[:, j]), 0, values.shape[0] - 1), xp.int64)))
            for j, values in columns)
        return xp.stack([numbers[j] if j in numbers else Z[:, j]
                         for j in range(Z.shape[1])], axis=1)

    def evaluate(self, Z_adv, Z_s, target_onehot, loss, **options):
        answer = self.backend.evaluate(self._numbers(Z_adv), self._numbers(Z_s),
                                       target_onehot, loss, **options)
        _, categorical = self._constants(Z_adv)
        for name in ("attack_grad", "ae_grad"):
            grad = getattr(answer, name, None)
            if grad is not None:
                setattr(answer, name, namespace(grad).where(categorical, 0.0 * grad, grad))
        return answer

    def predict_proba(self, Z):
        return self.backend.predict_proba(self._numbers(Z))

    def predict(self, Z):
        return self.backend.predict(self._numbers(Z))

    def __getattr__(self, name):  # everything else (n_model_rows, predict_in_search)
        if name == "backend" or name.startswith("__"):  # not set yet (a copy being made)
            raise AttributeError(name)
        return getattr(self.backend, name)


class DecisionBackend:
    """A backend whose probabilities are shifted by ``offset`` (one value per class), so that
    their argmax is the estimator's ``predict``: for a binary model whose ``predict`` is a
    threshold other than 0.5 on its probabilities. The search's hinge and success test then
    see the model's own decision; its gradients are the model's, a constant shift having none.
    """

    def __init__(self, backend, offset):
        self.backend, self.offset = backend, np.asarray(offset, dtype=float)

    def evaluate(self, Z_adv, Z_s, target_onehot, loss, **options):
        answer = self.backend.evaluate(Z_adv, Z_s, target_onehot,
                                       loss.with_decision_offset(self.offset), **options)
        answer.proba_adv = answer.proba_adv + self.offset
        return answer

    def predict_proba(self, Z):
        return self.backend.predict_proba(Z) + self.offset

    def predict(self, Z):
        return self.backend.predict(Z)

    def __getattr__(self, name):  # everything else (n_model_rows, predict_in_search)
        return getattr(self.backend, name)

    def unshift(self, result):
        """``result`` with the model's own probabilities."""
        result.explanation_proba = result.explanation_proba - self.offset
        return result


@dataclass(frozen=True)
class SolverSettings:
    """Optimizer settings shared by all instances."""

    learning_rate_init: float = 1e-2
    max_iterations: int = 1000
    c_init: float = 10.0
    c_steps: int = 10
    clip: tuple = (-100.0, 100.0)
    update_num_grad: int = 1
    tol: float | None = None
    n_iter_no_change: int = 50
    momentum: bool = True
    # Probing search (issue 16): the c-steps of the binary search run ``probe_iterations``
    # iterations each, then one c-step runs ``max_iterations`` at the smallest successful c.
    probe_iterations: int | None = None
    # Each c-step starts from the best answer found so far (x0 before any); always on when
    # probing.
    warm_start: bool = False
    # The reference's shrinkage threshold is beta itself; a proximal-gradient step (ISTA's)
    # scales it by the learning rate, as counterfactuals do.
    threshold_times_lr: bool = False
    # Instances whose start has no gradient are not searched: without an auto-encoder term
    # nothing moves them at any c (search="auto"'s finite-difference completion of rows the
    # gradient-free search leaves, where each would cost seconds for nothing).
    skip_flat_starts: bool = False


@dataclass
class SearchResult:
    """Per-instance outcome of the search; rows without a success hold NaN.

    ``explanation_class`` holds class indices (-1 where nothing was found); ``flat_gradient``
    marks instances whose attack gradient was exactly zero at every evaluation (a piecewise
    constant model, for which gradient steps cannot move); ``rejected_by_predict`` those
    whose best answer the estimator's ``predict`` put in another class than its probabilities.
    ``answers`` (shape ``(n, k, n_features)``) and ``answer_distance`` (``(n, k)``), when
    several answers per instance were asked, hold up to ``k`` distinct valid answers per
    instance, closest first (rank 0 is ``explanation``), NaN where fewer were found.
    ``proven_none`` (the exact search's) marks the instances for which it proved that no
    admissible answer exists, and ``gap`` holds its answers' proven relative gaps (NaN for
    the others).
    """

    explanation: np.ndarray
    found: np.ndarray
    distance: np.ndarray
    best_c: np.ndarray
    explanation_proba: np.ndarray
    explanation_class: np.ndarray
    n_iterations: np.ndarray
    flat_gradient: np.ndarray
    rejected_by_predict: np.ndarray
    answers: np.ndarray | None = None
    answer_distance: np.ndarray | None = None
    proven_none: np.ndarray | None = None
    gap: np.ndarray | None = None
    refused_for_pairs: np.ndarray | None = None


def _rows(value, rows):
    return value[rows] if getattr(value, "ndim", 0) == 2 else value


def shrink(adv_s, x0, beta, lower, upper):
    """Shrinkage-thresholding of the L1 term relative to ``x0``, clipped on the side it moves to.

    ``beta`` is the L1 weight, a scalar or one per feature (the MAD-weighted distance).
    """
    xp = namespace(adv_s)
    diff = adv_s - x0
    up = xp.minimum(adv_s - beta, upper)
    down = xp.maximum(adv_s + beta, lower)
    return xp.where(diff > beta, up, xp.where(diff < -beta, down, x0))


def elastic_distance(adv, x0, l1_weight, l2_weight=1.0):
    """``l2_weight * ||adv - x0||^2 + l1_weight * ||adv - x0||_1`` (scalar or per-feature)."""
    xp = namespace(adv)
    return (L2(x0, weights=l2_weight).value(adv, xp=xp)
            + L1(x0, weights=l1_weight).value(adv, xp=xp))


def objective(problem, adv, proba, ae_loss, c, rows):
    """Full objective at ``adv``: attack, elastic net and (optionally) the auto-encoder term."""
    loss = problem.attack.value(proba, problem.target_onehot(rows), xp=namespace(proba))
    distance = elastic_distance(adv, problem.x0[rows], problem.l1_weight, problem.l2_weight)
    value = c * loss + problem.distance_weight * distance
    if ae_loss is not None:
        value = value + problem.gamma * ae_loss
    return value


def update_c(c, lower_c, upper_c, succeeded):
    """One step of the reference's per-instance binary search on ``c``."""
    upper_c = np.where(succeeded, np.minimum(upper_c, c), upper_c)
    lower_c = np.where(succeeded, lower_c, np.maximum(lower_c, c))
    bisect = (lower_c + upper_c) / 2
    c = np.where(upper_c < _C_UPPER_UNSET, bisect, np.where(succeeded, c, 10 * c))
    return c, lower_c, upper_c


class _Bests:
    """The best success of each instance over all values of ``c``, kept where ``x0`` is."""

    def __init__(self, x0, n_classes):
        xp = namespace(x0)
        n = x0.shape[0]
        self.dist = xp.full(n, np.inf, dtype=x0.dtype)
        self.adv = copy(x0)
        self.c = xp.full(n, np.nan, dtype=x0.dtype)
        self.proba = xp.full((n, n_classes), np.nan, dtype=x0.dtype)
        self.pred = xp.full(n, -1, dtype=int_dtype(xp))

    def update(self, rows, success, dist, adv, c, proba, pred):
        """Keep the successes that are better; ``rows`` (an index array or a slice) are the
        batch positions of the given iterates."""
        xp = namespace(dist)
        better = success & (dist < self.dist[rows])
        if not xp.any(better):
            return
        # Selections over all the given rows, not writes of the improved ones: the shapes
        # stay those of the batch (see ArrayPlace.fixed_shapes), the values are the same.
        column = better[:, None]
        self.dist = set_rows(self.dist, rows, xp.where(better, dist, self.dist[rows]))
        self.adv = set_rows(self.adv, rows, xp.where(column, adv, self.adv[rows]))
        self.c = set_rows(self.c, rows, xp.where(better, c, self.c[rows]))
        self.proba = set_rows(self.proba, rows, xp.where(column, proba, self.proba[rows]))
        self.pred = set_rows(self.pred, rows, xp.where(
            better, xp.asarray(pred, dtype=self.pred.dtype), self.pred[rows]))

    def to_host(self):
        """Itself, with its arrays on the host."""
        for name in ("dist", "adv", "c", "proba", "pred"):
            setattr(self, name, to_numpy(getattr(self, name)))
        return self


def _evaluate(backend, problem, adv, adv_s, rows, with_attack_grad, for_objective=False):
    """Ask the backend; its gradients with respect to ``z`` become ones w.r.t. ``a``.

    Returns the backend's :class:`~skcem._gradients._base.Evaluation`, with
    ``pred_adv`` always set (the argmax of the probabilities where the backend has none).
    """
    answer = backend.evaluate(problem.model_input(adv, rows), problem.model_input(adv_s, rows),
                              problem.target_onehot(rows), problem.attack,
                              with_attack_grad=with_attack_grad,
                              with_ae_grad=problem.gamma > 0,
                              with_ae_loss_at_adv=for_objective and problem.gamma > 0)
    if problem.mode.input_sign != 1.0:
        sign = problem.mode.input_sign
        if answer.attack_grad is not None:
            answer.attack_grad = sign * answer.attack_grad
        if answer.ae_grad is not None:
            answer.ae_grad = sign * answer.ae_grad
    return answer


def solve(backend, problem, settings, progress=None):
    """Run the FISTA + c-search of the CEM paper on a batch of instances.

    Parameters
    ----------
    backend : object
        Answers ``evaluate`` (see the module's docstring) and counts ``n_model_rows``.
    problem : SearchProblem
    settings : SolverSettings
    progress : callable, optional
        Called after each c-step with ``(step, c, found)``.

    Returns
    -------
    SearchResult
    """
    host_problem, place = problem, place_of(backend)
    problem = problem.on(place)
    x0 = problem.x0
    xp = namespace(x0)
    n = x0.shape[0]
    all_rows = np.arange(n)
    # The search on c, one number per instance and c-step, runs on the host.
    c = np.full(n, float(settings.c_init))
    lower_c = np.zeros(n)
    upper_c = np.full(n, _C_UPPER_INIT)
    bests = _Bests(x0, problem.n_classes)
    n_iterations = xp.zeros(n, dtype=int_dtype(xp))
    searching = np.ones(n, dtype=bool) if problem.searchable is None \
        else problem.searchable.copy()
    # Every c-step starts at x0 (immutable features pinned): its gradients are computed once.
    initial = problem.pinned()
    start = _evaluate(backend, problem, initial, initial, place.asarray(all_rows),
                      with_attack_grad=True)
    moved = xp.any(start.attack_grad != 0, axis=1)
    if settings.skip_flat_starts and not problem.gamma:
        searching &= to_numpy(moved)

    probe = settings.probe_iterations
    searchable = searching.copy()
    last_c = c.copy()
    for step in range(settings.c_steps + (probe is not None)):
        final = step == settings.c_steps
        if final:
            # The full schedule, once, at the smallest c that succeeded (the last c tried
            # where none did), from the best answer of the probes.
            searching = searchable
            c = np.where(upper_c < _C_UPPER_UNSET, upper_c, last_c)
        step_settings = settings if probe is None or final else replace(
            settings, max_iterations=probe)
        rows = all_rows[searching]
        if rows.size == 0:
            if progress is not None:
                progress(step, c, np.isfinite(to_numpy(bests.dist)))
            continue
        last_c[rows] = c[rows]
        if place.fixed_shapes:
            # Every instance iterates, those not searched at this c masked.
            succeeded, n_iterations, moved = _solve_for_c(
                backend, problem, step_settings, place.asarray(all_rows), place.asarray(c),
                start, bests, n_iterations, moved, running=place.asarray(searching))
            succeeded = to_numpy(succeeded)[rows]
        else:
            succeeded, n_iterations, moved = _solve_for_c(
                backend, problem, step_settings, place.asarray(rows), place.asarray(c[rows]),
                start, bests, n_iterations, moved)
            succeeded = to_numpy(succeeded)
        c[rows], lower_c[rows], upper_c[rows] = update_c(c[rows], lower_c[rows], upper_c[rows],
                                                         succeeded)
        if settings.tol is not None:
            tight = (upper_c < _C_UPPER_UNSET) & (upper_c - lower_c <= _C_BRACKET_RTOL * upper_c)
            searching &= ~tight
        if progress is not None:
            progress(step, c, np.isfinite(to_numpy(bests.dist)))

    problem, bests = host_problem, bests.to_host()
    n_iterations, moved = to_numpy(n_iterations), to_numpy(moved)
    explanation = problem.model_input(bests.adv)
    if problem.whole is not None and problem.whole.any():
        explanation = round_whole(backend, problem, explanation, bests)
    found, rejected = _check_with_predict(backend, problem, explanation, bests)
    explanation[~found] = np.nan
    bests.dist[~found] = np.nan
    bests.c[~found] = np.nan
    bests.pred[~found] = -1
    return SearchResult(explanation=explanation, found=found, distance=bests.dist,
                        best_c=bests.c, explanation_proba=bests.proba,
                        explanation_class=bests.pred, n_iterations=n_iterations,
                        flat_gradient=~moved, rejected_by_predict=rejected)


def round_whole(backend, problem, explanation, bests):
    """The answers with their integer columns (``problem.whole``) rounded to whole numbers.

    Rounding goes the way of the mode (:meth:`~skcem._modes.Mode.round_whole`: a PN or a
    counterfactual changes a little more, a PP keeps a little more), inside the feature range;
    the rounded answers' probabilities and distances replace the search's, and
    :func:`_check_with_predict` then tests them like any answer: one that rounding made
    invalid is not found.
    """
    rows = np.flatnonzero(np.isfinite(bests.dist))
    if rows.size == 0:
        return explanation
    whole, unit = problem.whole, problem.unit
    x0, background = problem.x0[rows], _rows(problem.background, rows)
    answer = explanation[rows]
    # Whole numbers of the raw units (the search's coordinates may be scaled).
    rounded = problem.mode.round_whole(answer * unit, x0 * unit)
    # The range, widened to the instance's own value where that lies outside it: a value
    # left alone (or moved only part of the way to the range) is never pulled into it.
    lowest = np.fmin(np.ceil(_rows(problem.lower, rows) * unit), x0 * unit)
    highest = np.fmax(np.floor(_rows(problem.upper, rows) * unit), x0 * unit)
    rounded = np.where(whole, np.clip(rounded, lowest, np.maximum(lowest, highest)) / unit,
                       answer)
    explanation = explanation.copy()
    explanation[rows] = rounded
    bests.proba[rows] = backend.predict_proba(rounded)
    adv = problem.mode.iterate(rounded, x0, background)
    if problem.missing is not None:  # the iterate of a missing cell stays pinned
        adv = np.where(problem.missing[rows], bests.adv[rows], adv)
    bests.adv[rows] = adv
    bests.dist[rows] = elastic_distance(adv, x0, _rows(problem.l1_weight, rows),
                                        _rows(problem.l2_weight, rows))
    return explanation


def _check_with_predict(backend, problem, explanation, bests):
    """The final answers' classes by the estimator's ``predict``: disagreement is no success.

    Returns the ``found`` mask and the mask of answers that ``predict`` rejected.
    """
    found = np.isfinite(bests.dist)
    rejected = np.zeros_like(found)
    if found.any():
        pred = backend.predict(explanation[found])
        valid = problem.mode.is_success(bests.proba[found], problem.target[found],
                                        problem.kappa, pred=pred)
        bests.pred[found] = pred
        rejected[found] = ~valid
        found &= ~rejected
    return found, rejected


def _fista_step(problem, settings, k, c, gradients, state, active):
    """One shrinkage-thresholding step and its momentum for the ``active`` positions.

    ``state`` holds the iterates ``adv``, the slack points ``adv_s`` and the ``pinned``
    values of the c-step's instances; its ``adv`` and ``adv_s`` are updated (in place, for
    the array libraries that can).
    """
    lr = settings.learning_rate_init * (1 - k / settings.max_iterations) ** 0.5
    x0, v = state["x0"][active], _rows(state["no_info_val"], active)
    adv, adv_s = state["adv"], state["adv_s"]
    xp = namespace(adv)
    regularizer = problem.distance_weight * L2(x0, weights=problem.l2_weight).gradient(
        adv_s[active])
    if gradients["ae"] is not None:
        regularizer += problem.gamma * gradients["ae"][active]
    # Clipped term by term, as the reference does for black-box models.
    grad = (xp.clip(c[active, None] * gradients["attack"][active], *settings.clip)
            + xp.clip(regularizer, *settings.clip))
    frozen = problem.frozen(state["rows"][active])
    if frozen is not None:
        grad = xp.where(frozen, 0.0, grad)
    threshold = problem.distance_weight * problem.l1_weight
    if settings.threshold_times_lr:
        threshold = lr * threshold
    project = problem.mode.project
    lower, upper = _rows(state["lower"], active), _rows(state["upper"], active)
    new_adv = project(shrink(adv_s[active] - lr * grad, x0, threshold, lower, upper), x0, v)
    new_adv = problem.respect_directions(new_adv, state["rows"][active])
    momentum = (k + 1) / (k + 4) if settings.momentum else 0.0
    # The momentum's extrapolation is kept where the iterates are (inside the range, or at
    # the instance's own value): the model is never asked about an inadmissible row.
    extrapolated = xp.clip(new_adv + momentum * (new_adv - adv[active]),
                           xp.minimum(lower, x0), xp.maximum(upper, x0))
    new_s = problem.respect_directions(project(extrapolated, x0, v), state["rows"][active])
    if frozen is not None:  # masked shrinkage: immutable features stay pinned
        new_adv = xp.where(frozen, state["pinned"][active], new_adv)
        new_s = xp.where(frozen, state["pinned"][active], new_s)
    state["adv_s"] = set_rows(adv_s, active, new_s)
    state["adv"] = set_rows(adv, active, new_adv)


def _record(problem, answer, rows, x0, adv, c, bests, running=None):
    """Success test of the new iterates (those ``running``, when given); the best
    successes are kept in ``bests``."""
    xp = namespace(adv)
    pred = xp.argmax(answer.proba_adv, axis=1) if answer.pred_adv is None else answer.pred_adv
    changed = xp.any(adv != x0, axis=1) if problem.mode.requires_change else None
    ok = problem.mode.is_success(answer.proba_adv, problem.target[rows], problem.kappa,
                                 pred=answer.pred_adv, changed=changed)
    if running is not None:
        ok = ok & running
    dist = elastic_distance(adv, x0, problem.l1_weight, problem.l2_weight)
    bests.update(rows, ok, dist, adv, c, answer.proba_adv, pred)
    return ok


def _solve_for_c(backend, problem, settings, rows, c, start, bests, n_iterations, moved,
                 running=None):
    """Inner FISTA loop for one value of ``c`` per instance; updates ``bests``.

    ``rows`` and ``c`` are arrays of the problem's place; ``moved`` (per instance of the
    batch) becomes True once an attack gradient is non-zero. Returns the instances'
    successes, ``n_iterations`` and ``moved`` (updated in place where the array library can,
    new arrays where it cannot).

    With ``running`` (a mask of ``rows``; a place with ``fixed_shapes``) no array changes
    shape: every instance of ``rows`` iterates, and those not running (not searched at this
    ``c``, or stopped early) leave ``bests``, their successes, ``n_iterations`` and ``moved``
    as they are, so that the outcome is that of the search on the running ones alone.
    """
    xp = namespace(problem.x0)
    pinned = problem.pinned(rows)
    state = dict(rows=rows, x0=problem.x0[rows], no_info_val=_rows(problem.no_info_val, rows),
                 lower=_rows(problem.lower, rows), upper=_rows(problem.upper, rows),
                 pinned=pinned, adv=copy(pinned), adv_s=copy(pinned))
    gradients = {"attack": start.attack_grad[rows],
                 "ae": None if start.ae_grad is None else start.ae_grad[rows]}
    if settings.warm_start or settings.probe_iterations is not None:
        _warm_start(backend, problem, rows, bests, state, gradients, running)
    n_rows = rows.shape[0]
    succeeded = xp.zeros(n_rows, dtype=bool_dtype(xp))
    # Positions (within ``rows``) still iterating; early stopping shrinks this set, and with
    # it the rows sent to the model.
    active = xp.arange(n_rows)
    stopping = _EarlyStopping(settings, problem.x0[rows]) if settings.tol is not None \
        else None

    whole_batch = n_rows == problem.x0.shape[0]

    for k in range(settings.max_iterations):
        # While every instance iterates, slices index the arrays: views in place of copies.
        everyone = active.shape[0] == n_rows
        at_rows = slice(None) if everyone else active
        act_rows = slice(None) if whole_batch and everyone else rows[active]
        _fista_step(problem, settings, k, c, gradients, state, at_rows)
        new_adv = state["adv"][at_rows]
        refresh = (k + 1) % settings.update_num_grad == 0
        answer = _evaluate(backend, problem, new_adv, state["adv_s"][at_rows], act_rows,
                           with_attack_grad=refresh, for_objective=stopping is not None)
        if refresh:
            gradients["attack"] = set_rows(gradients["attack"], at_rows, answer.attack_grad)
            nonzero = xp.any(answer.attack_grad != 0, axis=1)
            if running is not None:
                nonzero = nonzero & running
            moved = set_rows(moved, act_rows, moved[act_rows] | nonzero)
        if gradients["ae"] is not None:
            gradients["ae"] = set_rows(gradients["ae"], at_rows, answer.ae_grad)
        ok = _record(problem, answer, act_rows, state["x0"][at_rows], new_adv, c[at_rows], bests,
                     running)
        succeeded = set_rows(succeeded, at_rows, succeeded[at_rows] | ok)
        n_iterations = set_rows(n_iterations, act_rows, n_iterations[act_rows] + (
            1 if running is None else xp.asarray(running, dtype=n_iterations.dtype)))
        if stopping is not None:
            value = objective(problem, new_adv, answer.proba_adv, answer.ae_loss_adv,
                              c[at_rows], act_rows)
            if running is None:
                active = stopping.still_active(active, value, succeeded)
                if active.shape[0] == 0:
                    break
            else:
                running = stopping.still_running(running, value, succeeded)
        if running is not None and not xp.any(running):
            break
    return succeeded, n_iterations, moved


def _warm_start(backend, problem, rows, bests, state, gradients, running=None):
    """Start the instances of ``rows`` that have a best answer from it, with its gradients
    (in ``state`` and ``gradients``). With ``running`` (fixed shapes, see
    :func:`_solve_for_c`) all rows are evaluated and the warm ones' answers selected."""
    xp = namespace(problem.x0)
    warm = xp.isfinite(bests.dist[rows])
    if running is not None:
        warm = warm & running
    if not xp.any(warm):
        return
    if running is None:
        state["adv"] = set_rows(state["adv"], warm, bests.adv[rows[warm]])
        state["adv_s"] = set_rows(state["adv_s"], warm, bests.adv[rows[warm]])
        answer = _evaluate(backend, problem, state["adv"][warm], state["adv"][warm],
                           rows[warm], with_attack_grad=True)
        gradients["attack"] = set_rows(gradients["attack"], warm, answer.attack_grad)
        if gradients["ae"] is not None:
            gradients["ae"] = set_rows(gradients["ae"], warm, answer.ae_grad)
        return
    column = warm[:, None]
    state["adv"] = xp.where(column, bests.adv[rows], state["adv"])
    state["adv_s"] = copy(state["adv"])
    answer = _evaluate(backend, problem, state["adv"], state["adv"], rows,
                       with_attack_grad=True)
    gradients["attack"] = xp.where(column, answer.attack_grad, gradients["attack"])
    if gradients["ae"] is not None:
        gradients["ae"] = xp.where(column, answer.ae_grad, gradients["ae"])


class _EarlyStopping:
    """Ends a c-step for an instance whose objective has stalled before any success.

    One that has succeeded runs the whole learning-rate schedule: its best answer comes at
    the end, when the decayed steps let the shrinkage make it sparse.
    """

    def __init__(self, settings, x0):
        xp = namespace(x0)
        self.tol = settings.tol
        self.patience = settings.n_iter_no_change
        self.best_objective = xp.full(x0.shape[0], np.inf, dtype=x0.dtype)
        self.stalled = xp.zeros(x0.shape[0], dtype=int_dtype(xp))

    def _counts(self, previous, stalled, value, succeeded):
        """The best objective and stalled-iteration count after one more iteration."""
        xp = namespace(value)
        with np.errstate(invalid="ignore"):  # inf - inf on the first iteration
            progressed = ~(value >= previous - self.tol * xp.abs(previous))
        return xp.minimum(previous, value), xp.where(progressed | succeeded, 0, stalled + 1)

    def still_active(self, active, value, succeeded):
        best, stalled = self._counts(self.best_objective[active], self.stalled[active], value,
                                     succeeded[active])
        self.best_objective = set_rows(self.best_objective, active, best)
        self.stalled = set_rows(self.stalled, active, stalled)
        return active[self.stalled[active] < self.patience]

    def still_running(self, running, value, succeeded):
        """:meth:`still_active` for a mask over all the instances (fixed shapes): the same
        counts for the running ones, the others' left as they are."""
        xp = namespace(value)
        best, stalled = self._counts(self.best_objective, self.stalled, value, succeeded)
        self.best_objective = xp.where(running, best, self.best_objective)
        self.stalled = xp.where(running, stalled, self.stalled)
        return running & (self.stalled < self.patience)
