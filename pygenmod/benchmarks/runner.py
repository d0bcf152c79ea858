"""Side-by-side timing: pygenmod and its peers on the same data, in one process.

Timing rule (WORKLOADS.md): wall clock with time.perf_counter, one warm-up call, then the
median of >= 5 repeats. Ratios are peer time / pygenmod time (> 1: pygenmod is faster).

Each row is timed in up to three modes (``MODES``):

- ``alone``: the candidate in its own loop, started after ``SETTLE_S`` of idling so that no
  pool woken by the setup code (OpenBLAS's workers poll ~0.1 s after a call) competes with it;
- ``interleaved``: the workload's candidates alternate call by call, with a NumPy/BLAS call
  (a 300x300 solve) and a torch op (when torch is installed) between calls, as in a training
  or planning loop: every pool (ours, OpenBLAS, torch's) gets work between our calls;
- ``busy``: alone, while one other process spins on one core (started and stopped here).
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
from collections.abc import Callable


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
        proc = subprocess.run(
            [sys.executable, "-c", "from pygenmod.benchmarks.runner import _child; _child()", job],
            env=env,
            cwd=pkg_parent,
            capture_output=True,
            text=True,
            timeout=self.timeout,
        )
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(_RESULT)]
        if proc.returncode != 0 or not lines:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise RuntimeError(f"child process failed (rc={proc.returncode}): {' | '.join(tail)}")
        res = json.loads(lines[-1][len(_RESULT) :])
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
    calls: int = 1  #: calls of the function per timed callable (tiny rows); times are per call


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


MODES = ("alone", "interleaved", "busy")


def _setup(workload: Workload):
    """[(candidate, callable or InSubprocess or None, note)] for every candidate."""
    out = []
    for cand in workload.candidates:
        try:
            out.append((cand, cand.setup(), cand.note))
        except Missing as exc:
            out.append((cand, None, f"missing: {exc}"))
        except Exception as exc:  # a peer failing must not hide the others
            out.append((cand, None, f"failed: {type(exc).__name__}: {exc}"))
    return out


def _filler():
    """The work a real loop does between our calls: a 300x300 solve (BLAS) and a torch op."""
    import numpy as np

    rng = np.random.default_rng(0)
    A, b = rng.standard_normal((300, 300)) + 300 * np.eye(300), rng.standard_normal(300)
    try:
        import torch

        t = torch.randn(256, 256)
        return lambda: (np.linalg.solve(A, b), torch.tanh(t @ t))
    except ImportError:
        return lambda: np.linalg.solve(A, b)


class BusyCore:
    """One background process spinning on one core while the block runs."""

    def __enter__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(0.2)  # let it reach the run queue
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()


# Idle time before a candidate is timed alone: the setup of the workload's candidates (data
# generation, a peer's constructor) may have run BLAS or torch ops, whose pools keep polling
# the cores for a while afterwards (OpenBLAS: 2^28 TSC cycles, ~0.1 s); alone means without them.
SETTLE_S = 0.15


def _time_alone(fn, n, warmup):
    if isinstance(fn, InSubprocess):
        return fn.time(n, warmup)
    time.sleep(SETTLE_S)
    return time_call(fn, n, warmup)


def _time_interleaved(fns, n, filler):
    """Median per candidate over n rounds; in each round every candidate runs once, each call
    preceded by the filler. fns: {key: callable} (already warmed up)."""
    times = {k: [] for k in fns}
    for _ in range(n):
        for k, f in fns.items():
            filler()
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def _progress(i: int, n: int, wid: str, name: str) -> None:
    """'[i/n] W6a <candidate> ...' on stderr before a row is timed (the table stays on stdout)."""
    print(f"[{i}/{n}] {wid} {name} ...", file=sys.stderr, flush=True)


def measure_modes(workload: Workload, repeats: int | None = None, modes=MODES, on_row: Callable | None = None):
    """[(candidate, {mode: seconds per call}, note)] for one workload; ``on_row(candidate)`` is
    called before each candidate is set up and timed (progress)."""
    rows = []
    ready = {}
    n_def = repeats or workload.repeats
    reps = {}
    for i, (cand, fn, note) in enumerate(_setup(workload)):
        if on_row is not None:
            on_row(cand)
        secs = {}
        rows.append((cand, secs, note))
        if fn is None:
            continue
        n = min(n_def, cand.max_repeats) if cand.max_repeats else n_def
        reps[i] = n
        try:
            if "alone" in modes:
                secs["alone"] = _time_alone(fn, n, cand.warmup)
            elif not isinstance(fn, InSubprocess):
                for _ in range(cand.warmup):
                    fn()
        except Missing as exc:
            rows[i] = (cand, {}, f"missing: {exc}")
            continue
        except Exception as exc:
            rows[i] = (cand, {}, f"failed: {type(exc).__name__}: {exc}")
            continue
        if not isinstance(fn, InSubprocess):
            ready[i] = fn
    if "interleaved" in modes and ready:
        n = min(reps[i] for i in ready)
        for i, sec in _time_interleaved(ready, n, _filler()).items():
            rows[i][1]["interleaved"] = sec
    if "busy" in modes and ready:
        with BusyCore():
            for i, fn in ready.items():
                rows[i][1]["busy"] = time_call(fn, reps[i], 0)
    for _, secs, _ in rows:
        for k in secs:
            secs[k] /= workload.calls
    return rows


def measure(workload: Workload, repeats: int | None = None):
    """Rows of (candidate, seconds or None, note) for one workload (alone only)."""
    return [(c, s.get("alone"), note) for c, s, note in measure_modes(workload, repeats, ("alone",))]


def _fmt_time(s: float) -> str:
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} us"


def _limit(w: Workload, sec, bandwidth, peak_flops):
    """(fraction of the machine limit or None, rate text) of one call."""
    if not sec:
        return None, ""
    if w.bytes_moved:
        gbs = w.bytes_moved / sec / 1e9
        return (gbs * 1e9 / bandwidth if bandwidth else None), f"{gbs:.1f} GB/s"
    if w.flops:
        gf = w.flops / sec / 1e9
        return (gf * 1e9 / peak_flops if peak_flops else None), f"{gf:.1f} GFLOP/s"
    return None, ""


def run_table(
    workloads,
    out=None,
    repeats: int | None = None,
    bandwidth: float | None = None,
    peak_flops: float | None = None,
    modes=MODES,
):
    """Measure every workload in the given modes, print one line per row, return the rows.

    Each row is a dict: ``workload`` (id), ``title``, ``candidate`` (name), ``ours`` (bool),
    ``seconds`` ({mode: median seconds per call}; modes not measured are absent), ``ratio``
    ({mode: peer time / fastest pygenmod time}; None for pygenmod's own rows), ``limit``
    (fraction of the machine's read bandwidth or float64 peak, from the alone time; None when the
    row has neither), ``note``.
    """
    out = out or sys.stdout
    modes = tuple(m for m in MODES if m in modes)
    total, counter = sum(len(w.candidates) for w in workloads), itertools.count(1)
    print(f"modes: {', '.join(modes)}; times per {'call'}; (x): peer time / pygenmod time", file=out)
    results = []
    i = 0
    for w in workloads:
        print(f"{w.id:<8} {w.title}", file=out, flush=True)
        rows = measure_modes(w, repeats, modes, lambda c, w=w: _progress(next(counter), total, w.id, c.name))
        best = {m: min((s[m] for c, s, _ in rows if c.is_ours and m in s), default=None) for m in modes}
        for cand, secs, note in rows:
            i += 1
            ratio = None if cand.is_ours else {m: (secs[m] / best[m] if best[m] else None) for m in modes if m in secs}
            frac, rate = _limit(w, secs.get("alone"), bandwidth, peak_flops)
            cells = []
            for m in modes:
                if m not in secs:
                    cells.append(f"{m} -")
                    continue
                r = "" if cand.is_ours or not ratio.get(m) else f" ({ratio[m]:.2f}x)"
                cells.append(f"{m} {_fmt_time(secs[m])}{r}")
            if frac is not None:
                rate += f" ({100 * frac:.0f}% {'bw' if w.bytes_moved else 'pk'})"
            print(
                f"[{i}/{total}] {w.id} {cand.name:<30} {'  '.join(cells)}  {rate}  {note}".rstrip(),
                file=out,
                flush=True,
            )
            results.append(
                dict(
                    workload=w.id,
                    title=w.title,
                    candidate=cand.name,
                    ours=cand.is_ours,
                    seconds=dict(secs),
                    ratio=ratio,
                    limit=frac,
                    note=note,
                )
            )
    return results
