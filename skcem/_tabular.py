"""Mixed tables: what the search moves (numbers) and what the model sees (the original rows).

The search works on a float matrix ``Z``: a numeric column as it is, a categorical column as
the integer code of its category (its position in ``categories_``). :class:`TableCodec` learns
the columns in ``fit`` and converts both ways: :meth:`~TableCodec.encode` for the rows given
to the explainer, :meth:`~TableCodec.decode` for every row the model is asked about, so that a
``Pipeline`` with a ``ColumnTransformer`` gets DataFrames with the fitted columns and dtypes,
never a float array of strings. A category code is never interpolated: only the gradient-free
search (:mod:`skcem._neighbors`) moves categorical columns, one whole category at a time.
"""

import numbers

import numpy as np
from scipy import sparse
from sklearn.utils import check_array

from ._validation import (check_feature_range, check_magnitude, default_classifier,
                          feature_mask, label_position)

CATEGORICAL_KINDS = "OSUb"  # object, bytes, str, bool


def _pandas():
    import pandas as pd

    return pd


def _is_frame(X):
    return hasattr(X, "columns") and hasattr(X, "dtypes")


def _is_categorical_dtype(dtype):
    pd = _pandas()
    return (isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(dtype)
            or pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)
            # an Arrow dictionary (pd.read_parquet(..., dtype_backend="pyarrow")'s categories)
            or str(getattr(dtype, "pyarrow_dtype", "")).startswith("dictionary"))


def is_bool_dtype(dtype):
    """numpy's bool or pandas' nullable boolean: categories ordered False, True."""
    if dtype is None or isinstance(dtype, np.dtype):
        return dtype is not None and dtype.kind == "b"
    pd = _pandas()
    return not isinstance(dtype, pd.CategoricalDtype) and bool(pd.api.types.is_bool_dtype(dtype))


def _is_integer_dtype(dtype):
    if isinstance(dtype, np.dtype):
        return dtype.kind in "iu"
    return bool(_pandas().api.types.is_integer_dtype(dtype))


def _looks_numeric(values):
    """False when a value is text that is not a number, or a boolean: a category. Other
    objects are left to the numeric validation and its error."""
    for value in values:
        if isinstance(value, (bool, np.bool_)):
            return False
        if isinstance(value, (str, bytes)):
            try:
                float(value)
            except ValueError:
                return False
    return True


def _holds_text(values):
    """Whether ``values`` hold text (numbers written as text too: "02134" is a code, whose
    leading zero a number would lose) or booleans: a category. Numbers held as objects are
    numbers."""
    return any(isinstance(value, (str, bytes, bool, np.bool_)) for value in values)


def _first_missing(column):
    """The first missing value of a column (None, NaN, ``pd.NA``...), NaN when it has none."""
    values = np.asarray(column, dtype=object)
    cells = np.flatnonzero(_missing(values))
    return values[cells[0]] if cells.size else np.nan


def _missing(values):
    pd = _pandas() if values.dtype.kind == "O" else None
    if pd is not None:
        return np.asarray(pd.isna(values), dtype=bool)
    return np.isnan(values) if values.dtype.kind == "f" else np.zeros(len(values), bool)


def auto_categorical(X):
    """The columns ``categorical_features="auto"`` takes as categories: DataFrame columns of
    object, string, category or bool dtype holding text (digits too: zip codes) or booleans,
    and columns of an array holding text that is not a number, or booleans (an array of
    text, as ``np.loadtxt(dtype=str)`` reads a file, holds its numbers so); object columns
    of numbers stay numeric, a category dtype of numbers does not (its categories are
    declared)."""
    if _is_frame(X):
        pd = _pandas()
        columns = [X.iloc[:, j] for j in range(X.shape[1])]
        return np.array([_is_categorical_dtype(c.dtype) and (
            pd.api.types.is_bool_dtype(c.dtype) or isinstance(c.dtype, pd.CategoricalDtype)
            or pd.api.types.is_string_dtype(c.dtype) and not c.dtype == object
            or _holds_text(c.dropna()))
            for c in columns], dtype=bool)
    array = np.asarray(X)
    if array.dtype.kind not in CATEGORICAL_KINDS:
        return np.zeros(array.shape[1], dtype=bool)
    return np.array([not _looks_numeric(array[:, j]) for j in range(array.shape[1])],
                    dtype=bool)


def one_hot_groups(X, max_rows=2000):
    """Runs of two or more adjacent columns of ``X`` holding 0s and 1s whose cells in each
    row hold exactly one 1: categories given one-hot encoded (``pd.get_dummies``, a
    OneHotEncoder's output), as lists of column positions."""
    X = np.asarray(X[:max_rows], dtype=float)
    binary = np.all((X == 0) | (X == 1), axis=0)
    if binary.sum() < 2:
        return []
    # the 1s of binary columns from each column on: a group can start only where every row
    # has one ahead (sparse 0/1 columns, as of words, are passed over at once)
    ahead = np.cumsum(np.where(binary, X, 0.0)[:, ::-1], axis=1)[:, ::-1]
    starts = binary & np.all(ahead >= 1, axis=0)
    groups, j, n_columns = [], 0, X.shape[1]
    while j < n_columns:
        if not starts[j]:
            j += 1
            continue
        total, k = np.zeros(len(X)), j
        while k < n_columns and binary[k] and np.all(total <= 1) and not np.all(total == 1):
            total += X[:, k]
            k += 1
        if k - j >= 2 and np.all(total == 1):
            groups.append(list(range(j, k)))
            j = k
        else:
            j += 1
    return groups


def dropped_level_groups(X, names, taken=(), max_rows=2000):
    """Runs of two or more adjacent 0/1 columns of a DataFrame ``X`` named alike (the same
    text before their last "_", as ``pd.get_dummies`` and a OneHotEncoder name them) whose
    cells in each row hold at most one 1, and some none: categories one-hot encoded with a
    reference level dropped (``drop_first=True``, ``OneHotEncoder(drop="first")``), which
    :func:`one_hot_groups` cannot tell. Columns in ``taken`` (its groups) are left out."""
    if names is None:
        return []
    X = np.asarray(X[:max_rows], dtype=float)
    taken = {j for group in taken for j in group}
    binary = np.all((X == 0) | (X == 1), axis=0)
    prefixes = [str(name).rpartition("_")[0] if "_" in str(name) else None for name in names]
    groups, j = [], 0
    while j < X.shape[1]:
        k = j
        while k < X.shape[1] and binary[k] and k not in taken and prefixes[k] and \
                prefixes[k] == prefixes[j]:
            k += 1
        if k - j >= 2:
            total = X[:, j:k].sum(axis=1)
            if np.all(total <= 1) and np.any(total == 0):
                groups.append(list(range(j, k)))
        j = max(k, j + 1)
    return groups


