"""Keras models differentiated through ``model.stateless_call``: the JAX and torch engines.

A stateless call takes the model's weights as arguments, so a function transform
(``jax.vjp`` under ``jax.jit``, ``torch.func.vjp``) sees the whole computation, and the weights
are read afresh at each call: a model trained further between two explanations is explained
as it is now, as on TensorFlow. What differs between the two libraries (how to compile, how to
take a vector-Jacobian product, where the loss terms of :mod:`skcem.costs` run) is an
``autodiff`` object of the engine module (:mod:`._keras_jax`, :mod:`._keras_torch`); the rest,
written with ``keras.ops``, is shared.
"""

import copy
import threading
import weakref
from collections import OrderedDict

import numpy as np

from .._array_api import HOST
from ._base import Evaluation
from ._keras import as_probabilities


# The compiled functions of each model, shared by all its explainers: a new explainer of the
# same model (a clone in a grid search, one per fold) would have JAX compile its functions
# again, seconds each. Weakly keyed, and the functions reach the model only through a weak
# proxy (see StatelessModel.compiled): the cache keeps no model alive.
_COMPILED = weakref.WeakKeyDictionary()
_COMPILED_LOCK = threading.Lock()
_COMPILED_PER_MODEL = 16


def inference(model):
    """``training=False`` where the model's ``call`` takes it: ``stateless_call`` hands it
    on as it is, and a subclassed model's ``call(self, x)`` (as Keras's guides write it)
    refuses it, where calling the model drops it."""
    return {"training": False} if getattr(model, "_call_has_training_arg", True) else {}


class StatelessModel:
    """A Keras model behind flat float32 rows, called statelessly.

    Parameters
    ----------
    model : Keras model
    input_shape : tuple of int
        Shape of one instance, without the batch dimension.
    """

    autodiff = None  # the engine module's subclasses set it

    def __init__(self, model, input_shape):
        import keras

        self.ops = keras.ops
        self.model = model
        self.input_shape = tuple(input_shape)
        self.n_features = int(np.prod(self.input_shape))

    def compiled(self, key, build):
        """``build(twin)`` compiled by the engine, the same function for every instance of
        this class on the same model with the same ``key`` (what else the function depends
        on) and input shape. ``twin`` is a shallow copy of ``self`` that holds the model (and
        an auto-encoder's) through weak proxies: the function, kept in a cache keyed by the
        model, must not keep it alive."""
        key = (type(self), self.input_shape, key)
        with _COMPILED_LOCK:
            functions = _COMPILED.setdefault(self.model, OrderedDict())
            if key in functions:
                functions.move_to_end(key)
                return functions[key]
            functions[key] = function = self.autodiff.compile(build(self._weak_twin()))
            # the most recently used only: a grid over kappa (part of the loss's key) or over
            # auto-encoders would otherwise keep one function per setting as long as the model
            while len(functions) > _COMPILED_PER_MODEL:
                functions.popitem(last=False)
            return function

    def _weak_twin(self):
        twin = copy.copy(self)
        twin.model = weakref.proxy(self.model)
        return twin

    def weights(self):
        """The model's current (trainable, non-trainable) weight values."""
        values = self.autodiff.values
        return (values(self.model.trainable_variables),
                values(self.model.non_trainable_variables))

    def forward(self, weights, z):
        """The model's outputs at the flat rows ``z``, flattened: shape (n, n_outputs)."""
        ops = self.ops
        out, _ = self.model.stateless_call(*weights, ops.reshape(z, (-1,) + self.input_shape),
                                           **inference(self.model))
        # float32 whatever the model's dtype policy (a mixed_bfloat16 model's last layer):
        # the search's probabilities and cotangents are float32
        return ops.reshape(ops.cast(out, "float32"), (z.shape[0], -1))

    def run(self, function, *arrays):
        """``function(weights, *rows)`` on ``arrays`` of as many rows each: numpy arrays, or
        the engine's own (the search's, on the model's device: see :meth:`array_place`).

        The rows go in as float32, padded as the engine asks (JAX compiles once per batch
        size: a few sizes serve every batch), and the answers (a tensor or a dict of them)
        come back cut to them, as float64 numpy arrays or, for the engine's arrays, in the
        dtype of the first of ``arrays``.
        """
        autodiff = self.autodiff
        n = arrays[0].shape[0]
        size = autodiff.padded_size(n)
        if isinstance(arrays[0], np.ndarray):
            tensors = [autodiff.tensor(padded_rows(np.asarray(a, dtype=np.float32), size))
                       for a in arrays]

            def answer(value):
                return autodiff.numpy(value)[:n].astype(float)
        else:
            tensors = [autodiff.padded_float32(a, size) for a in arrays]
            dtype = arrays[0].dtype

            def answer(value):
                return autodiff.cast(value[:n], dtype)
        out = function(self.weights(), *tensors)
        if isinstance(out, dict):
            return {name: answer(value) for name, value in out.items()}
        return answer(out)


def padded_rows(array, size):
    """``array`` with rows of zeros up to ``size`` rows."""
    if len(array) == size:
        return array
    return np.concatenate([array, np.zeros((size - len(array),) + array.shape[1:],
                                           dtype=array.dtype)])


