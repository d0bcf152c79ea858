// The lane-split selection of mcts_lanes.hpp (the warp-per-tree CUDA path, simulated here with
// L host lanes) against the serial loops of mcts.hpp: the argmax with ties, NaN and infinities,
// the ordered folds, and whole searches (every policy, A up to 225): the same child at every
// node and bitwise the same trees.
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "check.hpp"
#include "pygenmod/mcts_lanes.hpp"
#include "pygenmod/mcts_tree.hpp"

namespace mcts = pygenmod::mcts;
using mcts::i32;
using mcts::u8;
using pygenmod::index_t;

template <class T>
bool same_bits(T x, T y) {
  return std::memcmp(&x, &y, sizeof(T)) == 0;
}

// Few levels (many ties), NaN, +-inf and signed zeros.
template <class T>
T draw(std::mt19937& gen, int levels) {
  const T inf = std::numeric_limits<T>::infinity();
  const int l = std::uniform_int_distribution<int>(0, levels + 4)(gen);
  switch (l) {
    case 0:
      return std::numeric_limits<T>::quiet_NaN();
    case 1:
      return -inf;
    case 2:
      return inf;
    case 3:
      return T(-0.0);
    case 4:
      return T(0.0);
    default:
      return T(l - 5) * T(0.25) - T(1);
  }
}

template <class T, int L>
void argmax_agrees(std::mt19937& gen, index_t A, int levels, double p_cand, bool first_nan) {
  std::vector<T> s(A);
  std::vector<u8> cand(A);
  std::bernoulli_distribution pick(p_cand);
  for (index_t a = 0; a < A; ++a) {
    s[a] = draw<T>(gen, levels);
    cand[a] = pick(gen);
  }
  if (first_nan)
    for (index_t a = 0; a < A; ++a)
      if (cand[a]) {
        s[a] = std::numeric_limits<T>::quiet_NaN();
        break;
      }
  i32 best = -1;  // the serial loop of mcts.hpp's selections
  T best_s = pygenmod::neg_inf<T>();
  for (index_t a = 0; a < A; ++a) {
    if (!cand[a]) continue;
    if (best < 0 || s[a] > best_s) best = static_cast<i32>(a), best_s = s[a];
  }
  const i32 got = mcts::HostLanes<L>{}.template argmax<T>(A, [&](index_t a, T& v) {
    v = s[a];
    return cand[a] != 0;
  });
  CHECK(got == best);
}

template <class T, int L>
void folds_agree(std::mt19937& gen, index_t A, int levels) {
  std::vector<T> x(A);
  std::vector<u8> inc(A);
  std::bernoulli_distribution pick(0.7);
  for (index_t a = 0; a < A; ++a) x[a] = draw<T>(gen, levels), inc[a] = pick(gen);
  const T init = draw<T>(gen, levels);
  const index_t begin = A > 1 ? 1 : 0;
  T lo = init, hi = init, sum = 0;
  for (index_t a = begin; a < A; ++a)
    if (inc[a]) lo = mcts::m_min(lo, x[a]), hi = mcts::m_max(hi, x[a]), sum += x[a];
  const mcts::HostLanes<L> ln;
  const auto mm = ln.fold(
      begin, A, mcts::MinMax<T>{init, init},
      [&](index_t a, mcts::MinMax<T>& v) {
        v = mcts::MinMax<T>{x[a], x[a]};
        return inc[a] != 0;
      },
      mcts::fold_minmax<T>);
  const T s2 = ln.fold(
      begin, A, T(0),
      [&](index_t a, T& v) {
        v = x[a];
        return inc[a] != 0;
      },
      [](T acc, T v) { return acc + v; });
  CHECK(same_bits(mm.lo, lo));
  CHECK(same_bits(mm.hi, hi));
  CHECK(same_bits(s2, sum));
  i32 isum = 0, imax = 0;
  for (index_t a = 0; a < A; ++a) isum += inc[a], imax = inc[a] && i32(a) > imax ? i32(a) : imax;
  CHECK(ln.reduce(A, 0, [&](index_t a) { return i32(inc[a]); }, mcts::add_i32) == isum);
  CHECK(ln.reduce(A, 0, [&](index_t a) { return inc[a] ? i32(a) : 0; }, mcts::max_i32) == imax);
}

