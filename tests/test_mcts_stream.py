"""The ``stream=`` offset of the MCTS searches (docs/conventions.md#randomness): tree b draws
as tree ``stream + b``, so searching a slice [a, b) of a batch with ``stream=a`` reproduces
rows a:b of the whole-batch search bitwise (Dirichlet and Gumbel noise, sampled transitions,
the temperature draw), on every backend. This is what pygenmod.dask relies on."""

import numpy as np
import pytest

from pygenmod import mcts

SLICES = [(0, 11), (0, 1), (3, 7), (10, 11), (5, 5)]


def _model(rng, backend, dtype, stochastic):
    S, A = 9, 4
    R = rng.standard_normal((S, A)).astype(dtype)
    L = rng.standard_normal((S, A)).astype(dtype)
    V = rng.standard_normal(S).astype(dtype)
    a = backend.asarray
    if stochastic:
        P = rng.dirichlet(np.full(S, 0.5), (S, A))
        return mcts.stochastic_tabular_model(a(P), a(R), a(L), a(V), 0.9)
    return mcts.tabular_model(a(rng.integers(0, S, (S, A))), a(R), a(L), a(V), 0.9)


def _rows(backend, out, lo, hi):
    fields = [out.action, out.action_weights, out.visit_counts, out.value]
    fields += [getattr(out.tree, f) for f in mcts.TREE_FIELDS]
    return [backend.numpy(x)[lo:hi] for x in fields]


@pytest.mark.parametrize("stochastic", [False, True])
@pytest.mark.parametrize("policy", ["muzero", "gumbel", "uct"])
def test_slice_with_stream_equals_rows_of_the_whole_batch(backend, dtype, rng, policy, stochastic):
    B, sims = 11, 24
    m = _model(rng, backend, dtype, stochastic)
    roots = rng.integers(0, 9, B)
    kw = {
        "muzero": dict(temperature=1.0, dirichlet_fraction=0.5),
        "gumbel": dict(max_num_considered_actions=3),
        "uct": dict(temperature=1.0, rollout_depth=4),
    }[policy]
    whole = mcts.search(backend.asarray(roots), m, sims, policy=policy, seed=123, stream=40, capacity=sims + 1, **kw)
    for lo, hi in SLICES:
        part = mcts.search(
            backend.asarray(roots[lo:hi]), m, sims, policy=policy, seed=123, stream=40 + lo, capacity=sims + 1, **kw
        )
        for i, (x, y) in enumerate(zip(_rows(backend, whole, lo, hi), _rows(backend, part, 0, hi - lo))):
            assert x.dtype == y.dtype and x.shape == y.shape, i
            assert x.tobytes() == y.tobytes(), (lo, hi, i)


def test_stream_changes_the_draws(rng):
    m = _model(rng, type("B", (), {"asarray": staticmethod(np.asarray)}), np.float64, True)
    roots = np.zeros(64, np.int64)
    o0 = mcts.muzero_policy(roots, m, 16, seed=1)
    o1 = mcts.muzero_policy(roots, m, 16, seed=1, stream=1)
    # tree b of stream 1 is tree b + 1 of stream 0
    np.testing.assert_array_equal(o0.visit_counts[1:], o1.visit_counts[:-1])
    assert not np.array_equal(o0.visit_counts, o1.visit_counts)


@pytest.mark.parametrize("policy", ["muzero", "gumbel", "uct"])
def test_bad_stream(rng, policy):
    m = _model(rng, type("B", (), {"asarray": staticmethod(np.asarray)}), np.float64, False)
    roots = np.zeros(3, np.int64)
    with pytest.raises(ValueError, match="stream"):
        mcts.search(roots, m, 4, policy=policy, stream=-1)
    with pytest.raises(TypeError, match="stream"):
        mcts.search(roots, m, 4, policy=policy, stream=1.5)
    with pytest.raises(TypeError, match="stream"):
        mcts.search(roots, m, 4, policy=policy, stream=True)
    with pytest.raises(ValueError, match="stream"):
        mcts.search(roots, m, 4, policy=policy, stream=2**54)  # (stream + B) * A >= 2**56
