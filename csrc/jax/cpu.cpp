// _jax_ffi: XLA FFI handlers (CPU) of pygenmod's kernels, for pygenmod.jax. Each handler checks
// its buffers and calls the same kernel body as the pybind binding in csrc/bind/ -- no math here.
// The module only hands out the handlers as PyCapsules; pygenmod/jax.py registers them.
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "args.hpp"
#include "shared_pool.hpp"
#include "pygenmod/sampling.hpp"
#include "pygenmod/gmm.hpp"
#include "pygenmod/returns.hpp"

namespace py = pybind11;
using namespace pygenmod;
using namespace pygenmod::jaxffi;

namespace {

ffi::Error gae(Buf r, Buf v, Buf nv, Buf boot, Buf te, Buf tr, Buf mk, Buf gamma, Buf lam, Out adv, Out ret,
               Out status) {
  return guarded([&] {
    dispatch_float(r, "rewards", [&](auto tag) {
      using T = decltype(tag);
      const auto a = gae_args<T>(r, v, nv, boot, te, tr, mk, gamma, lam, adv, ret, status);
      returns::gae_cpu<T, std::uint8_t>(a.r, a.v, a.nv, a.boot, a.te, a.tr, a.mk, a.gamma, a.lam, a.Tn, a.B, a.adv,
                                        a.ret, a.status);
    });
  });
}

// The kernel reads and writes int64 actions: an int32 policy goes through a copy (a
// conversion, not math); actions are range-checked here, as the pybind binding does.
ffi::Error backup(Buf P, Buf R, Buf V, Buf gamma, Buf pi_det, Buf pi_stoch, Buf tau, Out Q, Out V_out, Out policy,
                  i64 kind) {
  return guarded([&] {
    dispatch_backup(P, policy, [&](auto t, auto i) {
      using T = decltype(t);
      using I = decltype(i);
      const auto a = backup_args<T, I>(P, R, V, gamma, pi_det, pi_stoch, tau, kind, Q, V_out, policy);
      const i64 n = a.B * a.S;
      std::vector<i64> det(a.pi_det ? n : 0), pol(n);
      for (i64 k = 0; k < static_cast<i64>(det.size()); ++k) {
        det[k] = a.pi_det[k];
        if (det[k] < 0 || det[k] >= a.A) throw std::invalid_argument("policy: action out of range");
      }
      mdp::backup_sweep_cpu(mdp::Dense<T>{a.P, a.S, a.A}, a.R, a.V, a.gamma, a.B, a.kind,
                            a.pi_det ? det.data() : nullptr, a.pi_stoch, a.tau, a.Q, a.V_out, pol.data());
      for (i64 k = 0; k < n; ++k) a.policy[k] = static_cast<I>(pol[k]);
    });
  });
}

ffi::Error spatial_fwd(Buf x, Buf inv, Buf mask, Out kp, Out cov, Out stats, bool cl, double x0, double dx, double y0,
                       double dy) {
  return guarded([&] {
    dispatch_float(x, "x", [&](auto tag) {
      using T = decltype(tag);
      spatial::forward_cpu(spatial_fwd_args<T>(x, inv, mask, kp, cov, stats, {cl, x0, dx, y0, dy}), cl);
    });
  });
}

ffi::Error spatial_bwd(Buf x, Buf inv, Buf mask, Buf stats, Buf kp, Buf cov, Buf g_kp, Buf g_cov, Out gx, Out g_temp,
                       bool cl, double x0, double dx, double y0, double dy) {
  return guarded([&] {
    dispatch_float(x, "x", [&](auto tag) {
      using T = decltype(tag);
      spatial::backward_cpu(
          spatial_bwd_args<T>(x, inv, mask, stats, kp, cov, g_kp, g_cov, gx, g_temp, {cl, x0, dx, y0, dy}), cl);
    });
  });
}

// mu, scale, eps?, seed words -> z (S, B, D), kl (B,), log_q (S, B)?, status (B,)
ffi::Error normal_head(Buf mu, Buf p, Buf eps, Buf key, Out z, Out kl, Out logq, Out status, i64 kind, double lo,
                       double hi, std::uint64_t stream, std::uint64_t offset, i64 S) {
  return guarded([&] {
    dispatch_float(mu, "mu", [&](auto tag) {
      using T = decltype(tag);
      check_kind<T>(kind);
      const auto a = normal_args<T>(mu, p, eps, S);
      sampling::normal_head_cpu<T>(a.mu, a.p, a.eps, static_cast<int>(kind), T(lo), T(hi), philox_key(key), stream,
                                   offset, a.S, a.B, a.D, out<T>(z, "z", {a.S, a.B, a.D}), nullptr,
                                   out<T>(kl, "kl", {a.B}), opt_out<T>(logq, "log_q", {a.S, a.B}),
                                   out<std::int32_t>(status, "status", {a.B}));
    });
  });
}

// mu, scale, eps?, seed words, grad_z?, grad_kl?, grad_log_q? -> grad_mu, grad_scale
ffi::Error normal_head_bwd(Buf mu, Buf p, Buf eps, Buf key, Buf gz, Buf gkl, Buf glogq, Out dmu, Out dp, i64 kind,
                           double lo, double hi, std::uint64_t stream, std::uint64_t offset, i64 S) {
  return guarded([&] {
    dispatch_float(mu, "mu", [&](auto tag) {
      using T = decltype(tag);
      check_kind<T>(kind);
      const auto a = normal_args<T>(mu, p, eps, S);
      sampling::normal_head_backward_cpu<T>(a.mu, a.p, a.eps, static_cast<int>(kind), T(lo), T(hi), philox_key(key),
                                            stream, offset, a.S, a.B, a.D, opt<T>(gz, "grad_z", {a.S, a.B, a.D}),
                                            opt<T>(gkl, "grad_kl", {a.B}), opt<T>(glogq, "grad_log_q", {a.S, a.B}),
                                            out<T>(dmu, "grad_mu", {a.B, a.D}), out<T>(dp, "grad_scale", {a.B, a.D}));
    });
  });
}

// mu, scale, prior_mu?, prior_scale? -> kl (B,), status (B,)
ffi::Error kl_normal(Buf mu, Buf p, Buf pm, Buf pp, Out kl, Out status, i64 kind, double lo, double hi) {
  return guarded([&] {
    dispatch_float(mu, "mu", [&](auto tag) {
      using T = decltype(tag);
      check_kind<T>(kind);
      const i64 B = dim(mu, 0, 2, "mu"), D = mu.dimensions()[1];
      sampling::kl_normal_cpu<T>(in<T>(mu, "mu", {B, D}), in<T>(p, "scale", {B, D}), opt<T>(pm, "prior_mu", {B, D}),
                                 opt<T>(pp, "prior_scale", {B, D}), static_cast<int>(kind), T(lo), T(hi), B, D,
                                 out<T>(kl, "kl", {B}), out<std::int32_t>(status, "status", {B}));
    });
  });
}

// mu, scale, prior_mu?, prior_scale?, grad (B,) -> grad_mu, grad_scale, grad_prior_mu?, grad_prior_scale?
ffi::Error kl_normal_bwd(Buf mu, Buf p, Buf pm, Buf pp, Buf g, Out dmu, Out dp, Out dpm, Out dpp, i64 kind, double lo,
                         double hi) {
  return guarded([&] {
    dispatch_float(mu, "mu", [&](auto tag) {
      using T = decltype(tag);
      check_kind<T>(kind);
      const i64 B = dim(mu, 0, 2, "mu"), D = mu.dimensions()[1];
      sampling::kl_normal_backward_cpu<T>(
          in<T>(mu, "mu", {B, D}), in<T>(p, "scale", {B, D}), opt<T>(pm, "prior_mu", {B, D}),
          opt<T>(pp, "prior_scale", {B, D}), static_cast<int>(kind), T(lo), T(hi), B, D, in<T>(g, "grad", {B}),
          out<T>(dmu, "grad_mu", {B, D}), out<T>(dp, "grad_scale", {B, D}), opt_out<T>(dpm, "grad_prior_mu", {B, D}),
          opt_out<T>(dpp, "grad_prior_scale", {B, D}));
    });
  });
}

// ---------------------------------------------------------------- GMM E-step
// X (B, N, D), weights (B, K), means (B, K, D), prec_chol (shape by covariance type)
// -> lp, log_resp (B, N, K), log_norm (B, N)
ffi::Error gmm_e_step(Buf X, Buf w, Buf mu, Buf pc, Out lp, Out lr, Out ln, i64 cov_type) {
  return guarded([&] {
    gmm::check_cov_type(static_cast<int>(cov_type));
    dispatch_float(X, "X", [&](auto tag) {
      using T = decltype(tag);
      const i64 B = dim(X, 0, 3, "X"), N = X.dimensions()[1], D = X.dimensions()[2], K = dim(w, 1, 2, "weights");
      const T* p = nullptr;
      switch (cov_type) {
        case gmm::FULL:
          p = in<T>(pc, "precisions_cholesky", {B, K, D, D});
          break;
        case gmm::TIED:
          p = in<T>(pc, "precisions_cholesky", {B, D, D});
          break;
        case gmm::DIAG:
          p = in<T>(pc, "precisions_cholesky", {B, K, D});
          break;
        default:
          p = in<T>(pc, "precisions_cholesky", {B, K});
      }
      gmm::e_step_cpu<T>(static_cast<int>(cov_type), in<T>(X, "X", {B, N, D}), in<T>(w, "weights", {B, K}),
                         in<T>(mu, "means", {B, K, D}), p, B, N, D, K, out<T>(lp, "lp", {B, N, K}),
                         out<T>(lr, "log_resp", {B, N, K}), out<T>(ln, "log_norm", {B, N}));
    });
  });
}

// mu (B, D), scale_tril (LB, D, D) with LB = 1 (shared) or B, seed words
// -> z (S, B, D), kl (B,)? , log_q (S, B)?, status (B,). The triangle is checked in Python.
ffi::Error mvn_head(Buf mu, Buf L, Buf key, Out z, Out kl, Out logq, Out status, std::uint64_t stream,
                    std::uint64_t offset, i64 S) {
  return guarded([&] {
    dispatch_float(mu, "mu", [&](auto tag) {
      using T = decltype(tag);
      const i64 B = dim(mu, 0, 2, "mu"), D = mu.dimensions()[1], LB = dim(L, 0, 3, "scale_tril");
      if (LB != 1 && LB != B) throw std::invalid_argument("scale_tril: expected 1 or B matrices");
      if (S < 0) throw std::invalid_argument("n_samples: must be >= 0");
      sampling::mvn_head_cpu<T>(in<T>(mu, "mu", {B, D}), in<T>(L, "scale_tril", {LB, D, D}), LB == 1 && B != 1, false,
                                nullptr, philox_key(key), stream, offset, S, B, D, out<T>(z, "z", {S, B, D}), nullptr,
                                opt_out<T>(kl, "kl", {B}), opt_out<T>(logq, "log_q", {S, B}),
                                out<std::int32_t>(status, "status", {B}));
    });
  });
}

// mu, scale_tril, seed words, grad_z?, grad_kl?, grad_log_q? -> grad_mu (B, D), grad_scale_tril (LB, D, D)
ffi::Error mvn_head_bwd(Buf mu, Buf L, Buf key, Buf gz, Buf gkl, Buf glogq, Out dmu, Out dL, std::uint64_t stream,
                        std::uint64_t offset, i64 S) {
  return guarded([&] {
    dispatch_float(mu, "mu", [&](auto tag) {
      using T = decltype(tag);
      const i64 B = dim(mu, 0, 2, "mu"), D = mu.dimensions()[1], LB = dim(L, 0, 3, "scale_tril");
      if (LB != 1 && LB != B) throw std::invalid_argument("scale_tril: expected 1 or B matrices");
      sampling::mvn_head_backward_cpu<T>(in<T>(mu, "mu", {B, D}), in<T>(L, "scale_tril", {LB, D, D}), LB == 1 && B != 1,
                                         nullptr, philox_key(key), stream, offset, S, B, D,
                                         opt<T>(gz, "grad_z", {S, B, D}), opt<T>(gkl, "grad_kl", {B}),
                                         opt<T>(glogq, "grad_log_q", {S, B}), out<T>(dmu, "grad_mu", {B, D}),
                                         out<T>(dL, "grad_scale_tril", {LB, D, D}));
    });
  });
}

// X (B, N, D), W (B, N), reg (B,), initial weights / means / covariances / prec_chol, initial
// lower bound (B,) -> the same parameters after EM, lower bound, n_iter (int64 or int32),
// converged (B,) uint8, flags (B, K) uint8. The kernel works in place: the initial values are
// copied into the results first (a copy, not math); n_iter, converged and flags start at 0.
ffi::Error gmm_fit(Buf X, Buf W, Buf reg, Buf w0, Buf mu0, Buf cv0, Buf pc0, Buf lb0, Out w, Out mu, Out cv, Out pc,
                   Out lb, Out n_iter, Out conv, Out flags, i64 cov_type, i64 max_iter, double tol) {
  return guarded([&] {
    gmm::check_cov_type(static_cast<int>(cov_type));
    if (max_iter < 0) throw std::invalid_argument("max_iter: must be >= 0");
    dispatch_float(X, "X", [&](auto tag) {
      using T = decltype(tag);
      const i64 B = dim(X, 0, 3, "X"), N = X.dimensions()[1], D = X.dimensions()[2], K = dim(w0, 1, 2, "weights");
      if (K < 1) throw std::invalid_argument("weights: need at least one component");
      // f(shape) with the covariance shape of the type (each branch keeps its list alive)
      auto cov = [&](auto&& f) {
        switch (cov_type) {
          case gmm::FULL:
            return f({B, K, D, D});
          case gmm::TIED:
            return f({B, D, D});
          case gmm::DIAG:
            return f({B, K, D});
          default:
            return f({B, K});
        }
      };
      using L = std::initializer_list<i64>;
      auto copy = [](const T* src, T* dst, i64 n) { std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(T)); };
      T* wt = out<T>(w, "weights", {B, K});
      T* m = out<T>(mu, "means", {B, K, D});
      T* c = cov([&](L sh) { return out<T>(cv, "covariances", sh); });
      T* p = cov([&](L sh) { return out<T>(pc, "precisions_cholesky", sh); });
      T* l = out<T>(lb, "lower_bound", {B});
      const i64 nc = static_cast<i64>(cv->element_count());
      copy(in<T>(w0, "params.weights", {B, K}), wt, B * K);
      copy(in<T>(mu0, "params.means", {B, K, D}), m, B * K * D);
      copy(cov([&](L sh) { return in<T>(cv0, "params.covariances", sh); }), c, nc);
      copy(cov([&](L sh) { return in<T>(pc0, "params.precisions_cholesky", sh); }), p, nc);
      copy(in<T>(lb0, "lower_bound_init", {B}), l, B);
      std::vector<i64> it(B, 0);
      auto* cg = out<std::uint8_t>(conv, "converged", {B});
      auto* fl = out<std::uint8_t>(flags, "flags", {B, K});
      std::fill(cg, cg + B, 0);
      std::fill(fl, fl + B * K, 0);
      gmm::fit_cpu<T>(static_cast<int>(cov_type), in<T>(X, "X", {B, N, D}), in<T>(W, "weights", {B, N}),
                      in<T>(reg, "reg_covar", {B}), B, 1, N, D, K, max_iter, tol, wt, m, c, p, l, it.data(), cg, fl);
      if (n_iter->element_type() == ffi::DataType::S64)
        std::copy(it.begin(), it.end(), out<i64>(n_iter, "n_iter", {B}));
      else
        std::copy(it.begin(), it.end(), out<std::int32_t>(n_iter, "n_iter", {B}));
    });
  });
}

}  // namespace

