"""The one place that knows where kernels live.

A kernel is named by (family, name). Its implementations share one contract: the
same positional arguments (inputs, then preallocated outputs) on every backend.

- cpu:   ``pygenmod._cpu_<family>.<name>`` (C++ on the shared thread pool, pybind11)
- numba: ``pygenmod._numba.<family>.<name>``
- cuda:  ``pygenmod._cuda_<family>.<name>``, called with the current CuPy stream
"""

from __future__ import annotations

import functools
import importlib

from ._backend import BackendError, choose

_MODULES = {
    "cpu": "pygenmod._cpu_{}",
    "numba": "pygenmod._numba.{}",
    "cuda": "pygenmod._cuda_{}",
}


@functools.lru_cache(maxsize=None)
def _module(family: str, backend: str):
    modname = _MODULES[backend].format(family)
    try:
        return importlib.import_module(modname)
    except ImportError as exc:
        raise BackendError(f"backend {backend!r} has no {family!r} kernels ({exc})") from exc


@functools.lru_cache(maxsize=None)
def get_kernel(family: str, name: str, backend: str):
    """The implementation of kernel ``family.name`` on ``backend``."""
    try:
        fn = getattr(_module(family, backend), name)
    except AttributeError:
        raise BackendError(f"kernel {family}.{name} is not implemented on backend {backend!r}") from None
    if backend == "cuda":
        return _with_stream(fn)
    return fn


def _with_stream(fn):
    import cupy

    @functools.wraps(fn)
    def call(*args):
        return fn(*args, cupy.cuda.get_current_stream().ptr)

    return call


def kernel(family: str, name: str, on_device: bool = False):
    """Pick the backend for arrays on the host or a CUDA device and return (backend, kernel)."""
    backend = choose(on_device)
    return backend, get_kernel(family, name, backend)


def kernel_if_any(family: str, name: str, on_device: bool = False):
    """Like :func:`kernel`, but the kernel is None where the chosen backend's family module does
    not implement it (the caller then runs the same math as array operations). An unavailable
    backend, or a family module that fails to import, still raises, as for every kernel."""
    backend = choose(on_device)
    if not hasattr(_module(family, backend), name):
        return backend, None
    return backend, get_kernel(family, name, backend)
