// One Gumbel-softmax row: the perturbed logits (logits + noise) / tau, their argmax and softmax,
// and the softmax's VJP (mvn.hpp's launchers run them per row).
//
// gumbel_softmax_row_serial is the device's row (and the numba backend mirrors it). On the CPU
// the row runs in vector passes (gumbel_softmax_row_cpu), with the same status and the same
// index, and the softmax within its rounding:
//   - the perturbed logits: the same operations, so the same bits;
//   - exp: float32 the C library's expf, bit for bit (libm_expf.hpp); float64 vecmath's
//     exp_nonpos_f64 (within 2 ulp of exp). It flushes arguments below -600 to 0, so a row whose
//     finite entries span more than 600 takes the serial exponentials;
//   - the softmax's sum over 64 bytes of partial sums in a fixed order, in every ISA's entry
//     point (compiled by GCC without FMA contraction): the same bits on every CPU and thread
//     count.
// The serial row calls libm exp and branches per entry: from a few hundred categories on it was
// slower than NumPy's vector exp (2 x 1000 float64: 28.6 against 20.5 us).
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "pygenmod/common.hpp"
#if !defined(__CUDACC__)
#include "pygenmod/cpu_features.hpp"
#include "pygenmod/libm_expf.hpp"
#include "pygenmod/vecmath.hpp"
#endif

