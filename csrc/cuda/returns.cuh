// Host-side declaration of the CUDA GAE launcher (no device code here).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "pygenmod/common.hpp"

namespace pygenmod::cuda {
// GAE / lambda-return scan over (T, B), one thread per environment (see returns.hpp).
template <class T, class F>
void gae(const T* r, const T* values, const T* next_values, const T* bootstrap, const F* terminated, const F* truncated,
         const F* mask, const T* gamma, const T* lam, index_t Tn, index_t B, T* adv, T* ret, std::uint8_t* nonfinite,
         cudaStream_t stream);
}  // namespace pygenmod::cuda
