"""Convolution layers on NCHW images: ``Conv2d``, ``ConvTranspose2d``, ``MaxPool2d``,
``AvgPool2d``, ``Flatten``, ``Dropout``, and residual blocks (``Residual``,
``BasicBlock``).

Weights follow PyTorch's layout (``Conv2d``: ``[out, in / groups, kh, kw]``,
``ConvTranspose2d``: ``[in, out / groups, kh, kw]``) and its default initialization
(``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` for weights and biases), so a state dict maps
one to one. The ops are :func:`autodiff.conv2d` and friends.
"""
import math

import numpy as np

import autodiff as ad

from . import init
from .layers import _positive_int, get_activation
from .module import Module
from .norm import BatchNorm2d

__all__ = ["Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d", "Flatten", "Dropout",
           "Residual", "BasicBlock"]


def _pair(v):
    return (int(v), int(v)) if np.ndim(v) == 0 else tuple(int(a) for a in v)


def _uniform_param(shape, fan_in, rng, dtype):
    bound = 1 / math.sqrt(fan_in)
    return ad.tensor(init.uniform(shape, rng, -bound, bound, dtype), requires_grad=True)


class _ConvBase(Module):
    def _init(self, name, in_channels, out_channels, kernel_size, groups, bias, dtype, rng,
              w_shape):
        self.in_channels = _positive_int(name, "in_channels", in_channels)
        self.out_channels = _positive_int(name, "out_channels", out_channels)
        self.groups = _positive_int(name, "groups", groups)
        for what, n in (("in_channels", self.in_channels), ("out_channels", self.out_channels)):
            if n % self.groups:
                raise ValueError(f"{name}: {what}={n} is not divisible by groups={groups}")
        self.kernel_size = _pair(kernel_size)
        if min(self.kernel_size) < 1:
            raise ValueError(f"{name}: kernel_size must be positive, got {kernel_size!r}")
        rng = np.random.default_rng() if rng is None else init._rng(rng)
        fan_in = w_shape[1] * self.kernel_size[0] * self.kernel_size[1]
        self.weight = _uniform_param(w_shape + self.kernel_size, fan_in, rng, dtype)
        self.bias = _uniform_param((self.out_channels,), fan_in, rng, dtype) if bias else None

    def _check(self, name, x):
        shape = tuple(getattr(x, "shape", np.shape(x)))
        if len(shape) != 4 or shape[1] != self.in_channels:
            raise ValueError(f"{name}: input x has shape {shape}, expected [N, "
                             f"{self.in_channels}, H, W]")


class Conv2d(_ConvBase):
    """2-D convolution ``y = conv2d(x, weight) + bias`` (see :func:`autodiff.conv2d`).

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size, stride, padding, dilation : int or (int, int)
    groups : int
        Divides both channel counts.
    bias : bool
    dtype : numpy dtype
        float32 (default) or float64.
    rng : int or numpy.random.Generator, optional
        Source of the initial weights; ``None`` draws fresh OS entropy.

    Attributes
    ----------
    weight : Tensor, shape ``[out_channels, in_channels / groups, kh, kw]``
    bias : Tensor, shape ``[out_channels]``, or None

    Shapes: ``[N, in_channels, H, W] -> [N, out_channels, Ho, Wo]`` with
    ``Ho = (H + 2 padding - dilation (kh - 1) - 1) // stride + 1``.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, dtype=np.float32, rng=None):
        g = int(groups)
        self._init("Conv2d", in_channels, out_channels, kernel_size, groups, bias, dtype, rng,
                   (int(out_channels), int(in_channels) // max(g, 1)))
        self.stride, self.padding, self.dilation = _pair(stride), _pair(padding), _pair(dilation)

    def forward(self, x):
        self._check("Conv2d", x)
        return ad.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                         self.groups)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
                f"groups={self.groups}, bias={self.bias is not None}")


class ConvTranspose2d(_ConvBase):
    """2-D transposed convolution (see :func:`autodiff.conv_transpose2d`): the adjoint
    of a ``Conv2d(out_channels, in_channels, ...)``, used to upsample.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size, stride, padding, output_padding, dilation : int or (int, int)
    groups : int
    bias : bool
    dtype : numpy dtype
    rng : int or numpy.random.Generator, optional

    Attributes
    ----------
    weight : Tensor, shape ``[in_channels, out_channels / groups, kh, kw]``
    bias : Tensor, shape ``[out_channels]``, or None

    Shapes: ``[N, in_channels, H, W] -> [N, out_channels, Ho, Wo]`` with
    ``Ho = (H - 1) stride - 2 padding + dilation (kh - 1) + output_padding + 1``.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, dtype=np.float32,
                 rng=None):
        g = int(groups)
        self._init("ConvTranspose2d", in_channels, out_channels, kernel_size, groups, bias,
                   dtype, rng, (int(in_channels), int(out_channels) // max(g, 1)))
        self.stride, self.padding, self.dilation = _pair(stride), _pair(padding), _pair(dilation)
        self.output_padding = _pair(output_padding)

    def forward(self, x):
        self._check("ConvTranspose2d", x)
        return ad.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding,
                                   self.output_padding, self.dilation, self.groups)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, "
                f"output_padding={self.output_padding}, groups={self.groups}")


