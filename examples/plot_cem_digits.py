"""
Pertinent negatives and positives of handwritten digits
=======================================================

A scikit-learn ``MLPClassifier`` on the 8x8 digits that ship with scikit-learn is explained by
its exact input gradient, computed in numpy (no TensorFlow): the pertinent negative adds the fewest
pixels that change the digit, the pertinent positive keeps the fewest pixels that still make
the same digit.
"""

import warnings

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

from skcem import CEMExplainer, ExplanationNotFoundWarning
from skcem.plotting import plot_image_explanation

X, y = load_digits(return_X_y=True)
X = X / 16.0  # pixels in [0, 1]; 0 is the background
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
clf = MLPClassifier((32,), max_iter=500, random_state=0).fit(X_train, y_train)

explanations = {}
for mode in ("PN", "PP"):
    cem = CEMExplainer(clf, mode=mode, no_info_val=0.0, feature_range=(0.0, 1.0),
                       max_iterations=500, c_steps=6).fit(X_train)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        explanations[mode] = cem.explain(X_test[:3])

fig, axes = plt.subplots(6, 3, figsize=(7, 13))
for i in range(3):
    plot_image_explanation(explanations["PN"], index=i, axes=axes[2 * i])
    plot_image_explanation(explanations["PP"], index=i, axes=axes[2 * i + 1])
fig.tight_layout()
plt.show()
