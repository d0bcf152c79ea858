"""Solvers (VI, MPI, PI, policy evaluation) against an exact float64 reference, pymdptoolbox and
quantecon; the built-in example MDPs; per-MDP convergence; thread-count independence."""

import numpy as np
import pytest
import reference as oracle

import pygenmod
from pygenmod import mdp


def _bk(backend, P, sparse):
    if sparse:
        c = mdp.as_csr(P)
        return mdp.CSR(backend.asarray(c.data), backend.asarray(c.indices), backend.asarray(c.indptr), c.shape)
    return backend.asarray(P)


SOLVERS = {
    "vi-span": lambda P, R, g: mdp.value_iteration(P, R, g, epsilon=1e-7),
    "vi-sup": lambda P, R, g: mdp.value_iteration(P, R, g, epsilon=1e-7, stop="sup"),
    "mpi": lambda P, R, g: mdp.modified_policy_iteration(P, R, g, epsilon=1e-7),
    "mpi-m5": lambda P, R, g: mdp.modified_policy_iteration(P, R, g, m=5, epsilon=1e-7, stop="sup"),
    "pi": lambda P, R, g: mdp.policy_iteration(P, R, g, epsilon=1e-7),
    "pi-exact": lambda P, R, g: mdp.policy_iteration(P, R, g, evaluation="exact"),
}


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("solver", list(SOLVERS))
def test_solvers_match_exact_reference(backend, solver, sparse):
    B, S, A = 3, 17, 4
    P, R = mdp.random_mdp(S, A, B, seed=3)
    gammas = np.array([0.0, 0.5, 0.9])
    sol = SOLVERS[solver](_bk(backend, P, sparse), backend.asarray(R), gammas)
    V, pi = backend.numpy(sol.V), backend.numpy(sol.policy)
    assert V.shape == (B, S) and pi.dtype == np.int64
    for b in range(B):
        V_ref, pi_ref, Q_ref = oracle.policy_iteration(P[b], R[b], gammas[b])
        np.testing.assert_allclose(V[b], V_ref, atol=1e-6)
        np.testing.assert_array_equal(pi[b], pi_ref)
        np.testing.assert_allclose(backend.numpy(sol.Q)[b], Q_ref, atol=1e-5)
    assert np.all(np.asarray(sol.converged))


def test_float32_solution(backend):
    P, R = mdp.random_mdp(20, 3, 2, seed=5)
    sol = mdp.solve(backend.asarray(P.astype(np.float32)), backend.asarray(R.astype(np.float32)), 0.9, epsilon=1e-4)
    assert backend.numpy(sol.V).dtype == np.float32
    for b in range(2):
        V_ref, pi_ref, _ = oracle.policy_iteration(P[b], R[b], 0.9)
        np.testing.assert_allclose(backend.numpy(sol.V)[b], V_ref, atol=1e-3)


def test_epsilon_bound_holds_for_stopping_rules():
    P, R = mdp.random_mdp(60, 5, seed=11)
    V_ref, pi_ref, _ = oracle.policy_iteration(P, R, 0.95)
    for stop in ("span", "sup"):
        for eps in (1e-2, 1e-5):
            sol = mdp.value_iteration(P, R, 0.95, epsilon=eps, stop=stop)
            assert np.abs(sol.V - V_ref).max() <= eps / 2
            # greedy policy is eps-optimal
            Vpi = mdp.policy_evaluation(P, R, 0.95, sol.policy).V
            assert np.abs(Vpi - V_ref).max() <= eps
    # tol: a raw threshold on the sup-norm change
    sol = mdp.value_iteration(P, R, 0.95, tol=1e-8, stop="sup")
    assert sol.residual < 1e-8 and np.abs(sol.V - V_ref).max() <= 0.95 / 0.05 * 1e-8


def test_per_mdp_convergence_and_max_iter():
    P, R = mdp.random_mdp(12, 3, 3, seed=2)
    sol = mdp.value_iteration(P, R, [0.1, 0.9, 0.99], epsilon=1e-8)
    its = np.asarray(sol.iterations)
    assert its[0] < its[1] < its[2]
    # each MDP's result equals solving it alone
    for b in range(3):
        alone = mdp.value_iteration(P[b], R[b], [0.1, 0.9, 0.99][b], epsilon=1e-8)
        np.testing.assert_array_equal(alone.V, sol.V[b])
        assert alone.iterations == its[b]
    capped = mdp.value_iteration(P, R, 0.99, epsilon=1e-12, max_iter=3)
    assert (np.asarray(capped.iterations) == 3).all() and not np.asarray(capped.converged).any()


