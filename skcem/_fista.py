"""The batched FISTA optimizer with a binary search on ``c`` (ALGORITHMS.md, "CEM").

This is the one implementation of the algorithm, for every model kind. It asks a gradient
backend (see :mod:`skcem._gradients`) two things only:

``predict_proba(Z)``
    class probabilities of the rows ``Z`` (model inputs, 2-D);
``attack_gradient(Z, target_onehot, mode, kappa, proba=None)``
    the gradient with respect to ``z`` of the hinge attack loss
    (:func:`skcem._attack.attack_loss`), by finite differences for a black box, by autodiff
    for a Keras model. ``proba``, when the optimizer already has ``predict_proba(Z)``, spares
    a model call; a backend whose ``gradient_uses_proba`` is False computes them itself;

and, when ``gamma > 0``, ``autoencoder_loss(Z)`` returning ``||AE(z) - z||^2`` per row and its
gradient. All instances of a batch iterate together, each with its own ``c``, bracket and bests;
the reference runs the same search one instance at a time.
"""

from dataclasses import dataclass

import numpy as np

from ._attack import (attack_loss, explanation_from_adv, input_sign, is_success, model_input,
                      one_hot, project)

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
    beta: float
    gamma: float = 0.0

    @property
    def background(self):
        """No-information value inside the feature range: what a PP shows for a removed feature."""
        return np.clip(self.no_info_val, self.lower, self.upper)

    def model_input(self, adv, rows=slice(None)):
        return model_input(adv, self.x0[rows], _rows(self.background, rows), self.mode)

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
    """Shrinkage-thresholding of the L1 term relative to ``x0``, clipped on the side it moves to."""
    diff = adv_s - x0
    up = np.minimum(adv_s - beta, upper)
    down = np.maximum(adv_s + beta, lower)
    return np.where(diff > beta, up, np.where(diff < -beta, down, x0))


def elastic_distance(adv, x0, beta):
    delta = x0 - adv
    return np.sum(delta**2, axis=1) + beta * np.sum(np.abs(delta), axis=1)


def regularizer_gradient(backend, problem, adv_s, rows):
    """Gradient of ``||x0 - s||^2 + gamma * ||AE(z(s)) - z(s)||^2`` at ``s``."""
    grad = 2.0 * (adv_s - problem.x0[rows])
    if problem.gamma > 0:
        _, ae_grad = backend.autoencoder_loss(problem.model_input(adv_s, rows))
        grad += problem.gamma * input_sign(problem.mode) * ae_grad
    return grad


def attack_gradient(backend, problem, adv_s, proba_s, rows):
    """``grad_a f(z(a))`` at ``s``: the backend's gradient with respect to ``z`` times ``dz/da``."""
    grad = backend.attack_gradient(problem.model_input(adv_s, rows), problem.target_onehot(rows),
                                   problem.mode, problem.kappa, proba=proba_s)
    return input_sign(problem.mode) * grad


def objective(backend, problem, adv, proba, c, rows):
    """Full objective at ``adv``: attack, elastic net and (optionally) the auto-encoder term."""
    loss, _ = attack_loss(proba, problem.target_onehot(rows), problem.mode, problem.kappa)
    value = c * loss + elastic_distance(adv, problem.x0[rows], problem.beta)
    if problem.gamma > 0:
        ae_loss, _ = backend.autoencoder_loss(problem.model_input(adv, rows))
        value = value + problem.gamma * ae_loss
    return value


def update_c(c, lower_c, upper_c, succeeded):
    """One step of the reference's per-instance binary search on ``c``."""
    upper_c = np.where(succeeded, np.minimum(upper_c, c), upper_c)
    lower_c = np.where(succeeded, lower_c, np.maximum(lower_c, c))
    bisect = (lower_c + upper_c) / 2
    c = np.where(upper_c < _C_UPPER_UNSET, bisect, np.where(succeeded, c, 10 * c))
    return c, lower_c, upper_c


