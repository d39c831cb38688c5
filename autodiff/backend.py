"""Array backend: NumPy on the CPU, CuPy on the GPU, chosen by the arrays themselves.

CuPy is optional and imported lazily: nothing here imports it until an array that
is already a CuPy array shows up, or until the caller asks for the GPU explicitly
(``to_device(x, "gpu")``, ``gpu_available()``). Special functions and linear
algebra go through ``scipy.special``/``numpy.linalg`` or ``cupyx.scipy.special``/
``cupy.linalg`` according to the array module of their inputs.
"""
import numpy as np

__all__ = ["get_array_module", "asnumpy", "to_device", "gpu_available", "special",
           "linalg", "scipy_linalg", "is_cupy", "default_device", "set_default_device",
           "default_float", "scatter_add", "tune_allocator", "cuda_launch"]

_cupy = None           # the cupy module once imported, False if unavailable
_default_device = "cpu"


def _import_cupy():
    global _cupy
    if _cupy is None:
        try:
            import cupy
            _cupy = cupy
        except Exception:  # ImportError, or CUDA libraries missing at import
            _cupy = False
    return _cupy


def is_cupy(x):
    """True when ``x`` is a CuPy array (checked by type, without importing CuPy)."""
    return type(x).__module__.startswith("cupy")


def get_array_module(*xs):
    """The array module (``numpy`` or ``cupy``) of the arrays among ``xs``.

    Autodiff Tensors count by their ``.data``. CuPy wins if any input is a CuPy
    array, NumPy if any is a NumPy array; with no array among ``xs`` (Python scalars,
    lists, nothing) the default device decides (:func:`set_default_device`; NumPy
    unless set).
    """
    gpu_default, host = _default_device == "gpu", False
    for x in xs:
        d = _raw(x)
        if is_cupy(d):
            return _import_cupy()
        if gpu_default and isinstance(d, (np.ndarray, np.generic)):
            host = True
    if gpu_default and not host:
        return _import_cupy()
    return np


def _raw(x):
    """The array behind a Tensor or a tracer (by type name: no import cycle)."""
    name = type(x).__name__
    if name == "Tensor":
        x = x.data
        name = type(x).__name__
    return x.val if name == "Tracer" else x


def default_float(xp):
    """The float dtype of new arrays when no input decides: float32 on the GPU (CuPy),
    float64 on the CPU."""
    return np.dtype(np.float32) if xp is not np else np.dtype(np.float64)


def gpu_available():
    """True when CuPy imports and sees at least one CUDA device."""
    cp = _import_cupy()
    if not cp:
        return False
    try:
        return cp.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def asnumpy(x):
    """Return ``x`` (array, scalar or Tensor) as a NumPy array on the host."""
    if type(x).__name__ == "Tensor":
        x = x.data
    if is_cupy(x):
        return x.get()
    return np.asarray(x)


def to_device(x, device):
    """Copy an array to ``device`` ("cpu" or "gpu"); a no-op when it is already there."""
    if device == "cpu":
        return asnumpy(x)
    if device == "gpu":
        if not gpu_available():
            raise RuntimeError("to_device(x, 'gpu'): no CUDA device available "
                               "(install zsarray[gpu] and check that CuPy sees a GPU)")
        return _cupy.asarray(x)
    raise ValueError(f"device: expected 'cpu' or 'gpu', got {device!r}")


def default_device():
    """The device new arrays go to when nothing else decides ("cpu" unless set)."""
    return _default_device


def set_default_device(device):
    """Set the device used when no input array decides ("cpu" or "gpu").

    It applies to arrays made from Python scalars and lists (``autodiff.tensor([...])``,
    distributions with scalar parameters) and to ``samplers.sample(init_position=None)``;
    on the GPU their float dtype defaults to float32. Arrays passed in always decide for
    themselves.
    """
    global _default_device
    if device not in ("cpu", "gpu"):
        raise ValueError(f"device: expected 'cpu' or 'gpu', got {device!r}")
    if device == "gpu" and not gpu_available():
        raise RuntimeError("set_default_device('gpu'): no CUDA device available")
    _default_device = device


