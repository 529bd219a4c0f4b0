"""Which layers of a Keras model the per-example gradients treat apart, and its loss.

Shared by the TensorFlow gradients (:mod:`._keras`) and those of JAX and torch
(:mod:`._keras_stateless`): plain ``Dense`` layers whose gradients stay factorised, plain
``Conv2D`` layers whose gradients come from input patches (:func:`factorisable_layers`), and
the per-example loss.
"""

import numpy as np


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
    if isinstance(loss, keras.losses.Loss):
        return loss.call
    if getattr(loss, "__module__", "").startswith("keras."):
        return _to_same_rank(loss)
    return loss


def cross_entropy_of_logits(logits, y):
    """``-log softmax(logits)[y]`` per row (``logits`` of shape (n, k), class indices ``y``),
    in Keras ops, written so that its gradient is exact where the softmax rounds to 1:
    ``m + log(exp(-m) + sum_{j != y} exp(d_j - m))`` with ``d = logits - logits[y]`` and ``m =
    max(0, max_j d_j)``. The true class's gradient is then minus the other classes'
    probabilities, not ``p_y - 1``, which is 0 in float32 past a margin of about 17 (the
    direction of a row's gradient lost, and its size)."""
    from keras import ops

    # (a one-hot product, not take_along_axis, whose gradient, a scatter, cost TensorFlow
    # on a CPU a tenth of a CNN's similarity)
    is_true = ops.one_hot(ops.reshape(ops.cast(y, "int32"), (-1,)), ops.shape(logits)[1],
                          dtype=logits.dtype)
    true = ops.sum(logits * is_true, axis=1, keepdims=True)
    others = ops.where(is_true > 0, ops.full_like(logits, -np.inf), logits - true)
    m = ops.stop_gradient(ops.maximum(ops.max(others, axis=1, keepdims=True), 0.0))
    total = ops.exp(-m) + ops.sum(ops.exp(others - m), axis=1, keepdims=True)
    return ops.reshape(m + ops.log(total), (-1,))


def two_class_logits(z):
    """The logits ``[0, z]`` of one logit ``z`` per row: its softmax is ``[1 - s, s]``."""
    from keras import ops

    z = ops.reshape(z, (-1, 1))
    return ops.concatenate([ops.zeros_like(z), z], axis=1)


def _to_same_rank(function):
    """A built-in Keras loss function taking class labels of shape (n,) beside outputs of
    shape (n, 1) (one sigmoid), as its ``Loss`` object does: the function alone wants the
    same ranks."""
    from keras import ops

    def loss(y_true, y_pred):
        if len(y_true.shape) == len(y_pred.shape) - 1 and y_pred.shape[-1] == 1:
            y_true = ops.expand_dims(y_true, -1)
        return function(y_true, y_pred)

    return loss


def _single_call_inputs(model):
    """``{id(layer): input}`` for the layers called exactly once, on one input, in
    ``model``'s own graph (Sequential models hold theirs in a functional model).

    A layer's ``_inbound_nodes`` count its calls in every model it was ever part of: a model
    loaded from a file or unpickled has its layers called again while it is rebuilt, and
    would see none of them as called once, so the graph's own nodes are counted instead. A
    model without a graph (subclassed) has none.
    """
    graph = getattr(model, "_functional", None) or model
    calls = {}
    for nodes in (getattr(graph, "_nodes_by_depth", None) or {}).values():
        for node in nodes:
            calls.setdefault(id(node.operation), []).append(node)
    return {key: nodes[0].input_tensors[0] for key, nodes in calls.items()
            if len(nodes) == 1 and len(nodes[0].input_tensors) == 1}


def graph_inputs(model, layers):
    """The input, in ``model``'s graph, of each of ``layers`` (from
    :func:`factorisable_layers`)."""
    inputs = _single_call_inputs(model)
    return [inputs[id(layer)] for layer in layers]


def _may_fold_rows(model):
    """Whether an operation of ``model``'s graph could call a layer on other rows than the
    examples: anything but Keras's own layers (which keep the batch axis), a ``Lambda`` and a
    raw operation (``ops.reshape``) included."""
    import keras

    graph = getattr(model, "_functional", None) or model
    operations = getattr(graph, "operations", None)
    if operations is None:
        return True
    return any(isinstance(op, keras.layers.Lambda)
               or not type(op).__module__.startswith("keras.src.layers.") for op in operations)


def _on_examples(model, layers):
    """Those of ``layers`` whose input holds one row per example, on a probe batch (where
    :func:`_may_fold_rows`): a model that folds its batch into rows (a reshape to ``(-1, k)``)
    calls a layer on several rows an example, whose gradient is then no single outer product.
    None where the model cannot be probed: no layer is then treated apart."""
    if not layers or not _may_fold_rows(model):
        return layers
    import keras
    import numpy as np

    n = 3
    try:
        rows = [np.zeros((n,) + tuple(2 if size is None else size for size in t.shape[1:]),
                         dtype=t.dtype) for t in model.inputs]
        probe = keras.Model(model.inputs, graph_inputs(model, layers))
        values = probe(rows, training=False)
    except Exception:  # noqa: BLE001 - a model that cannot be probed keeps the general path
        return []
    values = values if isinstance(values, (list, tuple)) else [values]
    return [layer for layer, value in zip(layers, values) if value.shape[0] == n]


def _called_once_on_rank(inputs, layer, rank):
    tensor = inputs.get(id(layer))
    return tensor is not None and len(tensor.shape) == rank


def _trainable(layer, trainable):
    weights = [layer.kernel] + ([layer.bias] if layer.bias is not None else [])
    return {id(w) for w in weights} <= trainable


def factorisable_layers(model):
    """``(dense, conv)``: the layers whose per-example gradients are computed apart, checked
    on one probe batch to hold one row per example (not a batch folded into rows).

    ``dense``: the top-level ``Dense`` layers whose gradient is one outer product per
    example: plain ``Dense`` (not a subclass, nor with LoRA or quantised weights, whose
    kernel is no trainable variable), with a trainable bias (its gradient is the output
    gradient), called once in the model, on inputs of shape (batch, d_in). ``conv``: the
    top-level ``Conv2D`` layers whose per-example gradients come from input patches: plain
    ``Conv2D``, channels last, one group, "valid" or "same" padding, trainable kernel (and
    bias, if any), called once in the model. Other layers, nested models included, keep
    materialised gradients (``tf.vectorized_map``).
    """
    import keras

    trainable = {id(w) for w in model.trainable_weights}
    inputs = _single_call_inputs(model)
    layers = getattr(model, "layers", [])
    dense = [layer for layer in layers
             if type(layer) is keras.layers.Dense and layer.bias is not None
             and _trainable(layer, trainable) and _called_once_on_rank(inputs, layer, 2)]
    conv = [layer for layer in layers
            if type(layer) is keras.layers.Conv2D and layer.data_format == "channels_last"
            and layer.groups == 1 and layer.padding in ("valid", "same")
            and _trainable(layer, trainable) and _called_once_on_rank(inputs, layer, 4)]
    kept = {id(layer) for layer in _on_examples(model, dense + conv)}
    return ([layer for layer in dense if id(layer) in kept],
            [layer for layer in conv if id(layer) in kept])
