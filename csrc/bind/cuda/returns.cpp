// _cuda_returns: binding of the CUDA GAE launcher. Device arrays in, no math here; the argument
// unpacking is args/returns.hpp (shared with _cpu_returns).
#include "args/returns.hpp"
#include "cuda_array.hpp"
#include "returns.cuh"

namespace py = pybind11;
using namespace pybind11::literals;
using namespace pygenmod;
using namespace pygenmod::bind;

PYBIND11_MODULE(_cuda_returns, m) {
  m.doc() = "pygenmod returns (GAE), CUDA kernels";
  m.def(
      "gae",
      [](py::object r, py::object values, py::object next_values, py::object boot, py::object term, py::object trunc,
         py::object mask, py::object gamma, py::object lam, py::object adv, py::object ret, py::object status,
         std::uintptr_t stream) {
        args::gae<DeviceArrays>(r, values, next_values, boot, term, trunc, mask, gamma, lam, adv, ret, status,
                                [&](auto... a) { cuda::gae(a..., as_stream(stream)); });
      },
      "rewards"_a, "values"_a, "next_values"_a, "bootstrap"_a, "terminated"_a, "truncated"_a, "mask"_a, "gamma"_a,
      "lam"_a, "advantages"_a, "returns"_a, "status"_a, "stream"_a = 0);
}
