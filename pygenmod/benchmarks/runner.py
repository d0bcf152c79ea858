"""Side-by-side timing: pygenmod and its peers on the same data, in one process.

Timing rule (WORKLOADS.md): wall clock with time.perf_counter, one warm-up call, then the
median of >= 5 repeats. Ratios are peer time / pygenmod time (> 1: pygenmod is faster).
"""
from __future__ import annotations

import dataclasses
import statistics
import sys
import time
from typing import Callable


class Missing(Exception):
    """Raised by a candidate's setup when its library is not installed."""


@dataclasses.dataclass
class Candidate:
    name: str  #: e.g. "pygenmod cpu", "numpy", "quantecon"
    setup: Callable[[], Callable[[], object]]  #: returns the zero-argument callable to time
    is_ours: bool = False
    note: str = ""


@dataclasses.dataclass
class Workload:
    id: str  #: e.g. "W6a"
    title: str
    candidates: list
    bytes_moved: float | None = None  #: minimum bytes one call must move (for GB/s)
    flops: float | None = None  #: floating-point operations of one call (for GFLOP/s)
    unit: str = "call"  #: what one timed call is ("sweep", "search", ...)
    repeats: int = 5


def time_call(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def measure(workload: Workload, repeats: int | None = None):
    """Rows of (candidate, seconds or None, note) for one workload."""
    rows = []
    for cand in workload.candidates:
        try:
            fn = cand.setup()
        except Missing as exc:
            rows.append((cand, None, f"missing: {exc}"))
            continue
        except Exception as exc:  # a peer failing must not hide the others
            rows.append((cand, None, f"failed: {type(exc).__name__}: {exc}"))
            continue
        rows.append((cand, time_call(fn, repeats or workload.repeats), cand.note))
    return rows


def _fmt_time(s: float) -> str:
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} us"


def run_table(workloads, out=None, repeats: int | None = None, bandwidth: float | None = None,
              peak_flops: float | None = None):
    """Measure every workload and print one table; returns the measured rows."""
    out = out or sys.stdout
    results = []
    header = f"{'workload':<8} {'implementation':<28} {'time/' + 'call':>12} {'vs ours':>9} {'rate':>22}  note"
    print(header, file=out)
    print("-" * len(header), file=out)
    for w in workloads:
        print(f"{w.id:<8} {w.title}", file=out, flush=True)
        rows = measure(w, repeats)
        ours = [s for c, s, _ in rows if c.is_ours and s is not None]
        best_ours = min(ours) if ours else None
        for cand, sec, note in rows:
            if sec is None:
                print(f"{'':<8} {cand.name:<28} {'-':>12} {'-':>9} {'':>22}  {note}", file=out)
                results.append(dict(workload=w.id, impl=cand.name, seconds=None, note=note))
                continue
            ratio = f"{sec / best_ours:.2f}x" if best_ours else "-"
            rate = ""
            if w.bytes_moved:
                gbs = w.bytes_moved / sec / 1e9
                rate = f"{gbs:.1f} GB/s"
                if bandwidth:
                    rate += f" ({100 * gbs * 1e9 / bandwidth:.0f}% bw)"
            elif w.flops:
                gf = w.flops / sec / 1e9
                rate = f"{gf:.1f} GFLOP/s"
                if peak_flops:
                    rate += f" ({100 * gf * 1e9 / peak_flops:.0f}% pk)"
            print(f"{'':<8} {cand.name:<28} {_fmt_time(sec):>12} {ratio:>9} {rate:>22}  {note}",
                  file=out, flush=True)
            results.append(dict(workload=w.id, impl=cand.name, seconds=sec, note=note))
    return results
