"""skcem on a GPU: CEM on the MNIST tutorial's CNN + auto-encoder, and gradient similarity at scale.

Needs only PyTorch, numpy, scipy and scikit-learn (no TensorFlow), so that it runs on a GPU
machine that has nothing else. Two parts, each printing its figures:

1. CEM (PN by default) for ``--n-instances`` MNIST rows in one batch on ``--device``, the
   tutorial's settings at the reference's full schedule (``c_steps=10`` times
   ``max_iterations=1000``, no probing, no early stopping): seconds, instances/s,
   instance-iterations/s (the sum of the instances' iterations over the seconds), found rate
   and median L1 of the perturbation. Then the first ``--cpu-instances`` of those rows again
   on the CPU, same modules and settings, and the found rate and median L1 of both runs on
   those rows.
2. Gradient similarity of the CNN: ``--train-rows`` training rows (MNIST's rows repeated) and
   ``--test-rows`` test rows, ``fit`` + ``kneighbors(n_neighbors=10)``, exact scores, then with
   ``n_components`` random projections; seconds of each and the share of equal top-10
   neighbours between the two.

The models come from ``bench_torch_mnist.py`` (trained there on ``--device``, or loaded from
its ``--cache``)::

    python benchmarks/bench_gpu.py --mnist DIR [--cache DIR] [--device cuda]
        [--n-instances 2000] [--cpu-instances 16] [--train-rows 60000] [--test-rows 10000]
        [--threads N]
"""

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_torch_mnist import TUTORIAL, trained_models  # noqa: E402

from skcem import (CEMExplainer, ExplanationNotFoundWarning,  # noqa: E402
                   GradientSimilarityExplainer)
from skcem.datasets import load_mnist  # noqa: E402

FULL_SCHEDULE = dict(TUTORIAL, probe_iterations=None, tol=None)


def synchronize(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def explain(cnn, autoencoder, X_train, rows, mode, device, max_iterations):
    cem = CEMExplainer(cnn, mode=mode, autoencoder=autoencoder, input_shape=(1, 28, 28),
                       device=device, batch_size=len(rows),
                       **dict(FULL_SCHEDULE, max_iterations=max_iterations)).fit(X_train)
    synchronize(device)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        exp = cem.explain(rows)
    synchronize(device)
    seconds = time.perf_counter() - start
    l1 = np.abs(exp.perturbation).sum(axis=1)
    return seconds, exp, l1


def median_found(l1, found):
    return float(np.median(l1[found])) if found.any() else float("nan")


def cem_part(args, cnn, autoencoder, X):
    X_train, rows = X[2000:], X[:args.n_instances]
    print(f"CEM, {len(rows)} instances in one batch on {args.device}: c_steps "
          f"{FULL_SCHEDULE['c_steps']} x max_iterations {args.max_iterations}")
    header = (f"{'mode':<4} {'device':<8} {'rows':>5} {'s':>8} {'inst/s':>8} "
              f"{'inst-it/s':>10} {'found':>6} {'med L1':>7}")
    print(header)
    print("-" * len(header))
    for mode in args.modes.split(","):
        runs = [(args.device, rows)]
        if args.cpu_instances:
            runs.append(("cpu", rows[:args.cpu_instances]))
        results = {}
        for device, batch in runs:
            seconds, exp, l1 = explain(cnn, autoencoder, X_train, batch, mode, device,
                                       args.max_iterations)
            results[device] = exp, l1
            rate = np.sum(exp.meta["n_iterations"]) / seconds
            print(f"{mode:<4} {device:<8} {len(batch):>5} {seconds:>8.1f} "
                  f"{len(batch) / seconds:>8.2f} {rate:>10.0f} {exp.found.mean():>6.0%} "
                  f"{median_found(l1, exp.found):>7.2f}", flush=True)
        if "cpu" in results and args.device != "cpu":
            k = args.cpu_instances
            (gpu, gpu_l1), (cpu, cpu_l1) = results[args.device], results["cpu"]
            print(f"{mode:<4} first {k} rows: found {gpu.found[:k].mean():.0%} on "
                  f"{args.device} / {cpu.found.mean():.0%} on cpu, median L1 "
                  f"{median_found(gpu_l1[:k], gpu.found[:k]):.2f} / "
                  f"{median_found(cpu_l1, cpu.found):.2f}")


def similarity_part(args, cnn, X, y):
    repeats = -(-args.train_rows // len(X))
    X_train = np.tile(X, (repeats, 1))[:args.train_rows]
    y_train = np.tile(y, repeats)[:args.train_rows]
    X_test = X[:args.test_rows]
    print(f"\nGradient similarity on {args.device}: {len(X_train)} training x {len(X_test)} "
          "test rows, kneighbors(n_neighbors=10)")
    neighbours = {}
    for name, options in (("exact", {}), (f"n_components={args.n_components}",
                                          dict(n_components=args.n_components,
                                               random_state=0))):
        explainer = GradientSimilarityExplainer(cnn, input_shape=(1, 28, 28),
                                                device=args.device,
                                                batch_size=args.similarity_batch, **options)
        synchronize(args.device)
        start = time.perf_counter()
        explainer.fit(X_train, y_train)
        fitted = time.perf_counter()
        _, neighbours[name] = explainer.kneighbors(X_test, n_neighbors=10)
        synchronize(args.device)
        done = time.perf_counter()
        print(f"{name:<22} fit {fitted - start:>7.2f} s  kneighbors {done - fitted:>7.2f} s  "
              f"total {done - start:>7.2f} s", flush=True)
    exact, projected = neighbours.values()
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, projected)])
    print(f"top-10 neighbours equal to the exact ones: {overlap:.1%}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default=os.environ.get("SKCEM_MNIST_DIR"), required=False,
                        help="folder of the MNIST IDX gzip files")
    parser.add_argument("--cache", default=None, help="bench_torch_mnist.py's model cache")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--modes", default="PN")
    parser.add_argument("--n-instances", type=int, default=2000)
    parser.add_argument("--cpu-instances", type=int, default=16)
    parser.add_argument("--max-iterations", type=int, default=TUTORIAL["max_iterations"])
    parser.add_argument("--train-rows", type=int, default=60000)
    parser.add_argument("--test-rows", type=int, default=10000)
    parser.add_argument("--n-components", type=int, default=2048)
    parser.add_argument("--similarity-batch", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads for the CPU's work (default: PyTorch's)")
    parser.add_argument("--parts", nargs="+", default=["cem", "similarity"],
                        choices=["cem", "similarity"])
    args = parser.parse_args()
    if not args.mnist:
        parser.error("--mnist is required")
    if args.threads:
        torch.set_num_threads(args.threads)

    X, y = load_mnist(args.mnist)
    X = (X - 0.5).astype(np.float32)  # the tutorial's scale
    start = time.perf_counter()
    cnn, autoencoder = trained_models(X, y, (10, 8), args.cache, args.device)
    name = torch.cuda.get_device_name() if torch.device(args.device).type == "cuda" else "CPU"
    print(f"torch {torch.__version__} on {name}; models ready in "
          f"{time.perf_counter() - start:.0f} s")
    if "cem" in args.parts:
        cem_part(args, cnn, autoencoder, X)
    if "similarity" in args.parts:
        similarity_part(args, cnn, X, y)


if __name__ == "__main__":
    main()
