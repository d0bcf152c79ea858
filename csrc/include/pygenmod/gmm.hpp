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
#include <vector>

#include "pygenmod/common.hpp"
#include "pygenmod/random.hpp"

#if defined(_OPENMP) && !defined(__CUDACC__)
#include <omp.h>
#endif

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__) && \
    !defined(PGM_NO_CLONES)
#define PGM_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define PGM_CLONES
#endif

namespace pygenmod::gmm {

enum CovType : int { FULL = 0, TIED = 1, DIAG = 2, SPHERICAL = 3 };

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
inline void precision_factor_d(const double* L, index_t D, double* Pd) {
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

// ---------------------------------------------------------------------------------------
// CPU side
#if !defined(__CUDACC__)

// Number of point groups of a set: depends on N only (fixed reduction order).
inline index_t n_groups(index_t N) {
  const index_t g = (N + 2047) / 2048;
  return std::max<index_t>(1, std::min<index_t>(g, 64));
}
inline index_t group_begin(index_t N, index_t G, index_t g) { return (N * g) / G; }

inline index_t s2_size(int type, index_t K, index_t D) {
  return type == FULL ? K * D * D : type == TIED ? D * D : K * D;
}
// Statistics block of one set: [Nraw K][S1 K*D][S2 s2_size][ll 1]
inline index_t stats_size(int type, index_t K, index_t D) {
  return K + K * D + s2_size(type, K, D) + 1;
}

inline int max_threads() {
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// Per-iteration constants of one set's current parameters.
template <class T>
struct Prepared {
  std::vector<T> mu;        // K*D means minus the set centre c
  std::vector<double> cst;  // K: log w_k + log det P_k - D/2 log 2pi
  const T* pc = nullptr;
  void build(int type, index_t K, index_t D, const T* weights, const T* means, const T* pc_,
             const double* c) {
    mu.resize(K * D);
    cst.resize(K);
    pc = pc_;
    for (index_t k = 0; k < K; ++k) {
      for (index_t d = 0; d < D; ++d)
        mu[k * D + d] = static_cast<T>(static_cast<double>(means[k * D + d]) - c[d]);
      cst[k] = std::log(static_cast<double>(weights[k])) + log_det_pc(type, pc_ + pc_offset(type, k, D), D) -
               0.5 * D * kLog2Pi;
    }
  }
};

template <class T>
struct ChunkWork {
  static constexpr index_t CH = 64;
  std::vector<T> xc;          // CH*D centred points
  std::vector<double> wv;     // CH point weights
  std::vector<index_t> idx;   // CH point indices
  std::vector<double> r;      // CH*K log-probabilities, then weight * responsibility
  std::vector<T> diff, y;     // 4*D each
  std::vector<double> mahal;  // CH
  void resize(index_t D, index_t K) {
    xc.assign(CH * D, T(0));
    wv.assign(CH, 0.0);
    idx.assign(CH, 0);
    r.assign(CH * K, 0.0);
    diff.assign(4 * D, T(0));
    y.assign(4 * D, T(0));
    mahal.assign(CH, 0.0);
  }
};

// Squared Mahalanobis distances of m centred points (row-major m x D) from one component
// (centred mean mu, upper factor P): y = (x - mu) P as a small GEMM, four points at a time.
template <class T>
PGM_CLONES void mahal_full_block(const T* xc, index_t m, index_t D, const T* mu, const T* P,
                                 T* diff, T* y, double* out) {
  index_t p = 0;
  for (; p + 4 <= m; p += 4) {
    T* __restrict d0 = diff; T* __restrict d1 = diff + D; T* __restrict d2 = diff + 2 * D;
    T* __restrict d3 = diff + 3 * D;
    T* __restrict y0 = y; T* __restrict y1 = y + D; T* __restrict y2 = y + 2 * D;
    T* __restrict y3 = y + 3 * D;
    const T* x0 = xc + p * D;
    for (index_t i = 0; i < D; ++i) {
      d0[i] = x0[i] - mu[i]; d1[i] = x0[D + i] - mu[i];
      d2[i] = x0[2 * D + i] - mu[i]; d3[i] = x0[3 * D + i] - mu[i];
      y0[i] = 0; y1[i] = 0; y2[i] = 0; y3[i] = 0;
    }
    for (index_t i = 0; i < D; ++i) {
      const T a0 = d0[i], a1 = d1[i], a2 = d2[i], a3 = d3[i];
      const T* __restrict row = P + i * D;
      for (index_t j = i; j < D; ++j) {
        const T r = row[j];
        y0[j] += a0 * r; y1[j] += a1 * r; y2[j] += a2 * r; y3[j] += a3 * r;
      }
    }
    T s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (index_t j = 0; j < D; ++j) {
      s0 += y0[j] * y0[j]; s1 += y1[j] * y1[j]; s2 += y2[j] * y2[j]; s3 += y3[j] * y3[j];
    }
    out[p] = s0; out[p + 1] = s1; out[p + 2] = s2; out[p + 3] = s3;
  }
  for (; p < m; ++p) out[p] = mahalanobis2<T>(FULL, xc + p * D, mu, P, D);
}

// S += sum_p a_p x_p x_p^T on the lower triangle (row-major), four points at a time.
template <class T>
PGM_CLONES void syrk_lower_block(const T* xc, const double* a, index_t a_stride, index_t m,
                                 index_t D, double* S) {
  index_t p = 0;
  for (; p + 4 <= m; p += 4) {
    const T* __restrict x0 = xc + p * D; const T* __restrict x1 = x0 + D;
    const T* __restrict x2 = x1 + D; const T* __restrict x3 = x2 + D;
    const double a0 = a[p * a_stride], a1 = a[(p + 1) * a_stride], a2 = a[(p + 2) * a_stride],
                 a3 = a[(p + 3) * a_stride];
    for (index_t i = 0; i < D; ++i) {
      const double t0 = a0 * x0[i], t1 = a1 * x1[i], t2 = a2 * x2[i], t3 = a3 * x3[i];
      double* __restrict row = S + i * D;
      for (index_t j = 0; j <= i; ++j)
        row[j] += t0 * static_cast<double>(x0[j]) + t1 * static_cast<double>(x1[j]) +
                  t2 * static_cast<double>(x2[j]) + t3 * static_cast<double>(x3[j]);
    }
  }
  for (; p < m; ++p) {
    const T* x0 = xc + p * D;
    const double a0 = a[p * a_stride];
    for (index_t i = 0; i < D; ++i) {
      const double t0 = a0 * x0[i];
      double* row = S + i * D;
      for (index_t j = 0; j <= i; ++j) row[j] += t0 * static_cast<double>(x0[j]);
    }
  }
}

// One group of points [n0, n1) of one set: the E-step (or the given responsibilities `resp`,
// N x K) and the sufficient statistics, added into st. Points with weight <= 0 are skipped.
template <class T>
void accumulate_group(int type, const T* X, const T* W, const T* resp, index_t n0, index_t n1,
                      index_t D, index_t K, const double* c, const Prepared<T>& prep, double* st,
                      ChunkWork<T>& w) {
  constexpr index_t CH = ChunkWork<T>::CH;
  double* Nk = st;
  double* S1 = st + K;
  double* S2 = st + K + K * D;
  double* ll = st + K + K * D + s2_size(type, K, D);
  double* r = w.r.data();
  index_t n = n0;
  while (n < n1) {
    index_t m = 0;
    for (; n < n1 && m < CH; ++n) {
      const double wt = static_cast<double>(W[n]);
      if (!(wt > 0)) continue;
      const T* x = X + n * D;
      T* xo = w.xc.data() + m * D;
      for (index_t d = 0; d < D; ++d) xo[d] = static_cast<T>(static_cast<double>(x[d]) - c[d]);
      w.wv[m] = wt;
      w.idx[m] = n;
      ++m;
    }
    if (m == 0) break;
    const T* xc = w.xc.data();
    if (!resp) {
      for (index_t k = 0; k < K; ++k) {
        const T* mu = prep.mu.data() + k * D;
        const T* P = prep.pc + pc_offset(type, k, D);
        if (type == FULL || type == TIED) {
          mahal_full_block(xc, m, D, mu, P, w.diff.data(), w.y.data(), w.mahal.data());
        } else {
          for (index_t p = 0; p < m; ++p) w.mahal[p] = mahalanobis2<T>(type, xc + p * D, mu, P, D);
        }
        for (index_t p = 0; p < m; ++p) r[p * K + k] = prep.cst[k] - 0.5 * w.mahal[p];
      }
      for (index_t p = 0; p < m; ++p) {
        double* rp = r + p * K;
        const double lse = logsumexp(rp, K);
        if (!(lse > -INFINITY) || !std::isfinite(lse)) {
          // Underflow of every component (far outlier in float32): the point goes to the
          // component with the largest log-probability and does not enter the bound.
          index_t best = 0;
          for (index_t k = 1; k < K; ++k) best = rp[k] > rp[best] ? k : best;
          for (index_t k = 0; k < K; ++k) rp[k] = (k == best) ? w.wv[p] : 0.0;
          continue;
        }
        *ll += w.wv[p] * lse;
        for (index_t k = 0; k < K; ++k) rp[k] = w.wv[p] * std::exp(rp[k] - lse);
      }
    } else {
      for (index_t p = 0; p < m; ++p)
        for (index_t k = 0; k < K; ++k)
          r[p * K + k] = w.wv[p] * static_cast<double>(resp[w.idx[p] * K + k]);
    }
    for (index_t p = 0; p < m; ++p)
      for (index_t k = 0; k < K; ++k) Nk[k] += r[p * K + k];
    for (index_t k = 0; k < K; ++k) {
      double* s1 = S1 + k * D;
      for (index_t p = 0; p < m; ++p) {
        const double a = r[p * K + k];
        const T* x = xc + p * D;
        for (index_t d = 0; d < D; ++d) s1[d] += a * static_cast<double>(x[d]);
      }
    }
    if (type == FULL) {
      for (index_t k = 0; k < K; ++k) syrk_lower_block(xc, r + k, K, m, D, S2 + k * D * D);
    } else if (type == TIED) {
      syrk_lower_block(xc, w.wv.data(), 1, m, D, S2);
    } else {
      for (index_t k = 0; k < K; ++k) {
        double* s2 = S2 + k * D;
        for (index_t p = 0; p < m; ++p) {
          const double a = r[p * K + k];
          const T* x = xc + p * D;
          for (index_t d = 0; d < D; ++d) s2[d] += a * static_cast<double>(x[d]) * x[d];
        }
      }
    }
  }
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

// Cholesky of the symmetric matrix C (full storage) into L; on failure, diagonal jitter
// growing tenfold from 1e-10 * scale is added to C until it factors (flag REGULARISED).
inline bool cholesky_jitter(double* C, double* L, index_t D, double scale, std::uint8_t* flag) {
  std::memcpy(L, C, sizeof(double) * D * D);
  if (cholesky(L, D)) return true;
  double jit = 1e-10 * scale;
  for (int t = 0; t < 20; ++t, jit *= 10) {
    std::memcpy(L, C, sizeof(double) * D * D);
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
  std::memcpy(L, C, sizeof(double) * D * D);
  cholesky(L, D);
  *flag |= REGULARISED;
  return false;
}

// Data scale of a set for jitter: mean variance, or 1 when the data has none.
inline double jitter_scale(const double* var_diag, index_t D) {
  double s = 0;
  for (index_t d = 0; d < D; ++d) s += std::isfinite(var_diag[d]) ? std::max(var_diag[d], 0.0) : 0.0;
  s /= std::max<index_t>(D, 1);
  return s > 0 ? s : 1.0;
}

// Neutral parameters for a set with no data: uniform weights, zero means, identity covariances.
template <class T>
void empty_set_params(int type, index_t K, index_t D, T* weights, T* means, T* cov, T* pc,
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
template <class T>
void finalize(int type, const double* st, const double* c, double wsum, index_t K, index_t D,
              double reg, T* weights, T* means, T* cov, T* pc, std::uint8_t* flags,
              std::vector<double>& work) {
  if (!(wsum > 0)) {
    empty_set_params(type, K, D, weights, means, cov, pc, flags);
    return;
  }
  const double* Nr = st;
  const double* S1 = st + K;
  const double* S2 = st + K + K * D;
  work.resize(4 * D * D + 2 * D + K);
  double* C = work.data();
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
  std::vector<double> vdiag(D);
  for (index_t d = 0; d < D; ++d) vdiag[d] = fullish ? tot[d * D + d] : tot[d];
  const double scale = jitter_scale(vdiag.data(), D);
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
      const bool col = flags[k] & COLLAPSED;
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
      const bool col = flags[k] & COLLAPSED;
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

// Per-thread workspace for one set's EM.
template <class T>
struct SetWork {
  ChunkWork<T> cw;
  Prepared<T> prep;
  std::vector<double> stats, part, c, fin;
  void resize(int type, index_t K, index_t D) {
    cw.resize(D, K);
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
#pragma omp parallel
    {
      ChunkWork<T> cw;
      cw.resize(D, K);
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

// Batched EM. Set s (of B = Bx * n_rep) uses data set s / n_rep. Parameters are in/out.
template <class T>
void fit_cpu(int type, const T* X, const T* W, const T* reg, index_t Bx, index_t n_rep, index_t N,
             index_t D, index_t K, index_t max_iter, double tol, T* weights, T* means, T* cov,
             T* pc, T* lower_bound, std::int64_t* n_iter, std::uint8_t* converged,
             std::uint8_t* flags) {
  const index_t B = Bx * n_rep;
  const index_t cs = cov_size(type, K, D);
  const bool by_set = B >= 2 * max_threads() || n_groups(N) == 1 || max_threads() == 1;
  auto one = [&](index_t s, SetWork<T>& sw, bool par, std::vector<double>& parts) {
    const index_t xb = s / n_rep;
    em_set(type, X + xb * N * D, W + xb * N, N, D, K, static_cast<double>(reg[s]), max_iter, tol,
           weights + s * K, means + s * K * D, cov + s * cs, pc + s * cs, lower_bound + s,
           n_iter + s, converged + s, flags + s * K, sw, par, parts);
  };
  if (by_set) {
#pragma omp parallel
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

// M-step from responsibilities resp[B, N, K] (times the point weights).
// Set s of B = Bx * n_rep uses data set s / n_rep and resp[s].
template <class T>
void m_step_cpu(int type, const T* X, const T* W, const T* resp, const T* reg, index_t Bx,
                index_t n_rep, index_t N, index_t D, index_t K, T* weights, T* means, T* cov,
                T* pc, std::uint8_t* flags) {
  const index_t B = Bx * n_rep;
  const index_t cs = cov_size(type, K, D);
  const bool by_set = B >= 2 * max_threads() || n_groups(N) == 1 || max_threads() == 1;
  auto one = [&](index_t s, SetWork<T>& sw, bool par, std::vector<double>& parts) {
    const index_t xb = s / n_rep;
    const double wsum = set_centre(X + xb * N * D, W + xb * N, N, D, sw.c.data());
    set_statistics(type, X + xb * N * D, W + xb * N, resp + s * N * K, N, D, K, sw, par, parts);
    finalize(type, sw.stats.data(), sw.c.data(), wsum, K, D, static_cast<double>(reg[s]),
             weights + s * K, means + s * K * D, cov + s * cs, pc + s * cs, flags + s * K, sw.fin);
  };
  if (by_set) {
#pragma omp parallel
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

// Per point: component log-densities lp[b,n,k] = log N(x | k), responsibilities log_resp and
// the mixture log-density log_norm[b,n].
template <class T>
void e_step_cpu(int type, const T* X, const T* weights, const T* means, const T* pc, index_t B,
                index_t N, index_t D, index_t K, T* lp, T* log_resp, T* log_norm) {
  const index_t cs = cov_size(type, K, D);
#pragma omp parallel
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
#pragma omp parallel for schedule(static)
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
#pragma omp parallel
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
#pragma omp parallel
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
#pragma omp parallel
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
