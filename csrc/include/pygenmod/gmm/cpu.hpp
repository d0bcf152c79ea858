// Gaussian mixtures, layer 3 (CPU only): the blocked launchers, parallel on pygenmod's pool
// (EM fit, E-step, M-step, sampling) over chunks of points, in a fixed reduction order.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "pygenmod/gmm/simd.hpp"
#include "pygenmod/launch_grid.hpp"
#include "pygenmod/interrupt.hpp"
#include "pygenmod/parallel.hpp"

#if !defined(__CUDACC__)
namespace pygenmod::gmm {

// Point groups of a set (n_groups, group_begin): pygenmod/launch_grid.hpp, depend on N only.

// Per-iteration constants of one set's current parameters, laid out for the micro-kernels
// (padded to the W lanes of the entry point that will use them).
template <class T>
struct Prepared {
  index_t Dp = 0, Kp = 0, ld = 0;
  std::vector<T> P;  // full/tied: K x D x Dp upper factors (zero padded)
  std::vector<T> b;  // full/tied: K x Dp, (mu_k - c) P_k
  // float32 evaluates (x - mu) P instead of x P - mu P (no cancellation with large precisions)
  std::vector<T> mu;        // K x ld centred means (zero padded)
  std::vector<T> pd;        // diag/spherical: K x ld precision factors (zero padded)
  std::vector<T> Wd;        // diag/spherical: 2D x Kp, rows [p^2 ; -2 p^2 (mu - c)]
  std::vector<double> cst;  // K: log w_k + log det P_k - D/2 log 2pi (- 1/2 sum p^2 mu^2)
  void build(int type, index_t K, index_t D, const T* weights, const T* means, const T* pc, const double* c,
             index_t W) {
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
  std::vector<T> xt, lp, wv, mx;   // D x CH, K x CH, CH, CH
  std::vector<double> xd, r, acc;  // D x CH (float32 input), K x CH, accumulators
  std::vector<index_t> idx;
  bool products_fit = false;  // unit_products_fit for these lanes
  void resize(index_t D, index_t K, index_t lanes) {
    products_fit = unit_products_fit<T>(K, CH, lanes);
    const index_t na = 1 + D + D * (D + 1) / 2;
    xt.assign(D * CH, T(0));
    lp.assign(K * CH, T(0));
    wv.assign(CH, T(0));
    mx.assign(CH, T(0));
    xd.assign(D * CH, 0.0);
    r.assign(K * CH, 0.0);
    acc.assign((K + 1) * na * 8, 0.0);
    idx.assign(CH, 0);
  }
};

// Gathers up to CH points with positive weight from [n, n1), centred at c, into the
// transposed xt[d][CH] (and their weights / indices); returns their number, advances n.
// Lanes [m, round_up(m, W)) are zero.
template <class T>
PGM_INLINE index_t gather_lanes(const T* X, const T* Wt, index_t& n, index_t n1, index_t D, const double* c, T* xt,
                                T* wv, index_t* idx, index_t CH, index_t W) {
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
PGM_INLINE void accumulate_small_impl(int type, const T* X, const T* Wt, const T* resp, index_t n0, index_t n1,
                                      index_t K, const double* c, const Prepared<T>& prep, double* st,
                                      SmallWork<T>& w) {
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
  const bool fits = w.products_fit;
  index_t n = n0;
  while (n < n1) {
    const index_t m = gather_lanes(X, Wt, n, n1, D, c, xt, wv, w.idx.data(), CH, VW);
    if (m == 0) break;
    const index_t mp = round_up(m, VW);
    if (!resp) {
      V bad = {}, prod = vsplat<V>(T(1));
      V* pprod = unit_chunk(wv, m, fits) ? &prod : nullptr;
      for (index_t p = 0; p < mp; p += VW) {
        V x[DD];
        for (index_t i = 0; i < D; ++i) x[i] = load<V>(xt + i * CH + p);
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
          store(lp + k * CH + p, static_cast<T>(prep.cst[k]) - T(0.5) * ssq);
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
          widen<VB>(load<V>(xt + i * CH + p), lo, hi);
          store(xd + i * CH + p, lo);
          store(xd + i * CH + p + WD, hi);
        }
      xs = xd;
    }
    for (index_t k = 0; k < K; ++k) {
      VD a[NA];
      double* ak = acc + k * NA * 8;
      for (index_t q = 0; q < NA; ++q) a[q] = load<VD>(ak + q * 8);
      const double* rk = r + k * CH;
      if (type == FULL) {
        for (index_t p = 0; p < mp; p += WD) {
          const VD rr = load<VD>(rk + p);
          VD xv[DD];
          for (index_t i = 0; i < D; ++i) xv[i] = load<VD>(xs + i * CH + p);
          a[0] += rr;
          for (index_t i = 0; i < D; ++i) {
            const VD rx = rr * xv[i];
            a[1 + i] += rx;
            for (index_t j = 0; j <= i; ++j) a[1 + D + i * (i + 1) / 2 + j] += rx * xv[j];
          }
        }
      } else if (type == TIED) {
        for (index_t p = 0; p < mp; p += WD) {
          const VD rr = load<VD>(rk + p);
          a[0] += rr;
          for (index_t i = 0; i < D; ++i) a[1 + i] += rr * load<VD>(xs + i * CH + p);
        }
      } else {
        for (index_t p = 0; p < mp; p += WD) {
          const VD rr = load<VD>(rk + p);
          a[0] += rr;
          for (index_t i = 0; i < D; ++i) {
            const VD xi = load<VD>(xs + i * CH + p);
            const VD rx = rr * xi;
            a[1 + i] += rx;
            a[1 + D + i] += rx * xi;
          }
        }
      }
      for (index_t q = 0; q < NA; ++q) store(ak + q * 8, a[q]);
    }
    if (type == TIED) {  // S2 = sum_n w x x^T (slot K)
      VD a[NA];
      double* ak = acc + K * NA * 8;
      for (index_t q = 0; q < NA; ++q) a[q] = load<VD>(ak + q * 8);
      for (index_t p = 0; p < mp; p += WD) {
        VD ww;
        if constexpr (sizeof(T) == 8) {
          ww = load<VD>(wv + p);
        } else {
          ww = __builtin_convertvector(load<typename simd<float, VB>::half>(wv + p), VD);
        }
        VD xv[DD];
        for (index_t i = 0; i < D; ++i) xv[i] = load<VD>(xs + i * CH + p);
        for (index_t i = 0; i < D; ++i) {
          const VD wx = ww * xv[i];
          for (index_t j = 0; j <= i; ++j) a[1 + D + i * (i + 1) / 2 + j] += wx * xv[j];
        }
      }
      for (index_t q = 0; q < NA; ++q) store(ak + q * 8, a[q]);
    }
  }
  // Lane reductions (fixed order).
  for (index_t k = 0; k < K; ++k) {
    const double* ak = acc + k * NA * 8;
    Nk[k] += hsum<double>(load<VD>(ak));
    for (index_t i = 0; i < D; ++i) {
      S1[k * D + i] += hsum<double>(load<VD>(ak + (1 + i) * 8));
      if (type == FULL)
        for (index_t j = 0; j <= i; ++j)
          S2[k * D * D + i * D + j] += hsum<double>(load<VD>(ak + (1 + D + i * (i + 1) / 2 + j) * 8));
      else if (type != TIED)
        S2[k * D + i] += hsum<double>(load<VD>(ak + (1 + D + i) * 8));
    }
  }
  if (type == TIED) {
    const double* ak = acc + K * NA * 8;
    for (index_t i = 0; i < D; ++i)
      for (index_t j = 0; j <= i; ++j) S2[i * D + j] += hsum<double>(load<VD>(ak + (1 + D + i * (i + 1) / 2 + j) * 8));
  }
  *ll += hsum<double>(llacc);
}

// Statistics of m points (large-D layout): Nk, S1 (K x D), S2 (lower triangles) from the
// weighted responsibilities r[k * CH + p] and the centred points xc (m x ldx); z holds
// [x, x^2] rows (diag/spherical). All buffers' padding entries are zero.
template <class A, int VB>
PGM_INLINE void large_stats(int type, index_t m, index_t D, index_t K, const A* xc, index_t ldx, const A* z,
                            index_t ldz, const A* r, index_t CH, A* ax, A* C, const double* wv, double* Nk, double* S1,
                            double* S2) {
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
        for (index_t d = 0; d < ldx; d += simd<A, VB>::W) store(o + d, a * load<VA>(x + d));
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
  std::vector<T> xt;                     // D x CH transposed centred points (E-step)
  std::vector<T> dt;                     // D x CH: float32 x - mu_k
  std::vector<T> lp;                     // K x CH log-probabilities
  std::vector<T> wv;                     // CH point weights
  std::vector<T> mx;                     // CH largest log-probabilities
  std::vector<double> wvd;               // CH point weights (float64)
  std::vector<index_t> idx;              // CH point indices
  std::vector<double> r;                 // K x CH weight * responsibility
  std::vector<double> xcd, zd, axd, Cd;  // float64 point-major copies for the statistics
  SmallWork<T> small;                    // the small-D path's buffers
  bool products_fit = false;             // unit_products_fit for these lanes
  void resize(int type, index_t D, index_t K, index_t lanes) {
    W = lanes;
    if (D <= kSmallDMax) {
      small.resize(D, K, lanes);
      return;
    }
    products_fit = unit_products_fit<T>(K, CH, lanes);
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
PGM_INLINE void accumulate_large_impl(int type, const T* X, const T* Wt, const T* resp, index_t n0, index_t n1,
                                      index_t D, index_t K, const double* c, const Prepared<T>& prep, double* st,
                                      ChunkWork<T>& w) {
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
  const bool fits = w.products_fit;
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
              for (index_t p = 0; p < mp; p += VW) store(dt + i * CH + p, load<V>(xt + i * CH + p) - mi);
            }
            src = dt;
            b = nullptr;
          }
          for (index_t p = 0; p < mp; p += 2 * VW) {
            V s0, s1;
            mahal_lanes<T, VB>(src, CH, p, D, P, prep.Dp, b, s0, s1);
            store(lp + k * CH + p, ck - T(0.5) * s0);
            store(lp + k * CH + p + VW, ck - T(0.5) * s1);
          }
        } else {
          for (index_t p = 0; p < mp; p += VW) {
            V ssq = {};
            if constexpr (sizeof(T) == 4) {
              for (index_t i = 0; i < D; ++i) {
                const V y = (load<V>(xt + i * CH + p) - prep.mu[k * ld + i]) * prep.pd[k * ld + i];
                ssq += y * y;
              }
            } else {
              const T* Wd = prep.Wd.data();
              for (index_t i = 0; i < D; ++i) {
                const V x = load<V>(xt + i * CH + p);
                ssq += x * (x * Wd[i * prep.Kp + k] + Wd[(D + i) * prep.Kp + k]);
              }
            }
            store(lp + k * CH + p, ck - T(0.5) * ssq);
          }
        }
      }
      V bad = {}, prod = vsplat<V>(T(1));
      V* pprod = unit_chunk(wv, m, fits) ? &prod : nullptr;
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
        for (index_t d = 0; d < D; ++d) {
          zp[d] = xo[d];
          zp[D + d] = xo[d] * xo[d];
        }
      }
      wvd[p] = static_cast<double>(wv[p]);
    }
    large_stats<double, VB>(type, m, D, K, xcd, ldx, zd, ldz, r, CH, w.axd.data(), w.Cd.data(), wvd, Nk, S1, S2);
  }
  *ll += hsum<double>(llacc);
}

