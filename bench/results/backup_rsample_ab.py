"""Checked bellman_backup (both dtypes, S = 64/256/512, A = 4, 1 and 2 threads) and rsample_normal
(65536 x 64 float32, fresh output and out=): median per call, as JSON. Run it alternately in
two checkouts (PYTHONPATH selects one): the twelfth stop's old/new table in bench/RESULTS.md.

    PYTHONPATH=$PWD python bench/results/backup_rsample_ab.py
"""

import json

import numpy as np

import pygenmod
from pygenmod import mdp, sampling
from pygenmod.benchmarks.runner import time_call


def median_seconds(f, n):
    return time_call(f, n, warmup=max(3, n // 20))


def backups(out):
    for dt in (np.float64, np.float32):
        for S in (64, 256, 512):
            P, R = mdp.random_mdp(S, 4, seed=0)
            V = np.random.default_rng(1).standard_normal(S)
            P, R, V = P.astype(dt), R.astype(dt), V.astype(dt)
            for th in (1, 2):
                pygenmod.set_num_threads(th)
                call = lambda: mdp.bellman_backup(P, R, V, 0.95)  # noqa: B023, E731
                out[f"backup {np.dtype(dt).name} S={S} {th}th"] = median_seconds(call, 2000 if S < 512 else 600) * 1e6


def rsamples(out):
    rng = np.random.default_rng(0)
    mu = rng.standard_normal((65536, 64)).astype(np.float32)
    lv = rng.standard_normal((65536, 64)).astype(np.float32)
    buf = np.empty_like(mu)
    for th in (1, 2):
        pygenmod.set_num_threads(th)
        out[f"rsample 65536x64 f32 {th}th (ms)"] = (
            median_seconds(lambda: sampling.rsample_normal(mu, lv, seed=1), 30) * 1e3
        )
        out[f"rsample out= {th}th (ms)"] = (
            median_seconds(lambda: sampling.rsample_normal(mu, lv, seed=1, out=buf), 30) * 1e3
        )


if __name__ == "__main__":
    res = {}
    backups(res)
    rsamples(res)
    print(json.dumps(res))
