// Spatial softmax keypoints (Finn et al. 2016, eqs. 3.1-3.2): per (b, c) map a softmax over
// the H*W pixels of x / alpha_c, then the expected coordinate and its covariance.
//
// Contract shared by every launcher (CPU here, CUDA in csrc/cuda/spatial.cu):
// - pixel (i, j) (row i, column j) has coordinate u = (px_j, py_i) with px_j = x0 + j dx,
//   py_i = y0 + i dy (the Python layer picks x0, dx, y0, dy for the grid convention);
// - z = x / alpha; m = max z over valid pixels; l = sum exp(z - m) (max-subtracted);
// - keypoint mu = sum s u, covariance Sigma = sum s (u - mu)(u - mu)^T, s = exp(z - m) / l;
// - stats[b, c] = (m, l) are saved for the backward pass;
// - an optional uint8 mask (Bm, Cm, H*W), Bm in {1, B}, Cm in {1, C}, marks valid pixels
//   (masked pixels have s = 0 and zero gradient); every map must keep one valid pixel.
// Storage types: float, double, half_t (IEEE binary16 bits) and bf16_t (bfloat16 bits), the
// last two computed in float.
#pragma once

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "pygenmod/common.hpp"
#include "pygenmod/parallel.hpp"
#include "pygenmod/cpu_features.hpp"
#include "pygenmod/random.hpp"  // rng::exp_hd_f64

