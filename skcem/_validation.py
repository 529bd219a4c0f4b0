"""Input checks shared by the explainers: each error names the parameter at fault."""

import numbers
import re

import numpy as np
from sklearn.base import clone
from sklearn.externals import array_api_compat
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.utils import get_tags
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import _num_samples, check_is_fitted, validate_data

from ._array_api import to_numpy
from ._gradients import computes_in_half_precision, is_deep_model
from ._gradients._base import probability_array
from ._labels import is_missing

# A target with more distinct values than this share of its rows (and more than
# _MAX_CLASSES_ALWAYS_ACCEPTED) looks like a regression target, not class labels.
_MAX_CLASS_SHARE = 0.2
_MAX_CLASSES_ALWAYS_ACCEPTED = 20


def default_classifier():
    """The model fitted when ``estimator=None``."""
    return LogisticRegression(max_iter=1000)


def check_classification_target(y, owner):
    """Refuse a continuous or regression-like ``y`` for the default classifier."""
    kind = type_of_target(y, input_name="y")
    n_classes = np.unique(y).size if kind in ("binary", "multiclass") else 0
    looks_continuous = kind.startswith("continuous") or (
        n_classes > _MAX_CLASSES_ALWAYS_ACCEPTED and n_classes > _MAX_CLASS_SHARE * len(y))
    if looks_continuous:
        detail = f"{n_classes} distinct values in {len(y)} rows" if n_classes else kind
        raise ValueError(f"{owner} fits a classifier on (X, y) when `estimator` is None, but y "
                         f"looks like a regression target ({detail}). Pass class labels, or a "
                         "fitted classifier as `estimator`.")
    if np.unique(y).size < 2:
        raise ValueError(f"{owner} fits a classifier on (X, y) when `estimator` is None, but y "
                         f"holds one class ({np.unique(y).tolist()}): an explanation changes "
                         "the class, so y needs two or more. Pass rows of several classes, or "
                         "a fitted classifier as `estimator`.")


def is_prefitted(estimator):
    """True for a fitted scikit-learn estimator and for any model that has no ``fit``."""
    if estimator is None:
        return False
    if not hasattr(estimator, "fit") or is_deep_model(estimator):
        return True
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        return False
    except (TypeError, AttributeError):
        # not a scikit-learn estimator (scikit-learn 1.9 raises AttributeError for an
        # object without its tags): used as given, nothing to fit
        return True
    return True


def check_target_given(estimator, y, owner):
    """The error for a model to fit (None or unfitted) without ``y``."""
    if y is None and not is_prefitted(estimator):
        raise ValueError(
            f"{owner} requires y to be passed, but the target y is None: `estimator` is None "
            "or not fitted, so it is fitted on (X, y) here. Pass y, or pass an already fitted "
            "classifier as `estimator` (in a grid over `estimator`, which GridSearchCV clones "
            "unfitted, as sklearn.frozen.FrozenEstimator(model))."
        )


def _holds_other_arrays(value, depth=0):
    """Whether ``value`` (an estimator, its attributes, nested) holds arrays of another
    library than numpy (a torch tensor, a CuPy array)."""
    if depth > 6 or isinstance(value, (np.ndarray, np.generic, str, bytes, type)):
        return False
    if hasattr(value, "__dlpack__"):
        return True
    if isinstance(value, dict):
        return any(_holds_other_arrays(v, depth + 1) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds_other_arrays(v, depth + 1) for v in value)
    if hasattr(value, "get_params"):
        return any(_holds_other_arrays(v, depth + 1) for v in vars(value).values())
    return False


def _with_numpy_arrays(estimator):
    """A scikit-learn ``estimator`` fitted on another library's arrays (torch, CuPy: under
    ``array_api_dispatch``) as a copy holding numpy arrays, which takes the numpy rows the
    explainers ask about (it refuses them as it is); any other model as it is."""
    if not hasattr(estimator, "get_params") or not _holds_other_arrays(estimator):
        return estimator
    from sklearn.externals.array_api_compat import numpy as numpy_namespace
    from sklearn.utils._array_api import move_estimator_to

    return move_estimator_to(estimator, numpy_namespace, "cpu")


def refuse_a_class(estimator):
    """Refuse a model's class given for the model (``nn.Linear``, ``LogisticRegression``):
    called on rows, a class was taken for a function and failed in its ``__init__``."""
    if isinstance(estimator, type):
        name = estimator.__name__
        raise TypeError(f"`estimator` is the class {name}, not a model: give an instance of it "
                        f"({name}(...), fitted or to fit, or a trained network), or a "
                        "function of rows returning probabilities.")


