"""Gradient backends: what the optimizer asks of a model, per model kind.

:func:`make_backend` picks one from the estimator, once, in ``fit``; the optimizer
(:mod:`skcem._fista`) never knows which it is talking to. A deep-learning model is handed to
its framework's module (:data:`FRAMEWORKS`), imported only when such a model is involved: a
Keras model's backend library (TensorFlow, JAX or torch) only for a Keras model, PyTorch for
a PyTorch module, TensorFlow never for the latter. Each framework module offers the same
functions: ``make_backend``, ``make_autoencoder`` and ``detect_output_kind`` here,
``make_gradients`` in :mod:`skcem._param_grads`.
"""

import importlib
import warnings
from contextlib import contextmanager
from functools import partial

import numpy as np
from scipy.sparse import issparse

from .._labels import class_indices
from .._warnings import catching_warnings
from .._wrappers import frozen_inner
from ._base import check_reconstruction
from ._numerical import ExactBackend, NumericalAutoencoder, NumericalBackend

__all__ = ["ExactBackend", "NumericalBackend", "make_backend", "is_deep_model", "is_keras_model",
           "is_torch_module", "detect_output_kind"]

# The top-level package a model's class comes from -> the name of its framework module.
FRAMEWORKS = {"keras": "_keras", "tf_keras": "_keras", "torch": "_torch"}


def framework_name(obj):
    """The framework module's name (``"_keras"``, ``"_torch"``) of a deep-learning model, or
    None; decided from the modules of its classes, without importing any framework."""
    for cls in type(obj).__mro__:
        name = FRAMEWORKS.get(cls.__module__.split(".")[0])
        if name is not None:
            return name
    return None


def nested_layers(model):
    """Every layer of a Keras model (nested ones included) or module of a PyTorch module."""
    if framework_name(model) == "_torch":
        return list(model.modules())
    flatten = getattr(model, "_flatten_layers", None)
    return list(flatten(include_self=False, recursive=True)) if flatten else \
        list(getattr(model, "layers", []))


def embeds_inputs(model):
    """Whether a Keras model or PyTorch module holds an embedding layer (``Embedding``,
    ``EmbeddingBag``), nested ones included: some of its inputs are then indices."""
    return any(type(layer).__name__ in ("Embedding", "EmbeddingBag")
               for layer in nested_layers(model))


def first_embedding_size(model):
    """The number of ids of the Embedding a Keras ``Sequential`` or a PyTorch
    ``nn.Sequential`` starts with (its rows are token ids), or None."""
    if type(model).__name__ != "Sequential":
        return None
    # (a Keras model on the torch backend is a torch module too: its layers first)
    layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"] \
        if is_keras_model(model) else list(model.children())
    if not layers or type(layers[0]).__name__ != "Embedding":
        return None
    size = getattr(layers[0], "num_embeddings", None) or getattr(layers[0], "input_dim", None)
    return None if size is None else int(size)


def framework_module(obj, package=__name__):
    """The module of ``package`` for ``obj``'s framework, or None for other models."""
    name = framework_name(obj)
    return None if name is None else importlib.import_module(f".{name}", package)


def is_deep_model(obj):
    """True for a Keras model or layer and for a PyTorch module."""
    return framework_name(obj) is not None


def is_keras_model(obj):
    """True for a Keras model or layer, decided without importing Keras."""
    return framework_name(obj) == "_keras"


def is_torch_module(obj):
    """True for a ``torch.nn.Module``, decided without importing PyTorch."""
    return framework_name(obj) == "_torch"


def input_dtype(model):
    """The numpy dtype of the rows a deep model's gradients are computed on: float64 for a
    PyTorch module that computes in float64 (its rows as given), else float32 (the model's
    precision in half the memory; Keras's per-example factors are float32 whatever it
    computes in)."""
    if is_torch_module(model):
        import torch

        from ._torch import module_dtype

        if module_dtype(model) == torch.float64:
            return np.dtype(np.float64)
    return np.dtype(np.float32)


def computes_in_half_precision(model):
    """Whether a Keras model or PyTorch module computes in 16-bit floats (whose
    probabilities sum to 1 only to about 1e-3)."""
    outputs = getattr(model, "outputs", None) if is_keras_model(model) else None
    # a Keras model's last layer may compute in another dtype than the model's policy
    dtype = getattr(outputs[0], "dtype", None) if outputs else \
        getattr(model, "compute_dtype", None)
    if dtype is None and is_torch_module(model):
        dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
    return str(dtype).replace("torch.", "") in ("float16", "bfloat16")


