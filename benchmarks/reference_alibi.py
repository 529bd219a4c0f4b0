"""The reference (alibi 0.9.6 ``CEM``, black-box) on the settings of ``bench_blackbox.py``.

alibi needs TensorFlow's v1 graph mode, so run this in its own environment:

    python -m venv /tmp/alibi && /tmp/alibi/bin/pip install "alibi[tensorflow]==0.9.6" click
    # click: alibi imports spacy, whose command line needs it and no longer pulls it in
    /tmp/alibi/bin/python benchmarks/reference_alibi.py --n-instances 5 [--json]

It explains the first instances of the same test split as ``bench_blackbox.py``, one at a time
(the reference's only mode), with its defaults (max_iterations=1000, c_steps=10), and prints
the same columns: instances/s, predict_proba rows per instance, found rate, median L1 and L0.
``--json`` prints one JSON object per case instead, with each instance's found flag and L1
(``bench_blackbox.py --reference-python`` reads these).
"""

import argparse
import json
import time

import numpy as np
import tensorflow as tf

tf.get_logger().setLevel(40)
tf.compat.v1.disable_v2_behavior()

from alibi.explainers import CEM  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_digits, load_iris  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402


def settings():
    for name, load in (("iris / LogisticRegression", load_iris),
                       ("cancer / LogisticRegression", load_breast_cancer)):
        X, y = load(return_X_y=True)
        X = StandardScaler().fit_transform(X)
        X_tr, X_te, y_tr, _ = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
        yield (name, LogisticRegression(max_iter=1000).fit(X_tr, y_tr), X_tr, X_te, None,
               (X_tr.min(0), X_tr.max(0)))
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    X_tr, X_te, y_tr, _ = train_test_split(X, y, test_size=0.25, random_state=0)
    yield ("digits / MLPClassifier(32,)",
           MLPClassifier((32,), max_iter=500, random_state=0).fit(X_tr, y_tr),
           X_tr, X_te, 0.0, (0.0, 1.0))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-instances", type=int, default=5)
    parser.add_argument("--only", default=None, help="run only settings whose name has this")
    parser.add_argument("--modes", nargs="+", default=["PN", "PP"])
    parser.add_argument("--clips", type=float, nargs="+", default=[100.0, 1000.0])
    parser.add_argument("--json", action="store_true", help="one JSON object per case")
    args = parser.parse_args()
    for name, model, X_tr, X_te, no_info, feature_range in settings():
        if args.only and args.only not in name:
            continue
        rows = [0]

        def predict_fn(Z):
            rows[0] += len(Z)
            return model.predict_proba(Z)

        for mode in args.modes:
            for clip in args.clips:
                rows[0] = 0
                cem = CEM(predict_fn, mode, (1, X_tr.shape[1]), feature_range=feature_range,
                          clip=(-clip, clip), no_info_val=no_info)
                if no_info is None:
                    cem.fit(X_tr, no_info_type="median")
                found, l1, l0, l1_all = [], [], [], []
                start = time.perf_counter()
                for x in X_te[:args.n_instances]:
                    x0 = x[None]
                    exp = cem.explain(x0)
                    result = exp.data[mode]
                    found.append(result is not None)
                    if result is not None:
                        perturbation = (result - x0) if mode == "PN" else result
                        l1.append(np.abs(perturbation).sum())
                        l0.append((np.abs(perturbation) > 1e-8).sum())
                    l1_all.append(float(l1[-1]) if result is not None else None)
                seconds = time.perf_counter() - start
                n = args.n_instances
                if args.json:
                    print(json.dumps({"setting": name, "mode": mode, "clip": clip,
                                      "n_instances": n, "seconds": seconds,
                                      "rows_per_instance": rows[0] / n, "found": found,
                                      "l1": l1_all}), flush=True)
                    continue
                print(f"{name:<28} {mode:<4} {clip:>6.0f} {n / seconds:>8.4f} "
                      f"{rows[0] / n:>10.0f} {np.mean(found):>6.0%} "
                      f"{np.median(l1) if l1 else np.nan:>7.3f} "
                      f"{np.median(l0) if l0 else np.nan:>6.1f}", flush=True)


if __name__ == "__main__":
    main()
