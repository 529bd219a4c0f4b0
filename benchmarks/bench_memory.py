"""Black-box CEM memory: finite-difference rows in chunks against all of them in one call.

On wide random data (784 and 1100 features by default, 10 classes) it explains 64 instances
in one batch (``batch_size=64``, ``max_iterations=5``, ``c_steps=1``) through numerical
gradients, twice per width: (a) with skcem's chunking of the shifted rows
(``skcem._gradients._numerical.MAX_SHIFTED_VALUES``, 2**23 values) and (b) unchunked (that
constant set to 2**62). Each run is a fresh subprocess, so that no run inherits another's
heap; it reports the peak RSS of ``CEMExplainer(...).fit(X).explain(X[:64])`` above the RSS
before it (``ru_maxrss``), the tracemalloc peak of the same call, and the seconds per
iteration. The script prints the ratios chunked/unchunked of both memories and of the time.
For the logistic model it also measures the exact-gradient path (``gradient="exact"``): one
backward pass, memory independent of ``n_features**2``.

    python benchmarks/bench_memory.py [--widths 784 1100] [--model logistic|softmax]
                                      [--max-iterations 5] [--repeats 1]
"""

import argparse
import json
import resource
import subprocess
import sys
import time
import tracemalloc
import warnings

N_CLASSES = 10
N_ROWS = 256
BATCH = 64
UNCHUNKED = 2**62


def current_rss_mb():
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10


def make_model(kind, n_features, rng):
    """A fitted LogisticRegression, or a fixed softmax function, and the data."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    X = rng.random((N_ROWS, n_features))
    if kind == "logistic":
        y = np.arange(N_ROWS) % N_CLASSES
        return LogisticRegression(max_iter=50).fit(X, y), X
    weights = rng.normal(scale=n_features**-0.5, size=(n_features, N_CLASSES))

    def predict_proba(Z):
        logits = Z @ weights
        logits -= logits.max(axis=1, keepdims=True)
        proba = np.exp(logits)
        return proba / proba.sum(axis=1, keepdims=True)

    return predict_proba, X


def child(args):
    """One measured run in this process; prints one JSON line."""
    import numpy as np

    from skcem import CEMExplainer, ExplanationNotFoundWarning
    from skcem._gradients import _numerical

    if not args.chunked:
        _numerical.MAX_SHIFTED_VALUES = UNCHUNKED
    model, X = make_model(args.model, args.width, np.random.default_rng(0))
    cem = CEMExplainer(model, mode="PN", gradient="exact" if args.exact else "numerical",
                       batch_size=BATCH,
                       max_iterations=args.max_iterations, c_steps=1)
    before = current_rss_mb()
    tracemalloc.start()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        cem.fit(X)
        start = time.perf_counter()
        exp = cem.explain(X[:BATCH])
        seconds = time.perf_counter() - start
    traced = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    print(json.dumps({"rss_mb": peak_rss_mb() - before, "traced_mb": traced,
                      "s_per_iter": seconds / args.max_iterations,
                      "rows_per_iter": exp.meta["n_model_rows"] / args.max_iterations}))


def measure(args, width, chunked, exact=False):
    """Runs :func:`child` in a fresh interpreter and returns its figures."""
    command = [sys.executable, __file__, "--child", "--width", str(width),
               "--model", args.model, "--max-iterations", str(args.max_iterations)]
    if chunked:
        command.append("--chunked")
    if exact:
        command.append("--exact")
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def best_of(runs):
    """Time: the fastest run (the least disturbed); memory: the largest peak."""
    return {"rss_mb": max(r["rss_mb"] for r in runs),
            "traced_mb": max(r["traced_mb"] for r in runs),
            "s_per_iter": min(r["s_per_iter"] for r in runs),
            "rows_per_iter": runs[0]["rows_per_iter"]}


def report(width, name, figures):
    print(f"{width:>6} {name:<10} {figures['rss_mb']:>12.0f} {figures['traced_mb']:>12.0f} "
          f"{figures['s_per_iter']:>8.3f} {figures['rows_per_iter']:>10.0f}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[784, 1100])
    parser.add_argument("--model", choices=("logistic", "softmax"), default="logistic")
    parser.add_argument("--max-iterations", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=1,
                        help="runs of each case, alternated; the fastest time is kept")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--width", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--chunked", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--exact", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    print(f"model={args.model} batch_size={BATCH} max_iterations={args.max_iterations} "
          f"c_steps=1 repeats={args.repeats}")
    header = (f"{'width':>6} {'rows':<10} {'peak RSS MB':>12} {'traced MB':>12} "
              f"{'s/iter':>8} {'rows/iter':>10}")
    print(header)
    print("-" * len(header))
    ratios = []
    for width in args.widths:
        runs = {True: [], False: []}
        for _ in range(args.repeats):
            for chunked in (True, False):
                runs[chunked].append(measure(args, width, chunked))
        chunked, whole = best_of(runs[True]), best_of(runs[False])
        report(width, "chunked", chunked)
        report(width, "unchunked", whole)
        if args.model == "logistic":  # a fitted model: its exact gradient, for comparison
            report(width, "exact", measure(args, width, True, exact=True))
        ratios.append((width, *(chunked[key] / whole[key]
                                for key in ("rss_mb", "traced_mb", "s_per_iter"))))
    print("\nchunked / unchunked")
    print(f"{'width':>6} {'peak RSS':>9} {'traced':>9} {'s/iter':>9}")
    for width, rss, traced, speed in ratios:
        print(f"{width:>6} {rss:>9.3f} {traced:>9.3f} {speed:>9.2f}")


if __name__ == "__main__":
    main()
