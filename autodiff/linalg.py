"""Differentiable linear algebra, batched over leading axes.

``cholesky``, ``solve_triangular``, ``solve``, ``slogdet`` and ``inv`` work on
``[..., N, N]`` stacks. A stack in which some matrices are not positive definite
(``cholesky``) or singular (``solve``, ``inv``) gives NaN for those members only, as JAX
does, so that one chain of a batched sampler that proposes a bad point has that proposal
rejected while the others go on; a single matrix (no batch axis) raises
``LinAlgError`` as NumPy does. VJPs follow Murray (2016), "Differentiation of the Cholesky
decomposition", and Giles (2008), "An extended collection of matrix derivative
results for forward and reverse mode algorithmic differentiation".
"""
import numpy as np

from . import backend
from .core import defvjp, nograd_primitive, primitive
from .tracer import array_op

__all__ = ["cholesky", "solve_triangular", "solve", "slogdet", "inv"]


def _T(a):
    return np.swapaxes(a, -1, -2)


@array_op
def _trisolve(a, b, lower, trans):
    """Solve op(a) x = b for a stack of triangular ``a`` [..., N, N], ``b`` [..., N, K].

    NaN entries (a failed factorisation upstream) give NaN, not an error."""
    sl = backend.scipy_linalg(a)
    if a.ndim == 2 and b.ndim == 2:
        return sl.solve_triangular(a, b, lower=lower, trans=trans, check_finite=False)
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a = np.broadcast_to(a, batch + a.shape[-2:])
    b = np.broadcast_to(b, batch + b.shape[-2:])
    if not backend.is_cupy(a):
        return sl.solve_triangular(a, b, lower=lower, trans=trans, check_finite=False)  # SciPy >= 1.15 batches
    out = backend.get_array_module(a).empty(b.shape, dtype=np.result_type(a, b))
    for i in np.ndindex(*batch):
        out[i] = sl.solve_triangular(a[i], b[i], lower=lower, trans=trans,
                                     check_finite=False)
    return out


def _per_member(f, a, *rest):
    """``f`` on each matrix of a stack, NaN where it raises ``LinAlgError``; a single
    matrix raises."""
    la = backend.linalg(a)
    try:
        return f(a, *rest)
    except la.LinAlgError:
        if a.ndim <= 2:
            raise
    xp = backend.get_array_module(a)
    batch = np.broadcast_shapes(a.shape[:-2], *[r.shape[:-2] for r in rest if r.ndim > 1])
    a_b = xp.broadcast_to(a, batch + a.shape[-2:])
    rest_b = [xp.broadcast_to(r, batch + r.shape[-2:]) if r.ndim > 1 else r for r in rest]
    out = None
    for i in np.ndindex(*batch):
        try:
            v = f(a_b[i], *[r[i] if r.ndim > 1 else r for r in rest_b])
        except la.LinAlgError:
            continue
        if out is None:
            out = xp.full(batch + v.shape, np.nan, dtype=v.dtype)
        out[i] = v
    if out is None:
        shape = f(xp.broadcast_to(xp.eye(a.shape[-1], dtype=a.dtype), a.shape[-2:]),
                  *[r[(0,) * (r.ndim - 2)] if r.ndim > 1 else r for r in rest]).shape
        out = xp.full(batch + shape, np.nan, dtype=np.result_type(a, *rest))
    return out


@array_op
def _cholesky(a):
    """Lower Cholesky factors; NaN for the members of a stack that are not positive
    definite (see the module docstring)."""
    return _per_member(backend.linalg(a).cholesky, a)


def _phi(x):
    # lower triangle with the diagonal halved
    return np.tril(x) - 0.5 * np.tril(np.triu(x))


def _cholesky_rule(L, a):
    def vjp(g):
        p = _phi(np.matmul(_T(L), g))
        y = _trisolve(L, p, lower=True, trans=1)             # L^{-T} P
        z = _T(_trisolve(L, _T(y), lower=True, trans=1))      # L^{-T} P L^{-1}
        return 0.5 * (z + _T(z))
    return vjp


cholesky = primitive(_cholesky, "cholesky")
defvjp(cholesky, _cholesky_rule)
cholesky.__doc__ = ("cholesky(a): lower Cholesky factor of symmetric positive-definite "
                    "a [..., N, N]. The gradient is the symmetric one (a is assumed symmetric).")


