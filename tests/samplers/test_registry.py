"""The kernel API as seen from outside the package: a kernel and a warmup strategy
written in this one file run through ``samplers.sample`` unchanged; kernels are pure."""
from typing import NamedTuple

import numpy as np
import pytest

import samplers
from samplers.base import HMCInfo, KernelParams
from samplers.registry import KERNELS, register_kernel

from .helpers import check_moments, normal


# ----------------------------------------------------------------- a kernel from outside
class WalkState(NamedTuple):
    position: object
    logdensity: object


class IndependentScaleWalk:
    """Gaussian random walk, one proposal scale per chain (a toy research kernel)."""

    target_accept = 0.3
    adaptation = "stan"
    step_size_name = "step_size"
    sample_defaults = {}
    extra_params = {}
    needs_grad = False

    def __init__(self, logdensity, step_size=1.0, inverse_mass=None, grad_fn=None,
                 compile=True):
        self.f = logdensity
        self.step_size = step_size
        self.logdensity = samplers.LogDensity(logdensity, compile=False)

    def params(self, position, step_size=None, inverse_mass=None):
        c, d = position.shape
        eps = np.broadcast_to(np.asarray(self.step_size if step_size is None else step_size,
                                         dtype=float), (c,)).copy()
        inv = np.ones(d) if inverse_mass is None else np.asarray(inverse_mass, dtype=float)
        return KernelParams(eps, inv, np.sqrt(inv))

    def init(self, position):
        q = np.asarray(position, dtype=float)
        return WalkState(q, self.f(q))

    def step(self, state, rng, params=None):
        params = self.params(state.position) if params is None else params
        q0, lp0 = state
        q = q0 + params.step_size[:, None] * params.mass_sqrt * rng.standard_normal(q0.shape)
        lp = self.f(q)
        a = np.exp(np.minimum(lp - lp0, 0.0))
        acc = rng.random(len(a)) < a
        c = len(a)
        new = WalkState(np.where(acc[:, None], q, q0), np.where(acc, lp, lp0))
        return new, HMCInfo(a, acc, np.zeros(c, bool), -new.logdensity,
                            np.zeros(c, np.int64), proposal=q)

    trial = step


class PerChainRobbinsMonro:
    """Each chain's log scale moves towards its own acceptance target (no pooling)."""

    def __init__(self, target_accept=0.3, rate=0.5):
        self.target, self.rate = target_accept, rate

    class State(NamedTuple):
        params: object
        t: int

    def init(self, kernel, state, rng, n_warmup, params):
        return self.State(params, 0), state

    def update(self, kernel, astate, state, info, rng):
        params, t = astate
        eps = params.step_size * np.exp(self.rate * (t + 1) ** -0.6 *
                                        (info.acceptance_rate - self.target))
        return self.State(params._replace(step_size=eps), t + 1), state

    def final(self, kernel, astate, state):
        return astate.params


def test_a_kernel_and_a_strategy_from_outside_run_through_sample():
    scales = np.array([0.5, 2.0])
    ld, _ = normal(scales)
    res = samplers.sample(ld, n_chains=8, dim=2, kernel=IndependentScaleWalk,
                          adaptation=PerChainRobbinsMonro(), n_warmup=500, n_samples=3000,
                          rng=1, progress=False)
    check_moments(res.draws, 0.0, scales ** 2)
    assert res.step_size.shape == (8,) and len(np.unique(res.step_size)) == 8   # per chain
    assert abs(res.stats["acceptance"].mean() - 0.3) < 0.05
    # and under the built-in Stan warmup, registered by name
    register_kernel("toy_walk", IndependentScaleWalk)
    try:
        res = samplers.sample(ld, n_chains=4, dim=2, kernel="toy_walk", n_warmup=500,
                              n_samples=3000, rng=2, progress=False)
        check_moments(res.draws, 0.0, scales ** 2)
        with pytest.raises(ValueError, match="already registered"):
            register_kernel("toy_walk", IndependentScaleWalk)
    finally:
        KERNELS._entries.pop("toy_walk")


