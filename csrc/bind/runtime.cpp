// _cpu_runtime: thread control and CPU facts for `pygenmod info`. No kernels here.
#include <omp.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <pybind11/numpy.h>

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "array_access.hpp"
#include "pygenmod/cpu_features.hpp"
#include "pygenmod/status.hpp"

namespace py = pybind11;
namespace bind = pygenmod::bind;

// Memory-bandwidth probes for `pygenmod bench`: all OpenMP threads stream an array.
// float64, C-contiguous, 1-D (array_access.hpp): an array_t argument would silently copy
// anything else (and stream_copy would then write into that copy).
static double stream_read(const py::array& a) {
  const double* p = bind::in<bind::HostArrays, double>(a, "src", {-1});
  const py::ssize_t n = a.size();
  // Eight independent partial sums: one chain of dependent adds would be bound by the add
  // latency (about 12 GB/s on two cores here), not by memory.
  double total = 0;
  py::gil_scoped_release nogil;
#pragma omp parallel for reduction(+ : total) schedule(static)
  for (py::ssize_t blk = 0; blk < n / 8; ++blk) {
    double s[8];
    for (int k = 0; k < 8; ++k) s[k] = p[8 * blk + k];
    total += ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
  }
  for (py::ssize_t i = n - n % 8; i < n; ++i) total += p[i];
  return total;
}

static void stream_copy(const py::array& src, const py::object& dst) {
  const py::ssize_t n = src.size();
  const double* s = bind::in<bind::HostArrays, double>(src, "src", {-1});
  double* d = bind::out<bind::HostArrays, double>(dst, "dst", {n});
  py::gil_scoped_release nogil;
#pragma omp parallel for schedule(static)
  for (py::ssize_t i = 0; i < n; ++i) d[i] = s[i];
}

static std::vector<std::string> simd_features() {
  const pygenmod::cpu::Features& f = pygenmod::cpu::features();
  std::vector<std::string> out;
  const std::pair<bool, const char*> named[] = {
      {f.sse42, "sse4.2"}, {f.avx, "avx"}, {f.avx2, "avx2"}, {f.fma, "fma"}, {f.avx512f, "avx512f"}};
  for (const auto& [has, name] : named)
    if (has) out.emplace_back(name);
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
  {  // pygenmod.Status's values (status.hpp), for tests/test_contracts.py
    py::dict flags;
#define PGM_X(name, bit) flags[#name] = static_cast<std::uint32_t>(pygenmod::status::name);
    PGM_STATUS_FLAGS(PGM_X)
#undef PGM_X
    m.attr("STATUS_FLAGS") = flags;
  }
  // Per OS thread (an OpenMP ICV); pygenmod._threads applies the process-wide count in each.
  m.def("set_num_threads", [](int n) {
    if (n < 1) throw std::invalid_argument("n: must be >= 1");
    omp_set_num_threads(n);
  });
  m.def("get_max_threads", []() { return omp_get_max_threads(); });
  m.def("openmp_version", []() { return _OPENMP; });
  m.def("cpu_features", &simd_features, "SIMD features of the CPU running now");
  m.def("stream_read", &stream_read, "sum of a float64 array on all threads (bandwidth probe)");
  m.def("stream_copy", &stream_copy, "copy src to dst on all threads (bandwidth probe)");
  m.def("compiled_simd", &compiled_simd, "SIMD level the kernels were compiled for");
}
