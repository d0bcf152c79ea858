// Host-side declarations of the CUDA categorical launchers (no device code here).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "pygenmod/common.hpp"

namespace pygenmod::cuda {
// One thread per row of K logits (see pygenmod/categorical.hpp). Masks: null, or mrows 1 / B.
template <class T>
void categorical_log_prob(const T* x, const std::uint8_t* m, index_t mrows, const std::int64_t* a, index_t B, index_t K,
                          T* out, std::int32_t* status, cudaStream_t stream);
template <class T>
void categorical_log_prob_backward(const T* x, const std::uint8_t* m, index_t mrows, const std::int64_t* a, index_t B,
                                   index_t K, const T* g, T* dx, cudaStream_t stream);
template <class T>
void categorical_entropy(const T* x, const std::uint8_t* m, index_t mrows, index_t B, index_t K, T* out,
                         std::int32_t* status, cudaStream_t stream);
template <class T>
void categorical_entropy_backward(const T* x, const std::uint8_t* m, index_t mrows, index_t B, index_t K, const T* g,
                                  T* dx, cudaStream_t stream);
template <class T>
void categorical_kl(const T* p, const T* q, const std::uint8_t* mp, index_t mprows, const std::uint8_t* mq,
                    index_t mqrows, bool p_is_prob, index_t B, index_t K, T* out, std::int32_t* status,
                    cudaStream_t stream);
template <class T>
void categorical_kl_backward(const T* p, const T* q, const std::uint8_t* mp, index_t mprows, const std::uint8_t* mq,
                             index_t mqrows, bool p_is_prob, index_t B, index_t K, const T* g, T* dp, T* dq,
                             cudaStream_t stream);
}  // namespace pygenmod::cuda
