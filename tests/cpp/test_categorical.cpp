// Categorical rows with known answers: uniform logits have entropy log K and log-probabilities
// -log K; KL(p || p) = 0; a masked action has log-probability -inf and no gradient; KL is +inf
// where p puts mass on an action q masks; an all-masked row reports its status. float and double.
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "check.hpp"
#include "pygenmod/categorical.hpp"

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

int main() {
  known_answers<double>(1e-12);
  known_answers<float>(1e-5);
  return check::finish("categorical");
}
