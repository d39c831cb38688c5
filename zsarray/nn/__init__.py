"""Neural-network building blocks on the autodiff tape: ``Module``, layers, initializers.

>>> import zsarray as zs                                      # doctest: +SKIP
>>> net = zs.nn.MLP([784, 500, 500, 40], activation="relu", rng=0)
>>> logits = net(x)                       # x: [batch, 784] -> logits: [batch, 40]
>>> net.save("net.npz"); net.load("net.npz")

Images are NCHW: ``Conv2d`` / ``ConvTranspose2d`` / pools / ``BatchNorm2d`` take
``[N, C, H, W]`` (convolution weights in PyTorch's layout), ``Flatten`` turns them into
``[N, C * H * W]`` for ``Linear``; ``train()`` / ``eval()`` switch ``Dropout`` and the
batch norms, whose running statistics are buffers in the state dict.

Linear weights are ``[in, out]`` (``y = x @ W + b``); parameters are found by attribute
(see :class:`Module`), so any class holding Tensors with ``requires_grad=True`` is
a model that :mod:`zsarray.optim` can train.
"""
from . import init
from .module import Module
from .layers import (Linear, Sequential, MLP, ReLU, Tanh, Sigmoid, Softplus, LeakyReLU, ELU,
                     Identity, leaky_relu, elu, identity, get_activation)
from .norm import BatchNorm1d, BatchNorm2d, LayerNorm
from .conv import (Conv2d, ConvTranspose2d, MaxPool2d, AvgPool2d, Flatten, Dropout, Residual,
                   BasicBlock)

__all__ = ["init", "Module", "Linear", "Sequential", "MLP", "ReLU", "Tanh", "Sigmoid",
           "Softplus", "LeakyReLU", "ELU", "Identity", "leaky_relu", "elu", "identity",
           "get_activation", "BatchNorm1d", "BatchNorm2d", "LayerNorm", "Conv2d",
           "ConvTranspose2d", "MaxPool2d", "AvgPool2d", "Flatten", "Dropout", "Residual",
           "BasicBlock"]
