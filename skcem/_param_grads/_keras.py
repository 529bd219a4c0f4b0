"""Per-example gradients of the loss with respect to a Keras model's trainable weights.

The reference, :meth:`KerasGradients.__call__`: ``tf.vectorized_map`` over one example's
``GradientTape`` gradient, compiled with ``tf.function``. Sparse gradients (embeddings) are made
dense; non-trainable weights are left out.

:meth:`KerasGradients.factors` is faster: one batched forward and backward pass gives, for each
plain ``Dense`` and ``Conv2D`` layer, its input ``a`` and the gradient ``δ`` of the summed loss
with respect to its output before the activation. ``δ`` of the summed loss is each example's own
``δ`` because examples do not interact in a model called with ``training=False`` (a
``BatchNormalization`` in inference mode, ``Dropout``, pooling and reshaping layers included);
a layer that mixes the examples of a batch would break this. ``Dense`` gradients stay
factorised (see :mod:`._factors`); a ``Conv2D`` kernel's per-example gradient is
``Σ_p patch_p(a) ⊗ δ_p`` over output positions ``p`` (one batched product of the patches,
whatever the strides and dilation; "valid" or "same" padding) and its bias's is ``Σ_p δ_p``.
Convolutions are materialised, not factorised: a factorised dot product costs
``P² (k_in + c_out)`` per pair of examples against ``k_in c_out`` materialised (``P`` output
positions, ``k_in = kh kw c_in``), which pays only for ``P = 1``. ``tf.vectorized_map`` is left
for the weights of other layers, where it runs a ``Conv2DBackpropFilter`` as a serial loop.
"""

import logging

import numpy as np

from .._gradients import nested_layers
from .._gradients._keras import check_device, keras_engine, keras_input_shape
from .._gradients._outputs import check_scores_per_row
from .._gradients._keras_tf import compiled, import_tensorflow
from ._factors import GradientFactors
from ._keras_layers import (cross_entropy_of_logits, factorisable_layers, graph_inputs,
                            keras_loss, two_class_logits)


def make_gradients(model, *, loss, task, input_shape, output_kind, n_features=None,
                   device=None):
    """The per-example gradients of ``model`` on its Keras backend (the framework contract of
    :func:`skcem._param_grads.make_param_gradients`): :class:`KerasGradients` on TensorFlow,
    transforms of ``stateless_call`` on JAX and torch."""
    engine = keras_engine(model)
    check_device(device)
    shape = keras_input_shape(model, input_shape, n_features)
    if hasattr(engine, "AUTODIFF"):  # JAX or torch: transforms of stateless_call
        from ._keras_stateless import StatelessKerasGradients

        return StatelessKerasGradients(model, loss, task, shape, output_kind, engine.AUTODIFF)
    return KerasGradients(model, loss, task, shape, output_kind)


class _RecordedPreActivations:
    """While a model is traced, ``layers`` keep the inputs of their activations (their outputs
    before the activation) in ``values``; the layers are restored on exit.

    The loss is then differentiated with respect to the very tensors the model computed: a
    loss that reads a softmax's logits, as Keras's cross-entropies do, bypasses the softmax's
    output, whose gradient would be zero.
    """

    def __init__(self, layers):
        self.layers = layers

    def __enter__(self):
        self.values = [None] * len(self.layers)
        self.activations = [layer.activation for layer in self.layers]
        for k, (layer, activation) in enumerate(zip(self.layers, self.activations)):
            layer.activation = self._recorder(k, activation)
        return self.values

    def _recorder(self, k, activation):
        def record(z):
            self.values[k] = z
            return z if activation is None else activation(z)
        return record

    def __exit__(self, *exc):
        for layer, activation in zip(self.layers, self.activations):
            layer.activation = activation


def _has_attention(model):
    """Whether ``model`` holds a multi-head attention layer, nested ones included."""
    import keras

    kinds = tuple(getattr(keras.layers, name) for name in
                  ("MultiHeadAttention", "GroupQueryAttention", "GroupedQueryAttention")
                  if hasattr(keras.layers, name))
    return any(isinstance(layer, kinds) for layer in nested_layers(model))


