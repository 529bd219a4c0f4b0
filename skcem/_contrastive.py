"""What CEMExplainer and CounterfactualExplainer share: fit, batching, the result, the score.

Both minimise, per instance and in batches, a loss on the model's probabilities plus a distance
to the original with the optimizer of :mod:`skcem._fista`; they differ in the loss, the
allowed directions and the search on ``c``, which subclasses supply through
:meth:`_problem_settings`, :meth:`_solver_settings` and :meth:`_targets`.
"""

import logging
import time
import warnings
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from copy import copy, deepcopy
from dataclasses import replace
from functools import partial
from numbers import Integral, Number, Real

import numpy as np
from joblib import Parallel, delayed, effective_n_jobs
from scipy.special import expit
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin, _fit_context
from sklearn.utils._param_validation import (HasMethods, Interval, InvalidParameterError,
                                            StrOptions)
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_info, threadpool_limits

from . import metrics
from ._base import ExplainerMixin
from ._decimals import column_decimals, round_to_decimals
from ._decision_scores import DecisionScores, scored_by_decision, with_probabilities
from ._exact_search import ExactSearch, check_exact_problem
from ._explanation import Explanation, ranked_index
from ._fista import (CodedBackend, DecisionBackend, ScaledBackend, SearchProblem, solve,
                     widened_background)
from ._gradients import detect_output_kind, embeds_inputs, is_deep_model, make_backend
from ._labels import check_class_labels, check_outputs_follow_labels, class_indices
from ._leaf_starts import single_tree_leaves
from ._linear_proofs import (admissible_box, affine_decision, closest_of_class,
                             largest_score, past_the_mirror, predicts_largest_score,
                             reaches_class)
from ._modes import MODES
from ._gradients._base import ignoring_feature_name_warnings
from ._neighbors import CandidatePool, NeighborSearch, _Batch, is_piecewise_constant
from ._plausibility import CategoryPairs, ClassNeighborhood
from ._progress import logger, progress_bar
from ._polish import data_points, numeric_split_points, points_of, readable_trees
from ._refine import (add_alternatives, add_answers_elsewhere, complete_and_polish,
                      keep_cheaper, subset_problem, take_answers, unanswered)
from ._tree_models import pipeline_numeric_splits, read_tree_ensemble
from ._tabular import (TableCodec, breaks_one_hot, check_directions, dropped_level_groups,
                       is_table, model_categories, native_categorical, one_hot_groups,
                       permitted_categories,
                       table_classifier, table_feature_range, whole_floats)
from ._validation import (accepts_missing_values, align_columns, align_rows, as_named_in,
                          check_not_documents, check_pair, check_probabilities,
                          check_target_given, column_names, default_classifier, feature_mask,
                          final_step, fitted_columns, fitted_feature_names, from_polars,
                          is_prefitted, kind_other_than_classifier, label_position,
                          missing_values_refused, per_feature, polars_enums, probabilities_hint,
                          refuse_models_without_answers_off_the_data, resolve_estimator,
                          to_polars, validate_complete_data, validate_float_data)
from ._warnings import SkcemWarning, catching_warnings, filters_held, silencing, warn
from ._wrappers import decision_threshold, frozen_inner, probability_inner
from .costs import median_absolute_deviation


class ExplanationNotFoundWarning(SkcemWarning):
    """Some instances got no explanation: their rows are NaN and ``found`` is False.

    The message says how many, and what may help (or that nothing will, when the model's
    gradient vanished).

    Examples
    --------
    >>> import warnings
    >>> from skcem import ExplanationNotFoundWarning
    >>> warnings.simplefilter("ignore", ExplanationNotFoundWarning)  # rely on ``found``
    """


class TargetWarning(SkcemWarning):
    """Some instances are explained against a class that makes their explanation trivial.

    A PN asked against a class the model does not predict, or a counterfactual whose target
    is the instance's own class: the instance itself would be the answer, so none is given.
    Also PPs that keep nothing, because the model gives the no-information background itself
    the instance's class (they are returned: valid, but empty).

    Examples
    --------
    >>> import warnings
    >>> from skcem import TargetWarning
    >>> warnings.simplefilter("error", TargetWarning)  # make such requests errors
    >>> warnings.resetwarnings()
    """


_SHARED_CONSTRAINTS = {
    "estimator": [HasMethods(["predict_proba"]), HasMethods(["decision_function", "predict"]),
                  callable, None],
    "gradient": [StrOptions({"auto", "exact", "numerical"})],
    "search": [StrOptions({"auto", "fista", "neighbors", "exact"})],
    "feature_weights": [dict, "array-like", Interval(Real, 0, None, closed="neither"), None],
    "max_time": [Interval(Real, 0, None, closed="neither")],
    "plausibility": [Interval(Real, 0, None, closed="left")],
    "categorical_features": [StrOptions({"auto"}), "array-like", None],
    "directions": [dict, None],
    "feature_range": [tuple, list, dict, None],
    "input_shape": [tuple, list, None],
    "device": "no_validation",  # a name or a torch.device, checked by the PyTorch backend
    "immutable_features": ["array-like", None],
    "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
    "max_iterations": [Interval(Integral, 1, None, closed="left")],
    "eps": [tuple, list],
    "clip": [tuple, list],
    "update_num_grad": [Interval(Integral, 1, None, closed="left")],
    "tol": [Interval(Real, 0, None, closed="neither"), None],
    "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
    "probe_iterations": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"}), None],
    "batch_size": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
    "n_jobs": [Interval(Integral, None, -1, closed="right"),
               Interval(Integral, 1, None, closed="left"), None],  # as joblib: 0 means nothing
    "verbose": ["verbose"],
}

_FLAT_GRADIENT_HINT = (
    "For {n} of them the model's gradient was exactly zero at every step: its probabilities "
    "are piecewise constant there (trees, boosting, k-NN), so gradient steps cannot move and "
    "a larger c_init, c_steps or clip cannot help. A larger finite-difference step (`eps`) "
    "may, or a model with smooth probabilities.")

_AUTODIFF_FLAT_HINT = (
    "For {n} of them the model's gradient was exactly zero at every step (its output saturated "
    "there, units that never fire, such as ReLUs, or a layer with no gradient, such as "
    "Discretization or a rounding of its input): gradient steps cannot move, and a larger "
    "c_init, c_steps or clip cannot help.")

_DISAGREEING_FLAT_HINT = (
    "For {n} of them the search's loss had no gradient at any step: the model's probabilities "
    "may be piecewise constant there, or, since its predict is not the argmax of its "
    "predict_proba (seen in fit), the probabilities already looked like an answer while "
    "predict did not agree.")


# Spreads of numeric features, largest over smallest, from which a distance in the features'
# own units is named in a warning (raw breast cancer: 5e4, wine 1.4e3, Adult 2.8e3; digits and
# standardised tables below 1e2).
_SCALE_RATIO = 1e3
_SCALE_SAMPLE_ROWS = 20000

# The gradient-free search starts from at most this many rows of the data given to ``fit``.
_MAX_POOL_ROWS = 20_000
# The plausibility term finds an answer's neighbours among at most this many of those rows:
# the pool alone would leave out a third of a 30,000-row table, whose rows yNN counts.
_MAX_NEIGHBORHOOD_ROWS = 50_000
# ``search="auto"`` takes the gradient-free search when at least this share of the probed rows
# has a numerical gradient that is exactly zero (piecewise constant probabilities).
_FLAT_SHARE = 0.25
# A finite-difference step below this share of a feature's magnitude is lost in the rounding
# of a model that computes in float32.
_LOST_STEP = 1e-6
_N_PROBED = 16
# The exact search's time per row where it completes the gradient-free search's answers
# (search="auto" on tree models): a few seconds at most, whatever ``max_time``.
_EXACT_FALLBACK_SECONDS = 2.0


_NO_NEIGHBOR_HINT = (
    "The gradient-free search found no row of the data given to fit, in a wanted class, that "
    "stays valid once made admissible (immutable_features, directions, feature_range and, for "
    "a PN, moves away from no_info_val only): fit on more data, or relax the constraints. For "
    "a model with smooth probabilities and no categorical column to change, the gradient "
    "search (search='fista', with a larger c_init and a wider clip) reaches answers that no "
    "row of the data suggests.")

_NO_NEIGHBOR_PP_HINT = (
    "The gradient-free search starts a PP from the instance and removes features while the "
    "class holds with the margin kappa (where the instance itself falls short of kappa, the "
    "removals that add most margin first): none reached the margin. A smaller kappa may find "
    "them.")

_CONSTRAINTS = ("immutable_features, directions, feature_range and, for a PN, moves away "
                "from no_info_val only")

_CROSSING_PN_HINT = (
    " A PN may also lie across the no-information value on several features at once (each "
    "moved past its mirror on the other side), where neither search goes from the instance or "
    "a training row: such PNs may exist for these rows (for a linear model, search='auto' "
    "finds or rules them out by a linear program).")

_COMPLETED_NO_NEIGHBOR_HINT = (
    "Neither the gradient-free search nor the gradient search that search='auto' then runs on "
    "the rows it leaves unanswered (by finite differences, for this model: slow) found one. "
    f"Relax the constraints ({_CONSTRAINTS}) or fit on more data; the gradient search may "
    "reach answers with a larger c_init and a wider clip. search='neighbors' skips it.")

# Where the search's distance is in the features' own units.
_MAD_ADVICE = "distance='mad' (the search then steps in each feature's MAD units)"


# A categorical column with categories for this share of fit's rows (of at least this many)
# looks like an identifier.
_IDENTIFIER_SHARE = 0.9
# Parameters only the gradient search reads: FISTA's schedule and the search on c.
_GRADIENT_SEARCH_SCHEDULE = ("learning_rate_init", "c_init", "c_steps", "max_iterations", "clip",
                             "eps", "update_num_grad", "tol", "n_iter_no_change", "momentum",
                             "probe_iterations")
_IDENTIFIER_ROWS = 50


def _exact_hint(n_proven, n_refused, n_missing, max_time, n_holed=0):
    """Why the exact search left ``n_missing`` instances unanswered, by what it knows
    (``n_holed`` of them have missing cells, which its programs do not model)."""
    parts = []
    if n_holed:
        parts.append(_holed_hint(n_holed))
    if n_proven:
        parts.append(f"proved for {n_proven} of them that no admissible answer exists "
                     f"({_CONSTRAINTS})")
    if n_refused:
        parts.append(f"for {n_refused}, the estimator's predict refused every answer of its "
                     "programs (a value on a threshold that the model rounds the other way)")
    timed_out = n_missing - n_proven - n_refused - n_holed
    if timed_out > 0:
        parts.append(f"found none within max_time ({max_time:g} s a row) for {timed_out}: a "
                     "larger max_time may")
    return "The exact search " + "; ".join(parts) + "."


def _holed_hint(n_holed):
    return (f"did not search the {n_holed} with missing cells (held missing; the trees send "
            "them their own way, which its programs do not model): the gradient-free search "
            "alone looked for those")


def _are_column_indices(y, proba):
    """Whether the labels ``y`` are column indices of the probabilities (0, 1, ...)."""
    y = np.asarray(y)
    return y.dtype.kind in "iu" and y.min() >= 0 and y.max() < proba.shape[1]


def _numeric_categories(codec):
    """Whether every categorical column's categories are numbers (which a network takes)."""
    return all(all(isinstance(value, (Number, np.number)) and not isinstance(value, bool)
                   for value in values)
               for values, categorical in zip(codec.categories_, codec.categorical_)
               if categorical)


def _as_float32(Z):
    return np.asarray(Z, dtype=np.float32)


def _as_float32_in_float32_calls(Z):
    """``Z`` in float32 where the rows explained (or given to ``fit``) are an array of
    float32: the model asked as the user will ask it about the answers (a scaler computes
    in the dtype it is given), float64 rows in float64."""
    return _as_float32(Z) if _FLOAT32_CALL.get() else Z


def _answers(estimator, rows):
    """Whether ``estimator``'s probabilities (scores, else classes, of a model without
    them) come back on ``rows`` (no exception)."""
    answer = next((getattr(estimator, name) for name in
                   ("predict_proba", "decision_function", "predict")
                   if callable(getattr(estimator, name, None))), estimator)
    try:
        with catching_warnings():
            warnings.simplefilter("ignore")
            answer(rows)
        return True
    except Exception:  # each model raises its own kind
        return False


def _fails_on_float64_only(estimator, rows):
    """Whether ``estimator``'s probabilities fail on the float64 ``rows`` and not on them in
    float32 (a PyTorch network behind ``predict_proba``: "mat1 and mat2 must have the same
    dtype")."""
    return not _answers(estimator, rows) and _answers(estimator, _as_float32(rows))


def _framework_threads(backend, n_numbers):
    """A framework's threads for a search over ``n_numbers`` numbers (PyTorch: one for small
    batches), where the model or its auto-encoder says so; else nothing changes."""
    for part in (backend, getattr(backend, "autoencoder", None)):
        threads = getattr(part, "search_threads", None)
        if threads is not None:
            return threads(n_numbers)
    return nullcontext()


# The OpenMP threads of the caller of ``explain``, which runs its searches with one.
_CALLERS_OPENMP_THREADS = ContextVar("skcem_callers_openmp_threads", default=None)
# Whether the rows given to ``explain`` are an array of float32, answered so.
_FLOAT32_CALL = ContextVar("skcem_float32_call", default=False)


def _breaks_ties_by_threads(estimator):
    """Whether ``estimator`` (alone, or a Pipeline's last step) is a scikit-learn nearest
    neighbours model, whose ``predict`` breaks ties between equally distant training rows by
    the order its OpenMP threads find them."""
    from sklearn.neighbors import KNeighborsClassifier, RadiusNeighborsClassifier
    from sklearn.pipeline import Pipeline

    from ._decision_scores import DecisionScores

    estimator = frozen_inner(estimator.estimator if isinstance(estimator, DecisionScores)
                             else estimator)
    if isinstance(estimator, Pipeline):
        estimator = frozen_inner(estimator.steps[-1][1])
    return isinstance(estimator, (KNeighborsClassifier, RadiusNeighborsClassifier)) or \
        type(estimator).__module__.startswith("sklearn.neighbors")


def _openmp_threads():
    """The most threads an OpenMP library loaded now runs with, or None without any."""
    counts = [info["num_threads"] for info in threadpool_info()
              if info.get("user_api") == "openmp"]
    return max(counts) if counts else None


def _leave_out(result, out, ranks=None):
    """Leave out the answers of the rows ``out`` (a mask) of a :class:`SearchResult`: not
    found, NaN; of its ranked answers, those of ``ranks`` (shape (n, k)), else all of ``out``'s.
    """
    result.found = result.found & ~out
    result.explanation = np.where(out[:, None], np.nan, result.explanation)
    result.distance = np.where(out, np.nan, result.distance)
    if result.answers is not None:
        ranks = out[:, None] if ranks is None else ranks
        result.answers = np.where(ranks[:, :, None], np.nan, result.answers)
        result.answer_distance = np.where(ranks, np.nan, result.answer_distance)


def _solve_batch(explainer, x0, target, searchable, common, settings, progress=None,
                 float32_call=False):
    """One batch, in this process or a joblib worker: the result and its model rows, and
    where ``progress`` is "record" (a worker's: the caller's logger is not its own) the
    figures of each step, for the caller to log. ``float32_call``: the rows explained are
    an array of float32 (a worker's context is not the caller's)."""
    token = _FLOAT32_CALL.set(float32_call)
    try:
        return _solve_batch_as_called(explainer, x0, target, searchable, common, settings,
                                      progress)
    finally:
        _FLOAT32_CALL.reset(token)


def _solve_batch_as_called(explainer, x0, target, searchable, common, settings, progress):
    steps = None
    if progress == "record":
        steps = []

        def progress(step, c, found):
            steps.append((step, np.median(c), int(found.sum()), found.size))
    backend = explainer._get_backend()
    rows_before = backend.n_model_rows
    autoencoder = getattr(backend, "autoencoder", None)
    non_finite_before = (getattr(backend, "n_non_finite_rows", 0),
                         getattr(autoencoder, "n_non_finite_rows", 0))
    problem = SearchProblem(x0=x0, target=target, searchable=searchable, **common)
    with _framework_threads(backend, x0.size):
        result = explainer._search(backend, problem, settings, progress=progress)
    # rows the model, and the auto-encoder term, gave NaN or infinite values
    non_finite = (getattr(backend, "n_non_finite_rows", 0) - non_finite_before[0],
                  getattr(autoencoder, "n_non_finite_rows", 0) - non_finite_before[1])
    return result, (backend.n_model_rows - rows_before, non_finite), steps


