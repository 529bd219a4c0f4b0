"""What a deep-learning classifier outputs, and how skcem turns it into class probabilities.

Framework-neutral: each framework's backend names the activation its model ends in (when it
can tell) and hands the outputs on sample rows to :func:`output_kind`.
"""

import numpy as np

OUTPUT_KINDS = {
    "probabilities": "softmax probabilities (used as they are)",
    "logits": "logits (a softmax is applied)",
    "sigmoid": "one sigmoid probability of class 1 (p = [1 - s, s])",
    "logit": "one logit of class 1 (p = [1 - sigmoid(s), sigmoid(s)])",
}


def check_scores_per_row(shape, name="`estimator`"):
    """Refuse outputs with more than one axis of scores per row: those of shape (n, 2, 3)
    would otherwise be read as six classes (axes of length 1 aside: (n, k, 1, 1))."""
    if sum(int(size) != 1 for size in tuple(shape)[1:]) > 1:
        raise ValueError(
            f"{name} returns outputs of shape {tuple(shape)}: a classifier returns one row "
            "of class scores per instance, of shape (n, n_classes), (n, 1) or (n,). Wrap it "
            "in a model that returns those (the scores of one position of a sequence, say).")


def output_kind(outputs, activation=None, last="the last layer"):
    """Which of :data:`OUTPUT_KINDS` a classifier outputs.

    Parameters
    ----------
    outputs : array-like of shape (n_samples, ...)
        The classifier's outputs on sample rows.
    activation : {"softmax", "log_softmax", "sigmoid", "linear"} or None
        What the model ends in, when its framework can tell; None decides by the
        ``outputs`` (rows of probabilities sum to 1; one column in [0, 1] is a sigmoid).
    last : str
        The last layer, as named in the warning about outputs that are not probabilities.

    Returns
    -------
    kind : str
        A key of :data:`OUTPUT_KINDS`.
    """
    raw = np.asarray(outputs)
    if raw.dtype.kind in "biu" and (raw.ndim == 1 or raw.shape[-1] == 1):  # labels
        raise ValueError(f"`estimator` outputs {np.asarray(outputs).dtype} values (class "
                         "labels, such as an argmax?), not scores: give a model that outputs "
                         "its logits or probabilities, one column per class.")
    outputs = np.asarray(outputs, dtype=float).reshape(len(outputs), -1)
    n_outputs = outputs.shape[1]
    if activation == "sigmoid" and n_outputs > 1:
        raise ValueError(f"`estimator` ends in {n_outputs} sigmoid outputs: independent "
                         "(multi-label) probabilities, not one distribution over classes. "
                         "Explain a softmax (or logits) output, or one sigmoid output.")
    if n_outputs == 1:
        if activation == "sigmoid":
            return "sigmoid"
        if activation == "linear":
            return "logit"
        return "sigmoid" if outputs.min() >= 0 and outputs.max() <= 1 else "logit"
    if activation == "softmax":
        return "probabilities"
    if activation in ("linear", "log_softmax"):  # softmax(log p) = p
        return "logits"
    is_distribution = outputs.min() >= 0 and np.allclose(outputs.sum(axis=1), 1.0, atol=1e-4)
    # log-probabilities (a forward ending in F.log_softmax): softmax(log p) = p, no warning
    log_distribution = outputs.max() <= 0 and \
        np.allclose(np.logaddexp.reduce(outputs, axis=1), 0.0, atol=1e-4)
    if not (is_distribution or log_distribution):
        from .._warnings import warn

        warn(f"`estimator`'s last layer ({last}) does not output probabilities (its rows do "
             "not sum to 1): its outputs are taken as logits and a softmax is applied. End the "
             "model in a softmax (or a linear layer for logits) to make this explicit.")
    return "probabilities" if is_distribution else "logits"


def as_probabilities(outputs, kind):
    """Class probabilities (numpy) from a classifier's outputs of the given ``kind``."""
    if kind == "probabilities":
        return outputs
    from scipy.special import expit, softmax

    if kind == "logits":
        return softmax(outputs, axis=1)
    s = outputs if kind == "sigmoid" else expit(outputs)
    return np.hstack([1 - s, s])
