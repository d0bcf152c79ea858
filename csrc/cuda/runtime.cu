// Device queries for `pygenmod info` and the dispatcher.
#include <string>

#include "cuda_check.cuh"
#include "runtime.cuh"

namespace pygenmod::cuda {

Probe probe() {
  Probe p;
  cudaRuntimeGetVersion(&p.runtime_version);
  if (cudaDriverGetVersion(&p.driver_version) != cudaSuccess) cudaGetLastError();
  const cudaError_t err = cudaGetDeviceCount(&p.count);
  if (err != cudaSuccess) {
    cudaGetLastError();
    p.count = 0;
    p.error = cudaGetErrorName(err);
    p.message = cudaGetErrorString(err);
  }
  return p;
}

int device_count() { return probe().count; }

DeviceInfo device_info(int device) {
  cudaDeviceProp prop{};
  PGM_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  return {prop.name, prop.major, prop.minor, prop.multiProcessorCount, static_cast<long long>(prop.totalGlobalMem)};
}

int runtime_version() {
  int v = 0;
  cudaRuntimeGetVersion(&v);
  return v;
}

bool sync_after_launch_enabled() { return sync_after_launch(); }

}  // namespace pygenmod::cuda
