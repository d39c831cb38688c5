"""Where the draws of :func:`samplers.sample` go: memory, or a zarr store on disk.

``sample(..., store="run.zarr")`` streams the kept draws, their log densities and the
per-transition statistics to a zarr group (zarr is an optional dependency: ``pip install
zarr``) in chunks of ``store_chunk`` draws (by default about 32 MiB of draws), so memory holds
one chunk, not the run: the
group has ``draws [C, S, D]``, ``logdensity [C, S]`` and ``stats/<name> [C, S]``, chunked
``(C, store_chunk, ...)``. The :class:`~samplers.driver.Result` then holds the zarr arrays
themselves (lazy: slicing reads from disk); ``result.summary()`` and ``to_arviz()`` read
everything. The store can be reopened later with :func:`open_store`. With ``checkpoint=``
the chunk in memory goes into the checkpoint and the store is reopened on resume.
"""
import numpy as np

from .base import StatsRecorder, _to_host, nonfinite_chains

__all__ = ["MemorySink", "ZarrSink", "open_store"]


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


class ZarrSink:
    """Draws streamed to a zarr group in chunks of ``chunk`` draws (see the module);
    ``chunk=None`` picks about :data:`CHUNK_BYTES` of draws."""

    def __init__(self, path, n, c, d, dtype, has_lp, chunk=None):
        zarr = _zarr()
        if chunk is None:
            chunk = max(1, CHUNK_BYTES // (int(c) * int(d) * np.dtype(dtype).itemsize))
        if isinstance(chunk, bool) or int(chunk) != chunk or chunk < 1:
            raise ValueError(f"store_chunk: expected a positive integer, got {chunk!r}")
        self.path, self.n, self.c, self.d = str(path), int(n), int(c), int(d)
        self.dtype, self.has_lp, self.chunk = np.dtype(dtype), has_lp, min(int(chunk), int(n))
        self.group = zarr.open_group(self.path, mode="w")
        self.group.create_array("draws", shape=(c, n, d), chunks=(c, self.chunk, d),
                                dtype=self.dtype)
        if has_lp:
            self.group.create_array("logdensity", shape=(c, n), chunks=(c, self.chunk),
                                    dtype=self.dtype)
        self.start = 0                         # first draw of the chunk in memory
        self._new_buffers()

    def _new_buffers(self):
        m = min(self.chunk, self.n - self.start)
        self.buf = np.empty((m, self.c, self.d), dtype=self.dtype)
        self.buf_lp = np.empty((m, self.c), dtype=self.dtype) if self.has_lp else None
        self.rec = StatsRecorder(m, self.c, np)

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "group"}

    def __setstate__(self, d):
        self.__dict__.update(d)
        self.group = _zarr().open_group(self.path, mode="r+")

    def write(self, t, state, info, step_size):
        """Keep draw ``t``; the chunk goes to disk when full."""
        j = t - self.start
        info = type(info)(*(None if v is None else _to_host(v) for v in info))
        self.buf[j] = _to_host(state.position)
        if self.has_lp:
            self.buf_lp[j] = _to_host(state.logdensity)
        self.rec.record(j, info, None if step_size is None else _to_host(step_size),
                        _to_host(nonfinite_chains(state)))
        if j + 1 == self.buf.shape[0]:
            self._flush(j + 1)
            self.start = t + 1
            if self.start < self.n:
                self._new_buffers()

    def _flush(self, m):
        a, b = self.start, self.start + m
        g = self.group
        g["draws"][:, a:b] = self.buf[:m].transpose(1, 0, 2)
        if self.has_lp:
            g["logdensity"][:, a:b] = self.buf_lp[:m].T
        for key, v in self.rec.result().items():
            name = f"stats/{key}"
            if name not in g:
                g.create_array(name, shape=(self.c, self.n), chunks=(self.c, self.chunk),
                               dtype=v.dtype)
            g[name][:, a:b] = v[:, :m]

    def arrays(self, n_kept=None):
        """The zarr arrays (lazy), cut to ``n_kept`` draws after an interrupt."""
        if n_kept is not None and n_kept < self.n:
            if n_kept > self.start:
                self._flush(n_kept - self.start)
            for name in ("draws", "logdensity", *[f"stats/{k}" for k in self._stat_keys()]):
                if name in self.group:
                    arr = self.group[name]
                    arr.resize((self.c, n_kept) + arr.shape[2:])
        return open_store(self.path)

    def _stat_keys(self):
        return list(self.group["stats"].array_keys()) if "stats" in self.group else []


def open_store(path):
    """``(draws, logdensity or None, stats)`` of a store written by :func:`samplers.sample`
    (zarr arrays, read lazily)."""
    g = _zarr().open_group(str(path), mode="r")
    stats = {k: g["stats"][k] for k in g["stats"].array_keys()} if "stats" in g else {}
    return g["draws"], (g["logdensity"] if "logdensity" in g else None), stats


def _zarr():
    try:
        import zarr
    except ImportError:
        raise ImportError("store=: streaming draws to disk needs zarr, which is not "
                          "installed: pip install zarr (or zsarray[zarr])") from None
    return zarr
