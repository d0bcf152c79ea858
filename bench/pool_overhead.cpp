// pygenmod's thread pool against an OpenMP parallel-for on the same short loop: the per-call
// time of a loop of `items` independent items (`reps` dependent multiply-adds each; the
// serial row gives the loop's time on one thread), quiet and with one other process spinning
// on one core (started here with fork), 200 us of other work between calls. Median, 99th
// percentile and worst call.
//
//   g++ -std=c++17 -O2 -fopenmp -pthread -Icsrc/include bench/pool_overhead.cpp -o /tmp/pool_overhead
//   GOMP_SPINCOUNT=1000 /tmp/pool_overhead            # libgomp with pygenmod's former setting
//
// Without a busy core both take about the loop's half time plus a wake-up; with a busy core the
// OpenMP region waits at its join barrier for the thread that shares the busy core, the pool's
// caller does that thread's chunks itself.
#include <omp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <vector>

#include "pygenmod/parallel.hpp"

using pygenmod::index_t;
using clk = std::chrono::steady_clock;

static double work_item(index_t i, int reps) {
  double x = 1.0 + 1e-9 * static_cast<double>(i);
  for (int r = 0; r < reps; ++r) x = x * 1.0000001 + 1e-12;
  return x;
}

template <class F>
static void measure(const char* name, int calls, F&& f) {
  std::vector<double> us;
  for (int c = 0; c < calls; ++c) {
    const auto t0 = clk::now();
    f();
    us.push_back(std::chrono::duration<double, std::micro>(clk::now() - t0).count());
    // a gap between calls, as in a loop that does other work (lets workers go to sleep)
    const auto g0 = clk::now();
    while (clk::now() - g0 < std::chrono::microseconds(200)) {
    }
  }
  std::sort(us.begin(), us.end());
  std::printf("  %-28s median %8.1f us   p99 %8.1f us   max %8.1f us\n", name, us[us.size() / 2],
              us[us.size() * 99 / 100], us.back());
}

static void run_all(index_t items, int reps, int calls) {
  std::vector<double> out(static_cast<std::size_t>(items));
  const index_t chunk = pygenmod::share_chunk(items);
  measure("serial", calls, [&] {
    for (index_t i = 0; i < items; ++i) out[i] = work_item(i, reps);
  });
  measure("OpenMP dynamic", calls, [&] {
#pragma omp parallel for schedule(dynamic, chunk)
    for (index_t i = 0; i < items; ++i) out[i] = work_item(i, reps);
  });
  measure("pygenmod pool", calls,
          [&] { pygenmod::parallel_for(items, chunk, true, [&](index_t i) { out[i] = work_item(i, reps); }); });
}

int main(int argc, char** argv) {
  const int calls = argc > 1 ? std::atoi(argv[1]) : 2000;
  const int threads = omp_get_max_threads();
  pygenmod::threads::pool().set_threads(threads);
  std::printf("threads %d (OpenMP and pool); %d calls per row\n", threads, calls);
  for (const auto& [items, reps] : {std::pair<index_t, int>{256, 100}, {256, 1000}, {4096, 100}}) {
    std::printf("loop of %ld items x %d multiply-adds, quiet\n", static_cast<long>(items), reps);
    run_all(items, reps, calls);
    const pid_t hog = fork();
    if (hog == 0) {
      for (volatile double x = 0;; x += 1) {
      }
    }
    std::printf("loop of %ld items x %d multiply-adds, one other process busy\n", static_cast<long>(items), reps);
    run_all(items, reps, calls);
    kill(hog, SIGKILL);
    waitpid(hog, nullptr, 0);
  }
  return 0;
}
