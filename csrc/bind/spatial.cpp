// _cpu_spatial: bindings of the spatial softmax kernels. Arrays in, GIL released, no math here.
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
using spatial::bf16_t;
using spatial::half_t;

namespace {

bool is_float16(const py::array& a) { return a.dtype().kind() == 'f' && a.itemsize() == 2; }
// ml_dtypes' bfloat16 (what JAX and torch-via-pygenmod.torch hand over for bfloat16).
bool is_bfloat16(const py::array& a) {
  return a.itemsize() == 2 && py::str(a.dtype().attr("name")).cast<std::string>() == "bfloat16";
}

// x as storage type S: float, double, half_t (NumPy float16) or bf16_t (ml_dtypes bfloat16).
template <class S>
const S* x_ptr(const py::array& a, std::initializer_list<py::ssize_t> shape) {
  if constexpr (std::is_same_v<S, half_t> || std::is_same_v<S, bf16_t>) {
    if (std::is_same_v<S, half_t> ? !is_float16(a) : !is_bfloat16(a))
      throw std::invalid_argument("x: wrong dtype for this kernel");
    if (!(a.flags() & py::array::c_style)) throw std::invalid_argument("x: must be C-contiguous");
    py::ssize_t i = 0;
    for (auto n : shape)
      if (a.shape(i++) != n) throw std::invalid_argument("x: unexpected shape " + shape_str(a));
    return static_cast<const S*>(a.data());
  } else {
    return in_ptr<S>(a, "x", shape);
  }
}

template <class T>
T* opt_out(py::object a, const char* name, std::initializer_list<py::ssize_t> shape) {
  if (a.is_none()) return nullptr;
  py::array arr = a;
  return out_ptr<T>(arr, name, shape);
}

template <class T>
const T* opt_in(py::object a, const char* name, std::initializer_list<py::ssize_t> shape) {
  if (a.is_none()) return nullptr;
  return in_ptr<T>(py::array(a), name, shape);
}

struct Dims {
  py::ssize_t B, C, H, W;
};

// Checked pointer of an optional array with x's shape (layout-dependent); f is in/out_ptr-like.
template <class P, class F>
P layout_ptr(const Dims& d, bool channels_last, F&& f) {
  if (channels_last) return f({d.B, d.H, d.W, d.C});
  return f({d.B, d.C, d.H, d.W});
}

Dims dims(const py::array& x, bool channels_last) {
  if (x.ndim() != 4) throw std::invalid_argument("x: expected 4 dimensions, got " + shape_str(x));
  if (channels_last) return {x.shape(0), x.shape(3), x.shape(1), x.shape(2)};
  return {x.shape(0), x.shape(1), x.shape(2), x.shape(3)};
}

spatial::Mask get_mask(py::object m, const Dims& d) {
  spatial::Mask mask;
  if (m.is_none()) return mask;
  py::array a = m;
  if (a.ndim() != 3) throw std::invalid_argument("mask: expected (Bm, Cm, H*W)");
  mask.Bm = a.shape(0);
  mask.Cm = a.shape(1);
  if ((mask.Bm != 1 && mask.Bm != d.B) || (mask.Cm != 1 && mask.Cm != d.C))
    throw std::invalid_argument("mask: unexpected shape " + shape_str(a));
  mask.p = in_ptr<std::uint8_t>(a, "mask", {mask.Bm, mask.Cm, d.H * d.W});
  return mask;
}

// Calls f(S{}) with S the storage type of x.
template <class F>
void dispatch_storage(const py::array& x, F&& f) {
  if (is_float64(x)) return f(double{});
  if (is_float32(x)) return f(float{});
  if (is_float16(x)) return f(half_t{});
  if (is_bfloat16(x)) return f(bf16_t{});
  throw std::invalid_argument("x: expected float16, bfloat16, float32 or float64");
}

using L = std::initializer_list<py::ssize_t>;

// The arguments forward and backward share: x, 1 / temperature, sizes, grid and mask.
template <class Args, class S = std::remove_const_t<std::remove_pointer_t<decltype(Args::x)>>>
void common(Args& a, const py::array& x, const py::array& inv_temp, const py::object& mask, const Dims& d, bool cl,
            double x0, double dx, double y0, double dy) {
  using T = spatial::compute_t<S>;
  a.x = layout_ptr<const S*>(d, cl, [&](L s) { return x_ptr<S>(x, s); });
  a.inv = in_ptr<T>(inv_temp, "inv_temp", {d.C});
  a.B = d.B;
  a.C = d.C;
  a.H = d.H;
  a.W = d.W;
  a.g = {x0, dx, y0, dy};
  a.mask = get_mask(mask, d);
}

void forward(py::array x, py::array inv_temp, py::object mask, double x0, double dx, double y0, double dy,
             bool channels_last, py::array kp, py::object cov, py::object maps, py::array stats) {
  const Dims d = dims(x, channels_last);
  dispatch_storage(x, [&](auto tag) {
    using S = decltype(tag);
    using T = spatial::compute_t<S>;
    spatial::detail::FwdArgs<S> a{};
    common(a, x, inv_temp, mask, d, channels_last, x0, dx, y0, dy);
    a.kp = out_ptr<T>(kp, "keypoints", {d.B, d.C, 2});
    a.cov = opt_out<T>(cov, "cov", {d.B, d.C, 2, 2});
    a.maps = layout_ptr<T*>(d, channels_last, [&](L s) { return opt_out<T>(maps, "maps", s); });
    a.stats = out_ptr<T>(stats, "stats", {d.B, d.C, 2});
    py::gil_scoped_release nogil;
    spatial::forward_cpu(a, channels_last);
  });
}

void backward(py::array x, py::array inv_temp, py::object mask, double x0, double dx, double y0, double dy,
              bool channels_last, py::array stats, py::array kp, py::object cov, py::array g_kp, py::object g_cov,
              py::object g_maps, py::array gx, py::array g_temp) {
  const Dims d = dims(x, channels_last);
  dispatch_storage(x, [&](auto tag) {
    using S = decltype(tag);
    using T = spatial::compute_t<S>;
    spatial::detail::BwdArgs<S> a{};
    common(a, x, inv_temp, mask, d, channels_last, x0, dx, y0, dy);
    a.stats = in_ptr<T>(stats, "stats", {d.B, d.C, 2});
    a.kp = in_ptr<T>(kp, "keypoints", {d.B, d.C, 2});
    a.cov = opt_in<T>(cov, "cov", {d.B, d.C, 2, 2});
    a.g_kp = in_ptr<T>(g_kp, "grad_keypoints", {d.B, d.C, 2});
    a.g_cov = opt_in<T>(g_cov, "grad_cov", {d.B, d.C, 2, 2});
    a.g_maps = layout_ptr<const T*>(d, channels_last, [&](L s) { return opt_in<T>(g_maps, "grad_maps", s); });
    if (a.g_cov && !a.cov) throw std::invalid_argument("cov: needed with grad_cov");
    a.gx = layout_ptr<T*>(d, channels_last, [&](L s) { return out_ptr<T>(gx, "grad_x", s); });
    a.g_temp = out_ptr<T>(g_temp, "grad_temp", {d.B, d.C});
    py::gil_scoped_release nogil;
    spatial::backward_cpu(a, channels_last);
  });
}

// spatial_softmax's one-call fast path (issue 11): NCHW float32/float64 x, a float temperature,
// the normalized xy grid, no mask: the keypoints (B, C, 2), or None when the general path must
// run (any other input, or a non-finite map: that path raises the error; see fast_path.hpp).
template <class T>
py::object forward_fast_t(const py::array& x, double temperature) {
  const T* xp = fast::view<T>(x);
  if (!xp || x.ndim() != 4) return py::none();
  const Dims d = dims(x, false);
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
  m.doc() = "pygenmod spatial softmax keypoints, compiled CPU kernels (OpenMP)";
  m.def("forward", &forward, "x"_a, "inv_temp"_a, "mask"_a, "x0"_a, "dx"_a, "y0"_a, "dy"_a, "channels_last"_a,
        "keypoints"_a, "cov"_a, "maps"_a, "stats"_a);
  m.def("backward", &backward, "x"_a, "inv_temp"_a, "mask"_a, "x0"_a, "dx"_a, "y0"_a, "dy"_a, "channels_last"_a,
        "stats"_a, "keypoints"_a, "cov"_a, "grad_keypoints"_a, "grad_cov"_a, "grad_maps"_a, "grad_x"_a, "grad_temp"_a);
  // one-call fast path (issue 11): None when the general path must run
  m.def("forward_fast", &forward_fast, "x"_a, "temperature"_a);
}
