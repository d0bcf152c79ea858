// Checked kernel arguments out of FFI buffers, shared by the CPU and the CUDA handlers (each
// then calls its own launcher: returns::gae_cpu / cuda::gae, ...). Only pointers and sizes.
#pragma once

#include "ffi_common.hpp"
#include "pygenmod/mdp.hpp"
#include "pygenmod/spatial.hpp"

namespace pygenmod::jaxffi {
using i64 = std::int64_t;

// ---------------------------------------------------------------- GAE
template <class T>
struct GaeArgs {
  const T *r, *v, *nv, *boot;
  const std::uint8_t *te, *tr, *mk;
  const T *gamma, *lam;
  i64 Tn, B;
  T *adv, *ret;
  std::uint8_t* status;
};

// rewards, values?, next_values?, bootstrap?, terminated?, truncated?, mask? (uint8), gamma, lam
// -> advantages, returns? (0 elements: not wanted), status (1 = a NaN/inf reached the scan).
template <class T>
GaeArgs<T> gae_args(const Buf& r, const Buf& v, const Buf& nv, const Buf& boot, const Buf& te, const Buf& tr,
                    const Buf& mk, const Buf& gamma, const Buf& lam, Out& adv, Out& ret, Out& status) {
  using F = std::uint8_t;
  const i64 Tn = dim(r, 0, 2, "rewards"), B = dim(r, 1, 2, "rewards");
  return {in<T>(r, "rewards", {Tn, B}),
          opt<T>(v, "values", {Tn, B}),
          opt<T>(nv, "next_values", {Tn, B}),
          opt<T>(boot, "bootstrap_value", {B}),
          opt<F>(te, "terminated", {Tn, B}),
          opt<F>(tr, "truncated", {Tn, B}),
          opt<F>(mk, "mask", {Tn, B}),
          in<T>(gamma, "gamma", {B}),
          in<T>(lam, "lam", {B}),
          Tn,
          B,
          out<T>(adv, "advantages", {Tn, B}),
          opt_out<T>(ret, "returns", {Tn, B}),
          out<std::uint8_t>(status, "status", {1})};
}

// ---------------------------------------------------------------- Bellman backup (dense P)
// The integer policy (in and out) is int64 under jax x64, else int32 (JAX's default): I.
template <class T, class I>
struct BackupArgs {
  const T *P, *R, *V, *gamma;
  const I* pi_det;  // (B, S) or null
  const T *pi_stoch, *tau;
  i64 B, S, A;
  int kind;
  T *Q, *V_out;
  I* policy;
};

template <class T, class I>
BackupArgs<T, I> backup_args(const Buf& P, const Buf& R, const Buf& V, const Buf& gamma, const Buf& pi_det,
                             const Buf& pi_stoch, const Buf& tau, i64 kind, Out& Q, Out& V_out, Out& policy) {
  const i64 B = dim(P, 0, 4, "P"), S = P.dimensions()[1], A = P.dimensions()[2];
  if (kind < 0 || kind > 3) throw std::invalid_argument("kind: expected 0..3");
  BackupArgs<T, I> a{in<T>(P, "P", {B, S, A, S}),
                     in<T>(R, "R", {B, S, A}),
                     in<T>(V, "V", {B, S}),
                     in<T>(gamma, "gamma", {B}),
                     opt<I>(pi_det, "policy", {B, S}),
                     opt<T>(pi_stoch, "policy", {B, S, A}),
                     opt<T>(tau, "temperature", {B}),
                     B,
                     S,
                     A,
                     static_cast<int>(kind),
                     out<T>(Q, "Q", {B, S, A}),
                     out<T>(V_out, "V_out", {B, S}),
                     out<I>(policy, "policy_out", {B, S})};
  if (kind == mdp::kPolicy && !a.pi_det) throw std::invalid_argument("policy: required for kind 1");
  if (kind == mdp::kStochastic && !a.pi_stoch) throw std::invalid_argument("policy: required for kind 2");
  if (kind == mdp::kSoft && !a.tau) throw std::invalid_argument("temperature: required for kind 3");
  return a;
}

// Calls f(T{}, I{}) by P's float type and the policy result's integer type.
template <class F>
void dispatch_backup(const Buf& P, Out& policy, F&& f) {
  dispatch_float(P, "P", [&](auto t) {
    if (policy->element_type() == ffi::DataType::S64)
      f(t, i64{});
    else
      f(t, std::int32_t{});
  });
}

// ---------------------------------------------------------------- spatial softmax
struct SpatialDims {
  i64 B, C, H, W;
};

inline SpatialDims spatial_dims(const Buf& x, bool cl) {
  const i64 d0 = dim(x, 0, 4, "x"), d1 = x.dimensions()[1], d2 = x.dimensions()[2], d3 = x.dimensions()[3];
  return cl ? SpatialDims{d0, d3, d1, d2} : SpatialDims{d0, d1, d2, d3};
}

template <class T, class B_>
T* x_like(B_& b, const char* name, const SpatialDims& d, bool cl) {
  if constexpr (std::is_same_v<B_, Out>) {
    return cl ? out<T>(b, name, {d.B, d.H, d.W, d.C}) : out<T>(b, name, {d.B, d.C, d.H, d.W});
  } else {
    return const_cast<T*>(cl ? in<T>(b, name, {d.B, d.H, d.W, d.C}) : in<T>(b, name, {d.B, d.C, d.H, d.W}));
  }
}

inline spatial::Mask spatial_mask(const Buf& m, const SpatialDims& d) {
  spatial::Mask mask;
  if (m.element_count() == 0) return mask;
  mask.Bm = dim(m, 0, 3, "mask");
  mask.Cm = m.dimensions()[1];
  if ((mask.Bm != 1 && mask.Bm != d.B) || (mask.Cm != 1 && mask.Cm != d.C))
    throw std::invalid_argument("mask: unexpected shape " + dims_str(m));
  mask.p = in<std::uint8_t>(m, "mask", {mask.Bm, mask.Cm, d.H * d.W});
  return mask;
}

struct SpatialAttrs {
  bool cl;
  double x0, dx, y0, dy;
};

// The arguments forward and backward share: x, 1 / temperature, sizes, grid and mask.
template <class T, class Args>
void spatial_common(Args& a, const Buf& x, const Buf& inv, const Buf& mask, const SpatialDims& d,
                    const SpatialAttrs& at) {
  a.x = x_like<T>(x, "x", d, at.cl);
  a.inv = in<T>(inv, "inv_temp", {d.C});
  a.B = d.B;
  a.C = d.C;
  a.H = d.H;
  a.W = d.W;
  a.g = {at.x0, at.dx, at.y0, at.dy};
  a.mask = spatial_mask(mask, d);
}

// x, inv_temp, mask? -> keypoints, cov?, stats
template <class T>
spatial::detail::FwdArgs<T> spatial_fwd_args(const Buf& x, const Buf& inv, const Buf& mask, Out& kp, Out& cov,
                                             Out& stats, const SpatialAttrs& at) {
  const SpatialDims d = spatial_dims(x, at.cl);
  spatial::detail::FwdArgs<T> a{};
  spatial_common<T>(a, x, inv, mask, d, at);
  a.kp = out<T>(kp, "keypoints", {d.B, d.C, 2});
  a.cov = opt_out<T>(cov, "cov", {d.B, d.C, 2, 2});
  a.maps = nullptr;
  a.stats = out<T>(stats, "stats", {d.B, d.C, 2});
  return a;
}

// x, inv_temp, mask?, stats, keypoints, cov?, grad_keypoints, grad_cov? -> grad_x, grad_temp (B, C)
template <class T>
spatial::detail::BwdArgs<T> spatial_bwd_args(const Buf& x, const Buf& inv, const Buf& mask, const Buf& stats,
                                             const Buf& kp, const Buf& cov, const Buf& g_kp, const Buf& g_cov, Out& gx,
                                             Out& g_temp, const SpatialAttrs& at) {
  const SpatialDims d = spatial_dims(x, at.cl);
  spatial::detail::BwdArgs<T> a{};
  spatial_common<T>(a, x, inv, mask, d, at);
  a.stats = in<T>(stats, "stats", {d.B, d.C, 2});
  a.kp = in<T>(kp, "keypoints", {d.B, d.C, 2});
  a.cov = opt<T>(cov, "cov", {d.B, d.C, 2, 2});
  a.g_kp = in<T>(g_kp, "grad_keypoints", {d.B, d.C, 2});
  a.g_cov = opt<T>(g_cov, "grad_cov", {d.B, d.C, 2, 2});
  a.g_maps = nullptr;
  if (a.g_cov && !a.cov) throw std::invalid_argument("cov: needed with grad_cov");
  a.gx = x_like<T>(gx, "grad_x", d, at.cl);
  a.g_temp = out<T>(g_temp, "grad_temp", {d.B, d.C});
  return a;
}

// ---------------------------------------------------------------- diagonal Gaussian head
// The Philox key of a draw: a uint32[2] operand (a JAX key's words, high word first, as
// pygenmod._seed maps JAX keys), so a traced key works inside jit. It is read on the host here
// (the CPU handlers only; a CUDA handler would have to copy it from the device).
inline std::uint64_t philox_key(const Buf& key) {
  const auto* w = in<std::uint32_t>(key, "seed", {2});
  return (std::uint64_t(w[0]) << 32) | w[1];
}

template <class T>
struct NormalArgs {
  const T *mu, *p, *eps;  // eps (S, B, D) or null
  i64 S, B, D;
};

template <class T>
NormalArgs<T> normal_args(const Buf& mu, const Buf& p, const Buf& eps, i64 S) {
  const i64 B = dim(mu, 0, 2, "mu"), D = mu.dimensions()[1];
  if (S < 0) throw std::invalid_argument("n_samples: must be >= 0");
  return {in<T>(mu, "mu", {B, D}), in<T>(p, "scale", {B, D}), opt<T>(eps, "eps", {S, B, D}), S, B, D};
}

template <class T>
void check_kind(i64 kind) {
  if (kind < 0 || kind > 2) throw std::invalid_argument("kind: expected 0 (logvar), 1 (log_std) or 2 (std)");
}

}  // namespace pygenmod::jaxffi

// The handler bindings, shared by both platforms (the CUDA ones bind the stream and a scratch
// allocator first): operands, results, then attributes (matched by name).
#define PGM_SPATIAL_ATTRS \
  .Attr<bool>("channels_last").Attr<double>("x0").Attr<double>("dx").Attr<double>("y0").Attr<double>("dy")
