"""Chains split into shards run by an executor, merged into one Result.

``samplers.sample(..., executor=ex, n_shards=k)`` splits the chains into ``k`` contiguous
shards; each shard is one ordinary batched :func:`samplers.sample` call, submitted with
``ex.submit`` (any :class:`concurrent.futures.Executor`: a thread or process pool, Ray's
executor; or a ``dask.distributed.Client``, whose ``submit`` also takes ``retries``).
Each shard gets its own stream from ``numpy.random.SeedSequence(seed).spawn(k)``, so the
draws depend on the seed, the chain count and ``k`` only, never on how many workers run
the shards. Each shard adapts on its own (its own step size and mass: with one chain per
shard this is Stan's per-chain adaptation); pooled adaptation across shards is not
implemented yet. The merged :class:`~samplers.driver.Result` keeps the chain order;
``inverse_mass`` and the parameters become per chain (``[C, ...]``) and ``result.shards``
lists each shard's ``(first chain, last chain + 1)``.

With a Dask client the log density (and ``grad_fn``), with the data it closes over, is
scattered to every worker once instead of travelling with each shard. A shard that
raises is reported with its index and chain ids; with a checkpoint path,
shard ``i`` checkpoints to ``PATH.shard{i}``, so a rerun after a failure redoes only the
unfinished shards' remaining transitions.

A worker that dies mid-run loses nothing: Dask reschedules its shard on another worker
(the scheduler's ``allowed-failures``, plus ``retries=2`` for a shard that raises); a
process pool whose worker dies is broken for good (``BrokenExecutor``), so the shards it
did not finish are rerun in the calling process, with a :class:`ShardRerunWarning`. Each
shard's draws depend only on its seed, so either way the result is that of an
uninterrupted run, every chain present once.
"""
import warnings
from concurrent.futures import BrokenExecutor

import numpy as np

from .base import array_module

__all__ = ["sample_sharded", "shard_bounds", "ShardRerunWarning"]


class ShardRerunWarning(RuntimeWarning):
    """Shards whose worker process died were rerun in this process (same draws)."""


