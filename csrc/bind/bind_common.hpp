// Helpers of the CPU binding modules (the array accessors are array_access.hpp's, policy
// HostArrays): the nogil launcher of the shared argument unpacking, Ctrl-C for compiled loops,
// and the one thread pool of the package.
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
#include "shared_pool.hpp"

namespace pygenmod::bind {
namespace py = pybind11;

// A launcher for the shared argument unpacking (args/*.hpp): f(pointers...) with the GIL released
// (its result, if any, returned).
template <class F>
auto nogil(F f) {
  return [f](auto... a) {
    py::gil_scoped_release release;
    return f(a...);
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
