"""skcem: contrastive explanations for scikit-learn and Keras classifiers."""

from ._base import InconsistentVersionWarning
from ._cem import CEMExplainer
from ._contrastive import ExplanationNotFoundWarning, TargetWarning
from ._counterfactual import CounterfactualExplainer
from ._explanation import CEMExplanation, Explanation
from ._similarity import GradientSimilarityExplainer, SimilarityExplanation
from ._warnings import SkcemWarning

__version__ = "0.1.0"

__all__ = [
    "CEMExplainer",
    "CEMExplanation",
    "CounterfactualExplainer",
    "Explanation",
    "ExplanationNotFoundWarning",
    "GradientSimilarityExplainer",
    "InconsistentVersionWarning",
    "SimilarityExplanation",
    "SkcemWarning",
    "TargetWarning",
    "__version__",
]
