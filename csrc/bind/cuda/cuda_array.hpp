// Device arrays for the CUDA bindings, read from __cuda_array_interface__ (CuPy, PyTorch,
// Numba) by the DeviceArrays policy of array_access.hpp, which checks pointer, shape, dtype and
// contiguity with the host's messages; no host copy is made. Also: streams and scratch memory.
#pragma once

#include <cuda_runtime.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "array_access.hpp"

namespace pygenmod::bind {
namespace py = pybind11;

struct DeviceArray {
  void* ptr = nullptr;
  std::vector<py::ssize_t> shape;
  std::string typestr;  // e.g. "<f4", "<f8", "<i8"
  bool readonly = false;
  bool c_contiguous = true;
};

// Kernels run on the current device's stream: data on another GPU would be read through a
// foreign context (or fault). Check the pointer's device and say what to do instead.
inline void check_on_current_device(const void* ptr, const char* name) {
  if (ptr == nullptr) return;  // size-0 arrays may carry a null pointer
  cudaPointerAttributes attr{};
  cudaError_t err = cudaPointerGetAttributes(&attr, ptr);
  if (err != cudaSuccess) {
    cudaGetLastError();  // not a sticky error: clear it so no later check reports it
    throw std::invalid_argument(std::string(name) + ": not a CUDA device pointer (" + cudaGetErrorName(err) + ")");
  }
  if (attr.type == cudaMemoryTypeUnregistered)
    throw std::invalid_argument(std::string(name) + ": host memory, not a CUDA device array");
  if (attr.type != cudaMemoryTypeDevice && attr.type != cudaMemoryTypeManaged) return;  // pinned host memory
  int cur = -1;
  if (cudaGetDevice(&cur) != cudaSuccess) {
    cudaGetLastError();
    return;
  }
  if (attr.device != cur)
    throw std::invalid_argument(std::string(name) + ": array is on CUDA device " + std::to_string(attr.device) +
                                " but the current device is " + std::to_string(cur) +
                                "; call under `with cupy.cuda.Device(" + std::to_string(attr.device) + "):`");
}

// check_device: verify the pointer's device (pointer accesses do; shape/dtype queries need not).
inline DeviceArray device_array(const py::object& obj, const char* name, bool check_device = false) {
  if (!py::hasattr(obj, "__cuda_array_interface__"))
    throw std::invalid_argument(std::string(name) + ": expected a CUDA array (CuPy or DLPack)");
  py::dict cai = obj.attr("__cuda_array_interface__");
  DeviceArray a;
  py::tuple data = cai["data"];
  a.ptr = reinterpret_cast<void*>(data[0].cast<std::uintptr_t>());
  a.readonly = data[1].cast<bool>();
  a.shape = cai["shape"].cast<std::vector<py::ssize_t>>();
  a.typestr = cai["typestr"].cast<std::string>();
  if (check_device) check_on_current_device(a.ptr, name);
  if (cai.contains("strides") && !cai["strides"].is_none()) {
    auto strides = cai["strides"].cast<std::vector<py::ssize_t>>();
    py::ssize_t expect = std::stoi(a.typestr.substr(2));
    for (size_t i = a.shape.size(); i-- > 0;) {
      if (a.shape[i] > 1 && strides[i] != expect) a.c_contiguous = false;
      expect *= a.shape[i];
    }
  }
  return a;
}

// __cuda_array_interface__ arrays (what the CUDA bindings take): the policy of array_access.hpp.
struct DeviceArrays {
  static ArrayInfo info(const py::object& obj, const char* name, bool pointer) {
    DeviceArray d = device_array(obj, name, pointer);
    ArrayInfo i;
    i.ptr = d.ptr;
    if (d.shape.size() > Extents::kMax) throw std::invalid_argument(std::string(name) + ": more than 64 dimensions");
    i.shape.assign(d.shape.begin(), d.shape.end());
    i.dtype =
        d.typestr.size() >= 3 ? dtype_name(d.typestr[0], d.typestr[1], std::stoi(d.typestr.substr(2))) : d.typestr;
    i.c_contiguous = d.c_contiguous;
    i.writable = !d.readonly;
    return i;
  }
};

inline cudaStream_t as_stream(std::uintptr_t s) { return reinterpret_cast<cudaStream_t>(s); }

// Scratch memory from the caller's allocator: a CuPy byte array from CuPy's pool on the current
// device and stream (the stream the launch is queued on, see pygenmod._dispatch), so it is
// reused in stream order and counts against the caller's pool limits. Keep `owner` alive
// until the launch is queued.
struct Scratch {
  py::object owner;
  void* ptr = nullptr;
  std::size_t bytes = 0;
};

inline Scratch scratch(std::size_t bytes) {
  Scratch s;
  s.bytes = bytes;
  if (bytes == 0) return s;
  s.owner = py::module_::import("cupy").attr("empty")(py::int_(bytes), py::str("uint8"));
  s.ptr = device_array(s.owner, "scratch").ptr;
  return s;
}

}  // namespace pygenmod::bind
