"""Lowerings of recorded programs: :mod:`.cpu` (a Numba-compiled machine, :mod:`.vm`)."""
from .cpu import Executable, NotLowerable, CompileWarning, lower

__all__ = ["Executable", "NotLowerable", "CompileWarning", "lower"]
