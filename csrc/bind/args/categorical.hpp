// The argument unpacking of the categorical bindings, shared by _cpu_categorical and
// _cuda_categorical: arrays checked (array_access.hpp, policy P), then launch(...) with the
// argument list of categorical::*_cpu / cuda::categorical_* (less the CUDA stream). Masks are
// uint8 (B, K) or shared (1, K), or None; optional outputs are None.
#pragma once

#include <cstdint>
#include <utility>

#include "array_access.hpp"

namespace pygenmod::bind::args::categorical {

struct Mask {
  const std::uint8_t* ptr = nullptr;
  py::ssize_t rows = 0;
};

template <class P>
Mask mask_of(const py::object& m, const char* name, py::ssize_t B, py::ssize_t K) {
  if (m.is_none()) return {};
  const auto s = shape_of<P>(m, name);
  if (s.size() != 2 || (s[0] != 1 && s[0] != B))
    throw std::invalid_argument(std::string(name) + ": expected shape (B, K) or (1, K)");
  return {in<P, std::uint8_t>(m, name, {s[0], K}), s[0]};
}

template <class P>
std::pair<py::ssize_t, py::ssize_t> dims(const py::object& x, const char* name) {
  const auto s = shape_of<P>(x, name);
  if (s.size() != 2) throw std::invalid_argument(std::string(name) + ": expected shape (B, K)");
  return {s[0], s[1]};
}

template <class P, class Launch>
void log_prob(const py::object& x, const py::object& mask, const py::object& a, const py::object& res,
              const py::object& status, Launch&& launch) {
  dispatch_float<P>(x, "logits", [&](auto tag) {
    using T = decltype(tag);
    const auto [B, K] = dims<P>(x, "logits");
    const T* px = in<P, T>(x, "logits", {B, K});
    const Mask mk = mask_of<P>(mask, "mask", B, K);
    const auto* pa = in<P, std::int64_t>(a, "actions", {B});
    T* po = out<P, T>(res, "out", {B});
    auto* st = out<P, std::int32_t>(status, "status", {B});
    launch(px, mk.ptr, mk.rows, pa, B, K, po, st);
  });
}

template <class P, class Launch>
void log_prob_backward(const py::object& x, const py::object& mask, const py::object& a, const py::object& g,
                       const py::object& dx, Launch&& launch) {
  dispatch_float<P>(x, "logits", [&](auto tag) {
    using T = decltype(tag);
    const auto [B, K] = dims<P>(x, "logits");
    const T* px = in<P, T>(x, "logits", {B, K});
    const Mask mk = mask_of<P>(mask, "mask", B, K);
    const auto* pa = in<P, std::int64_t>(a, "actions", {B});
    const T* pg = in<P, T>(g, "grad", {B});
    T* pd = out<P, T>(dx, "grad_logits", {B, K});
    launch(px, mk.ptr, mk.rows, pa, B, K, pg, pd);
  });
}

template <class P, class Launch>
void entropy(const py::object& x, const py::object& mask, const py::object& res, const py::object& status,
             Launch&& launch) {
  dispatch_float<P>(x, "logits", [&](auto tag) {
    using T = decltype(tag);
    const auto [B, K] = dims<P>(x, "logits");
    const T* px = in<P, T>(x, "logits", {B, K});
    const Mask mk = mask_of<P>(mask, "mask", B, K);
    T* po = out<P, T>(res, "out", {B});
    auto* st = out<P, std::int32_t>(status, "status", {B});
    launch(px, mk.ptr, mk.rows, B, K, po, st);
  });
}

template <class P, class Launch>
void entropy_backward(const py::object& x, const py::object& mask, const py::object& g, const py::object& dx,
                      Launch&& launch) {
  dispatch_float<P>(x, "logits", [&](auto tag) {
    using T = decltype(tag);
    const auto [B, K] = dims<P>(x, "logits");
    const T* px = in<P, T>(x, "logits", {B, K});
    const Mask mk = mask_of<P>(mask, "mask", B, K);
    const T* pg = in<P, T>(g, "grad", {B});
    T* pd = out<P, T>(dx, "grad_logits", {B, K});
    launch(px, mk.ptr, mk.rows, B, K, pg, pd);
  });
}

template <class P, class Launch>
void kl(const py::object& p, const py::object& q, const py::object& p_mask, const py::object& q_mask, bool p_is_prob,
        const py::object& res, const py::object& status, Launch&& launch) {
  dispatch_float<P>(q, "q_logits", [&](auto tag) {
    using T = decltype(tag);
    const auto [B, K] = dims<P>(q, "q_logits");
    const T* pp = in<P, T>(p, "p", {B, K});
    const T* pq = in<P, T>(q, "q_logits", {B, K});
    const Mask mp = mask_of<P>(p_mask, "mask", B, K), mq = mask_of<P>(q_mask, "q_mask", B, K);
    T* po = out<P, T>(res, "out", {B});
    auto* st = out<P, std::int32_t>(status, "status", {B});
    launch(pp, pq, mp.ptr, mp.rows, mq.ptr, mq.rows, p_is_prob, B, K, po, st);
  });
}

template <class P, class Launch>
void kl_backward(const py::object& p, const py::object& q, const py::object& p_mask, const py::object& q_mask,
                 bool p_is_prob, const py::object& g, const py::object& dp, const py::object& dq, Launch&& launch) {
  dispatch_float<P>(q, "q_logits", [&](auto tag) {
    using T = decltype(tag);
    const auto [B, K] = dims<P>(q, "q_logits");
    const T* pp = in<P, T>(p, "p", {B, K});
    const T* pq = in<P, T>(q, "q_logits", {B, K});
    const Mask mp = mask_of<P>(p_mask, "mask", B, K), mq = mask_of<P>(q_mask, "q_mask", B, K);
    const T* pg = in<P, T>(g, "grad", {B});
    T* pdp = out_or_null<P, T>(dp, "grad_p", {B, K});
    T* pdq = out<P, T>(dq, "grad_q", {B, K});
    launch(pp, pq, mp.ptr, mp.rows, mq.ptr, mq.rows, p_is_prob, B, K, pg, pdp, pdq);
  });
}

}  // namespace pygenmod::bind::args::categorical
