// _cpu_mdp_batched: the batched solver loop of pygenmod/mdp_batched.hpp (the algorithm the CUDA
// solvers run) on the host, one thread, for the tests. Same arguments as _cuda_mdp's
// solve_loop_* / evaluate_loop_* (stream excepted); no math here.
#include <vector>

#include "bind_common.hpp"
#include "mdp_models.hpp"
#include "pygenmod/mdp_batched.hpp"

namespace py = pybind11;
using namespace pybind11::literals;
using namespace pygenmod;
using namespace pygenmod::bind;
using i64 = std::int64_t;

namespace {

using mdp_host::csr;
using mdp_host::dense;

// evaluate: pol / pol_stoch given, Q / policy / eval_sweeps None.
template <class T, class M>
void run(const M& m, index_t B, const py::array& R, const py::array& gamma, const py::array& thresh, i64 max_iter,
         bool span, i64 eval_max, double eval_rel, const py::object& pol, const py::object& pol_stoch, py::array V,
         const py::object& Q, const py::object& policy, py::array iterations, const py::object& eval_sweeps,
         py::array residual, py::array converged, int every) {
  const index_t S = m.S, A = m.A;
  if (max_iter < 1 || eval_max < 0 || every < 1) throw std::invalid_argument("max_iter, eval_max, every: out of range");
  mdp::BatchArgs<T> a{};
  a.evaluate = !pol.is_none() || !pol_stoch.is_none();
  a.R = in<HostArrays, T>(R, "R", {B, S, A});
  a.gamma = in<HostArrays, T>(gamma, "gamma", {B});
  a.B = B, a.S = S, a.A = A;
  a.pol = in_or_null<HostArrays, i64>(pol, "policy", {B, S});
  a.pol_stoch = in_or_null<HostArrays, T>(pol_stoch, "policy", {B, S, A});
  a.buf[0] = out<HostArrays, T>(V, "V", {B, S});
  py::array q, pi, es;
  if (!a.evaluate) {
    q = py::reinterpret_borrow<py::array>(Q), pi = py::reinterpret_borrow<py::array>(policy);
    es = py::reinterpret_borrow<py::array>(eval_sweeps);
    a.Q = out<HostArrays, T>(q, "Q", {B, S, A});
    a.pi = out<HostArrays, i64>(pi, "policy", {B, S});
  }
  std::vector<T> b1(B * S), b2(B * S);
  std::vector<i64> prev(eval_max > 0 && !a.evaluate ? B * S : 0);
  std::vector<mdp::BatchMdp> st(B);
  a.buf[1] = b1.data(), a.buf[2] = b2.data(), a.prev = prev.empty() ? nullptr : prev.data(), a.st = st.data();
  const double* th = in<HostArrays, double>(thresh, "thresh", {B});
  i64* it = out<HostArrays, i64>(iterations, "iterations", {B});
  i64* ev = a.evaluate ? nullptr : out<HostArrays, i64>(es, "eval_sweeps", {B});
  double* res = out<HostArrays, double>(residual, "residual", {B});
  auto* conv = out<HostArrays, std::uint8_t>(converged, "converged", {B});
  {
    py::gil_scoped_release nogil;
    mdp::batch_solve_host(m, a, th, max_iter, span, eval_max, eval_rel, every);
  }
  mdp::batch_results(st.data(), B, it, ev, res, conv);
}

}  // namespace

