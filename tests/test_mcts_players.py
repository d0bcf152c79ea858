"""MCTS with a per-edge "player changed" flag (non-alternating turns), on every backend:
a hand-computed tree, equality with mctx's negative-discount encoding, the plain-Python
reference, the callback path and the composed operations."""

import _mcts_ref as ref
import numpy as np
import pytest
from conftest import tol

from pygenmod import mcts


def turns_model(dtype):
    """Player A moves at s0 and (again) at s1; B moves at s2; s3 is A's.
    s0: a0 -> s2 (B's turn: changed), a1 -> s1 (A again); prior [0.2, 0.8].
    s1: a0 -> s2 (changed), a1 -> s3 (A again, reward 0.1); uniform prior.
    s2, s3 loop on themselves without a change. Values: V = [0, 0.5, 0.5, 0.3] (each seen
    from the player to move there); discount 1."""
    ns = np.array([[2, 1], [2, 3], [2, 2], [3, 3]])
    pc = np.array([[1, 0], [1, 0], [0, 0], [0, 0]], bool)
    R = np.zeros((4, 2), dtype)
    R[1, 1] = 0.1
    L = np.array([[0.0, np.log(4.0)], [0, 0], [0, 0], [0, 0]], dtype)
    V = np.array([0.0, 0.5, 0.5, 0.3], dtype)
    return ns, pc, R, L, V


def test_known_answer_non_alternating_turns(backend, dtype):
    # By hand (PUCT, c = pb_c(N), prior at s0 [0.2, 0.8], at s1 [0.5, 0.5]):
    # sim 1: nothing visited -> 0.2c vs 0.8c -> a1: node 1 = s1 (A again, no flip), value 0.5.
    #        root: visits 2, value_sum 0 + 0.5.
    # sim 2: root value 0.25, Q(a1) = 0.5 -> normalised 1 -> a1; s1 unvisited, uniform prior:
    #        a0 (lowest index) -> node 2 = s2 (B to move: flip), value 0.5 for B.
    #        G: 0.5 at node 2, 0 + (-1) * 0.5 = -0.5 at node 1, 0 + 1 * (-0.5) = -0.5 at the root.
    #        node 1: visits 2, value_sum 0; root: visits 3, value_sum 0.
    # sim 3: root value 0, Q(a1) = 0 -> lo = hi -> 0; sqrt3 c (0.8 / 3) > sqrt3 c 0.2 -> a1;
    #        at node 1: Q(a0) = -0.5 (seen from A), value 0 -> normalised Q(a0) = 0, a1 unvisited
    #        sqrt2 c 0.5 > sqrt2 c 0.5 / 2 -> a1: node 3 = s3 (A again), reward 0.1, value 0.3.
    #        G: 0.3, then 0.1 + 0.3 = 0.4 at node 1 (value_sum 0.4), 0.4 at the root (0.4).
    ns, pc, R, L, V = turns_model(dtype)
    a = backend.asarray
    model = mcts.tabular_model(a(ns), a(R), a(L), a(V), 1.0, player_changed=a(pc))
    out = mcts.muzero_policy(a([0]), model, 3, dirichlet_fraction=0.0, temperature=0.0, seed=0)
    t = out.tree
    np.testing.assert_array_equal(backend.numpy(out.visit_counts), [[0, 3]])
    np.testing.assert_array_equal(backend.numpy(t.parent)[0], [-1, 0, 1, 1])
    np.testing.assert_array_equal(backend.numpy(t.action)[0], [-1, 1, 0, 1])
    np.testing.assert_array_equal(backend.numpy(t.visits)[0], [4, 3, 1, 1])
    np.testing.assert_allclose(backend.numpy(t.value_sum)[0], [0.4, 0.4, 0.5, 0.3], **tol(dtype))
    np.testing.assert_allclose(backend.numpy(t.discount)[0], [1, 1, -1, 1])
    np.testing.assert_allclose(backend.numpy(out.value), [0.1], **tol(dtype))
    # Q at node 1 is seen from its player (A): the B-node's 0.5 counts as -0.5
    np.testing.assert_allclose(backend.numpy(t.qvalues(1))[0], [-0.5, 0.4], **tol(dtype))


def random_turns(rng, S, A, gamma=0.9):
    ns = rng.integers(0, S, (S, A))
    R = rng.standard_normal((S, A))
    L = rng.standard_normal((S, A)) * 1.5
    V = rng.standard_normal(S)
    pc = rng.random((S, A)) < 0.4
    inv = rng.random((S, A)) < 0.2
    inv[np.arange(S), rng.integers(0, A, S)] = False
    return ns, R, L, V, pc, inv, gamma


def _tree_equal(backend, t1, t2, dtype):
    for f in mcts.TREE_FIELDS:
        x, y = backend.numpy(getattr(t1, f)), backend.numpy(getattr(t2, f))
        if x.dtype.kind == "f":
            np.testing.assert_allclose(x, y, rtol=0, atol=0, err_msg=f)
        else:
            np.testing.assert_array_equal(x, y, err_msg=f)


