// _cpu_sampling: bindings of the RNG fills and the sampling / KL / log-density kernels.
// Arrays in, GIL released, no math here. Optional inputs and outputs are passed as arrays
// of size 0 (they become null pointers).
#include "bind_common.hpp"
#include "pygenmod/mvn.hpp"
#include "fast_path.hpp"
#include "pygenmod/sampling.hpp"

#include <limits>
#include <optional>
#include <vector>

namespace py = pybind11;
using namespace pybind11::literals;
using namespace pygenmod;
using namespace pygenmod::bind;
using std::uint64_t;

// A pointer to an optional array: null when it has no elements, else checked like in_ptr.
template <class T>
static const T* opt_in(const py::array& a, const char* name, std::initializer_list<py::ssize_t> shape) {
  return a.size() == 0 ? nullptr : in_ptr<T>(a, name, shape);
}
template <class T>
static T* opt_out(py::array& a, const char* name, std::initializer_list<py::ssize_t> shape) {
  return a.size() == 0 ? nullptr : out_ptr<T>(a, name, shape);
}

static py::ssize_t dim(const py::array& a, int i) { return a.ndim() > i ? a.shape(i) : 0; }

// The outputs of a sampling head: z (S, B, D), optional eps (S, B, D), kl (B,), logq (S, B), status (B,).
template <class T>
struct HeadOut {
  T *z, *eps, *kl, *logq;
  std::int32_t* status;
};
template <class T>
static HeadOut<T> head_out(py::array& z, py::array& eps_out, py::array& kl, py::array& logq, py::array& status,
                           py::ssize_t S, py::ssize_t B, py::ssize_t D) {
  return {out_ptr<T>(z, "z", {S, B, D}), opt_out<T>(eps_out, "eps_out", {S, B, D}), opt_out<T>(kl, "kl", {B}),
          opt_out<T>(logq, "logq", {S, B}), out_ptr<std::int32_t>(status, "status", {B})};
}

// The upstream gradients of a head (each optional): grad_z (S, B, D), grad_kl (B,), grad_logq (S, B).
template <class T>
struct HeadGrad {
  const T *gz, *gkl, *glogq;
};
template <class T>
static HeadGrad<T> head_grad(const py::array& gz, const py::array& gkl, const py::array& glogq, py::ssize_t S,
                             py::ssize_t B, py::ssize_t D) {
  return {opt_in<T>(gz, "grad_z", {S, B, D}), opt_in<T>(gkl, "grad_kl", {B}), opt_in<T>(glogq, "grad_logq", {S, B})};
}

static void fill(uint64_t seed, uint64_t stream, uint64_t offset, int dist, py::array out) {
  if (dist < 0 || dist > 2) throw std::invalid_argument("dist: expected 0 (uniform), 1 (normal) or 2 (gumbel)");
  dispatch_float(out, "out", [&](auto tag) {
    using T = decltype(tag);
    const auto R = dim(out, 0), N = dim(out, 1);
    T* o = out_ptr<T>(out, "out", {R, N});
    py::gil_scoped_release nogil;
    sampling::fill_cpu<T>(dist, seed, stream, offset, R, N, o);
  });
}

static void bits(uint64_t seed, uint64_t stream, uint64_t offset, py::array out) {
  const auto R = dim(out, 0), N = dim(out, 1);
  auto* o = out_ptr<std::uint32_t>(out, "out", {R, N});
  py::gil_scoped_release nogil;
  sampling::bits_cpu(seed, stream, offset, R, N, o);
}

static void philox(py::array ctr, py::array key, py::array out) {
  const auto n = dim(ctr, 0);
  const auto* c = in_ptr<std::uint32_t>(ctr, "counter", {n, 4});
  const auto* k = in_ptr<std::uint32_t>(key, "key", {n, 2});
  auto* o = out_ptr<std::uint32_t>(out, "out", {n, 4});
  py::gil_scoped_release nogil;
  sampling::philox_cpu(c, k, n, o);
}

