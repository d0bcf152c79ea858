"""Philox-4x32-10 for the numba kernels: the same convention as csrc/include/pygenmod/random.hpp.

key = (seed lo, seed hi); counter = (block lo, block hi, stream lo, stream hi).
"""
import numba as nb
import numpy as np

_M0 = np.uint64(0xD2511F53)
_M1 = np.uint64(0xCD9E8D57)
_W0 = np.uint32(0x9E3779B9)
_W1 = np.uint32(0xBB67AE85)
_MASK = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)


@nb.njit(cache=True, inline="always")
def philox4x32_10(c0, c1, c2, c3, k0, k1):
    c0, c1, c2, c3 = np.uint32(c0), np.uint32(c1), np.uint32(c2), np.uint32(c3)
    k0, k1 = np.uint32(k0), np.uint32(k1)
    for r in range(10):
        if r > 0:
            k0 = np.uint32(k0 + _W0)
            k1 = np.uint32(k1 + _W1)
        p0 = _M0 * np.uint64(c0)
        p1 = _M1 * np.uint64(c2)
        hi0, lo0 = np.uint32(p0 >> _S32), np.uint32(p0 & _MASK)
        hi1, lo1 = np.uint32(p1 >> _S32), np.uint32(p1 & _MASK)
        c0, c1, c2, c3 = np.uint32(hi1 ^ c1 ^ k0), lo1, np.uint32(hi0 ^ c3 ^ k1), lo0
    return c0, c1, c2, c3


@nb.njit(cache=True, inline="always")
def block(seed, stream, blk):
    seed, stream, blk = np.uint64(seed), np.uint64(stream), np.uint64(blk)
    return philox4x32_10(blk & _MASK, blk >> _S32, stream & _MASK, stream >> _S32, seed & _MASK, seed >> _S32)


@nb.njit(cache=True, inline="always")
def uniform_f64(hi, lo):
    bits = ((np.uint64(hi) << _S32) | np.uint64(lo)) >> np.uint64(11)
    return (np.float64(bits) + 0.5) * 2.0**-53


@nb.njit(cache=True, inline="always")
def uniform_f32(w):
    return np.float32((np.float32(np.uint32(w) >> np.uint32(8)) + np.float32(0.5)) * np.float32(2.0**-24))
