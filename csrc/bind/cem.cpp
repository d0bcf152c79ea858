// _cpu_cem: bindings of the kernels behind the cross-entropy method (batched top-k; one fused
// iteration: sample the population, then select elites and refit the diagonal Gaussian; the
// whole loop of cem_optimize around a Python objective).
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <vector>

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

// cem_optimize's whole loop (cem::optimize_diag) around the Python objective, on arrays already
// checked: population (B, N, D) is the first samples buffer. The objective is called with the GIL
// held; sampling and updates run without it, except for small problems, where releasing and
// taking it back every iteration would cost more than the work it frees. Returns are used as
// they come when they are a C-contiguous (B, N) array of T, else through coerce(R) (the Python
// layer's conversion and checks). A population the objective keeps a reference to is left to
// it: the next one gets a fresh array. Returns n_iter or the first iteration with NaN/inf
// returns.
template <class T>
static py::ssize_t run_optimize(const py::object& objective, const py::object& coerce, py::array population,
                                index_t n_iter, index_t B, index_t N, index_t D, std::uint64_t seed,
                                std::uint64_t stream, const T* pw, const cem::UpdateOptions& o, T* m, T* s, T* bx,
                                T* br, T* h, std::int64_t* pi, bool noise32) {
  using Returns = py::array_t<T, py::array::c_style>;
  T* x0 = static_cast<T*>(population.mutable_data());
  py::object returns;  // the returns being used (released with the GIL held, below)
  auto owned = population.ref_count();
  const bool release = B * N * D >= fast::kKeepGilMax;
  std::optional<py::gil_scoped_release> nogil;
  if (release) nogil.emplace();
  auto evaluate = [&](index_t, T*, T** next) -> const T* {
    std::optional<py::gil_scoped_acquire> gil;
    if (release) gil.emplace();
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
  const py::ssize_t done = with_noise(noise32, [&](auto e) {
    return cem::optimize_diag<T, decltype(e)>(n_iter, B, N, D, seed, stream, pw, o, m, s, bx, br, h, pi, x0, evaluate);
  });
  nogil.reset();
  returns = py::object();  // with the GIL held
  return done;
}

static py::ssize_t optimize_diag(py::object objective, py::object coerce, py::array mean, py::array std_,
                                 std::uint64_t seed, std::uint64_t stream, py::array w, double alpha, double min_std,
                                 double reg, py::array best_x, py::array best_r, py::array hist, py::array idx,
                                 py::array X, bool noise32) {
  return dispatch_float<HostArrays>(mean, "mean", [&](auto tag) -> py::ssize_t {
    using T = decltype(tag);
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
    out<HostArrays, T>(X, "X", {B, N, D});
    return run_optimize<T>(objective, coerce, X, n_iter, B, N, D, seed, stream, pw, {k, alpha, min_std, reg}, m, s, bx,
                           br, h, pi, noise32);
  });
}

// One-call fast path of cem.cem_optimize (issue 11; pygenmod._fast) for covariance="diag" and
// uniform elite weights: mean and scale C-contiguous (B, D) in one dtype, finite, scale >= 0;
// n_samples, n_elite, n_iter exact ints with 1 <= n_elite <= n_samples; alpha, min_std, reg
// Python floats or ints with the general path's bounds (finite min_std and reg); stream and seed
// (or None) exact ints in [0, 2**64); noise_bytes 4 or 8 (or 0: the problem's). Only then is the
// seed resolved (resolve(seed): a None seed takes the package generator's next key), so a call
// that goes on to the general path draws no key here. Returns (done, mean, scale, best_x,
// best_return, history), done < n_iter when that iteration's returns held NaN/inf, or None where
// the general path must run.
constexpr py::ssize_t kOptimizeFastMax = 1 << 22;  // B * N * D and n_iter * B

template <class T>
static py::object cem_optimize_fast_t(const py::object& objective, const py::object& coerce, const py::array& mean,
                                      const py::array& scale, const py::handle& n_samples, const py::handle& n_elite,
                                      const py::handle& n_iter, const py::handle& seed, const py::object& resolve,
                                      const py::handle& stream, const py::handle& alpha_, const py::handle& min_std_,
                                      const py::handle& reg_, int noise_bytes) {
  const T *pm = fast::view<T>(mean), *ps = fast::view<T>(scale);
  if (!pm || !ps || mean.ndim() != 2) return py::none();
  const py::ssize_t B = mean.shape(0), D = mean.shape(1);
  py::ssize_t N, k, T_;
  std::uint64_t stream0;
  double alpha, min_std, reg;
  if (B < 1 || D < 1 || !fast::shape_is(scale, {B, D}) || !fast::count(n_samples, N) || !fast::count(n_elite, k) ||
      !fast::count(n_iter, T_) || k > N || !fast::product_at_most({B, N, D}, kOptimizeFastMax) ||
      !fast::product_at_most({T_, B}, kOptimizeFastMax) || !fast::u64(stream, stream0) ||
      !(seed.is_none() || fast::is_u64(seed)) || !fast::number(alpha_, alpha) || !fast::number(min_std_, min_std) ||
      !fast::number(reg_, reg))
    return py::none();
  if (!(alpha >= 0 && alpha < 1) || !(min_std >= 0 && std::isfinite(min_std)) || !(reg >= 0 && std::isfinite(reg)))
    return py::none();
  if (!fast::all_finite(pm, B * D) || !fast::all_finite(ps, B * D)) return py::none();
  for (py::ssize_t i = 0; i < B * D; ++i)
    if (ps[i] < 0) return py::none();
  const auto key = resolve(seed).cast<std::uint64_t>();
  auto m = fast::empty<T>({B, D}), s = fast::empty<T>({B, D}), best_x = fast::empty<T>({B, D});
  auto best_r = fast::empty<T>({B}), hist = fast::empty<T>({T_, B});
  auto X = fast::empty<T>({B, N, D});
  std::copy(pm, pm + B * D, m.mutable_data());
  std::copy(ps, ps + B * D, s.mutable_data());
  std::fill(best_x.mutable_data(), best_x.mutable_data() + B * D, T(0));
  std::fill(best_r.mutable_data(), best_r.mutable_data() + B, -std::numeric_limits<T>::infinity());
  const std::vector<T> w(static_cast<std::size_t>(k), static_cast<T>(1.0 / static_cast<double>(k)));
  std::vector<std::int64_t> idx(static_cast<std::size_t>(B * k));
  const bool noise32 = noise_bytes == 4 || (noise_bytes == 0 && sizeof(T) == 4);
  const auto done = run_optimize<T>(objective, coerce, X, T_, B, N, D, key, stream0, w.data(), {k, alpha, min_std, reg},
                                    m.mutable_data(), s.mutable_data(), best_x.mutable_data(), best_r.mutable_data(),
                                    hist.mutable_data(), idx.data(), noise32);
  return py::make_tuple(done, m, s, best_x, best_r, hist);
}

static py::object cem_optimize_fast(py::object objective, py::object coerce, py::array mean, py::array scale,
                                    py::handle n_samples, py::handle n_elite, py::handle n_iter, py::handle seed,
                                    py::object resolve, py::handle stream, py::handle alpha, py::handle min_std,
                                    py::handle reg, int noise_bytes) {
  return fast::by_dtype(mean, [&](auto t) {
    return cem_optimize_fast_t<decltype(t)>(objective, coerce, mean, scale, n_samples, n_elite, n_iter, seed, resolve,
                                            stream, alpha, min_std, reg, noise_bytes);
  });
}

// One-call fast path of cem.top_k (issue 11; pygenmod._fast): x a C-contiguous float array of
// rank >= 1 and at most kTopKFastMax entries, finite; k an exact int in [0, N]. The indices
// (..., k), or None where the general path must run.
constexpr py::ssize_t kTopKFastMax = 1 << 16;

template <class T>
py::object top_k_fast_t(const py::array& x, const py::handle& k_) {
  const T* p = fast::view<T>(x);
  if (!p || x.ndim() < 1 || x.size() > kTopKFastMax) return py::none();
  const py::ssize_t nd = x.ndim(), N = x.shape(nd - 1);
  py::ssize_t k;
  if (!fast::integer(k_, 0, N, k) || !fast::all_finite(p, x.size())) return py::none();
  std::vector<py::ssize_t> shape(x.shape(), x.shape() + nd);
  shape.back() = k;
  py::ssize_t rows = 1;
  for (py::ssize_t d = 0; d + 1 < nd; ++d) rows *= shape[d];
  py::array_t<std::int64_t> idx(shape);
  if (rows > 0 && k > 0) {
    fast::ReleaseIfLarge nogil(x.size());
    topk::top_k_cpu<T>(p, rows, N, k, idx.mutable_data());
  }
  return std::move(idx);
}

py::object top_k_fast(const py::array& x, const py::handle& k) {
  return fast::by_dtype(x, [&](auto t) { return top_k_fast_t<decltype(t)>(x, k); });
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
  // one-call fast paths (issue 11): None when the general path must run
  m.def("top_k_fast", &top_k_fast, "x"_a, "k"_a);
  m.def("cem_step_fast", &cem_step_fast, "mean"_a, "std"_a, "samples"_a, "returns"_a, "n_elite"_a, "alpha"_a,
        "min_std"_a, "reg"_a);
  m.def("sample_diag", &sample_diag, "mean"_a, "std"_a, "seed"_a, "stream"_a, "offset"_a, "X"_a, "noise32"_a,
        "X[b, s] = mean[b] + std[b] * eps on normal stream stream + b from offset (one CEM population); eps in "
        "the float32 layout when noise32, else the float64 one");
  m.def("update_diag", &update_diag, "X"_a, "R"_a, "w"_a, "alpha"_a, "min_std"_a, "reg"_a, "mean"_a, "std"_a,
        "best_x"_a, "best_r"_a, "hist"_a, "idx"_a,
        "elites, best-so-far and the smoothed diagonal refit in place; returns the count of rows with bad returns");
  m.def("cem_optimize_fast", &cem_optimize_fast, "objective"_a, "coerce"_a, "mean"_a, "scale"_a, "n_samples"_a,
        "n_elite"_a, "n_iter"_a, "seed"_a, "resolve"_a, "stream"_a, "alpha"_a, "min_std"_a, "reg"_a, "noise_bytes"_a);
  m.def("optimize_diag", &optimize_diag, "objective"_a, "coerce"_a, "mean"_a, "std"_a, "seed"_a, "stream"_a, "w"_a,
        "alpha"_a, "min_std"_a, "reg"_a, "best_x"_a, "best_r"_a, "hist"_a, "idx"_a, "X"_a, "noise32"_a,
        "cem_optimize's loop (diag): sample, objective, update per iteration; returns n_iter or the first "
        "iteration whose returns hold NaN or infinity");
  m.attr("PAR_MIN") = cem::PAR_MIN;
}
