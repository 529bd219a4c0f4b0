"""Gradient similarity on the CEM tutorial's MNIST CNN: batched vs one instance at a time.

The CNN (89k parameters) is trained on rows 2000-9999 of MNIST's 10k test set; 2000 training
instances (rows 2000-3999) are scored against 100 test instances (rows 0-99). For each
``sim_fn`` and ``precompute_grads`` it prints fit and explain seconds, and the same work done
the reference's way: one eager ``GradientTape`` gradient per instance in a Python loop (as
alibi's ``GradientSimilarity`` does), then the scores; and, as a stronger baseline, the same
loop with the per-instance gradient compiled by ``tf.function``. It checks that all give the
same scores: "max rel diff" against the loop's, "vs vectorised" against those of the
materialised gradients of ``tf.vectorized_map``, on the training instances whose gradient is
more than float32 rounding noise (norm above 1e-4 times the largest). On training points the
CNN fits perfectly, the gradients are rounding noise, which differs between any two compiled
graphs and the loop: their cosines differ by up to 0.15 ("max rel diff").

With ``--large`` it scores instead all 8000 training rows (2000-9999) against 1000 test rows
(0-999) with ``kneighbors`` (k=10), ``precompute_grads=True``, for ``grad_dot`` and
``grad_cos``: projected gradients (``n_components`` from ``--n-components``,
``random_state=0``), and the exact scores (``n_components=None``, timed apart). Each run is a
fresh subprocess that loads the cached models: it prints the seconds of ``fit`` and of
``kneighbors``, the process's peak RSS (``VmHWM``, else ``ru_maxrss``; TensorFlow's
allocations included) and its rise above the peak once the models are loaded, and the mean
top-10 overlap ``|top10_projected & top10_exact| / 10`` over the test rows. Targets: fit +
kneighbors under 60 s, peak under 1 GB, overlap at least 90%.

    python benchmarks/bench_similarity.py --mnist ../shared/data/mnist [--cache DIR]
    python benchmarks/bench_similarity.py --mnist ../shared/data/mnist --large \
        [--n-components 256 1024 4096] [--cache DIR]
    python benchmarks/bench_similarity.py --mnist ../shared/data/mnist \
        --reference-python /tmp/alibi/bin/python [--precompute False True] [--repeats 1]

With ``--reference-python`` (an interpreter with alibi 0.9.6, see
``reference_alibi_similarity.py``) it compares skcem with the reference itself instead of the
loop: for each ``sim_fn`` the reference's ``GradientSimilarity`` runs ``fit`` and ``explain``
in a fresh process of its own environment, on the same rows and the same trained weights, and
skcem's ``GradientSimilarityExplainer`` in a fresh process too (so that each pays its own
start-up: TensorFlow's tracing for skcem). It prints each side's fit and explain seconds, the
ratio of the totals (reference / skcem, computed here), the same for the CPU seconds (less
sensitive to other processes on a busy machine, where two threads wait on each other), and
how far the scores agree: the
largest difference relative to the largest reference score, over all training rows and over
those whose gradient norm is above 1e-4 times the largest (see above), and the mean overlap
of the top-10 training rows. The target is a ratio of at least 30 for every ``sim_fn``.
"""

import argparse
import json
import multiprocessing
import os
import resource
import subprocess
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# TensorFlow 2.21 left oneDNN off on a 2-core Xeon here; the reference's TF 2.14 turns it on.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import numpy as np  # noqa: E402

from skcem import GradientSimilarityExplainer  # noqa: E402
from skcem._param_grads import make_param_gradients  # noqa: E402
from skcem._param_grads._factors import gradient_sq_norms  # noqa: E402
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


LARGE_SIM_FNS = ("grad_dot", "grad_cos")
LARGE_K = 10
TARGET_SECONDS = 60
TARGET_PEAK_MB = 1024
TARGET_OVERLAP = 0.9


