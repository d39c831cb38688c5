"""Finite-difference gradient checks by random projection (as HIPS autograd's)."""
import numpy as np

from . import backend
from .core import Tensor, value_and_grad

__all__ = ["check_grads"]


def check_grads(fun, *args, order=1, eps=1e-6, rtol=1e-5, atol=1e-6, rng=0):
    """Check the reverse-mode gradients of ``fun`` at ``args`` by central differences.

    For random directions ``v_x`` (one per argument) and a random output cotangent
    ``v_y``, compares ``<v_x, grad <v_y, fun(x)>>`` with the central difference
    ``(<v_y, f(x + eps v_x)> - <v_y, f(x - eps v_x)>) / (2 eps)``: one scalar per
    check instead of a full Jacobian. Use float64 inputs.

    Parameters
    ----------
    fun : callable
        Takes Tensors for each of ``args`` and returns a Tensor of any shape.
    *args : arrays
        Floating-point NumPy/CuPy arrays (all are differentiated).
    order : int
        Only 1 is supported (autodiff records first-order VJPs only).
    rng : int or numpy.random.Generator
        Seed of the random directions.

    Raises
    ------
    AssertionError
        When the two numbers differ by more than ``atol + rtol * |fd|``.
    """
    if order != 1:
        raise NotImplementedError("check_grads: only order=1 is supported; autodiff does not "
                                  "differentiate its own VJPs (nested grad is unsupported)")
    rng = np.random.default_rng(rng)
    args = [a.astype(float) if np.asarray(a).dtype.kind in "biu" else a
            for a in (a.data if isinstance(a, Tensor) else a for a in args)]
    xp = backend.get_array_module(*args)
    y = fun(*args)
    y = y.data if isinstance(y, Tensor) else y
    v_y = xp.asarray(rng.standard_normal(np.shape(y)))
    v_x = [xp.asarray(rng.standard_normal(np.shape(a))) for a in args]

    def scalar(*xs):
        out = fun(*xs)
        return (out * v_y).sum()

    _, grads = value_and_grad(scalar, argnums=tuple(range(len(args))))(*args)
    analytic = float(sum((g * v).sum() for g, v in zip(grads, v_x)))
    plus = scalar(*[a + eps * v for a, v in zip(args, v_x)])
    minus = scalar(*[a - eps * v for a, v in zip(args, v_x)])
    plus = float(plus.data if isinstance(plus, Tensor) else plus)
    minus = float(minus.data if isinstance(minus, Tensor) else minus)
    numeric = (plus - minus) / (2 * eps)
    if not abs(analytic - numeric) <= atol + rtol * abs(numeric):
        raise AssertionError(f"check_grads: reverse-mode directional derivative {analytic!r} "
                             f"differs from finite differences {numeric!r} "
                             f"(eps={eps}, rtol={rtol}, atol={atol})")
    return analytic, numeric
