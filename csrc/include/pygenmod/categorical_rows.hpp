// Log-probability, entropy and KL of categorical rows given as logits, without masks, on the
// CPU in vector passes (categorical.hpp's log_prob_row_cpu / entropy_row_cpu / kl_row_cpu;
// masked rows, weights, the device and the backward passes keep the serial rows).
//
// The passes are the serial rows' (the row maximum, the shifted sum of exp, then the terms),
// lane by lane, with 64 bytes of partial sums (8 float64 / 16 float32 lanes, then the lanes in
// order) in every ISA's entry point, compiled without FMA contraction (the lambdas are
// always inlined into it): the same bits on every CPU, within rounding of the serial rows.
// exp is
//   - float32: random.hpp's exp_f32 (vecmath's exp_clamped_f32), as the serial rows;
//   - float64: vecmath's exp_nonpos_f64 (within 2 ulp; 0 below -600). A row whose finite
//     logits span more than 600 is left to the serial rows (libm exp). Below that span a
//     log-probability can still pass -600 by up to log K: such a probability counts as 0, an
//     absolute change below 1e-258.
// The serial float64 rows called libm exp once or twice per entry: from K = 1024 they were
// slower than NumPy's log-softmax expression (0.93x entropy, 0.86x KL; log_prob 0.40x at
// K = 16384).
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "pygenmod/common.hpp"
#include "pygenmod/cpu_features.hpp"
#include "pygenmod/vecmath.hpp"

