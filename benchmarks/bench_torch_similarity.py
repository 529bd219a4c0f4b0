"""Gradient similarity of the MNIST tutorial's CNN in PyTorch: skcem against the reference.

The CNN of ``bench_torch_mnist.py`` (trained there, or loaded from its ``--cache``) scores 2,000
training rows (rows 2000-3999 of MNIST's 10k test set) against 100 test rows (0-99), for each
``sim_fn``, by skcem's ``GradientSimilarityExplainer`` and by alibi 0.9.6's own
``GradientSimilarity(backend="pytorch")``, each in a fresh process: fit + scores, timed in the
process, same module (saved whole with ``torch.save``), same rows, the same number of torch
threads. The reference runs in its own environment (``--reference-python``: an interpreter
with alibi 0.9.6 and torch 2.13.0; see ``reference_alibi.py`` for how it is built). Prints
seconds per side, their ratio, and how far the scores agree (largest relative difference over
the rows whose gradients are more than rounding noise, and the share of equal top-10
neighbours).

    python benchmarks/bench_torch_similarity.py --mnist ../shared/data/mnist \\
        --reference-python /tmp/alibi/bin/python [--cache DIR] [--threads N]
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SIM_FNS = ("grad_dot", "grad_cos", "grad_asym_dot")


def skcem_scores(model, X_train, y_train, X_test, sim_fn):
    from skcem import GradientSimilarityExplainer

    explainer = GradientSimilarityExplainer(model, sim_fn=sim_fn, input_shape=(1, 28, 28))
    explainer.fit(X_train.reshape(len(X_train), -1), y_train)
    return explainer.transform(X_test.reshape(len(X_test), -1))


def reference_scores(model, X_train, y_train, X_test, sim_fn):
    import torch
    from alibi.explainers import GradientSimilarity

    def loss_fn(probabilities, targets):  # the module ends in a softmax
        return torch.nn.functional.nll_loss(torch.log(probabilities), targets)

    explainer = GradientSimilarity(model, loss_fn=loss_fn, sim_fn=sim_fn, backend="pytorch",
                                   device="cpu")
    explainer.fit(X_train, y_train)
    explanation = explainer.explain(X_test)
    scores = np.empty((len(X_test), len(X_train)))
    np.put_along_axis(scores, explanation.data["ordered_indices"], explanation.data["scores"],
                      axis=1)
    return scores


def worker(args):
    """One side, in this fresh process: seconds of fit + scores, and the scores."""
    import torch

    torch.set_num_threads(args.threads)
    model = torch.load(args.model, weights_only=False).eval()
    data = np.load(args.data)
    run = skcem_scores if args.worker == "skcem" else reference_scores
    start = time.perf_counter()
    scores = run(model, data["X_train"], data["y_train"], data["X_test"], args.sim_fn)
    seconds = time.perf_counter() - start
    np.save(args.out, scores)
    print(json.dumps({"seconds": seconds}))


def agreement(scores, reference, k=10):
    """Largest relative difference on the training rows with real gradients, and the share of
    equal top-k neighbours."""
    scale = np.abs(reference).max(axis=0)
    real = scale > 1e-4 * scale.max()
    difference = np.abs(scores - reference)[:, real] / np.abs(reference[:, real]).max()
    top = np.argsort(-scores, axis=1)[:, :k]
    top_reference = np.argsort(-reference, axis=1)[:, :k]
    overlap = np.mean([len(set(a) & set(b)) / k for a, b in zip(top, top_reference)])
    return float(difference.max()), float(overlap)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", help="folder of MNIST's t10k files")
    parser.add_argument("--reference-python", help="interpreter with alibi 0.9.6 and torch")
    parser.add_argument("--cache", default=None, help="bench_torch_mnist.py's model cache")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sim-fns", nargs="+", default=list(SIM_FNS), choices=SIM_FNS)
    parser.add_argument("--worker", choices=["skcem", "reference"], help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--sim-fn", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    if not args.mnist or not args.reference_python:
        parser.error("--mnist and --reference-python are required")

    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_torch_mnist import trained_models

    from skcem.datasets import load_mnist

    X, y = load_mnist(args.mnist)
    X = X - 0.5  # the tutorial's scale, as in bench_torch_mnist.py
    images = X.reshape(-1, 1, 28, 28).astype(np.float32)
    cnn, _ = trained_models(X, y, (10, 8), cache=args.cache)
    folder = Path(tempfile.mkdtemp())
    torch.save(cnn.cpu().eval(), folder / "cnn.pt")
    np.savez(folder / "rows.npz", X_train=images[2000:4000], y_train=y[2000:4000].astype(np.int64),
             X_test=images[:100])
    print(f"{'sim_fn':<14} {'skcem s':>8} {'reference s':>12} {'ratio':>7} "
          f"{'max rel diff':>13} {'top-10 equal':>13}")
    for sim_fn in args.sim_fns:
        seconds, scores = {}, {}
        for side, python in (("skcem", sys.executable), ("reference", args.reference_python)):
            out = folder / f"{side}_{sim_fn}.npy"
            command = [python, __file__, "--worker", side, "--model", str(folder / "cnn.pt"),
                       "--data", str(folder / "rows.npz"), "--sim-fn", sim_fn, "--out", str(out),
                       "--threads", str(args.threads)]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(f"{side} failed:\n{done.stderr[-3000:]}")
            seconds[side] = json.loads(done.stdout.strip().splitlines()[-1])["seconds"]
            scores[side] = np.load(out)
        difference, overlap = agreement(scores["skcem"], scores["reference"])
        print(f"{sim_fn:<14} {seconds['skcem']:>8.2f} {seconds['reference']:>12.2f} "
              f"{seconds['reference'] / seconds['skcem']:>6.1f}x {difference:>13.1e} "
              f"{overlap:>13.1%}", flush=True)


if __name__ == "__main__":
    main()
