"""Per-instance metrics of counterfactual and contrastive explanations on tabular data.

:func:`explanation_metrics` computes, in one call, the measures that counterfactual benchmarks
such as CARLA report for each explained instance: validity, the L0/L1/L2/Linf size of the
change (numeric features in MAD units, categorical features counting 0 or 1), yNN
plausibility, constraint violations, redundancy and run time. :func:`summarize_metrics`
reduces that table to a few numbers.

pandas is needed for the returned table; it is imported when a function is called.
"""

import numbers
from numbers import Real
from datetime import datetime, timedelta

import numpy as np
from scipy.spatial.distance import cdist
from sklearn.base import is_regressor

from ._explanation import Explanation
from ._plausibility import rare_pair_counts
from ._tabular import auto_categorical, is_bool_dtype, listed_categories
from .costs import median_absolute_deviation
from ._validation import from_polars

__all__ = ["explanation_metrics", "summarize_metrics"]

METRICS = ("valid", "l0", "l1", "l2", "linf", "ynn", "violations", "redundancy", "rare_pairs",
           "seconds")
_MODES = ("CF", "PN", "PP")
_DIRECTIONS = {"increase": 1.0, "decrease": -1.0, "any": 0.0}
# A numeric change smaller than this, in MAD units, counts as no change.
_ATOL = 1e-8
# Largest number of explanation-to-training distances held at once when computing yNN
# (2**22 float64 values: 32 MiB).
_BLOCK_ELEMENTS = 2 ** 22


def _import_pandas():
    try:
        import pandas as pd
    except ImportError as exc:
        raise ImportError(
            "explanation_metrics and summarize_metrics need pandas, which is an optional "
            "dependency of skcem: pip install pandas") from exc
    return pd


# --------------------------------------------------------------------------- input checks


def _check_X(X, pd):
    if isinstance(X, pd.DataFrame):
        if not X.columns.is_unique:
            raise ValueError("X has duplicate column names; column names must be unique.")
        if X.shape[0] == 0 or X.shape[1] == 0:
            raise ValueError(f"X must have at least one row and one column; got shape "
                             f"{X.shape}.")
        return X, list(X.columns)
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"X must be a non-empty 2-D array or a DataFrame; got shape "
                         f"{X.shape}.")
    return X, list(range(X.shape[1]))


def _check_explained_rows(X, explained, pd):
    """Raise unless ``X`` holds the rows an Explanation explains (``explained``), in order:
    explanations are matched to ``X``'s rows by position."""
    given = X.to_numpy(dtype=object) if isinstance(X, pd.DataFrame) else \
        np.asarray(X, dtype=object)
    own = explained.to_numpy(dtype=object) if isinstance(explained, pd.DataFrame) else \
        np.asarray(explained, dtype=object)
    same = given.shape == own.shape
    if same:
        try:  # numbers: at once
            return _raise_unless(np.allclose(given.astype(float), own.astype(float), rtol=1e-6,
                                             atol=0, equal_nan=True))
        except (TypeError, ValueError):
            pass
        missing = np.asarray(pd.isna(given), bool), np.asarray(pd.isna(own), bool)
        equal = np.array([[_same_cell(a, b, gone_a, gone_b)
                           for a, b, gone_a, gone_b in zip(*rows)]
                          for rows in zip(given, own, *missing)], dtype=bool)
        same = bool(np.all(equal))
    _raise_unless(same)


def _same_cell(a, b, a_missing, b_missing):
    """Whether two cells of a table hold the same value (missing ones, pd.NA too, equal)."""
    if a_missing or b_missing:
        return a_missing and b_missing
    try:
        if bool(a == b):
            return True
        return isinstance(a, Real) and isinstance(b, Real) and not isinstance(a, bool) and \
            bool(np.isclose(float(a), float(b), rtol=1e-6, atol=0))
    except (TypeError, ValueError):
        return False


def _raise_unless(same):
    if not same:
        raise ValueError("X is not the rows the Explanation explains (its `X`), in their "
                         "order: its answers are matched to X's rows by position. Pass "
                         "`exp.X` (or X=None), or the same rows in the same order.")


def _check_like(data, X, name, pd, n_rows=None):
    """``data`` in the form of ``X``: a DataFrame with X's columns in X's order, or a 2-D
    array with as many columns. Extra DataFrame columns are ignored; nothing is copied
    more than needed and nothing is written to ``data``."""
    is_frame = isinstance(X, pd.DataFrame)
    if is_frame and isinstance(data, pd.DataFrame):
        missing = [c for c in X.columns if c not in data.columns]
        if missing:
            raise ValueError(f"{name} lacks the columns {missing} of X.")
        data = data[list(X.columns)]
    else:
        if isinstance(data, pd.DataFrame):
            data = data.to_numpy()
        data = np.asarray(data)
        if data.ndim != 2 or data.shape[1] != X.shape[1]:
            several = data.ndim == 3 and data.shape[2] == X.shape[1]
            hint = (f": {data.shape[1]} answers per row? Score one rank at a time, such as "
                    f"the closest, {name}[:, 0]") if several else ""
            raise ValueError(f"{name} must be 2-D with {X.shape[1]} columns like X; got shape "
                             f"{data.shape}{hint}.")
        if is_frame:
            data = pd.DataFrame(data, columns=X.columns)
    if n_rows is not None and data.shape[0] != n_rows:
        several = n_rows and data.shape[0] % n_rows == 0 and data.shape[0] > n_rows
        hint = (f": {data.shape[0] // n_rows} answers per row (n_counterfactuals, indexed by "
                "(row, rank))? Score one rank at a time, such as the closest, "
                f"{name}.xs(0, level=-1)") if several else ""
        raise ValueError(f"{name} must have one row per row of X ({n_rows}); got "
                         f"{data.shape[0]}{hint}.")
    if n_rows is None and data.shape[0] == 0:
        raise ValueError(f"{name} must have at least one row.")
    return data


def _column(data, j):
    return data.iloc[:, j] if hasattr(data, "iloc") else data[:, j]


def _as_object(values):
    if hasattr(values, "to_numpy"):
        return values.astype(object).to_numpy()
    return np.asarray(values).astype(object)


