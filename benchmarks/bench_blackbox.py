"""Black-box CEM speed and quality: iris (LogisticRegression) and digits (MLPClassifier).

Explains 20+ instances per setting with the reference defaults (max_iterations=1000,
c_steps=10), PN and PP, in one batch, and prints per setting: instances/s, predict_proba rows
per instance, found rate, and the median L1 and L0 of the perturbation (what a PN adds, what a
PP keeps). For the speed-up of batching it also explains a few of the same instances one at a
time (batch_size=1), which is how the reference works.

    python benchmarks/bench_blackbox.py [--n-instances 30] [--one-by-one 3]
"""

import argparse
import time
import warnings

import numpy as np
from sklearn.datasets import load_digits, load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from skcem import CEMExplainer, ExplanationNotFoundWarning
from skcem.metrics import n_changed


def iris_setting():
    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    X_train, X_test, y_train, _ = train_test_split(X, y, test_size=0.3, random_state=0,
                                                   stratify=y)
    model = LogisticRegression(max_iter=1000).fit(X_train, y_train)
    return "iris / LogisticRegression", model, X_train, X_test, {}


def digits_setting():
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    X_train, X_test, y_train, _ = train_test_split(X, y, test_size=0.25, random_state=0)
    model = MLPClassifier((32,), max_iter=500, random_state=0).fit(X_train, y_train)
    return ("digits / MLPClassifier(32,)", model, X_train, X_test,
            {"no_info_val": 0.0, "feature_range": (0.0, 1.0)})


def run(model, X_train, X_explain, mode, batch_size, **params):
    cem = CEMExplainer(model, mode=mode, batch_size=batch_size, **params).fit(X_train)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        exp = cem.explain(X_explain)
    seconds = time.perf_counter() - start
    return exp, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-instances", type=int, default=30)
    parser.add_argument("--one-by-one", type=int, default=3,
                        help="instances explained one at a time for the batching speed-up")
    parser.add_argument("--tol", type=float, default=None,
                        help="early stopping (CEMExplainer's tol) for every run; default off, "
                             "the reference's fixed iteration count")
    parser.add_argument("--first", type=int, default=4,
                        help="also print found rate and median L1 of the first FIRST instances, "
                             "to compare with reference_alibi.py --n-instances FIRST")
    args = parser.parse_args()

    header = (f"{'setting':<28} {'mode':<4} {'clip':>6} {'inst/s':>8} {'rows/inst':>10} "
              f"{'found':>6} {'med L1':>7} {'med L0':>6} {'1-by-1 inst/s':>13} {'speed-up':>8} "
              f"{'found/L1 first':>15}")
    print(header)
    print("-" * len(header))
    for setting in (iris_setting, digits_setting):
        name, model, X_train, X_test, params = setting()
        X_explain = X_test[:args.n_instances]
        for mode in ("PN", "PP"):
            for clip in (100.0, 1000.0):
                kwargs = dict(params, clip=(-clip, clip), tol=args.tol)
                exp, seconds = run(model, X_train, X_explain, mode, len(X_explain), **kwargs)
                _, alone = run(model, X_train, X_explain[:args.one_by_one], mode, 1, **kwargs)
                rate, rate_alone = len(exp) / seconds, args.one_by_one / alone
                found = exp.found
                l1 = np.median(np.abs(exp.perturbation[found]).sum(axis=1)) if found.any() \
                    else np.nan
                l0 = np.nanmedian(n_changed(exp)) if found.any() else np.nan
                first = slice(0, args.first)
                l1_first = np.abs(exp.perturbation[first]).sum(axis=1)
                first_found = found[first].mean()
                first_l1 = np.nanmedian(l1_first) if found[first].any() else np.nan
                print(f"{name:<28} {mode:<4} {clip:>6.0f} {rate:>8.2f} "
                      f"{exp.meta['n_model_rows'] / len(exp):>10.0f} {found.mean():>6.0%} "
                      f"{l1:>7.3f} {l0:>6.1f} {rate_alone:>13.3f} {rate / rate_alone:>7.0f}x "
                      f"{first_found:>7.0%}/{first_l1:.3f}",
                      flush=True)


if __name__ == "__main__":
    main()
