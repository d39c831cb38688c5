"""autodiff.compile: every op of the op table compiled, against the tape.

Each case of ``test_autodiff_ops.CASES`` becomes a function of one flat vector (its
differentiable arguments, unpacked inside with getitem and reshape) whose value is
``sum(op(...) * v)``. Compiled, it must run on the machine entirely (no Python step),
and its value and gradient must equal the tape's: float64 to 1e-12 relative (the
machine sums in another order than NumPy's pairwise reductions), float32 to a few ulp.
"""
import warnings
import zlib

import numpy as np
import pytest

import autodiff as ad
from autodiff import CompileWarning, TraceWarning

from .test_autodiff_ops import CASES, _split

RNG_C = np.random.default_rng(21)

def _has_bool(idx):
    parts = idx if isinstance(idx, tuple) else (idx,)
    return any(np.asarray(p).dtype == bool for p in parts
               if isinstance(p, (np.ndarray, list)) and len(np.ravel(p)))


def _flat_case(c, dtype=np.float64):
    """(flat input, f(flat Tensor) -> scalar Tensor) for case ``c``."""
    rng = np.random.default_rng(zlib.crc32(c.id.encode()))
    xs, f, _ = _split(c, rng)
    shapes = [np.shape(x) for x in xs]
    sizes = [int(np.prod(s, dtype=np.int64)) for s in shapes]
    flat = np.concatenate([np.ravel(x) for x in xs]).astype(dtype) if xs else \
        np.zeros(0, dtype)
    out_shape = np.shape(f(*xs).data)
    v = rng.standard_normal(out_shape).astype(dtype)

    def g(t):
        parts, start = [], 0
        for s, n in zip(shapes, sizes):
            parts.append(ad.reshape(t[start:start + n], s))
            start += n
        return ad.sum(f(*parts) * v)
    return flat, g


def _tape(g, x):
    return ad.value_and_grad(g)(x)


def _close(a, b, rtol):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = np.max(np.abs(b)) if b.size else 0.0
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * max(scale, 1e-300))


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_op_compiles_and_matches_the_tape(c):
    x, g = _flat_case(c)
    comp = ad.compile(g)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)
        warnings.simplefilter("error", TraceWarning)
        for shift in (0.0, 1e-3, 2e-3):          # record, verify, run
            xi = x + shift
            v, gr = comp.value_and_grad(xi)
            tv, tg = _tape(g, xi)
            _close(v, tv, 1e-12)
            _close(gr, tg, 1e-12)
            assert gr.shape == x.shape and gr.dtype == x.dtype
    assert comp.compiled
    entry = next(iter(comp._programs.values()))
    assert entry.exe[1].fallbacks == [] and entry.exe[0].fallbacks == []
    _close(comp(x), _tape(g, x)[0], 1e-12)


@pytest.mark.parametrize("c", [c for c in CASES if c.op != "cast"],
                         ids=[c.id for c in CASES if c.op != "cast"])
def test_op_compiles_in_float32(c):
    x, g = _flat_case(c, np.float32)
    comp = ad.compile(g, warn=False)
    for shift in (0.0, 1e-3, 2e-3):
        xi = (x + np.float32(shift)).astype(np.float32)
        v, gr = comp.value_and_grad(xi)
        tv, tg = _tape(g, xi)
        assert gr.dtype == np.float32
        _close(v, tv, 2e-5)
        _close(gr, tg, 2e-5)
    assert comp.compiled


def test_a_value_dependent_shape_is_replayed_with_a_warning():
    """A boolean mask computed from the input makes the shape depend on the values: the
    function is not compiled; the replay fails at a new mask count and the tape
    answers from then on (never a wrong answer)."""
    def f(x):
        keep = x[ad.greater(x, 0.0)]
        return ad.sum(keep * keep)
    comp = ad.compile(f)
    with pytest.warns(CompileWarning, match="boolean indexing"):
        comp.value_and_grad(np.array([1.0, -2.0, 3.0]))
    with pytest.warns(TraceWarning, match="disagree"):
        comp.value_and_grad(np.array([1.0, 2.0, 3.0]))
    for x in ([4.0, 2.0, 3.0], [-1.0, -2.0, 0.5]):
        v, g = comp.value_and_grad(np.array(x))
        tv, tg = _tape(f, np.array(x))
        assert float(v) == float(tv) and np.array_equal(g, tg)
    assert not comp.compiled


