// pygenmod's CPU thread pool: persistent workers that sleep when idle, and a calling thread
// that never waits for a worker that has not started.
//
// Why not OpenMP: a parallel region ends at a join barrier that waits for every thread of the
// team. When one of them is descheduled (its core is busy with another process, or with
// OpenBLAS's polling threads), the caller waits a scheduler time slice for a thread that
// then finds nothing left to do; a 36 us sweep took ~120 us. Here the work is a list of
// chunks that threads claim one at a time; the call returns when every *claimed* chunk is
// done, so a worker that wakes late finds the job gone and goes back to sleep.
//
// Protocol. `ticket_` packs (generation << 32 | next unclaimed chunk). The caller closes the
// ticket (index kClosed), writes the job's fields, then opens it with index 0 (release). A
// thread claims chunk i by a CAS from (gen, i) to (gen, i + 1): the CAS can only succeed while
// that job is open, and the job's fields do not change until all its chunks are claimed and
// done, so fields read before a successful CAS belong to that job (the fences below order
// the relaxed reads). One job runs at a time: a second caller (another Python thread, a
// kernel nested in a chunk) runs its loop serially instead of queueing.
//
// Waking. Linux sometimes queues a woken worker on the waking caller's core even when another
// core is idle (on a 2-vCPU cloud VM, after >= 2 ms of idling: a 1.6 ms loop then ran at one
// thread's speed in every call). So on Linux the caller steers late workers: once it has
// worked kSteerAfter on a job that a worker has not joined while chunks remain, it bars that
// worker from its own CPU (the kernel then moves it; at most kMaxSteered workers a job). In a
// job of fewer than 4 chunks per thread (the caller would notice too late) it steers the
// sleeping workers before waking them. A steered worker restores its mask when it leaves the
// job, and at the latest before it sleeps; if the mask was changed from outside meanwhile
// (taskset -a, a cpuset), it keeps that one. Short jobs are left alone: a woken core is slow
// at first, and a worker that arrives near the end of a short job only delays it. Threads
// that a chunk starts inherit the steered mask. bench/pool_wake.cpp measures it
// (-DPGM_POOL_NO_STEER builds the pool without).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#include <sched.h>
#endif
#if defined(__linux__) && !defined(__ANDROID__) && !defined(PGM_POOL_NO_STEER)
#define PGM_POOL_STEER 1
#endif

#include "pygenmod/common.hpp"
#include "pygenmod/interrupt.hpp"

namespace pygenmod::threads {

// One chunk [begin, end) of a loop; slot < the team size names the thread running it
// (0: the caller), for per-thread scratch.
using ChunkFn = void (*)(void* ctx, index_t begin, index_t end, int slot);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Threads the pool uses by default: OMP_NUM_THREADS (its first value) when set, as a user of
// an OpenMP library expects; else the CPUs this process may run on.
inline int default_thread_count() {
  if (const char* env = std::getenv("OMP_NUM_THREADS")) {
    const long n = std::strtol(env, nullptr, 10);
    if (n >= 1) return static_cast<int>(std::min<long>(n, 1024));
  }
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
#endif
  return std::max(1u, std::thread::hardware_concurrency());
}

class Pool {
 public:
  // How long an idle worker (and a caller waiting for the last chunks) polls before it
  // sleeps: 30 us. Long enough that the back-to-back loops of one call (the sweeps of a
  // solver) find the workers awake; short enough that an idle worker hands its core back to
  // BLAS, torch or another process at once (libgomp's default spins ~100x longer).
  static constexpr std::chrono::microseconds kSpin{30};
  // A worker that has just seen a job arrive within a few tens of microseconds of its last one
  // (a Python loop calling a kernel per step, such as the MCTS callback search) polls twice
  // that gap, up to this long, so that the next job finds it awake. After a longer gap (code
  // between the calls that runs its own threads, such as a torch op) it polls kSpin: polling
  // would take a core from those threads.
  static constexpr std::chrono::microseconds kMaxAdaptiveSpin{150};
  // PYGENMOD_SPIN_US fixes the polling time instead (0: sleep at once).
  // `python bench/interleaved.py policy` measures the choices.
  struct SpinPolicy {
    std::chrono::microseconds base = kSpin;
    bool adaptive = true;
  };
  static SpinPolicy spin_from_env() {
    const char* env = std::getenv("PYGENMOD_SPIN_US");
    if (!env) return {};
    return {std::chrono::microseconds(std::clamp<long>(std::strtol(env, nullptr, 10), 0, 1000000)), false};
  }

