"""Plain-text report helpers for the demo: sections, timed steps, aligned tables."""

from __future__ import annotations

import contextlib
import sys
import time

import pygenmod


class Report:
    def __init__(self, out=None):
        self.out = out or sys.stdout
        self.t0 = time.perf_counter()

    def line(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def banner(self) -> None:
        avail = [n for n, b in pygenmod.backends().items() if b["available"]]
        self.line(
            f"pygenmod {pygenmod.__version__} demo  |  backends: {', '.join(avail)}  |  "
            f"threads: {pygenmod.get_num_threads()}"
        )

    def section(self, title: str) -> None:
        self.line()
        self.line(title)
        self.line("=" * len(title))

    @contextlib.contextmanager
    def timed(self, label: str):
        t = time.perf_counter()
        yield
        self.line(f"  [{label}: {(time.perf_counter() - t) * 1e3:.1f} ms]")

    def table(self, header, rows) -> None:
        cells = [list(map(str, header))] + [[str(c) for c in r] for r in rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
        for k, r in enumerate(cells):
            self.line("  " + "  ".join(c.rjust(w) for c, w in zip(r, widths)))
            if k == 0:
                self.line("  " + "  ".join("-" * w for w in widths))

    def footer(self) -> None:
        self.line()
        self.line(f"demo finished in {time.perf_counter() - self.t0:.1f} s")