class StatelessAutoencoder(StatelessModel):
    """``||AE(z) - z||^2`` per row and its gradient, by the engine's autodiff."""

    def __init__(self, model, input_shape):
        super().__init__(model, input_shape)
        self._loss = self.compiled("loss", lambda twin: twin.loss_rows)
        self._loss_and_grad = self.compiled("loss and grad",
                                            lambda twin: twin.loss_rows_and_grad)

    def loss_rows(self, weights, z):
        """``||AE(z) - z||^2`` for each row of the tensor ``z``."""
        return self.ops.sum(self.ops.square(self.forward(weights, z) - z), axis=1)

    def loss_rows_and_grad(self, weights, z):
        """:meth:`loss_rows` and the gradient of their sum with respect to ``z``."""
        rows, pullback = self.autodiff.vjp(lambda z_: self.loss_rows(weights, z_), z)
        return {"loss": rows, "grad": pullback(self.ops.ones_like(rows))[0]}

    def loss(self, Z):
        return self.run(self._loss, Z)

    def __call__(self, Z):
        out = self.run(self._loss_and_grad, Z)
        return out["loss"], out["grad"]


class StatelessBackend(StatelessModel):
    """Answers the optimizer's questions for a Keras classifier, as the TensorFlow engine's
    ``KerasBackend`` does.

    Each iteration is one call (compiled on JAX): probabilities at the iterates, the
    vector-Jacobian product of the probabilities at the slack points with the attack loss's
    gradient (held fixed: the gradient of ``sum_k w_k p_k``, as on TensorFlow) and, with an
    auto-encoder of the same engine, the auto-encoder's term.
    """

    def __init__(self, model, input_shape, autoencoder=None, output_kind="probabilities"):
        super().__init__(model, input_shape)
        self.output_kind = output_kind
        self.autoencoder = autoencoder
        self.n_model_rows = 0
        self._predict = self.compiled(("proba", output_kind), lambda twin: twin.proba)

    def proba(self, weights, z):
        """Class probabilities at the flat rows ``z`` (a tensor)."""
        return as_probabilities(self.forward(weights, z), self.output_kind, ops=self.ops)

    def _weak_twin(self):
        twin = super()._weak_twin()
        if isinstance(self.autoencoder, StatelessModel):
            twin.autoencoder = self.autoencoder._weak_twin()
        return twin

    def _evaluation(self, loss, with_attack_grad, with_ae_grad, with_ae_loss_at_adv):
        """The function of one iteration's questions (see :meth:`evaluate`), of ``self``
        (a weak twin: see :meth:`compiled`)."""
        autodiff, ops = self.autodiff, self.ops
        ae = self.autoencoder if with_ae_grad else None

        def evaluate(weights, z_adv, z_s, target_onehot):
            model_weights, ae_weights = weights
            out = {"proba_adv": self.proba(model_weights, z_adv)}
            if with_attack_grad:
                proba, pullback = autodiff.vjp(lambda z: self.proba(model_weights, z), z_s)
                out["attack_grad"] = pullback(autodiff.cotangent(loss, proba, target_onehot))[0]
            if ae is not None:
                rows, pullback = autodiff.vjp(lambda z: ae.loss_rows(ae_weights, z), z_s)
                out["ae_grad"] = pullback(ops.ones_like(rows))[0]
                if with_ae_loss_at_adv:
                    out["ae_loss_adv"] = ae.loss_rows(ae_weights, z_adv)
            return out

        return evaluate

    def _fused_autoencoder(self):
        """Whether the auto-encoder's term is computed in the same call: an auto-encoder of
        the same engine."""
        return isinstance(self.autoencoder, StatelessAutoencoder) and \
            self.autoencoder.autodiff is self.autodiff

    def array_place(self):
        """Where the optimizer's batch lives (:mod:`skcem._array_api`): the engine's arrays
        on the model's device, where the engine says so (:meth:`array_place` of its
        ``autodiff``) and no auto-encoder of another kind needs the host."""
        if self.autoencoder is not None and not self._fused_autoencoder():
            return HOST
        return self.autodiff.array_place(self.model.trainable_variables)

    def predict_proba(self, Z):
        self.n_model_rows += Z.shape[0]
        return self.run(self._predict, Z)

    def predict(self, Z):
        """Class indices: a Keras classifier predicts the most probable class."""
        return self.predict_proba(Z).argmax(axis=1)

    def evaluate(self, Z_adv, Z_s, target_onehot, loss, *, with_attack_grad=True,
                 with_ae_grad=False, with_ae_loss_at_adv=False):
        """Probabilities at ``Z_adv``; gradients of ``loss`` (and AE) at ``Z_s``; one call."""
        fused_ae = with_ae_grad and self._fused_autoencoder()
        flags = (with_attack_grad, fused_ae, fused_ae and with_ae_loss_at_adv)
        ae = self.autoencoder if fused_ae else None
        # (the auto-encoder by a weak reference: a dead one's key matches no new one)
        key = ("evaluate", self.output_kind, type(loss), loss.key(), flags,
               None if ae is None else (weakref.ref(ae.model), ae.input_shape))
        function = self.compiled(key, lambda twin: twin._evaluation(loss, *flags))
        out = self.run(_WithAutoencoderWeights(function, ae), Z_adv, Z_s, target_onehot)
        self.n_model_rows += Z_adv.shape[0] + (Z_s.shape[0] if with_attack_grad else 0)
        answer = Evaluation(**out)
        if with_ae_grad and not fused_ae:
            _, answer.ae_grad = self.autoencoder(Z_s)
            if with_ae_loss_at_adv:
                answer.ae_loss_adv = self.autoencoder.loss(Z_adv)
        return answer


class _WithAutoencoderWeights:
    """``function((weights, ae_weights), *rows)`` called as ``(weights, *rows)``: the fused
    auto-encoder's weights are read at each call too."""

    def __init__(self, function, autoencoder):
        self.function = function
        self.autoencoder = autoencoder

    def __call__(self, weights, *rows):
        ae_weights = None if self.autoencoder is None else self.autoencoder.weights()
        return self.function((weights, ae_weights), *rows)
