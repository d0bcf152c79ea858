// pygenmod's thread pool (thread_pool.hpp, parallel.hpp): every item runs exactly once for any
// thread count, chunk size and n (0, 1, below and above a chunk); reductions equal the serial
// fold; a caller never waits for a worker that cannot run; a second caller (another thread,
// a loop nested in a chunk) runs serially; a stop ends the loop early; an exception in a
// chunk reaches the caller and the pool stays usable; a forked child gets a working pool; a
// woken worker is kept off the caller's CPU for its job only (Linux).
#include <sys/wait.h>
#include <unistd.h>

#if defined(__linux__)
#include <dirent.h>
#include <sched.h>

#include <cstdlib>
#endif

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "check.hpp"
#include "pygenmod/parallel.hpp"

using pygenmod::index_t;
namespace threads = pygenmod::threads;
using clk = std::chrono::steady_clock;

void check_each_item_once(int nt, index_t n, index_t chunk) {
  threads::pool().set_threads(nt);
  std::vector<std::atomic<int>> hits(static_cast<std::size_t>(n));
  std::atomic<int> bad{0};
  pygenmod::parallel_chunks(n, chunk, true, [&](index_t b, index_t e, int slot) {
    if (slot < 0 || slot >= nt || e - b > chunk || b >= e) bad.fetch_add(1);
    for (index_t i = b; i < e; ++i) hits[static_cast<std::size_t>(i)].fetch_add(1);
  });
  CHECK(bad.load() == 0);
  for (auto& h : hits) CHECK(h.load() == 1);
}

index_t scramble(index_t i) { return (i * 7919) % 1009; }

struct Fold {
  std::int64_t sum = 0;
  index_t mx = -1, chunks = 0;
  void add(const Fold& o) {
    sum += o.sum;
    mx = std::max(mx, o.mx);
    chunks += o.chunks;
  }
};

void check_fold(int nt, index_t n, bool par) {
  threads::pool().set_threads(nt);
  const Fold got = pygenmod::parallel_fold<Fold>(n, 7, par, [](index_t b, index_t e, Fold& a) {
    ++a.chunks;
    for (index_t i = b; i < e; ++i) {
      a.sum += i;
      a.mx = std::max(a.mx, scramble(i));
    }
  });
  index_t mx = -1;
  for (index_t i = 0; i < n; ++i) mx = std::max(mx, scramble(i));
  CHECK(got.sum == n * (n - 1) / 2);
  CHECK(got.mx == mx);
  CHECK(got.chunks == (n == 0 ? 0 : (par && n > 7 ? (n + 6) / 7 : 1)));  // serially: one chunk
}

// Per-thread scratch: each thread's item is made once, on its first chunk, and only used by it.
void check_slots(int nt) {
  threads::pool().set_threads(nt);
  std::atomic<int> made{0};
  auto slots = pygenmod::per_slot([&] {
    made.fetch_add(1);
    return std::vector<index_t>();
  });
  std::vector<std::atomic<int>> hits(1000);
  pygenmod::parallel_for_slots(1000, 3, true, slots, [&](index_t i, std::vector<index_t>& mine) {
    mine.push_back(i);
    hits[static_cast<std::size_t>(i)].fetch_add(1);
  });
  CHECK(made.load() >= 1 && made.load() <= nt);
  index_t total = 0;
  for (int s = 0; s < slots.team(); ++s) total += static_cast<index_t>(slots[s].size());
  CHECK(total == 1000);
  for (auto& h : hits) CHECK(h.load() == 1);
}

// parallel_for_affine runs every item once, whatever the thread count, n and claim order.
void check_affine(int nt, index_t n) {
  threads::pool().set_threads(nt);
  for (int rep = 0; rep < 3; ++rep) {
    std::vector<std::atomic<int>> hits(static_cast<std::size_t>(n));
    pygenmod::parallel_for_affine(n, rep != 2, [&](index_t i) { hits[static_cast<std::size_t>(i)].fetch_add(1); });
    for (auto& h : hits) CHECK(h.load() == 1);
  }
}

