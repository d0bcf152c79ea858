// z = m + L e for one lower-triangular L (row-major D x D) on the CPU, in vector passes, with
// the validity checks of a sample-only draw riding on the same pass (mvn_head_cpu's fused path).
//
// The sums are dot8's (sampling.hpp): lane l of row i adds L_i,k+l e_k+l over the 8-aligned
// chunks k <= i in order, products and sums rounded separately (no FMA), then the tree
// ((p0 + p4) + (p1 + p5)) + ((p2 + p6) + (p3 + p7)). So every ISA gives these bits, and the
// serial dot8 compiled with the package's default flags (no -march=native) too; the device
// sums its own way (within rounding: docs/gpu.md). The entries above the diagonal are never
// used (they may hold anything); the chunk that holds the diagonal is masked to the lower
// triangle.
//
// The serial version (one row at a time, 8 scalar partial sums) ran at about a quarter of the
// FMA rate: GCC vectorised it across chunks with permutes and spilled the sums (2 x 128 float64
// rows: 21 us against NumPy's 8 for L @ e). Here each entry point keeps R rows' sums in
// registers and loads each chunk of e once for them.
#pragma once

#include <cstdint>
#include <type_traits>

#include "pygenmod/common.hpp"
#include "pygenmod/cpu_features.hpp"
#include "pygenmod/vecmath.hpp"

