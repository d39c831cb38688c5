"""autodiff: a small reverse-mode automatic differentiation tape over NumPy/CuPy.

>>> import numpy as np, autodiff as ad
>>> f = lambda w: ad.sum(ad.log_sigmoid(X @ w))
>>> value, g = ad.value_and_grad(f)(np.zeros(3))          # doctest: +SKIP

Public contract (see DESIGN.md): :class:`Tensor`, :func:`tensor`, NumPy-named
functions, :func:`grad`, :func:`value_and_grad`, :class:`no_grad`,
:func:`primitive` + :func:`defvjp` (:func:`defvjp_argnum`) for new ops,
:func:`check_grads`, and :mod:`autodiff.backend`. Nested ``grad`` raises
:class:`NestedGradError`.

Execution: :func:`trace` records a shape-static function once (the tape run on tracers,
:mod:`autodiff.tracer`, into one :class:`~autodiff.program.Program`) and replays it;
:func:`compile` lowers the same program to a Numba-compiled machine
(:mod:`autodiff.lower`); :func:`scan` and :func:`fori_loop` keep time loops as loops.
"""
import os as _os

from . import _jitcache

_jitcache.install()       # before any cached Numba function is defined

from . import backend

if _os.environ.get("ZSARRAY_MALLOC_TUNING", "1") != "0":
    backend.tune_allocator()
from .core import (Tensor, tensor, register_tensor_like, unwrap, primitive, defvjp, defvjp_argnum,
                   nograd_primitive, VJP_RULES, grad,
                   value_and_grad, no_grad, enable_grad, is_grad_enabled, NestedGradError,
                   unbroadcast)
from .ops import *  # noqa: F401,F403
from .ops import __all__ as _ops_all
from .linalg import cholesky, solve_triangular, solve, slogdet, inv
from .conv import (conv2d, conv_transpose2d, max_pool2d, avg_pool2d, pad, dropout,
                   channel_affine, conv_output_size)
from . import operators as _operators  # noqa: F401  (binds Tensor operators)
from .check import check_grads
from .trace import trace, Traced, TracedStep, TraceWarning
from .compiler import compile, Compiled, CompiledStep, CompileWarning
from .control import scan, fori_loop

__version__ = "0.1.0"

__all__ = ["backend", "Tensor", "tensor", "register_tensor_like", "unwrap", "primitive", "defvjp", "defvjp_argnum", "nograd_primitive",
           "VJP_RULES", "grad", "value_and_grad", "no_grad", "enable_grad",
           "is_grad_enabled", "NestedGradError", "unbroadcast", "cholesky",
           "solve_triangular", "solve", "slogdet", "inv", "check_grads", "trace", "TracedStep",
           "Traced", "TraceWarning", "compile", "Compiled", "CompiledStep", "CompileWarning", "scan", "fori_loop",
           "conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d", "pad", "dropout",
           "conv_output_size", "channel_affine"] + list(_ops_all)
