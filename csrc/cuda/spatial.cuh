// Host-side declarations of the CUDA spatial softmax launchers (no device code here).
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

#include "pygenmod/spatial.hpp"

namespace pygenmod::cuda {
// Slices per map on the current device (pygenmod/launch_grid.hpp pixel_splits; 1: whole maps).
index_t spatial_splits(index_t B, index_t C, index_t HW, bool channels_last);

// Scratch (device bytes, from the caller's allocator) of a call on `stream`: 0 with whole maps
// (always while the stream is being captured into a CUDA graph).
template <class S>
std::size_t spatial_forward_scratch_bytes(const spatial::detail::FwdArgs<S>& a, bool channels_last,
                                          cudaStream_t stream);
template <class S>
std::size_t spatial_backward_scratch_bytes(const spatial::detail::BwdArgs<S>& a, bool channels_last,
                                           cudaStream_t stream);

template <class S>
void spatial_forward(const spatial::detail::FwdArgs<S>& a, bool channels_last, void* scratch, std::size_t scratch_bytes,
                     cudaStream_t stream);
template <class S>
void spatial_backward(const spatial::detail::BwdArgs<S>& a, bool channels_last, void* scratch,
                      std::size_t scratch_bytes, cudaStream_t stream);
}  // namespace pygenmod::cuda
