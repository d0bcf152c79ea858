// Host-side declarations of the CUDA Bellman launchers (no device code here).
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "pygenmod/common.hpp"
#include "pygenmod/interrupt.hpp"

namespace pygenmod::cuda {
// One backup sweep over B dense MDPs, P (B, S, A, S); kind as in mdp.hpp (nullable pi/tau).
template <class T>
void backup_dense(const T* P, const T* R, const T* V, const T* gamma, index_t B, index_t S, index_t A, int kind,
                  const std::int64_t* pi_det, const T* pi_stoch, const T* tau, T* Q, T* V_out, std::int64_t* policy,
                  cudaStream_t stream);
// The same over the batched CSR layout of mdp.hpp (nnz: entries in all; it picks the mapping).
template <class T>
void backup_csr(const T* data, const std::int32_t* indices, const std::int64_t* indptr, std::int64_t nnz, const T* R,
                const T* V, const T* gamma, index_t B, index_t S, index_t A, int kind, const std::int64_t* pi_det,
                const T* pi_stoch, const T* tau, T* Q, T* V_out, std::int64_t* policy, cudaStream_t stream);

// ---- whole solves on the device (the batched loop of pygenmod/mdp_batched.hpp)
// Per-MDP results, written to host arrays of B entries (eval_sweeps nullable).
struct LoopResults {
  std::int64_t* iterations;
  std::int64_t* eval_sweeps;
  double* residual;
  std::uint8_t* converged;
};
// Settings: solve (modified policy iteration; eval_max = 0: value iteration), or evaluate the
// policy pol (B, S) / pol_stoch (B, S, A) (the other nullptr; eval_max unused).
template <class T>
struct LoopSettings {
  std::int64_t max_iter, eval_max;
  double eval_rel;
  bool span;
  const std::int64_t* pol;
  const T* pol_stoch;
  bool evaluate;
};
// Scratch bytes of a solve_loop call (from the caller's allocator).
template <class T>
std::size_t solve_loop_scratch_bytes(index_t B, index_t S);
// The whole loop on `stream`: V (B, S) initial values in, result out; Q (B, S, A) and policy
// (B, S) of the last improvement sweep (solve only; nullptr when evaluating); thresh (B,) on
// the device. The host looks at the count of running MDPs every few sweeps (the only
// synchronisations) and copies the per-MDP results back at the end. Returns false when
// `stop` interrupted it (the outputs are then incomplete).
template <class T>
bool solve_loop_dense(const T* P, const T* R, const T* gamma, const double* thresh, index_t B, index_t S, index_t A,
                      const LoopSettings<T>& set, T* V, T* Q, std::int64_t* policy, void* scratch, std::size_t bytes,
                      const LoopResults& out, Stop& stop, cudaStream_t stream);
template <class T>
bool solve_loop_csr(const T* data, const std::int32_t* indices, const std::int64_t* indptr, std::int64_t nnz,
                    const T* R, const T* gamma, const double* thresh, index_t B, index_t S, index_t A,
                    const LoopSettings<T>& set, T* V, T* Q, std::int64_t* policy, void* scratch, std::size_t bytes,
                    const LoopResults& out, Stop& stop, cudaStream_t stream);
}  // namespace pygenmod::cuda
