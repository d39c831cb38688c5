"""Optimizers, gradient clipping and learning-rate schedules for autodiff Tensors.

Update rules and schedules follow PyTorch's ``torch.optim`` exactly; each update is
one fused Numba kernel per parameter (CPU ``njit`` for NumPy arrays, CUDA ``jit`` for
CuPy arrays), applied in place.

>>> import zsarray as zs                                     # doctest: +SKIP
>>> opt = zs.optim.Adam(model.parameters(), lr=1e-3)
>>> sched = zs.optim.CosineAnnealingLR(opt, T_max=100)
"""
from .optimizers import (Optimizer, SGD, Adam, Adamax, RMSprop, clip_grad_norm_,
                         clip_grad_value_)
from .schedules import LRScheduler, StepLR, ExponentialLR, CosineAnnealingLR, LambdaLR

__all__ = ["Optimizer", "SGD", "Adam", "Adamax", "RMSprop", "clip_grad_norm_",
           "clip_grad_value_", "LRScheduler", "StepLR", "ExponentialLR", "CosineAnnealingLR",
           "LambdaLR"]
