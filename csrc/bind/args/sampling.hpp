// The argument unpacking of the sampling bindings, shared by _cpu_sampling and _cuda_sampling:
// every array checked (array_access.hpp, policy P), then launch(pointers..., sizes...) with the
// argument list of sampling::<name>_cpu / cuda::<name> (less the CUDA stream and scratch, which
// the CUDA launcher adds). Optional arrays have size 0 (null pointers).
#pragma once

#include <cstdint>
#include <stdexcept>

#include "array_access.hpp"

namespace pygenmod::bind::args::sampling {
using u64 = std::uint64_t;

// x (R, D) rows against mu (B, D) rows r % B, R a multiple of B.
inline void check_multiple(py::ssize_t R, py::ssize_t B) {
  if (B == 0 ? R != 0 : R % B != 0) throw std::invalid_argument("x: rows must be a multiple of mu's rows");
}
// ... and L (1 or B, D, D).
inline void check_rows(py::ssize_t R, py::ssize_t B, py::ssize_t LB) {
  check_multiple(R, B);
  if (LB != 1 && LB != B) throw std::invalid_argument("L: expected 1 or B matrices");
}
inline void check_tril_batch(py::ssize_t LB, py::ssize_t B) {
  if (LB != 1 && LB != B) throw std::invalid_argument("scale_tril: expected 1 or B matrices");
}

// launch(T{}, dist, seed, stream, offset, R, N, out)
template <class P, class Launch>
void fill(u64 seed, u64 stream, u64 offset, int dist, const py::object& out_, Launch&& launch) {
  if (dist < 0 || dist > 2) throw std::invalid_argument("dist: expected 0 (uniform), 1 (normal) or 2 (gumbel)");
  dispatch_float<P>(out_, "out", [&](auto tag) {
    using T = decltype(tag);
    const auto R = dim<P>(out_, "out", 0), N = dim<P>(out_, "out", 1);
    T* o = out<P, T>(out_, "out", {R, N});
    launch(tag, dist, seed, stream, offset, R, N, o);
  });
}

// launch(seed, stream, offset, R, N, out)
template <class P, class Launch>
void bits(u64 seed, u64 stream, u64 offset, const py::object& out_, Launch&& launch) {
  const auto R = dim<P>(out_, "out", 0), N = dim<P>(out_, "out", 1);
  auto* o = out<P, std::uint32_t>(out_, "out", {R, N});
  launch(seed, stream, offset, R, N, o);
}

// launch(counter, key, n, out)
template <class P, class Launch>
void philox(const py::object& ctr, const py::object& key, const py::object& out_, Launch&& launch) {
  const auto n = dim<P>(ctr, "counter", 0);
  const auto* c = in<P, std::uint32_t>(ctr, "counter", {n, 4});
  const auto* k = in<P, std::uint32_t>(key, "key", {n, 2});
  auto* o = out<P, std::uint32_t>(out_, "out", {n, 4});
  launch(c, k, n, o);
}

// launch(mu, scale, eps, kind, lo, hi, seed, stream, offset, S, B, D, z, eps_out, kl, logq, status)
template <class P, class Launch>
void normal_head(const py::object& mu, const py::object& p, const py::object& eps_in, int kind, double lo, double hi,
                 u64 seed, u64 stream, u64 offset, const py::object& z, const py::object& eps_out, const py::object& kl,
                 const py::object& logq, const py::object& status, Launch&& launch) {
  dispatch_float<P>(mu, "mu", [&](auto tag) {
    using T = decltype(tag);
    const auto B = dim<P>(mu, "mu", 0), D = dim<P>(mu, "mu", 1), S = dim<P>(z, "z", 0);
    const T* m = in<P, T>(mu, "mu", {B, D});
    const T* pp = in<P, T>(p, "scale", {B, D});
    const T* ei = opt_in<P, T>(eps_in, "eps", {S, B, D});
    T* oz = out<P, T>(z, "z", {S, B, D});
    T* oe = opt_out<P, T>(eps_out, "eps_out", {S, B, D});
    T* ok = opt_out<P, T>(kl, "kl", {B});
    T* ol = opt_out<P, T>(logq, "logq", {S, B});
    auto* st = out<P, std::int32_t>(status, "status", {B});
    launch(m, pp, ei, kind, T(lo), T(hi), seed, stream, offset, S, B, D, oz, oe, ok, ol, st);
  });
}

// launch(mu, scale, eps, kind, lo, hi, seed, stream, offset, S, B, D, grad_z, grad_kl, grad_logq, dmu, dscale)
template <class P, class Launch>
void normal_head_backward(const py::object& mu, const py::object& p, const py::object& eps_in, int kind, double lo,
                          double hi, u64 seed, u64 stream, u64 offset, py::ssize_t S, const py::object& gz,
                          const py::object& gkl, const py::object& glogq, const py::object& dmu, const py::object& dp,
                          Launch&& launch) {
  dispatch_float<P>(mu, "mu", [&](auto tag) {
    using T = decltype(tag);
    const auto B = dim<P>(mu, "mu", 0), D = dim<P>(mu, "mu", 1);
    const T* m = in<P, T>(mu, "mu", {B, D});
    const T* pp = in<P, T>(p, "scale", {B, D});
    const T* ei = opt_in<P, T>(eps_in, "eps", {S, B, D});
    const T* g1 = opt_in<P, T>(gz, "grad_z", {S, B, D});
    const T* g2 = opt_in<P, T>(gkl, "grad_kl", {B});
    const T* g3 = opt_in<P, T>(glogq, "grad_logq", {S, B});
    T* dm = out<P, T>(dmu, "dmu", {B, D});
    T* dpp = out<P, T>(dp, "dscale", {B, D});
    launch(m, pp, ei, kind, T(lo), T(hi), seed, stream, offset, S, B, D, g1, g2, g3, dm, dpp);
  });
}

// launch(mu, scale, prior_mu, prior_scale, kind, lo, hi, B, D, kl, status)
template <class P, class Launch>
void kl_normal(const py::object& mu, const py::object& p, const py::object& pm, const py::object& pp, int kind,
               double lo, double hi, const py::object& kl, const py::object& status, Launch&& launch) {
  dispatch_float<P>(mu, "mu", [&](auto tag) {
    using T = decltype(tag);
    const auto B = dim<P>(mu, "mu", 0), D = dim<P>(mu, "mu", 1);
    const T* m = in<P, T>(mu, "mu", {B, D});
    const T* q = in<P, T>(p, "scale", {B, D});
    const T* m2 = opt_in<P, T>(pm, "prior_mu", {B, D});
    const T* q2 = opt_in<P, T>(pp, "prior_scale", {B, D});
    T* k = out<P, T>(kl, "kl", {B});
    auto* st = out<P, std::int32_t>(status, "status", {B});
    launch(m, q, m2, q2, kind, T(lo), T(hi), B, D, k, st);
  });
}

// launch(mu, scale, prior_mu, prior_scale, kind, lo, hi, B, D, grad, dmu, dscale, dprior_mu, dprior_scale)
template <class P, class Launch>
void kl_normal_backward(const py::object& mu, const py::object& p, const py::object& pm, const py::object& pp, int kind,
                        double lo, double hi, const py::object& g, const py::object& dmu, const py::object& dp,
                        const py::object& dpm, const py::object& dpp, Launch&& launch) {
  dispatch_float<P>(mu, "mu", [&](auto tag) {
    using T = decltype(tag);
    const auto B = dim<P>(mu, "mu", 0), D = dim<P>(mu, "mu", 1);
    const T* m = in<P, T>(mu, "mu", {B, D});
    const T* q = in<P, T>(p, "scale", {B, D});
    const T* m2 = opt_in<P, T>(pm, "prior_mu", {B, D});
    const T* q2 = opt_in<P, T>(pp, "prior_scale", {B, D});
    const T* gg = in<P, T>(g, "grad", {B});
    T* o1 = out<P, T>(dmu, "dmu", {B, D});
    T* o2 = out<P, T>(dp, "dscale", {B, D});
    T* o3 = opt_out<P, T>(dpm, "dprior_mu", {B, D});
    T* o4 = opt_out<P, T>(dpp, "dprior_scale", {B, D});
    launch(m, q, m2, q2, kind, T(lo), T(hi), B, D, gg, o1, o2, o3, o4);
  });
}

// launch(x, mu, scale, kind, lo, hi, R, B, D, out, status)
template <class P, class Launch>
void normal_log_prob(const py::object& x, const py::object& mu, const py::object& p, int kind, double lo, double hi,
                     const py::object& out_, const py::object& status, Launch&& launch) {
  dispatch_float<P>(mu, "mu", [&](auto tag) {
    using T = decltype(tag);
    const auto B = dim<P>(mu, "mu", 0), D = dim<P>(mu, "mu", 1), R = dim<P>(x, "x", 0);
    check_multiple(R, B);
    const T* xx = in<P, T>(x, "x", {R, D});
    const T* m = in<P, T>(mu, "mu", {B, D});
    const T* q = in<P, T>(p, "scale", {B, D});
    T* o = out<P, T>(out_, "out", {R});
    auto* st = out<P, std::int32_t>(status, "status", {R});
    launch(xx, m, q, kind, T(lo), T(hi), R, B, D, o, st);
  });
}

// launch(x, mu, scale, kind, lo, hi, R, B, D, grad, dx, dmu, dscale)
template <class P, class Launch>
void normal_log_prob_backward(const py::object& x, const py::object& mu, const py::object& p, int kind, double lo,
                              double hi, const py::object& g, const py::object& dx, const py::object& dmu,
                              const py::object& dp, Launch&& launch) {
  dispatch_float<P>(mu, "mu", [&](auto tag) {
    using T = decltype(tag);
    const auto B = dim<P>(mu, "mu", 0), D = dim<P>(mu, "mu", 1), R = dim<P>(x, "x", 0);
    check_multiple(R, B);
    const T* xx = in<P, T>(x, "x", {R, D});
    const T* m = in<P, T>(mu, "mu", {B, D});
    const T* q = in<P, T>(p, "scale", {B, D});
    const T* gg = in<P, T>(g, "grad", {R});
    T* o1 = out<P, T>(dx, "dx", {R, D});
    T* o2 = out<P, T>(dmu, "dmu", {B, D});
    T* o3 = out<P, T>(dp, "dscale", {B, D});
    launch(xx, m, q, kind, T(lo), T(hi), R, B, D, gg, o1, o2, o3);
  });
}

// launch(mu, scale_tril, shared, check_upper, eps, seed, stream, offset, S, B, D, z, eps_out, kl, logq, status)
template <class P, class Launch>
void mvn_head(const py::object& mu, const py::object& L, const py::object& eps_in, bool check_upper, u64 seed,
              u64 stream, u64 offset, const py::object& z, const py::object& eps_out, const py::object& kl,
              const py::object& logq, const py::object& status, Launch&& launch) {
  dispatch_float<P>(mu, "mu", [&](auto tag) {
    using T = decltype(tag);
    const auto B = dim<P>(mu, "mu", 0), D = dim<P>(mu, "mu", 1), S = dim<P>(z, "z", 0);
    const auto LB = dim<P>(L, "scale_tril", 0);
    check_tril_batch(LB, B);
    const T* m = in<P, T>(mu, "mu", {B, D});
    const T* l = in<P, T>(L, "scale_tril", {LB, D, D});
    const T* ei = opt_in<P, T>(eps_in, "eps", {S, B, D});
    T* oz = out<P, T>(z, "z", {S, B, D});
    T* oe = opt_out<P, T>(eps_out, "eps_out", {S, B, D});
    T* ok = opt_out<P, T>(kl, "kl", {B});
    T* ol = opt_out<P, T>(logq, "logq", {S, B});
    auto* st = out<P, std::int32_t>(status, "status", {B});
    launch(m, l, LB == 1 && B != 1, check_upper, ei, seed, stream, offset, S, B, D, oz, oe, ok, ol, st);
  });
}

// launch(mu, scale_tril, shared, eps, seed, stream, offset, S, B, D, grad_z, grad_kl, grad_logq, dmu, dscale_tril)
template <class P, class Launch>
void mvn_head_backward(const py::object& mu, const py::object& L, const py::object& eps_in, u64 seed, u64 stream,
                       u64 offset, py::ssize_t S, const py::object& gz, const py::object& gkl, const py::object& glogq,
                       const py::object& dmu, const py::object& dL, Launch&& launch) {
  dispatch_float<P>(mu, "mu", [&](auto tag) {
    using T = decltype(tag);
    const auto B = dim<P>(mu, "mu", 0), D = dim<P>(mu, "mu", 1), LB = dim<P>(L, "scale_tril", 0);
    check_tril_batch(LB, B);
    const T* m = in<P, T>(mu, "mu", {B, D});
    const T* l = in<P, T>(L, "scale_tril", {LB, D, D});
    const T* ei = opt_in<P, T>(eps_in, "eps", {S, B, D});
    const T* g1 = opt_in<P, T>(gz, "grad_z", {S, B, D});
    const T* g2 = opt_in<P, T>(gkl, "grad_kl", {B});
    const T* g3 = opt_in<P, T>(glogq, "grad_logq", {S, B});
    T* dm = out<P, T>(dmu, "dmu", {B, D});
    T* dl = out<P, T>(dL, "dscale_tril", {LB, D, D});
    launch(m, l, LB == 1 && B != 1, ei, seed, stream, offset, S, B, D, g1, g2, g3, dm, dl);
  });
}

// launch(L, shared, rhs, B, D, K, trans, out)
template <class P, class Launch>
void tri_solve(const py::object& L, const py::object& R, bool trans, const py::object& X, Launch&& launch) {
  dispatch_float<P>(R, "rhs", [&](auto tag) {
    using T = decltype(tag);
    const auto B = dim<P>(R, "rhs", 0), D = dim<P>(R, "rhs", 1), K = dim<P>(R, "rhs", 2), LB = dim<P>(L, "L", 0);
    if (LB != 1 && LB != B) throw std::invalid_argument("L: expected 1 or B matrices");
    const T* l = in<P, T>(L, "L", {LB, D, D});
    const T* r = in<P, T>(R, "rhs", {B, D, K});
    T* x = out<P, T>(X, "out", {B, D, K});
    launch(l, LB == 1 && B != 1, r, B, D, K, trans, x);
  });
}

// launch(L, N, D, flags)
template <class P, class Launch>
void tril_check(const py::object& L, const py::object& flags, Launch&& launch) {
  dispatch_float<P>(L, "L", [&](auto tag) {
    using T = decltype(tag);
    const auto N = dim<P>(L, "L", 0), D = dim<P>(L, "L", 1);
    const T* l = in<P, T>(L, "L", {N, D, D});
    auto* f = out<P, std::int32_t>(flags, "flags", {N});
    launch(l, N, D, f);
  });
}

// launch(x, mu, L, shared, mode, squared, R, B, D, out, status)
template <class P, class Launch>
void mvn_rows(const py::object& x, const py::object& mu, const py::object& L, int mode, bool squared,
              const py::object& out_, const py::object& status, Launch&& launch) {
  dispatch_float<P>(mu, "mu", [&](auto tag) {
    using T = decltype(tag);
    const auto B = dim<P>(mu, "mu", 0), D = dim<P>(mu, "mu", 1), R = dim<P>(x, "x", 0), LB = dim<P>(L, "L", 0);
    check_rows(R, B, LB);
    const T* xx = in<P, T>(x, "x", {R, D});
    const T* m = in<P, T>(mu, "mu", {B, D});
    const T* l = in<P, T>(L, "L", {LB, D, D});
    T* o = out<P, T>(out_, "out", {R});
    auto* st = out<P, std::int32_t>(status, "status", {R});
    launch(xx, m, l, LB == 1 && B != 1, mode, squared, R, B, D, o, st);
  });
}

// launch(x, mu, L, shared, mode, squared, R, B, D, grad, dx, dmu, dL, status)
template <class P, class Launch>
void mvn_rows_backward(const py::object& x, const py::object& mu, const py::object& L, int mode, bool squared,
                       const py::object& g, const py::object& dx, const py::object& dmu, const py::object& dL,
                       const py::object& status, Launch&& launch) {
  dispatch_float<P>(mu, "mu", [&](auto tag) {
    using T = decltype(tag);
    const auto B = dim<P>(mu, "mu", 0), D = dim<P>(mu, "mu", 1), R = dim<P>(x, "x", 0), LB = dim<P>(L, "L", 0);
    check_rows(R, B, LB);
    const T* xx = in<P, T>(x, "x", {R, D});
    const T* m = in<P, T>(mu, "mu", {B, D});
    const T* l = in<P, T>(L, "L", {LB, D, D});
    const T* gg = in<P, T>(g, "grad", {R});
    T* o1 = out<P, T>(dx, "dx", {R, D});
    T* o2 = out<P, T>(dmu, "dmu", {B, D});
    T* o3 = out<P, T>(dL, "dL", {LB, D, D});
    auto* st = out<P, std::int32_t>(status, "status", {R});
    launch(xx, m, l, LB == 1 && B != 1, mode, squared, R, B, D, gg, o1, o2, o3, st);
  });
}

// launch(mu, scale_tril, shared, prior_mu, prior_scale_tril, prior_shared, B, D, kl, status)
template <class P, class Launch>
void kl_mvn(const py::object& mu, const py::object& L, const py::object& pm, const py::object& pL, const py::object& kl,
            const py::object& status, Launch&& launch) {
  dispatch_float<P>(mu, "mu", [&](auto tag) {
    using T = decltype(tag);
    const auto B = dim<P>(mu, "mu", 0), D = dim<P>(mu, "mu", 1), LB = dim<P>(L, "scale_tril", 0),
               LB2 = dim<P>(pL, "prior_scale_tril", 0);
    check_rows(B, B, LB);
    if (size_of<P>(pL, "prior_scale_tril")) check_rows(B, B, LB2);
    const T* m = in<P, T>(mu, "mu", {B, D});
    const T* l = in<P, T>(L, "scale_tril", {LB, D, D});
    const T* m2 = opt_in<P, T>(pm, "prior_mu", {B, D});
    const T* l2 = opt_in<P, T>(pL, "prior_scale_tril", {LB2, D, D});
    T* k = out<P, T>(kl, "kl", {B});
    auto* st = out<P, std::int32_t>(status, "status", {B});
    launch(m, l, LB == 1 && B != 1, m2, l2, LB2 == 1 && B != 1, B, D, k, st);
  });
}

// launch(mu, scale_tril, shared, prior_mu, prior_scale_tril, prior_shared, B, D, grad, dmu, dscale_tril,
//        dprior_mu, dprior_scale_tril); prior_shared is false without a prior scale.
template <class P, class Launch>
void kl_mvn_backward(const py::object& mu, const py::object& L, const py::object& pm, const py::object& pL,
                     const py::object& g, const py::object& dmu, const py::object& dL, const py::object& dpm,
                     const py::object& dpL, Launch&& launch) {
  dispatch_float<P>(mu, "mu", [&](auto tag) {
    using T = decltype(tag);
    const auto B = dim<P>(mu, "mu", 0), D = dim<P>(mu, "mu", 1), LB = dim<P>(L, "scale_tril", 0),
               LB2 = dim<P>(pL, "prior_scale_tril", 0);
    check_rows(B, B, LB);
    const bool has_prior = size_of<P>(pL, "prior_scale_tril") != 0;
    if (has_prior) check_rows(B, B, LB2);
    const T* m = in<P, T>(mu, "mu", {B, D});
    const T* l = in<P, T>(L, "scale_tril", {LB, D, D});
    const T* m2 = opt_in<P, T>(pm, "prior_mu", {B, D});
    const T* l2 = opt_in<P, T>(pL, "prior_scale_tril", {LB2, D, D});
    const T* gg = in<P, T>(g, "grad", {B});
    T* o1 = out<P, T>(dmu, "dmu", {B, D});
    T* o2 = out<P, T>(dL, "dscale_tril", {LB, D, D});
    T* o3 = opt_out<P, T>(dpm, "dprior_mu", {B, D});
    T* o4 = l2 ? out<P, T>(dpL, "dprior_scale_tril", {LB2, D, D}) : nullptr;
    launch(m, l, LB == 1 && B != 1, m2, l2, has_prior && LB2 == 1 && B != 1, B, D, gg, o1, o2, o3, o4);
  });
}

// launch(logits, R, K, tau, seed, stream, offset, y_soft, y, index, status)
template <class P, class Launch>
void gumbel_softmax(const py::object& logits, double tau, u64 seed, u64 stream, u64 offset, const py::object& y_soft,
                    const py::object& y_hard, const py::object& index, const py::object& status, Launch&& launch) {
  dispatch_float<P>(logits, "logits", [&](auto tag) {
    using T = decltype(tag);
    const auto R = dim<P>(logits, "logits", 0), K = dim<P>(logits, "logits", 1);
    const T* l = in<P, T>(logits, "logits", {R, K});
    T* ys = out<P, T>(y_soft, "y_soft", {R, K});
    T* yh = opt_out<P, T>(y_hard, "y", {R, K});
    auto* ix = out<P, std::int64_t>(index, "index", {R});
    auto* st = out<P, std::int32_t>(status, "status", {R});
    launch(l, R, K, T(tau), seed, stream, offset, ys, yh, ix, st);
  });
}

// launch(logits or null, y_soft or null, R, K, tau, seed, stream, offset, grad_y, out, status)
template <class P, class Launch>
void gumbel_softmax_backward(const py::object& logits, const py::object& y_soft, double tau, u64 seed, u64 stream,
                             u64 offset, const py::object& g, const py::object& out_, const py::object& status,
                             Launch&& launch) {
  dispatch_float<P>(g, "grad_y", [&](auto tag) {
    using T = decltype(tag);
    const auto R = dim<P>(g, "grad_y", 0), K = dim<P>(g, "grad_y", 1);
    const T* ys = opt_in<P, T>(y_soft, "y_soft", {R, K});
    const T* l = ys ? nullptr : in<P, T>(logits, "logits", {R, K});
    const T* gg = in<P, T>(g, "grad_y", {R, K});
    T* o = out<P, T>(out_, "out", {R, K});
    auto* st = out<P, std::int32_t>(status, "status", {R});
    launch(l, ys, R, K, T(tau), seed, stream, offset, gg, o, st);
  });
}

}  // namespace pygenmod::bind::args::sampling
