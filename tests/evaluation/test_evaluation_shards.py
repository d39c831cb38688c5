"""is_loglikelihood and AIS over a data set split by rows, through executors; AIS
checkpoints.

The model is the linear-Gaussian one of test_evaluation.py, written for any number of
rows: z_n ~ N(0, I_2), x_n | z_n ~ N(W z_n, sigma^2 I_3), so x_n ~ N(0, W W^T + sigma^2 I)
exactly. Everything a worker process needs is defined at module level (picklable).
"""
import concurrent.futures as cf
import multiprocessing
import os
import pickle
import signal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import autodiff as ad
import samplers
import zsarray as zs
from zsarray import evaluation
from zsarray.row_blocks import block_bounds, shards_of

from .test_evaluation import DX, DZ, EXACT, SIGMA, W, X

K = 8
LOG2PI = np.log(2 * np.pi)


class LogJoint:
    """``log p(x, z)`` for any number of rows: z [K, n, DZ], x [n, DX] -> [K, n]."""

    def __call__(self, v):
        z, x = v["z"], v["x"]
        r = x - ad.matmul(z, W.T)
        return (-0.5 * ad.sum(z * z, axis=-1) - 0.5 * ad.sum(r * r, axis=-1) / SIGMA ** 2
                - DX * np.log(SIGMA) - 0.5 * (DZ + DX) * LOG2PI)


@zs.meta_bayesian_net()
def prior(k, n, rng, observed=None):
    bn = zs.BayesianNet(observed, rng=rng)
    bn.normal("z", np.zeros((n, DZ)), std=1.0, group_ndims=1, n_samples=k)
    return bn


def prior_rows(rows, rng):
    """The AIS proposal of some rows: the prior, drawing with the block's rng."""
    return {"proposal": prior(K, rows.stop - rows.start, rng)}


def posterior_rows(rows, rng, k=500):
    """The IS proposal of some rows: near the exact posterior (inflated, mean-field)."""
    cov = np.linalg.inv(np.eye(DZ) + W.T @ W / SIGMA ** 2)
    mean = X[rows] @ W @ cov / SIGMA ** 2
    q = zs.BayesianNet(rng=rng)
    q.normal("z", mean, std=1.5 * np.sqrt(np.diag(cov)) * np.ones_like(mean),
             group_ndims=1, n_samples=k)
    return {"proposal": q}


def wrong_rows(rows, rng):
    """Builds a one-row block for two rows (its data broadcast: no error until the
    rows are counted)."""
    n = rows.stop - rows.start
    return {"proposal": prior(K, 2 if n == 1 else n, rng)}


def _ais(n_temperatures=40, model=None, k=K, **kw):
    return evaluation.AIS(LogJoint() if model is None else model,
                          prior(k, len(X), np.random.default_rng(0)),
                          {"step_size": 0.2, "n_leapfrogs": 3}, {"x": X}, "z",
                          n_temperatures=n_temperatures, n_adapt=min(10, n_temperatures),
                          **kw)


def _same(a, b):
    np.testing.assert_array_equal(a.log_weights, b.log_weights)
    np.testing.assert_array_equal(a.log_marginal, b.log_marginal)
    np.testing.assert_array_equal(a.stderr, b.stderr)
    np.testing.assert_array_equal(a.samples["z"], b.samples["z"])
    np.testing.assert_array_equal(a.acceptance, b.acceptance)
    np.testing.assert_array_equal(a.step_size, b.step_size)


class _Serial(cf.Executor):
    """Runs each task at submit."""

    def submit(self, fn, *args, **kwargs):
        f = cf.Future()
        try:
            f.set_result(fn(*args, **kwargs))
        except BaseException as e:           # noqa: B036
            f.set_exception(e)
        return f


# ------------------------------------------------------------------ one estimate
@pytest.mark.parametrize("workers, n_shards", [(1, None), (2, 2), (4, 4), (2, 1)])
def test_ais_estimate_does_not_depend_on_workers_or_shards(workers, n_shards):
    ref = _ais().run(rng=3, rows=prior_rows, block_rows=2)      # 5 blocks, in this process
    with cf.ThreadPoolExecutor(workers) as ex:
        res = _ais().run(rng=3, rows=prior_rows, block_rows=2, executor=ex, n_shards=n_shards)
    _same(res, ref)
    assert res.log_weights.shape == (K, 10) and res.samples["z"].shape == (K, 10, DZ)
    assert res.acceptance.shape == (5, 40) and res.step_size.shape == (5,)
    assert res.blocks == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10)]


