"""scikit-learn's meta-estimators that leave a model's probabilities as they are.

``FrozenEstimator`` answers ``predict_proba`` and ``predict`` with its model's;
``FixedThresholdClassifier`` and ``TunedThresholdClassifierCV`` answer ``predict_proba``
with their model's and threshold it for ``predict``. What skcem reads from a model's
structure (its trees, whether it is piecewise constant, its parameters' gradients) is read
from the model inside; answers are still checked with the wrapper's own ``predict``.
"""

from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import FixedThresholdClassifier, TunedThresholdClassifierCV


def frozen_inner(estimator):
    """The model inside (nested) ``FrozenEstimator``\\ s: the same probabilities and
    predictions."""
    while isinstance(estimator, FrozenEstimator):
        estimator = estimator.estimator
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
