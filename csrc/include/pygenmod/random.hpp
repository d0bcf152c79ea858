// Counter-based random numbers: Philox-4x32-10 (Salmon et al., SC'11, Random123).
// A draw is a pure function of (seed, stream, counter), so a sample does not depend on the
// batch it sits in, the backend, or the thread count.
//
// Convention used by every sampler in pygenmod:
//   key     = (seed & 0xffffffff, seed >> 32)
//   counter = (block & 0xffffffff, block >> 32, stream & 0xffffffff, stream >> 32)
// where `stream` identifies an independent sequence (e.g. base stream + batch row) and
// `block` indexes 4-word blocks along it. Word k of block n is element 4n + k of the stream.
#pragma once

#include <cstdint>

#include "pygenmod/common.hpp"

namespace pygenmod::rng {

struct u32x4 {
  std::uint32_t v[4];
};

PGM_HD void mulhilo32(std::uint32_t a, std::uint32_t b, std::uint32_t* hi, std::uint32_t* lo) {
  const std::uint64_t p = static_cast<std::uint64_t>(a) * b;
  *hi = static_cast<std::uint32_t>(p >> 32);
  *lo = static_cast<std::uint32_t>(p);
}

// Philox-4x32 with 10 rounds on counter c and key (k0, k1).
PGM_HD u32x4 philox4x32_10(u32x4 c, std::uint32_t k0, std::uint32_t k1) {
  constexpr std::uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
  constexpr std::uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  for (int r = 0; r < 10; ++r) {
    if (r > 0) { k0 += W0; k1 += W1; }
    std::uint32_t hi0, lo0, hi1, lo1;
    mulhilo32(M0, c.v[0], &hi0, &lo0);
    mulhilo32(M1, c.v[2], &hi1, &lo1);
    c = u32x4{{hi1 ^ c.v[1] ^ k0, lo1, hi0 ^ c.v[3] ^ k1, lo0}};
  }
  return c;
}

// The 4 words of block `block` of stream `stream` under `seed` (the pygenmod convention).
PGM_HD u32x4 block(std::uint64_t seed, std::uint64_t stream, std::uint64_t block) {
  u32x4 c{{static_cast<std::uint32_t>(block), static_cast<std::uint32_t>(block >> 32),
           static_cast<std::uint32_t>(stream), static_cast<std::uint32_t>(stream >> 32)}};
  return philox4x32_10(c, static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32));
}

// Uniform in the open interval (0, 1) from 53 bits of two words (exact in float64).
PGM_HD double uniform_f64(std::uint32_t hi, std::uint32_t lo) {
  const std::uint64_t bits = ((static_cast<std::uint64_t>(hi) << 32) | lo) >> 11;
  return (static_cast<double>(bits) + 0.5) * 0x1.0p-53;
}

// Uniform in the open interval (0, 1) from 24 bits of one word (exact in float32).
PGM_HD float uniform_f32(std::uint32_t w) {
  return (static_cast<float>(w >> 8) + 0.5f) * 0x1.0p-24f;
}

}  // namespace pygenmod::rng
