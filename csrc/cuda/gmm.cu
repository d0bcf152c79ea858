// CUDA launchers for the Gaussian-mixture kernels; the per-point math (log-densities,
// log-sum-exp, sampling) and the M-step (finalize) are pygenmod/gmm.hpp's PGM_HD functions.
//
// EM iteration on the device, without host synchronisation:
//   1. estep:   one thread per (set, point): weighted responsibilities r[b,n,k] and w*log-norm;
//   2. stats:   one thread per (set, point group, statistic): a serial sum over the group's
//               points, in point order (deterministic; no atomics);
//   3. reduce:  one thread per (set, statistic): group partials added in group order;
//   4. finish:  one thread per set: M-step (finalize), bound, convergence; converged sets are
//               skipped by every later kernel.
#include <cuda_runtime.h>

#include <vector>

#include "cuda_check.cuh"
#include "gmm.cuh"
#include "pygenmod/gmm.hpp"

namespace pygenmod::cuda {
namespace {

using namespace pygenmod::gmm;

index_t groups_for(index_t N) {
  const index_t g = (N + 2047) / 2048;
  return g < 1 ? 1 : (g > 64 ? 64 : g);
}

// Device buffer owned for one launcher call (freed asynchronously on the stream).
template <class U>
struct DevBuf {
  U* p = nullptr;
  cudaStream_t s;
  DevBuf(size_t n, cudaStream_t st) : s(st) {
    if (n) PGM_CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&p), n * sizeof(U), s));
  }
  ~DevBuf() {
    if (p) cudaFreeAsync(p, s);
  }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
};

// Weighted centre and weight of each set: one thread per (set, dim), serial over points.
template <class T>
__global__ void centre_kernel(const T* X, const T* W, index_t B, index_t n_rep, index_t N, index_t D,
                              double* c, double* wsum) {
  const index_t t = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x;
  if (t >= B * D) return;
  const index_t s = t / D, d = t % D, xb = s / n_rep;
  double ws = 0, acc = 0;
  for (index_t n = 0; n < N; ++n) {
    const double w = static_cast<double>(W[xb * N + n]);
    if (!(w > 0)) continue;
    ws += w;
    acc += w * static_cast<double>(X[(xb * N + n) * D + d]);
  }
  c[s * D + d] = ws > 0 ? acc / ws : 0.0;
  if (d == 0) wsum[s] = ws;
}

// Weighted responsibilities (double) and w * log-norm of each point of the active sets.
template <class T>
__global__ void estep_kernel(int type, const T* X, const T* W, index_t B, index_t n_rep, index_t N,
                             index_t D, index_t K, const T* weights, const T* means, const T* pc,
                             const std::uint8_t* active, double* r, double* llp) {
  const index_t t = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x;
  if (t >= B * N) return;
  const index_t s = t / N, n = t % N, xb = s / n_rep;
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
    const double l = log(static_cast<double>(weights[s * K + k])) + log_det_pc(type, P, D) -
                     0.5 * D * kLog2Pi -
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

// Responsibilities given by the caller (times the point weights).
template <class T>
__global__ void resp_kernel(const T* W, const T* resp, index_t B, index_t n_rep, index_t N, index_t K,
                            double* r, double* llp) {
  const index_t t = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x;
  if (t >= B * N) return;
  const index_t s = t / N, n = t % N, xb = s / n_rep;
  const double w = static_cast<double>(W[xb * N + n]);
  for (index_t k = 0; k < K; ++k) r[t * K + k] = (w > 0) ? w * static_cast<double>(resp[t * K + k]) : 0.0;
  llp[t] = 0;
}

// Statistic `q` of set s over point group g: [Nk K][S1 K*D][S2][ll 1], centred at c.
template <class T>
__global__ void stats_kernel(int type, const T* X, const T* W, index_t B, index_t n_rep, index_t N,
                             index_t D, index_t K, index_t G, const double* c, const double* r,
                             const double* llp, const std::uint8_t* active, double* part) {
  const index_t SS = stats_size(type, K, D);
  const index_t t = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x;
  if (t >= B * G * SS) return;
  const index_t q = t % SS, g = (t / SS) % G, s = t / (SS * G), xb = s / n_rep;
  if (!active[s]) return;
  const index_t n0 = (N * g) / G, n1 = (N * (g + 1)) / G;
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
    if (type == FULL) { k = e / (D * D); i = (e % (D * D)) / D; j = e % D; }
    else if (type == TIED) { i = e / D; j = e % D; }
    else { k = e / D; i = j = e % D; }
    if (j > i) { part[t] = 0; return; }  // upper triangle unused
    for (index_t n = n0; n < n1; ++n) {
      const double a = (type == TIED) ? ((static_cast<double>(W[xb * N + n]) > 0) ? static_cast<double>(W[xb * N + n]) : 0.0)
                                      : r[(s * N + n) * K + k];
      if (a == 0) continue;
      const T* x = X + (xb * N + n) * D;
      acc += a * (static_cast<double>(x[i]) - cs[i]) * (static_cast<double>(x[j]) - cs[j]);
    }
  }
  part[t] = acc;
}

