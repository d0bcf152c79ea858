"""mahalanobis / mvn_log_prob / kl_mvn forward and backward, B=256 rows, D=8 and D=64, per-row
and shared scale_tril, float32 and float64, one process, best of 5 repeats (see mvn_kernels.md).

    PYTHONPATH=$PWD python bench/results/mvn_kernels_bench.py

"before": with a copy of the pre-kernel pygenmod/sampling.py saved as pygenmod/_m17_old_sampling.py
(``git show 90ac682:pygenmod/sampling.py > pygenmod/_m17_old_sampling.py``; it runs on the same
build: its tri_solve / mvn_head kernels are unchanged), each row is timed for the NumPy compositions
and the row kernels back to back, so both see the same machine load.
"""

import importlib
import sys
import timeit

import numpy as np

from pygenmod import sampling as S

try:
    OLD = importlib.import_module("pygenmod._m17_old_sampling")
except ImportError:
    OLD = None


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
    for name in ("mahalanobis", "mvn_log_prob", "kl_mvn"):
        for bw in ("", "_backward"):
            fs = [(M, getattr(M, name + bw)) for M in (OLD, S) if M is not None]
            args = (mu, L, m2, L2) if name == "kl_mvn" else (x, mu, L)
            kw = {"grad_" + ("kl" if name == "kl_mvn" else name.replace("mvn_", "")): g} if bw else {}
            t = [best(lambda f=f, a=args, k=kw: f(*a, **k)) for _, f in fs]
            tag = f"{name + bw:24s} B={B} D={D:3d} {np.dtype(dtype).name} {'shared' if shared else 'per-row'}"
            cols = "".join(f" {v:9.3f} ms" for v in t)
            ratio = f"   x{t[0] / t[1]:5.1f}" if len(t) == 2 else ""
            print(f"{tag:60s}{cols}{ratio}", flush=True)


if __name__ == "__main__":
    print(f"{'':60s} {'before' if OLD else '':>12s} {'after':>12s}   speed-up")
    for D in (8, 64):
        for dtype in (np.float32, np.float64):
            for shared in (False, True):
                run(256, D, dtype, shared)
    sys.exit(0)
