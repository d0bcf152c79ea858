// Host-side declarations of the CUDA Bellman launchers (no device code here).
#pragma once
#include <cuda_runtime.h>

#include "pygenmod/common.hpp"

namespace pygenmod::cuda {
template <class T>
void optimality_sweep_dense(const T* P, const T* R, const T* V, const T* gamma, index_t B,
                            index_t S, index_t A, T* Q, T* V_out, std::int64_t* policy,
                            cudaStream_t stream);
}  // namespace pygenmod::cuda
