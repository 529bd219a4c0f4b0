"""The batched FISTA optimizer with a binary search on ``c`` (ALGORITHMS.md, "CEM").

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
"""

from dataclasses import dataclass

import numpy as np

from ._attack import MOVES_FREELY, input_sign, is_success, model_input, project
from .costs import L1, L2, HingeAttack, NegLogLikelihood, one_hot

_C_UPPER_INIT = 1e10
_C_UPPER_UNSET = 1e9
# With early stopping, an instance leaves the c-search once its bracket on c is this tight
# (relative): the objective is linear in c, so nearby values give the same answer.
_C_BRACKET_RTOL = 0.05


@dataclass(frozen=True)
class CEMProblem:
    """The constants of one batch: everything the optimizer needs besides the backend."""

    x0: np.ndarray
    target: np.ndarray
    n_classes: int
    mode: str
    no_info_val: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    kappa: float
    beta: float | np.ndarray
    gamma: float = 0.0
    mutable: np.ndarray | None = None
    l2_weight: float | np.ndarray = 1.0

    @property
    def attack(self):
        """The loss on the probabilities: CEM's hinge, or a counterfactual's cross-entropy."""
        if self.mode == MOVES_FREELY:
            return NegLogLikelihood()
        return HingeAttack(self.mode, self.kappa)

    @property
    def background(self):
        """No-information value inside the feature range: what a PP shows for a removed feature."""
        return np.clip(self.no_info_val, self.lower, self.upper)

    def model_input(self, adv, rows=slice(None)):
        return model_input(adv, self.x0[rows], _rows(self.background, rows), self.mode)

    def pinned(self, rows=slice(None)):
        """The iterate of every instance with its immutable features at their fixed value.

        A PN keeps them at ``x0``; a PP keeps them whole, which is ``a = background``.
        """
        x0 = self.x0[rows]
        if self.mutable is None:
            return x0.copy()
        fixed = np.broadcast_to(self.background, x0.shape) if self.mode == "PP" else x0
        return np.where(self.mutable, x0, fixed)

    def target_onehot(self, rows=slice(None)):
        return one_hot(self.target[rows], self.n_classes)


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
    # The reference's shrinkage threshold is beta itself; a proximal-gradient step (ISTA's)
    # scales it by the learning rate, as counterfactuals do.
    threshold_times_lr: bool = False


@dataclass
class CEMResult:
    """Per-instance outcome of the search; rows without a success hold NaN."""

    explanation: np.ndarray
    found: np.ndarray
    distance: np.ndarray
    best_c: np.ndarray
    explanation_proba: np.ndarray
    n_iterations: np.ndarray


def _rows(value, rows):
    return value[rows] if np.ndim(value) == 2 else value


def shrink(adv_s, x0, beta, lower, upper):
    """Shrinkage-thresholding of the L1 term relative to ``x0``, clipped on the side it moves to.

    ``beta`` is the L1 weight, a scalar or one per feature (the MAD-weighted distance).
    """
    diff = adv_s - x0
    up = np.minimum(adv_s - beta, upper)
    down = np.maximum(adv_s + beta, lower)
    return np.where(diff > beta, up, np.where(diff < -beta, down, x0))


def elastic_distance(adv, x0, beta, l2_weight=1.0):
    """``||adv - x0||^2 + beta * ||adv - x0||_1``, each term with scalar or per-feature weights."""
    return L2(x0, weights=l2_weight).value(adv) + L1(x0, weights=beta).value(adv)


def objective(problem, adv, proba, ae_loss, c, rows):
    """Full objective at ``adv``: attack, elastic net and (optionally) the auto-encoder term."""
    loss = problem.attack.value(proba, problem.target_onehot(rows))
    value = c * loss + elastic_distance(adv, problem.x0[rows], problem.beta, problem.l2_weight)
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
    """The best success of each instance over all values of ``c``."""

    def __init__(self, x0, n_classes):
        n = x0.shape[0]
        self.dist = np.full(n, np.inf)
        self.adv = x0.copy()
        self.c = np.full(n, np.nan)
        self.proba = np.full((n, n_classes), np.nan)

    def update(self, rows, success, dist, adv, c, proba):
        better = success & (dist < self.dist[rows])
        improved = rows[better]
        self.dist[improved] = dist[better]
        self.adv[improved] = adv[better]
        self.c[improved] = c[better]
        self.proba[improved] = proba[better]


def _evaluate(backend, problem, adv, adv_s, rows, attack, objective=False):
    """Ask the backend, and turn its gradients with respect to ``z`` into ones w.r.t. ``a``."""
    answer = backend.evaluate(problem.model_input(adv, rows), problem.model_input(adv_s, rows),
                              problem.target_onehot(rows), problem.attack, attack=attack,
                              autoencoder=problem.gamma > 0,
                              autoencoder_at_adv=objective and problem.gamma > 0)
    sign = input_sign(problem.mode)
    attack_grad = None if answer.attack_grad is None else sign * answer.attack_grad
    ae_grad = None if answer.ae_grad is None else sign * answer.ae_grad
    return answer.proba_adv, attack_grad, ae_grad, answer.ae_loss_adv


