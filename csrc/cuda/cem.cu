// CUDA batched top-k, the row math of pygenmod/topk.hpp. Rows of 32..4096 elements: one block
// per row, one thread per element computing its rank (the whole GPU works even for a few rows,
// reads are warp-wide broadcasts of one element); otherwise one thread per row (insertion).
#include "cem.cuh"
#include "cuda_check.cuh"
#include "pygenmod/topk.hpp"

namespace pygenmod::cuda {

// Ranking costs O(n) per element: beyond this row length insertion's O(n k) per row wins.
constexpr index_t RANK_MIN_N = 32, RANK_MAX_N = 4096;

template <class T>
__global__ void top_k_row_kernel(const T* x, index_t rows, index_t n, index_t k, std::int64_t* idx) {
  const index_t r = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x;
  if (r < rows) topk::row_top_k(x + r * n, n, k, idx + r * k);
}

template <class T>
__global__ void top_k_rank_kernel(const T* x, index_t n, index_t k, std::int64_t* idx) {
  const index_t row = blockIdx.x;
  for (index_t i = threadIdx.x; i < n; i += blockDim.x) {
    const index_t r = topk::rank_in_row(x + row * n, n, i);
    if (r < k) idx[row * k + r] = i;  // ranks are distinct: each slot written once
  }
}

template <class T>
void top_k(const T* x, index_t rows, index_t n, index_t k, std::int64_t* idx, cudaStream_t stream) {
  if (rows == 0 || k == 0) return;
  if (n >= RANK_MIN_N && n <= RANK_MAX_N && rows <= 0x7fffffff) {
    const unsigned threads = static_cast<unsigned>(n >= 256 ? 256 : (n + 31) / 32 * 32);
    top_k_rank_kernel<T><<<static_cast<unsigned>(rows), threads, 0, stream>>>(x, n, k, idx);
  } else {
    top_k_row_kernel<T><<<blocks_for(rows, 128), 128, 0, stream>>>(x, rows, n, k, idx);
  }
  check_launch("top_k");
}

template void top_k<float>(const float*, index_t, index_t, index_t, std::int64_t*, cudaStream_t);
template void top_k<double>(const double*, index_t, index_t, index_t, std::int64_t*, cudaStream_t);

}  // namespace pygenmod::cuda
