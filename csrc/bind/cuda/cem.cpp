// _cuda_cem: bindings of the CUDA top-k. Device arrays in, no math here; the argument unpacking
// is args/cem.hpp (shared with _cpu_cem).
#include "args/cem.hpp"
#include "cem.cuh"
#include "cuda_array.hpp"

namespace py = pybind11;
using namespace pybind11::literals;
using namespace pygenmod;
using namespace pygenmod::bind;

PYBIND11_MODULE(_cuda_cem, m) {
  m.doc() = "pygenmod cross-entropy-method kernels (CUDA)";
  m.def(
      "top_k",
      [](py::object x, py::object idx, std::uintptr_t stream) {
        args::top_k<DeviceArrays>(x, idx, [&](auto... a) { cuda::top_k(a..., as_stream(stream)); });
      },
      "x"_a, "idx"_a, "stream"_a = 0);
}
