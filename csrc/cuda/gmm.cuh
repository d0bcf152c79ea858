// Host-side declarations of the CUDA Gaussian-mixture launchers (no device code here).
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "pygenmod/common.hpp"

namespace pygenmod::cuda {

// Scratch (device bytes, from the caller's allocator) of gmm_fit / gmm_m_step for B = Bx * n_rep sets.
std::size_t gmm_fit_scratch_bytes(int type, index_t B, index_t N, index_t D, index_t K);
std::size_t gmm_m_step_scratch_bytes(int type, index_t B, index_t N, index_t D, index_t K);

// Partial sums per point group of the statistics kernel for nb running sets on the current
// device (pygenmod/launch_grid.hpp stats_grid: 1, or kTiles when few sets leave the GPU idle).
index_t gmm_stats_split(int type, index_t nb, index_t N, index_t D, index_t K);

// Batched EM on the device: set s of B = Bx * n_rep uses data set s / n_rep; parameters in/out.
// Synchronises `stream` once every 4 iterations (to launch over the running sets only and stop
// with the last; never while the stream is being captured into a graph). gmm_kmeans likewise.
template <class T>
void gmm_fit(int type, const T* X, const T* W, const T* reg, index_t Bx, index_t n_rep, index_t N, index_t D, index_t K,
             index_t max_iter, double tol, T* weights, T* means, T* cov, T* pc, T* lower_bound, std::int64_t* n_iter,
             std::uint8_t* converged, std::uint8_t* flags, void* scratch, std::size_t scratch_bytes,
             cudaStream_t stream);

template <class T>
void gmm_m_step(int type, const T* X, const T* W, const T* resp, const T* reg, index_t Bx, index_t n_rep, index_t N,
                index_t D, index_t K, T* weights, T* means, T* cov, T* pc, std::uint8_t* flags, void* scratch,
                std::size_t scratch_bytes, cudaStream_t stream);

template <class T>
void gmm_e_step(int type, const T* X, const T* weights, const T* means, const T* pc, index_t B, index_t N, index_t D,
                index_t K, T* lp, T* log_resp, T* log_norm, cudaStream_t stream);

template <class T>
void gmm_sample(int type, const T* weights, const T* means, const T* pc, index_t B, index_t K, index_t D, index_t n,
                std::uint64_t seed, std::uint64_t stream0, T* out, std::int64_t* labels, cudaStream_t stream);

// Initialisation (gmm_init.cu), same arguments as the CPU's random_from_data_cpu /
// kmeanspp_cpu / kmeans_cpu (init.hpp) plus the scratch and the stream.
std::size_t gmm_random_from_data_scratch_bytes(index_t B, index_t N);
std::size_t gmm_kmeanspp_scratch_bytes(index_t B, index_t N);
std::size_t gmm_kmeans_scratch_bytes(index_t B, index_t N, index_t D, index_t K);

template <class T>
void gmm_random_from_data(const T* W, index_t Bx, index_t n_rep, index_t N, index_t K, std::uint64_t seed,
                          std::uint64_t stream0, std::int64_t* idx, void* scratch, std::size_t scratch_bytes,
                          cudaStream_t stream);

template <class T>
void gmm_kmeanspp(const T* X, const T* W, index_t Bx, index_t n_rep, index_t N, index_t D, index_t K,
                  std::uint64_t seed, std::uint64_t stream0, std::int64_t* idx, void* scratch,
                  std::size_t scratch_bytes, cudaStream_t stream);

// Lloyd iterations from centers [B, K, D] (in/out); labels [B, N] out (nearest centre).
template <class T>
void gmm_kmeans(const T* X, const T* W, index_t Bx, index_t n_rep, index_t N, index_t D, index_t K, index_t max_iter,
                T* centers, std::int64_t* labels, void* scratch, std::size_t scratch_bytes, cudaStream_t stream);

}  // namespace pygenmod::cuda
