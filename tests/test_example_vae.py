"""examples/vae_digits.py runs at tiny settings and both ELBO implementations agree."""

import os
import re

import pytest
from conftest import run_python

pytest.importorskip("torch")
pytest.importorskip("sklearn")

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "examples", "vae_digits.py")


def test_vae_digits_example_runs_and_agrees():
    r = run_python(
        [os.path.abspath(EXAMPLE), "--epochs", "1", "--n-train", "256", "--batch", "64"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    rows = re.findall(r"^(pygenmod|torch\.distributions)\s+(-?[\d.]+)\s+(-?[\d.]+)", r.stdout, re.M)
    assert len(rows) == 2, r.stdout
    vals = [float(v) for _, a, b in rows for v in (a, b)]
    assert all(v < 0 for v in vals)
    assert max(vals) - min(vals) < 1e-2, r.stdout  # same init, batches and noise: float rounding only
