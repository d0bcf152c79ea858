// _cuda_gmm: bindings of the CUDA Gaussian-mixture launchers. Device arrays in, no math here;
// the argument unpacking is args/gmm.hpp (shared with _cpu_gmm). Same names and argument order
// as _cpu_gmm, plus a trailing stream (the initialisation kernels included: X never leaves the
// device); each launcher sizes its scratch from the checked shapes.
#include "args/gmm.hpp"
#include "cuda_array.hpp"
#include "gmm.cuh"

namespace py = pybind11;
using namespace pybind11::literals;
using namespace pygenmod;
using namespace pygenmod::bind;
using idx_t = py::ssize_t;

PYBIND11_MODULE(_cuda_gmm, m) {
  m.doc() = "pygenmod Gaussian mixtures, CUDA kernels";
  m.def(
      "fit",
      [](py::object X, py::object W, py::object reg, py::ssize_t n_rep, int type, py::ssize_t max_iter, double tol,
         py::object weights, py::object means, py::object cov, py::object pc, py::object lb, py::object n_iter,
         py::object conv, py::object flags, std::uintptr_t stream) {
        args::gmm::fit<DeviceArrays>(
            X, W, reg, n_rep, type, max_iter, tol, weights, means, cov, pc, lb, n_iter, conv, flags,
            [&](int t, auto x, auto w, auto r, idx_t Bx, idx_t rep, idx_t N, idx_t D, idx_t K, auto... o) {
              const Scratch tmp = scratch(cuda::gmm_fit_scratch_bytes(t, Bx * rep, N, D, K));
              cuda::gmm_fit(t, x, w, r, Bx, rep, N, D, K, o..., tmp.ptr, tmp.bytes, as_stream(stream));
            });
      },
      "X"_a, "W"_a, "reg"_a, "n_rep"_a, "cov_type"_a, "max_iter"_a, "tol"_a, "weights"_a, "means"_a, "covariances"_a,
      "prec_chol"_a, "lower_bound"_a, "n_iter"_a, "converged"_a, "flags"_a, "stream"_a = 0);
  m.def(
      "stats_split",
      [](py::ssize_t n_sets, py::ssize_t N, py::ssize_t D, py::ssize_t K, int type) {
        return cuda::gmm_stats_split(type, n_sets, N, D, K);
      },
      "n_sets"_a, "N"_a, "D"_a, "K"_a, "cov_type"_a,
      "Partial sums per point group the statistics kernel uses for n_sets running sets on the current device "
      "(1, or 64 tiles when few sets would leave the GPU idle; the sums are the same either way).");
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
