// Counter-based random numbers: Philox-4x32-10 (Salmon et al., SC'11, Random123).
// A draw is a pure function of (seed, stream, counter), so a sample does not depend on the
// batch it sits in, the backend, or the thread count.
//
// Convention used by every sampler in pygenmod:
//   key     = (seed & 0xffffffff, seed >> 32)
//   counter = (block & 0xffffffff, block >> 32, stream & 0xffffffff, stream >> 32)
// where `stream` identifies an independent sequence (e.g. base stream + batch row) and
// `block` indexes 4-word blocks along it. Word k of block n is element 4n + k of the stream.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "pygenmod/common.hpp"
#include "pygenmod/vecmath.hpp"  // polynomial cores of exp_f32 / log_f32

namespace pygenmod::rng {

struct u32x4 {
  std::uint32_t v[4];
};

PGM_HD void mulhilo32(std::uint32_t a, std::uint32_t b, std::uint32_t* hi, std::uint32_t* lo) {
  const std::uint64_t p = static_cast<std::uint64_t>(a) * b;
  *hi = static_cast<std::uint32_t>(p >> 32);
  *lo = static_cast<std::uint32_t>(p);
}

// Philox-4x32 with 10 rounds on counter c and key (k0, k1).
PGM_HD u32x4 philox4x32_10(u32x4 c, std::uint32_t k0, std::uint32_t k1) {
  constexpr std::uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
  constexpr std::uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  for (int r = 0; r < 10; ++r) {
    if (r > 0) {
      k0 += W0;
      k1 += W1;
    }
    std::uint32_t hi0, lo0, hi1, lo1;
    mulhilo32(M0, c.v[0], &hi0, &lo0);
    mulhilo32(M1, c.v[2], &hi1, &lo1);
    c = u32x4{{hi1 ^ c.v[1] ^ k0, lo1, hi0 ^ c.v[3] ^ k1, lo0}};
  }
  return c;
}

// The 4 words of block `block` of stream `stream` under `seed` (the pygenmod convention).
PGM_HD u32x4 block(std::uint64_t seed, std::uint64_t stream, std::uint64_t block) {
  u32x4 c{{static_cast<std::uint32_t>(block), static_cast<std::uint32_t>(block >> 32),
           static_cast<std::uint32_t>(stream), static_cast<std::uint32_t>(stream >> 32)}};
  return philox4x32_10(c, static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32));
}

// (k + 1/2) 2^-b for the top b bits k rounds to exactly 1 at k = 2^b - 1 (the tie rounds to
// even): capped at the largest value below 1, so the interval stays open (-log(-log u) of a
// Gumbel draw would be +inf) and every other value is unchanged.
constexpr double kBelowOne64 = 0x1.fffffffffffffp-1;
constexpr float kBelowOne32 = 0x1.fffffep-1f;

// Uniform in the open interval (0, 1) from 53 bits of two words.
PGM_HD double uniform_f64(std::uint32_t hi, std::uint32_t lo) {
  const std::uint64_t bits = ((static_cast<std::uint64_t>(hi) << 32) | lo) >> 11;
  const double u = (static_cast<double>(bits) + 0.5) * 0x1.0p-53;
  return u < kBelowOne64 ? u : kBelowOne64;
}

// Uniform in the open interval (0, 1) from 24 bits of one word.
PGM_HD float uniform_f32(std::uint32_t w) {
  const float u = (static_cast<float>(w >> 8) + 0.5f) * 0x1.0p-24f;
  return u < kBelowOne32 ? u : kBelowOne32;
}

