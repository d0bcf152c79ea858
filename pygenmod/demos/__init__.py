"""`pygenmod demo`: a real run of every kernel family on built-in data, as a readable report.

Each family contributes a module here with ``run(report)``; SECTIONS fixes their order.
"""
from __future__ import annotations

import importlib

from ._report import Report

SECTIONS = ("mdp", "gmm", "spatial", "sampling", "mcts", "compose")


def run(sections=None, out=None) -> int:
    report = Report(out)
    report.banner()
    for name in sections or SECTIONS:
        module = importlib.import_module(f"pygenmod.demos.{name}")
        report.section(module.TITLE)
        module.run(report)
    report.footer()
    return 0
