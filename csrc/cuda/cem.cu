// CUDA batched top-k: one thread per row, the row math of pygenmod/topk.hpp.
#include "cem.cuh"
#include "cuda_check.cuh"
#include "pygenmod/topk.hpp"

namespace pygenmod::cuda {

template <class T>
__global__ void top_k_kernel(const T* x, index_t rows, index_t n, index_t k, std::int64_t* idx) {
  const index_t r = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x;
  if (r < rows) topk::row_top_k(x + r * n, n, k, idx + r * k);
}

template <class T>
void top_k(const T* x, index_t rows, index_t n, index_t k, std::int64_t* idx, cudaStream_t stream) {
  if (rows == 0 || k == 0) return;
  top_k_kernel<T><<<blocks_for(rows, 128), 128, 0, stream>>>(x, rows, n, k, idx);
  check_launch("top_k");
}

template void top_k<float>(const float*, index_t, index_t, index_t, std::int64_t*, cudaStream_t);
template void top_k<double>(const double*, index_t, index_t, index_t, std::int64_t*, cudaStream_t);

}  // namespace pygenmod::cuda