def _as_float(values, pd, name, label):
    """1-D float array of a numeric column (times in seconds); missing values become NaN."""
    kind = getattr(getattr(values, "dtype", None), "kind", "O")
    try:
        if kind in "mM":  # times: seconds since the epoch (UTC), durations in seconds
            series = values if hasattr(values, "dt") else pd.Series(values)
            seconds = (series - pd.Timestamp(0, tz=getattr(series.dtype, "tz", None))) \
                if kind == "M" else series
            return seconds.dt.total_seconds().to_numpy(dtype=float, na_value=np.nan)
        if hasattr(values, "to_numpy") and pd.api.types.is_numeric_dtype(values.dtype):
            return values.to_numpy(dtype=float, na_value=np.nan)
        if not hasattr(values, "to_numpy") and kind in "biuf":
            return np.asarray(values, dtype=float)
        obj = _as_object(values)
        missing = np.asarray(pd.isna(obj), dtype=bool)
        if kind == "O" and (~missing).any() and all(
                isinstance(v, (pd.Timestamp, pd.Timedelta, np.datetime64, np.timedelta64))
                for v in obj[~missing]):  # times held as objects (a background row's)
            times = pd.Series(list(obj))
            if times.dtype.kind in "mM":
                return _as_float(times, pd, name, label)
        out = np.full(len(obj), np.nan)
        out[~missing] = obj[~missing].astype(float)
        return out
    except (TypeError, ValueError) as exc:
        raise ValueError(f"Feature {label!r} of {name} is not numeric; list it in "
                         f"categorical_features.") from exc


def _positions(keys, columns, name, allow_mask=True):
    """Positions of features given by names, indices or (when allowed) a boolean mask."""
    n_features = len(columns)
    if keys is None:
        return np.array([], dtype=int)
    if isinstance(keys, (str, bytes, numbers.Integral)) or np.ndim(keys) == 0:
        keys = [keys]
    keys = list(keys)
    if (allow_mask and keys and len(keys) == n_features
            and all(isinstance(k, (bool, np.bool_)) for k in keys)):
        return np.flatnonzero(np.asarray(keys, dtype=bool))
    if keys and all(isinstance(k, (bool, np.bool_)) for k in keys):
        raise ValueError(f"{name} as a boolean mask must have one entry per feature "
                         f"({n_features}); got {len(keys)}.")
    lookup = {label: j for j, label in enumerate(columns)}
    positions, unknown = [], []
    for key in keys:
        try:
            if key in lookup:
                positions.append(lookup[key])
                continue
        except TypeError:  # unhashable
            pass
        if (isinstance(key, numbers.Integral) and not isinstance(key, (bool, np.bool_))
                and 0 <= key < n_features):
            positions.append(int(key))
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(f"{name} names unknown features: {unknown}. Known features: "
                         f"{columns}.")
    return np.unique(np.asarray(positions, dtype=int))


def _categorical_mask(categorical_features, X, columns, X_train=None):
    if categorical_features is None or (isinstance(categorical_features, str)
                                        and categorical_features == "auto"):
        # a text column the explained rows all miss is told by the training rows' values
        return auto_categorical(X) if X_train is None else \
            auto_categorical(X) | auto_categorical(X_train)
    mask = np.zeros(len(columns), dtype=bool)
    mask[_positions(categorical_features, columns, "categorical_features")] = True
    return mask


def _mapping(value, columns, name):
    """Positions and values of a dict keyed by feature."""
    if value is None:
        return [], []
    if not isinstance(value, dict):
        raise TypeError(f"{name} must be a dict keyed by feature; got "
                        f"{type(value).__name__}.")
    keys = list(value)
    positions = [int(_positions([k], columns, name, allow_mask=False)[0]) for k in keys]
    return positions, [value[k] for k in keys]


def _numeric_only(positions, categorical, columns, name):
    bad = [columns[j] for j in positions if categorical[j]]
    if bad:
        raise ValueError(f"{name} applies to numeric features only; {bad} are categorical.")


def _check_directions(directions, columns, categorical, ordered):
    positions, values = _mapping(directions, columns, "directions")
    unordered = [columns[j] for j in positions if categorical[j] and not ordered[j]]
    if unordered:
        raise ValueError(f"directions applies to numeric features and to those of an ordered "
                         f"category dtype; {unordered} are categorical, unordered.")
    sign = np.zeros(len(columns))
    for j, v in zip(positions, values):
        if v not in _DIRECTIONS:
            raise ValueError(f"directions[{columns[j]!r}] must be one of "
                             f"{list(_DIRECTIONS)}; got {v!r}.")
        sign[j] = _DIRECTIONS[v]
    return sign


def _order_ranks(values, dtype, pd):
    """Each value's rank in the order of the ordered category dtype ``dtype`` (False, True
    for a bool one; -1 where missing or not one of its categories)."""
    if not isinstance(dtype, pd.CategoricalDtype):
        dtype = pd.CategoricalDtype([False, True], ordered=True)
    return np.asarray(pd.Categorical(values, dtype=dtype).codes, dtype=float)


def _check_feature_range(feature_range, columns, categorical, times):
    if feature_range is not None and not isinstance(feature_range, dict):
        # an explainer's feature_range_ counts a time column in its own steps: not in seconds
        return _range_pair(feature_range, columns, categorical | times)
    positions, values = _mapping(feature_range, columns, "feature_range")
    lower = np.full(len(columns), -np.inf)
    upper = np.full(len(columns), np.inf)
    for j, bounds in zip(positions, values):
        if categorical[j]:  # the categories answers may take: _permitted
            continue
        try:
            lo, hi = bounds
            lo = -np.inf if lo is None else _seconds_or_float(lo)
            hi = np.inf if hi is None else _seconds_or_float(hi)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"feature_range[{columns[j]!r}] must be a pair (low, high) of "
                             f"numbers or None; got {bounds!r}.") from exc
        if lo > hi:
            raise ValueError(f"feature_range[{columns[j]!r}] has low > high: {bounds!r}.")
        lower[j], upper[j] = lo, hi
    return lower, upper


