// _cpu_gmm: bindings of the Gaussian-mixture kernels. Arrays in, GIL released, no math here;
// the argument unpacking is args/gmm.hpp (shared with _cuda_gmm). cov_type: 0 full, 1 tied,
// 2 diag, 3 spherical (shapes of covariances/prec_chol follow it).
#include <cstdint>
#include <vector>

#include "args/gmm.hpp"
#include "bind_common.hpp"
#include "pygenmod/gmm.hpp"

namespace py = pybind11;
using namespace pybind11::literals;
using namespace pygenmod;
using namespace pygenmod::bind;

namespace {

// Private: caps the instruction set of the EM kernels (-1 none, 0 baseline, 1 AVX2+FMA,
// 2 AVX-512); returns (previous cap, instruction set the CPU has). For tests and diagnostics.
py::tuple isa_cap(int cap) {
  if (cap < -1 || cap > 2) throw std::invalid_argument("cap: expected -1, 0, 1 or 2");
  const int prev = cpu::set_isa_cap(cap);
  return py::make_tuple(prev, cpu::detected_isa());
}

}  // namespace

PYBIND11_MODULE(_cpu_gmm, m) {
  pygenmod::shared_pool::adopt();
  m.doc() = "pygenmod Gaussian mixtures, compiled CPU kernels (OpenMP)";
  // The integer codes of the Python <-> C++ contract, named once here (the Python layer's copies
  // are checked against these by tests/test_contracts.py).
  m.attr("COV_TYPES") = py::dict("full"_a = int(gmm::FULL), "tied"_a = int(gmm::TIED), "diag"_a = int(gmm::DIAG),
                                 "spherical"_a = int(gmm::SPHERICAL));
  m.attr("FLAGS") = py::dict("COLLAPSED"_a = int(gmm::COLLAPSED), "REGULARISED"_a = int(gmm::REGULARISED),
                             "EMPTY_SET"_a = int(gmm::EMPTY_SET));
  m.def(
      "fit",
      [](py::array X, py::array W, py::array reg, py::ssize_t n_rep, int cov_type, py::ssize_t max_iter, double tol,
         py::array weights, py::array means, py::array cov, py::array prec_chol, py::array lower_bound,
         py::array n_iter, py::array converged, py::array flags) {
        args::gmm::fit<HostArrays>(X, W, reg, n_rep, cov_type, max_iter, tol, weights, means, cov, prec_chol,
                                   lower_bound, n_iter, converged, flags, [](auto... a) {
                                     Interruptible intr;  // Ctrl-C ends the EM loop
                                     {
                                       py::gil_scoped_release nogil;
                                       gmm::fit_cpu(a..., intr.stop());
                                     }
                                     intr.rethrow();
                                   });
      },
      "X"_a, "W"_a, "reg"_a, "n_rep"_a, "cov_type"_a, "max_iter"_a, "tol"_a, "weights"_a, "means"_a, "covariances"_a,
      "prec_chol"_a, "lower_bound"_a, "n_iter"_a, "converged"_a, "flags"_a);
  m.def(
      "m_step",
      [](py::array X, py::array W, py::array resp, py::array reg, py::ssize_t n_rep, int cov_type, py::array weights,
         py::array means, py::array cov, py::array prec_chol, py::array flags) {
        args::gmm::m_step<HostArrays>(X, W, resp, reg, n_rep, cov_type, weights, means, cov, prec_chol, flags,
                                      nogil([](auto... a) { gmm::m_step_cpu(a...); }));
      },
      "X"_a, "W"_a, "resp"_a, "reg"_a, "n_rep"_a, "cov_type"_a, "weights"_a, "means"_a, "covariances"_a, "prec_chol"_a,
      "flags"_a);
  m.def(
      "e_step",
      [](py::array X, py::array weights, py::array means, py::array prec_chol, int cov_type, py::array lp,
         py::array log_resp, py::array log_norm) {
        args::gmm::e_step<HostArrays>(X, weights, means, prec_chol, cov_type, lp, log_resp, log_norm,
                                      nogil([](auto... a) { gmm::e_step_cpu(a...); }));
      },
      "X"_a, "weights"_a, "means"_a, "prec_chol"_a, "cov_type"_a, "lp"_a, "log_resp"_a, "log_norm"_a);
  m.def(
      "sample",
      [](py::array weights, py::array means, py::array prec_chol, int cov_type, std::uint64_t seed,
         std::uint64_t stream, py::array dst, py::array labels) {
        args::gmm::sample<HostArrays>(weights, means, prec_chol, cov_type, seed, stream, dst, labels,
                                      nogil([](auto... a) { gmm::sample_cpu(a...); }));
      },
      "weights"_a, "means"_a, "prec_chol"_a, "cov_type"_a, "seed"_a, "stream"_a, "out"_a, "labels"_a);
  m.def(
      "random_from_data",
      [](py::array W, py::ssize_t n_rep, py::ssize_t K, std::uint64_t seed, std::uint64_t stream, py::array idx) {
        args::gmm::random_from_data<HostArrays>(W, n_rep, K, seed, stream, idx,
                                                nogil([](auto... a) { gmm::random_from_data_cpu(a...); }));
      },
      "W"_a, "n_rep"_a, "K"_a, "seed"_a, "stream"_a, "idx"_a);
  m.def(
      "kmeanspp",
      [](py::array X, py::array W, py::ssize_t n_rep, py::ssize_t K, std::uint64_t seed, std::uint64_t stream,
         py::array idx) {
        args::gmm::kmeanspp<HostArrays>(X, W, n_rep, K, seed, stream, idx,
                                        nogil([](auto... a) { gmm::kmeanspp_cpu(a...); }));
      },
      "X"_a, "W"_a, "n_rep"_a, "K"_a, "seed"_a, "stream"_a, "idx"_a);
  m.def("_isa_cap", &isa_cap, "cap"_a);
  m.def(
      "kmeans",
      [](py::array X, py::array W, py::ssize_t n_rep, py::ssize_t max_iter, py::array centers, py::array labels) {
        args::gmm::kmeans<HostArrays>(X, W, n_rep, max_iter, centers, labels,
                                      nogil([](auto... a) { gmm::kmeans_cpu(a...); }));
      },
      "X"_a, "W"_a, "n_rep"_a, "max_iter"_a, "centers"_a, "labels"_a);
}
