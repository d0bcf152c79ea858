// Batched Monte Carlo tree search: the per-tree operations (select, expand, backup,
// advance, the whole tabular search) as PGM_HD functions shared by the CPU and CUDA
// launchers, plus the CPU launchers (parallel over trees on pygenmod's pool). No Python here.
//
// A batch of B trees is a struct of arrays with a node capacity N (independent of the
// number of simulations) and A actions. Node 0 of every tree is its root.
//   visits[B,N] int32      times the node was evaluated or backed up through (root starts at 1)
//   value_sum[B,N] T       sum of the returns backed up through the node (incl. its own value)
//   raw_value[B,N] T       the model's value estimate of the node
//   reward[B,N] T          reward of the edge parent -> node
//   discount[B,N] T        discount of the edge parent -> node (negative: the player changed;
//                          pygenmod.mcts folds a model's per-edge player_changed flag into
//                          this sign, -|discount|, before the kernels see it)
//   parent[B,N] int32      -1 for the root and for free slots
//   action[B,N] int32      action taken from the parent (-1 for the root)
//   children[B,N,A] int32  node index of each child, -1 when not expanded
//   logits[B,N,A] T        the node's prior logits, minus their max; -inf for invalid actions
//   prior[B,N,A] T         softmax of logits (0 for invalid actions)
//   invalid[B,N,A] uint8   invalid-action mask of the node (1 = invalid)
//   state[B,N] int64       embedding index (tabular: the state; callback path: the slot)
//   num_nodes[B] int32     nodes in use
//   gumbel[B,A] T          Gumbel noise at the root (Gumbel MuZero), 0 otherwise
//   qbounds[B,2] T         MuZero's per-tree MinMaxStats (min, max) of reward + discount *
//                          value over every node on every backed-up path (+inf, -inf = empty);
//                          used by q_normalization = "tree"
// Q(node, a) = reward[c] + discount[c] * value_sum[c] / visits[c] for the child c.
//
// Semantics follow mctx (google-deepmind/mctx) muzero_policy and gumbel_muzero_policy;
// policy 2 is classic UCT (UCB1 selection, random rollouts on tabular models; Browne et al.
// 2012, "A Survey of Monte Carlo Tree Search Methods").
// Tie-breaking is deterministic: every argmax takes the lowest action index among equal
// scores (mctx adds 1e-7 * uniform noise to the PUCT score instead).
#pragma once

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "pygenmod/common.hpp"
#include "pygenmod/interrupt.hpp"
#include "pygenmod/libm_expf.hpp"
#include "pygenmod/mcts_fields.hpp"
#include "pygenmod/parallel.hpp"
#include "pygenmod/random.hpp"
#include "pygenmod/sampling.hpp"

// The small per-child functions shared by the serial and lane-split selections: always
// inlined on the host too (GCC keeps some out of line at -O3: a call per child, ~20% slower).
#if defined(__CUDACC__) || !defined(__GNUC__)
#define PGM_MCTS_INLINE PGM_HD
#else
#define PGM_MCTS_INLINE inline __attribute__((always_inline))
#endif

namespace pygenmod::mcts {

using i32 = std::int32_t;
using u8 = std::uint8_t;

PGM_HD double m_log(double x) { return ::log(x); }
PGM_HD float m_log(float x) { return ::logf(x); }
PGM_HD double m_exp(double x) { return ::exp(x); }
PGM_HD float m_exp(float x) { return ::expf(x); }
PGM_HD double m_sqrt(double x) { return ::sqrt(x); }
PGM_HD float m_sqrt(float x) { return ::sqrtf(x); }
template <class T>
PGM_HD T m_max(T a, T b) {
  return a > b ? a : b;
}
template <class T>
PGM_HD T m_min(T a, T b) {
  return a < b ? a : b;
}
// x * y rounded on its own. nvcc contracts a product and a following add into one FMA by
// default; a completed Q (a product) is read from a cache by one selection path and used at
// once by another (mcts_lanes.hpp), so it must not be fused into the sum that uses it.
PGM_HD float mul_rn(float x, float y) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(x, y);
#else
  return x * y;
#endif
}
PGM_HD double mul_rn(double x, double y) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(x, y);
#else
  return x * y;
#endif
}
template <class T>
PGM_HD T tiny_of();
template <>
PGM_HD float tiny_of<float>() {
  return 1.17549435e-38f;
}
template <>
PGM_HD double tiny_of<double>() {
  return 2.2250738585072014e-308;
}

// Search parameters, read from a float64 array (the bindings' `params` argument) whose
// entries are named by mcts_fields.hpp (param::policy, ...: one per member below, same
// name), and the sequential-halving table
// table[m, k] (int32, (M + 1) x L) of mctx's get_table_of_considered_visits.
struct Params {
  int policy = kPolicyMuzero;  // kPolicyMuzero (PUCT), kPolicyGumbel, kPolicyUct (UCB1)
  double pb_c_init = 1.25, pb_c_base = 19652.0;
  double value_scale = 0.1, maxvisit_init = 50.0;
  int rescale_values = 1, use_mixed_value = 1;
  int max_considered = 16;            // mctx max_num_considered_actions (Gumbel)
  int q_tree = 0;                     // 1: MuZero's per-tree min-max normalisation of Q (PUCT only)
  int max_depth = 0;                  // mctx max_depth: a descent stops after this many edges (0 = none)
  double uct_c = 1.4142135623730951;  // UCB1 exploration constant (policy 2)
  int rollout_depth = 0;              // tabular search: random-rollout leaf values of this many steps
  int chance = 0;                     // stochastic tabular search: an outcome drawn at every visit (chance nodes)
  const i32* table = nullptr;
  int table_len = 0;
};
constexpr int kNumParams = param::count;

PGM_HD Params make_params(const double* p, const i32* table, int table_len) {
  Params q;
#define PGM_X(name) q.name = static_cast<decltype(q.name)>(p[param::name]);
  PGM_MCTS_PARAM_FIELDS(PGM_X)
#undef PGM_X
  q.table = table;
  q.table_len = table_len;
  return q;
}

// The arrays of the whole batch.
template <class T>
struct Batch {
  index_t N = 0, A = 0;
  i32* visits;
  T* value_sum;
  T* raw_value;
  T* reward;
  T* discount;
  i32* parent;
  i32* action;
  i32* children;
  T* logits;
  T* prior;
  u8* invalid;
  std::int64_t* state;
  i32* num_nodes;
  T* gumbel;
  T* qbounds;
};

// One tree of the batch: the same arrays offset to tree b.
template <class T>
struct TreeRef {
  index_t N, A;
  i32* visits;
  T* value_sum;
  T* raw_value;
  T* reward;
  T* discount;
  i32* parent;
  i32* action;
  i32* children;
  T* logits;
  T* prior;
  u8* invalid;
  std::int64_t* state;
  i32* num_nodes;
  T* gumbel;
  T* qbounds;
};

template <class T>
PGM_HD TreeRef<T> tree_at(const Batch<T>& t, index_t b) {
  const index_t N = t.N, A = t.A;
  return TreeRef<T>{N,
                    A,
                    t.visits + b * N,
                    t.value_sum + b * N,
                    t.raw_value + b * N,
                    t.reward + b * N,
                    t.discount + b * N,
                    t.parent + b * N,
                    t.action + b * N,
                    t.children + b * N * A,
                    t.logits + b * N * A,
                    t.prior + b * N * A,
                    t.invalid + b * N * A,
                    t.state + b * N,
                    t.num_nodes + b,
                    t.gumbel + b * A,
                    t.qbounds + b * 2};
}

