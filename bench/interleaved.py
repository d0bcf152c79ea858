"""Interleaved min-of-N timings of the `pygenmod bench` workloads (robust to other processes).

Usage: OMP_NUM_THREADS=1 python bench/interleaved.py [N] [W6a,W6c,...] [--family mdp]
Calls every candidate of a workload in turn, N rounds, and keeps each one's fastest call, so a
burst of load from elsewhere on the machine hits all candidates alike.
"""
import sys
import time

import numpy as np

from pygenmod.benchmarks import all_workloads
from pygenmod.benchmarks.runner import Missing


def main(argv):
    fam = None
    if "--family" in argv:
        i = argv.index("--family")
        fam = [argv[i + 1]]
        argv = argv[:i] + argv[i + 2:]
    n = int(argv[0]) if argv else 5
    only = set(argv[1].split(",")) if len(argv) > 1 else None
    for w in all_workloads(fam):
        if only and w.id not in only:
            continue
        fns = {}
        for c in w.candidates:
            try:
                fns[c.name] = c.setup()
            except Missing as exc:
                print(f"   {c.name}: missing ({exc})")
        for f in fns.values():
            f()
        best = {k: np.inf for k in fns}
        for _ in range(n):
            for k, f in fns.items():
                t = time.perf_counter()
                f()
                best[k] = min(best[k], time.perf_counter() - t)
        ours = min(v for k, v in best.items() if k.startswith("pygenmod"))
        print(w.id, w.title)
        for k, v in best.items():
            print(f"   {k:<36} {v * 1e3:9.2f} ms  {v / ours:6.2f}x")
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
