"""Per-example gradients of a model's loss with respect to its parameters.

:func:`make_param_gradients` picks the implementation from the estimator: Keras models by
batched and vectorised autodiff, on the backend the model runs on (TensorFlow, JAX or torch,
imported only then), supported scikit-learn models
in closed form or by numpy back-propagation. Each returns a callable
``(X, y) -> (n, n_params)`` with an ``n_params`` attribute.
"""

from .._gradients import is_keras_model, model_input_shape
from ._sklearn import SUPPORTED, sklearn_gradients, unsupported_error


def check_supported(estimator):
    """Raise the TypeError of an unsupported model before any work is spent fitting it."""
    if not is_keras_model(estimator) and not isinstance(estimator, SUPPORTED):
        raise unsupported_error(estimator)


def make_param_gradients(estimator, *, loss="auto", task="classification", input_shape=None,
                         output_kind=None, n_features=None):
    """The per-example parameter-gradient function of ``estimator``.

    ``output_kind`` says what a Keras classifier outputs (see
    :func:`skcem._gradients._keras.keras_output_kind`): with ``loss="auto"`` its outputs are
    turned into probabilities before the cross-entropy, so that a logits or sigmoid model gets
    the scores of the same model ending in a softmax. ``n_features`` is checked against the
    Keras input shape.
    """
    if is_keras_model(estimator):
        from .._gradients._keras import check_input_shape, keras_engine

        engine = keras_engine(estimator)
        own = model_input_shape(estimator, "`estimator`", required=input_shape is None)
        shape = input_shape or own
        if n_features is not None:
            check_input_shape(shape, n_features, input_shape is not None)
        if hasattr(engine, "AUTODIFF"):  # JAX or torch: transforms of stateless_call
            from ._keras_stateless import StatelessKerasGradients

            return StatelessKerasGradients(estimator, loss, task, shape, output_kind,
                                           engine.AUTODIFF)
        from ._keras import KerasGradients

        return KerasGradients(estimator, loss, task, shape, output_kind)
    if loss != "auto":
        raise ValueError("`loss` must be 'auto' for scikit-learn models (cross-entropy for "
                         f"classifiers, squared error for regressors); got {loss!r}.")
    return sklearn_gradients(estimator)


__all__ = ["make_param_gradients", "SUPPORTED"]