def resolve_estimator(estimator, X, y, owner, default=default_classifier, check=None,
                      fit_params=None):
    """Return a fitted model: used as is when fitted, else cloned and fitted on ``(X, y)``.

    Like ``SelectFromModel``'s prefit handling, but decided by the estimator's fitted state.
    Plain callables and objects that are not scikit-learn estimators are used as given. A
    ``y`` given with a fitted classifier must hold only its classes: it is not used, and a
    mismatch means the model is not the one the user thinks.

    Parameters
    ----------
    estimator : object, callable or None
    X, y : array-like
    owner : str
        The explainer's name, for error messages.
    default : callable, default=default_classifier
        Makes the model fitted when ``estimator`` is None.
    check : callable or None
        Called with the estimator (an unfitted one before fitting), to refuse unsupported
        models with one clear error, before the work of fitting them.
    fit_params : dict or None
        Passed to the estimator's ``fit`` (``sample_weight``...); refused for a fitted one.
    """
    fit_params = fit_params or {}
    refuse_a_class(estimator)
    if is_prefitted(estimator):
        estimator = _with_numpy_arrays(estimator)
        if fit_params:
            raise ValueError(f"{sorted(fit_params)} would fit `estimator`, but it is fitted: "
                             f"{owner} explains it as it is and never refits it (fit's keyword "
                             "arguments go to the model's fit; the explainer's own settings, "
                             "such as alibi's fit(no_info_type=...), are parameters of "
                             f"{owner}(...)).")
        if check is not None:
            check(estimator)
        _refuse_multi_output_classifier(estimator, owner)
        width = getattr(estimator, "n_features_in_", None)
        if isinstance(width, numbers.Integral) and np.ndim(X) == 2 and np.shape(X)[1] != width:
            raise ValueError(f"X has {np.shape(X)[1]} features, but the fitted `estimator` "
                             f"({type(estimator).__name__}) takes {width}: explain it on rows "
                             "of the data it was fitted on.")
        classes = getattr(estimator, "classes_", None)
        if y is not None and classes is not None:
            unknown = np.setdiff1d(np.unique(np.asarray(y)), np.asarray(classes))
            if unknown.size:
                raise ValueError(
                    f"y holds labels that the fitted `estimator` does not know: "
                    f"{unknown.tolist()[:10]}; its classes are {np.asarray(classes).tolist()}. "
                    "A fitted estimator is explained as it is; y is not used to refit it.")
        return estimator
    check_target_given(estimator, y, owner)
    if estimator is None:
        estimator = default()
        if getattr(estimator, "_estimator_type", None) == "classifier" or \
                hasattr(estimator, "predict_proba"):
            check_classification_target(y, owner)
    else:
        estimator = clone(estimator)
    if check is not None:
        check(estimator)
    estimator = estimator.fit(X, y, **fit_params)
    _refuse_multi_output_classifier(estimator, owner)
    return estimator


def final_step(estimator):
    """A Pipeline's last step, or ``estimator`` itself."""
    steps = getattr(estimator, "steps", None)
    return steps[-1][1] if steps else estimator


def refuse_models_without_answers_off_the_data(estimator):
    """One clear error for a classifier that raises on rows far from its training data: a
    ``RadiusNeighborsClassifier`` without ``outlier_label`` (no training row within its
    radius), which the searches reach."""
    from sklearn.neighbors import RadiusNeighborsClassifier

    last = final_step(estimator)
    if isinstance(last, RadiusNeighborsClassifier) and last.outlier_label is None:
        raise ValueError("`estimator` is a RadiusNeighborsClassifier without outlier_label: it "
                         "raises on rows with no training row within its radius, which a "
                         "search reaches. Set outlier_label (such as 'most_frequent', then "
                         "refit it), or use KNeighborsClassifier.")
    if isinstance(last, RadiusNeighborsClassifier) and hasattr(last, "outlier_label_") and \
            not (isinstance(last.outlier_label, str) and last.outlier_label == "most_frequent") \
            and not np.isin(np.ravel(last.outlier_label_), last.classes_).all():
        raise ValueError(f"`estimator` is a RadiusNeighborsClassifier whose outlier_label "
                         f"{last.outlier_label!r} is not one of its classes "
                         f"{last.classes_.tolist()}: its predict_proba gives rows with no "
                         "training row within its radius, which a search reaches, no "
                         "probability at all. Set outlier_label to one of the classes (or "
                         "'most_frequent'), then refit it.")


def _refuse_multi_output_classifier(estimator, owner):
    """One clear error for a classifier of several outputs (multi-label or multi-output),
    whose probabilities are one array per output."""
    last = final_step(estimator)
    classes = getattr(estimator, "classes_", None)
    if classes is None and getattr(last, "classes_", None) is None:
        return
    # (an MLP's n_outputs_ counts the classes of one output too: its binarizer tells)
    binarized = getattr(getattr(last, "_label_binarizer", None), "y_type_", None)
    if isinstance(classes, list) or getattr(last, "outputs_2d_", False) or \
            binarized == "multilabel-indicator" or getattr(last, "multilabel_", False):
        raise ValueError(f"`estimator` ({type(estimator).__name__}) is a multi-output or "
                         f"multi-label classifier; {owner} explains classifiers of one output "
                         "(one class per row). Explain each output with its own classifier.")


