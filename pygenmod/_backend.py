"""Which backends exist on this machine, which one a call uses, and thread control.

Backends: ``cpu`` (compiled C++, own thread pool), ``numba`` (JIT fallback) and ``cuda``
(compiled CUDA, for CuPy / CUDA-DLPack input). Nothing here imports numba or touches
a GPU at import time: availability is probed lazily and cached.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib
import importlib.util
import os
from collections.abc import Iterator

from . import _threads

BACKENDS = ("cpu", "numba", "cuda")

_UNSET = object()
#: use_backend's per-context override (a thread, an asyncio task): wins over _process_wide
_override: contextvars.ContextVar = contextvars.ContextVar("pygenmod_backend", default=_UNSET)
#: set_backend's choice, seen by every thread
_process_wide: str | None = None


class BackendError(RuntimeError):
    """A requested backend is unavailable or cannot serve the given arrays."""


@functools.cache
def _probe(name: str) -> tuple[bool, str]:
    if name == "cpu":
        try:
            _threads.load_runtime()  # the shared thread pool
        except ImportError as exc:
            return False, f"compiled extension not importable ({exc}); reinstall with a C++ compiler"
        return True, "compiled C++ kernels (own thread pool)"
    if name == "numba":
        if importlib.util.find_spec("numba") is None:
            return False, "numba is not installed"
        return True, "numba JIT kernels (compiled on first call, cached on disk)"
    if name == "cuda":
        return _probe_cuda()
    raise ValueError(f"unknown backend {name!r}; expected one of {BACKENDS}")


#: Oldest compute capability the CUDA kernels are built for (sm_75, Turing): see CMakeLists.txt.
CUDA_MIN_CC = (7, 5)


def _probe_cuda() -> tuple[bool, str]:
    """The CUDA backend's availability; an unavailable reason names the real CUDA error
    (an old driver is not "no device")."""
    try:
        rt = importlib.import_module("pygenmod._cuda_runtime")
    except ImportError:
        return False, "built without CUDA (no nvcc at build time, or PYGENMOD_CUDA=OFF)"
    p = rt.probe() if hasattr(rt, "probe") else {"count": rt.device_count(), "error": ""}
    if p["error"] == "cudaErrorInsufficientDriver":
        drv = p.get("driver_version", 0)
        return False, (
            f"the NVIDIA driver is missing or too old for CUDA runtime "
            f"{_cuda_version(p.get('runtime_version', 0))} (driver supports "
            f"{_cuda_version(drv) if drv else 'none'}): {p['error']}"
        )
    if p["error"] and p["error"] != "cudaErrorNoDevice":
        return False, f"CUDA initialisation failed: {p['error']} ({p.get('message', '')})"
    if p["count"] == 0:
        return False, "CUDA kernels are built, but no CUDA device is present (cudaErrorNoDevice)"
    info = rt.device_info(0)
    cc = tuple(info["compute_capability"])
    if cc < CUDA_MIN_CC:
        return False, (
            f"device 0 ({info['name']}) is sm_{cc[0]}{cc[1]}; the CUDA kernels need "
            f"sm_{CUDA_MIN_CC[0]}{CUDA_MIN_CC[1]} or newer"
        )
    if importlib.util.find_spec("cupy") is None:
        return False, "a CUDA device is present, but cupy is not installed (pip install pygenmod[cuda])"
    return True, f"compiled CUDA kernels on {info['name']} (sm_{cc[0]}{cc[1]})"


def _cuda_version(v: int) -> str:
    return f"{v // 1000}.{v % 1000 // 10}"


def backends() -> dict[str, dict[str, object]]:
    """Availability of every backend: ``{name: {"available": bool, "reason": str}}``."""
    return {n: {"available": ok, "reason": why} for n in BACKENDS for ok, why in [_probe(n)]}


def is_available(name: str) -> bool:
    return _probe(name)[0]


def _check_name(name: str | None) -> str | None:
    if name is None or name == "" or name == "auto":
        return None
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS} or None, got {name!r}")
    return name


def set_backend(name: str | None) -> None:
    """Force a backend for subsequent calls in every thread (None: choose from the arrays).

    Process-wide, so worker threads follow the main thread; a :func:`use_backend` block
    overrides it for the thread (or asyncio task) that runs the block."""
    global _process_wide
    _process_wide = _check_name(name)


@contextlib.contextmanager
def use_backend(name: str | None) -> Iterator[None]:
    """Force a backend inside a ``with`` block, for the calling thread (context) only.

    Other threads keep the process-wide choice of :func:`set_backend`; threads started inside
    the block do not inherit it (contextvars are per thread). None: choose from the arrays."""
    token = _override.set(_check_name(name))
    try:
        yield
    finally:
        _override.reset(token)


def _env_backend() -> str | None:
    # os.environ.get encodes and decodes on every call (microseconds on a loaded machine);
    # the dict behind it answers the common "not set" case in tens of nanoseconds.
    if _ENV_DATA is not None and _ENV_KEY not in _ENV_DATA:
        return None
    return _check_name(os.environ.get("PYGENMOD_BACKEND", "").strip().lower() or None)


_ENV_DATA = getattr(os.environ, "_data", None) if os.name == "posix" else None
_ENV_KEY = b"PYGENMOD_BACKEND"


def requested_backend() -> str | None:
    """The forced backend: this context's use_backend, else set_backend's, else
    ``$PYGENMOD_BACKEND``, else None."""
    forced = _override.get()
    if forced is not _UNSET:
        return forced
    if _process_wide is not None:
        return _process_wide
    return _env_backend()


@functools.cache
def _default_host() -> str:
    if is_available("cpu"):
        return "cpu"
    if is_available("numba"):
        return "numba"
    raise BackendError("no CPU backend: the extension is missing and numba is not installed")


_cpu_built: bool | None = None  # is_available("cpu"), fixed once probed (as _probe's cache)


def probe_cpu_built() -> bool:
    """is_available("cpu"), kept in _cpu_built (read without a call by pygenmod._fast)."""
    global _cpu_built
    _cpu_built = is_available("cpu")
    return _cpu_built


def choose(on_device: bool) -> str:
    """The backend for a call whose arrays live on a CUDA device (``on_device``) or the host.

    For the CPU backends this also brings the calling thread's pool in line with the
    process-wide thread count (pygenmod._threads)."""
    forced = requested_backend()
    if on_device:
        if forced not in (None, "cuda"):
            raise BackendError(f"inputs are CUDA arrays but the backend is forced to {forced!r}")
        return _checked("cuda")
    if forced is None:
        forced = _default_host()
        if forced == "numba":
            _checked(forced)
    elif forced == "cuda":
        raise BackendError("backend 'cuda' needs CuPy (or CUDA DLPack) inputs; got host arrays")
    else:
        _checked(forced)
    _threads.apply(forced == "numba")
    return forced


def _checked(name: str) -> str:
    ok, why = _probe(name)
    if ok and name == "numba":
        why = _threads.numba_usable()
        ok = why is None
    if not ok:
        raise BackendError(f"backend {name!r} is unavailable: {why}")
    return name


# ----------------------------------------------------------------------------- threads
def set_num_threads(n: int) -> None:
    """Threads used by the CPU kernels (pygenmod's pool) and numba, in every thread of the process.

    ``n``: an int in [1, max(64, 4 * os.cpu_count())]; anything else raises (TypeError for
    non-integers such as 1.5, "2" or True). Results do not depend on the thread count: parallel
    loops split independent rows (batch, state, point) and every reduction runs in a fixed
    order. ``threadpoolctl.threadpool_limits`` sets the same count (user_api "pygenmod").
    """
    _threads.set_num_threads(n)


def get_num_threads() -> int:
    """Threads a CPU kernel called from this thread uses (honours set_num_threads,
    threadpoolctl and OMP_NUM_THREADS)."""
    return _threads.get_num_threads()
