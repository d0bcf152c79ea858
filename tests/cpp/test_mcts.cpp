// The tabular MuZero (PUCT) search against a tree computed by hand.
//
// Model: root state 0 with two actions (prior 1/2 each, value 0); action 0 leads to terminal
// state 1 with reward 1, action 1 to terminal state 2 with reward 0 (discount 1, terminal
// values 0). With pb_c_init 1.25, pb_c_base 19652, N root visits and scale(N) =
// sqrt(N) (1.25 + log((N + 19653) / 19652)), PUCT scores (Q min-max normalised over the root
// value and its visited children; unvisited children score scale * prior):
//   sim 1: N = 1, no child: both 0.625, tie -> action 0 (lowest index): expand 1, backup 1.
//   sims 2-4: N = 2, 3, 4: a0 = 1 + scale/2/(visits+1) = 1.442, 1.361, 1.313 >
//             a1 = scale/2 = 0.884, 1.083, 1.250: a0 again (terminal: re-evaluated, G = 1).
//   sim 5: N = 5: a0 = 1 + 2.7959/2/5 = 1.280 < a1 = 1.398: expand action 1 (G = 0).
//   sim 6: N = 6, Q = (1, 0): a0 = 1 + 3.0627/2/5 = 1.306 > a1 = 0 + 3.0627/2/2 = 0.766: a0.
// After 6 simulations: child visits (5, 1), root visits 7, root value sum 5, 3 nodes.
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "check.hpp"
#include "pygenmod/mcts_tree.hpp"

namespace mcts = pygenmod::mcts;

template <class T>
void hand_tree() {
  const int S = 3, A = 2;
  const T inf = std::numeric_limits<T>::infinity();
  const std::vector<std::int64_t> next_state = {1, 2, 1, 2, 2, 2};
  const std::vector<T> reward = {1, 0, 0, 0, 0, 0}, discount(S * A, T(1));
  const std::vector<T> logits = {0, 0, -inf, -inf, -inf, -inf}, prior = {T(0.5), T(0.5), 0, 0, 0, 0};
  const std::vector<std::uint8_t> invalid = {0, 0, 1, 1, 1, 1};
  const std::vector<T> value = {0, 0, 0};
  const std::vector<std::int64_t> roots = {0, 0, 0};  // three identical trees (OpenMP over trees)
  const int B = 3, sims = 6;
  mcts::TreeStorage<T> t(B, A, sims + 1);
  t.init_roots_tabular(roots.data(), logits.data(), prior.data(), invalid.data(), value.data());
  mcts::search_tabular_cpu(t.batch(), B, mcts::puct_params(), sims, next_state.data(), reward.data(), discount.data(),
                           logits.data(), prior.data(), value.data(), invalid.data(), mcts::Transitions{});
  std::vector<std::int32_t> counts(B * A);
  std::vector<T> v(B);
  t.root_stats(counts.data(), v.data());
  for (int b = 0; b < B; ++b) {
    CHECK(counts[b * A] == 5);
    CHECK(counts[b * A + 1] == 1);
    CHECK(t.num_nodes[b] == 3);
    CHECK(t.visits[b * t.N] == 7);
    CHECK_NEAR(double(t.value_sum[b * t.N]), 5.0, 1e-6);
    CHECK_NEAR(double(v[b]), 5.0 / 7.0, 1e-6);
    // node 1: action 0's child (state 1, expanded first); node 2: action 1's (state 2)
    CHECK(t.children[b * t.N * A + 0] == 1 && t.children[b * t.N * A + 1] == 2);
    CHECK(t.state[b * t.N + 1] == 1 && t.state[b * t.N + 2] == 2);
    CHECK(t.parent[b * t.N + 1] == 0 && t.parent[b * t.N + 2] == 0);
    CHECK_NEAR(double(t.reward[b * t.N + 1]), 1.0, 0.0);
  }
}

int main() {
  hand_tree<double>();
  hand_tree<float>();
  return check::finish("test_mcts");
}
