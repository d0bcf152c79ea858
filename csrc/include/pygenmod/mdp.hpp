// Bellman backups: the per-(s, a) and per-state math, shared by the CPU and CUDA launchers,
// and the CPU launchers (one backup sweep; whole value/policy/modified-policy iteration loops).
//
// Layout. Dense transitions P[b, s, a, s'] (each (s, a) row contiguous). Sparse transitions
// are one CSR matrix over all B MDPs: row (b*S + s)*A + a holds P(. | s, a) of MDP b, its
// column indices are local states in [0, S) (int32), indptr is int64 of length B*S*A + 1.
// Rewards R[b, s, a] (expected rewards; R[b, s, a, s'] is reduced to this in Python), V[b, s].
//
// Determinism: every state of a sweep is computed by one thread with a fixed summation
// order, and the only cross-thread reductions are min/max (exact), so results do not
// depend on the thread count or on whether a batch is split over MDPs or over states.
// Sweeps hand out states in small chunks on pygenmod's pool (parallel.hpp), so a thread that
// the OS preempts (busy, shared machines) delays the others by one chunk at most.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "pygenmod/common.hpp"
#include "pygenmod/cpu_features.hpp"
#include "pygenmod/interrupt.hpp"
#include "pygenmod/mdp_loop.hpp"
#include "pygenmod/parallel.hpp"

// (outside the namespace below: a system header included inside it would declare its
// intrinsics in pygenmod::mdp and break any file that includes it again later)
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__) && !defined(__CUDACC__)
#include <immintrin.h>
#endif

namespace pygenmod::mdp {

// Backup kinds (the `kind` argument of the sweep kernels).
enum Kind : int {
  kOptimal = 0,     // V = max_a Q
  kPolicy = 1,      // V = Q[pi(s)] (deterministic policy)
  kStochastic = 2,  // V = sum_a pi(a|s) Q[a]
  kSoft = 3,        // V = tau * log sum_a exp(Q[a] / tau)
};

// ------------------------------------------------------------------ dense dot products
// The fast paths' input check of P's rows (mdp_fast.hpp): how many rows were tallied, the
// largest |row sum - 1| over the finite sums, whether a sum was not finite, and the OR of
// every entry's bit pattern (a set sign bit: a negative entry). Filled by the AVX-512
// and AVX2 dots (dotk_avx512, dotk_avx2 and their float32 twins) from their own loads (a checked backup then reads each
// row once), else by mdp_fast.hpp's tally_rows.
struct RowTally {
  index_t rows = 0;
  double err = 0;
  bool nonfinite = false;
  std::uint64_t bits = 0;
  PGM_HD void add_sum(double sum) {
    ++rows;
    if (!std::isfinite(sum))
      nonfinite = true;
    else
      err = std::fabs(sum - 1.0) > err ? std::fabs(sum - 1.0) : err;
  }
};

// Every row of P is summed in one fixed order, whichever function computes it and however
// many rows it computes at once (the solvers skip rows of eliminated actions, and the
// answer must not depend on which rows were computed together).
//
// Generic (and float32 on every CPU, and device) order: 8 partial sums in acc_t<T>,
// tree-added (float32: the x86 kernels below keep it exactly).
// The end of that order, given the 8 partial sums of row[0, j): the tail row[j, n) into c[0]
// in order, then the tree.
template <class T, class U>
PGM_HD U generic_tail_tree(U* c, const T* row, const T* v, index_t j, index_t n) {
  for (; j < n; ++j) c[0] += static_cast<U>(row[j]) * v[j];
  return ((c[0] + c[1]) + (c[2] + c[3])) + ((c[4] + c[5]) + (c[6] + c[7]));
}

template <class T>
PGM_HD acc_t<T> dot_generic(const T* row, const T* v, index_t n) {
  using U = acc_t<T>;
  U c[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  index_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int k = 0; k < 8; ++k) c[k] += static_cast<U>(row[j + k]) * v[j + k];
  return generic_tail_tree(c, row, v, j, n);
}

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__) && !defined(__CUDACC__)
// The package is compiled for baseline x86-64; float64 rows use the widest of these that the
// CPU has (pygenmod/cpu_features.hpp; no -march flag needed).
//   AVX-512: two 8-lane partial sums (chunk i of 8 entries into sum i % 2, a short last
//            chunk masked), added, then a tree over the 8 lanes.
//   AVX2:    two 4-lane partial sums (entries j % 8 < 4 and >= 4), their sum tree-added over
//            the 4 lanes, then the tail (n % 8 entries) in order.
// One template per instruction set computes 1, 4 or 8 rows, so a row's order is the same
// whichever count it is computed in; several rows share each load of v and keep 8 or 16
// independent chains (one row of S = 64 entries is latency bound).
#define PGM_MDP_X86_DISPATCH 1
#define PGM_MDP_AVX512 __attribute__((target("avx512f,avx2,fma")))
#define PGM_MDP_AVX2 __attribute__((target("avx2,fma")))

// The masked load of entries [j, min(j + 8, n)).
PGM_MDP_AVX512 inline __m512d load8_avx512(const double* x, index_t j, index_t n) {
  if (j + 8 <= n) return _mm512_loadu_pd(x + j);
  return _mm512_maskz_loadu_pd(static_cast<__mmask8>((1u << (n - j)) - 1), x + j);
}

// One chunk p of a row into its dot c (against x) and, with kTally, into its sum t and the
// OR of bit patterns.
template <bool kTally>
PGM_MDP_AVX512 inline void dot_step_avx512(__m512d p, __m512d x, __m512d& c, __m512d& t, __m512i& bits) {
  // (the empty asm pins the loaded chunk in a register: GCC would fold a load into each of the
  // three instructions, and loads bound this loop)
  if constexpr (kTally) __asm__("" : "+v"(p));
  c = _mm512_fmadd_pd(p, x, c);
  if constexpr (kTally) {
    t = _mm512_add_pd(t, p);
    bits = _mm512_or_si512(bits, _mm512_castpd_si512(p));
  }
}

// K rows (K = 1, 4 or 8) against v: out[k] = r[k] . v, the lane trees of all rows as one
// transpose (absent rows are zeros, which change no sum). kTally: also each row's sum and
// bits into *tally, from the same loads (the sums' adds and the ORs fill idle ports of a loop
// bound by its loads; the dots are unchanged).
template <int K, bool kTally = false>
PGM_MDP_AVX512 inline void dotk_avx512(const double* const* r, const double* v, index_t n, double* out,
                                       RowTally* tally = nullptr) {
  __m512d c0[K], c1[K], s0[K], s1[K];
  __m512i bits = _mm512_setzero_si512();
#pragma GCC unroll 8
  for (int k = 0; k < K; ++k) c0[k] = c1[k] = s0[k] = s1[k] = _mm512_setzero_pd();
  index_t j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m512d x0 = _mm512_loadu_pd(v + j), x1 = _mm512_loadu_pd(v + j + 8);
#pragma GCC unroll 8
    for (int k = 0; k < K; ++k) {
      dot_step_avx512<kTally>(_mm512_loadu_pd(r[k] + j), x0, c0[k], s0[k], bits);
      dot_step_avx512<kTally>(_mm512_loadu_pd(r[k] + j + 8), x1, c1[k], s1[k], bits);
    }
  }
  if (j < n) {  // a last chunk (into c0) and maybe one more (into c1), masked
    const __m512d x = load8_avx512(v, j, n);
#pragma GCC unroll 8
    for (int k = 0; k < K; ++k) dot_step_avx512<kTally>(load8_avx512(r[k], j, n), x, c0[k], s0[k], bits);
  }
  if (j + 8 < n) {
    const __m512d x = load8_avx512(v, j + 8, n);
#pragma GCC unroll 8
    for (int k = 0; k < K; ++k) dot_step_avx512<kTally>(load8_avx512(r[k], j + 8, n), x, c1[k], s1[k], bits);
  }
  if constexpr (kTally) {
    for (int k = 0; k < K; ++k) tally->add_sum(_mm512_reduce_add_pd(_mm512_add_pd(s0[k], s1[k])));
    tally->bits |= static_cast<std::uint64_t>(_mm512_reduce_or_epi64(bits));
  }
  __m512d a[8];
