"""Workload W5: batched tree search (MuZero / Gumbel MuZero) on a tabular random MDP.

B=256 trees, A=16 actions, S=1024 states (deterministic next[s, a], reward, prior logits,
value), discount 0.99, no Dirichlet noise. Peer: mctx (JAX, whole search jitted), raising
Missing when not installed. Data is built lazily inside the setups.
"""

from __future__ import annotations

import functools

import numpy as np

from .runner import Candidate, Missing, Workload

GAMMA = 0.99


@functools.lru_cache(maxsize=4)
def random_tabular(S=1024, A=16, B=256, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    ns = rng.integers(0, S, (S, A))
    R = rng.standard_normal((S, A)).astype(dtype)
    L = rng.standard_normal((S, A)).astype(dtype)
    V = rng.standard_normal(S).astype(dtype)
    roots = rng.integers(0, S, B)
    return ns, R, L, V, roots


def ours_tabular(B, sims, policy="muzero", backend=None, dtype=np.float32):
    def setup():
        import pygenmod
        from pygenmod import mcts

        ns, R, L, V, roots = random_tabular(B=B, dtype=dtype)
        model = mcts.tabular_model(ns, R, L, V, GAMMA)
        kw = dict(dirichlet_fraction=0.0) if policy == "muzero" else {}

        def run():
            with pygenmod.use_backend(backend):
                return mcts.search(roots, model, sims, policy=policy, **kw)

        return run

    return setup


def numpy_recurrent_fn(ns, R, L, V):
    disc = np.full(len(ns), GAMMA, R.dtype)

    def recurrent_fn(emb, act):
        s2 = ns[emb, act]
        return R[emb, act], disc[: len(emb)], L[s2], V[s2], s2

    return recurrent_fn


def ours_callback(B, sims, policy="muzero"):
    def setup():
        from pygenmod import mcts

        ns, R, L, V, roots = random_tabular(B=B)
        fn = numpy_recurrent_fn(ns, R, L, V)
        root = mcts.Root(L[roots], V[roots], roots)
        kw = dict(dirichlet_fraction=0.0) if policy == "muzero" else {}
        return lambda: mcts.search(root, fn, sims, policy=policy, **kw)

    return setup


def mctx_search(B, sims, policy="muzero"):
    def setup():
        try:
            import jax
            import jax.numpy as jnp
            import mctx
        except ImportError as exc:
            raise Missing(f"mctx/jax not installed ({exc}); pip install mctx jax") from None
        ns, R, L, V, roots = (jnp.asarray(x) for x in random_tabular(B=B))
        root = mctx.RootFnOutput(prior_logits=L[roots], value=V[roots], embedding=roots)

        def recurrent_fn(params, rng_key, action, emb):
            s2 = ns[emb, action]
            out = mctx.RecurrentFnOutput(
                reward=R[emb, action], discount=jnp.full(emb.shape, GAMMA, jnp.float32), prior_logits=L[s2], value=V[s2]
            )
            return out, s2

        if policy == "muzero":
            fn = jax.jit(
                lambda key: (
                    mctx.muzero_policy(None, key, root, recurrent_fn, sims, dirichlet_fraction=0.0).action_weights
                )
            )
        else:
            fn = jax.jit(lambda key: mctx.gumbel_muzero_policy(None, key, root, recurrent_fn, sims).action_weights)
        key = jax.random.PRNGKey(0)
        return lambda: fn(key).block_until_ready()

    return setup


def workloads(quick: bool = False):
    B = 32 if quick else 256
    out = []
    for sims in (16,) if quick else (64, 256):
        out.append(
            Workload(
                f"W5-mz{sims}",
                f"muzero_policy, B={B}, A=16, S=1024, {sims} simulations, float32",
                [
                    Candidate(
                        "pygenmod cpu (tabular)",
                        ours_tabular(B, sims, backend="cpu"),
                        is_ours=True,
                        note=f"{B * sims} tree-simulations per call",
                    ),
                    Candidate("pygenmod numba (tabular)", ours_tabular(B, sims, backend="numba"), is_ours=True),
                    Candidate("pygenmod callback (NumPy fn)", ours_callback(B, sims), is_ours=True),
                    Candidate("mctx muzero_policy (jit)", mctx_search(B, sims)),
                ],
                unit="search",
                repeats=3 if sims > 64 else 5,
            )
        )
    sims = 16 if quick else 64
    out.append(
        Workload(
            f"W5-gz{sims}",
            f"gumbel_muzero_policy, B={B}, A=16, S=1024, {sims} simulations, float32",
            [
                Candidate("pygenmod cpu (tabular)", ours_tabular(B, sims, "gumbel", backend="cpu"), is_ours=True),
                Candidate("pygenmod callback (NumPy fn)", ours_callback(B, sims, "gumbel"), is_ours=True),
                Candidate("mctx gumbel_muzero_policy (jit)", mctx_search(B, sims, "gumbel")),
            ],
            unit="search",
        )
    )
    out.append(
        Workload(
            "W5-b1",
            f"latency: muzero_policy, B=1, {sims} simulations, float32",
            [
                Candidate("pygenmod cpu (tabular)", ours_tabular(1, sims, backend="cpu"), is_ours=True),
                Candidate("pygenmod callback (NumPy fn)", ours_callback(1, sims), is_ours=True),
                Candidate("mctx muzero_policy (jit)", mctx_search(1, sims)),
            ],
            unit="search",
        )
    )
    return out
