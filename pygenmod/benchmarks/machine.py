"""The limits of this machine: memory bandwidth and float64/float32 matmul peak.

Bandwidth is measured with all threads (the compiled probe in _cpu_runtime streams a
256 MiB array on the thread pool; NumPy's single-threaded copy is the fallback).
"""

from __future__ import annotations

import numpy as np

from .runner import time_call


def _probe():
    try:
        from pygenmod import _cpu_runtime

        return _cpu_runtime
    except ImportError:
        return None


def copy_bandwidth(nbytes: int = 256 << 20) -> float:
    """Bytes read + written per second by a large array copy."""
    src = np.ones(nbytes // 8)
    dst = np.zeros_like(src)
    rt = _probe()
    fn = (lambda: rt.stream_copy(src, dst)) if rt else (lambda: np.copyto(dst, src))
    return 2 * nbytes / time_call(fn, repeats=5)


def read_bandwidth(nbytes: int = 256 << 20) -> float:
    """Bytes read per second by a large reduction."""
    src = np.ones(nbytes // 8)
    rt = _probe()
    fn = (lambda: rt.stream_read(src)) if rt else (lambda: src.sum())
    return nbytes / time_call(fn, repeats=5)


def matmul_peak(dtype=np.float64, n: int = 2048) -> float:
    """FLOP/s of an n x n matmul through the installed BLAS (all its threads)."""
    a = np.random.default_rng(0).random((n, n)).astype(dtype)
    return 2 * n**3 / time_call(lambda: a @ a, repeats=3)


def limits() -> dict:
    return dict(
        copy_bw=copy_bandwidth(),
        read_bw=read_bandwidth(),
        peak_f64=matmul_peak(np.float64),
        peak_f32=matmul_peak(np.float32),
    )
