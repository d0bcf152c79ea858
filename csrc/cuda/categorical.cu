// CUDA launchers for the categorical kernels: one thread per row runs the row functions of
// pygenmod/categorical.hpp (the same code as the CPU launchers).
#include "categorical.cuh"
#include "cuda_check.cuh"
#include "pygenmod/categorical.hpp"

namespace pygenmod::cuda {
using namespace pygenmod::categorical;
namespace {
constexpr unsigned THREADS = 128;

__device__ __forceinline__ index_t row_id() { return blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; }

template <class T>
__global__ void log_prob_kernel(const T* x, const std::uint8_t* m, index_t mrows, const std::int64_t* a, index_t B,
                                index_t K, T* out, std::int32_t* status) {
  const index_t b = row_id();
  if (b < B) status[b] = log_prob_row(x + b * K, mask_row(m, mrows, b, K), K, a[b], out + b);
}

template <class T>
__global__ void log_prob_backward_kernel(const T* x, const std::uint8_t* m, index_t mrows, const std::int64_t* a,
                                         index_t B, index_t K, const T* g, T* dx) {
  const index_t b = row_id();
  if (b < B) log_prob_row_backward(x + b * K, mask_row(m, mrows, b, K), K, a[b], g[b], dx + b * K);
}

template <class T>
__global__ void entropy_kernel(const T* x, const std::uint8_t* m, index_t mrows, index_t B, index_t K, T* out,
                               std::int32_t* status) {
  const index_t b = row_id();
  if (b < B) status[b] = entropy_row(x + b * K, mask_row(m, mrows, b, K), K, out + b);
}

template <class T>
__global__ void entropy_backward_kernel(const T* x, const std::uint8_t* m, index_t mrows, index_t B, index_t K,
                                        const T* g, T* dx) {
  const index_t b = row_id();
  if (b < B) entropy_row_backward(x + b * K, mask_row(m, mrows, b, K), K, g[b], dx + b * K);
}

template <class T>
__global__ void kl_kernel(const T* p, const T* q, const std::uint8_t* mp, index_t mprows, const std::uint8_t* mq,
                          index_t mqrows, bool p_is_prob, index_t B, index_t K, T* out, std::int32_t* status) {
  const index_t b = row_id();
  if (b < B)
    status[b] =
        kl_row(p + b * K, q + b * K, mask_row(mp, mprows, b, K), mask_row(mq, mqrows, b, K), K, p_is_prob, out + b);
}

template <class T>
__global__ void kl_backward_kernel(const T* p, const T* q, const std::uint8_t* mp, index_t mprows,
                                   const std::uint8_t* mq, index_t mqrows, bool p_is_prob, index_t B, index_t K,
                                   const T* g, T* dp, T* dq) {
  const index_t b = row_id();
  if (b < B)
    kl_row_backward(p + b * K, q + b * K, mask_row(mp, mprows, b, K), mask_row(mq, mqrows, b, K), K, p_is_prob, g[b],
                    dp ? dp + b * K : nullptr, dq + b * K);
}
}  // namespace

template <class T>
void categorical_log_prob(const T* x, const std::uint8_t* m, index_t mrows, const std::int64_t* a, index_t B, index_t K,
                          T* out, std::int32_t* status, cudaStream_t st) {
  if (B == 0) return;
  log_prob_kernel<T><<<blocks_for(B, THREADS), THREADS, 0, st>>>(x, m, mrows, a, B, K, out, status);
  check_launch("categorical_log_prob");
}

template <class T>
void categorical_log_prob_backward(const T* x, const std::uint8_t* m, index_t mrows, const std::int64_t* a, index_t B,
                                   index_t K, const T* g, T* dx, cudaStream_t st) {
  if (B == 0) return;
  log_prob_backward_kernel<T><<<blocks_for(B, THREADS), THREADS, 0, st>>>(x, m, mrows, a, B, K, g, dx);
  check_launch("categorical_log_prob_backward");
}

template <class T>
void categorical_entropy(const T* x, const std::uint8_t* m, index_t mrows, index_t B, index_t K, T* out,
                         std::int32_t* status, cudaStream_t st) {
  if (B == 0) return;
  entropy_kernel<T><<<blocks_for(B, THREADS), THREADS, 0, st>>>(x, m, mrows, B, K, out, status);
  check_launch("categorical_entropy");
}

template <class T>
void categorical_entropy_backward(const T* x, const std::uint8_t* m, index_t mrows, index_t B, index_t K, const T* g,
                                  T* dx, cudaStream_t st) {
  if (B == 0) return;
  entropy_backward_kernel<T><<<blocks_for(B, THREADS), THREADS, 0, st>>>(x, m, mrows, B, K, g, dx);
  check_launch("categorical_entropy_backward");
}

template <class T>
void categorical_kl(const T* p, const T* q, const std::uint8_t* mp, index_t mprows, const std::uint8_t* mq,
                    index_t mqrows, bool p_is_prob, index_t B, index_t K, T* out, std::int32_t* status,
                    cudaStream_t st) {
  if (B == 0) return;
  kl_kernel<T><<<blocks_for(B, THREADS), THREADS, 0, st>>>(p, q, mp, mprows, mq, mqrows, p_is_prob, B, K, out, status);
  check_launch("categorical_kl");
}

template <class T>
void categorical_kl_backward(const T* p, const T* q, const std::uint8_t* mp, index_t mprows, const std::uint8_t* mq,
                             index_t mqrows, bool p_is_prob, index_t B, index_t K, const T* g, T* dp, T* dq,
                             cudaStream_t st) {
  if (B == 0) return;
  kl_backward_kernel<T>
      <<<blocks_for(B, THREADS), THREADS, 0, st>>>(p, q, mp, mprows, mq, mqrows, p_is_prob, B, K, g, dp, dq);
  check_launch("categorical_kl_backward");
}

#define PGM_INSTANTIATE(T)                                                                                             \
  template void categorical_log_prob<T>(const T*, const std::uint8_t*, index_t, const std::int64_t*, index_t, index_t, \
                                        T*, std::int32_t*, cudaStream_t);                                              \
  template void categorical_log_prob_backward<T>(const T*, const std::uint8_t*, index_t, const std::int64_t*, index_t, \
                                                 index_t, const T*, T*, cudaStream_t);                                 \
  template void categorical_entropy<T>(const T*, const std::uint8_t*, index_t, index_t, index_t, T*, std::int32_t*,    \
                                       cudaStream_t);                                                                  \
  template void categorical_entropy_backward<T>(const T*, const std::uint8_t*, index_t, index_t, index_t, const T*,    \
                                                T*, cudaStream_t);                                                     \
  template void categorical_kl<T>(const T*, const T*, const std::uint8_t*, index_t, const std::uint8_t*, index_t,      \
                                  bool, index_t, index_t, T*, std::int32_t*, cudaStream_t);                            \
  template void categorical_kl_backward<T>(const T*, const T*, const std::uint8_t*, index_t, const std::uint8_t*,      \
                                           index_t, bool, index_t, index_t, const T*, T*, T*, cudaStream_t);
PGM_INSTANTIATE(float)
PGM_INSTANTIATE(double)
#undef PGM_INSTANTIATE

}  // namespace pygenmod::cuda
