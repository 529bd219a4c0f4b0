"""skcem: contrastive explanations for scikit-learn and Keras classifiers."""

from ._cem import CEMExplainer, ExplanationNotFoundWarning
from ._explanation import CEMExplanation
from ._similarity import GradientSimilarityExplainer, SimilarityExplanation

__version__ = "0.1.0"

__all__ = [
    "CEMExplainer",
    "CEMExplanation",
    "ExplanationNotFoundWarning",
    "GradientSimilarityExplainer",
    "SimilarityExplanation",
    "__version__",
]
