// Batched EM on a two-cluster set with a known answer. Each set holds 8 points: (+-1, 0) and
// (0, +-1) around c0 and around c1, ten units apart, so the responsibilities are 0/1 to within
// exp(-50) and EM's fixed point is the clusters' own statistics: weights 1/2, means c0 and c1,
// covariances diag(1/2, 1/2) (biased: sum of squared deviations / 4) plus reg. Two sets in one
// call (the second shifted by (3, -2)), full and diagonal covariances, float64 and float32.
#include <cmath>
#include <cstdint>
#include <vector>

#include "check.hpp"
#include "pygenmod/gmm.hpp"

namespace gmm = pygenmod::gmm;

template <class T>
void two_clusters(int type) {
  const int B = 2, N = 8, D = 2, K = 2;
  const double reg = 1e-6, c[2][2] = {{-5, 0}, {5, 0}}, shift[2][2] = {{0, 0}, {3, -2}};
  const double dev[4][2] = {{1, 0}, {-1, 0}, {0, 1}, {0, -1}};
  std::vector<T> X(B * N * D), W(B * N, T(1)), regs(B, T(reg));
  for (int b = 0; b < B; ++b)
    for (int k = 0; k < 2; ++k)
      for (int i = 0; i < 4; ++i)
        for (int d = 0; d < D; ++d) X[(b * N + k * 4 + i) * D + d] = T(c[k][d] + dev[i][d] + shift[b][d]);
  const std::int64_t cs = gmm::cov_size(type, K, D);
  std::vector<T> weights(B * K, T(0.5)), means(B * K * D), cov(B * cs), pc(B * cs, T(0));
  for (int b = 0; b < B; ++b) {
    for (int k = 0; k < K; ++k) {  // start off-centre: (-+4, 1)
      means[(b * K + k) * D] = T((k ? 4 : -4) + shift[b][0]);
      means[(b * K + k) * D + 1] = T(1 + shift[b][1]);
      if (type == gmm::FULL)
        pc[b * cs + k * D * D] = pc[b * cs + k * D * D + 3] = T(1);  // identity factor
      else
        pc[b * cs + k * D] = pc[b * cs + k * D + 1] = T(1);
    }
  }
  std::vector<T> lb(B, T(NAN));
  std::vector<std::int64_t> n_iter(B);
  std::vector<std::uint8_t> converged(B), flags(B * K);
  gmm::fit_cpu<T>(type, X.data(), W.data(), regs.data(), B, 1, N, D, K, 100, 1e-10, weights.data(), means.data(),
                  cov.data(), pc.data(), lb.data(), n_iter.data(), converged.data(), flags.data());
  const double tol = sizeof(T) == 8 ? 1e-9 : 2e-5;
  for (int b = 0; b < B; ++b) {
    CHECK(converged[b] == 1);
    for (int k = 0; k < K; ++k) {
      CHECK(flags[b * K + k] == 0);
      CHECK_NEAR(double(weights[b * K + k]), 0.5, tol);
      for (int d = 0; d < D; ++d) CHECK_NEAR(double(means[(b * K + k) * D + d]), c[k][d] + shift[b][d], tol);
      if (type == gmm::FULL) {
        const T* S = cov.data() + b * cs + k * D * D;
        CHECK_NEAR(double(S[0]), 0.5 + reg, tol);
        CHECK_NEAR(double(S[1]), 0.0, tol);
        CHECK_NEAR(double(S[2]), 0.0, tol);
        CHECK_NEAR(double(S[3]), 0.5 + reg, tol);
        CHECK_NEAR(double(pc[b * cs + k * D * D]), 1 / std::sqrt(0.5 + reg), 10 * tol);  // P = L^{-T}
      } else {
        CHECK_NEAR(double(cov[b * cs + k * D]), 0.5 + reg, tol);
        CHECK_NEAR(double(cov[b * cs + k * D + 1]), 0.5 + reg, tol);
      }
    }
    // mean log-likelihood: log(1/2) + log N(x | mu, 0.5 I) at squared distance 1 per point
    const double var = 0.5 + reg, want = std::log(0.5) - std::log(2 * M_PI * var) - 1.0 / (2 * var);
    CHECK_NEAR(double(lb[b]), want, 1e3 * tol);
  }
}

int main() {
  const int detected = pygenmod::cpu::detected_isa();
  for (int cap = 0; cap <= detected; ++cap) {  // every instruction-set entry point
    pygenmod::cpu::set_isa_cap(cap);
    two_clusters<double>(gmm::FULL);
    two_clusters<double>(gmm::DIAG);
    two_clusters<float>(gmm::FULL);
    two_clusters<float>(gmm::DIAG);
  }
  pygenmod::cpu::set_isa_cap(-1);
  return check::finish("test_gmm");
}