template <class T, int VB>
PGM_INLINE void accumulate_group_impl(int type, const T* X, const T* W, const T* resp, index_t n0, index_t n1,
                                      index_t D, index_t K, const double* c, const Prepared<T>& prep, double* st,
                                      ChunkWork<T>& w) {
  // Macro-generated cases: clang-format does not settle on one layout for them.
  // clang-format off
  switch (D) {
#define PGM_SMALL_D(d) \
  case d: return accumulate_small_impl<T, VB, d>(type, X, W, resp, n0, n1, K, c, prep, st, w.small);
    PGM_SMALL_D(1) PGM_SMALL_D(2) PGM_SMALL_D(3) PGM_SMALL_D(4)
    PGM_SMALL_D(5) PGM_SMALL_D(6) PGM_SMALL_D(7) PGM_SMALL_D(8)
#undef PGM_SMALL_D
    default: return accumulate_large_impl<T, VB>(type, X, W, resp, n0, n1, D, K, c, prep, st, w);
  }
  // clang-format on
}

template <class T>
void accumulate_group_base(int type, const T* X, const T* W, const T* resp, index_t n0, index_t n1, index_t D,
                           index_t K, const double* c, const Prepared<T>& prep, double* st, ChunkWork<T>& w) {
  accumulate_group_impl<T, 16>(type, X, W, resp, n0, n1, D, K, c, prep, st, w);
}

