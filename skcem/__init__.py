"""skcem: contrastive explanations for scikit-learn and Keras classifiers."""

from ._cem import CEMExplainer, ExplanationNotFoundWarning
from ._explanation import CEMExplanation

__version__ = "0.1.0"

__all__ = ["CEMExplainer", "CEMExplanation", "ExplanationNotFoundWarning", "__version__"]