def shard_bounds(n_chains, n_shards):
    """``[(start, stop), ...]``: ``n_shards`` contiguous, nearly equal blocks of chains."""
    if isinstance(n_shards, bool) or int(n_shards) != n_shards or not 1 <= n_shards <= n_chains:
        raise ValueError(f"n_shards: expected an integer in [1, n_chains={n_chains}], got "
                         f"{n_shards!r}")
    edges = np.linspace(0, n_chains, int(n_shards) + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def _run_shard(kwargs):
    from .driver import sample
    return sample(**kwargs)


def _seeds(rng, n):
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        seq = np.random.SeedSequence(int(rng))
    elif isinstance(rng, np.random.Generator):
        seq = np.random.SeedSequence(int(rng.integers(0, 2 ** 63 - 1)))
    else:
        raise TypeError(f"rng: with an executor, expected an int seed or a "
                        f"numpy.random.Generator, got {type(rng).__name__}")
    return seq.spawn(n)


def sample_sharded(executor, n_shards, logdensity, init_position, n_chains, dim, rng,
                   checkpoint, kwargs):
    """Run :func:`samplers.sample` on shards of the chains through ``executor``.

    ``kwargs`` are the other arguments of :func:`samplers.sample` (without ``rng``,
    ``n_chains``, ``dim``, ``init_position``, ``checkpoint``, ``progress``).

    Returns
    -------
    Result
    """
    if not hasattr(executor, "submit"):
        raise TypeError(f"executor: expected a concurrent.futures.Executor or a "
                        f"dask.distributed.Client (an object with submit), got "
                        f"{type(executor).__name__}")
    if init_position is not None:
        q = init_position if hasattr(init_position, "ndim") else np.asarray(init_position,
                                                                              dtype=float)
        if array_module(q) is not np:
            raise ValueError("executor: shards run on NumPy positions (give the executor "
                             "NumPy arrays; each worker may use its own GPU inside the "
                             "log density)")
        if q.ndim != 2:
            raise ValueError(f"init_position: expected shape [n_chains, dim], got shape "
                             f"{tuple(q.shape)}")
        n_chains = q.shape[0]
    elif n_chains is None or dim is None:
        raise ValueError("init_position: None needs n_chains= and dim= to draw initial "
                         f"positions (got n_chains={n_chains!r}, dim={dim!r})")
    bounds = shard_bounds(int(n_chains), n_chains if n_shards is None else n_shards)
    seeds = _seeds(rng, len(bounds))
    is_dask = type(executor).__module__.startswith("distributed")
    local_fns = dict(logdensity=logdensity, grad_fn=kwargs.get("grad_fn"))
    if is_dask:
        # sent once to every worker, not once per shard (with the data it closes over)
        logdensity = executor.scatter(logdensity, broadcast=True, hash=False)
        if kwargs.get("grad_fn") is not None:
            kwargs = dict(kwargs, grad_fn=executor.scatter(kwargs["grad_fn"], broadcast=True,
                                                           hash=False))
    futures, shards = [], []
    for i, ((a, b), seed) in enumerate(zip(bounds, seeds)):
        shard = dict(kwargs, logdensity=logdensity, rng=np.random.default_rng(seed),
                     progress=False,
                     checkpoint=None if checkpoint is None else f"{checkpoint}.shard{i}")
        if init_position is None:
            shard.update(n_chains=b - a, dim=dim)
        else:
            shard.update(init_position=np.array(q[a:b]))
        extra = {"retries": 2, "pure": False} if is_dask else {}
        shards.append(shard)
        futures.append(executor.submit(_run_shard, shard, **extra))
    results, lost = [], []
    for i, (fut, (a, b)) in enumerate(zip(futures, bounds)):
        try:
            results.append(fut.result())
        except BrokenExecutor:
            # a worker process died (killed, out of memory): a process pool is then
            # unusable and fails every unfinished shard; rerun those here. A shard's
            # draws depend only on its seed, so nothing changes and no chain repeats.
            # (Dask reschedules a dead worker's shards by itself.)
            lost.append(i)
            results.append(_run_shard({**shards[i], **{k: v for k, v in local_fns.items()
                                                       if k in shards[i]}}))
        except Exception as err:
            if hasattr(err, "add_note"):
                err.add_note(f"samplers: raised by shard {i} (chains {a}-{b - 1}; chain "
                             f"numbers in the message count from chain {a})")
            for other in futures[i + 1:]:
                other.cancel()
            raise
    if lost:
        warnings.warn(f"samplers: the executor broke (a worker process died) before shards "
                      f"{lost} finished; they were rerun in this process with their own "
                      f"seeds, so the draws are those of an uninterrupted run",
                      ShardRerunWarning, stacklevel=3)
    return merge(results, bounds)


def merge(results, bounds):
    """One :class:`~samplers.driver.Result` from the shards' results, chains in order."""
    from .driver import Result
    first = results[0]
    cat = np.concatenate

    def stats(key):
        return {k: cat([r.__dict__[key][k] for r in results]) for k in first.__dict__[key]}
    logp = None if first.logdensity is None else cat([r.logdensity for r in results])
    state = type(first.state)(*[cat([getattr(r.state, f) for r in results])
                                if getattr(getattr(first.state, f), "ndim", 0) else
                                getattr(first.state, f) for f in first.state._fields])
    params = None
    if first.params is not None:
        fields = {}
        for f in first.params._fields:
            vals = [getattr(r.params, f) for r in results]
            if f == "step_size":
                fields[f] = cat(vals)
            elif f in ("inverse_mass", "mass_sqrt", "damping") and vals[0] is not None:
                # GHMC (the kernel with a damping) has per-chain masses already
                fields[f] = _shard_rows(vals, bounds,
                                        per_chain=first.params.damping is not None)
            else:
                fields[f] = vals[0]
        params = type(first.params)(**fields)
    res = Result(cat([r.draws for r in results]), logp, stats("stats"), stats("warmup_stats"),
                 None if first.step_size is None else cat([r.step_size for r in results]),
                 None if params is None else params.inverse_mass, first.kernel, state, params)
    res.shards = list(bounds)
    return res


def _shard_rows(vals, bounds, per_chain):
    """Per-chain rows ``[C, ...]`` from one value per shard: concatenated when they are
    per chain already, else each shard's value repeated over its chains."""
    if per_chain:
        return np.concatenate([np.asarray(v) for v in vals])
    return np.concatenate([np.broadcast_to(np.asarray(v), (b - a,) + np.shape(v))
                           for v, (a, b) in zip(vals, bounds)])
