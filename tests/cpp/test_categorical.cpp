// Categorical rows with known answers: uniform logits have entropy log K and log-probabilities
// -log K; KL(p || p) = 0; a masked action has log-probability -inf and no gradient; KL is +inf
// where p puts mass on an action q masks; an all-masked row reports its status. float and double.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <type_traits>
#include <vector>

#include "check.hpp"
#include "pygenmod/categorical.hpp"
#include "pygenmod/cpu_features.hpp"

namespace cat = pygenmod::categorical;

template <class T>
void known_answers(double tol) {
  const int B = 2, K = 5;
  std::vector<T> x(B * K, T(3)), out(B), dx(B * K), g(B, T(1));
  std::vector<std::int32_t> st(B, -1);
  std::vector<std::int64_t> a{0, 4};
  std::vector<std::uint8_t> m{1, 1, 1, 1, 1, 1, 0, 1, 0, 1};  // row 1: actions 1 and 3 masked

  cat::entropy_cpu<T>(x.data(), m.data(), B, B, K, out.data(), st.data());
  CHECK(st[0] == cat::OK && st[1] == cat::OK);
  CHECK_NEAR(out[0], std::log(5.0), tol);
  CHECK_NEAR(out[1], std::log(3.0), tol);

  cat::log_prob_cpu<T>(x.data(), m.data(), B, a.data(), B, K, out.data(), st.data());
  CHECK_NEAR(out[0], -std::log(5.0), tol);
  CHECK_NEAR(out[1], -std::log(3.0), tol);

  cat::log_prob_backward_cpu<T>(x.data(), m.data(), B, a.data(), B, K, g.data(), dx.data());
  CHECK_NEAR(dx[0], 1.0 - 1.0 / 5, tol);
  CHECK_NEAR(dx[K + 4], 1.0 - 1.0 / 3, tol);
  CHECK(dx[K + 1] == T(0) && dx[K + 3] == T(0));

  cat::kl_cpu<T>(x.data(), x.data(), m.data(), B, m.data(), B, false, B, K, out.data(), st.data());
  CHECK_NEAR(out[0], 0.0, tol);
  CHECK_NEAR(out[1], 0.0, tol);

  // p allows everything, q masks row 1's actions 1 and 3: +inf there, NaN gradients
  cat::kl_cpu<T>(x.data(), x.data(), nullptr, 0, m.data(), B, false, B, K, out.data(), st.data());
  CHECK_NEAR(out[0], 0.0, tol);
  CHECK(out[1] == std::numeric_limits<T>::infinity());
  std::vector<T> dp(B * K), dq(B * K);
  cat::kl_backward_cpu<T>(x.data(), x.data(), nullptr, 0, m.data(), B, false, B, K, g.data(), dp.data(), dq.data());
  CHECK(std::isnan(dq[K]) && std::isnan(dp[K]) && dq[0] == T(0));

  // weights (already normalised) against uniform logits: KL = log K - H(w)
  std::vector<T> w{T(0.5), T(0.5), T(0), T(0), T(0), T(0.2), T(0), T(0), T(0.3), T(0.5)};
  cat::kl_cpu<T>(w.data(), x.data(), nullptr, 0, m.data(), B, true, B, K, out.data(), st.data());
  CHECK_NEAR(out[0], std::log(5.0) - std::log(2.0), tol);
  CHECK(st[1] == cat::OK && out[1] == std::numeric_limits<T>::infinity());  // weight 0.3 on masked action 3

  // an all-masked row and a non-finite allowed logit are reported, not computed
  std::vector<std::uint8_t> none(K, 0);
  cat::entropy_cpu<T>(x.data(), none.data(), 1, B, K, out.data(), st.data());
  CHECK(st[0] == cat::P_ALL_MASKED && st[1] == cat::P_ALL_MASKED);
  x[2] = std::numeric_limits<T>::quiet_NaN();
  cat::entropy_cpu<T>(x.data(), nullptr, 0, B, K, out.data(), st.data());
  CHECK(st[0] == cat::P_NONFINITE && st[1] == cat::OK);
  cat::log_prob_cpu<T>(x.data(), nullptr, 0, a.data(), B, 4, out.data(), st.data());  // K = 4: action 4 is out
  CHECK(st[1] == cat::BAD_ACTION);
}

