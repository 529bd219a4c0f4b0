"""Keras 3 models on TensorFlow: gradients by autodiff, compiled with ``tf.function``.

Imported only when the estimator (or the auto-encoder) is a Keras model. Nothing here changes
TensorFlow's global state: no graph mode, no sessions, so a user's eager code keeps working.
The loss terms are those of :mod:`skcem.costs`, run on TensorFlow tensors through
``tensorflow.experimental.numpy``.
"""

import re

import numpy as np

from ._base import Evaluation, check_input_shape, check_reconstruction
from ._outputs import OUTPUT_KINDS, output_kind  # noqa: F401
from ._outputs import as_probabilities as numpy_probabilities

INSTALL_HINT = "pip install skcem[tf]"
MODEL_NAME = "Keras model"  # how messages name such a model


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


def model_input_shape(model, name="the Keras model", required=True):
    """The shape of one instance as ``model`` expects it, without the batch dimension.

    Models with several inputs are refused; a shape that is not fully known is an error
    (asking for ``input_shape``), or None when not ``required``.
    """
    try:
        shape, inputs = model.input_shape, model.inputs
    except (AttributeError, ValueError):
        shape, inputs = None, None
    if isinstance(shape, list) or isinstance(inputs, (list, tuple)) and len(inputs) > 1:
        raise ValueError(f"{name[0].upper() + name[1:]} takes {len(inputs)} inputs; skcem "
                         "explains models with one input (combine them into one, e.g. with "
                         "a model that splits a flat row).")
    if shape is None or any(dim is None for dim in shape[1:]):
        if not required:
            return None
        raise ValueError(f"Cannot infer the input shape of {name}; pass `input_shape`.")
    return tuple(int(dim) for dim in shape[1:])


def call_on_rows(model, rows, shape, name):
    """``model`` on the flat ``rows`` reshaped to ``shape``; a failure names ``input_shape``."""
    try:
        return np.asarray(model(np.asarray(rows, dtype=np.float32).reshape((-1,) + tuple(shape)),
                                training=False))
    except Exception as exc:  # Keras raises many kinds; its first lines say what it was
        lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(exc).splitlines()]
        lines = [line for line in lines if line and not line.startswith("Exception encountered")]
        first = lines[0][:200] if lines else type(exc).__name__
        raise ValueError(f"{name} fails on rows reshaped to {tuple(shape)} ({first}); pass the "
                         "`input_shape` it takes.") from exc


def keras_output_kind(model, outputs):
    """Which of :data:`~skcem._gradients._outputs.OUTPUT_KINDS` the classifier outputs.

    Decided by the last layer's activation when it is softmax, sigmoid or linear, else by
    the ``outputs`` on sample rows (see :func:`~skcem._gradients._outputs.output_kind`).
    """
    layers = getattr(model, "layers", None) or [model]
    last = layers[-1]
    activation = getattr(getattr(last, "activation", None), "__name__", None)
    if type(last).__name__ == "Softmax":
        activation = "softmax"
    known = activation if activation in ("softmax", "sigmoid", "linear") else None
    return output_kind(outputs, known,
                       last=f"{type(last).__name__}, activation {activation!r}")


def check_device(device):
    """Keras places its models itself: ``device`` is for PyTorch models."""
    if device is not None:
        raise ValueError(f"`device` applies to PyTorch models; got device={device!r} with a "
                         "Keras model, which TensorFlow places itself. Leave it None.")


def detect_output_kind(model, sample, input_shape=None, device=None):
    """:func:`keras_output_kind` of ``model`` on the 2-D ``sample`` rows.

    Imports TensorFlow first (for its installation hint) and checks that ``input_shape`` (or
    the model's own) holds as many values as ``sample`` has columns.
    """
    import_tensorflow()
    check_device(device)
    own = model_input_shape(model, "`estimator`", required=input_shape is None)
    shape = input_shape or own
    check_input_shape(shape, sample.shape[1], input_shape is not None, what="The Keras model")
    outputs = call_on_rows(model, sample, shape, "`estimator`")
    return keras_output_kind(model, outputs)


def as_probabilities(outputs, kind, tf=None):
    """Class probabilities from a classifier's outputs of the given kind (numpy or ``tf``)."""
    if tf is None or kind == "probabilities":
        return numpy_probabilities(outputs, kind)
    if kind == "logits":
        return tf.nn.softmax(outputs, axis=1)
    s = outputs if kind == "sigmoid" else tf.sigmoid(outputs)
    return tf.concat([1 - s, s], axis=1)


def make_backend(model, *, input_shape, n_features, output_kind, autoencoder, device=None):
    """The :class:`KerasBackend` of ``model`` (the framework contract of
    :func:`skcem._gradients.make_backend`); ``autoencoder(shape)`` makes the auto-encoder term
    for the model's input shape."""
    import_tensorflow()  # before anything else, for its installation hint
    check_device(device)
    given = input_shape is not None
    own = model_input_shape(model, "`estimator`", required=not given)
    input_shape = input_shape or own
    check_input_shape(input_shape, n_features, given, what="The Keras model")
    return KerasBackend(model, input_shape, autoencoder(input_shape), output_kind)


def make_autoencoder(model, input_shape, n_features, device=None):
    """The :class:`KerasAutoencoder` term of ``model``; ``input_shape`` (the classifier's)
    is used when the auto-encoder's own is not known."""
    check_device(device)
    # Each model takes its own shape: a dense auto-encoder may explain a CNN's images.
    own = model_input_shape(model, "`autoencoder`", required=input_shape is None)
    shape = own or input_shape
    check_input_shape(shape, n_features, own is None, what="The `autoencoder`")
    check_reconstruction(call_on_rows(model, np.zeros((1, n_features)), shape, "`autoencoder`"),
                         n_features)
    return KerasAutoencoder(model, shape)


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
            return loss, tape.gradient(loss, z)

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
                out["attack_grad"] = tape.gradient(weighted, z_s)
            if ae is not None:
                with tf.GradientTape() as tape:
                    tape.watch(z_s)
                    ae_loss = tf.reduce_sum(ae.loss_tensor(z_s))
                out["ae_grad"] = tape.gradient(ae_loss, z_s)
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
