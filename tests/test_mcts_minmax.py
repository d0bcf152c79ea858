"""MuZero's per-tree min-max normalisation of Q (q_normalization="tree", Schrittwieser et al.
2020, Appendix B) next to mctx's per-node one ("node", the default): a hand-computed tree
where the two pick different actions, the stored bounds, advance, and the plain-Python
reference on random models, on every backend."""

import numpy as np
import pytest
from conftest import tol
from test_mcts_search import callback_of, random_model, reference, to_model, xp_for

from pygenmod import mcts


def hand_tree(backend, dtype):
    """A=2, uniform priors, root value 0. Built with expand/backup:
    1. root --a1--> n1: reward 0, discount 0.01, value 0   (q(n1) = 0; root mean 0)
    2. n1 --a0--> n2: reward 100, discount 1, value 0      (q(n2) = 100; n1 mean 50,
       q(n1) = 0.5; root gets 0.01 * 100 = 1: mean 1/3)
    3. root --a0--> n3: reward 0, discount 1, value 0.45   (q(n3) = 0.45; root mean 1.45/4)
    Tree bounds (every node's reward + discount * mean on every backed-up path): [0, 100].
    """
    xp = xp_for(backend)
    tree = mcts.new_tree(1, 2, 8, dtype, xp=xp)
    z = backend.asarray(np.zeros((1, 2), dtype))
    mcts.init_root(tree, z, backend.asarray(np.zeros(1, dtype)))
    a = lambda *v: backend.asarray(np.array(v))  # noqa: E731
    f = lambda *v: backend.asarray(np.array(v, dtype))  # noqa: E731
    for node, act, r, d, v in ((0, 1, 0.0, 0.01, 0.0), (1, 0, 100.0, 1.0, 0.0), (0, 0, 0.0, 1.0, 0.45)):
        leaf = mcts.expand(tree, a(node), a(act), f(r), f(d), z, f(v))
        mcts.backup(tree, leaf)
    return tree


def test_known_answer_node_and_tree_pick_different_actions(backend, dtype):
    tree = hand_tree(backend, dtype)
    np.testing.assert_allclose(backend.numpy(tree.qbounds)[0], [0.0, 100.0], **tol(dtype))
    # At the root: N = 4, scale = sqrt(4) * (1.25 + log((4 + 19652 + 1) / 19652)) = 2.500509,
    # prior 0.5 each; exploration a0 (1 visit): 0.625127, a1 (2 visits): 0.416752.
    # "node": lo = min(root mean 0.3625, 0.45, 0.5), hi = 0.5:
    #   a0: (0.45 - 0.3625) / 0.1375 + 0.625127 = 1.261491, a1: 1 + 0.416752 = 1.416752 -> a1,
    #   then at n1 (mean 50, child q 100 -> 1 + 0.442) a0 -> n2, whose first edge is (2, 0).
    # "tree": a0: 0.45 / 100 + 0.625127 = 0.629627, a1: 0.5 / 100 + 0.416752 = 0.421752 -> a0,
    #   n3 is unexpanded below: (3, 0).
    node, action = mcts.select(tree)
    assert (int(backend.numpy(node)[0]), int(backend.numpy(action)[0])) == (2, 0)
    node, action = mcts.select(tree, q_normalization="tree")
    assert (int(backend.numpy(node)[0]), int(backend.numpy(action)[0])) == (3, 0)


def test_bounds_after_advance_are_recomputed_over_the_kept_subtree(backend, dtype):
    tree = hand_tree(backend, dtype)
    mcts.advance(tree, backend.asarray(np.array([1])))
    # kept: n1 (new root: reward 0, discount 1, mean 50) and n2 (q 100)
    np.testing.assert_allclose(backend.numpy(tree.qbounds)[0], [50.0, 100.0], **tol(dtype))
    mcts.init_root(tree, backend.asarray(np.zeros((1, 2), dtype)), backend.asarray(np.zeros(1, dtype)))
    qb = backend.numpy(tree.qbounds)[0]
    assert qb[0] == np.inf and qb[1] == -np.inf


