// CUDA launchers for the Bellman backups; the per-state math is pygenmod/mdp.hpp's
// (backup_state, policy_value_state), run by L lanes per (b, s) state:
// - dense P with S >= 32: a warp per state (L = 32). Each row is read coalesced: lane l sums
//   entries l, l+32, ... and a fixed butterfly adds the 32 partials; lane 0's sum is broadcast,
//   so all lanes run the rest of the state's math on identical values (and store identical
//   results). Deterministic run to run; the summation order differs from the CPU's (rounding).
// - CSR P, or fewer than 32 states: one thread per state (L = 1), rows read serially.
#include "cuda_check.cuh"
#include "mdp.cuh"
#include "pygenmod/mdp.hpp"

namespace pygenmod::cuda {

// Dense rows, one warp per row dot product (used only from device code: L = 32 kernels).
template <class T>
struct WarpDense {
  const T* P;
  index_t S, A;
  PGM_HD acc_t<T> dot(index_t b, index_t s, index_t a, const T* v) const {
#ifdef __CUDA_ARCH__
    const T* row = P + ((b * S + s) * A + a) * S;
    acc_t<T> acc = 0;
    for (index_t t = threadIdx.x & 31; t < S; t += 32) acc += static_cast<acc_t<T>>(row[t]) * v[t];
    for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
    return __shfl_sync(0xffffffffu, acc, 0);
#else
    return 0;  // never called on the host
#endif
  }
  PGM_HD void dot_rows(index_t b, const index_t* rows, index_t n, const T* v, acc_t<T>* out) const {
    for (index_t k = 0; k < n; ++k) out[k] = dot(b, rows[k] / A, rows[k] % A, v);
  }
};

// L lanes per state; a whole group returns together (L = 32: warp-uniform), as the warp
// shuffles of WarpDense need every lane of the warp.
template <class T, class M, int L>
__global__ void backup_kernel(M m, const T* R, const T* V, const T* gamma, index_t B, int kind,
                              const std::int64_t* pi_det, const T* pi_stoch, const T* tau, T* Q, T* V_out,
                              std::int64_t* policy) {
  const index_t S = m.S, A = m.A;
  const index_t bs = (blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x) / L;
  if (bs >= B * S) return;
  const index_t b = bs / S, s = bs % S;
  const T v = mdp::backup_state(m, b, s, R + bs * A, V + b * S, gamma[b], kind, pi_det ? pi_det[bs] : 0,
                                pi_stoch ? pi_stoch + bs * A : nullptr, tau ? tau[b] : T(1), Q + bs * A, policy + bs);
  V_out[bs] = v;
}

// Policy-evaluation sweep reading only the policy's rows (1/A of a backup sweep for a
// deterministic policy). MDPs with active[b] == 0 (nullable) keep their values.
template <class T, class M, int L>
__global__ void policy_sweep_kernel(M m, const T* R, const T* V, const T* gamma, index_t B, const std::int64_t* pi_det,
                                    const T* pi_stoch, const std::uint8_t* active, T* V_out) {
  const index_t S = m.S, A = m.A;
  const index_t bs = (blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x) / L;
  if (bs >= B * S) return;
  const index_t b = bs / S, s = bs % S;
  if (active && !active[b]) {  // uniform over the group
    V_out[bs] = V[bs];
    return;
  }
  V_out[bs] = mdp::policy_value_state(m, b, s, R + bs * A, V + b * S, gamma[b], pi_det ? pi_det[bs] : 0,
                                      pi_stoch ? pi_stoch + bs * A : nullptr);
}

constexpr unsigned kThreads = 128;

template <class T, class M, int L>
void launch(const M& m, const T* R, const T* V, const T* gamma, index_t B, int kind, const std::int64_t* pi_det,
            const T* pi_stoch, const T* tau, T* Q, T* V_out, std::int64_t* policy, cudaStream_t stream,
            const char* what) {
  if (B * m.S == 0) return;
  backup_kernel<T, M, L><<<blocks_for(B * m.S * L, kThreads), kThreads, 0, stream>>>(m, R, V, gamma, B, kind, pi_det,
                                                                                     pi_stoch, tau, Q, V_out, policy);
  check_launch(what);
}

template <class T, class M, int L>
void launch_policy(const M& m, const T* R, const T* V, const T* gamma, index_t B, const std::int64_t* pi_det,
                   const T* pi_stoch, const std::uint8_t* active, T* V_out, cudaStream_t stream, const char* what) {
  if (B * m.S == 0) return;
  policy_sweep_kernel<T, M, L>
      <<<blocks_for(B * m.S * L, kThreads), kThreads, 0, stream>>>(m, R, V, gamma, B, pi_det, pi_stoch, active, V_out);
  check_launch(what);
}

// A warp per state pays off once a row fills the warp.
inline bool warp_per_state(index_t S) { return S >= 32; }

template <class T>
void policy_sweep_dense(const T* P, const T* R, const T* V, const T* gamma, index_t B, index_t S, index_t A,
                        const std::int64_t* pi_det, const T* pi_stoch, const std::uint8_t* active, T* V_out,
                        cudaStream_t stream) {
  if (warp_per_state(S))
    launch_policy<T, WarpDense<T>, 32>(WarpDense<T>{P, S, A}, R, V, gamma, B, pi_det, pi_stoch, active, V_out, stream,
                                       "policy_sweep_dense");
  else
    launch_policy<T, mdp::Dense<T>, 1>(mdp::Dense<T>{P, S, A}, R, V, gamma, B, pi_det, pi_stoch, active, V_out, stream,
                                       "policy_sweep_dense");
}

template <class T>
void policy_sweep_csr(const T* data, const std::int32_t* indices, const std::int64_t* indptr, const T* R, const T* V,
                      const T* gamma, index_t B, index_t S, index_t A, const std::int64_t* pi_det, const T* pi_stoch,
                      const std::uint8_t* active, T* V_out, cudaStream_t stream) {
  launch_policy<T, mdp::Csr<T>, 1>(mdp::Csr<T>{data, indices, indptr, S, A}, R, V, gamma, B, pi_det, pi_stoch, active,
                                   V_out, stream, "policy_sweep_csr");
}

template <class T>
void backup_dense(const T* P, const T* R, const T* V, const T* gamma, index_t B, index_t S, index_t A, int kind,
                  const std::int64_t* pi_det, const T* pi_stoch, const T* tau, T* Q, T* V_out, std::int64_t* policy,
                  cudaStream_t stream) {
  if (warp_per_state(S))
    launch<T, WarpDense<T>, 32>(WarpDense<T>{P, S, A}, R, V, gamma, B, kind, pi_det, pi_stoch, tau, Q, V_out, policy,
                                stream, "backup_dense");
  else
    launch<T, mdp::Dense<T>, 1>(mdp::Dense<T>{P, S, A}, R, V, gamma, B, kind, pi_det, pi_stoch, tau, Q, V_out, policy,
                                stream, "backup_dense");
}

template <class T>
void backup_csr(const T* data, const std::int32_t* indices, const std::int64_t* indptr, const T* R, const T* V,
                const T* gamma, index_t B, index_t S, index_t A, int kind, const std::int64_t* pi_det,
                const T* pi_stoch, const T* tau, T* Q, T* V_out, std::int64_t* policy, cudaStream_t stream) {
  launch<T, mdp::Csr<T>, 1>(mdp::Csr<T>{data, indices, indptr, S, A}, R, V, gamma, B, kind, pi_det, pi_stoch, tau, Q,
                            V_out, policy, stream, "backup_csr");
}

#define PGM_INSTANTIATE(T)                                                                                             \
  template void backup_dense<T>(const T*, const T*, const T*, const T*, index_t, index_t, index_t, int,                \
                                const std::int64_t*, const T*, const T*, T*, T*, std::int64_t*, cudaStream_t);         \
  template void backup_csr<T>(const T*, const std::int32_t*, const std::int64_t*, const T*, const T*, const T*,        \
                              index_t, index_t, index_t, int, const std::int64_t*, const T*, const T*, T*, T*,         \
                              std::int64_t*, cudaStream_t);                                                            \
  template void policy_sweep_dense<T>(const T*, const T*, const T*, const T*, index_t, index_t, index_t,               \
                                      const std::int64_t*, const T*, const std::uint8_t*, T*, cudaStream_t);           \
  template void policy_sweep_csr<T>(const T*, const std::int32_t*, const std::int64_t*, const T*, const T*, const T*,  \
                                    index_t, index_t, index_t, const std::int64_t*, const T*, const std::uint8_t*, T*, \
                                    cudaStream_t);
PGM_INSTANTIATE(float)
PGM_INSTANTIATE(double)
#undef PGM_INSTANTIATE

}  // namespace pygenmod::cuda
