"""Batched MCTS: known-answer trees, the plain-Python mctx-semantics reference, gridworld vs
value iteration, masks, batch independence, subtree reuse, noise, on every backend."""

import _mcts_ref as ref
import numpy as np
import pytest
from conftest import tol

from pygenmod import mcts


def random_model(rng, S, A, *, terminal_frac=0.0, invalid_frac=0.0, gamma=0.9, dtype=np.float64):
    ns = rng.integers(0, S, (S, A))
    R = rng.standard_normal((S, A))
    L = rng.standard_normal((S, A)) * 1.5
    V = rng.standard_normal(S)
    D = np.full((S, A), gamma)
    term = rng.random(S) < terminal_frac if terminal_frac else None
    inv = None
    if invalid_frac:
        inv = rng.random((S, A)) < invalid_frac
        inv[np.arange(S), rng.integers(0, A, S)] = False  # at least one valid action
    return dict(
        ns=ns, R=R.astype(dtype), L=L.astype(dtype), V=V.astype(dtype), D=D.astype(dtype), terminal=term, invalid=inv
    )


def xp_for(backend):
    if backend.name == "cuda":
        import cupy

        return cupy
    return np


def to_model(m, backend):
    a = backend.asarray
    return mcts.tabular_model(
        a(m["ns"]),
        a(m["R"]),
        a(m["L"]),
        a(m["V"]),
        a(m["D"]),
        terminal=None if m["terminal"] is None else a(m["terminal"]),
        invalid_actions=None if m["invalid"] is None else a(m["invalid"]),
    )


def callback_of(m, backend, roots):
    """(Root, recurrent_fn, root invalid mask) of random_model m as a callback model."""
    ns, R, D, L, V, inv = (backend.asarray(m[k]) for k in ("ns", "R", "D", "L", "V", "invalid"))

    def recurrent_fn(emb, act):
        s2 = ns[emb, act]
        return mcts.RecurrentOutput(R[emb, act], D[emb, act], L[s2], V[s2], s2, inv[s2])

    r = backend.asarray(roots)
    return mcts.Root(L[r], V[r], r), recurrent_fn, inv[r]


def reference(m, roots, sims, **kw):
    step = ref.tabular_step(
        m["ns"],
        m["R"].astype(np.float64),
        m["D"].astype(np.float64),
        m["L"].astype(np.float64),
        m["V"].astype(np.float64),
        m["terminal"],
        m["invalid"],
    )
    outs = []
    gumbel_all = kw.pop("gumbel_all", None)
    for b, s in enumerate(roots):
        inv = np.zeros(m["L"].shape[1], bool) if m["invalid"] is None else m["invalid"][s]
        g = None if gumbel_all is None else gumbel_all[b]
        outs.append(ref.search(step, m["L"][s].astype(np.float64), float(m["V"][s]), inv, int(s), sims, gumbel=g, **kw))
    return outs


# ----------------------------------------------------------------------------- known answers
def two_arm_model(dtype):
    """Root s0; action 0 -> s1 with reward 1, action 1 -> s2 with reward 0. Prior at s0:
    [0.25, 0.75]; s1, s2 loop on themselves with reward 0; every value 0; discount 1."""
    ns = np.array([[1, 2], [1, 1], [2, 2]])
    R = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]], dtype)
    L = np.array([[0.0, np.log(3.0)], [0.0, 0.0], [0.0, 0.0]], dtype)
    return ns, R, L, np.zeros(3, dtype)


def test_known_answer_muzero(backend, dtype):
    # By hand from PUCT (pb_c = 1.25 + log((N + 19653) / 19652), prior [0.25, 0.75]):
    # sim 1: N=1, nothing visited -> scores 0.25c, 0.75c -> action 1 (node 1, value 0).
    # sim 2: N=2, Q(1)=0 normalises to 0 -> 0.354c vs 0.530c -> action 1 again, then the
    #        unvisited uniform node 1 picks action 0 (lowest index among ties) -> node 2.
    # sim 3: N=3 -> sqrt3*c*0.25/1 == sqrt3*c*0.75/3: an exact tie -> action 0 (node 3,
    #        reward 1): root value sum 1.
    # sim 4: N=4, root value 1/4, Q = [1, 0] -> min-max [0, 1] -> 1 + 0.25c > 0 + 0.5c
    #        -> action 0, then node 3 expands its action 0 (reward 0): G = 1 at the root.
    # Root visits [2, 2], root value (0 + 0 + 0 + 1 + 1) / 5 = 0.4.
    ns, R, L, V = two_arm_model(dtype)
    model = mcts.tabular_model(backend.asarray(ns), backend.asarray(R), backend.asarray(L), backend.asarray(V), 1.0)
    out = mcts.muzero_policy(backend.asarray([0]), model, 4, dirichlet_fraction=0.0, temperature=0.0, seed=0)
    np.testing.assert_array_equal(backend.numpy(out.visit_counts), [[2, 2]])
    np.testing.assert_allclose(backend.numpy(out.value), [0.4], **tol(dtype))
    np.testing.assert_allclose(backend.numpy(out.action_weights), [[0.5, 0.5]])
    assert int(backend.numpy(out.action)[0]) == 0  # temperature 0: lowest index among ties
    t = out.tree
    np.testing.assert_array_equal(backend.numpy(t.parent)[0], [-1, 0, 1, 0, 3])
    np.testing.assert_array_equal(backend.numpy(t.action)[0], [-1, 1, 0, 0, 0])
    np.testing.assert_array_equal(backend.numpy(t.visits)[0], [5, 2, 1, 2, 1])
    np.testing.assert_allclose(
        backend.numpy(t.value_sum)[0], [2, 0, 0, 0, 0], **tol(dtype)
    )  # edge rewards sit on the edges


