// Russell & Norvig's 4x3 gridworld (AIMA, ch. 17), built exactly as pygenmod.mdp.gridworld:
// S = 12 (11 cells, row-major from the bottom-left, the wall (1, 1) skipped, + an absorbing
// exit), A = 4 (up, right, down, left); moves succeed with 0.8 and slip sideways with 0.1
// each; the terminal cells (3, 2) (+1) and (3, 1) (-1) lead to the exit.
#pragma once

#include <utility>
#include <vector>

struct Gridworld {
  static constexpr int S = 12, A = 4, kExit = 11;
  std::vector<double> P = std::vector<double>(S * A * S, 0.0), R = std::vector<double>(S * A, 0.0);
  std::vector<std::pair<int, int>> cells;  // (col, row) of states 0..10

  explicit Gridworld(double step_reward = -0.04, double noise = 0.2) {
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < 4; ++c)
        if (!(c == 1 && r == 1)) cells.emplace_back(c, r);
    const int moves[4][2] = {{0, 1}, {1, 0}, {0, -1}, {-1, 0}};
    for (int s = 0; s < S - 1; ++s) {
      const auto [c, r] = cells[s];
      const bool plus = c == 3 && r == 2, minus = c == 3 && r == 1;
      for (int a = 0; a < A; ++a) {
        if (plus || minus) {
          P[(s * A + a) * S + kExit] = 1.0;
          R[s * A + a] = plus ? 1.0 : -1.0;
          continue;
        }
        R[s * A + a] = step_reward;
        const std::pair<int, double> outcomes[3] = {{a, 1 - noise}, {(a + 1) % 4, noise / 2}, {(a + 3) % 4, noise / 2}};
        for (const auto& [d, p] : outcomes) {
          int nc = c + moves[d][0], nr = r + moves[d][1];
          if (nc < 0 || nc >= 4 || nr < 0 || nr >= 3 || (nc == 1 && nr == 1)) nc = c, nr = r;
          P[(s * A + a) * S + index(nc, nr)] += p;
        }
      }
    }
    for (int a = 0; a < A; ++a) P[(kExit * A + a) * S + kExit] = 1.0;
  }
  int index(int c, int r) const {
    for (int s = 0; s < S - 1; ++s)
      if (cells[s].first == c && cells[s].second == r) return s;
    return -1;
  }
};
