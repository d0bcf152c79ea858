// Owning storage for a batch of MCTS trees (the struct of arrays of mcts.hpp in std::vectors)
// and the root set-up of a search on a tabular model: what the Python layer does before
// calling search_tabular_cpu, for C++ users and the C API. No Python here.
#pragma once

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <vector>

#include "pygenmod/mcts.hpp"

namespace pygenmod::mcts {

template <class T>
struct TreeStorage {
  index_t B = 0, N = 0, A = 0;
  std::vector<i32> visits, parent, action, children, num_nodes;
  std::vector<T> value_sum, raw_value, reward, discount, logits, prior, gumbel, qbounds;
  std::vector<u8> invalid;
  std::vector<std::int64_t> state;

  // B empty trees of capacity N (nodes) over A actions.
  TreeStorage(index_t B_, index_t A_, index_t N_)
      : B(B_),
        N(N_),
        A(A_),
        visits(B * N, 0),
        parent(B * N, -1),
        action(B * N, -1),
        children(B * N * A, -1),
        num_nodes(B, 0),
        value_sum(B * N, T(0)),
        raw_value(B * N, T(0)),
        reward(B * N, T(0)),
        discount(B * N, T(0)),
        logits(B * N * A, T(0)),
        prior(B * N * A, T(0)),
        gumbel(B * A, T(0)),
        qbounds(2 * B, T(0)),
        invalid(B * N * A, 0),
        state(B * N, 0) {}

  Batch<T> batch() {
    return Batch<T>{N,
                    A,
                    visits.data(),
                    value_sum.data(),
                    raw_value.data(),
                    reward.data(),
                    discount.data(),
                    parent.data(),
                    action.data(),
                    children.data(),
                    logits.data(),
                    prior.data(),
                    invalid.data(),
                    state.data(),
                    num_nodes.data(),
                    gumbel.data(),
                    qbounds.data()};
  }

  // Tree b gets a single root: state root[b] of the tabular model (logits, prior, invalid
  // (S, A) rows as in search_tabular_one; value (S,)), no Gumbel noise, empty Q bounds.
  void init_roots_tabular(const std::int64_t* root, const T* model_logits, const T* model_prior,
                          const u8* model_invalid, const T* model_value) {
    for (index_t b = 0; b < B; ++b) {
      const std::int64_t s = root[b];
      const index_t r = b * N, ra = b * N * A;
      visits[r] = 1;
      value_sum[r] = raw_value[r] = model_value[s];
      reward[r] = 0;
      discount[r] = 1;
      state[r] = s;
      num_nodes[b] = 1;
      qbounds[2 * b] = std::numeric_limits<T>::infinity();
      qbounds[2 * b + 1] = -std::numeric_limits<T>::infinity();
      for (index_t a = 0; a < A; ++a) {
        logits[ra + a] = model_logits[s * A + a];
        prior[ra + a] = model_prior[s * A + a];
        invalid[ra + a] = model_invalid[s * A + a];
        gumbel[b * A + a] = 0;
      }
    }
  }

  // Visits of the root's children (B, A) and the root's mean value (B,).
  void root_stats(i32* counts, T* value) const {
    for (index_t b = 0; b < B; ++b) {
      for (index_t a = 0; a < A; ++a) {
        const i32 c = children[b * N * A + a];
        counts[b * A + a] = c >= 0 ? visits[b * N + c] : 0;
      }
      value[b] = value_sum[b * N] / static_cast<T>(visits[b * N] > 0 ? visits[b * N] : 1);
    }
  }
};

// PUCT (MuZero) parameters for search_tabular_cpu: mctx's defaults unless given.
inline Params puct_params(double pb_c_init = 1.25, double pb_c_base = 19652.0) {
  Params p;
  p.policy = 0;
  p.pb_c_init = pb_c_init;
  p.pb_c_base = pb_c_base;
  return p;
}

}  // namespace pygenmod::mcts