def peak_rss_mb():
    """This process's peak RSS: ``VmHWM``, where Linux has it, else ``ru_maxrss``.

    Linux's ``ru_maxrss`` keeps the parent's peak across fork + exec, so that a spawned
    worker would report the parent's (TensorFlow and the trained models) as its own.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**10
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10


def large_run(mnist, cache, n_components, batch_size, n_jobs):
    """One ``--large`` configuration, in a fresh process: times, peak RSS and neighbours."""
    X, y, cnn, _ = mnist_tutorial_models(mnist, cache=cache)
    X_train, y_train, X_test = X[2000:], y[2000:], X[:1000]
    loaded_mb = peak_rss_mb()
    results = {}
    for sim_fn in LARGE_SIM_FNS:
        explainer = GradientSimilarityExplainer(cnn, sim_fn=sim_fn, precompute_grads=True,
                                                n_components=n_components, random_state=0,
                                                batch_size=batch_size, n_jobs=n_jobs)
        start = time.perf_counter()
        explainer.fit(X_train, y_train)
        fit_seconds = time.perf_counter() - start
        start = time.perf_counter()
        indices = explainer.kneighbors(X_test, n_neighbors=LARGE_K, return_scores=False)
        results[sim_fn] = fit_seconds, time.perf_counter() - start, indices
        del explainer
    return results, loaded_mb, peak_rss_mb()


REFERENCE_TARGET = 30
REFERENCE_K = 10


def skcem_run(mnist, cache, data_path, sim_fn, precompute, batch_size):
    """skcem's fit and explain on the reference's rows, in a fresh process."""
    _, _, cnn, _ = mnist_tutorial_models(mnist, cache=cache)
    data = np.load(data_path)
    explainer = GradientSimilarityExplainer(cnn, sim_fn=sim_fn, precompute_grads=precompute,
                                            batch_size=batch_size)
    start, cpu = time.perf_counter(), time.process_time()
    explainer.fit(data["X_train"], data["y_train"])
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    scores = explainer.explain(data["X_test"]).scores
    return fit_seconds, time.perf_counter() - start, time.process_time() - cpu, scores


def reference_run(python, data_path, weights_path, sim_fn, precompute, scores_path):
    """The reference's fit and explain, from ``reference_alibi_similarity.py``."""
    script = Path(__file__).with_name("reference_alibi_similarity.py")
    command = [python, str(script), "--data", data_path, "--weights", weights_path,
               "--sim-fn", sim_fn, "--scores-out", scores_path]
    if precompute:
        command.append("--precompute-grads")
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"the reference failed: {command}\n{done.stderr[-3000:]}")
    figures = json.loads([line for line in done.stdout.splitlines()
                          if line.startswith("{")][-1])
    return figures, np.load(scores_path)


