"""Time the pygenmod rows of some workloads in this checkout (peers left out: the W1
scikit-learn loop alone takes 17 s per call).

    PYTHONPATH=$PWD python bench/ab_rows.py W1,W5-gz64,W4c 9           # N calls: min, median
    PYTHONPATH=$PWD python bench/ab_rows.py W1,W5-gz64,W4c 9 --modes   # alone / interleaved / busy

Run it alternately in two checkouts (e.g. before and after a change, each built with
tools/dev-build.sh) to compare them on the same machine state. ``--modes`` times each row as
``pygenmod bench`` does (the runner's measure_modes: alone, interleaved with the NumPy/torch
filler, one core busy), medians of N.
"""

import dataclasses
import sys
import time

import numpy as np

from pygenmod.benchmarks import all_workloads
from pygenmod.benchmarks.runner import measure_modes


def _ours(w):
    return [c for c in w.candidates if c.name.startswith("pygenmod") and "numba" not in c.name and "cuda" not in c.name]


def main(ids, n, modes):
    for w in all_workloads(None):
        if w.id not in ids:
            continue
        if modes:
            for cand, secs, note in measure_modes(dataclasses.replace(w, candidates=_ours(w)), repeats=n):
                a, i, b = (secs.get(k, float("nan")) * 1e3 for k in ("alone", "interleaved", "busy"))
                print(
                    f"{w.id} {cand.name}: alone {a:.3f} ms, interleaved {i:.3f} ms ({i / a:.2f}x), "
                    f"busy {b:.3f} ms ({b / a:.2f}x) {note or ''}",
                    flush=True,
                )
            continue
        for c in _ours(w):
            f = c.setup()
            f()
            ts = []
            for _ in range(n):
                t = time.perf_counter()
                f()
                ts.append(time.perf_counter() - t)
            print(f"{w.id} {c.name}: min {min(ts) * 1e3:.3f} ms, median {np.median(ts) * 1e3:.3f} ms", flush=True)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--modes"]
    main(set(args[0].split(",")), int(args[1]) if len(args) > 1 else 9, "--modes" in sys.argv)
