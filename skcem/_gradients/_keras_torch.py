"""The torch engine of Keras models: ``torch.func.vjp`` of ``model.stateless_call``.

Imported only when a Keras model runs on torch (see
:func:`skcem._gradients._keras.keras_engine`); the engine itself is
:mod:`._keras_stateless`, this module says how torch differentiates. Nothing is compiled:
torch runs eagerly, without recording a graph outside the function transforms.
"""

import functools
import re

import numpy as np
import torch
import torch.func

from .._array_api import ArrayPlace, namespace
from ._keras import as_numpy
from ._keras_stateless import StatelessAutoencoder, StatelessBackend
from ._torch_threads import search_threads


class TorchAutodiff:
    """Function transforms and conversions of torch, as :mod:`._keras_stateless` uses them.

    The gradient of the attack loss with respect to the probabilities is computed in numpy by
    :mod:`skcem.costs` (it is held fixed, so nothing is lost to autodiff), on the float32
    probabilities. Tensors go to the device Keras computes on.
    """

    name = "torch"
    integer_dtype = np.int64  # torch's class indices

    @staticmethod
    def values(variables):
        return [variable.value.detach() for variable in variables]

    @staticmethod
    def compile(function):
        @functools.wraps(function)
        def without_graph(*args):
            with torch.no_grad():  # torch.func transforms inside differentiate all the same
                return function(*args)
        return without_graph

    @staticmethod
    def vjp(function, x):
        try:
            return torch.func.vjp(function, x)
        except RuntimeError as exc:
            lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip()  # Keras's bold
                     for line in str(exc).splitlines() if "storage" in line or "functorch" in line]
            if not lines:
                raise
            # a layer whose operations torch.func cannot transform (IntegerLookup's)
            raise RuntimeError(
                "The Keras model cannot be differentiated on the torch backend: a layer's "
                f"operation fails under torch.func ({lines[0]}). Run "
                "Keras on TensorFlow (KERAS_BACKEND=tensorflow), or pass a function of the "
                "rows that returns its probabilities (numerical gradients).") from exc

    @staticmethod
    def grad(function, argnums=0, has_aux=False):
        return torch.func.grad(function, argnums=argnums, has_aux=has_aux)

    @staticmethod
    def vmap(function, in_axes):
        """``torch.func.vmap``; one example at a time where a layer's operation has no
        batching rule (:func:`~skcem._gradients._torch.vmap_or_loop`)."""
        from ._torch import vmap_or_loop

        return vmap_or_loop(function, in_axes)

    def cotangent(self, loss, proba, target_onehot):
        """The gradient of ``loss`` with respect to the probabilities, held fixed."""
        return self.tensor(loss.gradient(self.numpy(proba), self.numpy(target_onehot)))

    @staticmethod
    def padded_size(n):
        return int(n)

    @staticmethod
    def device(variables):
        """The device of a model with these weights: theirs, else Keras's default."""
        import keras

        return variables[0].value.device if variables else \
            keras.ops.convert_to_tensor(np.zeros(0)).device

    @staticmethod
    def array_place(variables):
        """Where the search runs for a model with these weights: float64 tensors on their
        device (float32 on ``mps``), as for a PyTorch module."""
        device = TorchAutodiff.device(variables)
        float_dtype = torch.float32 if device.type == "mps" else torch.float64
        return ArrayPlace(namespace(torch.empty(0, device=device)), device, float_dtype)

    @staticmethod
    def tensor(array):
        import keras

        return keras.ops.convert_to_tensor(np.asarray(array))  # on Keras's device

    @staticmethod
    def padded_float32(tensor, size):
        return tensor.to(torch.float32)  # torch runs any batch size as it comes

    @staticmethod
    def cast(tensor, dtype):
        return tensor.to(dtype)

    @staticmethod
    def numpy(tensor):
        return as_numpy(tensor)


AUTODIFF = TorchAutodiff()


class KerasAutoencoder(StatelessAutoencoder):
    """``||AE(z) - z||^2`` per row and its gradient, by ``torch.func.vjp``."""

    autodiff = AUTODIFF


class KerasBackend(StatelessBackend):
    """The optimizer's questions to a Keras classifier on torch (see
    :class:`._keras_stateless.StatelessBackend`)."""

    autodiff = AUTODIFF

    def search_threads(self, n_numbers):
        """The PyTorch threads of a search over ``n_numbers`` numbers (see
        :mod:`._torch_threads`): a context manager."""
        return search_threads(n_numbers, AUTODIFF.device(self.model.trainable_variables))

    def predict_proba(self, Z):
        with self.search_threads(Z.size):
            return super().predict_proba(Z)
