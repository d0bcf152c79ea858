// _cpu_spatial: bindings of the spatial softmax kernels. Arrays in, GIL released, no math here;
// the argument unpacking is args/spatial.hpp (shared with _cuda_spatial).
#include "args/spatial.hpp"
#include "bind_common.hpp"
#include "pygenmod/spatial.hpp"

namespace py = pybind11;
using namespace pybind11::literals;
using namespace pygenmod;
using namespace pygenmod::bind;

PYBIND11_MODULE(_cpu_spatial, m) {
  m.doc() = "pygenmod spatial softmax keypoints, compiled CPU kernels (OpenMP)";
  m.def(
      "forward",
      [](py::array x, py::array inv_temp, py::object mask, double x0, double dx, double y0, double dy,
         bool channels_last, py::array kp, py::object cov, py::object maps, py::array stats) {
        args::spatial::forward<HostArrays>(x, inv_temp, mask, x0, dx, y0, dy, channels_last, kp, cov, maps, stats,
                                           nogil([&](const auto& a) { spatial::forward_cpu(a, channels_last); }));
      },
      "x"_a, "inv_temp"_a, "mask"_a, "x0"_a, "dx"_a, "y0"_a, "dy"_a, "channels_last"_a, "keypoints"_a, "cov"_a,
      "maps"_a, "stats"_a);
  m.def(
      "backward",
      [](py::array x, py::array inv_temp, py::object mask, double x0, double dx, double y0, double dy,
         bool channels_last, py::array stats, py::array kp, py::object cov, py::array g_kp, py::object g_cov,
         py::object g_maps, py::array gx, py::array g_temp) {
        args::spatial::backward<HostArrays>(x, inv_temp, mask, x0, dx, y0, dy, channels_last, stats, kp, cov, g_kp,
                                            g_cov, g_maps, gx, g_temp,
                                            nogil([&](const auto& a) { spatial::backward_cpu(a, channels_last); }));
      },
      "x"_a, "inv_temp"_a, "mask"_a, "x0"_a, "dx"_a, "y0"_a, "dy"_a, "channels_last"_a, "stats"_a, "keypoints"_a,
      "cov"_a, "grad_keypoints"_a, "grad_cov"_a, "grad_maps"_a, "grad_x"_a, "grad_temp"_a);
}
