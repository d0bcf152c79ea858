// _cpu_sampling: bindings of the RNG fills and the sampling / KL / log-density kernels.
// Arrays in, GIL released, no math here; the argument unpacking is args/sampling.hpp (shared
// with _cuda_sampling). Optional inputs and outputs are passed as arrays of size 0 (they become
// null pointers).
#include "args/sampling.hpp"
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
namespace a = pygenmod::bind::args::sampling;

// The CPU launcher of kernel sampling::<name>_cpu: the GIL released around it.
#define PGM_CPU(name) nogil([](auto... x) { sampling::name##_cpu(x...); })

// ----------------------------------------------------------------------------- one-call fast paths
// (issue 11; fast_path.hpp) Plain NumPy arrays with a function's default options: checked here,
// then the general path's kernel, so the same bits. None (or (None, key) for the seeded ones)
// wherever the general Python path must run: any other input, or a kernel row status that is
// not clean (that path then raises the error). The seeded paths take the raw seed and the Python
// layer's resolve_seed and draw the key only after the checks the general path makes before its
// own draw; a key drawn before a later check fails goes back with the None for the general path
// to use, so the package generator advances exactly as without the fast path.

template <class T>
static const T* batch_view(fast::Inputs& in, const py::array& a, py::ssize_t& B, py::ssize_t& D) {
  const T* p = in.get<T>(a);
  if (!p || a.ndim() != 2) return nullptr;
  B = a.shape(0);
  D = a.shape(1);
  return p;
}

// mu and the scale of a diagonal Gaussian's fast path, (B, D) each, their rows read in place
// at their strides (Inputs::rows): a column slice of one encoder output is not copied.
template <class T>
struct GaussRows {
  const T* m = nullptr;
  const T* p = nullptr;
  py::ssize_t B = 0, D = 0;
  sampling::RowStrides ld;
};
template <class T>
static bool gauss_rows(fast::Inputs& in, const py::array& mu, const py::array& scale, GaussRows<T>& g) {
  std::int64_t lm = 0, lp = 0;
  g.m = in.rows<T>(mu, lm);
  if (!g.m) return false;
  g.B = mu.shape(0);
  g.D = mu.shape(1);
  g.p = fast::shape_is(scale, {g.B, g.D}) ? in.rows<T>(scale, lp) : nullptr;
  g.ld = {lm, lp};
  return g.p != nullptr;
}

static py::tuple no_result(const std::optional<std::uint64_t>& key = std::nullopt) {
  return py::make_tuple(py::none(), key ? py::object(py::int_(*key)) : py::object(py::none()));
}

// f(T{}) by mu's dtype for a seeded fast path: (None, None) for any other dtype.
template <class F>
static py::object seeded_by_dtype(const py::array& a, F&& f) {
  py::object r = fast::by_float_dtype(a, std::forward<F>(f));
  return r.is_none() ? py::object(no_result()) : r;
}

constexpr auto kInf = std::numeric_limits<double>::infinity();

// rsample_normal (mu (D,) or (B, D)) and normal_head (mu (B, D)): logvar of mu's shape, one
// sample, no clamp. (z, key) or (Head's (z, kl), key). Before the draw, as the general path: mu
// float, of the accepted rank. NaN/inf in mu or logvar is the kernel's row status (no scan of
// its own: a serial pass over a 16 MB mu cost 2 ms of an 8 ms call).
template <class T>
static py::tuple normal_head_fast_t(const py::array& mu, const py::array& logvar, const py::handle& seed,
                                    const py::object& resolve, uint64_t stream, uint64_t offset, bool head) {
  fast::Inputs in;
  if (!(mu.ndim() == 2 || (mu.ndim() == 1 && !head))) return no_result();
  const bool one = mu.ndim() == 1;
  std::int64_t lm = 0, lp = 0;  // (B, D) rows are read at their strides (Inputs::rows)
  const T* m = one ? in.get<T>(mu) : in.rows<T>(mu, lm);
  if (!m) return no_result();
  const auto key = fast::draw_key(resolve, seed);
  const py::ssize_t B = one ? 1 : mu.shape(0), D = mu.shape(one ? 0 : 1);
  const T* p = one ? (fast::shape_is(logvar, {D}) ? in.get<T>(logvar) : nullptr)
                   : (fast::shape_is(logvar, {B, D}) ? in.rows<T>(logvar, lp) : nullptr);
  if (!p) return no_result(key);
  auto z = one ? fast::empty<T>({D}) : fast::empty<T>({B, D});
  auto kl = fast::empty<T>({head ? B : 0});
  std::vector<std::int32_t> status(B);
  {
    fast::ReleaseIfLarge nogil(B * D);
    sampling::normal_head_cpu<T>(m, p, nullptr, sampling::LOGVAR, T(-kInf), T(kInf), key, stream, offset, 1, B, D,
                                 z.mutable_data(), nullptr, head ? kl.mutable_data() : nullptr, nullptr, status.data(),
                                 {lm, lp});
  }
  if (!fast::all_clean(status)) return no_result(key);
  return py::make_tuple(head ? py::object(py::make_tuple(z, kl)) : py::object(std::move(z)), key);
}

// An optional array of a fast path: None (null), or of T and this shape (and finite when
// asked). False when given but not so.
template <class T>
static bool optional_view(fast::Inputs& in, const py::object& a, std::initializer_list<py::ssize_t> shape, bool finite,
                          const T*& out) {
  out = nullptr;
  if (a.is_none()) return true;
  const auto arr = py::reinterpret_borrow<py::array>(a);  // (Inputs::get checks that it is one)
  out = in.get<T>(arr);
  return out && fast::shape_is(arr, shape) && (!finite || fast::all_finite(out, arr.size()));
}

