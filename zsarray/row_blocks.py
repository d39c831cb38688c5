"""A data set split by rows into fixed blocks, run by an executor (``zs.evaluation``).

``zs.evaluation.is_loglikelihood(..., rows=fn)`` and ``AIS.run(..., rows=fn)`` split the
observed data along its first axis (the rows, e.g. the test images) into consecutive
blocks of ``block_rows`` rows. Block ``b`` gets its own stream,
``numpy.random.SeedSequence(seed).spawn(n_blocks)[b]``, and is estimated on its own
(for AIS: its own HMC step-size adaptation), so the estimate depends on the seed and
``block_rows`` only: not on whether an executor runs the blocks, nor on how many shards
(unions of consecutive blocks) or workers there are.

``fn(rows, rng)`` builds a block: ``rows`` is a ``slice`` of the data set, ``rng`` a
``numpy.random.Generator`` of the block's stream for the proposal's draws; it returns a
dict with ``"proposal"`` (required) and optionally ``"model"`` and ``"observed"`` (default:
the call's model, and its observed arrays sliced by ``rows``).

Shards go through ``executor.submit`` (any :class:`concurrent.futures.Executor`, or a
``dask.distributed.Client``) the way :mod:`samplers.shards` sends chains: what every
shard needs (``fn``, the model, the observed data) is scattered once per Dask worker;
a shard that raises is reported with its rows; a process pool broken by a dead worker
has its unfinished shards rerun in the calling process with a
:class:`samplers.shards.ShardRerunWarning` (same streams, same numbers), and Dask
reschedules a dead worker's shards itself (plus ``retries=2``).
"""
import hashlib
import math
import warnings
from concurrent.futures import BrokenExecutor

import numpy as np

from samplers.checkpoint import Checkpoint
from samplers.shards import ShardRerunWarning, _seeds, shard_bounds

__all__ = ["block_bounds", "BlocksCheckpoint"]

#: Blocks when ``block_rows`` is not given (at most; fewer rows, one row each).
DEFAULT_BLOCKS = 16


def block_bounds(n_rows, block_rows=None):
    """``[(start, stop), ...]``: consecutive blocks of ``block_rows`` rows (the last one
    may be shorter); ``block_rows=None`` means ``ceil(n_rows / 16)``."""
    if isinstance(n_rows, bool) or int(n_rows) != n_rows or n_rows < 1:
        raise ValueError(f"rows: the observed data need at least one row, got n_rows="
                         f"{n_rows!r}")
    n_rows = int(n_rows)
    if block_rows is None:
        block_rows = math.ceil(n_rows / DEFAULT_BLOCKS)
    if isinstance(block_rows, bool) or int(block_rows) != block_rows or block_rows < 1:
        raise ValueError(f"block_rows: expected a positive integer, got {block_rows!r}")
    b = int(block_rows)
    return [(a, min(a + b, n_rows)) for a in range(0, n_rows, b)]


def n_rows_of(observed):
    """The common length of the observed arrays along axis 0 (the rows)."""
    lengths = {k: int(np.shape(v)[0]) for k, v in observed.items() if np.ndim(v) > 0}
    if not lengths:
        raise ValueError("rows: the observed data hold no array to split by rows (observed "
                         f"names: {sorted(observed)})")
    if len(set(lengths.values())) > 1:
        raise ValueError(f"rows: the observed arrays must have the same number of rows "
                         f"(their first axis), got {lengths}")
    return next(iter(lengths.values()))


def block_seeds(rng, n_blocks):
    """One :class:`numpy.random.SeedSequence` per block, spawned from ``rng``."""
    if rng is None:
        raise TypeError("rng: with rows=, expected an int seed or a numpy.random.Generator "
                        "(each block's stream is spawned from it), got None")
    return _seeds(rng, n_blocks)


def shards_of(n_blocks, n_shards):
    """``[(first block, last block + 1), ...]``: shards as unions of consecutive blocks."""
    if n_shards is None:
        n_shards = n_blocks
    if isinstance(n_shards, bool) or int(n_shards) != n_shards \
            or not 1 <= n_shards <= n_blocks:
        raise ValueError(f"n_shards: expected an integer in [1, n_blocks={n_blocks}] (shards "
                         f"are unions of blocks of rows; lower block_rows for more), got "
                         f"{n_shards!r}")
    return shard_bounds(n_blocks, n_shards)