#pragma GCC unroll 8
  for (int k = 0; k < 8; ++k) a[k] = k < K ? _mm512_add_pd(c0[k], c1[k]) : _mm512_setzero_pd();
  // lanes (0+1), (2+3), (4+5), (6+7) of row pairs (0,1), (2,3), (4,5), (6,7), interleaved
  __m512d p[4];
#pragma GCC unroll 4
  for (int k = 0; k < 4; ++k)
    p[k] = _mm512_add_pd(_mm512_unpacklo_pd(a[2 * k], a[2 * k + 1]), _mm512_unpackhi_pd(a[2 * k], a[2 * k + 1]));
  // ((0+1) + (2+3)) and ((4+5) + (6+7)): rows 0,1 | 2,3 | 0,1 | 2,3 (and 4..7 likewise)
  const __m512d w0 = _mm512_add_pd(_mm512_shuffle_f64x2(p[0], p[1], 0x88), _mm512_shuffle_f64x2(p[0], p[1], 0xDD));
  const __m512d w1 = _mm512_add_pd(_mm512_shuffle_f64x2(p[2], p[3], 0x88), _mm512_shuffle_f64x2(p[2], p[3], 0xDD));
  // + the other half: rows 0..7 in order
  const __m512d z = _mm512_add_pd(_mm512_shuffle_f64x2(w0, w1, 0x88), _mm512_shuffle_f64x2(w0, w1, 0xDD));
  alignas(64) double t[8];
  _mm512_store_pd(t, z);
  for (int k = 0; k < K; ++k) out[k] = t[k];
}

// K rows (K = 1 or 4) against v: out[k] = r[k] . v.
// A tallied row's end: its vector part summed to `sum`, plus the scalar tail [j, n) (sum and
// bit patterns), into the tally.
template <class T>
inline void tally_row(const T* row, index_t j, index_t n, double sum, RowTally& tally) {
  using U = std::conditional_t<sizeof(T) == 8, std::uint64_t, std::uint32_t>;
  for (; j < n; ++j) {
    U u;
    std::memcpy(&u, row + j, sizeof u);
    tally.bits |= u;
    sum += static_cast<double>(row[j]);
  }
  tally.add_sum(sum);
}

// The sum of a tallied row's 4-lane partial sums.
PGM_MDP_AVX2 inline double tally_hsum_avx2(__m256d s) {
  alignas(32) double t[4];
  _mm256_store_pd(t, s);
  return (t[0] + t[1]) + (t[2] + t[3]);
}

// K rows (K = 1 or 4) against v: out[k] = r[k] . v. kTally: as dotk_avx512's (each row's sum
// in one chain of pair sums: the registers hold no more).
template <int K, bool kTally = false>
PGM_MDP_AVX2 inline void dotk_avx2(const double* const* r, const double* v, index_t n, double* out,
                                   RowTally* tally = nullptr) {
  __m256d a0[K], a1[K], s[K];
  __m256i bits = _mm256_setzero_si256();
#pragma GCC unroll 4
  for (int k = 0; k < K; ++k) a0[k] = a1[k] = s[k] = _mm256_setzero_pd();
  index_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256d v0 = _mm256_loadu_pd(v + j), v1 = _mm256_loadu_pd(v + j + 4);
#pragma GCC unroll 4
    for (int k = 0; k < K; ++k) {
      __m256d p0 = _mm256_loadu_pd(r[k] + j), p1 = _mm256_loadu_pd(r[k] + j + 4);
      if constexpr (kTally) __asm__("" : "+x"(p0), "+x"(p1));  // one load each (see dot_step_avx512)
      a0[k] = _mm256_fmadd_pd(p0, v0, a0[k]);
      a1[k] = _mm256_fmadd_pd(p1, v1, a1[k]);
      if constexpr (kTally) {
        s[k] = _mm256_add_pd(s[k], _mm256_add_pd(p0, p1));
        bits = _mm256_or_si256(bits, _mm256_castpd_si256(_mm256_or_pd(p0, p1)));
      }
    }
  }
  for (int k = 0; k < K; ++k) {
    alignas(32) double t[4];
    _mm256_store_pd(t, _mm256_add_pd(a0[k], a1[k]));
    double acc = (t[0] + t[1]) + (t[2] + t[3]);
    for (index_t i = j; i < n; ++i) acc += r[k][i] * v[i];
    out[k] = acc;
    if constexpr (kTally) tally_row(r[k], j, n, tally_hsum_avx2(s[k]), *tally);
  }
  if constexpr (kTally) {
    alignas(32) std::uint64_t u[4];
    _mm256_store_si256(reinterpret_cast<__m256i*>(u), bits);
    tally->bits |= (u[0] | u[1]) | (u[2] | u[3]);
  }
}

// float32 rows in dot_generic's order, K rows (1 or 4) per pass over v: lane k of a row's
// 8-lane float64 accumulator is dot_generic's c[k] (AVX2: two 4-lane halves), the tail goes
// into c[0] in order, then the same tree. A product of two floats is exact in float64, so the
// FMA rounds as dot_generic's multiply-then-add does: the results are dot_generic's, bitwise,
// on every instruction set.
template <int K, bool kTally = false>
PGM_MDP_AVX512 inline void dotk_f32_avx512(const float* const* r, const float* v, index_t n, double* out,
                                           RowTally* tally = nullptr) {
  __m512d c[K], s[K];  // s: with kTally, each row's sum (any order: see RowTally)
  __m256i bits = _mm256_setzero_si256();
#pragma GCC unroll 4
  for (int k = 0; k < K; ++k) c[k] = s[k] = _mm512_setzero_pd();
  index_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m512d x = _mm512_cvtps_pd(_mm256_loadu_ps(v + j));
#pragma GCC unroll 4
    for (int k = 0; k < K; ++k) {
      __m256 p = _mm256_loadu_ps(r[k] + j);
      if constexpr (kTally) __asm__("" : "+v"(p));  // one load for all three uses (see dot_step_avx512)
      const __m512d pd = _mm512_cvtps_pd(p);
      c[k] = _mm512_fmadd_pd(pd, x, c[k]);
      if constexpr (kTally) {
        s[k] = _mm512_add_pd(s[k], pd);
        bits = _mm256_or_si256(bits, _mm256_castps_si256(p));
      }
    }
  }
  for (int k = 0; k < K; ++k) {
    alignas(64) double t[8];
    _mm512_store_pd(t, c[k]);
    out[k] = generic_tail_tree(t, r[k], v, j, n);
    if constexpr (kTally) tally_row(r[k], j, n, _mm512_reduce_add_pd(s[k]), *tally);
  }
  if constexpr (kTally) {
    alignas(32) std::uint32_t u[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(u), bits);
    for (int l = 0; l < 8; ++l) tally->bits |= u[l];
  }
}

