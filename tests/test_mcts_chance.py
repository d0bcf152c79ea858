"""Chance nodes on stochastic tabular models (chance_nodes=True): an outcome drawn at every
visit, a child per outcome (chained chance nodes past A - 1 outcomes). Checked: root
Q-values converge to an independent expectimax (tests/_mcts_ref.expectimax), outcome visit
frequencies match P, one-hot P equals the deterministic search, cpu == numba bitwise, the
stream offset, and bad input."""

import numpy as np
import pytest
from _mcts_ref import expectimax

import pygenmod
from pygenmod import mcts


def layered(rng, K=5, A=3, gamma=0.9):
    """Root 0 -> (stochastic, over the K layer-1 states) -> a choice with reward gaps of 0.5
    -> terminal state K + 1. Returns (P, R, terminal, gamma)."""
    S = K + 2
    P = np.zeros((S, A, S))
    P[0, :, 1 : K + 1] = rng.dirichlet(np.ones(K), A)
    P[1 : K + 1, :, K + 1] = 1.0
    P[K + 1, :, K + 1] = 1.0
    R = np.zeros((S, A))
    R[0] = rng.uniform(0, 1, A)
    for s in range(1, K + 1):
        R[s] = rng.permutation(np.arange(A) * 0.5) + rng.uniform(0, 1)
    terminal = np.zeros(S, bool)
    terminal[K + 1] = True
    return P, R, terminal, gamma


@pytest.mark.parametrize("policy", ["uct", "muzero"])
def test_root_q_converges_to_expectimax(policy, rng):
    P, R, terminal, gamma = layered(rng)
    m = mcts.mdp_model(P, R, gamma, terminal=terminal)
    kw = dict(exploration=0.5, rollout_depth=0) if policy == "uct" else dict(dirichlet_fraction=0.0)
    out = mcts.search(np.array([0]), m, 6000, policy=policy, seed=1, chance_nodes=True, **kw)
    Q = np.array(
        [
            R[0, a] + gamma * sum(P[0, a, t] * expectimax(P, R, gamma, terminal, t, 1) for t in np.flatnonzero(P[0, a]))
            for a in range(3)
        ]
    )
    q = out.tree.qvalues(0)[0]
    n = out.visit_counts[0]
    seen = n >= 300
    assert seen[np.argmax(Q)]
    np.testing.assert_allclose(q[seen], Q[seen], atol=0.08)
    assert out.action[0] == np.argmax(Q)


def outcome_children(tree, b, chance):
    """{state: visits} of the outcome nodes under a chance node (following its chain)."""
    A = tree.num_actions
    out = {}
    while chance >= 0:
        for k in range(A - 1):
            o = tree.children[b, chance, k]
            if o >= 0:
                assert tree.state[b, o] not in out
                out[int(tree.state[b, o])] = int(tree.visits[b, o])
        chance = tree.children[b, chance, A - 1]
    return out


def test_outcome_frequencies_and_chains(rng):
    P, R, terminal, gamma = layered(rng, K=6)
    m = mcts.mdp_model(P, R, gamma, terminal=terminal)
    out = mcts.uct_policy(np.array([0, 0]), m, 3000, seed=5, chance_nodes=True, rollout_depth=0, exploration=3.0)
    t = out.tree
    for b in range(2):
        for a in range(3):
            c = t.children[b, 0, a]
            assert t.state[b, c] == -1 and t.visits[b, c] == out.visit_counts[b, a]
            kids = outcome_children(t, b, c)  # each kept outcome once (asserted there)
            assert set(kids) <= set(np.flatnonzero(P[0, a]))
            n = sum(kids.values())
            assert n == t.visits[b, c]
            if n >= 300:
                freq = np.array([kids.get(s, 0) for s in range(P.shape[2])]) / n
                np.testing.assert_allclose(freq, P[0, a], atol=4 * np.sqrt(0.25 / n))
                assert len(kids) > 2  # the chain is in use (A - 1 = 2 outcomes per chance node)
    assert (t.num_nodes <= 1 + 2 * 3000).all()


@pytest.mark.parametrize("policy", ["muzero", "gumbel", "uct"])
def test_one_hot_equals_deterministic(backend, dtype, policy, rng):
    S, A, B = 10, 3, 4
    ns = rng.integers(0, S, (S, A))
    P = np.zeros((S, A, S))
    P[np.arange(S)[:, None], np.arange(A), ns] = 1.0
    R, L = rng.standard_normal((S, A)).astype(dtype), rng.standard_normal((S, A)).astype(dtype)
    V = rng.standard_normal(S).astype(dtype)
    a = backend.asarray
    det = mcts.tabular_model(a(ns), a(R), a(L), a(V), 0.9)
    sto = mcts.stochastic_tabular_model(a(P), a(R), a(L), a(V), 0.9)
    roots = a(rng.integers(0, S, B))
    kw = {"muzero": dict(dirichlet_fraction=0.0), "gumbel": dict(gumbel_scale=0.0), "uct": dict(rollout_depth=0)}[
        policy
    ]
    o1 = mcts.search(roots, det, 40, policy=policy, seed=7, **kw)
    o2 = mcts.search(roots, sto, 40, policy=policy, chance_nodes=True, seed=7, **kw)
    for x, y in zip(o1[:4], o2[:4]):
        np.testing.assert_array_equal(backend.numpy(x), backend.numpy(y))


