// Gaussian mixture regression, the per-query part on the CPU (pygenmod/_gmr.py conditions the
// mixtures once; this evaluates the conditioned mixtures at queries). float64 throughout.
//
// For each mixture b, query q and component k, with d = x - mu_i[k]:
//   log h_k  = logc[k] - |diag(rs[k]) V[k]^T d|^2 / 2             (logc: log w - log det / 2 - I log(2 pi) / 2)
//   m_k      = mu_o[k] + A[k] d                                   (the component's conditional mean)
//   h        = softmax_k(log h)  (uniform 1/K if every log h is -inf or the sum vanishes)
//   mean     = sum_k h_k m_k
//   cov      = sum_k h_k (C[k] + (m_k - mean)(m_k - mean)^T), symmetrised
// Shapes: x (B, Q, I); mu_i, rs (B, K, I); mu_o (B, K, O); logc (B, K); V (B, K, I, I) (columns:
// eigenvectors of S_ii); A (B, K, O, I); C (B, K, O, O); out h (B, Q, K), m (B, Q, K, O),
// mean (B, Q, O), cov (B, Q, O, O).
#pragma once

#include <cmath>
#include <limits>

#include "pygenmod/common.hpp"
#include "pygenmod/parallel.hpp"

namespace pygenmod::gmm {

struct GmrDims {
  index_t B, Q, K, I, O;
};

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

// Queries in parallel when there is enough work (measured: bench/results/gmm.md, GMR threads).
constexpr index_t GMR_PAR_MIN_WORK = 1 << 14;

inline void gmr_query_cpu(const GmrDims& n, const double* x, const double* mu_i, const double* mu_o, const double* logc,
                          const double* V, const double* rs, const double* A, const double* C, double* h, double* m,
                          double* mean, double* cov) {
  const index_t rows = n.B * n.Q;
  const index_t work = rows * n.K * (n.I * n.I + n.O * n.I + n.O * n.O + 8);
  auto scratch = slot_buffers<double>(n.I > 0 ? n.I : 1);
  parallel_for_slots(rows, share_chunk(rows), rows > 1 && work > GMR_PAR_MIN_WORK, scratch,
                     [&](index_t r, std::vector<double>& d) {
                       gmr_query_one(n, r / n.Q, r % n.Q, x, mu_i, mu_o, logc, V, rs, A, C, h, m, mean, cov, d.data());
                     });
}

}  // namespace pygenmod::gmm
