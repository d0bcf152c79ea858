// The argument unpacking of the CEM top-k binding, shared by _cpu_cem and _cuda_cem: arrays
// checked (array_access.hpp, policy P), then launch(x, rows, n, k, idx).
#pragma once

#include <cstdint>

#include "array_access.hpp"

namespace pygenmod::bind::args {

// Indices of the k largest per row of x (rows, n) into idx (rows, k); k = 0 launches nothing.
template <class P, class Launch>
void top_k(const py::object& x, const py::object& idx, Launch&& launch) {
  dispatch_float<P>(x, "x", [&](auto tag) {
    using T = decltype(tag);
    const auto xs = shape_of<P>(x, "x"), is = shape_of<P>(idx, "idx");
    if (xs.size() != 2 || is.size() != 2) throw std::invalid_argument("x and idx must be 2-D");
    const py::ssize_t rows = xs[0], n = xs[1], k = is[1];
    if (k > n) throw std::invalid_argument("idx: k exceeds the row length");
    const T* px = in<P, T>(x, "x", {rows, n});
    auto* pi = out<P, std::int64_t>(idx, "idx", {rows, k});
    if (k == 0) return;
    launch(px, rows, n, k, pi);
  });
}

}  // namespace pygenmod::bind::args
