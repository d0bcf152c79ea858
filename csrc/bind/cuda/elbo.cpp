// _cuda_elbo: bindings of the CUDA ELBO launchers. Device arrays in (via
// __cuda_array_interface__), no math here; the argument unpacking is args/elbo.hpp (shared with
// _cpu_elbo).
#include "args/elbo.hpp"
#include "cuda_array.hpp"
#include "elbo.cuh"

namespace py = pybind11;
using namespace pybind11::literals;
using namespace pygenmod;
using namespace pygenmod::bind;

PYBIND11_MODULE(_cuda_elbo, m) {
  m.doc() = "pygenmod fused VAE ELBO, CUDA kernels";
  m.def(
      "elbo",
      [](py::object mu, py::object p, py::object L, py::object pm, py::object pp, int kind, double lo, double hi,
         int lik, py::object x, py::object xi, py::object dec, py::object dp, int dkind, double beta, py::object res,
         py::object log_lik, py::object kl, py::object status, std::uintptr_t st) {
        args::elbo::forward<DeviceArrays>(
            mu, p, L, pm, pp, kind, lo, hi, lik, x, xi, dec, dp, dkind, beta, res, log_lik, kl, status,
            [&](const auto& a, auto... o) { cuda::elbo_forward(a, o..., as_stream(st)); });
      },
      "mu"_a, "scale"_a, "scale_tril"_a, "prior_mu"_a, "prior_scale"_a, "kind"_a, "lo"_a, "hi"_a, "likelihood"_a, "x"_a,
      "xi"_a, "dec"_a, "dec_scale"_a, "dec_kind"_a, "beta"_a, "elbo"_a, "log_lik"_a, "kl"_a, "status"_a,
      "cuda_stream"_a = 0);
  m.def(
      "elbo_backward",
      [](py::object mu, py::object p, py::object L, py::object pm, py::object pp, int kind, double lo, double hi,
         int lik, py::object x, py::object xi, py::object dec, py::object dp, int dkind, double beta, py::object gelbo,
         py::object gll, py::object gkl, py::object dmu, py::object dscale, py::object dL, py::object dpm,
         py::object dpp, py::object ddec, py::object ddp, std::uintptr_t st) {
        args::elbo::backward<DeviceArrays>(
            mu, p, L, pm, pp, kind, lo, hi, lik, x, xi, dec, dp, dkind, beta, gelbo, gll, gkl, dmu, dscale, dL, dpm,
            dpp, ddec, ddp, [&](const auto& a, auto... o) { cuda::elbo_backward(a, o..., as_stream(st)); });
      },
      "mu"_a, "scale"_a, "scale_tril"_a, "prior_mu"_a, "prior_scale"_a, "kind"_a, "lo"_a, "hi"_a, "likelihood"_a, "x"_a,
      "xi"_a, "dec"_a, "dec_scale"_a, "dec_kind"_a, "beta"_a, "grad_elbo"_a, "grad_log_lik"_a, "grad_kl"_a, "dmu"_a,
      "dscale"_a, "dscale_tril"_a, "dprior_mu"_a, "dprior_scale"_a, "ddec"_a, "ddec_scale"_a, "cuda_stream"_a = 0);
}
