// _cpu_mdp: bindings of the Bellman-backup kernels. Arrays in, GIL released, no math here.
#include "bind_common.hpp"
#include "pygenmod/mdp.hpp"

namespace py = pybind11;
using namespace pybind11::literals;
using namespace pygenmod;
using namespace pygenmod::bind;

static void optimality_sweep_dense(py::array P, py::array R, py::array V, py::array gamma,
                                   py::array Q, py::array V_out, py::array policy) {
  dispatch_float(P, "P", [&](auto tag) {
    using T = decltype(tag);
    const auto B = P.ndim() == 4 ? P.shape(0) : 0, S = P.ndim() == 4 ? P.shape(1) : 0,
               A = P.ndim() == 4 ? P.shape(2) : 0;
    const T* p = in_ptr<T>(P, "P", {B, S, A, S});
    const T* r = in_ptr<T>(R, "R", {B, S, A});
    const T* v = in_ptr<T>(V, "V", {B, S});
    const T* g = in_ptr<T>(gamma, "gamma", {B});
    T* q = out_ptr<T>(Q, "Q", {B, S, A});
    T* vo = out_ptr<T>(V_out, "V_out", {B, S});
    auto* pi = out_ptr<std::int64_t>(policy, "policy", {B, S});
    py::gil_scoped_release nogil;
    mdp::optimality_sweep_dense_cpu(p, r, v, g, B, S, A, q, vo, pi);
  });
}

PYBIND11_MODULE(_cpu_mdp, m) {
  m.doc() = "pygenmod Bellman backups, compiled CPU kernels (OpenMP)";
  m.def("optimality_sweep_dense", &optimality_sweep_dense, "P"_a, "R"_a, "V"_a, "gamma"_a,
        "Q"_a, "V_out"_a, "policy"_a);
}
