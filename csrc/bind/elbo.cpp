// _cpu_elbo: bindings of the fused ELBO kernels (pygenmod/elbo.hpp). Arrays in, GIL released,
// no math here. Optional arrays have size 0 (null pointers). Shapes: mu (B, D); scale (B, D) or
// scale_tril (B, D, D) (exactly one non-empty); prior_mu, prior_scale (B, D); x (B, X) float or
// xi (B, X) int32; dec (S, B, X) or (S, B, X, K) for the categorical; dec_scale (S, B, X) or (X,).
#include "bind_common.hpp"
#include "pygenmod/elbo.hpp"

namespace py = pybind11;
using namespace pybind11::literals;
using namespace pygenmod;
using namespace pygenmod::bind;

static py::ssize_t dim(const py::array& a, int i) { return a.ndim() > i ? a.shape(i) : 0; }

template <class T>
static const T* opt_in(const py::array& a, const char* name, std::initializer_list<py::ssize_t> shape) {
  return a.size() == 0 ? nullptr : in_ptr<T>(a, name, shape);
}
template <class T>
static T* opt_out(py::array& a, const char* name, std::initializer_list<py::ssize_t> shape) {
  return a.size() == 0 ? nullptr : out_ptr<T>(a, name, shape);
}

// The kernel arguments, every pointer checked against the shapes mu and dec imply.
template <class T>
static elbo::Args<T> args_of(const py::array& mu, const py::array& p, const py::array& L, const py::array& pm,
                             const py::array& pp, int kind, double lo, double hi, int lik, const py::array& x,
                             const py::array& xi, const py::array& dec, const py::array& dp, int dkind, double beta) {
  if (lik < 0 || lik > 2) throw std::invalid_argument("likelihood: expected 0, 1 or 2");
  if (kind < 0 || kind > 2 || dkind < 0 || dkind > 2) throw std::invalid_argument("kind: expected 0, 1 or 2");
  elbo::Args<T> a{};
  a.B = dim(mu, 0);
  a.D = dim(mu, 1);
  a.S = dim(dec, 0);
  a.X = dim(dec, 2);
  a.K = lik == elbo::CATEGORICAL ? dim(dec, 3) : 1;
  if (a.S < 1) throw std::invalid_argument("dec: expected at least one sample");
  if (lik == elbo::CATEGORICAL && a.K < 1) throw std::invalid_argument("dec: expected at least one category");
  a.mu = in_ptr<T>(mu, "mu", {a.B, a.D});
  a.L = opt_in<T>(L, "scale_tril", {a.B, a.D, a.D});
  a.p = a.L ? nullptr : in_ptr<T>(p, "scale", {a.B, a.D});
  a.pm = opt_in<T>(pm, "prior_mu", {a.B, a.D});
  a.pp = opt_in<T>(pp, "prior_scale", {a.B, a.D});
  if (a.L && (a.pm || a.pp)) throw std::invalid_argument("prior: only N(0, I) with scale_tril");
  a.kind = kind;
  a.lo = T(lo);
  a.hi = T(hi);
  a.lik = lik;
  if (lik == elbo::CATEGORICAL) {
    a.xi = in_ptr<std::int32_t>(xi, "x", {a.B, a.X});
    a.dec = in_ptr<T>(dec, "dec", {a.S, a.B, a.X, a.K});
  } else {
    a.x = in_ptr<T>(x, "x", {a.B, a.X});
    a.dec = in_ptr<T>(dec, "dec", {a.S, a.B, a.X});
  }
  if (lik == elbo::GAUSSIAN) {
    a.dp_shared = dp.ndim() == 1;
    a.dp = a.dp_shared ? in_ptr<T>(dp, "dec_scale", {a.X}) : in_ptr<T>(dp, "dec_scale", {a.S, a.B, a.X});
  }
  a.dkind = dkind;
  a.beta = T(beta);
  return a;
}