// A random tabular model with few distinct values (ties everywhere) and terminal states.
template <class T>
struct Model {
  index_t S, A;
  std::vector<std::int64_t> ns;
  std::vector<T> R, D, L, P, V;
  std::vector<u8> inv;
  std::vector<double> cdf;
  Model(std::mt19937& gen, index_t S_, index_t A_) : S(S_), A(A_) {
    ns.resize(S * A), R.resize(S * A), D.resize(S * A), L.resize(S * A), P.resize(S * A), V.resize(S);
    inv.resize(S * A), cdf.resize(S * A * S);
    std::uniform_int_distribution<int> st(0, int(S) - 1), lev(0, 2);
    std::bernoulli_distribution bad(0.2), term(0.1), flip(0.3);
    for (index_t s = 0; s < S; ++s) {
      const bool terminal = s > 0 && term(gen);
      V[s] = terminal ? T(0) : T(lev(gen)) * T(0.5);
      T m = pygenmod::neg_inf<T>();
      for (index_t a = 0; a < A; ++a) {
        const index_t i = s * A + a;
        ns[i] = st(gen);
        R[i] = T(lev(gen)) * T(0.5);
        D[i] = flip(gen) ? T(-1) : T(0.5);  // negative: the player changed
        inv[i] = terminal || (a > 0 && bad(gen));
        L[i] = inv[i] ? pygenmod::neg_inf<T>() : T(lev(gen)) - T(1);
        if (!inv[i]) m = mcts::m_max(m, L[i]);
        double c = 0;  // transitions: two states, 0.5 each
        const index_t s1 = static_cast<index_t>(ns[i]), s2 = (s1 + 1) % S;
        for (index_t k = 0; k < S; ++k) {
          c += (k == s1 || k == s2) ? (s1 == s2 ? 1.0 : 0.5) : 0.0;
          cdf[i * S + k] = k + 1 == S ? 1.0 : c;
        }
      }
      T z = 0;
      for (index_t a = 0; a < A; ++a) {
        const index_t i = s * A + a;
        if (!inv[i])
          L[i] -= m, P[i] = mcts::m_exp(L[i]), z += P[i];
        else
          P[i] = 0;
      }
      for (index_t a = 0; a < A; ++a) P[s * A + a] = z > 0 ? P[s * A + a] / z : T(0);
    }
  }
};

template <class T>
std::vector<T> flat(const mcts::TreeStorage<T>& t) {  // every float field, for bitwise comparison
  std::vector<T> v;
  for (const auto* f : {&t.value_sum, &t.raw_value, &t.reward, &t.discount, &t.logits, &t.prior, &t.qbounds})
    v.insert(v.end(), f->begin(), f->end());
  return v;
}

template <class T>
bool same_trees(const mcts::TreeStorage<T>& x, const mcts::TreeStorage<T>& y) {
  const auto fx = flat(x), fy = flat(y);
  return x.visits == y.visits && x.parent == y.parent && x.action == y.action && x.children == y.children &&
         x.num_nodes == y.num_nodes && x.state == y.state && x.invalid == y.invalid &&
         std::memcmp(fx.data(), fy.data(), fx.size() * sizeof(T)) == 0;
}

template <class T, int L>
void every_node_agrees(mcts::TreeStorage<T>& t, const mcts::Params& p) {
  const mcts::Batch<T> bt = t.batch();
  const mcts::HostLanes<L> ln;
  for (index_t b = 0; b < t.B; ++b) {
    const mcts::TreeRef<T> r = mcts::tree_at(bt, b);
    for (i32 n = 0; n < r.num_nodes[0]; ++n) {
      if (r.state[n] == mcts::kChanceState || r.visits[n] <= 0) continue;
      CHECK(mcts::select_action_lanes(ln, r, n, p) == mcts::select_action(r, n, p));
    }
    i32 n1, a1, n2, a2;
    mcts::select_one(r, p, &n1, &a1);
    mcts::select_one_lanes(ln, r, p, &n2, &a2);
    CHECK(n1 == n2 && a1 == a2);
  }
}

