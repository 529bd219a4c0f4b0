"""Gradient backends: what the optimizer asks of a model, per model kind.

:func:`make_backend` picks one from the estimator, once, in ``fit``; the optimizer
(:mod:`skcem._fista`) never knows which it is talking to. A Keras model's backend library
(TensorFlow, JAX or torch) is imported only when a Keras model is involved.
"""

import numpy as np

from ._keras import check_input_shape, is_keras_model, model_input_shape
from ._numerical import ExactBackend, NumericalAutoencoder, NumericalBackend

__all__ = ["ExactBackend", "NumericalBackend", "make_backend", "is_keras_model"]


def _autoencoder_term(autoencoder, input_shape, eps, n_features):
    if autoencoder is None:
        return None
    if is_keras_model(autoencoder):
        from ._keras import call_on_rows, keras_engine

        engine = keras_engine(autoencoder)
        # Each model takes its own shape: a dense auto-encoder may explain a CNN's images.
        own = model_input_shape(autoencoder, "`autoencoder`", required=input_shape is None)
        shape = own or input_shape
        check_input_shape(shape, n_features, own is None, what="The `autoencoder`")
        _check_reconstruction(call_on_rows(autoencoder, np.zeros((1, n_features)), shape,
                                           "`autoencoder`"), n_features)
        return engine.KerasAutoencoder(autoencoder, shape)
    _check_reconstruction(autoencoder(np.zeros((1, n_features))), n_features)
    return NumericalAutoencoder(autoencoder, eps)


def _check_reconstruction(output, n_features):
    size = int(np.size(output))
    if size != n_features:
        raise ValueError(f"`autoencoder` returns {size} values for an instance of {n_features}: "
                         "it must reconstruct its input.")


def make_backend(estimator, *, eps, n_features, autoencoder=None, input_shape=None,
                 output_kind="probabilities", classes=None, predict_in_search=False,
                 gradient="auto", table=None):
    """The gradient backend for ``estimator``: autodiff for Keras, differences otherwise.

    A Keras model is differentiated by the engine of the backend it runs on (TensorFlow, JAX
    or torch, see :func:`skcem._gradients._keras.keras_engine`).

    Parameters
    ----------
    estimator : fitted classifier, Keras model or callable
    eps : float or ndarray
        Finite-difference step (black-box path only).
    n_features : int
        Columns of X; a Keras input shape must hold as many values.
    autoencoder : Keras model, callable or None
        A Keras auto-encoder is differentiated by autodiff whatever the classifier.
    input_shape : tuple or None
        Shape of one instance for the Keras models; inferred from them when None.
    output_kind : str
        What a Keras classifier outputs (see :func:`skcem._gradients._keras.keras_output_kind`).
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
    """
    if is_keras_model(estimator):
        from ._keras import keras_engine

        engine = keras_engine(estimator)  # before anything else, for its installation hint
        given = input_shape is not None
        own = model_input_shape(estimator, "`estimator`", required=not given)
        input_shape = input_shape or own
        check_input_shape(input_shape, n_features, given)
        return engine.KerasBackend(estimator, input_shape,
                                   _autoencoder_term(autoencoder, input_shape, eps,
                                                     n_features),
                                   output_kind)
    decode = None if table is None else table.decode
    predict_proba = getattr(estimator, "predict_proba", estimator)
    predict = None
    if classes is not None and callable(getattr(estimator, "predict", None)):
        predict = _ClassIndices(_Decoded(estimator.predict, decode), classes)
    predict_proba = _Decoded(predict_proba, decode)
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
        return self.fn(self.decode(Z))


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
        from .._validation import class_indices

        return class_indices(labels, self.classes, "estimator.predict")
