// CUDA launchers of the Gaussian-mixture initialisation: random_from_data, k-means++ seeding
// and Lloyd k-means, for B = Bx * n_rep sets, on the same Philox streams as the CPU
// (init_math.hpp holds the stream rule and the per-point math, one body for both).
//
// What agrees with the CPU (init.hpp): random_from_data draws the same indices (integer work
// only). Distances and weighted sums use init_math.hpp's add_mul (no FMA contraction), so every
// distance is bitwise the CPU's. k-means++ sums the masses per thread slice, then the slices in
// order (the CPU: one serial sum; the same order when N <= 256, one point per slice), so the
// draw u is compared with totals equal to rounding: the seeds are identical unless u falls
// within rounding of a boundary between two points' cumulative masses. Lloyd's assignments
// use the same comparison (first of equal distances); its centres sum the EM's fixed point
// groups (the CPU's order when N <= 2048, one group: then k-means is bitwise the CPU's).
#include <cuda_runtime.h>

#include <stdexcept>

#include "active_sets.cuh"
#include "cuda_check.cuh"
#include "gmm.cuh"
#include "pygenmod/gmm/init_math.hpp"
#include "pygenmod/launch_grid.hpp"  // n_groups: the EM statistics' point groups
#include "scratch.cuh"

namespace pygenmod::cuda {
namespace {

using namespace pygenmod::gmm;

constexpr unsigned kThreads = 128;
constexpr unsigned kSeedThreads = 256;  // k-means++: one block of this many threads per set
constexpr index_t kSyncEvery = 4;       // Lloyd iterations between two looks at the running sets

__device__ __forceinline__ index_t tid() { return blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; }
__device__ __forceinline__ index_t clamp_to(index_t a, index_t n) { return a < n ? a : n; }

// One thread per set: the CPU's body (init_math.hpp).
template <class T>
__global__ void random_from_data_kernel(const T* W, index_t B, index_t n_rep, index_t N, index_t K, std::uint64_t seed,
                                        std::uint64_t stream0, index_t* valid, std::int64_t* idx) {
  const index_t s = tid();
  if (s >= B) return;
  random_from_data_one(W + (s / n_rep) * N, N, K, seed, init_stream(stream0, s, n_rep), valid + s * N, idx + s * K);
}

// One block per set. Step j: (1) thread i sums the weights and D^2 masses of its slice of
// points in order; (2) thread 0 adds the slices in order, draws u, finds the slice where the
// cumulative mass passes u and walks its points in order (the CPU's rule inside the slice: the
// first point with u < cumulative mass; none: the last point of positive weight); (3) every
// thread updates the distances of its points to the new centre.
template <class T>
__global__ void kmeanspp_kernel(const T* X, const T* W, index_t B, index_t n_rep, index_t N, index_t D, index_t K,
                                std::uint64_t seed, std::uint64_t stream0, double* d2_all, std::int64_t* idx) {
  __shared__ double part_w[kSeedThreads], part_m[kSeedThreads];
  __shared__ index_t last[kSeedThreads];
  __shared__ index_t pick_shared;
  const index_t s = blockIdx.x;
  if (s >= B) return;  // the whole block
  const unsigned me = threadIdx.x;
  const T* x = X + (s / n_rep) * N * D;
  const T* w = W + (s / n_rep) * N;
  double* d2 = d2_all + s * N;
  const index_t chunk = (N + kSeedThreads - 1) / kSeedThreads;
  const index_t n0 = clamp_to(static_cast<index_t>(me) * chunk, N), n1 = clamp_to(n0 + chunk, N);
  for (index_t n = n0; n < n1; ++n) d2[n] = INFINITY;  // each thread touches only its own slice
  for (index_t j = 0; j < K; ++j) {
    double sw = 0, sm = 0;
    index_t lv = -1;
    for (index_t n = n0; n < n1; ++n) {
      if (!(w[n] > 0)) continue;
      const double wn = static_cast<double>(w[n]);
      sw += wn;
      if (j > 0) sm = kmeanspp_add(sm, wn, d2[n], false);
      lv = n;
    }
    part_w[me] = sw;
    part_m[me] = sm;
    last[me] = lv;
    __syncthreads();
    if (me == 0) {
      double totw = 0, tot = 0;
      for (unsigned i = 0; i < kSeedThreads; ++i) {
        totw += part_w[i];
        tot += part_m[i];
      }
      index_t pick = -1;
      if (totw > 0) {
        const bool by_weight = (j == 0) || !(tot > 0);
        const double u = init_uniform(seed, init_stream(stream0, s, n_rep), j) * (by_weight ? totw : tot);
        double acc = 0;
        for (unsigned i = 0; i < kSeedThreads; ++i) {
          if (last[i] < 0) continue;  // no point of positive weight in this slice
          pick = last[i];
          const double next = acc + (by_weight ? part_w[i] : part_m[i]);
          if (u < next) {
            const index_t c0 = clamp_to(static_cast<index_t>(i) * chunk, N), c1 = clamp_to(c0 + chunk, N);
            for (index_t n = c0; n < c1; ++n) {
              if (!(w[n] > 0)) continue;
              acc = kmeanspp_add(acc, static_cast<double>(w[n]), d2[n], by_weight);
              pick = n;
              if (u < acc) break;
            }
            break;
          }
          acc = next;
        }
      }
      idx[s * K + j] = pick;
      pick_shared = pick;
    }
    __syncthreads();
    const index_t pick = pick_shared;
    if (pick >= 0) {
      const T* cj = x + pick * D;
      for (index_t n = n0; n < n1; ++n) {
        const double e = sq_dist(x + n * D, cj, D);
        d2[n] = e < d2[n] ? e : d2[n];
      }
    }
    __syncthreads();  // d2 and the shared slots are reused by the next step
  }
}

// Lloyd, one thread per (listed set, point): the nearest centre; a changed label marks its set.
template <class T>
__global__ void assign_kernel(const T* X, index_t n_rep, index_t N, index_t D, index_t K, const T* centers,
                              const std::uint8_t* running, const index_t* sets, index_t nb, std::int64_t* labels,
                              std::uint8_t* changed) {
  const index_t i = tid();
  if (i >= nb * N) return;
  const index_t s = set_at(sets, i / N), n = i % N;
  if (!running[s]) return;
  const index_t arg = nearest_centre(X + ((s / n_rep) * N + n) * D, centers + s * K * D, K, D);
  if (labels[s * N + n] != arg) {
    labels[s * N + n] = arg;
    changed[s] = 1;  // every writer writes 1: no race on the value
  }
}

// One thread per listed set: the CPU's stopping rule (no label changed after the first
// assignment, or the last iteration); clears the changed mark for the next iteration.
__global__ void decide_kernel(index_t it, index_t max_iter, const index_t* sets, index_t nb, std::uint8_t* running,
                              std::uint8_t* changed) {
  const index_t i = tid();
  if (i >= nb) return;
  const index_t s = set_at(sets, i);
  if (!running[s]) return;
  if ((!changed[s] && it > 0) || it == max_iter) running[s] = 0;
  changed[s] = 0;
}

// One thread per (listed set, point group, component, d in [0, D]): the weighted sum of x_d
// (d = D: of the weights) over the group's points labelled k, in point order.
template <class T>
__global__ void center_sums_kernel(const T* X, const T* W, index_t n_rep, index_t N, index_t D, index_t K, index_t G,
                                   const std::int64_t* labels, const std::uint8_t* running, const index_t* sets,
                                   index_t nb, double* part) {
  const index_t Q = K * (D + 1);
  const index_t i = tid();
  if (i >= nb * G * Q) return;
  const index_t q = i % Q, g = (i / Q) % G, s = set_at(sets, i / (Q * G)), xb = s / n_rep;
  if (!running[s]) return;
  const index_t k = q / (D + 1), d = q % (D + 1);
  const index_t n0 = group_begin(N, G, g), n1 = group_begin(N, G, g + 1);
  double acc = 0;
  for (index_t n = n0; n < n1; ++n) {
    const double wt = static_cast<double>(W[xb * N + n]);
    if (!(wt > 0) || labels[s * N + n] != k) continue;
    acc = d == D ? acc + wt : add_mul(acc, wt, static_cast<double>(X[(xb * N + n) * D + d]));
  }
  part[(s * G + g) * Q + q] = acc;
}

// One thread per (listed set, component, dim): group partials added in order; an empty
// cluster keeps its centre.
template <class T>
__global__ void centers_kernel(index_t D, index_t K, index_t G, const double* part, const std::uint8_t* running,
                               const index_t* sets, index_t nb, T* centers) {
  const index_t i = tid();
  if (i >= nb * K * D) return;
  const index_t s = set_at(sets, i / (K * D)), k = (i / D) % K, d = i % D;
  if (!running[s]) return;
  const index_t Q = K * (D + 1);
  double sum = 0, cnt = 0;
  for (index_t g = 0; g < G; ++g) {
    sum += part[(s * G + g) * Q + k * (D + 1) + d];
    cnt += part[(s * G + g) * Q + k * (D + 1) + D];
  }
  if (cnt > 0) centers[(s * K + k) * D + d] = static_cast<T>(sum / cnt);
}

struct KmeansBuffers {
  double* part;
  std::uint8_t *running, *changed;
  index_t *list, *count;
  KmeansBuffers(Carve& cv, index_t B, index_t N, index_t D, index_t K) {
    const auto n = [](index_t x) { return static_cast<std::size_t>(x); };
    part = cv.take<double>(n(B * n_groups(N) * K * (D + 1)));
    running = cv.take<std::uint8_t>(n(B));
    changed = cv.take<std::uint8_t>(n(B));
    list = cv.take<index_t>(n(B));
    count = cv.take<index_t>(1);
  }
};

}  // namespace

std::size_t gmm_random_from_data_scratch_bytes(index_t B, index_t N) {
  Carve cv;
  cv.take<index_t>(static_cast<std::size_t>(B * N));
  return cv.used;
}

std::size_t gmm_kmeanspp_scratch_bytes(index_t B, index_t N) {
  Carve cv;
  cv.take<double>(static_cast<std::size_t>(B * N));
  return cv.used;
}

std::size_t gmm_kmeans_scratch_bytes(index_t B, index_t N, index_t D, index_t K) {
  Carve cv;
  KmeansBuffers b(cv, B, N, D, K);
  return cv.used;
}

template <class T>
void gmm_random_from_data(const T* W, index_t Bx, index_t n_rep, index_t N, index_t K, std::uint64_t seed,
                          std::uint64_t stream0, std::int64_t* idx, void* scratch, std::size_t scratch_bytes,
                          cudaStream_t stream) {
  const index_t B = Bx * n_rep;
  if (B == 0 || K == 0) return;
  Carve cv(scratch);
  index_t* valid = cv.take<index_t>(static_cast<std::size_t>(B * N));
  check_scratch(cv, scratch_bytes, "gmm_random_from_data");
  random_from_data_kernel<T>
      <<<blocks_for(B, kThreads), kThreads, 0, stream>>>(W, B, n_rep, N, K, seed, stream0, valid, idx);
  check_launch("gmm random_from_data");
}

template <class T>
void gmm_kmeanspp(const T* X, const T* W, index_t Bx, index_t n_rep, index_t N, index_t D, index_t K,
                  std::uint64_t seed, std::uint64_t stream0, std::int64_t* idx, void* scratch,
                  std::size_t scratch_bytes, cudaStream_t stream) {
  const index_t B = Bx * n_rep;
  if (B == 0 || K == 0) return;
  Carve cv(scratch);
  double* d2 = cv.take<double>(static_cast<std::size_t>(B * N));
  check_scratch(cv, scratch_bytes, "gmm_kmeanspp");
  if (B > 0x7fffffff) throw std::invalid_argument("gmm kmeanspp: at most 2^31 - 1 sets per call");
  kmeanspp_kernel<T>
      <<<static_cast<unsigned>(B), kSeedThreads, 0, stream>>>(X, W, B, n_rep, N, D, K, seed, stream0, d2, idx);
  check_launch("gmm kmeanspp");
}

// Lloyd iterations as kmeans_cpu: labels start at -1, iteration it assigns, stops a set when no
// label changed (it > 0) or it == max_iter, else moves its centres to the weighted means.
template <class T>
void gmm_kmeans(const T* X, const T* W, index_t Bx, index_t n_rep, index_t N, index_t D, index_t K, index_t max_iter,
                T* centers, std::int64_t* labels, void* scratch, std::size_t scratch_bytes, cudaStream_t stream) {
  const index_t B = Bx * n_rep;
  if (B == 0 || N == 0) return;
  Carve cv(scratch);
  const KmeansBuffers e(cv, B, N, D, K);
  check_scratch(cv, scratch_bytes, "gmm_kmeans");
  const index_t G = n_groups(N), Q = K * (D + 1);
  PGM_CUDA_CHECK(cudaMemsetAsync(labels, 0xff, static_cast<std::size_t>(B * N) * sizeof(std::int64_t), stream));
  PGM_CUDA_CHECK(cudaMemsetAsync(e.running, 1, static_cast<std::size_t>(B), stream));
  PGM_CUDA_CHECK(cudaMemsetAsync(e.changed, 0, static_cast<std::size_t>(B), stream));
  const bool sync = may_synchronise(stream);
  const index_t* sets = nullptr;
  index_t nb = B;
  for (index_t it = 0; it <= max_iter; ++it) {
    assign_kernel<T><<<blocks_for(nb * N, kThreads), kThreads, 0, stream>>>(X, n_rep, N, D, K, centers, e.running, sets,
                                                                            nb, labels, e.changed);
    check_launch("gmm kmeans assign");
    decide_kernel<<<blocks_for(nb, kThreads), kThreads, 0, stream>>>(it, max_iter, sets, nb, e.running, e.changed);
    check_launch("gmm kmeans stop");
    if (it == max_iter) break;
    center_sums_kernel<T><<<blocks_for(nb * G * Q, kThreads), kThreads, 0, stream>>>(X, W, n_rep, N, D, K, G, labels,
                                                                                     e.running, sets, nb, e.part);
    check_launch("gmm kmeans sums");
    centers_kernel<T>
        <<<blocks_for(nb * K * D, kThreads), kThreads, 0, stream>>>(D, K, G, e.part, e.running, sets, nb, centers);
    check_launch("gmm kmeans centres");
    if (sync && (it + 1) % kSyncEvery == 0) {
      nb = list_active(e.running, B, e.list, e.count, stream);
      sets = e.list;
      if (nb == 0) break;
    }
  }
}

#define PGM_GMM_INIT_INSTANTIATE(T)                                                                                 \
  template void gmm_random_from_data<T>(const T*, index_t, index_t, index_t, index_t, std::uint64_t, std::uint64_t, \
                                        std::int64_t*, void*, std::size_t, cudaStream_t);                           \
  template void gmm_kmeanspp<T>(const T*, const T*, index_t, index_t, index_t, index_t, index_t, std::uint64_t,     \
                                std::uint64_t, std::int64_t*, void*, std::size_t, cudaStream_t);                    \
  template void gmm_kmeans<T>(const T*, const T*, index_t, index_t, index_t, index_t, index_t, index_t, T*,         \
                              std::int64_t*, void*, std::size_t, cudaStream_t);
PGM_GMM_INIT_INSTANTIATE(float)
PGM_GMM_INIT_INSTANTIATE(double)

}  // namespace pygenmod::cuda
