"""Fused reparameterized sampling and log-density of the Normal and LogNormal.

SGVB with many particles spends its time in ``z = mu + sigma * eps`` and
``log q(z) = -((z - mu)/sigma)^2/2 - log sigma - log(2 pi)/2`` over
``[n_samples] + batch + value`` arrays, and in their backward passes. On the tape these are
about eight elementwise ops forward and as many backward, each a pass over memory with
a temporary, plus the reductions that unbroadcast the parameter gradients over the
sample axis. :func:`fused_normal_sample_logprob` does the forward in one Numba kernel and
each backward in one kernel that also reduces over the samples.

Design: two primitives sharing one forward kernel
-------------------------------------------------
A primitive returns one array. Returning a stacked ``[2, ...]`` array and slicing it
would make the backward pass build two zero-filled ``[2, ...]`` cotangents (the VJP of
each slice) and add them -- three extra passes over twice the data, more than the
kernel itself costs. Instead the kernel is called once, outside the tape, and its two
outputs enter the tape through two primitives, ``_z(mu, logstd, z, ctx)`` and
``_logp(mu, logstd, logp, ctx)``, whose forward functions just return their precomputed
array (``z``, ``logp`` and ``ctx`` get no gradient) and whose VJPs are the fused backward
kernels. ``ctx`` carries the noise and ``sigma = exp(logstd)`` for the backward pass,
and computes the gradients of ``mu`` and ``logstd`` in *one* kernel call, handing each
to its argument's VJP (both VJPs of a node are called with the same cotangent).

Which derivative ``logp`` carries (``logq(z(theta), theta)``, theta = (mu, log sigma)):

* ``reparameterized=True, path_derivative=False``: the total derivative, through z
  and through the parameters (for the Normal: d/dmu = 0, d/dlog sigma = -1);
* ``path_derivative=True`` (sticking the landing, Roeder et al. 2017): only through z;
* ``reparameterized=False``: z is a constant, only through the parameters (the score
  function, as REINFORCE needs); with ``path_derivative=True`` too, no gradient.

These are exactly the gradients of the unfused tape computation
:func:`unfused_normal_sample_logprob` (tested to rounding).
"""
import math

import numpy as np

import autodiff as ad
from autodiff import backend
from autodiff.core import Tensor

from . import kernels_cpu

__all__ = ["fused_normal_sample_logprob", "unfused_normal_sample_logprob"]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)   # a Python float: keeps float32 float32


def _kernels(x):
    if backend.is_cupy(x):
        from . import kernels_cuda
        return kernels_cuda
    return kernels_cpu


class _Ctx:
    """What the backward kernels need, and a one-entry memo of their (mu, logstd) pair.
    The forward primitive fills it; the log-density primitive and the VJPs read it."""
    __slots__ = ("eps", "sigma", "z", "lp", "shape", "lognormal", "coef", "_key", "_out")

    def pair(self, which, g):
        # keyed on the output too: z and logp may receive the very same cotangent object
        if self._key is None or self._key[0] != which or self._key[1] is not g:
            self._key, self._out = (which, g), self._compute(which, g)
        return self._out

    def _compute(self, which, g):
        xp = backend.get_array_module(g)
        m = self.sigma.shape[0]
        gmu = xp.zeros(m, np.float64)
        gls = xp.zeros(m, np.float64)
        k = _kernels(g)
        # The kernels vectorize over contiguous rows. A cotangent that is the same for
        # every sample (the zero-stride VJP of a sum) is passed as one [1, M] row; any
        # other strided one is copied.
        g2 = g.reshape(self.eps.shape)
        if g2.shape[0] > 1 and g2.strides[0] == 0:
            g2 = g2[:1]
        g2 = xp.ascontiguousarray(g2)
        if which == "z":
            k.vjp_z(g2, self.z, self.sigma, self.eps, gmu, gls, self.lognormal)
        else:
            k.vjp_logp(g2, self.sigma, self.eps, gmu, gls, *self.coef, self.lognormal)
        dt = g.dtype
        return gmu.astype(dt).reshape(self.shape), gls.astype(dt).reshape(self.shape)