static void normal_head(py::array mu, py::array p, py::array eps_in, int kind, double lo, double hi, uint64_t seed,
                        uint64_t stream, uint64_t offset, py::array z, py::array eps_out, py::array kl, py::array logq,
                        py::array status) {
  dispatch_float(mu, "mu", [&](auto tag) {
    using T = decltype(tag);
    const auto B = dim(mu, 0), D = dim(mu, 1), S = dim(z, 0);
    const T* m = in_ptr<T>(mu, "mu", {B, D});
    const T* pp = in_ptr<T>(p, "scale", {B, D});
    const T* ei = opt_in<T>(eps_in, "eps", {S, B, D});
    const auto o = head_out<T>(z, eps_out, kl, logq, status, S, B, D);
    py::gil_scoped_release nogil;
    sampling::normal_head_cpu<T>(m, pp, ei, kind, T(lo), T(hi), seed, stream, offset, S, B, D, o.z, o.eps, o.kl, o.logq,
                                 o.status);
  });
}

static void normal_head_backward(py::array mu, py::array p, py::array eps_in, int kind, double lo, double hi,
                                 uint64_t seed, uint64_t stream, uint64_t offset, py::ssize_t S, py::array gz,
                                 py::array gkl, py::array glogq, py::array dmu, py::array dp) {
  dispatch_float(mu, "mu", [&](auto tag) {
    using T = decltype(tag);
    const auto B = dim(mu, 0), D = dim(mu, 1);
    const T* m = in_ptr<T>(mu, "mu", {B, D});
    const T* pp = in_ptr<T>(p, "scale", {B, D});
    const T* ei = opt_in<T>(eps_in, "eps", {S, B, D});
    const auto g = head_grad<T>(gz, gkl, glogq, S, B, D);
    T* dm = out_ptr<T>(dmu, "dmu", {B, D});
    T* dpp = out_ptr<T>(dp, "dscale", {B, D});
    py::gil_scoped_release nogil;
    sampling::normal_head_backward_cpu<T>(m, pp, ei, kind, T(lo), T(hi), seed, stream, offset, S, B, D, g.gz, g.gkl,
                                          g.glogq, dm, dpp);
  });
}

static void kl_normal(py::array mu, py::array p, py::array pm, py::array pp, int kind, double lo, double hi,
                      py::array kl, py::array status) {
  dispatch_float(mu, "mu", [&](auto tag) {
    using T = decltype(tag);
    const auto B = dim(mu, 0), D = dim(mu, 1);
    const T* m = in_ptr<T>(mu, "mu", {B, D});
    const T* q = in_ptr<T>(p, "scale", {B, D});
    const T* m2 = opt_in<T>(pm, "prior_mu", {B, D});
    const T* q2 = opt_in<T>(pp, "prior_scale", {B, D});
    T* k = out_ptr<T>(kl, "kl", {B});
    auto* st = out_ptr<std::int32_t>(status, "status", {B});
    py::gil_scoped_release nogil;
    sampling::kl_normal_cpu<T>(m, q, m2, q2, kind, T(lo), T(hi), B, D, k, st);
  });
}

static void kl_normal_backward(py::array mu, py::array p, py::array pm, py::array pp, int kind, double lo, double hi,
                               py::array g, py::array dmu, py::array dp, py::array dpm, py::array dpp) {
  dispatch_float(mu, "mu", [&](auto tag) {
    using T = decltype(tag);
    const auto B = dim(mu, 0), D = dim(mu, 1);
    const T* m = in_ptr<T>(mu, "mu", {B, D});
    const T* q = in_ptr<T>(p, "scale", {B, D});
    const T* m2 = opt_in<T>(pm, "prior_mu", {B, D});
    const T* q2 = opt_in<T>(pp, "prior_scale", {B, D});
    const T* gg = in_ptr<T>(g, "grad", {B});
    T* o1 = out_ptr<T>(dmu, "dmu", {B, D});
    T* o2 = out_ptr<T>(dp, "dscale", {B, D});
    T* o3 = opt_out<T>(dpm, "dprior_mu", {B, D});
    T* o4 = opt_out<T>(dpp, "dprior_scale", {B, D});
    py::gil_scoped_release nogil;
    sampling::kl_normal_backward_cpu<T>(m, q, m2, q2, kind, T(lo), T(hi), B, D, gg, o1, o2, o3, o4);
  });
}

