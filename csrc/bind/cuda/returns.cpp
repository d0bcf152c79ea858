// _cuda_returns: binding of the CUDA GAE launcher. Device arrays in, no math here.
#include "cuda_array.hpp"
#include "returns.cuh"

namespace py = pybind11;
using namespace pybind11::literals;
using namespace pygenmod;
using namespace pygenmod::bind;

namespace {

template <class T>
T* opt_ptr(const py::object& o, const char* name, std::initializer_list<py::ssize_t> shape, bool w = false) {
  return o.is_none() ? nullptr : device_ptr<T>(o, name, shape, w);
}

template <class T, class F>
void run(const py::object& r, const py::object& values, const py::object& next_values, const py::object& boot,
         const py::object& term, const py::object& trunc, const py::object& mask, const py::object& gamma,
         const py::object& lam, const py::object& adv, const py::object& ret, const py::object& status,
         std::uintptr_t stream) {
  auto shp = device_shape(r, "rewards");
  if (shp.size() != 2) throw std::invalid_argument("rewards: expected (T, B)");
  const py::ssize_t Tn = shp[0], B = shp[1];
  cuda::gae<T, F>(device_ptr<T>(r, "rewards", {Tn, B}), opt_ptr<T>(values, "values", {Tn, B}),
                  opt_ptr<T>(next_values, "next_values", {Tn, B}), opt_ptr<T>(boot, "bootstrap_value", {B}),
                  opt_ptr<F>(term, "terminated", {Tn, B}), opt_ptr<F>(trunc, "truncated", {Tn, B}),
                  opt_ptr<F>(mask, "mask", {Tn, B}), device_ptr<T>(gamma, "gamma", {B}), device_ptr<T>(lam, "lam", {B}),
                  Tn, B, device_ptr<T>(adv, "advantages", {Tn, B}, true), opt_ptr<T>(ret, "returns", {Tn, B}, true),
                  device_ptr<std::uint8_t>(status, "status", {1}, true), as_stream(stream));
}

}  // namespace

PYBIND11_MODULE(_cuda_returns, m) {
  m.doc() = "pygenmod returns (GAE), CUDA kernels";
  m.def(
      "gae",
      [](py::object r, py::object values, py::object next_values, py::object boot, py::object term, py::object trunc,
         py::object mask, py::object gamma, py::object lam, py::object adv, py::object ret, py::object status,
         std::uintptr_t stream) {
        std::string ft;
        for (const py::object* f : {&term, &trunc, &mask}) {
          if (f->is_none()) continue;
          const auto t = device_typestr(*f, "flags");
          if (!ft.empty() && t != ft)
            throw std::invalid_argument("flags: terminated, truncated and mask must share a dtype");
          ft = t;
        }
        const bool u8 = ft.empty() || ft == "|u1" || ft == "<u1";
        const auto t = device_typestr(r, "rewards");
        if (t == "<f8")
          return u8 ? run<double, std::uint8_t>(r, values, next_values, boot, term, trunc, mask, gamma, lam, adv, ret,
                                                status, stream)
                    : run<double, double>(r, values, next_values, boot, term, trunc, mask, gamma, lam, adv, ret, status,
                                          stream);
        if (t == "<f4")
          return u8 ? run<float, std::uint8_t>(r, values, next_values, boot, term, trunc, mask, gamma, lam, adv, ret,
                                               status, stream)
                    : run<float, float>(r, values, next_values, boot, term, trunc, mask, gamma, lam, adv, ret, status,
                                        stream);
        throw std::invalid_argument("rewards: expected float32 or float64");
      },
      "rewards"_a, "values"_a, "next_values"_a, "bootstrap"_a, "terminated"_a, "truncated"_a, "mask"_a, "gamma"_a,
      "lam"_a, "advantages"_a, "returns"_a, "status"_a, "stream"_a = 0);
}