// ---------------------------------------------------------------------------------------
// Element layout of a stream (shared by every backend; see docs/sampling.md):
//   uniform / gumbel float32:  element n = word n % 4 of block n / 4       (24 bits)
//   uniform / gumbel float64:  element n = words (2k, 2k+1), k = n % 2, of block n / 2
//   normal float32:  block n / 4 gives 4 normals: Box-Muller on (w0, w1) -> elements 0, 1
//                    and on (w2, w3) -> elements 2, 3
//   normal float64:  block n / 2 gives 2 normals: Box-Muller on u1 = (w0, w1),
//                    u2 = (w2, w3) -> elements 0 (cos branch), 1 (sin branch)
// Box-Muller: r = sqrt(-2 log u1), z0 = r cos(2 pi u2), z1 = r sin(2 pi u2), with u1, u2 in
// the open interval (0, 1), so r is finite (|z| <= 5.8 in float32, <= 8.6 in float64).
// The float32 transform uses the branch-free polynomial log / sincos below, so it
// vectorises and gives the same values (to rounding) on every backend.
// ---------------------------------------------------------------------------------------

// Natural log for x in (0, 1] (float32, ~1 ulp): x = m 2^e with m in [sqrt(1/2), sqrt(2)),
// log m = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.1716, odd series to s^9.
PGM_HD std::uint32_t f32_bits(float x) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(x);
#else
  std::uint32_t i;
  std::memcpy(&i, &x, 4);
  return i;
#endif
}
PGM_HD float f32_from_bits(std::uint32_t i) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(i);
#else
  float x;
  std::memcpy(&x, &i, 4);
  return x;
#endif
}

PGM_HD float log_f32(float x) {
  std::uint32_t ix = f32_bits(x);
  // Subtracting the bits of sqrt(1/2) puts the mantissa in [sqrt(1/2), sqrt(2)).
  ix -= 0x3f3504f3u;
  const std::int32_t e = static_cast<std::int32_t>(ix) >> 23;
  const float m = f32_from_bits((ix & 0x007fffffu) + 0x3f3504f3u);
  const float s = (m - 1.0f) / (m + 1.0f), s2 = s * s;
  return static_cast<float>(e) * 0.693147180559945f + s * vm::log_series_f32(s2);
}

// exp for float32 (~2 ulp, branch-free so loops vectorise): x = n ln2 + r, |r| <= ln2 / 2,
// degree-6 Taylor of exp(r), times 2^n built in the exponent bits. x is clamped to
// [-87.3, 88.37] (results stay normal and finite: large inputs saturate at ~2.6e38).
PGM_HD float exp_f32(float x) {
  x = x < -87.3f ? -87.3f : x;
  x = x > 88.37f ? 88.37f : x;
  // n = round(x / ln2) by the 1.5 * 2^23 trick (pure float ops: vectorises everywhere)
  const float fn = (x * 1.4426950408889634f + 12582912.0f) - 12582912.0f;
  const std::int32_t n = static_cast<std::int32_t>(fn);
  const float r = (x - fn * vm::kLn2HiF) - fn * vm::kLn2LoF;
  return vm::exp_poly_f32(r) * f32_from_bits(static_cast<std::uint32_t>(n + 127) << 23);
}

// sin(2 pi u) and cos(2 pi u) for u in [0, 1] (float32): u = q/4 + r exactly for the 24-bit
// uniforms, |r| <= 1/8, t = 2 pi r in [-pi/4, pi/4], Taylor to t^9 / t^10, quadrant select.
struct f32x2 {
  float a, b;
};

PGM_HD f32x2 sincos_2pi_f32(float u) {
  const std::int32_t qi = static_cast<std::int32_t>(u * 4.0f + 0.5f);  // u >= 0: truncation = floor
  const float q = static_cast<float>(qi);
  const float t = (u - 0.25f * q) * 6.283185307179586f, t2 = t * t;
  const float s =
      t * (1.0f + t2 * (-1.6666667e-1f + t2 * (8.3333333e-3f + t2 * (-1.9841270e-4f + t2 * 2.7557319e-6f))));
  const float c =
      1.0f + t2 * (-0.5f + t2 * (4.1666667e-2f + t2 * (-1.3888889e-3f + t2 * (2.4801587e-5f + t2 * -2.7557319e-7f))));
  const bool swap = (qi & 1) != 0, neg_s = (qi & 2) != 0, neg_c = ((qi + 1) & 2) != 0;
  const float ss = swap ? c : s, cc = swap ? s : c;
  return f32x2{neg_s ? -ss : ss, neg_c ? -cc : cc};  // (sin, cos)
}