def special(x):
    """``scipy.special`` or ``cupyx.scipy.special`` for the array ``x``."""
    if is_cupy(x):
        import cupyx.scipy.special as sp
        return sp
    import scipy.special as sp
    return sp


def linalg(x):
    """``numpy.linalg`` or ``cupy.linalg`` for the array ``x``."""
    if is_cupy(x):
        return _import_cupy().linalg
    return np.linalg


def scipy_linalg(x):
    """``scipy.linalg`` or ``cupyx.scipy.linalg`` for the array ``x``."""
    if is_cupy(x):
        import cupyx.scipy.linalg as sl
        return sl
    import scipy.linalg as sl
    return sl


def scatter_add(target, index, values):
    """In place ``target[index] += values`` with repeated indices accumulating."""
    if is_cupy(target):
        import cupyx
        cupyx.scatter_add(target, index, values)
    elif (type(index) is np.ndarray and index.ndim == 1 and index.dtype.kind in "iu"
          and target.ndim >= 2 and index.size >= 64):
        _segment_add_rows(target, index, values)
    else:
        np.add.at(target, index, values)
    return target


def _segment_add_rows(target, index, values):
    """``np.add.at(target, index, values)`` for rows picked by a 1-D integer index:
    sort the index, sum runs of equal rows with ``np.add.reduceat``, add each row once
    (np.add.at has no fast path for this case: 2.6x slower on [5000] rows of 50)."""
    idx = index % target.shape[0]                     # negative indices count from the end
    values = np.broadcast_to(values, idx.shape + target.shape[1:])
    order = np.argsort(idx, kind="stable")
    sorted_idx = idx[order]
    starts = np.flatnonzero(np.concatenate(([True], sorted_idx[1:] != sorted_idx[:-1])))
    target[sorted_idx[starts]] += np.add.reduceat(values[order], starts, axis=0)


def tune_allocator(mmap_threshold=32 << 20, trim_threshold=512 << 20):
    """Keep large NumPy temporaries on the heap instead of fresh ``mmap`` pages (glibc).

    A tape pass allocates and frees many same-sized temporaries. glibc serves blocks
    above its mmap threshold (128 KiB to start) with fresh ``mmap`` pages, which are
    returned to the system when freed and page-faulted in again by the next allocation.
    Where page faults are expensive this dominates: on the CI machine class a batched
    logistic-regression gradient at 256 chains went from 7.5 ms to 1.9 ms. This raises
    the mmap threshold (to 32 MiB, glibc's maximum) and the heap trim threshold, so
    freed blocks are reused; the cost is up to ``trim_threshold`` bytes of freed memory
    kept by the process. Called once when ``autodiff`` is imported, unless the
    environment variable ``ZSARRAY_MALLOC_TUNING=0`` is set; a no-op off glibc Linux.

    Returns
    -------
    bool
        Whether both settings were applied.
    """
    import ctypes
    import sys
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        ok = libc.mallopt(m_mmap_threshold, int(mmap_threshold))
        ok &= libc.mallopt(m_trim_threshold, int(trim_threshold))
        return bool(ok)
    except (OSError, AttributeError):   # not glibc (musl, ...)
        return False


def cuda_launch(kernel, n_threads, like, *args, threads_per_block=256):
    """Launch a ``numba.cuda.jit`` kernel over ``n_threads`` threads.

    One block holds ``threads_per_block`` threads (a multiple of the 32-thread warp);
    when ``like`` is a CuPy array the launch goes on CuPy's current stream, so the
    kernel is ordered with the CuPy work around it. Host arrays (the CUDA simulator)
    use the default stream. Shared by every CUDA kernel module of the project.
    """
    if n_threads == 0:
        return
    import math
    tpb = min(threads_per_block, n_threads)
    stream = 0
    if is_cupy(like):
        from numba import cuda
        ptr = _import_cupy().cuda.get_current_stream().ptr
        if ptr:
            stream = cuda.external_stream(ptr)
    kernel[math.ceil(n_threads / tpb), tpb, stream](*args)
