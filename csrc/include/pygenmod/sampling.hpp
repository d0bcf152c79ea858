// Reparameterized sampling, KL divergences and Gaussian log-densities: the per-row math,
// shared by the CPU launchers (here) and the CUDA launchers (csrc/cuda/sampling.cu).
//
// Randomness (random.hpp): row b of a call draws from Philox stream `stream + b`; element
// e of that row's noise for sample s is stream element `offset + s * D + e`. A row's draws
// therefore do not depend on the batch it sits in, the backend or the thread count.
//
// Diagonal Gaussians are given by mu and one scale parameter p of kind
//   LOGVAR (p = log sigma^2), LOG_STD (p = log sigma) or STD (p = sigma),
// clamped to [lo, hi] (in p's units; gradients are zero where the clamp is active).
// Every launcher writes a per-row status (0 = fine, 1 = a non-finite input or a
// non-positive scale, 2 = a scale_tril that is not lower triangular or has a non-positive
// diagonal); the Python layer turns non-zero status into a ValueError.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "pygenmod/common.hpp"
#include "pygenmod/parallel.hpp"
#include "pygenmod/cpu_features.hpp"
#include "pygenmod/random.hpp"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__CUDACC__)
#include <immintrin.h>
#endif
#if !defined(__CUDACC__)
#include "pygenmod/normal_rows.hpp"
#include "pygenmod/tril_matvec.hpp"
#endif

namespace pygenmod::sampling {

using std::exp;
using std::log;

// `omp simd` with a sum reduction on the host (float sums do not vectorise without it);
// nothing under nvcc.
#if !defined(__CUDACC__)
#define PGM_PRAGMA(x) _Pragma(#x)
#define PGM_SIMD_SUM(v) PGM_PRAGMA(omp simd reduction(+ : v))
#else
#define PGM_SIMD_SUM(v)
#endif

enum ScaleKind : int { LOGVAR = 0, LOG_STD = 1, STD = 2 };
// The per-row status every sampling launcher writes (exported by _cpu_sampling as ROW_CODES):
// a non-finite input, or a scale_tril that is not lower triangular with a positive diagonal.
enum RowCode : int { ROW_OK = 0, ROW_NONFINITE = 1, ROW_BAD_TRIL = 2 };

constexpr double HALF_LOG_2PI = 0.91893853320467274178;

// exp / log: the vectorisable float32 versions of random.hpp; float64 exp random.hpp's
// exp_hd_f64 (vectorisable on the host), float64 log libm's.
PGM_HD float exp_t(float x) { return rng::exp_f32(x); }
PGM_HD double exp_t(double x) { return rng::exp_hd_f64(x); }
PGM_HD float log_t(float x) { return rng::log_f32(x); }  // x > 0 normal (scales); NaN-safe via nan_if_bad
PGM_HD double log_t(double x) { return log(x); }

template <class T>
struct Scale {
  T sigma, log_sigma, dlog_dp;  // sigma, log sigma, d log(sigma) / dp (0 where clamped)
};

template <class T>
PGM_HD Scale<T> scale_of(int kind, T p, T lo, T hi) {
  T pc = p < lo ? lo : p;  // (a NaN p stays NaN and is flagged by nan_if_bad upstream)
  pc = pc > hi ? hi : pc;
  const T pass = static_cast<T>(p >= lo) * static_cast<T>(p <= hi);
  Scale<T> s;
  if (kind == LOGVAR) {
    s.log_sigma = T(0.5) * pc;
    s.sigma = exp_t(s.log_sigma);
    s.dlog_dp = T(0.5) * pass;
  } else if (kind == LOG_STD) {
    s.log_sigma = pc;
    s.sigma = exp_t(pc);
    s.dlog_dp = pass;
  } else {
    s.sigma = pc;
    s.log_sigma = pc > T(0) ? log_t(pc) : std::numeric_limits<T>::quiet_NaN();  // flagged upstream
    s.dlog_dp = pass / pc;
  }
  return s;
}

// The KL's part of d / d log sigma, times its upstream gradient gk: gk (sigma^2 - 1), and 0 when
// gk is 0, so that a sigma whose square overflows (log-variance > 709.78) does not turn the
// sampling path's finite gradient into NaN (0 * inf) when the KL's gradient is not asked for.
template <class T>
PGM_HD T kl_dlog_sigma(T gk, T sigma) {
  return gk != T(0) ? gk * (sigma * sigma - T(1)) : T(0);
}

// 0 for finite x, NaN otherwise (summed, it flags a non-finite input without a branch).
template <class T>
PGM_HD T nan_if_bad(T x) {
  return x * T(0);
}

// Elements [start, start + n) of a stream, one Philox block at a time (device code and
// reference; the CPU fill below is the vectorised equivalent).
template <class T>
PGM_HD void fill_range_scalar(int dist, std::uint64_t seed, std::uint64_t stream, std::uint64_t start, index_t n,
                              T* out) {
  constexpr int per = rng::per_block<T>();
  for (index_t i = 0; i < n;) {
    const std::uint64_t e = start + static_cast<std::uint64_t>(i);
    const std::uint64_t blk = e / per;
    const rng::u32x4 w = rng::block(seed, stream, blk);
    for (int k = static_cast<int>(e % per); k < per && i < n; ++k, ++i) {
      if (per == 4) {
        if (dist == rng::UNIFORM)
          out[i] = static_cast<T>(rng::uniform_f32(w.v[k]));
        else if (dist == rng::GUMBEL)
          out[i] = static_cast<T>(rng::gumbel_f32(w.v[k]));
        else {
          const rng::f32x2 z = rng::box_muller_f32(w.v[k & 2], w.v[(k & 2) + 1]);
          out[i] = static_cast<T>((k & 1) ? z.b : z.a);
        }
      } else {
        if (dist == rng::UNIFORM)
          out[i] = static_cast<T>(rng::uniform_f64(w.v[2 * k], w.v[2 * k + 1]));
        else if (dist == rng::GUMBEL)
          out[i] = static_cast<T>(rng::gumbel_f64(w.v[2 * k], w.v[2 * k + 1]));
        else {
          double z0, z1;
          rng::box_muller_f64(w, &z0, &z1);
          out[i] = static_cast<T>(k ? z1 : z0);
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------
// CPU fill: elements [start, start + n) of one stream, vectorised in chunks of blocks.
// ---------------------------------------------------------------------------------------
#if !defined(__CUDACC__)

// The clones are compiled without contraction into FMAs: the AVX-512 target implies FMA, and
// with -ffp-contract=fast GCC fuses products differently in a loop's vector body and in its
// scalar remainder. A draw would then depend on where a call's (or a row's) chunk of blocks
// starts, and on the CPU, by an ulp. Uncontracted, every path and every CPU gives the same bits
// (and the same as fill_range_scalar, the device's and the reference's path). The float64
// transforms fuse where they say so (rng::fmadd), so their clones need FMA in hardware: the
// AVX2 clone is x86-64-v3 (AVX2 + FMA), and the baseline clone calls libm's exact fma.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define PGM_CLONES __attribute__((target_clones("avx512f", "arch=x86-64-v3", "default"), optimize("fp-contract=off")))
#elif defined(__GNUC__) && !defined(__clang__)
#define PGM_CLONES __attribute__((optimize("fp-contract=off")))  // one body, still uncontracted
#else
#define PGM_CLONES
#endif
#define PGM_NOINLINE __attribute__((noinline))

constexpr int CHUNK = 64;  // blocks per chunk (256 words)
// Below this many elements of work a launcher runs on one thread: waking the pool costs more.
// Rows are handed out dynamically in chunks of 32: a thread that the OS has descheduled (a busy,
// shared machine) then delays a call by its chunk, not by half of the work. Results do not
// depend on the schedule: every row is computed the same way by whichever thread takes it.
constexpr index_t PAR_MIN = 1 << 15;
constexpr index_t PREFETCH_ROWS = 8;  // how far ahead the row loops prefetch their inputs

// The words of blocks [b0, b0 + nb) of a stream, in stream order: portable loop.
PGM_CLONES inline void philox_words_generic(std::uint64_t seed, std::uint64_t stream, std::uint64_t b0, int nb,
                                            std::uint32_t* __restrict w) {
  const std::uint32_t k0 = static_cast<std::uint32_t>(seed), k1 = static_cast<std::uint32_t>(seed >> 32);
  const std::uint32_t s0 = static_cast<std::uint32_t>(stream), s1 = static_cast<std::uint32_t>(stream >> 32);
#pragma omp simd
  for (int j = 0; j < nb; ++j) {
    const std::uint64_t blk = b0 + static_cast<std::uint64_t>(j);
    const rng::u32x4 r = rng::philox4x32_10(
        rng::u32x4{{static_cast<std::uint32_t>(blk), static_cast<std::uint32_t>(blk >> 32), s0, s1}}, k0, k1);
    w[4 * j] = r.v[0];
    w[4 * j + 1] = r.v[1];
    w[4 * j + 2] = r.v[2];
    w[4 * j + 3] = r.v[3];
  }
}

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define PGM_PHILOX_X86 1
// Philox on 8 (AVX2) or 16 (AVX-512) blocks at once, the counter words in separate registers
// (32-bit lanes; the 32x32 -> 64 products of even and odd lanes by two vpmuludq and blends),
// then transposed to stream order. Integer arithmetic only: the same words as the portable loop.
__attribute__((target("avx2"))) inline void philox8_avx2(std::uint32_t k0, std::uint32_t k1, std::uint32_t s0,
                                                         std::uint32_t s1, std::uint32_t lo, std::uint32_t hi,
                                                         std::uint32_t* w) {
  const __m256i M0 = _mm256_set1_epi64x(0xD2511F53), M1 = _mm256_set1_epi64x(0xCD9E8D57);
  __m256i c0 = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(lo)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  __m256i c1 = _mm256_set1_epi32(static_cast<int>(hi)), c2 = _mm256_set1_epi32(static_cast<int>(s0)),
          c3 = _mm256_set1_epi32(static_cast<int>(s1));
  for (int r = 0; r < 10; ++r) {
    const __m256i K0 = _mm256_set1_epi32(static_cast<int>(k0 + 0x9E3779B9u * r)),
                  K1 = _mm256_set1_epi32(static_cast<int>(k1 + 0xBB67AE85u * r));
    const __m256i pe0 = _mm256_mul_epu32(c0, M0), po0 = _mm256_mul_epu32(_mm256_srli_epi64(c0, 32), M0);
    const __m256i pe1 = _mm256_mul_epu32(c2, M1), po1 = _mm256_mul_epu32(_mm256_srli_epi64(c2, 32), M1);
    const __m256i hi0 = _mm256_blend_epi32(_mm256_srli_epi64(pe0, 32), po0, 0xAA);
    const __m256i lo0 = _mm256_blend_epi32(pe0, _mm256_slli_epi64(po0, 32), 0xAA);
    const __m256i hi1 = _mm256_blend_epi32(_mm256_srli_epi64(pe1, 32), po1, 0xAA);
    const __m256i lo1 = _mm256_blend_epi32(pe1, _mm256_slli_epi64(po1, 32), 0xAA);
    c0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c1), K0);
    c1 = lo1;
    c2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c3), K1);
    c3 = lo0;
  }
  const __m256i t0 = _mm256_unpacklo_epi32(c0, c1), t1 = _mm256_unpackhi_epi32(c0, c1);
  const __m256i t2 = _mm256_unpacklo_epi32(c2, c3), t3 = _mm256_unpackhi_epi32(c2, c3);
  const __m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);  // blocks 0,4 / 1,5
  const __m256i u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);  // blocks 2,6 / 3,7
  auto* o = reinterpret_cast<__m256i*>(w);
  _mm256_storeu_si256(o + 0, _mm256_permute2x128_si256(u0, u1, 0x20));
  _mm256_storeu_si256(o + 1, _mm256_permute2x128_si256(u2, u3, 0x20));
  _mm256_storeu_si256(o + 2, _mm256_permute2x128_si256(u0, u1, 0x31));
  _mm256_storeu_si256(o + 3, _mm256_permute2x128_si256(u2, u3, 0x31));
}

