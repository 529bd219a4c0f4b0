"""Command line: ``python -m skcem`` (also installed as ``skcem``).

- ``skcem demo``: explain an MLP on scikit-learn's digits.
- ``skcem explain --model MODEL --data DATA.csv --mode PN --out OUT.json``: PN/PP of a saved
  model for each row of a CSV file.
- ``skcem similarity --model MODEL --train TRAIN.csv --target COLUMN --data DATA.csv -k 5
  --out OUT.csv``: the most similar training rows of each row.

Exit codes: 0 on success, 2 for bad usage or input, with a one-line message on stderr.
"""

import argparse
import ast
import csv
import json
import sys
import warnings
from pathlib import Path

import numpy as np


class InputError(Exception):
    """Bad input from the command line: reported in one line, exit code 2."""


def _read_csv(path, option):
    path = Path(path)
    if not path.exists():
        raise InputError(f"{option}: no such file: {path}")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if len(rows) < 2:
        raise InputError(f"{option}: {path} needs a header row and at least one data row")
    header, body = rows[0], rows[1:]
    try:
        values = np.array([[float(v) for v in row] for row in body])
    except ValueError as exc:
        raise InputError(f"{option}: {path} must hold numbers only ({exc})") from exc
    if values.shape[1] != len(header):
        raise InputError(f"{option}: {path} has rows of another length than its header")
    return header, values


def _load_model(path):
    path = Path(path)
    if not path.exists():
        raise InputError(f"--model: no such file: {path}")
    if path.suffix == ".keras":
        try:
            import keras
        except ImportError as exc:
            raise InputError("--model: a .keras model needs TensorFlow: "
                             "pip install skcem[tf]") from exc
        return keras.models.load_model(path)
    import joblib

    try:
        return joblib.load(path)
    except Exception as exc:  # any unpickling failure is bad input here
        raise InputError(f"--model: cannot load {path}: {exc}") from exc


