// How the CPU kernels share a parallel loop among threads that may not run at full speed.
#pragma once

#include <algorithm>

#include "pygenmod/common.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace pygenmod {

// Chunk size for `schedule(dynamic, share_chunk(n))` over n equal items: about 8 chunks per
// thread. A worker often runs at part speed in use: OpenBLAS's threads poll for ~0.1 s after
// each BLAS call, and another process may keep a core busy. With a static split the calling
// thread then waits for the slow thread's whole share (the call takes as long as on one
// thread); with chunks handed out on demand the fast thread takes the slow one's unstarted
// chunks, and the wait is at most one chunk. Results never depend on the split: every item
// is computed by one thread in a fixed order.
inline index_t share_chunk(index_t n) {
  index_t nt = 1;
#if defined(_OPENMP)
  nt = omp_get_max_threads();
#endif
  return std::max<index_t>(1, n / (8 * nt));
}

}  // namespace pygenmod
