// The argument unpacking of the spatial softmax bindings, shared by _cpu_spatial and
// _cuda_spatial: arrays checked (array_access.hpp, policy P) into spatial::detail::FwdArgs /
// BwdArgs, then launch(args). x is float32/float64, float16, or (host only) ml_dtypes'
// bfloat16; results and gradients are in x's compute type (float for the 16-bit types).
#pragma once

#include <cstdint>
#include <type_traits>

#include "array_access.hpp"
#include "pygenmod/spatial.hpp"

namespace pygenmod::bind {
template <>
struct kernel_dtype<spatial::half_t> {
  static constexpr const char* name = "float16";
};
template <>
struct kernel_dtype<spatial::bf16_t> {
  static constexpr const char* name = "bfloat16";
};
}  // namespace pygenmod::bind

namespace pygenmod::bind::args::spatial {
using namespace pygenmod::spatial;

// Calls f(S{}) with S the storage type of x. The CUDA kernels have no bfloat16 instantiation.
template <class P, class F>
void dispatch_storage(const py::object& x, F&& f) {
  constexpr bool bf16 = std::is_same_v<P, HostArrays>;
  const std::string t = dtype_of<P>(x, "x");
  if (t == "float64") return f(double{});
  if (t == "float32") return f(float{});
  if (t == "float16") return f(half_t{});
  if constexpr (bf16)
    if (t == "bfloat16") return f(bf16_t{});
  throw std::invalid_argument(bf16 ? "x: expected float16, bfloat16, float32 or float64"
                                   : "x: expected float16, float32 or float64");
}

struct Dims {
  py::ssize_t B, C, H, W;
};

template <class P>
Dims dims(const py::object& x, bool channels_last) {
  const auto s = shape_of<P>(x, "x");
  if (s.size() != 4) throw std::invalid_argument("x: expected 4 dimensions, got " + shape_str(s));
  if (channels_last) return {s[0], s[3], s[1], s[2]};
  return {s[0], s[1], s[2], s[3]};
}

// The shape of x (and of maps, grad_maps, grad_x) in the call's layout.
inline std::vector<py::ssize_t> x_shape(const Dims& d, bool channels_last) {
  if (channels_last) return {d.B, d.H, d.W, d.C};
  return {d.B, d.C, d.H, d.W};
}

// Checked pointer of an array with x's shape; f is in / out / in_or_null / out_or_null of P.
template <class R, class F>
R layout_ptr(const Dims& d, bool channels_last, F&& f) {
  const auto s = x_shape(d, channels_last);
  return f({s[0], s[1], s[2], s[3]});
}

template <class P>
Mask get_mask(const py::object& m, const Dims& d) {
  Mask mask;
  if (m.is_none()) return mask;
  const auto s = shape_of<P>(m, "mask");
  if (s.size() != 3) throw std::invalid_argument("mask: expected (Bm, Cm, H*W)");
  mask.Bm = s[0];
  mask.Cm = s[1];
  if ((mask.Bm != 1 && mask.Bm != d.B) || (mask.Cm != 1 && mask.Cm != d.C))
    throw std::invalid_argument("mask: unexpected shape " + shape_str(s));
  mask.p = in<P, std::uint8_t>(m, "mask", {mask.Bm, mask.Cm, d.H * d.W});
  return mask;
}

// The arguments forward and backward share: x, 1 / temperature, sizes, grid and mask.
template <class P, class S, class A>
void common(A& a, const py::object& x, const py::object& inv_temp, const py::object& mask, const Dims& d, bool cl,
            double x0, double dx, double y0, double dy) {
  using T = compute_t<S>;
  a.x = layout_ptr<const S*>(d, cl, [&](Shape s) { return in<P, S>(x, "x", s); });
  a.inv = in<P, T>(inv_temp, "inv_temp", {d.C});
  a.B = d.B;
  a.C = d.C;
  a.H = d.H;
  a.W = d.W;
  a.g = {x0, dx, y0, dy};
  a.mask = get_mask<P>(mask, d);
}

template <class P, class Launch>
void forward(const py::object& x, const py::object& inv_temp, const py::object& mask, double x0, double dx, double y0,
             double dy, bool cl, const py::object& kp, const py::object& cov, const py::object& maps,
             const py::object& stats, Launch&& launch) {
  const Dims d = dims<P>(x, cl);
  dispatch_storage<P>(x, [&](auto tag) {
    using S = decltype(tag);
    using T = compute_t<S>;
    pygenmod::spatial::detail::FwdArgs<S> a{};
    common<P, S>(a, x, inv_temp, mask, d, cl, x0, dx, y0, dy);
    a.kp = out<P, T>(kp, "keypoints", {d.B, d.C, 2});
    a.cov = out_or_null<P, T>(cov, "cov", {d.B, d.C, 2, 2});
    a.maps = layout_ptr<T*>(d, cl, [&](Shape s) { return out_or_null<P, T>(maps, "maps", s); });
    a.stats = out<P, T>(stats, "stats", {d.B, d.C, 2});
    launch(a);
  });
}

template <class P, class Launch>
void backward(const py::object& x, const py::object& inv_temp, const py::object& mask, double x0, double dx, double y0,
              double dy, bool cl, const py::object& stats, const py::object& kp, const py::object& cov,
              const py::object& g_kp, const py::object& g_cov, const py::object& g_maps, const py::object& gx,
              const py::object& g_temp, Launch&& launch) {
  const Dims d = dims<P>(x, cl);
  dispatch_storage<P>(x, [&](auto tag) {
    using S = decltype(tag);
    using T = compute_t<S>;
    pygenmod::spatial::detail::BwdArgs<S> a{};
    common<P, S>(a, x, inv_temp, mask, d, cl, x0, dx, y0, dy);
    a.stats = in<P, T>(stats, "stats", {d.B, d.C, 2});
    a.kp = in<P, T>(kp, "keypoints", {d.B, d.C, 2});
    a.cov = in_or_null<P, T>(cov, "cov", {d.B, d.C, 2, 2});
    a.g_kp = in<P, T>(g_kp, "grad_keypoints", {d.B, d.C, 2});
    a.g_cov = in_or_null<P, T>(g_cov, "grad_cov", {d.B, d.C, 2, 2});
    a.g_maps = layout_ptr<const T*>(d, cl, [&](Shape s) { return in_or_null<P, T>(g_maps, "grad_maps", s); });
    if (a.g_cov && !a.cov) throw std::invalid_argument("cov: needed with grad_cov");
    a.gx = layout_ptr<T*>(d, cl, [&](Shape s) { return out<P, T>(gx, "grad_x", s); });
    a.g_temp = out<P, T>(g_temp, "grad_temp", {d.B, d.C});
    launch(a);
  });
}

}  // namespace pygenmod::bind::args::spatial