// ----------------------------------------------------------------------------- node math
template <class T>
PGM_HD T child_q(const TreeRef<T>& t, i32 c) {
  return t.reward[c] + t.discount[c] * (t.value_sum[c] / static_cast<T>(t.visits[c]));
}

template <class T>
PGM_HD i32 child_visits(const TreeRef<T>& t, i32 n, index_t a) {
  const i32 c = t.children[n * t.A + a];
  return c >= 0 ? t.visits[c] : 0;
}

// Writes node c's scalar fields and marks its children unexpanded.
template <class T>
PGM_HD void link_node(TreeRef<T>& t, i32 c, i32 parent, i32 action, T reward, T discount, T value, std::int64_t state) {
  t.visits[c] = 1;
  t.value_sum[c] = value;
  t.raw_value[c] = value;
  t.reward[c] = reward;
  t.discount[c] = discount;
  t.parent[c] = parent;
  t.action[c] = action;
  t.state[c] = state;
  i32* ch = t.children + c * t.A;
  for (index_t a = 0; a < t.A; ++a) ch[a] = -1;
}

// e[a] = exp(e[a]) for a < n. On the CPU in float32 the C library's expf four lanes at a
// time (libm_expf.hpp: the same bits, so the backends still build the same trees).
template <class T>
PGM_MCTS_INLINE void exp_row(T* e, index_t n) {
#if !defined(__CUDA_ARCH__)
  if constexpr (std::is_same_v<T, float>) {
    libm::expf_inplace(e, n);
    return;
  }
#endif
  for (index_t a = 0; a < n; ++a) e[a] = m_exp(e[a]);
}

template <class T>
PGM_HD void set_logits(TreeRef<T>& t, i32 c, const T* logits, const u8* invalid, bool all_invalid);

// Writes node c; logits are shifted by their max over valid actions and the prior is their
// softmax. all_invalid marks a terminal node (no valid action); -inf logits are invalid.
template <class T>
PGM_HD void init_node(TreeRef<T>& t, i32 c, i32 parent, i32 action, T reward, T discount, const T* logits, T value,
                      const u8* invalid, bool all_invalid, std::int64_t state) {
  link_node(t, c, parent, action, reward, discount, value, state);
  set_logits(t, c, logits, invalid, all_invalid);
}

// Node c's logits (shifted by their max over valid actions), prior and invalid mask.
template <class T>
PGM_HD void set_logits(TreeRef<T>& t, i32 c, const T* logits, const u8* invalid, bool all_invalid) {
  const index_t A = t.A;
  T* lg = t.logits + c * A;
  T* pr = t.prior + c * A;
  u8* inv = t.invalid + c * A;
  T m = neg_inf<T>();
  for (index_t a = 0; a < A; ++a) {
    const bool bad = all_invalid || (invalid && invalid[a]) || !(logits[a] > neg_inf<T>());
    inv[a] = bad ? 1 : 0;
    if (!bad) m = m_max(m, logits[a]);
  }
  for (index_t a = 0; a < A; ++a) {
    lg[a] = inv[a] ? neg_inf<T>() : logits[a] - m;
    pr[a] = lg[a];
  }
  exp_row(pr, A);  // exp(-inf) = +0 for the invalid actions, and adding +0 to z is exact
  T z = 0;
  for (index_t a = 0; a < A; ++a) z += pr[a];
  for (index_t a = 0; a < A; ++a) pr[a] = z > 0 ? pr[a] / z : T(0);
}

// mctx qtransform_by_parent_and_siblings + PUCT (muzero_action_selection). Child Q-values
// are cached in a small local buffer when A <= kQCache (recomputed otherwise).
constexpr int kQCache = 32;

// The Q range used to normalise: max(hi - lo, 1e-8) (PUCT and the completed Q of Gumbel).
template <class T>
PGM_MCTS_INLINE T q_range(T lo, T hi) {
  return m_max(hi - lo, static_cast<T>(1e-8));
}

// A child's PUCT score at node n, given the node's Q bounds (lo, hi over the node's value and
// its expanded children's Q). One function for every mapping (serial, lane-split), so the
// chosen child is the same bitwise.
template <class T>
struct PuctScore {
  T lo, denom, tmin, tmax, scale;
  bool q_tree;
  // c: the child (-1 = unexpanded), q: its Q (read only when c >= 0), prior: P(n, a)
  PGM_MCTS_INLINE T operator()(const TreeRef<T>& t, i32 c, T q, T prior) const {
    if (c < 0) return scale * prior;
    T v;
    if (q_tree)  // MuZero MinMaxStats.normalize: Q unchanged while max <= min
      v = tmax > tmin ? (q - tmin) / (tmax - tmin) : q;
    else
      v = (q - lo) / denom;
    return v + scale * prior / (static_cast<T>(t.visits[c]) + T(1));
  }
};

template <class T>
PGM_MCTS_INLINE PuctScore<T> puct_score(const TreeRef<T>& t, i32 n, const Params& p, T lo, T hi) {
  PuctScore<T> s;
  s.lo = lo;
  s.denom = q_range(lo, hi);
  s.tmin = t.qbounds[0];
  s.tmax = t.qbounds[1];
  s.q_tree = p.q_tree != 0;
  const T N = static_cast<T>(t.visits[n]);
  const T c2 = static_cast<T>(p.pb_c_base);
  const T pb_c = static_cast<T>(p.pb_c_init) + m_log((N + c2 + T(1)) / c2);
  s.scale = m_sqrt(N) * pb_c;
  return s;
}

// The node's mean value (the first bound of PUCT's Q normalisation).
template <class T>
PGM_MCTS_INLINE T node_value(const TreeRef<T>& t, i32 n) {
  return t.value_sum[n] / static_cast<T>(t.visits[n]);
}

template <class T>
PGM_HD i32 select_muzero(const TreeRef<T>& t, i32 n, const Params& p) {
  const index_t A = t.A;
  const i32* ch = t.children + n * A;
  const bool cache = A <= kQCache;
  T qbuf[kQCache];
  const T nv = node_value(t, n);
  T lo = nv, hi = nv;
  for (index_t a = 0; a < A; ++a)
    if (ch[a] >= 0) {
      const T q = child_q(t, ch[a]);
      if (cache) qbuf[a] = q;
      lo = m_min(lo, q);
      hi = m_max(hi, q);
    }
  const PuctScore<T> score_of = puct_score(t, n, p, lo, hi);
  const T* prior = t.prior + n * A;
  const u8* invalid = t.invalid + n * A;
  i32 best = -1;
  T best_score = neg_inf<T>();
  for (index_t a = 0; a < A; ++a) {
    if (invalid[a]) continue;
    const i32 c = ch[a];
    const T score = score_of(t, c, c >= 0 ? (cache ? qbuf[a] : child_q(t, c)) : T(0), prior[a]);
    if (best < 0 || score > best_score) {
      best = static_cast<i32>(a);
      best_score = score;
    }
  }
  return best;
}

// mctx qtransform_completed_by_mix_value. For A <= kQCache the completed values are
// computed once into a local buffer; otherwise they are recomputed per action from the
// mixed value, the min/max and the scale (no scratch memory needed).
template <class T>
struct Completed {
  T mixed, lo, range, scale;  // as mctx: scale * (q - lo) / range
  bool rescale;
  const T* cache;  // final completed values, or nullptr
  PGM_HD T raw(const TreeRef<T>& t, i32 n, index_t a) const {
    const i32 c = t.children[n * t.A + a];
    return c >= 0 ? child_q(t, c) : mixed;
  }
  PGM_HD T operator()(const TreeRef<T>& t, i32 n, index_t a) const {
    if (cache) return cache[a];
    const T q = raw(t, n, a);
    return mul_rn(scale, rescale ? (q - lo) / range : q);
  }
};

