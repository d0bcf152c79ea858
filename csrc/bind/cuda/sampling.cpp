// _cuda_sampling: bindings of the CUDA RNG and sampling launchers. Device arrays in (via
// __cuda_array_interface__), no math here. Optional arrays have size 0 (null pointers).
#include "cuda_array.hpp"
#include "sampling.cuh"

namespace py = pybind11;
using namespace pybind11::literals;
using namespace pygenmod;
using namespace pygenmod::bind;
using u64 = std::uint64_t;

static py::ssize_t numel(const py::object& a, const char* name) {
  py::ssize_t n = 1;
  for (auto s : device_shape(a, name)) n *= s;
  return n;
}
static py::ssize_t dim(const py::object& a, const char* name, size_t i) {
  auto s = device_shape(a, name);
  return s.size() > i ? s[i] : 0;
}
template <class T>
static T* opt(const py::object& a, const char* name, std::initializer_list<py::ssize_t> shape, bool w = false) {
  return numel(a, name) == 0 ? nullptr : device_ptr<T>(a, name, shape, w);
}

// x (R, D) rows against mu (B, D) rows r % B, R a multiple of B; L (1 or B, D, D).
static void check_rows(py::ssize_t R, py::ssize_t B, py::ssize_t LB) {
  if (B == 0 ? R != 0 : R % B != 0) throw std::invalid_argument("x: rows must be a multiple of mu's rows");
  if (LB != 1 && LB != B) throw std::invalid_argument("L: expected 1 or B matrices");
}

template <class F>
static void by_dtype(const py::object& a, const char* name, F&& f) {
  const auto t = device_typestr(a, name);
  if (t == "<f8") return f(double{});
  if (t == "<f4") return f(float{});
  throw std::invalid_argument(std::string(name) + ": expected float32 or float64");
}

