"""`pygenmod demo`: a real run of every kernel family on built-in data, as a readable report.

Each family contributes a module here with ``run(report)``; SECTIONS fixes their order.
Figures (``pygenmod demo --plots DIR``) are drawn apart from the report, in plots.py.
"""

from __future__ import annotations

import importlib

from ._report import Report

SECTIONS = ("mdp", "gmm", "spatial", "sampling", "vae", "mcts", "compose", "trpo")


def run(sections=None, out=None, plots=None) -> int:
    """Print the report of ``sections`` (default: all); ``plots``: a folder to also write one PNG
    per section into (needs matplotlib; see pygenmod.demos.plots)."""
    report = Report(out)
    report.banner()
    for name in sections or SECTIONS:
        module = importlib.import_module(f"pygenmod.demos.{name}")
        report.section(module.TITLE)
        module.run(report)
    if plots:
        from .plots import render

        report.line()
        report.line("figures: " + ", ".join(render(plots, sections)))
    report.footer()
    return 0