// The noise and the upstream gradients of a head's backward fast path (one sample): eps None or
// (B, D), grad_z (B, D), grad_kl and grad_log_q (B,), each gradient None or finite.
template <class T>
static bool head_grad_views(fast::Inputs& in, py::ssize_t B, py::ssize_t D, const py::object& eps,
                            const py::object& grad_z, const py::object& grad_kl, const py::object& grad_log_q,
                            const T*& e, const T*& gz, const T*& gk, const T*& gq) {
  return optional_view<T>(in, eps, {B, D}, false, e) && optional_view<T>(in, grad_z, {B, D}, true, gz) &&
         optional_view<T>(in, grad_kl, {B}, true, gk) && optional_view<T>(in, grad_log_q, {B}, true, gq);
}

// normal_head_backward / rsample_normal_backward: mu and logvar (B, D), one sample, no clamp;
// eps None (regenerated from the key) or (B, D); each upstream gradient None or of mu's dtype
// and finite (the general path's check): grad_z (B, D), grad_kl and grad_log_q (B,).
// ((grad_mu, grad_logvar), key). Before the draw, as the general path: mu float, 2-D.
template <class T>
static py::tuple normal_head_backward_fast_t(const py::array& mu, const py::array& logvar, const py::object& eps,
                                             const py::handle& seed, const py::object& resolve, uint64_t stream,
                                             uint64_t offset, const py::object& grad_z, const py::object& grad_kl,
                                             const py::object& grad_log_q) {
  fast::Inputs in;
  std::int64_t lm, lp;
  const T* m = in.rows<T>(mu, lm);
  if (!m) return no_result();
  const auto key = fast::draw_key(resolve, seed, eps);
  const py::ssize_t B = mu.shape(0), D = mu.shape(1);
  const T* p = fast::shape_is(logvar, {B, D}) ? in.rows<T>(logvar, lp) : nullptr;
  const T *e, *gz, *gk, *gq;
  if (!p || !head_grad_views<T>(in, B, D, eps, grad_z, grad_kl, grad_log_q, e, gz, gk, gq)) return no_result(key);
  auto dm = fast::empty<T>({B, D});
  auto dp = fast::empty<T>({B, D});
  {
    fast::ReleaseIfLarge nogil(2 * B * D);
    sampling::normal_head_backward_cpu<T>(m, p, e, sampling::LOGVAR, T(-kInf), T(kInf), key, stream, offset, 1, B, D,
                                          gz, gk, gq, dm.mutable_data(), dp.mutable_data(), {lm, lp});
  }
  return py::make_tuple(py::make_tuple(dm, dp), key);
}

// kl_normal against N(0, I) and normal_log_prob with x of mu's shape, (B, D), logvar, no clamp.
template <class T>
static py::object kl_normal_fast_t(const py::array& mu, const py::array& logvar) {
  fast::Inputs in;
  GaussRows<T> g;
  if (!gauss_rows<T>(in, mu, logvar, g)) return py::none();
  const py::ssize_t B = g.B, D = g.D;
  auto kl = fast::empty<T>({B});
  std::vector<std::int32_t> status(B);
  {
    fast::ReleaseIfLarge nogil(B * D);
    sampling::kl_normal_cpu<T>(g.m, g.p, nullptr, nullptr, sampling::LOGVAR, T(-kInf), T(kInf), B, D, kl.mutable_data(),
                               status.data(), g.ld);
  }
  if (!fast::all_clean(status)) return py::none();
  return std::move(kl);
}

template <class T>
static py::object normal_log_prob_fast_t(const py::array& x, const py::array& mu, const py::array& logvar) {
  fast::Inputs in;
  GaussRows<T> g;
  const T* px = gauss_rows<T>(in, mu, logvar, g) && fast::shape_is(x, {g.B, g.D}) ? in.get<T>(x) : nullptr;
  if (!px) return py::none();
  const py::ssize_t B = g.B, D = g.D;
  auto out = fast::empty<T>({B});
  std::vector<std::int32_t> status(B);
  {
    fast::ReleaseIfLarge nogil(B * D);
    sampling::normal_log_prob_cpu<T>(px, g.m, g.p, sampling::LOGVAR, T(-kInf), T(kInf), B, B, D, out.mutable_data(),
                                     status.data(), g.ld);
  }
  if (!fast::all_clean(status)) return py::none();
  return std::move(out);
}

// Their backward passes: grad_kl / grad_log_prob (B,) of mu's dtype and finite (the general
// path's check). (grad_mu, grad_logvar) and (grad_x, grad_mu, grad_logvar).
template <class T>
static const T* row_grad_view(fast::Inputs& in, const py::array& g, py::ssize_t B) {
  if (!fast::shape_is(g, {B})) return nullptr;
  const T* pg = in.get<T>(g);
  return pg && fast::all_finite(pg, B) ? pg : nullptr;
}

template <class T>
static py::object kl_normal_backward_fast_t(const py::array& mu, const py::array& logvar, const py::array& grad) {
  fast::Inputs in;
  GaussRows<T> r;
  const T* g = gauss_rows<T>(in, mu, logvar, r) ? row_grad_view<T>(in, grad, r.B) : nullptr;
  if (!g) return py::none();
  const py::ssize_t B = r.B, D = r.D;
  auto dm = fast::empty<T>({B, D});
  auto dp = fast::empty<T>({B, D});
  {
    fast::ReleaseIfLarge nogil(B * D);
    sampling::kl_normal_backward_cpu<T>(r.m, r.p, nullptr, nullptr, sampling::LOGVAR, T(-kInf), T(kInf), B, D, g,
                                        dm.mutable_data(), dp.mutable_data(), nullptr, nullptr, r.ld);
  }
  return py::make_tuple(dm, dp, py::none(), py::none());
}