// Pieces of completed_q shared with the lane-split version (mcts_lanes.hpp).
template <class T>
PGM_MCTS_INLINE T mixed_value(T raw_value, T sum_n, T wq) {
  return (raw_value + sum_n * wq) / (sum_n + T(1));
}
template <class T>
PGM_MCTS_INLINE T completed_scale(const Params& p, i32 maxvisit) {
  return (static_cast<T>(p.maxvisit_init) + static_cast<T>(maxvisit)) * static_cast<T>(p.value_scale);
}
// A visited child's weight in the mixed value: max(tiny, prior) * q / sum_p.
template <class T>
PGM_MCTS_INLINE T mixed_term(T prior, T q, T sum_p) {
  return m_max(tiny_of<T>(), prior) * q / sum_p;
}

// buf: kQCache entries of scratch, used when A <= kQCache.
template <class T>
PGM_HD Completed<T> completed_q(const TreeRef<T>& t, i32 n, const Params& p, T* buf) {
  const index_t A = t.A;
  const i32* ch = t.children + n * A;
  const T* prior = t.prior + n * A;
  const bool cached = A <= kQCache;
  T sum_n = 0, sum_p = 0, wq = 0;
  i32 maxvisit = 0;
  for (index_t a = 0; a < A; ++a) {
    const i32 c = ch[a];
    if (c < 0) continue;
    const i32 v = t.visits[c];
    sum_n += static_cast<T>(v);
    maxvisit = v > maxvisit ? v : maxvisit;
    sum_p += m_max(tiny_of<T>(), prior[a]);
    if (cached) buf[a] = child_q(t, c);
  }
  Completed<T> out;
  out.cache = nullptr;
  const T raw_value = t.raw_value[n];
  if (p.use_mixed_value) {
    for (index_t a = 0; a < A; ++a)
      if (ch[a] >= 0) wq += mixed_term(prior[a], cached ? buf[a] : child_q(t, ch[a]), sum_p);
    out.mixed = mixed_value(raw_value, sum_n, wq);
  } else {
    out.mixed = raw_value;
  }
  if (cached)
    for (index_t a = 0; a < A; ++a)
      if (ch[a] < 0) buf[a] = out.mixed;
  out.rescale = p.rescale_values != 0;
  out.lo = 0;
  out.range = 1;
  if (out.rescale) {
    T lo = cached ? buf[0] : out.raw(t, n, 0), hi = lo;
    for (index_t a = 1; a < A; ++a) {
      const T q = cached ? buf[a] : out.raw(t, n, a);
      lo = m_min(lo, q);
      hi = m_max(hi, q);
    }
    out.lo = lo;
    out.range = q_range(lo, hi);
  }
  out.scale = completed_scale<T>(p, maxvisit);
  if (cached) {
    const T scale = out.scale, lo = out.lo, range = out.range;
    if (out.rescale)
      for (index_t a = 0; a < A; ++a) buf[a] = mul_rn(scale, (buf[a] - lo) / range);
    else
      for (index_t a = 0; a < A; ++a) buf[a] = mul_rn(scale, buf[a]);
    out.cache = buf;
  }
  return out;
}

// mctx seq_halving.score_considered, without the penalty.
template <class T>
PGM_HD T gumbel_score(const TreeRef<T>& t, i32 n, index_t a, T lmax, const Completed<T>& cq) {
  const T s = t.gumbel[a] + (t.logits[n * t.A + a] - lmax) + cq(t, n, a);
  return m_max(static_cast<T>(-1e9), s);
}

// The visit count sequential halving considers next: table[min(num_valid, max_considered),
// min(sim, table_len - 1)] (jnp indexing clamps).
PGM_HD i32 considered_visits(const Params& p, int num_valid, i32 sim) {
  const int considered_n = num_valid < p.max_considered ? num_valid : p.max_considered;
  if (sim >= p.table_len) sim = p.table_len - 1;
  return p.table[considered_n * p.table_len + sim];
}

// mctx gumbel_muzero_root_action_selection (sequential halving with Gumbel).
template <class T>
PGM_HD i32 select_gumbel_root(const TreeRef<T>& t, const Params& p) {
  const index_t A = t.A;
  T buf[kQCache];
  const Completed<T> cq = completed_q(t, 0, p, buf);
  int num_valid = 0;
  i32 sim = 0;
  T lmax = neg_inf<T>();
  for (index_t a = 0; a < A; ++a) {
    if (!t.invalid[a]) ++num_valid;
    sim += child_visits(t, 0, a);
    lmax = m_max(lmax, t.logits[a]);
  }
  const i32 considered = considered_visits(p, num_valid, sim);
  i32 best = -1, fallback = -1;
  T best_score = neg_inf<T>(), fb_score = neg_inf<T>();
  for (index_t a = 0; a < A; ++a) {
    if (t.invalid[a]) continue;
    const T s = gumbel_score(t, 0, a, lmax, cq);
    if (child_visits(t, 0, a) == considered && (best < 0 || s > best_score)) {
      best = static_cast<i32>(a);
      best_score = s;
    }
    if (fallback < 0 || s > fb_score) {
      fallback = static_cast<i32>(a);
      fb_score = s;
    }
  }
  // No valid action has the considered visit count (possible on a reused tree):
  // the best Gumbel score among valid actions.
  return best >= 0 ? best : fallback;
}

// A child's interior Gumbel score: softmax(logits + completed_q)[a] - visits[a] / (1 + total),
// from e = exp(logit + completed q - max), the softmax's denominator z and the visit count.
template <class T>
PGM_MCTS_INLINE T interior_score(T e, T z, T visits, i32 total) {
  return e / z - visits / static_cast<T>(1 + total);
}

// mctx gumbel_muzero_interior_action_selection: argmax of
// softmax(logits + completed_q) - visits / (1 + sum visits).
template <class T>
PGM_HD i32 select_gumbel_interior(const TreeRef<T>& t, i32 n, const Params& p) {
  const index_t A = t.A;
  T buf[kQCache], ebuf[kQCache], nbuf[kQCache];
  const bool cached = A <= kQCache;
  const Completed<T> cq = completed_q(t, n, p, buf);
  const T* logits = t.logits + n * A;
  const u8* invalid = t.invalid + n * A;
  T m = neg_inf<T>();
  i32 total = 0;
  for (index_t a = 0; a < A; ++a) {
    const i32 v = child_visits(t, n, a);
    if (cached) nbuf[a] = static_cast<T>(v);
    total += v;
    if (!invalid[a]) m = m_max(m, logits[a] + cq(t, n, a));
  }
  if (cached) {
    // Branch-free passes over the small buffers (invalid logits are -inf: exp gives 0, and
    // adding 0 to z is exact, so z equals the sum over valid actions).
    for (index_t a = 0; a < A; ++a) ebuf[a] = logits[a] + buf[a] - m;
    exp_row(ebuf, A);
    T z = 0;
    for (index_t a = 0; a < A; ++a) z += ebuf[a];
    for (index_t a = 0; a < A; ++a) ebuf[a] = interior_score(ebuf[a], z, nbuf[a], total);
    i32 best = -1;
    T best_score = neg_inf<T>();
    for (index_t a = 0; a < A; ++a)
      if (!invalid[a] && (best < 0 || ebuf[a] > best_score)) {
        best = static_cast<i32>(a);
        best_score = ebuf[a];
      }
    return best;
  }
  T z = 0;
  for (index_t a = 0; a < A; ++a)
    if (!invalid[a]) z += m_exp(logits[a] + cq(t, n, a) - m);
  i32 best = -1;
  T best_score = neg_inf<T>();
  for (index_t a = 0; a < A; ++a) {
    if (invalid[a]) continue;
    const T s = interior_score(m_exp(logits[a] + cq(t, n, a) - m), z, static_cast<T>(child_visits(t, n, a)), total);
    if (best < 0 || s > best_score) {
      best = static_cast<i32>(a);
      best_score = s;
    }
  }
  return best;
}