template <int K, bool kTally = false>
PGM_MDP_AVX2 inline void dotk_f32_avx2(const float* const* r, const float* v, index_t n, double* out,
                                       RowTally* tally = nullptr) {
  __m256d lo[K], hi[K], s[K];  // lanes 0-3 and 4-7 of dot_generic's c; s: kTally's sums
  __m128i bits = _mm_setzero_si128();
#pragma GCC unroll 4
  for (int k = 0; k < K; ++k) lo[k] = hi[k] = s[k] = _mm256_setzero_pd();
  index_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256d x0 = _mm256_cvtps_pd(_mm_loadu_ps(v + j)), x1 = _mm256_cvtps_pd(_mm_loadu_ps(v + j + 4));
#pragma GCC unroll 4
    for (int k = 0; k < K; ++k) {
      __m128 p0 = _mm_loadu_ps(r[k] + j), p1 = _mm_loadu_ps(r[k] + j + 4);
      if constexpr (kTally) __asm__("" : "+x"(p0), "+x"(p1));  // one load each (see dot_step_avx512)
      const __m256d d0 = _mm256_cvtps_pd(p0), d1 = _mm256_cvtps_pd(p1);
      lo[k] = _mm256_fmadd_pd(d0, x0, lo[k]);
      hi[k] = _mm256_fmadd_pd(d1, x1, hi[k]);
      if constexpr (kTally) {
        s[k] = _mm256_add_pd(s[k], _mm256_add_pd(d0, d1));
        bits = _mm_or_si128(bits, _mm_castps_si128(_mm_or_ps(p0, p1)));
      }
    }
  }
  for (int k = 0; k < K; ++k) {
    alignas(32) double t[8];
    _mm256_store_pd(t, lo[k]);
    _mm256_store_pd(t + 4, hi[k]);
    out[k] = generic_tail_tree(t, r[k], v, j, n);
    if constexpr (kTally) tally_row(r[k], j, n, tally_hsum_avx2(s[k]), *tally);
  }
  if constexpr (kTally) {
    alignas(16) std::uint32_t u[4];
    _mm_store_si128(reinterpret_cast<__m128i*>(u), bits);
    tally->bits |= (u[0] | u[1]) | (u[2] | u[3]);
  }
}
#endif

template <class T>
PGM_HD acc_t<T> dot_dense(const T* row, const T* v, index_t n) {
#if defined(PGM_MDP_X86_DISPATCH)
  if constexpr (std::is_same<T, double>::value) {
    double d;
    const int isa = cpu::isa();
    if (isa == cpu::ISA_AVX512) return dotk_avx512<1>(&row, v, n, &d), d;
    if (isa == cpu::ISA_AVX2) return dotk_avx2<1>(&row, v, n, &d), d;
  } else if constexpr (std::is_same<T, float>::value) {
    double d;
    const int isa = cpu::isa();
    if (isa == cpu::ISA_AVX512) return dotk_f32_avx512<1>(&row, v, n, &d), d;
    if (isa == cpu::ISA_AVX2) return dotk_f32_avx2<1>(&row, v, n, &d), d;
  }
#endif
  return dot_generic(row, v, n);
}

// out[k] = r[k] . v (rows of length n) for k < cnt <= 8: the dot_dense of each row, four or
// eight rows (float32: four) per pass over v where the CPU allows.
template <class T>
PGM_HD void dot_ptrs(const T* const* r, int cnt, const T* v, index_t n, acc_t<T>* out) {
  int k = 0;
#if defined(PGM_MDP_X86_DISPATCH)
  if constexpr (std::is_same<T, double>::value) {
    const int isa = cpu::isa();
    if (isa == cpu::ISA_AVX512) {
      if (cnt == 8) return dotk_avx512<8>(r, v, n, out);
      if (cnt >= 4) dotk_avx512<4>(r, v, n, out), k = 4;
    } else if (isa == cpu::ISA_AVX2) {
      for (; k + 4 <= cnt; k += 4) dotk_avx2<4>(r + k, v, n, out + k);
    }
  } else if constexpr (std::is_same<T, float>::value) {
    const int isa = cpu::isa();
    if (isa == cpu::ISA_AVX512)
      for (; k + 4 <= cnt; k += 4) dotk_f32_avx512<4>(r + k, v, n, out + k);
    else if (isa == cpu::ISA_AVX2)
      for (; k + 4 <= cnt; k += 4) dotk_f32_avx2<4>(r + k, v, n, out + k);
  }
#endif
  for (; k < cnt; ++k) out[k] = dot_dense(r[k], v, n);
}

// ------------------------------------------------------------------ transition models
// Dense: row (b, s, a) is P + ((b*S + s)*A + a)*S.
template <class T>
struct Dense {
  static constexpr bool kPackable = true;  // rows can be copied into a packed matrix
  const T* P;
  index_t S, A;
  PGM_HD const T* row(index_t b, index_t s, index_t a) const { return P + ((b * S + s) * A + a) * S; }
  PGM_HD acc_t<T> dot(index_t b, index_t s, index_t a, const T* v) const { return dot_dense(row(b, s, a), v, S); }
  // out[k] = (row rows[k] of MDP b, i.e. state rows[k] / A, action rows[k] % A) . v for k < n.
  PGM_HD void dot_rows(index_t b, const index_t* rows, index_t n, const T* v, acc_t<T>* out) const {
    const T* Pb = P + b * S * A * S;
    for (index_t k0 = 0; k0 < n; k0 += 8) {
      const T* r[8];
      const int cnt = n - k0 < 8 ? static_cast<int>(n - k0) : 8;
      for (int i = 0; i < cnt; ++i) r[i] = Pb + rows[k0 + i] * S;
      dot_ptrs(r, cnt, v, S, out + k0);
    }
  }
  // Sum and minimum of row (b, s, a), for the input check fused into a sweep.
  PGM_HD void row_sum_min(index_t b, index_t s, index_t a, double& sum, double& mn) const {
    const T* row = P + ((b * S + s) * A + a) * S;
    double c[4] = {0, 0, 0, 0};
    T m4[4] = {row[0], row[0], row[0], row[0]};
    index_t j = 0;
    for (; j + 4 <= S; j += 4)
      for (int k = 0; k < 4; ++k) {
        c[k] += static_cast<double>(row[j + k]);
        m4[k] = row[j + k] < m4[k] ? row[j + k] : m4[k];
      }
    for (; j < S; ++j) {
      c[0] += static_cast<double>(row[j]);
      m4[0] = row[j] < m4[0] ? row[j] : m4[0];
    }
    sum = (c[0] + c[1]) + (c[2] + c[3]);
    T mm = m4[0];
    for (int k = 1; k < 4; ++k) mm = m4[k] < mm ? m4[k] : mm;
    mn = static_cast<double>(mm);
  }
};

// CSR over all MDPs of the batch (see the header comment).
template <class T>
struct Csr {
  static constexpr bool kPackable = false;
  const T* data;
  const std::int32_t* indices;
  const std::int64_t* indptr;
  index_t S, A;
  PGM_HD acc_t<T> dot_row(index_t r, const T* v) const {  // r: global row (b*S + s)*A + a
    acc_t<T> acc = 0;
    for (std::int64_t k = indptr[r]; k < indptr[r + 1]; ++k) acc += static_cast<acc_t<T>>(data[k]) * v[indices[k]];
    return acc;
  }
  PGM_HD acc_t<T> dot(index_t b, index_t s, index_t a, const T* v) const { return dot_row((b * S + s) * A + a, v); }
  PGM_HD void dot_rows(index_t b, const index_t* rows, index_t n, const T* v, acc_t<T>* out) const {
    for (index_t k = 0; k < n; ++k) out[k] = dot_row(b * S * A + rows[k], v);
  }
  PGM_HD void row_sum_min(index_t b, index_t s, index_t a, double& sum, double& mn) const {
    const index_t r = (b * S + s) * A + a;
    sum = 0;
    mn = std::numeric_limits<double>::infinity();
    for (std::int64_t k = indptr[r]; k < indptr[r + 1]; ++k) {
      const double x = static_cast<double>(data[k]);
      sum += x;
      mn = x < mn ? x : mn;
    }
  }
};

