// Integer-policy conversion for the CUDA FFI handlers (JAX's default integer is int32; the
// Bellman kernels read and write int64). Host declarations; device code in cuda_convert.cu.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace pygenmod::jaxffi {
// out[i] = in[i] clamped to [0, A): memory safety for actions nobody checked (a traced policy
// inside jit is only seen by the device); n elements, on `stream`.
template <class I>
void widen_actions(const I* in, std::int64_t* out, std::int64_t n, std::int64_t A, cudaStream_t stream);
// out[i] = (int32) in[i] (greedy actions, < A <= 2^31).
void narrow_actions(const std::int64_t* in, std::int32_t* out, std::int64_t n, cudaStream_t stream);
}  // namespace pygenmod::jaxffi
