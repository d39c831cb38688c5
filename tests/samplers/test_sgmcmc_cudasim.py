"""SG-MCMC CUDA kernels under Numba's CUDA simulator, against the NumPy reference.

``NUMBA_ENABLE_CUDASIM=1`` must be set before Numba is imported, so the
kernels run in a subprocess. The simulator runs each thread as a Python
thread, so the sizes are small.
"""
import textwrap

import pytest

from tests.cudasim import SKIP_CODE, run_under_cudasim

__all__ = []

  # the script's "simulator unavailable" exit status

SCRIPT = textwrap.dedent(
    """
    import sys
    try:
        from numba import cuda  # noqa: F401
    except Exception as exc:
        print(f"numba.cuda simulator not importable: {exc!r}")
        sys.exit(SKIP_CODE)
    import numpy as np
    from samplers.kernels import sgmcmc_cuda as kc, sgmcmc_reference as ref

    rtol = {np.float64: 1e-12, np.float32: 1e-5}
    rng = np.random.default_rng(0)
    n_checked = 0
    for dtype in (np.float64, np.float32):
        for c, d in ((1, 1), (5, 3), (3, 7)):
            q, v, g, z = (rng.standard_normal((c, d)).astype(dtype) for _ in range(4))
            tol = dict(rtol=rtol[dtype], atol=rtol[dtype] * 10)

            q1, q2 = q.copy(), q.copy()
            kc.sgld(q1, g, z, 0.03); ref.sgld(q2, g, z, 0.03)
            np.testing.assert_allclose(q1, q2, **tol)
            q1, q2, v1, v2 = q.copy(), q.copy(), np.abs(v), np.abs(v)
            kc.psgld(q1, v1, g, z, 0.03, 0.9, 1e-3); ref.psgld(q2, v2, g, z, 0.03, 0.9, 1e-3)
            np.testing.assert_allclose(q1, q2, **tol); np.testing.assert_allclose(v1, v2, **tol)
            q1, q2 = q.copy(), q.copy()
            kc.drift(q1, v, 0.5); ref.drift(q2, v, 0.5)
            np.testing.assert_allclose(q1, q2, **tol)
            for fshape in ((c, d), (c, 1), (1, 1)):
                fr = rng.uniform(-0.2, 0.6, fshape).astype(dtype)
                for second_order in (False, True):
                    q1, q2, v1, v2 = q.copy(), q.copy(), v.copy(), v.copy()
                    kc.momentum(q1, v1, fr, g, z, 0.02, 0.1, second_order)
                    ref.momentum(q2, v2, fr, g, z, 0.02, 0.1, second_order)
                    np.testing.assert_allclose(q1, q2, **tol)
                    np.testing.assert_allclose(v1, v2, **tol)
                    assert q1.dtype == dtype and v1.dtype == dtype
            for ashape in ((c, d), (c, 1)):
                a1 = np.full(ashape, 0.1, dtype=dtype); a2 = a1.copy()
                kc.thermostat(a1, v, 0.02, 0.5); ref.thermostat(a2, v, 0.02, 0.5)
                np.testing.assert_allclose(a1, a2, **tol)
                assert a1.dtype == dtype
            n_checked += 1
    print(f"CUDASIM OK {n_checked}")
    """
).replace("SKIP_CODE", str(SKIP_CODE))


@pytest.mark.cudasim
def test_sgmcmc_cuda_kernels_match_reference_under_simulator():
    run_under_cudasim(SCRIPT, "CUDASIM OK 6")
