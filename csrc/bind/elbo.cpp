// _cpu_elbo: bindings of the fused ELBO kernels (pygenmod/elbo.hpp). Arrays in, GIL released,
// no math here; the argument unpacking (and the shapes) is args/elbo.hpp, shared with _cuda_elbo.
#include "args/elbo.hpp"
#include "bind_common.hpp"
#include "pygenmod/elbo.hpp"

namespace py = pybind11;
using namespace pybind11::literals;
using namespace pygenmod;
using namespace pygenmod::bind;

static void elbo_fwd(py::array mu, py::array p, py::array L, py::array pm, py::array pp, int kind, double lo, double hi,
                     int lik, py::array x, py::array xi, py::array dec, py::array dp, int dkind, double beta,
                     py::array res, py::array log_lik, py::array kl, py::array status) {
  args::elbo::forward<HostArrays>(mu, p, L, pm, pp, kind, lo, hi, lik, x, xi, dec, dp, dkind, beta, res, log_lik, kl,
                                  status, nogil([](const auto& a, auto... o) { elbo::elbo_cpu(a, o...); }));
}

static void elbo_bwd(py::array mu, py::array p, py::array L, py::array pm, py::array pp, int kind, double lo, double hi,
                     int lik, py::array x, py::array xi, py::array dec, py::array dp, int dkind, double beta,
                     py::array gelbo, py::array gll, py::array gkl, py::array dmu, py::array dscale, py::array dL,
                     py::array dpm, py::array dpp, py::array ddec, py::array ddp) {
  args::elbo::backward<HostArrays>(mu, p, L, pm, pp, kind, lo, hi, lik, x, xi, dec, dp, dkind, beta, gelbo, gll, gkl,
                                   dmu, dscale, dL, dpm, dpp, ddec, ddp,
                                   nogil([](const auto& a, auto... o) { elbo::elbo_backward_cpu(a, o...); }));
}

PYBIND11_MODULE(_cpu_elbo, m) {
  pygenmod::shared_pool::adopt();
  m.doc() = "pygenmod fused VAE ELBO, compiled CPU kernels (OpenMP)";
  m.def("elbo", &elbo_fwd, "mu"_a, "scale"_a, "scale_tril"_a, "prior_mu"_a, "prior_scale"_a, "kind"_a, "lo"_a, "hi"_a,
        "likelihood"_a, "x"_a, "xi"_a, "dec"_a, "dec_scale"_a, "dec_kind"_a, "beta"_a, "elbo"_a, "log_lik"_a, "kl"_a,
        "status"_a);
  m.def("elbo_backward", &elbo_bwd, "mu"_a, "scale"_a, "scale_tril"_a, "prior_mu"_a, "prior_scale"_a, "kind"_a, "lo"_a,
        "hi"_a, "likelihood"_a, "x"_a, "xi"_a, "dec"_a, "dec_scale"_a, "dec_kind"_a, "beta"_a, "grad_elbo"_a,
        "grad_log_lik"_a, "grad_kl"_a, "dmu"_a, "dscale"_a, "dscale_tril"_a, "dprior_mu"_a, "dprior_scale"_a, "ddec"_a,
        "ddec_scale"_a);
}
