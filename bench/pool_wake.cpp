// Where a sleeping pool worker runs when a call wakes it: a 16-chunk loop (chunks of
// `chunk_us` of arithmetic, 600 by default: ~4.8 ms on two threads, ~9.6 ms on one) after
// `gap_ms` of idling; per call its time, when the first worker chunk started and the CPU of
// every chunk (c: the caller, w: a worker), then the median and worst call. A worker queued
// behind the caller on the caller's CPU makes the loop run at one thread's speed while the
// other CPU idles.
//
//   g++ -std=c++17 -O2 -pthread -Icsrc/include bench/pool_wake.cpp -o /tmp/pool_wake
//   /tmp/pool_wake 200 8          # gap in ms (fractions too), calls
//   /tmp/pool_wake 20 150 100 q   # gap, calls, chunk us; q: only the summary
//
// Add -DPGM_POOL_NO_STEER to build the pool without steering late workers off the caller's
// CPU (the behaviour before it), for comparison on the same machine.
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <vector>
#include <cstdlib>
#include <thread>

#include "pygenmod/thread_pool.hpp"

using pygenmod::index_t;
using clk = std::chrono::steady_clock;

namespace {
constexpr int kChunks = 16;
int chunk_us = 600;

struct Trace {
  clk::time_point t0;
  int slot[kChunks];
  int cpu[kChunks];
  double start_us[kChunks];
};

void spin_chunk(void* ctx, index_t b, index_t, int slot) {
  Trace& tr = *static_cast<Trace*>(ctx);
  tr.slot[b] = slot;
  tr.cpu[b] = sched_getcpu();
  tr.start_us[b] = std::chrono::duration<double, std::micro>(clk::now() - tr.t0).count();
  const auto t = clk::now();
  while (clk::now() - t < std::chrono::microseconds(chunk_us)) {
  }
}
}  // namespace

int main(int argc, char** argv) {
  const double gap_ms = argc > 1 ? std::atof(argv[1]) : 200;
  const int calls = std::max(1, argc > 2 ? std::atoi(argv[2]) : 8);
  chunk_us = argc > 3 ? std::atoi(argv[3]) : 600;
  const bool quiet = argc > 4 && std::strcmp(argv[4], "q") == 0;
  pygenmod::threads::Pool& pool = pygenmod::threads::pool();
  pool.set_threads(2);
  std::vector<double> totals;
  for (int c = 0; c < calls; ++c) {
    std::this_thread::sleep_for(std::chrono::microseconds(static_cast<long>(gap_ms * 1000)));
    Trace tr;
    tr.t0 = clk::now();
    pool.run(kChunks, 1, spin_chunk, &tr, pygenmod::Stop::never());
    const double total = std::chrono::duration<double, std::micro>(clk::now() - tr.t0).count();
    totals.push_back(total);
    if (quiet) continue;
    int by_worker = 0;
    double first = -1;
    for (int i = 0; i < kChunks; ++i)
      if (tr.slot[i] != 0) {
        if (first < 0) first = tr.start_us[i];
        ++by_worker;
      }
    std::printf("call %d: %6.0f us, worker chunks %2d, first worker chunk at %6.0f us, CPUs:", c, total, by_worker,
                first);
    for (int i = 0; i < kChunks; ++i) std::printf(" %d%c", tr.cpu[i], tr.slot[i] ? 'w' : 'c');
    std::printf("\n");
  }
  std::sort(totals.begin(), totals.end());
  std::printf("gap %g ms, 16 chunks of %d us: median %.1f us, worst %.1f us\n", gap_ms, chunk_us,
              totals[totals.size() / 2], totals.back());
}