PYBIND11_MODULE(_cuda_sampling, m) {
  m.doc() = "pygenmod counter-based RNG and reparameterized sampling, CUDA kernels";
  m.def(
      "fill",
      [](u64 seed, u64 stream, u64 offset, int dist, py::object out, std::uintptr_t st) {
        if (dist < 0 || dist > 2) throw std::invalid_argument("dist: expected 0, 1 or 2");
        by_dtype(out, "out", [&](auto tag) {
          using T = decltype(tag);
          const auto R = dim(out, "out", 0), N = dim(out, "out", 1);
          cuda::sampling_fill<T>(dist, seed, stream, offset, R, N, device_ptr<T>(out, "out", {R, N}, true),
                                 as_stream(st));
        });
      },
      "seed"_a, "stream"_a, "offset"_a, "dist"_a, "out"_a, "cuda_stream"_a = 0);
  m.def(
      "philox",
      [](py::object ctr, py::object key, py::object out, std::uintptr_t st) {
        const auto n = dim(ctr, "counter", 0);
        cuda::sampling_philox(device_ptr<std::uint32_t>(ctr, "counter", {n, 4}),
                              device_ptr<std::uint32_t>(key, "key", {n, 2}), n,
                              device_ptr<std::uint32_t>(out, "out", {n, 4}, true), as_stream(st));
      },
      "counter"_a, "key"_a, "out"_a, "cuda_stream"_a = 0);
  m.def(
      "bits",
      [](u64 seed, u64 stream, u64 offset, py::object out, std::uintptr_t st) {
        const auto R = dim(out, "out", 0), N = dim(out, "out", 1);
        cuda::sampling_bits(seed, stream, offset, R, N, device_ptr<std::uint32_t>(out, "out", {R, N}, true),
                            as_stream(st));
      },
      "seed"_a, "stream"_a, "offset"_a, "out"_a, "cuda_stream"_a = 0);
  m.def(
      "normal_head",
      [](py::object mu, py::object p, py::object eps, int kind, double lo, double hi, u64 seed, u64 stream, u64 offset,
         py::object z, py::object eps_out, py::object kl, py::object logq, py::object status, std::uintptr_t st) {
        by_dtype(mu, "mu", [&](auto tag) {
          using T = decltype(tag);
          const auto B = dim(mu, "mu", 0), D = dim(mu, "mu", 1), S = dim(z, "z", 0);
          cuda::normal_head<T>(device_ptr<T>(mu, "mu", {B, D}), device_ptr<T>(p, "scale", {B, D}),
                               opt<T>(eps, "eps", {S, B, D}), kind, T(lo), T(hi), seed, stream, offset, S, B, D,
                               device_ptr<T>(z, "z", {S, B, D}, true), opt<T>(eps_out, "eps_out", {S, B, D}, true),
                               opt<T>(kl, "kl", {B}, true), opt<T>(logq, "logq", {S, B}, true),
                               device_ptr<std::int32_t>(status, "status", {B}, true), as_stream(st));
        });
      },
      "mu"_a, "scale"_a, "eps"_a, "kind"_a, "lo"_a, "hi"_a, "seed"_a, "stream"_a, "offset"_a, "z"_a, "eps_out"_a,
      "kl"_a, "logq"_a, "status"_a, "cuda_stream"_a = 0);
  m.def(
      "normal_head_backward",
      [](py::object mu, py::object p, py::object eps, int kind, double lo, double hi, u64 seed, u64 stream, u64 offset,
         py::ssize_t S, py::object gz, py::object gkl, py::object glogq, py::object dmu, py::object dp,
         std::uintptr_t st) {
        by_dtype(mu, "mu", [&](auto tag) {
          using T = decltype(tag);
          const auto B = dim(mu, "mu", 0), D = dim(mu, "mu", 1);
          cuda::normal_head_backward<T>(device_ptr<T>(mu, "mu", {B, D}), device_ptr<T>(p, "scale", {B, D}),
                                        opt<T>(eps, "eps", {S, B, D}), kind, T(lo), T(hi), seed, stream, offset, S, B,
                                        D, opt<T>(gz, "grad_z", {S, B, D}), opt<T>(gkl, "grad_kl", {B}),
                                        opt<T>(glogq, "grad_logq", {S, B}), device_ptr<T>(dmu, "dmu", {B, D}, true),
                                        device_ptr<T>(dp, "dscale", {B, D}, true), as_stream(st));
        });
      },
      "mu"_a, "scale"_a, "eps"_a, "kind"_a, "lo"_a, "hi"_a, "seed"_a, "stream"_a, "offset"_a, "n_samples"_a, "grad_z"_a,
      "grad_kl"_a, "grad_logq"_a, "dmu"_a, "dscale"_a, "cuda_stream"_a = 0);
  m.def(
      "kl_normal",
      [](py::object mu, py::object p, py::object pm, py::object pp, int kind, double lo, double hi, py::object kl,
         py::object status, std::uintptr_t st) {
        by_dtype(mu, "mu", [&](auto tag) {
          using T = decltype(tag);
          const auto B = dim(mu, "mu", 0), D = dim(mu, "mu", 1);
          cuda::kl_normal<T>(device_ptr<T>(mu, "mu", {B, D}), device_ptr<T>(p, "scale", {B, D}),
                             opt<T>(pm, "prior_mu", {B, D}), opt<T>(pp, "prior_scale", {B, D}), kind, T(lo), T(hi), B,
                             D, device_ptr<T>(kl, "kl", {B}, true),
                             device_ptr<std::int32_t>(status, "status", {B}, true), as_stream(st));
        });
      },
      "mu"_a, "scale"_a, "prior_mu"_a, "prior_scale"_a, "kind"_a, "lo"_a, "hi"_a, "kl"_a, "status"_a,
      "cuda_stream"_a = 0);
  m.def(
      "kl_normal_backward",
      [](py::object mu, py::object p, py::object pm, py::object pp, int kind, double lo, double hi, py::object g,
         py::object dmu, py::object dp, py::object dpm, py::object dpp, std::uintptr_t st) {
        by_dtype(mu, "mu", [&](auto tag) {
          using T = decltype(tag);
          const auto B = dim(mu, "mu", 0), D = dim(mu, "mu", 1);
          cuda::kl_normal_backward<T>(
              device_ptr<T>(mu, "mu", {B, D}), device_ptr<T>(p, "scale", {B, D}), opt<T>(pm, "prior_mu", {B, D}),
              opt<T>(pp, "prior_scale", {B, D}), kind, T(lo), T(hi), B, D, device_ptr<T>(g, "grad", {B}),
              device_ptr<T>(dmu, "dmu", {B, D}, true), device_ptr<T>(dp, "dscale", {B, D}, true),
              opt<T>(dpm, "dprior_mu", {B, D}, true), opt<T>(dpp, "dprior_scale", {B, D}, true), as_stream(st));
        });
      },
      "mu"_a, "scale"_a, "prior_mu"_a, "prior_scale"_a, "kind"_a, "lo"_a, "hi"_a, "grad"_a, "dmu"_a, "dscale"_a,
      "dprior_mu"_a, "dprior_scale"_a, "cuda_stream"_a = 0);
  m.def(
      "normal_log_prob",
      [](py::object x, py::object mu, py::object p, int kind, double lo, double hi, py::object out, py::object status,
         std::uintptr_t st) {
        by_dtype(mu, "mu", [&](auto tag) {
          using T = decltype(tag);
          const auto B = dim(mu, "mu", 0), D = dim(mu, "mu", 1), R = dim(x, "x", 0);
          if (B == 0 ? R != 0 : R % B != 0) throw std::invalid_argument("x: rows must be a multiple of mu's rows");
          cuda::normal_log_prob<T>(device_ptr<T>(x, "x", {R, D}), device_ptr<T>(mu, "mu", {B, D}),
                                   device_ptr<T>(p, "scale", {B, D}), kind, T(lo), T(hi), R, B, D,
                                   device_ptr<T>(out, "out", {R}, true),
                                   device_ptr<std::int32_t>(status, "status", {R}, true), as_stream(st));
        });
      },
      "x"_a, "mu"_a, "scale"_a, "kind"_a, "lo"_a, "hi"_a, "out"_a, "status"_a, "cuda_stream"_a = 0);
  m.def(
      "normal_log_prob_backward",
      [](py::object x, py::object mu, py::object p, int kind, double lo, double hi, py::object g, py::object dx,
         py::object dmu, py::object dp, std::uintptr_t st) {
        by_dtype(mu, "mu", [&](auto tag) {
          using T = decltype(tag);
          const auto B = dim(mu, "mu", 0), D = dim(mu, "mu", 1), R = dim(x, "x", 0);
          if (B == 0 ? R != 0 : R % B != 0) throw std::invalid_argument("x: rows must be a multiple of mu's rows");
          cuda::normal_log_prob_backward<T>(
              device_ptr<T>(x, "x", {R, D}), device_ptr<T>(mu, "mu", {B, D}), device_ptr<T>(p, "scale", {B, D}), kind,
              T(lo), T(hi), R, B, D, device_ptr<T>(g, "grad", {R}), device_ptr<T>(dx, "dx", {R, D}, true),
              device_ptr<T>(dmu, "dmu", {B, D}, true), device_ptr<T>(dp, "dscale", {B, D}, true), as_stream(st));
        });
      },
      "x"_a, "mu"_a, "scale"_a, "kind"_a, "lo"_a, "hi"_a, "grad"_a, "dx"_a, "dmu"_a, "dscale"_a, "cuda_stream"_a = 0);
  m.def(
      "mvn_head",
      [](py::object mu, py::object L, py::object eps, bool check_upper, u64 seed, u64 stream, u64 offset, py::object z,
         py::object eps_out, py::object kl, py::object logq, py::object status, std::uintptr_t st) {
        by_dtype(mu, "mu", [&](auto tag) {
          using T = decltype(tag);
          const auto B = dim(mu, "mu", 0), D = dim(mu, "mu", 1), S = dim(z, "z", 0), LB = dim(L, "scale_tril", 0);
          if (LB != 1 && LB != B) throw std::invalid_argument("scale_tril: expected 1 or B matrices");
          cuda::mvn_head<T>(device_ptr<T>(mu, "mu", {B, D}), device_ptr<T>(L, "scale_tril", {LB, D, D}),
                            LB == 1 && B != 1, check_upper, opt<T>(eps, "eps", {S, B, D}), seed, stream, offset, S, B,
                            D, device_ptr<T>(z, "z", {S, B, D}, true), opt<T>(eps_out, "eps_out", {S, B, D}, true),
                            opt<T>(kl, "kl", {B}, true), opt<T>(logq, "logq", {S, B}, true),
                            device_ptr<std::int32_t>(status, "status", {B}, true), as_stream(st));
        });
      },
      "mu"_a, "scale_tril"_a, "eps"_a, "check_upper"_a, "seed"_a, "stream"_a, "offset"_a, "z"_a, "eps_out"_a, "kl"_a,
      "logq"_a, "status"_a, "cuda_stream"_a = 0);
  m.def(
      "mvn_head_backward",
      [](py::object mu, py::object L, py::object eps, u64 seed, u64 stream, u64 offset, py::ssize_t S, py::object gz,
         py::object gkl, py::object glogq, py::object dmu, py::object dL, std::uintptr_t st) {
        by_dtype(mu, "mu", [&](auto tag) {
          using T = decltype(tag);
          const auto B = dim(mu, "mu", 0), D = dim(mu, "mu", 1), LB = dim(L, "scale_tril", 0);
          if (LB != 1 && LB != B) throw std::invalid_argument("scale_tril: expected 1 or B matrices");
          const bool shared = LB == 1 && B != 1;
          const Scratch tmp = scratch(cuda::mvn_head_backward_scratch_bytes(shared, B, D, sizeof(T)));
          cuda::mvn_head_backward<T>(
              device_ptr<T>(mu, "mu", {B, D}), device_ptr<T>(L, "scale_tril", {LB, D, D}), shared,
              opt<T>(eps, "eps", {S, B, D}), seed, stream, offset, S, B, D, opt<T>(gz, "grad_z", {S, B, D}),
              opt<T>(gkl, "grad_kl", {B}), opt<T>(glogq, "grad_logq", {S, B}), device_ptr<T>(dmu, "dmu", {B, D}, true),
              device_ptr<T>(dL, "dscale_tril", {LB, D, D}, true), tmp.ptr, tmp.bytes, as_stream(st));
        });
      },
      "mu"_a, "scale_tril"_a, "eps"_a, "seed"_a, "stream"_a, "offset"_a, "n_samples"_a, "grad_z"_a, "grad_kl"_a,
      "grad_logq"_a, "dmu"_a, "dscale_tril"_a, "cuda_stream"_a = 0);
  m.def(
      "tri_solve",
      [](py::object L, py::object R, bool trans, py::object X, std::uintptr_t st) {
        by_dtype(R, "rhs", [&](auto tag) {
          using T = decltype(tag);
          const auto B = dim(R, "rhs", 0), D = dim(R, "rhs", 1), K = dim(R, "rhs", 2), LB = dim(L, "L", 0);
          if (LB != 1 && LB != B) throw std::invalid_argument("L: expected 1 or B matrices");
          cuda::tri_solve<T>(device_ptr<T>(L, "L", {LB, D, D}), LB == 1 && B != 1, device_ptr<T>(R, "rhs", {B, D, K}),
                             B, D, K, trans, device_ptr<T>(X, "out", {B, D, K}, true), as_stream(st));
        });
      },
      "L"_a, "rhs"_a, "trans"_a, "out"_a, "cuda_stream"_a = 0);

  m.def(
      "tril_check",
      [](py::object L, py::object flags, std::uintptr_t st) {
        by_dtype(L, "L", [&](auto tag) {
          using T = decltype(tag);
          const auto N = dim(L, "L", 0), D = dim(L, "L", 1);
          cuda::tril_check<T>(device_ptr<T>(L, "L", {N, D, D}), N, D,
                              device_ptr<std::int32_t>(flags, "flags", {N}, true), as_stream(st));
        });
      },
      "L"_a, "flags"_a, "cuda_stream"_a = 0);
  m.def(
      "mvn_rows",
      [](py::object x, py::object mu, py::object L, int mode, bool squared, py::object out, py::object status,
         std::uintptr_t st) {
        by_dtype(mu, "mu", [&](auto tag) {
          using T = decltype(tag);
          const auto B = dim(mu, "mu", 0), D = dim(mu, "mu", 1), R = dim(x, "x", 0), LB = dim(L, "L", 0);
          check_rows(R, B, LB);
          const Scratch tmp = scratch(cuda::mvn_rows_scratch_bytes(R, D, sizeof(T)));
          cuda::mvn_rows<T>(device_ptr<T>(x, "x", {R, D}), device_ptr<T>(mu, "mu", {B, D}),
                            device_ptr<T>(L, "L", {LB, D, D}), LB == 1 && B != 1, mode, squared, R, B, D,
                            device_ptr<T>(out, "out", {R}, true), device_ptr<std::int32_t>(status, "status", {R}, true),
                            tmp.ptr, tmp.bytes, as_stream(st));
        });
      },
      "x"_a, "mu"_a, "L"_a, "mode"_a, "squared"_a, "out"_a, "status"_a, "cuda_stream"_a = 0);
  m.def(
      "mvn_rows_backward",
      [](py::object x, py::object mu, py::object L, int mode, bool squared, py::object g, py::object dx, py::object dmu,
         py::object dL, py::object status, std::uintptr_t st) {
        by_dtype(mu, "mu", [&](auto tag) {
          using T = decltype(tag);
          const auto B = dim(mu, "mu", 0), D = dim(mu, "mu", 1), R = dim(x, "x", 0), LB = dim(L, "L", 0);
          check_rows(R, B, LB);
          const bool shared = LB == 1 && B != 1;
          const Scratch tmp = scratch(cuda::mvn_rows_backward_scratch_bytes(shared, R, B, D, sizeof(T)));
          cuda::mvn_rows_backward<T>(
              device_ptr<T>(x, "x", {R, D}), device_ptr<T>(mu, "mu", {B, D}), device_ptr<T>(L, "L", {LB, D, D}), shared,
              mode, squared, R, B, D, device_ptr<T>(g, "grad", {R}), device_ptr<T>(dx, "dx", {R, D}, true),
              device_ptr<T>(dmu, "dmu", {B, D}, true), device_ptr<T>(dL, "dL", {LB, D, D}, true),
              device_ptr<std::int32_t>(status, "status", {R}, true), tmp.ptr, tmp.bytes, as_stream(st));
        });
      },
      "x"_a, "mu"_a, "L"_a, "mode"_a, "squared"_a, "grad"_a, "dx"_a, "dmu"_a, "dL"_a, "status"_a, "cuda_stream"_a = 0);
  m.def(
      "kl_mvn",
      [](py::object mu, py::object L, py::object pm, py::object pL, py::object kl, py::object status,
         std::uintptr_t st) {
        by_dtype(mu, "mu", [&](auto tag) {
          using T = decltype(tag);
          const auto B = dim(mu, "mu", 0), D = dim(mu, "mu", 1), LB = dim(L, "scale_tril", 0),
                     LB2 = dim(pL, "prior_scale_tril", 0);
          const bool has_prior = numel(pL, "prior_scale_tril") != 0;
          check_rows(B, B, LB);
          if (has_prior) check_rows(B, B, LB2);
          const Scratch tmp = scratch(cuda::kl_mvn_scratch_bytes(B, D, sizeof(T)));
          cuda::kl_mvn<T>(device_ptr<T>(mu, "mu", {B, D}), device_ptr<T>(L, "scale_tril", {LB, D, D}),
                          LB == 1 && B != 1, opt<T>(pm, "prior_mu", {B, D}),
                          opt<T>(pL, "prior_scale_tril", {LB2, D, D}), LB2 == 1 && B != 1, B, D,
                          device_ptr<T>(kl, "kl", {B}, true), device_ptr<std::int32_t>(status, "status", {B}, true),
                          tmp.ptr, tmp.bytes, as_stream(st));
        });
      },
      "mu"_a, "scale_tril"_a, "prior_mu"_a, "prior_scale_tril"_a, "kl"_a, "status"_a, "cuda_stream"_a = 0);
  m.def(
      "kl_mvn_backward",
      [](py::object mu, py::object L, py::object pm, py::object pL, py::object g, py::object dmu, py::object dL,
         py::object dpm, py::object dpL, std::uintptr_t st) {
        by_dtype(mu, "mu", [&](auto tag) {
          using T = decltype(tag);
          const auto B = dim(mu, "mu", 0), D = dim(mu, "mu", 1), LB = dim(L, "scale_tril", 0),
                     LB2 = dim(pL, "prior_scale_tril", 0);
          const bool has_prior = numel(pL, "prior_scale_tril") != 0;
          check_rows(B, B, LB);
          if (has_prior) check_rows(B, B, LB2);
          const bool s1 = LB == 1 && B != 1, s2 = has_prior && LB2 == 1 && B != 1;
          const Scratch tmp = scratch(cuda::kl_mvn_backward_scratch_bytes(s1, s2, B, D, sizeof(T)));
          cuda::kl_mvn_backward<T>(device_ptr<T>(mu, "mu", {B, D}), device_ptr<T>(L, "scale_tril", {LB, D, D}), s1,
                                   opt<T>(pm, "prior_mu", {B, D}), opt<T>(pL, "prior_scale_tril", {LB2, D, D}), s2, B,
                                   D, device_ptr<T>(g, "grad", {B}), device_ptr<T>(dmu, "dmu", {B, D}, true),
                                   device_ptr<T>(dL, "dscale_tril", {LB, D, D}, true),
                                   opt<T>(dpm, "dprior_mu", {B, D}, true),
                                   has_prior ? device_ptr<T>(dpL, "dprior_scale_tril", {LB2, D, D}, true) : nullptr,
                                   tmp.ptr, tmp.bytes, as_stream(st));
        });
      },
      "mu"_a, "scale_tril"_a, "prior_mu"_a, "prior_scale_tril"_a, "grad"_a, "dmu"_a, "dscale_tril"_a, "dprior_mu"_a,
      "dprior_scale_tril"_a, "cuda_stream"_a = 0);
  m.def(
      "gumbel_softmax",
      [](py::object logits, double tau, u64 seed, u64 stream, u64 offset, py::object y_soft, py::object y,
         py::object index, py::object status, std::uintptr_t st) {
        by_dtype(logits, "logits", [&](auto tag) {
          using T = decltype(tag);
          const auto R = dim(logits, "logits", 0), K = dim(logits, "logits", 1);
          cuda::gumbel_softmax<T>(device_ptr<T>(logits, "logits", {R, K}), R, K, T(tau), seed, stream, offset,
                                  device_ptr<T>(y_soft, "y_soft", {R, K}, true), opt<T>(y, "y", {R, K}, true),
                                  device_ptr<std::int64_t>(index, "index", {R}, true),
                                  device_ptr<std::int32_t>(status, "status", {R}, true), as_stream(st));
        });
      },
      "logits"_a, "temperature"_a, "seed"_a, "stream"_a, "offset"_a, "y_soft"_a, "y"_a, "index"_a, "status"_a,
      "cuda_stream"_a = 0);
  m.def(
      "gumbel_softmax_backward",
      [](py::object logits, py::object y_soft, double tau, u64 seed, u64 stream, u64 offset, py::object g,
         py::object out, py::object status, std::uintptr_t st) {
        by_dtype(g, "grad_y", [&](auto tag) {
          using T = decltype(tag);
          const auto R = dim(g, "grad_y", 0), K = dim(g, "grad_y", 1);
          const T* ys = opt<T>(y_soft, "y_soft", {R, K});
          cuda::gumbel_softmax_backward<T>(ys ? nullptr : device_ptr<T>(logits, "logits", {R, K}), ys, R, K, T(tau),
                                           seed, stream, offset, device_ptr<T>(g, "grad_y", {R, K}),
                                           device_ptr<T>(out, "out", {R, K}, true),
                                           device_ptr<std::int32_t>(status, "status", {R}, true), as_stream(st));
        });
      },
      "logits"_a, "y_soft"_a, "temperature"_a, "seed"_a, "stream"_a, "offset"_a, "grad_y"_a, "out"_a, "status"_a,
      "cuda_stream"_a = 0);
}
