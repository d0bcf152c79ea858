// The batched driver of the MDP solver loop (mdp_loop.hpp's LoopControl), the form the CUDA
// solver runs: all B MDPs advance together, one sweep per step, each MDP in its own phase
// (improvement, evaluation or done), with all state (values, policy, loop control) in arrays
// so that a step is two data-parallel passes:
//   1. step:    every state (b, s) of a running MDP does its phase's sweep (batch_step_state);
//   2. control: per MDP, the range of new - old over its states (batch_range_state, a
//               min/max reduction, exact in any order), then one LoopControl update
//               (batch_decide), then the states apply its verdict (batch_apply_state: the
//               MacQueen shift of an evaluation result, the final V = u + c and Q + c).
// A host loop runs steps and looks at the count of running MDPs every few steps
// (batch_loop). The per-state and per-MDP functions are host/device (PGM_HD): the CUDA
// launchers (csrc/cuda/mdp_loop.cu) call them from kernels, HostBatch below from plain
// loops (the CPU tests of the device algorithm; results equal to the CPU solvers', bitwise,
// as the sweeps sum every row in one fixed order).
//
// Buffers. Three (B, S) value buffers; buf[0] is the caller's V (initial values in, result
// out). Per MDP, roles v, u, w index them: improvement reads v and writes u; evaluation reads
// u and writes w, then u and w swap (the latest iterate stays in u); "v <- u" swaps v and u.
#pragma once

#include <cstdint>
#include <limits>
#include <stdexcept>

#include "pygenmod/mdp.hpp"
#include "pygenmod/mdp_loop.hpp"

