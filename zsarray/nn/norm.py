"""Normalization layers: ``BatchNorm1d``, ``BatchNorm2d`` and ``LayerNorm``.

Batch normalization (Ioffe and Szegedy, 2015) normalizes each channel with the batch's
mean and (biased) variance in training mode and with running estimates in evaluation
mode (:meth:`Module.eval`); the running mean and (unbiased) variance are buffers, so
they are in the state dict and saved with the parameters. As PyTorch:
``running = (1 - momentum) running + momentum batch_statistic``.

The running statistics are updated from the batch's values, outside the tape. Under
:func:`autodiff.trace`/``compile`` a training-mode forward therefore reads a traced
value, which makes the recording unsafe to replay: those functions run on the tape
(correct, not faster). Evaluation mode records and compiles as usual (the buffers are
Tensors, read at every call).
"""
import numpy as np

import autodiff as ad
from autodiff import backend
from autodiff.conv import channel_affine
from autodiff.tracer import is_tracer

from .module import Module

__all__ = ["BatchNorm1d", "BatchNorm2d", "LayerNorm"]


def _normalize(x, mean, var, eps):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)


# Evaluation-mode batch norm as one op of x and the running statistics (no gradient to
# those): a traced x makes the buffers program inputs, read at every call.
_normalize_p = ad.primitive(_normalize, "batch_norm_eval")
ad.defvjp(_normalize_p, lambda ans, x, mean, var, eps:
          lambda g: g / np.sqrt(var.reshape((1, -1) + (1,) * (x.ndim - 2)) + eps),
          None, None)


def _host_value(a):
    """The concrete array behind ``a`` (reading a tracer marks its recording unsafe)."""
    return np.asarray(a) if is_tracer(a) else a


class _BatchNorm(Module):
    _buffer_names = ("running_mean", "running_var", "num_batches_tracked")
    _ndims = ()

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, dtype=np.float32):
        name = type(self).__name__
        if isinstance(num_features, bool) or int(num_features) != num_features or \
                num_features < 1:
            raise ValueError(f"{name}: num_features must be a positive int, got "
                             f"{num_features!r}")
        if not 0.0 <= float(momentum) <= 1.0:
            raise ValueError(f"{name}: momentum must be in [0, 1], got {momentum!r}")
        c = int(num_features)
        self.num_features, self.eps, self.momentum = c, float(eps), float(momentum)
        self.weight = ad.tensor(np.ones(c, dtype), requires_grad=True) if affine else None
        self.bias = ad.tensor(np.zeros(c, dtype), requires_grad=True) if affine else None
        self.running_mean = self.running_var = self.num_batches_tracked = None
        if track_running_stats:
            self.running_mean = ad.tensor(np.zeros(c, dtype))
            self.running_var = ad.tensor(np.ones(c, dtype))
            self.num_batches_tracked = ad.tensor(np.zeros((), np.int64))

    def forward(self, x):
        name = type(self).__name__
        shape = tuple(getattr(x, "shape", np.shape(x)))
        if len(shape) not in self._ndims or shape[1] != self.num_features:
            dims = " or ".join({2: "[N, C]", 3: "[N, C, L]", 4: "[N, C, H, W]"}[n]
                               for n in self._ndims)
            raise ValueError(f"{name}: input x has shape {shape}, expected {dims} with "
                             f"C = {self.num_features}")
        axes = (0,) + tuple(range(2, len(shape)))
        if self.training or self.running_mean is None:
            n = int(np.prod([shape[a] for a in axes]))
            if self.training and n < 2:
                raise ValueError(f"{name}: training needs more than one value per channel, "
                                 f"got input shape {shape}")
            mean = ad.mean(x, axis=axes, keepdims=True)
            centred = x - mean
            var = ad.mean(centred * centred, axis=axes, keepdims=True)
            if self.training and self.running_mean is not None:
                self._update(mean.data, var.data, n)
            y = centred / ad.sqrt(var + self.eps)
        else:
            y = _normalize_p(x, self.running_mean, self.running_var, self.eps)
        if self.weight is not None:
            y = channel_affine(y, self.weight, self.bias)
        return y

    def _update(self, mean, var, n):
        mean = _host_value(mean).reshape(-1)
        var = _host_value(var).reshape(-1) * (n / (n - 1))
        m = self.momentum
        for buf, new in ((self.running_mean, mean), (self.running_var, var)):
            xp = backend.get_array_module(buf.data)
            buf.data = ((1 - m) * buf.data + m * xp.asarray(new)).astype(buf.data.dtype)
        self.num_batches_tracked.data = self.num_batches_tracked.data + 1

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm1d(_BatchNorm):
    """Batch normalization over ``[N, C]`` or ``[N, C, L]`` inputs (per channel ``C``).
    Shapes: unchanged.

    Parameters
    ----------
    num_features : int
        ``C``.
    eps : float
        Added to the variance.
    momentum : float
        Weight of the new batch in the running statistics.
    affine : bool
        Learn a scale ``weight`` (ones) and shift ``bias`` (zeros), shape ``[C]``.
    track_running_stats : bool
        Keep ``running_mean`` / ``running_var`` (buffers, shape ``[C]``) and use them in
        evaluation mode; without them evaluation uses the batch's statistics.
    dtype : numpy dtype
    """
    _ndims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalization over ``[N, C, H, W]`` inputs (per channel ``C``, statistics over
    ``N, H, W``); parameters as :class:`BatchNorm1d`. Shapes: unchanged."""
    _ndims = (4,)


class LayerNorm(Module):
    """Normalize over the last axes ``normalized_shape`` of each sample (Ba et al., 2016).
    Shapes: ``[..., *normalized_shape]``, unchanged.

    Parameters
    ----------
    normalized_shape : int or tuple of int
        The trailing shape normalized over.
    eps : float
    elementwise_affine : bool
        Learn ``weight`` (ones) and ``bias`` (zeros) of shape ``normalized_shape``.
    dtype : numpy dtype
    """

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, dtype=np.float32):
        shape = (int(normalized_shape),) if np.ndim(normalized_shape) == 0 else \
            tuple(int(s) for s in normalized_shape)
        if not shape or min(shape) < 1:
            raise ValueError(f"LayerNorm: normalized_shape must be positive sizes, got "
                             f"{normalized_shape!r}")
        self.normalized_shape, self.eps = shape, float(eps)
        self.weight = self.bias = None
        if elementwise_affine:
            self.weight = ad.tensor(np.ones(shape, dtype), requires_grad=True)
            self.bias = ad.tensor(np.zeros(shape, dtype), requires_grad=True)

    def forward(self, x):
        k = len(self.normalized_shape)
        shape = tuple(getattr(x, "shape", np.shape(x)))
        if shape[len(shape) - k:] != self.normalized_shape or len(shape) < k:
            raise ValueError(f"LayerNorm: input x has shape {shape}, expected [..., "
                             f"{', '.join(map(str, self.normalized_shape))}]")
        axes = tuple(range(-k, 0))
        mean = ad.mean(x, axis=axes, keepdims=True)
        centred = x - mean
        var = ad.mean(centred * centred, axis=axes, keepdims=True)
        y = centred / ad.sqrt(var + self.eps)
        if self.weight is not None:
            y = y * self.weight + self.bias
        return y

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}"