// Many back-to-back loops (workers asleep, spinning or mid-wake between them).
void check_many_loops() {
  threads::pool().set_threads(4);
  std::int64_t total = 0;
  for (int rep = 0; rep < 3000; ++rep) {
    std::atomic<std::int64_t> s{0};
    pygenmod::parallel_for(37 + rep % 11, 2, true, [&](index_t i) { s.fetch_add(i); });
    const index_t n = 37 + rep % 11;
    CHECK(s.load() == n * (n - 1) / 2);
    total += s.load();
    if (rep % 500 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));  // workers asleep
  }
  CHECK(total > 0);
}

// Idle polling: a worker polls twice a short gap (a tight loop calling kernels), kSpin after a
// long one, and exactly PYGENMOD_SPIN_US when that is set; loops spaced by such gaps stay correct.
void check_adaptive_polling() {
  using us = std::chrono::microseconds;
  using P = threads::Pool;
  const P::SpinPolicy adaptive{}, fixed{us(10), false};
  CHECK(P::next_spin(us(40), adaptive) == us(80));
  CHECK(P::next_spin(us(5), adaptive) == P::kSpin);
  CHECK(P::next_spin(P::kMaxAdaptiveSpin / 2, adaptive) == P::kMaxAdaptiveSpin);
  CHECK(P::next_spin(P::kMaxAdaptiveSpin / 2 + us(1), adaptive) == P::kSpin);
  CHECK(P::next_spin(std::chrono::seconds(1), adaptive) == P::kSpin);
  CHECK(P::next_spin(us(40), fixed) == us(10));
  threads::pool().set_threads(2);
  for (int rep = 0; rep < 300; ++rep) {
    std::atomic<index_t> s{0};
    pygenmod::parallel_for(100, 1, true, [&](index_t i) { s.fetch_add(i); });
    CHECK(s.load() == 4950);
    std::this_thread::sleep_for(us(rep % 3 == 0 ? 200 : 30));
  }
}

// More threads than this machine has cores, so some workers cannot run when the loop starts:
// every chunk still runs exactly once and the call ends promptly (the caller and the workers
// that do run take the chunks the others never claim).
void check_caller_does_unclaimed_chunks() {
  threads::pool().set_threads(8);  // more threads than this machine may have cores
  std::atomic<int> ran{0};
  const auto t0 = clk::now();
  pygenmod::parallel_chunks(64, 1, true, [&](index_t, index_t, int) { ran.fetch_add(1); });
  CHECK(ran.load() == 64);
  CHECK(clk::now() - t0 < std::chrono::seconds(5));
}

// A second caller while a loop runs, and a loop nested inside a chunk, run serially (slot 0).
void check_concurrent_and_nested() {
  threads::pool().set_threads(2);
  std::atomic<int> nested_bad{0}, total{0};
  pygenmod::parallel_chunks(8, 1, true, [&](index_t, index_t, int) {
    pygenmod::parallel_chunks(16, 1, true, [&](index_t, index_t, int slot) {
      if (slot != 0) nested_bad.fetch_add(1);
      total.fetch_add(1);
    });
  });
  CHECK(nested_bad.load() == 0);
  CHECK(total.load() == 8 * 16);
  std::vector<std::thread> callers;
  std::atomic<std::int64_t> sum{0};
  for (int c = 0; c < 4; ++c)
    callers.emplace_back([&] {
      for (int rep = 0; rep < 200; ++rep) pygenmod::parallel_for(100, 3, true, [&](index_t i) { sum.fetch_add(i); });
    });
  for (auto& t : callers) t.join();
  CHECK(sum.load() == 4 * 200 * (99 * 100 / 2));
}

bool stop_now(void*) { return true; }