def breaks_one_hot(rows, groups, dropped_level=False):
    """Per row of ``rows``, whether some one-hot group of :func:`one_hot_groups` holds
    anything but a single 1 among 0s; with ``dropped_level``, whether one of
    :func:`dropped_level_groups` holds more than one 1 (none is its reference level)."""
    broken = np.zeros(len(rows), dtype=bool)
    for group in groups:
        cells = rows[:, group]
        ones = cells.sum(axis=1)
        broken |= ~(np.all((cells == 0) | (cells == 1), axis=1)
                    & ((ones <= 1) if dropped_level else (ones == 1)))
    return broken


def native_categorical(estimator, X, categorical_features):
    """``categorical_features`` with "auto" extended by the columns a fitted model itself takes
    as categories: those its encoders encode (a OneHotEncoder of zip codes given as integers,
    an OrdinalEncoder of text that reads as numbers), whose values must stay categories the
    encoder knows, and those its last step takes as categories
    (``HistGradientBoostingClassifier``'s ``is_categorical_``, also as the last step of a
    Pipeline whose other steps keep their columns' names), whose integer codes must move one
    whole category at a time, not continuously."""
    if not (isinstance(categorical_features, str) and categorical_features == "auto") or \
            hasattr(X, "toarray"):
        return categorical_features
    shape = getattr(X, "shape", ())
    n_features = shape[1] if len(shape) == 2 else None
    if n_features is None:
        return categorical_features
    encoded = np.zeros(n_features, dtype=bool)
    encoded[list(model_categories(estimator, getattr(X, "columns", None), n_features))] = True
    native = _native_categorical_inputs(estimator, X, n_features,
                                        int(np.sum(auto_categorical(X) | encoded)))
    if native is None and not encoded.any():
        return categorical_features
    return auto_categorical(X) | encoded | (False if native is None else native)


def _categorical_inputs_of(model):
    """The mask of the inputs a model takes as categories: scikit-learn's
    ``is_categorical_`` (HistGradientBoosting), LightGBM's categorical features (those whose
    ``feature_infos`` list values), XGBoost's (feature type "c", a pandas category column
    under ``enable_categorical`` or one named in ``feature_types``); else None."""
    native = getattr(model, "is_categorical_", None)
    if native is not None:
        return native
    if type(model).__module__.startswith("xgboost") and hasattr(model, "get_booster"):
        try:
            types = model.get_booster().feature_types
        except Exception:  # noqa: BLE001 -- an unfitted or odd model: no categories read
            return None
        return None if types is None else np.array([t == "c" for t in types], dtype=bool)
    booster = getattr(model, "booster_", None)
    if booster is None or not hasattr(booster, "dump_model") or \
            not type(model).__module__.startswith("lightgbm"):
        return None
    infos = booster.dump_model(num_iteration=1).get("feature_infos", {})
    names = booster.feature_name()
    return np.array([bool(infos.get(name, {}).get("values")) for name in names], dtype=bool)


def _native_categorical_inputs(estimator, X, n_features, n_known=0):
    """The columns of ``X`` that the estimator (or its Pipeline's last step) takes as
    categories, or None for none; a warning when they cannot be traced back to ``X``, unless
    the ``n_known`` categorical columns of ``X`` known otherwise (text, category dtypes,
    the encoders') are as many."""
    steps = getattr(estimator, "steps", None)
    last = steps[-1][1] if steps else estimator
    native = _categorical_inputs_of(last)
    if native is None or not np.any(native):
        return None
    native = np.asarray(native, dtype=bool)
    if not steps:
        return native if len(native) == n_features else None
    names = [str(c) for c in getattr(X, "columns", [f"x{j}" for j in range(n_features)])]
    inputs = _traced_inputs(estimator[:-1], names)
    if inputs is None or len(inputs) != len(native) or any(
            inputs[k] is None for k in np.flatnonzero(native)):
        if n_known >= native.sum():  # (a ColumnTransformer's codes of X's text columns)
            return None
        from ._warnings import warn

        warn(f"The Pipeline's last step ({type(last).__name__}) takes {int(native.sum())} of "
             "its input columns as categories, which could not be traced back to the columns "
             "of X: name them in `categorical_features` so that their codes move one whole "
             "category at a time.")
        return None
    mask = np.zeros(n_features, dtype=bool)
    mask[[inputs[k] for k in np.flatnonzero(native)]] = True
    return mask


def _traced_inputs(transformers, names):
    """For each output column of the fitted ``transformers`` (a Pipeline), the index of the
    input column it is named after (``name`` or ``prefix__name``), or None; None when the
    outputs have no names and the steps do not keep their columns as they are."""
    try:
        outputs = [str(c) for c in transformers.get_feature_names_out(names)]
    except (AttributeError, ValueError, TypeError):
        keeps = all(step in (None, "passthrough") or (
            type(step).__name__ == "FunctionTransformer" and step.func is None)
            for _, step in transformers.steps)
        return list(range(len(names))) if keeps else None
    position = {name: j for j, name in enumerate(names)}
    return [position.get(name, position.get(name.split("__", 1)[-1])) for name in outputs]


def model_categories(estimator, feature_names, n_features):
    """The categories a fitted model's encoders know for each column of X.

    Follows a Pipeline's leading steps, ColumnTransformers (by their fitted columns) and steps
    that keep their columns (imputers, passthrough) down to the encoders (``categories_``,
    one array per input column: OneHotEncoder, OrdinalEncoder, TargetEncoder).

    Returns
    -------
    known : dict of int to list
        For each column of X an encoder takes, the categories it knows.
    """
    known = {}
    if estimator is None:
        return known
    names = None if feature_names is None else [str(n) for n in feature_names]
    _collect_categories(estimator, list(range(n_features)), names, known)
    return known


def _collect_categories(step, inputs, names, known, depth=0, filled=()):
    """Add to ``known`` what ``step``'s encoders know; ``inputs`` gives, for each input
    column of ``step``, the column of X it is (or None). ``filled``: the values an imputer
    before ``step`` writes into missing cells, which are no category of X (an encoder after
    ``SimpleImputer(strategy="constant", fill_value="missing")`` knows "missing")."""
    if step is None or isinstance(step, str) or depth > 8:
        return
    if hasattr(step, "transformers_"):
        for _, transformer, columns in step.transformers_:
            positions = _column_positions(columns, len(inputs), names)
            if positions is not None:
                _collect_categories(transformer, [inputs[k] for k in positions], names,
                                    known, depth + 1, filled)
        return
    if hasattr(step, "steps"):
        filled = list(filled)
        for _, inner in step.steps:
            _collect_categories(inner, inputs, names, known, depth + 1, filled)
            if not _keeps_columns(inner, len(inputs)):
                return
            filled.extend(_fill_values(inner))
        return
    categories = getattr(step, "categories_", None)
    if isinstance(categories, list) and len(categories) == len(inputs):
        for j, values in zip(inputs, categories):
            if j is not None:
                known.setdefault(j, []).extend(
                    value for value in np.asarray(values, dtype=object).tolist()
                    if not any(_same_value(value, fill) for fill in filled))


def _fill_values(step):
    """The values ``SimpleImputer(strategy="constant")`` steps write into missing cells, in
    ``step`` or in the Pipelines it nests."""
    if hasattr(step, "steps"):
        return [value for _, inner in step.steps for value in _fill_values(inner)]
    if getattr(step, "strategy", None) == "constant" and hasattr(step, "statistics_"):
        return np.asarray(step.statistics_, dtype=object).tolist()
    return []


