// _cpu_returns: bindings of the GAE / lambda-return scan. Arrays in, GIL released, no math here.
#include "bind_common.hpp"
#include "pygenmod/returns.hpp"

namespace py = pybind11;
using namespace pybind11::literals;
using namespace pygenmod;
using namespace pygenmod::bind;

namespace {

template <class T, class F>
void gae_impl(const py::array& r, const py::object& values, const py::object& next_values, const py::object& bootstrap,
              const py::object& terminated, const py::object& truncated, const py::object& mask, const py::array& gamma,
              const py::array& lam, py::array& adv, const py::object& ret, py::array& status) {
  if (r.ndim() != 2) throw std::invalid_argument("rewards: expected shape (T, B)");
  const index_t Tn = r.shape(0), B = r.shape(1);
  const T* pr = in_ptr<T>(r, "rewards", {Tn, B});
  const T* pv = in_ptr_or_null<T>(values, "values", {Tn, B});
  const T* pn = in_ptr_or_null<T>(next_values, "next_values", {Tn, B});
  const T* pb = in_ptr_or_null<T>(bootstrap, "bootstrap_value", {B});
  const F* pt = in_ptr_or_null<F>(terminated, "terminated", {Tn, B});
  const F* pc = in_ptr_or_null<F>(truncated, "truncated", {Tn, B});
  const F* pm = in_ptr_or_null<F>(mask, "mask", {Tn, B});
  const T* g = in_ptr<T>(gamma, "gamma", {B});
  const T* l = in_ptr<T>(lam, "lam", {B});
  T* pa = out_ptr<T>(adv, "advantages", {Tn, B});
  T* po = nullptr;
  if (!ret.is_none()) {
    auto arr = py::reinterpret_borrow<py::array>(ret);
    po = out_ptr<T>(arr, "returns", {Tn, B});
  }
  auto* st = out_ptr<std::uint8_t>(status, "status", {1});
  py::gil_scoped_release nogil;
  returns::gae_cpu<T, F>(pr, pv, pn, pb, pt, pc, pm, g, l, Tn, B, pa, po, st);
}

// The flags' element type: uint8 (bool) or the float type T; all present flags alike.
bool flags_are_u8(std::initializer_list<const py::object*> flags) {
  int kind = -1;
  for (const auto* f : flags) {
    if (f->is_none()) continue;
    const int k = py::dtype::of<std::uint8_t>().is(py::reinterpret_borrow<py::array>(*f).dtype()) ? 1 : 0;
    if (kind >= 0 && k != kind) throw std::invalid_argument("flags: terminated, truncated and mask must share a dtype");
    kind = k;
  }
  return kind != 0;
}

}  // namespace

PYBIND11_MODULE(_cpu_returns, m) {
  m.doc() = "pygenmod returns (GAE, lambda-returns), compiled CPU kernels (OpenMP)";
  m.def(
      "gae",
      [](py::array r, py::object values, py::object next_values, py::object bootstrap, py::object terminated,
         py::object truncated, py::object mask, py::array gamma, py::array lam, py::array adv, py::object ret,
         py::array status) {
        const bool u8 = flags_are_u8({&terminated, &truncated, &mask});
        dispatch_float(r, "rewards", [&](auto tag) {
          using T = decltype(tag);
          if (u8)
            gae_impl<T, std::uint8_t>(r, values, next_values, bootstrap, terminated, truncated, mask, gamma, lam, adv,
                                      ret, status);
          else
            gae_impl<T, T>(r, values, next_values, bootstrap, terminated, truncated, mask, gamma, lam, adv, ret,
                           status);
        });
      },
      "rewards"_a, "values"_a, "next_values"_a, "bootstrap"_a, "terminated"_a, "truncated"_a, "mask"_a, "gamma"_a,
      "lam"_a, "advantages"_a, "returns"_a, "status"_a);
}
