"""Classic UCT (policy "uct"): UCB1 selection, random rollouts on tabular models, mean backup.

Checked against the plain-Python reference tests/_mcts_ref.uct_search (same Philox streams:
visit counts exact, values to rounding), the callback path against the native one, UCB1's
regret bound on a bandit, convergence to value iteration's action on small MDPs, the stream
offset, both dtypes, every backend, and bad input."""

import math

import numpy as np
import pytest
from _mcts_ref import uct_search

from pygenmod import mcts, mdp


def random_tables(rng, S, A, *, stochastic=False, two_player=False, dtype=np.float64):
    ns = rng.integers(0, S, (S, A))
    R = rng.uniform(-1, 1, (S, A)).astype(dtype)
    D = np.full((S, A), 0.9)
    if two_player:
        D = np.where(rng.random((S, A)) < 0.5, -0.9, 0.9)
    V = rng.uniform(-1, 1, S).astype(dtype)
    terminal = np.zeros(S, bool)
    terminal[rng.integers(0, S)] = True
    inv = rng.random((S, A)) < 0.25
    inv[np.arange(S), rng.integers(0, A, S)] = False
    P = rng.dirichlet(np.full(S, 0.5), (S, A)) if stochastic else None
    return ns, R, D, V, terminal, inv, P


def build(tables, xp=np.asarray):
    ns, R, D, V, terminal, inv, P = tables
    L = np.zeros(R.shape, R.dtype)
    if P is None:
        return mcts.tabular_model(
            xp(ns), xp(R), xp(L), xp(V), xp(D.astype(R.dtype)), terminal=xp(terminal), invalid_actions=xp(inv)
        )
    return mcts.stochastic_tabular_model(
        xp(P), xp(R), xp(L), xp(V), xp(D.astype(R.dtype)), terminal=xp(terminal), invalid_actions=xp(inv)
    )


def ref_tables(model):
    """The model's tables as the reference reads them (terminal rows all invalid, V = 0 there)."""
    ns = np.asarray(model.next_state)
    R, D, V = (np.asarray(x, np.float64) for x in (model.reward, model.discount, model.value))
    inv = np.asarray(model.invalid) != 0
    cdf = None if model.cdf is None else np.asarray(model.cdf)
    return ns, R, D, V, inv, cdf


@pytest.mark.parametrize("stochastic", [False, True])
@pytest.mark.parametrize("two_player", [False, True])
@pytest.mark.parametrize("depth", [0, 1, 7])
def test_matches_the_reference(backend, rng, stochastic, two_player, depth):
    if backend.name == "cuda":
        pytest.skip("host comparison (the CUDA kernel is the same code: see test_backends_agree)")
    S, A, B, sims = 11, 4, 6, 40
    m = build(random_tables(rng, S, A, stochastic=stochastic, two_player=two_player))
    roots = rng.integers(0, S, B)
    roots[0] = int(np.flatnonzero(np.asarray(m.terminal) != 0)[0]) if (np.asarray(m.terminal) != 0).any() else 0
    roots = np.where((np.asarray(m.invalid)[roots] != 0).all(-1), (roots + 1) % S, roots)  # roots need an action
    c = 0.8
    out = mcts.uct_policy(roots, m, sims, seed=2**40 + 9, stream=5, exploration=c, rollout_depth=depth)
    ns, R, D, V, inv, cdf = ref_tables(m)
    for b in range(B):
        counts, value = uct_search(
            ns, R, D, V, inv, int(roots[b]), sims, c=c, rollout_depth=depth, seed=2**40 + 9, g=5 + b, cdf=cdf
        )
        np.testing.assert_array_equal(out.visit_counts[b], counts, err_msg=f"tree {b}")
        np.testing.assert_allclose(out.value[b], value, rtol=1e-12, atol=1e-12)
        assert out.action[b] == int(np.argmax(counts))
    np.testing.assert_allclose(out.action_weights, out.visit_counts / out.visit_counts.sum(-1, keepdims=True))


