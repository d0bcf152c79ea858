"""Per-call time of the hot tiny functions against the plain NumPy code a user would write (the
W8 one-liners of pygenmod/benchmarks/tiny.py), in a size sweep per family: where pygenmod's fixed
cost stops mattering (the crossover). Three candidates per row, timed round-robin in one process
(their order rotates every repeat, so a load spike hits all of them alike); medians of the repeats:

- "pygenmod": the public function as shipped (the one-call fast path where it applies);
- "general": the same call with the fast paths off (pygenmod._fast.ENABLED = False, and exact
  policy iteration through LAPACK: mdp._solvers._EXACT_LOOP_MAX_S = 0), i.e. the code before;
- "numpy": the NumPy version.

Usage: PYTHONPATH=$PWD python bench/results/tiny_calls.py [--repeats 15] [--calls 200] [--clock cpu]
(--clock cpu: process CPU time, all threads, instead of wall time: on a shared, oversubscribed
machine it leaves out the time slices other processes take, which would otherwise land on the
longer-running candidates.)
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from pygenmod import _fast, gmm, mdp, sampling, spatial
from pygenmod.benchmarks.tiny import numpy_em_step, numpy_log_prob, numpy_policy_iteration
from pygenmod.mdp import _solvers


def general(f):
    def run():
        _fast.ENABLED, limit = False, _solvers._EXACT_LOOP_MAX_S
        _solvers._EXACT_LOOP_MAX_S = 0
        try:
            return f()
        finally:
            _fast.ENABLED, _solvers._EXACT_LOOP_MAX_S = True, limit

    return run


def rows():
    for S in (4, 16, 64, 256):
        P, R = mdp.random_mdp(S, 4, seed=0)
        V = np.random.default_rng(1).standard_normal(S)
        P2 = P.reshape(-1, S)
        ours = lambda P=P, R=R, V=V: mdp.bellman_backup(P, R, V, 0.95)  # noqa: E731
        yield "bellman_backup (S, A=4)", S, ours, lambda P2=P2, R=R, V=V: (R + 0.95 * (P2 @ V).reshape(R.shape)).max(1)
    grid = mdp.gridworld()[:2]
    for S, (P, R) in [(12, grid)] + [(S, mdp.random_mdp(S, 4, seed=0)) for S in (4, 32, 64, 128)]:
        ours = lambda P=P, R=R: mdp.policy_iteration(P, R, 0.99, evaluation="exact")  # noqa: E731
        name = "policy_iteration exact (gridworld)" if S == 12 else "policy_iteration exact (random, A=4)"
        yield name, S, ours, lambda P=P, R=R: numpy_policy_iteration(P, R, 0.99)
    for D in (4, 64, 1024, 16384):
        rng = np.random.default_rng(0)
        mu, lv = rng.standard_normal((1, D)), rng.standard_normal((1, D))
        g = np.random.default_rng(1)
        ours = lambda mu=mu, lv=lv: sampling.rsample_normal(mu, lv, seed=1)  # noqa: E731
        yield (
            "rsample_normal (B=1, D)",
            D,
            ours,
            lambda mu=mu, lv=lv, g=g: mu + np.exp(0.5 * lv) * g.standard_normal(mu.shape),
        )
    for H in (4, 8, 16, 64):
        x = np.random.default_rng(0).standard_normal((1, 4, H, H)).astype(np.float32)
        lin = np.linspace(-1, 1, H, dtype=np.float32)

        def plain(x=x, lin=lin, H=H):
            z = x.reshape(1, 4, H * H)
            p = np.exp(z - z.max(-1, keepdims=True))
            p = (p / p.sum(-1, keepdims=True)).reshape(1, 4, H, H)
            return np.stack([(p.sum(2) * lin).sum(-1), (p.sum(3) * lin).sum(-1)], -1)

        yield "spatial_softmax (B=1, C=4, H=W)", H, lambda x=x: spatial.spatial_softmax(x), plain
    for N in (16, 256, 4096, 32768):
        rng = np.random.default_rng(0)
        X = rng.standard_normal((N, 2))
        p = gmm.m_step(X, rng.dirichlet(np.ones(3), N))
        yield (
            "gmm.em_step (N, D=2, K=3, full)",
            N,
            lambda X=X, p=p: gmm.em_step(X, p),
            lambda X=X, p=p: numpy_em_step(X, p.weights, p.means, p.precisions_cholesky),
        )
    for N in (1, 16, 256, 4096):
        rng = np.random.default_rng(0)
        X = rng.standard_normal((N, 2))
        p = gmm.m_step(rng.standard_normal((64, 2)), rng.dirichlet(np.ones(3), 64))
        yield (
            "gmm.log_prob (N, D=2, K=3, full)",
            N,
            lambda X=X, p=p: gmm.log_prob(X, p),
            lambda X=X, p=p: numpy_log_prob(X, p.weights, p.means, p.precisions_cholesky),
        )


def per_call(f, calls, clock=time.perf_counter):
    t = clock()
    for _ in range(calls):
        f()
    return (clock() - t) / calls


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    a = ap.parse_args()
    clock = time.process_time if a.clock == "cpu" else time.perf_counter
    print("| function | size | pygenmod us | general path us | NumPy us | NumPy / pygenmod |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, size, ours, plain in rows():
        cands = [ours, general(ours), plain]
        calls = max(5, a.calls // (20 if "policy" in name and size >= 64 else 1))
        for f in cands:
            f()  # warm up (numba-free: the cpu backend; first-call allocations)
        times = [[], [], []]
        for r in range(a.repeats):
            for k in range(3):
                i = (k + r) % 3
                times[i].append(per_call(cands[i], calls, clock))
        us = [statistics.median(t) * 1e6 for t in times]
        print(f"| {name} | {size} | {us[0]:.1f} | {us[1]:.1f} | {us[2]:.1f} | {us[2] / us[0]:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
