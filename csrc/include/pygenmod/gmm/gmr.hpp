// Gaussian mixture regression on the CPU, float64 throughout (pygenmod/_gmr.py validates,
// dispatches and keeps the conditioning of a fitted GMR for its queries).
//
// Conditioning (independent of x), per mixture b and component k of a joint covariance S over
// input dims ia (I of them) and output dims oa (O):
//   S_ii = V diag(lam) V^T, lam clipped below at 1e-12 x its largest (a pseudo-inverse for a
//          near-singular block);  rs = 1 / sqrt(lam);  A = S_oi S_ii^+
//   C    = S_oo - A S_io, symmetrised, with negative eigenvalues clipped to 0 (PSD)
//   logc = log w - sum(log lam) / 2 - I log(2 pi) / 2
// Queries, for each mixture b, query q and component k, with d = x - mu_i[k]:
//   log h_k  = logc[k] - |diag(rs[k]) V[k]^T d|^2 / 2             (log w_k N(x | mu_i, S_ii))
//   m_k      = mu_o[k] + A[k] d                                   (the component's conditional mean)
//   h        = softmax_k(log h)  (uniform 1/K if every log h is -inf or the sum vanishes)
//   mean     = sum_k h_k m_k
//   cov      = sum_k h_k (C[k] + (m_k - mean)(m_k - mean)^T)   (the lower triangle, mirrored)
// Shapes: x (B, Q, I); mu_i, rs (B, K, I); mu_o (B, K, O); logc (B, K); V (B, K, I, I) (columns:
// eigenvectors of S_ii); A (B, K, O, I); C (B, K, O, O); out h (B, Q, K), m (B, Q, K, O),
// mean (B, Q, O), cov (B, Q, O, O).
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#include "pygenmod/common.hpp"
#include "pygenmod/parallel.hpp"
#include "pygenmod/sym_eig.hpp"

