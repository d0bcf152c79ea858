// expf on many floats at once with the results of the C library's own expf, bit for bit.
//
// The MCTS kernels take softmaxes of A children at every node of a descent (16 expf calls per
// node at A = 16), and the numba backend calls the C library's expf for the same values: the
// backends build the same trees only while both get the same bits. So this is not a new
// approximation but glibc's (sysdeps/ieee754/flt-32/e_expf.c, 2.28 and later) in the build
// glibc itself runs on CPUs with AVX2 and FMA: in double precision, x * 32 / ln2 = k + r,
// 2^(k/32) from a 32-entry table, a cubic in r, every product-sum a fused multiply-add. Lanes
// outside its main path (|x| >= 88, NaN, infinities) call ::expf. Four lanes at a time on AVX2,
// eight on AVX-512 (the same operations: the same bits).
//
// Whether each path matches the running C library is checked once per process on a sample of
// inputs (tests/cpp/test_libm_expf.cpp checks every negative float and a sample of the rest);
// on a mismatch (another C library, or a CPU without AVX2 and FMA, where glibc runs another
// build) that path is not used: the next narrower one that matches, else ::expf for every value.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "pygenmod/common.hpp"
#include "pygenmod/cpu_features.hpp"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__CUDACC__)
#define PGM_LIBM_EXPF_X86 1
#include <immintrin.h>
#endif

