// Helpers of the CPU binding modules: the host accessors of array_access.hpp under the names
// the older bindings use (in_ptr, out_ptr, in_ptr_or_null, dispatch_float) and Ctrl-C for
// compiled loops.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "array_access.hpp"
#include "pygenmod/interrupt.hpp"

namespace pygenmod::bind {
namespace py = pybind11;

// The host accessors under their older names (array_access.hpp has the checks and messages).
// Checks dtype T, C-contiguity and the exact shape (-1 = any extent); returns the data pointer.
template <class T>
const T* in_ptr(const py::array& a, const char* name, Shape shape) {
  return in<HostArrays, T>(a, name, shape);
}

template <class T>
T* out_ptr(py::array& a, const char* name, Shape shape) {
  return out<HostArrays, T>(a, name, shape);
}

// An optional input: nullptr for None, else checked like in_ptr.
template <class T>
const T* in_ptr_or_null(const py::object& a, const char* name, Shape shape) {
  return in_or_null<HostArrays, T>(a, name, shape);
}

// Calls f(double{}) or f(float{}) by the dtype of `a` (float32 or float64).
template <class F>
auto dispatch_float(const py::array& a, const char* name, F&& f) {
  return dispatch_float<HostArrays>(a, name, std::forward<F>(f));
}

// A launcher for the shared argument unpacking (args/*.hpp): f(pointers...) with the GIL released.
template <class F>
auto nogil(F f) {
  return [f](auto... a) {
    py::gil_scoped_release release;
    f(a...);
  };
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
