"""Gradient backends: what the optimizer asks of a model, per model kind.

:func:`make_backend` picks one from the estimator, once, in ``fit``; the optimizer
(:mod:`skcem._fista`) never knows which it is talking to. TensorFlow is imported only when a
Keras model is involved.
"""

from ._keras import is_keras_model, model_input_shape
from ._numerical import NumericalAutoencoder, NumericalBackend

__all__ = ["NumericalBackend", "make_backend", "is_keras_model"]


def _autoencoder_term(autoencoder, input_shape, eps):
    if autoencoder is None:
        return None
    if is_keras_model(autoencoder):
        from ._keras import KerasAutoencoder

        return KerasAutoencoder(autoencoder, input_shape or model_input_shape(autoencoder))
    return NumericalAutoencoder(autoencoder, eps)


def make_backend(estimator, *, eps, autoencoder=None, input_shape=None):
    """The gradient backend for ``estimator``: autodiff for Keras, differences otherwise.

    Parameters
    ----------
    estimator : fitted classifier, Keras model or callable
    eps : float or ndarray
        Finite-difference step (black-box path only).
    autoencoder : Keras model, callable or None
        A Keras auto-encoder is differentiated by autodiff whatever the classifier.
    input_shape : tuple or None
        Shape of one instance for the Keras models; inferred from them when None.
    """
    if is_keras_model(estimator):
        from ._keras import KerasBackend, import_tensorflow

        import_tensorflow()  # before anything else, for its installation hint
        input_shape = input_shape or model_input_shape(estimator)
        return KerasBackend(estimator, input_shape,
                            _autoencoder_term(autoencoder, input_shape, eps))
    predict_proba = getattr(estimator, "predict_proba", estimator)
    return NumericalBackend(predict_proba, eps, _autoencoder_term(autoencoder, input_shape, eps))