def test_a_block_is_one_ordinary_ais_run():
    """Block b: SeedSequence(seed).spawn(n_blocks)[b]; its first child draws the
    proposal, its second drives the HMC; the block is annealed on its own."""
    res = _ais().run(rng=3, rows=prior_rows, block_rows=4)       # blocks 0-3, 4-7, 8-9
    s = np.random.SeedSequence(3).spawn(3)[1]
    init, hmc = s.spawn(2)
    alone = evaluation.AIS(LogJoint(), prior(K, 4, np.random.default_rng(init)),
                           {"step_size": 0.2, "n_leapfrogs": 3}, {"x": X[4:8]}, "z",
                           n_temperatures=40, n_adapt=10).run(rng=np.random.default_rng(hmc))
    np.testing.assert_array_equal(res.log_weights[:, 4:8], alone.log_weights)
    np.testing.assert_array_equal(res.samples["z"][:, 4:8], alone.samples["z"])
    np.testing.assert_array_equal(res.acceptance[1], alone.acceptance)
    assert res.step_size[1] == alone.step_size


def test_ais_by_rows_matches_the_exact_log_marginal():
    ais = evaluation.AIS(LogJoint(), prior(64, len(X), 0), {"step_size": 0.2,
                                                            "n_leapfrogs": 5},
                         {"x": X}, "z", n_temperatures=200, n_adapt=30)
    rows = lambda r, rng: {"proposal": prior(64, r.stop - r.start, rng)}   # noqa: E731
    res = ais.run(rng=1, rows=rows, block_rows=5)
    assert res.log_marginal.shape == (10,) and res.stderr.shape == (10,)
    assert abs(res.total_log_marginal - EXACT.sum()) < 3 * res.total_stderr
    assert np.all(np.abs(res.log_marginal - EXACT) < 3 * res.stderr + 1e-3)


def test_is_loglikelihood_by_rows():
    ref = evaluation.is_loglikelihood(LogJoint(), {"x": X}, axis=0, rows=posterior_rows,
                                      rng=5, block_rows=3)
    assert ref.shape == (10,)
    for workers, n_shards in [(1, None), (2, 2), (4, 4)]:
        with cf.ThreadPoolExecutor(workers) as ex:
            res = evaluation.is_loglikelihood(LogJoint(), {"x": X}, axis=0,
                                              rows=posterior_rows, rng=5, block_rows=3,
                                              executor=ex, n_shards=n_shards)
        np.testing.assert_array_equal(res.data, ref.data)
    # block 2 (rows 6-8) is the plain estimate with the proposal of its own stream
    init = np.random.SeedSequence(5).spawn(4)[2].spawn(1)[0]
    q = posterior_rows(slice(6, 9), np.random.default_rng(init))["proposal"]
    alone = evaluation.is_loglikelihood(LogJoint(), {"x": X[6:9]}, q, axis=0)
    np.testing.assert_array_equal(ref.data[6:9], alone.data)
    # within three delta-method standard errors of the exact log p(x) (500 particles)
    lw = (LogJoint()({"x": X[6:9], "z": q["z"].tensor}) - q["z"].cond_log_p).data
    _, se = evaluation._log_mean_and_stderr(lw, 0)
    assert np.all(np.abs(ref.data[6:9] - EXACT[6:9]) < 3 * se + 1e-9)


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_process_pool(start):
    ref = _ais().run(rng=3, rows=prior_rows, block_rows=3)
    ctx = multiprocessing.get_context(start)
    with cf.ProcessPoolExecutor(2, mp_context=ctx) as ex:
        res = _ais().run(rng=3, rows=prior_rows, block_rows=3, executor=ex, n_shards=2)
    _same(res, ref)


class CountingRows:
    """``prior_rows``, counting how often it is pickled in this process."""

    pickled = 0

    def __call__(self, rows, rng):
        return prior_rows(rows, rng)

    def __reduce__(self):
        type(self).pickled += 1
        return (CountingRows, ())


