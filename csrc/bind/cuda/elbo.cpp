// _cuda_elbo: bindings of the CUDA ELBO launchers. Device arrays in (via
// __cuda_array_interface__), no math here; the same arguments as _cpu_elbo (csrc/bind/elbo.cpp).
#include "cuda_array.hpp"
#include "elbo.cuh"

namespace py = pybind11;
using namespace pybind11::literals;
using namespace pygenmod;
using namespace pygenmod::bind;

static py::ssize_t numel(const py::object& a, const char* name) {
  py::ssize_t n = 1;
  for (auto s : device_shape(a, name)) n *= s;
  return n;
}
static py::ssize_t dim(const py::object& a, const char* name, size_t i) {
  auto s = device_shape(a, name);
  return s.size() > i ? s[i] : 0;
}
static size_t ndim(const py::object& a, const char* name) { return device_shape(a, name).size(); }
template <class T>
static T* opt(const py::object& a, const char* name, std::initializer_list<py::ssize_t> shape, bool w = false) {
  return numel(a, name) == 0 ? nullptr : device_ptr<T>(a, name, shape, w);
}

template <class F>
static void by_dtype(const py::object& a, const char* name, F&& f) {
  const auto t = device_typestr(a, name);
  if (t == "<f8") return f(double{});
  if (t == "<f4") return f(float{});
  throw std::invalid_argument(std::string(name) + ": expected float32 or float64");
}

template <class T>
static elbo::Args<T> args_of(const py::object& mu, const py::object& p, const py::object& L, const py::object& pm,
                             const py::object& pp, int kind, double lo, double hi, int lik, const py::object& x,
                             const py::object& xi, const py::object& dec, const py::object& dp, int dkind,
                             double beta) {
  if (lik < 0 || lik > 2) throw std::invalid_argument("likelihood: expected 0, 1 or 2");
  if (kind < 0 || kind > 2 || dkind < 0 || dkind > 2) throw std::invalid_argument("kind: expected 0, 1 or 2");
  elbo::Args<T> a{};
  a.B = dim(mu, "mu", 0);
  a.D = dim(mu, "mu", 1);
  a.S = dim(dec, "dec", 0);
  a.X = dim(dec, "dec", 2);
  a.K = lik == elbo::CATEGORICAL ? dim(dec, "dec", 3) : 1;
  if (a.S < 1) throw std::invalid_argument("dec: expected at least one sample");
  if (lik == elbo::CATEGORICAL && a.K < 1) throw std::invalid_argument("dec: expected at least one category");
  a.mu = device_ptr<T>(mu, "mu", {a.B, a.D});
  a.L = opt<T>(L, "scale_tril", {a.B, a.D, a.D});
  a.p = a.L ? nullptr : device_ptr<T>(p, "scale", {a.B, a.D});
  a.pm = opt<T>(pm, "prior_mu", {a.B, a.D});
  a.pp = opt<T>(pp, "prior_scale", {a.B, a.D});
  if (a.L && (a.pm || a.pp)) throw std::invalid_argument("prior: only N(0, I) with scale_tril");
  a.kind = kind;
  a.lo = T(lo);
  a.hi = T(hi);
  a.lik = lik;
  if (lik == elbo::CATEGORICAL) {
    a.xi = device_ptr<std::int32_t>(xi, "x", {a.B, a.X});
    a.dec = device_ptr<T>(dec, "dec", {a.S, a.B, a.X, a.K});
  } else {
    a.x = device_ptr<T>(x, "x", {a.B, a.X});
    a.dec = device_ptr<T>(dec, "dec", {a.S, a.B, a.X});
  }
  if (lik == elbo::GAUSSIAN) {
    a.dp_shared = ndim(dp, "dec_scale") == 1;
    a.dp = a.dp_shared ? device_ptr<T>(dp, "dec_scale", {a.X}) : device_ptr<T>(dp, "dec_scale", {a.S, a.B, a.X});
  }
  a.dkind = dkind;
  a.beta = T(beta);
  return a;
}

PYBIND11_MODULE(_cuda_elbo, m) {
  m.doc() = "pygenmod fused VAE ELBO, CUDA kernels";
  m.def(
      "elbo",
      [](py::object mu, py::object p, py::object L, py::object pm, py::object pp, int kind, double lo, double hi,
         int lik, py::object x, py::object xi, py::object dec, py::object dp, int dkind, double beta, py::object out,
         py::object log_lik, py::object kl, py::object status, std::uintptr_t st) {
        by_dtype(mu, "mu", [&](auto tag) {
          using T = decltype(tag);
          const auto a = args_of<T>(mu, p, L, pm, pp, kind, lo, hi, lik, x, xi, dec, dp, dkind, beta);
          cuda::elbo_forward<T>(a, opt<T>(out, "elbo", {a.B}, true), opt<T>(log_lik, "log_lik", {a.B}, true),
                                opt<T>(kl, "kl", {a.B}, true), device_ptr<std::int32_t>(status, "status", {a.B}, true),
                                as_stream(st));
        });
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
        by_dtype(mu, "mu", [&](auto tag) {
          using T = decltype(tag);
          const auto a = args_of<T>(mu, p, L, pm, pp, kind, lo, hi, lik, x, xi, dec, dp, dkind, beta);
          T* o2 = a.L ? nullptr : device_ptr<T>(dscale, "dscale", {a.B, a.D}, true);
          T* o3 = a.L ? device_ptr<T>(dL, "dscale_tril", {a.B, a.D, a.D}, true) : nullptr;
          T* o4 = a.pm ? opt<T>(dpm, "dprior_mu", {a.B, a.D}, true) : nullptr;
          T* o5 = a.pp ? opt<T>(dpp, "dprior_scale", {a.B, a.D}, true) : nullptr;
          T* o6 = lik == elbo::CATEGORICAL ? device_ptr<T>(ddec, "ddec", {a.S, a.B, a.X, a.K}, true)
                                           : device_ptr<T>(ddec, "ddec", {a.S, a.B, a.X}, true);
          T* o7 = lik == elbo::GAUSSIAN && !a.dp_shared ? opt<T>(ddp, "ddec_scale", {a.S, a.B, a.X}, true) : nullptr;
          cuda::elbo_backward<T>(a, opt<T>(gelbo, "grad_elbo", {a.B}), opt<T>(gll, "grad_log_lik", {a.B}),
                                 opt<T>(gkl, "grad_kl", {a.B}), device_ptr<T>(dmu, "dmu", {a.B, a.D}, true), o2, o3, o4,
                                 o5, o6, o7, as_stream(st));
        });
      },
      "mu"_a, "scale"_a, "scale_tril"_a, "prior_mu"_a, "prior_scale"_a, "kind"_a, "lo"_a, "hi"_a, "likelihood"_a, "x"_a,
      "xi"_a, "dec"_a, "dec_scale"_a, "dec_kind"_a, "beta"_a, "grad_elbo"_a, "grad_log_lik"_a, "grad_kl"_a, "dmu"_a,
      "dscale"_a, "dscale_tril"_a, "dprior_mu"_a, "dprior_scale"_a, "ddec"_a, "ddec_scale"_a, "cuda_stream"_a = 0);
}
