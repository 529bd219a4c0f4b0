"""Keras 3 models, whatever their backend: shapes, output kinds, and the choice of engine.

What does not depend on the autodiff library lives here: the input shape of one instance, what
the classifier outputs (:data:`OUTPUT_KINDS`), calls on flat rows. The gradients come from an
engine picked by the backend the model runs on (:func:`keras_engine`), all answering the
optimizer the same questions (:class:`skcem._gradients._base.Evaluation`):

- TensorFlow (:mod:`._keras_tf`): ``GradientTape`` in ``tf.function``;
- JAX (:mod:`._keras_jax`): ``jax.vjp`` of ``model.stateless_call`` in ``jax.jit``;
- torch (:mod:`._keras_torch`): ``torch.func.vjp`` of ``model.stateless_call``.

Keras 3 fixes its backend once per process (``KERAS_BACKEND``); a ``tf_keras`` (Keras 2)
model always runs on TensorFlow. Imported only when the estimator (or the auto-encoder) is a
Keras model, and imports no backend library but the model's own: a model on JAX or torch
never imports TensorFlow.
"""

import importlib
import re

import numpy as np

from ._base import check_input_shape, check_reconstruction
from ._outputs import OUTPUT_KINDS, check_scores_per_row, output_kind  # noqa: F401
from ._outputs import as_probabilities as numpy_probabilities

MODEL_NAME = "Keras model"  # how messages name such a model

# How to install each backend's library (a backend is named as its library).
INSTALL_HINTS = {
    "tensorflow": "pip install skcem[tf]",
    "jax": "pip install skcem[jax]",
    "torch": "pip install torch",
}
_ENGINES = {"tensorflow": "._keras_tf", "jax": "._keras_jax", "torch": "._keras_torch"}

# A numpy array's repr, (("[[0.41 0.73 ... 0.95]\n [...]]"): a Keras error may hold the rows.
_ARRAY_REPR = re.compile(r"\[\[[-+0-9.eEnaif\s,\[\]]*(?:\.\.\.[-+0-9.eEnaif\s,\[\]]*)*\]\]")


def is_keras_model(obj):
    """True for a Keras model or layer, decided without importing Keras."""
    return any(cls.__module__.split(".")[0] in ("keras", "tf_keras")
               for cls in type(obj).__mro__)


def keras_backend_name(model):
    """The backend ``model`` runs on: "tensorflow", "jax" or "torch".

    Keras 3's own (``keras.backend.backend()``, fixed per process by ``KERAS_BACKEND``), or
    "tensorflow" for a ``tf_keras`` model. An ImportError says how to install what is missing;
    another backend (such as "numpy", which has no gradients) is a ValueError.
    """
    if type(model).__module__.split(".")[0] == "tf_keras":
        name = "tensorflow"
    else:
        try:
            import keras
        except ImportError as exc:
            raise ImportError("Explaining a Keras model needs Keras and one of TensorFlow, JAX "
                              "or torch, which could not be imported: "
                              f"`{INSTALL_HINTS['tensorflow']}`.") from exc
        name = keras.backend.backend()
    if name not in _ENGINES:
        raise ValueError(f"skcem differentiates Keras models on TensorFlow, JAX or torch, but "
                         f"Keras runs on {name!r}; set KERAS_BACKEND to 'tensorflow', 'jax' "
                         "or 'torch'.")
    return name


def keras_engine(model):
    """The engine module that differentiates ``model``, its backend's library imported.

    Each engine module has ``KerasBackend(model, input_shape, autoencoder, output_kind)`` and
    ``KerasAutoencoder(model, input_shape)`` (see :mod:`._keras_tf`); those of JAX and torch
    have ``AUTODIFF`` too, their function transforms (see :mod:`._keras_stateless`).
    """
    name = keras_backend_name(model)
    try:
        importlib.import_module(name)
    except ImportError as exc:
        raise ImportError(f"Explaining a Keras model on {name} needs {name}, which is not "
                          f"installed: `{INSTALL_HINTS[name]}`.") from exc
    return importlib.import_module(_ENGINES[name], __package__)


