"""The `pygenmod` command runs end to end."""
import os
import subprocess
import sys


def _run(*args):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, "-m", "pygenmod", *args], capture_output=True, text=True, env=env,
                          timeout=600)


def test_info_lists_backends():
    out = _run("info")
    assert out.returncode == 0, out.stderr
    for name in ("cpu", "numba", "cuda"):
        assert name in out.stdout


def test_demo_runs():
    out = _run("demo")
    assert out.returncode == 0, out.stderr
    assert "demo finished" in out.stdout


def test_bench_quick_runs():
    out = _run("bench", "--quick", "--repeats", "1", "--family", "mdp")
    assert out.returncode == 0, out.stderr
    assert "pygenmod" in out.stdout
