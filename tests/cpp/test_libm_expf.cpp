// libm_expf.hpp gives the C library's expf bits at every ISA level: every float in [-104, 0] (the softmaxes'
// inputs, to past the underflow limit), every 7th other float, and the specials, in blocks of odd sizes (tails). Where
// the vector path is off (the scalar level, another C library or CPU) the fallback is ::expf itself: a spread only.
// `test_libm_expf [cap]` checks one level (ctest runs the three in parallel); no argument: every level.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "check.hpp"
#include "pygenmod/libm_expf.hpp"

namespace libm = pygenmod::libm;

void check_every_path_level(int cap) {
  pygenmod::cpu::set_isa_cap(cap);  // the AVX-512 (8 lanes), AVX2 (4 lanes) and scalar paths
  std::printf("ISA cap %d: vector path %s\n", cap, libm::expf_vectorized() ? "on" : "off");
  constexpr std::uint64_t kBlock = 1 << 16;
  std::vector<float> x(kBlock), got(kBlock);
  std::uint64_t bad = 0;
  auto run = [&](std::uint64_t first, std::uint64_t last, std::uint64_t step) {
    for (std::uint64_t b = first; b < last; b += kBlock * step) {
      std::size_t n = 0;
      for (std::uint64_t u = b; u < last && n < kBlock; u += step, ++n) {
        const std::uint32_t bits = static_cast<std::uint32_t>(u);
        std::memcpy(&x[n], &bits, 4);
      }
      got.assign(x.begin(), x.begin() + n);
      const std::size_t n1 = n > 3 ? n - 3 : n;  // two calls: a scalar tail in each
      libm::expf_inplace(got.data(), static_cast<pygenmod::index_t>(n1));
      libm::expf_inplace(got.data() + n1, static_cast<pygenmod::index_t>(n - n1));
      for (std::size_t i = 0; i < n; ++i) {
        const float want = ::expf(x[i]);
        if (std::memcmp(&got[i], &want, 4) != 0 && !(std::isnan(got[i]) && std::isnan(want))) {
          if (bad++ < 5) std::printf("x = %a: got %a, expf %a\n", x[i], got[i], want);
        }
      }
    }
  };
  const std::uint64_t dense = libm::expf_vectorized() ? 1 : 101;
  run(0x80000000ull, 0xc2d00000ull, dense);  // every float in [-104, -0]: the main path and its edge
  run(0xc2d00000ull, 0x100000000ull, 7);     // below -104 (underflow), -inf and NaNs: a spread
  run(0, 0x80000000ull, 7);                  // and of the positives
  CHECK(bad == 0);
}

int main(int argc, char** argv) {
  if (argc > 1) {
    check_every_path_level(std::atoi(argv[1]));
  } else {
    for (int cap : {pygenmod::cpu::ISA_AVX512, pygenmod::cpu::ISA_AVX2, pygenmod::cpu::ISA_BASE})
      check_every_path_level(cap);
  }
  pygenmod::cpu::set_isa_cap(-1);
  return check::finish("test_libm_expf");
}
