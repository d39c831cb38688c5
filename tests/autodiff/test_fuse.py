"""Tiled fusion of elementwise rows (autodiff.lower.fuse).

Fusion normally starts at 4096-element rows; here it is forced onto every row (one
element and up, tiles of 3 elements so that every loop has several tiles and a partial
last one), and the whole op table must still match the tape, with FUSED rows made. Then
large programs (the BLR log density at many chains, broadcasting chains with
reductions, values updated in place) against the unfused machine, bit for bit.
"""
import numpy as np
import pytest

import autodiff as ad
from autodiff.lower import blas, fuse, vm

from .test_autodiff_ops import CASES
from .test_compile import _close, _flat_case, _tape


def _fused_rows(comp):
    entry = next(iter(comp._programs.values()))
    return int(np.sum(entry.exe[1].code[:, vm.F_OP] == vm.OP.FUSED))


@pytest.fixture
def fuse_everything(monkeypatch):
    monkeypatch.setattr(fuse, "MIN_SIZE", 1)
    monkeypatch.setattr(fuse, "MIN_INNER", 1)
    monkeypatch.setattr(fuse, "TILE", 3)


FUSED_SOMEWHERE = []


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_op_table_with_every_row_fused(c, fuse_everything):
    x, g = _flat_case(c)
    comp = ad.compile(g, warn=False)
    for shift in (0.0, 1e-3, 2e-3):
        xi = x + shift
        v, gr = comp.value_and_grad(xi)
        tv, tg = _tape(g, xi)
        _close(v, tv, 1e-12)
        _close(gr, tg, 1e-12)
    assert comp.compiled
    if _fused_rows(comp):
        FUSED_SOMEWHERE.append(c.id)


def test_fusion_was_exercised_by_the_op_table():
    """(Runs after the table.) Most cases have an elementwise chain to fuse."""
    if not FUSED_SOMEWHERE:
        pytest.skip("run with the op-table test above")
    assert len(FUSED_SOMEWHERE) > len(CASES) // 3


def _blr(C, N=700, D=13, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, D))
    XT = np.ascontiguousarray(X.T)
    y = (rng.random(N) < 0.5).astype(float)

    def f(w):
        logits = w @ XT
        return ad.sum(y * logits - ad.softplus(logits), axis=1) - 0.5 * ad.sum(w * w, axis=1)
    return f, rng.normal(0, 0.1, size=(C, D))


def _chain(x):
    """Broadcasting, reuse of one value by several members, a reduction in the middle
    of a chain and values that die inside the group."""
    b = ad.mean(x, axis=0)                       # [M], broadcast down the rows
    t = ad.exp(-ad.abs(x - b)) * x
    u = ad.log1p(t * t) + ad.tanh(x) * 0.5
    r = ad.sum(u, axis=1, keepdims=True)         # [C, 1]
    z = ad.logsumexp(u - r, axis=1)
    return z + ad.sum(ad.sigmoid(x) * t, axis=1)


@pytest.mark.parametrize("case", ["blr", "chain"])
def test_large_programs_fused_equal_unfused(case, monkeypatch):
    if case == "blr":
        f, x = _blr(64)
    else:
        f, x = _chain, np.random.default_rng(3).normal(size=(40, 300))
    comps = {}
    for on in (False, True):
        monkeypatch.setattr(fuse, "ENABLED", on)
        comps[on] = ad.compile(f, warn=False)
        for k in range(3):
            comps[on].value_and_grad(x + 1e-3 * k)
    assert _fused_rows(comps[True]) >= 2 and _fused_rows(comps[False]) == 0
    for k in range(3):
        xi = x * (1 + 0.1 * k)
        (v1, g1), (v0, g0) = comps[True].value_and_grad(xi), comps[False].value_and_grad(xi)
        np.testing.assert_array_equal(v1, v0)
        np.testing.assert_array_equal(g1, g0)
        tv, tg = ad.value_and_grad(lambda w: ad.sum(f(w)))(xi)
        _close(np.sum(v1), tv, 1e-12)
        _close(g1, tg, 1e-12)


