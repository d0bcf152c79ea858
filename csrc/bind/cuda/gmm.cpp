// _cuda_gmm: bindings of the CUDA Gaussian-mixture launchers. Device arrays in, no math here.
// Same names and argument order as _cpu_gmm, plus a trailing stream (the initialisation
// kernels included: X never leaves the device).
#include <string>

#include "args/gmm.hpp"
#include "cuda_array.hpp"
#include "gmm.cuh"
#include "pygenmod/gmm.hpp"  // check_cov_type

namespace py = pybind11;
using namespace pybind11::literals;
using namespace pygenmod;
using namespace pygenmod::bind;
using idx_t = py::ssize_t;

namespace {

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
                   args::gmm::cov_out<DeviceArrays, T>(cov, "covariances", type, B, K, D),
                   args::gmm::cov_out<DeviceArrays, T>(pc, "prec_chol", type, B, K, D),
                   out<DeviceArrays, T>(lb, "lower_bound", {B}), out<DeviceArrays, std::int64_t>(n_iter, "n_iter", {B}),
                   out<DeviceArrays, std::uint8_t>(conv, "converged", {B}),
                   out<DeviceArrays, std::uint8_t>(flags, "flags", {B, K}), tmp.ptr, tmp.bytes, as_stream(stream));
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
        args::gmm::m_step<DeviceArrays>(
            X, W, resp, reg, n_rep, type, weights, means, cov, pc, flags,
            [&](int t, auto x, auto w, auto rs, auto r, idx_t Bx, idx_t rep, idx_t N, idx_t D, idx_t K, auto... o) {
              const Scratch tmp = scratch(cuda::gmm_m_step_scratch_bytes(t, Bx * rep, N, D, K));
              cuda::gmm_m_step(t, x, w, rs, r, Bx, rep, N, D, K, o..., tmp.ptr, tmp.bytes, as_stream(stream));
            });
      },
      "X"_a, "W"_a, "resp"_a, "reg"_a, "n_rep"_a, "cov_type"_a, "weights"_a, "means"_a, "covariances"_a, "prec_chol"_a,
      "flags"_a, "stream"_a = 0);
  m.def(
      "e_step",
      [](py::object X, py::object weights, py::object means, py::object pc, int type, py::object lp,
         py::object log_resp, py::object log_norm, std::uintptr_t stream) {
        args::gmm::e_step<DeviceArrays>(X, weights, means, pc, type, lp, log_resp, log_norm,
                                        [&](auto... a) { cuda::gmm_e_step(a..., as_stream(stream)); });
      },
      "X"_a, "weights"_a, "means"_a, "prec_chol"_a, "cov_type"_a, "lp"_a, "log_resp"_a, "log_norm"_a, "stream"_a = 0);
  m.def(
      "sample",
      [](py::object weights, py::object means, py::object pc, int type, std::uint64_t seed, std::uint64_t stream0,
         py::object dst, py::object labels, std::uintptr_t stream) {
        args::gmm::sample<DeviceArrays>(weights, means, pc, type, seed, stream0, dst, labels,
                                        [&](auto... a) { cuda::gmm_sample(a..., as_stream(stream)); });
      },
      "weights"_a, "means"_a, "prec_chol"_a, "cov_type"_a, "seed"_a, "stream"_a, "out"_a, "labels"_a,
      "cuda_stream"_a = 0);
  m.def(
      "random_from_data",
      [](py::object W, py::ssize_t n_rep, py::ssize_t K, std::uint64_t seed, std::uint64_t stream0, py::object idx,
         std::uintptr_t stream) {
        args::gmm::random_from_data<DeviceArrays>(
            W, n_rep, K, seed, stream0, idx, [&](auto w, idx_t Bx, idx_t r, idx_t N, auto... a) {
              const Scratch tmp = scratch(cuda::gmm_random_from_data_scratch_bytes(Bx * r, N));
              cuda::gmm_random_from_data(w, Bx, r, N, a..., tmp.ptr, tmp.bytes, as_stream(stream));
            });
      },
      "W"_a, "n_rep"_a, "K"_a, "seed"_a, "stream"_a, "idx"_a, "cuda_stream"_a = 0);
  m.def(
      "kmeanspp",
      [](py::object X, py::object W, py::ssize_t n_rep, py::ssize_t K, std::uint64_t seed, std::uint64_t stream0,
         py::object idx, std::uintptr_t stream) {
        args::gmm::kmeanspp<DeviceArrays>(
            X, W, n_rep, K, seed, stream0, idx, [&](auto x, auto w, idx_t Bx, idx_t r, idx_t N, auto... a) {
              const Scratch tmp = scratch(cuda::gmm_kmeanspp_scratch_bytes(Bx * r, N));
              cuda::gmm_kmeanspp(x, w, Bx, r, N, a..., tmp.ptr, tmp.bytes, as_stream(stream));
            });
      },
      "X"_a, "W"_a, "n_rep"_a, "K"_a, "seed"_a, "stream"_a, "idx"_a, "cuda_stream"_a = 0);
  m.def(
      "kmeans",
      [](py::object X, py::object W, py::ssize_t n_rep, py::ssize_t max_iter, py::object centers, py::object labels,
         std::uintptr_t stream) {
        args::gmm::kmeans<DeviceArrays>(X, W, n_rep, max_iter, centers, labels,
                                        [&](auto x, auto w, idx_t Bx, idx_t r, idx_t N, idx_t D, idx_t K, auto... a) {
                                          const Scratch tmp = scratch(cuda::gmm_kmeans_scratch_bytes(Bx * r, N, D, K));
                                          cuda::gmm_kmeans(x, w, Bx, r, N, D, K, a..., tmp.ptr, tmp.bytes,
                                                           as_stream(stream));
                                        });
      },
      "X"_a, "W"_a, "n_rep"_a, "max_iter"_a, "centers"_a, "labels"_a, "cuda_stream"_a = 0);
}
