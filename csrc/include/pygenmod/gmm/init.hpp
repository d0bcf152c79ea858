// Gaussian mixtures, layer 4 (CPU only): initialisation (random_from_data, k-means++,
// Lloyd k-means) on Philox streams keyed per set and run.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "pygenmod/gmm/cpu.hpp"
#include "pygenmod/gmm/init_math.hpp"
#include "pygenmod/random.hpp"

#if !defined(__CUDACC__)
namespace pygenmod::gmm {

// ---- initialisation --------------------------------------------------------------------
// The stream rule, draws and per-point math are init_math.hpp's (shared with the CUDA
// kernels, csrc/cuda/gmm_init.cu).

// K distinct points with positive weight per set (uniformly, partial Fisher-Yates); with
// fewer than K such points, they are repeated in order. idx = -1 for a set with none.
template <class T>
void random_from_data_cpu(const T* W, index_t Bx, index_t n_rep, index_t N, index_t K, std::uint64_t seed,
                          std::uint64_t stream0, std::int64_t* idx) {
  const index_t B = Bx * n_rep;
  sets_in_parallel(
      B, Stop::never(), [&] { return std::vector<index_t>(N); },
      [&](index_t s, std::vector<index_t>& valid) {
        random_from_data_one(W + (s / n_rep) * N, N, K, seed, init_stream(stream0, s, n_rep), valid.data(),
                             idx + s * K);
      });
}

// k-means++ seeding (weighted D^2 sampling, one candidate per step).
template <class T>
void kmeanspp_cpu(const T* X, const T* W, index_t Bx, index_t n_rep, index_t N, index_t D, index_t K,
                  std::uint64_t seed, std::uint64_t stream0, std::int64_t* idx) {
  const index_t B = Bx * n_rep;
  sets_in_parallel(
      B, Stop::never(), [&] { return std::vector<double>(N); },
      [&](index_t s, std::vector<double>& d2) {
        const T* x = X + (s / n_rep) * N * D;
        const T* w = W + (s / n_rep) * N;
        std::fill(d2.begin(), d2.end(), INFINITY);
        for (index_t j = 0; j < K; ++j) {
          double tot = 0, totw = 0;
          for (index_t n = 0; n < N; ++n) {
            if (!(w[n] > 0)) continue;
            totw += static_cast<double>(w[n]);
            if (j > 0) tot = kmeanspp_add(tot, static_cast<double>(w[n]), d2[n], false);
          }
          if (!(totw > 0)) {
            idx[s * K + j] = -1;
            continue;
          }
          const bool by_weight = (j == 0) || !(tot > 0);
          const double u = init_uniform(seed, init_stream(stream0, s, n_rep), j) * (by_weight ? totw : tot);
          double acc = 0;
          index_t pick = -1;
          for (index_t n = 0; n < N; ++n) {
            if (!(w[n] > 0)) continue;
            acc = kmeanspp_add(acc, static_cast<double>(w[n]), d2[n], by_weight);
            pick = n;
            if (u < acc) break;
          }
          idx[s * K + j] = pick;
          const T* cj = x + pick * D;
          for (index_t n = 0; n < N; ++n) d2[n] = std::min(d2[n], sq_dist(x + n * D, cj, D));
        }
      });
}

// Lloyd iterations (weighted means; an empty cluster keeps its centre), stopping when no label
// changes. centers: in/out [B, K, D]; labels [B, N] (nearest centre, also for padded points).
template <class T>
void kmeans_cpu(const T* X, const T* W, index_t Bx, index_t n_rep, index_t N, index_t D, index_t K, index_t max_iter,
                T* centers, std::int64_t* labels) {
  const index_t B = Bx * n_rep;
  struct Work {
    std::vector<double> sum, cnt;
  };
  sets_in_parallel(
      B, Stop::never(), [&] { return Work{std::vector<double>(K * D), std::vector<double>(K)}; },
      [&](index_t s, Work& wk) {
        auto& [sum, cnt] = wk;
        const T* x = X + (s / n_rep) * N * D;
        const T* w = W + (s / n_rep) * N;
        T* c = centers + s * K * D;
        std::int64_t* lab = labels + s * N;
        for (index_t n = 0; n < N; ++n) lab[n] = -1;
        for (index_t it = 0; it <= max_iter; ++it) {
          bool changed = false;
          for (index_t n = 0; n < N; ++n) {
            const index_t arg = nearest_centre(x + n * D, c, K, D);
            if (lab[n] != arg) {
              changed = true;
              lab[n] = arg;
            }
          }
          if ((!changed && it > 0) || it == max_iter) break;
          std::fill(sum.begin(), sum.end(), 0.0);
          std::fill(cnt.begin(), cnt.end(), 0.0);
          for (index_t n = 0; n < N; ++n) {
            const double wt = static_cast<double>(w[n]);
            if (!(wt > 0)) continue;
            cnt[lab[n]] += wt;
            for (index_t d = 0; d < D; ++d)
              sum[lab[n] * D + d] = add_mul(sum[lab[n] * D + d], wt, static_cast<double>(x[n * D + d]));
          }
          for (index_t k = 0; k < K; ++k)
            if (cnt[k] > 0)
              for (index_t d = 0; d < D; ++d) c[k * D + d] = static_cast<T>(sum[k * D + d] / cnt[k]);
        }
      });
}

}  // namespace pygenmod::gmm

#endif  // !__CUDACC__
