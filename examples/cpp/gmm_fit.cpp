// A batched Gaussian-mixture fit: 16 data sets of 2000 points in 2-D, each drawn from three
// Gaussian clusters, fitted with K = 3 full-covariance components in one call.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "pygenmod/gmm.hpp"
#include "pygenmod/random.hpp"

namespace gmm = pygenmod::gmm;
namespace rng = pygenmod::rng;

int main() {
  const int B = 16, N = 2000, D = 2, K = 3;
  const double centre[K][D] = {{-4, 0}, {0, 4}, {4, 0}}, sd = 0.7;
  std::vector<double> X(B * N * D), W(B * N, 1.0), reg(B, 1e-6);
  for (int b = 0; b < B; ++b)
    for (int n = 0; n < N; ++n) {
      const rng::u32x4 w = rng::block(7, b, n);  // Box-Muller on Philox uniforms
      const double u1 = rng::uniform_f64(w.v[0], w.v[1]), u2 = rng::uniform_f64(w.v[2], w.v[3]);
      const double r = std::sqrt(-2 * std::log(u1));
      const int k = n % K;
      X[(b * N + n) * D] = centre[k][0] + sd * r * std::cos(2 * M_PI * u2);
      X[(b * N + n) * D + 1] = centre[k][1] + sd * r * std::sin(2 * M_PI * u2);
    }
  // Start: equal weights, means at three of the points, identity precision factors.
  const std::int64_t cs = gmm::cov_size(gmm::FULL, K, D);
  std::vector<double> weights(B * K, 1.0 / K), means(B * K * D), cov(B * cs), pc(B * cs, 0.0);
  for (int b = 0; b < B; ++b)
    for (int k = 0; k < K; ++k) {
      for (int d = 0; d < D; ++d) means[(b * K + k) * D + d] = X[(b * N + k) * D + d];
      for (int d = 0; d < D; ++d) pc[b * cs + k * D * D + d * D + d] = 1.0;
    }
  std::vector<double> lower_bound(B, NAN);
  std::vector<std::int64_t> n_iter(B);
  std::vector<std::uint8_t> converged(B), flags(B * K);
  gmm::fit_cpu<double>(gmm::FULL, X.data(), W.data(), reg.data(), B, 1, N, D, K, 200, 1e-6, weights.data(),
                       means.data(), cov.data(), pc.data(), lower_bound.data(), n_iter.data(), converged.data(),
                       flags.data());
  int ok = 0;
  for (int b = 0; b < B; ++b) ok += converged[b];
  std::printf("GMM: %d of %d sets converged; set 0 after %lld iterations, mean log-likelihood %.4f\n", ok, B,
              static_cast<long long>(n_iter[0]), lower_bound[0]);
  for (int k = 0; k < K; ++k)
    std::printf("  component %d: weight %.3f, mean (%+.3f, %+.3f), var (%.3f, %.3f)\n", k, weights[k], means[k * D],
                means[k * D + 1], cov[k * D * D], cov[k * D * D + 3]);
  return ok == B ? 0 : 1;
}
