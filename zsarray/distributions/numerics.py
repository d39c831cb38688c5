"""Edge-safe numerics shared by the log-densities: the limits at 0, 1 and infinity.

A log-density written naively hits ``0 * log 0``, ``inf - inf`` or ``inf / inf`` at the
edges of its support or at infinite parameters, and returns NaN where the mathematical
limit exists. Each helper here computes one such expression with its limit built in,
with the *double where* pattern: the unsafe input is replaced by a harmless value
before the unsafe op, so that neither the value nor the gradient (the VJP of the
branch that ``where`` discards still runs, with a zero cotangent) can become
``0 * inf = NaN``.

Every function takes Tensors or arrays and returns a Tensor; masks are autodiff
primitives (``ad.equal``, ``ad.greater``), so :func:`autodiff.trace` replays them.

Conventions (shared by every distribution):

* a value outside the support has log-probability ``-inf`` (with ``validate_args=True``
  it raises instead); at points of the closed support where the density is 0 or
  infinite the limit is returned (``-inf`` / ``+inf``);
* gradients are finite wherever the log-probability is finite; where it is ``-inf``
  because the value is outside the support or infinite, gradients are 0.
"""
import autodiff as ad

__all__ = ["xlogy", "xlog1my", "xmul_log", "log1p_over", "lgamma_half_ratio",
           "logistic_log_density", "lbeta"]


def xlogy(a, x):
    """``a * log(x)``, 0 where ``a == 0`` (also at ``x == 0``: Gamma(1) and Beta(1, .)
    are finite at 0)."""
    zero = ad.equal(a, 0)
    return ad.where(zero, 0.0, a * ad.log(ad.where(zero, 1.0, x)))


def xlog1my(a, x):
    """``a * log(1 - x)``, 0 where ``a == 0``."""
    zero = ad.equal(a, 0)
    return ad.where(zero, 0.0, a * ad.log1p(-ad.where(zero, 0.0, x)))


def xmul_log(w, logq):
    """``w * logq`` given ``logq = log q`` (possibly ``-inf``), 0 where ``w == 0``:
    the ``q log q``, ``x log p`` and ``p log(p/q)`` terms of entropies, count
    likelihoods and KL divergences."""
    zero = ad.equal(w, 0)
    return ad.where(zero, 0.0, w * ad.where(zero, 0.0, logq))


def log1p_over(t):
    """``log1p(t) / t``, 1 at ``t == 0`` (its limit); for ``t >= 0``."""
    zero = ad.equal(t, 0)
    ts = ad.where(zero, 1.0, t)
    return ad.where(zero, 1.0, ad.log1p(ts) / ts)


#: Above this x, :func:`lgamma_half_ratio` uses its asymptotic series (error < 1e-17).
_HALF_RATIO_SERIES_FROM = 100.0


def lgamma_half_ratio(x):
    """``lgamma(x + 1/2) - lgamma(x) - log(x) / 2`` for ``x > 0``, including ``x = inf``
    (where it is 0).

    Computed directly below x = 100 and by its asymptotic series
    ``-1/(8x) + 1/(192 x^3) - 1/(640 x^5)`` above, where the direct difference of two
    large lgamma values loses its digits (and is ``inf - inf`` at infinity). StudentT's
    normalizer is this at ``x = df / 2``, so df -> inf gives the Normal."""
    big = ad.greater(x, _HALF_RATIO_SERIES_FROM)
    xd = ad.where(big, 1.0, x)
    direct = ad.lgamma(xd + 0.5) - ad.lgamma(xd) - 0.5 * ad.log(xd)
    inv = 1.0 / ad.where(big, x, _HALF_RATIO_SERIES_FROM)
    inv2 = ad.square(inv)
    series = inv * (-1.0 / 8 + inv2 * (1.0 / 192 - inv2 / 640))
    return ad.where(big, series, direct)


def logistic_log_density(z):
    """Log-density of the standard logistic at ``z``, ``-|z| - 2 softplus(-|z|)`` (the
    density is symmetric), which is ``-inf`` at both infinities instead of
    ``inf - inf``."""
    a = ad.abs(z)
    return -a - 2 * ad.softplus(-a)


def lbeta(a, b):
    """``log B(a, b)``."""
    return ad.lgamma(a) + ad.lgamma(b) - ad.lgamma(a + b)



def guarded(inside, x, safe, fn, outside):
    """``fn(x)`` where ``inside``, ``outside`` elsewhere, with ``fn`` evaluated at
    ``safe`` outside (the double where): for a formula with a singular point on the
    boundary of the support, e.g. LogNormal's ``log x`` at ``x = 0``."""
    return ad.where(inside, fn(ad.where(inside, x, safe)), outside)


def digamma_half_term(x):
    """``(x + 1/2) (digamma(x + 1/2) - digamma(x))`` for ``x > 0``, including
    ``x = inf`` (where it is 1/2): directly below x = 100, above by the series
    ``1/2 + 1/(4x) + (1 + 1/(2x)) (1/(8x) - 1/(64 x^3) + 1/(128 x^5))`` (the derivative
    of :func:`lgamma_half_ratio`'s, error < 1e-16). StudentT's entropy at x = df / 2."""
    big = ad.greater(x, _HALF_RATIO_SERIES_FROM)
    xd = ad.where(big, 1.0, x)
    direct = (xd + 0.5) * (ad.digamma(xd + 0.5) - ad.digamma(xd))
    inv = 1.0 / ad.where(big, x, _HALF_RATIO_SERIES_FROM)
    inv2 = ad.square(inv)
    series = (0.5 + 0.25 * inv
              + (1 + 0.5 * inv) * inv * (1.0 / 8 + inv2 * (-1.0 / 64 + inv2 / 128)))
    return ad.where(big, series, direct)
