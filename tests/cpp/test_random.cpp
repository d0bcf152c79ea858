// Philox-4x32-10 against Random123's published known-answer vectors (kat_vectors), and the
// package's stream convention: block(seed, stream, n) = philox(counter (n lo, n hi, stream lo,
// stream hi), key (seed lo, seed hi)); the SIMD word generator of the samplers agrees with it
// on every instruction-set path.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "check.hpp"
#include "pygenmod/cpu_features.hpp"
#include "pygenmod/random.hpp"
#include "pygenmod/sampling.hpp"

namespace rng = pygenmod::rng;

// Distance in units in the last place between two finite non-negative doubles.
static std::uint64_t ulps(double a, double b) {
  const std::uint64_t ia = rng::f64_bits(a), ib = rng::f64_bits(b);
  return ia > ib ? ia - ib : ib - ia;
}

// exp_f64 against libm's exp over float64's whole range (the subnormal results, the overflow
// threshold, 0 and inf at the ends, NaN), and against vecmath's vector exp_mid_f64, whose
// core it shares, bit for bit where the result is normal.
static void check_exp_f64() {
  std::uint64_t worst = 0;
  for (int i = 0; i <= 2000000; ++i) {
    const double x = -746.0 + 1456.0 * i / 2000000.0;
    const double got = rng::exp_f64(x), want = std::exp(x);
    if (std::isinf(want) || want == 0.0) {
      CHECK(got == want);
    } else {
      const std::uint64_t u = ulps(got, want);
      worst = u > worst ? u : worst;
    }
  }
  CHECK(worst <= 1);
  for (double x : {0.0, -0.0, 5e-324, -5e-324, 1.0, -1.0, -708.3964185322641})
    CHECK(ulps(rng::exp_f64(x), std::exp(x)) <= 1);
  // the ends, exactly: the largest finite result and inf, the smallest subnormal and 0
  for (double x : {709.782712893384, 709.7827128933841, -745.1332191019411, -745.1332191019412})
    CHECK(rng::exp_f64(x) == std::exp(x));
  CHECK(rng::exp_f64(-std::numeric_limits<double>::infinity()) == 0.0);
  CHECK(rng::exp_f64(std::numeric_limits<double>::infinity()) == std::numeric_limits<double>::infinity());
  CHECK(std::isnan(rng::exp_f64(std::numeric_limits<double>::quiet_NaN())));
  using V = pygenmod::vm::vec<double, 16>::type;
  for (int i = 0; i <= 20000; ++i) {
    const double x = -708.0 + 1416.0 * i / 20000.0;  // exp_mid_f64's range, |x| <= 708
    const V v = pygenmod::vm::exp_mid_f64(V{x, -x * 0.5});
    CHECK(rng::exp_f64(x) == v[0]);
    CHECK(rng::exp_f64(-x * 0.5) == v[1]);
  }
}

template <class T>
void check_fill_equals_elements(std::uint64_t seed, std::uint64_t stream) {
  for (int dist : {rng::UNIFORM, rng::NORMAL, rng::GUMBEL})
    for (std::uint64_t start : {0, 1, 3, 250, 1000}) {
      for (pygenmod::index_t n : {1, 2, 7, 129, 300, 1031}) {
        std::vector<T> got(n);
        pygenmod::sampling::fill_range<T>(dist, seed, stream, start, n, got.data());
        for (pygenmod::index_t i = 0; i < n; ++i) {
          const T want = rng::elem<T>::at(dist, seed, stream, start + i);
          CHECK(std::memcmp(&got[i], &want, sizeof(T)) == 0);
        }
      }
    }
}

int main() {
  struct Kat {
    std::uint32_t ctr[4], key[2], want[4];
  };
  const Kat kats[] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}},
      {{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
       {0xffffffffu, 0xffffffffu},
       {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}},
      {{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
       {0xa4093822u, 0x299f31d0u},
       {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}},
  };
  for (const Kat& k : kats) {
    const rng::u32x4 got = rng::philox4x32_10(rng::u32x4{{k.ctr[0], k.ctr[1], k.ctr[2], k.ctr[3]}}, k.key[0], k.key[1]);
    for (int i = 0; i < 4; ++i) CHECK(got.v[i] == k.want[i]);
    // the same through the stream convention
    const std::uint64_t seed = k.key[0] | (std::uint64_t(k.key[1]) << 32);
    const std::uint64_t stream = k.ctr[2] | (std::uint64_t(k.ctr[3]) << 32);
    const std::uint64_t blk = k.ctr[0] | (std::uint64_t(k.ctr[1]) << 32);
    const rng::u32x4 b = rng::block(seed, stream, blk);
    for (int i = 0; i < 4; ++i) CHECK(b.v[i] == k.want[i]);
  }
  // the uniforms stay in the open interval (0, 1) at both ends: the top value (2^b - 1/2) 2^-b
  // rounds to exactly 1 and is capped at the largest value below 1; the rest is unchanged
  CHECK(rng::uniform_f64(0, 0) > 0.0);
  CHECK(rng::uniform_f64(0xffffffffu, 0xffffffffu) < 1.0);
  CHECK(rng::uniform_f64_v(0xffffffffu, 0xffffffffu) < 1.0);
  CHECK(rng::uniform_f64(0xffffffffu, 0xfffff7ffu) == (double((1ull << 53) - 2) + 0.5) * 0x1.0p-53);
  CHECK(rng::uniform_f32(0u) > 0.0f);
  CHECK(rng::uniform_f32(0xffffffffu) < 1.0f);
  CHECK(rng::uniform_f32(0xfffffeffu) == (float((1u << 24) - 2) + 0.5f) * 0x1.0p-24f);
  CHECK(rng::gumbel_f32(0xffffffffu) < 1e30f);  // was +inf

  // the samplers' bulk generator (SIMD where the CPU has it) against the scalar definition
  const int detected = pygenmod::cpu::detected_isa();
  const std::uint64_t seed = 0x0123456789abcdefull, stream = 77;
  for (int cap = 0; cap <= detected; ++cap) {
    pygenmod::cpu::set_isa_cap(cap);
    for (std::uint64_t b0 : {std::uint64_t(0), std::uint64_t(0xfffffff0u)}) {  // and across a 2^32 carry
      const int nb = 37;
      std::vector<std::uint32_t> w(4 * nb);
      pygenmod::sampling::philox_words(seed, stream, b0, nb, w.data());
      for (int j = 0; j < nb; ++j) {
        const rng::u32x4 ref = rng::block(seed, stream, b0 + j);
        for (int i = 0; i < 4; ++i) CHECK(w[4 * j + i] == ref.v[i]);
      }
    }
  }
  pygenmod::cpu::set_isa_cap(-1);

  // the bulk transforms (vector clones, float64 with explicit FMAs) give the bits of the
  // scalar element-at-a-time definition (compiled for baseline x86-64: libm's fma), for every
  // distribution, start and length (a chunk's vector body and its remainder alike)
  check_fill_equals_elements<float>(seed, stream);
  check_fill_equals_elements<double>(seed, stream);
  check_exp_f64();
  return check::finish("test_random");
}