def _forward(mu_raw, ls_raw, eps, ctx):
    """The kernel's forward pass on raw arrays: returns z (shape of ``eps``), keeps the
    log-density and what the VJPs need in ``ctx``."""
    xp = backend.get_array_module(eps)
    batch, dt = ctx.shape, eps.dtype
    m = int(np.prod(batch, dtype=np.int64))
    flat = lambda a: xp.ascontiguousarray(xp.broadcast_to(xp.asarray(a, dt), batch)).reshape(m)
    mu_f, ls_f = flat(mu_raw), flat(ls_raw)
    sigma = xp.exp(ls_f)
    eps2 = xp.ascontiguousarray(eps).reshape(-1, m)
    z = xp.empty_like(eps2)
    lp = xp.empty_like(eps2)
    _kernels(eps).forward(mu_f, sigma, -ls_f - _HALF_LOG_2PI, eps2, z, lp, ctx.lognormal)
    ctx.eps, ctx.sigma, ctx.z, ctx.lp = eps2, sigma, z, lp.reshape(eps.shape)
    ctx._key = ctx._out = None
    return z.reshape(eps.shape)


def _stored_logp(mu, logstd, z, ctx):
    """The log-density the forward primitive computed alongside ``z`` (taking ``z`` as
    an argument keeps that dependence visible to :func:`autodiff.trace`)."""
    return ctx.lp


def _rule(which, i):
    return lambda ans, mu, logstd, other, ctx: lambda g: ctx.pair(which, g)[i]


# Two primitives over one kernel call: z (its forward runs the kernel) and log p(z)
# (reads what the kernel stored); both differentiate into (mean, logstd) through ctx.
_z = ad.primitive(_forward, "fused_normal_z")
ad.defvjp(_z, _rule("z", 0), _rule("z", 1), None, None)
_logp = ad.primitive(_stored_logp, "fused_normal_logp")
ad.defvjp(_logp, _rule("logp", 0), _rule("logp", 1), None, None)


def fused_normal_sample_logprob(mean, logstd, eps, *, lognormal=False,
                                reparameterized=True, path_derivative=False):
    """Reparameterized (log-)normal sample and its log-density in one kernel.

    Parameters
    ----------
    mean, logstd : Tensor or array
        Broadcastable to the batch shape ``B`` (their broadcast shape).
    eps : array, shape ``S + B``
        Standard normal noise (raw array; no gradient); ``S`` are sample axes (often
        ``[n_samples]``, possibly empty).
    lognormal : bool
        ``z = exp(mean + exp(logstd) * eps)`` and the log-normal density instead.
    reparameterized : bool
        Whether z carries gradients to ``mean``/``logstd`` (else z is a leaf).
    path_derivative : bool
        Whether logp drops its direct dependence on the parameters (see module doc).

    Returns
    -------
    z, logp : autodiff.Tensor, shape ``S + B``
        In the dtype of ``eps`` (cast the parameters to it first).

    Raises
    ------
    ValueError
        When ``eps`` does not end with the broadcast shape of ``mean`` and ``logstd``.
    """
    mu_raw = mean.data if type(mean) is Tensor else mean
    ls_raw = logstd.data if type(logstd) is Tensor else logstd
    batch = tuple(np.broadcast_shapes(np.shape(mu_raw), np.shape(ls_raw)))
    nb = len(batch)
    if eps.shape[eps.ndim - nb:] != batch or eps.ndim < nb:
        raise ValueError(f"fused_normal_sample_logprob: eps must have shape S + {batch} "
                         f"(the broadcast shape of mean and logstd), got {eps.shape}")
    ctx = _Ctx()
    ctx.shape, ctx.lognormal = batch, bool(lognormal)
    c_path = 1.0 if reparameterized else 0.0
    c_score = 0.0 if path_derivative else 1.0
    ctx.coef = (c_path, c_score)
    z = _z(mean, logstd, eps, ctx)
    lp = _logp(mean, logstd, z, ctx)
    if not (c_path or c_score):
        lp = ad.stop_gradient(lp)
    return (z if reparameterized else ad.stop_gradient(z)), lp


def unfused_normal_sample_logprob(mean, logstd, eps, *, lognormal=False,
                                  reparameterized=True, path_derivative=False):
    """The same computation as :func:`fused_normal_sample_logprob` with tape ops.

    The reference the fused kernels are tested and benchmarked against; the semantics
    of the flags are those of ``Normal.sample`` followed by ``Normal.log_prob``.
    """
    x = mean + ad.exp(logstd) * eps
    z = ad.exp(x) if lognormal else x
    if not reparameterized:
        z = ad.stop_gradient(z)
    if path_derivative:
        mean, logstd = ad.stop_gradient(mean), ad.stop_gradient(logstd)
    lz = ad.log(z) if lognormal else z
    u = (lz - mean) / ad.exp(logstd)
    lp = -0.5 * ad.square(u) - logstd - _HALF_LOG_2PI
    if lognormal:
        lp = lp - lz
    return z, lp
