// _cpu_categorical: bindings of the categorical log-prob / entropy / KL kernels and their
// backward passes, and the one-call rows of the Bernoulli-logit and least-squares losses
// (adversarial) and of RIG's Euclidean reward (goals). Arrays in, GIL released, no math here;
// the argument unpacking is args/categorical.hpp (shared with _cuda_categorical).
#include "args/categorical.hpp"
#include "bind_common.hpp"
#include "fast_path.hpp"
#include "pygenmod/categorical.hpp"
#include "pygenmod/loss_rows.hpp"

#include <memory>

namespace py = pybind11;
using namespace pybind11::literals;
using namespace pygenmod;
using namespace pygenmod::bind;
namespace ca = pygenmod::bind::args::categorical;

// ----------------------------------------------------------------------------- one-call fast paths
// (issue 11; fast_path.hpp) Logits (..., K), K >= 1, as a float32/float64 ndarray (strided: copied),
// a mask None or a bool ndarray of the logits' shape or (K,): the general path's kernel, so the
// same bits. None wherever the general Python path must run: any other input (integer masks
// too), or a row status that is not clean (that path raises the error).

// The logits' rows: (B, K) with B the product of the leading extents, and the result's shape.
template <class T>
static const T* rows_view(fast::Inputs& in, const py::array& x, py::ssize_t& B, py::ssize_t& K,
                          std::vector<py::ssize_t>& lead) {
  if (x.ndim() < 1 || x.shape(x.ndim() - 1) < 1) return nullptr;
  const T* p = in.get<T>(x);
  if (!p) return nullptr;
  K = x.shape(x.ndim() - 1);
  lead.assign(x.shape(), x.shape() + x.ndim() - 1);
  B = x.size() / K;
  return p;
}

static std::vector<py::ssize_t> shape_of(const py::array& x) { return {x.shape(), x.shape() + x.ndim()}; }

// The mask: None (m null), or a bool ndarray (strided: copied) of the logits' shape (one row per
// logit row) or (K,) (shared: mask_rows 1). False for any other mask.
struct MaskRows {
  const std::uint8_t* m = nullptr;
  py::ssize_t rows = 0;
};
static bool mask_view(fast::Inputs& in, const py::handle& mask, const py::array& x, MaskRows& out) {
  if (mask.is_none()) return true;
  if (!py::isinstance<py::array_t<bool>>(mask)) return false;
  const auto a = py::reinterpret_borrow<py::array>(mask);
  const py::ssize_t K = x.shape(x.ndim() - 1);
  const bool shared = a.ndim() == 1 && a.shape(0) == K;
  if (!shared && !fast::shape_is(a, shape_of(x))) return false;
  const bool* p = in.get<bool>(a);
  if (!p) return false;
  out.m = reinterpret_cast<const std::uint8_t*>(p);  // NumPy bools are bytes; the kernels read nonzero as allowed
  out.rows = shared ? 1 : x.size() / K;
  return true;
}

template <class T, class Launch>
static py::object per_row_result(py::ssize_t B, py::ssize_t K, const std::vector<py::ssize_t>& lead, Launch&& launch) {
  py::array_t<T> out(lead);
  std::vector<std::int32_t> status(B);
  {
    fast::ReleaseIfLarge nogil(B * K);
    launch(out.mutable_data(), status.data());
  }
  if (!fast::all_clean(status)) return py::none();
  return std::move(out);
}

// log_prob: actions an int64 ndarray of the logits' leading shape.
template <class T>
static py::object log_prob_fast_t(const py::array& x, const py::array& actions, const py::handle& mask) {
  fast::Inputs in;
  py::ssize_t B, K;
  std::vector<py::ssize_t> lead;
  MaskRows mk;
  const T* p = rows_view<T>(in, x, B, K, lead);
  const std::int64_t* a = p && fast::shape_is(actions, lead) ? in.get<std::int64_t>(actions) : nullptr;
  if (!a || !mask_view(in, mask, x, mk)) return py::none();
  return per_row_result<T>(
      B, K, lead, [&](T* out, std::int32_t* st) { categorical::log_prob_cpu<T>(p, mk.m, mk.rows, a, B, K, out, st); });
}

