/* A consumer of the C API target pygenmod::c. */
#include <stdio.h>

#include "pygenmod_c.h"

int main(void) {
  const double r[2] = {1, 1}, v[2] = {0, 0}, g = 0.5, l = 1.0;
  double adv[2];
  const int rc = pgm_gae_f64(r, v, NULL, NULL, NULL, NULL, &g, &l, 2, 1, adv, NULL);
  printf("consumer_c: pygenmod %s, A_0 = %g\n", pgm_version(), adv[0]);
  return rc == PGM_OK && adv[0] == 1.5 ? 0 : 1;
}