def _permitted(feature_range, columns, categorical, X, X_train=None):
    """``{position: list of categories}`` of a dict ``feature_range``'s categorical columns,
    as the explainers read them: one category alone, or a ``(low, high)`` pair of an ordered
    category dtype (the categories between); each a category of ``X`` or ``X_train``."""
    if not isinstance(feature_range, dict):
        return {}
    positions, values = _mapping(feature_range, columns, "feature_range")
    permitted = {}
    for j, given in zip(positions, values):
        if not categorical[j]:
            continue
        dtype = getattr(_column(X, j), "dtype", None)
        order = list(getattr(dtype, "categories", [])) if getattr(dtype, "ordered", False) \
            else None
        given = listed_categories(given, order, f"feature_range[{columns[j]!r}]")
        known = set(_as_object(_column(X, j)).tolist()) | set(
            [] if X_train is None else _as_object(_column(X_train, j)).tolist()) | set(
            [] if dtype is None else getattr(dtype, "categories", []))
        unknown = [value for value in given if value not in known]
        if unknown:
            raise ValueError(f"feature_range[{columns[j]!r}] holds {unknown[:5]}, not "
                             "categories of that column in X (or X_train).")
        permitted[j] = given
    return permitted


def _seconds_or_float(value):
    """A bound as a number: a time (``Timestamp``) in seconds since the epoch, a duration in
    seconds, as :func:`_as_float` measures time columns."""
    if isinstance(value, (datetime, np.datetime64, timedelta, np.timedelta64)):
        import pandas as pd

        return float(_as_float(pd.Series([value]), pd, "feature_range", None)[0])
    return float(value)


def _range_pair(feature_range, columns, categorical):
    """``(low, high)`` for every feature, each a number or one per feature (an explainer's
    ``feature_range_``): the bounds of the numeric features."""
    try:
        lo, hi = feature_range
        lower = np.broadcast_to(np.asarray(lo, dtype=float), (len(columns),)).copy()
        upper = np.broadcast_to(np.asarray(hi, dtype=float), (len(columns),)).copy()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"feature_range must be a dict {{feature: (low, high)}}, or a pair "
                         f"(low, high) of numbers or of arrays of one per feature "
                         f"({len(columns)}); got {feature_range!r}.") from exc
    if np.any(lower > upper):
        raise ValueError(f"feature_range has low > high for "
                         f"{[columns[j] for j in np.flatnonzero(lower > upper)]}.")
    lower[categorical], upper[categorical] = -np.inf, np.inf
    return lower, upper


def _towards_background(background, rows, e_num, x_num, num, n_features, numeric):
    """Where a PN breaks its rule on a numeric feature: a value no farther from the
    no-information value (``background``, one row per row of X: see
    :func:`_check_background`) than the instance's, for X's ``rows``; shape (n_found,
    n_features), False for categorical features."""
    towards = np.zeros((len(e_num), n_features), dtype=bool)
    if len(num):
        v = numeric(background, "background", rows)
        with np.errstate(invalid="ignore"):
            towards[:, num] = np.abs(e_num - v) <= np.abs(x_num - v)
    return towards


def _background_of(explanation):
    """An Explanation's no-information row in its columns' own values (categories as they
    are, not their codes)."""
    encoded = explanation.encoded
    if encoded is not None and "background" in encoded:
        return encoded["background"]
    return explanation.background


def _check_background(background, X, columns, categorical, pd):
    """Background values in X's column order, one row per row of X: an object array of
    shape (n_samples, n_features) (one row given is every row's; an Explanation's PPs
    may hold one per instance)."""
    n_rows = len(X)
    if (isinstance(background, pd.DataFrame) and len(background) == n_rows != 1) or \
            (isinstance(background, np.ndarray) and background.ndim == 2 and
             background.shape[0] == n_rows != 1):
        rows = [background.iloc[[i]] if hasattr(background, "iloc") else background[i]
                for i in range(n_rows)]
        values = np.array([_background_values(row, X, columns, pd) for row in rows],
                          dtype=object).reshape(n_rows, len(columns))
    else:
        values = np.empty((1, len(columns)), dtype=object)
        values[0] = _background_values(background, X, columns, pd)
        values = np.broadcast_to(values, (n_rows, len(columns)))
    for j in np.flatnonzero(categorical):
        present = [v for v in _as_object(_column(X, j)) if not pd.isna(v)]
        given = values[0, j]
        if isinstance(given, numbers.Number) and not isinstance(given, bool) and \
                present and not any(isinstance(v, numbers.Number) for v in present):
            raise ValueError(
                f"background holds {given!r} for the categorical column {columns[j]!r}, "
                "whose values are not numbers: give its category. An explainer's "
                "no_info_val_ holds category codes; pass the Explanation itself as "
                "`explanations` and leave `background` out to use its no-information row.")
    return values


def _background_values(background, X, columns, pd):
    if background is None:
        raise ValueError("background is required when mode='PP': the per-feature values that "
                         "carry no information (a row, a Series or a dict).")
    if isinstance(background, pd.DataFrame):
        if len(background) != 1:
            raise ValueError(f"background as a DataFrame must have one row; got "
                             f"{len(background)}.")
        background = background.iloc[0]
    if isinstance(background, pd.Series):
        background = background.to_dict() if isinstance(X, pd.DataFrame) else \
            background.to_numpy()
    if isinstance(background, dict):
        positions, values = _mapping(background, columns, "background")
        out = [None] * len(columns)
        given = np.zeros(len(columns), dtype=bool)
        for j, v in zip(positions, values):
            out[j], given[j] = v, True
        if not given.all():
            raise ValueError(f"background lacks the features "
                             f"{[columns[j] for j in np.flatnonzero(~given)]}.")
        return out
    values = np.asarray(background, dtype=object)
    if values.ndim == 2 and values.shape[0] == 1:
        values = values[0]
    if values.ndim != 1 or len(values) != len(columns):
        raise ValueError(f"background must have one value per feature ({len(columns)}); got "
                         f"shape {values.shape}.")
    return list(values)