namespace pygenmod::libm {

#ifdef PGM_LIBM_EXPF_X86
namespace detail {
// glibc's __exp2f_data: tab[i] = bits(2^(i/32)) - (i << 47), then the scaled constants.
alignas(64) inline constexpr std::uint64_t kTab[32] = {
    0x3ff0000000000000, 0x3fefd9b0d3158574, 0x3fefb5586cf9890f, 0x3fef9301d0125b51, 0x3fef72b83c7d517b,
    0x3fef54873168b9aa, 0x3fef387a6e756238, 0x3fef1e9df51fdee1, 0x3fef06fe0a31b715, 0x3feef1a7373aa9cb,
    0x3feedea64c123422, 0x3feece086061892d, 0x3feebfdad5362a27, 0x3feeb42b569d4f82, 0x3feeab07dd485429,
    0x3feea47eb03a5585, 0x3feea09e667f3bcd, 0x3fee9f75e8ec5f74, 0x3feea11473eb0187, 0x3feea589994cce13,
    0x3feeace5422aa0db, 0x3feeb737b0cdc5e5, 0x3feec49182a3f090, 0x3feed503b23e255d, 0x3feee89f995ad3ad,
    0x3feeff76f2fb5e47, 0x3fef199bdd85529c, 0x3fef3720dcef9069, 0x3fef5818dcfba487, 0x3fef7c97337b9b5f,
    0x3fefa4afa2a490da, 0x3fefd0765b6e4540};
constexpr std::uint64_t kInvLn2N = 0x40471547652b82fe;  // 32 / ln 2
constexpr std::uint64_t kC0 = 0x3ebc6af84b912394, kC1 = 0x3f2ebfce50fac4f3, kC2 = 0x3f962e42ff0c52d6;
constexpr std::uint64_t kShift = 0x4338000000000000;  // 0x1.8p52: rounds to an integer
constexpr int kTopLimit = 0x42a;                      // top 12 bits of |x| above this: ::expf

// Four lanes of the main path (|x| < 88): the operations of glibc's FMA build, in its order.
__attribute__((target("avx2,fma"))) inline __m128 expf4(__m128 x) {
  const __m256d inv_ln2n = _mm256_castsi256_pd(_mm256_set1_epi64x(static_cast<long long>(kInvLn2N)));
  const __m256d shift = _mm256_castsi256_pd(_mm256_set1_epi64x(static_cast<long long>(kShift)));
  const __m256d xd = _mm256_cvtps_pd(x);
  __m256d kd = _mm256_fmadd_pd(inv_ln2n, xd, shift);
  const __m256i ki = _mm256_castpd_si256(kd);
  kd = _mm256_sub_pd(kd, shift);
  const __m256d r = _mm256_fmsub_pd(inv_ln2n, xd, kd);
  const __m256i j = _mm256_and_si256(ki, _mm256_set1_epi64x(31));
  __m256i t = _mm256_i64gather_epi64(reinterpret_cast<const long long*>(kTab), j, 8);
  t = _mm256_add_epi64(t, _mm256_slli_epi64(ki, 47));
  const __m256d c0 = _mm256_castsi256_pd(_mm256_set1_epi64x(static_cast<long long>(kC0)));
  const __m256d c1 = _mm256_castsi256_pd(_mm256_set1_epi64x(static_cast<long long>(kC1)));
  const __m256d c2 = _mm256_castsi256_pd(_mm256_set1_epi64x(static_cast<long long>(kC2)));
  const __m256d z = _mm256_fmadd_pd(r, c0, c1);
  const __m256d r2 = _mm256_mul_pd(r, r);
  __m256d y = _mm256_fmadd_pd(r, c2, _mm256_set1_pd(1.0));
  y = _mm256_fmadd_pd(z, r2, y);
  y = _mm256_mul_pd(y, _mm256_castsi256_pd(t));
  return _mm256_cvtpd_ps(y);
}

// Special lanes of a block of four (|x| >= 88, NaN, inf): a bit per lane.
__attribute__((target("avx2,fma"))) inline int special4(__m128 x) {
  const __m128i top = _mm_and_si128(_mm_srli_epi32(_mm_castps_si128(x), 20), _mm_set1_epi32(0x7ff));
  return _mm_movemask_ps(_mm_castsi128_ps(_mm_cmpgt_epi32(top, _mm_set1_epi32(kTopLimit))));
}

// ::expf(xs[k]) into v[k] for the lanes whose bit is set in special.
inline void redo_special(float* v, const float* xs, int special) {
  for (int k = 0; special; ++k, special >>= 1)
    if (special & 1) v[k] = ::expf(xs[k]);
}

// Four lanes at v (main path), then ::expf for the special ones.
__attribute__((target("avx2,fma"))) inline void expf_block4(float* v) {
  const __m128 x = _mm_loadu_ps(v);
  const int special = special4(x);
  alignas(16) float xs[4];
  if (special) _mm_store_ps(xs, x);
  _mm_storeu_ps(v, expf4(x));
  if (special) redo_special(v, xs, special);
}

__attribute__((target("avx2,fma"))) inline void expf_avx2(float* v, index_t n) {
  const index_t n4 = n / 4 * 4;
  for (index_t i = 0; i < n4; i += 4) expf_block4(v + i);
  for (index_t i = n4; i < n; ++i) v[i] = ::expf(v[i]);
}

// Eight lanes of the main path on AVX-512: expf4's operations in the same order, and the table
// read by two two-register permutes (the 32 entries in four registers) instead of a gather.
#define PGM_EXPF_AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,avx2,fma")))
PGM_EXPF_AVX512 inline __m256 expf8(__m256 x) {
  const __m512d inv_ln2n = _mm512_castsi512_pd(_mm512_set1_epi64(static_cast<long long>(kInvLn2N)));
  const __m512d shift = _mm512_castsi512_pd(_mm512_set1_epi64(static_cast<long long>(kShift)));
  const __m512d xd = _mm512_cvtps_pd(x);
  __m512d kd = _mm512_fmadd_pd(inv_ln2n, xd, shift);
  const __m512i ki = _mm512_castpd_si512(kd);
  kd = _mm512_sub_pd(kd, shift);
  const __m512d r = _mm512_fmsub_pd(inv_ln2n, xd, kd);
  const __m512i* tab = reinterpret_cast<const __m512i*>(kTab);
  const __m512i lo = _mm512_permutex2var_epi64(_mm512_load_si512(tab), ki, _mm512_load_si512(tab + 1));
  const __m512i hi = _mm512_permutex2var_epi64(_mm512_load_si512(tab + 2), ki, _mm512_load_si512(tab + 3));
  __m512i t = _mm512_mask_blend_epi64(_mm512_test_epi64_mask(ki, _mm512_set1_epi64(16)), lo, hi);
  t = _mm512_add_epi64(t, _mm512_slli_epi64(ki, 47));
  const __m512d c0 = _mm512_castsi512_pd(_mm512_set1_epi64(static_cast<long long>(kC0)));
  const __m512d c1 = _mm512_castsi512_pd(_mm512_set1_epi64(static_cast<long long>(kC1)));
  const __m512d c2 = _mm512_castsi512_pd(_mm512_set1_epi64(static_cast<long long>(kC2)));
  const __m512d z = _mm512_fmadd_pd(r, c0, c1);
  const __m512d r2 = _mm512_mul_pd(r, r);
  __m512d y = _mm512_fmadd_pd(r, c2, _mm512_set1_pd(1.0));
  y = _mm512_fmadd_pd(z, r2, y);
  y = _mm512_mul_pd(y, _mm512_castsi512_pd(t));
  return _mm512_cvtpd_ps(y);
}

PGM_EXPF_AVX512 inline void expf_avx512(float* v, index_t n) {
  const index_t n8 = n / 8 * 8;
  for (index_t i = 0; i < n8; i += 8) {
    const __m256 x = _mm256_loadu_ps(v + i);
    const int special = special4(_mm256_castps256_ps128(x)) | special4(_mm256_extractf128_ps(x, 1)) << 4;
    alignas(32) float xs[8];
    if (special) _mm256_store_ps(xs, x);
    _mm256_storeu_ps(v + i, expf8(x));
    if (special) redo_special(v + i, xs, special);
  }
  index_t i = n8;
  if (n - i >= 4) {
    expf_block4(v + i);
    i += 4;
  }
  for (; i < n; ++i) v[i] = ::expf(v[i]);
}
#undef PGM_EXPF_AVX512

// Does a vector path give ::expf's bits here? A spread of the inputs softmaxes see (x <= 0,
// down past the underflow limit), small positives, and the special values.
template <class Path>
inline bool matches_expf(Path path) {
  constexpr int kN = 4096;
  float x[kN], want[kN];
  for (int i = 0; i < kN; ++i) {
    std::uint32_t bits = 0x80000000u + static_cast<std::uint32_t>(i) * 0x0007f3a1u % 0x43000000u;  // -0 .. ~-128
    if (i % 8 == 7) bits &= 0x7fffffffu;                                                           // positives
    std::memcpy(&x[i], &bits, 4);
  }
  x[0] = -INFINITY;
  x[1] = INFINITY;
  x[2] = NAN;
  x[3] = 0.0f;
  for (int i = 0; i < kN; ++i) want[i] = ::expf(x[i]);
  path(x, kN);
  return std::memcmp(x, want, sizeof(x)) == 0;
}

// The ISA level is read per call (cpu::set_isa_cap applies at once); each check runs once.
inline bool use_avx2() {
  if (cpu::isa() < cpu::ISA_AVX2) return false;
  static const bool ok = matches_expf(expf_avx2);
  return ok;
}
inline bool use_avx512() {
  if (cpu::isa() < cpu::ISA_AVX512) return false;
  static const bool ok = matches_expf(expf_avx512);
  return ok;
}
}  // namespace detail
#endif

// v[i] = expf(v[i]) for i < n, with ::expf's bits.
inline void expf_inplace(float* v, index_t n) {
#ifdef PGM_LIBM_EXPF_X86
  if (detail::use_avx512()) return detail::expf_avx512(v, n);
  if (detail::use_avx2()) return detail::expf_avx2(v, n);
#endif
  for (index_t i = 0; i < n; ++i) v[i] = ::expf(v[i]);
}

// Whether expf_inplace runs a vector path in this process (for tests and benchmarks).
inline bool expf_vectorized() {
#ifdef PGM_LIBM_EXPF_X86
  return detail::use_avx512() || detail::use_avx2();
#else
  return false;
#endif
}

}  // namespace pygenmod::libm
