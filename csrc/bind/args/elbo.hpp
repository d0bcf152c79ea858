// The argument unpacking of the fused ELBO bindings, shared by _cpu_elbo and _cuda_elbo: arrays
// checked (array_access.hpp, policy P), then launch(args, outputs...) with the argument list of
// elbo::elbo_cpu / cuda::elbo_forward (and the backward pair), less the CUDA stream.
// Optional arrays have size 0 (null pointers). Shapes: mu (B, D); scale (B, D) or scale_tril
// (B, D, D) (exactly one non-empty); prior_mu, prior_scale (B, D); x (B, X) float or xi (B, X)
// int32; dec (S, B, X) or (S, B, X, K) for the categorical; dec_scale (S, B, X) or (X,), size 0
// for unit variance.
#pragma once

#include <cstdint>

#include "array_access.hpp"
#include "pygenmod/elbo.hpp"

namespace pygenmod::bind::args::elbo {
using namespace pygenmod::elbo;

// The kernel arguments, every pointer checked against the shapes mu and dec imply.
template <class P, class T>
Args<T> args_of(const py::object& mu, const py::object& p, const py::object& L, const py::object& pm,
                const py::object& pp, int kind, double lo, double hi, int lik, const py::object& x,
                const py::object& xi, const py::object& dec, const py::object& dp, int dkind, double beta) {
  if (lik < 0 || lik > 2) throw std::invalid_argument("likelihood: expected 0, 1 or 2");
  if (kind < 0 || kind > 2 || dkind < 0 || dkind > 2) throw std::invalid_argument("kind: expected 0, 1 or 2");
  Args<T> a{};
  a.B = dim<P>(mu, "mu", 0);
  a.D = dim<P>(mu, "mu", 1);
  a.S = dim<P>(dec, "dec", 0);
  a.X = dim<P>(dec, "dec", 2);
  a.K = lik == CATEGORICAL ? dim<P>(dec, "dec", 3) : 1;
  if (a.S < 1) throw std::invalid_argument("dec: expected at least one sample");
  if (lik == CATEGORICAL && a.K < 1) throw std::invalid_argument("dec: expected at least one category");
  a.mu = in<P, T>(mu, "mu", {a.B, a.D});
  a.L = opt_in<P, T>(L, "scale_tril", {a.B, a.D, a.D});
  a.p = a.L ? nullptr : in<P, T>(p, "scale", {a.B, a.D});
  a.pm = opt_in<P, T>(pm, "prior_mu", {a.B, a.D});
  a.pp = opt_in<P, T>(pp, "prior_scale", {a.B, a.D});
  if (a.L && (a.pm || a.pp)) throw std::invalid_argument("prior: only N(0, I) with scale_tril");
  a.kind = kind;
  a.lo = T(lo);
  a.hi = T(hi);
  a.lik = lik;
  if (lik == CATEGORICAL) {
    a.xi = in<P, std::int32_t>(xi, "x", {a.B, a.X});
    a.dec = in<P, T>(dec, "dec", {a.S, a.B, a.X, a.K});
  } else {
    a.x = in<P, T>(x, "x", {a.B, a.X});
    a.dec = in<P, T>(dec, "dec", {a.S, a.B, a.X});
  }
  if (lik == GAUSSIAN && size_of<P>(dp, "dec_scale") != 0) {  // (size 0: unit variance, a.dp null)
    a.dp_shared = shape_of<P>(dp, "dec_scale").size() == 1;
    a.dp = a.dp_shared ? in<P, T>(dp, "dec_scale", {a.X}) : in<P, T>(dp, "dec_scale", {a.S, a.B, a.X});
  }
  a.dkind = dkind;
  a.beta = T(beta);
  return a;
}

// launch(args, elbo, log_lik, kl, status)
template <class P, class Launch>
void forward(const py::object& mu, const py::object& p, const py::object& L, const py::object& pm, const py::object& pp,
             int kind, double lo, double hi, int lik, const py::object& x, const py::object& xi, const py::object& dec,
             const py::object& dp, int dkind, double beta, const py::object& res, const py::object& log_lik,
             const py::object& kl, const py::object& status, Launch&& launch) {
  dispatch_float<P>(mu, "mu", [&](auto tag) {
    using T = decltype(tag);
    const auto a = args_of<P, T>(mu, p, L, pm, pp, kind, lo, hi, lik, x, xi, dec, dp, dkind, beta);
    T* o = opt_out<P, T>(res, "elbo", {a.B});
    T* ll = opt_out<P, T>(log_lik, "log_lik", {a.B});
    T* k = opt_out<P, T>(kl, "kl", {a.B});
    auto* st = out<P, std::int32_t>(status, "status", {a.B});
    launch(a, o, ll, k, st);
  });
}

// launch(args, grad_elbo, grad_log_lik, grad_kl, dmu, dscale, dscale_tril, dprior_mu,
//        dprior_scale, ddec, ddec_scale)
template <class P, class Launch>
void backward(const py::object& mu, const py::object& p, const py::object& L, const py::object& pm,
              const py::object& pp, int kind, double lo, double hi, int lik, const py::object& x, const py::object& xi,
              const py::object& dec, const py::object& dp, int dkind, double beta, const py::object& gelbo,
              const py::object& gll, const py::object& gkl, const py::object& dmu, const py::object& dscale,
              const py::object& dL, const py::object& dpm, const py::object& dpp, const py::object& ddec,
              const py::object& ddp, Launch&& launch) {
  dispatch_float<P>(mu, "mu", [&](auto tag) {
    using T = decltype(tag);
    const auto a = args_of<P, T>(mu, p, L, pm, pp, kind, lo, hi, lik, x, xi, dec, dp, dkind, beta);
    const T* ge = opt_in<P, T>(gelbo, "grad_elbo", {a.B});
    const T* gl = opt_in<P, T>(gll, "grad_log_lik", {a.B});
    const T* gk = opt_in<P, T>(gkl, "grad_kl", {a.B});
    T* o1 = out<P, T>(dmu, "dmu", {a.B, a.D});
    T* o2 = a.L ? nullptr : out<P, T>(dscale, "dscale", {a.B, a.D});
    T* o3 = a.L ? out<P, T>(dL, "dscale_tril", {a.B, a.D, a.D}) : nullptr;
    T* o4 = a.pm ? opt_out<P, T>(dpm, "dprior_mu", {a.B, a.D}) : nullptr;
    T* o5 = a.pp ? opt_out<P, T>(dpp, "dprior_scale", {a.B, a.D}) : nullptr;
    T* o6 =
        lik == CATEGORICAL ? out<P, T>(ddec, "ddec", {a.S, a.B, a.X, a.K}) : out<P, T>(ddec, "ddec", {a.S, a.B, a.X});
    T* o7 = lik == GAUSSIAN && a.dp && !a.dp_shared ? opt_out<P, T>(ddp, "ddec_scale", {a.S, a.B, a.X}) : nullptr;
    launch(a, ge, gl, gk, o1, o2, o3, o4, o5, o6, o7);
  });
}

}  // namespace pygenmod::bind::args::elbo
