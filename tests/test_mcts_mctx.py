"""Agreement with mctx (the peer library) on deterministic tabular models, noise off.

Skipped when mctx/JAX are not installed (pip install mctx jax). mctx runs in float32 (JAX's
default); ours runs in float32 too. mctx breaks PUCT ties with 1e-7 uniform noise and ours
by the lowest index, and sums in a different order, so a tree may diverge after a near-tie:
we require identical visit counts on nearly all trees and report the rest.
"""

import numpy as np
import pytest

from pygenmod import mcts

mctx = pytest.importorskip("mctx")
jax = pytest.importorskip("jax")
jnp = jax.numpy


def model(rng, S, A, gamma):
    ns = rng.integers(0, S, (S, A))
    R = rng.standard_normal((S, A)).astype(np.float32)
    L = (2 * rng.standard_normal((S, A))).astype(np.float32)
    V = rng.standard_normal(S).astype(np.float32)
    return ns, R, L, V, gamma


def run_mctx(policy, m, roots, sims, invalid=None, **kw):
    ns, R, L, V, gamma = (jnp.asarray(x) for x in m)
    root = mctx.RootFnOutput(prior_logits=L[roots], value=V[roots], embedding=jnp.asarray(roots))

    def recurrent_fn(params, rng_key, action, emb):
        s2 = ns[emb, action]
        out = mctx.RecurrentFnOutput(
            reward=R[emb, action], discount=jnp.full(emb.shape, gamma, jnp.float32), prior_logits=L[s2], value=V[s2]
        )
        return out, s2

    key = jax.random.PRNGKey(0)
    inv = None if invalid is None else jnp.asarray(invalid)
    if policy == "muzero":
        out = mctx.muzero_policy(None, key, root, recurrent_fn, sims, invalid_actions=inv, dirichlet_fraction=0.0, **kw)
    else:
        out = mctx.gumbel_muzero_policy(None, key, root, recurrent_fn, sims, invalid_actions=inv, **kw)
    s = out.search_tree.summary()
    res = dict(
        counts=np.asarray(s.visit_counts).astype(np.int64),
        value=np.asarray(s.value),
        weights=np.asarray(out.action_weights),
        action=np.asarray(out.action),
    )
    if policy == "gumbel":
        res["gumbel"] = np.asarray(out.search_tree.extra_data.root_gumbel)
    return res


def ours(policy, m, roots, sims, invalid=None, gumbel=None, **kw):
    ns, R, L, V, gamma = m
    tm = mcts.tabular_model(ns, R, L, V, gamma)
    if policy == "muzero":
        return mcts.muzero_policy(roots, tm, sims, invalid_actions=invalid, dirichlet_fraction=0.0, **kw)
    return mcts.gumbel_muzero_policy(roots, tm, sims, invalid_actions=invalid, gumbel=gumbel, **kw)


@pytest.mark.parametrize("sims", [32])
def test_muzero_policy_agrees_with_mctx(rng, sims):
    B, S, A = 32, 50, 6
    m = model(rng, S, A, 0.95)
    roots = rng.integers(0, S, B)
    invalid = rng.random((B, A)) < 0.3
    invalid[:, 0] = False
    ref = run_mctx("muzero", m, roots, sims, invalid=invalid)
    out = ours("muzero", m, roots, sims, invalid=invalid)
    same = (ref["counts"] == out.visit_counts).all(-1)
    assert same.mean() >= 0.9, f"{(~same).sum()} of {B} trees differ"
    np.testing.assert_allclose(out.action_weights[same], ref["weights"][same], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(out.value[same], ref["value"][same], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("sims,M", [(32, 16), (20, 3)])
def test_gumbel_muzero_policy_agrees_with_mctx(rng, sims, M):
    B, S, A = 32, 50, 6
    m = model(rng, S, A, 0.95)
    roots = rng.integers(0, S, B)
    invalid = rng.random((B, A)) < 0.3
    invalid[:, 1] = False
    ref = run_mctx("gumbel", m, roots, sims, invalid=invalid, max_num_considered_actions=M)
    out = ours("gumbel", m, roots, sims, invalid=invalid, gumbel=ref["gumbel"], max_num_considered_actions=M)
    same = (ref["counts"] == out.visit_counts).all(-1)
    assert same.mean() >= 0.9, f"{(~same).sum()} of {B} trees differ"
    np.testing.assert_array_equal(out.action[same], ref["action"][same])
    np.testing.assert_allclose(out.action_weights[same], ref["weights"][same], rtol=2e-4, atol=1e-6)
    np.testing.assert_allclose(out.value[same], ref["value"][same], rtol=1e-4, atol=1e-5)


def test_two_player_discount_sign_agrees_with_mctx(rng):
    # zero-sum two-player: discount -1 flips the value's sign at every edge (mctx convention)
    B, S, A = 16, 30, 4
    m = model(rng, S, A, -1.0)
    roots = rng.integers(0, S, B)
    ref = run_mctx("muzero", m, roots, 24)
    out = ours("muzero", m, roots, 24)
    same = (ref["counts"] == out.visit_counts).all(-1)
    assert same.mean() >= 0.9
    np.testing.assert_allclose(out.value[same], ref["value"][same], rtol=1e-4, atol=1e-5)
