// Shared definitions for the header-only kernels: host/device qualifiers and small
// numeric helpers. No Python here: these headers are compiled by g++ and nvcc alike.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#if defined(__CUDACC__)
#define PGM_HD __host__ __device__ __forceinline__
#else
#define PGM_HD inline
#endif

namespace pygenmod {

using index_t = std::int64_t;

template <class T>
PGM_HD T neg_inf() {
  return -std::numeric_limits<T>::infinity();
}

// Accumulator type: float64 sums for float32 data where the sum is long enough
// for float32 rounding to matter (reductions over a state axis, EM statistics).
template <class T>
struct acc_type {
  using type = double;
};
template <class T>
using acc_t = typename acc_type<T>::type;

}  // namespace pygenmod
