// Batched device loops (GMM EM, k-means): the list of the sets still running, and the one host
// synchronisation that reads its length. A loop launches its kernels over the listed sets only
// and refreshes the list every few iterations, so stopped sets cost nothing after the next
// refresh and the host waits on the device once per refresh, not once per iteration.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "cuda_check.cuh"
#include "pygenmod/common.hpp"

namespace pygenmod::cuda {
namespace {

constexpr unsigned kListThreads = 1024;

// Set i of a launch over a list (nullptr: every set, in order).
__device__ __forceinline__ index_t set_at(const index_t* sets, index_t i) { return sets ? sets[i] : i; }

// One block: list[0, count) = the s < B with flag[s] != 0, increasing; *count = how many.
// Thread i owns the contiguous slice [i * chunk, (i + 1) * chunk) of the flags; thread 0 turns
// the slice counts into offsets in order, so the list needs no sort and no atomics.
__global__ void list_active_kernel(const std::uint8_t* flag, index_t B, index_t* list, index_t* count) {
  __shared__ index_t offs[kListThreads];
  const index_t chunk = (B + kListThreads - 1) / kListThreads;
  const index_t a = static_cast<index_t>(threadIdx.x) * chunk;
  const index_t s0 = a < B ? a : B;
  const index_t s1 = s0 + chunk < B ? s0 + chunk : B;
  index_t c = 0;
  for (index_t s = s0; s < s1; ++s) c += flag[s] != 0 ? 1 : 0;
  offs[threadIdx.x] = c;
  __syncthreads();
  if (threadIdx.x == 0) {
    index_t acc = 0;
    for (unsigned i = 0; i < kListThreads; ++i) {
      const index_t v = offs[i];
      offs[i] = acc;
      acc += v;
    }
    *count = acc;
  }
  __syncthreads();
  index_t o = offs[threadIdx.x];
  for (index_t s = s0; s < s1; ++s)
    if (flag[s] != 0) list[o++] = s;
}

// Fills list/count (device, B and 1 elements) from the flags and returns the count: one
// synchronisation of `stream`.
inline index_t list_active(const std::uint8_t* flag, index_t B, index_t* list, index_t* count, cudaStream_t stream) {
  list_active_kernel<<<1, kListThreads, 0, stream>>>(flag, B, list, count);
  check_launch("active set list");
  index_t host = 0;
  PGM_CUDA_CHECK(cudaMemcpyAsync(&host, count, sizeof host, cudaMemcpyDeviceToHost, stream));
  PGM_CUDA_CHECK(cudaStreamSynchronize(stream));
  return host;
}

// A stream being captured into a CUDA graph cannot be synchronised: such loops run every
// iteration over every set (stopped sets return at once), as before the lists existed.
inline bool may_synchronise(cudaStream_t stream) {
  cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
  PGM_CUDA_CHECK(cudaStreamIsCapturing(stream, &st));
  return st == cudaStreamCaptureStatusNone;
}

}  // namespace
}  // namespace pygenmod::cuda