// ------------------------------------------------------------------ per-state math
// q = r + gamma * sum_s' P(s'|s, a) v(s'), the sum accumulated in acc_t<T>.
template <class T, class M>
PGM_HD T q_value(const M& m, index_t b, index_t s, index_t a, T r, const T* v, T gamma) {
  return static_cast<T>(r + gamma * m.dot(b, s, a, v));
}

// Backup of one state for every action: writes Q[a] and the greedy action (lowest index
// among ties) and returns the backed-up value for `kind` (see Kind). r_s = R + (b*S+s)*A,
// v = V + b*S; pi_det is pi(s) (kPolicy), pi_s = pi(.|s) (kStochastic), tau (kSoft).
template <class T, class M>
PGM_HD T backup_state(const M& m, index_t b, index_t s, const T* r_s, const T* v, T gamma, int kind,
                      std::int64_t pi_det, const T* pi_s, T tau, T* q_s, std::int64_t* best) {
  T qmax = neg_inf<T>();
  std::int64_t arg = 0;
  acc_t<T> expect = 0;
  for (index_t a0 = 0; a0 < m.A; a0 += 4) {  // four actions per call (dense: per pass over v)
    const int na = m.A - a0 < 4 ? static_cast<int>(m.A - a0) : 4;
    const index_t rows[4] = {s * m.A + a0, s * m.A + a0 + 1, s * m.A + a0 + 2, s * m.A + a0 + 3};
    acc_t<T> d[4];
    m.dot_rows(b, rows, na, v, d);
    for (int k = 0; k < na; ++k) {
      const index_t a = a0 + k;
      const T q = static_cast<T>(r_s[a] + gamma * d[k]);
      q_s[a] = q;
      if (q > qmax) {
        qmax = q;
        arg = a;
      }
      if (kind == kStochastic) expect += static_cast<acc_t<T>>(pi_s[a]) * q;
    }
  }
  *best = arg;
  if (kind == kPolicy) return q_s[pi_det];
  if (kind == kStochastic) return static_cast<T>(expect);
  if (kind == kSoft) {
    acc_t<T> z = 0;
    for (index_t a = 0; a < m.A; ++a) z += std::exp(static_cast<acc_t<T>>((q_s[a] - qmax) / tau));
    return static_cast<T>(qmax + tau * std::log(z));
  }
  return qmax;
}

// Value of one state under a fixed policy, reading only the rows the policy uses:
// deterministic (pi_s == nullptr) r(s, pi) + gamma P(.|s, pi) v, or stochastic
// sum_a pi(a|s) (r + gamma P v) skipping actions of probability zero.
template <class T, class M>
PGM_HD T policy_value_state(const M& m, index_t b, index_t s, const T* r_s, const T* v, T gamma, std::int64_t pi_det,
                            const T* pi_s) {
  if (pi_s == nullptr) return q_value(m, b, s, pi_det, r_s[pi_det], v, gamma);
  acc_t<T> acc = 0;
  for (index_t a = 0; a < m.A; ++a)
    if (pi_s[a] != T(0)) acc += static_cast<acc_t<T>>(pi_s[a]) * q_value(m, b, s, a, r_s[a], v, gamma);
  return static_cast<T>(acc);
}

// ------------------------------------------------------------------ CPU: one sweep
// The folds of a sweep over states: min/max and counts, exact in any order and split.
struct StateFold {
  double lo = std::numeric_limits<double>::infinity(), hi = -std::numeric_limits<double>::infinity();
  double err = 0, mn = std::numeric_limits<double>::infinity();
  std::int64_t bad = 0;
  void add(const StateFold& o) {
    lo = std::min(lo, o.lo), hi = std::max(hi, o.hi), err = std::max(err, o.err), mn = std::min(mn, o.mn);
    bad += o.bad;
  }
};

// body(begin, end, fold) over [0, n): in chunks of at least `chunk` items over threads when
// `par` (parallel_fold), else as one chunk on this thread.
template <class F>
StateFold fold_chunks(index_t n, index_t chunk, bool par, F&& body) {
  return parallel_fold<StateFold>(n, std::max<index_t>(chunk, share_chunk(n)), par, body);
}

// Multiply-adds of one sweep of one MDP (the work-size measure of the sweep's threshold).
template <class T>
index_t sweep_madds(const Dense<T>& m) {
  return m.S * m.S * m.A;
}
template <class T>
index_t sweep_madds(const Csr<T>& m) {
  return m.indptr[m.S * m.A] - m.indptr[0];
}
// Below this many multiply-adds a sweep stays on the calling thread: a fork/join costs more
// than it saves, and far more next to other thread pools or a busy core (measured with
// bench W8-mdp rows: 1 and 2 threads tie up to 64K, 2 threads gain from 256K).
constexpr index_t BACKUP_PAR_MIN = index_t(1) << 17;

// f(b, s, fold) for every state s < S of every MDP b < B, folding into a StateFold: over
// threads when `par` (chunks of at least 16 states), else on this thread.
template <class F>
StateFold fold_states(index_t B, index_t S, bool par, F&& f) {
  return fold_chunks(B * S, 16, par, [&](index_t i0, index_t i1, StateFold& acc) {
    for (index_t i = i0, b = i0 / S, s = i0 % S; i < i1; ++i) {
      f(b, s, acc);
      if (++s == S) s = 0, ++b;
    }
  });
}

// One backup sweep over B MDPs, over threads by (b, s) when large enough. pi_det: (B, S)
// int64 or nullptr; pi_stoch: (B, S, A) or nullptr; tau: (B,) or nullptr.
template <class T, class M>
void backup_sweep_cpu(const M& m, const T* R, const T* V, const T* gamma, index_t B, int kind,
                      const std::int64_t* pi_det, const T* pi_stoch, const T* tau, T* Q, T* V_out,
                      std::int64_t* policy) {
  const index_t S = m.S, A = m.A;
  auto one = [&](index_t b, index_t s) {
    const index_t bs = b * S + s;
    V_out[bs] = backup_state(m, b, s, R + bs * A, V + b * S, gamma[b], kind, pi_det ? pi_det[bs] : 0,
                             pi_stoch ? pi_stoch + bs * A : nullptr, tau ? tau[b] : T(1), Q + bs * A, policy + bs);
  };
  fold_states(B, S, B * sweep_madds(m) >= BACKUP_PAR_MIN, [&](index_t b, index_t s, StateFold&) { one(b, s); });
}

// ------------------------------------------------------------------ CPU: solver loops
// Settings of modified policy iteration (value iteration and policy iteration are its ends).
struct SolveOptions {
  std::int64_t max_iter = 1000;  // full (improvement) sweeps per MDP
  bool span = true;              // stop on span(T v - v) (true) or on ||T v - v||_inf
  std::int64_t eval_max = 0;     // evaluation sweeps per improvement: 0 = value iteration
  double eval_rel = -1;          // < 0: exactly eval_max sweeps; >= 0: adaptive (see solve_one)
  double row_tol = -1;           // >= 0: check P's rows during the first sweep that reads P
  double elim_tau = -1;          // >= 0: action elimination (ImproveWork), rows summing to 1
                                 // within elim_tau (the input contract); < 0: full sweeps
};