template <class T>
void searches_agree(std::mt19937& gen, index_t A, int policy, int variant) {
  const index_t S = 12, B = 3, sims = 60;
  Model<T> m(gen, S, A);
  mcts::Params p;
  p.policy = policy;
  p.q_tree = variant & 1;
  p.use_mixed_value = !(variant & 2);
  p.rescale_values = !(variant & 4);
  p.max_depth = variant & 8 ? 3 : 0;
  p.rollout_depth = policy == mcts::kPolicyUct && (variant & 2) ? 4 : 0;
  p.max_considered = 4;
  std::vector<i32> table((p.max_considered + 1) * (sims + 1));
  for (int k = 0; k <= p.max_considered; ++k)
    for (index_t j = 0; j <= sims; ++j) table[k * (sims + 1) + j] = static_cast<i32>(j / (k + 1));
  p.table = table.data();
  p.table_len = static_cast<int>(sims + 1);
  mcts::Transitions tr;
  if (variant & 16) tr.cdf = m.cdf.data(), tr.S = S, tr.seed = 5;
  p.chance = (variant & 32) && tr.cdf ? 1 : 0;
  std::vector<std::int64_t> roots(B);
  for (index_t b = 0; b < B; ++b) roots[b] = static_cast<std::int64_t>(b % 2);  // never terminal
  const index_t N = 2 * sims + 2;
  mcts::TreeStorage<T> x(B, A, N), y(B, A, N);
  for (auto* t : {&x, &y}) {
    t->init_roots_tabular(roots.data(), m.L.data(), m.P.data(), m.inv.data(), m.V.data());
    for (index_t i = 0; i < B * A; ++i) t->gumbel[i] = T(std::uniform_int_distribution<int>(0, 2)(gen)) * T(0.5);
    if (policy == mcts::kPolicyGumbel) y.gumbel = x.gumbel;
  }
  y.gumbel = x.gumbel;
  const mcts::LanesExec<mcts::HostLanes<32>> ex{};
  for (index_t b = 0; b < B; ++b) {
    auto rx = mcts::tree_at(x.batch(), b), ry = mcts::tree_at(y.batch(), b);
    mcts::search_tabular_one(rx, p, sims, m.ns.data(), m.R.data(), m.D.data(), m.L.data(), m.P.data(), m.V.data(),
                             m.inv.data(), tr, b);
    mcts::search_tabular_one(ry, p, sims, m.ns.data(), m.R.data(), m.D.data(), m.L.data(), m.P.data(), m.V.data(),
                             m.inv.data(), tr, b, 0, ex);
  }
  CHECK(same_trees(x, y));
  every_node_agrees<T, 1>(x, p);
  every_node_agrees<T, 4>(x, p);
  every_node_agrees<T, 32>(x, p);
  // NaN and infinite values in the tree (a model that returned them): the same child still.
  std::bernoulli_distribution spoil(0.15);
  for (index_t i = 0; i < B * N; ++i)
    if (spoil(gen)) x.value_sum[i] = draw<T>(gen, 1);
  every_node_agrees<T, 4>(x, p);
  every_node_agrees<T, 32>(x, p);
  // ... and masks that no longer match the tree (an expanded child made invalid), odd logits.
  for (index_t i = 0; i < B * N * A; ++i) {
    if (spoil(gen)) x.invalid[i] = !x.invalid[i];
    if (spoil(gen)) x.logits[i] = draw<T>(gen, 2);
  }
  every_node_agrees<T, 4>(x, p);
  every_node_agrees<T, 32>(x, p);
}

int main() {
  std::mt19937 gen(12);
  for (index_t A : {1, 2, 31, 32, 33, 225, 1000})
    for (int levels : {1, 3, 50})
      for (double pc : {0.0, 0.1, 0.9, 1.0})
        for (int rep = 0; rep < 4; ++rep) {
          const bool fn = rep == 3;
          argmax_agrees<float, 1>(gen, A, levels, pc, fn);
          argmax_agrees<float, 2>(gen, A, levels, pc, fn);
          argmax_agrees<float, 32>(gen, A, levels, pc, fn);
          argmax_agrees<double, 4>(gen, A, levels, pc, fn);
          argmax_agrees<double, 32>(gen, A, levels, pc, fn);
          folds_agree<float, 32>(gen, A, levels);
          folds_agree<double, 8>(gen, A, levels);
        }
  for (index_t A : {2, 5, 31, 32, 33, 225})
    for (int policy : {mcts::kPolicyMuzero, mcts::kPolicyGumbel, mcts::kPolicyUct})
      for (int variant : {0, 1, 2, 4, 7, 8, 16, 48, 15}) {
        searches_agree<float>(gen, A, policy, variant);
        searches_agree<double>(gen, A, policy, variant);
      }
  // The mapping rule: a warp per tree below 128 trees per SM (132 SMs: B < 16896).
  CHECK(mcts::use_warp_per_tree(1, 132) && mcts::use_warp_per_tree(16895, 132));
  CHECK(!mcts::use_warp_per_tree(16896, 132) && !mcts::use_warp_per_tree(1 << 20, 132));
  CHECK(mcts::use_warp_per_tree(127, 0) && !mcts::use_warp_per_tree(128, 0));
  CHECK(!mcts::use_warp_mapping(mcts::kMapThread, 1, 132) && mcts::use_warp_mapping(mcts::kMapWarp, 1 << 20, 132));
  CHECK(mcts::use_warp_mapping(mcts::kMapAuto, 3, 132));
  return check::finish("test_mcts_lanes");
}