// Masked rows (one random mask, NaN and inf at its masked entries) through the vector rows
// against the serial rows: values and gradients within tol, gradients exactly +0 where masked;
// a NaN at a masked entry is not read, one at an allowed entry is reported; all masked too.
template <class T>
void masked_rows(std::mt19937& gen, std::vector<T> p, std::vector<T> q, double tol) {
  const pygenmod::index_t K = static_cast<pygenmod::index_t>(p.size());
  const T nan = std::numeric_limits<T>::quiet_NaN(), inf = std::numeric_limits<T>::infinity();
  std::vector<std::uint8_t> m(K);
  for (auto& v : m) v = std::uniform_int_distribution<int>(0, 2)(gen) != 0 ? 3 : 0;  // nonzero = allowed
  const std::int64_t a = K / 2;
  m[a] = 1;
  for (pygenmod::index_t j = 0; j < K; ++j)
    if (!m[j]) p[j] = nan, q[j] = j % 2 ? inf : -inf;
  T v1 = 0, v2 = 0;
  CHECK(cat::entropy_row<T>(p.data(), m.data(), K, &v1) == cat::OK);
  CHECK(cat::entropy_row_cpu<T>(p.data(), m.data(), K, &v2) == cat::OK);
  CHECK_NEAR(double(v2), double(v1), tol * (1 + std::log(double(K))));
  CHECK(cat::kl_row<T>(p.data(), q.data(), m.data(), m.data(), K, false, &v1) == cat::OK);
  CHECK(cat::kl_row_cpu<T>(p.data(), q.data(), m.data(), m.data(), K, false, &v2) == cat::OK);
  CHECK_NEAR(double(v2), double(v1), tol * (1 + std::fabs(double(v1))));
  CHECK(cat::log_prob_row<T>(p.data(), m.data(), K, a, &v1) == cat::OK);
  CHECK(cat::log_prob_row_cpu<T>(p.data(), m.data(), K, a, &v2) == cat::OK);
  CHECK_NEAR(double(v2), double(v1), tol * (1 + std::fabs(double(v1))));
  std::vector<T> d1(K), d2(K), e1(K), e2(K);
  const auto same_grads = [&](const std::vector<T>& x, const std::vector<T>& y) {
    for (pygenmod::index_t j = 0; j < K; ++j) {
      CHECK_NEAR(double(y[j]), double(x[j]), tol);
      if (!m[j]) CHECK(y[j] == T(0) && !std::signbit(y[j]));
    }
  };
  cat::entropy_row_backward<T>(p.data(), m.data(), K, T(0.7), d1.data());
  cat::entropy_row_backward_cpu<T>(p.data(), m.data(), K, T(0.7), d2.data());
  same_grads(d1, d2);
  cat::log_prob_row_backward<T>(p.data(), m.data(), K, a, T(-1.3), d1.data());
  cat::log_prob_row_backward_cpu<T>(p.data(), m.data(), K, a, T(-1.3), d2.data());
  same_grads(d1, d2);
  cat::kl_row_backward<T>(p.data(), q.data(), m.data(), m.data(), K, false, T(0.9), d1.data(), e1.data());
  cat::kl_row_backward_cpu<T>(p.data(), q.data(), m.data(), m.data(), K, false, T(0.9), d2.data(), e2.data());
  same_grads(d1, d2);
  same_grads(e1, e2);
  p[a] = nan;  // an allowed entry: reported
  CHECK(cat::entropy_row_cpu<T>(p.data(), m.data(), K, &v2) == cat::P_NONFINITE);
  std::fill(m.begin(), m.end(), std::uint8_t(0));
  CHECK(cat::entropy_row_cpu<T>(p.data(), m.data(), K, &v2) == cat::P_ALL_MASKED);
  CHECK(cat::kl_row_cpu<T>(p.data(), q.data(), m.data(), m.data(), K, false, &v2) == cat::P_ALL_MASKED);
}

