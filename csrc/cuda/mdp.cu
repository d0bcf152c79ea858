// CUDA launchers for the Bellman backups; the math is pygenmod/mdp.hpp's.
#include "cuda_check.cuh"
#include "mdp.cuh"
#include "pygenmod/mdp.hpp"

namespace pygenmod::cuda {

template <class T>
__global__ void optimality_sweep_dense_kernel(const T* P, const T* R, const T* V, const T* gamma,
                                              index_t B, index_t S, index_t A, T* Q, T* V_out,
                                              std::int64_t* policy) {
  const index_t bs = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x;
  if (bs >= B * S) return;
  const index_t b = bs / S;
  V_out[bs] = mdp::optimality_backup_state(P + bs * A * S, R + bs * A, V + b * S, S, A, gamma[b],
                                           Q + bs * A, policy + bs);
}

template <class T>
void optimality_sweep_dense(const T* P, const T* R, const T* V, const T* gamma, index_t B,
                            index_t S, index_t A, T* Q, T* V_out, std::int64_t* policy,
                            cudaStream_t stream) {
  if (B * S == 0) return;
  const unsigned threads = 128;
  optimality_sweep_dense_kernel<T><<<blocks_for(B * S, threads), threads, 0, stream>>>(
      P, R, V, gamma, B, S, A, Q, V_out, policy);
  check_launch("optimality_sweep_dense");
}

template void optimality_sweep_dense<float>(const float*, const float*, const float*,
                                            const float*, index_t, index_t, index_t, float*,
                                            float*, std::int64_t*, cudaStream_t);
template void optimality_sweep_dense<double>(const double*, const double*, const double*,
                                             const double*, index_t, index_t, index_t, double*,
                                             double*, std::int64_t*, cudaStream_t);

}  // namespace pygenmod::cuda
