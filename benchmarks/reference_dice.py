"""Peer runner: counterfactual explanations with DiCE (``dice-ml``) for a benchmark.

Run inside the DiCE virtual environment, e.g.::

    /tmp/dice/bin/python benchmarks/reference_dice.py --input spec.joblib --output out.json

The DiCE environment (not a dependency of skcem)::

    python3 -m venv /tmp/dice
    /tmp/dice/bin/pip install dice-ml==0.12 scikit-learn==<same> pandas==<same>

with the scikit-learn and pandas versions of the environment that pickled the model.

The input is a joblib file holding a dict with the keys

``model``
    a fitted scikit-learn Pipeline that accepts the raw DataFrame (string categoricals), or
    the path of a joblib file holding it (keeps the rest of the spec loadable when the model
    cannot be unpickled here). Optional when ``model_spec`` is given.
``model_spec``
    optional ``{"classifier": name, "params": {...}}``; used to refit the standard pipeline
    (OneHotEncoder on categoricals, StandardScaler on numerics, classifier) on ``train`` when
    ``model`` is missing or cannot be unpickled here. ``name`` is one of
    LogisticRegression, MLPClassifier, RandomForestClassifier, HistGradientBoostingClassifier.
``train``
    training DataFrame: the raw features plus the 0/1 label column named by ``outcome``.
``outcome``, ``continuous``, ``categorical``
    label column name, numeric feature names, categorical feature names.
``rows``
    DataFrame of the rows to explain (features only).
``immutable``
    features that must not change (excluded from DiCE's ``features_to_vary``).
``increase_only``
    numeric features that may only increase; passed to DiCE as a per-row
    ``permitted_range`` ``{col: [row value, max(train[col])]}``.
``methods``, ``total_CFs``, ``desired_class``, ``seed``
    DiCE methods to run (``"random"``, ``"genetic"``, ``"kdtree"``), counterfactuals asked
    per row, DiCE's ``desired_class`` and the random seed.

Optional keys: ``method_kwargs`` (``{method: {...}}`` extra keyword arguments for
``generate_counterfactuals``), ``row_timeout`` (seconds, overrides ``--row-timeout``) and
``all_counterfactuals`` (true: each method's output also holds ``"all_counterfactuals"``,
per row the list of every counterfactual DiCE returned, in its order, empty where none).

CLI: ``--input PATH --output PATH [--row-timeout 120] [--threads 1]``. ``--threads`` limits
BLAS/OpenMP threads with threadpoolctl (1 by default: on a small, shared machine OpenMP
spin-waiting made HistGradientBoosting predictions ~30x slower with 2 threads).

The output JSON is::

    {"versions": {"dice-ml": ..., "scikit-learn": ..., "pandas": ..., "numpy": ..., ...},
     "model_source": "pickle" | "refit",
     "model_load_error": str | null,
     "n_rows": int,
     "threads": int,                                 # --threads (threadpoolctl limit)
     "settings": {"total_CFs", "desired_class", "seed", "features_to_vary",
                  "increase_only", "row_timeout", "method_kwargs"},
     "methods": {method: {"seconds_setup": float,
                          "seconds_total": float,            # sum of the per-row times
                          "seconds_per_row": [float, ...],
                          "counterfactuals": [{col: value, ...} | null, ...],
                          "errors": [str | null, ...],
                          "n_found": int}}}

Each counterfactual is the first of the (at most ``total_CFs``) returned by DiCE, in the raw
feature space (category strings, numbers) with exactly the columns of ``rows``. The time of a
row covers only the ``generate_counterfactuals`` call (one query row per call, so that the
increase-only range can be set per row); a row that raises (DiCE raises when it finds
nothing) or exceeds the row timeout gets ``null`` and its error text; building the ``dice_ml.Data``,
``dice_ml.Model`` and ``dice_ml.Dice`` objects is timed once per method as ``seconds_setup``.
"""
import argparse
import contextlib
import importlib.metadata
import io
import json
import math
import os
import platform
import random
import signal
import sys
import time
import warnings

# DiCE wraps the query loop in an unconditional tqdm progress bar; switch tqdm off before import.
os.environ.setdefault("TQDM_DISABLE", "1")

import joblib  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import dice_ml  # noqa: E402

CLASSIFIERS = (
    "LogisticRegression",
    "MLPClassifier",
    "RandomForestClassifier",
    "HistGradientBoostingClassifier",
)


class RowTimeout(Exception):
    """Raised (from a SIGALRM handler) when one row takes longer than the allowed time."""


def _on_alarm(signum, frame):
    raise RowTimeout("timed out")