def against_reference(args):
    """skcem against alibi's own ``GradientSimilarity``, each in fresh processes."""
    X, y, cnn, _ = mnist_tutorial_models(args.mnist, cache=args.cache)  # trains once
    X_train, y_train = X[2000:2000 + args.n_train], y[2000:2000 + args.n_train]
    X_test = X[:args.n_test]
    folder = tempfile.mkdtemp(prefix="skcem-similarity-")
    data_path = os.path.join(folder, "data.npz")
    weights_path = os.path.join(folder, "mnist_cnn.npz")
    np.savez(data_path, X_train=X_train, y_train=y_train, X_test=X_test)
    np.savez(weights_path, *cnn.get_weights())
    # training rows whose gradient is more than float32 rounding noise
    exact = GradientSimilarityExplainer(cnn, precompute_grads=True).fit(X_train, y_train)
    norms = np.sqrt(gradient_sq_norms(exact.grads_train_))
    signal = norms > 1e-4 * norms.max()
    test_norms = np.sqrt(gradient_sq_norms(
        exact._grads(X_test, exact._predicted_targets(X_test))))
    # the reference's cosine, g_a . g_b / (||g_a|| ||g_b|| + 1e-7), from skcem's exact one
    norm_products = test_norms[:, None] * norms[None, :]
    stabilised = norm_products / (norm_products + 1e-7)
    import skcem

    print(f"skcem from {Path(skcem.__file__).parent}; the reference: {args.reference_python}")
    print(f"CNN with {cnn.count_params()} parameters; {len(X_train)} training and "
          f"{len(X_test)} test instances; batch_size={args.batch_size}; each run in a fresh "
          f"process; seconds of fit and explain, best of {args.repeats}, and the CPU seconds "
          f"of both (all the process's threads) in that run")
    print(f"rel diff: max |skcem - reference| / max |reference|, over all training rows and "
          f"over the {signal.sum()} whose gradient norm is above 1e-4 times the largest "
          f"(grad_cos: skcem's exact cosine times ||g_a|| ||g_b|| / (||g_a|| ||g_b|| + 1e-7), "
          f"the reference's formula); top-{REFERENCE_K}: mean overlap of the most similar "
          f"training rows; load: the 1-minute load average after the case")
    header = (f"{'sim_fn':<14} {'precompute':<10} {'skcem fit':>9} {'explain':>7} "
              f"{'ref fit':>7} {'explain':>7} {'ref/skcem':>9} {'cpu skcem':>9} {'ref':>6} "
              f"{'ref/skcem':>9} {'rel diff':>8} {'(signal)':>8} {'top-10':>6} {'load':>4}  "
              f"target")
    print(header)
    print("-" * len(header), flush=True)
    context = multiprocessing.get_context("spawn")
    for sim_fn in args.sim_fns:
        for precompute in args.precompute:
            reference_times, skcem_times = [], []
            for repeat in range(args.repeats):
                figures, reference = reference_run(
                    args.reference_python, data_path, weights_path, sim_fn, precompute,
                    os.path.join(folder, f"{sim_fn}-{precompute}-{repeat}.npy"))
                reference_times.append((figures["fit_seconds"], figures["explain_seconds"],
                                        figures["cpu_seconds"]))
                with context.Pool(1) as pool:  # a fresh process: TensorFlow traces again
                    fit_seconds, explain_seconds, cpu_seconds, scores = pool.apply(
                        skcem_run, (args.mnist, args.cache, data_path, sim_fn, precompute,
                                    args.batch_size))
                skcem_times.append((fit_seconds, explain_seconds, cpu_seconds))
            ref_fit, ref_explain, ref_cpu = min(reference_times, key=lambda t: t[0] + t[1])
            sk_fit, sk_explain, sk_cpu = min(skcem_times, key=lambda t: t[0] + t[1])
            ratio = (ref_fit + ref_explain) / (sk_fit + sk_explain)
            if sim_fn == "grad_cos":
                scores = scores * stabilised
            scale = np.max(np.abs(reference))
            diff = np.max(np.abs(scores - reference)) / scale
            signal_diff = (np.max(np.abs(scores - reference)[:, signal])
                           / np.max(np.abs(reference[:, signal])))
            overlap = top_k_overlap(np.argsort(-scores, axis=1, kind="stable")[:, :REFERENCE_K],
                                    np.argsort(-reference, axis=1,
                                               kind="stable")[:, :REFERENCE_K])
            print(f"{sim_fn:<14} {str(precompute):<10} {sk_fit:>9.2f} {sk_explain:>7.2f} "
                  f"{ref_fit:>7.2f} {ref_explain:>7.2f} {ratio:>8.1f}x {sk_cpu:>9.2f} "
                  f"{ref_cpu:>6.1f} {ref_cpu / sk_cpu:>8.1f}x {diff:>8.1e} "
                  f"{signal_diff:>8.1e} {overlap:>6.1%} {os.getloadavg()[0]:>4.1f}  "
                  f"{ratio >= REFERENCE_TARGET}",
                  flush=True)


def top_k_overlap(indices, exact):
    """Mean over rows of the fraction of ``exact``'s neighbours also in ``indices``."""
    return np.mean([len(np.intersect1d(a, b)) / exact.shape[1]
                    for a, b in zip(indices, exact)])


