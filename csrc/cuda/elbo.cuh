// Host-side declarations of the CUDA ELBO launchers (the per-row math is pygenmod/elbo.hpp's).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "pygenmod/elbo.hpp"

namespace pygenmod::cuda {
// One thread per row; outputs as in elbo::elbo_cpu / elbo::elbo_backward_cpu (null = skipped).
template <class T>
void elbo_forward(const elbo::Args<T>& a, T* out, T* log_lik, T* kl, std::int32_t* status, cudaStream_t st);
template <class T>
void elbo_backward(const elbo::Args<T>& a, const T* gelbo, const T* gll, const T* gkl, T* dmu, T* dp, T* dL, T* dpm,
                   T* dpp, T* ddec, T* ddp, cudaStream_t st);
}  // namespace pygenmod::cuda