namespace pygenmod::mdp {

// Per-MDP state of the batched loop.
struct BatchMdp {
  LoopControl c;
  int v, u, w;  // roles: indices into BatchArgs::buf
};

// Everything a step needs besides the transition model, by value (kernel arguments).
template <class T>
struct BatchArgs {
  T* buf[3];                // (B, S) each; buf[0] = V
  T* Q;                     // (B, S, A): the last improvement sweep (solve only)
  std::int64_t* pi;         // (B, S): its greedy policy (solve only)
  std::int64_t* prev;       // (B, S): the greedy policy before it (solve with evaluation)
  const std::int64_t* pol;  // evaluate: the deterministic policy (B, S), or nullptr
  const T* pol_stoch;       // evaluate: the stochastic policy (B, S, A), or nullptr
  BatchMdp* st;             // (B,)
  const T* R;               // (B, S, A)
  const T* gamma;           // (B,)
  index_t B, S, A;
  bool evaluate;  // policy evaluation (sweeps of pol / pol_stoch) instead of solving
};

// The initial state of MDP b (buf[0] holds the initial values).
template <class T>
PGM_HD void batch_init(const BatchArgs<T>& a, index_t b, const double* thresh, std::int64_t max_iter, bool span,
                       std::int64_t eval_max, double eval_rel) {
  BatchMdp d;
  d.c = LoopControl::make(thresh[b], static_cast<double>(a.gamma[b]), max_iter, span, a.evaluate ? 0 : eval_max,
                          eval_rel);
  d.v = 0, d.u = 1, d.w = 2;
  a.st[b] = d;
}

// Step, state (b, s): the sweep of MDP b's phase into its output buffer.
template <class T, class M>
PGM_HD void batch_step_state(const M& m, const BatchArgs<T>& a, index_t b, index_t s) {
  const BatchMdp& d = a.st[b];
  const int phase = d.c.phase;
  if (phase == kDone) return;
  const index_t S = a.S, A = a.A, bs = b * S + s;
  const T* r_s = a.R + bs * A;
  const T g = a.gamma[b];
  if (phase == kEval) {  // u -> w under the greedy policy
    a.buf[d.w][bs] = policy_value_state(m, b, s, r_s, a.buf[d.u] + b * S, g, a.pi[bs], static_cast<const T*>(nullptr));
  } else if (a.evaluate) {  // v -> u under the given policy
    a.buf[d.u][bs] = policy_value_state(m, b, s, r_s, a.buf[d.v] + b * S, g, a.pol ? a.pol[bs] : 0,
                                        a.pol_stoch ? a.pol_stoch + bs * A : static_cast<const T*>(nullptr));
  } else {  // v -> u, Q and the greedy policy
    a.buf[d.u][bs] = backup_state(m, b, s, r_s, a.buf[d.v] + b * S, g, kOptimal, 0, static_cast<const T*>(nullptr),
                                  T(1), a.Q + bs * A, a.pi + bs);
  }
}

// Control, state (b, s) of a running MDP (phase as read before the update): folds new - old
// into [lo, hi]; after an improvement sweep with evaluation to come, `same` &= (pi == prev)
// and prev = pi (each state reads and writes only its own entries).
template <class T>
PGM_HD void batch_range_state(const BatchArgs<T>& a, const BatchMdp& d, index_t b, index_t s, double& lo, double& hi,
                              bool& same) {
  const index_t bs = b * a.S + s;
  const bool ev = d.c.phase == kEval;
  const double x = static_cast<double>(a.buf[ev ? d.w : d.u][bs]) - static_cast<double>(a.buf[ev ? d.u : d.v][bs]);
  lo = x < lo ? x : lo;  // (= std::min / std::max: NaN differences are dropped as on the CPU)
  hi = x > hi ? x : hi;
  if (!ev && d.c.eval_max > 0) {
    same = same && a.pi[bs] == a.prev[bs];
    a.prev[bs] = a.pi[bs];
  }
}

// What the states of an MDP do after its control update (a plain aggregate: CUDA keeps one
// in shared memory).
struct BatchApply {
  int shift_buf;  // >= 0: buf[shift_buf] += shift (an evaluation result's MacQueen shift)
  double shift;
  int final_buf;  // >= 0: done: V = buf[final_buf] + c, and Q += c when c != 0
  double c;
};

// Control, once per running MDP (one thread): the LoopControl update from the reduced range.
// Returns the states' work; final_buf >= 0 means the MDP just stopped.
template <class T>
PGM_HD BatchApply batch_decide(const BatchArgs<T>& a, index_t b, double lo, double hi, bool same) {
  BatchMdp d = a.st[b];
  BatchApply ap{-1, 0.0, -1, 0.0};
  int t;
  if (d.c.phase == kImprove) {
    const int next = d.c.improved(lo, hi);
    if (next == kDone) {
      ap.final_buf = d.u;
      ap.c = d.c.final_shift();
    } else if (next == kEval) {
      d.c.begin_eval(same);
    } else {
      t = d.v, d.v = d.u, d.u = t;  // v <- u
    }
  } else {
    const int next = d.c.evaluated(lo, hi);
    t = d.u, d.u = d.w, d.w = t;  // the latest iterate in u
    if (next == kImprove) {
      if (d.c.eval_shifts()) {
        ap.shift_buf = d.u;
        ap.shift = d.c.eval_shift();
      }
      t = d.v, d.v = d.u, d.u = t;  // v <- u
    }
  }
  a.st[b] = d;
  return ap;
}

// Control, state (b, s): apply the verdict.
template <class T>
PGM_HD void batch_apply_state(const BatchArgs<T>& a, const BatchApply& ap, index_t b, index_t s) {
  const index_t bs = b * a.S + s;
  if (ap.shift_buf >= 0) a.buf[ap.shift_buf][bs] = static_cast<T>(a.buf[ap.shift_buf][bs] + ap.shift);
  if (ap.final_buf >= 0) {
    a.buf[0][bs] = static_cast<T>(a.buf[ap.final_buf][bs] + ap.c);
    if (ap.c != 0 && !a.evaluate)
      for (index_t i = bs * a.A; i < (bs + 1) * a.A; ++i) a.Q[i] = static_cast<T>(a.Q[i] + ap.c);
  }
}

// Sweeps after which a running MDP is certainly done: every improvement sweep counts toward
// max_iter and is followed by at most eval_max evaluation sweeps (saturating).
inline std::int64_t batch_max_steps(std::int64_t max_iter, std::int64_t eval_max) {
  const std::int64_t big = std::numeric_limits<std::int64_t>::max();
  if (max_iter <= 0) return 0;
  if (eval_max >= big / max_iter - 1) return big;
  return max_iter * (1 + eval_max);
}

// The per-MDP results of a finished solve, out of its states into arrays of B entries
// (eval_sweeps nullable: a policy evaluation has none).
inline void batch_results(const BatchMdp* st, index_t B, std::int64_t* iterations, std::int64_t* eval_sweeps,
                          double* residual, std::uint8_t* converged) {
  for (index_t b = 0; b < B; ++b) {
    iterations[b] = st[b].c.iterations;
    if (eval_sweeps) eval_sweeps[b] = st[b].c.eval_sweeps;
    residual[b] = st[b].c.residual;
    converged[b] = st[b].c.converged;
  }
}

// The host side of a batched solve: steps until no MDP runs. X provides step() and control()
// (one step of every MDP, queued) and running() (the number of MDPs still running: the only
// synchronisation, once per `every` steps; steps after the last MDP stopped change nothing).
// Returns false when `stop` asked to stop (the outputs are then incomplete).
template <class X>
bool batch_loop(X& x, std::int64_t max_steps, int every, Stop& stop) {
  std::int64_t steps = 0;
  while (steps < max_steps) {
    for (int j = 0; j < every && steps < max_steps; ++j, ++steps) {
      x.step();
      x.control();
    }
    if (x.running() == 0) return true;
    if (stop.poll()) return false;
  }
  if (x.running() != 0) throw std::logic_error("mdp batched solve: MDPs still running after the last step (a bug)");
  return true;
}

// The batched driver on the host, one thread (the CPU tests of the device algorithm).
template <class T, class M>
struct HostBatch {
  M m;
  BatchArgs<T> a;
  std::int64_t n_running;

