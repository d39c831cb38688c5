"""Warmup pooled across shards: statistics cross the wire, never draws; the draws do not
depend on the number of workers, and pooling equals the one-process estimate."""
import concurrent.futures as cf
import multiprocessing
import pickle
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import samplers
from samplers.adaptation import dual_averaging, welford_covariance
from samplers.base import HMCInfo, HMCState, KernelParams
from samplers.strategies.stan import merge_dual_averaging, merge_step_sizes, merge_welford

from .helpers import check_moments
from .test_shards import (SCALES, CountingDensity, KillsItsWorkerOnce, _Serial, grad,
                          logdensity)

KW = dict(n_chains=8, dim=3, grad_fn=grad, n_warmup=150, n_samples=300, rng=11, n_shards=4,
          shard_adaptation="pooled", progress=False)


@pytest.fixture(scope="module")
def serial():
    return samplers.sample(logdensity, executor=_Serial(), **KW)


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_pooled_draws_do_not_depend_on_the_number_of_workers(serial, workers):
    with cf.ThreadPoolExecutor(workers) as ex:
        res = samplers.sample(logdensity, executor=ex, **KW)
    np.testing.assert_array_equal(res.draws, serial.draws)
    for k, v in serial.warmup_stats.items():
        np.testing.assert_array_equal(res.warmup_stats[k], v)


def test_pooled_shards_share_one_step_size_and_mass(serial):
    res = serial
    assert res.draws.shape == (8, 300, 3) and res.shards == [(0, 2), (2, 4), (4, 6), (6, 8)]
    assert res.inverse_mass.shape == (3,)                        # one mass, not per chain
    assert np.unique(res.step_size).size == 1
    assert res.warmup_stats["step_size"].shape == (8, 150)
    # during warmup each shard's dual averaging runs on its own between window ends,
    # after warmup every chain has the pooled step size
    assert np.unique(res.warmup_stats["step_size"][:, -1]).size > 1
    np.testing.assert_array_equal(res.stats["step_size"], res.step_size[0])
    check_moments(res.draws, 0.0, SCALES ** 2)
    per_shard = samplers.sample(logdensity, executor=_Serial(),
                                **dict(KW, shard_adaptation="per_shard"))
    assert per_shard.inverse_mass.shape == (8, 3)


def test_one_pooled_shard_repeats_the_one_process_run():
    kw = dict(KW, n_shards=1)
    with cf.ThreadPoolExecutor(2) as ex:
        res = samplers.sample(logdensity, executor=ex, **kw)
    seed = np.random.SeedSequence(11).spawn(1)[0]
    alone = samplers.sample(logdensity, n_chains=8, dim=3, grad_fn=grad, n_warmup=150,
                            n_samples=300, rng=np.random.default_rng(seed), progress=False)
    np.testing.assert_array_equal(res.draws, alone.draws)
    np.testing.assert_array_equal(res.inverse_mass, alone.inverse_mass)
    np.testing.assert_array_equal(res.step_size, alone.step_size)
    for k, v in alone.warmup_stats.items():
        np.testing.assert_array_equal(res.warmup_stats[k], v)


# ----------------------------------------------------- pooled == one process, exactly
class Deterministic:
    """A kernel whose moves and acceptances depend on the positions only (not on the
    step size, the mass or the generator), and whose one-step trial accepts with
    ``exp(-step_size)``: the shards then see exactly the positions and acceptances that
    one process sees, so pooled statistics must equal the one-process estimate."""

    target_accept = 0.8
    extra_params = {}
    step_size, inverse_mass = 1.0, None

    def params(self, position, *, step_size=None, inverse_mass=None, **extra):
        c, d = position.shape
        eps = np.full(c, 1.0) if step_size is None else np.broadcast_to(
            np.asarray(step_size, dtype=float), (c,)).copy()
        inv = np.ones(d) if inverse_mass is None else np.asarray(inverse_mass)
        return KernelParams(eps, inv, 1.0 / np.sqrt(inv) if inv.ndim == 1 else inv)

    def init(self, position):
        q = np.array(position, dtype=float)
        return HMCState(q, -0.5 * (q * q).sum(1), -q)

    @staticmethod
    def _info(acc):
        c = acc.shape[0]
        return HMCInfo(acc, acc > 0.5, np.zeros(c, bool), np.zeros(c), np.ones(c, np.int64))

    def step(self, state, rng, params):
        q = 2.0 * np.sin(3.0 * state.position + 1.0) + 0.1 * state.position
        return self.init(q), self._info(0.78 + 0.2 * np.cos(q.sum(1)))

    def trial(self, state, rng, params):
        return state, self._info(np.exp(-np.asarray(params.step_size, dtype=float)))

    def with_params(self, **kw):
        return self