def _check_mad(mad, columns, categorical, computed):
    """Replace the computed MADs (one per numeric feature) by those the user gave."""
    if mad is None:
        return computed
    numeric = np.flatnonzero(~categorical)
    slot = {j: k for k, j in enumerate(numeric)}
    out = computed.copy()
    if isinstance(mad, dict):
        positions, values = _mapping(mad, columns, "mad")
        _numeric_only(positions, categorical, columns, "mad")
    else:
        values = np.asarray(mad, dtype=float).ravel()
        if values.shape != (len(columns),):
            raise ValueError(f"mad must be a dict or have one value per feature "
                             f"({len(columns)}); got shape {np.shape(mad)}.")
        positions, values = list(numeric), list(values[numeric])
    for j, v in zip(positions, values):
        try:
            v = float(v)
        except (TypeError, ValueError):
            v = np.nan
        if not (np.isfinite(v) and v > 0):
            raise ValueError(f"mad for feature {columns[j]!r} must be a positive number; got "
                             f"{v!r}.")
        out[slot[j]] = v
    return out


def _per_row(value, n, name, pd, dtype=object):
    if value is None:
        return None
    if np.ndim(value) == 0:
        return np.full(n, value, dtype=dtype)
    values = value.to_numpy() if hasattr(value, "to_numpy") else np.asarray(value, dtype=dtype)
    values = np.asarray(values, dtype=dtype).ravel()
    if len(values) != n:
        raise ValueError(f"{name} must be a scalar or have one entry per row of X ({n}); got "
                         f"{len(values)}.")
    return values


# ----------------------------------------------------------------------- helpers for models


def _mad_of(values):
    """The explainers' MAD of each column (:func:`skcem.costs.median_absolute_deviation`),
    so that a counterfactual's MAD-L1 here is its ``distance`` with ``distance="mad"``."""
    if values.shape[1] == 0:
        return np.ones(0)
    return median_absolute_deviation(values)


def _codes(arrays, pd):
    """Factorise object arrays jointly: equal values get equal codes, missing values -1."""
    sizes = [len(a) for a in arrays]
    codes, _ = pd.factorize(np.concatenate(arrays).astype(object), use_na_sentinel=True)
    return np.split(codes, np.cumsum(sizes)[:-1])


def _same_values(a, b, pd):
    miss_a = np.asarray(pd.isna(a), dtype=bool)
    miss_b = np.asarray(pd.isna(b), dtype=bool)
    a = np.where(miss_a, 0, a).astype(object)
    b = np.where(miss_b, 0, b).astype(object)
    return bool(np.all((miss_a == miss_b) & (miss_a | (a == b))))


def _cast_like(series, dtype, pd):
    """``series`` in ``dtype`` when that keeps every value, else with its inferred dtype."""
    if series.dtype == dtype:
        return series
    try:
        cast = series.astype(dtype)
        if _same_values(_as_object(series), _as_object(cast), pd):
            return cast
    except (TypeError, ValueError):
        pass
    return series.infer_objects()


def _model_rows(columns_values, X, pd):
    """Rows in the form of X from a list of per-column 1-D object arrays."""
    if isinstance(X, pd.DataFrame):
        return pd.DataFrame({name: _cast_like(pd.Series(values, dtype=object), X[name].dtype, pd)
                             for name, values in zip(X.columns, columns_values)},
                            columns=X.columns)
    rows = np.column_stack(columns_values) if columns_values else np.empty((0, 0))
    if X.dtype.kind in "biuf":
        try:
            return rows.astype(np.result_type(X.dtype, float))
        except (TypeError, ValueError):
            pass
    return rows


def _predict(estimator, rows):
    return np.asarray(estimator.predict(rows))


def _as_the_explainers_pass(rows):
    """Rows as the explainers give a function: a DataFrame of float64 columns as an array
    (other dtypes, such as times or integers, as a DataFrame)."""
    if hasattr(rows, "columns") and all(dtype == np.float64 for dtype in rows.dtypes):
        return rows.to_numpy(dtype=float)
    return rows


class _ClassesOfOutputs:
    """``predict`` of a Keras model, a PyTorch module or a function returning probabilities
    (which the explainers take): the class of the largest output, as the explainers read it
    (a sigmoid's one output as two classes), named by ``classes`` when given."""

    def __init__(self, model, classes, input_shape, sample):
        from ._gradients import detect_output_kind, is_deep_model, make_backend

        self.classes = None if classes is None else np.asarray(classes, dtype=object)
        if is_deep_model(model):
            sample = np.asarray(sample, dtype=float)
            kind = detect_output_kind(model, sample, input_shape)
            self.backend = make_backend(model, eps=1e-4, n_features=sample.shape[1],
                                        input_shape=input_shape, output_kind=kind)
            self.proba = lambda rows: self.backend.predict_proba(np.asarray(rows, dtype=float))
        else:
            self.proba = lambda rows: np.asarray(model(_as_the_explainers_pass(rows)),
                                                 dtype=float)

    def predict(self, rows):
        index = np.argmax(self.proba(rows), axis=1)
        return index if self.classes is None else self.classes[index]


def _check_target_classes(target, estimator, pd):
    """Refuse target labels that the model's classes (where it names them) do not hold: no
    answer could be valid for them."""
    classes = getattr(estimator, "classes_", None)
    if classes is None:
        classes = getattr(estimator, "classes", None)
    if classes is None:
        return
    classes = list(np.asarray(classes, dtype=object))
    given = np.asarray(target, dtype=object)
    unknown = [label for label in pd.unique(given[~np.asarray(pd.isna(given), dtype=bool)])
               if not any(label == known for known in classes)]
    if unknown:
        raise ValueError(f"`target` holds labels the model does not know: {unknown[:10]}; "
                         f"classes are {classes[:20]}.")


def _is_valid(mode, predicted, original, target, pd):
    predicted = np.asarray(predicted, dtype=object)
    original = np.asarray(original, dtype=object)
    if mode == "PP":
        return predicted == original
    changed = predicted != original
    if target is None:
        return changed
    missing = np.asarray(pd.isna(target), dtype=bool)
    wanted = np.where(missing, object(), target).astype(object)
    return np.where(missing, changed, predicted == wanted)


def _numeric_l1(A, B):
    """L1 distances between the rows of ``A`` and ``B``, a cell missing on either side left
    out."""
    if not (np.isnan(A).any() or np.isnan(B).any()):
        return cdist(A, B, "cityblock") if A.shape[1] else np.zeros((len(A), len(B)))
    distance = np.zeros((len(A), len(B)))
    for j in range(A.shape[1]):
        distance += np.nan_to_num(np.abs(A[:, j, None] - B[None, :, j]))
    return distance


