// A minimal check harness for the C++ tests (no test framework to fetch: the suite builds
// offline). CHECK* record failures with file:line; finish() prints a summary and returns the
// process exit code that ctest reads.
#pragma once

#include <cmath>
#include <cstdio>

namespace check {
inline int& failures() {
  static int n = 0;
  return n;
}
inline void fail(const char* file, int line, const char* what) {
  ++failures();
  std::fprintf(stderr, "%s:%d: FAILED: %s\n", file, line, what);
}
inline void near(double got, double want, double tol, const char* expr, const char* file, int line) {
  if (std::fabs(got - want) <= tol) return;
  ++failures();
  std::fprintf(stderr, "%s:%d: FAILED: %s = %.17g, expected %.17g (tol %g)\n", file, line, expr, got, want, tol);
}
inline int finish(const char* name) {
  if (failures() == 0) {
    std::printf("%s: all checks passed\n", name);
    return 0;
  }
  std::fprintf(stderr, "%s: %d check(s) failed\n", name, failures());
  return 1;
}
}  // namespace check

#define CHECK(cond) ((cond) ? (void)0 : check::fail(__FILE__, __LINE__, #cond))
#define CHECK_NEAR(got, want, tol) check::near((got), (want), (tol), #got, __FILE__, __LINE__)