// Handler symbols: the binding lists the operands, results then attributes in the order of
// the implementation's parameters (attributes are matched by name).
XLA_FFI_DEFINE_HANDLER_SYMBOL(PgmGae, gae, (bind<9, 3>(ffi::Ffi::Bind())));
XLA_FFI_DEFINE_HANDLER_SYMBOL(PgmBackupDense, backup, (bind<7, 3>(ffi::Ffi::Bind()).Attr<i64>("kind")));
XLA_FFI_DEFINE_HANDLER_SYMBOL(PgmSpatialFwd, spatial_fwd, (bind<3, 3>(ffi::Ffi::Bind()) PGM_SPATIAL_ATTRS));
#define PGM_HEAD_ATTRS               \
  .Attr<i64>("kind")                 \
      .Attr<double>("lo")            \
      .Attr<double>("hi")            \
      .Attr<std::uint64_t>("stream") \
      .Attr<std::uint64_t>("offset") \
      .Attr<i64>("n_samples")
XLA_FFI_DEFINE_HANDLER_SYMBOL(PgmNormalHead, normal_head, (bind<4, 4>(ffi::Ffi::Bind()) PGM_HEAD_ATTRS));
XLA_FFI_DEFINE_HANDLER_SYMBOL(PgmNormalHeadBwd, normal_head_bwd, (bind<7, 2>(ffi::Ffi::Bind()) PGM_HEAD_ATTRS));
XLA_FFI_DEFINE_HANDLER_SYMBOL(PgmKlNormal, kl_normal,
                              (bind<4, 2>(ffi::Ffi::Bind()).Attr<i64>("kind").Attr<double>("lo").Attr<double>("hi")));
