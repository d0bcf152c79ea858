// Fused cross-entropy-method iteration (diagonal Gaussian): sample the population, then select
// the elites and refit the moments, and the loop of a whole optimisation around the user's
// objective (optimize_diag). Same results as the composition of the separate kernels (the samplers'
// noise layout, batched top-k, the weighted M-step with K = 1).
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "pygenmod/gmm.hpp"
#include "pygenmod/parallel.hpp"
#include "pygenmod/sampling.hpp"
#include "pygenmod/topk.hpp"

namespace pygenmod::cem {

// Below this many sample elements (B * N * D) a call stays on the calling thread: waking the
// pool's threads costs more than a small call (bench/interleaved.py).
constexpr index_t PAR_MIN = index_t(1) << 15;

// Samples shorter than this go through affine_periodic.
constexpr index_t kShortRow = 32;

// x[j] = mp[j % period] + sp[j % period] * e[j] for j < n, in runs of one period (the same
// arithmetic per element as the per-sample loop, so the same bits).
template <class T, class E>
void affine_periodic(const T* mp, const T* sp, index_t period, const E* e, index_t n, T* x) {
  if constexpr (std::is_same_v<T, E>)
    if (e == x) {  // noise drawn into x itself (written apart: vectorised without an overlap test)
      for (index_t j0 = 0; j0 < n; j0 += period) {
        const index_t len = std::min(period, n - j0);
        T* xj = x + j0;
        for (index_t j = 0; j < len; ++j) xj[j] = mp[j] + sp[j] * xj[j];
      }
      return;
    }
  for (index_t j0 = 0; j0 < n; j0 += period) {
    const index_t len = std::min(period, n - j0);
    const E* ej = e + j0;
    T* xj = x + j0;
    for (index_t j = 0; j < len; ++j) xj[j] = mp[j] + sp[j] * static_cast<T>(ej[j]);
  }
}

// X (B, N, D): X[b, s] = mean[b] + std[b] * eps, eps = elements [offset + s*D, offset + (s+1)*D)
// of normal stream stream0 + b, drawn in the noise type E (float: the float32 layout, float64:
// the float64 one; random.hpp) and converted to T: the layout of sampling::normal_head with
// n_samples = N. The noise goes in slices of whole samples (or pieces of one long sample) of
// ~16 KB, and each slice is moved and scaled while it is still in L1: one pass over X (W9b writes
// 65 MB per population). The draws do not depend on where a slice starts (sampling.hpp), so they
// are those of one fill_range over the row. With E = T the noise is drawn into X itself.
template <class T, class E = T>
void sample_row(const T* m, const T* s, std::uint64_t seed, std::uint64_t stream, std::uint64_t offset, index_t N,
                index_t D, T* x) {
  constexpr bool in_place = std::is_same_v<T, E>;
  constexpr index_t kCap = 16384 / static_cast<index_t>(std::max(sizeof(T), sizeof(E)));  // entries per slice
  [[maybe_unused]] alignas(64) E buf[in_place ? 1 : kCap];
  // rows > 1 only when D <= kCap / 2, so a slice is always a contiguous run of the row's noise
  const index_t rows = std::max<index_t>(1, kCap / D), cols = std::min(D, kCap);
  // Short samples (the demo's D = 3) leave the per-sample loop too short to vectorise: m and s
  // are repeated to a period of whole samples, and each slice runs as one flat loop.
  alignas(64) T mp[2 * kShortRow], sp[2 * kShortRow];
  index_t period = 0;
  if (D < kShortRow)
    for (; period < kShortRow; period += D)
      for (index_t d = 0; d < D; ++d) mp[period + d] = m[d], sp[period + d] = s[d];
  for (index_t i0 = 0; i0 < N; i0 += rows) {
    const index_t i1 = std::min(N, i0 + rows);
    for (index_t d0 = 0; d0 < D; d0 += cols) {
      const index_t d1 = std::min(D, d0 + cols), w = d1 - d0, start = i0 * D + d0;
      E* e;
      if constexpr (in_place)
        e = x + start;
      else
        e = buf;
      sampling::fill_range<E>(rng::NORMAL, seed, stream, offset + static_cast<std::uint64_t>(start), (i1 - i0) * w, e);
      if (D < kShortRow) {  // whole samples: one flat run against the repeated mean and scale
        affine_periodic(mp, sp, period, e, (i1 - i0) * D, x + start);
        continue;
      }
      for (index_t i = 0; i < i1 - i0; ++i) {
        T* xi = x + (i0 + i) * D;
        const E* ei = e + i * w;
        for (index_t d = d0; d < d1; ++d) xi[d] = m[d] + s[d] * static_cast<T>(ei[d - d0]);
      }
    }
  }
}

template <class T, class E = T>
void sample_diag(const T* mean, const T* std_, std::uint64_t seed, std::uint64_t stream0, std::uint64_t offset,
                 index_t B, index_t N, index_t D, T* X) {
  parallel_for(B, share_chunk(B), B > 1 && B * N * D > PAR_MIN, [&](index_t b) {
    sample_row<T, E>(mean + b * D, std_ + b * D, seed, stream0 + b, offset, N, D, X + b * N * D);
  });
}

struct UpdateOptions {
  index_t k;  // elites
  double alpha, min_std, reg;
};

// One row: best-so-far, elites (idx), their mean return (hist), and the smoothed, floored refit of
// mean/std in place. w: the k elite weights, largest first. Returns false if R has NaN/inf.
// scratch: 2 N entries; mu, var: D.
template <class T>
bool update_row(const T* X, const T* R, index_t N, index_t D, const T* w, const UpdateOptions& o, T* mean, T* std_,
                T* best_x, T* best_r, T* hist, std::int64_t* idx, T* mu, T* var, T* scratch, bool idx_ready = false) {
  bool bad = false;  // an OR of comparisons: vectorised, where an early exit per element is not
  for (index_t i = 0; i < N; ++i) bad |= !(std::abs(R[i]) <= std::numeric_limits<T>::max());
  if (bad) return false;
  const index_t k = o.k;
  if (!idx_ready) topk::select_top_k(R, N, k, idx, scratch);  // the k best, largest first, ties to the lower index
  const index_t arg = idx[0];                                 // the first largest return
  if (R[arg] > *best_r) {
    *best_r = R[arg];
    for (index_t d = 0; d < D; ++d) best_x[d] = X[arg * D + d];
  }
  T wsum = 0, rsum = 0;
  for (index_t d = 0; d < D; ++d) mu[d] = var[d] = 0;
  for (index_t j = 0; j < k; ++j) {
    const T* x = X + idx[j] * D;
    wsum += w[j];
    rsum += R[idx[j]];
    for (index_t d = 0; d < D; ++d) mu[d] += w[j] * x[d];
  }
  *hist = rsum / T(k);
  for (index_t d = 0; d < D; ++d) mu[d] /= wsum;
  for (index_t j = 0; j < k; ++j) {
    const T* x = X + idx[j] * D;
    for (index_t d = 0; d < D; ++d) {
      const T c = x[d] - mu[d];
      var[d] += w[j] * c * c;
    }
  }
  const T a = T(o.alpha), floor = T(o.min_std), reg = T(o.reg);
  for (index_t d = 0; d < D; ++d) {
    const T sd = std::sqrt(var[d] / wsum + reg);
    mean[d] = a * mean[d] + (T(1) - a) * mu[d];
    const T s = a * std_[d] + (T(1) - a) * sd;
    std_[d] = s > floor ? s : floor;
  }
  return true;
}

// Every row; returns the number of rows whose returns hold NaN or infinity (their state is
// left as it was only up to the first bad row; the caller raises and discards the state).
template <class T>
index_t update_diag(const T* X, const T* R, index_t B, index_t N, index_t D, const T* w, const UpdateOptions& o,
                    T* mean, T* std_, T* best_x, T* best_r, T* hist, std::int64_t* idx) {
  struct Scratch {
    std::vector<T> mu, var, vals;
    Scratch(index_t D, index_t N) : mu(D), var(D), vals(2 * N) {}
  };
  auto row = [&](index_t b, Scratch& s, bool idx_ready = false) {
    return !update_row<T>(X + b * N * D, R + b * N, N, D, w, o, mean + b * D, std_ + b * D, best_x + b * D, best_r + b,
                          hist + b, idx + b * o.k, s.mu.data(), s.var.data(), s.vals.data(), idx_ready);
  };
  const bool par = B > 1 && B * N * D > PAR_MIN;
  if (!par) {                                         // on the calling thread: every row's elites first,
    const bool ready = o.k <= topk::INSERTION_MAX_K;  // four rows at a time (topk.hpp)
    if (ready) topk::insert_top_k_rows(R, B, N, o.k, idx);
    Scratch s(D, ready ? 0 : N);  // (the insertion needs no scratch)
    index_t bad = 0;
    for (index_t b = 0; b < B; ++b) bad += row(b, s, ready) ? 1 : 0;
    return bad;
  }
  std::atomic<index_t> bad{0};
  auto scratch = per_slot([&] { return Scratch(D, N); });
  parallel_for_slots(B, share_chunk(B), par, scratch, [&](index_t b, Scratch& s) {
    if (row(b, s)) bad.fetch_add(1, std::memory_order_relaxed);
  });
  return bad.load();
}

// The whole diagonal CEM of cem_optimize, so that a small problem pays no call per step: for
// t in [0, n_iter), population t is drawn into X (offset t * N * D of the streams), then
// evaluate(t, X, &X_next) returns its returns R (B * N, valid until the next evaluate) and
// names the buffer of the next population (X itself unless the caller must keep X), then the
// update writes hist[t * B .. t * B + B). E: the noise type (sample_diag). Returns n_iter, or the
// first t whose returns held NaN or infinity (the state is then partly updated: the caller
// raises and discards it).
template <class T, class E = T, class Evaluate>
index_t optimize_diag(index_t n_iter, index_t B, index_t N, index_t D, std::uint64_t seed, std::uint64_t stream0,
                      const T* w, const UpdateOptions& o, T* mean, T* std_, T* best_x, T* best_r, T* hist,
                      std::int64_t* idx, T* X, Evaluate&& evaluate) {
  for (index_t t = 0; t < n_iter; ++t) {
    sample_diag<T, E>(mean, std_, seed, stream0, static_cast<std::uint64_t>(t * N * D), B, N, D, X);
    T* next = X;
    const T* R = evaluate(t, X, &next);
    if (update_diag<T>(X, R, B, N, D, w, o, mean, std_, best_x, best_r, hist + t * B, idx) > 0) return t;
    X = next;
  }
  return n_iter;
}

// a x + b y as NumPy evaluates it on arrays: both products rounded, then the sum (volatile:
// never fused into an FMA, whatever the build's -ffp-contract).
template <class T>
T blend_unfused(T a, T x, T b, T y) {
  volatile T p = a * x, q = b * y;
  return p + q;
}

// cem.cem_step for covariance="diag" with uniform elite weights in one call: the Python layer's
// general path in its order (batched top-k, the weighted M-step with K = 1, then the smoothing
// new = alpha old + (1 - alpha) fitted in T and the floor std >= min_std), so the two give the
// same bits. mean, std_ (B, D); X (B, N, D); R (B, N); new_mean, new_std (B, D). Serial: the
// one-call path takes small problems only.
template <class T>
void step_diag_uniform(const T* mean, const T* std_, const T* X, const T* R, index_t B, index_t N, index_t D, index_t k,
                       double alpha, double min_std, double reg, T* new_mean, T* new_std) {
  std::vector<std::int64_t> idx(static_cast<std::size_t>(B * k));
  topk::top_k_cpu<T>(R, B, N, k, idx.data());
  std::vector<T> w(static_cast<std::size_t>(B * N), T(0)), ones(static_cast<std::size_t>(B * N), T(1));
  const T wk = static_cast<T>(1.0 / static_cast<double>(k));
  for (index_t b = 0; b < B; ++b)
    for (index_t j = 0; j < k; ++j) w[b * N + idx[b * k + j]] = wk;
  const std::vector<T> regs(static_cast<std::size_t>(B), static_cast<T>(reg));
  std::vector<T> weights(B), mu(B * D), var(B * D), pc(B * D);
  std::vector<std::uint8_t> flags(B);
  gmm::m_step_cpu<T>(gmm::DIAG, X, w.data(), ones.data(), regs.data(), B, 1, N, D, 1, weights.data(), mu.data(),
                     var.data(), pc.data(), flags.data());
  const T a = static_cast<T>(alpha), c = static_cast<T>(1.0 - alpha), floor = static_cast<T>(min_std);
  for (index_t i = 0; i < B * D; ++i) {
    new_mean[i] = blend_unfused(a, mean[i], c, mu[i]);
    const T sd = blend_unfused(a, std_[i], c, std::sqrt(var[i]));
    new_std[i] = sd > floor ? sd : floor;
  }
}

}  // namespace pygenmod::cem