// The vector rows of unmasked logits (categorical_rows.hpp) against the serial rows, at every
// ISA level: values within rounding, the same status (non-finite p or q, in the tail too);
// float64 rows whose logits span more than 600 (the serial rows' libm exp); the same bits on
// every ISA.
template <class T>
void vector_rows(double rtol) {
  std::mt19937 gen(3);
  std::normal_distribution<double> nd;
  const T nan = std::numeric_limits<T>::quiet_NaN(), inf = std::numeric_limits<T>::infinity();
  for (int cap : {pygenmod::cpu::ISA_BASE, pygenmod::cpu::ISA_AVX2, pygenmod::cpu::ISA_AVX512}) {
    pygenmod::cpu::set_isa_cap(cap);
    for (pygenmod::index_t K : {1, 2, 7, 8, 15, 16, 17, 31, 100, 1000, 1031})
      for (double scale : {0.1, 3.0, 30.0}) {
        std::vector<T> p(K), q(K);
        for (auto& v : p) v = T(scale * nd(gen));
        for (auto& v : q) v = T(scale * nd(gen));
        T h1 = 0, h2 = 0, k1 = 0, k2 = 0;
        CHECK(cat::entropy_row<T>(p.data(), nullptr, K, &h1) == cat::OK);
        CHECK(cat::entropy_row_cpu<T>(p.data(), nullptr, K, &h2) == cat::OK);
        CHECK_NEAR(double(h2), double(h1), rtol * (1 + std::log(double(K))));
        CHECK(cat::kl_row<T>(p.data(), q.data(), nullptr, nullptr, K, false, &k1) == cat::OK);
        CHECK(cat::kl_row_cpu<T>(p.data(), q.data(), nullptr, nullptr, K, false, &k2) == cat::OK);
        CHECK_NEAR(double(k2), double(k1), rtol * (1 + std::fabs(double(k1)) + scale));
        for (T bad : {nan, inf, -inf}) {
          std::vector<T> pb = p, qb = q;
          pb[K - 1] = bad;
          qb[K / 2] = bad;
          CHECK(cat::entropy_row_cpu<T>(pb.data(), nullptr, K, &h2) == cat::P_NONFINITE);
          CHECK(cat::kl_row_cpu<T>(pb.data(), q.data(), nullptr, nullptr, K, false, &k2) == cat::P_NONFINITE);
          CHECK(cat::kl_row_cpu<T>(p.data(), qb.data(), nullptr, nullptr, K, false, &k2) == cat::Q_NONFINITE);
          CHECK(cat::kl_row_cpu<T>(pb.data(), qb.data(), nullptr, nullptr, K, false, &k2) == cat::P_NONFINITE);
        }
        masked_rows<T>(gen, p, q, rtol * (1 + scale));
      }
  }
  pygenmod::cpu::set_isa_cap(-1);
  if (std::is_same_v<T, double>) {  // a span above 600: one tiny probability still counts
    std::vector<T> p{T(0), T(-700)};
    T h1 = 0, h2 = 0;
    cat::entropy_row<T>(p.data(), nullptr, 2, &h1);
    cat::entropy_row_cpu<T>(p.data(), nullptr, 2, &h2);
    CHECK(h1 == h2 && h1 > T(0));
  }
  std::vector<T> p(77), q(77);
  for (auto& v : p) v = T(nd(gen));
  for (auto& v : q) v = T(nd(gen));
  T first[2];
  for (int cap : {pygenmod::cpu::ISA_BASE, pygenmod::cpu::ISA_AVX2, pygenmod::cpu::ISA_AVX512}) {
    pygenmod::cpu::set_isa_cap(cap);
    T got[2];
    cat::entropy_row_cpu<T>(p.data(), nullptr, 77, &got[0]);
    cat::kl_row_cpu<T>(p.data(), q.data(), nullptr, nullptr, 77, false, &got[1]);
    if (cap == pygenmod::cpu::ISA_BASE) std::memcpy(first, got, sizeof got);
    CHECK(std::memcmp(first, got, sizeof got) == 0);
  }
  pygenmod::cpu::set_isa_cap(-1);
}

int main() {
  known_answers<double>(1e-12);
  known_answers<float>(1e-5);
  vector_rows<double>(1e-13);
  vector_rows<float>(2e-5);
  return check::finish("categorical");
}
