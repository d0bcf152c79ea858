// _cpu_gmm: bindings of the Gaussian-mixture kernels. Arrays in, GIL released, no math here;
// the argument unpacking is args/gmm.hpp (shared with _cuda_gmm). cov_type: 0 full, 1 tied,
// 2 diag, 3 spherical (shapes of covariances/prec_chol follow it).
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <vector>

#include "args/gmm.hpp"
#include "bind_common.hpp"
#include "fast_path.hpp"
#include "pygenmod/gmm.hpp"

namespace py = pybind11;
using namespace pybind11::literals;
using namespace pygenmod;
using namespace pygenmod::bind;

namespace {

// Private: caps the instruction set of the EM kernels (-1 none, 0 baseline, 1 AVX2+FMA,
// 2 AVX-512); returns (previous cap, instruction set the CPU has). For tests and diagnostics.
py::tuple isa_cap(int cap) {
  if (cap < -1 || cap > 2) throw std::invalid_argument("cap: expected -1, 0, 1 or 2");
  const int prev = cpu::set_isa_cap(cap);
  return py::make_tuple(prev, cpu::detected_isa());
}

// One-call fast paths of gmm.em_step, the E-step functions and gmm.sample (issue 11;
// pygenmod._fast): X (N, D) with unbatched params, or X (B, N, D) with batched ones, every array
// C-contiguous in X's dtype (sample: in the weights' dtype, no X). They answer None unless every
// check of the general path passes (shapes, finite values, weights >= 0 with a positive sum,
// positive Cholesky diagonals) and the problem is small (the general path releases the GIL and
// can be interrupted).
constexpr py::ssize_t kFastMax = 1 << 16;  // B * N * K * D, and every parameter array's size

// An array shape: (dims...) for one mixture, (B, dims...) for a batch.
inline std::vector<py::ssize_t> batch_shape(bool single, py::ssize_t B, std::initializer_list<py::ssize_t> dims) {
  std::vector<py::ssize_t> s;
  if (!single) s.push_back(B);
  s.insert(s.end(), dims);
  return s;
}

// The shape of covariances / precisions_cholesky by covariance type.
inline std::vector<py::ssize_t> cov_batch_shape(int type, bool single, py::ssize_t B, py::ssize_t K, py::ssize_t D) {
  return type == gmm::FULL   ? batch_shape(single, B, {K, D, D})
         : type == gmm::TIED ? batch_shape(single, B, {D, D})
         : type == gmm::DIAG ? batch_shape(single, B, {K, D})
                             : batch_shape(single, B, {K});
}

template <class T>
struct Mixtures {
  const T *x, *w, *mu, *cov, *pc;
  py::ssize_t B, N, D, K;
  bool single;
  std::vector<py::ssize_t> shape(std::initializer_list<py::ssize_t> dims) const { return batch_shape(single, B, dims); }
};

template <class T>
bool positive_diagonals(int type, const T* pc, py::ssize_t B, py::ssize_t K, py::ssize_t D) {
  const bool square = type == gmm::FULL || type == gmm::TIED;
  const py::ssize_t mats = square ? B * (type == gmm::FULL ? K : 1) : 1;
  const py::ssize_t per = square ? D : B * K * (type == gmm::DIAG ? D : 1);
  for (py::ssize_t m = 0; m < mats; ++m)
    for (py::ssize_t i = 0; i < per; ++i)
      if (!(pc[square ? (m * D + i) * D + i : i] > 0)) return false;
  return true;
}

// The checks of gmm.py's _params on m's parameter arrays (m.B, K, D and single already set):
// shapes by covariance type, finite values, weights >= 0 with a positive sum per mixture, and
// positive Cholesky diagonals.
template <class T>
bool params_ok(const Mixtures<T>& m, const py::array& w, const py::array& mu, const py::array& cov, const py::array& pc,
               int type) {
  const py::ssize_t B = m.B, K = m.K, D = m.D;
  if (!m.w || !m.mu || !m.cov || !m.pc || type < gmm::FULL || type > gmm::SPHERICAL || B < 1 || K < 1 || D < 1 ||
      !fast::product_at_most({B, K, D}, kFastMax) || cov.size() > kFastMax)
    return false;
  const auto cs = cov_batch_shape(type, m.single, B, K, D);
  if (!fast::shape_is(w, m.shape({K})) || !fast::shape_is(mu, m.shape({K, D})) || !fast::shape_is(cov, cs) ||
      !fast::shape_is(pc, cs))
    return false;
  if (!fast::all_finite(m.w, w.size()) || !fast::all_finite(m.mu, mu.size()) || !fast::all_finite(m.cov, cov.size()) ||
      !fast::all_finite(m.pc, pc.size()))
    return false;
  for (py::ssize_t b = 0; b < B; ++b) {
    T sum = 0;
    for (py::ssize_t k = 0; k < K; ++k) {
      if (m.w[b * K + k] < 0) return false;
      sum += m.w[b * K + k];
    }
    if (!(sum > 0)) return false;
  }
  return positive_diagonals(type, m.pc, B, K, D);
}

// X may be strided (columns sliced from a data array: copied into `in`, as the general path
// copies it); the parameters must be C-contiguous (em_step copies them as such).
template <class T>
std::optional<Mixtures<T>> checked(fast::Inputs& in, const py::array& X, const py::array& w, const py::array& mu,
                                   const py::array& cov, const py::array& pc, int type) {
  Mixtures<T> m{in.get<T>(X), fast::view<T>(w), fast::view<T>(mu), fast::view<T>(cov), fast::view<T>(pc)};
  if (!m.x || (X.ndim() != 2 && X.ndim() != 3) || w.ndim() < 1) return std::nullopt;
  m.single = X.ndim() == 2;
  m.B = m.single ? 1 : X.shape(0);
  m.N = X.shape(X.ndim() - 2);
  m.D = X.shape(X.ndim() - 1);
  m.K = w.shape(w.ndim() - 1);
  if (m.N < 1 || !fast::product_at_most({m.B, m.N, m.K, m.D}, kFastMax)) return std::nullopt;
  if (!params_ok(m, w, mu, cov, pc, type) || !fast::all_finite(m.x, X.size())) return std::nullopt;
  return m;
}

// gmm.sample: (X, labels) or None; single mixtures give (n, D) and (n,).
template <class T>
py::object sample_fast_t(const py::array& w, const py::array& mu, const py::array& cov, const py::array& pc, int type,
                         py::ssize_t n, std::uint64_t seed, std::uint64_t stream) {
  Mixtures<T> m{nullptr, fast::view<T>(w), fast::view<T>(mu), fast::view<T>(cov), fast::view<T>(pc)};
  if ((w.ndim() != 1 && w.ndim() != 2) || mu.ndim() < 1) return py::none();
  m.single = w.ndim() == 1;
  m.B = m.single ? 1 : w.shape(0);
  m.K = w.shape(w.ndim() - 1);
  m.D = mu.shape(mu.ndim() - 1);
  if (n < 1 || !fast::product_at_most({m.B, n, m.D}, kFastMax) || !params_ok(m, w, mu, cov, pc, type))
    return py::none();
  py::array_t<T> out(m.shape({n, m.D}));
  py::array_t<std::int64_t> labels(m.shape({n}));
  gmm::sample_cpu<T>(type, m.w, m.mu, m.pc, m.B, m.K, m.D, n, seed, stream, out.mutable_data(), labels.mutable_data());
  return py::make_tuple(out, labels);
}

py::object sample_fast(const py::array& w, const py::array& mu, const py::array& cov, const py::array& pc, int type,
                       py::ssize_t n, std::uint64_t seed, std::uint64_t stream) {
  return fast::by_dtype(w, [&](auto t) { return sample_fast_t<decltype(t)>(w, mu, cov, pc, type, n, seed, stream); });
}

// gmm.em_step: (weights, means, covariances, precisions_cholesky, bound) or None.
template <class T>
py::object em_step_fast_t(const py::array& X, const py::array& w, const py::array& mu, const py::array& cov,
                          const py::array& pc, int type, double reg) {
  fast::Inputs in;
  const auto m = checked<T>(in, X, w, mu, cov, pc, type);
  if (!m || !std::isfinite(reg) || reg < 0) return py::none();
  const py::ssize_t B = m->B, N = m->N, K = m->K;
  // the kernel updates copies of the parameters in place (as the general path's _run_fit)
  auto copy = [](const py::array& a) { return py::array_t<T>(py::array(a.dtype(), a.request().shape, a.data())); };
  py::array_t<T> w2 = copy(w), mu2 = copy(mu), cov2 = copy(cov), pc2 = copy(pc);
  const std::vector<T> ones(static_cast<std::size_t>(B * N), T(1)),
      regs(static_cast<std::size_t>(B), static_cast<T>(reg));
  std::vector<T> lb(static_cast<std::size_t>(B), -std::numeric_limits<T>::infinity());
  std::vector<std::int64_t> n_iter(static_cast<std::size_t>(B));
  std::vector<std::uint8_t> conv(static_cast<std::size_t>(B)), flags(static_cast<std::size_t>(B * K));
  gmm::fit_cpu<T>(type, m->x, ones.data(), regs.data(), B, 1, N, m->D, K, 1, -1.0, w2.mutable_data(),
                  mu2.mutable_data(), cov2.mutable_data(), pc2.mutable_data(), lb.data(), n_iter.data(), conv.data(),
                  flags.data());
  py::object bound;
  if (m->single) {
    bound = py::float_(static_cast<double>(lb[0]));
  } else {
    auto a = fast::empty<T>({B});
    std::copy(lb.begin(), lb.end(), a.mutable_data());
    bound = std::move(a);
  }
  return py::make_tuple(w2, mu2, cov2, pc2, bound);
}

// the E-step of gmm.e_step / log_prob / predict / predict_proba: (lp, log_resp, log_norm) or None.
template <class T>
py::object e_step_fast_t(const py::array& X, const py::array& w, const py::array& mu, const py::array& cov,
                         const py::array& pc, int type) {
  fast::Inputs in;
  const auto m = checked<T>(in, X, w, mu, cov, pc, type);
  if (!m) return py::none();
  py::array_t<T> lp(m->shape({m->N, m->K})), log_resp(m->shape({m->N, m->K})), log_norm(m->shape({m->N}));
  gmm::e_step_cpu<T>(type, m->x, m->w, m->mu, m->pc, m->B, m->N, m->D, m->K, lp.mutable_data(), log_resp.mutable_data(),
                     log_norm.mutable_data());
  return py::make_tuple(lp, log_resp, log_norm);
}

// gmm.m_step with unit point weights: (weights, means, covariances, precisions_cholesky) or None.
template <class T>
py::object m_step_fast_t(const py::array& X, const py::array& resp, int type, double reg) {
  fast::Inputs in;  // (strided X and resp copied, as the general path copies them)
  const T* x = in.get<T>(X);
  const T* r = x ? in.get<T>(resp) : nullptr;
  if (!x || !r || (X.ndim() != 2 && X.ndim() != 3) || resp.ndim() != X.ndim() || type < gmm::FULL ||
      type > gmm::SPHERICAL || !std::isfinite(reg) || reg < 0)
    return py::none();
  const bool single = X.ndim() == 2;
  const py::ssize_t B = single ? 1 : X.shape(0), N = X.shape(X.ndim() - 2), D = X.shape(X.ndim() - 1),
                    K = resp.shape(resp.ndim() - 1);
  if (B < 1 || N < 1 || D < 1 || K < 1 || !fast::product_at_most({B, N, K, D}, kFastMax) ||
      resp.shape(resp.ndim() - 2) != N || (!single && resp.shape(0) != B))
    return py::none();
  if (!fast::all_finite(x, X.size()) || !fast::all_finite(r, resp.size())) return py::none();
  for (py::ssize_t i = 0; i < resp.size(); ++i)
    if (r[i] < 0) return py::none();
  const auto cs = cov_batch_shape(type, single, B, K, D);
  py::array_t<T> w(batch_shape(single, B, {K})), mu(batch_shape(single, B, {K, D})), cov(cs), pc(cs);
  const std::vector<T> ones(static_cast<std::size_t>(B * N), T(1)),
      regs(static_cast<std::size_t>(B), static_cast<T>(reg));
  std::vector<std::uint8_t> flags(static_cast<std::size_t>(B * K));
  gmm::m_step_cpu<T>(type, x, ones.data(), r, regs.data(), B, 1, N, D, K, w.mutable_data(), mu.mutable_data(),
                     cov.mutable_data(), pc.mutable_data(), flags.data());
  return py::make_tuple(w, mu, cov, pc);
}

py::object m_step_fast(const py::array& X, const py::array& resp, int type, double reg) {
  return fast::by_float_dtype(X, [&](auto t) { return m_step_fast_t<decltype(t)>(X, resp, type, reg); });
}

py::object em_step_fast(const py::array& X, const py::array& w, const py::array& mu, const py::array& cov,
                        const py::array& pc, int type, double reg) {
  return fast::by_float_dtype(X, [&](auto t) { return em_step_fast_t<decltype(t)>(X, w, mu, cov, pc, type, reg); });
}

py::object e_step_fast(const py::array& X, const py::array& w, const py::array& mu, const py::array& cov,
                       const py::array& pc, int type) {
  return fast::by_float_dtype(X, [&](auto t) { return e_step_fast_t<decltype(t)>(X, w, mu, cov, pc, type); });
}

}  // namespace

