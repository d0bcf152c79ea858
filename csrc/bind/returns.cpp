// _cpu_returns: bindings of the GAE / lambda-return scan. Arrays in, GIL released, no math here;
// the argument unpacking is args/returns.hpp (shared with _cuda_returns).
#include "args/returns.hpp"
#include "bind_common.hpp"
#include "pygenmod/returns.hpp"

namespace py = pybind11;
using namespace pybind11::literals;
using namespace pygenmod;
using namespace pygenmod::bind;

PYBIND11_MODULE(_cpu_returns, m) {
  pygenmod::shared_pool::adopt();
  m.doc() = "pygenmod returns (GAE, lambda-returns), compiled CPU kernels (OpenMP)";
  m.def(
      "gae",
      [](py::array r, py::object values, py::object next_values, py::object bootstrap, py::object terminated,
         py::object truncated, py::object mask, py::array gamma, py::array lam, py::array adv, py::object ret,
         py::array status) {
        args::gae<HostArrays>(r, values, next_values, bootstrap, terminated, truncated, mask, gamma, lam, adv, ret,
                              status, nogil([](auto... a) { returns::gae_cpu(a...); }));
      },
      "rewards"_a, "values"_a, "next_values"_a, "bootstrap"_a, "terminated"_a, "truncated"_a, "mask"_a, "gamma"_a,
      "lam"_a, "advantages"_a, "returns"_a, "status"_a);
}
