"""Time the pygenmod rows of some workloads in this checkout, N calls each (min and median).

    PYTHONPATH=$PWD python bench/ab_rows.py W1,W5-gz64,W4c 9

Run it alternately in two checkouts (e.g. before and after a change, each built with
tools/dev-build.sh) to compare them on the same machine state; peers are left out (the W1
scikit-learn loop alone takes 17 s per call).
"""

import sys
import time

import numpy as np

from pygenmod.benchmarks import all_workloads


def main(ids, n):
    for w in all_workloads(None):
        if w.id not in ids:
            continue
        for c in w.candidates:
            if not c.name.startswith("pygenmod") or "numba" in c.name or "cuda" in c.name:
                continue
            f = c.setup()
            f()
            ts = []
            for _ in range(n):
                t = time.perf_counter()
                f()
                ts.append(time.perf_counter() - t)
            print(f"{w.id} {c.name}: min {min(ts) * 1e3:.3f} ms, median {np.median(ts) * 1e3:.3f} ms", flush=True)


if __name__ == "__main__":
    main(set(sys.argv[1].split(",")), int(sys.argv[2]) if len(sys.argv) > 2 else 9)
