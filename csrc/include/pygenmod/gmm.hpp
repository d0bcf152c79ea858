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
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "pygenmod/common.hpp"
#include "pygenmod/cpu_features.hpp"
#include "pygenmod/interrupt.hpp"
#include "pygenmod/random.hpp"
#include "pygenmod/vecmath.hpp"

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
// GCC/Clang vector extensions of VB bytes (16: 2 doubles / 4 floats, 32: 4 / 8, 64: 8 / 16).
// The bodies are always-inlined into three entry points per kernel (see accumulate_group),
// chosen at run time: AVX-512 (F/DQ/BW/VL, VB = 64), AVX2+FMA (VB = 32) and the baseline ISA
// (VB = 16: SSE2 on x86-64, NEON on aarch64; wider vectors there are split by the compiler,
// and GCC scalarises their compares and selects). No -march flag is needed. The vector width only changes the order of some additions (rounding-level
// differences between the paths); on one machine results are deterministic and independent of
// the thread count.
#define PGM_INLINE inline __attribute__((always_inline))

typedef double pgm_v2d __attribute__((vector_size(16)));
typedef double pgm_v4d __attribute__((vector_size(32)));
typedef double pgm_v8d __attribute__((vector_size(64)));
typedef float pgm_v2f __attribute__((vector_size(8)));
typedef float pgm_v4f __attribute__((vector_size(16)));
typedef float pgm_v8f __attribute__((vector_size(32)));
typedef float pgm_v16f __attribute__((vector_size(64)));

template <class T, int VB> struct simd;
template <> struct simd<double, 16> { typedef pgm_v2d v; static constexpr index_t W = 2; };
template <> struct simd<float, 16> { typedef pgm_v4f v; typedef pgm_v2f half; static constexpr index_t W = 4; };
template <> struct simd<double, 32> { typedef pgm_v4d v; static constexpr index_t W = 4; };
template <> struct simd<double, 64> { typedef pgm_v8d v; static constexpr index_t W = 8; };
template <> struct simd<float, 32> { typedef pgm_v8f v; typedef pgm_v4f half; static constexpr index_t W = 8; };
template <> struct simd<float, 64> { typedef pgm_v16f v; typedef pgm_v8f half; static constexpr index_t W = 16; };

// Instruction sets of the kernel entry points (pygenmod/cpu_features.hpp: the detector and
// the cap that tests use); read once per launcher call.
using cpu::Isa;
using cpu::ISA_BASE;
using cpu::ISA_AVX2;
using cpu::ISA_AVX512;
inline int active_isa() { return cpu::isa(); }
// Lanes of T in the vectors of an ISA's entry point.
template <class T>
inline index_t isa_lanes(int isa) {
  return (isa == ISA_AVX512 ? 64 : isa == ISA_AVX2 ? 32 : 16) / static_cast<index_t>(sizeof(T));
}

inline index_t round_up(index_t n, index_t w) { return (n + w - 1) / w * w; }

// Unaligned loads/stores through memcpy (template arguments drop alignment attributes).
template <class V, class T> PGM_INLINE V vload(const T* p) {
  V x;
  __builtin_memcpy(&x, p, sizeof(V));
  return x;
}
template <class V, class T> PGM_INLINE void vstore(T* p, const V& x) { __builtin_memcpy(p, &x, sizeof(V)); }
template <class V, class T> PGM_INLINE V vsplat(T s) { V x = {}; return x + s; }
template <class T, class V> PGM_INLINE T hsum(const V& x) {
  T s = 0;
  for (index_t i = 0; i < static_cast<index_t>(sizeof(V) / sizeof(T)); ++i) s += x[i];
  return s;
}
template <class V> PGM_INLINE V vmax(const V& a, const V& b) { return a > b ? a : b; }

// Float lanes widened to double lanes: lo/hi halves of v.
template <int VB>
PGM_INLINE void widen(const typename simd<float, VB>::v& v, typename simd<double, VB>::v& lo,
                      typename simd<double, VB>::v& hi) {
  using H = typename simd<float, VB>::half;
  using VD = typename simd<double, VB>::v;
  H a, b;
  __builtin_memcpy(&a, &v, sizeof(H));
  __builtin_memcpy(&b, reinterpret_cast<const char*>(&v) + sizeof(H), sizeof(H));
  lo = __builtin_convertvector(a, VD);
  hi = __builtin_convertvector(b, VD);
}
// Store T lanes as doubles.
template <class T, int VB>
PGM_INLINE void store_f64(double* dst, const typename simd<T, VB>::v& v) {
  if constexpr (sizeof(T) == 8) {
    vstore(dst, v);
  } else {
    typename simd<double, VB>::v lo, hi;
    widen<VB>(v, lo, hi);
    vstore(dst, lo);
    vstore(dst + simd<double, VB>::W, hi);
  }
}

