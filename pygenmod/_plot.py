"""matplotlib plumbing shared by `pygenmod bench --plot` and `pygenmod demo --plots`.

matplotlib is optional (the ``plot`` extra) and imported only here, on first use. Figures are
built as ``matplotlib.figure.Figure`` objects on an Agg canvas, never through pyplot: nothing
needs a display, and a caller's own pyplot backend and figure list are left alone.
"""

from __future__ import annotations

import datetime
import os
import platform
import textwrap

INSTALL_HINT = 'pip install "pygenmod[plot]"  (or: pip install matplotlib)'


class MissingMatplotlib(ImportError):
    """Figures were asked for but matplotlib is not installed."""


def require(what: str = "figures") -> None:
    """Raise :class:`MissingMatplotlib` naming the install command if matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
        from matplotlib.backends import backend_agg  # noqa: F401
    except ImportError as exc:
        raise MissingMatplotlib(
            f"{what} need matplotlib, which is not installed; install it with: {INSTALL_HINT}"
        ) from exc


def figure(width: float, height: float):
    """A (width x height inch) Figure on an Agg canvas with constrained layout."""
    require()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(fig, path, dpi: int = 100) -> str:
    """Write fig as PNG (exactly figsize * dpi pixels: no tight bounding box)."""
    path = os.fspath(path)
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png", metadata={"Software": None})
    return path


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """Where and with what a figure's numbers were made (kept in `bench --json` files)."""
    import numpy as np

    import pygenmod

    return dict(
        cpu=cpu_model(),
        cpus=os.cpu_count(),
        threads=pygenmod.get_num_threads(),
        system=f"{platform.system()} {platform.machine()}",
        python=platform.python_version(),
        numpy=np.__version__,
        pygenmod=pygenmod.__version__,
        date=f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
    )


def caption(info: dict | None = None, extra: str = "", width: int = 160) -> str:
    """Machine, threads, versions and date of ``info`` (default: this machine, now), wrapped."""
    m = info or machine()
    text = (
        f"{m['cpu']}, {m['cpus']} CPUs, {m['threads']} threads, {m['system']} | "
        f"pygenmod {m['pygenmod']}, Python {m['python']}, NumPy {m['numpy']}"
        + (f", {extra}" if extra else "")
        + f" | {m['date']}"
    )
    return "\n".join(textwrap.wrap(text, width))
