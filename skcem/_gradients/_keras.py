"""Keras 3 models on TensorFlow: gradients by autodiff, compiled with ``tf.function``.

Imported only when the estimator (or the auto-encoder) is a Keras model. Nothing here changes
TensorFlow's global state: no graph mode, no sessions, so a user's eager code keeps working.
The hinge attack loss is the one of :mod:`skcem._attack`, run on TensorFlow tensors through
``tensorflow.experimental.numpy``.
"""

import numpy as np

from .._attack import attack_loss

INSTALL_HINT = "pip install skcem[tf]"


def is_keras_model(obj):
    """True for a Keras model or layer, decided without importing Keras."""
    return any(cls.__module__.split(".")[0] in ("keras", "tf_keras")
               for cls in type(obj).__mro__)


def import_tensorflow():
    """TensorFlow, or an ImportError that says how to install it."""
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise ImportError("Explaining a Keras model needs TensorFlow, which is not installed: "
                          f"`{INSTALL_HINT}`.") from exc
    import keras

    if keras.backend.backend() != "tensorflow":
        raise ImportError(f"skcem differentiates Keras models with TensorFlow, but Keras runs on "
                          f"'{keras.backend.backend()}'; set KERAS_BACKEND=tensorflow.")
    return tf


def model_input_shape(model):
    """The shape of one instance as ``model`` expects it, without the batch dimension."""
    shape = getattr(model, "input_shape", None)
    if shape is None or isinstance(shape, list) or any(dim is None for dim in shape[1:]):
        raise ValueError("Cannot infer the input shape of the Keras model; pass `input_shape`.")
    return tuple(int(dim) for dim in shape[1:])


class _Compiled:
    """A model behind flat float32 rows: reshaped inside the compiled function."""

    def __init__(self, model, input_shape):
        self.tf = import_tensorflow()
        self.model = model
        self.input_shape = tuple(input_shape)
        self.n_features = int(np.prod(self.input_shape))
        self.spec = self.tf.TensorSpec([None, self.n_features], self.tf.float32)

    def forward(self, z):
        out = self.model(self.tf.reshape(z, (-1,) + self.input_shape), training=False)
        return self.tf.reshape(out, (-1, int(np.prod(out.shape[1:]))))

    def tensor(self, array):
        return self.tf.convert_to_tensor(np.asarray(array, dtype=np.float32))


class KerasAutoencoder(_Compiled):
    """``||AE(z) - z||^2`` per row and its gradient, by autodiff."""

    def __init__(self, model, input_shape):
        super().__init__(model, input_shape)
        tf = self.tf

        @tf.function(input_signature=[self.spec], reduce_retracing=True)
        def loss_and_grad(z):
            with tf.GradientTape() as tape:
                tape.watch(z)
                loss = tf.reduce_sum(tf.square(self.forward(z) - z), axis=1)
            return loss, tape.gradient(loss, z)

        self._loss_and_grad = loss_and_grad

    def __call__(self, Z):
        loss, grad = self._loss_and_grad(self.tensor(Z))
        return loss.numpy().astype(float), grad.numpy().astype(float)


class KerasBackend(_Compiled):
    """Answers the optimizer's questions for a Keras classifier that outputs probabilities.

    One compiled call per question and batch: ``predict_proba`` is a forward pass; the attack
    gradient is a forward and a backward pass that computes the hinge on the probabilities it
    has just produced, so it needs no probabilities from the optimizer.
    """

    gradient_uses_proba = False

    def __init__(self, model, input_shape, autoencoder=None):
        super().__init__(model, input_shape)
        self.autoencoder = autoencoder
        self.n_model_rows = 0
        tf = self.tf
        self._predict = tf.function(self.forward, input_signature=[self.spec],
                                    reduce_retracing=True)
        self._gradients = {mode: self._compile_gradient(mode) for mode in ("PN", "PP")}

    def _compile_gradient(self, mode):
        tf = self.tf
        import tensorflow.experimental.numpy as tnp

        @tf.function(input_signature=[self.spec, tf.TensorSpec([None, None], tf.float32),
                                      tf.TensorSpec([], tf.float32)], reduce_retracing=True)
        def gradient(z, target_onehot, kappa):
            with tf.GradientTape() as tape:
                tape.watch(z)
                proba = self.forward(z)
                _, dloss_dproba = attack_loss(proba, target_onehot, mode, kappa, xp=tnp)
                # sum_k w_k p_k with w = df/dp held fixed: its gradient is grad_z f
                weighted = tf.reduce_sum(proba * tf.stop_gradient(dloss_dproba))
            return tape.gradient(weighted, z)

        return gradient

    def predict_proba(self, Z):
        self.n_model_rows += Z.shape[0]
        return self._predict(self.tensor(Z)).numpy().astype(float)

    def attack_gradient(self, Z, target_onehot, mode, kappa, proba=None):
        self.n_model_rows += Z.shape[0]
        grad = self._gradients[mode](self.tensor(Z), self.tensor(target_onehot),
                                     self.tf.constant(kappa, self.tf.float32))
        return grad.numpy().astype(float)

    def autoencoder_loss(self, Z):
        return self.autoencoder(Z)
