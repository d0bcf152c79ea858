// CUDA launchers for the Gaussian-mixture kernels; the per-point math (log-densities,
// log-sum-exp, sampling) and the M-step (finalize) are pygenmod/gmm.hpp's PGM_HD functions.
//
// EM iteration on the device, without host synchronisation:
//   1. estep:   one thread per (set, point): weighted responsibilities r[b,n,k] and w*log-norm;
//   2. sums:    the statistics of every set in the fixed order of pygenmod/launch_grid.hpp
//               (tiles of points summed serially, tiles in order within a group, groups in
//               order; no atomics): stats_kernel with one thread per (set, group, statistic)
//               adding its group's tiles, or, when that leaves the GPU idle (few sets), one
//               thread per (set, group, tile, statistic) and fold_tiles_kernel adding the tiles
//               of each group in order; then reduce_kernel adds the groups in order. Both
//               grids make the same additions in the same order (bitwise the same sums);
//   3. finish:  one thread per set: M-step (finalize), bound, convergence; converged sets are
//               skipped by every later kernel.
// The weighted centre of each set runs through the same sums (statistics w x_d and w).
// Each pass launches over a list of the running sets (active_sets.cuh): gmm_fit refreshes it
// every kSyncEvery iterations (one host synchronisation each) and stops when it is empty.
#include <cuda_runtime.h>

#include <vector>

#include "active_sets.cuh"
#include "cuda_check.cuh"
#include "gmm.cuh"
#include "pygenmod/gmm.hpp"
#include "pygenmod/launch_grid.hpp"
#include "scratch.cuh"
#include "sm_count.cuh"

