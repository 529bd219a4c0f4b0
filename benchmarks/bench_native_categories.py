"""Counterfactuals of boosting models that split their own categorical columns, against the
best change of a single numeric feature.

HistGradientBoosting (``categorical_features="from_dtype"``), LightGBM (pandas ``category``
columns) and XGBoost (``enable_categorical``) take a DataFrame's category columns as they are;
the exact search cannot follow their categorical splits, so ``search="auto"`` runs the
gradient-free search, polished on the split points it knows. For each model this script
explains ``--n-rows`` held-out rows of a census-like table it builds (numeric, integer and
category columns), with ``distance="mad"``, and compares each answer's MAD-L1 with the best
answer that changes one numeric feature alone, found by asking the model about every value
of a fine grid (the training values and the midpoints between them; every whole number of
an integer column). It prints how many answers are more than 5% farther than that single
change, the median ratio, and seconds per row; with ``--before-repo PATH`` the same for
another checkout of skcem (``git worktree add PATH COMMIT``), run in a subprocess on the
same rows.

    python benchmarks/bench_native_categories.py [--n-rows 40] [--models hgb lightgbm xgboost]
        [--before-repo PATH]
"""

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from _checkout import call_in_checkout

N_TRAIN = 1200


def make_table(n=1500, seed=0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "age": rng.integers(18, 80, n),
        "hours": rng.integers(1, 99, n),
        "income": rng.lognormal(10, 0.5, n).round(2),
        "edu": pd.Categorical(rng.choice(["none", "hs", "college", "bachelor", "phd"], n)),
        "occ": pd.Categorical(rng.choice([f"occ{k:02d}" for k in range(12)], n)),
    })
    score = (frame.age / 60 + frame.income / 40000 + frame.hours / 80
             + frame.edu.isin(["bachelor", "phd"]) - 0.5 * frame.occ.isin(["occ03", "occ07"])
             + rng.normal(0, 0.3, n))
    return frame, (score > score.median()).astype(int).to_numpy()


def fitted(name, X, y):
    if name == "hgb":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(categorical_features="from_dtype", max_iter=60,
                                              random_state=0).fit(X, y)
    if name == "lightgbm":
        from lightgbm import LGBMClassifier

        return LGBMClassifier(n_estimators=60, verbose=-1).fit(X, y)
    from xgboost import XGBClassifier

    return XGBClassifier(n_estimators=60, max_depth=4, enable_categorical=True,
                         tree_method="hist").fit(X, y)


def explain_here(name, n_rows):
    """skcem's default answers: (MAD-L1 distances, found, seconds per row)."""
    from skcem import CounterfactualExplainer

    X, y = make_table()
    model = fitted(name, X.iloc[:N_TRAIN], y[:N_TRAIN])
    rows = X.iloc[N_TRAIN:N_TRAIN + n_rows]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        explainer = CounterfactualExplainer(model, distance="mad").fit(X.iloc[:N_TRAIN])
        start = time.perf_counter()
        exp = explainer.explain(rows)
        seconds = (time.perf_counter() - start) / n_rows
    found = np.asarray(exp.found)
    assert (model.predict(exp.explanation[found]) != model.predict(rows[found])).all()
    return np.asarray(exp.distance, float), found, seconds, np.asarray(explainer.mad_, float)


def explain_in_checkout(repo, name, n_rows):
    """:func:`explain_here` in a subprocess that imports skcem from the checkout ``repo``."""
    distance, found, seconds = call_in_checkout(repo, "bench_native_categories",
                                                "explained_as_json", name, n_rows)
    return np.asarray(distance, float), np.asarray(found, bool), seconds


def explained_as_json(name, n_rows):
    distance, found, seconds, _ = explain_here(name, n_rows)
    return distance.tolist(), found.tolist(), seconds


def best_single_changes(name, n_rows, mad):
    """Per row, the smallest MAD-L1 of a change of one numeric feature that the model puts
    in another class, over a fine grid of values (inf where none)."""
    X, y = make_table()
    model = fitted(name, X.iloc[:N_TRAIN], y[:N_TRAIN])
    rows = X.iloc[N_TRAIN:N_TRAIN + n_rows]
    own = model.predict(rows)
    best = np.full(n_rows, np.inf)
    for j, column in enumerate(X.columns):
        if isinstance(X[column].dtype, pd.CategoricalDtype):
            continue
        values = np.unique(X[column].iloc[:N_TRAIN])
        grid = np.arange(values[0], values[-1] + 1) if X[column].dtype.kind in "iu" else \
            np.unique(np.r_[values, (values[1:] + values[:-1]) / 2])
        for i in range(n_rows):
            candidates = pd.concat([rows.iloc[[i]]] * len(grid), ignore_index=True)
            candidates[column] = grid.astype(X[column].dtype)
            flips = model.predict(candidates) != own[i]
            if flips.any():
                distance = np.min(np.abs(grid[flips] - rows[column].iloc[i])) / mad[j]
                best[i] = min(best[i], distance)
    return best


def summary(distance, found, best):
    compared = found & np.isfinite(best) & (best > 0)
    ratio = distance[compared] / best[compared]
    return int(np.sum(ratio > 1.05)), int(compared.sum()), float(np.median(ratio))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-rows", type=int, default=40)
    parser.add_argument("--models", nargs="+", default=["hgb", "lightgbm", "xgboost"],
                        choices=["hgb", "lightgbm", "xgboost"])
    parser.add_argument("--before-repo", type=Path, default=None)
    args = parser.parse_args()
    print(f"{args.n_rows} held-out rows of a {N_TRAIN}-row census-like table; MAD-L1; "
          "'farther': over 5% farther than the best single numeric change")
    header = f"{'model':>9} {'farther':>8} {'median ratio':>13} {'s/row':>7}"
    if args.before_repo:
        header += f" {'before farther':>15} {'before median':>14} {'before s/row':>13}"
    print(header)
    for name in args.models:
        distance, found, seconds, mad = explain_here(name, args.n_rows)
        best = best_single_changes(name, args.n_rows, mad)
        farther, compared, median = summary(distance, found, best)
        line = f"{name:>9} {f'{farther}/{compared}':>8} {median:>13.3f} {seconds:>7.4f}"
        if args.before_repo:
            before, before_found, before_seconds = explain_in_checkout(args.before_repo, name,
                                                                       args.n_rows)
            farther, compared, median = summary(before, before_found, best)
            line += (f" {f'{farther}/{compared}':>15} {median:>14.3f} "
                     f"{before_seconds:>13.4f}")
        print(line, flush=True)


if __name__ == "__main__":
    main()
