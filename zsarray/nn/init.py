"""Weight initializers: functions of a shape and an explicit ``rng`` returning a NumPy array.

Weights are laid out ``[fan_in, fan_out]`` (``y = x @ W + b``), so for a 2-D shape
``fan_in = shape[0]`` and ``fan_out = shape[1]``; for more dimensions (a kernel
laid out ``[..., in, out]``) both are multiplied by the receptive field size
``prod(shape[:-2])``. Formulas follow ``torch.nn.init`` (Glorot & Bengio, 2010;
He et al., 2015). Arrays are made on the host; move a module with
``Module.to("gpu")``.

>>> rng = np.random.default_rng(0)                           # doctest: +SKIP
>>> W = kaiming_uniform((784, 500), rng, a=math.sqrt(5))
"""
import math

import numpy as np

__all__ = ["calculate_gain", "fans", "zeros", "ones", "normal", "uniform", "xavier_uniform",
           "xavier_normal", "glorot_uniform", "glorot_normal", "kaiming_uniform",
           "kaiming_normal"]


def _rng(rng):
    """A ``numpy.random.Generator`` from a Generator or an int seed."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(rng)
    raise TypeError(f"rng: expected an int seed or a numpy.random.Generator, got "
                    f"{type(rng).__name__}")


def _shape(shape):
    return (int(shape),) if np.ndim(shape) == 0 else tuple(int(s) for s in shape)


def fans(shape):
    """``(fan_in, fan_out)`` of a weight of ``shape`` laid out ``[..., in, out]``.

    Raises
    ------
    ValueError
        For shapes with fewer than 2 dimensions.
    """
    shape = _shape(shape)
    if len(shape) < 2:
        raise ValueError(f"fans: a weight shape needs at least 2 dimensions [in, out], got "
                         f"{shape}")
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def calculate_gain(nonlinearity, param=None):
    """Recommended gain for a nonlinearity, as ``torch.nn.init.calculate_gain``.

    Parameters
    ----------
    nonlinearity : str
        One of ``linear, identity, sigmoid, tanh, relu, leaky_relu, selu``.
    param : float, optional
        Negative slope of ``leaky_relu`` (default 0.01).
    """
    if nonlinearity in ("linear", "identity", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unknown nonlinearity {nonlinearity!r}; expected one of "
                     f"linear, identity, sigmoid, tanh, relu, leaky_relu, selu")


def zeros(shape, dtype=np.float32):
    """An array of zeros of ``shape``."""
    return np.zeros(_shape(shape), dtype=dtype)


def ones(shape, dtype=np.float32):
    """An array of ones of ``shape``."""
    return np.ones(_shape(shape), dtype=dtype)


def normal(shape, rng, mean=0.0, std=1.0, dtype=np.float32):
    """Draws from ``N(mean, std^2)`` of ``shape``."""
    if std < 0:
        raise ValueError(f"normal: std must be >= 0, got {std!r}")
    return _rng(rng).normal(mean, std, _shape(shape)).astype(dtype, copy=False)


def uniform(shape, rng, low=0.0, high=1.0, dtype=np.float32):
    """Draws from ``U(low, high)`` of ``shape``."""
    if not low <= high:
        raise ValueError(f"uniform: need low <= high, got low={low!r}, high={high!r}")
    return _rng(rng).uniform(low, high, _shape(shape)).astype(dtype, copy=False)


def xavier_uniform(shape, rng, gain=1.0, dtype=np.float32):
    """Glorot uniform: ``U(-a, a)`` with ``a = gain * sqrt(6 / (fan_in + fan_out))``."""
    fan_in, fan_out = fans(shape)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform(shape, rng, -a, a, dtype)


def xavier_normal(shape, rng, gain=1.0, dtype=np.float32):
    """Glorot normal: ``N(0, std^2)`` with ``std = gain * sqrt(2 / (fan_in + fan_out))``."""
    fan_in, fan_out = fans(shape)
    return normal(shape, rng, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), dtype)


glorot_uniform = xavier_uniform
glorot_normal = xavier_normal


def _kaiming_std(shape, a, mode, nonlinearity):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = fans(shape)
    fan = fan_in if mode == "fan_in" else fan_out
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform(shape, rng, a=0.0, mode="fan_in", nonlinearity="leaky_relu",
                    dtype=np.float32):
    """He uniform: ``U(-b, b)`` with ``b = gain * sqrt(3 / fan)``.

    ``gain = calculate_gain(nonlinearity, a)``. With ``a = sqrt(5)`` (PyTorch's
    ``Linear`` default) ``b = 1 / sqrt(fan_in)``.

    Parameters
    ----------
    shape : tuple of int
        ``[fan_in, fan_out]`` (or ``[..., in, out]``).
    rng : int or numpy.random.Generator
    a : float
        Negative slope of the leaky ReLU that follows.
    mode : {"fan_in", "fan_out"}
        Preserve the variance of the forward (fan_in) or backward (fan_out) pass.
    nonlinearity : str
        See :func:`calculate_gain`.
    """
    bound = math.sqrt(3.0) * _kaiming_std(shape, a, mode, nonlinearity)
    return uniform(shape, rng, -bound, bound, dtype)


def kaiming_normal(shape, rng, a=0.0, mode="fan_in", nonlinearity="leaky_relu",
                   dtype=np.float32):
    """He normal: ``N(0, std^2)`` with ``std = gain / sqrt(fan)`` (see :func:`kaiming_uniform`)."""
    return normal(shape, rng, 0.0, _kaiming_std(shape, a, mode, nonlinearity), dtype)
