"""pygenmod's threading policy: how its thread pool shares the machine (docs/threads.md).

- **An own pool, not OpenMP.** The compiled CPU kernels run their parallel loops on one pool
  (csrc/include/pygenmod/thread_pool.hpp) shared by every extension module. A loop is a list of
  chunks that threads claim one at a time, and the call returns when every claimed chunk is
  done: it never waits at a barrier for a worker whose core is taken (an OpenMP region does,
  a whole scheduler slice). Idle workers poll for ~30 us, then sleep, so the pool never keeps
  a core from BLAS, torch, numba or another process for longer.
- **One process-wide thread count.** ``set_num_threads`` sets the pool's count for every thread
  of the process. numba's count is per OS thread, so each thread applies the process-wide count
  lazily before its next numba kernel. ``threadpoolctl.threadpool_limits`` and
  ``threadpool_info`` see the pool as user_api "pygenmod".
- **fork.** A forked child gets a fresh, empty pool (its workers start on first use), so the
  compiled kernels run in parallel there too. The numba backend, whose GNU OpenMP layer kills
  such a child, raises BackendError at once instead.
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

_lock = threading.Lock()
_target: int | None = None  # process-wide thread count; None: the pool's default
_generation = 0  # bumped whenever _target changes; each thread re-applies numba's on a change
_tls = threading.local()
_numba_fork_unsafe = False  # numba's GNU OpenMP layer ran before the fork (it kills the child)
_runtime = None


def max_threads() -> int:
    """The most threads set_num_threads accepts (thousands are never useful, and each costs a
    stack)."""
    return max(64, 4 * (os.cpu_count() or 1))


def check_count(n: int, name: str = "n") -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"{name}: expected a positive int, got {n!r} ({type(n).__name__})")
    n = int(n)
    if not 1 <= n <= max_threads():
        raise ValueError(f"{name}: must be in [1, {max_threads()}] (4 per CPU, at least 64), got {n}")
    return n


def load_runtime() -> ModuleType:
    """Import the compiled runtime (the pool every CPU module shares) once."""
    global _runtime
    if _runtime is None:
        rt = importlib.import_module("pygenmod._cpu_runtime")
        with _lock:
            if _target is not None:
                rt.set_num_threads(_target)
            _runtime = rt
    return _runtime


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
        if _runtime is not None:
            _runtime.set_num_threads(n)  # the pool's count: process-wide
    # numba too if it is loaded (never imported just for this: ~0.5 s)
    apply(numba_too="numba" in sys.modules)


def get_num_threads() -> int:
    """The threads a kernel called from any thread uses."""
    if _target is not None:
        return _target
    rt = _runtime_or_none()
    if rt is not None:
        return rt.get_max_threads()
    return int(os.environ.get("OMP_NUM_THREADS", "").split(",")[0] or os.cpu_count() or 1)


def apply(numba_too: bool = False) -> None:
    """Bring this OS thread's numba thread count in line with the process-wide one (the pool's
    count is process-wide already). Called by the dispatcher before every kernel call: one
    thread-local lookup when nothing changed."""
    if not numba_too:
        return
    gen = _generation
    if getattr(_tls, "numba_gen", -1) != gen:
        if _target is not None:
            import numba

            numba.set_num_threads(min(_target, numba.config.NUMBA_NUM_THREADS))
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
    global _numba_fork_unsafe
    # Locks held by other parent threads do not exist here: start with a fresh one. (The
    # compiled pool replaces its own state in the child: thread_pool.hpp.)
    globals()["_lock"] = threading.Lock()
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
            rt = _runtime_or_none()
            self.workers_started = rt.started_threads() if rt is not None else 0

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