def test_values_that_die_in_a_group_are_not_written(monkeypatch):
    """The BLR's forward chain keeps its three temporaries in scratch: the group's
    members write only the reduction's output to the workspace."""
    f, x = _blr(64)
    comp = ad.compile(f, warn=False)
    for k in range(3):
        comp.value_and_grad(x + 1e-3 * k)
    ex = next(iter(comp._programs.values())).exe[1]
    slots = []
    for r in ex.code[ex.code[:, vm.F_OP] == vm.OP.FUSED]:
        start, k = int(r[vm.F_X0]), int(r[vm.F_X1])
        members = ex.tab[start:start + k * vm.W].reshape(k, vm.W)
        slots.append(int(np.sum(members[:, vm.F_LO] > 0)))
    assert max(slots) >= 3


EDGES = [0.0, -0.0, 1.0, -1.0, 2.5, -3.75, 1e-30, -1e-30, 1e30, np.inf, -np.inf, np.nan]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name, f, ref", [
    ("negative", ad.negative, np.negative), ("square", ad.square, np.square),
    ("sqrt", ad.sqrt, np.sqrt), ("abs", ad.abs, np.abs),
    ("isnan", ad.isnan, np.isnan), ("isfinite", ad.isfinite, np.isfinite),
    ("logical_not", ad.logical_not, np.logical_not)])
def test_cheap_unary_vector_loops_equal_numpy(name, f, ref, dtype):
    """The one-loop-per-function paths of the cheap unary functions (contiguous runs of
    >= 16 elements, in the workspace's precision): bit for bit NumPy's values, edge
    values included (sqrt of a negative number is NaN; the predicates as 0 / 1)."""
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.standard_normal(1000), EDGES]).astype(dtype)
    comp = ad.compile(lambda u: f(u) * dtype(1.0), warn=False)
    with np.errstate(all="ignore"):
        want = ref(x) * dtype(1.0)
        for _ in range(3):
            got = comp(x)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, want)


def test_a_repeated_value_binary_run_fills_its_output(monkeypatch):
    """``sum((y - u)^2)``'s gradient starts from one cotangent value spread over every
    element (a binary row whose two operands both repeat one value): fused, the gradient
    is ``2 (u - y)`` exactly, in every tile."""
    monkeypatch.setattr(fuse, "TILE", 64)
    rng = np.random.default_rng(4)
    y, x = rng.standard_normal(5000), rng.standard_normal(5000)
    comp = ad.compile(lambda u: ad.sum(ad.square(y - u)), warn=False)
    for k in range(3):
        v, g = comp.value_and_grad(x + k)
        np.testing.assert_array_equal(g, -2.0 * (y - (x + k)))
    ex = next(iter(comp._programs.values())).exe[1]
    assert (ex.code[:, vm.F_OP] == vm.OP.FUSED).any()


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_row_sums_and_long_binary_rows_equal_numpy(fused, dtype, monkeypatch):
    """A sum over the batch axis (rows added into one row: a bias gradient) and long
    binary rows, fused or as rows of their own: NumPy's values and the tape's gradients
    within rounding (fused rows contract ``u * y - y`` into one multiply-add)."""
    monkeypatch.setattr(fuse, "ENABLED", fused)
    rng = np.random.default_rng(6)
    y = rng.standard_normal((128, 500)).astype(dtype)
    x = rng.standard_normal((128, 500)).astype(dtype)
    f = lambda u: ad.sum(ad.maximum(u * y - y, u), axis=0)     # noqa: E731
    comp = ad.compile(f, warn=False)
    tol = 1e-12 if dtype == np.float64 else 2e-6
    for k in range(3):
        xi = (x + dtype(k)).astype(dtype)
        _close(comp(xi), np.sum(np.maximum(xi * y - y, xi), axis=0), tol)
        v, g = comp.value_and_grad(xi)
        tv, tg = ad.value_and_grad(lambda u: ad.sum(f(u)))(xi)
        _close(g, tg, tol)
    ex = next(iter(comp._programs.values())).exe[1]
    assert (ex.code[:, vm.F_OP] == vm.OP.FUSED).any() == fused


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_tanh_vector_loop_within_two_ulp(fused, dtype, monkeypatch):
    """tanh's vector loop (a rational below |x| = 0.625, exp's polynomial above; no libm)
    against NumPy's tanh: within 2 ulp over both pieces and their seam, -0.0 kept,
    +-inf to +-1, NaN kept; the gradient ``1 - tanh^2`` from it."""
    monkeypatch.setattr(fuse, "ENABLED", fused)
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.normal(0, 2, 3000), np.linspace(-0.7, 0.7, 1001),
                        np.nextafter(0.625, [0.0, 1.0]), [0.625, -0.625, 19.0, 400.0,
                                                            -400.0, 5e-324], EDGES])
    x = x.astype(dtype)
    comp = ad.compile(lambda u: ad.tanh(u) * 1.0, warn=False)
    want = np.tanh(x)
    for _ in range(3):
        got = comp(x)
    assert got.dtype == dtype
    fin = np.isfinite(want)
    ulp = np.abs(got[fin] - want[fin]) / np.spacing(np.maximum(np.abs(want[fin]),
                                                               np.finfo(dtype).tiny))
    assert ulp.max() <= 2.0
    assert np.isnan(got[np.isnan(x)]).all()
    np.testing.assert_array_equal(got[np.isinf(x)], np.sign(x[np.isinf(x)]))
    np.testing.assert_array_equal(np.signbit(got[x == 0]), np.signbit(x[x == 0]))
    g = ad.compile(lambda u: ad.sum(ad.tanh(u)), warn=False)
    xs = x[np.isfinite(x)]
    _, grad = g.value_and_grad(xs)
    tol = 1e-12 if dtype == np.float64 else 2e-6
    np.testing.assert_allclose(grad, 1 - np.tanh(xs) ** 2, rtol=tol, atol=tol)
    ex = next(iter(comp._programs.values())).exe[0]
    assert (ex.code[:, vm.F_OP] == vm.OP.FUSED).any() == fused


