"""The packaged posterior suite: models, data, reference summaries and the CLI."""
import numpy as np
import pytest

from samplers import suite
from samplers.suite.models import build_model, find_posteriordb, load_draws


@pytest.mark.parametrize("name", suite.POSTERIORS)
def test_packaged_models_are_finite_at_the_reference_mean(name):
    m = suite.MODELS[name]
    ref = suite.load_reference(name)["parameters"]
    assert list(ref) == m.param_names
    x = np.array([[ref[p]["mean"] for p in m.param_names]])
    u = m.to_unconstrained(x)
    assert u.shape == (1, m.dim)
    np.testing.assert_allclose(m.to_reported(u), x, rtol=1e-9, atol=1e-12)
    lp = np.asarray(m.logdensity(np.repeat(u, 2, axis=0)))
    assert lp.shape == (2,) and np.isfinite(lp).all()


@pytest.mark.posteriordb
@pytest.mark.parametrize("name", suite.POSTERIORS)
def test_packaged_data_equal_posteriordb(name):
    root = find_posteriordb()
    if root is None:
        pytest.skip("posteriordb folder not found (ZSARRAY_SHARED)")
    u = np.random.default_rng(0).uniform(-1, 1, (3, suite.MODELS[name].dim))
    np.testing.assert_array_equal(np.asarray(suite.MODELS[name].logdensity(u)),
                                  np.asarray(build_model(name, root).logdensity(u)))
    full = build_model(name, root).param_names
    assert full == suite.MODELS[name].param_names
    # z-scores of the reference draws themselves against their own summaries are ~0
    draws, _, chain = load_draws(name, root)
    per_chain = np.stack([draws[chain == c] for c in range(10)])       # [10, 1000, P]
    z = suite.z_scores(suite.MODELS[name], suite.MODELS[name].to_unconstrained(per_chain))
    assert max(abs(v) for v in z.values()) < 1e-3      # transforms round trip to ~1e-5


def test_run_scores_a_posterior():
    r = suite.run("eight_schools-eight_schools_noncentered", n_chains=4, n_warmup=300,
                  n_samples=300, seed=1)
    assert r.result.draws.shape == (4, 300, 10)
    assert set(r.z) == set(suite.MODELS[r.name].param_names)
    assert r.max_abs_z < 4
    assert r.n_grad == int(r.result.stats["n_grad_evals"].sum())
    assert r.ess_per_grad == pytest.approx(r.min_ess / r.n_grad)
    assert "geometric mean" in suite.format_table([r])


def test_cli(capsys):
    from samplers.suite.__main__ import main
    rc = main(["--posteriors", "sblrc-blr", "--warmup", "200", "--samples", "200",
               "--adaptation", "fisher", "--adapt-option", "low_rank=True",
               "--kernel-option", "max_tree_depth=8"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "sblrc-blr" in out and "low_rank=True" in out and "ESS/1k grad" in out
    with pytest.raises(SystemExit):
        main(["--posteriors", "nope"])
