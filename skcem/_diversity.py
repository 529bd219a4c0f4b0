"""Diversity of sets of counterfactuals, as DiCE's authors measure it.

Mothilal, Sharma and Tan (FAT* 2020, "Explaining machine learning classifiers through diverse
counterfactual explanations", section 5) score a set of ``k`` counterfactuals of one instance
by the mean over its ``k (k - 1) / 2`` pairs of

* **count diversity**: the share of features whose values differ between the two answers;
* **continuous diversity**: the mean, over the numeric features, of the absolute difference
  of the two answers in units of the feature's median absolute deviation (MAD).

Both take any sets of answers: skcem's (``Explanation.counterfactuals``) or another library's.
"""

from numbers import Real

import numpy as np

from ._labels import is_missing
from ._validation import from_polars
from .costs import median_absolute_deviation


def _answer_sets(counterfactuals, features=None):
    """``(sets, columns, categorical, kept)``: one 2-D object array of answers per instance
    (rows that are missing as a whole left out), the column names (or None), and the mask of
    columns that hold categories (non-numeric dtypes of a DataFrame); only the columns
    ``features`` (names, or positions) when given, at positions ``kept`` of all the answers'
    columns (an array of them)."""
    encoded = getattr(counterfactuals, "encoded", None)
    # an explainer's integer-coded categories (categorical_features of an array) are its own
    known = None if encoded is None else np.asarray(encoded["categorical"], bool)
    counterfactuals = getattr(counterfactuals, "counterfactuals", counterfactuals)
    if counterfactuals is None:
        raise ValueError("`counterfactuals` is None: an Explanation holds counterfactuals "
                         "only from CounterfactualExplainer.")
    if hasattr(counterfactuals, "columns"):  # a DataFrame indexed by (instance, rank)
        frame = counterfactuals
        import pandas as pd

        categorical = np.array([not pd.api.types.is_numeric_dtype(frame[c])
                                or pd.api.types.is_bool_dtype(frame[c]) for c in frame.columns])
        if frame.index.nlevels < 2:
            raise ValueError("A DataFrame of `counterfactuals` must be indexed by (instance, "
                             "rank): a MultiIndex whose last level is the rank.")
        values = frame.to_numpy(dtype=object)
        sets = [values[start:stop] for start, stop in _instance_runs(frame.index)]
        columns = list(frame.columns)
    elif isinstance(counterfactuals, np.ndarray) and counterfactuals.ndim == 3:
        sets = list(counterfactuals.astype(object))
        columns = None
        categorical = np.array([not _numeric(counterfactuals[:, :, j])
                                for j in range(counterfactuals.shape[2])], dtype=bool)
    elif isinstance(counterfactuals, (list, tuple)):
        sets = [np.asarray(getattr(s, "to_numpy", lambda **_: s)(dtype=object), dtype=object)
                for s in counterfactuals]
        columns = list(counterfactuals[0].columns) if counterfactuals and \
            hasattr(counterfactuals[0], "columns") else None
        width = sets[0].shape[1] if sets else 0
        if any(s.ndim != 2 or s.shape[1] != width for s in sets):
            raise ValueError("`counterfactuals` given as a list must hold one 2-D set of "
                             "answers per instance, all with the same number of features.")
        categorical = np.array([not all(_numeric(s[:, j]) for s in sets)
                                for j in range(width)], dtype=bool)
    else:
        raise ValueError("`counterfactuals` must be an Explanation, a DataFrame indexed by "
                         "(instance, rank), an array of shape (n_samples, k, n_features) or a "
                         f"list of 2-D sets of answers; got {type(counterfactuals).__name__}.")
    if known is not None and known.shape == categorical.shape:
        categorical = categorical | known
    width = len(categorical)
    if features is not None:
        from ._validation import label_position

        if isinstance(features, (str, tuple)):  # one column
            features = [features]
        if len(features) == 0:
            raise ValueError("`features` names no column: give the columns to compare, or "
                             "None for all.")
        kept = np.array([label_position(key, columns, len(categorical), "features")
                         for key in features])
        sets = [s[:, kept] for s in sets]
        columns = None if columns is None else [columns[j] for j in kept]
        categorical = categorical[kept]
    else:
        kept = np.arange(len(categorical))
    return [s[~_missing_rows(s)] for s in sets], columns, categorical, (kept, width)


