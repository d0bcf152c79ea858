// The CPU's vector Gumbel-softmax row (gumbel_row.hpp) against the serial row (the device's and
// the numba backend's): the same status and the same index, and the softmax within its rounding
// bound (against a long double softmax); rows of every length around the vector width, ties (signed zeros
// included), masked (-inf), NaN and +inf logits, and rows whose span sends float64 to the
// serial exponentials.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "check.hpp"
#include "pygenmod/mvn.hpp"

namespace S = pygenmod::sampling;
using pygenmod::index_t;

template <class T>
void agree(std::mt19937& gen, index_t K, int kind, T tau) {
  const T inf = std::numeric_limits<T>::infinity();
  std::normal_distribution<double> nd(0.0, 3.0);
  std::uniform_int_distribution<int> pick(0, 9);
  std::vector<T> logits(K), noise(K);
  for (index_t k = 0; k < K; ++k) {
    noise[k] = T(nd(gen));
    const int c = pick(gen);
    switch (kind) {
      case 0:  // plain
        logits[k] = T(nd(gen));
        break;
      case 1:  // few levels and signed zeros: ties between lanes
        logits[k] = c < 3 ? T(0) : c < 6 ? -T(0) : T(c % 2);
        noise[k] = c < 6 ? T(0) : noise[k];
        break;
      case 2:  // masked categories
        logits[k] = c < 7 ? -inf : T(nd(gen));
        break;
      case 3:  // bad logits
        logits[k] = c == 0 ? std::numeric_limits<T>::quiet_NaN() : c == 1 ? inf : T(nd(gen));
        break;
      case 4:  // all masked
        logits[k] = -inf;
        break;
      default:  // a span beyond float64's vector exp (and beyond float32's range of expf)
        logits[k] = c < 2 ? T(-700) : c < 4 ? T(-90) : T(nd(gen));
    }
  }
  std::vector<T> ys = noise, yv = noise;
  int ss = -1, sv = -1;
  const index_t is = S::gumbel_softmax_row_serial<T>(logits.data(), K, tau, ys.data(), &ss);
  const index_t iv = S::gumbel_softmax_row_cpu<T>(logits.data(), K, tau, yv.data(), &sv);
  CHECK(is == iv);
  CHECK(ss == sv);
  if (ss != 0) return;  // bad rows: the values are not used (the caller raises)
  // Against a long double softmax of the same perturbed logits: the vector row's error bound
  // (a few ulp from exp, and the sum's rounding over 64 bytes of partial sums).
  // (The exponent t - max is rounded to T, as in both rows.)
  std::vector<T> t(K);
  T mx = -std::numeric_limits<T>::infinity();
  for (index_t k = 0; k < K; ++k) mx = (t[k] = (logits[k] + noise[k]) / tau) > mx ? t[k] : mx;
  std::vector<long double> ref(K);
  long double z = 0;
  for (index_t k = 0; k < K; ++k) z += (ref[k] = std::exp(static_cast<long double>(t[k] - mx)));
  const double eps = std::numeric_limits<T>::epsilon();
  const double lanes = 64.0 / sizeof(T);
  const double floor = 4.0 * double(std::numeric_limits<T>::denorm_min());  // subnormal quotients
  double total = 0;
  for (index_t k = 0; k < K; ++k) {
    const double want = static_cast<double>(ref[k] / z);
    CHECK(std::isfinite(yv[k]) && yv[k] >= 0);
    CHECK_NEAR(double(yv[k]), want, eps * (8 + double(K) / lanes + lanes) * want + floor);
    total += yv[k];
  }
  CHECK_NEAR(total, 1.0, (std::is_same_v<T, float> ? 1e-5 : 1e-13));
}

template <class T>
void run_all(std::mt19937& gen) {
  for (index_t K : {1, 2, 3, 7, 8, 15, 16, 17, 31, 33, 64, 100, 1000, 4099})
    for (int kind = 0; kind < 6; ++kind)
      for (T tau : {T(1), T(0.5), T(3)})
        for (int rep = 0; rep < 3; ++rep) agree<T>(gen, K, kind, tau);
  // A row whose largest entry is in the tail, and one whose maximum ties across lanes and tail.
  for (index_t K : {17, 40}) {
    std::vector<T> logits(K, T(0)), y(K, T(0)), y2(K, T(0));
    logits[K - 1] = T(5);
    int s1, s2;
    CHECK(S::gumbel_softmax_row_cpu<T>(logits.data(), K, T(1), y.data(), &s1) == K - 1);
    logits[K - 1] = T(0);
    CHECK(S::gumbel_softmax_row_cpu<T>(logits.data(), K, T(1), y2.data(), &s2) == 0);
    CHECK(s1 == 0 && s2 == 0);
  }
}

// Every ISA's entry point gives the same bits (fixed partial sums, no FMA contraction).
template <class T>
void same_bits_every_isa() {
  std::mt19937 gen(11);
  std::normal_distribution<double> nd(0.0, 2.0);
  for (index_t K : {5, 16, 37, 1000}) {
    std::vector<T> logits(K), noise(K);
    for (index_t k = 0; k < K; ++k) logits[k] = T(nd(gen)), noise[k] = T(nd(gen));
    std::vector<T> first;
    for (int cap : {pygenmod::cpu::ISA_AVX512, pygenmod::cpu::ISA_AVX2, pygenmod::cpu::ISA_BASE}) {
      pygenmod::cpu::set_isa_cap(cap);
      std::vector<T> y = noise;
      int s;
      S::gumbel_softmax_row_cpu<T>(logits.data(), K, T(0.7), y.data(), &s);
      if (first.empty()) first = y;
      CHECK(std::memcmp(first.data(), y.data(), sizeof(T) * K) == 0);
    }
    pygenmod::cpu::set_isa_cap(-1);
  }
}

int main() {
  std::mt19937 gen(7);
  for (int cap : {pygenmod::cpu::ISA_AVX512, pygenmod::cpu::ISA_AVX2, pygenmod::cpu::ISA_BASE}) {
    pygenmod::cpu::set_isa_cap(cap);  // every entry point (a cap above the CPU's level is ignored)
    run_all<float>(gen);
    run_all<double>(gen);
  }
  pygenmod::cpu::set_isa_cap(-1);
  same_bits_every_isa<float>();
  same_bits_every_isa<double>();
  return check::finish("test_gumbel");
}
