"""The `pygenmod` command runs end to end."""

from conftest import run_python

from pygenmod import _backend


def _run(*args):
    return run_python(["-m", "pygenmod", *args], capture_output=True, text=True, timeout=600)


def test_info_lists_backends():
    out = _run("info")
    assert out.returncode == 0, out.stderr
    for name in ("cpu", "numba", "cuda"):
        assert name in out.stdout
    # the child sees the same (compiled) package as this session
    assert ("cpu    yes" in out.stdout) == _backend.is_available("cpu"), out.stdout


def test_demo_runs():
    out = _run("demo")
    assert out.returncode == 0, out.stderr
    assert "demo finished" in out.stdout


def test_bench_quick_runs():
    out = _run("bench", "--quick", "--repeats", "1", "--family", "mdp")
    assert out.returncode == 0, out.stderr
    assert "pygenmod" in out.stdout


def test_bench_skip_leaves_out_candidates():
    out = _run("bench", "--quick", "--repeats", "1", "--modes", "alone", "--only", "W7", "--skip", "numba,NumPy")
    assert out.returncode == 0, out.stderr
    assert "pygenmod gae" in out.stdout
    assert "numba serial" not in out.stdout and "numpy vectorised" not in out.stdout
