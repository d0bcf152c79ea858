// One array-access layer for the bindings, host and device alike. A policy (HostArrays here,
// DeviceArrays in cuda/cuda_array.hpp) reads an argument's pointer, shape, dtype, contiguity and
// writability into an ArrayInfo; everything else (the checks, their messages, the dtype
// dispatch) is written once below, so a CPU and a CUDA binding of a function can share their
// argument unpacking as one template over the policy. The Python layer validates user input;
// these checks are the last line that keeps C++ from reading or writing out of bounds.
//
//   in<P, T>(a, "name", {B, -1})     const T*, checked: dtype T, C-contiguous, exact shape
//                                    (-1 = any extent)
//   out<P, T>(a, "name", {B})        T*, the same checks and writable
//   in_or_null / out_or_null<P, T>   nullptr for None, else as in / out
//   shape_of / dtype_of / size_of<P>(a, "name"), dim<P>(a, "name", i) (0 past the last axis)
//   opt_in / opt_out<P, T>           nullptr for an array of size 0 (an absent optional), else as in / out
//   dispatch_float<P>(a, "name", f)  f(double{}) or f(float{}) by a's dtype
//   flags_are_uint8<P>({&a, &b}, "...")  shared dtype of optional flag arrays: uint8 or float
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <vector>

namespace pygenmod::bind {
namespace py = pybind11;

using Shape = std::initializer_list<py::ssize_t>;

// An array's extents, held inline (NumPy and CuPy arrays have at most 64 axes): read for every
// array of every kernel call, where a std::vector's allocation was a tenth of a small call.
class Extents {
 public:
  static constexpr std::size_t kMax = 64;
  template <class It>
  void assign(It first, It last) {
    n_ = 0;
    for (; first != last; ++first) {
      if (n_ == kMax) throw std::invalid_argument("array: more than 64 dimensions");
      v_[n_++] = static_cast<py::ssize_t>(*first);
    }
  }
  std::size_t size() const { return n_; }
  py::ssize_t operator[](std::size_t i) const { return v_[i]; }
  const py::ssize_t* begin() const { return v_; }
  const py::ssize_t* end() const { return v_ + n_; }
  std::vector<py::ssize_t> vector() const { return {begin(), end()}; }