// Box-Muller (float32) on two words: two independent standard normals (cos, sin branch).
PGM_HD f32x2 box_muller_f32(std::uint32_t w0, std::uint32_t w1) {
  const float r = sqrtf(-2.0f * log_f32(uniform_f32(w0)));
  const f32x2 sc = sincos_2pi_f32(uniform_f32(w1));
  return f32x2{r * sc.b, r * sc.a};
}

PGM_HD std::uint64_t f64_bits(double x) {
#if defined(__CUDA_ARCH__)
  return static_cast<std::uint64_t>(__double_as_longlong(x));
#else
  std::uint64_t i;
  std::memcpy(&i, &x, 8);
  return i;
#endif
}
PGM_HD double f64_from_bits(std::uint64_t i) {
#if defined(__CUDA_ARCH__)
  return __longlong_as_double(static_cast<long long>(i));
#else
  double x;
  std::memcpy(&x, &i, 8);
  return x;
#endif
}

// 2^n for the integer n held in the low bits of t = n + 1.5 * 2^52, n in [-1022, 1023]: the
// exponent field is n + 1023 (the shift drops t's own exponent bits).
PGM_HD double pow2_from_shifted(double t) { return f64_from_bits((f64_bits(t) + 1023u) << 52); }

// exp for float64 over the whole range (within 1 ulp of glibc's exp in the tests), branch-free so that host loops
// vectorise: x = n ln2 + r, |r| <= ln2 / 2, vecmath's degree-13 Taylor of exp(r) (the core of
// vecmath's exp_mid_f64, with the same bits where the result is normal), times 2^n as two
// normal factors, so the last product rounds once into the subnormals, or to inf, where exp
// does. exp(-inf) = 0, exp(inf) = inf, NaN stays NaN. Plain products and sums: the bits are
// the same in every CPU clone (compiled without FMA contraction) and, elsewhere, with the
// package's default flags (baseline x86-64: no FMA to contract into).
PGM_HD double exp_f64(double x) {
  constexpr double kShift = 6755399441055744.0;  // 1.5 * 2^52: adding it rounds to an integer
  x = x < -746.0 ? -746.0 : x;                   // exp(-746) rounds to 0, exp(710) to inf
  x = x > 710.0 ? 710.0 : x;
  const double t = x * vm::kLog2e + kShift;
  const double n = t - kShift;
  const double r = (x - n * vm::kLn2Hi) - n * vm::kLn2Lo;
  const double t1 = n * 0.5 + kShift;  // n = n1 + n2, both in [-538, 512]
  const double t2 = (n - (t1 - kShift)) + kShift;
  return (vm::exp_poly_f64(r) * pow2_from_shifted(t1)) * pow2_from_shifted(t2);
}

// exp for the float64 kernels shared by host and device: exp_f64 on the host (libm's scalar exp
// keeps the host loops from vectorising: 41-52 cycles per element for rsample_normal against
// 12-13 for the normal fill, float64 spatial maps 3x slower than NumPy's expression), CUDA's exp
// on the device.
PGM_HD double exp_hd_f64(double x) {
#if defined(__CUDA_ARCH__)
  return exp(x);
#else
  return exp_f64(x);
#endif
}