template <class T>
static py::object entropy_fast_t(const py::array& x, const py::handle& mask) {
  fast::Inputs in;
  py::ssize_t B, K;
  std::vector<py::ssize_t> lead;
  MaskRows mk;
  const T* p = rows_view<T>(in, x, B, K, lead);
  if (!p || !mask_view(in, mask, x, mk)) return py::none();
  return per_row_result<T>(
      B, K, lead, [&](T* out, std::int32_t* st) { categorical::entropy_cpu<T>(p, mk.m, mk.rows, B, K, out, st); });
}

// kl: p_logits of q_logits' shape and dtype; one mask for p and q (no q_mask).
template <class T>
static py::object kl_fast_t(const py::array& p_logits, const py::array& q_logits, const py::handle& mask) {
  fast::Inputs in;
  py::ssize_t B, K;
  std::vector<py::ssize_t> lead;
  MaskRows mk;
  const T* q = rows_view<T>(in, q_logits, B, K, lead);
  const T* p = q && fast::shape_is(p_logits, shape_of(q_logits)) ? in.get<T>(p_logits) : nullptr;
  if (!p || !mask_view(in, mask, q_logits, mk)) return py::none();
  return per_row_result<T>(B, K, lead, [&](T* out, std::int32_t* st) {
    categorical::kl_cpu<T>(p, q, mk.m, mk.rows, mk.m, mk.rows, false, B, K, out, st);
  });
}

// The backward passes: the upstream gradient an ndarray of the logits' dtype and leading shape
// (NaN included: it goes into the gradient as on the general path), the gradient(s) new arrays
// of the logits' shape.
template <class T>
static const T* grad_view(fast::Inputs& in, const py::array& grad, const std::vector<py::ssize_t>& lead) {
  return fast::shape_is(grad, lead) ? in.get<T>(grad) : nullptr;
}

template <class T>
static py::object log_prob_backward_fast_t(const py::array& x, const py::array& actions, const py::array& grad,
                                           const py::handle& mask) {
  fast::Inputs in;
  py::ssize_t B, K;
  std::vector<py::ssize_t> lead;
  MaskRows mk;
  const T* p = rows_view<T>(in, x, B, K, lead);
  const std::int64_t* a = p && fast::shape_is(actions, lead) ? in.get<std::int64_t>(actions) : nullptr;
  const T* g = a ? grad_view<T>(in, grad, lead) : nullptr;
  if (!g || !mask_view(in, mask, x, mk)) return py::none();
  auto dx = fast::empty<T>(shape_of(x));
  fast::ReleaseIfLarge nogil(B * K);
  categorical::log_prob_backward_cpu<T>(p, mk.m, mk.rows, a, B, K, g, dx.mutable_data());
  return std::move(dx);
}

template <class T>
static py::object entropy_backward_fast_t(const py::array& x, const py::array& grad, const py::handle& mask) {
  fast::Inputs in;
  py::ssize_t B, K;
  std::vector<py::ssize_t> lead;
  MaskRows mk;
  const T* p = rows_view<T>(in, x, B, K, lead);
  const T* g = p ? grad_view<T>(in, grad, lead) : nullptr;
  if (!g || !mask_view(in, mask, x, mk)) return py::none();
  auto dx = fast::empty<T>(shape_of(x));
  fast::ReleaseIfLarge nogil(B * K);
  categorical::entropy_backward_cpu<T>(p, mk.m, mk.rows, B, K, g, dx.mutable_data());
  return std::move(dx);
}

