#pragma once
#include <string>

namespace pygenmod::cuda {
struct DeviceInfo {
  std::string name;
  int major, minor, multiprocessors;
  long long total_memory;
};
// What cudaGetDeviceCount says: the count, or the error that stopped it (an old driver,
// cudaErrorInsufficientDriver, is not the same as "no device", cudaErrorNoDevice).
struct Probe {
  int count = 0;
  std::string error;    // "" on success, else the cudaError_t name
  std::string message;  // cudaGetErrorString of it
  int driver_version = 0, runtime_version = 0;
};
int device_count();
Probe probe();
DeviceInfo device_info(int device);
int runtime_version();
bool sync_after_launch_enabled();
}  // namespace pygenmod::cuda
