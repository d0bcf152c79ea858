// Host-side declarations of the CUDA Bellman launchers (no device code here).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "pygenmod/common.hpp"

namespace pygenmod::cuda {
// One backup sweep over B dense MDPs, P (B, S, A, S); kind as in mdp.hpp (nullable pi/tau).
template <class T>
void backup_dense(const T* P, const T* R, const T* V, const T* gamma, index_t B, index_t S, index_t A, int kind,
                  const std::int64_t* pi_det, const T* pi_stoch, const T* tau, T* Q, T* V_out, std::int64_t* policy,
                  cudaStream_t stream);
// The same over the batched CSR layout of mdp.hpp.
template <class T>
void backup_csr(const T* data, const std::int32_t* indices, const std::int64_t* indptr, const T* R, const T* V,
                const T* gamma, index_t B, index_t S, index_t A, int kind, const std::int64_t* pi_det,
                const T* pi_stoch, const T* tau, T* Q, T* V_out, std::int64_t* policy, cudaStream_t stream);
// Policy-evaluation sweeps (only the policy's rows; pi_det (B, S) or pi_stoch (B, S, A));
// MDPs with active[b] == 0 copy V to V_out (active nullable: all).
template <class T>
void policy_sweep_dense(const T* P, const T* R, const T* V, const T* gamma, index_t B, index_t S, index_t A,
                        const std::int64_t* pi_det, const T* pi_stoch, const std::uint8_t* active, T* V_out,
                        cudaStream_t stream);
template <class T>
void policy_sweep_csr(const T* data, const std::int32_t* indices, const std::int64_t* indptr, const T* R, const T* V,
                      const T* gamma, index_t B, index_t S, index_t A, const std::int64_t* pi_det, const T* pi_stoch,
                      const std::uint8_t* active, T* V_out, cudaStream_t stream);
}  // namespace pygenmod::cuda
