// Categorical distributions from logits, per row of K actions: log-probability of an action,
// entropy, KL(p || q), and their fused backward passes. One row = one distribution.
//
// Masks (nullable, uint8, nonzero = the action is allowed): a masked action has probability 0;
// its logit is never read for the value (it may hold anything, -inf or NaN included) and its
// gradient is 0. The log-softmax is stable: logits are shifted by their row maximum over the
// allowed actions before exp, so logits of any finite size (1e4 and more) are fine.
//
//   log p_j  = x_j - logsumexp_{allowed} x
//   H(p)     = -sum_j p_j log p_j                        (0 log 0 = 0)
//   KL(p||q) = sum_{p_j > 0} p_j (log p_j - log q_j)     (+inf when p_j > 0 where q masks j)
//
// p is given as logits (with its own mask) or as probabilities / weights w (already
// normalised by the caller; zero weights contribute nothing: 0 log 0 = 0).
// Rows whose value is infinite (a masked action's log-probability, an infinite KL) get NaN
// gradients: the derivative does not exist there.
// Status per row: OK, or the first problem found (all actions masked, a non-finite allowed logit).
#pragma once

#include "pygenmod/common.hpp"
#include "pygenmod/numpy_sum.hpp"  // normalise_weights_cpu: NumPy's row sums
#include "pygenmod/parallel.hpp"
#include "pygenmod/random.hpp"  // rng::exp_f32: a branch-free float exp that vectorises
#if !defined(__CUDACC__)
#include "pygenmod/categorical_rows.hpp"
#endif

#include <cmath>
#include <cstdint>
#include <limits>

// `omp simd` with a sum reduction on the host (float sums do not vectorise without it).
#if !defined(__CUDACC__)
#define PGM_CAT_PRAGMA(x) _Pragma(#x)
#define PGM_CAT_SIMD_SUM(v) PGM_CAT_PRAGMA(omp simd reduction(+ : v))
#else
#define PGM_CAT_SIMD_SUM(v)
#endif

