"""Early-stopping strategies of the CEM search against the full schedule (issue 16).

For each setting (iris / LogisticRegression and digits / MLPClassifier(32,) as in
``bench_blackbox.py``, breast cancer / LogisticRegression on standardised features, wine /
a StandardScaler + LogisticRegression Pipeline on the raw features), each mode
(PN, PP) and each strategy it explains the same instances in one batch at the reference
defaults (max_iterations=1000, c_steps=10, clip 100) and prints: found rate, validity (the
estimator's ``predict`` on the found answers), median L1 and L0 of the perturbation over the
found instances, the median relative L1 difference to the full schedule on the instances both
find (and its 90th percentile), FISTA iterations per instance (load-independent) and wall
time.

    python benchmarks/bench_early_stopping.py [--n-instances 40] [--only digits]
        [--strategies full probe100 ...] [--clip 100] [--max-iterations 1000]
"""

import argparse
import time
import warnings
from dataclasses import replace

import numpy as np
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from bench_blackbox import digits_setting, iris_setting
from skcem import CEMExplainer, ExplanationNotFoundWarning
from skcem.metrics import n_changed


def cancer_setting():
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    X_train, X_test, y_train, _ = train_test_split(X, y, test_size=0.3, random_state=0,
                                                   stratify=y)
    model = LogisticRegression(max_iter=1000).fit(X_train, y_train)
    return "cancer / LogisticRegression", model, X_train, X_test, {}


def wine_setting():
    """Raw, unscaled features (proline in the hundreds) and a scaling Pipeline."""
    X, y = load_wine(return_X_y=True)
    X_train, X_test, y_train, _ = train_test_split(X, y, test_size=0.3, random_state=0,
                                                   stratify=y)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    return "wine / Pipeline(scaler, LR)", model.fit(X_train, y_train), X_train, X_test, {}


SETTINGS = (iris_setting, digits_setting, cancer_setting, wine_setting)

# Public parameters (``params``) and private solver settings (``solver``) of each strategy.
# "tol": the failing c-step's stall test and the 5% bracket on c (``tol=1e-4``); "warm":
# every c-step starts from the best answer so far; "probeN": ``probe_iterations=N`` (N-iteration
# c-steps for the search on c, warm-started, then one full c-step at the smallest successful c),
# N given for max_iterations=1000 and scaled with --max-iterations (its ``probe_iterations``
# below is the divisor of max_iterations).
STRATEGIES = {
    "full": {},
    "tol": dict(params=dict(tol=1e-4)),
    "no-momentum": dict(params=dict(momentum=False)),
    "warm": dict(solver=dict(warm_start=True)),
    "probe100": dict(params=dict(probe_iterations=10)),
    "probe50": dict(params=dict(probe_iterations=20)),
    "probe100+tol": dict(params=dict(probe_iterations=10, tol=1e-4)),
    "probe100-nomom": dict(params=dict(probe_iterations=10, momentum=False)),
}


class _Explainer(CEMExplainer):
    """CEMExplainer with private solver settings replaced (for strategies with no parameter)."""

    def _solver_settings(self):
        return replace(super()._solver_settings(), **self._solver_overrides)


def explain(model, X_train, X, mode, params, strategy):
    spec = STRATEGIES[strategy]
    # Every strategy starts from the reference's full schedule (skcem's default probes).
    own = dict({"probe_iterations": None}, **spec.get("params", {}))
    if own["probe_iterations"] is not None:
        own["probe_iterations"] = max(params["max_iterations"] // own["probe_iterations"], 1)
    cem = _Explainer(model, mode=mode, batch_size=len(X), **params, **own)
    cem._solver_overrides = spec.get("solver", {})
    cem.fit(X_train)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        exp = cem.explain(X)
    return exp, time.perf_counter() - start


def valid(model, exp):
    """Share of the found answers whose class by ``predict`` is what the mode requires."""
    found = exp.found
    if not found.any():
        return np.nan
    pred = model.predict(np.asarray(exp.explanation, float)[found])
    same = pred == np.asarray(exp.X_pred)[found]
    return float(np.mean(~same if exp.mode == "PN" else same))


HEADER = (f"{'setting':<28} {'mode':<4} {'strategy':<14} {'found':>6} {'valid':>6} "
          f"{'med L1':>7} {'med L0':>6} {'dL1 p10':>8} {'dL1 med':>8} {'dL1 p90':>8} {'both':>5} "
          f"{'iter/inst':>9} {'vs full':>7} {'wall s':>7}")


def row(name, mode, strategy, model, exp, seconds, full):
    found = exp.found
    l1 = np.abs(exp.perturbation).sum(axis=1)
    l0 = n_changed(exp)
    full_l1 = np.abs(full[0].perturbation).sum(axis=1)
    both = found & full[0].found
    rel = (l1[both] - full_l1[both]) / np.maximum(full_l1[both], 1e-12)
    iters = np.mean(exp.meta["n_iterations"])
    full_iters = np.mean(full[0].meta["n_iterations"])
    med = (lambda v: np.median(v) if v.size else np.nan)
    return (f"{name:<28} {mode:<4} {strategy:<14} {found.mean():>6.0%} {valid(model, exp):>6.0%} "
            f"{med(l1[found]):>7.3f} {med(l0[found]):>6.1f} "
            f"{(np.percentile(rel, 10) if rel.size else np.nan):>+8.1%} {med(rel):>+8.1%} "
            f"{(np.percentile(rel, 90) if rel.size else np.nan):>+8.1%} {int(both.sum()):>5} "
            f"{iters:>9.0f} {full_iters / max(iters, 1):>6.1f}x {seconds:>7.1f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-instances", type=int, default=40)
    parser.add_argument("--only", default=None, help="run only settings whose name has this")
    parser.add_argument("--modes", nargs="+", default=["PN", "PP"])
    parser.add_argument("--clip", type=float, default=100.0)
    parser.add_argument("--max-iterations", type=int, default=1000)
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES),
                        choices=list(STRATEGIES))
    args = parser.parse_args()
    print(HEADER)
    print("-" * len(HEADER))
    for setting in SETTINGS:
        name, model, X_train, X_test, params = setting()
        params = dict(params, clip=(-args.clip, args.clip), max_iterations=args.max_iterations)
        if args.only and args.only not in name:
            continue
        X = X_test[:args.n_instances]
        for mode in args.modes:
            full = explain(model, X_train, X, mode, params, "full")
            for strategy in args.strategies:
                result = full if strategy == "full" else explain(
                    model, X_train, X, mode, params, strategy)
                print(row(name, mode, strategy, model, *result, full), flush=True)


if __name__ == "__main__":
    main()