__attribute__((target("avx512f"))) inline void philox16_avx512(std::uint32_t k0, std::uint32_t k1, std::uint32_t s0,
                                                               std::uint32_t s1, std::uint32_t lo, std::uint32_t hi,
                                                               std::uint32_t* w) {
  const __m512i M0 = _mm512_set1_epi64(0xD2511F53), M1 = _mm512_set1_epi64(0xCD9E8D57);
  __m512i c0 = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(lo)),
                                _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
  __m512i c1 = _mm512_set1_epi32(static_cast<int>(hi)), c2 = _mm512_set1_epi32(static_cast<int>(s0)),
          c3 = _mm512_set1_epi32(static_cast<int>(s1));
  // Per round and product: the odd lanes' factors moved down by a pair swap, two vpmuludq, and
  // one masked pair swap each to merge the high (lo) halves of the even and odd products; the
  // two xors are one ternary op. 12 instructions a round instead of 18 (port 0/5 bound).
  const __mmask16 even = 0x5555, odd = 0xAAAA;
  for (int r = 0; r < 10; ++r) {
    const __m512i K0 = _mm512_set1_epi32(static_cast<int>(k0 + 0x9E3779B9u * r)),
                  K1 = _mm512_set1_epi32(static_cast<int>(k1 + 0xBB67AE85u * r));
    const __m512i pe0 = _mm512_mul_epu32(c0, M0), po0 = _mm512_mul_epu32(_mm512_shuffle_epi32(c0, _MM_PERM_CDAB), M0);
    const __m512i pe1 = _mm512_mul_epu32(c2, M1), po1 = _mm512_mul_epu32(_mm512_shuffle_epi32(c2, _MM_PERM_CDAB), M1);
    const __m512i hi0 = _mm512_mask_shuffle_epi32(po0, even, pe0, _MM_PERM_CDAB);
    const __m512i lo0 = _mm512_mask_shuffle_epi32(pe0, odd, po0, _MM_PERM_CDAB);
    const __m512i hi1 = _mm512_mask_shuffle_epi32(po1, even, pe1, _MM_PERM_CDAB);
    const __m512i lo1 = _mm512_mask_shuffle_epi32(pe1, odd, po1, _MM_PERM_CDAB);
    c0 = _mm512_ternarylogic_epi32(hi1, c1, K0, 0x96);  // hi1 ^ c1 ^ K0
    c1 = lo1;
    c2 = _mm512_ternarylogic_epi32(hi0, c3, K1, 0x96);
    c3 = lo0;
  }
  const __m512i t0 = _mm512_unpacklo_epi32(c0, c1), t1 = _mm512_unpackhi_epi32(c0, c1);
  const __m512i t2 = _mm512_unpacklo_epi32(c2, c3), t3 = _mm512_unpackhi_epi32(c2, c3);
  const __m512i u0 = _mm512_unpacklo_epi64(t0, t2), u1 = _mm512_unpackhi_epi64(t0, t2);  // 0,4,8,12 / 1,5,9,13
  const __m512i u2 = _mm512_unpacklo_epi64(t1, t3), u3 = _mm512_unpackhi_epi64(t1, t3);  // 2,6,10,14 / 3,7,11,15
  const __m512i a = _mm512_shuffle_i32x4(u0, u1, 0x44), b = _mm512_shuffle_i32x4(u2, u3, 0x44);
  const __m512i c = _mm512_shuffle_i32x4(u0, u1, 0xEE), d = _mm512_shuffle_i32x4(u2, u3, 0xEE);
  _mm512_storeu_si512(w, _mm512_shuffle_i32x4(a, b, 0x88));
  _mm512_storeu_si512(w + 16, _mm512_shuffle_i32x4(a, b, 0xDD));
  _mm512_storeu_si512(w + 32, _mm512_shuffle_i32x4(c, d, 0x88));
  _mm512_storeu_si512(w + 48, _mm512_shuffle_i32x4(c, d, 0xDD));
}

