// Small-problem kernels behind the one-call fast paths of the Python layer (issue 11):
//
// - exact policy iteration of small dense MDPs, the whole loop in compiled code: each policy
//   is evaluated by a dense LU solve (partial pivoting, float64) of (I - gamma P_pi) V = r_pi,
//   then improved by one backup sweep that keeps the current action where it is still greedy.
//   The Python layer uses it for S up to a few hundred states, where NumPy's per-call overhead
//   (a LAPACK solve, fancy indexing, a backup call per iteration) is most of the time;
// - the input check of P's rows (sums within a tolerance of 1, no negative or non-finite
//   entry) as a vectorised pass, or fused into a backup sweep (on AVX-512 and AVX2: taken
//   from the dot's own loads; elsewhere each state's rows are checked right after its backup
//   read them, while they are in cache).
//
// The checks only ever answer "passes" or "let the general path decide": their sums run in
// another order than row_stats_dense_cpu's, so a row passes only when it is within the
// tolerance by more than the largest possible difference of the two orders.
#pragma once

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "pygenmod/interrupt.hpp"
#include "pygenmod/mdp.hpp"
#include "pygenmod/parallel.hpp"

namespace pygenmod::mdp {

// ------------------------------------------------------------------ row checks
#if defined(__GNUC__)
// W-lane vectors of the tally (a vector_size that depends on a template parameter is ignored
// in a typedef, hence one specialisation per width).
template <int W>
struct TallyLanes;
#define PGM_TALLY_LANES(W)                                         \
  template <>                                                      \
  struct TallyLanes<W> {                                           \
    typedef double f64 __attribute__((vector_size(8 * W)));        \
    typedef float f32 __attribute__((vector_size(4 * W)));         \
    typedef std::uint64_t u64 __attribute__((vector_size(8 * W))); \
    typedef std::uint32_t u32 __attribute__((vector_size(4 * W))); \
  };
PGM_TALLY_LANES(2)
PGM_TALLY_LANES(4)
PGM_TALLY_LANES(8)
#undef PGM_TALLY_LANES
#endif

// One W-entry chunk of a row into the partial sums s and the OR of bit patterns b (one load
// for both: the loop is bound by loads, and the empty asm keeps GCC from folding the load into
// each instruction).
template <class TV, class DV, class UV, class T>
__attribute__((always_inline)) inline void tally_chunk(const T* at, DV& s, UV& b) {
  TV r;  // a vector load (an initialiser list of elements would load them one by one)
  std::memcpy(&r, at, sizeof r);
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  if constexpr (sizeof(TV) >= 16) __asm__("" : "+x"(r));
#endif
  s += __builtin_convertvector(r, DV);
  b |= (UV)r;
}

// The tally (mdp.hpp's RowTally) of `rows` consecutive rows of length n, W lanes per vector,
// four vectors of partial sums (the adds' latency bounds fewer chains). Compiled into one
// function per instruction set below.
template <int W, class T>
__attribute__((always_inline)) inline void tally_rows_body(const T* P, index_t rows, index_t n, RowTally& tally) {
  using U = std::conditional_t<sizeof(T) == 8, std::uint64_t, std::uint32_t>;
  U bits = 0;
  for (index_t i = 0; i < rows; ++i) {
    const T* row = P + i * n;
    double sum = 0;
    index_t j = 0;
#if defined(__GNUC__)
    using dv = typename TallyLanes<W>::f64;
    using tv = std::conditional_t<sizeof(T) == 8, dv, typename TallyLanes<W>::f32>;
    using uv = std::conditional_t<sizeof(T) == 8, typename TallyLanes<W>::u64, typename TallyLanes<W>::u32>;
    dv sv[4] = {};
    uv bv[4] = {};
    for (; j + 4 * W <= n; j += 4 * W)
      for (int k = 0; k < 4; ++k) tally_chunk<tv>(row + j + W * k, sv[k], bv[k]);
    for (; j + W <= n; j += W) tally_chunk<tv>(row + j, sv[0], bv[0]);
    const dv sa = (sv[0] + sv[1]) + (sv[2] + sv[3]);
    const uv ba = (bv[0] | bv[1]) | (bv[2] | bv[3]);
    for (int l = 0; l < W; ++l) {
      sum += sa[l];
      bits |= ba[l];
    }
#endif
    for (; j < n; ++j) {
      U b;
      std::memcpy(&b, row + j, sizeof b);
      sum += static_cast<double>(row[j]);
      bits |= b;
    }
    tally.add_sum(sum);
  }
  tally.bits |= bits;
}

#if defined(PGM_MDP_X86_DISPATCH)
template <class T>
PGM_MDP_AVX512 void tally_rows_avx512(const T* P, index_t rows, index_t n, RowTally& tally) {
  tally_rows_body<8>(P, rows, n, tally);
}
template <class T>
PGM_MDP_AVX2 void tally_rows_avx2(const T* P, index_t rows, index_t n, RowTally& tally) {
  tally_rows_body<4>(P, rows, n, tally);
}
#endif

// tally_rows_body for the instruction set in use (cpu::isa(), so the ISA cap reaches it).
template <class T>
void tally_rows(const T* P, index_t rows, index_t n, RowTally& tally) {
#if defined(PGM_MDP_X86_DISPATCH)
  const int isa = cpu::isa();
  if (isa == cpu::ISA_AVX512) return tally_rows_avx512(P, rows, n, tally);
  if (isa == cpu::ISA_AVX2) return tally_rows_avx2(P, rows, n, tally);
#endif
  tally_rows_body<2>(P, rows, n, tally);
}

// True when the rows of length n behind `tally` surely pass the input check: finite, no
// negative entry, |sum - 1| <= tol. The tally's sums run in another order than
// row_stats_dense_cpu's: two orders of a sum of n non-negative terms near 1 differ by less
// than 2 n DBL_EPSILON, so rows within that margin of the tolerance are left to the general
// path (false). Signs are tested by the OR of the sign bits (cheaper than a minimum; -0.0,
// which the check accepts, is left to the general path).
template <class T>
bool tally_surely_ok(const RowTally& tally, index_t n, double tol) {
  constexpr std::uint64_t kSign = std::uint64_t(1) << (8 * sizeof(T) - 1);
  return !tally.nonfinite && tally.err + 2.0 * static_cast<double>(n) * DBL_EPSILON <= tol && !(tally.bits & kSign);
}

// True when every row of B dense MDPs surely passes the check (see the functions above).
template <class T>
bool rows_surely_ok(const Dense<T>& m, index_t B, double tol) {
  RowTally tally;
  tally_rows(m.P, B * m.S * m.A, m.S, tally);
  return tally_surely_ok<T>(tally, m.S, tol);
}

// Dense<T> whose dot_rows also tallies the rows it reads into *tally: from the dot's own loads
// on AVX-512 and AVX2, else by tally_rows right after the dot (the rows are
// still in cache). Its dots are Dense<T>'s, bitwise (a row's order does not depend on how
// many rows one call computes). Only dot_rows tallies: backup_checked_cpu counts the rows.
template <class T>
struct TalliedDense : Dense<T> {
  RowTally* tally;
  void dot_rows(index_t b, const index_t* rows, index_t n, const T* v, acc_t<T>* out) const {
    const index_t S = this->S;
    const T* Pb = this->P + b * S * this->A * S;
    for (index_t k0 = 0; k0 < n; k0 += 4) {  // (backup_state asks for 4 rows at most)
      const T* r[4];
      const int cnt = n - k0 < 4 ? static_cast<int>(n - k0) : 4;
      for (int i = 0; i < cnt; ++i) r[i] = Pb + rows[k0 + i] * S;
#if defined(PGM_MDP_X86_DISPATCH)
      // dot_ptrs's kernels (4 rows, else 1 at a time), tallying from their own loads
      const int isa = cpu::isa();
      if (isa == cpu::ISA_AVX512 || isa == cpu::ISA_AVX2) {
        const bool wide = isa == cpu::ISA_AVX512;
        for (int k = 0; k < cnt; k += (cnt == 4 ? 4 : 1)) {
          double* o = out + k0 + k;
          if constexpr (std::is_same<T, double>::value) {
            if (cnt == 4)
              wide ? dotk_avx512<4, true>(r, v, S, o, tally) : dotk_avx2<4, true>(r, v, S, o, tally);
            else
              wide ? dotk_avx512<1, true>(r + k, v, S, o, tally) : dotk_avx2<1, true>(r + k, v, S, o, tally);
          } else {
            if (cnt == 4)
              wide ? dotk_f32_avx512<4, true>(r, v, S, o, tally) : dotk_f32_avx2<4, true>(r, v, S, o, tally);
            else
              wide ? dotk_f32_avx512<1, true>(r + k, v, S, o, tally) : dotk_f32_avx2<1, true>(r + k, v, S, o, tally);
          }
        }
        continue;
      }
#endif
      dot_ptrs(r, cnt, v, S, out + k0);
      // the rows of one state's call are consecutive: one tally call for all of them
      bool consecutive = true;
      for (int i = 1; i < cnt; ++i) consecutive = consecutive && rows[k0 + i] == rows[k0] + i;
      if (consecutive)
        tally_rows(r[0], cnt, S, *tally);
      else
        for (int i = 0; i < cnt; ++i) tally_rows(r[i], 1, S, *tally);
    }
  }
};

// backup_sweep_cpu's optimality backup with the row check fused in (each state's rows are
// tallied as its backup reads them; see TalliedDense). Results are backup_sweep_cpu's,
// bitwise (the same per-state function). Returns false when some row does not surely pass
// (see tally_surely_ok): the outputs are then meaningless and the caller takes the general
// path.
template <class T>
bool backup_checked_cpu(const Dense<T>& m, const T* R, const T* V, const T* gamma, index_t B, double tol, T* Q,
                        T* V_out, std::int64_t* policy) {
  const index_t S = m.S, A = m.A;
  auto one = [&](index_t b, index_t s) {
    const index_t bs = b * S + s;
    RowTally tally;
    const TalliedDense<T> mt{m, &tally};
    V_out[bs] = backup_state(mt, b, s, R + bs * A, V + b * S, gamma[b], kOptimal, 0, static_cast<const T*>(nullptr),
                             T(1), Q + bs * A, policy + bs);
    return std::int64_t{tally.rows != A || !tally_surely_ok<T>(tally, S, tol)};
  };
  // backup_sweep_cpu's threshold and chunks
  const StateFold f = fold_states(B, S, B * sweep_madds(m) >= BACKUP_PAR_MIN,
                                  [&](index_t b, index_t s, StateFold& acc) { acc.bad += one(b, s); });
  return f.bad == 0;
}

// ------------------------------------------------------------------ exact policy iteration
// Solves M x = y for one n x n row-major M (overwritten by its LU factors); y becomes x.
// Partial pivoting (a NaN entry counts as the largest pivot, so NaN propagates as in LAPACK).
// Returns false for an exactly singular M (a zero pivot), like LAPACK's gesv.
inline bool lu_solve(double* M, double* y, index_t n) {
  for (index_t k = 0; k < n; ++k) {
    index_t p = k;
    double best = std::fabs(M[k * n + k]);
    for (index_t i = k + 1; i < n && !std::isnan(best); ++i) {
      const double a = std::fabs(M[i * n + k]);
      if (a > best || std::isnan(a)) {
        best = a;
        p = i;
      }
    }
    if (best == 0.0) return false;
    if (p != k) {
      for (index_t j = 0; j < n; ++j) std::swap(M[k * n + j], M[p * n + j]);
      std::swap(y[k], y[p]);
    }
    const double inv = 1.0 / M[k * n + k];
    for (index_t i = k + 1; i < n; ++i) {
      const double l = M[i * n + k] * inv;
      if (l == 0.0) continue;
      for (index_t j = k + 1; j < n; ++j) M[i * n + j] -= l * M[k * n + j];
      y[i] -= l * y[k];
    }
  }
  for (index_t k = n - 1; k >= 0; --k) {
    double s = y[k];
    for (index_t j = k + 1; j < n; ++j) s -= M[k * n + j] * y[j];
    y[k] = s / M[k * n + k];
  }
  return true;
}

// Exact policy iteration of MDP b (pi holds the starting policy; see policy_iteration_exact_cpu).
// Returns false when a policy's system is singular (only possible without the row checks).
template <class T>
bool policy_iteration_exact_one(const Dense<T>& m, index_t b, const T* R, T gamma, std::int64_t max_iter, T* V, T* Q,
                                std::int64_t* pi, std::int64_t& its, std::uint8_t& done, Stop& stop) {
  const index_t S = m.S, A = m.A;
  const double g = static_cast<double>(gamma);
  std::vector<double> M(S * S), y(S);
  its = 0;
  done = 0;
  for (std::int64_t it = 0; it < max_iter; ++it) {
    ++its;
    for (index_t s = 0; s < S; ++s) {  // (I - g P_pi) V = r_pi
      const T* row = m.row(b, s, pi[s]);
      for (index_t t = 0; t < S; ++t) M[s * S + t] = (s == t ? 1.0 : 0.0) - g * static_cast<double>(row[t]);
      y[s] = static_cast<double>(R[s * A + pi[s]]);
    }
    if (!lu_solve(M.data(), y.data(), S)) return false;
    for (index_t s = 0; s < S; ++s) V[s] = static_cast<T>(y[s]);
    bool same = true;
    for (index_t s = 0; s < S; ++s) {  // improve; keep the current action where it ties
      std::int64_t best;
      backup_state(m, b, s, R + s * A, V, gamma, kOptimal, 0, static_cast<const T*>(nullptr), T(1), Q + s * A, &best);
      if (!(Q[s * A + pi[s]] >= Q[s * A + best])) {  // (negated: NaN switches, as in NumPy's where)
        same = same && best == pi[s];
        pi[s] = best;
      }
    }
    if (same) {
      done = 1;
      break;
    }
    if (stop.poll(static_cast<double>(S) * S * S)) break;
  }
  return true;
}

// Exact policy iteration of B dense MDPs (V, Q, pi, iterations, done per MDP, batch-first).
// init: pi holds the starting policies; else it starts from the greedy policy of V = 0.
// Every MDP iterates until its policy repeats or max_iter evaluations; MDPs run in parallel
// when the batch is large enough to pay for the threads. Returns the first MDP whose system
// was singular, or -1.
template <class T>
index_t policy_iteration_exact_cpu(const Dense<T>& m, const T* R, const T* gamma, index_t B, std::int64_t max_iter,
                                   bool init, T* V, T* Q, std::int64_t* pi, std::int64_t* iterations,
                                   std::uint8_t* done, Stop& stop = Stop::never()) {
  const index_t S = m.S, A = m.A;
  std::vector<std::uint8_t> singular(B, 0);
  auto one = [&](index_t b) {
    T* v = V + b * S;
    T* q = Q + b * S * A;
    std::int64_t* p = pi + b * S;
    if (!init) {  // greedy policy of V = 0
      std::fill(v, v + S, T(0));
      for (index_t s = 0; s < S; ++s)
        backup_state(m, b, s, R + (b * S + s) * A, v, gamma[b], kOptimal, 0, static_cast<const T*>(nullptr), T(1),
                     q + s * A, p + s);
    }
    singular[b] =
        !policy_iteration_exact_one(m, b, R + b * S * A, gamma[b], max_iter, v, q, p, iterations[b], done[b], stop);
  };
  // an evaluation costs ~S^3/3 multiply-adds: run MDPs in parallel once a round of them is long
  constexpr double kParMin = 1 << 17;
  // (after a stop no further MDP starts; the calling thread keeps polling the Stop meanwhile)
  parallel_chunks(
      B, 1, B > 1 && static_cast<double>(B) * S * S * S >= kParMin,
      [&](index_t b0, index_t b1, int) {
        for (index_t b = b0; b < b1; ++b) one(b);
      },
      stop);
  for (index_t b = 0; b < B; ++b)
    if (singular[b]) return b;
  return -1;
}

}  // namespace pygenmod::mdp
