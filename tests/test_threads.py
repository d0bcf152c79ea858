"""The threading policy (pygenmod/_threads.py, docs/threads.md): thread-count validation, one
process-wide count seen by every thread and by threadpoolctl, one pool shared by every module
(no OpenMP runtime loaded), OMP_NUM_THREADS as the default, a working pool in forked children,
and results independent of the serial/parallel choice on both sides of every work-size
threshold. The pool's own protocol is tested in C++ (tests/cpp/test_thread_pool.cpp)."""

import threading

import numpy as np
import pytest
from conftest import run_python

import pygenmod
from pygenmod import _backend, _threads, cem

needs_cpu = pytest.mark.skipif(not _backend.is_available("cpu"), reason="compiled extension unavailable")


@pytest.fixture
def restore_threads():
    n0 = pygenmod.get_num_threads()
    yield
    pygenmod.set_num_threads(n0)


@pytest.mark.reliability
@pytest.mark.parametrize(
    "bad, exc",
    [
        (1.5, TypeError),
        ("2", TypeError),
        (True, TypeError),
        (None, TypeError),
        (0, ValueError),
        (-1, ValueError),
        (5000, ValueError),
        (2**31, ValueError),
        (2**64, ValueError),
    ],
)
def test_set_num_threads_rejects_bad_counts(bad, exc, restore_threads):
    before = pygenmod.get_num_threads()
    with pytest.raises(exc, match="n: "):
        pygenmod.set_num_threads(bad)
    assert pygenmod.get_num_threads() == before


@pytest.mark.reliability
def test_set_num_threads_accepts_numpy_ints_and_the_maximum(restore_threads):
    pygenmod.set_num_threads(np.int64(1))
    assert pygenmod.get_num_threads() == 1
    pygenmod.set_num_threads(_threads.max_threads())
    assert pygenmod.get_num_threads() == _threads.max_threads()