static void normal_log_prob(py::array x, py::array mu, py::array p, int kind, double lo, double hi, py::array out,
                            py::array status) {
  dispatch_float(mu, "mu", [&](auto tag) {
    using T = decltype(tag);
    const auto B = dim(mu, 0), D = dim(mu, 1), R = dim(x, 0);
    if (B == 0 ? R != 0 : R % B != 0) throw std::invalid_argument("x: rows must be a multiple of mu's rows");
    const T* xx = in_ptr<T>(x, "x", {R, D});
    const T* m = in_ptr<T>(mu, "mu", {B, D});
    const T* q = in_ptr<T>(p, "scale", {B, D});
    T* o = out_ptr<T>(out, "out", {R});
    auto* st = out_ptr<std::int32_t>(status, "status", {R});
    py::gil_scoped_release nogil;
    sampling::normal_log_prob_cpu<T>(xx, m, q, kind, T(lo), T(hi), R, B, D, o, st);
  });
}

static void normal_log_prob_backward(py::array x, py::array mu, py::array p, int kind, double lo, double hi,
                                     py::array g, py::array dx, py::array dmu, py::array dp) {
  dispatch_float(mu, "mu", [&](auto tag) {
    using T = decltype(tag);
    const auto B = dim(mu, 0), D = dim(mu, 1), R = dim(x, 0);
    if (B == 0 ? R != 0 : R % B != 0) throw std::invalid_argument("x: rows must be a multiple of mu's rows");
    const T* xx = in_ptr<T>(x, "x", {R, D});
    const T* m = in_ptr<T>(mu, "mu", {B, D});
    const T* q = in_ptr<T>(p, "scale", {B, D});
    const T* gg = in_ptr<T>(g, "grad", {R});
    T* o1 = out_ptr<T>(dx, "dx", {R, D});
    T* o2 = out_ptr<T>(dmu, "dmu", {B, D});
    T* o3 = out_ptr<T>(dp, "dscale", {B, D});
    py::gil_scoped_release nogil;
    sampling::normal_log_prob_backward_cpu<T>(xx, m, q, kind, T(lo), T(hi), R, B, D, gg, o1, o2, o3);
  });
}

static void mvn_head(py::array mu, py::array L, py::array eps_in, bool check_upper, uint64_t seed, uint64_t stream,
                     uint64_t offset, py::array z, py::array eps_out, py::array kl, py::array logq, py::array status) {
  dispatch_float(mu, "mu", [&](auto tag) {
    using T = decltype(tag);
    const auto B = dim(mu, 0), D = dim(mu, 1), S = dim(z, 0), LB = dim(L, 0);
    if (LB != 1 && LB != B) throw std::invalid_argument("scale_tril: expected 1 or B matrices");
    const T* m = in_ptr<T>(mu, "mu", {B, D});
    const T* l = in_ptr<T>(L, "scale_tril", {LB, D, D});
    const T* ei = opt_in<T>(eps_in, "eps", {S, B, D});
    const auto o = head_out<T>(z, eps_out, kl, logq, status, S, B, D);
    py::gil_scoped_release nogil;
    sampling::mvn_head_cpu<T>(m, l, LB == 1 && B != 1, check_upper, ei, seed, stream, offset, S, B, D, o.z, o.eps, o.kl,
                              o.logq, o.status);
  });
}

static void mvn_head_backward(py::array mu, py::array L, py::array eps_in, uint64_t seed, uint64_t stream,
                              uint64_t offset, py::ssize_t S, py::array gz, py::array gkl, py::array glogq,
                              py::array dmu, py::array dL) {
  dispatch_float(mu, "mu", [&](auto tag) {
    using T = decltype(tag);
    const auto B = dim(mu, 0), D = dim(mu, 1), LB = dim(L, 0);
    if (LB != 1 && LB != B) throw std::invalid_argument("scale_tril: expected 1 or B matrices");
    const T* m = in_ptr<T>(mu, "mu", {B, D});
    const T* l = in_ptr<T>(L, "scale_tril", {LB, D, D});
    const T* ei = opt_in<T>(eps_in, "eps", {S, B, D});
    const auto g = head_grad<T>(gz, gkl, glogq, S, B, D);
    T* dm = out_ptr<T>(dmu, "dmu", {B, D});
    T* dl = out_ptr<T>(dL, "dscale_tril", {LB, D, D});
    py::gil_scoped_release nogil;
    sampling::mvn_head_backward_cpu<T>(m, l, LB == 1 && B != 1, ei, seed, stream, offset, S, B, D, g.gz, g.gkl, g.glogq,
                                       dm, dl);
  });
}

