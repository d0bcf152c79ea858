"""Side-by-side timing: pygenmod and its peers on the same data, in one process.

Timing rule (WORKLOADS.md): wall clock with time.perf_counter, one warm-up call, then the
median of >= 5 repeats. Ratios are peer time / pygenmod time (> 1: pygenmod is faster).
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Callable


class Missing(Exception):
    """Raised by a candidate's setup when its library is not installed."""


@dataclasses.dataclass
class Candidate:
    name: str  #: e.g. "pygenmod cpu", "numpy", "quantecon"
    #: returns the zero-argument callable to time (or an :class:`InSubprocess`)
    setup: Callable[[], Callable[[], object]]
    is_ours: bool = False
    note: str = ""
    #: cap on the timed repeats (very slow peers), and warm-up calls before them
    max_repeats: int | None = None
    warmup: int = 1


_RESULT = "PYGENMOD-BENCH-RESULT "


@dataclasses.dataclass
class InSubprocess:
    """What a setup returns for a candidate that must be timed in a fresh Python process, e.g.
    one that needs an environment variable read once at import (scikit-learn's array-API path
    needs ``SCIPY_ARRAY_API=1`` before scipy is first imported, and the parent process has
    imported scipy long before). The child imports ``target`` ("package.module:function"),
    calls it with ``args`` to get the callable, and times it with :func:`time_call` (same rule:
    warm-up, median of the repeats); only the median comes back. The child inherits the
    parent's environment (threads, CPU affinity) plus ``env``."""

    target: str
    args: tuple = ()
    env: dict = dataclasses.field(default_factory=dict)
    timeout: float = 3600.0

    def time(self, repeats: int = 5, warmup: int = 1) -> float:
        import pygenmod

        pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(pygenmod.__file__)))
        env = dict(os.environ)
        env.update({k: str(v) for k, v in self.env.items()})
        env["PYTHONPATH"] = os.pathsep.join([pkg_parent] + [p for p in [env.get("PYTHONPATH")] if p])
        job = json.dumps(dict(target=self.target, args=list(self.args), repeats=repeats, warmup=warmup))
        # cwd: the package's parent, so that the child imports this same pygenmod
        proc = subprocess.run([sys.executable, "-c", "from pygenmod.benchmarks.runner import _child; _child()",
                               job], env=env, cwd=pkg_parent, capture_output=True, text=True,
                              timeout=self.timeout)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(_RESULT)]
        if proc.returncode != 0 or not lines:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise RuntimeError(f"child process failed (rc={proc.returncode}): {' | '.join(tail)}")
        res = json.loads(lines[-1][len(_RESULT):])
        if "missing" in res:
            raise Missing(res["missing"])
        return float(res["seconds"])


def _child():
    """Entry point of :class:`InSubprocess` children."""
    import importlib

    job = json.loads(sys.argv[1])
    mod, fn = job["target"].split(":")
    try:
        call = getattr(importlib.import_module(mod), fn)(*job["args"])
        out = dict(seconds=time_call(call, job["repeats"], job["warmup"]))
    except Missing as exc:
        out = dict(missing=str(exc))
    print(_RESULT + json.dumps(out), flush=True)


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


def _progress(i: int, n: int, wid: str, name: str) -> None:
    """'[i/n] W6a <candidate> ...' on stderr before a row is timed (the table stays on stdout)."""
    print(f"[{i}/{n}] {wid} {name} ...", file=sys.stderr, flush=True)


def measure(workload: Workload, repeats: int | None = None, on_row: Callable | None = None):
    """Rows of (candidate, seconds or None, note) for one workload; ``on_row(candidate)`` is
    called before each candidate is timed."""
    rows = []
    for cand in workload.candidates:
        if on_row is not None:
            on_row(cand)
        try:
            fn = cand.setup()
        except Missing as exc:
            rows.append((cand, None, f"missing: {exc}"))
            continue
        except Exception as exc:  # a peer failing must not hide the others
            rows.append((cand, None, f"failed: {type(exc).__name__}: {exc}"))
            continue
        n = repeats or workload.repeats
        n = min(n, cand.max_repeats) if cand.max_repeats else n
        try:
            if isinstance(fn, InSubprocess):
                sec = fn.time(n, cand.warmup)
            else:
                sec = time_call(fn, n, cand.warmup)
        except Missing as exc:
            rows.append((cand, None, f"missing: {exc}"))
            continue
        except Exception as exc:
            rows.append((cand, None, f"failed: {type(exc).__name__}: {exc}"))
            continue
        rows.append((cand, sec, cand.note))
    return rows


def _fmt_time(s: float) -> str:
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} us"


def run_table(workloads, out=None, repeats: int | None = None, bandwidth: float | None = None,
              peak_flops: float | None = None):
    """Measure every workload and print one table; returns the rows as dicts: workload, title,
    candidate, ours, seconds {mode: median s}, ratio {mode: peer / fastest pygenmod} (None for
    pygenmod's rows), limit (fraction of read bandwidth or f64 peak, or None), note. Only the
    "alone" mode is timed here; a candidate that was not timed has empty dicts."""
    out = out or sys.stdout
    results = []
    n_rows, counter = sum(len(w.candidates) for w in workloads), itertools.count(1)
    header = f"{'workload':<8} {'implementation':<28} {'time/' + 'call':>12} {'vs ours':>9} {'rate':>22}  note"
    print(header, file=out)
    print("-" * len(header), file=out)
    for w in workloads:
        print(f"{w.id:<8} {w.title}", file=out, flush=True)
        rows = measure(w, repeats, lambda c, w=w: _progress(next(counter), n_rows, w.id, c.name))
        ours = [s for c, s, _ in rows if c.is_ours and s is not None]
        best_ours = min(ours) if ours else None
        for cand, sec, note in rows:
            row = dict(workload=w.id, title=w.title, candidate=cand.name, ours=cand.is_ours, seconds={},
                       ratio=None if cand.is_ours else {}, limit=None, note=note)
            results.append(row)
            if sec is None:
                print(f"{'':<8} {cand.name:<28} {'-':>12} {'-':>9} {'':>22}  {note}", file=out)
                continue
            row["seconds"]["alone"] = sec
            if best_ours and not cand.is_ours:
                row["ratio"]["alone"] = sec / best_ours
            ratio = f"{sec / best_ours:.2f}x" if best_ours else "-"
            rate = ""
            if w.bytes_moved:
                gbs = w.bytes_moved / sec / 1e9
                rate = f"{gbs:.1f} GB/s"
                if bandwidth:
                    row["limit"] = gbs * 1e9 / bandwidth
                    rate += f" ({100 * row['limit']:.0f}% bw)"
            elif w.flops:
                gf = w.flops / sec / 1e9
                rate = f"{gf:.1f} GFLOP/s"
                if peak_flops:
                    row["limit"] = gf * 1e9 / peak_flops
                    rate += f" ({100 * row['limit']:.0f}% pk)"
            print(f"{'':<8} {cand.name:<28} {_fmt_time(sec):>12} {ratio:>9} {rate:>22}  {note}",
                  file=out, flush=True)
    return results
