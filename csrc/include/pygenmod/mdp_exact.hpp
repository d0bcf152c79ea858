// Exact policy iteration of small dense MDPs, the whole loop in compiled code: each policy is
// evaluated by a dense LU solve (partial pivoting, float64) of (I - gamma P_pi) V = r_pi,
// then improved by one backup sweep that keeps the current action where it is still greedy.
// The Python layer uses it for S up to a few dozen states, where NumPy's per-call overhead
// (a LAPACK solve, fancy indexing, a backup call per iteration) is most of the time; larger
// MDPs go to LAPACK from Python.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "pygenmod/interrupt.hpp"
#include "pygenmod/mdp.hpp"

namespace pygenmod::mdp {

// Solves M x = y for one n x n row-major M (overwritten by its LU factors); y becomes x.
// Partial pivoting (a NaN entry counts as the largest pivot, so NaN propagates as in LAPACK).
// Returns false for an exactly singular M (a zero pivot), like LAPACK's gesv.
inline bool lu_solve(double* M, double* y, index_t n) {
  for (index_t k = 0; k < n; ++k) {
    index_t p = k;
    double best = std::fabs(M[k * n + k]);
    for (index_t i = k + 1; i < n && !std::isnan(best); ++i) {
      const double a = std::fabs(M[i * n + k]);
      if (a > best || std::isnan(a)) {
        best = a;
        p = i;
      }
    }
    if (best == 0.0) return false;
    if (p != k) {
      for (index_t j = 0; j < n; ++j) std::swap(M[k * n + j], M[p * n + j]);
      std::swap(y[k], y[p]);
    }
    const double inv = 1.0 / M[k * n + k];
    for (index_t i = k + 1; i < n; ++i) {
      const double l = M[i * n + k] * inv;
      if (l == 0.0) continue;
      for (index_t j = k + 1; j < n; ++j) M[i * n + j] -= l * M[k * n + j];
      y[i] -= l * y[k];
    }
  }
  for (index_t k = n - 1; k >= 0; --k) {
    double s = y[k];
    for (index_t j = k + 1; j < n; ++j) s -= M[k * n + j] * y[j];
    y[k] = s / M[k * n + k];
  }
  return true;
}

// Exact policy iteration of MDP b (pi holds the starting policy; see policy_iteration_exact_cpu).
// Returns false when a policy's system is singular (only possible without the row checks).
template <class T>
bool policy_iteration_exact_one(const Dense<T>& m, index_t b, const T* R, T gamma, std::int64_t max_iter, T* V, T* Q,
                                std::int64_t* pi, std::int64_t& its, std::uint8_t& done, Stop& stop) {
  const index_t S = m.S, A = m.A;
  const double g = static_cast<double>(gamma);
  std::vector<double> M(S * S), y(S);
  its = 0;
  done = 0;
  for (std::int64_t it = 0; it < max_iter; ++it) {
    ++its;
    for (index_t s = 0; s < S; ++s) {  // (I - g P_pi) V = r_pi
      const T* row = m.row(b, s, pi[s]);
      for (index_t t = 0; t < S; ++t) M[s * S + t] = (s == t ? 1.0 : 0.0) - g * static_cast<double>(row[t]);
      y[s] = static_cast<double>(R[s * A + pi[s]]);
    }
    if (!lu_solve(M.data(), y.data(), S)) return false;
    for (index_t s = 0; s < S; ++s) V[s] = static_cast<T>(y[s]);
    bool same = true;
    for (index_t s = 0; s < S; ++s) {  // improve; keep the current action where it ties
      std::int64_t best;
      backup_state(m, b, s, R + s * A, V, gamma, kOptimal, 0, static_cast<const T*>(nullptr), T(1), Q + s * A, &best);
      if (!(Q[s * A + pi[s]] >= Q[s * A + best])) {  // (negated: NaN switches, as in NumPy's where)
        same = same && best == pi[s];
        pi[s] = best;
      }
    }
    if (same) {
      done = 1;
      break;
    }
    if (stop.poll(static_cast<double>(S) * S * S)) break;
  }
  return true;
}

// Exact policy iteration of B dense MDPs (V, Q, pi, iterations, done per MDP, batch-first).
// init: pi holds the starting policies; else it starts from the greedy policy of V = 0.
// Every MDP iterates until its policy repeats or max_iter evaluations; MDPs run in parallel
// when the batch is large enough to pay for the threads. Returns the first MDP whose system
// was singular, or -1.
template <class T>
index_t policy_iteration_exact_cpu(const Dense<T>& m, const T* R, const T* gamma, index_t B, std::int64_t max_iter,
                                   bool init, T* V, T* Q, std::int64_t* pi, std::int64_t* iterations,
                                   std::uint8_t* done, Stop& stop = Stop::never()) {
  const index_t S = m.S, A = m.A;
  std::vector<std::uint8_t> singular(B, 0);
  auto one = [&](index_t b) {
    T* v = V + b * S;
    T* q = Q + b * S * A;
    std::int64_t* p = pi + b * S;
    if (!init) {  // greedy policy of V = 0
      std::fill(v, v + S, T(0));
      for (index_t s = 0; s < S; ++s)
        backup_state(m, b, s, R + (b * S + s) * A, v, gamma[b], kOptimal, 0, static_cast<const T*>(nullptr), T(1),
                     q + s * A, p + s);
    }
    singular[b] =
        !policy_iteration_exact_one(m, b, R + b * S * A, gamma[b], max_iter, v, q, p, iterations[b], done[b], stop);
  };
  // an evaluation costs ~S^3/3 multiply-adds: run MDPs in parallel once a round of them is long
  constexpr double kParMin = 1 << 17;
  if (B > 1 && static_cast<double>(B) * S * S * S >= kParMin) {
    ItemQueue q(B, stop);
#pragma omp parallel
    {
      for (std::int64_t b; q.next(b); q.done()) one(b);
      q.drain();
    }
  } else {
    for (index_t b = 0; b < B && !stop.stopped(); ++b) one(b);
  }
  for (index_t b = 0; b < B; ++b)
    if (singular[b]) return b;
  return -1;
}

}  // namespace pygenmod::mdp