PYBIND11_MODULE(_cpu_gmm, m) {
  pygenmod::shared_pool::adopt();
  m.doc() = "pygenmod Gaussian mixtures, compiled CPU kernels (OpenMP)";
  // The integer codes of the Python <-> C++ contract, named once here (the Python layer's copies
  // are checked against these by tests/test_contracts.py).
  m.attr("COV_TYPES") = py::dict("full"_a = int(gmm::FULL), "tied"_a = int(gmm::TIED), "diag"_a = int(gmm::DIAG),
                                 "spherical"_a = int(gmm::SPHERICAL));
  m.attr("FLAGS") = py::dict("COLLAPSED"_a = int(gmm::COLLAPSED), "REGULARISED"_a = int(gmm::REGULARISED),
                             "EMPTY_SET"_a = int(gmm::EMPTY_SET));
  m.def(
      "fit",
      [](py::array X, py::array W, py::array reg, py::ssize_t n_rep, int cov_type, py::ssize_t max_iter, double tol,
         py::array weights, py::array means, py::array cov, py::array prec_chol, py::array lower_bound,
         py::array n_iter, py::array converged, py::array flags) {
        args::gmm::fit<HostArrays>(X, W, reg, n_rep, cov_type, max_iter, tol, weights, means, cov, prec_chol,
                                   lower_bound, n_iter, converged, flags, [](auto... a) {
                                     Interruptible intr;  // Ctrl-C ends the EM loop
                                     {
                                       py::gil_scoped_release nogil;
                                       gmm::fit_cpu(a..., intr.stop());
                                     }
                                     intr.rethrow();
                                   });
      },
      "X"_a, "W"_a, "reg"_a, "n_rep"_a, "cov_type"_a, "max_iter"_a, "tol"_a, "weights"_a, "means"_a, "covariances"_a,
      "prec_chol"_a, "lower_bound"_a, "n_iter"_a, "converged"_a, "flags"_a);
  m.def(
      "m_step",
      [](py::array X, py::array W, py::array resp, py::array reg, py::ssize_t n_rep, int cov_type, py::array weights,
         py::array means, py::array cov, py::array prec_chol, py::array flags) {
        args::gmm::m_step<HostArrays>(X, W, resp, reg, n_rep, cov_type, weights, means, cov, prec_chol, flags,
                                      nogil([](auto... a) { gmm::m_step_cpu(a...); }));
      },
      "X"_a, "W"_a, "resp"_a, "reg"_a, "n_rep"_a, "cov_type"_a, "weights"_a, "means"_a, "covariances"_a, "prec_chol"_a,
      "flags"_a);
  m.def(
      "e_step",
      [](py::array X, py::array weights, py::array means, py::array prec_chol, int cov_type, py::array lp,
         py::array log_resp, py::array log_norm) {
        args::gmm::e_step<HostArrays>(X, weights, means, prec_chol, cov_type, lp, log_resp, log_norm,
                                      nogil([](auto... a) { gmm::e_step_cpu(a...); }));
      },
      "X"_a, "weights"_a, "means"_a, "prec_chol"_a, "cov_type"_a, "lp"_a, "log_resp"_a, "log_norm"_a);
  m.def(
      "sample",
      [](py::array weights, py::array means, py::array prec_chol, int cov_type, std::uint64_t seed,
         std::uint64_t stream, py::array dst, py::array labels) {
        args::gmm::sample<HostArrays>(weights, means, prec_chol, cov_type, seed, stream, dst, labels,
                                      nogil([](auto... a) { gmm::sample_cpu(a...); }));
      },
      "weights"_a, "means"_a, "prec_chol"_a, "cov_type"_a, "seed"_a, "stream"_a, "out"_a, "labels"_a);
  m.def(
      "random_from_data",
      [](py::array W, py::ssize_t n_rep, py::ssize_t K, std::uint64_t seed, std::uint64_t stream, py::array idx) {
        args::gmm::random_from_data<HostArrays>(W, n_rep, K, seed, stream, idx,
                                                nogil([](auto... a) { gmm::random_from_data_cpu(a...); }));
      },
      "W"_a, "n_rep"_a, "K"_a, "seed"_a, "stream"_a, "idx"_a);
  m.def(
      "kmeanspp",
      [](py::array X, py::array W, py::ssize_t n_rep, py::ssize_t K, std::uint64_t seed, std::uint64_t stream,
         py::array idx) {
        args::gmm::kmeanspp<HostArrays>(X, W, n_rep, K, seed, stream, idx,
                                        nogil([](auto... a) { gmm::kmeanspp_cpu(a...); }));
      },
      "X"_a, "W"_a, "n_rep"_a, "K"_a, "seed"_a, "stream"_a, "idx"_a);
  m.def(
      "gmr_condition",
      [](py::array S, py::array mu, py::array w, py::array ia, py::array oa, py::array mu_i, py::array mu_o,
         py::array logc, py::array V, py::array rs, py::array A, py::array C) {
        args::gmm::gmr_condition<HostArrays>(S, mu, w, ia, oa, mu_i, mu_o, logc, V, rs, A, C,
                                             nogil([](auto... a) { gmm::gmr_condition_cpu(a...); }));
      },
      "S"_a, "mu"_a, "w"_a, "ia"_a, "oa"_a, "mu_i"_a, "mu_o"_a, "logc"_a, "V"_a, "rs"_a, "A"_a, "C"_a);
  m.def(
      "gmr_query",
      [](py::array x, py::array mu_i, py::array mu_o, py::array logc, py::array V, py::array rs, py::array A,
         py::array C, py::array h, py::array mm, py::array mean, py::array cov) {
        args::gmm::gmr_query<HostArrays>(x, mu_i, mu_o, logc, V, rs, A, C, h, mm, mean, cov,
                                         nogil([](auto... a) { gmm::gmr_query_cpu(a...); }));
      },
      "x"_a, "mu_i"_a, "mu_o"_a, "logc"_a, "V"_a, "rs"_a, "A"_a, "C"_a, "h"_a, "m"_a, "mean"_a, "cov"_a);
  m.def("_isa_cap", &isa_cap, "cap"_a);
  m.def(
      "kmeans",
      [](py::array X, py::array W, py::ssize_t n_rep, py::ssize_t max_iter, py::array centers, py::array labels) {
        args::gmm::kmeans<HostArrays>(X, W, n_rep, max_iter, centers, labels,
                                      nogil([](auto... a) { gmm::kmeans_cpu(a...); }));
      },
      "X"_a, "W"_a, "n_rep"_a, "max_iter"_a, "centers"_a, "labels"_a);
  // one-call fast path (issue 11): None when the general path must run
  m.def("em_step_fast", &em_step_fast, "X"_a, "weights"_a, "means"_a, "covariances"_a, "prec_chol"_a, "cov_type"_a,
        "reg_covar"_a);
  m.def("m_step_fast", &m_step_fast, "X"_a, "resp"_a, "cov_type"_a, "reg_covar"_a);
  m.def("sample_fast", &sample_fast, "weights"_a, "means"_a, "covariances"_a, "prec_chol"_a, "cov_type"_a, "n"_a,
        "seed"_a, "stream"_a);
  m.def("e_step_fast", &e_step_fast, "X"_a, "weights"_a, "means"_a, "covariances"_a, "prec_chol"_a, "cov_type"_a);
}