def _same_padding(size, kernel, stride, dilation):
    """TensorFlow's "same" padding of one spatial axis: (before, after)."""
    n_out = -(-size // stride)
    total = max((n_out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def conv_gradients(layer, inputs, delta, tf):
    """Per-example gradients of a ``Conv2D`` kernel (and bias), flattened like the weights.

    ``inputs`` (batch, h, w, c_in) is the layer's input and ``delta`` (batch, h', w', c_out)
    the gradient with respect to its output before the activation. The kernel's gradient at
    offset ``(i, j)`` is ``Σ_p a[p + (i, j)] ⊗ δ_p``: one batched product per offset, of the
    input strided from it and ``δ``; for few input channels, one product of ``δ`` and the
    patches (those strided inputs side by side).
    """
    (kh, kw), (sh, sw), (dh, dw) = layer.kernel_size, layer.strides, layer.dilation_rate
    _, h, w, c_in = inputs.shape
    _, out_h, out_w, c_out = delta.shape
    if layer.padding == "same":
        inputs = tf.pad(inputs, [[0, 0], _same_padding(h, kh, sh, dh),
                                 _same_padding(w, kw, sw, dw), [0, 0]])
    n = tf.shape(inputs)[0]
    delta_rows = tf.reshape(delta, (n, out_h * out_w, c_out))
    windows = [tf.reshape(inputs[:, i * dh:i * dh + (out_h - 1) * sh + 1:sh,
                                 j * dw:j * dw + (out_w - 1) * sw + 1:sw, :],
                          (n, out_h * out_w, c_in))
               for i in range(kh) for j in range(kw)]
    if c_in >= _OFFSET_PRODUCT_CHANNELS:
        # one product per offset: no copy of the patches, which cost more than the products
        kernel = tf.concat([tf.matmul(window, delta_rows, transpose_a=True)
                            for window in windows], axis=1)
    else:
        # the patches (n, P, kh kw c_in), one product: δ is read once, not once per offset
        # (for few input channels the per-offset products are matrix-vector ones, bound by
        # reading δ)
        kernel = tf.matmul(tf.concat(windows, axis=2), delta_rows, transpose_a=True)
    grads = {id(layer.kernel): tf.reshape(kernel, (n, -1))}  # (n, kh kw c_in c_out)
    if layer.bias is not None:
        grads[id(layer.bias)] = tf.reduce_sum(delta_rows, axis=1)
    return grads


# Input channels from which a Conv2D kernel's per-example gradient is one product per kernel
# offset (measured on 2 cores: 0.55-0.85x the time of the patches' single product from 16
# channels, 1.2x at 8, 2x at 1).
_OFFSET_PRODUCT_CHANNELS = 16

# Bytes of ``y`` that tensorflow_matmul_t copies to TensorFlow at once.
_COPY_BYTES = 16 * 2**20


def tensorflow_matmul_t(x, y):
    """``x @ y.T`` by TensorFlow, on its own threads.

    After TensorFlow's kernels, numpy's BLAS threads compete with TensorFlow's for the cores,
    which made the products of gradients up to ten times slower on two busy cores. TensorFlow
    copies numpy arrays: ``y`` (stored training gradients, 100 MB for the MNIST CNN's 2,000) is
    copied a few MB at a time, into memory TensorFlow's allocator reuses, which took half the
    time of one copy into fresh memory.
    """
    tf = import_tensorflow()
    rows = max(1, _COPY_BYTES // max(y.shape[1] * y.itemsize, 1))
    if len(y) <= rows:
        return tf.matmul(x, y, transpose_b=True).numpy()
    x = tf.constant(x)
    return np.hstack([tf.matmul(x, y[start:start + rows], transpose_b=True).numpy()
                      for start in range(0, len(y), rows)])


class KerasGradients:
    """Flattened per-example gradients of a Keras model's loss, batch by batch.

    With ``loss="auto"`` for classification, outputs of ``output_kind`` (logits, one sigmoid)
    become class probabilities first, as in the CEM path.
    """

    def __init__(self, model, loss, task, input_shape, output_kind=None):
        from .._gradients._keras import as_probabilities

        tf = import_tensorflow()
        self.tf = tf
        self.model = model
        weights = list(model.trainable_weights)
        if not weights:
            raise ValueError("`estimator` has no trainable weights: there is no gradient to "
                             "compare.")
        self.n_params = int(sum(np.prod(w.shape) for w in weights))
        self.input_shape = tuple(input_shape)
        loss_fn = keras_loss(loss, task)
        self._probabilities = loss == "auto" and task == "classification"
        self.output_kind = output_kind

        def losses(y, prediction):
            # read when the gradients are traced: set_output_kind may come after __init__
            to_proba = self.output_kind if self._probabilities else None
            if to_proba is not None:
                # a softmax's (a sigmoid's) own output, no reshape after it: the logits under
                # it (Keras on TensorFlow keeps them on the tensor), whose cross-entropy keeps
                # its gradient where the probabilities round to 1
                under = getattr(prediction, "_keras_logits", None)
                logits = prediction if to_proba == "logits" else under if \
                    to_proba == "probabilities" else None
                if to_proba in ("logit", "sigmoid"):
                    z = prediction if to_proba == "logit" else under
                    logits = None if z is None else two_class_logits(z)
                if logits is not None:
                    return cross_entropy_of_logits(
                        tf.reshape(logits, (tf.shape(y)[0], -1)), y)
                if prediction.shape.rank != 2:
                    prediction = tf.reshape(prediction, (tf.shape(y)[0], -1))
                prediction = as_probabilities(prediction, to_proba, tf)
            return loss_fn(y, prediction)

        def gradients_of(targets):
            def one_example(args):
                x, y = args
                with tf.GradientTape() as tape:
                    value = tf.reduce_sum(losses(y[None], model(x[None], training=False)))
                grads = tape.gradient(value, targets, unconnected_gradients="zero")
                return [tf.reshape(tf.cast(tf.convert_to_tensor(g), tf.float32), [-1])
                        for g in grads]
            return one_example

        def per_example(targets, x, y):
            """``gradients_of(targets)`` of each example: ``tf.vectorized_map``, or
            ``tf.map_fn`` (one example at a time) where vectorizing fails, when traced or
            when run (:meth:`_run`): a recurrent layer fed by a trainable one."""
            if self._vectorize:
                logger = tf.get_logger()
                level = logger.level
                # pfor logs pages of errors for the operations it then loops over itself
                logger.setLevel(logging.CRITICAL)
                try:
                    return tf.vectorized_map(gradients_of(targets), (x, y))
                except (TypeError, ValueError, NotImplementedError):
                    pass
                finally:
                    logger.setLevel(level)
            return tf.map_fn(gradients_of(targets), (x, y), fn_output_signature=[
                tf.TensorSpec([int(np.prod(w.shape))], tf.float32) for w in targets])

        def batch(x, y):
            x = tf.reshape(x, (-1,) + self.input_shape)
            return tf.concat(per_example(weights, x, y), 1)

        self.dense_layers, self.conv_layers = factorisable_layers(model)
        layers = self.dense_layers + self.conv_layers
        if len(getattr(model, "outputs", None) or ()) != 1:
            self.dense_layers, self.conv_layers, layers = [], [], []
        factorised = {id(w) for layer in self.dense_layers for w in (layer.kernel, layer.bias)}
        others = [w for w in weights if id(w) not in factorised]
        batched = {id(w) for layer in self.conv_layers
                   for w in (layer.kernel, layer.bias) if w is not None}
        unbatched = [w for w in others if id(w) not in batched]
        probe = None
        if layers:
            import keras

            probe = keras.Model(model.inputs, [graph_inputs(model, layers), model.outputs[0]])

        def predicted(y, prediction):
            # the model's predicted class where y is -1 (the numpy path of as_probabilities
            # and argmax, in the graph)
            if not (task == "classification" and y.dtype.is_integer):
                return y
            proba = as_probabilities(tf.reshape(prediction, (tf.shape(y)[0], -1)),
                                     self.output_kind or "probabilities", tf)
            return tf.where(y < 0, tf.argmax(proba, axis=1, output_type=y.dtype), y)

        def factor_batch(x, y, fill_targets=False):
            x = tf.reshape(x, (-1,) + self.input_shape)
            n = tf.shape(x)[0]
            grads = {}
            if fill_targets and (unbatched or not layers):  # targets before the first tape
                y = predicted(y, model(x, training=False))
                fill_targets = False
            if unbatched:
                columns = per_example(unbatched, x, y)
                grads.update({id(w): g for w, g in zip(unbatched, columns)})
            if not layers:
                rest = [grads[id(w)] for w in others]
                return [], [], tf.concat(rest, 1) if rest else tf.zeros((n, 0)), y
            with tf.GradientTape() as tape, _RecordedPreActivations(layers) as outputs:
                inputs, prediction = probe(x, training=False)
                if fill_targets:  # the same forward pass gives the predictions
                    y = predicted(y, prediction)
                value = losses(y, prediction)
                if value.shape.rank == 0:
                    raise ValueError("`loss` must return one loss per example; got a scalar.")
                value = tf.reduce_sum(value)
            deltas = tape.gradient(value, outputs, unconnected_gradients="zero")
            # float32 factors, whatever the model computes in (a float64 model)
            inputs = [tf.cast(a, tf.float32) for a in inputs]
            deltas = [tf.cast(d, tf.float32) for d in deltas]
            n_dense = len(self.dense_layers)
            for layer, a, delta in zip(self.conv_layers, inputs[n_dense:], deltas[n_dense:]):
                grads.update(conv_gradients(layer, a, delta, tf))
            rest = [grads[id(w)] for w in others]
            # each dense layer's input with a column of ones, its bias's factor
            ones = tf.ones((n, 1))
            inputs = [tf.concat([tf.reshape(a, (n, -1)), ones], 1) for a in inputs[:n_dense]]
            return (inputs, deltas[:n_dense], tf.concat(rest, 1) if rest else tf.zeros((n, 0)),
                    y)

        def product_batch(x, y, test_inputs, test_deltas, test_rest):
            # The products of the test gradients with those of x in the same graph as the
            # gradients: the training gradients never leave TensorFlow. float64 as
            # GradientFactors.dot: dense factors in float64, the other columns in float32.
            inputs, deltas, rest, y = factor_batch(x, y, fill_targets=True)
            n = tf.shape(rest)[0]
            products = tf.zeros((tf.shape(test_rest)[0], n), tf.float64)
            sq_norms = tf.zeros((n,), tf.float64)
            for a_test, d_test, a, d in zip(test_inputs, test_deltas, inputs, deltas):
                a_test, d_test, a, d = (tf.cast(t, tf.float64) for t in (a_test, d_test, a, d))
                products += tf.matmul(a_test, a, transpose_b=True) * \
                    tf.matmul(d_test, d, transpose_b=True)
                sq_norms += tf.reduce_sum(a * a, 1) * tf.reduce_sum(d * d, 1)
            products += tf.cast(tf.matmul(test_rest, rest, transpose_b=True), tf.float64)
            sq_norms += tf.cast(tf.reduce_sum(rest * rest, 1), tf.float64)
            return inputs, deltas, rest, products, sq_norms, y

        def outputs(x):
            prediction = model(tf.reshape(x, (-1,) + self.input_shape), training=False)
            return tf.reshape(tf.cast(prediction, tf.float32), (tf.shape(x)[0], -1))

        self._batch_fn = batch
        self._factor_fn = factor_batch
        self._product_fn = product_batch
        # the widths of the factors: the test side of product_batch's signature
        self._factor_widths = ([int(np.prod(tensor.shape[1:])) + 1
                                for tensor in graph_inputs(model, self.dense_layers)],
                               [int(layer.units) for layer in self.dense_layers],
                               int(sum(np.prod(w.shape) for w in others)))
        self._outputs_fn = outputs
        self._compiled = {}
        # tf.vectorized_map of the gradient of a multi-head attention layer corrupts the
        # heap (TensorFlow 2.21 with oneDNN: "free(): invalid pointer", the process dies):
        # such models take theirs one example at a time
        self._vectorize = not _has_attention(model)

    def _run(self, kind, X, y, *test):
        tf = self.tf
        y = np.asarray(y)
        y = y.astype(np.int64) if y.dtype.kind in "iub" else y.astype(np.float32)
        # One trace per kind of target, whatever the batch size (tracing costs seconds).
        key = (kind, y.dtype.str, y.shape[1:])
        if key not in self._compiled:
            signature = [tf.TensorSpec([None, int(np.prod(self.input_shape))], tf.float32),
                         tf.TensorSpec((None,) + y.shape[1:], tf.as_dtype(y.dtype))]
            function = {"flat": self._batch_fn, "factors": self._factor_fn,
                        "products": self._product_fn}[kind]
            if kind == "products":
                a_widths, d_widths, n_other = self._factor_widths
                signature += [[tf.TensorSpec([None, w], tf.float32) for w in a_widths],
                              [tf.TensorSpec([None, w], tf.float32) for w in d_widths],
                              tf.TensorSpec([None, n_other], tf.float32)]
            # no tensor-dependent Python control flow: AutoGraph would only cost seconds
            self._compiled[key] = compiled(tf, function, input_signature=signature,
                                           autograph=False)
        X = np.asarray(X, np.float32).reshape(len(X), -1)
        try:
            return self._compiled[key](tf.constant(X), tf.constant(y), *test)
        except tf.errors.InvalidArgumentError:
            if not self._vectorize:
                raise
        # a vectorized gradient that fails when run ("Tried to append a tensor with
        # incompatible shape to a list": an LSTM fed by a Dense layer): one example at a time
        self._vectorize = False
        self._compiled = {key: f for key, f in self._compiled.items() if key == "outputs"}
        return self._run(kind, X, y, *test)

    def set_output_kind(self, output_kind):
        """What the classifier outputs (:func:`keras_output_kind`), before the first gradient.

        The model's outputs can then be read with the compiled :meth:`outputs` (which does not
        depend on it) instead of a separate eager call of the model.
        """
        if any(key != "outputs" for key in self._compiled):
            raise RuntimeError("set_output_kind must come before the first gradient.")
        self.output_kind = output_kind

    def __call__(self, X, y):
        return self._run("flat", X, y).numpy()

    def static_outputs(self):
        """What the classifier outputs and how many outputs, from the model alone: (a key
        of :data:`~skcem._gradients._outputs.OUTPUT_KINDS`, int), or None when its outputs
        must be looked at (an unknown last activation or output shape).
        """
        from .._gradients._keras import keras_output_kind

        model = self.model
        outputs = getattr(model, "outputs", None) or ()
        layers = getattr(model, "layers", None)
        if len(outputs) != 1 or not layers:
            return None
        shape = tuple(outputs[0].shape[1:])
        last = layers[-1]
        activation = "softmax" if type(last).__name__ == "Softmax" else \
            getattr(getattr(last, "activation", None), "__name__", None)
        if None in shape or activation not in ("softmax", "sigmoid", "linear"):
            return None
        check_scores_per_row((None,) + shape)
        n_outputs = int(np.prod(shape))
        return keras_output_kind(model, np.zeros((1, n_outputs))), n_outputs

    def outputs(self, X):
        """The model's outputs on the rows of ``X``, flattened: ndarray of shape (n, n_outputs).

        A compiled call: ``model.predict`` costs a second or more in set-up per call.
        """
        tf = self.tf
        if "outputs" not in self._compiled:
            signature = [tf.TensorSpec([None, int(np.prod(self.input_shape))], tf.float32)]
            self._compiled["outputs"] = compiled(tf, self._outputs_fn, input_signature=signature,
                                                 autograph=False)
        X = np.asarray(X, np.float32).reshape(len(X), -1)
        return self._compiled["outputs"](tf.constant(X)).numpy()

    def factors(self, X, y):
        """The gradients of ``X`` as :class:`GradientFactors`, ``Dense`` layers factorised."""
        inputs, deltas, rest, _ = self._run("factors", X, y)
        dense = [(a.numpy(), d.numpy()) for a, d in zip(inputs, deltas)]
        return GradientFactors(dense, rest.numpy(), matmul=tensorflow_matmul_t)

    def test_factors(self, X, y):
        """The gradients of ``X`` kept in TensorFlow, for :meth:`products`, their squared
        norms and their targets: (factors, ndarray of shape (n,), ndarray of shape (n,)).

        Computed by the function of :meth:`products` (with no test rows): one trace for both.
        For classification, a target of -1 stands for the model's predicted class (that of
        :meth:`outputs`), read from the forward pass of the gradients.
        """
        a_widths, d_widths, n_other = self._factor_widths
        empty = ([np.zeros((0, w), np.float32) for w in a_widths],
                 [np.zeros((0, w), np.float32) for w in d_widths],
                 np.zeros((0, n_other), np.float32))
        inputs, deltas, rest, _, sq_norms, targets = self._run("products", X, y, *empty)
        return (inputs, deltas, rest), sq_norms.numpy(), targets.numpy()

    def concatenate_test(self, parts):
        """The factors of :meth:`test_factors` of consecutive runs of rows, as those of all."""
        tf = self.tf
        if len(parts) == 1:
            return parts[0]
        inputs, deltas, rest = zip(*parts)
        return ([tf.concat(layer, 0) for layer in zip(*inputs)],
                [tf.concat(layer, 0) for layer in zip(*deltas)], tf.concat(rest, 0))

    def products(self, test, X, y):
        """Dot products of the gradients ``test`` (from :meth:`test_factors`) with those of
        ``X``, and the squared norms of the latter: (ndarray of shape (n_test, n),
        ndarray of shape (n,)), computed in one call of a compiled function.
        """
        *_, products, sq_norms, _ = self._run("products", X, y, *test)
        return products.numpy(), sq_norms.numpy()
