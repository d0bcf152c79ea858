// Bellman backups: the per-(s, a) and per-state math, shared by the CPU and CUDA launchers.
// Layout: P[b, s, a, s'] (each (s, a) row contiguous), R[b, s, a], V[b, s].
#pragma once

#include "pygenmod/common.hpp"

namespace pygenmod::mdp {

// r + gamma * sum_s' P[s'] V[s'], the sum accumulated in acc_t<T> (float64).
template <class T>
PGM_HD T q_value(const T* p_row, T r, const T* v, index_t n_states, T gamma) {
  acc_t<T> s = 0;
  for (index_t j = 0; j < n_states; ++j) s += static_cast<acc_t<T>>(p_row[j]) * v[j];
  return static_cast<T>(r + gamma * s);
}

// Optimality backup of one state: Q[a] for every action, returns max_a Q[a] and
// writes the greedy action (lowest index among ties) to *best.
template <class T>
PGM_HD T optimality_backup_state(const T* p_state, const T* r_state, const T* v,
                                 index_t n_states, index_t n_actions, T gamma, T* q_state,
                                 std::int64_t* best) {
  T vmax = neg_inf<T>();
  std::int64_t arg = 0;
  for (index_t a = 0; a < n_actions; ++a) {
    const T q = q_value(p_state + a * n_states, r_state[a], v, n_states, gamma);
    q_state[a] = q;
    if (q > vmax) { vmax = q; arg = a; }
  }
  *best = arg;
  return vmax;
}

// CPU launcher: one optimality sweep over B dense MDPs, OpenMP over (b, s).
template <class T>
void optimality_sweep_dense_cpu(const T* P, const T* R, const T* V, const T* gamma,
                                index_t B, index_t S, index_t A, T* Q, T* V_out,
                                std::int64_t* policy) {
#pragma omp parallel for collapse(2) schedule(static)
  for (index_t b = 0; b < B; ++b)
    for (index_t s = 0; s < S; ++s) {
      const index_t bs = b * S + s;
      V_out[bs] = optimality_backup_state(P + bs * A * S, R + bs * A, V + b * S, S, A, gamma[b],
                                          Q + bs * A, policy + bs);
    }
}

}  // namespace pygenmod::mdp
