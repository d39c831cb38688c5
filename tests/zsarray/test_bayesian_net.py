"""BayesianNet and meta nets: log joints, observation, particle broadcasting, errors."""
import threading

import numpy as np
import pytest
from scipy import stats

import autodiff as ad
import zsarray as zs


def build_net(observed=None, rng=0, n_samples=None):
    """z ~ N(0, 1) [3, 2] (group 1); x ~ Bernoulli(logits = z @ W) [3, 4] (group 1)."""
    w = np.arange(8.0).reshape(2, 4) / 8 - 0.3
    bn = zs.BayesianNet(observed, rng=rng)
    z = bn.normal("z", np.zeros((3, 2)), std=1.0, group_ndims=1, n_samples=n_samples)
    bn.deterministic("logits", z @ w)
    bn.bernoulli("x", bn["logits"], group_ndims=1)
    return bn, w


X = np.array([[1, 0, 1, 1], [0, 0, 1, 0], [1, 1, 1, 0]], dtype=float)


def hand_log_joint(z, x, w):
    logits = z @ w
    log_pz = stats.norm.logpdf(z).sum(-1)
    log_px = (x * -np.logaddexp(0, -logits) + (1 - x) * -np.logaddexp(0, logits)).sum(-1)
    return log_pz + log_px


def test_log_joint_equals_hand_written_sum():
    bn, w = build_net({"x": X})
    z = bn["z"].tensor.data
    np.testing.assert_allclose(bn.log_joint().data, hand_log_joint(z, X, w), rtol=1e-12)
    assert bn["x"].is_observed() and not bn["z"].is_observed()
    np.testing.assert_allclose(bn.cond_log_prob("z").data, stats.norm.logpdf(z).sum(-1))
    lz, lx = bn.cond_log_prob(["z", "x"])
    np.testing.assert_allclose((lz + lx).data, bn.log_joint().data)


def test_sample_is_drawn_once_and_cached_and_seeded():
    bn, _ = build_net(rng=3)
    assert bn["z"].tensor is bn["z"].tensor
    bn2, _ = build_net(rng=3)
    np.testing.assert_array_equal(bn["z"].tensor.data, bn2["z"].tensor.data)
    bn3, _ = build_net(rng=4)
    assert not np.array_equal(bn["z"].tensor.data, bn3["z"].tensor.data)


def test_particle_axis_broadcasts_through_the_log_joint():
    # z has 5 samples; the observation x has no particle axis and broadcasts.
    bn, w = build_net({"x": X}, n_samples=5)
    z = bn["z"].tensor.data
    assert z.shape == (5, 3, 2)
    lj = bn.log_joint().data
    assert lj.shape == (5, 3)
    np.testing.assert_allclose(lj, hand_log_joint(z, X, w), rtol=1e-12)


def test_observed_tensor_keeps_its_gradient_path():
    z0 = np.array([[0.3, -1.2], [0.5, 0.1], [2.0, -0.4]])

    def log_joint(z):
        bn, _ = build_net({"x": X, "z": z})
        return ad.sum(bn.log_joint())
    _, g = ad.value_and_grad(log_joint)(z0)
    ad.check_grads(lambda z: build_net({"x": X, "z": z})[0].log_joint(), z0)
    w = build_net()[1]
    logits = z0 @ w
    expected = -z0 + (X - 1 / (1 + np.exp(-logits))) @ w.T
    np.testing.assert_allclose(g, expected, rtol=1e-10)


def test_nodes_forward_arithmetic_and_work_in_ops():
    bn, _ = build_net({"z": np.ones((3, 2))})
    z = bn["z"]
    np.testing.assert_array_equal((z + 1).data, 2 * np.ones((3, 2)))
    np.testing.assert_array_equal((2 * z).data, 2 * np.ones((3, 2)))
    np.testing.assert_array_equal(ad.exp(z).data, np.e * np.ones((3, 2)))
    np.testing.assert_array_equal(z[0].data, np.ones(2))
    assert z.shape == (3, 2) and len(z) == 3
    assert list(bn.nodes) == ["z", "logits", "x"]
    assert bn.get(["z", "x"]) == [bn["z"], bn["x"]]


def test_one_helper_per_distribution():
    for cls_name in zs.distributions.__all__:
        cls = getattr(zs.distributions, cls_name)
        if isinstance(cls, type) and issubclass(cls, zs.distributions.Distribution) \
                and cls is not zs.distributions.Distribution:
            helper = getattr(zs.BayesianNet, zs.framework.bn._snake(cls_name))
            assert cls_name in helper.__doc__
    assert hasattr(zs.BayesianNet, "multivariate_normal_cholesky")