// Columns of the solvers' per-MDP input-check record, check_stats (B, kCheckCols): whether the
// fused check ran, then SolveStats::check in order. Exported by _cpu_mdp as CHECK_STATS.
enum CheckStat : int {
  kCheckDone = 0,
  kCheckRowSumErr = 1,
  kCheckMinEntry = 2,
  kCheckNonfiniteRows = 3,
  kCheckCols = 4
};

// Per-MDP results.
struct SolveStats {
  std::int64_t iterations = 0, eval_sweeps = 0;
  double residual = 0;
  bool converged = false;
  bool checked = false;         // the fused input check ran (see row_tol)
  double check[3] = {0, 0, 0};  // max |row sum - 1|, min entry, #rows with NaN/inf
};

// min and max of (u - v) over a sweep, exact under any thread split.
struct Range {
  double lo = std::numeric_limits<double>::infinity(), hi = -std::numeric_limits<double>::infinity();
  double span() const { return hi - lo; }
  double sup() const { return std::max(std::fabs(lo), std::fabs(hi)); }
  double mid() const { return 0.5 * (lo + hi); }
};

// Split one MDP's sweep over threads only when a sweep is long enough (about 2M multiply-adds)
// to pay for a fork/join; smaller MDPs run each sweep on one thread.
template <class M>
bool parallel_states(const M& m);
template <class T>
bool parallel_states(const Dense<T>& m) {
  return m.S * m.S * m.A >= (index_t(1) << 21);
}
template <class T>
bool parallel_states(const Csr<T>& m) {
  return (m.indptr[m.S * m.A] - m.indptr[0]) >= (index_t(1) << 20);  // nnz of the first MDP
}

// ------------------------------------------------------------------ improvement sweeps
// Action elimination. Value iteration reads every row of P in every sweep, yet after a few
// sweeps the greedy action of most states provably stays ahead. Between two improvement
// sweeps with inputs v_old and v, for rows that are probability vectors (sum within tau of 1,
// no negative entry: the input contract, checked unless check=False),
//   Q(s, a) - Q_old(s, a) = gamma P(.|s, a) (v - v_old) <= gamma (h + tau |h|),  h = max(v - v_old),
// so adding that drift at every sweep to the best competitor's last computed value keeps an
// upper bound G(s) >= max over a != pi(s) of Q(s, a) (stored rounded up). Each sweep computes
// every state's greedy action c = pi(s) first; when G(s) + margin < Q(s, c) no other action
// can reach the maximum and the state's other rows are not read; otherwise all its actions are
// computed. The margin covers the rounding of a computed Q (the bound's origin and the value
// it is compared with), so the maximum, the greedy action (lowest index among ties) and V are
// the very floats of a full sweep; the Q entries a sweep skipped are computed after the last
// sweep. This is MacQueen's (1967) suboptimality test (Puterman 1994, section 6.7.2) applied
// to the iterates, one bound per state.

// Buffers of one MDP's improvement sweeps (reused across sweeps) and the elimination state.
template <class T>
struct ImproveWork {
  std::vector<acc_t<T>> dots;         // phased sweeps: P v of the rows computed (by row s * A + a)
  std::vector<index_t> rows;          // phased sweeps: the rows to compute
  std::vector<T> v_old;               // input of the previous improvement sweep
  std::vector<T> gap;                 // G(s): bound on the best non-greedy Q(s, a)
  std::vector<std::uint8_t> skipped;  // the latest sweep read only pi(s)'s row of state s
  std::vector<T> p_pi;                // dense, small MDPs: row s = P(.|s, packed[s]), contiguous
  std::vector<index_t> packed;        // (the greedy rows of P are 2 KB apart for S = 64, A = 4
                                      // and alias in L1; packed, they stay in cache)
  double tau = -1;                    // < 0: no elimination; else the row-sum tolerance
  double r_max = 0, v_max = 0;        // max |R| of the MDP, max |v| of all sweep inputs so far
  bool ready = false;                 // Q, pi and gap hold a previous sweep's
  // `phased`: the sweeps run in phases in one thread (see improve_sweep); the state-by-state
  // form keeps per-thread buffers of A values instead of these S * A ones.
  ImproveWork(index_t S, index_t A, const T* r, double elim_tau, bool phased)
      : dots(phased ? S * A : 0), rows(phased ? S * A : 0), skipped(S, 0), tau(A > 1 ? elim_tau : -1) {
    if (tau < 0) return;
    v_old.resize(S);
    gap.resize(S);
    for (index_t i = 0; i < S * A; ++i) r_max = std::max(r_max, std::fabs(static_cast<double>(r[i])));
  }
  void enable_packing(index_t S) {
    if (tau < 0) return;
    p_pi.resize(S * S);
    packed.assign(S, -1);
  }
};

// A T not below x: x rounded to T, plus at least one unit in the last place.
template <class T>
inline T round_up(double x) {
  const T y = static_cast<T>(x);
  return y + (std::fabs(y) * std::numeric_limits<T>::epsilon() + std::numeric_limits<T>::denorm_min());
}

// f(i) for i in [0, n): over threads when `par`, else in this thread.
template <class F>
void for_each_index(bool par, index_t n, F&& f) {
  parallel_for(n, std::max<index_t>(4, share_chunk(n)), par, f);
}

// dots[rows[i]] = row . v for i < n (one thread: the phased sweeps of small MDPs).
template <class T, class M>
void dot_list(const M& m, index_t b, const index_t* rows, index_t n, const T* v, acc_t<T>* dots) {
  for (index_t i0 = 0; i0 < n; i0 += 16) {
    const index_t cnt = std::min<index_t>(16, n - i0);
    acc_t<T> d[16];
    m.dot_rows(b, rows + i0, cnt, v, d);
    for (index_t k = 0; k < cnt; ++k) dots[rows[i0 + k]] = d[k];
  }
}

// f(a, row (s, a) . v) for every action a of state s but `except` (-1: none), 16 rows per call.
template <class M, class T, class F>
void dot_state_rows(const M& m, index_t b, index_t s, index_t except, const T* v, F&& f) {
  const index_t A = m.A;
  for (index_t a0 = 0; a0 < A; a0 += 16) {
    index_t rows[16], n = 0;
    acc_t<T> d[16];
    for (index_t a = a0; a < std::min(A, a0 + 16); ++a)
      if (a != except) rows[n++] = s * A + a;
    m.dot_rows(b, rows, n, v, d);
    for (index_t k = 0; k < n; ++k) f(rows[k] - s * A, d[k]);
  }
}

// Input check of the rows of state s of MDP b, folded into {max |sum - 1|, min entry, #rows
// with NaN/inf}.
template <class M>
void check_state_rows(const M& m, index_t b, index_t s, double& err, double& mn, std::int64_t& bad) {
  for (index_t a = 0; a < m.A; ++a) {
    double sum, rmn;
    m.row_sum_min(b, s, a, sum, rmn);
    if (!std::isfinite(sum)) {
      ++bad;
    } else {
      err = std::max(err, std::fabs(sum - 1.0));
      mn = std::min(mn, rmn);
    }
  }
}

// The check of all of MDP b's rows into chk[0..3).
template <class M>
void check_rows(const M& m, index_t b, bool par, double* chk) {
  const StateFold f = fold_chunks(m.S, 16, par, [&](index_t s0, index_t s1, StateFold& acc) {
    for (index_t s = s0; s < s1; ++s) check_state_rows(m, b, s, acc.err, acc.mn, acc.bad);
  });
  chk[0] = f.err;
  chk[1] = f.mn;
  chk[2] = static_cast<double>(f.bad);
}

