#pragma once
#include <string>

namespace pygenmod::cuda {
struct DeviceInfo {
  std::string name;
  int major, minor, multiprocessors;
  long long total_memory;
};
int device_count();
DeviceInfo device_info(int device);
int runtime_version();
}  // namespace pygenmod::cuda
