"""Time the Philox draws of pygenmod.random in this checkout (min of N calls, 2 threads): the
public calls (a fresh output, whose pages the kernel faults in) and the cpu fill kernel into a
reused buffer (the draws alone).

    PYTHONPATH=$PWD python bench/draw_speed.py [N]

Run it alternately in two checkouts (e.g. before and after a change to the transforms).
"""

import sys
import time

import numpy as np

from pygenmod import random as R
from pygenmod._dispatch import get_kernel

DISTS = {"uniform": 0, "normal": 1, "gumbel": 2}


def best_ms(call, n):
    call()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        call()
        ts.append(time.perf_counter() - t)
    return min(ts) * 1e3


def main(n):
    for dt in (np.float32, np.float64):
        for dist in ("normal", "gumbel", "uniform"):
            f = getattr(R, dist)
            big = best_ms(lambda: f(1, (64, 65536), dtype=dt), n)  # noqa: B023
            small = best_ms(lambda: f(1, (4, 192), dtype=dt), 100 * n) * 1e3  # noqa: B023
            fill, out = get_kernel("sampling", "fill", "cpu"), np.empty((64, 65536), dt)
            reused = best_ms(lambda: fill(1, 0, 0, DISTS[dist], out), n)  # noqa: B023
            print(
                f"{np.dtype(dt).name:8s} {dist:8s} 64 x 65536: {big:7.3f} ms (into a reused buffer {reused:7.3f} ms)"
                f"   4 x 192: {small:6.2f} us",
                flush=True,
            )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 30)
