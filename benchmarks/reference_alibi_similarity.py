"""The reference (alibi 0.9.6 ``GradientSimilarity``) on the settings of ``bench_similarity.py``.

alibi is no dependency of skcem: run this in alibi's own environment (TensorFlow 2.14, eager),
built as for ``reference_alibi.py``:

    python -m venv /tmp/alibi && /tmp/alibi/bin/pip install "alibi[tensorflow]==0.9.6" click
    /tmp/alibi/bin/python benchmarks/reference_alibi_similarity.py --data DATA.npz \
        --weights mnist_cnn.npz --sim-fn grad_dot [--precompute-grads] [--scores-out S.npy]

``bench_similarity.py --reference-python`` writes ``DATA.npz`` (``X_train``, ``y_train`` and
``X_test``: the tutorial's MNIST rows, flattened, in [-0.5, 0.5]) and the trained CNN's weights
(``np.savez`` of ``get_weights()``), runs this script in a fresh process per ``sim_fn`` and
reads its output. The CNN is rebuilt here in tf.keras 2 with the same layers, and the weights
are loaded into it. The script times ``GradientSimilarity(...).fit(X_train, y_train)`` and
``explain(X_test)`` (targets: the model's predicted classes, the reference's default), and
prints one JSON object: the seconds of each (and the CPU seconds of both, all threads of
the process), the versions, and the scores' file. The scores
are saved in the training set's order (the reference returns them sorted by score, with
``ordered_indices``).
"""

import argparse
import json
import time

import numpy as np
import tensorflow as tf
from tensorflow.keras import layers

tf.get_logger().setLevel(40)

import alibi  # noqa: E402
from alibi.explainers import GradientSimilarity  # noqa: E402


def cnn():
    """The MNIST tutorial's CNN, as ``skcem.datasets.make_mnist_cnn`` builds it."""
    x_in = layers.Input((28, 28, 1))
    x = x_in
    for filters in (64, 32, 32):
        x = layers.Conv2D(filters, 2, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Dropout(0.3)(x)
    x = layers.Dense(256, activation="relu")(layers.Flatten()(x))
    x = layers.Dense(10, activation="softmax")(layers.Dropout(0.5)(x))
    return tf.keras.Model(x_in, x)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="npz with X_train, y_train, X_test")
    parser.add_argument("--weights", required=True, help="npz of the CNN's get_weights()")
    parser.add_argument("--sim-fn", default="grad_dot",
                        choices=["grad_dot", "grad_cos", "grad_asym_dot"])
    parser.add_argument("--precompute-grads", action="store_true")
    parser.add_argument("--scores-out", default=None,
                        help="save the scores (n_test, n_train), training set order, as .npy")
    args = parser.parse_args()

    data = np.load(args.data)
    X_train = data["X_train"].reshape(-1, 28, 28, 1).astype(np.float32)
    y_train = data["y_train"].astype(np.int64)
    X_test = data["X_test"].reshape(-1, 28, 28, 1).astype(np.float32)
    weights = np.load(args.weights)
    model = cnn()
    model.set_weights([weights[f"arr_{i}"] for i in range(len(weights.files))])

    explainer = GradientSimilarity(model, tf.keras.losses.sparse_categorical_crossentropy,
                                   sim_fn=args.sim_fn, task="classification",
                                   precompute_grads=args.precompute_grads)
    start, cpu = time.perf_counter(), time.process_time()
    explainer.fit(X_train, y_train)
    fit_seconds, fit_cpu = time.perf_counter() - start, time.process_time() - cpu
    start, cpu = time.perf_counter(), time.process_time()
    explanation = explainer.explain(X_test)
    explain_seconds, explain_cpu = time.perf_counter() - start, time.process_time() - cpu

    order = explanation.data["ordered_indices"]
    scores = np.empty_like(explanation.data["scores"])
    np.put_along_axis(scores, order, explanation.data["scores"], axis=1)
    if args.scores_out:
        np.save(args.scores_out, scores)
    print(json.dumps({"sim_fn": args.sim_fn, "precompute_grads": args.precompute_grads,
                      "n_train": len(X_train), "n_test": len(X_test),
                      "fit_seconds": fit_seconds, "explain_seconds": explain_seconds,
                      "cpu_seconds": fit_cpu + explain_cpu,
                      "alibi": alibi.__version__, "tensorflow": tf.__version__,
                      "scores": args.scores_out}), flush=True)


if __name__ == "__main__":
    main()