def solve(backend, problem, settings, progress=None):
    """Run the FISTA + c-search of ALGORITHMS.md on a batch of instances.

    Parameters
    ----------
    backend : object
        Answers ``evaluate`` (see the module's docstring) and counts ``n_model_rows``.
    problem : CEMProblem
    settings : SolverSettings
    progress : callable, optional
        Called after each c-step with ``(step, c, found)``.

    Returns
    -------
    CEMResult
    """
    x0 = problem.x0
    n = x0.shape[0]
    all_rows = np.arange(n)
    c = np.full(n, float(settings.c_init))
    lower_c = np.zeros(n)
    upper_c = np.full(n, _C_UPPER_INIT)
    bests = _Bests(x0, problem.n_classes)
    n_iterations = np.zeros(n, dtype=int)
    searching = np.ones(n, dtype=bool)
    # Every c-step starts at x0 (immutable features pinned): its gradients are computed once.
    initial = problem.pinned()
    start = _evaluate(backend, problem, initial, initial, all_rows, attack=True)

    for step in range(settings.c_steps):
        rows = all_rows[searching]
        if rows.size == 0:
            if progress is not None:
                progress(step, c, np.isfinite(bests.dist))
            continue
        succeeded = _solve_for_c(backend, problem, settings, rows, c[rows], start, bests,
                                 n_iterations)
        c[rows], lower_c[rows], upper_c[rows] = update_c(c[rows], lower_c[rows], upper_c[rows],
                                                         succeeded)
        if settings.tol is not None:
            tight = (upper_c < _C_UPPER_UNSET) & (upper_c - lower_c <= _C_BRACKET_RTOL * upper_c)
            searching &= ~tight
        if progress is not None:
            progress(step, c, np.isfinite(bests.dist))

    found = np.isfinite(bests.dist)
    explanation = problem.model_input(bests.adv)
    explanation[~found] = np.nan
    bests.dist[~found] = np.nan
    return CEMResult(explanation=explanation, found=found, distance=bests.dist, best_c=bests.c,
                     explanation_proba=bests.proba, n_iterations=n_iterations)


def _subset(value, rows):
    return None if value is None else value[rows]


def _solve_for_c(backend, problem, settings, rows, c, start, bests, n_iterations):
    """Inner FISTA loop for one value of ``c`` per instance; updates ``bests`` in place."""
    x0 = problem.x0[rows]
    no_info_val = _rows(problem.no_info_val, rows)
    lower, upper = _rows(problem.lower, rows), _rows(problem.upper, rows)
    pinned = problem.pinned(rows)
    adv = pinned.copy()
    adv_s = pinned.copy()
    _, attack_grad, ae_grad, _ = (_subset(part, rows) for part in start)
    succeeded = np.zeros(rows.size, dtype=bool)
    # Positions (within ``rows``) still iterating; early stopping shrinks this set, and with
    # it the rows sent to the model.
    active = np.arange(rows.size)
    # Early stopping ends a c-step for an instance whose objective has stalled before any
    # success. One that has succeeded runs the whole learning-rate schedule: its best answer
    # comes at the end, when the decayed steps let the shrinkage make it sparse.
    best_objective = np.full(rows.size, np.inf)
    stalled = np.zeros(rows.size, dtype=int)

    for k in range(settings.max_iterations):
        lr = settings.learning_rate_init * (1 - k / settings.max_iterations) ** 0.5
        act_rows = rows[active]
        x0_a, v_a = x0[active], _rows(no_info_val, active)
        regularizer = L2(x0_a, weights=problem.l2_weight).gradient(adv_s[active])
        if ae_grad is not None:
            regularizer += problem.gamma * ae_grad[active]
        # Clipped term by term, as the reference does for black-box models.
        grad = (np.clip(c[active, None] * attack_grad[active], *settings.clip)
                + np.clip(regularizer, *settings.clip))
        if problem.mutable is not None:
            grad *= problem.mutable
        threshold = lr * problem.beta if settings.threshold_times_lr else problem.beta
        new_adv = project(shrink(adv_s[active] - lr * grad, x0_a, threshold,
                                 _rows(lower, active), _rows(upper, active)),
                          x0_a, v_a, problem.mode)
        momentum = (k + 1) / (k + 4) if settings.momentum else 0.0
        new_s = project(new_adv + momentum * (new_adv - adv[active]), x0_a, v_a, problem.mode)
        if problem.mutable is not None:  # masked shrinkage: immutable features stay pinned
            new_adv = np.where(problem.mutable, new_adv, pinned[active])
            new_s = np.where(problem.mutable, new_s, pinned[active])
        adv_s[active] = new_s
        adv[active] = new_adv

        refresh = (k + 1) % settings.update_num_grad == 0
        proba_adv, new_attack_grad, new_ae_grad, ae_loss_adv = _evaluate(
            backend, problem, new_adv, adv_s[active], act_rows, attack=refresh,
            objective=settings.tol is not None)
        if refresh:
            attack_grad[active] = new_attack_grad
        if ae_grad is not None:
            ae_grad[active] = new_ae_grad

        ok = is_success(proba_adv, problem.target[act_rows], problem.mode, problem.kappa)
        succeeded[active] |= ok
        dist = elastic_distance(new_adv, x0_a, problem.beta, problem.l2_weight)
        bests.update(act_rows, ok, dist, new_adv, c[active], proba_adv)
        n_iterations[act_rows] += 1

        if settings.tol is not None:
            value = objective(problem, new_adv, proba_adv, ae_loss_adv, c[active], act_rows)
            previous = best_objective[active]
            with np.errstate(invalid="ignore"):  # inf - inf on the first iteration
                progressed = ~(value >= previous - settings.tol * np.abs(previous))
            best_objective[active] = np.minimum(previous, value)
            stalled[active] = np.where(progressed | succeeded[active], 0, stalled[active] + 1)
            active = active[stalled[active] < settings.n_iter_no_change]
            if active.size == 0:
                break
    return succeeded
