// _cuda_mdp: bindings of the CUDA Bellman launchers. Device arrays in, no math here.
#include <utility>

#include "bind_common.hpp"
#include "cuda_array.hpp"
#include "mdp.cuh"

namespace py = pybind11;
using namespace pybind11::literals;
using namespace pygenmod;
using namespace pygenmod::bind;
using i64 = std::int64_t;

namespace {

template <class T>
struct Common {
  const T *R, *V, *g, *ps, *tau;
  const i64* pd;
  T *Q, *Vo;
  i64* pi;
};

template <class T>
Common<T> common(i64 B, i64 S, i64 A, int kind, const py::object& R, const py::object& V, const py::object& gamma,
                 const py::object& pi_det, const py::object& pi_stoch, const py::object& tau, const py::object& Q,
                 const py::object& V_out, const py::object& policy) {
  if (kind < 0 || kind > 3) throw std::invalid_argument("kind: expected 0..3");
  Common<T> c{in<DeviceArrays, T>(R, "R", {B, S, A}),
              in<DeviceArrays, T>(V, "V", {B, S}),
              in<DeviceArrays, T>(gamma, "gamma", {B}),
              in_or_null<DeviceArrays, T>(pi_stoch, "policy", {B, S, A}),
              in_or_null<DeviceArrays, T>(tau, "temperature", {B}),
              in_or_null<DeviceArrays, i64>(pi_det, "policy", {B, S}),
              out<DeviceArrays, T>(Q, "Q", {B, S, A}),
              out<DeviceArrays, T>(V_out, "V_out", {B, S}),
              out<DeviceArrays, i64>(policy, "policy_out", {B, S})};
  if (kind == 1 && !c.pd) throw std::invalid_argument("policy: required for kind 1");
  if (kind == 2 && !c.ps) throw std::invalid_argument("policy: required for kind 2");
  if (kind == 3 && !c.tau) throw std::invalid_argument("temperature: required for kind 3");
  return c;
}

template <class T>
void dense(const py::object& P, const py::object& R, const py::object& V, const py::object& gamma, int kind,
           const py::object& pi_det, const py::object& pi_stoch, const py::object& tau, const py::object& Q,
           const py::object& V_out, const py::object& policy, std::uintptr_t stream) {
  auto shp = shape_of<DeviceArrays>(P, "P");
  if (shp.size() != 4) throw std::invalid_argument("P: expected (B, S, A, S)");
  const i64 B = shp[0], S = shp[1], A = shp[2];
  auto c = common<T>(B, S, A, kind, R, V, gamma, pi_det, pi_stoch, tau, Q, V_out, policy);
  cuda::backup_dense<T>(in<DeviceArrays, T>(P, "P", {B, S, A, S}), c.R, c.V, c.g, B, S, A, kind, c.pd, c.ps, c.tau, c.Q,
                        c.Vo, c.pi, as_stream(stream));
}

// (B, nnz) of a batched CSR transition matrix: indptr holds B*S*A + 1 row offsets.
inline std::pair<i64, i64> csr_dims(const py::object& data, const py::object& indptr, i64 S, i64 A) {
  if (S < 1 || A < 1) throw std::invalid_argument("n_states and n_actions must be >= 1");
  auto pshape = shape_of<DeviceArrays>(indptr, "indptr");
  auto dshape = shape_of<DeviceArrays>(data, "data");
  if (pshape.size() != 1 || dshape.size() != 1 || (pshape[0] - 1) % (S * A) != 0)
    throw std::invalid_argument("indptr: expected length B*S*A + 1");
  return {(pshape[0] - 1) / (S * A), dshape[0]};
}

template <class T>
void csr(const py::object& data, const py::object& indices, const py::object& indptr, i64 S, i64 A, const py::object& R,
         const py::object& V, const py::object& gamma, int kind, const py::object& pi_det, const py::object& pi_stoch,
         const py::object& tau, const py::object& Q, const py::object& V_out, const py::object& policy,
         std::uintptr_t stream) {
  const auto [B, nnz] = csr_dims(data, indptr, S, A);
  auto c = common<T>(B, S, A, kind, R, V, gamma, pi_det, pi_stoch, tau, Q, V_out, policy);
  // indptr/indices contents are validated by the Python layer (0 .. nnz, columns < S)
  cuda::backup_csr<T>(in<DeviceArrays, T>(data, "data", {nnz}),
                      in<DeviceArrays, std::int32_t>(indices, "indices", {nnz}),
                      in<DeviceArrays, i64>(indptr, "indptr", {B * S * A + 1}), nnz, c.R, c.V, c.g, B, S, A, kind, c.pd,
                      c.ps, c.tau, c.Q, c.Vo, c.pi, as_stream(stream));
}

// A whole solve (evaluate: pi_det or pi_stoch given) on the device; per-MDP results into host
// (NumPy) arrays. `launch(R, gamma, thresh, settings, V, Q, policy, scratch, bytes, results,
// stop)` runs the dense or CSR launcher.
template <class T, class F>
void loop_impl(i64 B, i64 S, i64 A, const py::object& R, const py::object& gamma, const py::object& thresh,
               i64 max_iter, bool span, i64 eval_max, double eval_rel, const py::object& pi_det,
               const py::object& pi_stoch, const py::object& V, const py::object& Q, const py::object& policy,
               py::array iterations, const py::object& eval_sweeps, py::array residual, py::array converged,
               F&& launch) {
  if (max_iter < 1 || eval_max < 0) throw std::invalid_argument("max_iter, eval_max: out of range");
  cuda::LoopSettings<T> set{max_iter,
                            eval_max,
                            eval_rel,
                            span,
                            in_or_null<DeviceArrays, i64>(pi_det, "policy", {B, S}),
                            in_or_null<DeviceArrays, T>(pi_stoch, "policy", {B, S, A}),
                            false};
  set.evaluate = set.pol != nullptr || set.pol_stoch != nullptr;
  if (set.evaluate && set.pol && set.pol_stoch) throw std::invalid_argument("policy: give pi_det or pi_stoch");
  T* q = set.evaluate ? nullptr : out<DeviceArrays, T>(Q, "Q", {B, S, A});
  i64* pi = set.evaluate ? nullptr : out<DeviceArrays, i64>(policy, "policy_out", {B, S});
  py::array es;
  if (!set.evaluate) es = py::reinterpret_borrow<py::array>(eval_sweeps);
  const cuda::LoopResults res{out<HostArrays, i64>(iterations, "iterations", {B}),
                              set.evaluate ? nullptr : out<HostArrays, i64>(es, "eval_sweeps", {B}),
                              out<HostArrays, double>(residual, "residual", {B}),
                              out<HostArrays, std::uint8_t>(converged, "converged", {B})};
  const T* r = in<DeviceArrays, T>(R, "R", {B, S, A});
  const T* g = in<DeviceArrays, T>(gamma, "gamma", {B});
  const double* th = in<DeviceArrays, double>(thresh, "thresh", {B});
  T* v = out<DeviceArrays, T>(V, "V", {B, S});
  const Scratch tmp = scratch(cuda::solve_loop_scratch_bytes<T>(B, S));
  Interruptible intr;
  bool finished;
  {
    py::gil_scoped_release nogil;
    finished = launch(r, g, th, set, v, q, pi, tmp.ptr, tmp.bytes, res, intr.stop());
  }
  intr.rethrow();
  if (!finished) throw std::runtime_error("mdp solve: interrupted");
}

template <class T>
void loop_dense(const py::object& P, const py::object& R, const py::object& gamma, const py::object& thresh,
                i64 max_iter, bool span, i64 eval_max, double eval_rel, const py::object& pi_det,
                const py::object& pi_stoch, const py::object& V, const py::object& Q, const py::object& policy,
                py::array iterations, const py::object& eval_sweeps, py::array residual, py::array converged,
                std::uintptr_t stream) {
  auto shp = shape_of<DeviceArrays>(P, "P");
  if (shp.size() != 4) throw std::invalid_argument("P: expected (B, S, A, S)");
  const i64 B = shp[0], S = shp[1], A = shp[2];
  const T* p = in<DeviceArrays, T>(P, "P", {B, S, A, S});
  loop_impl<T>(B, S, A, R, gamma, thresh, max_iter, span, eval_max, eval_rel, pi_det, pi_stoch, V, Q, policy,
               iterations, eval_sweeps, residual, converged,
               [&](const T* r, const T* g, const double* th, const cuda::LoopSettings<T>& set, T* v, T* q, i64* pi,
                   void* sp, std::size_t nb, const cuda::LoopResults& out, Stop& stop) {
                 return cuda::solve_loop_dense<T>(p, r, g, th, B, S, A, set, v, q, pi, sp, nb, out, stop,
                                                  as_stream(stream));
               });
}

template <class T>
void loop_csr(const py::object& data, const py::object& indices, const py::object& indptr, i64 S, i64 A,
              const py::object& R, const py::object& gamma, const py::object& thresh, i64 max_iter, bool span,
              i64 eval_max, double eval_rel, const py::object& pi_det, const py::object& pi_stoch, const py::object& V,
              const py::object& Q, const py::object& policy, py::array iterations, const py::object& eval_sweeps,
              py::array residual, py::array converged, std::uintptr_t stream) {
  const auto [B, nnz] = csr_dims(data, indptr, S, A);
  // indptr/indices contents are validated by the Python layer (0 .. nnz, columns < S)
  const T* d = in<DeviceArrays, T>(data, "data", {nnz});
  const std::int32_t* ix = in<DeviceArrays, std::int32_t>(indices, "indices", {nnz});
  const i64* ip = in<DeviceArrays, i64>(indptr, "indptr", {B * S * A + 1});
  loop_impl<T>(B, S, A, R, gamma, thresh, max_iter, span, eval_max, eval_rel, pi_det, pi_stoch, V, Q, policy,
               iterations, eval_sweeps, residual, converged,
               [&](const T* r, const T* g, const double* th, const cuda::LoopSettings<T>& set, T* v, T* q, i64* pi,
                   void* sp, std::size_t nb, const cuda::LoopResults& out, Stop& stop) {
                 return cuda::solve_loop_csr<T>(d, ix, ip, nnz, r, g, th, B, S, A, set, v, q, pi, sp, nb, out, stop,
                                                as_stream(stream));
               });
}
}  // namespace

