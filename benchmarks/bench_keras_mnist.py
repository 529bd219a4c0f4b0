"""CEM on the reference's MNIST tutorial: Keras CNN + auto-encoder, a batch of instances.

The tutorial's setup (kappa 0, beta 0.1, gamma 100, c_init 1, c_steps 10, max_iterations 1000,
feature_range (-0.5, 0.5), no_info_val -1, clip +-1000) on the first instances of rows 0-1999
of MNIST's 10k test set, the models trained on rows 2000-9999. Prints, per mode and with or
without early stopping: instances/s, instance-iterations/s (and as a share of the ceiling),
found rate, median L1 and L0 of the perturbation and the median AE error of the explanation.

The ceiling is the throughput of the model + AE input gradient alone (one forward and backward
pass of both, compiled), at the best batch size: no optimizer can iterate faster.

    python benchmarks/bench_keras_mnist.py --mnist ../shared/data/mnist [--n-instances 32]
        [--momentum auto|on|off|both] [--early-stopping off|on|both]
        [--probe-iterations auto 0 100] [--reference-python /tmp/alibi/bin/python
        [--reference-instances 8]]

By default it runs skcem's defaults (``momentum="auto"``: off with the auto-encoder term;
``probe_iterations="auto"``: the probing search on ``c``; no early stopping).
``--probe-iterations`` lists the runs' probing settings (0: the full schedule).
``--reference-python`` (an interpreter with alibi 0.9.6) runs ``reference_alibi_mnist.py`` on
the first ``--reference-instances`` instances, one at a time, in the same run and with the same
weights, and prints a second table: each skcem run's instances/s against the reference's (the
ratio computed here), found rates and median L1 on the instances both explain and median AE
errors, on those first instances.
"""

import argparse
import json
import os
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# TensorFlow 2.21 left oneDNN off on a 2-core Xeon here (2.7x slower); TF 2.14, the
# reference's, turns it on by default. The reference's subprocess inherits the setting.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

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
    parser.add_argument("--momentum", choices=["auto", "both", "on", "off"], default="auto",
                        help="auto: skcem's default (off with the auto-encoder term); both: on "
                             "and off")
    parser.add_argument("--early-stopping", choices=["both", "on", "off"], default="off")
    parser.add_argument("--n-iter-no-change", type=int, default=50)
    parser.add_argument("--first", type=int, default=16,
                        help="also print the median L1 of the first FIRST instances, to compare "
                             "with reference_alibi_mnist.py --n-instances FIRST")
    parser.add_argument("--max-iterations", type=int, default=TUTORIAL["max_iterations"])
    parser.add_argument("--probe-iterations", nargs="+", default=["auto"],
                        type=lambda v: v if v == "auto" else int(v),
                        help="probe_iterations of the runs (auto: skcem's default, a tenth of "
                             "max_iterations; 0: the full schedule)")
    parser.add_argument("--reference-python", default=None,
                        help="interpreter with alibi 0.9.6: run the reference in this run")
    parser.add_argument("--reference-instances", type=int, default=8)
    parser.add_argument("--export-weights", default=None,
                        help="folder to write the models' weights to, as .npz, for "
                             "reference_alibi_mnist.py")
    args = parser.parse_args()

    X, y, cnn, autoencoder = mnist_tutorial_models(args.mnist, cache=args.cache)
    weights = args.export_weights or (tempfile.mkdtemp() if args.reference_python else None)
    if weights:
        os.makedirs(weights, exist_ok=True)
        for name, model in (("mnist_cnn", cnn), ("mnist_ae", autoencoder)):
            np.savez(os.path.join(weights, f"{name}.npz"), *model.get_weights())
    ceiling, best_batch = gradient_ceiling(cnn, autoencoder, X[:256])
    same_batch, _ = gradient_ceiling(cnn, autoencoder, X[:256], batch_sizes=(args.n_instances,))
    print(f"ceiling: {ceiling:.0f} instance-iterations/s (model + AE input gradient, "
          f"batch {best_batch}); {same_batch:.0f} at this run's batch of {args.n_instances}")
    X_explain = X[:args.n_instances]
    X_train = X[2000:]
    settings = dict(TUTORIAL, max_iterations=args.max_iterations)

    header = (f"{'mode':<4} {'momentum':<8} {'early stop':<26} {'inst/s':>7} {'inst-it/s':>9} "
              f"{'% ceil':>6} "
              f"{'found':>6} {'med L1':>7} {'med L0':>7} {'med AE err':>10} "
              f"{'L1 first':>8}")
    print(header)
    print("-" * len(header))
    choices = {"both": (True, False), "on": (True,), "off": (False,), "auto": ("auto",)}
    stops = choices[args.early_stopping][::-1]  # without early stopping first
    runs = [(mode, momentum, args.tol if stop else None, probe)
            for mode in args.modes.split(",") for momentum in choices[args.momentum]
            for stop in stops for probe in args.probe_iterations]
    results = []
    for mode, momentum, tol, probe in runs:
        cem = CEMExplainer(cnn, mode=mode, autoencoder=autoencoder, tol=tol,
                           n_iter_no_change=args.n_iter_no_change, momentum=momentum,
                           probe_iterations=probe or None, batch_size=args.n_instances,
                           **settings).fit(X_train)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExplanationNotFoundWarning)
            exp = cem.explain(X_explain)
        seconds = time.perf_counter() - start
        iterations = np.sum(exp.meta["n_iterations"])
        found = exp.found
        ae_error = _ae_errors(autoencoder, exp.explanation, found)
        l1 = np.abs(exp.perturbation).sum(axis=1)
        label = "off" if tol is None else f"tol={tol:g}, n={args.n_iter_no_change}"
        label += f", probe {probe}" if probe else ", full schedule"
        results.append((mode, momentum, label, len(exp) / seconds, found, l1, ae_error))
        print(f"{mode:<4} {str(momentum):<8} {label:<26} {len(exp) / seconds:>7.3f} "
              f"{iterations / seconds:>9.0f} {iterations / seconds / ceiling:>6.0%} "
              f"{found.mean():>6.0%} "
              f"{np.median(l1[found]):>7.2f} "
              f"{np.median(n_changed(exp)[found]):>7.0f} {np.median(ae_error[found]):>10.3f} "
              f"{np.nanmedian(l1[:args.first]):>8.2f}",
              flush=True)
    if args.reference_python:
        compare_with_reference(args, weights, results)


