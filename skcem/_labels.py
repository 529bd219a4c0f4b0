"""Class labels and their positions in a model's classes."""

import numpy as np


def class_indices(labels, classes, name):
    """Positions in ``classes`` of each label; a clear error names labels the model lacks."""
    labels = np.asarray(labels)
    position = {_hashable(c): i for i, c in enumerate(np.asarray(classes))}
    index = np.array([position.get(_hashable(v), -1) for v in labels.ravel()], dtype=int)
    if np.any(index < 0):
        unknown = sorted({repr(_hashable(v)) for v, i in zip(labels.ravel(), index) if i < 0})
        hint = " For any class but the instance's, give target_class='other' (DiCE's " \
            "'opposite')." if name == "target_class" and "'opposite'" in unknown else ""
        raise ValueError(f"`{name}` holds labels the model does not know: "
                         f"[{', '.join(unknown[:10])}]; classes are "
                         f"{np.asarray(classes).tolist()}.{hint}")
    return index.reshape(labels.shape)


def _hashable(value):
    return value.item() if isinstance(value, np.generic) else value


def check_class_labels(y, owner, prefitted=False):
    """Refuse, in one line, class labels skcem cannot take: several columns (a multi-label or
    multi-output target) and missing labels (None, NaN).

    A single column is left to scikit-learn's validation, which flattens it with a
    ``DataConversionWarning``. For a ``prefitted`` model, several columns are left to the
    refusal that names the model.
    """
    values = np.asarray(y)
    if values.ndim == 2 and values.shape[1] > 1 and values.dtype.kind in "biuf" and \
            np.all((values == 0) | (values == 1)) and np.all(values.sum(axis=1) == 1):
        raise ValueError(f"`y` holds one-hot rows ({values.shape[1]} columns); {owner} takes "
                         "class labels, one per row: pass `y.argmax(axis=1)` (and a loss "
                         "of class indices, such as loss='auto' or a sparse cross-entropy).")
    if values.ndim == 2 and values.shape[1] > 1 and not prefitted:
        raise ValueError(f"`y` has {values.shape[1]} columns: a multi-label or multi-output "
                         f"target; {owner} explains classifiers of one output (one class per "
                         "row). Explain each output with its own classifier.")
    values = values.ravel()
    if values.dtype.kind not in "fO":
        return
    missing = np.flatnonzero(np.isnan(values) if values.dtype.kind == "f" else
                             [is_missing(value) for value in values])
    if missing.size:
        raise ValueError(f"`y` holds missing labels ({missing.size} of {len(values)} rows, "
                         f"at positions {missing[:5].tolist()}"
                         f"{', ...' if missing.size > 5 else ''}): drop those rows, or give "
                         "them a class.")


def is_missing(value):
    """None, NaN, and pandas's NA and NaT."""
    return value is None or (isinstance(value, (float, np.floating)) and value != value) or \
        type(value).__name__ in ("NAType", "NaTType")


def check_outputs_follow_labels(predicted, targets, classes, *, min_rows=10):
    """Warn when a model without ``classes_`` puts the rows ``fit`` was given in their classes
    far more often with its outputs in another order than in the one its labels were given.

    A warning, not an error: an untrained network (a sanity check's) may follow another order
    by chance on well separated classes.

    A model without ``classes_`` (a Keras model, a PyTorch module, a plain function) has
    its outputs named by convention: the class indices, or the sorted labels of ``y``. A
    network trained on other codes (the data's own order, ``pd.factorize``'s) would have
    every answer's class named wrong.

    Parameters
    ----------
    predicted : ndarray of shape (n,)
        Indices of the model's largest output on some rows given to ``fit``.
    targets : ndarray of shape (n,)
        The output indices their labels were given as.
    classes : array-like of shape (n_classes,)
        The labels of the outputs, in order.
    """
    from scipy.optimize import linear_sum_assignment

    predicted, targets = np.asarray(predicted, dtype=np.intp), np.asarray(targets, np.intp)
    classes = np.asarray(classes)
    n_classes = len(classes)
    # rows enough that another order cannot win by chance (an untrained network's
    # predictions, matched to few rows, agree with some order on half of them)
    if len(targets) < max(min_rows, 5 * n_classes) or n_classes < 2:
        return
    counts = np.zeros((n_classes, n_classes))
    np.add.at(counts, (predicted, targets), 1)
    agreement = np.trace(counts) / len(targets)
    outputs, labels = linear_sum_assignment(counts, maximize=True)
    best = counts[outputs, labels].sum() / len(targets)
    # outputs whose rows mostly hold another output's label: two or more for another order
    # (a model that puts every row in one class, untrained or poor, has one)
    moved = np.sum((outputs != labels) & (counts[outputs, labels] > counts[outputs, outputs]))
    if best < 0.8 or agreement >= best / 2 or moved < 2:
        return
    shown = ", ".join(f"{o} = {_hashable(classes[c])!r}" for o, c in zip(outputs, labels)
                      if o != c)
    indices = np.array_equal(classes, np.arange(n_classes))
    advice = ("Integer labels below the number of outputs are read as those indices: check "
              "that `y` codes each class as the model was trained (output k is class k)."
              if indices else "Pass `y` as the indices of the model's outputs (its own order).")
    from ._warnings import warn

    warn(f"`y`'s labels, as the model's outputs in order ({classes.tolist()[:10]}), agree with "
         f"its predictions on {agreement:.0%} of the rows given to fit, and on {best:.0%} with "
         f"its outputs in another order (output {shown}): a model without classes_ names its "
         f"outputs by the class indices 0, 1, ... or by the sorted labels of `y`, and the "
         f"answers' classes are named so. {advice}")
