// Bellman sweeps and value iteration on the textbook 4x3 gridworld (gamma = 1): the values and
// the optimal policy of AIMA (Russell & Norvig, Fig. 17.3 and 17.2), on every instruction-set
// path of the dense dot products.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "check.hpp"
#include "gridworld.hpp"
#include "pygenmod/cpu_features.hpp"
#include "pygenmod/mdp.hpp"

namespace mdp = pygenmod::mdp;

// Value iteration by repeated sweeps from V = 0 until V stops changing.
static void iterate(const Gridworld& g, double gamma, std::vector<double>& V, std::vector<std::int64_t>& pi) {
  const mdp::Dense<double> m{g.P.data(), g.S, g.A};
  std::vector<double> Q(g.S * g.A), Vn(g.S);
  V.assign(g.S, 0.0);
  pi.assign(g.S, 0);
  for (int it = 0; it < 10000; ++it) {
    mdp::backup_sweep_cpu<double>(m, g.R.data(), V.data(), &gamma, 1, mdp::kOptimal, nullptr, nullptr, nullptr,
                                  Q.data(), Vn.data(), pi.data());
    double diff = 0;
    for (int s = 0; s < g.S; ++s) diff = std::max(diff, std::fabs(Vn[s] - V[s]));
    V.swap(Vn);
    if (diff < 1e-14) break;
  }
}

int main() {
  const Gridworld g;
  // AIMA Fig. 17.3 (3 decimals), by (col, row) from the bottom-left; policy Fig. 17.2.
  struct Cell {
    int c, r;
    double v;
    int a;
  };
  enum { UP = 0, RIGHT = 1, DOWN = 2, LEFT = 3 };
  const Cell want[] = {{0, 0, 0.705, UP},    {1, 0, 0.655, LEFT}, {2, 0, 0.611, LEFT},  {3, 0, 0.388, LEFT},
                       {0, 1, 0.762, UP},    {2, 1, 0.660, UP},   {0, 2, 0.812, RIGHT}, {1, 2, 0.868, RIGHT},
                       {2, 2, 0.918, RIGHT}, {3, 2, 1.0, -1},     {3, 1, -1.0, -1}};
  const int detected = pygenmod::cpu::detected_isa();
  std::vector<double> V0;
  for (int cap = 0; cap <= detected; ++cap) {
    pygenmod::cpu::set_isa_cap(cap);
    CHECK(pygenmod::cpu::isa() == cap);
    std::vector<double> V;
    std::vector<std::int64_t> pi;
    iterate(g, 1.0, V, pi);
    for (const Cell& w : want) {
      const int s = g.index(w.c, w.r);
      CHECK_NEAR(V[s], w.v, 5e-4);
      if (w.a >= 0) CHECK(pi[s] == w.a);
    }
    CHECK_NEAR(V[Gridworld::kExit], 0.0, 0.0);
    if (cap == 0) V0 = V;
    for (int s = 0; s < g.S; ++s) CHECK_NEAR(V[s], V0[s], 1e-12);  // the ISA paths agree
  }
  pygenmod::cpu::set_isa_cap(-1);

  // The solver (value iteration with its stopping rule) against plain sweeps, gamma = 0.9.
  {
    const double gamma = 0.9, thresh = 1e-10;
    std::vector<double> Vs;
    std::vector<std::int64_t> pis;
    iterate(g, gamma, Vs, pis);
    const mdp::Dense<double> m{g.P.data(), g.S, g.A};
    std::vector<double> V(g.S, 0.0), Q(g.S * g.A), residual(1), check_stats(4);
    std::vector<std::int64_t> pi(g.S), iters(1), evals(1);
    std::uint8_t converged = 0;
    mdp::SolveOptions opt;
    mdp::solve_cpu(m, g.R.data(), &gamma, &thresh, 1, opt, V.data(), Q.data(), pi.data(), iters.data(), evals.data(),
                   residual.data(), &converged, check_stats.data());
    CHECK(converged == 1);
    for (int s = 0; s < g.S; ++s) {
      CHECK_NEAR(V[s], Vs[s], 1e-8);
      CHECK(pi[s] == pis[s]);
    }
  }

  // One sweep by hand: state (0, 0) from V = 1 everywhere: Q = -0.04 + 1 for every action.
  {
    const mdp::Dense<double> m{g.P.data(), g.S, g.A};
    const double gamma = 1.0;
    std::vector<double> V(g.S, 1.0), Q(g.S * g.A), Vn(g.S);
    std::vector<std::int64_t> pi(g.S);
    mdp::backup_sweep_cpu<double>(m, g.R.data(), V.data(), &gamma, 1, mdp::kOptimal, nullptr, nullptr, nullptr,
                                  Q.data(), Vn.data(), pi.data());
    for (int a = 0; a < g.A; ++a) CHECK_NEAR(Q[g.index(0, 0) * g.A + a], 0.96, 1e-15);
    CHECK(pi[g.index(0, 0)] == 0);  // ties: the lowest action
  }
  // float32 rows: every instruction-set path sums in dot_generic's order, bitwise (float64
  // accumulators), for 1 to 8 rows per call and lengths with and without a tail.
  {
    std::uint32_t state = 12345;
    auto next = [&state] {  // a small LCG: floats in [-1, 1)
      state = state * 1664525u + 1013904223u;
      return static_cast<float>(static_cast<double>(state >> 8) / 8388608.0 - 1.0);
    };
    for (int n : {1, 7, 8, 9, 16, 31, 64, 100}) {
      std::vector<float> rows(8 * n), v(n);
      for (float& x : rows) x = next();
      for (float& x : v) x = next() * 100.0f;
      const float* r[8];
      for (int k = 0; k < 8; ++k) r[k] = rows.data() + k * n;
      double want[8];
      for (int k = 0; k < 8; ++k) want[k] = mdp::dot_generic(r[k], v.data(), n);
      for (int cap = 0; cap <= detected; ++cap) {
        pygenmod::cpu::set_isa_cap(cap);
        for (int cnt = 1; cnt <= 8; ++cnt) {
          double got[8];
          mdp::dot_ptrs(r, cnt, v.data(), n, got);
          for (int k = 0; k < cnt; ++k) CHECK(got[k] == want[k]);
        }
      }
      pygenmod::cpu::set_isa_cap(-1);
    }
  }
  return check::finish("test_mdp");
}
