// The one thread pool of the package: _cpu_runtime owns it and hands it out as a capsule;
// every other module (the CPU families, the JAX FFI handlers) adopts it at import.
#pragma once

#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

#include "pygenmod/thread_pool.hpp"

namespace pygenmod::shared_pool {

// Every CPU module runs its loops on _cpu_runtime's pool (each module, a separate shared
// library, would otherwise have its own pool, thread count and workers). The name carries
// the layout's version: modules of one build always match.
inline constexpr const char* kCapsule = "pygenmod._cpu_runtime._pool.v3";
inline void adopt() {
  const pybind11::capsule cap = pybind11::module_::import("pygenmod._cpu_runtime").attr("_pool");
  if (std::string(cap.name()) != kCapsule) throw std::runtime_error("pygenmod._cpu_runtime: incompatible pool");
  threads::adopt_pool(static_cast<threads::Pool*>(cap.get_pointer()));
}

}  // namespace pygenmod::shared_pool
