// Every CUDA runtime call goes through PGM_CUDA_CHECK: failures become C++ exceptions
// (pybind11 maps std::runtime_error to RuntimeError), never a silent wrong answer.
#pragma once

#include <cuda_runtime.h>

#include <cstdlib>
#include <stdexcept>
#include <string>

namespace pygenmod::cuda {

inline void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("pygenmod CUDA error in ") + what + ": " + cudaGetErrorName(err) + " (" +
                             cudaGetErrorString(err) + ")");
}

// PYGENMOD_CUDA_SYNC=1 (debug): synchronise the device after every launch, so that an
// asynchronous fault is reported by the launch that caused it, not by a later call.
// Read once per module; not for production (it serialises everything and breaks graph capture).
inline bool sync_after_launch() {
  static const bool on = [] {
    const char* e = std::getenv("PYGENMOD_CUDA_SYNC");
    return e != nullptr && *e != '\0' && std::string(e) != "0";
  }();
  return on;
}

// Checks the launch itself; kernels run asynchronously on the caller's stream.
inline void check_launch(const char* what) {
  check(cudaGetLastError(), what);
  if (sync_after_launch()) check(cudaDeviceSynchronize(), what);
}

// Blocks covering n threads; never 0 (a zero-block grid is a launch error, and every kernel
// returns early for threads past its n), so a launcher with nothing to do stays valid.
inline unsigned blocks_for(long long n, unsigned threads) {
  const long long b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b > 0 ? b : 1);
}

}  // namespace pygenmod::cuda

#define PGM_CUDA_CHECK(expr) ::pygenmod::cuda::check((expr), #expr)