def _checked_square_sum(u):
    ad.tracer.check(u.data != 0.0, lambda ok, v: ValueError("u has a zero"), u.data)
    return ad.sum(u * u, axis=-1)


@pytest.mark.parametrize("layout", ["contiguous", "strided"])
def test_a_check_row_finds_one_zero_in_a_long_run(layout):
    """A value check recorded in the program (``autodiff.tracer.check``) runs at every
    call: one zero among 15,000 elements, at the first, a middle or the last place of a
    contiguous run (the vector loop) or of a strided view, raises; no zero passes."""
    comp = ad.compile(_checked_square_sum, warn=False)
    x = np.linspace(1.0, 2.0, 3 * 5000).reshape(3, 5000)
    if layout == "strided":
        comp = ad.compile(lambda u: _checked_square_sum(u.T), warn=False)
        x = np.ascontiguousarray(x.T)
    want = np.sum(x * x, axis=-1) if layout == "contiguous" else np.sum(x * x, axis=0)
    for _ in range(2):
        _close(comp(x), want, 1e-12)
    assert comp.compiled
    for where in [(0, 0), (1, 2500), (2, 4999)]:
        y = x.copy()
        y[where if layout == "contiguous" else where[::-1]] = 0.0
        with pytest.raises(ValueError, match="u has a zero"):
            comp(y)
        with pytest.raises(ValueError, match="u has a zero"):
            comp.value_and_grad(y)
    _close(comp(x), want, 1e-12)


def test_rows_of_a_few_hundred_elements_are_fused(monkeypatch):
    """A gradient at 4 chains over a few hundred data points (rows of [4, 100]): fused,
    and the same values bit for bit as unfused."""
    rng = np.random.default_rng(8)
    y = rng.standard_normal(100)
    f = lambda u: ad.sum(ad.square(y - u[:, :1] * ad.tanh(y)), axis=1)   # noqa: E731
    x = rng.standard_normal((4, 3))
    assert 4 * 100 >= fuse.MIN_SIZE
    outs = {}
    for on in (True, False):
        monkeypatch.setattr(fuse, "ENABLED", on)
        comp = ad.compile(f, warn=False)
        outs[on] = [comp.value_and_grad(x + k) for k in range(2)]
        ex = next(iter(comp._programs.values())).exe[1]
        assert (ex.code[:, vm.F_OP] == vm.OP.FUSED).any() == on
    for (v1, g1), (v2, g2) in zip(outs[True], outs[False]):
        np.testing.assert_array_equal(v1, v2)
        np.testing.assert_array_equal(g1, g2)