def from_polars(data):
    """A polars DataFrame or Series as pandas, anything else as it is.

    The explainers read tables through pandas and give their answers as pandas; a model
    fitted on polars takes the same columns as pandas. Without pyarrow, which polars's
    ``to_pandas`` needs, each column goes through numpy (text and categories as objects,
    nulls as NaN or None).
    """
    if type(data).__module__.split(".")[0] != "polars" or not hasattr(data, "to_pandas"):
        return data
    try:
        frame = data.to_pandas()
    except ImportError:
        import pandas as pd

        if hasattr(data, "columns"):
            return pd.DataFrame({name: data[name].to_numpy() for name in data.columns})
        return pd.Series(data.to_numpy(), name=data.name)
    return _nullable_whole_columns(data, frame)


def _nullable_whole_columns(data, frame):
    """``frame`` (polars's ``data`` as pandas) with the integer and boolean columns that hold
    nulls in pandas's nullable dtypes (Int64, boolean), not float64 and object: their
    answers stay whole numbers and booleans of their own dtype."""
    import pandas as pd

    series = {data.name: data} if not hasattr(data, "columns") else \
        {name: data[name] for name in data.columns}
    for name, column in series.items():
        # (polars's integer dtypes are named as pandas's nullable ones: Int64, UInt8...)
        kind = "boolean" if str(column.dtype) == "Boolean" else \
            str(column.dtype) if column.dtype.is_integer() else None
        if kind is None or column.null_count() == 0:
            continue
        values = pd.array(column.to_list(), dtype=kind)
        if hasattr(frame, "columns"):
            frame[name] = pd.Series(values, index=frame.index)
        else:
            frame = pd.Series(values, index=frame.index, name=frame.name)
    return frame


def polars_enums(data):
    """The ``Enum`` columns of a polars DataFrame, {name: dtype}, which its pandas form
    holds as categories (empty for any other data)."""
    if type(data).__module__.split(".")[0] != "polars" or not hasattr(data, "schema"):
        return {}
    import polars as pl

    return {name: dtype for name, dtype in data.schema.items() if isinstance(dtype, pl.Enum)}


def to_polars(frame, enums=None):
    """A pandas DataFrame as polars, each column of its own dtype (through numpy where
    pyarrow, which ``pl.from_pandas`` needs, is missing: text and categories as strings or
    objects, missing numbers as nulls); the columns of ``enums`` ({name: polars dtype}, of
    :func:`polars_enums`) as those ``Enum`` dtypes again."""
    out = _as_polars(frame)
    enums = {name: dtype for name, dtype in (enums or {}).items() if name in out.columns}
    return out.cast(enums) if enums else out


def _as_polars(frame):
    import polars as pl

    try:
        return pl.from_pandas(frame)
    except ImportError:
        columns = {}
        for name in frame.columns:
            column = frame[name]
            if isinstance(column.dtype, np.dtype) and column.dtype.kind in "biufmM":
                columns[str(name)] = pl.Series(str(name), column.to_numpy(), nan_to_null=True)
            else:
                columns[str(name)] = pl.Series(str(name), column.astype(object).tolist())
        return pl.DataFrame(columns)


def as_named_in(X, names):
    """A fitted model's feature ``names`` as ``X``'s columns name them, where the model's
    library renamed them (LightGBM writes a space as an underscore: ``mean_radius`` for
    ``mean radius``); ``names`` as they are otherwise."""
    columns = getattr(X, "columns", None)
    if names is None or columns is None:
        return names
    given = [str(c) for c in columns]
    if set(map(str, names)) <= set(given):
        return names
    renamed = {re.sub(r"\s", "_", c): c for c in given}
    if len(renamed) == len(given) and all(str(n) in renamed for n in names):
        return np.array([renamed[str(n)] for n in names], dtype=object)
    return names


def fitted_feature_names(estimator):
    """A fitted model's input feature names: scikit-learn's ``feature_names_in_``, or
    CatBoost's ``feature_names_`` where it was fitted on named columns (not the positions
    "0", "1", ... it names an array's); None for none."""
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None or not type(estimator).__module__.startswith("catboost"):
        return names
    names = list(getattr(estimator, "feature_names_", None) or [])
    if not names or [str(name) for name in names] == [str(j) for j in range(len(names))]:
        return None
    return np.asarray(names, dtype=object)


