// Cooperative interruption (Ctrl-C) of long CPU loops. Headers carry no Python: the caller
// (a binding) hands a Stop whose hook checks for pending signals, and a loop calls
// stop.poll(work) at its natural steps (after a sweep, a simulation, an EM iteration) and
// leaves as soon as it returns true. A default Stop never stops.
//
// The hook runs at most every kInterval, only on the thread that made the Stop (signal
// handlers run on Python's main thread, the caller), and the clock is read once per
// kClockWork units of work, so polling costs nothing measurable in a loop of small steps.
// Other threads see the decision through an atomic flag. A parallel loop takes the Stop too
// (parallel_chunks, parallel.hpp): no chunk starts after it is set, and the calling thread
// keeps polling it while the other threads finish their chunks.
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

}  // namespace pygenmod
