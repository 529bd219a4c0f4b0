"""Counterfactuals, PNs and PPs on UCI Adult, against DiCE in the same run.

The models take the raw table: ``Pipeline(ColumnTransformer(OneHotEncoder on the categorical
columns, StandardScaler on the numeric ones), classifier)`` with LogisticRegression,
MLPClassifier((32,)), RandomForestClassifier(200) or HistGradientBoostingClassifier, fitted on
adult.data. The first ``--n-rows`` rows of adult.test are explained under the same
constraints: race and sex immutable, age may only increase. skcem explains them with its
defaults (``distance="mad"``); DiCE (``dice-ml``, methods "random" and "genetic", one
counterfactual per row, ``features_to_vary`` and a per-row ``permitted_range`` for age) runs in
its own environment on the same pickled models and rows (``--dice-python``, see
``reference_dice.py``). All answers are scored by :func:`skcem.metrics.explanation_metrics`
(validity by ``predict``, L0/L1/L2/L∞ in MAD units, yNN, violations, redundancy) and the
ratios of instances per second are computed here, from this run.

    python benchmarks/bench_tabular.py [--n-rows 100] [--models lr mlp forest hgb]
        [--dice-python /tmp/dice/bin/python] [--dice-methods random genetic]
        [--plausibility 0 1]

``--plausibility 0 1`` explains the CF and PN rows at each ``plausibility`` weight (a row
each, ``p=``); then, per model, the issue's targets at ``plausibility=1`` against DiCE random
(yNN at least DiCE's, mean MAD-L1 at most DiCE's) are checked here. ``rare pairs`` is the
share of valid answers holding a pair of categories that fewer than 0.01% of the training
rows hold (and that the instance does not hold itself).

``--numeric-plausibility --plausibility 0 1`` runs those weights on numeric tables instead
(scikit-learn's breast cancer and wine, a quarter of the rows explained, a scaled
LogisticRegression, ``distance="mad"``): counterfactuals and PNs through ``search="auto"``
(the gradient search, then the gradient-free answer where it costs less) and
``search="neighbors"``; yNN, mean MAD-L1 and rows per second.

``--exact`` benchmarks ``search="exact"`` instead (:func:`exact_benchmark`): on Adult with
``RandomForestClassifier(100)``, ``HistGradientBoostingClassifier`` and, when installed,
XGBoost's ``XGBClassifier`` and LightGBM's ``LGBMClassifier`` (100 trees each, their default
depths) behind the same Pipeline, the seconds per row (median, 90th percentile, largest), the
share of rows proven optimal and the proven gap of the exact counterfactuals and PNs, and how
far the default search's answers are from the exact optimum; then the same comparison on
numeric tables (scikit-learn's breast cancer and wine, the models on the raw features).
``--tables binned`` adds a second table with categories (:func:`binned_table`) and the
boosting models; ``--first-row`` picks other rows of adult.test (and of that table).

    python benchmarks/bench_tabular.py --exact [--n-rows 30] [--first-row 0] [--max-time 10]
        [--forest-depth None] [--tables adult numeric binned]
        [--exact-models forest100 hgb xgboost lightgbm]

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
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from skcem import CEMExplainer, CounterfactualExplainer, ExplanationNotFoundWarning
from skcem.metrics import explanation_metrics

COLUMNS = ["age", "workclass", "fnlwgt", "education", "education-num", "marital-status",
           "occupation", "relationship", "race", "sex", "capital-gain", "capital-loss",
           "hours-per-week", "native-country", "income"]
IMMUTABLE = ["race", "sex"]
DIRECTIONS = {"age": "increase"}
CLASSIFIERS = {
    "lr": lambda: LogisticRegression(max_iter=1000),
    "mlp": lambda: MLPClassifier((32,), max_iter=300, random_state=0),
    "forest": lambda: RandomForestClassifier(200, random_state=0, n_jobs=1),
    "hgb": lambda: HistGradientBoostingClassifier(random_state=0),
}
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "adult"


def load_adult(directory):
    """adult.data and adult.test as (X, y): rows with missing values dropped, ``fnlwgt`` and
    ``education`` (duplicated by ``education-num``) left out, y = income > 50K."""
    def read(name, skip):
        frame = pd.read_csv(directory / name, header=None, names=COLUMNS,
                            skipinitialspace=True, na_values="?", skiprows=skip).dropna()
        y = frame.pop("income").str.rstrip(".").eq(">50K").astype(int)
        return frame.drop(columns=["fnlwgt", "education"]).reset_index(drop=True), \
            y.reset_index(drop=True)

    X_train, y_train = read("adult.data.gz", 0)
    X_test, y_test = read("adult.test.gz", 1)  # its first line is a comment
    return X_train, y_train, X_test, y_test


def make_model(name, categorical, numeric):
    dense = name == "hgb"  # HistGradientBoosting refuses sparse input
    encode = ColumnTransformer([
        ("categories", OneHotEncoder(handle_unknown="ignore", sparse_output=not dense),
         categorical), ("numbers", StandardScaler(), numeric)])
    return make_pipeline(encode, CLASSIFIERS[name]())


def run_skcem(model, X_train, rows, mode, plausibility=0.0):
    params = dict(immutable_features=IMMUTABLE, directions=DIRECTIONS, distance="mad",
                  plausibility=plausibility)
    if mode == "CF":
        explainer = CounterfactualExplainer(model, **params)
    else:
        explainer = CEMExplainer(model, mode=mode, **params)
    explainer.fit(X_train)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        explanation = explainer.explain(rows)
    seconds = time.perf_counter() - start
    background = None
    if mode == "PP":
        codes = np.asarray(explanation.background, dtype=float)[None]
        background = explainer._codec.decode(codes, for_model=False)
    return explanation.explanation, seconds, explanation.meta["n_model_rows"] / len(rows), \
        background


def _percentiles(values, q=(50, 90)):
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    return [float(np.percentile(values, p)) if values.size else float("nan") for p in q]


def compare_with_exact(model, X_train, rows, mode, max_time, **params):
    """The exact search's figures on ``rows``, and the default search's excess distance over
    its optimum (rows both found, the exact one proven optimal)."""
    def explainer(**search):
        if mode == "CF":
            return CounterfactualExplainer(model, **params, **search)
        return CEMExplainer(model, mode=mode, **params, **search)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        default = explainer().fit(X_train)
        start, start_cpu = time.perf_counter(), time.process_time()
        by_default = default.explain(rows)
        default_seconds = time.perf_counter() - start
        default_cpu = time.process_time() - start_cpu
        exact = explainer(search="exact", max_time=max_time).fit(X_train)
        start = time.perf_counter()
        optimum = exact.explain(rows)
        exact_seconds = time.perf_counter() - start
    both = by_default.found & optimum.found & (optimum.gap == 0)
    excess = (by_default.distance[both] - optimum.distance[both]) / \
        np.maximum(optimum.distance[both], 1e-12)
    gap_median, gap_p90 = _percentiles(optimum.gap)
    excess_median, excess_p90 = _percentiles(excess)
    per_row = optimum.meta.get("seconds")
    sec_median, sec_p90 = _percentiles(per_row if per_row is not None else
                                       [exact_seconds / len(rows)])
    return {"mode": mode, "default": default.search_,
            "found exact": f"{int(optimum.found.sum())}/{len(rows)}",
            "found default": f"{int(by_default.found.sum())}/{len(rows)}",
            "optimal": int(np.sum(optimum.gap == 0)),
            "optimal share": float(np.mean(optimum.gap == 0)),
            "s/row median": sec_median, "s/row p90": sec_p90,
            "s/row max": float(np.max(per_row)) if per_row is not None else float("nan"),
            "s/row overall": exact_seconds / len(rows), "gap median": gap_median,
            "gap p90": gap_p90,
            "default s/row": default_seconds / len(rows),
            "default CPU s/row": default_cpu / len(rows),
            "default excess median": excess_median, "default excess p90": excess_p90,
            "default = optimum": f"{int(np.sum(excess <= 1e-6))}/{int(both.sum())}"}


def exact_models(forest_depth):
    """The tree models of ``--exact`` on Adult: scikit-learn's, then XGBoost's and
    LightGBM's where installed (never required)."""
    models = {"forest100": lambda: RandomForestClassifier(
                  100, max_depth=forest_depth, random_state=0, n_jobs=1),
              "hgb": lambda: HistGradientBoostingClassifier(random_state=0)}
    try:
        from xgboost import XGBClassifier
        models["xgboost"] = lambda: XGBClassifier(n_estimators=100, random_state=0, n_jobs=1)
    except ImportError:
        pass
    try:
        from lightgbm import LGBMClassifier
        models["lightgbm"] = lambda: LGBMClassifier(n_estimators=100, random_state=0,
                                                    n_jobs=1, verbose=-1)
    except ImportError:
        pass
    return models