// 2: AVX-512, 1: AVX2, 0: baseline (pygenmod/cpu_features.hpp).
inline int philox_simd_level() { return cpu::isa(); }
#endif

// The words of blocks [b0, b0 + nb) of a stream, in stream order.
inline void philox_words(std::uint64_t seed, std::uint64_t stream, std::uint64_t b0, int nb,
                         std::uint32_t* __restrict w) {
#ifdef PGM_PHILOX_X86
  const std::uint32_t lo = static_cast<std::uint32_t>(b0);
  const int level = philox_simd_level();
  if (level > 0 && static_cast<std::uint64_t>(lo) + static_cast<std::uint64_t>(nb) <= 0x100000000ull) {
    const std::uint32_t k0 = static_cast<std::uint32_t>(seed), k1 = static_cast<std::uint32_t>(seed >> 32);
    const std::uint32_t s0 = static_cast<std::uint32_t>(stream), s1 = static_cast<std::uint32_t>(stream >> 32);
    const std::uint32_t hi = static_cast<std::uint32_t>(b0 >> 32);
    int j = 0;
    if (level == 2)
      for (; j + 16 <= nb; j += 16) philox16_avx512(k0, k1, s0, s1, lo + j, hi, w + 4 * j);
    for (; j + 8 <= nb; j += 8) philox8_avx2(k0, k1, s0, s1, lo + j, hi, w + 4 * j);
    if (j < nb) philox_words_generic(seed, stream, b0 + j, nb - j, w + 4 * j);
    return;
  }
#endif
  philox_words_generic(seed, stream, b0, nb, w);
}

// Box-Muller over word pairs: out[2p], out[2p + 1] from (w[2p], w[2p + 1]).
PGM_CLONES inline void box_muller_words(const std::uint32_t* __restrict w, int npairs, float* __restrict out) {
#pragma omp simd
  for (int p = 0; p < npairs; ++p) {
    const rng::f32x2 z = rng::box_muller_f32(w[2 * p], w[2 * p + 1]);
    out[2 * p] = z.a;
    out[2 * p + 1] = z.b;
  }
}

PGM_CLONES inline void uniform_words(const std::uint32_t* __restrict w, int n, float* __restrict out) {
#pragma omp simd
  for (int i = 0; i < n; ++i) out[i] = rng::uniform_f32(w[i]);
}

PGM_CLONES inline void gumbel_words(const std::uint32_t* __restrict w, int n, float* __restrict out) {
#pragma omp simd
  for (int i = 0; i < n; ++i) out[i] = rng::gumbel_f32(w[i]);
}

inline void transform_words(int dist, const std::uint32_t* w, int nwords, float* out) {
  if (dist == rng::NORMAL)
    box_muller_words(w, nwords / 2, out);
  else if (dist == rng::UNIFORM)
    uniform_words(w, nwords, out);
  else
    gumbel_words(w, nwords, out);
}

PGM_CLONES inline void box_muller_words_f64(const std::uint32_t* __restrict w, int nblocks, double* __restrict out) {
#pragma omp simd
  for (int j = 0; j < nblocks; ++j) {
    const rng::f64x2 z = rng::box_muller_f64(w[4 * j], w[4 * j + 1], w[4 * j + 2], w[4 * j + 3]);
    out[2 * j] = z.a;
    out[2 * j + 1] = z.b;
  }
}

PGM_CLONES inline void uniform_words_f64(const std::uint32_t* __restrict w, int n, double* __restrict out) {
#pragma omp simd
  for (int i = 0; i < n; ++i) out[i] = rng::uniform_f64_v(w[2 * i], w[2 * i + 1]);
}

PGM_CLONES inline void gumbel_words_f64(const std::uint32_t* __restrict w, int n, double* __restrict out) {
#pragma omp simd
  for (int i = 0; i < n; ++i) out[i] = rng::gumbel_f64(w[2 * i], w[2 * i + 1]);
}

inline void transform_words(int dist, const std::uint32_t* w, int nwords, double* out) {
  if (dist == rng::NORMAL)
    box_muller_words_f64(w, nwords / 4, out);
  else if (dist == rng::UNIFORM)
    uniform_words_f64(w, nwords / 2, out);
  else
    gumbel_words_f64(w, nwords / 2, out);
}

// out[0..n) = elements [start, start + n) of `stream` for distribution `dist`.
template <class T>
void fill_range(int dist, std::uint64_t seed, std::uint64_t stream, std::uint64_t start, index_t n, T* out) {
  constexpr int per = rng::per_block<T>();
  alignas(64) std::uint32_t w[4 * CHUNK];
  alignas(64) T buf[per * CHUNK];
  std::uint64_t blk = start / per;
  index_t skip = static_cast<index_t>(start % per), done = 0;
  while (done < n) {
    const index_t need = n - done + skip;
    const int nb = static_cast<int>(std::min<index_t>(CHUNK, (need + per - 1) / per));
    philox_words(seed, stream, blk, nb, w);
    const index_t avail = std::min<index_t>(static_cast<index_t>(nb) * per - skip, n - done);
    if (skip == 0 && avail == static_cast<index_t>(nb) * per) {
      transform_words(dist, w, 4 * nb, out + done);  // straight into the output
    } else {
      transform_words(dist, w, 4 * nb, buf);
      for (index_t i = 0; i < avail; ++i) out[done + i] = buf[skip + i];
    }
    done += avail;
    blk += nb;
    skip = 0;
  }
}

// out (R, N): row r is elements [offset, offset + N) of stream `stream + r`.
template <class T>
void fill_cpu(int dist, std::uint64_t seed, std::uint64_t stream, std::uint64_t offset, index_t R, index_t N, T* out) {
  parallel_for(R, 32, R * N > PAR_MIN,
               [&](index_t r) { fill_range<T>(dist, seed, stream + r, offset, N, out + r * N); });
}

// Raw Philox-4x32-10 blocks for arbitrary counters and keys (known-answer tests).
inline void philox_cpu(const std::uint32_t* ctr, const std::uint32_t* key, index_t n, std::uint32_t* out) {
  for (index_t i = 0; i < n; ++i) {
    const rng::u32x4 r = rng::philox4x32_10(rng::u32x4{{ctr[4 * i], ctr[4 * i + 1], ctr[4 * i + 2], ctr[4 * i + 3]}},
                                            key[2 * i], key[2 * i + 1]);
    for (int k = 0; k < 4; ++k) out[4 * i + k] = r.v[k];
  }
}

inline void bits_cpu(std::uint64_t seed, std::uint64_t stream, std::uint64_t offset, index_t R, index_t N,
                     std::uint32_t* out) {
  parallel_for(R, 32, R * N > PAR_MIN, [&](index_t r) {
    alignas(64) std::uint32_t w[4 * CHUNK];
    std::uint64_t blk = offset / 4;
    index_t skip = static_cast<index_t>(offset % 4), done = 0;
    while (done < N) {
      const int nb = static_cast<int>(std::min<index_t>(CHUNK, (N - done + skip + 3) / 4));
      philox_words(seed, stream + r, blk, nb, w);
      const index_t avail = std::min<index_t>(4 * nb - skip, N - done);
      for (index_t i = 0; i < avail; ++i) out[r * N + done + i] = w[skip + i];
      done += avail;
      blk += nb;
      skip = 0;
    }
  });
}

