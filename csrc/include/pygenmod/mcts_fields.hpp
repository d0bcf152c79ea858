// The names of what crosses the Python <-> C++ boundary of the batched MCTS, defined once:
// the arrays of a tree (the bindings take them as a tuple in this order), the entries of the
// float64 `params` array, and the status codes of expand / advance. The bindings export them
// as dicts (TREE_FIELDS, PARAM_FIELDS, POLICIES, STATUS, ACTION_CODES: name -> value);
// pygenmod/_mcts_fields.py holds the Python copies (the numba backend runs without the
// extension) and tests/test_contracts.py checks that the two agree. No Python here.
#pragma once

#include <cstdint>

// X(name): the tree arrays, in tuple order (layout: mcts.hpp).
#define PGM_MCTS_TREE_FIELDS(X) \
  X(visits)                     \
  X(value_sum)                  \
  X(raw_value)                  \
  X(reward)                     \
  X(discount)                   \
  X(parent)                     \
  X(action)                     \
  X(children)                   \
  X(logits)                     \
  X(prior)                      \
  X(invalid)                    \
  X(state)                      \
  X(num_nodes)                  \
  X(gumbel)                     \
  X(qbounds)

// X(name): the search parameters, in array order; each is the mcts::Params member of the same
// name (make_params reads them by these names).
#define PGM_MCTS_PARAM_FIELDS(X) \
  X(policy)                      \
  X(pb_c_init)                   \
  X(pb_c_base)                   \
  X(value_scale)                 \
  X(maxvisit_init)               \
  X(rescale_values)              \
  X(use_mixed_value)             \
  X(max_considered)              \
  X(q_tree)                      \
  X(max_depth)                   \
  X(uct_c)                       \
  X(rollout_depth)               \
  X(chance)

namespace pygenmod::mcts {

// tree_field::visits ... : index of each array in the tree tuple; tree_field::count of them.
namespace tree_field {
#define PGM_X(name) name,
enum : int { PGM_MCTS_TREE_FIELDS(PGM_X) count };
#undef PGM_X
#define PGM_X(name) #name,
constexpr const char* names[] = {PGM_MCTS_TREE_FIELDS(PGM_X)};
#undef PGM_X
}  // namespace tree_field

// param::policy ... : index of each search parameter in `params`; param::count of them.
namespace param {
#define PGM_X(name) name,
enum : int { PGM_MCTS_PARAM_FIELDS(PGM_X) count };
#undef PGM_X
#define PGM_X(name) #name,
constexpr const char* names[] = {PGM_MCTS_PARAM_FIELDS(PGM_X)};
#undef PGM_X
}  // namespace param

// Values of params[param::policy] (exported as POLICIES: the names pygenmod.mcts takes).
enum : int { kPolicyMuzero = 0, kPolicyGumbel = 1, kPolicyUct = 2 };

// Status codes returned by expand / advance: 0 or the index of a node (expand), or one of
// these negative codes (named in Python by pygenmod/_mcts_fields.py).
enum : std::int32_t { kOk = 0, kCapacity = -1, kAlreadyExpanded = -2, kBadAction = -3, kNotExpanded = -4 };

// Special values of an action passed to expand / returned by select:
//   kTerminal (-1): no action, the descent ended at a terminal node (expand re-evaluates it);
//   kReevaluate - a (<= -2): re-evaluate the existing child a (a max_depth cutoff).
enum : std::int32_t { kTerminal = -1, kReevaluate = -2 };

}  // namespace pygenmod::mcts
