// XLA FFI handlers (CPU) of the Gaussian-mixture initialisation, for pygenmod.jax.gmm_fit: the
// k-means++ / Lloyd / random_from_data kernels of gmm/init.hpp and the M-step of gmm/cpu.hpp,
// the kernels pygenmod.gmm.fit calls. Here: checks, the gather of the seed centres and the
// one-hot responsibilities (gmm.py's _init_resp / _one_hot: copies and fills, no math).
#include <algorithm>
#include <cstdint>
#include <vector>

#include "args.hpp"
#include "pygenmod/gmm.hpp"

using namespace pygenmod;
using namespace pygenmod::jaxffi;

namespace {

enum Init : int { KMEANS = 0, KMEANSPP = 1, RANDOM_FROM_DATA = 2 };

// X (Bx, N, D), W (Bx, N), seed words -> resp (Bx * n_rep, N, K): one-hot responsibilities of
// the initialisation (init r of set b draws from stream `stream + (r << 32) + b`, init.hpp).
ffi::Error init_resp(Buf X, Buf W, Buf key, Out resp, i64 init, i64 n_rep, std::uint64_t stream) {
  return guarded([&] {
    if (init < KMEANS || init > RANDOM_FROM_DATA) throw std::invalid_argument("init: expected 0, 1 or 2");
    if (n_rep < 1) throw std::invalid_argument("n_init: must be >= 1");
    dispatch_float(X, "X", [&](auto tag) {
      using T = decltype(tag);
      const i64 Bx = dim(X, 0, 3, "X"), N = X.dimensions()[1], D = X.dimensions()[2];
      const i64 B = Bx * n_rep, K = dim(*resp, 2, 3, "resp");
      if (K < 1) throw std::invalid_argument("n_components: must be >= 1");
      const T* x = in<T>(X, "X", {Bx, N, D});
      const T* w = in<T>(W, "weights", {Bx, N});
      T* R = out<T>(resp, "resp", {B, N, K});
      std::fill(R, R + B * N * K, T(0));
      if (N == 0) return;
      const std::uint64_t seed = philox_key(key);
      std::vector<std::int64_t> idx(B * K);
      if (init == RANDOM_FROM_DATA)
        gmm::random_from_data_cpu<T>(w, Bx, n_rep, N, K, seed, stream, idx.data());
      else
        gmm::kmeanspp_cpu<T>(x, w, Bx, n_rep, N, D, K, seed, stream, idx.data());
      if (init != KMEANS) {  // one-hot of the chosen points (idx -1: a set without points)
        for (i64 b = 0; b < B; ++b)
          for (i64 k = 0; k < K; ++k)
            if (idx[b * K + k] >= 0) R[(b * N + idx[b * K + k]) * K + k] = T(1);
        return;
      }
      // Lloyd from the seeded centres X[b / n_rep, max(idx, 0)]; one-hot of the labels
      std::vector<T> centers(B * K * D);
      for (i64 b = 0; b < B; ++b)
        for (i64 k = 0; k < K; ++k) {
          const T* src = x + ((b / n_rep) * N + std::max<std::int64_t>(idx[b * K + k], 0)) * D;
          std::copy(src, src + D, centers.begin() + (b * K + k) * D);
        }
      std::vector<std::int64_t> labels(B * N);
      gmm::kmeans_cpu<T>(x, w, Bx, n_rep, N, D, K, 100, centers.data(), labels.data());
      for (i64 b = 0; b < B; ++b)
        for (i64 n = 0; n < N; ++n)
          if (labels[b * N + n] >= 0) R[(b * N + n) * K + labels[b * N + n]] = T(1);
    });
  });
}

// X (Bx, N, D), W (Bx, N), resp (Bx * n_rep, N, K), reg (Bx * n_rep,) -> weights, means,
// covariances, precisions_cholesky (shape by covariance type), flags (B, K) uint8
ffi::Error m_step(Buf X, Buf W, Buf resp, Buf reg, Out w, Out mu, Out cv, Out pc, Out flags, i64 cov_type, i64 n_rep) {
  return guarded([&] {
    gmm::check_cov_type(static_cast<int>(cov_type));
    if (n_rep < 1) throw std::invalid_argument("n_init: must be >= 1");
    dispatch_float(X, "X", [&](auto tag) {
      using T = decltype(tag);
      const i64 Bx = dim(X, 0, 3, "X"), N = X.dimensions()[1], D = X.dimensions()[2];
      const i64 B = Bx * n_rep, K = dim(resp, 2, 3, "resp");
      if (K < 1) throw std::invalid_argument("resp: need at least one component");
      auto cov = [&](Out& o, const char* name) {
        switch (cov_type) {
          case gmm::FULL:
            return out<T>(o, name, {B, K, D, D});
          case gmm::TIED:
            return out<T>(o, name, {B, D, D});
          case gmm::DIAG:
            return out<T>(o, name, {B, K, D});
          default:
            return out<T>(o, name, {B, K});
        }
      };
      auto* fl = out<std::uint8_t>(flags, "flags", {B, K});
      std::fill(fl, fl + B * K, 0);
      gmm::m_step_cpu<T>(static_cast<int>(cov_type), in<T>(X, "X", {Bx, N, D}), in<T>(W, "weights", {Bx, N}),
                         in<T>(resp, "resp", {B, N, K}), in<T>(reg, "reg_covar", {B}), Bx, n_rep, N, D, K,
                         out<T>(w, "weights", {B, K}), out<T>(mu, "means", {B, K, D}), cov(cv, "covariances"),
                         cov(pc, "precisions_cholesky"), fl);
    });
  });
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(
    PgmGmmInit, init_resp,
    (bind<3, 1>(ffi::Ffi::Bind()).Attr<i64>("init").Attr<i64>("n_rep").Attr<std::uint64_t>("stream")));
XLA_FFI_DEFINE_HANDLER_SYMBOL(PgmGmmMStep, m_step,
                              (bind<4, 5>(ffi::Ffi::Bind()).Attr<i64>("cov_type").Attr<i64>("n_rep")));
