// The CPU's vector rows of kl_normal and normal_log_prob (normal_rows.hpp) against the serial
// rows (the device's), at every ISA level: sums within their rounding bound for log-variance
// and log-std scales, with and without a prior, clamped scales, rows of every length around the
// lanes; the same status (non-finite inputs), the serial row for scales beyond float64's vector
// exp range; the same bits on every ISA.
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "check.hpp"
#include "pygenmod/cpu_features.hpp"
#include "pygenmod/sampling.hpp"

namespace S = pygenmod::sampling;
using pygenmod::index_t;

template <class T>
struct Row {
  std::vector<T> x, m, p, pm, pp;
};

template <class T>
Row<T> make(std::mt19937& gen, index_t D, double spread) {
  std::normal_distribution<double> nd;
  Row<T> r;
  for (auto* v : {&r.x, &r.m, &r.p, &r.pm, &r.pp}) v->resize(D);
  for (index_t d = 0; d < D; ++d) {
    r.x[d] = T(nd(gen));
    r.m[d] = T(nd(gen));
    r.pm[d] = T(nd(gen));
    r.p[d] = T(spread * nd(gen));
    r.pp[d] = T(spread * nd(gen));
  }
  return r;
}

// |sum of terms| bound: each term within a few ulp, plus the sum's rounding.
template <class T>
double tol(const std::vector<double>& terms) {
  double a = 0;
  for (double t : terms) a += std::fabs(t);
  return a * std::numeric_limits<T>::epsilon() * (8 + 0.1 * double(terms.size())) + 1e-300;
}

template <class T>
void agree(std::mt19937& gen, index_t D, int kind, bool prior, T lo, T hi, double spread) {
  const Row<T> r = make<T>(gen, D, spread);
  const T* pm = prior ? r.pm.data() : nullptr;
  const T* pp = prior ? r.pp.data() : nullptr;
  T c1 = -1, c2 = -1;
  const T k1 = S::kl_normal_row<T>(r.m.data(), r.p.data(), pm, pp, kind, lo, hi, D, &c1);
  const T k2 = S::kl_normal_row_cpu<T>(r.m.data(), r.p.data(), pm, pp, kind, lo, hi, D, &c2);
  std::vector<double> terms(D);
  for (index_t d = 0; d < D; ++d) {  // in float64, for the tolerance
    const double h = kind == S::LOGVAR ? 0.5 : 1.0;
    auto cl = [&](double v) { return std::fmin(std::fmax(v, double(lo)), double(hi)); };
    const double qls = h * cl(r.p[d]), rls = prior ? h * cl(r.pp[d]) : 0.0;
    const double diff = double(r.m[d]) - (prior ? double(r.pm[d]) : 0.0);
    // the magnitudes of the term's parts (their rounding, not the KL's size, sets the tolerance)
    terms[d] = std::fabs(rls) + std::fabs(qls) + 0.5 * (std::exp(2 * qls) + diff * diff) * std::exp(-2 * rls) + 0.5;
  }
  CHECK_NEAR(double(k2), double(k1), tol<T>(terms));
  CHECK(c1 == T(0) && c2 == T(0));
  const T l1 = S::normal_log_prob_row<T>(r.x.data(), r.m.data(), r.p.data(), kind, lo, hi, D, &c1);
  const T l2 = S::normal_log_prob_row_cpu<T>(r.x.data(), r.m.data(), r.p.data(), kind, lo, hi, D, &c2);
  for (index_t d = 0; d < D; ++d) {
    const double h = kind == S::LOGVAR ? 0.5 : 1.0;
    const double ls = h * std::fmin(std::fmax(double(r.p[d]), double(lo)), double(hi));
    const double u = (double(r.x[d]) - double(r.m[d])) * std::exp(-ls);
    terms[d] = 0.5 * u * u + std::fabs(ls) + 1;
  }
  CHECK_NEAR(double(l2), double(l1), tol<T>(terms));
  CHECK(c1 == T(0) && c2 == T(0));
}

