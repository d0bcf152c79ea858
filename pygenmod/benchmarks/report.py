"""`pygenmod bench --json FILE --plot FILE.png`: the raw rows of a run, and one chart of them.

Rows are what :func:`pygenmod.benchmarks.runner.run_table` returns: dicts with ``workload``,
``title``, ``candidate``, ``ours``, ``seconds`` {mode: median seconds}, ``ratio`` {mode: peer
time / fastest pygenmod time} (None for pygenmod's rows), ``limit`` (fraction of the machine's
read bandwidth or float64 matmul peak, or None) and ``note``. Modes are "alone",
"interleaved" and "busy"; a row carries those that were measured.

Re-plot a saved run without timing anything: ``python -m pygenmod.benchmarks.report RUN.json OUT.png [DPI]``.
"""

from __future__ import annotations

import json
import math
import os
import sys
from importlib import metadata as _md

from .. import _plot

MODES = ("alone", "interleaved", "busy")
MODE_LABELS = {"alone": "alone", "interleaved": "interleaved with the peers", "busy": "busy cores"}
MODE_COLORS = {"alone": "#3465a4", "interleaved": "#f57900", "busy": "#73a946"}
PEERS = (
    "scipy",
    "numba",
    "torch",
    "kornia",
    "scikit-learn",
    "pomegranate",
    "quantecon",
    "pymdptoolbox",
    "jax",
    "mctx",
    "cupy-cuda13x",
)


def peer_versions() -> dict:
    """Versions of the installed peer libraries (those not installed are left out)."""
    out = {}
    for name in PEERS:
        try:
            out[name] = _md.version(name)
        except _md.PackageNotFoundError:
            pass
    return out


def load_average() -> float | None:
    """The 1-minute load average (None where the OS has none): a busy machine's timings are noisy."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def metadata(**run) -> dict:
    """Machine, versions and the run's settings (``run``: quick, repeats, limits, load_before, ...);
    the load average now is added as ``load_after``."""
    return dict(
        machine=_plot.machine(), peers=peer_versions(), run=dict(run, load_after=load_average()), argv=sys.argv[1:]
    )


def write_json(path, rows, meta: dict) -> str:
    path = os.fspath(path)
    if os.path.dirname(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(dict(meta=meta, rows=rows), f, indent=1)
        f.write("\n")
    return path


def read_json(path):
    """(rows, meta) of a file written by :func:`write_json`."""
    with open(path) as f:
        doc = json.load(f)
    return doc["rows"], doc.get("meta", {})


def _modes(rows):
    seen = {m for r in rows for m in (r.get("seconds") or {})}
    return [m for m in MODES if m in seen] + sorted(seen - set(MODES))


def _is_peer(r) -> bool:
    # a pygenmod variant that is not the headline row (ours=False, e.g. "pygenmod VI, full sweeps")
    # is a reference point of the table, not a peer: the chart leaves it out
    return not r.get("ours") and not str(r.get("candidate", "")).startswith("pygenmod")


def _layout(rows):
    """Per workload (in row order): id, title, pygenmod's limit fraction, its peer rows, and the
    names of the peers that were missing (a library or device not here: one line for all)."""
    groups = {}
    for r in rows:
        g = groups.setdefault(
            r["workload"],
            dict(id=r["workload"], title=r.get("title", ""), limit=None, best=math.inf, peers=[], missing=[]),
        )
        if r.get("ours"):
            sec = (r.get("seconds") or {}).get("alone")
            if sec is not None and sec < g["best"]:  # the limit of the fastest pygenmod row
                g["best"], g["limit"] = sec, r.get("limit")
        elif not _is_peer(r):
            continue
        elif not r.get("seconds") and str(r.get("note", "")).startswith("missing"):
            g["missing"].append(r["candidate"])
        else:
            g["peers"].append(r)
    return list(groups.values())


def _ratio_text(v):
    return f"{v:.3g}×" if v < 100 else f"{v:.0f}×"


def _label(ax, y, text, band, right=False, **kw):
    """Text on a workload's band at height y, at the left (or right) edge of the axes."""
    ax.text(
        0.995 if right else 0.005,
        y,
        text,
        transform=ax.get_yaxis_transform(),
        va="center",
        ha="right" if right else "left",
        bbox=dict(facecolor=band, edgecolor="none", pad=1),
        **kw,
    )