def model_input_shape(model, name="the Keras model", required=True):
    """The shape of one instance as ``model`` expects it, without the batch dimension.

    Models with several inputs or outputs are refused; a shape that is not fully known is an error
    (asking for ``input_shape``), or None when not ``required``.
    """
    if getattr(model, "built", True) is False:
        # input_shape would build it here, with the random weights of a model never trained
        raise ValueError(f"{name[0].upper() + name[1:]} ({type(model).__name__}) was never "
                         "built, so it holds no trained weights: train it (or call it on a "
                         "batch) before explaining it.")
    try:
        shape, inputs = model.input_shape, model.inputs
    except (AttributeError, ValueError):
        shape, inputs = None, None
    if isinstance(shape, list) or isinstance(inputs, (list, tuple)) and len(inputs) > 1:
        raise ValueError(f"{name[0].upper() + name[1:]} takes {len(inputs)} inputs; skcem "
                         "explains models with one input (combine them into one, e.g. with "
                         "a model that splits a flat row).")
    outputs = getattr(model, "outputs", None)
    if isinstance(outputs, (list, tuple)) and len(outputs) > 1:
        raise ValueError(f"{name[0].upper() + name[1:]} has {len(outputs)} outputs; skcem "
                         "explains models with one output (a classifier's probabilities or "
                         "logits): pass keras.Model(model.inputs, model.outputs[k]) for the "
                         "output k to explain.")
    if shape is None or any(dim is None for dim in shape[1:]):
        if not required:
            return None
        raise ValueError(f"Cannot infer the input shape of {name}; pass `input_shape`.")
    return tuple(int(dim) for dim in shape[1:])


def as_numpy(tensor):
    """A tensor of any Keras backend as a numpy array (torch's detached, on the CPU)."""
    if hasattr(tensor, "detach"):
        tensor = tensor.detach().cpu()
        if str(tensor.dtype) == "torch.bfloat16":  # numpy has none (mixed precision's)
            tensor = tensor.float()
    return np.asarray(tensor)


def keras_input_shape(model, input_shape, n_features=None):
    """The shape of one instance as ``model`` takes it, checked against ``n_features`` when
    known: ``input_shape`` when given, else the model's own, else flat rows
    ``(n_features,)`` (a subclassed model cannot tell; one that takes another shape then
    fails on its first call with rows of that shape, and :func:`call_on_rows` asks for
    ``input_shape``)."""
    given = input_shape is not None
    own = model_input_shape(model, "`estimator`", required=not given and n_features is None)
    shape = tuple(input_shape) if given else own or (n_features,)
    if n_features is not None:
        check_input_shape(shape, n_features, given, what="The Keras model")
    shown = tuple(int(dim) for dim in input_shape) if given else None
    if given and own is not None and shown != own:
        if [dim for dim in shown if dim != 1] == [dim for dim in own if dim != 1]:
            # axes of one only (64,) for (64, 1), alibi's (1, 28, 28, 1): the same numbers
            # in the same order, taken in the model's own shape
            return own
        # a network of convolutions may take another shape of as many numbers: it would
        # see every image scrambled
        raise ValueError(f"`input_shape` {shown} differs from the shape the Keras "
                         f"model declares for one instance, {own}: leave `input_shape` "
                         "None (the model's own is used), or give that one.")
    return shape


def call_on_rows(model, rows, shape, name, function=None):
    """``model`` on the flat ``rows`` reshaped to ``shape``; a failure names ``input_shape``.

    ``function``, if given, computes the outputs from the flat rows instead (a compiled call of
    ``model`` that reshapes them itself), with the same error.
    """
    try:
        if function is not None:
            outputs = function(np.asarray(rows, dtype=np.float32))
        else:
            outputs = model(np.asarray(rows, dtype=np.float32).reshape((-1,) + tuple(shape)),
                            training=False)
    except Exception as exc:  # Keras raises many kinds; its first lines say what it was
        lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(exc).splitlines()]
        lines = [line for line in lines if line and not line.startswith("Exception encountered")]
        # Keras may print the rows themselves, over several lines: named, not shown
        text = _ARRAY_REPR.sub("the rows", " ".join(lines)).split(" Arguments received")[0]
        first = text[:300] if lines else type(exc).__name__
        raise ValueError(f"{name} fails on rows reshaped to {tuple(shape)} ({first}); pass the "
                         "`input_shape` it takes: one instance's, without the batch dimension "
                         "(alibi's `shape` holds it: (1, 28, 28, 1) there is (28, 28, 1) "
                         "here).") from exc
    if isinstance(outputs, (dict, list, tuple)):
        raise TypeError(f"{name} must return one tensor of outputs per row (a classifier's "
                        f"logits or probabilities); it returns a {type(outputs).__name__}. "
                        "Give a model that returns only those outputs, such as "
                        "keras.Model(model.inputs, <that output>).")
    return as_numpy(outputs)


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
    """Keras places its models itself: ``device`` is for PyTorch modules."""
    if device is not None:
        raise ValueError(f"`device` applies to PyTorch models; got device={device!r} with a "
                         "Keras model, which its backend places itself. Leave it None.")