// UCT (Kocsis & Szepesvari 2006; Browne et al. 2012): the first unexpanded valid action (lowest
// index), else argmax over valid actions of Q(n, a) + c * sqrt(ln N(n) / N(child)), with
// N(n) = visits[n] (the node's own evaluation included) and Q seen from n's player (a
// negative discount flips the child's value). The prior is not used; only the mask.
template <class T>
PGM_MCTS_INLINE T uct_score(const TreeRef<T>& t, i32 c, T log_n, T uct_c) {
  return child_q(t, c) + uct_c * m_sqrt(log_n / static_cast<T>(t.visits[c]));
}

template <class T>
PGM_HD i32 select_uct(const TreeRef<T>& t, i32 n, const Params& p) {
  const index_t A = t.A;
  const i32* ch = t.children + n * A;
  const u8* invalid = t.invalid + n * A;
  const T log_n = m_log(static_cast<T>(t.visits[n]));
  const T c = static_cast<T>(p.uct_c);
  i32 best = -1;
  T best_score = neg_inf<T>();
  for (index_t a = 0; a < A; ++a) {
    if (invalid[a]) continue;
    if (ch[a] < 0) return static_cast<i32>(a);
    const T score = uct_score(t, ch[a], log_n, c);
    if (best < 0 || score > best_score) {
      best = static_cast<i32>(a);
      best_score = score;
    }
  }
  return best;
}

// The action the policy picks at node n (kTerminal when n has no valid action).
template <class T>
PGM_HD i32 select_action(const TreeRef<T>& t, i32 n, const Params& p) {
  if (p.policy == kPolicyGumbel) return n == 0 ? select_gumbel_root(t, p) : select_gumbel_interior(t, n, p);
  if (p.policy == kPolicyUct) return select_uct(t, n, p);
  return select_muzero(t, n, p);
}

// Descends from the root to the first unexpanded edge: (node, action). A node without a
// valid action (terminal) ends the descent with action kTerminal.
// With p.max_depth > 0 the descent also ends after max_depth edges (mctx's simulate): the
// returned action's child may then exist already (it is re-evaluated, see reevaluate_child).
template <class T, class Choose>
PGM_HD void descend(const TreeRef<T>& t, const Params& p, const Choose& choose, i32* out_node, i32* out_action) {
  i32 n = 0;
  int depth = 0;
  for (;;) {
    const i32 a = choose(n);
    if (a < 0) break;
    const i32 c = t.children[n * t.A + a];
    ++depth;
    if (c < 0 || (p.max_depth > 0 && depth >= p.max_depth)) {
      *out_node = n;
      *out_action = a;
      return;
    }
    n = c;
  }
  *out_node = n;
  *out_action = kTerminal;
}

template <class T>
PGM_HD void select_one(const TreeRef<T>& t, const Params& p, i32* out_node, i32* out_action) {
  descend(t, p, [&](i32 n) { return select_action(t, n, p); }, out_node, out_action);
}

// mctx's expansion of an already expanded child at the max_depth cutoff (update_tree_node):
// one more visit, the node's mean value REPLACED by the new value (value_sum = value *
// visits), new raw value, edge reward/discount and logits; its children are kept.
template <class T>
PGM_HD void reevaluate_child(TreeRef<T>& t, i32 c, T reward, T discount, T value) {
  t.visits[c] += 1;
  t.value_sum[c] = value * static_cast<T>(t.visits[c]);
  t.raw_value[c] = value;
  t.reward[c] = reward;
  t.discount[c] = discount;
}

// Attaches the child (node, action). Action kTerminal re-evaluates the terminal `node` itself
// (one more visit with its raw value); action kReevaluate - a re-evaluates the existing child a of
// `node` (the max_depth cutoff, see reevaluate_child; its state is kept). Returns the node
// to back up from, or an error code.
template <class T>
PGM_HD i32 expand_one(TreeRef<T>& t, i32 node, i32 action, T reward, T discount, const T* logits, T value,
                      const u8* invalid, bool all_invalid, std::int64_t state) {
  if (node < 0 || node >= t.num_nodes[0]) return kBadAction;
  if (action <= kReevaluate) {
    const i32 a = kReevaluate - action;
    if (a >= t.A) return kBadAction;
    const i32 c = t.children[node * t.A + a];
    if (c < 0) return kNotExpanded;
    reevaluate_child(t, c, reward, discount, value);
    set_logits(t, c, logits, invalid, all_invalid);
    return c;
  }
  if (action < 0) {
    t.visits[node] += 1;
    t.value_sum[node] += t.raw_value[node];
    return node;
  }
  if (action >= t.A) return kBadAction;
  if (t.children[node * t.A + action] >= 0) return kAlreadyExpanded;
  const i32 c = t.num_nodes[0];
  if (c >= t.N) return kCapacity;
  t.num_nodes[0] = c + 1;
  init_node(t, c, node, action, reward, discount, logits, value, invalid, all_invalid, state);
  t.children[node * t.A + action] = c;
  return c;
}

// Backs the leaf's value up to the root: G <- reward + discount * G along each edge.
// Every node on the path (leaf and root included) then updates the tree's min-max bounds
// with reward + discount * mean value (MuZero's min_max_stats.update in backpropagate).
template <class T>
PGM_HD void update_bounds(TreeRef<T>& t, i32 c) {
  const T q = child_q(t, c);
  t.qbounds[0] = m_min(t.qbounds[0], q);
  t.qbounds[1] = m_max(t.qbounds[1], q);
}

template <class T>
PGM_HD void backup_one(TreeRef<T>& t, i32 node) {
  T g = t.raw_value[node];
  i32 c = node;
  update_bounds(t, c);
  while (t.parent[c] >= 0) {
    const i32 p = t.parent[c];
    g = t.reward[c] + t.discount[c] * g;
    t.visits[p] += 1;
    t.value_sum[p] += g;
    c = p;
    update_bounds(t, c);
  }
}

// Stochastic transitions: the next state of an expansion in tree b at simulation `sim` is
// drawn by inverse CDF from the row cdf[s, a, :] (float64, nondecreasing, last entry exactly
// 1, built by pygenmod.mcts.stochastic_tabular_model) with the uniform
//   u = element `sim` of the float64 uniform layout of stream (4 << 56) | b
//     = rng::uniform_f64 on words (2k, 2k+1), k = sim % 2, of block sim / 2,
// and s' = the first index with u < cdf[s'] (binary search; zero-probability states are
// never drawn). A pure function of (seed, b, sim): independent of the other trees.
// b is the tree's *global* batch index stream0 + (index in this call), so a chunk of a batch
// that starts at row g (stream0 = g) draws exactly what the whole batch draws for its rows.
struct Transitions {
  const double* cdf = nullptr;  // [S, A, S], or nullptr: deterministic next_state
  index_t S = 0;
  std::uint64_t seed = 0;
  std::uint64_t stream0 = 0;  // global batch index of the call's tree 0
};

