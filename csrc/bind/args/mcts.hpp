// The argument unpacking of the MCTS noise and sampling bindings, shared by _cpu_mcts and
// _cuda_mcts: arrays checked (array_access.hpp, policy P), then launch(...) with the argument
// list of mcts::<name>_cpu / cuda::mcts_<name> (less the CUDA stream). The tree functions keep
// their own bodies: the CPU tree is a tuple of NumPy arrays read by the host search loop.
#pragma once

#include <cstdint>

#include "array_access.hpp"

namespace pygenmod::bind::args::mcts {

// launch(seed, stream0, alpha, B, A, out): Dirichlet(alpha) rows into out (B, A).
template <class P, class Launch>
void dirichlet_noise(std::uint64_t seed, std::uint64_t stream0, double alpha, const py::object& dst, Launch&& launch) {
  dispatch_float<P>(dst, "out", [&](auto tag) {
    using T = decltype(tag);
    const auto B = dim<P>(dst, "out", 0), A = dim<P>(dst, "out", 1);
    T* o = out<P, T>(dst, "out", {B, A});
    launch(seed, stream0, alpha, B, A, o);
  });
}

// launch(seed, stream0, B, A, out): Gumbel(0, 1) into out (B, A).
template <class P, class Launch>
void gumbel_noise(std::uint64_t seed, std::uint64_t stream0, const py::object& dst, Launch&& launch) {
  dispatch_float<P>(dst, "out", [&](auto tag) {
    using T = decltype(tag);
    const auto B = dim<P>(dst, "out", 0), A = dim<P>(dst, "out", 1);
    T* o = out<P, T>(dst, "out", {B, A});
    launch(seed, stream0, B, A, o);
  });
}

// launch(weights, B, A, temperature, seed, stream0, out): one action per row of weights (B, A).
template <class P, class Launch>
void sample_action(const py::object& weights, const py::object& temperature, std::uint64_t seed, std::uint64_t stream0,
                   const py::object& dst, Launch&& launch) {
  dispatch_float<P>(weights, "weights", [&](auto tag) {
    using T = decltype(tag);
    const auto B = dim<P>(weights, "weights", 0), A = dim<P>(weights, "weights", 1);
    const T* w = in<P, T>(weights, "weights", {B, A});
    const T* tp = in<P, T>(temperature, "temperature", {B});
    auto* o = out<P, std::int64_t>(dst, "out", {B});
    launch(w, B, A, tp, seed, stream0, o);
  });
}

}  // namespace pygenmod::bind::args::mcts
