"""
Tuning the explainer with GridSearchCV
======================================

``CEMExplainer.score`` rewards explanations that exist, change few features and change them
little, so ``GridSearchCV`` tunes ``beta``, ``kappa`` and ``c_init`` with no scoring argument.
The fitted classifier is kept by ``clone``: every candidate explains the same model.
"""

import warnings

from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.preprocessing import StandardScaler

from skcem import CEMExplainer, ExplanationNotFoundWarning

X, y = load_iris(return_X_y=True)
X = StandardScaler().fit_transform(X)
clf = LogisticRegression(max_iter=1000).fit(X, y)

grid = GridSearchCV(CEMExplainer(clf, mode="PP", max_iterations=200, c_steps=4),
                    {"beta": [0.01, 0.1, 1.0], "kappa": [0.0, 0.1], "c_init": [1.0, 10.0]},
                    cv=3)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ExplanationNotFoundWarning)
    grid.fit(X[::3])
print("best parameters:", grid.best_params_)
print(f"best score: {grid.best_score_:.3f}")