@pytest.mark.parametrize("name", ["cpu", "numba"])
def test_results_do_not_depend_on_thread_count(name):
    if not pygenmod.backends()[name]["available"]:
        pytest.skip(f"backend {name!r} unavailable: {pygenmod.backends()[name]['reason']}")
    P, R = mdp.random_mdp(600, 8, seed=4)  # large enough to split sweeps over threads
    Ps, Rs = mdp.random_mdp(300_000, 4, successors=1, seed=4)  # CSR with over 2^20 non-zeros
    Pb, Rb = mdp.random_mdp(30, 3, 9, seed=4)  # batch split over MDPs
    n = pygenmod.get_num_threads()
    try:
        outs = []
        with pygenmod.use_backend(name):
            for t in (1, 2, 3):
                pygenmod.set_num_threads(t)
                outs.append(
                    (
                        mdp.solve(P, R, 0.95),
                        mdp.value_iteration(Pb, Rb, 0.9),
                        mdp.value_iteration(Ps, Rs, 0.9, tol=0.0, max_iter=3),
                        mdp.policy_evaluation(P, R, 0.95, R.argmax(-1), evaluation="iterative"),
                    )
                )
    finally:
        pygenmod.set_num_threads(n)
    for a, b, c, e in outs[1:]:
        np.testing.assert_array_equal(e.V, outs[0][3].V)
        np.testing.assert_array_equal(a.V, outs[0][0].V)
        np.testing.assert_array_equal(a.Q, outs[0][0].Q)
        np.testing.assert_array_equal(b.V, outs[0][1].V)
        np.testing.assert_array_equal(b.policy, outs[0][1].policy)
        np.testing.assert_array_equal(c.V, outs[0][2].V)


def test_backends_agree():
    P, R = mdp.random_mdp(25, 4, 2, seed=9)
    res = {}
    for name in ("cpu", "numba"):
        if not pygenmod.backends()[name]["available"]:
            continue
        with pygenmod.use_backend(name):
            res[name] = mdp.solve(P, R, 0.9, epsilon=1e-9)
    ref = next(iter(res.values()))
    for r in res.values():
        np.testing.assert_allclose(r.V, ref.V, atol=1e-9)
        np.testing.assert_array_equal(r.policy, ref.policy)


@pytest.mark.parametrize("method", ["exact", "iterative"])
@pytest.mark.parametrize("stochastic", [False, True])
def test_policy_evaluation(backend, method, stochastic):
    P, R = mdp.random_mdp(14, 3, 2, seed=6)
    rng = np.random.default_rng(0)
    if stochastic:
        pi = rng.random((2, 14, 3))
        pi /= pi.sum(-1, keepdims=True)
    else:
        pi = rng.integers(0, 3, (2, 14))
    ref = np.stack([oracle.policy_value(P[b], R[b], 0.9, pi[b]) for b in range(2)])
    for sparse in (False, True):
        ev = mdp.policy_evaluation(
            _bk(backend, P, sparse), backend.asarray(R), 0.9, backend.asarray(pi), evaluation=method, epsilon=1e-8
        )
        np.testing.assert_allclose(backend.numpy(ev.V), ref, atol=1e-7)


# ------------------------------------------------------------------ peers
def test_against_pymdptoolbox_and_quantecon():
    mdptoolbox = pytest.importorskip("mdptoolbox.mdp")
    qe = pytest.importorskip("quantecon")
    P, R = mdp.random_mdp(40, 5, seed=1)
    gamma = 0.9
    sol = mdp.solve(P, R, gamma, epsilon=1e-9)
    Pt, Rt = mdp.to_mdptoolbox(P, R)
    pi_tb = mdptoolbox.PolicyIteration(Pt, Rt, gamma)
    pi_tb.run()
    np.testing.assert_allclose(sol.V, np.array(pi_tb.V), atol=1e-6)
    np.testing.assert_array_equal(sol.policy, np.array(pi_tb.policy))
    Rq, Qq = mdp.to_quantecon(P, R)
    res = qe.markov.DiscreteDP(Rq, Qq, gamma).solve("policy_iteration")
    np.testing.assert_allclose(sol.V, res.v, atol=1e-6)
    np.testing.assert_array_equal(sol.policy, res.sigma)
    vi = mdp.value_iteration(P, R, gamma, epsilon=1e-9)
    pi = mdp.policy_iteration(P, R, gamma, evaluation="exact")
    np.testing.assert_allclose(vi.V, pi.V, atol=1e-6)
    np.testing.assert_array_equal(vi.policy, pi.policy)


