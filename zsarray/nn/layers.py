"""Layers: ``Linear``, ``Sequential``, ``MLP`` and activation modules on autodiff ops.

Weights are laid out ``[in_features, out_features]`` and a linear layer computes
``x @ W + b``, so a batch ``x`` of shape ``[..., in]`` maps to ``[..., out]`` with
no transpose. Inputs may be Tensors or raw arrays; outputs are Tensors.
"""
import math

import numpy as np

import autodiff as ad

from . import init
from .module import Module

__all__ = ["Linear", "Sequential", "MLP", "ReLU", "Tanh", "Sigmoid", "Softplus", "LeakyReLU",
           "ELU", "Identity", "leaky_relu", "elu", "identity", "get_activation"]


# ------------------------------------------------------------------ activations
def identity(x):
    """Return ``x`` unchanged."""
    return x


def leaky_relu(x, negative_slope=0.01):
    """``x`` where ``x > 0``, else ``negative_slope * x`` (any shape; one op,
    :func:`autodiff.leaky_relu`)."""
    return ad.leaky_relu(x, negative_slope=negative_slope)


def elu(x, alpha=1.0):
    """``x`` where ``x > 0``, else ``alpha * (exp(x) - 1)`` (any shape).

    The exponential branch sees ``min(x, 0)`` through a ``where`` on a raw mask, so
    large positive inputs neither overflow nor send ``0 * inf = nan`` into the
    gradient.
    """
    pos = x > 0
    return ad.where(pos, x, ad.expm1(ad.where(pos, 0.0, x)) * alpha)


class _Activation(Module):
    """An elementwise activation as a module (no parameters); shape ``[...] -> [...]``."""

    fn = staticmethod(identity)

    def forward(self, x):
        return type(self).fn(x)


class Identity(_Activation):
    """``x -> x``."""


class ReLU(_Activation):
    """``max(x, 0)``."""
    fn = staticmethod(ad.relu)


class Tanh(_Activation):
    """``tanh(x)``."""
    fn = staticmethod(ad.tanh)


class Sigmoid(_Activation):
    """``1 / (1 + exp(-x))``."""
    fn = staticmethod(ad.sigmoid)


class Softplus(_Activation):
    """``log(1 + exp(x))``."""
    fn = staticmethod(ad.softplus)


