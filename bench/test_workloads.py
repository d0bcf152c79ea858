"""pytest-benchmark view of the workloads behind `pygenmod bench`.

Run: pytest bench/ --benchmark-only   (PYGENMOD_BENCH_QUICK=1 for small sizes).
CI runs it at quick sizes with --benchmark-disable (tests/test_bench_smoke.py), a smoke test of every candidate.
"""

import os

import pytest

from pygenmod.benchmarks import all_workloads
from pygenmod.benchmarks.runner import InSubprocess, Missing

QUICK = os.environ.get("PYGENMOD_BENCH_QUICK", "0") == "1"
CASES = [(w, c) for w in all_workloads(quick=QUICK) for c in w.candidates]


@pytest.mark.parametrize("workload,candidate", CASES, ids=[f"{w.id}-{c.name}" for w, c in CASES])
def test_workload(benchmark, workload, candidate):
    try:
        fn = candidate.setup()
    except Missing as exc:
        pytest.skip(f"{candidate.name} missing: {exc}")
    if isinstance(fn, InSubprocess):  # needs its own process (environment read at import)
        try:
            seconds = fn.time(repeats=1)
        except Missing as exc:
            pytest.skip(f"{candidate.name} missing: {exc}")
        pytest.skip(
            f"{candidate.name} ran in a subprocess ({seconds:.3g} s per call); "
            "pytest-benchmark times in-process only: see `pygenmod bench`"
        )
    benchmark.group = workload.id
    benchmark(fn)