// Q(s, .) from the dots of its rows (ds[a]), the greedy action (lowest index among the maxima)
// and, when kept, G(s) = the best non-greedy value; returns max_a Q(s, a).
template <class T>
inline T finish_state(index_t s, index_t A, const T* __restrict r, const acc_t<T>* __restrict ds, T gamma,
                      bool keep_gap, T* __restrict q, std::int64_t* __restrict pi, T* __restrict gap) {
  T best = neg_inf<T>(), second = neg_inf<T>();
  std::int64_t arg = 0;
  for (index_t a = 0; a < A; ++a) {
    const index_t i = s * A + a;
    const T x = static_cast<T>(r[i] + gamma * ds[a]);
    q[i] = x;
    if (x > best) {
      second = best;
      best = x;
      arg = a;
    } else {
      second = x > second ? x : second;
    }
  }
  pi[s] = arg;
  if (keep_gap) gap[s] = second;
  return best;
}

// The elimination test of state s once Q(s, c) of its greedy action c is known: true (and the
// state's bound advanced) when no other action can reach Q(s, c).
template <class T>
inline bool greedy_stays(T qc, double drift, double margin, T& gap_s) {
  const T bound = round_up<T>(static_cast<double>(gap_s) + drift);
  if (!(static_cast<double>(bound) + margin < static_cast<double>(qc))) return false;
  gap_s = bound;
  return true;
}

// u = T v (optimality), with Q and the greedy policy; returns the range of u - v.
// `zero_v`: v is identically zero, so P v = 0 exactly and P is not read.
// Elimination (see above) when w.tau >= 0 and the previous sweep's Q, pi and G are in place.
// `chk` (nullable): also the input check of every row into chk (see check_rows).
// Two forms with the same results: state by state over threads (`par`, large MDPs), or in
// phases over the whole MDP in one thread (small MDPs: the rows to read from all states go
// through the 8-row dot kernels together, and the greedy rows are read from a packed copy).
template <class T, class M>
Range improve_sweep(const M& m, index_t b, const T* r, const T* v, bool zero_v, T gamma, bool par, T* __restrict u,
                    T* __restrict q, std::int64_t* __restrict pi, ImproveWork<T>& w, double* chk = nullptr) {
  const index_t S = m.S, A = m.A;
  const double g = static_cast<double>(gamma);
  acc_t<T>* __restrict dots = w.dots.data();
  index_t* __restrict rows = w.rows.data();
  std::uint8_t* __restrict skipped = w.skipped.data();
  T* __restrict gap = w.gap.data();
  const bool keep_gap = w.tau >= 0;
  double drift = std::numeric_limits<double>::infinity(), margin = 0;
  if (keep_gap && w.ready && !zero_v && chk == nullptr) {
    const T* __restrict v_old = w.v_old.data();
    double h4[4], a4[4];  // four running maxima each (short dependency chains)
    for (int k = 0; k < 4; ++k) h4[k] = -std::numeric_limits<double>::infinity(), a4[k] = w.v_max;
    for (index_t s = 0; s < S; ++s) {
      const double x = static_cast<double>(v[s]);
      h4[s & 3] = std::max(h4[s & 3], x - static_cast<double>(v_old[s]));
      // (|v_old| too: the bounds of this sweep started from Q computed with v_old, e.g. V0)
      a4[s & 3] = std::max(a4[s & 3], std::max(std::fabs(x), std::fabs(static_cast<double>(v_old[s]))));
    }
    const double h = std::max(std::max(h4[0], h4[1]), std::max(h4[2], h4[3]));
    w.v_max = std::max(std::max(a4[0], a4[1]), std::max(a4[2], a4[3]));
    drift = g * (h + w.tau * std::fabs(h));
    // |error| of one computed Q: the dot over at most S terms in acc_t<T>, then r + g * dot
    // rounded to T; twice (the bound's origin and the compared value), with slack 2.
    const double u_acc = std::numeric_limits<acc_t<T>>::epsilon(), u_t = std::numeric_limits<T>::epsilon();
    margin = 4 * ((static_cast<double>(S) + 2) * u_acc + u_t) * (w.r_max + g * (1 + w.tau) * w.v_max);
    if (!std::isfinite(margin)) drift = std::numeric_limits<double>::infinity();
  }
  const bool eliminating = std::isfinite(drift);
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;

  if (zero_v) {
    // ---- P v = 0: Q = R, P not read
    const std::vector<acc_t<T>> zeros(A, acc_t<T>(0));
    for (index_t s = 0; s < S; ++s) {
      skipped[s] = 0;
      const T best = finish_state(s, A, r, zeros.data(), gamma, keep_gap, q, pi, gap);
      u[s] = best;
      const double d = static_cast<double>(best) - static_cast<double>(v[s]);
      lo = std::min(lo, d);
      hi = std::max(hi, d);
    }
  } else if (par) {
    // ---- state by state, over threads
    // ds: the chunk's dots of one state's rows (by action)
    auto state = [&](index_t s, acc_t<T>* ds, double& lo, double& hi, double& err, double& mn, std::int64_t& bad) {
      T best;
      skipped[s] = 0;
      if (eliminating) {
        const index_t c = s * A + pi[s];
        m.dot_rows(b, &c, 1, v, ds + pi[s]);
        const T qc = static_cast<T>(r[c] + gamma * ds[pi[s]]);
        if (greedy_stays(qc, drift, margin, gap[s])) {
          q[c] = qc;
          skipped[s] = 1;
          best = qc;
        }
      }
      if (!skipped[s]) {
        // (the greedy row's dot is in place already when eliminating)
        dot_state_rows(m, b, s, eliminating ? pi[s] : -1, v, [&](index_t a, acc_t<T> d) { ds[a] = d; });
        best = finish_state(s, A, r, ds, gamma, keep_gap, q, pi, gap);
      }
      u[s] = best;
      const double d = static_cast<double>(best) - static_cast<double>(v[s]);
      lo = std::min(lo, d);
      hi = std::max(hi, d);
      if (chk) check_state_rows(m, b, s, err, mn, bad);  // (its rows are in cache now)
    };
    const StateFold f = fold_chunks(S, 16, true, [&](index_t s0, index_t s1, StateFold& acc) {
      std::vector<acc_t<T>> ds(A);
      for (index_t s = s0; s < s1; ++s) state(s, ds.data(), acc.lo, acc.hi, acc.err, acc.mn, acc.bad);
    });
    lo = f.lo;
    hi = f.hi;
    if (chk) {
      chk[0] = f.err;
      chk[1] = f.mn;
      chk[2] = static_cast<double>(f.bad);
    }
  } else {
    // ---- in phases, one thread: 1. the dots of the rows to read
    if (eliminating) {  // the greedy rows first, then the other rows of the states that need them
      bool done = false;
      if constexpr (M::kPackable) {
        if (!w.p_pi.empty()) {
          T* __restrict pp = w.p_pi.data();
          index_t* __restrict packed = w.packed.data();
          for (index_t s = 0; s < S; ++s)
            if (packed[s] != pi[s]) {
              std::copy(m.row(b, s, pi[s]), m.row(b, s, pi[s]) + S, pp + s * S);
              packed[s] = pi[s];
            }
          for (index_t s0 = 0; s0 < S; s0 += 8) {
            const int cnt = S - s0 < 8 ? static_cast<int>(S - s0) : 8;
            const T* ptr[8];
            acc_t<T> d[8];
            for (int k = 0; k < cnt; ++k) ptr[k] = pp + (s0 + k) * S;
            dot_ptrs(ptr, cnt, v, S, d);
            for (int k = 0; k < cnt; ++k) dots[(s0 + k) * A + pi[s0 + k]] = d[k];
          }
          done = true;
        }
      }
      if (!done) {
        for (index_t s = 0; s < S; ++s) rows[s] = s * A + pi[s];
        dot_list(m, b, rows, S, v, dots);
      }
      index_t n = 0;
      for (index_t s = 0; s < S; ++s) {
        const index_t c = s * A + pi[s];
        const T qc = static_cast<T>(r[c] + gamma * dots[c]);
        if (greedy_stays(qc, drift, margin, gap[s])) {
          q[c] = qc;
          skipped[s] = 1;
        } else {
          skipped[s] = 0;
          for (index_t a = 0; a < A; ++a)
            if (s * A + a != c) rows[n++] = s * A + a;
        }
      }
      dot_list(m, b, rows, n, v, dots);
    } else {
      for (index_t i = 0; i < S * A; ++i) rows[i] = i;
      dot_list(m, b, rows, S * A, v, dots);
      for (index_t s = 0; s < S; ++s) skipped[s] = 0;
    }
    if (chk) check_rows(m, b, false, chk);  // (a small MDP: its rows are still in cache)
    // 2. Q, pi, G and u of every state
    for (index_t s = 0; s < S; ++s) {
      const T best = skipped[s] ? q[s * A + pi[s]] : finish_state(s, A, r, dots + s * A, gamma, keep_gap, q, pi, gap);
      u[s] = best;
      const double d = static_cast<double>(best) - static_cast<double>(v[s]);
      lo = std::min(lo, d);
      hi = std::max(hi, d);
    }
  }
  if (keep_gap) {
    std::copy(v, v + S, w.v_old.begin());
    w.ready = true;
  }
  return Range{lo, hi};
}

