"""GradientSimilarityExplainer: which training instances a model finds alike, by loss gradients."""

import itertools
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, fields
from numbers import Integral

import numpy as np
from joblib import Parallel, delayed, effective_n_jobs
from sklearn.base import (BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin,
                          _fit_context, is_classifier, is_regressor)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d, validate_data
from threadpoolctl import threadpool_limits

from ._base import ExplainerMixin
from ._explanation import JSONMixin, _to_builtin, ranked_index
from ._gradients import (detect_output_kind, first_embedding_size, framework_module,
                         input_dtype, is_deep_model, is_keras_model)
from ._gradients._base import ignoring_feature_name_warnings
from ._labels import check_class_labels, check_outputs_follow_labels, class_indices
from ._param_grads import check_supported, make_param_gradients
from ._param_grads._factors import gradient_dot, gradient_sq_norms, stack_gradients
from ._param_grads._projection import GradientProjection
from ._param_grads._sklearn import steps_before_last, transformed_by
from ._progress import progress_bar
from ._validation import (accepts_missing_values, align_columns, align_rows,
                          check_not_documents, column_names, fitted_columns, from_polars,
                          is_documents, is_prefitted, missing_values_refused, refuse_a_class,
                          resolve_estimator, validate_float_data)
from ._warnings import warn
from ._wrappers import frozen_inner, loss_inner


def _safe_divide(numerator, denominator):
    """``numerator / denominator``, and 0 where the denominator is 0 (a zero gradient)."""
    out = np.zeros(np.broadcast_shapes(numerator.shape, denominator.shape))
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


# grad_asym_dot's denominator ||g_b||^2 + 1e-7, as the reference: a training point the model
# fits perfectly has a float32 gradient that is rounding noise, and dividing by its exact
# squared norm would give it unbounded scores.
_ASYM_STABILITY = 1e-7


# Training rows scored at once against a batch of test rows when their gradients are stored:
# the scores of a batch stay at batch_size * _TRAIN_BLOCK floats, whatever the training set.
_TRAIN_BLOCK = 4096
# Blocks of at most this many rows are multiplied on one BLAS thread (see _blas_threads).
_THREADED_BLOCK = 1024
# Training rows a Pipeline's earlier steps transform at once, batch_size by batch_size after:
# a ColumnTransformer costs milliseconds a call whatever its rows (20,000 Adult rows in
# batches of 64: 5 s, against 0.15 s at once).
_TRANSFORMED_BLOCK = 4096

# Bytes of test gradients kept at once. Test rows are scored in chunks whose gradients fit in
# this budget, each chunk against every block of training rows: training gradients that are not
# stored are computed once per chunk, so once for any test set of up to thousands of rows.
_TEST_GRADIENT_BUDGET = 128 * 2**20

# Rows given to fit whose predictions are compared with the order of their labels.
_LABEL_ORDER_ROWS = 256


def _one_column_flattened(y):
    """Class labels of one column flattened, with scikit-learn's ``DataConversionWarning``."""
    array = np.asarray(y)
    if array.ndim == 2 and array.shape[1] == 1:
        return column_or_1d(array, warn=True)
    return y


def similarity(test_grads, train_grads, sim_fn, train_sq_norms=None):
    """Scores between rows of two gradient matrices (Charpiat et al., 2019).

    Either may also be :class:`~skcem._param_grads._factors.GradientFactors`: dense layers
    as (input, output gradient) pairs, scored without building their gradients.

    ``grad_cos`` is the exact cosine: a gradient of norm 0 scores 0. (The reference adds 1e-7
    to the product of norms, which shrinks the scores of confidently classified instances,
    gradient norms near 1e-4, towards 0.) ``grad_asym_dot`` is the reference's
    ``g_a . g_b / (||g_b||^2 + 1e-7)``, bounded for perfectly fitted training points.
    """
    scores = gradient_dot(test_grads, train_grads)
    if sim_fn == "grad_dot":
        return scores
    if train_sq_norms is None:
        train_sq_norms = gradient_sq_norms(train_grads)
    test_sq_norms = gradient_sq_norms(test_grads) if sim_fn == "grad_cos" else None
    return _normalised(scores, sim_fn, test_sq_norms, train_sq_norms)


def _normalised(products, sim_fn, test_sq_norms, train_sq_norms):
    """The scores of ``sim_fn`` from the dot products and squared norms of the gradients."""
    if sim_fn == "grad_dot":
        return products
    if sim_fn == "grad_asym_dot":
        return products / (train_sq_norms[None, :] + _ASYM_STABILITY)
    # a cosine: in [-1, 1] also where float32 gradients (projected ones) round past it
    return np.clip(_safe_divide(products, np.sqrt(test_sq_norms)[:, None]
                                * np.sqrt(train_sq_norms)[None, :]), -1.0, 1.0)


def _target_width(y):
    """Targets per row of a regression's ``y`` (one for a 1-D ``y``)."""
    y = np.asarray(y)
    return 1 if y.ndim == 1 else int(np.prod(y.shape[1:]))


def _merge_top_k(scores, indices, block_scores, block_indices, k):
    """The ``k`` best of two candidate sets, by decreasing score, then increasing index.

    ``indices`` come before ``block_indices`` and each set is in that order already, so a stable
    sort keeps ties in index order: the result is that of a stable sort of all the scores.
    """
    scores = np.hstack([scores, block_scores])
    indices = np.hstack([indices, np.broadcast_to(block_indices, block_scores.shape)])
    n_rows, n_candidates = scores.shape
    if k >= n_candidates or np.isnan(scores).any():
        best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    else:
        # Sorting only what may be kept: the scores at or above each row's k-th largest
        # (ties included), by row, decreasing score, then position (a full sort of every
        # block took 80% of kneighbors: 20,000 training rows, 500 test rows).
        kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1]
        rows, columns = np.nonzero(scores >= kth[:, None])
        order = np.lexsort((columns, -scores[rows, columns], rows))
        rows, columns = rows[order], columns[order]
        rank = np.arange(rows.size) - np.searchsorted(rows, np.arange(n_rows))[rows]
        best = columns[rank < k].reshape(n_rows, k)
    return np.take_along_axis(scores, best, axis=1), np.take_along_axis(indices, best, axis=1)


