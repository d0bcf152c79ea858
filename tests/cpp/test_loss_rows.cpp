// The one-call rows of the adversarial losses and RIG's reward (loss_rows.hpp) against a
// straightforward NumPy-order reference: the same bits for sums of products, in whole rows and
// in slices. This file is built with FMA code generation on x86-64 (CMakeLists.txt), where
// -ffp-contract=fast would fuse `d * d` into the sums but for numpy_sum.hpp's PGM_NO_CONTRACT.
#include <cstdio>
#include <random>
#include <vector>

#include "check.hpp"
#include "pygenmod/loss_rows.hpp"

namespace L = pygenmod::loss_rows;
using pygenmod::index_t;

// numpy's pairwise_sum, each entry already rounded (stored in a).
template <class T>
T pairwise(const T* a, index_t n) {
  if (n < 8) {
    T r = -T(0);
    for (index_t i = 0; i < n; ++i) r += a[i];
    return r;
  }
  if (n <= 128) {
    T r[8];
    for (int j = 0; j < 8; ++j) r[j] = a[j];
    index_t i = 8;
    for (; i < n - (n % 8); i += 8)
      for (int j = 0; j < 8; ++j) r[j] += a[i + j];
    T res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) res += a[i];
    return res;
  }
  index_t n2 = n / 2;
  n2 -= n2 % 8;
  const T left = pairwise(a, n2);
  return left + pairwise(a + n2, n - n2);
}

template <class T>
T sliced(const std::vector<T>& a, index_t chunk) {
  const index_t n = static_cast<index_t>(a.size());
  if (chunk == 0 || n <= chunk) return T(0) + pairwise(a.data(), n);
  T total = T(0) + pairwise(a.data(), chunk);
  for (index_t c = chunk; c < n; c += chunk) total += pairwise(a.data() + c, n - c < chunk ? n - c : chunk);
  return total;
}

template <class T>
void rows(std::mt19937_64& gen) {
  std::uniform_real_distribution<double> u(0, 1);
  for (index_t n : {1, 5, 8, 64, 129, 300, 5000, 20000}) {
    for (index_t chunk : {index_t(0), index_t(8192), index_t(100)}) {
      std::vector<T> x(static_cast<std::size_t>(n)), sq(x.size()), grad(x.size()), zero(x.size(), T(0));
      for (auto& v : x) v = T(1 + u(gen) * 1e-3);  // products with long low parts
      for (std::size_t i = 0; i < x.size(); ++i) {
        volatile T p = x[i] * x[i];  // rounded, as NumPy's x * x
        sq[i] = p;
      }
      const T want = sliced(sq, chunk);
      T got = 0, dist = 0;
      L::square_rows<T>(x.data(), 1, n, T(0), L::SUM, chunk, T(1), grad.data(), &got);
      L::neg_distance_rows<T>(x.data(), zero.data(), 1, 1, n, chunk, true, &dist);
      CHECK(got == want);
      CHECK(dist == -want);
    }
  }
}

int main() {
#if defined(PGM_TEST_FMA)
  if (!__builtin_cpu_supports("fma")) {
    std::printf("loss_rows: skipped (built with FMA code, and this CPU has no FMA)\n");
    return 77;  // ctest's SKIP_RETURN_CODE
  }
#endif
  std::mt19937_64 gen(7);
  rows<double>(gen);
  rows<float>(gen);
  return check::finish("loss_rows");
}