__global__ void reduce_kernel(index_t B, index_t G, index_t SS, const std::uint8_t* active,
                              const double* part, double* st) {
  const index_t t = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x;
  if (t >= B * SS) return;
  const index_t s = t / SS, q = t % SS;
  if (!active[s]) return;
  double acc = 0;
  for (index_t g = 0; g < G; ++g) acc += part[(s * G + g) * SS + q];
  st[t] = acc;
}

// M-step, bound and convergence test of one set per thread.
template <class T>
__global__ void finish_kernel(int type, index_t B, index_t D, index_t K, const double* st,
                              const double* c, const double* wsum, const T* reg, double tol, index_t it,
                              T* weights, T* means, T* cov, T* pc, T* lower_bound, std::int64_t* n_iter,
                              std::uint8_t* converged, std::uint8_t* flags, std::uint8_t* active,
                              double* prev, double* work, bool fit_mode) {
  const index_t s = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x;
  if (s >= B || !active[s]) return;
  const index_t SS = stats_size(type, K, D);
  const index_t cs = cov_size(type, K, D);
  const double* sts = st + s * SS;
  finalize(type, sts, c + s * D, wsum[s], K, D, static_cast<double>(reg[s]), weights + s * K,
           means + s * K * D, cov + s * cs, pc + s * cs, flags + s * K, work + s * finalize_workspace(K, D));
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

template <class T>
__global__ void init_fit_kernel(index_t B, const T* lower_bound, std::uint8_t* active, double* prev,
                                std::int64_t* n_iter, std::uint8_t* converged) {
  const index_t s = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x;
  if (s >= B) return;
  const double lb = static_cast<double>(lower_bound[s]);
  prev[s] = isnan(lb) ? -INFINITY : lb;
  active[s] = 1;
  n_iter[s] = 0;
  converged[s] = 0;
}

template <class T>
__global__ void e_step_kernel(int type, const T* X, const T* weights, const T* means, const T* pc,
                              index_t B, index_t N, index_t D, index_t K, T* lp, T* log_resp, T* log_norm) {
  const index_t t = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x;
  if (t >= B * N) return;
  const index_t b = t / N;
  const index_t cs = cov_size(type, K, D);
  const T* x = X + t * D;
  double mx = -INFINITY;
  for (index_t k = 0; k < K; ++k) {
    const T* P = pc + b * cs + pc_offset(type, k, D);
    const double l = log_det_pc(type, P, D) - 0.5 * D * kLog2Pi -
                     0.5 * static_cast<double>(mahalanobis2<T>(type, x, means + (b * K + k) * D, P, D));
    lp[t * K + k] = static_cast<T>(l);
    const double wl = l + log(static_cast<double>(weights[b * K + k]));
    mx = wl > mx ? wl : mx;
  }
  double sum = 0;
  if (mx > -INFINITY && isfinite(mx))
    for (index_t k = 0; k < K; ++k)
      sum += exp(static_cast<double>(lp[t * K + k]) + log(static_cast<double>(weights[b * K + k])) - mx);
  const double lse = (mx > -INFINITY && isfinite(mx)) ? mx + log(sum) : mx;
  log_norm[t] = static_cast<T>(lse);
  for (index_t k = 0; k < K; ++k) {
    const double wl = static_cast<double>(lp[t * K + k]) + log(static_cast<double>(weights[b * K + k]));
    log_resp[t * K + k] = static_cast<T>(isfinite(lse) ? wl - lse : (k == 0 ? 0.0 : -INFINITY));
  }
}

template <class T>
__global__ void sample_kernel(int type, const T* weights, const T* means, const T* pc, index_t B,
                              index_t K, index_t D, index_t n, std::uint64_t seed, std::uint64_t stream0,
                              T* out, std::int64_t* labels) {
  const index_t t = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x;
  if (t >= B * n) return;
  const index_t b = t / n, i = t % n;
  const index_t cs = cov_size(type, K, D);
  sample_one(type, weights + b * K, means + b * K * D, pc + b * cs, K, D, seed, stream0 + b, i,
             out + t * D, labels + t);
}

constexpr unsigned kThreads = 128;

// One EM pass (E-step or given resp, statistics, M-step) for all active sets.
template <class T>
void em_pass(int type, const T* X, const T* W, const T* resp, const T* reg, index_t B, index_t n_rep,
             index_t N, index_t D, index_t K, double tol, index_t it, T* weights, T* means, T* cov,
             T* pc, T* lb, std::int64_t* n_iter, std::uint8_t* conv, std::uint8_t* flags,
             std::uint8_t* active, double* prev, double* r, double* llp, double* part, double* st,
             const double* c, const double* wsum, double* work, bool fit_mode, cudaStream_t stream) {
  const index_t G = groups_for(N);
  const index_t SS = stats_size(type, K, D);
  if (resp)
    resp_kernel<T><<<blocks_for(B * N, kThreads), kThreads, 0, stream>>>(W, resp, B, n_rep, N, K, r, llp);
  else
    estep_kernel<T><<<blocks_for(B * N, kThreads), kThreads, 0, stream>>>(
        type, X, W, B, n_rep, N, D, K, weights, means, pc, active, r, llp);
  check_launch("gmm e-step");
  stats_kernel<T><<<blocks_for(B * G * SS, kThreads), kThreads, 0, stream>>>(
      type, X, W, B, n_rep, N, D, K, G, c, r, llp, active, part);
  check_launch("gmm statistics");
  reduce_kernel<<<blocks_for(B * SS, kThreads), kThreads, 0, stream>>>(B, G, SS, active, part, st);
  check_launch("gmm reduce");
  finish_kernel<T><<<blocks_for(B, kThreads), kThreads, 0, stream>>>(
      type, B, D, K, st, c, wsum, reg, tol, it, weights, means, cov, pc, lb, n_iter, conv, flags,
      active, prev, work, fit_mode);
  check_launch("gmm m-step");
}

}  // namespace

