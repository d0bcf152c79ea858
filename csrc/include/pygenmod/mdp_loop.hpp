// The convergence loop of the MDP solvers, written once: a per-MDP state machine of modified
// policy iteration (value iteration and iterative policy evaluation are its special cases)
// that every driver runs. Drivers only do sweeps and the range of (new - old) they return:
// - the CPU solvers (mdp.hpp solve_one / evaluate_one): one MDP after the other, with the
//   CPU sweep functions (action elimination, packing, threads);
// - the batched driver (mdp_batched.hpp): all MDPs of a batch in lock step, one sweep per
//   step, each MDP in its own phase; the CUDA solver runs it on the device (csrc/cuda) and
//   the CPU tests run the same code on the host.
// Host and device code (PGM_HD); no allocation, no Python.
//
//   loop: u = T v (greedy pi); res = span or sup of u - v; stop if res < thresh (or res == 0),
//         or after max_iter improvement sweeps;
//         v = T_pi^k u, k evaluation sweeps (fixed: eval_max; adaptive: until the span of an
//         evaluation step is below max(thresh/2, eval_rel * res), or thresh/2 alone once the
//         policy stopped changing, at most eval_max), then v += g/(1-g) * midpoint (exact
//         for span stopping, which is shift invariant; it only speeds up sup stopping).
//   span stop: V = u + g/(1-g) * mid(u - v), so ||V - V*||_inf <= g/(1-g) * res / 2.
//   sup stop:  V = u, so ||V - V*||_inf <= g/(1-g) * res.
// Policy evaluation is the same loop with T_pi as the "improvement" sweep and eval_max = 0.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#include "pygenmod/common.hpp"

namespace pygenmod::mdp {

// What an MDP does next.
enum Phase : int {
  kImprove = 0,  // an improvement sweep u = T v (policy evaluation: u = T_pi v)
  kEval = 1,     // an evaluation sweep of the greedy policy
  kDone = 2,     // stopped: converged or out of iterations
};

struct LoopControl {
  // settings
  double thresh = 0, eval_rel = -1, k = 0;  // k = g / (1 - g) (0 for g >= 1)
  std::int64_t max_iter = 1, eval_max = 0;
  bool span = true;
  // state
  int phase = kImprove;
  bool converged = false;
  std::int64_t iterations = 0, eval_sweeps = 0, eval_j = 0;
  double residual = 0, target = -1;
  double lo = 0, hi = 0;    // range of u - v of the last improvement sweep
  double elo = 0, ehi = 0;  // range of the last evaluation step

  // gamma as the solver's T (the CPU loops took double(gamma) of it)
  PGM_HD static LoopControl make(double thresh, double gamma, std::int64_t max_iter, bool span, std::int64_t eval_max,
                                 double eval_rel) {
    LoopControl c;
    c.thresh = thresh;
    c.k = gamma < 1 ? gamma / (1 - gamma) : 0;
    c.max_iter = max_iter;
    c.span = span;
    c.eval_max = eval_max;
    c.eval_rel = eval_rel;
    return c;
  }

  // After an improvement sweep whose u - v ranges over [lo, hi]: the next phase.
  PGM_HD int improved(double lo_, double hi_) {
    lo = lo_;
    hi = hi_;
    ++iterations;
    const double a = std::fabs(lo), b = std::fabs(hi);
    residual = span ? hi - lo : (a < b ? b : a);  // (= std::max(a, b), NaN included)
    if (residual < thresh || residual == 0) {
      converged = true;
      return phase = kDone;
    }
    if (iterations >= max_iter) return phase = kDone;
    return phase = eval_max > 0 ? kEval : kImprove;
  }

  // Before the first evaluation sweep; `same`: the greedy policy equals the previous one.
  PGM_HD void begin_eval(bool same) {
    const double t = same ? 0.0 : eval_rel * residual, h = 0.5 * thresh;
    target = eval_rel < 0 ? -1.0 : (h < t ? t : h);  // (= std::max(h, t))
    eval_j = 0;
    elo = std::numeric_limits<double>::infinity();
    ehi = -elo;
  }

  // After an evaluation sweep whose step ranges over [lo, hi]: kEval (another) or kImprove.
  PGM_HD int evaluated(double lo_, double hi_) {
    elo = lo_;
    ehi = hi_;
    ++eval_sweeps;
    ++eval_j;
    if ((target >= 0 && ehi - elo < target) || eval_j >= eval_max) return phase = kImprove;
    return phase = kEval;
  }

  // After the evaluation sweeps: shift the latest iterate by eval_shift() when eval_shifts().
  PGM_HD bool eval_shifts() const { return k > 0 && elo <= ehi; }
  PGM_HD double eval_shift() const { return k * (0.5 * (elo + ehi)); }
  // When done: V = u + final_shift() (u: the last improvement sweep's output), Q likewise.
  PGM_HD double final_shift() const { return span && k > 0 ? k * (0.5 * (lo + hi)) : 0.0; }
};

}  // namespace pygenmod::mdp
