"""The names of what crosses the Python <-> kernel boundary of pygenmod.mcts, as Python copies
of csrc/include/pygenmod/mcts_fields.hpp (the numba backend runs without the compiled
extension; tests/test_contracts.py checks these against the dicts ``_cpu_mcts`` exports).

- ``TREE_FIELDS``: the arrays of a tree, in the order the kernels take them as a tuple;
  ``VISITS`` ... ``QBOUNDS`` index that tuple (numba freezes these module ints as constants,
  so ``tree[CHILDREN]`` is a static tuple index). numba's on-disk cache of the package's
  kernels is keyed to this file too (pygenmod/_numba/_cache.py), so a change here recompiles.
- ``PARAM_FIELDS``: the entries of the float64 ``params`` array; ``P_POLICY`` ... index it.
  Build the array with :func:`pack_params` (by name, every entry given).
- ``POLICIES``, ``STATUS`` codes of expand/advance, and the special actions ``TERMINAL``
  (select: no valid action) and ``REEVALUATE`` (expand: ``REEVALUATE - a`` re-evaluates the
  existing child a at a max_depth cutoff).
"""

import numpy as np

TREE_FIELDS = (
    "visits",
    "value_sum",
    "raw_value",
    "reward",
    "discount",
    "parent",
    "action",
    "children",
    "logits",
    "prior",
    "invalid",
    "state",
    "num_nodes",
    "gumbel",
    "qbounds",
)
(
    VISITS,
    VALUE_SUM,
    RAW_VALUE,
    REWARD,
    DISCOUNT,
    PARENT,
    ACTION,
    CHILDREN,
    LOGITS,
    PRIOR,
    INVALID,
    STATE,
    NUM_NODES,
    GUMBEL,
    QBOUNDS,
) = range(len(TREE_FIELDS))

PARAM_FIELDS = (
    "policy",
    "pb_c_init",
    "pb_c_base",
    "value_scale",
    "maxvisit_init",
    "rescale_values",
    "use_mixed_value",
    "max_considered",
    "q_tree",
    "max_depth",
    "uct_c",
    "rollout_depth",
    "chance",
)
(
    P_POLICY,
    P_PB_C_INIT,
    P_PB_C_BASE,
    P_VALUE_SCALE,
    P_MAXVISIT_INIT,
    P_RESCALE_VALUES,
    P_USE_MIXED_VALUE,
    P_MAX_CONSIDERED,
    P_Q_TREE,
    P_MAX_DEPTH,
    P_UCT_C,
    P_ROLLOUT_DEPTH,
    P_CHANCE,
) = range(len(PARAM_FIELDS))

POLICIES = {"muzero": 0, "gumbel": 1, "uct": 2}
POLICY_MUZERO, POLICY_GUMBEL, POLICY_UCT = POLICIES["muzero"], POLICIES["gumbel"], POLICIES["uct"]

STATUS = {"OK": 0, "CAPACITY": -1, "ALREADY_EXPANDED": -2, "BAD_ACTION": -3, "NOT_EXPANDED": -4}
OK, CAPACITY, ALREADY_EXPANDED, BAD_ACTION, NOT_EXPANDED = (
    STATUS[k] for k in ("OK", "CAPACITY", "ALREADY_EXPANDED", "BAD_ACTION", "NOT_EXPANDED")
)

ACTION_CODES = {"TERMINAL": -1, "REEVALUATE": -2}
TERMINAL, REEVALUATE = ACTION_CODES["TERMINAL"], ACTION_CODES["REEVALUATE"]


def pack_params(**values) -> np.ndarray:
    """The float64 ``params`` array from every entry of PARAM_FIELDS, given by name."""
    missing = set(PARAM_FIELDS) - set(values)
    extra = set(values) - set(PARAM_FIELDS)
    if missing or extra:  # a programming error of the caller, not a user input error
        raise TypeError(f"pack_params: missing {sorted(missing)}, unknown {sorted(extra)}")
    return np.array([float(values[name]) for name in PARAM_FIELDS], np.float64)
