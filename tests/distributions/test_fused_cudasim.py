"""The CUDA fused-normal kernels under Numba's CUDA simulator, against the CPU kernels
and a NumPy reference.

``NUMBA_ENABLE_CUDASIM=1`` must be set before Numba is imported, so the kernels run in a
subprocess with that variable in its environment (the simulator takes host arrays and
runs each thread as a Python thread, so sizes are small).
"""
import textwrap

import pytest

from tests.cudasim import SKIP_CODE, run_under_cudasim

__all__ = []



SCRIPT = textwrap.dedent("""
    import sys
    try:
        from numba import cuda
    except Exception as exc:
        print(f"numba.cuda simulator not importable: {exc!r}")
        sys.exit(SKIP_CODE)
    import numpy as np
    from zsarray.distributions import kernels_cpu as kc, kernels_cuda as kg

    tol = {np.float64: dict(rtol=1e-12, atol=1e-12), np.float32: dict(rtol=1e-5, atol=1e-5)}
    r = np.random.default_rng(0)
    checked = 0
    for dtype in (np.float64, np.float32):
        for n, m in ((1, 1), (3, 5), (4, 7)):
            for lognormal in (False, True):
                mu = r.standard_normal(m).astype(dtype)
                ls = (0.3 * r.standard_normal(m)).astype(dtype)
                cst = -ls - 0.5 * np.log(2 * np.pi)
                sig = np.exp(ls)
                eps = r.standard_normal((n, m)).astype(dtype)
                g = r.standard_normal((n, m)).astype(dtype)
                outs = {}
                for name, k in (("cpu", kc), ("gpu", kg)):
                    z, lp = np.empty_like(eps), np.empty_like(eps)
                    k.forward(mu, sig, cst, eps, z, lp, lognormal)
                    gm, gs = np.zeros(m), np.zeros(m)
                    k.vjp_z(g, z, sig, eps, gm, gs, lognormal)
                    res = [z, lp, gm, gs]
                    gm, gs = np.zeros(m), np.zeros(m)       # one cotangent row for all samples
                    k.vjp_z(g[:1], z, sig, eps, gm, gs, lognormal)
                    res += [gm, gs]
                    for cp, cs in ((1.0, 1.0), (1.0, 0.0), (0.0, 1.0)):
                        gm, gs = np.zeros(m), np.zeros(m)
                        k.vjp_logp(g, sig, eps, gm, gs, cp, cs, lognormal)
                        res += [gm, gs]
                    outs[name] = res
                # NumPy reference of the forward pass and of the z pullback
                x = mu + sig * eps
                lp = -0.5 * eps ** 2 - ls - 0.5 * np.log(2 * np.pi)
                gz = g
                if lognormal:
                    lp, x = lp - x, np.exp(x)
                    gz = g * x
                ref = [x, lp, gz.sum(0), (gz * eps).sum(0) * sig]
                for a, b, c in zip(outs["gpu"], outs["cpu"], ref + [None] * 8):
                    np.testing.assert_allclose(a, b, **tol[dtype])
                    if c is not None:
                        np.testing.assert_allclose(a, c, **tol[dtype])
                checked += 1
    print(f"CUDASIM OK {checked}")
""").replace("SKIP_CODE", str(SKIP_CODE))


@pytest.mark.cudasim
def test_cuda_kernels_match_cpu_and_reference_under_simulator():
    run_under_cudasim(SCRIPT, "CUDASIM OK 12")
