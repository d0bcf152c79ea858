// Gumbel-softmax rows on the calling thread (B=2 rows of K, best of 7 x 200 calls, us per
// call): the whole CPU call (gumbel_softmax_cpu: draws + row), the Gumbel draws alone, the
// CPU's vector row (gumbel_row.hpp) and the serial row that CUDA and numba run.
//
//   g++ -std=c++17 -O3 -fopenmp-simd -fno-math-errno -fno-trapping-math -ffp-contract=fast \
//       -pthread -Icsrc/include bench/gumbel_rows.cpp -o /tmp/gumbel_rows
//   /tmp/gumbel_rows                    # PYGENMOD_CPU_ISA=avx2 or baseline: the other entries
#include <chrono>
#include <cstdio>
#include <vector>
#include <random>
#include "pygenmod/mvn.hpp"
namespace S = pygenmod::sampling;
template <class T>
void go(int K) {
  std::vector<T> l(2 * K), ys(2 * K);
  std::vector<int64_t> idx(2);
  std::vector<int32_t> st(2);
  std::mt19937 gen(1);
  std::normal_distribution<double> nd(0, 1);
  for (auto& v : l) v = T(nd(gen));
  auto time = [&](auto f) {
    double best = 1e9;
    for (int r = 0; r < 7; ++r) {
      auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < 200; ++i) f();
      double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / 200;
      best = std::min(best, us);
    }
    return best;
  };
  double all =
      time([&] { S::gumbel_softmax_cpu<T>(l.data(), 2, K, T(1), 1, 0, 0, ys.data(), nullptr, idx.data(), st.data()); });
  double fill = time([&] {
    for (int r = 0; r < 2; ++r) S::fill_range<T>(pygenmod::rng::GUMBEL, 1, r, 0, K, ys.data() + r * K);
  });
  double rowc = time([&] {
    int s;
    for (int r = 0; r < 2; ++r) S::gumbel_softmax_row_cpu<T>(l.data() + r * K, K, T(1), ys.data() + r * K, &s);
  });
  double rows = time([&] {
    int s;
    for (int r = 0; r < 2; ++r) S::gumbel_softmax_row_serial<T>(l.data() + r * K, K, T(1), ys.data() + r * K, &s);
  });
  printf("%s K=%d all %.1f fill %.1f row_cpu %.1f row_serial %.1f\n", sizeof(T) == 4 ? "f32" : "f64", K, all, fill,
         rowc, rows);
}
int main() {
  for (int K : {1000, 10000}) {
    go<float>(K);
    go<double>(K);
  }
}
