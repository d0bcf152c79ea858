// CUDA launchers of the fused ELBO: one thread per row, running the host/device row functions
// of pygenmod/elbo.hpp (the same code as the CPU launchers).
#include "cuda_check.cuh"
#include "elbo.cuh"

namespace pygenmod::cuda {
namespace {
constexpr unsigned THREADS = 128;

template <class T>
__global__ void elbo_kernel(const elbo::Args<T> a, T* out, T* ll, T* kl, std::int32_t* status) {
  const index_t b = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x;
  if (b >= a.B) return;
  status[b] = elbo::elbo_row<T>(a, b, out, ll, kl);
}

template <class T>
__global__ void elbo_backward_kernel(const elbo::Args<T> a, const T* ge, const T* gl, const T* gk, T* dmu, T* dp, T* dL,
                                     T* dpm, T* dpp, T* ddec, T* ddp) {
  const index_t b = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x;
  if (b >= a.B) return;
  elbo::elbo_row_backward<T>(a, b, ge ? ge[b] : T(0), gl ? gl[b] : T(0), gk ? gk[b] : T(0), dmu, dp, dL, dpm, dpp, ddec,
                             ddp);
}
}  // namespace

template <class T>
void elbo_forward(const elbo::Args<T>& a, T* out, T* log_lik, T* kl, std::int32_t* status, cudaStream_t st) {
  if (a.B == 0) return;
  elbo_kernel<T><<<blocks_for(a.B, THREADS), THREADS, 0, st>>>(a, out, log_lik, kl, status);
  check_launch("elbo");
}

template <class T>
void elbo_backward(const elbo::Args<T>& a, const T* gelbo, const T* gll, const T* gkl, T* dmu, T* dp, T* dL, T* dpm,
                   T* dpp, T* ddec, T* ddp, cudaStream_t st) {
  if (a.B == 0) return;
  elbo_backward_kernel<T>
      <<<blocks_for(a.B, THREADS), THREADS, 0, st>>>(a, gelbo, gll, gkl, dmu, dp, dL, dpm, dpp, ddec, ddp);
  check_launch("elbo_backward");
}

#define PGM_INSTANTIATE(T)                                                                                       \
  template void elbo_forward<T>(const elbo::Args<T>&, T*, T*, T*, std::int32_t*, cudaStream_t);                  \
  template void elbo_backward<T>(const elbo::Args<T>&, const T*, const T*, const T*, T*, T*, T*, T*, T*, T*, T*, \
                                 cudaStream_t);
PGM_INSTANTIATE(float)
PGM_INSTANTIATE(double)
}  // namespace pygenmod::cuda
