// _cuda_gmm: bindings of the CUDA Gaussian-mixture launchers. Device arrays in, no math here.
// Same names and argument order as _cpu_gmm, plus a trailing stream (the initialisation
// kernels included: X never leaves the device).
#include <string>

#include "cuda_array.hpp"
#include "gmm.cuh"
#include "pygenmod/gmm.hpp"  // check_cov_type

namespace py = pybind11;
using namespace pybind11::literals;
using namespace pygenmod;
using namespace pygenmod::bind;

namespace {

// get(shape) of a per-set covariance-shaped array (B sets, K components, D dims) by cov_type.
template <class Get>
auto by_cov_shape(int type, py::ssize_t B, py::ssize_t K, py::ssize_t D, Get&& get) {
  switch (type) {
    case 0:
      return get({B, K, D, D});
    case 1:
      return get({B, D, D});
    case 2:
      return get({B, K, D});
    default:
      return get({B, K});
  }
}
template <class T>
const T* cov_in(const py::object& a, const char* name, int type, py::ssize_t B, py::ssize_t K, py::ssize_t D) {
  return by_cov_shape(type, B, K, D, [&](Shape s) { return in<DeviceArrays, T>(a, name, s); });
}
template <class T>
T* cov_out(const py::object& a, const char* name, int type, py::ssize_t B, py::ssize_t K, py::ssize_t D) {
  return by_cov_shape(type, B, K, D, [&](Shape s) { return out<DeviceArrays, T>(a, name, s); });
}

std::vector<py::ssize_t> shape3(const py::object& X, const char* name) {
  auto s = shape_of<DeviceArrays>(X, name);
  if (s.size() != 3) throw std::invalid_argument(std::string(name) + ": expected (B, N, D)");
  return s;
}

template <class T>
void fit_t(const py::object& X, const py::object& W, const py::object& reg, py::ssize_t n_rep, int type,
           py::ssize_t max_iter, double tol, const py::object& weights, const py::object& means, const py::object& cov,
           const py::object& pc, const py::object& lb, const py::object& n_iter, const py::object& conv,
           const py::object& flags, std::uintptr_t stream) {
  auto s = shape3(X, "X");
  const auto Bx = s[0], N = s[1], D = s[2];
  auto ws = shape_of<DeviceArrays>(weights, "weights");
  if (ws.size() != 2 || n_rep < 1 || max_iter < 0) throw std::invalid_argument("weights: expected (B, K)");
  const auto B = Bx * n_rep, K = ws[1];
  if (K < 1) throw std::invalid_argument("weights: need at least one component");
  const Scratch tmp = scratch(cuda::gmm_fit_scratch_bytes(type, B, N, D, K));
  cuda::gmm_fit<T>(type, in<DeviceArrays, T>(X, "X", {Bx, N, D}), in<DeviceArrays, T>(W, "W", {Bx, N}),
                   in<DeviceArrays, T>(reg, "reg", {B}), Bx, n_rep, N, D, K, max_iter, tol,
                   out<DeviceArrays, T>(weights, "weights", {B, K}), out<DeviceArrays, T>(means, "means", {B, K, D}),
                   cov_out<T>(cov, "covariances", type, B, K, D), cov_out<T>(pc, "prec_chol", type, B, K, D),
                   out<DeviceArrays, T>(lb, "lower_bound", {B}), out<DeviceArrays, std::int64_t>(n_iter, "n_iter", {B}),
                   out<DeviceArrays, std::uint8_t>(conv, "converged", {B}),
                   out<DeviceArrays, std::uint8_t>(flags, "flags", {B, K}), tmp.ptr, tmp.bytes, as_stream(stream));
}

template <class T>
void m_step_t(const py::object& X, const py::object& W, const py::object& resp, const py::object& reg,
              py::ssize_t n_rep, int type, const py::object& weights, const py::object& means, const py::object& cov,
              const py::object& pc, const py::object& flags, std::uintptr_t stream) {
  auto s = shape3(X, "X");
  const auto Bx = s[0], N = s[1], D = s[2];
  auto rs = shape_of<DeviceArrays>(resp, "resp");
  if (rs.size() != 3 || n_rep < 1) throw std::invalid_argument("resp: expected (B, N, K)");
  const auto B = Bx * n_rep, K = rs[2];
  if (K < 1) throw std::invalid_argument("resp: need at least one component");
  const Scratch tmp = scratch(cuda::gmm_m_step_scratch_bytes(type, B, N, D, K));
  cuda::gmm_m_step<T>(type, in<DeviceArrays, T>(X, "X", {Bx, N, D}), in<DeviceArrays, T>(W, "W", {Bx, N}),
                      in<DeviceArrays, T>(resp, "resp", {B, N, K}), in<DeviceArrays, T>(reg, "reg", {B}), Bx, n_rep, N,
                      D, K, out<DeviceArrays, T>(weights, "weights", {B, K}),
                      out<DeviceArrays, T>(means, "means", {B, K, D}), cov_out<T>(cov, "covariances", type, B, K, D),
                      cov_out<T>(pc, "prec_chol", type, B, K, D),
                      out<DeviceArrays, std::uint8_t>(flags, "flags", {B, K}), tmp.ptr, tmp.bytes, as_stream(stream));
}

template <class T>
void e_step_t(const py::object& X, const py::object& weights, const py::object& means, const py::object& pc, int type,
              const py::object& lp, const py::object& log_resp, const py::object& log_norm, std::uintptr_t stream) {
  auto s = shape3(X, "X");
  const auto B = s[0], N = s[1], D = s[2];
  auto ws = shape_of<DeviceArrays>(weights, "weights");
  if (ws.size() != 2) throw std::invalid_argument("weights: expected (B, K)");
  const auto K = ws[1];
  cuda::gmm_e_step<T>(type, in<DeviceArrays, T>(X, "X", {B, N, D}), in<DeviceArrays, T>(weights, "weights", {B, K}),
                      in<DeviceArrays, T>(means, "means", {B, K, D}), cov_in<T>(pc, "prec_chol", type, B, K, D), B, N,
                      D, K, out<DeviceArrays, T>(lp, "lp", {B, N, K}),
                      out<DeviceArrays, T>(log_resp, "log_resp", {B, N, K}),
                      out<DeviceArrays, T>(log_norm, "log_norm", {B, N}), as_stream(stream));
}

template <class T>
void sample_t(const py::object& weights, const py::object& means, const py::object& pc, int type, std::uint64_t seed,
              std::uint64_t stream0, const py::object& dst, const py::object& labels, std::uintptr_t stream) {
  auto ws = shape_of<DeviceArrays>(weights, "weights");
  auto ms = shape_of<DeviceArrays>(means, "means");
  auto os = shape_of<DeviceArrays>(dst, "out");
  if (ws.size() != 2 || ms.size() != 3 || os.size() != 3) throw std::invalid_argument("sample: bad shapes");
  const auto B = ws[0], K = ws[1], D = ms[2], n = os[1];
  cuda::gmm_sample<T>(type, in<DeviceArrays, T>(weights, "weights", {B, K}),
                      in<DeviceArrays, T>(means, "means", {B, K, D}), cov_in<T>(pc, "prec_chol", type, B, K, D), B, K,
                      D, n, seed, stream0, out<DeviceArrays, T>(dst, "out", {B, n, D}),
                      out<DeviceArrays, std::int64_t>(labels, "labels", {B, n}), as_stream(stream));
}

template <class T>
void random_from_data_t(const py::object& W, py::ssize_t n_rep, py::ssize_t K, std::uint64_t seed,
                        std::uint64_t stream0, const py::object& idx, std::uintptr_t stream) {
  auto ws = shape_of<DeviceArrays>(W, "W");
  if (ws.size() != 2) throw std::invalid_argument("W: expected (B, N)");
  const auto Bx = ws[0], N = ws[1], B = Bx * n_rep;
  const Scratch tmp = scratch(cuda::gmm_random_from_data_scratch_bytes(B, N));
  cuda::gmm_random_from_data<T>(in<DeviceArrays, T>(W, "W", {Bx, N}), Bx, n_rep, N, K, seed, stream0,
                                out<DeviceArrays, std::int64_t>(idx, "idx", {B, K}), tmp.ptr, tmp.bytes,
                                as_stream(stream));
}

template <class T>
void kmeanspp_t(const py::object& X, const py::object& W, py::ssize_t n_rep, py::ssize_t K, std::uint64_t seed,
                std::uint64_t stream0, const py::object& idx, std::uintptr_t stream) {
  auto s = shape3(X, "X");
  const auto Bx = s[0], N = s[1], D = s[2], B = Bx * n_rep;
  const Scratch tmp = scratch(cuda::gmm_kmeanspp_scratch_bytes(B, N));
  cuda::gmm_kmeanspp<T>(in<DeviceArrays, T>(X, "X", {Bx, N, D}), in<DeviceArrays, T>(W, "W", {Bx, N}), Bx, n_rep, N, D,
                        K, seed, stream0, out<DeviceArrays, std::int64_t>(idx, "idx", {B, K}), tmp.ptr, tmp.bytes,
                        as_stream(stream));
}

template <class T>
void kmeans_t(const py::object& X, const py::object& W, py::ssize_t n_rep, py::ssize_t max_iter,
              const py::object& centers, const py::object& labels, std::uintptr_t stream) {
  auto s = shape3(X, "X");
  const auto Bx = s[0], N = s[1], D = s[2], B = Bx * n_rep;
  auto cs = shape_of<DeviceArrays>(centers, "centers");
  if (cs.size() != 3) throw std::invalid_argument("centers: expected (B, K, D)");
  const auto K = cs[1];
  const Scratch tmp = scratch(cuda::gmm_kmeans_scratch_bytes(B, N, D, K));
  cuda::gmm_kmeans<T>(in<DeviceArrays, T>(X, "X", {Bx, N, D}), in<DeviceArrays, T>(W, "W", {Bx, N}), Bx, n_rep, N, D, K,
                      max_iter, out<DeviceArrays, T>(centers, "centers", {B, K, D}),
                      out<DeviceArrays, std::int64_t>(labels, "labels", {B, N}), tmp.ptr, tmp.bytes, as_stream(stream));
}

}  // namespace