// C[i][j] = sum_{n<m} A[n*lda + i*sa] * B[n*ldb + j] for i < I and j < Jp (Jp a multiple of the
// vector width; B's padding columns must be finite). lower: only column vectors that touch
// j <= i are computed (the rest of C is left unchanged). Register tile: 4 rows x 2 vectors.
// (The sum over n runs in order for every entry: the result does not depend on the width.)
template <class T, int VB>
PGM_INLINE void gemm_atb(const T* A, index_t lda, index_t sa, const T* B, index_t ldb, index_t m,
                         index_t I, index_t Jp, T* C, index_t ldc, bool lower) {
  using V = typename simd<T, VB>::v;
  constexpr index_t W = simd<T, VB>::W;
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
          const T* a = A + n * lda + i * sa;
          const T a0 = a[0], a1 = a[sa], a2 = a[2 * sa], a3 = a[3 * sa];
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
      if (j < jend) {  // one vector left: 4 x 1 tile, even and odd n apart (8 FMA chains)
        V c0 = {}, c1 = {}, c2 = {}, c3 = {}, d0 = {}, d1 = {}, d2 = {}, d3 = {};
        index_t n = 0;
        for (; n + 2 <= m; n += 2) {
          const V b0 = vload<V>(B + n * ldb + j), b1 = vload<V>(B + (n + 1) * ldb + j);
          const T* a = A + n * lda + i * sa;
          const T* e = a + lda;
          c0 += a[0] * b0; c1 += a[sa] * b0; c2 += a[2 * sa] * b0; c3 += a[3 * sa] * b0;
          d0 += e[0] * b1; d1 += e[sa] * b1; d2 += e[2 * sa] * b1; d3 += e[3 * sa] * b1;
        }
        if (n < m) {
          const V b0 = vload<V>(B + n * ldb + j);
          const T* a = A + n * lda + i * sa;
          c0 += a[0] * b0; c1 += a[sa] * b0; c2 += a[2 * sa] * b0; c3 += a[3 * sa] * b0;
        }
        c0 += d0; c1 += d1; c2 += d2; c3 += d3;
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
          const T a = A[n * lda + (i + r) * sa];
          c0 += a * vload<V>(B + n * ldb + jj);
          c1 += a * vload<V>(B + n * ldb + jj + W);
        }
        vstore(C + (i + r) * ldc + jj, c0);
        vstore(C + (i + r) * ldc + jj + W, c1);
      }
      for (; jj < jend; jj += W) {
        V c0 = {};
        for (index_t n = 0; n < m; ++n) c0 += A[n * lda + (i + r) * sa] * vload<V>(B + n * ldb + jj);
        vstore(C + (i + r) * ldc + jj, c0);
      }
    }
  }
}

// Squared Mahalanobis distances of one lane block of points, transposed layout (dims in rows
// of stride CH, points in lanes): out = sum_j (sum_{i<=j} x_i P[i][j] - b_j)^2 with P upper
// triangular (row stride ldp, zero below the diagonal) and b (nullptr: 0). Two lane blocks
// and four columns at a time; x rows are read from L1.
template <class T, int VB>
PGM_INLINE void mahal_lanes(const T* xt, index_t CH, index_t p, index_t D, const T* P, index_t ldp,
                            const T* b, typename simd<T, VB>::v& out0, typename simd<T, VB>::v& out1) {
  using V = typename simd<T, VB>::v;
  constexpr index_t W = simd<T, VB>::W;
  V s0 = {}, s1 = {};
  index_t j = 0;
  for (; j + 4 <= D; j += 4) {
    V y00, y01, y02, y03, y10, y11, y12, y13;
    if (b) {
      y00 = y10 = vsplat<V>(-b[j]); y01 = y11 = vsplat<V>(-b[j + 1]);
      y02 = y12 = vsplat<V>(-b[j + 2]); y03 = y13 = vsplat<V>(-b[j + 3]);
    } else {
      y00 = y01 = y02 = y03 = y10 = y11 = y12 = y13 = V{};
    }
    for (index_t i = 0; i < j + 4; ++i) {
      const V x0 = vload<V>(xt + i * CH + p), x1 = vload<V>(xt + i * CH + p + W);
      const T* pr = P + i * ldp + j;
      const T q0 = pr[0], q1 = pr[1], q2 = pr[2], q3 = pr[3];
      y00 += x0 * q0; y01 += x0 * q1; y02 += x0 * q2; y03 += x0 * q3;
      y10 += x1 * q0; y11 += x1 * q1; y12 += x1 * q2; y13 += x1 * q3;
    }
    s0 += (y00 * y00 + y01 * y01) + (y02 * y02 + y03 * y03);
    s1 += (y10 * y10 + y11 * y11) + (y12 * y12 + y13 * y13);
  }
  for (; j < D; ++j) {
    V y0 = b ? vsplat<V>(-b[j]) : V{}, y1 = y0;
    for (index_t i = 0; i <= j; ++i) {
      const T q = P[i * ldp + j];
      y0 += vload<V>(xt + i * CH + p) * q;
      y1 += vload<V>(xt + i * CH + p + W) * q;
    }
    s0 += y0 * y0;
    s1 += y1 * y1;
  }
  out0 = s0;
  out1 = s1;
}

// Responsibilities of one lane block (points p .. p + W) from the log-probabilities lp[k][CH]
// (T; overwritten by exp(lp - max)): r[k][CH] (double) = point weight * responsibility, and
// llacc (double lanes) += weight * log p(x). Branch-free: lanes whose largest log-probability
// is not finite (every component underflowed, e.g. a far float32 outlier) leave NaN in r and
// in `bad`, and their max in mxb; resp_fixup then gives them to component 0 (they do not
// enter the bound).
// prod (chunks whose weights are all 1 or 0): the log of the mixture densities' scale is not
// taken per point, the lanes' product of them (*prod, padding lanes excluded) is, once per
// chunk (chunk_ll); each lane multiplies at most CH / W factors in [1, K].
template <class T, int VB>
PGM_INLINE void resp_block(T* lp, double* r, T* mxb, index_t K, index_t CH, index_t p, const T* wv,
                           typename simd<double, VB>::v& llacc, typename simd<T, VB>::v& bad,
                           typename simd<T, VB>::v* prod) {
  using V = typename simd<T, VB>::v;
  using VD = typename simd<double, VB>::v;
  V mx = vload<V>(lp + p);
  for (index_t k = 1; k < K; ++k) mx = vmax(mx, vload<V>(lp + k * CH + p));
  V s = {};
  for (index_t k = 0; k < K; ++k) {
    const V e = vm::exp_nonpos(vload<V>(lp + k * CH + p) - mx);
    vstore(lp + k * CH + p, e);
    s += e;
  }
  const V fm = mx - mx;  // 0, or NaN for +-inf and NaN
  bad += fm;
  vstore(mxb + p, mx);
  const auto fin = fm == 0;
  const V sf = fin ? s : vsplat<V>(T(1));  // s >= 1 where finite
  const V wvv = vload<V>(wv + p);
  V inv, term;
  if (prod) {
    *prod *= wvv > 0 ? sf : vsplat<V>(T(1));
    inv = T(1) / sf;
    term = fin ? mx : V{};
  } else {
    const V lg = vm::log_ge1(sf, &inv);
    term = fin ? mx + lg : V{};
  }
  const V f = wvv * inv;
  if constexpr (sizeof(T) == 8) {
    llacc += wvv * term;
  } else {
    VD t0, t1, w0, w1;
    widen<VB>(term, t0, t1);
    widen<VB>(wvv, w0, w1);
    llacc += w0 * t0;
    llacc += w1 * t1;
  }
  // padding lanes (weight 0) store 0 even where their e is NaN (a padding lane that every
  // component underflows: resp_fixup repairs only the chunk's real points)
  const auto live = wvv > 0;
  for (index_t k = 0; k < K; ++k) store_f64<T, VB>(r + k * CH + p, live ? vload<V>(lp + k * CH + p) * f : V{});
}