  void step() {
    for (index_t b = 0; b < a.B; ++b)
      for (index_t s = 0; s < a.S; ++s) batch_step_state(m, a, b, s);
  }
  void control() {
    for (index_t b = 0; b < a.B; ++b) {
      const BatchMdp d = a.st[b];
      if (d.c.phase == kDone) continue;
      double lo = std::numeric_limits<double>::infinity(), hi = -lo;
      bool same = true;
      for (index_t s = 0; s < a.S; ++s) batch_range_state(a, d, b, s, lo, hi, same);
      const BatchApply ap = batch_decide(a, b, lo, hi, same);
      if (ap.final_buf >= 0) --n_running;
      for (index_t s = 0; s < a.S; ++s) batch_apply_state(a, ap, b, s);
    }
  }
  std::int64_t running() const { return n_running; }
};

// A whole batched solve (evaluate: a.evaluate) on the host: a.buf[1], a.buf[2] and a.st
// are scratch (a.buf[2] unused when evaluating), a.prev too when eval_max > 0.
template <class T, class M>
bool batch_solve_host(const M& m, const BatchArgs<T>& a, const double* thresh, std::int64_t max_iter, bool span,
                      std::int64_t eval_max, double eval_rel, int every, Stop& stop = Stop::never()) {
  for (index_t b = 0; b < a.B; ++b) batch_init(a, b, thresh, max_iter, span, eval_max, eval_rel);
  if (a.prev)
    for (index_t i = 0; i < a.B * a.S; ++i) a.prev[i] = -1;
  HostBatch<T, M> x{m, a, a.B};
  return batch_loop(x, batch_max_steps(max_iter, a.evaluate ? 0 : eval_max), every, stop);
}

}  // namespace pygenmod::mdp