// Random streams: (purpose << 56) | index, one purpose per kind of draw (listed under
// "noise" below).
enum : std::uint64_t {
  kDirichletStream = 1,
  kGumbelStream = 2,
  kActionStream = 3,
  kTransitionStream = 4,
  kRolloutStream = 5,
  kChanceStream = 6
};

PGM_HD std::uint64_t stream_of(std::uint64_t purpose, std::uint64_t index) { return (purpose << 56) | index; }

PGM_HD double transition_uniform(std::uint64_t seed, index_t b, index_t sim) {
  const rng::u32x4 w = rng::block(seed, stream_of(kTransitionStream, static_cast<std::uint64_t>(b)),
                                  static_cast<std::uint64_t>(sim / 2));
  return sim % 2 == 0 ? rng::uniform_f64(w.v[0], w.v[1]) : rng::uniform_f64(w.v[2], w.v[3]);
}

PGM_HD std::int64_t inverse_cdf(const double* row, index_t S, double u) {
  index_t lo = 0, hi = S - 1;
  while (lo < hi) {
    const index_t mid = lo + (hi - lo) / 2;
    if (u < row[mid])
      hi = mid;
    else
      lo = mid + 1;
  }
  return static_cast<std::int64_t>(lo);
}

// The leaf value of UCT on a tabular model: a random rollout of at most p.rollout_depth steps
// from state s, sum_k (prod_{j<k} d_j) r_k, plus the discounted table value of the state it
// ends in (0 for a terminal state, where it stops early). Step k of simulation sim of tree g
// uses block sim * rollout_depth + k of stream (5 << 56) | g: uniform_f64 of words (0, 1)
// picks the action (the floor(u * n_valid)-th valid one), words (2, 3) the next state when
// the model is stochastic (inverse CDF). Accumulated in float64 whatever T.
template <class T>
PGM_HD T rollout_value(std::int64_t s, index_t A, const Params& p, const std::int64_t* next_state, const T* reward,
                       const T* discount, const T* value, const u8* invalid, const Transitions& tr, index_t g,
                       index_t sim) {
  const std::uint64_t stream = stream_of(kRolloutStream, static_cast<std::uint64_t>(g));
  double ret = 0, scale = 1;
  for (int k = 0; k < p.rollout_depth; ++k) {
    const u8* inv = invalid + s * A;
    index_t n_valid = 0;
    for (index_t a = 0; a < A; ++a) n_valid += inv[a] ? 0 : 1;
    if (n_valid == 0) return static_cast<T>(ret);  // terminal: value 0
    const rng::u32x4 w = rng::block(
        tr.seed, stream,
        static_cast<std::uint64_t>(sim) * static_cast<std::uint64_t>(p.rollout_depth) + static_cast<std::uint64_t>(k));
    index_t j = static_cast<index_t>(rng::uniform_f64(w.v[0], w.v[1]) * static_cast<double>(n_valid));
    if (j >= n_valid) j = n_valid - 1;
    index_t act = 0;
    for (index_t a = 0; a < A; ++a)
      if (!inv[a] && j-- == 0) {
        act = a;
        break;
      }
    const std::int64_t sa = s * A + act;
    ret += scale * static_cast<double>(reward[sa]);
    scale *= static_cast<double>(discount[sa]);
    s = tr.cdf ? inverse_cdf(tr.cdf + sa * tr.S, tr.S, rng::uniform_f64(w.v[2], w.v[3])) : next_state[sa];
  }
  return static_cast<T>(ret + scale * static_cast<double>(value[s]));
}

// A new (or re-evaluated) node's value: the table's, or a random rollout's (UCT).
template <class T>
PGM_HD T leaf_value(std::int64_t s, index_t A, const Params& p, const std::int64_t* next_state, const T* reward,
                    const T* discount, const T* value, const u8* invalid, const Transitions& tr, index_t g,
                    index_t sim) {
  if (p.rollout_depth <= 0) return value[s];
  return rollout_value(s, A, p, next_state, reward, discount, value, invalid, tr, g, sim);
}

// ----------------------------------------------------------------------------- chance nodes
// With p.chance (stochastic tabular models), the edge (n, a) leads to a chance node c
// (state kChanceState, reward/discount of the edge, visits and value_sum = the sums over
// its outcomes, no own evaluation), and every visit of c draws an outcome s' ~ P(s, a, .).
// Each distinct outcome gets its own child (a decision node, edge reward 0 and discount 1),
// kept in c's child slots 0 .. A-2; slot A-1 links to a further chance node of the same edge
// (reward 0, discount 1) when those are full, so an edge keeps any number of outcomes
// (found by a linear scan; A >= 2 is required). Then Q(n, a) = r + d * mean over every
// visit's outcome, an estimate of the expectation over P. The d-th outcome draw of
// simulation sim of tree g is uniform_f64 of words (0, 1) of block (sim << 32) | d of
// stream (6 << 56) | g.
constexpr std::int64_t kChanceState = -1;

PGM_HD double chance_uniform(std::uint64_t seed, index_t g, index_t sim, index_t d) {
  const rng::u32x4 w = rng::block(seed, stream_of(kChanceStream, static_cast<std::uint64_t>(g)),
                                  (static_cast<std::uint64_t>(sim) << 32) | static_cast<std::uint64_t>(d));
  return rng::uniform_f64(w.v[0], w.v[1]);
}

template <class T>
PGM_HD void init_chance(TreeRef<T>& t, i32 c, i32 parent, i32 action, T reward, T discount) {
  link_node(t, c, parent, action, reward, discount, T(0), kChanceState);
  t.visits[c] = 0;
  for (index_t a = 0; a < t.A; ++a) {
    t.logits[c * t.A + a] = neg_inf<T>();
    t.prior[c * t.A + a] = 0;
    t.invalid[c * t.A + a] = 1;
  }
}

// How the threads working on one tree share the work: OneThread (the CPU, the thread-per-tree
// kernels) or a warp (csrc/cuda/mcts_warp.cuh; mcts_lanes.hpp's HostWarp simulates it on the
// host). Every thread calls select and gets the same (node, action); leader() writes the tree's
// scalar fields, the row copies over A are split by lane (no two threads write one field), and
// sync() orders one thread's writes before another's reads.
struct OneThread {
  PGM_HD bool leader() const { return true; }
  PGM_HD index_t lane() const { return 0; }
  PGM_HD index_t width() const { return 1; }
  PGM_HD void sync() const {}
  template <class T>
  PGM_HD void select(const TreeRef<T>& t, const Params& p, i32* node, i32* action) const {
    select_one(t, p, node, action);
  }
};

// Node c's data from the tabular model's row of state s (split over the threads of ex).
template <class T, class Exec>
PGM_MCTS_INLINE void copy_state_row(const Exec& ex, TreeRef<T>& t, i32 c, std::int64_t s, const T* logits,
                                    const T* prior, const u8* invalid) {
  const index_t A = t.A;
  for (index_t a = ex.lane(); a < A; a += ex.width()) {
    t.logits[c * A + a] = logits[s * A + a];
    t.prior[c * A + a] = prior[s * A + a];
    t.invalid[c * A + a] = invalid[s * A + a];
  }
}

