// Cooperative interruption (Ctrl-C) of long CPU loops. Headers carry no Python: the caller
// (a binding) hands a Stop whose hook checks for pending signals, and a loop calls
// stop.poll(work) at its natural steps (after a sweep, a simulation, an EM iteration) and
// leaves as soon as it returns true. A default Stop never stops.
//
// The hook runs at most every kInterval, only on the thread that made the Stop (signal
// handlers run on Python's main thread, the caller), and the clock is read once per
// kClockWork units of work, so polling costs nothing measurable in a loop of small steps.
// Other threads see the decision through an atomic flag. ItemQueue hands out the items of
// a parallel loop so that the calling thread keeps polling while the other threads finish
// their last items (an `omp for` would park it at the barrier, deaf to Ctrl-C).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

namespace pygenmod {

class Stop {
 public:
  using Hook = bool (*)(void*);                  // true: stop now (e.g. a KeyboardInterrupt is pending)
  static constexpr double kClockWork = 1 << 16;  // ~ multiply-adds between clock reads
  static constexpr std::chrono::milliseconds kInterval{50};

  Stop() = default;
  Stop(Hook hook, void* ctx) : hook_(hook), ctx_(ctx), owner_(std::this_thread::get_id()), last_(clock::now()) {}
  Stop(const Stop&) = delete;
  Stop& operator=(const Stop&) = delete;
  // A shared Stop that never stops (the default argument of the launchers; it is never
  // written: poll returns before touching any member when there is no hook).
  static Stop& never() {
    static Stop s;
    return s;
  }

  // After `work` units of work: true when the loop should stop.
  bool poll(double work = kClockWork) {
    if (stopped()) return true;
    if (!hook_ || std::this_thread::get_id() != owner_) return false;
    pending_ += work;
    if (pending_ < kClockWork) return false;
    pending_ = 0;
    const auto now = clock::now();
    if (now - last_ < kInterval) return false;
    last_ = now;
    if (!hook_(ctx_)) return false;
    stopped_.store(true, std::memory_order_relaxed);
    return true;
  }
  bool stopped() const { return stopped_.load(std::memory_order_relaxed); }
  bool is_owner() const { return hook_ && std::this_thread::get_id() == owner_; }

 private:
  using clock = std::chrono::steady_clock;
  Hook hook_ = nullptr;
  void* ctx_ = nullptr;
  std::thread::id owner_{};
  clock::time_point last_{};
  double pending_ = 0;
  std::atomic<bool> stopped_{false};
};

// Dynamic hand-out of items [0, n) to the threads of a parallel region:
//   ItemQueue q(n, stop);
//   #pragma omp parallel
//   { for (std::int64_t i; q.next(i);) { f(i); q.done(); }  q.drain(); }
// (the same schedule as `omp for schedule(dynamic, 1)`); after a stop no new item starts.
class ItemQueue {
 public:
  ItemQueue(std::int64_t n, Stop& stop) : n_(n), stop_(stop) {}
  bool next(std::int64_t& i) {
    if (stop_.stopped()) return false;
    i = next_.fetch_add(1, std::memory_order_relaxed);
    return i < n_;
  }
  void done() { done_.fetch_add(1, std::memory_order_release); }
  // The calling thread, out of items, polls until the other threads have finished theirs:
  // yielding at first (a short tail ends as soon as it would at a barrier), then napping
  // (20 us doubling up to 1 ms) so that a long tail does not keep a core spinning.
  void drain() {
    if (!stop_.is_owner()) return;
    auto nap = std::chrono::microseconds(20);
    for (int spins = 0; done_.load(std::memory_order_acquire) < n_ && !stop_.poll(); ++spins) {
      if (spins < 2000) {
        std::this_thread::yield();
        continue;
      }
      std::this_thread::sleep_for(nap);
      if (nap < std::chrono::milliseconds(1)) nap *= 2;
    }
  }

 private:
  const std::int64_t n_;
  Stop& stop_;
  std::atomic<std::int64_t> next_{0}, done_{0};
};

}  // namespace pygenmod
