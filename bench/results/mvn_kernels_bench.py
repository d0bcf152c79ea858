"""mahalanobis / mvn_log_prob / kl_mvn forward and backward, B=256 rows, D=8 and D=64, per-row
and shared scale_tril, float32 and float64, one process, best of 5 repeats (see mvn_kernels.md).

    PYTHONPATH=$PWD python bench/results/mvn_kernels_bench.py
"""

import sys
import timeit

import numpy as np

from pygenmod import sampling as S


def best(f, n=20):
    f()  # warm-up (numba compile, page faults)
    return min(timeit.repeat(f, number=n, repeat=5)) / n * 1e3


def tril(rng, B, D, dtype):
    L = np.tril(rng.standard_normal((B, D, D))) * 0.3
    L[:, np.arange(D), np.arange(D)] = np.abs(L[:, np.arange(D), np.arange(D)]) + 1.0
    return L.astype(dtype)


def run(B, D, dtype, shared):
    rng = np.random.default_rng(0)
    x, mu, m2 = (rng.standard_normal((B, D)).astype(dtype) for _ in range(3))
    L = tril(rng, 1 if shared else B, D, dtype)
    L = L[0] if shared else L
    L2 = tril(rng, B, D, dtype)
    g = np.ones(B, dtype)
    rows = {
        "mahalanobis": lambda: S.mahalanobis(x, mu, L),
        "mahalanobis_backward": lambda: S.mahalanobis_backward(x, mu, L, grad_mahalanobis=g),
        "mvn_log_prob": lambda: S.mvn_log_prob(x, mu, L),
        "mvn_log_prob_backward": lambda: S.mvn_log_prob_backward(x, mu, L, grad_log_prob=g),
        "kl_mvn": lambda: S.kl_mvn(mu, L, m2, L2),
        "kl_mvn_backward": lambda: S.kl_mvn_backward(mu, L, m2, L2, grad_kl=g),
    }
    for name, f in rows.items():
        tag = f"{name:24s} B={B} D={D:3d} {np.dtype(dtype).name} {'shared' if shared else 'per-row'}"
        print(f"{tag:60s} {best(f):9.3f} ms", flush=True)


if __name__ == "__main__":
    for D in (8, 64):
        for dtype in (np.float32, np.float64):
            for shared in (False, True):
                run(256, D, dtype, shared)
    sys.exit(0)