def _as_matrix_rhs(a, b):
    """True when ``b`` is a stack of vectors [..., N] rather than matrices [..., N, K]."""
    return np.ndim(b) == np.ndim(a) - 1


def _solve_triangular(a, b, lower=False, trans=0):
    vec = _as_matrix_rhs(a, b)
    x = _trisolve(a, b[..., None] if vec else b, lower, _trans(trans))
    return x[..., 0] if vec else x


def _trans(trans):
    try:
        return {0: 0, 1: 1, "N": 0, "T": 1}[trans]
    except (KeyError, TypeError):
        raise ValueError(f"solve_triangular: trans must be 0, 1, 'N' or 'T', "
                         f"got {trans!r}") from None


def _tri_rule_a(x, a, b, lower=False, trans=0):
    t = _trans(trans)

    def vjp(g):
        vec = _as_matrix_rhs(a, b)
        gm, xm = (g[..., None], x[..., None]) if vec else (g, x)
        gb = _trisolve(a, gm, lower, 1 - t)
        ga = -np.matmul(gb, _T(xm)) if t == 0 else -np.matmul(xm, _T(gb))
        return np.tril(ga) if lower else np.triu(ga)
    return vjp


def _tri_rule_b(x, a, b, lower=False, trans=0):
    t = _trans(trans)

    def vjp(g):
        vec = _as_matrix_rhs(a, b)
        gb = _trisolve(a, g[..., None] if vec else g, lower, 1 - t)
        return gb[..., 0] if vec else gb
    return vjp


solve_triangular = primitive(_solve_triangular, "solve_triangular")
defvjp(solve_triangular, _tri_rule_a, _tri_rule_b)
solve_triangular.__doc__ = (
    "solve_triangular(a, b, lower=False, trans=0): x with op(a) x = b, a [..., N, N] "
    "triangular; b [..., N] (vectors, when b.ndim == a.ndim - 1) or [..., N, K].")


@array_op
def _solve(a, b):
    """``a x = b``; NaN for singular members of a stack of ``a``."""
    if np.ndim(a) > 2 and np.ndim(b) == 1:       # a vector b against every matrix
        return _per_member(lambda m: backend.linalg(m).solve(m, b), a)
    return _per_member(backend.linalg(a).solve, a, b)


def _solve_vec(b):
    return np.ndim(b) == 1   # NumPy 2 rule: b is a vector only when 1-D


def _solve_adjoint(a, b, g):
    """a^{-T} g. With a 1-D b and a stacked a, g is a stack of vectors [..., N], which
    NumPy 2's solve would read as one [N, K] matrix: solve it as columns instead."""
    if _solve_vec(b) and np.ndim(g) > 1:
        return _solve(_T(a), g[..., None])[..., 0]
    return _solve(_T(a), g)


def _solve_rule_a(x, a, b):
    def vjp(g):
        gb = _solve_adjoint(a, b, g)
        if _solve_vec(b):
            return -gb[..., :, None] * x[..., None, :]
        return -np.matmul(gb, _T(x))
    return vjp


solve = primitive(_solve, "solve")
defvjp(solve, _solve_rule_a, lambda x, a, b: lambda g: _solve_adjoint(a, b, g))
solve.__doc__ = ("solve(a, b): x with a x = b (NumPy 2 semantics: b is a vector only when "
                 "1-D, otherwise [..., N, K]).")

_logabsdet = primitive(lambda a: backend.linalg(a).slogdet(a)[1], "logabsdet")
defvjp(_logabsdet, lambda ans, a: lambda g:
       np.reshape(g, np.shape(g) + (1, 1)) * _T(_inv(a)))


_slogdet_sign = nograd_primitive(lambda a: backend.linalg(a).slogdet(a)[0], "slogdet_sign")


def slogdet(a):
    """``(sign, logabsdet)`` of a [..., N, N]; sign is a raw array, logabsdet a Tensor."""
    return _slogdet_sign(a), _logabsdet(a)


def _inv_rule(ans, a):
    return lambda g: -np.matmul(_T(ans), np.matmul(g, _T(ans)))


@array_op
def _inv(a):
    """Inverses; NaN for singular members of a stack."""
    return _per_member(backend.linalg(a).inv, a)


inv = primitive(_inv, "inv")
defvjp(inv, _inv_rule)
inv.__doc__ = "inv(a): inverse of a [..., N, N]."
