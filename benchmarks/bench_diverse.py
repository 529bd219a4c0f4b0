"""Diverse counterfactuals on UCI Adult: skcem's ``n_counterfactuals=k`` against DiCE random.

The models and constraints of ``bench_tabular.py`` (raw-table Pipelines fitted on adult.data;
race and sex immutable, age may only increase). The first ``--n-rows`` rows of adult.test get
``k`` counterfactuals each (``--k``, 4 by default) from skcem's ``CounterfactualExplainer(
n_counterfactuals=k, distance="mad")`` and from DiCE's random method (``total_CFs=k``, the
same constraints, in its own environment, ``--dice-python``; see ``reference_dice.py``), in
the same run. Each answer is scored by :func:`skcem.metrics.explanation_metrics` (validity by
``predict``, L0, L1 in MAD units), each set by :func:`skcem.metrics.count_diversity` and
:func:`skcem.metrics.continuous_diversity`. Printed per model and method:

* ``answers/row``: answers returned per row (``k`` at most);
* ``valid``: share of the returned answers that the model puts in the other class;
* ``valid of asked``: valid answers over the ``n_rows * k`` asked;
* ``count div``, ``cont div``: mean diversity of the sets of two answers or more;
* ``MAD-L1/answer``, ``changed/answer``: mean MAD-L1 distance and number of changed features
  per valid answer; ``changed rank 0``, ``changed rank 1+``: the latter for the first answer
  of each row (skcem's closest) and for the others;
* ``rows/s``: rows explained per second (DiCE: its ``generate_counterfactuals`` calls only).

Then the ratios of the targets of issue 26, computed here: skcem's count diversity over
DiCE's (target >= 1), MAD-L1 per answer (<= 0.5), changed features (<= 1) and rows/s (>= 10).

    python benchmarks/bench_diverse.py --dice-python /tmp/dice/bin/python [--n-rows 50]
        [--k 4] [--models lr forest]

Needs ``../shared/data/adult`` (or ``--data``); without it the script says so and exits 0.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from bench_tabular import CLASSIFIERS, DEFAULT_DATA, DIRECTIONS, IMMUTABLE, _plain_text, \
    load_adult, make_model
from skcem import CounterfactualExplainer, ExplanationNotFoundWarning
from skcem.metrics import continuous_diversity, count_diversity, explanation_metrics


def run_skcem(model, X_train, rows, k):
    explainer = CounterfactualExplainer(model, n_counterfactuals=k, distance="mad",
                                        immutable_features=IMMUTABLE, directions=DIRECTIONS)
    explainer.fit(X_train)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        explanation = explainer.explain(rows)
    seconds = time.perf_counter() - start
    return explanation.counterfactuals, seconds


def run_dice(python, model, X_train, y_train, rows, categorical, numeric, k, workdir):
    """DiCE random's ``k`` answers per row, as a DataFrame indexed by (row, rank)."""
    spec = {"model": str(workdir / "model.joblib"),
            "train": _plain_text(X_train.assign(income=y_train), categorical),
            "outcome": "income", "continuous": numeric, "categorical": categorical,
            "rows": _plain_text(rows, categorical), "immutable": IMMUTABLE,
            "increase_only": list(DIRECTIONS),
            "methods": ["random"], "total_CFs": k, "desired_class": "opposite", "seed": 0,
            "all_counterfactuals": True}
    joblib.dump(model, workdir / "model.joblib")
    joblib.dump(spec, workdir / "spec.joblib")
    script = Path(__file__).with_name("reference_dice.py")
    subprocess.run([python, str(script), "--input", str(workdir / "spec.joblib"), "--output",
                    str(workdir / "dice.json")], check=True)
    result = json.loads((workdir / "dice.json").read_text())
    outcome = result["methods"]["random"]
    records = []
    for answers in outcome["all_counterfactuals"]:
        answers = list(answers)[:k]
        records.extend(answers + [{}] * (k - len(answers)))  # missing ranks: empty rows
    index = pd.MultiIndex.from_product([rows.index, range(k)], names=[rows.index.name, "rank"])
    frame = pd.DataFrame(records, columns=rows.columns, index=index)
    for column in rows.columns:  # the explained rows' dtypes
        if column in numeric:
            frame[column] = pd.to_numeric(frame[column])
        else:
            frame[column] = frame[column].astype(rows[column].dtype)
    return frame, outcome["seconds_total"], result["versions"].get("dice-ml")