namespace pygenmod::sampling::tril_cpu {

#define PGM_TRIL_INLINE inline __attribute__((always_inline))

// Eight lanes of T (dot8's partial sums): one AVX-512 register of float64, two AVX2 ones; GCC
// splits it into the entry point's native width.
template <class T>
struct lanes8 {
  typedef T type __attribute__((vector_size(8 * sizeof(T))));
  typedef std::conditional_t<sizeof(T) == 8, std::int64_t, std::int32_t> bits_t;
  typedef bits_t bits __attribute__((vector_size(8 * sizeof(T))));
};

// Row n: lanes 0..n set (the lower triangle of a diagonal chunk in the chunk's row n).
template <class T>
PGM_TRIL_INLINE typename lanes8<T>::bits lower_mask(index_t n) {
  using B = typename lanes8<T>::bits_t;
  alignas(64) static const B tri[8][8] = {{-1, 0, 0, 0, 0, 0, 0, 0},       {-1, -1, 0, 0, 0, 0, 0, 0},
                                          {-1, -1, -1, 0, 0, 0, 0, 0},     {-1, -1, -1, -1, 0, 0, 0, 0},
                                          {-1, -1, -1, -1, -1, 0, 0, 0},   {-1, -1, -1, -1, -1, -1, 0, 0},
                                          {-1, -1, -1, -1, -1, -1, -1, 0}, {-1, -1, -1, -1, -1, -1, -1, -1}};
  return vm::load<typename lanes8<T>::bits>(tri[n]);
}

// The 8-chunk of row r of L at column k: where it runs past column D it is read whole when it
// stays inside the matrix (the lanes past D are masked by the caller), else zero-padded.
template <class V, class T>
PGM_TRIL_INLINE V load_chunk(const T* L, index_t D, index_t r, index_t k) {
  const T* p = L + r * D + k;
  if (k + 8 <= D || r * D + k + 8 <= D * D) return vm::load<V>(p);
  V x = {};
  for (index_t l = 0; k + l < D; ++l) x[l] = p[l];
  return x;
}

// Rows i0 .. i0 + R - 1 (R divides 8, i0 % R == 0: the rows share the diagonal chunk kb). e_end
// is e's last chunk, zero-padded; up gathers the bits of the entries above the diagonal when
// check_upper.
template <class T, int R>
PGM_TRIL_INLINE void rows(const T* __restrict L, const T* __restrict m, const T* __restrict e,
                          const typename lanes8<T>::type& e_end, index_t D, index_t i0, bool check_upper,
                          T* __restrict z, T* __restrict dots, typename lanes8<T>::bits& up, int& diag_bad) {
  using V = typename lanes8<T>::type;
  using VI = typename lanes8<T>::bits;
  const index_t kb = i0 / 8 * 8;
  const index_t k_end = (D - 1) / 8 * 8;           // the last chunk
  const VI in_end = lower_mask<T>(D - 1 - k_end);  // its lanes before column D
  V p[R];
  for (int r = 0; r < R; ++r) {
    p[r] = V{};
    diag_bad |= !(L[(i0 + r) * D + i0 + r] > T(0));
  }
  for (index_t k = 0; k < kb; k += 8) {
    const V ek = vm::load<V>(e + k);
    for (int r = 0; r < R; ++r) p[r] += vm::load<V>(L + (i0 + r) * D + k) * ek;
  }
  const V ek = kb == k_end ? e_end : vm::load<V>(e + kb);
  for (int r = 0; r < R; ++r) {
    const VI low = lower_mask<T>(i0 + r - kb);
    const VI a = vm::bitcast<VI>(load_chunk<V>(L, D, i0 + r, kb));
    p[r] += vm::bitcast<V>(a & low) * vm::bitcast<V>(vm::bitcast<VI>(ek) & low);  // (+0 masked, as dot8)
    if (check_upper) up |= a & ~low & (kb == k_end ? in_end : ~VI{});
    const V s = p[r];
    dots[r] = ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
    z[i0 + r] = m[i0 + r] + dots[r];
  }
  if (check_upper && kb < k_end) {
    for (index_t k = kb + 8; k < k_end; k += 8)
      for (int r = 0; r < R; ++r) up |= vm::bitcast<VI>(vm::load<V>(L + (i0 + r) * D + k));
    for (int r = 0; r < R; ++r) up |= vm::bitcast<VI>(load_chunk<V>(L, D, i0 + r, k_end)) & in_end;
  }
}

// The whole matrix: returns sum L_ij * 0 over the lower triangle (NaN iff an entry is not
// finite); *diag_bad when a diagonal entry is not > 0, *upper_bad (when not null) when an entry
// above the diagonal is not zero (NaN counts). A non-finite entry makes its row's dot
// non-finite, so the lower triangle is scanned again only when a dot is.
template <class T>
PGM_TRIL_INLINE T matvec(const T* L, const T* m, const T* e, index_t D, T* z, int* diag_bad, int* upper_bad) {
  using VI = typename lanes8<T>::bits;
  VI up = {};
  int bad = 0;
  T dots[4], finite = 0;  // sum of dot * 0
  const bool check_upper = upper_bad != nullptr;
  typename lanes8<T>::type e_end = {};
  for (index_t k = (D - 1) / 8 * 8, l = 0; k + l < D; ++l) e_end[l] = e[k + l];
  index_t i = 0;
  for (; i + 4 <= D; i += 4) {
    rows<T, 4>(L, m, e, e_end, D, i, check_upper, z, dots, up, bad);
    finite += ((dots[0] + dots[1]) + (dots[2] + dots[3])) * T(0);
  }
  for (; i < D; ++i) {
    rows<T, 1>(L, m, e, e_end, D, i, check_upper, z, dots, up, bad);
    finite += dots[0] * T(0);
  }
  *diag_bad = bad;
  if (upper_bad) {
    const VI abs_bits = vm::splat<VI>(~(typename lanes8<T>::bits_t(1) << (8 * sizeof(T) - 1)));
    up &= abs_bits;  // -0 is zero
    bool any = false;
    for (int l = 0; l < 8; ++l) any = any || up[l] != 0;
    *upper_bad = any;
  }
  if (finite == T(0)) return T(0);
  T chk = 0;
  for (index_t r = 0; r < D; ++r)
    for (index_t j = 0; j <= r; ++j) chk += L[r * D + j] * T(0);
  return chk;
}

// Entry points per ISA (cpu_features.hpp).
#ifdef PGM_ISA_ENTRIES
template <class T>
PGM_ENTRY_AVX512 T matvec_avx512(const T* L, const T* m, const T* e, index_t D, T* z, int* diag_bad, int* upper_bad) {
  return matvec<T>(L, m, e, D, z, diag_bad, upper_bad);
}
template <class T>
PGM_ENTRY_AVX2 T matvec_avx2(const T* L, const T* m, const T* e, index_t D, T* z, int* diag_bad, int* upper_bad) {
  return matvec<T>(L, m, e, D, z, diag_bad, upper_bad);
}
#endif
template <class T>
PGM_ENTRY_BASE T matvec_base(const T* L, const T* m, const T* e, index_t D, T* z, int* diag_bad, int* upper_bad) {
  return matvec<T>(L, m, e, D, z, diag_bad, upper_bad);
}
#undef PGM_TRIL_INLINE

}  // namespace pygenmod::sampling::tril_cpu

namespace pygenmod::sampling {

// z = m + L e in dot8's order (see the top of this file), the entry point of this CPU's ISA.
template <class T>
inline T tril_matvec_fused(const T* L, const T* m, const T* e, index_t D, T* z, int* diag_bad,
                           int* upper_bad = nullptr) {
#ifdef PGM_ISA_ENTRIES
  const int isa = cpu::isa();
  if (isa == cpu::ISA_AVX512) return tril_cpu::matvec_avx512<T>(L, m, e, D, z, diag_bad, upper_bad);
  if (isa == cpu::ISA_AVX2) return tril_cpu::matvec_avx2<T>(L, m, e, D, z, diag_bad, upper_bad);
#endif
  return tril_cpu::matvec_base<T>(L, m, e, D, z, diag_bad, upper_bad);
}

}  // namespace pygenmod::sampling
