// _cuda_sampling: bindings of the CUDA RNG and sampling launchers. Device arrays in (via
// __cuda_array_interface__), no math here; the argument unpacking is args/sampling.hpp (shared
// with _cpu_sampling). Optional arrays have size 0 (null pointers).
#include <type_traits>

#include "args/sampling.hpp"
#include "cuda_array.hpp"
#include "sampling.cuh"

namespace py = pybind11;
using namespace pybind11::literals;
using namespace pygenmod;
using namespace pygenmod::bind;
using u64 = std::uint64_t;
using idx = py::ssize_t;
namespace a = pygenmod::bind::args::sampling;

// The CUDA launcher of cuda::<name> on the caller's stream `st`.
#define PGM_CUDA(name) [&](auto... x) { cuda::name(x..., as_stream(st)); }

// The element type T of a launcher's const T* argument (to size its scratch).
template <class Ptr>
using elem_t = std::remove_const_t<std::remove_pointer_t<Ptr>>;

PYBIND11_MODULE(_cuda_sampling, m) {
  m.doc() = "pygenmod counter-based RNG and reparameterized sampling, CUDA kernels";
  m.def(
      "fill",
      [](u64 seed, u64 stream, u64 offset, int dist, py::object out, std::uintptr_t st) {
        a::fill<DeviceArrays>(seed, stream, offset, dist, out,
                              [&](auto tag, auto... x) { cuda::sampling_fill<decltype(tag)>(x..., as_stream(st)); });
      },
      "seed"_a, "stream"_a, "offset"_a, "dist"_a, "out"_a, "cuda_stream"_a = 0);
  m.def(
      "philox",
      [](py::object ctr, py::object key, py::object out, std::uintptr_t st) {
        a::philox<DeviceArrays>(ctr, key, out, PGM_CUDA(sampling_philox));
      },
      "counter"_a, "key"_a, "out"_a, "cuda_stream"_a = 0);
  m.def(
      "bits",
      [](u64 seed, u64 stream, u64 offset, py::object out, std::uintptr_t st) {
        a::bits<DeviceArrays>(seed, stream, offset, out, PGM_CUDA(sampling_bits));
      },
      "seed"_a, "stream"_a, "offset"_a, "out"_a, "cuda_stream"_a = 0);
  m.def(
      "normal_head",
      [](py::object mu, py::object p, py::object eps, int kind, double lo, double hi, u64 seed, u64 stream, u64 offset,
         py::object z, py::object eps_out, py::object kl, py::object logq, py::object status, std::uintptr_t st) {
        a::normal_head<DeviceArrays>(mu, p, eps, kind, lo, hi, seed, stream, offset, z, eps_out, kl, logq, status,
                                     PGM_CUDA(normal_head));
      },
      "mu"_a, "scale"_a, "eps"_a, "kind"_a, "lo"_a, "hi"_a, "seed"_a, "stream"_a, "offset"_a, "z"_a, "eps_out"_a,
      "kl"_a, "logq"_a, "status"_a, "cuda_stream"_a = 0);
  m.def(
      "normal_head_backward",
      [](py::object mu, py::object p, py::object eps, int kind, double lo, double hi, u64 seed, u64 stream, u64 offset,
         py::ssize_t S, py::object gz, py::object gkl, py::object glogq, py::object dmu, py::object dp,
         std::uintptr_t st) {
        a::normal_head_backward<DeviceArrays>(mu, p, eps, kind, lo, hi, seed, stream, offset, S, gz, gkl, glogq, dmu,
                                              dp, PGM_CUDA(normal_head_backward));
      },
      "mu"_a, "scale"_a, "eps"_a, "kind"_a, "lo"_a, "hi"_a, "seed"_a, "stream"_a, "offset"_a, "n_samples"_a, "grad_z"_a,
      "grad_kl"_a, "grad_logq"_a, "dmu"_a, "dscale"_a, "cuda_stream"_a = 0);
  m.def(
      "kl_normal",
      [](py::object mu, py::object p, py::object pm, py::object pp, int kind, double lo, double hi, py::object kl,
         py::object status, std::uintptr_t st) {
        a::kl_normal<DeviceArrays>(mu, p, pm, pp, kind, lo, hi, kl, status, PGM_CUDA(kl_normal));
      },
      "mu"_a, "scale"_a, "prior_mu"_a, "prior_scale"_a, "kind"_a, "lo"_a, "hi"_a, "kl"_a, "status"_a,
      "cuda_stream"_a = 0);
  m.def(
      "kl_normal_backward",
      [](py::object mu, py::object p, py::object pm, py::object pp, int kind, double lo, double hi, py::object g,
         py::object dmu, py::object dp, py::object dpm, py::object dpp, std::uintptr_t st) {
        a::kl_normal_backward<DeviceArrays>(mu, p, pm, pp, kind, lo, hi, g, dmu, dp, dpm, dpp,
                                            PGM_CUDA(kl_normal_backward));
      },
      "mu"_a, "scale"_a, "prior_mu"_a, "prior_scale"_a, "kind"_a, "lo"_a, "hi"_a, "grad"_a, "dmu"_a, "dscale"_a,
      "dprior_mu"_a, "dprior_scale"_a, "cuda_stream"_a = 0);
  m.def(
      "normal_log_prob",
      [](py::object x, py::object mu, py::object p, int kind, double lo, double hi, py::object out, py::object status,
         std::uintptr_t st) {
        a::normal_log_prob<DeviceArrays>(x, mu, p, kind, lo, hi, out, status, PGM_CUDA(normal_log_prob));
      },
      "x"_a, "mu"_a, "scale"_a, "kind"_a, "lo"_a, "hi"_a, "out"_a, "status"_a, "cuda_stream"_a = 0);
  m.def(
      "normal_log_prob_backward",
      [](py::object x, py::object mu, py::object p, int kind, double lo, double hi, py::object g, py::object dx,
         py::object dmu, py::object dp, std::uintptr_t st) {
        a::normal_log_prob_backward<DeviceArrays>(x, mu, p, kind, lo, hi, g, dx, dmu, dp,
                                                  PGM_CUDA(normal_log_prob_backward));
      },
      "x"_a, "mu"_a, "scale"_a, "kind"_a, "lo"_a, "hi"_a, "grad"_a, "dx"_a, "dmu"_a, "dscale"_a, "cuda_stream"_a = 0);
  m.def(
      "mvn_head",
      [](py::object mu, py::object L, py::object eps, bool check_upper, u64 seed, u64 stream, u64 offset, py::object z,
         py::object eps_out, py::object kl, py::object logq, py::object status, std::uintptr_t st) {
        a::mvn_head<DeviceArrays>(mu, L, eps, check_upper, seed, stream, offset, z, eps_out, kl, logq, status,
                                  PGM_CUDA(mvn_head));
      },
      "mu"_a, "scale_tril"_a, "eps"_a, "check_upper"_a, "seed"_a, "stream"_a, "offset"_a, "z"_a, "eps_out"_a, "kl"_a,
      "logq"_a, "status"_a, "cuda_stream"_a = 0);
  m.def(
      "mvn_head_backward",
      [](py::object mu, py::object L, py::object eps, u64 seed, u64 stream, u64 offset, py::ssize_t S, py::object gz,
         py::object gkl, py::object glogq, py::object dmu, py::object dL, std::uintptr_t st) {
        a::mvn_head_backward<DeviceArrays>(
            mu, L, eps, seed, stream, offset, S, gz, gkl, glogq, dmu, dL,
            [&](auto mu, auto L, bool shared, auto eps, u64 s0, u64 s1, u64 off, idx S, idx B, idx D, auto... o) {
              const Scratch tmp =
                  scratch(cuda::mvn_head_backward_scratch_bytes(shared, B, D, sizeof(elem_t<decltype(mu)>)));
              cuda::mvn_head_backward(mu, L, shared, eps, s0, s1, off, S, B, D, o..., tmp.ptr, tmp.bytes,
                                      as_stream(st));
            });
      },
      "mu"_a, "scale_tril"_a, "eps"_a, "seed"_a, "stream"_a, "offset"_a, "n_samples"_a, "grad_z"_a, "grad_kl"_a,
      "grad_logq"_a, "dmu"_a, "dscale_tril"_a, "cuda_stream"_a = 0);
  m.def(
      "tri_solve",
      [](py::object L, py::object R, bool trans, py::object X, std::uintptr_t st) {
        a::tri_solve<DeviceArrays>(L, R, trans, X, PGM_CUDA(tri_solve));
      },
      "L"_a, "rhs"_a, "trans"_a, "out"_a, "cuda_stream"_a = 0);

  m.def(
      "tril_check",
      [](py::object L, py::object flags, std::uintptr_t st) {
        a::tril_check<DeviceArrays>(L, flags, PGM_CUDA(tril_check));
      },
      "L"_a, "flags"_a, "cuda_stream"_a = 0);
  m.def(
      "mvn_rows",
      [](py::object x, py::object mu, py::object L, int mode, bool squared, py::object out, py::object status,
         std::uintptr_t st) {
        a::mvn_rows<DeviceArrays>(
            x, mu, L, mode, squared, out, status,
            [&](auto x, auto mu, auto L, bool shared, int mode, bool sq, idx R, idx B, idx D, auto... o) {
              const Scratch tmp = scratch(cuda::mvn_rows_scratch_bytes(R, D, sizeof(elem_t<decltype(x)>)));
              cuda::mvn_rows(x, mu, L, shared, mode, sq, R, B, D, o..., tmp.ptr, tmp.bytes, as_stream(st));
            });
      },
      "x"_a, "mu"_a, "L"_a, "mode"_a, "squared"_a, "out"_a, "status"_a, "cuda_stream"_a = 0);
  m.def(
      "mvn_rows_backward",
      [](py::object x, py::object mu, py::object L, int mode, bool squared, py::object g, py::object dx, py::object dmu,
         py::object dL, py::object status, std::uintptr_t st) {
        a::mvn_rows_backward<DeviceArrays>(
            x, mu, L, mode, squared, g, dx, dmu, dL, status,
            [&](auto x, auto mu, auto L, bool shared, int mode, bool sq, idx R, idx B, idx D, auto... o) {
              const Scratch tmp =
                  scratch(cuda::mvn_rows_backward_scratch_bytes(shared, R, B, D, sizeof(elem_t<decltype(x)>)));
              cuda::mvn_rows_backward(x, mu, L, shared, mode, sq, R, B, D, o..., tmp.ptr, tmp.bytes, as_stream(st));
            });
      },
      "x"_a, "mu"_a, "L"_a, "mode"_a, "squared"_a, "grad"_a, "dx"_a, "dmu"_a, "dL"_a, "status"_a, "cuda_stream"_a = 0);
  m.def(
      "kl_mvn",
      [](py::object mu, py::object L, py::object pm, py::object pL, py::object kl, py::object status,
         std::uintptr_t st) {
        a::kl_mvn<DeviceArrays>(mu, L, pm, pL, kl, status,
                                [&](auto m1, auto L1, bool s1, auto m2, auto L2, bool s2, idx B, idx D, auto... o) {
                                  const Scratch tmp =
                                      scratch(cuda::kl_mvn_scratch_bytes(B, D, sizeof(elem_t<decltype(m1)>)));
                                  cuda::kl_mvn(m1, L1, s1, m2, L2, s2, B, D, o..., tmp.ptr, tmp.bytes, as_stream(st));
                                });
      },
      "mu"_a, "scale_tril"_a, "prior_mu"_a, "prior_scale_tril"_a, "kl"_a, "status"_a, "cuda_stream"_a = 0);
  m.def(
      "kl_mvn_backward",
      [](py::object mu, py::object L, py::object pm, py::object pL, py::object g, py::object dmu, py::object dL,
         py::object dpm, py::object dpL, std::uintptr_t st) {
        a::kl_mvn_backward<DeviceArrays>(
            mu, L, pm, pL, g, dmu, dL, dpm, dpL,
            [&](auto m1, auto L1, bool s1, auto m2, auto L2, bool s2, idx B, idx D, auto... o) {
              const Scratch tmp =
                  scratch(cuda::kl_mvn_backward_scratch_bytes(s1, s2, B, D, sizeof(elem_t<decltype(m1)>)));
              cuda::kl_mvn_backward(m1, L1, s1, m2, L2, s2, B, D, o..., tmp.ptr, tmp.bytes, as_stream(st));
            });
      },
      "mu"_a, "scale_tril"_a, "prior_mu"_a, "prior_scale_tril"_a, "grad"_a, "dmu"_a, "dscale_tril"_a, "dprior_mu"_a,
      "dprior_scale_tril"_a, "cuda_stream"_a = 0);
  m.def(
      "gumbel_softmax",
      [](py::object logits, double tau, u64 seed, u64 stream, u64 offset, py::object y_soft, py::object y,
         py::object index, py::object status, std::uintptr_t st) {
        a::gumbel_softmax<DeviceArrays>(logits, tau, seed, stream, offset, y_soft, y, index, status,
                                        PGM_CUDA(gumbel_softmax));
      },
      "logits"_a, "temperature"_a, "seed"_a, "stream"_a, "offset"_a, "y_soft"_a, "y"_a, "index"_a, "status"_a,
      "cuda_stream"_a = 0);
  m.def(
      "gumbel_softmax_backward",
      [](py::object logits, py::object y_soft, double tau, u64 seed, u64 stream, u64 offset, py::object g,
         py::object out, py::object status, std::uintptr_t st) {
        a::gumbel_softmax_backward<DeviceArrays>(logits, y_soft, tau, seed, stream, offset, g, out, status,
                                                 PGM_CUDA(gumbel_softmax_backward));
      },
      "logits"_a, "y_soft"_a, "temperature"_a, "seed"_a, "stream"_a, "offset"_a, "grad_y"_a, "out"_a, "status"_a,
      "cuda_stream"_a = 0);
}