def test_equal_bounds_leave_q_unchanged(backend, dtype):
    # root value 2, one child (reward 0, discount 1, value 2): root mean 2, bounds [2, 2].
    # N = 2: scale = sqrt(2) * 1.250102 = 1.767911, prior 0.5 each.
    # "tree": max == min, Q unchanged: a0 = 2 + 1.767911 * 0.5 / 2 = 2.441978 > a1 = 0.883956
    #   -> a0, first edge below it (1, 0).
    # "node": (2 - 2) / 1e-8 = 0: a0 = 0.441978 < a1 = 0.883956 -> (0, 1).
    xp = xp_for(backend)
    tree = mcts.new_tree(1, 2, 4, dtype, xp=xp)
    z = backend.asarray(np.zeros((1, 2), dtype))
    two = backend.asarray(np.full(1, 2.0, dtype))
    mcts.init_root(tree, z, two)
    i0 = backend.asarray(np.zeros(1, np.int32))
    leaf = mcts.expand(tree, i0, i0, backend.asarray(np.zeros(1, dtype)), backend.asarray(np.ones(1, dtype)), z, two)
    mcts.backup(tree, leaf)
    np.testing.assert_allclose(backend.numpy(tree.qbounds)[0], [2.0, 2.0], **tol(dtype))
    node, action = mcts.select(tree, q_normalization="tree")
    assert (int(backend.numpy(node)[0]), int(backend.numpy(action)[0])) == (1, 0)
    node, action = mcts.select(tree)
    assert (int(backend.numpy(node)[0]), int(backend.numpy(action)[0])) == (0, 1)


@pytest.mark.parametrize("S,A,B,sims", [(13, 5, 4, 24), (7, 3, 3, 40), (29, 2, 2, 9), (5, 1, 2, 6)])
def test_tabular_tree_normalisation_matches_reference(backend, rng, S, A, B, sims):
    m = random_model(rng, S, A, terminal_frac=0.15, invalid_frac=0.25)
    roots = rng.integers(0, S, B)
    if m["terminal"] is not None:
        m["terminal"][roots] = False
    out = mcts.muzero_policy(
        backend.asarray(roots), to_model(m, backend), sims, dirichlet_fraction=0.0, q_normalization="tree", seed=0
    )
    refs = reference(m, roots, sims, q_normalization="tree")
    counts = backend.numpy(out.visit_counts)
    qb = backend.numpy(out.tree.qbounds)
    for b, r in enumerate(refs):
        np.testing.assert_array_equal(counts[b], r["visit_counts"], err_msg=f"tree {b}")
        np.testing.assert_allclose(backend.numpy(out.value)[b], r["value"], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(qb[b], r["bounds"], rtol=1e-9, atol=1e-12)


def test_node_and_tree_differ_on_some_random_model(rng):
    # the option is not a no-op: over a few random models the visit counts differ somewhere
    differ = False
    for _ in range(5):
        m = random_model(rng, 11, 4)
        roots = rng.integers(0, 11, 4)
        a = mcts.muzero_policy(roots, to_model(m, _Np), 40, dirichlet_fraction=0.0, seed=0)
        b = mcts.muzero_policy(roots, to_model(m, _Np), 40, dirichlet_fraction=0.0, q_normalization="tree", seed=0)
        differ |= not np.array_equal(a.visit_counts, b.visit_counts)
    assert differ


class _Np:
    asarray = staticmethod(np.asarray)


def test_callback_path_equals_tabular_path_tree_normalisation(backend, dtype, rng):
    S, A, B, sims = 17, 4, 5, 30
    m = random_model(rng, S, A, invalid_frac=0.3, dtype=dtype)
    roots = rng.integers(0, S, B)
    root, recurrent_fn, root_inv = callback_of(m, backend, roots)
    r = backend.asarray(roots)
    a = mcts.search(
        root, recurrent_fn, sims, invalid_actions=root_inv, dirichlet_fraction=0.0, q_normalization="tree", seed=0
    )
    b = mcts.search(r, to_model(m, backend), sims, dirichlet_fraction=0.0, q_normalization="tree", seed=0)
    np.testing.assert_array_equal(backend.numpy(a.visit_counts), backend.numpy(b.visit_counts))
    np.testing.assert_allclose(backend.numpy(a.tree.qbounds), backend.numpy(b.tree.qbounds), **tol(dtype))


def test_bad_q_normalization():
    m = random_model(np.random.default_rng(0), 3, 2)
    with pytest.raises(ValueError, match="q_normalization"):
        mcts.muzero_policy(np.array([0]), to_model(m, _Np), 2, q_normalization="global", seed=0)
    tree = mcts.new_tree(1, 2, 4)
    mcts.init_root(tree, np.zeros((1, 2)), np.zeros(1))
    with pytest.raises(ValueError, match="q_normalization"):
        mcts.select(tree, q_normalization="Tree")
    with pytest.raises(ValueError, match="q_normalization"):
        mcts.select(tree, policy="gumbel", q_normalization="tree")