namespace pygenmod::sampling {

// Row status of the Gumbel-softmax kernels.
enum GumbelStatus : int { GUMBEL_BAD_LOGIT = 1, GUMBEL_ALL_MASKED = 2 };

// y holds the row's Gumbel noise on entry and t = (logits + noise) / tau on exit; returns the
// argmax of t (the first, as NumPy's argmax; 0 when no entry exceeds -inf) and *max_out its
// value. *status: GUMBEL_BAD_LOGIT for NaN / +inf logits, GUMBEL_ALL_MASKED when every logit
// is -inf.
template <class T>
PGM_HD index_t gumbel_perturb_serial(const T* logits, index_t K, T tau, T* y, int* status, T* max_out) {
  int st = 0;
  bool masked = true;
  index_t idx = 0;
  T mx = -std::numeric_limits<T>::infinity();
  for (index_t k = 0; k < K; ++k) {
    const T l = logits[k];
    if (l != l || l == std::numeric_limits<T>::infinity()) st |= GUMBEL_BAD_LOGIT;
    if (l != -std::numeric_limits<T>::infinity()) masked = false;
    const T t = (l + y[k]) / tau;
    y[k] = t;
    if (t > mx) {
      mx = t;
      idx = k;
    }
  }
  if (masked && K > 0) st |= GUMBEL_ALL_MASKED;
  *status = st;
  *max_out = mx;
  return idx;
}

// y = exp(y - mx) / sum, serial (exact exp: a masked category is exactly 0).
template <class T>
PGM_HD void softmax_from_max_serial(T* y, index_t K, T mx) {
  T sum = 0;
  for (index_t k = 0; k < K; ++k) {
    const T e = std::exp(y[k] - mx);
    y[k] = e;
    sum += e;
  }
  for (index_t k = 0; k < K; ++k) y[k] = y[k] / sum;
}

// The whole row: y holds the noise on entry and softmax(t) on exit; returns the argmax.
template <class T>
PGM_HD index_t gumbel_softmax_row_serial(const T* logits, index_t K, T tau, T* y, int* status) {
  T mx;
  const index_t idx = gumbel_perturb_serial<T>(logits, K, tau, y, status, &mx);
  softmax_from_max_serial<T>(y, K, mx);
  return idx;
}

#if !defined(__CUDACC__)
namespace gumbel_cpu {

#define PGM_GUMBEL_INLINE inline __attribute__((always_inline))

// The largest span of finite perturbed entries whose float64 exponentials take the vector path.
constexpr double kVectorExpSpan = 600.0;

// The row in vector passes (K < 2^31: the lanes carry int32 indices for float32). Each entry
// point works on its ISA's native vectors of VB bytes (wider ones are split by GCC with one
// scalar compare per lane), U = 64 / VB of them side by side: 64 bytes of lanes on every ISA,
// so the partial sums, and the bits, are the same on every CPU.
template <class T, int VB>
PGM_GUMBEL_INLINE index_t row(const T* __restrict logits, index_t K, T tau, T* __restrict y, int* status) {
  using V = typename vm::vec<T, VB>::type;
  using VI = decltype(V{} < V{});
  using I = typename std::remove_reference<decltype(VI{}[0])>::type;
  constexpr index_t N = VB / static_cast<index_t>(sizeof(T));  // lanes of one vector
  constexpr int U = 64 / VB;                                   // vectors side by side
  constexpr index_t W = N * U;                                 // entries per step
  const T inf = std::numeric_limits<T>::infinity();
  const V vinf = vm::splat<V>(inf);
  const index_t Kw = K / W * W;

  // Pass 1: t = (logits + y) / tau in place; per lane the first maximum (strict >) and its
  // index, the smallest entry above -inf, and the flags. (Each test is one compare or one
  // select: GCC scalarises `l != l | l == inf` and an and of two compares.)
  V vmx[U], vmn[U];
  VI vidx[U], vok[U], vlive[U];
  VI lane = {};
  for (index_t j = 0; j < N; ++j) lane[j] = static_cast<I>(j);
  for (int u = 0; u < U; ++u) {
    vmx[u] = -vinf;
    vmn[u] = vinf;
    vidx[u] = VI{};
    vok[u] = ~VI{};
    vlive[u] = VI{};
  }
  // One step of W entries at (l, yt) whose first entry is entry k of the row.
  auto step = [&](const T* l_, T* yt, index_t k) __attribute__((always_inline)) {
    for (int u = 0; u < U; ++u) {
      const V l = vm::load<V>(l_ + u * N);
      const V t = (l + vm::load<V>(yt + u * N)) / tau;
      vm::store(yt + u * N, t);
      vok[u] &= l < inf;
      vlive[u] |= l != -inf;
      const VI up = t > vmx[u];
      vmx[u] = up ? t : vmx[u];
      vidx[u] = up ? lane + static_cast<I>(k + u * N) : vidx[u];
      const V tf = t > -inf ? t : vinf;
      vmn[u] = tf < vmn[u] ? tf : vmn[u];
    }
  };
  for (index_t k = 0; k < Kw; k += W) step(logits + k, y + k, k);
  // The tail as one more step, padded with masked entries (logit -inf, noise 0: never a
  // maximum, not live, not bad, not finite).
  T tl[W], ty[W];
  for (index_t j = 0; j < W; ++j) {
    tl[j] = Kw + j < K ? logits[Kw + j] : -inf;
    ty[j] = Kw + j < K ? y[Kw + j] : T(0);
  }
  step(tl, ty, Kw);
  for (index_t k = Kw; k < K; ++k) y[k] = ty[k - Kw];
  // The first occurrence of the maximum: the lowest index among the lanes that reach it.
  T mx = -inf, mn = inf;
  index_t idx = 0;
  bool bad = false, live = false;
  for (int u = 0; u < U; ++u)
    for (index_t j = 0; j < N; ++j) {
      if (vmx[u][j] > mx || (vmx[u][j] == mx && mx > -inf && vidx[u][j] < idx)) {
        mx = vmx[u][j];
        idx = static_cast<index_t>(vidx[u][j]);
      }
      mn = vmn[u][j] < mn ? vmn[u][j] : mn;
      bad = bad || !vok[u][j];
      live = live || vlive[u][j];
    }
  *status = (bad ? GUMBEL_BAD_LOGIT : 0) | (!live && K > 0 ? GUMBEL_ALL_MASKED : 0);

  if (std::is_same_v<T, double> && mx - mn > T(kVectorExpSpan)) {
    softmax_from_max_serial<T>(y, K, mx);  // exp_nonpos_f64 would flush the smallest entries
    return idx;
  }
  // Pass 2: y = exp(y - mx) and its sum over the lanes; the tail in one more step (float32:
  // already exponentiated; float64: padded with -inf, whose exp is 0).
  V acc[U];
  for (int u = 0; u < U; ++u) acc[u] = V{};
  if constexpr (std::is_same_v<T, float>) {
    for (index_t k = 0; k < K; ++k) y[k] = y[k] - mx;
    libm::expf_inplace(y, K);
    for (index_t k = 0; k < Kw; k += W)
      for (int u = 0; u < U; ++u) acc[u] += vm::load<V>(y + k + u * N);
  } else {
    for (index_t k = 0; k < Kw; k += W)
      for (int u = 0; u < U; ++u) {
        const V e = vm::exp_nonpos_f64(vm::load<V>(y + k + u * N) - mx);
        vm::store(y + k + u * N, e);
        acc[u] += e;
      }
  }
  T tail[W];
  for (index_t j = 0; j < W; ++j) {
    const index_t k = Kw + j;
    tail[j] = k >= K ? (std::is_same_v<T, float> ? T(0) : -inf) : std::is_same_v<T, float> ? y[k] : y[k] - mx;
  }
  for (int u = 0; u < U; ++u) {
    V e = vm::load<V>(tail + u * N);
    if constexpr (std::is_same_v<T, double>) e = vm::exp_nonpos_f64(e);
    acc[u] += e;
    vm::store(tail + u * N, e);
  }
  if constexpr (std::is_same_v<T, double>)
    for (index_t k = Kw; k < K; ++k) y[k] = tail[k - Kw];
  T sum = 0;
  for (int u = 0; u < U; ++u)
    for (index_t j = 0; j < N; ++j) sum += acc[u][j];
  // Pass 3.
  for (index_t k = 0; k < K; ++k) y[k] = y[k] / sum;
  return idx;
}

// Entry points per ISA (cpu_features.hpp).
#ifdef PGM_ISA_ENTRIES
template <class T>
PGM_ENTRY_AVX512 index_t row_avx512(const T* logits, index_t K, T tau, T* y, int* status) {
  return row<T, 64>(logits, K, tau, y, status);
}
template <class T>
PGM_ENTRY_AVX2 index_t row_avx2(const T* logits, index_t K, T tau, T* y, int* status) {
  return row<T, 32>(logits, K, tau, y, status);
}
#endif
template <class T>
PGM_ENTRY_BASE index_t row_base(const T* logits, index_t K, T tau, T* y, int* status) {
  return row<T, 16>(logits, K, tau, y, status);
}
#undef PGM_GUMBEL_INLINE

}  // namespace gumbel_cpu

// The CPU's row (see the top of this file).
template <class T>
index_t gumbel_softmax_row_cpu(const T* logits, index_t K, T tau, T* y, int* status) {
  if (K >= index_t{1} << 31) return gumbel_softmax_row_serial<T>(logits, K, tau, y, status);
#ifdef PGM_ISA_ENTRIES
  const int isa = cpu::isa();
  if (isa == cpu::ISA_AVX512) return gumbel_cpu::row_avx512<T>(logits, K, tau, y, status);
  if (isa == cpu::ISA_AVX2) return gumbel_cpu::row_avx2<T>(logits, K, tau, y, status);
#endif
  return gumbel_cpu::row_base<T>(logits, K, tau, y, status);
}
#endif  // !__CUDACC__

template <class T>
PGM_HD index_t gumbel_softmax_row(const T* logits, index_t K, T tau, T* y, int* status) {
#if defined(__CUDACC__)
  return gumbel_softmax_row_serial<T>(logits, K, tau, y, status);
#else
  return gumbel_softmax_row_cpu<T>(logits, K, tau, y, status);
#endif
}

// VJP of the softmax at temperature tau: out = y (g - g.y) / tau (out may alias y).
template <class T>
PGM_HD void gumbel_softmax_row_backward(const T* y, const T* g, index_t K, T tau, T* out) {
  T s = 0;
  for (index_t k = 0; k < K; ++k) s += g[k] * y[k];
  for (index_t k = 0; k < K; ++k) out[k] = y[k] * (g[k] - s) / tau;
}

}  // namespace pygenmod::sampling
