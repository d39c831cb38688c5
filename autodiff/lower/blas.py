"""The thread count of the BLAS that the CPU machine's matrix products call.

Numba's ``np.dot`` calls the BLAS that SciPy links (``scipy.linalg.cython_blas``); with
SciPy's wheels that is its own OpenBLAS, multi-threaded. A matrix product that the
machine cuts into parts (:func:`.fuse.parallel_steps`) runs each part on its own thread
with that BLAS on one thread: several multi-threaded products at once would fight over
the cores, and OpenBLAS's idle threads keep spinning for a while after each product,
taking a core from the rows that follow.

OpenBLAS's thread count is one setting for the whole process (its "local" variant is
process-wide too in the pthreads builds SciPy ships), so :func:`one_thread` sets it to
1 while a program with parts runs and puts the previous value back when the last one
ends: a SciPy routine that another thread of the user's calls in that window runs on
one thread. Where the count cannot be set (another BLAS, or none found), matrix products
are not cut into parts.
"""
import ctypes
import glob
import os
import threading
from contextlib import contextmanager

__all__ = ["controllable", "one_thread"]

_lock = threading.Lock()
_state = {"fns": None, "users": 0, "saved": None}


def _find():
    """``(set, get)`` of SciPy's OpenBLAS, or ``()``."""
    try:
        import scipy
        import scipy.linalg.cython_blas  # noqa: F401  (loads the library)
    except ImportError:
        return ()
    paths = glob.glob(os.path.join(os.path.dirname(scipy.__file__), os.pardir,
                                   "scipy.libs", "*openblas*"))
    try:                                  # other installs (conda, system): what is loaded
        with open("/proc/self/maps") as f:
            paths += sorted({line.split()[-1] for line in f
                             if "openblas" in line.rsplit("/", 1)[-1].lower()
                             and "numpy" not in line})
    except OSError:
        pass
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas", "openblas"):
            set_, get = (getattr(lib, prefix + "_set_num_threads", None),
                         getattr(lib, prefix + "_get_num_threads", None))
            if set_ is not None and get is not None:
                set_.argtypes, set_.restype, get.restype = [ctypes.c_int], None, ctypes.c_int
                return set_, get
    return ()


def _fns():
    if _state["fns"] is None:
        with _lock:
            if _state["fns"] is None:
                _state["fns"] = _find()
    return _state["fns"]


def controllable():
    """Whether the machine's BLAS thread count can be set (see the module's text)."""
    return bool(_fns())


@contextmanager
def one_thread():
    """The machine's BLAS on one thread inside the block (nested and concurrent blocks
    share one setting; the last to leave restores the count found by the first)."""
    fns = _fns()
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
