// Gaussian mixtures: batched EM. The per-point math (PGM_HD) is shared by the CPU and CUDA
// launchers; the CPU launchers below run blocked loops over chunks of points.
//
// Layout (per set b of a batch): X[b, n, d], point weights W[b, n] (0 = padding),
// mixture weights[b, k], means[b, k, d], and covariances / precision Cholesky factors
//   full:      [b, k, d, d]     tied: [b, d, d]     diag: [b, k, d]     spherical: [b, k]
// following scikit-learn: precision = P P^T with P upper triangular (P = L^{-T}, cov = L L^T);
// for diag/spherical P holds 1/sqrt(variance).
//
// Statistics are accumulated in float64 (acc_t) in a FIXED order: points are split into a
// number of groups that depends only on N, each group is summed serially, and the group
// partials are added in group order. Results therefore do not depend on the thread count or
// on whether a set is processed alone (parallel over groups) or in a batch (parallel over sets).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "pygenmod/common.hpp"
#include "pygenmod/random.hpp"

#if defined(_OPENMP) && !defined(__CUDACC__)
#include <omp.h>
#endif


namespace pygenmod::gmm {

enum CovType : int { FULL = 0, TIED = 1, DIAG = 2, SPHERICAL = 3 };

#if !defined(__CUDACC__)
// Argument check shared by the CPU and CUDA bindings.
inline int check_cov_type(int t) {
  if (t < 0 || t > 3)
    throw std::invalid_argument("cov_type: expected 0 (full), 1 (tied), 2 (diag) or 3 (spherical)");
  return t;
}
#endif

// Status flags per component (uint8).
enum Flag : std::uint8_t {
  COLLAPSED = 1,    // no responsibility left: placed at the set mean with the set covariance
  REGULARISED = 2,  // covariance not positive definite: extra diagonal jitter was added
  EMPTY_SET = 4,    // the set has no point with positive weight: neutral parameters
};

constexpr double kLog2Pi = 1.8378770664093453;
constexpr double kEps = 2.220446049250313e-16;

PGM_HD index_t cov_size(int type, index_t K, index_t D) {
  return type == FULL ? K * D * D : type == TIED ? D * D : type == DIAG ? K * D : K;
}

// Offset of component k's precision factor inside one set's block.
PGM_HD index_t pc_offset(int type, index_t k, index_t D) {
  return type == FULL ? k * D * D : type == TIED ? 0 : type == DIAG ? k * D : k;
}

// Squared Mahalanobis distance of x from mu under precision factor pc (one component).
template <class T>
PGM_HD T mahalanobis2(int type, const T* x, const T* mu, const T* pc, index_t D) {
  T s = 0;
  if (type == FULL || type == TIED) {
    for (index_t j = 0; j < D; ++j) {
      T y = 0;
      for (index_t i = 0; i <= j; ++i) y += (x[i] - mu[i]) * pc[i * D + j];
      s += y * y;
    }
  } else if (type == DIAG) {
    for (index_t d = 0; d < D; ++d) {
      const T y = (x[d] - mu[d]) * pc[d];
      s += y * y;
    }
  } else {
    for (index_t d = 0; d < D; ++d) {
      const T y = x[d] - mu[d];
      s += y * y;
    }
    s *= pc[0] * pc[0];
  }
  return s;
}

// log det of the precision factor: sum of log of its diagonal.
template <class T>
PGM_HD double log_det_pc(int type, const T* pc, index_t D) {
  double s = 0;
  if (type == FULL || type == TIED) {
    for (index_t j = 0; j < D; ++j) s += std::log(static_cast<double>(pc[j * D + j]));
  } else if (type == DIAG) {
    for (index_t d = 0; d < D; ++d) s += std::log(static_cast<double>(pc[d]));
  } else {
    s = D * std::log(static_cast<double>(pc[0]));
  }
  return s;
}

// Log-sum-exp of lp[0..K) (stable); a row that is all -inf gives -inf.
PGM_HD double logsumexp(const double* lp, index_t K) {
  double m = -INFINITY;
  for (index_t k = 0; k < K; ++k) m = lp[k] > m ? lp[k] : m;
  if (!(m > -INFINITY)) return m;
  double s = 0;
  for (index_t k = 0; k < K; ++k) s += std::exp(lp[k] - m);
  return m + std::log(s);
}

// Dense Cholesky (lower, row-major, in place on a full DxD buffer). false if not PD.
PGM_HD bool cholesky(double* a, index_t D) {
  for (index_t j = 0; j < D; ++j) {
    double s = a[j * D + j];
    for (index_t p = 0; p < j; ++p) s -= a[j * D + p] * a[j * D + p];
    if (!(s > 0) || !std::isfinite(s)) return false;
    const double l = std::sqrt(s);
    a[j * D + j] = l;
    for (index_t i = j + 1; i < D; ++i) {
      double t = a[i * D + j];
      for (index_t p = 0; p < j; ++p) t -= a[i * D + p] * a[j * D + p];
      a[i * D + j] = t / l;
    }
    for (index_t i = 0; i < j; ++i) a[i * D + j] = 0;
  }
  return true;
}

// From the lower Cholesky factor L of a covariance, the upper precision factor P = L^{-T}
// (row c of P is column c of L^{-1}), by forward substitution in float64.
PGM_HD void precision_factor_d(const double* L, index_t D, double* Pd) {
  for (index_t c = 0; c < D; ++c)
    for (index_t r = 0; r < D; ++r) {
      if (r < c) { Pd[c * D + r] = 0; continue; }
      double s = (r == c) ? 1.0 : 0.0;
      for (index_t p = c; p < r; ++p) s -= L[r * D + p] * Pd[c * D + p];
      Pd[c * D + r] = s / L[r * D + r];
    }
}

// Standard normal pair from one Philox block (Box-Muller on two float64 uniforms).
PGM_HD void normal_pair(const rng::u32x4& w, double* z0, double* z1) {
  const double u1 = rng::uniform_f64(w.v[0], w.v[1]);
  const double u2 = rng::uniform_f64(w.v[2], w.v[3]);
  const double r = std::sqrt(-2.0 * std::log(u1));
  const double t = 6.283185307179586 * u2;
  *z0 = r * std::cos(t);
  *z1 = r * std::sin(t);
}

// Sampling convention: draw n of set b uses stream (stream0 + b) and blocks
// [n * M, (n + 1) * M) with M = 1 + ceil(D / 2): block n*M gives the component uniform
// (first two words), the following blocks the D normals (two per block).
PGM_HD index_t sample_blocks(index_t D) { return 1 + (D + 1) / 2; }

template <class T>
PGM_HD void sample_one(int type, const T* weights, const T* means, const T* pc, index_t K,
                       index_t D, std::uint64_t seed, std::uint64_t stream, index_t n, T* x,
                       std::int64_t* label) {
  const index_t M = sample_blocks(D);
  const std::uint64_t b0 = static_cast<std::uint64_t>(n) * M;
  const rng::u32x4 w0 = rng::block(seed, stream, b0);
  const double u = rng::uniform_f64(w0.v[0], w0.v[1]);
  double total = 0;
  for (index_t k = 0; k < K; ++k) total += static_cast<double>(weights[k]);
  double acc = 0;
  index_t comp = K - 1;
  for (index_t k = 0; k < K; ++k) {
    acc += static_cast<double>(weights[k]);
    if (u * total < acc) { comp = k; break; }
  }
  while (comp > 0 && !(weights[comp] > 0)) --comp;  // never pick a zero-weight component
  *label = comp;
  const T* mu = means + comp * D;
  const T* P = pc + pc_offset(type, comp, D);
  // z into x (as double then cast), then x = mu + P^{-T} z (forward substitution on P^T).
  for (index_t j = 0; j < D; j += 2) {
    double z0, z1;
    normal_pair(rng::block(seed, stream, b0 + 1 + j / 2), &z0, &z1);
    x[j] = static_cast<T>(z0);
    if (j + 1 < D) x[j + 1] = static_cast<T>(z1);
  }
  if (type == FULL || type == TIED) {
    // P^T is lower: (P^T)[i][p] = P[p][i]. Solve P^T v = z in place.
    for (index_t i = 0; i < D; ++i) {
      double s = static_cast<double>(x[i]);
      for (index_t p = 0; p < i; ++p) s -= static_cast<double>(P[p * D + i]) * static_cast<double>(x[p]);
      x[i] = static_cast<T>(s / static_cast<double>(P[i * D + i]));
    }
    for (index_t i = 0; i < D; ++i) x[i] += mu[i];
  } else if (type == DIAG) {
    for (index_t d = 0; d < D; ++d) x[d] = static_cast<T>(mu[d] + static_cast<double>(x[d]) / P[d]);
  } else {
    for (index_t d = 0; d < D; ++d) x[d] = static_cast<T>(mu[d] + static_cast<double>(x[d]) / P[0]);
  }
}

PGM_HD index_t s2_size(int type, index_t K, index_t D) {
  return type == FULL ? K * D * D : type == TIED ? D * D : K * D;
}
// Statistics block of one set: [Nraw K][S1 K*D][S2 s2_size][ll 1]
PGM_HD index_t stats_size(int type, index_t K, index_t D) {
  return K + K * D + s2_size(type, K, D) + 1;
}


// Cholesky of the symmetric matrix C (full storage) into L; on failure, diagonal jitter
// growing tenfold from 1e-10 * scale is added to C until it factors (flag REGULARISED).
PGM_HD bool cholesky_jitter(double* C, double* L, index_t D, double scale, std::uint8_t* flag) {
  for (index_t i = 0; i < D * D; ++i) L[i] = C[i];
  if (cholesky(L, D)) return true;
  double jit = 1e-10 * scale;
  for (int t = 0; t < 20; ++t, jit *= 10) {
    for (index_t i = 0; i < D * D; ++i) L[i] = C[i];
    for (index_t d = 0; d < D; ++d) L[d * D + d] += jit;
    if (cholesky(L, D)) {
      for (index_t d = 0; d < D; ++d) C[d * D + d] += jit;
      *flag |= REGULARISED;
      return true;
    }
  }
  // Hopeless (non-finite): fall back to scale * I.
  for (index_t i = 0; i < D * D; ++i) C[i] = 0;
  for (index_t d = 0; d < D; ++d) C[d * D + d] = scale;
  for (index_t i = 0; i < D * D; ++i) L[i] = C[i];
  cholesky(L, D);
  *flag |= REGULARISED;
  return false;
}

// Data scale of a set for jitter: mean variance, or 1 when the data has none.
PGM_HD double jitter_scale(const double* var_diag, index_t D) {
  double s = 0;
  for (index_t d = 0; d < D; ++d) s += (std::isfinite(var_diag[d]) && var_diag[d] > 0) ? var_diag[d] : 0.0;
  s /= (D > 1 ? D : 1);
  return s > 0 ? s : 1.0;
}

// Neutral parameters for a set with no data: uniform weights, zero means, identity covariances.
template <class T>
PGM_HD void empty_set_params(int type, index_t K, index_t D, T* weights, T* means, T* cov, T* pc,
                      std::uint8_t* flags) {
  for (index_t k = 0; k < K; ++k) {
    weights[k] = static_cast<T>(1.0 / K);
    flags[k] = EMPTY_SET | COLLAPSED;
  }
  for (index_t i = 0; i < K * D; ++i) means[i] = 0;
  const index_t cs = cov_size(type, K, D);
  if (type == FULL || type == TIED) {
    for (index_t i = 0; i < cs; ++i) { cov[i] = 0; pc[i] = 0; }
    const index_t nm = type == FULL ? K : 1;
    for (index_t q = 0; q < nm; ++q)
      for (index_t d = 0; d < D; ++d) { cov[q * D * D + d * D + d] = 1; pc[q * D * D + d * D + d] = 1; }
  } else {
    for (index_t i = 0; i < cs; ++i) { cov[i] = 1; pc[i] = 1; }
  }
}

// M-step of one set from its statistics (scikit-learn's formulas, in float64, centred at c).
// Collapse policy: a component whose responsibility mass is <= 1e-12 of the set's weight is
// placed at the set mean with the set covariance (+ reg) and keeps its ~0 weight (flag
// COLLAPSED); a covariance that is not positive definite gets diagonal jitter (REGULARISED).
// Workspace: finalize_workspace(K, D) doubles.
PGM_HD index_t finalize_workspace(index_t K, index_t D) { return 4 * D * D + 3 * D + K; }

template <class T>
PGM_HD void finalize(int type, const double* st, const double* c, double wsum, index_t K, index_t D,
                     double reg, T* weights, T* means, T* cov, T* pc, std::uint8_t* flags,
                     double* work) {
  if (!(wsum > 0)) {
    empty_set_params(type, K, D, weights, means, cov, pc, flags);
    return;
  }
  const double* Nr = st;
  const double* S1 = st + K;
  const double* S2 = st + K + K * D;
  double* C = work;
  double* L = C + D * D;
  double* Pd = L + D * D;
  double* tot = Pd + D * D;  // set covariance (full D*D, or its diagonal in the first D)
  double* m0 = tot + D * D;
  double* m = m0 + D;
  double* nk = m + D;
  double nsum = 0;
  for (index_t k = 0; k < K; ++k) {
    nk[k] = Nr[k] + 10 * kEps;
    nsum += nk[k];
    flags[k] = 0;
  }
  // set mean (centred, ~0) and covariance
  for (index_t d = 0; d < D; ++d) {
    double s = 0;
    for (index_t k = 0; k < K; ++k) s += S1[k * D + d];
    m0[d] = s / wsum;
  }
  const bool fullish = (type == FULL || type == TIED);
  if (fullish) {
    for (index_t i = 0; i < D; ++i)
      for (index_t j = 0; j <= i; ++j) {
        double s = 0;
        if (type == TIED) s = S2[i * D + j];
        else
          for (index_t k = 0; k < K; ++k) s += S2[k * D * D + i * D + j];
        tot[i * D + j] = tot[j * D + i] = s / wsum - m0[i] * m0[j];
      }
  } else {
    for (index_t d = 0; d < D; ++d) {
      double s = 0;
      for (index_t k = 0; k < K; ++k) s += S2[k * D + d];
      tot[d] = s / wsum - m0[d] * m0[d];
    }
  }
  double* vdiag = nk + K;
  for (index_t d = 0; d < D; ++d) vdiag[d] = fullish ? tot[d * D + d] : tot[d];
  const double scale = jitter_scale(vdiag, D);
  const double tiny = 1e-12 * wsum;
  for (index_t k = 0; k < K; ++k) {
    weights[k] = static_cast<T>(nk[k] / nsum);
    const bool col = !(Nr[k] > tiny);
    if (col) flags[k] |= COLLAPSED;
    for (index_t d = 0; d < D; ++d) {
      const double mk = col ? m0[d] : S1[k * D + d] / nk[k];
      means[k * D + d] = static_cast<T>(c[d] + mk);
    }
  }
  if (type == FULL) {
    for (index_t k = 0; k < K; ++k) {
      const bool col = (flags[k] & COLLAPSED) != 0;
      const double f = 2 * nk[k] - Nr[k];
      for (index_t d = 0; d < D; ++d) m[d] = S1[k * D + d] / nk[k];
      for (index_t i = 0; i < D; ++i)
        for (index_t j = 0; j <= i; ++j) {
          const double v = col ? tot[i * D + j] : (S2[k * D * D + i * D + j] - f * m[i] * m[j]) / nk[k];
          C[i * D + j] = C[j * D + i] = v;
        }
      for (index_t d = 0; d < D; ++d) C[d * D + d] += reg;
      cholesky_jitter(C, L, D, scale, &flags[k]);
      precision_factor_d(L, D, Pd);
      T* ck = cov + k * D * D;
      T* pk = pc + k * D * D;
      for (index_t i = 0; i < D * D; ++i) { ck[i] = static_cast<T>(C[i]); pk[i] = static_cast<T>(Pd[i]); }
    }
  } else if (type == TIED) {
    for (index_t i = 0; i < D; ++i)
      for (index_t j = 0; j <= i; ++j) {
        double s = S2[i * D + j];
        for (index_t k = 0; k < K; ++k) {
          if (flags[k] & COLLAPSED) continue;
          s -= S1[k * D + i] * S1[k * D + j] / nk[k];
        }
        C[i * D + j] = C[j * D + i] = s / nsum;
      }
    for (index_t d = 0; d < D; ++d) C[d * D + d] += reg;
    std::uint8_t f = 0;
    cholesky_jitter(C, L, D, scale, &f);
    for (index_t k = 0; k < K; ++k) flags[k] |= f;
    precision_factor_d(L, D, Pd);
    for (index_t i = 0; i < D * D; ++i) { cov[i] = static_cast<T>(C[i]); pc[i] = static_cast<T>(Pd[i]); }
  } else {
    const double floor = 1e-10 * scale;
    for (index_t k = 0; k < K; ++k) {
      const bool col = (flags[k] & COLLAPSED) != 0;
      const double f = 2 * nk[k] - Nr[k];
      double vs = 0;
      for (index_t d = 0; d < D; ++d) {
        const double mk = S1[k * D + d] / nk[k];
        double v = col ? tot[d] : (S2[k * D + d] - f * mk * mk) / nk[k];
        v += reg;
        if (!(v > 0) || !std::isfinite(v)) {
          v = floor;
          flags[k] |= REGULARISED;
        }
        if (type == DIAG) {
          cov[k * D + d] = static_cast<T>(v);
          pc[k * D + d] = static_cast<T>(1.0 / std::sqrt(v));
        }
        vs += v;
      }
      if (type == SPHERICAL) {
        const double v = vs / D;
        cov[k] = static_cast<T>(v);
        pc[k] = static_cast<T>(1.0 / std::sqrt(v));
      }
    }
  }
}

#if !defined(__CUDACC__)
template <class T>
void finalize(int type, const double* st, const double* c, double wsum, index_t K, index_t D,
              double reg, T* weights, T* means, T* cov, T* pc, std::uint8_t* flags,
              std::vector<double>& work) {
  work.resize(finalize_workspace(K, D));
  finalize(type, st, c, wsum, K, D, reg, weights, means, cov, pc, flags, work.data());
}
#endif

// ---------------------------------------------------------------------------------------
// CPU side
#if !defined(__CUDACC__)
// The 256-bit vector helpers below are inline and never cross a translation-unit boundary, so
// GCC's note that their calling convention depends on -mavx does not apply. (Not popped: GCC
// reports it where templates are instantiated, at the end of the including file.)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

// Number of point groups of a set: depends on N only (fixed reduction order).
inline index_t n_groups(index_t N) {
  const index_t g = (N + 2047) / 2048;
  return std::max<index_t>(1, std::min<index_t>(g, 64));
}
inline index_t group_begin(index_t N, index_t G, index_t g) { return (N * g) / G; }

inline int max_threads() {
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// ---- SIMD micro-kernels ------------------------------------------------------------------
// GCC/Clang vector extensions: 256-bit vectors (4 doubles / 8 floats). The bodies are
// always-inlined into two entry points per kernel (see accumulate_group): one compiled for
// AVX2+FMA and chosen at run time when the CPU has them, one for the baseline ISA (where the
// compiler splits each vector into SSE2 halves). No -march flag is needed.
#define PGM_INLINE inline __attribute__((always_inline))

template <class T> struct simd;
typedef double pgm_v4d __attribute__((vector_size(32)));
typedef float pgm_v8f __attribute__((vector_size(32)));
template <> struct simd<double> {
  typedef pgm_v4d v;
  static constexpr index_t W = 4;
};
template <> struct simd<float> {
  typedef pgm_v8f v;
  static constexpr index_t W = 8;
};

inline index_t round_up(index_t n, index_t w) { return (n + w - 1) / w * w; }

// Unaligned loads/stores through memcpy (template arguments drop alignment attributes).
template <class V, class T> PGM_INLINE V vload(const T* p) {
  V x;
  __builtin_memcpy(&x, p, sizeof(V));
  return x;
}
template <class V, class T> PGM_INLINE void vstore(T* p, V x) { __builtin_memcpy(p, &x, sizeof(V)); }
template <class V, class T> PGM_INLINE V vsplat(T s) { V x = {}; return x + s; }
template <class T, class V> PGM_INLINE T hsum(V x) {
  T s = 0;
  for (index_t i = 0; i < static_cast<index_t>(sizeof(V) / sizeof(T)); ++i) s += x[i];
  return s;
}

// C[i][j] = sum_{n<m} A[n*lda + i] * B[n*ldb + j] for i < I and j < Jp (Jp a multiple of the
// vector width; B's padding columns must be finite). lower: only column vectors that touch
// j <= i are computed (the rest of C is left unchanged). Register tile: 4 rows x 2 vectors.
template <class T>
PGM_INLINE void gemm_atb(const T* A, index_t lda, const T* B, index_t ldb, index_t m, index_t I,
                         index_t Jp, T* C, index_t ldc, bool lower) {
  using V = typename simd<T>::v;
  constexpr index_t W = simd<T>::W;
  index_t i = 0;
  for (; i < I; i += 4) {
    const index_t ri = std::min<index_t>(4, I - i);
    const index_t jend = lower ? std::min(Jp, round_up(i + ri, W)) : Jp;
    index_t j = 0;
    if (ri == 4) {
      for (; j + 2 * W <= jend; j += 2 * W) {
        V c00 = {}, c01 = {}, c10 = {}, c11 = {}, c20 = {}, c21 = {}, c30 = {}, c31 = {};
        for (index_t n = 0; n < m; ++n) {
          const T* b = B + n * ldb + j;
          const V b0 = vload<V>(b), b1 = vload<V>(b + W);
          const T* a = A + n * lda + i;
          const T a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];
          c00 += a0 * b0; c01 += a0 * b1;
          c10 += a1 * b0; c11 += a1 * b1;
          c20 += a2 * b0; c21 += a2 * b1;
          c30 += a3 * b0; c31 += a3 * b1;
        }
        T* c = C + i * ldc + j;
        vstore(c, c00); vstore(c + W, c01);
        vstore(c + ldc, c10); vstore(c + ldc + W, c11);
        vstore(c + 2 * ldc, c20); vstore(c + 2 * ldc + W, c21);
        vstore(c + 3 * ldc, c30); vstore(c + 3 * ldc + W, c31);
      }
      if (j < jend) {  // one vector left: 4 x 1 tile
        V c0 = {}, c1 = {}, c2 = {}, c3 = {};
        for (index_t n = 0; n < m; ++n) {
          const V b0 = vload<V>(B + n * ldb + j);
          const T* a = A + n * lda + i;
          c0 += a[0] * b0; c1 += a[1] * b0; c2 += a[2] * b0; c3 += a[3] * b0;
        }
        T* c = C + i * ldc + j;
        vstore(c, c0); vstore(c + ldc, c1); vstore(c + 2 * ldc, c2); vstore(c + 3 * ldc, c3);
      }
      continue;
    }
    for (index_t r = 0; r < ri; ++r) {
      index_t jj = 0;
      for (; jj + 2 * W <= jend; jj += 2 * W) {
        V c0 = {}, c1 = {};
        for (index_t n = 0; n < m; ++n) {
          const T a = A[n * lda + i + r];
          c0 += a * vload<V>(B + n * ldb + jj);
          c1 += a * vload<V>(B + n * ldb + jj + W);
        }
        vstore(C + (i + r) * ldc + jj, c0);
        vstore(C + (i + r) * ldc + jj + W, c1);
      }
      for (; jj < jend; jj += W) {
        V c0 = {};
        for (index_t n = 0; n < m; ++n) c0 += A[n * lda + i + r] * vload<V>(B + n * ldb + jj);
        vstore(C + (i + r) * ldc + jj, c0);
      }
    }
  }
}

// out[n] = || X[n, :K] P - b ||^2 (square=true) or out[n*ldo + j] = (X[n, :K] P)[j] for
// n < m, with P (K x Jp, row stride ldp) and b (Jp). upper: P[i][j] = 0 for i > j, so the
// inner loop of column block j stops at i = j + 2W. Register tile: 4 points x 2 vectors.
template <class T, bool square>
PGM_INLINE void gemm_ab(const T* X, index_t ldx, index_t m, index_t K, const T* P, index_t ldp,
                        index_t Jp, const T* b, bool upper, T* out, index_t ldo) {
  using V = typename simd<T>::v;
  constexpr index_t W = simd<T>::W;
  index_t n = 0;
  for (; n + 4 <= m; n += 4) {
    V s0 = {}, s1 = {}, s2 = {}, s3 = {};
    const T* x0 = X + n * ldx;
    const T* x1 = x0 + ldx;
    const T* x2 = x1 + ldx;
    const T* x3 = x2 + ldx;
    for (index_t j = 0; j < Jp; j += 2 * W) {
      const bool two = j + W < Jp;
      V a00, a01, a10, a11, a20, a21, a30, a31;
      if (square) {
        a00 = a10 = a20 = a30 = -vload<V>(b + j);
        a01 = a11 = a21 = a31 = two ? -vload<V>(b + j + W) : V{};
      } else {
        a00 = a10 = a20 = a30 = a01 = a11 = a21 = a31 = V{};
      }
      const index_t iend = upper ? std::min(K, j + 2 * W) : K;
      for (index_t i = 0; i < iend; ++i) {
        const T* p = P + i * ldp + j;
        const V p0 = vload<V>(p);
        const V p1 = two ? vload<V>(p + W) : V{};
        const T e0 = x0[i], e1 = x1[i], e2 = x2[i], e3 = x3[i];
        a00 += e0 * p0; a01 += e0 * p1;
        a10 += e1 * p0; a11 += e1 * p1;
        a20 += e2 * p0; a21 += e2 * p1;
        a30 += e3 * p0; a31 += e3 * p1;
      }
      if (square) {
        s0 += a00 * a00 + a01 * a01;
        s1 += a10 * a10 + a11 * a11;
        s2 += a20 * a20 + a21 * a21;
        s3 += a30 * a30 + a31 * a31;
      } else {
        T* o = out + n * ldo + j;
        vstore(o, a00); vstore(o + ldo, a10); vstore(o + 2 * ldo, a20); vstore(o + 3 * ldo, a30);
        if (two) {
          vstore(o + W, a01); vstore(o + ldo + W, a11); vstore(o + 2 * ldo + W, a21);
          vstore(o + 3 * ldo + W, a31);
        }
      }
    }
    if (square) {
      out[n] = hsum<T>(s0); out[n + 1] = hsum<T>(s1); out[n + 2] = hsum<T>(s2); out[n + 3] = hsum<T>(s3);
    }
  }
  for (; n < m; ++n) {
    const T* x0 = X + n * ldx;
    V s0 = {};
    for (index_t j = 0; j < Jp; j += W) {
      V a = square ? -vload<V>(b + j) : V{};
      const index_t iend = upper ? std::min(K, j + W) : K;
      for (index_t i = 0; i < iend; ++i) a += x0[i] * vload<V>(P + i * ldp + j);
      if (square) s0 += a * a;
      else vstore(out + n * ldo + j, a);
    }
    if (square) out[n] = hsum<T>(s0);
  }
}

// exp(x) for x <= 0 without branches or library calls, so the responsibility loop vectorises:
// Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, degree-13 Taylor polynomial (relative error
// < 2e-16), 2^n assembled from the rounding constant's low bits. exp(x) = 0 for x < -600
// (relative contributions below 1e-260 are dropped; this also keeps products normal).
// (on four doubles at once, with vector extensions: a scalar version with selects does not
// vectorise)
typedef long long pgm_v4i __attribute__((vector_size(32)));
PGM_INLINE pgm_v4d exp_nonpos_v(pgm_v4d x) {
  const pgm_v4d lo = vsplat<pgm_v4d>(-600.0);
  const pgm_v4d kShift = vsplat<pgm_v4d>(6755399441055744.0);
  const pgm_v4i under = x < lo;
  const pgm_v4d xc = under ? lo : x;
  const pgm_v4d t = xc * 1.4426950408889634 + kShift;
  const pgm_v4d n = t - kShift;
  const pgm_v4d r = (xc - n * 0.6931471803691238) - n * 1.9082149292705877e-10;
  pgm_v4d p = vsplat<pgm_v4d>(1.0 / 6227020800.0);
  p = p * r + 1.0 / 479001600.0;
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
  p = p * r + 1.0;
  pgm_v4i tb;
  __builtin_memcpy(&tb, &t, 32);
  const pgm_v4i sb = (tb + 1023) << 52;
  pgm_v4d scale;
  __builtin_memcpy(&scale, &sb, 32);
  return under ? vsplat<pgm_v4d>(0.0) : p * scale;
}

PGM_INLINE double exp_nonpos(double x) { return exp_nonpos_v(vsplat<pgm_v4d>(x))[0]; }

// log(s) for four doubles s >= 1 (finite): s = 2^e f with f in [sqrt(1/2), sqrt(2)),
// log f = 2 atanh((f - 1) / (f + 1)) by its series to u^21 (relative error < 1e-16).
PGM_INLINE pgm_v4d log_ge1_v(pgm_v4d s) {
  pgm_v4i b;
  __builtin_memcpy(&b, &s, 32);
  pgm_v4i e = ((b >> 52) & 0x7ff) - 1023;
  pgm_v4i fb = (b & 0x000fffffffffffffLL) | 0x3ff0000000000000LL;
  pgm_v4d f;
  __builtin_memcpy(&f, &fb, 32);
  const pgm_v4i big = f > 1.4142135623730951;
  f = big ? f * 0.5 : f;
  e = big ? e + 1 : e;
  const pgm_v4i eb = e + 0x4330000000000000LL;  // e >= 0: exact conversion to double
  pgm_v4d ed;
  __builtin_memcpy(&ed, &eb, 32);
  ed = ed - 4503599627370496.0;
  const pgm_v4d u = (f - 1.0) / (f + 1.0);
  const pgm_v4d u2 = u * u;
  pgm_v4d q = vsplat<pgm_v4d>(1.0 / 21);
  q = q * u2 + 1.0 / 19;
  q = q * u2 + 1.0 / 17;
  q = q * u2 + 1.0 / 15;
  q = q * u2 + 1.0 / 13;
  q = q * u2 + 1.0 / 11;
  q = q * u2 + 1.0 / 9;
  q = q * u2 + 1.0 / 7;
  q = q * u2 + 1.0 / 5;
  q = q * u2 + 1.0 / 3;
  q = q * u2 + 1.0;
  return ed * 0.6931471805599453 + 2.0 * u * q;
}

// Per-iteration constants of one set's current parameters, laid out for the micro-kernels.
template <class T>
struct Prepared {
  index_t Dp = 0, Kp = 0;
  std::vector<T> P;         // full/tied: K x D x Dp upper factors (zero padded)
  std::vector<T> b;         // full/tied: K x Dp, (mu_k - c) P_k
  // float32 evaluates (x - mu) P instead of x P - mu P (no cancellation with large precisions)
  std::vector<T> mu;        // K x Dp centred means (zero padded)
  std::vector<T> pd;        // diag/spherical: K x Dp precision factors (zero padded)
  std::vector<T> zero;      // Dp zeros
  std::vector<T> Wd;        // diag/spherical: 2D x Kp, rows [p^2 ; -2 p^2 (mu - c)]
  std::vector<double> cst;  // K: log w_k + log det P_k - D/2 log 2pi (- 1/2 sum p^2 mu^2)
  void build(int type, index_t K, index_t D, const T* weights, const T* means, const T* pc,
             const double* c) {
    constexpr index_t W = simd<T>::W;
    cst.assign(K, 0.0);
    {
      const index_t ld = round_up(D, W);
      mu.assign(K * ld, T(0));
      pd.assign(K * ld, T(0));
      zero.assign(ld, T(0));
      for (index_t k = 0; k < K; ++k)
        for (index_t d = 0; d < D; ++d) {
          mu[k * ld + d] = static_cast<T>(static_cast<double>(means[k * D + d]) - c[d]);
          if (type == DIAG) pd[k * ld + d] = pc[k * D + d];
          if (type == SPHERICAL) pd[k * ld + d] = pc[k];
        }
    }
    for (index_t k = 0; k < K; ++k)
      cst[k] = std::log(static_cast<double>(weights[k])) +
               log_det_pc(type, pc + pc_offset(type, k, D), D) - 0.5 * D * kLog2Pi;
    if (type == FULL || type == TIED) {
      Dp = round_up(D, W);
      P.assign(K * D * Dp, T(0));
      b.assign(K * Dp, T(0));
      for (index_t k = 0; k < K; ++k) {
        const T* pk = pc + pc_offset(type, k, D);
        T* Pk = P.data() + k * D * Dp;
        for (index_t i = 0; i < D; ++i)
          for (index_t j = i; j < D; ++j) Pk[i * Dp + j] = pk[i * D + j];
        for (index_t j = 0; j < D; ++j) {
          double s = 0;
          for (index_t i = 0; i <= j; ++i)
            s += (static_cast<double>(means[k * D + i]) - c[i]) * static_cast<double>(pk[i * D + j]);
          b[k * Dp + j] = static_cast<T>(s);
        }
      }
    } else {
      Kp = round_up(K, W);
      Wd.assign(2 * D * Kp, T(0));
      for (index_t k = 0; k < K; ++k) {
        double q = 0;
        for (index_t d = 0; d < D; ++d) {
          const double p = static_cast<double>(type == DIAG ? pc[k * D + d] : pc[k]);
          const double mu = static_cast<double>(means[k * D + d]) - c[d];
          Wd[d * Kp + k] = static_cast<T>(p * p);
          Wd[(D + d) * Kp + k] = static_cast<T>(-2 * p * p * mu);
          q += p * p * mu * mu;
        }
        if (sizeof(T) == 8) cst[k] -= 0.5 * q;  // float32 evaluates (x - mu) directly
      }
    }
  }
};

constexpr index_t kSmallDMax = 8;

// Small-D path (D <= 8): points in vector lanes. The chunk is stored transposed (xt[d][p]) so
// the E-step and the statistics are vertical vector operations over points, which beats the
// column-tiled GEMMs when D is too small to fill a register tile (many small mixtures).
template <class T>
struct SmallWork {
  static constexpr index_t CH = 128;
  std::vector<T> xt;                 // D x CH
  std::vector<double> xtd, rxd;      // D x CH float64 copies for the statistics
  std::vector<double> lp, wv, mx, s, lg;  // K x CH, CH, CH, CH, CH
  std::vector<index_t> idx;
  void resize(index_t D, index_t K) {
    xt.assign(D * CH, T(0)); xtd.assign(D * CH, 0.0); rxd.assign(D * CH, 0.0);
    lp.assign(K * CH, 0.0); wv.assign(CH, 0.0); mx.assign(CH, 0.0); s.assign(CH, 0.0); lg.assign(CH, 0.0);
    idx.assign(CH, 0);
  }
};

// sum_p a[p] * b[p] over mp (a multiple of the vector width) entries; four accumulators so the
// FMA latency is hidden (the summation order depends on mp only).
template <class T>
PGM_INLINE T vdot(const T* a, const T* b, index_t mp) {
  using V = typename simd<T>::v;
  constexpr index_t W = simd<T>::W;
  V a0 = {}, a1 = {}, a2 = {}, a3 = {};
  index_t p = 0;
  for (; p + 4 * W <= mp; p += 4 * W) {
    a0 += vload<V>(a + p) * vload<V>(b + p);
    a1 += vload<V>(a + p + W) * vload<V>(b + p + W);
    a2 += vload<V>(a + p + 2 * W) * vload<V>(b + p + 2 * W);
    a3 += vload<V>(a + p + 3 * W) * vload<V>(b + p + 3 * W);
  }
  for (; p < mp; p += W) a0 += vload<V>(a + p) * vload<V>(b + p);
  return hsum<T>((a0 + a1) + (a2 + a3));
}

template <class T>
PGM_INLINE T vsum(const T* a, index_t mp) {
  using V = typename simd<T>::v;
  constexpr index_t W = simd<T>::W;
  V a0 = {}, a1 = {}, a2 = {}, a3 = {};
  index_t p = 0;
  for (; p + 4 * W <= mp; p += 4 * W) {
    a0 += vload<V>(a + p);
    a1 += vload<V>(a + p + W);
    a2 += vload<V>(a + p + 2 * W);
    a3 += vload<V>(a + p + 3 * W);
  }
  for (; p < mp; p += W) a0 += vload<V>(a + p);
  return hsum<T>((a0 + a1) + (a2 + a3));
}

template <class T>
PGM_INLINE void accumulate_small_impl(int type, const T* X, const T* W, const T* resp, index_t n0,
                                      index_t n1, index_t D, index_t K, const double* c,
                                      const Prepared<T>& prep, double* st, SmallWork<T>& w) {
  using V = typename simd<T>::v;
  constexpr index_t VW = simd<T>::W;
  constexpr index_t CH = SmallWork<T>::CH;
  double* Nk = st;
  double* S1 = st + K;
  double* S2 = st + K + K * D;
  double* ll = st + K + K * D + s2_size(type, K, D);
  const bool fullish = (type == FULL || type == TIED);
  T* xt = w.xt.data();
  double* lp = w.lp.data();
  index_t n = n0;
  while (n < n1) {
    index_t m = 0;
    for (; n < n1 && m < CH; ++n) {
      const double wgt = static_cast<double>(W[n]);
      if (!(wgt > 0)) continue;
      const T* x = X + n * D;
      for (index_t d = 0; d < D; ++d) xt[d * CH + m] = static_cast<T>(static_cast<double>(x[d]) - c[d]);
      w.wv[m] = wgt;
      w.idx[m] = n;
      ++m;
    }
    if (m == 0) break;
    const index_t mp = round_up(m, VW);
    for (index_t p = m; p < mp; ++p) {
      for (index_t d = 0; d < D; ++d) xt[d * CH + p] = T(0);
      w.wv[p] = 0.0;
    }
    if (!resp) {
      for (index_t k = 0; k < K; ++k) {
        double* lk = lp + k * CH;
        const double ck = prep.cst[k];
        for (index_t p = 0; p < mp; p += VW) {
          V ssq = {};
          if (sizeof(T) == 4) {  // float32: (x - mu) P, see Prepared
            const index_t ld = round_up(D, VW);
            const T* mk = prep.mu.data() + k * ld;
            V dv[kSmallDMax];
            for (index_t i = 0; i < D; ++i) dv[i] = vload<V>(xt + i * CH + p) - mk[i];
            if (fullish) {
              const T* P = prep.P.data() + k * D * prep.Dp;
              for (index_t j = 0; j < D; ++j) {
                V y = {};
                for (index_t i = 0; i <= j; ++i) y += dv[i] * P[i * prep.Dp + j];
                ssq += y * y;
              }
            } else {
              const T* pk = prep.pd.data() + k * ld;
              for (index_t i = 0; i < D; ++i) {
                const V y = dv[i] * pk[i];
                ssq += y * y;
              }
            }
          } else if (fullish) {
            const T* P = prep.P.data() + k * D * prep.Dp;
            const T* b = prep.b.data() + k * prep.Dp;
            for (index_t j = 0; j < D; ++j) {
              V y = vsplat<V>(-b[j]);
              for (index_t i = 0; i <= j; ++i) y += vload<V>(xt + i * CH + p) * P[i * prep.Dp + j];
              ssq += y * y;
            }
          } else {
            const T* Wd = prep.Wd.data();
            for (index_t d = 0; d < D; ++d) {
              const V x = vload<V>(xt + d * CH + p);
              ssq += x * (x * Wd[d * prep.Kp + k] + Wd[(D + d) * prep.Kp + k]);
            }
          }
          if constexpr (sizeof(T) == 8) {
            vstore(lk + p, ck - 0.5 * ssq);
          } else {
            for (index_t q = 0; q < VW; ++q) lk[p + q] = ck - 0.5 * static_cast<double>(ssq[q]);
          }
        }
      }
      double* __restrict mx = w.mx.data();
      double* __restrict s = w.s.data();
      for (index_t p = 0; p < mp; ++p) mx[p] = lp[p];
      for (index_t k = 1; k < K; ++k) {
        const double* __restrict lk = lp + k * CH;
        for (index_t p = 0; p < mp; ++p) mx[p] = lk[p] > mx[p] ? lk[p] : mx[p];
      }
      for (index_t p = 0; p < mp; ++p) s[p] = 0.0;
      const index_t mp4 = round_up(mp, 4);
      for (index_t p = mp; p < mp4; ++p) mx[p] = 0.0;
      for (index_t k = 0; k < K; ++k) {
        double* __restrict lk = lp + k * CH;
        for (index_t p = mp; p < mp4; ++p) lk[p] = 0.0;
        for (index_t p = 0; p < mp4; p += 4) {
          const pgm_v4d e = exp_nonpos_v(vload<pgm_v4d>(lk + p) - vload<pgm_v4d>(mx + p));
          vstore(lk + p, e);
          vstore(s + p, vload<pgm_v4d>(s + p) + e);
        }
      }
      bool finite = true;
      for (index_t p = 0; p < m; ++p) finite = finite && (mx[p] > -INFINITY) && std::isfinite(mx[p]);
      if (finite) {
        double* __restrict lg = w.lg.data();
        for (index_t p = 0; p < mp4; p += 4) {
          pgm_v4d sv = vload<pgm_v4d>(s + p);
          sv = sv >= 1.0 ? sv : vsplat<pgm_v4d>(1.0);  // padding lanes
          vstore(lg + p, log_ge1_v(sv));
        }
        double acc = 0;
        for (index_t p = 0; p < m; ++p) acc += w.wv[p] * (mx[p] + lg[p]);
        *ll += acc;
      } else {
        for (index_t p = 0; p < m; ++p) {
          if (!(mx[p] > -INFINITY) || !std::isfinite(mx[p])) {  // every component underflowed
            for (index_t k = 0; k < K; ++k) lp[k * CH + p] = (k == 0) ? 1.0 : 0.0;
            s[p] = 1.0;
            continue;
          }
          *ll += w.wv[p] * (mx[p] + std::log(s[p]));
        }
      }
      for (index_t p = 0; p < mp; ++p) s[p] = w.wv[p] / s[p];
      for (index_t k = 0; k < K; ++k)
        for (index_t p = 0; p < mp; ++p) lp[k * CH + p] *= s[p];
    } else {
      for (index_t k = 0; k < K; ++k)
        for (index_t p = 0; p < mp; ++p)
          lp[k * CH + p] = p < m ? w.wv[p] * static_cast<double>(resp[w.idx[p] * K + k]) : 0.0;
    }
    // (padding lanes have weight 0, so their responsibilities are 0). Statistics in float64:
    // the weighted responsibilities already are; float32 points are widened (exact products).
    const double* xs;
    if constexpr (sizeof(T) == 8) {
      xs = xt;
    } else {
      double* xd = w.xtd.data();
      for (index_t i = 0; i < D; ++i)
        for (index_t p = 0; p < mp; ++p) xd[i * CH + p] = static_cast<double>(xt[i * CH + p]);
      xs = xd;
    }
    using VD = pgm_v4d;
    double* rx = w.rxd.data();
    for (index_t k = 0; k < K; ++k) {
      const double* rk = lp + k * CH;
      Nk[k] += vsum(rk, mp);
      for (index_t i = 0; i < D; ++i) {
        double* rxi = rx + i * CH;
        const double* xi = xs + i * CH;
        for (index_t p = 0; p < mp; p += 4) vstore(rxi + p, vload<VD>(rk + p) * vload<VD>(xi + p));
        S1[k * D + i] += vsum(rxi, mp);
        if (type == FULL) {
          for (index_t j = 0; j <= i; ++j) S2[k * D * D + i * D + j] += vdot(rxi, xs + j * CH, mp);
        } else if (type != TIED) {
          S2[k * D + i] += vdot(rxi, xi, mp);
        }
      }
    }
    if (type == TIED) {
      const double* wt = w.wv.data();
      for (index_t i = 0; i < D; ++i) {
        double* rxi = rx + i * CH;
        for (index_t p = 0; p < mp; p += 4) vstore(rxi + p, vload<VD>(wt + p) * vload<VD>(xs + i * CH + p));
        for (index_t j = 0; j <= i; ++j) S2[i * D + j] += vdot(rxi, xs + j * CH, mp);
      }
    }
  }
}

// Statistics of m points (large-D layout): Nk, S1 (K x D), S2 (lower triangles) from the
// weighted responsibilities rt (m x ldr) and centred points xc (m x ldx); z holds [x^2, x]
// rows (diag/spherical) and is reordered in place. All buffers' padding entries are zero.
template <class A>
PGM_INLINE void large_stats(int type, index_t m, index_t D, index_t K, const A* xc, index_t ldx, A* z,
                            index_t ldz, const A* rt, index_t ldr, A* ax, A* C, const double* wv,
                            double* Nk, double* S1, double* S2) {
  for (index_t p = 0; p < m; ++p)
    for (index_t k = 0; k < K; ++k) Nk[k] += rt[p * ldr + k];
  if (type == FULL || type == TIED) {
    // S1 (K x D) = r^T xc
    gemm_atb(rt, ldr, xc, ldx, m, K, ldx, C, ldx, false);
    for (index_t k = 0; k < K; ++k)
      for (index_t d = 0; d < D; ++d) S1[k * D + d] += C[k * ldx + d];
    const index_t nmat = (type == FULL) ? K : 1;
    for (index_t q = 0; q < nmat; ++q) {
      for (index_t p = 0; p < m; ++p) {
        const A a = (type == FULL) ? rt[p * ldr + q] : static_cast<A>(wv[p]);
        const A* x = xc + p * ldx;
        A* o = ax + p * ldx;
        for (index_t d = 0; d < D; ++d) o[d] = a * x[d];
      }
      gemm_atb(ax, ldx, xc, ldx, m, D, ldx, C, ldx, true);
      double* s2 = S2 + q * D * D;
      for (index_t i = 0; i < D; ++i)
        for (index_t j = 0; j <= i; ++j) s2[i * D + j] += C[i * ldx + j];
    }
  } else {
    // [S1 | S2] (K x 2D) = r^T [x, x^2]
    for (index_t p = 0; p < m; ++p) {
      A* zp = z + p * ldz;
      for (index_t d = 0; d < D; ++d) { const A x = zp[D + d]; zp[D + d] = zp[d]; zp[d] = x; }
    }
    gemm_atb(rt, ldr, z, ldz, m, K, ldz, C, ldz, false);
    for (index_t k = 0; k < K; ++k)
      for (index_t d = 0; d < D; ++d) {
        S1[k * D + d] += C[k * ldz + d];
        S2[k * D + d] += C[k * ldz + D + d];
      }
  }
}

template <class T>
struct ChunkWork {
  static constexpr index_t CH = 128;
  index_t ldx = 0, ldz = 0, ldr = 0;
  std::vector<T> xc;          // CH x ldx centred points (padding columns 0)
  std::vector<T> z;           // CH x ldz: diag [x^2, x] for the E-step, [x, x^2] for the M-step
  std::vector<T> ax;          // CH x ldx: responsibility-scaled points
  std::vector<T> rt;          // CH x ldr responsibilities * weight, in T
  std::vector<T> out;         // CH x max(ldr, ...) E-step outputs
  std::vector<T> C;           // scratch for A^T B results
  std::vector<double> wv;     // CH point weights
  std::vector<index_t> idx;   // CH point indices
  std::vector<double> r;      // CH x K log-probabilities, then weight * responsibility
  index_t ldxd = 0, ldzd = 0, ldrd = 0;
  std::vector<double> xcd, zd, rtd, axd, Cd;  // float64 copies for the statistics (float32 input)
  SmallWork<T> small;         // the small-D path's buffers
  static constexpr index_t kSmallD = kSmallDMax;
  void resize(int type, index_t D, index_t K) {
    constexpr index_t W = simd<T>::W;
    if (D <= kSmallD) {
      small.resize(D, K);
      return;
    }
    ldx = round_up(D, W);
    ldz = round_up(2 * D, W);
    ldr = round_up(K, W);
    xc.assign(CH * ldx, T(0));
    z.assign(CH * ldz, T(0));
    ax.assign(CH * ldx, T(0));
    rt.assign(CH * ldr, T(0));
    out.assign(CH * std::max(ldr, ldx), T(0));
    C.assign(std::max(ldr, ldx) * std::max(ldz, ldx), T(0));
    wv.assign(CH, 0.0);
    idx.assign(CH, 0);
    r.assign(CH * K, 0.0);
    if (sizeof(T) == 4) {
      constexpr index_t Wd = simd<double>::W;
      ldxd = round_up(D, Wd);
      ldzd = round_up(2 * D, Wd);
      ldrd = round_up(K, Wd);
      xcd.assign(CH * ldxd, 0.0);
      zd.assign(CH * ldzd, 0.0);
      rtd.assign(CH * ldrd, 0.0);
      axd.assign(CH * ldxd, 0.0);
      Cd.assign(std::max(ldrd, ldxd) * std::max(ldzd, ldxd), 0.0);
    }
    (void)type;
  }
};

// One group of points [n0, n1) of one set: the E-step (or the given responsibilities `resp`,
// N x K) and the sufficient statistics, added into st. Points with weight <= 0 are skipped.
template <class T>
PGM_INLINE void accumulate_group_impl(int type, const T* X, const T* W, const T* resp, index_t n0,
                                      index_t n1, index_t D, index_t K, const double* c,
                                      const Prepared<T>& prep, double* st, ChunkWork<T>& w) {
  if (D <= ChunkWork<T>::kSmallD)
    return accumulate_small_impl<T>(type, X, W, resp, n0, n1, D, K, c, prep, st, w.small);
  constexpr index_t CH = ChunkWork<T>::CH;
  double* Nk = st;
  double* S1 = st + K;
  double* S2 = st + K + K * D;
  double* ll = st + K + K * D + s2_size(type, K, D);
  double* r = w.r.data();
  const index_t ldx = w.ldx, ldz = w.ldz, ldr = w.ldr;
  T* xc = w.xc.data();
  T* z = w.z.data();
  T* rt = w.rt.data();
  T* C = w.C.data();
  const bool fullish = (type == FULL || type == TIED);
  index_t n = n0;
  while (n < n1) {
    index_t m = 0;
    for (; n < n1 && m < CH; ++n) {
      const double wt = static_cast<double>(W[n]);
      if (!(wt > 0)) continue;
      const T* x = X + n * D;
      T* xo = xc + m * ldx;
      for (index_t d = 0; d < D; ++d) xo[d] = static_cast<T>(static_cast<double>(x[d]) - c[d]);
      w.wv[m] = wt;
      w.idx[m] = n;
      ++m;
    }
    if (m == 0) break;
    if (!fullish) {  // z = [x^2, x] rows (padding zero)
      for (index_t p = 0; p < m; ++p) {
        const T* x = xc + p * ldx;
        T* zp = z + p * ldz;
        for (index_t d = 0; d < D; ++d) { zp[d] = x[d] * x[d]; zp[D + d] = x[d]; }
      }
    }
    if (!resp) {
      if (sizeof(T) == 4) {  // float32: (x - mu) P, see Prepared
        using V = typename simd<T>::v;
        constexpr index_t VW = simd<T>::W;
        T* dbuf = w.ax.data();
        T* mah = w.out.data();
        for (index_t k = 0; k < K; ++k) {
          const T* mk = prep.mu.data() + k * ldx;
          if (fullish) {
            for (index_t p = 0; p < m; ++p)
              for (index_t v = 0; v < ldx; v += VW)
                vstore(dbuf + p * ldx + v, vload<V>(xc + p * ldx + v) - vload<V>(mk + v));
            gemm_ab<T, true>(dbuf, ldx, m, D, prep.P.data() + k * D * prep.Dp, prep.Dp, prep.Dp,
                             prep.zero.data(), true, mah, 1);
          } else {
            const T* pk = prep.pd.data() + k * ldx;
            for (index_t p = 0; p < m; ++p) {
              V acc = {};
              for (index_t v = 0; v < ldx; v += VW) {
                const V y = (vload<V>(xc + p * ldx + v) - vload<V>(mk + v)) * vload<V>(pk + v);
                acc += y * y;
              }
              mah[p] = hsum<T>(acc);
            }
          }
          const double ck = prep.cst[k];
          for (index_t p = 0; p < m; ++p) r[p * K + k] = ck - 0.5 * static_cast<double>(mah[p]);
        }
      } else if (fullish) {
        for (index_t k = 0; k < K; ++k) {
          T* mah = w.out.data();
          gemm_ab<T, true>(xc, ldx, m, D, prep.P.data() + k * D * prep.Dp, prep.Dp, prep.Dp,
                           prep.b.data() + k * prep.Dp, true, mah, 1);
          const double ck = prep.cst[k];
          for (index_t p = 0; p < m; ++p) r[p * K + k] = ck - 0.5 * static_cast<double>(mah[p]);
        }
      } else {
        T* o = w.out.data();
        gemm_ab<T, false>(z, ldz, m, 2 * D, prep.Wd.data(), prep.Kp, prep.Kp, nullptr, false, o, ldr);
        for (index_t p = 0; p < m; ++p)
          for (index_t k = 0; k < K; ++k)
            r[p * K + k] = prep.cst[k] - 0.5 * static_cast<double>(o[p * ldr + k]);
      }
      for (index_t p = 0; p < m; ++p) {
        double* rp = r + p * K;
        double mx = -INFINITY;
        for (index_t k = 0; k < K; ++k) mx = rp[k] > mx ? rp[k] : mx;
        if (!(mx > -INFINITY) || !std::isfinite(mx)) {
          // Every component underflows (a far outlier in float32): the point goes to the
          // component with the largest log-probability and does not enter the bound.
          index_t best = 0;
          for (index_t k = 1; k < K; ++k) best = rp[k] > rp[best] ? k : best;
          for (index_t k = 0; k < K; ++k) rp[k] = (k == best) ? w.wv[p] : 0.0;
          continue;
        }
        double s = 0;
        index_t k = 0;
        for (; k + 4 <= K; k += 4) vstore(rp + k, exp_nonpos_v(vload<pgm_v4d>(rp + k) - mx));
        for (; k < K; ++k) rp[k] = exp_nonpos(rp[k] - mx);
        for (k = 0; k < K; ++k) s += rp[k];
        *ll += w.wv[p] * (mx + std::log(s));
        const double f = w.wv[p] / s;
        for (index_t k = 0; k < K; ++k) rp[k] *= f;
      }
    } else {
      for (index_t p = 0; p < m; ++p)
        for (index_t k = 0; k < K; ++k)
          r[p * K + k] = w.wv[p] * static_cast<double>(resp[w.idx[p] * K + k]);
    }
    // statistics, always in float64 (float32 products are exact there, and the centred second
    // moments of near-singular components need the precision)
    if constexpr (sizeof(T) == 8) {
      for (index_t p = 0; p < m; ++p)
        for (index_t k = 0; k < K; ++k) rt[p * ldr + k] = r[p * K + k];
      large_stats<double>(type, m, D, K, xc, ldx, z, ldz, rt, ldr, w.ax.data(), C, w.wv.data(), Nk, S1, S2);
    } else {
      const index_t lxd = w.ldxd, lzd = w.ldzd, lrd = w.ldrd;
      double* xcd = w.xcd.data();
      double* zd = w.zd.data();
      double* rtd = w.rtd.data();
      for (index_t p = 0; p < m; ++p) {
        for (index_t d = 0; d < D; ++d) xcd[p * lxd + d] = static_cast<double>(xc[p * ldx + d]);
        if (!fullish)
          for (index_t d = 0; d < D; ++d) {
            zd[p * lzd + d] = xcd[p * lxd + d] * xcd[p * lxd + d];
            zd[p * lzd + D + d] = xcd[p * lxd + d];
          }
        for (index_t k = 0; k < K; ++k) rtd[p * lrd + k] = r[p * K + k];
      }
      large_stats<double>(type, m, D, K, xcd, lxd, zd, lzd, rtd, lrd, w.axd.data(), w.Cd.data(),
                          w.wv.data(), Nk, S1, S2);
    }
  }
}

template <class T>
void accumulate_group_base(int type, const T* X, const T* W, const T* resp, index_t n0, index_t n1,
                           index_t D, index_t K, const double* c, const Prepared<T>& prep,
                           double* st, ChunkWork<T>& w) {
  accumulate_group_impl<T>(type, X, W, resp, n0, n1, D, K, c, prep, st, w);
}

#if defined(__x86_64__) && defined(__GNUC__)
#define PGM_HAVE_AVX2_PATH 1
template <class T>
__attribute__((target("avx2,fma"))) void accumulate_group_avx2(
    int type, const T* X, const T* W, const T* resp, index_t n0, index_t n1, index_t D, index_t K,
    const double* c, const Prepared<T>& prep, double* st, ChunkWork<T>& w) {
  accumulate_group_impl<T>(type, X, W, resp, n0, n1, D, K, c, prep, st, w);
}
inline bool cpu_has_avx2_fma() {
  static const bool ok = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return ok;
}
#endif

template <class T>
void accumulate_group(int type, const T* X, const T* W, const T* resp, index_t n0, index_t n1,
                      index_t D, index_t K, const double* c, const Prepared<T>& prep, double* st,
                      ChunkWork<T>& w) {
#ifdef PGM_HAVE_AVX2_PATH
  if (cpu_has_avx2_fma())
    return accumulate_group_avx2<T>(type, X, W, resp, n0, n1, D, K, c, prep, st, w);
#endif
  accumulate_group_base<T>(type, X, W, resp, n0, n1, D, K, c, prep, st, w);
}

// Weighted centre and total weight of one set (serial, fixed order).
template <class T>
double set_centre(const T* X, const T* W, index_t N, index_t D, double* c) {
  double ws = 0;
  for (index_t d = 0; d < D; ++d) c[d] = 0;
  for (index_t n = 0; n < N; ++n) {
    const double wt = static_cast<double>(W[n]);
    if (!(wt > 0)) continue;
    ws += wt;
    for (index_t d = 0; d < D; ++d) c[d] += wt * static_cast<double>(X[n * D + d]);
  }
  if (ws > 0)
    for (index_t d = 0; d < D; ++d) c[d] /= ws;
  return ws;
}

// Per-thread workspace for one set's EM.
template <class T>
struct SetWork {
  ChunkWork<T> cw;
  Prepared<T> prep;
  std::vector<double> stats, part, c, fin;
  void resize(int type, index_t K, index_t D) {
    cw.resize(type, D, K);
    stats.assign(stats_size(type, K, D), 0.0);
    part.assign(stats.size(), 0.0);
    c.assign(D, 0.0);
  }
};

// Statistics of one set: groups in order, each summed serially (parallel over groups when
// `par` and there is more than one group; identical result either way).
template <class T>
void set_statistics(int type, const T* X, const T* W, const T* resp, index_t N, index_t D,
                    index_t K, SetWork<T>& sw, bool par, std::vector<double>& parts) {
  const index_t G = n_groups(N);
  const index_t ss = stats_size(type, K, D);
  std::fill(sw.stats.begin(), sw.stats.end(), 0.0);
  if (par && G > 1) {
    parts.assign(G * ss, 0.0);
#pragma omp parallel  // only reached with more than one group
    {
      ChunkWork<T> cw;
      cw.resize(type, D, K);
#pragma omp for schedule(dynamic, 1)
      for (index_t g = 0; g < G; ++g)
        accumulate_group(type, X, W, resp, group_begin(N, G, g), group_begin(N, G, g + 1), D, K,
                         sw.c.data(), sw.prep, parts.data() + g * ss, cw);
    }
    for (index_t g = 0; g < G; ++g)
      for (index_t i = 0; i < ss; ++i) sw.stats[i] += parts[g * ss + i];
  } else {
    for (index_t g = 0; g < G; ++g) {
      std::fill(sw.part.begin(), sw.part.end(), 0.0);
      accumulate_group(type, X, W, resp, group_begin(N, G, g), group_begin(N, G, g + 1), D, K,
                       sw.c.data(), sw.prep, sw.part.data(), sw.cw);
      for (index_t i = 0; i < ss; ++i) sw.stats[i] += sw.part[i];
    }
  }
}

// EM on one set: up to max_iter iterations, stopping when |change of the bound| < tol.
template <class T>
void em_set(int type, const T* X, const T* W, index_t N, index_t D, index_t K, double reg,
            index_t max_iter, double tol, T* weights, T* means, T* cov, T* pc, T* lower_bound,
            std::int64_t* n_iter, std::uint8_t* converged, std::uint8_t* flags, SetWork<T>& sw,
            bool par, std::vector<double>& parts) {
  const double wsum = set_centre(X, W, N, D, sw.c.data());
  *n_iter = 0;
  *converged = 0;
  if (!(wsum > 0)) {
    empty_set_params(type, K, D, weights, means, cov, pc, flags);
    *lower_bound = static_cast<T>(-INFINITY);
    return;
  }
  double prev = static_cast<double>(*lower_bound);
  if (std::isnan(prev)) prev = -INFINITY;
  double lb = prev;
  const index_t ll_at = stats_size(type, K, D) - 1;
  for (index_t it = 1; it <= max_iter; ++it) {
    sw.prep.build(type, K, D, weights, means, pc, sw.c.data());
    set_statistics(type, X, W, static_cast<const T*>(nullptr), N, D, K, sw, par, parts);
    lb = sw.stats[ll_at] / wsum;
    finalize(type, sw.stats.data(), sw.c.data(), wsum, K, D, reg, weights, means, cov, pc, flags,
             sw.fin);
    *n_iter = it;
    const double change = lb - prev;
    prev = lb;
    if (std::fabs(change) < tol) {
      *converged = 1;
      break;
    }
  }
  *lower_bound = static_cast<T>(lb);
}

// Runs one(s, work, par, parts) for every set: parallel over sets when there are enough of
// them (or a set has a single point group), else sets in turn, each parallel over its groups.
template <class T, class F>
void for_each_set(int type, index_t B, index_t N, index_t D, index_t K, F&& one) {
  const bool by_set = B >= 2 * max_threads() || n_groups(N) == 1 || max_threads() == 1;
  if (by_set) {
#pragma omp parallel if (B > 1)
    {
      SetWork<T> sw;
      sw.resize(type, K, D);
      std::vector<double> parts;
#pragma omp for schedule(dynamic, 1)
      for (index_t s = 0; s < B; ++s) one(s, sw, false, parts);
    }
  } else {
    SetWork<T> sw;
    sw.resize(type, K, D);
    std::vector<double> parts;
    for (index_t s = 0; s < B; ++s) one(s, sw, true, parts);
  }
}

// Batched EM. Set s (of B = Bx * n_rep) uses data set s / n_rep. Parameters are in/out.
template <class T>
void fit_cpu(int type, const T* X, const T* W, const T* reg, index_t Bx, index_t n_rep, index_t N,
             index_t D, index_t K, index_t max_iter, double tol, T* weights, T* means, T* cov,
             T* pc, T* lower_bound, std::int64_t* n_iter, std::uint8_t* converged,
             std::uint8_t* flags) {
  const index_t B = Bx * n_rep;
  const index_t cs = cov_size(type, K, D);
  auto one = [&](index_t s, SetWork<T>& sw, bool par, std::vector<double>& parts) {
    const index_t xb = s / n_rep;
    em_set(type, X + xb * N * D, W + xb * N, N, D, K, static_cast<double>(reg[s]), max_iter, tol,
           weights + s * K, means + s * K * D, cov + s * cs, pc + s * cs, lower_bound + s,
           n_iter + s, converged + s, flags + s * K, sw, par, parts);
  };
  for_each_set<T>(type, B, N, D, K, one);
}

// M-step from responsibilities resp[B, N, K] (times the point weights).
// Set s of B = Bx * n_rep uses data set s / n_rep and resp[s].
template <class T>
void m_step_cpu(int type, const T* X, const T* W, const T* resp, const T* reg, index_t Bx,
                index_t n_rep, index_t N, index_t D, index_t K, T* weights, T* means, T* cov,
                T* pc, std::uint8_t* flags) {
  const index_t B = Bx * n_rep;
  const index_t cs = cov_size(type, K, D);
  auto one = [&](index_t s, SetWork<T>& sw, bool par, std::vector<double>& parts) {
    const index_t xb = s / n_rep;
    const double wsum = set_centre(X + xb * N * D, W + xb * N, N, D, sw.c.data());
    set_statistics(type, X + xb * N * D, W + xb * N, resp + s * N * K, N, D, K, sw, par, parts);
    finalize(type, sw.stats.data(), sw.c.data(), wsum, K, D, static_cast<double>(reg[s]),
             weights + s * K, means + s * K * D, cov + s * cs, pc + s * cs, flags + s * K, sw.fin);
  };
  for_each_set<T>(type, B, N, D, K, one);
}

// Per point: component log-densities lp[b,n,k] = log N(x | k), responsibilities log_resp and
// the mixture log-density log_norm[b,n].
template <class T>
void e_step_cpu(int type, const T* X, const T* weights, const T* means, const T* pc, index_t B,
                index_t N, index_t D, index_t K, T* lp, T* log_resp, T* log_norm) {
  const index_t cs = cov_size(type, K, D);
#pragma omp parallel if (B * N * K * D > 32768)
  {
    std::vector<double> row(K);
#pragma omp for schedule(static)
    for (index_t bn = 0; bn < B * N; ++bn) {
      const index_t b = bn / N;
      const T* x = X + bn * D;
      for (index_t k = 0; k < K; ++k) {
        const T* P = pc + b * cs + pc_offset(type, k, D);
        const double l = log_det_pc(type, P, D) - 0.5 * D * kLog2Pi -
                         0.5 * static_cast<double>(mahalanobis2<T>(type, x, means + (b * K + k) * D, P, D));
        lp[bn * K + k] = static_cast<T>(l);
        row[k] = l + std::log(static_cast<double>(weights[b * K + k]));
      }
      const double lse = logsumexp(row.data(), K);
      log_norm[bn] = static_cast<T>(lse);
      for (index_t k = 0; k < K; ++k)
        log_resp[bn * K + k] = static_cast<T>(std::isfinite(lse) ? row[k] - lse : (k == 0 ? 0.0 : -INFINITY));
    }
  }
}

template <class T>
void sample_cpu(int type, const T* weights, const T* means, const T* pc, index_t B, index_t K,
                index_t D, index_t n, std::uint64_t seed, std::uint64_t stream0, T* out,
                std::int64_t* labels) {
  const index_t cs = cov_size(type, K, D);
#pragma omp parallel for schedule(static) if (B * n * D > 32768)
  for (index_t bn = 0; bn < B * n; ++bn) {
    const index_t b = bn / n, i = bn % n;
    sample_one(type, weights + b * K, means + b * K * D, pc + b * cs, K, D, seed, stream0 + b, i,
               out + bn * D, labels + bn);
  }
}

// ---- initialisation --------------------------------------------------------------------
// Draw j of run r of data set b uses stream (stream0 + r * Bx + b), block j: a uniform from its
// first two words. Run 0 therefore draws the same numbers whatever n_rep (n_init) is.
inline std::uint64_t init_stream(std::uint64_t stream0, index_t s, index_t Bx, index_t n_rep) {
  return stream0 + static_cast<std::uint64_t>((s % n_rep) * Bx + s / n_rep);
}
inline double init_uniform(std::uint64_t seed, std::uint64_t stream, index_t j) {
  const rng::u32x4 w = rng::block(seed, stream, static_cast<std::uint64_t>(j));
  return rng::uniform_f64(w.v[0], w.v[1]);
}

// K distinct points with positive weight per set (uniformly, partial Fisher-Yates); with
// fewer than K such points, they are repeated in order. idx = -1 for a set with none.
template <class T>
void random_from_data_cpu(const T* W, index_t Bx, index_t n_rep, index_t N, index_t K,
                          std::uint64_t seed, std::uint64_t stream0, std::int64_t* idx) {
  const index_t B = Bx * n_rep;
#pragma omp parallel if (B > 1)
  {
    std::vector<index_t> valid;
#pragma omp for schedule(dynamic, 1)
    for (index_t s = 0; s < B; ++s) {
      const T* w = W + (s / n_rep) * N;
      valid.clear();
      for (index_t n = 0; n < N; ++n)
        if (w[n] > 0) valid.push_back(n);
      const index_t nv = static_cast<index_t>(valid.size());
      for (index_t j = 0; j < K; ++j) {
        if (nv == 0) { idx[s * K + j] = -1; continue; }
        if (j < nv) {
          const double u = init_uniform(seed, init_stream(stream0, s, Bx, n_rep), j);
          index_t r = j + static_cast<index_t>(u * (nv - j));
          r = std::min(r, nv - 1);
          std::swap(valid[j], valid[r]);
          idx[s * K + j] = valid[j];
        } else {
          idx[s * K + j] = valid[j % nv];
        }
      }
    }
  }
}

// k-means++ seeding (weighted D^2 sampling, one candidate per step).
template <class T>
void kmeanspp_cpu(const T* X, const T* W, index_t Bx, index_t n_rep, index_t N, index_t D,
                  index_t K, std::uint64_t seed, std::uint64_t stream0, std::int64_t* idx) {
  const index_t B = Bx * n_rep;
#pragma omp parallel if (B > 1)
  {
    std::vector<double> d2(N);
#pragma omp for schedule(dynamic, 1)
    for (index_t s = 0; s < B; ++s) {
      const T* x = X + (s / n_rep) * N * D;
      const T* w = W + (s / n_rep) * N;
      std::fill(d2.begin(), d2.end(), INFINITY);
      for (index_t j = 0; j < K; ++j) {
        double tot = 0, totw = 0;
        for (index_t n = 0; n < N; ++n) {
          if (!(w[n] > 0)) continue;
          totw += static_cast<double>(w[n]);
          if (j > 0) tot += static_cast<double>(w[n]) * d2[n];
        }
        if (!(totw > 0)) { idx[s * K + j] = -1; continue; }
        const bool by_weight = (j == 0) || !(tot > 0);
        const double u = init_uniform(seed, init_stream(stream0, s, Bx, n_rep), j) * (by_weight ? totw : tot);
        double acc = 0;
        index_t pick = -1;
        for (index_t n = 0; n < N; ++n) {
          if (!(w[n] > 0)) continue;
          acc += static_cast<double>(w[n]) * (by_weight ? 1.0 : d2[n]);
          pick = n;
          if (u < acc) break;
        }
        idx[s * K + j] = pick;
        const T* cj = x + pick * D;
        for (index_t n = 0; n < N; ++n) {
          double e = 0;
          for (index_t d = 0; d < D; ++d) {
            const double t = static_cast<double>(x[n * D + d]) - cj[d];
            e += t * t;
          }
          d2[n] = std::min(d2[n], e);
        }
      }
    }
  }
}

// Lloyd iterations (weighted means; an empty cluster keeps its centre), stopping when no label
// changes. centers: in/out [B, K, D]; labels [B, N] (nearest centre, also for padded points).
template <class T>
void kmeans_cpu(const T* X, const T* W, index_t Bx, index_t n_rep, index_t N, index_t D,
                index_t K, index_t max_iter, T* centers, std::int64_t* labels) {
  const index_t B = Bx * n_rep;
#pragma omp parallel if (B > 1)
  {
    std::vector<double> sum(K * D), cnt(K);
#pragma omp for schedule(dynamic, 1)
    for (index_t s = 0; s < B; ++s) {
      const T* x = X + (s / n_rep) * N * D;
      const T* w = W + (s / n_rep) * N;
      T* c = centers + s * K * D;
      std::int64_t* lab = labels + s * N;
      for (index_t n = 0; n < N; ++n) lab[n] = -1;
      for (index_t it = 0; it <= max_iter; ++it) {
        bool changed = false;
        for (index_t n = 0; n < N; ++n) {
          double best = INFINITY;
          index_t arg = 0;
          for (index_t k = 0; k < K; ++k) {
            double e = 0;
            for (index_t d = 0; d < D; ++d) {
              const double t = static_cast<double>(x[n * D + d]) - c[k * D + d];
              e += t * t;
            }
            if (e < best) { best = e; arg = k; }
          }
          if (lab[n] != arg) { changed = true; lab[n] = arg; }
        }
        if ((!changed && it > 0) || it == max_iter) break;
        std::fill(sum.begin(), sum.end(), 0.0);
        std::fill(cnt.begin(), cnt.end(), 0.0);
        for (index_t n = 0; n < N; ++n) {
          const double wt = static_cast<double>(w[n]);
          if (!(wt > 0)) continue;
          cnt[lab[n]] += wt;
          for (index_t d = 0; d < D; ++d) sum[lab[n] * D + d] += wt * static_cast<double>(x[n * D + d]);
        }
        for (index_t k = 0; k < K; ++k)
          if (cnt[k] > 0)
            for (index_t d = 0; d < D; ++d) c[k * D + d] = static_cast<T>(sum[k * D + d] / cnt[k]);
      }
    }
  }
}
#endif  // !__CUDACC__

}  // namespace pygenmod::gmm
