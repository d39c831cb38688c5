"""samplers.sample: Result contents, options, progress bar, warnings and every error path."""
import sys
import warnings

import numpy as np
import pytest

import autodiff as ad
import samplers
from samplers import driver
from samplers.driver import DivergenceWarning, Result


def std_normal(q):
    return -0.5 * (q * q).sum(1)


def grad(q):
    return -q


def quick(**kw):
    args = dict(n_samples=30, n_warmup=40, grad_fn=grad, progress=False)
    args.update(kw)
    return samplers.sample(std_normal, args.pop("init_position", np.zeros((3, 2))), **args)


@pytest.mark.parametrize("kernel", ["nuts", "hmc", "mala", "rwmh"])
def test_result_contents(kernel):
    res = quick(kernel=kernel)
    assert isinstance(res, Result)
    assert res.draws.shape == (3, 30, 2) and res.logdensity.shape == (3, 30)
    np.testing.assert_allclose(res.logdensity, std_normal(res.draws.reshape(-1, 2)).reshape(3, 30))
    assert set(res.stats) == set(samplers.driver.STAT_KEYS)
    for key, v in res.stats.items():
        assert v.shape == (3, 30), key
        assert res.warmup_stats[key].shape == (3, 40), key
    assert res.stats["divergent"].dtype == bool
    assert res.step_size.shape == (3,) and np.all(res.stats["step_size"] == res.step_size[:, None])
    assert res.inverse_mass.shape == (2,)
    if kernel == "nuts":
        assert (res.stats["tree_depth"] >= 1).all()
    else:
        assert (res.stats["tree_depth"] == 0).all()
    expected = {"nuts": None, "hmc": 10, "mala": 1, "rwmh": 0}[kernel]
    if expected is not None:
        assert (res.stats["n_grad_evals"] == expected).all()
    assert "chains" in repr(res)
    # the final state and tuned kernel continue the chains
    st, info = res.kernel.step(res.state, np.random.default_rng(0))
    assert st.position.shape == (3, 2)


def test_init_uniform_needs_n_chains_and_dim():
    res = samplers.sample(std_normal, None, n_chains=5, dim=4, n_samples=10, n_warmup=0,
                          grad_fn=grad, progress=False, step_size=0.5)
    assert res.draws.shape == (5, 10, 4)
    with pytest.raises(ValueError, match=r"None needs n_chains= and dim=.*dim=None"):
        samplers.sample(std_normal, None, n_chains=5, grad_fn=grad)


def test_init_uniform_is_stans_minus2_2(monkeypatch):
    seen = {}
    orig = driver._initial_positions

    def spy(*a):
        seen["q"] = orig(*a)
        return seen["q"]

    monkeypatch.setattr(driver, "_initial_positions", spy)
    samplers.sample(std_normal, None, n_chains=500, dim=4, n_samples=5, n_warmup=0,
                    grad_fn=grad, progress=False)
    q = seen["q"]
    assert q.min() >= -2 and q.max() <= 2 and q.min() < -1.9 and q.max() > 1.9
    samplers.sample(std_normal, None, n_chains=2, dim=3, init="zeros", n_samples=5,
                    n_warmup=0, grad_fn=grad, progress=False)
    np.testing.assert_array_equal(seen["q"], 0.0)


def test_error_unknown_init():
    with pytest.raises(ValueError, match=r"init: unknown initialization 'normal'.*'uniform'"):
        samplers.sample(std_normal, None, n_chains=2, dim=2, init="normal", grad_fn=grad)


@pytest.mark.parametrize("kw,match", [
    (dict(init_position=np.zeros(3)), r"init_position: expected shape \[n_chains, dim\]"),
    (dict(init_position=np.zeros((3, 2)), n_chains=4), r"n_chains=4 does not match .*\(3, 2\)"),
    (dict(init_position=np.zeros((3, 2)), dim=5), r"dim=5 does not match"),
])
def test_error_init_position_shape(kw, match):
    with pytest.raises(ValueError, match=match):
        samplers.sample(std_normal, grad_fn=grad, progress=False, **kw)


def test_error_unknown_kernel_lists_valid():
    with pytest.raises(ValueError, match=r"unknown kernel 'gibbs'.*'hmc', 'mala', 'nuts', 'rwmh'"):
        samplers.sample(std_normal, np.zeros((2, 2)), kernel="gibbs")


