"""Checkpoint and resume of samplers.sample; interrupts keep the completed draws."""
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest

import samplers

from .helpers import normal

SCALES = np.array([0.5, 2.0, 1.0])


class Stop(Exception):
    """Stands for a killed process: raised by the log density at a given call."""


def _density(fail_at=None, calls=None):
    ld, g = normal(SCALES)
    calls = [0] if calls is None else calls

    def grad(q):
        calls[0] += 1
        if fail_at is not None and calls[0] == fail_at:
            raise Stop
        return g(q)
    return ld, grad


def _run(path, fail_at=None, calls=None, **kw):
    ld, grad = _density(fail_at, calls)
    args = dict(n_chains=4, dim=3, n_warmup=150, n_samples=120, thin=2, rng=7,
                progress=False, checkpoint=path, checkpoint_every=25)
    args.update(kw)
    return samplers.sample(ld, grad_fn=grad, **args)


@pytest.mark.parametrize("kernel, where", [("nuts", 0.2), ("nuts", 0.75), ("hmc", 0.5),
                                           ("mala", 0.1), ("mala", 0.9)])
def test_a_killed_run_resumes_bit_for_bit(tmp_path, kernel, where):
    calls = [0]
    ref = _run(None, kernel=kernel, calls=calls)
    fail_at = int(where * calls[0])                      # a gradient call in warmup or after
    path = tmp_path / "run.ckpt"
    with pytest.raises(Stop):
        _run(path, fail_at, kernel=kernel)
    assert path.exists()
    res = _run(path, kernel=kernel)
    np.testing.assert_array_equal(res.draws, ref.draws)
    np.testing.assert_array_equal(res.logdensity, ref.logdensity)
    for key in ref.stats:
        np.testing.assert_array_equal(res.stats[key], ref.stats[key])
        np.testing.assert_array_equal(res.warmup_stats[key], ref.warmup_stats[key])
    np.testing.assert_array_equal(res.step_size, ref.step_size)
    # the finished run left its final checkpoint: the same call returns at once
    again = _run(path, fail_at=1, kernel=kernel)            # would raise if it sampled
    np.testing.assert_array_equal(again.draws, ref.draws)


@pytest.mark.parametrize("kernel, adaptation", [("hmc", "chees"), ("ghmc", "meads")])
@pytest.mark.parametrize("where", [0.2, 0.6])
def test_many_chain_strategies_resume_bit_for_bit(tmp_path, kernel, adaptation, where):
    """ChEES and MEADS killed in their per-chain start (step sizes per chain, dual
    averaging per chain) or later, resumed from the checkpoint: the same draws."""
    kw = dict(kernel=kernel, adaptation=adaptation, n_chains=64, n_warmup=100,
              n_samples=30, checkpoint_every=10)
    calls = [0]
    ref = _run(None, calls=calls, **kw)
    path = tmp_path / "c.ckpt"
    with pytest.raises(Stop):
        _run(path, int(where * calls[0]), **kw)
    assert path.exists()                       # the resume starts from a checkpoint
    with open(path, "rb") as f:
        saved = pickle.load(f)
    assert saved["phase"] == "warmup"
    da = saved["astate"].da          # early: one dual averaging per chain in the state
    assert np.ndim(da.mu) == 1 if where < 0.3 else (da is None or np.ndim(da.mu) == 0)
    res = _run(path, **kw)
    np.testing.assert_array_equal(res.draws, ref.draws)
    np.testing.assert_array_equal(res.step_size, ref.step_size)


def test_an_interrupt_returns_the_draws_so_far_and_resumes(tmp_path):
    ld, g = normal(SCALES)
    calls, stop = [0], [None]

    def grad(q):
        calls[0] += 1
        if calls[0] == stop[0]:
            raise KeyboardInterrupt
        return g(q)
    args = dict(n_chains=4, dim=3, n_warmup=150, n_samples=120, rng=7, progress=False)
    samplers.sample(ld, grad_fn=grad, **args)
    stop[0], calls[0] = int(0.8 * calls[0]), 0             # in the sampling phase
    with pytest.warns(samplers.InterruptedWarning, match=r"after (\d+) of 120 draws"):
        part = samplers.sample(ld, grad_fn=grad, checkpoint=tmp_path / "i.ckpt", **args)
    ref = samplers.sample(ld, grad_fn=g, **args)
    n = part.draws.shape[1]
    assert 0 < n < 120 and part.stats["acceptance"].shape == (4, n)
    np.testing.assert_array_equal(part.draws, ref.draws[:, :n])
    full = samplers.sample(ld, grad_fn=g, checkpoint=tmp_path / "i.ckpt", **args)
    np.testing.assert_array_equal(full.draws, ref.draws)
    # during warmup: KeyboardInterrupt saying where
    calls[0] = -10 ** 9

    def grad_w(q):
        calls[0] += 1
        if calls[0] == 10:
            raise KeyboardInterrupt
        return g(q)
    calls[0] = 0
    with pytest.raises(KeyboardInterrupt, match="during warmup, after .* of 150"):
        samplers.sample(ld, grad_fn=grad_w, **args)


