"""Quality of contrastive explanations, per instance, and the score used by ``GridSearchCV``.

:func:`validity`, :func:`sparsity`, :func:`proximity` and :func:`cem_score` take a
:class:`~skcem.Explanation`. Sparsity and proximity are measured on its ``perturbation`` (what
a PN adds, what a PP keeps), in units of each feature's range so that features on large scales
do not dominate; a changed category counts 1. A missing cell (kept missing by the explainers)
counts as unchanged.

:func:`explanation_metrics` is the table that counterfactual benchmarks (CARLA) report, for
any set of explanations, skcem's or another library's: validity by ``predict``, L0/L1/L2/L∞
in MAD units, yNN plausibility, constraint violations, redundancy and time per instance;
:func:`summarize_metrics` reduces it.

:func:`count_diversity` and :func:`continuous_diversity` measure how different each
instance's counterfactuals are from one another, as DiCE's authors do, for any sets of them
(``CounterfactualExplainer(n_counterfactuals=k)``'s or another library's).
"""

import numpy as np

from ._diversity import continuous_diversity, count_diversity
from ._explanation import Explanation, check_tolerance
from ._tabular_metrics import explanation_metrics, summarize_metrics

__all__ = ["cem_score", "continuous_diversity", "count_diversity", "explanation_metrics",
           "n_changed", "proximity", "sparsity", "summarize_metrics", "validity"]


def _check_explanation(explanation, function):
    """The functions below read an Explanation; arrays of answers get one line saying where
    they go."""
    if not isinstance(explanation, Explanation):
        raise TypeError(f"{function}: `explanation` must be the Explanation that explain() "
                        f"returns; got {type(explanation).__name__}. For arrays of answers "
                        "(another library's too), use skcem.metrics.explanation_metrics("
                        "estimator, X, answers).")


def validity(explanation):
    """1.0 where an explanation was found (it has the required class), else 0.0.

    Parameters
    ----------
    explanation : Explanation
        The result of ``explain``.

    Returns
    -------
    validity : ndarray of shape (n_samples,)
        1.0 or 0.0 per instance.
    """
    _check_explanation(explanation, "validity")
    return explanation.found.astype(float)


def _counted_perturbation(explanation):
    """The perturbation the metrics count: a PP's held features (``Explanation.held``),
    kept by construction (as ``changes()`` leaves them out), count nothing."""
    perturbation = explanation.perturbation
    if explanation.mode == "PP":
        perturbation = np.where(explanation.held, 0.0, perturbation)
    return perturbation


def n_changed(explanation, atol=1e-8):
    """L0 of the perturbation: how many features it involves (NaN where none was found); a
    PP's held features (``Explanation.held``: immutable ones, and those ``directions``
    keep from the background), which it keeps by construction, are not counted.

    Parameters
    ----------
    explanation : Explanation
        The result of ``explain``.
    atol : float, default=1e-8
        A feature whose perturbation is at most this (in absolute value) is not counted.

    Returns
    -------
    n_changed : ndarray of shape (n_samples,)
        The number of features each perturbation involves.
    """
    _check_explanation(explanation, "n_changed")
    atol = check_tolerance(atol)
    counts = np.sum(np.abs(_counted_perturbation(explanation)) > atol, axis=1).astype(float)
    return np.where(explanation.found, counts, np.nan)


def sparsity(explanation, atol=1e-8):
    """``1 - L0 / (n_features + 1)``: in (0, 1], higher is sparser; 0 where none was found.

    Parameters
    ----------
    explanation : Explanation
        The result of ``explain``.
    atol : float, default=1e-8
        As for :func:`~skcem.metrics.n_changed`.

    Returns
    -------
    sparsity : ndarray of shape (n_samples,)
        Per instance.
    """
    _check_explanation(explanation, "sparsity")
    n_features = explanation.X.shape[1]
    return np.nan_to_num(1.0 - n_changed(explanation, atol) / (n_features + 1), nan=0.0)


def proximity(explanation, feature_range):
    """``1 / (1 + ||perturbation / range||_1)``: in (0, 1], higher is closer; 0 where none found
    (a PP's held features count nothing, as in :func:`~skcem.metrics.n_changed`). A changed
    category counts 1, as a number moved across its whole range does.

    Parameters
    ----------
    explanation : Explanation
        The result of ``explain``.
    feature_range : tuple of (ndarray, ndarray)
        Per-feature (lower, upper) bounds, such as ``CEMExplainer.feature_range_``; a feature
        of zero width counts in its own units.

    Returns
    -------
    proximity : ndarray of shape (n_samples,)
        Per instance.
    """
    _check_explanation(explanation, "proximity")
    lower, upper = _checked_feature_range(feature_range, explanation.X.shape[1])
    width = np.where(upper > lower, upper - lower, 1.0)
    if explanation.encoded is not None:  # a changed category counts 1, whatever its range
        width = np.where(explanation.encoded["categorical"], 1.0, width)
    scaled_l1 = np.nansum(np.abs(_counted_perturbation(explanation)) / width, axis=1)
    return np.where(explanation.found, 1.0 / (1.0 + scaled_l1), 0.0)


def _checked_feature_range(feature_range, n_features):
    """``feature_range`` as two float arrays of ``n_features`` bounds, or an error naming it."""
    problem = None
    try:
        lower, upper = feature_range
        lower, upper = (np.broadcast_to(np.asarray(bound, dtype=float), (n_features,))
                        for bound in (lower, upper))
    except (TypeError, ValueError):
        problem = "must be a pair (lower, upper) of numbers or of arrays of one per feature"
    else:
        if np.isnan(lower).any() or np.isnan(upper).any():
            problem = "holds NaN"
        elif np.any(lower > upper):
            problem = "has a lower bound above its upper bound"
    if problem is not None:
        raise ValueError(f"`feature_range` {problem} ({n_features} features), such as the "
                         f"explainer's feature_range_; got {feature_range!r}.")
    return lower, upper


def cem_score(explanation, feature_range):
    """Mean over instances of ``validity * sparsity * proximity``, in [0, 1].

    An instance without an explanation scores 0, and so does a pertinent positive that keeps
    nothing (the model gives the no-information background itself the instance's class: the
    PP shows nothing about the instance), held features aside (``Explanation.held``): it
    keeps those by construction. A found one scores more the fewer features it involves and
    the smaller its (range-scaled) L1 size. :meth:`skcem.CEMExplainer.score` is this with the
    range of the data given to ``fit`` (the data's minimum and maximum per feature, whatever
    ``feature_range`` says, so that its scores compare across values of ``feature_range``).

    Parameters
    ----------
    explanation : Explanation
        The result of ``explain``.
    feature_range : tuple of (ndarray, ndarray)
        As for :func:`proximity`. For the explainer's own ``score``, the minimum and maximum
        per feature of the data given to ``fit``.

    Returns
    -------
    score : float
        The mean over instances.
    """
    _check_explanation(explanation, "cem_score")
    per_instance = (validity(explanation) * sparsity(explanation)
                    * proximity(explanation, feature_range))
    if explanation.mode == "PP":
        # held features are kept by construction, not by the search
        kept = (np.abs(explanation.perturbation) > 1e-8) & ~explanation.held
        per_instance = np.where(kept.any(axis=1), per_instance, 0.0)
    return float(np.mean(per_instance))
