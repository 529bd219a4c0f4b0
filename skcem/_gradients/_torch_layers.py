"""The search's forward passes on a CPU: some PyTorch calls answered by faster equivalents.

Inside :class:`FasterLayers`, ``conv2d`` calls from or to one channel take the paths of
:mod:`._torch_convolutions`, and a max pooling of a ReLU's output pools before the ReLU
(:mod:`._torch_pooling`); every other call is PyTorch's own. The user's module is not
touched: only the functions it calls are answered differently, with PyTorch's values.
"""

import torch
from torch.overrides import TorchFunctionMode

from ._torch_convolutions import single_channel_convolution
from ._torch_pooling import MAX_POOLS, RELUS, ReLUThenMaxPool


class FasterLayers(TorchFunctionMode):
    """A ``TorchFunctionMode`` for one forward pass (it remembers that pass's last ReLU)."""

    def __init__(self):
        super().__init__()
        self._pooling = ReLUThenMaxPool()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.conv2d:
            try:
                answer = single_channel_convolution(*args, **kwargs)
            except TypeError:  # arguments of another form: PyTorch's own call says what
                answer = None
            if answer is not None:
                return answer
        elif func in RELUS:
            return self._pooling.relu(func, args, kwargs)
        elif func in MAX_POOLS:
            answer = self._pooling.max_pool(func, args, kwargs)
            if answer is not None:
                return answer
        return func(*args, **kwargs)
