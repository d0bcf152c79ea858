"""Reuse of host arrays that nothing references any more: search trees and large outputs.

Freshly mapped pages cost a page fault each when first written, the kernel zeroing the page.
glibc maps every allocation of 32 MiB or more anew and unmaps it when it is freed (smaller ones
come back from its heap, but trees of a few MB were still returned to the OS at the top of the
heap), so a loop that allocates such an array per call pays for its pages again on every call:

- a search's batch of trees (a few MB at B=256; ~1 ms of a 10 ms Gumbel search at B=256,
  A=16, 64 simulations): new_tree takes each field array from :func:`full`;
- a large output, e.g. a backward's 32 MiB gradient (+2.7 ms on top of ~3.3 ms of writing
  it, measured on the bench VM): the public functions allocate their per-element outputs
  with :func:`empty`, the one-call fast paths too (through fast_path.hpp's empty).

Both hand out an array of the same shape and dtype that only this module still references,
else allocate a new one and remember it. In a training loop that keeps each step's result
until the next call returns, two arrays per output alternate; a loop that drops it at once
reuses one.

"Only this module references it" is read from CPython's reference count, which counts every
holder: a variable, a result tuple, a torch tensor made by ``torch.from_numpy``, a buffer
export, and every view (a view keeps its base array alive), so an array anyone still holds,
directly or through a view, is never handed out twice. Builds without the GIL, and other
interpreters, allocate every time. At most MAX_ARRAYS arrays and MAX_KEPT_BYTES bytes are kept
(the least recently handed out forgotten first); :func:`clear` forgets them all.
"""

from __future__ import annotations

import math
import sys
import threading

import numpy as np

#: arrays remembered at most, and their bytes at most (the least recently handed out are forgotten first)
MAX_ARRAYS = 32
MAX_KEPT_BYTES = 512 << 20
#: full() (trees): the smallest and the largest array remembered (small arrays come from the
#: heap's free lists without page faults anyway)
MIN_BYTES = 1 << 16
MAX_BYTES = 32 << 20
#: empty() (outputs): the smallest array remembered. glibc maps anew from 32 MiB, and gives the
#: top of its heap back to the OS: outputs of a few hundred KiB faulted their pages in again
#: call after call (rsample_normal at 2 x 16384 float64, 256 KiB: 334 -> 152 us with the pool;
#: kl_normal_backward at 2 x 65536: 945 -> 234 us). Below 128 KiB (glibc's first mmap bound)
#: the pool's bookkeeping (~1 us) is not worth it.
OUTPUT_MIN_BYTES = 128 << 10

_ENABLED = sys.implementation.name == "cpython" and getattr(sys, "_is_gil_enabled", lambda: True)()
# re-entrant: a garbage collection inside _remember may run code that calls back into pygenmod
_lock = threading.RLock()
# (shape, dtype) -> [stamp, array] pairs, in stamp order: the stamp is the last time the array
# was handed out (eviction forgets the least recently handed out array first)
_kept: dict[tuple, list[list]] = {}
_count = 0
_bytes = 0
_clock = 0


def allocate(shape: tuple[int, ...], fill: float, dtype, xp=np):
    """A new array of this shape and dtype, every element ``fill`` (zeros: calloc'd pages)."""
    return xp.zeros(shape, dtype) if fill == 0 else xp.full(shape, fill, dtype)


def full(shape: tuple[int, ...], fill: float, dtype) -> np.ndarray:
    """A C-contiguous host array of this shape and dtype, every element ``fill``."""
    a, kept = _kept_or_new(shape, np.dtype(dtype), MIN_BYTES, MAX_BYTES, lambda s, d: allocate(s, fill, d))
    if kept:
        a.fill(fill)
    return a


def empty(shape: tuple[int, ...], dtype) -> np.ndarray:
    """A C-contiguous host array of this shape and dtype, uninitialised: for an output that the
    caller writes entirely before anyone reads it."""
    return _kept_or_new(tuple(shape), np.dtype(dtype), OUTPUT_MIN_BYTES, MAX_KEPT_BYTES, np.empty)[0]


def _kept_or_new(shape, dtype, lo, hi, new):
    """(array, whether it was kept): a kept array of this shape and dtype that nothing else
    references, else new(shape, dtype), remembered when its size is in [lo, hi]."""
    nbytes = dtype.itemsize * math.prod(shape)
    if not (_ENABLED and lo <= nbytes <= hi):
        return new(shape, dtype), False
    key = (shape, dtype)
    with _lock:
        a = _take(key)
    if a is not None:
        return a, True
    a = new(shape, dtype)
    _remember(key, a)
    return a, False


def _refcount(pairs, i):
    """The reference count of pairs[i][1] as seen here (one code path for the test and its
    calibration below, so that the count holds on every CPython version)."""
    a = pairs[i][1]
    return sys.getrefcount(a)


# The count _refcount sees for an array that only the pool holds, measured rather than assumed:
# 3 up to CPython 3.13 (the list's, the local's and getrefcount's argument), fewer where the
# interpreter borrows the local's reference (3.14).
_ONLY_OURS = _refcount([[0, np.empty(0)]], 0)


def _take(key):
    global _clock
    pairs = _kept.get(key, [])
    i = 0
    while i < len(pairs):
        if _refcount(pairs, i) != _ONLY_OURS:
            i += 1
            continue
        a = pairs[i][1]
        # a dropped array whose last owner changed it in place (read-only, reshaped) is forgotten
        if not (a.flags.writeable and a.flags.c_contiguous and a.shape == key[0] and a.dtype == key[1]):
            _forget(key, i)
            continue
        _clock += 1
        pairs.append([_clock, pairs.pop(i)[1]])  # the most recently handed out: last
        return a
    return None


def _remember(key, a):
    global _count, _bytes, _clock
    with _lock:
        _clock += 1
        _kept.setdefault(key, []).append([_clock, a])
        _count += 1
        _bytes += a.nbytes
        while _kept and (_count > MAX_ARRAYS or _bytes > MAX_KEPT_BYTES):
            _forget(min(_kept, key=lambda k: _kept[k][0][0]), 0)  # the least recently handed out


def _forget(key, i):
    global _count, _bytes
    _bytes -= _kept[key].pop(i)[1].nbytes
    _count -= 1
    if not _kept[key]:
        del _kept[key]


def clear() -> None:
    """Forget every remembered array (their memory is freed once nothing else holds them)."""
    global _count, _bytes
    with _lock:
        _kept.clear()
        _count = _bytes = 0
