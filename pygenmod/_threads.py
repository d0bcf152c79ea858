"""pygenmod's threading policy: how its OpenMP pool shares the machine (docs/threads.md).

- **Short spinning.** GNU OpenMP workers spin for a long time (GOMP_SPINCOUNT=300000 pause
  loops, milliseconds) after every parallel region and at every barrier. Next to another thread
  pool (OpenBLAS, PyTorch, numba, a data loader) or a busy core, that spinning steals the core
  the other pool (or our own descheduled worker) needs, and a call that takes 0.5 ms alone takes
  50-900 ms. libgomp reads its settings once, when it is loaded, so before the first compiled
  module loads we set ``GOMP_SPINCOUNT`` (see SPINCOUNT) for that load only and restore the
  environment afterwards (child processes and other OpenMP runtimes, e.g. PyTorch's own libgomp,
  never see it). A user's own OMP_WAIT_POLICY or GOMP_SPINCOUNT always wins.
- **One process-wide thread count.** OpenMP's and numba's thread counts are per OS thread; a
  worker thread would ignore a ``set_num_threads`` made in the main thread. pygenmod keeps one
  process-wide count and every thread applies it (lazily, before its next kernel call).
  ``threadpoolctl.threadpool_limits`` and ``threadpool_info`` see it as user_api "pygenmod".
- **fork.** A child forked after a parallel region would wait forever for pool threads that do
  not exist there. In a forked child the thread that forked runs its CPU kernels serially
  (other threads the child starts get a fresh pool); the numba backend, whose GNU OpenMP layer
  kills such a child, raises BackendError at once instead.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import numbers
import os
import sys
import threading
from types import ModuleType

#: GOMP_SPINCOUNT applied at load unless the user set OMP_WAIT_POLICY / GOMP_SPINCOUNT. A pause
#: loop of this many iterations is some microseconds: back-to-back regions of one call still find
#: the workers awake, and a worker gives its core back right after a region or a stalled barrier.
#: `python bench/interleaved.py policy` measures libgomp's default (300000), 10000, this and
#: passive waiting (bench/RESULTS.md): 1000 and passive tie on the issue-11 reproductions and on
#: large kernels; 10000 still left 5-67 ms stalls in policy iteration next to OpenBLAS.
SPINCOUNT = "1000"
_ENV_KEYS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")

_lock = threading.Lock()
_target: int | None = None  # process-wide thread count; None: the OpenMP default
_generation = 0  # bumped whenever _target changes; each thread re-applies on a change
_tls = threading.local()
_forked_tid: int | None = None  # in a forked child: the ident of the thread that forked
_numba_fork_unsafe = False  # numba's GNU OpenMP layer ran before the fork (it kills the child)
_default_threads = None
_runtime = None
#: what load_runtime found and did (``pygenmod info`` and threadpoolctl show it)
state = {"spincount": None, "libgomp_preloaded": None}


def max_threads() -> int:
    """The most threads set_num_threads accepts (libgomp aborts the process when it cannot
    create the threads asked for; thousands are never useful)."""
    return max(64, 4 * (os.cpu_count() or 1))


def check_count(n: int, name: str = "n") -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"{name}: expected a positive int, got {n!r} ({type(n).__name__})")
    n = int(n)
    if not 1 <= n <= max_threads():
        raise ValueError(f"{name}: must be in [1, {max_threads()}] (4 per CPU, at least 64), got {n}")
    return n


def _libgomp_loaded() -> bool:
    try:
        with open("/proc/self/maps") as f:
            return any("/libgomp.so" in line for line in f)
    except OSError:
        return False


def load_runtime() -> ModuleType:
    """Import the compiled runtime once, with the spin setting in place for libgomp's load."""
    global _runtime, _default_threads
    if _runtime is not None:
        return _runtime
    with _lock:
        if _runtime is not None:
            return _runtime
        user_set = any(k in os.environ for k in _ENV_KEYS)
        state["libgomp_preloaded"] = _libgomp_loaded()
        if not user_set:
            os.environ["GOMP_SPINCOUNT"] = SPINCOUNT
        try:
            rt = importlib.import_module("pygenmod._cpu_runtime")
        finally:
            if not user_set:
                del os.environ["GOMP_SPINCOUNT"]
        if user_set:
            state["spincount"] = "user: " + ", ".join(f"{k}={os.environ[k]}" for k in _ENV_KEYS if k in os.environ)
        elif state["libgomp_preloaded"]:
            state["spincount"] = "libgomp was loaded before pygenmod: its own setting"
        else:
            state["spincount"] = SPINCOUNT
        _default_threads = rt.get_max_threads()
        _runtime = rt
    return rt