def _same_value(a, b):
    """Whether two categories are one: numbers by value (the fill -1 is the category -1.0),
    but a truth value is no number (True is no 1), other values by type and value."""
    truths = isinstance(a, (bool, np.bool_)), isinstance(b, (bool, np.bool_))
    try:
        if not any(truths) and isinstance(a, numbers.Number) and isinstance(b, numbers.Number):
            return bool(a == b)
        return type(a) is type(b) and bool(a == b)
    except (TypeError, ValueError):
        return False


def _column_positions(columns, n_inputs, names):
    """A ColumnTransformer's fitted column selection as positions, or None."""
    if isinstance(columns, slice):
        return list(range(n_inputs))[columns] if not isinstance(columns.start, str) else None
    if isinstance(columns, (str, int, np.integer)):
        columns = [columns]
    columns = np.asarray(columns)
    if columns.dtype.kind == "b":
        return list(np.flatnonzero(columns)) if len(columns) == n_inputs else None
    if columns.dtype.kind in "iu":
        return [int(c) % n_inputs for c in columns]
    if names is None or len(names) != n_inputs:
        return None
    position = {name: k for k, name in enumerate(names)}
    found = [position.get(str(c)) for c in columns]
    return None if any(k is None for k in found) else found


def _check_hashable(values, name):
    """Refuse a column of lists, dicts or other unhashable values: no category can be one."""
    for value in values:
        try:
            hash(value)
        except TypeError:
            raise ValueError(f"X column {name!r} holds {type(value).__name__} values such as "
                             f"{value!r}, which cannot be categories: convert them to text "
                             "(`.astype(str)`) or to tuples (`.map(tuple)`, and name the "
                             "column in `categorical_features`), or drop the column.") from None


def _check_told_apart(values, name):
    """Refuse a column holding a truth value and a number equal to it (True and 1): one
    category to pandas, two to a model that reads them as text."""
    types = set(map(type, values))
    if not (types & {bool, np.bool_}) or not any(issubclass(t, numbers.Number) and
                                                 t not in (bool, np.bool_) for t in types):
        return
    try:
        kinds = {(isinstance(v, (bool, np.bool_)), v) for v in values}
    except TypeError:  # unhashable values: pandas refuses them itself
        return
    truths = {v for is_truth, v in kinds if is_truth}
    plain = {v for is_truth, v in kinds if not is_truth and isinstance(v, numbers.Number)}
    both = [v for v in truths if v in plain]
    if both:
        raise ValueError(f"X column {name!r} holds {both[0]!r} and the number "
                         f"{int(both[0])!r}, which are one category to the explainer: "
                         "convert the column to text (`astype(str)`) or to one kind of "
                         "value.")


def _keeps_columns(step, n_inputs):
    """Whether a fitted step's output columns are its input columns, one for one."""
    if step is None or isinstance(step, str):
        return step in (None, "passthrough")
    try:
        return len(step.get_feature_names_out()) == n_inputs and \
            not hasattr(step, "categories_")
    except (AttributeError, ValueError, TypeError):
        return False