// ---------------------------------------------------------------------------------------
// Diagonal Gaussian head: z = mu + sigma * eps for S samples, KL(q || N(0, I)) per row and
// log q(z | x) per (sample, row), in one pass. eps_in (S, B, D) replaces the generator when
// given. Null outputs are skipped. The loops are written for `omp simd` (the scale kind is
// a template parameter so each loop is branch-free).
// ---------------------------------------------------------------------------------------
template <int KIND, class T>
PGM_CLONES inline void head_scales(const T* __restrict m, const T* __restrict p, T lo, T hi, index_t D,
                                   T* __restrict sig, T* sums) {
  T logsig = 0, kl = 0, chk = 0;
#pragma omp simd reduction(+ : logsig, kl, chk)
  for (index_t d = 0; d < D; ++d) {
    const Scale<T> sc = scale_of<T>(KIND, p[d], lo, hi);
    sig[d] = sc.sigma;
    logsig += sc.log_sigma;
    kl += T(0.5) * (sc.sigma * sc.sigma + m[d] * m[d] - T(1)) - sc.log_sigma;
    chk += nan_if_bad(m[d]) + nan_if_bad(p[d]) + nan_if_bad(sc.log_sigma);
  }
  sums[0] = logsig;
  sums[1] = kl;
  sums[2] = chk;
}

// head_scales fused with the first sample's z = m + sig * e (one pass over mu, p and z).
// kSums = false (no KL, no log q, no given eps): only sig, z and the non-finite check (sums[2]);
// the other sums are not computed (four reductions per row were a third of a sample-only call).
template <int KIND, bool kSums, class T>
PGM_CLONES inline void head_first(const T* __restrict m, const T* __restrict p, const T* __restrict e, T lo, T hi,
                                  index_t D, T* __restrict sig, T* __restrict z, T* sums) {
  T logsig = 0, kl = 0, chk = 0, sq = 0;
  if constexpr (kSums) {
#pragma omp simd reduction(+ : logsig, kl, chk, sq)
    for (index_t d = 0; d < D; ++d) {
      const Scale<T> sc = scale_of<T>(KIND, p[d], lo, hi);
      sig[d] = sc.sigma;
      z[d] = m[d] + sc.sigma * e[d];
      sq += e[d] * e[d];
      logsig += sc.log_sigma;
      kl += T(0.5) * (sc.sigma * sc.sigma + m[d] * m[d] - T(1)) - sc.log_sigma;
      chk += nan_if_bad(m[d]) + nan_if_bad(p[d]) + nan_if_bad(sc.log_sigma);
    }
    sums[0] = logsig;
    sums[1] = kl;
    sums[3] = sq;
  } else {
#pragma omp simd reduction(+ : chk)
    for (index_t d = 0; d < D; ++d) {
      const Scale<T> sc = scale_of<T>(KIND, p[d], lo, hi);
      sig[d] = sc.sigma;
      z[d] = m[d] + sc.sigma * e[d];
      chk += nan_if_bad(m[d]) + nan_if_bad(p[d]) + nan_if_bad(sc.log_sigma);
    }
  }
  sums[2] = chk;
}

template <bool kSums, class T>
inline void head_first(int kind, const T* m, const T* p, const T* e, T lo, T hi, index_t D, T* sig, T* z, T* sums) {
  if (kind == LOGVAR)
    head_first<LOGVAR, kSums, T>(m, p, e, lo, hi, D, sig, z, sums);
  else if (kind == LOG_STD)
    head_first<LOG_STD, kSums, T>(m, p, e, lo, hi, D, sig, z, sums);
  else
    head_first<STD, kSums, T>(m, p, e, lo, hi, D, sig, z, sums);
}

template <class T>
inline void head_scales(int kind, const T* m, const T* p, T lo, T hi, index_t D, T* sig, T* sums) {
  if (kind == LOGVAR)
    head_scales<LOGVAR, T>(m, p, lo, hi, D, sig, sums);
  else if (kind == LOG_STD)
    head_scales<LOG_STD, T>(m, p, lo, hi, D, sig, sums);
  else
    head_scales<STD, T>(m, p, lo, hi, D, sig, sums);
}

// z = m + sig * e; returns sum e^2.
template <class T>
PGM_CLONES inline T affine_row(const T* __restrict m, const T* __restrict sig, const T* __restrict e, index_t D,
                               T* __restrict z) {
  T sq = 0;
#pragma omp simd reduction(+ : sq)
  for (index_t d = 0; d < D; ++d) {
    z[d] = m[d] + sig[d] * e[d];
    sq += e[d] * e[d];
  }
  return sq;
}

// Row strides, in elements, of a CPU launcher's (B, D) inputs mu and p: 0 means D (contiguous
// rows). The one-call paths pass a column slice's stride (mu and logvar sliced from one encoder
// output) instead of copying it; the rows' arithmetic is the same, so are the bits.
struct RowStrides {
  index_t mu = 0, p = 0;
  index_t of_mu(index_t D) const { return mu ? mu : D; }
  index_t of_p(index_t D) const { return p ? p : D; }
};

template <class T>
void normal_head_cpu(const T* mu, const T* p, const T* eps_in, int kind, T lo, T hi, std::uint64_t seed,
                     std::uint64_t stream, std::uint64_t offset, index_t S, index_t B, index_t D, T* z, T* eps_out,
                     T* kl, T* logq, std::int32_t* status, RowStrides ld = {}) {
  const index_t lm = ld.of_mu(D), lp = ld.of_p(D);
  auto bufs = slot_buffers<T>(2 * D);  // sig, eb
  // the first sample's pass computes the KL and log q sums only for outputs that use them (and
  // sum e^2 for the check of a given eps)
  const bool sums_wanted = kl || logq || eps_in;
  parallel_for_slots(B, 32, B * D * (S + 1) > PAR_MIN, bufs, [&](index_t b, std::vector<T>& buf) {
    T *sig = buf.data(), *eb = buf.data() + D;
    const T* m = mu + b * lm;
    // The RNG below is compute-bound: have the next rows' mu, scale and z lines on their way
    // meanwhile (sequential streams, but the hardware prefetcher alone leaves them serial).
    if (b + PREFETCH_ROWS < B)
      for (index_t k = 0; k < D; k += 64 / static_cast<index_t>(sizeof(T))) {
        __builtin_prefetch(mu + (b + PREFETCH_ROWS) * lm + k);
        __builtin_prefetch(p + (b + PREFETCH_ROWS) * lp + k);
        __builtin_prefetch(z + (b + PREFETCH_ROWS) * D + k, 1);
      }
    T sums[4] = {0, 0, 0, 0};
    index_t s0 = 0;
    if (S > 0) {  // the first sample fused with the scales: one pass over mu, p and z
      T* eo = eps_out ? eps_out + b * D : eb;
      const T* e = eps_in ? eps_in + b * D : eo;
      if (!eps_in) fill_range<T>(rng::NORMAL, seed, stream + b, offset, D, eo);
      if (sums_wanted)
        head_first<true, T>(kind, m, p + b * lp, e, lo, hi, D, sig, z + b * D, sums);
      else
        head_first<false, T>(kind, m, p + b * lp, e, lo, hi, D, sig, z + b * D, sums);
      if (eps_in && eps_out) std::copy(e, e + D, eps_out + b * D);
      if (logq) logq[b] = T(-0.5) * sums[3] - sums[0] - T(D * HALF_LOG_2PI);
      if (eps_in) sums[2] += nan_if_bad(sums[3]);
      s0 = 1;
    } else {
      head_scales<T>(kind, m, p + b * lp, lo, hi, D, sig, sums);
    }
    T chk = sums[2];
    if (kl) kl[b] = sums[1];
    for (index_t s = s0; s < S; ++s) {
      const index_t row = s * B + b;
      T* eo = eps_out ? eps_out + row * D : eb;
      const T* e = eps_in ? eps_in + row * D : eo;
      if (!eps_in) fill_range<T>(rng::NORMAL, seed, stream + b, offset + s * D, D, eo);
      const T sq = affine_row<T>(m, sig, e, D, z + row * D);
      if (eps_in) {
        chk += nan_if_bad(sq);
        if (eps_out) std::copy(e, e + D, eps_out + row * D);
      }
      if (logq) logq[row] = T(-0.5) * sq - sums[0] - T(D * HALF_LOG_2PI);
    }
    status[b] = chk == T(0) ? ROW_OK : ROW_NONFINITE;
  });
}

