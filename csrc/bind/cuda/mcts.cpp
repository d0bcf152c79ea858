// _cuda_mcts: bindings of the CUDA MCTS launchers. Device arrays in (the tree tuple in the
// order of mcts_fields.hpp's tree_field), `params` a host float64 array (named by its param),
// no math here; the argument unpacking is args/mcts.hpp (shared with _cpu_mcts).
#include "args/mcts.hpp"
#include "cuda_array.hpp"
#include "mcts.cuh"

namespace py = pybind11;
using namespace pybind11::literals;
using namespace pygenmod;
using namespace pygenmod::bind;

namespace am = pygenmod::bind::args::mcts;

PYBIND11_MODULE(_cuda_mcts, m) {
  m.doc() = "pygenmod batched Monte Carlo tree search, CUDA kernels (a thread or a warp per tree)";
  // The mapping switch of select / search_tabular: "auto" (mcts::use_warp_per_tree), "thread"
  // or "warp"; returns the previous one. For tests and benchmarks (process-wide).
  m.def(
      "set_mapping",
      [](const std::string& name) {
        static const char* names[] = {"auto", "thread", "warp"};
        int want = -1;
        for (int i = 0; i < 3; ++i)
          if (name == names[i]) want = i;
        if (want < 0) throw py::value_error("mapping must be 'auto', 'thread' or 'warp', got '" + name + "'");
        return std::string(names[cuda::mcts_set_mapping(want)]);
      },
      "mapping"_a);
  m.def("warp_per_tree", [](std::int64_t B) { return cuda::mcts_warp_per_tree(B); }, "B"_a);
  m.def(
      "select",
      [](py::tuple tree, py::array params, py::object table, py::object node, py::object action,
         std::uintptr_t stream) {
        am::select<DeviceArrays>(tree, params, table, node, action,
                                 [&](auto&... a) { cuda::mcts_select(a..., as_stream(stream)); });
      },
      "tree"_a, "params"_a, "table"_a, "node"_a, "action"_a, "stream"_a = 0);
  m.def(
      "expand",
      [](py::tuple tree, py::object node, py::object action, py::object reward, py::object discount, py::object logits,
         py::object value, py::object invalid, py::object state, py::object dst, std::uintptr_t stream) {
        am::expand<DeviceArrays>(tree, node, action, reward, discount, logits, value, invalid, state, dst,
                                 [&](auto&... a) { cuda::mcts_expand(a..., as_stream(stream)); });
      },
      "tree"_a, "node"_a, "action"_a, "reward"_a, "discount"_a, "logits"_a, "value"_a, "invalid"_a, "state"_a, "out"_a,
      "stream"_a = 0);
  m.def(
      "backup",
      [](py::tuple tree, py::object node, std::uintptr_t stream) {
        am::backup<DeviceArrays>(tree, node, [&](auto&... a) { cuda::mcts_backup(a..., as_stream(stream)); });
      },
      "tree"_a, "node"_a, "stream"_a = 0);
  m.def(
      "search_tabular",
      [](py::tuple tree, py::array params, py::object table, std::int64_t num_simulations, py::object next_state,
         py::object reward, py::object discount, py::object logits, py::object prior, py::object value,
         py::object invalid, py::object cdf, std::uint64_t seed, std::uint64_t stream0, std::uintptr_t stream) {
        am::search_tabular<DeviceArrays>(tree, params, table, num_simulations, next_state, reward, discount, logits,
                                         prior, value, invalid, cdf, seed, stream0,
                                         [&](auto&... a) { cuda::mcts_search_tabular(a..., as_stream(stream)); });
      },
      "tree"_a, "params"_a, "table"_a, "num_simulations"_a, "next_state"_a, "reward"_a, "discount"_a, "logits"_a,
      "prior"_a, "value"_a, "invalid"_a, "cdf"_a = py::none(), "seed"_a = 0, "stream0"_a = 0, "stream"_a = 0);
  m.def(
      "advance",
      [](py::tuple tree, py::object action, py::object new_index, py::object old_index, py::object status,
         std::uintptr_t stream) {
        am::advance<DeviceArrays>(tree, action, new_index, old_index, status,
                                  [&](auto&... a) { cuda::mcts_advance(a..., as_stream(stream)); });
      },
      "tree"_a, "action"_a, "new_index"_a, "old_index"_a, "status"_a, "stream"_a = 0);
  m.def(
      "dirichlet_noise",
      [](std::uint64_t seed, std::uint64_t stream0, double alpha, py::object dst, std::uintptr_t stream) {
        am::dirichlet_noise<DeviceArrays>(seed, stream0, alpha, dst,
                                          [&](auto... a) { cuda::mcts_dirichlet(a..., as_stream(stream)); });
      },
      "seed"_a, "stream0"_a, "alpha"_a, "out"_a, "stream"_a = 0);
  m.def(
      "gumbel_noise",
      [](std::uint64_t seed, std::uint64_t stream0, py::object dst, std::uintptr_t stream) {
        am::gumbel_noise<DeviceArrays>(seed, stream0, dst,
                                       [&](auto... a) { cuda::mcts_gumbel(a..., as_stream(stream)); });
      },
      "seed"_a, "stream0"_a, "out"_a, "stream"_a = 0);
  m.def(
      "sample_action",
      [](py::object weights, py::object temperature, std::uint64_t seed, std::uint64_t stream0, py::object dst,
         std::uintptr_t stream) {
        am::sample_action<DeviceArrays>(weights, temperature, seed, stream0, dst,
                                        [&](auto... a) { cuda::mcts_sample(a..., as_stream(stream)); });
      },
      "weights"_a, "temperature"_a, "seed"_a, "stream0"_a, "out"_a, "stream"_a = 0);
}