// kl_backward: p_logits of q_logits' shape and dtype, one mask for p and q. (grad_p, grad_q).
template <class T>
static py::object kl_backward_fast_t(const py::array& p_logits, const py::array& q_logits, const py::array& grad,
                                     const py::handle& mask) {
  fast::Inputs in;
  py::ssize_t B, K;
  std::vector<py::ssize_t> lead;
  MaskRows mk;
  const T* q = rows_view<T>(in, q_logits, B, K, lead);
  const T* p = q && fast::shape_is(p_logits, shape_of(q_logits)) ? in.get<T>(p_logits) : nullptr;
  const T* g = p ? grad_view<T>(in, grad, lead) : nullptr;
  if (!g || !mask_view(in, mask, q_logits, mk)) return py::none();
  auto dp = fast::empty<T>(shape_of(q_logits));
  auto dq = fast::empty<T>(shape_of(q_logits));
  {
    fast::ReleaseIfLarge nogil(B * K);
    categorical::kl_backward_cpu<T>(p, q, mk.m, mk.rows, mk.m, mk.rows, false, B, K, g, dp.mutable_data(),
                                    dq.mutable_data());
  }
  return py::make_tuple(dp, dq);
}

// policy_target_kl and its backward pass: weights (the improved policy) of the logits' shape and
// dtype, normalised as NumPy does on the general path (normalise_weights_cpu; chunk: its row
// sums' slices), then the KL rows with p given as probabilities and the mask q's. grad None:
// the forward (KL per row), else its VJP w.r.t. the logits.
template <class T>
static py::object policy_target_kl_fast_t(const py::array& weights, const py::array& logits, const py::handle& mask,
                                          py::ssize_t chunk, const py::object& grad) {
  fast::Inputs in;
  py::ssize_t B, K;
  std::vector<py::ssize_t> lead;
  MaskRows mk;
  const T* q = rows_view<T>(in, logits, B, K, lead);
  const T* w = q && chunk >= 0 && fast::shape_is(weights, shape_of(logits)) ? in.get<T>(weights) : nullptr;
  const bool backward = !grad.is_none();
  if (!w || (backward && !py::isinstance<py::array>(grad)) || !mask_view(in, mask, logits, mk)) return py::none();
  const T* g = backward ? grad_view<T>(in, py::reinterpret_borrow<py::array>(grad), lead) : nullptr;
  if (backward && !g) return py::none();
  std::unique_ptr<T[]> pbuf(new T[static_cast<std::size_t>(B * K)]);  // (not zeroed: every entry is written)
  T* const pw = pbuf.get();
  bool normalised;
  {
    fast::ReleaseIfLarge nogil(B * K);
    normalised = categorical::normalise_weights_cpu<T>(w, B, K, chunk, pw);
  }
  if (!normalised) return py::none();
  if (!backward)
    return per_row_result<T>(B, K, lead, [&](T* out, std::int32_t* st) {
      categorical::kl_cpu<T>(pw, q, nullptr, 0, mk.m, mk.rows, true, B, K, out, st);
    });
  auto dq = fast::empty<T>(shape_of(logits));
  {
    fast::ReleaseIfLarge nogil(B * K);
    categorical::kl_backward_cpu<T>(pw, q, nullptr, 0, mk.m, mk.rows, true, B, K, g, nullptr, dq.mutable_data());
  }
  return std::move(dq);
}

// sign * logaddexp(0, sign * x) elementwise (sign -1: log sigmoid, +1: softplus) of finite x of
// any shape: adversarial.gail_reward's NumPy expression, bit for bit.
template <class T>
static py::object softplus_fast_t(const py::array& x, int sign) {
  const T* p = fast::view<T>(x);
  if (!p || (sign != 1 && sign != -1) || !fast::all_finite(p, x.size())) return py::none();
  auto out = fast::empty<T>(shape_of(x));
  {
    fast::ReleaseIfLarge nogil(x.size());
    categorical::softplus_cpu<T>(p, x.size(), T(sign), out.mutable_data());
  }
  return std::move(out);
}

