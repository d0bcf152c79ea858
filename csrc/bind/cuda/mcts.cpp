// _cuda_mcts: bindings of the CUDA MCTS launchers. Device arrays in (the tree tuple in the
// order of mcts_fields.hpp's tree_field), `params` a host float64 array (named by its param),
// no math here.
#include "args/mcts.hpp"
#include "bind_common.hpp"
#include "cuda_array.hpp"
#include "mcts.cuh"

namespace py = pybind11;
using namespace pybind11::literals;
using namespace pygenmod;
using namespace pygenmod::bind;
using mcts::i32;
using mcts::u8;

namespace {

void check_tree(const py::tuple& tree) {
  if (tree.size() != mcts::tree_field::count)
    throw std::invalid_argument("tree: expected a tuple of " + std::to_string(mcts::tree_field::count) + " arrays");
}

template <class T>
mcts::Batch<T> batch_of(const py::tuple& tree, py::ssize_t* B) {
  namespace f = mcts::tree_field;
  check_tree(tree);
  auto shp = shape_of<DeviceArrays>(tree[f::children], "children");
  if (shp.size() != 3) throw std::invalid_argument("tree: children must be (B, N, A)");
  const py::ssize_t b = shp[0], N = shp[1], A = shp[2];
  *B = b;
  mcts::Batch<T> t;
  t.N = N;
  t.A = A;
  // t.<name> = the device array tree[tree_field::<name>], checked for dtype and shape
#define PGM_FIELD(name, type, ...) t.name = out<DeviceArrays, type>(tree[f::name], #name, {__VA_ARGS__})
  PGM_FIELD(visits, i32, b, N);
  PGM_FIELD(value_sum, T, b, N);
  PGM_FIELD(raw_value, T, b, N);
  PGM_FIELD(reward, T, b, N);
  PGM_FIELD(discount, T, b, N);
  PGM_FIELD(parent, i32, b, N);
  PGM_FIELD(action, i32, b, N);
  PGM_FIELD(children, i32, b, N, A);
  PGM_FIELD(logits, T, b, N, A);
  PGM_FIELD(prior, T, b, N, A);
  PGM_FIELD(invalid, u8, b, N, A);
  PGM_FIELD(state, std::int64_t, b, N);
  PGM_FIELD(num_nodes, i32, b);
  PGM_FIELD(gumbel, T, b, A);
  PGM_FIELD(qbounds, T, b, 2);
#undef PGM_FIELD
  return t;
}

mcts::Params params_of(const py::array& params, const py::object& table) {
  const double* p = in<HostArrays, double>(params, "params", {mcts::kNumParams});
  auto shp = shape_of<DeviceArrays>(table, "table");
  if (shp.size() != 2) throw std::invalid_argument("table: expected 2 dimensions");
  const i32* tb = in<DeviceArrays, i32>(table, "table", {shp[0], shp[1]});
  mcts::Params q = mcts::make_params(p, tb, static_cast<int>(shp[1]));
  if (q.max_considered < 0 || shp[0] < q.max_considered + 1 || shp[1] < 1)
    throw std::invalid_argument("table: expected shape (max_num_considered_actions + 1, L >= 1)");
  return q;
}

// f(batch, B, T{}) with the tree's arrays checked, T the dtype of its logits.
template <class F>
void with_tree(const py::tuple& tree, F&& f) {
  check_tree(tree);
  dispatch_float<DeviceArrays>(tree[mcts::tree_field::logits], "logits", [&](auto tag) {
    py::ssize_t B;
    auto b = batch_of<decltype(tag)>(tree, &B);
    f(b, B, tag);
  });
}

}  // namespace

