"""Reliability of pygenmod.mcts (issue 18: items 3, 7, 8, 10, 15, 17, 18), on every backend."""

import pickle

import numpy as np
import pytest

import pygenmod
from pygenmod import _mcts_fields, mcts

pytestmark = pytest.mark.reliability


def small_model(S=6, A=3, seed=0):
    rng = np.random.default_rng(seed)
    return (
        rng.integers(0, S, (S, A)),
        rng.standard_normal((S, A)),
        rng.standard_normal((S, A)),
        rng.standard_normal(S),
    )


def table_fn(ns, R, L, V, xp=np):
    """A callback model over the table; embeddings are the state indices."""

    def fn(emb, act):
        emb, act = np.asarray(emb), np.asarray(act)
        s2 = ns[emb, act]
        return (xp.asarray(R[emb, act]), xp.full(len(emb), 0.9), xp.asarray(L[s2]), xp.asarray(V[s2]), xp.asarray(s2))

    return fn


def callback_search(backend, B=2, sims=6, **kw):
    ns, R, L, V = small_model()
    roots = np.arange(B) % len(V)
    xp = np if backend.name != "cuda" else __import__("cupy")
    root = mcts.Root(backend.asarray(L[roots]), backend.asarray(V[roots]), backend.asarray(roots))
    return mcts.muzero_policy(root, table_fn(ns, R, L, V, xp), sims, capacity=64, **kw), (ns, R, L, V)


def snapshot(tree):
    return [
        np.array(pygenmod._arrays.to_native(a).get() if hasattr(a, "get") else a, copy=True)
        for a in tree.arrays() + (tree.embeddings,)
    ]


def assert_unchanged(tree, before):
    for a, b in zip(snapshot(tree), before):
        np.testing.assert_array_equal(a, b)


# -- item 3: the sequential-halving schedule is built for at most A considered actions
@pytest.mark.parametrize("M", [10**5, 2**40])
def test_gumbel_considered_actions_capped_at_num_actions(backend, M):
    ns, R, L, V = small_model(A=2)
    model = mcts.tabular_model(ns, R, L, V)
    roots = backend.asarray(np.array([0, 1]))
    params, table = mcts._params("gumbel", max_num_considered_actions=M, num_simulations=8, num_actions=2)
    assert params[_mcts_fields.P_MAX_CONSIDERED] == 2 and table.shape[0] == 3
    ref = mcts.gumbel_muzero_policy(roots, model, 8, max_num_considered_actions=2, seed=0)
    out = mcts.gumbel_muzero_policy(roots, model, 8, max_num_considered_actions=M, seed=0)  # seconds before: minutes
    for a, b in zip(out[:4], ref[:4]):
        np.testing.assert_array_equal(backend.numpy(a), backend.numpy(b))


# -- item 7: every recurrent_fn output is checked before the tree changes (no root noise here:
# mixing it into the root prior is the first step of every search)
def test_bad_next_embedding_leaves_tree_untouched(backend):
    out, (ns, R, L, V) = callback_search(backend)
    tree = out.tree
    before = snapshot(tree)
    good = table_fn(ns, R, L, V, np if backend.name != "cuda" else __import__("cupy"))

    def short_embedding(emb, act):
        r, d, lg, v, e = good(emb, act)
        return r, d, lg, v, e[:1]  # wrong batch size

    with pytest.raises(ValueError, match="recurrent_fn: next_embedding has shape"):
        mcts.muzero_policy(None, short_embedding, 3, tree=tree, dirichlet_fraction=0.0)
    assert_unchanged(tree, before)

    def bad_changed(emb, act):
        return good(emb, act) + (None, np.zeros(5, bool))  # player_changed of the wrong shape

    with pytest.raises(ValueError, match="player_changed"):
        mcts.muzero_policy(None, bad_changed, 3, tree=tree, dirichlet_fraction=0.0)
    assert_unchanged(tree, before)


# -- item 8: indices are range-checked before the int32 cast; advance is all-or-nothing
def test_index_casts_checked(backend):
    out, _ = callback_search(backend)
    tree = out.tree
    before = snapshot(tree)
    with pytest.raises(ValueError, match="actions"):
        mcts.advance(tree, backend.asarray(np.array([2**32 + 1, 2**32 + 1])))  # == action 1 after a cast
    with pytest.raises(ValueError, match="node"):
        mcts.backup(tree, backend.asarray(np.array([2**32, 0])))
    with pytest.raises(ValueError, match="node"):
        mcts.expand(
            tree,
            backend.asarray(np.array([2**32, 2**32])),
            [0, 0],
            [0.0, 0.0],
            [1.0, 1.0],
            np.zeros((2, 3)),
            [0.0, 0.0],
        )
    with pytest.raises(ValueError, match="action"):
        mcts.expand(
            tree, [0, 0], backend.asarray(np.array([-(2**40), 0])), [0.0, 0.0], [1.0, 1.0], np.zeros((2, 3)), [0.0, 0.0]
        )
    assert_unchanged(tree, before)