def _ynn(explained, predicted, train, train_predicted, n_neighbors, cat_slots, mad):
    """Share of the ``n_neighbors`` nearest training rows that the model puts in each
    explanation's own predicted class; distances computed a block of rows at a time."""
    (e_num, e_cat), (t_num, t_cat) = explained, train
    e_num, t_num = e_num / mad, t_num / mad
    n_train = len(train_predicted)
    step = max(1, _BLOCK_ELEMENTS // n_train)
    out = np.empty(len(predicted))
    for start in range(0, len(predicted), step):
        block = slice(start, start + step)
        distance = _numeric_l1(e_num[block], t_num)
        for k in range(len(cat_slots)):
            distance += e_cat[block, k][:, None] != t_cat[None, :, k]
        distance[np.isnan(distance)] = np.inf
        if n_neighbors < n_train:
            nearest = np.argpartition(distance, n_neighbors - 1, axis=1)[:, :n_neighbors]
        else:
            nearest = np.broadcast_to(np.arange(n_train), distance.shape)
        same = (np.asarray(train_predicted, dtype=object)[nearest]
                == np.asarray(predicted[block], dtype=object)[:, None])
        out[block] = same.mean(axis=1)
    return out


# ------------------------------------------------------------------------------ public API


def explanation_metrics(estimator, X, explanations, *, mode=None, target=None, X_train=None,
                        categorical_features=None, immutable_features=None, directions=None,
                        feature_range=None, background=None, mad=None, n_neighbors=5,
                        seconds=None):
    """Per-instance metrics of counterfactual (CF), pertinent-negative (PN) or
    pertinent-positive (PP) explanations, as reported by counterfactual benchmarks.

    Each explanation is compared with its *reference*: the explained row of ``X`` for
    ``mode='CF'`` and ``mode='PN'``, the ``background`` row for ``mode='PP'`` (a PP is the
    part of ``X`` that is kept; a feature at its background value is not kept). A feature is
    *changed* when it differs from the reference: a numeric feature by more than ``1e-8``
    MAD, a categorical feature by any difference (two missing values are equal). A cell
    missing in both the explanation and ``X`` is unchanged in every mode: the explainers keep
    an instance's missing cells missing. The MADs and the yNN distances leave missing cells
    out.

    Parameters
    ----------
    estimator : object
        Fitted classifier with ``predict``; or a Keras model, a PyTorch module or a function
        returning probabilities, as the explainers take them, whose largest output is the
        class (named by the Explanation's ``classes``). It is called with rows in the form of
        ``X``: a DataFrame with X's columns and dtypes (so a ``Pipeline`` with a
        ``ColumnTransformer`` works) or a 2-D array. It is called at most four times: on
        ``X``, on all found explanations, on all rows of the redundancy check, and once on
        ``X_train``.
    X : DataFrame, array-like of shape (n_samples, n_features) or None
        The explained instances. Columns may be numeric, string, category or bool. With an
        :class:`~skcem.Explanation`, None takes its own ``X``, and any other must hold the
        same rows in the same order.
    explanations : DataFrame, array-like of shape (n_samples, n_features) or Explanation
        One explanation per row of ``X``, matched by position; a DataFrame must hold X's
        columns (extra ones are ignored). A row that is entirely missing means that no
        explanation was found. An :class:`~skcem.Explanation` gives its ``explanation``.
    mode : {"CF", "PN", "PP"} or None, default=None
        "CF" and "PN": an explanation is valid when the model's class for it differs from
        its class for ``X`` (or equals ``target`` for "CF" when given). "PP": valid when the
        class is the same as for ``X``. None: an :class:`~skcem.Explanation`'s own mode,
        else "CF". A mode that contradicts an Explanation's (PPs scored as changes, or the
        reverse) is an error.
    target : scalar or array-like of shape (n_samples,), default=None
        Wanted class per row for ``mode='CF'``. A missing entry falls back to "any other
        class". None with an :class:`~skcem.Explanation`: its own (its ``target_class``).
    X_train : DataFrame or array-like of shape (n_train, n_features), default=None
        Training rows in the form of ``X``. They give the MAD of each numeric feature and
        the neighbours for ``ynn``. Without them the MADs come from ``X`` and ``ynn`` is NaN.
    categorical_features : "auto", None, or array-like of names, indices or bool mask, \
default=None
        Categorical features. None or "auto": the DataFrame columns of object, string, category
        or bool dtype (for an array: none if numeric, else the non-numeric columns), holding
        text in ``X`` or ``X_train``. Give indices or a mask for integer-coded categories in
        arrays. None with an :class:`~skcem.Explanation` of a table: the explainer's own
        (its ``categorical_features`` too).
    immutable_features : array-like of names, indices or bool mask, default=None
        Features that must not change; each change is a violation. None with an
        :class:`~skcem.Explanation`: the explainer's own (its ``immutable``).
    directions : dict, default=None
        ``{feature: "increase" | "decrease" | "any"}`` ("any": no limit) for numeric
        features and those of an ordered category dtype (in its order); a change the other
        way is a violation. None with an :class:`~skcem.Explanation`: the explainer's own. A PP's
        feature that they keep from moving towards the background is, like an immutable
        one, kept by construction: not counted in ``l0`` and the norms.
    feature_range : dict or tuple, default=None
        ``{feature: (low, high)}`` for numeric features (None for no bound; times and
        durations for datetime and timedelta columns) and ``{feature: [categories]}`` for
        categorical ones (the categories answers may take), or a pair ``(low, high)`` for all of
        them, each a number or an array of one per feature (an explainer's
        ``feature_range_``, whose datetime and timedelta columns are in the explainer's own
        steps and left out here); a changed value outside the range is a violation.
    background : dict, Series, one-row DataFrame or array-like of shape (n_features,), \
default=None
        Per-feature values that carry no information, categories as they are. Required for
        ``mode='PP'``, where an :class:`~skcem.Explanation` given as ``explanations`` gives its
        own (its explainer's no-information row) by default. With ``mode='PN'`` (optional), a
        numeric feature that a PN changes to a value no farther from its background than the
        instance's is a violation (a PN only moves features away from their no-information
        value).
    mad : dict or array-like of shape (n_features,), default=None
        Scale of each numeric feature, overriding the computed ones (a dict may give some
        features only; array entries for categorical features are ignored). Computed: the
        median absolute deviation ``median(|x - median(x)|)`` of the column of ``X_train``;
        where it is 0, its mean absolute deviation from the median; where that is 0 too, 1
        (the explainers' :func:`skcem.costs.median_absolute_deviation`).
    n_neighbors : int, default=5
        Number of training neighbours for ``ynn``; at most ``len(X_train)``.
    seconds : float or array-like of shape (n_samples,), default=None
        Time taken per instance, copied to the ``seconds`` column (NaN when not given).

    Returns
    -------
    table : pandas.DataFrame of shape (n_samples, 10)
        Indexed like ``X`` (a RangeIndex for arrays), with columns

        - ``valid`` (bool): found and of the required class;
        - ``l0``: number of changed features (a PP's kept ones, its immutable features
          and those ``directions`` hold left out: kept by construction);
        - ``l1``, ``l2``, ``linf``: norms of the change, numeric features in MAD units
          (``|delta| / MAD``), categorical ones counting 1 when changed;
        - ``ynn``: of the explanation's ``n_neighbors`` nearest rows of ``X_train`` (L1
          distance: MAD-scaled numeric differences plus 1 per categorical mismatch; ties
          broken arbitrarily), the share that the model puts in the explanation's own
          predicted class;
        - ``violations``: changed immutable features, changes against ``directions`` and
          changed values outside ``feature_range``, always measured from ``X`` (the
          constraints are about the instance, also for a PP);
        - ``redundancy``: number of changed features that can each, alone, be set back to
          the reference value with the explanation still valid (NaN for invalid rows); for
          a PP only removals that violate no constraint count (a category ``feature_range``
          does not list included), and with ``X_train`` no set-back that creates a rare pair
          of categories (see ``rare_pairs``) counts. Validity here is the model's
          ``predict`` at no margin: answers made with ``kappa`` > 0 keep the margin, and a
          change they need for it may count as redundant;
        - ``rare_pairs``: pairs of categories of the explanation that fewer than 0.01% of
          ``X_train``'s rows hold (or none, or fewer than 1% of the rows that the counts
          of its two categories predict were they independent), and that the instance does
          not hold itself: a combination that (almost) never occurs, such as a female
          husband (NaN without ``X_train``); of two columns whose pairs ``X_train`` can
          tell, as the searches judge them (5 rows or more, on average, per pair it holds:
          not a free-text column's, each text held by a row or two);
        - ``seconds``: time per instance.

        Rows without an explanation have ``valid`` False and NaN in every other column but
        ``seconds``.

    Raises
    ------
    ImportError
        If pandas is not installed.
    ValueError
        If a parameter is out of range or names unknown features.
    """
    pd = _import_pandas()
    own_mode = explanations.mode if isinstance(explanations, Explanation) else None
    if mode is None:
        mode = own_mode or "CF"
    elif own_mode is not None and mode in _MODES and (mode == "PP") != (own_mode == "PP"):
        raise ValueError(f"mode={mode!r}, but `explanations` are {own_mode}s: a PP keeps the "
                         "instance's class, a PN or counterfactual changes it. Leave mode out "
                         "to take the Explanation's.")
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {list(_MODES)}; got {mode!r}.")
    if target is not None and mode != "CF":
        raise ValueError(f"target is only used with mode='CF'; got mode={mode!r}.")
    if hasattr(estimator, "get_params") and is_regressor(estimator):
        raise TypeError(f"estimator must be a classifier (explanations change or keep a "
                        f"class); got the regressor {type(estimator).__name__}.")
    if not callable(getattr(estimator, "predict", None)):
        from ._gradients import is_deep_model

        if not (is_deep_model(estimator) or callable(estimator)):
            raise TypeError(f"estimator must be a fitted classifier with a predict method, a "
                            f"Keras model, a PyTorch module or a function returning "
                            f"probabilities; got {type(estimator).__name__}.")
        own = explanations if isinstance(explanations, Explanation) else None
        if own is None and target is not None and not all(
                isinstance(v, numbers.Integral) and not isinstance(v, bool)
                for v in np.ravel(np.asarray(target, dtype=object))):
            raise ValueError("`target` holds class labels, but the classes of a function's or "
                             "a network's outputs are their positions unless an Explanation "
                             "names them: pass the Explanation, or the target as positions.")
        rows = X if X is not None or own is None else own.X
        estimator = _ClassesOfOutputs(estimator, None if own is None else own.classes,
                                      None if own is None else own.input_shape,
                                      np.asarray(rows)[:5])
    if (not isinstance(n_neighbors, numbers.Integral) or isinstance(n_neighbors, bool)
            or n_neighbors < 1):
        raise ValueError(f"n_neighbors must be a positive integer; got {n_neighbors!r}.")

    explainer_directions = None
    explained = None
    if isinstance(explanations, Explanation):
        explained = explanations.X
        if background is None and mode == "PP":
            background = _background_of(explanations)
        if immutable_features is None and explanations.immutable is not None:
            immutable_features = explanations.immutable  # the explainer's own
        if target is None and mode == "CF" and explanations.target_class is not None:
            target = explanations.target_class
        if directions is None and explanations.directions is not None:
            explainer_directions = explanations.directions  # the explainer's own signs
        if categorical_features is None and explanations.encoded is not None:
            # the explainer's own, integer-coded categories of an array included
            categorical_features = np.asarray(explanations.encoded["categorical"], bool)
        explanations = explanations.explanation  # its answers
    X, explanations, X_train, target = (from_polars(data) for data in
                                        (X, explanations, X_train, target))
    if X is None and explained is None:
        raise ValueError("X is needed: the explained rows (an Explanation gives its own).")
    if X is None:
        X = explained
    elif explained is not None:
        _check_explained_rows(X, explained, pd)
    X, columns = _check_X(X, pd)
    n_samples, n_features = X.shape
    E = _check_like(explanations, X, "explanations", pd, n_rows=n_samples)
    if X_train is not None:
        X_train = _check_like(X_train, X, "X_train", pd)
        if n_neighbors > X_train.shape[0]:
            raise ValueError(f"n_neighbors ({n_neighbors}) exceeds the number of rows of "
                             f"X_train ({X_train.shape[0]}).")
    target = _per_row(target, n_samples, "target", pd)
    try:
        seconds = _per_row(seconds, n_samples, "seconds", pd, dtype=float)
    except (TypeError, ValueError) as exc:
        if "one entry per row" in str(exc):
            raise
        raise ValueError(f"seconds must hold numbers of seconds; got {seconds!r}.") from exc
    if seconds is not None and np.any(seconds < 0):
        raise ValueError("seconds must be 0 or more (times taken per row).")
    categorical = _categorical_mask(categorical_features, X, columns, X_train)
    immutable = np.zeros(n_features, dtype=bool)
    immutable[_positions(immutable_features, columns, "immutable_features")] = True
    dtypes = [getattr(_column(X, j), "dtype", None) for j in range(n_features)]
    ordered = np.array([categorical[j] and bool(getattr(dtypes[j], "ordered", False)
                                                or is_bool_dtype(dtypes[j]))
                        for j in range(n_features)], dtype=bool)
    sign = _check_directions(directions, columns, categorical, ordered) \
        if explainer_directions is None else np.asarray(explainer_directions, float)
    times = np.array([getattr(getattr(_column(X, j), "dtype", None), "kind", "") in ("m", "M")
                      for j in range(n_features)], dtype=bool)
    lower, upper = _check_feature_range(feature_range, columns, categorical, times)
    bg = _check_background(background, X, columns, categorical, pd) if mode == "PP" else None

    found = ~np.asarray(pd.isna(np.asarray(E, dtype=object)), dtype=bool).all(axis=1)
    idx = np.flatnonzero(found)
    n_found = len(idx)
    num = np.flatnonzero(~categorical)
    cat = np.flatnonzero(categorical)

    # Reference columns (object arrays over the found rows), X's or the background's.
    def reference(j, rows):
        if bg is None:
            return _as_object(_column(X, j))[rows]
        return np.array(bg[rows, j], dtype=object)

    # Numeric features: floats; categorical ones: joint integer codes.
    def numeric(data, name, rows=slice(None)):
        if not len(num):
            return np.empty((len(np.arange(data.shape[0])[rows]), 0))
        return np.column_stack([_as_float(_column(data, j), pd, name, columns[j])[rows]
                                for j in num])

    e_num = numeric(E, "explanations", idx)
    if np.isinf(e_num).any():
        raise ValueError("`explanations` hold infinite values: an answer is a row of finite "
                         "values (NaN for none found).")
    if bg is None:
        r_num = numeric(X, "X", idx)
    else:
        r_num = numeric(bg, "background", idx)
    t_num = None if X_train is None else numeric(X_train, "X_train")
    scale = _check_mad(mad, columns, categorical,
                       _mad_of(numeric(X, "X") if t_num is None else t_num))

    e_cat = np.empty((n_found, len(cat)), dtype=int)
    r_cat = np.empty((n_found, len(cat)), dtype=int)
    t_cat = None if X_train is None else np.empty((len(X_train), len(cat)), dtype=int)
    x_cat = np.empty((n_found, len(cat)), dtype=int)
    for k, j in enumerate(cat):
        arrays = [_as_object(_column(E, j))[idx], reference(j, idx),
                  _as_object(_column(X, j))[idx]]
        if X_train is not None:
            arrays.append(_as_object(_column(X_train, j)))
        codes = _codes(arrays, pd)
        e_cat[:, k], r_cat[:, k], x_cat[:, k] = codes[0], codes[1], codes[2]
        if X_train is not None:
            t_cat[:, k] = codes[3]

    # Changes from the reference.
    changed = np.zeros((n_found, n_features), dtype=bool)
    size = np.zeros((n_found, n_features))
    delta = np.zeros((n_found, n_features))
    # A cell missing in both the explanation and X was kept missing: no change, in any mode.
    x_num = numeric(X, "X", idx)
    kept_missing = np.isnan(e_num) & np.isnan(x_num)
    with np.errstate(invalid="ignore"):
        d = e_num - r_num
        same = (np.abs(d) <= _ATOL * scale) | (np.isnan(e_num) & np.isnan(r_num))
    same |= kept_missing
    changed[:, num] = ~same
    size[:, num] = np.where(same, 0.0, np.abs(d) / scale)
    delta[:, num] = np.where(same, 0.0, d)
    for k, j in enumerate(cat):
        x_missing = np.asarray(pd.isna(_as_object(_column(X, j))[idx]), dtype=bool)
        changed[:, j] = (e_cat[:, k] != r_cat[:, k]) & ~((e_cat[:, k] < 0) & x_missing)
        if ordered[j] and bg is None:  # a move up or down the dtype's order, for directions
            step = _order_ranks(_as_object(_column(E, j))[idx], dtypes[j], pd) - \
                _order_ranks(_as_object(_column(X, j))[idx], dtypes[j], pd)
            delta[:, j] = np.where(changed[:, j], step, 0.0)
    size[:, cat] = changed[:, cat]
    if bg is not None:
        # A PP keeps its immutable features by construction, not because the class rests on
        # them, and those that directions keep from moving towards the background: not
        # counted as kept (as Explanation.changes leaves them to fixed()).
        held = np.broadcast_to(immutable, changed.shape).copy()
        with np.errstate(invalid="ignore"):
            held[:, num] |= ((sign[num] > 0) & (r_num < x_num)) | \
                ((sign[num] < 0) & (r_num > x_num))
        changed[held] = False
        size[held] = 0.0
        delta[held] = 0.0

    values = np.zeros((n_found, n_features))
    values[:, num] = e_num
    # Constraints are about the instance: violations are always measured from X (a PP keeps
    # part of X; its change from the background is no violation), and a PP's feature counts
    # as redundant only where removing it would violate nothing.
    if bg is None:
        changed_x, delta_x, revertible = changed, delta, np.ones_like(changed)
    else:
        changed_x = np.zeros((n_found, n_features), dtype=bool)
        delta_x = np.zeros((n_found, n_features))
        revertible = np.ones((n_found, n_features), dtype=bool)
        with np.errstate(invalid="ignore"):
            changed_x[:, num] = ~((np.abs(e_num - x_num) <= _ATOL * scale) | kept_missing)
            delta_x[:, num] = np.where(changed_x[:, num], e_num - x_num, 0.0)
            removed = r_num - x_num
            revertible[:, num] = ~((np.abs(removed) > _ATOL * scale)
                                   & (immutable[num] | (sign[num] * removed < 0)
                                      | (r_num < lower[num]) | (r_num > upper[num])))
        listed = _permitted(feature_range, columns, categorical, X, X_train)
        for k, j in enumerate(cat):
            codes = _codes([_as_object(_column(E, j))[idx], _as_object(_column(X, j))[idx],
                            reference(j, idx)], pd)
            changed_x[:, j] = codes[0] != codes[1]
            revertible[:, j] = ~(immutable[j] & (codes[2] != codes[1]))
            if j in listed:  # a background category feature_range leaves out: kept
                allowed = np.isin(reference(j, idx), np.asarray(listed[j], dtype=object))
                revertible[:, j] &= allowed | (codes[2] == codes[1])
    with np.errstate(invalid="ignore"):
        violation = changed_x & (immutable | (sign * delta_x < 0) | (values < lower)
                                 | (values > upper))
    for j, listed in _permitted(feature_range, columns, categorical, X, X_train).items():
        # a category feature_range does not list (the instance's own is no change)
        answers = _as_object(_column(E, j))[idx]
        violation[:, j] |= changed_x[:, j] & ~pd.isna(answers) & \
            ~np.isin(answers, np.asarray(listed, dtype=object))
    if mode == "PN" and background is not None:
        violation |= changed_x & _towards_background(
            _check_background(background, X, columns, categorical, pd), idx, e_num, x_num,
            num, n_features, numeric)

    # Validity: one predict on X, one on all found explanations.
    e_columns = [_as_object(_column(E, j))[idx] for j in range(n_features)]
    pred_x = _predict(estimator, X)
    if target is not None:
        _check_target_classes(target, estimator, pd)
    wanted = None if target is None else target[idx]
    pred_e = _predict(estimator, _model_rows(e_columns, X, pd)) if n_found else np.empty(0)
    valid_found = _is_valid(mode, pred_e, pred_x[idx], wanted, pd).astype(bool) \
        if n_found else np.zeros(0, dtype=bool)

    # Redundancy: every changed feature of every valid explanation set back alone, one
    # predict for all those rows.
    redundancy = np.full(n_found, np.nan)
    ok = np.flatnonzero(valid_found)
    pair_row, pair_col = np.nonzero(changed[ok] & revertible[ok])
    redundancy[ok] = 0.0
    if len(pair_row):
        rows = ok[pair_row]  # positions among found rows
        columns_values = []
        for j in range(n_features):
            column = e_columns[j][rows].copy()
            hit = pair_col == j
            if hit.any():
                column[hit] = reference(j, idx[rows[hit]])
            columns_values.append(column)
        pred_r = _predict(estimator, _model_rows(columns_values, X, pd))
        still = _is_valid(mode, pred_r, pred_x[idx[rows]],
                          None if wanted is None else wanted[rows], pd)
        if X_train is not None and len(cat):
            # A set-back that would pair categories (almost) never seen together is no
            # answer either: the search refuses those (rare_pairs), so it keeps the change.
            reverted = e_cat[rows].copy()
            for k, j in enumerate(cat):
                hit = pair_col == j
                reverted[hit, k] = r_cat[rows[hit], k]
            still &= rare_pair_counts(reverted, x_cat[rows], t_cat) == 0
        still = still.astype(float)
        redundancy[ok] = np.bincount(pair_row, weights=still, minlength=len(ok))

    # yNN: one predict on X_train, neighbours found a block at a time.
    ynn = np.full(n_found, np.nan)
    if X_train is not None and n_found:
        pred_t = _predict(estimator, X_train)
        ynn = _ynn((e_num, e_cat), pred_e, (t_num, t_cat), pred_t, n_neighbors, cat, scale)

    table = {name: np.full(n_samples, np.nan) for name in METRICS}
    table["valid"] = np.zeros(n_samples, dtype=bool)
    table["valid"][idx] = valid_found
    table["l0"][idx] = changed.sum(axis=1)
    table["l1"][idx] = size.sum(axis=1)
    table["l2"][idx] = np.sqrt((size ** 2).sum(axis=1))
    table["linf"][idx] = size.max(axis=1)
    table["ynn"][idx] = ynn
    table["violations"][idx] = violation.sum(axis=1)
    table["redundancy"][idx] = redundancy
    if X_train is not None:
        table["rare_pairs"][idx] = rare_pair_counts(e_cat, x_cat, t_cat)
    if seconds is not None:
        table["seconds"] = seconds.astype(float)
    index = X.index if isinstance(X, pd.DataFrame) else pd.RangeIndex(n_samples)
    return pd.DataFrame(table, index=index, columns=list(METRICS))


def summarize_metrics(table):
    """Summary of an :func:`~skcem.metrics.explanation_metrics` table.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`~skcem.metrics.explanation_metrics`.

    Returns
    -------
    summary : dict
        ``n_instances`` (rows), ``found`` (rows with an explanation), ``validity`` (share of
        valid rows among all rows), for each other metric ``<metric>_median`` and
        ``<metric>_mean`` over the valid rows (NaN values ignored; NaN when there are none),
        and ``rare_pairs_share``: the share of valid rows holding a rare pair of categories.
    """
    _import_pandas()
    missing = [name for name in METRICS if name not in getattr(table, "columns", ())]
    if missing:
        raise ValueError(f"table lacks the columns {missing}; pass the output of "
                         f"explanation_metrics.")
    valid = table["valid"].to_numpy(dtype=bool)
    n = len(table)
    summary = {"n_instances": n, "found": int(table["l0"].notna().sum()),
               "validity": float(valid.mean()) if n else np.nan}
    for name in METRICS[1:]:
        values = table[name].to_numpy(dtype=float)[valid]
        values = values[~np.isnan(values)]
        summary[f"{name}_median"] = float(np.median(values)) if values.size else np.nan
        summary[f"{name}_mean"] = float(np.mean(values)) if values.size else np.nan
    held = table["rare_pairs"].to_numpy(dtype=float)[valid]
    held = held[~np.isnan(held)]
    # The share of answers that pair categories (almost) never seen together.
    summary["rare_pairs_share"] = float(np.mean(held > 0)) if held.size else np.nan
    return summary
