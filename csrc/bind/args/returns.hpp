// The argument unpacking of the GAE binding, shared by _cpu_returns and _cuda_returns: every
// array checked (array_access.hpp, policy P), then launch(pointers..., Tn, B, ...) with the
// argument list of returns::gae_cpu / cuda::gae (less the CUDA stream, which the launcher adds).
#pragma once

#include <cstdint>

#include "array_access.hpp"

namespace pygenmod::bind::args {

template <class P, class T, class F, class Launch>
void gae_typed(const py::object& r, const py::object& values, const py::object& next_values,
               const py::object& bootstrap, const py::object& terminated, const py::object& truncated,
               const py::object& mask, const py::object& gamma, const py::object& lam, const py::object& adv,
               const py::object& ret, const py::object& status, Launch&& launch) {
  const auto s = shape_of<P>(r, "rewards");
  if (s.size() != 2) throw std::invalid_argument("rewards: expected shape (T, B)");
  const py::ssize_t Tn = s[0], B = s[1];
  const T* pr = in<P, T>(r, "rewards", {Tn, B});
  const T* pv = in_or_null<P, T>(values, "values", {Tn, B});
  const T* pn = in_or_null<P, T>(next_values, "next_values", {Tn, B});
  const T* pb = in_or_null<P, T>(bootstrap, "bootstrap_value", {B});
  const F* pt = in_or_null<P, F>(terminated, "terminated", {Tn, B});
  const F* pc = in_or_null<P, F>(truncated, "truncated", {Tn, B});
  const F* pm = in_or_null<P, F>(mask, "mask", {Tn, B});
  const T* g = in<P, T>(gamma, "gamma", {B});
  const T* l = in<P, T>(lam, "lam", {B});
  T* pa = out<P, T>(adv, "advantages", {Tn, B});
  T* po = out_or_null<P, T>(ret, "returns", {Tn, B});
  auto* st = out<P, std::uint8_t>(status, "status", {1});
  launch(pr, pv, pn, pb, pt, pc, pm, g, l, Tn, B, pa, po, st);
}

// Flags (terminated, truncated, mask) are all uint8 or all of the rewards' float type.
template <class P, class Launch>
void gae(const py::object& r, const py::object& values, const py::object& next_values, const py::object& bootstrap,
         const py::object& terminated, const py::object& truncated, const py::object& mask, const py::object& gamma,
         const py::object& lam, const py::object& adv, const py::object& ret, const py::object& status,
         Launch&& launch) {
  const bool u8 = flags_are_uint8<P>({&terminated, &truncated, &mask}, "flags: terminated, truncated and mask");
  dispatch_float<P>(r, "rewards", [&](auto tag) {
    using T = decltype(tag);
    if (u8)
      gae_typed<P, T, std::uint8_t>(r, values, next_values, bootstrap, terminated, truncated, mask, gamma, lam, adv,
                                    ret, status, launch);
    else
      gae_typed<P, T, T>(r, values, next_values, bootstrap, terminated, truncated, mask, gamma, lam, adv, ret, status,
                         launch);
  });
}

}  // namespace pygenmod::bind::args
