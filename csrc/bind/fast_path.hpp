// Helpers of the one-call fast paths (issue 11): for tiny problems the Python layer's checks
// cost more than the kernel, so a hot public function hands plain NumPy arrays straight to one
// binding that checks them here and runs the kernel. Every check answers "not here" (the
// binding returns None) instead of raising: the Python layer then runs its general path,
// which validates again and raises its own error, so messages live in one place (Python).
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/gil_safe_call_once.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <optional>
#include <vector>

namespace pygenmod::bind::fast {
namespace py = pybind11;

// a's data if it is an aligned, C-contiguous array of native T, else nullptr.
template <class T>
const T* view(const py::array& a) {
  constexpr int kAligned = py::detail::npy_api::NPY_ARRAY_ALIGNED_;
  if (!py::isinstance<py::array_t<T>>(a) || !(a.flags() & py::array::c_style) || !(a.flags() & kAligned))
    return nullptr;
  return static_cast<const T*>(a.data());
}

// The input arrays of one fast-path call as aligned, C-contiguous data of native T: an array's
// own data (view), or for a strided or unaligned array of that dtype a contiguous copy, kept
// alive here until the call returns. The general path copies such arrays the same way, and
// they are common: mu and logvar sliced from one (B, 2D) encoder output are strided views.
// Inputs only: a copy of an output would take the kernel's writes.
class Inputs {
 public:
  // nullptr for any other array (another dtype or byte order, not an array).
  template <class T>
  const T* get(const py::array& a) {
    if (const T* p = view<T>(a)) return p;
    if (n_ == kMax || !py::isinstance<py::array_t<T>>(a)) return nullptr;
    auto c = py::array_t<T, py::array::c_style | py::detail::npy_api::NPY_ARRAY_ALIGNED_>::ensure(a);
    if (!c) {
      PyErr_Clear();
      return nullptr;
    }
    keep_[n_++] = c;
    return c.data();
  }

  // A (B, D) input whose rows the kernel may read at a stride (a column slice of a wider array,
  // such as mu and logvar sliced from one encoder output): its own data and its row stride in
  // elements (ld) when it is an aligned array of native T with contiguous rows that do not
  // overlap, else get's contiguous copy (ld = D). nullptr for any other array.
  template <class T>
  const T* rows(const py::array& a, std::int64_t& ld) {
    constexpr int kAligned = py::detail::npy_api::NPY_ARRAY_ALIGNED_;
    constexpr py::ssize_t t = sizeof(T);
    if (a.ndim() != 2) return nullptr;
    const py::ssize_t B = a.shape(0), D = a.shape(1);
    ld = D;
    if (B > 1 && D > 1 && a.strides(1) == t && a.strides(0) % t == 0 && a.strides(0) / t >= D &&
        (a.flags() & kAligned) && py::isinstance<py::array_t<T>>(a)) {
      ld = a.strides(0) / t;
      return static_cast<const T*>(a.data());
    }
    return get<T>(a);
  }

 private:
  static constexpr int kMax = 8;
  py::object keep_[kMax];
  int n_ = 0;
};

// Below this many elements a fast path keeps the GIL: releasing and taking it back costs more
// than a tiny call's work.
constexpr py::ssize_t kKeepGilMax = 1 << 14;

// The GIL released for the scope when the call has at least kKeepGilMax elements.
class ReleaseIfLarge {
 public:
  explicit ReleaseIfLarge(py::ssize_t elements) {
    if (elements >= kKeepGilMax) nogil_.emplace();
  }

