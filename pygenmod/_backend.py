"""Which backends exist on this machine, which one a call uses, and thread control.

Backends: ``cpu`` (compiled C++/OpenMP), ``numba`` (JIT fallback) and ``cuda``
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

BACKENDS = ("cpu", "numba", "cuda")

_override: contextvars.ContextVar[str | None] = contextvars.ContextVar("pygenmod_backend", default=None)


class BackendError(RuntimeError):
    """A requested backend is unavailable or cannot serve the given arrays."""


@functools.lru_cache(maxsize=None)
def _probe(name: str) -> tuple[bool, str]:
    if name == "cpu":
        try:
            importlib.import_module("pygenmod._cpu_runtime")
        except ImportError as exc:
            return False, f"compiled extension not importable ({exc}); reinstall with a C++ compiler"
        return True, "compiled C++ kernels (OpenMP)"
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
        return False, (f"the NVIDIA driver is missing or too old for CUDA runtime "
                       f"{_cuda_version(p.get('runtime_version', 0))} (driver supports "
                       f"{_cuda_version(drv) if drv else 'none'}): {p['error']}")
    if p["error"] and p["error"] != "cudaErrorNoDevice":
        return False, f"CUDA initialisation failed: {p['error']} ({p.get('message', '')})"
    if p["count"] == 0:
        return False, "CUDA kernels are built, but no CUDA device is present (cudaErrorNoDevice)"
    info = rt.device_info(0)
    cc = tuple(info["compute_capability"])
    if cc < CUDA_MIN_CC:
        return False, (f"device 0 ({info['name']}) is sm_{cc[0]}{cc[1]}; the CUDA kernels need "
                       f"sm_{CUDA_MIN_CC[0]}{CUDA_MIN_CC[1]} or newer")
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
    """Force a backend for subsequent calls in this context (None: choose from the arrays)."""
    _override.set(_check_name(name))


@contextlib.contextmanager
def use_backend(name: str | None):
    """Context manager form of :func:`set_backend`."""
    token = _override.set(_check_name(name))
    try:
        yield
    finally:
        _override.reset(token)


def requested_backend() -> str | None:
    """The forced backend: the context's, else ``$PYGENMOD_BACKEND``, else None."""
    forced = _override.get()
    if forced is None:
        forced = _check_name(os.environ.get("PYGENMOD_BACKEND", "").strip().lower() or None)
    return forced


def choose(on_device: bool) -> str:
    """The backend for a call whose arrays live on a CUDA device (``on_device``) or the host."""
    forced = requested_backend()
    if on_device:
        if forced not in (None, "cuda"):
            raise BackendError(f"inputs are CUDA arrays but the backend is forced to {forced!r}")
        forced = "cuda"
    elif forced == "cuda":
        raise BackendError("backend 'cuda' needs CuPy (or CUDA DLPack) inputs; got host arrays")
    if forced is not None:
        ok, why = _probe(forced)
        if not ok:
            raise BackendError(f"backend {forced!r} is unavailable: {why}")
        return forced
    if is_available("cpu"):
        return "cpu"
    if is_available("numba"):
        return "numba"
    raise BackendError("no CPU backend: the extension is missing and numba is not installed")


# ----------------------------------------------------------------------------- threads
def set_num_threads(n: int) -> None:
    """Threads used by the CPU kernels (OpenMP) and, if loaded, by numba.

    Results do not depend on the thread count: parallel loops split independent
    rows (batch, state, point) and every reduction runs in a fixed order.
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if is_available("cpu"):
        importlib.import_module("pygenmod._cpu_runtime").set_num_threads(n)
    import sys

    if "numba" in sys.modules:
        import numba

        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))


def get_num_threads() -> int:
    """Threads the CPU kernels use (honours OMP_NUM_THREADS)."""
    if is_available("cpu"):
        return importlib.import_module("pygenmod._cpu_runtime").get_max_threads()
    return int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1))
