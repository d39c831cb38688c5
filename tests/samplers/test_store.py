"""Draws streamed to a zarr store: the same numbers as in memory, bounded buffers."""
import warnings

import numpy as np
import pytest

import samplers
from samplers.store import ZarrSink, ZarrStats, open_store, open_warmup_stats

from .helpers import normal

zarr = pytest.importorskip("zarr", reason="zarr not installed (pip install zarr)")
SCALES = np.array([0.5, 2.0, 1.0])


def _run(**kw):
    ld, g = normal(SCALES)
    args = dict(n_chains=4, dim=3, grad_fn=g, n_warmup=100, n_samples=250, thin=2, rng=3,
                progress=False)
    args.update(kw)
    return samplers.sample(ld, **args)


def test_store_round_trip(tmp_path):
    ref = _run()
    res = _run(store=tmp_path / "run.zarr", store_chunk=64)
    assert isinstance(res.draws, zarr.Array) and res.draws.chunks == (4, 64, 3)
    np.testing.assert_array_equal(res.draws[:], ref.draws)
    np.testing.assert_array_equal(res.logdensity[:], ref.logdensity)
    for k, v in ref.stats.items():
        np.testing.assert_array_equal(res.stats[k][:], v)
    assert res.n_divergent == ref.n_divergent
    draws, logp, stats = open_store(tmp_path / "run.zarr")     # reopened later
    np.testing.assert_array_equal(draws[:], ref.draws)
    assert set(stats) == set(ref.stats)
    res.summary(print_table=False)


def test_store_with_checkpoint_resumes_bit_for_bit(tmp_path):
    ref = _run()
    ld, g = normal(SCALES)
    calls = [0]

    def grad(q):
        calls[0] += 1
        if calls[0] == 900:
            raise KeyError("killed")
        return g(q)
    kw = dict(store=tmp_path / "s.zarr", store_chunk=32, checkpoint=tmp_path / "s.ckpt",
              checkpoint_every=40)
    with pytest.raises(KeyError):
        _run(grad_fn=grad, **kw)
    res = _run(**kw)
    np.testing.assert_array_equal(res.draws[:], ref.draws)
    np.testing.assert_array_equal(res.stats["acceptance"][:], ref.stats["acceptance"])


def test_an_interrupt_cuts_the_store_to_the_completed_draws(tmp_path):
    ld, g = normal(SCALES)
    calls = [0]

    def grad(q):
        calls[0] += 1
        if calls[0] == 1300:
            raise KeyboardInterrupt
        return g(q)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        res = _run(grad_fn=grad, store=tmp_path / "i.zarr", store_chunk=50)
    assert any(issubclass(x.category, samplers.InterruptedWarning) for x in w)
    n = res.draws.shape[1]
    assert 0 < n < 250 and res.stats["acceptance"].shape == (4, n)
    ref = _run()
    np.testing.assert_array_equal(res.draws[:], ref.draws[:, :n])


def test_the_sink_holds_one_chunk_in_memory(tmp_path):
    sink = ZarrSink(tmp_path / "m.zarr", n=10_000, c=100, d=50, dtype=np.float64,
                    has_lp=True, chunk=20)
    assert sink.buf.nbytes == 20 * 100 * 50 * 8          # not 10,000 draws
    with pytest.raises(ValueError, match="store_chunk: expected a positive integer"):
        ZarrSink(tmp_path / "n.zarr", 10, 2, 2, np.float64, True, 0)


def test_warmup_stats_are_streamed_to_the_store(tmp_path):
    ref = _run()
    res = _run(store=tmp_path / "w.zarr", store_chunk=16)
    assert set(res.warmup_stats) == set(ref.warmup_stats)
    for k, v in ref.warmup_stats.items():
        arr = res.warmup_stats[k]
        assert isinstance(arr, zarr.Array) and arr.chunks == (4, 16), k
        np.testing.assert_array_equal(arr[:], v)
    again = open_warmup_stats(tmp_path / "w.zarr")              # reopened later
    np.testing.assert_array_equal(again["acceptance"][:], ref.warmup_stats["acceptance"])
    # a run without warmup on the same path leaves no warmup statistics behind
    _run(store=tmp_path / "w.zarr", n_warmup=0)
    assert open_warmup_stats(tmp_path / "w.zarr") == {}


