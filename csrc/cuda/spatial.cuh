// Host-side declarations of the CUDA spatial softmax launchers (no device code here).
#pragma once
#include <cuda_runtime.h>

#include "pygenmod/spatial.hpp"

namespace pygenmod::cuda {
template <class S>
void spatial_forward(const spatial::detail::FwdArgs<S>& a, bool channels_last, cudaStream_t stream);
template <class S>
void spatial_backward(const spatial::detail::BwdArgs<S>& a, bool channels_last, cudaStream_t stream);
}  // namespace pygenmod::cuda
