"""Philox-4x32-10 for the numba kernels: the same convention as csrc/include/pygenmod/random.hpp.

key = (seed lo, seed hi); counter = (block lo, block hi, stream lo, stream hi).
"""

import math

import numba as nb
import numpy as np
from numba import types
from numba.extending import intrinsic, overload

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


_BELOW_ONE_64 = np.nextafter(1.0, 0.0)
_BELOW_ONE_32 = np.nextafter(np.float32(1), np.float32(0))


@nb.njit(cache=True, inline="always")
def uniform_f64(hi, lo):
    # capped below 1 as in random.hpp: the top value (2**53 - 1/2) 2**-53 rounds to exactly 1
    bits = ((np.uint64(hi) << _S32) | np.uint64(lo)) >> np.uint64(11)
    return min((np.float64(bits) + 0.5) * 2.0**-53, _BELOW_ONE_64)


@nb.njit(cache=True, inline="always")
def uniform_f32(w):
    u = np.float32((np.float32(np.uint32(w) >> np.uint32(8)) + np.float32(0.5)) * np.float32(2.0**-24))
    return min(u, _BELOW_ONE_32)


# ---------------------------------------------------------------------------------------
# Transforms: the same formulas as random.hpp, evaluated in the same order and roundings, so
# the draws are bitwise the C++ backend's. See random.hpp for the element layout of a stream.
# ---------------------------------------------------------------------------------------
_F = np.float32
_LN2 = _F(0.693147180559945)
_SQRTH = _F(0.70710678118654752)
_C3, _C5, _C7, _C9 = _F(0.6666666667), _F(0.4), _F(0.2857142857), _F(0.2222222222)
_TWO_PI_F = _F(6.283185307179586)
_S3, _S5, _S7, _S9 = _F(-1.6666667e-1), _F(8.3333333e-3), _F(-1.9841270e-4), _F(2.7557319e-6)
_K2, _K4, _K6, _K8, _K10 = _F(-0.5), _F(4.1666667e-2), _F(-1.3888889e-3), _F(2.4801587e-5), _F(-2.7557319e-7)
_E2, _E3, _E4, _E5, _E6 = _F(0.5), _F(1.6666667e-1), _F(4.1666668e-2), _F(8.3333338e-3), _F(1.3888889e-3)
_LN2_HI, _LN2_LO = _F(0.693145751953125), _F(1.428606765330187e-06)
_LOG2E = _F(1.4426950408889634)
_ONE, _TWO, _HALF, _QUARTER, _FOUR = _F(1.0), _F(2.0), _F(0.5), _F(0.25), _F(4.0)


@nb.njit(cache=True, inline="always")
def log_f32(x):
    """random.hpp log_f32: x = m 2^e, m in [sqrt(1/2), sqrt(2)), atanh series."""
    m, e = math.frexp(np.float64(x))  # exact: m in [0.5, 1)
    m = _F(m)
    if m < _SQRTH:
        m = m * _TWO
        e -= 1
    s = (m - _ONE) / (m + _ONE)
    s2 = s * s
    p = _TWO + s2 * (_C3 + s2 * (_C5 + s2 * (_C7 + s2 * _C9)))
    return _F(e) * _LN2 + s * p


@nb.njit(cache=True, inline="always")
def exp_f32(x):
    x = _F(x)
    if x < _F(-87.3):
        x = _F(-87.3)
    if x > _F(88.37):
        x = _F(88.37)
    fn = (x * _LOG2E + _F(12582912.0)) - _F(12582912.0)  # round to nearest, as random.hpp
    r = (x - fn * _LN2_HI) - fn * _LN2_LO
    p = _ONE + r * (_ONE + r * (_E2 + r * (_E3 + r * (_E4 + r * (_E5 + r * _E6)))))
    return _F(math.ldexp(np.float64(p), int(fn)))


@nb.njit(cache=True, inline="always")
def sincos_2pi_f32(u):
    qi = np.int32(u * _FOUR + _HALF)
    q = _F(qi)
    t = (u - _QUARTER * q) * _TWO_PI_F
    t2 = t * t
    s = t * (_ONE + t2 * (_S3 + t2 * (_S5 + t2 * (_S7 + t2 * _S9))))
    c = _ONE + t2 * (_K2 + t2 * (_K4 + t2 * (_K6 + t2 * (_K8 + t2 * _K10))))
    return _quadrant(qi, s, c)