@pytest.mark.parametrize("kw,match", [
    (dict(n_samples=0), "n_samples: expected an integer >= 1"),
    (dict(n_warmup=-1), "n_warmup: expected an integer >= 0"),
    (dict(thin=0), "thin: expected an integer >= 1"),
    (dict(target_accept=1.0), r"target_accept: expected a value in \(0, 1\)"),
])
def test_error_bad_counts(kw, match):
    with pytest.raises(ValueError, match=match):
        quick(**kw)


def test_error_nonfinite_start_names_chains():
    def ld(q):
        return np.where(q[:, 0] > 1.0, np.nan, std_normal(q))
    x0 = np.array([[0.0, 0.0], [2.0, 0.0], [3.0, 1.0]])
    with pytest.raises(ValueError, match=r"2 chain\(s\): chain 1: nan, chain 2: nan"):
        samplers.sample(ld, x0, grad_fn=grad, progress=False)


def test_error_logdensity_wrong_shape_says_what_it_must_be():
    with pytest.raises(ValueError, match=r"must return one value per chain, shape \(3,\)"):
        samplers.sample(lambda q: std_normal(q)[:, None], np.zeros((3, 2)), grad_fn=grad,
                        progress=False)


def test_error_logdensity_wrong_shape_autodiff():
    ad = pytest.importorskip("autodiff")
    with pytest.raises(ValueError, match=r"must return one value per chain, shape \(3,\)"):
        samplers.sample(lambda q: -0.5 * ad.sum(q * q), np.zeros((3, 2)), progress=False)


@pytest.mark.parametrize("rng", [1.5, "seed", np.random.RandomState(0), True])
def test_error_bad_rng(rng):
    with pytest.raises(TypeError, match="rng: expected an int seed or a numpy.random.Generator"):
        quick(rng=rng)


def test_rng_seed_and_generator_reproducible_and_no_global_state():
    a = quick(rng=7)
    np.random.seed(0)
    b = quick(rng=7)
    np.random.seed(1)
    c = quick(rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a.draws, b.draws)
    np.testing.assert_array_equal(a.draws, c.draws)
    assert not np.array_equal(a.draws, quick(rng=8).draws)


def test_divergences_are_counted_and_warned():
    x0 = np.full((4, 2), 0.5)
    with pytest.warns(DivergenceWarning,
                      match=r"^40 of 40 transitions after warmup were divergent"):
        res = samplers.sample(std_normal, x0, n_samples=10, n_warmup=0, step_size=50.0,
                              grad_fn=grad, progress=False)
    assert res.n_divergent == 40 and res.stats["divergent"].all()


def test_no_warning_without_divergences():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DivergenceWarning)
        res = quick()
    assert res.n_divergent == 0


def test_thin_keeps_every_kth():
    a = quick(kernel="rwmh", thin=1, n_samples=40, n_warmup=0, rng=3, scale=0.5)
    b = quick(kernel="rwmh", thin=2, n_samples=20, n_warmup=0, rng=3, scale=0.5)
    np.testing.assert_array_equal(a.draws[:, 1::2], b.draws)


def test_kernel_options_pass_through():
    res = quick(kernel="hmc", n_leapfrogs=3, integrator="yoshida")
    assert (res.stats["n_grad_evals"] == 9).all()
    res = quick(kernel="nuts", max_tree_depth=2, n_warmup=0, step_size=0.01)
    assert (res.stats["tree_depth"] == 2).all()
    with pytest.raises(TypeError, match="n_leapfrogs"):
        quick(kernel="nuts", n_leapfrogs=3)


def test_n_warmup_zero_keeps_given_parameters():
    res = quick(kernel="hmc", n_warmup=0, step_size=0.3, inverse_mass=np.array([1.0, 2.0]))
    np.testing.assert_allclose(res.step_size, 0.3)
    np.testing.assert_allclose(res.inverse_mass, [1.0, 2.0])
    assert res.warmup_stats["acceptance"].shape == (3, 0)


def test_float32_and_target_accept():
    res = quick(init_position=np.zeros((4, 2), dtype=np.float32), kernel="hmc",
                n_warmup=150, target_accept=0.95)
    assert res.draws.dtype == np.float32
    assert res.warmup_stats["acceptance"][:, -30:].mean() > 0.85


def test_autodiff_end_to_end():
    ad = pytest.importorskip("autodiff")
    res = samplers.sample(lambda q: -0.5 * ad.sum(q * q, axis=1), None, n_chains=4, dim=3,
                          n_samples=50, n_warmup=50, progress=False, rng=1)
    assert res.draws.shape == (4, 50, 3) and np.isfinite(res.draws).all()


