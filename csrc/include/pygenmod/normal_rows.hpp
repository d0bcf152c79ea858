// The diagonal Gaussian's per-row sums on the CPU in vector passes: KL(N(m, q) || N(pm, pp))
// and log N(x; m, q) without its constant, for scales given as log-variance or log-std
// (sampling.hpp's kl_normal_row_cpu / normal_log_prob_row_cpu; its serial rows keep std scales
// and the rows of a range fallback, and run on the device and in the ELBO).
//
// Each entry is the serial row's expression, lane by lane; the sum runs over 64 bytes of
// partial sums (8 float64 / 16 float32 lanes, then the lanes in order) in every ISA's entry
// point, compiled without FMA contraction, so the bits are the same on every CPU. exp is
//   - float32: random.hpp's exp_f32 (vecmath's exp_clamped_f32): the serial row's exp, bit for
//     bit with the package's default flags;
//   - float64: vecmath's exp_mid_f64, the core of random.hpp's exp_f64 (the same bits where the
//     result is normal). A row with a scale argument beyond |708| (or NaN) is redone by the
//     serial row, whose exp_f64 covers the whole range.
// The serial float64 rows called libm exp per entry and summed serially: 2 x 1024 entries were
// slower than NumPy's vector exp and pairwise sum (0.63x for kl_normal).
#pragma once

#include <type_traits>

#include "pygenmod/common.hpp"
#include "pygenmod/cpu_features.hpp"
#include "pygenmod/vecmath.hpp"

