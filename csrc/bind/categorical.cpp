// _cpu_categorical: bindings of the categorical log-prob / entropy / KL kernels and their
// backward passes. Arrays in, GIL released, no math here. Masks are uint8 (B, K) or shared
// (1, K), or None; optional outputs are None.
#include "bind_common.hpp"
#include "pygenmod/categorical.hpp"

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
  auto a = py::reinterpret_borrow<py::array>(m);
  if (a.ndim() != 2 || (a.shape(0) != 1 && a.shape(0) != B))
    throw std::invalid_argument(std::string(name) + ": expected shape (B, K) or (1, K)");
  return {in_ptr<std::uint8_t>(a, name, {a.shape(0), K}), a.shape(0)};
}

index_t dim(const py::array& a, int i, const char* name) {
  if (a.ndim() != 2) throw std::invalid_argument(std::string(name) + ": expected shape (B, K)");
  return a.shape(i);
}

}  // namespace

PYBIND11_MODULE(_cpu_categorical, m) {
  m.doc() = "pygenmod categorical distributions (log-prob, entropy, KL), compiled CPU kernels (OpenMP)";
  m.attr("STATUS") =
      py::dict("OK"_a = int(categorical::OK), "P_ALL_MASKED"_a = int(categorical::P_ALL_MASKED),
               "P_NONFINITE"_a = int(categorical::P_NONFINITE), "Q_ALL_MASKED"_a = int(categorical::Q_ALL_MASKED),
               "Q_NONFINITE"_a = int(categorical::Q_NONFINITE), "BAD_ACTION"_a = int(categorical::BAD_ACTION));
  m.def(
      "log_prob",
      [](py::array x, py::object mask, py::array a, py::array out, py::array status) {
        dispatch_float(x, "logits", [&](auto tag) {
          using T = decltype(tag);
          const index_t B = dim(x, 0, "logits"), K = dim(x, 1, "logits");
          const T* px = in_ptr<T>(x, "logits", {B, K});
          const Mask mk = mask_of(mask, "mask", B, K);
          const auto* pa = in_ptr<std::int64_t>(a, "actions", {B});
          T* po = out_ptr<T>(out, "out", {B});
          auto* st = out_ptr<std::int32_t>(status, "status", {B});
          py::gil_scoped_release nogil;
          categorical::log_prob_cpu<T>(px, mk.ptr, mk.rows, pa, B, K, po, st);
        });
      },
      "logits"_a, "mask"_a, "actions"_a, "out"_a, "status"_a);

  m.def(
      "log_prob_backward",
      [](py::array x, py::object mask, py::array a, py::array g, py::array dx) {
        dispatch_float(x, "logits", [&](auto tag) {
          using T = decltype(tag);
          const index_t B = dim(x, 0, "logits"), K = dim(x, 1, "logits");
          const T* px = in_ptr<T>(x, "logits", {B, K});
          const Mask mk = mask_of(mask, "mask", B, K);
          const auto* pa = in_ptr<std::int64_t>(a, "actions", {B});
          const T* pg = in_ptr<T>(g, "grad", {B});
          T* pd = out_ptr<T>(dx, "grad_logits", {B, K});
          py::gil_scoped_release nogil;
          categorical::log_prob_backward_cpu<T>(px, mk.ptr, mk.rows, pa, B, K, pg, pd);
        });
      },
      "logits"_a, "mask"_a, "actions"_a, "grad"_a, "grad_logits"_a);

  m.def(
      "entropy",
      [](py::array x, py::object mask, py::array out, py::array status) {
        dispatch_float(x, "logits", [&](auto tag) {
          using T = decltype(tag);
          const index_t B = dim(x, 0, "logits"), K = dim(x, 1, "logits");
          const T* px = in_ptr<T>(x, "logits", {B, K});
          const Mask mk = mask_of(mask, "mask", B, K);
          T* po = out_ptr<T>(out, "out", {B});
          auto* st = out_ptr<std::int32_t>(status, "status", {B});
          py::gil_scoped_release nogil;
          categorical::entropy_cpu<T>(px, mk.ptr, mk.rows, B, K, po, st);
        });
      },
      "logits"_a, "mask"_a, "out"_a, "status"_a);

  m.def(
      "entropy_backward",
      [](py::array x, py::object mask, py::array g, py::array dx) {
        dispatch_float(x, "logits", [&](auto tag) {
          using T = decltype(tag);
          const index_t B = dim(x, 0, "logits"), K = dim(x, 1, "logits");
          const T* px = in_ptr<T>(x, "logits", {B, K});
          const Mask mk = mask_of(mask, "mask", B, K);
          const T* pg = in_ptr<T>(g, "grad", {B});
          T* pd = out_ptr<T>(dx, "grad_logits", {B, K});
          py::gil_scoped_release nogil;
          categorical::entropy_backward_cpu<T>(px, mk.ptr, mk.rows, B, K, pg, pd);
        });
      },
      "logits"_a, "mask"_a, "grad"_a, "grad_logits"_a);

  m.def(
      "kl",
      [](py::array p, py::array q, py::object p_mask, py::object q_mask, bool p_is_prob, py::array out,
         py::array status) {
        dispatch_float(q, "q_logits", [&](auto tag) {
          using T = decltype(tag);
          const index_t B = dim(q, 0, "q_logits"), K = dim(q, 1, "q_logits");
          const T* pp = in_ptr<T>(p, "p", {B, K});
          const T* pq = in_ptr<T>(q, "q_logits", {B, K});
          const Mask mp = mask_of(p_mask, "mask", B, K), mq = mask_of(q_mask, "q_mask", B, K);
          T* po = out_ptr<T>(out, "out", {B});
          auto* st = out_ptr<std::int32_t>(status, "status", {B});
          py::gil_scoped_release nogil;
          categorical::kl_cpu<T>(pp, pq, mp.ptr, mp.rows, mq.ptr, mq.rows, p_is_prob, B, K, po, st);
        });
      },
      "p"_a, "q_logits"_a, "p_mask"_a, "q_mask"_a, "p_is_prob"_a, "out"_a, "status"_a);

  m.def(
      "kl_backward",
      [](py::array p, py::array q, py::object p_mask, py::object q_mask, bool p_is_prob, py::array g, py::object dp,
         py::array dq) {
        dispatch_float(q, "q_logits", [&](auto tag) {
          using T = decltype(tag);
          const index_t B = dim(q, 0, "q_logits"), K = dim(q, 1, "q_logits");
          const T* pp = in_ptr<T>(p, "p", {B, K});
          const T* pq = in_ptr<T>(q, "q_logits", {B, K});
          const Mask mp = mask_of(p_mask, "mask", B, K), mq = mask_of(q_mask, "q_mask", B, K);
          const T* pg = in_ptr<T>(g, "grad", {B});
          T* pdp = nullptr;
          if (!dp.is_none()) {
            auto arr = py::reinterpret_borrow<py::array>(dp);
            pdp = out_ptr<T>(arr, "grad_p", {B, K});
          }
          T* pdq = out_ptr<T>(dq, "grad_q", {B, K});
          py::gil_scoped_release nogil;
          categorical::kl_backward_cpu<T>(pp, pq, mp.ptr, mp.rows, mq.ptr, mq.rows, p_is_prob, B, K, pg, pdp, pdq);
        });
      },
      "p"_a, "q_logits"_a, "p_mask"_a, "q_mask"_a, "p_is_prob"_a, "grad"_a, "grad_p"_a, "grad_q"_a);
}