template <class T>
static py::object normal_log_prob_backward_fast_t(const py::array& x, const py::array& mu, const py::array& logvar,
                                                  const py::array& grad) {
  fast::Inputs in;
  GaussRows<T> r;
  const T* px = gauss_rows<T>(in, mu, logvar, r) && fast::shape_is(x, {r.B, r.D}) ? in.get<T>(x) : nullptr;
  const T* g = px ? row_grad_view<T>(in, grad, r.B) : nullptr;
  if (!g) return py::none();
  const py::ssize_t B = r.B, D = r.D;
  auto dx = fast::empty<T>({B, D});
  auto dm = fast::empty<T>({B, D});
  auto dp = fast::empty<T>({B, D});
  {
    fast::ReleaseIfLarge nogil(B * D);
    sampling::normal_log_prob_backward_cpu<T>(px, r.m, r.p, sampling::LOGVAR, T(-kInf), T(kInf), B, B, D, g,
                                              dx.mutable_data(), dm.mutable_data(), dp.mutable_data(), r.ld);
  }
  return py::make_tuple(dx, dm, dp);
}

// The factor of an MVN fast path: (B, D, D) per row or (D, D) shared, of T.
template <class T>
static const T* tril_view(fast::Inputs& in, const py::array& L, py::ssize_t B, py::ssize_t D, bool& shared) {
  shared = L.ndim() == 2;
  if (!(shared ? fast::shape_is(L, {D, D}) : fast::shape_is(L, {B, D, D}))) return nullptr;
  return in.get<T>(L);
}

// mvn_head_backward / rsample_mvn_backward: mu (B, D), scale_tril (B, D, D) or (D, D) shared (its
// gradient of the same shape), one sample; eps and the upstream gradients as for
// normal_head_backward_fast. ((grad_mu, grad_scale_tril), key).
template <class T>
static py::tuple mvn_head_backward_fast_t(const py::array& mu, const py::array& L, const py::object& eps,
                                          const py::handle& seed, const py::object& resolve, uint64_t stream,
                                          uint64_t offset, const py::object& grad_z, const py::object& grad_kl,
                                          const py::object& grad_log_q) {
  fast::Inputs in;
  py::ssize_t B, D;
  const T* m = batch_view<T>(in, mu, B, D);
  if (!m) return no_result();
  const auto key = fast::draw_key(resolve, seed, eps);
  bool shared;
  const T* pl = tril_view<T>(in, L, B, D, shared);
  const T *e, *gz, *gk, *gq;
  if (!pl || !head_grad_views<T>(in, B, D, eps, grad_z, grad_kl, grad_log_q, e, gz, gk, gq)) return no_result(key);
  auto dm = fast::empty<T>({B, D});
  auto dL = shared ? fast::empty<T>({D, D}) : fast::empty<T>({B, D, D});
  {
    fast::ReleaseIfLarge nogil(B * D * D);
    // (one row's factor is its own, as on the general path: no sum over rows, so the same zeros)
    sampling::mvn_head_backward_cpu<T>(m, pl, shared && B != 1, e, key, stream, offset, 1, B, D, gz, gk, gq,
                                       dm.mutable_data(), dL.mutable_data());
  }
  return py::make_tuple(py::make_tuple(dm, dL), key);
}

// What a call of mvn_head_fast returns: kl_mvn's KL (no noise, no key), rsample_mvn's z, or
// mvn_head's (z, kl).
enum MvnHeadOut : int { MVN_KL = 0, MVN_Z = 1, MVN_Z_KL = 2 };

// rsample_mvn, mvn_head (S = 1) and kl_mvn against N(0, I) (S = 0, no key) with check=True, as
// the general path's mvn_head call. (z, kl or (z, kl); key); before the draw: mu (B, D) float
// and, when sampling, finite.
template <class T>
static py::tuple mvn_head_fast_t(const py::array& mu, const py::array& L, const py::handle& seed,
                                 const py::object& resolve, uint64_t stream, uint64_t offset, int what) {
  const bool sample = what != MVN_KL, want_kl = what != MVN_Z;
  fast::Inputs in;
  py::ssize_t B, D;
  bool shared;
  const T* m = batch_view<T>(in, mu, B, D);
  if (!m || (sample && !fast::all_finite(m, mu.size()))) return no_result();
  std::optional<std::uint64_t> key;
  if (sample) key = fast::draw_key(resolve, seed);
  const T* pl = tril_view<T>(in, L, B, D, shared);
  if (!pl) return no_result(key);
  auto z = fast::empty<T>({sample ? B : 0, D});
  auto kl = fast::empty<T>({want_kl ? B : 0});
  std::vector<std::int32_t> status(B);
  {
    fast::ReleaseIfLarge nogil(B * D * D);
    sampling::mvn_head_cpu<T>(m, pl, shared, true, nullptr, key.value_or(0), stream, offset, sample ? 1 : 0, B, D,
                              sample ? z.mutable_data() : nullptr, nullptr, want_kl ? kl.mutable_data() : nullptr,
                              nullptr, status.data());
  }
  if (!fast::all_clean(status)) return no_result(key);
  const py::object out = what == MVN_Z_KL ? py::object(py::make_tuple(z, kl)) : what == MVN_Z ? z : kl;
  return py::make_tuple(out, key ? py::object(py::int_(*key)) : py::object(py::none()));
}

