"""Per-example parameter gradients of Keras models on JAX and torch.

The gradient of one example's loss with respect to the trainable weights, through
``model.stateless_call``, vectorised over the examples of a batch (``jax.vmap(jax.grad(...))``
compiled by ``jax.jit``, or ``torch.func.vmap(torch.func.grad(...))``): the engine's
``autodiff`` object (see :mod:`skcem._gradients._keras_stateless`) says which.

:meth:`StatelessKerasGradients.factors` keeps plain ``Dense`` layers factorised, as the
TensorFlow path does (see :mod:`._keras`): each such layer's input ``a`` comes from a probe
model that outputs it, and the gradient ``δ`` with respect to its output before the activation
is the gradient with respect to an offset, zero, added there. The other weights' gradients
(convolutions included) come from the vectorised gradient, flattened in the order of the
model's weights, as on TensorFlow: the same factors, and so the same projections.

With ``loss="auto"``, a classifier that outputs logits (or one logit) has its cross-entropy
computed from them, as on TensorFlow, in the form whose gradient stays exact where the softmax
rounds to 1 (:func:`._keras_layers.cross_entropy_of_logits`): Keras's cross-entropy of
probabilities clips them to ``[1e-7, 1 - 1e-7]``, so its gradient is 0 for a confident
example. A model ending in a softmax gets that of its probabilities, unclipped (TensorFlow
alone keeps the logits under a softmax on its output).
"""

import threading

import numpy as np

from .._gradients._keras import as_probabilities
from .._gradients._keras_stateless import inference, padded_rows
from ._factors import GradientFactors
from ._keras_layers import (cross_entropy_of_logits, factorisable_layers, graph_inputs,
                            keras_loss, two_class_logits)

# The transforms of a Keras model's stateless_call swap its layers' activations while they
# run (or trace: JAX) and torch.func keeps state of its own: two threads would share both (an
# explainer used from two threads crashed inside Dense.call, and could leave the user's
# layers swapped). One call at a time.
_TRANSFORMS = threading.Lock()


class _ShiftedPreActivations:
    """While ``layers`` are called, their outputs before the activation are shifted by
    ``offsets``; the layers are restored on exit."""

    def __init__(self, layers, offsets):
        self.layers = layers
        self.offsets = offsets

    def __enter__(self):
        self.activations = [layer.activation for layer in self.layers]
        for layer, activation, offset in zip(self.layers, self.activations, self.offsets):
            layer.activation = _shifted(activation, offset)
        return self

    def __exit__(self, *exc):
        for layer, activation in zip(self.layers, self.activations):
            layer.activation = activation


def _shifted(activation, offset):
    def shifted(z):
        return activation(z + offset)
    return shifted


def _positions(variables, of):
    """Where each of ``variables`` is in the list ``of``."""
    index = {id(variable): k for k, variable in enumerate(of)}
    return [index[id(variable)] for variable in variables]