def _instance_runs(index):
    """``(start, stop)`` of each instance's rows in an index of (instance..., rank): a new
    instance where the levels before the rank change or the rank does not grow, so that two
    instances with the same label (a repeated id) stay apart, and a MultiIndex of ``X`` keeps
    all its levels."""
    if len(index) == 0:
        return []
    ranks = np.asarray(index.get_level_values(index.nlevels - 1))
    keys = list(zip(*(index.get_level_values(level) for level in range(index.nlevels - 1))))
    starts = [0] + [i for i in range(1, len(index))
                    if keys[i] != keys[i - 1] or not ranks[i] > ranks[i - 1]]
    return list(zip(starts, starts[1:] + [len(index)]))


def _numeric(values):
    """Whether cells hold numbers: not text, nor True / False (a bool column is a category,
    as in a DataFrame, also in an object array)."""
    values = np.asarray(values)
    if values.dtype.kind in "fiu":
        return True
    try:
        np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        return False
    return values.dtype.kind != "b" and not any(isinstance(value, (bool, np.bool_))
                                                for value in values.ravel())


def _missing_rows(answers):
    """Rows missing as a whole (no answer at that rank)."""
    import pandas as pd

    return np.asarray(pd.isna(pd.DataFrame(answers)).all(axis=1)) if answers.size \
        else np.zeros(len(answers), bool)


def _category_differs(a, b):
    """Two categories differ; two missing ones do not, one missing and one not do."""
    a_missing, b_missing = is_missing(a), is_missing(b)
    if a_missing or b_missing:
        return a_missing != b_missing
    return bool(a != b)


_categories_differ = np.frompyfunc(_category_differs, 2, 1)


def _pairs(n_answers):
    return np.triu_indices(n_answers, k=1)


def count_diversity(counterfactuals, *, features=None, atol=1e-8):
    """DiCE's count diversity of each instance's counterfactuals.

    The share of (pair of answers, feature) cells whose values differ: a numeric feature
    differs by more than ``atol``, a categorical one by its category; two missing values are
    equal. 0 when all answers are the same, 1 when every two differ in every feature.

    Parameters
    ----------
    counterfactuals : Explanation, DataFrame, ndarray or list
        Each instance's set of answers: an :class:`~skcem.Explanation` of
        :class:`~skcem.CounterfactualExplainer` (its ``counterfactuals``), a DataFrame
        indexed by (instance, rank) (an instance's rows together, the rank last: a repeated
        label is two instances), an array of shape (n_samples, k, n_features) or a list
        of 2-D sets (arrays or DataFrames), one per instance. Rows missing as a whole (no
        answer at that rank) are left out. Every column counts: leave out any that is no
        feature (DiCE's ``final_cfs_df`` holds the outcome too), or name the features.
    features : list of str or int, default=None
        The columns compared (names of a DataFrame's, or positions); None: all.
    atol : float, default=1e-8
        A smaller numeric difference counts as none.

    Returns
    -------
    diversity : ndarray of shape (n_samples,)
        In [0, 1]; NaN for an instance with fewer than two answers.

    Examples
    --------
    >>> import numpy as np
    >>> from skcem.metrics import count_diversity
    >>> answers = np.array([[[1.0, 2.0, 3.0], [1.0, 5.0, 3.0], [0.0, 5.0, 3.0]]])
    >>> count_diversity(answers)  # pairs differ in 1, 2 and 1 of 3 features
    array([0.44444444])
    """
    if not isinstance(atol, Real) or isinstance(atol, bool) or not atol >= 0:  # NaN too
        raise ValueError(f"`atol` must be a non-negative number; got {atol!r}.")
    sets, _, categorical, _ = _answer_sets(counterfactuals, features)
    out = np.full(len(sets), np.nan)
    for i, answers in enumerate(sets):
        if len(answers) < 2:
            continue
        first, second = _pairs(len(answers))
        a, b = answers[first], answers[second]
        differs = np.empty(a.shape, bool)
        numeric = ~categorical
        if numeric.any():
            x, y = _as_floats(a[:, numeric]), _as_floats(b[:, numeric])
            differs[:, numeric] = ~(np.abs(x - y) <= atol) & ~(np.isnan(x) & np.isnan(y))
        if categorical.any():
            # missing categories are NaN among objects: numpy 2.5 warns of NaN in a
            # vectorized Python function's input, which _category_differs handles
            with np.errstate(invalid="ignore"):
                differs[:, categorical] = _categories_differ(a[:, categorical],
                                                             b[:, categorical]).astype(bool)
        out[i] = differs.mean()
    return out


