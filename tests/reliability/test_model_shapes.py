"""Issue 16: shapes that happen to match (a model dropping the chain axis when the data
size equals the chain count, a variational node missing group_ndims when K equals the
dimension, an observation broadcast along its own axes) and requests the modelling
layer dropped (observing a deterministic node, a misspelled observation)."""
import numpy as np
import pytest

import autodiff as ad
import zsarray as zs

RNG = np.random.default_rng(0)
N = 4
X = RNG.normal(size=(N, 2))
Y = X @ np.array([1.0, -1.0]) + 0.1 * RNG.normal(size=N)


def nuts(model, **kw):
    opts = dict(latent={"w": None}, n_chains=N, n_samples=30, n_warmup=30, progress=False)
    opts.update(kw)
    return zs.NUTS().sample(model, {"y": Y}, **opts)


def regression(mean_of, group_ndims=1):
    @zs.meta_bayesian_net()
    def build(observed=None):
        bn = zs.BayesianNet(observed)
        w = bn.normal("w", np.zeros(2), std=1.0, group_ndims=1)
        bn.normal("y", mean_of(w), std=0.1, group_ndims=group_ndims)
        return bn
    return build()


def test_model_that_drops_the_chain_axis_is_caught_when_n_equals_chains():
    # w[..., 0] is [C]: with N == C observations, chain c would see only y[c]
    with pytest.raises(ValueError, match=r"with 5 chains.*leading chain axis"):
        nuts(regression(lambda w: w[..., 0] * 1.0, group_ndims=0))


def test_model_that_mixes_chains_is_caught():
    # centring over the chain axis couples the chains
    with pytest.raises(ValueError, match=r"node '[wy]'.*mixes chains|node 'y'"):
        nuts(regression(lambda w: (w - ad.mean(w, axis=0, keepdims=True)) @ X.T))


def test_a_vectorized_model_samples_the_posterior():
    res = nuts(regression(lambda w: w @ X.T), n_samples=300, n_warmup=300)
    ls = np.linalg.lstsq(X, Y, rcond=None)[0]
    # prior std 1, noise 0.1: the posterior mean is the ridge solution, near least squares
    ridge = np.linalg.solve(X.T @ X + 0.01 * np.eye(2), X.T @ Y)
    np.testing.assert_allclose(res.draws["w"].mean(axis=(0, 1)), ridge, atol=0.05)
    assert np.abs(ridge - ls).max() < 0.05


def test_a_chain_free_term_is_added_to_every_chain():
    @zs.meta_bayesian_net()
    def build(observed=None):
        bn = zs.BayesianNet(observed)
        w = bn.normal("w", np.zeros(2), std=1.0, group_ndims=1)
        bn.normal("y", w @ X.T, std=0.1, group_ndims=1)
        bn.normal("h", np.zeros(N), std=1.0)       # observed, no latent: no chain axis
        return bn
    from zsarray.inference import LatentLayout, _chain_terms
    obs = {"y": Y, "h": np.arange(N) * 0.1}
    layout = LatentLayout(build(), obs, ["w"])
    flags = _chain_terms(build(), obs, layout, np.zeros((N, 2)))
    assert flags == {"w": True, "y": True, "h": False}


def test_observation_is_not_broadcast_along_its_own_axes():
    bn_ok = zs.BayesianNet(observed={"x": np.zeros(3)})
    bn_ok.normal("x", np.zeros(3), std=1.0)
    with pytest.raises(ValueError, match=r"shape \(3, 1\).*repeat the observed values"):
        bn = zs.BayesianNet(observed={"x": np.zeros((3, 1))})
        bn.normal("x", np.zeros(3), std=1.0)
    # extra leading axes (samples) and a missing leading axis (shared by chains) are fine
    bn = zs.BayesianNet(observed={"x": np.zeros((5, 3))})
    assert bn.normal("x", np.zeros(3), std=1.0).cond_log_p.shape == (5, 3)
    bn = zs.BayesianNet(observed={"x": np.zeros(3)})
    assert bn.normal("x", np.zeros((4, 3)), std=1.0).cond_log_p.shape == (4, 3)


def test_observing_a_deterministic_node_is_an_error():
    bn = zs.BayesianNet(observed={"d": np.ones(2)})
    with pytest.raises(ValueError, match="node 'd' is deterministic, so it cannot be observed"):
        bn.deterministic("d", np.zeros(2))


def test_misspelled_observation_on_a_hand_built_net():
    bn = zs.BayesianNet(observed={"y_obs": np.ones(2)})
    bn.normal("y", np.zeros(2), std=1.0)
    with pytest.raises(ValueError, match="never creates: 'y_obs'"):
        bn.cond_log_prob("y")
    with pytest.raises(ValueError, match="'y_obs'"):
        bn.log_joint()


def test_variational_node_missing_group_ndims_when_k_equals_dim():
    K = D = 3

    @zs.meta_bayesian_net()
    def model(observed=None):
        bn = zs.BayesianNet(observed)
        z = bn.normal("z", np.zeros(D), std=1.0, group_ndims=1, n_samples=K)
        bn.normal("x", ad.sum(z, axis=-1), std=1.0)
        return bn

    @zs.meta_bayesian_net()
    def q_net(observed=None):
        bn = zs.BayesianNet(observed)
        bn.normal("z", np.zeros(D), std=1.0, n_samples=K)        # no group_ndims: [K, D]
        return bn

    with pytest.raises(ValueError, match=r"log q\(z\) of shape \(3, 3\).*group_ndims"):
        zs.variational.elbo(model(), {"x": np.zeros(K)}, variational=q_net().observe()).sgvb()