def detect_output_kind(model, sample, input_shape=None, device=None, function=None):
    """What a deep-learning classifier outputs (a key of
    :data:`~skcem._gradients._outputs.OUTPUT_KINDS`), from its last layer or its outputs on
    the 2-D ``sample`` rows; ``input_shape`` is checked against ``sample``'s columns.
    ``function``: a compiled forward pass of a Keras model on flat rows, used in place of an
    eager call."""
    options = {} if function is None else {"function": function}
    return framework_module(model).detect_output_kind(model, sample, input_shape,
                                                      device=device, **options)


def _autoencoder_term(autoencoder, input_shape, eps, n_features, device=None):
    if autoencoder is None:
        return None
    framework = framework_module(autoencoder)
    if framework is not None:
        return framework.make_autoencoder(autoencoder, input_shape, n_features, device=device)
    check_reconstruction(autoencoder(np.zeros((1, n_features))), n_features)
    return NumericalAutoencoder(autoencoder, eps)


def make_backend(estimator, *, eps, n_features, autoencoder=None, input_shape=None,
                 output_kind="probabilities", classes=None, predict_in_search=False,
                 gradient="auto", table=None, decode=None, device=None):
    """The gradient backend for ``estimator``: autodiff for Keras and PyTorch models, exact or
    numerical input gradients otherwise.

    A Keras model is differentiated by the engine of the backend it runs on (TensorFlow, JAX
    or torch, see :func:`skcem._gradients._keras.keras_engine`).

    Parameters
    ----------
    estimator : fitted classifier, Keras model, PyTorch module or callable
    eps : float or ndarray
        Finite-difference step (black-box path only).
    n_features : int
        Columns of X; a deep-learning model's input shape must hold as many values.
    autoencoder : Keras model, PyTorch module, callable or None
        A Keras or PyTorch auto-encoder is differentiated by autodiff whatever the classifier.
    input_shape : tuple or None
        Shape of one instance for the deep-learning models; inferred from them when None.
    output_kind : str
        What a deep-learning classifier outputs (see :func:`detect_output_kind`).
    classes : ndarray or None
        The estimator's classes: its ``predict`` (when it has one) then checks the classes of
        the answers.
    predict_in_search : bool
        Ask ``predict`` at every iteration too (see :class:`NumericalBackend`).
    gradient : {"auto", "exact", "numerical"}
        For a scikit-learn model: its exact input gradient (one backward pass, see
        :mod:`skcem._gradients._exact`) or central differences. "auto" takes the exact one
        when every step of the model is supported; "exact" raises naming the step that is not.
    table : TableCodec or None
        Its ``decode`` turns the search's rows into the model's input (a DataFrame of the
        fitted columns, see :mod:`skcem._tabular`) before ``predict_proba`` and ``predict``;
        exact gradients are taken on the numbers (categories as codes).
    decode : callable or None
        Without a ``table``, turns the search's rows into the model's input (float32 rows
        for a model that takes no others).
    device : str or None
        Where a PyTorch model runs (default: where its parameters are); None for others.
    """
    framework = framework_module(estimator)
    if framework is not None:
        return framework.make_backend(
            estimator, input_shape=input_shape, n_features=n_features, output_kind=output_kind,
            autoencoder=partial(_autoencoder_term, autoencoder, eps=eps, n_features=n_features,
                                device=device), device=device)
    if device is not None:
        raise ValueError(f"`device` applies to PyTorch models; got device={device!r} with "
                         f"{type(estimator).__name__}. Leave it None.")
    if input_shape is not None and not is_deep_model(autoencoder):
        raise ValueError(f"`input_shape` applies to Keras and PyTorch models (and auto-"
                         f"encoders); got input_shape={tuple(input_shape)!r} with "
                         f"{type(estimator).__name__}, which takes flat rows. Leave it None.")
    decode = decode if table is None else table.decode
    forest = _ForestProba.of(estimator)
    predict_proba = forest or getattr(estimator, "predict_proba", estimator)
    predict = None
    if classes is not None and callable(getattr(estimator, "predict", None)):
        own = forest.predict if forest is not None and forest.predicts_alike() else \
            estimator.predict
        predict = _ClassIndices(_Decoded(own, decode), classes)
    if predict_proba is estimator and decode is None:  # a plain function of numpy rows
        predict_proba = _OnACopy(predict_proba)
    predict_proba = _Decoded(predict_proba, decode)
    if table is not None:
        predict_proba = _CodedProba.of(estimator, forest, table) or predict_proba
    vjp = None
    if gradient == "exact" and not hasattr(estimator, "get_params"):
        raise TypeError("gradient='exact' needs a scikit-learn estimator; got "
                        f"{type(estimator).__name__}. Use gradient='numerical'.")
    if gradient != "numerical" and hasattr(estimator, "get_params"):
        from ._exact import UnsupportedModel, exact_proba_vjp

        try:
            vjp = exact_proba_vjp(estimator, table=table)
        except UnsupportedModel:
            if gradient == "exact":
                raise
    backend = ExactBackend if vjp is not None else NumericalBackend
    kwargs = {"vjp": vjp} if vjp is not None else {}
    return backend(predict_proba, eps, _autoencoder_term(autoencoder, input_shape, eps,
                                                         n_features),
                   predict=predict, predict_in_search=predict_in_search, **kwargs)


