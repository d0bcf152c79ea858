"""pygenmod.jax rows: per-call overhead under ``jax.jit`` at tiny sizes, W7 (GAE) called from
inside ``jax.jit`` against a ``jax.lax.scan`` GAE and the NumPy API, and W5 (MuZero MCTS over a
tabular model) inside ``jax.jit`` against ``mctx.muzero_policy`` (when mctx is installed).

    python -m pygenmod.benchmarks.jax [--T 1024] [--B 4096] [--mcts-B 256] [--sims 64] [--repeat 20] [--quick]

Every time is the median of ``--repeat`` calls after a warm-up (compilation excluded), each
call ending in ``block_until_ready``. The rows check their results: the FFI call bitwise
against the NumPy API, the scan to 1e-4.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _median(fn, repeat):
    fn()
    fn()
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def _scan_gae(r, v, done, gamma, lam):
    """The usual JAX GAE: a reverse lax.scan over time (bootstrap 0 after the last step)."""
    import jax
    import jax.numpy as jnp

    v_next = jnp.concatenate([v[1:], jnp.zeros_like(v[:1])], 0)
    keep = 1.0 - done
    delta = r + gamma * keep * v_next - v

    def step(carry, x):
        d, k = x
        carry = d + gamma * lam * k * carry
        return carry, carry

    _, adv = jax.lax.scan(step, jnp.zeros_like(r[0]), (delta, keep), reverse=True)
    return adv


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--T", type=int, default=1024)
    ap.add_argument("--B", type=int, default=4096)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--mcts-B", type=int, default=256, help="W5: number of trees")
    ap.add_argument("--sims", type=int, default=64, help="W5: simulations per search")
    ap.add_argument("--quick", action="store_true", help="W7 at T=256, B=1024, W5 at B=32, fewer repeats")
    a = ap.parse_args(argv)
    if a.quick:
        a.T, a.B, a.repeat, a.mcts_B = 256, 1024, 5, 32

    import jax
    import jax.numpy as jnp

    import pygenmod.jax as pgj
    from pygenmod import mdp, returns, spatial

    rng = np.random.default_rng(0)
    rows = []

    # ---- per-call overhead at tiny sizes
    n = max(200, a.repeat * 20)
    empty = jax.jit(lambda x: x + 1)
    x0 = jnp.zeros(4, jnp.float32)
    rows.append(("jit dispatch, x + 1 (baseline)", _median(lambda: empty(x0).block_until_ready(), n), None))

    r = rng.normal(size=(8, 4)).astype(np.float32)
    v = rng.normal(size=(8, 4)).astype(np.float32)
    f = jax.jit(lambda r, v: pgj.gae(r, v).advantages)
    assert np.array_equal(np.asarray(f(r, v)), returns.gae(r, v).advantages)
    rj, vj = jnp.asarray(r), jnp.asarray(v)
    rows.append(
        ("gae (8, 4)", _median(lambda: f(rj, vj).block_until_ready(), n), _median(lambda: returns.gae(r, v), n))
    )

    P = rng.random((1, 4, 2, 4)).astype(np.float32)
    P /= P.sum(-1, keepdims=True)
    R = rng.normal(size=(1, 4, 2)).astype(np.float32)
    V = np.zeros((1, 4), np.float32)
    f = jax.jit(lambda P, R, V: pgj.bellman_backup(P, R, V, 0.9).V)
    assert np.array_equal(np.asarray(f(P, R, V)), mdp.bellman_backup(P, R, V, 0.9).V)
    Pj, Rj, Vj = map(jnp.asarray, (P, R, V))
    rows.append(
        (
            "bellman_backup (1, 4, 2)",
            _median(lambda: f(Pj, Rj, Vj).block_until_ready(), n),
            _median(lambda: mdp.bellman_backup(P, R, V, 0.9), n),
        )
    )

    x = rng.normal(size=(1, 2, 4, 4)).astype(np.float32)
    f = jax.jit(lambda x: pgj.spatial_softmax(x))
    assert np.array_equal(np.asarray(f(x)), spatial.spatial_softmax(x))
    xj = jnp.asarray(x)
    rows.append(
        (
            "spatial_softmax (1, 2, 4, 4)",
            _median(lambda: f(xj).block_until_ready(), n),
            _median(lambda: spatial.spatial_softmax(x), n),
        )
    )
    g = jax.jit(jax.grad(lambda x: pgj.spatial_softmax(x).sum()))
    kp = spatial.spatial_softmax(x)
    rows.append(
        (
            "spatial_softmax grad (1, 2, 4, 4)",
            _median(lambda: g(xj).block_until_ready(), n),
            _median(lambda: spatial.spatial_softmax_vjp(x, 1.0, np.ones_like(kp)), n),
        )
    )

    # policy iteration on the 12-state gridworld, float32: the compiled loop (iterative
    # evaluation) and the jnp while_loop of exact solves, both checked against the NumPy API
    Pg, Rg, _ = mdp.gridworld(dtype=np.float32)
    Pgj, Rgj = jnp.asarray(Pg), jnp.asarray(Rg)
    for ev in ("iterative", "exact"):
        f = jax.jit(lambda P, R, ev=ev: pgj.policy_iteration(P, R, 0.9, evaluation=ev).policy)
        want = mdp.policy_iteration(Pg, Rg, 0.9, evaluation=ev).policy
        assert np.array_equal(np.asarray(f(Pgj, Rgj)), want)
        rows.append(
            (
                f"policy_iteration gridworld (12 states, {ev})",
                _median(lambda f=f: f(Pgj, Rgj).block_until_ready(), n),
                _median(lambda ev=ev: mdp.policy_iteration(Pg, Rg, 0.9, evaluation=ev), n),
            )
        )

    print(f"jax {jax.__version__}, backend {jax.default_backend()}; median of {n} calls")
    print("| tiny call | pygenmod.jax under jit (us) | NumPy API (us) |")
    print("|---|---|---|")
    for name, tj, tn in rows:
        print(f"| {name} | {tj * 1e6:.1f} | {'-' if tn is None else f'{tn * 1e6:.1f}'} |")

    # ---- W7 from inside jit
    T, B = a.T, a.B
    r = rng.normal(size=(T, B)).astype(np.float32)
    v = rng.normal(size=(T, B)).astype(np.float32)
    done = rng.random((T, B)) < 0.01
    rj, vj, dj = jnp.asarray(r), jnp.asarray(v), jnp.asarray(done)
    ffi = jax.jit(lambda r, v, d: pgj.gae(r, v, gamma=0.99, lam=0.95, terminated=d, compute_returns=False).advantages)
    scan = jax.jit(lambda r, v, d: _scan_gae(r, v, d.astype(r.dtype), 0.99, 0.95))
    want = returns.gae(r, v, gamma=0.99, lam=0.95, terminated=done, compute_returns=False).advantages
    assert np.array_equal(np.asarray(ffi(rj, vj, dj)), want)
    np.testing.assert_allclose(np.asarray(scan(rj, vj, dj)), want, rtol=1e-4, atol=1e-4)
    t_ffi = _median(lambda: ffi(rj, vj, dj).block_until_ready(), a.repeat)
    t_scan = _median(lambda: scan(rj, vj, dj).block_until_ready(), a.repeat)
    t_np = _median(lambda: returns.gae(r, v, gamma=0.99, lam=0.95, terminated=done, compute_returns=False), a.repeat)
    print()
    print(f"W7 GAE, T={T}, B={B}, float32, 1% terminations; median of {a.repeat}")
    print("| candidate | ms | vs pygenmod.jax |")
    print("|---|---|---|")
    for name, t in (
        ("pygenmod.jax.gae inside jit", t_ffi),
        ("jax.lax.scan GAE inside jit", t_scan),
        ("pygenmod.returns.gae (NumPy)", t_np),
    ):
        print(f"| {name} | {t * 1e3:.2f} | {t / t_ffi:.2f}x |")

    _w5(a)


def _w5(a, S=512, A=8):
    """W5: MuZero search (B trees, sims simulations) over a random tabular model, from inside jit."""
    import jax
    import jax.numpy as jnp

    import pygenmod.jax as pgj
    from pygenmod import mcts

    try:
        import mctx
    except ImportError:
        print("\nW5: mctx not installed, skipped")
        return
    rng = np.random.default_rng(5)
    m = mcts.tabular_model(
        rng.integers(0, S, (S, A)),
        rng.normal(size=(S, A)).astype(np.float32),
        rng.normal(size=(S, A)).astype(np.float32),
        rng.normal(size=S).astype(np.float32),
        discount=0.97,
        dtype=np.float32,
    )
    B, sims = a.mcts_B, a.sims
    roots = rng.integers(0, S, B)
    key = jax.random.key(0)
    ours = jax.jit(lambda r, k: pgj.muzero_policy(r, m, sims, seed=k).visit_counts)
    want = mcts.muzero_policy(roots, m, sims, seed=key).visit_counts
    assert np.array_equal(np.asarray(ours(jnp.asarray(roots), key)), want)

    ns, rw, dc, val = (jnp.asarray(x) for x in (m.next_state, m.reward, m.discount, m.value))
    lg = jnp.asarray(np.where(np.isfinite(m.logits), m.logits, -1e9).astype(np.float32))

    def recurrent_fn(params, rng_key, action, emb):
        nxt = ns[emb, action].astype(jnp.int32)
        out = mctx.RecurrentFnOutput(
            reward=rw[emb, action], discount=dc[emb, action], prior_logits=lg[nxt], value=val[nxt]
        )
        return out, nxt

    def peer(r, k):
        root = mctx.RootFnOutput(prior_logits=lg[r], value=val[r], embedding=r)
        return mctx.muzero_policy((), k, root, recurrent_fn, sims).action_weights

    peer = jax.jit(peer)
    rj = jnp.asarray(roots, jnp.int32)
    t_ours = _median(lambda: ours(rj, key).block_until_ready(), a.repeat)
    t_mctx = _median(lambda: peer(rj, key).block_until_ready(), a.repeat)
    t_np = _median(lambda: mcts.muzero_policy(roots, m, sims, seed=0), a.repeat)
    print()
    print(f"W5 MuZero MCTS, B={B}, {sims} simulations, tabular S={S}, A={A}, float32; median of {a.repeat}")
    print("| candidate | ms | vs pygenmod.jax |")
    print("|---|---|---|")
    for name, t in (
        ("pygenmod.jax.muzero_policy inside jit", t_ours),
        ("mctx.muzero_policy inside jit", t_mctx),
        ("pygenmod.mcts.muzero_policy (NumPy)", t_np),
    ):
        print(f"| {name} | {t * 1e3:.2f} | {t / t_ours:.2f}x |")


if __name__ == "__main__":
    main()
