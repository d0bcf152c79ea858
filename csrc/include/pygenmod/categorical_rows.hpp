// Log-probability, entropy and KL of categorical rows given as logits, with or without a mask,
// and their backward passes, on the CPU in vector passes (categorical.hpp's *_row_cpu and
// *_row_backward_cpu; weights, KL with two different masks and the device keep the serial rows).
//
// A mask m (nullable, K bytes, nonzero = allowed) joins the lanes' `in` mask: a masked entry
// adds nothing to any sum, its logit is never used (NaN or inf there is fine) and its gradient
// is written as 0. A row that masks every action, or whose action is masked in a backward
// pass, goes to the serial row (its status, its NaN gradients).
//
// The passes take the row maximum, then sums of exp(x - max) and the terms, lane by lane, with
// 64 bytes of partial sums (8 float64 / 16 float32 lanes, then the lanes in order) in every
// ISA's entry point, compiled without FMA contraction (the lambdas are always inlined into
// it): the same bits on every CPU, within rounding of the serial rows. exp is the rows' cost,
// so each row takes as few as it can: one per entry (entropy; the backward rows, which keep
// exp(x - max) in their output), two for KL (one per distribution).
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

// The `in` lanes of N <= 16 mask bytes (nonzero: allowed) as VI, the lane mask of V. The bytes
// become one bit each in a scalar word (8 at a time: a nonzero byte's top bit, gathered by a
// multiply), broadcast, and lane j tests bit j. GCC 12 widens bytes to lanes one lane at a time
// (__builtin_convertvector), and built the broadcast of `vector + scalar` by one masked insert
// per lane; with both avoided a masked row costs 1.0-1.4x an unmasked one (AVX-512), not 3x.
template <class VI, index_t N>
PGM_CROW_INLINE VI mask_lanes(const std::uint8_t* m) {
  static_assert(N <= 16 && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "mask_lanes: up to 16 lanes, little-endian");
  using I = typename std::remove_reference<decltype(VI{}[0])>::type;
  if constexpr (N <= 2) {  // (the baseline float64 rows: two bytes)
    VI v = {};
    for (index_t j = 0; j < N; ++j) v[j] = static_cast<I>(m[j]);
    return v != VI{};
  }
  constexpr std::uint64_t k7f = 0x7f7f7f7f7f7f7f7fULL;
  std::uint64_t bits = 0;
  for (index_t h = 0; h < N; h += 8) {
    std::uint64_t u = 0;
    __builtin_memcpy(&u, m + h, N - h < 8 ? N - h : 8);
    const std::uint64_t top = (((u & k7f) + k7f) | u) & ~k7f;   // 0x80 in each nonzero byte
    bits |= (((top >> 7) * 0x0102040810204080ULL) >> 56) << h;  // byte j's bit to bit j
  }
  VI bit = {}, v = {};
  for (index_t j = 0; j < N; ++j) bit[j] = static_cast<I>(I(1) << j);
  v[0] = static_cast<I>(bits);
  v = __builtin_shuffle(v, VI{});  // lane 0 to every lane
  return (v & bit) != VI{};
}

// in ? v : 0 and in ? a : b for a lane mask `in`, bitwise: GCC scalarises a vector `?:` whose
// condition is not a comparison in the same function (here a lambda's argument), lane by
// lane with branches; with a constant `in` (unmasked rows) the bitwise forms fold away.
template <class V, class VI>
PGM_CROW_INLINE V keep(const VI& in, const V& v) {
  return vm::bitcast<V>(vm::bitcast<VI>(v) & in);
}
template <class V, class VI>
PGM_CROW_INLINE V pick(const VI& in, const V& a, const V& b) {
  return vm::bitcast<V>((vm::bitcast<VI>(a) & in) | (vm::bitcast<VI>(b) & ~in));
}

