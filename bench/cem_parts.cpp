// The parts of one W9b CEM iteration outside the objective, in C++ (B=256 problems, N=1000
// samples, D=32, 100 elites, float64): the population with float32 noise (the default of
// cem_optimize), with float64 noise, the bare float64 and float32 normals, and the update
// (elites, best-so-far, refit). Minimum ms of 15 rounds on the pool's threads.
//
//   g++ -std=c++17 -O3 -fopenmp-simd -fno-math-errno -fno-trapping-math -ffp-contract=fast \
//       -pthread -Icsrc/include bench/cem_parts.cpp -o /tmp/cem_parts
//   /tmp/cem_parts                      # OMP_NUM_THREADS=1 for one thread
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "pygenmod/cem.hpp"

using namespace pygenmod;

int main() {
  const index_t B = 256, N = 1000, D = 32, k = 100;
  std::vector<double> mean(B * D, 0.0), sd(B * D, 2.0), X(B * N * D), R(B * N), w(k, 1.0 / k);
  std::vector<double> best_x(B * D), best_r(B, -1e300), hist(B);
  std::vector<float> Y(B * N * D);
  std::vector<std::int64_t> idx(B * k);
  std::mt19937_64 gen(1);
  std::normal_distribution<double> normal;
  for (auto& r : R) r = normal(gen);
  using clock = std::chrono::steady_clock;
  auto ms = [](clock::time_point a, clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
  };
  double best[5] = {1e9, 1e9, 1e9, 1e9, 1e9};
  for (int rep = 0; rep < 15; ++rep) {
    const std::uint64_t off = static_cast<std::uint64_t>(rep * N * D);
    const auto t0 = clock::now();
    cem::sample_diag<double, float>(mean.data(), sd.data(), 1, 0, off, B, N, D, X.data());
    const auto t1 = clock::now();
    cem::sample_diag<double, double>(mean.data(), sd.data(), 1, 0, off, B, N, D, X.data());
    const auto t2 = clock::now();
    sampling::fill_cpu<double>(rng::NORMAL, 1, 0, off, B, N * D, X.data());
    const auto t3 = clock::now();
    sampling::fill_cpu<float>(rng::NORMAL, 1, 0, off, B, N * D, Y.data());
    const auto t4 = clock::now();
    std::vector<double> m = mean, s = sd;
    cem::update_diag<double>(X.data(), R.data(), B, N, D, w.data(), {k, 0.0, 0.01, 0.0}, m.data(), s.data(),
                             best_x.data(), best_r.data(), hist.data(), idx.data());
    const auto t5 = clock::now();
    const double t[5] = {ms(t0, t1), ms(t1, t2), ms(t2, t3), ms(t3, t4), ms(t4, t5)};
    for (int i = 0; i < 5; ++i) best[i] = std::min(best[i], t[i]);
  }
  std::printf(
      "population f32 noise %.2f ms, f64 noise %.2f ms; 8.2M normals f64 %.2f ms, f32 %.2f ms; update %.2f ms\n",
      best[0], best[1], best[2], best[3], best[4]);
}
