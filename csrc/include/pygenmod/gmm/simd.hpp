// Gaussian mixtures, layer 2 (CPU only): SIMD micro-kernels of the E-step and of the
// statistics, on GCC/Clang vector extensions, one body per vector width.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "pygenmod/cpu_features.hpp"
#include "pygenmod/gmm/math.hpp"

#if !defined(__CUDACC__)
// The 256-bit vector helpers below are inline and never cross a translation-unit boundary, so
// GCC's note that their calling convention depends on -mavx does not apply. (Not popped: GCC
// reports it where templates are instantiated, at the end of the including file.)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace pygenmod::gmm {

// ---- SIMD micro-kernels ------------------------------------------------------------------
// GCC/Clang vector extensions of VB bytes (16: 2 doubles / 4 floats, 32: 4 / 8, 64: 8 / 16).
// The bodies are always-inlined into three entry points per kernel (see accumulate_group),
// chosen at run time: AVX-512 (F/DQ/BW/VL, VB = 64), AVX2+FMA (VB = 32) and the baseline ISA
// (VB = 16: SSE2 on x86-64, NEON on aarch64; wider vectors there are split by the compiler,
// and GCC scalarises their compares and selects). No -march flag is needed. The vector width only changes the order of
// some additions (rounding-level differences between the paths); on one machine results are deterministic and
// independent of the thread count.
#define PGM_INLINE inline __attribute__((always_inline))

typedef double pgm_v2d __attribute__((vector_size(16)));
typedef double pgm_v4d __attribute__((vector_size(32)));
typedef double pgm_v8d __attribute__((vector_size(64)));
typedef float pgm_v2f __attribute__((vector_size(8)));
typedef float pgm_v4f __attribute__((vector_size(16)));
typedef float pgm_v8f __attribute__((vector_size(32)));
typedef float pgm_v16f __attribute__((vector_size(64)));

template <class T, int VB>
struct simd;
template <>
struct simd<double, 16> {
  typedef pgm_v2d v;
  static constexpr index_t W = 2;
};
template <>
struct simd<float, 16> {
  typedef pgm_v4f v;
  typedef pgm_v2f half;
  static constexpr index_t W = 4;
};
template <>
struct simd<double, 32> {
  typedef pgm_v4d v;
  static constexpr index_t W = 4;
};
template <>
struct simd<double, 64> {
  typedef pgm_v8d v;
  static constexpr index_t W = 8;
};
template <>
struct simd<float, 32> {
  typedef pgm_v8f v;
  typedef pgm_v4f half;
  static constexpr index_t W = 8;
};
template <>
struct simd<float, 64> {
  typedef pgm_v16f v;
  typedef pgm_v8f half;
  static constexpr index_t W = 16;
};

// Instruction sets of the kernel entry points (pygenmod/cpu_features.hpp: the detector and
// the cap that tests use); read once per launcher call.
using cpu::Isa;
using cpu::ISA_AVX2;
using cpu::ISA_AVX512;
using cpu::ISA_BASE;
inline int active_isa() { return cpu::isa(); }
// Lanes of T in the vectors of an ISA's entry point.
template <class T>
inline index_t isa_lanes(int isa) {
  return (isa == ISA_AVX512 ? 64 : isa == ISA_AVX2 ? 32 : 16) / static_cast<index_t>(sizeof(T));
}

inline index_t round_up(index_t n, index_t w) { return (n + w - 1) / w * w; }

// Unaligned loads/stores: vecmath.hpp's.
using vm::load;
using vm::store;
template <class V, class T>
PGM_INLINE V vsplat(T s) {
  V x = {};
  return x + s;
}
template <class T, class V>
PGM_INLINE T hsum(const V& x) {
  T s = 0;
  for (index_t i = 0; i < static_cast<index_t>(sizeof(V) / sizeof(T)); ++i) s += x[i];
  return s;
}
template <class V>
PGM_INLINE V vmax(const V& a, const V& b) {
  return a > b ? a : b;
}