static void tri_solve(py::array L, py::array R, bool trans, py::array X) {
  dispatch_float(R, "rhs", [&](auto tag) {
    using T = decltype(tag);
    const auto B = dim(R, 0), D = dim(R, 1), K = dim(R, 2), LB = dim(L, 0);
    if (LB != 1 && LB != B) throw std::invalid_argument("L: expected 1 or B matrices");
    const T* l = in_ptr<T>(L, "L", {LB, D, D});
    const T* r = in_ptr<T>(R, "rhs", {B, D, K});
    T* x = out_ptr<T>(X, "out", {B, D, K});
    py::gil_scoped_release nogil;
    sampling::tri_solve_cpu<T>(l, LB == 1 && B != 1, r, B, D, K, trans, x);
  });
}

static void tril_check(py::array L, py::array flags) {
  dispatch_float(L, "L", [&](auto tag) {
    using T = decltype(tag);
    const auto N = dim(L, 0), D = dim(L, 1);
    const T* l = in_ptr<T>(L, "L", {N, D, D});
    auto* f = out_ptr<std::int32_t>(flags, "flags", {N});
    py::gil_scoped_release nogil;
    sampling::tril_check_cpu<T>(l, N, D, f);
  });
}

// x (R, D) rows against mu (B, D) rows r % B, R a multiple of B; L (1 or B, D, D).
static void check_rows(py::ssize_t R, py::ssize_t B, py::ssize_t LB) {
  if (B == 0 ? R != 0 : R % B != 0) throw std::invalid_argument("x: rows must be a multiple of mu's rows");
  if (LB != 1 && LB != B) throw std::invalid_argument("L: expected 1 or B matrices");
}

static void mvn_rows(py::array x, py::array mu, py::array L, int mode, bool squared, py::array out, py::array status) {
  dispatch_float(mu, "mu", [&](auto tag) {
    using T = decltype(tag);
    const auto B = dim(mu, 0), D = dim(mu, 1), R = dim(x, 0), LB = dim(L, 0);
    check_rows(R, B, LB);
    const T* xx = in_ptr<T>(x, "x", {R, D});
    const T* m = in_ptr<T>(mu, "mu", {B, D});
    const T* l = in_ptr<T>(L, "L", {LB, D, D});
    T* o = out_ptr<T>(out, "out", {R});
    auto* st = out_ptr<std::int32_t>(status, "status", {R});
    py::gil_scoped_release nogil;
    sampling::mvn_rows_cpu<T>(xx, m, l, LB == 1 && B != 1, mode, squared, R, B, D, o, st);
  });
}

static void mvn_rows_backward(py::array x, py::array mu, py::array L, int mode, bool squared, py::array g, py::array dx,
                              py::array dmu, py::array dL, py::array status) {
  dispatch_float(mu, "mu", [&](auto tag) {
    using T = decltype(tag);
    const auto B = dim(mu, 0), D = dim(mu, 1), R = dim(x, 0), LB = dim(L, 0);
    check_rows(R, B, LB);
    const T* xx = in_ptr<T>(x, "x", {R, D});
    const T* m = in_ptr<T>(mu, "mu", {B, D});
    const T* l = in_ptr<T>(L, "L", {LB, D, D});
    const T* gg = in_ptr<T>(g, "grad", {R});
    T* o1 = out_ptr<T>(dx, "dx", {R, D});
    T* o2 = out_ptr<T>(dmu, "dmu", {B, D});
    T* o3 = out_ptr<T>(dL, "dL", {LB, D, D});
    auto* st = out_ptr<std::int32_t>(status, "status", {R});
    py::gil_scoped_release nogil;
    sampling::mvn_rows_backward_cpu<T>(xx, m, l, LB == 1 && B != 1, mode, squared, R, B, D, gg, o1, o2, o3, st);
  });
}

