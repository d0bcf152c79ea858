// A consumer of the header-only target: GAE over 4 steps of 2 environments.
#include <cstdio>
#include <vector>

#include "pygenmod/returns.hpp"

int main() {
  const int T = 4, B = 2;
  std::vector<double> r(T * B, 1.0), v(T * B, 0.0), adv(T * B), ret(T * B), gamma(B, 0.5), lam(B, 1.0);
  std::uint8_t bad = 0;
  pygenmod::returns::gae_cpu<double, std::uint8_t>(r.data(), v.data(), nullptr, nullptr, nullptr, nullptr, nullptr,
                                                   gamma.data(), lam.data(), T, B, adv.data(), ret.data(), &bad);
  // lam = 1, V = 0: A_0 = 1 + 1/2 + 1/4 + 1/8
  const bool ok = bad == 0 && adv[0] == 1.875 && adv[1] == 1.875;
  std::printf("consumer: A_0 = %g (%s)\n", adv[0], ok ? "ok" : "WRONG");
  return ok ? 0 : 1;
}