def fitted_columns(estimator):
    """The columns an explainer was fitted on, to match those of later calls by label: its
    ``feature_names_in_``, else the labels of a DataFrame whose labels are not all strings
    (integers, tuples), for which scikit-learn keeps none."""
    names = getattr(estimator, "feature_names_in_", None)
    return names if names is not None else getattr(estimator, "_fit_columns", None)


def is_documents(X):
    """Whether ``X`` is a 1-D sequence of text: documents, as a text Pipeline's vectorizer
    takes them (its first value that is not missing is text, and not a number)."""
    if hasattr(X, "columns") or getattr(X, "ndim", 1) != 1 or isinstance(X, (str, bytes)) \
            or isinstance(X, dict):
        return False
    try:
        first = next((value for value in X if not is_missing(value)), None)
    except TypeError:
        return False
    return isinstance(first, (str, bytes)) and not _is_number(first)



def check_not_documents(X):
    """Refuse a 1-D sequence of text (documents for a text Pipeline) in one line: X is a
    table, one row per instance; so is a dict (of a multi-input model's inputs)."""
    if isinstance(X, dict):
        raise ValueError(f"X is a dict (keys {list(X)[:5]}); skcem takes one 2-D table, one "
                         "row per instance: for a model of several inputs, put their columns "
                         "side by side in one array or DataFrame and explain a model (or a "
                         "function) that splits each row into its inputs.")
    dtypes = list(X.dtypes.items()) if hasattr(X, "iloc") and getattr(X, "ndim", 1) == 2 \
        else []
    sparse_columns = [name for name, dtype in dtypes if type(dtype).__name__ == "SparseDtype"]
    if sparse_columns:
        raise ValueError(f"X has {len(sparse_columns)} pandas sparse column"
                         f"{'s' if len(sparse_columns) > 1 else ''} (such as "
                         f"{sparse_columns[0]!r}); skcem takes dense values, as for a scipy "
                         "sparse matrix: give X.sparse.to_dense() (a column's own "
                         ".sparse.to_dense() where only some are sparse), to fit too.")
    complex_columns = [name for name, dtype in dtypes if dtype.kind == "c"]
    if complex_columns or getattr(getattr(X, "dtype", None), "kind", "") == "c":
        where = f"column {complex_columns[0]!r} holds" if complex_columns else "holds"
        # (numpy would drop the imaginary parts with a warning only)
        raise ValueError(f"Complex data not supported: X {where} complex numbers (skcem "
                         "moves real numbers); give their real and imaginary parts (or modulus "
                         "and angle) as two columns.")
    if hasattr(X, "columns") or getattr(X, "ndim", 1) != 1 or isinstance(X, (str, bytes)):
        return
    try:
        first = next(iter(X), None)
    except TypeError:
        return
    if isinstance(first, dict):
        raise ValueError("X is a sequence of dicts (one record per row, as DiCE's query "
                         "instances): make it a DataFrame first, `pd.DataFrame(X)`, with the "
                         "columns seen in fit.")
    if is_documents(X):
        raise ValueError(
            "X is 1-D text (documents, as a text Pipeline's vectorizer takes them); X must be "
            "a table, one row per instance. Put the documents in a DataFrame column and the "
            "vectorizer in a ColumnTransformer on that column: each document then counts as a "
            "category, and answers swap whole documents for others of the data given to fit "
            "(skcem does not edit text word by word).")


def check_numeric(X, owner):
    """Name the first column of ``X`` that does not hold numbers (before ``validate_data``)."""
    columns = getattr(X, "columns", None)
    if columns is not None:
        for name in columns:
            column = X[name]
            if column.dtype.kind not in "biuf":
                value = next((v for v in column if not _is_number(v)), None)
                if value is not None:
                    raise ValueError(f"X column {name!r} holds non-numeric values such as "
                                     f"{value!r}; {owner} explains numeric features only "
                                     "(encode it as numbers first).") from None
        return
    array = np.asarray(X)
    if array.dtype.kind in "OUS" and array.ndim == 2:
        for j in range(array.shape[1]):
            bad = [v for v in array[:, j] if not _is_number(v)]
            if bad:
                raise ValueError(f"X column {j} holds non-numeric values such as {bad[0]!r}; "
                                 f"{owner} explains numeric features only.")


def _is_number(value):
    """False only for text that is not a number; other objects are left to ``validate_data``."""
    if not isinstance(value, (str, bytes)):
        return True
    try:
        float(value)
    except ValueError:
        return False
    return True


