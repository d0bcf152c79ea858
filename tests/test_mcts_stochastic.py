"""Native MCTS over stochastic tabular models (P[S, A, S'] sampled per expansion with the
package's Philox RNG, stream (4 << 56) | tree, element = simulation): one-hot P equals the
deterministic search, draw frequencies match P, cpu == numba, batch independence, seeds,
pygenmod.mdp problems, bad input."""

import numpy as np
import pytest

from pygenmod import mcts


def random_stochastic(rng, S, A, dtype=np.float64, gamma=0.9):
    P = rng.dirichlet(np.full(S, 0.3), (S, A))
    P[rng.random((S, A, S)) < 0.3] = 0.0  # some zero-probability states
    P[..., 0] += 1e-3
    P /= P.sum(-1, keepdims=True)
    R = rng.standard_normal((S, A)).astype(dtype)
    L = (rng.standard_normal((S, A)) * 1.5).astype(dtype)
    V = rng.standard_normal(S).astype(dtype)
    return P, R, L, V, gamma


def _trees_equal(backend, t1, t2):
    for f in mcts.TREE_FIELDS:
        np.testing.assert_array_equal(backend.numpy(getattr(t1, f)), backend.numpy(getattr(t2, f)), err_msg=f)


@pytest.mark.parametrize("policy", ["muzero", "gumbel"])
def test_one_hot_transitions_equal_deterministic_search(backend, dtype, rng, policy):
    S, A, B, sims = 13, 4, 5, 30
    ns = rng.integers(0, S, (S, A))
    P = np.zeros((S, A, S))
    P[np.arange(S)[:, None], np.arange(A)[None], ns] = 1.0
    _, R, L, V, gamma = random_stochastic(rng, S, A, dtype)
    inv = rng.random((S, A)) < 0.2
    inv[np.arange(S), rng.integers(0, A, S)] = False
    a = backend.asarray
    det = mcts.tabular_model(a(ns), a(R), a(L), a(V), gamma, invalid_actions=a(inv))
    sto = mcts.stochastic_tabular_model(a(P), a(R), a(L), a(V), gamma, invalid_actions=a(inv))
    roots = a(rng.integers(0, S, B))
    kw = dict(dirichlet_fraction=0.0) if policy == "muzero" else dict(gumbel=a(rng.gumbel(size=(B, A)).astype(dtype)))
    o1 = mcts.search(roots, det, sims, policy=policy, seed=7, **kw)
    o2 = mcts.search(roots, sto, sims, policy=policy, seed=7, **kw)
    _trees_equal(backend, o1.tree, o2.tree)
    np.testing.assert_array_equal(backend.numpy(o1.action), backend.numpy(o2.action))


def test_draw_frequencies_match_transition_probabilities(backend):
    # One action and the same row p from every state: the search builds a chain whose node k
    # holds the draw of simulation k - 1, so the chains of B trees give B * sims iid draws.
    from scipy import stats

    S, B, sims = 7, 48, 150
    p = np.array([0.3, 0.0, 0.05, 0.25, 0.1, 0.3, 0.0])
    P = np.broadcast_to(p, (S, 1, S)).copy()
    a = backend.asarray
    m = mcts.stochastic_tabular_model(a(P), a(np.zeros((S, 1))), a(np.zeros((S, 1))), a(np.zeros(S)), 0.9)
    out = mcts.muzero_policy(a(np.zeros(B, np.int64)), m, sims, seed=11, dirichlet_fraction=0.0)
    st = backend.numpy(out.tree.state)[:, 1:]
    par = backend.numpy(out.tree.parent)[:, 1:]
    np.testing.assert_array_equal(par, np.broadcast_to(np.arange(sims), (B, sims)))  # a chain
    counts = np.bincount(st.ravel(), minlength=S)
    assert counts[p == 0].sum() == 0  # zero-probability states are never drawn
    nz = p > 0
    chi = stats.chisquare(counts[nz], counts.sum() * p[nz])
    assert chi.pvalue > 1e-3, (counts, chi)


def test_cpu_equals_numba_and_seeds(rng):
    import pygenmod

    if not pygenmod.backends()["numba"]["available"]:
        pytest.skip("numba unavailable")
    S, A, B, sims = 11, 3, 6, 40
    P, R, L, V, gamma = random_stochastic(rng, S, A)
    m = mcts.stochastic_tabular_model(P, R, L, V, gamma)
    roots = rng.integers(0, S, B)
    outs = {}
    for name in ("cpu", "numba"):
        with pygenmod.use_backend(name):
            outs[name] = [mcts.muzero_policy(roots, m, sims, seed=s, dirichlet_fraction=0.25) for s in (3, 4)]
            outs[name].append(mcts.gumbel_muzero_policy(roots, m, sims, seed=3, max_num_considered_actions=3))
    for o1, o2 in zip(outs["cpu"], outs["numba"]):
        for f in mcts.TREE_FIELDS:
            x, y = getattr(o1.tree, f), getattr(o2.tree, f)
            if x.dtype.kind == "f":
                np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12, err_msg=f)
            else:
                np.testing.assert_array_equal(x, y, err_msg=f)
    # the same seed repeats the tree, another seed draws other states
    again = mcts.muzero_policy(roots, m, sims, seed=3, dirichlet_fraction=0.25)
    np.testing.assert_array_equal(again.tree.state, outs["cpu"][0].tree.state)
    assert not np.array_equal(outs["cpu"][0].tree.state, outs["cpu"][1].tree.state)