def test_known_answer_gumbel(backend, dtype):
    # 2 simulations, gumbel fixed to 0, 2 considered actions: the halving schedule is [0, 0].
    # sim 1: completed Q all equal -> 0; score = logits - max -> action 1 (node 1, Q=0).
    # sim 2: only action 0 still has 0 visits -> action 0 (node 2, Q = 1 + 0 = 1).
    # Final: completed Q rescaled [1, 0] * (50 + 1) * 0.1 = [5.1, 0];
    # score [log(1/3) + 5.1, 0] -> action 0; weights softmax([log .25 + 5.1, log .75]).
    ns, R, L, V = two_arm_model(dtype)
    model = mcts.tabular_model(backend.asarray(ns), backend.asarray(R), backend.asarray(L), backend.asarray(V), 1.0)
    out = mcts.gumbel_muzero_policy(
        backend.asarray([0]),
        model,
        2,
        gumbel=backend.asarray(np.zeros((1, 2), dtype)),
        max_num_considered_actions=2,
        seed=0,
    )
    np.testing.assert_array_equal(backend.numpy(out.visit_counts), [[1, 1]])
    assert int(backend.numpy(out.action)[0]) == 0
    w = np.array([0.25 * np.exp(5.1), 0.75])
    np.testing.assert_allclose(backend.numpy(out.action_weights)[0], w / w.sum(), **tol(dtype))
    np.testing.assert_array_equal(backend.numpy(out.tree.action)[0, :3], [-1, 1, 0])


def test_considered_visits_table_matches_mctx_schedule():
    # mctx seq_halving.get_sequence_of_considered_visits(4, 16) by hand: log2max = 2;
    # 4 actions get int(16 / 8) = 2 rounds, then 2 actions get int(16 / 4) = 4 rounds.
    t = mcts.considered_visits_table(4, 16)
    assert t.shape == (5, 16)
    np.testing.assert_array_equal(t[4], [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5])
    np.testing.assert_array_equal(t[1], np.arange(16))
    # 3 actions: log2max = 2, int(16 / 6) = 2 rounds of 3, then 2 actions for int(16 / 4) = 4 rounds
    np.testing.assert_array_equal(t[3], [0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6])
    np.testing.assert_array_equal(t[2], [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7])