 private:
  py::ssize_t v_[kMax];
  std::size_t n_ = 0;
};

// What a binding needs to know of an array, on either side of the bus.
struct ArrayInfo {
  void* ptr = nullptr;
  Extents shape;
  std::string dtype;  // NumPy's name ("float32", "int64", "uint8", "bool", "bfloat16"); ">f8" if byte-swapped
  bool c_contiguous = true;
  bool writable = true;
};

// The dtype's name from NumPy's (byte order, kind, item size) triple, as in an array-interface
// typestr ("<f8", "|u1"). Byte-swapped data (big-endian on this little-endian machine) keeps its
// typestr so it never matches a native type.
inline std::string dtype_name(char byteorder, char kind, py::ssize_t itemsize) {
  // Every array of every kernel call is named here: the kernels' types without building strings.
  if (byteorder != '>') {
    if (kind == 'f' && itemsize == 4) return "float32";
    if (kind == 'f' && itemsize == 8) return "float64";
    if (kind == 'i' && itemsize == 4) return "int32";
    if (kind == 'i' && itemsize == 8) return "int64";
    if (kind == 'u' && itemsize == 1) return "uint8";
    if (kind == 'u' && itemsize == 4) return "uint32";
    if (kind == 'b' && itemsize == 1) return "bool";
  }
  const std::string bits = std::to_string(8 * itemsize);
  if (byteorder == '>') return std::string(">") + kind + std::to_string(itemsize);
  switch (kind) {
    case 'f':
      return "float" + bits;
    case 'i':
      return "int" + bits;
    case 'u':
      return "uint" + bits;
    case 'c':
      return "complex" + bits;
    case 'b':
      return itemsize == 1 ? "bool" : "bool" + bits;
    default:
      return std::string(1, kind) + std::to_string(itemsize);
  }
}

// The NumPy name of the element type a kernel reads; specialise for a binding's own storage types.
template <class T>
struct kernel_dtype;
template <>
struct kernel_dtype<double> {
  static constexpr const char* name = "float64";
};
template <>
struct kernel_dtype<float> {
  static constexpr const char* name = "float32";
};
template <>
struct kernel_dtype<std::int64_t> {
  static constexpr const char* name = "int64";
};
template <>
struct kernel_dtype<std::int32_t> {
  static constexpr const char* name = "int32";
};
template <>
struct kernel_dtype<std::uint32_t> {
  static constexpr const char* name = "uint32";
};
template <>
struct kernel_dtype<std::uint8_t> {
  static constexpr const char* name = "uint8";
};

inline std::string shape_str(const std::vector<py::ssize_t>& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + (s.size() == 1 ? ",)" : ")");
}

inline std::string shape_str(const Extents& s) { return shape_str(s.vector()); }

inline std::string shape_str(Shape s) {
  std::string out = "(";
  size_t i = 0;
  for (auto n : s) out += (i++ ? ", " : "") + (n < 0 ? std::string("*") : std::to_string(n));
  return out + (s.size() == 1 ? ",)" : ")");
}

// The checks of a pointer access, in this order, with these messages, for every policy.
template <class T>
void check_array(const ArrayInfo& a, const char* name, Shape shape, bool writable) {
  const auto n = [name] { return std::string(name); };  // built only for a message
  if (a.dtype != kernel_dtype<T>::name)
    throw std::invalid_argument(n() + ": wrong dtype for this kernel (got " + a.dtype + ", expected " +
                                kernel_dtype<T>::name + ")");
  if (!a.c_contiguous) throw std::invalid_argument(n() + ": must be C-contiguous");
  if (a.shape.size() != shape.size())
    throw std::invalid_argument(n() + ": expected " + std::to_string(shape.size()) + " dimensions, got shape " +
                                shape_str(a.shape));
  size_t i = 0;
  for (auto e : shape) {
    if (e >= 0 && a.shape[i] != e)
      throw std::invalid_argument(n() + ": unexpected shape " + shape_str(a.shape) + ", expected " + shape_str(shape));
    ++i;
  }
  if (writable && !a.writable) throw std::invalid_argument(n() + ": output is read-only");
}

// The accessors, written once for every policy. Policy::info(obj, name, pointer) reads an
// ArrayInfo (pointer = true: the data pointer will be used, so check where it lives) or throws
// "<name>: expected a <kind of> array". Call as in<P, T>(...), P = HostArrays or DeviceArrays.
template <class P, class T>
const T* in(const py::object& a, const char* name, Shape shape) {
  const ArrayInfo i = P::info(a, name, true);
  check_array<T>(i, name, shape, false);
  return static_cast<const T*>(i.ptr);
}
template <class P, class T>
T* out(const py::object& a, const char* name, Shape shape) {
  const ArrayInfo i = P::info(a, name, true);
  check_array<T>(i, name, shape, true);
  return static_cast<T*>(i.ptr);
}
template <class P, class T>
const T* in_or_null(const py::object& a, const char* name, Shape shape) {
  return a.is_none() ? nullptr : in<P, T>(a, name, shape);
}
template <class P, class T>
T* out_or_null(const py::object& a, const char* name, Shape shape) {
  return a.is_none() ? nullptr : out<P, T>(a, name, shape);
}
template <class P>
std::vector<py::ssize_t> shape_of(const py::object& a, const char* name) {
  return P::info(a, name, false).shape.vector();
}
template <class P>
std::string dtype_of(const py::object& a, const char* name) {
  return P::info(a, name, false).dtype;
}
template <class P>
py::ssize_t size_of(const py::object& a, const char* name) {
  py::ssize_t n = 1;
  for (auto e : shape_of<P>(a, name)) n *= e;
  return n;
}

// Extent i of `a`, 0 when `a` has fewer axes (the shape check of in / out reports it).
template <class P>
py::ssize_t dim(const py::object& a, const char* name, size_t i) {
  const auto s = shape_of<P>(a, name);
  return s.size() > i ? s[i] : 0;
}
// Optional arrays passed as size-0 arrays (sampling, elbo): nullptr when empty.
template <class P, class T>
const T* opt_in(const py::object& a, const char* name, Shape shape) {
  return size_of<P>(a, name) == 0 ? nullptr : in<P, T>(a, name, shape);
}
template <class P, class T>
T* opt_out(const py::object& a, const char* name, Shape shape) {
  return size_of<P>(a, name) == 0 ? nullptr : out<P, T>(a, name, shape);
}

// Calls f(double{}) or f(float{}) by the dtype of `a`.
template <class P, class F>
auto dispatch_float(const py::object& a, const char* name, F&& f) {
  const std::string t = dtype_of<P>(a, name);
  if (t == "float64") return f(double{});
  if (t == "float32") return f(float{});
  throw std::invalid_argument(std::string(name) + ": expected float32 or float64, got " + t);
}

// Flag arrays that travel together (None = absent) share one dtype: true when it is uint8 (or
// all are absent), false for a float type (checked against the kernel's T by in<T> later).
template <class P>
bool flags_are_uint8(std::initializer_list<const py::object*> flags, const char* what) {
  std::string kind;
  for (const auto* f : flags) {
    if (f->is_none()) continue;
    const std::string t = dtype_of<P>(*f, "flags");
    if (!kind.empty() && t != kind) throw std::invalid_argument(std::string(what) + " must share a dtype");
    kind = t;
  }
  return kind.empty() || kind == "uint8";
}

// NumPy arrays (what the CPU bindings take).
struct HostArrays {
  static ArrayInfo info(const py::object& o, const char* name, bool /*pointer*/) {
    if (!py::isinstance<py::array>(o)) throw std::invalid_argument(std::string(name) + ": expected a NumPy array");
    const auto a = py::reinterpret_borrow<py::array>(o);
    if (static_cast<std::size_t>(a.ndim()) > Extents::kMax)
      throw std::invalid_argument(std::string(name) + ": more than 64 dimensions");
    ArrayInfo i;
    i.ptr = const_cast<void*>(a.data());
    i.shape.assign(a.shape(), a.shape() + a.ndim());
    const py::dtype dt = a.dtype();
    // Named from the descriptor's fields (no Python call); other kinds (ml_dtypes' bfloat16 is 'V')
    // by NumPy's str().
    const char k = dt.kind();
    i.dtype = (k == 'f' || k == 'i' || k == 'u' || k == 'b' || k == 'c') ? dtype_name(dt.byteorder(), k, dt.itemsize())
                                                                         : py::str(dt).cast<std::string>();
    i.c_contiguous = (a.flags() & py::array::c_style) != 0;
    i.writable = a.writeable();
    return i;
  }
};

}  // namespace pygenmod::bind
