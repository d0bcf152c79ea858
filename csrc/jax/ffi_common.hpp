// Helpers shared by the XLA FFI handlers (CPU and CUDA): checked pointers out of FFI buffers,
// float32/float64 dispatch and one way to declare a handler. Handlers carry no math: they call
// the kernel bodies of csrc/include/pygenmod/*.hpp (CPU) or the csrc/cuda launchers (CUDA).
//
// Conventions of the Python side (pygenmod/jax.py), relied on here:
// - every operand is a dense row-major buffer (XLA's default layout for custom calls);
// - an optional operand that is absent is passed as a 0-element buffer (nullptr here);
// - shapes and dtypes were checked at trace time and are checked again here, because a
//   handler must never read or write out of bounds whatever it is handed.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "xla/ffi/api/ffi.h"

namespace pygenmod::jaxffi {
namespace ffi = xla::ffi;
using Buf = ffi::AnyBuffer;
using Out = ffi::Result<ffi::AnyBuffer>;

template <class T>
constexpr ffi::DataType dtype_of() {
  if constexpr (std::is_same_v<T, float>)
    return ffi::DataType::F32;
  else if constexpr (std::is_same_v<T, double>)
    return ffi::DataType::F64;
  else if constexpr (std::is_same_v<T, std::int64_t>)
    return ffi::DataType::S64;
  else if constexpr (std::is_same_v<T, std::int32_t>)
    return ffi::DataType::S32;
  else if constexpr (std::is_same_v<T, std::uint32_t>)
    return ffi::DataType::U32;
  else {
    static_assert(std::is_same_v<T, std::uint8_t>, "unsupported element type");
    return ffi::DataType::U8;
  }
}

inline std::string dims_str(const Buf& b) {
  std::string s = "(";
  const auto d = b.dimensions();
  for (size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + (d.size() == 1 ? ",)" : ")");
}

// Checks the element type and exact shape (-1 = any extent) of `b`.
template <class T>
void check(const Buf& b, const char* name, std::initializer_list<std::int64_t> shape) {
  if (b.element_type() != dtype_of<T>())
    throw std::invalid_argument(std::string(name) + ": wrong dtype for this kernel");
  const auto d = b.dimensions();
  bool ok = d.size() == shape.size();
  size_t i = 0;
  for (auto n : shape) ok = ok && (n < 0 || d[i++] == n);
  if (!ok) throw std::invalid_argument(std::string(name) + ": unexpected shape " + dims_str(b));
}

template <class T>
const T* in(const Buf& b, const char* name, std::initializer_list<std::int64_t> shape) {
  check<T>(b, name, shape);
  return static_cast<const T*>(b.untyped_data());
}

// An optional operand: a 0-element buffer is "absent" (nullptr).
template <class T>
const T* opt(const Buf& b, const char* name, std::initializer_list<std::int64_t> shape) {
  return b.element_count() == 0 ? nullptr : in<T>(b, name, shape);
}

template <class T>
T* out(Out& b, const char* name, std::initializer_list<std::int64_t> shape) {
  check<T>(*b, name, shape);
  return static_cast<T*>(b->untyped_data());
}

template <class T>
T* opt_out(Out& b, const char* name, std::initializer_list<std::int64_t> shape) {
  return b->element_count() == 0 ? nullptr : out<T>(b, name, shape);
}

inline std::int64_t dim(const Buf& b, size_t i, size_t rank, const char* name) {
  if (b.dimensions().size() != rank)
    throw std::invalid_argument(std::string(name) + ": expected " + std::to_string(rank) + " dimensions, got " +
                                dims_str(b));
  return b.dimensions()[i];
}

// Calls f(float{}) or f(double{}) by the element type of operand `name`.
template <class F>
void dispatch_float(const Buf& b, const char* name, F&& f) {
  if (b.element_type() == ffi::DataType::F32) return f(float{});
  if (b.element_type() == ffi::DataType::F64) return f(double{});
  throw std::invalid_argument(std::string(name) + ": expected float32 or float64");
}

// Runs a handler body; a C++ exception becomes an FFI error, which JAX raises in Python
// (XLA's runtime error carrying the message) instead of crashing the process.
template <class F>
ffi::Error guarded(F&& f) {
  try {
    std::forward<F>(f)();
    return ffi::Error::Success();
  } catch (const std::invalid_argument& e) {
    return ffi::Error::InvalidArgument(e.what());
  } catch (const std::exception& e) {
    return ffi::Error::Internal(e.what());
  }
}

// The binding of a handler taking `NArgs` operands then `NRets` results, all AnyBuffer
// (typed per call by dispatch_float): `bind<3, 2>(ffi::Ffi::Bind())`, then attributes.
// (Binding is move-only with a private move constructor: every step returns the prvalue of
// Arg/Ret, so nothing is moved.)
template <int NArgs, int NRets, class B>
auto bind(B&& b) {
  static_assert(NArgs + NRets >= 1);
  if constexpr (NArgs == 1 && NRets == 0)
    return std::move(b).template Arg<Buf>();
  else if constexpr (NArgs > 0)
    return bind<NArgs - 1, NRets>(std::move(b).template Arg<Buf>());
  else if constexpr (NRets == 1)
    return std::move(b).template Ret<Buf>();
  else
    return bind<0, NRets - 1>(std::move(b).template Ret<Buf>());
}

}  // namespace pygenmod::jaxffi
