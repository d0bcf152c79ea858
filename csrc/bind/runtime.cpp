// _cpu_runtime: thread control and CPU facts for `pygenmod info`. No kernels here.
#include <omp.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

namespace py = pybind11;

static std::vector<std::string> simd_features() {
  std::vector<std::string> out;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("sse4.2")) out.emplace_back("sse4.2");
  if (__builtin_cpu_supports("avx")) out.emplace_back("avx");
  if (__builtin_cpu_supports("avx2")) out.emplace_back("avx2");
  if (__builtin_cpu_supports("fma")) out.emplace_back("fma");
  if (__builtin_cpu_supports("avx512f")) out.emplace_back("avx512f");
#endif
  return out;
}

static std::string compiled_simd() {
#if defined(__AVX512F__)
  return "avx512f";
#elif defined(__AVX2__)
  return "avx2";
#elif defined(__SSE2__)
  return "sse2";
#else
  return "generic";
#endif
}

PYBIND11_MODULE(_cpu_runtime, m) {
  m.doc() = "pygenmod runtime: OpenMP threads and CPU features";
  m.def("set_num_threads", [](int n) { omp_set_num_threads(n); });
  m.def("get_max_threads", []() { return omp_get_max_threads(); });
  m.def("openmp_version", []() { return _OPENMP; });
  m.def("cpu_features", &simd_features, "SIMD features of the CPU running now");
  m.def("compiled_simd", &compiled_simd, "SIMD level the kernels were compiled for");
}
