// _cpu_categorical: bindings of the categorical log-prob / entropy / KL kernels and their
// backward passes. Arrays in, GIL released, no math here; the argument unpacking is
// args/categorical.hpp (shared with _cuda_categorical).
#include "args/categorical.hpp"
#include "bind_common.hpp"
#include "pygenmod/categorical.hpp"

namespace py = pybind11;
using namespace pybind11::literals;
using namespace pygenmod;
using namespace pygenmod::bind;
namespace ca = pygenmod::bind::args::categorical;

PYBIND11_MODULE(_cpu_categorical, m) {
  pygenmod::shared_pool::adopt();
  m.doc() = "pygenmod categorical distributions (log-prob, entropy, KL), compiled CPU kernels (OpenMP)";
  m.attr("STATUS") =
      py::dict("OK"_a = int(categorical::OK), "P_ALL_MASKED"_a = int(categorical::P_ALL_MASKED),
               "P_NONFINITE"_a = int(categorical::P_NONFINITE), "Q_ALL_MASKED"_a = int(categorical::Q_ALL_MASKED),
               "Q_NONFINITE"_a = int(categorical::Q_NONFINITE), "BAD_ACTION"_a = int(categorical::BAD_ACTION));
  m.def(
      "log_prob",
      [](py::array x, py::object mask, py::array a, py::array res, py::array status) {
        ca::log_prob<HostArrays>(x, mask, a, res, status, nogil([](auto... p) { categorical::log_prob_cpu(p...); }));
      },
      "logits"_a, "mask"_a, "actions"_a, "out"_a, "status"_a);
  m.def(
      "log_prob_backward",
      [](py::array x, py::object mask, py::array a, py::array g, py::array dx) {
        ca::log_prob_backward<HostArrays>(x, mask, a, g, dx,
                                          nogil([](auto... p) { categorical::log_prob_backward_cpu(p...); }));
      },
      "logits"_a, "mask"_a, "actions"_a, "grad"_a, "grad_logits"_a);
  m.def(
      "entropy",
      [](py::array x, py::object mask, py::array res, py::array status) {
        ca::entropy<HostArrays>(x, mask, res, status, nogil([](auto... p) { categorical::entropy_cpu(p...); }));
      },
      "logits"_a, "mask"_a, "out"_a, "status"_a);
  m.def(
      "entropy_backward",
      [](py::array x, py::object mask, py::array g, py::array dx) {
        ca::entropy_backward<HostArrays>(x, mask, g, dx,
                                         nogil([](auto... p) { categorical::entropy_backward_cpu(p...); }));
      },
      "logits"_a, "mask"_a, "grad"_a, "grad_logits"_a);
  m.def(
      "kl",
      [](py::array p, py::array q, py::object p_mask, py::object q_mask, bool p_is_prob, py::array res,
         py::array status) {
        ca::kl<HostArrays>(p, q, p_mask, q_mask, p_is_prob, res, status,
                           nogil([](auto... a) { categorical::kl_cpu(a...); }));
      },
      "p"_a, "q_logits"_a, "p_mask"_a, "q_mask"_a, "p_is_prob"_a, "out"_a, "status"_a);
  m.def(
      "kl_backward",
      [](py::array p, py::array q, py::object p_mask, py::object q_mask, bool p_is_prob, py::array g, py::object dp,
         py::array dq) {
        ca::kl_backward<HostArrays>(p, q, p_mask, q_mask, p_is_prob, g, dp, dq,
                                    nogil([](auto... a) { categorical::kl_backward_cpu(a...); }));
      },
      "p"_a, "q_logits"_a, "p_mask"_a, "q_mask"_a, "p_is_prob"_a, "grad"_a, "grad_p"_a, "grad_q"_a);
}
