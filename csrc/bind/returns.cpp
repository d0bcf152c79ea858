// _cpu_returns: bindings of the GAE / lambda-return scan. Arrays in, GIL released, no math here;
// the argument unpacking is args/returns.hpp (shared with _cuda_returns).
#include "args/returns.hpp"
#include "bind_common.hpp"
#include "fast_path.hpp"
#include "pygenmod/returns.hpp"

namespace py = pybind11;
using namespace pybind11::literals;
using namespace pygenmod;
using namespace pygenmod::bind;

// ----------------------------------------------------------------------------- one-call fast path
// (issue 11; fast_path.hpp) gae and discounted_returns, time-major: rewards and values (T, B)
// (values None for discounted_returns), B >= 1, C-contiguous of
// one float dtype; gamma and lam exact Python numbers (cast to T, then in [0, 1], as the general
// path's per_batch); terminated None or (T, B) bool or of T; bootstrap_value None or (B,) of T.
// The general path's kernel, so the same bits. None wherever the general Python path must run:
// any other input, or a scan that met NaN or infinity (that path names the input or returns the
// overflow's infinities).

// A discount-like parameter: an exact Python number whose T value is in [0, 1].
template <class T>
static bool unit_param(const py::handle& h, T& out) {
  double d;
  if (!fast::number(h, d)) return false;
  out = static_cast<T>(d);
  return out >= T(0) && out <= T(1);
}

// values None: discounted_returns (lam 1, no returns output).
template <class T>
static py::object gae_fast_t(const py::array& r, const py::object& values, const py::handle& gamma,
                             const py::handle& lam, const py::object& terminated, const py::object& bootstrap,
                             bool want_returns) {
  fast::Inputs in;  // (strided arrays copied, as the general path copies them)
  if (r.ndim() != 2 || r.shape(1) < 1) return py::none();
  const T* pr = in.get<T>(r);
  if (!pr) return py::none();
  const py::ssize_t Tn = r.shape(0), B = r.shape(1);
  const T* pv = nullptr;
  if (!values.is_none()) {
    if (!py::isinstance<py::array>(values)) return py::none();  // (shape_is reads an array's header)
    const py::array v = py::reinterpret_borrow<py::array>(values);
    if (!fast::shape_is(v, {Tn, B}) || !(pv = in.get<T>(v))) return py::none();
  }
  T g, l;
  if (!unit_param(gamma, g) || !unit_param(lam, l)) return py::none();
  const T* pb = nullptr;
  if (!bootstrap.is_none()) {
    const py::array b = py::reinterpret_borrow<py::array>(bootstrap);
    if (!py::isinstance<py::array>(bootstrap) || !fast::shape_is(b, {B}) || !(pb = in.get<T>(b))) return py::none();
  }
  auto run = [&](auto* flags) -> py::object {
    auto adv = fast::empty<T>({Tn, B});
    py::object ret = want_returns ? py::object(fast::empty<T>({Tn, B})) : py::object(py::none());
    T* pret = want_returns ? static_cast<T*>(py::reinterpret_borrow<py::array>(ret).mutable_data()) : nullptr;
    const std::vector<T> gv(B, g), lv(B, l);
    std::uint8_t nonfinite = 0;
    if (Tn > 0) {
      fast::ReleaseIfLarge nogil(Tn * B);
      returns::gae_cpu(pr, pv, static_cast<const T*>(nullptr), pb, flags, decltype(flags)(nullptr),
                       decltype(flags)(nullptr), gv.data(), lv.data(), Tn, B, adv.mutable_data(), pret, &nonfinite);
    }
    if (nonfinite) return py::none();
    return py::make_tuple(adv, ret);
  };
  if (terminated.is_none()) return run(static_cast<const std::uint8_t*>(nullptr));
  if (!py::isinstance<py::array>(terminated)) return py::none();
  const py::array t = py::reinterpret_borrow<py::array>(terminated);
  if (!fast::shape_is(t, {Tn, B})) return py::none();
  if (const bool* pt = in.get<bool>(t)) return run(reinterpret_cast<const std::uint8_t*>(pt));
  if (const T* pt = in.get<T>(t)) return run(pt);
  return py::none();
}

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
  m.def("gae_fast", [](py::array r, py::object v, py::handle gamma, py::handle lam, py::object terminated,
                       py::object bootstrap, bool want_returns) {
    return fast::by_float_dtype(
        r, [&](auto t) { return gae_fast_t<decltype(t)>(r, v, gamma, lam, terminated, bootstrap, want_returns); });
  });
}
