"""The reference (alibi 0.9.6 ``CEM`` on TensorFlow 1 graphs) on the MNIST tutorial.

Uses the same trained weights as ``bench_keras_mnist.py`` (exported there with
``--export-weights DIR``), rebuilt in tf.keras 2, and the tutorial's settings; explains the
same first instances one at a time and prints the same columns. Run in alibi's environment:

    /tmp/alibi/bin/python benchmarks/reference_alibi_mnist.py --weights DIR --mnist DIR

``--json`` prints one JSON object per mode instead, with each instance's found flag, L1 and
AE error (``bench_keras_mnist.py --reference-python`` reads it).
"""

import argparse
import gzip
import json
import os
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

tf.get_logger().setLevel(40)
tf.compat.v1.disable_v2_behavior()

from alibi.explainers import CEM  # noqa: E402
from tensorflow.keras import layers  # noqa: E402


def load_images(directory):
    with gzip.open(Path(directory) / "t10k-images-idx3-ubyte.gz", "rb") as f:
        data = f.read()
    return np.frombuffer(data, np.uint8, offset=16).reshape(-1, 28, 28, 1) / 255.0 - 0.5


def cnn():
    x_in = layers.Input((28, 28, 1))
    x = x_in
    for filters in (64, 32, 32):
        x = layers.Conv2D(filters, 2, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Dropout(0.3)(x)
    x = layers.Dense(256, activation="relu")(layers.Flatten()(x))
    x = layers.Dense(10, activation="softmax")(layers.Dropout(0.5)(x))
    return tf.keras.Model(x_in, x)


def autoencoder():
    x_in = layers.Input((28, 28, 1))
    x = layers.Conv2D(16, 3, activation="relu", padding="same")(x_in)
    x = layers.Conv2D(16, 3, activation="relu", padding="same")(x)
    x = layers.MaxPooling2D(2, padding="same")(x)
    x = layers.Conv2D(1, 3, activation=None, padding="same")(x)
    x = layers.Conv2D(16, 3, activation="relu", padding="same")(x)
    x = layers.UpSampling2D(2)(x)
    x = layers.Conv2D(16, 3, activation="relu", padding="same")(x)
    return tf.keras.Model(x_in, layers.Conv2D(1, 3, activation=None, padding="same")(x))


def with_weights(model, path):
    weights = np.load(path)
    model.set_weights([weights[f"arr_{i}"] for i in range(len(weights.files))])
    return model


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--weights", required=True)
    parser.add_argument("--mnist", default=os.environ.get("SKCEM_MNIST_DIR"))
    parser.add_argument("--n-instances", type=int, default=5)
    parser.add_argument("--start", type=int, default=0, help="first row to explain")
    parser.add_argument("--modes", default="PN,PP")
    parser.add_argument("--json", action="store_true", help="one JSON object per mode")
    args = parser.parse_args()
    X = load_images(args.mnist).astype(np.float32)
    classifier = with_weights(cnn(), Path(args.weights) / "mnist_cnn.npz")
    ae = with_weights(autoencoder(), Path(args.weights) / "mnist_ae.npz")
    for mode in args.modes.split(","):
        cem = CEM(classifier, mode, (1, 28, 28, 1), kappa=0.0, beta=0.1,
                  feature_range=(-0.5, 0.5), gamma=100, ae_model=ae, max_iterations=1000,
                  c_init=1.0, c_steps=10, learning_rate_init=1e-2, clip=(-1000.0, 1000.0),
                  no_info_val=-1.0)
        found, l1, l0, ae_err = [], [], [], []
        start = time.perf_counter()
        for i in range(args.start, args.start + args.n_instances):
            x0 = X[i:i + 1]
            result = cem.explain(x0).data[mode]
            found.append(result is not None)
            if result is not None:
                # the perturbation: what a PN adds, what a PP keeps (x0 - a)
                perturbation = result - x0 if mode == "PN" else result
                l1.append(float(np.abs(perturbation).sum()))
                l0.append(int((np.abs(perturbation) > 1e-8).sum()))
                ae_err.append(float(np.sum((ae.predict(result) - result) ** 2)))
        seconds = time.perf_counter() - start
        if args.json:
            print(json.dumps({"mode": mode, "start": args.start, "n_instances": args.n_instances,
                              "seconds": seconds, "found": found, "l1": l1, "l0": l0,
                              "ae_error": ae_err}), flush=True)
            continue
        print(f"reference {mode}: {args.n_instances / seconds:.4f} inst/s "
              f"({seconds / args.n_instances:.1f} s/instance), found {np.mean(found):.0%}, "
              f"median L1 {np.median(l1) if l1 else np.nan:.2f}, "
              f"median L0 {np.median(l0) if l0 else np.nan:.0f}, "
              f"median AE err {np.median(ae_err) if ae_err else np.nan:.3f}", flush=True)
        print(f"reference {mode} L1 per instance: {np.round(l1, 3).tolist()}", flush=True)


if __name__ == "__main__":
    main()
