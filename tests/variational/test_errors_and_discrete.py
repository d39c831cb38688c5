"""Every error path of zs.variational, and score-function estimators on a discrete latent."""
import numpy as np
import pytest

import autodiff as ad
import zsarray as zs
import zsarray.variational as zv
from zsarray import distributions as zd


@zs.meta_bayesian_net()
def gauss(observed=None):
    bn = zs.BayesianNet(observed)
    z = bn.normal("z", 0.0, std=1.0)
    bn.normal("x", z.tensor, std=1.0)
    return bn


@zs.meta_bayesian_net()
def gauss_studentt_prior(observed=None):
    bn = zs.BayesianNet(observed)
    bn.stochastic("z", zd.StudentT(3.0, 0.0, 1.0))
    return bn


@zs.meta_bayesian_net()
def coin(observed=None):
    """z ~ Bernoulli(sigmoid(-0.8)) with no data."""
    bn = zs.BayesianNet(observed)
    bn.bernoulli("z", -0.8)
    return bn


def q_normal(n=4, seed=0, shape=()):
    q = zs.BayesianNet(rng=seed)
    q.normal("z", np.zeros(shape), std=1.0, n_samples=n)
    return q


def overridden():
    m = gauss()
    m.log_joint = lambda bn: bn.cond_log_prob("z") + bn.cond_log_prob("x")
    return m


def q_extra():
    q = q_normal()
    q.normal("zz", 0.0, std=1.0, n_samples=4)
    return q


def q_bad_shapes():
    q = q_normal()
    q.normal("zz", np.zeros(3), std=1.0, n_samples=5)
    return q


def q_bernoulli(n=4):
    q = zs.BayesianNet(rng=0)
    q.bernoulli("z", 0.0, n_samples=n)
    return q


def q_observed_only():
    q = zs.BayesianNet({"z": 1.0})
    q.normal("z", 0.0, std=1.0)
    return q


def _elbo(**kw):
    args = dict(model=gauss(), observed={"x": 1.0}, variational=q_normal(), axis=0)
    args.update(kw)
    return zv.elbo(**args)


CASES = [
    # (callable, exception, message regex)
    (lambda: _elbo(model=3), TypeError, "model must be a zs.MetaBayesianNet"),
    (lambda: _elbo(observed=[1.0]), TypeError, "observed must be a dict"),
    (lambda: _elbo(variational=None), TypeError, "variational= is required"),
    (lambda: _elbo(variational=gauss()), TypeError, "variational must be a zs.BayesianNet"),
    (lambda: _elbo(variational=zs.BayesianNet()), ValueError, "has no latent"),
    (lambda: _elbo(variational=q_observed_only()), ValueError, "has no latent"),
    (lambda: _elbo(observed={"x": 1.0, "z": 0.0}), ValueError, "both observed and latent"),
    (lambda: _elbo(axis=0.5), TypeError, "axis must be an int"),
    (lambda: _elbo(variational=q_extra()).tensor, ValueError,
     "never creates a node named 'zz'"),
    (lambda: _elbo(observed={}).tensor, ValueError,
     r"model node\(s\) \['x'\] are neither observed nor latent"),
    (lambda: _elbo(variational=q_bad_shapes(), model=lambda v: v["z"]).tensor, ValueError,
     "log q.z. terms do not have the same axes"),
    (lambda: _elbo(model=lambda v: ad.sum(v["z"]) * np.ones(3)).tensor, ValueError,
     "do not have the same axes"),
    (lambda: _elbo(axis=1).tensor, ValueError, "axis=1 is out of range"),
    (lambda: _elbo(variational=q_bernoulli(), model=coin(), observed={}).sgvb(), ValueError,
     "not reparameterized"),
    (lambda: zv.iw_objective(coin(), {}, variational=q_bernoulli(), axis=0).sgvb(),
     ValueError, "not reparameterized"),
    (lambda: _elbo(model=lambda v: v["z"], analytic_kl=True), TypeError,
     "must be a MetaBayesianNet"),
    (lambda: _elbo(model=overridden(), analytic_kl=True), ValueError,
     "overrides log_joint"),
    (lambda: _elbo(model=gauss_studentt_prior(), observed={}, analytic_kl=True),
     NotImplementedError, r"no closed form registered for KL\(Normal \|\| StudentT\)"),
    (lambda: _elbo(analytic_kl=True).sgvb(path_derivative=True), ValueError,
     "use one or the other"),
    (lambda: _elbo().reinforce(decay=1.0, state=zv.ReinforceState()), ValueError,
     r"decay must be in \[0, 1\)"),
    (lambda: _elbo().reinforce(variance_reduction=False, baseline=np.zeros(())), ValueError,
     "pass variance_reduction=True"),
    (lambda: _elbo().reinforce(), ValueError, "needs state="),
    (lambda: _elbo().reinforce(state={"moving_mean": 0.0}), TypeError,
     "state must be a ReinforceState"),
    (lambda: _elbo().reinforce(baseline=np.zeros(3), state=zv.ReinforceState()), ValueError,
     "baseline of shape"),
    (lambda: zv.iw_objective(gauss(), {"x": 1.0}, variational=q_normal()), ValueError,
     "axis is required"),
    (lambda: zv.iw_objective(gauss(), {"x": 1.0}, variational=q_normal(1), axis=0).vimco(),
     ValueError, "needs K >= 2"),
    (lambda: zv.klpq(gauss(), {"x": 1.0}, variational=q_normal()), ValueError,
     "axis is required"),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_error_paths(case):
    fn, exc, match = CASES[case]
    with pytest.raises(exc, match=match):
        fn()


def test_reinforce_and_vimco_on_a_bernoulli_latent():
    # ELBO = -KL(Bern(sigmoid(t)) || Bern(sigmoid(-0.8))); d cost / dt = d KL / dt.
    t0, c = 0.4, -0.8
    pi, pc = 1 / (1 + np.exp(-t0)), 1 / (1 + np.exp(-c))
    dkl = pi * (1 - pi) * (np.log(pi / pc) - np.log((1 - pi) / (1 - pc)))
    model, state = coin(), zv.ReinforceState()

    def cost(t, seed):
        q = zs.BayesianNet(rng=seed)
        q.bernoulli("z", t, n_samples=5000)
        return zv.elbo(model, {}, variational=q, axis=0).reinforce(state=state)

    g = np.array([float(ad.grad(cost)(np.array(t0), s)) for s in range(20)])
    assert abs(g.mean() - dkl) < 4 * g.std(ddof=1) / np.sqrt(20)

    def vimco(t, seed):                 # K = 4 particles, 2000 replicates
        q = zs.BayesianNet(rng=seed)
        q.bernoulli("z", t * np.ones(2000), n_samples=4)
        return zv.iw_objective(model, {}, variational=q, axis=0).vimco()

    gv = np.array([float(ad.grad(vimco)(np.array(t0), s)) for s in range(10)])
    # exact d L_4 / dt by enumerating the 2^4 outcomes
    def l4(t):
        p = 1 / (1 + np.exp(-t))
        tot = 0.0
        for bits in np.ndindex(2, 2, 2, 2):
            b = np.array(bits)
            prob = np.prod(np.where(b == 1, p, 1 - p))
            lw = np.where(b == 1, np.log(pc / p), np.log((1 - pc) / (1 - p)))
            tot += prob * np.log(np.mean(np.exp(lw)))
        return tot
    exact = -(l4(t0 + 1e-6) - l4(t0 - 1e-6)) / 2e-6
    assert abs(gv.mean() - exact) < 4 * gv.std(ddof=1) / np.sqrt(10) + 1e-9