def package_versions():
    """Versions of the packages that matter for reproducing the results."""
    out = {"python": platform.python_version()}
    for dist in ("dice-ml", "scikit-learn", "pandas", "numpy", "scipy", "joblib", "raiutils"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out


def build_pipeline(model_spec, categorical, continuous):
    """The benchmark's standard pipeline, with the classifier named in ``model_spec``."""
    from sklearn import ensemble, linear_model, neural_network
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    name = model_spec["classifier"]
    if name not in CLASSIFIERS:
        raise ValueError(f"unknown classifier {name!r}; expected one of {CLASSIFIERS}")
    module = {
        "LogisticRegression": linear_model,
        "MLPClassifier": neural_network,
        "RandomForestClassifier": ensemble,
        "HistGradientBoostingClassifier": ensemble,
    }[name]
    params = dict(model_spec.get("params") or {})
    if "hidden_layer_sizes" in params:  # JSON turns tuples into lists
        params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    classifier = getattr(module, name)(**params)
    # HistGradientBoostingClassifier rejects sparse input, so it gets a dense one-hot encoding.
    dense = name == "HistGradientBoostingClassifier"
    pre = ColumnTransformer([
        ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=not dense),
         list(categorical)),
        ("num", StandardScaler(), list(continuous)),
    ])
    return Pipeline([("pre", pre), ("clf", classifier)])


def load_spec(path):
    """Load the input dict.

    If the file cannot be unpickled at all (typically because the embedded model needs other
    library versions), exit with a message: put the model in its own joblib file instead (key
    ``model`` holding its path) so that a failed model load can fall back to ``model_spec``.
    """
    try:
        return joblib.load(path)
    except Exception as exc:  # noqa: BLE001 - report any unpickling failure clearly
        raise SystemExit(
            f"could not load {path} ({type(exc).__name__}: {exc}); store the model in its own "
            "joblib file ('model': path) or omit it and give 'model_spec'") from exc


def obtain_model(spec, train_x, train_y, categorical, continuous):
    """Return (pipeline, source, error): the pickled model if usable, else a refit one."""
    model = spec.get("model")
    error = None
    if isinstance(model, (str, os.PathLike)):  # model stored in its own joblib file
        try:
            model = joblib.load(model)
        except Exception as exc:  # noqa: BLE001 - any unpickling failure means "refit"
            error = f"{type(exc).__name__}: {exc}"
            model = None
    if model is not None:
        try:
            model.predict_proba(train_x.iloc[:5])
            return model, "pickle", None
        except Exception as exc:  # noqa: BLE001 - an unusable model also means "refit"
            error = f"{type(exc).__name__}: {exc}"
    if spec.get("model_spec") is None:
        raise SystemExit(f"the model cannot be used ({error}) and no 'model_spec' was given")
    pipeline = build_pipeline(spec["model_spec"], categorical, continuous)
    pipeline.fit(train_x, train_y)
    return pipeline, "refit", error


def normalise_frame(df, categorical, continuous):
    """DiCE needs numpy int/float dtypes for numeric columns and strings for categorical ones.

    Integral numeric columns become int64 (DiCE then treats them as integers and samples whole
    numbers), other numeric columns float64; nullable/extension dtypes are not accepted by DiCE.
    """
    df = df.copy()
    for col in continuous:
        values = pd.to_numeric(df[col]).to_numpy(dtype=np.float64)
        if np.all(np.isfinite(values)) and np.all(values == np.round(values)):
            df[col] = values.astype(np.int64)
        else:
            df[col] = values
    for col in categorical:
        df[col] = df[col].astype(str).astype(object)
    return df


def to_python(value):
    """Convert a numpy/pandas scalar to a JSON-serialisable Python value."""
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.bool_):
        return bool(value)
    return value if isinstance(value, (int, str, bool)) or value is None else str(value)


def first_counterfactual(explanations, columns, continuous):
    """The first counterfactual of a one-row explanation as a raw-space dict, or None."""
    example = explanations.cf_examples_list[0]
    frame = example.final_cfs_df_sparse
    if frame is None or len(frame) == 0:
        frame = example.final_cfs_df
    if frame is None or len(frame) == 0:
        return None
    row = frame.iloc[0]
    out = {}
    for col in columns:
        value = row[col]
        if col in continuous:
            value = float(value)
            out[col] = int(value) if value == int(value) else value
        else:
            out[col] = str(value)
    return {col: to_python(val) for col, val in out.items()}


def every_counterfactual(explanations, columns, continuous):
    """All counterfactuals of a one-row explanation as raw-space dicts, in DiCE's order."""
    example = explanations.cf_examples_list[0]
    frame = example.final_cfs_df_sparse
    if frame is None or len(frame) == 0:
        frame = example.final_cfs_df
    if frame is None or len(frame) == 0:
        return []
    out = []
    for _, row in frame.iterrows():
        answer = {}
        for col in columns:
            value = row[col]
            if col in continuous:
                value = float(value)
                answer[col] = int(value) if value == int(value) else value
            else:
                answer[col] = str(value)
        out.append({col: to_python(val) for col, val in answer.items()})
    return out


