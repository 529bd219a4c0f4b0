"""Which layers of a Keras model the per-example gradients treat apart, and its loss.

Shared by the TensorFlow gradients (:mod:`._keras`) and those of JAX and torch
(:mod:`._keras_stateless`): plain ``Dense`` layers whose gradients stay factorised, plain
``Conv2D`` layers whose gradients come from input patches, and the per-example loss.
"""


def keras_loss(loss, task):
    """A per-example loss function ``(y_true, y_pred) -> loss``."""
    import keras

    if loss == "auto":
        return (keras.losses.sparse_categorical_crossentropy if task == "classification"
                else keras.losses.mean_squared_error)
    try:
        loss = keras.losses.get(loss)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"`loss` must be 'auto', a Keras loss or its name; got {loss!r}.") \
            from exc
    # A Loss object averages over the batch; its ``call`` gives one value per example.
    return loss.call if isinstance(loss, keras.losses.Loss) else loss


def _called_once_on_rank(layer, rank):
    if len(getattr(layer, "_inbound_nodes", ())) != 1:
        return False
    try:
        return len(layer.input.shape) == rank
    except (AttributeError, ValueError):
        return False


def _trainable(layer, trainable):
    weights = [layer.kernel] + ([layer.bias] if layer.bias is not None else [])
    return {id(w) for w in weights} <= trainable


def factorisable_dense_layers(model):
    """The top-level ``Dense`` layers whose gradient is one outer product per example.

    That is: plain ``Dense`` (not a subclass, nor with LoRA or quantised weights, whose kernel
    is no trainable variable), with a trainable bias (its gradient is the output gradient),
    called once in the model, on inputs of shape (batch, d_in). Other layers, nested models
    included, keep materialised gradients.
    """
    import keras

    trainable = {id(w) for w in model.trainable_weights}
    return [layer for layer in getattr(model, "layers", [])
            if type(layer) is keras.layers.Dense and layer.bias is not None
            and _trainable(layer, trainable) and _called_once_on_rank(layer, 2)]


def batched_conv_layers(model):
    """The top-level ``Conv2D`` layers whose per-example gradients come from input patches.

    Plain ``Conv2D`` (not a subclass), channels last, one group, "valid" or "same" padding,
    trainable kernel (and bias, if any), called once in the model. Others fall back to
    ``tf.vectorized_map``.
    """
    import keras

    trainable = {id(w) for w in model.trainable_weights}
    return [layer for layer in getattr(model, "layers", [])
            if type(layer) is keras.layers.Conv2D and layer.data_format == "channels_last"
            and layer.groups == 1 and layer.padding in ("valid", "same")
            and _trainable(layer, trainable) and _called_once_on_rank(layer, 4)]
