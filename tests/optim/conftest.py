"""Import ``zsarray.nn`` / ``zsarray.optim`` even while ``zsarray/__init__.py`` cannot import.

They depend only on :mod:`autodiff`; if the package's top level fails (another
module of zsarray mid-edit), a bare package stub lets the submodules import.
"""
import importlib
import sys
import types
from pathlib import Path

try:
    importlib.import_module("zsarray")
except Exception:  # pragma: no cover - only while zsarray/__init__.py is broken
    stub = types.ModuleType("zsarray")
    stub.__path__ = [str(Path(__file__).resolve().parents[2] / "zsarray")]
    sys.modules["zsarray"] = stub