// mvn_log_prob and mahalanobis (mode: sampling::MvnMode): x (B, D), the factor checked
// (tril_check) before the row kernel, as the general path does.
template <class T>
static py::object mvn_rows_fast_t(const py::array& x, const py::array& mu, const py::array& L, int mode, bool squared) {
  fast::Inputs in;
  py::ssize_t B, D;
  bool shared;
  const T* m = batch_view<T>(in, mu, B, D);
  const T* pl = m ? tril_view<T>(in, L, B, D, shared) : nullptr;
  const T* px = pl ? in.get<T>(x) : nullptr;
  if (!pl || !px || !fast::shape_is(x, {B, D})) return py::none();
  const py::ssize_t NL = shared ? 1 : B;
  std::vector<std::int32_t> flags(NL), status(B);
  auto out = fast::empty<T>({B});
  {
    fast::ReleaseIfLarge nogil(B * D * D);
    sampling::tril_check_cpu<T>(pl, NL, D, flags.data());
    if (fast::all_clean(flags))
      sampling::mvn_rows_cpu<T>(px, m, pl, shared, mode, squared, B, B, D, out.mutable_data(), status.data());
  }
  if (!fast::all_clean(flags) || !fast::all_clean(status)) return py::none();
  return std::move(out);
}

// The factor gradient of an mvn backward fast path, shaped as the general path's (_fold_factor):
// (D, D) for a shared factor or a single row, else (B, D, D). The kernels' `shared` flag is
// shared && B != 1 (a factor of one row is not shared, as in the general path's launcher).
template <class T>
static py::array_t<T> factor_grad(bool shared, py::ssize_t B, py::ssize_t D) {
  return shared || B == 1 ? fast::empty<T>({D, D}) : fast::empty<T>({B, D, D});
}

// Their backward passes: grad (B,) of mu's dtype and finite (the general path's check).
// (grad_x, grad_mu, grad_factor), grad_factor shaped as the general path's (_fold_factor): (D, D)
// for a shared factor or a single row, else (B, D, D).
template <class T>
static py::object mvn_rows_backward_fast_t(const py::array& x, const py::array& mu, const py::array& L, int mode,
                                           bool squared, const py::array& grad) {
  fast::Inputs in;
  py::ssize_t B, D;
  bool shared;
  const T* m = batch_view<T>(in, mu, B, D);
  const T* pl = m ? tril_view<T>(in, L, B, D, shared) : nullptr;
  const T* px = pl && fast::shape_is(x, {B, D}) ? in.get<T>(x) : nullptr;
  const T* g = px ? row_grad_view<T>(in, grad, B) : nullptr;
  if (!g) return py::none();
  const py::ssize_t NL = shared ? 1 : B;
  std::vector<std::int32_t> flags(NL), status(B);
  auto dx = fast::empty<T>({B, D});
  auto dm = fast::empty<T>({B, D});
  auto dL = factor_grad<T>(shared, B, D);
  {
    fast::ReleaseIfLarge nogil(B * D * D);
    sampling::tril_check_cpu<T>(pl, NL, D, flags.data());
    if (fast::all_clean(flags))
      sampling::mvn_rows_backward_cpu<T>(px, m, pl, shared && B != 1, mode, squared, B, B, D, g, dx.mutable_data(),
                                         dm.mutable_data(), dL.mutable_data(), status.data());
  }
  if (!fast::all_clean(flags) || !fast::all_clean(status)) return py::none();
  return py::make_tuple(dx, dm, dL);
}

// kl_mvn_backward against N(0, I): mu (B, D), the factor per row or shared (checked first, as the
// general path does), grad_kl (B,) of mu's dtype and finite. (grad_mu, grad_scale_tril, None,
// None), grad_scale_tril shaped as the general path's (_fold_factor).
template <class T>
static py::object kl_mvn_backward_fast_t(const py::array& mu, const py::array& L, const py::array& grad) {
  fast::Inputs in;
  py::ssize_t B, D;
  bool shared;
  const T* m = batch_view<T>(in, mu, B, D);
  const T* pl = m ? tril_view<T>(in, L, B, D, shared) : nullptr;
  const T* g = pl ? row_grad_view<T>(in, grad, B) : nullptr;
  if (!g) return py::none();
  const py::ssize_t NL = shared ? 1 : B;
  std::vector<std::int32_t> flags(NL);
  auto dm = fast::empty<T>({B, D});
  auto dL = factor_grad<T>(shared, B, D);
  {
    fast::ReleaseIfLarge nogil(B * D * D);
    sampling::tril_check_cpu<T>(pl, NL, D, flags.data());
    if (fast::all_clean(flags))
      sampling::kl_mvn_backward_cpu<T>(m, pl, shared && B != 1, nullptr, nullptr, false, B, D, g, dm.mutable_data(),
                                       dL.mutable_data(), nullptr, nullptr);
  }
  if (!fast::all_clean(flags)) return py::none();
  return py::make_tuple(dm, dL, py::none(), py::none());
}

// gumbel_softmax: logits of rank >= 1 (checked before the draw, as the general path does) with
// K >= 1 categories. ((y, y_soft, index), key); y is y_soft unless hard.
template <class T>
static py::tuple gumbel_softmax_fast_t(const py::array& logits, double tau, const py::handle& seed,
                                       const py::object& resolve, uint64_t stream, uint64_t offset, bool hard) {
  fast::Inputs in;
  if (logits.ndim() < 1) return no_result();
  const T* l = in.get<T>(logits);
  if (!l) return no_result();
  const auto key = fast::draw_key(resolve, seed);
  const py::ssize_t nd = logits.ndim(), K = logits.shape(nd - 1);
  if (K < 1) return no_result(key);
  const py::ssize_t R = logits.size() / K;
  std::vector<py::ssize_t> shape(logits.shape(), logits.shape() + nd), lead(shape.begin(), shape.end() - 1);
  auto y_soft = fast::empty<T>(shape);
  py::array_t<T> y = hard ? fast::empty<T>(shape) : y_soft;
  auto index = fast::empty<std::int64_t>(lead);
  std::vector<std::int32_t> status(R);
  {
    fast::ReleaseIfLarge nogil(R * K);
    sampling::gumbel_softmax_cpu<T>(l, R, K, T(tau), key, stream, offset, y_soft.mutable_data(),
                                    hard ? y.mutable_data() : nullptr, index.mutable_data(), status.data());
  }
  if (!fast::all_clean(status)) return no_result(key);
  return py::make_tuple(py::make_tuple(y, y_soft, index), key);
}