def test_advance_is_atomic(backend):
    out, _ = callback_search(backend)
    tree = out.tree
    counts = backend.numpy(out.visit_counts)
    a0 = int(np.argmax(counts[0]))  # expanded in tree 0
    for bad in (-1, 3, 2**31):
        before = snapshot(tree)
        with pytest.raises(ValueError, match="advance: tree 1"):
            mcts.advance(tree, [a0, bad])
        assert_unchanged(tree, before)
    unexpanded = np.flatnonzero(counts[1] == 0)
    if unexpanded.size:
        before = snapshot(tree)
        with pytest.raises(ValueError, match="advance: tree 1: the root's child"):
            mcts.advance(tree, [a0, int(unexpanded[0])])
        assert_unchanged(tree, before)


# -- item 10: values that overflow the dtype are an error, not NaN action weights
@pytest.mark.parametrize("policy", ["muzero", "gumbel"])
def test_overflowing_values_rejected(backend, dtype, policy):
    S, A = 4, 3
    big = np.finfo(dtype).max / 2
    model = mcts.tabular_model(
        np.zeros((S, A), np.int64), np.full((S, A), big, dtype), np.zeros((S, A), dtype), np.full(S, big, dtype), 1.0
    )
    roots = backend.asarray(np.array([0, 1]))
    with pytest.raises(ValueError, match="overflowed"):
        mcts.search(roots, model, 8, policy=policy)

    def huge(emb, act):
        n = len(np.asarray(emb))
        return (
            np.full(n, big, dtype),
            np.ones(n, dtype),
            np.zeros((n, A), dtype),
            np.full(n, big, dtype),
            np.asarray(emb),
        )

    root = mcts.Root(np.zeros((2, A), dtype), np.full(2, big, dtype), np.array([0, 1]))
    if backend.name == "cuda":
        pytest.skip("the callback variant above runs on host arrays")
    with pytest.raises(ValueError, match="overflowed"):
        mcts.search(root, huge, 8, policy=policy)


# -- item 17: a vanishing Dirichlet alpha is one-hot noise, identical on every backend
def test_tiny_dirichlet_alpha_same_on_every_backend(backend):
    from pygenmod._dispatch import get_kernel

    if backend.name == "cuda":
        pytest.skip("compared on host arrays")
    ns, R, L, V = small_model()
    model = mcts.tabular_model(ns, R, L, V)
    roots = np.array([0, 1, 2, 3])
    noise = np.empty((4, 3))
    get_kernel("mcts", "dirichlet_noise", backend.name)(7, 0, 1e-300, noise)
    assert ((noise == 0) | (noise == 1)).all() and (noise.sum(1) == 1).all()
    out = mcts.muzero_policy(roots, model, 8, dirichlet_alpha=1e-300, dirichlet_fraction=1.0, seed=7)
    assert np.isfinite(out.action_weights).all()
    with pygenmod.use_backend("cpu"):
        ref = mcts.muzero_policy(roots, model, 8, dirichlet_alpha=1e-300, dirichlet_fraction=1.0, seed=7)
    ref_noise = np.empty((4, 3))
    get_kernel("mcts", "dirichlet_noise", "cpu")(7, 0, 1e-300, ref_noise)
    np.testing.assert_array_equal(noise, ref_noise)
    for a, b in zip(out[:4], ref[:4]):
        np.testing.assert_array_equal(a, b)


# -- item 18: trees and outputs of a callback search pickle
def test_callback_search_output_pickles(backend):
    if backend.name == "cuda":
        pytest.skip("pickling device arrays is CuPy's business")
    out, _ = callback_search(backend)
    again = pickle.loads(pickle.dumps(out))
    for a, b in zip(again.tree.arrays(), out.tree.arrays()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(again.tree.embeddings, out.tree.embeddings)
    np.testing.assert_array_equal(again.action_weights, out.action_weights)
    torch = pytest.importorskip("torch")
    ns, R, L, V = small_model()
    root = mcts.Root(torch.as_tensor(L[:2]), torch.as_tensor(V[:2]), torch.arange(2))

    def fn(emb, act):
        r, d, lg, v, e = table_fn(ns, R, L, V)(emb.numpy(), act.numpy())
        return tuple(torch.as_tensor(x) for x in (r, d, lg, v, e))

    t_out = mcts.muzero_policy(root, fn, 4)
    t_again = pickle.loads(pickle.dumps(t_out))
    cont = mcts.muzero_policy(None, fn, 2, tree=t_again.tree.grow(16))  # the unpickled tree still works
    assert int(cont.visit_counts.sum()) == int(t_out.visit_counts.sum()) + 2 * 2  # 2 sims x 2 trees


# -- item 15: node counts beyond int32 are a ValueError naming the argument
@pytest.mark.parametrize("n", [2**31, 2**64])
def test_huge_num_simulations_rejected(backend, n):
    ns, R, L, V = small_model()
    model = mcts.tabular_model(ns, R, L, V)
    with pytest.raises(ValueError, match="num_simulations"):
        mcts.muzero_policy(backend.asarray(np.array([0])), model, n)
    with pytest.raises(ValueError, match="capacity"):
        mcts.new_tree(1, 3, n)
    with pytest.raises(ValueError, match="num_simulations"):
        mcts.gumbel_muzero_policy(backend.asarray(np.array([0])), model, n)