// Row passes over x (and y, z when not null): f(u, const V& x, const V& y, const V& z, in) per
// step of W entries, in the zero-padded tail `in` marks the row's entries (all ones elsewhere),
// and with a mask m (nullable) only its allowed entries.
template <class T, int VB, class F>
PGM_CROW_INLINE void passes3(const T* x, const T* y, const T* z, const std::uint8_t* m, index_t K, F&& f) {
  using V = typename vm::vec<T, VB>::type;
  using VI = decltype(V{} < V{});
  constexpr index_t N = VB / static_cast<index_t>(sizeof(T));
  constexpr int U = 64 / VB;
  constexpr index_t W = N * U;
  const index_t Kw = K / W * W;
  const VI all = ~VI{};
  const auto at = [](const T* a, index_t i) __attribute__((always_inline)) { return a ? vm::load<V>(a + i) : V{}; };
  if (m == nullptr) {
    for (index_t k = 0; k < Kw; k += W)
      for (int u = 0; u < U; ++u) {
        const index_t i = k + u * N;
        f(u, vm::load<V>(x + i), at(y, i), at(z, i), all);
      }
  } else {
    for (index_t k = 0; k < Kw; k += W)
      for (int u = 0; u < U; ++u) {
        const index_t i = k + u * N;
        f(u, vm::load<V>(x + i), at(y, i), at(z, i), mask_lanes<VI, N>(m + i));
      }
  }
  if (Kw == K) return;
  T tx[W] = {}, ty[W] = {}, tz[W] = {};
  std::uint8_t tm[W] = {};
  for (index_t j = 0; Kw + j < K; ++j) {
    tx[j] = x[Kw + j];
    ty[j] = y ? y[Kw + j] : T(0);
    tz[j] = z ? z[Kw + j] : T(0);
    tm[j] = m ? m[Kw + j] : 1;
  }
  for (int u = 0; u < U; ++u)
    f(u, vm::load<V>(tx + u * N), vm::load<V>(ty + u * N), vm::load<V>(tz + u * N), mask_lanes<VI, N>(tm + u * N));
}

// passes3 over x and y: f(u, const V& x, const V& y, in).
template <class T, int VB, class F>
PGM_CROW_INLINE void passes(const T* x, const T* y, const std::uint8_t* m, index_t K, F&& f) {
  using V = typename vm::vec<T, VB>::type;
  passes3<T, VB>(x, y, nullptr, m, K,
                 [&](int u, const V& a, const V& b, const V&, const auto& in)
                     __attribute__((always_inline)) { f(u, a, b, in); });
}

// Row passes that write: f(x, y, z, o1, o2) per vector of entries (y, z nullable: zeros) sets o1
// (and o2) for out1[j] (out2[j] when out2 is not null), written as 0 where a mask m (nullable)
// masks the entry; the tail through zero-padded copies. Outputs may be inputs (in place).
template <class T, int VB, class F>
PGM_CROW_INLINE void write_passes3(const T* x, const T* y, const T* z, const std::uint8_t* m, index_t K, T* out1,
                                   T* out2, F&& f) {
  using V = typename vm::vec<T, VB>::type;
  using VI = decltype(V{} < V{});
  constexpr index_t N = VB / static_cast<index_t>(sizeof(T));
  const index_t Kn = K / N * N;
  V o1{}, o2{};
  const auto at = [](const T* a) __attribute__((always_inline)) { return a ? vm::load<V>(a) : V{}; };
  const auto step = [&](const T* px, const T* py, const T* pz, const std::uint8_t* pm, T* d1, T* d2)
                        __attribute__((always_inline)) {
                          f(vm::load<V>(px), at(py), at(pz), o1, o2);
                          if (pm) {
                            const VI in = mask_lanes<VI, N>(pm);
                            o1 = keep(in, o1);
                            o2 = keep(in, o2);
                          }
                          vm::store(d1, o1);
                          if (d2) vm::store(d2, o2);
                        };
  for (index_t k = 0; k < Kn; k += N)
    step(x + k, y ? y + k : nullptr, z ? z + k : nullptr, m ? m + k : nullptr, out1 + k, out2 ? out2 + k : nullptr);
  if (Kn == K) return;
  T tx[N] = {}, ty[N] = {}, tz[N] = {}, t1[N], t2[N];
  std::uint8_t tm[N] = {};
  for (index_t j = 0; Kn + j < K; ++j) {
    tx[j] = x[Kn + j];
    ty[j] = y ? y[Kn + j] : T(0);
    tz[j] = z ? z[Kn + j] : T(0);
    tm[j] = m ? m[Kn + j] : 1;
  }
  step(tx, ty, tz, m ? tm : nullptr, t1, t2);
  for (index_t j = 0; Kn + j < K; ++j) {
    out1[Kn + j] = t1[j];
    if (out2) out2[Kn + j] = t2[j];
  }
}