class _OnACopy:
    """``fn`` on a copy of its rows: a function that edits its input in place (a served
    model's own scaling, ``Z -= mean``) must not edit the search's rows."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, Z):
        return self.fn(np.array(Z, copy=True))


class _Decoded:
    """``fn(decode(Z))``, or ``fn`` itself without a ``decode``; picklable for joblib."""

    def __new__(cls, fn, decode):
        if decode is None:
            return fn
        return super().__new__(cls)

    def __init__(self, fn, decode):
        self.fn = fn
        self.decode = decode

    def __call__(self, Z):
        with _quiet_about_unknown_categories():
            return self.fn(self.decode(Z))


@contextmanager
def _quiet_about_unknown_categories():
    """Without scikit-learn's warning of categories its encoders ignore: the rows are the
    search's, whose categories fit never met the explainer names itself."""
    with catching_warnings():
        warnings.filterwarnings("ignore", message="Found unknown categories")
        yield


# Sparse rows a forest is asked about are made dense up to this many numbers (64 MiB).
_DENSE_NUMBERS = 2**24


class _ForestProba:
    """A scikit-learn forest's ``predict_proba`` on rows, bit for bit, without its per-tree
    overhead; picklable for joblib.

    The forest's own method calls each tree through joblib with its configuration and
    warning filters: on the few rows of a gradient-free search's steps that costs ten times
    the trees' own work (a 50-tree forest: 30 ms a call against 3). Here the same trees'
    ``tree_.predict`` are summed in the same order and divided the same way (what the
    forest does with ``n_jobs=1``). A forest at the end of a ``Pipeline`` gets the rows its
    earlier steps give (``transform``, as the Pipeline's ``predict_proba`` does), sparse ones
    included. Anything but finite rows of the fitted width goes to the forest's own method,
    which validates it, and so do data frames other than of the fitted numeric columns and
    sparse matrices other than 32-bit-indexed CSR.
    """

    def __init__(self, forest, steps=None):
        self.forest = forest
        self.steps = steps  # the Pipeline's steps before the forest, or None

    @classmethod
    def of(cls, estimator):
        """The fast ``predict_proba`` of a one-output forest classifier, alone or at the end
        of a ``Pipeline``, else None."""
        from sklearn.ensemble._forest import ForestClassifier
        from sklearn.pipeline import Pipeline

        estimator = frozen_inner(estimator)
        steps = None
        if type(estimator) is Pipeline:  # a subclass may change what predict_proba does
            steps, estimator = estimator[:-1], frozen_inner(estimator[-1])
        if not isinstance(estimator, ForestClassifier) or \
                type(estimator).predict_proba is not ForestClassifier.predict_proba:
            return None
        return cls(estimator, steps)

    def __call__(self, Z):
        if self.steps is not None:
            Z = self.steps.transform(Z)
        return self.summed(Z)

    def summed(self, Z):
        """The forest's probabilities of the rows ``Z`` it takes (the Pipeline's earlier
        steps' output)."""
        forest = self.forest
        if getattr(forest, "n_outputs_", 1) != 1 or np.ndim(Z) != 2 or \
                np.shape(Z)[1] != forest.n_features_in_ or \
                (hasattr(Z, "columns") and not self._fitted_numeric_columns(Z)):
            return forest.predict_proba(Z)
        if issparse(Z):
            if Z.format != "csr" or Z.indices.dtype != np.intc or \
                    Z.indptr.dtype != np.intc or not np.isfinite(Z.data).all():
                return forest.predict_proba(Z)
            X = Z.astype(np.float32)
            if X.shape[0] * X.shape[1] <= _DENSE_NUMBERS:
                # The same values, so the same leaves: the trees walk dense rows faster
                # (10% on UCI Adult's one-hot rows).
                X = X.toarray()
        else:
            X = Z.to_numpy(dtype=np.float32) if hasattr(Z, "columns") else Z
            X = np.ascontiguousarray(X, dtype=np.float32)
            if not np.isfinite(X).all():
                return forest.predict_proba(Z)
        n_classes = forest.n_classes_
        proba = np.zeros((X.shape[0], n_classes))
        for tree in forest.estimators_:
            proba += tree.tree_.predict(X)[:, :n_classes]
        proba /= len(forest.estimators_)
        return proba

    def predicts_alike(self):
        """Whether :meth:`predict` gives the forest's own ``predict`` (the Pipeline's), bit
        for bit: its classes at the largest mean probability, where the trees are summed in
        their order (one job) and neither the forest's nor the Pipeline's ``predict`` is
        overridden."""
        from sklearn.ensemble._forest import ForestClassifier

        return type(self.forest).predict is ForestClassifier.predict and \
            getattr(self.forest, "n_jobs", None) in (None, 1) and \
            getattr(self.forest, "n_outputs_", 1) == 1

    def predict(self, Z):
        """The forest's ``predict`` on rows (see :meth:`predicts_alike`), without its per-tree
        overhead: on a search's answers the forest's own method costs 35 ms a call (UCI
        Adult, 200 trees)."""
        return self.forest.classes_.take(np.argmax(self(Z), axis=1), axis=0)

    def _fitted_numeric_columns(self, frame):
        names = getattr(self.forest, "feature_names_in_", None)
        # (a polars frame's dtypes have no kind: it goes to the forest's own method)
        return names is not None and list(frame.columns) == list(names) and \
            all(getattr(dtype, "kind", None) in ("b", "i", "u", "f") for dtype in frame.dtypes)