// gumbel_softmax_backward from the forward's y_soft (the torch op's backward): y_soft of rank
// >= 1 with K >= 1 categories, grad_y of its dtype and shape, both finite. The gradient.
template <class T>
static py::object gumbel_softmax_backward_fast_t(const py::array& y_soft, double tau, const py::array& grad_y) {
  fast::Inputs in;
  const T* ys = in.get<T>(y_soft);
  const T* g = ys ? in.get<T>(grad_y) : nullptr;
  const py::ssize_t nd = y_soft.ndim();
  if (!ys || !g || nd < 1 || y_soft.shape(nd - 1) < 1 ||
      !fast::shape_is(grad_y, std::vector<py::ssize_t>(y_soft.shape(), y_soft.shape() + nd)) ||
      !fast::all_finite(ys, y_soft.size()) || !fast::all_finite(g, grad_y.size()))
    return py::none();
  const py::ssize_t K = y_soft.shape(nd - 1), R = y_soft.size() / K;
  auto out = fast::empty<T>(std::vector<py::ssize_t>(y_soft.shape(), y_soft.shape() + nd));
  std::vector<std::int32_t> status(R);
  {
    fast::ReleaseIfLarge nogil(R * K);
    sampling::gumbel_softmax_backward_cpu<T>(nullptr, ys, R, K, T(tau), 0, 0, 0, g, out.mutable_data(), status.data());
  }
  if (!fast::all_clean(status)) return py::none();
  return std::move(out);
}

// random.uniform / normal / gumbel: shape an exact int or a tuple of at most kFillFastDims exact
// ints >= 0 with at most kFillFastMax entries in all (the general path's shape rules), drawn by
// the general path's kernel (rows: the leading extent) into a new array. None before the key is
// drawn, when the general path must run (it then draws the key, as a call that only took that
// path).
constexpr py::ssize_t kFillFastMax = 1 << 20;
constexpr int kFillFastDims = 32;

// The extents of an exact int or a tuple of exact ints in [0, kFillFastMax]; false otherwise.
static bool fill_shape(PyObject* shape, py::ssize_t* dims, int& nd) {
  if (PyLong_CheckExact(shape)) {
    nd = 1;
    return fast::integer(shape, 0, kFillFastMax, dims[0]);
  }
  if (!PyTuple_CheckExact(shape) || PyTuple_GET_SIZE(shape) > kFillFastDims) return false;
  nd = static_cast<int>(PyTuple_GET_SIZE(shape));
  for (int i = 0; i < nd; ++i)
    if (!fast::integer(PyTuple_GET_ITEM(shape, i), 0, kFillFastMax, dims[i])) return false;
  return fast::product_at_most(dims, dims + nd, kFillFastMax);
}

template <class T>
static py::object fill_fast_t(const py::handle& seed, const py::handle& resolve, uint64_t stream, uint64_t offset,
                              int dist, const py::ssize_t* dims, int nd) {
  const auto key = fast::draw_key(resolve, seed);
  auto out = fast::empty<T>(dims, nd);
  const py::ssize_t total = out.size();
  // the general path's kernel view: rows along the leading extent (one row for rank <= 1)
  const py::ssize_t R = nd <= 1 ? 1 : dims[0], N = R == 0 ? 0 : total / R;
  if (total > 0) {
    fast::ReleaseIfLarge nogil(total);
    sampling::fill_cpu<T>(dist, key, stream, offset, R, N, out.mutable_data());
  }
  return std::move(out);
}

// fill_fast(seed, resolve_seed, stream, offset, dist, shape, float64): a plain METH_FASTCALL
// function, not a pybind11 one. This is the package's smallest call (random.normal(seed, 8)),
// and pybind11's dispatcher (its argument loaders, call record and their vectors) cost as much
// as the draw itself there: with it, random.normal of 8 numbers was slower than NumPy's.
static PyObject* fill_fast(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 7) {
    PyErr_SetString(PyExc_TypeError, "fill_fast: expected 7 arguments");
    return nullptr;
  }
  try {
    const py::handle seed(args[0]), resolve(args[1]);
    uint64_t stream, offset;
    py::ssize_t dims[kFillFastDims];
    int nd = 0;
    py::ssize_t dist;
    if (!fast::integer(args[4], rng::UNIFORM, rng::GUMBEL, dist) ||
        !fast::counter(seed, args[2], args[3], stream, offset) || !fill_shape(args[5], dims, nd))
      Py_RETURN_NONE;
    const int d = static_cast<int>(dist);
    py::object out = args[6] == Py_True ? fill_fast_t<double>(seed, resolve, stream, offset, d, dims, nd)
                                        : fill_fast_t<float>(seed, resolve, stream, offset, d, dims, nd);
    return out.release().ptr();
  } catch (py::error_already_set& e) {
    e.restore();
  } catch (const std::bad_alloc&) {
    PyErr_NoMemory();
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  }
  return nullptr;
}

