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

// A reduction: body(i, acc) for every i, each thread folding into its own copy of `init`;
// the copies are then combined in thread order by combine(acc, other). For reductions whose
// result does not depend on the order (min, max, integer sums, or).
template <class Acc, class F, class C>
Acc parallel_reduce(index_t n, index_t chunk, bool parallel, Acc init, F&& body, C&& combine) {
  if (!parallel || n <= chunk) {
    for (index_t i = 0; i < n; ++i) body(i, init);
    return init;
  }
  const int nt = max_threads();
  std::vector<Acc> part(static_cast<std::size_t>(nt), init);
  parallel_chunks(
      n, chunk, true,
      [&](index_t b, index_t e, int slot) {
        Acc& acc = part[static_cast<std::size_t>(slot)];
        for (index_t i = b; i < e; ++i) body(i, acc);
      },
      Stop::never(), nt);
  for (const Acc& p : part) combine(init, p);
  return init;
}

}  // namespace pygenmod
