// Rows of the adversarial losses and of RIG's Euclidean reward, for their one-call paths on the
// CPU (pygenmod.adversarial, goals.rig_reward; pygenmod._fast): the general path's NumPy
// operations on each entry, in its order, with its row sums in NumPy's order (numpy_sum.hpp),
// so the same bits, in one pass and without its temporaries. Rows are B rows of N entries.
// A product is rounded before it is summed, as NumPy's `d * d` is (numpy_sum.hpp's
// PGM_NO_CONTRACT: the build's -ffp-contract=fast would otherwise fuse them wherever the CPU
// has FMA). `chunk`: the slices NumPy sums a row in (numpy_sum::row_sum; 0: whole rows).
#pragma once

#include "pygenmod/categorical.hpp"  // logaddexp0: NumPy's logaddexp(0, y), step for step
#include "pygenmod/common.hpp"
#include "pygenmod/numpy_sum.hpp"

#include <cmath>
#include <vector>

namespace pygenmod::loss_rows {

enum Reduce : int { NONE = 0, SUM = 1, MEAN = 2 };  // adversarial's reduction= "none", "sum", "mean"

// The logistic terms of x: y = s x (s = +-1), sp = softplus(y) = logaddexp(0, y) and
// t = y - sp = log sigmoid(y), written to t (B * N; the caller's NumPy exp(t) is the general
// path's sigmoid, bit for bit). terms: out_sign * sp per entry (NONE, B * N) or per row the
// sum of those (SUM) or sum / N (MEAN) (B). From categorical::SOFTPLUS_PAR_MIN entries (two
// libm calls each) the entries run in parallel and the row sums follow them, in NumPy's order.
template <class T>
void softplus_rows(const T* x, index_t B, index_t N, T s, Reduce reduce, index_t chunk, T out_sign, T* t, T* terms) {
  if (B * N >= categorical::SOFTPLUS_PAR_MIN) {
    std::vector<T> buf(reduce == NONE ? 0 : B * N);
    T* sp = reduce == NONE ? terms : buf.data();
    parallel_for(B * N, share_chunk(B * N), true, [&](index_t i) {
      const T y = s * x[i];
      const T v = categorical::logaddexp0<T>(y);
      t[i] = y - v;
      sp[i] = out_sign * v;
    });
    if (reduce == NONE) return;
    for (index_t b = 0; b < B; ++b) {
      const T* row = sp + b * N;
      auto at = [&](index_t i) __attribute__((always_inline)) { return row[i]; };
      const T total = numpy_sum::row_sum<T>(N, chunk, at);
      terms[b] = reduce == MEAN ? total / static_cast<T>(N) : total;
    }
    return;
  }
  for (index_t b = 0; b < B; ++b) {
    const T* xr = x + b * N;
    T* tr = t + b * N;
    if (reduce == NONE) {
      for (index_t i = 0; i < N; ++i) {
        const T y = s * xr[i];
        const T sp = categorical::logaddexp0<T>(y);
        tr[i] = y - sp;
        terms[b * N + i] = out_sign * sp;
      }
      continue;
    }
    auto at = [&](index_t i) __attribute__((always_inline)) {
      const T y = s * xr[i];
      const T sp = categorical::logaddexp0<T>(y);
      tr[i] = y - sp;
      return out_sign * sp;  // (negated before the sum, as NumPy's -sp is: the sign of a zero sum)
    };
    const T total = numpy_sum::row_sum<T>(N, chunk, at);
    terms[b] = reduce == MEAN ? total / static_cast<T>(N) : total;
  }
}

// The least-squares terms of x: d = x - target, grad = d * g_scale (B * N); terms: d * d per
// entry (NONE) or per row the sum of d * d (SUM) or sum / N (MEAN).
template <class T>
void square_rows(const T* x, index_t B, index_t N, T target, Reduce reduce, index_t chunk, T g_scale, T* grad,
                 T* terms) {
  for (index_t b = 0; b < B; ++b) {
    const T* xr = x + b * N;
    T* gr = grad + b * N;
    if (reduce == NONE) {
      for (index_t i = 0; i < N; ++i) {
        const T d = xr[i] - target;
        gr[i] = d * g_scale;
        terms[b * N + i] = d * d;
      }
      continue;
    }
    auto at = [&](index_t i) __attribute__((always_inline)) {
      PGM_NO_CONTRACT_SCOPE
      const T d = xr[i] - target;
      gr[i] = d * g_scale;
      return d * d;
    };
    const T total = numpy_sum::row_sum<T>(N, chunk, at);
    terms[b] = reduce == MEAN ? total / static_cast<T>(N) : total;
  }
}

// GAIL's policy-gradient surrogate (categorical.pg_loss): per entry elem = sign lp q, minus lam h
// with an entropy h (may be null), and the gradient sign q g_scale, each as NumPy's expression
// rounds it ((sign lp) q, (sign q) g_scale, lam h before the difference); terms: elem per entry
// (NONE) or per row the sum of those (SUM) or sum / N (MEAN).
// (The gradient is its own loop and the entries a pure callable: a store inside the summed
// callable kept the rows scalar, 1.2 ns an entry.)
template <bool kH, class T>
PGM_NO_CONTRACT void pg_rows_h(const T* __restrict lp, const T* __restrict q, const T* __restrict h, index_t B,
                               index_t N, T sign, T lam, Reduce reduce, index_t chunk, T g_scale, T* __restrict grad,
                               T* __restrict terms) {
  for (index_t i = 0; i < B * N; ++i) grad[i] = sign * q[i] * g_scale;
  for (index_t b = 0; b < B; ++b) {
    const T* lr = lp + b * N;
    const T* qr = q + b * N;
    const T* hr = kH ? h + b * N : nullptr;
    auto at = [&](index_t i) __attribute__((always_inline)) {
      PGM_NO_CONTRACT_SCOPE
      const T e = sign * lr[i] * qr[i];
      if constexpr (kH) return e - lam * hr[i];
      return e;
    };
    if (reduce == NONE) {
      T* tr = terms + b * N;
      for (index_t i = 0; i < N; ++i) tr[i] = at(i);
      continue;
    }
    const T total = numpy_sum::row_sum<T>(N, chunk, at);
    terms[b] = reduce == MEAN ? total / static_cast<T>(N) : total;
  }
}
template <class T>
void pg_rows(const T* lp, const T* q, const T* h, index_t B, index_t N, T sign, T lam, Reduce reduce, index_t chunk,
             T g_scale, T* grad, T* terms) {
  if (h)
    pg_rows_h<true, T>(lp, q, h, B, N, sign, lam, reduce, chunk, g_scale, grad, terms);
  else
    pg_rows_h<false, T>(lp, q, h, B, N, sign, lam, reduce, chunk, g_scale, grad, terms);
}

// RIG's Euclidean reward: row r of z (R rows of D) against row r % M of g (M rows of D, the
// trailing-axes broadcast), out[r] = -sqrt(sum_j (z_rj - g_j)^2), or minus the sum (squared).
template <class T>
void neg_distance_rows(const T* z, const T* g, index_t R, index_t M, index_t D, index_t chunk, bool squared, T* out) {
  for (index_t r = 0; r < R; ++r) {
    const T* zr = z + r * D;
    const T* gr = g + (r % M) * D;
    auto at = [&](index_t j) __attribute__((always_inline)) {
      PGM_NO_CONTRACT_SCOPE
      const T d = zr[j] - gr[j];
      return d * d;
    };
    const T d2 = numpy_sum::row_sum<T>(D, chunk, at);
    out[r] = -(squared ? d2 : std::sqrt(d2));
  }
}

}  // namespace pygenmod::loss_rows
