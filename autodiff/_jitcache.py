"""Numba's on-disk cache, invalidated by any change to the package's source.

Numba keys a cached function by its own source file only. A compiled function that
calls jitted code of another module (the NUTS transition calls the machine of
``autodiff.lower.vm``; the machine inlines ``autodiff.logistic``'s polynomials) keeps
the callee it was compiled with: after the callee changes, the stale cache runs the old
code, silently (a new row kind the old machine skips is a wrong answer). So every
cached function of ``autodiff``, ``samplers`` and ``zsarray`` is keyed by its file and
by one hash of all three packages' Python sources (computed once per process, when the
first cached function is looked up): any change recompiles all of them once.

:func:`install` puts these locators in front of Numba's; it runs when ``autodiff`` is
imported, before any cached function is defined.
"""
import contextlib
import hashlib
import os
import sys
import threading
import time

__all__ = ["install", "package_stamp", "first_compile_notice", "first_call"]

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOTS = tuple(os.path.join(os.path.dirname(_HERE), p) for p in ("autodiff", "samplers",
                                                                   "zsarray"))
_stamp = None


def package_stamp():
    """SHA-256 over the Python sources of the three packages (sorted paths)."""
    global _stamp
    if _stamp is None:
        h = hashlib.sha256()
        for root in _ROOTS:
            for dirpath, dirs, files in os.walk(root):
                dirs[:] = sorted(d for d in dirs if d != "__pycache__")
                for f in sorted(files):
                    if f.endswith(".py"):
                        path = os.path.join(dirpath, f)
                        h.update(os.path.relpath(path, os.path.dirname(root)).encode())
                        with open(path, "rb") as fh:
                            h.update(fh.read())
        _stamp = h.hexdigest()
    return _stamp


def _ours(py_file):
    path = os.path.abspath(py_file)
    return any(path.startswith(r + os.sep) for r in _ROOTS)


def _package_locator(base):
    class PackageLocator(base):
        def get_source_stamp(self):
            return (super().get_source_stamp(), package_stamp())

        @classmethod
        def from_function(cls, py_func, py_file):
            if not _ours(py_file):
                return None
            return super().from_function(py_func, py_file)
    PackageLocator.__name__ = PackageLocator.__qualname__ = "Package" + base.__name__
    return PackageLocator


def install():
    """Put the package-keyed locators first in Numba's list (once)."""
    from numba.core import caching
    impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl
    if any(getattr(c, "_zsarray", False) for c in impl._locator_classes):
        return
    ours = []
    for base in impl._locator_classes:
        if "IPython" in base.__name__ or "Zip" in base.__name__:
            continue
        cls = _package_locator(base)
        cls._zsarray = True
        ours.append(cls)
    impl._locator_classes = ours + list(impl._locator_classes)


_noticed = set()
_notice_lock = threading.Lock()


@contextlib.contextmanager
def first_compile_notice(what, after=3.0, stream=None):
    """Around a first call that may compile Numba code (on an empty cache: after
    installing or updating the package): when it runs longer than ``after`` seconds and
    ``stream`` (stderr) is a terminal, say on it what is compiling and, at the end, how
    long it took. Once per process and ``what``; silent when the cache had it."""
    stream = sys.stderr if stream is None else stream
    with _notice_lock:
        if what in _noticed:
            stream = None
        _noticed.add(what)
    if stream is None or not getattr(stream, "isatty", lambda: False)():
        yield
        return
    t0 = time.perf_counter()
    said = []

    def say():
        said.append(True)
        stream.write(f"zsarray: compiling {what} with Numba (once per installation, "
                     f"cached on disk afterwards)...\n")
        stream.flush()

    timer = threading.Timer(after, say)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        if said:
            stream.write(f"zsarray: compiled {what} in {time.perf_counter() - t0:.1f} s\n")
            stream.flush()


def first_call(what, fn, *args):
    """``fn(*args)``, inside :func:`first_compile_notice` the first time ``what`` is
    called in this process (a set lookup afterwards: for hot paths)."""
    if what in _noticed:
        return fn(*args)
    with first_compile_notice(what):
        return fn(*args)