def test_cpu_equals_numba_and_stream(rng):
    if not pygenmod.backends()["numba"]["available"]:
        pytest.skip("numba unavailable")
    S, A = 8, 3
    P = rng.dirichlet(np.full(S, 0.4), (S, A))
    m = mcts.stochastic_tabular_model(
        P, rng.standard_normal((S, A)), rng.standard_normal((S, A)), rng.standard_normal(S), 0.9
    )
    roots = rng.integers(0, S, 7)
    res = {}
    for name in ("cpu", "numba"):
        with pygenmod.use_backend(name):
            res[name] = [
                mcts.search(roots, m, 60, policy=p, seed=3, chance_nodes=True, **kw)
                for p, kw in (("muzero", {"dirichlet_fraction": 0.0}), ("uct", {"rollout_depth": 4}))
            ]
    for o1, o2 in zip(res["cpu"], res["numba"]):
        for f in mcts.TREE_FIELDS:
            np.testing.assert_array_equal(getattr(o1.tree, f), getattr(o2.tree, f), err_msg=f)
    whole = res["cpu"][1]
    part = mcts.uct_policy(roots[2:5], m, 60, seed=3, chance_nodes=True, rollout_depth=4, stream=2)
    for x, y in zip(whole[:4], part[:4]):
        assert np.asarray(x)[2:5].tobytes() == np.asarray(y).tobytes()


def test_bad_input(rng):
    S, A = 5, 2
    P = rng.dirichlet(np.ones(S), (S, A))
    z = np.zeros((S, A))
    sto = mcts.stochastic_tabular_model(P, z, z, np.zeros(S))
    det = mcts.tabular_model(rng.integers(0, S, (S, A)), z, z, np.zeros(S))
    roots = np.array([0, 1])
    with pytest.raises(ValueError, match="chance_nodes"):
        mcts.muzero_policy(roots, det, 4, chance_nodes=True)
    with pytest.raises(ValueError, match="chance_nodes"):
        mcts.uct_policy(mcts.Root(z[:2], np.zeros(2), roots), lambda e, a: None, 4, chance_nodes=True)
    with pytest.raises(ValueError, match="chance_nodes"):
        mcts.muzero_policy(roots, sto, 4, chance_nodes=True, max_depth=2)
    with pytest.raises(TypeError, match="chance_nodes"):
        mcts.muzero_policy(roots, sto, 4, chance_nodes="yes")
    one = mcts.stochastic_tabular_model(P[:, :1], z[:, :1], z[:, :1], np.zeros(S))
    with pytest.raises(ValueError, match="chance_nodes"):
        mcts.muzero_policy(roots, one, 4, chance_nodes=True)
    with pytest.raises(ValueError, match="capacity"):
        mcts.muzero_policy(roots, sto, 4, chance_nodes=True, capacity=6)
    out = mcts.gumbel_muzero_policy(roots, sto, 6, chance_nodes=True, seed=0)
    with pytest.raises(ValueError, match="chance_nodes=True"):
        mcts.gumbel_muzero_policy(None, sto, 2, tree=out.tree.grow(30))
    with pytest.raises(ValueError, match="chance node"):
        mcts.advance(out.tree, out.action)
    cont = mcts.gumbel_muzero_policy(None, sto, 2, tree=out.tree.grow(30), chance_nodes=True, seed=0)
    assert cont.visit_counts.sum() == out.visit_counts.sum() + 2 * 2  # 2 more simulations in each of 2 trees


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_uct_finds_value_iterations_action_on_stochastic_mdps(seed):
    """Random dense MDPs (every state reachable from every edge): UCT with chance nodes and
    random rollouts picks value iteration's action from every state where its Q gap is clear
    (with one outcome per edge it does not, e.g. seeds 0 and 2: see test_mcts_uct.py)."""
    from pygenmod import mdp

    S, A, gamma = 5, 3, 0.6
    P, R = mdp.random_mdp(S, A, 1, seed=seed)
    sol = mdp.value_iteration(P, R, gamma, tol=1e-12)
    Q = R[0] + gamma * P[0] @ sol.V[0]
    m = mcts.mdp_model(P[0], R[0], gamma)
    out = mcts.uct_policy(np.arange(S), m, 8000, seed=seed, rollout_depth=30, exploration=1.0, chance_nodes=True)
    qs = np.sort(Q, -1)
    clear = qs[:, -1] - qs[:, -2] > 0.05
    assert clear.sum() >= 3
    np.testing.assert_array_equal(out.action[clear], Q.argmax(-1)[clear])
