"""Bad input -> clear exceptions, and a hypothesis fuzz of the kernels against the reference."""

import _mcts_ref as ref
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pygenmod import mcts
from pygenmod._dispatch import get_kernel


def small_model(S=6, A=3, seed=0):
    rng = np.random.default_rng(seed)
    return (
        rng.integers(0, S, (S, A)),
        rng.standard_normal((S, A)),
        rng.standard_normal((S, A)),
        rng.standard_normal(S),
    )


def table_fn(ns, R, L, V):
    def fn(emb, act):
        s2 = ns[emb, act]
        return R[emb, act], np.full(len(emb), 0.9), L[s2], V[s2], s2

    return fn


def test_tabular_model_rejects_bad_tables():
    ns, R, L, V = small_model()
    with pytest.raises(ValueError, match="next_state"):
        mcts.tabular_model(ns[:, :2], R, L, V)
    with pytest.raises(ValueError, match="next_state"):
        mcts.tabular_model(ns + 10, R, L, V)
    with pytest.raises(ValueError, match="reward"):
        mcts.tabular_model(ns, R[:3], L, V)
    with pytest.raises(ValueError, match="value"):
        mcts.tabular_model(ns, R, L, V[:2])
    with pytest.raises(ValueError, match="prior_logits"):
        mcts.tabular_model(ns, R, np.where(L > 0, np.nan, L), V)
    with pytest.raises(ValueError, match="discount"):
        mcts.tabular_model(ns, R, L, V, 1.5)
    with pytest.raises(TypeError, match="next_state"):
        mcts.tabular_model(ns.astype(float), R, L, V)
    inv = np.zeros_like(L, bool)
    inv[2] = True
    with pytest.raises(ValueError, match="all actions are invalid in non-terminal state 2"):
        mcts.tabular_model(ns, R, L, V, invalid_actions=inv)
    term = np.zeros(len(V), bool)
    term[2] = True
    mcts.tabular_model(ns, R, L, V, invalid_actions=inv, terminal=term)  # fine when terminal


def test_root_errors():
    ns, R, L, V = small_model()
    fn = table_fn(ns, R, L, V)
    roots = np.array([0, 1])
    with pytest.raises(ValueError, match="prior_logits"):
        mcts.muzero_policy(mcts.Root(L[0], V[:1], roots[:1]), fn, 4, seed=0)
    with pytest.raises(ValueError, match="value"):
        mcts.muzero_policy(mcts.Root(L[roots], V[:3], roots), fn, 4, seed=0)
    bad = L[roots].copy()
    bad[1, 0] = np.nan
    with pytest.raises(ValueError, match="prior_logits: contains NaN"):
        mcts.muzero_policy(mcts.Root(bad, V[roots], roots), fn, 4, seed=0)
    with pytest.raises(TypeError, match="prior_logits"):
        mcts.muzero_policy(mcts.Root(np.zeros((2, 3), np.int64), V[roots], roots), fn, 4, seed=0)
    with pytest.raises(ValueError, match="all actions are invalid at the root of tree 1"):
        mcts.muzero_policy(
            mcts.Root(L[roots], V[roots], roots), fn, 4, invalid_actions=np.array([[0, 1, 0], [1, 1, 1]], bool), seed=0
        )
    with pytest.raises(TypeError, match="recurrent_fn"):
        mcts.muzero_policy(mcts.Root(L[roots], V[roots], roots), "model", 4, seed=0)
    with pytest.raises(ValueError, match="root states"):
        mcts.muzero_policy(np.array([0, 99]), mcts.tabular_model(ns, R, L, V), 4, seed=0)
    with pytest.raises(ValueError, match="seed"):
        mcts.muzero_policy(roots, mcts.tabular_model(ns, R, L, V), 4, seed=-1)
    with pytest.raises(ValueError, match="dirichlet_fraction"):
        mcts.muzero_policy(roots, mcts.tabular_model(ns, R, L, V), 4, dirichlet_fraction=2.0, seed=0)
    with pytest.raises(ValueError, match="temperature"):
        mcts.muzero_policy(roots, mcts.tabular_model(ns, R, L, V), 4, temperature=-1.0, seed=0)
    with pytest.raises(ValueError, match="gumbel"):
        mcts.gumbel_muzero_policy(roots, mcts.tabular_model(ns, R, L, V), 4, gumbel=np.zeros((2, 2)), seed=0)
    with pytest.raises(ValueError, match="policy"):
        mcts.search(roots, mcts.tabular_model(ns, R, L, V), 4, policy="alphago", seed=0)


@pytest.mark.parametrize("step", ["fused", "composed"])
def test_recurrent_fn_output_errors(step, monkeypatch):
    if step == "composed":
        monkeypatch.setattr(mcts, "_step", mcts._composed_step)
    ns, R, L, V = small_model()
    roots = np.array([0, 1])
    root = mcts.Root(L[roots], V[roots], roots)

    def nan_logits(emb, act):
        out = list(table_fn(ns, R, L, V)(emb, act))
        out[2] = out[2].copy()
        out[2][0, 1] = np.nan
        return tuple(out)

    with pytest.raises(ValueError, match="recurrent_fn: prior_logits contains NaN"):
        mcts.muzero_policy(root, nan_logits, 3, seed=0)
    with pytest.raises(TypeError, match="recurrent_fn: must return"):
        mcts.muzero_policy(root, lambda e, a: (1, 2, 3), 3, seed=0)
    with pytest.raises(ValueError, match="recurrent_fn: value has shape"):
        mcts.muzero_policy(root, lambda e, a: table_fn(ns, R, L, V)(e, a)[:3] + (V[:3], e), 3, seed=0)
    with pytest.raises(ValueError, match="recurrent_fn: reward contains NaN"):
        mcts.muzero_policy(root, lambda e, a: (np.full(2, np.nan),) + table_fn(ns, R, L, V)(e, a)[1:], 3, seed=0)
    with pytest.raises(ValueError, match="invalid_actions"):
        mcts.muzero_policy(root, lambda e, a: table_fn(ns, R, L, V)(e, a) + (np.zeros((2, 7), bool),), 3, seed=0)