// write_passes3 over x and y: f(x, y, o1, o2).
template <class T, int VB, class F>
PGM_CROW_INLINE void write_passes(const T* x, const T* y, const std::uint8_t* m, index_t K, T* out1, T* out2, F&& f) {
  using V = typename vm::vec<T, VB>::type;
  write_passes3<T, VB>(x, y, nullptr, m, K, out1, out2,
                       [&](const V& a, const V& b, const V&, V& o1, V& o2)
                           __attribute__((always_inline)) { f(a, b, o1, o2); });
}

// Row maximum, the smallest finite entry and chk (NaN iff an entry is not finite) of x's
// allowed entries (m nullable).
template <class T, int VB>
PGM_CROW_INLINE void max_min(const T* x, const std::uint8_t* m, index_t K, T* mx, T* mn, T* chk) {
  using V = typename vm::vec<T, VB>::type;
  constexpr int U = 64 / VB;
  const T inf = std::numeric_limits<T>::infinity();
  V vmx[U], vmn[U], c[U];
  for (int u = 0; u < U; ++u) {
    vmx[u] = vm::splat<V>(-inf);
    vmn[u] = vm::splat<V>(inf);
    c[u] = V{};
  }
  passes<T, VB>(x, nullptr, m, K, [&](int u, const V& a, const V&, const auto& in) __attribute__((always_inline)) {
    const V av = pick(in, a, vmx[u]);
    vmx[u] = av > vmx[u] ? av : vmx[u];
    const V bv = pick(in, a, vmn[u]);
    vmn[u] = bv < vmn[u] ? bv : vmn[u];
    c[u] += keep(in, a * T(0));
  });
  T hi = -inf, lo = inf;
  for (int u = 0; u < U; ++u)
    for (unsigned j = 0; j < sizeof(V) / sizeof(T); ++j) {
      hi = vmx[u][j] > hi ? vmx[u][j] : hi;
      lo = vmn[u][j] < lo ? vmn[u][j] : lo;
    }
  *mx = hi;
  *mn = lo;
  *chk = lanes_sum<V, U, T>(c);
}

// The row maximum of a logit row over its allowed entries: DONE, P_BAD (an allowed entry not
// finite) or SERIAL (every entry masked: the serial row's status; float64: finite logits
// spanning more than kSpan).
template <class T, int VB>
PGM_CROW_INLINE int row_max(const T* x, const std::uint8_t* m, index_t K, T* mx) {
  T mn, chk;
  max_min<T, VB>(x, m, K, mx, &mn, &chk);
  if (!(chk == T(0))) return P_BAD;
  if (!(*mx > -std::numeric_limits<T>::infinity())) return SERIAL;
  if (std::is_same_v<T, double> && *mx - mn > T(kSpan)) return SERIAL;
  return DONE;
}

// log sum exp(x - mx) over the allowed entries (>= 0: the maximum adds exp(0)).
template <class T, int VB>
PGM_CROW_INLINE T log_sum(const T* x, const std::uint8_t* m, index_t K, T mx) {
  using V = typename vm::vec<T, VB>::type;
  constexpr int U = 64 / VB;
  V acc[U];
  for (int u = 0; u < U; ++u) acc[u] = V{};
  passes<T, VB>(x, nullptr, m, K, [&](int u, const V& a, const V&, const auto& in) __attribute__((always_inline)) {
    const V e = exp_le0(a - mx);
    acc[u] += keep(in, e);
  });
  return std::log(lanes_sum<V, U, T>(acc));
}

