// Lane-split MCTS selection: the per-node reductions of mcts.hpp's selection (PUCT, UCT,
// Gumbel root and interior) written over a group of lanes that split a node's A children, for
// the warp-per-tree CUDA path (csrc/cuda/mcts_warp.cuh). The lanes compute each child's
// score with mcts.hpp's own per-child functions and combine so that the chosen child is
// bitwise the serial loop's:
//   - argmax: each lane scans its children a = lane, lane + L, ... with the serial loop's
//     test, then the lanes combine with a butterfly (xor) whose combine is associative and
//     commutative and keeps the serial rule: the first candidate if its score is NaN (nothing
//     compares greater than NaN), else the lowest index among the largest non-NaN scores;
//   - float folds (sums, and min/max, whose NaN and signed-zero results depend on the order):
//     the lanes compute the terms in parallel, then every lane adds them in index order from
//     broadcasts (the serial loop's order and operations exactly);
//   - integer sums and maxima (exact in any order): per-lane partials, butterfly combine.
// HostLanes<L> runs the same code on the host with L simulated lanes (the tests compare it
// with the serial selection); use_warp_per_tree chooses the mapping. No Python here.
#pragma once

#include "pygenmod/mcts.hpp"

namespace pygenmod::mcts {

// ----------------------------------------------------------------------------- argmax
// The serial loop `if (best < 0 || s > best_s) best = a` over the candidates in index order,
// as a summary that lanes can combine in any grouping and order.
template <class T>
struct ArgmaxAcc {
  i32 first = -1;     // lowest candidate index
  i32 first_nan = 0;  // its score is NaN
  i32 idx = -1;       // lowest index among the largest non-NaN scores
  T val = T(0);
  // Candidates of one lane arrive in increasing index order.
  PGM_HD void push(i32 a, T s) {
    if (first < 0) {
      first = a;
      first_nan = s != s;
    }
    if (s == s && (idx < 0 || s > val)) {
      idx = a;
      val = s;
    }
  }
  PGM_HD i32 result() const { return first >= 0 && first_nan ? first : idx; }
};

template <class T>
PGM_HD ArgmaxAcc<T> combine(const ArgmaxAcc<T>& x, const ArgmaxAcc<T>& y) {
  ArgmaxAcc<T> r = x;
  if (y.first >= 0 && (x.first < 0 || y.first < x.first)) {
    r.first = y.first;
    r.first_nan = y.first_nan;
  }
  if (y.idx >= 0 && (x.idx < 0 || y.val > x.val || (!(x.val > y.val) && y.idx < x.idx))) {
    r.idx = y.idx;
    r.val = y.val;
  }
  return r;
}

// ----------------------------------------------------------------------------- host lanes
// L simulated lanes (a power of two), in the device's order of work: strided scans, the xor
// butterfly, the broadcast folds. One host thread does the tree writes (width 1).
template <int L>
struct HostLanes {
  static_assert(L >= 1 && (L & (L - 1)) == 0, "lanes: a power of two");
  bool leader() const { return true; }
  index_t lane() const { return 0; }
  index_t width() const { return 1; }
  void sync() const {}

  // f(a, T& score) -> bool: a is a candidate. The serial loop's argmax, or -1.
  template <class T, class F>
  i32 argmax(index_t A, const F& f) const {
    ArgmaxAcc<T> acc[L];
    for (int l = 0; l < L; ++l)
      for (index_t a = l; a < A; a += L) {
        T s;
        if (f(a, s)) acc[l].push(static_cast<i32>(a), s);
      }
    for (int off = L / 2; off >= 1; off /= 2) {
      ArgmaxAcc<T> next[L];
      for (int l = 0; l < L; ++l) next[l] = combine(acc[l], acc[l ^ off]);
      for (int l = 0; l < L; ++l) acc[l] = next[l];
    }
    return acc[0].result();
  }