def test_capacity_errors():
    ns, R, L, V = small_model()
    model = mcts.tabular_model(ns, R, L, V)
    with pytest.raises(ValueError, match="capacity exceeded"):
        mcts.muzero_policy(np.array([0]), model, 10, capacity=5, seed=0)
    tree = mcts.new_tree(1, 3, 2)
    mcts.init_root(tree, L[:1], V[:1], state=[0])
    leaf = mcts.expand(tree, [0], [1], [0.0], [1.0], L[:1], V[:1])
    mcts.backup(tree, leaf)
    with pytest.raises(ValueError, match="capacity exceeded"):
        mcts.expand(tree, [0], [2], [0.0], [1.0], L[:1], V[:1])
    with pytest.raises(ValueError, match="already expanded"):
        mcts.expand(tree.grow(4), [0], [1], [0.0], [1.0], L[:1], V[:1])
    with pytest.raises(ValueError, match="out of range"):
        mcts.expand(tree.grow(4), [0], [3], [0.0], [1.0], L[:1], V[:1])
    with pytest.raises(ValueError, match="node"):
        mcts.backup(tree, [7])
    with pytest.raises(ValueError, match="shrink"):
        tree.grow(1)


def test_advance_errors():
    ns, R, L, V = small_model()
    out = mcts.muzero_policy(np.array([0, 1]), mcts.tabular_model(ns, R, L, V), 2, dirichlet_fraction=0.0, seed=0)
    unvisited = (out.visit_counts == 0).argmax(-1)
    with pytest.raises(ValueError, match="never expanded"):
        mcts.advance(out.tree, unvisited)
    with pytest.raises(ValueError, match="actions"):
        mcts.advance(out.tree, [0])
    with pytest.raises(ValueError, match="out of range"):
        mcts.advance(out.tree, [5, 5])
    with pytest.raises(ValueError, match="no root"):
        mcts.select(mcts.new_tree(2, 3, 4))


def test_kernel_boundary_rejects_bad_arrays():
    tree = mcts.new_tree(2, 3, 4)
    mcts.init_root(tree, np.zeros((2, 3)), np.zeros(2))
    params, table = mcts._params("muzero")
    sel = get_kernel("mcts", "select", "cpu")
    with pytest.raises(ValueError, match="node"):
        sel(tree.arrays(), params, table, np.empty(3, np.int32), np.empty(2, np.int32))
    with pytest.raises(ValueError, match="wrong dtype"):
        sel(tree.arrays(), params, table, np.empty(2, np.int64), np.empty(2, np.int32))
    arrays = list(tree.arrays())
    arrays[mcts.TREE_FIELDS.index("value_sum")] = arrays[mcts.TREE_FIELDS.index("value_sum")].astype(np.float32)
    with pytest.raises(ValueError, match="value_sum"):
        sel(tuple(arrays), params, table, np.empty(2, np.int32), np.empty(2, np.int32))
    with pytest.raises(ValueError, match="15 arrays"):
        sel(tree.arrays()[:5], params, table, np.empty(2, np.int32), np.empty(2, np.int32))
    with pytest.raises(ValueError, match="params"):
        sel(tree.arrays(), params[:3], table, np.empty(2, np.int32), np.empty(2, np.int32))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    S=st.integers(1, 9),
    A=st.integers(1, 5),
    B=st.integers(1, 3),
    sims=st.integers(0, 30),
    policy=st.sampled_from(["muzero", "gumbel"]),
    M=st.integers(1, 6),
    seed=st.integers(0, 2**31),
    backend=st.sampled_from(["cpu", "numba"]),
    masks=st.booleans(),
)
def test_fuzz_against_reference(S, A, B, sims, policy, M, seed, backend, masks):
    import pygenmod

    rng = np.random.default_rng(seed)
    ns = rng.integers(0, S, (S, A))
    R, L = rng.standard_normal((S, A)), rng.standard_normal((S, A))
    V, D = rng.standard_normal(S), rng.choice([0.5, 1.0, -0.9], (S, A))
    inv = term = None
    if masks:
        inv = rng.random((S, A)) < 0.4
        inv[np.arange(S), rng.integers(0, A, S)] = False
        term = rng.random(S) < 0.2
    roots = rng.integers(0, S, B)
    if term is not None:
        term[roots] = False
    g = rng.gumbel(size=(B, A))
    with pygenmod.use_backend(backend):
        model = mcts.tabular_model(ns, R, L, V, D, terminal=term, invalid_actions=inv)
        if policy == "muzero":
            out = mcts.muzero_policy(roots, model, sims, dirichlet_fraction=0.0, seed=0)
        else:
            out = mcts.gumbel_muzero_policy(roots, model, sims, gumbel=g, max_num_considered_actions=M, seed=0)
    step = ref.tabular_step(ns, R, D, L, V, term, inv)
    for b, s in enumerate(roots):
        r = ref.search(
            step,
            L[s],
            V[s],
            np.zeros(A, bool) if inv is None else inv[s],
            int(s),
            sims,
            policy=policy,
            gumbel=g[b],
            M=M,
        )
        np.testing.assert_array_equal(out.visit_counts[b], r["visit_counts"])
        np.testing.assert_allclose(out.value[b], r["value"], rtol=1e-9, atol=1e-9)
        if policy == "gumbel" and sims:
            assert out.action[b] == r["action"]