@pytest.mark.parametrize("n_shards", [2, 3])
@pytest.mark.parametrize("dense", [False, True])
def test_pooled_statistics_equal_the_one_process_estimate(n_shards, dense):
    x0 = np.random.default_rng(1).normal(size=(7, 4))
    kw = dict(n_warmup=150, n_samples=5, rng=0, progress=False, dense_mass=dense)
    one = samplers.sample(None, x0, kernel=Deterministic(), **kw)
    pooled = samplers.sample(None, x0, kernel=Deterministic(), executor=_Serial(),
                             n_shards=n_shards, shard_adaptation="pooled", **kw)
    np.testing.assert_array_equal(pooled.draws, one.draws)        # the same chains
    np.testing.assert_allclose(pooled.inverse_mass, one.inverse_mass, rtol=1e-12)
    np.testing.assert_allclose(pooled.step_size, one.step_size, rtol=1e-12)
    per_shard = samplers.sample(None, x0, kernel=Deterministic(), executor=_Serial(),
                                n_shards=n_shards, **kw)
    assert not np.allclose(per_shard.inverse_mass[0], one.inverse_mass, atol=0)  # not pooled
    assert not np.allclose(per_shard.step_size, one.step_size, atol=0)


@settings(max_examples=25, deadline=None)
@given(cuts=st.lists(st.integers(1, 11), min_size=1, max_size=3, unique=True),
       dense=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_merged_welford_is_welford_of_all_the_chains(cuts, dense, seed):
    init, update, final = welford_covariance(diagonal=not dense)
    draws = np.random.default_rng(seed).normal(size=(6, 12, 3)) * [1.0, 5.0, 0.1] + 2.0
    edges = [0, *sorted(cuts), 12]
    whole, parts = init(3), [init(3) for _ in edges[:-1]]
    for x in draws:                                   # 6 iterations of 12 chains
        whole = update(whole, x)
        parts = [update(p, x[a:b]) for p, a, b in zip(parts, edges[:-1], edges[1:])]
    merged = merge_welford(parts)
    assert merged.count == whole.count
    np.testing.assert_allclose(merged.mean, whole.mean, rtol=1e-12)
    np.testing.assert_allclose(merged.m2, whole.m2, rtol=1e-11)
    np.testing.assert_allclose(final(merged), final(whole), rtol=1e-11)
    assert merge_welford(parts[:1]) is parts[0]


def test_merged_dual_averaging_is_dual_averaging_of_the_pooled_acceptance():
    init, update, final = dual_averaging(target=0.8)
    acc = np.random.default_rng(3).uniform(size=(40, 10))        # 40 iterations, 10 chains
    whole, a, b = init(0.3), init(0.3), init(0.3)
    for x in acc:
        whole, a, b = update(whole, x), update(a, x[:3]), update(b, x[3:])
    merged = merge_dual_averaging([a, b], [3, 7])
    for f in ("log_step_size", "log_step_size_avg", "avg_error"):
        np.testing.assert_allclose(getattr(merged, f), getattr(whole, f), rtol=1e-12)
    assert final(merged) == pytest.approx(final(whole), rel=1e-12)
    with pytest.raises(ValueError, match="same update count and mu"):
        merge_dual_averaging([a, init(0.5)], [1, 1])
    assert merge_step_sizes([0.5, 2.0], [1, 1]) == pytest.approx(1.0)
    assert merge_step_sizes([0.37], [5]) == 0.37


# ------------------------------------------------------------- what crosses the wire
class _Wire(cf.Executor):
    """Runs each task at submit after a pickle round trip of its arguments and result
    (what a process pool sends), logging each message's function, size and contents."""

    def __init__(self):
        self.log = []

    def submit(self, fn, *args, **kwargs):
        sent = pickle.dumps((args, kwargs))
        args, kwargs = pickle.loads(sent)
        f = cf.Future()
        try:
            out = fn(*args, **kwargs)
            back = pickle.dumps(out)
            self.log.append((fn.__name__, args, len(sent), pickle.loads(back), len(back)))
            f.set_result(pickle.loads(back))
        except BaseException as e:           # noqa: B036
            f.set_exception(e)
        return f


def _arrays(obj):
    """Every ndarray inside ``obj`` (dicts, tuples, lists, NamedTuples)."""
    if isinstance(obj, np.ndarray):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _arrays(v)
    elif isinstance(obj, (tuple, list)):
        for v in obj:
            yield from _arrays(v)


def _adaptation_bytes(n_samples):
    wire = _Wire()
    res = samplers.sample(logdensity, executor=wire, **dict(KW, n_samples=n_samples))
    phases = [m for m in wire.log if m[0] == "pooled_phase"]
    return res, phases, sum(m[2] + m[4] for m in phases), wire.log


def test_only_statistics_cross_the_wire_during_adaptation(serial):
    res, phases, total, log = _adaptation_bytes(300)
    np.testing.assert_array_equal(res.draws, serial.draws)     # pickled both ways: same
    # 4 shards x (start, one run and one search per window end, the last run)
    n_windows = sum(1 for stage, end in samplers.adaptation.window_schedule(150)
                    if (stage, end) == (1, True))
    assert len(phases) == 4 * (2 + 2 * n_windows)
    c_s, d = 2, 3
    for name, args, _, out, _ in phases:
        carry_in, _, message = args
        assert set(message) <= {"kind", "step_size", "until", "inverse_mass"}
        # positions, gradients, masses: at most one [C_s, D] block per array
        for x in [*_arrays(carry_in), *_arrays(message), *_arrays(out[0])]:
            assert x.size <= max(c_s * d, d * d), x.shape
        report = out[1]
        stats = report.pop("warmup_stats", {})
        assert set(report) <= {"step_size", "statistics"}
        for x in _arrays(report):
            assert x.size <= d * d, x.shape
        for k, v in stats.items():                        # [C_s, transitions of the phase]
            assert v.shape[0] == c_s and v.shape[1] <= 150
    # nothing in the adaptation phases grows with the number of draws (the pickled
    # options hold n_samples: 300 and 3000 take the same bytes)
    _, _, total_long, log_long = _adaptation_bytes(3000)
    assert total_long == total
    sampling = [m[4] for m in log_long if m[0] == "_sample_after_pooled"]
    assert min(sampling) > 2 * 3000 * 3 * 8                   # the draws come back once


# ------------------------------------------------------------------- errors, engines
def test_pooled_mode_errors():
    with pytest.raises(ValueError, match="shard_adaptation: expected one of"):
        samplers.sample(logdensity, executor=_Serial(), **dict(KW, shard_adaptation="all"))
    with pytest.raises(ValueError, match="shard_adaptation: only with an executor"):
        samplers.sample(logdensity, n_chains=2, dim=3, grad_fn=grad, n_warmup=10,
                        n_samples=10, shard_adaptation="pooled")
    with pytest.raises(ValueError, match=r"ChEESAdaptation cannot pool.*adaptation='stan'"):
        samplers.sample(logdensity, executor=_Serial(),
                        **dict(KW, adaptation="chees", kernel="hmc"))


def _raises_on_three_chains(q):
    if q.shape[0] == 3:
        raise ArithmeticError("boom")
    return grad(q)


def test_a_pooled_shard_that_raises_is_named():
    kw = dict(KW, n_chains=7, n_shards=3, grad_fn=_raises_on_three_chains)
    with pytest.raises(ArithmeticError, match="boom") as err:     # shards: 2, 3, 2 chains
        samplers.sample(logdensity, executor=_Serial(), **kw)
    assert "raised by shard 1 (chains 2-4" in "".join(err.value.__notes__)


def test_pooled_on_a_dask_local_cluster(serial):
    distributed = pytest.importorskip("distributed", reason="dask.distributed not installed "
                                      "(pip install zsarray[distributed])")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        CountingDensity.pickled = 0
        res = samplers.sample(CountingDensity(), executor=client, **KW)
    assert CountingDensity.pickled == 1        # scattered once, not sent with each phase
    np.testing.assert_array_equal(res.draws, serial.draws)
    np.testing.assert_array_equal(res.warmup_stats["acceptance"],
                                  serial.warmup_stats["acceptance"])


def test_a_killed_pool_worker_during_pooled_warmup_loses_nothing(tmp_path, serial):
    marker = tmp_path / "killed"
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(2, mp_context=ctx) as pool:
        with pytest.warns(samplers.shards.ShardRerunWarning, match="during a pooled run"):
            res = samplers.sample(KillsItsWorkerOnce(marker, after=30), executor=pool, **KW)
    assert marker.exists()                         # a worker really was killed
    np.testing.assert_array_equal(res.draws, serial.draws)


def test_a_killed_dask_worker_during_pooled_warmup_loses_nothing(tmp_path, serial):
    distributed = pytest.importorskip("distributed", reason="dask.distributed not installed")
    marker = tmp_path / "killed"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        res = samplers.sample(KillsItsWorkerOnce(marker, after=30), executor=client, **KW)
    assert marker.exists()
    np.testing.assert_array_equal(res.draws, serial.draws)


def test_a_pooled_run_resumes_from_its_shard_checkpoints(tmp_path, serial):
    calls = [0, None]

    def counted(q):
        calls[0] += 1
        if calls[0] == calls[1]:
            raise KeyError("killed")
        return grad(q)
    samplers.sample(logdensity, executor=_Serial(), **dict(KW, grad_fn=counted))
    calls[:] = [0, int(calls[0] * 0.8)]                 # fails in a shard's sampling
    kw = dict(KW, checkpoint=tmp_path / "p.ckpt", checkpoint_every=20)
    with pytest.raises(KeyError, match="killed"):
        samplers.sample(logdensity, executor=_Serial(), **dict(kw, grad_fn=counted))
    saved = sorted(p.name for p in tmp_path.iterdir())
    assert saved[:2] == ["p.ckpt.shard0", "p.ckpt.shard1"] and "p.ckpt.warmup" in saved
    # the rerun starts from the end of the pooled warmup: no warmup phase runs again
    wire = _Wire()
    res = samplers.sample(logdensity, executor=wire, **kw)
    assert {m[0] for m in wire.log} == {"_sample_after_pooled"}
    np.testing.assert_array_equal(res.draws, serial.draws)
    np.testing.assert_array_equal(res.warmup_stats["step_size"],
                                  serial.warmup_stats["step_size"])
    with pytest.raises(ValueError, match=r"p.ckpt.warmup' was written by a different run"):
        samplers.sample(logdensity, executor=_Serial(), **dict(kw, rng=12))


def ad_logdensity(q):
    import autodiff as ad
    return -0.5 * ad.sum((q / SCALES) ** 2, axis=-1)


@pytest.mark.parametrize("kept", [0, 8])       # a new kernel every phase, or the worker's
def test_a_pooled_compiled_log_density_repeats_the_one_process_run(monkeypatch, kept):
    monkeypatch.setattr(samplers.shards, "_KERNELS_KEPT", kept)
    kw = dict(n_chains=6, dim=3, n_warmup=120, n_samples=50, progress=False)
    res = samplers.sample(ad_logdensity, executor=_Wire(), n_shards=1, rng=4,
                          shard_adaptation="pooled", **kw)
    seed = np.random.SeedSequence(4).spawn(1)[0]
    alone = samplers.sample(ad_logdensity, rng=np.random.default_rng(seed), **kw)
    np.testing.assert_array_equal(res.draws, alone.draws)
    np.testing.assert_array_equal(res.warmup_stats["energy"], alone.warmup_stats["energy"])
    assert not samplers.shards._KERNELS                  # the shard's kernel was let go
