// XLA FFI handlers (CPU) of the MDP solver loops and of the RNG fill, for pygenmod.jax: the
// compiled loops of mdp.hpp (solve_cpu: value / modified policy iteration; evaluate_cpu:
// iterative policy evaluation) and sampling::fill_cpu, the kernels the pybind bindings call.
// Here: checks, copies and integer-width conversions only (JAX's integers are int32 without
// x64; the kernels use int64).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "args.hpp"
#include "pygenmod/mdp.hpp"
#include "pygenmod/sampling.hpp"

using namespace pygenmod;
using namespace pygenmod::jaxffi;

namespace {

// An int32 (JAX's default) or int64 (x64) result from int64 values.
void put_ints(Out& o, const char* name, const std::vector<i64>& v, std::initializer_list<i64> shape) {
  if (o->element_type() == ffi::DataType::S64)
    std::copy(v.begin(), v.end(), out<i64>(o, name, shape));
  else
    std::copy(v.begin(), v.end(), out<std::int32_t>(o, name, shape));
}

// The stopping thresholds: float64 under x64, else the model's float type (widened).
std::vector<double> thresholds(const Buf& th, i64 B) {
  std::vector<double> v(B);
  if (th.element_type() == ffi::DataType::F64) {
    const double* p = in<double>(th, "thresh", {B});
    std::copy(p, p + B, v.begin());
  } else {
    const float* p = in<float>(th, "thresh", {B});
    std::copy(p, p + B, v.begin());
  }
  return v;
}

void put_residual(Out& o, const std::vector<double>& r, i64 B) {
  if (o->element_type() == ffi::DataType::F64)
    std::copy(r.begin(), r.end(), out<double>(o, "residual", {B}));
  else
    std::transform(r.begin(), r.end(), out<float>(o, "residual", {B}), [](double x) { return static_cast<float>(x); });
}

// The row statistics {max |sum - 1|, min entry, #bad rows} -> the errors of pygenmod.mdp's
// _Model._stats_report (same messages).
void report_rows(double err, double mn, double bad, double tol) {
  if (bad > 0) throw std::invalid_argument("P: contains NaN or infinity");
  if (mn < 0) throw std::invalid_argument("P: transition probabilities must be >= 0, found " + std::to_string(mn));
  if (!(err <= tol))
    throw std::invalid_argument("P: every row P[b, s, a, :] must sum to 1 (tolerance " + std::to_string(tol) +
                                "); worst row is off by " + std::to_string(err));
}

template <class T>
void check_all_rows(const T* P, i64 rows, i64 S, double tol) {
  double st[3] = {0, 0, 0};
  if (rows) mdp::row_stats_dense_cpu<T>(P, rows, S, st);
  report_rows(st[0], st[1], st[2], tol);
}

// A deterministic policy operand (int32 or int64, or absent) as int64, range-checked.
std::vector<i64> policy_ints(const Buf& b, i64 B, i64 S, i64 A) {
  std::vector<i64> v(b.element_count() ? B * S : 0);
  if (v.empty()) return v;
  if (b.element_type() == ffi::DataType::S64) {
    const i64* p = in<i64>(b, "policy", {B, S});
    std::copy(p, p + v.size(), v.begin());
  } else {
    const auto* p = in<std::int32_t>(b, "policy", {B, S});
    std::copy(p, p + v.size(), v.begin());
  }
  for (i64 x : v)
    if (x < 0 || x >= A) throw std::invalid_argument("policy: action out of range");
  return v;
}

// P (B, S, A, S), R (B, S, A), V0 (B, S), gamma (B,), thresh (B,)
// -> V (B, S), Q (B, S, A), policy (B, S), iterations (B,), eval_sweeps (B,), residual (B,),
// converged (B,) uint8. row_tol >= 0: P's rows are checked (fused into the first sweep that
// reads P, as pygenmod.mdp does; MDPs that never read it are checked separately).
ffi::Error solve(Buf P, Buf R, Buf V0, Buf gamma, Buf thresh, Out V, Out Q, Out policy, Out its, Out evs, Out res,
                 Out conv, i64 max_iter, bool span, i64 eval_max, double eval_rel, double row_tol, double elim_tau) {
  return guarded([&] {
    if (max_iter < 1) throw std::invalid_argument("max_iter: must be >= 1");
    if (eval_max < 0) throw std::invalid_argument("eval_max: must be >= 0");
    dispatch_float(P, "P", [&](auto tag) {
      using T = decltype(tag);
      const i64 B = dim(P, 0, 4, "P"), S = P.dimensions()[1], A = P.dimensions()[2];
      const T* p = in<T>(P, "P", {B, S, A, S});
      T* v = out<T>(V, "V", {B, S});
      std::memcpy(v, in<T>(V0, "V0", {B, S}), static_cast<size_t>(B * S) * sizeof(T));
      const std::vector<double> th = thresholds(thresh, B);
      std::vector<i64> pi(B * S), it(B), es(B);
      std::vector<double> r(B), cs(4 * B);
      const mdp::SolveOptions opt{max_iter, span, eval_max, eval_rel, row_tol, elim_tau};
      mdp::solve_cpu(mdp::Dense<T>{p, S, A}, in<T>(R, "R", {B, S, A}), in<T>(gamma, "gamma", {B}), th.data(), B, opt, v,
                     out<T>(Q, "Q", {B, S, A}), pi.data(), it.data(), es.data(), r.data(),
                     out<std::uint8_t>(conv, "converged", {B}), cs.data());
      if (row_tol >= 0) {
        double err = 0, mn = std::numeric_limits<double>::infinity(), bad = 0;
        for (i64 b = 0; b < B; ++b) {
          double st[3] = {cs[4 * b + 1], cs[4 * b + 2], cs[4 * b + 3]};
          if (cs[4 * b] == 0 && S * A) mdp::row_stats_dense_cpu<T>(p + b * S * A * S, S * A, S, st);
          err = std::max(err, st[0]);
          mn = std::min(mn, st[1]);
          bad += st[2];
        }
        report_rows(err, mn, bad, row_tol);
      }
      put_ints(policy, "policy", pi, {B, S});
      put_ints(its, "iterations", it, {B});
      put_ints(evs, "eval_sweeps", es, {B});
      put_residual(res, r, B);
    });
  });
}

// P, R, V0 (B, S), gamma, thresh, policy (B, S) int or absent, policy (B, S, A) float or absent
// -> V (B, S), iterations (B,), residual (B,), converged (B,) uint8
ffi::Error evaluate(Buf P, Buf R, Buf V0, Buf gamma, Buf thresh, Buf pi_det, Buf pi_stoch, Out V, Out its, Out res,
                    Out conv, i64 max_iter, bool span, double row_tol) {
  return guarded([&] {
    if (max_iter < 1) throw std::invalid_argument("max_iter: must be >= 1");
    dispatch_float(P, "P", [&](auto tag) {
      using T = decltype(tag);
      const i64 B = dim(P, 0, 4, "P"), S = P.dimensions()[1], A = P.dimensions()[2];
      const T* p = in<T>(P, "P", {B, S, A, S});
      if (row_tol >= 0) check_all_rows<T>(p, B * S * A, S, row_tol);
      const std::vector<i64> det = policy_ints(pi_det, B, S, A);
      const T* stoch = opt<T>(pi_stoch, "policy", {B, S, A});
      if (det.empty() == (stoch == nullptr))
        throw std::invalid_argument("policy: give exactly one of a deterministic or stochastic policy");
      T* v = out<T>(V, "V", {B, S});
      std::memcpy(v, in<T>(V0, "V0", {B, S}), static_cast<size_t>(B * S) * sizeof(T));
      const std::vector<double> th = thresholds(thresh, B);
      std::vector<i64> it(B);
      std::vector<double> r(B);
      mdp::evaluate_cpu(mdp::Dense<T>{p, S, A}, in<T>(R, "R", {B, S, A}), in<T>(gamma, "gamma", {B}), th.data(), B,
                        max_iter, span, det.empty() ? nullptr : det.data(), stoch, v, it.data(), r.data(),
                        out<std::uint8_t>(conv, "converged", {B}));
      put_ints(its, "iterations", it, {B});
      put_residual(res, r, B);
    });
  });
}

// seed words -> out (R, N): dist 0 uniform, 1 normal, 2 Gumbel; row r draws from stream
// `stream + r` from element `offset` on (sampling::fill_cpu, pygenmod.random's generator).
ffi::Error fill(Buf key, Out o, i64 dist, std::uint64_t stream, std::uint64_t offset) {
  return guarded([&] {
    if (dist < 0 || dist > 2) throw std::invalid_argument("dist: expected 0 (uniform), 1 (normal) or 2 (gumbel)");
    dispatch_float(*o, "out", [&](auto tag) {
      using T = decltype(tag);
      const auto d = o->dimensions();
      if (d.size() != 2) throw std::invalid_argument("out: expected 2 dimensions");
      const i64 R = d[0], N = d[1];
      sampling::fill_cpu<T>(static_cast<int>(dist), philox_key(key), stream, offset, R, N, out<T>(o, "out", {R, N}));
    });
  });
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(PgmMdpSolveDense, solve,
                              (bind<5, 7>(ffi::Ffi::Bind())
                                   .Attr<i64>("max_iter")
                                   .Attr<bool>("span")
                                   .Attr<i64>("eval_max")
                                   .Attr<double>("eval_rel")
                                   .Attr<double>("row_tol")
                                   .Attr<double>("elim_tau")));
XLA_FFI_DEFINE_HANDLER_SYMBOL(
    PgmMdpEvaluateDense, evaluate,
    (bind<7, 4>(ffi::Ffi::Bind()).Attr<i64>("max_iter").Attr<bool>("span").Attr<double>("row_tol")));
XLA_FFI_DEFINE_HANDLER_SYMBOL(
    PgmFill, fill,
    (bind<1, 1>(ffi::Ffi::Bind()).Attr<i64>("dist").Attr<std::uint64_t>("stream").Attr<std::uint64_t>("offset")));
