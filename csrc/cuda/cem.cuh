#pragma once
#include <cuda_runtime.h>

#include "pygenmod/common.hpp"

namespace pygenmod::cuda {
template <class T>
void top_k(const T* x, index_t rows, index_t n, index_t k, std::int64_t* idx, cudaStream_t stream);
}
