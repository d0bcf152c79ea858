// cem::optimize_diag, the whole diagonal CEM loop around a C++ objective: the same state as
// the step-by-step composition (sample_diag, update_diag) bitwise, the objective's buffer
// switch honoured, and a NaN return stops the loop at its iteration; a population is the noise
// stream (float32 or float64) converted and scaled, for short and long samples (sample_diag).
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "check.hpp"
#include "pygenmod/cem.hpp"

namespace cem = pygenmod::cem;
using pygenmod::index_t;

constexpr index_t B = 3, N = 40, D = 4, K = 6, T = 30;

struct State {
  std::vector<double> mean = std::vector<double>(B * D, 0.0), std_ = std::vector<double>(B * D, 1.5);
  std::vector<double> best_x = std::vector<double>(B * D, 0.0);
  std::vector<double> best_r = std::vector<double>(B, -std::numeric_limits<double>::infinity());
  std::vector<double> hist = std::vector<double>(T * B, 0.0);
  std::vector<std::int64_t> idx = std::vector<std::int64_t>(B * K, 0);
};

// Returns of a sphere whose optimum of row b is (b, -b, ...): -|x - opt_b|^2.
void sphere(const double* X, double* R) {
  for (index_t b = 0; b < B; ++b)
    for (index_t s = 0; s < N; ++s) {
      double r = 0;
      for (index_t d = 0; d < D; ++d) {
        const double c = X[(b * N + s) * D + d] - (d % 2 ? -double(b) : double(b));
        r -= c * c;
      }
      R[b * N + s] = r;
    }
}

// sample_diag<double, E> against fill_range<E> over each whole row, converted and scaled here.
template <class E>
void same_population() {
  for (const index_t d : {index_t(1), index_t(3), index_t(31), index_t(32), index_t(1000), index_t(5000)}) {
    const index_t n = d < 32 ? 1500 : 7, rows = 2;  // n = 1500: several slices of whole short samples
    std::vector<double> m(rows * d), s(rows * d), X(rows * n * d);
    std::vector<E> eps(n * d);
    for (index_t i = 0; i < rows * d; ++i) {
      m[i] = 0.25 * double(i % 7) - 1;
      s[i] = 0.5 + 0.125 * double(i % 5);
    }
    cem::sample_diag<double, E>(m.data(), s.data(), 5, 9, 123, rows, n, d, X.data());
    for (index_t r = 0; r < rows; ++r) {
      pygenmod::sampling::fill_range<E>(pygenmod::rng::NORMAL, 5, 9 + std::uint64_t(r), 123, n * d, eps.data());
      bool same = true;
      for (index_t i = 0; i < n * d; ++i)
        same = same && X[r * n * d + i] == m[r * d + i % d] + s[r * d + i % d] * double(eps[i]);
      CHECK(same);
    }
  }
}

int main() {
  const std::vector<double> w(K, 1.0 / K);
  const cem::UpdateOptions o{K, 0.1, 0.01, 0.0};
  const std::uint64_t seed = 11, stream = 2;

  State a;  // the loop, switching between two buffers every iteration
  std::vector<double> X1(B * N * D), X2(B * N * D), R(B * N);
  index_t calls = 0;
  const index_t done = cem::optimize_diag<double>(T, B, N, D, seed, stream, w.data(), o, a.mean.data(), a.std_.data(),
                                                  a.best_x.data(), a.best_r.data(), a.hist.data(), a.idx.data(),
                                                  X1.data(), [&](index_t t, double* X, double** next) -> const double* {
                                                    CHECK(t == calls++);
                                                    CHECK(X == (t % 2 ? X2.data() : X1.data()));
                                                    sphere(X, R.data());
                                                    *next = X == X1.data() ? X2.data() : X1.data();
                                                    return R.data();
                                                  });
  CHECK(done == T && calls == T);

  State b;  // step by step
  for (index_t t = 0; t < T; ++t) {
    cem::sample_diag<double>(b.mean.data(), b.std_.data(), seed, stream, std::uint64_t(t * N * D), B, N, D, X1.data());
    sphere(X1.data(), R.data());
    CHECK(cem::update_diag<double>(X1.data(), R.data(), B, N, D, w.data(), o, b.mean.data(), b.std_.data(),
                                   b.best_x.data(), b.best_r.data(), b.hist.data() + t * B, b.idx.data()) == 0);
  }
  CHECK(a.mean == b.mean && a.std_ == b.std_ && a.best_x == b.best_x && a.best_r == b.best_r && a.hist == b.hist);
  for (index_t i = 0; i < B * D; ++i) CHECK_NEAR(a.mean[i], i % D % 2 ? -double(i / D) : double(i / D), 0.1);

  State c;  // a NaN return at iteration 4 stops the loop there
  const index_t stopped = cem::optimize_diag<double>(
      T, B, N, D, seed, stream, w.data(), o, c.mean.data(), c.std_.data(), c.best_x.data(), c.best_r.data(),
      c.hist.data(), c.idx.data(), X1.data(), [&](index_t t, double* X, double**) -> const double* {
        sphere(X, R.data());
        if (t == 4) R[B * N - 1] = std::numeric_limits<double>::quiet_NaN();
        return R.data();
      });
  CHECK(stopped == 4);

  // X = mean + std * double(eps) exactly, eps drawn in float32 or float64: for short samples
  // (the flat loop against the repeated mean and scale, over one slice or several), for samples of
  // 32 and more (per sample; 2 per slice at d = 1000) and one longer than a slice (pieces of one)
  same_population<float>();
  same_population<double>();  // drawn into X itself
  return check::finish("test_cem");
}