// Float lanes widened to double lanes: lo/hi halves of v.
template <int VB>
PGM_INLINE void widen(const typename simd<float, VB>::v& v, typename simd<double, VB>::v& lo,
                      typename simd<double, VB>::v& hi) {
  using H = typename simd<float, VB>::half;
  using VD = typename simd<double, VB>::v;
  H a, b;
  __builtin_memcpy(&a, &v, sizeof(H));
  __builtin_memcpy(&b, reinterpret_cast<const char*>(&v) + sizeof(H), sizeof(H));
  lo = __builtin_convertvector(a, VD);
  hi = __builtin_convertvector(b, VD);
}
// Store T lanes as doubles.
template <class T, int VB>
PGM_INLINE void store_f64(double* dst, const typename simd<T, VB>::v& v) {
  if constexpr (sizeof(T) == 8) {
    store(dst, v);
  } else {
    typename simd<double, VB>::v lo, hi;
    widen<VB>(v, lo, hi);
    store(dst, lo);
    store(dst + simd<double, VB>::W, hi);
  }
}

// C[i][j] = sum_{n<m} A[n*lda + i*sa] * B[n*ldb + j] for i < I and j < Jp (Jp a multiple of the
// vector width; B's padding columns must be finite). lower: only column vectors that touch
// j <= i are computed (the rest of C is left unchanged). Register tile: 4 rows x 2 vectors.
// (The sum over n runs in order for every entry: the result does not depend on the width.)
template <class T, int VB>
PGM_INLINE void gemm_atb(const T* A, index_t lda, index_t sa, const T* B, index_t ldb, index_t m, index_t I, index_t Jp,
                         T* C, index_t ldc, bool lower) {
  using V = typename simd<T, VB>::v;
  constexpr index_t W = simd<T, VB>::W;
  index_t i = 0;
  for (; i < I; i += 4) {
    const index_t ri = std::min<index_t>(4, I - i);
    const index_t jend = lower ? std::min(Jp, round_up(i + ri, W)) : Jp;
    index_t j = 0;
    if (ri == 4) {
      for (; j + 2 * W <= jend; j += 2 * W) {
        V c00 = {}, c01 = {}, c10 = {}, c11 = {}, c20 = {}, c21 = {}, c30 = {}, c31 = {};
        for (index_t n = 0; n < m; ++n) {
          const T* b = B + n * ldb + j;
          const V b0 = load<V>(b), b1 = load<V>(b + W);
          const T* a = A + n * lda + i * sa;
          const T a0 = a[0], a1 = a[sa], a2 = a[2 * sa], a3 = a[3 * sa];
          c00 += a0 * b0;
          c01 += a0 * b1;
          c10 += a1 * b0;
          c11 += a1 * b1;
          c20 += a2 * b0;
          c21 += a2 * b1;
          c30 += a3 * b0;
          c31 += a3 * b1;
        }
        T* c = C + i * ldc + j;
        store(c, c00);
        store(c + W, c01);
        store(c + ldc, c10);
        store(c + ldc + W, c11);
        store(c + 2 * ldc, c20);
        store(c + 2 * ldc + W, c21);
        store(c + 3 * ldc, c30);
        store(c + 3 * ldc + W, c31);
      }
      if (j < jend) {  // one vector left: 4 x 1 tile, even and odd n apart (8 FMA chains)
        V c0 = {}, c1 = {}, c2 = {}, c3 = {}, d0 = {}, d1 = {}, d2 = {}, d3 = {};
        index_t n = 0;
        for (; n + 2 <= m; n += 2) {
          const V b0 = load<V>(B + n * ldb + j), b1 = load<V>(B + (n + 1) * ldb + j);
          const T* a = A + n * lda + i * sa;
          const T* e = a + lda;
          c0 += a[0] * b0;
          c1 += a[sa] * b0;
          c2 += a[2 * sa] * b0;
          c3 += a[3 * sa] * b0;
          d0 += e[0] * b1;
          d1 += e[sa] * b1;
          d2 += e[2 * sa] * b1;
          d3 += e[3 * sa] * b1;
        }
        if (n < m) {
          const V b0 = load<V>(B + n * ldb + j);
          const T* a = A + n * lda + i * sa;
          c0 += a[0] * b0;
          c1 += a[sa] * b0;
          c2 += a[2 * sa] * b0;
          c3 += a[3 * sa] * b0;
        }
        c0 += d0;
        c1 += d1;
        c2 += d2;
        c3 += d3;
        T* c = C + i * ldc + j;
        store(c, c0);
        store(c + ldc, c1);
        store(c + 2 * ldc, c2);
        store(c + 3 * ldc, c3);
      }
      continue;
    }
    for (index_t r = 0; r < ri; ++r) {
      index_t jj = 0;
      for (; jj + 2 * W <= jend; jj += 2 * W) {
        V c0 = {}, c1 = {};
        for (index_t n = 0; n < m; ++n) {
          const T a = A[n * lda + (i + r) * sa];
          c0 += a * load<V>(B + n * ldb + jj);
          c1 += a * load<V>(B + n * ldb + jj + W);
        }
        store(C + (i + r) * ldc + jj, c0);
        store(C + (i + r) * ldc + jj + W, c1);
      }
      for (; jj < jend; jj += W) {
        V c0 = {};
        for (index_t n = 0; n < m; ++n) c0 += A[n * lda + (i + r) * sa] * load<V>(B + n * ldb + jj);
        store(C + (i + r) * ldc + jj, c0);
      }
    }
  }
}

