"""CEM on the reference's MNIST tutorial: Keras CNN + auto-encoder, a batch of instances.

The tutorial's setup (kappa 0, beta 0.1, gamma 100, c_init 1, c_steps 10, max_iterations 1000,
feature_range (-0.5, 0.5), no_info_val -1, clip +-1000) on the first instances of rows 0-1999
of MNIST's 10k test set, the models trained on rows 2000-9999. Prints, per mode and with or
without early stopping: instances/s, instance-iterations/s (and as a share of the ceiling),
found rate, median L1 and L0 of the perturbation and the median AE error of the explanation.

The ceiling is the throughput of the model + AE input gradient alone (one forward and backward
pass of both, compiled), at the best batch size: no optimizer can iterate faster.

    python benchmarks/bench_keras_mnist.py --mnist ../shared/data/mnist [--n-instances 32]
"""

import argparse
import os
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from skcem import CEMExplainer, ExplanationNotFoundWarning  # noqa: E402
from skcem.datasets import mnist_tutorial_models  # noqa: E402
from skcem.metrics import n_changed  # noqa: E402

TUTORIAL = dict(kappa=0.0, beta=0.1, gamma=100.0, c_init=1.0, c_steps=10, max_iterations=1000,
                feature_range=(-0.5, 0.5), no_info_val=-1.0, clip=(-1000.0, 1000.0),
                learning_rate_init=1e-2)


def gradient_ceiling(cnn, autoencoder, X, batch_sizes=(8, 16, 32, 64, 128, 256), repeats=20):
    """Best instance-iterations/s of one compiled forward+backward pass of CNN and AE."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None, 784], tf.float32)])
    def step(z):
        with tf.GradientTape() as tape:
            tape.watch(z)
            images = tf.reshape(z, (-1, 28, 28, 1))
            loss = (tf.reduce_sum(cnn(images, training=False)[:, 0])
                    + tf.reduce_sum(tf.square(autoencoder(images, training=False) - images)))
        return tape.gradient(loss, z)

    rates = {}
    for size in batch_sizes:
        z = tf.constant(np.resize(X, (size, 784)).astype(np.float32))
        step(z)  # trace
        start = time.perf_counter()
        for _ in range(repeats):
            step(z).numpy()
        rates[size] = size * repeats / (time.perf_counter() - start)
    best = max(rates, key=rates.get)
    return rates[best], best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default=os.environ.get("SKCEM_MNIST_DIR"),
                        help="folder of the MNIST IDX gzip files")
    parser.add_argument("--cache", default=None, help="folder to keep the trained models in")
    parser.add_argument("--n-instances", type=int, default=32)
    parser.add_argument("--modes", default="PN,PP")
    parser.add_argument("--tol", type=float, default=1e-3)
    parser.add_argument("--momentum", choices=["both", "on", "off"], default="both")
    parser.add_argument("--early-stopping", choices=["both", "on", "off"], default="both")
    parser.add_argument("--n-iter-no-change", type=int, default=50)
    parser.add_argument("--first", type=int, default=16,
                        help="also print the median L1 of the first FIRST instances, to compare "
                             "with reference_alibi_mnist.py --n-instances FIRST")
    parser.add_argument("--max-iterations", type=int, default=TUTORIAL["max_iterations"])
    parser.add_argument("--export-weights", default=None,
                        help="folder to write the models' weights to, as .npz, for "
                             "reference_alibi_mnist.py")
    args = parser.parse_args()

    X, y, cnn, autoencoder = mnist_tutorial_models(args.mnist, cache=args.cache)
    if args.export_weights:
        os.makedirs(args.export_weights, exist_ok=True)
        for name, model in (("mnist_cnn", cnn), ("mnist_ae", autoencoder)):
            np.savez(os.path.join(args.export_weights, f"{name}.npz"), *model.get_weights())
    ceiling, best_batch = gradient_ceiling(cnn, autoencoder, X[:256])
    same_batch, _ = gradient_ceiling(cnn, autoencoder, X[:256], batch_sizes=(args.n_instances,))
    print(f"ceiling: {ceiling:.0f} instance-iterations/s (model + AE input gradient, "
          f"batch {best_batch}); {same_batch:.0f} at this run's batch of {args.n_instances}")
    X_explain = X[:args.n_instances]
    X_train = X[2000:]
    settings = dict(TUTORIAL, max_iterations=args.max_iterations)

    header = (f"{'mode':<4} {'momentum':<8} {'early stop':<18} {'inst/s':>7} {'inst-it/s':>9} "
              f"{'% ceil':>6} "
              f"{'found':>6} {'med L1':>7} {'med L0':>7} {'med AE err':>10} "
              f"{'L1 first':>8}")
    print(header)
    print("-" * len(header))
    choices = {"both": (True, False), "on": (True,), "off": (False,)}
    stops = choices[args.early_stopping][::-1]  # without early stopping first
    runs = [(mode, momentum, args.tol if stop else None) for mode in args.modes.split(",")
            for momentum in choices[args.momentum] for stop in stops]
    for mode, momentum, tol in runs:
        cem = CEMExplainer(cnn, mode=mode, autoencoder=autoencoder, tol=tol,
                           n_iter_no_change=args.n_iter_no_change, momentum=momentum,
                           batch_size=args.n_instances, **settings).fit(X_train)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExplanationNotFoundWarning)
            exp = cem.explain(X_explain)
        seconds = time.perf_counter() - start
        iterations = np.sum(exp.meta["n_iterations"])
        found = exp.found
        rows = exp.explanation[found]
        ae_error = np.sum((autoencoder.predict(rows.reshape(-1, 28, 28, 1), verbose=0)
                           .reshape(len(rows), -1) - rows) ** 2, axis=1)
        l1 = np.abs(exp.perturbation).sum(axis=1)
        label = "off" if tol is None else f"tol={tol:g}, n={args.n_iter_no_change}"
        print(f"{mode:<4} {str(momentum):<8} {label:<18} {len(exp) / seconds:>7.3f} "
              f"{iterations / seconds:>9.0f} {iterations / seconds / ceiling:>6.0%} "
              f"{found.mean():>6.0%} "
              f"{np.median(l1[found]):>7.2f} "
              f"{np.median(n_changed(exp)[found]):>7.0f} {np.median(ae_error):>10.3f} "
              f"{np.nanmedian(l1[:args.first]):>8.2f}",
              flush=True)


if __name__ == "__main__":
    main()
