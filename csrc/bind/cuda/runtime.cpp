// _cuda_runtime: device queries. Imports without a GPU; reports zero devices there.
#include <pybind11/pybind11.h>

#include "runtime.cuh"

namespace py = pybind11;
using namespace pybind11::literals;

PYBIND11_MODULE(_cuda_runtime, m) {
  m.doc() = "pygenmod CUDA runtime queries";
  m.def("device_count", &pygenmod::cuda::device_count);
  m.def("runtime_version", &pygenmod::cuda::runtime_version);
  m.def(
      "probe",
      [] {
        auto p = pygenmod::cuda::probe();
        return py::dict("count"_a = p.count, "error"_a = p.error, "message"_a = p.message,
                        "driver_version"_a = p.driver_version, "runtime_version"_a = p.runtime_version);
      },
      "Device count, or the CUDA error (name, message) that stopped the count; driver and runtime versions.");
  m.def("device_info", [](int device) {
    auto d = pygenmod::cuda::device_info(device);
    return py::dict("name"_a = d.name, "compute_capability"_a = py::make_tuple(d.major, d.minor),
                    "multiprocessors"_a = d.multiprocessors, "total_memory"_a = d.total_memory);
  });
  m.def("sync_after_launch", &pygenmod::cuda::sync_after_launch_enabled,
        "True when PYGENMOD_CUDA_SYNC is set (synchronise and check after every launch; debug).");
}