XLA_FFI_DEFINE_HANDLER_SYMBOL(PgmKlNormalBwd, kl_normal_bwd,
                              (bind<5, 4>(ffi::Ffi::Bind()).Attr<i64>("kind").Attr<double>("lo").Attr<double>("hi")));
XLA_FFI_DEFINE_HANDLER_SYMBOL(PgmGmmEStep, gmm_e_step, (bind<4, 3>(ffi::Ffi::Bind()).Attr<i64>("cov_type")));
#define PGM_MVN_ATTRS .Attr<std::uint64_t>("stream").Attr<std::uint64_t>("offset").Attr<i64>("n_samples")
XLA_FFI_DEFINE_HANDLER_SYMBOL(PgmMvnHead, mvn_head, (bind<3, 4>(ffi::Ffi::Bind()) PGM_MVN_ATTRS));
XLA_FFI_DEFINE_HANDLER_SYMBOL(PgmMvnHeadBwd, mvn_head_bwd, (bind<6, 2>(ffi::Ffi::Bind()) PGM_MVN_ATTRS));
XLA_FFI_DEFINE_HANDLER_SYMBOL(
    PgmGmmFit, gmm_fit, (bind<8, 8>(ffi::Ffi::Bind()).Attr<i64>("cov_type").Attr<i64>("max_iter").Attr<double>("tol")));
