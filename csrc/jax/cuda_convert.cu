// Device side of cuda_convert.cuh: element-wise integer conversions (no math of any kernel).
#include <stdexcept>
#include <string>

#include "cuda_convert.cuh"

namespace pygenmod::jaxffi {
namespace {
template <class I>
__global__ void widen_kernel(const I* in, std::int64_t* out, std::int64_t n, std::int64_t A) {
  const std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x;
  if (i < n) {
    const std::int64_t a = static_cast<std::int64_t>(in[i]);
    out[i] = a < 0 ? 0 : (a >= A ? A - 1 : a);
  }
}

__global__ void narrow_kernel(const std::int64_t* in, std::int32_t* out, std::int64_t n) {
  const std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x;
  if (i < n) out[i] = static_cast<std::int32_t>(in[i]);
}

void check(const char* what) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

unsigned blocks(std::int64_t n) { return static_cast<unsigned>((n + 255) / 256); }
}  // namespace

template <class I>
void widen_actions(const I* in, std::int64_t* out, std::int64_t n, std::int64_t A, cudaStream_t stream) {
  if (n == 0) return;
  widen_kernel<I><<<blocks(n), 256, 0, stream>>>(in, out, n, A);
  check("widen_actions");
}
template void widen_actions<std::int32_t>(const std::int32_t*, std::int64_t*, std::int64_t, std::int64_t, cudaStream_t);
template void widen_actions<std::int64_t>(const std::int64_t*, std::int64_t*, std::int64_t, std::int64_t, cudaStream_t);

void narrow_actions(const std::int64_t* in, std::int32_t* out, std::int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  narrow_kernel<<<blocks(n), 256, 0, stream>>>(in, out, n);
  check("narrow_actions");
}
}  // namespace pygenmod::jaxffi
