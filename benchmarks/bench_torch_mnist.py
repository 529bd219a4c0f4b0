"""CEM on the MNIST tutorial's CNN + auto-encoder in PyTorch, against the same network in Keras.

The tutorial's CNN and auto-encoder (``skcem.datasets.make_mnist_cnn`` and
``make_mnist_autoencoder``) rebuilt as ``torch.nn`` modules and trained here on rows 2000-9999 of
MNIST's 10k test set; the trained weights are copied into the Keras twins, so that both paths
explain the same network. CEM PN and PP at skcem's defaults with the tutorial's settings (as in
``bench_keras_mnist.py``) on the first instances, the same ones for both paths, in the same run.
Prints, per mode and path: instances/s, the CPU seconds of the process during the explanation
(all threads; on a busy machine a steadier measure of the work than the wall clock), found rate
and median L1 of the perturbation, the rows the model was asked about (the searches may stop
after different numbers of iterations) and the CPU microseconds per row, then the ratios torch
/ Keras (speed by either clock, and by CPU time per row: the cost of one evaluation). With
``--threads N`` both frameworks get N threads (PyTorch's ``set_num_threads``, TensorFlow's
intra-op pool).

    python benchmarks/bench_torch_mnist.py --mnist ../shared/data/mnist [--n-instances 32]
        [--epochs 10 8] [--cache DIR] [--device cuda] [--threads N]

``--device cuda`` explains with the torch path only, on the GPU (TensorFlow is not imported).
"""

import argparse
import os
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # see bench_keras_mnist.py

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from skcem import CEMExplainer, ExplanationNotFoundWarning  # noqa: E402
from skcem.datasets import load_mnist  # noqa: E402

TUTORIAL = dict(kappa=0.0, beta=0.1, gamma=100.0, c_init=1.0, c_steps=10, max_iterations=1000,
                feature_range=(-0.5, 0.5), no_info_val=-1.0, clip=(-1000.0, 1000.0),
                learning_rate_init=1e-2)


def make_torch_cnn():
    """The tutorial's CNN on (1, 28, 28) images, ending in a softmax."""
    layers, channels = [], 1
    for filters in (64, 32, 32):
        # Keras' "same" padding of a 2x2 kernel: one row and column of zeros after
        layers += [nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(channels, filters, 2), nn.ReLU(),
                   nn.MaxPool2d(2), nn.Dropout(0.3)]
        channels = filters
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(32 * 3 * 3, 256), nn.ReLU(),
                         nn.Dropout(0.5), nn.Linear(256, 10), nn.Softmax(dim=1))


def make_torch_autoencoder():
    """The tutorial's convolutional auto-encoder on (1, 28, 28) images."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding="same"), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding="same"), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 1, 3, padding="same"),
        nn.Conv2d(1, 16, 3, padding="same"), nn.ReLU(),
        nn.Upsample(scale_factor=2, mode="nearest"),
        nn.Conv2d(16, 16, 3, padding="same"), nn.ReLU(),
        nn.Conv2d(16, 1, 3, padding="same"))


def train(model, images, targets, loss_fn, epochs, batch_size, seed=0):
    """Adam on mini-batches; the model is left in eval mode."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=generator).to(images.device)
        for rows in order.split(batch_size):
            optimizer.zero_grad()
            loss_fn(model(images[rows]), targets[rows]).backward()
            optimizer.step()
    return model.eval()


