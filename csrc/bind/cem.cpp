// _cpu_cem: bindings of the kernels behind the cross-entropy method (batched top-k).
#include "bind_common.hpp"
#include "pygenmod/topk.hpp"

namespace py = pybind11;
using namespace pybind11::literals;
using namespace pygenmod;
using namespace pygenmod::bind;

static void top_k(py::array x, py::array idx) {
  dispatch_float(x, "x", [&](auto tag) {
    using T = decltype(tag);
    if (x.ndim() != 2 || idx.ndim() != 2) throw std::invalid_argument("x and idx must be 2-D");
    const auto rows = x.shape(0), n = x.shape(1), k = idx.shape(1);
    if (k > n) throw std::invalid_argument("idx: k exceeds the row length");
    const T* px = in_ptr<T>(x, "x", {rows, n});
    auto* pi = out_ptr<std::int64_t>(idx, "idx", {rows, k});
    if (k == 0) return;
    py::gil_scoped_release nogil;
    topk::top_k_cpu(px, rows, n, k, pi);
  });
}

PYBIND11_MODULE(_cpu_cem, m) {
  m.doc() = "pygenmod cross-entropy-method kernels (CPU)";
  m.def("top_k", &top_k, "x"_a, "idx"_a, "indices of the k largest per row, largest first");
}