// The row maximum and log sum exp(x - max) of a logit row: DONE, P_BAD or SERIAL (row_max).
template <class T, int VB>
PGM_CROW_INLINE int stats(const T* x, const std::uint8_t* m, index_t K, T* mx, T* ls) {
  const int st = row_max<T, VB>(x, m, K, mx);
  if (st != DONE) return st;
  *ls = log_sum<T, VB>(x, m, K, *mx);
  return DONE;
}

// log p_a of logits x (K >= 1, 0 <= a < K): x_a less the log-partition; -inf when m masks a.
template <class T, int VB>
PGM_CROW_INLINE int log_prob(const T* x, const std::uint8_t* m, index_t K, std::int64_t a, T* out) {
  T mx, ls;
  const int st = stats<T, VB>(x, m, K, &mx, &ls);
  if (st != DONE) return st;
  *out = m && !m[a] ? -std::numeric_limits<T>::infinity() : (x[a] - mx) - ls;
  return DONE;
}

// H(p) = -sum p log p of logits x (K >= 1), in one exp pass: with d_j = x_j - max,
// e_j = exp(d_j), S = sum e_j and W = sum e_j d_j, H = log S - W / S (both terms >= 0: no
// cancellation). The log-partition's pass and a second exp pass were one exp more per entry.
template <class T, int VB>
PGM_CROW_INLINE int entropy(const T* x, const std::uint8_t* m, index_t K, T* out) {
  using V = typename vm::vec<T, VB>::type;
  constexpr int U = 64 / VB;
  T mx;
  const int st = row_max<T, VB>(x, m, K, &mx);
  if (st != DONE) return st;
  V s[U], w[U];
  for (int u = 0; u < U; ++u) s[u] = w[u] = V{};
  passes<T, VB>(x, nullptr, m, K, [&](int u, const V& a, const V&, const auto& in) __attribute__((always_inline)) {
    const V d = a - mx;
    const V e = exp_le0(d);
    s[u] += keep(in, e);
    w[u] += keep(in, e * d);
  });
  const T sum = lanes_sum<V, U, T>(s);
  *out = std::log(sum) - lanes_sum<V, U, T>(w) / sum;
  return DONE;
}

// KL(p || q) given the rows' statistics (one mask m for both).
template <class T, int VB>
PGM_CROW_INLINE T kl_sum(const T* p, const T* q, const std::uint8_t* m, index_t K, T mxp, T lsp, T mxq, T lsq) {
  using V = typename vm::vec<T, VB>::type;
  constexpr int U = 64 / VB;
  V acc[U];
  for (int u = 0; u < U; ++u) acc[u] = V{};
  passes<T, VB>(p, q, m, K, [&](int u, const V& a, const V& b, const auto& in) __attribute__((always_inline)) {
    const V lp = (a - mxp) - lsp;
    const V t = exp_le0(lp) * (lp - ((b - mxq) - lsq));
    acc[u] += keep(in, t);
  });
  return lanes_sum<V, U, T>(acc);
}

// The statistics of logit rows p and q (one mask m for both): DONE, P_BAD, Q_BAD or SERIAL.
template <class T, int VB>
PGM_CROW_INLINE int stats_pq(const T* p, const T* q, const std::uint8_t* m, index_t K, T* mxp, T* lsp, T* mxq, T* lsq) {
  const int sp = stats<T, VB>(p, m, K, mxp, lsp);
  if (sp != DONE) return sp;
  const int sq = stats<T, VB>(q, m, K, mxq, lsq);
  return sq == P_BAD ? Q_BAD : sq;
}

