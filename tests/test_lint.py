"""The repository passes the ruff lint configured in pyproject.toml (CI runs it through the
README's test command)."""
import importlib.util
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.skipif(importlib.util.find_spec("ruff") is None, reason="ruff is not installed (a test extra)")
def test_ruff_check():
    paths = [p for p in ("pygenmod", "tests", "bench", "tools", "examples") if (ROOT / p).exists()]
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", *paths], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
