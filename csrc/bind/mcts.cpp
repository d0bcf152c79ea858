// _cpu_mcts: bindings of the batched MCTS kernels. Arrays in, GIL released, no math here.
// `tree` is the tuple of the tree arrays and `params` the float64 array of search parameters,
// both named by pygenmod/mcts_fields.hpp (exported here as TREE_FIELDS, PARAM_FIELDS, ...).
// The argument unpacking is args/mcts.hpp (shared with _cuda_mcts).
#include "args/mcts.hpp"
#include "bind_common.hpp"
#include "pygenmod/mcts.hpp"

namespace py = pybind11;
using namespace pybind11::literals;
using namespace pygenmod;
using namespace pygenmod::bind;
namespace am = pygenmod::bind::args::mcts;

// name -> index (or value) dicts of mcts_fields.hpp, for the Python layer's contract test.
template <std::size_t N>
py::dict index_dict(const char* const (&names)[N]) {
  py::dict d;
  for (std::size_t i = 0; i < N; ++i) d[names[i]] = static_cast<int>(i);
  return d;
}

PYBIND11_MODULE(_cpu_mcts, m) {
  pygenmod::shared_pool::adopt();
  m.doc() = "pygenmod batched Monte Carlo tree search, compiled CPU kernels (OpenMP over trees)";
  m.attr("TREE_FIELDS") = index_dict(mcts::tree_field::names);
  m.attr("PARAM_FIELDS") = index_dict(mcts::param::names);
  m.attr("POLICIES") = py::dict("muzero"_a = int(mcts::kPolicyMuzero), "gumbel"_a = int(mcts::kPolicyGumbel),
                                "uct"_a = int(mcts::kPolicyUct));
  m.attr("STATUS") = py::dict("OK"_a = int(mcts::kOk), "CAPACITY"_a = int(mcts::kCapacity),
                              "ALREADY_EXPANDED"_a = int(mcts::kAlreadyExpanded),
                              "BAD_ACTION"_a = int(mcts::kBadAction), "NOT_EXPANDED"_a = int(mcts::kNotExpanded));
  m.attr("ACTION_CODES") = py::dict("TERMINAL"_a = int(mcts::kTerminal), "REEVALUATE"_a = int(mcts::kReevaluate));
  m.def(
      "select",
      [](py::tuple tree, py::array params, py::array table, py::array node, py::array action) {
        am::select<HostArrays>(tree, params, table, node, action, nogil([](auto... a) { mcts::select_cpu(a...); }));
      },
      "tree"_a, "params"_a, "table"_a, "node"_a, "action"_a);
  m.def(
      "expand",
      [](py::tuple tree, py::array node, py::array action, py::array reward, py::array discount, py::array logits,
         py::array value, py::object invalid, py::array state, py::array dst) {
        am::expand<HostArrays>(tree, node, action, reward, discount, logits, value, invalid, state, dst,
                               nogil([](auto... a) { mcts::expand_cpu(a...); }));
      },
      "tree"_a, "node"_a, "action"_a, "reward"_a, "discount"_a, "logits"_a, "value"_a, "invalid"_a, "state"_a, "out"_a);
  m.def(
      "backup",
      [](py::tuple tree, py::array node) {
        am::backup<HostArrays>(tree, node, nogil([](auto... a) { mcts::backup_cpu(a...); }));
      },
      "tree"_a, "node"_a);
  m.def(
      "step",
      [](py::tuple tree, py::array params, py::array table, py::array node, py::array action, py::array reward,
         py::array discount, py::array logits, py::array value, py::object invalid, py::array leaf,
         py::object next_node, py::object next_action, py::object embeddings, py::object next_embedding,
         py::object gathered) {
        const auto r = am::step<HostArrays>(tree, params, table, node, action, reward, discount, logits, value, invalid,
                                            leaf, next_node, next_action, embeddings, next_embedding, gathered,
                                            nogil([](auto... a) { return mcts::step_cpu(a...); }));
        return py::make_tuple(r.bad_outputs, r.failed);
      },
      "tree"_a, "params"_a, "table"_a, "node"_a, "action"_a, "reward"_a, "discount"_a, "logits"_a, "value"_a,
      "invalid"_a, "leaf"_a, "next_node"_a, "next_action"_a, "embeddings"_a = py::none(),
      "next_embedding"_a = py::none(), "gathered"_a = py::none(),
      "the callback path's simulation: expand (node, action) with the outputs, back up, select the next edge, "
      "store the new leaves' embeddings and gather the next nodes'; returns (bad_outputs bits, failed expansions)");
  m.def(
      "search_tabular",
      [](py::tuple tree, py::array params, py::array table, std::int64_t num_simulations, py::array next_state,
         py::array reward, py::array discount, py::array logits, py::array prior, py::array value, py::array invalid,
         py::object cdf, std::uint64_t seed, std::uint64_t stream0) {
        am::search_tabular<HostArrays>(tree, params, table, num_simulations, next_state, reward, discount, logits,
                                       prior, value, invalid, cdf, seed, stream0, [](auto... a) {
                                         Interruptible intr;  // Ctrl-C ends the search
                                         {
                                           py::gil_scoped_release nogil;
                                           mcts::search_tabular_cpu(a..., intr.stop());
                                         }
                                         intr.rethrow();
                                       });
      },
      "tree"_a, "params"_a, "table"_a, "num_simulations"_a, "next_state"_a, "reward"_a, "discount"_a, "logits"_a,
      "prior"_a, "value"_a, "invalid"_a, "cdf"_a = py::none(), "seed"_a = 0, "stream0"_a = 0);
  m.def(
      "advance",
      [](py::tuple tree, py::array action, py::array new_index, py::array old_index, py::array status) {
        am::advance<HostArrays>(tree, action, new_index, old_index, status,
                                nogil([](auto... a) { mcts::advance_cpu(a...); }));
      },
      "tree"_a, "action"_a, "new_index"_a, "old_index"_a, "status"_a);
  m.def(
      "dirichlet_noise",
      [](std::uint64_t seed, std::uint64_t stream0, double alpha, py::array dst) {
        am::dirichlet_noise<HostArrays>(seed, stream0, alpha, dst, nogil([](auto... a) { mcts::dirichlet_cpu(a...); }));
      },
      "seed"_a, "stream0"_a, "alpha"_a, "out"_a);
  m.def(
      "gumbel_noise",
      [](std::uint64_t seed, std::uint64_t stream0, py::array dst) {
        am::gumbel_noise<HostArrays>(seed, stream0, dst, nogil([](auto... a) { mcts::gumbel_cpu(a...); }));
      },
      "seed"_a, "stream0"_a, "out"_a);
  m.def(
      "sample_action",
      [](py::array weights, py::array temperature, std::uint64_t seed, std::uint64_t stream0, py::array dst) {
        am::sample_action<HostArrays>(weights, temperature, seed, stream0, dst,
                                      nogil([](auto... a) { mcts::sample_cpu(a...); }));
      },
      "weights"_a, "temperature"_a, "seed"_a, "stream0"_a, "out"_a);
}