class MaxPool2d(Module):
    """Maximum over windows (:func:`autodiff.max_pool2d`); ``stride`` defaults to
    ``kernel_size``. Shapes: ``[N, C, H, W] -> [N, C, Ho, Wo]``."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1):
        self.kernel_size, self.stride = kernel_size, stride
        self.padding, self.dilation = padding, dilation

    def forward(self, x):
        return ad.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(Module):
    """Mean over windows (:func:`autodiff.avg_pool2d`, zero padding counted);
    ``stride`` defaults to ``kernel_size``. Shapes: ``[N, C, H, W] -> [N, C, Ho, Wo]``."""

    def __init__(self, kernel_size, stride=None, padding=0):
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x):
        return ad.avg_pool2d(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class Flatten(Module):
    """Merge the axes from ``start_dim`` on: ``[N, C, H, W] -> [N, C * H * W]`` (default
    ``start_dim=1``)."""

    def __init__(self, start_dim=1):
        self.start_dim = int(start_dim)

    def forward(self, x):
        shape = tuple(getattr(x, "shape", np.shape(x)))
        if not 0 <= self.start_dim < max(len(shape), 1):
            raise ValueError(f"Flatten: start_dim={self.start_dim} is out of range for an "
                             f"input of shape {shape}")
        return ad.reshape(x, shape[:self.start_dim] + (-1,))

    def extra_repr(self):
        return f"start_dim={self.start_dim}"


class Dropout(Module):
    """Zero elements with probability ``p`` in training mode (scaling the rest by
    ``1 / (1 - p)``); the identity in evaluation mode (:meth:`Module.eval`). Shapes: any,
    unchanged.

    Parameters
    ----------
    p : float in [0, 1)
    rng : int or numpy.random.Generator
        The generator the masks are drawn from (an int seeds a new one); required, so
        that no hidden global generator is used.
    """

    def __init__(self, p=0.5, rng=None):
        if not 0.0 <= float(p) < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p!r}")
        if rng is None:
            raise TypeError("Dropout: pass rng (an int seed or a numpy.random.Generator); "
                            "the masks are drawn from it")
        self.p = float(p)
        self.rng = init._rng(rng)

    def forward(self, x):
        return ad.dropout(x, self.p, self.rng, training=self.training)

    def extra_repr(self):
        return f"p={self.p}"


class Residual(Module):
    """``activation(body(x) + shortcut(x))``: a residual connection around any module.

    Parameters
    ----------
    body : Module or callable
        Must keep the shape of ``shortcut(x)``.
    shortcut : Module or callable, optional
        The identity when None (then ``body`` must keep the shape of ``x``).
    activation : str or callable, optional
        Applied after the sum (see :func:`~zsarray.nn.layers.get_activation`).
    """

    def __init__(self, body, shortcut=None, activation=None):
        self.body, self.shortcut = body, shortcut
        self.activation = get_activation(activation, "Residual activation")

    def forward(self, x):
        y = self.body(x)
        s = x if self.shortcut is None else self.shortcut(x)
        if tuple(y.shape) != tuple(getattr(s, "shape", np.shape(s))):
            raise ValueError(f"Residual: body gives shape {tuple(y.shape)} but the shortcut "
                             f"{tuple(getattr(s, 'shape', np.shape(s)))}")
        y = y + s
        return y if self.activation is None else self.activation(y)


class BasicBlock(Residual):
    """The ResNet basic block: ``relu(bn(conv3x3(relu(bn(conv3x3(x))))) + shortcut(x))``,
    where the shortcut is the identity, or a strided 1x1 convolution and batch norm when
    the stride or the channel count changes. Shapes: ``[N, in_channels, H, W] -> [N,
    out_channels, Ho, Wo]`` with ``Ho = (H - 1) // stride + 1``.

    Parameters
    ----------
    in_channels, out_channels : int
    stride : int
        Of the first convolution (2 halves the image).
    dtype : numpy dtype
    rng : int or numpy.random.Generator, optional
    """

    def __init__(self, in_channels, out_channels, stride=1, dtype=np.float32, rng=None):
        rng = np.random.default_rng() if rng is None else init._rng(rng)
        from .layers import Sequential, ReLU
        body = Sequential(
            Conv2d(in_channels, out_channels, 3, stride, 1, bias=False, dtype=dtype, rng=rng),
            BatchNorm2d(out_channels, dtype=dtype), ReLU(),
            Conv2d(out_channels, out_channels, 3, 1, 1, bias=False, dtype=dtype, rng=rng),
            BatchNorm2d(out_channels, dtype=dtype))
        shortcut = None
        if stride != 1 or in_channels != out_channels:
            shortcut = Sequential(
                Conv2d(in_channels, out_channels, 1, stride, bias=False, dtype=dtype, rng=rng),
                BatchNorm2d(out_channels, dtype=dtype))
        super().__init__(body, shortcut, "relu")