def test_batch_independence(backend, rng):
    S, A, sims = 9, 3, 25
    P, R, L, V, gamma = random_stochastic(rng, S, A)
    a = backend.asarray
    m = mcts.stochastic_tabular_model(a(P), a(R), a(L), a(V), gamma)
    r1 = np.array([2, 5, 7, 1])
    r2 = np.array([2, 0, 3, 1])
    o1 = mcts.muzero_policy(a(r1), m, sims, seed=5, dirichlet_fraction=0.0)
    o2 = mcts.muzero_policy(a(r2), m, sims, seed=5, dirichlet_fraction=0.0)
    for b in (0, 3):
        for f in ("state", "visits", "parent", "value_sum"):
            np.testing.assert_array_equal(
                backend.numpy(getattr(o1.tree, f))[b], backend.numpy(getattr(o2.tree, f))[b], err_msg=f
            )


def test_mdp_model_converter(rng):
    from pygenmod import mdp

    S, A = 6, 3
    P, R, _, _, gamma = random_stochastic(rng, S, A)
    sol = mdp.value_iteration(P, R, gamma)
    V = np.asarray(sol.V).reshape(-1)
    m = mcts.mdp_model(P, R, gamma, value=V)
    ref = mcts.stochastic_tabular_model(P, R, np.zeros((S, A)), V, gamma)
    for f in ("next_state", "reward", "discount", "prior", "value", "invalid", "cdf"):
        np.testing.assert_array_equal(getattr(m, f), getattr(ref, f), err_msg=f)
    out = mcts.muzero_policy(np.arange(S), m, 20, seed=1)
    assert out.visit_counts.sum(-1).tolist() == [20] * S


def test_bad_transitions():
    S, A = 4, 2
    P = np.full((S, A, S), 1 / S)
    R, L, V = np.zeros((S, A)), np.zeros((S, A)), np.zeros(S)
    bad = P.copy()
    bad[1, 1, 0] += 0.1
    with pytest.raises(ValueError, match="sum to 1"):
        mcts.stochastic_tabular_model(bad, R, L, V)
    neg = P.copy()
    neg[0, 0, :2] = [-0.25, 0.75]
    with pytest.raises(ValueError, match=">= 0"):
        mcts.stochastic_tabular_model(neg, R, L, V)
    nan = P.copy()
    nan[2, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        mcts.stochastic_tabular_model(nan, R, L, V)
    with pytest.raises(ValueError, match="transition"):
        mcts.stochastic_tabular_model(P[:, :, :3], R, L, V)
    with pytest.raises(ValueError, match="transition"):
        mcts.stochastic_tabular_model(P[:, :1], R, L, V)
    with pytest.raises(ValueError, match="transition"):
        mcts.stochastic_tabular_model(P[0], R, L, V)


def test_kernel_boundary_rejects_bad_cdf():
    from pygenmod._dispatch import kernel

    S, A = 4, 2
    P = np.full((S, A, S), 1 / S)
    m = mcts.stochastic_tabular_model(P, np.zeros((S, A)), np.zeros((S, A)), np.zeros(S))
    tree = mcts.new_tree(2, A, 5)
    mcts.init_root(tree, np.zeros((2, A)), np.zeros(2), state=np.array([0, 1]))
    params, table = mcts._params("muzero")
    run = kernel("mcts", "search_tabular", False)[1]
    args = (m.next_state, m.reward, m.discount, m.logits, m.prior, m.value, m.invalid)
    with pytest.raises(ValueError, match="cdf"):
        run(tree.arrays(), params, table, 2, *args, m.cdf[:, :, :3].copy(), 0)
    with pytest.raises(ValueError, match="cdf"):
        run(tree.arrays(), params, table, 2, *args, m.cdf.astype(np.float32), 0)


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    S=st.integers(1, 8),
    A=st.integers(1, 4),
    B=st.integers(1, 3),
    sims=st.integers(0, 25),
    policy=st.sampled_from(["muzero", "gumbel"]),
    seed=st.integers(0, 2**63),
    data_seed=st.integers(0, 2**31),
)
def test_fuzz_cpu_equals_numba_and_draws_are_supported(S, A, B, sims, policy, seed, data_seed):
    import pygenmod

    if not pygenmod.backends()["numba"]["available"]:
        pytest.skip("numba unavailable")
    rng = np.random.default_rng(data_seed)
    P, R, L, V, gamma = random_stochastic(rng, S, A)
    roots = rng.integers(0, S, B)
    outs = []
    for name in ("cpu", "numba"):
        with pygenmod.use_backend(name):
            m = mcts.stochastic_tabular_model(P, R, L, V, gamma)
            outs.append(mcts.search(roots, m, sims, policy=policy, seed=seed))
    t1, t2 = outs[0].tree, outs[1].tree
    for f in mcts.TREE_FIELDS:
        np.testing.assert_allclose(getattr(t1, f), getattr(t2, f), rtol=1e-12, atol=1e-12, err_msg=f)
    for b in range(B):
        for n in range(1, int(t1.num_nodes[b])):
            p, a = t1.parent[b, n], t1.action[b, n]
            assert P[t1.state[b, p], a, t1.state[b, n]] > 0