  // acc = op(acc, v) over a = begin .. end - 1 in order, for the a where f(a, v) holds.
  template <class V, class F, class Op>
  V fold(index_t begin, index_t end, V acc, const F& f, const Op& op) const {
    for (index_t base = begin; base < end; base += L) {
      V v[L];
      bool inc[L];
      for (int l = 0; l < L; ++l) {
        v[l] = V{};
        inc[l] = base + l < end && f(base + l, v[l]);
      }
      const index_t n = end - base < L ? end - base : L;
      for (index_t j = 0; j < n; ++j)
        if (inc[j]) acc = op(acc, v[j]);
    }
    return acc;
  }

  // op (associative, commutative, exact on i32) over f(a), a < A, from identity.
  template <class F, class Op>
  i32 reduce(index_t A, i32 identity, const F& f, const Op& op) const {
    i32 acc[L];
    for (int l = 0; l < L; ++l) {
      acc[l] = identity;
      for (index_t a = l; a < A; a += L) acc[l] = op(acc[l], f(a));
    }
    for (int off = L / 2; off >= 1; off /= 2) {
      i32 next[L];
      for (int l = 0; l < L; ++l) next[l] = op(acc[l], acc[l ^ off]);
      for (int l = 0; l < L; ++l) acc[l] = next[l];
    }
    return acc[0];
  }
};

// ----------------------------------------------------------------------------- selection
template <class T>
struct MinMax {
  T lo, hi;
};

// The serial loops' m_min / m_max folds (order kept: NaN and -0 depend on it).
template <class T>
PGM_HD MinMax<T> fold_minmax(MinMax<T> acc, MinMax<T> v) {
  return MinMax<T>{m_min(acc.lo, v.lo), m_max(acc.hi, v.hi)};
}

PGM_HD i32 add_i32(i32 x, i32 y) { return x + y; }
PGM_HD i32 max_i32(i32 x, i32 y) { return x > y ? x : y; }
PGM_HD i32 min_i32(i32 x, i32 y) { return x < y ? x : y; }

template <class T, class Lanes>
PGM_HD i32 select_muzero_lanes(const Lanes& ln, const TreeRef<T>& t, i32 n, const Params& p) {
  const index_t A = t.A;
  const i32* ch = t.children + n * A;
  const T nv = node_value(t, n);
  const MinMax<T> mm = ln.fold(
      0, A, MinMax<T>{nv, nv},
      [&](index_t a, MinMax<T>& v) {
        if (ch[a] < 0) return false;
        const T q = child_q(t, ch[a]);
        v = MinMax<T>{q, q};
        return true;
      },
      fold_minmax<T>);
  const PuctScore<T> score_of = puct_score(t, n, p, mm.lo, mm.hi);
  const T* prior = t.prior + n * A;
  const u8* invalid = t.invalid + n * A;
  return ln.template argmax<T>(A, [&](index_t a, T& s) {
    if (invalid[a]) return false;
    const i32 c = ch[a];
    s = score_of(t, c, c >= 0 ? child_q(t, c) : T(0), prior[a]);
    return true;
  });
}

template <class T, class Lanes>
PGM_HD i32 select_uct_lanes(const Lanes& ln, const TreeRef<T>& t, i32 n, const Params& p) {
  const index_t A = t.A;
  const i32* ch = t.children + n * A;
  const u8* invalid = t.invalid + n * A;
  const i32 none = static_cast<i32>(A);
  const i32 fresh =
      ln.reduce(A, none, [&](index_t a) { return !invalid[a] && ch[a] < 0 ? static_cast<i32>(a) : none; }, min_i32);
  if (fresh < none) return fresh;  // the first unexpanded valid action
  const T log_n = m_log(static_cast<T>(t.visits[n]));
  const T c = static_cast<T>(p.uct_c);
  return ln.template argmax<T>(A, [&](index_t a, T& s) {
    if (invalid[a]) return false;
    s = uct_score(t, ch[a], log_n, c);
    return true;
  });
}

// completed_q with the same floats (cache = nullptr: values recomputed per action).
template <class T, class Lanes>
PGM_HD Completed<T> completed_q_lanes(const Lanes& ln, const TreeRef<T>& t, i32 n, const Params& p) {
  const index_t A = t.A;
  const i32* ch = t.children + n * A;
  const T* prior = t.prior + n * A;
  // sum_n and sum_p: two running sums in the serial order (one fold, independent members)
  const MinMax<T> sums = ln.fold(
      0, A, MinMax<T>{T(0), T(0)},
      [&](index_t a, MinMax<T>& v) {
        if (ch[a] < 0) return false;
        v = MinMax<T>{static_cast<T>(t.visits[ch[a]]), m_max(tiny_of<T>(), prior[a])};
        return true;
      },
      [](MinMax<T> acc, MinMax<T> v) { return MinMax<T>{acc.lo + v.lo, acc.hi + v.hi}; });
  const T sum_n = sums.lo, sum_p = sums.hi;
  const i32 maxvisit = ln.reduce(A, 0, [&](index_t a) { return ch[a] >= 0 ? t.visits[ch[a]] : 0; }, max_i32);
  Completed<T> out;
  out.cache = nullptr;
  const T raw_value = t.raw_value[n];
  if (p.use_mixed_value) {
    const T wq = ln.fold(
        0, A, T(0),
        [&](index_t a, T& v) {
          if (ch[a] < 0) return false;
          v = mixed_term(prior[a], child_q(t, ch[a]), sum_p);
          return true;
        },
        [](T acc, T v) { return acc + v; });
    out.mixed = mixed_value(raw_value, sum_n, wq);
  } else {
    out.mixed = raw_value;
  }
  out.rescale = p.rescale_values != 0;
  out.lo = 0;
  out.range = 1;
  if (out.rescale) {
    const T q0 = out.raw(t, n, 0);
    const MinMax<T> mm = ln.fold(
        1, A, MinMax<T>{q0, q0},
        [&](index_t a, MinMax<T>& v) {
          const T q = out.raw(t, n, a);
          v = MinMax<T>{q, q};
          return true;
        },
        fold_minmax<T>);
    out.lo = mm.lo;
    out.range = q_range(mm.lo, mm.hi);
  }
  out.scale = completed_scale<T>(p, maxvisit);
  return out;
}

template <class T, class Lanes>
PGM_HD i32 select_gumbel_root_lanes(const Lanes& ln, const TreeRef<T>& t, const Params& p) {
  const index_t A = t.A;
  const Completed<T> cq = completed_q_lanes(ln, t, 0, p);
  const int num_valid = ln.reduce(A, 0, [&](index_t a) { return t.invalid[a] ? 0 : 1; }, add_i32);
  const i32 sim = ln.reduce(A, 0, [&](index_t a) { return child_visits(t, 0, a); }, add_i32);
  const T lmax = ln.fold(
      0, A, neg_inf<T>(),
      [&](index_t a, T& v) {
        v = t.logits[a];
        return true;
      },
      [](T acc, T v) { return m_max(acc, v); });
  const i32 considered = considered_visits(p, num_valid, sim);
  const i32 best = ln.template argmax<T>(A, [&](index_t a, T& s) {
    if (t.invalid[a] || child_visits(t, 0, a) != considered) return false;
    s = gumbel_score(t, 0, a, lmax, cq);
    return true;
  });
  if (best >= 0) return best;
  return ln.template argmax<T>(A, [&](index_t a, T& s) {
    if (t.invalid[a]) return false;
    s = gumbel_score(t, 0, a, lmax, cq);
    return true;
  });
}

template <class T, class Lanes>
PGM_HD i32 select_gumbel_interior_lanes(const Lanes& ln, const TreeRef<T>& t, i32 n, const Params& p) {
  const index_t A = t.A;
  const Completed<T> cq = completed_q_lanes(ln, t, n, p);
  const T* logits = t.logits + n * A;
  const u8* invalid = t.invalid + n * A;
  const T m = ln.fold(
      0, A, neg_inf<T>(),
      [&](index_t a, T& v) {
        if (invalid[a]) return false;
        v = logits[a] + cq(t, n, a);
        return true;
      },
      [](T acc, T v) { return m_max(acc, v); });
  const i32 total = ln.reduce(A, 0, [&](index_t a) { return child_visits(t, n, a); }, add_i32);
  // The serial path sums exp over every action when A <= kQCache (invalid ones add exp(-inf)),
  // over valid actions otherwise: the same terms in the same order here.
  const bool all = A <= kQCache;
  const T z = ln.fold(
      0, A, T(0),
      [&](index_t a, T& v) {
        if (!all && invalid[a]) return false;
        v = m_exp(logits[a] + cq(t, n, a) - m);
        return true;
      },
      [](T acc, T v) { return acc + v; });
  return ln.template argmax<T>(A, [&](index_t a, T& s) {
    if (invalid[a]) return false;
    s = interior_score(m_exp(logits[a] + cq(t, n, a) - m), z, static_cast<T>(child_visits(t, n, a)), total);
    return true;
  });
}

template <class T, class Lanes>
PGM_HD i32 select_action_lanes(const Lanes& ln, const TreeRef<T>& t, i32 n, const Params& p) {
  if (p.policy == kPolicyGumbel)
    return n == 0 ? select_gumbel_root_lanes(ln, t, p) : select_gumbel_interior_lanes(ln, t, n, p);
  if (p.policy == kPolicyUct) return select_uct_lanes(ln, t, n, p);
  return select_muzero_lanes(ln, t, n, p);
}

template <class T, class Lanes>
PGM_HD void select_one_lanes(const Lanes& ln, const TreeRef<T>& t, const Params& p, i32* out_node, i32* out_action) {
  descend(t, p, [&](i32 n) { return select_action_lanes(ln, t, n, p); }, out_node, out_action);
}

// search_tabular_one's executor for a group of lanes (see OneThread).
template <class Lanes>
struct LanesExec {
  Lanes ln;
  PGM_HD bool leader() const { return ln.leader(); }
  PGM_HD index_t lane() const { return ln.lane(); }
  PGM_HD index_t width() const { return ln.width(); }
  PGM_HD void sync() const { ln.sync(); }
  template <class T>
  PGM_HD void select(const TreeRef<T>& t, const Params& p, i32* node, i32* action) const {
    select_one_lanes(ln, t, p, node, action);
  }
};

// ----------------------------------------------------------------------------- mapping
// Which CUDA mapping runs select / the tabular search: kMapAuto chooses by use_warp_per_tree;
// kMapThread and kMapWarp force one (a switch for tests and benchmarks).
enum Mapping : int { kMapAuto = 0, kMapThread = 1, kMapWarp = 2 };

// A warp per tree while B < 128 * multiprocessors, i.e. while one thread per tree would give
// the device fewer than 4 warps per SM: fewer than one per warp scheduler (4 per SM since
// sm_70), so each scheduler stalls on every one of the serial loop's dependent loads with no
// other warp to switch to. The warp mapping then issues a node's A child reads as A / 32
// coalesced strided loads and runs B warps. Above it, one thread per tree already has a warp
// per scheduler and does fewer instructions per tree (no broadcasts or combines). The
// crossover is to be confirmed by the GPU benchmark (W5); the rule's inputs are B and the SM
// count only, so it is the same on every call of a search.
inline bool use_warp_per_tree(index_t B, int multiprocessors) {
  return B < static_cast<index_t>(128) * static_cast<index_t>(multiprocessors > 0 ? multiprocessors : 1);
}

inline bool use_warp_mapping(int mapping, index_t B, int multiprocessors) {
  if (mapping == kMapThread) return false;
  if (mapping == kMapWarp) return true;
  return use_warp_per_tree(B, multiprocessors);
}

}  // namespace pygenmod::mcts
