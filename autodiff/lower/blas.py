"""The BLAS that the CPU machine's matrix products call, and its thread count.

**Which BLAS.** Where NumPy's wheels bring their OpenBLAS (``scipy-openblas64``, with
the symbols ``scipy_cblas_sgemm64_`` / ``scipy_cblas_dgemm64_``), the machine calls its
``gemm`` directly (:func:`cblas_gemm`, an ``@intrinsic`` that calls a function address
given at run time), so the tape, ``ad.trace`` and compiled programs share one library
and one thread pool. Elsewhere (NumPy on MKL or Accelerate, or a BLAS without those
symbols) the machine uses Numba's ``np.dot``, which calls the BLAS that SciPy links.
Why it matters: with two OpenBLAS libraries in one process (NumPy's and SciPy's wheels
each bring one), each keeps its own threads spinning for a while after a product, and a
program that alternates between them (a VAE step run next to tape code) loses up to a
fifth of its time to the other pool's spinning threads.

The address is looked up once per process (:func:`gemm`) and passed to the machine as
an argument; it is never stored in a program's tables, which may be pickled to another
process.

**Thread count.** A matrix product that the machine cuts into parts
(:func:`.fuse.parallel_steps`) runs each part on its own thread with that BLAS on one
thread: several multi-threaded products at once would fight over the cores, and
OpenBLAS's idle threads keep spinning for a while after each product, taking a core from
the rows that follow. OpenBLAS's thread count is one setting for the whole process, so
:func:`one_thread` sets it to 1 while a program with parts runs and puts the previous
value back when the last one ends: a NumPy (or SciPy) product that another thread of the
user's runs in that window runs on one thread. Where the count cannot be set, matrix
products are not cut into parts.
"""
import ctypes
import glob
import os
import threading
from contextlib import contextmanager

import numpy as np
from llvmlite import ir
from numba.core import types
from numba.core.extending import intrinsic

__all__ = ["controllable", "one_thread", "gemm", "cblas_gemm", "NO_TRANS", "TRANS"]

#: CBLAS's ``CblasNoTrans`` / ``CblasTrans``.
NO_TRANS, TRANS = 111, 112
_ROW_MAJOR = 101

_lock = threading.Lock()
_state = {"fns": None, "users": 0, "saved": None, "gemm": None}


def _loaded(numpy_s):
    """Paths of the loaded OpenBLAS libraries that are NumPy's (``numpy_s`` True: "numpy"
    in the path) or not NumPy's (False)."""
    try:
        with open("/proc/self/maps") as f:
            names = {line.split()[-1] for line in f if "/" in line}
    except OSError:
        return []
    return [p for p in sorted(names) if "openblas" in p.rsplit("/", 1)[-1].lower()
            and ("numpy" in p) == numpy_s]


def _opened(paths):
    """The libraries at ``paths`` that load, as ``ctypes.CDLL``."""
    for path in paths:
        try:
            yield ctypes.CDLL(path)
        except OSError:
            continue


def _numpy_blas():
    """NumPy's OpenBLAS as a ``ctypes.CDLL`` when it has the ILP64 ``scipy_cblas_*gemm64_``
    symbols, else None."""
    here = os.path.dirname(np.__file__)
    paths = [p for where in ((os.pardir, "numpy.libs"), (".dylibs",))   # wheels: Linux
             for p in glob.glob(os.path.join(here, *where, "*openblas*"))]  # Windows; macOS
    paths += _loaded(True)
    for lib in _opened(paths):
        if all(hasattr(lib, f"scipy_cblas_{t}gemm64_") for t in "sd"):
            return lib
    return None


def _scipy_blas():
    """``(set, get)`` of the thread count of SciPy's OpenBLAS, or ``()``."""
    try:
        import scipy
        import scipy.linalg.cython_blas  # noqa: F401  (loads the library)
    except ImportError:
        return ()
    paths = glob.glob(os.path.join(os.path.dirname(scipy.__file__), os.pardir,
                                   "scipy.libs", "*openblas*"))
    paths += _loaded(False)           # other installs (conda, system): what is loaded
    for lib in _opened(paths):
        for prefix in ("scipy_openblas", "openblas"):
            fns = _count_fns(lib, prefix, "")
            if fns:
                return fns
    return ()


