"""Markdown tables of `pygenmod bench --json FILE` runs, for bench/RESULTS.md.

Usage::

    python bench/results_table.py FILE.json [FILE2.json ...] > table.md

Prints a header block (date, command, machine, versions of each run), then one table per
family (W1, W5, W6, ...; a row's family is its workload id without the trailing letters and
suffix: W6a -> W6, W5-gz64 -> W5). Columns: workload, candidate, the time per call alone /
interleaved / with a busy core, and

- for a peer row: peer time / pygenmod time in each mode (against the fastest pygenmod row of
  the workload, as `pygenmod bench` prints it);
- for a pygenmod row: the spreads interleaved / alone and busy / alone, against the project's
  targets (interleaved <= 1.15x alone, busy <= 2x alone); a `!` marks a spread that misses.

With several files, a later file's row replaces an earlier row of the same workload id and
candidate (e.g. a full run, then a re-run of a few rows). Standard library only.
"""

from __future__ import annotations

import json
import re
import shlex
import sys

MODES = ("alone", "interleaved", "busy")
TARGETS = {"interleaved": 1.15, "busy": 2.0}  # spread targets: mode time / alone time


def load(paths):
    """(rows in order, with later files' rows replacing earlier ones; [(path, meta)])."""
    rows, metas = {}, []
    for path in paths:
        with open(path) as f:
            doc = json.load(f)
        metas.append((path, doc.get("meta", {})))
        for r in doc["rows"]:
            rows[(r["workload"], r["candidate"])] = r  # a replaced key keeps its place
    return list(rows.values()), metas


def family(workload_id: str) -> str:
    m = re.match(r"[A-Za-z]+\d+", workload_id)
    return m.group(0) if m else workload_id


def family_key(fam: str):
    """W2 before W10; ids without a letters+number family after, by name."""
    m = re.fullmatch(r"([A-Za-z]+)(\d+)", fam)
    return (0, m.group(1), int(m.group(2))) if m else (1, fam, 0)


def fmt_time(s) -> str:
    if s is None:
        return "-"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} us"


def is_ours(r) -> bool:
    return bool(r.get("ours"))


def peer_ratios(r, rows) -> str:
    """'a / i / b' peer time over the fastest pygenmod row of the same workload, per mode."""
    secs = r.get("seconds") or {}
    out = []
    for m in MODES:
        best = [o["seconds"][m] for o in rows if is_ours(o) and m in (o.get("seconds") or {})]
        if m in secs and best and min(best) > 0:
            out.append(f"{secs[m] / min(best):.2f}x")
        elif m in secs and (r.get("ratio") or {}).get(m):  # no pygenmod row: the ratio saved in the file
            out.append(f"{r['ratio'][m]:.2f}x")
        else:
            out.append("-")
    return " / ".join(out)


def spread(r, mode: str) -> str:
    """Mode time / alone time, with a trailing `!` where it misses the target."""
    secs = r.get("seconds") or {}
    if not secs.get("alone") or mode not in secs:
        return "-"
    x = secs[mode] / secs["alone"]
    return f"{x:.2f}x" + ("!" if x > TARGETS[mode] else "")


def cell(text) -> str:
    return str(text).replace("|", "\\|")


def header(metas) -> list[str]:
    """One line per run (date, command, settings, load, measured limits), then the machine and
    the versions (once when every run shares them, else one line per file)."""
    lines = ["Runs (date: command; a later run's rows replace an earlier run's):" if len(metas) > 1 else "Run:", ""]
    machines, versions = {}, {}
    for path, meta in metas:
        m, run = meta.get("machine", {}), meta.get("run", {})
        cmd = f"`pygenmod {shlex.join(meta['argv'])}`" if meta.get("argv") else "(command not recorded)"
        extra = []
        if run.get("quick"):
            extra.append("quick sizes")
        extra.append(f"repeats {run.get('repeats') or 'default'}")
        if run.get("load_before") is not None:
            extra.append(f"load average {run['load_before']} -> {run.get('load_after')}")
        lim = run.get("limits") or {}
        if lim:
            extra.append(f"read {lim['read_bw'] / 1e9:.1f} GB/s, matmul {lim['peak_f64'] / 1e9:.0f} GFLOP/s f64")
        lines.append(f"- {m.get('date', '(no date)')}: {cmd} ({', '.join(extra)}; {path})")
        mach = f"{m.get('cpu', '?')}, {m.get('cpus', '?')} CPUs, {m.get('threads', '?')} pygenmod threads"
        mach += f", {m.get('system', '?')}"
        vers = [f"pygenmod {m.get('pygenmod', '?')}", f"Python {m.get('python', '?')}", f"NumPy {m.get('numpy', '?')}"]
        vers += [f"{k} {v}" for k, v in (meta.get("peers") or {}).items()]
        machines.setdefault(mach, []).append(path)
        versions.setdefault(", ".join(vers), []).append(path)
    for label, seen in (("Machine", machines), ("Versions", versions)):
        for text, paths in seen.items():
            where = f" ({', '.join(paths)})" if len(seen) > 1 else ""
            lines.append(f"\n{label}{where}: {text}.")
    lines.append(
        "\nTimes per call (median). Peers: peer time / fastest pygenmod time, alone / interleaved / busy "
        "(> 1: pygenmod is faster). pygenmod rows: the spreads interleaved / alone (target <= 1.15x) and "
        "busy / alone (target <= 2x); `!` marks a miss."
    )
    return lines


def table(fam: str, rows) -> list[str]:
    lines = [f"### {fam}", ""]
    titles = {}
    for r in rows:
        titles.setdefault(r["workload"], r.get("title", ""))
    lines += [f"- {wid}: {t}" for wid, t in titles.items()] + [""]
    lines.append(
        "| workload | candidate | alone | interleaved | busy | peer / pygenmod | interl. / alone | busy / alone |"
    )
    lines.append("|---|---|--:|--:|--:|--:|--:|--:|")
    skipped = []
    for r in rows:
        secs = r.get("seconds") or {}
        if not secs:
            skipped.append(f"{r['workload']} {r['candidate']} ({r.get('note') or 'not measured'})")
            continue
        same = [o for o in rows if o["workload"] == r["workload"]]
        mine = is_ours(r)
        cells = [r["workload"], r["candidate"], *(fmt_time(secs.get(m)) for m in MODES)]
        cells += ["", spread(r, "interleaved"), spread(r, "busy")] if mine else [peer_ratios(r, same), "", ""]
        lines.append("| " + " | ".join(cell(c) for c in cells) + " |")
    if skipped:
        lines += ["", "Not measured: " + "; ".join(skipped) + "."]
    return lines + [""]


def main(argv=None) -> int:
    paths = sys.argv[1:] if argv is None else argv
    if not paths or any(p in ("-h", "--help") for p in paths):
        print(__doc__.strip())
        return 0 if paths else 2
    rows, metas = load(paths)
    fams = {}
    for r in rows:
        fams.setdefault(family(r["workload"]), []).append(r)
    order = sorted(fams, key=family_key)
    out = header(metas) + [""]
    for fam in order:
        wids = list(dict.fromkeys(r["workload"] for r in fams[fam]))  # workloads in first-seen order
        out += table(fam, sorted(fams[fam], key=lambda r: wids.index(r["workload"])))
    print("\n".join(out).rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