# ----------------------------------------------------------------------------- parts
# A large FUSED row runs in parts on several threads (fuse.parallel_steps). Forced here
# onto every fused row (three parts, whatever the machine), the results must be the
# serial machine's bit for bit and the tape's within rounding.
@pytest.fixture
def in_parts(monkeypatch):
    from autodiff.lower import cpu
    monkeypatch.setattr(fuse, "PART_MIN", 1)
    monkeypatch.setattr(cpu, "n_threads", lambda: 3)


def _steps(comp):
    return next(iter(comp._programs.values())).exe[1].steps


def _par_steps(comp):
    return [s for s in _steps(comp) if s[0] == "par"]


PARTS_SOMEWHERE = []


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_op_table_with_every_fused_row_in_parts(c, fuse_everything, in_parts):
    x, g = _flat_case(c)
    comp = ad.compile(g, warn=False)
    for shift in (0.0, 1e-3):
        xi = x + shift
        v, gr = comp.value_and_grad(xi)
        tv, tg = _tape(g, xi)
        _close(v, tv, 1e-12)
        _close(gr, tg, 1e-12)
    assert comp.compiled
    if _par_steps(comp):
        PARTS_SOMEWHERE.append(c.id)


def test_parts_were_exercised_by_the_op_table():
    """(Runs after the table.)"""
    if not PARTS_SOMEWHERE:
        pytest.skip("run with the op-table test above")
    assert len(PARTS_SOMEWHERE) > len(CASES) // 4


def _colsum(x):
    """A reduction over the rows (the outer loop): parts must not split it."""
    return ad.sum(ad.exp(-x * x) * x, axis=0)[:3] + ad.sum(ad.tanh(x), axis=1)[:3]


@pytest.mark.parametrize("case", ["blr", "chain", "colsum"])
def test_large_programs_in_parts_equal_serial(case, monkeypatch):
    f, x = {"blr": lambda: _blr(64), "colsum": lambda: (_colsum, np.random.default_rng(4)
                                                        .normal(size=(20, 2000))),
            "chain": lambda: (_chain, np.random.default_rng(3).normal(size=(40, 300)))}[case]()
    from autodiff.lower import cpu
    comps = {}
    for parts in (1, 3):
        monkeypatch.setattr(cpu, "n_threads", lambda: parts)
        monkeypatch.setattr(fuse, "PART_MIN", 64)
        comps[parts] = ad.compile(f, warn=False)
        for k in range(3):
            comps[parts].value_and_grad(x + 1e-3 * k)
    assert not _par_steps(comps[1])
    par = _par_steps(comps[3])
    assert par and all(len(s[3]) == 3 for s in par)
    if case == "colsum":      # the column sums' group may not be cut along the rows
        ex = next(iter(comps[3]._programs.values())).exe[1]
        for _, row, ax, bounds, _ in par:
            shape = tuple(ex.code[row, vm.F_N0:vm.F_N3 + 1])
            start, k = int(ex.code[row, vm.F_X0]), int(ex.code[row, vm.F_X1])
            members = ex.tab[start:start + k * vm.W].reshape(k, vm.W)
            for m in members:
                assert m[vm.F_LO] > 0 or m[vm.F_SO0 + ax] != 0, (shape, ax)
    for k in range(3):
        xi = x * (1 + 0.1 * k)
        (v1, g1), (v0, g0) = comps[3].value_and_grad(xi), comps[1].value_and_grad(xi)
        np.testing.assert_array_equal(v1, v0)
        np.testing.assert_array_equal(g1, g0)


def test_split_axis_skips_reductions_and_broadcast_writes():
    def member(so, slot=0):
        r = np.zeros(vm.W, dtype=np.int64)
        r[vm.F_SO0:vm.F_SO0 + 4] = so
        r[vm.F_LO] = slot
        return r
    shape = (1, 1, 100, 600)
    # a per-row reduction: rows may be cut, not the reduced (inner) loop
    assert fuse._split_axis(shape, [member((0, 0, 600, 1), 1), member((0, 0, 1, 0))], 2) == 2
    # a column reduction: only the inner loop, in whole tiles
    assert fuse._split_axis(shape, [member((0, 0, 0, 1))], 2) is None     # 600 < 2 tiles
    assert fuse._split_axis((1, 1, 100, 2048), [member((0, 0, 0, 1))], 2) == 3
    # a total: nothing
    assert fuse._split_axis(shape, [member((0, 0, 0, 0))], 2) is None
    # scratch outputs are per part: they never block a cut
    assert fuse._split_axis(shape, [member((0, 0, 0, 0), 2), member((0, 0, 1, 0))], 2) == 2


