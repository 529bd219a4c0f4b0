"""Faster CPU paths for two kinds of ``conv2d`` call in the search's forward passes.

oneDNN, PyTorch's CPU convolution library, is slow where one side of a convolution has a
single channel: the input gradient of a convolution *from* one channel (a grayscale image's
first layer: 2.3 ms against 0.5 ms here for 64 2x2 filters on 32 MNIST images, one thread) and
the forward pass of a convolution *to* one channel (an auto-encoder's last layer: 1.1 ms
against 0.3 ms for 16 channels, 3x3, 28x28). Inside :class:`~._torch_layers.FasterLayers`
these calls take matrix products over all the pixels of the batch instead. The values are
PyTorch's up to float rounding. Only the input is differentiated: the paths apply where the
kernels and bias require no gradient (the search passes detached copies), and the input is
4-D.
"""

import torch
from torch import nn
from torch.autograd.function import once_differentiable


def _pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def _explicit_padding(padding, kernel_size, dilation):
    """``conv2d``'s ``padding`` as a pair of numbers, or None for a ``"same"`` that has no
    symmetric equivalent (an even kernel)."""
    if padding == "valid":
        return (0, 0)
    if padding != "same":
        return _pair(padding)
    spans = [d * (k - 1) for d, k in zip(_pair(dilation), kernel_size)]
    if any(span % 2 for span in spans):
        return None
    return tuple(span // 2 for span in spans)


class _FromOneChannel(torch.autograd.Function):
    """``conv2d`` of a one-channel input; its input gradient is the kernels times the
    output gradient, one product over all pixels, folded back onto the image."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation):
        ctx.save_for_backward(weight)
        ctx.geometry = (tuple(x.shape[-2:]), stride, padding, dilation)
        return torch.conv2d(x, weight, bias, stride, padding, dilation)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        (weight,) = ctx.saved_tensors
        size, stride, padding, dilation = ctx.geometry
        n, c_out, h, w = grad.shape
        kh, kw = weight.shape[-2:]
        kernel = weight.reshape(c_out, kh * kw)
        if grad.is_contiguous(memory_format=torch.channels_last):
            # (kh kw, c_out) @ (c_out, n h w): this orientation is several times faster.
            rows = grad.permute(0, 2, 3, 1).reshape(n * h * w, c_out)
            patches = (kernel.t() @ rows.t()).reshape(kh * kw, n, h * w).permute(1, 0, 2)
        else:
            patches = kernel.t() @ grad.reshape(n, c_out, h * w)
        grad_x = nn.functional.fold(patches, size, (kh, kw), dilation=dilation,
                                    padding=padding, stride=stride)
        return grad_x, None, None, None, None, None


def _to_one_channel(x, weight, bias, padding):
    """``conv2d`` (stride and dilation 1) of a channels-last ``x`` to one channel: each
    pixel's channels times the kernel's taps, one product over all pixels, then the taps'
    shifted planes summed."""
    n, c = x.shape[:2]
    kh, kw = weight.shape[-2:]
    ph, pw = padding
    padded = nn.functional.pad(x, (pw, pw, ph, ph)) if ph or pw else x
    hp, wp = padded.shape[-2:]
    rows = padded.permute(0, 2, 3, 1).reshape(n * hp * wp, c)
    taps = (weight.reshape(c, kh * kw).t() @ rows.t()).reshape(kh * kw, n, hp, wp)
    h, w = hp - kh + 1, wp - kw + 1
    out = taps[0, :, :h, :w].clone()
    for tap in range(1, kh * kw):
        i, j = divmod(tap, kw)
        out += taps[tap, :, i:i + h, j:j + w]
    if bias is not None:
        out += bias
    return out.unsqueeze(1)


class _ToOneChannel(torch.autograd.Function):
    """:func:`_to_one_channel`, whose input gradient is PyTorch's."""

    @staticmethod
    def forward(ctx, x, weight, bias, padding):
        ctx.save_for_backward(weight)
        ctx.geometry = (tuple(x.shape), padding)
        return _to_one_channel(x, weight, bias, padding)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        (weight,) = ctx.saved_tensors
        shape, padding = ctx.geometry
        grad_x = torch.nn.grad.conv2d_input(shape, weight, grad, padding=padding)
        return grad_x, None, None, None


def single_channel_convolution(input, weight, bias=None, stride=1, padding=0, dilation=1,
                               groups=1):
    """``conv2d`` by one of this module's paths when one applies, else None."""
    constants = not weight.requires_grad and (bias is None or not bias.requires_grad)
    if groups != 1 or input.dim() != 4 or not constants:
        return None
    if isinstance(padding, str) and padding == "same" and _pair(stride) != (1, 1):
        return None
    padding = _explicit_padding(padding, tuple(weight.shape[-2:]), dilation)
    if padding is None:
        return None
    if (weight.shape[0] == 1 and _pair(stride) == (1, 1) and _pair(dilation) == (1, 1)
            and input.is_contiguous(memory_format=torch.channels_last)):
        if input.requires_grad and torch.is_grad_enabled():
            return _ToOneChannel.apply(input, weight, bias, padding)
        return _to_one_channel(input, weight, bias, padding)
    if weight.shape[1] == 1 and input.requires_grad and torch.is_grad_enabled():
        return _FromOneChannel.apply(input, weight, bias, stride, padding, dilation)
    return None
