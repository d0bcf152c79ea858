// _cuda_categorical: bindings of the CUDA categorical launchers. Device arrays in, no math here.
// Masks are uint8 (B, K) or shared (1, K), or None; optional outputs are None.
#include "categorical.cuh"
#include "cuda_array.hpp"

namespace py = pybind11;
using namespace pybind11::literals;
using namespace pygenmod;
using namespace pygenmod::bind;

namespace {

struct Mask {
  const std::uint8_t* ptr = nullptr;
  index_t rows = 0;
};

Mask mask_of(const py::object& m, const char* name, index_t B, index_t K) {
  if (m.is_none()) return {};
  auto s = device_shape(m, name);
  if (s.size() != 2 || (s[0] != 1 && s[0] != B))
    throw std::invalid_argument(std::string(name) + ": expected (B, K) or (1, K)");
  return {device_ptr<std::uint8_t>(m, name, {s[0], K}), s[0]};
}

std::pair<index_t, index_t> rows(const py::object& x, const char* name) {
  auto s = device_shape(x, name);
  if (s.size() != 2) throw std::invalid_argument(std::string(name) + ": expected shape (B, K)");
  return {s[0], s[1]};
}

template <class F>
void by_dtype(const py::object& a, const char* name, F&& f) {
  const auto t = device_typestr(a, name);
  if (t == "<f8") return f(double{});
  if (t == "<f4") return f(float{});
  throw std::invalid_argument(std::string(name) + ": expected float32 or float64");
}

}  // namespace

PYBIND11_MODULE(_cuda_categorical, m) {
  m.doc() = "pygenmod categorical distributions (log-prob, entropy, KL), CUDA kernels";
  m.def(
      "log_prob",
      [](py::object x, py::object mask, py::object a, py::object out, py::object status, std::uintptr_t st) {
        by_dtype(x, "logits", [&](auto tag) {
          using T = decltype(tag);
          auto [B, K] = rows(x, "logits");
          const Mask mk = mask_of(mask, "mask", B, K);
          cuda::categorical_log_prob<T>(device_ptr<T>(x, "logits", {B, K}), mk.ptr, mk.rows,
                                        device_ptr<std::int64_t>(a, "actions", {B}), B, K,
                                        device_ptr<T>(out, "out", {B}, true),
                                        device_ptr<std::int32_t>(status, "status", {B}, true), as_stream(st));
        });
      },
      "logits"_a, "mask"_a, "actions"_a, "out"_a, "status"_a, "stream"_a = 0);

  m.def(
      "log_prob_backward",
      [](py::object x, py::object mask, py::object a, py::object g, py::object dx, std::uintptr_t st) {
        by_dtype(x, "logits", [&](auto tag) {
          using T = decltype(tag);
          auto [B, K] = rows(x, "logits");
          const Mask mk = mask_of(mask, "mask", B, K);
          cuda::categorical_log_prob_backward<T>(
              device_ptr<T>(x, "logits", {B, K}), mk.ptr, mk.rows, device_ptr<std::int64_t>(a, "actions", {B}), B, K,
              device_ptr<T>(g, "grad", {B}), device_ptr<T>(dx, "grad_logits", {B, K}, true), as_stream(st));
        });
      },
      "logits"_a, "mask"_a, "actions"_a, "grad"_a, "grad_logits"_a, "stream"_a = 0);

  m.def(
      "entropy",
      [](py::object x, py::object mask, py::object out, py::object status, std::uintptr_t st) {
        by_dtype(x, "logits", [&](auto tag) {
          using T = decltype(tag);
          auto [B, K] = rows(x, "logits");
          const Mask mk = mask_of(mask, "mask", B, K);
          cuda::categorical_entropy<T>(device_ptr<T>(x, "logits", {B, K}), mk.ptr, mk.rows, B, K,
                                       device_ptr<T>(out, "out", {B}, true),
                                       device_ptr<std::int32_t>(status, "status", {B}, true), as_stream(st));
        });
      },
      "logits"_a, "mask"_a, "out"_a, "status"_a, "stream"_a = 0);

  m.def(
      "entropy_backward",
      [](py::object x, py::object mask, py::object g, py::object dx, std::uintptr_t st) {
        by_dtype(x, "logits", [&](auto tag) {
          using T = decltype(tag);
          auto [B, K] = rows(x, "logits");
          const Mask mk = mask_of(mask, "mask", B, K);
          cuda::categorical_entropy_backward<T>(device_ptr<T>(x, "logits", {B, K}), mk.ptr, mk.rows, B, K,
                                                device_ptr<T>(g, "grad", {B}),
                                                device_ptr<T>(dx, "grad_logits", {B, K}, true), as_stream(st));
        });
      },
      "logits"_a, "mask"_a, "grad"_a, "grad_logits"_a, "stream"_a = 0);

  m.def(
      "kl",
      [](py::object p, py::object q, py::object p_mask, py::object q_mask, bool p_is_prob, py::object out,
         py::object status, std::uintptr_t st) {
        by_dtype(q, "q_logits", [&](auto tag) {
          using T = decltype(tag);
          auto [B, K] = rows(q, "q_logits");
          const Mask mp = mask_of(p_mask, "mask", B, K), mq = mask_of(q_mask, "q_mask", B, K);
          cuda::categorical_kl<T>(device_ptr<T>(p, "p", {B, K}), device_ptr<T>(q, "q_logits", {B, K}), mp.ptr, mp.rows,
                                  mq.ptr, mq.rows, p_is_prob, B, K, device_ptr<T>(out, "out", {B}, true),
                                  device_ptr<std::int32_t>(status, "status", {B}, true), as_stream(st));
        });
      },
      "p"_a, "q_logits"_a, "p_mask"_a, "q_mask"_a, "p_is_prob"_a, "out"_a, "status"_a, "stream"_a = 0);

  m.def(
      "kl_backward",
      [](py::object p, py::object q, py::object p_mask, py::object q_mask, bool p_is_prob, py::object g, py::object dp,
         py::object dq, std::uintptr_t st) {
        by_dtype(q, "q_logits", [&](auto tag) {
          using T = decltype(tag);
          auto [B, K] = rows(q, "q_logits");
          const Mask mp = mask_of(p_mask, "mask", B, K), mq = mask_of(q_mask, "q_mask", B, K);
          T* pdp = dp.is_none() ? nullptr : device_ptr<T>(dp, "grad_p", {B, K}, true);
          cuda::categorical_kl_backward<T>(device_ptr<T>(p, "p", {B, K}), device_ptr<T>(q, "q_logits", {B, K}), mp.ptr,
                                           mp.rows, mq.ptr, mq.rows, p_is_prob, B, K, device_ptr<T>(g, "grad", {B}),
                                           pdp, device_ptr<T>(dq, "grad_q", {B, K}, true), as_stream(st));
        });
      },
      "p"_a, "q_logits"_a, "p_mask"_a, "q_mask"_a, "p_is_prob"_a, "grad"_a, "grad_p"_a, "grad_q"_a, "stream"_a = 0);
}
