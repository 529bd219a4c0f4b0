"""
Which training digits does the model find alike?
================================================

:class:`~skcem.GradientSimilarityExplainer` compares loss gradients with respect to the
parameters of a scikit-learn ``MLPClassifier`` (numpy back-propagation, whole batches at once)
and shows each test digit with its most and least similar training digits.
"""

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.neural_network import MLPClassifier

from skcem import GradientSimilarityExplainer
from skcem.plotting import plot_similarity

X, y = load_digits(return_X_y=True)
X = X / 16.0
clf = MLPClassifier((32,), max_iter=500, random_state=0).fit(X[:1200], y[:1200])

explainer = GradientSimilarityExplainer(clf, sim_fn="grad_cos").fit(X[:1200], y[:1200])
explanation = explainer.explain(X[1500:1502])
for i in range(2):
    plot_similarity(explanation, explainer.X_train_, index=i, n_most=3, n_least=1)
scores, neighbours = explainer.kneighbors(X[1500:1502], n_neighbors=5)
print("five most similar training rows:", neighbours.tolist())
plt.show()
