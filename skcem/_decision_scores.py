"""Classifiers without ``predict_proba`` (``LinearSVC``, ``SVC``, ``RidgeClassifier``,
``SGDClassifier(loss="hinge")``): their classes scored by the softmax of ``decision_function``.

The contrastive searches weigh classes by probabilities (``kappa`` is a margin between
them); for such a classifier, the softmax of its decision function stands in for them. Its
classes, and so whether an answer is found, stay its own ``predict``'s.
"""

import numpy as np
from scipy.special import expit, softmax
from sklearn.base import BaseEstimator, ClassifierMixin

from ._wrappers import decision_threshold, frozen_inner


class DecisionScores(ClassifierMixin, BaseEstimator):
    """A fitted classifier's ``decision_function`` as probabilities: the softmax of its
    scores (a binary one's single score ``s``: ``[1 - expit(s), expit(s)]``).

    Parameters
    ----------
    estimator : fitted classifier
        With ``decision_function``, ``predict`` and ``classes_``.
    """

    def __init__(self, estimator):
        self.estimator = estimator

    def __sklearn_is_fitted__(self):
        return True

    def fit(self, X=None, y=None, **fit_params):
        """Nothing to fit: the classifier is used as fitted (as ``FrozenEstimator``)."""
        return self

    @property
    def classes_(self):
        return self.estimator.classes_

    def __getattr__(self, name):
        # the fitted attributes a model is read by (feature_names_in_, n_features_in_)
        if name.endswith("_") and not name.startswith("_") and "estimator" in vars(self):
            return getattr(self.estimator, name)
        raise AttributeError(name)

    def decision_function(self, X):
        return self.estimator.decision_function(X)

    def predict_proba(self, X):
        """The softmax of ``decision_function(X)``, one column per class."""
        scores = np.asarray(self.estimator.decision_function(X), dtype=float)
        if scores.ndim == 1:
            positive = expit(scores)
            return np.stack([1.0 - positive, positive], axis=1)
        return softmax(scores, axis=1)

    def predict(self, X):
        return self.estimator.predict(X)


def scored_by_decision(estimator):
    """Whether ``estimator`` is a classifier whose classes :class:`DecisionScores` scores:
    one with a ``decision_function`` and no ``predict_proba``, whose ``predict`` takes the
    class of the largest score (not a threshold classifier's, which moves the threshold),
    one score per class (not an SVC's of each pair of classes)."""
    return not callable(estimator) and not hasattr(estimator, "predict_proba") and \
        callable(getattr(estimator, "decision_function", None)) and \
        callable(getattr(estimator, "predict", None)) and \
        decision_threshold(estimator) is None and not scores_pairs(estimator)


def scores_pairs(estimator):
    """Whether ``estimator`` (or the model inside it) is an SVC of more than two classes
    whose ``decision_function`` scores each pair of classes (``decision_function_shape=
    "ovo"``)."""
    model = frozen_inner(estimator)
    while hasattr(model, "steps"):
        model = frozen_inner(model.steps[-1][1])
    return getattr(model, "decision_function_shape", None) == "ovo" and \
        len(getattr(model, "classes_", ())) > 2


def with_probabilities(estimator):
    """``estimator``, in :class:`DecisionScores` where it is :func:`scored_by_decision`."""
    return DecisionScores(estimator) if scored_by_decision(estimator) else estimator
