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

inline DeviceArray device_array(const py::object& obj, const char* name) {
  if (!py::hasattr(obj, "__cuda_array_interface__"))
    throw std::invalid_argument(std::string(name) + ": expected a CUDA array (CuPy or DLPack)");
  py::dict cai = obj.attr("__cuda_array_interface__");
  DeviceArray a;
  py::tuple data = cai["data"];
  a.ptr = reinterpret_cast<void*>(data[0].cast<std::uintptr_t>());
  a.readonly = data[1].cast<bool>();
  a.shape = cai["shape"].cast<std::vector<py::ssize_t>>();
  a.typestr = cai["typestr"].cast<std::string>();
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

template <class T> const char* typestr_of();
template <> inline const char* typestr_of<float>() { return "<f4"; }
template <> inline const char* typestr_of<double>() { return "<f8"; }
template <> inline const char* typestr_of<std::int64_t>() { return "<i8"; }
template <> inline const char* typestr_of<std::int32_t>() { return "<i4"; }
template <> inline const char* typestr_of<std::uint32_t>() { return "<u4"; }
template <> inline const char* typestr_of<std::uint8_t>() { return "|u1"; }

template <class T>
T* device_ptr(const py::object& obj, const char* name, std::initializer_list<py::ssize_t> shape,
              bool writable = false) {
  DeviceArray a = device_array(obj, name);
  if (a.typestr != typestr_of<T>())
    throw std::invalid_argument(std::string(name) + ": wrong dtype " + a.typestr);
  if (a.shape.size() != shape.size())
    throw std::invalid_argument(std::string(name) + ": wrong number of dimensions");
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

inline std::string device_typestr(const py::object& obj, const char* name) {
  return device_array(obj, name).typestr;
}

inline cudaStream_t as_stream(std::uintptr_t s) { return reinterpret_cast<cudaStream_t>(s); }

}  // namespace pygenmod::bind
