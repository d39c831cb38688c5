"""Where the draws of :func:`samplers.sample` go: memory, or a zarr store on disk.

``sample(..., store="run.zarr")`` streams the kept draws, their log densities and the
per-transition statistics to a zarr group (zarr is an optional dependency: ``pip install
zarr``) in chunks of ``store_chunk`` draws (by default about 32 MiB of draws), so memory holds
one chunk, not the run: the
group has ``draws [C, S, D]``, ``logdensity [C, S]``, ``stats/<name> [C, S]`` and
``warmup_stats/<name> [C, n_warmup]`` (streamed during warmup the same way), chunked
``(C, store_chunk, ...)``. ``store_dtype=`` sets the draws' dtype on disk (float32 halves
a float64 run's store; the log densities keep the positions' dtype). The
:class:`~samplers.driver.Result` then holds the zarr arrays themselves (lazy: slicing reads
from disk), its ``warmup_stats`` too; ``result.summary()`` and ``to_arviz()`` read
everything. The store can be reopened later with :func:`open_store` and
:func:`open_warmup_stats`. With ``checkpoint=`` the chunk in memory goes into the
checkpoint and the store is reopened on resume; an interrupt cuts the arrays to the
transitions done (warmup statistics included).
"""
import numpy as np

from .base import StatsRecorder, _to_host, nonfinite_chains

__all__ = ["MemorySink", "ZarrSink", "ZarrStats", "open_store", "open_warmup_stats",
           "new_store"]


class MemorySink:
    """Preallocated ``[n, C, D]`` draws, ``[n, C]`` log densities and statistics."""

    def __init__(self, n, c, d, dtype, xp, has_lp):
        self.draws = xp.empty((n, c, d), dtype=dtype)
        self.logp = xp.empty((n, c), dtype=dtype) if has_lp else None
        self.rec = StatsRecorder(n, c, xp)
        self.xp = xp

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "xp"}

    def __setstate__(self, d):
        self.__dict__.update(d)
        self.xp = np

    def write(self, t, state, info, step_size):
        """Keep draw ``t``."""
        self.draws[t] = state.position
        if self.logp is not None:
            self.logp[t] = state.logdensity
        self.rec.record(t, info, step_size, nonfinite_chains(state))

    def arrays(self, n_kept=None):
        """``(draws [C, n, D], logdensity [C, n] or None, stats {name: [C, n]})``."""
        n = self.draws.shape[0] if n_kept is None else n_kept
        xp = self.xp
        draws = xp.ascontiguousarray(self.draws[:n].transpose(1, 0, 2))
        logp = None if self.logp is None else xp.ascontiguousarray(self.logp[:n].T)
        return draws, logp, {k: v[:, :n] for k, v in self.rec.result().items()}


#: Default size of a chunk of draws in memory (bytes): ``store_chunk=None`` keeps about this.
CHUNK_BYTES = 32 * 2 ** 20


class ZarrStats:
    """Per-transition statistics streamed to the arrays ``<name>/<key> [C, n]`` of a zarr
    group, ``chunk`` transitions at a time: :class:`~samplers.base.StatsRecorder`'s
    interface (``record``, ``result``) with one chunk in memory (host NumPy).

    Parameters
    ----------
    path : str
        The zarr group (opened for appending; :func:`samplers.sample` creates it).
    name : str
        ``"stats"`` (after warmup) or ``"warmup_stats"``.
    n, c : int
        Transitions and chains.
    chunk : int
        Transitions per chunk (on disk and in memory).
    """

    def __init__(self, path, name, n, c, chunk):
        self.path, self.name, self.n, self.c = str(path), name, int(n), int(c)
        self.chunk = max(1, min(int(chunk), self.n))
        self.group = _zarr().open_group(self.path, mode="a")
        self.start = 0                         # first transition of the chunk in memory
        self.rec = StatsRecorder(min(self.chunk, self.n), self.c, np)

    def __getstate__(self):                    # checkpoints: the group is reopened
        return {k: v for k, v in self.__dict__.items() if k != "group"}

    def __setstate__(self, d):
        self.__dict__.update(d)
        self.group = _zarr().open_group(self.path, mode="r+")

    def record(self, t, info, step_size=None, nonfinite=None):
        """Keep transition ``t``; the chunk goes to disk when full."""
        j = t - self.start
        info = type(info)(*(None if v is None else _to_host(v) for v in info))
        self.rec.record(j, info, None if step_size is None else _to_host(step_size),
                        None if nonfinite is None else _to_host(nonfinite))
        if j + 1 == self.rec.n:
            self.flush(j + 1)
            self.start = t + 1
            if self.start < self.n:
                self.rec = StatsRecorder(min(self.chunk, self.n - self.start), self.c, np)

    def flush(self, m):
        """Write the first ``m`` transitions of the chunk in memory."""
        if self.rec.bufs is None:
            return
        a, b = self.start, self.start + m
        g = self.group
        for key, v in self.rec.result().items():
            arr = _array(g, f"{self.name}/{key}", (self.c, self.n), (self.c, self.chunk),
                         v.dtype)
            arr[:, a:b] = v[:, :m]

    def keys(self):
        return list(self.group[self.name].array_keys()) if self.name in self.group else []

    def result(self, n_kept=None):
        """``{key: zarr array [C, n]}`` (lazy); after an interrupt, the ``n_kept``
        transitions done (the arrays are cut to them, the chunk in memory written)."""
        if n_kept is not None and n_kept < self.n:
            if n_kept > self.start:
                self.flush(n_kept - self.start)
            for k in self.keys():
                self.group[f"{self.name}/{k}"].resize((self.c, n_kept))
        g = _zarr().open_group(self.path, mode="r")
        return {k: g[self.name][k] for k in self.keys()}