// Adds the log of the lanes' products of resp_block to llacc.
template <class T, int VB>
PGM_INLINE void chunk_ll(const typename simd<T, VB>::v& prod, typename simd<double, VB>::v& llacc) {
  const typename simd<T, VB>::v lg = vm::log_ge1(prod);
  if constexpr (sizeof(T) == 8) {
    llacc += lg;
  } else {
    typename simd<double, VB>::v a, b;
    widen<VB>(lg, a, b);
    llacc += a + b;
  }
}

// True when every weight of the chunk is 1 (padding lanes 0) and a lane's product of CH / W
// factors in [1, K] cannot overflow.
template <class T>
PGM_INLINE bool unit_chunk(const T* wv, index_t m, index_t K, index_t CH, index_t W) {
  const double lim = sizeof(T) == 8 ? 1e300 : 1e37;
  if (std::pow(static_cast<double>(K), static_cast<double>(CH / W)) > lim) return false;
  int other = 0;  // (an int reduction: vectorises, a bool one does not)
  for (index_t p = 0; p < m; ++p) other |= wv[p] != T(1);
  return other == 0;
}

// r[k][p] = weight * the caller's responsibility of point idx[p] (the M-step from given
// responsibilities); lanes m .. mp (padding) get 0.
template <class T>
PGM_INLINE void given_resp(double* r, const T* wv, const T* resp, const index_t* idx, index_t K, index_t CH,
                           index_t m, index_t mp) {
  for (index_t k = 0; k < K; ++k)
    for (index_t p = 0; p < mp; ++p)
      r[k * CH + p] = p < m ? static_cast<double>(wv[p]) * static_cast<double>(resp[idx[p] * K + k]) : 0.0;
}

// After the lane blocks of a chunk of m points: lanes flagged in `bad` go to component 0.
template <class T, int VB>
PGM_INLINE void resp_fixup(double* r, const T* mxb, index_t K, index_t CH, index_t m, const T* wv,
                           const typename simd<T, VB>::v& bad) {
  bool ok = true;
  for (index_t q = 0; q < simd<T, VB>::W; ++q) ok = ok && bad[q] == 0;
  if (ok) return;
  for (index_t p = 0; p < m; ++p)
    if (!(mxb[p] - mxb[p] == 0))
      for (index_t k = 0; k < K; ++k) r[k * CH + p] = k == 0 ? static_cast<double>(wv[p]) : 0.0;
}

