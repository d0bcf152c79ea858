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
// Sweeps hand out states with guided scheduling, so a thread that the OS preempts (busy,
// shared machines) delays the others by one chunk rather than by its whole static share.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "pygenmod/common.hpp"

#if defined(_OPENMP) && !defined(__CUDACC__)
#include <omp.h>
#endif

namespace pygenmod::mdp {

// Backup kinds (the `kind` argument of the sweep kernels).
enum Kind : int {
  kOptimal = 0,      // V = max_a Q
  kPolicy = 1,       // V = Q[pi(s)] (deterministic policy)
  kStochastic = 2,   // V = sum_a pi(a|s) Q[a]
  kSoft = 3,         // V = tau * log sum_a exp(Q[a] / tau)
};

// ------------------------------------------------------------------ dense dot products
// sum_j row[j] * v[j] in acc_t<T>, with 8 independent partial sums in a fixed order (so it
// streams P at memory speed instead of waiting on one addition chain; deterministic).
template <class T>
PGM_HD acc_t<T> dot_generic(const T* row, const T* v, index_t n) {
  using U = acc_t<T>;
  U c[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  index_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int k = 0; k < 8; ++k) c[k] += static_cast<U>(row[j + k]) * v[j + k];
  for (; j < n; ++j) c[0] += static_cast<U>(row[j]) * v[j];
  return ((c[0] + c[1]) + (c[2] + c[3])) + ((c[4] + c[5]) + (c[6] + c[7]));
}

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__) && !defined(__CUDACC__) && \
    !defined(__AVX2__)
// The package is compiled for baseline x86-64 (SSE2); where the CPU has AVX2 and FMA the dense
// dot product runs this copy instead (chosen once at load time). 16 partial sums = 4 vectors.
#define PGM_MDP_AVX2_DISPATCH 1
#include <immintrin.h>
template <class T>
__attribute__((target("avx2,fma"))) acc_t<T> dot_avx2(const T* row, const T* v, index_t n) {
  using U = acc_t<T>;
  U c[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  index_t j = 0;
  for (; j + 16 <= n; j += 16)
    for (int k = 0; k < 16; ++k) c[k] += static_cast<U>(row[j + k]) * v[j + k];
  for (; j < n; ++j) c[0] += static_cast<U>(row[j]) * v[j];
  for (int k = 0; k < 8; ++k) c[k] += c[k + 8];
  return ((c[0] + c[1]) + (c[2] + c[3])) + ((c[4] + c[5]) + (c[6] + c[7]));
}
// Four rows r0, r0 + stride, r0 + 2*stride, r0 + 3*stride against v at once: v is loaded once
// for all four and the 8 vector accumulators are independent chains (small rows, e.g. S = 64,
// are latency bound otherwise). out[k] = row k . v, in a fixed order.
__attribute__((target("avx2,fma"))) inline void dot4_avx2(const double* r0, index_t stride,
                                                           const double* v, index_t n, double* out) {
  const double* r[4] = {r0, r0 + stride, r0 + 2 * stride, r0 + 3 * stride};
  __m256d a0[4], a1[4];
  for (int k = 0; k < 4; ++k) a0[k] = a1[k] = _mm256_setzero_pd();
  index_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256d v0 = _mm256_loadu_pd(v + j), v1 = _mm256_loadu_pd(v + j + 4);
    for (int k = 0; k < 4; ++k) {
      a0[k] = _mm256_fmadd_pd(_mm256_loadu_pd(r[k] + j), v0, a0[k]);
      a1[k] = _mm256_fmadd_pd(_mm256_loadu_pd(r[k] + j + 4), v1, a1[k]);
    }
  }
  for (int k = 0; k < 4; ++k) {
    alignas(32) double t[4];
    _mm256_store_pd(t, _mm256_add_pd(a0[k], a1[k]));
    double acc = (t[0] + t[1]) + (t[2] + t[3]);
    for (index_t i = j; i < n; ++i) acc += r[k][i] * v[i];
    out[k] = acc;
  }
}

inline const bool kHaveAvx2 = [] {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}();
#endif

template <class T>
PGM_HD acc_t<T> dot_dense(const T* row, const T* v, index_t n) {
#if defined(PGM_MDP_AVX2_DISPATCH)
  if (kHaveAvx2) return dot_avx2(row, v, n);
#endif
  return dot_generic(row, v, n);
}

