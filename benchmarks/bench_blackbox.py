"""Black-box CEM speed and quality: iris and breast cancer (LogisticRegression), digits (MLP).

Explains 20+ instances per setting with the reference defaults (max_iterations=1000,
c_steps=10), PN and PP, in one batch, with two schedules: skcem's defaults ("defaults": the
probing search on ``c``) and the reference's ("full": ``probe_iterations=None``, every c-step
runs all iterations; ``--schedules`` picks), and prints per setting: instances/s, predict_proba rows
per instance, found rate, and the median L1 and L0 of the perturbation (what a PN adds, what a
PP keeps). For the speed-up of batching it also explains a few of the same instances one at a
time (batch_size=1), which is how the reference works.

With ``--reference-python PATH`` (an interpreter with alibi 0.9.6, see ``reference_alibi.py``)
it also runs the reference on the first ``--reference-instances`` instances of each case, in a
subprocess right after skcem's runs of that case, and prints a second table: skcem batched,
skcem one-by-one and reference instances/s, the speed-ups over the reference, and the found
rate and median L1 of both (the L1 on the instances both explained).

    python benchmarks/bench_blackbox.py [--n-instances 30] [--one-by-one 3]
        [--reference-python /tmp/alibi/bin/python [--reference-instances 3]]
        [--only iris] [--modes PN PP] [--clips 100 1000] [--schedules defaults full]
"""

import argparse
import json
import subprocess
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits, load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from skcem import CEMExplainer, ExplanationNotFoundWarning
from skcem.metrics import n_changed


def _standardised_logistic(name, load, random_state):
    X, y = load(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    X_train, X_test, y_train, _ = train_test_split(X, y, test_size=0.3,
                                                   random_state=random_state, stratify=y)
    model = LogisticRegression(max_iter=1000).fit(X_train, y_train)
    return name, model, X_train, X_test, {}


def iris_setting(random_state=0):
    return _standardised_logistic("iris / LogisticRegression", load_iris, random_state)


def cancer_setting(random_state=0):
    return _standardised_logistic("cancer / LogisticRegression", load_breast_cancer,
                                  random_state)


def digits_setting(random_state=0):
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    X_train, X_test, y_train, _ = train_test_split(X, y, test_size=0.25,
                                                   random_state=random_state)
    model = MLPClassifier((32,), max_iter=500, random_state=random_state).fit(X_train, y_train)
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


def run_reference(python, name, mode, clip, n_instances):
    """The reference's figures on one case, from ``reference_alibi.py --json``."""
    script = Path(__file__).with_name("reference_alibi.py")
    command = [python, str(script), "--json", "--n-instances", str(n_instances), "--only", name,
               "--modes", mode, "--clips", str(clip)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"the reference failed: {command}\n{done.stderr[-3000:]}")
    return json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])


def compare(exp, reference):
    """Found rates and median L1 of skcem and the reference on the reference's instances."""
    n = reference["n_instances"]
    found = exp.found[:n]
    l1 = np.abs(exp.perturbation[:n]).sum(axis=1)
    ref_found = np.array(reference["found"], dtype=bool)
    ref_l1 = np.array([np.nan if v is None else v for v in reference["l1"]])
    both = found & ref_found
    return (found.mean(), ref_found.mean(), median_where(l1, both), median_where(ref_l1, both),
            int(both.sum()))


def median_where(values, mask):
    return np.median(values[mask]) if mask.any() else np.nan


# skcem's parameters for each schedule: its defaults, and the reference's full schedule.
SCHEDULES = {"defaults": {}, "full": {"probe_iterations": None}}

REFERENCE_HEADER = (f"{'setting':<28} {'mode':<4} {'sched':<8} {'clip':>6} {'batched':>8} "
                    f"{'1-by-1':>8} {'ref':>8} {'batch/ref':>9} {'1by1/ref':>9} {'n':>3} "
                    f"{'found sk/ref':>12} {'med L1 sk/ref (both)':>22}")


def reference_row(name, mode, schedule, clip, rate, rate_alone, exp, reference):
    ref_rate = reference["n_instances"] / reference["seconds"]
    found, ref_found, l1, ref_l1, both = compare(exp, reference)
    return (f"{name:<28} {mode:<4} {schedule:<8} {clip:>6.0f} {rate:>8.2f} {rate_alone:>8.3f} "
            f"{ref_rate:>8.4f} {rate / ref_rate:>8.0f}x {rate_alone / ref_rate:>8.1f}x "
            f"{reference['n_instances']:>3} {found:>5.0%}/{ref_found:<6.0%} "
            f"{l1:>7.3f}/{ref_l1:<7.3f} ({both})")


