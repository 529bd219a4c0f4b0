"""Per-example gradients of a model's loss with respect to its parameters.

:func:`make_param_gradients` picks the implementation from the estimator: Keras models by
vectorised autodiff (TensorFlow imported only then), supported scikit-learn models in closed
form or by numpy back-propagation. Each returns a callable ``(X, y) -> (n, n_params)`` with an
``n_params`` attribute.
"""

from .._gradients import is_keras_model, model_input_shape
from ._sklearn import SUPPORTED, sklearn_gradients


def make_param_gradients(estimator, *, loss="auto", task="classification", input_shape=None):
    if is_keras_model(estimator):
        from .._gradients._keras import import_tensorflow
        from ._keras import KerasGradients

        import_tensorflow()
        return KerasGradients(estimator, loss, task,
                              input_shape or model_input_shape(estimator))
    if loss != "auto":
        raise ValueError("`loss` must be 'auto' for scikit-learn models (cross-entropy for "
                         f"classifiers, squared error for regressors); got {loss!r}.")
    return sklearn_gradients(estimator)


__all__ = ["make_param_gradients", "SUPPORTED"]