// Per-iteration constants of one set's current parameters, laid out for the micro-kernels
// (padded to the W lanes of the entry point that will use them).
template <class T>
struct Prepared {
  index_t Dp = 0, Kp = 0, ld = 0;
  std::vector<T> P;         // full/tied: K x D x Dp upper factors (zero padded)
  std::vector<T> b;         // full/tied: K x Dp, (mu_k - c) P_k
  // float32 evaluates (x - mu) P instead of x P - mu P (no cancellation with large precisions)
  std::vector<T> mu;        // K x ld centred means (zero padded)
  std::vector<T> pd;        // diag/spherical: K x ld precision factors (zero padded)
  std::vector<T> Wd;        // diag/spherical: 2D x Kp, rows [p^2 ; -2 p^2 (mu - c)]
  std::vector<double> cst;  // K: log w_k + log det P_k - D/2 log 2pi (- 1/2 sum p^2 mu^2)
  void build(int type, index_t K, index_t D, const T* weights, const T* means, const T* pc,
             const double* c, index_t W) {
    cst.assign(K, 0.0);
    ld = round_up(D, W);
    mu.assign(K * ld, T(0));
    pd.assign(K * ld, T(0));
    for (index_t k = 0; k < K; ++k)
      for (index_t d = 0; d < D; ++d) {
        mu[k * ld + d] = static_cast<T>(static_cast<double>(means[k * D + d]) - c[d]);
        if (type == DIAG) pd[k * ld + d] = pc[k * D + d];
        if (type == SPHERICAL) pd[k * ld + d] = pc[k];
      }
    for (index_t k = 0; k < K; ++k) {
      // log(w_k det P_k) as one log of the product when it stays well inside the normal range
      // (small D: one log per component instead of D + 1), else as a sum of logs
      const T* pk = pc + pc_offset(type, k, D);
      double prod = static_cast<double>(weights[k]);
      if (type == SPHERICAL) {
        for (index_t d = 0; d < D; ++d) prod *= static_cast<double>(pk[0]);
      } else {
        const index_t step = (type == DIAG) ? 1 : D + 1;
        for (index_t d = 0; d < D; ++d) prod *= static_cast<double>(pk[d * step]);
      }
      const double lwd = (prod > 1e-280 && prod < 1e280)
                             ? std::log(prod)
                             : std::log(static_cast<double>(weights[k])) + log_det_pc(type, pk, D);
      cst[k] = lwd - 0.5 * D * kLog2Pi;
    }
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
constexpr index_t kChunk = 128;  // points per chunk (a multiple of every lane count)

// Small-D path (D <= 8, D a template argument): points in vector lanes. The chunk is stored
// transposed (xt[d][p]) so the E-step and the statistics are vertical vector operations over
// points with the dimensions and the statistics' accumulators in registers; the statistics
// are summed lane-wise in float64 over the whole group and reduced across lanes at the end.
template <class T>
struct SmallWork {
  static constexpr index_t CH = kChunk;
  std::vector<T> xt, lp, wv, mx;      // D x CH, K x CH, CH, CH
  std::vector<double> xd, r, acc;     // D x CH (float32 input), K x CH, accumulators
  std::vector<index_t> idx;
  void resize(index_t D, index_t K) {
    const index_t na = 1 + D + D * (D + 1) / 2;
    xt.assign(D * CH, T(0)); lp.assign(K * CH, T(0)); wv.assign(CH, T(0)); mx.assign(CH, T(0));
    xd.assign(D * CH, 0.0); r.assign(K * CH, 0.0); acc.assign((K + 1) * na * 8, 0.0);
    idx.assign(CH, 0);
  }
};

// Gathers up to CH points with positive weight from [n, n1), centred at c, into the
// transposed xt[d][CH] (and their weights / indices); returns their number, advances n.
// Lanes [m, round_up(m, W)) are zero.
template <class T>
PGM_INLINE index_t gather_lanes(const T* X, const T* Wt, index_t& n, index_t n1, index_t D,
                                const double* c, T* xt, T* wv, index_t* idx, index_t CH, index_t W) {
  index_t m = 0;
  const index_t cnt = std::min(CH, n1 - n);
  int pad = 0;  // (an int reduction: vectorises, a bool one does not)
  for (index_t p = 0; p < cnt; ++p) pad |= !(Wt[n + p] > 0);
  if (pad == 0) {  // no padding points: plain transposition
    if (D <= kSmallDMax) {
      for (index_t d = 0; d < D; ++d) {
        const double cd = c[d];
        for (index_t p = 0; p < cnt; ++p) xt[d * CH + p] = static_cast<T>(static_cast<double>(X[(n + p) * D + d]) - cd);
      }
    } else {
      for (index_t p = 0; p < cnt; ++p)
        for (index_t d = 0; d < D; ++d) xt[d * CH + p] = static_cast<T>(static_cast<double>(X[(n + p) * D + d]) - c[d]);
    }
    for (index_t p = 0; p < cnt; ++p) {
      wv[p] = Wt[n + p];
      idx[p] = n + p;
    }
    m = cnt;
    n += cnt;
  }
  for (; n < n1 && m < CH; ++n) {
    const T wgt = Wt[n];
    if (!(wgt > 0)) continue;
    const T* x = X + n * D;
    for (index_t d = 0; d < D; ++d) xt[d * CH + m] = static_cast<T>(static_cast<double>(x[d]) - c[d]);
    wv[m] = wgt;
    idx[m] = n;
    ++m;
  }
  for (index_t p = m; p < round_up(m, W); ++p) {
    for (index_t d = 0; d < D; ++d) xt[d * CH + p] = T(0);
    wv[p] = T(0);
  }
  return m;
}

template <class T, int VB, int DD>
PGM_INLINE void accumulate_small_impl(int type, const T* X, const T* Wt, const T* resp, index_t n0,
                                      index_t n1, index_t K, const double* c,
                                      const Prepared<T>& prep, double* st, SmallWork<T>& w) {
  using V = typename simd<T, VB>::v;
  using VD = typename simd<double, VB>::v;
  constexpr index_t VW = simd<T, VB>::W;
  constexpr index_t WD = simd<double, VB>::W;
  constexpr index_t CH = SmallWork<T>::CH;
  constexpr index_t D = DD;
  constexpr index_t NA = 1 + DD + DD * (DD + 1) / 2;  // Nk, S1[D], S2 (lower triangle or diagonal)
  double* Nk = st;
  double* S1 = st + K;
  double* S2 = st + K + K * D;
  double* ll = st + K + K * D + s2_size(type, K, D);
  const bool fullish = (type == FULL || type == TIED);
  T* xt = w.xt.data();
  T* lp = w.lp.data();
  T* wv = w.wv.data();
  double* r = w.r.data();
  double* acc = w.acc.data();
  std::fill(acc, acc + (K + 1) * NA * 8, 0.0);
  VD llacc = {};
  const index_t ld = prep.ld;
  index_t n = n0;
  while (n < n1) {
    const index_t m = gather_lanes(X, Wt, n, n1, D, c, xt, wv, w.idx.data(), CH, VW);
    if (m == 0) break;
    const index_t mp = round_up(m, VW);
    if (!resp) {
      V bad = {}, prod = vsplat<V>(T(1));
      V* pprod = unit_chunk(wv, m, K, CH, VW) ? &prod : nullptr;
      for (index_t p = 0; p < mp; p += VW) {
        V x[DD];
        for (index_t i = 0; i < D; ++i) x[i] = vload<V>(xt + i * CH + p);
        for (index_t k = 0; k < K; ++k) {
          V ssq = {};
          if (fullish) {
            const T* P = prep.P.data() + k * D * prep.Dp;
            if constexpr (sizeof(T) == 4) {  // float32: (x - mu) P, see Prepared
              V dv[DD];
              for (index_t i = 0; i < D; ++i) dv[i] = x[i] - prep.mu[k * ld + i];
              for (index_t j = 0; j < D; ++j) {
                V y = dv[0] * P[j];
                for (index_t i = 1; i <= j; ++i) y += dv[i] * P[i * prep.Dp + j];
                ssq += y * y;
              }
            } else {
              const T* b = prep.b.data() + k * prep.Dp;
              for (index_t j = 0; j < D; ++j) {
                V y = x[0] * P[j] - b[j];
                for (index_t i = 1; i <= j; ++i) y += x[i] * P[i * prep.Dp + j];
                ssq += y * y;
              }
            }
          } else if constexpr (sizeof(T) == 4) {
            for (index_t i = 0; i < D; ++i) {
              const V y = (x[i] - prep.mu[k * ld + i]) * prep.pd[k * ld + i];
              ssq += y * y;
            }
          } else {
            const T* Wd = prep.Wd.data();
            for (index_t i = 0; i < D; ++i) ssq += x[i] * (x[i] * Wd[i * prep.Kp + k] + Wd[(D + i) * prep.Kp + k]);
          }
          vstore(lp + k * CH + p, static_cast<T>(prep.cst[k]) - T(0.5) * ssq);
        }
        resp_block<T, VB>(lp, r, w.mx.data(), K, CH, p, wv, llacc, bad, pprod);
      }
      if (pprod) chunk_ll<T, VB>(prod, llacc);
      resp_fixup<T, VB>(r, w.mx.data(), K, CH, m, wv, bad);
    } else {
      given_resp(r, wv, resp, w.idx.data(), K, CH, m, mp);
    }
    // Statistics in float64 lanes (float32 points are widened: products exact).
    const double* xs;
    if constexpr (sizeof(T) == 8) {
      xs = xt;
    } else {
      double* xd = w.xd.data();
      for (index_t i = 0; i < D; ++i)
        for (index_t p = 0; p < mp; p += VW) {
          VD lo, hi;
          widen<VB>(vload<V>(xt + i * CH + p), lo, hi);
          vstore(xd + i * CH + p, lo);
          vstore(xd + i * CH + p + WD, hi);
        }
      xs = xd;
    }
    for (index_t k = 0; k < K; ++k) {
      VD a[NA];
      double* ak = acc + k * NA * 8;
      for (index_t q = 0; q < NA; ++q) a[q] = vload<VD>(ak + q * 8);
      const double* rk = r + k * CH;
      if (type == FULL) {
        for (index_t p = 0; p < mp; p += WD) {
          const VD rr = vload<VD>(rk + p);
          VD xv[DD];
          for (index_t i = 0; i < D; ++i) xv[i] = vload<VD>(xs + i * CH + p);
          a[0] += rr;
          for (index_t i = 0; i < D; ++i) {
            const VD rx = rr * xv[i];
            a[1 + i] += rx;
            for (index_t j = 0; j <= i; ++j) a[1 + D + i * (i + 1) / 2 + j] += rx * xv[j];
          }
        }
      } else if (type == TIED) {
        for (index_t p = 0; p < mp; p += WD) {
          const VD rr = vload<VD>(rk + p);
          a[0] += rr;
          for (index_t i = 0; i < D; ++i) a[1 + i] += rr * vload<VD>(xs + i * CH + p);
        }
      } else {
        for (index_t p = 0; p < mp; p += WD) {
          const VD rr = vload<VD>(rk + p);
          a[0] += rr;
          for (index_t i = 0; i < D; ++i) {
            const VD xi = vload<VD>(xs + i * CH + p);
            const VD rx = rr * xi;
            a[1 + i] += rx;
            a[1 + D + i] += rx * xi;
          }
        }
      }
      for (index_t q = 0; q < NA; ++q) vstore(ak + q * 8, a[q]);
    }
    if (type == TIED) {  // S2 = sum_n w x x^T (slot K)
      VD a[NA];
      double* ak = acc + K * NA * 8;
      for (index_t q = 0; q < NA; ++q) a[q] = vload<VD>(ak + q * 8);
      for (index_t p = 0; p < mp; p += WD) {
        VD ww;
        if constexpr (sizeof(T) == 8) {
          ww = vload<VD>(wv + p);
        } else {
          ww = __builtin_convertvector(vload<typename simd<float, VB>::half>(wv + p), VD);
        }
        VD xv[DD];
        for (index_t i = 0; i < D; ++i) xv[i] = vload<VD>(xs + i * CH + p);
        for (index_t i = 0; i < D; ++i) {
          const VD wx = ww * xv[i];
          for (index_t j = 0; j <= i; ++j) a[1 + D + i * (i + 1) / 2 + j] += wx * xv[j];
        }
      }
      for (index_t q = 0; q < NA; ++q) vstore(ak + q * 8, a[q]);
    }
  }
  // Lane reductions (fixed order).
  for (index_t k = 0; k < K; ++k) {
    const double* ak = acc + k * NA * 8;
    Nk[k] += hsum<double>(vload<VD>(ak));
    for (index_t i = 0; i < D; ++i) {
      S1[k * D + i] += hsum<double>(vload<VD>(ak + (1 + i) * 8));
      if (type == FULL)
        for (index_t j = 0; j <= i; ++j)
          S2[k * D * D + i * D + j] += hsum<double>(vload<VD>(ak + (1 + D + i * (i + 1) / 2 + j) * 8));
      else if (type != TIED)
        S2[k * D + i] += hsum<double>(vload<VD>(ak + (1 + D + i) * 8));
    }
  }
  if (type == TIED) {
    const double* ak = acc + K * NA * 8;
    for (index_t i = 0; i < D; ++i)
      for (index_t j = 0; j <= i; ++j)
        S2[i * D + j] += hsum<double>(vload<VD>(ak + (1 + D + i * (i + 1) / 2 + j) * 8));
  }
  *ll += hsum<double>(llacc);
}

// Statistics of m points (large-D layout): Nk, S1 (K x D), S2 (lower triangles) from the
// weighted responsibilities r[k * CH + p] and the centred points xc (m x ldx); z holds
// [x, x^2] rows (diag/spherical). All buffers' padding entries are zero.
template <class A, int VB>
PGM_INLINE void large_stats(int type, index_t m, index_t D, index_t K, const A* xc, index_t ldx,
                            const A* z, index_t ldz, const A* r, index_t CH, A* ax, A* C,
                            const double* wv, double* Nk, double* S1, double* S2) {
  for (index_t k = 0; k < K; ++k) {
    double s = 0;
    for (index_t p = 0; p < m; ++p) s += r[k * CH + p];
    Nk[k] += s;
  }
  if (type == FULL || type == TIED) {
    // S1 (K x D) = r^T xc
    gemm_atb<A, VB>(r, 1, CH, xc, ldx, m, K, ldx, C, ldx, false);
    for (index_t k = 0; k < K; ++k)
      for (index_t d = 0; d < D; ++d) S1[k * D + d] += C[k * ldx + d];
    const index_t nmat = (type == FULL) ? K : 1;
    for (index_t q = 0; q < nmat; ++q) {
      using VA = typename simd<A, VB>::v;
      for (index_t p = 0; p < m; ++p) {  // (padding columns: 0 * 0)
        const A a = (type == FULL) ? r[q * CH + p] : static_cast<A>(wv[p]);
        const A* x = xc + p * ldx;
        A* o = ax + p * ldx;
        for (index_t d = 0; d < ldx; d += simd<A, VB>::W) vstore(o + d, a * vload<VA>(x + d));
      }
      gemm_atb<A, VB>(ax, ldx, 1, xc, ldx, m, D, ldx, C, ldx, true);
      double* s2 = S2 + q * D * D;
      for (index_t i = 0; i < D; ++i)
        for (index_t j = 0; j <= i; ++j) s2[i * D + j] += C[i * ldx + j];
    }
  } else {
    // [S1 | S2] (K x 2D) = r^T [x, x^2]
    gemm_atb<A, VB>(r, 1, CH, z, ldz, m, K, ldz, C, ldz, false);
    for (index_t k = 0; k < K; ++k)
      for (index_t d = 0; d < D; ++d) {
        S1[k * D + d] += C[k * ldz + d];
        S2[k * D + d] += C[k * ldz + D + d];
      }
  }
}

template <class T>
struct ChunkWork {
  static constexpr index_t CH = kChunk;
  index_t ldx = 0, ldz = 0, W = 0;
  std::vector<T> xt;          // D x CH transposed centred points (E-step)
  std::vector<T> dt;          // D x CH: float32 x - mu_k
  std::vector<T> lp;          // K x CH log-probabilities
  std::vector<T> wv;          // CH point weights
  std::vector<T> mx;          // CH largest log-probabilities
  std::vector<double> wvd;    // CH point weights (float64)
  std::vector<index_t> idx;   // CH point indices
  std::vector<double> r;      // K x CH weight * responsibility
  std::vector<double> xcd, zd, axd, Cd;  // float64 point-major copies for the statistics
  SmallWork<T> small;         // the small-D path's buffers
  void resize(int type, index_t D, index_t K, index_t lanes) {
    W = lanes;
    if (D <= kSmallDMax) {
      small.resize(D, K);
      return;
    }
    xt.assign(D * CH, T(0));
    dt.assign(D * CH, T(0));
    lp.assign(K * CH, T(0));
    wv.assign(CH, T(0));
    mx.assign(CH, T(0));
    wvd.assign(CH, 0.0);
    idx.assign(CH, 0);
    r.assign(K * CH, 0.0);
    const index_t Wd = lanes * static_cast<index_t>(sizeof(T)) / 8;
    ldx = round_up(D, Wd);
    ldz = round_up(2 * D, Wd);
    xcd.assign(CH * ldx, 0.0);
    zd.assign(CH * ldz, 0.0);
    axd.assign(CH * ldx, 0.0);
    Cd.assign(std::max(round_up(K, 4), ldx) * std::max(ldz, ldx), 0.0);
    (void)type;
  }
};

// One group of points [n0, n1) of one set: the E-step (or the given responsibilities `resp`,
// N x K) and the sufficient statistics, added into st. Points with weight <= 0 are skipped.
// E-step: points in lanes (transposed chunk); statistics: float64 GEMMs on point-major rows.
template <class T, int VB>
PGM_INLINE void accumulate_large_impl(int type, const T* X, const T* Wt, const T* resp, index_t n0,
                                      index_t n1, index_t D, index_t K, const double* c,
                                      const Prepared<T>& prep, double* st, ChunkWork<T>& w) {
  using V = typename simd<T, VB>::v;
  using VD = typename simd<double, VB>::v;
  constexpr index_t VW = simd<T, VB>::W;
  constexpr index_t CH = ChunkWork<T>::CH;
  double* Nk = st;
  double* S1 = st + K;
  double* S2 = st + K + K * D;
  double* ll = st + K + K * D + s2_size(type, K, D);
  double* r = w.r.data();
  const index_t ldx = w.ldx, ldz = w.ldz, ld = prep.ld;
  T* xt = w.xt.data();
  T* dt = w.dt.data();
  T* lp = w.lp.data();
  T* wv = w.wv.data();
  const bool fullish = (type == FULL || type == TIED);
  VD llacc = {};
  index_t n = n0;
  while (n < n1) {
    const index_t m = gather_lanes(X, Wt, n, n1, D, c, xt, wv, w.idx.data(), CH, 2 * VW);
    if (m == 0) break;
    const index_t mp = round_up(m, 2 * VW);
    if (!resp) {
      for (index_t k = 0; k < K; ++k) {
        const T ck = static_cast<T>(prep.cst[k]);
        if (fullish) {
          const T* P = prep.P.data() + k * D * prep.Dp;
          const T* src = xt;
          const T* b = prep.b.data() + k * prep.Dp;
          if constexpr (sizeof(T) == 4) {  // float32: (x - mu) P, see Prepared
            for (index_t i = 0; i < D; ++i) {
              const T mi = prep.mu[k * ld + i];
              for (index_t p = 0; p < mp; p += VW) vstore(dt + i * CH + p, vload<V>(xt + i * CH + p) - mi);
            }
            src = dt;
            b = nullptr;
          }
          for (index_t p = 0; p < mp; p += 2 * VW) {
            V s0, s1;
            mahal_lanes<T, VB>(src, CH, p, D, P, prep.Dp, b, s0, s1);
            vstore(lp + k * CH + p, ck - T(0.5) * s0);
            vstore(lp + k * CH + p + VW, ck - T(0.5) * s1);
          }
        } else {
          for (index_t p = 0; p < mp; p += VW) {
            V ssq = {};
            if constexpr (sizeof(T) == 4) {
              for (index_t i = 0; i < D; ++i) {
                const V y = (vload<V>(xt + i * CH + p) - prep.mu[k * ld + i]) * prep.pd[k * ld + i];
                ssq += y * y;
              }
            } else {
              const T* Wd = prep.Wd.data();
              for (index_t i = 0; i < D; ++i) {
                const V x = vload<V>(xt + i * CH + p);
                ssq += x * (x * Wd[i * prep.Kp + k] + Wd[(D + i) * prep.Kp + k]);
              }
            }
            vstore(lp + k * CH + p, ck - T(0.5) * ssq);
          }
        }
      }
      V bad = {}, prod = vsplat<V>(T(1));
      V* pprod = unit_chunk(wv, m, K, CH, VW) ? &prod : nullptr;
      for (index_t p = 0; p < mp; p += VW) resp_block<T, VB>(lp, r, w.mx.data(), K, CH, p, wv, llacc, bad, pprod);
      if (pprod) chunk_ll<T, VB>(prod, llacc);
      resp_fixup<T, VB>(r, w.mx.data(), K, CH, m, wv, bad);
    } else {
      given_resp(r, wv, resp, w.idx.data(), K, CH, m, mp);
    }
    // statistics, always in float64 (float32 products are exact there, and the centred second
    // moments of near-singular components need the precision): point-major copies
    double* xcd = w.xcd.data();
    double* zd = w.zd.data();
    double* wvd = w.wvd.data();
    for (index_t p = 0; p < m; ++p) {
      double* xo = xcd + p * ldx;
      for (index_t d = 0; d < D; ++d) xo[d] = static_cast<double>(xt[d * CH + p]);
      if (!fullish) {
        double* zp = zd + p * ldz;
        for (index_t d = 0; d < D; ++d) { zp[d] = xo[d]; zp[D + d] = xo[d] * xo[d]; }
      }
      wvd[p] = static_cast<double>(wv[p]);
    }
    large_stats<double, VB>(type, m, D, K, xcd, ldx, zd, ldz, r, CH, w.axd.data(), w.Cd.data(), wvd,
                            Nk, S1, S2);
  }
  *ll += hsum<double>(llacc);
}

template <class T, int VB>
PGM_INLINE void accumulate_group_impl(int type, const T* X, const T* W, const T* resp, index_t n0,
                                      index_t n1, index_t D, index_t K, const double* c,
                                      const Prepared<T>& prep, double* st, ChunkWork<T>& w) {
  switch (D) {
#define PGM_SMALL_D(d) \
  case d: return accumulate_small_impl<T, VB, d>(type, X, W, resp, n0, n1, K, c, prep, st, w.small);
    PGM_SMALL_D(1) PGM_SMALL_D(2) PGM_SMALL_D(3) PGM_SMALL_D(4)
    PGM_SMALL_D(5) PGM_SMALL_D(6) PGM_SMALL_D(7) PGM_SMALL_D(8)
#undef PGM_SMALL_D
    default:
      return accumulate_large_impl<T, VB>(type, X, W, resp, n0, n1, D, K, c, prep, st, w);
  }
}

template <class T>
void accumulate_group_base(int type, const T* X, const T* W, const T* resp, index_t n0, index_t n1,
                           index_t D, index_t K, const double* c, const Prepared<T>& prep,
                           double* st, ChunkWork<T>& w) {
  accumulate_group_impl<T, 16>(type, X, W, resp, n0, n1, D, K, c, prep, st, w);
}

#if defined(__x86_64__) && defined(__GNUC__)
#define PGM_HAVE_X86_PATHS 1
template <class T>
__attribute__((target("avx2,fma"))) void accumulate_group_avx2(
    int type, const T* X, const T* W, const T* resp, index_t n0, index_t n1, index_t D, index_t K,
    const double* c, const Prepared<T>& prep, double* st, ChunkWork<T>& w) {
  accumulate_group_impl<T, 32>(type, X, W, resp, n0, n1, D, K, c, prep, st, w);
}
template <class T>
__attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma"))) void accumulate_group_avx512(
    int type, const T* X, const T* W, const T* resp, index_t n0, index_t n1, index_t D, index_t K,
    const double* c, const Prepared<T>& prep, double* st, ChunkWork<T>& w) {
  accumulate_group_impl<T, 64>(type, X, W, resp, n0, n1, D, K, c, prep, st, w);
}
#endif

// Entry point for the ISA chosen at the start of the launcher (w.W lanes: see isa_lanes).
template <class T>
void accumulate_group(int type, const T* X, const T* W, const T* resp, index_t n0, index_t n1,
                      index_t D, index_t K, const double* c, const Prepared<T>& prep, double* st,
                      ChunkWork<T>& w, int isa) {
#ifdef PGM_HAVE_X86_PATHS
  if (isa == ISA_AVX512)
    return accumulate_group_avx512<T>(type, X, W, resp, n0, n1, D, K, c, prep, st, w);
  if (isa == ISA_AVX2)
    return accumulate_group_avx2<T>(type, X, W, resp, n0, n1, D, K, c, prep, st, w);
#endif
  (void)isa;
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
  int isa = ISA_BASE;
  void resize(int type, index_t K, index_t D, int isa_) {
    isa = isa_;
    cw.resize(type, D, K, isa_lanes<T>(isa));
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
      cw.resize(type, D, K, isa_lanes<T>(sw.isa));
#pragma omp for schedule(dynamic, 1)
      for (index_t g = 0; g < G; ++g)
        accumulate_group(type, X, W, resp, group_begin(N, G, g), group_begin(N, G, g + 1), D, K,
                         sw.c.data(), sw.prep, parts.data() + g * ss, cw, sw.isa);
    }
    for (index_t g = 0; g < G; ++g)
      for (index_t i = 0; i < ss; ++i) sw.stats[i] += parts[g * ss + i];
  } else {
    for (index_t g = 0; g < G; ++g) {
      std::fill(sw.part.begin(), sw.part.end(), 0.0);
      accumulate_group(type, X, W, resp, group_begin(N, G, g), group_begin(N, G, g + 1), D, K,
                       sw.c.data(), sw.prep, sw.part.data(), sw.cw, sw.isa);
      for (index_t i = 0; i < ss; ++i) sw.stats[i] += sw.part[i];
    }
  }
}