def test_parts_shared_by_threads(monkeypatch):
    """Four threads call one compiled function whose rows run in parts (each thread its
    own workspace and scratch, the parts on one shared pool)."""
    import concurrent.futures as cf
    from autodiff.lower import cpu
    monkeypatch.setattr(cpu, "n_threads", lambda: 3)
    monkeypatch.setattr(fuse, "PART_MIN", 64)
    monkeypatch.setattr(fuse, "MATMUL_PART_MIN", 1)
    f, x = _blr(96)
    comp = ad.compile(f, warn=False)
    for k in range(3):
        comp.value_and_grad(x + 1e-3 * k)
    assert _par_steps(comp)
    assert any(s[0] == "mm" for s in _steps(comp)) or not blas.controllable()
    xs = [x * (1 + 0.05 * k) for k in range(8)]
    want = [comp.value_and_grad(xi) for xi in xs]

    def work(k):
        return [comp.value_and_grad(xs[(k + j) % 8]) for j in range(20)]
    with cf.ThreadPoolExecutor(4) as ex:
        got = list(ex.map(work, range(4)))
    for k, outs in enumerate(got):
        for j, (v, g) in enumerate(outs):
            np.testing.assert_array_equal(v, want[(k + j) % 8][0])
            np.testing.assert_array_equal(g, want[(k + j) % 8][1])


def _child(conn):
    import autodiff as ad_
    from autodiff.lower import cpu as cpu_, fuse as fuse_
    cpu_.n_threads = lambda: 2
    fuse_.PART_MIN = 64
    f, x = _blr(64)
    comp = ad_.compile(f, warn=False)
    out = [comp.value_and_grad(x + 1e-3 * k) for k in range(3)]
    conn.send(np.asarray(out[-1][1]))


def test_parts_after_fork(monkeypatch):
    """A forked child gets its own pool (the parent's threads do not survive a fork)."""
    import multiprocessing as mp
    from autodiff.lower import cpu
    if "fork" not in mp.get_all_start_methods():
        pytest.skip("no fork start method on this platform")
    monkeypatch.setattr(cpu, "n_threads", lambda: 2)
    monkeypatch.setattr(fuse, "PART_MIN", 64)
    f, x = _blr(64)
    comp = ad.compile(f, warn=False)
    for k in range(3):
        want = comp.value_and_grad(x + 1e-3 * k)
    assert _par_steps(comp) and cpu._pool[1] is not None
    a, b = mp.get_context("fork").Pipe()
    p = mp.get_context("fork").Process(target=_child, args=(b,))
    p.start()
    assert a.poll(120), "the forked child hung"
    np.testing.assert_array_equal(a.recv(), want[1])
    p.join(30)
    assert p.exitcode == 0


# ----------------------------------------------------------------------------- products
# A large matrix product runs in parts (blocks of its output's rows), each on its own
# thread with a one-thread BLAS. Equal to the tape within rounding (BLAS blocking, as
# with OpenBLAS's own threads); which products may be cut is checked on the step list.
def _mm_steps(comp):
    return [s for s in _steps(comp) if s[0] == "mm"]


@pytest.fixture(params=["cblas", "np.dot"])
def machine_blas(request, monkeypatch):
    """The machine's products by NumPy's CBLAS called directly (where NumPy's wheel has
    one) and by Numba's ``np.dot`` (the fallback): programs compiled inside the test."""
    if request.param == "cblas":
        if not blas.gemm(np.float64)[0]:
            pytest.skip("NumPy's BLAS has no scipy_cblas_?gemm64_ here: products use np.dot")
    else:
        blas.gemm(np.float64)                        # looked up first, then hidden
        monkeypatch.setitem(blas._state, "gemm", {})
    return request.param