def summary(name, method, model, X_train, rows, answers, seconds, k):
    """One line of the table: validity, diversity, distances and speed of a set of answers."""
    n = len(rows)
    repeated = rows.iloc[np.repeat(np.arange(n), k)].reset_index(drop=True)
    flat = answers.reset_index(drop=True)
    table = explanation_metrics(model, repeated, flat, mode="CF", X_train=X_train,
                                immutable_features=IMMUTABLE, directions=DIRECTIONS)
    returned = table["l0"].notna().to_numpy()
    valid = table["valid"].to_numpy(bool) & returned
    first = np.arange(n * k) % k == 0  # rank 0: skcem's closest answer
    kept = table[valid]
    return {"model": name, "method": method, "answers/row": returned.sum() / n,
            "valid": valid.sum() / max(returned.sum(), 1),
            "valid of asked": valid.sum() / (n * k),
            "violations": int(np.nansum(table["violations"])),
            "count div": np.nanmean(count_diversity(answers)),
            "cont div": np.nanmean(continuous_diversity(answers, X_train)),
            "MAD-L1/answer": kept["l1"].mean(), "changed/answer": kept["l0"].mean(),
            "changed rank 0": table["l0"][valid & first].mean(),
            "changed rank 1+": table["l0"][valid & ~first].mean(),
            "rows/s": n / seconds}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--n-rows", type=int, default=50)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--models", nargs="+", default=["lr", "forest"],
                        choices=list(CLASSIFIERS))
    parser.add_argument("--dice-python", help="an interpreter with dice-ml (same scikit-learn "
                        "and pandas versions as this one)")
    args = parser.parse_args()
    if not (args.data / "adult.data.gz").exists():
        print(f"UCI Adult not found in {args.data}: nothing to benchmark (pass --data).")
        return 0

    X_train, y_train, X_test, y_test = load_adult(args.data)
    categorical = [c for c in X_train.columns if not pd.api.types.is_numeric_dtype(X_train[c])]
    numeric = [c for c in X_train.columns if c not in categorical]
    rows = X_test.iloc[:args.n_rows]
    lines, ratios = [], []
    for name in args.models:
        with threadpool_limits(limits=1, user_api="openmp"):  # see reference_dice.py
            model = make_model(name, categorical, numeric).fit(X_train, y_train)
        print(f"{name}: test accuracy {model.score(X_test, y_test):.3f}", flush=True)
        answers, seconds = run_skcem(model, X_train, rows, args.k)
        ours = summary(name, f"skcem k={args.k}", model, X_train, rows, answers, seconds,
                       args.k)
        per_model = [ours]
        if args.dice_python:
            with tempfile.TemporaryDirectory() as workdir:
                dice, dice_seconds, version = run_dice(
                    args.dice_python, model, X_train, y_train, rows, categorical, numeric,
                    args.k, Path(workdir))
            theirs = summary(name, f"DiCE {version} random", model, X_train, rows, dice,
                             dice_seconds, args.k)
            per_model.append(theirs)
            ratios.append({
                "model": name,
                "count div (>= 1)": ours["count div"] / theirs["count div"],
                "MAD-L1/answer (<= 0.5)": ours["MAD-L1/answer"] / theirs["MAD-L1/answer"],
                "changed/answer (<= 1)": ours["changed/answer"] / theirs["changed/answer"],
                "rows/s (>= 10)": ours["rows/s"] / theirs["rows/s"]})
        lines.extend(per_model)
        print(pd.DataFrame(per_model).to_string(index=False, float_format="{:.3g}".format),
              flush=True)
    print(f"\nAll models ({args.n_rows} rows of adult.test, k={args.k}):")
    print(pd.DataFrame(lines).to_string(index=False, float_format="{:.3g}".format))
    if ratios:
        print("\nskcem / DiCE random (targets in brackets):")
        print(pd.DataFrame(ratios).to_string(index=False, float_format="{:.3g}".format))
    return 0


if __name__ == "__main__":
    sys.exit(main())
