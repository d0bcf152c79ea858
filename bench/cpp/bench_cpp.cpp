// Times the tabular MCTS search and the Bellman sweep called from C++ (no Python), on arrays
// written by bench/cpp/compare.py (raw little-endian files in <dir>). Prints one JSON object
// per case: {"case": ..., "best_s": ..., "median_s": ...}.
//   bench_cpp <dir> <repeats>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "pygenmod/mcts_tree.hpp"
#include "pygenmod/mdp.hpp"

template <class T>
std::vector<T> load(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) throw std::runtime_error("cannot open " + path);
  const std::streamsize n = f.tellg();
  std::vector<T> v(static_cast<size_t>(n) / sizeof(T));
  f.seekg(0);
  f.read(reinterpret_cast<char*>(v.data()), n);
  return v;
}

template <class F>
void timeit(const char* name, int repeats, F&& f) {
  f();  // warm-up: first touch of the buffers, OpenMP team start
  std::vector<double> t;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  std::printf("{\"case\": \"%s\", \"best_s\": %.9g, \"median_s\": %.9g}\n", name, t[0], t[t.size() / 2]);
  std::fflush(stdout);
}

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: bench_cpp <dir> <repeats>\n");
    return 2;
  }
  const std::string dir = argv[1];
  const int repeats = std::stoi(argv[2]);
  namespace mcts = pygenmod::mcts;
  namespace mdp = pygenmod::mdp;

  // ---- W5: MuZero search on the tabular model (float32), S x A, roots B, sims
  const auto dims = load<std::int64_t>(dir + "/mcts_dims.bin");  // S, A
  const std::int64_t A = dims[1];                                // (dims[0] = S: the arrays' sizes carry it)
  const auto ns = load<std::int64_t>(dir + "/mcts_next_state.bin");
  const auto rw = load<float>(dir + "/mcts_reward.bin"), disc = load<float>(dir + "/mcts_discount.bin");
  const auto lg = load<float>(dir + "/mcts_logits.bin"), pr = load<float>(dir + "/mcts_prior.bin");
  const auto val = load<float>(dir + "/mcts_value.bin");
  const auto inv = load<std::uint8_t>(dir + "/mcts_invalid.bin");
  const auto roots_all = load<std::int64_t>(dir + "/mcts_roots.bin");
  for (const auto& [B, sims] : {std::pair<std::int64_t, std::int64_t>{256, 64}, {256, 256}, {1, 64}}) {
    const std::string name = "mcts B=" + std::to_string(B) + " sims=" + std::to_string(sims);
    timeit(name.c_str(), repeats, [&] {
      // a fresh tree per search, as pygenmod.mcts.search (the set-up is timed too)
      mcts::TreeStorage<float> fresh(B, A, sims + 1);
      fresh.init_roots_tabular(roots_all.data(), lg.data(), pr.data(), inv.data(), val.data());
      mcts::search_tabular_cpu(fresh.batch(), B, mcts::puct_params(), sims, ns.data(), rw.data(), disc.data(),
                               lg.data(), pr.data(), val.data(), inv.data(), mcts::Transitions{});
    });
  }

  // ---- W6(b): one Bellman optimality sweep over a batch of dense MDPs (float64)
  const auto bd = load<std::int64_t>(dir + "/mdp_dims.bin");  // B, S, A
  const std::int64_t B = bd[0], Sm = bd[1], Am = bd[2];
  const auto P = load<double>(dir + "/mdp_P.bin"), R = load<double>(dir + "/mdp_R.bin");
  const auto V = load<double>(dir + "/mdp_V.bin"), gamma = load<double>(dir + "/mdp_gamma.bin");
  std::vector<double> Q(B * Sm * Am), Vo(B * Sm);
  std::vector<std::int64_t> pi(B * Sm);
  const mdp::Dense<double> m{P.data(), Sm, Am};
  const std::string name =
      "bellman sweep B=" + std::to_string(B) + " S=" + std::to_string(Sm) + " A=" + std::to_string(Am);
  timeit(name.c_str(), repeats, [&] {
    mdp::backup_sweep_cpu<double>(m, R.data(), V.data(), gamma.data(), B, mdp::kOptimal, nullptr, nullptr, nullptr,
                                  Q.data(), Vo.data(), pi.data());
  });
  return 0;
}
