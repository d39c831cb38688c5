"""The VAE-family examples run with --quick and reach sane metrics; figures are valid PNGs.

Checks: the training objective improves between the first and the last epoch, the
importance-sampled test log-likelihood is finite and not below the ELBO estimate (the
IWAE bound property, with a small Monte Carlo slack), score-function training (NVIL,
VIMCO, RWS) reduces its cost, and the figure is a PNG.
"""
import math

import pytest

from tests.examples.helpers import assert_png

pytest.importorskip("sklearn", reason="examples need scikit-learn (pip install .[examples])")
pytest.importorskip("matplotlib", reason="examples need matplotlib (pip install .[examples])")
pytest.importorskip("tqdm", reason="examples need tqdm (pip install .[examples])")

pytestmark = pytest.mark.examples

SLACK = 0.5   # nats: Monte Carlo noise of the test ELBO / IS estimates on 200 images


def assert_ll(out):
    assert math.isfinite(out["test_is_ll"])
    assert out["test_is_ll"] < 0
    assert out["test_is_ll"] >= out["test_elbo"] - SLACK, out


def quick(tmp_path, *extra):
    return ["--quick", "--no-progress", "--out", str(tmp_path), *extra]


@pytest.mark.parametrize("extra", [
    ("--objective", "elbo"),
    ("--objective", "iwae", "--k", "5"),
    ("--flow", "planar", "--epochs", "20"),
    ("--flow", "iaf", "--epochs", "10"),
], ids=["vae", "iwae-k5", "vae-planar", "vae-iaf"])
def test_vae(tmp_path, extra):
    from examples import vae
    out = vae.main(quick(tmp_path, *extra))
    assert out["train_bound_last_epoch"] > out["train_bound_first_epoch"] + 5
    assert_ll(out)
    # a 64-pixel binary image costs at most 64 log 2 = 44 nats under a uniform model
    assert out["test_is_ll"] > -35
    assert_png(out["figure"])


def test_iwae_paper_lr_schedule():
    """Stage i lasts 3^i epochs at 10^(-i/7); shorter runs take a prefix, longer ones stay
    at the last factor."""
    import numpy as np
    from examples._vae_common import iwae_lr_factors
    f = iwae_lr_factors(3300)
    starts = np.cumsum([0] + [3 ** i for i in range(8)])
    for i in range(8):
        np.testing.assert_allclose(f[starts[i]:starts[i + 1]], 10.0 ** (-i / 7), rtol=1e-15)
    np.testing.assert_allclose(f[3280:], 0.1, rtol=1e-15)
    np.testing.assert_array_equal(iwae_lr_factors(13), f[:13])


def test_vae_lr_schedule_runs(tmp_path):
    from examples import vae
    out = vae.main(quick(tmp_path, "--lr-schedule", "iwae", "--epochs", "5",
                         "--activation", "tanh", "--adam-eps", "1e-4"))
    assert out["train_bound_last_epoch"] > out["train_bound_first_epoch"]
    assert_png(out["curve_figure"])


def test_vae_train_ll_reports_the_gap_without_changing_test_metrics(tmp_path):
    """--train-ll N adds train ELBO / IS estimates on N training images; it may change
    between sittings of a checkpointed run, and the test metrics stay the same."""
    from examples import vae
    ck = str(tmp_path / "run.ckpt")
    base = quick(tmp_path, "--epochs", "3", "--is-k", "20", "--n-test", "50",
                 "--checkpoint", ck)
    plain = vae.main(base)
    assert "train_is_ll" not in plain
    out = vae.main(base + ["--train-ll", "60"])          # a finished run: evaluation only
    assert out["train_ll_images"] == 60
    assert math.isfinite(out["train_is_ll"]) and out["train_is_ll"] < 0
    assert out["train_is_ll"] >= out["train_elbo"] - SLACK, out
    for k in ("test_elbo", "test_is_ll", "train_bound_last_epoch"):
        assert out[k] == plain[k], k
    with pytest.raises(SystemExit):
        vae.main(base + ["--train-ll", "-1"])