class StatelessKerasGradients:
    """Flattened per-example gradients of a Keras model's loss, batch by batch.

    The interface of :class:`._keras.KerasGradients` (``n_params``, ``__call__``,
    ``factors``, ``outputs``), for a model on JAX or torch.

    Parameters
    ----------
    model : Keras model
    loss : "auto", Keras loss or its name
    task : {"classification", "regression"}
    input_shape : tuple of int
    output_kind : str or None
        With ``loss="auto"`` for classification, outputs of this kind (logits, one sigmoid)
        become class probabilities first, as in the CEM path.
    autodiff : object
        The engine's function transforms (``AUTODIFF`` of
        :mod:`skcem._gradients._keras_jax` or :mod:`skcem._gradients._keras_torch`).
    """

    def __init__(self, model, loss, task, input_shape, output_kind, autodiff):
        import keras

        ops = keras.ops
        self.model = model
        self.autodiff = autodiff
        self.input_shape = tuple(input_shape)
        weights = list(model.trainable_variables)
        if not weights:
            raise ValueError("`estimator` has no trainable weights: there is no gradient to "
                             "compare.")
        self.n_params = int(sum(np.prod(w.shape) for w in weights))
        loss_fn = keras_loss(loss, task)
        self.output_kind = output_kind
        probabilities = loss == "auto" and task == "classification"

        def losses(y, prediction):
            # read when the gradients are traced: set_output_kind may come after __init__
            to_proba = self.output_kind if probabilities else None
            if to_proba in ("logits", "logit"):  # see the module's docstring
                prediction = ops.reshape(prediction, (y.shape[0], -1))
                return cross_entropy_of_logits(
                    prediction if to_proba == "logits" else two_class_logits(prediction), y)
            if to_proba is not None:
                prediction = as_probabilities(ops.reshape(prediction, (y.shape[0], -1)),
                                              to_proba, ops=ops)
                # -log p_y, unclipped: Keras's cross-entropy clips the probabilities, which
                # zeroes the gradient of a row whose softmax rounds to 1 (the other classes'
                # tiny probabilities carry it)
                p_y = ops.take_along_axis(prediction, ops.reshape(y, (-1, 1)), axis=1)
                tiny = float(np.finfo(keras.backend.standardize_dtype(prediction.dtype)).tiny)
                return -ops.log(ops.maximum(ops.reshape(p_y, (-1,)), tiny))
            return loss_fn(y, prediction)

        def rows(x):
            return ops.reshape(x, (-1,) + self.input_shape)

        def flat(grads, n):
            return ops.concatenate([ops.reshape(g, (n, -1)) for g in grads], axis=1)

        def example_loss(trainable, non_trainable, x, y):
            prediction, _ = model.stateless_call(trainable, non_trainable, rows(x[None]),
                                                 **inference(model))
            return ops.sum(losses(y[None], prediction))

        per_example = autodiff.vmap(autodiff.grad(example_loss), (None, None, 0, 0))

        def batch(weights, x, y):
            return flat(per_example(*weights, x, y), x.shape[0])

        self.dense_layers = factorisable_layers(model)[0]
        if len(getattr(model, "outputs", None) or ()) != 1:
            self.dense_layers = []
        factorised = {id(w) for layer in self.dense_layers for w in (layer.kernel, layer.bias)}
        others = [k for k, w in enumerate(weights) if id(w) not in factorised]
        probe = None
        if self.dense_layers:
            probe = keras.Model(model.inputs, [graph_inputs(model, self.dense_layers),
                                               model.outputs[0]])
            probe_trainable = _positions(probe.trainable_variables, weights)
            probe_non_trainable = _positions(probe.non_trainable_variables,
                                             model.non_trainable_variables)

        def example_factors(other_values, offsets, trainable, non_trainable, x, y):
            """One example's loss; its inputs to the dense layers as auxiliary outputs."""
            trainable = list(trainable)
            for k, value in zip(others, other_values):
                trainable[k] = value
            if probe is None:
                prediction, _ = model.stateless_call(trainable, non_trainable, rows(x[None]),
                                                     **inference(model))
                return ops.sum(losses(y[None], prediction)), []
            with _ShiftedPreActivations(self.dense_layers, offsets):
                (inputs, prediction), _ = probe.stateless_call(
                    [trainable[k] for k in probe_trainable],
                    [non_trainable[k] for k in probe_non_trainable], rows(x[None]),
                    training=False)
            return ops.sum(losses(y[None], prediction)), list(inputs)

        factors_per_example = autodiff.vmap(
            autodiff.grad(example_factors, argnums=(0, 1), has_aux=True),
            (None, 0, None, None, 0, 0))

        def factor_batch(weights, x, y):
            trainable, non_trainable = weights
            n = x.shape[0]
            offsets = [ops.zeros((n, 1, int(layer.units)), dtype="float32")
                       for layer in self.dense_layers]
            (other_grads, deltas), inputs = factors_per_example(
                [trainable[k] for k in others], offsets, trainable, non_trainable, x, y)
            rest = flat(other_grads, n) if others else ops.zeros((n, 0), dtype="float32")
            return ([ops.reshape(a, (n, -1)) for a in inputs],
                    [ops.reshape(d, (n, -1)) for d in deltas], rest)

        def outputs(weights, x):
            prediction, _ = model.stateless_call(*weights, rows(x), **inference(model))
            return ops.reshape(prediction, (x.shape[0], -1))

        self._batch = autodiff.compile(batch)
        self._factor_batch = autodiff.compile(factor_batch)
        self._outputs = autodiff.compile(outputs)

    def _weights(self):
        values = self.autodiff.values
        return (values(self.model.trainable_variables),
                values(self.model.non_trainable_variables))

    def _run(self, function, X, y=None):
        """``function(weights, X[, y])`` on rows padded as the engine asks; the row count."""
        autodiff = self.autodiff
        n = len(X)
        size = autodiff.padded_size(n)
        X = np.asarray(X, np.float32).reshape(n, -1)
        args = [padded_rows(X, size)]
        if y is not None:
            y = np.asarray(y)
            y = y.astype(autodiff.integer_dtype) if y.dtype.kind in "iub" \
                else y.astype(np.float32)
            args.append(padded_rows(y, size))
        with _TRANSFORMS:
            return function(self._weights(), *[autodiff.tensor(a) for a in args]), n

    def __call__(self, X, y):
        out, n = self._run(self._batch, X, y)
        return self.autodiff.numpy(out)[:n]

    def set_output_kind(self, output_kind):
        """What the classifier outputs (:func:`keras_output_kind`), before the first gradient.

        Parameters
        ----------
        output_kind : str
            One of :data:`~skcem._gradients._keras.OUTPUT_KINDS`.
        """
        self.output_kind = output_kind

    def outputs(self, X):
        """The model's outputs on the rows of ``X``, flattened: ndarray of shape (n, n_outputs)."""
        out, n = self._run(self._outputs, X)
        return self.autodiff.numpy(out)[:n]

    def factors(self, X, y):
        """The gradients of ``X`` as :class:`GradientFactors`, ``Dense`` layers factorised."""
        (inputs, deltas, rest), n = self._run(self._factor_batch, X, y)
        numpy = self.autodiff.numpy
        ones = np.ones((n, 1))
        dense = [(np.hstack([numpy(a)[:n], ones]), numpy(d)[:n])
                 for a, d in zip(inputs, deltas)]
        return GradientFactors(dense, numpy(rest)[:n])

