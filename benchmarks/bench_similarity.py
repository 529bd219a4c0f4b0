"""Gradient similarity on the CEM tutorial's MNIST CNN: batched vs one instance at a time.

The CNN (89k parameters) is trained on rows 2000-9999 of MNIST's 10k test set; 2000 training
instances (rows 2000-3999) are scored against 100 test instances (rows 0-99). For each
``sim_fn`` and ``precompute_grads`` it prints fit and explain seconds, and the same work done
the reference's way: one eager ``GradientTape`` gradient per instance in a Python loop (as
alibi's ``GradientSimilarity`` does), then the scores; and, as a stronger baseline, the same
loop with the per-instance gradient compiled by ``tf.function``. It checks that all give the
same scores.

    python benchmarks/bench_similarity.py --mnist ../shared/data/mnist [--cache DIR]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from skcem import GradientSimilarityExplainer  # noqa: E402
from skcem._similarity import similarity  # noqa: E402
from skcem.datasets import mnist_tutorial_models  # noqa: E402


def one_at_a_time_gradients(model, X, y, compiled=False):
    """The reference's method: a gradient tape per instance, in a Python loop."""
    import keras
    import tensorflow as tf

    def gradient(x, t):
        with tf.GradientTape() as tape:
            loss = keras.losses.sparse_categorical_crossentropy(t[None],
                                                                model(x[None], training=False))
        grads = tape.gradient(loss, model.trainable_weights)
        return tf.concat([tf.reshape(g, [-1]) for g in grads], 0)

    if compiled:
        gradient = tf.function(gradient)

    return np.stack([gradient(tf.constant(x.reshape(28, 28, 1)), tf.constant(t)).numpy()
                     for x, t in zip(X, y)])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default=os.environ.get("SKCEM_MNIST_DIR"))
    parser.add_argument("--cache", default=None)
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--n-test", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()

    X, y, cnn, _ = mnist_tutorial_models(args.mnist, cache=args.cache)
    X_train, y_train = X[2000:2000 + args.n_train], y[2000:2000 + args.n_train]
    X_test = X[:args.n_test]
    print(f"CNN with {cnn.count_params()} parameters; {len(X_train)} training and "
          f"{len(X_test)} test instances")

    target = cnn.predict(X_test.reshape(-1, 28, 28, 1), verbose=0).argmax(axis=1)
    loops = {}
    for compiled in (False, True):
        start = time.perf_counter()
        loop_train = one_at_a_time_gradients(cnn, X_train, y_train, compiled)
        loop_test = one_at_a_time_gradients(cnn, X_test, target, compiled)
        loops[compiled] = time.perf_counter() - start
    loop_grads_seconds = loops[False]
    print(f"one-at-a-time gradients: {loops[False]:.1f} s eager (the reference's way), "
          f"{loops[True]:.1f} s compiled")

    header = (f"{'sim_fn':<14} {'precompute':<10} {'fit s':>7} {'explain s':>9} "
              f"{'loop s':>7} {'speed-up':>8} {'vs compiled':>11} {'max rel diff':>12}")
    print(header)
    print("-" * len(header))
    for sim_fn in ("grad_dot", "grad_cos", "grad_asym_dot"):
        start = time.perf_counter()
        reference = similarity(loop_test, loop_train, sim_fn)
        loop_seconds = loop_grads_seconds + time.perf_counter() - start
        for precompute in (False, True):
            explainer = GradientSimilarityExplainer(cnn, sim_fn=sim_fn,
                                                    precompute_grads=precompute,
                                                    batch_size=args.batch_size)
            start = time.perf_counter()
            explainer.fit(X_train, y_train)
            fit_seconds = time.perf_counter() - start
            start = time.perf_counter()
            scores = explainer.explain(X_test).scores
            explain_seconds = time.perf_counter() - start
            diff = np.max(np.abs(scores - reference)) / np.max(np.abs(reference))
            total = fit_seconds + explain_seconds
            compiled_seconds = loop_seconds - loops[False] + loops[True]
            print(f"{sim_fn:<14} {str(precompute):<10} {fit_seconds:>7.2f} "
                  f"{explain_seconds:>9.2f} {loop_seconds:>7.2f} {loop_seconds / total:>7.1f}x "
                  f"{compiled_seconds / total:>10.1f}x {diff:>12.1e}", flush=True)


if __name__ == "__main__":
    main()