namespace pygenmod::sampling {

namespace normal_cpu {

#define PGM_NROW_INLINE inline __attribute__((always_inline))

// sigma and log sigma of clamped log-variance (half) or log-std (one) scale parameters, as
// scale_of; far: lanes whose exp argument is beyond float64's vector range (or NaN).
template <class V, class VI, class T>
PGM_NROW_INLINE void scale(const V& p, T half_or_one, T lo, T hi, V& sigma, V& log_sigma, VI& far) {
  V pc = p < lo ? vm::splat<V>(lo) : p;
  pc = pc > hi ? vm::splat<V>(hi) : pc;
  log_sigma = half_or_one * pc;
  if constexpr (std::is_same_v<T, float>) {
    sigma = vm::exp_clamped_f32(log_sigma);
  } else {
    const VI abs_bits = vm::splat<VI>(0x7fffffffffffffffLL);
    far |= ~(vm::bitcast<V>(vm::bitcast<VI>(log_sigma) & abs_bits) <= 708.0);
    sigma = vm::exp_mid_f64(log_sigma);
  }
}

// Pointers to one step of W entries (x, pm, pp may be null).
template <class T>
struct Step {
  const T *x, *m, *p, *pm, *pp;
};

// One row: KL when x is null, else the log-density without its constant. Returns false (and
// nothing else) when a lane needs the serial row.
template <class T, int VB>
PGM_NROW_INLINE bool row(const T* x, const T* m, const T* p, const T* pm, const T* pp, T half_or_one, T lo, T hi,
                         index_t D, T* sum_out, T* chk_out) {
  using V = typename vm::vec<T, VB>::type;
  using VI = decltype(V{} < V{});
  using I = typename std::remove_reference<decltype(VI{}[0])>::type;
  constexpr index_t N = VB / static_cast<index_t>(sizeof(T));  // lanes of one vector
  constexpr int U = 64 / VB;                                   // vectors side by side
  constexpr index_t W = N * U;
  const bool kl = x == nullptr;
  V acc[U], chk[U];
  VI far = {};
  for (int u = 0; u < U; ++u) acc[u] = chk[u] = V{};
  VI lane = {};
  for (index_t j = 0; j < N; ++j) lane[j] = static_cast<I>(j);

  // n: how many of the step's entries are the row's (the tail's step is zero-padded).
  auto step = [&](const Step<T>& s, index_t n) __attribute__((always_inline)) {
    for (int u = 0; u < U; ++u) {
      const index_t o = u * N;
      V sig, ls;
      scale(vm::load<V>(s.p + o), half_or_one, lo, hi, sig, ls, far);
      const V mm = vm::load<V>(s.m + o);
      V term, bad;
      if (kl) {
        const V diff = s.pm ? mm - vm::load<V>(s.pm + o) : mm;
        V rls = V{}, ir2 = vm::splat<V>(T(1));
        if (s.pp) {
          V rsig;
          scale(vm::load<V>(s.pp + o), half_or_one, lo, hi, rsig, rls, far);
          ir2 = T(1) / (rsig * rsig);
        }
        term = ((rls - ls) + (T(0.5) * (sig * sig + diff * diff)) * ir2) - T(0.5);
        bad = ((mm * T(0) + ls * T(0)) + diff * T(0)) + rls * T(0);
      } else {
        const V uu = (vm::load<V>(s.x + o) - mm) / sig;
        term = (T(-0.5) * uu) * uu - ls;
        bad = uu * T(0) + ls * T(0);
      }
      if (n < W) {
        const VI in = lane + static_cast<I>(o) < static_cast<I>(n);
        term = in ? term : V{};
        bad = in ? bad : V{};
      }
      acc[u] += term;
      chk[u] += bad;
    }
  };
  const index_t Dw = D / W * W;
  for (index_t k = 0; k < Dw; k += W)
    step({x ? x + k : nullptr, m + k, p + k, pm ? pm + k : nullptr, pp ? pp + k : nullptr}, W);
  if (Dw < D) {
    T tx[W] = {}, tm[W] = {}, tp[W] = {}, tpm[W] = {}, tpp[W] = {};
    for (index_t j = 0; Dw + j < D; ++j) {
      tx[j] = x ? x[Dw + j] : T(0);
      tm[j] = m[Dw + j];
      tp[j] = p[Dw + j];
      tpm[j] = pm ? pm[Dw + j] : T(0);
      tpp[j] = pp ? pp[Dw + j] : T(0);
    }
    step({x ? tx : nullptr, tm, tp, pm ? tpm : nullptr, pp ? tpp : nullptr}, D - Dw);
  }
  bool any_far = false;
  T sum = 0, c = 0;
  for (int u = 0; u < U; ++u)
    for (index_t j = 0; j < N; ++j) {
      sum += acc[u][j];
      c += chk[u][j];
      any_far = any_far || far[j] != 0;
    }
  if (any_far) return false;
  *sum_out = sum;
  *chk_out = c;
  return true;
}

// Entry points per ISA (cpu_features.hpp).
#define PGM_NROW_ARGS \
  const T *x, const T *m, const T *p, const T *pm, const T *pp, T half_or_one, T lo, T hi, index_t D, T *sum, T *chk
#ifdef PGM_ISA_ENTRIES
template <class T>
PGM_ENTRY_AVX512 bool row_avx512(PGM_NROW_ARGS) {
  return row<T, 64>(x, m, p, pm, pp, half_or_one, lo, hi, D, sum, chk);
}
template <class T>
PGM_ENTRY_AVX2 bool row_avx2(PGM_NROW_ARGS) {
  return row<T, 32>(x, m, p, pm, pp, half_or_one, lo, hi, D, sum, chk);
}
#endif
template <class T>
PGM_ENTRY_BASE bool row_base(PGM_NROW_ARGS) {
  return row<T, 16>(x, m, p, pm, pp, half_or_one, lo, hi, D, sum, chk);
}
#undef PGM_NROW_ARGS
#undef PGM_NROW_INLINE

// The row in this CPU's entry point; false when the serial row must run it.
template <class T>
inline bool row_any(const T* x, const T* m, const T* p, const T* pm, const T* pp, T half_or_one, T lo, T hi, index_t D,
                    T* sum, T* chk) {
#ifdef PGM_ISA_ENTRIES
  const int isa = cpu::isa();
  if (isa == cpu::ISA_AVX512) return row_avx512<T>(x, m, p, pm, pp, half_or_one, lo, hi, D, sum, chk);
  if (isa == cpu::ISA_AVX2) return row_avx2<T>(x, m, p, pm, pp, half_or_one, lo, hi, D, sum, chk);
#endif
  return row_base<T>(x, m, p, pm, pp, half_or_one, lo, hi, D, sum, chk);
}

}  // namespace normal_cpu
}  // namespace pygenmod::sampling