PYBIND11_MODULE(_cpu_sampling, m) {
  pygenmod::shared_pool::adopt();
  m.doc() = "pygenmod counter-based RNG and reparameterized sampling, compiled CPU kernels (OpenMP)";
  // Named integer codes of the Python <-> C++ contract (checked by tests/test_contracts.py).
  m.attr("SCALE_KINDS") =
      py::dict("logvar"_a = int(sampling::LOGVAR), "log_std"_a = int(sampling::LOG_STD), "std"_a = int(sampling::STD));
  m.attr("ROW_CODES") =
      py::dict("nonfinite"_a = int(sampling::ROW_NONFINITE), "bad_tril"_a = int(sampling::ROW_BAD_TRIL));
  m.attr("DISTS") =
      py::dict("uniform"_a = int(rng::UNIFORM), "normal"_a = int(rng::NORMAL), "gumbel"_a = int(rng::GUMBEL));
  m.def(
      "fill",
      [](std::uint64_t seed, std::uint64_t stream, std::uint64_t offset, int dist, py::array out) {
        a::fill<HostArrays>(seed, stream, offset, dist, out,
                            nogil([](auto tag, auto... x) { sampling::fill_cpu<decltype(tag)>(x...); }));
      },
      "seed"_a, "stream"_a, "offset"_a, "dist"_a, "out"_a);
  m.def(
      "bits",
      [](std::uint64_t seed, std::uint64_t stream, std::uint64_t offset, py::array out) {
        a::bits<HostArrays>(seed, stream, offset, out, PGM_CPU(bits));
      },
      "seed"_a, "stream"_a, "offset"_a, "out"_a);
  m.def(
      "philox",
      [](py::array ctr, py::array key, py::array out) { a::philox<HostArrays>(ctr, key, out, PGM_CPU(philox)); },
      "counter"_a, "key"_a, "out"_a);
  m.def(
      "normal_head",
      [](py::array mu, py::array p, py::array eps_in, int kind, double lo, double hi, std::uint64_t seed,
         std::uint64_t stream, std::uint64_t offset, py::array z, py::array eps_out, py::array kl, py::array logq,
         py::array status) {
        a::normal_head<HostArrays>(mu, p, eps_in, kind, lo, hi, seed, stream, offset, z, eps_out, kl, logq, status,
                                   PGM_CPU(normal_head));
      },
      "mu"_a, "scale"_a, "eps"_a, "kind"_a, "lo"_a, "hi"_a, "seed"_a, "stream"_a, "offset"_a, "z"_a, "eps_out"_a,
      "kl"_a, "logq"_a, "status"_a);
  m.def(
      "normal_head_backward",
      [](py::array mu, py::array p, py::array eps_in, int kind, double lo, double hi, std::uint64_t seed,
         std::uint64_t stream, std::uint64_t offset, py::ssize_t S, py::array gz, py::array gkl, py::array glogq,
         py::array dmu, py::array dp) {
        a::normal_head_backward<HostArrays>(mu, p, eps_in, kind, lo, hi, seed, stream, offset, S, gz, gkl, glogq, dmu,
                                            dp, PGM_CPU(normal_head_backward));
      },
      "mu"_a, "scale"_a, "eps"_a, "kind"_a, "lo"_a, "hi"_a, "seed"_a, "stream"_a, "offset"_a, "n_samples"_a, "grad_z"_a,
      "grad_kl"_a, "grad_logq"_a, "dmu"_a, "dscale"_a);
  m.def(
      "kl_normal",
      [](py::array mu, py::array p, py::array pm, py::array pp, int kind, double lo, double hi, py::array kl,
         py::array status) { a::kl_normal<HostArrays>(mu, p, pm, pp, kind, lo, hi, kl, status, PGM_CPU(kl_normal)); },
      "mu"_a, "scale"_a, "prior_mu"_a, "prior_scale"_a, "kind"_a, "lo"_a, "hi"_a, "kl"_a, "status"_a);
  m.def(
      "kl_normal_backward",
      [](py::array mu, py::array p, py::array pm, py::array pp, int kind, double lo, double hi, py::array g,
         py::array dmu, py::array dp, py::array dpm, py::array dpp) {
        a::kl_normal_backward<HostArrays>(mu, p, pm, pp, kind, lo, hi, g, dmu, dp, dpm, dpp,
                                          PGM_CPU(kl_normal_backward));
      },
      "mu"_a, "scale"_a, "prior_mu"_a, "prior_scale"_a, "kind"_a, "lo"_a, "hi"_a, "grad"_a, "dmu"_a, "dscale"_a,
      "dprior_mu"_a, "dprior_scale"_a);
  m.def(
      "normal_log_prob",
      [](py::array x, py::array mu, py::array p, int kind, double lo, double hi, py::array out, py::array status) {
        a::normal_log_prob<HostArrays>(x, mu, p, kind, lo, hi, out, status, PGM_CPU(normal_log_prob));
      },
      "x"_a, "mu"_a, "scale"_a, "kind"_a, "lo"_a, "hi"_a, "out"_a, "status"_a);
  m.def(
      "normal_log_prob_backward",
      [](py::array x, py::array mu, py::array p, int kind, double lo, double hi, py::array g, py::array dx,
         py::array dmu, py::array dp) {
        a::normal_log_prob_backward<HostArrays>(x, mu, p, kind, lo, hi, g, dx, dmu, dp,
                                                PGM_CPU(normal_log_prob_backward));
      },
      "x"_a, "mu"_a, "scale"_a, "kind"_a, "lo"_a, "hi"_a, "grad"_a, "dx"_a, "dmu"_a, "dscale"_a);
  m.def(
      "mvn_head",
      [](py::array mu, py::array L, py::array eps_in, bool check_upper, std::uint64_t seed, std::uint64_t stream,
         std::uint64_t offset, py::array z, py::array eps_out, py::array kl, py::array logq, py::array status) {
        a::mvn_head<HostArrays>(mu, L, eps_in, check_upper, seed, stream, offset, z, eps_out, kl, logq, status,
                                PGM_CPU(mvn_head));
      },
      "mu"_a, "scale_tril"_a, "eps"_a, "check_upper"_a, "seed"_a, "stream"_a, "offset"_a, "z"_a, "eps_out"_a, "kl"_a,
      "logq"_a, "status"_a);
  m.def(
      "mvn_head_backward",
      [](py::array mu, py::array L, py::array eps_in, std::uint64_t seed, std::uint64_t stream, std::uint64_t offset,
         py::ssize_t S, py::array gz, py::array gkl, py::array glogq, py::array dmu, py::array dL) {
        a::mvn_head_backward<HostArrays>(mu, L, eps_in, seed, stream, offset, S, gz, gkl, glogq, dmu, dL,
                                         PGM_CPU(mvn_head_backward));
      },
      "mu"_a, "scale_tril"_a, "eps"_a, "seed"_a, "stream"_a, "offset"_a, "n_samples"_a, "grad_z"_a, "grad_kl"_a,
      "grad_logq"_a, "dmu"_a, "dscale_tril"_a);
  m.def(
      "tri_solve",
      [](py::array L, py::array R, bool trans, py::array X) {
        a::tri_solve<HostArrays>(L, R, trans, X, PGM_CPU(tri_solve));
      },
      "L"_a, "rhs"_a, "trans"_a, "out"_a);
  m.attr("TRIL_FLAGS") = py::dict("nonfinite"_a = int(sampling::TRIL_NONFINITE), "upper"_a = int(sampling::TRIL_UPPER),
                                  "diag"_a = int(sampling::TRIL_DIAG));
  m.attr("MVN_MODES") =
      py::dict("scale_tril"_a = int(sampling::MVN_SCALE), "precision_tril"_a = int(sampling::MVN_PRECISION),
               "log_prob"_a = int(sampling::MVN_LOG_PROB));
  m.attr("ROW_STATUS") = py::dict("x"_a = int(sampling::BAD_X), "mu"_a = int(sampling::BAD_MU));
  m.attr("MVN_HEAD_OUT") = py::dict("kl"_a = int(MVN_KL), "z"_a = int(MVN_Z), "z, kl"_a = int(MVN_Z_KL));
  m.attr("GUMBEL_STATUS") =
      py::dict("bad_logit"_a = int(sampling::GUMBEL_BAD_LOGIT), "all_masked"_a = int(sampling::GUMBEL_ALL_MASKED));
  m.def(
      "tril_check", [](py::array L, py::array flags) { a::tril_check<HostArrays>(L, flags, PGM_CPU(tril_check)); },
      "L"_a, "flags"_a);
  m.def(
      "mvn_rows",
      [](py::array x, py::array mu, py::array L, int mode, bool squared, py::array out, py::array status) {
        a::mvn_rows<HostArrays>(x, mu, L, mode, squared, out, status, PGM_CPU(mvn_rows));
      },
      "x"_a, "mu"_a, "L"_a, "mode"_a, "squared"_a, "out"_a, "status"_a);
  m.def(
      "mvn_rows_backward",
      [](py::array x, py::array mu, py::array L, int mode, bool squared, py::array g, py::array dx, py::array dmu,
         py::array dL, py::array status) {
        a::mvn_rows_backward<HostArrays>(x, mu, L, mode, squared, g, dx, dmu, dL, status, PGM_CPU(mvn_rows_backward));
      },
      "x"_a, "mu"_a, "L"_a, "mode"_a, "squared"_a, "grad"_a, "dx"_a, "dmu"_a, "dL"_a, "status"_a);
  m.def(
      "kl_mvn",
      [](py::array mu, py::array L, py::array pm, py::array pL, py::array kl, py::array status) {
        a::kl_mvn<HostArrays>(mu, L, pm, pL, kl, status, PGM_CPU(kl_mvn));
      },
      "mu"_a, "scale_tril"_a, "prior_mu"_a, "prior_scale_tril"_a, "kl"_a, "status"_a);
  m.def(
      "kl_mvn_backward",
      [](py::array mu, py::array L, py::array pm, py::array pL, py::array g, py::array dmu, py::array dL, py::array dpm,
         py::array dpL) {
        a::kl_mvn_backward<HostArrays>(mu, L, pm, pL, g, dmu, dL, dpm, dpL, PGM_CPU(kl_mvn_backward));
      },
      "mu"_a, "scale_tril"_a, "prior_mu"_a, "prior_scale_tril"_a, "grad"_a, "dmu"_a, "dscale_tril"_a, "dprior_mu"_a,
      "dprior_scale_tril"_a);
  m.def(
      "gumbel_softmax",
      [](py::array logits, double tau, std::uint64_t seed, std::uint64_t stream, std::uint64_t offset, py::array y_soft,
         py::array y_hard, py::array index, py::array status) {
        a::gumbel_softmax<HostArrays>(logits, tau, seed, stream, offset, y_soft, y_hard, index, status,
                                      PGM_CPU(gumbel_softmax));
      },
      "logits"_a, "temperature"_a, "seed"_a, "stream"_a, "offset"_a, "y_soft"_a, "y"_a, "index"_a, "status"_a);
  m.def(
      "gumbel_softmax_backward",
      [](py::array logits, py::array y_soft, double tau, std::uint64_t seed, std::uint64_t stream, std::uint64_t offset,
         py::array g, py::array out, py::array status) {
        a::gumbel_softmax_backward<HostArrays>(logits, y_soft, tau, seed, stream, offset, g, out, status,
                                               PGM_CPU(gumbel_softmax_backward));
      },
      "logits"_a, "y_soft"_a, "temperature"_a, "seed"_a, "stream"_a, "offset"_a, "grad_y"_a, "out"_a, "status"_a);
  // one-call fast path (issue 11): None when the general path must run
  // one-call fast paths (issue 11): None / (None, key) where the general path must run
  m.def("normal_head_fast", [](py::array mu, py::array logvar, py::handle seed, py::object resolve, py::handle stream_,
                               py::handle offset_, bool head) {
    uint64_t stream, offset;
    if (!fast::counter(seed, stream_, offset_, stream, offset)) return py::object(no_result());
    return seeded_by_dtype(mu, [&](auto t) -> py::object {
      return normal_head_fast_t<decltype(t)>(mu, logvar, seed, resolve, stream, offset, head);
    });
  });
  m.def("kl_normal_fast", [](py::array mu, py::array logvar) {
    return fast::by_float_dtype(mu, [&](auto t) { return kl_normal_fast_t<decltype(t)>(mu, logvar); });
  });
  m.def("normal_log_prob_fast", [](py::array x, py::array mu, py::array logvar) {
    return fast::by_float_dtype(mu, [&](auto t) { return normal_log_prob_fast_t<decltype(t)>(x, mu, logvar); });
  });
  m.def("normal_head_backward_fast",
        [](py::array mu, py::array logvar, py::object eps, py::handle seed, py::object resolve, py::handle stream_,
           py::handle offset_, py::object grad_z, py::object grad_kl, py::object grad_log_q) {
          uint64_t stream, offset;
          if (!fast::counter(seed, stream_, offset_, stream, offset)) return py::object(no_result());
          return seeded_by_dtype(mu, [&](auto t) -> py::object {
            return normal_head_backward_fast_t<decltype(t)>(mu, logvar, eps, seed, resolve, stream, offset, grad_z,
                                                            grad_kl, grad_log_q);
          });
        });
  m.def("mvn_head_backward_fast",
        [](py::array mu, py::array L, py::object eps, py::handle seed, py::object resolve, py::handle stream_,
           py::handle offset_, py::object grad_z, py::object grad_kl, py::object grad_log_q) {
          uint64_t stream, offset;
          if (!fast::counter(seed, stream_, offset_, stream, offset)) return py::object(no_result());
          return seeded_by_dtype(mu, [&](auto t) -> py::object {
            return mvn_head_backward_fast_t<decltype(t)>(mu, L, eps, seed, resolve, stream, offset, grad_z, grad_kl,
                                                         grad_log_q);
          });
        });
  m.def("kl_normal_backward_fast", [](py::array mu, py::array logvar, py::array grad) {
    return fast::by_float_dtype(mu, [&](auto t) { return kl_normal_backward_fast_t<decltype(t)>(mu, logvar, grad); });
  });
  m.def("normal_log_prob_backward_fast", [](py::array x, py::array mu, py::array logvar, py::array grad) {
    return fast::by_float_dtype(
        mu, [&](auto t) { return normal_log_prob_backward_fast_t<decltype(t)>(x, mu, logvar, grad); });
  });
  m.def("mvn_head_fast", [](py::array mu, py::array L, py::handle seed, py::object resolve, py::handle stream_,
                            py::handle offset_, int what) {
    uint64_t stream, offset;
    if (what < MVN_KL || what > MVN_Z_KL || !fast::counter(seed, stream_, offset_, stream, offset))
      return py::object(no_result());
    return seeded_by_dtype(mu, [&](auto t) -> py::object {
      return mvn_head_fast_t<decltype(t)>(mu, L, seed, resolve, stream, offset, what);
    });
  });
  m.def("mvn_rows_fast", [](py::array x, py::array mu, py::array L, int mode, bool squared) {
    if (mode < sampling::MVN_SCALE || mode > sampling::MVN_LOG_PROB) return py::object(py::none());
    return fast::by_float_dtype(mu, [&](auto t) { return mvn_rows_fast_t<decltype(t)>(x, mu, L, mode, squared); });
  });
  m.def("mvn_rows_backward_fast", [](py::array x, py::array mu, py::array L, int mode, bool squared, py::array grad) {
    if (mode < sampling::MVN_SCALE || mode > sampling::MVN_LOG_PROB) return py::object(py::none());
    return fast::by_float_dtype(
        mu, [&](auto t) { return mvn_rows_backward_fast_t<decltype(t)>(x, mu, L, mode, squared, grad); });
  });
  m.def("kl_mvn_backward_fast", [](py::array mu, py::array L, py::array grad) {
    return fast::by_float_dtype(mu, [&](auto t) { return kl_mvn_backward_fast_t<decltype(t)>(mu, L, grad); });
  });
  m.def("gumbel_softmax_fast", [](py::array logits, double tau, py::handle seed, py::object resolve, py::handle stream_,
                                  py::handle offset_, bool hard) {
    uint64_t stream, offset;
    if (!fast::counter(seed, stream_, offset_, stream, offset)) return py::object(no_result());
    return seeded_by_dtype(logits, [&](auto t) -> py::object {
      return gumbel_softmax_fast_t<decltype(t)>(logits, tau, seed, resolve, stream, offset, hard);
    });
  });
  m.def("gumbel_softmax_backward_fast", [](py::array y_soft, double tau, py::array grad_y) {
    return fast::by_float_dtype(
        y_soft, [&](auto t) { return gumbel_softmax_backward_fast_t<decltype(t)>(y_soft, tau, grad_y); });
  });
  static PyMethodDef fill_fast_def{"fill_fast", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&fill_fast)),
                                   METH_FASTCALL, "random.uniform / normal / gumbel's one-call path (pygenmod._fast)"};
  m.add_object("fill_fast",
               py::reinterpret_steal<py::object>(PyCFunction_NewEx(&fill_fast_def, nullptr, m.attr("__name__").ptr())));
}