PYBIND11_MODULE(_cpu_mdp_batched, m) {
  pygenmod::shared_pool::adopt();
  m.doc() = "pygenmod: the CUDA solvers' batched loop run on the host (tests)";
  m.def(
      "solve_loop_dense",
      [](py::array P, py::array R, py::array gamma, py::array thresh, i64 max_iter, bool span, i64 eval_max,
         double eval_rel, py::array V, py::array Q, py::array policy, py::array iterations, py::array eval_sweeps,
         py::array residual, py::array converged, int every) {
        dispatch_float<HostArrays>(P, "P", [&](auto tag) {
          using T = decltype(tag);
          index_t B;
          auto md = dense<T>(P, B);
          run<T>(md, B, R, gamma, thresh, max_iter, span, eval_max, eval_rel, py::none(), py::none(), V, Q, policy,
                 iterations, eval_sweeps, residual, converged, every);
        });
      },
      "P"_a, "R"_a, "gamma"_a, "thresh"_a, "max_iter"_a, "span"_a, "eval_max"_a, "eval_rel"_a, "V"_a, "Q"_a, "policy"_a,
      "iterations"_a, "eval_sweeps"_a, "residual"_a, "converged"_a, "every"_a = 16);
  m.def(
      "solve_loop_csr",
      [](py::array data, py::array indices, py::array indptr, i64 S, i64 A, py::array R, py::array gamma,
         py::array thresh, i64 max_iter, bool span, i64 eval_max, double eval_rel, py::array V, py::array Q,
         py::array policy, py::array iterations, py::array eval_sweeps, py::array residual, py::array converged,
         int every) {
        dispatch_float<HostArrays>(data, "data", [&](auto tag) {
          using T = decltype(tag);
          index_t B;
          auto mc = csr<T>(data, indices, indptr, S, A, B);
          run<T>(mc, B, R, gamma, thresh, max_iter, span, eval_max, eval_rel, py::none(), py::none(), V, Q, policy,
                 iterations, eval_sweeps, residual, converged, every);
        });
      },
      "data"_a, "indices"_a, "indptr"_a, "n_states"_a, "n_actions"_a, "R"_a, "gamma"_a, "thresh"_a, "max_iter"_a,
      "span"_a, "eval_max"_a, "eval_rel"_a, "V"_a, "Q"_a, "policy"_a, "iterations"_a, "eval_sweeps"_a, "residual"_a,
      "converged"_a, "every"_a = 16);
  m.def(
      "evaluate_loop_dense",
      [](py::array P, py::array R, py::array gamma, py::array thresh, i64 max_iter, bool span, py::object pi_det,
         py::object pi_stoch, py::array V, py::array iterations, py::array residual, py::array converged, int every) {
        dispatch_float<HostArrays>(P, "P", [&](auto tag) {
          using T = decltype(tag);
          index_t B;
          auto md = dense<T>(P, B);
          if (pi_det.is_none() == pi_stoch.is_none()) throw std::invalid_argument("policy: give pi_det or pi_stoch");
          run<T>(md, B, R, gamma, thresh, max_iter, span, 0, -1.0, pi_det, pi_stoch, V, py::none(), py::none(),
                 iterations, py::none(), residual, converged, every);
        });
      },
      "P"_a, "R"_a, "gamma"_a, "thresh"_a, "max_iter"_a, "span"_a, "pi_det"_a, "pi_stoch"_a, "V"_a, "iterations"_a,
      "residual"_a, "converged"_a, "every"_a = 16);
  m.def(
      "evaluate_loop_csr",
      [](py::array data, py::array indices, py::array indptr, i64 S, i64 A, py::array R, py::array gamma,
         py::array thresh, i64 max_iter, bool span, py::object pi_det, py::object pi_stoch, py::array V,
         py::array iterations, py::array residual, py::array converged, int every) {
        dispatch_float<HostArrays>(data, "data", [&](auto tag) {
          using T = decltype(tag);
          index_t B;
          auto mc = csr<T>(data, indices, indptr, S, A, B);
          if (pi_det.is_none() == pi_stoch.is_none()) throw std::invalid_argument("policy: give pi_det or pi_stoch");
          run<T>(mc, B, R, gamma, thresh, max_iter, span, 0, -1.0, pi_det, pi_stoch, V, py::none(), py::none(),
                 iterations, py::none(), residual, converged, every);
        });
      },
      "data"_a, "indices"_a, "indptr"_a, "n_states"_a, "n_actions"_a, "R"_a, "gamma"_a, "thresh"_a, "max_iter"_a,
      "span"_a, "pi_det"_a, "pi_stoch"_a, "V"_a, "iterations"_a, "residual"_a, "converged"_a, "every"_a = 16);
}