def solve(backend, problem, settings, progress=None):
    """Run the FISTA + c-search of ALGORITHMS.md on a batch of instances.

    Parameters
    ----------
    backend : object
        Answers ``predict_proba``, ``proba_vjp`` (and ``autoencoder_loss`` when
        ``problem.gamma > 0``).
    problem : CEMProblem
    settings : SolverSettings
    progress : callable, optional
        Called after each c-step with ``(step, c, found)``.

    Returns
    -------
    CEMResult
    """
    x0 = problem.x0
    n, _ = x0.shape
    c = np.full(n, float(settings.c_init))
    lower_c = np.zeros(n)
    upper_c = np.full(n, _C_UPPER_INIT)
    best_dist = np.full(n, np.inf)
    best_adv = x0.copy()
    best_c = np.full(n, np.nan)
    best_proba = None
    n_iterations = np.zeros(n, dtype=int)
    searching = np.ones(n, dtype=bool)
    all_rows = np.arange(n)
    proba_x0 = backend.predict_proba(problem.model_input(x0))
    best_proba = np.full_like(proba_x0, np.nan)

    for step in range(settings.c_steps):
        rows = all_rows[searching]
        if rows.size == 0:
            break
        succeeded = _solve_for_c(backend, problem, settings, rows, c[rows], proba_x0[rows],
                                 best_dist, best_adv, best_c, best_proba, n_iterations)
        new_c, new_lower, new_upper = update_c(c[rows], lower_c[rows], upper_c[rows], succeeded)
        c[rows], lower_c[rows], upper_c[rows] = new_c, new_lower, new_upper
        if settings.tol is not None:
            tight = (upper_c < _C_UPPER_UNSET) & (upper_c - lower_c <= _C_BRACKET_RTOL * upper_c)
            searching &= ~tight
        if progress is not None:
            progress(step, c, np.isfinite(best_dist))

    found = np.isfinite(best_dist)
    explanation = explanation_from_adv(best_adv, x0, problem.background, problem.mode)
    explanation[~found] = np.nan
    best_dist[~found] = np.nan
    return CEMResult(explanation=explanation, found=found, distance=best_dist, best_c=best_c,
                     explanation_proba=best_proba, n_iterations=n_iterations)


def _solve_for_c(backend, problem, settings, rows, c, proba_x0, best_dist, best_adv, best_c,
                 best_proba, n_iterations):
    """Inner FISTA loop for one value of ``c`` per instance; updates the bests in place."""
    x0 = problem.x0[rows]
    no_info_val = _rows(problem.no_info_val, rows)
    lower, upper = _rows(problem.lower, rows), _rows(problem.upper, rows)
    adv = x0.copy()
    adv_s = x0.copy()
    proba_s = proba_x0 if backend.gradient_uses_proba else None
    attack_grad = np.zeros_like(x0)
    succeeded = np.zeros(rows.size, dtype=bool)
    # Rows (positions within ``rows``) still iterating; early stopping shrinks this set.
    active = np.arange(rows.size)
    best_objective = np.full(rows.size, np.inf)
    stalled = np.zeros(rows.size, dtype=int)

    for k in range(settings.max_iterations):
        lr = settings.learning_rate_init * (1 - k / settings.max_iterations) ** 0.5
        act_rows = rows[active]
        if k % settings.update_num_grad == 0:
            attack_grad[active] = attack_gradient(backend, problem, adv_s[active], proba_s,
                                                  act_rows)
        # Clipped term by term, as the reference does for black-box models.
        grad = (np.clip(c[active, None] * attack_grad[active], *settings.clip)
                + np.clip(regularizer_gradient(backend, problem, adv_s[active], act_rows),
                          *settings.clip))
        s = adv_s[active] - lr * grad
        x0_a, v_a = x0[active], _rows(no_info_val, active)
        new_adv = project(shrink(s, x0_a, problem.beta, _rows(lower, active),
                                 _rows(upper, active)), x0_a, v_a, problem.mode)
        momentum = (k + 1) / (k + 4)
        adv_s[active] = project(new_adv + momentum * (new_adv - adv[active]), x0_a, v_a,
                                problem.mode)
        adv[active] = new_adv

        model_input_adv = problem.model_input(new_adv, act_rows)
        if backend.gradient_uses_proba:  # one model call for the bests and the next gradient
            proba = backend.predict_proba(
                np.vstack([model_input_adv, problem.model_input(adv_s[active], act_rows)]))
            proba_adv, proba_s = proba[:active.size], proba[active.size:]
        else:
            proba_adv, proba_s = backend.predict_proba(model_input_adv), None
        ok = is_success(proba_adv, problem.target[act_rows], problem.mode, problem.kappa)
        dist = elastic_distance(new_adv, x0_a, problem.beta)
        succeeded[active] |= ok
        better = ok & (dist < best_dist[act_rows])
        improved = act_rows[better]
        best_dist[improved] = dist[better]
        best_adv[improved] = new_adv[better]
        best_c[improved] = c[active][better]
        best_proba[improved] = proba_adv[better]
        n_iterations[act_rows] += 1

        if settings.tol is not None:
            value = objective(backend, problem, new_adv, proba_adv, c[active], act_rows)
            previous = best_objective[active]
            with np.errstate(invalid="ignore"):  # inf - inf on the first iteration
                progressed = ~(value >= previous - settings.tol * np.abs(previous))
            best_objective[active] = np.minimum(previous, value)
            stalled[active] = np.where(progressed, 0, stalled[active] + 1)
            keep = stalled[active] < settings.n_iter_no_change
            active = active[keep]
            proba_s = None if proba_s is None else proba_s[keep]
            if active.size == 0:
                break
    return succeeded
