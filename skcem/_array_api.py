"""Where the batched search keeps its arrays: numpy on the host, or the model's own device.

A gradient backend whose model runs on another array library (a PyTorch module, possibly on a
GPU) may answer the optimizer's questions with that library's arrays, on the model's device,
and says so by its ``array_place()`` (an :class:`ArrayPlace`). The optimizer
(:mod:`skcem._fista`) then moves a batch's constants there once, iterates there, and brings
the answers back to the host once: no copy of the batch to the host and back at every
iteration. Its code is written once against the array API standard, through scikit-learn's
vendored ``array_api_compat``; numpy arrays get numpy itself, so that the host path makes the
very calls it always made.
"""

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from sklearn.externals import array_api_compat

_SCALARS = (bool, int, float, np.generic)


class _OnDevice:
    """An array namespace bound to one device: its ``minimum`` and ``maximum`` also take a
    Python scalar (the 2023.12 standard, which ``array_api_compat``'s wrappers follow, takes
    arrays only), and the arrays it creates are on that device unless told otherwise, as
    the cost terms of :mod:`skcem.costs` expect."""

    def __init__(self, xp, device):
        self._xp, self._device = xp, device

    def __getattr__(self, name):
        return getattr(self._xp, name)

    def _scalar_as_array(self, x, y):
        return self._xp.full_like(x, y) if isinstance(y, _SCALARS) else y

    def maximum(self, x, y):
        return self._xp.maximum(x, self._scalar_as_array(x, y))

    def minimum(self, x, y):
        return self._xp.minimum(x, self._scalar_as_array(x, y))

    def _created_here(name):  # noqa: N805 (a factory of methods, used in the class body)
        def create(self, *args, device=None, **kwargs):
            return getattr(self._xp, name)(*args, device=device or self._device, **kwargs)
        create.__name__ = name
        return create

    asarray = _created_here("asarray")
    arange = _created_here("arange")
    eye = _created_here("eye")
    full = _created_here("full")
    zeros = _created_here("zeros")
    ones = _created_here("ones")
    del _created_here


@lru_cache(maxsize=None)
def _bound(xp, device):
    return _OnDevice(xp, device)


def namespace(*arrays):
    """The array namespace of ``arrays`` (Python scalars and None left out): numpy itself
    when they are numpy arrays, else the library's, bound to their device."""
    arrays = [a for a in arrays if a is not None and not isinstance(a, _SCALARS)]
    if all(isinstance(a, np.ndarray) for a in arrays):
        return np
    return _bound(array_api_compat.array_namespace(*arrays),
                  array_api_compat.device(arrays[0]))


def copy(array):
    """A copy of ``array``, in its own namespace and on its own device."""
    if isinstance(array, np.ndarray):
        return array.copy()
    return namespace(array).asarray(array, copy=True)


def one_hot_like(index, n_classes, like):
    """Rows of the identity matrix picked by ``index``, in the dtype of ``like``."""
    xp = namespace(index, like)
    return xp.asarray(index[:, None] == xp.arange(n_classes), dtype=like.dtype)


def to_numpy(array):
    """``array`` as a numpy array on the host (None stays None)."""
    if array is None or isinstance(array, np.ndarray):
        return array
    return np.asarray(array_api_compat.to_device(array, "cpu"))


@dataclass(frozen=True)
class ArrayPlace:
    """An array library and a device of it: where a batch's arrays live during its search.

    ``xp`` is the library's array API namespace (numpy itself for the host), ``device`` one
    of its devices. Floating-point arrays are kept in ``float_dtype`` there (float64, as on
    the host, unless the device lacks it).
    """

    xp: object
    device: object = None
    float_dtype: object = None

    @property
    def on_host(self):
        return self.xp is np

    def asarray(self, value):
        """``value`` (a numpy array or a scalar) on this place; scalars stay scalars."""
        if value is None or self.on_host or isinstance(value, _SCALARS):
            return value
        value = np.asarray(value)
        dtype = self.float_dtype if value.dtype.kind == "f" else None
        return self.xp.asarray(value, dtype=dtype, device=self.device)


HOST = ArrayPlace(np)


def place_of(backend):
    """Where ``backend`` answers the optimizer: its ``array_place()``, else the host."""
    place = getattr(type(backend), "array_place", None)
    return HOST if place is None else backend.array_place()
