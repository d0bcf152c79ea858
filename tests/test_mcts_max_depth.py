"""mctx's max_depth: a simulation descends at most max_depth edges; an already expanded child
reached at the cutoff is evaluated again (mctx's update_tree_node: one more visit, its mean
value replaced by the new value). Hand-computed chains, the plain-Python reference, callback
== tabular, on every backend."""

import numpy as np
import pytest
from conftest import tol
from test_mcts_search import callback_of, random_model, reference, to_model, xp_for

from pygenmod import mcts


def chain(backend, dtype):
    """A = 1: s0 -> s1 (reward 0), s1 -> s2 (reward 1), s2 -> s2 (reward 0); every value 0."""
    a = backend.asarray
    ns = np.array([[1], [2], [2]])
    R = np.array([[0.0], [1.0], [0.0]], dtype)
    return mcts.tabular_model(a(ns), a(R), a(np.zeros((3, 1), dtype)), a(np.zeros(3, dtype)), 1.0)


@pytest.mark.parametrize("max_depth,nodes,root_sum", [(1, 2, 0.0), (2, 3, 2.0), (None, 4, 2.0)])
def test_known_answer_chain(backend, dtype, max_depth, nodes, root_sum):
    # 3 simulations. max_depth 1: n1 expanded, then re-evaluated twice (value 0 each time):
    #   root sum 0. max_depth 2: sim 2 expands n2 (reward 1 on the edge n1 -> n2: n1 sum 1,
    #   root sum 1); sim 3 stops at n2 and re-evaluates it: n1 gets 1 + 0 again, root sum 2,
    #   n2 visits 2. Unlimited: sim 3 expands n3 instead (same sums, 4 nodes).
    out = mcts.muzero_policy(
        backend.asarray(np.array([0])), chain(backend, dtype), 3, dirichlet_fraction=0.0, max_depth=max_depth, seed=0
    )
    t = out.tree
    assert int(backend.numpy(t.num_nodes)[0]) == nodes
    np.testing.assert_allclose(backend.numpy(t.value_sum)[0, 0], root_sum, **tol(dtype))
    assert int(backend.numpy(t.visits)[0, 0]) == 4
    if max_depth == 2:
        np.testing.assert_array_equal(backend.numpy(t.visits)[0, :3], [4, 3, 2])


@pytest.mark.parametrize("policy", ["muzero", "gumbel"])
@pytest.mark.parametrize("max_depth", [1, 2, 3])
def test_tabular_matches_reference(backend, rng, policy, max_depth):
    S, A, B, sims = 11, 3, 3, 30
    m = random_model(rng, S, A, terminal_frac=0.15, invalid_frac=0.25)
    roots = rng.integers(0, S, B)
    m["terminal"][roots] = False
    model = to_model(m, backend)
    if policy == "muzero":
        out = mcts.muzero_policy(
            backend.asarray(roots), model, sims, dirichlet_fraction=0.0, max_depth=max_depth, seed=0
        )
        refs = reference(m, roots, sims, max_depth=max_depth)
    else:
        g = rng.gumbel(size=(B, A))
        out = mcts.gumbel_muzero_policy(
            backend.asarray(roots),
            model,
            sims,
            gumbel=backend.asarray(g),
            max_num_considered_actions=2,
            max_depth=max_depth,
            seed=0,
        )
        refs = reference(m, roots, sims, policy="gumbel", gumbel_all=g, M=2, max_depth=max_depth)
    counts = backend.numpy(out.visit_counts)
    depth_ok = True
    parent = backend.numpy(out.tree.parent)
    for b, r in enumerate(refs):
        np.testing.assert_array_equal(counts[b], r["visit_counts"], err_msg=f"tree {b}")
        np.testing.assert_allclose(backend.numpy(out.value)[b], r["value"], rtol=1e-9, atol=1e-9)
        for n in range(int(backend.numpy(out.tree.num_nodes)[b])):
            d, c = 0, n
            while parent[b, c] >= 0:
                c, d = parent[b, c], d + 1
            depth_ok &= d <= max_depth
    assert depth_ok


@pytest.mark.parametrize("policy", ["muzero", "gumbel"])
@pytest.mark.parametrize("step", ["fused", "composed"])
def test_callback_path_equals_tabular_path(backend, dtype, rng, policy, step, monkeypatch):
    if step == "composed":  # the step of backends without a fused one (CUDA)
        monkeypatch.setattr(mcts, "_step", mcts._composed_step)
    S, A, B, sims = 13, 3, 4, 25
    m = random_model(rng, S, A, invalid_frac=0.3, dtype=dtype)
    roots = rng.integers(0, S, B)
    root, recurrent_fn, root_inv = callback_of(m, backend, roots)
    r = backend.asarray(roots)
    kw = (
        dict(seed=0, dirichlet_fraction=0.0)
        if policy == "muzero"
        else dict(seed=0, gumbel=backend.asarray(rng.gumbel(size=(B, A)).astype(dtype)))
    )
    a = mcts.search(root, recurrent_fn, sims, policy=policy, invalid_actions=root_inv, max_depth=2, **kw)
    b = mcts.search(r, to_model(m, backend), sims, policy=policy, max_depth=2, **kw)
    np.testing.assert_array_equal(backend.numpy(a.visit_counts), backend.numpy(b.visit_counts))
    np.testing.assert_allclose(backend.numpy(a.value), backend.numpy(b.value), **tol(dtype))
    np.testing.assert_array_equal(backend.numpy(a.tree.embeddings), backend.numpy(b.tree.state))


def test_select_stops_at_max_depth_and_expand_reevaluates(backend, dtype):
    xp = xp_for(backend)
    tree = mcts.new_tree(1, 2, 4, dtype, xp=xp)
    z = backend.asarray(np.zeros((1, 2), dtype))
    f = lambda v: backend.asarray(np.array([v], dtype))  # noqa: E731
    i = lambda v: backend.asarray(np.array([v], np.int32))  # noqa: E731
    mcts.init_root(tree, backend.asarray(np.array([[5.0, 0.0]], dtype)), f(0.0))
    mcts.backup(tree, mcts.expand(tree, i(0), i(0), f(0.0), f(1.0), z, f(1.0)))
    node, action = mcts.select(tree, max_depth=1)
    assert (int(backend.numpy(node)[0]), int(backend.numpy(action)[0])) == (0, 0)  # child 1 exists
    node, action = mcts.select(tree)
    assert (int(backend.numpy(node)[0]), int(backend.numpy(action)[0])) == (1, 0)
    leaf = mcts.expand(tree, i(0), i(-2 - 0), f(0.5), f(1.0), z, f(3.0))
    assert int(backend.numpy(leaf)[0]) == 1
    np.testing.assert_allclose(backend.numpy(tree.value_sum)[0, 1], 6.0, **tol(dtype))  # 3 * 2 visits
    np.testing.assert_allclose(backend.numpy(tree.reward)[0, 1], 0.5, **tol(dtype))
    with pytest.raises(ValueError):
        mcts.expand(tree, i(0), i(-2 - 1), f(0.0), f(1.0), z, f(0.0))  # child 1 never expanded
    with pytest.raises(ValueError, match="max_depth"):
        mcts.select(tree, max_depth=0)