static void kl_mvn(py::array mu, py::array L, py::array pm, py::array pL, py::array kl, py::array status) {
  dispatch_float(mu, "mu", [&](auto tag) {
    using T = decltype(tag);
    const auto B = dim(mu, 0), D = dim(mu, 1), LB = dim(L, 0), LB2 = dim(pL, 0);
    check_rows(B, B, LB);
    if (pL.size()) check_rows(B, B, LB2);
    const T* m = in_ptr<T>(mu, "mu", {B, D});
    const T* l = in_ptr<T>(L, "scale_tril", {LB, D, D});
    const T* m2 = opt_in<T>(pm, "prior_mu", {B, D});
    const T* l2 = opt_in<T>(pL, "prior_scale_tril", {LB2, D, D});
    T* k = out_ptr<T>(kl, "kl", {B});
    auto* st = out_ptr<std::int32_t>(status, "status", {B});
    py::gil_scoped_release nogil;
    sampling::kl_mvn_cpu<T>(m, l, LB == 1 && B != 1, m2, l2, LB2 == 1 && B != 1, B, D, k, st);
  });
}

static void kl_mvn_backward(py::array mu, py::array L, py::array pm, py::array pL, py::array g, py::array dmu,
                            py::array dL, py::array dpm, py::array dpL) {
  dispatch_float(mu, "mu", [&](auto tag) {
    using T = decltype(tag);
    const auto B = dim(mu, 0), D = dim(mu, 1), LB = dim(L, 0), LB2 = dim(pL, 0);
    check_rows(B, B, LB);
    if (pL.size()) check_rows(B, B, LB2);
    const T* m = in_ptr<T>(mu, "mu", {B, D});
    const T* l = in_ptr<T>(L, "scale_tril", {LB, D, D});
    const T* m2 = opt_in<T>(pm, "prior_mu", {B, D});
    const T* l2 = opt_in<T>(pL, "prior_scale_tril", {LB2, D, D});
    const T* gg = in_ptr<T>(g, "grad", {B});
    T* o1 = out_ptr<T>(dmu, "dmu", {B, D});
    T* o2 = out_ptr<T>(dL, "dscale_tril", {LB, D, D});
    T* o3 = opt_out<T>(dpm, "dprior_mu", {B, D});
    T* o4 = l2 ? out_ptr<T>(dpL, "dprior_scale_tril", {LB2, D, D}) : nullptr;
    py::gil_scoped_release nogil;
    sampling::kl_mvn_backward_cpu<T>(m, l, LB == 1 && B != 1, m2, l2, LB2 == 1 && B != 1, B, D, gg, o1, o2, o3, o4);
  });
}

static void gumbel_softmax(py::array logits, double tau, uint64_t seed, uint64_t stream, uint64_t offset,
                           py::array y_soft, py::array y_hard, py::array index, py::array status) {
  dispatch_float(logits, "logits", [&](auto tag) {
    using T = decltype(tag);
    const auto R = dim(logits, 0), K = dim(logits, 1);
    const T* l = in_ptr<T>(logits, "logits", {R, K});
    T* ys = out_ptr<T>(y_soft, "y_soft", {R, K});
    T* yh = opt_out<T>(y_hard, "y", {R, K});
    auto* ix = out_ptr<std::int64_t>(index, "index", {R});
    auto* st = out_ptr<std::int32_t>(status, "status", {R});
    py::gil_scoped_release nogil;
    sampling::gumbel_softmax_cpu<T>(l, R, K, T(tau), seed, stream, offset, ys, yh, ix, st);
  });
}

