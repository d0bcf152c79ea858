// numpy.add.reduce's summation order over a contiguous axis, for compiled paths that must give
// the bits of a NumPy expression (the one-call fast paths, pygenmod._fast): `a.sum(-1)` of a
// C-contiguous float array adds each row to the identity +0 with NumPy's pairwise sum (numpy's
// loops_utils.h: blocks of at most 128 entries summed by 8 partial sums, halves above that).
// NumPy 2.3 and later hand it whole rows; older releases hand it slices of their 8192-entry
// buffer, one after the other (chunked_row_sum). Which one the installed NumPy does is checked
// at run time against NumPy itself (pygenmod.adversarial._numpy_sum_chunk).
//
// The entries come from a callable at(i), so a row can be summed while it is computed (no
// temporary). No multiply-add contraction here (PGM_NO_CONTRACT): an entry that is a product
// is rounded before it is added, as NumPy's `d * d` is. A callable that computes a product
// must be always-inline (it then lands in these functions) and open with
// PGM_NO_CONTRACT_SCOPE (clang marks contraction per operation).
#pragma once

#include "pygenmod/common.hpp"

#if defined(__clang__)
#define PGM_NO_CONTRACT
#define PGM_NO_CONTRACT_SCOPE _Pragma("clang fp contract(off)")
#elif defined(__GNUC__) && !defined(__CUDACC__)
#define PGM_NO_CONTRACT __attribute__((optimize("fp-contract=off")))
#define PGM_NO_CONTRACT_SCOPE
#else
#define PGM_NO_CONTRACT
#define PGM_NO_CONTRACT_SCOPE
#endif

namespace pygenmod::numpy_sum {

constexpr index_t kBlock = 128;  // numpy's PW_BLOCKSIZE

// numpy's pairwise_sum of entries [i0, i0 + n).
template <class T, class At>
PGM_NO_CONTRACT T pairwise(index_t i0, index_t n, At& at) {
  if (n < 8) {
    T res = -T(0);  // (numpy's start: a row of -0.0 sums to -0.0)
    for (index_t i = 0; i < n; ++i) res += at(i0 + i);
    return res;
  }
  if (n <= kBlock) {
    T r[8];
    for (int j = 0; j < 8; ++j) r[j] = at(i0 + j);
    index_t i = 8;
    for (; i < n - (n % 8); i += 8)
      for (int j = 0; j < 8; ++j) r[j] += at(i0 + i + j);
    T res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) res += at(i0 + i);
    return res;
  }
  index_t n2 = n / 2;
  n2 -= n2 % 8;
  const T left = pairwise<T>(i0, n2, at);
  return left + pairwise<T>(i0 + n2, n - n2, at);
}

// `row.sum()` of n entries at(0..n-1) summed in slices of `chunk` entries (0: the whole row),
// left to right: the identity +0 plus the first slice's pairwise sum, then each next slice's.
// A Python loop `total = c0.sum(); total += c1.sum(); ...` over column slices gives the same
// bits (each c.sum() adds +0 first, which only turns a -0.0 slice into +0.0, and a total that
// starts from +0 cannot be -0.0).
template <class T, class At>
PGM_NO_CONTRACT T row_sum(index_t n, index_t chunk, At& at) {
  if (chunk <= 0 || n <= chunk) return T(0) + pairwise<T>(0, n, at);
  T total = T(0) + pairwise<T>(0, chunk, at);
  for (index_t c0 = chunk; c0 < n; c0 += chunk) total += pairwise<T>(c0, n - c0 < chunk ? n - c0 : chunk, at);
  return total;
}

}  // namespace pygenmod::numpy_sum
