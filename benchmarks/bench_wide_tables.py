"""The gradient-free search on wide numeric tables: seconds per row, model rows, distances.

On ``make_classification`` tables of 1,000 rows and several widths (``--widths``;
``--informative`` of the features informative, 20 by default), a
``RandomForestClassifier(100)`` is fitted on 800 rows and ``CounterfactualExplainer`` (at its
defaults: ``search="auto"``, the gradient-free search on a forest) explains the first
``--n-rows`` of the other 200 in one call. Each width runs in a fresh subprocess, once with
this checkout and, with ``--before-repo``, once with another checkout (the code before a
change), on the same rows; the script prints both and their ratios (seconds, model rows,
mean distance).

    python benchmarks/bench_wide_tables.py [--widths 200 1000 2000] [--n-rows 10]
                                           [--informative 20] [--before-repo ../base]
"""

import argparse
import json
import os
import subprocess
import sys

RUN = r"""
import json, sys, time, warnings
import numpy as np
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from skcem import CounterfactualExplainer

width, n_rows, informative = map(int, sys.argv[1:4])
X, y = make_classification(1000, width, n_informative=informative, random_state=0)
model = RandomForestClassifier(100, random_state=0, n_jobs=1).fit(X[:800], y[:800])
explainer = CounterfactualExplainer(model).fit(X[:800])
start = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    exp = explainer.explain(X[800:800 + n_rows])
seconds = time.perf_counter() - start
found = exp.found
rows = X[800:800 + n_rows]
valid = bool(np.all(model.predict(exp.explanation[found]) != model.predict(rows[found])))
import skcem
assert skcem.__file__.startswith(sys.argv[4]), skcem.__file__
print(json.dumps({"s_per_row": seconds / n_rows, "model_rows": exp.meta["n_model_rows"],
                  "found": float(found.mean()), "valid": valid,
                  "mean_distance": float(np.nanmean(exp.distance)),
                  "changed": float(np.mean([len(c) for c in exp.changes()]))}))
"""


def run(repo, width, n_rows, informative):
    env = {**os.environ, "PYTHONPATH": repo, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", RUN, str(width), str(n_rows),
                             str(informative), repo], env=env, cwd=repo, capture_output=True,
                            text=True, check=True)  # cwd: -c puts it first on the path
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[200, 1000, 2000])
    parser.add_argument("--n-rows", type=int, default=10)
    parser.add_argument("--informative", type=int, default=20)
    parser.add_argument("--before-repo", default=None)
    args = parser.parse_args()
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    header = f"{'width':>6} {'code':>7} {'s/row':>8} {'model rows':>11} {'found':>6} " \
             f"{'valid':>6} {'mean dist':>10} {'changed':>8}"
    print(header)
    for width in args.widths:
        runs = {"this": run(here, width, args.n_rows, args.informative)}
        if args.before_repo:
            runs["before"] = run(os.path.abspath(args.before_repo), width, args.n_rows,
                                 args.informative)
        for code, r in runs.items():
            print(f"{width:>6} {code:>7} {r['s_per_row']:>8.3f} {r['model_rows']:>11,} "
                  f"{r['found']:>6.2f} {str(r['valid']):>6} {r['mean_distance']:>10.4f} "
                  f"{r['changed']:>8.1f}", flush=True)
        if "before" in runs:
            this, before = runs["this"], runs["before"]
            print(f"{width:>6} {'ratio':>7} speed {before['s_per_row'] / this['s_per_row']:.1f}x,"
                  f" model rows {before['model_rows'] / this['model_rows']:.1f}x fewer, "
                  f"mean distance {this['mean_distance'] / before['mean_distance'] - 1:+.2%}",
                  flush=True)


if __name__ == "__main__":
    main()