// EM on one set: up to max_iter iterations, stopping when |change of the bound| < tol.
template <class T>
void em_set(int type, const T* X, const T* W, index_t N, index_t D, index_t K, double reg,
            index_t max_iter, double tol, T* weights, T* means, T* cov, T* pc, T* lower_bound,
            std::int64_t* n_iter, std::uint8_t* converged, std::uint8_t* flags, SetWork<T>& sw,
            bool par, std::vector<double>& parts, Stop& stop) {
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
    sw.prep.build(type, K, D, weights, means, pc, sw.c.data(), isa_lanes<T>(sw.isa));
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
    if (stop.poll(static_cast<double>(N) * K * D * (D + 1))) return;  // interrupted: discarded
  }
  *lower_bound = static_cast<T>(lb);
}

// Runs one(s, work, par, parts) for every set: parallel over sets when there are enough of
// them (or a set has a single point group), else sets in turn, each parallel over its groups.
// After a stop (Ctrl-C, see interrupt.hpp) no further set starts.
template <class T, class F>
void for_each_set(int type, index_t B, index_t N, index_t D, index_t K, Stop& stop, F&& one) {
  const bool by_set = B >= 2 * max_threads() || n_groups(N) == 1 || max_threads() == 1;
  const int isa = active_isa();
  if (by_set) {
    ItemQueue q(B, stop);
#pragma omp parallel if (B > 1)
    {
      SetWork<T> sw;
      sw.resize(type, K, D, isa);
      std::vector<double> parts;
      for (std::int64_t s; q.next(s); q.done()) one(s, sw, false, parts);
      q.drain();
    }
  } else {
    SetWork<T> sw;
    sw.resize(type, K, D, isa);
    std::vector<double> parts;
    for (index_t s = 0; s < B && !stop.stopped(); ++s) one(s, sw, true, parts);
  }
}

