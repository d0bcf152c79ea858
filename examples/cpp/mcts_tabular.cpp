// A batched MuZero (PUCT) search on a tabular model: a random deterministic model with S
// states and A actions, one tree per root state, the whole search in C++ (OpenMP over trees).
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "pygenmod/mcts_tree.hpp"
#include "pygenmod/random.hpp"

namespace mcts = pygenmod::mcts;
namespace rng = pygenmod::rng;

int main() {
  const int S = 64, A = 8, B = 256, sims = 200;
  // The model, (S, A) arrays: next state, reward, discount, prior logits (shifted by their max)
  // and their softmax, the invalid-action mask; value (S,). Random numbers from pygenmod's Philox.
  std::vector<std::int64_t> next_state(S * A);
  std::vector<double> reward(S * A), discount(S * A, 0.99), logits(S * A), prior(S * A), value(S);
  std::vector<std::uint8_t> invalid(S * A, 0);
  for (int s = 0; s < S; ++s) {
    double mx = -INFINITY, z = 0;
    for (int a = 0; a < A; ++a) {
      const rng::u32x4 w = rng::block(42, s, a);
      next_state[s * A + a] = w.v[0] % S;
      reward[s * A + a] = rng::uniform_f64(w.v[1], w.v[2]);
      logits[s * A + a] = 2 * rng::uniform_f64(w.v[3], w.v[0]);
      mx = std::fmax(mx, logits[s * A + a]);
    }
    for (int a = 0; a < A; ++a) z += std::exp(logits[s * A + a] -= mx);
    for (int a = 0; a < A; ++a) prior[s * A + a] = std::exp(logits[s * A + a]) / z;
    value[s] = rng::uniform_f64(rng::block(43, s, 0).v[0], 0);
  }
  std::vector<std::int64_t> roots(B);
  for (int b = 0; b < B; ++b) roots[b] = b % S;

  mcts::TreeStorage<double> trees(B, A, sims + 1);  // capacity: one node per simulation + the root
  trees.init_roots_tabular(roots.data(), logits.data(), prior.data(), invalid.data(), value.data());
  const auto t0 = std::chrono::steady_clock::now();
  mcts::search_tabular_cpu(trees.batch(), B, mcts::puct_params(), sims, next_state.data(), reward.data(),
                           discount.data(), logits.data(), prior.data(), value.data(), invalid.data(),
                           mcts::Transitions{});
  const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::vector<std::int32_t> counts(B * A);
  std::vector<double> root_value(B);
  trees.root_stats(counts.data(), root_value.data());
  int total = 0;
  for (int a = 0; a < A; ++a) total += counts[a];
  std::printf("MCTS: %d trees x %d simulations in %.2f ms (%.2f us per simulation)\n", B, sims, 1e3 * sec,
              1e6 * sec / (double(B) * sims));
  std::printf("tree 0 (root state %lld): visits", static_cast<long long>(roots[0]));
  for (int a = 0; a < A; ++a) std::printf(" %d", counts[a]);
  std::printf(", value %.4f\n", root_value[0]);
  return total == sims ? 0 : 1;
}
