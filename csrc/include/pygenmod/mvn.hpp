// Full-covariance Gaussian rows (Mahalanobis distance, log-density, KL between two Cholesky-
// parametrised Gaussians) and Gumbel-softmax rows, forward and backward: the per-row math,
// shared by the CPU launchers (here) and the CUDA launchers (csrc/cuda/sampling.cu). The numba
// backend mirrors it (pygenmod/_numba/sampling_mvn.py). The Gumbel-softmax row itself is
// gumbel_row.hpp (on the CPU in vector passes: the same index and status, the softmax within
// rounding of the serial row that CUDA and numba run).
//
// Factors are lower triangular, row-major (D, D). x rows r = s * B + b (R = S * B rows) use
// mu row b and factor b (per row) or the one factor (shared). Every reduction runs in a fixed
// order: a factor shared by all rows gets its gradient summed over fixed chunks of rows
// (shared_chunks in sampling.hpp, a function of (B, D) only), then over the chunks in order,
// so the result does not depend on the thread count or the backend's schedule (no float
// atomics on CUDA).
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "pygenmod/gumbel_row.hpp"
#include "pygenmod/sampling.hpp"

namespace pygenmod::sampling {

// Problems of a factor (tril_flags), or-ed; the Python layer names the first in this order.
enum TrilFlag : int { TRIL_NONFINITE = 1, TRIL_UPPER = 2, TRIL_DIAG = 4 };
// What mvn_row computes from the whitened y: the squared Mahalanobis distance with a covariance
// factor (y = L^-1 d) or a precision factor (y = U^T d, U U^T = Sigma^-1), or log N(x; mu, L L^T).
enum MvnMode : int { MVN_SCALE = 0, MVN_PRECISION = 1, MVN_LOG_PROB = 2 };
// Row status of the Mahalanobis / KL kernels: which data argument holds NaN or infinity.
enum RowStatus : int { BAD_X = 1, BAD_MU = 2 };

template <class T>
PGM_HD int tril_flags(const T* L, index_t D) {
  int f = 0;
  for (index_t i = 0; i < D; ++i) {
    const T* Li = L + i * D;
    T chk = 0;
    for (index_t j = 0; j < D; ++j) chk += nan_if_bad(Li[j]);
    if (chk != T(0)) f |= TRIL_NONFINITE;
    for (index_t j = i + 1; j < D; ++j)
      if (Li[j] != T(0)) f |= TRIL_UPPER;
    if (!(Li[i] > T(0))) f |= TRIL_DIAG;
  }
  return f;
}

template <class T>
PGM_HD T log_diag(const T* L, index_t D) {
  T s = 0;
  for (index_t i = 0; i < D; ++i) s += std::log(L[i * D + i]);
  return s;
}

// y = L^-1 r (forward substitution); y may alias r.
template <class T>
PGM_HD void tril_solve(const T* L, const T* r, index_t D, T* y) {
  for (index_t i = 0; i < D; ++i) {
    const T* Li = L + i * D;
    T a0 = 0, a1 = 0;  // two chains: the dot's latency, not its length, bounds a short row
    index_t j = 0;
    for (; j + 2 <= i; j += 2) {
      a0 += Li[j] * y[j];
      a1 += Li[j + 1] * y[j + 1];
    }
    if (j < i) a0 += Li[j] * y[j];
    y[i] = (r[i] - (a0 + a1)) / Li[i];
  }
}

// w = L^-T w in place (back substitution, right-looking: row i of L is read contiguously).
template <class T>
PGM_HD void tril_t_solve_inplace(const T* L, index_t D, T* w) {
  for (index_t i = D; i-- > 0;) {
    const T* Li = L + i * D;
    const T wi = w[i] / Li[i];
    w[i] = wi;
    for (index_t k = 0; k < i; ++k) w[k] -= Li[k] * wi;
  }
}

// y = L^-1 (x - m) (MVN_SCALE, MVN_LOG_PROB) or U^T (x - m) (MVN_PRECISION); returns y.y and
// sets *status to the BAD_X / BAD_MU bits of the row.
template <class T>
PGM_HD T mvn_whiten(const T* x, const T* m, const T* L, int mode, index_t D, T* y, int* status) {
  T cx = 0, cm = 0;
  for (index_t i = 0; i < D; ++i) {
    cx += nan_if_bad(x[i]);
    cm += nan_if_bad(m[i]);
    y[i] = x[i] - m[i];
  }
  *status = (cx != T(0) ? BAD_X : 0) | (cm != T(0) ? BAD_MU : 0);
  if (mode == MVN_PRECISION) {
    // y_i = sum_{j >= i} U_ji d_j: row j of U scatters d_j into y_0..y_j (row-major access)
    for (index_t j = 0; j < D; ++j) {
      const T dj = y[j];
      y[j] = T(0);
      for (index_t i = 0; i < j; ++i) y[i] += L[j * D + i] * dj;
      y[j] += L[j * D + j] * dj;
    }
  } else {
    tril_solve<T>(L, y, D, y);
  }
  T sq = 0;
  for (index_t i = 0; i < D; ++i) sq += y[i] * y[i];
  return sq;
}

// One row of mahalanobis / mvn_log_prob; y: D of work.
template <class T>
PGM_HD T mvn_row(const T* x, const T* m, const T* L, int mode, bool squared, index_t D, T* y, int* status) {
  const T sq = mvn_whiten<T>(x, m, L, mode, D, y, status);
  if (mode == MVN_LOG_PROB) return T(-0.5) * sq - log_diag<T>(L, D) - T(D * HALF_LOG_2PI);
  return squared ? sq : std::sqrt(sq);
}

// VJP of g * mvn_row for one row: writes dx (d/dmu is -dx) and u, v, returns c such that the
// factor's gradient is tril(u v^T) + c diag(1 / L_ii) (add_factor_grad). v holds y.
//   MVN_SCALE:     f = y.y, y = L^-1 d:  dx = 2 g w, dL = -2 g w y^T, w = L^-T y
//   MVN_PRECISION: f = y.y, y = U^T d:   dx = 2 g U y, dU = 2 g d y^T
//   MVN_LOG_PROB:  f = -y.y / 2 - sum log L_ii - D log(2 pi) / 2: as MVN_SCALE with -g / 2, c = -g
// squared = false (the distance itself): g / (2 sqrt(y.y)) in place of g (0 at distance 0).
template <class T>
PGM_HD T mvn_row_grad(const T* x, const T* m, const T* L, int mode, bool squared, index_t D, T g, T* dx, T* u, T* v,
                      int* status) {
  const T sq = mvn_whiten<T>(x, m, L, mode, D, v, status);
  T gs = g, c = 0;
  if (mode == MVN_LOG_PROB) {
    gs = T(-0.5) * g;
    c = -g;
  } else if (!squared) {
    const T r = std::sqrt(sq);
    gs = r > T(0) ? g / (T(2) * r) : T(0);
  }
  const T two = T(2) * gs;
  if (mode == MVN_PRECISION) {
    for (index_t i = 0; i < D; ++i) {
      dx[i] = two * dot8<T>(L + i * D, v, i + 1);
      u[i] = two * (x[i] - m[i]);
    }
  } else {
    for (index_t i = 0; i < D; ++i) u[i] = v[i];
    tril_t_solve_inplace<T>(L, D, u);  // w
    for (index_t i = 0; i < D; ++i) {
      dx[i] = two * u[i];
      u[i] = -dx[i];
    }
  }
  return c;
}

// dL += tril(u v^T) + c diag(1 / L_ii).
template <class T>
PGM_HD void add_factor_grad(const T* u, const T* v, T c, const T* L, index_t D, T* dL) {
  for (index_t i = 0; i < D; ++i) {
    T* dLi = dL + i * D;
    const T ui = u[i];
    for (index_t j = 0; j <= i; ++j) dLi[j] += ui * v[j];
    dLi[i] += c / L[i * D + i];
  }
}

// Column j of M = L2^-1 L1 (lower triangular: entries i >= j) into c[j..D); L2 null: I.
template <class T>
PGM_HD void kl_column(const T* L1, const T* L2, index_t D, index_t j, T* c) {
  for (index_t i = j; i < D; ++i) {
    const T l1 = L1[i * D + j];
    c[i] = L2 ? (l1 - dot8<T>(L2 + i * D + j, c + j, i - j)) / L2[i * D + i] : l1;
  }
}

// KL(N(m1, L1 L1^T) || N(m2, L2 L2^T)) of one row (m2 null: 0, L2 null: I):
//   (||L2^-1 L1||_F^2 + ||L2^-1 (m2 - m1)||^2 - D) / 2 + sum log L2_ii - sum log L1_ii,
// the trace term column by column (O(D^3)). work: D. *status: BAD_MU if m1 or m2 is non-finite.
template <class T>
PGM_HD T kl_mvn_row(const T* m1, const T* L1, const T* m2, const T* L2, index_t D, T* work, int* status) {
  T fro = 0, chk = 0;
  for (index_t j = 0; j < D; ++j) {
    kl_column<T>(L1, L2, D, j, work);
    for (index_t i = j; i < D; ++i) fro += work[i] * work[i];
  }
  for (index_t i = 0; i < D; ++i) {
    chk += nan_if_bad(m1[i]) + (m2 ? nan_if_bad(m2[i]) : T(0));
    work[i] = (m2 ? m2[i] : T(0)) - m1[i];
  }
  *status = chk != T(0) ? BAD_MU : 0;
  if (L2) tril_solve<T>(L2, work, D, work);
  T aa = 0;
  for (index_t i = 0; i < D; ++i) aa += work[i] * work[i];
  return T(0.5) * (fro + aa - T(D)) + (L2 ? log_diag<T>(L2, D) : T(0)) - log_diag<T>(L1, D);
}

// VJP of g * kl_mvn_row: dm1 = -g b (dm2 = g b, if wanted), b = Sigma2^-1 (m2 - m1);
// dL1 += g tril(Sigma2^-1 L1) - g diag(1 / L1_ii);
// dL2 += g tril(-Sigma2^-1 L1 M^T - b a^T) + g diag(1 / L2_ii), M = L2^-1 L1, a = L2^-1 (m2 - m1)
// (null dL2: not wanted). Column j of M gives column j of Sigma2^-1 L1 = L2^-T M and a rank-1
// term of the dL2 sum. work: 2 D.
template <class T>
PGM_HD void kl_mvn_row_backward(const T* m1, const T* L1, const T* m2, const T* L2, index_t D, T g, T* dm1, T* dm2,
                                T* dL1, T* dL2, T* work) {
  T* c = work;
  T* q = work + D;
  if (!L2) {  // M = L1: dL1's lower triangle gains g L1, row by row (each entry's operation as below)
    for (index_t i = 0; i < D; ++i)
      for (index_t j = 0; j <= i; ++j) dL1[i * D + j] += g * L1[i * D + j];
  }
  for (index_t j = 0; L2 && j < D; ++j) {  // column j of M = L2^-1 L1 (O(D^3) in all)
    kl_column<T>(L1, L2, D, j, c);
    for (index_t i = 0; i < j; ++i) q[i] = T(0);
    for (index_t i = j; i < D; ++i) q[i] = c[i];
    if (L2) tril_t_solve_inplace<T>(L2, D, q);
    for (index_t i = j; i < D; ++i) dL1[i * D + j] += g * q[i];
    if (dL2)
      for (index_t i = j; i < D; ++i) {
        const T gq = g * q[i];
        for (index_t k = j; k <= i; ++k) dL2[i * D + k] -= gq * c[k];
      }
  }
  for (index_t i = 0; i < D; ++i) {
    dL1[i * D + i] -= g / L1[i * D + i];
    c[i] = (m2 ? m2[i] : T(0)) - m1[i];
  }
  if (L2) tril_solve<T>(L2, c, D, c);  // a
  for (index_t i = 0; i < D; ++i) q[i] = c[i];
  if (L2) tril_t_solve_inplace<T>(L2, D, q);  // b
  for (index_t i = 0; i < D; ++i) {
    dm1[i] = -g * q[i];
    if (dm2) dm2[i] = g * q[i];
  }
  if (dL2)
    for (index_t i = 0; i < D; ++i) {
      const T gb = g * q[i];
      for (index_t k = 0; k <= i; ++k) dL2[i * D + k] -= gb * c[k];
      dL2[i * D + i] += g / L2[i * D + i];
    }
}

// One row of the Gumbel-softmax launchers (CPU and CUDA): fill(ys) writes the row's K Gumbel
// draws (each launcher its own filler of the same stream), then the softmax, the index and,
// when y_hard is given, its one-hot.
template <class T, class Fill>
PGM_HD void gumbel_softmax_one(const T* logits, index_t K, T tau, Fill fill, T* ys, T* y_hard, std::int64_t* index,
                               std::int32_t* status) {
  fill(ys);
  int s = 0;
  const index_t idx = gumbel_softmax_row<T>(logits, K, tau, ys, &s);
  *index = idx;
  *status = s;
  if (y_hard)
    for (index_t k = 0; k < K; ++k) y_hard[k] = k == idx ? T(1) : T(0);
}

// One row of the VJP launchers: from the forward's y_soft, or (y_soft null) regenerated into
// out from the logits and fill (as in gumbel_softmax_one).
template <class T, class Fill>
PGM_HD void gumbel_softmax_backward_one(const T* logits, const T* y_soft, index_t K, T tau, Fill fill, const T* g,
                                        T* out, std::int32_t* status) {
  int s = 0;
  if (!y_soft) {
    fill(out);
    gumbel_softmax_row<T>(logits, K, tau, out, &s);
  }
  *status = s;
  gumbel_softmax_row_backward<T>(y_soft ? y_soft : out, g, K, tau, out);
}

#if !defined(__CUDACC__)
// ---------------------------------------------------------------------------------------
// CPU launchers: parallel over rows (matrices, chunks), serial below PAR_MIN elements of work.
// ---------------------------------------------------------------------------------------
template <class T>
void tril_check_cpu(const T* L, index_t N, index_t D, std::int32_t* flags) {
  parallel_for(N, 32, N * D * D > PAR_MIN, [&](index_t n) { flags[n] = tril_flags<T>(L + n * D * D, D); });
}

template <class T>
void mvn_rows_cpu(const T* x, const T* mu, const T* L, bool shared, int mode, bool squared, index_t R, index_t B,
                  index_t D, T* out, std::int32_t* status) {
  auto ys = slot_buffers<T>(D);
  parallel_for_slots(R, 32, R * D * D > PAR_MIN, ys, [&](index_t r, std::vector<T>& y) {
    const index_t b = r % B;
    int st = 0;
    out[r] = mvn_row<T>(x + r * D, mu + b * D, L + (shared ? 0 : b * D * D), mode, squared, D, y.data(), &st);
    status[r] = st;
  });
}

// VJP of mvn_rows: dx (R, D), dmu (B, D) (summed over samples), dL (B or 1, D, D): per row summed
// over samples, or shared: summed over all rows by chunks (shared_chunks).
template <class T>
void mvn_rows_backward_cpu(const T* x, const T* mu, const T* L, bool shared, int mode, bool squared, index_t R,
                           index_t B, index_t D, const T* g, T* dx, T* dmu, T* dL, std::int32_t* status) {
  const index_t S = B > 0 ? R / B : 0, DD = D * D;
  const index_t G = shared ? shared_chunks(B, D) : B;  // row groups: one per factor unless shared
  std::vector<T> part(shared ? G * DD : 0, T(0));
  auto uvs = slot_buffers<T>(2 * D);  // u, v
  parallel_for_slots(G, shared ? 1 : 16, R * DD > PAR_MIN, uvs, [&](index_t grp, std::vector<T>& uv) {
    T *u = uv.data(), *v = uv.data() + D;
    const index_t b0 = shared ? B * grp / G : grp, b1 = shared ? B * (grp + 1) / G : grp + 1;
    T* dst = shared ? part.data() + grp * DD : dL + grp * DD;
    if (!shared) std::fill(dst, dst + DD, T(0));
    for (index_t b = b0; b < b1; ++b) {
      const T* Lb = L + (shared ? 0 : b * DD);
      T* dm = dmu + b * D;
      std::fill(dm, dm + D, T(0));
      for (index_t s = 0; s < S; ++s) {
        const index_t r = s * B + b;
        int st = 0;
        const T c = mvn_row_grad<T>(x + r * D, mu + b * D, Lb, mode, squared, D, g[r], dx + r * D, u, v, &st);
        status[r] = st;
        for (index_t i = 0; i < D; ++i) dm[i] -= dx[r * D + i];
        add_factor_grad<T>(u, v, c, Lb, D, dst);
      }
    }
  });
  if (shared) sum_parts<T>(part, G, DD, dL);
}

template <class T>
void kl_mvn_cpu(const T* m1, const T* L1, bool shared1, const T* m2, const T* L2, bool shared2, index_t B, index_t D,
                T* kl, std::int32_t* status) {
  auto works = slot_buffers<T>(D);
  parallel_for_slots(B, 8, B * D * D * D > PAR_MIN, works, [&](index_t b, std::vector<T>& work) {
    int st = 0;
    kl[b] = kl_mvn_row<T>(m1 + b * D, L1 + (shared1 ? 0 : b * D * D), m2 ? m2 + b * D : nullptr,
                          L2 ? L2 + (shared2 ? 0 : b * D * D) : nullptr, D, work.data(), &st);
    status[b] = st;
  });
}

// VJP of kl_mvn; dm2 / dL2 null: not wanted. A shared factor's gradient is summed by chunks.
template <class T>
void kl_mvn_backward_cpu(const T* m1, const T* L1, bool shared1, const T* m2, const T* L2, bool shared2, index_t B,
                         index_t D, const T* g, T* dm1, T* dL1, T* dm2, T* dL2) {
  const index_t DD = D * D;
  const bool chunked = shared1 || (dL2 && shared2);
  const index_t G = chunked ? shared_chunks(B, D) : B;
  std::vector<T> part1(shared1 ? G * DD : 0, T(0)), part2(dL2 && shared2 ? G * DD : 0, T(0));
  auto works = slot_buffers<T>(2 * D);
  parallel_for_slots(G, 1, B * DD * D > PAR_MIN, works, [&](index_t grp, std::vector<T>& work) {
    const index_t b0 = chunked ? B * grp / G : grp, b1 = chunked ? B * (grp + 1) / G : grp + 1;
    for (index_t b = b0; b < b1; ++b) {
      T* d1 = shared1 ? part1.data() + grp * DD : dL1 + b * DD;
      T* d2 = !dL2 ? nullptr : (shared2 ? part2.data() + grp * DD : dL2 + b * DD);
      if (!shared1) std::fill(d1, d1 + DD, T(0));
      if (d2 && !shared2) std::fill(d2, d2 + DD, T(0));
      kl_mvn_row_backward<T>(m1 + b * D, L1 + (shared1 ? 0 : b * DD), m2 ? m2 + b * D : nullptr,
                             L2 ? L2 + (shared2 ? 0 : b * DD) : nullptr, D, g[b], dm1 + b * D,
                             dm2 ? dm2 + b * D : nullptr, d1, d2, work.data());
    }
  });
  if (shared1) sum_parts<T>(part1, G, DD, dL1);
  if (dL2 && shared2) sum_parts<T>(part2, G, DD, dL2);
}

// Gumbel-softmax rows: row r draws elements [offset, offset + K) of stream `stream + r`.
// y_soft (R, K); y (R, K) the one-hot of index when `hard` (else null: y is y_soft).
template <class T>
void gumbel_softmax_cpu(const T* logits, index_t R, index_t K, T tau, std::uint64_t seed, std::uint64_t stream,
                        std::uint64_t offset, T* y_soft, T* y_hard, std::int64_t* index, std::int32_t* status) {
  parallel_for(R, 32, R * K > PAR_MIN, [&](index_t r) {
    gumbel_softmax_one<T>(
        logits + r * K, K, tau, [&](T* y) { fill_range<T>(rng::GUMBEL, seed, stream + r, offset, K, y); },
        y_soft + r * K, y_hard ? y_hard + r * K : nullptr, index + r, status + r);
  });
}

// VJP: from the forward's y_soft, or (y_soft null) regenerated from logits and the key.
template <class T>
void gumbel_softmax_backward_cpu(const T* logits, const T* y_soft, index_t R, index_t K, T tau, std::uint64_t seed,
                                 std::uint64_t stream, std::uint64_t offset, const T* g, T* out, std::int32_t* status) {
  parallel_for(R, 32, R * K > PAR_MIN, [&](index_t r) {
    gumbel_softmax_backward_one<T>(
        logits ? logits + r * K : nullptr, y_soft ? y_soft + r * K : nullptr, K, tau,
        [&](T* y) { fill_range<T>(rng::GUMBEL, seed, stream + r, offset, K, y); }, g + r * K, out + r * K, status + r);
  });
}
#endif  // !__CUDACC__

}  // namespace pygenmod::sampling
