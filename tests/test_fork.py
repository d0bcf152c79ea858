"""fork after a parallel kernel (issue 18 item 1): the child works (cpu: on a fresh thread pool,
with the parent's thread count) or fails at once with a clear error (numba's GNU OpenMP layer);
it never hangs.

Every scenario runs in a fresh interpreter with a timeout, so a regression fails instead of
hanging the test session."""

import os
import sys

import pytest
from conftest import run_python

from pygenmod import _backend

pytestmark = [
    pytest.mark.reliability,
    pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "darwin", reason="needs os.fork"),
]

# Big enough to open parallel regions with 2 threads (above every kernel's work threshold).
PRELUDE = """
import os, sys, numpy as np, pygenmod
from pygenmod import cem, sampling
pygenmod.set_num_threads(2)
if len(sys.argv) > 1:
    pygenmod.set_backend(sys.argv[1])
x = np.random.default_rng(0).standard_normal((512, 1024))
ref = cem.top_k(x, 3)
z = sampling.rsample_normal(np.zeros((4096, 64)), np.zeros((4096, 64)), seed=1)

def work(i):
    assert (cem.top_k(x, 3) == ref).all()
    return float(sampling.rsample_normal(np.zeros((4096, 64)), np.zeros((4096, 64)), seed=1).sum())
"""

FORK = (
    PRELUDE
    + """
pid = os.fork()
if pid == 0:
    try:
        from pygenmod import _cpu_runtime as rt
        print("child", work(0), pygenmod.get_num_threads(), rt.started_threads(), flush=True)
        os._exit(0)
    except BaseException as e:
        print("child error", type(e).__name__, e, flush=True)
        os._exit(3)
_, status = os.waitpid(pid, 0)
print("parent", work(0), os.waitstatus_to_exitcode(status), flush=True)
"""
)

POOL = (
    PRELUDE
    + """
import multiprocessing as mp
with mp.get_context("fork").Pool(2) as pool:
    try:
        print("pool", pool.map(work, range(4)), flush=True)
    except Exception as e:
        print("pool error", type(e).__name__, e, flush=True)
"""
)

THREAD_IN_CHILD = (
    PRELUDE
    + """
import threading
pid = os.fork()
if pid == 0:
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("v", (work(0), pygenmod.get_num_threads())))
    t.start(); t.join()
    print("child thread", out["v"], flush=True)
    os._exit(0)
_, status = os.waitpid(pid, 0)
print("exit", os.waitstatus_to_exitcode(status))
"""
)


def _run(code, *args):
    out = run_python(["-c", code, *args], capture_output=True, text=True, timeout=300)
    return out.stdout + out.stderr


needs_cpu = pytest.mark.skipif(not _backend.is_available("cpu"), reason="compiled extension unavailable")


@needs_cpu
def test_fork_after_parallel_kernel_child_runs_in_parallel():
    out = _run(FORK)
    assert "child " in out and "child error" not in out, out
    child = next(ln for ln in out.splitlines() if ln.startswith("child "))
    parent = next(ln for ln in out.splitlines() if ln.startswith("parent "))
    assert child.split()[1] == parent.split()[1]  # the same result in the child
    assert child.split()[2:] == ["2", "1"]  # the parent's count, and a worker of its own
    assert parent.split()[2] == "0"


@needs_cpu
def test_fork_pool_after_parallel_kernel():
    out = _run(POOL)
    assert "pool [" in out, out


@needs_cpu
def test_threads_started_in_the_child_get_a_fresh_pool():
    out = _run(THREAD_IN_CHILD)
    assert "child thread" in out and "exit 0" in out, out
    assert out.split("child thread")[1].split(")")[0].strip().endswith("2")


@pytest.mark.skipif(not _backend.is_available("numba"), reason="numba unavailable")
def test_numba_backend_fork_fails_at_once_or_works():
    out = _run(FORK, "numba")
    assert "parent" in out, out
    if "child error" in out:  # numba's GNU OpenMP layer: a clear error instead of SIGTERM/hang
        assert "BackendError" in out and "forked" in out, out
    else:
        assert "child " in out, out


@pytest.mark.skipif(not _backend.is_available("numba"), reason="numba unavailable")
def test_numba_backend_fork_pool_does_not_hang():
    out = _run(POOL, "numba")
    assert "pool [" in out or ("pool error BackendError" in out and "forked" in out), out