// The Q entries that the last improvement sweep (input v) skipped get their values (over
// threads when `par`: up to (A-1)/A of a full sweep's reading).
template <class T, class M>
void fill_skipped(const M& m, index_t b, const T* r, const T* v, T gamma, const std::int64_t* pi, bool par,
                  ImproveWork<T>& w, T* q) {
  const index_t A = m.A;
  for_each_index(par, m.S, [&](index_t s) {
    if (!w.skipped[s]) return;
    dot_state_rows(m, b, s, pi[s], v,
                   [&](index_t a, acc_t<T> d) { q[s * A + a] = static_cast<T>(r[s * A + a] + gamma * d); });
    w.skipped[s] = 0;
  });
}

// w = T_pi u for a deterministic (pi_s == nullptr) or stochastic policy; range of w - u.
template <class T, class M>
Range policy_sweep(const M& m, index_t b, const T* r, const T* u, T gamma, const std::int64_t* pi, const T* pi_stoch,
                   bool par, T* w) {
  const index_t S = m.S, A = m.A;
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  auto state = [&](index_t s, double& lo, double& hi) {
    const T x = policy_value_state(m, b, s, r + s * A, u, gamma, pi ? pi[s] : 0,
                                   pi_stoch ? pi_stoch + s * A : static_cast<const T*>(nullptr));
    w[s] = x;
    const double d = static_cast<double>(x) - static_cast<double>(u[s]);
    lo = std::min(lo, d);
    hi = std::max(hi, d);
  };
  if (par) {
    const StateFold f = fold_chunks(S, 16, true, [&](index_t s0, index_t s1, StateFold& acc) {
      for (index_t s = s0; s < s1; ++s) state(s, acc.lo, acc.hi);
    });
    return Range{f.lo, f.hi};
  }
  if constexpr (M::kPackable) {
    if (pi != nullptr && pi_stoch == nullptr) {  // dense, deterministic: 8 states per dot kernel
      for (index_t s0 = 0; s0 < S; s0 += 8) {
        const int cnt = S - s0 < 8 ? static_cast<int>(S - s0) : 8;
        const T* ptr[8];
        acc_t<T> d[8];
        for (int k = 0; k < cnt; ++k) ptr[k] = m.row(b, s0 + k, pi[s0 + k]);
        dot_ptrs(ptr, cnt, u, S, d);
        for (int k = 0; k < cnt; ++k) {  // = q_value of (s, pi(s)), the same floats
          const index_t s = s0 + k;
          const T x = static_cast<T>(r[s * A + pi[s]] + gamma * d[k]);
          w[s] = x;
          const double dd = static_cast<double>(x) - static_cast<double>(u[s]);
          lo = std::min(lo, dd);
          hi = std::max(hi, dd);
        }
      }
      return Range{lo, hi};
    }
  }
  for (index_t s = 0; s < S; ++s) state(s, lo, hi);
  return Range{lo, hi};
}

// Shift x[0..n) by c (the MacQueen midpoint correction).
template <class T>
void shift(T* x, index_t n, double c) {
  for (index_t i = 0; i < n; ++i) x[i] = static_cast<T>(x[i] + c);
}

// Multiply-adds of one improvement sweep of an MDP (for Stop::poll; eval sweeps read 1/A).
template <class T>
double sweep_work(const Dense<T>& m) {
  return static_cast<double>(m.S) * m.S * m.A;
}
template <class T>
double sweep_work(const Csr<T>& m) {
  return static_cast<double>(m.indptr[m.S * m.A] - m.indptr[0]) + m.S;
}

// Modified policy iteration on MDP b (r = R + b*S*A), the loop of mdp_loop.hpp. V holds the
// initial values on entry and the result on exit; Q and pi receive the last improvement sweep
// (Q shifted like V).
template <class T, class M>
SolveStats solve_one(const M& m, index_t b, const T* r, T gamma, double thresh, const SolveOptions& opt, bool par, T* V,
                     T* Q, std::int64_t* pi, Stop& stop) {
  const index_t S = m.S, A = m.A;
  std::vector<T> bufu(S), bufw(S);
  std::vector<std::int64_t> prev(S, -1);
  T *v = V, *u = bufu.data(), *w = bufw.data();
  bool zero_v = true;
  for (index_t s = 0; s < S; ++s) zero_v = zero_v && V[s] == T(0);
  // the loop's logic (stop rules, evaluation counts, MacQueen shifts) is LoopControl's
  LoopControl c =
      LoopControl::make(thresh, static_cast<double>(gamma), opt.max_iter, opt.span, opt.eval_max, opt.eval_rel);
  SolveStats st;
  ImproveWork<T> work(S, A, r, opt.elim_tau, !par);
  if constexpr (M::kPackable) {
    if (!par && S * S * static_cast<index_t>(sizeof(T)) <= (index_t(1) << 20)) work.enable_packing(S);
  }
  for (;;) {
    const bool do_check = opt.row_tol >= 0 && !st.checked && !zero_v;
    const Range rg = improve_sweep(m, b, r, v, zero_v, gamma, par, u, Q, pi, work, do_check ? st.check : nullptr);
    zero_v = false;
    if (stop.poll(sweep_work(m))) return st;  // interrupted: the caller discards the outputs
    if (do_check) {
      st.checked = true;
      if (!(st.check[0] <= opt.row_tol) || st.check[1] < 0 || st.check[2] > 0) {  // invalid P
        c.lo = rg.lo, c.hi = rg.hi, ++c.iterations;
        break;
      }
    }
    const int next = c.improved(rg.lo, rg.hi);
    if (next == kDone) break;
    if (next == kEval) {
      bool same = true;
      for (index_t s = 0; s < S && same; ++s) same = prev[s] == pi[s];
      std::copy(pi, pi + S, prev.begin());
      c.begin_eval(same);
      for (;;) {  // u <- T_pi u
        const Range er = policy_sweep(m, b, r, u, gamma, pi, static_cast<const T*>(nullptr), par, w);
        std::swap(u, w);
        if (c.evaluated(er.lo, er.hi) != kEval) break;
        if (stop.poll(sweep_work(m) / A)) return st;
      }
      if (c.eval_shifts()) shift(u, S, c.eval_shift());
    }
    // v <- u (keep V's storage as one of the two live buffers)
    std::swap(v, u);
  }
  fill_skipped(m, b, r, v, gamma, pi, par, work, Q);
  const double sh = c.final_shift();
  for (index_t s = 0; s < S; ++s) V[s] = static_cast<T>(u[s] + sh);
  if (sh != 0) shift(Q, S * A, sh);
  st.iterations = c.iterations;
  st.eval_sweeps = c.eval_sweeps;
  st.residual = c.residual;
  st.converged = c.converged;
  return st;
}

