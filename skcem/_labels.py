"""Class labels and their positions in a model's classes."""

import numpy as np


def class_indices(labels, classes, name):
    """Positions in ``classes`` of each label; a clear error names labels the model lacks."""
    labels = np.asarray(labels)
    position = {_hashable(c): i for i, c in enumerate(np.asarray(classes))}
    index = np.array([position.get(_hashable(v), -1) for v in labels.ravel()], dtype=int)
    if np.any(index < 0):
        unknown = sorted({repr(_hashable(v)) for v, i in zip(labels.ravel(), index) if i < 0})
        raise ValueError(f"`{name}` holds labels the model does not know: "
                         f"[{', '.join(unknown[:10])}]; classes are "
                         f"{np.asarray(classes).tolist()}.")
    return index.reshape(labels.shape)


def _hashable(value):
    return value.item() if isinstance(value, np.generic) else value
