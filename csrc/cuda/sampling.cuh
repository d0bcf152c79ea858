// Host-side declarations of the CUDA RNG and sampling launchers (no device code here).
// Optional pointers may be null, as in pygenmod/sampling.hpp's CPU launchers.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "pygenmod/common.hpp"

namespace pygenmod::cuda {
using u64 = std::uint64_t;

template <class T>
void sampling_fill(int dist, u64 seed, u64 stream, u64 offset, index_t R, index_t N, T* out, cudaStream_t st);
void sampling_philox(const std::uint32_t* ctr, const std::uint32_t* key, index_t n, std::uint32_t* out,
                     cudaStream_t st);
void sampling_bits(u64 seed, u64 stream, u64 offset, index_t R, index_t N, std::uint32_t* out, cudaStream_t st);
template <class T>
void normal_head(const T* mu, const T* p, const T* eps_in, int kind, T lo, T hi, u64 seed, u64 stream, u64 offset,
                 index_t S, index_t B, index_t D, T* z, T* eps_out, T* kl, T* logq, std::int32_t* status,
                 cudaStream_t st);
template <class T>
void normal_head_backward(const T* mu, const T* p, const T* eps_in, int kind, T lo, T hi, u64 seed, u64 stream,
                          u64 offset, index_t S, index_t B, index_t D, const T* gz, const T* gkl, const T* glogq,
                          T* dmu, T* dp, cudaStream_t st);
template <class T>
void kl_normal(const T* mu, const T* p, const T* pm, const T* pp, int kind, T lo, T hi, index_t B, index_t D, T* kl,
               std::int32_t* status, cudaStream_t st);
template <class T>
void kl_normal_backward(const T* mu, const T* p, const T* pm, const T* pp, int kind, T lo, T hi, index_t B, index_t D,
                        const T* g, T* dmu, T* dp, T* dpm, T* dpp, cudaStream_t st);
template <class T>
void normal_log_prob(const T* x, const T* mu, const T* p, int kind, T lo, T hi, index_t R, index_t B, index_t D, T* out,
                     std::int32_t* status, cudaStream_t st);
template <class T>
void normal_log_prob_backward(const T* x, const T* mu, const T* p, int kind, T lo, T hi, index_t R, index_t B,
                              index_t D, const T* g, T* dx, T* dmu, T* dp, cudaStream_t st);
template <class T>
void mvn_head(const T* mu, const T* L, bool shared, bool check_upper, const T* eps_in, u64 seed, u64 stream, u64 offset,
              index_t S, index_t B, index_t D, T* z, T* eps_out, T* kl, T* logq, std::int32_t* status, cudaStream_t st);
// Scratch (device bytes, from the caller's allocator) of mvn_head_backward: nonzero only for a
// scale_tril shared by all rows, whose gradient is reduced over the rows in a fixed order.
std::size_t mvn_head_backward_scratch_bytes(bool shared, index_t B, index_t D, std::size_t elem_size);
template <class T>
void mvn_head_backward(const T* mu, const T* L, bool shared, const T* eps_in, u64 seed, u64 stream, u64 offset,
                       index_t S, index_t B, index_t D, const T* gz, const T* gkl, const T* glogq, T* dmu, T* dL,
                       void* scratch, std::size_t scratch_bytes, cudaStream_t st);
template <class T>
void tri_solve(const T* L, bool shared, const T* R, index_t B, index_t D, index_t K, bool trans, T* X, cudaStream_t st);

// Full-covariance rows and Gumbel-softmax rows (sampling_mvn.cuh; math in pygenmod/mvn.hpp). The
// *_scratch_bytes functions size the scratch their launcher takes (shared: a factor shared by
// all rows, whose gradient is reduced over fixed chunks of rows).
template <class T>
void tril_check(const T* L, index_t N, index_t D, std::int32_t* flags, cudaStream_t st);
std::size_t mvn_rows_scratch_bytes(index_t R, index_t D, std::size_t elem_size);
template <class T>
void mvn_rows(const T* x, const T* mu, const T* L, bool shared, int mode, bool squared, index_t R, index_t B, index_t D,
              T* out, std::int32_t* status, void* scratch, std::size_t scratch_bytes, cudaStream_t st);
std::size_t mvn_rows_backward_scratch_bytes(bool shared, index_t R, index_t B, index_t D, std::size_t elem_size);
template <class T>
void mvn_rows_backward(const T* x, const T* mu, const T* L, bool shared, int mode, bool squared, index_t R, index_t B,
                       index_t D, const T* g, T* dx, T* dmu, T* dL, std::int32_t* status, void* scratch,
                       std::size_t scratch_bytes, cudaStream_t st);
std::size_t kl_mvn_scratch_bytes(index_t B, index_t D, std::size_t elem_size);
template <class T>
void kl_mvn(const T* m1, const T* L1, bool shared1, const T* m2, const T* L2, bool shared2, index_t B, index_t D, T* kl,
            std::int32_t* status, void* scratch, std::size_t scratch_bytes, cudaStream_t st);
std::size_t kl_mvn_backward_scratch_bytes(bool shared1, bool shared2, index_t B, index_t D, std::size_t elem_size);
template <class T>
void kl_mvn_backward(const T* m1, const T* L1, bool shared1, const T* m2, const T* L2, bool shared2, index_t B,
                     index_t D, const T* g, T* dm1, T* dL1, T* dm2, T* dL2, void* scratch, std::size_t scratch_bytes,
                     cudaStream_t st);
template <class T>
void gumbel_softmax(const T* logits, index_t R, index_t K, T tau, u64 seed, u64 stream, u64 offset, T* y_soft,
                    T* y_hard, std::int64_t* index, std::int32_t* status, cudaStream_t st);
template <class T>
void gumbel_softmax_backward(const T* logits, const T* y_soft, index_t R, index_t K, T tau, u64 seed, u64 stream,
                             u64 offset, const T* g, T* out, std::int32_t* status, cudaStream_t st);
}  // namespace pygenmod::cuda
