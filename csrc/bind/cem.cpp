// _cpu_cem: bindings of the kernels behind the cross-entropy method (batched top-k; one fused
// iteration: sample the population, then select elites and refit the diagonal Gaussian; the
// whole loop of cem_optimize around a Python objective).
#include <cmath>

#include "args/cem.hpp"
#include "bind_common.hpp"
#include "fast_path.hpp"
#include "pygenmod/cem.hpp"
#include "pygenmod/topk.hpp"

namespace py = pybind11;
using namespace pybind11::literals;
using namespace pygenmod;
using namespace pygenmod::bind;

// f(E{}) with E the noise type of the draws: float (the float32 layout) when noise32, else double.
template <class F>
decltype(auto) with_noise(bool noise32, F&& f) {
  return noise32 ? f(float{}) : f(double{});
}

static void sample_diag(py::array mean, py::array std_, std::uint64_t seed, std::uint64_t stream, std::uint64_t offset,
                        py::array X, bool noise32) {
  dispatch_float<HostArrays>(mean, "mean", [&](auto tag) {
    using T = decltype(tag);
    if (mean.ndim() != 2 || X.ndim() != 3) throw std::invalid_argument("mean must be 2-D and X 3-D");
    const auto B = mean.shape(0), D = mean.shape(1), N = X.shape(1);
    const T* m = in<HostArrays, T>(mean, "mean", {B, D});
    const T* s = in<HostArrays, T>(std_, "scale", {B, D});
    T* x = out<HostArrays, T>(X, "X", {B, N, D});
    py::gil_scoped_release nogil;
    with_noise(noise32, [&](auto e) { cem::sample_diag<T, decltype(e)>(m, s, seed, stream, offset, B, N, D, x); });
  });
}

// Returns the number of rows whose returns hold NaN or infinity (0: all rows updated).
static py::ssize_t update_diag(py::array X, py::array R, py::array w, double alpha, double min_std, double reg,
                               py::array mean, py::array std_, py::array best_x, py::array best_r, py::array hist,
                               py::array idx) {
  return dispatch_float<HostArrays>(X, "X", [&](auto tag) -> py::ssize_t {
    using T = decltype(tag);
    if (X.ndim() != 3 || idx.ndim() != 2) throw std::invalid_argument("X must be 3-D and idx 2-D");
    const auto B = X.shape(0), N = X.shape(1), D = X.shape(2), k = idx.shape(1);
    if (k < 1 || k > N) throw std::invalid_argument("idx: k must be in [1, N]");
    const T* px = in<HostArrays, T>(X, "X", {B, N, D});
    const T* pr = in<HostArrays, T>(R, "returns", {B, N});
    const T* pw = in<HostArrays, T>(w, "w", {k});
    T* m = out<HostArrays, T>(mean, "mean", {B, D});
    T* s = out<HostArrays, T>(std_, "scale", {B, D});
    T* bx = out<HostArrays, T>(best_x, "best_x", {B, D});
    T* br = out<HostArrays, T>(best_r, "best_r", {B});
    T* h = out<HostArrays, T>(hist, "hist", {B});
    auto* pi = out<HostArrays, std::int64_t>(idx, "idx", {B, k});
    py::gil_scoped_release nogil;
    return cem::update_diag<T>(px, pr, B, N, D, pw, {k, alpha, min_std, reg}, m, s, bx, br, h, pi);
  });
}

// cem_optimize's whole loop (cem::optimize_diag) around the Python objective, called with the
// GIL held; sampling and updates run without it. Returns are used as they come when they are a
// C-contiguous (B, N) array of the state's dtype, else through coerce(R) (the Python layer's
// conversion and checks). A population the objective keeps a reference to is left to it: the
// next one gets a fresh array. Returns n_iter or the first iteration with NaN/inf returns.
static py::ssize_t optimize_diag(py::object objective, py::object coerce, py::array mean, py::array std_,
                                 std::uint64_t seed, std::uint64_t stream, py::array w, double alpha, double min_std,
                                 double reg, py::array best_x, py::array best_r, py::array hist, py::array idx,
                                 py::array X, bool noise32) {
  return dispatch_float<HostArrays>(mean, "mean", [&](auto tag) -> py::ssize_t {
    using T = decltype(tag);
    using Returns = py::array_t<T, py::array::c_style>;
    if (mean.ndim() != 2 || X.ndim() != 3 || idx.ndim() != 2 || hist.ndim() != 2)
      throw std::invalid_argument("mean and idx must be 2-D, X 3-D and hist 2-D");
    const auto B = mean.shape(0), D = mean.shape(1), N = X.shape(1), k = idx.shape(1), n_iter = hist.shape(0);
    if (k < 1 || k > N) throw std::invalid_argument("idx: k must be in [1, N]");
    T* m = out<HostArrays, T>(mean, "mean", {B, D});
    T* s = out<HostArrays, T>(std_, "scale", {B, D});
    const T* pw = in<HostArrays, T>(w, "w", {k});
    T* bx = out<HostArrays, T>(best_x, "best_x", {B, D});
    T* br = out<HostArrays, T>(best_r, "best_r", {B});
    T* h = out<HostArrays, T>(hist, "hist", {n_iter, B});
    auto* pi = out<HostArrays, std::int64_t>(idx, "idx", {B, k});
    T* x0 = out<HostArrays, T>(X, "X", {B, N, D});
    py::array population = X;  // the array that X points into
    py::object returns;        // the returns being used (released with the GIL held, below)
    auto owned = population.ref_count();
    py::ssize_t done;
    {
      py::gil_scoped_release nogil;
      auto evaluate = [&](index_t, T*, T** next) -> const T* {
        py::gil_scoped_acquire gil;
        returns = objective(population);
        const T* r = nullptr;
        if (Returns::check_(returns)) {  // as it comes: no second check
          const auto a = py::reinterpret_borrow<py::array>(returns);
          if (a.ndim() == 2 && a.shape(0) == B && a.shape(1) == N) r = static_cast<const T*>(a.data());
        }
        if (!r) {
          returns = coerce(returns);
          r = in<HostArrays, T>(returns, "objective(samples)", {B, N});
        }
        if (population.ref_count() != owned) {  // the objective kept the samples
          population = py::array_t<T>({B, N, D});
          owned = population.ref_count();
          *next = static_cast<T*>(population.mutable_data());
        }
        return r;
      };
      done = with_noise(noise32, [&](auto e) {
        return cem::optimize_diag<T, decltype(e)>(n_iter, B, N, D, seed, stream, pw, {k, alpha, min_std, reg}, m, s, bx,
                                                  br, h, pi, x0, evaluate);
      });
    }
    return done;
  });
}