def test_converters_roundtrip_and_sparse_peers():
    pytest.importorskip("scipy.sparse")
    pytest.importorskip("mdptoolbox")
    import mdptoolbox.example

    Pt, Rt = mdptoolbox.example.forest(S=5, is_sparse=True)
    P, R = mdp.from_mdptoolbox(Pt, Rt)
    assert isinstance(P, mdp.CSR)
    Pd, Rd = mdptoolbox.example.forest(S=5)
    P2, R2 = mdp.from_mdptoolbox(Pd, Rd)
    Pf, Rf = mdp.forest(5)
    np.testing.assert_array_equal(P2, Pf)
    np.testing.assert_array_equal(R2, Rf)
    a, b = mdp.solve(P, R, 0.9, epsilon=1e-10), mdp.solve(P2, R2, 0.9, epsilon=1e-10)
    np.testing.assert_allclose(a.V, b.V, atol=1e-9)
    Rq, Qq = mdp.to_quantecon(P, R)
    P3, R3 = mdp.from_quantecon(Rq, Qq)
    np.testing.assert_allclose(mdp.solve(P3, R3, 0.9, epsilon=1e-10).V, a.V, atol=1e-9)
    # pymdptoolbox (A, S, S) rewards
    R_ass = np.random.default_rng(0).standard_normal((2, 5, 5))
    _, Rsa = mdp.from_mdptoolbox(Pd, R_ass)
    np.testing.assert_allclose(Rsa, (Pd * R_ass).sum(-1).T)


def test_forest_matches_pymdptoolbox_solution():
    pytest.importorskip("mdptoolbox")
    import mdptoolbox.example
    import mdptoolbox.mdp

    Pt, Rt = mdptoolbox.example.forest(S=10, p=0.05)
    vi = mdptoolbox.mdp.PolicyIteration(Pt, Rt, 0.96)
    vi.run()
    P, R = mdp.forest(10, p=0.05)
    sol = mdp.solve(P, R, 0.96, epsilon=1e-9)
    np.testing.assert_allclose(sol.V, vi.V, atol=1e-6)
    np.testing.assert_array_equal(sol.policy, vi.policy)


# ------------------------------------------------------------------ gridworld
def _policy_at(sol, cells, cell):
    return mdp.GRID_ACTIONS[int(sol.policy[cells.index(cell)])]


def test_gridworld_known_policies():
    """Russell & Norvig, fig. 17.2 (the policies at gamma close to 1)."""
    sols = {}
    for r in (-0.04, -0.5, -2.0):
        P, R, cells = mdp.gridworld(r)
        sols[r] = (mdp.solve(P, R, 0.999, epsilon=1e-8), cells)
        vi = mdp.value_iteration(P, R, 0.999, epsilon=1e-8)
        np.testing.assert_array_equal(vi.policy, sols[r][0].policy)
    sol, cells = sols[-0.04]
    # the long way round, away from the -1 square
    assert _policy_at(sol, cells, (3, 0)) == "left"
    assert _policy_at(sol, cells, (2, 1)) == "up"
    assert _policy_at(sol, cells, (0, 0)) == "up"
    assert _policy_at(sol, cells, (2, 2)) == "right"
    sol, cells = sols[-0.5]
    assert _policy_at(sol, cells, (3, 0)) == "up"  # accepts the risk next to -1
    sol, cells = sols[-2.0]
    assert _policy_at(sol, cells, (2, 1)) == "right"  # jumps into -1 at once
    pols = [tuple(s.policy[:-1]) for s, _ in sols.values()]
    assert len(set(pols)) == 3
    V, _, _ = oracle.policy_iteration(*mdp.gridworld(-0.04)[:2], 0.999)
    np.testing.assert_allclose(sols[-0.04][0].V, V, atol=1e-7)


@pytest.mark.parametrize("bad, match", [("rowsum", "sum to 1"), ("negative", ">= 0"), ("nan", "NaN")])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("solver", ["vi", "mpi", "pi", "vi-v0", "gamma0"])
def test_solvers_reject_bad_transitions(backend, bad, match, sparse, solver):
    """The row checks run fused into the first sweep that reads P; they must still raise
    (and return promptly: a bad P never iterates to max_iter)."""
    P, R = mdp.random_mdp(9, 3, 2, seed=1)
    if bad == "rowsum":
        P[1, 4, 2] *= 3.0
    elif bad == "negative":
        P[0, 2, 1, 0] -= 0.5
        P[0, 2, 1, 1] += 0.5
    else:
        P[1, 8, 0, 3] = np.nan
    Pin = _bk(backend, P, sparse)
    Rb = backend.asarray(R)
    with pytest.raises(ValueError, match=match):
        if solver == "vi":
            mdp.value_iteration(Pin, Rb, 0.9, max_iter=10**9)
        elif solver == "mpi":
            mdp.solve(Pin, Rb, 0.9, max_iter=10**9)
        elif solver == "pi":
            mdp.policy_iteration(Pin, Rb, 0.9)
        elif solver == "vi-v0":
            mdp.value_iteration(Pin, Rb, 0.9, V0=backend.asarray(np.ones((2, 9))), max_iter=10**9)
        else:
            mdp.value_iteration(Pin, Rb, 0.0)
