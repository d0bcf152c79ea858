/* The C API from C (the header compiles as C99; every function is checked by hand-computed
 * answers and one error path each). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "pygenmod_c.h"

static int failures = 0;
#define CHECK(cond)                                                   \
  do {                                                                \
    if (!(cond)) {                                                    \
      ++failures;                                                     \
      fprintf(stderr, "%s:%d: FAILED: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                 \
  } while (0)

int main(void) {
  /* Bellman: S = 2, A = 2. From state 0, action 0 stays (reward 0), action 1 goes to 1
   * (reward 1); state 1 is absorbing with reward 0. V = (10, 20), gamma = 0.5:
   * Q(0) = (0 + 5, 1 + 10) = (5, 11), Q(1) = (10, 10): V' = (11, 10), policy (1, 0). */
  const double P[8] = {1, 0, 0, 1, 0, 1, 0, 1}, R[4] = {0, 1, 0, 0}, V[2] = {10, 20}, gamma = 0.5;
  double Q[4], Vo[2];
  int64_t pi[2];
  CHECK(pgm_bellman_backup_f64(P, R, V, &gamma, 1, 2, 2, PGM_BACKUP_OPTIMAL, NULL, NULL, NULL, Q, Vo, pi) == PGM_OK);
  CHECK(Q[0] == 5 && Q[1] == 11 && Q[2] == 10 && Q[3] == 10);
  CHECK(Vo[0] == 11 && Vo[1] == 10 && pi[0] == 1 && pi[1] == 0);
  CHECK(pgm_bellman_backup_f64(P, R, V, &gamma, 1, 2, 2, PGM_BACKUP_POLICY, NULL, NULL, NULL, Q, Vo, pi) ==
        PGM_ERR_ARGUMENT);
  CHECK(strstr(pgm_last_error(), "pi_det") != NULL);

  /* GAE, T = 3, B = 1, gamma = 0.5, lam = 0.5, r = 1, V = 0, terminated at t = 2:
   * A_2 = 1, A_1 = 1 + 0.25 * 1 = 1.25, A_0 = 1 + 0.25 * 1.25 = 1.3125. */
  const float r[3] = {1, 1, 1}, v[3] = {0, 0, 0}, g = 0.5f, l = 0.5f;
  const uint8_t term[3] = {0, 0, 1};
  float adv[3], ret[3];
  CHECK(pgm_gae_f32(r, v, NULL, NULL, term, NULL, &g, &l, 3, 1, adv, ret) == PGM_OK);
  CHECK(adv[2] == 1.0f && adv[1] == 1.25f && adv[0] == 1.3125f && ret[0] == 1.3125f);
  CHECK(pgm_gae_f32(NULL, v, NULL, NULL, term, NULL, &g, &l, 3, 1, adv, ret) == PGM_ERR_ARGUMENT);
  CHECK(pgm_gae_f32(r, v, NULL, NULL, term, term, &g, &l, 3, 1, adv, ret) == PGM_ERR_ARGUMENT);
  CHECK(strstr(pgm_last_error(), "next_values") != NULL);

  /* MCTS: the hand-computed tree of test_mcts.cpp (6 simulations: visits (5, 1), value 5/7). */
  const int64_t ns[6] = {1, 2, 1, 2, 2, 2}, roots[2] = {0, 0};
  const double rw[6] = {1, 0, 0, 0, 0, 0}, disc[6] = {1, 1, 1, 1, 1, 1}, val[3] = {0, 0, 0};
  const double lg[6] = {0, 0, -INFINITY, -INFINITY, -INFINITY, -INFINITY}, pr[6] = {0.5, 0.5, 0, 0, 0, 0};
  const uint8_t inv[6] = {0, 0, 1, 1, 1, 1};
  int32_t counts[4];
  double rv[2];
  CHECK(pgm_mcts_search_tabular_f64(ns, rw, disc, lg, pr, val, inv, 3, 2, roots, 2, 6, 1.25, 19652, counts, rv) ==
        PGM_OK);
  CHECK(counts[0] == 5 && counts[1] == 1 && counts[2] == 5 && counts[3] == 1);
  CHECK(fabs(rv[0] - 5.0 / 7.0) < 1e-12 && fabs(rv[1] - 5.0 / 7.0) < 1e-12);
  const int64_t bad_root[1] = {1}; /* terminal */
  CHECK(pgm_mcts_search_tabular_f64(ns, rw, disc, lg, pr, val, inv, 3, 2, bad_root, 1, 6, 1.25, 19652, counts, rv) ==
        PGM_ERR_ARGUMENT);
  CHECK(strstr(pgm_last_error(), "terminal") != NULL);
  CHECK(strlen(pgm_version()) > 0);
  CHECK(pgm_set_num_threads(0) == PGM_ERR_ARGUMENT && strstr(pgm_last_error(), "n:") != NULL);
  CHECK(pgm_set_num_threads(3) == PGM_OK && pgm_get_num_threads() == 3);
  CHECK(pgm_set_num_threads(2) == PGM_OK && pgm_get_num_threads() == 2);

  if (failures) {
    fprintf(stderr, "test_capi: %d check(s) failed\n", failures);
    return 1;
  }
  printf("test_capi: all checks passed\n");
  return 0;
}