// Batched EM. Set s (of B = Bx * n_rep) uses data set s / n_rep. Parameters are in/out.
template <class T>
void fit_cpu(int type, const T* X, const T* W, const T* reg, index_t Bx, index_t n_rep, index_t N,
             index_t D, index_t K, index_t max_iter, double tol, T* weights, T* means, T* cov,
             T* pc, T* lower_bound, std::int64_t* n_iter, std::uint8_t* converged,
             std::uint8_t* flags, Stop& stop = Stop::never()) {
  const index_t B = Bx * n_rep;
  const index_t cs = cov_size(type, K, D);
  auto one = [&](index_t s, SetWork<T>& sw, bool par, std::vector<double>& parts) {
    const index_t xb = s / n_rep;
    em_set(type, X + xb * N * D, W + xb * N, N, D, K, static_cast<double>(reg[s]), max_iter, tol,
           weights + s * K, means + s * K * D, cov + s * cs, pc + s * cs, lower_bound + s,
           n_iter + s, converged + s, flags + s * K, sw, par, parts, stop);
  };
  for_each_set<T>(type, B, N, D, K, stop, one);
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
  Stop never;  // one pass: not worth interrupting
  for_each_set<T>(type, B, N, D, K, never, one);
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
// Draw j of run r of data set b uses stream (stream0 + (r << 32) + b), block j: a uniform from
// its first two words. A set's draws depend neither on the batch size nor on its neighbours
// (a chunk starting at set g passes stream0 + g), and run 0 draws the same numbers whatever
// n_rep (n_init) is.
inline std::uint64_t init_stream(std::uint64_t stream0, index_t s, index_t n_rep) {
  return stream0 + (static_cast<std::uint64_t>(s % n_rep) << 32) + static_cast<std::uint64_t>(s / n_rep);
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
          const double u = init_uniform(seed, init_stream(stream0, s, n_rep), j);
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
        const double u = init_uniform(seed, init_stream(stream0, s, n_rep), j) * (by_weight ? totw : tot);
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