def _ae_errors(autoencoder, rows, found):
    """Each found row's squared auto-encoder error (NaN for rows without an answer)."""
    errors = np.full(len(rows), np.nan)
    images = rows[found].reshape(-1, 28, 28, 1)
    errors[found] = np.sum((autoencoder.predict(images, verbose=0).reshape(len(images), -1)
                            - rows[found]) ** 2, axis=1)
    return errors


def run_reference(python, weights, mnist, mode, n_instances):
    """The reference's figures on the first instances, from ``reference_alibi_mnist.py``."""
    script = Path(__file__).with_name("reference_alibi_mnist.py")
    command = [python, str(script), "--json", "--weights", weights, "--mnist", mnist,
               "--n-instances", str(n_instances), "--modes", mode]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"the reference failed: {command}\n{done.stderr[-3000:]}")
    figures = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
    found = np.array(figures["found"], dtype=bool)
    l1, ae_error = np.full(len(found), np.nan), np.full(len(found), np.nan)
    l1[found], ae_error[found] = figures["l1"], figures["ae_error"]
    return n_instances / figures["seconds"], found, l1, ae_error


def compare_with_reference(args, weights, results):
    n = args.reference_instances
    print(f"\nagainst the reference (alibi 0.9.6 CEM, one instance at a time) on the first {n} "
          "instances, same run, same weights; L1 median on the instances both explain")
    header = (f"{'mode':<4} {'momentum':<8} {'early stop':<26} {'inst/s':>7} {'ref':>7} "
              f"{'sk/ref':>7} {'found sk/ref':>12} {'med L1 sk/ref (both)':>21} "
              f"{'med AE err sk/ref':>18}")
    print(header)
    print("-" * len(header))
    references = {}
    for mode, momentum, label, rate, found, l1, ae_error in results:
        if mode not in references:
            references[mode] = run_reference(args.reference_python, weights, args.mnist, mode, n)
        ref_rate, ref_found, ref_l1, ref_ae = references[mode]
        both = found[:n] & ref_found
        print(f"{mode:<4} {str(momentum):<8} {label:<26} {rate:>7.3f} {ref_rate:>7.4f} "
              f"{rate / ref_rate:>6.1f}x {found[:n].mean():>5.0%}/{ref_found.mean():<6.0%} "
              f"{_median(l1[:n][both]):>10.2f}/{_median(ref_l1[both]):<10.2f} "
              f"{_median(ae_error[:n][found[:n]]):>8.2f}/{_median(ref_ae[ref_found]):<9.2f}",
              flush=True)


def _median(values):
    return np.median(values) if len(values) else np.nan


if __name__ == "__main__":
    main()
