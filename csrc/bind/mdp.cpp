// _cpu_mdp: bindings of the Bellman-backup kernels. Arrays in, GIL released, no math here.
#include "bind_common.hpp"
#include "fast_path.hpp"
#include "mdp_models.hpp"
#include "pygenmod/mdp.hpp"
#include "pygenmod/mdp_fast.hpp"

#include <optional>
#include <vector>

namespace py = pybind11;
using namespace pybind11::literals;
using namespace pygenmod;
using namespace pygenmod::bind;
using i64 = std::int64_t;

namespace {

using mdp_host::csr;
using mdp_host::dense;

template <class T, class M>
void backup_impl(const M& m, index_t B, const py::array& R, const py::array& V, const py::array& gamma, int kind,
                 const py::object& pi_det, const py::object& pi_stoch, const py::object& tau, py::array& Q,
                 py::array& V_out, py::array& policy) {
  const index_t S = m.S, A = m.A;
  if (kind < 0 || kind > 3) throw std::invalid_argument("kind: expected 0..3");
  const T* r = in<HostArrays, T>(R, "R", {B, S, A});
  const T* v = in<HostArrays, T>(V, "V", {B, S});
  const T* g = in<HostArrays, T>(gamma, "gamma", {B});
  const i64* pd = in_or_null<HostArrays, i64>(pi_det, "policy", {B, S});
  const T* ps = in_or_null<HostArrays, T>(pi_stoch, "policy", {B, S, A});
  const T* tu = in_or_null<HostArrays, T>(tau, "temperature", {B});
  if (kind == mdp::kPolicy && !pd) throw std::invalid_argument("policy: required for kind 1");
  if (kind == mdp::kStochastic && !ps) throw std::invalid_argument("policy: required for kind 2");
  if (kind == mdp::kSoft && !tu) throw std::invalid_argument("temperature: required for kind 3");
  if (pd) {
    for (index_t i = 0; i < B * S; ++i)
      if (pd[i] < 0 || pd[i] >= A) throw std::invalid_argument("policy: action out of range");
  }
  T* q = out<HostArrays, T>(Q, "Q", {B, S, A});
  T* vo = out<HostArrays, T>(V_out, "V_out", {B, S});
  i64* pi = out<HostArrays, i64>(policy, "policy_out", {B, S});
  py::gil_scoped_release nogil;
  mdp::backup_sweep_cpu(m, r, v, g, B, kind, pd, ps, tu, q, vo, pi);
}

template <class T, class M>
void solve_impl(const M& m, index_t B, const py::array& R, const py::array& gamma, const py::array& thresh,
                i64 max_iter, bool span, i64 eval_max, double eval_rel, double row_tol, double elim_tau, py::array& V,
                py::array& Q, py::array& policy, py::array& iterations, py::array& eval_sweeps, py::array& residual,
                py::array& converged, py::array& check_stats) {
  const index_t S = m.S, A = m.A;
  if (max_iter < 1) throw std::invalid_argument("max_iter: must be >= 1");
  if (eval_max < 0) throw std::invalid_argument("eval_max: must be >= 0");
  const T* r = in<HostArrays, T>(R, "R", {B, S, A});
  const T* g = in<HostArrays, T>(gamma, "gamma", {B});
  const double* th = in<HostArrays, double>(thresh, "thresh", {B});
  T* v = out<HostArrays, T>(V, "V", {B, S});
  T* q = out<HostArrays, T>(Q, "Q", {B, S, A});
  i64* pi = out<HostArrays, i64>(policy, "policy", {B, S});
  i64* it = out<HostArrays, i64>(iterations, "iterations", {B});
  i64* es = out<HostArrays, i64>(eval_sweeps, "eval_sweeps", {B});
  double* res = out<HostArrays, double>(residual, "residual", {B});
  auto* conv = out<HostArrays, std::uint8_t>(converged, "converged", {B});
  double* cs = out<HostArrays, double>(check_stats, "check_stats", {B, mdp::kCheckCols});
  mdp::SolveOptions opt{max_iter, span, eval_max, eval_rel, row_tol, elim_tau};
  Interruptible intr;
  {
    py::gil_scoped_release nogil;
    mdp::solve_cpu(m, r, g, th, B, opt, v, q, pi, it, es, res, conv, cs, intr.stop());
  }
  intr.rethrow();
}

template <class T, class M>
void evaluate_impl(const M& m, index_t B, const py::array& R, const py::array& gamma, const py::array& thresh,
                   i64 max_iter, bool span, const py::object& pi_det, const py::object& pi_stoch, py::array& V,
                   py::array& iterations, py::array& residual, py::array& converged) {
  const index_t S = m.S, A = m.A;
  if (max_iter < 1) throw std::invalid_argument("max_iter: must be >= 1");
  const T* r = in<HostArrays, T>(R, "R", {B, S, A});
  const T* g = in<HostArrays, T>(gamma, "gamma", {B});
  const double* th = in<HostArrays, double>(thresh, "thresh", {B});
  const i64* pd = in_or_null<HostArrays, i64>(pi_det, "policy", {B, S});
  const T* ps = in_or_null<HostArrays, T>(pi_stoch, "policy", {B, S, A});
  if ((pd == nullptr) == (ps == nullptr))
    throw std::invalid_argument("policy: give exactly one of a deterministic or stochastic policy");
  if (pd) {
    for (index_t i = 0; i < B * S; ++i)
      if (pd[i] < 0 || pd[i] >= A) throw std::invalid_argument("policy: action out of range");
  }
  T* v = out<HostArrays, T>(V, "V", {B, S});
  i64* it = out<HostArrays, i64>(iterations, "iterations", {B});
  double* res = out<HostArrays, double>(residual, "residual", {B});
  auto* conv = out<HostArrays, std::uint8_t>(converged, "converged", {B});
  Interruptible intr;
  {
    py::gil_scoped_release nogil;
    mdp::evaluate_cpu(m, r, g, th, B, max_iter, span, pd, ps, v, it, res, conv, intr.stop());
  }
  intr.rethrow();
}

// ------------------------------------------------------------------ one-call fast paths (issue 11)
// The fast paths' dense model: P (S, A, S) or (B, S, A, S), R (S, A) / (B, S, A) of P's dtype
// (C-contiguous, finite), P's rows checked when row_tol >= 0 (sums within row_tol of 1, no
// negative or non-finite entry: mdp::rows_surely_ok). false: not for the fast path (see fast_path.hpp).
template <class T>
bool fast_model(const py::array& P, const py::array& R, double row_tol, mdp::Dense<T>& m, index_t& B, const T*& r) {
  const T* p = fast::view<T>(P);
  r = fast::view<T>(R);
  if (!p || !r || (P.ndim() != 3 && P.ndim() != 4)) return false;
  const bool single = P.ndim() == 3;
  const int o = single ? 0 : 1;
  B = single ? 1 : P.shape(0);
  const index_t S = P.shape(o), A = P.shape(o + 1);
  if (P.shape(o + 2) != S || B == 0 || S == 0 || A == 0) return false;
  if (!(single ? fast::shape_is(R, {S, A}) : fast::shape_is(R, {B, S, A}))) return false;
  if (!fast::all_finite(r, B * S * A)) return false;
  m = mdp::Dense<T>{p, S, A};
  return row_tol < 0 || mdp::rows_surely_ok(m, B, row_tol);
}

// A float gamma as the kernel's dtype, checked like pygenmod._validate.per_batch (in [0, 1)).
template <class T>
bool fast_gamma(double gamma, T& g) {
  g = static_cast<T>(gamma);
  return std::isfinite(g) && g >= T(0) && g < T(1);
}

// bellman_backup's optimality backup: (Q, V, policy), or None (not for the fast path).
template <class T>
py::object backup_fast_t(const py::array& P, const py::array& R, const py::array& V, double gamma, double row_tol) {
  mdp::Dense<T> m{};
  index_t B;
  const T* r;
  T g;
  if (!fast_gamma(gamma, g) || !fast_model(P, R, -1.0, m, B, r)) return py::none();  // rows: in the sweep
  const index_t S = m.S, A = m.A;
  const bool single = P.ndim() == 3;
  const T* v = fast::view<T>(V);
  if (!v || !(single ? fast::shape_is(V, {S}) : fast::shape_is(V, {B, S})) || !fast::all_finite(v, B * S))
    return py::none();
  auto Q = single ? fast::empty<T>({S, A}) : fast::empty<T>({B, S, A});
  auto Vo = single ? fast::empty<T>({S}) : fast::empty<T>({B, S});
  auto pi = single ? fast::empty<i64>({S}) : fast::empty<i64>({B, S});
  std::vector<T> gs(B, g);
  if (row_tol < 0) {
    mdp::backup_sweep_cpu(m, r, v, gs.data(), B, mdp::kOptimal, nullptr, static_cast<const T*>(nullptr),
                          static_cast<const T*>(nullptr), Q.mutable_data(), Vo.mutable_data(), pi.mutable_data());
  } else if (!mdp::backup_checked_cpu(m, r, v, gs.data(), B, row_tol, Q.mutable_data(), Vo.mutable_data(),
                                      pi.mutable_data())) {
    return py::none();
  }
  return py::make_tuple(Q, Vo, pi);
}

// Exact policy iteration from the greedy policy of V = 0, for S <= max_states:
// (V, policy, Q, iterations (B,), done (B,)), or None (not for the fast path).
template <class T>
py::object policy_iteration_exact_fast_t(const py::array& P, const py::array& R, double gamma, i64 max_iter,
                                         double row_tol, i64 max_states) {
  mdp::Dense<T> m{};
  index_t B;
  const T* r;
  T g;
  if (max_iter < 1 || !fast_gamma(gamma, g) || !fast_model(P, R, row_tol, m, B, r) || m.S > max_states)
    return py::none();
  const index_t S = m.S, A = m.A;
  const bool single = P.ndim() == 3;
  auto V = single ? fast::empty<T>({S}) : fast::empty<T>({B, S});
  auto Q = single ? fast::empty<T>({S, A}) : fast::empty<T>({B, S, A});
  auto pi = single ? fast::empty<i64>({S}) : fast::empty<i64>({B, S});
  auto its = fast::empty<i64>({B});
  auto done = fast::empty<bool>({B});
  std::vector<T> gs(B, g);
  Interruptible intr;
  index_t bad;
  {
    std::optional<py::gil_scoped_release> nogil;
    if (B * S * S * S >= fast::kKeepGilMax) nogil.emplace();  // a release costs more than a tiny solve
    bad = mdp::policy_iteration_exact_cpu(m, r, gs.data(), B, max_iter, false, V.mutable_data(), Q.mutable_data(),
                                          pi.mutable_data(), its.mutable_data(),
                                          reinterpret_cast<std::uint8_t*>(done.mutable_data()), intr.stop());
  }
  intr.rethrow();
  if (bad >= 0) return py::none();  // singular: the general path raises
  return py::make_tuple(V, pi, Q, its, done);
}

}  // namespace

