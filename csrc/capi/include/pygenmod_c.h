/* pygenmod's C API: a few kernels callable from C and through any FFI (ctypes, cffi, Julia,
 * Rust, ...). Every buffer is owned by the caller: dense, C-contiguous (row-major) arrays of
 * the documented shapes; outputs are written, never allocated for the caller (the MCTS search
 * allocates its tree internally and frees it before returning). Functions return a status
 * code (PGM_OK = 0) and never throw or abort; pgm_last_error() describes the last failure of
 * the calling thread. Only the structure of the arguments is checked (null pointers, sizes,
 * index ranges, enum values); the numbers are the caller's contract (e.g. rows of P summing
 * to 1), as documented by the Python API. Threads: each call runs its loops on the library's
 * own thread pool (pgm_set_num_threads; default OMP_NUM_THREADS or the CPUs).
 */
#ifndef PYGENMOD_C_H
#define PYGENMOD_C_H

#include <stdint.h>

#if defined(_WIN32)
#define PGM_C_API __declspec(dllexport)
#else
#define PGM_C_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

enum pgm_status {
  PGM_OK = 0,
  PGM_ERR_ARGUMENT = 1, /* a null pointer, a bad size, an index or enum out of range */
  PGM_ERR_MEMORY = 2,   /* an internal allocation failed */
  PGM_ERR_INTERNAL = 3  /* anything else (a bug: please report it) */
};

/* The message of the calling thread's last failed call ("" if none). Valid until its next call. */
PGM_C_API const char* pgm_last_error(void);
/* The package version, e.g. "0.1.0". */
PGM_C_API const char* pgm_version(void);
/* Threads the library's calls may use (n >= 1; PGM_ERR_ARGUMENT otherwise), for every calling
 * thread. Results do not depend on it. */
PGM_C_API int pgm_set_num_threads(int n);
PGM_C_API int pgm_get_num_threads(void);

/* Bellman backup kinds (pygenmod.mdp.backup). */
enum pgm_backup_kind {
  PGM_BACKUP_OPTIMAL = 0,    /* V = max_a Q */
  PGM_BACKUP_POLICY = 1,     /* V = Q[pi(s)], pi_det (B, S) int64 */
  PGM_BACKUP_STOCHASTIC = 2, /* V = sum_a pi(a|s) Q, pi_stoch (B, S, A) */
  PGM_BACKUP_SOFT = 3        /* V = tau log sum_a exp(Q / tau), tau (B,) */
};

/* One Bellman backup sweep over B dense MDPs:
 *   Q[b,s,a] = R[b,s,a] + gamma[b] * sum_s' P[b,s,a,s'] V[b,s'],  V_out[b,s] by `kind`,
 *   policy[b,s] = argmax_a Q (lowest index among ties).
 * P (B,S,A,S), R (B,S,A), V (B,S), gamma (B,); pi_det / pi_stoch / tau: NULL unless `kind`
 * needs them. Outputs Q (B,S,A), V_out (B,S), policy (B,S) int64. */
PGM_C_API int pgm_bellman_backup_f64(const double* P, const double* R, const double* V, const double* gamma, int64_t B,
                                     int64_t S, int64_t A, int kind, const int64_t* pi_det, const double* pi_stoch,
                                     const double* tau, double* Q, double* V_out, int64_t* policy);
PGM_C_API int pgm_bellman_backup_f32(const float* P, const float* R, const float* V, const float* gamma, int64_t B,
                                     int64_t S, int64_t A, int kind, const int64_t* pi_det, const float* pi_stoch,
                                     const float* tau, float* Q, float* V_out, int64_t* policy);

/* Generalized advantage estimation over (T, B), time-major (pygenmod.returns.gae):
 *   delta_t = r_t + gamma (1 - terminated_t) V_{t+1} - V_t,
 *   A_t = delta_t + gamma lam (1 - (terminated_t | truncated_t)) A_{t+1},  returns = A + V.
 * rewards, values (T,B); next_values (T,B) the value of each step's true next observation,
 * or NULL: V_{t+1} = values[t+1] and, after the last step, bootstrap (B,) (NULL: 0);
 * terminated / truncated (T,B) uint8 or NULL (truncated needs next_values: the value of the
 * observation where the episode was cut); gamma, lam: one per environment (B,).
 * Outputs advantages (T,B) and returns (T,B) (NULL: not computed). A NaN or inf in the
 * inputs gives PGM_ERR_ARGUMENT (the outputs are then written but meaningless). */
PGM_C_API int pgm_gae_f64(const double* rewards, const double* values, const double* next_values,
                          const double* bootstrap, const uint8_t* terminated, const uint8_t* truncated,
                          const double* gamma, const double* lam, int64_t T, int64_t B, double* advantages,
                          double* returns);
PGM_C_API int pgm_gae_f32(const float* rewards, const float* values, const float* next_values, const float* bootstrap,
                          const uint8_t* terminated, const uint8_t* truncated, const float* gamma, const float* lam,
                          int64_t T, int64_t B, float* advantages, float* returns);

/* MuZero (PUCT) search on a tabular model, one tree per root state (pygenmod.mcts.muzero_policy
 * with a pygenmod.mcts.tabular_model, no Dirichlet noise). The model, (S, A) arrays:
 * next_state int64, reward, discount (negative: the player changed), logits (the prior
 * logits shifted by their max over valid actions, -inf where invalid), prior (their softmax),
 * invalid uint8 (1 = invalid; a terminal state has every action invalid and value 0);
 * value (S,). roots (B,) the root states (not terminal). pb_c_init, pb_c_base: PUCT's
 * constants (mctx: 1.25, 19652). Outputs: visit_counts (B, A) int32 (the root children's
 * visits), root_value (B,) (the root's mean backed-up value). */
PGM_C_API int pgm_mcts_search_tabular_f64(const int64_t* next_state, const double* reward, const double* discount,
                                          const double* logits, const double* prior, const double* value,
                                          const uint8_t* invalid, int64_t S, int64_t A, const int64_t* roots, int64_t B,
                                          int64_t num_simulations, double pb_c_init, double pb_c_base,
                                          int32_t* visit_counts, double* root_value);
PGM_C_API int pgm_mcts_search_tabular_f32(const int64_t* next_state, const float* reward, const float* discount,
                                          const float* logits, const float* prior, const float* value,
                                          const uint8_t* invalid, int64_t S, int64_t A, const int64_t* roots, int64_t B,
                                          int64_t num_simulations, double pb_c_init, double pb_c_base,
                                          int32_t* visit_counts, float* root_value);

#ifdef __cplusplus
}
#endif

#endif /* PYGENMOD_C_H */
