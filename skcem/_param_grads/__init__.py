"""Per-example gradients of a model's loss with respect to its parameters.

:func:`make_param_gradients` picks the implementation from the estimator: Keras and PyTorch
models by batched autodiff (in their framework's module, imported only then), supported
scikit-learn models in closed form or by numpy back-propagation. Each returns a callable
``(X, y) -> (n, n_params)`` with an ``n_params`` attribute.
"""

from .._gradients import framework_module, is_deep_model
from .._wrappers import loss_inner
from ._sklearn import SUPPORTED, is_supported, sklearn_gradients, unsupported_error


def check_supported(estimator):
    """Raise the TypeError of an unsupported model before any work is spent fitting it."""
    if not is_deep_model(estimator) and not is_supported(loss_inner(estimator)):
        raise unsupported_error(estimator)


def make_param_gradients(estimator, *, loss="auto", task="classification", input_shape=None,
                         output_kind=None, n_features=None, device=None):
    """The per-example parameter-gradient function of ``estimator``.

    ``output_kind`` says what a deep-learning classifier outputs (see
    :func:`skcem._gradients.detect_output_kind`): with ``loss="auto"`` its outputs are
    turned into probabilities before the cross-entropy, so that a logits or sigmoid model gets
    the scores of the same model ending in a softmax. ``n_features`` is checked against the
    model's input shape; ``device`` is where a PyTorch model runs.
    """
    framework = framework_module(estimator, __name__)
    if framework is not None:
        return framework.make_gradients(estimator, loss=loss, task=task,
                                        input_shape=input_shape, output_kind=output_kind,
                                        n_features=n_features, device=device)
    if device is not None:
        raise ValueError(f"`device` applies to PyTorch models; got device={device!r} with "
                         f"{type(estimator).__name__}. Leave it None.")
    if input_shape is not None:
        raise ValueError(f"`input_shape` applies to Keras and PyTorch models; got "
                         f"input_shape={tuple(input_shape)!r} with "
                         f"{type(estimator).__name__}, which takes flat rows. Leave it None.")
    if loss != "auto":
        raise ValueError("`loss` must be 'auto' for scikit-learn models (cross-entropy for "
                         f"classifiers, squared error for regressors); got {loss!r}.")
    return sklearn_gradients(loss_inner(estimator))


__all__ = ["make_param_gradients", "SUPPORTED"]
