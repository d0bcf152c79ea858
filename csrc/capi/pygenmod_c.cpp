// The C API (pygenmod_c.h): argument checks, then the header-only kernels. No math here.
#include "pygenmod_c.h"

#include <cmath>
#include <cstdint>
#include <exception>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "pygenmod/mcts_tree.hpp"
#include "pygenmod/mdp.hpp"
#include "pygenmod/returns.hpp"
#include "pygenmod/thread_pool.hpp"

#ifndef PYGENMOD_VERSION
#define PYGENMOD_VERSION "unknown"
#endif

namespace {

thread_local std::string g_error;

struct ArgError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

void need(bool ok, const char* what) {
  if (!ok) throw ArgError(what);
}

// Runs f, turning every C++ exception into a status code and the thread's message.
template <class F>
int guarded(const char* fn, F&& f) noexcept {
  try {
    g_error.clear();
    f();
    return PGM_OK;
  } catch (const ArgError& e) {
    g_error = std::string(fn) + ": " + e.what();
    return PGM_ERR_ARGUMENT;
  } catch (const std::bad_alloc&) {
    g_error = std::string(fn) + ": out of memory";
    return PGM_ERR_MEMORY;
  } catch (const std::exception& e) {
    g_error = std::string(fn) + ": " + e.what();
    return PGM_ERR_INTERNAL;
  } catch (...) {
    g_error = std::string(fn) + ": unknown error";
    return PGM_ERR_INTERNAL;
  }
}

using pygenmod::index_t;

template <class T>
void bellman(const T* P, const T* R, const T* V, const T* gamma, int64_t B, int64_t S, int64_t A, int kind,
             const int64_t* pi_det, const T* pi_stoch, const T* tau, T* Q, T* V_out, int64_t* policy) {
  namespace mdp = pygenmod::mdp;
  need(B >= 0 && S >= 1 && A >= 1, "B must be >= 0, S and A >= 1");
  need(P && R && V && gamma && Q && V_out && policy, "P, R, V, gamma, Q, V_out and policy must not be NULL");
  need(kind >= 0 && kind <= 3, "kind: expected 0 (optimal), 1 (policy), 2 (stochastic) or 3 (soft)");
  need(kind != mdp::kPolicy || pi_det, "pi_det: required for kind 1");
  need(kind != mdp::kStochastic || pi_stoch, "pi_stoch: required for kind 2");
  need(kind != mdp::kSoft || tau, "tau: required for kind 3");
  if (kind == mdp::kPolicy)
    for (int64_t i = 0; i < B * S; ++i) need(pi_det[i] >= 0 && pi_det[i] < A, "pi_det: action out of range");
  if (kind == mdp::kSoft)
    for (int64_t b = 0; b < B; ++b) need(tau[b] > 0, "tau: must be > 0");
  mdp::Dense<T> m{P, S, A};
  mdp::backup_sweep_cpu(m, R, V, gamma, B, kind, kind == mdp::kPolicy ? pi_det : nullptr,
                        kind == mdp::kStochastic ? pi_stoch : nullptr, kind == mdp::kSoft ? tau : nullptr, Q, V_out,
                        policy);
}

template <class T>
void gae(const T* r, const T* v, const T* next_v, const T* boot, const uint8_t* term, const uint8_t* trunc,
         const T* gamma, const T* lam, int64_t Tn, int64_t B, T* adv, T* ret) {
  need(Tn >= 0 && B >= 0, "T and B must be >= 0");
  need(r && v && gamma && lam && adv, "rewards, values, gamma, lam and advantages must not be NULL");
  need(!trunc || next_v,
       "next_values: required when truncated is given (the value of the observation where "
       "the episode was cut)");
  std::uint8_t nonfinite = 0;
  pygenmod::returns::gae_cpu<T, std::uint8_t>(r, v, next_v, boot, term, trunc, nullptr, gamma, lam, Tn, B, adv, ret,
                                              &nonfinite);
  need(nonfinite == 0, "the inputs contain NaN or infinity");
}

template <class T>
void mcts_tabular(const int64_t* next_state, const T* reward, const T* discount, const T* logits, const T* prior,
                  const T* value, const uint8_t* invalid, int64_t S, int64_t A, const int64_t* roots, int64_t B,
                  int64_t sims, double pb_c_init, double pb_c_base, int32_t* counts, T* root_value) {
  namespace mcts = pygenmod::mcts;
  need(S >= 1 && A >= 1 && B >= 0 && sims >= 0, "S and A must be >= 1, B and num_simulations >= 0");
  need(sims < (int64_t(1) << 30), "num_simulations: too large");
  need(next_state && reward && discount && logits && prior && value && invalid && roots && counts && root_value,
       "no array argument may be NULL");
  need(std::isfinite(pb_c_init) && std::isfinite(pb_c_base) && pb_c_base > 0,
       "pb_c_init must be finite and pb_c_base finite and > 0");
  for (int64_t i = 0; i < S * A; ++i) need(next_state[i] >= 0 && next_state[i] < S, "next_state: state out of range");
  for (int64_t b = 0; b < B; ++b) {
    need(roots[b] >= 0 && roots[b] < S, "roots: state out of range");
    bool any = false;
    for (int64_t a = 0; a < A; ++a) any = any || invalid[roots[b] * A + a] == 0;
    need(any, "roots: a root state is terminal (every action invalid)");
  }
  mcts::TreeStorage<T> trees(B, A, sims + 1);
  trees.init_roots_tabular(roots, logits, prior, invalid, value);
  mcts::search_tabular_cpu(trees.batch(), B, mcts::puct_params(pb_c_init, pb_c_base), sims, next_state, reward,
                           discount, logits, prior, value, invalid, mcts::Transitions{});
  trees.root_stats(counts, root_value);
}

}  // namespace

