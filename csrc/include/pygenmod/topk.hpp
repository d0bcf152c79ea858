// Batched top-k: the indices of the k largest values of each row, largest first; among
// equal values the lower index comes first (deterministic). Used for CEM elite selection.
#pragma once

#include "pygenmod/common.hpp"
#include "pygenmod/parallel.hpp"

namespace pygenmod::topk {

// a ranks before b: larger value, or equal value and lower index. NaN never ranks first.
template <class T>
PGM_HD bool before(T va, index_t ia, T vb, index_t ib) {
  return va > vb || (va == vb && ia < ib);
}

// Insertion into a sorted list of k (value, index) pairs kept in idx[0..k); O(n k) per row,
// which beats sorting for the small k of elite selection. Every index already listed is below
// i, so before(v, i, x[j], j) is just v > x[j] here; the k-th value is kept at hand (most
// elements stop at that one comparison).
template <class T>
PGM_HD void row_top_k(const T* x, index_t n, index_t k, std::int64_t* idx) {
  index_t filled = 0;
  T kth = T(0);  // x[idx[k - 1]] once k are listed
  for (index_t i = 0; i < n; ++i) {
    const T v = x[i];
    if (filled == k && !(v > kth)) continue;
    index_t pos = filled < k ? filled++ : k - 1;
    while (pos > 0 && v > x[idx[pos - 1]]) {
      idx[pos] = idx[pos - 1];
      --pos;
    }
    idx[pos] = i;
    if (filled == k) kth = x[idx[k - 1]];
  }
}

// The rank of element i in its row: how many elements come before it (topk::before is a strict
// total order on non-NaN values, so ranks are 0..n-1, each once). Element i belongs to the top k
// exactly when its rank is below k, and idx[rank] = i then gives row_top_k's answer. O(n) per
// element: the GPU uses it with one block per row, one thread per element, when rows are few.
template <class T>
PGM_HD index_t rank_in_row(const T* x, index_t n, index_t i) {
  const T v = x[i];
  index_t r = 0;
  for (index_t j = 0; j < n; ++j) r += before(x[j], j, v, i) ? 1 : 0;
  return r;
}

// Below this many elements a call stays on the calling thread (waking the pool costs more than
// a small selection; see pygenmod/_threads.py).
constexpr index_t TOPK_PAR_MIN = index_t(1) << 15;

template <class T>
void top_k_cpu(const T* x, index_t rows, index_t n, index_t k, std::int64_t* idx) {
  parallel_for(rows, share_chunk(rows), rows * n > TOPK_PAR_MIN,
               [&](index_t r) { row_top_k(x + r * n, n, k, idx + r * k); });
}

}  // namespace pygenmod::topk
