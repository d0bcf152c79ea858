// _cpu_runtime: the thread pool every CPU module shares, and CPU facts for `pygenmod info`.
// No kernels here.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <pybind11/numpy.h>

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "array_access.hpp"
#include "bind_common.hpp"
#include "fast_path.hpp"
#include "pygenmod/cpu_features.hpp"
#include "pygenmod/parallel.hpp"
#include "pygenmod/status.hpp"

namespace py = pybind11;
namespace bind = pygenmod::bind;

// The validation layer's NaN/inf scan (pygenmod._validate) of a small aligned, C-contiguous
// float32/64 array: True or False, or None for anything else (NumPy then scans it). It reads
// every entry, so the Python layer hands it plain ndarrays only (not masked arrays). A NumPy reduction costs
// about 1 us at any size up to a few thousand entries, most of a tiny call's checks; this call
// about 0.1 us.
constexpr py::ssize_t kFiniteScanMax = 1 << 14;

static py::object all_finite(const py::handle& h) {
  if (!py::isinstance<py::array>(h)) return py::none();
  const auto a = py::reinterpret_borrow<py::array>(h);
  if (a.size() > kFiniteScanMax) return py::none();
  if (const double* p = bind::fast::view<double>(a)) return py::bool_(bind::fast::all_finite(p, a.size()));
  if (const float* p = bind::fast::view<float>(a)) return py::bool_(bind::fast::all_finite(p, a.size()));
  return py::none();
}

// Memory-bandwidth probes for `pygenmod bench`: all the pool's threads stream an array.
// float64, C-contiguous, 1-D (array_access.hpp): an array_t argument would silently copy
// anything else (and stream_copy would then write into that copy).
static double stream_read(const py::array& a) {
  const double* p = bind::in<bind::HostArrays, double>(a, "src", {-1});
  const py::ssize_t n = a.size(), blocks = n / 8;
  const py::ssize_t chunk = std::max<py::ssize_t>(1 << 14, pygenmod::share_chunk(blocks));
  std::vector<double> part(static_cast<std::size_t>((blocks + chunk - 1) / chunk), 0.0);
  py::gil_scoped_release nogil;
  pygenmod::parallel_chunks(blocks, chunk, true, [&](py::ssize_t b0, py::ssize_t b1, int) {
    // Eight independent partial sums: one chain of dependent adds would be bound by the add
    // latency (about 12 GB/s on two cores here), not by memory.
    double total = 0;
    for (py::ssize_t blk = b0; blk < b1; ++blk) {
      double s[8];
      for (int k = 0; k < 8; ++k) s[k] = p[8 * blk + k];
      total += ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    }
    part[static_cast<std::size_t>(b0 / chunk)] = total;
  });
  double total = 0;
  for (const double x : part) total += x;
  for (py::ssize_t i = n - n % 8; i < n; ++i) total += p[i];
  return total;
}

static void stream_copy(const py::array& src, const py::object& dst) {
  const py::ssize_t n = src.size();
  const double* s = bind::in<bind::HostArrays, double>(src, "src", {-1});
  double* d = bind::out<bind::HostArrays, double>(dst, "dst", {n});
  py::gil_scoped_release nogil;
  pygenmod::parallel_chunks(n, std::max<py::ssize_t>(1 << 17, pygenmod::share_chunk(n)), true,
                            [&](py::ssize_t b, py::ssize_t e, int) { std::copy(s + b, s + e, d + b); });
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
  m.doc() = "pygenmod runtime: the CPU thread pool and CPU features";
  {  // pygenmod.Status's values (status.hpp), for tests/test_contracts.py
    py::dict flags;
#define PGM_X(name, bit) flags[#name] = static_cast<std::uint32_t>(pygenmod::status::name);
    PGM_STATUS_FLAGS(PGM_X)
#undef PGM_X
    m.attr("STATUS_FLAGS") = flags;
  }
  // The pool of every CPU module (bind_common.hpp adopts it): one thread count, one set of
  // workers for the whole package. The capsule's name carries the layout's version.
  m.attr("_pool") = py::capsule(&pygenmod::threads::pool(), pygenmod::shared_pool::kCapsule);
  m.def("set_num_threads", [](int n) {
    if (n < 1) throw std::invalid_argument("n: must be >= 1");
    pygenmod::threads::pool().set_threads(n);
  });
  m.def("get_max_threads", []() { return pygenmod::threads::pool().threads(); });
  m.def(
      "started_threads", []() { return pygenmod::threads::pool().started(); },
      "pool workers started so far (besides the calling thread)");
  m.def("cpu_features", &simd_features, "SIMD features of the CPU running now");
  m.def("stream_read", &stream_read, "sum of a float64 array on all threads (bandwidth probe)");
  m.def("stream_copy", &stream_copy, "copy src to dst on all threads (bandwidth probe)");
  m.def("compiled_simd", &compiled_simd, "SIMD level the kernels were compiled for");
  m.def("all_finite", &all_finite, "no NaN/inf in a small C-contiguous float array; None: not such an array");
}