  // The next polling time after a gap of `gap` between this worker's last job and the next.
  static std::chrono::nanoseconds next_spin(std::chrono::nanoseconds gap, const SpinPolicy& p) {
    if (!p.adaptive || 2 * gap > kMaxAdaptiveSpin) return p.base;
    return std::max<std::chrono::nanoseconds>(2 * gap, p.base);
  }

  Pool() : count_(default_thread_count()), state_(new State(spin_from_env())) {
#if defined(__unix__) || defined(__APPLE__)
    // The pool's threads do not exist in a forked child: give the child a fresh, empty
    // pool (the old state is leaked: its mutex may be held by a thread that is gone).
    static Pool* self = nullptr;
    self = this;
    pthread_atfork(nullptr, nullptr, [] {
      self->state_.store(new State(self->state_.load(std::memory_order_relaxed)->policy), std::memory_order_relaxed);
    });
#endif
  }
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  int threads() const { return count_.load(std::memory_order_relaxed); }
  void set_threads(int n) { count_.store(std::max(1, n), std::memory_order_relaxed); }
  // Workers started so far (they are started when a loop first needs them).
  int started() {
    State& s = *state_.load(std::memory_order_relaxed);
    std::lock_guard<std::mutex> lk(s.m);
    return static_cast<int>(s.workers);
  }

