// CUDA launcher for the GAE scan: one thread per environment walks time backwards; a warp
// reads 32 neighbouring environments of one time step, so every load is coalesced.
#include <cstdint>

#include "cuda_check.cuh"
#include "pygenmod/returns.hpp"
#include "returns.cuh"

namespace pygenmod::cuda {

template <class T, class F>
__global__ void gae_kernel(const T* r, const T* values, const T* next_values, const T* bootstrap, const F* terminated,
                           const F* truncated, const F* mask, const T* gamma, const T* lam, index_t Tn, index_t B,
                           T* adv, T* ret, std::uint8_t* nonfinite) {
  const index_t b = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x;
  if (b >= B) return;
  T carry = 0, nf = 0;
  returns::gae_columns(r, values, next_values, bootstrap, terminated, truncated, mask, gamma, lam, Tn, B, b, carry, adv,
                       ret, nf);
  if (!(nf == T(0)) && nonfinite) *nonfinite = 1;  // every writer stores the same value
}

template <class T, class F>
void gae(const T* r, const T* values, const T* next_values, const T* bootstrap, const F* terminated, const F* truncated,
         const F* mask, const T* gamma, const T* lam, index_t Tn, index_t B, T* adv, T* ret, std::uint8_t* nonfinite,
         cudaStream_t stream) {
  if (Tn * B == 0) return;
  const unsigned threads = 128;
  gae_kernel<T, F><<<blocks_for(B, threads), threads, 0, stream>>>(
      r, values, next_values, bootstrap, terminated, truncated, mask, gamma, lam, Tn, B, adv, ret, nonfinite);
  check_launch("gae");
}

#define PGM_INSTANTIATE(T, F)                                                                                       \
  template void gae<T, F>(const T*, const T*, const T*, const T*, const F*, const F*, const F*, const T*, const T*, \
                          index_t, index_t, T*, T*, std::uint8_t*, cudaStream_t);
PGM_INSTANTIATE(float, float)
PGM_INSTANTIATE(double, double)
PGM_INSTANTIATE(float, std::uint8_t)
PGM_INSTANTIATE(double, std::uint8_t)
#undef PGM_INSTANTIATE

}  // namespace pygenmod::cuda
