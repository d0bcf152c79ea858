// Branch-free exp/log shared by the kernels: the polynomial cores are templates on the
// arithmetic type, so the scalar PGM_HD versions (random.hpp's sampling transforms) and the
// CPU vector versions below (GCC/Clang vector extensions of any width, used by gmm.hpp's
// E-step) evaluate the same expressions. Evaluation order is part of the contract: sampling
// pins exact draws, so the cores must not be re-associated.
#pragma once

#include <cstdint>

#include "pygenmod/common.hpp"

// The vector helpers here are inline and never cross a translation-unit boundary, so GCC's
// note that their calling convention depends on -mavx / -mavx512f does not apply. (Not popped:
// GCC reports it where templates are instantiated, at the end of the including file.)
#if defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

// Cores are always inlined (also on the host: their vector instances must not be called
// across the ISA-specific entry points).
#if defined(__CUDACC__) || !defined(__GNUC__)
#define PGM_VM_CORE PGM_HD
#else
#define PGM_VM_CORE inline __attribute__((always_inline))
#endif

namespace pygenmod::vm {

// ---- polynomial cores (scalar or vector F) ----------------------------------------------

// exp(r) for |r| <= ln2/2, float32: degree-6 Taylor (~2 ulp after scaling).
template <class F>
PGM_VM_CORE F exp_poly_f32(const F& r) {
  return 1.0f +
         r * (1.0f + r * (0.5f + r * (1.6666667e-1f + r * (4.1666668e-2f + r * (8.3333338e-3f + r * 1.3888889e-3f)))));
}

// exp(r) for |r| <= ln2/2, float64: degree-13 Taylor (relative error < 2e-16).
template <class F>
PGM_VM_CORE F exp_poly_f64(const F& r) {
  F p = r * (1.0 / 6227020800.0) + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  return p * r + 1.0;
}

// log(m) = s * p(s^2) with s = (m - 1) / (m + 1), m in [sqrt(1/2), sqrt(2)): the atanh series
// 2 s (1 + s^2/3 + ...), to s^9 in float32 and s^21 in float64.
template <class F>
PGM_VM_CORE F log_series_f32(const F& s2) {
  return 2.0f + s2 * (0.6666666667f + s2 * (0.4f + s2 * (0.2857142857f + s2 * 0.2222222222f)));
}
template <class F>
PGM_VM_CORE F log_series_f64(const F& s2) {
  return 2.0 +
         s2 *
             (2.0 / 3 +
              s2 * (2.0 / 5 +
                    s2 * (2.0 / 7 +
                          s2 * (2.0 / 9 +
                                s2 * (2.0 / 11 +
                                      s2 * (2.0 / 13 +
                                            s2 * (2.0 / 15 + s2 * (2.0 / 17 + s2 * (2.0 / 19 + s2 * (2.0 / 21))))))))));
}

// Reduction constants: ln 2 split in two (fdlibm / Cody-Waite), 1 / ln 2, rounding shifts.
constexpr double kLn2Hi = 6.93147180369123816490e-01;
constexpr double kLn2Lo = 1.90821492927058770002e-10;
constexpr double kLog2e = 1.4426950408889634;
constexpr float kLn2HiF = 0.693145751953125f;
constexpr float kLn2LoF = 1.428606765330187e-06f;

#if !defined(__CUDACC__) && defined(__GNUC__)
// ---- CPU vector versions (any vector_size; V a float or double vector) -------------------
#define PGM_VINLINE inline __attribute__((always_inline))

// VB bytes of T lanes: the native vector of a per-ISA entry point of the CPU's vector rows
// (gumbel_row.hpp, normal_rows.hpp, categorical_rows.hpp).
template <class T, int VB>
struct vec {
  typedef T type __attribute__((vector_size(VB)));
};

template <class V, class S>
PGM_VINLINE V splat(S s) {
  V x = {};
  return x + s;
}
template <class A, class B>
PGM_VINLINE A bitcast(const B& b) {
  static_assert(sizeof(A) == sizeof(B), "bitcast: sizes differ");
  A a;
  __builtin_memcpy(&a, &b, sizeof(A));
  return a;
}
// Unaligned vector loads and stores through memcpy (template arguments drop alignment
// attributes).
template <class V, class T>
PGM_VINLINE V load(const T* p) {
  V x;
  __builtin_memcpy(&x, p, sizeof(V));
  return x;
}
template <class V, class T>
PGM_VINLINE void store(T* p, const V& x) {
  __builtin_memcpy(p, &x, sizeof(V));
}

// exp(x) for double lanes |x| <= 708 (normal results; no range handling: callers check).
template <class V>
PGM_VINLINE V exp_mid_f64(const V& x) {
  using VI = decltype(x < x);
  const V kShift = splat<V>(6755399441055744.0);  // 1.5 * 2^52
  const V t = x * kLog2e + kShift;
  const V n = t - kShift;
  const V r = (x - n * kLn2Hi) - n * kLn2Lo;
  return exp_poly_f64(r) * bitcast<V>((bitcast<VI>(t) + 1023) << 52);
}

// exp(x) for double lanes x <= 0: x = n ln2 + r, degree-13 polynomial, 2^n from the rounding
// constant's low bits; exp(x) = 0 for x < -600 (this also keeps products normal).
template <class V>
PGM_VINLINE V exp_nonpos_f64(const V& x) {
  using VI = decltype(x < x);  // signed 64-bit lanes
  const V lo = splat<V>(-600.0);
  const VI under = x < lo;
  return under ? splat<V>(0.0) : exp_mid_f64(under ? lo : x);
}

// random.hpp's exp_f32 on float lanes, step for step (the same bits): the argument is clamped
// to [-87.3, 88.37], so the result stays finite and normal.
template <class V>
PGM_VINLINE V exp_clamped_f32(V x) {
  using VI = decltype(x < x);
  x = x < -87.3f ? splat<V>(-87.3f) : x;
  x = x > 88.37f ? splat<V>(88.37f) : x;
  const V fn = (x * 1.4426950408889634f + 12582912.0f) - 12582912.0f;
  const VI n = __builtin_convertvector(fn, VI);
  const V r = (x - fn * kLn2HiF) - fn * kLn2LoF;
  return exp_poly_f32(r) * bitcast<V>((n + 127) << 23);
}

// exp(x) for float lanes x <= 0 (random.hpp's exp_f32 reduction and polynomial); exp(x) = 0 for
// x < -60 (relative contributions below 1e-26 are dropped: responsibilities stay normal
// floats, denormal products are slow).
template <class V>
PGM_VINLINE V exp_nonpos_f32(const V& x) {
  using VI = decltype(x < x);  // signed 32-bit lanes
  const VI under = x < -60.0f;
  const V xc = under ? splat<V>(-60.0f) : x;
  const V fn = (xc * 1.4426950408889634f + 12582912.0f) - 12582912.0f;
  const VI n = __builtin_convertvector(fn, VI);
  const V r = (xc - fn * kLn2HiF) - fn * kLn2LoF;
  const V p = exp_poly_f32(r);
  return under ? splat<V>(0.0f) : p * bitcast<V>((n + 127) << 23);
}

// log(s) for double lanes s >= 1 (finite): s = 2^e m, m in [sqrt(1/2), sqrt(2)) (random.hpp's
// log_f64 reduction, restricted to s >= 1 so the exponent is non-negative). With inv, also
// *inv = 1/s (within 2 ulp), sharing the one division.
template <class V>
PGM_VINLINE V log_ge1_f64(const V& s, V* inv = nullptr) {
  using VI = decltype(s < s);
  const VI ix = bitcast<VI>(s) - 0x3FE6A09E667F3BCDLL;  // bits of sqrt(1/2); >= 0 for s >= 1
  const VI e = (ix >> 52) & 0x7ff;                      // (masked: a logical shift, also on AVX2)
  const V m = bitcast<V>((ix & 0x000FFFFFFFFFFFFFLL) + 0x3FE6A09E667F3BCDLL);
  const V ed = bitcast<V>(e + 0x4330000000000000LL) - 4503599627370496.0;  // exact for e >= 0
  V u;
  if (inv) {  // one division for both 1/s and (m - 1)/(m + 1)
    const V q = 1.0 / ((m + 1.0) * s);
    *inv = q * (m + 1.0);
    u = (m - 1.0) * (q * s);
  } else {
    u = (m - 1.0) / (m + 1.0);
  }
  return ed * kLn2Hi + (u * log_series_f64(u * u) + ed * kLn2Lo);
}

// log(s) for float lanes s >= 1 (finite): random.hpp's log_f32.
template <class V>
PGM_VINLINE V log_ge1_f32(const V& s, V* inv = nullptr) {
  using VI = decltype(s < s);
  const VI ix = bitcast<VI>(s) - 0x3f3504f3;
  const VI e = ix >> 23;
  const V m = bitcast<V>((ix & 0x007fffff) + 0x3f3504f3);
  V u;
  if (inv) {
    const V q = 1.0f / ((m + 1.0f) * s);
    *inv = q * (m + 1.0f);
    u = (m - 1.0f) * (q * s);
  } else {
    u = (m - 1.0f) / (m + 1.0f);
  }
  return __builtin_convertvector(e, V) * 0.693147180559945f + u * log_series_f32(u * u);
}

template <class V>
PGM_VINLINE V exp_nonpos(const V& x) {
  if constexpr (sizeof(x[0]) == 8)
    return exp_nonpos_f64(x);
  else
    return exp_nonpos_f32(x);
}
template <class V>
PGM_VINLINE V log_ge1(const V& s, V* inv = nullptr) {
  if constexpr (sizeof(s[0]) == 8)
    return log_ge1_f64(s, inv);
  else
    return log_ge1_f32(s, inv);
}
#endif

}  // namespace pygenmod::vm