template <class T>
void gmm_fit(int type, const T* X, const T* W, const T* reg, index_t Bx, index_t n_rep, index_t N,
             index_t D, index_t K, index_t max_iter, double tol, T* weights, T* means, T* cov, T* pc,
             T* lower_bound, std::int64_t* n_iter, std::uint8_t* converged, std::uint8_t* flags,
             cudaStream_t stream) {
  const index_t B = Bx * n_rep;
  if (B == 0) return;
  const index_t G = groups_for(N), SS = stats_size(type, K, D);
  DevBuf<double> r(B * N * K, stream), llp(B * N, stream), part(B * G * SS, stream), st(B * SS, stream),
      c(B * D, stream), wsum(B, stream), prev(B, stream), work(B * finalize_workspace(K, D), stream);
  DevBuf<std::uint8_t> active(B, stream);
  centre_kernel<T><<<blocks_for(B * D > 0 ? B * D : 1, kThreads), kThreads, 0, stream>>>(
      X, W, B, n_rep, N, D, c.p, wsum.p);
  check_launch("gmm centre");
  init_fit_kernel<T><<<blocks_for(B, kThreads), kThreads, 0, stream>>>(B, lower_bound, active.p, prev.p,
                                                                       n_iter, converged);
  check_launch("gmm init");
  for (index_t it = 1; it <= max_iter; ++it)
    em_pass<T>(type, X, W, static_cast<const T*>(nullptr), reg, B, n_rep, N, D, K, tol, it, weights,
               means, cov, pc, lower_bound, n_iter, converged, flags, active.p, prev.p, r.p, llp.p,
               part.p, st.p, c.p, wsum.p, work.p, true, stream);
}