def _log_step(verbose, search, step, median_c, n_found, n_rows):
    """A batch's step in the ``skcem`` logger: INFO at ``verbose=2``, else DEBUG."""
    level = logging.INFO if verbose >= 2 else logging.DEBUG
    if search == "fista":
        logger.log(level, "c-step %d: median c %.4g, %d of %d found", step + 1, median_c,
                   n_found, n_rows)
    else:  # one search, no c
        logger.log(level, "%s search: %d of %d found", "exact" if search == "exact" else
                   "gradient-free", n_found, n_rows)


@contextmanager
def _names_categorical_failures(codec, estimator=None, fit_params=()):
    """A model that fails on a table with categorical columns gets an error naming them (and
    a text vectorizer first in it, how to give it its documents); not a failure that names
    one of ``fit_params`` (a ``sample_weight`` its ``fit`` does not take)."""
    try:
        yield
    except (TypeError, ValueError, AttributeError) as exc:
        times = [] if codec is None else \
            [j for j, scale in enumerate(codec.times_) if scale is not None]
        if codec is None or not (codec.has_categorical or times) or \
                any(name in str(exc) for name in fit_params):
            raise
        named = [str(codec.columns_[j]) if codec.columns_ else str(j)
                 for j in np.flatnonzero(codec.categorical_)]
        timed = [str(codec.columns_[j]) if codec.columns_ else str(j) for j in times]
        quoted = [f"'{name}'" for name in map(str, codec.columns_ or ())] + \
            [f'"{name}"' for name in map(str, codec.columns_ or ())]
        blamed = {quote[1:-1] for quote in quoted if quote in str(exc)}
        if blamed and not blamed & set(named + timed):
            raise  # its own words name other columns (a served model's schema): as they are
        # the columns whose text the model's own words quote, where they tell
        named = _columns_holding_quoted_values(codec, str(exc)) or named
        if isinstance(estimator, DecisionScores):  # a model scored by its decision function
            estimator = estimator.estimator
        estimator = probability_inner(estimator)
        first = estimator.steps[0][1] if hasattr(estimator, "steps") else estimator
        if hasattr(first, "build_analyzer"):  # scikit-learn's text vectorizers
            # (not the model's own error: the vectorizer read the column names as documents)
            raise ValueError(
                f"X has text columns {named}, but `estimator` begins with a "
                f"{type(first).__name__}, which takes 1-D documents, not a table: put the "
                "vectorizer in a ColumnTransformer on the documents' column, or, without "
                "refitting, explain make_pipeline(FunctionTransformer(operator.itemgetter("
                f"{named[0]!r})), FrozenEstimator(estimator)), which hands it that column.") \
                from exc
        kinds = " and ".join(([f"categorical columns {named}"] if named else [])
                             + ([f"time columns {timed}"] if timed else []))
        raise ValueError(f"X has {kinds}, but `estimator` fails on them ({exc}): pass a model "
                         "that takes them, such as a Pipeline that "
                         + ("one-hot encodes the categories" if named else "")
                         + (" and " if named and timed else "")
                         + ("turns the times into numbers" if timed else "")
                         + ", or convert them to numbers first.") from exc


def _check_array_for_a_frames_model(estimator, X):
    """Refuse, naming the columns to give, an array for a fitted model that fails on arrays
    but takes the same rows as a DataFrame of the columns it was fitted on (a
    ColumnTransformer that picks columns by name)."""
    names = fitted_feature_names(estimator) if is_prefitted(estimator) else None
    if names is None or hasattr(X, "columns") or hasattr(X, "toarray") or np.ndim(X) != 2 or \
            np.shape(X)[1] != len(names) or len(X) == 0:
        return
    try:
        import pandas as pd
    except ImportError:
        return
    rows = np.asarray(X, dtype=object)[:5]
    if _answers(estimator, rows) or \
            not _answers(estimator, pd.DataFrame(rows, columns=names).infer_objects()):
        return
    raise ValueError(f"`estimator` was fitted on a DataFrame and fails on X given as an "
                     f"array, where it takes the same rows as a DataFrame: give X as a "
                     f"DataFrame with its columns {[str(name) for name in names][:20]}.")


def _columns_holding_quoted_values(codec, message):
    """The categorical columns of ``codec`` one of whose text categories ``message`` quotes
    (a model's "could not convert string to float: 'old'"): the columns it failed on."""
    named = []
    for j in np.flatnonzero(codec.categorical_):
        texts = [value for value in codec.categories_[j] if isinstance(value, str)]
        if any(f"'{value}'" in message or f'"{value}"' in message for value in texts):
            named.append(str(codec.columns_[j]) if codec.columns_ else str(j))
    return named


def _column_values(X, j):
    """Column ``j`` of a DataFrame or an array, as an object array."""
    return np.asarray(X.iloc[:, j] if hasattr(X, "iloc") else np.asarray(X)[:, j],
                      dtype=object)


def _rows_holding(X, values_by_column):
    """The mask of rows of ``X`` holding one of the values of ``values_by_column``
    (``{column position: values}``)."""
    held = np.zeros(len(X), dtype=bool)
    for j, values in values_by_column.items():
        held |= np.isin(_column_values(X, j), np.asarray(values, dtype=object))
    return held


def _held_values(X, values_by_column):
    """The values of ``values_by_column`` that ``X`` holds, by column."""
    held = {}
    for j, values in values_by_column.items():
        present = set(_column_values(X, j).tolist())
        found = [value for value in values if value in present]
        if found:
            held[j] = found
    return held


def _rounding_of(X):
    """The relative rounding of ``X``'s coarsest floating-point column (0 for float64, or
    for what is no float array or DataFrame)."""
    dtypes = list(X.dtypes) if hasattr(X, "columns") else [getattr(X, "dtype", None)]
    eps = [np.finfo(dtype).eps for dtype in (getattr(d, "numpy_dtype", d) for d in dtypes)
           if isinstance(dtype, np.dtype) and dtype.kind == "f" and dtype.itemsize < 8]
    return max(eps, default=0.0)


def _output_config(estimator):
    """The container ``set_output`` asks ``transform`` for ("default" or "pandas", ...)."""
    from sklearn.utils._set_output import _get_output_config

    return _get_output_config("transform", estimator)["dense"]


