// Value iteration on Russell & Norvig's 4x3 gridworld (AIMA ch. 17), with pygenmod's solver.
// Prints the values and the greedy policy as a grid.
#include <cstdint>
#include <cstdio>
#include <vector>

#include "pygenmod/mdp.hpp"

int main() {
  // States: the 11 free cells row by row from the bottom-left (the wall (1, 1) skipped), then
  // an absorbing exit. Actions: up, right, down, left; a move succeeds with probability 0.8
  // and slips to either side with 0.1; every step costs 0.04; (3, 2) pays +1, (3, 1) -1.
  const int S = 12, A = 4, exit_state = 11;
  int index[3][4];
  std::vector<int> col, row;
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 4; ++c) {
      index[r][c] = -1;
      if (r == 1 && c == 1) continue;
      index[r][c] = static_cast<int>(col.size());
      col.push_back(c);
      row.push_back(r);
    }
  std::vector<double> P(S * A * S, 0.0), R(S * A, 0.0);
  const int dc[4] = {0, 1, 0, -1}, dr[4] = {1, 0, -1, 0};
  for (int s = 0; s < exit_state; ++s)
    for (int a = 0; a < A; ++a) {
      const bool plus = col[s] == 3 && row[s] == 2, minus = col[s] == 3 && row[s] == 1;
      if (plus || minus) {
        P[(s * A + a) * S + exit_state] = 1;
        R[s * A + a] = plus ? 1 : -1;
        continue;
      }
      R[s * A + a] = -0.04;
      const int dirs[3] = {a, (a + 1) % 4, (a + 3) % 4};
      const double prob[3] = {0.8, 0.1, 0.1};
      for (int k = 0; k < 3; ++k) {
        int c = col[s] + dc[dirs[k]], r = row[s] + dr[dirs[k]];
        if (c < 0 || c > 3 || r < 0 || r > 2 || index[r][c] < 0) c = col[s], r = row[s];
        P[(s * A + a) * S + index[r][c]] += prob[k];
      }
    }
  for (int a = 0; a < A; ++a) P[(exit_state * A + a) * S + exit_state] = 1;

  // One MDP (B = 1), gamma = 0.999 (close to the textbook's undiscounted problem), stop when the
  // span of a sweep's change is below 1e-12.
  const double gamma = 0.999, thresh = 1e-12;
  pygenmod::mdp::Dense<double> model{P.data(), S, A};
  pygenmod::mdp::SolveOptions opt;
  opt.max_iter = 100000;
  std::vector<double> V(S, 0.0), Q(S * A), residual(1), check(4);
  std::vector<std::int64_t> policy(S), iterations(1), eval_sweeps(1);
  std::uint8_t converged = 0;
  pygenmod::mdp::solve_cpu(model, R.data(), &gamma, &thresh, 1, opt, V.data(), Q.data(), policy.data(),
                           iterations.data(), eval_sweeps.data(), residual.data(), &converged, check.data());
  std::printf("value iteration: %s after %lld sweeps\n", converged ? "converged" : "NOT converged",
              static_cast<long long>(iterations[0]));
  const char* arrow = "^>v<";
  for (int r = 2; r >= 0; --r) {
    for (int c = 0; c < 4; ++c) {
      const int s = index[r][c];
      if (s < 0)
        std::printf("  #####  ");
      else if (c == 3 && r >= 1)
        std::printf(" %+6.3f  ", V[s]);
      else
        std::printf(" %6.3f %c", V[s], arrow[policy[s]]);
    }
    std::printf("\n");
  }
  return converged ? 0 : 1;
}
