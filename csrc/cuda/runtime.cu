// Device queries for `pygenmod info` and the dispatcher.
#include <string>

#include "cuda_check.cuh"
#include "runtime.cuh"

namespace pygenmod::cuda {

int device_count() {
  int n = 0;
  // No driver or no GPU: report zero devices instead of raising.
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

DeviceInfo device_info(int device) {
  cudaDeviceProp prop{};
  PGM_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  return {prop.name, prop.major, prop.minor, prop.multiProcessorCount,
          static_cast<long long>(prop.totalGlobalMem)};
}

int runtime_version() {
  int v = 0;
  cudaRuntimeGetVersion(&v);
  return v;
}

}  // namespace pygenmod::cuda