def test_dask_local_cluster_sends_the_rows_function_once():
    distributed = pytest.importorskip("distributed", reason="dask.distributed not installed "
                                      "(pip install zsarray[distributed])")
    ref = _ais().run(rng=3, rows=prior_rows, block_rows=3)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        CountingRows.pickled = 0
        res = _ais().run(rng=3, rows=CountingRows(), block_rows=3, executor=client)
        assert CountingRows.pickled == 1                    # 4 shards, 2 workers
        est = evaluation.is_loglikelihood(LogJoint(), {"x": X}, axis=0, rows=posterior_rows,
                                          rng=5, block_rows=3, executor=client)
    _same(res, ref)
    np.testing.assert_array_equal(est.data, evaluation.is_loglikelihood(
        LogJoint(), {"x": X}, axis=0, rows=posterior_rows, rng=5, block_rows=3).data)


class KillsItsWorkerOnce:
    """``prior_rows``, but the first block built in a worker process past ``after``
    blocks kills that process (SIGKILL), once per marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __call__(self, rows, rng):
        if rows.start >= 6 and multiprocessing.parent_process() is not None:
            try:
                fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.close(fd)
                os.kill(os.getpid(), signal.SIGKILL)
        return prior_rows(rows, rng)


def test_a_killed_pool_worker_loses_nothing(tmp_path):
    marker = tmp_path / "killed"
    ctx = multiprocessing.get_context("fork")
    with cf.ProcessPoolExecutor(2, mp_context=ctx) as pool:
        with pytest.warns(samplers.shards.ShardRerunWarning, match="rerun in this process"):
            res = _ais().run(rng=3, rows=KillsItsWorkerOnce(marker), block_rows=3,
                             executor=pool)
    assert marker.exists()
    _same(res, _ais().run(rng=3, rows=prior_rows, block_rows=3))


# ------------------------------------------------------------------ errors
class FailsOnRow:
    """``LogJoint``, raising when the data hold row ``row`` of X."""

    def __init__(self, row):
        self.row = row

    def __call__(self, v):
        if any(np.array_equal(r, X[self.row]) for r in np.asarray(v["x"])):
            raise ArithmeticError("boom")
        return LogJoint()(v)


def test_errors_name_the_rows():
    with pytest.raises(ArithmeticError, match="boom") as err:
        _ais(model=FailsOnRow(7)).run(rng=0, rows=prior_rows, block_rows=3,
                                      executor=_Serial(), n_shards=2)
    notes = "".join(getattr(err.value, "__notes__", []))
    assert "raised on rows 6-8 of the data set" in notes
    assert "raised by shard 1 (rows 6-9)" in notes
    with pytest.raises(ValueError, match=r"the chain shape of rows 9-9 has shape \(8, 2\); "
                                         r"its axis 1 \(the rows\) should have length 1"):
        _ais().run(rng=0, rows=wrong_rows, block_rows=3)
    with pytest.raises(ValueError, match="n_shards: expected an integer in \\[1, n_blocks=4\\]"):
        _ais().run(rng=0, rows=prior_rows, block_rows=3, executor=_Serial(), n_shards=5)
    for kw in (dict(executor=_Serial()), dict(n_shards=2), dict(block_rows=2)):
        with pytest.raises(ValueError, match="only with rows="):
            _ais().run(rng=0, **kw)
    with pytest.raises(ValueError, match="n_shards: only with rows="):
        _ais().run(rng=0, rows=prior_rows, n_shards=2)
    with pytest.raises(TypeError, match="rng: with rows=, expected an int seed"):
        _ais().run(rows=prior_rows)
    with pytest.raises(TypeError, match="return a dict with 'proposal'"):
        _ais().run(rng=0, rows=lambda r, rng: prior(K, 2, rng))
    with pytest.raises(ValueError, match="block_rows: expected a positive integer"):
        _ais().run(rng=0, rows=prior_rows, block_rows=0)
    with pytest.raises(ValueError, match="proposal: with rows="):
        evaluation.is_loglikelihood(LogJoint(), {"x": X}, posterior_rows(slice(0, 10), 0)
                                    ["proposal"], axis=0, rows=posterior_rows, rng=0)
    with pytest.raises(ValueError, match="same number of rows"):
        evaluation.is_loglikelihood(LogJoint(), {"x": X, "y": X[:3]}, axis=0,
                                    rows=posterior_rows, rng=0)
    assert block_bounds(10) == [(i, i + 1) for i in range(10)]
    assert block_bounds(100) == [(i, min(i + 7, 100)) for i in range(0, 100, 7)]


# ------------------------------------------------------------------ checkpoints
class Stop(Exception):
    """Stands for a killed process: raised by an HMC transition at a given call."""


def _stop_at(monkeypatch, n):
    """Make the n-th HMC transition from now raise Stop (n None: count only)."""
    calls = [0]
    step = samplers.HMC.step

    def counting(self, *a, **kw):
        calls[0] += 1
        if calls[0] == n:
            raise Stop
        return step(self, *a, **kw)
    monkeypatch.setattr(samplers.HMC, "step", counting)
    return calls


@pytest.mark.parametrize("where", [int(w) for w in np.random.default_rng(15).integers(8, 41, 3)])
def test_ais_resumes_bit_for_bit(tmp_path, monkeypatch, where):
    ref = _ais().run(rng=2)
    path = tmp_path / "ais.ckpt"
    _stop_at(monkeypatch, where)                      # in the transition of temperature where
    with pytest.raises(Stop):
        _ais().run(rng=2, checkpoint=path, checkpoint_every=7)
    saved = pickle.loads(path.read_bytes())
    assert saved["current"]["t"] == (where - 1) // 7 * 7 and not saved["done"]
    monkeypatch.undo()
    _same(_ais().run(rng=2, checkpoint=path, checkpoint_every=7), ref)
    _stop_at(monkeypatch, 1)                                # would raise if it annealed
    _same(_ais().run(rng=2, checkpoint=path, checkpoint_every=7), ref)


def test_sharded_ais_resumes_bit_for_bit_from_shard_checkpoints(tmp_path, monkeypatch):
    ref = _ais().run(rng=4, rows=prior_rows, block_rows=3)
    path = tmp_path / "ais.ckpt"
    # 4 blocks of 40 temperatures in 2 shards, run one after another: stop in block 3
    _stop_at(monkeypatch, 40 * 2 + 23)
    with pytest.raises(Stop):
        _ais().run(rng=4, rows=prior_rows, block_rows=3, executor=_Serial(), n_shards=2,
                   checkpoint=path, checkpoint_every=10)
    assert sorted(os.listdir(tmp_path)) == ["ais.ckpt.shard0", "ais.ckpt.shard1"]
    shard1 = pickle.loads((tmp_path / "ais.ckpt.shard1").read_bytes())
    assert sorted(shard1["done"]) == [] and shard1["current"]["block"] == 2 \
        and shard1["current"]["t"] == 20
    monkeypatch.undo()
    calls = _stop_at(monkeypatch, None)
    res = _ais().run(rng=4, rows=prior_rows, block_rows=3, executor=_Serial(), n_shards=2,
                     checkpoint=path, checkpoint_every=10)
    assert calls[0] == 20 + 40                  # only what was left: block 2 from t = 20, 3
    _same(res, ref)
    # without an executor: one file for all blocks; a finished one returns at once
    _same(_ais().run(rng=4, rows=prior_rows, block_rows=3, checkpoint=tmp_path / "one"),
          ref)
    assert pickle.loads((tmp_path / "one").read_bytes())["done"].keys() == {0, 1, 2, 3}
    _stop_at(monkeypatch, 1)
    _same(_ais().run(rng=4, rows=prior_rows, block_rows=3, checkpoint=tmp_path / "one"),
          ref)
    with pytest.raises(ValueError, match=r"blocks: checkpoint has \[\[0, 3\], .*this call "
                                         r"has \[\[0, 4\]"):
        _ais().run(rng=4, rows=prior_rows, block_rows=4, checkpoint=tmp_path / "one")


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 500), st.one_of(st.none(), st.integers(1, 600)), st.integers(1, 20))
def test_blocks_tile_the_rows_and_shards_tile_the_blocks(n_rows, block_rows, n_shards):
    blocks = block_bounds(n_rows, block_rows)
    size = block_rows or -(-n_rows // 16)
    assert blocks[0][0] == 0 and blocks[-1][1] == n_rows
    assert all(b[1] == c[0] for b, c in zip(blocks, blocks[1:]))
    assert all(b - a == size for a, b in blocks[:-1]) and 0 < blocks[-1][1] - blocks[-1][0] \
        <= size
    if n_shards <= len(blocks):
        shards = shards_of(len(blocks), n_shards)
        assert len(shards) == n_shards and shards[0][0] == 0 and shards[-1][1] == len(blocks)
        assert all(a < b for a, b in shards) and all(s[1] == t[0] for s, t in
                                                     zip(shards, shards[1:]))


def test_ais_checkpoint_errors(tmp_path, monkeypatch):
    path = tmp_path / "x.ckpt"
    _stop_at(monkeypatch, 25)
    with pytest.raises(Stop):
        _ais().run(rng=2, checkpoint=path, checkpoint_every=10)
    monkeypatch.undo()
    with pytest.raises(ValueError, match=r"written by a different run \(n_temperatures: "
                                         r"checkpoint has 40, this call has 50"):
        _ais(n_temperatures=50).run(rng=2, checkpoint=path)
    with pytest.raises(ValueError, match="seed: checkpoint has 2, this call has 3"):
        _ais().run(rng=3, checkpoint=path)
    gen = tmp_path / "g.ckpt"
    _stop_at(monkeypatch, 25)
    with pytest.raises(Stop):
        _ais().run(rng=np.random.default_rng(2), checkpoint=gen, checkpoint_every=10)
    monkeypatch.undo()
    with pytest.raises(ValueError, match="seed: checkpoint has 'generator [0-9a-f]+', this "
                                         "call has 'generator [0-9a-f]+'"):
        _ais().run(rng=np.random.default_rng(3), checkpoint=gen)
    _same(_ais().run(rng=np.random.default_rng(2), checkpoint=gen), _ais().run(rng=2))
    with pytest.raises(ValueError, match=r"chain_shape: checkpoint has \(8, 10\), this call "
                                         r"has \(4, 10\)"):
        _ais(k=4).run(rng=2, checkpoint=path)
    whole = path.read_bytes()
    path.write_bytes(whole[:len(whole) // 2])
    with pytest.raises(ValueError, match="cannot be read: the file is damaged or truncated"):
        _ais().run(rng=2, checkpoint=path)
    bad = pickle.loads(whole)
    bad["current"]["t"] = 41
    path.write_bytes(pickle.dumps(bad))
    with pytest.raises(ValueError, match=r"is damaged: t = 41, expected an integer in "
                                         r"\[0, 40\]") as err:
        _ais().run(rng=2, checkpoint=path)
    assert repr(str(path)) in str(err.value)
    # a samplers.sample checkpoint is not an AIS one
    from samplers.checkpoint import Checkpoint
    Checkpoint(tmp_path / "s.ckpt", 1, {"n_chains": 8, "dim": 2, "seed": 2}).save(
        phase="warmup", n_done=0, i=0, state=None, rng=None, astate=None, recorder=None)
    with pytest.raises(ValueError, match="written by a different run .*kind: checkpoint has "
                                         "None, this call has 'zs.evaluation.AIS'"):
        _ais().run(rng=2, checkpoint=tmp_path / "s.ckpt")
    with pytest.raises(ValueError, match="checkpoint_every: expected a positive integer"):
        _ais().run(rng=2, checkpoint=tmp_path / "y.ckpt", checkpoint_every=0)
    with pytest.raises(ValueError, match="checkpoint_every: expected a positive integer") as e:
        _ais().run(rng=2, rows=prior_rows, executor=_Serial(), checkpoint=tmp_path / "y",
                   checkpoint_every=1.5)
    assert not getattr(e.value, "__notes__", None)          # not from a shard
    path.write_bytes(whole)                                   # the intact file resumes
    _same(_ais().run(rng=2, checkpoint=path), _ais().run(rng=2))
    assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]


def test_ctrl_c_saves_where_it_stopped(tmp_path, monkeypatch):
    ref = _ais().run(rng=2)
    calls = [0]
    step = samplers.HMC.step

    def interrupted(self, *a, **kw):
        calls[0] += 1
        if calls[0] == 13:
            raise KeyboardInterrupt
        return step(self, *a, **kw)
    monkeypatch.setattr(samplers.HMC, "step", interrupted)
    path = tmp_path / "i.ckpt"
    with pytest.raises(KeyboardInterrupt, match=r"after 12 of 40 temperatures \(block 0\); "
                                                r"checkpoint saved to .*the same call resumes"):
        _ais().run(rng=2, checkpoint=path, checkpoint_every=100)
    assert pickle.loads(path.read_bytes())["current"]["t"] == 12
    monkeypatch.undo()
    _same(_ais().run(rng=2, checkpoint=path, checkpoint_every=100), ref)
