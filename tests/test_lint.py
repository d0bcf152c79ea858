"""The repository passes the ruff lint and format configured in pyproject.toml and clang-format
with .clang-format (CI runs them through the README's test command)."""

import importlib.util
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.skipif(importlib.util.find_spec("ruff") is None, reason="ruff is not installed (a test extra)")
def test_ruff_check():
    paths = [p for p in ("pygenmod", "tests", "bench", "tools", "examples") if (ROOT / p).exists()]
    out = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", *paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.skipif(importlib.util.find_spec("ruff") is None, reason="ruff is not installed (a test extra)")
def test_ruff_format():
    """Python is formatted by `ruff format` (pyproject.toml [tool.ruff]); run it to fix."""
    paths = [p for p in ("pygenmod", "tests", "bench", "tools", "examples") if (ROOT / p).exists()]
    out = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "--no-cache", *paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, "run `ruff format` on:\n" + out.stdout + out.stderr


def _cpp_sources():
    exts = {".hpp", ".cpp", ".cu", ".cuh", ".h"}
    dirs = [ROOT / d for d in ("csrc", "tests/cpp", "examples/cpp", "bench/cpp")]
    return sorted(str(p) for d in dirs if d.exists() for p in d.rglob("*") if p.suffix in exts)


@pytest.mark.skipif(shutil.which("clang-format") is None, reason="clang-format is not installed (a test extra)")
def test_clang_format():
    """C++/CUDA is formatted by clang-format with the repository's .clang-format; run
    `clang-format -i` on the files listed to fix."""
    out = subprocess.run(
        ["clang-format", "--dry-run", "-Werror", *_cpp_sources()], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    bad = sorted({line.split(":")[0] for line in out.stderr.splitlines() if ": error:" in line})
    assert out.returncode == 0, "not clang-formatted:\n" + "\n".join(bad)
