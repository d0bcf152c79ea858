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

// The one-call fast paths (issue 11): NCHW float32/float64 x, a float temperature, the normalized
// xy grid, no mask. Each answers None when the general path must run (any other input, or a
// non-finite map: that path raises the error; see fast_path.hpp).
template <class T>
struct FastCall {
  args::spatial::Dims d;
  std::vector<T> inv;  // 1 / t per channel, as the Python layer: in float64, then cast
  spatial::Grid g;     // linspace(-1, 1, n) pixel centres; a single pixel sits at 0 (spatial._grid)
};

template <class T>
std::optional<FastCall<T>> fast_call(const py::array& x, double temperature) {
  if (!fast::view<T>(x) || x.ndim() != 4) return std::nullopt;
  const auto d = args::spatial::dims<HostArrays>(x, false);
  if (d.H < 1 || d.W < 1 || !std::isfinite(temperature) || !(temperature > 0)) return std::nullopt;
  const T inv = static_cast<T>(1.0 / temperature);
  if (!std::isfinite(inv)) return std::nullopt;
  auto step = [](py::ssize_t n) { return n > 1 ? 2.0 / static_cast<double>(n - 1) : 0.0; };
  return FastCall<T>{d, std::vector<T>(d.C, inv),
                     spatial::Grid{d.W > 1 ? -1.0 : 0.0, step(d.W), d.H > 1 ? -1.0 : 0.0, step(d.H)}};
}

// The forward into kp and stats (B, C, 2); false for a non-finite map.
template <class T>
bool fast_forward(const py::array& x, const FastCall<T>& f, py::array_t<T>& kp, py::array_t<T>& stats) {
  spatial::detail::FwdArgs<T> a{};
  a.x = static_cast<const T*>(x.data());
  a.inv = f.inv.data();
  a.B = f.d.B;
  a.C = f.d.C;
  a.H = f.d.H;
  a.W = f.d.W;
  a.g = f.g;
  a.kp = kp.mutable_data();
  a.stats = stats.mutable_data();
  {
    std::optional<py::gil_scoped_release> nogil;
    if (x.size() >= fast::kKeepGilMax) nogil.emplace();  // a release costs more than a tiny forward
    spatial::forward_cpu(a, false);
  }
  return fast::all_finite(stats.data(), stats.size());
}

// spatial_softmax: the keypoints (B, C, 2); with_stats: (keypoints, stats) for
// spatial_softmax_forward (the torch op saves them for its backward).
template <class T>
py::object forward_fast_t(const py::array& x, double temperature, bool with_stats) {
  const auto f = fast_call<T>(x, temperature);
  if (!f) return py::none();
  auto kp = fast::empty<T>({f->d.B, f->d.C, 2}), stats = fast::empty<T>({f->d.B, f->d.C, 2});
  if (!fast_forward(x, *f, kp, stats)) return py::none();
  if (with_stats) return py::make_tuple(kp, stats);
  return std::move(kp);
}

// A (B, C, 2) array of T with finite values (a saved forward result), else nullptr.
template <class T>
const T* saved_view(const py::object& a, const args::spatial::Dims& d) {
  if (!py::isinstance<py::array>(a)) return nullptr;
  const auto arr = py::reinterpret_borrow<py::array>(a);
  const T* p = fast::view<T>(arr);
  if (!p || !fast::shape_is(arr, {d.B, d.C, 2}) || !fast::all_finite(p, arr.size())) return nullptr;
  return p;
}

// spatial_softmax_backward with grad_keypoints only: (grad_x, grad_temp (B, C)); the Python
// layer sums grad_temp as its general path does. keypoints and stats: the saved forward's
// (both or neither; without them the forward runs again here).
template <class T>
py::object backward_fast_t(const py::array& x, double temperature, const py::array& g_kp, const py::object& saved_kp,
                           const py::object& saved_stats) {
  const auto f = fast_call<T>(x, temperature);
  if (!f || !fast::view<T>(g_kp) || !fast::shape_is(g_kp, {f->d.B, f->d.C, 2}) ||
      !fast::all_finite(static_cast<const T*>(g_kp.data()), g_kp.size()))
    return py::none();
  const T* kp = nullptr;  // the saved arrays (the caller holds them), or the forward's, kept here
  const T* stats = nullptr;
  std::optional<py::array_t<T>> fwd_kp, fwd_stats;
  if (saved_kp.is_none() && saved_stats.is_none()) {
    fwd_kp = fast::empty<T>({f->d.B, f->d.C, 2});
    fwd_stats = fast::empty<T>({f->d.B, f->d.C, 2});
    if (!fast_forward(x, *f, *fwd_kp, *fwd_stats)) return py::none();
    kp = fwd_kp->data();
    stats = fwd_stats->data();
  } else {
    kp = saved_view<T>(saved_kp, f->d);
    stats = saved_view<T>(saved_stats, f->d);
    if (!kp || !stats) return py::none();
  }
  auto gx = fast::empty<T>(std::vector<py::ssize_t>(x.shape(), x.shape() + 4));
  auto g_temp = fast::empty<T>({f->d.B, f->d.C});
  spatial::detail::BwdArgs<T> a{};
  a.x = static_cast<const T*>(x.data());
  a.inv = f->inv.data();
  a.B = f->d.B;
  a.C = f->d.C;
  a.H = f->d.H;
  a.W = f->d.W;
  a.g = f->g;
  a.stats = stats;
  a.kp = kp;
  a.g_kp = static_cast<const T*>(g_kp.data());
  a.gx = gx.mutable_data();
  a.g_temp = g_temp.mutable_data();
  {
    std::optional<py::gil_scoped_release> nogil;
    if (x.size() >= fast::kKeepGilMax) nogil.emplace();
    spatial::backward_cpu(a, false);
  }
  return py::make_tuple(gx, g_temp);
}

py::object backward_fast(py::array x, double temperature, py::array g_kp, py::object keypoints, py::object stats) {
  return fast::by_dtype(x,
                        [&](auto t) { return backward_fast_t<decltype(t)>(x, temperature, g_kp, keypoints, stats); });
}

py::object forward_fast(py::array x, double temperature, bool with_stats) {
  return fast::by_dtype(x, [&](auto t) { return forward_fast_t<decltype(t)>(x, temperature, with_stats); });
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
  m.def("forward_fast", &forward_fast, "x"_a, "temperature"_a, "with_stats"_a = false);
  m.def("backward_fast", &backward_fast, "x"_a, "temperature"_a, "grad_keypoints"_a, "keypoints"_a = py::none(),
        "stats"_a = py::none());
}
