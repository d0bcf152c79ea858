// _cuda_runtime: device queries. Imports without a GPU; reports zero devices there.
#include <pybind11/pybind11.h>

#include "runtime.cuh"

namespace py = pybind11;
using namespace pybind11::literals;

PYBIND11_MODULE(_cuda_runtime, m) {
  m.doc() = "pygenmod CUDA runtime queries";
  m.def("device_count", &pygenmod::cuda::device_count);
  m.def("runtime_version", &pygenmod::cuda::runtime_version);
  m.def("device_info", [](int device) {
    auto d = pygenmod::cuda::device_info(device);
    return py::dict("name"_a = d.name, "compute_capability"_a = py::make_tuple(d.major, d.minor),
                    "multiprocessors"_a = d.multiprocessors, "total_memory"_a = d.total_memory);
  });
}