@nb.njit(cache=True, inline="always")
def _quadrant(qi, s, c):
    """(sin, cos) of 2 pi u from those of the reduced angle and the quadrant qi = round(4 u)."""
    if qi & 1:
        s, c = c, s
    if qi & 2:
        s = -s
    if (qi + 1) & 2:
        c = -c
    return s, c


@nb.njit(cache=True, inline="always")
def box_muller_f32(w0, w1):
    r = _F(math.sqrt(np.float64(_F(-2.0) * log_f32(uniform_f32(w0)))))
    s, c = sincos_2pi_f32(uniform_f32(w1))
    return r * c, r * s


# float64: random.hpp's polynomials with their explicit fused multiply-adds (llvm.fma: one
# rounding, in hardware or libm), so the draws are bitwise the C++ backend's.
@intrinsic
def fma(typingctx, a, b, c):
    """a * b + c rounded once (C's fma)."""
    sig = types.float64(types.float64, types.float64, types.float64)

    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return sig, codegen


_LN2_HI_64, _LN2_LO_64 = 6.93147180369123816490e-01, 1.90821492927058770002e-10
_SQRTH_64 = 0.7071067811865476  # the double nearest sqrt(1/2): bits 0x3FE6A09E667F3BCD
_TWO_PI_64 = 6.283185307179586477


@nb.njit(cache=True, inline="always")
def horner_fma(x, cs):
    """cs[0] + x (cs[1] + x (cs[2] + ...)), innermost first, one fused multiply-add per
    coefficient (random.hpp's horner_fma)."""
    p = cs[-1]
    for i in range(len(cs) - 2, -1, -1):
        p = fma(x, p, cs[i])
    return p


_LOG_SERIES_64 = (2.0, 2.0 / 3, 2.0 / 5, 2.0 / 7, 2.0 / 9, 2.0 / 11, 2.0 / 13, 2.0 / 15, 2.0 / 17, 2.0 / 19, 2.0 / 21)
_SIN_64 = (1.0, -1.0 / 6, 1.0 / 120, -1.0 / 5040, 1.0 / 362880, -1.0 / 39916800, 1.0 / 6227020800.0,
           -1.0 / 1307674368000.0, 1.0 / 355687428096000.0)  # fmt: skip
_COS_64 = (1.0, -0.5, 1.0 / 24, -1.0 / 720, 1.0 / 40320, -1.0 / 3628800, 1.0 / 479001600.0, -1.0 / 87178291200.0,
           1.0 / 20922789888000.0, -1.0 / 6402373705728000.0)  # fmt: skip


@nb.njit(cache=True, inline="always")
def log_f64(x):
    """random.hpp log_f64: x = m 2^e, m in [sqrt(1/2), sqrt(2)), atanh series to s^21."""
    m, e = math.frexp(x)  # exact: m in [0.5, 1)
    if m < _SQRTH_64:
        m = m * 2.0
        e -= 1
    s = (m - 1.0) / (m + 1.0)
    p = horner_fma(s * s, _LOG_SERIES_64)
    ed = np.float64(e)
    return fma(ed, _LN2_HI_64, fma(s, p, ed * _LN2_LO_64))


@nb.njit(cache=True, inline="always")
def sincos_2pi_f64(u):
    """random.hpp sincos_2pi_f64: (sin, cos) of 2 pi u, exact quadrant reduction, Taylor series."""
    qi = np.int32(u * 4.0 + 0.5)
    t = (u - 0.25 * np.float64(qi)) * _TWO_PI_64
    t2 = t * t
    return _quadrant(qi, t * horner_fma(t2, _SIN_64), horner_fma(t2, _COS_64))


@nb.njit(cache=True, inline="always")
def box_muller_f64(w0, w1, w2, w3):
    r = math.sqrt(-2.0 * log_f64(uniform_f64(w0, w1)))
    s, c = sincos_2pi_f64(uniform_f64(w2, w3))
    return r * c, r * s


@nb.njit(cache=True, inline="always")
def gumbel_f32(w):
    return -log_f32(-log_f32(uniform_f32(w)))


@nb.njit(cache=True, inline="always")
def gumbel_f64(hi, lo):
    return -log_f64(-log_f64(uniform_f64(hi, lo)))