def test_bad_checkpoints_are_clear_errors(tmp_path):
    path = tmp_path / "x.ckpt"
    with pytest.raises(Stop):
        _run(path, 600)
    with pytest.raises(ValueError, match=r"written by a different run \(n_samples: "
                                         r"checkpoint has 120, this call has 100"):
        _run(path, n_samples=100)
    with pytest.raises(ValueError, match="kernel: checkpoint has 'NUTS', this call has 'HMC'"):
        _run(path, kernel="hmc")
    with pytest.raises(ValueError, match="seed: checkpoint has 7, this call has 8"):
        _run(path, rng=8)


def test_a_generator_seed_is_part_of_the_checkpoint(tmp_path):
    """A generator given as rng is recorded by its state: the same seed resumes, another
    one is an error (it was recorded as None, so a stale file was taken silently)."""
    path = tmp_path / "g.ckpt"
    with pytest.raises(Stop):
        _run(path, 600, rng=np.random.default_rng(3))
    with pytest.raises(ValueError, match="seed: checkpoint has 'generator "):
        _run(path, rng=np.random.default_rng(4))
    res = _run(path, rng=np.random.default_rng(3))
    ref = _run(tmp_path / "ref.ckpt", rng=np.random.default_rng(3))
    np.testing.assert_array_equal(res.draws, ref.draws)


def test_a_stale_shard_checkpoint_from_another_seed_is_an_error(tmp_path):
    """Shards get generators from SeedSequence children: a shard's file written under
    another seed must not be taken for this run's."""
    import concurrent.futures as cf
    path = tmp_path / "s.ckpt"
    ld, grad = _density()
    args = dict(n_chains=4, dim=3, n_warmup=30, n_samples=20, progress=False,
                checkpoint=path, n_shards=2, grad_fn=grad)
    with cf.ThreadPoolExecutor(2) as ex:
        samplers.sample(ld, rng=1, executor=ex, **args)
        assert (tmp_path / "s.ckpt.shard0").exists()
        with pytest.raises(ValueError, match="seed: checkpoint has 'generator "):
            samplers.sample(ld, rng=2, executor=ex, **args)
    path.write_bytes(pickle.dumps({"format": 1})[:7])
    with pytest.raises(ValueError, match="cannot be read"):
        _run(path)
    path.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(ValueError, match="not a samplers checkpoint"):
        _run(path)
    with pytest.raises(ValueError, match="checkpoint_every: expected a positive integer"):
        _run(tmp_path / "y.ckpt", checkpoint_every=0)
    assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]      # no leftovers


