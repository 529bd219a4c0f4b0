"""``python -m skcem demo``: explain a neural network on scikit-learn's digits, end to end."""

import warnings

import numpy as np

from ._cem import CEMExplainer
from ._warnings import SkcemWarning
from .metrics import n_changed


def _table(pn, pp):
    header = f"{'instance':>8}  {'class':>5}  {'PN class':>8}  {'PN changed':>10}  " \
             f"{'PP class':>8}  {'PP kept':>7}"
    lines = [header, "-" * len(header)]
    pn_changed, pp_kept = n_changed(pn), n_changed(pp)
    for i in range(len(pn)):
        def show(value):
            return "-" if value is None or (isinstance(value, float) and np.isnan(value)) \
                else str(int(value))
        lines.append(f"{i:>8}  {pn.X_pred[i]!s:>5}  {show(pn.explanation_pred[i]):>8}  "
                     f"{show(pn_changed[i]):>10}  {show(pp.explanation_pred[i]):>8}  "
                     f"{show(pp_kept[i]):>7}")
    return "\n".join(lines)


def _figure(pn, pp, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(pn)
    fig, axes = plt.subplots(n, 3, figsize=(6, 2 * n), squeeze=False)
    for i in range(n):
        panels = [(pn.X[i], f"original: {pn.X_pred[i]}"),
                  (pn.explanation[i], f"PN: {pn.explanation_pred[i]}"),
                  (pp.explanation[i], f"PP: {pp.explanation_pred[i]}")]
        for ax, (image, title) in zip(axes[i], panels):
            ax.imshow(image.reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
            ax.set_title(title, fontsize=9)
            ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_demo(n_instances=5, figure="skcem_demo.png"):
    """Fit an MLP on digits, explain a few test digits with PN and PP, print and plot them."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    X, y = load_digits(return_X_y=True)
    X = X / 16.0  # pixels in [0, 1]; 0 is the background, the no-information value
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    clf = MLPClassifier((32,), max_iter=500, random_state=0).fit(X_train, y_train)
    print(f"MLPClassifier(32,) on digits: test accuracy {clf.score(X_test, y_test):.3f}")
    if n_instances > len(X_test):
        print(f"(-n {n_instances}: all {len(X_test)} test digits are explained)")

    common = dict(no_info_val=0.0, feature_range=(0.0, 1.0))
    explanations = {}
    for mode in ("PN", "PP"):
        cem = CEMExplainer(clf, mode=mode, **common).fit(X_train)
        with warnings.catch_warnings():
            # the table says what was found and kept, and the demo has no options to act on
            # a warning's advice
            warnings.simplefilter("ignore", SkcemWarning)
            explanations[mode] = cem.explain(X_test[:n_instances])
    pn, pp = explanations["PN"], explanations["PP"]
    print("\nPN: the fewest pixels to add to change the class; PP: the fewest pixels to keep.")
    print(_table(pn, pp))
    try:
        _figure(pn, pp, figure)
        print(f"\nFigure (original / PN / PP) written to {figure}")
    except ImportError:
        print("\nmatplotlib is not installed: no figure (pip install skcem[plot]).")
    return pn, pp
