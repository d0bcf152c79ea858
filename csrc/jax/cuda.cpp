// _jax_ffi_cuda: XLA FFI handlers (CUDA) of pygenmod's kernels, for pygenmod.jax on GPU arrays.
// Each handler checks its buffers (args.hpp, as the CPU handlers do) and calls the csrc/cuda
// launcher on the stream XLA hands over in the call context; nothing here synchronises the
// device. Compiled whenever the CUDA build is on (no GPU needed to build).
#include <pybind11/pybind11.h>

#include <cstddef>
#include <stdexcept>
#include <string>

#include "args.hpp"
#include "cuda_convert.cuh"
#include "mdp.cuh"
#include "returns.cuh"
#include "spatial.cuh"

namespace py = pybind11;
using namespace pygenmod;
using namespace pygenmod::jaxffi;
using Stream = ffi::PlatformStream<cudaStream_t>;

namespace {

ffi::Error gae(cudaStream_t stream, Buf r, Buf v, Buf nv, Buf boot, Buf te, Buf tr, Buf mk, Buf gamma, Buf lam, Out adv,
               Out ret, Out status) {
  return guarded([&] {
    dispatch_float(r, "rewards", [&](auto tag) {
      using T = decltype(tag);
      const auto a = gae_args<T>(r, v, nv, boot, te, tr, mk, gamma, lam, adv, ret, status);
      // the status flag is only OR-ed into by the kernel: clear it first (on the stream)
      if (cudaMemsetAsync(a.status, 0, 1, stream) != cudaSuccess) throw std::runtime_error("gae: cudaMemsetAsync");
      cuda::gae<T, std::uint8_t>(a.r, a.v, a.nv, a.boot, a.te, a.tr, a.mk, a.gamma, a.lam, a.Tn, a.B, a.adv, a.ret,
                                 a.status, stream);
    });
  });
}

// The kernel reads and writes int64 actions. An int32 policy (JAX's default integer) goes
// through int64 scratch memory from XLA's allocator; given actions are clamped into [0, A)
// on the device (the values of a traced policy are never seen on the host), so a bad one
// cannot make the kernel read out of bounds.
ffi::Error backup(cudaStream_t stream, ffi::ScratchAllocator scratch, Buf P, Buf R, Buf V, Buf gamma, Buf pi_det,
                  Buf pi_stoch, Buf tau, Out Q, Out V_out, Out policy, i64 kind) {
  return guarded([&] {
    dispatch_backup(P, policy, [&](auto t, auto i) {
      using T = decltype(t);
      using I = decltype(i);
      const auto a = backup_args<T, I>(P, R, V, gamma, pi_det, pi_stoch, tau, kind, Q, V_out, policy);
      const i64 n = a.B * a.S;
      auto alloc = [&](bool need) -> i64* {
        if (!need || n == 0) return nullptr;
        auto p = scratch.Allocate(sizeof(i64) * n, alignof(i64));
        if (!p) throw std::runtime_error("bellman_backup: no scratch memory for the policy");
        return static_cast<i64*>(*p);
      };
      i64* det = alloc(a.pi_det != nullptr);
      if (det) widen_actions<I>(a.pi_det, det, n, a.A, stream);
      i64* pol = std::is_same_v<I, i64> ? reinterpret_cast<i64*>(a.policy) : alloc(true);
      cuda::backup_dense<T>(a.P, a.R, a.V, a.gamma, a.B, a.S, a.A, a.kind, det, a.pi_stoch, a.tau, a.Q, a.V_out, pol,
                            stream);
      if constexpr (!std::is_same_v<I, i64>) narrow_actions(pol, a.policy, n, stream);
    });
  });
}

// `bytes` of device memory from XLA's scratch allocator (none for 0 bytes).
void* scratch_bytes(ffi::ScratchAllocator& scratch, std::size_t bytes, const char* what) {
  if (bytes == 0) return nullptr;
  auto p = scratch.Allocate(bytes, 256);
  if (!p) throw std::runtime_error(std::string(what) + ": no scratch memory");
  return *p;
}

// The spatial softmax's split mapping (small B * C) needs scratch: from XLA's allocator.
ffi::Error spatial_fwd(cudaStream_t stream, ffi::ScratchAllocator scratch, Buf x, Buf inv, Buf mask, Out kp, Out cov,
                       Out stats, bool cl, double x0, double dx, double y0, double dy) {
  return guarded([&] {
    dispatch_float(x, "x", [&](auto tag) {
      using T = decltype(tag);
      const auto a = spatial_fwd_args<T>(x, inv, mask, kp, cov, stats, {cl, x0, dx, y0, dy});
      const std::size_t bytes = cuda::spatial_forward_scratch_bytes(a, cl, stream);
      cuda::spatial_forward(a, cl, scratch_bytes(scratch, bytes, "spatial_softmax"), bytes, stream);
    });
  });
}

ffi::Error spatial_bwd(cudaStream_t stream, ffi::ScratchAllocator scratch, Buf x, Buf inv, Buf mask, Buf stats, Buf kp,
                       Buf cov, Buf g_kp, Buf g_cov, Out gx, Out g_temp, bool cl, double x0, double dx, double y0,
                       double dy) {
  return guarded([&] {
    dispatch_float(x, "x", [&](auto tag) {
      using T = decltype(tag);
      const auto a = spatial_bwd_args<T>(x, inv, mask, stats, kp, cov, g_kp, g_cov, gx, g_temp, {cl, x0, dx, y0, dy});
      const std::size_t bytes = cuda::spatial_backward_scratch_bytes(a, cl, stream);
      cuda::spatial_backward(a, cl, scratch_bytes(scratch, bytes, "spatial_softmax backward"), bytes, stream);
    });
  });
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(PgmGaeCuda, gae, (bind<9, 3>(ffi::Ffi::Bind().Ctx<Stream>())));
XLA_FFI_DEFINE_HANDLER_SYMBOL(
    PgmBackupDenseCuda, backup,
    (bind<7, 3>(ffi::Ffi::Bind().Ctx<Stream>().Ctx<ffi::ScratchAllocator>()).Attr<i64>("kind")));
XLA_FFI_DEFINE_HANDLER_SYMBOL(PgmSpatialFwdCuda, spatial_fwd,
                              (bind<3, 3>(ffi::Ffi::Bind().Ctx<Stream>().Ctx<ffi::ScratchAllocator>())
                                   PGM_SPATIAL_ATTRS));
XLA_FFI_DEFINE_HANDLER_SYMBOL(PgmSpatialBwdCuda, spatial_bwd,
                              (bind<8, 2>(ffi::Ffi::Bind().Ctx<Stream>().Ctx<ffi::ScratchAllocator>())
                                   PGM_SPATIAL_ATTRS));

PYBIND11_MODULE(_jax_ffi_cuda, m) {
  m.doc() = "pygenmod XLA FFI handlers (CUDA) for pygenmod.jax; built against the vendored FFI API headers";
  m.attr("FFI_API_VERSION") = py::make_tuple(XLA_FFI_API_MAJOR, XLA_FFI_API_MINOR);
  m.def("registrations", [] {
    py::dict d;
    d["pygenmod_gae"] = py::capsule(reinterpret_cast<void*>(PgmGaeCuda));
    d["pygenmod_backup_dense"] = py::capsule(reinterpret_cast<void*>(PgmBackupDenseCuda));
    d["pygenmod_spatial_fwd"] = py::capsule(reinterpret_cast<void*>(PgmSpatialFwdCuda));
    d["pygenmod_spatial_bwd"] = py::capsule(reinterpret_cast<void*>(PgmSpatialBwdCuda));
    return d;
  });
}
