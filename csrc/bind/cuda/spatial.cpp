// _cuda_spatial: bindings of the CUDA spatial softmax launchers. Device arrays in, no math here.
#include "cuda_array.hpp"
#include "spatial.cuh"

namespace py = pybind11;
using namespace pybind11::literals;
using namespace pygenmod;
using namespace pygenmod::bind;
using spatial::half_t;

namespace pygenmod::bind {
template <>
inline const char* typestr_of<half_t>() {
  return "<f2";
}
}  // namespace pygenmod::bind

namespace {

// Optional device array: nullptr for None, else device_ptr's checks (dtype, shape, writability).
template <class T>
T* dev(const py::object& obj, const char* name, std::initializer_list<py::ssize_t> shape, bool writable = false,
       bool optional = false) {
  if (obj.is_none()) {
    if (optional) return nullptr;
    throw std::invalid_argument(std::string(name) + ": required");
  }
  return device_ptr<std::remove_const_t<T>>(obj, name, shape, writable);
}

struct Dims {
  py::ssize_t B, C, H, W;
};

Dims dims(const py::object& x, bool cl) {
  auto s = device_shape(x, "x");
  if (s.size() != 4) throw std::invalid_argument("x: expected 4 dimensions");
  return cl ? Dims{s[0], s[3], s[1], s[2]} : Dims{s[0], s[1], s[2], s[3]};
}

template <class P, class F>
P layout_ptr(const Dims& d, bool cl, F&& f) {
  if (cl) return f({d.B, d.H, d.W, d.C});
  return f({d.B, d.C, d.H, d.W});
}

spatial::Mask get_mask(const py::object& m, const Dims& d) {
  spatial::Mask mask;
  if (m.is_none()) return mask;
  auto s = device_shape(m, "mask");
  if (s.size() != 3 || (s[0] != 1 && s[0] != d.B) || (s[1] != 1 && s[1] != d.C))
    throw std::invalid_argument("mask: expected (Bm, Cm, H*W)");
  mask.Bm = s[0];
  mask.Cm = s[1];
  mask.p = dev<const std::uint8_t>(m, "mask", {s[0], s[1], d.H * d.W});
  return mask;
}

template <class F>
void dispatch(const py::object& x, F&& f) {
  const auto t = device_typestr(x, "x");
  if (t == "<f8") return f(double{});
  if (t == "<f4") return f(float{});
  if (t == "<f2") return f(half_t{});
  throw std::invalid_argument("x: expected float16, float32 or float64");
}

using L = std::initializer_list<py::ssize_t>;

// The arguments forward and backward share: x, 1 / temperature, sizes, grid and mask.
template <class Args, class S = std::remove_const_t<std::remove_pointer_t<decltype(Args::x)>>>
void common(Args& a, const py::object& x, const py::object& inv_temp, const py::object& mask, const Dims& d, bool cl,
            double x0, double dx, double y0, double dy) {
  using T = spatial::compute_t<S>;
  a.x = layout_ptr<const S*>(d, cl, [&](L s) { return dev<const S>(x, "x", s); });
  a.inv = dev<const T>(inv_temp, "inv_temp", {d.C});
  a.B = d.B;
  a.C = d.C;
  a.H = d.H;
  a.W = d.W;
  a.g = {x0, dx, y0, dy};
  a.mask = get_mask(mask, d);
}

void forward(py::object x, py::object inv_temp, py::object mask, double x0, double dx, double y0, double dy, bool cl,
             py::object kp, py::object cov, py::object maps, py::object stats, std::uintptr_t stream) {
  const Dims d = dims(x, cl);
  dispatch(x, [&](auto tag) {
    using S = decltype(tag);
    using T = spatial::compute_t<S>;
    spatial::detail::FwdArgs<S> a{};
    common(a, x, inv_temp, mask, d, cl, x0, dx, y0, dy);
    a.kp = dev<T>(kp, "keypoints", {d.B, d.C, 2}, true);
    a.cov = dev<T>(cov, "cov", {d.B, d.C, 2, 2}, true, true);
    a.maps = layout_ptr<T*>(d, cl, [&](L s) { return dev<T>(maps, "maps", s, true, true); });
    a.stats = dev<T>(stats, "stats", {d.B, d.C, 2}, true);
    cuda::spatial_forward(a, cl, as_stream(stream));
  });
}

void backward(py::object x, py::object inv_temp, py::object mask, double x0, double dx, double y0, double dy, bool cl,
              py::object stats, py::object kp, py::object cov, py::object g_kp, py::object g_cov, py::object g_maps,
              py::object gx, py::object g_temp, std::uintptr_t stream) {
  const Dims d = dims(x, cl);
  dispatch(x, [&](auto tag) {
    using S = decltype(tag);
    using T = spatial::compute_t<S>;
    spatial::detail::BwdArgs<S> a{};
    common(a, x, inv_temp, mask, d, cl, x0, dx, y0, dy);
    a.stats = dev<const T>(stats, "stats", {d.B, d.C, 2});
    a.kp = dev<const T>(kp, "keypoints", {d.B, d.C, 2});
    a.cov = dev<const T>(cov, "cov", {d.B, d.C, 2, 2}, false, true);
    a.g_kp = dev<const T>(g_kp, "grad_keypoints", {d.B, d.C, 2});
    a.g_cov = dev<const T>(g_cov, "grad_cov", {d.B, d.C, 2, 2}, false, true);
    a.g_maps = layout_ptr<const T*>(d, cl, [&](L s) { return dev<const T>(g_maps, "grad_maps", s, false, true); });
    if (a.g_cov && !a.cov) throw std::invalid_argument("cov: needed with grad_cov");
    a.gx = layout_ptr<T*>(d, cl, [&](L s) { return dev<T>(gx, "grad_x", s, true); });
    a.g_temp = dev<T>(g_temp, "grad_temp", {d.B, d.C}, true);
    cuda::spatial_backward(a, cl, as_stream(stream));
  });
}

}  // namespace

PYBIND11_MODULE(_cuda_spatial, m) {
  m.doc() = "pygenmod spatial softmax keypoints, CUDA kernels";
  m.def("forward", &forward, "x"_a, "inv_temp"_a, "mask"_a, "x0"_a, "dx"_a, "y0"_a, "dy"_a, "channels_last"_a,
        "keypoints"_a, "cov"_a, "maps"_a, "stats"_a, "stream"_a = 0);
  m.def("backward", &backward, "x"_a, "inv_temp"_a, "mask"_a, "x0"_a, "dx"_a, "y0"_a, "dy"_a, "channels_last"_a,
        "stats"_a, "keypoints"_a, "cov"_a, "grad_keypoints"_a, "grad_cov"_a, "grad_maps"_a, "grad_x"_a, "grad_temp"_a,
        "stream"_a = 0);
}
