"""Sampler-free checks of the posteriordb log densities (and of autodiff on them).

The reference draws come from the target, so the gradient ``g`` of the log density on the
unconstrained space satisfies the Stein identities, for every coordinate j,

    E[g_j(u)] = 0,        E[(u_j - E u_j) g_j(u)] = -1.

With the ~10000 nearly independent reference draws the standardised errors
``z = (sample mean - expected) / (sample std / sqrt(n))`` are ~N(0, 1); a wrong prior,
likelihood term, Jacobian or gradient rule gives |z| in the tens or hundreds (see the
posteriordb README). Also checked: transforms round-trip, batched evaluation equals
per-chain evaluation, and gradients match finite differences.
"""
import numpy as np
import pytest

import autodiff as ad

from .models import MODELS, POSTERIORS, garch_sigma2_reference, load_draws

Z_MAX = 4.5
#: Draws per gradient call: bounds the [chunk, N] temporaries (N up to 5000 observations).
CHUNK = 2500


def _unconstrained_draws(name):
    x, _, _ = load_draws(name)
    return MODELS[name].to_unconstrained(x)


def stein_z(u, g):
    """Standardised errors of the two Stein identities.

    Parameters
    ----------
    u, g : ndarray, shape [n, dim]
        Draws and the log-density gradient at them.

    Returns
    -------
    z_mean, z_cov : ndarray, shape [dim]
        z of E[g_j] = 0 and of E[(u_j - mean u_j) g_j] = -1.
    """
    n = u.shape[0]
    h = (u - u.mean(axis=0)) * g
    z_mean = g.mean(axis=0) / (g.std(axis=0, ddof=1) / np.sqrt(n))
    z_cov = (h.mean(axis=0) + 1.0) / (h.std(axis=0, ddof=1) / np.sqrt(n))
    return z_mean, z_cov


def _value_and_grad(name, u):
    """Log density [n] and gradient [n, dim] at u [n, dim], in chunks of CHUNK draws."""
    vg = ad.value_and_grad(lambda v: ad.sum(MODELS[name].logdensity(v)))
    lds, grads = [], []
    for start in range(0, u.shape[0], CHUNK):
        chunk = u[start:start + CHUNK]
        with ad.no_grad():
            lds.append(np.asarray(MODELS[name].logdensity(chunk).data))
        grads.append(vg(chunk)[1])
    return np.concatenate(lds), np.concatenate(grads)


@pytest.mark.posteriordb
@pytest.mark.parametrize("name", POSTERIORS)
def test_stein_identities(name, posteriordb_root):
    u = _unconstrained_draws(name)
    assert u.shape == (10000, MODELS[name].dim)
    ld, g = _value_and_grad(name, u)
    assert np.all(np.isfinite(ld)) and np.all(np.isfinite(g)), "non-finite log density/gradient"
    z_mean, z_cov = stein_z(u, g)
    bad = [f"u[{j}]: z(E g)={z_mean[j]:+.2f}, z(E (u-m) g + 1)={z_cov[j]:+.2f}"
           for j in range(u.shape[1]) if max(abs(z_mean[j]), abs(z_cov[j])) >= Z_MAX]
    assert not bad, f"{name}: Stein identities violated (|z| >= {Z_MAX}): " + "; ".join(bad)


@pytest.mark.posteriordb
@pytest.mark.parametrize("name", POSTERIORS)
def test_transforms_round_trip(name, posteriordb_root):
    x, names, _ = load_draws(name)
    m = MODELS[name]
    assert names == m.param_names
    x = x[::97]
    u = m.to_unconstrained(x)
    assert u.shape == (x.shape[0], m.dim) and np.all(np.isfinite(u))
    np.testing.assert_allclose(m.to_reported(u), x, rtol=1e-9, atol=1e-12)


@pytest.mark.posteriordb
@pytest.mark.parametrize("name", POSTERIORS)
def test_batched_equals_single_chain(name, posteriordb_root):
    m = MODELS[name]
    u = _unconstrained_draws(name)[::1999][:5]
    batched = np.asarray(m.logdensity(u).data)
    assert batched.shape == (u.shape[0],)
    single = np.array([float(np.asarray(m.logdensity(u[i:i + 1]).data).reshape(()))
                       for i in range(u.shape[0])])
    np.testing.assert_allclose(batched, single, rtol=1e-12, atol=1e-9)
    # and the gradient of the sum is the stack of per-chain gradients
    vg = ad.value_and_grad(lambda v: ad.sum(m.logdensity(v)))
    g = vg(u)[1]
    g1 = np.concatenate([vg(u[i:i + 1])[1] for i in range(u.shape[0])])
    np.testing.assert_allclose(g, g1, rtol=1e-10, atol=1e-10)


@pytest.mark.posteriordb
@pytest.mark.parametrize("name", POSTERIORS)
def test_gradient_finite_differences(name, posteriordb_root):
    m = MODELS[name]
    u = _unconstrained_draws(name)[[11, 5003, 9998]]
    for seed in range(3):
        ad.check_grads(m.logdensity, u, rng=seed, eps=1e-6, rtol=1e-5, atol=1e-5)


@pytest.mark.posteriordb
def test_garch_scan_matches_loop(posteriordb_root):
    """The log-depth scan of the GARCH variance recursion equals the plain loop."""
    name = "garch-garch11"
    m = MODELS[name]
    x, _, _ = load_draws(name)
    x = x[::500]
    y, sigma1 = m.data["y"], m.data["sigma1"]
    sigma2 = garch_sigma2_reference(y, sigma1, *x.T)
    resid = y - x[:, :1]
    lik = -0.5 * np.sum(resid ** 2 / sigma2 + np.log(sigma2), axis=1)
    u = m.to_unconstrained(x)
    a, b, c = u[:, 1], u[:, 2], u[:, 3]
    log_sig = lambda v: -np.logaddexp(0, -v)   # noqa: E731
    jac = a + log_sig(b) + 2 * log_sig(-b) + log_sig(c) + log_sig(-c)
    np.testing.assert_allclose(np.asarray(m.logdensity(u).data), lik + jac, rtol=1e-12)