namespace pygenmod::spatial {

// ------------------------------------------------------------------ storage and exp
struct half_t {
  std::uint16_t bits;
};

struct bf16_t {
  std::uint16_t bits;
};

template <class S>
struct compute {
  using type = S;
};
template <>
struct compute<half_t> {
  using type = float;
};
template <>
struct compute<bf16_t> {
  using type = float;
};
template <class S>
using compute_t = typename compute<S>::type;

PGM_HD float bits_to_float(std::int32_t i) {
#if defined(__CUDA_ARCH__)
  return __int_as_float(i);
#else
  float f;
  std::memcpy(&f, &i, sizeof f);
  return f;
#endif
}

// IEEE binary16 -> float (exact; subnormals, inf and NaN included), branch-free enough to vectorize.
PGM_HD float half_to_float(std::uint16_t h) {
  const std::int32_t sign = (h & 0x8000) << 16;
  const std::int32_t em = h & 0x7fff;
  // normal and inf/nan: shift exponent+mantissa, rebias by (127 - 15) << 23
  std::int32_t bits = (em << 13) + ((127 - 15) << 23);
  if (em >= 0x7c00) bits += (128 - 16) << 23;  // inf / nan keep an all-ones exponent
  float f = bits_to_float(bits);
  if (em < 0x0400) f = static_cast<float>(em) * 5.9604644775390625e-08f;  // subnormal: em * 2^-24
  return sign ? -f : f;
}

template <class S>
PGM_HD compute_t<S> load(const S* p, index_t i) {
  return p[i];
}
PGM_HD float load(const half_t* p, index_t i) { return half_to_float(p[i].bits); }
// bfloat16 is the top half of a float32: exact widening.
PGM_HD float load(const bf16_t* p, index_t i) {
  return bits_to_float(static_cast<std::int32_t>(static_cast<std::uint32_t>(p[i].bits) << 16));
}

// exp(t) for t <= 88 (max-subtracted logits; the CPU forward lets the reference max lag by up
// to kLag = 64), vectorizable: Cody-Waite reduction t = n ln2 + r,
// degree-6 polynomial on |r| <= ln2/2 (relative error < 2e-7), 2^n through the exponent bits.
// Returns exactly 0 below -87 (where expf would be subnormal).
PGM_HD float exp_neg(float t) {
  const float keep = static_cast<float>(t >= -87.0f);  // 0 below the range (and for NaN)
  t = t < -87.0f ? -87.0f : t;                         // NaN passes through and stays NaN
  const float magic = 12582912.0f;                     // 1.5 * 2^23: adding it rounds to an integer
  const float n = (t * 1.44269504088896341f + magic) - magic;
  const float r = (t - n * 0.693145751953125f) - n * 1.428606765330187e-06f;
  float p = 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const float scale = bits_to_float((static_cast<std::int32_t>(n) + 127) << 23);
  return p * scale * keep;
}
// float64: random.hpp's exp_hd_f64 (vectorisable on the host; this file's ISA clones contract
// its products into FMAs, so float64 maps differ between clones by about an ulp).
PGM_HD double exp_neg(double t) { return rng::exp_hd_f64(t); }

// ------------------------------------------------------------------ per-map moments
// Online softmax moments of one map relative to its running max m (all in A = double):
// s0 = sum e, sx = sum e px, sy = sum e py, sxx, syy, sxy, with e = exp(z - m).
template <class A>
struct Moments {
  A m, s0, sx, sy, sxx, syy, sxy;
};

template <class A>
PGM_HD Moments<A> empty_moments() {
  return Moments<A>{neg_inf<A>(), 0, 0, 0, 0, 0, 0};
}

template <class A>
PGM_HD void rescale(Moments<A>& a, A f) {
  a.s0 *= f;
  a.sx *= f;
  a.sy *= f;
  a.sxx *= f;
  a.syy *= f;
  a.sxy *= f;
}

// a <- a (+) b: the moments of the union of two disjoint pixel sets.
template <class A>
PGM_HD void merge(Moments<A>& a, const Moments<A>& b) {
  if (b.m == neg_inf<A>()) return;
  if (a.m == neg_inf<A>()) {
    a = b;
    return;
  }
  Moments<A> c = b;
  if (a.m >= c.m) {
    rescale(c, exp(c.m - a.m));
  } else {
    rescale(a, exp(a.m - c.m));
    a.m = c.m;
  }
  a.s0 += c.s0;
  a.sx += c.sx;
  a.sy += c.sy;
  a.sxx += c.sxx;
  a.syy += c.syy;
  a.sxy += c.sxy;
}

// Raise the reference max of `a` to `m_new` (>= a.m).
template <class A>
PGM_HD void raise_max(Moments<A>& a, A m_new) {
  if (m_new > a.m) {
    if (a.m != neg_inf<A>()) rescale(a, exp(a.m - m_new));
    a.m = m_new;
  }
}

// keypoint (x, y), covariance [[xx, xy], [xy, yy]] and stats (m, l) of finished moments.
template <class A, class T>
PGM_HD void finalize(const Moments<A>& a, T* kp, T* cov, T* stats) {
  const A inv = A(1) / a.s0;
  const A mx = a.sx * inv, my = a.sy * inv;
  kp[0] = static_cast<T>(mx);
  kp[1] = static_cast<T>(my);
  if (cov) {
    const A vxx = a.sxx * inv - mx * mx, vyy = a.syy * inv - my * my, vxy = a.sxy * inv - mx * my;
    cov[0] = static_cast<T>(vxx > 0 ? vxx : A(0));
    cov[1] = cov[2] = static_cast<T>(vxy);
    cov[3] = static_cast<T>(vyy > 0 ? vyy : A(0));
  }
  stats[0] = static_cast<T>(a.m);
  stats[1] = static_cast<T>(a.s0);
}

// ------------------------------------------------------------------ backward coefficients
// With upstream gradients g_mu (2) and G (2x2, symmetrised to Gs), dL/ds_p = phi(u_p) + gS_p
// where phi(u) = ax px + ay py + gxx px^2 + gyy py^2 + gxy2 px py, and the softmax backward gives
// dL/dz_p = s_p (phi_p + gS_p - phibar), phibar = sum_q s_q (phi_q + gS_q). `c0` = -phibar
// without the sum_q s_q gS_q part (the launcher subtracts that when maps have a gradient).
template <class A>
struct BackCoef {
  A ax, ay, gxx, gyy, gxy2, c0;
};

template <class A, class T>
PGM_HD BackCoef<A> back_coef(const T* mu, const T* cov, const T* g_mu, const T* g_cov) {
  BackCoef<A> k{};
  const A mx = mu[0], my = mu[1];
  A gxx = 0, gyy = 0, gxy = 0;
  if (g_cov) {
    gxx = g_cov[0];
    gyy = g_cov[3];
    gxy = (A(g_cov[1]) + A(g_cov[2])) / 2;
  }
  k.gxx = gxx;
  k.gyy = gyy;
  k.gxy2 = 2 * gxy;
  k.ax = A(g_mu[0]) - 2 * (gxx * mx + gxy * my);
  k.ay = A(g_mu[1]) - 2 * (gxy * mx + gyy * my);
  // phibar = g_mu . mu + <Gs, Sigma> - mu^T Gs mu  (Sigma = E[u u^T] - mu mu^T)
  A phibar = A(g_mu[0]) * mx + A(g_mu[1]) * my;
  if (g_cov) {
    phibar += gxx * A(cov[0]) + gyy * A(cov[3]) + gxy * (A(cov[1]) + A(cov[2]));
    phibar -= gxx * mx * mx + gyy * my * my + 2 * gxy * mx * my;
  }
  k.c0 = -phibar;
  return k;
}

// ------------------------------------------------------------------ CPU launchers
struct Grid {
  double x0, dx, y0, dy;  // px_j = x0 + j dx, py_i = y0 + i dy
};

struct Mask {
  const std::uint8_t* p = nullptr;  // (Bm, Cm, HW) or null
  index_t Bm = 1, Cm = 1;
  PGM_HD const std::uint8_t* map(index_t b, index_t c, index_t HW) const {
    return p + ((Bm > 1 ? b : 0) * Cm + (Cm > 1 ? c : 0)) * HW;
  }
};

namespace detail {

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__CUDACC__)
#define PGM_SPATIAL_CLONES 1
#define PGM_FLATTEN __attribute__((flatten))
#else
#define PGM_SPATIAL_CLONES 0
#define PGM_FLATTEN
#endif

// Rows of a chunk processed together: about 2048 elements, so a chunk is read from memory once
// (max pass) and again from L1 (exp pass).
inline index_t chunk_rows(index_t W) { return std::max<index_t>(1, 2048 / std::max<index_t>(W, 1)); }

// Software prefetch of one row (the memory pass of the next chunk overlaps this chunk's exps).
template <class S>
inline void prefetch_row(const S* p, index_t n) {
#if defined(__GNUC__)
  const char* c = reinterpret_cast<const char*>(p);
  for (index_t b = 0; b < n * static_cast<index_t>(sizeof(S)); b += 64) __builtin_prefetch(c + b);
#else
  (void)p;
  (void)n;
#endif
}

// Column accumulators of a chunk of rows i0 .. i1, relative to a reference max m:
// c0[j] = sum_i e_ij, cy[j] = sum_i e_ij py_i, cyy[j] = sum_i e_ij py_i^2, e = exp(z - m), and
// the chunk's max logit (valid pixels) is returned. The sums are elementwise (no loop-carried
// reduction), so they vectorize and do not depend on the vector width. m may lag behind the true max:
// the caller redoes the chunk when the max rose by more than kLag (exp_neg is exact up to +88).
template <class S, bool Cov, bool HasMask, class T>
inline T chunk_sums(const S* x, const std::uint8_t* mk, index_t i0, index_t i1, int W, T inv, T m, Grid g, T* c0, T* cy,
                    T* cyy) {
  for (int j = 0; j < W; ++j) c0[j] = cy[j] = cyy[j] = 0;
  const index_t rows = i1 - i0;
  T cm = neg_inf<T>();  // a max is exact in any order: the vector reduction is deterministic
  for (index_t i = i0; i < i1; ++i) {
    const S* xr = x + i * W;
    const std::uint8_t* mr = HasMask ? mk + i * W : nullptr;
    const T py = static_cast<T>(g.y0 + static_cast<double>(i) * g.dy);
    prefetch_row(xr + rows * W, W);  // the next chunk (or map) streams in while this one computes
#pragma omp simd reduction(max : cm)
    for (int j = 0; j < W; ++j) {
      const T z = load(xr, j) * inv;
      T e = exp_neg(z - m);
      if (HasMask) e = mr[j] ? e : T(0);
      const T ey = e * py;
      c0[j] += e;
      cy[j] += ey;
      if (Cov) cyy[j] += ey * py;
      if (HasMask) {
        cm = (mr[j] && z > cm) ? z : cm;
      } else {
        cm = z > cm ? z : cm;
      }
    }
  }
  return cm;
}

// Adds the column accumulators of a chunk to the map's moments (float64, fixed order).
template <bool Cov, class T>
inline void fold_columns(const T* c0, const T* cy, const T* cyy, int W, Grid g, Moments<double>& acc) {
  const T x0 = static_cast<T>(g.x0), dx = static_cast<T>(g.dx);
  double s0 = 0, sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
  for (int j = 0; j < W; ++j) {
    const double px = static_cast<double>(x0 + static_cast<T>(j) * dx);
    s0 += c0[j];
    sx += px * c0[j];
    sy += cy[j];
    if (Cov) {
      sxx += px * px * c0[j];
      syy += cyy[j];
      sxy += px * cy[j];
    }
  }
  acc.s0 += s0;
  acc.sx += sx;
  acc.sy += sy;
  if (Cov) {
    acc.sxx += sxx;
    acc.syy += syy;
    acc.sxy += sxy;
  }
}

// How far the running reference max may lag behind a chunk's max before the chunk is redone.
constexpr double kLag = 64.0;

// Scratch of n values for one map, on the stack for n <= 4096.
template <class T>
struct Scratch {
  T local[4096];
  std::vector<T> heap;
  T* p;
  explicit Scratch(index_t n) {
    if (n <= 4096) {
      p = local;
    } else {
      heap.resize(static_cast<size_t>(n));
      p = heap.data();
    }
  }
};

// ---- NCHW: one contiguous map
// One pass over x: the first chunk with a valid pixel gets a max pass (from L1) to set the
// reference max m; later chunks reuse m while their max stays below m + kLag (the usual case:
// one read of x from memory) and are redone with a raised m otherwise.
template <class S, bool Cov, bool HasMask>
inline void fwd_map_nchw(const S* x, compute_t<S> inv, index_t H, index_t W, Grid g, const std::uint8_t* mk,
                         Moments<double>& acc) {
  using T = compute_t<S>;
  Scratch<T> buf(3 * W);
  T *c0 = buf.p, *cy = buf.p + W, *cyy = buf.p + 2 * W;
  const int Wi = static_cast<int>(W);
  const index_t R = chunk_rows(W);
  T m = neg_inf<T>();
  for (index_t i0 = 0; i0 < H; i0 += R) {
    const index_t i1 = std::min(H, i0 + R), n = (i1 - i0) * W;
    if (m == neg_inf<T>()) {  // no reference yet: max pass over this chunk
      const S* xc = x + i0 * W;
      T cm = neg_inf<T>();
      if (HasMask) {
        const std::uint8_t* mc = mk + i0 * W;
        for (index_t k = 0; k < n; ++k) {
          const T z = load(xc, k) * inv;
          cm = (mc[k] && z > cm) ? z : cm;
        }
      } else {
#pragma omp simd reduction(max : cm)
        for (index_t k = 0; k < n; ++k) cm = std::max(cm, load(xc, k) * inv);
      }
      if (cm == neg_inf<T>()) continue;  // all masked (or -inf)
      m = cm;
      acc.m = static_cast<double>(m);
    }
    const T cm = chunk_sums<S, Cov, HasMask>(x, mk, i0, i1, Wi, inv, m, g, c0, cy, cyy);
    if (static_cast<double>(cm) > static_cast<double>(m) + kLag) {  // max rose a lot: redo
      rescale(acc, std::exp(static_cast<double>(m) - static_cast<double>(cm)));
      m = cm;
      acc.m = static_cast<double>(m);
      chunk_sums<S, Cov, HasMask>(x, mk, i0, i1, Wi, inv, m, g, c0, cy, cyy);
    }
    fold_columns<Cov>(c0, cy, cyy, Wi, g, acc);
  }
}

template <class S, class T>
inline void maps_nchw(const S* x, T inv, T m, T inv_l, index_t n, const std::uint8_t* mk, T* out) {
  if (mk) {
#pragma omp simd
    for (index_t k = 0; k < n; ++k) out[k] = mk[k] ? exp_neg(load(x, k) * inv - m) * inv_l : T(0);
  } else {
#pragma omp simd
    for (index_t k = 0; k < n; ++k) out[k] = exp_neg(load(x, k) * inv - m) * inv_l;
  }
}

// sum_p s_p gS_p over one map (only needed when the maps have an upstream gradient).
template <class S, class T>
inline double maps_dot_nchw(const S* x, T inv, T m, T inv_l, index_t n, const std::uint8_t* mk, const T* gS) {
  T acc = 0;
  if (mk) {
#pragma omp simd reduction(+ : acc)
    for (index_t k = 0; k < n; ++k) acc += mk[k] ? exp_neg(load(x, k) * inv - m) * gS[k] : T(0);
  } else {
#pragma omp simd reduction(+ : acc)
    for (index_t k = 0; k < n; ++k) acc += exp_neg(load(x, k) * inv - m) * gS[k];
  }
  return static_cast<double>(acc) * static_cast<double>(inv_l);
}

// grad_x of one map; returns sum_p gz_p (z_p - m) (for the temperature gradient), accumulated
// per column (elementwise inner loop) and folded in a fixed order.
template <class S, class T, bool HasGS>
inline double bwd_map_nchw(const S* x, T inv, T m, T inv_l, index_t H, index_t W, Grid g, const BackCoef<double>& k,
                           const std::uint8_t* mk, const T* gS, T* gx) {
  const T x0 = static_cast<T>(g.x0), dx = static_cast<T>(g.dx);
  const T gxx = static_cast<T>(k.gxx);
  Scratch<T> buf(W);
  T* cga = buf.p;
  for (index_t j = 0; j < W; ++j) cga[j] = 0;
  for (index_t i = 0; i < H; ++i) {
    const double py = g.y0 + static_cast<double>(i) * g.dy;
    const T cr = static_cast<T>(k.c0 + k.ay * py + k.gyy * py * py);
    const T bx = static_cast<T>(k.ax + k.gxy2 * py);
    const S* xr = x + i * W;
    T* gr = gx + i * W;
    const std::uint8_t* mr = mk ? mk + i * W : nullptr;
    const T* gsr = HasGS ? gS + i * W : nullptr;
    if (mr) {
      for (index_t j = 0; j < W; ++j) {
        const T t = load(xr, j) * inv - m;
        const T s = mr[j] ? exp_neg(t) * inv_l : T(0);
        const T px = x0 + static_cast<T>(j) * dx;
        T d = cr + px * (bx + gxx * px);
        if (HasGS) d += gsr[j];
        const T gz = s * d;
        gr[j] = gz * inv;
        cga[j] += mr[j] ? gz * t : T(0);
      }
    } else {
#pragma omp simd
      for (int j = 0; j < static_cast<int>(W); ++j) {
        const T t = load(xr, j) * inv - m;
        const T s = exp_neg(t) * inv_l;
        const T px = x0 + static_cast<T>(j) * dx;
        T d = cr + px * (bx + gxx * px);
        if (HasGS) d += gsr[j];
        const T gz = s * d;
        gr[j] = gz * inv;
        cga[j] += gz * t;
      }
    }
  }
  double ga = 0;
  for (index_t j = 0; j < W; ++j) ga += cga[j];
  return ga;
}

// ---- NHWC: a tile of up to CT consecutive channels of one image, pixels strided by C.
constexpr index_t CT = 64;

template <class S, bool Cov, bool HasMask>
inline void fwd_tile_nhwc(const S* x, const compute_t<S>* inv, index_t H, index_t W, index_t C, index_t nc, Grid g,
                          const std::uint8_t* const* mk, index_t /*HW*/, Moments<double>* acc) {
  using T = compute_t<S>;
  T cm[CT], m[CT], r0[CT], r1[CT], r2[CT];
  const index_t R = std::max<index_t>(1, 8192 / std::max<index_t>(W * nc, 1));
  for (index_t i0 = 0; i0 < H; i0 += R) {
    const index_t i1 = std::min(H, i0 + R);
    for (index_t c = 0; c < nc; ++c) cm[c] = neg_inf<T>();
    for (index_t p = i0 * W; p < i1 * W; ++p) {
      const S* xp = x + p * C;
      if (HasMask) {
        for (index_t c = 0; c < nc; ++c) {
          const T z = load(xp, c) * inv[c];
          cm[c] = (mk[c][p] && z > cm[c]) ? z : cm[c];
        }
      } else {
#pragma omp simd
        for (index_t c = 0; c < nc; ++c) cm[c] = std::max(cm[c], load(xp, c) * inv[c]);
      }
    }
    for (index_t c = 0; c < nc; ++c) {
      if (cm[c] != neg_inf<T>()) raise_max(acc[c], static_cast<double>(cm[c]));
      m[c] = static_cast<T>(acc[c].m);  // -inf while a channel has seen no valid pixel
    }
    for (index_t i = i0; i < i1; ++i) {
      for (index_t c = 0; c < nc; ++c) r0[c] = r1[c] = r2[c] = 0;
      for (index_t j = 0; j < W; ++j) {
        const index_t p = i * W + j;
        const S* xp = x + p * C;
        const T px = static_cast<T>(g.x0 + static_cast<double>(j) * g.dx);
#pragma omp simd
        for (index_t c = 0; c < nc; ++c) {
          T e = exp_neg(load(xp, c) * inv[c] - m[c]);
          if (HasMask) e = mk[c][p] ? e : T(0);
          r0[c] += e;
          r1[c] += e * px;
          if (Cov) r2[c] += e * px * px;
        }
      }
      const double py = g.y0 + static_cast<double>(i) * g.dy;
      for (index_t c = 0; c < nc; ++c) {
        Moments<double>& a = acc[c];
        a.s0 += r0[c];
        a.sx += r1[c];
        a.sy += py * r0[c];
        if (Cov) {
          a.sxx += r2[c];
          a.syy += py * py * r0[c];
          a.sxy += py * r1[c];
        }
      }
    }
  }
}

// Arguments of one forward / backward call (pointers into caller-owned, C-contiguous arrays).
template <class S>
struct FwdArgs {
  using T = compute_t<S>;
  const S* x;
  const T* inv;  // (C,) 1 / alpha
  index_t B, C, H, W;
  Grid g;
  Mask mask;
  T *kp, *cov, *maps, *stats;  // cov, maps may be null
};

template <class S>
struct BwdArgs {
  using T = compute_t<S>;
  const S* x;
  const T* inv;
  index_t B, C, H, W;
  Grid g;
  Mask mask;
  const T *stats, *kp, *cov, *g_kp, *g_cov, *g_maps;  // cov, g_cov, g_maps may be null
  T *gx, *g_temp;
};

// One (b, c) map of an NCHW forward.
template <class S, bool Cov, bool HasMask>
PGM_FLATTEN void fwd_nchw_item(const FwdArgs<S>& a, index_t bc) {
  using T = compute_t<S>;
  const index_t HW = a.H * a.W, b = bc / a.C, c = bc % a.C;
  const std::uint8_t* mk = HasMask ? a.mask.map(b, c, HW) : nullptr;
  Moments<double> acc = empty_moments<double>();
  fwd_map_nchw<S, Cov, HasMask>(a.x + bc * HW, a.inv[c], a.H, a.W, a.g, mk, acc);
  finalize(acc, a.kp + bc * 2, Cov ? a.cov + bc * 4 : static_cast<T*>(nullptr), a.stats + bc * 2);
  if (a.maps)
    maps_nchw(a.x + bc * HW, a.inv[c], static_cast<T>(acc.m), static_cast<T>(1.0 / acc.s0), HW, mk, a.maps + bc * HW);
}

// One tile (b, channels c0 .. c0 + CT) of an NHWC forward.
template <class S, bool Cov, bool HasMask>
PGM_FLATTEN void fwd_nhwc_item(const FwdArgs<S>& a, index_t bt) {
  using T = compute_t<S>;
  const index_t HW = a.H * a.W, C = a.C, tiles = (C + CT - 1) / CT;
  const index_t b = bt / tiles, c0 = (bt % tiles) * CT, nc = std::min(CT, C - c0);
  Moments<double> acc[CT];
  const std::uint8_t* mk[CT];
  for (index_t c = 0; c < nc; ++c) {
    acc[c] = empty_moments<double>();
    mk[c] = HasMask ? a.mask.map(b, c0 + c, HW) : nullptr;
  }
  const S* xb = a.x + b * HW * C + c0;
  fwd_tile_nhwc<S, Cov, HasMask>(xb, a.inv + c0, a.H, a.W, C, nc, a.g, mk, HW, acc);
  for (index_t c = 0; c < nc; ++c) {
    const index_t bc = b * C + c0 + c;
    finalize(acc[c], a.kp + bc * 2, Cov ? a.cov + bc * 4 : static_cast<T*>(nullptr), a.stats + bc * 2);
  }
  if (a.maps) {
    T mm[CT], il[CT], iv[CT];
    for (index_t c = 0; c < nc; ++c) {
      mm[c] = static_cast<T>(acc[c].m);
      il[c] = static_cast<T>(1.0 / acc[c].s0);
      iv[c] = a.inv[c0 + c];
    }
    for (index_t p = 0; p < HW; ++p) {
      const S* xp = xb + p * C;
      T* op = a.maps + (b * HW + p) * C + c0;
#pragma omp simd
      for (index_t c = 0; c < nc; ++c) {
        const T e = exp_neg(load(xp, c) * iv[c] - mm[c]) * il[c];
        op[c] = (HasMask && !mk[c][p]) ? T(0) : e;
      }
    }
  }
}

// One (b, c) map of an NCHW backward.
template <class S, bool HasGS>
PGM_FLATTEN void bwd_nchw_item(const BwdArgs<S>& a, index_t bc) {
  using T = compute_t<S>;
  const index_t HW = a.H * a.W, b = bc / a.C, c = bc % a.C;
  const std::uint8_t* mk = a.mask.p ? a.mask.map(b, c, HW) : nullptr;
  BackCoef<double> k = back_coef<double>(a.kp + bc * 2, a.cov ? a.cov + bc * 4 : nullptr, a.g_kp + bc * 2,
                                         a.g_cov ? a.g_cov + bc * 4 : nullptr);
  const T m = a.stats[bc * 2];
  const T inv_l = static_cast<T>(1.0 / static_cast<double>(a.stats[bc * 2 + 1]));
  const T* gS = HasGS ? a.g_maps + bc * HW : nullptr;
  if (HasGS) k.c0 -= maps_dot_nchw(a.x + bc * HW, a.inv[c], m, inv_l, HW, mk, gS);
  const double ga =
      bwd_map_nchw<S, T, HasGS>(a.x + bc * HW, a.inv[c], m, inv_l, a.H, a.W, a.g, k, mk, gS, a.gx + bc * HW);
  a.g_temp[bc] = static_cast<T>(-static_cast<double>(a.inv[c]) * ga);
}

// One tile of an NHWC backward.
template <class S, bool HasGS>
PGM_FLATTEN void bwd_nhwc_item(const BwdArgs<S>& a, index_t bt) {
  using T = compute_t<S>;
  const index_t HW = a.H * a.W, C = a.C, tiles = (C + CT - 1) / CT;
  const index_t b = bt / tiles, c0 = (bt % tiles) * CT, nc = std::min(CT, C - c0);
  T m[CT], il[CT], gxx[CT], cr[CT], bx[CT], gar[CT], iv[CT];
  double ga[CT];
  BackCoef<double> k[CT];
  const std::uint8_t* mk[CT];
  const S* xb = a.x + b * HW * C + c0;
  for (index_t c = 0; c < nc; ++c) {
    const index_t bc = b * C + c0 + c;
    mk[c] = a.mask.p ? a.mask.map(b, c0 + c, HW) : nullptr;
    k[c] = back_coef<double>(a.kp + bc * 2, a.cov ? a.cov + bc * 4 : nullptr, a.g_kp + bc * 2,
                             a.g_cov ? a.g_cov + bc * 4 : nullptr);
    m[c] = a.stats[bc * 2];
    il[c] = static_cast<T>(1.0 / static_cast<double>(a.stats[bc * 2 + 1]));
    gxx[c] = static_cast<T>(k[c].gxx);
    iv[c] = a.inv[c0 + c];
    ga[c] = 0;
  }
  if (HasGS) {
    double dot[CT] = {};
    for (index_t p = 0; p < HW; ++p) {
      const S* xp = xb + p * C;
      const T* gp = a.g_maps + (b * HW + p) * C + c0;
      for (index_t c = 0; c < nc; ++c)
        if (!mk[c] || mk[c][p]) dot[c] += exp_neg(load(xp, c) * iv[c] - m[c]) * il[c] * gp[c];
    }
    for (index_t c = 0; c < nc; ++c) k[c].c0 -= dot[c];
  }
  const bool masked = a.mask.p != nullptr;
  for (index_t i = 0; i < a.H; ++i) {
    const double py = a.g.y0 + static_cast<double>(i) * a.g.dy;
    for (index_t c = 0; c < nc; ++c) {
      cr[c] = static_cast<T>(k[c].c0 + k[c].ay * py + k[c].gyy * py * py);
      bx[c] = static_cast<T>(k[c].ax + k[c].gxy2 * py);
      gar[c] = 0;
    }
    for (index_t j = 0; j < a.W; ++j) {
      const index_t p = i * a.W + j;
      const S* xp = xb + p * C;
      T* gp = a.gx + (b * HW + p) * C + c0;
      const T* gsp = HasGS ? a.g_maps + (b * HW + p) * C + c0 : nullptr;
      const T px = static_cast<T>(a.g.x0 + static_cast<double>(j) * a.g.dx);
      if (masked) {
        for (index_t c = 0; c < nc; ++c) {
          const T t = load(xp, c) * iv[c] - m[c];
          const T s = mk[c][p] ? exp_neg(t) * il[c] : T(0);
          T d = cr[c] + px * (bx[c] + gxx[c] * px);
          if (HasGS) d += gsp[c];
          const T gz = s * d;
          gp[c] = gz * iv[c];
          gar[c] += mk[c][p] ? gz * t : T(0);
        }
      } else {
#pragma omp simd
        for (index_t c = 0; c < nc; ++c) {
          const T t = load(xp, c) * iv[c] - m[c];
          const T s = exp_neg(t) * il[c];
          T d = cr[c] + px * (bx[c] + gxx[c] * px);
          if (HasGS) d += gsp[c];
          const T gz = s * d;
          gp[c] = gz * iv[c];
          gar[c] += gz * t;
        }
      }
    }
    for (index_t c = 0; c < nc; ++c) ga[c] += gar[c];
  }
  for (index_t c = 0; c < nc; ++c) a.g_temp[b * C + c0 + c] = static_cast<T>(-static_cast<double>(iv[c]) * ga[c]);
}

// Each item function exists three times on x86-64 with GCC: AVX-512 and AVX2+FMA clones and
// the baseline, the clone chosen at run time from the CPU's features (no -march flag needed at
// build time). The column accumulators make the result independent of the vector width.
#if PGM_SPATIAL_CLONES
#define PGM_CLONE(name, suffix, target_str, Args, ...) \
  template <class S, __VA_ARGS__>                      \
  __attribute__((target(target_str))) PGM_FLATTEN void name##_##suffix(const Args<S>& a, index_t i)
#define PGM_CLONES(suffix, target_str)                                                                 \
  PGM_CLONE(fwd_nchw_item, suffix, target_str, FwdArgs, bool Cov, bool HasMask) {                      \
    fwd_nchw_item<S, Cov, HasMask>(a, i);                                                              \
  }                                                                                                    \
  PGM_CLONE(fwd_nhwc_item, suffix, target_str, FwdArgs, bool Cov, bool HasMask) {                      \
    fwd_nhwc_item<S, Cov, HasMask>(a, i);                                                              \
  }                                                                                                    \
  PGM_CLONE(bwd_nchw_item, suffix, target_str, BwdArgs, bool HasGS) { bwd_nchw_item<S, HasGS>(a, i); } \
  PGM_CLONE(bwd_nhwc_item, suffix, target_str, BwdArgs, bool HasGS) { bwd_nhwc_item<S, HasGS>(a, i); }
PGM_CLONES(avx2, "avx2,fma")
PGM_CLONES(avx512, "avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")
#undef PGM_CLONES
#undef PGM_CLONE
// 0: baseline, 1: AVX2+FMA, 2: AVX-512 (F/VL/DQ/BW): pygenmod/cpu_features.hpp (whose
// $PYGENMOD_CPU_ISA cap the tests use to run every clone).
inline int isa_level() { return cpu::isa(); }
#else
inline int isa_level() { return 0; }
#endif

template <class S>
using fwd_item_fn = void (*)(const FwdArgs<S>&, index_t);
template <class S>
using bwd_item_fn = void (*)(const BwdArgs<S>&, index_t);

template <class S, bool Cov, bool HasMask>
fwd_item_fn<S> pick_fwd(bool channels_last) {
#if PGM_SPATIAL_CLONES
  if (isa_level() == 2)
    return channels_last ? &fwd_nhwc_item_avx512<S, Cov, HasMask> : &fwd_nchw_item_avx512<S, Cov, HasMask>;
  if (isa_level() == 1)
    return channels_last ? &fwd_nhwc_item_avx2<S, Cov, HasMask> : &fwd_nchw_item_avx2<S, Cov, HasMask>;
#endif
  return channels_last ? &fwd_nhwc_item<S, Cov, HasMask> : &fwd_nchw_item<S, Cov, HasMask>;
}

template <class S, bool HasGS>
bwd_item_fn<S> pick_bwd(bool channels_last) {
#if PGM_SPATIAL_CLONES
  if (isa_level() == 2) return channels_last ? &bwd_nhwc_item_avx512<S, HasGS> : &bwd_nchw_item_avx512<S, HasGS>;
  if (isa_level() == 1) return channels_last ? &bwd_nhwc_item_avx2<S, HasGS> : &bwd_nchw_item_avx2<S, HasGS>;
#endif
  return channels_last ? &bwd_nhwc_item<S, HasGS> : &bwd_nchw_item<S, HasGS>;
}

inline index_t n_items(index_t B, index_t C, bool channels_last) {
  return channels_last ? B * ((C + CT - 1) / CT) : B * C;
}

}  // namespace detail