def _chunk_rows(bytes_per_row, batch_size):
    """Test rows scored together: as many whole batches as fit in ``_TEST_GRADIENT_BUDGET``
    bytes of gradients, at least one."""
    batches = int(_TEST_GRADIENT_BUDGET // max(bytes_per_row * batch_size, 1))
    return batch_size * max(batches, 1)


def _nbytes(test):
    """Bytes of test gradients: factors, projections or fused test factors with norms."""
    if isinstance(test, tuple):  # (fused factors, squared norms)
        (inputs, deltas, rest), sq_norms = test
        return sum(int(np.prod(t.shape)) * 4 for t in (*inputs, *deltas, rest)) + sq_norms.nbytes
    return test.nbytes


def _concatenate_test(parts, n_rows, fused, gradients):
    """The test gradients of consecutive runs of ``n_rows`` rows in all, as one; factors and
    projections are written into their arrays as they come (``parts`` may be a generator)."""
    if not fused:
        return stack_gradients(parts, n_rows)
    parts = list(parts)
    if len(parts) == 1:
        return parts[0]
    return (gradients.concatenate_test([factors for factors, _ in parts]),
            np.concatenate([sq_norms for _, sq_norms in parts]))


def _counting(blocks, bar, step):
    """``blocks``, advancing ``bar`` by ``step`` after each."""
    for block in blocks:
        yield block
        bar.update(step)


def _block_gradients(explainer, X, y):
    """Gradients of a block of rows, in this process or a joblib worker."""
    return explainer._grads(X, y)


@dataclass
class SimilarityExplanation(JSONMixin):
    """Similarity of test instances to the training set.

    Attributes
    ----------
    scores : ndarray of shape (n_test, n_train)
        Score of each training instance for each test instance (higher: more similar).
    ordered_indices : ndarray of shape (n_test, n_train)
        Training indices by decreasing score.
    most_similar : ndarray or DataFrame of shape (n_test, n_features)
        The most similar training instance of each test instance (rows of a DataFrame where
        ``fit`` took a table with text for a Pipeline).
    least_similar : ndarray or DataFrame of shape (n_test, n_features)
        The least similar training instance of each test instance.
    X : ndarray or DataFrame of shape (n_test, n_features)
    target : ndarray of shape (n_test,) or (n_test, n_outputs)
        The targets whose loss gradients were compared (predictions unless given).
    sim_fn : str
    target_given : bool
        Whether ``target`` was given to ``explain`` (else it is the model's predictions).
    train_labels : pandas.Index or None
        The labels of the training rows (the index of the DataFrame given to ``fit``); None
        for an array.
    index : pandas.Index or None
        The labels of the test rows (the index of a DataFrame ``X``); None for an array.
    feature_names : list of str or None
        The names of the columns ``fit`` saw (its ``feature_names_in_``), which plots show;
        None for an array.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from skcem import GradientSimilarityExplainer
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = LogisticRegression(max_iter=1000).fit(X, y)
    >>> exp = GradientSimilarityExplainer(clf).fit(X, y).explain(X[:2])
    >>> exp.scores.shape, exp.ordered_indices.shape
    ((2, 150), (2, 150))
    >>> exp.to_frame(n_most=3).shape  # (test, rank) rows: train_index, score
    (6, 2)
    """

    scores: np.ndarray
    ordered_indices: np.ndarray
    most_similar: np.ndarray
    least_similar: np.ndarray
    X: np.ndarray
    target: np.ndarray
    sim_fn: str
    target_given: bool = True
    train_labels: object = None
    index: object = None
    feature_names: list | None = None

    def to_dict(self):
        """A dict of plain Python values, ready for ``json``."""
        return {f.name: _to_builtin(getattr(self, f.name)) for f in fields(self)}

    def to_frame(self, n_most=5):
        """The most similar training instances of each test instance, as a table.

        Parameters
        ----------
        n_most : int, default=5
            Training instances per test instance, most similar first (at most all of them).

        Returns
        -------
        frame : pandas.DataFrame
            Indexed by (``test``, ``rank``): the test instance's label (a DataFrame's, else
            its row) and the rank from 0; columns ``train_index`` (the training instance's
            position in the data given to ``fit``), ``train_label`` (its label in that
            DataFrame's index, where ``train_labels`` holds them) and ``score`` (see the
            class's example).
        """
        if not isinstance(n_most, Integral) or n_most < 1:
            raise ValueError(f"`n_most` must be a positive integer; got {n_most!r}.")
        import pandas as pd

        n_test, n_train = self.ordered_indices.shape
        n_most = min(int(n_most), n_train)
        indices = self.ordered_indices[:, :n_most]
        columns = {"train_index": indices.ravel()}
        if self.train_labels is not None:
            columns["train_label"] = np.asarray(self.train_labels)[indices.ravel()]
        columns["score"] = np.take_along_axis(self.scores, indices, axis=1).ravel()
        if getattr(self.index, "nlevels", 1) > 1:  # each of its levels, then the rank
            return pd.DataFrame(columns, index=ranked_index(self.index, n_most))
        tests = range(n_test) if self.index is None else self.index
        return pd.DataFrame(columns, index=pd.MultiIndex.from_product(
            [tests, range(n_most)], names=["test", "rank"]))


def _check_regression_targets(y):
    """``y`` as floats, or an error naming a target that is no number, or NaN."""
    try:
        numbers = np.asarray(y, dtype=float)
    except (TypeError, ValueError):
        bad = next(v for v in np.ravel(np.asarray(y, dtype=object)) if not _is_number(v))
        raise ValueError(f"`y` holds values that are not numbers, such as {bad!r}: "
                         "regression targets are numbers.") from None
    if not np.isfinite(numbers).all():  # no loss gradient of theirs
        raise ValueError("`y` holds NaN or infinite targets, whose loss gradients are "
                         "undefined.")
    return numbers


def _is_number(value):
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _holds_text(X):
    """Whether ``X`` is a DataFrame with a column of other values than numbers and truth
    values (text, categories, times)."""
    return hasattr(X, "dtypes") and any(dtype.kind not in "biuf" for dtype in X.dtypes)


def _check_token_ids(model, X):
    """Refuse rows that are no ids of the Embedding a network starts with, in one line (the
    framework fails in its own words, or answers NaN on JAX)."""
    size = first_embedding_size(model)
    if size is None:
        return
    X = np.asarray(X, dtype=float)
    bad = ~np.isfinite(X) | (X != np.round(X)) | (X < 0) | (X >= size)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise ValueError(f"X holds {X[row, column]:g} (row {row}, column {column}), no token id "
                         f"of the Embedding the model starts with (whole numbers 0 to "
                         f"{size - 1}): it cannot look it up.")


def _warn_of_non_finite(scores, what):
    """Warn where ``scores`` (rows of test instances) hold NaN or infinite values: a model
    whose loss or gradient is not finite there (a network's embedding asked for a token id
    past its vocabulary answers NaN on JAX), which a ranking would order anyhow."""
    bad = ~np.isfinite(scores)
    if not bad.any():
        return
    rows = np.flatnonzero(bad.any(axis=1))
    warn(f"{int(bad.sum())} {what} are NaN or infinite (rows {rows[:10].tolist()} of X): the "
         "model's loss or its gradient is not finite there (an Embedding asked for a token "
         "id past its vocabulary?); rankings of them mean nothing.")


def _check_not_documents(X):
    """Refuse documents (1-D text) for a model that is not a Pipeline, which cannot read
    them, in one line; and what :func:`check_not_documents` refuses."""
    if hasattr(X, "tocsr") and hasattr(X, "nnz"):  # scipy's sparse matrices and arrays
        raise TypeError("X is a sparse matrix: GradientSimilarityExplainer takes dense rows. "
                        "Rows a text vectorizer makes stay sparse inside the explainer: give "
                        "the Pipeline of the vectorizer and the model, such as make_pipeline("
                        "HashingVectorizer(), LogisticRegression()), and the documents.")
    if is_documents(X):
        raise ValueError("X is 1-D text (documents); `estimator` is not a Pipeline and takes "
                         "numbers: give a Pipeline whose first step vectorizes the documents, "
                         "as make_pipeline(TfidfVectorizer(), LogisticRegression()), or the "
                         "documents' vectors.")
    check_not_documents(X)


def _not_class_indices(y, n_classes):
    """Where ``y`` holds no index of ``n_classes`` classes."""
    y = np.asarray(y)
    if y.dtype.kind not in "biuf":
        return np.ones(y.shape, bool)
    return (y != np.round(y)) | (y < 0) | (y >= n_classes)


class GradientSimilarityExplainer(ExplainerMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin,
                                  BaseEstimator):
    """Similarity of test to training instances through the model's loss gradients.

    The gradient of the loss with respect to the model's parameters, ``g(x, y)``, is compared
    between a test instance and every training instance: ``grad_dot`` (``g_a . g_b``),
    ``grad_cos`` (cosine) or ``grad_asym_dot`` (``g_a . g_b / ||g_b||^2``). Per-example
    gradients are computed for whole batches at once: for Keras models and PyTorch modules by
    one batched backward pass for dense and 2-D convolution layers (``Dense``, ``Conv2D``;
    ``nn.Linear``, ``nn.Conv2d``: examples must not interact in inference mode) and vectorised
    autodiff for other layers (``tf.vectorized_map``, ``torch.func``); in closed form or by
    numpy back-propagation for ``LogisticRegression``, ``SGDClassifier(loss="log_loss")`` (with
    more than two classes, of its one-vs-rest loss), ``MLPClassifier`` and ``MLPRegressor``,
    and the linear regressors fitted to the squared error (``LinearRegression``, ``Ridge``,
    ``RidgeCV``, ``Lasso``, ``ElasticNet``, their cross-validated and multi-task forms,
    ``Lars``, ``LassoLars``, ``OrthogonalMatchingPursuit``, ``BayesianRidge``,
    ``ARDRegression``, ``SGDRegressor``), without the penalty; for the linear classifiers
    trained on a margin (``LinearSVC``, ``RidgeClassifier``, ``RidgeClassifierCV``,
    ``Perceptron``, ``SGDClassifier`` with the hinge, squared hinge or perceptron loss), of
    that training loss of their decision function on one-vs-rest targets ±1, summed over
    classes, without the penalty. Each row's loss is unweighted: a model fitted with
    ``class_weight`` or ``sample_weight`` scores the gradients of the plain loss (for its
    weighted one, multiply a training row's ``grad_dot`` scores by its weight, divide its
    ``grad_asym_dot`` ones by it; ``grad_cos`` is the same). A ``Pipeline`` ending in one of
    them has its gradients, on the rows its other steps make; such a Pipeline takes a
    DataFrame with text or category columns as it is (``X_train_`` keeps it, its rows
    numbered from 0).

    Parameters
    ----------
    estimator : Keras model, PyTorch module, supported scikit-learn model or None, \
            default=None
        The model. A fitted (or deep-learning) model is used as it is; an unfitted
        scikit-learn model is cloned and fitted on ``fit(X, y)``; None fits a
        ``LogisticRegression`` (classification) or ``Ridge`` (regression). A Pipeline's
        steps, a ``FrozenEstimator`` and a threshold classifier (``FixedThresholdClassifier``,
        ``TunedThresholdClassifierCV``) are read through: the gradients are of the inner
        model's loss, a test instance's default target the threshold classifier's ``predict``.
    loss : "auto", str, Keras loss or callable, default="auto"
        "auto": sparse categorical cross-entropy for classification, mean squared error for
        regression. Other losses are for Keras models (a Keras loss or its name) and PyTorch
        modules (a callable ``loss(outputs, targets)`` on tensors returning one loss per
        example, such as ``nn.CrossEntropyLoss(reduction="none")``; targets are class indices
        for classification) only. ``fit`` tries a given loss on two training rows: one that
        fails there is named in one error.
    sim_fn : {"grad_dot", "grad_cos", "grad_asym_dot"}, default="grad_dot"
        ``grad_cos`` is the exact cosine (0 where a gradient is 0; the reference adds 1e-7 to
        the product of norms, which shrinks the scores of confidently classified instances);
        ``grad_asym_dot`` is the reference's ``g_a . g_b / (||g_b||^2 + 1e-7)``.
    task : {"classification", "regression"}, default="classification"
        For classification, a test instance's target defaults to the model's predicted class;
        for regression it must be given (:meth:`explain`).
    precompute_grads : bool, default=False
        Keep the training gradients from ``fit``, for faster explanations: factorised (see
        ``grads_train_``), or their projections with ``n_components``. When False they are
        recomputed, block by block, for each chunk of test instances: as many as have
        gradients within 128 MiB (all of them, for most test sets: the training gradients are
        then computed once). Peak memory stays at ``O(batch_size * n_params)`` beyond the
        data, the scores and those test gradients.
    n_components : int or None, default=None
        None: exact scores (also used, with a warning, when ``n_components`` is not below
        ``n_params_``). An int: scores between gradients randomly projected to
        ``n_components`` dimensions, unbiased estimates of the exact dot products, their
        error shrinking as ``1 / sqrt(n_components)``; the full gradient of a dense layer is
        never built. A dense layer's gradient, the outer product of its input ``a`` and its
        output gradient ``δ``, is projected as ``(a Ω) ⊙ (δ Ψ) / sqrt(n_components)`` with
        Gaussian ``Ω`` and ``Ψ`` (a variance at most 4 times that of a Gaussian projection of
        the whole gradient); other layers' gradients are count-sketched. ``grad_cos`` and
        ``grad_asym_dot`` use the projected norms. Projections are stored in float32
        (``4 * n_components`` bytes a training instance). On the MNIST tutorial's CNN with 8,000
        training instances, 2048 components keep about 91% of the exact top-10 neighbours
        (1024: 87-89%; ``benchmarks/bench_similarity.py --large``). Projections pay off where
        the training gradients are stored (``precompute_grads=True``) and would not fit
        exactly; without it they add the projection's work to the gradients' and lose
        accuracy, which for models whose exact scores are factorised (scikit-learn's linear
        models and MLPs, dense layers) only costs time.
    random_state : int, RandomState instance or None, default=None
        Seeds the projection of ``n_components``.
    batch_size : int, default=64
        Instances whose gradients are computed together.
    n_jobs : int or None, default=None
        Blocks of training rows whose gradients are computed in parallel by joblib workers
        (-1: all cores), with the same scores as ``None`` (one process). Each worker starts,
        receives its rows and rebuilds the gradient function (a Keras model's is compiled
        again): worth it only where a block's gradients cost far more than that. For
        scikit-learn's linear models and MLPs, whose gradients are a few matrix products,
        one process was 5 to 18 times faster in a trial on 2 busy cores (20,000 rows).
    input_shape : tuple or None, default=None
        Shape of one instance for a Keras model; inferred from it when None. A PyTorch module
        or a subclassed Keras model cannot tell it: rows go to it flat unless given (such as
        ``(1, 28, 28)`` for a ``Conv2d`` network on MNIST).
    device : str, torch.device or None, default=None
        Where a PyTorch model runs ("cpu", "cuda"); None: where its parameters are. Another
        device than theirs runs a copy of the module. For PyTorch models only.
    verbose : int, default=0
        1 shows a progress bar over batches of test instances on stderr.

    Attributes
    ----------
    estimator_ : object
        The model whose gradients are compared: ``estimator`` itself when it is fitted (or a
        Keras model), else a fitted clone of it.
    X_train_ : ndarray or DataFrame of shape (n_train, n_features)
        float32 for Keras models and PyTorch modules that compute in float32 or less,
        float64 otherwise; the DataFrame given to ``fit`` (its rows
        numbered from 0; explanations give them their own labels) where it holds text or
        categories for a Pipeline.
    y_train_ : ndarray of shape (n_train,) or (n_train, n_outputs)
        The training targets (class indices for a Keras or PyTorch classifier).
    classes_ : ndarray of shape (n_classes,) or None
        For a Keras or PyTorch classifier fitted with labels other than its outputs' indices:
        the sorted labels of ``y``, one per output column (as scikit-learn's ``classes_``);
        ``explain``'s targets are then labels too (``fit`` warns of labels that the model's
        predictions follow far better in another order). None otherwise.
    grads_train_ : GradientFactors, ndarray of shape (n_train, n_components) or None
        Only with ``precompute_grads=True``: with ``n_components``, the projected training
        gradients; otherwise the exact ones, factorised: the inputs and output gradients of
        dense layers (scikit-learn models, plain Keras ``Dense`` layers) and the flattened
        gradients of all other parameters (``grads_train_.toarray()`` builds the
        ``(n_train, n_params)`` matrix, parameters in another order).
    projection_ : GradientProjection or None
        The random projection, with ``n_components``.
    n_params_ : int
        The model's number of trainable parameters: the length of a loss gradient.
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (n_features,)
        Names of features seen during ``fit``. Defined only when ``X`` has feature names
        that are all strings.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from skcem import GradientSimilarityExplainer
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = LogisticRegression(max_iter=1000).fit(X, y)
    >>> sim = GradientSimilarityExplainer(clf, sim_fn="grad_cos").fit(X, y)
    >>> scores, rows = sim.kneighbors(X[:1], n_neighbors=3)
    >>> scores.shape, int(y[rows[0, 0]])
    ((1, 3), 0)
    """

    _transient_attributes = ("_gradients",)
    _fit_parameters = ("estimator", "device", "input_shape", "loss", "n_components",
                       "precompute_grads", "random_state", "task")
    # Why rows must be complete (the error on missing values).
    _complete_rows_reason = "each row's loss gradient goes through the model"

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["predict"]), callable, None],
        "loss": [str, callable],
        "sim_fn": [StrOptions({"grad_dot", "grad_cos", "grad_asym_dot"})],
        "task": [StrOptions({"classification", "regression"})],
        "precompute_grads": ["boolean"],
        "n_components": [Interval(Integral, 1, None, closed="left"), None],
        "random_state": ["random_state"],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "n_jobs": [Interval(Integral, None, -1, closed="right"),
               Interval(Integral, 1, None, closed="left"), None],  # as joblib: 0 means nothing
        "input_shape": [tuple, list, None],
        "device": "no_validation",  # a name or a torch.device, checked by the PyTorch backend
        "verbose": ["verbose"],
    }

    def __init__(self, estimator=None, *, loss="auto", sim_fn="grad_dot",
                 task="classification", precompute_grads=False, n_components=None,
                 random_state=None, batch_size=64, n_jobs=None, input_shape=None, device=None,
                 verbose=0):
        self.estimator = estimator
        self.loss = loss
        self.sim_fn = sim_fn
        self.task = task
        self.precompute_grads = precompute_grads
        self.n_components = n_components
        self.random_state = random_state
        self.batch_size = batch_size
        self.n_jobs = n_jobs
        self.input_shape = input_shape
        self.device = device
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None, **fit_params):
        """Store the training set (and its gradients, with ``precompute_grads``).

        Parameters
        ----------
        X : array-like of shape (n_train, n_features)
            Training instances.
        y : array-like of shape (n_train,) or (n_train, n_outputs)
            Training targets: class labels or regression values. Required: the signature's
            None raises. A pandas Series follows the index of a DataFrame ``X`` (as in
            :meth:`explain`).
        **fit_params : dict
            Parameters of ``estimator.fit`` (``sample_weight``...) when it is fitted here;
            under scikit-learn's metadata routing, those it requests.

        Returns
        -------
        self : GradientSimilarityExplainer
            The fitted explainer.
        """
        if isinstance(self.n_components, (bool, np.bool_)):  # an int to Interval(Integral)
            raise ValueError(f"`n_components` is a number of random projections (an int >= "
                             f"1) or None for exact scores; got {self.n_components!r}.")
        if y is None:
            raise ValueError("GradientSimilarityExplainer requires y to be passed, but the "
                             "target y is None: the training gradients are those of the loss "
                             "at the training targets.")
        self._train_polars = type(X).__module__.split(".")[0] == "polars"  # no row labels
        X, y = from_polars(X), from_polars(y)
        if self.estimator is not None:  # the model's kind before its data's (text columns)
            refuse_a_class(self.estimator)
            check_supported(self.estimator)
        pipeline = isinstance(loss_inner(self.estimator), Pipeline)
        # documents (1-D text) for a Pipeline whose first step vectorizes them
        self._documents = pipeline and is_documents(X)
        if not self._documents:
            _check_not_documents(X)
            if pipeline and hasattr(loss_inner(self.estimator).steps[0][1], "build_analyzer"):
                first = type(frozen_inner(loss_inner(self.estimator).steps[0][1])).__name__
                shape = f" of shape {X.shape}" if hasattr(X, "shape") else ""
                raise ValueError(f"`estimator`'s first step ({first}) reads documents, one text "
                                 "per row: give them 1-D (a list, a Series, or the column "
                                 f"X[:, 0]); got {type(X).__name__}{shape}.")
        # a Series follows a DataFrame's rows by their index, as in explain
        y = align_rows(y, self._row_index(X), "y")
        if self.task == "regression":  # text: numpy's str dtypes pass validate_data
            y = _check_regression_targets(y)
        if self.task == "classification":
            check_class_labels(y, type(self).__name__, prefitted=is_prefitted(self.estimator))
            y = _one_column_flattened(y)
        self._remember_fit_parameters()
        names = getattr(self.estimator, "feature_names_in_", None) \
            if is_prefitted(self.estimator) else None
        self._table = self._documents or pipeline and _holds_text(X)
        # missing cells, for a Pipeline that imputes them before its last step's gradients
        self._allow_nan = pipeline and bool(accepts_missing_values(loss_inner(self.estimator)))
        if self._table:  # the rows as they are, for the Pipeline's own steps
            X, self._train_labels = self._validated_table(X, names)
            y = self._validated_targets(y)
            if len(y) != len(X):
                raise ValueError(f"y has {len(y)} targets for the {len(X)} rows of X: one "
                                 "target per row.")
        else:  # a copy only where the conversion to float64 did not make one already
            self._train_labels = self._row_index(X)  # a DataFrame's own row labels
            X, y = validate_float_data(self, X, y, reset=True, expected_columns=names,
                                       multi_output=True, y_numeric=self.task == "regression",
                                       copy=True, allow_nan=self._allow_nan)
        default = (lambda: LogisticRegression(max_iter=1000)) \
            if self.task == "classification" else Ridge
        # the model's kind against the task before it is fitted, or its labels checked
        self._check_kind(self.estimator)
        self.estimator_ = resolve_estimator(self.estimator, self._as_given(X), y,
                                            type(self).__name__, default=default,
                                            check=check_supported,
                                            fit_params=self._estimator_fit_params(fit_params))
        self._check_kind(self.estimator_)
        self._check_model_takes_missing_values(X)
        if self._table:
            self._check_rows_kept(X)
        self._keras_output = None
        self.classes_ = None
        if is_deep_model(self.estimator_):
            _check_token_ids(self.estimator_, X)
            X = X.astype(input_dtype(self.estimator_))
            gradients = None
            static = None
            if self.task == "classification" and is_keras_model(self.estimator_):
                gradients = self._make_gradients()
                # The output kind from the model's last layer when it tells (no call of the
                # model at all), else from the compiled forward pass that explain uses for
                # predictions (set before any gradient is traced): no eager call of the model.
                static = getattr(gradients, "static_outputs", lambda: None)()
                self._keras_output = static[0] if static else detect_output_kind(
                    self.estimator_, X[:100], self.input_shape, device=self.device,
                    function=gradients.outputs)
                gradients.set_output_kind(self._keras_output)
            elif self.task == "classification":
                self._keras_output = detect_output_kind(self.estimator_, X[:100],
                                                        self.input_shape, device=self.device)
            self._gradients = gradients or self._make_gradients()
            y = self._deep_targets(
                y, static[1] if static else self._gradients.outputs(X[:1]).shape[1], X)
        else:
            self._gradients = self._make_gradients()
            if self.task == "regression":
                self._n_outputs = _target_width(
                    np.asarray(self.estimator_.predict(self._for_model(X[:1]))).reshape(1, -1))
                self._check_target_width(y)
        self.n_params_ = int(self._gradients.n_params)
        self.X_train_ = X
        self.y_train_ = np.array(self._targets(y))  # a copy: the user's y may change
        if self.loss != "auto" and is_deep_model(self.estimator_):
            self._check_loss()
        self.projection_ = None
        if self.n_components is not None and self.n_components >= self.n_params_:
            warn(f"n_components ({self.n_components}) is not below the model's number of "
                 f"parameters (n_params_={self.n_params_}): exact scores are used, which are "
                 "no larger to store.")
        elif self.n_components is not None:
            template = self._gradients.factors(self.X_train_[:1], self.y_train_[:1])
            self.projection_ = GradientProjection(template, self.n_components,
                                                  self.random_state,
                                                  self._sparse_supports(template))
        self.grads_train_ = None
        if self.precompute_grads:
            blocks = self._train_slices()
            with self._blas_threads():  # (a projection's products are as small)
                self.grads_train_ = stack_gradients(self._train_gradients(blocks), len(X))
        return self

    def _sparse_supports(self, template):
        """Per dense layer with sparse inputs (a text vectorizer's), the columns the training
        rows' inputs hold (the projection draws its map there alone); None without any."""
        from scipy import sparse

        if not getattr(template, "is_sparse", False):
            return None
        supports = [set() if sparse.issparse(a) else None for a, _ in template.dense]
        for factors in self._factor_batches(self.X_train_, self.y_train_):
            for support, (a, _) in zip(supports, factors.dense):
                if support is not None:
                    support.update(np.unique(a.indices).tolist())
        return [None if support is None else np.array(sorted(support), dtype=np.intp)
                for support in supports]

    def _validated_table(self, X, expected=None):
        """A DataFrame with text columns, for a Pipeline that takes them: its columns
        matched by name (to ``expected`` at ``fit``, to ``fit``'s later), nothing missing;
        with its rows numbered from 0 (they are sliced by position), and its own index."""
        if self._documents:
            return self._validated_documents(X)
        reset = expected is not None or not hasattr(self, "n_features_in_")
        if not hasattr(X, "columns"):
            raise ValueError("`fit` was given a DataFrame with text columns, for the "
                             "Pipeline's own steps: pass a DataFrame of those columns; got "
                             f"{type(X).__name__}.")
        X = align_columns(X, expected if reset else fitted_columns(self))
        validate_data(self, X, reset=reset, skip_check_array=True)
        missing = X.isna().to_numpy().any(axis=0)
        if missing.any() and not self._allow_nan:
            raise ValueError(f"X's columns {list(X.columns[missing])[:5]} hold missing "
                             "values; the gradients of their rows are undefined.")
        return X.reset_index(drop=True), X.index

    def _validated_documents(self, X):
        """Documents for a Pipeline whose first step vectorizes them: a Series numbered from
        0, and their own index."""
        import pandas as pd

        try:
            n_dims = np.ndim(X)
        except ValueError:  # ragged: lists of tokens, say
            n_dims = None
        if isinstance(X, (str, bytes)) or n_dims == 0:
            raise ValueError("X must be documents, one text per row (a list or a Series of "
                             f"texts); got {type(X).__name__} {X!r:.60}.")
        if hasattr(X, "__len__") and not hasattr(X, "shape") and len(X) == 0 or \
                getattr(X, "shape", (1,))[0] == 0:
            raise ValueError("X holds no documents (0 rows).")
        if not is_documents(X) and not hasattr(X, "columns") and n_dims == 1 and \
                pd.isna(pd.Series(list(X), dtype=object)).all():
            raise ValueError(f"X holds missing documents only ({len(X)}); their gradients "
                             "are undefined.")
        if not is_documents(X):
            shape = f" of shape {X.shape}" if hasattr(X, "shape") else ""
            raise ValueError("`fit` was given documents (1-D text) for the Pipeline's first "
                             "step: X must be documents too, one per row; got "
                             f"{type(X).__name__}{shape}.")
        if not isinstance(X, pd.Series):
            X = pd.Series(np.asarray(X, dtype=object))
        missing = X.isna().to_numpy()
        if missing.any() and not self._allow_nan:
            raise ValueError(f"X holds missing documents (at positions "
                             f"{np.flatnonzero(missing)[:5].tolist()}); their gradients are "
                             "undefined.")
        text = X.map(lambda value: isinstance(value, (str, bytes))).to_numpy(bool)
        not_text = ~text & ~missing
        if not_text.any():
            first = int(np.flatnonzero(not_text)[0])
            raise ValueError(f"X holds documents that are not text, such as {X.iloc[first]!r} "
                             f"(position {first}): the Pipeline's first step reads text.")
        return X.reset_index(drop=True), X.index

    def _row_index(self, X):
        """The row labels a Series ``y`` follows: a DataFrame's, or those of a Series of
        documents; None for others."""
        tabled = hasattr(X, "columns") or getattr(self, "_documents", False)
        return X.index if tabled and hasattr(X, "iloc") else None  # a list has .index too

    def _check_rows_kept(self, X):
        """Raise unless the Pipeline's steps before its last make one row of each row of the
        table ``X`` (a text vectorizer first reads a DataFrame as its column names)."""
        steps = steps_before_last(loss_inner(self.estimator_))
        n_rows = min(3, len(X))
        try:
            made = transformed_by(steps, X.iloc[:n_rows])
        except (TypeError, ValueError) as exc:
            if not self._documents:
                raise
            raise ValueError(f"`estimator`'s steps fail on 1-D documents ({exc}): its first "
                             "step takes a table; pass a DataFrame of its columns, such as "
                             "pd.DataFrame({'text': documents}).") from exc
        if made.shape[0] != n_rows:
            raise ValueError(f"`estimator`'s steps before its last make {made.shape[0]} rows "
                             f"of {n_rows} rows of X: its first step does not take a table "
                             "(a text vectorizer takes 1-D documents: pass them as they are, "
                             "X[column], or put it in a ColumnTransformer on their column).")

    def _validated_targets(self, y):
        """``y`` of the table's rows, as ``validate_data`` checks it beside a float X."""
        return check_array(y, ensure_2d=False, input_name="y",
                           dtype="numeric" if self.task == "regression" else None)

    def _check_model_takes_missing_values(self, X):
        """Refuse missing cells in a column where the model does not take them: a Pipeline
        may impute some columns and not others, whose rows' gradients would be NaN (a
        training row never ranked, a test row's scores all NaN). One trial call of the
        model on rows each missing one column's value, one call per column where it fails.
        """
        if not getattr(self, "_allow_nan", False) or self._documents or \
                is_deep_model(self.estimator_):
            return
        frame = hasattr(X, "columns")
        missing = X.isna().to_numpy() if frame else np.isnan(X)
        columns = np.flatnonzero(missing.any(axis=0))
        complete = np.flatnonzero(~missing.any(axis=1))
        if columns.size == 0:
            return
        if complete.size == 0:  # no complete row to set one value of: the rows themselves
            trials, per_column = [X.iloc[:20] if frame else X[:20]], [columns]
        else:
            base = X.iloc[[complete[0]] * len(columns)].copy() if frame else \
                np.repeat(X[complete[:1]], len(columns), axis=0)
            for k, j in enumerate(columns):
                if frame:
                    base.iloc[k, j] = X.iloc[int(np.argmax(missing[:, j])), j]
                else:
                    base[k, j] = np.nan
            trials = [base] + [base.iloc[[k]] if frame else base[[k]]
                               for k in range(len(columns))]
            per_column = [columns] + [[j] for j in columns]
        # scores where the model gives them (finite where it takes the rows), else its
        # predictions (labels, perhaps text: taken where they come back)
        answer = getattr(self.estimator_, "predict_proba", None) or \
            getattr(self.estimator_, "decision_function", None)
        scored = answer is not None
        answer = answer or self.estimator_.predict
        refused = []
        for rows, named in zip(trials, per_column):
            try:
                with ignoring_feature_name_warnings(), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    out = answer(rows if frame else self._for_model(rows))
                taken = not scored or np.isfinite(np.asarray(out, dtype=float)).all()
            except Exception:  # each model raises its own kind on what it cannot take
                taken = False
            if taken and named is columns:
                return  # every column at once
            if not taken and len(named) == 1:
                refused.extend(named)
        if complete.size == 0 or refused:
            names = column_names(np.isin(np.arange(X.shape[1]), refused or columns),
                                 getattr(self, "feature_names_in_", None))
            raise missing_values_refused(type(self).__name__, self.estimator_, names)

    def _as_given(self, X):
        """``X`` as a DataFrame of its columns where ``fit`` was given one, for a model
        fitted here (a Pipeline may pick its columns by name)."""
        names = getattr(self, "feature_names_in_", None)
        if names is None or hasattr(X, "columns"):
            return X
        import pandas as pd

        return pd.DataFrame(X, columns=names)

    def _for_model(self, X):
        """``X`` as the fitted model takes it: named columns where it was fitted on them."""
        return self._as_given(X) if hasattr(self.estimator_, "feature_names_in_") else X

    def _check_kind(self, estimator):
        """Raise where a scikit-learn ``estimator``'s kind contradicts ``task``."""
        if not hasattr(estimator, "get_params"):
            return
        if self.task == "classification" and is_regressor(estimator):
            # Targets would default to the regressor's own predictions: zero gradients.
            raise ValueError(f"`estimator` is a regressor ({type(estimator).__name__}): "
                             "set task='regression'.")
        if self.task == "regression" and is_classifier(estimator):
            # A scikit-learn model's loss follows its kind: the cross-entropy, whatever task.
            raise ValueError(f"task='regression', but `estimator` is a classifier "
                             f"({type(estimator).__name__}), whose gradients are those "
                             "of its cross-entropy: leave task='classification'.")

    def _check_loss(self):
        """The given loss on two training rows, where the model's own errors (a shape that
        does not broadcast, a loss of the wrong framework or arguments) are named as the
        loss's."""
        # as many rows as the model has no outputs: targets of shape (n,) broadcast against
        # outputs of shape (n, n), and a wrong loss would pass (found by a review)
        n_rows = 3 if getattr(self, "_n_model_outputs", None) == 2 else 2
        try:
            self._gradients.factors(self.X_train_[:n_rows], self.y_train_[:n_rows])
        except Exception as exc:  # each framework raises its own kinds
            if "`loss`" in str(exc):
                raise
            reason = getattr(exc, "message", None) or str(exc)
            lines = [line.strip() for line in reason.splitlines() if line.strip()]
            shown = next((line for line in lines if "ncompatible" in line), None) or \
                (lines[-1] if lines else "")
            raise ValueError(f"`loss` fails on the model's outputs and the targets "
                             f"({type(exc).__name__}: {shown}). It is called as "
                             f"{self._loss_signature()}, one loss per example.") from exc

    def _loss_signature(self):
        if type(self.estimator_).__module__.startswith("torch"):
            return ("loss(outputs, targets) on tensors; the targets of a classifier are class "
                    "indices (n,), those of a module of one output (a logit, a sigmoid) floats "
                    "of the outputs' shape where the loss takes them "
                    "(nn.BCEWithLogitsLoss(reduction='none'))")
        return ("a Keras loss, loss(y_true, y_pred); the targets of a classifier are class "
                "indices (a loss of one-hot targets has a sparse form, such as "
                "'sparse_categorical_crossentropy')")

    def _make_gradients(self):
        return make_param_gradients(self.estimator_, loss=self.loss, task=self.task,
                                    input_shape=self.input_shape,
                                    output_kind=getattr(self, "_keras_output", None),
                                    n_features=getattr(self, "n_features_in_", None),
                                    device=self.device)

    def _get_gradients(self):
        # Compiled TensorFlow functions do not pickle: a restored explainer rebuilds them.
        if getattr(self, "_gradients", None) is None:
            self._gradients = self._make_gradients()
        return self._gradients

    def _deep_targets(self, y, n_outputs, X):
        """Targets a deep-learning model's loss can take, or an error pointing at ``task``.

        Class indices are taken as they are; other labels, one per class, are the sorted
        labels of the output columns (``classes_``, as the other explainers take them): the
        model's predictions on the first rows of ``X`` must not follow them far better in
        another order (:func:`~skcem._labels.check_outputs_follow_labels`).
        """
        y = np.asarray(y)
        model = framework_module(self.estimator_).MODEL_NAME
        self.classes_ = None
        self._n_model_outputs = n_outputs
        if self.task == "regression":
            self._n_outputs = n_outputs
            self._check_target_width(y)
            return y
        n_classes = self._n_classes = max(n_outputs, 2)
        bad = _not_class_indices(y, n_classes)
        if not np.any(bad):
            return y
        labels = np.unique(y)
        if y.ndim == 1 and len(labels) == n_classes:
            self.classes_ = labels
            indices = class_indices(y, labels, "y")
            self._check_label_order(indices, labels, X)
            return indices
        value = np.asarray(y[bad]).ravel()[0].item()
        hint = "" if y.dtype.kind not in "biuf" else \
            "; for a regression model set task='regression'"
        raise ValueError(f"y holds {value!r}, which is not a class index of the {model}'s "
                         f"{n_classes} classes (0 to {n_classes - 1}), and {len(labels)} "
                         f"labels, not one per class (their sorted order would be the "
                         f"outputs'){hint}.")

    def _check_label_order(self, indices, classes, X):
        sample = slice(0, _LABEL_ORDER_ROWS)
        check_outputs_follow_labels(self._predicted_targets(X[sample]), indices[sample],
                                    classes)

    def _check_target_width(self, y):
        """Raise unless a regression's targets have one value per output of the model."""
        width = _target_width(y)
        if width != self._n_outputs:
            raise ValueError(f"task='regression': y has {width} target(s) per row, but "
                             f"`estimator` has {self._n_outputs} output(s): one target per "
                             "output (for a classifier set task='classification').")

    def _targets(self, y):
        """Targets as the gradient functions expect them (deep-learning models: class indices)."""
        y = np.asarray(y)
        if self.task == "classification" and is_deep_model(self.estimator_):
            return y.astype(np.int64)
        return y

    def _factor_batches(self, X, y):
        """The gradient factors of ``X``, ``batch_size`` rows at a time; a Pipeline's earlier
        steps transform about ``_TRANSFORMED_BLOCK`` rows at once."""
        gradients, step = self._get_gradients(), self.batch_size
        prepared = getattr(gradients, "prepared", None)
        chunk = X.shape[0] if prepared is None else step * -(-_TRANSFORMED_BLOCK // step)
        for start in range(0, X.shape[0], max(chunk, 1)):
            rows, targets = X[start:start + chunk], y[start:start + chunk]
            rows, last = (rows, gradients) if prepared is None else prepared(rows)
            for i in range(0, rows.shape[0], step):
                yield last.factors(rows[i:i + step], targets[i:i + step])

    def _grad_batches(self, X, y):
        """Gradients of ``X``, ``batch_size`` rows at a time: factorised, or projected with
        ``n_components``."""
        for factors in self._factor_batches(X, y):
            yield factors if self.projection_ is None else self.projection_(factors)

    def _grads(self, X, y):
        """Gradients of ``X`` (see :meth:`_grad_batches`)."""
        return stack_gradients(list(self._grad_batches(X, y)))

    def _train_slices(self):
        """Slices of the training rows whose gradients are computed together: ``batch_size``
        rows, or where a Pipeline's earlier steps transform them, as many batches as make
        about ``_TRANSFORMED_BLOCK`` rows (fewer where ``n_jobs`` workers share them)."""
        n_train, size = len(self.X_train_), self.batch_size
        if hasattr(self._get_gradients(), "prepared"):
            workers = max(effective_n_jobs(self.n_jobs), 1)
            rows = min(_TRANSFORMED_BLOCK, -(-n_train // workers))
            size *= max(-(-rows // self.batch_size), 1)
        return [slice(i, i + size) for i in range(0, n_train, size)]

    def _train_gradients(self, blocks):
        """Gradients of the training rows of each block, in workers with ``n_jobs``."""
        X, y = self.X_train_, self.y_train_
        if effective_n_jobs(self.n_jobs) == 1 or len(blocks) == 1:  # (or a joblib context)
            return (self._grads(X[rows], y[rows]) for rows in blocks)
        # Blocks are independent: workers give the same gradients as this process.
        parallel = Parallel(n_jobs=self.n_jobs, return_as="generator")
        return parallel(delayed(_block_gradients)(self, X[rows], y[rows]) for rows in blocks)

    def _predicted_targets(self, X):
        if is_deep_model(self.estimator_):
            from ._gradients._outputs import as_probabilities

            gradients = self._get_gradients()
            outputs = np.vstack([gradients.outputs(X[i:i + self.batch_size])
                                 for i in range(0, len(X), self.batch_size)])
            kind = getattr(self, "_keras_output", None) or "probabilities"
            return as_probabilities(outputs, kind).argmax(axis=1)
        with ignoring_feature_name_warnings():
            return self.estimator_.predict(self._for_model(X))

    def _blas_threads(self):
        """One BLAS thread for a scikit-learn model's products in blocks of ``batch_size``
        rows or fewer, where threads wait on each other longer than they work (20,000 x
        1,000 rows, blocks of 64: one thread 2.5-3 times as fast as two on 2 cores, and up
        to 10 times on a busy machine); a deep model's framework keeps its own threads."""
        if is_deep_model(self.estimator_) or self.batch_size > _THREADED_BLOCK:
            return nullcontext()
        return threadpool_limits(limits=1, user_api="blas")

    def _train_blocks(self, sq_norms=None):
        """Training rows, their gradients and squared norms (or None), block by block."""
        n_train = len(self.X_train_)
        if self.grads_train_ is not None:
            for start in range(0, n_train, _TRAIN_BLOCK):
                rows = slice(start, start + _TRAIN_BLOCK)
                yield rows, self.grads_train_[rows], \
                    None if sq_norms is None else sq_norms[rows]
            return
        blocks = self._train_slices()
        for rows, grads in zip(blocks, self._train_gradients(blocks)):
            # scored batch_size rows at a time: the scores of a test chunk stay that small
            for start in range(0, rows.stop - rows.start, self.batch_size):
                part = slice(start, start + self.batch_size)
                yield slice(rows.start + start, min(rows.start + part.stop, n_train)), \
                    grads[part], None

    def _score_blocks(self, X, y):
        """Scores of each chunk of ``X``, block by block of training rows.

        Yields (test rows, blocks), blocks yielding (training rows, scores of shape
        (test rows, training rows)); each chunk's blocks are to be used before the next chunk.
        A chunk holds as many test rows as :func:`_chunk_rows` allows (at least
        ``batch_size``).
        """
        train_sq_norms = None
        if self.grads_train_ is not None and self.sim_fn != "grad_dot":
            train_sq_norms = gradient_sq_norms(self.grads_train_)
        n_batches = -(-len(X) // self.batch_size)
        bar = progress_bar(n_batches, type(self).__name__, self.verbose >= 1)
        zero_gradients = 0
        with self._blas_threads():
            try:
                fused = self._fused_products()
                for rows, test in self._test_chunks(X, y, fused):
                    zero_gradients += int(np.sum((test[1] if fused else gradient_sq_norms(test))
                                                 == 0))
                    # the chunk's share of the bar, spread over its training blocks
                    step = -(-(rows.stop - rows.start) // self.batch_size) / self._n_train_blocks()
                    blocks = self._fused_blocks(test) if fused else \
                        ((t_rows, similarity(test, train_grads, self.sim_fn, sq_norms))
                         for t_rows, train_grads, sq_norms in self._train_blocks(train_sq_norms))
                    yield rows, _counting(blocks, bar, step)
            finally:
                bar.close()
        if zero_gradients:
            warn(f"{zero_gradients} of {len(X)} test rows have a loss gradient of exactly zero "
                 "(a saturated output, or one that underflows in the model's precision): "
                 "every score of theirs is 0, and their ranking of the training rows means "
                 "nothing.")

    def _n_train_blocks(self):
        size = _TRAIN_BLOCK if self.grads_train_ is not None else self.batch_size
        return -(-len(self.X_train_) // size)

    def _test_chunks(self, X, y, fused):
        """(rows, gradients) of consecutive chunks of the rows of ``X``: factors or
        projections, or the fused gradient function's own test factors (see
        :meth:`_fused_blocks`).

        The first batch's gradients size the chunks, which hold as many batches as fit in
        ``_TEST_GRADIENT_BUDGET`` bytes; each chunk's batches are joined once.
        """
        compute = self._fused_test_factors if fused else self._grads
        gradients = self._get_gradients() if fused else None
        batches = [slice(i, i + self.batch_size) for i in range(0, len(X), self.batch_size)]
        first = compute(X[batches[0]], y[batches[0]])
        per_chunk = _chunk_rows(_nbytes(first) / max(len(X[batches[0]]), 1),
                                self.batch_size) // self.batch_size
        for k in range(0, len(batches), per_chunk):
            chunk = batches[k:k + per_chunk]
            rows = slice(chunk[0].start, chunk[-1].stop)
            if k == 0 and len(chunk) == 1:
                yield rows, first
                continue
            if fused:
                parts = (first if k == 0 and j == 0 else compute(X[part], y[part])
                         for j, part in enumerate(chunk))
            else:  # the chunk's rows transformed at once by a Pipeline's earlier steps
                rest = slice(chunk[1].start if k == 0 else rows.start, rows.stop)
                parts = itertools.chain([first] if k == 0 else [],
                                        self._grad_batches(X[rest], y[rest]))
            yield rows, _concatenate_test(parts, len(X[rows]), fused, gradients)

    def _fused_products(self):
        """Whether the products come with the training gradients, which are not kept: a
        gradient function that computes both at once (TensorFlow's), exact scores, training
        rows in this process."""
        return (self.grads_train_ is None and self.projection_ is None
                and effective_n_jobs(self.n_jobs) == 1
                and hasattr(self._get_gradients(), "products"))

    def _fused_test_factors(self, X, y):
        """The fused gradient function's test factors of ``X`` and their squared norms.

        For classification, targets of -1 in ``y`` (:meth:`_check_X_y`'s own array) are
        replaced, in place, by the model's predicted classes, which come with the test
        gradients.
        """
        test, test_sq_norms, targets = self._get_gradients().test_factors(X, y)
        if self.task == "classification":
            np.copyto(y, targets, where=y < 0)
        return test, test_sq_norms

    def _fused_blocks(self, test):
        """(training rows, scores) of the test factors ``test`` (from
        :meth:`_fused_test_factors`), block by block: the products with each block's
        gradients computed with them."""
        gradients = self._get_gradients()
        test, test_sq_norms = test
        for start in range(0, len(self.X_train_), self.batch_size):
            rows = slice(start, start + self.batch_size)
            products, sq_norms = gradients.products(test, self.X_train_[rows],
                                                    self.y_train_[rows])
            yield rows, _normalised(products, self.sim_fn, test_sq_norms, sq_norms)

    def _scores(self, X, y):
        scores = np.empty((len(X), len(self.X_train_)))
        for rows, blocks in self._score_blocks(X, y):
            for t_rows, block in blocks:
                scores[rows, t_rows] = block
        _warn_of_non_finite(scores, "scores")
        return scores

    def _check_X_y(self, X, y):
        check_is_fitted(self)
        self._check_fit_parameters()
        X, y = from_polars(X), from_polars(y)
        if y is not None and np.ndim(y) == 0:
            value = y.item() if isinstance(y, np.generic) else y
            raise ValueError(f"`y` must hold one target per row of X; got the single value "
                             f"{value!r}: give a list, such as [{value!r}] for one row.")
        if not getattr(self, "_documents", False):
            _check_not_documents(X)
        y = align_rows(y, self._row_index(X), "y")
        X = self._validated_table(X)[0] if getattr(self, "_table", False) else \
            validate_float_data(self, X, reset=False,
                                allow_nan=getattr(self, "_allow_nan", False))
        if is_deep_model(self.estimator_):
            _check_token_ids(self.estimator_, X)
        else:
            self._check_model_takes_missing_values(X)
        given = y is not None
        if y is None:
            if self.task == "regression":
                raise ValueError("Regression needs the test targets, whose loss gradients "
                                 "are compared: pass y (explain(X, y), kneighbors(X, y=y), "
                                 "self_influence(X, y)); transform(X) has none.")
            # -1: the predicted class, filled in with the test gradients (_fused_blocks)
            y = np.full(len(X), -1, dtype=np.int64) if self._fused_products() \
                else self._predicted_targets(X)
        if given and self.task == "classification":
            check_class_labels(y, type(self).__name__, prefitted=True)
            y = _one_column_flattened(y)
        y = np.asarray(y)
        if len(y) != len(X):
            raise ValueError(f"`y` must have one target per row of X ({len(X)}); got "
                             f"{len(y)}.")
        if self.task == "regression":
            _check_regression_targets(y)
        if self.task == "regression" and hasattr(self, "_n_outputs"):
            self._check_target_width(y)
        if self.task == "classification" and hasattr(self.estimator_, "classes_"):
            unknown = ~np.isin(y, self.estimator_.classes_)
            if np.any(unknown):
                raise ValueError(f"`y` holds labels the model does not know: "
                                 f"{np.unique(y[unknown]).tolist()[:10]}; classes are "
                                 f"{np.asarray(self.estimator_.classes_).tolist()}.")
        elif given and getattr(self, "classes_", None) is not None:
            y = class_indices(y, self.classes_, "y")  # labels of a deep model's outputs
        elif given and self.task == "classification" and is_deep_model(self.estimator_):
            bad = _not_class_indices(y, self._n_classes)
            if np.any(bad):  # frameworks answer them with a raw error, or zeros (JAX)
                raise ValueError(f"`y` holds labels the model does not know: "
                                 f"{np.unique(y[bad]).tolist()[:10]}; its classes are the "
                                 f"indices 0 to {self._n_classes - 1} of its outputs.")
        return X, self._targets(y)

    def _shown_targets(self, y):
        """Targets as the user gives them: labels where ``fit`` took labels."""
        classes = getattr(self, "classes_", None)
        return y if classes is None else classes[y]

    @property
    def _n_features_out(self):
        """One output column per training instance (``get_feature_names_out``:
        ``gradientsimilarityexplainer0``, ...), for ``set_output``."""
        return len(self.X_train_)

    def transform(self, X):
        """Scores of each row of ``X`` against every training instance.

        Classification only: targets are the model's predicted classes. For regression use
        :meth:`explain` with the targets.

        Parameters
        ----------
        X : array-like of shape (n_test, n_features)
            Test instances.

        Returns
        -------
        scores : ndarray of shape (n_test, n_train)
            ``scores[i, j]``: the similarity of test instance ``i`` and training instance
            ``j``; a DataFrame under ``set_output(transform="pandas")``, one column per
            training instance (``get_feature_names_out``) and ``X``'s index.
        """
        X, y = self._check_X_y(X, None)
        return self._scores(X, y)

    def fit_transform(self, X, y=None, **fit_params):
        """Fit on ``(X, y)``, then score each training instance against all of them.

        Each row's target is the model's predicted class for classification (as in
        :meth:`transform`) and its given ``y`` for regression. For each training row's
        score with itself at its own label (mislabelled rows first), in O(n), see
        :meth:`self_influence`.

        Parameters
        ----------
        X : array-like of shape (n_train, n_features)
            Training instances.
        y : array-like of shape (n_train,) or (n_train, n_outputs)
            Training targets (required).
        **fit_params : dict
            As for :meth:`fit`.

        Returns
        -------
        scores : ndarray of shape (n_train, n_train)
            ``scores[i, j]``: the similarity of training instances ``i`` and ``j``.
        """
        self.fit(X, y, **fit_params)
        return self._scores(*self._check_X_y(X, y if self.task == "regression" else None))

    def explain(self, X, y=None):
        """Scores, ranking and the most and least similar training instances.

        Parameters
        ----------
        X : array-like of shape (n_test, n_features)
            Test instances.
        y : array-like of shape (n_test,) or (n_test, n_outputs), default=None
            Targets of the test instances; the model's predictions when None
            (classification only). A pandas Series follows the index of a DataFrame ``X``.

        Returns
        -------
        explanation : SimilarityExplanation
            The scores and the training instances they rank.
        """
        target_given = y is not None
        table = getattr(self, "_table", False)
        index = self._row_index(X)
        X, y = self._check_X_y(X, y)
        scores = self._scores(X, y)
        order = np.argsort(-scores, axis=1, kind="stable")
        if not table:
            return SimilarityExplanation(scores=scores, ordered_indices=order,
                                         most_similar=self.X_train_[order[:, 0]],
                                         least_similar=self.X_train_[order[:, -1]], X=X,
                                         target=self._shown_targets(y),
                                         sim_fn=self.sim_fn, target_given=target_given,
                                         train_labels=self._shown_train_labels(),
                                         index=index, feature_names=self._feature_names())
        # a table's rows with the user's own row labels (fit's for the training rows)
        labels = self._train_labels
        return SimilarityExplanation(
            scores=scores, ordered_indices=order,
            most_similar=self.X_train_.iloc[order[:, 0]].set_axis(labels[order[:, 0]]),
            least_similar=self.X_train_.iloc[order[:, -1]].set_axis(labels[order[:, -1]]),
            X=X if index is None else X.set_axis(index), target=self._shown_targets(y),
            sim_fn=self.sim_fn,
            target_given=target_given, train_labels=self._shown_train_labels(), index=index,
            feature_names=self._feature_names())

    def _feature_names(self):
        names = getattr(self, "feature_names_in_", None)
        return None if names is None else [str(name) for name in names]

    def _shown_train_labels(self):
        """The training rows' labels an explanation shows: a pandas DataFrame's index
        (None for an array, and for a polars frame, which has no row labels)."""
        if getattr(self, "_train_polars", False):
            return None
        return getattr(self, "_train_labels", None)

    def kneighbors(self, X, n_neighbors=5, return_scores=True, *, y=None):
        """The ``n_neighbors`` most similar training instances of each row of ``X``.

        Like ``NearestNeighbors.kneighbors``, with similarity scores (highest first) in place
        of distances.

        Parameters
        ----------
        X : array-like of shape (n_test, n_features)
            Test instances.
        n_neighbors : int, default=5
            Training instances returned per test instance.
        return_scores : bool, default=True
            Whether to return the scores as well as the indices.
        y : array-like of shape (n_test,) or (n_test, n_outputs), default=None
            Targets of the test instances, as in :meth:`explain`; the model's predictions when
            None (classification only).

        Returns
        -------
        scores : ndarray of shape (n_test, n_neighbors)
            Only when ``return_scores``.
        indices : ndarray of shape (n_test, n_neighbors)
            Rows of the training set.
        """
        check_is_fitted(self)
        if not isinstance(n_neighbors, Integral) or not 1 <= n_neighbors:
            raise ValueError(f"`n_neighbors` must be a positive integer; got {n_neighbors!r}.")
        if n_neighbors > len(self.X_train_):
            raise ValueError(f"`n_neighbors` ({n_neighbors}) exceeds the training set size "
                             f"({len(self.X_train_)}).")
        X, y = self._check_X_y(X, y)
        # A running top-k over blocks of training rows: no (n_test, n_train) matrix.
        scores = np.empty((len(X), n_neighbors))
        indices = np.empty((len(X), n_neighbors), dtype=np.intp)
        train_indices = np.arange(len(self.X_train_))
        for rows, blocks in self._score_blocks(X, y):
            best = np.empty((len(X[rows]), 0)), np.empty((len(X[rows]), 0), dtype=np.intp)
            for t_rows, block in blocks:
                best = _merge_top_k(*best, block, train_indices[t_rows], n_neighbors)
            scores[rows], indices[rows] = best
        _warn_of_non_finite(scores, "scores")
        if return_scores:
            return scores, indices
        return indices

    def self_influence(self, X=None, y=None):
        """Each instance's gradient similarity with itself, ``||g(x, y)||^2``: TracIn's
        self-influence. Mislabelled and atypical training rows score highest.

        O(n): no row is scored against the others (the diagonal of :meth:`fit_transform`
        costs the whole (n, n) matrix, and for classification is taken at the model's
        predicted classes, not the labels). Exact, with or without ``n_components``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), default=None
            The instances; None: the training instances, at their training targets.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs), default=None
            Their targets (labels for classification), with ``X``; the model's predicted
            classes when None (classification only).

        Returns
        -------
        self_influence : ndarray of shape (n_samples,)
            The squared norm of each instance's loss gradient, in the model's parameters.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.datasets import load_breast_cancer
        >>> from sklearn.linear_model import LogisticRegression
        >>> from sklearn.pipeline import make_pipeline
        >>> from sklearn.preprocessing import StandardScaler
        >>> from skcem import GradientSimilarityExplainer
        >>> X, y = load_breast_cancer(return_X_y=True)
        >>> noisy = y.copy()
        >>> noisy[:20] = 1 - noisy[:20]  # 20 labels flipped
        >>> model = make_pipeline(StandardScaler(), LogisticRegression())
        >>> explainer = GradientSimilarityExplainer(model).fit(X, noisy)
        >>> suspects = np.argsort(-explainer.self_influence())[:20]
        >>> int(np.sum(suspects < 20)) >= 10  # of the 20 rows scoring highest, flipped (13)
        True
        """
        check_is_fitted(self)
        if X is None:
            if y is not None:
                raise ValueError("`y` is given without `X`: self_influence(X, y) scores the "
                                 "rows of X at targets y, self_influence() the training rows "
                                 "at their own.")
            X, y = self.X_train_, self.y_train_
        else:
            given = y is not None
            X, y = self._check_X_y(X, y)
            if not given and self.task == "classification" and self._fused_products():
                # the fused path's -1 placeholders: the predicted classes
                y = self._targets(self._predicted_targets(X))
        norms = np.empty(len(X))
        with self._blas_threads():
            for start, factors in zip(range(0, len(X), self.batch_size),
                                      self._factor_batches(X, y)):
                norms[start:start + self.batch_size] = gradient_sq_norms(factors)
        _warn_of_non_finite(norms[:, None], "self-influences")
        return norms

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True  # training gradients are taken at the targets
        tags.target_tags.multi_output = True  # regression targets may have several outputs
        return tags
