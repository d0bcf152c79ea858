// The one CPU-feature detector of the CPU kernels, and the one override.
//
// The package is compiled for baseline x86-64; kernels that have AVX2 or AVX-512 variants
// (functions with __attribute__((target(...)))) pick one at run time through isa():
//   ISA_AVX512  AVX-512 F, VL, DQ and BW, with AVX2 and FMA (Skylake-SP and later, Zen 4)
//   ISA_AVX2    AVX2 and FMA (Haswell and later, Zen)
//   ISA_BASE    anything else, other architectures, and compilers other than GCC/Clang
// The override caps the level (for tests that run every variant, and for diagnostics):
//   - the environment variable PYGENMOD_CPU_ISA = baseline | avx2 | avx512, read once, at the
//     first isa() call of the process (of each shared library that embeds the headers);
//   - set_isa_cap(level) at run time (-1 removes the cap); call it while no kernel runs.
// A cap never raises the level above what the CPU has.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

namespace pygenmod::cpu {

enum Isa : int { ISA_BASE = 0, ISA_AVX2 = 1, ISA_AVX512 = 2 };

// The features the kernels' variants need (all false off x86 or with other compilers).
struct Features {
  bool sse42 = false, avx = false, avx2 = false, fma = false;
  bool avx512f = false, avx512vl = false, avx512dq = false, avx512bw = false;
};

inline Features detect_features() {
  Features f;
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
  __builtin_cpu_init();
  f.sse42 = __builtin_cpu_supports("sse4.2");
  f.avx = __builtin_cpu_supports("avx");
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
  f.avx512f = __builtin_cpu_supports("avx512f");
  f.avx512vl = __builtin_cpu_supports("avx512vl");
  f.avx512dq = __builtin_cpu_supports("avx512dq");
  f.avx512bw = __builtin_cpu_supports("avx512bw");
#endif
  return f;
}

// The CPU's features (detected once).
inline const Features& features() {
  static const Features f = detect_features();
  return f;
}

// The highest level the CPU has (ignores the cap).
inline int detected_isa() {
  const Features& f = features();
  if (!(f.avx2 && f.fma)) return ISA_BASE;
  return f.avx512f && f.avx512vl && f.avx512dq && f.avx512bw ? ISA_AVX512 : ISA_AVX2;
}

// "baseline", "avx2", "avx512" -> 0, 1, 2; anything else (or null) -> -1 (no cap).
inline int isa_from_name(const char* s) {
  if (s == nullptr) return -1;
  if (std::strcmp(s, "baseline") == 0) return ISA_BASE;
  if (std::strcmp(s, "avx2") == 0) return ISA_AVX2;
  if (std::strcmp(s, "avx512") == 0) return ISA_AVX512;
  return -1;
}

namespace detail {
// Constant-initialised (no static-initialisation order issue): -2 = not read yet.
inline std::atomic<int> g_cap{-2};
inline std::atomic<int> g_isa{-1};  // the level in use; -1 until the first isa() call

inline int cap_now() {
  int c = g_cap.load(std::memory_order_relaxed);
  if (c == -2) {
    int expected = -2;
    g_cap.compare_exchange_strong(expected, isa_from_name(std::getenv("PYGENMOD_CPU_ISA")));
    c = g_cap.load(std::memory_order_relaxed);
  }
  return c;
}

inline int refresh() {
  const int c = cap_now(), d = detected_isa();
  const int level = c < 0 ? d : std::min(c, d);
  g_isa.store(level, std::memory_order_relaxed);
  return level;
}
}  // namespace detail

// The level the kernels use now: one relaxed load after the first call.
inline int isa() {
  const int l = detail::g_isa.load(std::memory_order_relaxed);
  return l >= 0 ? l : detail::refresh();
}

// The current cap (-1: none).
inline int isa_cap() { return detail::cap_now(); }

// Caps the level at `cap` (0..2; -1 removes the cap); returns the previous cap.
inline int set_isa_cap(int cap) {
  detail::cap_now();
  const int prev = detail::g_cap.exchange(cap < 0 ? -1 : std::min(cap, int(ISA_AVX512)));
  detail::refresh();
  return prev;
}

}  // namespace pygenmod::cpu

// Attributes of the per-ISA entry points of the vector rows (gumbel_row.hpp, tril_matvec.hpp,
// normal_rows.hpp, categorical_rows.hpp): each entry instantiates one always-inline template on
// its ISA's native vectors, compiled without contracting products into FMAs, so that every
// entry point gives the same bits. PGM_ISA_ENTRIES is defined where the AVX2 and AVX-512
// entries exist (GCC on x86-64); PGM_ENTRY_BASE is the baseline's (any compiler).
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__CUDACC__)
#define PGM_ISA_ENTRIES 1
#define PGM_ENTRY_AVX512 \
  __attribute__((noinline, target("avx512f,avx512dq,avx512bw,avx512vl,avx2"), optimize("fp-contract=off")))
#define PGM_ENTRY_AVX2 __attribute__((noinline, target("avx2"), optimize("fp-contract=off")))
#endif
#if defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#define PGM_ENTRY_BASE __attribute__((noinline, optimize("fp-contract=off")))
#else
#define PGM_ENTRY_BASE
#endif
