"""Chains sharded over an executor: the same draws whatever the number of workers."""
import concurrent.futures as cf
import multiprocessing

import numpy as np
import pytest

import samplers
from samplers.shards import shard_bounds

from .helpers import check_moments

SCALES = np.array([0.5, 2.0, 1.0])


def logdensity(q):                       # module level: picklable for process pools
    return -0.5 * ((q / SCALES) ** 2).sum(1)


def grad(q):
    return -q / SCALES ** 2


def failing(q):
    if (q[:, 0] > 1e9).any():
        raise ArithmeticError("boom")
    return grad(q) * np.nan if q.shape[0] == 3 else grad(q)


KW = dict(n_chains=8, dim=3, grad_fn=grad, n_warmup=200, n_samples=300, rng=11, n_shards=4)


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_draws_do_not_depend_on_the_number_of_workers(workers):
    with cf.ThreadPoolExecutor(workers) as ex:
        res = samplers.sample(logdensity, executor=ex, **KW)
    ref = samplers.sample(logdensity, executor=_Serial(), **KW)
    np.testing.assert_array_equal(res.draws, ref.draws)
    assert res.draws.shape == (8, 300, 3) and res.shards == [(0, 2), (2, 4), (4, 6), (6, 8)]
    assert res.step_size.shape == (8,) and res.inverse_mass.shape == (8, 3)
    check_moments(res.draws, 0.0, SCALES ** 2)


def test_a_shard_is_one_ordinary_run():
    res = samplers.sample(logdensity, executor=_Serial(), **KW)
    seed = np.random.SeedSequence(11).spawn(4)[2]
    alone = samplers.sample(logdensity, n_chains=2, dim=3, grad_fn=grad, n_warmup=200,
                            n_samples=300, rng=np.random.default_rng(seed), progress=False)
    np.testing.assert_array_equal(res.draws[4:6], alone.draws)


def test_process_pool_and_given_inits():
    x0 = np.random.default_rng(0).normal(size=(4, 3))
    ctx = multiprocessing.get_context("fork")
    with cf.ProcessPoolExecutor(2, mp_context=ctx) as ex:
        res = samplers.sample(logdensity, x0, executor=ex, grad_fn=grad, n_warmup=100,
                              n_samples=50, n_shards=2, rng=3)
    ref = samplers.sample(logdensity, x0, executor=_Serial(), grad_fn=grad, n_warmup=100,
                          n_samples=50, n_shards=2, rng=3)
    np.testing.assert_array_equal(res.draws, ref.draws)


def test_a_failing_shard_is_named():
    with pytest.raises(ValueError) as err:
        samplers.sample(logdensity, executor=_Serial(), n_chains=5, dim=3, grad_fn=failing,
                        n_warmup=10, n_samples=5, n_shards=2)
    note = "".join(getattr(err.value, "__notes__", []))
    assert "shard 1 (chains 2-4; chain numbers in the message count from chain 2)" in note


def test_shard_bounds_and_errors():
    assert shard_bounds(10, 3) == [(0, 3), (3, 7), (7, 10)]
    with pytest.raises(ValueError, match=r"n_shards: expected an integer in \[1, n_chains=4\]"):
        samplers.sample(logdensity, executor=_Serial(), n_chains=4, dim=3, n_shards=5)
    with pytest.raises(ValueError, match="n_shards: only with an executor"):
        samplers.sample(logdensity, n_chains=4, dim=3, n_shards=2)
    with pytest.raises(TypeError, match="executor: expected a concurrent.futures.Executor"):
        samplers.sample(logdensity, n_chains=4, dim=3, executor=object())


class _Serial(cf.Executor):
    """Runs each task at submit (the reference)."""

    def submit(self, fn, *args, **kwargs):
        f = cf.Future()
        try:
            f.set_result(fn(*args, **kwargs))
        except BaseException as e:           # noqa: B036
            f.set_exception(e)
        return f


def test_threads_share_a_compiled_autodiff_density():
    from samplers.suite import MODELS
    m = MODELS["eight_schools-eight_schools_noncentered"]
    kw = dict(n_chains=8, dim=m.dim, n_warmup=100, n_samples=100, rng=5, n_shards=4)
    with cf.ThreadPoolExecutor(4) as ex:
        a = samplers.sample(m.logdensity, executor=ex, **kw)
    b = samplers.sample(m.logdensity, executor=_Serial(), **kw)
    np.testing.assert_array_equal(a.draws, b.draws)


def test_dask_local_cluster():
    distributed = pytest.importorskip("distributed", reason="dask.distributed not installed "
                                      "(pip install zsarray[distributed])")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        res = samplers.sample(logdensity, executor=client, **KW)
    ref = samplers.sample(logdensity, executor=_Serial(), **KW)
    np.testing.assert_array_equal(res.draws, ref.draws)


class CountingDensity:
    """A log density that counts how often it is pickled (in this process)."""

    pickled = 0

    def __call__(self, q):
        return logdensity(q)

    def __reduce__(self):
        type(self).pickled += 1
        return (CountingDensity, ())


def test_dask_sends_the_log_density_once():
    distributed = pytest.importorskip("distributed", reason="dask.distributed not installed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        CountingDensity.pickled = 0
        res = samplers.sample(CountingDensity(), executor=client, **KW)
    assert CountingDensity.pickled == 1                     # 4 shards, 2 workers
    ref = samplers.sample(logdensity, executor=_Serial(), **KW)
    np.testing.assert_array_equal(res.draws, ref.draws)


class KillsItsWorkerOnce:
    """A log density whose first evaluation past ``after`` calls in a worker process
    kills that process (SIGKILL, as the OOM killer would), once per marker file; every
    other evaluation is ``logdensity``."""

    def __init__(self, marker, after=200):
        self.marker, self.after, self.calls = str(marker), after, 0

    def __call__(self, q):
        import os
        import signal
        self.calls += 1
        if self.calls > self.after and multiprocessing.parent_process() is not None:
            try:
                fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass                                  # already killed one worker
            else:
                os.close(fd)
                os.kill(os.getpid(), signal.SIGKILL)
        return logdensity(q)


def _kill_kw():
    return dict(KW, n_warmup=150, n_samples=150)


def test_a_killed_pool_worker_loses_nothing(tmp_path):
    marker = tmp_path / "killed"
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(2, mp_context=ctx) as pool:
        with pytest.warns(samplers.shards.ShardRerunWarning, match="rerun in this process"):
            res = samplers.sample(KillsItsWorkerOnce(marker), executor=pool, **_kill_kw())
    assert marker.exists()                         # a worker really was killed
    ref = samplers.sample(logdensity, executor=_Serial(), **_kill_kw())
    assert res.draws.shape == ref.draws.shape == (8, 150, 3)
    np.testing.assert_array_equal(res.draws, ref.draws)


def test_a_killed_dask_worker_loses_nothing(tmp_path):
    distributed = pytest.importorskip("distributed", reason="dask.distributed not installed")
    marker = tmp_path / "killed"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        res = samplers.sample(KillsItsWorkerOnce(marker), executor=client, **_kill_kw())
    assert marker.exists()
    ref = samplers.sample(logdensity, executor=_Serial(), **_kill_kw())
    np.testing.assert_array_equal(res.draws, ref.draws)