@nb.njit(cache=True)
def gamma_f64(alpha, seed, stream):
    """random.hpp gamma_f64: one Gamma(alpha, 1) variate per stream (Marsaglia-Tsang), the same
    block layout: the alpha < 1 boost from block 0, attempt k on blocks 2k + 1 and 2k + 2."""
    boost = 1.0
    a = alpha
    if alpha < 1.0:
        w = block(seed, stream, 0)
        boost = math.exp(log_f64(uniform_f64(w[0], w[1])) / alpha)
        a = alpha + 1.0
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    blk = 1
    while True:
        w0, w1, w2, w3 = block(seed, stream, blk)
        x = box_muller_f64(w0, w1, w2, w3)[0]
        w = block(seed, stream, blk + 1)
        blk += 2
        u = uniform_f64(w[0], w[1])
        v = 1.0 + c * x
        if v <= 0.0:
            continue
        v = v * v * v
        if log_f64(u) < 0.5 * x * x + d - d * v + d * log_f64(v):
            return d * v * boost


UNIFORM, NORMAL, GUMBEL = 0, 1, 2


@nb.njit(cache=True)
def fill_range_f32(dist, seed, stream, start, n, out):
    """out[:n] = float32 elements [start, start + n) of `stream` (layout of random.hpp).

    Counter arithmetic stays in uint64 (numba turns uint64 +- int64 into float64, which
    loses the low bits past 2**53): block b0 + j holds elements 4 (b0 + j) .. 4 (b0 + j) + 3,
    so elements past 2**64 continue into blocks >= 2**62 exactly as the C++ fill does."""
    if n <= 0:
        return
    start = np.uint64(start)
    b0 = start // np.uint64(4)
    skip = np.int64(start % np.uint64(4))
    for j in range((skip + n + 3) // 4):
        w0, w1, w2, w3 = block(seed, stream, b0 + np.uint64(j))
        if dist == NORMAL:
            v0, v1 = box_muller_f32(w0, w1)
            v2, v3 = box_muller_f32(w2, w3)
        elif dist == UNIFORM:
            v0, v1, v2, v3 = uniform_f32(w0), uniform_f32(w1), uniform_f32(w2), uniform_f32(w3)
        else:
            v0, v1, v2, v3 = gumbel_f32(w0), gumbel_f32(w1), gumbel_f32(w2), gumbel_f32(w3)
        base = j * 4 - skip
        for k in range(4):
            i = base + k
            if 0 <= i < n:
                out[i] = v0 if k == 0 else (v1 if k == 1 else (v2 if k == 2 else v3))


@nb.njit(cache=True)
def fill_range_f64(dist, seed, stream, start, n, out):
    """out[:n] = float64 elements [start, start + n) of `stream` (layout of random.hpp; uint64
    counter arithmetic as in fill_range_f32)."""
    if n <= 0:
        return
    start = np.uint64(start)
    b0 = start // np.uint64(2)
    skip = np.int64(start % np.uint64(2))
    for j in range((skip + n + 1) // 2):
        w0, w1, w2, w3 = block(seed, stream, b0 + np.uint64(j))
        if dist == NORMAL:
            v0, v1 = box_muller_f64(w0, w1, w2, w3)
        elif dist == UNIFORM:
            v0, v1 = uniform_f64(w0, w1), uniform_f64(w2, w3)
        else:
            v0, v1 = gumbel_f64(w0, w1), gumbel_f64(w2, w3)
        base = j * 2 - skip
        if 0 <= base < n:
            out[base] = v0
        if 0 <= base + 1 < n:
            out[base + 1] = v1


def fill_range(dist, seed, stream, start, n, out):
    """fill_range_f32 or fill_range_f64 by out's dtype, chosen when numba types the call (a
    runtime `if out.itemsize == 4` compiles both fills for every dtype), with dist as a plain
    int64 (a literal dist compiles variants of its own). Jitted callers only."""
    raise NotImplementedError("fill_range is for numba-compiled callers")


@overload(fill_range, inline="always")
def _fill_range_typed(dist, seed, stream, start, n, out):
    fill = fill_range_f32 if out.dtype == types.float32 else fill_range_f64

    def impl(dist, seed, stream, start, n, out):
        fill(np.int64(dist), seed, stream, start, n, out)

    return impl