// The frame of the loss rows' fast paths: x (..., N) a finite C-contiguous float array (N >= 1
// for a mean), reduce 0 / 1 / 2 ("none" / "sum" / "mean"), chunk >= 0 and the caller's own
// argument checks (args_ok); run(p, B, N, per_entry, terms) fills per_entry (..., N) and terms
// ((..., N) for "none", else (...)). (terms, per_entry), or None.
template <class T, class Run>
static py::object loss_rows_result(const py::array& x, int reduce, py::ssize_t chunk, bool args_ok, Run&& run) {
  const T* p = fast::view<T>(x);
  if (!p || !args_ok || chunk < 0 || x.ndim() < 1 || reduce < loss_rows::NONE || reduce > loss_rows::MEAN)
    return py::none();
  const py::ssize_t N = x.shape(x.ndim() - 1);
  if ((N == 0 && reduce == loss_rows::MEAN) || !fast::all_finite(p, x.size())) return py::none();
  const std::vector<py::ssize_t> shape(x.shape(), x.shape() + x.ndim()), lead(shape.begin(), shape.end() - 1);
  py::ssize_t B = 1;
  for (auto d : lead) B *= d;
  auto per_entry = fast::empty<T>(shape);
  auto terms = fast::empty<T>(reduce == loss_rows::NONE ? shape : lead);
  {
    fast::ReleaseIfLarge nogil(x.size());
    run(p, B, N, per_entry.mutable_data(), terms.mutable_data());
  }
  return py::make_tuple(terms, per_entry);
}

// adversarial's logistic losses: (terms, t) of loss_rows::softplus_rows, s and out_sign +-1.
template <class T>
static py::object softplus_rows_fast_t(const py::array& x, int s, int reduce, py::ssize_t chunk, int out_sign) {
  const bool ok = (s == 1 || s == -1) && (out_sign == 1 || out_sign == -1);
  return loss_rows_result<T>(x, reduce, chunk, ok, [&](const T* p, py::ssize_t B, py::ssize_t N, T* t, T* terms) {
    loss_rows::softplus_rows<T>(p, B, N, T(s), loss_rows::Reduce(reduce), chunk, T(out_sign), t, terms);
  });
}

// adversarial's least-squares losses: (terms, grad) of loss_rows::square_rows, the target and the
// gradient's scale as Python floats (cast to x's dtype, as NumPy casts them).
template <class T>
static py::object square_rows_fast_t(const py::array& x, double target, int reduce, py::ssize_t chunk, double g_scale) {
  const bool ok = std::isfinite(T(target)) && std::isfinite(T(g_scale));
  return loss_rows_result<T>(x, reduce, chunk, ok, [&](const T* p, py::ssize_t B, py::ssize_t N, T* grad, T* terms) {
    loss_rows::square_rows<T>(p, B, N, T(target), loss_rows::Reduce(reduce), chunk, T(g_scale), grad, terms);
  });
}

// categorical.pg_loss: log_probs x, q_values q and the entropy h (None, or an array), all of x's
// shape and dtype and finite; sign +-1, lam finite >= 0 (0 without h) and the gradient's scale
// as Python floats (cast to x's dtype, as NumPy casts them). (terms, grad of the log-probs).
template <class T>
static py::object pg_rows_fast_t(const py::array& x, const py::array& q, const py::object& h, int sign, double lam,
                                 int reduce, py::ssize_t chunk, double g_scale) {
  const auto shape = shape_of(x);
  const T* pq = fast::shape_is(q, shape) ? fast::view<T>(q) : nullptr;
  const T* ph = nullptr;
  if (!h.is_none() && py::isinstance<py::array>(h)) {
    const auto ha = py::reinterpret_borrow<py::array>(h);
    ph = fast::shape_is(ha, shape) ? fast::view<T>(ha) : nullptr;
    if (ph && !fast::all_finite(ph, ha.size())) ph = nullptr;
  }
  const bool ok = pq && fast::all_finite(pq, q.size()) && (h.is_none() || ph) && (sign == 1 || sign == -1) &&
                  std::isfinite(T(lam)) && lam >= 0 && (ph || lam == 0) && std::isfinite(T(g_scale));
  return loss_rows_result<T>(x, reduce, chunk, ok, [&](const T* p, py::ssize_t B, py::ssize_t N, T* grad, T* terms) {
    loss_rows::pg_rows<T>(p, pq, ph, B, N, T(sign), T(lam), loss_rows::Reduce(reduce), chunk, T(g_scale), grad, terms);
  });
}

