// _cuda_spatial: bindings of the CUDA spatial softmax launchers. Device arrays in, no math here.
#include "cuda_array.hpp"
#include "spatial.cuh"

namespace py = pybind11;
using namespace pybind11::literals;
using namespace pygenmod;
using namespace pygenmod::bind;
using spatial::half_t;

namespace {

const char* storage_typestr(const half_t*) { return "<f2"; }
const char* storage_typestr(const float*) { return "<f4"; }
const char* storage_typestr(const double*) { return "<f8"; }

// Checks typestr and shape of a device array; returns its pointer (nullptr for None).
template <class T>
T* dev(const py::object& obj, const char* name, std::initializer_list<py::ssize_t> shape,
       const char* typestr, bool writable = false, bool optional = false) {
  if (obj.is_none()) {
    if (optional) return nullptr;
    throw std::invalid_argument(std::string(name) + ": required");
  }
  DeviceArray a = device_array(obj, name);
  if (a.typestr != typestr)
    throw std::invalid_argument(std::string(name) + ": wrong dtype " + a.typestr);
  if (a.shape.size() != shape.size())
    throw std::invalid_argument(std::string(name) + ": wrong number of dimensions");
  size_t i = 0;
  for (auto n : shape) {
    if (n >= 0 && a.shape[i] != n) throw std::invalid_argument(std::string(name) + ": wrong shape");
    ++i;
  }
  if (writable && a.readonly) throw std::invalid_argument(std::string(name) + ": read-only");
  return static_cast<T*>(a.ptr);
}

template <class T> const char* ts() { return storage_typestr(static_cast<const T*>(nullptr)); }

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
  mask.p = dev<const std::uint8_t>(m, "mask", {s[0], s[1], d.H * d.W}, "|u1");
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

void forward(py::object x, py::object inv_temp, py::object mask, double x0, double dx, double y0,
             double dy, bool cl, py::object kp, py::object cov, py::object maps, py::object stats,
             std::uintptr_t stream) {
  const Dims d = dims(x, cl);
  dispatch(x, [&](auto tag) {
    using S = decltype(tag);
    using T = spatial::compute_t<S>;
    spatial::detail::FwdArgs<S> a{};
    a.x = layout_ptr<const S*>(d, cl, [&](L s) { return dev<const S>(x, "x", s, ts<S>()); });
    a.inv = dev<const T>(inv_temp, "inv_temp", {d.C}, ts<T>());
    a.B = d.B; a.C = d.C; a.H = d.H; a.W = d.W;
    a.g = {x0, dx, y0, dy};
    a.mask = get_mask(mask, d);
    a.kp = dev<T>(kp, "keypoints", {d.B, d.C, 2}, ts<T>(), true);
    a.cov = dev<T>(cov, "cov", {d.B, d.C, 2, 2}, ts<T>(), true, true);
    a.maps = layout_ptr<T*>(d, cl, [&](L s) { return dev<T>(maps, "maps", s, ts<T>(), true, true); });
    a.stats = dev<T>(stats, "stats", {d.B, d.C, 2}, ts<T>(), true);
    cuda::spatial_forward(a, cl, as_stream(stream));
  });
}

void backward(py::object x, py::object inv_temp, py::object mask, double x0, double dx, double y0,
              double dy, bool cl, py::object stats, py::object kp, py::object cov, py::object g_kp,
              py::object g_cov, py::object g_maps, py::object gx, py::object g_temp,
              std::uintptr_t stream) {
  const Dims d = dims(x, cl);
  dispatch(x, [&](auto tag) {
    using S = decltype(tag);
    using T = spatial::compute_t<S>;
    spatial::detail::BwdArgs<S> a{};
    a.x = layout_ptr<const S*>(d, cl, [&](L s) { return dev<const S>(x, "x", s, ts<S>()); });
    a.inv = dev<const T>(inv_temp, "inv_temp", {d.C}, ts<T>());
    a.B = d.B; a.C = d.C; a.H = d.H; a.W = d.W;
    a.g = {x0, dx, y0, dy};
    a.mask = get_mask(mask, d);
    a.stats = dev<const T>(stats, "stats", {d.B, d.C, 2}, ts<T>());
    a.kp = dev<const T>(kp, "keypoints", {d.B, d.C, 2}, ts<T>());
    a.cov = dev<const T>(cov, "cov", {d.B, d.C, 2, 2}, ts<T>(), false, true);
    a.g_kp = dev<const T>(g_kp, "grad_keypoints", {d.B, d.C, 2}, ts<T>());
    a.g_cov = dev<const T>(g_cov, "grad_cov", {d.B, d.C, 2, 2}, ts<T>(), false, true);
    a.g_maps = layout_ptr<const T*>(
        d, cl, [&](L s) { return dev<const T>(g_maps, "grad_maps", s, ts<T>(), false, true); });
    if (a.g_cov && !a.cov) throw std::invalid_argument("cov: needed with grad_cov");
    a.gx = layout_ptr<T*>(d, cl, [&](L s) { return dev<T>(gx, "grad_x", s, ts<T>(), true); });
    a.g_temp = dev<T>(g_temp, "grad_temp", {d.B, d.C}, ts<T>(), true);
    cuda::spatial_backward(a, cl, as_stream(stream));
  });
}

}  // namespace

PYBIND11_MODULE(_cuda_spatial, m) {
  m.doc() = "pygenmod spatial softmax keypoints, CUDA kernels";
  m.def("forward", &forward, "x"_a, "inv_temp"_a, "mask"_a, "x0"_a, "dx"_a, "y0"_a, "dy"_a,
        "channels_last"_a, "keypoints"_a, "cov"_a, "maps"_a, "stats"_a, "stream"_a = 0);
  m.def("backward", &backward, "x"_a, "inv_temp"_a, "mask"_a, "x0"_a, "dx"_a, "y0"_a, "dy"_a,
        "channels_last"_a, "stats"_a, "keypoints"_a, "cov"_a, "grad_keypoints"_a, "grad_cov"_a,
        "grad_maps"_a, "grad_x"_a, "grad_temp"_a, "stream"_a = 0);
}
