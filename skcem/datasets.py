"""MNIST from local IDX files, and the CEM tutorial's Keras models.

Nothing is downloaded: :func:`load_mnist` reads the IDX gzip files of a copy the user already
has (``t10k-images-idx3-ubyte.gz`` and ``t10k-labels-idx1-ubyte.gz``, or the ``train-``
ones). The models are those of the reference's MNIST tutorial; building them needs Keras.
"""

import gzip
import os
from pathlib import Path

import numpy as np

MNIST_ENV = "SKCEM_MNIST_DIR"


def _read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    if data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes.")
    n_dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(n_dims))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * n_dims).reshape(shape)


def load_mnist(directory=None, kind="t10k"):
    """Read MNIST images and labels from IDX gzip files.

    Parameters
    ----------
    directory : str or path, default=None
        Folder holding ``{kind}-images-idx3-ubyte.gz`` and ``{kind}-labels-idx1-ubyte.gz``.
        Defaults to the ``SKCEM_MNIST_DIR`` environment variable.
    kind : {"t10k", "train"}, default="t10k"
        Which files: the 10,000 test images or the 60,000 training images.

    Returns
    -------
    X : ndarray of shape (n_samples, 784), dtype float32
        Pixels scaled to [0, 1], one image per row.
    y : ndarray of shape (n_samples,), dtype int64
        The digit of each image.
    """
    if kind not in ("t10k", "train"):
        raise ValueError(f"`kind` must be 't10k' or 'train'; got {kind!r}.")
    directory = directory or os.environ.get(MNIST_ENV)
    if directory is None:
        raise ValueError(f"Pass the folder of your MNIST IDX files as `directory` or set "
                         f"{MNIST_ENV}.")
    directory = Path(directory)
    images = directory / f"{kind}-images-idx3-ubyte.gz"
    labels = directory / f"{kind}-labels-idx1-ubyte.gz"
    for path in (images, labels):
        if not path.exists():
            raise FileNotFoundError(f"No MNIST file {path}.")
    X = _read_idx(images).reshape(-1, 28 * 28).astype(np.float32) / 255.0
    return X, _read_idx(labels).astype(np.int64)


def make_mnist_cnn():
    """The tutorial's CNN classifier for (28, 28, 1) images, compiled, untrained.

    Returns
    -------
    model : keras.Model
        Softmax over the 10 digits.
    """
    import keras
    from keras import layers

    inputs = keras.Input((28, 28, 1))
    x = inputs
    for filters in (64, 32, 32):
        x = layers.Conv2D(filters, 2, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Dropout(0.3)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(256, activation="relu")(x)
    x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(10, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam",
                  metrics=["accuracy"])
    return model


def make_mnist_autoencoder():
    """The tutorial's convolutional auto-encoder for (28, 28, 1) images, compiled, untrained.

    Returns
    -------
    model : keras.Model
        Maps an image to its reconstruction, of the same shape.
    """
    import keras
    from keras import layers

    inputs = keras.Input((28, 28, 1))
    x = layers.Conv2D(16, 3, activation="relu", padding="same")(inputs)
    x = layers.Conv2D(16, 3, activation="relu", padding="same")(x)
    x = layers.MaxPooling2D(2, padding="same")(x)
    encoded = layers.Conv2D(1, 3, activation=None, padding="same")(x)
    x = layers.Conv2D(16, 3, activation="relu", padding="same")(encoded)
    x = layers.UpSampling2D(2)(x)
    x = layers.Conv2D(16, 3, activation="relu", padding="same")(x)
    decoded = layers.Conv2D(1, 3, activation=None, padding="same")(x)
    model = keras.Model(inputs, decoded)
    model.compile(optimizer="adam", loss="mse")
    return model


def mnist_tutorial_models(directory=None, cache=None, epochs=(10, 8), verbose=0):
    """The tutorial's data and trained CNN and auto-encoder, on the 10k MNIST test set.

    Pixels are scaled to [-0.5, 0.5] as in the tutorial. Rows 2000-9999 train both models;
    rows 0-1999 are left for explaining.

    Parameters
    ----------
    directory : str or path, default=None
        See :func:`load_mnist`.
    cache : str or path, default=None
        A folder where the trained models are saved and, on later calls, loaded from.
    epochs : tuple of int, default=(10, 8)
        Training epochs of the CNN and of the auto-encoder: twice the tutorial's, which
        trains on six times as many images.
    verbose : int, default=0
        Passed to Keras' ``fit``: 1 shows training progress.

    Returns
    -------
    X : ndarray of shape (10000, 784), float32 in [-0.5, 0.5]
        The images, one per row.
    y : ndarray of shape (10000,)
        Their digits.
    cnn, autoencoder : keras.Model
        The trained models.
    """
    import keras

    X, y = load_mnist(directory)
    X = X - 0.5
    images = X.reshape(-1, 28, 28, 1)
    paths = None
    if cache is not None:
        Path(cache).mkdir(parents=True, exist_ok=True)
        paths = [Path(cache) / "mnist_cnn.keras", Path(cache) / "mnist_ae.keras"]
        if all(p.exists() for p in paths):
            return X, y, keras.models.load_model(paths[0]), keras.models.load_model(paths[1])
    keras.utils.set_random_seed(0)
    cnn = make_mnist_cnn()
    cnn.fit(images[2000:], y[2000:], batch_size=64, epochs=epochs[0], verbose=verbose)
    autoencoder = make_mnist_autoencoder()
    autoencoder.fit(images[2000:], images[2000:], batch_size=128, epochs=epochs[1],
                    verbose=verbose)
    if paths is not None:
        cnn.save(paths[0])
        autoencoder.save(paths[1])
    return X, y, cnn, autoencoder