PYBIND11_MODULE(_cpu_mdp, m) {
  pygenmod::shared_pool::adopt();
  m.doc() = "pygenmod Bellman backups, compiled CPU kernels (OpenMP)";
  // Named integer codes of the Python <-> C++ contract (checked by tests/test_contracts.py).
  m.attr("BACKUP_KINDS") = py::dict("optimal"_a = int(mdp::kOptimal), "policy"_a = int(mdp::kPolicy),
                                    "stochastic"_a = int(mdp::kStochastic), "soft"_a = int(mdp::kSoft));
  m.attr("CHECK_STATS") =
      py::dict("done"_a = int(mdp::kCheckDone), "row_sum_err"_a = int(mdp::kCheckRowSumErr),
               "min_entry"_a = int(mdp::kCheckMinEntry), "nonfinite_rows"_a = int(mdp::kCheckNonfiniteRows));

  m.def(
      "backup_dense",
      [](py::array P, py::array R, py::array V, py::array gamma, int kind, py::object pi_det, py::object pi_stoch,
         py::object tau, py::array Q, py::array V_out, py::array policy) {
        dispatch_float<HostArrays>(P, "P", [&](auto tag) {
          using T = decltype(tag);
          index_t B;
          auto md = dense<T>(P, B);
          backup_impl<T>(md, B, R, V, gamma, kind, pi_det, pi_stoch, tau, Q, V_out, policy);
        });
      },
      "P"_a, "R"_a, "V"_a, "gamma"_a, "kind"_a, "pi_det"_a, "pi_stoch"_a, "tau"_a, "Q"_a, "V_out"_a, "policy"_a);

  m.def(
      "backup_csr",
      [](py::array data, py::array indices, py::array indptr, i64 S, i64 A, py::array R, py::array V, py::array gamma,
         int kind, py::object pi_det, py::object pi_stoch, py::object tau, py::array Q, py::array V_out,
         py::array policy) {
        dispatch_float<HostArrays>(data, "data", [&](auto tag) {
          using T = decltype(tag);
          index_t B;
          auto mc = csr<T>(data, indices, indptr, S, A, B);
          backup_impl<T>(mc, B, R, V, gamma, kind, pi_det, pi_stoch, tau, Q, V_out, policy);
        });
      },
      "data"_a, "indices"_a, "indptr"_a, "n_states"_a, "n_actions"_a, "R"_a, "V"_a, "gamma"_a, "kind"_a, "pi_det"_a,
      "pi_stoch"_a, "tau"_a, "Q"_a, "V_out"_a, "policy"_a);

  m.def("solve_dense", [](py::array P, py::array R, py::array gamma, py::array thresh, i64 max_iter, bool span,
                          i64 eval_max, double eval_rel, double row_tol, double elim_tau, py::array V, py::array Q,
                          py::array policy, py::array iterations, py::array eval_sweeps, py::array residual,
                          py::array converged, py::array check_stats) {
    dispatch_float<HostArrays>(P, "P", [&](auto tag) {
      using T = decltype(tag);
      index_t B;
      auto md = dense<T>(P, B);
      solve_impl<T>(md, B, R, gamma, thresh, max_iter, span, eval_max, eval_rel, row_tol, elim_tau, V, Q, policy,
                    iterations, eval_sweeps, residual, converged, check_stats);
    });
  });

  m.def("solve_csr", [](py::array data, py::array indices, py::array indptr, i64 S, i64 A, py::array R, py::array gamma,
                        py::array thresh, i64 max_iter, bool span, i64 eval_max, double eval_rel, double row_tol,
                        double elim_tau, py::array V, py::array Q, py::array policy, py::array iterations,
                        py::array eval_sweeps, py::array residual, py::array converged, py::array check_stats) {
    dispatch_float<HostArrays>(data, "data", [&](auto tag) {
      using T = decltype(tag);
      index_t B;
      auto mc = csr<T>(data, indices, indptr, S, A, B);
      solve_impl<T>(mc, B, R, gamma, thresh, max_iter, span, eval_max, eval_rel, row_tol, elim_tau, V, Q, policy,
                    iterations, eval_sweeps, residual, converged, check_stats);
    });
  });

  m.def("evaluate_dense", [](py::array P, py::array R, py::array gamma, py::array thresh, i64 max_iter, bool span,
                             py::object pi_det, py::object pi_stoch, py::array V, py::array iterations,
                             py::array residual, py::array converged) {
    dispatch_float<HostArrays>(P, "P", [&](auto tag) {
      using T = decltype(tag);
      index_t B;
      auto md = dense<T>(P, B);
      evaluate_impl<T>(md, B, R, gamma, thresh, max_iter, span, pi_det, pi_stoch, V, iterations, residual, converged);
    });
  });

  m.def("evaluate_csr", [](py::array data, py::array indices, py::array indptr, i64 S, i64 A, py::array R,
                           py::array gamma, py::array thresh, i64 max_iter, bool span, py::object pi_det,
                           py::object pi_stoch, py::array V, py::array iterations, py::array residual,
                           py::array converged) {
    dispatch_float<HostArrays>(data, "data", [&](auto tag) {
      using T = decltype(tag);
      index_t B;
      auto mc = csr<T>(data, indices, indptr, S, A, B);
      evaluate_impl<T>(mc, B, R, gamma, thresh, max_iter, span, pi_det, pi_stoch, V, iterations, residual, converged);
    });
  });

  m.def("row_stats_dense", [](py::array P, py::array dst) {
    dispatch_float<HostArrays>(P, "P", [&](auto tag) {
      using T = decltype(tag);
      if (P.ndim() < 1) throw std::invalid_argument("P: expected an array");
      const index_t S = P.shape(P.ndim() - 1), rows = S ? P.size() / S : 0;
      const T* p = static_cast<const T*>(P.data());
      if (!(P.flags() & py::array::c_style)) throw std::invalid_argument("P: must be C-contiguous");
      double* o = out<HostArrays, double>(dst, "out", {3});
      py::gil_scoped_release nogil;
      mdp::row_stats_dense_cpu(p, rows, S, o);
    });
  });

  m.def("row_stats_csr", [](py::array data, py::array indptr, py::array dst) {
    dispatch_float<HostArrays>(data, "data", [&](auto tag) {
      using T = decltype(tag);
      const i64* ptr = in<HostArrays, i64>(indptr, "indptr", {-1});
      const index_t rows = indptr.shape(0) - 1;
      if (rows < 0 || ptr[rows] != data.shape(0)) throw std::invalid_argument("indptr: bad length");
      const T* d = in<HostArrays, T>(data, "data", {-1});
      double* o = out<HostArrays, double>(dst, "out", {3});
      py::gil_scoped_release nogil;
      mdp::row_stats_csr_cpu(d, ptr, rows, o);
    });
  });

  // One-call fast paths (issue 11): plain NumPy in, None when the general path must run.
  m.def("backup_fast", [](py::array P, py::array R, py::array V, double gamma, double row_tol) {
    return fast::by_dtype(P, [&](auto tag) { return backup_fast_t<decltype(tag)>(P, R, V, gamma, row_tol); });
  });
  m.def("policy_iteration_exact_fast",
        [](py::array P, py::array R, double gamma, i64 max_iter, double row_tol, i64 max_states) {
          return fast::by_dtype(P, [&](auto tag) {
            return policy_iteration_exact_fast_t<decltype(tag)>(P, R, gamma, max_iter, row_tol, max_states);
          });
        });
  // Exact policy iteration of validated dense MDPs (the kernel of the general path): returns
  // the first MDP whose system was singular, or -1.
  m.def("policy_iteration_exact_dense",
        [](py::array P, py::array R, py::array gamma, i64 max_iter, bool init, py::array V, py::array Q,
           py::array policy, py::array iterations, py::array done) {
          return dispatch_float<HostArrays>(P, "P", [&](auto tag) {
            using T = decltype(tag);
            index_t B;
            auto md = dense<T>(P, B);
            const index_t S = md.S, A = md.A;
            if (max_iter < 1) throw std::invalid_argument("max_iter: must be >= 1");
            const T* r = in<HostArrays, T>(R, "R", {B, S, A});
            const T* g = in<HostArrays, T>(gamma, "gamma", {B});
            T* v = out<HostArrays, T>(V, "V", {B, S});
            T* q = out<HostArrays, T>(Q, "Q", {B, S, A});
            i64* pi = out<HostArrays, i64>(policy, "policy", {B, S});
            if (init)
              for (index_t i = 0; i < B * S; ++i)
                if (pi[i] < 0 || pi[i] >= A) throw std::invalid_argument("policy: action out of range");
            i64* it = out<HostArrays, i64>(iterations, "iterations", {B});
            auto* dn = out<HostArrays, std::uint8_t>(done, "done", {B});
            Interruptible intr;
            index_t bad;
            {
              py::gil_scoped_release nogil;
              bad = mdp::policy_iteration_exact_cpu(md, r, g, B, max_iter, init, v, q, pi, it, dn, intr.stop());
            }
            intr.rethrow();
            return static_cast<i64>(bad);
          });
        });
}
