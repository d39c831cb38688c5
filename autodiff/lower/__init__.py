"""Lowerings of recorded programs: :mod:`.cpu` builds the instruction table of one
Numba-compiled machine (:mod:`.vm`) with one rule per operation (:mod:`.rules`, loops in
:mod:`.loops`, rewrites in :mod:`.simplify`), then fuses elementwise chains
(:mod:`.fuse`); :mod:`.cuda` runs the same rows one CUDA thread per chain."""
from .cpu import Executable, NotLowerable, CompileWarning, lower

__all__ = ["Executable", "NotLowerable", "CompileWarning", "lower"]
