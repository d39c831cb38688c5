"""Shared pieces of the sampler tests: analytic targets, a step loop, MCSE checks."""
import numpy as np

from samplers.diagnostics import mcse

Z = 4.0  # |estimate - truth| / MCSE bound (per coordinate, fixed seeds)


def check_moments(draws, mean, var, z=Z):
    """Means and variances of ``draws [C, N, D]`` within ``z`` MCSE of the truth."""
    draws = np.asarray(draws)
    zm = np.abs(draws.mean((0, 1)) - mean) / mcse(draws)
    sq = (draws - mean) ** 2
    zv = np.abs(sq.mean((0, 1)) - var) / mcse(sq)
    assert zm.max() < z, f"means off by {zm.max():.2f} MCSE"
    assert zv.max() < z, f"variances off by {zv.max():.2f} MCSE"


def normal(scales):
    """``(logdensity, grad_fn)`` of a centred Gaussian with the given per-coordinate scales."""
    s2 = np.asarray(scales, dtype=float) ** 2
    return (lambda q: -0.5 * (q * q / s2).sum(1)), (lambda q: -q / s2)


def run(kernel, x0, n, rng, burn=0):
    """Step ``kernel`` from ``x0``; draws ``[C, n, D]`` after ``burn`` steps and the last info."""
    state = kernel.init(x0)
    out = []
    for i in range(n + burn):
        state, info = kernel.step(state, rng)
        if i >= burn:
            out.append(state.position)
    return np.stack(out, 1), info