// goals.rig_reward without a factor: z (..., D) against g whose shape is z's trailing axes
// (one or two of them), both finite, of one dtype, D >= 1, chunk >= 0; the rewards (...).
template <class T>
static py::object neg_distance_fast_t(const py::array& z, const py::array& g, py::ssize_t chunk, bool squared) {
  const T *pz = fast::view<T>(z), *pg = fast::view<T>(g);
  if (!pz || !pg || chunk < 0 || g.ndim() < 1 || g.ndim() > 2 || z.ndim() < g.ndim()) return py::none();
  for (py::ssize_t i = 1; i <= g.ndim(); ++i)
    if (z.shape(z.ndim() - i) != g.shape(g.ndim() - i)) return py::none();
  const py::ssize_t D = g.shape(g.ndim() - 1);
  if (D < 1 || g.size() == 0 || !fast::all_finite(pz, z.size()) || !fast::all_finite(pg, g.size())) return py::none();
  auto out = fast::empty<T>(std::vector<py::ssize_t>(z.shape(), z.shape() + z.ndim() - 1));
  {
    fast::ReleaseIfLarge nogil(z.size());
    loss_rows::neg_distance_rows<T>(pz, pg, z.size() / D, g.size() / D, D, chunk, squared, out.mutable_data());
  }
  return std::move(out);
}