def test_the_warmup_recorder_holds_one_chunk_in_memory(tmp_path):
    samplers.store.new_store(tmp_path / "r.zarr")
    rec = ZarrStats(tmp_path / "r.zarr", "warmup_stats", n=1000, c=50, chunk=10)
    info = samplers.base.HMCInfo(*[np.zeros(50)] * len(samplers.base.HMCInfo._fields))
    for t in range(25):
        rec.record(t, info, np.full(50, 0.1), np.zeros(50, dtype=bool))
    assert rec.rec.n == 10 and rec.rec.bufs["acceptance"].shape == (10, 50)
    got = rec.result(25)                                        # cut after 25
    assert got["step_size"].shape == (50, 25)
    np.testing.assert_array_equal(got["step_size"][:], 0.1)


@pytest.mark.parametrize("kill_at", [150, 900])       # during warmup, during sampling
def test_warmup_stats_in_the_store_survive_a_resume(tmp_path, kill_at):
    ref = _run()
    ld, g = normal(SCALES)
    calls = [0]

    def grad(q):
        calls[0] += 1
        if calls[0] == kill_at:
            raise KeyError("killed")
        return g(q)
    kw = dict(store=tmp_path / "s.zarr", store_chunk=16, checkpoint=tmp_path / "s.ckpt",
              checkpoint_every=25)
    with pytest.raises(KeyError):
        _run(grad_fn=grad, **kw)
    res = _run(**kw)
    on_disk = open_warmup_stats(tmp_path / "s.zarr")
    for k, v in ref.warmup_stats.items():
        assert isinstance(res.warmup_stats[k], zarr.Array)
        np.testing.assert_array_equal(res.warmup_stats[k][:], v)
        np.testing.assert_array_equal(on_disk[k][:], v)
    np.testing.assert_array_equal(res.draws[:], ref.draws)


def test_an_interrupt_during_warmup_keeps_its_statistics_in_the_store(tmp_path):
    ld, g = normal(SCALES)
    calls = [0]

    def grad(q):
        calls[0] += 1
        if calls[0] == 300:
            raise KeyboardInterrupt
        return g(q)
    with pytest.raises(KeyboardInterrupt, match=r"during warmup, after (\d+) of 100.*"
                                                r"holds its warmup statistics") as err:
        _run(grad_fn=grad, store=tmp_path / "i.zarr", store_chunk=16)
    done = int(str(err.value).split("after ")[1].split(" of")[0])
    got = open_warmup_stats(tmp_path / "i.zarr")
    assert 16 < done < 100 and got["acceptance"].shape == (4, done)
    ref = _run()
    for k, v in ref.warmup_stats.items():
        np.testing.assert_array_equal(got[k][:], v[:, :done])


def test_store_dtype_float32_halves_the_draws(tmp_path):
    ref = _run()
    res = _run(store=tmp_path / "f.zarr", store_dtype="float32")
    assert res.draws.dtype == np.float32 and res.logdensity.dtype == np.float64
    np.testing.assert_array_equal(res.draws[:], ref.draws.astype(np.float32))
    np.testing.assert_array_equal(res.logdensity[:], ref.logdensity)
    with pytest.raises(ValueError, match="store_dtype: only with a store"):
        _run(store_dtype="float32")
    with pytest.raises(ValueError, match="store_dtype: expected a floating dtype"):
        _run(store=tmp_path / "g.zarr", store_dtype="int32")


def test_a_store_with_an_executor_is_an_error_not_ignored(tmp_path):
    import concurrent.futures as cf
    with cf.ThreadPoolExecutor(1) as ex, \
            pytest.raises(ValueError, match="store: not supported with an executor"):
        _run(store=tmp_path / "e.zarr", executor=ex, n_shards=2)
    assert not (tmp_path / "e.zarr").exists()


@pytest.mark.parametrize("stop_at", [300, 1300])      # during warmup, during sampling
def test_an_interrupted_store_resumes_from_its_checkpoint(tmp_path, stop_at):
    ld, g = normal(SCALES)
    calls = [0]

    def grad(q):
        calls[0] += 1
        if calls[0] == stop_at:
            raise KeyboardInterrupt
        return g(q)
    kw = dict(store=tmp_path / "r.zarr", store_chunk=16, checkpoint=tmp_path / "r.ckpt",
              checkpoint_every=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            cut = _run(grad_fn=grad, **kw)             # the arrays are cut to the work done
            assert cut.draws.shape[1] < 250
        except KeyboardInterrupt:
            assert open_warmup_stats(tmp_path / "r.zarr")["acceptance"].shape[1] < 100
    res = _run(**kw)                                   # resumes and grows them back
    ref = _run()
    assert res.draws.shape == (4, 250, 3)
    np.testing.assert_array_equal(res.draws[:], ref.draws)
    for k, v in ref.warmup_stats.items():
        np.testing.assert_array_equal(res.warmup_stats[k][:], v)
    np.testing.assert_array_equal(res.stats["energy"][:], ref.stats["energy"])