// Squared Mahalanobis distances of one lane block of points, transposed layout (dims in rows
// of stride CH, points in lanes): out = sum_j (sum_{i<=j} x_i P[i][j] - b_j)^2 with P upper
// triangular (row stride ldp, zero below the diagonal) and b (nullptr: 0). Two lane blocks
// and four columns at a time; x rows are read from L1.
template <class T, int VB>
PGM_INLINE void mahal_lanes(const T* xt, index_t CH, index_t p, index_t D, const T* P, index_t ldp, const T* b,
                            typename simd<T, VB>::v& out0, typename simd<T, VB>::v& out1) {
  using V = typename simd<T, VB>::v;
  constexpr index_t W = simd<T, VB>::W;
  V s0 = {}, s1 = {};
  index_t j = 0;
  for (; j + 4 <= D; j += 4) {
    V y00, y01, y02, y03, y10, y11, y12, y13;
    if (b) {
      y00 = y10 = vsplat<V>(-b[j]);
      y01 = y11 = vsplat<V>(-b[j + 1]);
      y02 = y12 = vsplat<V>(-b[j + 2]);
      y03 = y13 = vsplat<V>(-b[j + 3]);
    } else {
      y00 = y01 = y02 = y03 = y10 = y11 = y12 = y13 = V{};
    }
    for (index_t i = 0; i < j + 4; ++i) {
      const V x0 = load<V>(xt + i * CH + p), x1 = load<V>(xt + i * CH + p + W);
      const T* pr = P + i * ldp + j;
      const T q0 = pr[0], q1 = pr[1], q2 = pr[2], q3 = pr[3];
      y00 += x0 * q0;
      y01 += x0 * q1;
      y02 += x0 * q2;
      y03 += x0 * q3;
      y10 += x1 * q0;
      y11 += x1 * q1;
      y12 += x1 * q2;
      y13 += x1 * q3;
    }
    s0 += (y00 * y00 + y01 * y01) + (y02 * y02 + y03 * y03);
    s1 += (y10 * y10 + y11 * y11) + (y12 * y12 + y13 * y13);
  }
  for (; j < D; ++j) {
    V y0 = b ? vsplat<V>(-b[j]) : V{}, y1 = y0;
    for (index_t i = 0; i <= j; ++i) {
      const T q = P[i * ldp + j];
      y0 += load<V>(xt + i * CH + p) * q;
      y1 += load<V>(xt + i * CH + p + W) * q;
    }
    s0 += y0 * y0;
    s1 += y1 * y1;
  }
  out0 = s0;
  out1 = s1;
}

