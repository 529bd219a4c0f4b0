"""
Pertinent negatives and positives on iris
=========================================

A logistic regression on standardised iris, explained with CEM: which feature changes would
make a flower another species (PN), and which part of its measurements suffices for its
species (PP).
"""

import warnings

import numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from skcem import CEMExplainer, ExplanationNotFoundWarning

iris = load_iris()
scaler = StandardScaler().fit(iris.data)
X = scaler.transform(iris.data)
clf = LogisticRegression(max_iter=1000).fit(X, iris.target)

rows = [0, 60, 120]
for mode in ("PN", "PP"):
    cem = CEMExplainer(clf, mode=mode, clip=(-1000.0, 1000.0)).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        exp = cem.explain(X[rows])
    print(f"\n{mode}s (in cm)")
    for i, row in enumerate(rows):
        before = iris.target_names[exp.X_pred[i]]
        if not exp.found[i]:
            print(f"  #{row} {before}: none found")
            continue
        after = iris.target_names[exp.explanation_pred[i]]
        original = scaler.inverse_transform(exp.X[i:i + 1])[0]
        explained = scaler.inverse_transform(exp.explanation[i:i + 1])[0]
        if mode == "PN":
            changes = ", ".join(f"{name} {a:.1f} -> {b:.1f}"
                                for name, a, b in zip(iris.feature_names, original, explained)
                                if not np.isclose(a, b))
        else:  # what the PP keeps of the instance; the rest is at the background
            kept = np.flatnonzero(np.abs(exp.perturbation[i]) > 1e-12)
            changes = "keeps " + (", ".join(f"{iris.feature_names[j]} {explained[j]:.1f}"
                                            for j in kept) or "nothing")
        print(f"  #{row} {before} -> {after}: {changes}")
