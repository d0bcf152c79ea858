"""Action elimination in the compiled solvers (see mdp.hpp, "improvement sweeps"): it may only
skip work. V, Q, the policy, the iteration counts and residuals must be the very same floats
as with full sweeps, on MDPs where elimination bites (random, gridworld, forest), on exact
ties (duplicated actions: the lowest index must still win) and on near-ties far below any
useful tolerance (the rounding margin must hold)."""

import numpy as np
import pytest
import reference as oracle

from pygenmod import mdp

SOLVES = {
    "vi-fixed": lambda P, R, g: mdp.value_iteration(P, R, g, tol=0.0, stop="sup", max_iter=150),
    "vi-span": lambda P, R, g: mdp.value_iteration(P, R, g, epsilon=1e-9),
    "mpi": lambda P, R, g: mdp.modified_policy_iteration(P, R, g, epsilon=1e-9),
    "mpi-m3-sup": lambda P, R, g: mdp.modified_policy_iteration(P, R, g, m=3, epsilon=1e-9, stop="sup"),
    "pi": lambda P, R, g: mdp.policy_iteration(P, R, g, epsilon=1e-9),
    "vi-v0": lambda P, R, g: mdp.value_iteration(P, R, g, epsilon=1e-9, V0=np.full(R.shape[:-1], 3.0, R.dtype)),
}


def _both(monkeypatch, solve, P, R, g):
    monkeypatch.setattr(mdp._solvers, "_ACTION_ELIMINATION", False)
    full = solve(P, R, g)
    monkeypatch.setattr(mdp._solvers, "_ACTION_ELIMINATION", True)
    return full, solve(P, R, g)


def assert_same(full, elim):
    for name in ("V", "Q", "policy", "iterations", "residual", "converged", "eval_sweeps"):
        np.testing.assert_array_equal(np.asarray(getattr(elim, name)), np.asarray(getattr(full, name)), err_msg=name)


def _mdps(dtype):
    yield "random-64x4", *mdp.random_mdp(64, 4, 5, seed=11, dtype=dtype), np.array([0.0, 0.5, 0.9, 0.95, 0.99])
    yield "random-7x3", *mdp.random_mdp(7, 3, 2, seed=12, dtype=dtype), 0.9
    yield "random-13x16", *mdp.random_mdp(13, 16, 3, seed=13, dtype=dtype), 0.95
    yield "random-1x5", *mdp.random_mdp(1, 5, 2, seed=14, dtype=dtype), 0.8
    yield "random-9x1", *mdp.random_mdp(9, 1, 2, seed=15, dtype=dtype), 0.8
    yield (
        "sparse-50x4",
        mdp.random_mdp(50, 4, 3, successors=5, seed=16, dtype=dtype),
        mdp.random_mdp(50, 4, 3, successors=5, seed=16, dtype=dtype)[1],
        0.95,
    )
    P, R, _ = mdp.gridworld(-0.04, dtype=dtype)
    yield "gridworld", P, R, 0.99
    P, R = mdp.forest(25, dtype=dtype)
    yield "forest", P, R, 0.96


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("solve", list(SOLVES))
def test_elimination_gives_the_same_floats(monkeypatch, solve, dtype):
    for name, P, R, g in _mdps(dtype):
        if isinstance(P, tuple):  # the sparse generator returns (CSR, R)
            P = P[0]
        full, elim = _both(monkeypatch, SOLVES[solve], P, R, g)
        try:
            assert_same(full, elim)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from None


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_exact_ties_keep_the_lowest_action(monkeypatch, dtype):
    """Every action duplicated: each state has exact ties at every sweep."""
    P, R = mdp.random_mdp(20, 3, 2, seed=21, dtype=dtype)
    P2 = np.concatenate([P, P], axis=2)
    R2 = np.concatenate([R, R], axis=2)
    for solve in SOLVES.values():
        full, elim = _both(monkeypatch, solve, P2, R2, 0.9)
        assert_same(full, elim)
        assert (np.asarray(elim.policy) < 3).all()  # the first copy wins


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_near_ties_within_rounding(monkeypatch, dtype):
    """Competitors a few units in the last place apart (the elimination margin's business)."""
    rng = np.random.default_rng(5)
    P, R = mdp.random_mdp(30, 2, 2, seed=22, dtype=dtype)
    P = np.concatenate([P, P, P], axis=2)
    eps = np.finfo(dtype).eps
    scale = np.abs(R).max() * 10
    bumps = rng.integers(-3, 4, (2, 30, 2)).astype(dtype) * (eps * scale)
    R = np.concatenate([R, R + bumps, R - bumps], axis=2)
    for solve in SOLVES.values():
        full, elim = _both(monkeypatch, solve, P, R, 0.95)
        assert_same(full, elim)