#if defined(__x86_64__) && defined(__GNUC__)
#define PGM_HAVE_X86_PATHS 1
template <class T>
__attribute__((target("avx2,fma"))) void accumulate_group_avx2(int type, const T* X, const T* W, const T* resp,
                                                               index_t n0, index_t n1, index_t D, index_t K,
                                                               const double* c, const Prepared<T>& prep, double* st,
                                                               ChunkWork<T>& w) {
  accumulate_group_impl<T, 32>(type, X, W, resp, n0, n1, D, K, c, prep, st, w);
}
template <class T>
__attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma"))) void accumulate_group_avx512(
    int type, const T* X, const T* W, const T* resp, index_t n0, index_t n1, index_t D, index_t K, const double* c,
    const Prepared<T>& prep, double* st, ChunkWork<T>& w) {
  accumulate_group_impl<T, 64>(type, X, W, resp, n0, n1, D, K, c, prep, st, w);
}
#endif

// Entry point for the ISA chosen at the start of the launcher (w.W lanes: see isa_lanes).
template <class T>
void accumulate_group(int type, const T* X, const T* W, const T* resp, index_t n0, index_t n1, index_t D, index_t K,
                      const double* c, const Prepared<T>& prep, double* st, ChunkWork<T>& w, int isa) {
#ifdef PGM_HAVE_X86_PATHS
  if (isa == ISA_AVX512) return accumulate_group_avx512<T>(type, X, W, resp, n0, n1, D, K, c, prep, st, w);
  if (isa == ISA_AVX2) return accumulate_group_avx2<T>(type, X, W, resp, n0, n1, D, K, c, prep, st, w);
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
void set_statistics(int type, const T* X, const T* W, const T* resp, index_t N, index_t D, index_t K, SetWork<T>& sw,
                    bool par, std::vector<double>& parts) {
  const index_t G = n_groups(N);
  const index_t ss = stats_size(type, K, D);
  std::fill(sw.stats.begin(), sw.stats.end(), 0.0);
  if (par && G > 1) {
    parts.assign(G * ss, 0.0);
    // one group per chunk; each thread's ChunkWork is made when it runs its first group
    auto cws = per_slot([&] {
      ChunkWork<T> cw;
      cw.resize(type, D, K, isa_lanes<T>(sw.isa));
      return cw;
    });
    parallel_for_slots(G, 1, true, cws, [&](index_t g, ChunkWork<T>& cw) {
      accumulate_group(type, X, W, resp, group_begin(N, G, g), group_begin(N, G, g + 1), D, K, sw.c.data(), sw.prep,
                       parts.data() + g * ss, cw, sw.isa);
    });
    for (index_t g = 0; g < G; ++g)
      for (index_t i = 0; i < ss; ++i) sw.stats[i] += parts[g * ss + i];
  } else {
    for (index_t g = 0; g < G; ++g) {
      std::fill(sw.part.begin(), sw.part.end(), 0.0);
      accumulate_group(type, X, W, resp, group_begin(N, G, g), group_begin(N, G, g + 1), D, K, sw.c.data(), sw.prep,
                       sw.part.data(), sw.cw, sw.isa);
      for (index_t i = 0; i < ss; ++i) sw.stats[i] += sw.part[i];
    }
  }
}

// EM on one set: up to max_iter iterations, stopping when |change of the bound| < tol.
template <class T>
void em_set(int type, const T* X, const T* W, index_t N, index_t D, index_t K, double reg, index_t max_iter, double tol,
            T* weights, T* means, T* cov, T* pc, T* lower_bound, std::int64_t* n_iter, std::uint8_t* converged,
            std::uint8_t* flags, SetWork<T>& sw, bool par, std::vector<double>& parts, Stop& stop) {
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
    finalize(type, sw.stats.data(), sw.c.data(), wsum, K, D, reg, weights, means, cov, pc, flags, sw.fin);
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

// f(s, work) for every set s in [0, B), one set per chunk, over threads when B > 1; `work` is
// made by make() for each set by the thread that runs it. (Not one workspace per thread for the
// whole call: the EM loop reallocates inside it, and a workspace that one thread made and
// another used and the caller freed made 512 fits 10% slower, call after call, in glibc's
// per-thread arenas.) After a stop no further set starts (the caller keeps polling the Stop).
template <class Make, class F>
void sets_in_parallel(index_t B, Stop& stop, Make&& make, F&& f) {
  parallel_chunks(
      B, 1, B > 1,
      [&](index_t s0, index_t s1, int) {
        auto w = make();
        for (index_t s = s0; s < s1; ++s) f(s, w);
      },
      stop);
}

// Runs one(s, work, par, parts) for every set: parallel over sets when there are enough of
// them (or a set has a single point group), else sets in turn, each parallel over its groups.
// After a stop (Ctrl-C, see interrupt.hpp) no further set starts.
template <class T, class F>
void for_each_set(int type, index_t B, index_t N, index_t D, index_t K, Stop& stop, F&& one) {
  const int nt = max_threads();
  const bool by_set = B >= 2 * nt || n_groups(N) == 1 || nt == 1;
  const int isa = active_isa();
  if (by_set) {
    struct Work {
      SetWork<T> sw;
      std::vector<double> parts;
    };
    sets_in_parallel(
        B, stop,
        [&] {
          Work w;
          w.sw.resize(type, K, D, isa);
          return w;
        },
        [&](index_t s, Work& w) { one(s, w.sw, false, w.parts); });
  } else {
    SetWork<T> sw;
    sw.resize(type, K, D, isa);
    std::vector<double> parts;
    for (index_t s = 0; s < B && !stop.stopped(); ++s) one(s, sw, true, parts);
  }
}

// Batched EM. Set s (of B = Bx * n_rep) uses data set s / n_rep. Parameters are in/out.
template <class T>
void fit_cpu(int type, const T* X, const T* W, const T* reg, index_t Bx, index_t n_rep, index_t N, index_t D, index_t K,
             index_t max_iter, double tol, T* weights, T* means, T* cov, T* pc, T* lower_bound, std::int64_t* n_iter,
             std::uint8_t* converged, std::uint8_t* flags, Stop& stop = Stop::never()) {
  const index_t B = Bx * n_rep;
  const index_t cs = cov_size(type, K, D);
  auto one = [&](index_t s, SetWork<T>& sw, bool par, std::vector<double>& parts) {
    const index_t xb = s / n_rep;
    em_set(type, X + xb * N * D, W + xb * N, N, D, K, static_cast<double>(reg[s]), max_iter, tol, weights + s * K,
           means + s * K * D, cov + s * cs, pc + s * cs, lower_bound + s, n_iter + s, converged + s, flags + s * K, sw,
           par, parts, stop);
  };
  for_each_set<T>(type, B, N, D, K, stop, one);
}

// M-step from responsibilities resp[B, N, K] (times the point weights).
// Set s of B = Bx * n_rep uses data set s / n_rep and resp[s].
template <class T>
void m_step_cpu(int type, const T* X, const T* W, const T* resp, const T* reg, index_t Bx, index_t n_rep, index_t N,
                index_t D, index_t K, T* weights, T* means, T* cov, T* pc, std::uint8_t* flags) {
  const index_t B = Bx * n_rep;
  const index_t cs = cov_size(type, K, D);
  auto one = [&](index_t s, SetWork<T>& sw, bool par, std::vector<double>& parts) {
    const index_t xb = s / n_rep;
    const double wsum = set_centre(X + xb * N * D, W + xb * N, N, D, sw.c.data());
    set_statistics(type, X + xb * N * D, W + xb * N, resp + s * N * K, N, D, K, sw, par, parts);
    finalize(type, sw.stats.data(), sw.c.data(), wsum, K, D, static_cast<double>(reg[s]), weights + s * K,
             means + s * K * D, cov + s * cs, pc + s * cs, flags + s * K, sw.fin);
  };
  Stop never;  // one pass: not worth interrupting
  for_each_set<T>(type, B, N, D, K, never, one);
}

// Per point: component log-densities lp[b,n,k] = log N(x | k), responsibilities log_resp and
// the mixture log-density log_norm[b,n].
template <class T>
void e_step_cpu(int type, const T* X, const T* weights, const T* means, const T* pc, index_t B, index_t N, index_t D,
                index_t K, T* lp, T* log_resp, T* log_norm) {
  const index_t cs = cov_size(type, K, D);
  // per component, once: log det(pc) - D/2 log(2 pi) and log w (D + 1 logs that a point would
  // otherwise repeat; the sums below are evaluated in the same order, so the bits are the same)
  std::vector<double> norm(static_cast<std::size_t>(B * K)), log_w(static_cast<std::size_t>(B * K));
  for (index_t bk = 0; bk < B * K; ++bk) {
    const index_t b = bk / K, k = bk % K;
    norm[bk] = log_det_pc(type, pc + b * cs + pc_offset(type, k, D), D) - 0.5 * D * kLog2Pi;
    log_w[bk] = std::log(static_cast<double>(weights[bk]));
  }
  parallel_chunks(B * N, share_chunk(B * N), B * N * K * D > 32768, [&](index_t bn0, index_t bn1, int) {
    std::vector<double> row(K);
    for (index_t bn = bn0; bn < bn1; ++bn) {
      const index_t b = bn / N;
      const T* x = X + bn * D;
      for (index_t k = 0; k < K; ++k) {
        const T* P = pc + b * cs + pc_offset(type, k, D);
        const double l =
            norm[b * K + k] - 0.5 * static_cast<double>(mahalanobis2<T>(type, x, means + (b * K + k) * D, P, D));
        lp[bn * K + k] = static_cast<T>(l);
        row[k] = l + log_w[b * K + k];
      }
      const double lse = logsumexp(row.data(), K);
      log_norm[bn] = static_cast<T>(lse);
      for (index_t k = 0; k < K; ++k)
        log_resp[bn * K + k] = static_cast<T>(std::isfinite(lse) ? row[k] - lse : (k == 0 ? 0.0 : -INFINITY));
    }
  });
}

template <class T>
void sample_cpu(int type, const T* weights, const T* means, const T* pc, index_t B, index_t K, index_t D, index_t n,
                std::uint64_t seed, std::uint64_t stream0, T* out, std::int64_t* labels) {
  const index_t cs = cov_size(type, K, D);
  parallel_for(B * n, share_chunk(B * n), B * n * D > 32768, [&](index_t bn) {
    const index_t b = bn / n, i = bn % n;
    sample_one(type, weights + b * K, means + b * K * D, pc + b * cs, K, D, seed, stream0 + b, i, out + bn * D,
               labels + bn);
  });
}

}  // namespace pygenmod::gmm

#endif  // !__CUDACC__