template <class T>
void gmm_m_step(int type, const T* X, const T* W, const T* resp, const T* reg, index_t Bx,
                index_t n_rep, index_t N, index_t D, index_t K, T* weights, T* means, T* cov, T* pc,
                std::uint8_t* flags, cudaStream_t stream) {
  const index_t B = Bx * n_rep;
  if (B == 0) return;
  const index_t G = groups_for(N), SS = stats_size(type, K, D);
  DevBuf<double> r(B * N * K, stream), llp(B * N, stream), part(B * G * SS, stream), st(B * SS, stream),
      c(B * D, stream), wsum(B, stream), prev(B, stream), work(B * finalize_workspace(K, D), stream);
  DevBuf<std::uint8_t> active(B, stream);
  DevBuf<T> lb(B, stream);
  DevBuf<std::int64_t> ni(B, stream);
  DevBuf<std::uint8_t> cv(B, stream);
  PGM_CUDA_CHECK(cudaMemsetAsync(active.p, 1, B, stream));
  centre_kernel<T><<<blocks_for(B * D > 0 ? B * D : 1, kThreads), kThreads, 0, stream>>>(
      X, W, B, n_rep, N, D, c.p, wsum.p);
  check_launch("gmm centre");
  em_pass<T>(type, X, W, resp, reg, B, n_rep, N, D, K, 0.0, 0, weights, means, cov, pc, lb.p, ni.p,
             cv.p, flags, active.p, prev.p, r.p, llp.p, part.p, st.p, c.p, wsum.p, work.p, false, stream);
}

template <class T>
void gmm_e_step(int type, const T* X, const T* weights, const T* means, const T* pc, index_t B,
                index_t N, index_t D, index_t K, T* lp, T* log_resp, T* log_norm, cudaStream_t stream) {
  if (B * N == 0) return;
  e_step_kernel<T><<<blocks_for(B * N, kThreads), kThreads, 0, stream>>>(type, X, weights, means, pc, B, N,
                                                                         D, K, lp, log_resp, log_norm);
  check_launch("gmm e_step");
}

template <class T>
void gmm_sample(int type, const T* weights, const T* means, const T* pc, index_t B, index_t K,
                index_t D, index_t n, std::uint64_t seed, std::uint64_t stream0, T* out,
                std::int64_t* labels, cudaStream_t stream) {
  if (B * n == 0) return;
  sample_kernel<T><<<blocks_for(B * n, kThreads), kThreads, 0, stream>>>(type, weights, means, pc, B, K, D,
                                                                         n, seed, stream0, out, labels);
  check_launch("gmm sample");
}

#define PGM_GMM_INSTANTIATE(T)                                                                        \
  template void gmm_fit<T>(int, const T*, const T*, const T*, index_t, index_t, index_t, index_t,      \
                           index_t, index_t, double, T*, T*, T*, T*, T*, std::int64_t*, std::uint8_t*, \
                           std::uint8_t*, cudaStream_t);                                               \
  template void gmm_m_step<T>(int, const T*, const T*, const T*, const T*, index_t, index_t, index_t,  \
                              index_t, index_t, T*, T*, T*, T*, std::uint8_t*, cudaStream_t);          \
  template void gmm_e_step<T>(int, const T*, const T*, const T*, const T*, index_t, index_t, index_t,  \
                              index_t, T*, T*, T*, cudaStream_t);                                      \
  template void gmm_sample<T>(int, const T*, const T*, const T*, index_t, index_t, index_t, index_t,   \
                              std::uint64_t, std::uint64_t, T*, std::int64_t*, cudaStream_t);
PGM_GMM_INSTANTIATE(float)
PGM_GMM_INSTANTIATE(double)

}  // namespace pygenmod::cuda
