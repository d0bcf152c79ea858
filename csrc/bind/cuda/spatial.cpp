// _cuda_spatial: bindings of the CUDA spatial softmax launchers. Device arrays in, no math here;
// the argument unpacking is args/spatial.hpp (shared with _cpu_spatial). The split mapping
// (small B * C) takes its scratch from the caller's allocator (cuda_array.hpp scratch).
#include "args/spatial.hpp"
#include "cuda_array.hpp"
#include "spatial.cuh"

namespace py = pybind11;
using namespace pybind11::literals;
using namespace pygenmod;
using namespace pygenmod::bind;

PYBIND11_MODULE(_cuda_spatial, m) {
  m.doc() = "pygenmod spatial softmax keypoints, CUDA kernels";
  m.def(
      "forward",
      [](py::object x, py::object inv_temp, py::object mask, double x0, double dx, double y0, double dy, bool cl,
         py::object kp, py::object cov, py::object maps, py::object stats, std::uintptr_t stream) {
        args::spatial::forward<DeviceArrays>(
            x, inv_temp, mask, x0, dx, y0, dy, cl, kp, cov, maps, stats, [&](const auto& a) {
              const Scratch tmp = scratch(cuda::spatial_forward_scratch_bytes(a, cl, as_stream(stream)));
              cuda::spatial_forward(a, cl, tmp.ptr, tmp.bytes, as_stream(stream));
            });
      },
      "x"_a, "inv_temp"_a, "mask"_a, "x0"_a, "dx"_a, "y0"_a, "dy"_a, "channels_last"_a, "keypoints"_a, "cov"_a,
      "maps"_a, "stats"_a, "stream"_a = 0);
  m.def(
      "backward",
      [](py::object x, py::object inv_temp, py::object mask, double x0, double dx, double y0, double dy, bool cl,
         py::object stats, py::object kp, py::object cov, py::object g_kp, py::object g_cov, py::object g_maps,
         py::object gx, py::object g_temp, std::uintptr_t stream) {
        args::spatial::backward<DeviceArrays>(
            x, inv_temp, mask, x0, dx, y0, dy, cl, stats, kp, cov, g_kp, g_cov, g_maps, gx, g_temp, [&](const auto& a) {
              const Scratch tmp = scratch(cuda::spatial_backward_scratch_bytes(a, cl, as_stream(stream)));
              cuda::spatial_backward(a, cl, tmp.ptr, tmp.bytes, as_stream(stream));
            });
      },
      "x"_a, "inv_temp"_a, "mask"_a, "x0"_a, "dx"_a, "y0"_a, "dy"_a, "channels_last"_a, "stats"_a, "keypoints"_a,
      "cov"_a, "grad_keypoints"_a, "grad_cov"_a, "grad_maps"_a, "grad_x"_a, "grad_temp"_a, "stream"_a = 0);
  m.def(
      "splits",
      [](py::ssize_t B, py::ssize_t C, py::ssize_t H, py::ssize_t W, bool cl) {
        return cuda::spatial_splits(B, C, H * W, cl);
      },
      "B"_a, "C"_a, "H"_a, "W"_a, "channels_last"_a,
      "Pixel slices per map (one block each) the kernels use on the current device: 1 for whole maps "
      "(enough maps to fill the GPU), more for small B * C.");
}