PYBIND11_MODULE(_cpu_categorical, m) {
  pygenmod::shared_pool::adopt();
  m.doc() = "pygenmod categorical distributions (log-prob, entropy, KL), compiled CPU kernels (OpenMP)";
  m.attr("STATUS") =
      py::dict("OK"_a = int(categorical::OK), "P_ALL_MASKED"_a = int(categorical::P_ALL_MASKED),
               "P_NONFINITE"_a = int(categorical::P_NONFINITE), "Q_ALL_MASKED"_a = int(categorical::Q_ALL_MASKED),
               "Q_NONFINITE"_a = int(categorical::Q_NONFINITE), "BAD_ACTION"_a = int(categorical::BAD_ACTION));
  m.def(
      "log_prob",
      [](py::array x, py::object mask, py::array a, py::array res, py::array status) {
        ca::log_prob<HostArrays>(x, mask, a, res, status, nogil([](auto... p) { categorical::log_prob_cpu(p...); }));
      },
      "logits"_a, "mask"_a, "actions"_a, "out"_a, "status"_a);
  m.def(
      "log_prob_backward",
      [](py::array x, py::object mask, py::array a, py::array g, py::array dx) {
        ca::log_prob_backward<HostArrays>(x, mask, a, g, dx,
                                          nogil([](auto... p) { categorical::log_prob_backward_cpu(p...); }));
      },
      "logits"_a, "mask"_a, "actions"_a, "grad"_a, "grad_logits"_a);
  m.def(
      "entropy",
      [](py::array x, py::object mask, py::array res, py::array status) {
        ca::entropy<HostArrays>(x, mask, res, status, nogil([](auto... p) { categorical::entropy_cpu(p...); }));
      },
      "logits"_a, "mask"_a, "out"_a, "status"_a);
  m.def(
      "entropy_backward",
      [](py::array x, py::object mask, py::array g, py::array dx) {
        ca::entropy_backward<HostArrays>(x, mask, g, dx,
                                         nogil([](auto... p) { categorical::entropy_backward_cpu(p...); }));
      },
      "logits"_a, "mask"_a, "grad"_a, "grad_logits"_a);
  m.def(
      "kl",
      [](py::array p, py::array q, py::object p_mask, py::object q_mask, bool p_is_prob, py::array res,
         py::array status) {
        ca::kl<HostArrays>(p, q, p_mask, q_mask, p_is_prob, res, status,
                           nogil([](auto... a) { categorical::kl_cpu(a...); }));
      },
      "p"_a, "q_logits"_a, "p_mask"_a, "q_mask"_a, "p_is_prob"_a, "out"_a, "status"_a);
  m.def(
      "kl_backward",
      [](py::array p, py::array q, py::object p_mask, py::object q_mask, bool p_is_prob, py::array g, py::object dp,
         py::array dq) {
        ca::kl_backward<HostArrays>(p, q, p_mask, q_mask, p_is_prob, g, dp, dq,
                                    nogil([](auto... a) { categorical::kl_backward_cpu(a...); }));
      },
      "p"_a, "q_logits"_a, "p_mask"_a, "q_mask"_a, "p_is_prob"_a, "grad"_a, "grad_p"_a, "grad_q"_a);
  m.def(
      "log_prob_fast",
      [](py::array x, py::array actions, py::object mask) {
        return fast::by_float_dtype(x, [&](auto t) { return log_prob_fast_t<decltype(t)>(x, actions, mask); });
      },
      "logits"_a, "actions"_a, "mask"_a = py::none());
  m.def(
      "entropy_fast",
      [](py::array x, py::object mask) {
        return fast::by_float_dtype(x, [&](auto t) { return entropy_fast_t<decltype(t)>(x, mask); });
      },
      "logits"_a, "mask"_a = py::none());
  m.def("softplus_fast", [](py::array x, int sign) {
    return fast::by_dtype(x, [&](auto t) { return softplus_fast_t<decltype(t)>(x, sign); });
  });
  m.def("softplus_rows_fast", [](py::array x, int s, int reduce, py::ssize_t chunk, int out_sign) {
    return fast::by_dtype(x, [&](auto t) { return softplus_rows_fast_t<decltype(t)>(x, s, reduce, chunk, out_sign); });
  });
  m.def("square_rows_fast", [](py::array x, double target, int reduce, py::ssize_t chunk, double g_scale) {
    return fast::by_dtype(x,
                          [&](auto t) { return square_rows_fast_t<decltype(t)>(x, target, reduce, chunk, g_scale); });
  });
  m.def("neg_distance_fast", [](py::array z, py::array g, py::ssize_t chunk, bool squared) {
    return fast::by_dtype(g, [&](auto t) { return neg_distance_fast_t<decltype(t)>(z, g, chunk, squared); });
  });
  m.def(
      "kl_fast",
      [](py::array p, py::array q, py::object mask) {
        return fast::by_float_dtype(q, [&](auto t) { return kl_fast_t<decltype(t)>(p, q, mask); });
      },
      "p_logits"_a, "q_logits"_a, "mask"_a = py::none());
  m.def(
      "log_prob_backward_fast",
      [](py::array x, py::array actions, py::array grad, py::object mask) {
        return fast::by_float_dtype(
            x, [&](auto t) { return log_prob_backward_fast_t<decltype(t)>(x, actions, grad, mask); });
      },
      "logits"_a, "actions"_a, "grad"_a, "mask"_a = py::none());
  m.def(
      "entropy_backward_fast",
      [](py::array x, py::array grad, py::object mask) {
        return fast::by_float_dtype(x, [&](auto t) { return entropy_backward_fast_t<decltype(t)>(x, grad, mask); });
      },
      "logits"_a, "grad"_a, "mask"_a = py::none());
  m.def(
      "kl_backward_fast",
      [](py::array p, py::array q, py::array grad, py::object mask) {
        return fast::by_float_dtype(q, [&](auto t) { return kl_backward_fast_t<decltype(t)>(p, q, grad, mask); });
      },
      "p_logits"_a, "q_logits"_a, "grad"_a, "mask"_a = py::none());
  m.def("pg_rows_fast", [](py::array x, py::array q, py::object h, int sign, double lam, int reduce, py::ssize_t chunk,
                           double g_scale) {
    return fast::by_float_dtype(
        x, [&](auto t) { return pg_rows_fast_t<decltype(t)>(x, q, h, sign, lam, reduce, chunk, g_scale); });
  });
  m.def(
      "policy_target_kl_fast",
      [](py::array w, py::array logits, py::object mask, py::ssize_t chunk, py::object grad) {
        return fast::by_float_dtype(
            logits, [&](auto t) { return policy_target_kl_fast_t<decltype(t)>(w, logits, mask, chunk, grad); });
      },
      "weights"_a, "logits"_a, "mask"_a, "chunk"_a, "grad"_a = py::none());
}