PYBIND11_MODULE(_cuda_gmm, m) {
  m.doc() = "pygenmod Gaussian mixtures, CUDA kernels";
  m.def(
      "fit",
      [](py::object X, py::object W, py::object reg, py::ssize_t n_rep, int type, py::ssize_t max_iter, double tol,
         py::object weights, py::object means, py::object cov, py::object pc, py::object lb, py::object n_iter,
         py::object conv, py::object flags, std::uintptr_t stream) {
        gmm::check_cov_type(type);
        dispatch_float<DeviceArrays>(X, "X", [&](auto tag) {
          fit_t<decltype(tag)>(X, W, reg, n_rep, type, max_iter, tol, weights, means, cov, pc, lb, n_iter, conv, flags,
                               stream);
        });
      },
      "X"_a, "W"_a, "reg"_a, "n_rep"_a, "cov_type"_a, "max_iter"_a, "tol"_a, "weights"_a, "means"_a, "covariances"_a,
      "prec_chol"_a, "lower_bound"_a, "n_iter"_a, "converged"_a, "flags"_a, "stream"_a = 0);
  m.def(
      "m_step",
      [](py::object X, py::object W, py::object resp, py::object reg, py::ssize_t n_rep, int type, py::object weights,
         py::object means, py::object cov, py::object pc, py::object flags, std::uintptr_t stream) {
        gmm::check_cov_type(type);
        dispatch_float<DeviceArrays>(X, "X", [&](auto tag) {
          m_step_t<decltype(tag)>(X, W, resp, reg, n_rep, type, weights, means, cov, pc, flags, stream);
        });
      },
      "X"_a, "W"_a, "resp"_a, "reg"_a, "n_rep"_a, "cov_type"_a, "weights"_a, "means"_a, "covariances"_a, "prec_chol"_a,
      "flags"_a, "stream"_a = 0);
  m.def(
      "e_step",
      [](py::object X, py::object weights, py::object means, py::object pc, int type, py::object lp,
         py::object log_resp, py::object log_norm, std::uintptr_t stream) {
        gmm::check_cov_type(type);
        dispatch_float<DeviceArrays>(X, "X", [&](auto tag) {
          e_step_t<decltype(tag)>(X, weights, means, pc, type, lp, log_resp, log_norm, stream);
        });
      },
      "X"_a, "weights"_a, "means"_a, "prec_chol"_a, "cov_type"_a, "lp"_a, "log_resp"_a, "log_norm"_a, "stream"_a = 0);
  m.def(
      "sample",
      [](py::object weights, py::object means, py::object pc, int type, std::uint64_t seed, std::uint64_t stream0,
         py::object dst, py::object labels, std::uintptr_t stream) {
        gmm::check_cov_type(type);
        dispatch_float<DeviceArrays>(weights, "weights", [&](auto tag) {
          sample_t<decltype(tag)>(weights, means, pc, type, seed, stream0, dst, labels, stream);
        });
      },
      "weights"_a, "means"_a, "prec_chol"_a, "cov_type"_a, "seed"_a, "stream"_a, "out"_a, "labels"_a,
      "cuda_stream"_a = 0);
  m.def(
      "random_from_data",
      [](py::object W, py::ssize_t n_rep, py::ssize_t K, std::uint64_t seed, std::uint64_t stream0, py::object idx,
         std::uintptr_t stream) {
        if (n_rep < 1 || K < 1) throw std::invalid_argument("n_rep and K must be >= 1");
        dispatch_float<DeviceArrays>(
            W, "W", [&](auto tag) { random_from_data_t<decltype(tag)>(W, n_rep, K, seed, stream0, idx, stream); });
      },
      "W"_a, "n_rep"_a, "K"_a, "seed"_a, "stream"_a, "idx"_a, "cuda_stream"_a = 0);
  m.def(
      "kmeanspp",
      [](py::object X, py::object W, py::ssize_t n_rep, py::ssize_t K, std::uint64_t seed, std::uint64_t stream0,
         py::object idx, std::uintptr_t stream) {
        if (n_rep < 1 || K < 1) throw std::invalid_argument("n_rep and K must be >= 1");
        dispatch_float<DeviceArrays>(
            X, "X", [&](auto tag) { kmeanspp_t<decltype(tag)>(X, W, n_rep, K, seed, stream0, idx, stream); });
      },
      "X"_a, "W"_a, "n_rep"_a, "K"_a, "seed"_a, "stream"_a, "idx"_a, "cuda_stream"_a = 0);
  m.def(
      "kmeans",
      [](py::object X, py::object W, py::ssize_t n_rep, py::ssize_t max_iter, py::object centers, py::object labels,
         std::uintptr_t stream) {
        if (n_rep < 1 || max_iter < 0) throw std::invalid_argument("n_rep >= 1 and max_iter >= 0 required");
        dispatch_float<DeviceArrays>(
            X, "X", [&](auto tag) { kmeans_t<decltype(tag)>(X, W, n_rep, max_iter, centers, labels, stream); });
      },
      "X"_a, "W"_a, "n_rep"_a, "max_iter"_a, "centers"_a, "labels"_a, "cuda_stream"_a = 0);
}
