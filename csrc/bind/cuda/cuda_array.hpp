// Device arrays for the CUDA bindings, read from __cuda_array_interface__ (CuPy, PyTorch,
// Numba): pointer, shape, dtype and contiguity checked here; no host copy is made.
#pragma once

#include <cuda_runtime.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <vector>

namespace pygenmod::bind {
namespace py = pybind11;

struct DeviceArray {
  void* ptr = nullptr;
  std::vector<py::ssize_t> shape;
  std::string typestr;  // e.g. "<f4", "<f8", "<i8"
  bool readonly = false;
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

// check_device: verify the pointer's device (device_ptr does; shape/dtype queries need not).
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
      if (a.shape[i] > 1 && strides[i] != expect)
        throw std::invalid_argument(std::string(name) + ": must be C-contiguous");
      expect *= a.shape[i];
    }
  }
  return a;
}

template <class T>
const char* typestr_of();
template <>
inline const char* typestr_of<float>() {
  return "<f4";
}
template <>
inline const char* typestr_of<double>() {
  return "<f8";
}
template <>
inline const char* typestr_of<std::int64_t>() {
  return "<i8";
}
template <>
inline const char* typestr_of<std::int32_t>() {
  return "<i4";
}
template <>
inline const char* typestr_of<std::uint32_t>() {
  return "<u4";
}
template <>
inline const char* typestr_of<std::uint8_t>() {
  return "|u1";
}

template <class T>
T* device_ptr(const py::object& obj, const char* name, std::initializer_list<py::ssize_t> shape,
              bool writable = false) {
  DeviceArray a = device_array(obj, name, true);
  if (a.typestr != typestr_of<T>()) throw std::invalid_argument(std::string(name) + ": wrong dtype " + a.typestr);
  if (a.shape.size() != shape.size()) throw std::invalid_argument(std::string(name) + ": wrong number of dimensions");
  size_t i = 0;
  for (auto n : shape) {
    if (n >= 0 && a.shape[i] != n) throw std::invalid_argument(std::string(name) + ": wrong shape");
    ++i;
  }
  if (writable && a.readonly) throw std::invalid_argument(std::string(name) + ": read-only");
  return static_cast<T*>(a.ptr);
}

inline std::vector<py::ssize_t> device_shape(const py::object& obj, const char* name) {
  return device_array(obj, name).shape;
}

inline std::string device_typestr(const py::object& obj, const char* name) { return device_array(obj, name).typestr; }

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
