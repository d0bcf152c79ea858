// Scratch memory of a launcher. Launchers never allocate: the binding asks the launcher's
// *_scratch_bytes() for the size, takes that many bytes from the caller's allocator (CuPy's
// memory pool, on the call's stream) and passes the pointer in. The same Carve code lays the
// buffers out in both passes (base == nullptr: measure only), so size and layout cannot drift.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>

namespace pygenmod::cuda {

struct Carve {
  char* base = nullptr;  // nullptr: measuring pass
  std::size_t used = 0;

  explicit Carve(void* p = nullptr) : base(static_cast<char*>(p)) {}

  // n elements of U, 256-byte aligned (the allocator's alignment).
  template <class U>
  U* take(std::size_t n) {
    used = (used + 255) & ~static_cast<std::size_t>(255);
    U* p = (base && n) ? reinterpret_cast<U*>(base + used) : nullptr;
    used += n * sizeof(U);
    return p;
  }
};

// A launcher given `bytes` checks that its layout fits (a binding/launcher mismatch is a bug).
inline void check_scratch(const Carve& c, std::size_t bytes, const char* what) {
  if (c.used > bytes) throw std::logic_error(std::string(what) + ": scratch buffer too small");
}

}  // namespace pygenmod::cuda
