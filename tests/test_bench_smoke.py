"""The pytest-benchmark suite (bench/test_workloads.py) as a smoke test: every workload and
candidate runs once at quick sizes with timing disabled, in a child pytest."""

import importlib.util
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.skipif(
    importlib.util.find_spec("pytest_benchmark") is None, reason="pytest-benchmark is not installed (a test extra)"
)
def test_benchmark_suite_runs_at_quick_sizes():
    from conftest import run_python  # the child imports this session's pygenmod, not the source tree

    env = dict(os.environ, PYGENMOD_BENCH_QUICK="1")
    out = run_python(
        [
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--benchmark-disable",
            str(ROOT / "bench" / "test_workloads.py"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
