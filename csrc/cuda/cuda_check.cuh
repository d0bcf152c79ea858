// Every CUDA runtime call goes through PGM_CUDA_CHECK: failures become C++ exceptions
// (pybind11 maps std::runtime_error to RuntimeError), never a silent wrong answer.
#pragma once

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace pygenmod::cuda {

inline void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("pygenmod CUDA error in ") + what + ": " +
                             cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")");
}

// Checks the launch itself; kernels run asynchronously on the caller's stream.
inline void check_launch(const char* what) { check(cudaGetLastError(), what); }

inline unsigned blocks_for(long long n, unsigned threads) {
  return static_cast<unsigned>((n + threads - 1) / threads);
}

}  // namespace pygenmod::cuda

#define PGM_CUDA_CHECK(expr) ::pygenmod::cuda::check((expr), #expr)