void check_stop_and_errors() {
  threads::pool().set_threads(2);
  pygenmod::Stop stop(&stop_now, nullptr);  // stops at its first poll
  std::atomic<int> ran{0};
  pygenmod::parallel_chunks(
      100000, 1, true,
      [&](index_t, index_t, int) {
        ran.fetch_add(1);
        stop.poll();
        std::this_thread::sleep_for(std::chrono::microseconds(10));
      },
      stop);
  CHECK(ran.load() < 100000);
  bool caught = false;
  try {
    pygenmod::parallel_for(1000, 1, true, [&](index_t i) {
      if (i == 500) throw std::runtime_error("chunk 500");
    });
  } catch (const std::runtime_error&) {
    caught = true;
  }
  CHECK(caught);
  check_each_item_once(2, 1000, 3);  // still usable
}

void check_fork() {
  threads::pool().set_threads(2);
  check_each_item_once(2, 1000, 3);  // workers started in the parent
  const pid_t pid = fork();
  if (pid == 0) {
    const int before = check::failures();
    check_each_item_once(2, 1000, 3);
    _exit(check::failures() == before ? 0 : 1);
  }
  int status = 0;
  CHECK(waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

#if defined(__linux__)
// Whether every thread of this process may run on exactly the CPUs in `want` (workers restore
// their mask just after their last chunk: wait for that up to a second).
bool all_threads_allowed(const cpu_set_t& want) {
  for (int tries = 0; tries < 1000; ++tries) {
    bool same = true;
    if (DIR* d = opendir("/proc/self/task")) {
      while (dirent* e = readdir(d)) {
        const long tid = std::strtol(e->d_name, nullptr, 10);
        cpu_set_t got;
        if (tid > 0 && sched_getaffinity(static_cast<pid_t>(tid), sizeof(got), &got) == 0 && !CPU_EQUAL(&got, &want))
          same = false;
      }
      closedir(d);
    }
    if (same) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

// The first CPU of `set`, alone.
cpu_set_t first_cpu_of(const cpu_set_t& set) {
  cpu_set_t one;
  CPU_ZERO(&one);
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) {
      CPU_SET(c, &one);
      break;
    }
  return one;
}

// A job of `chunks` chunks of 1 ms started after the workers have slept (every chunk waits, up
// to 2 s, for a worker to have started one, so a worker takes part even on a loaded machine);
// on_worker(mask) runs in each worker chunk with the mask it runs under.
template <class F>
void job_after_sleep(index_t chunks, F&& on_worker) {
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // workers asleep
  std::atomic<bool> worker_in{false};
  pygenmod::parallel_chunks(chunks, 1, true, [&](index_t, index_t, int slot) {
    const auto t0 = clk::now();
    if (slot > 0) {
      cpu_set_t mine;
      if (sched_getaffinity(0, sizeof(mine), &mine) == 0) on_worker(mine);
      worker_in = true;
    }
    while (!worker_in && clk::now() - t0 < std::chrono::seconds(2)) std::this_thread::yield();
    while (clk::now() - t0 < std::chrono::milliseconds(1)) {
    }
  });
}

// Waking sleeping workers. In a job of fewer than 4 chunks per thread (2 chunks on 2 threads)
// the sleeping worker is steered before the wake: its chunk runs barred from exactly one CPU.
// In a longer job (16 chunks) it is steered only if it joins late: one CPU barred, or none.
// Afterwards every thread may use the process's CPUs again.
void check_wake_steering() {
  cpu_set_t home;
  CHECK(sched_getaffinity(0, sizeof(home), &home) == 0);
  const int all = CPU_COUNT(&home);
  threads::pool().set_threads(2);
  check_each_item_once(2, 1000, 3);  // workers started
  std::atomic<int> runs{0};
  job_after_sleep(2, [&](const cpu_set_t& m) {
    ++runs;
    if (all >= 2) CHECK(CPU_COUNT(&m) == all - 1);
  });
  CHECK(runs > 0);
  CHECK(all_threads_allowed(home));
  job_after_sleep(16, [&](const cpu_set_t& m) { CHECK(CPU_COUNT(&m) == all || CPU_COUNT(&m) == all - 1); });
  CHECK(all_threads_allowed(home));
}

// A mask set from outside is the one a worker keeps. Between jobs (as `taskset -a` sets every
// thread's): steering reads it anew, and with one CPU allowed there is nowhere to steer; a new
// worker starts under it. During a job (a chunk sets its own thread's mask): the worker does
// not restore the mask from before the steering. In a child, so this process's masks stay.
void check_outside_mask_kept() {
  const pid_t pid = fork();
  if (pid == 0) {
    cpu_set_t home;
    bool ok = sched_getaffinity(0, sizeof(home), &home) == 0;
    const cpu_set_t one = first_cpu_of(home);
    const int before = check::failures();
    threads::pool().set_threads(2);
    check_each_item_once(2, 1000, 3);  // the child's workers start with every CPU
    ok = ok && all_threads_allowed(home);
    // during a job: the worker's chunk sets its own mask to one CPU that differs from the
    // steered mask (the CPU it was barred from, else the first)
    std::atomic<long> worker_tid{0};
    cpu_set_t mine_set;
    CPU_ZERO(&mine_set);
    job_after_sleep(2, [&](const cpu_set_t& mine) {
      cpu_set_t barred = home;
      for (int c = 0; c < CPU_SETSIZE; ++c)
        if (CPU_ISSET(c, &mine)) CPU_CLR(c, &barred);
      mine_set = first_cpu_of(CPU_COUNT(&barred) > 0 ? barred : home);
      sched_setaffinity(0, sizeof(mine_set), &mine_set);
      worker_tid = static_cast<long>(gettid());
    });
    cpu_set_t got;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ok = ok && worker_tid != 0 && sched_getaffinity(static_cast<pid_t>(worker_tid), sizeof(got), &got) == 0 &&
         CPU_EQUAL(&got, &mine_set);
    // between jobs: every thread to one CPU
    if (DIR* d = opendir("/proc/self/task")) {
      while (dirent* e = readdir(d)) {
        const long tid = std::strtol(e->d_name, nullptr, 10);
        if (tid > 0) ok = ok && sched_setaffinity(static_cast<pid_t>(tid), sizeof(one), &one) == 0;
      }
      closedir(d);
    }
    job_after_sleep(2, [](const cpu_set_t&) {});
    job_after_sleep(16, [](const cpu_set_t&) {});
    threads::pool().set_threads(3);  // a new worker, started under the one-CPU mask
    check_each_item_once(3, 1000, 3);
    ok = ok && all_threads_allowed(one);
    _exit(ok && check::failures() == before ? 0 : 1);
  }
  int status = 0;
  CHECK(waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}
#endif

int main() {
  for (int nt : {1, 2, 3, 8})
    for (index_t n : {0, 1, 5, 64, 1000, 4097})
      for (index_t chunk : {1, 3, 64, 5000}) check_each_item_once(nt, n, chunk);
  for (int nt : {1, 2, 5})
    for (index_t n : {0, 1, 6, 7, 8, 1000})
      for (bool par : {false, true}) check_fold(nt, n, par);
  for (int nt : {1, 2, 3}) check_slots(nt);
  for (int nt : {1, 2, 3, 8})
    for (index_t n : {0, 1, 7, 16, 17, 255, 256, 1000}) check_affine(nt, n);
  check_many_loops();
  check_adaptive_polling();
  check_caller_does_unclaimed_chunks();
  check_concurrent_and_nested();
  check_stop_and_errors();
  check_fork();
#if defined(__linux__)
  check_wake_steering();
  check_outside_mask_kept();
#endif
  return check::finish("thread_pool");
}
