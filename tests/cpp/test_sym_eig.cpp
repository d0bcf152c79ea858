// The Jacobi eigensolver of GMR's conditioning (pygenmod/sym_eig.hpp): for random symmetric
// matrices of sizes 1..12 (definite, indefinite, rank-deficient, repeated eigenvalues) the
// eigenvectors are orthonormal, A v_j = w_j v_j, and the trace and Frobenius norm are kept;
// matrices near the ends of the float64 range are decomposed as well as any other.
#include <cmath>
#include <random>
#include <vector>

#include "check.hpp"
#include "pygenmod/sym_eig.hpp"

using pygenmod::index_t;

void check_decomposition(const std::vector<double>& a0, index_t n) {
  std::vector<double> a = a0, w(n), v(n * n);
  pygenmod::linalg::sym_eig(n, a.data(), w.data(), v.data());
  double scale = 1e-300, trace = 0, sum_w = 0, fro = 0, sum_w2 = 0;
  for (index_t i = 0; i < n * n; ++i) scale = std::fmax(scale, std::fabs(a0[i]));
  for (index_t i = 0; i < n; ++i) {
    trace += a0[i * n + i];
    sum_w += w[i];
    sum_w2 += w[i] * w[i];
  }
  for (index_t i = 0; i < n * n; ++i) fro += a0[i] * a0[i];
  const double tol = 1e-13 * static_cast<double>(n);
  CHECK_NEAR(sum_w, trace, tol * scale * static_cast<double>(n));
  CHECK_NEAR(sum_w2, fro, tol * scale * scale * static_cast<double>(n * n));
  for (index_t j = 0; j < n; ++j)
    for (index_t k = 0; k < n; ++k) {
      double dot = 0;
      for (index_t i = 0; i < n; ++i) dot += v[i * n + j] * v[i * n + k];
      CHECK_NEAR(dot, j == k ? 1.0 : 0.0, tol);
    }
  for (index_t j = 0; j < n; ++j)
    for (index_t i = 0; i < n; ++i) {
      double av = 0;
      for (index_t l = 0; l < n; ++l) av += a0[i * n + l] * v[l * n + j];
      CHECK_NEAR(av, w[j] * v[i * n + j], tol * scale);
    }
}

int main() {
  std::mt19937 gen(11);
  std::normal_distribution<double> z;
  for (index_t n = 1; n <= 12; ++n)
    for (int kind = 0; kind < 4; ++kind) {
      // 0: B B^T + I, 1: indefinite, 2: rank 1, 3: 2 I + rank 1 (n - 1 equal eigenvalues)
      std::vector<double> b(n * n), u(n), a(n * n);
      for (auto& x : b) x = z(gen);
      for (auto& x : u) x = z(gen);
      for (index_t i = 0; i < n; ++i)
        for (index_t j = 0; j < n; ++j) {
          double s = 0;
          for (index_t l = 0; l < n; ++l) s += b[i * n + l] * b[j * n + l];
          const double sym = 0.5 * (b[i * n + j] + b[j * n + i]);
          a[i * n + j] = kind == 0   ? s + (i == j)
                         : kind == 1 ? sym
                         : kind == 2 ? u[i] * u[j]
                                     : 2.0 * (i == j) + u[i] * u[j];
        }
      check_decomposition(a, n);
    }
  std::vector<double> zero(9, 0.0);  // already diagonal: no rotation
  check_decomposition(zero, 3);
  for (double scale : {1e160, 1e-170}) {  // sums of squares would overflow / underflow unscaled
    std::vector<double> m = {1.0 * scale, 0.9 * scale, 0.9 * scale, 1.0 * scale}, a = m, w(2), v(4);
    pygenmod::linalg::sym_eig(2, a.data(), w.data(), v.data());
    CHECK_NEAR(std::fmax(w[0], w[1]) / scale, 1.9, 1e-14);
    CHECK_NEAR(std::fmin(w[0], w[1]) / scale, 0.1, 1e-14);
    for (double x : v) CHECK_NEAR(std::fabs(x), std::sqrt(0.5), 1e-14);  // the eigenvectors (1, +-1) / sqrt 2
  }
  return check::finish("sym_eig");
}