@zs.meta_bayesian_net(scope="model")
def build_model(n_samples=None, observed=None):
    bn = zs.BayesianNet(observed, rng=0)
    z = bn.normal("z", np.zeros((3, 2)), std=1.0, group_ndims=1, n_samples=n_samples)
    bn.bernoulli("x", z @ (np.arange(8.0).reshape(2, 4) / 8 - 0.3), group_ndims=1)
    return bn


def test_meta_net_observe_and_reobserve():
    model = build_model(n_samples=4)
    assert model.scope == "model"
    bn1 = model.observe(x=X)
    assert bn1["z"].tensor.shape == (4, 3, 2) and bn1["x"].is_observed()
    z0 = np.zeros((4, 3, 2))
    bn2 = bn1.observe(z=z0)               # keeps x, adds z
    assert bn2["x"].is_observed() and bn2["z"].is_observed()
    np.testing.assert_array_equal(bn2["z"].tensor.data, z0)
    w = np.arange(8.0).reshape(2, 4) / 8 - 0.3
    np.testing.assert_allclose(bn2.log_joint().data, hand_log_joint(z0, X, w))
    assert bn1 is not bn2 and not bn1["z"].is_observed()


def test_meta_net_log_joint_override():
    model = build_model()
    model.log_joint = lambda bn: bn.cond_log_prob("x")
    bn = model.observe(x=X, z=np.zeros((3, 2)))
    np.testing.assert_allclose(bn.log_joint().data, bn.cond_log_prob("x").data)


def test_meta_net_is_thread_safe():
    model = build_model()
    results, errors = {}, []

    def work(i):
        try:
            for _ in range(20):
                bn = model.observe(x=X, z=np.full((3, 2), float(i)))
                results.setdefault(i, set()).add(float(bn["z"].tensor.data[0, 0]))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results == {i: {float(i)} for i in range(4)}


# ------------------------------------------------------------------------- errors

def test_duplicate_node_name():
    bn = zs.BayesianNet()
    bn.normal("z", 0.0, std=1.0)
    with pytest.raises(ValueError, match="'z' already exists"):
        bn.normal("z", 0.0, std=1.0)


def test_observing_unknown_name_suggests_closest():
    with pytest.raises(ValueError, match="never creates a node named 'zz'.*did you mean 'z'"):
        build_model().observe(zz=np.zeros((3, 2)))
    bn, _ = build_net({"xx": X})
    with pytest.raises(ValueError, match="'xx'.*did you mean 'x'"):
        bn.log_joint()
    with pytest.raises(KeyError, match="did you mean 'logits'"):
        bn["logit"]


def test_observation_that_cannot_broadcast():
    with pytest.raises(ValueError, match=r"node 'z' has shape \(3, 5\).*\(3, 2\)"):
        build_net({"z": np.zeros((3, 5))})


def test_builder_contract_errors():
    @zs.meta_bayesian_net()
    def drops(observed=None):
        bn = zs.BayesianNet()
        bn.normal("z", 0.0, std=1.0)
        return bn
    with pytest.raises(ValueError, match="did not pass its observed= argument"):
        drops().observe(z=1.0)

    @zs.meta_bayesian_net()
    def returns_none(observed=None):
        zs.BayesianNet(observed)
    with pytest.raises(TypeError, match="must return its BayesianNet"):
        returns_none().observe()


def test_hand_built_net_cannot_reobserve_and_deterministic_has_no_log_prob():
    bn, _ = build_net()
    with pytest.raises(TypeError, match="built by hand"):
        bn.observe(x=X)
    with pytest.raises(TypeError, match="deterministic"):
        bn.cond_log_prob("logits")
    with pytest.raises(TypeError, match="name must be a str"):
        bn.stochastic(3, zs.distributions.Normal(0.0, std=1.0))
    with pytest.raises(ValueError, match="no stochastic nodes"):
        zs.BayesianNet().log_joint()


def test_helper_signatures_show_the_distribution_parameters():
    import inspect
    sig = inspect.signature(zs.BayesianNet(rng=0).normal)          # bound: no self
    assert list(sig.parameters)[:4] == ["name", "mean", "std", "logstd"]
    assert sig.parameters["group_ndims"].default == 0
    assert sig.parameters["n_samples"].kind is inspect.Parameter.KEYWORD_ONLY
    sig.bind("z", 0.0, std=1.0, group_ndims=1, n_samples=3)        # the documented call
    with pytest.raises(TypeError):
        sig.bind("z", 0.0, bogus=1)
    helper = zs.BayesianNet.unnormalized_multinomial
    assert "normalize_logits" in inspect.signature(helper).parameters
