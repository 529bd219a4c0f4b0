"""The TensorFlow engine of Keras models: gradients by ``GradientTape``, compiled with
``tf.function``.

Chosen when a Keras model runs on TensorFlow (see :func:`skcem._gradients._keras.keras_engine`);
TensorFlow itself is imported only then. Nothing here changes TensorFlow's global state:
no graph mode, no sessions, so a user's eager code keeps working. The loss terms are those of
:mod:`skcem.costs`, run on TensorFlow tensors through ``tensorflow.experimental.numpy``.
"""

import numpy as np

from ._base import Evaluation
from ._keras import INSTALL_HINTS, as_probabilities


def import_tensorflow():
    """TensorFlow, or an ImportError that says how to install it."""
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise ImportError("Explaining a Keras model on TensorFlow needs TensorFlow, which is "
                          f"not installed: `{INSTALL_HINTS['tensorflow']}`.") from exc
    return tf


def compiled(tf, function, **options):
    """``tf.function(function, **options)`` without TensorFlow's "frequent retracing" warning.

    Each explainer traces its functions once per input signature, but TensorFlow counts the
    traces of every function with the same code together: a few explainers of one model
    (``GridSearchCV``'s clones) would read as retracing.
    """
    traced = tf.function(function, **options)
    traced._omit_frequent_tracing_warning = True  # the switch Keras uses for its own functions
    return traced


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
        # float32 out, whatever the model computes in (a float64 or float16 model)
        out = self.tf.cast(out, self.tf.float32)
        return self.tf.reshape(out, (-1, int(np.prod(out.shape[1:]))))

    def tensor(self, array):
        return self.tf.convert_to_tensor(np.asarray(array, dtype=np.float32))


class KerasAutoencoder(_Compiled):
    """``||AE(z) - z||^2`` per row and its gradient, by autodiff."""

    def __init__(self, model, input_shape):
        super().__init__(model, input_shape)
        tf = self.tf
        self._loss = compiled(tf, self.loss_tensor, input_signature=[self.spec],
                              reduce_retracing=True)

        def loss_and_grad(z):
            with tf.GradientTape() as tape:
                tape.watch(z)
                loss = self.loss_tensor(z)
            return loss, tape.gradient(loss, z, unconnected_gradients="zero")

        self._loss_and_grad = compiled(tf, loss_and_grad, input_signature=[self.spec],
                                       reduce_retracing=True)

    def loss_tensor(self, z):
        return self.tf.reduce_sum(self.tf.square(self.forward(z) - z), axis=1)

    def loss(self, Z):
        return self._loss(self.tensor(Z)).numpy().astype(float)

    def __call__(self, Z):
        loss, grad = self._loss_and_grad(self.tensor(Z))
        return loss.numpy().astype(float), grad.numpy().astype(float)


class KerasBackend(_Compiled):
    """Answers the optimizer's questions for a Keras classifier.

    Each iteration is one compiled call: a forward pass at the iterates, and a forward and
    backward pass at the slack points of the classifier (whose hinge is computed on the
    probabilities just produced) and, with a Keras auto-encoder, of the auto-encoder.
    ``output_kind`` (:func:`keras_output_kind`) says how the model's outputs become class
    probabilities: logits and single sigmoid outputs are converted inside the graph.
    """

    def __init__(self, model, input_shape, autoencoder=None, output_kind="probabilities"):
        super().__init__(model, input_shape)
        self.output_kind = output_kind
        self.autoencoder = autoencoder
        self.n_model_rows = 0
        self._predict = compiled(self.tf, self.forward, input_signature=[self.spec],
                                 reduce_retracing=True)
        self._compiled = {}

    def _compile(self, loss, with_attack_grad, with_ae_grad, with_ae_loss_at_adv):
        tf = self.tf
        import tensorflow.experimental.numpy as tnp

        ae = self.autoencoder if with_ae_grad else None

        def evaluate(z_adv, z_s, target_onehot):
            out = {"proba_adv": self.forward(z_adv)}
            if with_attack_grad:
                with tf.GradientTape() as tape:
                    tape.watch(z_s)
                    proba = self.forward(z_s)
                    dloss_dproba = loss.gradient(proba, target_onehot, xp=tnp)
                    # sum_k w_k p_k with w = df/dp held fixed: its gradient is grad_z f
                    weighted = tf.reduce_sum(proba * tf.stop_gradient(dloss_dproba))
                # zero, not None, where no path leads back to the input (a Discretization)
                out["attack_grad"] = tape.gradient(weighted, z_s, unconnected_gradients="zero")
            if ae is not None:
                with tf.GradientTape() as tape:
                    tape.watch(z_s)
                    ae_loss = tf.reduce_sum(ae.loss_tensor(z_s))
                out["ae_grad"] = tape.gradient(ae_loss, z_s, unconnected_gradients="zero")
                if with_ae_loss_at_adv:
                    out["ae_loss_adv"] = ae.loss_tensor(z_adv)
            return out

        return compiled(tf, evaluate, input_signature=[
            self.spec, self.spec, tf.TensorSpec([None, None], tf.float32)],
            reduce_retracing=True)

    def forward(self, z):
        return as_probabilities(super().forward(z), self.output_kind, self.tf)

    def predict_proba(self, Z):
        self.n_model_rows += Z.shape[0]
        return self._predict(self.tensor(Z)).numpy().astype(float)

    def predict(self, Z):
        """Class indices: a Keras classifier predicts the most probable class."""
        return self.predict_proba(Z).argmax(axis=1)

    def evaluate(self, Z_adv, Z_s, target_onehot, loss, *, with_attack_grad=True,
                 with_ae_grad=False, with_ae_loss_at_adv=False):
        """Probabilities at ``Z_adv``; gradients of ``loss`` (and AE) at ``Z_s``; one call."""
        fused_ae = with_ae_grad and isinstance(self.autoencoder, KerasAutoencoder)
        key = (loss.key(), with_attack_grad, fused_ae, fused_ae and with_ae_loss_at_adv)
        if key not in self._compiled:
            self._compiled[key] = self._compile(loss, *key[1:])
        out = self._compiled[key](self.tensor(Z_adv), self.tensor(Z_s),
                                  self.tensor(target_onehot))
        self.n_model_rows += Z_adv.shape[0] + (Z_s.shape[0] if with_attack_grad else 0)
        answer = Evaluation(**{name: value.numpy().astype(float) for name, value in out.items()})
        if with_ae_grad and not fused_ae:
            _, answer.ae_grad = self.autoencoder(Z_s)
            if with_ae_loss_at_adv:
                answer.ae_loss_adv = self.autoencoder.loss(Z_adv)
        return answer