@pytest.mark.parametrize("policy", ["muzero", "gumbel"])
def test_flag_equals_negative_discount_encoding(backend, dtype, rng, policy):
    S, A, B, sims = 11, 3, 4, 25
    ns, R, L, V, pc, inv, gamma = random_turns(rng, S, A)
    a = backend.asarray
    roots = a(rng.integers(0, S, B))
    flag = mcts.tabular_model(
        a(ns),
        a(R.astype(dtype)),
        a(L.astype(dtype)),
        a(V.astype(dtype)),
        gamma,
        player_changed=a(pc),
        invalid_actions=a(inv),
    )
    D = np.where(pc, -gamma, gamma).astype(dtype)
    neg = mcts.tabular_model(
        a(ns), a(R.astype(dtype)), a(L.astype(dtype)), a(V.astype(dtype)), a(D), invalid_actions=a(inv)
    )
    kw = (
        dict(seed=0, dirichlet_fraction=0.0)
        if policy == "muzero"
        else dict(seed=0, gumbel=a(rng.gumbel(size=(B, A)).astype(dtype)))
    )
    o1 = mcts.search(roots, flag, sims, policy=policy, **kw)
    o2 = mcts.search(roots, neg, sims, policy=policy, **kw)
    _tree_equal(backend, o1.tree, o2.tree, dtype)
    np.testing.assert_array_equal(backend.numpy(o1.action), backend.numpy(o2.action))
    # a negative discount with the flag also set stays -|d| (no double flip)
    both = mcts.tabular_model(
        a(ns),
        a(R.astype(dtype)),
        a(L.astype(dtype)),
        a(V.astype(dtype)),
        a(D),
        player_changed=a(pc),
        invalid_actions=a(inv),
    )
    np.testing.assert_array_equal(backend.numpy(both.discount), backend.numpy(neg.discount))


@pytest.mark.parametrize("policy", ["muzero", "gumbel"])
def test_flag_matches_reference(backend, rng, policy):
    S, A, B, sims = 13, 4, 3, 30
    ns, R, L, V, pc, inv, gamma = random_turns(rng, S, A)
    D = np.full((S, A), gamma)
    a = backend.asarray
    roots = rng.integers(0, S, B)
    model = mcts.tabular_model(a(ns), a(R), a(L), a(V), gamma, player_changed=a(pc), invalid_actions=a(inv))
    step = ref.tabular_step(ns, R, D, L, V, None, inv, player_changed=pc)
    g = rng.gumbel(size=(B, A))
    if policy == "muzero":
        out = mcts.muzero_policy(a(roots), model, sims, dirichlet_fraction=0.0, seed=0)
    else:
        out = mcts.gumbel_muzero_policy(a(roots), model, sims, gumbel=a(g), max_num_considered_actions=4, seed=0)
    for b, s in enumerate(roots):
        kw = {} if policy == "muzero" else dict(policy="gumbel", gumbel=g[b], M=4)
        r = ref.search(step, L[s], float(V[s]), inv[s], int(s), sims, **kw)
        np.testing.assert_array_equal(backend.numpy(out.visit_counts)[b], r["visit_counts"], err_msg=f"tree {b}")
        np.testing.assert_allclose(backend.numpy(out.value)[b], r["value"], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(backend.numpy(out.action_weights)[b], r["weights"], rtol=1e-9, atol=1e-12)


def test_callback_flag_equals_tabular_flag(backend, dtype, rng):
    S, A, B, sims = 9, 3, 5, 20
    ns, R, L, V, pc, inv, gamma = random_turns(rng, S, A)
    a = backend.asarray
    nsd, Rd, Ld, Vd, pcd = a(ns), a(R.astype(dtype)), a(L.astype(dtype)), a(V.astype(dtype)), a(pc)
    roots = a(rng.integers(0, S, B))

    def recurrent_fn(emb, act):
        s2 = nsd[emb, act]
        d = Rd[emb, act] * 0 + dtype.type(gamma)
        return mcts.RecurrentOutput(Rd[emb, act], d, Ld[s2], Vd[s2], s2, None, pcd[emb, act])

    o1 = mcts.muzero_policy(mcts.Root(Ld[roots], Vd[roots], roots), recurrent_fn, sims, dirichlet_fraction=0.0, seed=0)
    o2 = mcts.muzero_policy(
        roots, mcts.tabular_model(nsd, Rd, Ld, Vd, gamma, player_changed=pcd), sims, dirichlet_fraction=0.0, seed=0
    )
    np.testing.assert_array_equal(backend.numpy(o1.visit_counts), backend.numpy(o2.visit_counts))
    np.testing.assert_allclose(backend.numpy(o1.tree.discount), backend.numpy(o2.tree.discount))
    np.testing.assert_allclose(backend.numpy(o1.value), backend.numpy(o2.value), **tol(dtype))


def test_expand_player_changed_stores_signed_discount(backend):
    a = backend.asarray
    xp = np
    if backend.name == "cuda":
        import cupy as xp
    tree = mcts.init_root(mcts.new_tree(2, 2, 4, xp=xp), a(np.zeros((2, 2))), a([0.0, 0.0]))
    leaf = mcts.expand(
        tree,
        a([0, 0]),
        a([1, 1]),
        a([0.0, 0.0]),
        a([0.9, 0.9]),
        a(np.zeros((2, 2))),
        a([1.0, 1.0]),
        player_changed=a([True, False]),
    )
    mcts.backup(tree, leaf)
    np.testing.assert_allclose(backend.numpy(tree.discount)[:, 1], [-0.9, 0.9])
    np.testing.assert_allclose(backend.numpy(tree.value_sum)[:, 0], [-0.9, 0.9])


def test_player_changed_bad_input():
    ns, pc, R, L, V = turns_model(np.float64)
    with pytest.raises(ValueError, match="player_changed"):
        mcts.tabular_model(ns, R, L, V, player_changed=pc[:, :1])
    with pytest.raises(TypeError, match="player_changed"):
        mcts.tabular_model(ns, R, L, V, player_changed=pc.astype(float))

    def bad_fn(emb, act):
        B = act.shape[0]
        return (np.zeros(B), np.ones(B), np.zeros((B, 2)), np.zeros(B), None, None, np.zeros((B, 2), bool))

    with pytest.raises(ValueError, match="player_changed"):
        mcts.muzero_policy(mcts.Root(np.zeros((3, 2)), np.zeros(3)), bad_fn, 2, seed=0)
