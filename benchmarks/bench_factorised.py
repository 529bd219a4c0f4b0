"""Gradient similarity: factorised dense layers against materialised per-example gradients.

On digits, an ``MLPClassifier((64,))`` trained on rows 0-999 compares 1000 training with 100
test instances (rows 1000-1099); with ``--mnist``, the tutorial's CNN compares 2000 training
(rows 2000-3999) with 100 test instances (rows 0-99). For each ``sim_fn`` and
``precompute_grads`` it prints the seconds of ``fit`` + ``explain`` (factorised, the default),
those of the same work with materialised gradients (the flattened ``(n, n_params)`` gradients
of each batch, as before factorisation) and the largest difference between their scores,
relative to the largest score; seconds are the best of ``--repeat`` runs. A last row gives a
random projection (``n_components``).

    python benchmarks/bench_factorised.py [--mnist ../shared/data/mnist] [--cache DIR]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402

from skcem import GradientSimilarityExplainer  # noqa: E402
from skcem._similarity import similarity  # noqa: E402


def materialised_scores(explainer, X_test, sim_fn, precompute):
    """The scores from flattened per-example gradients, batch by batch."""
    gradients = explainer._get_gradients()
    X_train, y_train, size = explainer.X_train_, explainer.y_train_, explainer.batch_size
    target = explainer._targets(explainer._predicted_targets(X_test))

    def grads(X, y):
        return np.vstack([gradients(X[i:i + size], y[i:i + size])
                          for i in range(0, len(X), size)])

    start = time.perf_counter()
    train = grads(X_train, y_train) if precompute else None
    scores = np.empty((len(X_test), len(X_train)))
    for i in range(0, len(X_test), size):
        test = grads(X_test[i:i + size], target[i:i + size])
        if precompute:
            scores[i:i + size] = similarity(test, train, sim_fn)
            continue
        for j in range(0, len(X_train), size):
            scores[i:i + size, j:j + size] = similarity(
                test, gradients(X_train[j:j + size], y_train[j:j + size]), sim_fn)
    return scores, time.perf_counter() - start


def compare(name, model, X_train, y_train, X_test, batch_size, n_components, repeat):
    print(f"{name}: {len(X_train)} training and {len(X_test)} test instances, batches of "
          f"{batch_size}")
    header = (f"{'sim_fn':<14} {'precompute':<10} {'factorised s':>12} {'materialised s':>14} "
              f"{'speed-up':>8} {'max rel diff':>12}")
    print(header)
    print("-" * len(header))
    for sim_fn in ("grad_dot", "grad_cos", "grad_asym_dot"):
        for precompute in (False, True):
            explainer = GradientSimilarityExplainer(model, sim_fn=sim_fn, batch_size=batch_size,
                                                    precompute_grads=precompute)
            explainer.fit(X_train[:batch_size], y_train[:batch_size]).transform(X_test[:2])
            seconds = materialised = np.inf
            for _ in range(repeat):
                start = time.perf_counter()
                scores = explainer.fit(X_train, y_train).transform(X_test)
                seconds = min(seconds, time.perf_counter() - start)
                expected, run_seconds = materialised_scores(explainer, X_test, sim_fn,
                                                            precompute)
                materialised = min(materialised, run_seconds)
            diff = np.max(np.abs(scores - expected)) / np.max(np.abs(expected))
            print(f"{sim_fn:<14} {str(precompute):<10} {seconds:>12.3f} {materialised:>14.3f} "
                  f"{materialised / seconds:>7.1f}x {diff:>12.1e}", flush=True)
    explainer = GradientSimilarityExplainer(model, n_components=n_components, random_state=0,
                                            precompute_grads=True, batch_size=batch_size)
    start = time.perf_counter()
    scores = explainer.fit(X_train, y_train).transform(X_test)
    seconds = time.perf_counter() - start
    exact = GradientSimilarityExplainer(model, batch_size=batch_size).fit(
        X_train, y_train).transform(X_test)
    error = np.linalg.norm(scores - exact) / np.linalg.norm(exact)
    print(f"grad_dot, n_components={n_components}: {seconds:.3f} s, relative error (Frobenius) "
          f"{error:.2f}\n", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default=None)
    parser.add_argument("--cache", default=None)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--n-components", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    mlp = MLPClassifier((64,), max_iter=400, random_state=0).fit(X[:1000], y[:1000])
    compare("digits, MLPClassifier((64,))", mlp, X[:1000], y[:1000], X[1000:1100],
            args.batch_size, args.n_components, args.repeat)
    if args.mnist:
        from skcem.datasets import mnist_tutorial_models

        # the auto-encoder is not used here: one epoch of it is enough
        X, y, cnn, _ = mnist_tutorial_models(args.mnist, cache=args.cache, epochs=(10, 1))
        compare(f"MNIST CNN ({cnn.count_params()} parameters)", cnn, X[2000:4000],
                y[2000:4000], X[:100], args.batch_size, args.n_components, args.repeat)


if __name__ == "__main__":
    main()
