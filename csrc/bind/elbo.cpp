// _cpu_elbo: bindings of the fused ELBO kernels (pygenmod/elbo.hpp). Arrays in, GIL released,
// no math here; the argument unpacking (and the shapes) is args/elbo.hpp, shared with _cuda_elbo.
#include "args/elbo.hpp"
#include "bind_common.hpp"
#include "fast_path.hpp"
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

// ----------------------------------------------------------------------------- one-call fast path
// (issue 11; fast_path.hpp) The common VAE call, forward and backward: mu and logvar (B, D),
// x (B, X), dec (B, X) or (S, B, X), all of one float dtype (strided ones copied:
// fast::Inputs), a Gaussian likelihood of unit variance or a Bernoulli one, an exact float or
// int beta, no prior and no clamp: the general path's kernel and arguments, so the same bits.
// None wherever the general Python path must run (it then validates again and raises its own
// error).

// The likelihood's code for the names this path takes ("gaussian", "bernoulli"), else -1.
static int fast_likelihood(const py::handle& h) {
  if (!PyUnicode_CheckExact(h.ptr())) return -1;
  if (PyUnicode_CompareWithASCIIString(h.ptr(), "gaussian") == 0) return elbo::GAUSSIAN;
  if (PyUnicode_CompareWithASCIIString(h.ptr(), "bernoulli") == 0) return elbo::BERNOULLI;
  return -1;
}

// The data the likelihood accepts (the general path's checks): finite for the Gaussian, in
// [0, 1] for the Bernoulli (NaN fails both).
template <class T>
static bool data_ok(const T* x, py::ssize_t n, int lik) {
  if (lik == elbo::GAUSSIAN) return fast::all_finite(x, n);
  bool ok = true;
  for (py::ssize_t i = 0; i < n; ++i) ok &= x[i] >= T(0) && x[i] <= T(1);
  return ok;
}

// The kernel's arguments, or false when the call is not this path's.
template <class T>
static bool fast_args(fast::Inputs& in, const py::array& x, const py::array& dec, const py::array& mu,
                      const py::array& logvar, int lik, double beta, elbo::Args<T>& a) {
  if (mu.ndim() != 2 || x.ndim() != 2) return false;
  const T* m = in.get<T>(mu);
  const T* p = m ? in.get<T>(logvar) : nullptr;
  const T* px = p ? in.get<T>(x) : nullptr;
  const T* pd = px ? in.get<T>(dec) : nullptr;
  if (!pd) return false;
  a.B = mu.shape(0);
  a.D = mu.shape(1);
  a.X = x.shape(1);
  a.S = dec.ndim() == 3 ? dec.shape(0) : 1;
  if (a.B < 1 || a.S < 1 || !fast::shape_is(logvar, {a.B, a.D}) || x.shape(0) != a.B) return false;
  if (!(dec.ndim() == 2 ? fast::shape_is(dec, {a.B, a.X}) : fast::shape_is(dec, {a.S, a.B, a.X}))) return false;
  if (!std::isfinite(beta) || beta < 0 || !data_ok(px, a.B * a.X, lik)) return false;
  a.mu = m;
  a.p = p;
  a.kind = sampling::LOGVAR;
  a.lo = -std::numeric_limits<T>::infinity();
  a.hi = std::numeric_limits<T>::infinity();
  a.lik = lik;
  a.x = px;
  a.dec = pd;
  a.beta = T(beta);
  a.K = 1;
  return true;  // (L, the prior and the decoder's scale stay null: N(0, I) prior, unit variance)
}

// (elbo, log_lik, kl), or None.
template <class T>
static py::object elbo_fast_t(const py::array& x, const py::array& dec, const py::array& mu, const py::array& logvar,
                              int lik, double beta) {
  elbo::Args<T> a{};
  fast::Inputs in;
  if (!fast_args<T>(in, x, dec, mu, logvar, lik, beta, a)) return py::none();
  auto out = fast::empty<T>({a.B});
  auto ll = fast::empty<T>({a.B});
  auto kl = fast::empty<T>({a.B});
  std::vector<std::int32_t> status(a.B);
  {
    fast::ReleaseIfLarge nogil(a.B * (a.D + a.S * a.X));
    elbo::elbo_cpu<T>(a, out.mutable_data(), ll.mutable_data(), kl.mutable_data(), status.data());
  }
  if (!fast::all_clean(status)) return py::none();
  return py::make_tuple(out, ll, kl);
}

// An upstream gradient: None (absent, nullptr) or a finite (B,) array of T (the general path
// rejects NaN / inf); false for anything else.
template <class T>
static bool upstream(fast::Inputs& in, const py::handle& g, py::ssize_t B, const T*& out) {
  out = nullptr;
  if (g.is_none()) return true;
  if (!py::isinstance<py::array>(g)) return false;
  const auto a = py::reinterpret_borrow<py::array>(g);
  if (!fast::shape_is(a, {B})) return false;
  out = in.get<T>(a);
  return out && fast::all_finite(out, B);
}

// (grad_dec, grad_mu, grad_logvar), or None.
template <class T>
static py::object elbo_backward_fast_t(const py::array& x, const py::array& dec, const py::array& mu,
                                       const py::array& logvar, int lik, double beta, const py::handle& grad_elbo,
                                       const py::handle& grad_log_lik, const py::handle& grad_kl) {
  elbo::Args<T> a{};
  fast::Inputs in;
  const T *ge, *gl, *gk;
  if (!fast_args<T>(in, x, dec, mu, logvar, lik, beta, a) || !upstream(in, grad_elbo, a.B, ge) ||
      !upstream(in, grad_log_lik, a.B, gl) || !upstream(in, grad_kl, a.B, gk))
    return py::none();
  auto ddec = fast::empty<T>(dec.shape(), static_cast<int>(dec.ndim()));
  auto dmu = fast::empty<T>({a.B, a.D});
  auto dlv = fast::empty<T>({a.B, a.D});
  {
    fast::ReleaseIfLarge nogil(a.B * (a.D + a.S * a.X));
    elbo::elbo_backward_cpu<T>(a, ge, gl, gk, dmu.mutable_data(), dlv.mutable_data(), nullptr, nullptr, nullptr,
                               ddec.mutable_data(), nullptr);
  }
  return py::make_tuple(ddec, dmu, dlv);
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
  m.def("elbo_fast",
        [](py::array x, py::array dec, py::array mu, py::array logvar, py::handle likelihood,
           py::handle beta) -> py::object {
          double b;
          const int lik = fast_likelihood(likelihood);
          if (lik < 0 || !fast::number(beta, b)) return py::none();
          return fast::by_float_dtype(mu, [&](auto t) { return elbo_fast_t<decltype(t)>(x, dec, mu, logvar, lik, b); });
        });
  m.def("elbo_backward_fast",
        [](py::array x, py::array dec, py::array mu, py::array logvar, py::handle likelihood, py::handle beta,
           py::handle grad_elbo, py::handle grad_log_lik, py::handle grad_kl) -> py::object {
          double b;
          const int lik = fast_likelihood(likelihood);
          if (lik < 0 || !fast::number(beta, b)) return py::none();
          return fast::by_float_dtype(mu, [&](auto t) {
            return elbo_backward_fast_t<decltype(t)>(x, dec, mu, logvar, lik, b, grad_elbo, grad_log_lik, grad_kl);
          });
        });
}
