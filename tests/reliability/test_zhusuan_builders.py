"""Issue 16: ZhuSuan-style builders (no ``observed`` argument) work with
``@zs.meta_bayesian_net`` and ``.observe`` through a context variable, per thread and
per asyncio task; the explicit ``observed=`` style keeps working."""
import asyncio

import numpy as np
import pytest

import zsarray as zs
from tests.threads import run_in_threads


@zs.meta_bayesian_net(scope="model")
def zhusuan_style(n):
    bn = zs.BayesianNet()
    z = bn.normal("z", np.zeros(n), std=1.0, group_ndims=1)
    bn.normal("x", z, std=0.5, group_ndims=1)
    return bn


@zs.meta_bayesian_net(scope="model")
def explicit_style(n, observed=None):
    bn = zs.BayesianNet(observed)
    z = bn.normal("z", np.zeros(n), std=1.0, group_ndims=1)
    bn.normal("x", z, std=0.5, group_ndims=1)
    return bn


def log_joint_by_hand(z, x):
    def normal(v, s):
        return np.sum(-0.5 * (v / s) ** 2 - np.log(s) - 0.5 * np.log(2 * np.pi))
    return normal(z, 1.0) + normal(x - z, 0.5)


@pytest.mark.parametrize("builder", [zhusuan_style, explicit_style])
def test_both_styles_observe(builder):
    z, x = np.array([0.3, -1.0]), np.array([0.1, 0.2])
    bn = builder(2).observe(z=z, x=x)
    assert bn["z"].is_observed() and bn["x"].is_observed()
    np.testing.assert_allclose(float(bn.log_joint().data), log_joint_by_hand(z, x), rtol=1e-12)
    np.testing.assert_allclose(float(bn.observe(x=x + 1).log_joint().data),
                               log_joint_by_hand(z, x + 1), rtol=1e-12)


def test_observations_do_not_leak_out_of_observe():
    zhusuan_style(2).observe(z=np.zeros(2), x=np.zeros(2))
    bn = zs.BayesianNet()                      # outside observe(): nothing observed
    assert bn.observed == {}
    assert not zhusuan_style(2).observe()["z"].is_observed()


def test_unknown_observation_is_named():
    with pytest.raises(ValueError, match="'zz'; did you mean 'z'"):
        zhusuan_style(2).observe(zz=np.zeros(2))


def test_threads_each_see_their_own_observations():
    model = zhusuan_style(3)

    def work(k):
        for i in range(30):
            z, x = np.full(3, k + 0.01 * i), np.full(3, -k * 0.5)
            bn = model.observe(z=z, x=x)
            got = float(bn.log_joint().data)
            assert got == pytest.approx(log_joint_by_hand(z, x), rel=1e-12), (k, i)
    run_in_threads(work, n=8)


def test_asyncio_tasks_each_see_their_own_observations():
    model = zhusuan_style(2)

    async def one(k):
        z = np.full(2, float(k))
        await asyncio.sleep(0)
        # the builder runs inside observe; interleave tasks between observe calls
        bn = model.observe(z=z, x=z * 0)
        await asyncio.sleep(0)
        return float(bn.log_joint().data), log_joint_by_hand(z, z * 0)

    async def main():
        return await asyncio.gather(*[one(k) for k in range(10)])

    for got, want in asyncio.run(main()):
        assert got == pytest.approx(want, rel=1e-12)


def test_zhusuan_style_model_runs_under_nuts():
    rng = np.random.default_rng(1)
    x = rng.normal(size=2)
    res = zs.NUTS().sample(zhusuan_style(2), {"x": x}, latent={"z": None}, n_chains=2,
                           n_samples=400, n_warmup=300, progress=False, rng=2)
    # conjugate: z | x ~ N(x / (1 + 0.25), 0.25 / 1.25)
    post_mean, post_sd = x / 1.25, np.sqrt(0.2)
    draws = res.draws["z"].reshape(-1, 2)
    mcse = post_sd / np.sqrt(200)              # conservative: ESS >= 200 of 800 draws
    assert np.all(np.abs(draws.mean(axis=0) - post_mean) < 5 * mcse)
