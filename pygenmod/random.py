"""Counter-based random numbers (Philox-4x32-10) that are the same on every backend.

The randomness rule of the whole package: ``seed=None`` draws a fresh key from the package
generator (advancing on every call; :func:`manual_seed`, :func:`get_state`, :func:`set_state`),
an explicit integer seed (or a ``numpy.random.Generator``, or a JAX PRNG key) gives the
stateless, reproducible draw, unaffected by the package generator. With the key fixed,
a draw is a pure function of ``(seed, stream, element)``:

- ``seed`` (0 <= seed < 2**64) is the Philox key;
- an array of shape ``(R, ...)`` with two or more axes takes row ``r`` from stream
  ``stream + r``; a 1-D array (or a scalar) is one stream, ``stream``;
- within a stream, element ``offset + i`` (row-major over the trailing axes) is used.

So row ``r`` of ``normal(seed, (B, D))`` is the same whatever ``B`` is, on the CPU, numba and
CUDA backends and whatever the thread count. ``bits`` and ``uniform`` are bit-identical on
every backend, ``normal`` (Box-Muller) and ``gumbel`` of both precisions on the two CPU
backends; on CUDA they agree with the CPU to float rounding (and are bitwise on any one
backend). The element layout of a stream and the transforms are documented in
csrc/include/pygenmod/random.hpp and docs/sampling.md.
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import Protocol

import numpy as np

from . import _fast
from . import _validate as val
from ._dispatch import kernel
from ._seed import get_state, manual_seed, resolve_seed, set_state
from ._typing import Array, ArrayLike, Device, DTypeLike, SeedLike

UNIFORM, NORMAL, GUMBEL = 0, 1, 2


def _shape(shape) -> tuple:
    if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
        shape = (int(shape),)
    try:
        shape = tuple(_extent(s) for s in shape)
    except TypeError:
        raise TypeError(f"shape: expected an int or a tuple of ints, got {shape!r}") from None
    if any(s < 0 for s in shape):
        raise ValueError(f"shape: extents must be >= 0, got {shape}")
    val.check_size("shape", shape)
    return shape


def _extent(s) -> int:
    """An integer extent: operator.index, not int(), so 2.7 is not silently 2 (nor True 1)."""
    if isinstance(s, bool):
        raise TypeError
    return operator.index(s)


def _xp(device):
    val.choice(device, "device", ("cpu", "cuda"))
    if device == "cuda":
        import cupy

        return cupy
    return np


def _rows(shape):
    """(R, N) of the kernel view of ``shape``."""
    if len(shape) <= 1:
        return 1, (shape[0] if shape else 1)
    return shape[0], math.prod(shape[1:])


def _draw(dist, seed, shape, stream, offset, dtype, device):
    seed, stream, offset = resolve_seed(seed), val.seed_int(stream, "stream"), val.seed_int(offset, "offset")
    shape = _shape(shape)
    dtype = val.float_dtype(dtype)
    xp = _xp(device)
    R, N = _rows(shape)
    out = xp.empty((R, N), dtype)
    _, fill = kernel("sampling", "fill", device == "cuda")
    fill(seed, stream, offset, dist, out)
    return out.reshape(shape)


class _Distribution(Protocol):
    def __call__(
        self,
        seed: SeedLike = None,
        shape: int | tuple[int, ...] = (),
        *,
        stream: int = 0,
        offset: int = 0,
        dtype: DTypeLike = np.float32,
        device: Device = "cpu",
    ) -> Array: ...


def _distribution(dist: int, name: str, doc: str) -> _Distribution:
    """The public draw of one distribution. Made here rather than written three times: its
    one-call path is inline, since at a few numbers a Python frame more was what made
    ``normal(seed, (2, 4))`` slower than NumPy's generator."""

    def draw(
        seed: SeedLike = None,
        shape: int | tuple[int, ...] = (),
        *,
        stream: int = 0,
        offset: int = 0,
        dtype: DTypeLike = np.float32,
        device: Device = "cpu",
    ) -> Array:
        if (dtype is np.float32 or dtype is np.float64) and type(device) is str and device == "cpu":
            fast = _fast.cpu_kernel("sampling", "fill_fast")  # one compiled call (pygenmod._fast)
            if fast is not None:
                out = fast(seed, resolve_seed, stream, offset, dist, shape, dtype is np.float64)
                if out is not None:  # (None: nothing drawn yet, the general path runs as alone)
                    return out
        return _draw(dist, seed, shape, stream, offset, dtype, device)

    draw.__name__ = draw.__qualname__ = name
    draw.__doc__ = doc
    return draw


