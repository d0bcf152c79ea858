// _cuda_categorical: bindings of the CUDA categorical launchers. Device arrays in, no math here;
// the argument unpacking is args/categorical.hpp (shared with _cpu_categorical).
#include "args/categorical.hpp"
#include "categorical.cuh"
#include "cuda_array.hpp"

namespace py = pybind11;
using namespace pybind11::literals;
using namespace pygenmod;
using namespace pygenmod::bind;
namespace ca = pygenmod::bind::args::categorical;

PYBIND11_MODULE(_cuda_categorical, m) {
  m.doc() = "pygenmod categorical distributions (log-prob, entropy, KL), CUDA kernels";
  m.def(
      "log_prob",
      [](py::object x, py::object mask, py::object a, py::object res, py::object status, std::uintptr_t st) {
        ca::log_prob<DeviceArrays>(x, mask, a, res, status,
                                   [&](auto... p) { cuda::categorical_log_prob(p..., as_stream(st)); });
      },
      "logits"_a, "mask"_a, "actions"_a, "out"_a, "status"_a, "stream"_a = 0);
  m.def(
      "log_prob_backward",
      [](py::object x, py::object mask, py::object a, py::object g, py::object dx, std::uintptr_t st) {
        ca::log_prob_backward<DeviceArrays>(
            x, mask, a, g, dx, [&](auto... p) { cuda::categorical_log_prob_backward(p..., as_stream(st)); });
      },
      "logits"_a, "mask"_a, "actions"_a, "grad"_a, "grad_logits"_a, "stream"_a = 0);
  m.def(
      "entropy",
      [](py::object x, py::object mask, py::object res, py::object status, std::uintptr_t st) {
        ca::entropy<DeviceArrays>(x, mask, res, status,
                                  [&](auto... p) { cuda::categorical_entropy(p..., as_stream(st)); });
      },
      "logits"_a, "mask"_a, "out"_a, "status"_a, "stream"_a = 0);
  m.def(
      "entropy_backward",
      [](py::object x, py::object mask, py::object g, py::object dx, std::uintptr_t st) {
        ca::entropy_backward<DeviceArrays>(x, mask, g, dx,
                                           [&](auto... p) { cuda::categorical_entropy_backward(p..., as_stream(st)); });
      },
      "logits"_a, "mask"_a, "grad"_a, "grad_logits"_a, "stream"_a = 0);
  m.def(
      "kl",
      [](py::object p, py::object q, py::object p_mask, py::object q_mask, bool p_is_prob, py::object res,
         py::object status, std::uintptr_t st) {
        ca::kl<DeviceArrays>(p, q, p_mask, q_mask, p_is_prob, res, status,
                             [&](auto... a) { cuda::categorical_kl(a..., as_stream(st)); });
      },
      "p"_a, "q_logits"_a, "p_mask"_a, "q_mask"_a, "p_is_prob"_a, "out"_a, "status"_a, "stream"_a = 0);
  m.def(
      "kl_backward",
      [](py::object p, py::object q, py::object p_mask, py::object q_mask, bool p_is_prob, py::object g, py::object dp,
         py::object dq, std::uintptr_t st) {
        ca::kl_backward<DeviceArrays>(p, q, p_mask, q_mask, p_is_prob, g, dp, dq,
                                      [&](auto... a) { cuda::categorical_kl_backward(a..., as_stream(st)); });
      },
      "p"_a, "q_logits"_a, "p_mask"_a, "q_mask"_a, "p_is_prob"_a, "grad"_a, "grad_p"_a, "grad_q"_a, "stream"_a = 0);
}
