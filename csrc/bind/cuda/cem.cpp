// _cuda_cem: bindings of the CUDA top-k. Device arrays in, no math here.
#include "cem.cuh"
#include "cuda_array.hpp"

namespace py = pybind11;
using namespace pybind11::literals;
using namespace pygenmod;
using namespace pygenmod::bind;

template <class T>
static void run(const py::object& x, const py::object& idx, std::uintptr_t stream) {
  auto xs = device_shape(x, "x"), is = device_shape(idx, "idx");
  if (xs.size() != 2 || is.size() != 2) throw std::invalid_argument("x and idx must be 2-D");
  if (is[1] > xs[1]) throw std::invalid_argument("idx: k exceeds the row length");
  cuda::top_k<T>(device_ptr<T>(x, "x", {xs[0], xs[1]}), xs[0], xs[1], is[1],
                 device_ptr<std::int64_t>(idx, "idx", {xs[0], is[1]}, true), as_stream(stream));
}

PYBIND11_MODULE(_cuda_cem, m) {
  m.doc() = "pygenmod cross-entropy-method kernels (CUDA)";
  m.def(
      "top_k",
      [](py::object x, py::object idx, std::uintptr_t stream) {
        const auto t = device_typestr(x, "x");
        if (t == "<f8") return run<double>(x, idx, stream);
        if (t == "<f4") return run<float>(x, idx, stream);
        throw std::invalid_argument("x: expected float32 or float64");
      },
      "x"_a, "idx"_a, "stream"_a = 0);
}
