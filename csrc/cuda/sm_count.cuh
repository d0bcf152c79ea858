// The current device's multiprocessor count, queried once per device and cached: the
// launchers size their grids with it (pygenmod/launch_grid.hpp) on every call.
#pragma once

#include <cuda_runtime.h>

#include <atomic>

#include "cuda_check.cuh"

namespace pygenmod::cuda {

inline int sm_count() {
  constexpr int kDevices = 64;
  static std::atomic<int> cache[kDevices] = {};  // 0: not queried yet
  int dev = 0;
  PGM_CUDA_CHECK(cudaGetDevice(&dev));
  if (dev >= 0 && dev < kDevices) {
    const int v = cache[dev].load(std::memory_order_relaxed);
    if (v > 0) return v;
  }
  int v = 0;
  PGM_CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev));
  if (v < 1) v = 1;
  if (dev >= 0 && dev < kDevices) cache[dev].store(v, std::memory_order_relaxed);
  return v;
}

}  // namespace pygenmod::cuda
