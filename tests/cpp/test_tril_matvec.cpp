// The CPU's lower-triangular mat-vec (tril_matvec.hpp) at every ISA level against the serial
// dot8 rows (without -march=native: the suite's default flags): the same bits for every D around the 8-lane chunks and
// the 4-row blocks; the flags of the sample-only draw: a non-positive diagonal, an entry above the diagonal that is not
// zero (NaN counts, -0 does not; entries past column D of the last chunk belong to the next row and must not count),
// and non-finite entries of the lower triangle (NaN or inf; not those above it, and not a non-finite e).
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
struct Case {
  index_t D;
  std::vector<T> L, m, e;
};

template <class T>
Case<T> make(std::mt19937& gen, index_t D) {
  std::normal_distribution<double> nd;
  Case<T> c{D, std::vector<T>(D * D), std::vector<T>(D), std::vector<T>(D)};
  for (index_t i = 0; i < D; ++i) {
    for (index_t j = 0; j <= i; ++j) c.L[i * D + j] = T(nd(gen));
    c.L[i * D + i] = T(std::fabs(nd(gen)) + 0.1);
    c.m[i] = T(nd(gen));
    c.e[i] = T(nd(gen));
  }
  return c;
}

template <class T>
std::vector<T> serial(const Case<T>& c) {
  std::vector<T> z(c.D);
  for (index_t i = 0; i < c.D; ++i) z[i] = c.m[i] + S::dot8<T>(c.L.data() + i * c.D, c.e.data(), i + 1);
  return z;
}

template <class T>
void flags(const Case<T>& c, bool want_diag, bool want_upper, bool want_nonfinite) {
  std::vector<T> z(c.D);
  int diag = -1, upper = -1;
  const T chk = S::tril_matvec_fused<T>(c.L.data(), c.m.data(), c.e.data(), c.D, z.data(), &diag, &upper);
  CHECK(bool(diag) == want_diag);
  CHECK(bool(upper) == want_upper);
  CHECK((chk != T(0)) == want_nonfinite);
  int diag2 = -1;
  S::tril_matvec_fused<T>(c.L.data(), c.m.data(), c.e.data(), c.D, z.data(), &diag2, nullptr);  // no upper check
  CHECK(diag2 == diag);
}

template <class T>
void run(std::mt19937& gen, index_t D) {
  const T nan = std::numeric_limits<T>::quiet_NaN(), inf = std::numeric_limits<T>::infinity();
  Case<T> c = make<T>(gen, D);
  const std::vector<T> want = serial(c);
  std::vector<T> z(D);
  int diag = -1, upper = -1;
  const T chk = S::tril_matvec_fused<T>(c.L.data(), c.m.data(), c.e.data(), D, z.data(), &diag, &upper);
  CHECK(std::memcmp(z.data(), want.data(), sizeof(T) * D) == 0);
  CHECK(diag == 0 && upper == 0 && chk == T(0));
  flags(c, false, false, false);

  // Garbage above the diagonal: never used (the same z), flagged when checked.
  Case<T> g = c;
  for (index_t i = 0; i < D; ++i)
    for (index_t j = i + 1; j < D; ++j) g.L[i * D + j] = (i + j) % 3 == 0 ? nan : T(1e30);
  S::tril_matvec_fused<T>(g.L.data(), g.m.data(), g.e.data(), D, z.data(), &diag, &upper);
  CHECK(std::memcmp(z.data(), want.data(), sizeof(T) * D) == 0);
  flags(g, false, D > 1, false);
  // -0 above the diagonal is zero.
  for (index_t i = 0; i < D; ++i)
    for (index_t j = i + 1; j < D; ++j) g.L[i * D + j] = -T(0);
  flags(g, false, false, false);
  if (D > 1) {  // one entry above the diagonal: the last row's neighbour, then the top right corner
    g.L[(D - 2) * D + D - 1] = nan;
    flags(g, false, true, false);
    g.L[(D - 2) * D + D - 1] = 0;
    g.L[D - 1] = std::numeric_limits<T>::denorm_min();
    flags(g, false, true, false);
  }

  // Non-finite entries of the lower triangle, a bad diagonal, a non-finite e.
  for (T bad : {nan, inf, -inf}) {
    Case<T> b = c;
    b.L[(D - 1) * D + (D - 1) / 2] = bad;  // (the diagonal when D = 1)
    flags(b, D == 1 && !(bad > T(0)), false, true);
  }
  Case<T> d = c;
  d.L[(D / 2) * D + D / 2] = T(0);
  flags(d, true, false, false);
  d.L[(D / 2) * D + D / 2] = -T(1);
  flags(d, true, false, false);
  Case<T> ne = c;
  ne.e[D - 1] = nan;
  flags(ne, false, false, false);
}

int main() {
  std::mt19937 gen(7);
  const index_t sizes[] = {1, 2, 3, 4, 5, 7, 8, 9, 11, 12, 15, 16, 17, 23, 31, 32, 33, 63, 64, 65, 100, 128};
  for (int cap : {pygenmod::cpu::ISA_BASE, pygenmod::cpu::ISA_AVX2, pygenmod::cpu::ISA_AVX512}) {
    pygenmod::cpu::set_isa_cap(cap);  // every entry point (a cap above the CPU's level is ignored)
    for (index_t D : sizes) {
      run<double>(gen, D);
      run<float>(gen, D);
    }
  }
  pygenmod::cpu::set_isa_cap(-1);
  return check::finish("tril_matvec");
}