# ----------------------------------------------------------------------------- vs the reference
@pytest.mark.parametrize("policy", ["muzero", "gumbel"])
@pytest.mark.parametrize("S,A,B,sims", [(13, 5, 4, 24), (7, 3, 3, 40), (29, 2, 2, 9), (5, 1, 2, 6)])
def test_tabular_matches_reference(backend, rng, policy, S, A, B, sims):
    m = random_model(rng, S, A, terminal_frac=0.15, invalid_frac=0.25)
    roots = rng.integers(0, S, B)
    if m["terminal"] is not None:
        m["terminal"][roots] = False
    model = to_model(m, backend)
    if policy == "muzero":
        out = mcts.muzero_policy(backend.asarray(roots), model, sims, dirichlet_fraction=0.0, seed=0)
        refs = reference(m, roots, sims)
    else:
        g = rng.gumbel(size=(B, A))
        out = mcts.gumbel_muzero_policy(
            backend.asarray(roots), model, sims, gumbel=backend.asarray(g), max_num_considered_actions=4, seed=0
        )
        refs = reference(m, roots, sims, policy="gumbel", gumbel_all=g, M=4)
    counts = backend.numpy(out.visit_counts)
    for b, r in enumerate(refs):
        np.testing.assert_array_equal(counts[b], r["visit_counts"], err_msg=f"tree {b}")
        np.testing.assert_allclose(backend.numpy(out.value)[b], r["value"], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(backend.numpy(out.action_weights)[b], r["weights"], rtol=1e-9, atol=1e-12)
        if policy == "gumbel":
            assert int(backend.numpy(out.action)[b]) == r["action"]


@pytest.mark.parametrize("step", ["fused", "composed"])
@pytest.mark.parametrize("policy", ["muzero", "gumbel"])
def test_callback_path_equals_tabular_path(backend, dtype, rng, policy, step, monkeypatch):
    """The callback path on the backend's fused step, and on the three kernels composed (the
    step of backends without a fused one: CUDA), equals the tabular search."""
    if step == "composed":
        monkeypatch.setattr(mcts, "_step", mcts._composed_step)
    S, A, B, sims = 17, 4, 5, 30
    m = random_model(rng, S, A, invalid_frac=0.3, dtype=dtype)
    roots = rng.integers(0, S, B)
    ns, R, L, V, inv = (backend.asarray(m[k]) for k in ("ns", "R", "L", "V", "invalid"))
    calls = []

    def recurrent_fn(emb, act):
        calls.append(1)
        s2 = ns[emb, act]
        d = R[emb, act] * 0 + dtype.type(0.9)
        return mcts.RecurrentOutput(R[emb, act], d, L[s2], V[s2], s2, inv[s2])

    kw = (
        dict(seed=0, dirichlet_fraction=0.0)
        if policy == "muzero"
        else dict(seed=0, gumbel=backend.asarray(rng.gumbel(size=(B, A)).astype(dtype)))
    )
    root = mcts.Root(L[backend.asarray(roots)], V[backend.asarray(roots)], backend.asarray(roots))
    a = mcts.search(root, recurrent_fn, sims, policy=policy, invalid_actions=inv[backend.asarray(roots)], **kw)
    b = mcts.search(backend.asarray(roots), to_model(m, backend), sims, policy=policy, **kw)
    assert len(calls) == sims
    np.testing.assert_array_equal(backend.numpy(a.visit_counts), backend.numpy(b.visit_counts))
    np.testing.assert_allclose(backend.numpy(a.value), backend.numpy(b.value), **tol(dtype))
    np.testing.assert_array_equal(backend.numpy(a.tree.embeddings), backend.numpy(b.tree.state))


@pytest.mark.parametrize("step", ["fused", "composed"])
@pytest.mark.parametrize("kind", ["float rows", "int from float", "objects", "strided rows"])
def test_callback_embeddings_are_the_nodes_states(backend, rng, kind, step, monkeypatch):
    """Embeddings of any trailing shape and dtype (copied as rows by the fused step; object arrays
    by array ops): recurrent_fn receives the state of the node it expands, a leaf stores the
    next_embedding (cast to the root embedding's dtype), and the arrays handed to recurrent_fn
    are fresh, not overwritten by later simulations."""
    if step == "composed":
        monkeypatch.setattr(mcts, "_step", mcts._composed_step)
    if kind == "objects" and backend.name == "cuda":
        pytest.skip("object embeddings are host arrays")
    S, A, B, sims = 13, 3, 6, 20
    m = random_model(rng, S, A)
    ns, R, L, V = (backend.asarray(m[k]) for k in ("ns", "R", "L", "V"))
    roots = rng.integers(0, S, B)

    def encode(s):  # state s -> (B, 2, 3) rows [s, s + 1, ...] (or Python tuples)
        s = backend.numpy(s)
        if kind == "objects":
            out = np.empty(len(s), object)
            out[:] = [(int(v), "s") for v in s]
            return out
        rows = s[:, None, None] + np.arange(6).reshape(2, 3)
        return backend.asarray(rows.astype(np.int32 if kind == "int from float" else np.float64))

    def decode(e):
        e = backend.numpy(e)
        return np.array([t[0] for t in e]) if kind == "objects" else e[:, 0, 0].astype(np.int64)

    seen = []

    def recurrent_fn(emb, act):
        seen.append((emb, backend.numpy(emb).copy()))
        s = backend.asarray(decode(emb))
        s2 = ns[s, act]
        nxt = encode(s2)
        if kind == "int from float":
            nxt = backend.asarray(backend.numpy(nxt).astype(np.float64) + 0.25)  # cast back to int32
        return R[s, act], R[s, act] * 0 + 0.9, L[s2], V[s2], nxt

    root_emb = encode(roots)
    if kind == "int from float":
        root_emb = backend.asarray(backend.numpy(root_emb).astype(np.int32))
    root = mcts.Root(L[backend.asarray(roots)], V[backend.asarray(roots)], root_emb)
    if kind == "strided rows":  # a tree whose embeddings are a non-contiguous view: moved by array ops
        xp = pytest.importorskip("cupy") if backend.name == "cuda" else np
        t0 = mcts.new_tree(B, A, sims + 1, np.float64, xp=xp)
        mcts.init_root(t0, root.prior_logits, root.value, embedding=root_emb)
        wide = xp.zeros((B, sims + 1, 2, 6), np.float64)
        wide[:, :, :, ::2] = t0.embeddings
        t0.embeddings = wide[:, :, :, ::2]
        a = mcts.search(None, recurrent_fn, sims, policy="muzero", seed=0, dirichlet_fraction=0.0, tree=t0)
    else:
        a = mcts.search(root, recurrent_fn, sims, policy="muzero", seed=0, dirichlet_fraction=0.0)
    b = mcts.search(backend.asarray(roots), to_model(m, backend), sims, policy="muzero", seed=0, dirichlet_fraction=0.0)
    np.testing.assert_array_equal(backend.numpy(a.visit_counts), backend.numpy(b.visit_counts))
    emb, state, n = backend.numpy(a.tree.embeddings), backend.numpy(b.tree.state), backend.numpy(a.tree.num_nodes)
    if kind != "objects":
        assert emb.dtype == backend.numpy(root_emb).dtype and emb.shape[2:] == (2, 3)
    for t in range(B):
        got = decode(emb[t, : n[t]])
        np.testing.assert_array_equal(got, state[t, : n[t]])
    for given, copy in seen:  # not overwritten by the later simulations' gathers
        np.testing.assert_array_equal(backend.numpy(given), copy)


def test_step_kernel_rejects_mismatched_embedding_rows(backend):
    """The fused step's embedding arguments are checked before any row is copied."""
    if backend.name == "cuda":
        pytest.skip("CUDA composes the step (no fused kernel)")
    tree = mcts.new_tree(2, 3, 8, dtype=np.float32)
    mcts.init_root(tree, np.zeros((2, 3), np.float32), np.zeros(2, np.float32))
    step = mcts._kernel(tree, "step")
    params, table = mcts._params("muzero")
    z, lg = np.zeros(2, np.float32), np.zeros((2, 3), np.float32)
    node, act, leaf = np.zeros(2, np.int32), np.zeros(2, np.int32), np.zeros(2, np.int32)
    emb = np.zeros((2, 8, 4), np.float32)
    before = tree.copy()
    for bad in (np.zeros((2, 5), np.float32), np.zeros((2, 4), np.float64), np.zeros((2, 8), np.float32)[:, ::2]):
        with pytest.raises(ValueError):
            step(tree.arrays(), params, table, node, act, z, z, lg, z, None, leaf, None, None, emb, bad, None)
    with pytest.raises(ValueError):  # the tree's embeddings must hold N = capacity rows per tree
        step(tree.arrays(), params, table, node, act, z, z, lg, z, None, leaf, None, None, emb[:, :5], z[:, None], None)
    with pytest.raises(ValueError):
        short = np.zeros((2, 5, 4), np.float32)
        step(tree.arrays(), params, table, node, act, z, z, lg, z, None, leaf, None, None, short, emb[:, 0], None)
    if backend.name == "cpu":  # the C++ kernel checks every argument before it runs
        np.testing.assert_array_equal(tree.visits, before.visits)


def test_backends_agree_with_noise(rng):
    import pygenmod

    if not pygenmod.backends()["numba"]["available"]:
        pytest.skip("numba unavailable")
    m = random_model(rng, 31, 6)
    roots = rng.integers(0, 31, 9)
    res = {}
    for name in ("cpu", "numba"):
        with pygenmod.use_backend(name):
            model = mcts.tabular_model(m["ns"], m["R"], m["L"], m["V"], m["D"])
            mu = mcts.muzero_policy(roots, model, 20, seed=7, dirichlet_fraction=0.4, dirichlet_alpha=0.3)
            gu = mcts.gumbel_muzero_policy(roots, model, 20, seed=7)
            res[name] = (mu, gu)
    for i in range(2):
        c, n = res["cpu"][i], res["numba"][i]
        np.testing.assert_array_equal(c.visit_counts, n.visit_counts)
        np.testing.assert_array_equal(c.action, n.action)
        np.testing.assert_allclose(c.tree.logits[:, 0], n.tree.logits[:, 0], rtol=1e-12)
        np.testing.assert_allclose(c.tree.gumbel, n.tree.gumbel, rtol=1e-12)


# ----------------------------------------------------------------------------- gridworld
@pytest.mark.parametrize("policy", ["muzero", "gumbel"])
def test_gridworld_picks_value_iteration_optimal_action(backend, policy):
    # Uniform prior; the leaf value is value iteration's V* blurred by N(0, 0.05) noise, so
    # the search must combine rewards, discounts and terminals over several steps to rank
    # actions whose Q* differ by ~0.1. (With leaf value 0 the search still matches V* on 8
    # of 9 states; from (1, 0) the east route passes the -1 trap and mean backups need far
    # more simulations: a known property of MuZero-style mean backups, see docs/mcts.md.)
    ns, R, terminal, cells = ref.gridworld_4x3()
    gamma = 0.9
    V, Q = ref.value_iteration(ns, R, terminal, gamma)
    S, A = ns.shape
    V_hat = V + np.random.default_rng(0).normal(0, 0.05, S)
    model = mcts.tabular_model(
        backend.asarray(ns),
        backend.asarray(R),
        backend.asarray(np.zeros((S, A))),
        backend.asarray(V_hat),
        gamma,
        terminal=backend.asarray(terminal),
    )
    starts = np.flatnonzero(~terminal)
    kw = dict(seed=0, dirichlet_fraction=0.0, temperature=0.0) if policy == "muzero" else dict(seed=0, gumbel_scale=0.0)
    out = mcts.search(backend.asarray(starts), model, 1000, policy=policy, **kw)
    for s, a in zip(starts, backend.numpy(out.action)):
        assert Q[s, a] >= Q[s].max() - 1e-9, (cells[s], a, Q[s])
    # without any value heuristic
    model0 = mcts.tabular_model(
        backend.asarray(ns),
        backend.asarray(R),
        backend.asarray(np.zeros((S, A))),
        backend.asarray(np.zeros(S)),
        gamma,
        terminal=backend.asarray(terminal),
    )
    out0 = mcts.search(backend.asarray(starts), model0, 500, policy=policy, **kw)
    good = [Q[s, a] >= Q[s].max() - 1e-9 for s, a in zip(starts, backend.numpy(out0.action))]
    assert sum(good) >= 8


# ----------------------------------------------------------------------------- masks
def assert_masks_respected(tree, m, backend):
    children = backend.numpy(tree.children)
    state = backend.numpy(tree.state)
    nn = backend.numpy(tree.num_nodes)
    for b in range(children.shape[0]):
        for n in range(nn[b]):
            s = state[b, n]
            for a in np.flatnonzero(children[b, n] >= 0):
                assert not m["invalid"][s, a], (b, n, a)
                if m["terminal"] is not None:
                    assert not m["terminal"][s], (b, n)


@pytest.mark.parametrize("policy", ["muzero", "gumbel"])
def test_masks_respected_at_every_depth(backend, rng, policy):
    m = random_model(rng, 11, 6, terminal_frac=0.2, invalid_frac=0.6)
    roots = np.flatnonzero(~m["terminal"])[:6]
    out = mcts.search(backend.asarray(roots), to_model(m, backend), 200, policy=policy, seed=3)
    depth_reached = backend.numpy(out.tree.num_nodes).max()
    assert depth_reached > 50
    assert_masks_respected(out.tree, m, backend)
    counts = backend.numpy(out.visit_counts)
    assert not (counts[m["invalid"][roots]] > 0).any()
    w = backend.numpy(out.action_weights)
    assert not (w[m["invalid"][roots]] > 0).any()
    assert not m["invalid"][roots, backend.numpy(out.action)].any()


# ----------------------------------------------------------------------------- batch independence
@pytest.mark.parametrize("policy", ["muzero", "gumbel"])
def test_batch_independence(backend, rng, policy):
    m = random_model(rng, 23, 5)
    model = to_model(m, backend)
    roots = rng.integers(0, 23, 6)
    other = roots.copy()
    other[1:] = rng.integers(0, 23, 5)
    kw = dict(seed=11, dirichlet_fraction=0.3) if policy == "muzero" else dict(seed=11)
    a = mcts.search(backend.asarray(roots), model, 40, policy=policy, **kw)
    b = mcts.search(backend.asarray(other), model, 40, policy=policy, **kw)
    c = mcts.search(backend.asarray(roots[:1]), model, 40, policy=policy, **kw)
    for out in (b, c):
        for f in mcts.TREE_FIELDS[:-2]:
            np.testing.assert_array_equal(
                backend.numpy(getattr(a.tree, f))[0], backend.numpy(getattr(out.tree, f))[0], err_msg=f
            )
        assert backend.numpy(a.action)[0] == backend.numpy(out.action)[0]


def test_batch_independence_callback(backend, rng):
    S, A = 19, 4
    m = random_model(rng, S, A)
    ns, R, L, V = (backend.asarray(m[k]) for k in ("ns", "R", "L", "V"))

    def make(perturb):
        def fn(emb, act):
            s2 = ns[emb, act]
            r = R[emb, act].copy()
            if perturb:
                r[1:] += 5.0  # other trees see different rewards
            return r, r * 0 + 0.9, L[s2], V[s2], s2

        return fn

    roots = backend.asarray(rng.integers(0, S, 4))
    root = mcts.Root(L[roots], V[roots], roots)
    a = mcts.muzero_policy(root, make(False), 25, seed=5)
    b = mcts.muzero_policy(root, make(True), 25, seed=5)
    np.testing.assert_array_equal(backend.numpy(a.tree.visits)[0], backend.numpy(b.tree.visits)[0])
    np.testing.assert_array_equal(backend.numpy(a.tree.value_sum)[0], backend.numpy(b.tree.value_sum)[0])
    assert not np.array_equal(backend.numpy(a.tree.value_sum)[1:], backend.numpy(b.tree.value_sum)[1:])


# ----------------------------------------------------------------------------- subtree reuse
def extract_subtree(tree, b, action, backend):
    """Reference re-rooting of tree b at the root's child `action` (plain Python)."""
    f = {k: backend.numpy(getattr(tree, k))[b] for k in mcts.TREE_FIELDS if k not in ("num_nodes", "gumbel")}
    r = f["children"][0, action]
    keep, order = {r}, [r]
    for i in range(r + 1, int(backend.numpy(tree.num_nodes)[b])):
        if f["parent"][i] in keep:
            keep.add(i)
            order.append(i)
    new = {old: j for j, old in enumerate(order)}
    out = {k: np.zeros_like(v) for k, v in f.items()}
    out["parent"][:] = -1
    out["action"][:] = -1
    out["children"][:] = -1
    for old, j in new.items():
        for k in ("visits", "value_sum", "raw_value", "reward", "discount", "state", "logits", "prior", "invalid"):
            out[k][j] = f[k][old]
        out["parent"][j] = -1 if old == r else new[f["parent"][old]]
        out["action"][j] = -1 if old == r else f["action"][old]
        out["children"][j] = [new[c] if c >= 0 else -1 for c in f["children"][old]]
    out["reward"][0], out["discount"][0] = 0, 1
    # advance recomputes the min-max bounds over the kept nodes (reward + discount * mean)
    n = len(order)
    q = out["reward"][:n] + out["discount"][:n] * out["value_sum"][:n] / out["visits"][:n]
    out["qbounds"][:] = [q.min(), q.max()]
    return out, len(order)


@pytest.mark.parametrize("policy", ["muzero", "gumbel"])
def test_advance_equals_extracted_subtree_and_fresh_search(backend, rng, policy):
    S, A, B = 15, 4, 3
    m = random_model(rng, S, A, invalid_frac=0.2)
    model = to_model(m, backend)
    roots = rng.integers(0, S, B)
    kw = (
        dict(seed=0, dirichlet_fraction=0.0)
        if policy == "muzero"
        else dict(seed=0, gumbel=backend.asarray(np.zeros((B, A))))
    )
    out = mcts.search(backend.asarray(roots), model, 40, policy=policy, capacity=90, **kw)
    acts = backend.numpy(out.visit_counts).argmax(-1)
    expected = [extract_subtree(out.tree, b, acts[b], backend) for b in range(B)]
    tree = mcts.advance(out.tree, backend.asarray(acts))
    for b, (fields, n) in enumerate(expected):
        assert int(backend.numpy(tree.num_nodes)[b]) == n
        for k, v in fields.items():
            got = backend.numpy(getattr(tree, k))[b]
            np.testing.assert_array_equal(got, v, err_msg=k)
    # a fresh tree seeded with the same statistics continues exactly like the advanced one
    seeded = mcts.new_tree(B, A, 90, xp=xp_for(backend))
    for b, (fields, n) in enumerate(expected):
        for k, v in fields.items():
            getattr(seeded, k)[b] = backend.asarray(v)
        seeded.num_nodes[b] = n
    c1 = mcts.search(None, model, 30, policy=policy, tree=tree, **kw)
    c2 = mcts.search(None, model, 30, policy=policy, tree=seeded, **kw)
    for k in mcts.TREE_FIELDS:
        np.testing.assert_array_equal(backend.numpy(getattr(c1.tree, k)), backend.numpy(getattr(c2.tree, k)), err_msg=k)
    np.testing.assert_array_equal(backend.numpy(c1.visit_counts), backend.numpy(c2.visit_counts))


def test_advance_callback_compacts_embeddings(backend, rng):
    S, A, B = 12, 3, 2
    m = random_model(rng, S, A)
    ns, R, L, V = (backend.asarray(m[k]) for k in ("ns", "R", "L", "V"))

    def fn(emb, act):
        s2 = ns[emb, act]
        return R[emb, act], R[emb, act] * 0 + 0.9, L[s2], V[s2], s2

    roots = backend.asarray(rng.integers(0, S, B))
    out = mcts.muzero_policy(mcts.Root(L[roots], V[roots], roots), fn, 20, capacity=40, seed=0)
    acts = backend.numpy(out.visit_counts).argmax(-1)
    tree = mcts.advance(out.tree, backend.asarray(acts))
    n = backend.numpy(tree.num_nodes).copy()
    emb = backend.numpy(tree.embeddings)
    for b in range(B):
        assert emb[b, 0] == m["ns"][backend.numpy(roots)[b], acts[b]]
        # every kept child's embedding is its parent's embedding stepped by its action
        par, act = backend.numpy(tree.parent)[b], backend.numpy(tree.action)[b]
        for i in range(1, n[b]):
            assert emb[b, i] == m["ns"][emb[b, par[i]], act[i]]
    more = mcts.muzero_policy(None, fn, 10, tree=tree, seed=0)
    assert (backend.numpy(more.tree.num_nodes) == n + 10).all()


# ----------------------------------------------------------------------------- ops composed
@pytest.mark.parametrize("policy", ["muzero", "gumbel"])
def test_select_expand_backup_compose_to_search(backend, rng, policy):
    S, A, B, sims = 13, 4, 3, 25
    m = random_model(rng, S, A)
    roots = rng.integers(0, S, B)
    g = rng.gumbel(size=(B, A))
    tree = mcts.new_tree(B, A, sims + 1, xp=xp_for(backend))
    mcts.init_root(tree, backend.asarray(m["L"][roots]), backend.asarray(m["V"][roots]), state=backend.asarray(roots))
    kw = {}
    if policy == "gumbel":
        tree.gumbel[...] = backend.asarray(g)
        kw = dict(policy="gumbel", num_simulations=sims, max_num_considered_actions=3)
    for _ in range(sims):
        node, action = mcts.select(tree, **kw)
        node_h, act_h = backend.numpy(node), backend.numpy(action)
        s = backend.numpy(tree.state)[np.arange(B), node_h]
        s2 = m["ns"][s, act_h]
        leaf = mcts.expand(
            tree,
            node,
            action,
            backend.asarray(m["R"][s, act_h]),
            backend.asarray(m["D"][s, act_h]),
            backend.asarray(m["L"][s2]),
            backend.asarray(m["V"][s2]),
            state=backend.asarray(s2),
        )
        mcts.backup(tree, leaf)
    if policy == "muzero":
        full = mcts.muzero_policy(backend.asarray(roots), to_model(m, backend), sims, dirichlet_fraction=0.0, seed=0)
    else:
        full = mcts.gumbel_muzero_policy(
            backend.asarray(roots),
            to_model(m, backend),
            sims,
            gumbel=backend.asarray(g),
            max_num_considered_actions=3,
            seed=0,
        )
    for k in (f for f in mcts.TREE_FIELDS if f != "gumbel"):
        x, y = backend.numpy(getattr(tree, k)), backend.numpy(getattr(full.tree, k))
        if x.dtype.kind == "f":  # the tabular model's prior is a NumPy softmax, expand's the kernel's
            np.testing.assert_allclose(x, y, rtol=1e-14, atol=1e-15, err_msg=k)
        else:
            np.testing.assert_array_equal(x, y, err_msg=k)


# ----------------------------------------------------------------------------- noise and acting
def test_dirichlet_and_gumbel_noise_statistics(backend):
    tree = mcts.new_tree(4000, 5, 2, xp=xp_for(backend))
    d = backend.numpy(mcts._noise(tree, "dirichlet_noise", 3, 0, 0.5))
    np.testing.assert_allclose(d.sum(-1), 1, rtol=1e-12)
    np.testing.assert_allclose(d.mean(0), 0.2, atol=0.01)
    # Dirichlet(0.5 * 1): Var = (1/5)(4/5) / (2.5 + 1)
    np.testing.assert_allclose(d.var(0), 0.2 * 0.8 / 3.5, rtol=0.1)
    g = backend.numpy(mcts._noise(tree, "gumbel_noise", 3, 0))
    np.testing.assert_allclose(g.mean(), np.euler_gamma, atol=0.03)
    np.testing.assert_allclose(g.var(), np.pi**2 / 6, rtol=0.05)


@pytest.mark.parametrize("alpha", [0.03, 0.3, 1.0, 3.0])
def test_noise_kernels_cpu_equal_numba(alpha):
    # Both use the shared transforms (rng::gamma_f64 / gumbel_f64 and their numba twins in
    # _numba/philox.py): equal to rounding, with the same accept / reject path.
    import pygenmod
    from pygenmod._dispatch import get_kernel

    if not pygenmod.backends()["numba"]["available"]:
        pytest.skip("numba unavailable")
    res = {}
    for name in ("cpu", "numba"):
        d = np.empty((37, 7))
        g = np.empty((37, 7))
        get_kernel("mcts", "dirichlet_noise", name)(2**40 + 3, 0, alpha, d)
        get_kernel("mcts", "gumbel_noise", name)(2**40 + 3, 0, g)
        res[name] = d, g
    np.testing.assert_allclose(res["cpu"][0], res["numba"][0], rtol=1e-11, atol=1e-300)
    np.testing.assert_allclose(res["cpu"][1], res["numba"][1], rtol=1e-12, atol=1e-13)


def test_temperature_sampling_frequencies(backend):
    from pygenmod._dispatch import get_kernel

    B = 20000
    w = np.tile([0.1, 0.0, 0.6, 0.3], (B, 1))
    out = np.empty(B, np.int64)
    if backend.name == "cuda":
        pytest.skip("host check of the sampling kernel")
    get_kernel("mcts", "sample_action", backend.name)(w, np.full(B, 2.0), 9, 0, out)
    p = np.sqrt([0.1, 0.0, 0.6, 0.3])
    np.testing.assert_allclose(np.bincount(out, minlength=4) / B, p / p.sum(), atol=0.015)
    get_kernel("mcts", "sample_action", backend.name)(w, np.zeros(B), 9, 0, out)
    assert (out == 2).all()


def test_grow_keeps_nodes_and_allows_more_simulations(rng):
    m = random_model(rng, 9, 3)
    model = mcts.tabular_model(m["ns"], m["R"], m["L"], m["V"], m["D"])
    out = mcts.muzero_policy(np.array([0, 1]), model, 10, seed=0)
    with pytest.raises(ValueError, match="capacity exceeded"):
        mcts.muzero_policy(None, model, 5, tree=out.tree, seed=0)
    big = out.tree.grow(30)
    assert big.capacity == 30
    np.testing.assert_array_equal(big.visits[:, :11], out.tree.visits)
    more = mcts.muzero_policy(None, model, 5, tree=big, dirichlet_fraction=0.0, seed=0)
    assert (more.tree.num_nodes == 16).all()


# ----------------------------------------------------------------------------- interop, edge sizes
def test_torch_model_gets_and_returns_tensors(rng):
    torch = pytest.importorskip("torch")
    S, A, B = 9, 3, 4
    m = random_model(rng, S, A)
    ns, R, L, V = (torch.from_numpy(m[k]) for k in ("ns", "R", "L", "V"))
    seen = []

    def fn(emb, act):
        seen.append((type(emb), type(act)))
        s2 = ns[emb, act]
        return R[emb, act], torch.full((len(act),), 0.9, dtype=torch.float64), L[s2], V[s2], s2

    roots = torch.from_numpy(rng.integers(0, S, B))
    out = mcts.muzero_policy(mcts.Root(L[roots], V[roots], roots), fn, 10, dirichlet_fraction=0.0, seed=0)
    assert all(e is torch.Tensor and a is torch.Tensor for e, a in seen)
    assert isinstance(out.action_weights, torch.Tensor) and isinstance(out.action, torch.Tensor)
    ref_out = mcts.muzero_policy(roots.numpy(), to_model(m, _host()), 10, dirichlet_fraction=0.0, seed=0)
    np.testing.assert_array_equal(out.visit_counts.numpy(), ref_out.visit_counts)


def _host():
    class H:
        name = "cpu"
        asarray = staticmethod(np.asarray)
        numpy = staticmethod(np.asarray)

    return H


def test_empty_batch_and_zero_simulations(backend):
    ns, R, L, V = two_arm_model(np.float64)
    model = mcts.tabular_model(backend.asarray(ns), backend.asarray(R), backend.asarray(L), backend.asarray(V), 0.9)
    for policy in ("muzero", "gumbel"):
        out = mcts.search(backend.asarray(np.zeros(0, np.int64)), model, 5, policy=policy, seed=0)
        assert backend.numpy(out.action_weights).shape == (0, 2)
        out = mcts.search(backend.asarray([0, 1]), model, 0, policy=policy, seed=0)
        np.testing.assert_array_equal(backend.numpy(out.visit_counts), 0)
        np.testing.assert_allclose(backend.numpy(out.action_weights).sum(-1), 1)


def test_float32_tree_close_to_float64(rng):
    m64 = random_model(rng, 40, 6)
    m32 = {
        k: (v.astype(np.float32) if isinstance(v, np.ndarray) and v.dtype == np.float64 else v) for k, v in m64.items()
    }
    roots = rng.integers(0, 40, 32)
    a = mcts.muzero_policy(roots, to_model(m64, _host()), 48, dirichlet_fraction=0.0, seed=0)
    b = mcts.muzero_policy(roots, to_model(m32, _host()), 48, dirichlet_fraction=0.0, seed=0)
    assert b.action_weights.dtype == np.float32
    same = (a.visit_counts == b.visit_counts).all(-1)
    assert same.mean() >= 0.9
    np.testing.assert_allclose(b.value[same], a.value[same], rtol=1e-4, atol=1e-5)


@pytest.mark.reliability
@pytest.mark.parametrize("where", ["recurrent_fn", "composed expand"])
def test_ctrl_c_in_a_callback_search_leaves_whole_simulations(rng, monkeypatch, where):
    """Ctrl-C during a callback search (in the user's recurrent_fn; or as the composed step's
    expand kernel returns, CUDA's path) leaves every new node backed up: with no terminal
    states each simulation adds one node and one root visit."""
    S, A, B = 13, 4, 3
    m = random_model(rng, S, A)
    ns, R, L, V = m["ns"], m["R"], m["L"], m["V"]
    roots = rng.integers(0, S, B)
    calls = [0]

    def recurrent_fn(emb, act):
        calls[0] += 1
        if where == "recurrent_fn" and calls[0] == 6:
            raise KeyboardInterrupt
        s2 = ns[emb, act]
        return R[emb, act], R[emb, act] * 0 + 0.9, L[s2], V[s2], s2

    root = mcts.Root(L[roots], V[roots], roots)
    tree = mcts.muzero_policy(root, recurrent_fn, 1, seed=0, dirichlet_fraction=0.0).tree.grow(16)
    if where == "composed expand":
        monkeypatch.setattr(mcts, "_step", mcts._composed_step)
        real = mcts._kernel
        expands = [0]

        def kernel(t, name):
            fn = real(t, name)
            if name != "expand":
                return fn

            def interrupted(*args):
                fn(*args)
                expands[0] += 1
                if expands[0] == 4:
                    raise KeyboardInterrupt

            return interrupted

        monkeypatch.setattr(mcts, "_kernel", kernel)
    with pytest.raises(KeyboardInterrupt):
        mcts.muzero_policy(root, recurrent_fn, 10, seed=0, dirichlet_fraction=0.0, tree=tree)
    assert (tree.num_nodes > 2).all()  # the search ran some simulations before the interrupt
    np.testing.assert_array_equal(tree.visits[:, 0], tree.num_nodes)


@pytest.mark.parametrize("node", [0, 1, np.int64(2), np.array([0, 1, 2])], ids=["0", "1", "np.int64", "per-tree"])
def test_child_visits_and_qvalues_of_a_node(node):
    """Tree.child_visits / qvalues against a loop over the tree's arrays, for one node index
    shared by every tree (the view path) and for one node per tree (the gather path)."""
    rng = np.random.default_rng(5)
    S, A, B = 6, 3, 3
    model = mcts.tabular_model(
        rng.integers(0, S, (S, A)), rng.standard_normal((S, A)), rng.standard_normal((S, A)), rng.standard_normal(S)
    )
    tree = mcts.muzero_policy(np.array([0, 1, 2]), model, 12, seed=3).tree
    nodes = np.broadcast_to(node, (B,))
    want_n = np.zeros((B, A), np.int32)
    want_q = np.zeros((B, A))
    for b in range(B):
        for a in range(A):
            c = tree.children[b, nodes[b], a]
            if c >= 0:
                want_n[b, a] = tree.visits[b, c]
                v = tree.value_sum[b, c] / max(tree.visits[b, c], 1)
                want_q[b, a] = tree.reward[b, c] + tree.discount[b, c] * v
    np.testing.assert_array_equal(tree.child_visits(node), want_n)
    np.testing.assert_array_equal(tree.qvalues(node), want_q)
