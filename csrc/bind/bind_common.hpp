// Helpers shared by the pybind11 binding modules: checked raw pointers out of NumPy
// arrays and dtype dispatch. The Python layer validates user input; these checks are
// the last line that keeps C++ from reading or writing out of bounds.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <initializer_list>
#include <stdexcept>
#include <string>

namespace pygenmod::bind {
namespace py = pybind11;

inline std::string shape_str(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

// Checks dtype T, C-contiguity and the exact shape (-1 = any extent); returns the data pointer.
template <class T>
const T* in_ptr(const py::array& a, const char* name, std::initializer_list<py::ssize_t> shape) {
  // Equivalence (PyArray_EquivTypes), not identity: unpickled / memmapped arrays carry their
  // own dtype objects.
  if (!py::isinstance<py::array_t<T>>(a))
    throw std::invalid_argument(std::string(name) + ": wrong dtype for this kernel");
  if (!(a.flags() & py::array::c_style))
    throw std::invalid_argument(std::string(name) + ": must be C-contiguous");
  if (static_cast<size_t>(a.ndim()) != shape.size())
    throw std::invalid_argument(std::string(name) + ": expected " + std::to_string(shape.size()) +
                                " dimensions, got shape " + shape_str(a));
  py::ssize_t i = 0;
  for (auto n : shape) {
    if (n >= 0 && a.shape(i) != n)
      throw std::invalid_argument(std::string(name) + ": unexpected shape " + shape_str(a));
    ++i;
  }
  return static_cast<const T*>(a.data());
}

template <class T>
T* out_ptr(py::array& a, const char* name, std::initializer_list<py::ssize_t> shape) {
  in_ptr<T>(a, name, shape);
  if (!a.writeable()) throw std::invalid_argument(std::string(name) + ": output is read-only");
  return static_cast<T*>(a.mutable_data());
}

inline bool is_float64(const py::array& a) { return py::isinstance<py::array_t<double>>(a); }
inline bool is_float32(const py::array& a) { return py::isinstance<py::array_t<float>>(a); }

// Calls f.template operator()<T>() with T the dtype of `a` (float32 or float64).
template <class F>
auto dispatch_float(const py::array& a, const char* name, F&& f) {
  if (is_float64(a)) return f(double{});
  if (is_float32(a)) return f(float{});
  throw std::invalid_argument(std::string(name) + ": expected float32 or float64");
}

}  // namespace pygenmod::bind

namespace pygenmod::bind {
// An optional input: nullptr for None, else checked like in_ptr.
template <class T>
const T* in_ptr_or_null(const py::object& a, const char* name,
                        std::initializer_list<py::ssize_t> shape) {
  if (a.is_none()) return nullptr;
  if (!py::isinstance<py::array>(a))
    throw std::invalid_argument(std::string(name) + ": expected an array or None");
  return in_ptr<T>(py::reinterpret_borrow<py::array>(a), name, shape);
}
}  // namespace pygenmod::bind
