"""The GPU machine (autodiff.lower.cuda) under Numba's CUDA simulator, against the CPU one.

Each function is recorded at one chain, lowered for the GPU and run by one simulated
thread per chain; values and gradients must equal the CPU machine's on the whole batch.
Then ``autodiff.compile`` is driven through its GPU path (NumPy arrays stand for CuPy
ones under the simulator) and checked against the tape. The simulator runs every thread
in Python, so the programs and chain counts are small.
"""
import textwrap

from tests.cudasim import SKIP_CODE, run_under_cudasim

SCRIPT = textwrap.dedent(
    """
    import sys, warnings
    try:
        from numba import cuda
    except Exception as exc:
        print(f"numba.cuda simulator not importable: {exc!r}")
        sys.exit(SKIP_CODE)
    import numpy as np
    import autodiff as ad
    from autodiff import compiler as compile_mod
    from autodiff.program import record, Program
    from autodiff.lower import lower

    rng = np.random.default_rng(0)
    X = rng.normal(size=(3, 6)); Y = (rng.random(6) < 0.5).astype(float)
    M = np.array([[2.0, 0.3, 0.1], [0.3, 1.5, 0.2], [0.1, 0.2, 1.0]])
    T = rng.normal(size=(5, 2))

    def blr(w):                              # matmul with data, logistic terms
        logits = w @ X
        return ad.sum(Y * logits - ad.softplus(logits), axis=1) - 0.5 * ad.sum(w * w, axis=1)

    def linalg(w):                           # per-chain matrices: cholesky, solve, slogdet
        a = ad.reshape(w[:, :1], (-1, 1, 1)) * 0.2 * M + M
        chol = ad.cholesky(a)
        z = ad.solve_triangular(chol, w, lower=True)
        x = ad.solve(a, w[:, :, None])[:, :, 0]
        return ad.sum(z * z, axis=1) + ad.slogdet(a)[1] + ad.sum(x, axis=1)

    def loop(w):                             # scan, reductions, where, cumsum, indexing
        # (argmax of the first row: per chain under the GPU machine, of chain 0 on the tape)
        def step(c, t):
            return ad.logsumexp(c[:, :, None] + w[:, None, :2] * 0.3, axis=1) + t, None
        c, _ = ad.scan(step, w[:, :2], T.astype(w.dtype))
        k = ad.argmax(w[0])
        return (ad.sum(ad.where(w > 0, w, 0.1 * w), axis=1) + ad.sum(c, axis=1)
                + ad.cumsum(w, axis=1)[:, -1] + w[:, k] + ad.max(w, axis=1))

    checked = 0
    for f in (blr, linalg, loop):
        for dtype, tol in ((np.float64, 1e-11), (np.float32, 2e-4)):
            x = rng.normal(size=(4, 3)).astype(dtype)
            b, v, g = record(f, (x[:1],), atomic=False)
            prog = Program.from_builder(b, [v, *g])
            gv, gg = lower(prog, gpu=True)(x)
            assert gv.shape == (4,) and gg.shape == x.shape and gg.dtype == dtype
            # the reference: the CPU machine on each chain alone (the GPU runs the
            # program of one chain per thread)
            cpu = lower(prog)
            ref = [cpu(x[i:i + 1]) for i in range(4)]
            np.testing.assert_allclose(gv, np.concatenate([r[0] for r in ref]), rtol=tol,
                                       atol=tol)
            np.testing.assert_allclose(gg, np.concatenate([r[1] for r in ref]), rtol=tol,
                                       atol=tol)
            checked += 1

    # autodiff.compile's GPU path: per-chain recording, verification against the tape
    compile_mod._GPU_FOR_NUMPY = True
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        comp = ad.compile(blr)
        for k in range(4):
            x = rng.normal(size=(5, 3))
            v, g = comp.value_and_grad(x)
            tv, tg = ad.value_and_grad(lambda t: ad.sum(blr(t)))(x)
            np.testing.assert_allclose(g, tg, rtol=1e-11)
        entry = next(iter(comp._programs.values()))
        assert type(entry.exe[1]).__name__ == "GPUExecutable" and entry.verified
        assert entry.exe[1].prog.inputs[0].shape == (1, 3)     # the program of one chain

    def mixes(w):                            # chains interact: the per-chain program is
        return w[:, 0] - ad.mean(w[:, 0])    # wrong, the verifying call falls back
    comp = ad.compile(mixes)
    comp.value_and_grad(rng.normal(size=(4, 2)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        x = rng.normal(size=(4, 2))
        v, g = comp.value_and_grad(x)
    assert any("disagree" in str(w.message) for w in caught)
    np.testing.assert_allclose(v, x[:, 0] - x[:, 0].mean())
    print(f"gpu machine ok {checked}")
    """).replace("SKIP_CODE", str(SKIP_CODE))


def test_gpu_machine_under_the_cuda_simulator():
    run_under_cudasim(SCRIPT, "gpu machine ok 6", timeout=900)