// KL(p || q) of logit rows p and q (K >= 1; one mask m for both), in one pass of two exps per
// entry (the log-partitions' passes and the sum's were three): with dp_j = p_j - max p,
// dq_j = q_j - max q, e_j = exp(dp_j), S_p = sum e_j, S_q = sum exp(dq_j) and
// W = sum e_j (dp_j - dq_j), KL = W / S_p - log S_p + log S_q.
template <class T, int VB>
PGM_CROW_INLINE int kl(const T* p, const T* q, const std::uint8_t* m, index_t K, T* out) {
  using V = typename vm::vec<T, VB>::type;
  constexpr int U = 64 / VB;
  T mxp, mxq;
  const int sp = row_max<T, VB>(p, m, K, &mxp);
  if (sp != DONE) return sp;
  const int sq = row_max<T, VB>(q, m, K, &mxq);
  if (sq != DONE) return sq == P_BAD ? Q_BAD : sq;
  V s_p[U], s_q[U], w[U];
  for (int u = 0; u < U; ++u) s_p[u] = s_q[u] = w[u] = V{};
  passes<T, VB>(p, q, m, K, [&](int u, const V& a, const V& b, const auto& in) __attribute__((always_inline)) {
    const V dp = a - mxp, dq = b - mxq;
    const V e = exp_le0(dp);
    s_p[u] += keep(in, e);
    s_q[u] += keep(in, exp_le0(dq));
    w[u] += keep(in, e * (dp - dq));
  });
  const T sum_p = lanes_sum<V, U, T>(s_p);
  *out = lanes_sum<V, U, T>(w) / sum_p - std::log(sum_p) + std::log(lanes_sum<V, U, T>(s_q));
  return DONE;
}

// Backward passes (the serial rows' gradients, from p_j = e_j / S, 0 at masked entries; a row
// they do not take returns SERIAL, or P_BAD / Q_BAD for the caller's NaN gradients).

// The backward rows' softmax of one row into p: the checks of stats, then e_j = exp(x_j - mx)
// written to p (0 where m masks j; one exp per entry: exp was the rows' cost, 1.7 ns an entry
// against ~0.1 for a pass), their sum in log_sum's lanes and order (so the same log-partition
// ls), and p_j = e_j / sum in place. *mx, *ls: the row maximum and log-partition. DONE, P_BAD
// or SERIAL.
template <class T, int VB>
PGM_CROW_INLINE int softmax_into(const T* x, const std::uint8_t* m, index_t K, T* p, T* mx, T* ls) {
  using V = typename vm::vec<T, VB>::type;
  constexpr int U = 64 / VB;
  const int st = row_max<T, VB>(x, m, K, mx);
  if (st != DONE) return st;
  const T hi = *mx;
  write_passes<T, VB>(x, nullptr, m, K, p, nullptr,
                      [&](const V& v, const V&, V& o, V&) __attribute__((always_inline)) { o = exp_le0(v - hi); });
  V acc[U];
  for (int u = 0; u < U; ++u) acc[u] = V{};
  passes<T, VB>(p, nullptr, nullptr, K,
                [&](int u, const V& e, const V&, const auto& in) __attribute__((always_inline)) {
                  acc[u] += keep(in, e);  // (a masked e_j is +0: adding it is exact)
                });
  const T sum = lanes_sum<V, U, T>(acc);
  *ls = std::log(sum);
  const T inv = T(1) / sum;
  write_passes<T, VB>(p, nullptr, nullptr, K, p, nullptr,
                      [&](const V& e, const V&, V& o, V&) __attribute__((always_inline)) { o = e * inv; });
  return DONE;
}

// d/dx_j [g log p_a] = g (1{j = a} - p_j) (a masked action: SERIAL, the NaN row).
template <class T, int VB>
PGM_CROW_INLINE int log_prob_backward(const T* x, const std::uint8_t* m, index_t K, std::int64_t a, T g, T* dx) {
  using V = typename vm::vec<T, VB>::type;
  if (m && !m[a]) return SERIAL;
  T mx, ls;
  const int st = softmax_into<T, VB>(x, m, K, dx, &mx, &ls);
  if (st != DONE) return st;
  const T pa = dx[a];
  write_passes<T, VB>(dx, nullptr, m, K, dx, nullptr,
                      [&](const V& p, const V&, V& o, V&) __attribute__((always_inline)) {
                        o = g * (T(0) - p);  // the serial row's g (0 - p_j): the same signed zeros
                      });
  dx[a] = g * (T(1) - pa);
  return DONE;
}