def test_backends_agree(backend, dtype, rng):
    """cpu, numba and CUDA run the same search (float32: to the rounding of UCB ties)."""
    import pygenmod

    tables = random_tables(rng, 9, 3, stochastic=True, dtype=dtype)
    roots = rng.integers(0, 9, 16)
    roots = np.where(tables[4][roots], (roots + 1) % 9, roots)
    m = build(tables, backend.asarray)
    out = mcts.uct_policy(backend.asarray(roots), m, 30, seed=3, rollout_depth=5)
    with pygenmod.use_backend("cpu"):
        ref = mcts.uct_policy(roots, build(tables), 30, seed=3, rollout_depth=5)
    counts = backend.numpy(out.visit_counts)
    if dtype == np.float64:
        np.testing.assert_array_equal(counts, ref.visit_counts)
        np.testing.assert_allclose(backend.numpy(out.value), ref.value, rtol=1e-12)
    else:
        assert (counts == ref.visit_counts).all(-1).mean() >= 0.75
    assert counts.dtype == np.int32 and backend.numpy(out.value).dtype == dtype


def test_callback_equals_tabular(rng, dtype):
    """With the table's value as the leaf value (rollout_depth=0), a callback search builds
    the same trees as the native one."""
    ns, R, D, V, terminal, inv, _ = random_tables(rng, 10, 3, dtype=dtype)
    m = build((ns, R, D, V, terminal, inv, None))
    roots = rng.integers(0, 10, 5)
    roots = np.where(terminal[roots], (roots + 1) % 10, roots)
    nat = mcts.uct_policy(roots, m, 25, rollout_depth=0, exploration=1.1)

    def fn(emb, act):
        s2 = np.asarray(m.next_state)[emb, act]
        return (
            np.asarray(m.reward)[emb, act],
            np.asarray(m.discount)[emb, act],
            np.asarray(m.logits)[s2],
            np.asarray(m.value)[s2],
            s2,
            np.asarray(m.invalid)[s2] != 0,
        )

    root = mcts.Root(np.asarray(m.logits)[roots], np.asarray(m.value)[roots], roots)
    cb = mcts.uct_policy(root, fn, 25, exploration=1.1, invalid_actions=np.asarray(m.invalid)[roots] != 0)
    np.testing.assert_array_equal(cb.visit_counts, nat.visit_counts)
    np.testing.assert_array_equal(cb.value, nat.value)
    for f in ("visits", "value_sum", "parent", "action", "children"):
        np.testing.assert_array_equal(getattr(cb.tree, f), getattr(nat.tree, f), err_msg=f)