def _count_fns(lib, prefix, suffix):
    set_, get = (getattr(lib, f"{prefix}_set_num_threads{suffix}", None),
                 getattr(lib, f"{prefix}_get_num_threads{suffix}", None))
    if set_ is None or get is None:
        return ()
    set_.argtypes, set_.restype, get.restype = [ctypes.c_int], None, ctypes.c_int
    return set_, get


def _find():
    """``(gemm addresses by dtype, (set, get) of the thread count)`` of the BLAS the
    machine calls (see the module's text)."""
    lib = _numpy_blas()
    if lib is not None:
        fns = _count_fns(lib, "scipy_openblas", "64_")
        if fns:
            addr = {np.dtype(dt): ctypes.cast(getattr(lib, f"scipy_cblas_{t}gemm64_"),
                                              ctypes.c_void_p).value
                    for t, dt in (("s", np.float32), ("d", np.float64))}
            return addr, fns
    return {}, _scipy_blas()


def _found():
    if _state["fns"] is None:
        with _lock:
            if _state["fns"] is None:
                addr, fns = _find()
                _state["gemm"] = {dt: np.array([a], np.int64) for dt, a in addr.items()}
                _state["fns"] = fns
    return _state


_NONE = np.zeros(1, np.int64)


def gemm(dtype):
    """``int64[1]``: the address of the ``cblas_?gemm`` (ILP64) the machine calls for
    workspaces of ``dtype``, or 0 (the machine then uses ``np.dot``)."""
    return _found()["gemm"].get(np.dtype(dtype), _NONE)


def controllable():
    """Whether the machine's BLAS thread count can be set (see the module's text)."""
    return bool(_found()["fns"])


@contextmanager
def one_thread():
    """The machine's BLAS on one thread inside the block (nested and concurrent blocks
    share one setting; the last to leave restores the count found by the first)."""
    fns = _found()["fns"]
    if not fns:
        yield
        return
    set_, get = fns
    with _lock:
        if _state["users"] == 0:
            _state["saved"] = get()
            set_(1)
        _state["users"] += 1
    try:
        yield
    finally:
        with _lock:
            _state["users"] -= 1
            if _state["users"] == 0:
                set_(_state["saved"])


@intrinsic
def cblas_gemm(typingctx, addr, w, ta, tb, m, n, k, a, lda, b, ldb, c, ldc):
    """``w[c:]`` as a row-major ``[m, n]`` matrix with leading dimension ``ldc`` :=
    ``op(A) @ op(B)``, ``A`` at ``w[a:]`` (``[m, k]`` with leading dimension ``lda`` when
    ``ta`` is :data:`NO_TRANS`, ``[k, m]`` transposed when :data:`TRANS`), ``B`` at
    ``w[b:]`` likewise; by the ILP64 CBLAS ``gemm`` at ``addr`` (see :func:`gemm`).
    ``w`` is a contiguous float32 or float64 array; nothing is checked."""
    if not (isinstance(w, types.Array) and w.dtype in (types.float32, types.float64)):
        return None
    ints = (addr, ta, tb, m, n, k, a, lda, b, ldb, c, ldc)
    if not all(isinstance(t, types.Integer) for t in ints):
        return None
    sig = types.void(addr, w, ta, tb, m, n, k, a, lda, b, ldb, c, ldc)

    def codegen(context, builder, sig, args):
        i32, i64 = ir.IntType(32), ir.IntType(64)
        fl = context.get_value_type(w.dtype)
        ptr = fl.as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [i32, i32, i32, i64, i64, i64, fl, ptr, i64,
                                               ptr, i64, fl, ptr, i64])
        vals = dict(zip(("addr", "w", "ta", "tb", "m", "n", "k", "a", "lda", "b", "ldb",
                         "c", "ldc"), zip(args, sig.args)))

        def int64(name):
            v, t = vals[name]
            return context.cast(builder, v, t, types.int64)

        data = context.make_array(w)(context, builder, vals["w"][0]).data
        fn = builder.inttoptr(int64("addr"), fnty.as_pointer())
        builder.call(fn, [
            ir.Constant(i32, _ROW_MAJOR), builder.trunc(int64("ta"), i32),
            builder.trunc(int64("tb"), i32), int64("m"), int64("n"), int64("k"),
            ir.Constant(fl, 1.0), builder.gep(data, [int64("a")]), int64("lda"),
            builder.gep(data, [int64("b")]), int64("ldb"), ir.Constant(fl, 0.0),
            builder.gep(data, [int64("c")]), int64("ldc")])
        return context.get_dummy_value()

    return sig, codegen
