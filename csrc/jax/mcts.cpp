// XLA FFI handlers (CPU) of the tabular MCTS search, for pygenmod.jax.muzero_policy /
// gumbel_muzero_policy. The tree is scratch allocated here (new_tree + _fill_root of
// pygenmod/mcts.py: fills and copies, no math); the search is mcts::search_tabular_cpu, the kernel
// of the pybind binding. Noise and action draws are the binding's launchers too.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "args.hpp"
#include "pygenmod/mcts.hpp"
#include "pygenmod/mcts_tree.hpp"

using namespace pygenmod;
using namespace pygenmod::jaxffi;
using mcts::i32;
using mcts::u8;

namespace {

// An int32 (JAX's default) or int64 (x64) integer operand as int64 values.
std::vector<std::int64_t> ints(const Buf& b, const char* name, std::initializer_list<i64> shape) {
  std::vector<std::int64_t> v(b.element_count());
  if (b.element_type() == ffi::DataType::S64) {
    const auto* p = in<std::int64_t>(b, name, shape);
    std::copy(p, p + v.size(), v.begin());
  } else {
    const auto* p = in<std::int32_t>(b, name, shape);
    std::copy(p, p + v.size(), v.begin());
  }
  return v;
}

// root logits, prior, invalid (B, A), value (B,), state (B,), gumbel (B, A), table (M + 1, L) int32,
// model next_state, reward, discount, logits, prior (S, A), value (S,), invalid (S, A), cdf (S, A, S)
// float64 or 0 elements (deterministic), seed words
// -> root child visits (B, A) int32, root child Q (B, A) (0 unexpanded), root value (B,), visit
// distribution (B, A) (uniform over valid actions without visits; as _visit_output: in double,
// since XLA's float32 division is not correctly rounded)
ffi::Error search(Buf rl, Buf rp, Buf ri, Buf rv, Buf rs, Buf gum, Buf table, Buf ns, Buf mr, Buf md, Buf ml, Buf mp,
                  Buf mv, Buf mi, Buf cdf, Buf key, Out counts, Out q, Out value, Out weights,
                  ffi::Span<const double> params, i64 num_simulations, i64 capacity, std::uint64_t stream) {
  return guarded([&] {
    dispatch_float(rl, "root logits", [&](auto tag) {
      using T = decltype(tag);
      const i64 B = dim(rl, 0, 2, "root logits"), A = rl.dimensions()[1];
      const i64 S = dim(ml, 0, 2, "model logits");
      if (num_simulations < 0) throw std::invalid_argument("num_simulations: must be >= 0");
      if (capacity < num_simulations + 1) throw std::invalid_argument("capacity: must be >= num_simulations + 1");
      if (params.size() != mcts::kNumParams) throw std::invalid_argument("params: wrong length");
      const i32* tb = in<i32>(table, "table", {-1, -1});
      const auto p = mcts::make_params(params.begin(), tb, static_cast<int>(table.dimensions()[1]));
      if (p.max_considered < 0 || table.dimensions()[0] < p.max_considered + 1)
        throw std::invalid_argument("table: expected shape (max_num_considered_actions + 1, L >= 1)");
      const T *lg = in<T>(rl, "root logits", {B, A}), *pr = in<T>(rp, "root prior", {B, A});
      const u8* iv = in<u8>(ri, "root invalid", {B, A});
      const T *v0 = in<T>(rv, "root value", {B}), *g = in<T>(gum, "gumbel", {B, A});
      const auto st = ints(rs, "root", {B});
      const auto next = ints(ns, "next_state", {S, A});
      for (i64 b = 0; b < B; ++b) {
        if (st[b] < 0 || st[b] >= S)
          throw std::invalid_argument("root: root states must lie in [0, " + std::to_string(S) + ")");
        if (std::all_of(iv + b * A, iv + (b + 1) * A, [](u8 x) { return x != 0; }))
          throw std::invalid_argument("root: a root state is terminal (all actions are invalid)");
      }
      // new_tree + _fill_root
      mcts::TreeStorage<T> tree(B, A, capacity);  // (B, A, N)
      const i64 N = capacity;
      for (i64 b = 0; b < B; ++b) {
        tree.num_nodes[b] = 1;
        tree.visits[b * N] = 1;
        tree.value_sum[b * N] = tree.raw_value[b * N] = v0[b];
        tree.discount[b * N] = T(1);
        tree.state[b * N] = st[b];
        tree.qbounds[2 * b] = std::numeric_limits<T>::infinity();
        tree.qbounds[2 * b + 1] = -std::numeric_limits<T>::infinity();
        std::copy(lg + b * A, lg + (b + 1) * A, tree.logits.begin() + b * N * A);
        std::copy(pr + b * A, pr + (b + 1) * A, tree.prior.begin() + b * N * A);
        std::copy(iv + b * A, iv + (b + 1) * A, tree.invalid.begin() + b * N * A);
        std::copy(g + b * A, g + (b + 1) * A, tree.gumbel.begin() + b * A);
      }
      mcts::Transitions tr;
      tr.S = S;
      tr.seed = philox_key(key);
      tr.stream0 = stream;
      tr.cdf = opt<double>(cdf, "cdf", {S, A, S});
      if (B > 0 && num_simulations > 0)
        mcts::search_tabular_cpu(tree.batch(), B, p, num_simulations, next.data(), in<T>(mr, "reward", {S, A}),
                                 in<T>(md, "discount", {S, A}), in<T>(ml, "logits", {S, A}), in<T>(mp, "prior", {S, A}),
                                 in<T>(mv, "value", {S}), in<u8>(mi, "invalid", {S, A}), tr);
      // Tree.child_visits(0), Tree.qvalues(0) and the root's mean value, as pygenmod/mcts.py
      i32* c = out<i32>(counts, "visit_counts", {B, A});
      T* qo = out<T>(q, "qvalues", {B, A});
      T* vo = out<T>(value, "value", {B});
      T* wo = out<T>(weights, "action_weights", {B, A});
      for (i64 b = 0; b < B; ++b) {
        const i64 r = b * N;
        for (i64 a = 0; a < A; ++a) {
          const i32 ch = tree.children[r * A + a];
          c[b * A + a] = ch >= 0 ? tree.visits[r + ch] : 0;
          if (ch < 0) {
            qo[b * A + a] = T(0);
            continue;
          }
          const T nv = tree.value_sum[r + ch] / static_cast<T>(std::max(tree.visits[r + ch], 1));
          qo[b * A + a] = tree.reward[r + ch] + tree.discount[r + ch] * nv;
        }
        vo[b] = tree.value_sum[r] / static_cast<T>(std::max(tree.visits[r], 1));
        std::int64_t total = 0, valid = 0;
        for (i64 a = 0; a < A; ++a) {
          total += c[b * A + a];
          valid += iv[b * A + a] == 0;
        }
        for (i64 a = 0; a < A; ++a)
          wo[b * A + a] =
              static_cast<T>(total > 0 ? double(c[b * A + a]) / double(total)
                                       : double(iv[b * A + a] == 0) / double(std::max<std::int64_t>(valid, 1)));
      }
      if (std::any_of(tree.value_sum.begin(), tree.value_sum.end(), [](T x) { return !(x - x == T(0)); }))
        throw std::invalid_argument("value: the search's returns overflowed (rewards and values too large to sum)");
    });
  });
}

// seed words -> noise (B, A): kind 0 Dirichlet(alpha), 1 Gumbel; row b draws as tree stream + b.
ffi::Error noise(Buf key, Out o, i64 kind, double alpha, std::uint64_t stream) {
  return guarded([&] {
    dispatch_float(*o, "noise", [&](auto tag) {
      using T = decltype(tag);
      const i64 B = o->dimensions()[0], A = o->dimensions()[1];
      T* p = out<T>(o, "noise", {B, A});
      if (kind == 0)
        mcts::dirichlet_cpu(philox_key(key), stream, alpha, B, A, p);
      else
        mcts::gumbel_cpu(philox_key(key), stream, B, A, p);
    });
  });
}

// weights (B, A), temperature (B,), seed words -> action (B,) int32/int64
ffi::Error sample(Buf w, Buf temp, Buf key, Out action, std::uint64_t stream) {
  return guarded([&] {
    dispatch_float(w, "weights", [&](auto tag) {
      using T = decltype(tag);
      const i64 B = dim(w, 0, 2, "weights"), A = w.dimensions()[1];
      std::vector<std::int64_t> a(B);
      mcts::sample_cpu(in<T>(w, "weights", {B, A}), B, A, in<T>(temp, "temperature", {B}), philox_key(key), stream,
                       a.data());
      if (action->element_type() == ffi::DataType::S64)
        std::copy(a.begin(), a.end(), out<i64>(action, "action", {B}));
      else
        std::copy(a.begin(), a.end(), out<std::int32_t>(action, "action", {B}));
    });
  });
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(PgmMctsSearchTabular, search,
                              (bind<16, 4>(ffi::Ffi::Bind())
                                   .Attr<ffi::Span<const double>>("params")
                                   .Attr<i64>("num_simulations")
                                   .Attr<i64>("capacity")
                                   .Attr<std::uint64_t>("stream")));
XLA_FFI_DEFINE_HANDLER_SYMBOL(
    PgmMctsNoise, noise,
    (bind<1, 1>(ffi::Ffi::Bind()).Attr<i64>("kind").Attr<double>("alpha").Attr<std::uint64_t>("stream")));
XLA_FFI_DEFINE_HANDLER_SYMBOL(PgmMctsSample, sample, (bind<3, 1>(ffi::Ffi::Bind()).Attr<std::uint64_t>("stream")));