// One simulation with chance nodes (the caller checked 2 free nodes): descends, draws an
// outcome at every chance node, adds at most a chance node and an outcome node; returns the
// node to back up from.
template <class T>
PGM_HD i32 simulate_chance(TreeRef<T>& t, const Params& p, const std::int64_t* next_state, const T* reward,
                           const T* discount, const T* logits, const T* prior, const T* value, const u8* invalid,
                           const Transitions& tr, index_t g, index_t sim) {
  const index_t A = t.A;
  i32 n = 0;
  for (index_t d = 0;; ++d) {
    const i32 a = select_action(t, n, p);
    if (a < 0) {  // terminal: evaluated again
      t.visits[n] += 1;
      t.value_sum[n] += t.raw_value[n];
      return n;
    }
    const std::int64_t sa = t.state[n] * A + a;
    i32 host = t.children[n * A + a];
    if (host < 0) {
      host = t.num_nodes[0]++;
      init_chance(t, host, n, a, reward[sa], discount[sa]);
      t.children[n * A + a] = host;
    }
    const std::int64_t s2 = inverse_cdf(tr.cdf + sa * tr.S, tr.S, chance_uniform(tr.seed, g, sim, d));
    i32 slot = -1, o = -1;
    for (;;) {  // the outcome's slot in the chain of chance nodes of this edge
      for (index_t k = 0; k + 1 < A; ++k) {
        const i32 ch = t.children[host * A + k];
        if (ch < 0 || t.state[ch] == s2) {
          slot = static_cast<i32>(k);
          o = ch;
          break;
        }
      }
      if (slot >= 0) break;
      const i32 next = t.children[host * A + A - 1];
      if (next >= 0) {
        host = next;
        continue;
      }
      const i32 link = t.num_nodes[0]++;
      init_chance(t, link, host, static_cast<i32>(A - 1), T(0), T(1));
      t.children[host * A + A - 1] = link;
      host = link;
      slot = 0;
      break;
    }
    if (o >= 0) {
      n = o;
      continue;
    }
    o = t.num_nodes[0]++;
    link_node(t, o, host, slot, T(0), T(1),
              leaf_value(s2, A, p, next_state, reward, discount, value, invalid, tr, g, sim), s2);
    copy_state_row(OneThread{}, t, o, s2, logits, prior, invalid);
    t.children[host * A + slot] = o;
    return o;
  }
}

// The whole search on a tabular model whose per-state node data is precomputed (by
// pygenmod.mcts.tabular_model): next_state[S,A], reward[S,A], discount[S,A], logits[S,A]
// (shifted, -inf where invalid), prior[S,A] (their softmax), value[S], invalid[S,A].
// A terminal state has value 0 and every action invalid. With tr.cdf set the next state is
// sampled per expansion (see Transitions) instead of read from next_state; b is the tree's
// index in the call (its random streams are those of global index tr.stream0 + b). With
// p.rollout_depth > 0 a new node's value is a random rollout's (UCT, see rollout_value).
// Runs simulations sim_begin .. num_simulations - 1 (a search split into such ranges is the
// same search). ex: the threads that share the tree (see OneThread); the chance-node search
// runs on its leader alone.
template <class T, class Exec = OneThread>
PGM_HD void search_tabular_one(TreeRef<T>& t, const Params& p, index_t num_simulations, const std::int64_t* next_state,
                               const T* reward, const T* discount, const T* logits, const T* prior, const T* value,
                               const u8* invalid, const Transitions& tr, index_t b, index_t sim_begin = 0,
                               const Exec& ex = Exec{}) {
  const index_t A = t.A;
  const index_t g = static_cast<index_t>(tr.stream0) + b;  // the tree's global index (streams)
  if (p.chance && tr.cdf) {
    if (!ex.leader()) return;
    for (index_t sim = sim_begin; sim < num_simulations; ++sim) {
      if (t.num_nodes[0] + 2 > t.N) return;  // capacity: checked by the caller beforehand
      backup_one(t, simulate_chance(t, p, next_state, reward, discount, logits, prior, value, invalid, tr, g, sim));
    }
    return;
  }
  for (index_t sim = sim_begin; sim < num_simulations; ++sim) {
    i32 node, action;
    ex.select(t, p, &node, &action);
    i32 leaf = node;
    const i32 old = action >= 0 ? t.children[node * A + action] : -1;
    const i32 c = t.num_nodes[0];
    if (old < 0 && action >= 0 && c >= t.N) return;  // capacity: checked by the caller beforehand
    ex.sync();                                       // every thread has read the tree before the leader writes it
    if (action >= 0) {                               // old >= 0: the max_depth cutoff re-evaluates the existing child
      const std::int64_t s = t.state[node], sa = s * A + action;
      const std::int64_t s2 =
          tr.cdf ? inverse_cdf(tr.cdf + sa * tr.S, tr.S, transition_uniform(tr.seed, g, sim)) : next_state[sa];
      leaf = old >= 0 ? old : c;
      if (ex.leader()) {
        const T v = leaf_value(s2, A, p, next_state, reward, discount, value, invalid, tr, g, sim);
        if (old >= 0) {
          reevaluate_child(t, old, reward[sa], discount[sa], v);
          t.state[old] = s2;
        } else {
          t.num_nodes[0] = c + 1;
          link_node(t, c, node, action, reward[sa], discount[sa], v, s2);
          t.children[node * A + action] = c;
        }
      }
      copy_state_row(ex, t, leaf, s2, logits, prior, invalid);
    } else if (ex.leader()) {
      t.visits[node] += 1;
      t.value_sum[node] += t.raw_value[node];
    }
    ex.sync();
    if (ex.leader()) backup_one(t, leaf);
    ex.sync();
  }
}

// Keeps the subtree under the root's child `action` as the new tree, compacted in place.
// new_index[N] (old -> new, -1 = dropped) and old_index[N] (new -> old, -1 = free).
template <class T>
PGM_HD i32 advance_one(TreeRef<T>& t, i32 action, i32* new_index, i32* old_index) {
  const index_t N = t.N, A = t.A;
  if (action < 0 || action >= A) return kBadAction;
  const i32 r = t.children[action];
  if (r < 0) return kNotExpanded;
  const i32 nn = t.num_nodes[0];
  i32 cnt = 0;
  for (i32 i = 0; i < static_cast<i32>(N); ++i) {
    old_index[i] = -1;
    new_index[i] = -1;
  }
  for (i32 i = r; i < nn; ++i)
    if (i == r || (t.parent[i] >= 0 && new_index[t.parent[i]] >= 0)) new_index[i] = cnt++;
  // Parents precede children, so new index <= old index: copying in increasing order
  // never overwrites a node that is still to be read.
  for (i32 i = r; i < nn; ++i) {
    const i32 j = new_index[i];
    if (j < 0) continue;
    old_index[j] = i;
    t.visits[j] = t.visits[i];
    t.value_sum[j] = t.value_sum[i];
    t.raw_value[j] = t.raw_value[i];
    t.reward[j] = t.reward[i];
    t.discount[j] = t.discount[i];
    t.parent[j] = i == r ? -1 : new_index[t.parent[i]];
    t.action[j] = i == r ? -1 : t.action[i];
    t.state[j] = t.state[i];
    for (index_t a = 0; a < A; ++a) {
      const i32 c = t.children[i * A + a];
      t.children[j * A + a] = c >= 0 ? new_index[c] : -1;
      t.logits[j * A + a] = t.logits[i * A + a];
      t.prior[j * A + a] = t.prior[i * A + a];
      t.invalid[j * A + a] = t.invalid[i * A + a];
    }
  }
  t.reward[0] = 0;
  t.discount[0] = 1;
  for (i32 j = cnt; j < nn; ++j) {
    t.visits[j] = 0;
    t.value_sum[j] = 0;
    t.raw_value[j] = 0;
    t.reward[j] = 0;
    t.discount[j] = 0;
    t.parent[j] = -1;
    t.action[j] = -1;
    t.state[j] = 0;
    for (index_t a = 0; a < A; ++a) {
      t.children[j * A + a] = -1;
      t.logits[j * A + a] = 0;
      t.prior[j * A + a] = 0;
      t.invalid[j * A + a] = 0;
    }
  }
  t.num_nodes[0] = cnt;
  // The min-max bounds are recomputed over the kept subtree (reward + discount * mean value
  // of every kept node, the new root with reward 0 and discount 1).
  t.qbounds[0] = -neg_inf<T>();
  t.qbounds[1] = neg_inf<T>();
  for (i32 j = 0; j < cnt; ++j) update_bounds(t, j);
  return kOk;
}