class _CodedProba:
    """A Pipeline's probabilities of the search's coded rows, its ColumnTransformer answered
    column by column (:class:`~skcem._gradients._column_lookup.ColumnLookup`) instead of on
    decoded DataFrames, its model asked with what the ColumnTransformer would give it: a
    forest's trees summed (:class:`_ForestProba`), another model's ``predict_proba`` on the
    dense float64 array it was fitted on. The first call is answered both ways; the lookup
    is kept only where they agree bit for bit (and rows with missing values always go the
    Pipeline's way)."""

    def __init__(self, model_proba, lookup, decode, pipeline_proba, as_given):
        self.model_proba = model_proba
        self.lookup = lookup
        self.decode = decode
        self.pipeline_proba = pipeline_proba
        self.as_given = as_given
        self.checked = False

    @classmethod
    def of(cls, estimator, forest, table):
        """For a Pipeline of one ColumnTransformer the lookup follows and a model, else
        None."""
        from sklearn.pipeline import Pipeline

        from ._column_lookup import ColumnLookup

        pipeline = frozen_inner(estimator)
        if type(pipeline) is not Pipeline or len(pipeline) != 2:
            return None
        lookup = ColumnLookup.of(pipeline[:-1], table)
        if lookup is None:
            return None
        if forest is not None:
            return cls(forest.summed, lookup, table.decode, forest, as_given=False)
        model = frozen_inner(pipeline[-1])
        # another model gets the ColumnTransformer's dense array as it is (a sparse one's
        # products may sum in another order), without names it was fitted with
        if getattr(lookup.transformer, "sparse_output_", True) or \
                hasattr(model, "feature_names_in_") or \
                not callable(getattr(model, "predict_proba", None)):
            return None
        return cls(model.predict_proba, lookup, table.decode, pipeline.predict_proba,
                   as_given=True)

    def __call__(self, Z):
        Z = np.asarray(Z, dtype=float)
        if self.lookup is None or not len(Z) or not np.isfinite(Z).all():
            with _quiet_about_unknown_categories():
                return self.pipeline_proba(self.decode(Z))
        if not self.checked:
            self.checked = True
            checked = np.vstack([Z, self.lookup.covering(Z[0])])
            with _quiet_about_unknown_categories():
                if not self.lookup.agrees(checked, as_given=self.as_given):
                    self.lookup = None
                    return self.pipeline_proba(self.decode(Z))
        return self.model_proba(self.lookup(Z))


class _ClassIndices:
    """``predict`` as class indices (positions in ``classes``); picklable for joblib."""

    def __init__(self, predict, classes):
        self.predict = predict
        self.classes = np.asarray(classes)
        self.sorted = bool(np.all(self.classes[:-1] < self.classes[1:])) \
            if self.classes.dtype.kind in "biufUS" else False

    def __call__(self, Z):
        labels = np.asarray(self.predict(Z))
        if self.sorted:
            index = np.clip(np.searchsorted(self.classes, labels), 0, len(self.classes) - 1)
            if np.all(self.classes[index] == labels):
                return index
        return class_indices(labels, self.classes, "estimator.predict")
