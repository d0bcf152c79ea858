// _cuda_mdp: bindings of the CUDA Bellman launchers. Device arrays in, no math here.
#include "cuda_array.hpp"
#include "mdp.cuh"

namespace py = pybind11;
using namespace pybind11::literals;
using namespace pygenmod;
using namespace pygenmod::bind;

template <class T>
static void sweep(const py::object& P, const py::object& R, const py::object& V,
                  const py::object& gamma, const py::object& Q, const py::object& V_out,
                  const py::object& policy, std::uintptr_t stream) {
  auto shp = device_shape(P, "P");
  if (shp.size() != 4) throw std::invalid_argument("P: expected (B, S, A, S)");
  const auto B = shp[0], S = shp[1], A = shp[2];
  cuda::optimality_sweep_dense<T>(
      device_ptr<T>(P, "P", {B, S, A, S}), device_ptr<T>(R, "R", {B, S, A}),
      device_ptr<T>(V, "V", {B, S}), device_ptr<T>(gamma, "gamma", {B}), B, S, A,
      device_ptr<T>(Q, "Q", {B, S, A}, true), device_ptr<T>(V_out, "V_out", {B, S}, true),
      device_ptr<std::int64_t>(policy, "policy", {B, S}, true), as_stream(stream));
}

PYBIND11_MODULE(_cuda_mdp, m) {
  m.doc() = "pygenmod Bellman backups, CUDA kernels";
  m.def(
      "optimality_sweep_dense",
      [](py::object P, py::object R, py::object V, py::object gamma, py::object Q,
         py::object V_out, py::object policy, std::uintptr_t stream) {
        const auto t = device_typestr(P, "P");
        if (t == "<f8") return sweep<double>(P, R, V, gamma, Q, V_out, policy, stream);
        if (t == "<f4") return sweep<float>(P, R, V, gamma, Q, V_out, policy, stream);
        throw std::invalid_argument("P: expected float32 or float64");
      },
      "P"_a, "R"_a, "V"_a, "gamma"_a, "Q"_a, "V_out"_a, "policy"_a, "stream"_a = 0);
}
