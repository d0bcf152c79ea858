// _jax_ffi: XLA FFI handlers (CPU) of pygenmod's kernels, for pygenmod.jax. Each handler checks
// its buffers and calls the same kernel body as the pybind binding in csrc/bind/ -- no math here.
// The module only hands out the handlers as PyCapsules; pygenmod/jax.py registers them.
#include <pybind11/pybind11.h>

#include <vector>

#include "args.hpp"
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

ffi::Error spatial_bwd(Buf x, Buf inv, Buf mask, Buf stats, Buf kp, Buf cov, Buf g_kp, Buf g_cov, Out gx,
                       Out g_temp, bool cl, double x0, double dx, double y0, double dy) {
  return guarded([&] {
    dispatch_float(x, "x", [&](auto tag) {
      using T = decltype(tag);
      spatial::backward_cpu(
          spatial_bwd_args<T>(x, inv, mask, stats, kp, cov, g_kp, g_cov, gx, g_temp, {cl, x0, dx, y0, dy}), cl);
    });
  });
}

}  // namespace

// Handler symbols: the binding lists the operands, results then attributes in the order of
// the implementation's parameters (attributes are matched by name).
XLA_FFI_DEFINE_HANDLER_SYMBOL(PgmGae, gae, (bind<9, 3>(ffi::Ffi::Bind())));
XLA_FFI_DEFINE_HANDLER_SYMBOL(PgmBackupDense, backup, (bind<7, 3>(ffi::Ffi::Bind()).Attr<i64>("kind")));
XLA_FFI_DEFINE_HANDLER_SYMBOL(PgmSpatialFwd, spatial_fwd, (bind<3, 3>(ffi::Ffi::Bind()) PGM_SPATIAL_ATTRS));
XLA_FFI_DEFINE_HANDLER_SYMBOL(PgmSpatialBwd, spatial_bwd, (bind<8, 2>(ffi::Ffi::Bind()) PGM_SPATIAL_ATTRS));

namespace {
template <class F>
py::capsule capsule(F* fn) {
  return py::capsule(reinterpret_cast<void*>(fn));
}
}  // namespace

PYBIND11_MODULE(_jax_ffi, m) {
  m.doc() = "pygenmod XLA FFI handlers (CPU) for pygenmod.jax; built against the vendored FFI API headers";
  m.attr("FFI_API_VERSION") = py::make_tuple(XLA_FFI_API_MAJOR, XLA_FFI_API_MINOR);
  m.def("registrations", [] {
    py::dict d;
    d["pygenmod_gae"] = capsule(PgmGae);
    d["pygenmod_backup_dense"] = capsule(PgmBackupDense);
    d["pygenmod_spatial_fwd"] = capsule(PgmSpatialFwd);
    d["pygenmod_spatial_bwd"] = capsule(PgmSpatialBwd);
    return d;
  });
}
