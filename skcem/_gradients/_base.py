"""What a gradient backend answers the optimizer, once per iteration."""

import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from .._warnings import catching_warnings


@contextmanager
def ignoring_feature_name_warnings():
    """Silence scikit-learn's "X does not have valid feature names" warning.

    skcem hands a model fitted on a DataFrame numpy rows of its own columns, in its order
    (matched by name when the explainer was fitted), so the warning would only be noise.
    """
    with catching_warnings():
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        yield


def check_input_shape(input_shape, n_features, given, what="The model"):
    """Raise unless one instance of ``input_shape`` holds ``n_features`` values."""
    if any(int(dim) < 1 for dim in input_shape):
        source = "`input_shape`" if given else f"{what}'s input shape"
        raise ValueError(f"{source} {tuple(input_shape)} must hold positive sizes (the shape "
                         "of one instance, without the batch axis).")
    size = int(np.prod(input_shape))
    if size != n_features:
        source = "`input_shape`" if given else f"{what}'s input shape"
        raise ValueError(f"{source} {tuple(input_shape)} holds {size} values per instance, "
                         f"but X has {n_features} columns.")


def probability_array(outputs, what="estimator"):
    """A model's probabilities as a float array (numbers given as objects or text read as
    numbers), or one line on what ``what`` returned instead (an ONNX session's list of dicts
    or list of outputs fail in numpy's words)."""
    try:
        return np.asarray(outputs, dtype=float)
    except (TypeError, ValueError):
        pass
    first = next(iter(outputs), None) if hasattr(outputs, "__iter__") and \
        not isinstance(outputs, (dict, str)) else None
    if isinstance(outputs, np.ndarray) and first is not None:  # an object array
        first = outputs.ravel()[0]
    what_came = type(outputs).__name__ + (f" of {type(first).__name__}"
                                          if first is not None else "")
    hint = ""
    if isinstance(first, dict):
        hint = (": one dict of probabilities per row (an ONNX classifier's ZipMap output) "
                "returns them as [[d[c] for c in classes] for d in outputs], or export the "
                "model without it (options={'zipmap': False})")
    elif isinstance(outputs, dict):
        hint = ": return the probabilities' array itself, not a dict"
    elif isinstance(outputs, (list, tuple)) and len(outputs) == 2:
        hint = (": several outputs, as an ONNX session's run gives (labels, probabilities)? "
                "return the probabilities alone")
    elif first is not None:
        hint = f", such as {first!r}: numbers"
    raise ValueError(f"`{what}` must return class probabilities as an array of shape "
                     f"(n_samples, n_classes); got a {what_came}{hint}.")


def check_reconstruction(output, n_features):
    """Raise unless an auto-encoder's ``output`` for one instance has ``n_features`` values."""
    size = int(np.size(output))
    if size != n_features:
        raise ValueError(f"`autoencoder` returns {size} values for an instance of {n_features}: "
                         "it must reconstruct its input.")


@dataclass
class Evaluation:
    """The model's answers for one iteration of a batch.

    Attributes
    ----------
    proba_adv : ndarray of shape (n, n_classes)
        Class probabilities at the iterates.
    attack_grad : ndarray of shape (n, n_features) or None
        Gradient of the hinge attack loss at the slack points (None when not asked).
    ae_grad : ndarray of shape (n, n_features) or None
        Gradient of ``||AE(z) - z||^2`` at the slack points (None without auto-encoder).
    ae_loss_adv : ndarray of shape (n,) or None
        ``||AE(z) - z||^2`` at the iterates (only when asked: early stopping needs it).
    pred_adv : ndarray of int, shape (n,) or None
        Class indices from the estimator's own ``predict`` at the iterates, for estimators
        whose ``predict`` may disagree with the argmax of ``predict_proba`` (None otherwise).
    """

    proba_adv: np.ndarray
    attack_grad: np.ndarray | None = None
    ae_grad: np.ndarray | None = None
    ae_loss_adv: np.ndarray | None = None
    pred_adv: np.ndarray | None = None