namespace pygenmod::gmm {

// Queries, and components to condition, in parallel when there is enough work (in the units each
// launcher counts; measured: bench/results/gmm.md, GMR threads).
constexpr index_t GMR_PAR_MIN_WORK = 1 << 14;
constexpr index_t GMR_CONDITION_PAR_MIN_WORK = 1 << 19;

struct GmrDims {
  index_t B, Q, K, I, O;
};

// One (mixture, component) of the conditioning; scratch holds 2 I^2 + O I + 2 O^2 + O + I doubles.
inline void gmr_condition_one(index_t D, index_t I, index_t O, const double* S, const double* mu, double w,
                              const std::int64_t* ia, const std::int64_t* oa, double* mu_i, double* mu_o, double* logc,
                              double* V, double* rs, double* A, double* C, double* scratch) {
  double *sii = scratch, *sinv = sii + I * I, *soi = sinv + I * I, *cm = soi + O * I, *vc = cm + O * O,
         *lc = vc + O * O, *lam = lc + O;
  for (index_t i = 0; i < I; ++i) {
    mu_i[i] = mu[ia[i]];
    for (index_t j = 0; j < I; ++j) sii[i * I + j] = 0.5 * (S[ia[i] * D + ia[j]] + S[ia[j] * D + ia[i]]);
  }
  for (index_t o = 0; o < O; ++o) {
    mu_o[o] = mu[oa[o]];
    for (index_t i = 0; i < I; ++i) soi[o * I + i] = S[oa[o] * D + ia[i]];
  }
  linalg::sym_eig(I, sii, rs, V);                   // rs holds the eigenvalues until the end
  double top = std::numeric_limits<double>::min();  // NumPy's finfo.tiny
  for (index_t i = 0; i < I; ++i) top = rs[i] > top ? rs[i] : top;
  double logdet = 0;
  for (index_t i = 0; i < I; ++i) {
    lam[i] = rs[i] > 1e-12 * top ? rs[i] : 1e-12 * top;
    logdet += std::log(lam[i]);
  }
  for (index_t i = 0; i < I; ++i)  // S_ii^+ = V diag(1 / lam) V^T
    for (index_t j = 0; j < I; ++j) {
      double s = 0;
      for (index_t l = 0; l < I; ++l) s += V[i * I + l] / lam[l] * V[j * I + l];
      sinv[i * I + j] = s;
    }
  for (index_t o = 0; o < O; ++o)
    for (index_t i = 0; i < I; ++i) {
      double s = 0;
      for (index_t l = 0; l < I; ++l) s += soi[o * I + l] * sinv[l * I + i];
      A[o * I + i] = s;
    }
  for (index_t o = 0; o < O; ++o)  // S_oo - A S_io, then symmetrised
    for (index_t j = 0; j < O; ++j) {
      double s = 0;
      for (index_t i = 0; i < I; ++i) s += A[o * I + i] * soi[j * I + i];
      cm[o * O + j] = S[oa[o] * D + oa[j]] - s;
    }
  for (index_t o = 0; o < O; ++o)
    for (index_t j = 0; j < o; ++j) cm[o * O + j] = cm[j * O + o] = 0.5 * (cm[o * O + j] + cm[j * O + o]);
  linalg::sym_eig(O, cm, lc, vc);
  for (index_t o = 0; o < O; ++o)
    for (index_t j = 0; j < O; ++j) {
      double s = 0;
      for (index_t l = 0; l < O; ++l) s += vc[o * O + l] * (lc[l] > 0 ? lc[l] : 0.0) * vc[j * O + l];
      C[o * O + j] = s;
    }
  for (index_t i = 0; i < I; ++i) rs[i] = 1 / std::sqrt(lam[i]);
  constexpr double kLog2Pi = 1.8378770664093454835606594728112;
  *logc = std::log(w) - 0.5 * (logdet + static_cast<double>(I) * kLog2Pi);
}

// The conditioning of B mixtures of K components (inputs S (B, K, D, D) full covariances, mu
// (B, K, D), w (B, K); ia (I) and oa (O) in [0, D); outputs as gmr_query_cpu reads them).
inline void gmr_condition_cpu(index_t B, index_t K, index_t D, index_t I, index_t O, const double* S, const double* mu,
                              const double* w, const std::int64_t* ia, const std::int64_t* oa, double* mu_i,
                              double* mu_o, double* logc, double* V, double* rs, double* A, double* C) {
  const index_t items = B * K;
  auto scratch = slot_buffers<double>(2 * I * I + O * I + 2 * O * O + O + I);
  parallel_for_slots(
      items, share_chunk(items),
      static_cast<double>(items) * std::pow(static_cast<double>(I + O), 3) * 8 > GMR_CONDITION_PAR_MIN_WORK, scratch,
      [&](index_t bk, std::vector<double>& buf) {
        gmr_condition_one(D, I, O, S + bk * D * D, mu + bk * D, w[bk], ia, oa, mu_i + bk * I, mu_o + bk * O, logc + bk,
                          V + bk * I * I, rs + bk * I, A + bk * O * I, C + bk * O * O, buf.data());
      });
}

// One (mixture, query): scratch holds I doubles.
inline void gmr_query_one(const GmrDims& n, index_t b, index_t q, const double* x, const double* mu_i,
                          const double* mu_o, const double* logc, const double* V, const double* rs, const double* A,
                          const double* C, double* h, double* m, double* mean, double* cov, double* d) {
  const index_t K = n.K, I = n.I, O = n.O;
  const double* xq = x + (b * n.Q + q) * I;
  double* hq = h + (b * n.Q + q) * K;
  double* mq = m + (b * n.Q + q) * K * O;
  double* mean_q = mean + (b * n.Q + q) * O;
  double* cov_q = cov + (b * n.Q + q) * O * O;
  double top = -std::numeric_limits<double>::infinity();
  for (index_t k = 0; k < K; ++k) {
    const index_t bk = b * K + k;
    for (index_t i = 0; i < I; ++i) d[i] = xq[i] - mu_i[bk * I + i];
    const double* Vk = V + bk * I * I;
    double ss = 0;
    for (index_t j = 0; j < I; ++j) {
      double z = 0;
      for (index_t i = 0; i < I; ++i) z += Vk[i * I + j] * d[i];
      z *= rs[bk * I + j];
      ss += z * z;
    }
    hq[k] = logc[bk] - 0.5 * ss;
    if (hq[k] > top) top = hq[k];
    const double* Ak = A + bk * O * I;
    for (index_t o = 0; o < O; ++o) {
      double s = mu_o[bk * O + o];
      for (index_t i = 0; i < I; ++i) s += Ak[o * I + i] * d[i];
      mq[k * O + o] = s;
    }
  }
  if (!std::isfinite(top)) top = 0;
  double sum = 0;
  for (index_t k = 0; k < K; ++k) sum += (hq[k] = std::exp(hq[k] - top));
  for (index_t k = 0; k < K; ++k) hq[k] = sum > 0 ? hq[k] / sum : 1.0 / static_cast<double>(K);
  for (index_t o = 0; o < O; ++o) {
    double s = 0;
    for (index_t k = 0; k < K; ++k) s += hq[k] * mq[k * O + o];
    mean_q[o] = s;
  }
  for (index_t o = 0; o < O * O; ++o) cov_q[o] = 0;
  for (index_t k = 0; k < K; ++k) {
    const double* Ck = C + (b * K + k) * O * O;
    const double* mk = mq + k * O;
    for (index_t o = 0; o < O; ++o)
      for (index_t j = 0; j <= o; ++j)
        cov_q[o * O + j] += hq[k] * (Ck[o * O + j] + (mk[o] - mean_q[o]) * (mk[j] - mean_q[j]));
  }
  for (index_t o = 0; o < O; ++o)
    for (index_t j = 0; j < o; ++j) cov_q[j * O + o] = cov_q[o * O + j];
}

inline void gmr_query_cpu(const GmrDims& n, const double* x, const double* mu_i, const double* mu_o, const double* logc,
                          const double* V, const double* rs, const double* A, const double* C, double* h, double* m,
                          double* mean, double* cov) {
  const index_t rows = n.B * n.Q;
  const double work = static_cast<double>(rows) * static_cast<double>(n.K * (n.I * n.I + n.O * n.I + n.O * n.O + 8));
  auto scratch = slot_buffers<double>(n.I > 0 ? n.I : 1);
  parallel_for_slots(rows, share_chunk(rows), rows > 1 && work > GMR_PAR_MIN_WORK, scratch,
                     [&](index_t r, std::vector<double>& d) {
                       gmr_query_one(n, r / n.Q, r % n.Q, x, mu_i, mu_o, logc, V, rs, A, C, h, m, mean, cov, d.data());
                     });
}

}  // namespace pygenmod::gmm