PYBIND11_MODULE(_cuda_mcts, m) {
  m.doc() = "pygenmod batched Monte Carlo tree search, CUDA kernels (one thread per tree)";
  m.def(
      "select",
      [](py::tuple tree, py::array params, py::object table, py::object node, py::object action,
         std::uintptr_t stream) {
        with_tree(tree, [&](auto& t, py::ssize_t B, auto) {
          auto p = params_of(params, table);
          cuda::mcts_select(t, B, p, out<DeviceArrays, i32>(node, "node", {B}),
                            out<DeviceArrays, i32>(action, "action", {B}), as_stream(stream));
        });
      },
      "tree"_a, "params"_a, "table"_a, "node"_a, "action"_a, "stream"_a = 0);
  m.def(
      "expand",
      [](py::tuple tree, py::object node, py::object action, py::object reward, py::object discount, py::object logits,
         py::object value, py::object invalid, py::object state, py::object dst, std::uintptr_t stream) {
        with_tree(tree, [&](auto& t, py::ssize_t B, auto tag) {
          using T = decltype(tag);
          const py::ssize_t A = t.A;
          const u8* inv = in_or_null<DeviceArrays, u8>(invalid, "invalid_actions", {B, A});
          cuda::mcts_expand(
              t, B, in<DeviceArrays, i32>(node, "node", {B}), in<DeviceArrays, i32>(action, "action", {B}),
              in<DeviceArrays, T>(reward, "reward", {B}), in<DeviceArrays, T>(discount, "discount", {B}),
              in<DeviceArrays, T>(logits, "prior_logits", {B, A}), in<DeviceArrays, T>(value, "value", {B}), inv,
              in<DeviceArrays, std::int64_t>(state, "state", {B}), out<DeviceArrays, i32>(dst, "out", {B}),
              as_stream(stream));
        });
      },
      "tree"_a, "node"_a, "action"_a, "reward"_a, "discount"_a, "logits"_a, "value"_a, "invalid"_a, "state"_a, "out"_a,
      "stream"_a = 0);
  m.def(
      "backup",
      [](py::tuple tree, py::object node, std::uintptr_t stream) {
        with_tree(tree, [&](auto& t, py::ssize_t B, auto) {
          cuda::mcts_backup(t, B, in<DeviceArrays, i32>(node, "node", {B}), as_stream(stream));
        });
      },
      "tree"_a, "node"_a, "stream"_a = 0);
  m.def(
      "search_tabular",
      [](py::tuple tree, py::array params, py::object table, std::int64_t num_simulations, py::object next_state,
         py::object reward, py::object discount, py::object logits, py::object prior, py::object value,
         py::object invalid, py::object cdf, std::uint64_t seed, std::uint64_t stream0, std::uintptr_t stream) {
        with_tree(tree, [&](auto& t, py::ssize_t B, auto tag) {
          using T = decltype(tag);
          auto p = params_of(params, table);
          const py::ssize_t A = t.A;
          auto shp = shape_of<DeviceArrays>(next_state, "next_state");
          if (shp.size() != 2) throw std::invalid_argument("next_state: expected (S, A)");
          const py::ssize_t S = shp[0];
          if (num_simulations < 0) throw std::invalid_argument("num_simulations: must be >= 0");
          mcts::Transitions tr;
          tr.S = S;
          tr.seed = seed;
          tr.stream0 = stream0;
          tr.cdf = in_or_null<DeviceArrays, double>(cdf, "cdf", {S, A, S});
          cuda::mcts_search_tabular(
              t, B, p, num_simulations, in<DeviceArrays, std::int64_t>(next_state, "next_state", {S, A}),
              in<DeviceArrays, T>(reward, "reward", {S, A}), in<DeviceArrays, T>(discount, "discount", {S, A}),
              in<DeviceArrays, T>(logits, "logits", {S, A}), in<DeviceArrays, T>(prior, "prior", {S, A}),
              in<DeviceArrays, T>(value, "value", {S}), in<DeviceArrays, u8>(invalid, "invalid", {S, A}), tr,
              as_stream(stream));
        });
      },
      "tree"_a, "params"_a, "table"_a, "num_simulations"_a, "next_state"_a, "reward"_a, "discount"_a, "logits"_a,
      "prior"_a, "value"_a, "invalid"_a, "cdf"_a = py::none(), "seed"_a = 0, "stream0"_a = 0, "stream"_a = 0);
  m.def(
      "advance",
      [](py::tuple tree, py::object action, py::object new_index, py::object old_index, py::object status,
         std::uintptr_t stream) {
        with_tree(tree, [&](auto& t, py::ssize_t B, auto) {
          const py::ssize_t N = t.N;
          cuda::mcts_advance(t, B, in<DeviceArrays, i32>(action, "actions", {B}),
                             out<DeviceArrays, i32>(new_index, "new_index", {B, N}),
                             out<DeviceArrays, i32>(old_index, "old_index", {B, N}),
                             out<DeviceArrays, i32>(status, "status", {B}), as_stream(stream));
        });
      },
      "tree"_a, "action"_a, "new_index"_a, "old_index"_a, "status"_a, "stream"_a = 0);
  m.def(
      "dirichlet_noise",
      [](std::uint64_t seed, std::uint64_t stream0, double alpha, py::object dst, std::uintptr_t stream) {
        args::mcts::dirichlet_noise<DeviceArrays>(seed, stream0, alpha, dst,
                                                  [&](auto... a) { cuda::mcts_dirichlet(a..., as_stream(stream)); });
      },
      "seed"_a, "stream0"_a, "alpha"_a, "out"_a, "stream"_a = 0);
  m.def(
      "gumbel_noise",
      [](std::uint64_t seed, std::uint64_t stream0, py::object dst, std::uintptr_t stream) {
        args::mcts::gumbel_noise<DeviceArrays>(seed, stream0, dst,
                                               [&](auto... a) { cuda::mcts_gumbel(a..., as_stream(stream)); });
      },
      "seed"_a, "stream0"_a, "out"_a, "stream"_a = 0);
  m.def(
      "sample_action",
      [](py::object weights, py::object temperature, std::uint64_t seed, std::uint64_t stream0, py::object dst,
         std::uintptr_t stream) {
        args::mcts::sample_action<DeviceArrays>(weights, temperature, seed, stream0, dst,
                                                [&](auto... a) { cuda::mcts_sample(a..., as_stream(stream)); });
      },
      "weights"_a, "temperature"_a, "seed"_a, "stream0"_a, "out"_a, "stream"_a = 0);
}
