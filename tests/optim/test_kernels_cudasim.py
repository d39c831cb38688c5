"""CUDA optimizer kernels under Numba's CUDA simulator, against the NumPy reference.

``NUMBA_ENABLE_CUDASIM=1`` must be set before Numba is imported, so the check
runs in a subprocess with that variable in its environment. There the optimizers
are pointed at :mod:`zsarray.optim.kernels_cuda` (the simulator takes NumPy
arrays) and replay every case of the CPU step-by-step test.
"""
import textwrap

import pytest

from tests.cudasim import SKIP_CODE, run_under_cudasim

from .reference import CASES

  # the script's "simulator unavailable" exit status

SCRIPT = textwrap.dedent(
    """
    import sys, types
    try:
        from numba import cuda
        assert cuda.is_available() or True
    except Exception as exc:
        print(f"numba.cuda simulator not importable: {exc!r}")
        sys.exit(SKIP_CODE)
    try:
        import zsarray
    except Exception:   # the package top level mid-edit: load the submodule alone
        stub = types.ModuleType("zsarray")
        stub.__path__ = ["zsarray"]
        sys.modules["zsarray"] = stub
    import numpy as np
    from zsarray.optim import optimizers, kernels_cuda
    from tests.optim.reference import CASES, run_reference, run_zsarray

    optimizers._kernels_for = lambda a: kernels_cuda
    tol = {np.float64: dict(rtol=1e-12, atol=1e-14), np.float32: dict(rtol=1e-5, atol=1e-6)}
    n_checked = 0
    for name, hyper in CASES:
        for dtype in (np.float64, np.float32):
            ours = run_zsarray(name, hyper, dtype, 4)
            ref = run_reference(name, hyper, dtype, 4)
            for t, (a, b) in enumerate(zip(ours, ref)):
                for pa, pb in zip(a, b):
                    assert pa.dtype == dtype, (name, hyper, pa.dtype)
                    np.testing.assert_allclose(pa, pb, **tol[dtype],
                                               err_msg=f"{name} {hyper} {dtype} step {t}")
            n_checked += 1
    assert kernels_cuda._kernels.cache_info().currsize == 1   # the CUDA kernels did run
    assert type(kernels_cuda._kernels().adam).__name__ == "FakeCUDAKernel"
    print(f"CUDASIM OK {n_checked}")
    """
).replace("SKIP_CODE", str(SKIP_CODE))


@pytest.mark.cudasim
def test_cuda_optimizer_kernels_match_reference_under_simulator():
    run_under_cudasim(SCRIPT, f"CUDASIM OK {2 * len(CASES)}")
