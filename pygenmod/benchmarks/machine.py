"""The limits of this machine: memory bandwidth and float64/float32 matmul peak."""
from __future__ import annotations

import numpy as np

from .runner import time_call


def copy_bandwidth(nbytes: int = 256 << 20) -> float:
    """Bytes read + written per second by a large array copy (NumPy, one thread)."""
    src = np.ones(nbytes // 8)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    return 2 * nbytes / time_call(lambda: np.copyto(dst, src), repeats=5)


def read_bandwidth(nbytes: int = 256 << 20) -> float:
    """Bytes read per second by a large reduction (NumPy sum, one thread)."""
    src = np.ones(nbytes // 8)
    return nbytes / time_call(lambda: src.sum(), repeats=5)


def matmul_peak(dtype=np.float64, n: int = 2048) -> float:
    """FLOP/s of an n x n matmul through the installed BLAS (all its threads)."""
    a = np.random.default_rng(0).random((n, n)).astype(dtype)
    return 2 * n**3 / time_call(lambda: a @ a, repeats=3)


def limits() -> dict:
    return dict(copy_bw=copy_bandwidth(), read_bw=read_bandwidth(),
                peak_f64=matmul_peak(np.float64), peak_f32=matmul_peak(np.float32))
