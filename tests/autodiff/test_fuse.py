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
from autodiff.lower import fuse, vm

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
