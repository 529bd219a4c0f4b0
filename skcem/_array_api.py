"""Where the batched search keeps its arrays: numpy on the host, or the model's own device.

A gradient backend whose model runs on another array library (a PyTorch module, possibly on a
GPU) may answer the optimizer's questions with that library's arrays, on the model's device,
and says so by its ``array_place()`` (an :class:`ArrayPlace`). The optimizer
(:mod:`skcem._fista`) then moves a batch's constants there once, iterates there, and brings
the answers back to the host once: no copy of the batch to the host and back at every
iteration. Its code is written once against the array API standard, through scikit-learn's
vendored ``array_api_compat`` (namespaces) and ``array_api_extra`` (``at(x, rows).set(v)``
for a library whose arrays are immutable, as JAX's are; see :func:`set_rows`); numpy arrays
get numpy itself, so that the host path makes the very calls it always made.
"""

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from sklearn.externals import array_api_compat
from sklearn.externals.array_api_extra import at

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
    # Called many times per iteration: numpy's case costs a few type checks.
    others = [a for a in arrays if not isinstance(a, np.ndarray) and a is not None
              and not isinstance(a, _SCALARS)]
    if not others:
        return np
    return _bound(array_api_compat.array_namespace(*others), array_api_compat.device(others[0]))


def copy(array):
    """A copy of ``array``, in its own namespace and on its own device."""
    if isinstance(array, np.ndarray):
        return array.copy()
    return namespace(array).asarray(array, copy=True)


def bool_dtype(xp):
    """The library's boolean dtype: numpy's ``bool`` (``np.bool`` exists in numpy 1.x only
    as a deprecated alias, removed in 1.24-1.26)."""
    return bool if xp is np else xp.bool


def int_dtype(xp):
    """The library's default integer dtype (int32 for JAX unless told otherwise)."""
    return xp.asarray(0).dtype


def one_hot_like(index, n_classes, like):
    """Rows of the identity matrix picked by ``index``, in the dtype of ``like``."""
    xp = namespace(index, like)
    return xp.asarray(index[:, None] == xp.arange(n_classes), dtype=like.dtype)


def set_rows(array, rows, values):
    """``array`` with ``array[rows] = values``: in place where the library can (numpy,
    PyTorch: the common case, kept as cheap as a plain assignment), a new array where its
    arrays are immutable (JAX)."""
    if isinstance(array, np.ndarray) or array_api_compat.is_writeable_array(array):
        array[rows] = values
        return array
    return at(array, rows).set(values)


def to_numpy(array):
    """``array`` as a numpy array on the host (None stays None)."""
    if array is None or isinstance(array, np.ndarray):
        return array
    if array_api_compat.is_jax_array(array):  # numpy reads JAX arrays from any device
        array = np.array(array)  # a writeable copy
    else:
        array = np.asarray(array_api_compat.to_device(array, "cpu"))
    # The host computes in float64, whatever the device did.
    return array.astype(float) if array.dtype.kind == "f" else array


@dataclass(frozen=True)
class ArrayPlace:
    """An array library and a device of it: where a batch's arrays live during its search.

    ``xp`` is the library's array API namespace (numpy itself for the host), ``device`` one
    of its devices. Floating-point arrays are kept in ``float_dtype`` there (float64, as on
    the host, unless the device lacks it). With ``fixed_shapes`` (a library that compiles
    each operation once per shape, as JAX does) every array of a batch keeps its shape
    through the search: instances that are done are masked, not dropped, and updates are
    selections, not writes of a data-dependent set of rows.
    """

    xp: object
    device: object = None
    float_dtype: object = None
    fixed_shapes: bool = False

    @property
    def on_host(self):
        return self.xp is np

    def asarray(self, value):
        """``value`` (a numpy array or a scalar) on this place; scalars stay scalars."""
        if value is None or self.on_host or isinstance(value, _SCALARS):
            return value
        value = np.asarray(value)
        if not value.flags.writeable:
            # A read-only view (pandas' to_numpy): PyTorch warns that it cannot share it.
            value = value.copy()
        dtype = self.float_dtype if value.dtype.kind == "f" else None
        return self.xp.asarray(value, dtype=dtype, device=self.device)


HOST = ArrayPlace(np)


def place_of(backend):
    """Where ``backend`` answers the optimizer: its ``array_place()``, else the host."""
    place = getattr(type(backend), "array_place", None)
    return HOST if place is None else backend.array_place()