def test_damaged_checkpoints_name_the_path_and_say_damaged(tmp_path):
    path = tmp_path / "x.ckpt"
    with pytest.raises(Stop):
        _run(path, 600)                                   # a warmup checkpoint
    whole = path.read_bytes()
    payload = pickle.loads(whole)
    assert payload["phase"] == "warmup"
    for cut in (0, 1, len(whole) // 2, len(whole) - 1):   # a file cut off while copying
        path.write_bytes(whole[:cut])
        with pytest.raises(ValueError, match="damaged or truncated") as e:
            _run(path)
        assert repr(str(path)) in str(e.value) and f"({cut} bytes;" in str(e.value)
    # whole pickles whose content is damaged: before, a bare KeyError from the driver
    for edit, match in [
            (lambda d: d.pop("recorder"), r"a warmup checkpoint without \['recorder'\]"),
            (lambda d: d.pop("fingerprint"), "it has no fingerprint"),
            (lambda d: d.update(phase="done"), "phase 'done'"),
            (lambda d: d.update(i=151), r"i = 151, expected an integer in \[0, 150\]"),
            (lambda d: d.update(n_done=-1), "n_done = -1")]:
        bad = dict(payload)
        edit(bad)
        path.write_bytes(pickle.dumps(bad))
        with pytest.raises(ValueError, match=match) as e:
            _run(path)
        assert "is damaged" in str(e.value) and repr(str(path)) in str(e.value)
    path.unlink()
    path.mkdir()                                          # not a file at all
    with pytest.raises(ValueError, match="cannot be read .IsADirectoryError"):
        _run(path)
    path.rmdir()
    path.write_bytes(whole)                               # the intact file still resumes
    ref = _run(tmp_path / "ref.ckpt")
    np.testing.assert_array_equal(_run(path).draws, ref.draws)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigint_in_a_subprocess_returns_the_completed_draws(tmp_path):
    code = textwrap.dedent(f"""
        import signal, sys, time, warnings
        # Ctrl-C as in a terminal: a job a shell starts in the background (`cmd &`)
        # ignores SIGINT, and so would this child
        signal.signal(signal.SIGINT, signal.default_int_handler)
        sys.path.insert(0, {os.getcwd()!r})
        import numpy as np, samplers
        def ld(q): return -0.5 * (q * q).sum(1)
        def g(q):
            time.sleep(0.002)
            return -q
        print("ready", flush=True)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            r = samplers.sample(ld, n_chains=2, dim=2, grad_fn=g, kernel="hmc", n_warmup=20,
                                n_samples=100000, progress=False, n_leapfrogs=2)
        print("draws", r.draws.shape[1], "warned", any("interrupted" in str(x.message) for x in w))
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(3.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    words = out.split()
    assert words[0] == "draws" and 0 < int(words[1]) < 100000 and words[3] == "True", out


def test_sgmcmc_runs_checkpoint_too(tmp_path):
    calls = [0]

    def grad(q, rng, stop=None):
        calls[0] += 1
        if calls[0] == stop:
            raise Stop
        return -q + 0.1 * rng.standard_normal(q.shape)

    def run(path, stop=None):
        calls[0] = 0
        k = samplers.SGHMC(lambda q, rng: grad(q, rng, stop), 0.01)
        return samplers.sample(None, np.ones((3, 2)), kernel=k, n_warmup=50, n_samples=80,
                               thin=2, rng=5, progress=False, checkpoint=path,
                               checkpoint_every=20)
    ref = run(None)
    with pytest.raises(Stop):
        run(tmp_path / "sg.ckpt", stop=150)
    res = run(tmp_path / "sg.ckpt")
    np.testing.assert_array_equal(res.draws, ref.draws)
    np.testing.assert_array_equal(res.stats["grad_norm"], ref.stats["grad_norm"])


@pytest.mark.parametrize("stop_at", [37, 230])
def test_a_compiled_log_density_resumes_bit_for_bit(tmp_path, monkeypatch, stop_at):
    # autodiff.compile's machine rounds differently from the tape by ulps: a resumed run
    # must get the machine's numbers from its first call on, as the uninterrupted run did
    import autodiff as ad
    import samplers.nuts as nuts
    A = np.array([[2.0, 0.3, 0.1], [0.3, 0.5, 0.0], [0.1, 0.0, 1.0]])

    def ld(x):
        return -0.5 * ad.sum((x @ A) * x, axis=-1) + ad.sum(ad.log_sigmoid(x), axis=-1)
    kw = dict(n_chains=4, dim=3, n_warmup=150, n_samples=150, rng=3, progress=False,
              checkpoint_every=20)
    ref = samplers.sample(ad.compile(ld), **kw)
    step, calls = nuts.NUTS.step, [0]

    def dies(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] == stop_at:
            raise Stop
        return step(self, *args, **kwargs)
    monkeypatch.setattr(nuts.NUTS, "step", dies)
    path = tmp_path / "c.ckpt"
    with pytest.raises(Stop):
        samplers.sample(ad.compile(ld), checkpoint=path, **kw)
    monkeypatch.setattr(nuts.NUTS, "step", step)
    res = samplers.sample(ad.compile(ld), checkpoint=path, **kw)
    np.testing.assert_array_equal(res.draws, ref.draws)
    np.testing.assert_array_equal(res.stats["energy"], ref.stats["energy"])
