"""Max pooling of a ReLU's output, run as the ReLU of the pooled values.

ReLU is monotone, so ``max_pool(relu(x)) == relu(max_pool(x))`` over any windows, and the
gradients agree as well: where a window's maximum is positive, both pick the same first
maximum and pass its gradient on unchanged; where it is not, both pass 0 (PyTorch's ReLU
backward keeps the gradient where the ReLU's output is positive only). The pooled side is
several times smaller (4x for 2x2 windows), so the ReLU's backward pass, as costly as the
pooling's on a convolution's activations, shrinks with it. The ReLU's own forward pass still
runs: its output may be used elsewhere, and then its gradient flows there as before.
"""

import torch
from torch.nn import functional as F

# The out-of-place ReLU calls (an in-place one changes the pre-activations this needs).
RELUS = (F.relu, torch.relu, torch.Tensor.relu)
MAX_POOLS = (F.max_pool2d, torch.max_pool2d)


def _first(args, kwargs, name):
    return args[0] if args else kwargs.get(name)


class ReLUThenMaxPool:
    """Remembers the last ReLU of a forward pass; answers a max pooling of its output by
    :func:`relu` of the pooling of its input, where that gives gradients more cheaply."""

    def __init__(self):
        self._last = None  # (output, input, their versions) of the last ReLU

    def relu(self, func, args, kwargs):
        """``func`` (one of :data:`RELUS`) called, its output remembered."""
        output = func(*args, **kwargs)
        x = _first(args, kwargs, "input")
        inplace = kwargs.get("inplace", args[1] if len(args) > 1 else False)
        if isinstance(x, torch.Tensor) and not inplace and output is not x:
            self._last = (output, x, output._version, x._version)
        else:
            self._last = None
        return output

    def max_pool(self, func, args, kwargs):
        """``relu(func(x, ...))`` when ``func`` (one of :data:`MAX_POOLS`) pools the output
        of the last ReLU of ``x``, both unchanged since, and ``x`` is differentiated; else
        None."""
        if self._last is None or not torch.is_grad_enabled():
            return None
        output, x, output_version, x_version = self._last
        pooled = _first(args, kwargs, "input")
        if (pooled is not output or not x.requires_grad or output._version != output_version
                or x._version != x_version):
            return None
        return_indices = kwargs.get("return_indices", args[6] if len(args) > 6 else False)
        if func is F.max_pool2d and return_indices:
            return None  # the indices of a window of zeros would differ
        self._last = None
        if args:
            args = (x,) + tuple(args[1:])
        else:
            kwargs = {**kwargs, "input": x}
        return torch.relu(func(*args, **kwargs))
