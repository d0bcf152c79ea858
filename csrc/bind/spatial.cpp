// _cpu_spatial: bindings of the spatial softmax kernels. Arrays in, GIL released, no math here;
// the argument unpacking is args/spatial.hpp (shared with _cuda_spatial).
#include "args/spatial.hpp"
#include "bind_common.hpp"
#include "fast_path.hpp"
#include "pygenmod/spatial.hpp"

#include <cmath>
#include <optional>
#include <vector>

namespace py = pybind11;
using namespace pybind11::literals;
using namespace pygenmod;
using namespace pygenmod::bind;

namespace {

// spatial_softmax's one-call fast path (issue 11): NCHW float32/float64 x, a float temperature,
// the normalized xy grid, no mask: the keypoints (B, C, 2), or None when the general path must
// run (any other input, or a non-finite map: that path raises the error; see fast_path.hpp).
template <class T>
py::object forward_fast_t(const py::array& x, double temperature) {
  const T* xp = fast::view<T>(x);
  if (!xp || x.ndim() != 4) return py::none();
  const auto d = args::spatial::dims<HostArrays>(x, false);
  if (d.H < 1 || d.W < 1 || !std::isfinite(temperature) || !(temperature > 0)) return py::none();
  const T inv = static_cast<T>(1.0 / temperature);  // as the Python layer: 1 / t in float64, then cast
  if (!std::isfinite(inv)) return py::none();
  std::vector<T> inv_c(d.C, inv);
  auto kp = fast::empty<T>({d.B, d.C, 2});
  auto stats = fast::empty<T>({d.B, d.C, 2});
  spatial::detail::FwdArgs<T> a{};
  a.x = xp;
  a.inv = inv_c.data();
  a.B = d.B;
  a.C = d.C;
  a.H = d.H;
  a.W = d.W;
  // linspace(-1, 1, n) pixel centres; a single pixel sits at 0 (pygenmod.spatial._grid)
  a.g = {d.W > 1 ? -1.0 : 0.0, d.W > 1 ? 2.0 / static_cast<double>(d.W - 1) : 0.0, d.H > 1 ? -1.0 : 0.0,
         d.H > 1 ? 2.0 / static_cast<double>(d.H - 1) : 0.0};
  a.kp = kp.mutable_data();
  a.stats = stats.mutable_data();
  {
    std::optional<py::gil_scoped_release> nogil;
    if (x.size() >= (1 << 14)) nogil.emplace();  // a release costs more than a tiny forward
    spatial::forward_cpu(a, false);
  }
  if (!fast::all_finite(stats.data(), stats.size())) return py::none();
  return std::move(kp);
}

py::object forward_fast(py::array x, double temperature) {
  if (fast::view<double>(x)) return forward_fast_t<double>(x, temperature);
  if (fast::view<float>(x)) return forward_fast_t<float>(x, temperature);
  return py::none();
}

}  // namespace

PYBIND11_MODULE(_cpu_spatial, m) {
  pygenmod::shared_pool::adopt();
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
  // one-call fast path (issue 11): None when the general path must run
  m.def("forward_fast", &forward_fast, "x"_a, "temperature"_a);
}