def test_elimination_matches_exact_optimum():
    """With elimination on (the default), the solution is still the exact optimum."""
    P, R = mdp.random_mdp(64, 4, 8, seed=31)
    sol = mdp.value_iteration(P, R, 0.95, epsilon=1e-10)
    for b in range(8):
        V = oracle.policy_value(P[b], R[b], 0.95, sol.policy[b])
        np.testing.assert_allclose(sol.V[b], V, atol=1e-8)
        np.testing.assert_allclose(sol.Q[b], R[b] + 0.95 * P[b] @ sol.V[b], atol=1e-8)


def test_margin_covers_the_initial_values(monkeypatch):
    """A huge V0 at one state and a row summing to 1 + 1e-6 (allowed): the bounds' first origin
    is Q computed from V0, whose rounding the margin must cover (found by review)."""
    p = 1 + 4503599627 * 2.0**-52  # the largest double with |p - 1| <= 1e-6
    C, g, r1 = 4836751020966.603, 0.3036900446280879, -0.46674961687980204
    for r0 in (r1, np.nextafter(r1, -np.inf)):  # an exact tie, and action 1 better by one ulp
        P = np.zeros((3, 2, 3))
        P[0, :, 0] = P[1, :, 0] = P[2, 0, 0] = 1
        P[2, 1, 1] = p
        R = np.array([[0.0, 0.0], [0.0, 0.0], [r0, r1]])
        V0 = np.array([0.0, -C, 0.0])
        for solve in (
            lambda P=P, R=R, V0=V0: mdp.value_iteration(P, R, g, V0=V0, tol=0.0, max_iter=2),
            lambda P=P, R=R, V0=V0: mdp.modified_policy_iteration(P, R, g, m=1, V0=V0, tol=0.0, max_iter=3),
        ):
            monkeypatch.setattr(mdp._solvers, "_ACTION_ELIMINATION", False)
            full = solve()
            monkeypatch.setattr(mdp._solvers, "_ACTION_ELIMINATION", True)
            assert_same(full, solve())


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    S=st.sampled_from([1, 2, 5, 8, 9, 17, 31]),
    A=st.sampled_from([1, 2, 3, 5, 8, 17]),
    B=st.integers(1, 3),
    dtype=st.sampled_from([np.float64, np.float32]),
    kind=st.sampled_from(["plain", "ties", "quantised", "absorbing"]),
    solver=st.sampled_from(["vi", "mpi", "mpi-m2", "pi"]),
    v0=st.sampled_from([None, 1e-3, 1e6]),
    seed=st.integers(0, 2**31 - 1),
)
def test_fuzz_elimination_bitwise(monkeypatch, S, A, B, dtype, kind, solver, v0, seed):
    rng = np.random.default_rng(seed)
    P = rng.random((B, S, A, S))
    R = rng.standard_normal((B, S, A))
    if kind == "ties":  # duplicated actions, a few ulps apart
        h = (A + 1) // 2
        P[:, :, h:] = P[:, :, : A - h]
        R[:, :, h:] = R[:, :, : A - h] * (1 + rng.integers(-2, 3, (B, S, A - h)) * np.finfo(dtype).eps)
    elif kind == "quantised":  # many exact ties
        P = rng.integers(0, 4, P.shape).astype(float)
        P[..., 0] += 1
        R = np.round(R * 2) / 2
    elif kind == "absorbing":
        k = max(1, S // 3)
        P[:, :k] = 0
        P[:, np.arange(k), :, np.arange(k)] = 1
    P = (P / P.sum(-1, keepdims=True)).astype(dtype)
    R = R.astype(dtype)
    g = rng.choice([0.0, 0.5, 0.95, 0.999], size=B).astype(dtype)
    V0 = None if v0 is None else (rng.standard_normal((B, S)) * v0).astype(dtype)
    solve = {
        "vi": lambda: mdp.value_iteration(P, R, g, epsilon=1e-8, V0=V0),
        "mpi": lambda: mdp.modified_policy_iteration(P, R, g, epsilon=1e-8, V0=V0),
        "mpi-m2": lambda: mdp.modified_policy_iteration(P, R, g, m=2, tol=0.0, max_iter=40, stop="sup", V0=V0),
        "pi": lambda: mdp.policy_iteration(P, R, g, epsilon=1e-8),
    }[solver]
    full, elim = _both(monkeypatch, lambda *_: solve(), None, None, None)
    assert_same(full, elim)
