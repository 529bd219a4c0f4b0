"""Per-example gradients of the loss with respect to a Keras model's trainable weights.

A whole batch at once: ``tf.vectorized_map`` over one example's ``GradientTape`` gradient,
compiled with ``tf.function``. Sparse gradients (embeddings) are made dense; non-trainable
weights are left out.
"""

import numpy as np

from .._gradients._keras import import_tensorflow


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

        def one_example(args):
            x, y = args
            with tf.GradientTape() as tape:
                prediction = model(x[None], training=False)
                if to_proba is not None:
                    prediction = as_probabilities(tf.reshape(prediction, (1, -1)), to_proba, tf)
                value = tf.reduce_sum(loss_fn(y[None], prediction))
            grads = tape.gradient(value, weights, unconnected_gradients="zero")
            return tf.concat([tf.reshape(tf.convert_to_tensor(g), [-1]) for g in grads], 0)

        def batch(x, y):
            x = tf.reshape(x, (-1,) + self.input_shape)
            return tf.vectorized_map(one_example, (x, y))

        self._batch_fn = batch
        self._compiled = {}

    def __call__(self, X, y):
        tf = self.tf
        y = np.asarray(y)
        y = y.astype(np.int64) if y.dtype.kind in "iub" else y.astype(np.float32)
        # One trace per kind of target, whatever the batch size (tracing costs seconds).
        key = (y.dtype.str, y.shape[1:])
        if key not in self._compiled:
            signature = [tf.TensorSpec([None, int(np.prod(self.input_shape))], tf.float32),
                         tf.TensorSpec((None,) + y.shape[1:], tf.as_dtype(y.dtype))]
            self._compiled[key] = tf.function(self._batch_fn, input_signature=signature)
        X = np.asarray(X, np.float32).reshape(len(X), -1)
        return self._compiled[key](tf.constant(X), tf.constant(y)).numpy()
