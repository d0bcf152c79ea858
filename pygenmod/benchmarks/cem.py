"""Workload W9 (cross-entropy method) of WORKLOADS.md, against a plain NumPy CEM.

W9a  the demo's problem: B=4 sphere problems, D=3, 64 samples, 8 elites, 40 iterations
W9b  B=256 problems, D=32, N=1000 samples, 100 elites, 50 iterations, vectorised objective

Both rows are float64 problems; pygenmod's default draws the population noise in the float32
layout (cem_optimize's noise_dtype), and a second row times the float64 draws.
"""

from __future__ import annotations

import numpy as np

from .runner import Candidate, Workload


def sphere(opt):
    """Returns of -|x - opt|^2 per sample: the objective of both rows (cheap, vectorised)."""

    def f(X):
        d = X - opt[:, None, :]
        return -np.einsum("bnd,bnd->bn", d, d)

    return f


def numpy_cem(objective, mean, std, n_samples, n_elite, n_iter, rng, min_std=0.01):
    """The CEM a user writes in a few lines of NumPy: sample, argpartition, elite mean/std."""
    B, D = mean.shape
    rows = np.arange(B)[:, None]
    for _ in range(n_iter):
        X = mean[:, None, :] + std[:, None, :] * rng.standard_normal((B, n_samples, D))
        R = objective(X)
        elite = X[rows, np.argpartition(-R, n_elite - 1, axis=1)[:, :n_elite]]
        mean = elite.mean(1)
        std = np.maximum(elite.std(1), min_std)
    return mean, std


def _problem(B, D, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-3, 3, (B, D))


def _rows(wid, title, B, D, N, k, T):
    def ours(noise_dtype=np.float32):
        def setup():
            from pygenmod import cem

            opt = _problem(B, D)
            f, m, s = sphere(opt), np.zeros((B, D)), np.full((B, D), 2.0)
            # seed=None: fresh noise every call, as in a user's loop and as the NumPy CEM's generator
            # gives. A fixed seed replays one trajectory, and the CPU's branch predictor then learns
            # the elite selection's branches (demo size, before its branch-free selection: ~345
            # instead of ~405 us a call).
            kw = dict(n_samples=N, n_elite=k, n_iter=T, seed=None, min_std=0.01, noise_dtype=noise_dtype)
            return lambda: cem.cem_optimize(f, m, s, **kw)

        return setup

    def plain():
        opt = _problem(B, D)
        f, m, s = sphere(opt), np.zeros((B, D)), np.full((B, D), 2.0)
        rng = np.random.default_rng(1)
        return lambda: numpy_cem(f, m, s, N, k, T, rng)

    def objective_only():
        opt = _problem(B, D)
        f = sphere(opt)
        X = np.random.default_rng(2).standard_normal((B, N, D))
        return lambda: [f(X) for _ in range(T)]

    return Workload(
        wid,
        title,
        [
            Candidate("pygenmod cem_optimize", ours(), is_ours=True),
            Candidate(
                "pygenmod cem_optimize, float64 noise",
                ours(np.float64),
                is_ours=True,
                note="noise_dtype=float64: the float64 noise layout (the default draws float32 noise)",
            ),
            Candidate("numpy CEM (argpartition)", plain),
            Candidate(
                "objective alone x n_iter",
                objective_only,
                note="the floor: the objective's own calls; the rest is CEM overhead",
            ),
        ],
        unit="optimisation",
    )


def workloads(quick: bool = False):
    return [
        _rows("W9a", "CEM, demo problem: B=4, D=3, 64 samples, 8 elites, 40 iterations", 4, 3, 64, 8, 40),
        _rows(
            "W9b",
            "CEM, B=256, D=32, 1000 samples, 100 elites, 50 iterations",
            *((16, 32, 200, 20, 10) if quick else (256, 32, 1000, 100, 50)),
        ),
    ]