template <int KIND, class T>
PGM_CLONES inline void head_backward_scales(const T* __restrict m, const T* __restrict p, T lo, T hi, index_t D, T gk,
                                            T glq, T* __restrict dm, T* __restrict dp) {
#pragma omp simd
  for (index_t d = 0; d < D; ++d) {
    const Scale<T> sc = scale_of<T>(KIND, p[d], lo, hi);
    dm[d] += gk * m[d];
    dp[d] = (dp[d] * sc.sigma + kl_dlog_sigma(gk, sc.sigma) - glq) * sc.dlog_dp;
  }
}

// One sample's whole VJP in one pass (S = 1 with grad_z): head_backward_scales after
// path_grad_row from zeros, without the zero fill and the two passes over dm and dp between.
// PATH_ONLY: rsample's VJP alone (no KL or log-q gradient, no clamp). The same expression with
// those terms' constants, which the compiler folds (only IEEE-exact folds: the same bits): the
// clamps' selects and the KL's d/d log sigma go, about a quarter of the loop's instructions.
template <int KIND, bool PATH_ONLY, class T>
PGM_CLONES inline void head_backward_one(const T* __restrict m, const T* __restrict p, const T* __restrict g,
                                         const T* __restrict e, T lo, T hi, index_t D, T gk, T glq, T* __restrict dm,
                                         T* __restrict dp) {
  if constexpr (PATH_ONLY) {
    lo = -std::numeric_limits<T>::infinity();
    hi = std::numeric_limits<T>::infinity();
    gk = glq = T(0);
  }
#pragma omp simd
  for (index_t d = 0; d < D; ++d) {
    const Scale<T> sc = scale_of<T>(KIND, p[d], lo, hi);
    dm[d] = (T(0) + g[d]) + gk * m[d];  // (the 0 + of the accumulating path: the same signed zeros)
    dp[d] = ((T(0) + g[d] * e[d]) * sc.sigma + kl_dlog_sigma(gk, sc.sigma) - glq) * sc.dlog_dp;
  }
}

// dm += g, dls += g * e (sum over samples of the reparameterization path).
template <class T>
PGM_CLONES inline void path_grad_row(const T* __restrict g, const T* __restrict e, index_t D, T* __restrict dm,
                                     T* __restrict dls) {
#pragma omp simd
  for (index_t d = 0; d < D; ++d) {
    dm[d] += g[d];
    dls[d] += g[d] * e[d];
  }
}

// VJP of normal_head: gz (S, B, D), gkl (B,), glogq (S, B), each may be null. The noise is
// regenerated from (seed, stream, offset) unless eps_in is given.
template <bool PATH_ONLY, class T>
inline void one_kind(int kind, const T* m, const T* p, const T* g, const T* e, T lo, T hi, index_t D, T gk, T glq,
                     T* dm, T* dp) {
  if (kind == LOGVAR)
    head_backward_one<LOGVAR, PATH_ONLY, T>(m, p, g, e, lo, hi, D, gk, glq, dm, dp);
  else if (kind == LOG_STD)
    head_backward_one<LOG_STD, PATH_ONLY, T>(m, p, g, e, lo, hi, D, gk, glq, dm, dp);
  else
    head_backward_one<STD, PATH_ONLY, T>(m, p, g, e, lo, hi, D, gk, glq, dm, dp);
}

template <class T>
void normal_head_backward_cpu(const T* mu, const T* p, const T* eps_in, int kind, T lo, T hi, std::uint64_t seed,
                              std::uint64_t stream, std::uint64_t offset, index_t S, index_t B, index_t D, const T* gz,
                              const T* gkl, const T* glogq, T* dmu, T* dp, RowStrides ld = {}) {
  const index_t lm = ld.of_mu(D), lp = ld.of_p(D);
  constexpr T inf = std::numeric_limits<T>::infinity();
  const bool path_only = !gkl && !glogq && lo == -inf && hi == inf;
  auto ebs = slot_buffers<T>(eps_in ? 0 : D);  // (the noise's row buffer, when it is regenerated)
  parallel_for_slots(B, 32, B * D * (S + 1) > PAR_MIN, ebs, [&](index_t b, std::vector<T>& eb) {
    const T* m = mu + b * lm;
    const T* pb = p + b * lp;
    T* dm = dmu + b * D;
    T* dpb = dp + b * D;
    const T gk = gkl ? gkl[b] : T(0);
    T glq = 0;
    if (glogq)
      for (index_t s = 0; s < S; ++s) glq += glogq[s * B + b];
    if (gz && S == 1) {
      const T* e = eps_in ? eps_in + b * D : eb.data();
      if (!eps_in) fill_range<T>(rng::NORMAL, seed, stream + b, offset, D, eb.data());
      if (path_only)
        one_kind<true>(kind, m, pb, gz + b * D, e, lo, hi, D, gk, glq, dm, dpb);
      else
        one_kind<false>(kind, m, pb, gz + b * D, e, lo, hi, D, gk, glq, dm, dpb);
      return;
    }
    std::fill(dm, dm + D, T(0));
    std::fill(dpb, dpb + D, T(0));  // accumulates sum_s g e first
    if (gz) {
      for (index_t s = 0; s < S; ++s) {
        const index_t row = s * B + b;
        const T* e = eps_in ? eps_in + row * D : eb.data();
        if (!eps_in) fill_range<T>(rng::NORMAL, seed, stream + b, offset + s * D, D, eb.data());
        path_grad_row<T>(gz + row * D, e, D, dm, dpb);
      }
    }
    if (kind == LOGVAR)
      head_backward_scales<LOGVAR, T>(m, pb, lo, hi, D, gk, glq, dm, dpb);
    else if (kind == LOG_STD)
      head_backward_scales<LOG_STD, T>(m, pb, lo, hi, D, gk, glq, dm, dpb);
    else
      head_backward_scales<STD, T>(m, pb, lo, hi, D, gk, glq, dm, dpb);
  });
}
#endif  // !__CUDACC__

// ---------------------------------------------------------------------------------------
// KL between diagonal Gaussians, per row; the prior (pmu, pp) may be null: N(0, I).
// ---------------------------------------------------------------------------------------
template <class T>
PGM_HD T kl_normal_row(const T* m, const T* p, const T* pm, const T* pp, int kind, T lo, T hi, index_t D, T* chk_out) {
  T kl = 0, chk = 0;
  for (index_t d = 0; d < D; ++d) {
    const Scale<T> q = scale_of<T>(kind, p[d], lo, hi);
    const T m2 = pm ? pm[d] : T(0);
    Scale<T> r{T(1), T(0), T(0)};
    if (pp) r = scale_of<T>(kind, pp[d], lo, hi);
    const T diff = m[d] - m2, ir2 = T(1) / (r.sigma * r.sigma);
    kl += r.log_sigma - q.log_sigma + T(0.5) * (q.sigma * q.sigma + diff * diff) * ir2 - T(0.5);
    chk += nan_if_bad(m[d]) + nan_if_bad(q.log_sigma) + nan_if_bad(diff) + nan_if_bad(r.log_sigma);
  }
  *chk_out = chk;
  return kl;
}

template <class T>
PGM_HD void kl_normal_row_backward(const T* m, const T* p, const T* pm, const T* pp, int kind, T lo, T hi, index_t D,
                                   T g, T* dm, T* dp, T* dpm, T* dpp) {
  if (g == T(0)) {  // no gradient asked of this row: zeros (below, 0 * inf where sigma**2 overflows)
    for (index_t d = 0; d < D; ++d) {
      dm[d] = dp[d] = T(0);
      if (dpm) dpm[d] = T(0);
      if (dpp) dpp[d] = T(0);
    }
    return;
  }
  for (index_t d = 0; d < D; ++d) {
    const Scale<T> q = scale_of<T>(kind, p[d], lo, hi);
    const T m2 = pm ? pm[d] : T(0);
    Scale<T> r{T(1), T(0), T(0)};
    if (pp) r = scale_of<T>(kind, pp[d], lo, hi);
    const T diff = m[d] - m2, ir2 = T(1) / (r.sigma * r.sigma), q2 = q.sigma * q.sigma;
    dm[d] = g * diff * ir2;
    dp[d] = g * (q2 * ir2 - T(1)) * q.dlog_dp;
    if (dpm) dpm[d] = -g * diff * ir2;
    if (dpp) dpp[d] = g * (T(1) - (q2 + diff * diff) * ir2) * r.dlog_dp;
  }
}

