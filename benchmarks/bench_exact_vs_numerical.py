"""Exact against numerical gradients: the same answers? And how far apart can two runs be?

For iris and breast cancer (LogisticRegression) and digits (MLPClassifier(32,)), PN and PP,
explains the first ``--n-instances`` test instances at skcem's defaults three ways (with
``--splits K``, on each of K train/test splits, each with its own model, the answers pooled):

- ``exact``: the exact input gradients (``gradient="exact"``, ``batch_size`` 64);
- ``numerical``: central differences (``gradient="numerical"``, the reference's ``eps``);
- ``floor``: the exact path again with ``--floor-batch-size`` instances per batch. Only the
  rounding of the batched matrix products differs from ``exact``: the gap between the two
  is the search's own noise floor, which the numerical path's gap is to be read against;
- with ``--fine-eps EPS``, ``fine``: central differences with that step (1e-6: far more
  accurate than the reference's 1e-3, except across a ReLU kink).

Prints per case the found rate and validity (the model's ``predict`` on each found answer)
of each run, the median and mean L1 of the perturbation on the instances all runs found,
the relative gap of each to ``exact`` with 95% paired-bootstrap intervals (instances
resampled), and how many answers equal the exact path's (L1 to 1e-6).

    python benchmarks/bench_exact_vs_numerical.py [--n-instances 100] [--only digits]
        [--modes PN PP] [--splits 1] [--floor-batch-size 7] [--probe-iterations auto|none]
        [--fine-eps 1e-6]
"""

import argparse
import time
import warnings

import numpy as np

from bench_blackbox import cancer_setting, digits_setting, iris_setting
from skcem import CEMExplainer, ExplanationNotFoundWarning, TargetWarning

SETTINGS = [iris_setting, cancer_setting, digits_setting]


def explain(model, X_train, rows, mode, params, **options):
    cem = CEMExplainer(model, mode=mode, **params, **options).fit(X_train)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        warnings.simplefilter("ignore", TargetWarning)  # PPs that keep nothing
        warnings.filterwarnings("ignore", message=".*outside `feature_range_`")
        exp = cem.explain(rows)
    return exp, time.perf_counter() - start


def validity_mask(model, exp):
    """Whether each found answer's ``predict`` meets the mode (PN: another class)."""
    predicted = model.predict(np.asarray(exp.explanation, dtype=float)[exp.found])
    same = predicted == exp.X_pred[exp.found]
    return ~same if exp.mode == "PN" else same


def gap(value, reference):
    """``value / reference - 1``, 0 where both are 0 (breast cancer PPs that keep nothing)."""
    value, reference = np.asarray(value, float), np.asarray(reference, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(reference > 0, value / reference - 1, np.where(value > 0, np.inf, 0.0))


def gap_interval(statistic, l1, l1_exact, rng, n_boot=2000):
    """95% paired-bootstrap interval of ``statistic(l1) / statistic(l1_exact) - 1``."""
    picks = rng.integers(0, len(l1), size=(n_boot, len(l1)))
    gaps = gap(statistic(l1[picks], axis=1), statistic(l1_exact[picks], axis=1))
    return np.percentile(gaps, [2.5, 97.5])


def pooled_runs(settings, mode, options):
    """Each run's found, valid and L1 arrays and seconds, pooled over the settings' splits."""
    pooled = {}
    for model, X_train, rows, params in settings:
        common = dict(params, probe_iterations=options["probe"])
        runs = {"exact": dict(gradient="exact"), "numerical": dict(gradient="numerical"),
                "floor": dict(gradient="exact", batch_size=options["floor_batch_size"])}
        if options["fine_eps"] is not None:
            runs["fine"] = dict(gradient="numerical", eps=(options["fine_eps"],) * 2)
        for run, run_options in runs.items():
            exp, seconds = explain(model, X_train, rows, mode, common, **run_options)
            valid = np.zeros(len(rows), dtype=bool)
            if exp.found.any():
                valid[exp.found] = validity_mask(model, exp)
            entry = pooled.setdefault(run, {"found": [], "valid": [], "l1": [], "s": 0.0})
            entry["found"].append(exp.found)
            entry["valid"].append(valid)
            entry["l1"].append(np.abs(np.nan_to_num(exp.perturbation)).sum(axis=1))
            entry["s"] += seconds
    return {run: {key: value if key == "s" else np.concatenate(value)
                  for key, value in entry.items()} for run, entry in pooled.items()}


HEADER = (f"{'setting':<28} {'mode':<4} {'run':<9} {'n':>5} {'s':>6} {'found':>6} "
          f"{'valid':>6} {'med L1':>7} {'mean L1':>8} {'med gap':>8} {'95% interval':>17} "
          f"{'mean gap':>8} {'95% interval':>17} {'same':>9}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-instances", type=int, default=100)
    parser.add_argument("--only", default=None, help="run only settings whose name has this")
    parser.add_argument("--modes", nargs="+", default=["PN", "PP"])
    parser.add_argument("--splits", type=int, default=1,
                        help="train/test splits (random_state 0..K-1), each with its own model")
    parser.add_argument("--floor-batch-size", type=int, default=7)
    parser.add_argument("--fine-eps", type=float, default=None)
    parser.add_argument("--probe-iterations", default="auto",
                        help="'auto' (skcem's default) or 'none' (the full schedule)")
    args = parser.parse_args()
    options = {"probe": None if args.probe_iterations.lower() == "none"
               else args.probe_iterations,
               "floor_batch_size": args.floor_batch_size, "fine_eps": args.fine_eps}
    rng = np.random.default_rng(0)
    print(HEADER)
    for setting in SETTINGS:
        splits = [setting(random_state=seed) for seed in range(args.splits)]
        name = splits[0][0]
        if args.only and args.only not in name:
            continue
        settings = [(model, X_train, X_test[:args.n_instances], params)
                    for _, model, X_train, X_test, params in splits]
        for mode in args.modes:
            runs = pooled_runs(settings, mode, options)
            every = np.logical_and.reduce([run["found"] for run in runs.values()])
            l1 = {key: run["l1"][every] for key, run in runs.items()}
            for key, run in runs.items():
                median_low, median_high = gap_interval(np.median, l1[key], l1["exact"], rng)
                mean_low, mean_high = gap_interval(np.mean, l1[key], l1["exact"], rng)
                same = np.abs(l1[key] - l1["exact"]) <= 1e-6 * (1 + l1["exact"])
                found = run["found"]
                valid = run["valid"][found].mean() if found.any() else np.nan
                print(f"{name:<28} {mode:<4} {key:<9} {len(found):>5} {run['s']:>6.1f} "
                      f"{found.mean():>6.0%} {valid:>6.0%} {np.median(l1[key]):>7.3f} "
                      f"{l1[key].mean():>8.3f} "
                      f"{gap(np.median(l1[key]), np.median(l1['exact'])):>+8.1%} "
                      f"[{median_low:>+6.1%}, {median_high:>+6.1%}] "
                      f"{gap(l1[key].mean(), l1['exact'].mean()):>+8.1%} "
                      f"[{mean_low:>+6.1%}, {mean_high:>+6.1%}] "
                      f"{same.sum():>4}/{every.sum():<4}", flush=True)


if __name__ == "__main__":
    main()
