// The argument unpacking of the MCTS bindings (tree functions, noise, action sampling), shared
// by _cpu_mcts and _cuda_mcts: arrays checked (array_access.hpp, policy P), then launch(...)
// with the argument list of mcts::<name>_cpu / cuda::mcts_<name> (less the CUDA stream; the CPU
// search adds its Stop). `tree` is the tuple of tree arrays in the order of mcts_fields.hpp's
// tree_field; `params` a host float64 array on both sides.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "array_access.hpp"
#include "pygenmod/mcts.hpp"

namespace pygenmod::bind::args::mcts {
namespace m = pygenmod::mcts;
using m::i32;
using m::u8;

inline void check_tree(const py::tuple& tree) {
  if (tree.size() != m::tree_field::count)
    throw std::invalid_argument("tree: expected a tuple of " + std::to_string(m::tree_field::count) + " arrays");
}

// The tree's arrays, each checked for dtype and shape (B trees, N nodes, A actions).
template <class P, class T>
m::Batch<T> batch_of(const py::tuple& tree, py::ssize_t* B) {
  namespace f = m::tree_field;
  check_tree(tree);
  const auto shp = shape_of<P>(tree[f::children], "children");
  if (shp.size() != 3) throw std::invalid_argument("tree: children must be (B, N, A)");
  const py::ssize_t b = shp[0], N = shp[1], A = shp[2];
  *B = b;
  m::Batch<T> t;
  t.N = N;
  t.A = A;
  // t.<name> = the array tree[tree_field::<name>], checked for dtype and shape
#define PGM_FIELD(name, type, ...) t.name = out<P, type>(tree[f::name], #name, {__VA_ARGS__})
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

// The search parameters: params a host float64 array, table (max_considered + 1, L) of policy P.
template <class P>
m::Params params_of(const py::object& params, const py::object& table) {
  const double* p = in<HostArrays, double>(params, "params", {m::kNumParams});
  const auto shp = shape_of<P>(table, "table");
  if (shp.size() != 2) throw std::invalid_argument("table: expected 2 dimensions");
  const i32* tb = in<P, i32>(table, "table", {shp[0], shp[1]});
  m::Params q = m::make_params(p, tb, static_cast<int>(shp[1]));
  if (q.max_considered < 0 || shp[0] < q.max_considered + 1 || shp[1] < 1)
    throw std::invalid_argument("table: expected shape (max_num_considered_actions + 1, L >= 1)");
  return q;
}

// f(batch, B, T{}) with the tree's arrays checked, T the dtype of its logits.
template <class P, class F>
void with_tree(const py::tuple& tree, F&& f) {
  check_tree(tree);
  dispatch_float<P>(tree[m::tree_field::logits], "logits", [&](auto tag) {
    py::ssize_t B;
    auto t = batch_of<P, decltype(tag)>(tree, &B);
    f(t, B, tag);
  });
}

// launch(tree, B, params, node, action): one selection per tree.
template <class P, class Launch>
void select(const py::tuple& tree, const py::object& params, const py::object& table, const py::object& node,
            const py::object& action, Launch&& launch) {
  with_tree<P>(tree, [&](auto& t, py::ssize_t B, auto) {
    const auto p = params_of<P>(params, table);
    i32* n = out<P, i32>(node, "node", {B});
    i32* a = out<P, i32>(action, "action", {B});
    launch(t, B, p, n, a);
  });
}

// The edges to expand, (node, action), and the model's outputs for them: the arguments that
// expand and step share, checked against B trees of A actions.
template <class T>
struct Edges {
  const i32 *node, *action;
  const T *reward, *discount, *logits, *value;
  const u8* invalid;  // or null
};
template <class P, class T>
Edges<T> edges_of(py::ssize_t B, py::ssize_t A, const py::object& node, const py::object& action,
                  const py::object& reward, const py::object& discount, const py::object& logits,
                  const py::object& value, const py::object& invalid) {
  return Edges<T>{in<P, i32>(node, "node", {B}),
                  in<P, i32>(action, "action", {B}),
                  in<P, T>(reward, "reward", {B}),
                  in<P, T>(discount, "discount", {B}),
                  in<P, T>(logits, "prior_logits", {B, A}),
                  in<P, T>(value, "value", {B}),
                  in_or_null<P, u8>(invalid, "invalid_actions", {B, A})};
}

// launch(tree, B, node, action, reward, discount, prior_logits, value, invalid_actions or null, state, out)
template <class P, class Launch>
void expand(const py::tuple& tree, const py::object& node, const py::object& action, const py::object& reward,
            const py::object& discount, const py::object& logits, const py::object& value, const py::object& invalid,
            const py::object& state, const py::object& dst, Launch&& launch) {
  with_tree<P>(tree, [&](auto& t, py::ssize_t B, auto tag) {
    using T = decltype(tag);
    const auto e = edges_of<P, T>(B, t.A, node, action, reward, discount, logits, value, invalid);
    const auto* s = in<P, std::int64_t>(state, "state", {B});
    i32* o = out<P, i32>(dst, "out", {B});
    launch(t, B, e.node, e.action, e.reward, e.discount, e.logits, e.value, e.invalid, s, o);
  });
}

// launch(tree, B, node)
template <class P, class Launch>
void backup(const py::tuple& tree, const py::object& node, Launch&& launch) {
  with_tree<P>(tree, [&](auto& t, py::ssize_t B, auto) {
    const i32* n = in<P, i32>(node, "node", {B});
    launch(t, B, n);
  });
}

// The model states of B trees of N nodes as byte rows (NumPy arrays; mcts::EmbeddingRows):
// `tree` (B, N, ...), `next` and `gathered` (B, ...) or None, one plain dtype, C-contiguous.
// All None: no states kept.
inline m::EmbeddingRows embedding_rows_of(py::ssize_t B, py::ssize_t N, const py::object& tree, const py::object& next,
                                          const py::object& gathered) {
  m::EmbeddingRows r;
  if (tree.is_none()) return r;
  auto rows = [&](const py::object& o, const char* name, py::ssize_t lead, const py::array* like) -> py::array {
    if (!py::isinstance<py::array>(o)) throw std::invalid_argument(std::string(name) + ": expected a NumPy array");
    auto a = py::reinterpret_borrow<py::array>(o);
    const std::string n(name);
    if (a.dtype().kind() == 'O') throw std::invalid_argument(n + ": object arrays cannot be copied as rows");
    if (!(a.flags() & py::array::c_style)) throw std::invalid_argument(n + ": must be C-contiguous");
    if (a.ndim() < lead || a.shape(0) != B || (lead == 2 && a.shape(1) != N))
      throw std::invalid_argument(n + ": unexpected shape");
    if (like) {
      if (a.dtype().kind() != like->dtype().kind() || a.itemsize() != like->itemsize() ||
          a.dtype().byteorder() != like->dtype().byteorder())
        throw std::invalid_argument(n + ": dtype differs from the tree's embeddings");
      if (a.ndim() + 1 != like->ndim()) throw std::invalid_argument(n + ": unexpected shape");
      for (py::ssize_t i = 1; i < a.ndim(); ++i)
        if (a.shape(i) != like->shape(i + 1)) throw std::invalid_argument(n + ": unexpected shape");
    }
    return a;
  };
  const py::array t = rows(tree, "embeddings", 2, nullptr);
  if (!t.writeable()) throw std::invalid_argument("embeddings: output is read-only");
  r.tree = static_cast<unsigned char*>(const_cast<void*>(t.data()));
  r.N = N;
  r.row_bytes = static_cast<index_t>(t.itemsize());
  for (py::ssize_t i = 2; i < t.ndim(); ++i) r.row_bytes *= static_cast<index_t>(t.shape(i));
  if (!next.is_none()) r.next = static_cast<const unsigned char*>(rows(next, "next_embedding", 1, &t).data());
  if (!gathered.is_none()) {
    const py::array g = rows(gathered, "gathered", 1, &t);
    if (!g.writeable()) throw std::invalid_argument("gathered: output is read-only");
    r.gathered = static_cast<unsigned char*>(const_cast<void*>(g.data()));
  }
  return r;
}

// launch(tree, B, params, node, action, reward, discount, prior_logits, value, invalid_actions
// or null, leaf, next_node or null, next_action or null, embedding rows): the callback path's
// simulation step (embeddings: host arrays or None; see embedding_rows_of).
template <class P, class Launch>
auto step(const py::tuple& tree, const py::object& params, const py::object& table, const py::object& node,
          const py::object& action, const py::object& reward, const py::object& discount, const py::object& logits,
          const py::object& value, const py::object& invalid, const py::object& leaf, const py::object& next_node,
          const py::object& next_action, const py::object& embeddings, const py::object& next_embedding,
          const py::object& gathered, Launch&& launch) {
  m::StepResult res;
  with_tree<P>(tree, [&](auto& t, py::ssize_t B, auto tag) {
    using T = decltype(tag);
    const auto p = params_of<P>(params, table);
    const auto e = edges_of<P, T>(B, t.A, node, action, reward, discount, logits, value, invalid);
    i32* o = out<P, i32>(leaf, "leaf", {B});
    i32* nn = next_node.is_none() ? nullptr : out<P, i32>(next_node, "next_node", {B});
    i32* na = next_node.is_none() ? nullptr : out<P, i32>(next_action, "next_action", {B});
    const auto emb = embedding_rows_of(B, t.N, embeddings, next_embedding, gathered);
    res = launch(t, B, p, e.node, e.action, e.reward, e.discount, e.logits, e.value, e.invalid, o, nn, na, emb);
  });
  return res;
}

// launch(tree, B, params, num_simulations, next_state, reward, discount, logits, prior, value,
//        invalid, transitions): whole searches on a tabular model of S states.
template <class P, class Launch>
void search_tabular(const py::tuple& tree, const py::object& params, const py::object& table,
                    std::int64_t num_simulations, const py::object& next_state, const py::object& reward,
                    const py::object& discount, const py::object& logits, const py::object& prior,
                    const py::object& value, const py::object& invalid, const py::object& cdf, std::uint64_t seed,
                    std::uint64_t stream0, Launch&& launch) {
  with_tree<P>(tree, [&](auto& t, py::ssize_t B, auto tag) {
    using T = decltype(tag);
    const auto p = params_of<P>(params, table);
    const py::ssize_t A = t.A;
    const auto ns_shape = shape_of<P>(next_state, "next_state");
    const py::ssize_t S = ns_shape.size() == 2 ? ns_shape[0] : -2;  // else the check below names it
    const auto* ns = in<P, std::int64_t>(next_state, "next_state", {S, A});
    const T* r = in<P, T>(reward, "reward", {S, A});
    const T* d = in<P, T>(discount, "discount", {S, A});
    const T* l = in<P, T>(logits, "logits", {S, A});
    const T* pr = in<P, T>(prior, "prior", {S, A});
    const T* v = in<P, T>(value, "value", {S});
    const u8* inv = in<P, u8>(invalid, "invalid", {S, A});
    m::Transitions tr;
    tr.S = S;
    tr.seed = seed;
    tr.stream0 = stream0;
    tr.cdf = in_or_null<P, double>(cdf, "cdf", {S, A, S});
    if (num_simulations < 0) throw std::invalid_argument("num_simulations: must be >= 0");
    launch(t, B, p, num_simulations, ns, r, d, l, pr, v, inv, tr);
  });
}

// launch(tree, B, actions, new_index, old_index, status)
template <class P, class Launch>
void advance(const py::tuple& tree, const py::object& action, const py::object& new_index, const py::object& old_index,
             const py::object& status, Launch&& launch) {
  with_tree<P>(tree, [&](auto& t, py::ssize_t B, auto) {
    const py::ssize_t N = t.N;
    const i32* a = in<P, i32>(action, "actions", {B});
    i32* ni = out<P, i32>(new_index, "new_index", {B, N});
    i32* oi = out<P, i32>(old_index, "old_index", {B, N});
    i32* st = out<P, i32>(status, "status", {B});
    launch(t, B, a, ni, oi, st);
  });
}

// launch(seed, stream0, alpha, B, A, out): Dirichlet(alpha) rows into out (B, A).
template <class P, class Launch>
void dirichlet_noise(std::uint64_t seed, std::uint64_t stream0, double alpha, const py::object& dst, Launch&& launch) {
  dispatch_float<P>(dst, "out", [&](auto tag) {
    using T = decltype(tag);
    const auto B = dim<P>(dst, "out", 0), A = dim<P>(dst, "out", 1);
    T* o = out<P, T>(dst, "out", {B, A});
    launch(seed, stream0, alpha, B, A, o);
  });
}

// launch(seed, stream0, B, A, out): Gumbel(0, 1) into out (B, A).
template <class P, class Launch>
void gumbel_noise(std::uint64_t seed, std::uint64_t stream0, const py::object& dst, Launch&& launch) {
  dispatch_float<P>(dst, "out", [&](auto tag) {
    using T = decltype(tag);
    const auto B = dim<P>(dst, "out", 0), A = dim<P>(dst, "out", 1);
    T* o = out<P, T>(dst, "out", {B, A});
    launch(seed, stream0, B, A, o);
  });
}

// launch(weights, B, A, temperature, seed, stream0, out): one action per row of weights (B, A).
template <class P, class Launch>
void sample_action(const py::object& weights, const py::object& temperature, std::uint64_t seed, std::uint64_t stream0,
                   const py::object& dst, Launch&& launch) {
  dispatch_float<P>(weights, "weights", [&](auto tag) {
    using T = decltype(tag);
    const auto B = dim<P>(weights, "weights", 0), A = dim<P>(weights, "weights", 1);
    const T* w = in<P, T>(weights, "weights", {B, A});
    const T* tp = in<P, T>(temperature, "temperature", {B});
    auto* o = out<P, std::int64_t>(dst, "out", {B});
    launch(w, B, A, tp, seed, stream0, o);
  });
}

}  // namespace pygenmod::bind::args::mcts