// Diagonal Gaussian log-density per row: x row r against (mu, p) row r % B.
template <class T>
PGM_HD T normal_log_prob_row(const T* x, const T* m, const T* p, int kind, T lo, T hi, index_t D, T* chk_out) {
  T lp = 0, chk = 0;
  for (index_t d = 0; d < D; ++d) {
    const Scale<T> q = scale_of<T>(kind, p[d], lo, hi);
    const T u = (x[d] - m[d]) / q.sigma;
    lp += T(-0.5) * u * u - q.log_sigma;
    chk += nan_if_bad(u) + nan_if_bad(q.log_sigma);
  }
  *chk_out = chk;
  return lp - T(D * HALF_LOG_2PI);
}

template <class T>
PGM_HD void normal_log_prob_row_backward(const T* x, const T* m, const T* p, int kind, T lo, T hi, index_t D, T g,
                                         T* dx, T* dm, T* dp) {
  for (index_t d = 0; d < D; ++d) {
    const Scale<T> q = scale_of<T>(kind, p[d], lo, hi);
    const T u = (x[d] - m[d]) / q.sigma;
    const T gx = -g * u / q.sigma;
    if (dx) dx[d] = gx;  // (dx / dp null: not wanted, as for a fixed decoder variance in elbo.hpp)
    dm[d] += -gx;        // accumulated over the rows that share (mu, p)
    if (dp) dp[d] += g * (u * u - T(1)) * q.dlog_dp;
  }
}

// ---------------------------------------------------------------------------------------
// Full-covariance head: z = mu + L eps (L lower triangular, row-major (D, D)), KL(N(mu, L L^T)
// || N(0, I)) and log q(z | x) per sample. Row b uses L + (shared ? 0 : b D^2).
// ---------------------------------------------------------------------------------------
template <class T>
PGM_HD int check_tril(const T* L, index_t D, bool upper, T* logdet) {
  T ld = 0, chk = 0;
  int bad = 0;
  for (index_t i = 0; i < D; ++i) {
    const T lii = L[i * D + i];
    if (!(lii > T(0))) bad = ROW_BAD_TRIL;
    ld += log_t(lii);
    const T* Li = L + i * D;
    PGM_SIMD_SUM(chk)
    for (index_t j = 0; j <= i; ++j) chk += nan_if_bad(Li[j]);
    if (upper) {
      T nz = 0;  // |entries| above the diagonal (NaN there also counts)
      PGM_SIMD_SUM(nz)
      for (index_t j = i + 1; j < D; ++j) nz += Li[j] != T(0) ? T(1) : T(0);
      if (nz != T(0)) bad = ROW_BAD_TRIL;
    }
  }
  if (chk != T(0)) bad = bad ? bad : ROW_NONFINITE;
  *logdet = ld;
  return bad;
}