extern "C" {

const char* pgm_last_error(void) { return g_error.c_str(); }
const char* pgm_version(void) { return PYGENMOD_VERSION; }
int pgm_set_num_threads(int n) {
  return guarded(__func__, [&] {
    need(n >= 1, "n: must be >= 1");
    pygenmod::threads::pool().set_threads(n);
  });
}
int pgm_get_num_threads(void) { return pygenmod::threads::pool().threads(); }

int pgm_bellman_backup_f64(const double* P, const double* R, const double* V, const double* gamma, int64_t B, int64_t S,
                           int64_t A, int kind, const int64_t* pi_det, const double* pi_stoch, const double* tau,
                           double* Q, double* V_out, int64_t* policy) {
  return guarded(__func__, [&] { bellman(P, R, V, gamma, B, S, A, kind, pi_det, pi_stoch, tau, Q, V_out, policy); });
}
int pgm_bellman_backup_f32(const float* P, const float* R, const float* V, const float* gamma, int64_t B, int64_t S,
                           int64_t A, int kind, const int64_t* pi_det, const float* pi_stoch, const float* tau,
                           float* Q, float* V_out, int64_t* policy) {
  return guarded(__func__, [&] { bellman(P, R, V, gamma, B, S, A, kind, pi_det, pi_stoch, tau, Q, V_out, policy); });
}

int pgm_gae_f64(const double* rewards, const double* values, const double* next_values, const double* bootstrap,
                const uint8_t* terminated, const uint8_t* truncated, const double* gamma, const double* lam, int64_t T,
                int64_t B, double* advantages, double* returns) {
  return guarded(__func__, [&] {
    gae(rewards, values, next_values, bootstrap, terminated, truncated, gamma, lam, T, B, advantages, returns);
  });
}
int pgm_gae_f32(const float* rewards, const float* values, const float* next_values, const float* bootstrap,
                const uint8_t* terminated, const uint8_t* truncated, const float* gamma, const float* lam, int64_t T,
                int64_t B, float* advantages, float* returns) {
  return guarded(__func__, [&] {
    gae(rewards, values, next_values, bootstrap, terminated, truncated, gamma, lam, T, B, advantages, returns);
  });
}

int pgm_mcts_search_tabular_f64(const int64_t* next_state, const double* reward, const double* discount,
                                const double* logits, const double* prior, const double* value, const uint8_t* invalid,
                                int64_t S, int64_t A, const int64_t* roots, int64_t B, int64_t num_simulations,
                                double pb_c_init, double pb_c_base, int32_t* visit_counts, double* root_value) {
  return guarded(__func__, [&] {
    mcts_tabular(next_state, reward, discount, logits, prior, value, invalid, S, A, roots, B, num_simulations,
                 pb_c_init, pb_c_base, visit_counts, root_value);
  });
}
int pgm_mcts_search_tabular_f32(const int64_t* next_state, const float* reward, const float* discount,
                                const float* logits, const float* prior, const float* value, const uint8_t* invalid,
                                int64_t S, int64_t A, const int64_t* roots, int64_t B, int64_t num_simulations,
                                double pb_c_init, double pb_c_base, int32_t* visit_counts, float* root_value) {
  return guarded(__func__, [&] {
    mcts_tabular(next_state, reward, discount, logits, prior, value, invalid, S, A, roots, B, num_simulations,
                 pb_c_init, pb_c_base, visit_counts, root_value);
  });
}

}  // extern "C"