static void gumbel_softmax_backward(py::array logits, py::array y_soft, double tau, uint64_t seed, uint64_t stream,
                                    uint64_t offset, py::array g, py::array out, py::array status) {
  dispatch_float(g, "grad_y", [&](auto tag) {
    using T = decltype(tag);
    const auto R = dim(g, 0), K = dim(g, 1);
    const T* ys = opt_in<T>(y_soft, "y_soft", {R, K});
    const T* l = ys ? nullptr : in_ptr<T>(logits, "logits", {R, K});
    const T* gg = in_ptr<T>(g, "grad_y", {R, K});
    T* o = out_ptr<T>(out, "out", {R, K});
    auto* st = out_ptr<std::int32_t>(status, "status", {R});
    py::gil_scoped_release nogil;
    sampling::gumbel_softmax_backward_cpu<T>(l, ys, R, K, T(tau), seed, stream, offset, gg, o, st);
  });
}

// rsample_normal's one-call fast path (issue 11): mu (D,) or (B, D), logvar of the same shape
// and dtype, one sample, no clamp: z in mu's shape, or None when the general path must run
// (any other input, or a row with NaN/inf: that path raises the error; see fast_path.hpp).
template <class T>
static py::object rsample_normal_fast_t(const py::array& mu, const py::array& logvar, uint64_t seed, uint64_t stream,
                                        uint64_t offset) {
  const T* m = fast::view<T>(mu);
  const T* p = fast::view<T>(logvar);
  if (!m || !p || (mu.ndim() != 1 && mu.ndim() != 2)) return py::none();
  const bool one = mu.ndim() == 1;
  const py::ssize_t B = one ? 1 : mu.shape(0), D = mu.shape(one ? 0 : 1);
  if (!(one ? fast::shape_is(logvar, {D}) : fast::shape_is(logvar, {B, D}))) return py::none();
  auto z = one ? fast::empty<T>({D}) : fast::empty<T>({B, D});
  std::vector<std::int32_t> status(B);
  const T inf = std::numeric_limits<T>::infinity();
  {
    std::optional<py::gil_scoped_release> nogil;
    if (B * D >= (1 << 14)) nogil.emplace();  // a release costs more than a tiny draw
    sampling::normal_head_cpu<T>(m, p, nullptr, 0, -inf, inf, seed, stream, offset, 1, B, D, z.mutable_data(), nullptr,
                                 nullptr, nullptr, status.data());
  }
  for (auto st : status)
    if (st) return py::none();
  return std::move(z);
}

static py::object rsample_normal_fast(py::array mu, py::array logvar, uint64_t seed, uint64_t stream, uint64_t offset) {
  if (fast::view<double>(mu)) return rsample_normal_fast_t<double>(mu, logvar, seed, stream, offset);
  if (fast::view<float>(mu)) return rsample_normal_fast_t<float>(mu, logvar, seed, stream, offset);
  return py::none();
}

