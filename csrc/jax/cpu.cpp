// _jax_ffi: XLA FFI handlers (CPU) of pygenmod's kernels, for pygenmod.jax. Each handler checks
// its buffers and calls the same kernel body as the pybind binding in csrc/bind/ -- no math here.
// The module only hands out the handlers as PyCapsules; pygenmod/jax.py registers them.
#include <pybind11/pybind11.h>

#include <vector>

#include "ffi_common.hpp"
#include "pygenmod/mdp.hpp"
#include "pygenmod/returns.hpp"
#include "pygenmod/spatial.hpp"

namespace py = pybind11;
using namespace pygenmod;
using namespace pygenmod::jaxffi;
using i64 = std::int64_t;

namespace {

// ---------------------------------------------------------------- GAE / lambda-returns
// rewards, values?, next_values?, bootstrap?, terminated?, truncated?, mask? (uint8), gamma, lam
// -> advantages, returns? (0 elements: not wanted), status (1 = a NaN/inf reached the scan).
ffi::Error gae(Buf r, Buf v, Buf nv, Buf boot, Buf te, Buf tr, Buf mk, Buf gamma, Buf lam, Out adv,
               Out ret, Out status) {
  return guarded([&] {
    const i64 Tn = dim(r, 0, 2, "rewards"), B = dim(r, 1, 2, "rewards");
    dispatch_float(r, "rewards", [&](auto tag) {
      using T = decltype(tag);
      using F = std::uint8_t;
      returns::gae_cpu<T, F>(in<T>(r, "rewards", {Tn, B}), opt<T>(v, "values", {Tn, B}),
                             opt<T>(nv, "next_values", {Tn, B}), opt<T>(boot, "bootstrap_value", {B}),
                             opt<F>(te, "terminated", {Tn, B}), opt<F>(tr, "truncated", {Tn, B}),
                             opt<F>(mk, "mask", {Tn, B}), in<T>(gamma, "gamma", {B}), in<T>(lam, "lam", {B}), Tn,
                             B, out<T>(adv, "advantages", {Tn, B}), opt_out<T>(ret, "returns", {Tn, B}),
                             out<std::uint8_t>(status, "status", {1}));
    });
  });
}

// ---------------------------------------------------------------- Bellman backup (dense P)
// Integer policies: int64 under jax x64, else int32 (JAX's default); the kernel's int64 is
// reached through a copy (a conversion, not math).
template <class T, class I>
void backup_typed(Buf P, Buf R, Buf V, Buf gamma, Buf pi_det, Buf pi_stoch, Buf tau, i64 kind, Out Q, Out V_out,
                  Out policy) {
  const i64 B = dim(P, 0, 4, "P"), S = P.dimensions()[1], A = P.dimensions()[2];
  if (kind < 0 || kind > 3) throw std::invalid_argument("kind: expected 0..3");
  const mdp::Dense<T> m{in<T>(P, "P", {B, S, A, S}), S, A};
  const I* pd = opt<I>(pi_det, "policy", {B, S});
  const T* ps = opt<T>(pi_stoch, "policy", {B, S, A});
  const T* tu = opt<T>(tau, "temperature", {B});
  if (kind == mdp::kPolicy && !pd) throw std::invalid_argument("policy: required for kind 1");
  if (kind == mdp::kStochastic && !ps) throw std::invalid_argument("policy: required for kind 2");
  if (kind == mdp::kSoft && !tu) throw std::invalid_argument("temperature: required for kind 3");
  std::vector<i64> det, pol(static_cast<size_t>(B * S));
  if (pd) {
    det.assign(pd, pd + B * S);
    for (i64 a : det)
      if (a < 0 || a >= A) throw std::invalid_argument("policy: action out of range");
  }
  I* po = out<I>(policy, "policy_out", {B, S});
  mdp::backup_sweep_cpu(m, in<T>(R, "R", {B, S, A}), in<T>(V, "V", {B, S}), in<T>(gamma, "gamma", {B}), B,
                        static_cast<int>(kind), pd ? det.data() : nullptr, ps, tu, out<T>(Q, "Q", {B, S, A}),
                        out<T>(V_out, "V_out", {B, S}), pol.data());
  for (i64 i = 0; i < B * S; ++i) po[i] = static_cast<I>(pol[i]);
}

ffi::Error backup(Buf P, Buf R, Buf V, Buf gamma, Buf pi_det, Buf pi_stoch, Buf tau, Out Q, Out V_out, Out policy,
                  i64 kind) {
  return guarded([&] {
    dispatch_float(P, "P", [&](auto tag) {
      using T = decltype(tag);
      if (policy->element_type() == ffi::DataType::S64)
        backup_typed<T, i64>(P, R, V, gamma, pi_det, pi_stoch, tau, kind, Q, V_out, policy);
      else
        backup_typed<T, std::int32_t>(P, R, V, gamma, pi_det, pi_stoch, tau, kind, Q, V_out, policy);
    });
  });
}

// ---------------------------------------------------------------- spatial softmax
struct Dims {
  i64 B, C, H, W;
};

Dims dims(const Buf& x, bool cl) {
  const i64 d0 = dim(x, 0, 4, "x"), d1 = x.dimensions()[1], d2 = x.dimensions()[2], d3 = x.dimensions()[3];
  return cl ? Dims{d0, d3, d1, d2} : Dims{d0, d1, d2, d3};
}

spatial::Mask get_mask(const Buf& m, const Dims& d) {
  spatial::Mask mask;
  if (m.element_count() == 0) return mask;
  mask.Bm = dim(m, 0, 3, "mask");
  mask.Cm = m.dimensions()[1];
  if ((mask.Bm != 1 && mask.Bm != d.B) || (mask.Cm != 1 && mask.Cm != d.C))
    throw std::invalid_argument("mask: unexpected shape " + dims_str(m));
  mask.p = in<std::uint8_t>(m, "mask", {mask.Bm, mask.Cm, d.H * d.W});
  return mask;
}

template <class Args, class T>
void common(Args& a, const Buf& x, const Buf& inv, const Buf& mask, const Dims& d, bool cl, double x0, double dx,
            double y0, double dy) {
  if (cl) a.x = in<T>(x, "x", {d.B, d.H, d.W, d.C});
  else a.x = in<T>(x, "x", {d.B, d.C, d.H, d.W});
  a.inv = in<T>(inv, "inv_temp", {d.C});
  a.B = d.B; a.C = d.C; a.H = d.H; a.W = d.W;
  a.g = {x0, dx, y0, dy};
  a.mask = get_mask(mask, d);
}

// x, inv_temp, mask? -> keypoints, cov?, stats
ffi::Error spatial_fwd(Buf x, Buf inv, Buf mask, Out kp, Out cov, Out stats, bool cl, double x0, double dx, double y0,
                       double dy) {
  return guarded([&] {
    const Dims d = dims(x, cl);
    dispatch_float(x, "x", [&](auto tag) {
      using T = decltype(tag);
      spatial::detail::FwdArgs<T> a{};
      common<spatial::detail::FwdArgs<T>, T>(a, x, inv, mask, d, cl, x0, dx, y0, dy);
      a.kp = out<T>(kp, "keypoints", {d.B, d.C, 2});
      a.cov = opt_out<T>(cov, "cov", {d.B, d.C, 2, 2});
      a.maps = nullptr;
      a.stats = out<T>(stats, "stats", {d.B, d.C, 2});
      spatial::forward_cpu(a, cl);
    });
  });
}

// x, inv_temp, mask?, stats, keypoints, cov?, grad_keypoints, grad_cov? -> grad_x, grad_temp (B, C)
ffi::Error spatial_bwd(Buf x, Buf inv, Buf mask, Buf stats, Buf kp, Buf cov, Buf g_kp, Buf g_cov, Out gx,
                       Out g_temp, bool cl, double x0, double dx, double y0, double dy) {
  return guarded([&] {
    const Dims d = dims(x, cl);
    dispatch_float(x, "x", [&](auto tag) {
      using T = decltype(tag);
      spatial::detail::BwdArgs<T> a{};
      common<spatial::detail::BwdArgs<T>, T>(a, x, inv, mask, d, cl, x0, dx, y0, dy);
      a.stats = in<T>(stats, "stats", {d.B, d.C, 2});
      a.kp = in<T>(kp, "keypoints", {d.B, d.C, 2});
      a.cov = opt<T>(cov, "cov", {d.B, d.C, 2, 2});
      a.g_kp = in<T>(g_kp, "grad_keypoints", {d.B, d.C, 2});
      a.g_cov = opt<T>(g_cov, "grad_cov", {d.B, d.C, 2, 2});
      a.g_maps = nullptr;
      if (a.g_cov && !a.cov) throw std::invalid_argument("cov: needed with grad_cov");
      if (cl) a.gx = out<T>(gx, "grad_x", {d.B, d.H, d.W, d.C});
      else a.gx = out<T>(gx, "grad_x", {d.B, d.C, d.H, d.W});
      a.g_temp = out<T>(g_temp, "grad_temp", {d.B, d.C});
      spatial::backward_cpu(a, cl);
    });
  });
}

}  // namespace

// Handler symbols: the binding lists the operands, results then attributes in the order of
// the implementation's parameters (attributes are matched by name).
XLA_FFI_DEFINE_HANDLER_SYMBOL(PgmGae, gae, (bind<9, 3>(ffi::Ffi::Bind())));
XLA_FFI_DEFINE_HANDLER_SYMBOL(PgmBackupDense, backup, (bind<7, 3>(ffi::Ffi::Bind()).Attr<i64>("kind")));
XLA_FFI_DEFINE_HANDLER_SYMBOL(PgmSpatialFwd, spatial_fwd,
                              (bind<3, 3>(ffi::Ffi::Bind())
                                   .Attr<bool>("channels_last")
                                   .Attr<double>("x0")
                                   .Attr<double>("dx")
                                   .Attr<double>("y0")
                                   .Attr<double>("dy")));
XLA_FFI_DEFINE_HANDLER_SYMBOL(PgmSpatialBwd, spatial_bwd,
                              (bind<8, 2>(ffi::Ffi::Bind())
                                   .Attr<bool>("channels_last")
                                   .Attr<double>("x0")
                                   .Attr<double>("dx")
                                   .Attr<double>("y0")
                                   .Attr<double>("dy")));

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