def _runtime_or_none():
    try:
        return load_runtime()
    except ImportError:
        return None


# ----------------------------------------------------------------------------- thread count
def set_num_threads(n: int) -> None:
    global _target, _generation
    n = check_count(n)
    with _lock:
        _target = n
        _generation += 1
    # this thread now; numba too if it is loaded (never imported just for this: ~0.5 s)
    apply(numba_too="numba" in sys.modules)


def get_num_threads() -> int:
    """The threads a kernel called from this thread would use."""
    if _serial_here():
        return 1
    if _target is not None:
        return _target
    rt = _runtime_or_none()
    if rt is not None:
        return rt.get_max_threads()
    return int(os.environ.get("OMP_NUM_THREADS", "").split(",")[0] or os.cpu_count() or 1)


def _serial_here() -> bool:
    return _forked_tid is not None and threading.get_ident() == _forked_tid


def apply(numba_too: bool = False) -> None:
    """Bring this OS thread's OpenMP (and, for numba calls, numba's) thread count in line with
    the process-wide one. Called by the dispatcher before every CPU kernel call: one
    thread-local lookup when nothing changed."""
    gen = _generation
    if getattr(_tls, "gen", -1) != gen:
        n = 1 if _serial_here() else _target
        if n is not None:
            rt = _runtime_or_none()
            if rt is not None:
                rt.set_num_threads(n)
        _tls.gen = gen
    if numba_too and getattr(_tls, "numba_gen", -1) != gen:
        n = 1 if _serial_here() else _target
        if n is not None:
            import numba

            numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
        _tls.numba_gen = gen


def numba_usable() -> str | None:
    """None, or why the numba backend cannot run in this (forked) process."""
    if _numba_fork_unsafe:
        return (
            "this process was forked after numba's GNU OpenMP threading layer ran, and that "
            "layer terminates forked children; use the 'cpu' backend, the multiprocessing start "
            "method 'spawn' or 'forkserver', or NUMBA_THREADING_LAYER=tbb/workqueue"
        )
    return None


# ----------------------------------------------------------------------------- fork
def _after_fork_in_child() -> None:
    global _forked_tid, _generation, _numba_fork_unsafe
    # Locks held by other parent threads do not exist here: start with fresh ones.
    globals()["_lock"] = threading.Lock()
    if _runtime is not None or _libgomp_loaded():
        _forked_tid = threading.get_ident()
        _generation += 1  # the forking thread applies "serial" before its next kernel
    nb = sys.modules.get("numba")
    if nb is not None:
        try:
            layer = nb.threading_layer()  # ValueError: numba never launched its threads
        except Exception:  # noqa: BLE001 (any failure: numba never launched)
            layer = None
        _numba_fork_unsafe = layer == "omp"


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# ----------------------------------------------------------------------------- threadpoolctl
def _controller_class():
    from threadpoolctl import LibController

    class PygenmodController(LibController):
        """threadpoolctl view of pygenmod's process-wide thread count."""

        user_api = "pygenmod"
        internal_api = "pygenmod"
        filename_prefixes = ("_cpu_runtime",)

        def get_num_threads(self):
            return get_num_threads()

        def set_num_threads(self, num_threads):
            set_num_threads(max(1, min(int(num_threads), max_threads())))

        def get_version(self):
            import pygenmod

            return pygenmod.__version__

        def set_additional_attributes(self):
            self.spincount = state["spincount"]

    return PygenmodController


_registered = False


def register_threadpoolctl() -> None:
    global _registered
    if _registered:
        return
    _registered = True
    import threadpoolctl

    if hasattr(threadpoolctl, "register"):  # custom controllers: threadpoolctl >= 3.5
        threadpoolctl.register(_controller_class())


class _RegisterOnImport(importlib.abc.MetaPathFinder):
    """Registers the controller when threadpoolctl is imported (importing it ourselves costs
    ~40 ms of every ``import pygenmod``)."""

    def find_spec(self, name, path=None, target=None):
        if name != "threadpoolctl":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_register(module):
            exec_module(module)
            try:
                sys.modules[name] = module
                register_threadpoolctl()
            except Exception:  # noqa: BLE001, S110 (never break the user's import of threadpoolctl)
                pass

        spec.loader.exec_module = exec_and_register
        return spec


def install_threadpoolctl_hook() -> None:
    if "threadpoolctl" in sys.modules:
        register_threadpoolctl()
    elif not any(isinstance(f, _RegisterOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _RegisterOnImport())