def detect_output_kind(model, sample, input_shape=None, device=None, function=None):
    """:func:`keras_output_kind` of ``model`` on the 2-D ``sample`` rows.

    Imports the model's backend library first (for its installation hint) and checks that
    ``input_shape`` (or the model's own) holds as many values as ``sample`` has columns.
    ``function`` is passed to :func:`call_on_rows`.
    """
    keras_engine(model)
    check_device(device)
    shape = keras_input_shape(model, input_shape, sample.shape[1])
    outputs = call_on_rows(model, sample, shape, "`estimator`", function)
    check_scores_per_row(np.shape(outputs))
    return keras_output_kind(model, outputs)


def as_probabilities(outputs, kind, tf=None, ops=None):
    """Class probabilities from a classifier's outputs of the given kind.

    On numpy arrays by default, on TensorFlow tensors with ``tf``, on the tensors of any Keras
    backend with ``ops`` (``keras.ops``).
    """
    if kind == "probabilities":
        return outputs
    if tf is None and ops is None:
        return numpy_probabilities(outputs, kind)
    if ops is not None:
        if kind == "logits":
            return ops.softmax(outputs, axis=1)
        s = outputs if kind == "sigmoid" else ops.sigmoid(outputs)
        return ops.concatenate([1 - s, s], axis=1)
    if kind == "logits":
        return tf.nn.softmax(outputs, axis=1)
    s = outputs if kind == "sigmoid" else tf.sigmoid(outputs)
    return tf.concat([1 - s, s], axis=1)


def make_backend(model, *, input_shape, n_features, output_kind, autoencoder, device=None):
    """The ``KerasBackend`` of ``model``'s engine (the framework contract of
    :func:`skcem._gradients.make_backend`); ``autoencoder(shape)`` makes the auto-encoder term
    for the model's input shape."""
    engine = keras_engine(model)  # before anything else, for its installation hint
    check_device(device)
    input_shape = keras_input_shape(model, input_shape, n_features)
    return engine.KerasBackend(model, input_shape, autoencoder(input_shape), output_kind)


def make_autoencoder(model, input_shape, n_features, device=None):
    """The ``KerasAutoencoder`` term of ``model``; ``input_shape`` (the classifier's) is used
    when the auto-encoder's own is not known."""
    engine = keras_engine(model)
    check_device(device)
    # Each model takes its own shape: a dense auto-encoder may explain a CNN's images.
    own = model_input_shape(model, "`autoencoder`", required=input_shape is None)
    if own and input_shape and tuple(own) != tuple(input_shape) and \
            sorted(own) == sorted(input_shape) and \
            [d for d in own if d != 1] != [d for d in input_shape if d != 1]:
        # a reshape of rows laid out for the other shape would scramble them silently
        raise ValueError(
            f"`autoencoder` takes images of shape {tuple(own)} and the classifier "
            f"{tuple(input_shape)}: the rows are laid out for the classifier's. Give an "
            "auto-encoder that takes that layout (one that permutes it and back), or one of "
            "the classifier's framework.")
    shape = own or input_shape
    check_input_shape(shape, n_features, own is None, what="The `autoencoder`")
    check_reconstruction(call_on_rows(model, np.zeros((1, n_features)), shape, "`autoencoder`"),
                         n_features)
    return engine.KerasAutoencoder(model, shape)