// dH/dx_j = -p_j (log p_j + H), H = -sum p_j log p_j.
template <class T, int VB>
PGM_CROW_INLINE int entropy_backward(const T* x, const std::uint8_t* m, index_t K, T g, T* dx) {
  using V = typename vm::vec<T, VB>::type;
  constexpr int U = 64 / VB;
  T mx, ls;
  const int st = softmax_into<T, VB>(x, m, K, dx, &mx, &ls);
  if (st != DONE) return st;
  V acc[U];
  for (int u = 0; u < U; ++u) acc[u] = V{};
  passes<T, VB>(x, dx, m, K, [&](int u, const V& v, const V& p, const auto& in) __attribute__((always_inline)) {
    const V t = p * ((v - mx) - ls);
    acc[u] -= keep(in, t);
  });
  const T h = lanes_sum<V, U, T>(acc);
  write_passes<T, VB>(x, dx, m, K, dx, nullptr, [&](const V& v, const V& p, V& o, V&) __attribute__((always_inline)) {
    o = -g * p * (((v - mx) - ls) + h);
  });
  return DONE;
}

// dKL/dp_j = p_j (log p_j - log q_j - KL) (dp may be null), dKL/dq_j = q_j - p_j (one mask m
// for p and q). With dp, two exps per entry: p's and q's probabilities are kept in dp and dq
// (softmax_into) and the passes after read them; without it, five (p's exp is recomputed).
template <class T, int VB>
PGM_CROW_INLINE int kl_backward(const T* p, const T* q, const std::uint8_t* m, index_t K, T g, T* dp, T* dq) {
  using V = typename vm::vec<T, VB>::type;
  constexpr int U = 64 / VB;
  const T inf = std::numeric_limits<T>::infinity();
  T mxp, lsp, mxq, lsq;
  if (dp == nullptr) {
    const int st = stats_pq<T, VB>(p, q, m, K, &mxp, &lsp, &mxq, &lsq);
    if (st != DONE) return st;
    const T kl_pq = kl_sum<T, VB>(p, q, m, K, mxp, lsp, mxq, lsq);
    if (!(kl_pq < inf)) return SERIAL;  // (its NaN gradients)
    write_passes<T, VB>(q, p, m, K, dq, nullptr, [&](const V& b, const V& a, V& oq, V&) __attribute__((always_inline)) {
      oq = g * (exp_le0((b - mxq) - lsq) - exp_le0((a - mxp) - lsp));
    });
    return DONE;
  }
  int st = softmax_into<T, VB>(p, m, K, dp, &mxp, &lsp);  // dp: p_j
  if (st != DONE) return st;
  st = softmax_into<T, VB>(q, m, K, dq, &mxq, &lsq);  // dq: q_j
  if (st != DONE) return st == P_BAD ? Q_BAD : st;
  V acc[U];
  for (int u = 0; u < U; ++u) acc[u] = V{};
  passes3<T, VB>(p, q, dp, m, K,
                 [&](int u, const V& a, const V& b, const V& pj, const auto& in) __attribute__((always_inline)) {
                   acc[u] += keep(in, pj * (((a - mxp) - lsp) - ((b - mxq) - lsq)));
                 });
  const T kl_pq = lanes_sum<V, U, T>(acc);
  if (!(kl_pq < inf)) return SERIAL;  // (its NaN gradients)
  write_passes<T, VB>(dq, dp, m, K, dq, nullptr,
                      [&](const V& qj, const V& pj, V& o, V&) __attribute__((always_inline)) { o = g * (qj - pj); });
  write_passes3<T, VB>(p, q, dp, m, K, dp, nullptr,
                       [&](const V& a, const V& b, const V& pj, V& o, V&) __attribute__((always_inline)) {
                         o = g * pj * ((((a - mxp) - lsp) - ((b - mxq) - lsq)) - kl_pq);
                       });
  return DONE;
}