def test_ucb1_regret_bound_on_a_bandit():
    """A root whose children are terminal is a deterministic bandit: UCB1 plays arm j (gap
    Delta_j) at most 8 ln n / Delta_j^2 + 1 + pi^2 / 3 times (Auer et al. 2002, c = sqrt 2),
    and the best arm most."""
    A, n = 4, 3000
    means = np.array([0.2, 0.9, 0.5, 0.85])
    ns = np.tile(np.arange(A) + 1, (A + 1, 1))  # state 0 -> terminal state a + 1
    R = np.tile(means, (A + 1, 1))
    terminal = np.array([False] + [True] * A)
    m = mcts.tabular_model(ns, R, np.zeros((A + 1, A)), np.zeros(A + 1), 1.0, terminal=terminal)
    out = mcts.uct_policy(np.array([0]), m, n)
    counts = out.visit_counts[0]
    assert counts.sum() == n and out.action[0] == 1
    gaps = means.max() - means
    for j in (0, 2, 3):
        assert 1 <= counts[j] <= 8 * math.log(n) / gaps[j] ** 2 + 1 + math.pi**2 / 3
    # exploration 0: pure greedy after each arm's first pull
    greedy = mcts.uct_policy(np.array([0]), m, 50, exploration=0.0).visit_counts[0]
    np.testing.assert_array_equal(greedy, [1, 47, 1, 1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_converges_to_value_iterations_action(seed):
    """Random rollouts (value 0) on small random deterministic MDPs: from every state, the most
    visited root action of a long search is value iteration's optimal action (where its Q gap
    is clear). (Stochastic models need chance nodes for this: an expanded edge keeps its
    first sampled outcome.)"""
    S, A, gamma = 6, 3, 0.6
    rng = np.random.default_rng(seed)
    ns = rng.integers(0, S, (S, A))
    R = rng.uniform(0, 1, (S, A))
    P = np.zeros((S, A, S))
    P[np.arange(S)[:, None], np.arange(A), ns] = 1.0
    sol = mdp.value_iteration(P, R, gamma, tol=1e-12)
    Q = R + gamma * sol.V[ns]
    m = mcts.tabular_model(ns, R, np.zeros((S, A)), np.zeros(S), gamma)
    out = mcts.uct_policy(np.arange(S), m, 3000, seed=seed, rollout_depth=30, exploration=1.0)
    qs = np.sort(Q, -1)
    clear = qs[:, -1] - qs[:, -2] > 0.02
    assert clear.sum() >= 3
    np.testing.assert_array_equal(out.action[clear], Q.argmax(-1)[clear])


def test_stream_slices_and_temperature(rng):
    m = build(random_tables(rng, 8, 3, stochastic=True))
    roots = np.where(np.asarray(m.terminal)[np.arange(8)] != 0, 0, np.arange(8))
    whole = mcts.search(roots, m, 20, policy="uct", seed=4, temperature=1.0, rollout_depth=3)
    part = mcts.search(roots[3:6], m, 20, policy="uct", seed=4, temperature=1.0, rollout_depth=3, stream=3)
    for x, y in zip(whole[:4], part[:4]):
        assert np.asarray(x)[3:6].tobytes() == np.asarray(y).tobytes()


def test_bad_input(rng):
    m = build(random_tables(rng, 6, 3))
    roots = np.array([1, 2])
    with pytest.raises(ValueError, match="exploration"):
        mcts.uct_policy(roots, m, 4, exploration=-1.0)
    with pytest.raises(ValueError, match="exploration"):
        mcts.uct_policy(roots, m, 4, exploration=float("nan"))
    with pytest.raises(ValueError, match="rollout_depth"):
        mcts.uct_policy(roots, m, 4, rollout_depth=-1)
    with pytest.raises(TypeError, match="rollout_depth"):
        mcts.uct_policy(roots, m, 4, rollout_depth=2.5)
    root = mcts.Root(np.zeros((2, 3)), np.zeros(2), roots)
    with pytest.raises(ValueError, match="rollout_depth"):
        mcts.uct_policy(root, lambda e, a: None, 4, rollout_depth=3)
    with pytest.raises(ValueError, match="temperature"):
        mcts.uct_policy(roots, m, 4, temperature=-1.0)
    with pytest.raises(ValueError, match="policy"):
        mcts.search(roots, m, 4, policy="ucb")


def test_composed_loop_with_select_uct(rng):
    """select(policy="uct") / expand / backup by hand build the uct_policy callback tree."""
    ns, R, D, V, terminal, inv, _ = random_tables(rng, 8, 3)
    m = build((ns, R, D, V, terminal, inv, None))
    roots = np.where(terminal[np.arange(4)], 5, np.arange(4))
    root_inv = np.asarray(m.invalid)[roots] != 0
    ref = mcts.uct_policy(roots, m, 12, rollout_depth=0, exploration=0.7)
    tree = mcts.new_tree(4, 3, 13)
    mcts.init_root(tree, np.asarray(m.logits)[roots], np.asarray(m.value)[roots], invalid_actions=root_inv, state=roots)
    for _ in range(12):
        node, action = mcts.select(tree, policy="uct", exploration=0.7)
        s = tree.state[np.arange(4), node]
        a = np.maximum(action, 0)
        s2 = np.asarray(m.next_state)[s, a]
        leaf = mcts.expand(
            tree,
            node,
            action,
            np.asarray(m.reward)[s, a],
            np.asarray(m.discount)[s, a],
            np.asarray(m.logits)[s2],
            np.asarray(m.value)[s2],
            state=s2,
            invalid_actions=np.asarray(m.invalid)[s2] != 0,
        )
        mcts.backup(tree, leaf)
    np.testing.assert_array_equal(tree.child_visits(0), ref.visit_counts)
    np.testing.assert_array_equal(tree.visits, ref.tree.visits)