// ------------------------------------------------------------------ transition models
// Dense: row (b, s, a) is P + ((b*S + s)*A + a)*S.
template <class T>
struct Dense {
  static constexpr bool kBlockDots = true;
  const T* P;
  index_t S, A;
  PGM_HD acc_t<T> dot(index_t b, index_t s, index_t a, const T* v) const {
    return dot_dense(P + ((b * S + s) * A + a) * S, v, S);
  }
  // out[k] = dot(b, s, a0 + k, v) for k < na (na <= 4).
  PGM_HD void dot_block(index_t b, index_t s, index_t a0, int na, const T* v, acc_t<T>* out) const {
#if defined(PGM_MDP_AVX2_DISPATCH)
    if constexpr (std::is_same<T, double>::value) {
      if (na == 4 && kHaveAvx2) return dot4_avx2(P + ((b * S + s) * A + a0) * S, S, v, S, out);
    }
#endif
    for (int k = 0; k < na; ++k) out[k] = dot(b, s, a0 + k, v);
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
  static constexpr bool kBlockDots = false;
  const T* data;
  const std::int32_t* indices;
  const std::int64_t* indptr;
  index_t S, A;
  PGM_HD acc_t<T> dot(index_t b, index_t s, index_t a, const T* v) const {
    const index_t r = (b * S + s) * A + a;
    acc_t<T> acc = 0;
    for (std::int64_t k = indptr[r]; k < indptr[r + 1]; ++k)
      acc += static_cast<acc_t<T>>(data[k]) * v[indices[k]];
    return acc;
  }
  PGM_HD void dot_block(index_t b, index_t s, index_t a0, int na, const T* v, acc_t<T>* out) const {
    for (int k = 0; k < na; ++k) out[k] = dot(b, s, a0 + k, v);
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
PGM_HD T backup_state(const M& m, index_t b, index_t s, const T* r_s, const T* v, T gamma,
                      int kind, std::int64_t pi_det, const T* pi_s, T tau, T* q_s,
                      std::int64_t* best) {
  T qmax = neg_inf<T>();
  std::int64_t arg = 0;
  acc_t<T> expect = 0;
  if constexpr (M::kBlockDots) {  // dense: four actions per pass over v
    for (index_t a0 = 0; a0 < m.A; a0 += 4) {
      const int na = m.A - a0 < 4 ? static_cast<int>(m.A - a0) : 4;
      acc_t<T> d[4];
      m.dot_block(b, s, a0, na, v, d);
      for (int k = 0; k < na; ++k) {
        const index_t a = a0 + k;
        const T q = static_cast<T>(r_s[a] + gamma * d[k]);
        q_s[a] = q;
        if (q > qmax) { qmax = q; arg = a; }
        if (kind == kStochastic) expect += static_cast<acc_t<T>>(pi_s[a]) * q;
      }
    }
  } else {
    for (index_t a = 0; a < m.A; ++a) {
      const T q = q_value(m, b, s, a, r_s[a], v, gamma);
      q_s[a] = q;
      if (q > qmax) { qmax = q; arg = a; }
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
PGM_HD T policy_value_state(const M& m, index_t b, index_t s, const T* r_s, const T* v, T gamma,
                            std::int64_t pi_det, const T* pi_s) {
  if (pi_s == nullptr) return q_value(m, b, s, pi_det, r_s[pi_det], v, gamma);
  acc_t<T> acc = 0;
  for (index_t a = 0; a < m.A; ++a)
    if (pi_s[a] != T(0)) acc += static_cast<acc_t<T>>(pi_s[a]) * q_value(m, b, s, a, r_s[a], v, gamma);
  return static_cast<T>(acc);
}

// ------------------------------------------------------------------ CPU: one sweep
// One backup sweep over B MDPs, OpenMP over (b, s). pi_det: (B, S) int64 or nullptr;
// pi_stoch: (B, S, A) or nullptr; tau: (B,) or nullptr.
template <class T, class M>
void backup_sweep_cpu(const M& m, const T* R, const T* V, const T* gamma, index_t B, int kind,
                      const std::int64_t* pi_det, const T* pi_stoch, const T* tau, T* Q, T* V_out,
                      std::int64_t* policy) {
  const index_t S = m.S, A = m.A;
#pragma omp parallel for collapse(2) schedule(guided, 16)
  for (index_t b = 0; b < B; ++b)
    for (index_t s = 0; s < S; ++s) {
      const index_t bs = b * S + s;
      V_out[bs] = backup_state(m, b, s, R + bs * A, V + b * S, gamma[b], kind,
                               pi_det ? pi_det[bs] : 0, pi_stoch ? pi_stoch + bs * A : nullptr,
                               tau ? tau[b] : T(1), Q + bs * A, policy + bs);
    }
}

// ------------------------------------------------------------------ CPU: solver loops
// Settings of modified policy iteration (value iteration and policy iteration are its ends).
struct SolveOptions {
  std::int64_t max_iter = 1000;  // full (improvement) sweeps per MDP
  bool span = true;              // stop on span(T v - v) (true) or on ||T v - v||_inf
  std::int64_t eval_max = 0;     // evaluation sweeps per improvement: 0 = value iteration
  double eval_rel = -1;          // < 0: exactly eval_max sweeps; >= 0: adaptive (see solve_one)
  double row_tol = -1;           // >= 0: check P's rows during the first sweep that reads P
};

// Per-MDP results.
struct SolveStats {
  std::int64_t iterations = 0, eval_sweeps = 0;
  double residual = 0;
  bool converged = false;
  bool checked = false;                  // the fused input check ran (see row_tol)
  double check[3] = {0, 0, 0};           // max |row sum - 1|, min entry, #rows with NaN/inf
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
bool parallel_states(const Dense<T>& m) { return m.S * m.S * m.A >= (index_t(1) << 21); }
template <class T>
bool parallel_states(const Csr<T>& m) {
  return (m.indptr[m.S * m.A] - m.indptr[0]) >= (index_t(1) << 20);  // nnz of the first MDP
}

// u = T v (optimality), with Q and the greedy policy; returns the range of u - v.
// `zero_v`: v is identically zero, so P v = 0 exactly and P is not read.
// `chk` (nullable): also the input check of every row {max |sum - 1|, min, #non-finite rows},
// on rows that this sweep has just brought into cache.
template <class T, class M>
Range improve_sweep(const M& m, index_t b, const T* r, const T* v, bool zero_v, T gamma, bool par,
                    T* u, T* q, std::int64_t* pi, double* chk = nullptr) {
  const index_t S = m.S, A = m.A;
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  double err = 0, mn = std::numeric_limits<double>::infinity();
  std::int64_t bad = 0;
#pragma omp parallel for if (par) schedule(guided, 16) reduction(min : lo, mn) reduction(max : hi, err) reduction(+ : bad)
  for (index_t s = 0; s < S; ++s) {
    T best;
    if (zero_v) {
      best = neg_inf<T>();
      std::int64_t arg = 0;
      for (index_t a = 0; a < A; ++a) {
        q[s * A + a] = r[s * A + a];
        if (r[s * A + a] > best) { best = r[s * A + a]; arg = a; }
      }
      pi[s] = arg;
    } else {
      best = backup_state(m, b, s, r + s * A, v, gamma, kOptimal, 0, static_cast<const T*>(nullptr),
                          T(1), q + s * A, pi + s);
    }
    u[s] = best;
    const double d = static_cast<double>(best) - static_cast<double>(v[s]);
    lo = std::min(lo, d);
    hi = std::max(hi, d);
    if (chk) {
      for (index_t a = 0; a < A; ++a) {
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
  }
  if (chk) {
    chk[0] = err;
    chk[1] = mn;
    chk[2] = static_cast<double>(bad);
  }
  return Range{lo, hi};
}

// w = T_pi u for a deterministic (pi_s == nullptr) or stochastic policy; range of w - u.
template <class T, class M>
Range policy_sweep(const M& m, index_t b, const T* r, const T* u, T gamma, const std::int64_t* pi,
                   const T* pi_stoch, bool par, T* w) {
  const index_t S = m.S, A = m.A;
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
#pragma omp parallel for if (par) schedule(guided, 16) reduction(min : lo) reduction(max : hi)
  for (index_t s = 0; s < S; ++s) {
    const T x = policy_value_state(m, b, s, r + s * A, u, gamma, pi ? pi[s] : 0,
                                   pi_stoch ? pi_stoch + s * A : static_cast<const T*>(nullptr));
    w[s] = x;
    const double d = static_cast<double>(x) - static_cast<double>(u[s]);
    lo = std::min(lo, d);
    hi = std::max(hi, d);
  }
  return Range{lo, hi};
}

// Shift x[0..n) by c (the MacQueen midpoint correction).
template <class T>
void shift(T* x, index_t n, double c) {
  for (index_t i = 0; i < n; ++i) x[i] = static_cast<T>(x[i] + c);
}

// Modified policy iteration on MDP b (r = R + b*S*A). V holds the initial values on entry
// and the result on exit; Q and pi receive the last improvement sweep (Q shifted like V).
//
//   loop: u = T v (greedy pi); res = span or sup of u - v; stop if res < thresh;
//         v = T_pi^k u, k evaluation sweeps (fixed: eval_max; adaptive: until the span of an
//         evaluation step is below max(thresh/2, eval_rel * res), or thresh/2 alone once the
//         policy stopped changing, at most eval_max), then v += g/(1-g) * midpoint (exact
//         for span stopping, which is shift invariant; it only speeds up sup stopping).
//   span stop: V = u + g/(1-g) * mid(u - v), so ||V - V*||_inf <= g/(1-g) * res / 2.
//   sup stop:  V = u, so ||V - V*||_inf <= g/(1-g) * res.
template <class T, class M>
SolveStats solve_one(const M& m, index_t b, const T* r, T gamma, double thresh,
                     const SolveOptions& opt, bool par, T* V, T* Q, std::int64_t* pi) {
  const index_t S = m.S, A = m.A;
  std::vector<T> bufu(S), bufw(S);
  std::vector<std::int64_t> prev(S, -1);
  T *v = V, *u = bufu.data(), *w = bufw.data();
  bool zero_v = true;
  for (index_t s = 0; s < S; ++s) zero_v = zero_v && V[s] == T(0);
  const double g = static_cast<double>(gamma), k = g < 1 ? g / (1 - g) : 0;
  SolveStats st;
  Range rg;
  for (;;) {
    const bool do_check = opt.row_tol >= 0 && !st.checked && !zero_v;
    rg = improve_sweep(m, b, r, v, zero_v, gamma, par, u, Q, pi, do_check ? st.check : nullptr);
    zero_v = false;
    ++st.iterations;
    if (do_check) {
      st.checked = true;
      if (!(st.check[0] <= opt.row_tol) || st.check[1] < 0 || st.check[2] > 0) break;  // invalid P
    }
    st.residual = opt.span ? rg.span() : rg.sup();
    if (st.residual < thresh || st.residual == 0) { st.converged = true; break; }
    if (st.iterations >= opt.max_iter) break;
    if (opt.eval_max > 0) {
      bool same = true;
      for (index_t s = 0; s < S && same; ++s) same = prev[s] == pi[s];
      std::copy(pi, pi + S, prev.begin());
      const double target =
          opt.eval_rel < 0 ? -1.0 : std::max(0.5 * thresh, same ? 0.0 : opt.eval_rel * st.residual);
      T* x = u;
      Range er;
      for (std::int64_t j = 0; j < opt.eval_max; ++j) {
        er = policy_sweep(m, b, r, x, gamma, pi, static_cast<const T*>(nullptr), par, w);
        ++st.eval_sweeps;
        std::swap(x, w);
        if (target >= 0 && er.span() < target) break;
      }
      if (x != u) { w = u; u = x; }  // the latest iterate lives in u
      if (k > 0 && er.lo <= er.hi) shift(u, S, k * er.mid());
    }
    // v <- u (keep V's storage as one of the two live buffers)
    std::swap(v, u);
  }
  double c = 0;
  if (opt.span && k > 0) c = k * rg.mid();
  for (index_t s = 0; s < S; ++s) V[s] = static_cast<T>(u[s] + c);
  if (c != 0) shift(Q, S * A, c);
  return st;
}

// Iterative policy evaluation on MDP b: v <- T_pi v until the span (or sup) of a step is
// below thresh; the span rule adds the midpoint correction (error <= g/(1-g) * res / 2).
template <class T, class M>
SolveStats evaluate_one(const M& m, index_t b, const T* r, T gamma, double thresh,
                        std::int64_t max_iter, bool span, const std::int64_t* pi,
                        const T* pi_stoch, bool par, T* V) {
  const index_t S = m.S;
  std::vector<T> buf(S);
  T *x = V, *w = buf.data();
  const double g = static_cast<double>(gamma), k = g < 1 ? g / (1 - g) : 0;
  SolveStats st;
  Range rg;
  for (;;) {
    rg = policy_sweep(m, b, r, x, gamma, pi, pi_stoch, par, w);
    std::swap(x, w);
    ++st.iterations;
    st.residual = span ? rg.span() : rg.sup();
    if (st.residual < thresh || st.residual == 0) { st.converged = true; break; }
    if (st.iterations >= max_iter) break;
  }
  const double c = span && k > 0 ? k * rg.mid() : 0;
  for (index_t s = 0; s < S; ++s) V[s] = static_cast<T>(x[s] + c);
  return st;
}

// Runs f(b, par) for every MDP: over MDPs in parallel when the batch can occupy the
// threads, else one MDP after the other with the states of each sweep in parallel.
template <class F>
void for_each_mdp(index_t B, bool split_states, F&& f) {
  int threads = 1;
#if defined(_OPENMP)
  threads = omp_get_max_threads();
#endif
  if (B >= threads && B > 1) {
#pragma omp parallel for schedule(dynamic, 1)
    for (index_t b = 0; b < B; ++b) f(b, false);
  } else {
    for (index_t b = 0; b < B; ++b) f(b, threads > 1 && split_states);
  }
}

template <class T, class M>
void solve_cpu(const M& m, const T* R, const T* gamma, const double* thresh, index_t B,
               const SolveOptions& opt, T* V, T* Q, std::int64_t* policy, std::int64_t* iterations,
               std::int64_t* eval_sweeps, double* residual, std::uint8_t* converged,
               double* check_stats) {
  const index_t S = m.S, A = m.A;
  for_each_mdp(B, parallel_states(m), [&](index_t b, bool par) {
    const SolveStats st = solve_one(m, b, R + b * S * A, gamma[b], thresh[b], opt, par, V + b * S,
                                    Q + b * S * A, policy + b * S);
    iterations[b] = st.iterations;
    eval_sweeps[b] = st.eval_sweeps;
    residual[b] = st.residual;
    converged[b] = st.converged;
    check_stats[4 * b] = st.checked;
    for (int k = 0; k < 3; ++k) check_stats[4 * b + 1 + k] = st.check[k];
  });
}

template <class T, class M>
void evaluate_cpu(const M& m, const T* R, const T* gamma, const double* thresh, index_t B,
                  std::int64_t max_iter, bool span, const std::int64_t* pi, const T* pi_stoch, T* V,
                  std::int64_t* iterations, double* residual, std::uint8_t* converged) {
  const index_t S = m.S, A = m.A;
  for_each_mdp(B, parallel_states(m), [&](index_t b, bool par) {
    const SolveStats st = evaluate_one(m, b, R + b * S * A, gamma[b], thresh[b], max_iter, span,
                                       pi ? pi + b * S : nullptr, pi_stoch ? pi_stoch + b * S * A : nullptr,
                                       par, V + b * S);
    iterations[b] = st.iterations;
    residual[b] = st.residual;
    converged[b] = st.converged;
  });
}

// ------------------------------------------------------------------ CPU: input checks
// Over rows of length S (dense): out = {max |row sum - 1|, min entry, #rows with NaN/inf}.
// A NaN or inf entry makes its row sum NaN or inf, so one vectorised pass of sums and minima
// finds every problem.
template <class T>
void row_stats_dense_cpu(const T* P, index_t rows, index_t S, double* out) {
  const Dense<T> m{P, S, 1};  // row i is "state" i of one MDP with one action
  double err = 0, mn = std::numeric_limits<double>::infinity();
  std::int64_t bad = 0;
#pragma omp parallel for schedule(guided, 16) reduction(max : err) reduction(min : mn) reduction(+ : bad)
  for (index_t i = 0; i < rows; ++i) {
    double sum, rmn;
    m.row_sum_min(0, i, 0, sum, rmn);
    if (!std::isfinite(sum)) {
      ++bad;
    } else {
      err = std::max(err, std::fabs(sum - 1.0));
      mn = std::min(mn, rmn);
    }
  }
  out[0] = bad ? std::numeric_limits<double>::quiet_NaN() : err;
  out[1] = mn;
  out[2] = static_cast<double>(bad);
}

// The same over CSR rows (empty rows have sum 0, so they fail the sum check).
template <class T>
void row_stats_csr_cpu(const T* data, const std::int64_t* indptr, index_t rows, double* out) {
  double err = 0, mn = std::numeric_limits<double>::infinity();
  std::int64_t bad = 0;
#pragma omp parallel for schedule(static) reduction(max : err) reduction(min : mn) reduction(+ : bad)
  for (index_t i = 0; i < rows; ++i) {
    double sum = 0;
    for (std::int64_t k = indptr[i]; k < indptr[i + 1]; ++k) {
      const double x = data[k];
      sum += x;
      mn = std::min(mn, x);
      bad += !std::isfinite(x);
    }
    err = std::max(err, std::fabs(sum - 1.0));
  }
  out[0] = bad ? std::numeric_limits<double>::quiet_NaN() : err;
  out[1] = mn;
  out[2] = static_cast<double>(bad);
}

}  // namespace pygenmod::mdp