def _array(group, name, shape, chunks, dtype):
    """The array ``name`` of ``group``, created with ``shape`` when missing and grown back
    to ``shape`` when an interrupt cut it (a resumed run writes past the cut)."""
    if name not in group:
        return group.create_array(name, shape=shape, chunks=chunks, dtype=dtype)
    arr = group[name]
    if arr.shape != shape:
        arr.resize(shape)
    return arr


def new_store(path):
    """Create (or empty) the zarr group ``path`` for a run."""
    _zarr().open_group(str(path), mode="w")


class ZarrSink:
    """Draws streamed to a zarr group in chunks of ``chunk`` draws (see the module);
    ``chunk=None`` picks about :data:`CHUNK_BYTES` of draws. The group must exist
    (:func:`new_store`); warmup statistics already in it are kept.

    ``dtype`` is the draws' dtype on disk (``store_dtype``: float32 halves the store of
    a float64 run); the log densities keep ``lp_dtype`` (the positions' dtype).
    """

    def __init__(self, path, n, c, d, dtype, has_lp, chunk=None, lp_dtype=None):
        zarr = _zarr()
        chunk = default_chunk(chunk, c, d, dtype)
        self.path, self.n, self.c, self.d = str(path), int(n), int(c), int(d)
        self.dtype, self.has_lp, self.chunk = np.dtype(dtype), has_lp, min(int(chunk), int(n))
        self.lp_dtype = self.dtype if lp_dtype is None else np.dtype(lp_dtype)
        self.group = zarr.open_group(self.path, mode="a")
        for name in ("draws", "logdensity", "stats"):
            if name in self.group:
                del self.group[name]
        self.group.create_array("draws", shape=(c, n, d), chunks=(c, self.chunk, d),
                                dtype=self.dtype)
        if has_lp:
            self.group.create_array("logdensity", shape=(c, n), chunks=(c, self.chunk),
                                    dtype=self.lp_dtype)
        self.start = 0                         # first draw of the chunk in memory
        self.stats = ZarrStats(self.path, "stats", n, c, self.chunk)
        self._new_buffers()

    def _new_buffers(self):
        m = min(self.chunk, self.n - self.start)
        self.buf = np.empty((m, self.c, self.d), dtype=self.dtype)
        self.buf_lp = np.empty((m, self.c), dtype=self.lp_dtype) if self.has_lp else None

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "group"}

    def __setstate__(self, d):
        self.__dict__.update(d)
        self.group = _zarr().open_group(self.path, mode="r+")

    def write(self, t, state, info, step_size):
        """Keep draw ``t``; the chunk goes to disk when full."""
        j = t - self.start
        self.buf[j] = _to_host(state.position)
        if self.has_lp:
            self.buf_lp[j] = _to_host(state.logdensity)
        self.stats.record(t, info, step_size, nonfinite_chains(state))
        if j + 1 == self.buf.shape[0]:
            self._flush(j + 1)
            self.start = t + 1
            if self.start < self.n:
                self._new_buffers()

    def _flush(self, m):
        a, b = self.start, self.start + m
        g = self.group
        _array(g, "draws", (self.c, self.n, self.d), (self.c, self.chunk, self.d),
               self.dtype)[:, a:b] = self.buf[:m].transpose(1, 0, 2)
        if self.has_lp:
            _array(g, "logdensity", (self.c, self.n), (self.c, self.chunk),
                   self.lp_dtype)[:, a:b] = self.buf_lp[:m].T

    def arrays(self, n_kept=None):
        """The zarr arrays (lazy), cut to ``n_kept`` draws after an interrupt."""
        if n_kept is not None and n_kept < self.n:
            if n_kept > self.start:
                self._flush(n_kept - self.start)
            for name in ("draws", "logdensity"):
                if name in self.group:
                    arr = self.group[name]
                    arr.resize((self.c, n_kept) + arr.shape[2:])
        stats = self.stats.result(n_kept)
        draws, logp, _ = open_store(self.path)
        return draws, logp, stats


def default_chunk(chunk, c, d, dtype):
    """``store_chunk``: checked, or about :data:`CHUNK_BYTES` of draws when None."""
    if chunk is None:
        return max(1, CHUNK_BYTES // (int(c) * int(d) * np.dtype(dtype).itemsize))
    if isinstance(chunk, bool) or int(chunk) != chunk or chunk < 1:
        raise ValueError(f"store_chunk: expected a positive integer, got {chunk!r}")
    return int(chunk)


def open_store(path):
    """``(draws, logdensity or None, stats)`` of a store written by :func:`samplers.sample`
    (zarr arrays, read lazily); the warmup statistics: :func:`open_warmup_stats`."""
    g = _zarr().open_group(str(path), mode="r")
    stats = {k: g["stats"][k] for k in g["stats"].array_keys()} if "stats" in g else {}
    return g["draws"], (g["logdensity"] if "logdensity" in g else None), stats


def open_warmup_stats(path):
    """``{name: zarr array [C, n_warmup]}``: the warmup statistics of a store written by
    :func:`samplers.sample` (read lazily; empty without warmup)."""
    g = _zarr().open_group(str(path), mode="r")
    if "warmup_stats" not in g:
        return {}
    return {k: g["warmup_stats"][k] for k in g["warmup_stats"].array_keys()}


def _zarr():
    try:
        import zarr
    except ImportError:
        raise ImportError("store=: streaming draws to disk needs zarr, which is not "
                          "installed: pip install zarr (or zsarray[zarr])") from None
    return zarr