def result_row(name, mode, schedule, clip, rate, rate_alone, exp, n_first):
    found = exp.found
    l1 = np.median(np.abs(exp.perturbation[found]).sum(axis=1)) if found.any() else np.nan
    l0 = np.nanmedian(n_changed(exp)) if found.any() else np.nan
    first = slice(0, n_first)
    l1_first = np.abs(exp.perturbation[first]).sum(axis=1)
    first_l1 = np.nanmedian(l1_first) if found[first].any() else np.nan
    return (f"{name:<28} {mode:<4} {schedule:<8} {clip:>6.0f} {rate:>8.2f} "
            f"{exp.meta['n_model_rows'] / len(exp):>10.0f} {found.mean():>6.0%} "
            f"{l1:>7.3f} {l0:>6.1f} {rate_alone:>13.3f} {rate / rate_alone:>7.0f}x "
            f"{found[first].mean():>7.0%}/{first_l1:.3f}")


def _positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1; got {value}")
    return value


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-instances", type=_positive, default=30)
    parser.add_argument("--one-by-one", type=_positive, default=3,
                        help="instances explained one at a time for the batching speed-up")
    parser.add_argument("--tol", type=float, default=None,
                        help="early stopping (CEMExplainer's tol) for every run; default off, "
                             "the reference's fixed iteration count")
    parser.add_argument("--first", type=int, default=4,
                        help="also print found rate and median L1 of the first FIRST instances, "
                             "to compare with reference_alibi.py --n-instances FIRST")
    parser.add_argument("--reference-python", default=None,
                        help="interpreter with alibi 0.9.6 to run reference_alibi.py in the "
                             "same run")
    parser.add_argument("--reference-instances", type=int, default=None,
                        help="instances the reference explains (default: --one-by-one)")
    parser.add_argument("--only", default=None, help="run only settings whose name has this")
    parser.add_argument("--modes", nargs="+", default=["PN", "PP"])
    parser.add_argument("--clips", nargs="+", type=float, default=[100.0, 1000.0],
                        help="gradient clips (each run's clip=(-CLIP, CLIP))")
    parser.add_argument("--schedules", nargs="+", default=["defaults", "full"],
                        choices=list(SCHEDULES))
    parser.add_argument("--gradient", default="auto", choices=["auto", "exact", "numerical"],
                        help="skcem's gradient path (auto: exact for these models)")
    args = parser.parse_args()
    n_reference = args.reference_instances or args.one_by_one
    reference_rows = []

    header = (f"{'setting':<28} {'mode':<4} {'sched':<8} {'clip':>6} {'inst/s':>8} "
              f"{'rows/inst':>10} {'found':>6} {'med L1':>7} {'med L0':>6} "
              f"{'1-by-1 inst/s':>13} {'speed-up':>8} {'found/L1 first':>15}")
    print(header)
    print("-" * len(header))
    for setting in (iris_setting, cancer_setting, digits_setting):
        name, model, X_train, X_test, params = setting()
        if args.only and args.only not in name:
            continue
        X_explain = X_test[:args.n_instances]
        for mode in args.modes:
            for clip in args.clips:
                runs = []
                for schedule in args.schedules:
                    kwargs = dict(params, clip=(-clip, clip), tol=args.tol,
                                  gradient=args.gradient, **SCHEDULES[schedule])
                    exp, seconds = run(model, X_train, X_explain, mode, len(X_explain), **kwargs)
                    _, alone = run(model, X_train, X_explain[:args.one_by_one], mode, 1,
                                   **kwargs)
                    rate, rate_alone = len(exp) / seconds, args.one_by_one / alone
                    runs.append((schedule, rate, rate_alone, exp))
                    print(result_row(name, mode, schedule, clip, rate, rate_alone, exp,
                                     args.first), flush=True)
                if args.reference_python:
                    reference = run_reference(args.reference_python, name, mode, clip,
                                              n_reference)
                    reference_rows += [reference_row(name, mode, schedule, clip, rate,
                                                     rate_alone, exp, reference)
                                       for schedule, rate, rate_alone, exp in runs]
    if reference_rows:
        print(f"\nagainst the reference (alibi 0.9.6 CEM, one instance at a time), instances/s "
              f"in this run; found and L1 on the first {n_reference} instances")
        print(REFERENCE_HEADER)
        print("-" * len(REFERENCE_HEADER))
        print("\n".join(reference_rows))


if __name__ == "__main__":
    main()
