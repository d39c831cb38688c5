"""Windowed warmup: step-size heuristic, dual averaging target, mass matrices, restarts."""
import numpy as np
import pytest

from samplers import HMC, MALA, NUTS, RWMH
from samplers import warmup as wu
from samplers.adaptation import window_schedule
from samplers.hmc import metropolis_hmc_step


def normal(scales):
    s2 = np.asarray(scales, dtype=float) ** 2
    return (lambda q: -0.5 * (q * q / s2).sum(1)), (lambda q: -q / s2)


def test_find_step_size_brackets_the_08_crossing():
    ld, g = normal(np.ones(20))
    k = HMC(ld, 1.0, 1, grad_fn=g)
    st = k.init(np.random.default_rng(0).standard_normal((2048, 20)))

    def accept(e):
        return metropolis_hmc_step(k.with_params(step_size=e), st, np.random.default_rng(9),
                                   1)[1].acceptance_rate.mean()

    grid = np.geomspace(0.05, 5, 200)
    star = grid[np.argmin(np.abs([accept(e) - 0.8 for e in grid]))]   # pooled accept = 0.8
    for start in (1e-4, 1.0, 50.0):
        eps = wu.find_step_size(k, st, np.random.default_rng(1), start)
        # the heuristic stops at the first doubling/halving past the crossing
        assert star / 2.2 < eps < star * 2.2, (start, eps, star)


@pytest.mark.parametrize("dense", [False, True])
def test_mass_matrix_and_step_size_are_adapted(dense):
    rng = np.random.default_rng(0)
    if dense:
        a = np.array([[3.0, 0.0, 0.0], [2.0, 0.5, 0.0], [0.0, 1.0, 0.1]])
        cov = a @ a.T
    else:
        cov = np.diag(np.array([0.1, 1.0, 10.0]) ** 2)
    prec = np.linalg.inv(cov)
    k = NUTS(lambda q: -0.5 * np.einsum("ci,ij,cj->c", q, prec, q), 1.0,
             grad_fn=lambda q: -q @ prec)
    st = k.init(rng.standard_normal((16, 3)) @ np.linalg.cholesky(cov).T)
    st, tuned, stats = wu.window_adaptation(k, st, rng, 400, dense_mass=dense)
    inv = tuned.inverse_mass
    if dense:
        assert inv.shape == (3, 3)
        # whitened covariance ~ identity
        l = np.linalg.cholesky(inv)
        w = np.linalg.solve(l, np.linalg.solve(l, cov).T)
        np.testing.assert_allclose(w, np.eye(3), atol=0.35)
    else:
        assert inv.shape == (3,)
        np.testing.assert_allclose(inv / np.diag(cov), 1.0, rtol=0.35)
    assert isinstance(tuned.step_size, float) and 0.3 < tuned.step_size < 2.0
    # dual averaging hits the target during the final fast buffer
    assert abs(stats["acceptance"][:, -50:].mean() - 0.8) < 0.1
    assert k.step_size == 1.0 and k.inverse_mass is None      # input kernel untouched
    assert set(stats) == {"acceptance", "divergent", "step_size", "tree_depth",
                          "n_grad_evals", "energy", "nonfinite"}
    assert not stats["nonfinite"].any()
    assert all(v.shape == (16, 400) for v in stats.values())


@pytest.mark.parametrize("target", [0.6, 0.95])
def test_target_accept_is_reached(target):
    ld, g = normal(np.ones(10))
    k = HMC(ld, 0.1, 10, grad_fn=g)
    rng = np.random.default_rng(1)
    st = k.init(rng.standard_normal((32, 10)))
    st, tuned, stats = wu.window_adaptation(k, st, rng, 200, target_accept=target)
    assert abs(stats["acceptance"][:, -50:].mean() - target) < 0.07


def test_restarts_heuristic_and_dual_averaging_at_each_window_end(monkeypatch):
    calls = []
    orig = wu.find_step_size

    def spy(kernel, state, rng, initial, target=wu.HEURISTIC_TARGET, params=None):
        if np.ndim(initial) == 0:     # the shared search (per-chain ones look for stuck chains)
            calls.append(params.inverse_mass.copy())
        return orig(kernel, state, rng, initial, target, params)

    monkeypatch.setattr(wu, "find_step_size", spy)
    ld, g = normal([1.0, 5.0])
    k = MALA(ld, 0.5, grad_fn=g)
    rng = np.random.default_rng(2)
    st = k.init(rng.standard_normal((8, 2)))
    n = 300
    schedule = window_schedule(n)
    n_windows = sum(end for _, end in schedule)
    st, tuned, stats = wu.window_adaptation(k, st, rng, n)
    assert n_windows >= 3
    assert len(calls) == 1 + n_windows
    # the first search runs under the identity, the others under each new metric
    assert (calls[0] == 1.0).all() and all((c != 1.0).all() for c in calls[1:])
    # dual averaging restarts from mu = log(10 eps): the step jumps at window ends
    ends = [i for i, (_, e) in enumerate(schedule) if e]
    eps = stats["step_size"][0]
    for i in ends:
        assert eps[i + 1] != pytest.approx(eps[i], rel=1e-3)


def test_short_warmup_adapts_step_size_only():
    ld, g = normal([1.0, 3.0])
    k = HMC(ld, 1.0, 5, grad_fn=g)
    rng = np.random.default_rng(3)
    st, tuned, stats = wu.window_adaptation(k, k.init(rng.standard_normal((4, 2))), rng, 15)
    assert (tuned.inverse_mass == 1.0).all() and tuned.step_size != 1.0
    assert stats["acceptance"].shape == (4, 15)


def test_rwmh_warmup_adapts_scale_and_covariance():
    ld, _ = normal([0.1, 10.0])
    k = RWMH(ld, 1.0)
    rng = np.random.default_rng(4)
    st = k.init(rng.standard_normal((32, 2)) * [0.1, 10.0])
    st, tuned, stats = wu.window_adaptation(k, st, rng, 500, target_accept=0.3)
    np.testing.assert_allclose(tuned.inverse_mass / np.array([0.01, 100.0]), 1.0, rtol=0.35)
    assert abs(stats["acceptance"][:, -50:].mean() - 0.3) < 0.07


def test_callback_sees_every_iteration():
    ld, g = normal([1.0])
    k = MALA(ld, 0.5, grad_fn=g)
    rng = np.random.default_rng(5)
    seen = []
    wu.window_adaptation(k, k.init(np.zeros((2, 1))), rng, 30,
                         callback=lambda info, eps: seen.append(float(eps[0])))
    assert len(seen) == 30 and all(e > 0 for e in seen)


def test_error_schedule_length():
    ld, g = normal([1.0])
    k = MALA(ld, 0.5, grad_fn=g)
    with pytest.raises(ValueError, match=r"schedule: expected 10 .* got 3"):
        wu.window_adaptation(k, k.init(np.zeros((2, 1))), np.random.default_rng(0), 10,
                             schedule=[(0, False)] * 3)
