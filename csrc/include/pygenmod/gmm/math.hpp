// Gaussian mixtures, layer 1: the per-point and per-component math shared by the CPU and
// CUDA launchers (PGM_HD), the covariance-type and flag codes, and the M-step finalize.
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
#include <stdexcept>
#include <vector>

#include "pygenmod/common.hpp"
#include "pygenmod/random.hpp"
#include "pygenmod/vecmath.hpp"

namespace pygenmod::gmm {

enum CovType : int { FULL = 0, TIED = 1, DIAG = 2, SPHERICAL = 3 };

#if !defined(__CUDACC__)
// Argument check shared by the CPU and CUDA bindings.
inline int check_cov_type(int t) {
  if (t < 0 || t > 3) throw std::invalid_argument("cov_type: expected 0 (full), 1 (tied), 2 (diag) or 3 (spherical)");
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
      if (r < c) {
        Pd[c * D + r] = 0;
        continue;
      }
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
PGM_HD void sample_one(int type, const T* weights, const T* means, const T* pc, index_t K, index_t D,
                       std::uint64_t seed, std::uint64_t stream, index_t n, T* x, std::int64_t* label) {
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
    if (u * total < acc) {
      comp = k;
      break;
    }
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
PGM_HD index_t stats_size(int type, index_t K, index_t D) { return K + K * D + s2_size(type, K, D) + 1; }

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
PGM_HD void empty_set_params(int type, index_t K, index_t D, T* weights, T* means, T* cov, T* pc, std::uint8_t* flags) {
  for (index_t k = 0; k < K; ++k) {
    weights[k] = static_cast<T>(1.0 / K);
    flags[k] = EMPTY_SET | COLLAPSED;
  }
  for (index_t i = 0; i < K * D; ++i) means[i] = 0;
  const index_t cs = cov_size(type, K, D);
  if (type == FULL || type == TIED) {
    for (index_t i = 0; i < cs; ++i) {
      cov[i] = 0;
      pc[i] = 0;
    }
    const index_t nm = type == FULL ? K : 1;
    for (index_t q = 0; q < nm; ++q)
      for (index_t d = 0; d < D; ++d) {
        cov[q * D * D + d * D + d] = 1;
        pc[q * D * D + d * D + d] = 1;
      }
  } else {
    for (index_t i = 0; i < cs; ++i) {
      cov[i] = 1;
      pc[i] = 1;
    }
  }
}

// M-step of one set from its statistics (scikit-learn's formulas, in float64, centred at c).
// Collapse policy: a component whose responsibility mass is <= 1e-12 of the set's weight is
// placed at the set mean with the set covariance (+ reg) and keeps its ~0 weight (flag
// COLLAPSED); a covariance that is not positive definite gets diagonal jitter (REGULARISED).
// Workspace: finalize_workspace(K, D) doubles.
PGM_HD index_t finalize_workspace(index_t K, index_t D) { return 4 * D * D + 3 * D + K; }

template <class T>
PGM_HD void finalize(int type, const double* st, const double* c, double wsum, index_t K, index_t D, double reg,
                     T* weights, T* means, T* cov, T* pc, std::uint8_t* flags, double* work) {
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
        if (type == TIED)
          s = S2[i * D + j];
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
      for (index_t i = 0; i < D * D; ++i) {
        ck[i] = static_cast<T>(C[i]);
        pk[i] = static_cast<T>(Pd[i]);
      }
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
    for (index_t i = 0; i < D * D; ++i) {
      cov[i] = static_cast<T>(C[i]);
      pc[i] = static_cast<T>(Pd[i]);
    }
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
void finalize(int type, const double* st, const double* c, double wsum, index_t K, index_t D, double reg, T* weights,
              T* means, T* cov, T* pc, std::uint8_t* flags, std::vector<double>& work) {
  work.resize(finalize_workspace(K, D));
  finalize(type, st, c, wsum, K, D, reg, weights, means, cov, pc, flags, work.data());
}
#endif

}  // namespace pygenmod::gmm