@pytest.mark.reliability
def test_huge_thread_count_is_rejected_in_a_fresh_process():
    # issue 18 item 4: libgomp used to print "Thread creation failed" and exit(1)
    code = (
        "import pygenmod, numpy as np\nfrom pygenmod import cem\n"
        "try:\n    pygenmod.set_num_threads(5000)\nexcept ValueError as e:\n    print('ValueError', e)\n"
        "print(cem.top_k(np.arange(100000.0).reshape(10, -1), 2)[0])"
    )
    out = run_python(["-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "ValueError n:" in out.stdout and "[9999 9998]" in out.stdout


@needs_cpu
def test_thread_count_is_process_wide(restore_threads):
    """The count set in one thread holds in every other (the pool's count is process-wide)."""
    from pygenmod import _cpu_runtime as rt

    pygenmod.set_num_threads(1)
    seen = {}

    def worker():
        cem.top_k(np.zeros((2, 4)), 1)  # any kernel call applies the process-wide count
        seen["omp"] = rt.get_max_threads()
        seen["api"] = pygenmod.get_num_threads()

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen == {"omp": 1, "api": 1}
    pygenmod.set_num_threads(2)
    cem.top_k(np.zeros((2, 4)), 1)
    assert rt.get_max_threads() == 2


@needs_cpu
def test_threadpoolctl_sees_and_limits_the_pool(restore_threads):
    threadpoolctl = pytest.importorskip("threadpoolctl", minversion="3.5")
    pygenmod.set_num_threads(2)
    info = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "pygenmod"]
    assert len(info) == 1 and info[0]["num_threads"] == 2
    with threadpoolctl.threadpool_limits(1):
        assert pygenmod.get_num_threads() == 1
        with threadpoolctl.threadpool_limits(limits=2, user_api="pygenmod"):
            assert pygenmod.get_num_threads() == 2
    assert pygenmod.get_num_threads() == 2


def test_threadpoolctl_registered_when_imported_after_pygenmod():
    code = (
        "import pygenmod, threadpoolctl\n"
        "print(sorted({i['user_api'] for i in threadpoolctl.threadpool_info()}))\n"
        "with threadpoolctl.threadpool_limits(1):\n    print(pygenmod.get_num_threads())"
    )
    out = run_python(["-c", code], capture_output=True, text=True, timeout=120, check=True)
    lines = out.stdout.split("\n")
    if _backend.is_available("cpu"):
        assert "'pygenmod'" in lines[0]
        assert lines[1] == "1"


@needs_cpu
def test_one_pool_for_every_module_and_no_openmp_runtime():
    """Kernels of several families share _cpu_runtime's workers (one extra thread on two CPUs,
    not one per module), and no libgomp is loaded by pygenmod itself."""
    code = (
        "import numpy as np, pygenmod\n"
        "from pygenmod import cem, spatial, mdp, _cpu_runtime as rt\n"
        "pygenmod.set_num_threads(2)\n"
        "cem.top_k(np.random.rand(4096, 256), 3)\n"
        "spatial.spatial_softmax(np.random.rand(8, 32, 64, 64).astype(np.float32))\n"
        "import threading\n"
        "maps = open('/proc/self/maps').read()\n"
        "print(rt.started_threads(), threading.active_count(), 'libgomp' in maps)\n"
        "import os\nprint(len(os.listdir('/proc/self/task')))"
    )
    out = run_python(["-c", code], capture_output=True, text=True, timeout=120, check=True).stdout.split()
    started, py_threads, gomp, os_threads = int(out[0]), int(out[1]), out[2], int(out[3])
    assert started == 1
    assert gomp == "False"
    assert os_threads <= py_threads + started + 8  # (OpenBLAS's own threads: at most a few)


@needs_cpu
@pytest.mark.parametrize("env, want", [({"OMP_NUM_THREADS": "1"}, 1), ({"OMP_NUM_THREADS": "3,2"}, 3)])
def test_omp_num_threads_sets_the_default(env, want):
    import os

    code = "import pygenmod\nprint(pygenmod.get_num_threads())"
    out = run_python(["-c", code], env={**os.environ, **env}, capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == [str(want)]


@needs_cpu
@pytest.mark.reliability
def test_forked_child_runs_kernels_on_a_fresh_pool():
    """A child forked after parallel kernels (workers started) computes the same results, in
    parallel, with workers of its own."""
    code = (
        "import os, numpy as np, pygenmod\n"
        "from pygenmod import cem, _cpu_runtime as rt\n"
        "pygenmod.set_num_threads(2)\n"
        "x = np.random.default_rng(0).random((4096, 512))\n"
        "ref = cem.top_k(x, 5)[0]\n"
        "assert rt.started_threads() == 1\n"
        "r, w = os.pipe()\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    before = rt.started_threads()\n"
        "    ok = bool((cem.top_k(x, 5)[0] == ref).all())\n"
        "    os.write(w, f'{before} {rt.started_threads()} {ok}'.encode()); os._exit(0)\n"
        "os.waitpid(pid, 0); print(os.read(r, 100).decode())"
    )
    out = run_python(["-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["0", "1", "True"]


# ------------------------------------------------------------ both sides of every threshold
def _par_min():
    from pygenmod import _cpu_cem

    return _cpu_cem.PAR_MIN


@needs_cpu
@pytest.mark.parametrize("side", ["serial", "parallel"])
def test_top_k_same_on_both_sides_of_the_threshold_and_any_thread_count(side, restore_threads, rng):
    n = 64
    rows = max(1, _par_min() // n // 4) if side == "serial" else 4 * _par_min() // n
    x = rng.integers(0, 20, (rows, n)).astype(np.float64)  # many ties
    ref = np.argsort(-x, axis=1, kind="stable")[:, :5]
    for threads in (1, 2, 3):
        pygenmod.set_num_threads(threads)
        np.testing.assert_array_equal(cem.top_k(x, 5), ref)


@needs_cpu
@pytest.mark.parametrize("B, N, D", [(2, 16, 3), (64, 256, 8)])  # below / above PAR_MIN
def test_cem_optimize_same_for_every_thread_count(B, N, D, restore_threads, rng):
    assert (B * N * D > _par_min()) == (B == 64)
    opt = rng.standard_normal((B, D))

    def f(X):
        return -((X - opt[:, None]) ** 2).sum(-1)

    runs = []
    for threads in (1, 2):
        pygenmod.set_num_threads(threads)
        runs.append(cem.cem_optimize(f, np.zeros((B, D)), np.ones((B, D)), n_samples=N, n_elite=4, n_iter=6, seed=3))
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------ issue 18 item 20: backend scope
@pytest.mark.reliability
def test_set_backend_is_process_wide_and_use_backend_per_thread():
    seen = {}

    def worker(key):
        seen[key] = _backend.requested_backend()

    try:
        pygenmod.set_backend("numba")
        t = threading.Thread(target=worker, args=("after set_backend",))
        t.start()
        t.join()
        with pygenmod.use_backend("cpu"):
            assert _backend.requested_backend() == "cpu"
            t = threading.Thread(target=worker, args=("during another thread's use_backend",))
            t.start()
            t.join()
            with pygenmod.use_backend(None):  # "choose from the arrays" also overrides
                assert _backend.requested_backend() is None
        assert _backend.requested_backend() == "numba"
    finally:
        pygenmod.set_backend(None)
    assert seen == {"after set_backend": "numba", "during another thread's use_backend": "numba"}
    assert _backend.requested_backend() is None


@needs_cpu
@pytest.mark.parametrize("S, B", [(12, 1), (64, 8), (128, 8), (181, 1)])  # B*S*S*4 around 2**17
def test_bellman_backup_same_on_both_sides_of_the_threshold(S, B, restore_threads):
    from pygenmod import mdp

    P, R = mdp.random_mdp(S, 4, B, seed=S)
    V = np.random.default_rng(S).standard_normal((B, S))
    runs = []
    for threads in (1, 2):
        pygenmod.set_num_threads(threads)
        runs.append(mdp.bellman_backup(P, R, V, 0.9))
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
    Q = R + 0.9 * np.einsum("bsat,bt->bsa", P, V)  # P (B, S, A, S)
    np.testing.assert_allclose(runs[0].V, Q.max(-1), rtol=1e-12)


@needs_cpu
@pytest.mark.parametrize("T, B", [(8, 1), (4096, 8), (512, 64), (1024, 100)])  # below / above GAE's bound
def test_gae_same_on_both_sides_of_the_threshold(T, B, restore_threads, rng):
    from pygenmod import returns

    r, v = rng.standard_normal((T, B)), rng.standard_normal((T, B))
    done = rng.random((T, B)) < 0.05
    runs = []
    for threads in (1, 2):
        pygenmod.set_num_threads(threads)
        runs.append(returns.gae(r, v, gamma=0.99, lam=0.95, terminated=done))
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