// ----------------------------------------------------------------------------- noise
// Streams: (purpose << 56) | index, one purpose per kind of draw:
//   Dirichlet: stream (1 << 56) | (b * A + a), one rng::gamma_f64(alpha) variate per
//              (tree b, action a), normalised over the A actions of the tree;
//   Gumbel:    stream (2 << 56) | b, element a of the float64 Gumbel layout of random.hpp
//              (rng::gumbel_f64 on words (2k, 2k+1), k = a % 2, of block a / 2), cast to T;
//   action:    stream (3 << 56) | b, uniform_f64 of words (0, 1) of block 0;
//   transition: stream (4 << 56) | b, element sim of the float64 uniform layout (see
//              Transitions above);
//   rollout:   stream (5 << 56) | b, block sim * rollout_depth + step (see rollout_value);
//   chance:    stream (6 << 56) | b, block (sim << 32) | d (see chance_uniform).
// b is always the tree's global batch index (stream0 + its index in the call).
// The transforms are the shared ones of random.hpp (numba twins in _numba/philox.py).
// (stream purposes and stream_of: see "Random streams" above search_tabular_one)

// Dirichlet(alpha, ..., alpha) sample over A actions for tree b (global index) into out[A].
template <class T>
PGM_HD void dirichlet_one(std::uint64_t seed, double alpha, index_t b, index_t A, T* out) {
  double z = 0;
  for (index_t a = 0; a < A; ++a) {
    const double g = rng::gamma_f64(alpha, seed, stream_of(kDirichletStream, b * A + a));
    out[a] = static_cast<T>(g);
    z += g;
  }
  if (!(z > 0)) {
    // Every variate underflowed (alpha ~ 1e-300: each is boost * O(1), boost = U^(1/alpha)).
    // The sample is then one-hot at the largest variate, i.e. at the largest boost uniform U
    // (block 0 of the action's stream); the numba twin does the same.
    index_t best = 0;
    double u_best = -1;
    for (index_t a = 0; a < A; ++a) {
      const rng::u32x4 w = rng::block(seed, stream_of(kDirichletStream, b * A + a), 0);
      const double u = rng::uniform_f64(w.v[0], w.v[1]);
      if (u > u_best) u_best = u, best = a;
    }
    for (index_t a = 0; a < A; ++a) out[a] = static_cast<T>(a == best ? 1 : 0);
    return;
  }
  for (index_t a = 0; a < A; ++a) out[a] = static_cast<T>(static_cast<double>(out[a]) / z);
}

// Standard Gumbel noise for tree b into out[A] (float64 elements 0..A-1 of its stream).
template <class T>
PGM_HD void gumbel_one(std::uint64_t seed, index_t b, index_t A, T* out) {
  const std::uint64_t stream = stream_of(kGumbelStream, b);
  for (index_t a = 0; a < A; a += 2) {
    const rng::u32x4 w = rng::block(seed, stream, static_cast<std::uint64_t>(a / 2));
    out[a] = static_cast<T>(rng::gumbel_f64(w.v[0], w.v[1]));
    if (a + 1 < A) out[a + 1] = static_cast<T>(rng::gumbel_f64(w.v[2], w.v[3]));
  }
}

// Samples an action with probability proportional to weights^(1 / temperature);
// temperature <= 0: the argmax (lowest index among ties). Zero weights are never drawn.
template <class T>
PGM_HD std::int64_t sample_one(const T* w, index_t A, double temperature, std::uint64_t seed, index_t b) {
  index_t arg = 0;
  for (index_t a = 1; a < A; ++a)
    if (w[a] > w[arg]) arg = a;
  if (temperature <= 0.0 || !(w[arg] > 0)) return arg;
  const double lmax = ::log(static_cast<double>(w[arg]));
  double total = 0;
  for (index_t a = 0; a < A; ++a)
    if (w[a] > 0) total += ::exp((::log(static_cast<double>(w[a])) - lmax) / temperature);
  const rng::u32x4 r = rng::block(seed, stream_of(kActionStream, b), 0);
  const double u = rng::uniform_f64(r.v[0], r.v[1]) * total;
  double acc = 0;
  index_t last = arg;
  for (index_t a = 0; a < A; ++a) {
    if (!(w[a] > 0)) continue;
    acc += ::exp((::log(static_cast<double>(w[a])) - lmax) / temperature);
    last = a;
    if (u < acc) return a;
  }
  return last;
}

// ----------------------------------------------------------------------------- CPU launchers
template <class T>
void select_cpu(const Batch<T>& t, index_t B, const Params& p, i32* node, i32* action) {
  // One call per simulation on the callback path. From 128 trees (~0.5 us each) the loop pays
  // for waking a worker (~10 us on the VM); a worker that cannot run does not hold it up (the
  // pool's caller takes its chunks). Measured: the W5 Gumbel callback row 17.4 -> 15 ms with
  // this and expand's threshold lowered from B >= 1024 and B * A > 65536.
  parallel_for(B, share_chunk(B), B >= 128, [&](index_t b) { select_one(tree_at(t, b), p, node + b, action + b); });
}

template <class T>
void expand_cpu(const Batch<T>& t, index_t B, const i32* node, const i32* action, const T* reward, const T* discount,
                const T* logits, const T* value, const u8* invalid, const std::int64_t* state, i32* out) {
  const index_t A = t.A;
  parallel_for(B, share_chunk(B), B * A >= 2048, [&](index_t b) {
    TreeRef<T> r = tree_at(t, b);
    out[b] = expand_one(r, node[b], action[b], reward[b], discount[b], logits + b * A, value[b],
                        invalid ? invalid + b * A : nullptr, false, state[b]);
  });
}

template <class T>
void backup_cpu(const Batch<T>& t, index_t B, const i32* node) {
  parallel_for(B, share_chunk(B), B > 4096, [&](index_t b) {
    TreeRef<T> r = tree_at(t, b);
    if (node[b] >= 0 && node[b] < r.num_nodes[0]) backup_one(r, node[b]);
  });
}

// The callback path's simulation, the native part in one pass per tree (the tree stays in this
// core's cache between its expansion, backup and next descent; one parallel loop, not three):
// expand the edge (node, action) chosen by the previous selection with the recurrent_fn's
// outputs for it, back the new leaf up, then, if next_node is given, select the next edge.
// A descent cut by max_depth at an existing child re-evaluates it (kReevaluate). The outputs
// are checked first, and with a bad one no tree changes: bad_outputs bit 0 = prior_logits holds
// NaN or +inf (-inf marks an invalid action), bits 1, 2, 3 = reward, discount, value hold NaN
// or infinity. leaf[b] is expand_one's result (an error code leaves tree b unchanged);
// `failed` counts those trees.
struct StepResult {
  int bad_outputs = 0;
  index_t failed = 0;
};

