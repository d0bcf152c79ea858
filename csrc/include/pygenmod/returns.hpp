// Returns over trajectories: generalized advantage estimation (Schulman et al. 2015) and
// lambda-returns, a backward scan over time. Layout is time-major: x[t, b], t < T, b < B.
//
//   vnext_t = next_values[t]            if next_values is given (V of the true next observation)
//           = values[t + 1]             for t < T - 1 otherwise
//           = bootstrap[b] (or 0)       for t = T - 1 otherwise
//   delta_t = r_t + gamma * (1 - terminated_t) * vnext_t - values_t
//   A_t     = delta_t + gamma * lambda * (1 - (terminated_t | truncated_t)) * A_{t+1}
//   ret_t   = A_t + values_t            (the lambda-return)
// Invalid steps (mask 0) get A = ret = 0 and the recursion restarts before them.
// Flags (terminated, truncated, mask) are uint8 or the float type; nonzero means true.
#pragma once

#include "pygenmod/common.hpp"

namespace pygenmod::returns {

// One step of the scan for one environment; `carry` is A_{t+1} on entry, A_t on exit.
template <class T>
PGM_HD T gae_step(T r, T v, T vnext, bool terminated, bool truncated, bool valid, T gamma, T gl,
                  T& carry) {
  const T delta = r + (terminated ? T(0) : gamma * vnext) - v;
  const T a = delta + ((terminated || truncated) ? T(0) : gl * carry);
  carry = valid ? a : T(0);
  return carry;
}

template <class F>
PGM_HD bool flag(const F* f, index_t i) { return f != nullptr && f[i] != F(0); }

// The scan for environments [b0, b1) (all pointers are the full (T, B) arrays; nullable:
// values, next_values, bootstrap, terminated, truncated, mask, ret).
template <class T, class F>
PGM_HD void gae_columns(const T* r, const T* values, const T* next_values, const T* bootstrap,
                        const F* terminated, const F* truncated, const F* mask, const T* gamma,
                        const T* lam, index_t Tn, index_t B, index_t b, T& carry, T* adv, T* ret) {
  const T g = gamma[b], gl = gamma[b] * lam[b];
  for (index_t t = Tn - 1; t >= 0; --t) {
    const index_t i = t * B + b;
    T vn;
    if (next_values) vn = next_values[i];
    else if (t + 1 < Tn) vn = values ? values[i + B] : T(0);
    else vn = bootstrap ? bootstrap[b] : T(0);
    const T v = values ? values[i] : T(0);
    const bool valid = mask == nullptr || mask[i] != F(0);
    const T a = gae_step(r[i], v, vn, flag(terminated, i), flag(truncated, i), valid, g, gl, carry);
    adv[i] = a;
    if (ret) ret[i] = valid ? a + v : T(0);
  }
}

// CPU launcher: environments split into contiguous blocks, one thread per block; inside a
// block the time loop runs outermost so each step reads contiguous rows. Absent inputs are
// replaced by rows of zeros (ones for the mask) so the inner loop has no branches and vectorises.
template <class T, class F>
void gae_cpu(const T* r, const T* values, const T* next_values, const T* bootstrap,
             const F* terminated, const F* truncated, const F* mask, const T* gamma, const T* lam,
             index_t Tn, index_t B, T* adv, T* ret) {
  constexpr index_t W = 256;
  const index_t nblocks = (B + W - 1) / W;
#pragma omp parallel for schedule(static)
  for (index_t blk = 0; blk < nblocks; ++blk) {
    const index_t b0 = blk * W, n = (B - b0 < W) ? B - b0 : W;
    T carry[W], g[W], gl[W], zt[W], scratch[W];
    F zf[W], onef[W];
    for (index_t j = 0; j < W; ++j) {
      carry[j] = zt[j] = T(0);
      zf[j] = F(0);
      onef[j] = F(1);
      g[j] = j < n ? gamma[b0 + j] : T(0);
      gl[j] = j < n ? gamma[b0 + j] * lam[b0 + j] : T(0);
    }
    for (index_t t = Tn - 1; t >= 0; --t) {
      const index_t row = t * B + b0;
      const T* vn = next_values ? next_values + row
                    : (t + 1 < Tn) ? (values ? values + row + B : zt)
                                   : (bootstrap ? bootstrap + b0 : zt);
      const T* vr = values ? values + row : zt;
      const F* te = terminated ? terminated + row : zf;
      const F* tr = truncated ? truncated + row : zf;
      const F* mk = mask ? mask + row : onef;
      const T* rr = r + row;
      T* ad = adv + row;
      T* rt = ret ? ret + row : scratch;
#pragma omp simd
      for (index_t j = 0; j < n; ++j) {
        const bool valid = mk[j] != F(0);
        const T a = gae_step(rr[j], vr[j], vn[j], te[j] != F(0), tr[j] != F(0), valid, g[j], gl[j], carry[j]);
        ad[j] = a;
        rt[j] = valid ? a + vr[j] : T(0);
      }
    }
  }
}

}  // namespace pygenmod::returns