@pytest.mark.parametrize("name", ["vae", "vae_ssl"])
def test_checkpoint_resume_repeats_the_uninterrupted_run(tmp_path, capsys, name):
    """Two epochs, then a second sitting that resumes from the checkpoint to four: the
    same per-epoch bounds and test metrics, bit for bit, as four epochs in one go (the
    lr schedule, Adam's moments and every random generator are restored; vae_ssl draws
    from two generators)."""
    import importlib
    ex = importlib.import_module(f"examples.{name}")
    ck = str(tmp_path / "run.ckpt")
    base = quick(tmp_path, "--lr-schedule", "iwae", "--is-k", "5", "--n-test", "20")
    whole = ex.main(base + ["--epochs", "4"])
    ex.main(base + ["--epochs", "2", "--checkpoint", ck, "--checkpoint-every", "1"])
    capsys.readouterr()
    resumed = ex.main(base + ["--epochs", "4", "--checkpoint", ck])
    out, err = capsys.readouterr()
    assert f"resumed from {ck} after epoch 2" in out
    assert "%|" not in err          # no progress bar when stderr is not a terminal
    for key in whole:
        if key.endswith("_per_epoch") or key.startswith("test_"):
            assert resumed[key] == whole[key], key
    # the finished checkpoint: a third sitting trains nothing and evaluates the same model
    again = ex.main(base + ["--epochs", "4", "--checkpoint", ck])
    assert again["test_is_ll"] == whole["test_is_ll"]


def test_checkpoint_refuses_other_options(tmp_path):
    from examples import vae
    ck = str(tmp_path / "run.ckpt")
    vae.main(quick(tmp_path, "--epochs", "2", "--is-k", "5", "--n-test", "20",
                   "--checkpoint", ck))
    with pytest.raises(SystemExit, match=r"--hidden 200 there, 100 now"):
        vae.main(quick(tmp_path, "--epochs", "3", "--hidden", "100", "--checkpoint", ck))
    with pytest.raises(SystemExit, match="2 epochs done, more than --epochs 1"):
        vae.main(quick(tmp_path, "--epochs", "1", "--checkpoint", ck))
    (tmp_path / "bad.ckpt").write_bytes(__import__("pickle").dumps({"x": 1}))
    with pytest.raises(SystemExit, match="not a checkpoint"):
        vae.main(quick(tmp_path, "--checkpoint", str(tmp_path / "bad.ckpt")))


def test_vae_ais(tmp_path):
    from examples import vae
    out = vae.main(quick(tmp_path, "--epochs", "20", "--ais"))
    assert math.isfinite(out["test_ais_ll"])
    assert 0.3 < out["ais_acceptance"] < 0.95
    # AIS and IS estimate the same log p(x) of the same images (4 chains x 50
    # temperatures: rough, so 1 nat of slack)
    assert abs(out["test_ais_ll"] - out["test_is_ll_ais_images"]) < 1.0
    assert_png(out["figure"])


def test_vae_nvil(tmp_path):
    from examples import vae_nvil
    out = vae_nvil.main(quick(tmp_path))
    assert out["cost_last_epoch"] < out["cost_first_epoch"] - 5
    assert out["elbo_last_epoch"] > out["elbo_first_epoch"] + 5
    assert out["baseline_cost_last_epoch"] < out["baseline_cost_first_epoch"]
    assert_ll(out)
    assert_png(out["figure"])


def test_vae_ssl(tmp_path):
    from examples import vae_ssl
    out = vae_ssl.main(quick(tmp_path))
    assert out["unlabeled_bound_last_epoch"] > out["unlabeled_bound_first_epoch"] + 5
    assert out["test_accuracy"] > 0.6          # 100 labels, 10 classes
    assert_ll(out)
    assert_png(out["figure"])


@pytest.mark.parametrize("method", ["vimco", "rws"])
def test_sbn(tmp_path, method):
    from examples import sbn
    out = sbn.main(quick(tmp_path, "--method", method))
    assert out["cost_last_epoch"] < out["cost_first_epoch"] - 5
    if method == "rws":
        assert out["q_cost_last_epoch"] < out["q_cost_first_epoch"]
    assert_ll(out)
    # the IWAE bound property: L_1 <= L_K <= log p(x) (up to Monte Carlo noise)
    assert out["test_bound_k"] >= out["test_elbo"] - SLACK
    assert_png(out["figure"])