@pytest.fixture
def products_in_parts(monkeypatch, machine_blas):
    from autodiff.lower import cpu
    if not blas.controllable():
        pytest.skip("the BLAS's thread count cannot be set here: products stay whole")
    monkeypatch.setattr(fuse, "MATMUL_PART_MIN", 1)
    monkeypatch.setattr(cpu, "n_threads", lambda: 3)


def _mlp(x):
    """Products with C-contiguous left operands (the layers, the input's gradient) and
    one with a transposed left operand (a Gram matrix, cut too: its block is copied)."""
    rng = np.random.default_rng(7)
    w1, w2 = rng.normal(size=(40, 30)) / 6, rng.normal(size=(30, 5)) / 6
    c = rng.normal(size=(40, 40))
    h = ad.tanh(x @ w1)
    return ad.sum(ad.square(h @ w2)) + ad.sum((ad.transpose(x) @ x) * c)


@pytest.mark.parametrize("case", ["blr", "mlp"])
def test_products_in_parts_match_the_tape(case, products_in_parts):
    f, x = {"blr": lambda: _blr(101, N=53, D=7),
            "mlp": lambda: (_mlp, np.random.default_rng(8).normal(size=(67, 40)))}[case]()
    f = (lambda g: lambda w: ad.sum(g(w)))(f)
    comp = ad.compile(f, warn=False)
    for k in range(3):
        xi = x * (1 + 0.1 * k)
        v, g = comp.value_and_grad(xi)
        tv, tg = _tape(f, xi)
        _close(v, tv, 1e-12)
        _close(g, tg, 1e-12)
    mm, left_t = _mm_steps(comp), []
    assert mm, "no product was cut"
    ex = next(iter(comp._programs.values())).exe[1]
    for _, row, axis, bounds in mm:
        r = ex.code[row]
        m, k, n = int(r[vm.F_X0]), int(r[vm.F_X1]), int(r[vm.F_X2])
        assert r[vm.F_N0] * r[vm.F_N1] == 1
        assert (r[vm.F_SO2], r[vm.F_SO3]) == (n, 1)
        assert axis == (0 if m >= 32 else 1)
        size = (m, n)[axis]
        left_t.append(r[vm.F_SA3] != 1)
        assert bounds[0][0] == 0 and bounds[-1][1] == size
        assert len(bounds) == min(3, size // 16)
        assert all(a[1] == b[0] and b[1] - b[0] >= 16 for a, b in zip(bounds, bounds[1:]))
    if case == "mlp":
        assert any(left_t) and not all(left_t)


def test_products_not_cut(products_in_parts):
    """A batch of products, a product inside a loop, a product too small every way and
    a wide one (OpenBLAS threads it better) stay whole; few rows and many columns are
    cut by columns."""
    rng = np.random.default_rng(9)
    a, s = rng.normal(size=(40, 64)), rng.normal(size=(4, 50, 6))
    q, q2 = rng.normal(size=(64, 70)) / 8, rng.normal(size=(70, 70)) / 8

    def f(x):                                        # x [40, 6]
        t = ad.transpose(x) @ a                      # [6, 64]: 6 rows, cut by columns
        b = ad.sum(ad.matmul(s, x[:6]), axis=(0, 1))  # a batch of 4 products
        few = x[:20, :3] @ t[:3, :20]                # [20, 20]: too small either way
        cut = x @ t                                  # 40 rows, C-contiguous: cut
        wide = ad.tanh(cut) @ q                      # [40, 64] @ [64, 70]: k = 64 cut,
        wide = wide @ q2                             # [40, 70] @ [70, 70]: not skinny
        carry, _ = ad.scan(lambda c, xi: (ad.tanh(c @ t[:, :6]), None), x[:36] * 0.1,
                           None, length=3)
        return (ad.sum(t) + ad.sum(b) + ad.sum(few) + ad.sum(cut) + ad.sum(carry)
                + ad.sum(wide))
    x = rng.normal(size=(40, 6))
    comp = ad.compile(f, warn=False)
    for k in range(3):
        v, g = comp.value_and_grad(x + 1e-3 * k)
    tv, tg = _tape(f, x + 2e-3)
    _close(v, tv, 1e-12)
    _close(g, tg, 1e-12)
    ex = next(iter(comp._programs.values())).exe[1]
    mm = _mm_steps(comp)
    assert {s[2] for s in mm} == {0, 1}, mm
    for _, row, axis, _ in mm:
        r = ex.code[row]
        assert r[vm.F_N0] * r[vm.F_N1] == 1 and (r[vm.F_X0], r[vm.F_X2])[axis] >= 32
        assert min(r[vm.F_X1], r[vm.F_X2]) <= fuse.MATMUL_SKINNY
    assert any(r[vm.F_OP] == vm.OP.MATMUL and min(r[vm.F_X1], r[vm.F_X2]) > 64
               for r in ex.code), "no wide product to leave whole"
    loops = [(i, int(r[vm.F_X1])) for i, r in enumerate(ex.code) if r[vm.F_OP] == vm.OP.LOOP]
    assert loops, "the scan was unrolled: the loop case is not exercised"
    for _, row, _, _ in mm:
        assert not any(a < row <= b for a, b in loops)


@pytest.mark.parametrize("a_t", [False, True])
@pytest.mark.parametrize("b_t", [False, True])
def test_product_parts_by_rows_and_columns(a_t, b_t, products_in_parts):
    """Every operand layout, cut by rows (many rows) and by columns (few rows)."""
    rng = np.random.default_rng(11)
    for m in (40, 20):
        a0, b0 = rng.normal(size=(m, 7)), rng.normal(size=(7, 50))
        a = np.ascontiguousarray(a0.T) if a_t else a0
        b = np.ascontiguousarray(b0.T) if b_t else b0

        def f(x, a=a, b=b):
            left = ad.transpose(a * x[0]) if a_t else a * x[0]
            right = ad.transpose(b * x[1]) if b_t else b * x[1]
            return ad.sum(ad.sin(left @ right))
        x = np.array([0.7, 1.3])
        comp = ad.compile(f, warn=False)
        for k in range(3):
            v, g = comp.value_and_grad(x + 0.01 * k)
            tv, tg = _tape(f, x + 0.01 * k)
            _close(v, tv, 1e-12)
            _close(g, tg, 1e-12)
        axes = {s[2] for s in _mm_steps(comp)}
        assert (0 if m >= 32 else 1) in axes, (m, axes)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_blas_products_every_layout_match_the_tape(dtype, machine_blas):
    """Products large enough for BLAS with either operand transposed, in a batch and
    inside a loop, forward and backward (whose products transpose their operands), by
    either BLAS (see :mod:`autodiff.lower.blas`)."""
    rng = np.random.default_rng(12)
    a, b = rng.normal(size=(3, 24, 33)), rng.normal(size=(3, 33, 29))
    a, b = a.astype(dtype), b.astype(dtype)

    def f(x):
        s = 0
        for at in (False, True):
            for bt in (False, True):
                left = ad.transpose(a[0].T * x[0]) if at else a[0] * x[0]
                right = ad.transpose(b[0].T * x[1]) if bt else b[0] * x[1]
                s = s + ad.sum(ad.sin(left @ right))
        s = s + ad.sum(ad.cos(ad.matmul(a * x[0], b * x[1])))          # a batch
        carry, _ = ad.scan(lambda c, _: (ad.tanh(c @ b[1] @ b[2].T * x[1]), None),
                           a[2] * x[0], None, length=3)
        return s + ad.sum(carry)
    x = np.array([0.7, 1.3], dtype)
    comp = ad.compile(f, warn=False)
    ex = None
    for k in range(2):
        v, g = comp.value_and_grad(x + dtype(0.01 * k))
        tv, tg = _tape(f, x + dtype(0.01 * k))
        rtol = 1e-12 if dtype == np.float64 else 2e-5
        _close(v, tv, rtol)
        _close(g, tg, rtol)
    ex = next(iter(comp._programs.values())).exe[1]
    assert ex.dtype == dtype
    assert (ex.gemm[0] != 0) == (machine_blas == "cblas")
    blas_rows = [r for r in ex.code if r[vm.F_OP] == vm.OP.MATMUL and r[vm.F_X3]]
    assert len(blas_rows) >= 8, "the products did not reach BLAS"
    assert {(r[vm.F_SA3] == 1, r[vm.F_SB3] == 1) for r in blas_rows} == \
        {(True, True), (True, False), (False, True), (False, False)}
    assert any(r[vm.F_N0] * r[vm.F_N1] > 1 for r in blas_rows), "no batch of products"


def test_the_machine_calls_numpys_blas_and_pins_its_threads():
    """Where NumPy's wheel brings its OpenBLAS, the machine's products call it and
    :func:`blas.one_thread` sets that library's thread count (the pool the products
    use), not SciPy's."""
    if not blas.gemm(np.float64)[0]:
        pytest.skip("NumPy's BLAS has no scipy_cblas_?gemm64_ here: products use np.dot")
    import ctypes
    lib = blas._numpy_blas()
    assert blas.gemm(np.float32)[0] == ctypes.cast(lib.scipy_cblas_sgemm64_,
                                                   ctypes.c_void_p).value
    assert blas.gemm(np.float64)[0] == ctypes.cast(lib.scipy_cblas_dgemm64_,
                                                   ctypes.c_void_p).value
    assert blas.gemm(np.int64)[0] == 0
    get = lib.scipy_openblas_get_num_threads64_
    get.restype = ctypes.c_int
    set_ = lib.scipy_openblas_set_num_threads64_
    set_.argtypes = [ctypes.c_int]
    before = get()
    try:
        set_(2)
        with blas.one_thread():
            assert get() == 1
        assert get() == 2
    finally:
        set_(before)


def test_one_thread_blas_restores_the_count():
    """Nested and concurrent blocks share one setting; the count found first comes
    back when the last block ends."""
    import concurrent.futures as cf
    import threading
    if not blas.controllable():
        pytest.skip("the BLAS's thread count cannot be set here")
    set_, get = blas._found()["fns"]
    before = get()
    try:
        set_(2)
        with blas.one_thread():
            assert get() == 1
            with blas.one_thread():
                assert get() == 1
            assert get() == 1
        assert get() == 2
        barrier = threading.Barrier(4)

        def work(_):
            with blas.one_thread():
                barrier.wait(timeout=30)
                return get()
        with cf.ThreadPoolExecutor(4) as ex:
            assert list(ex.map(work, range(4))) == [1] * 4
        assert get() == 2
    finally:
        set_(before)


def test_products_whole_when_the_blas_cannot_be_set(monkeypatch):
    """Another BLAS (or none found): products stay whole and the count is left alone."""
    from autodiff.lower import cpu
    monkeypatch.setitem(blas._state, "fns", ())
    monkeypatch.setattr(fuse, "MATMUL_PART_MIN", 1)
    monkeypatch.setattr(cpu, "n_threads", lambda: 3)
    assert not blas.controllable()
    with blas.one_thread():                          # a no-op
        pass
    f, x = _blr(300, N=400, D=9)
    f = (lambda g: lambda w: ad.sum(g(w)))(f)
    comp = ad.compile(f, warn=False)
    for k in range(3):
        v, g = comp.value_and_grad(x * (1 + 0.1 * k))
    tv, tg = _tape(f, x * 1.2)
    _close(v, tv, 1e-12)
    _close(g, tg, 1e-12)
    assert not _mm_steps(comp)
    assert not next(iter(comp._programs.values())).exe[1].one_blas_thread


@pytest.mark.parametrize("n", [5, 1013, 100_003])
def test_long_sums_fused_equal_unfused_and_beat_one_chain(n, monkeypatch):
    """A contiguous sum runs as eight running sums (tile by tile in a FUSED row, in
    chunks of the same tile at top level): fused and unfused give the same bits, and in
    float32 its error over 100k terms is a tenth of one sequential chain's (which is
    about 2e-6 relative here)."""
    import math
    rng = np.random.default_rng(13)
    x = rng.random((4, n)).astype(np.float32)

    def f(u):
        return ad.sum(ad.exp(u * 0.0) * u, axis=1)          # a product, then the sum
    got = {}
    for on in (False, True):
        monkeypatch.setattr(fuse, "ENABLED", on)
        comp = ad.compile(f, warn=False)
        got[on] = comp(x)
        assert (_fused_rows(comp) > 0) == (on and 4 * n >= fuse.MIN_SIZE)
    np.testing.assert_array_equal(got[True], got[False])
    exact = np.array([math.fsum(r.astype(np.float64)) for r in x])
    assert np.max(np.abs(got[True] - exact) / exact) < (1e-6 if n > 1000 else 1e-6 * n)
