"""Benchmark workloads (bench/WORKLOADS.md) and the side-by-side runner behind `pygenmod bench`.

Each family module here defines ``workloads(quick: bool) -> list[Workload]``; FAMILIES
fixes their order. bench/test_workloads.py runs the same workloads under pytest-benchmark.
"""

from __future__ import annotations

import importlib

from .runner import Candidate, Workload, run_table  # noqa: F401

FAMILIES = ("mdp", "gmm", "spatial", "sampling", "mcts", "cem", "tiny")  # cem: W9, tiny: W8


def all_workloads(families=None, quick: bool = False):
    out = []
    for fam in families or FAMILIES:
        out.extend(importlib.import_module(f"pygenmod.benchmarks.{fam}").workloads(quick))
    return out