// The callback path's model states as raw rows of row_bytes bytes (any plain dtype and trailing
// shape): `tree` holds B x N rows (tree b's node n at b * N + n), `next` the recurrent_fn's B
// next_embedding rows, stored at each tree's new leaf, and `gathered` receives the B rows of
// the nodes selected next (the next recurrent_fn call's input). Null `tree`: none kept.
struct EmbeddingRows {
  unsigned char* tree = nullptr;
  const unsigned char* next = nullptr;
  unsigned char* gathered = nullptr;
  index_t N = 0, row_bytes = 0;
};

template <class T>
int check_outputs(index_t B, index_t A, const T* reward, const T* discount, const T* logits, const T* value) {
  bool bad_logits = false, bad[3] = {false, false, false};
  for (index_t i = 0; i < B * A; ++i) bad_logits |= std::isnan(logits[i]) || logits[i] == -neg_inf<T>();
  const T* rows[3] = {reward, discount, value};
  for (int k = 0; k < 3; ++k)
    for (index_t b = 0; b < B; ++b) bad[k] |= !std::isfinite(rows[k][b]);
  return (bad_logits ? 1 : 0) | (bad[0] ? 2 : 0) | (bad[1] ? 4 : 0) | (bad[2] ? 8 : 0);
}

template <class T>
StepResult step_cpu(const Batch<T>& t, index_t B, const Params& p, const i32* node, const i32* action, const T* reward,
                    const T* discount, const T* logits, const T* value, const u8* invalid, i32* leaf, i32* next_node,
                    i32* next_action, const EmbeddingRows& emb = {}) {
  const index_t A = t.A;
  const index_t rb = emb.row_bytes;
  StepResult res;
  res.bad_outputs = check_outputs(B, A, reward, discount, logits, value);
  if (res.bad_outputs) return res;
  std::atomic<index_t> failed{0};
  // Parallel from the select's threshold (the descent is most of a tree's work).
  parallel_for_affine(B, B >= 128, [&](index_t b) {
    TreeRef<T> r = tree_at(t, b);
    const i32 n = node[b];
    i32 a = action[b];
    if (p.max_depth > 0 && a >= 0 && a < A && n >= 0 && n < r.num_nodes[0] && r.children[n * A + a] >= 0)
      a = kReevaluate - a;
    const i32 l = expand_one(r, n, a, reward[b], discount[b], logits + b * A, value[b],
                             invalid ? invalid + b * A : nullptr, false, static_cast<std::int64_t>(r.num_nodes[0]));
    leaf[b] = l;
    if (l >= 0)
      backup_one(r, l);
    else
      failed.fetch_add(1, std::memory_order_relaxed);
    // The new leaf's state (a tree without an edge, action < 0, or a failed expansion keeps its own).
    if (emb.tree && emb.next && action[b] >= 0 && l >= 0)
      std::memcpy(emb.tree + (b * emb.N + l) * rb, emb.next + b * rb, static_cast<std::size_t>(rb));
    if (next_node) {
      select_one(r, p, next_node + b, next_action + b);
      if (emb.tree && emb.gathered) {
        const index_t n_next = next_node[b] < 0 ? next_node[b] + emb.N : next_node[b];  // NumPy's indexing
        std::memcpy(emb.gathered + b * rb, emb.tree + (b * emb.N + n_next) * rb, static_cast<std::size_t>(rb));
      }
    }
  });
  res.failed = failed.load();
  return res;
}

// Each tree runs its simulations in slices of kSimSlice with a Stop::poll in between, so a
// search can be interrupted; an interrupted tree holds whole simulations only (consistent).
template <class T>
void search_tabular_cpu(const Batch<T>& t, index_t B, const Params& p, index_t num_simulations,
                        const std::int64_t* next_state, const T* reward, const T* discount, const T* logits,
                        const T* prior, const T* value, const u8* invalid, const Transitions& tr,
                        Stop& stop = Stop::never()) {
  constexpr index_t kSimSlice = 64;
  auto one = [&](index_t b) {
    TreeRef<T> r = tree_at(t, b);
    for (index_t s0 = 0; s0 < num_simulations; s0 += kSimSlice) {
      const index_t s1 = num_simulations - s0 > kSimSlice ? s0 + kSimSlice : num_simulations;
      search_tabular_one(r, p, s1, next_state, reward, discount, logits, prior, value, invalid, tr, b, s0);
      if (stop.poll(static_cast<double>(s1 - s0) * 8 * t.A)) return;
    }
  };
  // One tree per chunk; after a stop no further tree starts, and the calling thread keeps
  // polling the Stop while the others finish theirs. (A lone tree runs on the calling thread.)
  parallel_chunks(
      B, 1, B > 1,
      [&](index_t b0, index_t b1, int) {
        for (index_t b = b0; b < b1; ++b) one(b);
      },
      stop);
}

template <class T>
void advance_cpu(const Batch<T>& t, index_t B, const i32* action, i32* new_index, i32* old_index, i32* status) {
  parallel_for(B, share_chunk(B), B >= 256, [&](index_t b) {
    TreeRef<T> r = tree_at(t, b);
    status[b] = advance_one(r, action[b], new_index + b * t.N, old_index + b * t.N);
  });
}

// Noise launchers: row b of the call draws as tree stream0 + b of a larger batch.
template <class T>
void dirichlet_cpu(std::uint64_t seed, std::uint64_t stream0, double alpha, index_t B, index_t A, T* out) {
  const index_t g0 = static_cast<index_t>(stream0);
  parallel_for(B, share_chunk(B), B * A > 16384,
               [&](index_t b) { dirichlet_one(seed, alpha, g0 + b, A, out + b * A); });
}

#if !defined(__CUDACC__)  // sampling.hpp's CPU fill
// gumbel_one's numbers for B trees, drawn by the vectorised sampler (sampling.hpp: the same
// words, element layout and uncontracted transform, so the same bits; 3x faster at A = 16).
template <class T>
void gumbel_cpu(std::uint64_t seed, std::uint64_t stream0, index_t B, index_t A, T* out) {
  const index_t g0 = static_cast<index_t>(stream0);
  parallel_for(B, share_chunk(B), B * A > 65536, [&](index_t b) {
    const std::uint64_t stream = stream_of(kGumbelStream, static_cast<std::uint64_t>(g0 + b));
    constexpr index_t kSlice = 256;
    double buf[kSlice];
    for (index_t a0 = 0; a0 < A; a0 += kSlice) {
      const index_t n = A - a0 < kSlice ? A - a0 : kSlice;
      sampling::fill_range<double>(rng::GUMBEL, seed, stream, static_cast<std::uint64_t>(a0), n, buf);
      for (index_t i = 0; i < n; ++i) out[b * A + a0 + i] = static_cast<T>(buf[i]);
    }
  });
}
#endif

template <class T>
void sample_cpu(const T* w, index_t B, index_t A, const T* temperature, std::uint64_t seed, std::uint64_t stream0,
                std::int64_t* out) {
  const index_t g0 = static_cast<index_t>(stream0);
  parallel_for(B, share_chunk(B), B * A > 65536, [&](index_t b) {
    out[b] = sample_one(w + b * A, A, static_cast<double>(temperature[b]), seed, g0 + b);
  });
}

}  // namespace pygenmod::mcts
