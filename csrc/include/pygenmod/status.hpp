// Per-row numerical status, one convention for every family (docs/conventions.md, "Errors and
// status"): a result's `status` is a uint32 per batch row holding these bit flags (0 = ok).
// pygenmod.Status (pygenmod/_status.py) is the Python IntFlag of the same values;
// _cpu_runtime exports them as STATUS_FLAGS and tests/test_contracts.py checks the two agree.
// A family's kernels may keep a finer status of their own (gmm's per-component flags); the
// Python layer maps it onto these. No Python here.
#pragma once

#include <cstdint>

// X(name, bit)
#define PGM_STATUS_FLAGS(X)   \
  X(NONFINITE_INPUT, 1u << 0) \
  X(NOT_CONVERGED, 1u << 1)   \
  X(DEGENERATE, 1u << 2)      \
  X(CLAMPED, 1u << 3)         \
  X(OVERFLOW, 1u << 4)

namespace pygenmod::status {

#define PGM_X(name, bit) name = bit,
enum Flag : std::uint32_t { OK = 0, PGM_STATUS_FLAGS(PGM_X) };
#undef PGM_X

}  // namespace pygenmod::status
