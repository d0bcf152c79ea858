// Top-k three ways: insertion (row_top_k, the thread-per-row GPU path; insert_top_k, the CPU's
// small k, the same with the values kept beside the indices),
// selection (select_top_k, the CPU's large k: quickselect on values, then the indices) and
// ranking (rank_in_row, the block-per-row GPU path) give the same indices, ties and infinities
// included; and all agree with a sort by (value descending, index ascending).
#include <algorithm>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "check.hpp"
#include "pygenmod/topk.hpp"

namespace topk = pygenmod::topk;
using pygenmod::index_t;

template <class T>
void agree(std::mt19937& gen, index_t n, index_t k, int levels) {
  std::uniform_int_distribution<int> pick(0, levels - 1);
  std::vector<T> x(n);
  for (auto& v : x) {
    const int l = pick(gen);  // few levels: many ties
    v = l == 0 ? -std::numeric_limits<T>::infinity() : l == 1 ? std::numeric_limits<T>::infinity() : T(l) * T(0.25);
  }
  std::vector<std::int64_t> ins(k), sel(k), by_rank(k, -1), want(n), kept(k);
  std::vector<T> scratch(2 * n);
  topk::row_top_k(x.data(), n, k, ins.data());
  if (k <= topk::INSERTION_MAX_K) {
    topk::insert_top_k(x.data(), n, k, kept.data());
    CHECK(kept == ins);
  }
  topk::select_top_k(x.data(), n, k, sel.data(), scratch.data());
  for (index_t i = 0; i < n; ++i) {
    const index_t r = topk::rank_in_row(x.data(), n, i);
    if (r < k) by_rank[r] = i;
  }
  std::iota(want.begin(), want.end(), std::int64_t(0));
  std::stable_sort(want.begin(), want.end(), [&](std::int64_t a, std::int64_t b) { return x[a] > x[b]; });
  for (index_t j = 0; j < k; ++j) {
    CHECK(ins[j] == want[j]);
    CHECK(sel[j] == want[j]);
    CHECK(by_rank[j] == want[j]);
  }
}

// select_top_k against row_top_k on ordered inputs (ascending, descending, organ pipe,
// sawtooth: the shapes that defeat a simple pivot choice) and on rows holding NaN (row_top_k's
// answer: NaN never ranks first).
void ordered_and_nan(index_t n, index_t k) {
  std::vector<double> x(n), scratch(2 * n);
  std::vector<std::int64_t> ins(k), sel(k);
  for (int shape = 0; shape < 5; ++shape) {
    for (index_t i = 0; i < n; ++i) {
      const double f = double(i);
      x[i] = shape == 0 ? f : shape == 1 ? -f : shape == 2 ? double(std::min(i, n - 1 - i)) : double(i % 7);
      if (shape == 4) x[i] = i % 5 == 2 ? std::numeric_limits<double>::quiet_NaN() : double(i % 3);
    }
    topk::row_top_k(x.data(), n, k, ins.data());
    topk::select_top_k(x.data(), n, k, sel.data(), scratch.data());
    CHECK(ins == sel);
    for (index_t small : {index_t(1), index_t(5), topk::INSERTION_MAX_K}) {  // insert_top_k, NaN rows too
      std::vector<std::int64_t> a(small), b(small);
      topk::row_top_k(x.data(), n, small, a.data());
      topk::insert_top_k(x.data(), n, small, b.data());
      CHECK(a == b);
    }
  }
}

// The AVX-512 insertion (k <= 8) against row_top_k: random rows with few levels (ties), both
// infinities, every k up to 8 and rows up to 8 k long; rows with NaN go back to the scalar path.
template <class T>
void simd_insertion(std::mt19937& gen) {
  for (index_t k = 1; k <= 8; ++k)
    for (index_t n : {index_t(1), k, k + 1, 2 * k, 8 * k, 8 * k + 1})
      for (int levels : {2, 5, 1000})
        for (int rep = 0; rep < 20; ++rep) {
          std::uniform_int_distribution<int> pick(0, levels - 1);
          std::vector<T> x(n);
          for (auto& v : x) {
            const int l = pick(gen);
            v = l == 0 ? -std::numeric_limits<T>::infinity() : l == 1 ? std::numeric_limits<T>::infinity() : T(l);
          }
          if (rep == 19) x[n / 2] = std::numeric_limits<T>::quiet_NaN();
          const index_t kk = std::min(k, n);
          std::vector<std::int64_t> want(kk), got(kk);
          topk::row_top_k(x.data(), n, kk, want.data());
          topk::insert_top_k(x.data(), n, kk, got.data());
          CHECK(got == want);
#ifdef PGM_TOPK_X86
          if (pygenmod::cpu::detected_isa() >= pygenmod::cpu::ISA_AVX512 && rep < 19) {
            std::vector<std::int64_t> simd(kk);
            topk::insert_top_k8_avx512(x.data(), n, kk, simd.data());
            CHECK(simd == want);
          }
#endif
        }
}

// Rows in groups of four (insert_top_k_rows, top_k_cpu): every row's list equals its own
// row_top_k, for row counts around the group size, with NaN rows (the scalar path) among them.
template <class T>
void grouped_rows(std::mt19937& gen) {
  for (index_t k : {index_t(1), index_t(3), index_t(8)})
    for (index_t n : {k, 2 * k, 8 * k})
      for (index_t rows : {1, 2, 3, 4, 5, 8, 9})
        for (int with_nan : {0, 1}) {
          std::uniform_int_distribution<int> pick(0, 4);
          std::vector<T> x(static_cast<std::size_t>(rows * n));
          for (auto& v : x) v = T(pick(gen));
          if (with_nan) x[static_cast<std::size_t>((rows / 2) * n + n / 2)] = std::numeric_limits<T>::quiet_NaN();
          std::vector<std::int64_t> got(static_cast<std::size_t>(rows * k)), all(got.size()), want(k);
          topk::insert_top_k_rows(x.data(), rows, n, k, got.data());
          topk::top_k_cpu(x.data(), rows, n, k, all.data());
          for (index_t r = 0; r < rows; ++r) {
            topk::row_top_k(x.data() + r * n, n, k, want.data());
            CHECK(std::equal(want.begin(), want.end(), got.begin() + r * k));
            CHECK(std::equal(want.begin(), want.end(), all.begin() + r * k));
          }
        }
}

int main() {
  std::mt19937 gen(7);
  for (index_t n : {1, 2, 5, 33, 64, 257, 1000})
    for (index_t k : {index_t(1), n / 2 > 0 ? n / 2 : index_t(1), n > 1 ? n - 1 : n, n})  // k = 0 never reaches a row
      for (int levels : {2, 5, 1000}) {
        agree<float>(gen, n, k, levels);
        agree<double>(gen, n, k, levels);
      }
  for (index_t n : {33, 100, 4096})
    for (index_t k : {index_t(17), n / 3, n}) ordered_and_nan(n, k);
  simd_insertion<float>(gen);
  simd_insertion<double>(gen);
  grouped_rows<float>(gen);
  grouped_rows<double>(gen);
  return check::finish("test_topk");
}