def _draw_group(ax, g, y, modes, band, width):
    """One workload: its header line, a row of bars per peer, a line naming missing peers.
    Returns the next free y and the (y, name) of the peer rows."""
    top, rows = y, []
    room = int(width * (6.0 if g["limit"] is not None else 9.5))  # characters before the limit text
    title = g["title"] if len(g["title"]) <= room else g["title"][: room - 1] + "…"
    _label(ax, y, f"{g['id']}  {title}", band, fontsize=8.5, fontweight="bold")
    if g["limit"] is not None:
        over = " (> 100%: in cache)" if g["limit"] > 1 else ""
        _label(
            ax,
            y,
            f"pygenmod: {100 * g['limit']:.0f}% of the machine limit{over}",
            band,
            right=True,
            fontsize=8,
            color="#a40000",
        )
    y -= 1
    if not g["peers"]:
        ax.text(1.0, y, "  no peer timed", va="center", fontsize=8, color="0.4", style="italic")
        y -= 1
    bar_h = 0.8 / len(modes)
    for r in g["peers"]:
        rows.append((y, r["candidate"]))
        ratio = r.get("ratio") or {}
        shown = [(i, m) for i, m in enumerate(modes) if ratio.get(m)]
        if not shown:
            why = r.get("note") or ("no pygenmod time" if r.get("seconds") else "not timed")
            ax.text(1.0, y, f"  {why[:80]}", va="center", fontsize=7.5, color="0.4", style="italic")
        for i, m in shown:
            v, yy = ratio[m], y + ((len(modes) - 1) / 2 - i) * bar_h
            ax.barh(yy, v - 1.0, left=1.0, height=bar_h * 0.9, color=MODE_COLORS.get(m, "0.5"))
            ax.text(
                v * (1.06 if v >= 1 else 0.94),
                yy,
                _ratio_text(v),
                va="center",
                ha="left" if v >= 1 else "right",
                fontsize=7,
            )
        y -= 1
    if g["missing"]:
        _label(
            ax,
            y,
            "not timed (library or device missing here): " + ", ".join(g["missing"]),
            band,
            fontsize=7.5,
            color="0.4",
            style="italic",
        )
        y -= 1
    ax.axhspan(y + 0.5, top + 0.5, color=band, zorder=0)
    return y, rows


def _caption(meta, width):
    """Machine, versions, the run's limits and load average."""
    run = meta.get("run", {})
    extra = ", ".join(f"{k} {v}" for k, v in (meta.get("peers") or {}).items())
    lim = run.get("limits") or {}
    if lim:
        extra += (
            f" | machine limits (red, fastest pygenmod row): read {lim['read_bw'] / 1e9:.1f} GB/s, "
            f"float64 matmul {lim['peak_f64'] / 1e9:.0f} GFLOP/s"
        )
    loads = [run.get(k) for k in ("load_before", "load_after") if run.get(k) is not None]
    if loads:
        extra += f" | 1-min load average {' → '.join(f'{v:.1f}' for v in loads)} (run start → end)"
    return _plot.caption(meta.get("machine") or _plot.machine(), extra, width=int(width * 17))


def plot(rows, path, meta: dict | None = None, *, dpi: int = 100, width: float = 10.0) -> str:
    """One chart of a run: per workload, pygenmod's speed-up over each peer (log axis), one bar
    per timing mode; pygenmod's fraction of the machine limit where the workload has one."""
    meta = meta or metadata()
    groups = _layout(rows)
    modes = _modes(rows) or ["alone"]
    n_slots = sum(1 + max(1, len(g["peers"])) + bool(g["missing"]) for g in groups)
    fig = _plot.figure(width, 1.6 + (0.2 + 0.08 * len(modes)) * max(n_slots, 3))
    ax = fig.add_subplot()
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter

    y, ticks = 0, []
    for k, g in enumerate(groups):
        y, rows_k = _draw_group(ax, g, y, modes, "0.94" if k % 2 == 0 else "white", width)
        ticks += rows_k
    if not groups:
        ax.text(1.0, -1, "no workload was timed", ha="center", va="center", fontsize=10, color="0.4")
        y = -2
    ratios = [v for g in groups for r in g["peers"] for v in (r.get("ratio") or {}).values() if v]
    ax.axvline(1.0, color="0.2", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlim(min(ratios + [1.0]) / 2.0, max(ratios + [1.0]) * 4.0)
    ax.set_ylim(y + 0.5, 0.5)
    ax.set_yticks([t for t, _ in ticks], [n for _, n in ticks], fontsize=8)
    ax.tick_params(axis="y", length=0)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}×"))
    ax.set_xlabel("speed-up of pygenmod = peer time ÷ pygenmod time (log scale; > 1× means pygenmod is faster)")
    handles = [Patch(color=MODE_COLORS.get(m, "0.5"), label=MODE_LABELS.get(m, m)) for m in modes]
    fig.legend(
        handles=handles,
        title="timing mode",
        loc="outside upper right",
        ncols=len(modes),
        fontsize=8,
        title_fontsize=8,
        frameon=False,
    )
    run = meta.get("run", {})
    how = f"median of {run.get('repeats') or 5} timed calls after a warm-up" + (
        ", quick sizes" if run.get("quick") else ""
    )
    fig.suptitle(f"pygenmod against its peers, per workload\n({how})", fontsize=11, x=0.02, ha="left")
    fig.supxlabel(_caption(meta, width), fontsize=7, color="0.3")
    return _plot.save(fig, path, dpi)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) not in (2, 3):
        print("usage: python -m pygenmod.benchmarks.report RUN.json OUT.png [DPI]", file=sys.stderr)
        return 2
    rows, meta = read_json(argv[0])
    print(plot(rows, argv[1], meta, dpi=int(argv[2]) if len(argv) == 3 else 100))
    return 0


if __name__ == "__main__":
    sys.exit(main())
