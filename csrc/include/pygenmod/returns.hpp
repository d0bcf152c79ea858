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
// `nonfinite` (nullable) is set to 1 when a NaN or inf entered the scan (inputs are not
// checked separately: every input reaches A through a multiplication).
// Flags (terminated, truncated, mask) are uint8 or the float type; nonzero means true.
#pragma once

#include "pygenmod/common.hpp"
#include "pygenmod/parallel.hpp"

#include <algorithm>
#include <atomic>
#include <vector>

namespace pygenmod::returns {

// One step of the scan for one environment; `carry` is A_{t+1} on entry, A_t on exit.
// The flags enter as 0/1 factors (branch-free, so the CPU loop vectorises; inputs are finite,
// so 0 * x == 0): keep_next = 1 - terminated, keep_carry = keep_next * (1 - truncated),
// valid = mask.
template <class T>
PGM_HD T gae_step(T r, T v, T vnext, T keep_next, T keep_carry, T valid, T gamma, T gl, T& carry) {
  const T delta = r + gamma * keep_next * vnext - v;
  carry = (delta + gl * keep_carry * carry) * valid;
  return carry;
}

// The 0/1 factors of gae_step from the three flags (nonzero = true).
template <class T, class F>
PGM_HD void gae_factors(F terminated, F truncated, F mask, T& keep_next, T& keep_carry, T& valid) {
  keep_next = T(1) - static_cast<T>(terminated != F(0));
  keep_carry = keep_next * (T(1) - static_cast<T>(truncated != F(0)));
  valid = static_cast<T>(mask != F(0));
}

// The scan for environments [b0, b1) (all pointers are the full (T, B) arrays; nullable:
// values, next_values, bootstrap, terminated, truncated, mask, ret).
template <class T, class F>
PGM_HD void gae_columns(const T* r, const T* values, const T* next_values, const T* bootstrap, const F* terminated,
                        const F* truncated, const F* mask, const T* gamma, const T* lam, index_t Tn, index_t B,
                        index_t b, T& carry, T* adv, T* ret, T& nf) {
  const T g = gamma[b], gl = gamma[b] * lam[b];
  for (index_t t = Tn - 1; t >= 0; --t) {
    const index_t i = t * B + b;
    T vn;
    if (next_values)
      vn = next_values[i];
    else if (t + 1 < Tn)
      vn = values ? values[i + B] : T(0);
    else
      vn = bootstrap ? bootstrap[b] : T(0);
    const T v = values ? values[i] : T(0);
    T kn, kc, valid;
    gae_factors<T, F>(terminated ? terminated[i] : F(0), truncated ? truncated[i] : F(0), mask ? mask[i] : F(1), kn, kc,
                      valid);
    const T a = gae_step(r[i], v, vn, kn, kc, valid, g, gl, carry);
    adv[i] = a;
    if (ret) ret[i] = (a + v) * valid;
    nf += a * T(0);
  }
}

// One time step of the CPU scan over n contiguous environments (a separate function so the
// compiler vectorises it on its own, outside the chunk lambda).
template <class T, class F>
void gae_row(index_t n, const T* __restrict rr, const T* __restrict vr, const T* __restrict vn, const F* __restrict te,
             const F* __restrict tr, const F* __restrict mk, const T* __restrict g, const T* __restrict gl,
             T* __restrict carry, T* __restrict ad, T* __restrict rt, T* __restrict nf) {
#pragma omp simd
  for (index_t j = 0; j < n; ++j) {
    T kn, kc, valid;
    gae_factors<T, F>(te[j], tr[j], mk[j], kn, kc, valid);
    const T a = gae_step(rr[j], vr[j], vn[j], kn, kc, valid, g[j], gl[j], carry[j]);
    ad[j] = a;
    rt[j] = (a + vr[j]) * valid;
    nf[j] += a * T(0);  // stays 0 unless a NaN/inf reached the scan (every input does, via a)
  }
}

// CPU launcher: the environments are split into one contiguous chunk per thread (a thread
// that starts late finds its chunk done by another); each chunk is walked backwards in time,
// so every step reads long contiguous row segments (the hardware prefetcher follows them).
// Absent inputs are replaced by rows of zeros (ones for the mask), so the inner loop has no
// branches on them and vectorises.
template <class T, class F>
void gae_cpu(const T* r, const T* values, const T* next_values, const T* bootstrap, const F* terminated,
             const F* truncated, const F* mask, const T* gamma, const T* lam, index_t Tn, index_t B, T* adv, T* ret,
             std::uint8_t* nonfinite) {
  std::atomic<bool> bad{false};
  // Small scans stay on the calling thread: with one 16-environment group the other threads
  // have nothing to do, and below ~32K steps a fork/join costs more than it saves.
  constexpr index_t GAE_PAR_MIN = index_t(1) << 15;
  const bool par = B > 16 && Tn * B >= GAE_PAR_MIN;
  // chunks of whole 16-environment groups, so each row segment starts aligned-ish
  const index_t groups = (B + 15) / 16, nt = par ? max_threads() : 1, per = (groups + nt - 1) / nt;
  parallel_chunks(groups, per, par, [&](index_t g0, index_t g1, int) {
    const index_t b0 = std::min(B, g0 * 16), b1 = std::min(B, g1 * 16), n = b1 - b0;
    if (n > 0) {
      std::vector<T> carry(n, T(0)), g(n), gl(n), zt(n, T(0)), scratch(ret ? 0 : n), nf(n, T(0));
      std::vector<F> zf(n, F(0)), onef(n, F(1));
      for (index_t j = 0; j < n; ++j) {
        g[j] = gamma[b0 + j];
        gl[j] = gamma[b0 + j] * lam[b0 + j];
      }
      T* cy = carry.data();
      const T *gg = g.data(), *ggl = gl.data();
      for (index_t t = Tn - 1; t >= 0; --t) {
        const index_t row = t * B + b0;
        const T* vn = next_values    ? next_values + row
                      : (t + 1 < Tn) ? (values ? values + row + B : zt.data())
                                     : (bootstrap ? bootstrap + b0 : zt.data());
        const T* vr = values ? values + row : zt.data();
        const F* te = terminated ? terminated + row : zf.data();
        const F* tr = truncated ? truncated + row : zf.data();
        const F* mk = mask ? mask + row : onef.data();
        const T* rr = r + row;
        T* ad = adv + row;
        T* rt = ret ? ret + row : scratch.data();
        gae_row(n, rr, vr, vn, te, tr, mk, gg, ggl, cy, ad, rt, nf.data());
      }
      bool chunk_bad = false;
      for (index_t j = 0; j < n; ++j) chunk_bad |= !(nf[j] == T(0));
      if (chunk_bad) bad.store(true, std::memory_order_relaxed);
    }
  });
  if (nonfinite) *nonfinite = static_cast<std::uint8_t>(bad.load());
}

}  // namespace pygenmod::returns
