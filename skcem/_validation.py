"""Input checks shared by the explainers: each error names the parameter at fault."""

import numpy as np
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

from ._gradients import is_keras_model


def default_classifier():
    """The model fitted when ``estimator=None``."""
    return LogisticRegression(max_iter=1000)


def is_prefitted(estimator):
    """True for a fitted scikit-learn estimator and for any model that has no ``fit``."""
    if estimator is None:
        return False
    if not hasattr(estimator, "fit") or is_keras_model(estimator):
        return True
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        return False
    except TypeError:  # not a scikit-learn estimator: nothing to fit
        return True
    return True


def resolve_estimator(estimator, X, y, owner):
    """Return a fitted model: used as is when fitted, else cloned and fitted on ``(X, y)``.

    Like ``SelectFromModel``'s prefit handling, but decided by the estimator's fitted state.
    Plain callables and objects that are not scikit-learn estimators are used as given.
    """
    if is_prefitted(estimator):
        return estimator
    estimator = default_classifier() if estimator is None else clone(estimator)
    if y is None:
        raise ValueError(
            f"{owner} requires y to be passed, but the target y is None: `estimator` is None "
            "or not fitted, so it is fitted on (X, y) here. Pass y, or pass an already fitted "
            "classifier as `estimator`."
        )
    return estimator.fit(X, y)


def check_probabilities(proba, n_rows, name="estimator"):
    """Raise unless ``proba`` holds one probability row per input row."""
    proba = np.asarray(proba)
    if proba.ndim != 2 or proba.shape[0] != n_rows or proba.shape[1] < 2:
        raise ValueError(
            f"`{name}.predict_proba` must return an array of shape (n_samples, n_classes) with "
            f"n_classes >= 2; got shape {proba.shape} for {n_rows} rows."
        )
    if not np.all(np.isfinite(proba)):
        raise ValueError(f"`{name}.predict_proba` must return finite probabilities in [0, 1]; "
                         "got NaN or infinite values.")
    if proba.min() < -1e-6 or proba.max() > 1 + 1e-6:
        raise ValueError(f"`{name}.predict_proba` must return probabilities in [0, 1]; got "
                         f"values in [{np.nanmin(proba):.4g}, {np.nanmax(proba):.4g}].")
    row_sums = proba.sum(axis=1)
    if not np.allclose(row_sums, 1.0, atol=1e-3):
        worst = row_sums[np.argmax(np.abs(row_sums - 1))]
        raise ValueError(f"`{name}.predict_proba` must return rows that sum to 1; a row sums "
                         f"to {worst:.4g}.")
    return proba


def per_feature(value, n_features, name):
    """Broadcast a scalar or per-feature value to shape (n_features,), finite."""
    try:
        array = np.asarray(value, dtype=float)
        if array.ndim > 1:  # the reference's (1, n_features) rows are accepted too
            array = array.reshape(-1)
        array = np.broadcast_to(array, (n_features,)).copy()
    except (ValueError, TypeError) as exc:
        raise ValueError(f"`{name}` must be a scalar or have one value per feature "
                         f"({n_features}); got {value!r}.") from exc
    if not np.all(np.isfinite(array)):
        raise ValueError(f"`{name}` must be finite; got {value!r}.")
    return array


def check_feature_range(feature_range, X):
    """Per-feature (lower, upper) bounds: from the data when None, else the given pair."""
    n_features = X.shape[1]
    if feature_range is None:
        return X.min(axis=0), X.max(axis=0)
    if len(feature_range) != 2:
        raise ValueError(f"`feature_range` must be a pair (min, max); got {feature_range!r}.")
    lower = per_feature(feature_range[0], n_features, "feature_range")
    upper = per_feature(feature_range[1], n_features, "feature_range")
    if np.any(lower > upper):
        bad = int(np.argmax(lower > upper))
        raise ValueError(f"`feature_range` needs min <= max for every feature; feature {bad} "
                         f"has min {lower[bad]} > max {upper[bad]}.")
    return lower, upper


def check_pair(value, name, positive=False, increasing=False):
    """Validate a parameter given as a pair, such as ``eps`` or ``clip``."""
    if len(value) != 2:
        raise ValueError(f"`{name}` must be a pair; got {value!r}.")
    parts = [np.asarray(part, dtype=float) for part in value]
    if positive and any(np.any(part <= 0) or not np.all(np.isfinite(part)) for part in parts):
        raise ValueError(f"`{name}` must be > 0; got {value!r}.")
    if increasing and not float(parts[0]) < float(parts[1]):
        raise ValueError(f"`{name}` must be (min, max) with min < max; got {value!r}.")
    return parts


def feature_mask(features, n_features, feature_names, name):
    """A boolean mask from indices, a boolean mask or feature names (None: no feature)."""
    mask = np.zeros(n_features, dtype=bool)
    if features is None:
        return mask
    values = np.asarray(features)
    if values.ndim != 1:
        raise ValueError(f"`{name}` must be 1-D: indices, a boolean mask or feature names.")
    if values.dtype == bool:
        if values.size != n_features:
            raise ValueError(f"`{name}` as a boolean mask needs {n_features} values; got "
                             f"{values.size}.")
        return values.copy()
    if values.dtype.kind in "iu":
        bad = values[(values < -n_features) | (values >= n_features)]
        if bad.size:
            raise ValueError(f"`{name}` holds feature indices out of range for "
                             f"{n_features} features: {bad.tolist()}.")
        mask[values] = True
        return mask
    if values.dtype.kind in "UO":
        if feature_names is None:
            raise ValueError(f"`{name}` names features, but X had no feature names in fit.")
        known = {str(n): i for i, n in enumerate(feature_names)}
        unknown = [str(v) for v in values if str(v) not in known]
        if unknown:
            raise ValueError(f"`{name}` names unknown features: {unknown}.")
        mask[[known[str(v)] for v in values]] = True
        return mask
    raise ValueError(f"`{name}` must hold indices, booleans or feature names; got "
                     f"{values.dtype}.")
