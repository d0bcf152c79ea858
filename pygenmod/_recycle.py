"""Reuse of the host arrays of search trees that nothing references any more.

A search allocates a fresh batch of trees (a few MB at B=256) and drops it at the next search.
Freshly mapped pages cost a page fault each when first written, and glibc returns freed
memory at the top of its heap to the OS, so every search paid for its tree's pages again
(~1 ms of a 10 ms Gumbel search at B=256, A=16, 64 simulations). new_tree therefore takes each
field array from here: an array of the same shape and dtype that only this module still
references is refilled and handed out again; else a new one is allocated and remembered.

"Only this module references it" is read from CPython's reference count, which counts every
holder: the caller's Tree, any variable, and every view (a view keeps its base array alive), so
an array a user still holds, directly or through a view, is never handed out twice. Builds
without the GIL, and other interpreters, allocate every time.
"""

from __future__ import annotations

import math
import sys
import threading

import numpy as np

#: arrays remembered at most (about two batches of trees), the largest one remembered, and the
#: smallest (small arrays come from the heap's free lists without page faults anyway)
MAX_ARRAYS = 32
MAX_BYTES = 32 << 20
MIN_BYTES = 1 << 16

_ENABLED = sys.implementation.name == "cpython" and getattr(sys, "_is_gil_enabled", lambda: True)()
_lock = threading.Lock()
_kept: dict[tuple, list[np.ndarray]] = {}  # (shape, dtype) -> arrays, in the order remembered
_count = 0
# references to a kept array that nobody else holds, as seen inside _take's loop: the list's,
# the local variable's and getrefcount's argument
_ONLY_OURS = 3


def allocate(shape: tuple[int, ...], fill: float, dtype, xp=np):
    """A new array of this shape and dtype, every element ``fill`` (zeros: calloc'd pages)."""
    return xp.zeros(shape, dtype) if fill == 0 else xp.full(shape, fill, dtype)


def full(shape: tuple[int, ...], fill: float, dtype) -> np.ndarray:
    """A C-contiguous host array of this shape and dtype, every element ``fill``."""
    dtype = np.dtype(dtype)
    nbytes = dtype.itemsize * math.prod(shape)
    if not (_ENABLED and MIN_BYTES <= nbytes <= MAX_BYTES):
        return allocate(shape, fill, dtype)
    key = (shape, dtype.str)
    with _lock:
        a = _take(key)
    if a is not None:
        a.fill(fill)
        return a
    a = allocate(shape, fill, dtype)
    _remember(key, a)
    return a


def _take(key):
    same = _kept.get(key, ())
    for i in range(len(same)):
        a = same[i]
        if sys.getrefcount(a) == _ONLY_OURS:
            return a
    return None


def _remember(key, a):
    global _count
    with _lock:
        _kept.setdefault(key, []).append(a)
        _count += 1
        if _count > MAX_ARRAYS:  # forget the oldest array of the oldest shape
            oldest = next(iter(_kept))
            del _kept[oldest][0]
            if not _kept[oldest]:
                del _kept[oldest]
            _count -= 1


def clear() -> None:
    """Forget every remembered array (their memory is freed once nothing else holds them)."""
    global _count
    with _lock:
        _kept.clear()
        _count = 0
