"""Exact against numerical gradients: the same answers? And how far apart can two runs be?

For iris and breast cancer (LogisticRegression) and digits (MLPClassifier(32,)), PN and PP,
explains the first ``--n-instances`` test instances at skcem's defaults three ways:

- ``exact``: the exact input gradients (``gradient="exact"``, ``batch_size`` 64);
- ``numerical``: central differences (``gradient="numerical"``, the reference's ``eps``);
- ``floor``: the exact path again with ``--floor-batch-size`` instances per batch. Only the
  rounding of the batched matrix products differs from ``exact``: the gap between the two
  is the search's own noise floor, which the numerical path's gap is to be read against;
- with ``--fine-eps EPS``, ``fine``: central differences with that step (1e-6: far more
  accurate than the reference's 1e-3, except across a ReLU kink).

Prints per case the found rate and validity (the model's ``predict`` on each found answer)
of each run, the median and mean L1 of the perturbation on the instances all runs found,
the relative gap of each to ``exact`` with a 95% paired-bootstrap interval of the median's
gap, and how many answers equal the exact path's (L1 to 1e-6).

    python benchmarks/bench_exact_vs_numerical.py [--n-instances 100] [--only digits]
        [--modes PN PP] [--floor-batch-size 7] [--probe-iterations auto|none]
        [--fine-eps 1e-6]
"""

import argparse
import time
import warnings

import numpy as np

from bench_blackbox import cancer_setting, digits_setting, iris_setting
from skcem import CEMExplainer, ExplanationNotFoundWarning

SETTINGS = [iris_setting, cancer_setting, digits_setting]


def explain(model, X_train, rows, mode, params, **options):
    cem = CEMExplainer(model, mode=mode, **params, **options).fit(X_train)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        warnings.filterwarnings("ignore", message=".*outside `feature_range_`")
        exp = cem.explain(rows)
    return exp, time.perf_counter() - start


def validity(model, exp):
    """Share of the found answers whose ``predict`` meets the mode (PN: another class)."""
    if not exp.found.any():
        return np.nan
    predicted = model.predict(np.asarray(exp.explanation, dtype=float)[exp.found])
    same = predicted == exp.X_pred[exp.found]
    return float(np.mean(~same if exp.mode == "PN" else same))


def gap(value, reference):
    """``value / reference - 1``, 0 where both are 0 (breast cancer PPs that keep nothing)."""
    value, reference = np.asarray(value, float), np.asarray(reference, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(reference > 0, value / reference - 1, np.where(value > 0, np.inf, 0.0))


def median_gap_interval(l1, l1_exact, rng, n_boot=2000):
    """95% paired-bootstrap interval of ``median(l1) / median(l1_exact) - 1``."""
    picks = rng.integers(0, len(l1), size=(n_boot, len(l1)))
    gaps = gap(np.median(l1[picks], axis=1), np.median(l1_exact[picks], axis=1))
    return np.percentile(gaps, [2.5, 97.5])


HEADER = (f"{'setting':<28} {'mode':<4} {'run':<9} {'s':>6} {'found':>6} {'valid':>6} "
          f"{'med L1':>7} {'mean L1':>8} {'med gap':>8} {'95% interval':>17} {'mean gap':>8} "
          f"{'same':>7}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-instances", type=int, default=100)
    parser.add_argument("--only", default=None, help="run only settings whose name has this")
    parser.add_argument("--modes", nargs="+", default=["PN", "PP"])
    parser.add_argument("--floor-batch-size", type=int, default=7)
    parser.add_argument("--fine-eps", type=float, default=None)
    parser.add_argument("--probe-iterations", default="auto",
                        help="'auto' (skcem's default) or 'none' (the full schedule)")
    args = parser.parse_args()
    probe = None if args.probe_iterations.lower() == "none" else args.probe_iterations
    rng = np.random.default_rng(0)
    print(HEADER)
    for setting in SETTINGS:
        name, model, X_train, X_test, params = setting()
        if args.only and args.only not in name:
            continue
        rows = X_test[:args.n_instances]
        for mode in args.modes:
            common = dict(params, probe_iterations=probe)
            runs = {"exact": explain(model, X_train, rows, mode, common, gradient="exact"),
                    "numerical": explain(model, X_train, rows, mode, common,
                                         gradient="numerical"),
                    "floor": explain(model, X_train, rows, mode, common, gradient="exact",
                                     batch_size=args.floor_batch_size)}
            if args.fine_eps is not None:
                runs["fine"] = explain(model, X_train, rows, mode, common, gradient="numerical",
                                       eps=(args.fine_eps, args.fine_eps))
            every = np.logical_and.reduce([exp.found for exp, _ in runs.values()])
            l1 = {k: np.abs(exp.perturbation[every]).sum(axis=1) for k, (exp, _) in runs.items()}
            for run, (exp, seconds) in runs.items():
                low, high = median_gap_interval(l1[run], l1["exact"], rng)
                same = np.abs(l1[run] - l1["exact"]) <= 1e-6 * (1 + l1["exact"])
                print(f"{name:<28} {mode:<4} {run:<9} {seconds:>6.1f} {exp.found.mean():>6.0%} "
                      f"{validity(model, exp):>6.0%} {np.median(l1[run]):>7.3f} "
                      f"{l1[run].mean():>8.3f} "
                      f"{gap(np.median(l1[run]), np.median(l1['exact'])):>+8.1%} "
                      f"[{low:>+6.1%}, {high:>+6.1%}] "
                      f"{gap(l1[run].mean(), l1['exact'].mean()):>+8.1%} "
                      f"{same.sum():>3}/{every.sum():<3}", flush=True)


if __name__ == "__main__":
    main()