// Below this many elements a call runs on the calling thread: waking the pool costs more.
constexpr index_t kParallelMin = 1 << 15;

// Forward. x: (B, C, H, W) or, channels_last, (B, H, W, C); inv_temp (C,) = 1 / alpha_c;
// kp (B, C, 2); cov (B, C, 2, 2) or null; maps (x's layout) or null; stats (B, C, 2).
// Parallel over maps (NCHW) or (image, channel tile) pairs (NHWC); each map is reduced by one
// thread in a fixed order, so results do not depend on the thread count.
template <class S>
void forward_cpu(const detail::FwdArgs<S>& a, bool channels_last) {
  using namespace detail;
  const bool c = a.cov != nullptr, mk = a.mask.p != nullptr;
  const fwd_item_fn<S> f =
      c ? (mk ? pick_fwd<S, true, true>(channels_last) : pick_fwd<S, true, false>(channels_last))
        : (mk ? pick_fwd<S, false, true>(channels_last) : pick_fwd<S, false, false>(channels_last));
  const index_t n = n_items(a.B, a.C, channels_last);
  const bool par = n > 1 && a.B * a.C * a.H * a.W >= kParallelMin;
  parallel_for(n, share_chunk(n), par, [&](index_t i) { f(a, i); });
}

// Backward (VJP): stats/kp/cov from the forward (cov needed only with g_cov); g_kp (B, C, 2),
// g_cov (B, C, 2, 2) or null, g_maps (x's layout) or null; writes gx (x's layout, compute type)
// and g_temp (B, C): the part of dL/d alpha_c contributed by map (b, c).
template <class S>
void backward_cpu(const detail::BwdArgs<S>& a, bool channels_last) {
  using namespace detail;
  const bwd_item_fn<S> f = a.g_maps ? pick_bwd<S, true>(channels_last) : pick_bwd<S, false>(channels_last);
  const index_t n = n_items(a.B, a.C, channels_last);
  const bool par = n > 1 && a.B * a.C * a.H * a.W >= kParallelMin;
  parallel_for(n, share_chunk(n), par, [&](index_t i) { f(a, i); });
}

}  // namespace pygenmod::spatial
