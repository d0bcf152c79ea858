// Gaussian mixtures, initialisation math shared by the CPU loops (init.hpp) and the CUDA
// kernels (csrc/cuda/gmm_init.cu): the Philox stream rule, the uniform of draw j, the
// Fisher-Yates pick, squared distances and the nearest centre. One body for host and device.
#pragma once

#include <cstdint>

#include "pygenmod/common.hpp"
#include "pygenmod/random.hpp"

namespace pygenmod::gmm {

// Draw j of run r of data set b uses stream (stream0 + (r << 32) + b), block j: a uniform from
// its first two words. A set's draws depend neither on the batch size nor on its neighbours
// (a chunk starting at set g passes stream0 + g), and run 0 draws the same numbers whatever
// n_rep (n_init) is. s = b * n_rep + r.
PGM_HD std::uint64_t init_stream(std::uint64_t stream0, index_t s, index_t n_rep) {
  return stream0 + (static_cast<std::uint64_t>(s % n_rep) << 32) + static_cast<std::uint64_t>(s / n_rep);
}
PGM_HD double init_uniform(std::uint64_t seed, std::uint64_t stream, index_t j) {
  const rng::u32x4 w = rng::block(seed, stream, static_cast<std::uint64_t>(j));
  return rng::uniform_f64(w.v[0], w.v[1]);
}

// Partial Fisher-Yates step j over nv candidates: the position in [j, nv) to swap with j.
PGM_HD index_t fisher_yates_pick(double u, index_t j, index_t nv) {
  const index_t r = j + static_cast<index_t>(u * static_cast<double>(nv - j));
  return r < nv - 1 ? r : nv - 1;
}

// random_from_data for one set (weights w[N]): idx[0, K) = K distinct points of positive
// weight, uniformly (partial Fisher-Yates over their list); with nv < K such points, they are
// repeated in order; -1 for a set with none. valid: room for N indices (scratch).
template <class T>
PGM_HD void random_from_data_one(const T* w, index_t N, index_t K, std::uint64_t seed, std::uint64_t stream,
                                 index_t* valid, std::int64_t* idx) {
  index_t nv = 0;
  for (index_t n = 0; n < N; ++n)
    if (w[n] > 0) valid[nv++] = n;
  for (index_t j = 0; j < K; ++j) {
    if (nv == 0) {
      idx[j] = -1;
    } else if (j < nv) {
      const index_t r = fisher_yates_pick(init_uniform(seed, stream, j), j, nv);
      const index_t tmp = valid[j];
      valid[j] = valid[r];
      valid[r] = tmp;
      idx[j] = valid[j];
    } else {
      idx[j] = valid[j % nv];
    }
  }
}

// a + b * c with two roundings on both sides: nvcc would contract it into one FMA (its
// default), the CPU build (baseline ISA) does not; written out, the device's distances and
// sums below are bitwise the CPU's.
PGM_HD double add_mul(double a, double b, double c) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(a, __dmul_rn(b, c));
#else
  return a + b * c;
#endif
}

// Squared Euclidean distance in float64, summed over d in order.
template <class T>
PGM_HD double sq_dist(const T* a, const T* b, index_t D) {
  double e = 0;
  for (index_t d = 0; d < D; ++d) {
    const double t = static_cast<double>(a[d]) - static_cast<double>(b[d]);
    e = add_mul(e, t, t);
  }
  return e;
}

// Index of the centre (of K, rows of c) nearest to x; the first of equal distances.
template <class T>
PGM_HD index_t nearest_centre(const T* x, const T* c, index_t K, index_t D) {
  double best = INFINITY;
  index_t arg = 0;
  for (index_t k = 0; k < K; ++k) {
    const double e = sq_dist(x, c + k * D, D);
    if (e < best) {
      best = e;
      arg = k;
    }
  }
  return arg;
}

// k-means++: acc plus the mass of a point of weight w > 0 in step j's draw (by weight: step 0,
// or when every remaining point sits on a centre; else weight times squared distance to the
// nearest centre).
PGM_HD double kmeanspp_add(double acc, double w, double d2, bool by_weight) {
  return add_mul(acc, w, by_weight ? 1.0 : d2);
}

}  // namespace pygenmod::gmm