// The float64 transforms evaluate their polynomials with explicit fused multiply-adds: each
// step is rounded once on every CPU and on the device alike, so a draw does not depend on a
// compiler's choice to contract (the CPU clones compile with contraction off, and nvcc
// contracts by default) and the Horner chains run at one FMA per step. On a CPU without FMA
// the host falls back to libm's fma, which is exact too (slower, same bits).
PGM_HD double fmadd(double a, double b, double c) {
#if defined(__CUDA_ARCH__)
  return fma(a, b, c);
#elif defined(__GNUC__)
  return __builtin_fma(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}

// c0 + x (c1 + x (c2 + ...)), innermost first, one fused multiply-add per coefficient.
PGM_HD double horner_fma(double, double c) { return c; }
template <class... C>
PGM_HD double horner_fma(double x, double c0, C... rest) {
  return fmadd(x, horner_fma(x, rest...), c0);
}

// Natural log for positive normal float64 (~1 ulp), branch-free: the float32 method with the
// atanh series 2 s (1 + s^2/3 + ...) to s^21 and ln 2 split in two (fdlibm's constants).
PGM_HD double log_f64(double x) {
  const std::uint64_t ix = f64_bits(x) - 0x3FE6A09E667F3BCDull;  // bits of sqrt(1/2)
  // the exponent from the high word in 32-bit arithmetic (vectorises without AVX-512DQ)
  const double e = static_cast<double>(static_cast<std::int32_t>(static_cast<std::uint32_t>(ix >> 32)) >> 20);
  const double m = f64_from_bits((ix & 0x000FFFFFFFFFFFFFull) + 0x3FE6A09E667F3BCDull);
  const double s = (m - 1.0) / (m + 1.0), s2 = s * s;
  const double p = horner_fma(s2, 2.0, 2.0 / 3, 2.0 / 5, 2.0 / 7, 2.0 / 9, 2.0 / 11, 2.0 / 13, 2.0 / 15, 2.0 / 17,
                              2.0 / 19, 2.0 / 21);
  return fmadd(e, vm::kLn2Hi, fmadd(s, p, e * vm::kLn2Lo));
}

// sin(2 pi u), cos(2 pi u) for u in [0, 1] (float64): exact quadrant reduction of the 53-bit
// uniform, Taylor to t^17 / t^18 on [-pi/4, pi/4].
struct f64x2 {
  double a, b;
};

PGM_HD f64x2 sincos_2pi_f64(double u) {
  const std::int32_t qi = static_cast<std::int32_t>(u * 4.0 + 0.5);
  const double t = (u - 0.25 * static_cast<double>(qi)) * 6.283185307179586477, t2 = t * t;  // u - q/4: exact
  const double s = t * horner_fma(t2, 1.0, -1.0 / 6, 1.0 / 120, -1.0 / 5040, 1.0 / 362880, -1.0 / 39916800,
                                  1.0 / 6227020800.0, -1.0 / 1307674368000.0, 1.0 / 355687428096000.0);
  const double c = horner_fma(t2, 1.0, -0.5, 1.0 / 24, -1.0 / 720, 1.0 / 40320, -1.0 / 3628800, 1.0 / 479001600.0,
                              -1.0 / 87178291200.0, 1.0 / 20922789888000.0, -1.0 / 6402373705728000.0);
  const bool swap = (qi & 1) != 0, neg_s = (qi & 2) != 0, neg_c = ((qi + 1) & 2) != 0;
  const double ss = swap ? c : s, cc = swap ? s : c;
  return f64x2{neg_s ? -ss : ss, neg_c ? -cc : cc};  // (sin, cos)
}

// uniform_f64 in a form that vectorises (no 64-bit integer -> double conversion): the same
// value, since hi * 2^21 + (lo >> 11) < 2^53 is exact and the rounding of + 0.5 is unchanged.
PGM_HD double uniform_f64_v(std::uint32_t hi, std::uint32_t lo) {
  const double dhi = static_cast<double>(static_cast<std::int32_t>(hi ^ 0x80000000u)) + 2147483648.0;  // exact
  const double bits = dhi * 2097152.0 + static_cast<double>(static_cast<std::int32_t>(lo >> 11));
  const double u = (bits + 0.5) * 0x1.0p-53;
  return u < kBelowOne64 ? u : kBelowOne64;
}

// Box-Muller (float64) on a whole block: two independent standard normals (cos, sin branch).
PGM_HD f64x2 box_muller_f64(std::uint32_t w0, std::uint32_t w1, std::uint32_t w2, std::uint32_t w3) {
  const double r = sqrt(-2.0 * log_f64(uniform_f64_v(w0, w1)));
  const f64x2 sc = sincos_2pi_f64(uniform_f64_v(w2, w3));
  return f64x2{r * sc.b, r * sc.a};
}

PGM_HD void box_muller_f64(u32x4 w, double* z0, double* z1) {
  const f64x2 z = box_muller_f64(w.v[0], w.v[1], w.v[2], w.v[3]);
  *z0 = z.a;
  *z1 = z.b;
}

// Standard Gumbel: -log(-log u), u in the open interval (0, 1).
PGM_HD float gumbel_f32(std::uint32_t w) { return -log_f32(-log_f32(uniform_f32(w))); }
PGM_HD double gumbel_f64(std::uint32_t hi, std::uint32_t lo) { return -log_f64(-log_f64(uniform_f64_v(hi, lo))); }

// Gamma(alpha, 1) by Marsaglia-Tsang (ACM TOMS 26(3), 2000), one variate per stream.
// Layout: alpha < 1 uses Gamma(alpha + 1) * U^(1 / alpha) with U from words (0, 1) of block 0;
// attempt k (k = 0, 1, ...) takes its normal from box_muller_f64 (cos branch) of block 2k + 1
// and its acceptance uniform from words (0, 1) of block 2k + 2. alpha must be > 0; for tiny
// alpha the result can underflow to 0.
PGM_HD double gamma_f64(double alpha, std::uint64_t seed, std::uint64_t stream) {
  double boost = 1.0, a = alpha;
  if (alpha < 1.0) {
    const u32x4 w = block(seed, stream, 0);
    boost = exp(log_f64(uniform_f64_v(w.v[0], w.v[1])) / alpha);
    a = alpha + 1.0;
  }
  const double d = a - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
  for (std::uint64_t blk = 1;; blk += 2) {
    const u32x4 w = block(seed, stream, blk);
    const double x = box_muller_f64(w.v[0], w.v[1], w.v[2], w.v[3]).a;
    const u32x4 w2 = block(seed, stream, blk + 1);
    const double u = uniform_f64_v(w2.v[0], w2.v[1]);
    double v = 1.0 + c * x;
    if (v <= 0.0) continue;
    v = v * v * v;
    // v is normal here unless the attempt is rejected anyway (log v < -708 fails the test)
    if (log_f64(u) < 0.5 * x * x + d - d * v + d * log_f64(v)) return d * v * boost;
  }
}

// Element n of a stream, one at a time (reference / odd edges; the fill loops below are
// the fast path and give the same values).
enum Dist : int { UNIFORM = 0, NORMAL = 1, GUMBEL = 2 };

template <class T>
struct elem;
template <>
struct elem<float> {
  static PGM_HD float at(int dist, std::uint64_t seed, std::uint64_t stream, std::uint64_t n) {
    const u32x4 w = block(seed, stream, n >> 2);
    const int k = static_cast<int>(n & 3);
    if (dist == UNIFORM) return uniform_f32(w.v[k]);
    if (dist == GUMBEL) return gumbel_f32(w.v[k]);
    const f32x2 z = box_muller_f32(w.v[k & 2], w.v[(k & 2) + 1]);
    return (k & 1) ? z.b : z.a;
  }
};
template <>
struct elem<double> {
  static PGM_HD double at(int dist, std::uint64_t seed, std::uint64_t stream, std::uint64_t n) {
    const u32x4 w = block(seed, stream, n >> 1);
    const int k = static_cast<int>(n & 1);
    if (dist == UNIFORM) return uniform_f64(w.v[2 * k], w.v[2 * k + 1]);
    if (dist == GUMBEL) return gumbel_f64(w.v[2 * k], w.v[2 * k + 1]);
    double z0, z1;
    box_muller_f64(w, &z0, &z1);
    return k ? z1 : z0;
  }
};

// Elements per Philox block for a distribution in T (4 words -> 4 float32 or 2 float64).
template <class T>
constexpr int per_block() {
  return sizeof(T) == 4 ? 4 : 2;
}

}  // namespace pygenmod::rng