// Iterative policy evaluation on MDP b: v <- T_pi v until the span (or sup) of a step is
// below thresh; the span rule adds the midpoint correction (error <= g/(1-g) * res / 2).
// (LoopControl with eval_max = 0 and T_pi as the sweep.)
template <class T, class M>
SolveStats evaluate_one(const M& m, index_t b, const T* r, T gamma, double thresh, std::int64_t max_iter, bool span,
                        const std::int64_t* pi, const T* pi_stoch, bool par, T* V, Stop& stop) {
  const index_t S = m.S;
  std::vector<T> buf(S);
  T *x = V, *w = buf.data();
  LoopControl c = LoopControl::make(thresh, static_cast<double>(gamma), max_iter, span, 0, -1.0);
  for (;;) {
    const Range rg = policy_sweep(m, b, r, x, gamma, pi, pi_stoch, par, w);
    std::swap(x, w);
    if (stop.poll(sweep_work(m) / (pi_stoch ? 1 : m.A))) break;  // interrupted: the outputs are discarded
    if (c.improved(rg.lo, rg.hi) == kDone) break;
  }
  const double sh = c.final_shift();
  for (index_t s = 0; s < S; ++s) V[s] = static_cast<T>(x[s] + sh);
  SolveStats st;
  st.iterations = c.iterations;
  st.residual = c.residual;
  st.converged = c.converged;
  return st;
}

// Runs f(b, par) for every MDP: over MDPs in parallel when the batch can occupy the
// threads, else one MDP after the other with the states of each sweep in parallel.
// After a stop, no further MDP starts (the calling thread keeps polling the Stop while the
// other threads finish their MDPs).
template <class F>
void for_each_mdp(index_t B, bool split_states, Stop& stop, F&& f) {
  const int threads = max_threads();
  if (B >= threads && B > 1) {
    parallel_chunks(
        B, 1, true,
        [&](index_t b0, index_t b1, int) {
          for (index_t b = b0; b < b1; ++b) f(b, false);
        },
        stop);
  } else {
    for (index_t b = 0; b < B && !stop.stopped(); ++b) f(b, threads > 1 && split_states);
  }
}

template <class T, class M>
void solve_cpu(const M& m, const T* R, const T* gamma, const double* thresh, index_t B, const SolveOptions& opt, T* V,
               T* Q, std::int64_t* policy, std::int64_t* iterations, std::int64_t* eval_sweeps, double* residual,
               std::uint8_t* converged, double* check_stats, Stop& stop = Stop::never()) {
  const index_t S = m.S, A = m.A;
  for_each_mdp(B, parallel_states(m), stop, [&](index_t b, bool par) {
    const SolveStats st =
        solve_one(m, b, R + b * S * A, gamma[b], thresh[b], opt, par, V + b * S, Q + b * S * A, policy + b * S, stop);
    iterations[b] = st.iterations;
    eval_sweeps[b] = st.eval_sweeps;
    residual[b] = st.residual;
    converged[b] = st.converged;
    double* cs = check_stats + kCheckCols * b;
    cs[kCheckDone] = st.checked;
    for (int k = 0; k < 3; ++k) cs[kCheckRowSumErr + k] = st.check[k];
  });
}

template <class T, class M>
void evaluate_cpu(const M& m, const T* R, const T* gamma, const double* thresh, index_t B, std::int64_t max_iter,
                  bool span, const std::int64_t* pi, const T* pi_stoch, T* V, std::int64_t* iterations,
                  double* residual, std::uint8_t* converged, Stop& stop = Stop::never()) {
  const index_t S = m.S, A = m.A;
  for_each_mdp(B, parallel_states(m), stop, [&](index_t b, bool par) {
    const SolveStats st =
        evaluate_one(m, b, R + b * S * A, gamma[b], thresh[b], max_iter, span, pi ? pi + b * S : nullptr,
                     pi_stoch ? pi_stoch + b * S * A : nullptr, par, V + b * S, stop);
    iterations[b] = st.iterations;
    residual[b] = st.residual;
    converged[b] = st.converged;
  });
}

// ------------------------------------------------------------------ CPU: input checks
// Below this many entries a check stays on the calling thread (a streaming pass of 64K
// doubles takes about as long as a fork/join; min/max/count reductions do not depend on it).
constexpr index_t CHECK_PAR_MIN = index_t(1) << 16;

// Over rows of length S (dense): out = {max |row sum - 1|, min entry, #rows with NaN/inf}.
// A NaN or inf entry makes its row sum NaN or inf, so one vectorised pass of sums and minima
// finds every problem.
template <class T>
void row_stats_dense_cpu(const T* P, index_t rows, index_t S, double* out) {
  const Dense<T> m{P, S, 1};  // row i is "state" i of one MDP with one action
  const StateFold f = fold_chunks(rows, 16, rows * S >= CHECK_PAR_MIN, [&](index_t i0, index_t i1, StateFold& acc) {
    for (index_t i = i0; i < i1; ++i) {
      double sum, rmn;
      m.row_sum_min(0, i, 0, sum, rmn);
      if (!std::isfinite(sum)) {
        ++acc.bad;
      } else {
        acc.err = std::max(acc.err, std::fabs(sum - 1.0));
        acc.mn = std::min(acc.mn, rmn);
      }
    }
  });
  out[0] = f.bad ? std::numeric_limits<double>::quiet_NaN() : f.err;
  out[1] = f.mn;
  out[2] = static_cast<double>(f.bad);
}

// The same over CSR rows (empty rows have sum 0, so they fail the sum check).
template <class T>
void row_stats_csr_cpu(const T* data, const std::int64_t* indptr, index_t rows, double* out) {
  const StateFold f =
      fold_chunks(rows, 1, indptr[rows] - indptr[0] >= CHECK_PAR_MIN, [&](index_t i0, index_t i1, StateFold& acc) {
        for (index_t i = i0; i < i1; ++i) {
          double sum = 0;
          for (std::int64_t k = indptr[i]; k < indptr[i + 1]; ++k) {
            const double x = data[k];
            sum += x;
            acc.mn = std::min(acc.mn, x);
            acc.bad += !std::isfinite(x);
          }
          acc.err = std::max(acc.err, std::fabs(sum - 1.0));
        }
      });
  out[0] = f.bad ? std::numeric_limits<double>::quiet_NaN() : f.err;
  out[1] = f.mn;
  out[2] = static_cast<double>(f.bad);
}

}  // namespace pygenmod::mdp