PYBIND11_MODULE(_cuda_mdp, m) {
  m.doc() = "pygenmod Bellman backups, CUDA kernels";
  m.def(
      "backup_dense",
      [](py::object P, py::object R, py::object V, py::object gamma, int kind, py::object pi_det, py::object pi_stoch,
         py::object tau, py::object Q, py::object V_out, py::object policy, std::uintptr_t stream) {
        dispatch_float<DeviceArrays>(P, "P", [&](auto tag) {
          dense<decltype(tag)>(P, R, V, gamma, kind, pi_det, pi_stoch, tau, Q, V_out, policy, stream);
        });
      },
      "P"_a, "R"_a, "V"_a, "gamma"_a, "kind"_a, "pi_det"_a, "pi_stoch"_a, "tau"_a, "Q"_a, "V_out"_a, "policy"_a,
      "stream"_a = 0);
  m.def(
      "backup_csr",
      [](py::object data, py::object indices, py::object indptr, i64 S, i64 A, py::object R, py::object V,
         py::object gamma, int kind, py::object pi_det, py::object pi_stoch, py::object tau, py::object Q,
         py::object V_out, py::object policy, std::uintptr_t stream) {
        dispatch_float<DeviceArrays>(data, "data", [&](auto tag) {
          csr<decltype(tag)>(data, indices, indptr, S, A, R, V, gamma, kind, pi_det, pi_stoch, tau, Q, V_out, policy,
                             stream);
        });
      },
      "data"_a, "indices"_a, "indptr"_a, "n_states"_a, "n_actions"_a, "R"_a, "V"_a, "gamma"_a, "kind"_a, "pi_det"_a,
      "pi_stoch"_a, "tau"_a, "Q"_a, "V_out"_a, "policy"_a, "stream"_a = 0);
  // Whole solves on the device (pygenmod/mdp_batched.hpp's loop; the results per MDP go to the
  // NumPy arrays iterations, eval_sweeps, residual, converged). solve_loop_*: modified policy
  // iteration (eval_max = 0: value iteration); evaluate_loop_*: iterative policy evaluation.
  m.def(
      "solve_loop_dense",
      [](py::object P, py::object R, py::object gamma, py::object thresh, i64 max_iter, bool span, i64 eval_max,
         double eval_rel, py::object V, py::object Q, py::object policy, py::array iterations, py::object eval_sweeps,
         py::array residual, py::array converged, std::uintptr_t stream) {
        const py::object no = py::none();
        dispatch_float<DeviceArrays>(P, "P", [&](auto tag) {
          loop_dense<decltype(tag)>(P, R, gamma, thresh, max_iter, span, eval_max, eval_rel, no, no, V, Q, policy,
                                    iterations, eval_sweeps, residual, converged, stream);
        });
      },
      "P"_a, "R"_a, "gamma"_a, "thresh"_a, "max_iter"_a, "span"_a, "eval_max"_a, "eval_rel"_a, "V"_a, "Q"_a, "policy"_a,
      "iterations"_a, "eval_sweeps"_a, "residual"_a, "converged"_a, "stream"_a = 0);
  m.def(
      "solve_loop_csr",
      [](py::object data, py::object indices, py::object indptr, i64 S, i64 A, py::object R, py::object gamma,
         py::object thresh, i64 max_iter, bool span, i64 eval_max, double eval_rel, py::object V, py::object Q,
         py::object policy, py::array iterations, py::object eval_sweeps, py::array residual, py::array converged,
         std::uintptr_t stream) {
        const py::object no = py::none();
        dispatch_float<DeviceArrays>(data, "data", [&](auto tag) {
          loop_csr<decltype(tag)>(data, indices, indptr, S, A, R, gamma, thresh, max_iter, span, eval_max, eval_rel, no,
                                  no, V, Q, policy, iterations, eval_sweeps, residual, converged, stream);
        });
      },
      "data"_a, "indices"_a, "indptr"_a, "n_states"_a, "n_actions"_a, "R"_a, "gamma"_a, "thresh"_a, "max_iter"_a,
      "span"_a, "eval_max"_a, "eval_rel"_a, "V"_a, "Q"_a, "policy"_a, "iterations"_a, "eval_sweeps"_a, "residual"_a,
      "converged"_a, "stream"_a = 0);
  m.def(
      "evaluate_loop_dense",
      [](py::object P, py::object R, py::object gamma, py::object thresh, i64 max_iter, bool span, py::object pi_det,
         py::object pi_stoch, py::object V, py::array iterations, py::array residual, py::array converged,
         std::uintptr_t stream) {
        const py::object no = py::none();
        if (pi_det.is_none() == pi_stoch.is_none()) throw std::invalid_argument("policy: give pi_det or pi_stoch");
        dispatch_float<DeviceArrays>(P, "P", [&](auto tag) {
          loop_dense<decltype(tag)>(P, R, gamma, thresh, max_iter, span, 0, -1.0, pi_det, pi_stoch, V, no, no,
                                    iterations, no, residual, converged, stream);
        });
      },
      "P"_a, "R"_a, "gamma"_a, "thresh"_a, "max_iter"_a, "span"_a, "pi_det"_a, "pi_stoch"_a, "V"_a, "iterations"_a,
      "residual"_a, "converged"_a, "stream"_a = 0);
  m.def(
      "evaluate_loop_csr",
      [](py::object data, py::object indices, py::object indptr, i64 S, i64 A, py::object R, py::object gamma,
         py::object thresh, i64 max_iter, bool span, py::object pi_det, py::object pi_stoch, py::object V,
         py::array iterations, py::array residual, py::array converged, std::uintptr_t stream) {
        const py::object no = py::none();
        if (pi_det.is_none() == pi_stoch.is_none()) throw std::invalid_argument("policy: give pi_det or pi_stoch");
        dispatch_float<DeviceArrays>(data, "data", [&](auto tag) {
          loop_csr<decltype(tag)>(data, indices, indptr, S, A, R, gamma, thresh, max_iter, span, 0, -1.0, pi_det,
                                  pi_stoch, V, no, no, iterations, no, residual, converged, stream);
        });
      },
      "data"_a, "indices"_a, "indptr"_a, "n_states"_a, "n_actions"_a, "R"_a, "gamma"_a, "thresh"_a, "max_iter"_a,
      "span"_a, "pi_det"_a, "pi_stoch"_a, "V"_a, "iterations"_a, "residual"_a, "converged"_a, "stream"_a = 0);
}