namespace pygenmod::categorical {

enum : std::int32_t { OK = 0, P_ALL_MASKED = 1, P_NONFINITE = 2, Q_ALL_MASKED = 3, Q_NONFINITE = 4, BAD_ACTION = 5 };

PGM_HD float exp_(float x) { return rng::exp_f32(x); }  // ~2 ulp; exp(-87.3) for smaller x
PGM_HD double exp_(double x) { return exp(x); }
PGM_HD float log_(float x) { return logf(x); }
PGM_HD double log_(double x) { return log(x); }

template <class T>
PGM_HD T nan_() {
  return std::numeric_limits<T>::quiet_NaN();
}

template <class T>
PGM_HD T inf_() {
  return std::numeric_limits<T>::infinity();
}

PGM_HD bool allowed(const std::uint8_t* m, index_t j) { return m == nullptr || m[j] != 0; }

// The log-partition of one row's allowed logits, kept as (row maximum, log of the shifted sum)
// so that log p_j = (x_j - max) - log_sum is computed without rounding max + log_sum (at logits
// of 1e6 a float32 sum would lose everything below 0.06). Returns OK, or `all_masked` /
// `nonfinite` (then lz is left unset).
template <class T>
struct LogZ {
  T max, log_sum;
  PGM_HD T logp(T x) const { return (x - max) - log_sum; }
};

template <class T>
PGM_HD std::int32_t row_logz(const T* x, const std::uint8_t* m, index_t K, LogZ<T>& logz,
                             std::int32_t all_masked = P_ALL_MASKED, std::int32_t nonfinite = P_NONFINITE) {
  T mx = neg_inf<T>(), chk = 0;
  index_t n = 0;
  for (index_t j = 0; j < K; ++j) {
    if (!allowed(m, j)) continue;
    mx = x[j] > mx ? x[j] : mx;
    chk += x[j] * T(0);  // NaN unless x[j] is finite
    ++n;
  }
  if (n == 0) return all_masked;
  if (!(chk == T(0))) return nonfinite;
  T s = 0;
  PGM_CAT_SIMD_SUM(s)
  for (index_t j = 0; j < K; ++j) s += allowed(m, j) ? exp_(x[j] - mx) : T(0);
  logz = {mx, log_(s)};  // s >= 1 (the maximum contributes exp(0))
  return OK;
}

// ---------------------------------------------------------------------------------------- log p(a)
template <class T>
PGM_HD std::int32_t log_prob_row(const T* x, const std::uint8_t* m, index_t K, std::int64_t a, T* out) {
  LogZ<T> logz;
  if (a < 0 || a >= K) return BAD_ACTION;  // (validated in Python; never read out of bounds)
  const std::int32_t st = row_logz(x, m, K, logz);
  if (st != OK) return st;
  *out = allowed(m, a) ? logz.logp(x[a]) : neg_inf<T>();
  return OK;
}

// d/dx_j [g log p_a] = g (1{j = a} - p_j) on allowed j, 0 on masked j.
template <class T>
PGM_HD void log_prob_row_backward(const T* x, const std::uint8_t* m, index_t K, std::int64_t a, T g, T* dx) {
  LogZ<T> logz;
  const bool ok = a >= 0 && a < K && row_logz(x, m, K, logz) == OK && allowed(m, a);
  for (index_t j = 0; j < K; ++j) {
    if (!ok)
      dx[j] = nan_<T>();
    else
      dx[j] = allowed(m, j) ? g * (T(j == a) - exp_(logz.logp(x[j]))) : T(0);
  }
}

// ---------------------------------------------------------------------------------------- H(p)
template <class T>
PGM_HD std::int32_t entropy_row(const T* x, const std::uint8_t* m, index_t K, T* out) {
  LogZ<T> logz;
  const std::int32_t st = row_logz(x, m, K, logz);
  if (st != OK) return st;
  T h = 0;
  PGM_CAT_SIMD_SUM(h)
  for (index_t j = 0; j < K; ++j) {
    const T lp = allowed(m, j) ? logz.logp(x[j]) : T(0);  // (a masked logit may be NaN: never used)
    h -= exp_(lp) * lp;  // an underflowed p_j ~ 0 contributes ~0 (lp is finite); masked: 1 * 0
  }
  *out = h;
  return OK;
}

// dH/dx_j = -p_j (log p_j + H).
template <class T>
PGM_HD void entropy_row_backward(const T* x, const std::uint8_t* m, index_t K, T g, T* dx) {
  LogZ<T> logz;
  T h = 0;
  if (row_logz(x, m, K, logz) != OK) {
    for (index_t j = 0; j < K; ++j) dx[j] = nan_<T>();
    return;
  }
  PGM_CAT_SIMD_SUM(h)
  for (index_t j = 0; j < K; ++j) {
    const T lp = allowed(m, j) ? logz.logp(x[j]) : T(0);
    h -= exp_(lp) * lp;
  }
  for (index_t j = 0; j < K; ++j) {
    const T lp = logz.logp(x[j]);
    dx[j] = allowed(m, j) ? -g * exp_(lp) * (lp + h) : T(0);
  }
}

// ---------------------------------------------------------------------------------------- KL(p || q)
// p: logits (p_is_prob false, mask mp) or normalised weights (p_is_prob true, mp unused).
// The log-partition functions are returned for the backward pass.
template <class T>
PGM_HD std::int32_t kl_row_logz(const T* p, const T* q, const std::uint8_t* mp, const std::uint8_t* mq, index_t K,
                                bool p_is_prob, LogZ<T>& lzp, LogZ<T>& lzq) {
  lzp = {T(0), T(0)};
  if (!p_is_prob) {
    const std::int32_t st = row_logz(p, mp, K, lzp);
    if (st != OK) return st;
  }
  return row_logz(q, mq, K, lzq, Q_ALL_MASKED, Q_NONFINITE);
}

// Whether p puts mass on action j (every allowed action of a logit row has p_j > 0).
template <class T>
PGM_HD bool has_mass(const T* p, const std::uint8_t* mp, index_t j, bool p_is_prob) {
  return p_is_prob ? p[j] > T(0) : allowed(mp, j);
}

template <class T>
PGM_HD T kl_value(const T* p, const T* q, const std::uint8_t* mp, const std::uint8_t* mq, index_t K, bool p_is_prob,
                  const LogZ<T>& lzp, const LogZ<T>& lzq) {
  T kl = 0;
  for (index_t j = 0; j < K; ++j) {
    if (!has_mass(p, mp, j, p_is_prob)) continue;
    if (!allowed(mq, j)) return inf_<T>();
    const T lp = p_is_prob ? log_(p[j]) : lzp.logp(p[j]);
    const T pj = p_is_prob ? p[j] : exp_(lp);
    kl += pj * (lp - lzq.logp(q[j]));  // pj underflowed to 0: contributes 0
  }
  return kl;
}

template <class T>
PGM_HD std::int32_t kl_row(const T* p, const T* q, const std::uint8_t* mp, const std::uint8_t* mq, index_t K,
                           bool p_is_prob, T* out) {
  LogZ<T> lzp, lzq;
  const std::int32_t st = kl_row_logz(p, q, mp, mq, K, p_is_prob, lzp, lzq);
  if (st != OK) return st;
  *out = kl_value(p, q, mp, mq, K, p_is_prob, lzp, lzq);
  return OK;
}

// dKL/dp_j = p_j (log p_j - log q_j - KL) (logits only; dp may be null), dKL/dq_j = q_j - p_j.
template <class T>
PGM_HD void kl_row_backward(const T* p, const T* q, const std::uint8_t* mp, const std::uint8_t* mq, index_t K,
                            bool p_is_prob, T g, T* dp, T* dq) {
  LogZ<T> lzp, lzq;
  T kl = nan_<T>();
  if (kl_row_logz(p, q, mp, mq, K, p_is_prob, lzp, lzq) == OK) kl = kl_value(p, q, mp, mq, K, p_is_prob, lzp, lzq);
  const bool ok = kl == kl && kl != inf_<T>();
  for (index_t j = 0; j < K; ++j) {
    if (!ok) {
      if (dp) dp[j] = nan_<T>();
      dq[j] = nan_<T>();
      continue;
    }
    const bool pm = has_mass(p, mp, j, p_is_prob);
    const T lp = pm ? (p_is_prob ? log_(p[j]) : lzp.logp(p[j])) : T(0);
    const T pj = pm ? (p_is_prob ? p[j] : exp_(lp)) : T(0);
    const T lq = allowed(mq, j) ? lzq.logp(q[j]) : T(0);
    if (dp) dp[j] = (!p_is_prob && allowed(mp, j)) ? g * pj * (lp - lq - kl) : T(0);
    dq[j] = allowed(mq, j) ? g * (exp_(lq) - pj) : T(0);
  }
}

// Row r reads mask row r, or the shared mask (mask_rows == 1), or none (mask null).
PGM_HD const std::uint8_t* mask_row(const std::uint8_t* m, index_t mask_rows, index_t r, index_t K) {
  return m == nullptr ? nullptr : m + (mask_rows == 1 ? 0 : r * K);
}

// ---------------------------------------------------------------------------------------- Bernoulli logits
// logaddexp(0, y) as NumPy's npy_logaddexp(0, y), step for step with the C library's exp and
// log1p: the same bits as np.logaddexp (log sigmoid(x) = -logaddexp(0, -x), softplus(x) =
// logaddexp(0, x): adversarial.gail_reward's one-call path).
template <class T>
PGM_HD T logaddexp0(T y) {
  constexpr T kLogE2 = T(0.693147180559945309417232121458176568);
  if (T(0) == y) return T(0) + kLogE2;
  const T tmp = T(0) - y;
  if (tmp > T(0)) return T(0) + std::log1p(std::exp(-tmp));
  if (tmp <= T(0)) return y + std::log1p(std::exp(tmp));
  return tmp;  // NaN
}

#if !defined(__CUDACC__)
// sign * logaddexp(0, sign * x) elementwise (NumPy's bits: adversarial.gail_reward), in parallel
// from SOFTPLUS_PAR_MIN elements: two libm calls an element (~13 ns), so 2^14 of them are ~200 us,
// far above a pool's wake-up; below it, NumPy's serial loop is as fast as ours.
constexpr index_t SOFTPLUS_PAR_MIN = index_t(1) << 14;
template <class T>
void softplus_cpu(const T* x, index_t n, T sign, T* out) {
  parallel_for(n, share_chunk(n), n >= SOFTPLUS_PAR_MIN,
               [&](index_t i) { out[i] = sign * logaddexp0<T>(sign * x[i]); });
}

// ---------------------------------------------------------------------------------------- CPU rows
// Logit rows of log p, entropy, KL and their backward passes, masked or not, in vector passes
// (categorical_rows.hpp; the same values within rounding); weights, KL with p and q masked
// differently, and rows that the vector passes leave (all masked, a masked action's NaN
// gradients, float64 logits spanning more than 600) take the serial rows.
template <class T>
std::int32_t log_prob_row_cpu(const T* x, const std::uint8_t* m, index_t K, std::int64_t a, T* out) {
  if (a >= 0 && a < K) {
    const int r = rows_cpu::log_prob_any<T>(x, m, K, a, out);
    if (r != rows_cpu::SERIAL) return r == rows_cpu::DONE ? OK : P_NONFINITE;
  }
  return log_prob_row(x, m, K, a, out);
}

// The backward rows: the vector passes where they take the row, else the serial row (which
// also writes the NaN gradients of a row without a value).
template <class T>
void log_prob_row_backward_cpu(const T* x, const std::uint8_t* m, index_t K, std::int64_t a, T g, T* dx) {
  if (a >= 0 && a < K && rows_cpu::log_prob_backward_any<T>(x, m, K, a, g, dx) == rows_cpu::DONE) return;
  log_prob_row_backward(x, m, K, a, g, dx);
}

template <class T>
void entropy_row_backward_cpu(const T* x, const std::uint8_t* m, index_t K, T g, T* dx) {
  if (K > 0 && rows_cpu::entropy_backward_any<T>(x, m, K, g, dx) == rows_cpu::DONE) return;
  entropy_row_backward(x, m, K, g, dx);
}

// (The vector KL rows take one mask for p and q: the usual call, where q_mask defaults to mask.)
template <class T>
void kl_row_backward_cpu(const T* p, const T* q, const std::uint8_t* mp, const std::uint8_t* mq, index_t K,
                         bool p_is_prob, T g, T* dp, T* dq) {
  if (mp == mq && !p_is_prob && K > 0 && rows_cpu::kl_backward_any<T>(p, q, mp, K, g, dp, dq) == rows_cpu::DONE) return;
  if (p_is_prob && !mp && !dp && K > 0 && rows_cpu::target_kl_backward_any<T>(p, q, mq, K, g, dq) == rows_cpu::DONE)
    return;
  kl_row_backward(p, q, mp, mq, K, p_is_prob, g, dp, dq);
}

template <class T>
std::int32_t entropy_row_cpu(const T* x, const std::uint8_t* m, index_t K, T* out) {
  if (K > 0) {
    const int r = rows_cpu::entropy_any<T>(x, m, K, out);
    if (r != rows_cpu::SERIAL) return r == rows_cpu::DONE ? OK : P_NONFINITE;
  }
  return entropy_row(x, m, K, out);
}

template <class T>
std::int32_t kl_row_cpu(const T* p, const T* q, const std::uint8_t* mp, const std::uint8_t* mq, index_t K,
                        bool p_is_prob, T* out) {
  if (mp == mq && !p_is_prob && K > 0) {
    const int r = rows_cpu::kl_any<T>(p, q, mp, K, out);
    if (r != rows_cpu::SERIAL) return r == rows_cpu::DONE ? OK : r == rows_cpu::P_BAD ? P_NONFINITE : Q_NONFINITE;
  }
  return kl_row(p, q, mp, mq, K, p_is_prob, out);
}

// ---------------------------------------------------------------------------------------- CPU launchers
// Parallel over rows once the batch is large enough to pay for waking the pool, also with one
// core busy. A row entry costs 2-5 ns (an exp, three or four passes), several times a sampling
// entry. Measured on the Intel Xeon VM, entropy, mean us of 1500 calls with 2 ms idle gaps,
// 1 thread / 2 threads, quiet and with one core busy (bench/RESULTS.md, twenty-sixth stop):
//   B=2, K=8192 (16384 entries):  quiet 65 / 44, busy 79 / 96 (max 5.4 ms): stays serial;
//   B=2, K=16384 (32768):         quiet 151 / 75, busy 157 / 152;
//   B=64, K=512 (32768):          quiet 133 / 72, busy 153 / 114.
// (It was 1 << 15, as B * K > 1 << 15, when the rows were serial libm.)
constexpr index_t CAT_PAR_MIN = index_t(1) << 14;

template <class T>
void log_prob_cpu(const T* x, const std::uint8_t* m, index_t mrows, const std::int64_t* a, index_t B, index_t K, T* out,
                  std::int32_t* status) {
  parallel_for(B, share_chunk(B), B * K > CAT_PAR_MIN,
               [&](index_t b) { status[b] = log_prob_row_cpu(x + b * K, mask_row(m, mrows, b, K), K, a[b], out + b); });
}

template <class T>
void log_prob_backward_cpu(const T* x, const std::uint8_t* m, index_t mrows, const std::int64_t* a, index_t B,
                           index_t K, const T* g, T* dx) {
  parallel_for(B, share_chunk(B), B * K > CAT_PAR_MIN, [&](index_t b) {
    log_prob_row_backward_cpu(x + b * K, mask_row(m, mrows, b, K), K, a[b], g[b], dx + b * K);
  });
}

template <class T>
void entropy_cpu(const T* x, const std::uint8_t* m, index_t mrows, index_t B, index_t K, T* out, std::int32_t* status) {
  parallel_for(B, share_chunk(B), B * K > CAT_PAR_MIN,
               [&](index_t b) { status[b] = entropy_row_cpu(x + b * K, mask_row(m, mrows, b, K), K, out + b); });
}

template <class T>
void entropy_backward_cpu(const T* x, const std::uint8_t* m, index_t mrows, index_t B, index_t K, const T* g, T* dx) {
  parallel_for(B, share_chunk(B), B * K > CAT_PAR_MIN,
               [&](index_t b) { entropy_row_backward_cpu(x + b * K, mask_row(m, mrows, b, K), K, g[b], dx + b * K); });
}

template <class T>
void kl_cpu(const T* p, const T* q, const std::uint8_t* mp, index_t mprows, const std::uint8_t* mq, index_t mqrows,
            bool p_is_prob, index_t B, index_t K, T* out, std::int32_t* status) {
  parallel_for(B, share_chunk(B), B * K > CAT_PAR_MIN, [&](index_t b) {
    status[b] =
        kl_row_cpu(p + b * K, q + b * K, mask_row(mp, mprows, b, K), mask_row(mq, mqrows, b, K), K, p_is_prob, out + b);
  });
}

// An improved policy's weights as probabilities (policy_target_kl): each row divided by its sum,
// summed in NumPy's order (numpy_sum.hpp, `chunk` as there), so NumPy's w / w.sum(-1) bit for
// bit; rows in parallel as the KL rows. False (out partly written) where an entry is not finite
// or is negative, or a row sums to <= 0: the general path raises for those.
template <class T>
bool normalise_weights_cpu(const T* w, index_t B, index_t K, index_t chunk, T* out) {
  std::vector<std::uint8_t> bad(static_cast<std::size_t>(B), 0);
  parallel_for(B, share_chunk(B), B * K > CAT_PAR_MIN, [&](index_t b) {
    const T* row = w + b * K;
    int ok = 1;  // (an int reduction: vectorises, a bool one does not)
    for (index_t j = 0; j < K; ++j) ok &= std::isfinite(row[j]) && row[j] >= T(0);
    auto at = [&](index_t i) __attribute__((always_inline)) { return row[i]; };
    const T s = ok ? numpy_sum::row_sum<T>(K, chunk, at) : T(0);
    bad[b] = !(s > T(0));
    if (!bad[b])
      for (index_t j = 0; j < K; ++j) out[b * K + j] = row[j] / s;
  });
  for (auto x : bad)
    if (x) return false;
  return true;
}

template <class T>
void kl_backward_cpu(const T* p, const T* q, const std::uint8_t* mp, index_t mprows, const std::uint8_t* mq,
                     index_t mqrows, bool p_is_prob, index_t B, index_t K, const T* g, T* dp, T* dq) {
  parallel_for(B, share_chunk(B), B * K > CAT_PAR_MIN, [&](index_t b) {
    kl_row_backward_cpu(p + b * K, q + b * K, mask_row(mp, mprows, b, K), mask_row(mq, mqrows, b, K), K, p_is_prob,
                        g[b], dp ? dp + b * K : nullptr, dq + b * K);
  });
}
#endif  // !__CUDACC__

}  // namespace pygenmod::categorical
