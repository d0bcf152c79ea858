// Batched top-k: the indices of the k largest values of each row, largest first; among
// equal values the lower index comes first (deterministic). Used for CEM elite selection.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <type_traits>
#include <vector>

#include "pygenmod/common.hpp"
#include "pygenmod/cpu_features.hpp"
#include "pygenmod/parallel.hpp"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__CUDACC__)
#include <immintrin.h>
#endif

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

// Up to this k the insertion above is the faster selection (it stops most elements at one
// comparison); above it, select_top_k's expected O(n + k log k).
constexpr index_t INSERTION_MAX_K = 16;

// The first m elements of a row by insertion, largest first (nothing drops out yet): vals and
// ids hold them sorted, ties in index order. The start of every host insertion below.
template <class V, class T>
void insert_first(const T* x, index_t m, V* vals, std::int64_t* ids) {
  for (index_t i = 0; i < m; ++i) {
    const V v = static_cast<V>(x[i]);
    index_t pos = i;
    for (; pos > 0 && v > vals[pos - 1]; --pos) {
      vals[pos] = vals[pos - 1];
      ids[pos] = ids[pos - 1];
    }
    vals[pos] = v;
    ids[pos] = i;
  }
}

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__CUDACC__)
#define PGM_TOPK_X86 1
// row_top_k for 1 <= k <= 8 with AVX-512, on a row without NaN: the k listed values (as double:
// a float converts exactly, so order and ties are kept) and their indices live in one register
// each, sorted largest first, and each element after the first k is inserted without a branch:
// the lanes from its position on (those it beats: a suffix, the list being sorted) take it or
// their left neighbour, and the last one drops out. The scalar insertion mispredicts its test
// for each element it inserts (a third of a CEM population of 64, k = 8): 470 -> 300-380 ns a
// row (n = 16: 230 -> 125 ns); each step is a chain of ~14 cycles (compare, mask shift, blends).
// insert_lane8: one element into the sorted register list (the lanes in `lanes`).
__attribute__((target("avx512f,avx512dq"))) inline void insert_lane8(double x, index_t i, __mmask8 lanes, __m512i right,
                                                                     __m512d& top, __m512i& top_id) {
  const __m512d v = _mm512_set1_pd(x);
  const __mmask8 from = _mm512_mask_cmp_pd_mask(lanes, v, top, _CMP_GT_OQ);  // its position on
  const __mmask8 after = _kand_mask8(_kshiftli_mask8(from, 1), lanes);       // past its position
  const __m512d shifted = _mm512_permutexvar_pd(right, top);
  const __m512i shifted_id = _mm512_permutexvar_epi64(right, top_id);
  top = _mm512_mask_blend_pd(after, _mm512_mask_blend_pd(from, top, v), shifted);
  top_id = _mm512_mask_blend_epi64(after, _mm512_mask_blend_epi64(from, top_id, _mm512_set1_epi64(i)), shifted_id);
}