def explain(spec, row_timeout):
    """Run every requested DiCE method on every row and collect the results."""
    outcome = spec["outcome"]
    continuous = list(spec["continuous"])
    categorical = list(spec["categorical"])
    rows = spec["rows"]
    columns = list(rows.columns)
    immutable = list(spec.get("immutable") or [])
    increase_only = list(spec.get("increase_only") or [])
    methods = list(spec.get("methods") or ["random", "genetic"])
    total_cfs = int(spec.get("total_CFs", 1))
    desired_class = spec.get("desired_class", "opposite")
    seed = int(spec.get("seed", 0))
    method_kwargs = spec.get("method_kwargs") or {}
    row_timeout = float(spec.get("row_timeout", row_timeout))
    keep_all = bool(spec.get("all_counterfactuals", False))

    feature_cols = continuous + categorical
    if sorted(feature_cols) != sorted(columns):
        raise SystemExit("'continuous' + 'categorical' must list exactly the columns of 'rows'")
    train = spec["train"]
    train_x = normalise_frame(train[columns], categorical, continuous)
    train_y = np.asarray(train[outcome]).astype(int)
    rows = normalise_frame(rows, categorical, continuous)

    model, source, load_error = obtain_model(spec, train_x, train_y, categorical, continuous)

    train_df = train_x.copy()
    train_df[outcome] = train_y
    features_to_vary = [c for c in columns if c not in immutable]
    train_max = {c: train_x[c].max() for c in increase_only}

    result = {
        "versions": package_versions(),
        "model_source": source,
        "model_load_error": load_error,
        "n_rows": len(rows),
        "settings": {
            "total_CFs": total_cfs, "desired_class": desired_class, "seed": seed,
            "features_to_vary": features_to_vary, "increase_only": increase_only,
            "row_timeout": row_timeout, "method_kwargs": method_kwargs,
        },
        "methods": {},
    }
    use_alarm = row_timeout > 0 and hasattr(signal, "SIGALRM")
    if use_alarm:
        signal.signal(signal.SIGALRM, _on_alarm)

    for method in methods:
        start = time.perf_counter()
        data = dice_ml.Data(dataframe=train_df, continuous_features=continuous,
                            outcome_name=outcome)
        dice_model = dice_ml.Model(model=model, backend="sklearn")
        explainer = dice_ml.Dice(data, dice_model, method=method)
        seconds_setup = time.perf_counter() - start

        per_row, cfs, errors, all_cfs = [], [], [], []
        for i in range(len(rows)):
            query = rows.iloc[[i]].reset_index(drop=True)
            permitted = {}
            for col in increase_only:
                low = query[col].iat[0]
                permitted[col] = [low, max(low, train_max[col])]
            kwargs = {
                "total_CFs": total_cfs,
                "desired_class": desired_class,
                "features_to_vary": features_to_vary,
                "permitted_range": permitted or None,
                "verbose": False,
            }
            if method == "random":
                kwargs["random_seed"] = seed
            kwargs.update(method_kwargs.get(method, {}))
            # The genetic and kd-tree methods take no seed: seed the global generators they use.
            random.seed(seed)
            np.random.seed(seed)
            cf, err = None, None
            sink = io.StringIO()  # DiCE prints "No counterfactuals found ..." to stdout
            t0 = time.perf_counter()
            try:
                if use_alarm:
                    signal.setitimer(signal.ITIMER_REAL, row_timeout)
                with contextlib.redirect_stdout(sink), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    explanations = explainer.generate_counterfactuals(query, **kwargs)
                elapsed = time.perf_counter() - t0
                cf = first_counterfactual(explanations, columns, continuous)
                if keep_all:
                    all_cfs.append(every_counterfactual(explanations, columns, continuous))
                if cf is None:
                    err = "no counterfactual returned"
            except RowTimeout:
                elapsed = time.perf_counter() - t0
                err = f"RowTimeout: no result within {row_timeout:g} s"
            except Exception as exc:  # noqa: BLE001 - DiCE raises when nothing is found
                elapsed = time.perf_counter() - t0
                err = f"{type(exc).__name__}: {exc}"
            finally:
                if use_alarm:
                    signal.setitimer(signal.ITIMER_REAL, 0)
            if keep_all and len(all_cfs) == len(per_row):  # nothing was returned
                all_cfs.append([])
            per_row.append(elapsed)
            cfs.append(cf)
            errors.append(err)
        result["methods"][method] = {
            "seconds_setup": seconds_setup,
            "seconds_total": float(sum(per_row)),
            "seconds_per_row": per_row,
            "counterfactuals": cfs,
            "errors": errors,
            "n_found": sum(cf is not None for cf in cfs),
        }
        if keep_all:
            result["methods"][method]["all_counterfactuals"] = all_cfs
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True, help="joblib file with the spec dict")
    parser.add_argument("--output", required=True, help="JSON file to write")
    parser.add_argument("--row-timeout", type=float, default=120.0,
                        help="seconds allowed per row and method (0: no limit); default 120")
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS/OpenMP threads (threadpoolctl limit; 0: leave as is); "
                             "default 1")
    args = parser.parse_args(argv)

    spec = load_spec(args.input)
    limits = args.threads if args.threads > 0 else None
    with threadpool_limits(limits=limits):
        result = explain(spec, args.row_timeout)
    result["threads"] = args.threads
    with open(args.output, "w") as fh:
        json.dump(result, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