class TableCodec:
    """The columns of the data given to ``fit``, and the conversions of the search.

    Parameters
    ----------
    categorical_features : "auto", array-like of str or int, or boolean mask
        "auto": DataFrame columns of object, string, category or bool dtype (and text columns
        of an object array); otherwise names, indices or a mask (integer-coded categories).

    Attributes
    ----------
    categorical_ : ndarray of bool, shape (n_features,)
    categories_ : list of (ndarray or None)
        The categories of each categorical column, in code order; None for numeric columns.
        A missing value is no category: its code is NaN, and it is given back as the
        column's own missing value (``missing_values_``).
    missing_values_ : list
        Per categorical column, the missing value met in ``fit`` (None, NaN or ``pd.NA``);
        NaN where none was, and for numeric columns.
    ordered_ : ndarray of bool, shape (n_features,)
        Categorical columns of an ordered category dtype: their codes follow its order.
    integer_ : ndarray of bool, shape (n_features,)
        Numeric columns of integer dtype: the gradient-free search keeps them whole numbers.
    columns_ : list or None
        The DataFrame's column labels (None for an array).
    """

    def __init__(self, categorical_features="auto"):
        self.categorical_features = categorical_features

    def fit(self, X, feature_names=None, known_categories=None):
        """Learn the columns, their dtypes and the categories of ``X``.

        ``known_categories`` (see :func:`model_categories`) adds, per column, the categories
        the model knows beyond those of ``X``: a rare category missing from the rows given to
        ``fit`` (a fold of a grid search) is still one the model takes.
        """
        self.is_frame_ = _is_frame(X)
        columns = self._columns(X)
        n_features = len(columns)
        self.columns_ = list(X.columns) if self.is_frame_ else None
        # (the levels' names of MultiIndex columns, kept on the answers)
        self.column_level_names_ = list(X.columns.names) if self.is_frame_ else None
        self.dtypes_ = [column.dtype for column in columns]
        if isinstance(self.categorical_features, str) and self.categorical_features == "auto":
            categorical = auto_categorical(X)
        else:
            categorical = feature_mask(self.categorical_features, n_features, feature_names,
                                       "categorical_features")
        self.categorical_ = categorical
        known = known_categories or {}
        categories = [self._categories(column, j, known.get(j)) if categorical[j] else (None, 0)
                      for j, column in enumerate(columns)]
        self.categories_ = [values for values, _ in categories]
        # the first n_offered_[j] codes are those the answers may take (see _categories)
        self.n_offered_ = [n for _, n in categories]
        self.missing_values_ = [_first_missing(column) if categorical[j] else np.nan
                                for j, column in enumerate(columns)]
        # an ordered category dtype's codes follow its order (see _categories), so that
        # ``directions`` hold for them as for numbers
        self.ordered_ = np.array([bool(categorical[j] and (
            getattr(dtype, "ordered", False) or is_bool_dtype(dtype)))
            for j, dtype in enumerate(self.dtypes_)], dtype=bool)
        self.times_ = [None if categorical[j] else _time_scale(column, self._name(j))
                       for j, column in enumerate(columns)]
        self.integer_ = np.array([not categorical[j] and (
            _is_integer_dtype(dtype) or self.times_[j] is not None
            or whole_floats(columns[j], dtype) or _object_integers(columns[j], dtype))
            for j, dtype in enumerate(self.dtypes_)], dtype=bool)
        self._plain = {for_model: np.array([
            not categorical[j] and self.times_[j] is None and (
                (for_model and self.integer_[j])
                or (isinstance(dtype, np.dtype) and dtype == np.float64))
            for j, dtype in enumerate(self.dtypes_)], dtype=bool) for for_model in (True, False)}
        return self

    @property
    def has_categorical(self):
        return bool(self.categorical_.any())

    def as_frame(self, X):
        """``X`` as a DataFrame of the columns seen in ``fit``, in order, when the codec was
        fitted on a DataFrame and ``X`` is an array (with a warning, as scikit-learn warns);
        ``X`` itself otherwise."""
        if not self.is_frame_ or hasattr(X, "iloc"):
            return X
        if sparse.issparse(X):  # scikit-learn's message, as where fit was given an array
            check_array(X, input_name="X")
        array = np.asarray(X)
        if array.ndim != 2 or array.shape[1] != len(self.columns_):
            raise ValueError(f"X has shape {array.shape}, but the explainer was fitted on a "
                             f"DataFrame of {len(self.columns_)} columns: pass a DataFrame "
                             "with the columns seen in fit.")
        from ._warnings import warn

        warn("X does not have feature names, but the explainer was fitted on a DataFrame: "
             "X's columns are taken as `feature_names_in_`, in its order (the model's, "
             "where fit was given them in another) "
             f"({', '.join(map(str, self.columns_[:5]))}"
             f"{', ...' if len(self.columns_) > 5 else ''}).")
        return _pandas().DataFrame(array, columns=self.columns_)

    def keep_given_cells(self, frame, given, same):
        """Write into ``frame`` (rows decoded from their numbers, see :meth:`decode`) the
        cells of ``given`` (the same rows as the caller gave them: a DataFrame of the fitted
        columns) where the mask ``same`` holds, in the columns whose values float64 may not
        hold exactly: integers beyond 2**53 (identifiers), times finer than their span allows
        (nanoseconds over months). Cells no answer changed then come back as they were."""
        pd = _pandas()
        types = pd.api.types
        for j in np.flatnonzero(~np.asarray(self.categorical_)):
            rows = np.flatnonzero(same[:, j])
            column, shown = given.iloc[:, j], frame.iloc[:, j]
            exact_kind = next((kind for kind in (types.is_integer_dtype,
                                                 types.is_datetime64_any_dtype,
                                                 types.is_timedelta64_dtype)
                               if kind(column.dtype)), None)
            if rows.size == 0 or exact_kind is None or not exact_kind(shown.dtype) or (
                    column.dtype != shown.dtype and not types.is_integer_dtype(column.dtype)):
                continue
            frame.iloc[rows, j] = column.iloc[rows].array

    def _columns(self, X):
        if hasattr(X, "iloc") and X.ndim == 1:
            raise ValueError("X is a pandas Series, one row: pass a one-row DataFrame "
                             "instead (`df.iloc[[i]]`, or `series.to_frame().T`).")
        if self.is_frame_:
            return [X.iloc[:, j] for j in range(X.shape[1])]
        array = np.asarray(X)
        if array.ndim != 2:
            raise ValueError(f"Expected a 2-D X; got an array of shape {array.shape}.")
        return [array[:, j] for j in range(array.shape[1])]

    @staticmethod
    def _numpy_dtype(dtype):
        return getattr(dtype, "numpy_dtype", dtype) if not isinstance(dtype, np.dtype) \
            else dtype

    def _categories(self, column, j, known=None):
        pd = _pandas()
        dtype = getattr(column, "dtype", None)
        values = np.asarray(column, dtype=object)
        values = values[~_missing(values)]
        _check_hashable(values, self._name(j))
        _check_told_apart(values, self._name(j))
        seen = pd.unique(values)
        if isinstance(dtype, pd.CategoricalDtype):
            # the dtype's order, its categories neither seen nor known to the model (which an
            # encoder fitted on the column never saw) last: an instance may hold one, no
            # answer takes one
            taken = pd.Index(seen).append(pd.Index(list(known or ())))
            offered = [c for c in dtype.categories if c in taken]
            declared = [c for c in dtype.categories if c not in taken]
            return np.asarray(offered + declared, dtype=object), len(offered)
        if is_bool_dtype(dtype):  # False before True: the order directions follow
            seen = [value for value in (False, True) if value in set(seen)]
        if known:
            extra = pd.Index(known).difference(pd.Index(seen), sort=False)
            extra = [value for value in extra if not _missing(np.asarray([value], object))[0]
                     and type(value) in {type(v) for v in seen}]
            seen = list(seen) + sorted(extra, key=str)
        return np.asarray(seen, dtype=object), len(seen)

    def _name(self, j):
        return self.columns_[j] if self.columns_ is not None else j

    def encode(self, X):
        """The float matrix of ``X``: numbers as they are, categories as their codes.

        Missing values are NaN (the explainer decides whether it takes them). A category not
        seen in ``fit`` is a ``ValueError`` naming the column and the value.
        """
        columns = self._columns(X)
        if len(columns) != len(self.dtypes_):
            raise ValueError(f"X has {len(columns)} features, but this explainer was fitted "
                             f"with {len(self.dtypes_)}.")
        Z = np.empty((len(columns[0]) if columns else 0, len(columns)))
        for j, column in enumerate(columns):
            if self.categorical_[j]:
                Z[:, j] = self._codes(column, j)
            else:
                Z[:, j] = self._numbers(column, j)
        return Z

    def unknown_categories(self, X):
        """Per categorical column of ``X`` (by position), the values that are no category
        of it, in order of first appearance: ``{j: list}``, empty when there are none."""
        pd = _pandas()
        unknown = {}
        for j, column in enumerate(self._columns(X)):
            if not self.categorical_[j]:
                continue
            values = np.asarray(column, dtype=object)
            values = values[~_missing(values)]
            new = pd.unique(values[pd.Index(self.categories_[j]).get_indexer(values) < 0])
            if len(new):
                unknown[j] = list(new)
        return unknown

    def declare(self, unknown):
        """Add the categories ``unknown`` (``{j: list}``, see :meth:`unknown_categories`)
        after each column's own, as categories rows may hold and no answer takes (as those
        a category dtype declares). Not for columns of an ordered category dtype (their codes
        follow its order): a ``ValueError`` names them."""
        pd = _pandas()
        for j, values in unknown.items():
            if self.ordered_[j]:
                raise ValueError(f"X column {self._name(j)!r} holds {values[0]!r}, which is "
                                 "no category of its ordered category dtype seen in fit: "
                                 "where would it lie in the order? Fit on data whose dtype "
                                 "declares it.")
            self.categories_[j] = np.asarray(list(self.categories_[j]) + list(values),
                                             dtype=object)
            later = getattr(self, "declared_at_explain_", {})
            self.declared_at_explain_ = {**later, j: list(later.get(j, [])) + list(values)}
            if isinstance(self.dtypes_[j], pd.CategoricalDtype):
                # the dtype's own order, the new ones after it: a model may read its codes
                self.dtypes_[j] = pd.CategoricalDtype(
                    list(self.dtypes_[j].categories) + list(values))

    def _codes(self, column, j):
        pd = _pandas()
        values = np.asarray(column, dtype=object)
        missing = _missing(values)
        if values.dtype == object:
            _check_told_apart(np.r_[self.categories_[j], values[~missing]], self._name(j))
        codes = pd.Index(self.categories_[j]).get_indexer(values).astype(float)
        codes[missing] = np.nan
        if np.any(codes < 0):
            bad = values[codes < 0][0]
            known = [repr(c) for c in self.categories_[j]]  # 'False' is not False
            shown = ", ".join(known[:10]) + (f", ... ({len(known)} in all)"
                                             if len(known) > 10 else "")
            rows = np.flatnonzero(codes < 0)
            where = ", ".join(map(str, rows[:10])) + (f", ... ({rows.size} rows)"
                                                      if rows.size > 10 else "")
            raise ValueError(f"X column {self._name(j)!r} holds {bad!r}, a category neither "
                             f"seen in fit nor known to the model's encoders (known: {shown}), "
                             f"in the rows at positions {where} of X. The explainer's answers "
                             "only take those categories: explain the other rows, or fit it "
                             "on data that holds this one (a category dtype may declare it: "
                             "rows then keep it, no answer takes it).")
        return codes

    def _numbers(self, column, j):
        if self.times_[j] is not None:
            return self.times_[j].encode(column, self._name(j))
        try:
            if hasattr(column, "to_numpy"):  # nullable dtypes: pd.NA becomes NaN
                return column.to_numpy(dtype=float, na_value=np.nan)
            return np.asarray(column, dtype=float)
        except (TypeError, ValueError):
            values = np.asarray(column, dtype=object)
            bad = next((v for v in values if not _looks_numeric([v])), None)
            if bad is None:  # objects that are no text (periods, dates, tuples)
                bad = next((v for v in values if not isinstance(v, (int, float, np.number))),
                           values[0] if len(values) else None)
            if isinstance(bad, (list, dict, set, np.ndarray)):
                _check_hashable([bad], self._name(j))
            raise ValueError(f"X column {self._name(j)!r} holds non-numeric values such as "
                             f"{bad!r}; name it in `categorical_features`, or convert the "
                             f"column (dtype {getattr(column, 'dtype', values.dtype)}) to "
                             "numbers or datetimes.") from None

    def snap(self, Z):
        """``Z`` with category codes and integer columns rounded to whole numbers."""
        whole = self.categorical_ | self.integer_
        if not whole.any():
            return Z
        Z = Z.copy()
        Z[:, whole] = np.rint(Z[:, whole])
        return Z

    def decode(self, Z, *, for_model=True, index=None):
        """Rows ``Z`` in the original form: a DataFrame of the fitted columns, or an array.

        For the model (``for_model``) integer columns are given as floats when not whole (the
        gradient search moves them continuously); otherwise they keep their dtype, nullable
        where rows are missing (NaN rows of explanations not found). A missing cell (NaN) of a
        categorical column is the column's missing value (``missing_values_``), or None in a
        row that is missing as a whole.
        """
        if not self.is_frame_ and not self.has_categorical:
            return Z
        missing = np.isnan(Z).all(axis=1) if not for_model else None
        if not self.is_frame_:
            out = np.empty(Z.shape, dtype=object)
            for j in range(Z.shape[1]):
                out[:, j] = self._column_values(Z[:, j], j, missing)
            if all(dtype.kind in "fiu" for dtype in self.dtypes_):
                # categories of a numeric array are numbers: numbers out (NaN for None)
                return np.where(out == None, np.nan, out).astype(float)  # noqa: E711
            return out
        pd = _pandas()
        plain = self._plain_columns(for_model)
        # Plain columns in blocks: a frame of a thousand columns built one Series at a time
        # cost 0.18 s a model call. For the model, the columns of an integer dtype whole in
        # every row asked are a block of that dtype (a served model's schema may refuse 37.0
        # for an int); not whole (the gradient search's iterates), floats.
        groups = self._plain_groups(Z, plain, for_model)
        blocks = [pd.DataFrame(Z[:, columns] if dtype is None else
                               Z[:, columns].astype(dtype), index=index, copy=False)
                  for columns, dtype in groups]
        positions = [columns for columns, _ in groups]
        data = {j: pd.Series(self._series(Z[:, j], j, missing, for_model), index=index,
                             copy=False, dtype=self.dtypes_[j] if self.categorical_[j] and
                             self.dtypes_[j] == object else None)
                for j in np.flatnonzero(~plain)}
        if data:
            blocks.append(pd.DataFrame(data, index=index, copy=False))
            positions.append(np.flatnonzero(~plain))
        frame = blocks[0] if len(blocks) == 1 else pd.concat(blocks, axis=1)
        if len(blocks) > 1:  # back in the columns' order
            frame = frame.iloc[:, np.argsort(np.concatenate(positions))]
        frame.columns = pd.Index(self.columns_)
        levels = getattr(self, "column_level_names_", None)
        if levels is not None and len(levels) == frame.columns.nlevels:
            frame.columns.names = levels
        return frame

    def _plain_groups(self, Z, plain, for_model):
        """The ``plain`` columns in blocks: ``(positions, dtype)``, dtype None for Z's floats;
        for the model, those of a numpy integer dtype whole in every row, by dtype."""
        positions = np.flatnonzero(plain)
        if not positions.size:
            return []
        dtypes = [self.dtypes_[j] for j in positions]
        integer = np.array([for_model and isinstance(dtype, np.dtype) and dtype.kind in "iu"
                            for dtype in dtypes], dtype=bool)
        if integer.any():
            values = Z[:, positions[integer]]
            integer[integer] = np.all(values == np.rint(values), axis=0)  # NaN is not whole
        groups = [(positions[~integer], None)] if (~integer).any() else []
        for dtype in dict.fromkeys(dtypes[k] for k in np.flatnonzero(integer)):
            same = np.array([integer[k] and dtypes[k] == dtype for k in range(len(dtypes))])
            groups.append((positions[same], dtype))
        return groups

    def plain_columns(self):
        """Columns that are float64 numbers as they are (in the answers as for a model)."""
        return self._plain[False]

    def _plain_columns(self, for_model):
        """The columns :meth:`_series` gives as the float64 numbers themselves: numeric ones
        of a numpy float64 dtype, and integer ones for the model (set by ``fit``)."""
        return self._plain[bool(for_model)]

    def _column_values(self, z, j, missing):
        if not self.categorical_[j]:
            return z
        values = self.categories_[j][np.clip(np.rint(np.nan_to_num(z)), 0,
                                             len(self.categories_[j]) - 1).astype(int)]
        cells = np.isnan(z)
        if cells.any():
            values = values.copy()
            values[cells] = self.missing_values_[j]
        if missing is not None and missing.any():
            values[missing] = None
        return values

    def _series(self, z, j, missing, for_model, dtype=None):
        pd = _pandas()
        dtype = self.dtypes_[j] if dtype is None else dtype
        if self.categorical_[j]:
            values = self._column_values(z, j, missing)
            if isinstance(dtype, pd.CategoricalDtype):
                return pd.Categorical(values, dtype=dtype)
            if missing is not None and missing.any() and pd.api.types.is_bool_dtype(dtype):
                return pd.array(values, dtype="boolean")
            if dtype == object:
                return values
            try:
                return pd.array(values, dtype=dtype)
            except (TypeError, ValueError):  # missing cells in a dtype without them (int)
                return pd.array(np.where(np.isnan(z), None, values))
        if self.times_[j] is not None:
            return self.times_[j].decode(z, dtype)
        if not for_model and isinstance(dtype, pd.api.extensions.ExtensionDtype):
            # a nullable number (Int64, Float64): the answers keep it, NA where missing
            numbers = self._series(z, j, missing, for_model=False, dtype=np.dtype(float))
            try:
                return pd.array([None if np.isnan(v) else v for v in np.asarray(numbers, float)],
                                dtype=dtype)
            except (TypeError, ValueError):  # not whole in an integer dtype
                return numbers
        if self.integer_[j]:
            cells = np.isnan(z)
            whole = np.all(cells | (z == np.rint(z)))
            if for_model or not whole:
                return z
            if dtype == object:  # integers held as objects: as they were
                return np.array([None if gone else int(v) for v, gone in zip(z, cells)],
                                dtype=object)
            if cells.any():
                return pd.array([None if gone else int(v) for v, gone in zip(z, cells)],
                                dtype=_nullable_int(self._numpy_dtype(dtype)))
            return z.astype(self._numpy_dtype(dtype))
        return z.astype(self._numpy_dtype(dtype)) if np.dtype(
            self._numpy_dtype(dtype)).kind == "f" else z


