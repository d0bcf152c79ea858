// CUDA launchers for the Bellman backups; the math is pygenmod/mdp.hpp's (one thread per
// (b, s) state, all its actions, or only the policy's for an evaluation sweep; dense rows are
// read coalesced across neighbouring states only through the cache).
#include "cuda_check.cuh"
#include "mdp.cuh"
#include "pygenmod/mdp.hpp"

namespace pygenmod::cuda {

template <class T, class M>
__global__ void backup_kernel(M m, const T* R, const T* V, const T* gamma, index_t B, int kind,
                              const std::int64_t* pi_det, const T* pi_stoch, const T* tau, T* Q,
                              T* V_out, std::int64_t* policy) {
  const index_t S = m.S, A = m.A;
  const index_t bs = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x;
  if (bs >= B * S) return;
  const index_t b = bs / S, s = bs % S;
  V_out[bs] = mdp::backup_state(m, b, s, R + bs * A, V + b * S, gamma[b], kind,
                                pi_det ? pi_det[bs] : 0, pi_stoch ? pi_stoch + bs * A : nullptr,
                                tau ? tau[b] : T(1), Q + bs * A, policy + bs);
}

template <class T, class M>
void launch(const M& m, const T* R, const T* V, const T* gamma, index_t B, int kind,
            const std::int64_t* pi_det, const T* pi_stoch, const T* tau, T* Q, T* V_out,
            std::int64_t* policy, cudaStream_t stream, const char* what) {
  if (B * m.S == 0) return;
  const unsigned threads = 128;
  backup_kernel<T, M><<<blocks_for(B * m.S, threads), threads, 0, stream>>>(
      m, R, V, gamma, B, kind, pi_det, pi_stoch, tau, Q, V_out, policy);
  check_launch(what);
}

// Policy-evaluation sweep reading only the policy's rows (1/A of a backup sweep for a
// deterministic policy). MDPs with active[b] == 0 (nullable) keep their values.
template <class T, class M>
__global__ void policy_sweep_kernel(M m, const T* R, const T* V, const T* gamma, index_t B,
                                    const std::int64_t* pi_det, const T* pi_stoch,
                                    const std::uint8_t* active, T* V_out) {
  const index_t S = m.S, A = m.A;
  const index_t bs = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x;
  if (bs >= B * S) return;
  const index_t b = bs / S, s = bs % S;
  if (active && !active[b]) {
    V_out[bs] = V[bs];
    return;
  }
  V_out[bs] = mdp::policy_value_state(m, b, s, R + bs * A, V + b * S, gamma[b], pi_det ? pi_det[bs] : 0,
                                      pi_stoch ? pi_stoch + bs * A : nullptr);
}

template <class T, class M>
void launch_policy(const M& m, const T* R, const T* V, const T* gamma, index_t B, const std::int64_t* pi_det,
                   const T* pi_stoch, const std::uint8_t* active, T* V_out, cudaStream_t stream,
                   const char* what) {
  if (B * m.S == 0) return;
  const unsigned threads = 128;
  policy_sweep_kernel<T, M><<<blocks_for(B * m.S, threads), threads, 0, stream>>>(m, R, V, gamma, B, pi_det,
                                                                                  pi_stoch, active, V_out);
  check_launch(what);
}

template <class T>
void policy_sweep_dense(const T* P, const T* R, const T* V, const T* gamma, index_t B, index_t S, index_t A,
                        const std::int64_t* pi_det, const T* pi_stoch, const std::uint8_t* active, T* V_out,
                        cudaStream_t stream) {
  launch_policy(mdp::Dense<T>{P, S, A}, R, V, gamma, B, pi_det, pi_stoch, active, V_out, stream,
                "policy_sweep_dense");
}

template <class T>
void policy_sweep_csr(const T* data, const std::int32_t* indices, const std::int64_t* indptr, const T* R,
                      const T* V, const T* gamma, index_t B, index_t S, index_t A, const std::int64_t* pi_det,
                      const T* pi_stoch, const std::uint8_t* active, T* V_out, cudaStream_t stream) {
  launch_policy(mdp::Csr<T>{data, indices, indptr, S, A}, R, V, gamma, B, pi_det, pi_stoch, active, V_out,
                stream, "policy_sweep_csr");
}

template <class T>
void backup_dense(const T* P, const T* R, const T* V, const T* gamma, index_t B, index_t S, index_t A,
                  int kind, const std::int64_t* pi_det, const T* pi_stoch, const T* tau, T* Q, T* V_out,
                  std::int64_t* policy, cudaStream_t stream) {
  launch(mdp::Dense<T>{P, S, A}, R, V, gamma, B, kind, pi_det, pi_stoch, tau, Q, V_out, policy, stream,
         "backup_dense");
}

template <class T>
void backup_csr(const T* data, const std::int32_t* indices, const std::int64_t* indptr, const T* R,
                const T* V, const T* gamma, index_t B, index_t S, index_t A, int kind,
                const std::int64_t* pi_det, const T* pi_stoch, const T* tau, T* Q, T* V_out,
                std::int64_t* policy, cudaStream_t stream) {
  launch(mdp::Csr<T>{data, indices, indptr, S, A}, R, V, gamma, B, kind, pi_det, pi_stoch, tau, Q, V_out,
         policy, stream, "backup_csr");
}

#define PGM_INSTANTIATE(T)                                                                         \
  template void backup_dense<T>(const T*, const T*, const T*, const T*, index_t, index_t, index_t, \
                                int, const std::int64_t*, const T*, const T*, T*, T*,              \
                                std::int64_t*, cudaStream_t);                                      \
  template void backup_csr<T>(const T*, const std::int32_t*, const std::int64_t*, const T*,        \
                              const T*, const T*, index_t, index_t, index_t, int,                  \
                              const std::int64_t*, const T*, const T*, T*, T*, std::int64_t*,      \
                              cudaStream_t);                                                      \
  template void policy_sweep_dense<T>(const T*, const T*, const T*, const T*, index_t, index_t, index_t, \
                                      const std::int64_t*, const T*, const std::uint8_t*, T*,            \
                                      cudaStream_t);                                                     \
  template void policy_sweep_csr<T>(const T*, const std::int32_t*, const std::int64_t*, const T*,        \
                                    const T*, const T*, index_t, index_t, index_t, const std::int64_t*,  \
                                    const T*, const std::uint8_t*, T*, cudaStream_t);
PGM_INSTANTIATE(float)
PGM_INSTANTIATE(double)
#undef PGM_INSTANTIATE

}  // namespace pygenmod::cuda
