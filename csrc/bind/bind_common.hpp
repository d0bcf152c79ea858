// Helpers shared by the pybind11 binding modules: checked raw pointers out of NumPy
// arrays and dtype dispatch. The Python layer validates user input; these checks are
// the last line that keeps C++ from reading or writing out of bounds.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>

#include "pygenmod/interrupt.hpp"

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
  if (!(a.flags() & py::array::c_style)) throw std::invalid_argument(std::string(name) + ": must be C-contiguous");
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
const T* in_ptr_or_null(const py::object& a, const char* name, std::initializer_list<py::ssize_t> shape) {
  if (a.is_none()) return nullptr;
  if (!py::isinstance<py::array>(a)) throw std::invalid_argument(std::string(name) + ": expected an array or None");
  return in_ptr<T>(py::reinterpret_borrow<py::array>(a), name, shape);
}
}  // namespace pygenmod::bind

namespace pygenmod::bind {
// Ctrl-C for a compiled loop: a Stop whose hook runs PyErr_CheckSignals under a briefly
// re-acquired GIL. Make it with the GIL held (before gil_scoped_release), pass stop() to the
// launcher, then call rethrow() with the GIL held again: it raises what the signal handler
// raised (KeyboardInterrupt), so no result of an interrupted loop is ever returned.
class Interruptible {
 public:
  Interruptible() : stop_(&Interruptible::check, this) {}
  Stop& stop() { return stop_; }
  void rethrow() {
    if (error_) throw *error_;
  }

 private:
  static bool check(void* self) {
    py::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() == 0) return false;
    static_cast<Interruptible*>(self)->error_ = std::make_unique<py::error_already_set>();
    return true;
  }
  Stop stop_;
  std::unique_ptr<py::error_already_set> error_;
};
}  // namespace pygenmod::bind