// Responsibilities of one lane block (points p .. p + W) from the log-probabilities lp[k][CH]
// (T; overwritten by exp(lp - max)): r[k][CH] (double) = point weight * responsibility, and
// llacc (double lanes) += weight * log p(x). Branch-free: lanes whose largest log-probability
// is not finite (every component underflowed, e.g. a far float32 outlier) leave NaN in r and
// in `bad`, and their max in mxb; resp_fixup then gives them to component 0 (they do not
// enter the bound).
// prod (chunks whose weights are all 1 or 0): the log of the mixture densities' scale is not
// taken per point, the lanes' product of them (*prod, padding lanes excluded) is, once per
// chunk (chunk_ll); each lane multiplies at most CH / W factors in [1, K].
template <class T, int VB>
PGM_INLINE void resp_block(T* lp, double* r, T* mxb, index_t K, index_t CH, index_t p, const T* wv,
                           typename simd<double, VB>::v& llacc, typename simd<T, VB>::v& bad,
                           typename simd<T, VB>::v* prod) {
  using V = typename simd<T, VB>::v;
  using VD = typename simd<double, VB>::v;
  V mx = load<V>(lp + p);
  for (index_t k = 1; k < K; ++k) mx = vmax(mx, load<V>(lp + k * CH + p));
  V s = {};
  for (index_t k = 0; k < K; ++k) {
    const V e = vm::exp_nonpos(load<V>(lp + k * CH + p) - mx);
    store(lp + k * CH + p, e);
    s += e;
  }
  const V fm = mx - mx;  // 0, or NaN for +-inf and NaN
  bad += fm;
  store(mxb + p, mx);
  const auto fin = fm == 0;
  const V sf = fin ? s : vsplat<V>(T(1));  // s >= 1 where finite
  const V wvv = load<V>(wv + p);
  V inv, term;
  if (prod) {
    *prod *= wvv > 0 ? sf : vsplat<V>(T(1));
    inv = T(1) / sf;
    term = fin ? mx : V{};
  } else {
    const V lg = vm::log_ge1(sf, &inv);
    term = fin ? mx + lg : V{};
  }
  const V f = wvv * inv;
  if constexpr (sizeof(T) == 8) {
    llacc += wvv * term;
  } else {
    VD t0, t1, w0, w1;
    widen<VB>(term, t0, t1);
    widen<VB>(wvv, w0, w1);
    llacc += w0 * t0;
    llacc += w1 * t1;
  }
  // padding lanes (weight 0) store 0 even where their e is NaN (a padding lane that every
  // component underflows: resp_fixup repairs only the chunk's real points)
  const auto live = wvv > 0;
  for (index_t k = 0; k < K; ++k) store_f64<T, VB>(r + k * CH + p, live ? load<V>(lp + k * CH + p) * f : V{});
}

// Adds the log of the lanes' products of resp_block to llacc.
template <class T, int VB>
PGM_INLINE void chunk_ll(const typename simd<T, VB>::v& prod, typename simd<double, VB>::v& llacc) {
  const typename simd<T, VB>::v lg = vm::log_ge1(prod);
  if constexpr (sizeof(T) == 8) {
    llacc += lg;
  } else {
    typename simd<double, VB>::v a, b;
    widen<VB>(lg, a, b);
    llacc += a + b;
  }
}

// True when a lane's product of CH / W factors in [1, K] cannot overflow T (once per
// workspace: a pow per chunk was 1.3% of 512 small fits).
template <class T>
PGM_INLINE bool unit_products_fit(index_t K, index_t CH, index_t W) {
  const double lim = sizeof(T) == 8 ? 1e300 : 1e37;
  return std::pow(static_cast<double>(K), static_cast<double>(CH / W)) <= lim;
}

// True when every weight of the chunk is 1 (padding lanes 0) and the products fit
// (unit_products_fit).
template <class T>
PGM_INLINE bool unit_chunk(const T* wv, index_t m, bool products_fit) {
  if (!products_fit) return false;
  int other = 0;  // (an int reduction: vectorises, a bool one does not)
  for (index_t p = 0; p < m; ++p) other |= wv[p] != T(1);
  return other == 0;
}

// r[k][p] = weight * the caller's responsibility of point idx[p] (the M-step from given
// responsibilities); lanes m .. mp (padding) get 0.
template <class T>
PGM_INLINE void given_resp(double* r, const T* wv, const T* resp, const index_t* idx, index_t K, index_t CH, index_t m,
                           index_t mp) {
  for (index_t k = 0; k < K; ++k)
    for (index_t p = 0; p < mp; ++p)
      r[k * CH + p] = p < m ? static_cast<double>(wv[p]) * static_cast<double>(resp[idx[p] * K + k]) : 0.0;
}

// After the lane blocks of a chunk of m points: lanes flagged in `bad` go to component 0.
template <class T, int VB>
PGM_INLINE void resp_fixup(double* r, const T* mxb, index_t K, index_t CH, index_t m, const T* wv,
                           const typename simd<T, VB>::v& bad) {
  bool ok = true;
  for (index_t q = 0; q < simd<T, VB>::W; ++q) ok = ok && bad[q] == 0;
  if (ok) return;
  for (index_t p = 0; p < m; ++p)
    if (!(mxb[p] - mxb[p] == 0))
      for (index_t k = 0; k < K; ++k) r[k * CH + p] = k == 0 ? static_cast<double>(wv[p]) : 0.0;
}

}  // namespace pygenmod::gmm

#endif  // !__CUDACC__