namespace pygenmod::categorical::rows_cpu {

// What a vector row returns: its status, or SERIAL (the serial row must run it).
enum Result : int { DONE = 0, P_BAD = 1, Q_BAD = 2, SERIAL = 3 };

#define PGM_CROW_INLINE inline __attribute__((always_inline))

constexpr double kSpan = 600.0;  // float64: the largest span of finite logits for exp_nonpos_f64

template <class V>
PGM_CROW_INLINE V exp_le0(const V& x) {
  if constexpr (sizeof(x[0]) == 4)
    return vm::exp_clamped_f32(x);
  else
    return vm::exp_nonpos_f64(x);
}

// Lane sums in order (the same on every ISA: 64 bytes of lanes).
template <class V, int U, class T>
PGM_CROW_INLINE T lanes_sum(const V (&acc)[U]) {
  T s = 0;
  for (int u = 0; u < U; ++u)
    for (unsigned j = 0; j < sizeof(V) / sizeof(T); ++j) s += acc[u][j];
  return s;
}

// Row passes over x (and y when y is not null): f(const V& x, const V& y, const V& in) per
// step of W entries, in the zero-padded tail `in` marks the row's entries (all ones elsewhere).
template <class T, int VB, class F>
PGM_CROW_INLINE void passes(const T* x, const T* y, index_t K, F&& f) {
  using V = typename vm::vec<T, VB>::type;
  using VI = decltype(V{} < V{});
  using I = typename std::remove_reference<decltype(VI{}[0])>::type;
  constexpr index_t N = VB / static_cast<index_t>(sizeof(T));
  constexpr int U = 64 / VB;
  constexpr index_t W = N * U;
  const index_t Kw = K / W * W;
  const VI all = ~VI{};
  for (index_t k = 0; k < Kw; k += W)
    for (int u = 0; u < U; ++u) f(u, vm::load<V>(x + k + u * N), y ? vm::load<V>(y + k + u * N) : V{}, all);
  if (Kw == K) return;
  T tx[W] = {}, ty[W] = {};
  for (index_t j = 0; Kw + j < K; ++j) {
    tx[j] = x[Kw + j];
    ty[j] = y ? y[Kw + j] : T(0);
  }
  VI lane = {};
  for (index_t j = 0; j < N; ++j) lane[j] = static_cast<I>(j);
  for (int u = 0; u < U; ++u)
    f(u, vm::load<V>(tx + u * N), vm::load<V>(ty + u * N), lane + static_cast<I>(u * N) < static_cast<I>(K - Kw));
}

// Row maximum, the smallest finite entry and chk (NaN iff an entry is not finite) of x.
template <class T, int VB>
PGM_CROW_INLINE void max_min(const T* x, index_t K, T* mx, T* mn, T* chk) {
  using V = typename vm::vec<T, VB>::type;
  constexpr int U = 64 / VB;
  const T inf = std::numeric_limits<T>::infinity();
  V vmx[U], vmn[U], c[U];
  for (int u = 0; u < U; ++u) {
    vmx[u] = vm::splat<V>(-inf);
    vmn[u] = vm::splat<V>(inf);
    c[u] = V{};
  }
  passes<T, VB>(x, nullptr, K, [&](int u, const V& a, const V&, const auto& in) __attribute__((always_inline)) {
    const V av = in ? a : vmx[u];
    vmx[u] = av > vmx[u] ? av : vmx[u];
    const V bv = in ? a : vmn[u];
    vmn[u] = bv < vmn[u] ? bv : vmn[u];
    c[u] += a * T(0);
  });
  T m = -inf, n = inf;
  for (int u = 0; u < U; ++u)
    for (unsigned j = 0; j < sizeof(V) / sizeof(T); ++j) {
      m = vmx[u][j] > m ? vmx[u][j] : m;
      n = vmn[u][j] < n ? vmn[u][j] : n;
    }
  *mx = m;
  *mn = n;
  *chk = lanes_sum<V, U, T>(c);
}

// log sum exp(x - mx) (>= 0: the maximum adds exp(0)).
template <class T, int VB>
PGM_CROW_INLINE T log_sum(const T* x, index_t K, T mx) {
  using V = typename vm::vec<T, VB>::type;
  constexpr int U = 64 / VB;
  V acc[U];
  for (int u = 0; u < U; ++u) acc[u] = V{};
  passes<T, VB>(x, nullptr, K, [&](int u, const V& a, const V&, const auto& in) __attribute__((always_inline)) {
    const V e = exp_le0(a - mx);
    acc[u] += in ? e : V{};
  });
  return std::log(lanes_sum<V, U, T>(acc));
}

// log p_a of logits x (K >= 1, 0 <= a < K): x_a less the log-partition.
template <class T, int VB>
PGM_CROW_INLINE int log_prob(const T* x, index_t K, std::int64_t a, T* out) {
  T mx, mn, chk;
  max_min<T, VB>(x, K, &mx, &mn, &chk);
  if (!(chk == T(0))) return P_BAD;
  if (std::is_same_v<T, double> && mx - mn > T(kSpan)) return SERIAL;
  *out = (x[a] - mx) - log_sum<T, VB>(x, K, mx);
  return DONE;
}

// H(p) = -sum p log p of logits x (K >= 1).
template <class T, int VB>
PGM_CROW_INLINE int entropy(const T* x, index_t K, T* out) {
  using V = typename vm::vec<T, VB>::type;
  constexpr int U = 64 / VB;
  T mx, mn, chk;
  max_min<T, VB>(x, K, &mx, &mn, &chk);
  if (!(chk == T(0))) return P_BAD;
  if (std::is_same_v<T, double> && mx - mn > T(kSpan)) return SERIAL;
  const T ls = log_sum<T, VB>(x, K, mx);
  V acc[U];
  for (int u = 0; u < U; ++u) acc[u] = V{};
  passes<T, VB>(x, nullptr, K, [&](int u, const V& a, const V&, const auto& in) __attribute__((always_inline)) {
    const V lp = (a - mx) - ls;
    const V t = exp_le0(lp) * lp;
    acc[u] -= in ? t : V{};
  });
  *out = lanes_sum<V, U, T>(acc);
  return DONE;
}

// KL(p || q) of logit rows p and q (K >= 1).
template <class T, int VB>
PGM_CROW_INLINE int kl(const T* p, const T* q, index_t K, T* out) {
  using V = typename vm::vec<T, VB>::type;
  constexpr int U = 64 / VB;
  T mxp, mnp, chkp, mxq, mnq, chkq;
  max_min<T, VB>(p, K, &mxp, &mnp, &chkp);
  if (!(chkp == T(0))) return P_BAD;
  max_min<T, VB>(q, K, &mxq, &mnq, &chkq);
  if (!(chkq == T(0))) return Q_BAD;
  if (std::is_same_v<T, double> && mxp - mnp > T(kSpan)) return SERIAL;
  const T lsp = log_sum<T, VB>(p, K, mxp), lsq = log_sum<T, VB>(q, K, mxq);
  V acc[U];
  for (int u = 0; u < U; ++u) acc[u] = V{};
  passes<T, VB>(p, q, K, [&](int u, const V& a, const V& b, const auto& in) __attribute__((always_inline)) {
    const V lp = (a - mxp) - lsp;
    const V t = exp_le0(lp) * (lp - ((b - mxq) - lsq));
    acc[u] += in ? t : V{};
  });
  *out = lanes_sum<V, U, T>(acc);
  return DONE;
}

// Entry points per ISA (cpu_features.hpp).
#ifdef PGM_ISA_ENTRIES
template <class T>
PGM_ENTRY_AVX512 int log_prob_avx512(const T* x, index_t K, std::int64_t a, T* out) {
  return log_prob<T, 64>(x, K, a, out);
}
template <class T>
PGM_ENTRY_AVX2 int log_prob_avx2(const T* x, index_t K, std::int64_t a, T* out) {
  return log_prob<T, 32>(x, K, a, out);
}
template <class T>
PGM_ENTRY_AVX512 int entropy_avx512(const T* x, index_t K, T* out) {
  return entropy<T, 64>(x, K, out);
}
template <class T>
PGM_ENTRY_AVX2 int entropy_avx2(const T* x, index_t K, T* out) {
  return entropy<T, 32>(x, K, out);
}
template <class T>
PGM_ENTRY_AVX512 int kl_avx512(const T* p, const T* q, index_t K, T* out) {
  return kl<T, 64>(p, q, K, out);
}
template <class T>
PGM_ENTRY_AVX2 int kl_avx2(const T* p, const T* q, index_t K, T* out) {
  return kl<T, 32>(p, q, K, out);
}
#endif
template <class T>
PGM_ENTRY_BASE int log_prob_base(const T* x, index_t K, std::int64_t a, T* out) {
  return log_prob<T, 16>(x, K, a, out);
}
template <class T>
PGM_ENTRY_BASE int entropy_base(const T* x, index_t K, T* out) {
  return entropy<T, 16>(x, K, out);
}
template <class T>
PGM_ENTRY_BASE int kl_base(const T* p, const T* q, index_t K, T* out) {
  return kl<T, 16>(p, q, K, out);
}
#undef PGM_CROW_INLINE

// The entry point of this CPU's ISA.
template <class T>
inline int log_prob_any(const T* x, index_t K, std::int64_t a, T* out) {
#ifdef PGM_ISA_ENTRIES
  const int isa = cpu::isa();
  if (isa == cpu::ISA_AVX512) return log_prob_avx512<T>(x, K, a, out);
  if (isa == cpu::ISA_AVX2) return log_prob_avx2<T>(x, K, a, out);
#endif
  return log_prob_base<T>(x, K, a, out);
}
template <class T>
inline int entropy_any(const T* x, index_t K, T* out) {
#ifdef PGM_ISA_ENTRIES
  const int isa = cpu::isa();
  if (isa == cpu::ISA_AVX512) return entropy_avx512<T>(x, K, out);
  if (isa == cpu::ISA_AVX2) return entropy_avx2<T>(x, K, out);
#endif
  return entropy_base<T>(x, K, out);
}
template <class T>
inline int kl_any(const T* p, const T* q, index_t K, T* out) {
#ifdef PGM_ISA_ENTRIES
  const int isa = cpu::isa();
  if (isa == cpu::ISA_AVX512) return kl_avx512<T>(p, q, K, out);
  if (isa == cpu::ISA_AVX2) return kl_avx2<T>(p, q, K, out);
#endif
  return kl_base<T>(p, q, K, out);
}

}  // namespace pygenmod::categorical::rows_cpu
