"""Time the Philox draws of pygenmod.random in this checkout (min of N calls, 2 threads).

    PYTHONPATH=$PWD python bench/draw_speed.py [N]

Run it alternately in two checkouts (e.g. before and after a change to the transforms).
"""

import sys
import time

import numpy as np

from pygenmod import random as R


def best_ms(f, shape, dtype, n):
    f(1, shape, dtype=dtype)
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        f(1, shape, dtype=dtype)
        ts.append(time.perf_counter() - t)
    return min(ts) * 1e3


def main(n):
    for dt in (np.float32, np.float64):
        for dist in ("normal", "gumbel", "uniform"):
            f = getattr(R, dist)
            big = best_ms(f, (64, 65536), dt, n)
            small = best_ms(f, (4, 192), dt, 100 * n) * 1e3
            print(f"{np.dtype(dt).name:8s} {dist:8s} 64 x 65536: {big:7.3f} ms   4 x 192: {small:6.2f} us", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 30)
