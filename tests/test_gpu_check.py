"""The GPU-check tooling itself (tools/gpu-check.sh, tools/gpu_determinism.py, the GPU bench
rows and the PYGENMOD_REQUIRE_CUDA switch), exercised on the CPU."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import is_cuda_unavailable_skip, run_python

import pygenmod
from pygenmod import _backend

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import gpu_determinism as det


def test_gpu_check_script_parses():
    subprocess.run(["bash", "-n", os.path.join(ROOT, "tools", "gpu-check.sh")], check=True)


@pytest.mark.parametrize(
    "reason,want",
    [
        ("backend 'cuda' unavailable: CUDA kernels are built, but no CUDA device is present", True),
        ("could not import 'cupy': No module named 'cupy'", True),
        ("CUDA modules not built", True),
        ("needs a GPU", True),
        ("needs two GPUs", False),  # a machine fact, not a broken CUDA
        ("CuPy has no bfloat16 arrays (pygenmod.torch widens CUDA bfloat16 tensors)", False),
        ("backend 'numba' unavailable: numba is not installed", False),
    ],
)
def test_cuda_skip_classification(reason, want):
    assert is_cuda_unavailable_skip(reason) is want


@pytest.mark.skipif(_backend.is_available("cuda"), reason="checks the switch where CUDA is missing")
def test_require_cuda_turns_cuda_skips_into_failures():
    node = os.path.join(ROOT, "tests", "test_gpu_shared.py") + "::test_spatial_softmax_cuda_smoke"
    args = ["-m", "pytest", "-q", "-p", "no:cacheprovider", node]
    env = dict(os.environ, PYGENMOD_REQUIRE_CUDA="0")
    plain = run_python(args, env=env, capture_output=True, text=True)
    assert plain.returncode == 0, plain.stdout[-2000:]
    assert "skipped" in plain.stdout
    env["PYGENMOD_REQUIRE_CUDA"] = "1"
    req = run_python(args, env=env, capture_output=True, text=True)
    assert req.returncode != 0, req.stdout[-2000:]
    assert "PYGENMOD_REQUIRE_CUDA=1 but the test was skipped" in req.stdout


def test_ulp_comparison():
    a = np.array([1.0, 2.0, -0.0, np.nan], np.float32)
    b = np.nextafter(a, np.float32(np.inf))
    b[3] = np.nan
    r = det.compare(a, b)
    assert not r["bitwise"] and r["max_ulp"] == 1 and r["nan_mismatch"] == 0
    assert det.compare(a, a.copy())["bitwise"]
    c = np.array([0.0, -0.0])
    z = det.compare(c, c[::-1].copy())
    assert not z["bitwise"] and z["max_ulp"] == 0  # +0 and -0: equal values, different bits
    assert det.compare(np.arange(4), np.array([0, 1, 2, 5]))["mismatches"] == 1


def test_determinism_dry_run_on_a_few_families():
    saved = det.CASES
    try:
        det.CASES = [c for c in saved if c[0] in ("random", "mdp", "cem", "returns")]
        rows = det.run("cpu", "cpu")
    finally:
        det.CASES = saved
    assert rows and all(r["ok"] for r in rows), [r.get("error") for r in rows]
    md = det.markdown(rows)
    assert "| random | bits | bits | bitwise | bitwise | bitwise | yes |" in md


def test_gpu_bench_rows_dry_run():
    from pygenmod.benchmarks import gpu, runner

    dev = gpu.Device(dry=True)
    ws = gpu.workloads(dev=dev)
    assert {w.id for w in ws} >= {"G-W2-diag", "G-W3-fwd", "G-W4a", "G-W5-muzero", "G-W6b", "G-W7"}
    with pygenmod.use_backend("cpu"):
        # ours only (peers need torch/jax/mctx, which the full dry run of the script covers)
        for w in ws:
            ours = [c for c in w.candidates if c.is_ours]
            rows = runner.measure(runner.Workload(w.id, w.title, ours, repeats=1))
            assert all(sec is not None for _, sec, _ in rows), (w.id, rows)


def test_gpu_wheels_installs_only_what_cannot_be_imported(tmp_path, monkeypatch):
    import gpu_wheels

    monkeypatch.setattr(gpu_wheels, "PACKAGES", {"numpy": "numpy", "no-such-dist": "no_such_module_xyz"})
    for name in ("numpy-2.0-cp312-cp312-any.whl", "no_such_dist-1.0-py3-none-any.whl", "other-1.0-py3-none-any.whl"):
        (tmp_path / name).write_bytes(b"")
    todo = gpu_wheels.to_install(str(tmp_path))
    assert [os.path.basename(w) for w in todo] == ["no_such_dist-1.0-py3-none-any.whl"]
    # a dry run installs nothing; no folder is not an error
    assert gpu_wheels.install(str(tmp_path), dry=True) == 0
    assert gpu_wheels.install(str(tmp_path / "absent"), dry=False) == 0