// A non-finite entry anywhere in the row (the tail included) flags it, as the serial row does.
template <class T>
void status(std::mt19937& gen, index_t D) {
  const T bads[] = {std::numeric_limits<T>::quiet_NaN(), std::numeric_limits<T>::infinity()};
  for (index_t at : {index_t(0), D / 2, D - 1})
    for (int which = 0; which < 3; ++which)
      for (T bad : bads) {
        Row<T> r = make<T>(gen, D, 0.5);
        (which == 0 ? r.m : which == 1 ? r.p : r.x)[at] = bad;
        T c1 = 0, c2 = 0;
        S::kl_normal_row<T>(r.m.data(), r.p.data(), nullptr, nullptr, S::LOGVAR, -T(INFINITY), T(INFINITY), D, &c1);
        S::kl_normal_row_cpu<T>(r.m.data(), r.p.data(), nullptr, nullptr, S::LOGVAR, -T(INFINITY), T(INFINITY), D, &c2);
        CHECK((c1 != T(0)) == (c2 != T(0)));
        S::normal_log_prob_row<T>(r.x.data(), r.m.data(), r.p.data(), S::LOG_STD, -T(INFINITY), T(INFINITY), D, &c1);
        S::normal_log_prob_row_cpu<T>(r.x.data(), r.m.data(), r.p.data(), S::LOG_STD, -T(INFINITY), T(INFINITY), D,
                                      &c2);
        CHECK((c1 != T(0)) == (c2 != T(0)));
      }
}

// float64 scales beyond the vector exp's range: the serial row's value, bit for bit.
void far_scales() {
  std::mt19937 gen(3);
  for (double big : {709.0, 800.0, -750.0}) {
    Row<double> r = make<double>(gen, 37, 0.5);
    r.p[20] = 2 * big;  // log-variance: log sigma = big
    double c1, c2;
    const double k1 =
        S::kl_normal_row<double>(r.m.data(), r.p.data(), nullptr, nullptr, S::LOGVAR, -INFINITY, INFINITY, 37, &c1);
    const double k2 =
        S::kl_normal_row_cpu<double>(r.m.data(), r.p.data(), nullptr, nullptr, S::LOGVAR, -INFINITY, INFINITY, 37, &c2);
    CHECK(std::memcmp(&k1, &k2, sizeof k1) == 0 && (c1 != 0) == (c2 != 0));
  }
}

template <class T>
void same_bits_every_isa() {
  std::mt19937 gen(11);
  for (index_t D : {1, 7, 16, 33, 1000}) {
    const Row<T> r = make<T>(gen, D, 1.0);
    T first[2] = {0, 0};
    for (int cap : {pygenmod::cpu::ISA_BASE, pygenmod::cpu::ISA_AVX2, pygenmod::cpu::ISA_AVX512}) {
      pygenmod::cpu::set_isa_cap(cap);
      T c, got[2];
      got[0] = S::kl_normal_row_cpu<T>(r.m.data(), r.p.data(), r.pm.data(), r.pp.data(), S::LOGVAR, T(-3), T(3), D, &c);
      got[1] = S::normal_log_prob_row_cpu<T>(r.x.data(), r.m.data(), r.p.data(), S::LOG_STD, -T(INFINITY), T(INFINITY),
                                             D, &c);
      if (cap == pygenmod::cpu::ISA_BASE) std::memcpy(first, got, sizeof got);
      CHECK(std::memcmp(first, got, sizeof got) == 0);
    }
    pygenmod::cpu::set_isa_cap(-1);
  }
}

int main() {
  std::mt19937 gen(5);
  for (int cap : {pygenmod::cpu::ISA_BASE, pygenmod::cpu::ISA_AVX2, pygenmod::cpu::ISA_AVX512}) {
    pygenmod::cpu::set_isa_cap(cap);  // every entry point (a cap above the CPU's level is ignored)
    for (index_t D : {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 1024, 1031})
      for (int kind : {int(S::LOGVAR), int(S::LOG_STD)})
        for (bool prior : {false, true}) {
          agree<double>(gen, D, kind, prior, -INFINITY, INFINITY, 1.0);
          agree<float>(gen, D, kind, prior, -INFINITY, INFINITY, 1.0);
          agree<double>(gen, D, kind, prior, -1.0, 2.0, 3.0);  // clamped scales
          agree<float>(gen, D, kind, prior, -1.0f, 2.0f, 3.0f);
        }
    for (index_t D : {1, 5, 16, 17, 40}) {
      status<double>(gen, D);
      status<float>(gen, D);
    }
  }
  pygenmod::cpu::set_isa_cap(-1);
  far_scales();
  same_bits_every_isa<double>();
  same_bits_every_isa<float>();
  return check::finish("normal_rows");
}
