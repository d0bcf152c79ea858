// numpy.add.reduce's summation order over a contiguous axis, for compiled paths that must give
// the bits of a NumPy expression (the one-call fast paths, pygenmod._fast): `a.sum(-1)` of a
// C-contiguous float array adds each row from 0 with NumPy's pairwise sum (numpy's
// loops_utils.h: blocks of at most 128 entries summed by 8 partial sums, halves above that).
// NumPy 2.4 sums a whole row this way (no 8192-entry buffer chunks for a contiguous row;
// tests/test_fast_paths.py checks it against numpy on every supported version).
//
// The entries come from a callable at(i), so a row can be summed while it is computed (no
// temporary). Entries that are products are summed as computed: see loss_rows.hpp on
// multiply-add contraction.
#pragma once

#include "pygenmod/common.hpp"

namespace pygenmod::numpy_sum {

constexpr index_t kBlock = 128;  // numpy's PW_BLOCKSIZE

// numpy's pairwise_sum of entries [i0, i0 + n).
template <class T, class At>
inline T pairwise(index_t i0, index_t n, At& at) {
  if (n < 8) {
    T res = T(0);
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

// `row.sum()` of n entries at(0..n-1): the reduction's identity 0 plus the pairwise sum.
template <class T, class At>
inline T row_sum(index_t n, At& at) {
  return T(0) + pairwise<T>(0, n, at);
}

// The same row summed in chunks of `chunk` entries (0: one chunk), left to right, each chunk a
// row_sum: what a Python loop `total = c0.sum(); total += c1.sum(); ...` over column slices gives.
template <class T, class At>
inline T chunked_row_sum(index_t n, index_t chunk, At& at) {
  if (chunk <= 0 || n <= chunk) return row_sum<T>(n, at);
  T total = T(0);
  for (index_t c0 = 0; c0 < n; c0 += chunk) {
    auto shifted = [&](index_t i) { return at(c0 + i); };
    const T part = row_sum<T>(n - c0 < chunk ? n - c0 : chunk, shifted);
    total = c0 == 0 ? part : total + part;
  }
  return total;
}

}  // namespace pygenmod::numpy_sum