 private:
  std::optional<py::gil_scoped_release> nogil_;
};

// True when a has exactly this shape.
template <class Shape>
bool shape_is(const py::array& a, const Shape& shape) {
  if (static_cast<std::size_t>(a.ndim()) != shape.size()) return false;
  py::ssize_t i = 0;
  for (auto n : shape)
    if (a.shape(i++) != n) return false;
  return true;
}
inline bool shape_is(const py::array& a, std::initializer_list<py::ssize_t> shape) {
  return shape_is<std::initializer_list<py::ssize_t>>(a, shape);
}

// f(T{}) with T the dtype of a (float64 or float32, C-contiguous): a fast path's dispatch on
// its leading array; None for anything else.
template <class F>
py::object by_dtype(const py::array& a, F&& f) {
  if (view<double>(a)) return f(double{});
  if (view<float>(a)) return f(float{});
  return py::none();
}

// by_dtype for a fast path that takes strided inputs (Inputs): any float64 / float32 array.
template <class F>
py::object by_float_dtype(const py::array& a, F&& f) {
  if (py::isinstance<py::array_t<double>>(a)) return f(double{});
  if (py::isinstance<py::array_t<float>>(a)) return f(float{});
  return py::none();
}

// True when the product of the extents (>= 0) is at most max; never overflows.
template <class It>
bool product_at_most(It first, It last, py::ssize_t max) {
  py::ssize_t p = 1;
  for (; first != last; ++first) {
    const py::ssize_t d = *first;
    if (d <= 0) return d == 0;
    if (p > max / d) return false;
    p *= d;
  }
  return true;
}
template <class Dims>
bool product_at_most(const Dims& dims, py::ssize_t max) {
  return product_at_most(std::begin(dims), std::end(dims), max);
}
inline bool product_at_most(std::initializer_list<py::ssize_t> dims, py::ssize_t max) {
  return product_at_most<std::initializer_list<py::ssize_t>>(dims, max);
}

// True if no NaN/inf: one pass summing x * 0, which is 0 for finite x and NaN for NaN or inf
// (so, unlike a plain sum, large finite values cannot overflow into a false alarm). The sum's
// order does not change its answer, so it runs in vectors, compiled for each ISA: a medium
// array's check was a fast path's largest pass (a scalar chain, ~1 element a cycle).
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define PGM_FAST_CLONES __attribute__((target_clones("avx512f", "arch=x86-64-v3", "default")))
#else
#define PGM_FAST_CLONES
#endif
template <class T>
PGM_FAST_CLONES bool all_finite(const T* p, std::int64_t n) {
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (std::int64_t i = 0; i < n; ++i) s += p[i] * T(0);  // 0 * finite = 0, 0 * inf = NaN
  return s == T(0);
}

// Python scalars of a fast path's options: exact types only (bool, NumPy scalars and other
// integers go to the general path, which owns their conversions and messages).
// An exact int in [lo, hi].
inline bool integer(const py::handle& h, long long lo, long long hi, py::ssize_t& out) {
  if (!PyLong_CheckExact(h.ptr())) return false;
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(h.ptr(), &overflow);
  if (overflow || v < lo || v > hi) return false;
  out = static_cast<py::ssize_t>(v);
  return true;
}
// A count: an exact int in [1, 2**62] (the general path's positive_int).
inline bool count(const py::handle& h, py::ssize_t& out) { return integer(h, 1, 1LL << 62, out); }
// An exact int in [0, 2**64): seeds, streams, offsets.
inline bool u64(const py::handle& h, std::uint64_t& out) {
  if (!PyLong_CheckExact(h.ptr())) return false;
  const unsigned long long v = PyLong_AsUnsignedLongLong(h.ptr());  // OverflowError when < 0 or >= 2**64
  if (v == static_cast<unsigned long long>(-1) && PyErr_Occurred()) {
    PyErr_Clear();
    return false;
  }
  out = v;
  return true;
}
inline bool is_u64(const py::handle& h) {
  std::uint64_t unused;
  return u64(h, unused);
}
// The counter arguments of a seeded fast path: seed None or an exact int in [0, 2**64), stream
// and offset exact ints in [0, 2**64) (anything else goes to the general path, which converts or
// raises). Checked here rather than in Python: a third of a tiny draw's cost was that check.
inline bool counter(const py::handle& seed, const py::handle& stream, const py::handle& offset, std::uint64_t& s,
                    std::uint64_t& o) {
  return (seed.is_none() || is_u64(seed)) && u64(stream, s) && u64(offset, o);
}
// The key of a seeded fast path: resolve(seed) (the Python layer's resolve_seed; a None seed
// takes the package generator's next key). A fast path draws it only after the checks that the
// general path makes before its own draw, and hands it back with a None result, so that a call
// the general path then finishes (or rejects) takes exactly the key it would have taken alone.
inline std::uint64_t draw_key(const py::handle& resolve, const py::handle& seed) {
  std::uint64_t key;
  if (u64(seed, key)) return key;  // an int seed is its own key (resolve_seed's answer, without the call)
  return resolve(seed).cast<std::uint64_t>();
}
// The key of a call that may be given its noise (eps not None): seed=None then takes no key, as
// in sampling._call (the key is unused and the package generator stays where it is).
inline std::uint64_t draw_key(const py::handle& resolve, const py::handle& seed, const py::handle& eps) {
  return seed.is_none() && !eps.is_none() ? 0 : draw_key(resolve, seed);
}
// An exact float, or an exact int that a double holds exactly.
inline bool number(const py::handle& h, double& out) {
  if (PyFloat_CheckExact(h.ptr())) {
    out = PyFloat_AS_DOUBLE(h.ptr());
    return true;
  }
  if (!PyLong_CheckExact(h.ptr())) return false;
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(h.ptr(), &overflow);
  if (overflow || v > (1LL << 53) || v < -(1LL << 53)) return false;
  out = static_cast<double>(v);
  return true;
}

// True when every row status is 0 (the kernel found nothing for the general path to report).
inline bool all_clean(const std::vector<std::int32_t>& status) {
  for (auto st : status)
    if (st) return false;
  return true;
}

// Outputs of at least this many bytes (_recycle.OUTPUT_MIN_BYTES) are asked of
// pygenmod._recycle.empty, which reuses an array that nothing references any more (no fresh
// pages to fault in) by its own size bound; smaller ones are allocated here (a Python call
// would cost more than they can save).
constexpr py::ssize_t kRecycleFloorBytes = 1 << 17;

// A C-contiguous array of shape dims[0..nd) (uninitialised): a fast path's output. Small ones
// straight from NumPy's C API (py::array_t's constructor copies the shape and strides into
// vectors first: a third of the smallest calls' allocation cost).
template <class T>
py::array_t<T> empty(const py::ssize_t* dims, int nd) {
  py::ssize_t n = 1;
  for (int i = 0; i < nd; ++i) n *= dims[i];
  if (n * static_cast<py::ssize_t>(sizeof(T)) < kRecycleFloorBytes) {
    auto& api = py::detail::npy_api::get();
    PyObject* a = api.PyArray_NewFromDescr_(api.PyArray_Type_, py::dtype::of<T>().release().ptr(), nd,
                                            reinterpret_cast<const Py_intptr_t*>(dims), nullptr, nullptr, 0, nullptr);
    if (!a) throw py::error_already_set();
    return py::reinterpret_steal<py::array_t<T>>(a);
  }
  PYBIND11_CONSTINIT static py::gil_safe_call_once_and_store<py::object> recycle;
  const py::object& fn =
      recycle.call_once_and_store_result([] { return py::module_::import("pygenmod._recycle").attr("empty"); })
          .get_stored();
  py::tuple shape(nd);
  for (int i = 0; i < nd; ++i) shape[i] = py::int_(dims[i]);
  return fn(shape, py::dtype::of<T>()).template cast<py::array_t<T>>();
}
template <class T>
py::array_t<T> empty(const std::vector<py::ssize_t>& shape) {
  return empty<T>(shape.data(), static_cast<int>(shape.size()));
}
template <class T>
py::array_t<T> empty(std::initializer_list<py::ssize_t> shape) {
  return empty<T>(shape.begin(), static_cast<int>(shape.size()));
}

}  // namespace pygenmod::bind::fast
