"""UCT and chance nodes vs PUCT on the W5 shape (B=256, A=16, S=1024, 64 simulations, float32):
best-of-5 wall time per tree-simulation. Run: PYTHONPATH=. python bench/results/mcts_uct_chance.py"""

import time

import numpy as np

import pygenmod
from pygenmod import mcts

rng = np.random.default_rng(0)
S, A, B, sims = 1024, 16, 256, 64
ns = rng.integers(0, S, (S, A))
R, L, V = (rng.standard_normal(s).astype(np.float32) for s in ((S, A), (S, A), (S,)))
P = rng.dirichlet(np.full(S, 0.05), (S, A))
det = mcts.tabular_model(ns, R, L, V, 0.99)
sto = mcts.stochastic_tabular_model(P, R, L, V, 0.99)
roots = rng.integers(0, S, B)


def per_sim(fn, n=5):
    fn()
    best = min((lambda t0: (fn(), time.perf_counter() - t0)[1])(time.perf_counter()) for _ in range(n))
    return best / (B * sims) * 1e9


rows = {
    "PUCT, deterministic": lambda: mcts.muzero_policy(roots, det, sims, seed=0, dirichlet_fraction=0.0),
    "UCT, deterministic, rollout_depth=0": lambda: mcts.uct_policy(roots, det, sims, seed=0, rollout_depth=0),
    "UCT, deterministic, rollout_depth=20": lambda: mcts.uct_policy(roots, det, sims, seed=0, rollout_depth=20),
    "PUCT, stochastic (one outcome per edge)": lambda: mcts.muzero_policy(
        roots, sto, sims, seed=0, dirichlet_fraction=0.0
    ),
    "PUCT, stochastic, chance nodes": lambda: mcts.muzero_policy(
        roots, sto, sims, seed=0, dirichlet_fraction=0.0, chance_nodes=True
    ),
    "UCT, stochastic, chance nodes, rollout_depth=20": lambda: mcts.uct_policy(
        roots, sto, sims, seed=0, rollout_depth=20, chance_nodes=True
    ),
}
print("| search | " + " | ".join(b for b in ("cpu", "numba")) + " |")
print("|---|---|---|")
res = {}
for be in ("cpu", "numba"):
    with pygenmod.use_backend(be):
        for k, fn in rows.items():
            res.setdefault(k, []).append(per_sim(fn))
for k, v in res.items():
    print(f"| {k} | " + " | ".join(f"{x:.0f} ns" for x in v) + " |")