def large(args):
    """Projected and exact gradient similarity, 8000 training rows against 1000 test rows."""
    X, y, cnn, _ = mnist_tutorial_models(args.mnist, cache=args.cache)  # trains once
    print(f"CNN with {cnn.count_params()} parameters; 8000 training and 1000 test instances; "
          f"kneighbors with k={LARGE_K}, precompute_grads=True, batch_size={args.batch_size}, "
          f"n_jobs={args.n_jobs}")
    print("peak MB: the worker process's peak RSS (VmHWM, TensorFlow included); +MB: its "
          "rise above the peak with the models loaded")
    header = (f"{'n_components':>12} {'sim_fn':<9} {'fit s':>6} {'kneighbors s':>12} "
              f"{'total s':>7} {'peak MB':>7} {'+MB':>5} {'overlap':>7}  targets met")
    print(header)
    print("-" * len(header), flush=True)
    context = multiprocessing.get_context("spawn")
    exact = None
    for n_components in [None] + args.n_components:
        with context.Pool(1) as pool:  # a fresh process: no heap from the previous run
            results, loaded_mb, peak_mb = pool.apply(
                large_run, (args.mnist, args.cache, n_components, args.batch_size, args.n_jobs))
        exact = exact or results
        for sim_fn, (fit_seconds, kneighbors_seconds, indices) in results.items():
            total = fit_seconds + kneighbors_seconds
            overlap = top_k_overlap(indices, exact[sim_fn][2])
            met = "(exact: not timed against the target)" if n_components is None else (
                f"time {total < TARGET_SECONDS}, memory {peak_mb < TARGET_PEAK_MB}, "
                f"overlap {overlap >= TARGET_OVERLAP}")
            print(f"{str(n_components):>12} {sim_fn:<9} {fit_seconds:>6.1f} "
                  f"{kneighbors_seconds:>12.1f} {total:>7.1f} {peak_mb:>7.0f} "
                  f"{peak_mb - loaded_mb:>5.0f} {overlap:>7.1%}  {met}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default=os.environ.get("SKCEM_MNIST_DIR"))
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "skcem-mnist"),
                        help="folder of the trained models, reused by later runs")
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--n-test", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--large", action="store_true",
                        help="8000 training rows, 1000 test rows: projected against exact")
    parser.add_argument("--n-components", type=int, nargs="+", default=[2048],
                        help="projections of --large")
    parser.add_argument("--n-jobs", type=int, default=None, help="explainer's n_jobs")
    parser.add_argument("--reference-python", default=None,
                        help="interpreter with alibi 0.9.6: compare with the reference's own "
                             "GradientSimilarity instead of the loop")
    parser.add_argument("--sim-fns", nargs="+", default=["grad_dot", "grad_cos", "grad_asym_dot"],
                        choices=["grad_dot", "grad_cos", "grad_asym_dot"])
    parser.add_argument("--precompute", nargs="+", default=[False],
                        type=lambda value: {"true": True, "false": False}[value.lower()],
                        help="precompute_grads of both (--reference-python): False, True")
    parser.add_argument("--repeats", type=int, default=1,
                        help="fresh-process runs per case (--reference-python); best taken")
    args = parser.parse_args()

    if args.mnist is None or not all(
            (Path(args.mnist) / f"t10k-{kind}-idx{dims}-ubyte.gz").exists()
            for kind, dims in (("images", 3), ("labels", 1))):
        print(f"Skipped: no MNIST t10k IDX files in {args.mnist} (pass --mnist or set "
              f"SKCEM_MNIST_DIR).")
        return
    if args.large:
        large(args)
        return
    if args.reference_python:
        against_reference(args)
        return

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

    vectorised = make_param_gradients(cnn, input_shape=(28, 28, 1))
    size = args.batch_size
    vec_train, vec_test = (np.vstack([vectorised(rows[i:i + size], targets[i:i + size])
                                      for i in range(0, len(rows), size)])
                           for rows, targets in ((X_train, y_train), (X_test, target)))
    norms = np.linalg.norm(vec_train, axis=1)
    signal = norms > 1e-4 * norms.max()
    print(f"vs vectorised: on the {signal.sum()} training instances whose gradient norm is above "
          f"1e-4 times the largest")
    header = (f"{'sim_fn':<14} {'precompute':<10} {'fit s':>7} {'explain s':>9} "
              f"{'loop s':>7} {'speed-up':>8} {'vs compiled':>11} {'max rel diff':>12} "
              f"{'vs vectorised':>13}")
    print(header)
    print("-" * len(header))
    for sim_fn in ("grad_dot", "grad_cos", "grad_asym_dot"):
        start = time.perf_counter()
        reference = similarity(loop_test, loop_train, sim_fn)
        loop_seconds = loop_grads_seconds + time.perf_counter() - start
        materialised = similarity(vec_test.astype(float), vec_train.astype(float), sim_fn)
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
            vec_diff = (np.max(np.abs(scores - materialised)[:, signal])
                        / np.max(np.abs(materialised[:, signal])))
            total = fit_seconds + explain_seconds
            compiled_seconds = loop_seconds - loops[False] + loops[True]
            print(f"{sim_fn:<14} {str(precompute):<10} {fit_seconds:>7.2f} "
                  f"{explain_seconds:>9.2f} {loop_seconds:>7.2f} {loop_seconds / total:>7.1f}x "
                  f"{compiled_seconds / total:>10.1f}x {diff:>12.1e} {vec_diff:>13.1e}",
                  flush=True)


if __name__ == "__main__":
    main()
