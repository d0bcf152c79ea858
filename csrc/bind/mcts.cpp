// _cpu_mcts: bindings of the batched MCTS kernels. Arrays in, GIL released, no math here.
// `tree` is the tuple of the tree arrays and `params` the float64 array of search parameters,
// both named by pygenmod/mcts_fields.hpp (exported here as TREE_FIELDS, PARAM_FIELDS, ...).
#include "args/mcts.hpp"
#include "bind_common.hpp"
#include "pygenmod/mcts.hpp"

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
mcts::Batch<T> batch_of(py::tuple tree, py::ssize_t* B) {
  namespace f = mcts::tree_field;
  check_tree(tree);
  py::array children = tree[f::children].cast<py::array>();
  if (children.ndim() != 3) throw std::invalid_argument("tree: children must be (B, N, A)");
  const py::ssize_t b = children.shape(0), N = children.shape(1), A = children.shape(2);
  *B = b;
  mcts::Batch<T> t;
  t.N = N;
  t.A = A;
  // t.<name> = the array tree[tree_field::<name>], checked for dtype and shape
#define PGM_FIELD(name, type, ...)                           \
  {                                                          \
    py::array a = tree[f::name].cast<py::array>();           \
    t.name = out<HostArrays, type>(a, #name, {__VA_ARGS__}); \
  }
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

mcts::Params params_of(const py::array& params, const py::array& table) {
  const double* p = in<HostArrays, double>(params, "params", {mcts::kNumParams});
  if (table.ndim() != 2) throw std::invalid_argument("table: expected 2 dimensions");
  const i32* tb = in<HostArrays, i32>(table, "table", {-1, -1});
  mcts::Params q = mcts::make_params(p, tb, static_cast<int>(table.shape(1)));
  if (q.max_considered < 0 || table.shape(0) < q.max_considered + 1 || table.shape(1) < 1)
    throw std::invalid_argument("table: expected shape (max_num_considered_actions + 1, L >= 1)");
  return q;
}

template <class F>
void with_tree(py::tuple tree, F&& f) {
  check_tree(tree);
  py::array logits = tree[mcts::tree_field::logits].cast<py::array>();
  dispatch_float<HostArrays>(logits, "logits", [&](auto tag) {
    using T = decltype(tag);
    py::ssize_t B;
    auto t = batch_of<T>(tree, &B);
    f(t, B, tag);
  });
}

const u8* optional_mask(const py::object& m, const char* name, std::initializer_list<py::ssize_t> shape) {
  if (m.is_none()) return nullptr;
  return in<HostArrays, u8>(m.cast<py::array>(), name, shape);
}

void b_select(py::tuple tree, py::array params, py::array table, py::array node, py::array action) {
  with_tree(tree, [&](auto& t, py::ssize_t B, auto) {
    auto p = params_of(params, table);
    i32* n = out<HostArrays, i32>(node, "node", {B});
    i32* a = out<HostArrays, i32>(action, "action", {B});
    py::gil_scoped_release nogil;
    mcts::select_cpu(t, B, p, n, a);
  });
}

void b_expand(py::tuple tree, py::array node, py::array action, py::array reward, py::array discount, py::array logits,
              py::array value, py::object invalid, py::array state, py::array dst) {
  with_tree(tree, [&](auto& t, py::ssize_t B, auto tag) {
    using T = decltype(tag);
    const py::ssize_t A = t.A;
    const i32* n = in<HostArrays, i32>(node, "node", {B});
    const i32* a = in<HostArrays, i32>(action, "action", {B});
    const T* r = in<HostArrays, T>(reward, "reward", {B});
    const T* d = in<HostArrays, T>(discount, "discount", {B});
    const T* l = in<HostArrays, T>(logits, "prior_logits", {B, A});
    const T* v = in<HostArrays, T>(value, "value", {B});
    const u8* inv = optional_mask(invalid, "invalid_actions", {B, A});
    const auto* s = in<HostArrays, std::int64_t>(state, "state", {B});
    i32* o = out<HostArrays, i32>(dst, "out", {B});
    py::gil_scoped_release nogil;
    mcts::expand_cpu(t, B, n, a, r, d, l, v, inv, s, o);
  });
}

void b_backup(py::tuple tree, py::array node) {
  with_tree(tree, [&](auto& t, py::ssize_t B, auto) {
    const i32* n = in<HostArrays, i32>(node, "node", {B});
    py::gil_scoped_release nogil;
    mcts::backup_cpu(t, B, n);
  });
}

void b_search_tabular(py::tuple tree, py::array params, py::array table, std::int64_t num_simulations,
                      py::array next_state, py::array reward, py::array discount, py::array logits, py::array prior,
                      py::array value, py::array invalid, py::object cdf, std::uint64_t seed, std::uint64_t stream0) {
  with_tree(tree, [&](auto& t, py::ssize_t B, auto tag) {
    using T = decltype(tag);
    auto p = params_of(params, table);
    const py::ssize_t A = t.A;
    const py::ssize_t S = next_state.ndim() == 2 ? next_state.shape(0) : -2;
    const auto* ns = in<HostArrays, std::int64_t>(next_state, "next_state", {S, A});
    const T* r = in<HostArrays, T>(reward, "reward", {S, A});
    const T* d = in<HostArrays, T>(discount, "discount", {S, A});
    const T* l = in<HostArrays, T>(logits, "logits", {S, A});
    const T* pr = in<HostArrays, T>(prior, "prior", {S, A});
    const T* v = in<HostArrays, T>(value, "value", {S});
    const u8* inv = in<HostArrays, u8>(invalid, "invalid", {S, A});
    mcts::Transitions tr;
    tr.S = S;
    tr.seed = seed;
    tr.stream0 = stream0;
    if (!cdf.is_none()) tr.cdf = in<HostArrays, double>(cdf.cast<py::array>(), "cdf", {S, A, S});
    if (num_simulations < 0) throw std::invalid_argument("num_simulations: must be >= 0");
    Interruptible intr;
    {
      py::gil_scoped_release nogil;
      mcts::search_tabular_cpu(t, B, p, num_simulations, ns, r, d, l, pr, v, inv, tr, intr.stop());
    }
    intr.rethrow();
  });
}

void b_advance(py::tuple tree, py::array action, py::array new_index, py::array old_index, py::array status) {
  with_tree(tree, [&](auto& t, py::ssize_t B, auto) {
    const py::ssize_t N = t.N;
    const i32* a = in<HostArrays, i32>(action, "actions", {B});
    i32* ni = out<HostArrays, i32>(new_index, "new_index", {B, N});
    i32* oi = out<HostArrays, i32>(old_index, "old_index", {B, N});
    i32* st = out<HostArrays, i32>(status, "status", {B});
    py::gil_scoped_release nogil;
    mcts::advance_cpu(t, B, a, ni, oi, st);
  });
}

}  // namespace

// name -> index (or value) dicts of mcts_fields.hpp, for the Python layer's contract test.
template <std::size_t N>
py::dict index_dict(const char* const (&names)[N]) {
  py::dict d;
  for (std::size_t i = 0; i < N; ++i) d[names[i]] = static_cast<int>(i);
  return d;
}

PYBIND11_MODULE(_cpu_mcts, m) {
  m.doc() = "pygenmod batched Monte Carlo tree search, compiled CPU kernels (OpenMP over trees)";
  m.attr("TREE_FIELDS") = index_dict(mcts::tree_field::names);
  m.attr("PARAM_FIELDS") = index_dict(mcts::param::names);
  m.attr("POLICIES") = py::dict("muzero"_a = int(mcts::kPolicyMuzero), "gumbel"_a = int(mcts::kPolicyGumbel),
                                "uct"_a = int(mcts::kPolicyUct));
  m.attr("STATUS") = py::dict("OK"_a = int(mcts::kOk), "CAPACITY"_a = int(mcts::kCapacity),
                              "ALREADY_EXPANDED"_a = int(mcts::kAlreadyExpanded),
                              "BAD_ACTION"_a = int(mcts::kBadAction), "NOT_EXPANDED"_a = int(mcts::kNotExpanded));
  m.attr("ACTION_CODES") = py::dict("TERMINAL"_a = int(mcts::kTerminal), "REEVALUATE"_a = int(mcts::kReevaluate));
  m.def("select", &b_select, "tree"_a, "params"_a, "table"_a, "node"_a, "action"_a);
  m.def("expand", &b_expand, "tree"_a, "node"_a, "action"_a, "reward"_a, "discount"_a, "logits"_a, "value"_a,
        "invalid"_a, "state"_a, "out"_a);
  m.def("backup", &b_backup, "tree"_a, "node"_a);
  m.def("search_tabular", &b_search_tabular, "tree"_a, "params"_a, "table"_a, "num_simulations"_a, "next_state"_a,
        "reward"_a, "discount"_a, "logits"_a, "prior"_a, "value"_a, "invalid"_a, "cdf"_a = py::none(), "seed"_a = 0,
        "stream0"_a = 0);
  m.def("advance", &b_advance, "tree"_a, "action"_a, "new_index"_a, "old_index"_a, "status"_a);
  m.def(
      "dirichlet_noise",
      [](std::uint64_t seed, std::uint64_t stream0, double alpha, py::array dst) {
        args::mcts::dirichlet_noise<HostArrays>(seed, stream0, alpha, dst,
                                                nogil([](auto... a) { mcts::dirichlet_cpu(a...); }));
      },
      "seed"_a, "stream0"_a, "alpha"_a, "out"_a);
  m.def(
      "gumbel_noise",
      [](std::uint64_t seed, std::uint64_t stream0, py::array dst) {
        args::mcts::gumbel_noise<HostArrays>(seed, stream0, dst, nogil([](auto... a) { mcts::gumbel_cpu(a...); }));
      },
      "seed"_a, "stream0"_a, "out"_a);
  m.def(
      "sample_action",
      [](py::array weights, py::array temperature, std::uint64_t seed, std::uint64_t stream0, py::array dst) {
        args::mcts::sample_action<HostArrays>(weights, temperature, seed, stream0, dst,
                                              nogil([](auto... a) { mcts::sample_cpu(a...); }));
      },
      "weights"_a, "temperature"_a, "seed"_a, "stream0"_a, "out"_a);
}