def _vectorized_columns(estimator, n_columns):
    """Positions of the columns of X that a text vectorizer (scikit-learn's, with
    ``build_analyzer``) takes, through the ColumnTransformers and FeatureUnions that begin
    ``estimator``."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import FeatureUnion

    def taken(step, positions):
        """Of ``positions`` (the columns of X that ``step`` takes), those it vectorizes."""
        if hasattr(step, "build_analyzer"):
            return list(positions)
        if hasattr(step, "steps"):  # a vectorizer anywhere in a Pipeline, else its first step's
            if any(hasattr(part, "build_analyzer") for _, part in step.steps):
                return list(positions)
            return taken(step.steps[0][1], positions) if step.steps else []
        if isinstance(step, FeatureUnion):  # every part takes the same columns
            return [j for _, part in step.transformer_list for j in taken(part, positions)]
        if isinstance(step, ColumnTransformer) and hasattr(step, "transformers_"):
            inputs = step._transformer_to_input_indices
            return [j for name, part, _ in step.transformers_
                    for j in taken(part, [positions[i] for i in inputs.get(name, [])])]
        return []

    from ._decision_scores import DecisionScores

    # inside the softmax of a decision function skcem puts around a model without
    # probabilities (a LinearSVC Pipeline), and inside frozen and threshold wrappers
    while True:
        inner = probability_inner(estimator.estimator if isinstance(estimator, DecisionScores)
                                  else estimator)
        if inner is estimator:
            break
        estimator = inner
    return sorted(set(taken(estimator, list(range(n_columns)))))


def _refuse_without_scores(estimator, owner):
    """One clear error for a classifier that scores no class: neither ``predict_proba`` nor
    a ``decision_function`` whose largest score its ``predict`` takes (hard voting, a
    threshold classifier on a decision function)."""
    if not callable(estimator) and hasattr(estimator, "predict") and \
            not hasattr(estimator, "predict_proba") and not scored_by_decision(estimator):
        raise InvalidParameterError(
            f"The 'estimator' parameter of {owner} needs a classifier with predict_proba or "
            "decision_function (or a callable of rows returning probabilities); "
            f"{type(estimator).__name__} has none it can use. {probabilities_hint(estimator)}")


class BaseContrastiveExplainer(ExplainerMixin, OneToOneFeatureMixin, TransformerMixin,
                               BaseEstimator):
    """Shared machinery; not for direct use."""

    # rebuilt from the model where needed: out of pickles (and so of what n_jobs's workers
    # are sent), a forest's trees as read weighing as much as the forest
    _transient_attributes = ("_backend", "_fallback_trees")
    _fit_parameters = ("estimator", "autoencoder", "categorical_features", "device", "directions",
                       "distance", "eps", "feature_range", "feature_weights", "gradient",
                       "immutable_features", "input_shape", "no_info_type", "no_info_val",
                       "plausibility", "search")
    _parameter_constraints: dict = _SHARED_CONSTRAINTS

    def _validate_params(self):
        autoencoder = getattr(self, "autoencoder", None)
        if autoencoder is not None and not callable(autoencoder) and \
                hasattr(autoencoder, "transform"):
            raise InvalidParameterError(
                f"The 'autoencoder' parameter of {type(self).__name__} must be a function of "
                f"rows returning their reconstructions (or a Keras model or PyTorch module); "
                f"got a {type(autoencoder).__name__}. For a fitted scikit-learn transformer "
                "with inverse_transform, such as PCA: autoencoder=lambda Z: "
                "ae.inverse_transform(ae.transform(Z)).")
        estimator = getattr(self, "estimator", None)
        kind = None if estimator is None or callable(estimator) else \
            kind_other_than_classifier(estimator)
        if kind is not None:
            raise InvalidParameterError(
                f"The 'estimator' parameter of {type(self).__name__} must be a classifier; "
                f"{type(estimator).__name__} is {kind}. skcem explains classifiers "
                "(a PN or counterfactual changes the predicted class).")
        if estimator is not None:
            _refuse_without_scores(estimator, type(self).__name__)
        super()._validate_params()

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None, **fit_params):
        """Resolve the classifier and learn what the explanations need from ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Representative data, typically the training set. DataFrame columns are matched
            by name to a fitted estimator's ``feature_names_in_`` (and put in its order).
            It may hold missing values (NaN, None) when the estimator takes them. Up to
            20,000 of its rows are kept where a search starts from them (the gradient-free
            search, ``search="auto"``'s repairs): a pickled explainer holds them.
        y : array-like of shape (n_samples,), default=None
            Labels; needed only when the classifier must be fitted here (``estimator`` is
            None or not fitted).
        **fit_params : dict
            Parameters of ``estimator.fit`` (``sample_weight``...) when it is fitted here;
            under scikit-learn's metadata routing, those it requests.

        Returns
        -------
        self : object
            The fitted explainer.
        """
        self._polars_enums = polars_enums(X)
        X, y = from_polars(X), from_polars(y)
        check_not_documents(X)
        if y is not None:
            check_class_labels(y, type(self).__name__, prefitted=is_prefitted(self.estimator))
        self._remember_fit_parameters()
        prefitted_names = as_named_in(X, fitted_feature_names(self.estimator)
                                      if is_prefitted(self.estimator) else None)
        if prefitted_names is None and hasattr(X, "columns") and \
                all(isinstance(c, str) for c in X.columns) and \
                hasattr(self.estimator, "n_features_in_"):  # names, as scikit-learn has them
            warn("X has feature names, but the fitted `estimator` was fitted without "
                 "them: its columns are taken in the order of X.")
        _check_array_for_a_frames_model(self.estimator, X)
        raw = align_columns(X, prefitted_names, reordered_warning=(
            "the fitted `estimator` in another order: they are matched by name, and the "
            "explainer (`feature_names_in_`) and its answers follow the estimator's order."))
        # Decided by the estimator's tags here, settled per column by trials once it is fitted.
        self._accepts_missing = accepts_missing_values(self.estimator) is not False
        # float32 rows in an array: the model is asked, and answers are given, in float32,
        # as the user will ask it (a scaler computes in the dtype it is given)
        self._float32_rows = getattr(raw, "dtype", None) == np.float32
        X, y = self._validate(raw, y, reset=True)
        self._check_params(X.shape[1])
        codec = self._codec

        fit_on = raw if codec is not None else X
        default = default_classifier if codec is None or not codec.has_categorical else \
            partial(table_classifier, codec)
        check_target_given(self.estimator, y, type(self).__name__)  # not the model's failure
        with _names_categorical_failures(codec, self.estimator, fit_params):
            fitted = resolve_estimator(
                self.estimator, fit_on, y, type(self).__name__, default=default,
                check=refuse_models_without_answers_off_the_data,
                fit_params=self._estimator_fit_params(fit_params))
        _refuse_without_scores(fitted, type(self).__name__)
        self.estimator_ = with_probabilities(fitted)
        deep = is_deep_model(self.estimator_)
        # The questions below are many and mostly small: OpenMP threads (histogram gradient
        # boosting) cost more to wake than the rows take, and on a busy machine a fit took 65 s
        # against 1 s on one thread. A network keeps its own threads.
        # fit's own questions (the candidate rows' classes, the trees' reading) asked as
        # its rows are: in float32 for an array of them
        token = _FLOAT32_CALL.set(self._float32_rows)
        try:
            with nullcontext() if deep else threadpool_limits(limits=1, user_api="openmp"):
                return self._fit_explaining(X, y, codec, deep)
        finally:
            _FLOAT32_CALL.reset(token)

    def _fit_explaining(self, X, y, codec, deep):
        """What the explanations need from the validated ``X``, the model resolved."""
        if deep and codec is not None and codec.has_categorical and \
                not _numeric_categories(codec):
            raise ValueError("Categorical columns whose categories are not numbers (text, "
                             "booleans) need a model that takes them (such as a scikit-learn "
                             "Pipeline); a Keras or PyTorch model takes numbers only. Give a "
                             "function of the raw rows instead, which encodes them and calls "
                             "the network (answers then change whole categories: see the user "
                             "guide), give the categories as numbers (the codes the network "
                             "takes), or set `categorical_features=None` for columns that are "
                             "numbers to the network (0/1 dummies).")
        self._decode = None
        if not deep and codec is not None and (codec.has_categorical or (
                codec.is_frame_ and (hasattr(self.estimator_, "feature_names_in_") or (
                    not hasattr(self.estimator_, "get_params")
                    and not codec.plain_columns().all())))):
            # the model is asked with rows in their own form: a plain function too, where
            # the table holds more than float64 numbers (times, integers, nullable numbers)
            self._decode = codec.decode
            complete = X[~np.isnan(X).any(axis=1)][:10]
            if not hasattr(self.estimator_, "get_params") and not codec.has_categorical and \
                    all(scale is None for scale in codec.times_) and len(complete) and \
                    not _answers(self.estimator_, codec.decode(complete.copy())) and \
                    _answers(self.estimator_, complete.copy()):
                # a function of numeric arrays (X[:, 0]) that a frame of integer or nullable
                # columns breaks: it is asked with float64 rows, as it takes them
                self._decode = None
        elif codec is None and not deep and _fails_on_float64_only(
                self.estimator_, X[:10].copy()):  # not fit's own rows
            # a network behind predict_proba (skorch's, a function) that takes float32 only,
            # whatever X's dtype
            self._decode = _as_float32
        elif codec is None and not deep and self._float32_rows:
            self._decode = _as_float32_in_float32_calls
        self._check_missing_values(X, reset=True)
        self._one_hot_groups = one_hot_groups(X)
        self._dropped_level_groups = dropped_level_groups(X, fitted_columns(self),
                                                          self._one_hot_groups)
        sample = X[:100]
        self._keras_output = None
        if deep:
            self._keras_output = detect_output_kind(
                self.estimator_, sample if codec is None else np.asarray(codec.decode(sample),
                                                                         dtype=float),
                self.input_shape, device=self.device)
        classes = getattr(self.estimator_, "classes_", None)
        self.classes_ = None if classes is None else np.asarray(classes)
        with _names_categorical_failures(codec, self.estimator_):
            self._predict_in_search, self._decision_offset = self._learn_decision_rule(X)
        self._backend = self._make_backend(X.shape[1])
        with _names_categorical_failures(codec, self.estimator_):
            proba = self._backend.predict_proba(sample)
            again = self._backend.predict_proba(sample)
        proba = check_probabilities(proba, sample.shape[0], estimator=self.estimator_,
                                    n_classes=None if self.classes_ is None
                                    else len(self.classes_))
        # (a class flipped by float noise between two tied classes is no change of mind)
        moved = np.max(np.abs(np.asarray(again) - proba), axis=1) > 1e-6
        flipped = (np.argmax(again, axis=1) != np.argmax(proba, axis=1)) & moved
        if flipped.any():
            raise ValueError(
                f"`estimator` puts {int(flipped.sum())} of {len(flipped)} rows of X in another "
                "class when asked about them again: no answer it gives can be relied on. "
                "Explain a deterministic model (a network in eval mode, its dropout off: "
                "F.dropout(x, p, training=self.training)).")
        if not np.allclose(again, proba, rtol=1e-6, atol=1e-9):
            warn("`estimator` gives other probabilities for the same rows when asked again "
                 f"(by up to {np.max(np.abs(np.asarray(again) - proba)):.3g}): the closest "
                 "answers lie on its decision boundary, where a model that is not deterministic "
                 "may put them in either class when asked again.")
        if self.classes_ is None and y is not None and not _are_column_indices(y, proba):
            # A plain function's columns are taken to follow the sorted labels, as
            # scikit-learn's classes_ do.
            try:
                self.classes_ = np.unique(y)
            except TypeError as exc:  # labels that do not sort: 0 and "one"
                kinds = sorted({type(label).__name__ for label in np.ravel(y)})
                raise ValueError(f"`y` mixes labels of kinds {kinds}, which cannot be "
                                 "sorted into the columns of the estimator's probabilities: "
                                 "give labels of one kind (all numbers or all text).") from exc
            if len(self.classes_) != proba.shape[1]:
                raise ValueError(f"`y` holds {len(self.classes_)} classes but the estimator's "
                                 f"probabilities have {proba.shape[1]} columns: the classes of "
                                 "a model without classes_ (a plain function, a Keras model, a "
                                 "PyTorch module) are the sorted labels of y, one per column.")
        elif self.classes_ is None:
            self.classes_ = np.arange(proba.shape[1])
        elif len(self.classes_) != proba.shape[1]:
            raise ValueError(f"`estimator` has {len(self.classes_)} classes_ but its "
                             f"predict_proba returns {proba.shape[1]} columns.")
        if classes is None and y is not None:
            check_outputs_follow_labels(
                proba.argmax(axis=1), class_indices(np.asarray(y)[:len(proba)], self.classes_,
                                                    "y"), self.classes_)
        names = fitted_columns(self)
        self._warn_integer_labels_are_positions(codec)
        self.categorical_mask_ = np.zeros(X.shape[1], bool) if codec is None \
            else codec.categorical_.copy()
        self.categories_ = [None] * X.shape[1] if codec is None else list(codec.categories_)
        self.feature_range_ = table_feature_range(self.feature_range, X, codec, names)
        self._permitted = permitted_categories(self.feature_range, codec, names)
        self._backend.input_bounds = self.feature_range_
        self._check_network_takes_bounds()
        # The data's own range: score's scale, whatever feature_range a grid search tries.
        self._data_range = self.feature_range_ if self.feature_range is None else \
            table_feature_range(None, X, codec, names)
        self.immutable_mask_ = feature_mask(self.immutable_features, X.shape[1], names,
                                            "immutable_features")
        self._warn_of_embedded_indices(X, codec)
        self._warn_of_swapped_texts(codec)
        self._warn_of_identifiers(codec, X)
        self.directions_ = check_directions(self.directions, X.shape[1], names, codec)
        both = np.flatnonzero(self.immutable_mask_ & (self.directions_ != 0))
        if both.size:
            named = [str(names[j]) if names is not None else int(j) for j in both]
            warn(f"Features {named} are in both immutable_features and directions: they never "
                 "change, and their directions are ignored.")
        self._warn_of_feature_scales(X)
        self._warn_of_indicator_floats(X, deep)
        self.decimals_ = self._fit_decimals(X)
        self.search_ = self._choose_search(X)
        self._warn_of_idle_settings()
        self._trees = None
        trees = None
        if self.search_ == "exact":
            if getattr(self, "mode", None) == "PP":  # said before the model's steps
                check_exact_problem(None, MODES["PP"], 0.0)
            trees = self._trees = read_tree_ensemble(self.estimator_, codec, X.shape[1])
        self._polish_cuts = None
        self._leaf_boxes = None
        if self.search_ in ("neighbors", "exact"):  # (the exact search's alternatives too)
            if trees is None:
                trees = readable_trees(self.estimator_, codec, X.shape[1])
            if trees is not None:
                self._polish_cuts = points_of(self._as_asked(trees), X.shape[1],
                                              self._whole_columns(), self.decimals_)
                self._leaf_boxes = single_tree_leaves(self.estimator_, codec, X.shape[1])
            elif (splits := pipeline_numeric_splits(probability_inner(self.estimator_),
                                                    X.shape[1])) is not None:
                # boosting that splits its own categorical columns: its numeric thresholds
                # (the data's values, thinned, left answers up to 25% farther in a trial)
                self._polish_cuts = numeric_split_points(splits, X.shape[1],
                                                         self._whole_columns(), self.decimals_)
            elif is_piecewise_constant(self.estimator_):
                # trees behind a step the reading does not follow, nearest neighbours: the
                # data's own values stand for the thresholds (bisections ended 16-33% farther
                # than the optimum on forests and boosting, at the median)
                self._polish_cuts = data_points(X, ~self.categorical_mask_)
        self._pool = None
        if self.search_ in ("neighbors", "exact") or self._refines() or \
                self._n_answers() > 1:
            rows = np.random.default_rng(0).permutation(len(X))[:_MAX_POOL_ROWS] \
                if len(X) > _MAX_POOL_ROWS else slice(None)
            pool = X[rows]
            proba = self._backend.predict_proba(pool)
            self._pool = CandidatePool(Z=pool, pred=self._backend.predict(pool),
                                       confidence=proba.max(axis=1))
            if getattr(self, "mode", "CF") != "PP" and \
                    np.all(self._pool.pred == self._pool.pred[0]):
                label = np.asarray(self.classes_[self._pool.pred[0]]).tolist()
                warn(f"The model predicts one class, {label!r}, "
                     "for every row of X given to fit: the gradient-free search starts from "
                     "fit rows of a wanted class, and the feature ranges come from these "
                     "rows. Fit on rows of several classes (typically the training data).")
        self._trees_misread = trees is not None and self._pool is not None and \
            self._check_trees_as_read(trees)
        # the exact search's, for the rows the gradient-free search leaves (search="auto")
        self._reads_fallback_trees = trees is not None and self.search == "auto" and \
            self.search_ == "neighbors" and not self._trees_misread
        self._fallback_trees = trees if self._reads_fallback_trees else None
        self._category_pairs = None
        if codec is not None and codec.categorical_.sum() >= 2:
            self._category_pairs = CategoryPairs().fit(
                np.asarray(X, dtype=float), codec.categorical_,
                [0 if c is None else len(c) for c in codec.categories_])
        self._fit_data(X)
        if self._trees is not None:  # what the exact search refuses, said at fit
            settings = self._problem_settings()
            check_exact_problem(self._trees, settings["mode"], settings["kappa"])
        self._class_neighborhood = self._fit_plausibility(X)
        return self

    def _fit_plausibility(self, X):
        """The plausibility term of the gradient-free steps (None at ``plausibility=0``),
        learnt on the rows ``X`` given to fit (up to ``_MAX_NEIGHBORHOOD_ROWS`` of them)."""
        if self.plausibility == 0:
            return None
        if not (self.search_ == "neighbors" or self._refines()):
            raise ValueError(
                f"`plausibility` > 0 needs the gradient-free steps, which search="
                f"{self.search!r} does not run here (search_={self.search_!r}; search="
                "'auto' runs them on tables, not on images, input_shape of 2 dimensions or "
                "more, nor with an auto-encoder term): use search='neighbors', or set "
                "plausibility=0.")
        settings = self._problem_settings()
        d = self.n_features_in_
        l1 = np.broadcast_to(settings["l1_weight"], (d,))
        l2 = np.broadcast_to(settings.get("l2_weight", 1.0), (d,))
        pool = self._pool
        rows, pred = pool.complete, pool.pred
        if len(X) > len(pool.Z):
            if len(X) > _MAX_NEIGHBORHOOD_ROWS:
                X = X[np.random.default_rng(0).permutation(len(X))[:_MAX_NEIGHBORHOOD_ROWS]]
            X = np.asarray(X, dtype=float)
            rows = np.where(np.isnan(X), pool.typical, X)
            pred = self._backend.predict(X)
        return ClassNeighborhood(float(self.plausibility)).fit(
            rows, pred, self.categorical_mask_, l1, l2)

    def _validate(self, X, y=None, *, reset):
        """The search's numbers for ``X`` (category codes for categorical columns), and y.

        At ``fit`` it learns the table's columns (:class:`~skcem._tabular.TableCodec`) when
        ``X`` is a DataFrame or has text or categorical columns; later calls follow them.
        """
        if reset:
            prefitted = self.estimator if is_prefitted(self.estimator) else None
            categorical = native_categorical(prefitted, X, self.categorical_features)
            self._codec = None
            if is_table(X, categorical):
                names = getattr(X, "columns", None)
                known = model_categories(prefitted, names, np.shape(X)[1])
                self._codec = TableCodec(categorical).fit(X, names, known_categories=known)
        else:
            self._check_fit_parameters()
            X = self._aligned(X)
        codec = getattr(self, "_codec", None)
        allow_nan = getattr(self, "_accepts_missing", False)
        if codec is None:
            if y is None:
                return validate_float_data(self, X, reset=reset, allow_nan=allow_nan), None
            return validate_float_data(self, X, y, reset=reset, allow_nan=allow_nan)
        if not reset:
            self._warn_of_unknown_categories(X, codec)
        Z = codec.encode(X)
        if codec.is_frame_:
            import pandas as pd

            Z = pd.DataFrame(Z, columns=X.columns, copy=False)
        if y is None:
            return validate_complete_data(self, Z, dtype=np.float64, reset=reset,
                                          allow_nan=allow_nan), None
        return validate_complete_data(self, Z, y, dtype=np.float64, reset=reset,
                                      allow_nan=allow_nan)

    def _aligned(self, X):
        """``X`` with the columns of ``fit`` in their order (matched by name, with a warning
        where they were in another), a DataFrame where ``fit`` was given one (see
        :meth:`~skcem._tabular.TableCodec.as_frame`); aligned once more, it is as it was."""
        X = align_columns(X, fitted_columns(self), reordered_warning=(
            "`fit` in another order: they are matched by name, and the answers "
            "follow `feature_names_in_`."))
        codec = getattr(self, "_codec", None)
        return X if codec is None else codec.as_frame(X)

    def _declaring_categories_of(self, X):
        """``self``, or a shallow copy of it whose codec declares the categories of ``X``
        that ``fit`` never met, where the model takes them (an encoder that ignores unknown
        categories, a column the model drops): those rows are then explained, each keeping
        its category or changing it to one of ``fit``'s (no answer takes a category ``fit``
        never met). ``self`` is left as it was: later calls know ``fit``'s categories only,
        and their answers' dtypes hold no other. Where the model refuses them (or takes
        category codes as numbers: a network), ``self``: the codec's error at ``encode``
        says what the explainer takes."""
        codec = getattr(self, "_codec", None)
        if codec is None or is_deep_model(self.estimator_):
            return self
        unknown = codec.unknown_categories(X)
        return self._declare_categories(X, codec, unknown) if unknown else self

    def _warn_of_unknown_categories(self, X, codec):
        """Warn, at each call, of the rows of ``X`` holding categories this call declared
        (see :meth:`_declaring_categories_of`)."""
        held = _held_values(X, getattr(codec, "declared_at_explain_", {}))
        if held:
            warn(f"{int(_rows_holding(X, held).sum())} of {len(X)} instances hold categories "
                 f"fit never met, which the model takes ({self._listed(held)}): each is "
                 "explained keeping its category or changing it to one fit met; no answer "
                 "takes one fit never met.")

    def _declare_categories(self, X, codec, unknown):
        """A shallow copy of ``self`` whose codec has the categories ``unknown`` declared,
        and what was made at ``fit`` for its categories made again, where the model takes
        them; ``self`` where it does not."""
        held = _rows_holding(X, unknown)
        rows = X.iloc[held] if hasattr(X, "iloc") else np.asarray(X)[held]
        try:
            with catching_warnings(), ignoring_feature_name_warnings():
                warnings.simplefilter("ignore")
                self.estimator_.predict(rows)
        except Exception:  # whatever the model's failure: the codec's error says more
            return self
        extended = deepcopy(codec)
        extended.declare(unknown)
        n_features = self.n_features_in_
        try:
            trees = None if self._trees is None else \
                read_tree_ensemble(self.estimator_, extended, n_features)
            leaf_boxes = None if getattr(self, "_leaf_boxes", None) is None else \
                single_tree_leaves(self.estimator_, extended, n_features)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"X holds categories fit never met ({self._listed(unknown)}), "
                             f"which the model takes, but search={self.search_!r} cannot read "
                             f"its trees with them: {exc} Explain those rows with "
                             "search='neighbors', or fit on data that holds them.") from exc
        explainer = copy(self)
        explainer._codec = extended
        if self._decode is not None and getattr(self._decode, "__self__", None) is codec:
            explainer._decode = extended.decode
        explainer._trees = trees
        if leaf_boxes is not None:
            explainer._leaf_boxes = leaf_boxes
        if getattr(self, "_fallback_trees", None) is not None:
            explainer._fallback_trees = readable_trees(self.estimator_, extended, n_features)
        explainer._backend = None  # its lookup tables, made for fit's categories
        return explainer

    def _listed(self, values_by_column):
        """``'job': 'astronaut', 'diver'; 'sex': 'X'``: values by column, a few each."""
        names = getattr(self, "feature_names_in_", None)
        return "; ".join(
            f"{names[j] if names is not None else j!r}: "
            f"{', '.join(map(repr, values[:5]))}{', ...' if len(values) > 5 else ''}"
            for j, values in values_by_column.items())

    def _missing_values_error(self, X, columns=None):
        """The error for missing values in ``X`` when the model does not take them (in the
        columns of the mask ``columns``; default: every column that holds one)."""
        names = getattr(X, "columns", None)
        if names is None:
            names = getattr(self, "feature_names_in_", None)
        try:
            if columns is None:
                columns = np.isnan(np.asarray(X, dtype=float)).any(axis=0)
            columns = column_names(columns, names)
        except (TypeError, ValueError):
            columns = []
        estimator = getattr(self, "estimator_", self.estimator)
        return missing_values_refused(type(self).__name__, estimator, columns)

    def _check_missing_values(self, X, reset=False):
        """Refuse missing values in a column where the model does not take them. Its tags
        said it might; a trial call settles each column that holds one (a one-hot encoder
        may take a missing category where a scaler's column cannot take a missing number).
        With ``reset`` (in ``fit``), learn the trials' complete row and refuse a column of
        ``X`` that holds nothing but missing values."""
        missing = np.isnan(X)
        if reset:
            self._missing_tried = np.zeros(X.shape[1], bool)
            self._missing_taken = np.zeros(X.shape[1], bool)
            empty = missing.all(axis=0)
            if empty.any():
                names = column_names(empty, getattr(self, "feature_names_in_", None))
                raise ValueError(f"X columns {names} hold only missing values: fit learns "
                                 "each column's values from X (its no-information value, its "
                                 "scale, its range unless feature_range gives it, and whether "
                                 "the model takes it missing), also for an immutable one: fit "
                                 "on rows that hold some of its values.")
            # each column's first value: the complete row the trials set one column of
            self._missing_trial_row = X[missing.argmin(axis=0), np.arange(X.shape[1])]
        columns = missing.any(axis=0)
        if not columns.any():
            return
        untried = np.flatnonzero(columns & ~self._missing_tried)
        taken = self._missing_taken
        if untried.size and self._accepts_missing:
            # explain tries what fit did not see each time, not keeping it: the fitted
            # state is not written (a read-only memory-mapped load, concurrent calls)
            taken = taken.copy()
            taken[untried] = self._columns_taking_missing_values(untried)
        if reset:
            self._missing_tried, self._missing_taken = columns, taken
        refused = columns & ~taken
        if refused.any():
            raise self._missing_values_error(X, refused)

    def _columns_taking_missing_values(self, columns):
        """Which of ``columns`` the model answers with finite probabilities when that
        column alone is missing: one call for all of them, one per column where it fails."""
        rows = np.repeat(self._missing_trial_row[None], len(columns), axis=0)
        rows[np.arange(len(columns)), columns] = np.nan
        taken = self._finite_answers(rows)
        if taken is None:
            if self._finite_answers(self._missing_trial_row[None]) is None:
                # the model fails on the complete row too: not the missing values' doing
                # (its own error, which names the cause, comes at its first real call)
                return np.ones(len(columns), bool)
            taken = np.array([bool(self._finite_answers(row[None])) for row in rows])
        return taken

    def _finite_answers(self, rows):
        """Per row, whether the model gives finite probabilities there; None where the call
        fails."""
        predict_proba = getattr(self.estimator_, "predict_proba", self.estimator_)
        try:
            if self._decode is not None:
                rows = self._decode(rows)
            with ignoring_feature_name_warnings(), catching_warnings():
                warnings.simplefilter("ignore")
                proba = np.asarray(predict_proba(rows), dtype=float)
        except Exception:  # noqa: BLE001 -- any failure of an unknown model means "no"
            return None
        if proba.ndim != 2 or len(proba) != len(rows):
            return np.zeros(len(rows), bool)
        return np.all(np.isfinite(proba), axis=1)

    def _choose_search(self, X):
        """``search="auto"``: the gradient search for models with an exact gradient (deep
        models, the scikit-learn models it differentiates) unless categorical columns may
        change, the gradient-free search for the others; with ``gradient="numerical"``, the
        gradient search unless the model is a tree, an ensemble of them or nearest
        neighbours, or its numerical gradient is exactly zero on a quarter of the probed
        rows of ``X`` or more."""
        self._gradient_completes = False
        if self.search != "auto":
            if self.search == "fista" and self._codec is not None and \
                    self._codec.has_categorical and \
                    not np.all(self.immutable_mask_[self._codec.categorical_]):
                raise ValueError("search='fista' cannot move categorical columns (category "
                                 "codes are not numbers); use search='neighbors' or 'auto', or "
                                 "make them immutable.")
            return self.search
        categorical = self._codec is not None and self._codec.has_categorical
        if categorical and not np.all(self.immutable_mask_[self._codec.categorical_]):
            return "neighbors"
        backend = self._backend
        if is_deep_model(self.estimator_) or type(backend).__name__ == "ExactBackend":
            return "fista"
        if categorical or self.gradient != "numerical":
            # Finite differences ask 2 n_features + 1 rows a step: on iris, wine and breast
            # cancer (an SVC, soft voting, a function; bench_black_box_search.py) 1.2-134
            # times the time, median 48, for answers 0-25% closer, median 2%; the rows it
            # leaves unanswered still get the gradient search's answer
            # (_complete_by_gradient)
            # (not on a model flat almost everywhere: a KBinsDiscretizer before the
            # classifier, where it would search a row for seconds in vain)
            self._gradient_completes = not categorical and \
                not is_piecewise_constant(self.estimator_) and not self._mostly_flat(X)
            return "neighbors"
        if is_piecewise_constant(self.estimator_) or self._mostly_flat(X):
            return "neighbors"
        return "fista"

    def _mostly_flat(self, X):
        """Whether the model's numerical gradient is exactly zero on a quarter or more of
        (up to) 16 rows of ``X``: piecewise-constant probabilities."""
        probed = X[np.random.default_rng(0).permutation(len(X))[:_N_PROBED]]
        proba = self._backend.predict_proba(probed)
        cotangent = np.zeros_like(proba)
        cotangent[np.arange(len(proba)), proba.argmax(axis=1)] = 1.0
        gradient = self._backend.proba_vjp(probed, cotangent)
        return np.all(gradient == 0, axis=1).mean() >= _FLAT_SHARE

    def _probe_iterations(self):
        """``probe_iterations``, where "auto" probes with a tenth of ``max_iterations`` when
        there is a search on ``c`` to shorten (``c_steps`` > 1), else runs the full
        schedule."""
        if self.probe_iterations != "auto":
            return self.probe_iterations
        probe = self.max_iterations // 10
        return probe if self.c_steps > 1 and probe >= 1 else None

    def _batch_size(self, n_rows):
        """``batch_size``, where "auto" is 64 for the gradient search (its black-box batch
        sends ``2 * n_features * 64`` rows per call) and 1024 for the gradient-free one (a few
        rows per instance and call: fewer, larger calls), made smaller where the rows would
        otherwise not reach every ``n_jobs`` worker (two batches each), or a progress bar
        would not move (ten steps at least, of 64 rows or more)."""
        if self.batch_size != "auto":
            return self.batch_size
        size = 64 if self.search_ == "fista" else 1024
        workers = effective_n_jobs(self.n_jobs)
        if workers > 1:
            size = min(size, max(1, -(-n_rows // (2 * workers))))
        if self.verbose >= 1:
            size = min(size, max(64, -(-n_rows // 10)))
        return size

    def _search(self, backend, problem, settings, progress=None):
        """The search of one batch: the seam between the two strategies, which return the
        same :class:`~skcem._fista.SearchResult`."""
        result = self._search_once(backend, problem, settings, progress)
        # A row the plausible search leaves gets the search's answer without it, where that
        # finds one: plausibility weighs the answers, it does not take any away. Then a row
        # whose only answers the model took pair categories that fit's rows (almost) never
        # hold together gets one of those (a category held by a few rows pairs with few
        # others), with a word in _assemble, rather than none.
        for relaxed in ("plausibility", "category_pairs"):
            missing = unanswered(problem, result)
            if relaxed == "category_pairs":  # only where the model took a refused answer
                refused = result.refused_for_pairs
                missing = missing[refused[missing]] if refused is not None else missing[:0]
            if getattr(problem, relaxed) is None or not missing.size:
                continue
            plain = replace(subset_problem(problem, missing), **{relaxed: None})
            result = replace(result)
            take_answers(result, self._search_once(backend, plain, settings), missing)
            problem = replace(problem, **{relaxed: None})
        return result

    def _search_once(self, backend, problem, settings, progress=None):
        offset = getattr(self, "_decision_offset", None)
        if offset is None:
            return self._search_and_refine(backend, problem, settings, progress)
        shifted = DecisionBackend(backend, offset)
        return shifted.unshift(self._search_and_refine(shifted, problem, settings, progress))

    def _search_and_refine(self, backend, problem, settings, progress):
        result = self._search_by_strategy(backend, problem, settings, progress)
        # Every candidate in the decimals before they compete, the gradient search's own
        # answers too: no answer of "auto" is farther than search="fista"'s.
        rounds = bool(np.any(self.decimals_ >= 0))
        finish = partial(self._to_decimals, backend) if rounds else None
        if self._refines():
            searched = self._to_decimals(backend, problem, result) if rounds else None
            result = complete_and_polish(backend, problem, result, self._pool,
                                         self._whole_columns(), finish=finish)
            if rounds:
                result = keep_cheaper(backend, problem, result, searched,
                                      self._whole_columns())
        result = self._complete_exactly(backend, problem, settings, result)
        result = self._complete_linearly(backend, problem, result)
        if self._n_answers() > 1 and result.answers is None:
            # The gradient search gives one answer: the gradient-free steps add the others.
            result = add_alternatives(backend, problem, result, self._pool,
                                      self._whole_columns(), self._n_answers(),
                                      finish=finish, **self._neighbor_options())
        if self._n_answers() > 1 and result.answers is not None and self.search_ != "exact":
            result = add_answers_elsewhere(backend, problem, result, self._pool,
                                           self._whole_columns(), self._n_answers(),
                                           **self._neighbor_options())
        # search="fista" alone is the reference's optimizer: no polish of its answers.
        return self._to_decimals(backend, problem, result, revert=self.search != "fista")

    def _to_decimals(self, backend, problem, result, revert=True):
        """:func:`~skcem._decimals.round_to_decimals` of the fitted columns."""
        return round_to_decimals(backend, problem, result, self.decimals_,
                                 self._whole_columns(), revert=revert)

    def _fit_decimals(self, X):
        """Per feature, the decimals of a float column's values given to ``fit`` (-1: none,
        or not a column of a table): its answers are rounded to them where the model keeps
        their class (:mod:`skcem._decimals`)."""
        shape = getattr(self._get_backend(), "input_shape", None)
        if shape is not None and len(shape) >= 2:  # pixels, not a table's columns
            return np.full(X.shape[1], -1)
        return column_decimals(X, ~self.categorical_mask_ & ~self._whole_columns())

    def _complete_exactly(self, backend, problem, settings, result):
        """``search="auto"`` on a tree model that the exact search reads: the rows the
        gradient-free search leaves unanswered get the exact search's answer, each within
        ``max_time`` but at most ``_EXACT_FALLBACK_SECONDS`` (PNs and counterfactuals; with
        several answers asked, that one answer). Where the model predicts one class for every
        row given to ``fit``, or the class needs several features moved at once on flat
        probabilities, the gradient-free search has no start and no path; the program finds
        the answers."""
        if self.search != "auto" or self.search_ != "neighbors":
            return result
        missing = unanswered(problem, result)
        if missing.size == 0 or self._exact_trees() is None:
            return result
        seconds = min(self.max_time, _EXACT_FALLBACK_SECONDS)
        extra = ExactSearch(self._exact_trees(), self._whole_columns(), seconds, self._pool,
                            self.decimals_)(
            backend, subset_problem(problem, missing), settings)
        result = replace(result)
        take_answers(result, extra, missing)
        result.proven_none = np.zeros(len(result.found), bool)
        result.proven_none[missing] = extra.proven_none
        result.gap = np.full(len(result.found), np.nan)
        result.gap[missing] = extra.gap
        return result

    def _exact_trees(self):
        """The tree ensemble of the exact search for the rows the gradient-free search
        leaves (read in ``fit``); None for a model, Pipeline or problem (``mode``, ``kappa``
        as they are now) it does not take, or trees the model's own classes contradict."""
        if not hasattr(self, "_fallback_trees"):  # left out of a pickle: read again
            self._fallback_trees = readable_trees(
                self.estimator_, self._codec, self.n_features_in_) \
                if getattr(self, "_reads_fallback_trees", False) else None
        trees = self._as_asked(self._fallback_trees)
        if trees is None:
            return None
        settings = self._problem_settings()
        try:
            check_exact_problem(trees, settings["mode"], settings["kappa"])
        except ValueError:
            return None
        return trees

    def _check_trees_as_read(self, trees):
        """Refuse (``search="exact"``), or leave to the model alone (the split points of the
        gradient-free search), trees whose reading the model's own classes of the fit rows
        contradict: a step before them that feeds them otherwise than the reading follows.
        Returns whether they do."""
        misread = self._as_asked(trees).misread_rows(self._pool.Z, self._pool.pred)
        if not misread:
            return False
        final = frozen_inner(final_step(self.estimator_))
        piped = final is not frozen_inner(self.estimator_)
        xgboost = type(final).__module__.startswith("xgboost")
        message = (f"The trees read from `estimator` put {misread} of {len(self._pool.Z)} "
                   "rows of X in another class than its predict does: " + (
                       "a step before them feeds them otherwise than the reading follows"
                       if piped else "its trees are read otherwise than it follows them") + (
                       " (XGBoost takes the zeros of a sparse matrix, such as a "
                       "ColumnTransformer's one-hot output, for missing values: set "
                       "sparse_threshold=0 there, or OneHotEncoder(sparse_output=False))."
                       if xgboost and piped else "."))
        if self.search_ == "exact":
            raise ValueError(message + " search='exact' cannot prove answers on them.")
        warn(message + " The gradient-free search asks the model alone: its answers are "
             "valid, maybe farther than on trees it reads.")
        self._polish_cuts = self._leaf_boxes = None
        return True

    def _n_answers(self):
        """Answers asked per instance (``n_counterfactuals``; 1 for explainers without)."""
        return getattr(self, "n_counterfactuals", 1)

    def _refines(self):
        """Whether ``search="auto"`` completes and polishes the gradient search's answers
        (:mod:`skcem._refine`): on tables, and for PPs on images (a deep model's input of
        several dimensions), not with an auto-encoder term, whose answers trade distance
        for it. A PP keeps few pixels, whose polish costs less than it saves (20 MNIST PPs:
        3 pixels kept in median, not 5, in 12.6 s, not 14.2 s); a PN changes many, whose
        polish made 20 MNIST PNs 3.4 times as slow (13 pixels changed in median, not 50)."""
        if self.search != "auto" or self.search_ != "fista" or \
                getattr(self, "gamma", 0.0) > 0:
            return False
        shape = getattr(self._get_backend(), "input_shape", None)
        return shape is None or len(shape) < 2 or getattr(self, "mode", None) == "PP"

    def _whole_columns(self):
        n_features = self.n_features_in_
        if self._codec is None:
            return np.zeros(n_features, bool)
        return self._codec.categorical_ | self._codec.integer_

    def _search_by_strategy(self, backend, problem, settings, progress):
        if self.search_ == "exact":
            return ExactSearch(self._as_asked(self._trees), self._whole_columns(),
                               self.max_time, self._pool,
                               self.decimals_)(
                backend, problem, settings, progress)
        if self.search_ == "neighbors":
            search = NeighborSearch(self._pool, self._whole_columns(),
                                    n_answers=self._n_answers(), **self._neighbor_options())
            return self._complete_by_gradient(
                backend, problem, settings, search(backend, problem, settings, progress))
        return self._gradient_search(backend, problem, settings, progress)

    def _neighbor_options(self):
        """How the gradient-free search polishes for this model: its split points, leaves
        and joint moves (the same for its answers and for the alternatives it adds)."""
        return dict(points=self._polish_cuts, leaves=getattr(self, "_leaf_boxes", None),
                    joint=getattr(self, "_joint_moves", True))

    def _complete_by_gradient(self, backend, problem, settings, result):
        """``search="auto"`` on a smooth model without an exact gradient: the rows the
        gradient-free search leaves unanswered get the gradient search's answer (by finite
        differences: costly, for those rows only)."""
        if not getattr(self, "_gradient_completes", False):
            return result
        missing = unanswered(problem, result)
        if missing.size == 0:
            return result
        extra = self._gradient_search(backend, subset_problem(problem, missing),
                                      replace(settings, skip_flat_starts=True))
        result = replace(result, flat_gradient=result.flat_gradient.copy())
        take_answers(result, extra, missing)
        result.flat_gradient[missing] = extra.flat_gradient & ~extra.found
        return result

    def _gradient_search(self, backend, problem, settings, progress=None):
        """The gradient search (FISTA and the search on ``c``), in MAD units where the
        distance is."""
        scale = self._search_scale()
        if scale is None:
            return solve(backend, problem, settings, progress)
        scaled = ScaledBackend(backend, scale, bounds=(problem.lower, problem.upper),
                               whole=problem.whole)
        scaled_problem = problem.scaled(scale)
        result = solve(scaled, scaled_problem, settings, progress)
        # An unchanged feature is the instance's own value, and a removed one (a PP's) the
        # no-information value, not their round trips through scale (which may end past them).
        raw = np.where(result.explanation == scaled_problem.no_info_val, problem.no_info_val,
                       scaled.raw(result.explanation))
        result.explanation = np.where(result.explanation == scaled_problem.x0, problem.x0, raw)
        if problem.whole is not None:  # whole numbers again, after the rounding error
            result.explanation[:, problem.whole] = np.rint(result.explanation[:, problem.whole])
        return result

    def _search_scale(self):
        """Per-feature units of the gradient search's coordinates, or None for the raw ones.

        With the MAD distance the search runs in MAD units: the learning rate, the gradient
        clip and the shrinkage threshold then mean the same for every feature, whatever its
        scale (in raw units a small-scale feature's threshold, beta / MAD, shrank every move).
        Categorical columns (fixed in this search) keep their codes.
        """
        if getattr(self, "distance", None) != "mad":
            return None
        return np.where(self.categorical_mask_, 1.0, self.mad_)

    def _learn_decision_rule(self, X):
        """How the estimator's ``predict`` relates to its probabilities, probed on ``X`` and
        between rows of different classes (near its decision boundaries).

        Returns ``(disagrees, offset)``. ``disagrees``: whether ``predict`` ever differs from
        the argmax of the probabilities; the search then asks ``predict`` at every iteration
        (the final answers are always checked with it). ``offset``: for a binary model whose
        ``predict`` is a threshold ``t`` on the positive class's probability
        (``FixedThresholdClassifier``, ``TunedThresholdClassifierCV``, a binary
        ``SVC(probability=True)``), ``(t - 0.5, 0.5 - t)``, which the search adds to the
        probabilities so that its hinge and success test follow ``predict``; else None.
        """
        model = self.estimator_
        if self.classes_ is None or is_deep_model(model) or \
                not callable(getattr(model, "predict", None)) or \
                not callable(getattr(model, "predict_proba", None)):
            return False, None
        rng = np.random.default_rng(0)
        sample = X[rng.choice(len(X), size=min(len(X), 200), replace=False)]
        first, second = rng.integers(len(sample), size=(2, 100))
        steps = np.linspace(0.0, 1.0, 11)[:, None, None]
        probe = np.vstack([sample, (sample[first] + steps * (sample[second] - sample[first]))
                           .reshape(-1, X.shape[1])])
        try:
            proba, labels = self._proba_and_labels(probe)
        except ValueError as exc:
            if not np.all(np.isfinite(self._proba_and_labels(sample)[0])):
                raise
            # the model answers on the data's rows, not between them, where the searches go
            raise ValueError(
                f"{exc} Not on the rows given to fit, but on rows between them (the searches "
                "move there): the model has no probabilities away from its training data "
                "(a LabelSpreading or LabelPropagation with an RBF kernel underflows there: "
                "a smaller gamma, or kernel='knn', gives it some).") from None
        if np.all(self.classes_[proba.argmax(axis=1)] == labels):
            return False, None
        return True, self._binary_threshold_offset(probe, proba, labels == self.classes_[-1])

    def _proba_and_labels(self, Z):
        if self._codec is not None:
            Z = self._codec.snap(Z)
        if self._decode is not None:
            Z = self._decode(Z)
        with ignoring_feature_name_warnings():
            proba = check_probabilities(self.estimator_.predict_proba(Z), len(Z),
                                        estimator=self.estimator_,
                                        n_classes=len(self.classes_))
            return proba, np.asarray(self.estimator_.predict(Z))

    def _binary_threshold_offset(self, probe, proba, positive, n_bisections=40):
        """See :meth:`_learn_decision_rule`. The threshold is bracketed by the probabilities
        of the rows ``predict`` puts on either side, then narrowed by bisecting segments
        between such rows; None when no threshold separates them."""
        if len(self.classes_) != 2 or positive.all() or not positive.any():
            return None
        rng = np.random.default_rng(0)
        below = probe[rng.choice(np.flatnonzero(~positive), size=16)]
        above = probe[rng.choice(np.flatnonzero(positive), size=16)]
        low, high = proba[~positive, 1].max(), proba[positive, 1].min()
        for _ in range(n_bisections):
            if low >= high:
                break
            middle = (below + above) / 2
            middle_proba, labels = self._proba_and_labels(middle)
            up = labels == self.classes_[-1]
            low = max(low, middle_proba[~up, 1].max(initial=-np.inf))
            high = min(high, middle_proba[up, 1].min(initial=np.inf))
            above = np.where(up[:, None], middle, above)
            below = np.where(up[:, None], below, middle)
        if low >= high:
            return None
        threshold = (low + high) / 2
        return np.array([threshold - 0.5, 0.5 - threshold])

    def _check_params(self, n_features):
        """Checks of values and across parameters, beyond ``_parameter_constraints``.

        Subclasses extend it (calling ``super()``); ``feature_range`` is checked against the
        data by :func:`~skcem._validation.check_feature_range` in ``fit``.
        """
        check_pair(self.eps, "eps", positive=True)
        check_pair(self.clip, "clip", increasing=True)
        per_feature(self.eps[1], n_features, "eps")
        probe = self.probe_iterations
        if isinstance(probe, Integral) and probe >= self.max_iterations:
            raise ValueError(f"`probe_iterations` ({probe}) must be below `max_iterations` "
                             f"({self.max_iterations}): the probes are the short c-steps of the "
                             "search on c. Use None for the full schedule.")

    def _fit_data(self, X):
        """What a subclass learns from the data."""

    def _feature_weights(self, n_features):
        """``feature_weights`` as one positive weight per feature (1 where not given)."""
        weights = np.ones(n_features)
        if self.feature_weights is None:
            return weights
        if isinstance(self.feature_weights, dict):
            names = fitted_columns(self)
            for key, weight in self.feature_weights.items():
                j = label_position(key, names, n_features, "feature_weights")
                weights[j] = per_feature(weight, 1, f"feature_weights[{key!r}]")[0] \
                    if np.ndim(weight) == 0 else np.nan
        else:
            weights = per_feature(self.feature_weights, n_features, "feature_weights")
        if not np.all(weights > 0):  # NaN too
            raise ValueError(f"`feature_weights` must be positive numbers, one per feature "
                             f"(a dict of them by column); got {self.feature_weights!r}.")
        return weights

    def _heavy_categories(self):
        """The categorical columns ``feature_weights`` weighs above 1 (None for none)."""
        weights = getattr(self, "feature_weights_", None)
        if weights is None:
            return None
        heavy = self.categorical_mask_ & (weights > 1)
        return heavy if heavy.any() else None

    def _fit_mad(self, X, wanted):
        """Learn ``mad_`` when the distance is MAD-scaled; drop a stale one otherwise."""
        if wanted:
            # A changed category costs one MAD of a numeric column.
            self.mad_ = np.where(self.categorical_mask_, 1.0, median_absolute_deviation(X))
        elif hasattr(self, "mad_"):
            del self.mad_

    def _autoencoder(self):
        """The auto-encoder of the ``gamma`` term, if the explainer has one."""
        return None

    def _make_backend(self, n_features):
        backend = make_backend(self.estimator_, eps=per_feature(self.eps[1], n_features, "eps"),
                            n_features=n_features, autoencoder=self._autoencoder(),
                            input_shape=self.input_shape,
                            output_kind=getattr(self, "_keras_output", None) or "probabilities",
                            classes=self.classes_,
                            # a threshold's offset makes the probabilities follow predict
                            # (to the threshold's 1e-9, which the answers' check settles):
                            # not asked at every step (20 times the time of a Pipeline's)
                            predict_in_search=getattr(self, "_predict_in_search", False)
                            and getattr(self, "_decision_offset", None) is None,
                            gradient=self.gradient, device=self.device,
                            table=None if getattr(self, "_decode", None) is None else self._codec,
                            decode=getattr(self, "_decode", None))
        # A black-box gradient's shifted rows stay inside the range (set again in fit, once
        # the range is known).
        backend.input_bounds = getattr(self, "feature_range_", None)
        codec = getattr(self, "_codec", None)
        if is_deep_model(self.estimator_) and codec is not None and codec.has_categorical:
            # a network's categories are numbers (codes of its own): the search's codes
            # become them
            backend = CodedBackend(backend, [
                np.asarray(values, dtype=float) if values is not None else None
                for values in codec.categories_])
        return backend

    def _get_backend(self):
        # Compiled TensorFlow functions do not pickle: a restored explainer rebuilds them.
        if getattr(self, "_backend", None) is None:
            self._backend = self._make_backend(self.n_features_in_)
        return self._backend

    def _class_indices(self, labels, n_samples, name="y"):
        labels = np.asarray(labels)
        if labels.shape != (n_samples,):
            raise ValueError(f"`{name}` must have shape ({n_samples},) like X; got "
                             f"{labels.shape}.")
        return class_indices(labels, self.classes_, name)

    def _targets(self, predicted, proba, y, index=None):
        """The class each instance is explained against and the class the search aims at.

        Parameters
        ----------
        predicted : ndarray of int
            The model's class index of each instance (by its ``predict`` when it has one).
        proba : ndarray of shape (n_samples, n_classes)
        y : array-like or None
            As passed to :meth:`explain`, in the order of its rows.
        index : pandas.Index or None
            The index of ``X`` when it is a DataFrame (per-row labels in a Series follow it).

        Returns
        -------
        explained, target : ndarray of int
        """
        raise NotImplementedError

    def _problem_settings(self):
        """The :class:`~skcem._fista.SearchProblem` fields that the subclass decides: ``mode``,
        ``no_info_val``, ``kappa``, distance weights, ``gamma``."""
        raise NotImplementedError

    def _solver_settings(self):
        """The :class:`~skcem._fista.SolverSettings` of the search."""
        raise NotImplementedError

    def _check_network_takes_bounds(self):
        """A network is asked once at each end of ``feature_range_``: the searches move
        there, and a network that cannot take it (an embedding's index past its vocabulary)
        would fail deep inside its framework mid-search."""
        if not is_deep_model(self.estimator_):
            return
        lower, upper = (np.broadcast_to(bound, (self.n_features_in_,))
                        for bound in self.feature_range_)
        try:
            proba = self._backend.predict_proba(np.vstack([lower, upper]))
        except Exception as exc:  # the framework's own error, whatever its kind
            # TensorFlow's graph errors open with the trace of the node, the cause last
            lines = [line for line in str(exc).splitlines() if line.strip()
                     and not line[0].isspace() and not line.startswith(
                         ("Graph execution error", "Detected at node"))]
            reason = (lines[-1] if lines else str(exc).strip())[:200]
            raise ValueError(
                f"`estimator` fails on rows at the bounds of `feature_range` "
                f"({type(exc).__name__}: {reason}). The searches move features anywhere in "
                "it: give a feature_range the model takes (for token ids, 0 to the "
                "vocabulary's size - 1; better, name them in `categorical_features`).") from exc
        if not np.all(np.isfinite(proba)):
            raise ValueError("`estimator` gives non-finite outputs on rows at the bounds of "
                             "`feature_range`; give a feature_range the model takes.")

    def _warn_of_embedded_indices(self, X, codec):
        """A word where a network holds an embedding layer and mutable columns of X hold
        whole numbers only (indices, it seems) that are not named categorical: moved as
        numbers, 2.9998 for 3 is another token to the network's cast."""
        if not is_deep_model(self.estimator_) or \
                (codec is not None and codec.has_categorical) or \
                not embeds_inputs(self.estimator_):
            return
        sample = np.asarray(X[:2000], dtype=float)
        whole = np.array([whole_floats(column, sample.dtype) for column in sample.T], bool)
        indices = np.flatnonzero(whole & ~self.immutable_mask_)
        if indices.size:
            names = column_names(np.isin(np.arange(X.shape[1]), indices),
                                 getattr(self, "feature_names_in_", None))
            warn(f"`estimator` holds an embedding layer, and X's columns {names[:5]}"
                 f"{' ...' if len(names) > 5 else ''} hold whole numbers only: if they are its "
                 "indices (token ids, category codes), name them in `categorical_features` "
                 "(the searches then change them whole); moved as numbers, an answer such as "
                 "2.9998 for 3 is another token to the network's cast, a change that shows as "
                 "almost none.")

    def _warn_of_swapped_texts(self, codec):
        """A word where a mutable column of X feeds a text vectorizer of the model's first
        ColumnTransformer: each whole text is a category, which an answer may swap for
        another row's text."""
        if codec is None or not codec.has_categorical:
            return
        texts = [j for j in _vectorized_columns(self.estimator_, len(codec.categorical_))
                 if codec.categorical_[j] and not self.immutable_mask_[j]]
        if texts:
            named = [codec.columns_[j] if codec.columns_ is not None else j for j in texts]
            warn(f"X's columns {named} feed a text vectorizer of `estimator`: each whole text "
                 "is a category, and an answer may swap it for another row's text of the fit "
                 "data (never an edit of it). Name them in `immutable_features` to keep each "
                 "row's own text.")

    def _warn_of_identifiers(self, codec, X):
        """A word where a mutable categorical column holds a distinct value in nearly every
        row given to ``fit`` (an identifier, it seems; a free text is said apart): an answer
        may take another row's."""
        if codec is None or not codec.has_categorical or len(X) < _IDENTIFIER_ROWS:
            return
        texts = set(_vectorized_columns(self.estimator_, len(codec.categorical_)))
        named = [codec._name(j) for j in np.flatnonzero(codec.categorical_)
                 if j not in texts and not self.immutable_mask_[j]
                 and len(np.unique(X[:, j][~np.isnan(X[:, j])])) >= _IDENTIFIER_SHARE * len(X)]
        if named:
            warn(f"X's categorical columns {named} hold a distinct value in nearly every row "
                 "(identifiers?): an answer may swap one for another row's, which says "
                 "nothing. Name them in `immutable_features` (or drop them from X and the "
                 "model).")

    def _warn_of_idle_settings(self):
        """A word on the gradient search's schedule set away from its defaults where the
        chosen search does not run it (a grid search over ``c_init`` on a forest tunes
        nothing); subclasses add their own weights."""
        if self.search_ not in ("neighbors", "exact"):
            return
        defaults = type(self)().get_params(deep=False)
        read = set()
        if self.search == "auto" and self.gradient == "numerical":
            read.add("eps")  # its steps probe the model's gradient to choose the search
        changed = [f"{name}={getattr(self, name)!r}" for name in _GRADIENT_SEARCH_SCHEDULE
                   if name in defaults and name not in read
                   and not _equal_settings(getattr(self, name), defaults[name])]
        if not changed:
            return
        chosen = "chosen for this model or table" if self.search == "auto" else "as asked"
        them, verb = ("them", "set") if len(changed) > 1 else ("it", "sets")
        codec = self._codec
        moves_categories = codec is not None and codec.has_categorical and \
            not np.all(self.immutable_mask_[codec.categorical_])
        if is_piecewise_constant(self.estimator_):
            reach = f"does not read {them}: a model of trees or neighbours has no gradient."
        elif moves_categories:
            reach = (f"does not read {them}: the gradient search cannot change categorical "
                     "columns (search='fista' runs where they are immutable).")
        elif getattr(self, "_gradient_completes", False):
            reach = (f"reads {them} only for the rows it leaves unanswered (the gradient "
                     "search answers those); search='fista' runs the gradient search for "
                     "every row.")
        else:
            reach = (f"does not read {them}; search='fista' runs the gradient search (by "
                     "finite differences where the model has no exact gradient).")
        warn(f"{', '.join(changed)} {verb} the gradient search's schedule; "
             f"search_={self.search_!r} ({chosen}) {reach}")

    def _one_range_for_all(self):
        """Whether ``feature_range`` is one pair of numbers bounding every feature."""
        return self.feature_range is not None and not isinstance(self.feature_range, dict) \
            and np.ndim(self.feature_range[0]) == 0 and np.ndim(self.feature_range[1]) == 0

    def _warn_of_indicator_floats(self, X, deep):
        """Warn of mutable float columns holding only 0 and 1 (indicators, it seems): the
        searches move them as numbers, to 0.47 as readily as to 1. Not for networks, nor
        under one ``feature_range`` pair for every feature: their inputs (the pixels of
        binarised images) are numbers to move."""
        if deep or self._one_range_for_all():
            return  # (the pixels of an image)
        numeric = ~self.categorical_mask_ & ~self._whole_columns() & ~self.immutable_mask_
        values = np.asarray(X, dtype=float)
        zeros, ones = values == 0, values == 1
        indicators = numeric & np.all(zeros | ones | np.isnan(values), axis=0) & \
            zeros.any(axis=0) & ones.any(axis=0)
        if not indicators.any():
            return
        names = column_names(indicators, getattr(self, "feature_names_in_", None))
        shown = ", ".join(map(repr, names[:5])) + (f", ... ({len(names)} in all)"
                                                    if len(names) > 5 else "")
        several = len(names) > 1
        warn(f"X's float column{'s' if several else ''} {shown} hold{'' if several else 's'} "
             "only 0 and 1: the answers may set "
             f"{'them' if several else 'it'} between (0.47), as numbers. For indicators, give "
             f"{'them' if several else 'it'} a bool or integer dtype (in a DataFrame), or name "
             f"{'them' if several else 'it'} in `categorical_features`.")

    def _warn_of_feature_scales(self, X):
        """Warn when the mutable numeric features' spreads differ by ``_SCALE_RATIO`` or more
        under a distance in the features' own units: it then counts a unit of each alike, and
        the answers change (or a PP keeps) the features of the largest scale. Not where one
        ``feature_range`` pair bounds every feature and most features span a good part of it:
        they share a scale (the pixels of images, whose edge pixels barely vary); a wide pair
        such as (0, 5000) over features of all scales says nothing of theirs."""
        if getattr(self, "distance", "mad") == "mad" or len(X) < 2:
            return
        numeric = ~self.categorical_mask_ & ~self.immutable_mask_  # what answers may move
        # spreads told apart by a factor of a thousand: a sample of rows tells them as well
        rows = np.asarray(X, dtype=float)[::-(-len(X) // _SCALE_SAMPLE_ROWS)][:, numeric]
        with warnings.catch_warnings():  # a column of missing values alone has no spread
            warnings.simplefilter("ignore", RuntimeWarning)
            widths = np.nanmax(rows, axis=0) - np.nanmin(rows, axis=0)
            spreads = np.nanstd(rows, axis=0)
        if self._one_range_for_all():
            common = float(self.feature_range[1]) - float(self.feature_range[0])
            if widths[widths > 0].size and np.median(widths[widths > 0]) >= 0.1 * common:
                return
        if getattr(self, "feature_weights", None) is not None:
            try:  # the cost of a spread's move: weighed, the scales may be evened out
                spreads = spreads * self._feature_weights(X.shape[1])[numeric]
            except ValueError:
                pass  # fit names what is wrong with the weights
        # (a constant column's float std can be 1e-17 rather than 0)
        kept = np.flatnonzero((spreads > 0) & (widths > 0))
        if kept.size < 2:
            return
        big, small = kept[np.argmax(spreads[kept])], kept[np.argmin(spreads[kept])]
        ratio = spreads[big] / spreads[small]
        if ratio < _SCALE_RATIO:
            return
        names = getattr(self, "feature_names_in_", None)
        columns = np.flatnonzero(numeric)

        def name(k):
            j = int(columns[k])
            return repr(str(names[j])) if names is not None else f"column {j}"

        answers = "a PP keeps" if getattr(self, "mode", None) == "PP" else "the answers change"
        warn(f"X's features differ in scale by a factor of {ratio:.3g} (the standard "
             f"deviation of {name(big)} against {name(small)}): distance={self.distance!r} "
             f"counts a unit of every feature alike, so {answers} the features of the largest "
             "scale, at distances far above those of answers measured in each feature's own "
             "units. distance='mad' measures each change in its feature's spread; or "
             "standardise X.")

    def _warn_integer_labels_are_positions(self, codec):
        """Integers in the by-feature parameters are positions (scikit-learn keeps no names
        that are not strings), which a DataFrame labelled by other integers belies: its
        answers and changes() show the labels."""
        labels = None if codec is None or codec.columns_ is None else codec.columns_
        if labels is None or not all(isinstance(c, (int, np.integer)) for c in labels) or \
                list(labels) == list(range(len(labels))):
            return
        given = []
        for name in ("immutable_features", "categorical_features", "directions",
                     "feature_range", "no_info_val"):
            value = getattr(self, name, None)
            keys = value.keys() if isinstance(value, dict) else \
                value if isinstance(value, (list, tuple, np.ndarray)) and np.ndim(value) == 1 \
                else ()
            if any(isinstance(k, (int, np.integer)) and not isinstance(k, bool) for k in keys):
                given.append(name)
        if given:
            warn(f"X's columns are labelled by integers {list(labels)[:10]}, but the integers "
                 f"in {given} are positions (column {labels[0]!r} is 0): give the columns' "
                 "positions there, or label the columns by strings.")

    def _warn_outside_range(self, X, eps=0.0):
        """Warn of instances outside the range; ``eps``: the relative rounding of the input
        (float32 rows rounded from the data ``fit`` saw fall a spacing past its bounds)."""
        lower, upper = self.feature_range_
        slack = eps * np.maximum(np.abs(lower), np.abs(upper))
        cells = (X < lower - slack) | (X > upper + slack)
        # (a category no answer takes, held by the instance: no range of numbers; an
        # immutable feature, which no answer changes)
        cells &= ~(self.categorical_mask_ | self.immutable_mask_)
        outside = np.any(cells, axis=1)
        if outside.any():
            columns = np.flatnonzero(cells.any(axis=0))
            names = fitted_columns(self)  # (integer and tuple labels too)
            labels = [str(j) if names is None else repr(
                names[j].item() if isinstance(names[j], np.generic) else names[j])
                for j in columns[:5]]
            named = ", ".join(labels) + (", ..." if columns.size > 5 else "")
            named = ("features " if columns.size > 1 else "feature ") + named
            warn(f"{int(outside.sum())} of {len(X)} instances have values outside "
                 f"`feature_range_` in {named}: the explanation keeps the values of the "
                 "features it does not change, and moves a changed one only towards the "
                 "range.")

    def _integer_columns(self):
        """The mask of integer columns of a DataFrame, or None: the gradient search's answers
        hold whole numbers there."""
        codec = self._codec
        return codec.integer_ if codec is not None and codec.integer_.any() else None

    def _warn_empty(self, empty):
        """Pertinent positives that keep nothing say nothing: say why."""
        holds = self.immutable_mask_.any() or np.any(self.directions_ != 0)
        held = " besides the features their constraints hold (Explanation.held: immutable, " \
            "or kept from the background by directions)" if holds else ""
        at = (", with those features at the instance's values," if held else "")
        if empty.any():
            warn(f"{int(empty.sum())} of {len(empty)} PPs keep nothing{held}: the model already "
                 "gives the no-information background (no_info_val clipped to the feature "
                 f"range, widened to an instance's value outside it){at} the class the "
                 "instance is explained in (its own, or y's where explain is given y). "
                 "Choose a no_info_val the model does not put in that class for PPs that "
                 "show what matters.", TargetWarning)

    @staticmethod
    def _searchable(mode, explained, target, predicted):
        """Instances whose only answer would be the instance itself get none, with a warning."""
        searchable = mode.searchable(explained, target, predicted)
        n_trivial = int((~searchable).sum())
        if n_trivial:
            warn(f"{n_trivial} of {len(target)} instances get no {mode.name}: the "
                 f"model already gives them the class a {mode.name} must reach, so the "
                 "instance itself would be its trivial answer.", TargetWarning)
        return searchable

    def explain(self, X, y=None):
        """Find the explanation of each row of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Instances to explain; DataFrame columns are matched by name.
        y : array-like of shape (n_samples,), default=None
            :class:`CEMExplainer`: the class to explain each instance against (default: the
            model's prediction); a pandas Series follows the index of a DataFrame ``X``.
            :class:`CounterfactualExplainer`: ignored, with a warning (its classes are set by
            ``target_class``).

        Returns
        -------
        explanation : Explanation
            Explanations, their predictions, the ``found`` mask, distances and final ``c``.
            Warns with :class:`ExplanationNotFoundWarning` when some instances got none.
        """
        check_is_fitted(self)
        # As in fit: many small questions, which OpenMP threads (histogram gradient
        # boosting's) cost more to wake than the rows take, many times more on a busy machine.
        deep = is_deep_model(self.estimator_)
        # the caller's own threads, where the model's classes may follow them: the answers
        # are checked once more with them (asked only there: after a limit, libgomp's
        # threads took a second to wake on a busy machine, a 16x slower explain of one row)
        token = _CALLERS_OPENMP_THREADS.set(
            _openmp_threads() if _breaks_ties_by_threads(self.estimator_) else None)
        float32 = _FLOAT32_CALL.set(getattr(X, "dtype", None) == np.float32)
        try:
            with nullcontext() if deep else threadpool_limits(limits=1, user_api="openmp"):
                return self._explain(X, y)
        finally:
            _FLOAT32_CALL.reset(float32)
            _CALLERS_OPENMP_THREADS.reset(token)

    def _explain(self, X, y):
        """:meth:`explain`, under its thread limits."""
        with filters_held():
            X, y = from_polars(X), from_polars(y)
            check_not_documents(X)
            index = X.index if hasattr(X, "columns") else None  # a list's index is a method
            eps = _rounding_of(X)
            given = hasattr(X, "iloc")
            self._check_fit_parameters()
            X = self._aligned(X)
            # (a copy of self where X holds categories fit never met: explain writes no
            # state)
            explaining = self._declaring_categories_of(X)
        return explaining._explain_codes(X, y, index, eps, given)

    def _explain_codes(self, X, y, index, eps, given):
        """:meth:`_explain` once ``self`` knows every category of ``X`` (aligned: see
        :meth:`_aligned`) the model takes; ``given``: whether X was given as a DataFrame."""
        codec = getattr(self, "_codec", None)
        # the rows as given: cells no answer changes come back as they were
        given = X if given and codec is not None and codec.is_frame_ else None
        with filters_held():  # (no model call: a network's own lock is taken after it)
            X, _ = self._validate(X, reset=False)
        self._check_missing_values(X)
        backend = self._get_backend()
        rows_before = backend.n_model_rows
        proba = check_probabilities(backend.predict_proba(X), X.shape[0],
                                    estimator=self.estimator_)
        predicted = backend.predict(X)
        n_rows = backend.n_model_rows - rows_before
        self._warn_outside_range(X, eps)
        explained, target = self._targets(predicted, proba, align_rows(y, index, "y"), index)
        settings = self._solver_settings()
        lower, upper = self.feature_range_
        common = dict(n_classes=len(self.classes_), lower=lower, upper=upper,
                      mutable=~self.immutable_mask_ if self.immutable_mask_.any() else None,
                      directions=self.directions_ if self.directions_.any() else None,
                      categorical=self.categorical_mask_, whole=self._integer_columns(),
                      category_pairs=getattr(self, "_category_pairs", None),
                      plausibility=getattr(self, "_class_neighborhood", None),
                      permitted=getattr(self, "_permitted", None),
                      heavy=self._heavy_categories(),
                      **self._problem_settings())
        searchable = self._searchable(common["mode"], explained, target, predicted)
        size = self._batch_size(X.shape[0])
        starts = range(0, X.shape[0], size)
        steps = settings.c_steps + (settings.probe_iterations is not None) \
            if self.search_ == "fista" else 1
        # The bar counts rows: each step of a batch's search moves it by its share of them.
        bar = progress_bar(X.shape[0], type(self).__name__, self.verbose >= 1, unit="row")

        def report(step, c, found):
            bar.update(found.size / steps)
            _log_step(self.verbose, self.search_, step, np.median(c), int(found.sum()),
                      found.size)

        batches = [(X[i:i + size], target[i:i + size], searchable[i:i + size])
                   for i in starts]
        try:
            # None: one process, or a joblib context's workers (parallel_config), as in
            # scikit-learn; _batch_size sized the batches for them alike
            if effective_n_jobs(self.n_jobs) == 1 or len(batches) == 1:
                outcomes = [_solve_batch(self, x0, t, s, common, settings, report,
                                         _FLOAT32_CALL.get()) for x0, t, s in batches]
            else:
                # Batches are independent: workers give the same answers as this process.
                outcomes = []
                parallel = Parallel(n_jobs=self.n_jobs, return_as="generator")
                float32_call = _FLOAT32_CALL.get()
                for outcome in parallel(delayed(_solve_batch)(self, x0, t, s, common, settings,
                                                              "record", float32_call)
                                        for x0, t, s in batches):
                    outcomes.append(outcome)
                    bar.update(len(outcome[0].found))
                    for step in outcome[2]:  # logged here: a worker's logger is its own
                        _log_step(self.verbose, self.search_, *step)
        finally:
            bar.close()
        results = [result for result, *_ in outcomes]
        n_rows += sum(rows for _, (rows, _), _ in outcomes)
        non_finite = tuple(int(sum(counts)) for counts in
                           zip(*(non_finite for _, (_, non_finite), _ in outcomes))) or (0, 0)
        return self._assemble(X, index, proba, explained, results, common, n_rows,
                              searchable, self._required_class(target), non_finite, given)

    def _classes_no_fit_row_gets(self, target_class, rows):
        """The classes that ``rows`` had to reach (``target_class``) that the model gives
        none of the rows of ``fit`` it was asked about (the gradient-free search's pool)."""
        pool = getattr(self, "_pool", None)
        if target_class is None or pool is None or not rows.any():
            return []
        given = {label for label in self.classes_[np.unique(pool.pred)].tolist()}
        wanted = dict.fromkeys(np.asarray(target_class, dtype=object)[rows].tolist())
        return [label for label in wanted if label is not None and label not in given]

    def _required_class(self, target):
        """The labels of the classes the answers must reach, for ``Explanation.target_class``;
        None where any class but the instance's will do."""
        return None

    def _gradient_search_hint(self):
        """What may help the gradient search find more answers."""
        if self.distance == "mad":
            return self._not_found_hint
        return f"{self._not_found_hint} On raw features of very different scales, {_MAD_ADVICE}."

    def _step_scale_hint(self, X, flat):
        """Where finite differences found no gradient: a word on features so large that the
        step ``eps`` is lost in their rounding, else ""."""
        if not getattr(self._get_backend(), "finite_differences", False):
            return ""
        steps = per_feature(self.eps[1], X.shape[1], "eps")
        # (a column missing in every such row has no magnitude: 0)
        magnitudes = np.max(np.abs(np.where(np.isnan(X[flat]), 0.0, X[flat])), axis=0)
        lost = steps < _LOST_STEP * magnitudes
        if not lost.any():
            return ""
        return (f" Features of theirs reach {magnitudes[lost].max():.3g}, where a step of "
                f"eps={steps[lost].min():.3g} is lost in the model's rounding: give `eps` "
                "on the features' scale (one value per feature)" + (
                    "." if self.distance == "mad" else f"; and {_MAD_ADVICE}."))

    def _drop_answers_breaking_held_cells(self, X, results):
        """Leave out, loudly, any answer that changes an immutable feature or fills a missing
        cell: the searches never should (a guard against their bugs, not a filter)."""
        held = np.isnan(X) | self.immutable_mask_
        if not held.any():
            return
        n_broken, start = 0, 0
        for result in results:
            rows = slice(start, start + len(result.found))
            start = rows.stop
            answers = result.explanation[:, None] if result.answers is None else result.answers
            same = (answers == X[rows, None]) | (np.isnan(answers) & np.isnan(X[rows, None]))
            broken = np.isfinite(answers).any(axis=2) & ~np.all(same | ~held[rows, None],
                                                                 axis=2)
            broken[:, 1:] |= broken[:, :1]  # the closest answer broken: the row's are doubted
            if not broken.any():
                continue
            n_broken += int(broken[:, 0].sum())
            _leave_out(result, broken[:, 0], broken)
        if n_broken:
            warn(f"{n_broken} answers changed an immutable feature or a missing cell and were "
                 "left out (their rows are NaN). No search should give such answers: please "
                 "report this as a bug of skcem.")

    def _warn_of_rare_pairs(self, X, answers):
        """A word on answers pairing categories that fit's rows (almost) never hold together:
        the searches give them only to rows with no other answer (:meth:`_search`)."""
        pairs = getattr(self, "_category_pairs", None)
        if pairs is None or not len(answers):
            return
        rare = pairs.created(answers, X)
        if rare.any():
            warn(f"{int(rare.sum())} of {len(answers)} answers pair categories that the rows "
                 "given to fit (almost) never hold together, such as a category of few rows "
                 "with one none of them has: the searches found no answer without such a "
                 "pair for these instances (immutable_features may leave them no other). "
                 "skcem.metrics.explanation_metrics counts them (rare_pairs).")

    def _warn_broken_one_hot(self, answers, names):
        """A word where answers leave categories given one-hot encoded in ``fit``'s ``X`` with
        anything but a single 1 (at most one, with a dropped level): rows no data holds,
        which the model may read anyhow."""
        groups = getattr(self, "_one_hot_groups", None) or []
        dropped = getattr(self, "_dropped_level_groups", None) or []
        if not (groups or dropped) or len(answers) == 0:
            return

        def shown(group):
            return ", ".join(str(names[j]) if names is not None else str(j)
                             for j in group[:3]) + (", ..." if len(group) > 3 else "")

        broken = breaks_one_hot(answers, groups)
        broken_dropped = breaks_one_hot(answers, dropped, dropped_level=True)
        parts = []
        if broken.any():
            parts.append(f"{int(broken.sum())} of {len(answers)} answers leave columns that X "
                         f"holds one-hot encoded (such as {shown(groups[0])}) with values "
                         "other than a single 1 among 0s")
        if broken_dropped.any():
            parts.append(f"{int(broken_dropped.sum())} of {len(answers)} answers set more than "
                         f"one 1 in columns named alike that X never holds two 1s in (such as "
                         f"{shown(dropped[0])}: read as one-hot with a dropped level)")
        if parts:
            warn("; ".join(parts) + ": rows no data holds. Explain the model through a "
                 "function of the raw rows, whose text columns are then categories changed "
                 "whole (see the user guide), or make such columns immutable.")

    def _recheck_answers(self, results):
        """Ask ``predict`` once more about the answers exactly as they are returned, with the
        caller's OpenMP threads as well as the search's one: one whose class is not the one
        the search found (an integer column rounded after the search's last question) is not
        found, nor one whose class the threads change (a nearest-neighbour model's tie between
        equally distant training rows, which scikit-learn breaks by its threads' order).
        Returns the mask of the latter."""
        backend = self._get_backend()
        threads = _CALLERS_OPENMP_THREADS.get()
        tied = []
        for result in results:
            tied.append(np.zeros(len(result.found), bool))
            rows = np.flatnonzero(result.found)
            if rows.size == 0:
                continue
            answers = result.explanation[rows]
            changed = backend.predict(answers) != result.explanation_class[rows]
            if threads is not None:
                with threadpool_limits(limits=threads, user_api="openmp"):
                    by_threads = backend.predict(answers) != result.explanation_class[rows]
                tied[-1][rows[by_threads & ~changed]] = True
                changed |= by_threads
            if changed.any():
                out = np.zeros(len(result.found), dtype=bool)
                out[rows[changed]] = True
                result.rejected_by_predict = result.rejected_by_predict | out
                _leave_out(result, out)
            if result.answers is not None and threads is not None:  # the other ranks
                ranked = np.isfinite(result.answer_distance)
                ranked[:, 0] = False
                if ranked.any():
                    alternatives = result.answers[ranked]
                    own = backend.predict(alternatives)
                    with threadpool_limits(limits=threads, user_api="openmp"):
                        theirs = backend.predict(alternatives)
                    ranks = np.zeros(ranked.shape, bool)
                    ranks[ranked] = own != theirs
                    if ranks.any():
                        _leave_out(result, np.zeros(len(result.found), bool), ranks)
        return np.concatenate(tied) if tied else np.zeros(0, bool)

    def _assemble(self, X, index, proba, explained, results, common, n_model_rows, searchable,
                  target_class=None, non_finite=(0, 0), given=None):
        self._drop_answers_breaking_held_cells(X, results)
        tied = self._recheck_answers(results)
        found = np.concatenate([r.found for r in results])
        explanation_proba = np.concatenate([r.explanation_proba for r in results])
        explanation_class = np.concatenate([r.explanation_class for r in results])
        explanation_pred = np.full(found.shape, None, dtype=object)
        explanation_pred[found] = self.classes_[explanation_class[found]]
        # Instances left out on purpose were already named by a TargetWarning.
        n_missing = int((~found & searchable).sum())
        mode = common["mode"].name
        if n_missing:
            flat = np.concatenate([r.flat_gradient for r in results]) & ~found & searchable
            rejected = np.concatenate([r.rejected_by_predict for r in results])
            disagrees = getattr(self, "_predict_in_search", False) and \
                getattr(self, "_decision_offset", None) is None
            finite_differences = getattr(self._get_backend(), "finite_differences", False)
            flat_hint = _DISAGREEING_FLAT_HINT if disagrees else \
                _FLAT_GRADIENT_HINT if finite_differences else _AUTODIFF_FLAT_HINT
            proven = np.concatenate([
                np.zeros(len(r.found), bool) if r.proven_none is None else r.proven_none
                for r in results]) & ~found & searchable
            holed = ~found & searchable & np.isnan(np.asarray(X, dtype=float)).any(axis=1)
            hint = flat_hint.format(n=int(flat.sum())) + self._step_scale_hint(X, flat) \
                if flat.any() else self._gradient_search_hint() if self.search_ == "fista" else \
                _exact_hint(int(proven.sum()), int(rejected.sum()), n_missing, self.max_time,
                            int((holed & ~proven & ~rejected).sum())) \
                if self.search_ == "exact" else \
                _NO_NEIGHBOR_PP_HINT if not common["mode"].requires_change else \
                _COMPLETED_NO_NEIGHBOR_HINT if getattr(self, "_gradient_completes", False) \
                else _NO_NEIGHBOR_HINT
            if common["mode"].name == "PN" and hint in (_NO_NEIGHBOR_HINT,
                                                        _COMPLETED_NO_NEIGHBOR_HINT):
                hint += _CROSSING_PN_HINT
            stuck = ~found & searchable & ~self._room_to_move(X, common)
            unreachable = self._linearly_unreachable(X, ~found & searchable & ~stuck, common,
                                                     target_class)
            unsettled = n_missing - int(stuck.sum()) - int(unreachable.sum())
            settled = ""
            if stuck.any():
                settled = (f"{int(stuck.sum())} of them have no admissible change at all "
                           "(immutable_features, directions, feature_range, missing cells "
                           "(held as they are) and, for a PN, moves away from no_info_val "
                           "only, leave no feature room to move): no search can find one. ")
            if unreachable.any():
                settled += (f"For {int(unreachable.sum())} of them none exists: the model's "
                            "decision is linear in the features, and a linear program proves "
                            "that no change the constraints admit (" + _CONSTRAINTS + ") "
                            "reaches a wanted class; no search or setting can find one. ")
            if settled:
                hint = (settled + ("For the others: " + hint if unsettled > 0 else "")).rstrip()
            tied &= ~found
            rejected &= ~tied
            if rejected.any() and self.search_ != "exact":
                hint += (f" For {int(rejected.sum())} of them the estimator's predict "
                         "disagreed with its predict_proba at the best answer.")
            if tied.any():  # first: the others' advice is not theirs
                tie = (f"For {int(tied.sum())} of them the estimator's predict gave the "
                       "best answer another class with this process's OpenMP threads than "
                       "with one (a tie, such as between equally distant neighbours, which "
                       "scikit-learn breaks by its threads' order): it was left out "
                       "(threadpoolctl's threadpool_limits(1) around explain keeps it).")
                hint = tie if int(tied.sum()) == n_missing else f"{tie} For the others: {hint}"
                unsettled -= int(tied.sum())  # the advice below is not theirs either
            unreached = self._classes_no_fit_row_gets(target_class, ~found & searchable)
            if unreached:
                hint += (f" The model puts none of {len(self._pool.pred)} rows given to fit in "
                         f"class {', '.join(map(repr, unreached))}: it may never predict "
                         f"{'it' if len(unreached) == 1 else 'them'}.")
            if non_finite[0]:
                hint += (f" The model gave NaN or infinite probabilities for {non_finite[0]} "
                         "of the rows the search asked it about: narrow feature_range to "
                         "where it answers.")
            if len(non_finite) > 1 and non_finite[1]:  # the likelier cause: first
                hint = (f"The auto-encoder gave NaN or infinite reconstructions of "
                        f"{non_finite[1]} of the rows the search asked it about: its term is "
                        "undefined there (check it on those rows, or narrow feature_range). "
                        + hint)
            if self.search_ == "fista" and unsettled > 0 and self._refines():
                hint += (" The gradient-free search, which search='auto' runs for the rows the "
                         "gradient search leaves, found none either.")
            elif self.search_ == "fista" and unsettled > 0:
                hint += (" The gradient-free search (search='neighbors'), which starts from "
                         "training rows of a wanted class, may find them.")
            elif self.search_ == "neighbors" and unsettled > 0 and \
                    self._exact_trees() is not None:
                seconds = min(self.max_time, _EXACT_FALLBACK_SECONDS)
                n_holed = int((holed & ~stuck & ~proven).sum())
                timed_out = n_missing - int(stuck.sum()) - int(proven.sum()) - n_holed
                if timed_out <= 0 and not stuck.any() and not n_holed:  # a proof for each
                    hint = ""
                hint += (" The exact search, which search='auto' runs for them on this tree "
                         "model, " + ", and ".join(
                             part for part in (
                                 f"proved for {int(proven.sum())} that none exists "
                                 f"({_CONSTRAINTS})" if proven.any() else "",
                                 _holed_hint(n_holed) if n_holed else "",
                                 f"found none within {seconds:g} s a row for {timed_out} "
                                 "(a time limit: on a busier machine, or another run, it may "
                                 "find more or fewer; search='exact' takes max_time, and may "
                                 "find them)"
                                 if timed_out > 0 else "") if part) + ".")
            if unsettled > 0 and (self.immutable_mask_.any()
                                            or np.any(self.directions_ != 0)):
                hint += (" immutable_features and directions may also leave no change that "
                         "reaches the class: try without them.")
            rows = np.flatnonzero(~found & searchable)
            shown = ", ".join(str(r) for r in rows[:10]) + (", ..." if rows.size > 10 else "")
            if index is not None and not np.array_equal(np.asarray(index, dtype=object),
                                                        np.arange(len(index))):
                # a request's own label, where the DataFrame has one (a service's log)
                shown += " by position; index " + ", ".join(
                    repr(label) for label in index[rows[:10]]) + \
                    (", ..." if rows.size > 10 else "")
            message = (f"{type(self).__name__} found no {mode} for {n_missing} of "
                       f"{int(searchable.sum())} instances searched (X's rows {shown}); their "
                       f"rows are NaN (see `found`). {hint.strip()}")
            logger.log(logging.INFO if self.verbose >= 1 else logging.DEBUG, message)
            warn(message, ExplanationNotFoundWarning)
        gap = None
        if self.search_ == "exact" or any(r.gap is not None for r in results):
            gap = np.concatenate([np.full(len(r.found), np.nan) if r.gap is None else r.gap
                                  for r in results])
        if self.search_ == "exact" and np.any(found & np.isnan(gap)):
            warn(f"{int(np.sum(found & np.isnan(gap)))} of {int(found.sum())} answers of the "
                 "exact search are the gradient-free search's, with no proven gap (NaN): their "
                 "rows have missing values, or categories no answer takes (none of fit's), "
                 "whose way through the trees the exact search does not model.")
        if self.search_ == "exact" and np.any(found & (gap > 0)):
            unproven = found & (gap > 0)
            worst = float(np.max(gap[unproven]))
            bound = f"here up to {1.0 / (1.0 - worst):.3g} times" if worst < 1 else \
                "here without a bound: a gap of 1"
            warn(f"{int(unproven.sum())} of {int(found.sum())} answers of the exact search are "
                 f"not proven closest within max_time={self.max_time}: the closest answer "
                 "is at least (1 - gap) times each one's distance, so each may be 1 / (1 - "
                 f"gap) times as far as the closest ({bound}). A larger max_time narrows the "
                 "gaps.")
        names = getattr(self, "feature_names_in_", None)
        explanation = np.concatenate([r.explanation for r in results])
        if common["mode"].requires_change:
            self._warn_broken_one_hot(explanation[found], names)
            self._warn_of_rare_pairs(X[found], explanation[found])
        background = np.clip(common["no_info_val"], common["lower"], common["upper"])
        if mode == "PP":
            # the search's own: an instance's value outside the range widens it (one row per
            # instance then), so that a PP's perturbation, changes and metrics agree with
            # its distance
            background = widened_background(common["no_info_val"], common["lower"],
                                            common["upper"], X)
        pair_held = None
        if mode == "PP":  # missing cells and held features are not kept by the search
            directions = self.directions_
            held = np.isnan(X) | self.immutable_mask_ | \
                ((directions > 0) & (background < X)) | ((directions < 0) & (background > X))
            self._warn_empty(found & np.all((explanation == background) | held, axis=1))
            pair_held = self._held_by_rare_pairs(X, explanation, background, found & ~held.all(
                axis=1), held, explained)
        shown_X, shown_explanation, encoded = X, explanation, None
        if self._answers_in_float32():  # the rows the model was asked about
            shown_X, shown_explanation = X.astype(np.float32), explanation.astype(np.float32)
        codec = self._codec
        if codec is not None and (codec.is_frame_ or codec.has_categorical):
            with filters_held():
                shown_X = codec.decode(X, for_model=False, index=index)
                shown_explanation = codec.decode(explanation, for_model=False, index=index)
                encoded = {"X": X, "explanation": explanation,
                           "categorical": codec.categorical_, "background": codec.decode(
                               np.atleast_2d(background), for_model=False)}
                if given is not None:
                    codec.keep_given_cells(shown_X, given, np.ones(X.shape, dtype=bool))
                    codec.keep_given_cells(shown_explanation, given, explanation == X)
        ranked = {}
        if hasattr(self, "n_counterfactuals"):
            ranked = self._ranked_answers(results, index, encoded, common["mode"],
                                          explanation_pred, given)
            self._warn_of_fewer_answers(ranked["counterfactual_distance"], found)
        return Explanation(
            mode=mode, X=shown_X, X_pred=self.classes_[explained], X_proba=proba,
            explanation=shown_explanation,
            explanation_pred=explanation_pred, explanation_proba=explanation_proba,
            found=found, distance=np.concatenate([r.distance for r in results]),
            c=np.concatenate([r.best_c for r in results]),
            background=background,
            classes=self.classes_, feature_names=None if names is None else list(names),
            input_shape=getattr(self._backend, "input_shape", None), index=index,
            encoded=encoded,
            gap=gap, target_class=target_class,
            directions=self.directions_.copy() if self.directions_.any() else None,
            immutable=self.immutable_mask_.copy() if self.immutable_mask_.any() else None,
            pair_held=pair_held, decimals=self.decimals_.copy(),
            feature_range=tuple(np.array(bound, dtype=float) for bound in self.feature_range_),
            **ranked, meta={"n_model_rows": n_model_rows, "search": self.search_,
                  "n_iterations": np.concatenate([r.n_iterations for r in results]).tolist()}
            | ({"seconds": np.concatenate([r.seconds for r in results]).tolist()}
               if self.search_ == "exact" else {}))

    def _held_by_rare_pairs(self, X, explanation, background, found, held, explained):
        """A PP's kept categories that only the rare-pair rule keeps: setting one back to
        its background alone pairs it with another of the PP's categories that fit's rows
        (almost) never hold together (a Female's relationship "Wife" with the background's
        "Husband"), and the model's class stays without it, and without all of them at
        once. The class does not rest on them: ``Explanation.held`` lists them apart (mask
        of shape X.shape, or None)."""
        pairs = getattr(self, "_category_pairs", None)
        if pairs is None or not found.any():
            return None
        background = np.broadcast_to(background, X.shape)
        kept = found[:, None] & self.categorical_mask_ & ~held & \
            (explanation != background) & ~np.isnan(explanation)
        rows, columns = np.nonzero(kept)
        if not rows.size:
            return None
        trials = explanation[rows].copy()
        trials[np.arange(rows.size), columns] = background[rows, columns]
        rare = pairs.created(trials, X[rows])
        if not rare.any():
            return None
        rows, columns, trials = rows[rare], columns[rare], trials[rare]
        backend = self._get_backend()
        stays = backend.predict(trials) == explained[rows]
        mask = np.zeros(X.shape, bool)
        mask[rows[stays], columns[stays]] = True
        # and without all of a row's together: two that each hold the class alone (either
        # suffices) are what it rests on
        several = np.flatnonzero(mask.sum(axis=1) > 1)
        if several.size:
            together = np.where(mask[several], background[several], explanation[several])
            mask[several[backend.predict(together) != explained[several]]] = False
        return mask if mask.any() else None

    def _linearly_unreachable(self, X, rows, common, target_class):
        """Which of the ``rows`` of ``X`` (a mask) provably have no answer: the model's
        decision is affine in the features (see :mod:`._linear_proofs`) and no row of their
        admissible box reaches a wanted class. False everywhere for other models, a PP, or a
        table whose categories may change (a row's immutable ones are held: see
        :meth:`_linear_decision`)."""
        unreachable = np.zeros(len(X), bool)
        if not rows.any() or not common["mode"].requires_change:
            return unreachable
        lower = np.broadcast_to(common["lower"], X.shape[1:]).astype(float)
        upper = np.broadcast_to(common["upper"], X.shape[1:]).astype(float)
        no_info_val = np.broadcast_to(common["no_info_val"], X.shape[1:]) \
            if common["mode"].name == "PN" else None
        targets = None if target_class is None else np.asarray(target_class, dtype=object)
        for held, group in self._held_category_groups(X, rows):
            linear = self._linear_decision(lower, upper, X[group], held)
            if linear is None:
                continue
            W, b = linear
            self._mark_unreachable(unreachable, X, group, W, b, (lower, upper, no_info_val),
                                   targets)
        return unreachable

    def _held_category_groups(self, X, rows):
        """``(held, rows)`` pairs: the ``rows`` of ``X`` (a mask) by the categories they
        hold (``held``: a row whose categorical columns are those, None without any), where
        every categorical column is immutable; none where some category may change."""
        categorical = self.categorical_mask_
        if not categorical.any():
            return [(None, rows)]
        if not self.immutable_mask_[categorical].all():
            return []
        codes = X[:, categorical]
        groups = {}
        for i in np.flatnonzero(rows & ~np.isnan(codes).any(axis=1)):
            groups.setdefault(codes[i].tobytes(), []).append(i)
        masks = []
        for members in groups.values():
            mask = np.zeros(len(X), bool)
            mask[members] = True
            masks.append((X[members[0]], mask))
        return masks

    def _mark_unreachable(self, unreachable, X, rows, W, b, bounds, targets):
        """Set ``unreachable`` where a row of ``X`` among ``rows`` (a mask) provably has no
        answer by the affine decision ``W z + b`` within ``bounds`` (lower, upper,
        no_info_val)."""
        lower, upper, no_info_val = bounds
        for i, k in zip(np.flatnonzero(rows), largest_score(W, b, X[rows])):
            if np.isnan(X[i]).any():
                continue
            box = admissible_box(X[i], lower, upper, self.immutable_mask_,
                                 self.directions_, no_info_val)
            wanted = [j for j in range(len(self.classes_)) if j != k]
            if targets is not None and targets[i] is not None:
                wanted = [j for j in wanted if self.classes_[j] == targets[i]]
            unreachable[i] = not any(reaches_class(W, b, box, j) for j in wanted)

    def _linear_decision(self, lower, upper, rows, held=None):
        """``(W, b)``: the model's decision ``W z + b`` in the search's features, where it is
        affine (:func:`~._linear_proofs.affine_decision`) and ``predict`` gives the class of
        its largest score, by construction and at ``rows`` and random rows between ``lower``
        and ``upper``; None for other models, a threshold or a table of categories.

        With ``held``, a row whose categorical columns every one of ``rows`` holds (all
        immutable), the decision on rows holding them (a linear model after a one-hot
        encoding is affine in the numeric columns there; ``W`` is 0 at the categories)."""
        decision = getattr(self.estimator_, "decision_function", None)
        codec = getattr(self, "_codec", None)
        categorical = self.categorical_mask_
        if decision is None or self.classes_ is None or \
                (codec is not None and codec.has_categorical and held is None) or \
                not (np.isfinite(lower).all() and np.isfinite(upper).all()):
            return None

        def holding(Z):
            if held is None:
                return Z
            Z = np.array(Z, dtype=float)
            Z[:, categorical] = held[categorical]
            return Z
        shift = 0.0
        if getattr(self, "_predict_in_search", False) or \
                getattr(self, "_decision_offset", None) is not None or \
                not predicts_largest_score(self.estimator_):
            shift = self._threshold_on_decision(rows)
            if shift is None:
                return None

        def scores(Z):
            # (in float64 where the model is asked in float32: affine to within its
            # rounding, which the answers' check by predict settles)
            Z = holding(Z)
            with ignoring_feature_name_warnings(), catching_warnings():
                return decision(Z if self._decode in (
                    None, _as_float32, _as_float32_in_float32_calls) else self._decode(Z))

        affine = affine_decision(scores, len(lower), (lower + upper) / 2, (upper - lower) / 4)
        if affine is None:
            return None
        W, b = affine
        if len(W) != (1 if len(self.classes_) == 2 else len(self.classes_)):
            return None
        b = b - shift
        # predict the largest score's class over the box too, not only at the rows
        rng = np.random.default_rng(0)
        probe = holding(np.vstack([rows[~np.isnan(rows).any(axis=1)][:200],
                                   rng.uniform(lower, upper, (200, len(lower)))]))
        if not np.array_equal(largest_score(W, b, probe),
                              self._get_backend().predict(probe)):  # (class positions)
            return None
        return W, b

    def _threshold_on_decision(self, rows):
        """For a binary threshold classifier (``FixedThresholdClassifier``,
        ``TunedThresholdClassifierCV``), the value of its decision function at which its
        ``predict`` turns to the second class: its threshold on the decision function, or
        on a probability that is the decision's logistic function (checked at ``rows``);
        None for any other model."""
        rule = decision_threshold(self.estimator_)
        if rule is None or len(self.classes_) != 2:
            return None
        inner, positive, response, threshold = rule
        if response == "decision_function":
            return threshold if positive == 1 else -threshold
        if not 0.0 < threshold < 1.0:
            return None
        sample = rows[~np.isnan(rows).any(axis=1)][:50]
        if len(sample) == 0:
            return None
        try:
            with ignoring_feature_name_warnings(), catching_warnings():
                warnings.simplefilter("ignore")
                Z = sample if self._decode in (None, _as_float32_in_float32_calls) \
                    else self._decode(sample)
                scores = np.ravel(self.estimator_.decision_function(Z))
                proba = np.asarray(inner.predict_proba(Z), dtype=float)[:, 1]
        except Exception:  # noqa: BLE001 -- a model without them: no threshold here
            return None
        if not np.allclose(proba, expit(scores), rtol=1e-9, atol=1e-12):
            return None
        t = threshold if positive == 1 else 1.0 - threshold
        return float(np.log(t) - np.log1p(-t))

    def _complete_linearly(self, backend, problem, result):
        """``search="auto"`` on a linear model (:meth:`_linear_decision`): the rows the
        searches leave unanswered get the closest answer of their admissible box by a
        mixed-integer program (:func:`~._linear_proofs.closest_of_class`), each row within
        ``max_time`` but at most ``_EXACT_FALLBACK_SECONDS`` for all its programs. Such
        answers need moves no gradient step or training row reaches: a PN's across the
        no-information value on several features at once. The program's margin on the
        scores grows where the model's probabilities (``kappa``) or ``predict`` refuse its
        answer.

        Where the distance is the whole cost (no ``plausibility``, no auto-encoder term)
        and each row has one answer so far (the gradient search's: with several asked, the
        gradient-free steps add the others after), the rows answered get the program's
        answer too where it is closer: a search's answer on a linear model could
        be twice as far (a hinge loss's flat probabilities, constraints that bend the
        gradient's path); not with squares in the distance (a PN's elastic net), whose
        programs cost many times the search."""
        if self.search != "auto" or not problem.mode.requires_change or \
                (problem.categorical is not None and problem.categorical.any()):
            return result
        missing = unanswered(problem, result)
        # (squares, a PN's elastic net, cost the program a tangent per step and a PN's gaps
        # binaries: 300 features took 1.8 s a row, 18 times the search's own time)
        if self.plausibility == 0 and getattr(self, "gamma", 0) == 0 and \
                result.answers is None and not np.any(np.asarray(problem.l2_weight) > 0):
            missing = np.flatnonzero(np.ones(len(result.found), bool)
                                     if problem.searchable is None else problem.searchable)
        if problem.missing is not None:
            missing = missing[~problem.missing[missing].any(axis=1)]
        if missing.size == 0:
            return result
        shape = problem.x0.shape
        lower = np.min(np.broadcast_to(problem.lower, shape), axis=0).astype(float)
        upper = np.max(np.broadcast_to(problem.upper, shape), axis=0).astype(float)
        linear = self._linear_decision(lower, upper, problem.x0[missing])
        if linear is None:
            return result
        W, b = linear
        sub = subset_problem(problem, missing)
        batch = _Batch(backend, sub, self._whole_columns())
        # integer-valued columns (decimals 0) stay whole: rounded after, a move of 8 to
        # 8.03 became 9
        whole = self._whole_columns() | (np.asarray(self.decimals_) == 0)
        seconds = min(self.max_time, _EXACT_FALLBACK_SECONDS)
        rounds = bool(np.any(np.asarray(self.decimals_) > 0))
        extra = None
        for i in range(len(missing)):
            row = missing[i]
            found = self._closest_linear_answer(batch, i, W, b, whole,
                                                time.monotonic() + seconds)
            # an answered row's, in the data's decimals before it competes
            if found is not None and rounds and result.found[row]:
                found = self._to_decimals(backend, sub, found)
            if found is None or not found.found[i] or (
                    result.found[row] and not found.distance[i] <
                    result.distance[row] * (1.0 - 1e-9)):
                continue
            if extra is None:
                extra = found
            else:
                take_answers(extra, found, np.array([i]), keep_c=True)
        if extra is None:
            return result
        result = replace(result)
        take_answers(result, extra, missing)
        return result

    def _closest_linear_answer(self, batch, i, W, b, whole, deadline):
        """The closest answer of the ``i``-th instance of ``batch``'s problem by
        :func:`~._linear_proofs.closest_of_class` over its wanted classes, as
        :meth:`_Batch.result`'s (found for that instance alone), or None.

        The programs ask a margin on the scores; the probabilities' ``kappa`` (and a
        ``predict`` of its own) need more than the two classes' ``2 atanh(kappa)`` where
        others share the probability: per class, the margin grows until the model takes an
        answer (or it is no closer than another class's), then is bisected back towards the
        least it takes, within ``deadline``."""
        problem = batch.problem
        box = self._box_of(problem, i)
        tolerance = 1e-6 * (np.abs(b).max() + 1.0)
        least = 2.0 * np.arctanh(min(float(problem.kappa), 1.0 - 1e-9))
        # an answer that leaves a class (a PN, "other") need beat only that class by the
        # margin; the other classes only by the rounding tolerance
        beaten = None if problem.mode.wants_target else [int(problem.target[i])]

        def answer_at(k, margin):
            """The program's answer of class ``k`` at ``margin`` as the model takes it (a
            one-row result, or None) and its distance (inf where there is none)."""
            left = deadline - time.monotonic()
            row = None if left <= 0 else closest_of_class(
                W, b, problem.x0[i], box, k, batch.l1, batch.l2, margin, whole, left,
                beaten, tolerance)
            if row is None:
                return None, np.inf
            owner = np.array([i])
            row = batch.admissible(row[None], owner)
            found = batch.result(row, owner, len(problem.x0))
            distance = float(batch.distance(row, owner)[0])
            return (found if found.found[i] else None), distance

        best, best_distance = None, np.inf
        for k in self._wanted_classes(problem, i):
            refused, taken, answer = least, None, None
            for growth in (0.0, 0.1, 0.5, 1.5, 4.0, 20.0):
                margin = least * (1 + growth) + tolerance * 10 ** (3 * growth)
                answer, distance = answer_at(k, margin)
                if answer is not None:
                    taken = margin
                    break
                # a larger margin only moves the answer farther
                if distance >= best_distance or time.monotonic() >= deadline:
                    break
                refused = margin
            if answer is None:
                continue
            if taken > least + tolerance:  # the least margin the model takes, within a few %
                for _ in range(4):
                    margin = (refused + taken) / 2
                    closer, _ = answer_at(k, margin)
                    if closer is None:
                        refused = margin
                    else:
                        answer, taken = closer, margin
            if answer.distance[i] < best_distance:
                best, best_distance = answer, answer.distance[i]
        return best

    @staticmethod
    def _wanted_classes(problem, i):
        """The class positions an answer for the ``i``-th instance of ``problem`` may have."""
        target = int(problem.target[i])
        if problem.mode.wants_target:
            return [target]
        return [k for k in range(problem.n_classes) if k != target]

    def _box_of(self, problem, i):
        """:func:`~._linear_proofs.admissible_box` of the ``i``-th instance of ``problem``,
        for a PN :func:`~._linear_proofs.past_the_mirror`."""
        x = problem.x0[i]

        def of_row(value):
            return np.asarray(value)[i] if np.ndim(value) == 2 else \
                np.broadcast_to(value, x.shape)

        frozen = problem.frozen()
        held = np.zeros(x.shape, bool) if frozen is None else of_row(frozen)
        directions = np.zeros(x.shape) if problem.directions is None else problem.directions
        no_info_val = of_row(problem.no_info_val) if problem.mode.name == "PN" else None
        box = admissible_box(x, of_row(problem.lower).astype(float),
                             of_row(problem.upper).astype(float), held, directions,
                             no_info_val)
        return box if no_info_val is None else past_the_mirror(box, x, no_info_val)

    def _room_to_move(self, X, common):
        """Whether each row of ``X`` has a feature that may change at all: mutable, not
        missing, with room in the feature range in an allowed direction (for a PN, away
        from the no-information value). Categorical columns count as having room."""
        lower, upper = np.broadcast_to(common["lower"], X.shape), \
            np.broadcast_to(common["upper"], X.shape)
        directions = self.directions_
        if common["mode"].name == "PN":
            v = np.broadcast_to(common["no_info_val"], X.shape)
            radius = np.abs(X - v)
            up, down = upper > v + radius, lower < v - radius
        elif common["mode"].name == "PP":
            return np.ones(len(X), bool)
        else:
            up, down = upper > X, lower < X
        room = (up & (directions >= 0)) | (down & (directions <= 0)) | self.categorical_mask_
        room &= ~self.immutable_mask_ & ~np.isnan(X)
        return room.any(axis=1)

    def _warn_of_fewer_answers(self, distance, found):
        """A word where found instances got fewer answers than ``n_counterfactuals`` asked
        (the instances without any are named by the not-found warning)."""
        k = distance.shape[1]
        counts = np.isfinite(distance).sum(axis=1)
        short = found & (counts < k)
        if k > 1 and short.any():
            warn(f"{int(short.sum())} of {len(found)} instances got fewer than the {k} "
                 f"counterfactuals asked ({int(counts[short].min())} to "
                 f"{int(counts[short].max())}): no other admissible answer that differs from "
                 "theirs was found, also with the features theirs change held at the "
                 "instance's values (see counterfactual_distance: NaN past their last).",
                 ExplanationNotFoundWarning)

    def _as_asked(self, trees):
        """The trees read (or None) as this call asks the model: in float32, or as read
        (a copy for each: calls in other threads keep theirs)."""
        if trees is not None and self._asks_in_float32():
            return trees.asked_in_float32()
        return trees

    def _asks_in_float32(self):
        """Whether the model is asked in float32: always for a function that takes only
        float32, else where an array of float32 rows was given to ``fit`` and the rows
        explained (or fitted) are one too."""
        decode = getattr(self, "_decode", None)
        return decode is _as_float32 or (decode is _as_float32_in_float32_calls
                                         and _FLOAT32_CALL.get())

    def _answers_in_float32(self):
        """Whether the answers are given in float32: the rows explained are an array of
        float32, as those given to ``fit`` were, and the model is asked so (float64 rows
        keep their own values, their answers checked in float64)."""
        return getattr(self, "_float32_rows", False) and self._asks_in_float32() and \
            _FLOAT32_CALL.get()

    def _ranked_answers(self, results, index, encoded, mode, explanation_pred, given=None):
        """``counterfactuals``, ``counterfactual_distance`` and ``counterfactual_pred`` of the
        Explanation: every answer of every instance, closest first, in the form of ``X`` (a
        DataFrame indexed by (row of ``X``, rank), else an array of shape (n_samples, k,
        n_features)), and the class of each."""
        answers = np.concatenate([r.explanation[:, None] if r.answers is None else r.answers
                                  for r in results])
        distance = np.concatenate([r.distance[:, None] if r.answer_distance is None
                                   else r.answer_distance for r in results])
        n, k, d = answers.shape
        found = np.isfinite(distance)
        pred = np.full((n, k), None, dtype=object)
        if mode.wants_target or k == 1:  # every answer of an instance is of one class
            pred[found] = np.broadcast_to(explanation_pred[:, None], (n, k))[found]
        elif found.any():
            pred[found] = self.classes_[self._get_backend().predict(answers[found])]
            pred[:, 0] = explanation_pred
        shown = answers
        codec = self._codec
        if codec is not None and codec.is_frame_:
            import pandas as pd

            with filters_held():
                ranks = ranked_index(pd.RangeIndex(n) if index is None else index, k)
                shown = codec.decode(answers.reshape(n * k, d), for_model=False, index=ranks)
                if given is not None:
                    rows = np.repeat(np.arange(n), k)
                    codec.keep_given_cells(shown, given.iloc[rows],
                                           answers.reshape(n * k, d) == encoded["X"][rows])
        elif codec is not None and codec.has_categorical:
            shown = codec.decode(answers.reshape(n * k, d), for_model=False).reshape(n, k, d)
        elif self._answers_in_float32():
            shown = answers.astype(np.float32)
        if encoded is not None:
            encoded["counterfactuals"] = answers
        return {"counterfactuals": shown, "counterfactual_distance": distance,
                "counterfactual_pred": pred}

    def transform(self, X):
        """The explanation of each row of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The instances to explain.

        Returns
        -------
        X_explained : ndarray or DataFrame of shape (n_samples, n_features)
            Rows are missing values (NaN) where no explanation was found (with a warning).
            Follows ``set_output``: with ``transform="pandas"``, a DataFrame with the index,
            columns and dtypes of a DataFrame ``X``; by default an array, of objects when
            there are categorical columns.
        """
        explanation = self.explain(X).explanation
        output = _output_config(self)
        if hasattr(explanation, "columns") and output == "polars":
            # (scikit-learn would make the object array below Object columns)
            return to_polars(explanation, getattr(self, "_polars_enums", None))
        if hasattr(explanation, "columns") and output != "pandas":
            if self.categorical_mask_.any():
                return explanation.to_numpy(dtype=object)
            return explanation.to_numpy(dtype=float, na_value=np.nan)
        return explanation

    def score(self, X, y=None):
        """Quality of the explanations of ``X``: higher is better, in [0, 1].

        The mean over instances of ``found * sparsity * proximity``
        (:func:`skcem.metrics.cem_score`): 0 for an instance without explanation (and for a PP
        that keeps nothing), rising as the explanation involves fewer features and moves them
        less, relative to the range of the data given to ``fit`` (not to ``feature_range``, so
        that scores compare across its values). This lets ``GridSearchCV`` tune the explainer
        without a scoring argument.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The instances to explain.
        y : None
            Ignored: instances are explained against the model's own predictions, so that
            ``GridSearchCV``'s true labels cannot reward a model's mistakes with empty
            explanations.

        Returns
        -------
        score : float
            The mean score of the instances' explanations.
        """
        # (skcem's own warnings only, in this thread: explain may run for minutes, in
        # threads of a search)
        with silencing(ExplanationNotFoundWarning), \
                silencing(SkcemWarning, r".* have values outside"):
            # Cross-validation folds often reach beyond the range learned on the others.
            explanation = self.explain(X)
        return metrics.cem_score(explanation, getattr(self, "_data_range", self.feature_range_))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = not is_prefitted(self.estimator)
        tags.input_tags.allow_nan = accepts_missing_values(self.estimator) is True
        return tags


def _equal_settings(value, default):
    """Whether a parameter holds its default, a list for a tuple or a numpy number alike."""
    try:
        return np.shape(value) == np.shape(default) and \
            bool(np.all(np.asarray(value, dtype=object) == np.asarray(default, dtype=object)))
    except (TypeError, ValueError):
        return False