namespace pygenmod::cuda {
namespace {

using namespace pygenmod::gmm;

constexpr unsigned kThreads = 128;
constexpr index_t kSyncEvery = 4;  // EM iterations between two looks at the running sets

// The EM buffers of one launcher call, carved from the caller's scratch (see scratch.cuh).
// `sms`: the device's multiprocessor count (sizes the tile partials of small batches).
struct EmBuffers {
  double *r, *llp, *part, *tpart, *st, *c, *wsum, *prev, *work;
  std::uint8_t* active;
  index_t *list, *count;  // running sets (active_sets.cuh)
  EmBuffers(Carve& cv, int type, index_t B, index_t N, index_t D, index_t K, int sms) {
    const auto n = [](index_t x) { return static_cast<std::size_t>(x); };
    const index_t SS = stats_size(type, K, D);  // > D + 1, the centre's statistics
    const index_t tp = stats_tile_partials(B, N, SS, kThreads, sms),
                  tc = stats_tile_partials(B, N, D + 1, kThreads, sms);
    r = cv.take<double>(n(B * N * K));
    llp = cv.take<double>(n(B * N));
    part = cv.take<double>(n(B * n_groups(N) * SS));
    tpart = cv.take<double>(n(tp > tc ? tp : tc));
    st = cv.take<double>(n(B * SS));
    c = cv.take<double>(n(B * D));
    wsum = cv.take<double>(n(B));
    prev = cv.take<double>(n(B));
    work = cv.take<double>(n(B * finalize_workspace(K, D)));
    active = cv.take<std::uint8_t>(n(B));
    list = cv.take<index_t>(n(B));
    count = cv.take<index_t>(1);
  }
};

// ---- the statistics: a functor gives the serial sum of statistic q of set s over [n0, n1)

// Weighted centre sums of set s: q < D: sum w x_q, q = D: sum w (points with w > 0).
template <class T>
struct CentreStat {
  const T *X, *W;
  index_t n_rep, N, D;
  __device__ double operator()(index_t s, index_t q, index_t n0, index_t n1) const {
    const index_t xb = s / n_rep;
    double acc = 0;
    for (index_t n = n0; n < n1; ++n) {
      const double w = static_cast<double>(W[xb * N + n]);
      if (!(w > 0)) continue;
      acc += q == D ? w : w * static_cast<double>(X[(xb * N + n) * D + q]);
    }
    return acc;
  }
};

// EM statistic q of set s: [Nk K][S1 K*D][S2][ll 1], centred at c (the upper triangle of S2
// is unused: 0).
template <class T>
struct EmStat {
  int type;
  const T *X, *W;
  index_t n_rep, N, D, K;
  const double *c, *r, *llp;
  __device__ double operator()(index_t s, index_t q, index_t n0, index_t n1) const {
    const index_t xb = s / n_rep;
    const double* cs = c + s * D;
    const index_t o1 = K, o2 = K + K * D, o3 = K + K * D + s2_size(type, K, D);
    double acc = 0;
    if (q == o3) {
      for (index_t n = n0; n < n1; ++n) acc += llp[s * N + n];
    } else if (q < o1) {
      for (index_t n = n0; n < n1; ++n) acc += r[(s * N + n) * K + q];
    } else if (q < o2) {
      const index_t k = (q - o1) / D, d = (q - o1) % D;
      for (index_t n = n0; n < n1; ++n) {
        const double a = r[(s * N + n) * K + k];
        if (a != 0) acc += a * (static_cast<double>(X[(xb * N + n) * D + d]) - cs[d]);
      }
    } else {
      const index_t e = q - o2;
      index_t k = 0, i = 0, j = 0;
      if (type == FULL) {
        k = e / (D * D);
        i = (e % (D * D)) / D;
        j = e % D;
      } else if (type == TIED) {
        i = e / D;
        j = e % D;
      } else {
        k = e / D;
        i = j = e % D;
      }
      if (j > i) return 0;  // upper triangle unused
      for (index_t n = n0; n < n1; ++n) {
        const double a = (type == TIED)
                             ? ((static_cast<double>(W[xb * N + n]) > 0) ? static_cast<double>(W[xb * N + n]) : 0.0)
                             : r[(s * N + n) * K + k];
        if (a == 0) continue;
        const T* x = X + (xb * N + n) * D;
        acc += a * (static_cast<double>(x[i]) - cs[i]) * (static_cast<double>(x[j]) - cs[j]);
      }
    }
    return acc;
  }
};

// Partial sums of statistic q (of ss) of the listed sets (active == nullptr: all run).
// split == 1: thread (set, group g, q) adds g's tile sums in tile order -> part[s, g, q].
// split == kTiles: thread (list index li, g, tile u, q) -> tpart[li, g, u, q].
// One code path computes a tile's sum in both (f inlined once), and tile sums are added with
// __dadd_rn (never contracted into an FMA): the two grids cannot round differently.
template <class F>
__global__ void stats_kernel(F f, index_t N, index_t ss, index_t G, index_t split, const std::uint8_t* active,
                             const index_t* sets, index_t nb, double* out) {
  const index_t i = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x;
  if (i >= nb * G * split * ss) return;
  const StatsItem it = stats_item(i, ss, split, G);
  const index_t q = it.q, g = it.g, s = set_at(sets, it.li);
  if (active && !active[s]) return;
  const index_t n0 = group_begin(N, G, g), n1 = group_begin(N, G, g + 1);
  const bool fold = split == 1;
  const index_t j0 = fold ? 0 : it.u, j1 = fold ? kTiles : it.u + 1;
  double acc = 0;
  for (index_t j = j0; j < j1; ++j) {
    const double t = f(s, q, tile_begin(n0, n1, j), tile_begin(n0, n1, j + 1));
    acc = fold ? __dadd_rn(acc, t) : t;
  }
  out[fold ? (s * G + g) * ss + q : tile_slot(it.li, g, it.u, q, G, ss)] = acc;
}

// split == kTiles: one thread per (listed set, group, statistic) adds the group's tiles in order.
__global__ void fold_tiles_kernel(index_t G, index_t ss, const std::uint8_t* active, const index_t* sets, index_t nb,
                                  const double* tpart, double* part) {
  const index_t i = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x;
  if (i >= nb * G * ss) return;
  const index_t q = i % ss, g = (i / ss) % G, li = i / (ss * G), s = set_at(sets, li);
  if (active && !active[s]) return;
  double acc = 0;
  for (index_t j = 0; j < kTiles; ++j) acc = __dadd_rn(acc, tpart[tile_slot(li, g, j, q, G, ss)]);
  part[(s * G + g) * ss + q] = acc;
}

// One thread per (listed set, statistic): group partials added in group order.
__global__ void reduce_kernel(index_t G, index_t ss, const std::uint8_t* active, const index_t* sets, index_t nb,
                              const double* part, double* st) {
  const index_t i = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x;
  if (i >= nb * ss) return;
  const index_t s = set_at(sets, i / ss), q = i % ss;
  if (active && !active[s]) return;
  double acc = 0;
  for (index_t g = 0; g < G; ++g) acc += part[(s * G + g) * ss + q];
  st[s * ss + q] = acc;
}

// st[s, 0..ss) = the ss statistics of every listed set over its N points (the fixed order
// above, whatever the grid).
template <class F>
void statistics(F f, index_t N, index_t ss, const std::uint8_t* active, const index_t* sets, index_t nb,
                const EmBuffers& e, double* st, cudaStream_t stream) {
  const StatsGrid p = stats_grid(nb, N, ss, kThreads, sm_count());
  stats_kernel<F><<<static_cast<unsigned>(p.blocks), kThreads, 0, stream>>>(f, N, ss, p.groups, p.split, active, sets,
                                                                            nb, p.split == 1 ? e.part : e.tpart);
  check_launch("gmm statistics");
  if (p.split > 1) {
    fold_tiles_kernel<<<blocks_for(nb * p.groups * ss, kThreads), kThreads, 0, stream>>>(p.groups, ss, active, sets, nb,
                                                                                         e.tpart, e.part);
    check_launch("gmm statistics (tiles)");
  }
  reduce_kernel<<<blocks_for(nb * ss, kThreads), kThreads, 0, stream>>>(p.groups, ss, active, sets, nb, e.part, st);
  check_launch("gmm reduce");
}

// Weighted centre and weight of each set from its sums.
__global__ void centre_kernel(index_t B, index_t D, const double* st, double* c, double* wsum) {
  const index_t t = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x;
  if (t >= B * D) return;
  const index_t s = t / D, d = t % D;
  const double ws = st[s * (D + 1) + D];
  c[s * D + d] = ws > 0 ? st[s * (D + 1) + d] / ws : 0.0;
  if (d == 0) wsum[s] = ws;
}

template <class T>
void centre(const T* X, const T* W, index_t B, index_t n_rep, index_t N, index_t D, const EmBuffers& e,
            cudaStream_t stream) {
  statistics(CentreStat<T>{X, W, n_rep, N, D}, N, D + 1, nullptr, nullptr, B, e, e.st, stream);
  centre_kernel<<<blocks_for(B * D, kThreads), kThreads, 0, stream>>>(B, D, e.st, e.c, e.wsum);
  check_launch("gmm centre");
}

// Weighted responsibilities (double) and w * log-norm of each point of the active sets.
template <class T>
__global__ void estep_kernel(int type, const T* X, const T* W, index_t B, index_t n_rep, index_t N, index_t D,
                             index_t K, const T* weights, const T* means, const T* pc, const std::uint8_t* active,
                             const index_t* sets, index_t nb, double* r, double* llp) {
  const index_t i = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x;
  if (i >= nb * N) return;
  const index_t s = set_at(sets, i / N), n = i % N, xb = s / n_rep, t = s * N + n;
  if (!active[s]) return;
  double* rp = r + t * K;
  const double w = static_cast<double>(W[xb * N + n]);
  if (!(w > 0)) {
    for (index_t k = 0; k < K; ++k) rp[k] = 0;
    llp[t] = 0;
    return;
  }
  const index_t cs = cov_size(type, K, D);
  const T* x = X + (xb * N + n) * D;
  double mx = -INFINITY;
  for (index_t k = 0; k < K; ++k) {
    const T* P = pc + s * cs + pc_offset(type, k, D);
    const double l = log(static_cast<double>(weights[s * K + k])) + log_det_pc(type, P, D) - 0.5 * D * kLog2Pi -
                     0.5 * static_cast<double>(mahalanobis2<T>(type, x, means + (s * K + k) * D, P, D));
    rp[k] = l;
    mx = l > mx ? l : mx;
  }
  if (!(mx > -INFINITY) || !isfinite(mx)) {
    for (index_t k = 0; k < K; ++k) rp[k] = (k == 0) ? w : 0.0;
    llp[t] = 0;
    return;
  }
  double sum = 0;
  for (index_t k = 0; k < K; ++k) sum += exp(rp[k] - mx);
  const double lse = mx + log(sum);
  for (index_t k = 0; k < K; ++k) rp[k] = w * exp(rp[k] - lse);
  llp[t] = w * lse;
}

// Responsibilities given by the caller (times the point weights): one thread per element.
template <class T>
__global__ void resp_kernel(const T* W, const T* resp, index_t B, index_t n_rep, index_t N, index_t K, double* r,
                            double* llp) {
  const index_t i = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x;
  if (i >= B * N * K) return;
  const index_t t = i / K, s = t / N, n = t % N, xb = s / n_rep;
  const double w = static_cast<double>(W[xb * N + n]);
  r[i] = (w > 0) ? w * static_cast<double>(resp[i]) : 0.0;
  if (i % K == 0) llp[t] = 0;
}

// M-step, bound and convergence test of one set per thread.
template <class T>
__global__ void finish_kernel(int type, index_t D, index_t K, const double* st, const double* c, const double* wsum,
                              const T* reg, double tol, index_t it, T* weights, T* means, T* cov, T* pc, T* lower_bound,
                              std::int64_t* n_iter, std::uint8_t* converged, std::uint8_t* flags, std::uint8_t* active,
                              const index_t* sets, index_t nb, double* prev, double* work, bool fit_mode) {
  const index_t i = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x;
  if (i >= nb) return;
  const index_t s = set_at(sets, i);
  if (!active[s]) return;
  const index_t SS = stats_size(type, K, D);
  const index_t cs = cov_size(type, K, D);
  const double* sts = st + s * SS;
  finalize(type, sts, c + s * D, wsum[s], K, D, static_cast<double>(reg[s]), weights + s * K, means + s * K * D,
           cov + s * cs, pc + s * cs, flags + s * K, work + s * finalize_workspace(K, D));
  if (!fit_mode) return;
  if (!(wsum[s] > 0)) {
    lower_bound[s] = static_cast<T>(-INFINITY);
    n_iter[s] = 0;
    converged[s] = 0;
    active[s] = 0;
    return;
  }
  const double lb = sts[SS - 1] / wsum[s];
  const double change = lb - prev[s];
  prev[s] = lb;
  lower_bound[s] = static_cast<T>(lb);
  n_iter[s] = it;
  if (fabs(change) < tol) {
    converged[s] = 1;
    active[s] = 0;
  }
}

// Per set before the first iteration, as em_set on the CPU: an empty set gets the neutral
// parameters and bound -inf and stays inactive; otherwise the bound starts at the given value
// (NaN: -inf) and is the result when max_iter = 0.
template <class T>
__global__ void init_fit_kernel(int type, index_t B, index_t D, index_t K, const double* wsum, T* weights, T* means,
                                T* cov, T* pc, std::uint8_t* flags, T* lower_bound, std::uint8_t* active, double* prev,
                                std::int64_t* n_iter, std::uint8_t* converged) {
  const index_t s = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x;
  if (s >= B) return;
  n_iter[s] = 0;
  converged[s] = 0;
  if (!(wsum[s] > 0)) {
    const index_t cs = cov_size(type, K, D);
    empty_set_params(type, K, D, weights + s * K, means + s * K * D, cov + s * cs, pc + s * cs, flags + s * K);
    lower_bound[s] = static_cast<T>(-INFINITY);
    active[s] = 0;
    return;
  }
  const double lb = static_cast<double>(lower_bound[s]);
  prev[s] = isnan(lb) ? -INFINITY : lb;
  lower_bound[s] = static_cast<T>(prev[s]);
  active[s] = 1;
}

// Component log-density of point x under component k of set b (the CPU's e_step_cpu expression).
template <class T>
__device__ double comp_logpdf(int type, const T* x, const T* means, const T* pc, index_t b, index_t k, index_t D,
                              index_t K) {
  const T* P = pc + b * cov_size(type, K, D) + pc_offset(type, k, D);
  return log_det_pc(type, P, D) - 0.5 * D * kLog2Pi -
         0.5 * static_cast<double>(mahalanobis2<T>(type, x, means + (b * K + k) * D, P, D));
}

// One thread per point, the CPU's arithmetic: the log-sum-exp runs over the unrounded float64
// log-densities (gmm.hpp logsumexp: max, then sum of exp). float64 data reads them back from
// lp (exact); float32 recomputes them, since lp holds them rounded to float32.
template <class T>
__global__ void e_step_kernel(int type, const T* X, const T* weights, const T* means, const T* pc, index_t B, index_t N,
                              index_t D, index_t K, T* lp, T* log_resp, T* log_norm) {
  const index_t t = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x;
  if (t >= B * N) return;
  const index_t b = t / N;
  const T* x = X + t * D;
  constexpr bool exact = sizeof(T) == sizeof(double);
  auto row = [&](index_t k, double l) { return l + log(static_cast<double>(weights[b * K + k])); };
  auto logpdf = [&](index_t k) {
    return exact ? static_cast<double>(lp[t * K + k]) : comp_logpdf<T>(type, x, means, pc, b, k, D, K);
  };
  double mx = -INFINITY;
  for (index_t k = 0; k < K; ++k) {
    const double l = comp_logpdf<T>(type, x, means, pc, b, k, D, K);
    lp[t * K + k] = static_cast<T>(l);
    const double wl = row(k, l);
    mx = wl > mx ? wl : mx;
  }
  double lse = mx;
  if (mx > -INFINITY) {
    double sum = 0;
    for (index_t k = 0; k < K; ++k) sum += exp(row(k, logpdf(k)) - mx);
    lse = mx + log(sum);
  }
  log_norm[t] = static_cast<T>(lse);
  for (index_t k = 0; k < K; ++k)
    log_resp[t * K + k] = static_cast<T>(isfinite(lse) ? row(k, logpdf(k)) - lse : (k == 0 ? 0.0 : -INFINITY));
}

template <class T>
__global__ void sample_kernel(int type, const T* weights, const T* means, const T* pc, index_t B, index_t K, index_t D,
                              index_t n, std::uint64_t seed, std::uint64_t stream0, T* out, std::int64_t* labels) {
  const index_t t = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x;
  if (t >= B * n) return;
  const index_t b = t / n, i = t % n;
  const index_t cs = cov_size(type, K, D);
  sample_one(type, weights + b * K, means + b * K * D, pc + b * cs, K, D, seed, stream0 + b, i, out + t * D,
             labels + t);
}

// One EM pass (E-step or given resp, statistics, M-step) for all active sets.
template <class T>
void em_pass(int type, const T* X, const T* W, const T* resp, const T* reg, index_t B, index_t n_rep, index_t N,
             index_t D, index_t K, double tol, index_t it, T* weights, T* means, T* cov, T* pc, T* lb,
             std::int64_t* n_iter, std::uint8_t* conv, std::uint8_t* flags, const EmBuffers& e, bool fit_mode,
             const index_t* sets, index_t nb, cudaStream_t stream) {
  const index_t SS = stats_size(type, K, D);
  if (nb * N > 0) {  // N = 0: no point, the statistics below are zeros
    if (resp)
      resp_kernel<T><<<blocks_for(B * N * K, kThreads), kThreads, 0, stream>>>(W, resp, B, n_rep, N, K, e.r, e.llp);
    else
      estep_kernel<T><<<blocks_for(nb * N, kThreads), kThreads, 0, stream>>>(type, X, W, B, n_rep, N, D, K, weights,
                                                                             means, pc, e.active, sets, nb, e.r, e.llp);
    check_launch("gmm e-step");
  }
  statistics(EmStat<T>{type, X, W, n_rep, N, D, K, e.c, e.r, e.llp}, N, SS, e.active, sets, nb, e, e.st, stream);
  finish_kernel<T><<<blocks_for(nb, kThreads), kThreads, 0, stream>>>(type, D, K, e.st, e.c, e.wsum, reg, tol, it,
                                                                      weights, means, cov, pc, lb, n_iter, conv, flags,
                                                                      e.active, sets, nb, e.prev, e.work, fit_mode);
  check_launch("gmm m-step");
}

}  // namespace

index_t gmm_stats_split(int type, index_t nb, index_t N, index_t D, index_t K) {
  return stats_grid(nb, N, stats_size(type, K, D), kThreads, sm_count()).split;
}

std::size_t gmm_fit_scratch_bytes(int type, index_t B, index_t N, index_t D, index_t K) {
  Carve cv;
  EmBuffers e(cv, type, B, N, D, K, sm_count());
  return cv.used;
}

std::size_t gmm_m_step_scratch_bytes(int type, index_t B, index_t N, index_t D, index_t K) {
  Carve cv;
  EmBuffers e(cv, type, B, N, D, K, sm_count());
  cv.take<double>(static_cast<std::size_t>(B));        // lower bound (unused by the M-step)
  cv.take<std::int64_t>(static_cast<std::size_t>(B));  // n_iter (unused)
  cv.take<std::uint8_t>(static_cast<std::size_t>(B));  // converged (unused)
  return cv.used;
}

template <class T>
void gmm_fit(int type, const T* X, const T* W, const T* reg, index_t Bx, index_t n_rep, index_t N, index_t D, index_t K,
             index_t max_iter, double tol, T* weights, T* means, T* cov, T* pc, T* lower_bound, std::int64_t* n_iter,
             std::uint8_t* converged, std::uint8_t* flags, void* scratch, std::size_t scratch_bytes,
             cudaStream_t stream) {
  const index_t B = Bx * n_rep;
  if (B == 0) return;
  Carve cv(scratch);
  const EmBuffers e(cv, type, B, N, D, K, sm_count());
  check_scratch(cv, scratch_bytes, "gmm_fit");
  centre<T>(X, W, B, n_rep, N, D, e, stream);
  init_fit_kernel<T><<<blocks_for(B, kThreads), kThreads, 0, stream>>>(
      type, B, D, K, e.wsum, weights, means, cov, pc, flags, lower_bound, e.active, e.prev, n_iter, converged);
  check_launch("gmm init");
  // Every set runs the first kSyncEvery iterations (a set that stops early returns at once);
  // then the host lists the running sets, launches over those only and stops with the last.
  const bool sync = may_synchronise(stream);
  const index_t* sets = nullptr;
  index_t nb = B;
  for (index_t it = 1; it <= max_iter; ++it) {
    em_pass<T>(type, X, W, static_cast<const T*>(nullptr), reg, B, n_rep, N, D, K, tol, it, weights, means, cov, pc,
               lower_bound, n_iter, converged, flags, e, true, sets, nb, stream);
    if (sync && it < max_iter && it % kSyncEvery == 0) {
      nb = list_active(e.active, B, e.list, e.count, stream);
      sets = e.list;
      if (nb == 0) break;
    }
  }
}

template <class T>
void gmm_m_step(int type, const T* X, const T* W, const T* resp, const T* reg, index_t Bx, index_t n_rep, index_t N,
                index_t D, index_t K, T* weights, T* means, T* cov, T* pc, std::uint8_t* flags, void* scratch,
                std::size_t scratch_bytes, cudaStream_t stream) {
  const index_t B = Bx * n_rep;
  if (B == 0) return;
  Carve cv(scratch);
  const EmBuffers e(cv, type, B, N, D, K, sm_count());
  T* lb = reinterpret_cast<T*>(cv.take<double>(static_cast<std::size_t>(B)));
  auto* ni = cv.take<std::int64_t>(static_cast<std::size_t>(B));
  auto* cvg = cv.take<std::uint8_t>(static_cast<std::size_t>(B));
  check_scratch(cv, scratch_bytes, "gmm_m_step");
  PGM_CUDA_CHECK(cudaMemsetAsync(e.active, 1, B, stream));
  centre<T>(X, W, B, n_rep, N, D, e, stream);
  em_pass<T>(type, X, W, resp, reg, B, n_rep, N, D, K, 0.0, 0, weights, means, cov, pc, lb, ni, cvg, flags, e, false,
             nullptr, B, stream);
}

template <class T>
void gmm_e_step(int type, const T* X, const T* weights, const T* means, const T* pc, index_t B, index_t N, index_t D,
                index_t K, T* lp, T* log_resp, T* log_norm, cudaStream_t stream) {
  if (B * N == 0) return;
  e_step_kernel<T><<<blocks_for(B * N, kThreads), kThreads, 0, stream>>>(type, X, weights, means, pc, B, N, D, K, lp,
                                                                         log_resp, log_norm);
  check_launch("gmm e_step");
}

template <class T>
void gmm_sample(int type, const T* weights, const T* means, const T* pc, index_t B, index_t K, index_t D, index_t n,
                std::uint64_t seed, std::uint64_t stream0, T* out, std::int64_t* labels, cudaStream_t stream) {
  if (B * n == 0) return;
  sample_kernel<T><<<blocks_for(B * n, kThreads), kThreads, 0, stream>>>(type, weights, means, pc, B, K, D, n, seed,
                                                                         stream0, out, labels);
  check_launch("gmm sample");
}

#define PGM_GMM_INSTANTIATE(T)                                                                                         \
  template void gmm_fit<T>(int, const T*, const T*, const T*, index_t, index_t, index_t, index_t, index_t, index_t,    \
                           double, T*, T*, T*, T*, T*, std::int64_t*, std::uint8_t*, std::uint8_t*, void*,             \
                           std::size_t, cudaStream_t);                                                                 \
  template void gmm_m_step<T>(int, const T*, const T*, const T*, const T*, index_t, index_t, index_t, index_t,         \
                              index_t, T*, T*, T*, T*, std::uint8_t*, void*, std::size_t, cudaStream_t);               \
  template void gmm_e_step<T>(int, const T*, const T*, const T*, const T*, index_t, index_t, index_t, index_t, T*, T*, \
                              T*, cudaStream_t);                                                                       \
  template void gmm_sample<T>(int, const T*, const T*, const T*, index_t, index_t, index_t, index_t, std::uint64_t,    \
                              std::uint64_t, T*, std::int64_t*, cudaStream_t);
PGM_GMM_INSTANTIATE(float)
PGM_GMM_INSTANTIATE(double)

}  // namespace pygenmod::cuda
