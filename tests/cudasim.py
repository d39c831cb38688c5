"""Run a check script under Numba's CUDA simulator in a subprocess.

``NUMBA_ENABLE_CUDASIM=1`` must be set before Numba is imported, so every CUDA kernel
test runs its script in a fresh interpreter with that variable set; the script exits
with :data:`SKIP_CODE` when the simulator is not importable (``numba-cuda`` missing).
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SKIP_CODE = 77  # the scripts' "simulator unavailable" exit status


def run_under_cudasim(script, expected, timeout=300):
    """Run ``script`` with the simulator on; skip if it is unavailable, else assert that
    it succeeded and printed ``expected``. Returns its standard output."""
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode == SKIP_CODE:
        pytest.skip(proc.stdout.strip())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert expected in proc.stdout, proc.stdout
    return proc.stdout