def build_block(rows_fn, rows, rng, model, observed):
    """``(model, proposal, observed)`` of the rows ``rows`` (a slice) from ``rows_fn``."""
    spec = rows_fn(rows, rng)
    if not isinstance(spec, dict) or "proposal" not in spec:
        raise TypeError(f"rows: expected rows(rows, rng) to return a dict with 'proposal' "
                        f"(and optionally 'model', 'observed'), got {type(spec).__name__}"
                        + (f" with keys {sorted(spec)}" if isinstance(spec, dict) else ""))
    extra = sorted(set(spec) - {"proposal", "model", "observed"})
    if extra:
        raise TypeError(f"rows: rows(rows, rng) returned unknown keys {extra}; expected "
                        f"'proposal', 'model', 'observed'")
    obs = spec.get("observed")
    if obs is None:
        obs = {k: (v[rows] if np.ndim(v) > 0 else v) for k, v in observed.items()}
    return spec.get("model", model), spec["proposal"], obs


def describe_options(options):
    """A comparable summary of options for a checkpoint fingerprint (arrays by hash)."""
    out = {}
    for k, v in sorted(options.items()):
        if isinstance(v, (bool, int, float, str, np.integer, np.floating)) or v is None:
            out[k] = v.item() if hasattr(v, "item") else v
        elif hasattr(v, "shape") or isinstance(v, (list, tuple)):
            a = np.ascontiguousarray(np.asarray(v))
            out[k] = ("array", a.shape, hashlib.sha1(a.tobytes()).hexdigest()[:16])
        else:
            out[k] = getattr(v, "__qualname__", type(v).__qualname__)
    return out


class BlocksCheckpoint(Checkpoint):
    """A checkpoint of blocks of rows: the finished blocks' results and the annealing
    state of the block in progress (``samplers.checkpoint``'s atomic file, fingerprint
    and error messages).

    Payload: ``phase="blocks"``, ``done`` (block index -> result), ``current`` (None or
    a dict with ``block`` and ``t``, the temperatures done, in ``[0, n_steps]``).
    """

    def __init__(self, path, every, fingerprint, n_steps):
        super().__init__(path, every, fingerprint)
        self.n_steps = int(n_steps)

    def _check_payload(self, payload):
        phase = payload.get("phase")
        if phase != "blocks":
            raise ValueError(f"checkpoint {self.path!r} is damaged: phase {phase!r}, expected "
                             f"'blocks' (a zs.evaluation checkpoint); delete it to start "
                             f"afresh")
        missing = sorted({"done", "current"} - set(payload))
        if missing:
            raise ValueError(f"checkpoint {self.path!r} is damaged: a blocks checkpoint "
                             f"without {missing}; delete it to start afresh")
        if not isinstance(payload["done"], dict):
            raise ValueError(f"checkpoint {self.path!r} is damaged: done = "
                             f"{type(payload['done']).__name__}, expected a dict; delete it "
                             f"to start afresh")
        cur = payload["current"]
        if cur is not None:
            t = cur.get("t") if isinstance(cur, dict) else None
            if isinstance(t, bool) or not isinstance(t, (int, np.integer)) \
                    or not 0 <= t <= self.n_steps:
                raise ValueError(f"checkpoint {self.path!r} is damaged: t = {t!r}, expected an "
                                 f"integer in [0, {self.n_steps}] (temperatures done); delete "
                                 f"it to start afresh")


def run_shards(executor, task_fn, shared, tasks, rows_of):
    """``[task_fn(shared, task) for task in tasks]`` through ``executor``, in order.

    ``shared`` (what every task needs: functions, model, data) is scattered once per
    worker with a Dask client. ``rows_of(i)`` is ``(first row, last row + 1)`` of task
    ``i`` for error notes. Tasks whose process-pool worker died are rerun here.
    """
    if not hasattr(executor, "submit"):
        raise TypeError(f"executor: expected a concurrent.futures.Executor or a "
                        f"dask.distributed.Client (an object with submit), got "
                        f"{type(executor).__name__}")
    is_dask = type(executor).__module__.startswith("distributed")
    # a list scatters its items one by one: wrap, to send ``shared`` whole
    remote = executor.scatter([shared], broadcast=True, hash=False)[0] if is_dask else shared
    extra = {"retries": 2, "pure": False} if is_dask else {}
    futures = [executor.submit(task_fn, remote, task, **extra) for task in tasks]
    results, lost = [], []
    for i, fut in enumerate(futures):
        try:
            results.append(fut.result())
        except BrokenExecutor:
            # a worker process died: the pool fails every unfinished task; each task's
            # numbers depend only on its blocks' seeds, so rerunning here changes nothing
            lost.append(i)
            results.append(task_fn(shared, tasks[i]))
        except Exception as err:
            a, b = rows_of(i)
            if hasattr(err, "add_note"):
                err.add_note(f"zs.evaluation: raised by shard {i} (rows {a}-{b - 1})")
            for other in futures[i + 1:]:
                other.cancel()
            raise
    if lost:
        warnings.warn(f"zs.evaluation: the executor broke (a worker process died) before "
                      f"shards {lost} finished; they were rerun in this process with their "
                      f"own seeds, so the estimates are those of an uninterrupted run",
                      ShardRerunWarning, stacklevel=4)
    return results