// One-call fast path of cem.cem_step (issue 11; pygenmod._fast) for covariance="diag" and
// uniform elite weights: mean, std (B, D), samples (B, N, D), returns (B, N), all C-contiguous
// in one dtype and finite, std >= 0, and the general path's option checks; then
// cem::step_diag_uniform. (new mean, new std), or None where the general path must run.
constexpr py::ssize_t kStepFastMax = 1 << 16;  // B * N * D

template <class T>
py::object cem_step_fast_t(const py::array& mean, const py::array& std_, const py::array& X, const py::array& R,
                           py::ssize_t k, double alpha, double min_std, double reg) {
  const T *m = fast::view<T>(mean), *s = fast::view<T>(std_), *x = fast::view<T>(X), *r = fast::view<T>(R);
  if (!m || !s || !x || !r || mean.ndim() != 2 || X.ndim() != 3) return py::none();
  const py::ssize_t B = mean.shape(0), D = mean.shape(1), N = X.shape(1);
  if (B < 1 || D < 1 || k < 1 || k > N || B * N * D > kStepFastMax || !fast::shape_is(std_, {B, D}) ||
      !fast::shape_is(X, {B, N, D}) || !fast::shape_is(R, {B, N}))
    return py::none();
  if (!(alpha >= 0 && alpha < 1) || !(min_std >= 0) || !std::isfinite(min_std) || !(reg >= 0) || !std::isfinite(reg))
    return py::none();
  if (!fast::all_finite(m, mean.size()) || !fast::all_finite(s, std_.size()) || !fast::all_finite(x, X.size()) ||
      !fast::all_finite(r, R.size()))
    return py::none();
  for (py::ssize_t i = 0; i < B * D; ++i)
    if (s[i] < 0) return py::none();
  auto new_mean = fast::empty<T>({B, D}), new_std = fast::empty<T>({B, D});
  cem::step_diag_uniform<T>(m, s, x, r, B, N, D, k, alpha, min_std, reg, new_mean.mutable_data(),
                            new_std.mutable_data());
  return py::make_tuple(new_mean, new_std);
}

py::object cem_step_fast(const py::array& mean, const py::array& std_, const py::array& X, const py::array& R,
                         py::ssize_t k, double alpha, double min_std, double reg) {
  return fast::by_dtype(mean,
                        [&](auto t) { return cem_step_fast_t<decltype(t)>(mean, std_, X, R, k, alpha, min_std, reg); });
}

PYBIND11_MODULE(_cpu_cem, m) {
  pygenmod::shared_pool::adopt();
  m.doc() = "pygenmod cross-entropy-method kernels (CPU)";
  m.def(
      "top_k",
      [](py::array x, py::array idx) {
        args::top_k<HostArrays>(x, idx, nogil([](auto... a) { topk::top_k_cpu(a...); }));
      },
      "x"_a, "idx"_a, "indices of the k largest per row, largest first");
  // one-call fast path (issue 11): None when the general path must run
  m.def("cem_step_fast", &cem_step_fast, "mean"_a, "std"_a, "samples"_a, "returns"_a, "n_elite"_a, "alpha"_a,
        "min_std"_a, "reg"_a);
  m.def("sample_diag", &sample_diag, "mean"_a, "std"_a, "seed"_a, "stream"_a, "offset"_a, "X"_a, "noise32"_a,
        "X[b, s] = mean[b] + std[b] * eps on normal stream stream + b from offset (one CEM population); eps in "
        "the float32 layout when noise32, else the float64 one");
  m.def("update_diag", &update_diag, "X"_a, "R"_a, "w"_a, "alpha"_a, "min_std"_a, "reg"_a, "mean"_a, "std"_a,
        "best_x"_a, "best_r"_a, "hist"_a, "idx"_a,
        "elites, best-so-far and the smoothed diagonal refit in place; returns the count of rows with bad returns");
  m.def("optimize_diag", &optimize_diag, "objective"_a, "coerce"_a, "mean"_a, "std"_a, "seed"_a, "stream"_a, "w"_a,
        "alpha"_a, "min_std"_a, "reg"_a, "best_x"_a, "best_r"_a, "hist"_a, "idx"_a, "X"_a, "noise32"_a,
        "cem_optimize's loop (diag): sample, objective, update per iteration; returns n_iter or the first "
        "iteration whose returns hold NaN or infinity");
  m.attr("PAR_MIN") = cem::PAR_MIN;
}
