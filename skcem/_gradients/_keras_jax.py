"""The JAX engine of Keras models: ``jax.vjp`` of ``model.stateless_call`` in ``jax.jit``.

Imported only when a Keras model runs on JAX (see
:func:`skcem._gradients._keras.keras_engine`); the engine itself is
:mod:`._keras_stateless`, this module says how JAX differentiates and compiles.
"""

import jax
import jax.numpy as jnp
import numpy as np

from .._array_api import HOST, ArrayPlace, namespace
from ._keras_stateless import StatelessAutoencoder, StatelessBackend

# The fewest rows of a compiled call: small batches all share one shape.
MIN_ROWS = 32


class JaxAutodiff:
    """Function transforms and conversions of JAX, as :mod:`._keras_stateless` uses them.

    The loss terms of :mod:`skcem.costs` run on ``jax.numpy`` inside the compiled function.
    Batches are padded with rows of zeros to a power of two, at least :data:`MIN_ROWS`:
    ``jax.jit`` compiles once per shape (seconds each), the optimizer's batches shrink as
    instances are settled, and the similarity's last batch is smaller than the others.
    """

    name = "jax"
    integer_dtype = np.int32  # JAX's default integers (int64 needs jax_enable_x64)

    @staticmethod
    def values(variables):
        return [variable.value for variable in variables]

    @staticmethod
    def compile(function):
        return jax.jit(function)

    @staticmethod
    def vjp(function, x):
        return jax.vjp(function, x)

    @staticmethod
    def grad(function, argnums=0, has_aux=False):
        return jax.grad(function, argnums=argnums, has_aux=has_aux)

    @staticmethod
    def vmap(function, in_axes):
        return jax.vmap(function, in_axes=in_axes)

    @staticmethod
    def cotangent(loss, proba, target_onehot):
        """The gradient of ``loss`` with respect to the probabilities, held fixed."""
        return jax.lax.stop_gradient(loss.gradient(proba, target_onehot, xp=jnp))

    @staticmethod
    def padded_size(n):
        return max(MIN_ROWS, 1 << max(int(n) - 1, 0).bit_length())

    @staticmethod
    def array_place(variables):
        """Where the search runs for a model with these weights: JAX arrays on their device
        (float64 where ``jax_enable_x64`` is on, else JAX's float32), shapes fixed; the host
        when that device is a CPU, whose memory JAX's arrays share and where numpy's
        operations cost less than eager JAX's."""
        devices = variables[0].value.devices() if variables else {jax.devices()[0]}
        device = next(iter(devices))
        if device.platform == "cpu":
            return HOST
        return on_jax_device(device)

    @staticmethod
    def tensor(array):
        return jnp.asarray(array)

    @staticmethod
    def padded_float32(array, size):
        """JAX ``array`` as float32, with rows of zeros up to ``size`` rows."""
        array = jnp.asarray(array, dtype=jnp.float32)
        extra = size - array.shape[0]
        return array if extra == 0 else jnp.pad(array, ((0, extra),) + ((0, 0),) * (
            array.ndim - 1))

    @staticmethod
    def cast(tensor, dtype):
        return tensor.astype(dtype)

    @staticmethod
    def numpy(tensor):
        return np.asarray(tensor)


AUTODIFF = JaxAutodiff()


def on_jax_device(device):
    """The :class:`~skcem._array_api.ArrayPlace` of JAX arrays on ``device``."""
    float_dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    return ArrayPlace(namespace(jax.device_put(jnp.zeros(0), device)), device, float_dtype,
                      fixed_shapes=True)


class KerasAutoencoder(StatelessAutoencoder):
    """``||AE(z) - z||^2`` per row and its gradient, by ``jax.vjp``."""

    autodiff = AUTODIFF


class KerasBackend(StatelessBackend):
    """The optimizer's questions to a Keras classifier on JAX (see
    :class:`._keras_stateless.StatelessBackend`)."""

    autodiff = AUTODIFF