// Rows at once (R of them, each with its own list): R independent chains, which the core
// overlaps (a row's step waits on its previous one). A CEM update at the demo size (B = 4 rows
// of 64, k = 8): ~1.2 -> ~0.4 us with R = 4.
template <int R, class T>
__attribute__((target("avx512f,avx512dq"))) void insert_top_k8_avx512_rows(const T* const* x, index_t n, index_t k,
                                                                           std::int64_t* const* idx) {
  const index_t first = n < k ? n : k;
  const __m512i right = _mm512_setr_epi64(0, 0, 1, 2, 3, 4, 5, 6);  // lane j <- lane j - 1
  const __mmask8 lanes = static_cast<__mmask8>((1u << k) - 1);
  __m512d top[R];
  __m512i top_id[R];
  for (int r = 0; r < R; ++r) {
    alignas(64) double vals[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    alignas(64) std::int64_t ids[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    insert_first(x[r], first, vals, ids);
    top[r] = _mm512_load_pd(vals);
    top_id[r] = _mm512_load_si512(ids);
  }
  for (index_t i = first; i < n; ++i)
    for (int r = 0; r < R; ++r) insert_lane8(static_cast<double>(x[r][i]), i, lanes, right, top[r], top_id[r]);
  for (int r = 0; r < R; ++r) {
    alignas(64) std::int64_t ids[8];
    _mm512_store_si512(ids, top_id[r]);
    for (index_t j = 0; j < k; ++j) idx[r][j] = ids[j];
  }
}

template <class T>
__attribute__((target("avx512f,avx512dq"))) void insert_top_k8_avx512(const T* x, index_t n, index_t k,
                                                                      std::int64_t* idx) {
  insert_top_k8_avx512_rows<1>(&x, n, k, &idx);
}

// Where the AVX-512 insertion runs: the insertion test fails often (n <= 8 k: over a third of
// the elements get inserted); on longer rows most elements stop at the scalar test, which the
// branch-free step then loses to.
inline bool avx512_insertion_fits(index_t n, index_t k) {
  return k <= 8 && k <= n && n <= 8 * k && cpu::isa() >= cpu::ISA_AVX512;
}

template <class T>
bool has_nan(const T* x, index_t n) {
  bool nan = false;  // an OR of comparisons: vectorised, where an early exit is not
  for (index_t i = 0; i < n; ++i) nan |= x[i] != x[i];
  return nan;
}
#endif

// row_top_k on the host for k <= INSERTION_MAX_K, the same comparisons in the same order, with
// the listed values kept beside their indices: a step of an insertion then compares against a
// value in L1 instead of loading it through idx (a dependent load per step): 10-15% faster on
// rows of 64 or 1000 with k = 8. What remains is mispredicted branches (an insertion each time a
// value beats the k-th); a branch-free scalar insertion and an O(n^2) ranking were both slower,
// the AVX-512 insertion above is faster on short rows. 1 <= k <= n (callers check).
template <class T>
void insert_top_k(const T* x, index_t n, index_t k, std::int64_t* idx) {
#ifdef PGM_TOPK_X86
  if (avx512_insertion_fits(n, k) && !has_nan(x, n)) {
    insert_top_k8_avx512(x, n, k, idx);
    return;
  }
#endif
  T vals[INSERTION_MAX_K];
  const index_t first = n < k ? n : k;
  insert_first(x, first, vals, idx);
  for (index_t i = first; i < n; ++i) {  // the k listed: most elements stop at the k-th value
    const T v = x[i];
    if (!(v > vals[k - 1])) continue;
    index_t pos = k - 1;
    for (; pos > 0 && v > vals[pos - 1]; --pos) {
      vals[pos] = vals[pos - 1];
      idx[pos] = idx[pos - 1];
    }
    vals[pos] = v;
    idx[pos] = i;
  }
}

// insert_top_k on `rows` rows of n (idx: rows x k), the rows that take the AVX-512 insertion
// four at a time (the same lists: each row's own insertion).
template <class T>
void insert_top_k_rows(const T* x, index_t rows, index_t n, index_t k, std::int64_t* idx) {
#ifdef PGM_TOPK_X86
  if (rows > 1 && avx512_insertion_fits(n, k)) {
    const T* xs[4];
    std::int64_t* is[4];
    int m = 0;
    for (index_t r = 0; r < rows; ++r) {
      if (has_nan(x + r * n, n)) {  // (the scalar row's NaN order)
        insert_top_k(x + r * n, n, k, idx + r * k);
        continue;
      }
      xs[m] = x + r * n;
      is[m] = idx + r * k;
      if (++m == 4) {
        insert_top_k8_avx512_rows<4>(xs, n, k, is);
        m = 0;
      }
    }
    for (int j = 0; j < m; ++j) insert_top_k8_avx512(xs[j], n, k, is[j]);
    return;
  }
#endif
  for (index_t r = 0; r < rows; ++r) insert_top_k(x + r * n, n, k, idx + r * k);
}

// The value of rank r (0 = the largest) among v[0..n), n > r, no NaN; v and tmp: n entries
// each, clobbered. Quickselect whose three-way partitions (above / equal to / below a
// median-of-three pivot) are branch-free: on random data std::nth_element mispredicts about
// half of its comparisons (W9b's update, 100 of 1000 per row: 3.5 -> 2.7 ms). Equal values end a
// step, so ties cannot stall it; after 2 log2(n) steps (an input that defeats the pivot) the
// rest goes to std::nth_element, so the worst case stays O(n log n).
template <class T>
T value_of_rank(T* v, T* tmp, index_t n, index_t r) {
  T *src = v, *dst = tmp;
  int budget = 0;
  for (index_t m = n; m > 1; m /= 2) budget += 2;
  for (; n > 32 && budget > 0; --budget) {
    const T a = src[0], b = src[n / 2], c = src[n - 1];
    const T p = std::max(std::min(a, b), std::min(std::max(a, b), c));
    index_t hi = 0, lo = 0;  // above p: dst[0, hi); below p: dst[n - lo, n)
    for (index_t i = 0; i < n; ++i) {
      const T x = src[i];
      dst[hi] = x;
      dst[n - 1 - lo] = x;  // never below hi: hi + lo <= i < n
      hi += x > p;
      lo += x < p;
    }
    if (r < hi) {
      n = hi;
    } else if (r < n - lo) {
      return p;
    } else {
      r -= n - lo;
      dst += n - lo;
      n = lo;
    }
    std::swap(src, dst);  // the part kept is the next source; the old source (>= n entries) is scratch
  }
  std::nth_element(src, src + r, src + n, std::greater<T>());
  return src[r];
}

// row_top_k's answer for any k (host): the k-th largest value by value_of_rank on a copy of
// the row (scratch: 2 n entries), then every index above it, then the lowest indices equal to
// it until there are k, sorted by topk::before. A row holding NaN (which the Python layer
// rejects) goes to row_top_k, which never ranks NaN first.
template <class T>
void select_top_k(const T* x, index_t n, index_t k, std::int64_t* idx, T* scratch) {
  bool nan = false;
  if (k > INSERTION_MAX_K)
    for (index_t i = 0; i < n; ++i) {
      scratch[i] = x[i];
      nan |= x[i] != x[i];
    }
  if (k <= INSERTION_MAX_K) {
    insert_top_k(x, n, k, idx);
    return;
  }
  if (nan) {
    row_top_k(x, n, k, idx);
    return;
  }
  const T kth = value_of_rank(scratch, scratch + n, n, k - 1);
  index_t c = 0;
  for (index_t i = 0; i < n; ++i)
    if (x[i] > kth) idx[c++] = i;
  for (index_t i = 0; i < n && c < k; ++i)  // c < k here: the k-th value itself is not above it
    if (x[i] == kth) idx[c++] = i;
  std::sort(idx, idx + k, [x](std::int64_t a, std::int64_t b) { return before(x[a], a, x[b], b); });
}

// Below this many elements a call stays on the calling thread (waking the pool costs more than
// a small selection; see pygenmod/_threads.py).
constexpr index_t TOPK_PAR_MIN = index_t(1) << 15;

template <class T>
void top_k_cpu(const T* x, index_t rows, index_t n, index_t k, std::int64_t* idx) {
  const bool par = rows * n > TOPK_PAR_MIN;
  if (k <= INSERTION_MAX_K) {  // groups of 4 rows (insert_top_k_rows)
    const index_t groups = (rows + 3) / 4;
    parallel_for(groups, share_chunk(groups), par, [&](index_t g) {
      const index_t r0 = 4 * g;
      insert_top_k_rows(x + r0 * n, std::min<index_t>(4, rows - r0), n, k, idx + r0 * k);
    });
    return;
  }
  auto scratch = slot_buffers<T>(2 * n);
  parallel_for_slots(rows, share_chunk(rows), par, scratch,
                     [&](index_t r, std::vector<T>& s) { select_top_k(x + r * n, n, k, idx + r * k, s.data()); });
}

}  // namespace pygenmod::topk