  // Runs fn over [0, n) in chunks of `chunk` items on up to threads() threads, the caller
  // included; returns when every chunk has run. After `stop` is set no new chunk starts.
  // An exception thrown by fn is rethrown here (the first one; no new chunk starts after it).
  // max_team > 0 caps the threads (and so the slots) of this loop.
  void run(index_t n, index_t chunk, ChunkFn fn, void* ctx, Stop& stop, int max_team = 0) {
    if (n <= 0) return;
    chunk = std::max<index_t>(1, chunk);
    if ((n + chunk - 1) / chunk > kMaxChunks) chunk = (n + kMaxChunks - 1) / kMaxChunks;
    const index_t nchunks = (n + chunk - 1) / chunk;
    int team = static_cast<int>(std::min<index_t>(threads(), nchunks));
    if (max_team > 0) team = std::min(team, max_team);
    State& s = *state_.load(std::memory_order_relaxed);
    if (team <= 1 || s.busy.exchange(true, std::memory_order_acquire)) {
      for (index_t b = 0; b < n && !stop.stopped(); b += chunk) fn(ctx, b, std::min(n, b + chunk), 0);
      return;
    }
    const bool started = ensure_workers(s, team - 1);
    const bool few = nchunks < 4 * static_cast<index_t>(team);  // the caller's watch would be late
    const std::uint64_t gen = ((s.ticket.load(std::memory_order_relaxed) >> 32) + 1) & 0xffffffffu;
    s.ticket.store(gen << 32 | kClosed, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    s.fn.store(fn, std::memory_order_relaxed);
    s.ctx.store(ctx, std::memory_order_relaxed);
    s.n.store(n, std::memory_order_relaxed);
    s.chunk.store(chunk, std::memory_order_relaxed);
    s.nchunks.store(nchunks, std::memory_order_relaxed);
    s.team.store(team, std::memory_order_relaxed);
    s.stop.store(&stop, std::memory_order_relaxed);
    s.done.store(0, std::memory_order_relaxed);
    s.error = nullptr;
    s.ticket.store(gen << 32, std::memory_order_release);
    bool wake;
    {
      std::lock_guard<std::mutex> lk(s.m);
      wake = s.sleepers > 0 || started;
      if (wake && few) steer(s, gen, team - 1, /*sleepers_only=*/true);
    }
    if (wake) s.work_cv.notify_all();

    CallerWatch watch{{}, wake && !few, team - 1};
    if (watch.armed) watch.t0 = std::chrono::steady_clock::now();
    work(s, gen, 0, &watch);
    // Out of unclaimed chunks: wait for those still running on workers (not for workers that
    // never started). After a stop or an error, the unclaimed rest counts as done.
    const auto t0 = std::chrono::steady_clock::now();
    for (int polls = 0; s.done.load(std::memory_order_acquire) < nchunks; ++polls) {
      if (stop.poll() || s.failed.load(std::memory_order_relaxed)) close_rest(s, gen);
      if (polls % 64 != 0) {
        cpu_relax();
        continue;
      }
      if (std::chrono::steady_clock::now() - t0 < s.policy.base) {
        if (polls % kYieldEvery == 0) std::this_thread::yield();
        continue;
      }
      // Sleeping frees this core: a descheduled worker holding the last chunk can run here.
      std::unique_lock<std::mutex> lk(s.m);
      s.caller_waiting = true;
      s.done_cv.wait_for(lk, std::chrono::milliseconds(stop.is_owner() ? 10 : 100),
                         [&] { return s.done.load(std::memory_order_acquire) >= nchunks; });
      s.caller_waiting = false;
    }
    std::exception_ptr err = s.error;
    s.failed.store(false, std::memory_order_relaxed);
    s.busy.store(false, std::memory_order_release);
    if (err) std::rethrow_exception(err);
  }

 private:
  static constexpr std::uint32_t kClosed = 0xffffffffu;
  // While polling, a thread yields its core every this many polls (a few microseconds): a
  // thread the scheduler queued on the same core (often the caller, right after it woke this
  // worker) then runs at once instead of after the whole polling time.
  static constexpr int kYieldEvery = 256;
  // How long the caller works on a job before it steers workers that have not joined it, and
  // how many it steers at most (two syscalls each, under the pool's lock).
  static constexpr std::chrono::microseconds kSteerAfter{100};
  static constexpr int kMaxSteered = 8;
  static constexpr index_t kMaxChunks = index_t(1) << 30;

  // A worker as its caller sees it. handle, home, away and asleep are guarded by State::m;
  // joined is the worker's own (read by the caller); steered is set and cleared under m (the
  // worker may read it without m first: a stale false only delays its restore to its sleep).
  struct Worker {
#if defined(PGM_POOL_STEER)
    pthread_t handle{};
    cpu_set_t home;  // its mask before it was steered (what it restores)
    cpu_set_t away;  // the mask the steering set
#endif
    bool asleep = false;
    std::atomic<std::uint64_t> joined{~std::uint64_t(0)};  // the generation of the last job it joined
    std::atomic<bool> steered{false};
  };

  // The caller's side of a job, checked between its chunks: whether it may still steer.
  struct CallerWatch {
    std::chrono::steady_clock::time_point t0;
    bool armed;
    int workers;  // the job's workers: roster[0, workers)
  };

  struct State {
    explicit State(SpinPolicy policy_) : policy(policy_) {}
    const SpinPolicy policy;  // base: the caller's polling for the last chunks, and the workers' least
    std::mutex m;
    std::condition_variable work_cv, done_cv;
    index_t workers = 0;                          // started (guarded by m)
    std::vector<std::unique_ptr<Worker>> roster;  // one per started worker (guarded by m)
    int sleepers = 0;                             // workers waiting on work_cv (guarded by m)
    bool caller_waiting = false;
    std::atomic<bool> busy{false}, failed{false};
    // The job's fields (read-mostly), then the two counters every chunk writes, each on its
    // own cache line so that claiming and finishing do not invalidate the fields' line.
    std::atomic<ChunkFn> fn{nullptr};
    std::atomic<void*> ctx{nullptr};
    std::atomic<index_t> n{0}, chunk{1}, nchunks{0};
    std::atomic<int> team{0};
    std::atomic<Stop*> stop{nullptr};
    alignas(64) std::atomic<std::uint64_t> ticket{0};
    alignas(64) std::atomic<index_t> done{0};
    std::exception_ptr error;  // guarded by m; read by the caller after every chunk is done
  };

  // Claims and runs chunks of job `gen` until none is left (or the job is no longer `gen`).
  // The caller passes its watch: after each of its chunks it may steer late workers.
  static void work(State& s, std::uint64_t gen, int slot, CallerWatch* watch = nullptr) {
    for (;;) {
      std::uint64_t t = s.ticket.load(std::memory_order_acquire);
      if (t >> 32 != gen) return;
      const std::uint32_t i = static_cast<std::uint32_t>(t);
      if (i == kClosed) {  // being written: open in a moment
        cpu_relax();
        continue;
      }
      const index_t nchunks = s.nchunks.load(std::memory_order_relaxed);
      const int team = s.team.load(std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_acquire);
      if (i >= nchunks || slot >= team) return;
      if (!s.ticket.compare_exchange_weak(t, t + 1, std::memory_order_acq_rel, std::memory_order_relaxed)) continue;
      // Chunk i of job gen is ours: the job is live, so its fields (and *stop) are valid.
      Stop& stop = *s.stop.load(std::memory_order_relaxed);
      if (stop.stopped() || s.failed.load(std::memory_order_relaxed)) {
        s.done.fetch_add(1, std::memory_order_release);
        if (slot == 0) close_rest(s, gen);
        return;
      }
      const ChunkFn fn = s.fn.load(std::memory_order_relaxed);
      void* ctx = s.ctx.load(std::memory_order_relaxed);
      const index_t n = s.n.load(std::memory_order_relaxed), chunk = s.chunk.load(std::memory_order_relaxed);
      const index_t b = static_cast<index_t>(i) * chunk;
      try {
        fn(ctx, b, std::min(n, b + chunk), slot);
      } catch (...) {
        std::lock_guard<std::mutex> lk(s.m);
        if (!s.error) s.error = std::current_exception();
        s.failed.store(true, std::memory_order_relaxed);
      }
      if (s.done.fetch_add(1, std::memory_order_acq_rel) + 1 == nchunks && slot > 0) {
        std::lock_guard<std::mutex> lk(s.m);
        if (s.caller_waiting) s.done_cv.notify_one();
      }
      if (watch && watch->armed && std::chrono::steady_clock::now() - watch->t0 >= kSteerAfter) {
        watch->armed = false;
        const std::uint64_t now = s.ticket.load(std::memory_order_relaxed);
        if (now >> 32 == gen && static_cast<index_t>(static_cast<std::uint32_t>(now)) < nchunks) {
          std::lock_guard<std::mutex> lk(s.m);
          steer(s, gen, watch->workers, /*sleepers_only=*/false);
        }
      }
    }
  }

  // Claims every chunk not yet claimed and counts it as done (after a stop or an error).
  static void close_rest(State& s, std::uint64_t gen) {
    const index_t nchunks = s.nchunks.load(std::memory_order_relaxed);
    std::uint64_t t = s.ticket.load(std::memory_order_relaxed);
    while (t >> 32 == gen && static_cast<index_t>(static_cast<std::uint32_t>(t)) < nchunks &&
           !s.ticket.compare_exchange_weak(t, gen << 32 | static_cast<std::uint64_t>(nchunks),
                                           std::memory_order_acq_rel)) {
    }
    if (t >> 32 == gen && static_cast<index_t>(static_cast<std::uint32_t>(t)) < nchunks)
      s.done.fetch_add(nchunks - static_cast<index_t>(static_cast<std::uint32_t>(t)), std::memory_order_release);
  }

  // Starts workers up to `want` (before the next job is published: they wait for it); whether
  // it started any.
  static bool ensure_workers(State& s, index_t want) {
    std::lock_guard<std::mutex> lk(s.m);
    const index_t before = s.workers;
    const std::uint64_t seen = s.ticket.load(std::memory_order_relaxed) >> 32;
    for (; s.workers < want; ++s.workers) {
      try {
        s.roster.push_back(std::make_unique<Worker>());
        Worker& w = *s.roster.back();
        try {
          std::thread t(worker_main, &s, &w, static_cast<int>(s.workers) + 1, seen);
#if defined(PGM_POOL_STEER)
          w.handle = t.native_handle();
#endif
          t.detach();
        } catch (...) {
          s.roster.pop_back();
          throw;
        }
      } catch (const std::exception&) {  // no more threads: the others share the work
        break;
      }
    }
    return s.workers > before;
  }

  // Bars worker w from `cpu` until it restores its mask (caller holds s.m), if w may run
  // elsewhere. Its mask is read anew unless it is still steered, so a mask set from outside
  // (taskset -a, a cpuset) between jobs is the one it keeps.
  static void steer_off(Worker& w, int cpu) {
#if defined(PGM_POOL_STEER)
    if (cpu < 0 || cpu >= CPU_SETSIZE) return;
    if (!w.steered.load(std::memory_order_relaxed) && pthread_getaffinity_np(w.handle, sizeof(cpu_set_t), &w.home) != 0)
      return;
    if (!CPU_ISSET(cpu, &w.home) || CPU_COUNT(&w.home) < 2) return;
    w.away = w.home;
    CPU_CLR(cpu, &w.away);
    if (pthread_setaffinity_np(w.handle, sizeof(cpu_set_t), &w.away) == 0)
      w.steered.store(true, std::memory_order_relaxed);
#else
    (void)w, (void)cpu;
#endif
  }

  // Steers up to kMaxSteered of the job's workers roster[0, workers) off the caller's CPU
  // (caller holds s.m): those asleep (sleepers_only: before the wake), else those that have
  // not joined job `gen`.
  static void steer(State& s, std::uint64_t gen, int workers, bool sleepers_only) {
#if defined(PGM_POOL_STEER)
    const int cpu = sched_getcpu();
    const std::size_t n = std::min<std::size_t>(static_cast<std::size_t>(std::max(workers, 0)), s.roster.size());
    int steered = 0;
    for (std::size_t i = 0; i < n && steered < kMaxSteered; ++i) {
      Worker& w = *s.roster[i];
      if (sleepers_only ? !w.asleep : w.joined.load(std::memory_order_relaxed) == gen) continue;
      steer_off(w, cpu);
      ++steered;
    }
#else
    (void)s, (void)gen, (void)workers, (void)sleepers_only;
#endif
  }

  // The worker's side (holding s.m): back to its mask from before the steering, unless its
  // mask was changed from outside meanwhile (then that one stays). A failed restore leaves it
  // steered, so the next steering does not take the barred mask for its own.
  static void restore_home_locked(Worker& w) {
#if defined(PGM_POOL_STEER)
    if (!w.steered.load(std::memory_order_relaxed)) return;
    cpu_set_t now;
    if (pthread_getaffinity_np(pthread_self(), sizeof(cpu_set_t), &now) == 0 && !CPU_EQUAL(&now, &w.away)) {
      w.steered.store(false, std::memory_order_relaxed);
      return;
    }
    if (pthread_setaffinity_np(pthread_self(), sizeof(cpu_set_t), &w.home) == 0)
      w.steered.store(false, std::memory_order_relaxed);
#else
    (void)w;
#endif
  }

  static void worker_main(State* sp, Worker* me, int slot, std::uint64_t seen) {
    State& s = *sp;
    std::chrono::nanoseconds spin = s.policy.base;
    for (;;) {
      // Poll for `spin`, then sleep until a new job is published.
      const auto t0 = std::chrono::steady_clock::now();
      std::uint64_t gen = seen;
      for (int polls = 1; (gen = s.ticket.load(std::memory_order_acquire) >> 32) == seen; ++polls) {
        if (polls % 64 == 0) {
          if (std::chrono::steady_clock::now() - t0 >= spin) break;
          if (polls % kYieldEvery == 0) std::this_thread::yield();
        }
        cpu_relax();
      }
      if (gen == seen) {
        std::unique_lock<std::mutex> lk(s.m);
        restore_home_locked(*me);  // a steering that came after the job's restore
        ++s.sleepers;
        me->asleep = true;
        s.work_cv.wait(lk, [&] { return (s.ticket.load(std::memory_order_acquire) >> 32) != seen; });
        me->asleep = false;
        --s.sleepers;
        gen = s.ticket.load(std::memory_order_acquire) >> 32;
      }
      spin = next_spin(std::chrono::steady_clock::now() - t0, s.policy);
      seen = gen;
      me->joined.store(gen, std::memory_order_relaxed);
      work(s, gen, slot);
      if (me->steered.load(std::memory_order_relaxed)) {
        std::lock_guard<std::mutex> lk(s.m);
        restore_home_locked(*me);
      }
    }
  }

  std::atomic<int> count_;
  std::atomic<State*> state_;
};

// The pool of this binary, unless a shared one was adopted (the Python extension modules all
// use _cpu_runtime's, so that one count and one set of threads serve the whole package).
inline std::atomic<Pool*>& adopted_pool() {
  static std::atomic<Pool*> p{nullptr};
  return p;
}
inline Pool& pool() {
  if (Pool* p = adopted_pool().load(std::memory_order_relaxed)) return *p;
  static Pool* own = new Pool;  // never destroyed: detached workers may outlive static destructors
  return *own;
}
inline void adopt_pool(Pool* p) { adopted_pool().store(p, std::memory_order_relaxed); }

}  // namespace pygenmod::threads
