"""Per-example gradients of the loss with respect to a Keras model's trainable weights.

A whole batch at once: ``tf.vectorized_map`` over one example's ``GradientTape`` gradient,
compiled with ``tf.function``. Sparse gradients (embeddings) are made dense; non-trainable
weights are left out. :meth:`KerasGradients.factors` keeps the gradients of plain ``Dense``
layers factorised (see :mod:`._factors`): their inputs, from one batched forward pass, and their
output gradients, which are the per-example gradients of their biases.
"""

import numpy as np

from .._gradients._keras import import_tensorflow
from ._factors import GradientFactors


def keras_loss(loss, task):
    """A per-example loss function ``(y_true, y_pred) -> loss``."""
    import keras

    if loss == "auto":
        return (keras.losses.sparse_categorical_crossentropy if task == "classification"
                else keras.losses.mean_squared_error)
    try:
        return keras.losses.get(loss)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"`loss` must be 'auto', a Keras loss or its name; got {loss!r}.") \
            from exc


def factorisable_dense_layers(model):
    """The top-level ``Dense`` layers whose gradient is one outer product per example.

    That is: plain ``Dense`` (not a subclass, nor with LoRA or quantised weights, whose kernel
    is no trainable variable), with a trainable bias (its gradient is the output gradient),
    called once in the model, on inputs of shape (batch, d_in). Other layers, nested models
    included, keep materialised gradients.
    """
    import keras

    trainable = {id(w) for w in model.trainable_weights}
    layers = []
    for layer in getattr(model, "layers", []):
        if type(layer) is not keras.layers.Dense or layer.bias is None:
            continue
        if not {id(layer.kernel), id(layer.bias)} <= trainable:
            continue
        if len(getattr(layer, "_inbound_nodes", ())) != 1:
            continue
        try:
            rank = len(layer.input.shape)
        except (AttributeError, ValueError):
            continue
        if rank == 2:
            layers.append(layer)
    return layers


class KerasGradients:
    """Flattened per-example gradients of a Keras model's loss, batch by batch.

    With ``loss="auto"`` for classification, outputs of ``output_kind`` (logits, one sigmoid)
    become class probabilities first, as in the CEM path.
    """

    def __init__(self, model, loss, task, input_shape, output_kind=None):
        from .._gradients._keras import as_probabilities

        tf = import_tensorflow()
        self.tf = tf
        weights = list(model.trainable_weights)
        if not weights:
            raise ValueError("`estimator` has no trainable weights: there is no gradient to "
                             "compare.")
        self.n_params = int(sum(np.prod(w.shape) for w in weights))
        self.input_shape = tuple(input_shape)
        loss_fn = keras_loss(loss, task)
        to_proba = output_kind if loss == "auto" and task == "classification" else None

        def gradients_of(targets):
            def one_example(args):
                x, y = args
                with tf.GradientTape() as tape:
                    prediction = model(x[None], training=False)
                    if to_proba is not None:
                        prediction = as_probabilities(tf.reshape(prediction, (1, -1)),
                                                      to_proba, tf)
                    value = tf.reduce_sum(loss_fn(y[None], prediction))
                grads = tape.gradient(value, targets, unconnected_gradients="zero")
                return [tf.reshape(tf.convert_to_tensor(g), [-1]) for g in grads]
            return one_example

        def batch(x, y):
            x = tf.reshape(x, (-1,) + self.input_shape)
            return tf.concat(tf.vectorized_map(gradients_of(weights), (x, y)), 1)

        self.dense_layers = factorisable_dense_layers(model)
        factorised = {id(w) for layer in self.dense_layers for w in (layer.kernel, layer.bias)}
        others = [w for w in weights if id(w) not in factorised]
        biases = [layer.bias for layer in self.dense_layers]
        dense_inputs = None
        if self.dense_layers:
            import keras

            dense_inputs = keras.Model(model.inputs, [layer.input for layer in self.dense_layers])

        def factor_batch(x, y):
            x = tf.reshape(x, (-1,) + self.input_shape)
            grads = tf.vectorized_map(gradients_of(biases + others), (x, y))
            deltas, rest = grads[:len(biases)], grads[len(biases):]
            rest = tf.concat(rest, 1) if rest else tf.zeros((tf.shape(x)[0], 0))
            inputs = dense_inputs(x, training=False) if dense_inputs is not None else []
            return list(tf.nest.flatten(inputs)), deltas, rest

        self._batch_fn = batch
        self._factor_fn = factor_batch
        self._compiled = {}

    def _run(self, kind, X, y):
        tf = self.tf
        y = np.asarray(y)
        y = y.astype(np.int64) if y.dtype.kind in "iub" else y.astype(np.float32)
        # One trace per kind of target, whatever the batch size (tracing costs seconds).
        key = (kind, y.dtype.str, y.shape[1:])
        if key not in self._compiled:
            signature = [tf.TensorSpec([None, int(np.prod(self.input_shape))], tf.float32),
                         tf.TensorSpec((None,) + y.shape[1:], tf.as_dtype(y.dtype))]
            function = self._batch_fn if kind == "flat" else self._factor_fn
            self._compiled[key] = tf.function(function, input_signature=signature)
        X = np.asarray(X, np.float32).reshape(len(X), -1)
        return self._compiled[key](tf.constant(X), tf.constant(y))

    def __call__(self, X, y):
        return self._run("flat", X, y).numpy()

    def factors(self, X, y):
        """The gradients of ``X`` as :class:`GradientFactors`, ``Dense`` layers factorised."""
        inputs, deltas, rest = self._run("factors", X, y)
        ones = np.ones((len(X), 1))
        dense = [(np.hstack([a.numpy().reshape(len(X), -1), ones]), d.numpy())
                 for a, d in zip(inputs, deltas)]
        return GradientFactors(dense, rest.numpy())