def exact_benchmark(args):
    """See the module's docstring (``--exact``)."""
    from sklearn.datasets import load_breast_cancer, load_wine

    lines = []
    if "adult" not in args.tables:
        pass
    elif (args.data / "adult.data.gz").exists():
        names = [name for name in exact_models(args.forest_depth) if name in args.exact_models]
        lines += table_comparison("adult", load_adult(args.data), names, args,
                                  immutable_features=IMMUTABLE, directions=DIRECTIONS)
    elif args.tables == ["adult"]:
        raise SystemExit(f"UCI Adult not found in {args.data}: nothing to benchmark (pass "
                         "--data).")
    else:
        print(f"UCI Adult not found in {args.data}: numeric tables only.")
    if "binned" in args.tables:
        lines += binned_comparison(args)
    numeric_tables = (("breast cancer", load_breast_cancer), ("wine", load_wine)) \
        if "numeric" in args.tables else ()
    for table, load in numeric_tables:
        X, y = load(return_X_y=True)
        order = np.random.default_rng(0).permutation(len(X))
        X, y = X[order], y[order]
        n_test = min(args.n_rows, len(X) // 4)
        X_train, y_train, rows = X[n_test:], y[n_test:], X[:n_test]
        for name, model in (("forest100", RandomForestClassifier(
                                100, max_depth=args.forest_depth, random_state=0)),
                            ("hgb", HistGradientBoostingClassifier(random_state=0))):
            with threadpool_limits(limits=1, user_api="openmp"):
                model.fit(X_train, y_train)
            line = {"table": table, "model": name, **compare_with_exact(
                model, X_train, rows, "CF", args.max_time, distance="mad")}
            print(line, flush=True)
            lines.append(line)
    print("\nExact search:")
    print(pd.DataFrame(lines).to_string(index=False, float_format="{:.3g}".format))
    return 0


def binned_table():
    """A second table with categories, which no test uses: ``make_classification`` (3,000
    rows, 8 columns), four columns binned into six string categories and one into three
    (``pd.cut``); 600 rows held out."""
    from sklearn.datasets import make_classification

    X, y = make_classification(3000, 8, n_informative=5, n_redundant=1, random_state=7)
    frame = pd.DataFrame(X, columns=[f"x{j}" for j in range(8)])
    for j in (0, 2, 4, 6):
        frame[f"x{j}"] = pd.cut(frame[f"x{j}"], [-np.inf, -1.5, -0.5, 0, 0.5, 1.5, np.inf],
                                labels=["vlow", "low", "midlow", "midhigh", "high",
                                        "vhigh"]).astype(str)
    frame["x7"] = pd.cut(frame["x7"], [-np.inf, -0.7, 0.7, np.inf],
                         labels=["a", "b", "c"]).astype(str)
    return frame[600:].reset_index(drop=True), y[600:], frame[:600], y[:600]


def binned_comparison(args):
    """``--tables binned``: the default against the exact search on :func:`binned_table`,
    behind the same kind of Pipeline as Adult's (``x7`` immutable, ``x1`` may only
    increase), with the boosting models of ``--exact-models``."""
    names = [name for name in exact_models(args.forest_depth)
             if name in args.exact_models and name != "forest100"]
    return table_comparison("binned", binned_table(), names, args, immutable_features=["x7"],
                            directions={"x1": "increase"})


def table_comparison(table, data, names, args, **constraints):
    """The default against the exact search (:func:`compare_with_exact`) on the rows
    ``--first-row``.. of a table's test part, for the models ``names`` of
    :func:`exact_models` behind a one-hot Pipeline; the lines printed and returned."""
    X_train, y_train, X_test, y_test = data
    categorical = [c for c in X_train.columns if not pd.api.types.is_numeric_dtype(X_train[c])]
    numeric = [c for c in X_train.columns if c not in categorical]
    rows = X_test.iloc[args.first_row:args.first_row + args.n_rows]
    makers = exact_models(args.forest_depth)
    lines = []
    for name in names:
        dense = name != "forest100"  # the boosting libraries as HistGradientBoosting
        encode = ColumnTransformer([
            ("categories", OneHotEncoder(handle_unknown="ignore", sparse_output=not dense),
             categorical), ("numbers", StandardScaler(), numeric)])
        with threadpool_limits(limits=1, user_api="openmp"):
            model = make_pipeline(encode, makers[name]()).fit(X_train, y_train)
        print(f"{table} {name}: test accuracy {model.score(X_test, y_test):.3f}", flush=True)
        for mode in args.modes:
            if mode == "PP":
                continue
            line = {"table": table, "model": name, **compare_with_exact(
                model, X_train, rows, mode, args.max_time, distance="mad", **constraints)}
            print(line, flush=True)
            lines.append(line)
    return lines


def numeric_plausibility(args):
    """``--numeric-plausibility``: the plausibility term on numeric tables, through both
    searches (see the module's docstring)."""
    from sklearn.datasets import load_breast_cancer, load_wine

    lines = []
    for table, load in (("breast cancer", load_breast_cancer), ("wine", load_wine)):
        X, y = load(return_X_y=True)
        order = np.random.default_rng(0).permutation(len(X))
        X, y = X[order], y[order]
        n_test = len(X) // 4
        X_train, y_train, rows = X[n_test:], y[n_test:], X[:n_test]
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        model.fit(X_train, y_train)
        for mode in ("CF", "PN"):
            for search in ("auto", "neighbors"):
                for weight in args.plausibility:
                    params = dict(distance="mad", search=search, plausibility=weight)
                    explainer = CounterfactualExplainer(model, **params) if mode == "CF" \
                        else CEMExplainer(model, mode=mode, **params)
                    explainer.fit(X_train)
                    start = time.perf_counter()
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
                        answers = explainer.explain(rows).explanation
                    seconds = time.perf_counter() - start
                    scored = explanation_metrics(model, rows, answers, mode=mode,
                                                 X_train=X_train)
                    kept = scored[scored["valid"]]
                    line = {"table": table, "mode": mode, "search": search,
                            "search_": explainer.search_, "plausibility": weight,
                            "valid": f"{scored['valid'].mean():.0%}", "yNN": kept["ynn"].mean(),
                            "mean MAD-L1": kept["l1"].mean(), "rows/s": len(rows) / seconds}
                    print(line, flush=True)
                    lines.append(line)
    print("\nPlausibility on numeric tables (scaled LogisticRegression):")
    print(pd.DataFrame(lines).to_string(index=False, float_format="{:.3g}".format))
    return 0


def _plain_text(frame, categorical):
    """Text columns as object dtype: pandas keeps text in Arrow arrays where pyarrow is
    installed, which DiCE's environment need not have to read the pickled frames."""
    frame = frame.astype({column: object for column in categorical})
    frame.columns = frame.columns.astype(object)
    return frame


def run_dice(python, model, X_train, y_train, rows, categorical, numeric, methods, workdir):
    spec = {"model": str(workdir / "model.joblib"),
            "train": _plain_text(X_train.assign(income=y_train), categorical),
            "outcome": "income", "continuous": numeric, "categorical": categorical,
            "rows": _plain_text(rows, categorical), "immutable": IMMUTABLE,
            "increase_only": list(DIRECTIONS),
            "methods": methods, "total_CFs": 1, "desired_class": "opposite", "seed": 0}
    joblib.dump(model, workdir / "model.joblib")
    joblib.dump(spec, workdir / "spec.joblib")
    script = Path(__file__).with_name("reference_dice.py")
    subprocess.run([python, str(script), "--input", str(workdir / "spec.joblib"), "--output",
                    str(workdir / "dice.json")], check=True)
    result = json.loads((workdir / "dice.json").read_text())
    answers = {}
    for method, outcome in result["methods"].items():
        frame = pd.DataFrame([cf if cf is not None else {} for cf in outcome["counterfactuals"]],
                             columns=rows.columns, index=rows.index)
        for column in rows.columns:  # the explained rows' dtypes, missing where none found
            if column in numeric:
                frame[column] = pd.to_numeric(frame[column])
            else:
                frame[column] = frame[column].astype(rows[column].dtype)
        answers[method] = (frame, outcome["seconds_total"])
    return answers, result["versions"].get("dice-ml")


def summary_row(model_name, method, table, seconds, n_rows, rows_per_instance):
    valid = table["valid"].to_numpy(bool)
    kept = table[valid]
    return {"model": model_name, "method": method, "inst/s": n_rows / seconds,
            "found": f"{int(table['l0'].notna().sum())}/{n_rows}",
            "valid": f"{valid.mean():.0%}", "violations": int(np.nansum(table["violations"])),
            "median L0": kept["l0"].median(), "median MAD-L1": kept["l1"].median(),
            "mean MAD-L1": kept["l1"].mean(), "yNN": kept["ynn"].mean(),
            "rare pairs": (kept["rare_pairs"] > 0).mean(),
            "redundancy": kept["redundancy"].mean(), "model rows/inst": rows_per_instance}


def plausibility_targets(per_model, weight=1.0):
    """Issue 26's plausibility targets, against DiCE random in the same run: at
    ``plausibility=1`` yNN at least DiCE's, mean MAD-L1 at most DiCE's."""
    dice = next((r for r in per_model if r["method"].endswith("random")), None)
    lines = []
    for row in per_model:
        if dice is None or not row["method"].endswith(f"p={weight:g}"):
            continue
        lines.append({"model": row["model"], "method": row["method"],
                      "yNN - DiCE's": row["yNN"] - dice["yNN"],
                      "mean MAD-L1 / DiCE's": row["mean MAD-L1"] / dice["mean MAD-L1"],
                      "met": bool(row["yNN"] >= dice["yNN"]
                                  and row["mean MAD-L1"] <= dice["mean MAD-L1"])})
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--n-rows", type=int, default=100)
    parser.add_argument("--first-row", type=int, default=0,
                        help="--exact on Adult: the rows of adult.test explained start here")
    parser.add_argument("--models", nargs="+", default=list(CLASSIFIERS),
                        choices=list(CLASSIFIERS))
    parser.add_argument("--modes", nargs="+", default=["CF", "PN", "PP"],
                        choices=["CF", "PN", "PP"])
    parser.add_argument("--dice-python", help="an interpreter with dice-ml (same scikit-learn "
                        "and pandas versions as this one)")
    parser.add_argument("--dice-methods", nargs="+", default=["random", "genetic"])
    parser.add_argument("--exact", action="store_true",
                        help="benchmark search='exact' (see the module's docstring)")
    parser.add_argument("--max-time", type=float, default=10.0)
    parser.add_argument("--tables", nargs="+", default=["adult", "numeric"],
                        choices=["adult", "numeric", "binned"])
    parser.add_argument("--forest-depth", type=lambda v: None if v == "None" else int(v),
                        default=None)
    parser.add_argument("--plausibility", nargs="+", type=float, default=[0.0],
                        help="skcem's plausibility weights (CF and PN; PP at 0 only), e.g. "
                             "0 1: each is a row, and the issue's targets are checked at 1")
    parser.add_argument("--numeric-plausibility", action="store_true",
                        help="the --plausibility weights on numeric tables (breast cancer, "
                             "wine), both searches; no Adult, no DiCE")
    parser.add_argument("--exact-models", nargs="+",
                        default=["forest100", "hgb", "xgboost", "lightgbm"],
                        choices=["forest100", "hgb", "xgboost", "lightgbm"],
                        help="--exact's models on Adult (XGBoost and LightGBM where installed)")
    args = parser.parse_args()
    if args.exact:
        return exact_benchmark(args)
    if args.numeric_plausibility:
        return numeric_plausibility(args)
    if not (args.data / "adult.data.gz").exists():
        raise SystemExit(f"UCI Adult not found in {args.data}: nothing to benchmark (pass "
                         "--data).")

    X_train, y_train, X_test, y_test = load_adult(args.data)
    categorical = [c for c in X_train.columns if not pd.api.types.is_numeric_dtype(X_train[c])]
    numeric = [c for c in X_train.columns if c not in categorical]
    rows = X_test.iloc[:args.n_rows]
    lines, targets = [], []
    for name in args.models:
        with threadpool_limits(limits=1, user_api="openmp"):  # see reference_dice.py
            model = make_model(name, categorical, numeric).fit(X_train, y_train)
        accuracy = model.score(X_test, y_test)
        print(f"{name}: test accuracy {accuracy:.3f}", flush=True)
        common = dict(X_train=X_train, immutable_features=IMMUTABLE, directions=DIRECTIONS)
        per_model = []
        labelled = args.plausibility != [0.0]
        for mode in args.modes:
            for weight in args.plausibility:
                if mode == "PP" and weight > 0:
                    continue  # a PP reaches no other class: plausibility is refused
                answers, seconds, rows_per_instance, background = run_skcem(
                    model, X_train, rows, mode, weight)
                table = explanation_metrics(model, rows, answers, mode=mode,
                                            background=background,
                                            seconds=seconds / len(rows), **common)
                method = f"skcem {mode}" + (f" p={weight:g}" if labelled else "")
                per_model.append(summary_row(name, method, table, seconds, len(rows),
                                             rows_per_instance))
        if args.dice_python:
            with tempfile.TemporaryDirectory() as workdir:
                dice, version = run_dice(args.dice_python, model, X_train, y_train, rows,
                                         categorical, numeric, args.dice_methods,
                                         Path(workdir))
            for method, (answers, seconds) in dice.items():
                table = explanation_metrics(model, rows, answers, mode="CF",
                                            seconds=seconds / len(rows), **common)
                per_model.append(summary_row(name, f"DiCE {version} {method}", table, seconds,
                                             len(rows), float("nan")))
            reference = next((r["inst/s"] for r in per_model if r["method"].endswith("random")),
                             None)
            for row in per_model:
                row["x DiCE-random"] = row["inst/s"] / reference if reference else float("nan")
        lines.extend(per_model)
        targets.extend(plausibility_targets(per_model))
        print(pd.DataFrame(per_model).to_string(index=False, float_format="{:.3g}".format),
              flush=True)
    print("\nAll models:")
    print(pd.DataFrame(lines).to_string(index=False, float_format="{:.3g}".format))
    if targets:
        print("\nplausibility=1 against DiCE random (yNN at least, mean MAD-L1 at most):")
        print(pd.DataFrame(targets).to_string(index=False, float_format="{:.3g}".format))
    return 0


if __name__ == "__main__":
    sys.exit(main())
