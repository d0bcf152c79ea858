// The parallel loops of the CPU kernels, on pygenmod's own pool (thread_pool.hpp).
//
// Every loop is over independent items; each item is computed by one thread in a fixed
// order, so results never depend on the thread count or the split. Chunks are handed out on
// demand: a thread whose core is shared (OpenBLAS polling, another process) holds up the
// call by at most the chunk it is running, and a thread that never started holds it up not
// at all. `parallel = false` (a size below the loop's measured threshold) runs the loop on
// the calling thread with no pool traffic.
#pragma once

#include <algorithm>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include "pygenmod/common.hpp"
#include "pygenmod/interrupt.hpp"
#include "pygenmod/thread_pool.hpp"

namespace pygenmod {

// Threads a parallel loop may use now (set_num_threads, threadpoolctl, OMP_NUM_THREADS).
inline int max_threads() { return threads::pool().threads(); }

// Chunk size for n equal items: about 8 chunks per thread, so a slow thread costs at most
// ~1/8 of its share.
inline index_t share_chunk(index_t n) { return std::max<index_t>(1, n / (8 * index_t(max_threads()))); }

// body(begin, end, slot) for chunks [begin, end) of [0, n) of `chunk` items; slot names the
// thread (for per-thread scratch): slot < max_team when max_team > 0, else < max_threads() as
// it was at the call. After `stop`, no chunk starts.
template <class F>
void parallel_chunks(index_t n, index_t chunk, bool parallel, F&& body, Stop& stop = Stop::never(), int max_team = 0) {
  if (n <= 0) return;
  if (!parallel || n <= chunk) {
    for (index_t b = 0; b < n && !stop.stopped(); b += chunk) body(b, std::min(n, b + chunk), 0);
    return;
  }
  using Body = std::remove_reference_t<F>;
  auto call = [](void* ctx, index_t b, index_t e, int slot) { (*static_cast<Body*>(ctx))(b, e, slot); };
  threads::pool().run(n, chunk, call, const_cast<void*>(static_cast<const void*>(&body)), stop, max_team);
}

// body(i) for every i in [0, n).
template <class F>
void parallel_for(index_t n, index_t chunk, bool parallel, F&& body) {
  parallel_chunks(n, chunk, parallel, [&](index_t b, index_t e, int) {
    for (index_t i = b; i < e; ++i) body(i);
  });
}

// body(i) for every i in [0, n), for a loop that is called again and again over the same
// items (the MCTS callback step: one call per simulation over the same 256 trees), so that
// each thread tends to get the items it had last time, still in its core's cache. The range is
// cut into 8 T equal blocks (T threads) and the j-th chunk claimed runs block (j % T) * 8 + j / T:
// when the threads claim in turn, as they do at equal speed, thread k runs the k-th T-th of the
// range every call. Any other claim order is just as correct (chunks map one-to-one to blocks)
// and as robust to a slow thread as parallel_for with share_chunk (8 chunks per thread).
// Measured on the callback step (B=256, 2 threads): 11.05 -> 10.39 ms per search.
template <class F>
void parallel_for_affine(index_t n, bool parallel, F&& body) {
  const index_t T = max_threads(), per = 8, nb = T * per, bs = (n + nb - 1) / nb;
  if (!parallel || T <= 1 || n <= 1) {
    for (index_t i = 0; i < n; ++i) body(i);
    return;
  }
  parallel_chunks(nb, 1, true, [&](index_t j, index_t, int) {
    const index_t k = (j % T) * per + j / T;
    const index_t b = k * bs, e = std::min(n, b + bs);
    for (index_t i = b; i < e; ++i) body(i);
  });
}

// A fold over chunks: body(begin, end, acc) folds a chunk into a fresh Acc (no shared cache
// line is written per item); each thread adds its chunks' results into its own partial with
// acc.add(other), and the partials are added in thread order. For folds whose result does not
// depend on the order (min, max, integer counts). Serially: one chunk, [0, n).
template <class Acc, class F>
Acc parallel_fold(index_t n, index_t chunk, bool parallel, F&& body) {
  Acc all{};
  if (!parallel || n <= chunk) {
    if (n > 0) body(index_t(0), n, all);
    return all;
  }
  const int nt = max_threads();
  std::vector<Acc> part(static_cast<std::size_t>(nt));
  parallel_chunks(
      n, chunk, true,
      [&](index_t b, index_t e, int slot) {
        Acc acc{};
        body(b, e, acc);
        part[static_cast<std::size_t>(slot)].add(acc);
      },
      Stop::never(), nt);
  for (const Acc& p : part) all.add(p);
  return all;
}

// Per-thread scratch of a parallel loop: slot s's item, made by make() when s runs its first
// chunk (a thread that takes no chunk allocates nothing). Pass team() as the loop's max_team.
// Each item is a separate allocation made by its own thread (items side by side in one array
// would share cache lines that both threads write); the caller frees them after the loop, so
// keep them fixed-size buffers: a workspace that reallocates inside the loop belongs to the
// chunk instead (gmm's sets_in_parallel says why).
template <class S, class Make>
class PerSlot {
 public:
  explicit PerSlot(Make make) : make_(std::move(make)), items_(static_cast<std::size_t>(max_threads())) {}
  int team() const { return static_cast<int>(items_.size()); }
  S& operator[](int slot) {
    std::unique_ptr<S>& s = items_[static_cast<std::size_t>(slot)];
    if (!s) s = std::make_unique<S>(make_());
    return *s;
  }

 private:
  Make make_;
  std::vector<std::unique_ptr<S>> items_;
};
template <class Make>
PerSlot<std::invoke_result_t<Make&>, Make> per_slot(Make make) {
  return PerSlot<std::invoke_result_t<Make&>, Make>(std::move(make));
}
// n zeroed elements per thread.
template <class T>
auto slot_buffers(index_t n) {
  return per_slot([n] { return std::vector<T>(static_cast<std::size_t>(n)); });
}

// parallel_for whose body(i, s) also gets the running thread's item s of `slots`.
template <class P, class F>
void parallel_for_slots(index_t n, index_t chunk, bool parallel, P& slots, F&& body, Stop& stop = Stop::never()) {
  parallel_chunks(
      n, chunk, parallel,
      [&](index_t b, index_t e, int slot) {
        auto& s = slots[slot];
        for (index_t i = b; i < e; ++i) body(i, s);
      },
      stop, slots.team());
}

}  // namespace pygenmod