uniform = _distribution(
    UNIFORM,
    "uniform",
    """Uniform numbers in the open interval (0, 1): float32 from the top 24 bits of one Philox
    word, float64 from 53 bits of two words (exact, never 0 or 1).""",
)
normal = _distribution(
    NORMAL, "normal", "Standard normal numbers by Box-Muller on pairs of uniforms (see module docstring)."
)
gumbel = _distribution(GUMBEL, "gumbel", "Standard Gumbel numbers ``-log(-log(u))``, u uniform in (0, 1).")


def bits(
    seed: SeedLike = None,
    shape: int | tuple[int, ...] = (),
    *,
    stream: int = 0,
    offset: int = 0,
    device: Device = "cpu",
) -> Array:
    """The raw uint32 Philox words (element ``n`` of a stream is word ``n % 4`` of block ``n // 4``)."""
    seed, stream, offset = resolve_seed(seed), val.seed_int(stream, "stream"), val.seed_int(offset, "offset")
    shape = _shape(shape)
    xp = _xp(device)
    R, N = _rows(shape)
    out = xp.empty((R, N), np.uint32)
    _, fn = kernel("sampling", "bits", device == "cuda")
    fn(seed, stream, offset, out)
    return out.reshape(shape)


def philox_blocks(counter: ArrayLike, key: ArrayLike, *, device: Device = "cpu") -> Array:
    """Raw Philox-4x32-10 on the current backend: counter (N, 4) and key (N, 2) uint32 words ->
    (N, 4) uint32 (for known-answer tests against Random123's vectors)."""
    xp = _xp(device)
    c = xp.ascontiguousarray(xp.asarray(counter, dtype=np.uint32).reshape(-1, 4))
    k = xp.ascontiguousarray(xp.asarray(key, dtype=np.uint32).reshape(-1, 2))
    if c.shape[0] != k.shape[0]:
        raise ValueError(f"key: expected {c.shape[0]} keys, got {k.shape[0]}")
    out = xp.empty_like(c)
    _, fn = kernel("sampling", "philox", device == "cuda")
    fn(c, k, out)
    return out


def philox4x32_10(counter: ArrayLike, key: ArrayLike) -> Array:
    """One Philox-4x32-10 block (reference implementation in Python, for tests and docs):
    counter is 4 uint32 words, key is 2; returns 4 uint32 words."""
    M0, M1, W0, W1, mask = 0xD2511F53, 0xCD9E8D57, 0x9E3779B9, 0xBB67AE85, 0xFFFFFFFF
    c = [int(v) & mask for v in counter]
    k0, k1 = (int(v) & mask for v in key)
    for r in range(10):
        if r:
            k0, k1 = (k0 + W0) & mask, (k1 + W1) & mask
        p0, p1 = M0 * c[0], M1 * c[2]
        c = [((p1 >> 32) ^ c[1] ^ k0) & mask, p1 & mask, ((p0 >> 32) ^ c[3] ^ k1) & mask, p0 & mask]
    return c


__all__ = [
    "GUMBEL",
    "NORMAL",
    "UNIFORM",
    "bits",
    "get_state",
    "gumbel",
    "manual_seed",
    "normal",
    "philox4x32_10",
    "philox_blocks",
    "set_state",
    "uniform",
]