def test_summary_prints_and_returns_table(capsys):
    res = quick(n_samples=50)
    table = res.summary(names=["a", "b"])
    out = capsys.readouterr().out
    for col in ("mean", "sd", "mcse", "5%", "50%", "95%", "ess_bulk", "ess_tail", "r_hat"):
        assert col in out
    assert "a" in out and table["ess_bulk"].shape == (2,)


def test_to_arviz_without_arviz_names_pip_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "arviz", None)   # import arviz -> ImportError
    with pytest.raises(ImportError, match="pip install arviz"):
        quick().to_arviz()


def test_to_arviz_with_arviz():
    pytest.importorskip("arviz")
    idata = quick().to_arviz()
    assert idata.posterior["x"].shape == (3, 30, 2)


def test_progress_bar_off_when_not_a_tty_or_disabled(monkeypatch):
    assert driver._Progress(10, enabled=False).bar is None
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert driver._Progress(10, enabled=True).bar is None


def test_progress_bar_on_a_tty(monkeypatch):
    pytest.importorskip("tqdm")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    seen = []
    orig = driver._Progress.update

    def spy(self, phase, info, eps):
        orig(self, phase, info, eps)
        seen.append((phase, self.divergent))

    monkeypatch.setattr(driver._Progress, "update", spy)
    samplers.sample(std_normal, np.full((2, 2), 0.5), n_samples=5, n_warmup=3,
                    grad_fn=grad, progress=True)
    assert [p for p, _ in seen] == ["warmup"] * 3 + ["sampling"] * 5
    seen.clear()
    with pytest.warns(DivergenceWarning):
        samplers.sample(std_normal, np.full((2, 2), 0.5), n_samples=5, n_warmup=0,
                        step_size=50.0, grad_fn=grad, progress=True)
    assert [d for _, d in seen] == [2, 4, 6, 8, 10]       # divergences so far


def test_progress_bar_absent_without_tqdm(monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    monkeypatch.setitem(sys.modules, "tqdm", None)
    assert driver._Progress(10, enabled=True).bar is None
    quick(progress=True)                                   # runs without a bar


def test_lazy_public_names():
    for name in samplers.__all__:
        assert getattr(samplers, name) is not None, name
    assert samplers.NUTS is samplers.nuts.NUTS and samplers.ess is samplers.diagnostics.ess
    with pytest.raises(AttributeError, match="no attribute 'Gibbs'"):
        samplers.Gibbs


@pytest.mark.parametrize("kernel, own", [("nuts", "max_tree_depth"), ("hmc", "n_leapfrogs"),
                                         ("rwmh", "scale")])
def test_unknown_option_names_the_valid_ones(kernel, own):
    with pytest.raises(TypeError, match=rf"unknown option\(s\) \['bogus'\]; valid: .*'{own}'"):
        samplers.sample(lambda q: -0.5 * ad.sum(q * q, axis=1), np.zeros((2, 2)),
                        kernel=kernel, bogus=1, progress=False)


def test_the_log_density_is_compiled_by_default_and_compile_false_opts_out():
    """samplers.sample compiles the log density (one compiled program per gradient);
    the draws agree with the tape's to rounding for the same seed (HMC, fixed steps, so
    the arithmetic differences never flip a decision over this short run)."""
    import autodiff as ad
    x = np.random.default_rng(3).normal(size=(40, 3))
    y = x @ np.array([0.5, -1.0, 2.0]) + np.random.default_rng(4).normal(size=40)

    def logdensity(w):
        r = y - w @ x.T
        return -0.5 * ad.sum(r * r, axis=1) - 0.5 * ad.sum(w * w, axis=1)
    kw = dict(n_samples=30, n_warmup=0, kernel="hmc", step_size=0.05, n_leapfrogs=5, rng=7,
              progress=False)
    comp = samplers.sample(logdensity, np.zeros((3, 3)), **kw)
    tape = samplers.sample(logdensity, np.zeros((3, 3)), compile=False, **kw)
    assert isinstance(comp.kernel.logdensity.logdensity, ad.Compiled)
    assert comp.kernel.logdensity.logdensity.compiled
    assert not isinstance(tape.kernel.logdensity.logdensity, ad.Traced)
    np.testing.assert_allclose(comp.draws, tape.draws, rtol=1e-9, atol=1e-12)
    assert np.array_equal(comp.stats["acceptance"] > 0.5, tape.stats["acceptance"] > 0.5)