def align_columns(X, expected, name="X", reordered_warning=None):
    """``X`` with its columns in the order of ``expected`` when it is a DataFrame.

    Columns are matched by name, so that a model never sees permuted features; a clear error
    names missing and unexpected columns. ``reordered_warning``, when given, is the end of
    a warning issued when the columns had to be reordered (for outputs that follow
    ``expected``'s order rather than ``X``'s).
    """
    check_unique_columns(X)
    columns = getattr(X, "columns", None)
    if columns is None or expected is None:
        return X
    given = [str(c) for c in columns]
    expected = [str(c) for c in expected]
    if given == expected:
        return X
    missing = [c for c in expected if c not in given]
    extra = [c for c in given if c not in expected]
    if missing or extra:
        raise ValueError(f"{name}'s columns do not match the model's features: missing "
                         f"{missing}, unexpected {extra}.")
    if reordered_warning is not None:
        from ._warnings import warn

        warn(f"{name}'s columns are those of {reordered_warning}")
    return X[list(expected)] if all(isinstance(c, str) for c in columns) else \
        X[[columns[given.index(c)] for c in expected]]


def align_rows(labels, index, name):
    """Per-row ``labels`` in the order of the rows of a DataFrame ``X`` (its ``index``).

    A Series (or a DataFrame of several outputs) is matched to the rows by its index, as
    pandas users expect: one labelled by
    all of ``X``'s rows (in any order, or a superset of them) gives each row its own label; a
    Series with the default index gives them by position, as scikit-learn takes ``y``; any
    other index is refused rather than read by position.
    """
    labels_index = getattr(labels, "index", None)
    # (a DataFrame of targets, one column per output, too)
    if index is None or labels_index is None or not hasattr(labels, "reindex") or \
            np.ndim(labels) not in (1, 2) or labels_index.equals(index):
        return labels
    if labels_index.is_unique and index.isin(labels_index).all():
        return labels.loc[index]
    if np.array_equal(np.asarray(labels_index), np.arange(len(labels))):
        return labels.to_numpy()
    missing = list(index[~index.isin(labels_index)][:3])
    problem = f"lacks rows of X ({missing}, ...)" if missing else "repeats labels"
    kind = "Series" if np.ndim(labels) == 1 else "DataFrame"
    raise ValueError(f"`{name}` is a {kind} whose index {problem}: label it by X's index, or "
                     f"pass its values in X's row order (`{name}.to_numpy()`).")