def trained_models(X, y, epochs, cache=None, device="cpu"):
    """The tutorial's CNN and auto-encoder in PyTorch, trained on rows 2000-9999 (on
    ``device``), returned on the CPU."""
    torch.manual_seed(0)
    cnn, autoencoder = make_torch_cnn(), make_torch_autoencoder()
    paths = None if cache is None else [os.path.join(cache, f"torch_mnist_{name}.pt")
                                        for name in ("cnn", "ae")]
    if paths and all(os.path.exists(p) for p in paths):
        cnn.load_state_dict(torch.load(paths[0]))
        autoencoder.load_state_dict(torch.load(paths[1]))
        return cnn.eval(), autoencoder.eval()
    images = torch.as_tensor(X[2000:], device=device).reshape(-1, 1, 28, 28)
    labels = torch.as_tensor(y[2000:], device=device)
    cnn, autoencoder = cnn.to(device), autoencoder.to(device)

    def nll_of_softmax(proba, target):
        return nn.functional.nll_loss(torch.log(proba.clamp_min(1e-7)), target)

    train(cnn, images, labels, nll_of_softmax, epochs[0], 64)
    train(autoencoder, images, images, nn.functional.mse_loss, epochs[1], 128)
    cnn, autoencoder = cnn.cpu(), autoencoder.cpu()
    if paths:
        os.makedirs(cache, exist_ok=True)
        torch.save(cnn.state_dict(), paths[0])
        torch.save(autoencoder.state_dict(), paths[1])
    return cnn, autoencoder


def keras_twin(module, input_shape):
    """A Keras model computing what the ``nn.Sequential`` ``module`` does, its weights copied.

    Images are channels-last in Keras: convolution kernels are transposed, and the rows of the
    first dense layer after a flatten are reordered from (c, h, w) to (h, w, c).
    """
    import keras
    from keras import layers

    inputs = keras.Input(input_shape[1:] + input_shape[:1])
    x, shape = inputs, None
    weights = []
    for layer in module:
        if isinstance(layer, nn.ZeroPad2d):
            left, right, top, bottom = layer.padding
            x = layers.ZeroPadding2D(((top, bottom), (left, right)))(x)
        elif isinstance(layer, nn.Conv2d):
            padding = "same" if layer.padding == "same" else "valid"
            x = layers.Conv2D(layer.out_channels, layer.kernel_size, padding=padding)(x)
            weights.append([layer.weight.detach().numpy().transpose(2, 3, 1, 0),
                            layer.bias.detach().numpy()])
        elif isinstance(layer, nn.ReLU):
            x = layers.ReLU()(x)
        elif isinstance(layer, nn.MaxPool2d):
            x = layers.MaxPooling2D(2)(x)
        elif isinstance(layer, nn.Upsample):
            x = layers.UpSampling2D(2)(x)
        elif isinstance(layer, nn.Flatten):
            shape = tuple(x.shape[1:])  # (h, w, c)
            x = layers.Flatten()(x)
        elif isinstance(layer, nn.Linear):
            kernel = layer.weight.detach().numpy().T
            if shape is not None:  # rows in (c, h, w) order -> (h, w, c)
                h, w, c = shape
                kernel = kernel.reshape(c, h, w, -1).transpose(1, 2, 0, 3).reshape(h * w * c, -1)
                shape = None
            x = layers.Dense(layer.out_features)(x)
            weights.append([kernel, layer.bias.detach().numpy()])
        elif isinstance(layer, nn.Softmax):
            x = layers.Softmax()(x)
        elif not isinstance(layer, nn.Dropout):  # dropout: nothing at inference
            raise TypeError(f"No Keras twin for {layer}.")
    model = keras.Model(inputs, x)
    with_weights = [layer for layer in model.layers if layer.weights]
    for layer, values in zip(with_weights, weights):
        layer.set_weights(values)
    return model


