"""Neural-network building blocks on the autodiff tape: ``Module``, layers, initializers.

>>> import zsarray as zs                                      # doctest: +SKIP
>>> net = zs.nn.MLP([784, 500, 500, 40], activation="relu", rng=0)
>>> logits = net(x)                       # x: [batch, 784] -> logits: [batch, 40]
>>> net.save("net.npz"); net.load("net.npz")

Weights are ``[in, out]`` (``y = x @ W + b``); parameters are found by attribute
(see :class:`Module`), so any class holding Tensors with ``requires_grad=True`` is
a model that :mod:`zsarray.optim` can train.
"""
from . import init
from .module import Module
from .layers import (Linear, Sequential, MLP, ReLU, Tanh, Sigmoid, Softplus, LeakyReLU, ELU,
                     Identity, leaky_relu, elu, identity, get_activation)

__all__ = ["init", "Module", "Linear", "Sequential", "MLP", "ReLU", "Tanh", "Sigmoid",
           "Softplus", "LeakyReLU", "ELU", "Identity", "leaky_relu", "elu", "identity",
           "get_activation"]
