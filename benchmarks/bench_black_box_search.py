"""search="auto" on models without an exact gradient: the gradient-free search against the
gradient search by finite differences.

Models that skcem cannot differentiate (an ``SVC`` with probabilities, a
``GaussianProcessClassifier``, soft voting over logistic regression and Gaussian naive Bayes, an
MLP behind a plain function) on iris, wine and breast cancer (the last 10 rows of a fixed
shuffle explained, the others given to ``fit``), counterfactuals and PNs with
``distance="mad"``. For each case it prints the rows found, the mean distance over the rows
both found, the seconds of ``explain`` and the model rows asked, for ``search="auto"`` (the
default: the gradient-free search, completed by the gradient search on rows it leaves
unanswered) and for ``gradient="numerical"`` (the gradient search by central differences,
completed and polished as ``search="auto"`` does on models with an exact gradient), then the
ratios: distance of the default over the gradient search's, and the gradient search's
seconds over the default's.

    python benchmarks/bench_black_box_search.py [--models svc vote function gpc]
        [--datasets iris wine cancer] [--n-rows 10]
"""

import argparse
import time
import warnings

import numpy as np
from sklearn.datasets import load_breast_cancer, load_iris, load_wine
from sklearn.ensemble import VotingClassifier
from sklearn.gaussian_process import GaussianProcessClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from skcem import CEMExplainer, CounterfactualExplainer

DATASETS = {"iris": load_iris, "wine": load_wine, "cancer": load_breast_cancer}


def make_model(name, X, y):
    if name == "svc":
        return make_pipeline(StandardScaler(), SVC(probability=True, random_state=0)).fit(X, y)
    if name == "gpc":
        return make_pipeline(StandardScaler(), GaussianProcessClassifier(random_state=0)).fit(X, y)
    if name == "vote":
        return make_pipeline(StandardScaler(), VotingClassifier(
            [("lr", LogisticRegression(max_iter=2000)), ("nb", GaussianNB())],
            voting="soft")).fit(X, y)
    mlp = make_pipeline(StandardScaler(), MLPClassifier((32,), max_iter=2000,
                                                        random_state=0)).fit(X, y)
    return lambda Z: mlp.predict_proba(Z)  # a function: only its probabilities


def explain(model, X_train, rows, mode, **params):
    params = dict(distance="mad", **params)
    explainer = CounterfactualExplainer(model, **params) if mode == "CF" else \
        CEMExplainer(model, mode="PN", **params)
    explainer.fit(X_train)
    start = time.perf_counter()
    exp = explainer.explain(rows)
    return exp, time.perf_counter() - start, explainer.search_


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["svc", "vote", "function", "gpc"])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--n-rows", type=int, default=10)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    header = (f"{'data':<7} {'model':<9} {'mode':<4} {'auto':>9} {'found':>5} {'dist':>8} "
              f"{'s':>7} {'rows':>9} | {'gradient':>8} {'found':>5} {'dist':>8} {'s':>7} "
              f"{'rows':>9} | {'dist ratio':>10} {'time ratio':>10}")
    print(header)
    print("-" * len(header), flush=True)
    ratios, speedups = [], []
    for data in args.datasets:
        X, y = DATASETS[data](return_X_y=True)
        order = np.random.default_rng(0).permutation(len(X))
        train, test = order[:-args.n_rows], order[-args.n_rows:]
        for name in args.models:
            model = make_model(name, X[train], y[train])
            for mode in ("CF", "PN"):
                auto, auto_s, chosen = explain(model, X[train], X[test], mode)
                grad, grad_s, _ = explain(model, X[train], X[test], mode,
                                          gradient="numerical")
                both = auto.found & grad.found
                ratio = np.mean(auto.distance[both]) / np.mean(grad.distance[both])
                ratios.append(ratio)
                speedups.append(grad_s / auto_s)
                print(f"{data:<7} {name:<9} {mode:<4} {chosen:>9} {auto.found.sum():>5} "
                      f"{np.mean(auto.distance[both]):>8.3f} {auto_s:>7.2f} "
                      f"{auto.meta['n_model_rows']:>9,} | {'fista':>8} {grad.found.sum():>5} "
                      f"{np.mean(grad.distance[both]):>8.3f} {grad_s:>7.2f} "
                      f"{grad.meta['n_model_rows']:>9,} | {ratio:>10.3f} "
                      f"{grad_s / auto_s:>9.1f}x", flush=True)
    print(f"distance ratio (default / gradient search): median {np.median(ratios):.3f}, "
          f"range {min(ratios):.3f}-{max(ratios):.3f}; the gradient search's time: "
          f"{min(speedups):.1f}-{max(speedups):.1f}x the default's, median "
          f"{np.median(speedups):.1f}x")


if __name__ == "__main__":
    main()