static void elbo_fwd(py::array mu, py::array p, py::array L, py::array pm, py::array pp, int kind, double lo, double hi,
                     int lik, py::array x, py::array xi, py::array dec, py::array dp, int dkind, double beta,
                     py::array out, py::array log_lik, py::array kl, py::array status) {
  dispatch_float(mu, "mu", [&](auto tag) {
    using T = decltype(tag);
    const auto a = args_of<T>(mu, p, L, pm, pp, kind, lo, hi, lik, x, xi, dec, dp, dkind, beta);
    T* o = opt_out<T>(out, "elbo", {a.B});
    T* ll = opt_out<T>(log_lik, "log_lik", {a.B});
    T* k = opt_out<T>(kl, "kl", {a.B});
    auto* st = out_ptr<std::int32_t>(status, "status", {a.B});
    py::gil_scoped_release nogil;
    elbo::elbo_cpu<T>(a, o, ll, k, st);
  });
}

static void elbo_bwd(py::array mu, py::array p, py::array L, py::array pm, py::array pp, int kind, double lo, double hi,
                     int lik, py::array x, py::array xi, py::array dec, py::array dp, int dkind, double beta,
                     py::array gelbo, py::array gll, py::array gkl, py::array dmu, py::array dscale, py::array dL,
                     py::array dpm, py::array dpp, py::array ddec, py::array ddp) {
  dispatch_float(mu, "mu", [&](auto tag) {
    using T = decltype(tag);
    const auto a = args_of<T>(mu, p, L, pm, pp, kind, lo, hi, lik, x, xi, dec, dp, dkind, beta);
    const T* ge = opt_in<T>(gelbo, "grad_elbo", {a.B});
    const T* gl = opt_in<T>(gll, "grad_log_lik", {a.B});
    const T* gk = opt_in<T>(gkl, "grad_kl", {a.B});
    T* o1 = out_ptr<T>(dmu, "dmu", {a.B, a.D});
    T* o2 = a.L ? nullptr : out_ptr<T>(dscale, "dscale", {a.B, a.D});
    T* o3 = a.L ? out_ptr<T>(dL, "dscale_tril", {a.B, a.D, a.D}) : nullptr;
    T* o4 = a.pm ? opt_out<T>(dpm, "dprior_mu", {a.B, a.D}) : nullptr;
    T* o5 = a.pp ? opt_out<T>(dpp, "dprior_scale", {a.B, a.D}) : nullptr;
    T* o6 = lik == elbo::CATEGORICAL ? out_ptr<T>(ddec, "ddec", {a.S, a.B, a.X, a.K})
                                     : out_ptr<T>(ddec, "ddec", {a.S, a.B, a.X});
    T* o7 = lik == elbo::GAUSSIAN && !a.dp_shared ? opt_out<T>(ddp, "ddec_scale", {a.S, a.B, a.X}) : nullptr;
    py::gil_scoped_release nogil;
    elbo::elbo_backward_cpu<T>(a, ge, gl, gk, o1, o2, o3, o4, o5, o6, o7);
  });
}

PYBIND11_MODULE(_cpu_elbo, m) {
  m.doc() = "pygenmod fused VAE ELBO, compiled CPU kernels (OpenMP)";
  m.def("elbo", &elbo_fwd, "mu"_a, "scale"_a, "scale_tril"_a, "prior_mu"_a, "prior_scale"_a, "kind"_a, "lo"_a, "hi"_a,
        "likelihood"_a, "x"_a, "xi"_a, "dec"_a, "dec_scale"_a, "dec_kind"_a, "beta"_a, "elbo"_a, "log_lik"_a, "kl"_a,
        "status"_a);
  m.def("elbo_backward", &elbo_bwd, "mu"_a, "scale"_a, "scale_tril"_a, "prior_mu"_a, "prior_scale"_a, "kind"_a, "lo"_a,
        "hi"_a, "likelihood"_a, "x"_a, "xi"_a, "dec"_a, "dec_scale"_a, "dec_kind"_a, "beta"_a, "grad_elbo"_a,
        "grad_log_lik"_a, "grad_kl"_a, "dmu"_a, "dscale"_a, "dscale_tril"_a, "dprior_mu"_a, "dprior_scale"_a, "ddec"_a,
        "ddec_scale"_a);
}
