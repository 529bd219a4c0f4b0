"""
CEM on MNIST with a Keras CNN and an auto-encoder
=================================================

The reference's MNIST tutorial on TensorFlow 2 / Keras 3: the tutorial's CNN and convolutional
auto-encoder, trained on rows 2000-9999 of MNIST's 10k test set (IDX gzip files on disk, no
download), explain instance 15 and a few more with a pertinent negative and a pertinent
positive, all instances of a batch optimised together. The figure is written to
``cem_mnist.png``.

Point ``SKCEM_MNIST_DIR`` (or ``--mnist``) at the folder of your MNIST files.
"""

import argparse
import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from skcem import CEMExplainer, ExplanationNotFoundWarning  # noqa: E402
from skcem.datasets import mnist_tutorial_models  # noqa: E402

parser = argparse.ArgumentParser(description="CEM on MNIST with a Keras CNN")
parser.add_argument("--mnist", default=os.environ.get("SKCEM_MNIST_DIR"),
                    help="the folder of MNIST's t10k IDX files (default: $SKCEM_MNIST_DIR)")
parser.add_argument("--instances", default="15,4,7,21")
parser.add_argument("--out", default="cem_mnist.png")
parser.add_argument("--max-iterations", type=int, default=1000)
args, _ = parser.parse_known_args()
# (before TensorFlow loads, which takes seconds)
if args.mnist is None or not os.path.isfile(
        os.path.join(args.mnist, "t10k-images-idx3-ubyte.gz")):
    parser.error(f"no MNIST files in {args.mnist!r}: point --mnist (or SKCEM_MNIST_DIR) at the "
                 "folder of t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz")

X, y, cnn, autoencoder = mnist_tutorial_models(args.mnist)
rows = [int(i) for i in args.instances.split(",")]
tutorial = dict(kappa=0.0, beta=0.1, gamma=100.0, autoencoder=autoencoder, c_init=1.0,
                c_steps=10, max_iterations=args.max_iterations, feature_range=(-0.5, 0.5),
                no_info_val=-1.0, clip=(-1000.0, 1000.0), learning_rate_init=1e-2)
# The defaults do the rest: no momentum with the auto-encoder term (the search then reaches
# the larger c that give sparser PNs) and a probing search on c (5 times fewer iterations).

explanations = {}
for mode in ("PN", "PP"):
    cem = CEMExplainer(cnn, mode=mode, **tutorial).fit(X[2000:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        explanations[mode] = cem.explain(X[rows])
    exp = explanations[mode]
    for i, row in enumerate(rows):
        print(f"instance {row}: class {exp.X_pred[i]}, {mode} class {exp.explanation_pred[i]}")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

fig, axes = plt.subplots(len(rows), 3, figsize=(6, 2 * len(rows)), squeeze=False)
pn, pp = explanations["PN"], explanations["PP"]
for i, row in enumerate(rows):
    panels = [(pn.X[i], f"#{row}: class {pn.X_pred[i]}"),
              (pn.explanation[i], f"PN: class {pn.explanation_pred[i]}"),
              (pp.explanation[i], f"PP: class {pp.explanation_pred[i]}")]
    for ax, (image, title) in zip(axes[i], panels):
        ax.imshow(np.nan_to_num(image, nan=-0.5).reshape(28, 28), cmap="gray",
                  vmin=-0.5, vmax=0.5)
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
fig.tight_layout()
fig.savefig(args.out, dpi=100)
print(f"figure written to {args.out}")
