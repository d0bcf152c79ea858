// Spatial softmax moments with known answers: a constant map has the uniform distribution over
// the grid (mean = the grid's centre, variances (n^2 - 1) / 12 * step^2, no covariance); a map
// with one dominant pixel puts the keypoint on it; two equal hot pixels give their midpoint and
// a variance of (distance / 2)^2 along the line joining them. NCHW and NHWC, float and double,
// every instruction-set clone.
#include <cstdint>
#include <vector>

#include "check.hpp"
#include "pygenmod/cpu_features.hpp"
#include "pygenmod/spatial.hpp"

namespace sp = pygenmod::spatial;

template <class T>
void moments(bool channels_last) {
  const int B = 2, C = 3, H = 5, W = 7;
  const sp::Grid g{-1.0, 2.0 / (W - 1), -1.0, 2.0 / (H - 1)};  // [-1, 1] x [-1, 1]
  std::vector<T> x(B * C * H * W, T(0));
  auto at = [&](int b, int c, int i, int j) -> T& {
    return channels_last ? x[((b * H + i) * W + j) * C + c] : x[((b * C + c) * H + i) * W + j];
  };
  for (int b = 0; b < B; ++b) {
    at(b, 1, 3, 2) = T(60);                   // channel 1: one hot pixel at row 3, col 2
    at(b, 2, 1, 1) = at(b, 2, 1, 5) = T(60);  // channel 2: two hot pixels, same row
  }
  std::vector<T> inv(C, T(1)), kp(B * C * 2), cov(B * C * 4), stats(B * C * 2);
  sp::detail::FwdArgs<T> a{};
  a.x = x.data();
  a.inv = inv.data();
  a.B = B, a.C = C, a.H = H, a.W = W;
  a.g = g;
  a.kp = kp.data(), a.cov = cov.data(), a.maps = nullptr, a.stats = stats.data();
  sp::forward_cpu(a, channels_last);
  const double tol = sizeof(T) == 8 ? 1e-12 : 2e-6;
  const double dx = g.dx, dy = g.dy;
  for (int b = 0; b < B; ++b) {
    const T* k0 = kp.data() + (b * C) * 2;
    const T* s0 = cov.data() + (b * C) * 4;
    CHECK_NEAR(double(k0[0]), 0.0, tol);
    CHECK_NEAR(double(k0[1]), 0.0, tol);
    CHECK_NEAR(double(s0[0]), (W * W - 1) / 12.0 * dx * dx, tol);
    CHECK_NEAR(double(s0[3]), (H * H - 1) / 12.0 * dy * dy, tol);
    CHECK_NEAR(double(s0[1]), 0.0, tol);
    CHECK_NEAR(double(s0[2]), 0.0, tol);
    const T* k1 = kp.data() + (b * C + 1) * 2;
    CHECK_NEAR(double(k1[0]), -1.0 + 2 * dx, 1e-6);
    CHECK_NEAR(double(k1[1]), -1.0 + 3 * dy, 1e-6);
    const T* k2 = kp.data() + (b * C + 2) * 2;
    const T* s2 = cov.data() + (b * C + 2) * 4;
    CHECK_NEAR(double(k2[0]), -1.0 + 3 * dx, 1e-6);
    CHECK_NEAR(double(k2[1]), -1.0 + 1 * dy, 1e-6);
    CHECK_NEAR(double(s2[0]), (2 * dx) * (2 * dx), 1e-5);
    CHECK_NEAR(double(s2[3]), 0.0, 1e-5);
  }
}

int main() {
  const int detected = pygenmod::cpu::detected_isa();
  for (int cap = 0; cap <= detected; ++cap) {
    pygenmod::cpu::set_isa_cap(cap);
    for (bool cl : {false, true}) {
      moments<double>(cl);
      moments<float>(cl);
    }
  }
  pygenmod::cpu::set_isa_cap(-1);
  return check::finish("test_spatial");
}
