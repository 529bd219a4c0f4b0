"""scikit-learn's meta-estimators that leave a model's probabilities as they are.

``FrozenEstimator`` and a search refitted on its best parameters (``GridSearchCV``) answer
``predict_proba`` and ``predict`` with their model's;
``FixedThresholdClassifier`` and ``TunedThresholdClassifierCV`` answer ``predict_proba``
with their model's and threshold it for ``predict``. What skcem reads from a model's
structure (its trees, whether it is piecewise constant, its parameters' gradients) is read
from the model inside; answers are still checked with the wrapper's own ``predict``.
"""

from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import FixedThresholdClassifier, TunedThresholdClassifierCV


def is_refitted_search(estimator):
    """Whether ``estimator`` is a fitted hyper-parameter search (``GridSearchCV``,
    ``RandomizedSearchCV``, the halving ones) refitted on the best parameters: it answers
    with its ``best_estimator_``."""
    return hasattr(estimator, "cv_results_") and hasattr(estimator, "best_estimator_")


def frozen_inner(estimator):
    """The model inside (nested) ``FrozenEstimator``\\ s and refitted searches: the same
    probabilities and predictions."""
    while True:
        if isinstance(estimator, FrozenEstimator):
            estimator = estimator.estimator
        elif is_refitted_search(estimator):
            estimator = estimator.best_estimator_
        else:
            return estimator


def probability_inner(estimator):
    """The model whose ``predict_proba`` ``estimator`` returns unchanged: inside
    ``FrozenEstimator`` and the fitted threshold classifiers (whose ``predict`` differs)."""
    while True:
        estimator = frozen_inner(estimator)
        if not isinstance(estimator, (FixedThresholdClassifier, TunedThresholdClassifierCV)) \
                or not hasattr(estimator, "estimator_"):
            return estimator
        estimator = estimator.estimator_


def loss_inner(estimator):
    """The model whose loss gradients stand for ``estimator``'s: :func:`probability_inner`,
    also inside a threshold classifier not fitted yet (its ``estimator``, which it fits)."""
    while True:
        estimator = probability_inner(estimator)
        if not isinstance(estimator, (FixedThresholdClassifier, TunedThresholdClassifierCV)):
            return estimator
        estimator = estimator.estimator


def decision_threshold(estimator):
    """How a fitted threshold classifier's ``predict`` decides, as scikit-learn's does:
    ``(inner, positive, response, threshold)``: the positive class (its index in
    ``classes_``) wherever ``inner``'s ``response`` ("predict_proba": that class's
    probability; "decision_function": the decision function, negated when the positive
    class is the first) is at least ``threshold``. None for any other estimator."""
    estimator = frozen_inner(estimator)
    if not isinstance(estimator, (FixedThresholdClassifier, TunedThresholdClassifierCV)) \
            or not hasattr(estimator, "estimator_"):
        return None
    inner = estimator.estimator_
    response = estimator.response_method
    if response == "auto":
        response = "predict_proba" if hasattr(inner, "predict_proba") else "decision_function"
    if isinstance(estimator, TunedThresholdClassifierCV):
        threshold = estimator.best_threshold_
        # its scorer's positive class (None: the last class, scikit-learn's default)
        pos_label = getattr(getattr(estimator, "_curve_scorer", None), "_get_pos_label", None)
        pos_label = pos_label() if callable(pos_label) else None
    else:
        pos_label = estimator.pos_label
        threshold = estimator.threshold
        if isinstance(threshold, str):  # "auto"
            threshold = 0.5 if response == "predict_proba" else 0.0
    classes = list(estimator.classes_)
    positive = len(classes) - 1 if pos_label is None else classes.index(pos_label)
    return inner, positive, response, float(threshold)


def column_documents(frame, column):
    """The documents of one column of a DataFrame, an empty cell an empty document: what a
    Pipeline whose first step is a text vectorizer takes (the command line's wrapper of such
    a model, explained on a CSV of that column)."""
    return frame[column].fillna("")
