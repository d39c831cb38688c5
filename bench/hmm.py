"""A 2-state Gaussian hidden Markov model, the benchmark of compiled log densities.

posteriordb's ``hmm_example`` model: ``K = 2`` states, transition rows ``theta[k]``
(simplices), state means ``mu`` positive and ordered, ``y[t] ~ Normal(mu[z_t], 1)``,
priors ``mu[1] ~ Normal(3, 1)``, ``mu[2] ~ Normal(10, 1)``; the states are summed out by
the forward algorithm. Here on ``N = 100`` observations simulated with a fixed seed.
Unconstrained coordinates ``u = (logit theta[1][1], logit theta[2][1], log mu[1],
log(mu[2] - mu[1]))``, log-Jacobians included.

Three writings of the same log density over ``[C, 4]`` positions:

* :func:`hmm_loop`: the forward algorithm as a Python loop (100 recorded steps);
* :func:`hmm_scan`: the same recursion with :func:`autodiff.scan`;
* :func:`jax_hmm`: the JAX twin for one chain (``lax.scan``), vmapped by the benchmark.
"""
import numpy as np

import autodiff as ad

__all__ = ["Y", "N", "hmm_loop", "hmm_scan", "jax_hmm", "jax_hmm_loop"]

N = 100


def _simulate(n, seed=42):
    rng = np.random.default_rng(seed)
    a = np.array([[0.9, 0.1], [0.2, 0.8]])
    z = [0]
    for _ in range(n - 1):
        z.append(rng.choice(2, p=a[z[-1]]))
    return np.array([3.0, 10.0])[z] + rng.normal(size=n)


Y = _simulate(N)


def _parts(u):
    """Means [C, 2], log transition matrices [C, 2, 2], the prior and Jacobian [C]."""
    mu1 = ad.exp(u[:, 2])
    mu2 = mu1 + ad.exp(u[:, 3])
    mu = ad.stack([mu1, mu2], axis=1)
    p1, p2 = ad.sigmoid(u[:, 0]), ad.sigmoid(u[:, 1])
    log_a = ad.log(ad.stack([ad.stack([p1, 1.0 - p1], axis=1),
                             ad.stack([p2, 1.0 - p2], axis=1)], axis=1))
    prior = -0.5 * ad.square(mu1 - 3.0) - 0.5 * ad.square(mu2 - 10.0)
    jac = (u[:, 2] + u[:, 3] + ad.log_sigmoid(u[:, 0]) + ad.log_sigmoid(-u[:, 0])
           + ad.log_sigmoid(u[:, 1]) + ad.log_sigmoid(-u[:, 1]))
    return mu, log_a, prior + jac


def hmm_loop(u):
    """``[C, 4] -> [C]``, forward algorithm as a Python loop."""
    mu, log_a, rest = _parts(u)
    emit = -0.5 * ad.square(Y[None, :, None] - mu[:, None, :])       # [C, N, 2]
    alpha = emit[:, 0, :]
    for t in range(1, N):
        alpha = ad.logsumexp(alpha[:, :, None] + log_a, axis=1) + emit[:, t, :]
    return ad.logsumexp(alpha, axis=1) + rest


def hmm_scan(u):
    """``[C, 4] -> [C]``, forward algorithm with :func:`autodiff.scan`."""
    mu, log_a, rest = _parts(u)
    emit = -0.5 * ad.square(Y[:, None, None] - mu[None, :, :])       # [N, C, 2]

    def step(alpha, e):
        return ad.logsumexp(alpha[:, :, None] + log_a, axis=1) + e, None
    alpha, _ = ad.scan(step, emit[0], emit[1:])
    return ad.logsumexp(alpha, axis=1) + rest


def _jax_parts(u):
    import jax
    import jax.numpy as jnp
    mu1 = jnp.exp(u[2])
    mu2 = mu1 + jnp.exp(u[3])
    mu = jnp.stack([mu1, mu2])
    p1, p2 = jax.nn.sigmoid(u[0]), jax.nn.sigmoid(u[1])
    log_a = jnp.log(jnp.stack([jnp.stack([p1, 1 - p1]), jnp.stack([p2, 1 - p2])]))
    prior = -0.5 * (mu1 - 3.0) ** 2 - 0.5 * (mu2 - 10.0) ** 2
    jac = (u[2] + u[3] + jax.nn.log_sigmoid(u[0]) + jax.nn.log_sigmoid(-u[0])
           + jax.nn.log_sigmoid(u[1]) + jax.nn.log_sigmoid(-u[1]))
    emit = -0.5 * (jnp.asarray(Y)[:, None] - mu[None, :]) ** 2       # [N, 2]
    return emit, log_a, prior + jac


def jax_hmm(u):
    """The JAX twin for one chain, ``[4] -> scalar`` (``lax.scan``)."""
    import jax
    emit, log_a, rest = _jax_parts(u)

    def step(alpha, e):
        return jax.nn.logsumexp(alpha[:, None] + log_a, axis=0) + e, None
    alpha, _ = jax.lax.scan(step, emit[0], emit[1:])
    return jax.nn.logsumexp(alpha) + rest


def jax_hmm_loop(u):
    """The JAX twin with the loop written out (unrolled when traced by ``jax.jit``)."""
    import jax
    emit, log_a, rest = _jax_parts(u)
    alpha = emit[0]
    for t in range(1, N):
        alpha = jax.nn.logsumexp(alpha[:, None] + log_a, axis=0) + emit[t]
    return jax.nn.logsumexp(alpha) + rest
