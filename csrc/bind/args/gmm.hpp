// The argument unpacking of the Gaussian-mixture bindings, shared by _cpu_gmm and _cuda_gmm:
// arrays checked (array_access.hpp, policy P), then launch(...) with the argument list of
// gmm::<name>_cpu / cuda::gmm_<name> (less the CUDA scratch and stream, which the CUDA launcher
// adds; the CPU fit's launcher makes it interruptible). cov_type: 0 full, 1 tied, 2 diag, 3 spherical.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "array_access.hpp"
#include "pygenmod/gmm.hpp"

namespace pygenmod::bind::args::gmm {
using pygenmod::gmm::check_cov_type;

// get(shape) of a per-set covariance-shaped array (B sets, K components, D dims) by cov_type.
template <class Get>
auto by_cov_shape(int type, py::ssize_t B, py::ssize_t K, py::ssize_t D, Get&& get) {
  switch (type) {
    case pygenmod::gmm::FULL:
      return get({B, K, D, D});
    case pygenmod::gmm::TIED:
      return get({B, D, D});
    case pygenmod::gmm::DIAG:
      return get({B, K, D});
    default:
      return get({B, K});
  }
}
template <class P, class T>
const T* cov_in(const py::object& a, const char* name, int type, py::ssize_t B, py::ssize_t K, py::ssize_t D) {
  return by_cov_shape(type, B, K, D, [&](Shape s) { return in<P, T>(a, name, s); });
}
template <class P, class T>
T* cov_out(const py::object& a, const char* name, int type, py::ssize_t B, py::ssize_t K, py::ssize_t D) {
  return by_cov_shape(type, B, K, D, [&](Shape s) { return out<P, T>(a, name, s); });
}

// launch(type, X, W, reg, Bx, n_rep, N, D, K, max_iter, tol, weights, means, covariances, prec_chol,
//        lower_bound, n_iter, converged, flags)
template <class P, class Launch>
void fit(const py::object& X, const py::object& W, const py::object& reg, py::ssize_t n_rep, int type,
         py::ssize_t max_iter, double tol, const py::object& weights, const py::object& means, const py::object& cov,
         const py::object& prec_chol, const py::object& lower_bound, const py::object& n_iter,
         const py::object& converged, const py::object& flags, Launch&& launch) {
  check_cov_type(type);
  if (n_rep < 1) throw std::invalid_argument("n_rep: must be >= 1");
  if (max_iter < 0) throw std::invalid_argument("max_iter: must be >= 0");
  dispatch_float<P>(X, "X", [&](auto tag) {
    using T = decltype(tag);
    const auto Bx = dim<P>(X, "X", 0), N = dim<P>(X, "X", 1), D = dim<P>(X, "X", 2);
    const auto B = Bx * n_rep, K = dim<P>(weights, "weights", 1);
    const T* x = in<P, T>(X, "X", {Bx, N, D});
    const T* w = in<P, T>(W, "W", {Bx, N});
    const T* r = in<P, T>(reg, "reg", {B});
    T* wt = out<P, T>(weights, "weights", {B, K});
    T* mu = out<P, T>(means, "means", {B, K, D});
    T* cv = cov_out<P, T>(cov, "covariances", type, B, K, D);
    T* pc = cov_out<P, T>(prec_chol, "prec_chol", type, B, K, D);
    T* lb = out<P, T>(lower_bound, "lower_bound", {B});
    auto* ni = out<P, std::int64_t>(n_iter, "n_iter", {B});
    auto* cvg = out<P, std::uint8_t>(converged, "converged", {B});
    auto* fl = out<P, std::uint8_t>(flags, "flags", {B, K});
    if (K < 1) throw std::invalid_argument("weights: need at least one component");
    launch(type, x, w, r, Bx, n_rep, N, D, K, max_iter, tol, wt, mu, cv, pc, lb, ni, cvg, fl);
  });
}

// launch(type, X, W, resp, reg, Bx, n_rep, N, D, K, weights, means, covariances, prec_chol, flags)
template <class P, class Launch>
void m_step(const py::object& X, const py::object& W, const py::object& resp, const py::object& reg, py::ssize_t n_rep,
            int type, const py::object& weights, const py::object& means, const py::object& cov,
            const py::object& prec_chol, const py::object& flags, Launch&& launch) {
  check_cov_type(type);
  dispatch_float<P>(X, "X", [&](auto tag) {
    using T = decltype(tag);
    if (n_rep < 1) throw std::invalid_argument("n_rep: must be >= 1");
    const auto Bx = dim<P>(X, "X", 0), N = dim<P>(X, "X", 1), D = dim<P>(X, "X", 2), K = dim<P>(resp, "resp", 2),
               B = Bx * n_rep;
    const T* x = in<P, T>(X, "X", {Bx, N, D});
    const T* w = in<P, T>(W, "W", {Bx, N});
    const T* rs = in<P, T>(resp, "resp", {B, N, K});
    const T* r = in<P, T>(reg, "reg", {B});
    T* wt = out<P, T>(weights, "weights", {B, K});
    T* mu = out<P, T>(means, "means", {B, K, D});
    T* cv = cov_out<P, T>(cov, "covariances", type, B, K, D);
    T* pc = cov_out<P, T>(prec_chol, "prec_chol", type, B, K, D);
    auto* fl = out<P, std::uint8_t>(flags, "flags", {B, K});
    if (K < 1) throw std::invalid_argument("resp: need at least one component");
    launch(type, x, w, rs, r, Bx, n_rep, N, D, K, wt, mu, cv, pc, fl);
  });
}

// launch(type, X, weights, means, prec_chol, B, N, D, K, lp, log_resp, log_norm)
template <class P, class Launch>
void e_step(const py::object& X, const py::object& weights, const py::object& means, const py::object& prec_chol,
            int type, const py::object& lp, const py::object& log_resp, const py::object& log_norm, Launch&& launch) {
  check_cov_type(type);
  dispatch_float<P>(X, "X", [&](auto tag) {
    using T = decltype(tag);
    const auto B = dim<P>(X, "X", 0), N = dim<P>(X, "X", 1), D = dim<P>(X, "X", 2), K = dim<P>(weights, "weights", 1);
    const T* x = in<P, T>(X, "X", {B, N, D});
    const T* wt = in<P, T>(weights, "weights", {B, K});
    const T* mu = in<P, T>(means, "means", {B, K, D});
    const T* pc = cov_in<P, T>(prec_chol, "prec_chol", type, B, K, D);
    T* l = out<P, T>(lp, "lp", {B, N, K});
    T* lr = out<P, T>(log_resp, "log_resp", {B, N, K});
    T* ln = out<P, T>(log_norm, "log_norm", {B, N});
    launch(type, x, wt, mu, pc, B, N, D, K, l, lr, ln);
  });
}

// launch(B, K, D, I, O, S, mu, w, ia, oa, mu_i, mu_o, logc, V, rs, A, C): GMR's conditioning
// (pygenmod/gmm/gmr.hpp), float64; the dimension indices must lie in [0, D).
template <class P, class Launch>
void gmr_condition(const py::object& S, const py::object& mu, const py::object& w, const py::object& ia,
                   const py::object& oa, const py::object& mu_i, const py::object& mu_o, const py::object& logc,
                   const py::object& V, const py::object& rs, const py::object& A, const py::object& C,
                   Launch&& launch) {
  const auto B = dim<P>(w, "w", 0), K = dim<P>(w, "w", 1), D = dim<P>(mu, "mu", 2), I = dim<P>(ia, "ia", 0),
             O = dim<P>(oa, "oa", 0);
  if (K < 1) throw std::invalid_argument("w: need at least one component");
  if (I < 1 || O < 1) throw std::invalid_argument("ia, oa: need at least one input and one output dimension");
  // copies, checked: the kernel runs without the GIL, and another thread could rewrite the arrays
  auto indices = [D](const std::int64_t* p, py::ssize_t n, const char* what) {
    std::vector<std::int64_t> v(p, p + n);
    for (auto d : v)
      if (d < 0 || d >= D) throw std::invalid_argument(std::string(what) + ": dimension indices must lie in [0, D)");
    return v;
  };
  const auto in_dims = indices(in<P, std::int64_t>(ia, "ia", {I}), I, "ia");
  const auto out_dims = indices(in<P, std::int64_t>(oa, "oa", {O}), O, "oa");
  launch(B, K, D, I, O, in<P, double>(S, "S", {B, K, D, D}), in<P, double>(mu, "mu", {B, K, D}),
         in<P, double>(w, "w", {B, K}), in_dims.data(), out_dims.data(), out<P, double>(mu_i, "mu_i", {B, K, I}),
         out<P, double>(mu_o, "mu_o", {B, K, O}), out<P, double>(logc, "logc", {B, K}),
         out<P, double>(V, "V", {B, K, I, I}), out<P, double>(rs, "rs", {B, K, I}),
         out<P, double>(A, "A", {B, K, O, I}), out<P, double>(C, "C", {B, K, O, O}));
}

// launch(dims, x, mu_i, mu_o, logc, V, rs, A, C, h, m, mean, cov): GMR's per-query part
// (pygenmod/gmm/gmr.hpp), float64 only (the Python layer computes GMR in float64).
template <class P, class Launch>
void gmr_query(const py::object& x, const py::object& mu_i, const py::object& mu_o, const py::object& logc,
               const py::object& V, const py::object& rs, const py::object& A, const py::object& C, const py::object& h,
               const py::object& m, const py::object& mean, const py::object& cov, Launch&& launch) {
  const pygenmod::gmm::GmrDims n{dim<P>(x, "x", 0), dim<P>(x, "x", 1), dim<P>(logc, "logc", 1), dim<P>(x, "x", 2),
                                 dim<P>(mu_o, "mu_o", 2)};
  if (n.K < 1) throw std::invalid_argument("logc: need at least one component");
  launch(n, in<P, double>(x, "x", {n.B, n.Q, n.I}), in<P, double>(mu_i, "mu_i", {n.B, n.K, n.I}),
         in<P, double>(mu_o, "mu_o", {n.B, n.K, n.O}), in<P, double>(logc, "logc", {n.B, n.K}),
         in<P, double>(V, "V", {n.B, n.K, n.I, n.I}), in<P, double>(rs, "rs", {n.B, n.K, n.I}),
         in<P, double>(A, "A", {n.B, n.K, n.O, n.I}), in<P, double>(C, "C", {n.B, n.K, n.O, n.O}),
         out<P, double>(h, "h", {n.B, n.Q, n.K}), out<P, double>(m, "m", {n.B, n.Q, n.K, n.O}),
         out<P, double>(mean, "mean", {n.B, n.Q, n.O}), out<P, double>(cov, "cov", {n.B, n.Q, n.O, n.O}));
}

// launch(type, weights, means, prec_chol, B, K, D, n, seed, stream, out, labels)
template <class P, class Launch>
void sample(const py::object& weights, const py::object& means, const py::object& prec_chol, int type,
            std::uint64_t seed, std::uint64_t stream, const py::object& dst, const py::object& labels,
            Launch&& launch) {
  check_cov_type(type);
  dispatch_float<P>(weights, "weights", [&](auto tag) {
    using T = decltype(tag);
    const auto B = dim<P>(weights, "weights", 0), K = dim<P>(weights, "weights", 1), D = dim<P>(means, "means", 2),
               n = dim<P>(dst, "out", 1);
    const T* wt = in<P, T>(weights, "weights", {B, K});
    const T* mu = in<P, T>(means, "means", {B, K, D});
    const T* pc = cov_in<P, T>(prec_chol, "prec_chol", type, B, K, D);
    T* o = out<P, T>(dst, "out", {B, n, D});
    auto* lab = out<P, std::int64_t>(labels, "labels", {B, n});
    launch(type, wt, mu, pc, B, K, D, n, seed, stream, o, lab);
  });
}

// launch(W, Bx, n_rep, N, K, seed, stream, idx)
template <class P, class Launch>
void random_from_data(const py::object& W, py::ssize_t n_rep, py::ssize_t K, std::uint64_t seed, std::uint64_t stream,
                      const py::object& idx, Launch&& launch) {
  if (n_rep < 1 || K < 1) throw std::invalid_argument("n_rep and K must be >= 1");
  dispatch_float<P>(W, "W", [&](auto tag) {
    using T = decltype(tag);
    const auto Bx = dim<P>(W, "W", 0), N = dim<P>(W, "W", 1);
    const T* w = in<P, T>(W, "W", {Bx, N});
    auto* ix = out<P, std::int64_t>(idx, "idx", {Bx * n_rep, K});
    launch(w, Bx, n_rep, N, K, seed, stream, ix);
  });
}

// launch(X, W, Bx, n_rep, N, D, K, seed, stream, idx)
template <class P, class Launch>
void kmeanspp(const py::object& X, const py::object& W, py::ssize_t n_rep, py::ssize_t K, std::uint64_t seed,
              std::uint64_t stream, const py::object& idx, Launch&& launch) {
  if (n_rep < 1 || K < 1) throw std::invalid_argument("n_rep and K must be >= 1");
  dispatch_float<P>(X, "X", [&](auto tag) {
    using T = decltype(tag);
    const auto Bx = dim<P>(X, "X", 0), N = dim<P>(X, "X", 1), D = dim<P>(X, "X", 2);
    const T* x = in<P, T>(X, "X", {Bx, N, D});
    const T* w = in<P, T>(W, "W", {Bx, N});
    auto* ix = out<P, std::int64_t>(idx, "idx", {Bx * n_rep, K});
    launch(x, w, Bx, n_rep, N, D, K, seed, stream, ix);
  });
}

// launch(X, W, Bx, n_rep, N, D, K, max_iter, centers, labels)
template <class P, class Launch>
void kmeans(const py::object& X, const py::object& W, py::ssize_t n_rep, py::ssize_t max_iter,
            const py::object& centers, const py::object& labels, Launch&& launch) {
  if (n_rep < 1 || max_iter < 0) throw std::invalid_argument("n_rep >= 1 and max_iter >= 0 required");
  dispatch_float<P>(X, "X", [&](auto tag) {
    using T = decltype(tag);
    const auto Bx = dim<P>(X, "X", 0), N = dim<P>(X, "X", 1), D = dim<P>(X, "X", 2), K = dim<P>(centers, "centers", 1);
    const T* x = in<P, T>(X, "X", {Bx, N, D});
    const T* w = in<P, T>(W, "W", {Bx, N});
    T* c = out<P, T>(centers, "centers", {Bx * n_rep, K, D});
    auto* lab = out<P, std::int64_t>(labels, "labels", {Bx * n_rep, N});
    launch(x, w, Bx, n_rep, N, D, K, max_iter, c, lab);
  });
}

}  // namespace pygenmod::bind::args::gmm