// sum_k a[k] b[k] with 8 independent partial sums (vectorises without reassociation flags,
// and the summation order is fixed: the same result for any SIMD width).
template <class T>
PGM_HD T dot8(const T* a, const T* b, index_t n) {
  T p[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  index_t k = 0;
  for (; k + 8 <= n; k += 8)
    for (int l = 0; l < 8; ++l) p[l] += a[k + l] * b[k + l];
  for (int l = 0; k + l < n; ++l) p[l] += a[k + l] * b[k + l];
  return ((p[0] + p[4]) + (p[1] + p[5])) + ((p[2] + p[6]) + (p[3] + p[7]));
}

// z = m + L e. With `full` the upper triangle is known to be zero (checked in the same pass)
// and whole rows are used: fixed-length dots vectorise better than the triangular ones.
template <class T>
PGM_HD void tril_matvec_add(const T* L, const T* m, const T* e, index_t D, T* z, bool full = false) {
  for (index_t i = 0; i < D; ++i) z[i] = m[i] + dot8<T>(L + i * D, e, full ? D : i + 1);
}

// Entry (i, j) of d/dL of gk * KL(N(m, L L^T) || N(0, I)) + glq * (-log det L) (the log q
// term's dependence on L); d/dm of the KL is gk * m.
template <class T>
PGM_HD T mvn_kl_std_dL(const T* L, index_t D, index_t i, index_t j, T gk, T glq) {
  return j <= i ? gk * L[i * D + j] - (i == j ? (gk + glq) / L[i * D + i] : T(0)) : T(0);
}

template <class T>
PGM_HD T mvn_kl_std(const T* m, const T* L, index_t D, T logdet) {
  T fro = 0, mm = 0;
  for (index_t i = 0; i < D; ++i) {
    mm += m[i] * m[i];
    fro += dot8<T>(L + i * D, L + i * D, i + 1);
  }
  return T(0.5) * (fro + mm - T(D)) - logdet;
}

// Chunks of rows over which a shared factor's gradient is summed (then the chunks, in order):
// a function of (B, D) only, so the sum does not depend on the thread count.
PGM_HD index_t shared_chunks(index_t B, index_t D) {
  const index_t cap = (index_t(1) << 22) / (D * D > 0 ? D * D : 1);  // G D^2 elements of scratch
  index_t G = B < 64 ? B : 64;
  G = G < cap ? G : cap;
  return B == 0 ? 0 : (G < 1 ? 1 : G);
}

#if !defined(__CUDACC__)
// Sum of G partial (D, D) gradients in chunk order into dL.
template <class T>
void sum_parts(const std::vector<T>& part, index_t G, index_t DD, T* dL) {
  for (index_t k = 0; k < DD; ++k) {
    T acc = 0;
    for (index_t g = 0; g < G; ++g) acc += part[g * DD + k];
    dL[k] = acc;
  }
}

template <class T>
PGM_CLONES inline T mvn_kl_std_cpu(const T* m, const T* L, index_t D, T logdet) {
  return mvn_kl_std<T>(m, L, D, logdet);
}

template <class T>
void mvn_head_cpu(const T* mu, const T* L, bool shared, bool check_upper, const T* eps_in, std::uint64_t seed,
                  std::uint64_t stream, std::uint64_t offset, index_t S, index_t B, index_t D, T* z, T* eps_out, T* kl,
                  T* logq, std::int32_t* status) {
  // Without KL and log q no log-determinant is needed: the validity checks ride on the first
  // sample's mat-vec (one pass over the lower triangle, no logs).
  const bool fused = !kl && !logq && S > 0;
  // Contiguous blocks of matrices (the hardware prefetcher follows them), handed out on demand
  // (share_chunk: a slowed thread does not hold up the call).
  auto ebs = slot_buffers<T>(D);
  parallel_for_slots(B, share_chunk(B), B * D * D > PAR_MIN, ebs, [&](index_t b, std::vector<T>& eb) {
    const T* m = mu + b * D;
    const T* Lb = L + (shared ? 0 : b * D * D);
    if (!shared && b + 2 < B)  // the matrices stream from memory: ask for the one after next
      for (index_t k = 0; k < D * D; k += 64 / static_cast<index_t>(sizeof(T)))
        __builtin_prefetch(L + (b + 2) * D * D + k);
    T logdet = 0;
    int bad = 0;
    T chk = 0;
    const bool upper = check_upper && (!shared || b == 0);
    if (!fused) bad = check_tril<T>(Lb, D, upper, &logdet);
    for (index_t d = 0; d < D; ++d) chk += nan_if_bad(m[d]);
    if (kl) kl[b] = mvn_kl_std_cpu<T>(m, Lb, D, logdet);
    for (index_t s = 0; s < S; ++s) {
      const index_t row = s * B + b;
      const T* e = eps_in ? eps_in + row * D : eb.data();
      if (!eps_in) fill_range<T>(rng::NORMAL, seed, stream + b, offset + s * D, D, eb.data());
      // (the same z with or without KL / log q: both paths take tril_matvec_fused)
      int dbad = 0, ubad = 0;
      const bool first = fused && s == 0;
      const T lchk = tril_matvec_fused<T>(Lb, m, e, D, z + row * D, &dbad, first && upper ? &ubad : nullptr);
      if (first) {
        chk += lchk;
        if (dbad || ubad) bad = ROW_BAD_TRIL;
      }
      if (eps_in || logq) {
        T sq = 0;
        for (index_t d = 0; d < D; ++d) sq += e[d] * e[d];
        if (eps_in) chk += nan_if_bad(sq);
        if (logq) logq[row] = T(-0.5) * sq - logdet - T(D * HALF_LOG_2PI);
      }
      if (eps_out) std::copy(e, e + D, eps_out + row * D);
    }
    status[b] = bad ? bad : (chk == T(0) ? ROW_OK : ROW_NONFINITE);
  });
}

// VJP of mvn_head. dL has L's shape. A shared L's gradient is summed over fixed chunks of rows
// (shared_chunks) into partials, then over the partials in order.
template <class T>
void mvn_head_backward_cpu(const T* mu, const T* L, bool shared, const T* eps_in, std::uint64_t seed,
                           std::uint64_t stream, std::uint64_t offset, index_t S, index_t B, index_t D, const T* gz,
                           const T* gkl, const T* glogq, T* dmu, T* dL) {
  const index_t DD = D * D;
  const index_t G = shared ? shared_chunks(B, D) : B;  // row groups: one per row unless shared
  std::vector<T> part(shared ? G * DD : 0, T(0));
  auto ebs = slot_buffers<T>(D);
  parallel_for_slots(G, shared ? 1 : 32, B * D * D > PAR_MIN, ebs, [&](index_t grp, std::vector<T>& eb) {
    const index_t b0 = shared ? B * grp / G : grp, b1 = shared ? B * (grp + 1) / G : grp + 1;
    for (index_t b = b0; b < b1; ++b) {
      const T* m = mu + b * D;
      const T* Lb = L + (shared ? 0 : b * DD);
      T* dLb = shared ? part.data() + grp * DD : dL + b * DD;
      T* dm = dmu + b * D;
      const T gk = gkl ? gkl[b] : T(0);
      T glq = 0;
      if (glogq)
        for (index_t s = 0; s < S; ++s) glq += glogq[s * B + b];
      // mvn_kl_std_dL entry by entry, in loops that vectorise: gk L_ij below the diagonal,
      // gk L_ii - (gk + glq) / L_ii on it, 0 above (the same operations, so the same bits)
      for (index_t i = 0; i < D; ++i) {
        dm[i] = gk * m[i];
        const T* __restrict Li = Lb + i * D;
        T* __restrict dLi = dLb + i * D;
        const T diag = gk * Li[i] - (gk + glq) / Li[i];
        if (shared) {
#pragma omp simd
          for (index_t j = 0; j < i; ++j) dLi[j] += gk * Li[j];
          dLi[i] += diag;
        } else {
#pragma omp simd
          for (index_t j = 0; j < i; ++j) dLi[j] = gk * Li[j];
          dLi[i] = diag;
          std::fill(dLi + i + 1, dLi + D, T(0));
        }
      }
      if (gz) {
        for (index_t s = 0; s < S; ++s) {
          const index_t row = s * B + b;
          const T* e = eps_in ? eps_in + row * D : eb.data();
          if (!eps_in) fill_range<T>(rng::NORMAL, seed, stream + b, offset + s * D, D, eb.data());
          const T* g = gz + row * D;
          for (index_t i = 0; i < D; ++i) {
            dm[i] += g[i];
            T* __restrict dLi = dLb + i * D;
            const T gi = g[i];
#pragma omp simd
            for (index_t j = 0; j <= i; ++j) dLi[j] += gi * e[j];
          }
        }
      }
    }
  });
  if (shared) sum_parts<T>(part, G, DD, dL);
}
#endif  // !__CUDACC__

// ---------------------------------------------------------------------------------------
// Batched triangular solve: L X = R (trans = 0) or L^T X = R (trans = 1), L lower
// triangular (Lb, D, D) with Lb in {1, B}, R and X (B, D, K). X may alias R.
// ---------------------------------------------------------------------------------------
template <class T>
PGM_HD void tri_solve_one(const T* L, const T* R, index_t D, index_t K, index_t k, bool trans, T* X) {
  if (!trans) {
    for (index_t i = 0; i < D; ++i) {
      T acc = R[i * K + k];
      for (index_t j = 0; j < i; ++j) acc -= L[i * D + j] * X[j * K + k];
      X[i * K + k] = acc / L[i * D + i];
    }
  } else {
    for (index_t i = D; i-- > 0;) {
      T acc = R[i * K + k];
      for (index_t j = i + 1; j < D; ++j) acc -= L[j * D + i] * X[j * K + k];
      X[i * K + k] = acc / L[i * D + i];
    }
  }
}

#if !defined(__CUDACC__)
template <class T>
void tri_solve_cpu(const T* L, bool shared, const T* R, index_t B, index_t D, index_t K, bool trans, T* X) {
  parallel_for(B * K, 32, B * K * D * D > PAR_MIN, [&](index_t t) {
    const index_t b = t / K, k = t % K;
    tri_solve_one<T>(L + (shared ? 0 : b * D * D), R + b * D * K, D, K, k, trans, X + b * D * K);
  });
}

// The CPU's rows of kl_normal and normal_log_prob (normal_rows.hpp): log-variance and log-std
// scales in vector passes, the same results within rounding; std scales, and a row whose scale
// is out of float64's vector exp range, take the serial row.
template <class T>
inline T kl_normal_row_cpu(const T* m, const T* p, const T* pm, const T* pp, int kind, T lo, T hi, index_t D,
                           T* chk_out) {
  T sum;
  if ((kind == LOGVAR || kind == LOG_STD) &&
      normal_cpu::row_any<T>(nullptr, m, p, pm, pp, kind == LOGVAR ? T(0.5) : T(1), lo, hi, D, &sum, chk_out))
    return sum;
  return kl_normal_row<T>(m, p, pm, pp, kind, lo, hi, D, chk_out);
}

template <class T>
inline T normal_log_prob_row_cpu(const T* x, const T* m, const T* p, int kind, T lo, T hi, index_t D, T* chk_out) {
  T sum;
  if ((kind == LOGVAR || kind == LOG_STD) &&
      normal_cpu::row_any<T>(x, m, p, nullptr, nullptr, kind == LOGVAR ? T(0.5) : T(1), lo, hi, D, &sum, chk_out))
    return sum - T(D * HALF_LOG_2PI);
  return normal_log_prob_row<T>(x, m, p, kind, lo, hi, D, chk_out);
}

template <class T>
void kl_normal_cpu(const T* mu, const T* p, const T* pm, const T* pp, int kind, T lo, T hi, index_t B, index_t D, T* kl,
                   std::int32_t* status, RowStrides ld = {}) {
  const index_t lm = ld.of_mu(D), lp = ld.of_p(D);
  parallel_for(B, 32, B * D > PAR_MIN, [&](index_t b) {
    T chk;
    kl[b] = kl_normal_row_cpu<T>(mu + b * lm, p + b * lp, pm ? pm + b * D : nullptr, pp ? pp + b * D : nullptr, kind,
                                 lo, hi, D, &chk);
    status[b] = chk == T(0) ? ROW_OK : ROW_NONFINITE;
  });
}

// The CPU's backward rows of kl_normal and normal_log_prob: the serial rows' formulas with the
// scale kind and the optional arguments as template parameters, so that the loops vectorise.
// Element by element the same operations (no sums): the same bits as the serial rows.
template <int KIND, bool kPm, bool kPp, class T>
PGM_CLONES inline void kl_normal_row_backward_v(const T* __restrict m, const T* __restrict p, const T* __restrict pm,
                                                const T* __restrict pp, T lo, T hi, index_t D, T g, T* __restrict dm,
                                                T* __restrict dp, T* __restrict dpm, T* __restrict dpp) {
#pragma omp simd
  for (index_t d = 0; d < D; ++d) {
    const Scale<T> q = scale_of<T>(KIND, p[d], lo, hi);
    Scale<T> r{T(1), T(0), T(0)};
    if constexpr (kPp) r = scale_of<T>(KIND, pp[d], lo, hi);
    const T diff = m[d] - (kPm ? pm[d] : T(0)), ir2 = T(1) / (r.sigma * r.sigma), q2 = q.sigma * q.sigma;
    dm[d] = g * diff * ir2;
    dp[d] = g * (q2 * ir2 - T(1)) * q.dlog_dp;
    if constexpr (kPm) dpm[d] = -g * diff * ir2;
    if constexpr (kPp) dpp[d] = g * (T(1) - (q2 + diff * diff) * ir2) * r.dlog_dp;
  }
}

template <int KIND, class T>
inline void kl_normal_row_backward_kind(const T* m, const T* p, const T* pm, const T* pp, T lo, T hi, index_t D, T g,
                                        T* dm, T* dp, T* dpm, T* dpp) {
  if (pm && pp)
    kl_normal_row_backward_v<KIND, true, true, T>(m, p, pm, pp, lo, hi, D, g, dm, dp, dpm, dpp);
  else if (pm)
    kl_normal_row_backward_v<KIND, true, false, T>(m, p, pm, pp, lo, hi, D, g, dm, dp, dpm, dpp);
  else if (pp)
    kl_normal_row_backward_v<KIND, false, true, T>(m, p, pm, pp, lo, hi, D, g, dm, dp, dpm, dpp);
  else
    kl_normal_row_backward_v<KIND, false, false, T>(m, p, pm, pp, lo, hi, D, g, dm, dp, dpm, dpp);
}

template <class T>
inline void kl_normal_row_backward_cpu(const T* m, const T* p, const T* pm, const T* pp, int kind, T lo, T hi,
                                       index_t D, T g, T* dm, T* dp, T* dpm, T* dpp) {
  // (the serial row for a zero upstream gradient, and for a prior without its gradient's output)
  if (g == T(0) || (pm == nullptr) != (dpm == nullptr) || (pp == nullptr) != (dpp == nullptr))
    kl_normal_row_backward<T>(m, p, pm, pp, kind, lo, hi, D, g, dm, dp, dpm, dpp);
  else if (kind == LOGVAR)
    kl_normal_row_backward_kind<LOGVAR, T>(m, p, pm, pp, lo, hi, D, g, dm, dp, dpm, dpp);
  else if (kind == LOG_STD)
    kl_normal_row_backward_kind<LOG_STD, T>(m, p, pm, pp, lo, hi, D, g, dm, dp, dpm, dpp);
  else
    kl_normal_row_backward_kind<STD, T>(m, p, pm, pp, lo, hi, D, g, dm, dp, dpm, dpp);
}

// (dx and dp may be null, as for the ELBO's decoder: not wanted)
template <int KIND, bool kDx, bool kDp, class T>
PGM_CLONES inline void normal_log_prob_row_backward_v(const T* __restrict x, const T* __restrict m,
                                                      const T* __restrict p, T lo, T hi, index_t D, T g,
                                                      T* __restrict dx, T* __restrict dm, T* __restrict dp) {
#pragma omp simd
  for (index_t d = 0; d < D; ++d) {
    const Scale<T> q = scale_of<T>(KIND, p[d], lo, hi);
    const T u = (x[d] - m[d]) / q.sigma;
    const T gx = -g * u / q.sigma;
    if constexpr (kDx) dx[d] = gx;
    dm[d] += -gx;
    if constexpr (kDp) dp[d] += g * (u * u - T(1)) * q.dlog_dp;
  }
}

template <int KIND, class T>
inline void normal_log_prob_row_backward_kind(const T* x, const T* m, const T* p, T lo, T hi, index_t D, T g, T* dx,
                                              T* dm, T* dp) {
  if (dx && dp)
    normal_log_prob_row_backward_v<KIND, true, true, T>(x, m, p, lo, hi, D, g, dx, dm, dp);
  else if (dx)
    normal_log_prob_row_backward_v<KIND, true, false, T>(x, m, p, lo, hi, D, g, dx, dm, dp);
  else if (dp)
    normal_log_prob_row_backward_v<KIND, false, true, T>(x, m, p, lo, hi, D, g, dx, dm, dp);
  else
    normal_log_prob_row_backward_v<KIND, false, false, T>(x, m, p, lo, hi, D, g, dx, dm, dp);
}

template <class T>
inline void normal_log_prob_row_backward_cpu(const T* x, const T* m, const T* p, int kind, T lo, T hi, index_t D, T g,
                                             T* dx, T* dm, T* dp) {
  if (kind == LOGVAR)
    normal_log_prob_row_backward_kind<LOGVAR, T>(x, m, p, lo, hi, D, g, dx, dm, dp);
  else if (kind == LOG_STD)
    normal_log_prob_row_backward_kind<LOG_STD, T>(x, m, p, lo, hi, D, g, dx, dm, dp);
  else
    normal_log_prob_row_backward_kind<STD, T>(x, m, p, lo, hi, D, g, dx, dm, dp);
}

template <class T>
void kl_normal_backward_cpu(const T* mu, const T* p, const T* pm, const T* pp, int kind, T lo, T hi, index_t B,
                            index_t D, const T* g, T* dmu, T* dp, T* dpm, T* dpp, RowStrides ld = {}) {
  const index_t lm = ld.of_mu(D), lp = ld.of_p(D);
  parallel_for(B, 32, B * D > PAR_MIN, [&](index_t b) {
    kl_normal_row_backward_cpu<T>(mu + b * lm, p + b * lp, pm ? pm + b * D : nullptr, pp ? pp + b * D : nullptr, kind,
                                  lo, hi, D, g[b], dmu + b * D, dp + b * D, dpm ? dpm + b * D : nullptr,
                                  dpp ? dpp + b * D : nullptr);
  });
}

// x (R, D) rows against (mu, p) (B, D) rows r % B, R a multiple of B.
template <class T>
void normal_log_prob_cpu(const T* x, const T* mu, const T* p, int kind, T lo, T hi, index_t R, index_t B, index_t D,
                         T* out, std::int32_t* status, RowStrides ld = {}) {
  const index_t lm = ld.of_mu(D), lp = ld.of_p(D);
  parallel_for(R, 32, R * D > PAR_MIN, [&](index_t r) {
    T chk;
    const index_t b = r % B;
    out[r] = normal_log_prob_row_cpu<T>(x + r * D, mu + b * lm, p + b * lp, kind, lo, hi, D, &chk);
    status[r] = chk == T(0) ? ROW_OK : ROW_NONFINITE;
  });
}

template <class T>
void normal_log_prob_backward_cpu(const T* x, const T* mu, const T* p, int kind, T lo, T hi, index_t R, index_t B,
                                  index_t D, const T* g, T* dx, T* dmu, T* dp, RowStrides ld = {}) {
  const index_t lm = ld.of_mu(D), lp = ld.of_p(D);
  // Parallel over the (mu, p) rows b; each accumulates its S = R / B samples in order.
  parallel_for(B, 32, R * D > PAR_MIN, [&](index_t b) {
    std::fill(dmu + b * D, dmu + (b + 1) * D, T(0));
    std::fill(dp + b * D, dp + (b + 1) * D, T(0));
    for (index_t r = b; r < R; r += B)
      normal_log_prob_row_backward_cpu<T>(x + r * D, mu + b * lm, p + b * lp, kind, lo, hi, D, g[r], dx + r * D,
                                          dmu + b * D, dp + b * D);
  });
}
#endif  // !__CUDACC__

}  // namespace pygenmod::sampling