def _parse_params(items):
    params = {}
    for item in items or []:
        if "=" not in item:
            raise InputError(f"--params: expected key=value, got {item!r}")
        key, value = item.split("=", 1)
        try:
            params[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            params[key] = value
    return params


def _check_columns(model, header, option):
    expected = getattr(model, "feature_names_in_", None)
    if expected is not None and list(expected) != header:
        raise InputError(f"{option}: columns {header} do not match the model's features "
                         f"{list(expected)}")
    n_features = getattr(model, "n_features_in_", None)
    if n_features is not None and n_features != len(header):
        raise InputError(f"{option}: {len(header)} columns, but the model expects "
                         f"{n_features} features")


def _write(rows, out):
    out = Path(out)
    if out.suffix == ".json":
        out.write_text(json.dumps(rows, indent=2))
    elif out.suffix == ".csv":
        with open(out, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            for row in rows:
                writer.writerow({k: json.dumps(v) if isinstance(v, (dict, list)) else v
                                 for k, v in row.items()})
    else:
        raise InputError(f"--out: use a .json or .csv file, not {out.name}")


def _frame(header, values):
    try:
        import pandas as pd
    except ImportError:
        return values
    return pd.DataFrame(values, columns=header)


def _explain(args):
    from . import CEMExplainer

    model = _load_model(args.model)
    if not (hasattr(model, "predict_proba") or callable(model)):
        raise InputError("--model: the model has no predict_proba")
    header, data = _read_csv(args.data, "--data")
    train_header, train = _read_csv(args.train, "--train") if args.train else (header, data)
    _check_columns(model, header, "--data")
    if train_header != header:
        raise InputError("--train: its columns differ from --data's")
    params = _parse_params(args.params)
    try:
        cem = CEMExplainer(model, mode=args.mode, verbose=0 if args.quiet else 1, **params)
        cem.fit(_frame(header, train))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exp = cem.explain(_frame(header, data))
    except (TypeError, ValueError) as exc:
        raise InputError(str(exc).splitlines()[0]) from exc
    rows = []
    for i, changed in enumerate(exp.changes()):
        after = exp.explanation_pred[i]
        rows.append({"row": i, "found": bool(exp.found[i]), "class": _plain(exp.X_pred[i]),
                     f"{args.mode}_class": None if after is None else _plain(after),
                     "changed": changed})
    _write(rows, args.out)
    if not args.quiet:
        print(f"{int(exp.found.sum())} of {len(exp)} {args.mode}s found; written to {args.out}",
              file=sys.stderr)


def _similarity(args):
    from . import GradientSimilarityExplainer

    model = _load_model(args.model)
    header, train = _read_csv(args.train, "--train")
    if args.target not in header:
        raise InputError(f"--target: no column {args.target!r} in {args.train}")
    column = header.index(args.target)
    features = [h for h in header if h != args.target]
    X_train, y_train = np.delete(train, column, axis=1), train[:, column]
    data_header, data = _read_csv(args.data, "--data")
    if args.target in data_header:
        data = np.delete(data, data_header.index(args.target), axis=1)
        data_header = [h for h in data_header if h != args.target]
    if data_header != features:
        raise InputError("--data: its columns differ from --train's features")
    _check_columns(model, features, "--train")
    if hasattr(model, "classes_"):
        y_train = y_train.astype(np.asarray(model.classes_).dtype)
    try:
        explainer = GradientSimilarityExplainer(model, sim_fn=args.sim_fn,
                                                task=args.task).fit(X_train, y_train)
        scores, indices = explainer.kneighbors(data, n_neighbors=args.k)
    except (TypeError, ValueError) as exc:
        raise InputError(str(exc).splitlines()[0]) from exc
    rows = [{"row": i, "neighbors": indices[i].tolist(),
             "scores": [float(s) for s in scores[i]]} for i in range(len(data))]
    _write(rows, args.out)


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def build_parser():
    parser = argparse.ArgumentParser(prog="skcem", description="Contrastive explanations.")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="explain an MLP on scikit-learn's digits")
    demo.add_argument("-n", "--n-instances", type=int, default=5)
    demo.add_argument("--figure", default="skcem_demo.png", help="PNG file to write")

    explain = commands.add_parser("explain", help="PN/PP of a saved model for rows of a CSV")
    explain.add_argument("--model", required=True, help="joblib/pickle file or .keras model")
    explain.add_argument("--data", required=True, help="CSV with a header: rows to explain")
    explain.add_argument("--train", help="CSV for no_info_val and feature range (default: "
                                         "--data)")
    explain.add_argument("--mode", choices=["PN", "PP"], default="PN")
    explain.add_argument("--params", nargs="*", metavar="KEY=VALUE",
                         help="CEMExplainer parameters, e.g. beta=0.2 max_iterations=500")
    explain.add_argument("--out", required=True, help="output .json or .csv")
    explain.add_argument("--quiet", action="store_true", help="no progress bar")

    similarity = commands.add_parser("similarity", help="most similar training rows")
    similarity.add_argument("--model", required=True)
    similarity.add_argument("--train", required=True, help="CSV of training rows and target")
    similarity.add_argument("--target", required=True, help="the target column of --train")
    similarity.add_argument("--data", required=True, help="CSV of rows to explain")
    similarity.add_argument("-k", type=int, default=5, help="neighbours per row")
    similarity.add_argument("--sim-fn", default="grad_dot",
                            choices=["grad_dot", "grad_cos", "grad_asym_dot"])
    similarity.add_argument("--task", default="classification",
                            choices=["classification", "regression"])
    similarity.add_argument("--out", required=True)
    similarity.add_argument("--quiet", action="store_true")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            from ._demo import run_demo

            run_demo(n_instances=args.n_instances, figure=args.figure)
        elif args.command == "explain":
            _explain(args)
        else:
            _similarity(args)
    except InputError as exc:
        print(f"skcem {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