PYBIND11_MODULE(_cpu_sampling, m) {
  m.doc() = "pygenmod counter-based RNG and reparameterized sampling, compiled CPU kernels (OpenMP)";
  // Named integer codes of the Python <-> C++ contract (checked by tests/test_contracts.py).
  m.attr("SCALE_KINDS") =
      py::dict("logvar"_a = int(sampling::LOGVAR), "log_std"_a = int(sampling::LOG_STD), "std"_a = int(sampling::STD));
  m.attr("DISTS") =
      py::dict("uniform"_a = int(rng::UNIFORM), "normal"_a = int(rng::NORMAL), "gumbel"_a = int(rng::GUMBEL));
  m.def("fill", &fill, "seed"_a, "stream"_a, "offset"_a, "dist"_a, "out"_a);
  m.def("bits", &bits, "seed"_a, "stream"_a, "offset"_a, "out"_a);
  m.def("philox", &philox, "counter"_a, "key"_a, "out"_a);
  m.def("normal_head", &normal_head, "mu"_a, "scale"_a, "eps"_a, "kind"_a, "lo"_a, "hi"_a, "seed"_a, "stream"_a,
        "offset"_a, "z"_a, "eps_out"_a, "kl"_a, "logq"_a, "status"_a);
  m.def("normal_head_backward", &normal_head_backward, "mu"_a, "scale"_a, "eps"_a, "kind"_a, "lo"_a, "hi"_a, "seed"_a,
        "stream"_a, "offset"_a, "n_samples"_a, "grad_z"_a, "grad_kl"_a, "grad_logq"_a, "dmu"_a, "dscale"_a);
  m.def("kl_normal", &kl_normal, "mu"_a, "scale"_a, "prior_mu"_a, "prior_scale"_a, "kind"_a, "lo"_a, "hi"_a, "kl"_a,
        "status"_a);
  m.def("kl_normal_backward", &kl_normal_backward, "mu"_a, "scale"_a, "prior_mu"_a, "prior_scale"_a, "kind"_a, "lo"_a,
        "hi"_a, "grad"_a, "dmu"_a, "dscale"_a, "dprior_mu"_a, "dprior_scale"_a);
  m.def("normal_log_prob", &normal_log_prob, "x"_a, "mu"_a, "scale"_a, "kind"_a, "lo"_a, "hi"_a, "out"_a, "status"_a);
  m.def("normal_log_prob_backward", &normal_log_prob_backward, "x"_a, "mu"_a, "scale"_a, "kind"_a, "lo"_a, "hi"_a,
        "grad"_a, "dx"_a, "dmu"_a, "dscale"_a);
  m.def("mvn_head", &mvn_head, "mu"_a, "scale_tril"_a, "eps"_a, "check_upper"_a, "seed"_a, "stream"_a, "offset"_a,
        "z"_a, "eps_out"_a, "kl"_a, "logq"_a, "status"_a);
  m.def("mvn_head_backward", &mvn_head_backward, "mu"_a, "scale_tril"_a, "eps"_a, "seed"_a, "stream"_a, "offset"_a,
        "n_samples"_a, "grad_z"_a, "grad_kl"_a, "grad_logq"_a, "dmu"_a, "dscale_tril"_a);
  m.def("tri_solve", &tri_solve, "L"_a, "rhs"_a, "trans"_a, "out"_a);
  m.attr("TRIL_FLAGS") = py::dict("nonfinite"_a = int(sampling::TRIL_NONFINITE), "upper"_a = int(sampling::TRIL_UPPER),
                                  "diag"_a = int(sampling::TRIL_DIAG));
  m.attr("MVN_MODES") =
      py::dict("scale_tril"_a = int(sampling::MVN_SCALE), "precision_tril"_a = int(sampling::MVN_PRECISION),
               "log_prob"_a = int(sampling::MVN_LOG_PROB));
  m.attr("ROW_STATUS") = py::dict("x"_a = int(sampling::BAD_X), "mu"_a = int(sampling::BAD_MU));
  m.attr("GUMBEL_STATUS") =
      py::dict("bad_logit"_a = int(sampling::GUMBEL_BAD_LOGIT), "all_masked"_a = int(sampling::GUMBEL_ALL_MASKED));
  m.def("tril_check", &tril_check, "L"_a, "flags"_a);
  m.def("mvn_rows", &mvn_rows, "x"_a, "mu"_a, "L"_a, "mode"_a, "squared"_a, "out"_a, "status"_a);
  m.def("mvn_rows_backward", &mvn_rows_backward, "x"_a, "mu"_a, "L"_a, "mode"_a, "squared"_a, "grad"_a, "dx"_a, "dmu"_a,
        "dL"_a, "status"_a);
  m.def("kl_mvn", &kl_mvn, "mu"_a, "scale_tril"_a, "prior_mu"_a, "prior_scale_tril"_a, "kl"_a, "status"_a);
  m.def("kl_mvn_backward", &kl_mvn_backward, "mu"_a, "scale_tril"_a, "prior_mu"_a, "prior_scale_tril"_a, "grad"_a,
        "dmu"_a, "dscale_tril"_a, "dprior_mu"_a, "dprior_scale_tril"_a);
  m.def("gumbel_softmax", &gumbel_softmax, "logits"_a, "temperature"_a, "seed"_a, "stream"_a, "offset"_a, "y_soft"_a,
        "y"_a, "index"_a, "status"_a);
  m.def("gumbel_softmax_backward", &gumbel_softmax_backward, "logits"_a, "y_soft"_a, "temperature"_a, "seed"_a,
        "stream"_a, "offset"_a, "grad_y"_a, "out"_a, "status"_a);
  // one-call fast path (issue 11): None when the general path must run
  m.def("rsample_normal_fast", &rsample_normal_fast);
}