def explain(estimator, autoencoder, X_train, X_explain, mode, input_shape, **options):
    settings = {**TUTORIAL, **options}
    cem = CEMExplainer(estimator, mode=mode, autoencoder=autoencoder, input_shape=input_shape,
                       batch_size=len(X_explain), **settings).fit(X_train)
    start, cpu_start = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        exp = cem.explain(X_explain)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    l1 = np.abs(exp.perturbation).sum(axis=1)
    return len(exp) / seconds, cpu_seconds, exp.found, l1, exp.meta["n_model_rows"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default=os.environ.get("SKCEM_MNIST_DIR"),
                        help="folder of the MNIST IDX gzip files")
    parser.add_argument("--n-instances", type=int, default=32)
    parser.add_argument("--modes", default="PN,PP")
    parser.add_argument("--max-iterations", type=int, default=TUTORIAL["max_iterations"])
    parser.add_argument("--epochs", type=int, nargs=2, default=(10, 8),
                        help="training epochs of the CNN and of the auto-encoder")
    parser.add_argument("--cache", default=None, help="folder to keep the trained models in")
    parser.add_argument("--device", default="cpu",
                        help="where the torch path runs; not 'cpu': the torch path only")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads (default: PyTorch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    X, y = load_mnist(args.mnist)
    X = X - 0.5
    start = time.perf_counter()
    cnn, autoencoder = trained_models(X, y, args.epochs, args.cache, args.device)
    with torch.no_grad():
        accuracy = (cnn(torch.as_tensor(X[:2000]).reshape(-1, 1, 28, 28)).argmax(1).numpy()
                    == y[:2000]).mean()
    print(f"torch models ready in {time.perf_counter() - start:.0f} s; CNN accuracy on rows "
          f"0-1999: {accuracy:.3f}; torch {torch.__version__}, {torch.get_num_threads()} "
          "threads")
    X_explain, X_train = X[:args.n_instances], X[2000:]
    with_keras = args.device == "cpu"
    if with_keras:
        import tensorflow as tf

        if args.threads:
            tf.config.threading.set_intra_op_parallelism_threads(args.threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        keras_cnn = keras_twin(cnn, (1, 28, 28))
        keras_ae = keras_twin(autoencoder, (1, 28, 28))
        images = X_explain.reshape(-1, 28, 28, 1)
        gaps = []
        for torch_model, keras_model in ((cnn, keras_cnn), (autoencoder, keras_ae)):
            with torch.no_grad():
                out = torch_model(torch.as_tensor(X_explain).reshape(-1, 1, 28, 28)).numpy()
            gaps.append(np.abs(keras_model(images, training=False).numpy().reshape(out.shape)
                               - out.reshape(out.shape)).max())
        print(f"TensorFlow {tf.__version__}; Keras twins on the explained instances: largest "
              f"difference of the probabilities {gaps[0]:.1e}, of the reconstructions "
              f"{gaps[1]:.1e}")

    header = (f"{'mode':<4} {'path':<8} {'inst/s':>7} {'cpu s':>7} {'found':>6} {'med L1':>7} "
              f"{'rows':>8} {'cpu us/row':>10}")
    print(header)
    print("-" * len(header))
    figures = {}
    for mode in args.modes.split(","):
        runs = [("torch", cnn, autoencoder, (1, 28, 28), {"device": args.device})]
        if with_keras:
            runs.append(("keras", keras_cnn, keras_ae, None, {}))
        for path, model, ae, shape, options in runs:
            rate, cpu, found, l1, rows = explain(model, ae, X_train, X_explain, mode, shape,
                                                 max_iterations=args.max_iterations, **options)
            figures[mode, path] = rate, cpu, found, l1, rows
            print(f"{mode:<4} {path:<8} {rate:>7.3f} {cpu:>7.1f} {found.mean():>6.0%} "
                  f"{np.median(l1[found]):>7.2f} {rows:>8} {cpu / rows * 1e6:>10.0f}", flush=True)
    if not with_keras:
        return
    print("\ntorch / keras, same network, same instances, same run")
    header = (f"{'mode':<4} {'path':<8} {'inst/s ratio':>12} {'by cpu s':>9} {'found t/k':>10} "
              f"{'med L1 ratio':>12} {'rows t/k':>8} {'by cpu/row':>10}")
    print(header)
    print("-" * len(header))
    for mode in args.modes.split(","):
        rate_k, cpu_k, found_k, l1_k, rows_k = figures[mode, "keras"]
        for path in ("torch",):
            rate_t, cpu_t, found_t, l1_t, rows_t = figures[mode, path]
            print(f"{mode:<4} {path:<8} {rate_t / rate_k:>11.2f}x {cpu_k / cpu_t:>8.2f}x "
                  f"{found_t.mean():>4.0%}/{found_k.mean():<4.0%} "
                  f"{np.median(l1_t[found_t]) / np.median(l1_k[found_k]) - 1:>+11.1%} "
                  f"{rows_t / rows_k:>8.2f} {cpu_k / rows_k / (cpu_t / rows_t):>9.2f}x")


if __name__ == "__main__":
    main()