class _TimeScale:
    """A datetime or timedelta column as numbers: whole ``step``s (the coarsest of a day, an
    hour, a minute, a second, a millisecond... that all its values are multiples of) after
    ``offset``, its earliest value, both in the dtype's own unit. Exact both ways (an unchanged
    date comes back as it was) while the column spans fewer than 2**53 steps (float64's whole
    numbers: 285 years of microseconds, 104 days of nanoseconds)."""

    _SECONDS = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}

    def __init__(self, ticks, unit, tz=None):
        self.unit, self.tz = unit, tz
        self.offset = int(ticks.min()) if ticks.size else 0
        per_second = self._SECONDS.get(unit, 1)
        steps = [86400 * per_second, 3600 * per_second, 60 * per_second, per_second,
                 per_second // 10**3, per_second // 10**6, 1]
        spread = ticks - self.offset
        self.step = next(step for step in steps if step >= 1 and not np.any(spread % step))

    def encode(self, column, name):
        pd = _pandas()
        series = column if hasattr(column, "array") else pd.Series(column)
        dtype = _numpy_time_dtype(series.dtype)
        fitted_tz = getattr(self, "tz", None)
        if getattr(dtype, "kind", "") in "mM" and str(getattr(dtype, "tz", None)) != str(
                fitted_tz):
            def zone(tz):
                return f"in time zone {tz}" if tz is not None else "without a time zone"
            raise ValueError(f"X column {name!r} holds times {zone(getattr(dtype, 'tz', None))}"
                             f", but the explainer was fitted on times {zone(fitted_tz)}: "
                             "convert them (tz_convert, tz_localize) as for the model.")
        unit = getattr(self, "unit", None)
        if unit is not None and getattr(dtype, "kind", "") in "mM" and \
                (getattr(dtype, "unit", None) or np.datetime_data(dtype)[0]) != unit:
            # ticks of the fitted unit (a column of datetime64[us] against [ns]: whole days
            # read as a thousandth of their length)
            series = series.astype(dtype) if dtype is not series.dtype else series
            series = series.dt.as_unit(unit)
        ticks, missing = _ticks(series, name, wall=getattr(self, "wall", True))
        z = ((ticks - self.offset) // self.step).astype(float)
        z[missing] = np.nan
        return z

    def decode(self, z, dtype):
        arrow = getattr(dtype, "pyarrow_dtype", None) is not None
        values = self._decode(z, _numpy_time_dtype(dtype))
        return values.astype(dtype) if arrow else values

    def _decode(self, z, dtype):
        pd = _pandas()
        cells = np.isnan(z)
        ticks = self.offset + np.rint(np.where(cells, 0.0, z) * self.step).astype(np.int64)
        ticks[cells] = np.iinfo(np.int64).min  # NaT
        unit = getattr(dtype, "unit", None) or np.datetime_data(dtype)[0]
        kind = "m" if pd.api.types.is_timedelta64_dtype(dtype) else "M"
        values = pd.array(ticks.view(f"{kind}8[{unit}]"))
        tz = getattr(dtype, "tz", None)
        if tz is None:
            return values
        if not getattr(self, "wall", True):
            return values.tz_localize("UTC").tz_convert(tz)
        # A wall-clock time that occurs twice is taken in standard time, one that a clock
        # change skips moves forward (whole days: only a zone whose clocks change at
        # midnight has either).
        return values.tz_localize(tz, ambiguous=np.zeros(len(values), bool),
                                  nonexistent="shift_forward")


def _ticks(column, name, wall=True):
    """A datetime or timedelta column's integer ticks and missing mask. Of a time zone's,
    with ``wall``, those of the local wall clock (local midnights stay whole days across
    daylight saving changes), else of UTC (the hour a clock turned back repeats is two hours
    apart, not one)."""
    pd = _pandas()
    series = column if hasattr(column, "array") else pd.Series(column)
    if getattr(series.dtype, "pyarrow_dtype", None) is not None:
        series = series.astype(_numpy_time_dtype(series.dtype))
    if getattr(series.dtype, "tz", None) is not None:
        series = (series if wall else series.dt.tz_convert("UTC")).dt.tz_localize(None)
    missing = series.isna().to_numpy()
    try:
        ticks = np.asarray(series.array.asi8, dtype=np.int64)
    except AttributeError:
        raise ValueError(f"X column {name!r} mixes times with other values.") from None
    return np.where(missing, 0, ticks), missing


def _time_scale(column, name=None):
    """A :class:`_TimeScale` for a datetime or timedelta column, None for any other."""
    dtype = _numpy_time_dtype(getattr(column, "dtype", None))  # Arrow's as numpy's
    pd = _pandas() if dtype is not None and getattr(dtype, "kind", "") in "mM" else None
    if pd is None or not (pd.api.types.is_datetime64_any_dtype(dtype)
                          or pd.api.types.is_timedelta64_dtype(dtype)):
        return None
    ticks, missing = _ticks(column, name)
    unit = getattr(dtype, "unit", None) or np.datetime_data(dtype)[0]
    tz = getattr(dtype, "tz", None)
    scale = _TimeScale(ticks[~missing], unit, tz)
    if tz is None:
        return scale
    # On the wall clock where its steps are coarser (local midnights stay whole days; whole
    # hours of a zone whose clocks move by half an hour stay whole hours) and no time is one
    # of the two the hour a clock turns back holds; else by UTC, where each is one number.
    utc_ticks, _ = _ticks(column, name, wall=False)
    by_utc = _TimeScale(utc_ticks[~missing], unit, tz)
    if scale.step > by_utc.step and not _ambiguous_times(column).any():
        return scale
    by_utc.wall = False
    return by_utc


def _ambiguous_times(column):
    """Which times of a time zone's column are one of two with the same wall-clock time."""
    pd = _pandas()
    series = column if hasattr(column, "array") else pd.Series(column)
    if getattr(series.dtype, "pyarrow_dtype", None) is not None:
        series = series.astype(_numpy_time_dtype(series.dtype))
    wall = series.dt.tz_localize(None)
    again = wall.dt.tz_localize(series.dt.tz, ambiguous="NaT", nonexistent="NaT")
    return (again.isna() & series.notna()).to_numpy()


def _numpy_time_dtype(dtype):
    """The datetime64 or timedelta64 dtype (with its time zone) of an Arrow timestamp, date or
    duration dtype (``dtype_backend="pyarrow"``); any other ``dtype`` as it is."""
    arrow = getattr(dtype, "pyarrow_dtype", None)
    if arrow is None or not str(arrow).startswith(("timestamp", "duration", "date")):
        return dtype
    if str(arrow).startswith("date"):  # dates: whole days of datetime64
        return np.dtype("M8[ms]")
    kind = "m" if str(arrow).startswith("duration") else "M"
    tz = getattr(arrow, "tz", None)
    if tz is not None:
        return _pandas().DatetimeTZDtype(arrow.unit, tz)
    return np.dtype(f"{kind}8[{arrow.unit}]")


def whole_floats(column, dtype):
    """Whether a float column of a DataFrame holds whole numbers only (counts that a missing
    cell made floats, numbers read from a file), of which it has several: its answers are
    whole numbers too, as an integer column's."""
    if not isinstance(dtype, np.dtype) or dtype.kind != "f":
        return False
    values = np.asarray(column, dtype=float)
    values = values[~np.isnan(values)]
    return values.size > 0 and bool(np.all(values == np.rint(values))) and \
        np.unique(values).size >= _MIN_WHOLE_VALUES


def _object_integers(column, dtype):
    """Whether an object column holds integers only (Python's or numpy's, not booleans):
    its answers are integers too."""
    if not isinstance(dtype, np.dtype) or dtype.kind != "O":
        return False
    values = np.asarray(column, dtype=object)
    values = values[~_missing(values)]
    return values.size > 0 and all(isinstance(v, (int, np.integer)) and
                                   not isinstance(v, (bool, np.bool_)) for v in values)


# Distinct whole numbers a float column must hold to be taken as one of whole numbers (a 0/1
# column is not: a model may read it as a probability or a share).
_MIN_WHOLE_VALUES = 3


def _nullable_int(kind):
    kind = np.dtype(kind)
    return ("UInt" if kind.kind == "u" else "Int") + str(kind.itemsize * 8)


def is_table(X, categorical_features):
    """Whether ``X`` needs a :class:`TableCodec`: a DataFrame, text columns, categorical
    columns named by the user, or an integer array (whose answers hold whole numbers)."""
    if _is_frame(X):
        return True
    if categorical_features is not None and not (
            isinstance(categorical_features, str) and categorical_features == "auto") and \
            len(categorical_features):
        return True
    array = np.asarray(X) if not hasattr(X, "toarray") else None
    if array is None or array.ndim != 2:
        return False
    return array.dtype.kind in "iu" or (array.dtype.kind in CATEGORICAL_KINDS
                                        and not _looks_numeric(array.ravel()))


def table_feature_range(feature_range, Z, codec, feature_names):
    """Per-column bounds: a pair, a dict of pairs by column (others from the data), or None
    (the data's minimum and maximum). Category codes range over the known categories."""
    if isinstance(feature_range, dict):
        lower, upper = np.nanmin(Z, axis=0), np.nanmax(Z, axis=0)
        for key, bounds in feature_range.items():
            j = label_position(key, feature_names, Z.shape[1], "feature_range")
            if codec is not None and codec.categorical_[j]:
                continue  # the categories it may take: permitted_categories
            scale = codec.times_[j] if codec is not None else None
            if scale is not None:  # times or durations, counted in the column's steps
                lo, hi = _time_bounds(scale, bounds, key, codec.dtypes_[j])
            else:
                lo, hi = _number_bounds(bounds, key)
            # None: that side is the data's
            lo, hi = lower[j] if lo is None else lo, upper[j] if hi is None else hi
            if not (np.isfinite(lo) and np.isfinite(hi)):
                raise ValueError(f"`feature_range[{key!r}]` must be finite; got {bounds!r} "
                                 "(leave the column out to take the data's bounds).")
            if lo > hi:
                raise ValueError(f"`feature_range[{key!r}]` needs min <= max; got {bounds!r}.")
            check_magnitude([lo, hi], f"feature_range[{key!r}]")
            lower[j], upper[j] = lo, hi
    else:
        lower, upper = check_feature_range(feature_range, Z)
        lower, upper = np.array(lower, dtype=float), np.array(upper, dtype=float)
    if codec is not None and codec.has_categorical:
        offered = getattr(codec, "n_offered_", None) or [
            None if values is None else len(values) for values in codec.categories_]
        for j in np.flatnonzero(codec.categorical_):
            lower[j], upper[j] = 0.0, offered[j] - 1.0
    if codec is not None:  # an integer column's answers are whole numbers inside its bounds
        whole = codec.integer_ & ~codec.categorical_
        empty = np.flatnonzero(whole & (np.ceil(lower) > np.floor(upper)))
        if empty.size:
            j = empty[0]
            name = feature_names[j] if feature_names is not None else j
            raise ValueError(f"`feature_range` of the integer column {name!r}, "
                             f"({lower[j]:g}, {upper[j]:g}), holds no whole number.")
        lower[whole], upper[whole] = np.ceil(lower[whole]), np.floor(upper[whole])
        _within_integer_dtypes(lower, upper, codec, feature_names)
    return lower, upper


def listed_categories(given, order, name):
    """A categorical column's ``feature_range`` entry as the list of its categories: one
    category alone (the command line's name:value) as a list of one; a ``(low, high)`` pair
    of an ordered category (``order``, its categories in order, or None) as the categories
    between, ends included."""
    if order is not None and isinstance(given, tuple) and len(given) == 2 and \
            all(value in order for value in given):
        low, high = (order.index(value) for value in given)
        if low > high:
            raise ValueError(f"{name} needs low <= high in the column's order; got {given!r}.")
        return order[low:high + 1]
    return [given] if isinstance(given, (str, bytes)) or not hasattr(given, "__iter__") \
        else list(given)


def permitted_categories(feature_range, codec, feature_names):
    """The categories ``feature_range`` lets a categorical column's answers take, as a mask
    of its codes, by column position (the instance's own category is always allowed: it is
    no change); None where it names none. A column's entry is a list of categories."""
    if not isinstance(feature_range, dict) or codec is None or not codec.has_categorical:
        return None
    permitted = {}
    n_features = len(codec.categorical_)
    offered = getattr(codec, "n_offered_", None) or [
        None if values is None else len(values) for values in codec.categories_]
    for key, given in feature_range.items():
        j = label_position(key, feature_names, n_features, "feature_range")
        if not codec.categorical_[j]:
            continue
        known = list(codec.categories_[j])
        ordered = getattr(codec, "ordered_", None) is not None and codec.ordered_[j]
        given = listed_categories(given, known if ordered else None, f"`feature_range[{key!r}]`")
        unknown = [value for value in given if value not in known]
        if unknown:
            raise ValueError(f"`feature_range[{key!r}]` holds {unknown[:5]}, not categories of "
                             f"that column ({known[:10]}).")
        mask = np.zeros(offered[j], bool)
        for value in given:
            code = known.index(value)
            if code < offered[j]:
                mask[code] = True
        permitted[j] = mask
    return permitted or None


def _within_integer_dtypes(lower, upper, codec, feature_names):
    """Bounds of integer columns cut to what their dtypes hold (in place), with a warning:
    an answer past them would wrap around (int8's 148 is -108)."""
    cut = []
    for j in np.flatnonzero(codec.integer_ & ~codec.categorical_):
        dtype = TableCodec._numpy_dtype(codec.dtypes_[j])
        if not (isinstance(dtype, np.dtype) and dtype.kind in "iu"):
            continue
        info = np.iinfo(dtype)
        # the dtype's extremes as floats that it holds (int64's largest rounds up to 2**63)
        lowest, highest = float(info.min), float(info.max)
        if highest > info.max:
            highest = float(np.nextafter(highest, -np.inf))
        if lower[j] < lowest or upper[j] > highest:
            name = feature_names[j] if feature_names is not None else j
            if lower[j] > highest or upper[j] < lowest:
                raise ValueError(f"`feature_range` of the integer column {name!r}, "
                                 f"({lower[j]:g}, {upper[j]:g}), holds no value of its dtype "
                                 f"{dtype} ([{info.min}, {info.max}]).")
            cut.append(f"{name!r} ({dtype}: [{info.min}, {info.max}])")
            lower[j], upper[j] = max(lower[j], lowest), min(upper[j], highest)
    if cut:
        from ._warnings import warn

        warn(f"`feature_range` goes past what the dtypes of integer columns hold, cut to "
             f"them: {', '.join(cut)}.")


def _number_bounds(bounds, key):
    """``feature_range[key]`` of a numeric column: a pair of numbers, as floats (None for a
    side left to the data)."""
    try:
        if isinstance(bounds, str):
            raise TypeError
        lo, hi = bounds
        if lo is None and hi is None:
            raise TypeError
        return (None if lo is None else float(lo)), (None if hi is None else float(hi))
    except (TypeError, ValueError):
        raise ValueError(f"`feature_range[{key!r}]` must be a pair (min, max) of numbers, one "
                         f"of them None for the data's own; got {bounds!r}.") from None


def _time_bounds(scale, bounds, key, dtype):
    """``feature_range[key]`` of a datetime or timedelta column, given as times or durations
    of its kind (or numbers of its steps), in the column's steps from its earliest value."""
    pd = _pandas()
    try:
        lo, hi = bounds
        # a missing time (NaT) is no bound: that side is the data's, as with None
        lo, hi = (None if v is not None and not isinstance(v, str) and pd.isna(v) else v
                  for v in (lo, hi))
        if lo is None and hi is None:
            raise TypeError("no bound")
        # (numpy's times and durations are integers to ``numbers``: not steps)
        if all(v is None or (isinstance(v, numbers.Real) and
                             not isinstance(v, (np.datetime64, np.timedelta64)))
               for v in (lo, hi)):
            return (None if lo is None else float(lo)), (None if hi is None else float(hi))
        given = [v for v in (lo, hi) if v is not None]
        values = pd.Series(given).astype(dtype)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"`feature_range[{key!r}]` must be a pair (low, high) of "
                         f"{'times' if dtype.kind == 'M' else 'durations'} like the column's "
                         f"({dtype}); got {bounds!r}.") from exc
    ticks, _ = _ticks(values, key, wall=getattr(scale, "wall", True))
    steps = list((ticks - scale.offset) / scale.step)
    low = None if lo is None else float(np.ceil(steps.pop(0)))  # whole steps inside them
    high = None if hi is None else float(np.floor(steps.pop(0)))
    return low, high


_DIRECTIONS = {"increase": 1, "decrease": -1, "any": 0}


def check_directions(directions, n_features, feature_names, codec):
    """``directions`` as one of +1 (only increase), -1 (only decrease), 0 per column."""
    out = np.zeros(n_features, dtype=int)
    for key, value in (directions or {}).items():
        j = label_position(key, feature_names, n_features, "directions")
        if value not in _DIRECTIONS:
            raise ValueError(f"`directions[{key!r}]` must be one of {sorted(_DIRECTIONS)}; "
                             f"got {value!r}.")
        if codec is not None and codec.categorical_[j] and _DIRECTIONS[value] and \
                not getattr(codec, "ordered_", np.zeros(n_features, bool))[j]:
            raise ValueError(f"`directions` gives categorical column {key!r} a direction, "
                             "but its categories have no order: give the column an ordered "
                             "category dtype (`pd.CategoricalDtype(categories, ordered=True)`"
                             "), or use `immutable_features`.")
        out[j] = _DIRECTIONS[value]
    return out


def values_by_column(value, Z, codec, feature_names, name, default):
    """A per-column value given as a dict by column (others from ``default``); a category is
    given as itself and becomes its code."""
    out = np.array(default, dtype=float)
    for key, given in value.items():
        j = label_position(key, feature_names, Z.shape[1], name)
        if codec is not None and codec.categorical_[j]:
            known = list(codec.categories_[j])
            if given not in known:
                raise ValueError(f"`{name}[{key!r}]` is {given!r}, not a category of that "
                                 f"column ({known[:10]}).")
            out[j] = known.index(given)
        else:
            try:
                out[j] = float(given)
            except (TypeError, ValueError):
                out[j] = np.nan
            if not np.isfinite(out[j]):
                raise ValueError(f"`{name}[{key!r}]` must be a finite number; got {given!r}.")
            check_magnitude(out[j], f"{name}[{key!r}]")
    return out


def most_frequent_codes(Z, categorical):
    """The code of each categorical column's most frequent category (missing values left
    out; the first in code order where several are), and how many categories share that
    count: ``{column: (code, n_tied)}``."""
    codes = {}
    for j in np.flatnonzero(categorical):
        column = Z[:, j]
        values, counts = np.unique(column[~np.isnan(column)], return_counts=True)
        codes[j] = values[np.argmax(counts)], int(np.sum(counts == counts.max()))
    return codes


def table_classifier(codec):
    """The model fitted when ``estimator=None`` on a table with categorical columns: the
    default ``LogisticRegression`` after one-hot encoding them and scaling the numbers."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    columns = codec.columns_ if codec.columns_ is not None else list(range(len(codec.dtypes_)))
    categorical = [c for c, is_cat in zip(columns, codec.categorical_) if is_cat]
    numeric = [c for c, is_cat in zip(columns, codec.categorical_) if not is_cat]
    encode = ColumnTransformer([("categories", OneHotEncoder(handle_unknown="ignore"),
                                 categorical), ("numbers", StandardScaler(), numeric)])
    return make_pipeline(encode, default_classifier())