@pytest.mark.parametrize("compiled", [False, True])
def test_failing_members_of_a_stack_give_nan_and_a_single_matrix_raises(compiled):
    """One chain proposing a matrix that is not positive definite gets NaN (its proposal
    is then rejected); the other members are exact. A single matrix raises."""
    good = np.array([[2.0, 0.3], [0.3, 1.0]])
    bad = np.array([[1.0, 2.0], [2.0, 1.0]])

    def f(s):                                   # s [C]: scales the off-diagonal
        a = ad.tensor(np.stack([good, bad, good]))
        m = a * ad.reshape(s, (-1, 1, 1))
        chol = ad.cholesky(m)
        x = ad.solve(m, np.ones((3, 2, 1)))
        return ad.sum(ad.log(ad.diagonal(chol, 0, 1, 2)), axis=1) + ad.sum(x, axis=(1, 2))
    g = ad.compile(f, warn=False) if compiled else None
    s = np.array([1.0, 1.0, 2.0])
    for _ in range(3):
        v, gr = g.value_and_grad(s) if compiled else (
            f(ad.Tensor(s)).data, ad.grad(lambda t: ad.sum(f(t)))(s))
        assert np.isfinite(v[0]) and np.isfinite(v[2]) and np.isnan(v[1])
        ref = f(ad.Tensor(s)).data
        np.testing.assert_allclose(v[[0, 2]], ref[[0, 2]], rtol=1e-12)
        assert np.isnan(gr).any()           # the sum couples the chains' gradients
    single = lambda t: ad.sum(ad.cholesky(ad.tensor(bad) * t))   # noqa: E731
    with pytest.raises(np.linalg.LinAlgError):
        (ad.compile(single, warn=False).value_and_grad if compiled else
         ad.value_and_grad(single))(np.array(1.0))


def test_a_value_read_twice_by_one_op_is_freed_once():
    """``y * y`` (here inside tanh's VJP) reads y twice; freeing its block twice let two
    later values share memory, and the gradient came out wrong (the verification
    then fell back to the tape)."""
    def f(q):
        rho = ad.tanh(q[:, 0]) * 0.5
        one = ad.ones_like(rho)
        m = ad.stack([ad.stack([one, rho], axis=1), ad.stack([rho, one], axis=1)], axis=1)
        logdet = 2.0 * ad.sum(ad.log(ad.diagonal(ad.cholesky(m), 0, 1, 2)), axis=1)
        return -0.5 * logdet - 0.5 * q[:, 1] ** 2 + ad.log1p(-ad.square(ad.tanh(q[:, 0])))
    q = np.array([[0.1, 0.2], [2.0, 0.1], [-0.3, 0.5]])
    comp = ad.compile(f)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for k in range(4):
            v, g = comp.value_and_grad(q + 0.01 * k)
            tv, tg = _tape(lambda t: ad.sum(f(t)), q + 0.01 * k)
            np.testing.assert_allclose(g, tg, rtol=1e-12)
    assert comp.compiled


def test_an_op_without_a_lowering_runs_as_a_python_step_with_a_warning():
    """A user primitive whose function the machine cannot run (here SciPy's Spence
    integral, a ufunc with no lowering rule): the program runs in compiled segments
    around one Python call, named in a CompileWarning, with the tape's values."""
    import scipy.special as sps
    spence = ad.primitive(sps.spence, name="my_spence", nargs=1)
    ad.defvjp(spence, lambda ans, x: lambda g: -g * np.log(x) / (1.0 - x))

    def f(x):
        return ad.sum(ad.exp(x) * spence(x * 0.5 + 1.0), axis=1)
    comp = ad.compile(f)
    x = RNG_C.uniform(0.1, 1.0, size=(3, 4))
    with pytest.warns(CompileWarning, match="spence"):
        comp.value_and_grad(x)
    for k in range(3):
        v, g = comp.value_and_grad(x + 0.01 * k)
        tv, tg = f(ad.Tensor(x + 0.01 * k)).data, ad.grad(lambda t: ad.sum(f(t)))(x + 0.01 * k)
        np.testing.assert_allclose(v, tv, rtol=1e-12)
        np.testing.assert_allclose(g, tg, rtol=1e-12)
    entry = next(iter(comp._programs.values()))
    assert entry.exe[1].fallbacks and len(entry.exe[1].steps) >= 3     # vm, py, vm


def test_value_dependent_python_control_flow_falls_back():
    def f(x):
        if float(ad.sum(x)) > 0:
            return ad.sum(x * x, axis=1)
        return ad.sum(ad.exp(x), axis=1)
    comp = ad.compile(f)
    with pytest.warns(TraceWarning, match="__float__"):
        comp.value_and_grad(np.ones((2, 3)))
    v, g = comp.value_and_grad(-np.ones((2, 3)))
    np.testing.assert_allclose(v, np.exp(-1.0) * 3)
    assert not comp.compiled


def test_a_compiled_function_is_shared_by_threads():
    """Each thread gets its own workspace: eight threads calling one compiled function
    at once (with a tiny switch interval) get exactly the single-threaded answers."""
    from tests.threads import run_in_threads

    def f(x):
        c, _ = ad.scan(lambda h, y: (ad.tanh(h * 0.9 + y), None), x, np.ones((20, 1)))
        return ad.sum(c * c, axis=1) + ad.logsumexp(x, axis=1)
    comp = ad.compile(f)
    xs = [RNG_C.normal(size=(5, 3)) for _ in range(8)]
    for x in xs[:4]:
        comp.value_and_grad(x)                       # record and verify
    expected = [comp.value_and_grad(x) for x in xs]
    def work(k):
        for _ in range(50):
            v, g = comp.value_and_grad(xs[k])
            assert np.array_equal(v, expected[k][0]) and np.array_equal(g, expected[k][1])
    run_in_threads(work)