def continuous_diversity(counterfactuals, X_train=None, *, mad=None, features=None):
    """DiCE's continuous diversity of each instance's counterfactuals.

    The mean over pairs of answers and numeric features of ``|a - b| / MAD``: how far apart
    the answers are, in each feature's median absolute deviation. Categorical features
    (columns of text or True / False, and an Explanation's explainer's own categorical
    features, integer codes included) are left out.

    Parameters
    ----------
    counterfactuals : Explanation, DataFrame, ndarray or list
        As for :func:`count_diversity`.
    X_train : array-like of shape (n_train, n_features), default=None
        Data whose numeric columns give the MADs (those of
        :func:`skcem.costs.median_absolute_deviation`, as ``distance="mad"`` uses). Needed
        unless ``mad`` is given.
    mad : array-like of shape (n_features,) or dict, default=None
        The MAD of each feature (categorical ones ignored; with ``features``, one per feature
        named there, in its order, or one per column of the answers where those are more),
        or ``{column: MAD}`` for the numeric columns of a DataFrame; replaces the MADs of
        ``X_train``.
    features : list of str or int, default=None
        As for :func:`count_diversity`. A set with a column that a DataFrame ``X_train``
        lacks (an outcome column) is refused, naming it.

    Returns
    -------
    diversity : ndarray of shape (n_samples,)
        Non-negative; NaN for an instance with fewer than two answers or no numeric feature.
    """
    X_train = from_polars(X_train)
    sets, columns, categorical, kept = _answer_sets(counterfactuals, features)
    if columns is not None and hasattr(X_train, "columns") and mad is None:
        extra = [c for c in columns if c not in X_train.columns]
        if extra:
            raise ValueError(f"The counterfactuals hold columns that X_train lacks: {extra} "
                             "(an outcome column, as DiCE's final_cfs_df holds?). Leave them "
                             "out, or name the features in `features`.")
    numeric = np.flatnonzero(~categorical)
    scale = _mads(X_train, mad, columns, categorical, numeric, kept)
    out = np.full(len(sets), np.nan)
    for i, answers in enumerate(sets):
        if len(answers) < 2 or numeric.size == 0:
            continue
        first, second = _pairs(len(answers))
        values = _as_floats(answers[:, numeric])
        distances = np.abs(values[first] - values[second]) / scale
        if not np.isnan(distances).all():  # else NaN: no numeric cell to compare
            out[i] = np.nanmean(distances)
    return out


def _as_floats(values):
    """Cells of numbers as floats, missing ones (None, pandas' NA of nullable dtypes) NaN."""
    try:
        return np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        import pandas as pd  # only pandas' nullable dtypes hold cells float() refuses

        values = np.asarray(values, dtype=object)
        return np.where(np.asarray(pd.isna(values), bool), np.nan, values).astype(float)


def _mads(X_train, mad, columns, categorical, numeric, kept):
    """The MAD of each numeric feature, from ``mad`` or else ``X_train`` (by name where both
    have names, else by position: ``kept = (positions, width)`` of the answers' columns)."""
    if mad is not None:
        if isinstance(mad, dict):
            if columns is None:
                raise ValueError("`mad` as a dict needs counterfactuals with column names.")
            unknown = [c for c in mad if c not in columns]
            if unknown:
                raise ValueError(f"`mad` names columns {unknown} that the counterfactuals do "
                                 "not have.")
            missing = [columns[j] for j in numeric if columns[j] not in mad]
            if missing:
                raise ValueError(f"`mad` gives no MAD for the numeric columns {missing}.")
            values = np.array([mad[columns[j]] for j in numeric], dtype=float)
        else:
            values = np.asarray(mad, dtype=float).ravel()
            positions, width = kept
            if values.size == width and width != categorical.size:
                values = values[positions]  # every feature's MAD, of which `features`'
            if values.shape != categorical.shape:
                wanted = f"{categorical.size}" + (f" of `features`, or {width}"
                                                  if width != categorical.size else "")
                raise ValueError(f"`mad` must have one value per feature ({wanted}); got "
                                 f"shape {np.shape(mad)}.")
            values = values[numeric]
        if not np.all(np.isfinite(values) & (values > 0)):
            raise ValueError("`mad` must hold positive numbers.")
        return values
    if X_train is None:
        raise ValueError("continuous_diversity needs `X_train` (for the features' MADs) or "
                         "`mad`.")
    if hasattr(X_train, "columns") and columns is not None:
        data = X_train[columns].iloc[:, numeric].to_numpy(dtype=float, na_value=np.nan)
    else:  # by position: X_train as wide as the answers
        kept, width = kept
        data = np.asarray(X_train, dtype=object)
        if data.ndim != 2 or data.shape[1] != width:
            raise ValueError(f"X_train must be 2-D with the answers' {width} columns (taken "
                             f"by position); got shape {data.shape}.")
        data = _as_floats(data[:, kept[numeric]])
    return median_absolute_deviation(data)