class LeakyReLU(Module):
    """``x`` if ``x > 0`` else ``negative_slope * x``.

    Parameters
    ----------
    negative_slope : float
    """

    def __init__(self, negative_slope=0.01):
        self.negative_slope = negative_slope

    def forward(self, x):
        return leaky_relu(x, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class ELU(Module):
    """``x`` if ``x > 0`` else ``alpha * (exp(x) - 1)`` (Clevert et al., 2016).

    Parameters
    ----------
    alpha : float
    """

    def __init__(self, alpha=1.0):
        self.alpha = alpha

    def forward(self, x):
        return elu(x, self.alpha)

    def extra_repr(self):
        return f"alpha={self.alpha}"


_ACTIVATIONS = {"relu": ad.relu, "tanh": ad.tanh, "sigmoid": ad.sigmoid,
                "softplus": ad.softplus, "leaky_relu": leaky_relu, "elu": elu,
                "identity": identity, "linear": identity}


def get_activation(spec, argname="activation"):
    """Resolve an activation given by name (``"relu"``, ``"tanh"``, ...) or a callable.

    ``None`` gives ``None``. Names: ``relu, tanh, sigmoid, softplus, leaky_relu, elu,
    identity, linear``.

    Raises
    ------
    ValueError
        For an unknown name. TypeError: for anything neither a str nor callable.
    """
    if spec is None or callable(spec):
        return spec
    if isinstance(spec, str):
        if spec not in _ACTIVATIONS:
            raise ValueError(f"{argname}: unknown activation {spec!r}; expected one of "
                             f"{sorted(_ACTIVATIONS)} or a callable")
        return _ACTIVATIONS[spec]
    raise TypeError(f"{argname}: expected an activation name or a callable, got "
                    f"{type(spec).__name__}")


# ----------------------------------------------------------------------- layers
def _positive_int(owner, name, value):
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive integer, got {value!r}")
    return int(value)


class Linear(Module):
    """Affine map ``y = x @ weight + bias``.

    Parameters
    ----------
    in_features, out_features : int
        Sizes of the last axis of the input and of the output.
    bias : bool
        Whether to add a learned bias.
    dtype : numpy dtype
        float32 (default) or float64.
    rng : int or numpy.random.Generator, optional
        Source of the initial weights; ``None`` draws fresh OS entropy.

    Attributes
    ----------
    weight : Tensor, shape ``[in_features, out_features]``
        PyTorch's default init: Kaiming uniform with ``a = sqrt(5)``, i.e.
        ``U(-1/sqrt(in_features), 1/sqrt(in_features))``.
    bias : Tensor, shape ``[out_features]``, or None
        ``U(-1/sqrt(in_features), 1/sqrt(in_features))``.

    Shapes: input ``[..., in_features]`` -> output ``[..., out_features]``.
    """

    def __init__(self, in_features, out_features, bias=True, dtype=np.float32, rng=None):
        self.in_features = _positive_int("Linear", "in_features", in_features)
        self.out_features = _positive_int("Linear", "out_features", out_features)
        rng = np.random.default_rng() if rng is None else init._rng(rng)
        w = init.kaiming_uniform((self.in_features, self.out_features), rng, a=math.sqrt(5),
                                 dtype=dtype)
        self.weight = ad.tensor(w, requires_grad=True)
        self.bias = None
        if bias:
            bound = 1 / math.sqrt(self.in_features)
            self.bias = ad.tensor(init.uniform(self.out_features, rng, -bound, bound, dtype),
                                  requires_grad=True)

    def forward(self, x):
        shape = getattr(x, "shape", None)
        if shape is None:
            x = np.asarray(x, dtype=self.weight.dtype)
            shape = x.shape
        if len(shape) == 0 or shape[-1] != self.in_features:
            raise ValueError(f"Linear: input x has shape {tuple(shape)}, expected "
                             f"[..., {self.in_features}]")
        return ad.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Sequential(Module):
    """Apply modules (or any callables) one after another.

    Parameters
    ----------
    *modules : Module or callable
        Parameters are discovered in the ``Module`` s, named ``layers.<i>.<name>``.
    """

    def __init__(self, *modules):
        for i, m in enumerate(modules):
            if not callable(m):
                raise TypeError(f"Sequential: argument {i} is not callable "
                                f"({type(m).__name__})")
        self.layers = list(modules)

    def forward(self, x):
        for m in self.layers:
            x = m(x)
        return x

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    def __iter__(self):
        return iter(self.layers)


class MLP(Module):
    """Multilayer perceptron: ``Linear`` layers with an activation between them.

    Parameters
    ----------
    sizes : sequence of int
        ``[in, hidden_1, ..., out]`` (at least two sizes).
    activation : str or callable
        Applied after every layer but the last (see :func:`get_activation`).
    output_activation : str or callable, optional
        Applied after the last layer.
    bias : bool
    dtype : numpy dtype
    rng : int or numpy.random.Generator, optional
        One generator initializes all layers in order.

    Notes
    -----
    Shapes: input ``[..., sizes[0]]`` -> output ``[..., sizes[-1]]``.
    """

    def __init__(self, sizes, activation="relu", output_activation=None, bias=True,
                 dtype=np.float32, rng=None):
        sizes = list(sizes)
        if len(sizes) < 2:
            raise ValueError(f"MLP: sizes needs at least [in, out], got {sizes}")
        sizes = [_positive_int("MLP", f"sizes[{i}]", s) for i, s in enumerate(sizes)]
        rng = np.random.default_rng() if rng is None else init._rng(rng)
        self.sizes = sizes
        self.layers = [Linear(m, n, bias=bias, dtype=dtype, rng=rng)
                       for m, n in zip(sizes[:-1], sizes[1:])]
        self.activation = get_activation(activation, "MLP activation")
        if self.activation is None:
            raise ValueError("MLP: activation must not be None (use 'identity')")
        self.output_activation = get_activation(output_activation, "MLP output_activation")

    def forward(self, x):
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < last:
                x = self.activation(x)
        return x if self.output_activation is None else self.output_activation(x)

    def extra_repr(self):
        return f"sizes={self.sizes}"
