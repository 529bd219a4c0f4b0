"""
An explainer at the end of a Pipeline
=====================================

``CEMExplainer`` is a transformer: after a ``StandardScaler`` it fits a classifier on the
scaled data (``estimator=None`` means a ``LogisticRegression``) and returns pertinent positives
in the scaled space, which the scaler maps back to the original units.
"""

import warnings

import numpy as np
from sklearn.datasets import load_wine
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from skcem import CEMExplainer, ExplanationNotFoundWarning

X, y = load_wine(return_X_y=True)
pipe = Pipeline([("scale", StandardScaler()),
                 ("cem", CEMExplainer(mode="PP", max_iterations=300, c_steps=5))]).fit(X, y)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ExplanationNotFoundWarning)
    pp_scaled = pipe.transform(X[:3])
pp = pipe.named_steps["scale"].inverse_transform(pp_scaled)
cem = pipe.named_steps["cem"]
print("classes:", cem.estimator_.predict(pipe.named_steps["scale"].transform(X[:3])))
print("PP classes:", cem.estimator_.predict(np.nan_to_num(pp_scaled)))
background = np.clip(cem.no_info_val_, *cem.feature_range_)
print("features kept per instance:", np.sum(np.abs(pp_scaled - background) > 1e-9, axis=1))
print("first PP in the original units:", np.round(pp[0], 2))