def accepts_missing_values(estimator):
    """Whether ``estimator`` takes missing values (NaN), the scikit-learn way.

    Its ``allow_nan`` input tag decides; a Pipeline's first step decides for the Pipeline (what
    it does with NaN is what the later steps see), a ColumnTransformer takes them when each
    of its transformers does and does not when none does (else a trial of each column tells),
    and a ``FunctionTransformer`` (the user's function) is left to a trial.

    Parameters
    ----------
    estimator : object, callable or None
        None (the default classifier) and Keras and PyTorch models do not take them.

    Returns
    -------
    accepts : bool or None
        None for an object without scikit-learn tags (a plain ``predict_proba`` function):
        only a trial can tell.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    if estimator is None or is_deep_model(estimator):
        return False
    from sklearn.model_selection import FixedThresholdClassifier, TunedThresholdClassifierCV

    from ._wrappers import probability_inner

    inner = probability_inner(estimator)
    if inner is not estimator:  # a wrapper's tags say allow_nan=False: its model decides
        return accepts_missing_values(inner)
    if isinstance(estimator, (FixedThresholdClassifier, TunedThresholdClassifierCV)):
        return accepts_missing_values(estimator.estimator)  # not fitted yet
    if isinstance(estimator, Pipeline):
        steps = [step for _, step in estimator.steps if step not in (None, "passthrough")]
        return accepts_missing_values(steps[0]) if steps else None
    if isinstance(estimator, ColumnTransformer):
        parts = [step for _, step, _ in estimator.transformers] + [estimator.remainder]
        parts = [step for step in parts if not (isinstance(step, str) and step == "drop")]
        answers = [None if isinstance(step, str) else accepts_missing_values(step)
                   for step in parts]  # "passthrough": the next step decides
        # transformers that take missing values beside ones that do not: a trial of each
        # column tells (the missing cells may all go to the ones that take them)
        if all(answer is False for answer in answers):
            return False
        return True if all(answers) else None
    if not hasattr(estimator, "__sklearn_tags__") or isinstance(estimator, FunctionTransformer):
        return None  # a function of the user's: only a trial can tell
    try:
        return bool(get_tags(estimator).input_tags.allow_nan)
    except (AttributeError, TypeError, ValueError):
        return None


def missing_values_refused(owner, estimator, columns):
    """The error for missing values given with a model that does not take them.

    Parameters
    ----------
    owner : str
        The explainer's name.
    estimator : object, callable or None
        The model (None: the default classifier).
    columns : list
        The columns that hold missing values.
    """
    where = f" (in {', '.join(map(repr, columns[:10]))})" if columns else ""
    name = "the default LogisticRegression" if estimator is None else type(estimator).__name__
    why = ("its scikit-learn tags say allow_nan=False; a Pipeline's first step decides"
           if accepts_missing_values(estimator) is False else
           "it failed, or gave no finite probabilities, on a row missing a value there")
    error = ValueError(
        f"Input X contains NaN{where}: {owner} explains rows with missing values only for a "
        f"model that takes them, and `estimator` ({name}) does not ({why}). Impute them "
        "first, or use a model that takes them, such as a Pipeline whose first step is "
        "sklearn.impute.SimpleImputer" + (
            "." if owner == "GradientSimilarityExplainer"  # (no gradients of trees)
            else ", or a HistGradientBoostingClassifier."))
    error.missing_columns = list(columns)  # all of them, for the command line's hint
    return error


def column_names(mask, feature_names=None):
    """The names of the columns in ``mask``, or their indices without names."""
    columns = np.flatnonzero(mask)
    if feature_names is None:
        return columns.tolist()
    return [str(feature_names[j]) for j in columns]


def kind_other_than_classifier(estimator):
    """What scikit-learn's tags say an estimator is when not a classifier ("a regressor", "an
    outlier detector", ...), else None (classifiers, and objects without its tags: a
    duck-typed classifier)."""
    try:
        kind = get_tags(estimator).estimator_type
    except (AttributeError, TypeError):
        return None
    if kind in (None, "classifier"):
        return None
    kind = kind.replace("_", " ")
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"


def probabilities_hint(estimator):
    """How to give a classifier without ``predict_proba`` probabilities: one sentence (of a
    Pipeline's last step, which answers for it)."""
    prefix = ""  # of the last step's parameters, as the Pipeline's set_params takes them
    while isinstance(getattr(estimator, "steps", None), list) and estimator.steps and \
            estimator.steps[-1][1] not in (None, "passthrough"):
        prefix += f"{estimator.steps[-1][0]}__"
        estimator = estimator.steps[-1][1]
    name = type(estimator).__name__
    params = estimator.get_params(deep=False) if hasattr(estimator, "get_params") else {}
    if params.get("voting") == "hard":
        return (f"{name}(voting='soft') gives them (the mean of its estimators' "
                "predict_proba; refit it).")
    from ._decision_scores import scores_pairs

    if scores_pairs(estimator):
        return ("Its decision_function scores each pair of classes "
                "(decision_function_shape='ovo'): with decision_function_shape='ovr', the "
                "default, it scores each class, with the same predict "
                f"(set_params({prefix}decision_function_shape='ovr') on the fitted model; no "
                "refit).")
    if not (callable(getattr(estimator, "decision_function", None))
            or callable(getattr(estimator, "predict_proba", None))):
        # nothing to calibrate: CalibratedClassifierCV refuses it
        return (f"{name} answers with classes only (no decision_function to calibrate "
                "either): explain a classifier with predict_proba instead "
                "(LogisticRegression, say).")
    # what scikit-learn 1.9 recommends in place of SVC(probability=True), too
    return (f"CalibratedClassifierCV({name}(...), ensemble=False) fitted on your data gives "
            "them, or CalibratedClassifierCV(FrozenEstimator(model)) fitted on held-out rows "
            "for a fitted model (sklearn.calibration, sklearn.frozen).")


def check_unique_columns(X):
    """A DataFrame whose columns share a name gets one clear error."""
    columns = getattr(X, "columns", None)
    if columns is not None and not columns.is_unique:
        repeated = sorted({str(c) for c in columns[columns.duplicated()]})
        raise ValueError(f"X has columns of the same name {repeated[:10]}: each column needs "
                         "its own name, by which the explainers match it to the model's.")


def _where_infinite(X):
    """`` (in 'a', 'b')``: the columns of ``X`` that hold an infinite value, or ""."""
    try:
        values = np.asarray(X, dtype=float)
    except (TypeError, ValueError):
        return ""
    if values.ndim != 2:
        return ""
    names = column_names(np.isinf(values).any(axis=0), getattr(X, "columns", None))
    return f" (in {', '.join(map(repr, names[:10]))})" if names else ""


def _n_rows(array):
    """The rows of an array-like, or None where it cannot tell (a sparse matrix: refused by
    the validation with its own message)."""
    try:
        return _num_samples(array)
    except TypeError:
        return None


def validate_complete_data(estimator, *args, allow_nan=False, **kwargs):
    """``validate_data``, whose errors on missing values and on arrays of more than two
    dimensions say what an explainer needs.

    ``allow_nan`` lets missing values (NaN) through (infinite values stay errors). Refused
    missing values get the error of the explainer's ``_missing_values_error(X)`` when it
    has one, else one saying that it needs complete rows.
    """
    if allow_nan:
        kwargs["ensure_all_finite"] = "allow-nan"
    # The explainers compute on the host in numpy: another array library's arrays (a torch
    # tensor, under scikit-learn's array_api_dispatch too) are read as numpy first.
    args = [to_numpy(a) if array_api_compat.is_array_api_obj(a) else a for a in args]
    n_targets = _n_rows(args[1]) if len(args) > 1 else None
    n_rows = _n_rows(args[0])
    if None not in (n_targets, n_rows) and n_targets != n_rows:
        raise ValueError(f"y has {n_targets} targets for the {n_rows} rows of X: one target "
                         "per row.")
    # The model gets a copy: one that edits its input in place must not edit the user's.
    kwargs.setdefault("copy", True)
    if kwargs.get("reset", True):
        columns = getattr(args[0], "columns", None)
        estimator._fit_columns = None if columns is None or \
            all(isinstance(c, str) for c in columns) else list(columns)
    try:
        validated = validate_data(estimator, *args, **kwargs)
    except ValueError as exc:
        message = str(exc)
        if message.startswith("Found array with dim") and "dim <= 2" in message:
            raise ValueError(f"{message} Give one instance per row, flattened: "
                             "X.reshape(len(X), -1) (a Keras model gets its input_shape back "
                             "inside; a PyTorch module's is given as input_shape=X.shape[1:])."
                             ) from None
        if message.startswith("Input X contains infinity"):
            raise _infinite_values_error(message, args[0]) from None
        if not message.startswith("Input X contains NaN"):
            raise
        if hasattr(estimator, "_missing_values_error"):
            raise estimator._missing_values_error(args[0]) from None
        reason = getattr(estimator, "_complete_rows_reason",
                         "the search moves every feature and asks the model about each")
        raise ValueError(f"Input X contains NaN: {type(estimator).__name__} needs complete rows "
                         f"for this model ({reason}); impute them first, e.g. with "
                         "sklearn.impute.SimpleImputer, or explain a Pipeline that begins with "
                         "one (it takes the rows as they are).") from None
    X = validated[0] if isinstance(validated, tuple) else validated
    # scikit-learn skips its check under config_context(assume_finite=True); the search
    # needs finite values whatever the configuration
    if np.issubdtype(X.dtype, np.floating) and np.isinf(X).any():
        raise _infinite_values_error("Input X contains infinity.", args[0])
    if np.issubdtype(X.dtype, np.floating) and X.size and \
            max(np.nanmax(X, initial=0), -np.nanmin(X, initial=0)) > _LARGEST:
        too_large = column_names((np.abs(np.nan_to_num(X)) > _LARGEST).any(axis=0),
                                 getattr(args[0], "columns", None))
        raise ValueError(f"Input X holds values above {_LARGEST:.0e} in absolute value (in "
                         f"{', '.join(map(repr, too_large[:10]))}), whose squares overflow "
                         "the distances; rescale those columns (their units), or clip them.")
    return validated


# Largest magnitude of a value the explainers take: the square of a difference of two such
# values stays finite in float64 (whose largest square root is 1.3e154).
_LARGEST = 1e153


def _infinite_values_error(message, X):
    return ValueError(f"{message.rstrip('.')}{_where_infinite(X)}: the explainers need finite "
                      "values (a range to search in, distances to measure); replace them, e.g. "
                      "with the column's largest finite value.")


def validate_float_data(estimator, X, y=None, *, reset, expected_columns=None, **kwargs):
    """``validate_data`` to float64 after matching DataFrame columns by name.

    ``expected_columns`` (the model's ``feature_names_in_``) orders the columns at ``fit``;
    later calls follow the explainer's own ``feature_names_in_``.
    """
    expected = expected_columns if reset else fitted_columns(estimator)
    X = align_columns(X, expected, reordered_warning=(
        "the fitted `estimator` in another order: they are matched by name, and the explainer "
        "(`feature_names_in_`) follows the estimator's order." if reset else
        "`fit` in another order: they are matched by name, and the results follow "
        "`feature_names_in_`."))
    check_numeric(X, type(estimator).__name__)
    if y is None:
        return validate_complete_data(estimator, X, dtype=np.float64, reset=reset, **kwargs)
    return validate_complete_data(estimator, X, y, dtype=np.float64, reset=reset, **kwargs)


def check_probabilities(proba, n_rows, name="estimator", estimator=None, n_classes=None):
    """Raise unless ``proba`` holds one probability row per input row (of ``n_classes``
    columns, where given); the error names ``name.predict_proba``, or ``name`` itself for a
    plain function ``estimator``. Rows sum to 1 within 1e-3, 1e-2 for a deep-learning
    ``estimator`` in half precision."""
    what = name if estimator is not None and not hasattr(estimator, "predict_proba") \
        else f"{name}.predict_proba"
    proba = probability_array(proba, what)
    if proba.ndim != 2 or proba.shape[0] != n_rows or proba.shape[1] < 2:
        one = proba.shape in ((n_rows,), (n_rows, 1))
        hint = (": one value per row, a class label or one class's probability? return "
                "every class's probability, such as np.c_[1 - p, p] for two") if one else ""
        raise ValueError(
            f"`{what}` must return an array of shape (n_samples, n_classes) with "
            f"n_classes >= 2; got shape {proba.shape} for {n_rows} rows{hint}."
        )
    if not np.all(np.isfinite(proba)):
        bad = np.flatnonzero(~np.isfinite(proba).all(axis=1))
        raise ValueError(f"`{what}` must return finite probabilities in [0, 1]; got NaN or "
                         f"infinite values (rows {bad[:5].tolist()} of those asked).")
    if n_classes is not None and proba.shape[1] != n_classes:
        raise ValueError(f"`{what}` returns {proba.shape[1]} columns, but the model has "
                         f"{n_classes} classes_: one probability column per class.")
    if proba.min() < -1e-6 or proba.max() > 1 + 1e-6:
        raise ValueError(f"`{what}` must return probabilities in [0, 1]; got "
                         f"values in [{np.nanmin(proba):.4g}, {np.nanmax(proba):.4g}].")
    row_sums = proba.sum(axis=1)
    if not np.allclose(row_sums, 1.0, atol=1e-3) and not (
            estimator is not None and is_deep_model(estimator)
            and computes_in_half_precision(estimator)
            and np.allclose(row_sums, 1.0, atol=1e-2)):
        worst = row_sums[np.argmax(np.abs(row_sums - 1))]
        raise ValueError(f"`{what}` must return rows that sum to 1; a row sums "
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
    check_magnitude(array, name)
    return array


def check_magnitude(values, name):
    """Refuse values of the parameter ``name`` above ``_LARGEST`` in absolute value (as X's
    are refused): the distances square them."""
    values = np.asarray(values, dtype=float)
    if np.any(np.abs(values) > _LARGEST):
        largest = values.flat[int(np.nanargmax(np.abs(values)))]
        raise ValueError(f"`{name}` holds {largest:g}, above {_LARGEST:.0e} in absolute value, "
                         "whose square overflows the distances; rescale the features.")


def check_feature_range(feature_range, X):
    """Per-feature (lower, upper) bounds: from the data when None, else the given pair."""
    n_features = X.shape[1]
    if feature_range is None:  # missing values left out
        return np.nanmin(X, axis=0), np.nanmax(X, axis=0)
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


def label_position(key, feature_names, n_features, name):
    """The position of the column ``key``: a label (a string, or a tuple of a MultiIndex, as
    written), or an index; else an error naming the parameter ``name``."""
    labels = [] if feature_names is None else list(feature_names)
    if isinstance(key, tuple):
        matches = [j for j, label in enumerate(labels) if label == key]
        if not matches:
            raise ValueError(f"`{name}` names an unknown column {key!r}; columns are "
                             f"{labels if labels else 'unnamed (X had no column labels)'}.")
        return matches[0]
    if isinstance(key, str):
        known = [str(label) for label in labels]
        if key not in known:
            raise ValueError(f"`{name}` names an unknown column {key!r}; columns are "
                             f"{known if known else 'unnamed (X had no feature names)'}.")
        return known.index(key)
    if isinstance(key, (int, np.integer)) and -n_features <= key < n_features:
        return int(key) % n_features
    raise ValueError(f"`{name}` keys must be column names or indices below {n_features}; "
                     f"got {key!r}.{_integer_labels_hint(labels)}")


def _integer_labels_hint(labels):
    """For columns labelled by integers: that integers in parameters are their positions."""
    if labels is None or len(labels) == 0 or not all(
            isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in labels):
        return ""
    return (f" Integers are positions, as in scikit-learn's ColumnTransformer, also where "
            f"X's columns are labelled by integers ({list(labels)[:10]}): give the position "
            f"(column {labels[0]!r} is 0), or label the columns by strings.")


def feature_mask(features, n_features, feature_names, name):
    """A boolean mask from indices, a boolean mask or feature names (None: no feature)."""
    mask = np.zeros(n_features, dtype=bool)
    if features is None or len(features) == 0:
        return mask
    if not hasattr(features, "dtype") and any(isinstance(f, tuple) for f in features):
        # labels of MultiIndex columns: numpy would make a 2-D array of them
        mask[[label_position(f, feature_names, n_features, name) for f in features]] = True
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
                             f"{n_features} features: {bad.tolist()}."
                             f"{_integer_labels_hint(feature_names)}")
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