XLA_FFI_DEFINE_HANDLER_SYMBOL(PgmSpatialBwd, spatial_bwd, (bind<8, 2>(ffi::Ffi::Bind()) PGM_SPATIAL_ATTRS));

// csrc/jax/mcts.cpp
XLA_FFI_DECLARE_HANDLER_SYMBOL(PgmMctsSearchTabular);
XLA_FFI_DECLARE_HANDLER_SYMBOL(PgmMctsNoise);
XLA_FFI_DECLARE_HANDLER_SYMBOL(PgmMctsSample);
// csrc/jax/mdp.cpp
XLA_FFI_DECLARE_HANDLER_SYMBOL(PgmMdpSolveDense);
XLA_FFI_DECLARE_HANDLER_SYMBOL(PgmMdpEvaluateDense);
XLA_FFI_DECLARE_HANDLER_SYMBOL(PgmFill);
// csrc/jax/gmm_init.cpp
XLA_FFI_DECLARE_HANDLER_SYMBOL(PgmGmmInit);
XLA_FFI_DECLARE_HANDLER_SYMBOL(PgmGmmMStep);

namespace {
template <class F>
py::capsule capsule(F* fn) {
  return py::capsule(reinterpret_cast<void*>(fn));
}
}  // namespace

PYBIND11_MODULE(_jax_ffi, m) {
  pygenmod::shared_pool::adopt();  // (the handlers run on the package's one pool)
  m.doc() = "pygenmod XLA FFI handlers (CPU) for pygenmod.jax; built against the vendored FFI API headers";
  m.attr("FFI_API_VERSION") = py::make_tuple(XLA_FFI_API_MAJOR, XLA_FFI_API_MINOR);
  m.def("registrations", [] {
    py::dict d;
    d["pygenmod_gae"] = capsule(PgmGae);
    d["pygenmod_backup_dense"] = capsule(PgmBackupDense);
    d["pygenmod_spatial_fwd"] = capsule(PgmSpatialFwd);
    d["pygenmod_spatial_bwd"] = capsule(PgmSpatialBwd);
    d["pygenmod_gmm_e_step"] = capsule(PgmGmmEStep);
    d["pygenmod_gmm_fit"] = capsule(PgmGmmFit);
    d["pygenmod_mvn_head"] = capsule(PgmMvnHead);
    d["pygenmod_mvn_head_bwd"] = capsule(PgmMvnHeadBwd);
    d["pygenmod_normal_head"] = capsule(PgmNormalHead);
    d["pygenmod_normal_head_bwd"] = capsule(PgmNormalHeadBwd);
    d["pygenmod_kl_normal"] = capsule(PgmKlNormal);
    d["pygenmod_kl_normal_bwd"] = capsule(PgmKlNormalBwd);
    d["pygenmod_mcts_search_tabular"] = capsule(PgmMctsSearchTabular);
    d["pygenmod_mcts_noise"] = capsule(PgmMctsNoise);
    d["pygenmod_mcts_sample"] = capsule(PgmMctsSample);
    d["pygenmod_mdp_solve_dense"] = capsule(PgmMdpSolveDense);
    d["pygenmod_mdp_evaluate_dense"] = capsule(PgmMdpEvaluateDense);
    d["pygenmod_fill"] = capsule(PgmFill);
    d["pygenmod_gmm_init"] = capsule(PgmGmmInit);
    d["pygenmod_gmm_m_step"] = capsule(PgmGmmMStep);
    return d;
  });
}