// d/dq_j of KL(w || softmax(q)) with the target w given as probabilities (policy_target_kl's
// weights, one mask m for q): g (q_j - w_j), +0 at masked entries, one exp per entry (the serial
// row took four libm calls). A row with mass on a masked action (its NaN gradients) returns SERIAL.
template <class T, int VB>
PGM_CROW_INLINE int target_kl_backward(const T* w, const T* q, const std::uint8_t* m, index_t K, T g, T* dq) {
  using V = typename vm::vec<T, VB>::type;
  if (m)
    for (index_t j = 0; j < K; ++j)
      if (!m[j] && w[j] > T(0)) return SERIAL;
  T mx, ls;
  const int st = softmax_into<T, VB>(q, m, K, dq, &mx, &ls);  // dq: q_j
  if (st != DONE) return st == P_BAD ? Q_BAD : st;
  write_passes<T, VB>(dq, w, m, K, dq, nullptr,
                      [&](const V& qj, const V& wj, V& o, V&) __attribute__((always_inline)) { o = g * (qj - wj); });
  return DONE;
}

#undef PGM_CROW_INLINE

// Per row function `name`: its entry points per ISA (cpu_features.hpp) and name_any, the one
// of this CPU's ISA.
#ifdef PGM_ISA_ENTRIES
#define PGM_CROW_ENTRIES(name, params, args)                  \
  template <class T>                                          \
  PGM_ENTRY_AVX512 int name##_avx512 params {                 \
    return name<T, 64> args;                                  \
  }                                                           \
  template <class T>                                          \
  PGM_ENTRY_AVX2 int name##_avx2 params {                     \
    return name<T, 32> args;                                  \
  }                                                           \
  template <class T>                                          \
  PGM_ENTRY_BASE int name##_base params {                     \
    return name<T, 16> args;                                  \
  }                                                           \
  template <class T>                                          \
  inline int name##_any params {                              \
    const int isa = cpu::isa();                               \
    if (isa == cpu::ISA_AVX512) return name##_avx512<T> args; \
    if (isa == cpu::ISA_AVX2) return name##_avx2<T> args;     \
    return name##_base<T> args;                               \
  }
#else
#define PGM_CROW_ENTRIES(name, params, args) \
  template <class T>                         \
  PGM_ENTRY_BASE int name##_base params {    \
    return name<T, 16> args;                 \
  }                                          \
  template <class T>                         \
  inline int name##_any params {             \
    return name##_base<T> args;              \
  }
#endif
using Mask = const std::uint8_t*;
PGM_CROW_ENTRIES(log_prob, (const T* x, Mask m, index_t K, std::int64_t a, T* out), (x, m, K, a, out))
PGM_CROW_ENTRIES(entropy, (const T* x, Mask m, index_t K, T* out), (x, m, K, out))
PGM_CROW_ENTRIES(kl, (const T* p, const T* q, Mask m, index_t K, T* out), (p, q, m, K, out))
PGM_CROW_ENTRIES(log_prob_backward, (const T* x, Mask m, index_t K, std::int64_t a, T g, T* dx), (x, m, K, a, g, dx))
PGM_CROW_ENTRIES(entropy_backward, (const T* x, Mask m, index_t K, T g, T* dx), (x, m, K, g, dx))
PGM_CROW_ENTRIES(kl_backward, (const T* p, const T* q, Mask m, index_t K, T g, T* dp, T* dq), (p, q, m, K, g, dp, dq))
PGM_CROW_ENTRIES(target_kl_backward, (const T* w, const T* q, Mask m, index_t K, T g, T* dq), (w, q, m, K, g, dq))
#undef PGM_CROW_ENTRIES

}  // namespace pygenmod::categorical::rows_cpu