def test_registry_errors():
    with pytest.raises(TypeError, match="expected a kernel class"):
        register_kernel("x", object())
    with pytest.raises(ValueError, match="unknown kernel 'nope'"):
        samplers.sample(lambda q: q.sum(1), np.zeros((2, 2)), kernel="nope")
    assert {"nuts", "hmc", "mala", "rwmh", "ghmc"} <= set(KERNELS)


# ----------------------------------------------------------------- pure kernels
@pytest.mark.parametrize("name", ["nuts", "hmc", "mala", "rwmh", "ghmc"])
def test_step_is_pure_and_takes_its_parameters(name):
    ld, g = normal(np.array([1.0, 3.0]))
    cls = KERNELS[name]
    k = cls(ld, 0.5, grad_fn=g) if name != "hmc" else cls(ld, 0.5, 5, grad_fn=g)
    x = np.random.default_rng(0).standard_normal((6, 2))
    st = k.init(x)
    before = {key: (v.copy() if isinstance(v, np.ndarray) else v)
              for key, v in vars(k).items()}
    params = k.params(x, step_size=np.linspace(0.2, 0.7, 6), inverse_mass=np.array([1., 9.]))
    s1, i1 = k.step(st, np.random.default_rng(3), params)
    s2, i2 = k.step(st, np.random.default_rng(3), params)
    for a, b in zip(s1, s2):
        np.testing.assert_array_equal(a, b)
    assert vars(k).keys() == before.keys()
    for key, v in vars(k).items():
        assert v is before[key] or np.array_equal(v, before[key]), key
    np.testing.assert_array_equal(st.position, x)              # the state is not moved
    # the parameters decide the transition: the kernel's own defaults give another one
    s3, _ = k.step(st, np.random.default_rng(3))
    assert not np.array_equal(s3.position, s1.position)
    if name != "rwmh":
        assert i1.momentum.shape == x.shape
    if name in ("hmc", "mala", "ghmc", "rwmh"):
        assert i1.proposal.shape == x.shape


def test_hmc_jittered_trajectory_lengths():
    ld, g = normal(np.ones(3))
    k = samplers.HMC(ld, 0.1, 1, grad_fn=g, trajectory_length=2.0)
    rng = np.random.default_rng(0)
    st = k.init(rng.standard_normal((4, 3)))
    n = [k.step(st, rng)[1].n_grad_evals[0] for _ in range(400)]
    # ceil(u * 2.0 / 0.1), u ~ U(0, 1]: uniform on 1..20
    assert min(n) == 1 and max(n) == 20
    assert abs(np.mean(n) - 10.5) < 1.0
    with pytest.raises(ValueError, match="trajectory_length: expected a positive"):
        samplers.HMC(ld, 0.1, 1, trajectory_length=-1.0)


def test_one_driver_for_sgmcmc_kernels():
    k = samplers.SGLD(lambda q, rng: -q, 0.01)
    x0 = np.zeros((3, 2))
    res = samplers.sample(None, x0, kernel=k, n_warmup=10, n_samples=20, rng=4, progress=False)
    ref = samplers.sample_sgmcmc(k, x0, 20, burnin=10, rng=4, progress=False)
    np.testing.assert_array_equal(res.draws, ref.draws)
    assert type(res) is type(ref) is samplers.Result
    assert set(res.stats) == {"step_size", "grad_norm", "nonfinite"} and res.stats["grad_norm"].shape == (3, 20)
    with pytest.raises(TypeError, match="already holds its target and options"):
        samplers.sample(lambda q: q.sum(1), x0, kernel=k)
    with pytest.raises(TypeError, match="already holds its target and options"):
        samplers.sample(None, x0, kernel=k, step_size=0.1)
    with pytest.raises(ValueError, match="has no parameters to tune"):
        samplers.sample(None, x0, kernel=k, adaptation="stan")
    # a built Metropolis kernel runs too, under its default warmup
    ld, g = normal(np.ones(2))
    res = samplers.sample(None, x0, kernel=samplers.MALA(ld, 0.5, grad_fn=g), n_warmup=50,
                          n_samples=20, progress=False)
    assert res.draws.shape == (3, 20, 2) and res.step_size.shape == (3,)
