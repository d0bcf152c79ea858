"""Batched Monte Carlo tree search: MuZero, Gumbel MuZero and classic UCT policies over a
batch of trees (chance nodes for stochastic tabular models).

A batch of B trees is a struct of arrays (:class:`Tree`) with a node capacity chosen
independently of the number of simulations, so a tree can be kept between moves
(:func:`advance`) and grown (:meth:`Tree.grow`). The tree steps are compiled kernels
(C++ threads over trees, numba, CUDA with one thread per tree); Python only calls the model.

Two ways to give the model:

- a callback ``recurrent_fn(embeddings, actions) -> (reward, discount, prior_logits, value,
  next_embedding[, invalid_actions[, player_changed]])``, called once per simulation with
  the whole batch of leaves (any framework: arrays are handed over zero-copy with DLPack), and a :class:`Root`;
- a :class:`TabularModel` (next_state[S, A], reward[S, A], prior_logits[S, A], value[S],
  discount, optional terminal[S], invalid_actions[S, A] and player_changed[S, A]) and the
  root states [B]: the whole search then runs in compiled code with no Python in the loop.
  :func:`stochastic_tabular_model` (transition probabilities P[S, A, S']) and
  :func:`mdp_model` (a ``pygenmod.mdp`` problem P, R, gamma) sample the next state of every
  expansion natively from the package's Philox RNG.

Semantics follow mctx (google-deepmind/mctx): :func:`muzero_policy` is PUCT with
``pb_c_init``/``pb_c_base``, Q normalised per node by min-max over the node's value and its
visited children (mctx ``qtransform_by_parent_and_siblings``), Dirichlet noise at the root
and a temperature for acting; :func:`gumbel_muzero_policy` is Gumbel top-k with sequential
halving at the root, the deterministic improved-policy selection inside the tree, completed
Q-values by the mixed value (``qtransform_completed_by_mix_value``) and the improved policy
``softmax(logits + completed_q)`` as action weights. Differences from mctx:

- ties are broken deterministically by the lowest action index (mctx adds 1e-7 noise);
- invalid-action masks apply at every node (a mask per node from the model or the table),
  not only at the root; a node without any valid action is terminal: a simulation that
  reaches it backs up its value again instead of expanding;
- noise comes from the package's counter-based Philox RNG, so a seed gives the same tree on
  every backend and a tree's noise does not depend on the other trees in the batch.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable, NamedTuple

import numpy as np

from . import _mcts_fields as F
from . import _recycle
from . import _validate as val
from ._arrays import is_device, returner, to_native, xp_of
from ._backend import BackendError
from ._dispatch import kernel
from ._seed import resolve_seed
from ._status import OnStatus, Status, check_on_status, report
from ._typing import Array, ArrayLike, DTypeLike, MctsPolicy, QNormalization, SeedLike

#: the arrays of a :class:`Tree`, in the order the kernels take them (csrc/include/pygenmod/mcts_fields.hpp)
TREE_FIELDS = F.TREE_FIELDS

_ERRORS = {
    F.CAPACITY: "capacity exceeded (the tree is full; grow it with Tree.grow or pass a larger capacity)",
    F.ALREADY_EXPANDED: "the action at this node is already expanded",
    F.BAD_ACTION: "node or action index out of range",
    F.NOT_EXPANDED: "the root's child for this action was never expanded (start a fresh search)",
}


# ----------------------------------------------------------------------------- data types
class Root(NamedTuple):
    """The model's output at the roots: prior_logits [B, A], value [B], embedding [B, ...]."""

    prior_logits: object
    value: object
    embedding: object = None


class RecurrentOutput(NamedTuple):
    """What ``recurrent_fn(embeddings, actions)`` returns (a plain tuple works too)."""

    reward: object  #: [B]
    discount: object  #: [B]; negative for a change of player (two-player zero-sum: -gamma)
    prior_logits: object  #: [B, A]
    value: object  #: [B]
    next_embedding: object  #: [B, ...] or None
    invalid_actions: object = None  #: optional [B, A] bool mask of the new nodes
    #: optional [B] bool: the player to move changed along this edge (non-alternating turns);
    #: the edge's discount is then -|discount| (see :func:`_fold_player_changed`)
    player_changed: object = None


class TabularModel(NamedTuple):
    """A known tabular model; build it with :func:`tabular_model` (validates and converts).

    The per-state node data is precomputed once: ``logits`` are the prior logits shifted by
    their max over valid actions (-inf where invalid), ``prior`` their softmax; a terminal
    state has value 0 and every action invalid.
    """

    next_state: object  #: [S, A] int64
    reward: object  #: [S, A]
    discount: object  #: [S, A]
    logits: object  #: [S, A]
    prior: object  #: [S, A]
    value: object  #: [S]
    invalid: object  #: [S, A] uint8 (1 = invalid; all 1 for terminal states)
    terminal: object  #: [S] uint8
    #: [S, A, S] float64 cumulative transition probabilities (stochastic models, see
    #: :func:`stochastic_tabular_model`), or None: deterministic ``next_state``
    cdf: object = None


class PolicyOutput(NamedTuple):
    action: object  #: [B] int64, the action to play
    action_weights: object  #: [B, A], the policy target
    visit_counts: object  #: [B, A] int32, visits of the root's children
    value: object  #: [B], the root's search value
    tree: "Tree"

    @property
    def status(self) -> Array:
        """[B] uint32 :class:`pygenmod.Status` per tree: ``Status.OVERFLOW`` where the tree's
        returns or the action weights are not finite (see ``on_status``), else 0."""
        return returner(self.action_weights)(_overflow_rows(self.tree.value_sum, self.action_weights))


@dataclasses.dataclass
class Tree:
    """A batch of search trees as arrays (see csrc/include/pygenmod/mcts.hpp for the layout).

    Node 0 is the root. ``embeddings`` ([B, N, ...], callback path) holds the model state of
    each node; in the tabular path ``state`` holds the model state instead.
    """

    visits: object
    value_sum: object
    raw_value: object
    reward: object
    discount: object
    parent: object
    action: object
    children: object
    logits: object
    prior: object
    invalid: object
    state: object
    num_nodes: object
    gumbel: object
    #: [B, 2] (min, max) of reward + discount * value over the backed-up paths (MuZero's
    #: MinMaxStats, used by q_normalization="tree"); (+inf, -inf) while empty
    qbounds: object
    embeddings: object = None
    #: converts gathered embeddings/actions back to the caller's array type (torch, jax...)
    emb_back: object = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def batch_size(self) -> int:
        return int(self.children.shape[0])

    @property
    def capacity(self) -> int:
        return int(self.children.shape[1])

    @property
    def num_actions(self) -> int:
        return int(self.children.shape[2])

    @property
    def dtype(self) -> np.dtype:
        return self.logits.dtype

    def arrays(self) -> tuple[Array, ...]:
        return tuple(getattr(self, f) for f in TREE_FIELDS)

    def copy(self) -> "Tree":
        emb = None if self.embeddings is None else self.embeddings.copy()
        return Tree(**{f: getattr(self, f).copy() for f in TREE_FIELDS}, embeddings=emb, emb_back=self.emb_back)

    def node_values(self) -> Array:
        """[B, N] mean backed-up value of every node (0 for free slots)."""
        xp = xp_of(self.visits)
        return self.value_sum / xp.maximum(self.visits, 1).astype(self.dtype)

    def qvalues(self, node: int | ArrayLike = 0) -> Array:
        """[B, A] Q(node, a) = reward + discount * value of each child (0 when unexpanded)."""
        xp = xp_of(self.visits)
        ch = self._children_of(node)
        safe = xp.maximum(ch, 0)
        rows = xp.arange(self.batch_size)[:, None]
        n = xp.maximum(self.visits[rows, safe], 1).astype(self.dtype)
        q = self.reward[rows, safe] + self.discount[rows, safe] * (self.value_sum[rows, safe] / n)
        return xp.where(ch >= 0, q, 0).astype(self.dtype)

    def child_visits(self, node: int | ArrayLike = 0) -> Array:
        """[B, A] int32 visit counts of the children of ``node`` (per tree)."""
        xp = xp_of(self.visits)
        ch = self._children_of(node)
        return xp.where(ch >= 0, self.visits[xp.arange(self.batch_size)[:, None], xp.maximum(ch, 0)], 0).astype(
            xp.int32
        )

    def _children_of(self, node) -> Array:
        """[B, A] child indices of ``node`` (one index for all trees, or one per tree)."""
        if isinstance(node, (int, np.integer)) and 0 <= node < self.capacity:
            return self.children[:, int(node)]  # the same node in every tree: a view, no gather
        xp = xp_of(self.visits)
        B = self.batch_size
        node = xp.broadcast_to(xp.asarray(node, dtype=xp.int64), (B,))
        return self.children[xp.arange(B), node]

    def grow(self, capacity: int) -> "Tree":
        """A copy with room for ``capacity`` nodes per tree (existing nodes kept)."""
        capacity = _capacity(capacity)
        if capacity < self.capacity:
            raise ValueError(f"capacity: cannot shrink a tree from {self.capacity} to {capacity} nodes")
        xp = xp_of(self.visits)
        new = new_tree(self.batch_size, self.num_actions, capacity, self.dtype, xp=xp)
        N = self.capacity
        for f in TREE_FIELDS:
            a, b = getattr(self, f), getattr(new, f)
            if f in ("num_nodes", "gumbel", "qbounds"):
                b[...] = a
            else:
                b[:, :N] = a
        if self.embeddings is not None:
            emb = xp.zeros((self.batch_size, capacity) + self.embeddings.shape[2:], self.embeddings.dtype)
            emb[:, :N] = self.embeddings
            new.embeddings = emb
        new.emb_back = self.emb_back
        return new


def new_tree(batch_size: int, num_actions: int, capacity: int, dtype: DTypeLike = np.float64, *, xp: Any = np) -> Tree:
    """An empty batch of trees (no root yet; see :func:`init_root`)."""
    B = val.positive_int(batch_size, "batch_size", minimum=0)
    A = val.positive_int(num_actions, "num_actions")
    N = _capacity(capacity)
    dtype = val.float_dtype(dtype)
    # host trees big enough to fault their pages in reuse the arrays of trees nothing holds any
    # more (pygenmod._recycle); small ones and device trees are allocated as they are
    if xp is np and B * N * A * 4 >= _recycle.MIN_BYTES:
        full = _recycle.full
    else:
        full = functools.partial(_recycle.allocate, xp=xp)
    i32 = np.int32
    return Tree(
        visits=full((B, N), 0, i32),
        value_sum=full((B, N), 0, dtype),
        raw_value=full((B, N), 0, dtype),
        reward=full((B, N), 0, dtype),
        discount=full((B, N), 0, dtype),
        parent=full((B, N), -1, i32),
        action=full((B, N), -1, i32),
        children=full((B, N, A), -1, i32),
        logits=full((B, N, A), 0, dtype),
        prior=full((B, N, A), 0, dtype),
        invalid=full((B, N, A), 0, np.uint8),
        state=full((B, N), 0, np.int64),
        num_nodes=full((B,), 0, i32),
        gumbel=full((B, A), 0, dtype),
        qbounds=_empty_bounds(B, dtype, xp),
    )


#: node indices are int32: a tree holds at most this many nodes
MAX_CAPACITY = 2**31 - 1
UCT_EXPLORATION = math.sqrt(2)  #: UCB1's exploration constant c in Q + c * sqrt(ln N / n)


def _capacity(capacity, name="capacity") -> int:
    N = val.positive_int(capacity, name)
    if N > MAX_CAPACITY:
        raise ValueError(f"{name}: at most {MAX_CAPACITY} nodes (int32 node indices), got {N}")
    return N


def _empty_bounds(B, dtype, xp):
    qb = xp.empty((B, 2), dtype)
    qb[:, 0] = np.inf
    qb[:, 1] = -np.inf
    return qb


def _mask(x, name, shape, xp):
    """An optional boolean mask as uint8 (1 = invalid), shape-checked."""
    if x is None:
        return None
    m = to_native(x)
    if xp_of(m) is not xp:
        m = xp.asarray(m)
    if m.dtype.kind not in "biu":
        raise TypeError(f"{name}: expected a boolean mask, got dtype {m.dtype}")
    val.check_shape(m, name, shape)
    return xp.ascontiguousarray(m != 0, dtype=xp.uint8)


def _fold_player_changed(discount, changed):
    """The per-edge discount with the player-changed flag folded into its sign.

    A tree stores one signed discount per edge (mctx's convention: negative = the player to
    move changed, so the child's value is seen from the parent's player with its sign
    flipped). Where ``changed`` is set the discount becomes -|discount|; elsewhere it is kept
    as given, so a negative discount still means a change of player (backward compatible).
    Folding it here, once, means select/backup and every backend need no second code path.
    """
    if changed is None:
        return discount
    xp = xp_of(discount)
    return xp.ascontiguousarray(xp.where(changed != 0, -xp.abs(discount), discount).astype(discount.dtype))


def _normalise(logits, invalid):
    """(shifted logits with -inf where invalid, softmax, invalid uint8) along the last axis."""
    xp = xp_of(logits)
    bad = (invalid != 0) | (logits == -xp.inf)
    m = xp.max(xp.where(bad, -xp.inf, logits), axis=-1, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0)
    lg = xp.where(bad, -xp.inf, logits - m).astype(logits.dtype)
    e = xp.where(bad, 0, xp.exp(lg))
    z = e.sum(-1, keepdims=True)
    prior = xp.where(z > 0, e / xp.where(z > 0, z, 1), 0).astype(logits.dtype)
    return lg, prior, bad.astype(xp.uint8)


def _set_root_logits(tree: Tree, logits, invalid, prior=None) -> None:
    """Root logits (shifted by their max over valid actions, -inf where invalid) and prior."""
    xp = xp_of(tree.visits)
    if prior is None:
        logits, prior, invalid = _normalise(logits.astype(tree.dtype), invalid)
    dead = xp.all(invalid != 0, axis=-1)
    if bool(xp.any(dead)):
        raise ValueError(f"invalid_actions: all actions are invalid at the root of tree {int(xp.argmax(dead))}")
    tree.logits[:, 0] = logits
    tree.prior[:, 0] = prior
    tree.invalid[:, 0] = invalid


def init_root(
    tree: Tree,
    prior_logits: ArrayLike,
    value: ArrayLike,
    *,
    invalid_actions: ArrayLike | None = None,
    state: ArrayLike | None = None,
    embedding: Any = None,
) -> Tree:
    """Resets every tree to a single root node with the model's output at the root."""
    xp = xp_of(tree.visits)
    B, A = tree.batch_size, tree.num_actions
    logits = _float(prior_logits, "prior_logits", (B, A), tree.dtype, xp, allow_neg_inf=True)
    value = _float(value, "value", (B,), tree.dtype, xp)
    inv = _mask(invalid_actions, "invalid_actions", (B, A), xp)
    for f in TREE_FIELDS:
        getattr(tree, f)[...] = -1 if f in ("parent", "action", "children") else 0
    tree.embeddings = tree.emb_back = None
    return _fill_root(tree, logits, value, inv, state, embedding)


def _fill_root(tree: Tree, logits, value, inv, state, embedding, prior=None) -> Tree:
    """Writes the roots into a freshly reset tree (inputs already validated)."""
    xp = xp_of(tree.visits)
    B, A = tree.batch_size, tree.num_actions
    tree.visits[:, 0] = 1
    tree.value_sum[:, 0] = value
    tree.raw_value[:, 0] = value
    tree.discount[:, 0] = 1
    tree.num_nodes[:] = 1
    tree.qbounds[:, 0] = np.inf
    tree.qbounds[:, 1] = -np.inf
    if state is not None:
        st = val.int_array(state, "state", ndim=1, xp=xp)
        val.check_shape(st, "state", (B,))
        tree.state[:, 0] = st
    _set_root_logits(tree, logits, xp.zeros((B, A), xp.uint8) if inv is None else inv, prior)
    if embedding is not None:
        emb = to_native(embedding)
        if xp_of(emb) is not xp:
            emb = xp.asarray(emb)
        if emb.ndim < 1 or emb.shape[0] != B:
            raise ValueError(f"embedding: expected a leading batch axis of {B}, got shape {emb.shape}")
        tree.embeddings = xp.zeros((B, tree.capacity) + emb.shape[1:], emb.dtype)
        tree.embeddings[:, 0] = emb
        tree.emb_back = returner(embedding)
    return tree


def _float(x, name, shape, dtype, xp, allow_neg_inf=False):
    a = val.float_array(x, name, dtype=dtype, xp=xp, finite=False)
    val.check_shape(a, name, shape)
    if a.size:
        bad = xp.isnan(a) | ((a == xp.inf) if allow_neg_inf else ~xp.isfinite(a))
        if bool(bad.any()):
            raise ValueError(
                f"{name}: contains NaN or infinity" + (" (-inf marks an invalid action)" if allow_neg_inf else "")
            )
    return a


# ----------------------------------------------------------------------------- tabular models
def tabular_model(
    next_state: ArrayLike,
    reward: ArrayLike,
    prior_logits: ArrayLike,
    value: ArrayLike,
    discount: ArrayLike = 1.0,
    *,
    terminal: ArrayLike | None = None,
    invalid_actions: ArrayLike | None = None,
    player_changed: ArrayLike | None = None,
    dtype: DTypeLike | None = None,
) -> TabularModel:
    """A validated :class:`TabularModel` (deterministic transitions).

    next_state [S, A] int; reward, prior_logits [S, A]; value [S]; discount a scalar or
    [S, A] (negative for a change of player); terminal [S] bool (entering a terminal state:
    value 0, no valid action); invalid_actions [S, A] bool; player_changed [S, A] bool (the
    player to move at next_state differs from the one at the state: non-alternating turns;
    the stored discount is -|discount| there). Values and rewards are seen from the player to
    move at the state they belong to. dtype: float32/float64 (default: prior_logits' dtype).
    """
    xp = xp_of(to_native(prior_logits))
    L = val.float_array(prior_logits, "prior_logits", ndim=2, dtype=dtype, xp=xp, finite=False)
    S, A = L.shape
    if S == 0:
        raise ValueError("prior_logits: the model needs at least one state")
    L = _float(L, "prior_logits", (S, A), L.dtype, xp, allow_neg_inf=True)
    ns = val.int_array(next_state, "next_state", ndim=2, xp=xp)
    val.check_shape(ns, "next_state", (S, A))
    if bool(((ns < 0) | (ns >= S)).any()):
        raise ValueError(f"next_state: entries must be state indices in [0, {S})")
    R = _float(reward, "reward", (S, A), L.dtype, xp)
    V = _float(value, "value", (S,), L.dtype, xp)
    if np.ndim(discount) == 0 and not hasattr(discount, "shape"):
        d = float(discount)
        if not math.isfinite(d) or abs(d) > 1:
            raise ValueError(f"discount: must be in [-1, 1], got {discount}")
        D = xp.full((S, A), d, L.dtype)
    else:
        D = _float(discount, "discount", (S, A), L.dtype, xp)
        if bool((xp.abs(D) > 1).any()):
            raise ValueError("discount: must be in [-1, 1]")
    D = _fold_player_changed(D, _mask(player_changed, "player_changed", (S, A), xp))
    term = _mask(terminal, "terminal", (S,), xp)
    inv = _mask(invalid_actions, "invalid_actions", (S, A), xp)
    term = xp.zeros(S, xp.uint8) if term is None else term
    inv = xp.zeros((S, A), xp.uint8) if inv is None else inv
    lg, prior, bad = _normalise(L, inv)
    dead = bad.all(-1) & (term == 0)
    if bool(dead.any()):
        raise ValueError(
            f"invalid_actions: all actions are invalid in non-terminal state {int(xp.argmax(dead))} (mark it terminal)"
        )
    t = term[:, None] != 0
    lg = xp.where(t, -xp.inf, lg).astype(L.dtype)
    prior = xp.where(t, 0, prior).astype(L.dtype)
    bad = xp.where(t, 1, bad).astype(xp.uint8)
    V = xp.where(term != 0, 0, V).astype(L.dtype)
    return TabularModel(
        ns, R, D, xp.ascontiguousarray(lg), xp.ascontiguousarray(prior), V, xp.ascontiguousarray(bad), term
    )


def stochastic_tabular_model(
    transition: ArrayLike,
    reward: ArrayLike,
    prior_logits: ArrayLike,
    value: ArrayLike,
    discount: ArrayLike = 1.0,
    *,
    terminal: ArrayLike | None = None,
    invalid_actions: ArrayLike | None = None,
    player_changed: ArrayLike | None = None,
    dtype: DTypeLike | None = None,
    atol: float = 1e-6,
) -> TabularModel:
    """A validated :class:`TabularModel` with stochastic transitions P[S, A, S'] (dense).

    Every expansion samples the child's state from P[s, a, :] by inverse CDF with the
    package's Philox RNG: the uniform of tree b at simulation k is element k of the float64
    uniform layout of stream (4 << 56) | b under the search's ``seed`` (see mcts.hpp), so a
    search is deterministic given the seed, each tree's draws are independent of the other
    trees, and every backend draws the same states (the CDF is float64 whatever ``dtype``).
    A search continued with ``tree=`` restarts k at 0: with ``seed=None`` (the default) every
    search draws a fresh key from the package generator; an explicit seed repeats its draws.
    Each row of P must be nonnegative and sum to 1 within ``atol`` (rows are renormalised).
    The other arguments are those of :func:`tabular_model`; ``next_state`` of the result
    holds each row's most probable state. A one-hot P gives exactly the deterministic search.
    """
    xp = xp_of(to_native(prior_logits))
    P = val.float_array(transition, "transition", ndim=3, dtype=np.float64, xp=xp, finite=False)
    S = int(P.shape[0])
    L = val.float_array(prior_logits, "prior_logits", ndim=2, dtype=dtype, xp=xp, finite=False)
    if P.shape[2] != S or tuple(P.shape[:2]) != tuple(L.shape):
        raise ValueError(f"transition: expected shape (S, A, S) matching prior_logits, got {tuple(P.shape)}")
    if P.size and not bool(xp.isfinite(P).all()):
        raise ValueError("transition: contains NaN or infinity")
    if P.size and bool((P < 0).any()):
        raise ValueError("transition: probabilities must be >= 0")
    tot = P.sum(-1)
    if tot.size and bool((xp.abs(tot - 1) > atol).any()):
        bad = int(xp.argmax(xp.abs(tot - 1).reshape(-1)))
        raise ValueError(
            f"transition: every row P[s, a, :] must sum to 1 (row (s={bad // P.shape[1]}, "
            f"a={bad % P.shape[1]}) sums to {float(tot.reshape(-1)[bad])})"
        )
    base = tabular_model(
        xp.argmax(P, -1),
        reward,
        prior_logits,
        value,
        discount,
        terminal=terminal,
        invalid_actions=invalid_actions,
        player_changed=player_changed,
        dtype=dtype,
    )
    cdf = xp.cumsum(P / tot[..., None], axis=-1)
    # last entry exactly 1 from the last state with positive probability on (never below any u)
    pos = P > 0
    last = S - 1 - xp.argmax(pos[..., ::-1], axis=-1)
    cdf = xp.where(xp.arange(S) >= last[..., None], 1.0, cdf)
    return base._replace(cdf=xp.ascontiguousarray(cdf, dtype=xp.float64))


def mdp_model(
    P: Any,
    R: ArrayLike,
    gamma: ArrayLike,
    *,
    prior_logits: ArrayLike | None = None,
    value: ArrayLike | None = None,
    terminal: ArrayLike | None = None,
    dtype: DTypeLike | None = None,
    atol: float = 1e-6,
) -> TabularModel:
    """A stochastic tabular model from a ``pygenmod.mdp`` problem (dense P[S, A, S'], R[S, A]).

    gamma is the discount of every edge; prior_logits default to uniform (zeros [S, A]) and
    value to 0 (e.g. pass value iteration's V as a perfect value estimate).
    """
    xp = xp_of(to_native(R))
    Rn = val.float_array(R, "R", ndim=2, dtype=dtype, xp=xp)
    S, A = Rn.shape
    L = xp.zeros((S, A), Rn.dtype) if prior_logits is None else prior_logits
    V = xp.zeros(S, Rn.dtype) if value is None else value
    return stochastic_tabular_model(P, Rn, L, V, gamma, terminal=terminal, dtype=dtype, atol=atol)


# ----------------------------------------------------------------------------- parameters
@functools.lru_cache(maxsize=64)
def considered_visits_table(max_num_considered_actions: int, num_simulations: int) -> np.ndarray:
    """Sequential halving's visit-count schedule (mctx get_table_of_considered_visits).

    Row m is the sequence, over simulations, of the visit count an action must have to be
    considered when m actions are considered. Shape (max_num_considered_actions + 1, L).
    """
    M, L = max_num_considered_actions, max(num_simulations, 1)
    rows = []
    for m in range(M + 1):
        if m <= 1:
            rows.append(list(range(L)))
            continue
        log2max = int(math.ceil(math.log2(m)))
        seq, visits, k = [], [0] * m, m
        while len(seq) < L:
            extra = max(1, int(L / (log2max * k)))
            for _ in range(extra):
                seq.extend(visits[:k])
                for i in range(k):
                    visits[i] += 1
            k = max(2, k // 2)
        rows.append(seq[:L])
    t = np.asarray(rows, dtype=np.int32)
    t.setflags(write=False)
    return t


_NO_TABLE = np.zeros((1, 1), np.int32)
_NO_TABLE.setflags(write=False)  # read-only like every schedule table: one numba signature for both


def _params(
    policy,
    *,
    pb_c_init=1.25,
    pb_c_base=19652.0,
    value_scale=0.1,
    maxvisit_init=50.0,
    rescale_values=True,
    use_mixed_value=True,
    max_num_considered_actions=16,
    num_simulations=1,
    q_normalization="node",
    max_depth=None,
    num_actions=None,
    exploration=UCT_EXPLORATION,
    rollout_depth=0,
    chance_nodes=False,
):
    val.choice(policy, "policy", ("muzero", "gumbel", "uct"))
    val.choice(q_normalization, "q_normalization", ("node", "tree"))
    if q_normalization == "tree" and policy != "muzero":
        raise ValueError('q_normalization: "tree" applies to policy="muzero" only')
    for name, v in (
        ("pb_c_init", pb_c_init),
        ("pb_c_base", pb_c_base),
        ("value_scale", value_scale),
        ("maxvisit_init", maxvisit_init),
        ("exploration", exploration),
    ):
        if not math.isfinite(float(v)):
            raise ValueError(f"{name}: must be finite, got {v}")
    if float(exploration) < 0:
        raise ValueError(f"exploration: must be >= 0, got {exploration}")
    rollout = val.positive_int(rollout_depth, "rollout_depth", minimum=0, maximum=2**31 - 1)
    if float(pb_c_base) <= 0:
        raise ValueError(f"pb_c_base: must be > 0, got {pb_c_base}")
    M = val.positive_int(max_num_considered_actions, "max_num_considered_actions")
    if num_actions is not None:  # at most A actions are ever considered (the table is O(M^2))
        M = min(M, int(num_actions))
    depth = 0 if max_depth is None else val.positive_int(max_depth, "max_depth")
    params = F.pack_params(
        policy=F.POLICIES[policy],
        pb_c_init=pb_c_init,
        pb_c_base=pb_c_base,
        value_scale=value_scale,
        maxvisit_init=maxvisit_init,
        rescale_values=bool(rescale_values),
        use_mixed_value=bool(use_mixed_value),
        max_considered=M if policy == "gumbel" else 0,
        q_tree=q_normalization == "tree",
        max_depth=depth,
        uct_c=exploration,
        rollout_depth=rollout,
        chance=bool(chance_nodes),
    )
    table = considered_visits_table(M, num_simulations) if policy == "gumbel" else _NO_TABLE
    return params, table


def _on(xp, params, table):
    """The kernels' (params, table): params stay a host array (read by the launchers)."""
    return params, (table if xp is np else xp.asarray(table))


def _kernel(tree: Tree, name: str):
    return kernel("mcts", name, is_device(tree.visits))[1]


# ----------------------------------------------------------------------------- operations
def select(
    tree: Tree, *, policy: MctsPolicy = "muzero", num_simulations: int | None = None, **kw
) -> tuple[Array, Array]:
    """Descends every tree from its root to the first unexpanded edge.

    Returns (node [B] int32, action [B] int32); action -1 means the descent ended at a
    terminal node (no valid action). ``policy``: "muzero" (PUCT; kw pb_c_init, pb_c_base,
    q_normalization "node" or "tree", see :func:`muzero_policy`), "uct" (UCB1; kw
    exploration, see :func:`uct_policy`) or
    "gumbel" (kw max_num_considered_actions, value_scale, maxvisit_init, rescale_values,
    use_mixed_value; num_simulations sets the sequential-halving schedule). ``max_depth``
    (both policies) ends the descent after that many edges: the returned action's child may
    then exist already (re-evaluate it with ``expand(..., action=-2 - a)``: actions below -1
    encode a re-evaluation of the existing child ``a = -2 - action``).
    """
    xp = xp_of(tree.visits)
    _check_has_root(tree)
    params, table = _params(
        policy, num_simulations=num_simulations or tree.capacity, num_actions=tree.num_actions, **kw
    )
    node = xp.empty(tree.batch_size, xp.int32)
    action = xp.empty(tree.batch_size, xp.int32)
    _kernel(tree, "select")(tree.arrays(), *_on(xp, params, table), node, action)
    return node, action


def expand(
    tree: Tree,
    node: ArrayLike,
    action: ArrayLike,
    reward: ArrayLike,
    discount: ArrayLike,
    prior_logits: ArrayLike,
    value: ArrayLike,
    *,
    invalid_actions: ArrayLike | None = None,
    embedding: Any = None,
    state: ArrayLike | None = None,
    player_changed: ArrayLike | None = None,
) -> Array:
    """Attaches the child reached by ``action`` from ``node`` in every tree.

    The new node gets the model's prior logits (-inf or ``invalid_actions`` mark invalid
    actions), value, and the edge's reward and discount (stored as -|discount| where the
    [B] bool ``player_changed`` is set). action -1 re-evaluates a terminal
    node. Returns the [B] int32 index of the node to back up from.
    """
    xp = xp_of(tree.visits)
    B, A = tree.batch_size, tree.num_actions
    node = val.int_array(node, "node", ndim=1, xp=xp, dtype=np.int32)
    action = val.int_array(action, "action", ndim=1, xp=xp, dtype=np.int32)
    val.check_shape(node, "node", (B,))
    val.check_shape(action, "action", (B,))
    r = _float(reward, "reward", (B,), tree.dtype, xp)
    d = _float(discount, "discount", (B,), tree.dtype, xp)
    d = _fold_player_changed(d, _mask(player_changed, "player_changed", (B,), xp))
    lg = _float(prior_logits, "prior_logits", (B, A), tree.dtype, xp, allow_neg_inf=True)
    v = _float(value, "value", (B,), tree.dtype, xp)
    inv = _mask(invalid_actions, "invalid_actions", (B, A), xp)
    st = tree.num_nodes.astype(xp.int64) if state is None else val.int_array(state, "state", ndim=1, xp=xp)
    out = xp.empty(B, xp.int32)
    _kernel(tree, "expand")(tree.arrays(), node, action, r, d, lg, v, inv, st, out)
    _raise_codes(out, "expand")
    if embedding is not None and tree.embeddings is not None:
        e = to_native(embedding)
        ok = action >= 0
        rows = xp.arange(B)
        tree.embeddings[rows[ok], out[ok]] = xp.asarray(e)[ok]
    return out


def backup(tree: Tree, node: ArrayLike) -> None:
    """Backs the value of ``node`` up to the root of every tree (reward + discount * G per edge)."""
    xp = xp_of(tree.visits)
    node = val.int_array(node, "node", ndim=1, xp=xp, dtype=np.int32)
    val.check_shape(node, "node", (tree.batch_size,))
    if bool(((node < 0) | (node >= tree.num_nodes)).any()):
        raise ValueError("node: index outside the tree")
    _kernel(tree, "backup")(tree.arrays(), node)


def advance(tree: Tree, actions: ArrayLike) -> Tree:
    """Keeps the subtree under each root's child ``actions[b]`` as the new tree (in place).

    The arrays are compacted: the kept nodes move to the front in their old order (the new
    root at index 0) and the rest is cleared, so the next search has the capacity back.
    """
    xp = xp_of(tree.visits)
    B, N = tree.batch_size, tree.capacity
    _check_has_root(tree)
    act = val.int_array(actions, "actions", ndim=1, xp=xp)
    val.check_shape(act, "actions", (B,))
    # Validate every tree before the kernel moves any of them (advance works in place).
    A = tree.num_actions
    bad = (act < 0) | (act >= A)
    if bool(bad.any()):
        b = int(xp.argmax(bad))
        raise ValueError(
            f"advance: tree {b}: {_ERRORS[F.BAD_ACTION]} (actions[{b}] = {int(act[b])}, expected [0, {A}))"
        )
    act = act.astype(xp.int32)
    unexpanded = tree.children[xp.arange(B), 0, act] < 0
    if bool(unexpanded.any()):
        b = int(xp.argmax(unexpanded))
        raise ValueError(f"advance: tree {b}: {_ERRORS[F.NOT_EXPANDED]} (actions)")
    if bool((tree.state[xp.arange(B), tree.children[xp.arange(B), 0, act]] < 0).any()):
        raise ValueError(
            "advance: the root's child is a chance node (a search with chance_nodes=True); "
            "advancing through an outcome is not supported"
        )
    new_index = xp.empty((B, N), xp.int32)
    old_index = xp.empty((B, N), xp.int32)
    status = xp.empty(B, xp.int32)
    _kernel(tree, "advance")(tree.arrays(), act, new_index, old_index, status)
    _raise_codes(status, "advance", what="actions")
    if tree.embeddings is not None:
        rows = xp.arange(B)[:, None]
        keep = old_index >= 0
        emb = tree.embeddings[rows, xp.maximum(old_index, 0)]
        shape = keep.shape + (1,) * (emb.ndim - 2)
        tree.embeddings = xp.where(keep.reshape(shape), emb, xp.zeros((), emb.dtype))
    return tree


def _raise_codes(codes, op, what="node/action"):
    xp = xp_of(codes)
    if codes.size and bool((codes < 0).any()):
        b = int(xp.argmax(codes < 0))
        c = int(codes[b])
        raise ValueError(f"{op}: tree {b}: {_ERRORS.get(c, f'error {c}')} ({what})")


def _check_has_root(tree: Tree):
    if tree.batch_size and bool((tree.num_nodes < 1).any()):
        raise ValueError("tree: has no root; call init_root first")


# ----------------------------------------------------------------------------- search
def _prepare(root, model, num_simulations, tree, capacity, invalid_actions, chance_nodes=False):
    """(tree, model-or-callback, back) with the root initialised (or the given tree kept).
    With chance nodes a simulation adds up to 2 nodes (a chance node and an outcome)."""
    num_simulations = val.positive_int(num_simulations, "num_simulations", minimum=0)
    k = 2 if chance_nodes else 1
    if k * num_simulations >= MAX_CAPACITY:  # every simulation may add a node (int32 indices)
        raise ValueError(f"num_simulations: must be below {MAX_CAPACITY} (a tree's node limit), got {num_simulations}")
    tabular = isinstance(model, TabularModel)
    if not tabular and not callable(model):
        raise TypeError("recurrent_fn: expected a callable or a TabularModel")
    if tree is not None:
        if not isinstance(tree, Tree):
            raise TypeError(f"tree: expected a pygenmod.mcts.Tree, got {type(tree).__name__}")
        _check_has_root(tree)
        dead = xp_of(tree.invalid).all(tree.invalid[:, 0] != 0, axis=-1)
        if bool(dead.any()):
            raise ValueError(
                f"tree: all actions are invalid at the root of tree {int(dead.argmax())} (a terminal state)"
            )
        if not chance_nodes and tree.batch_size and bool((tree.state < 0).any()):
            raise ValueError("tree: it holds chance nodes: continue it with chance_nodes=True")
        back = returner(tree.logits)
        need = int(tree.num_nodes.max()) + k * num_simulations if tree.batch_size else 0
        if need > tree.capacity:
            raise ValueError(
                f"capacity exceeded: the tree holds up to {int(tree.num_nodes.max())} nodes, "
                f"{num_simulations} simulations need {need}, capacity is {tree.capacity} "
                "(use tree.grow)"
            )
        return tree, back, num_simulations
    if root is None:
        raise TypeError("root: expected the root output (or pass tree= to continue a search)")
    cap = 1 + k * num_simulations if capacity is None else _capacity(capacity)
    if cap < 1 + k * num_simulations:
        raise ValueError(
            f"capacity exceeded: {num_simulations} simulations need {1 + k * num_simulations} nodes, capacity is {cap}"
        )
    if tabular:
        xp = xp_of(model.logits)
        back = returner(root)
        states = val.int_array(root, "root", ndim=1, xp=xp)
        S, A = model.logits.shape
        if bool(((states < 0) | (states >= S)).any()):
            raise ValueError(f"root: root states must lie in [0, {S})")
        if bool((model.terminal[states] != 0).any()):
            raise ValueError("root: a root state is terminal (all actions are invalid)")
        B = int(states.shape[0])
        tree = new_tree(B, A, cap, model.logits.dtype, xp=xp)
        lg, prior, inv = model.logits[states], model.prior[states], model.invalid[states]
        if invalid_actions is not None:
            inv = inv | _mask(invalid_actions, "invalid_actions", (B, A), xp)
            lg, prior, inv = _normalise(lg, inv)
        _fill_root(tree, lg, model.value[states], inv, states, None, prior=prior)
        return tree, back, num_simulations
    if not isinstance(root, Root):
        if isinstance(root, tuple) and len(root) in (2, 3):
            root = Root(*root)
        else:
            raise TypeError("root: expected a pygenmod.mcts.Root(prior_logits, value, embedding)")
    back = returner(root.prior_logits)
    logits = to_native(root.prior_logits)
    xp = xp_of(logits)
    logits = val.float_array(logits, "prior_logits", ndim=2, xp=xp, finite=False)
    B, A = logits.shape
    tree = new_tree(B, A, cap, logits.dtype, xp=xp)
    logits = _float(logits, "prior_logits", (B, A), tree.dtype, xp, allow_neg_inf=True)
    value = _float(root.value, "value", (B,), tree.dtype, xp)
    inv = _mask(invalid_actions, "invalid_actions", (B, A), xp)
    _fill_root(tree, logits, value, inv, None, root.embedding)
    if tree.emb_back is None:
        tree.emb_back = back
    return tree, back, num_simulations


def _run(tree: Tree, model, num_simulations: int, params, table, seed: int = 0, stream: int = 0, on_status="raise"):
    xp = xp_of(tree.visits)
    params, table = _on(xp, params, table)
    if num_simulations == 0 or tree.batch_size == 0:
        return
    arrays = tree.arrays()
    if isinstance(model, TabularModel):
        if model.logits.dtype != tree.dtype or xp_of(model.logits) is not xp:
            raise TypeError("recurrent_fn: the tabular model's dtype/array type differs from the tree's")
        if int(model.logits.shape[1]) != tree.num_actions:
            raise ValueError("recurrent_fn: the tabular model's number of actions differs from the tree's")
        _kernel(tree, "search_tabular")(
            arrays,
            params,
            table,
            num_simulations,
            model.next_state,
            model.reward,
            model.discount,
            model.logits,
            model.prior,
            model.value,
            model.invalid,
            model.cdf,
            seed,
            stream,
        )
        _check_overflow(tree.value_sum, on_status)
        return
    B, A = tree.batch_size, tree.num_actions
    step = _step(tree)
    rows = xp.arange(B)
    node, action = xp.empty(B, xp.int32), xp.empty(B, xp.int32)
    next_node, next_action = xp.empty(B, xp.int32), xp.empty(B, xp.int32)
    leaf = xp.zeros(B, xp.int32)  # expansion codes (none failed yet)
    emb_back = tree.emb_back or (lambda a: a)
    dt = tree.dtype
    _kernel(tree, "select")(arrays, params, table, node, action)
    embeddings = tree.embeddings
    gathered = None if embeddings is None else embeddings[rows, node]
    if embeddings is not None:  # per simulation: the new leaves' rows in, the next nodes' rows out
        emb_rows, emb_dtype, emb_col = embeddings.shape[:1] + embeddings.shape[2:], embeddings.dtype, embeddings[:, 0]
    for sim in range(num_simulations):
        emb = None if gathered is None else emb_back(gathered)
        act = xp.maximum(action, 0).astype(xp.int64)
        out = model(emb, emb_back(act))
        if not isinstance(out, tuple) or len(out) not in (5, 6, 7):
            raise TypeError(
                "recurrent_fn: must return (reward, discount, prior_logits, value, "
                "next_embedding[, invalid_actions[, player_changed]])"
            )
        r = _cb_float(out[0], "reward", (B,), dt, xp)
        d = _cb_float(out[1], "discount", (B,), dt, xp)
        lg = _cb_float(out[2], "prior_logits", (B, A), dt, xp)
        v = _cb_float(out[3], "value", (B,), dt, xp)
        inv = _mask(out[5], "invalid_actions", (B, A), xp) if len(out) >= 6 else None
        if len(out) == 7 and out[6] is not None:
            d = _fold_player_changed(d, _mask(out[6], "player_changed", (B,), xp))
        e = None
        if embeddings is not None and out[4] is not None:
            e = _cb_float(out[4], "next_embedding", emb_rows, emb_dtype, xp, kinds=None)
        last = sim + 1 == num_simulations
        gathered = None if last or embeddings is None else xp.empty_like(emb_col)
        # expand + back up this edge, store the new leaves' embeddings, select the next edges and
        # gather their nodes' embeddings (the outputs are checked first)
        step(
            arrays,
            params,
            table,
            node,
            action,
            r,
            d,
            lg,
            v,
            inv,
            leaf,
            None if last else next_node,
            next_action,
            e,
            gathered,
        )
        node, next_node, action, next_action = next_node, node, next_action, action
    _raise_codes(leaf, "expand")
    _check_overflow(tree.value_sum, on_status)


def _step(tree: Tree):
    """The callback path's simulation step for the tree's backend: the backend's fused kernel
    (one pass per tree: expand, back up, store the new leaf's embedding, select next, gather its
    embedding), else (CUDA) the three kernels composed and the embeddings moved by array ops.
    step(tree arrays, params, table, node, action, reward, discount, prior_logits, value,
    invalid or None, leaf out, next_node out or None, next_action out, next_embedding rows or
    None, gathered out or None) raises on bad outputs (no tree changed) and on failed expansions
    (the composed step at its next call, with the one device synchronisation of a simulation)."""
    try:
        fused = _kernel(tree, "step")
    except BackendError:
        return _composed_step(tree)

    # (fixed for the search) C-contiguous rows of a plain dtype are copied natively, others by array ops
    emb_t = tree.embeddings
    rows = emb_t is not None and not emb_t.dtype.hasobject and emb_t.flags.c_contiguous

    def step(arrays, params, table, node, action, r, d, lg, v, inv, leaf, next_node, next_action, e, gathered):
        emb = (emb_t, e, gathered) if rows else (None, None, None)
        bad, failed = fused(arrays, params, table, node, action, r, d, lg, v, inv, leaf, next_node, next_action, *emb)
        if bad:
            _raise_bad_outputs(bad)
        if emb_t is not None and not rows:
            _store_and_gather(tree, action, leaf, next_node, e, gathered)
        if failed:
            _raise_codes(leaf, "expand")

    return step


def _store_and_gather(tree: Tree, action, leaf, next_node, e, gathered):
    """The fused step's embedding rows by array ops: the new leaves' next_embedding (trees without
    an edge, action < 0, or with a failed expansion keep theirs), then the next nodes' rows."""
    xp = xp_of(tree.embeddings)
    rows = xp.arange(tree.batch_size)
    if e is not None:
        keep = ((action < 0) | (leaf < 0)).reshape((tree.batch_size,) + (1,) * (e.ndim - 1))
        tgt = xp.where(leaf < 0, 0, leaf)
        tree.embeddings[rows, tgt] = xp.where(keep, tree.embeddings[rows, tgt], e)
    if gathered is not None:
        gathered[...] = tree.embeddings[rows, next_node]


def _composed_step(tree: Tree):
    xp = xp_of(tree.visits)
    sel, exp_, bk = (_kernel(tree, n) for n in ("select", "expand", "backup"))
    rows = xp.arange(tree.batch_size)

    def step(arrays, params, table, node, action, r, d, lg, v, inv, leaf, next_node, next_action, e, gathered):
        _check_outputs(xp, r, d, lg, v, leaf)  # these outputs and the previous step's expansions
        state = tree.num_nodes.astype(xp.int64)
        edge = action
        if params[F.P_MAX_DEPTH] > 0:  # max_depth cutoff at an expanded child: re-evaluate it
            cut = (action >= 0) & (tree.children[rows, node, xp.maximum(action, 0)] >= 0)
            edge = xp.where(cut, F.REEVALUATE - action, action).astype(xp.int32)
        try:
            exp_(arrays, node, edge, r, d, lg, v, inv, state, leaf)
        except KeyboardInterrupt:  # Ctrl-C lands as the call returns: back the new nodes up first
            bk(arrays, leaf)
            raise
        bk(arrays, leaf)  # skips failed expansions (leaf < 0), raised at the next check
        if next_node is not None:
            sel(arrays, params, table, next_node, next_action)
        if tree.embeddings is not None:
            _store_and_gather(tree, action, leaf, next_node, e, gathered)

    return step


def _check_overflow(a, on_status="raise", stacklevel=5):
    """Finite rewards and values can still sum to +-inf (e.g. values near the dtype's max):
    Status.OVERFLOW for those trees; by default an error instead of NaN policies."""
    if on_status == "ignore" or not a.size or bool(xp_of(a).isfinite(a).all()):
        return
    report(
        _overflow_rows(a),
        on_status,
        "value",
        detail=f"the search's returns overflowed {a.dtype} (rewards and values too large to sum); "
        "rescale the model's rewards and values",
        stacklevel=stacklevel,  # the policy's caller (policy -> [_run ->] here -> report)
    )


def _overflow_rows(*arrays):
    """(B,) uint32: Status.OVERFLOW where a row of any array (leading axis B) is not finite."""
    a0 = to_native(arrays[0])
    xp = xp_of(a0)
    bad = None
    for a in arrays:
        a = to_native(a)
        b = ~xp.isfinite(a.reshape(a.shape[0], math.prod(a.shape[1:]))).all(axis=1)
        bad = b if bad is None else bad | b
    return xp.where(bad, np.uint32(Status.OVERFLOW), np.uint32(0)).astype(xp.uint32)


def _cb_float(x, name, shape, dtype, xp, kinds="fiu"):
    """A recurrent_fn output as a contiguous array of the given dtype and shape, cheaply checked;
    other dtypes of `kinds` are converted (NumPy's unsafe cast, as an assignment would)."""
    if type(x) is np.ndarray and xp is np and x.dtype == dtype and x.shape == shape and x.flags.c_contiguous:
        return x  # the common case, in ~0.3 us (five of these a simulation)
    a = to_native(x)
    if xp_of(a) is not xp:
        a = xp.asarray(a)
    if a.dtype != dtype:
        if kinds is not None and a.dtype.kind not in kinds:
            raise TypeError(f"recurrent_fn: {name} has dtype {a.dtype}, expected floats")
        a = a.astype(dtype)
    if a.shape != shape:
        raise ValueError(f"recurrent_fn: {name} has shape {a.shape}, expected {shape}")
    return xp.ascontiguousarray(a)


def _check_outputs(xp, r, d, lg, v, codes=None):
    """One reduction (one device sync) for NaN/inf in the recurrent_fn outputs and, if given,
    a failed previous expansion (codes < 0, raised first)."""
    bad = (xp.isnan(lg) | (lg == xp.inf)).any()
    for a in (r, d, v):
        bad = bad | ~xp.isfinite(a).all()
    if codes is not None:
        bad = bad | (codes < 0).any()
    if not bool(bad):
        return
    if codes is not None:
        _raise_codes(codes, "expand")
    mask = int(bool((xp.isnan(lg) | (lg == xp.inf)).any()))
    for i, a in enumerate((r, d, v)):
        mask |= int(not bool(xp.isfinite(a).all())) << (i + 1)
    _raise_bad_outputs(mask)


def _raise_bad_outputs(mask: int):
    """The error for the bits of a bad-outputs mask (mcts.hpp's check_outputs): the first set."""
    if mask & 1:
        raise ValueError("recurrent_fn: prior_logits contains NaN or +inf (-inf marks an invalid action)")
    for i, name in enumerate(("reward", "discount", "value")):
        if mask >> (i + 1) & 1:
            raise ValueError(f"recurrent_fn: {name} contains NaN or infinity")


def _noise(tree: Tree, name: str, seed: int, stream: int, *args):
    xp = xp_of(tree.visits)
    out = xp.empty((tree.batch_size, tree.num_actions), tree.dtype)
    _kernel(tree, name)(seed, stream, *args, out)
    return out


def _stream(stream, tree: Tree) -> int:
    """The global batch index of tree 0 (docs/conventions.md#randomness): tree b draws as tree
    ``stream + b`` of a larger batch. The per-(tree, action) Dirichlet streams use the low 56
    bits of a Philox stream id, so (stream + B) * A must stay below 2**56."""
    s = val.seed_int(stream, "stream")
    if (s + tree.batch_size) * max(tree.num_actions, 1) >= 2**56:
        raise ValueError(f"stream: (stream + batch size) * num_actions must be below 2**56, got stream={s}")
    return s


def muzero_policy(
    root: Root,
    recurrent_fn: Callable[..., Any] | TabularModel,
    num_simulations: int,
    *,
    seed: SeedLike = None,
    invalid_actions: ArrayLike | None = None,
    tree: Tree | None = None,
    capacity: int | None = None,
    dirichlet_fraction: float = 0.25,
    dirichlet_alpha: float = 0.3,
    pb_c_init: float = 1.25,
    pb_c_base: float = 19652.0,
    temperature: float = 1.0,
    q_normalization: QNormalization = "node",
    max_depth: int | None = None,
    stream: int = 0,
    chance_nodes: bool = False,
    on_status: OnStatus = "raise",
) -> PolicyOutput:
    """MuZero search (mctx ``muzero_policy``) over a batch of trees.

    q_normalization: "node" (mctx: each child's Q min-max normalised over the parent's value
    and its visited siblings) or "tree" (MuZero, Schrittwieser et al. 2020: over the min and
    max of reward + discount * value of every node backed up in this tree so far, kept in
    ``tree.qbounds``; Q is left unchanged while max <= min; unvisited children score 0).
    max_depth: mctx's: a simulation descends at most max_depth edges; an already expanded
    child reached at the cutoff is re-evaluated (one more visit, its mean value replaced by
    the model's new value, as mctx's update_tree_node). None: unlimited.

    root: a :class:`Root` (callback ``recurrent_fn``) or the [B] root states (``recurrent_fn``
    a :class:`TabularModel`); ignored when ``tree`` continues an earlier search.
    Dirichlet noise (fraction, alpha) is mixed into the root prior at the start of every
    search; the action is drawn proportionally to visit_counts ** (1 / temperature)
    (temperature 0: the most visited action, lowest index among ties). Returns
    :class:`PolicyOutput` with action_weights = visit_counts / sum (the policy target).
    stream: the global batch index of tree 0 (tree b draws its noise, sampled transitions and
    action as tree ``stream + b``): ``search(roots[a:b], ..., seed=s, stream=a)`` equals rows
    a:b of the whole batch's search bitwise. chance_nodes: on a stochastic tabular model, draw the
    outcome of an edge at every visit and keep a child per outcome (docs/mcts.md, "Chance
    nodes"); the default capacity is then 1 + 2 * num_simulations.
    on_status: what to do when a tree's returns overflow (finite rewards and values whose sums
    reach +-inf; ``PolicyOutput.status`` has ``Status.OVERFLOW`` for that tree): "raise" (the
    default: :class:`pygenmod.NumericalError`, a ValueError, since the policy would be NaN),
    "warn" (:class:`pygenmod.NumericalWarning`) or "ignore".
    """
    seed = resolve_seed(seed)
    on_status = check_on_status(on_status)
    chance_nodes = _check_chance(chance_nodes, recurrent_fn, max_depth)
    tree, back, sims = _prepare(root, recurrent_fn, num_simulations, tree, capacity, invalid_actions, chance_nodes)
    stream = _stream(stream, tree)
    xp = xp_of(tree.visits)
    frac = float(dirichlet_fraction)
    if not 0 <= frac <= 1:
        raise ValueError(f"dirichlet_fraction: must be in [0, 1], got {dirichlet_fraction}")
    if not float(dirichlet_alpha) > 0:
        raise ValueError(f"dirichlet_alpha: must be > 0, got {dirichlet_alpha}")
    temps = val.per_batch(temperature, "temperature", tree.batch_size, tree.dtype, xp, lo=0.0)
    if frac > 0 and tree.batch_size:
        noise = _noise(tree, "dirichlet_noise", seed, stream, float(dirichlet_alpha))
        probs = (1 - frac) * tree.prior[:, 0] + frac * noise
        # as mctx: logits of the noisy probabilities over all actions, then the mask
        noisy = xp.log(xp.maximum(probs, np.finfo(tree.dtype).tiny)).astype(tree.dtype)
        _set_root_logits(tree, noisy, tree.invalid[:, 0].copy())
    tree.gumbel[...] = 0
    params, table = _params(
        "muzero",
        pb_c_init=pb_c_init,
        pb_c_base=pb_c_base,
        q_normalization=q_normalization,
        max_depth=max_depth,
        chance_nodes=chance_nodes,
    )
    _run(tree, recurrent_fn, sims, params, table, seed, stream, on_status)
    return _visit_output(tree, temps, seed, stream, back)


def _check_chance(chance_nodes, model, max_depth) -> bool:
    if not isinstance(chance_nodes, (bool, np.bool_)):
        raise TypeError(f"chance_nodes: expected a bool, got {type(chance_nodes).__name__}")
    if not chance_nodes:
        return False
    if not isinstance(model, TabularModel) or model.cdf is None:
        raise ValueError("chance_nodes: needs a stochastic tabular model (stochastic_tabular_model / mdp_model)")
    if int(model.logits.shape[1]) < 2:
        raise ValueError(
            "chance_nodes: needs at least 2 actions (the last child slot links a chance node's further outcomes)"
        )
    if max_depth is not None:
        raise ValueError("chance_nodes: max_depth is not supported with chance nodes")
    return True


def _visit_output(tree: Tree, temps, seed, stream, back) -> PolicyOutput:
    """A visit-count policy's output: weights = root visit distribution, action drawn with
    weights ** (1 / temperature) (argmax at 0), value = the root's mean."""
    xp = xp_of(tree.visits)
    counts = tree.child_visits(0)
    total = counts.sum(-1, keepdims=True)
    valid = tree.invalid[:, 0] == 0
    uniform = valid / xp.maximum(valid.sum(-1, keepdims=True), 1)  # no simulation: uniform over valid
    weights = xp.where(total > 0, counts / xp.maximum(total, 1), uniform).astype(tree.dtype)
    action = xp.empty(tree.batch_size, xp.int64)
    if tree.batch_size:
        _kernel(tree, "sample_action")(weights, temps, seed, stream, action)
    value = (tree.value_sum[:, 0] / xp.maximum(tree.visits[:, 0], 1)).astype(tree.dtype)
    return PolicyOutput(back(action), back(weights), back(counts), back(value), tree)


def _completed_q_root(tree: Tree, counts, value_scale, maxvisit_init, rescale_values, use_mixed_value):
    """mctx qtransform_completed_by_mix_value at the roots, [B, A] (NumPy/CuPy); counts: the
    roots' child visits."""
    xp = xp_of(tree.visits)
    dt = tree.dtype
    visited = counts > 0
    q = tree.qvalues(0)
    prior = xp.maximum(tree.prior[:, 0], np.finfo(dt).tiny)
    raw = tree.raw_value[:, 0]
    if use_mixed_value:
        sum_n = counts.sum(-1).astype(dt)
        sum_p = xp.where(visited, prior, 0).sum(-1)
        wq = xp.where(visited, prior * q / xp.where(sum_p > 0, sum_p, 1)[:, None], 0).sum(-1)
        mixed = (raw + sum_n * wq) / (sum_n + 1)
    else:
        mixed = raw
    cq = xp.where(visited, q, mixed[:, None])
    if rescale_values:
        lo, hi = cq.min(-1, keepdims=True), cq.max(-1, keepdims=True)
        cq = (cq - lo) / xp.maximum(hi - lo, 1e-8)
    scale = (maxvisit_init + counts.max(-1)).astype(dt) * value_scale
    return (scale[:, None] * cq).astype(dt)


def gumbel_muzero_policy(
    root: Root,
    recurrent_fn: Callable[..., Any] | TabularModel,
    num_simulations: int,
    *,
    seed: SeedLike = None,
    invalid_actions: ArrayLike | None = None,
    tree: Tree | None = None,
    capacity: int | None = None,
    max_num_considered_actions: int = 16,
    gumbel_scale: float = 1.0,
    gumbel: ArrayLike | None = None,
    value_scale: float = 0.1,
    maxvisit_init: float = 50.0,
    rescale_values: bool = True,
    use_mixed_value: bool = True,
    max_depth: int | None = None,
    stream: int = 0,
    chance_nodes: bool = False,
    on_status: OnStatus = "raise",
) -> PolicyOutput:
    """Gumbel MuZero search (mctx ``gumbel_muzero_policy``) over a batch of trees.

    Sequential halving with Gumbel over at most ``max_num_considered_actions`` root actions,
    deterministic improved-policy selection inside the tree. ``gumbel`` [B, A] fixes the
    Gumbel vector (else gumbel_scale * Gumbel noise from ``seed``). The action is the best
    of the most visited actions by gumbel + logits + completed Q; action_weights is the
    improved policy softmax(logits + completed Q). max_depth, stream, chance_nodes, on_status:
    as :func:`muzero_policy`.
    """
    seed = resolve_seed(seed)
    on_status = check_on_status(on_status)
    chance_nodes = _check_chance(chance_nodes, recurrent_fn, max_depth)
    tree, back, sims = _prepare(root, recurrent_fn, num_simulations, tree, capacity, invalid_actions, chance_nodes)
    stream = _stream(stream, tree)
    xp = xp_of(tree.visits)
    B, A = tree.batch_size, tree.num_actions
    if gumbel is not None:
        g = _float(gumbel, "gumbel", (B, A), tree.dtype, xp)
    else:
        scale = float(gumbel_scale)
        if not math.isfinite(scale):
            raise ValueError(f"gumbel_scale: must be finite, got {gumbel_scale}")
        g = _noise(tree, "gumbel_noise", seed, stream) * tree.dtype.type(scale) if B else xp.zeros((B, A), tree.dtype)
    tree.gumbel[...] = g
    kw = dict(
        value_scale=value_scale,
        maxvisit_init=maxvisit_init,
        rescale_values=rescale_values,
        use_mixed_value=use_mixed_value,
    )
    params, table = _params(
        "gumbel",
        max_num_considered_actions=max_num_considered_actions,
        num_simulations=max(sims, 1),
        max_depth=max_depth,
        num_actions=A,
        chance_nodes=chance_nodes,
        **kw,
    )
    _run(tree, recurrent_fn, sims, params, table, seed, stream, on_status)
    counts = tree.child_visits(0)
    with np.errstate(invalid="ignore", over="ignore"):  # inf/NaN only in overflowed trees (on_status)
        cq = _completed_q_root(tree, counts, **kw)
    logits = tree.logits[:, 0]
    invalid = tree.invalid[:, 0] != 0
    considered = counts.max(-1, keepdims=True)
    lmax = xp.max(xp.where(invalid, -xp.inf, logits), -1, keepdims=True)
    with np.errstate(invalid="ignore"):
        score = xp.maximum(-1e9, g + (logits - lmax) + cq)
    score = xp.where((counts == considered) & ~invalid, score, -xp.inf)
    action = xp.argmax(score, -1).astype(xp.int64)
    z = xp.where(invalid, -xp.inf, logits + cq)
    z = z - z.max(-1, keepdims=True)
    e = xp.where(invalid, 0, xp.exp(z))
    weights = (e / e.sum(-1, keepdims=True)).astype(tree.dtype)
    _check_overflow(weights, on_status, stacklevel=4)
    value = (tree.value_sum[:, 0] / xp.maximum(tree.visits[:, 0], 1)).astype(tree.dtype)
    return PolicyOutput(back(action), back(weights), back(counts), back(value), tree)


def uct_policy(
    root: Root,
    recurrent_fn: Callable[..., Any] | TabularModel,
    num_simulations: int,
    *,
    seed: SeedLike = None,
    invalid_actions: ArrayLike | None = None,
    tree: Tree | None = None,
    capacity: int | None = None,
    exploration: float = UCT_EXPLORATION,
    rollout_depth: int | None = None,
    temperature: float = 0.0,
    max_depth: int | None = None,
    stream: int = 0,
    chance_nodes: bool = False,
    on_status: OnStatus = "raise",
) -> PolicyOutput:
    """Classic UCT (Kocsis & Szepesvari 2006; Browne et al. 2012) over a batch of trees.

    Selection by UCB1: an unexpanded valid action first (lowest index), else the argmax of
    ``Q(n, a) + exploration * sqrt(ln N(n) / N(a))`` (N(n): the node's visits, its own first
    evaluation included; Q seen from the player to move at n). The prior logits only mask.
    Leaf values: on a tabular model a uniformly random rollout of ``rollout_depth`` steps
    (default 100; 0: the table's value) that stops at a terminal state and adds the
    discounted table value of the state it ends in (use value 0 for plain rollouts); with a
    callback, its value output (run rollouts inside ``recurrent_fn``; ``rollout_depth`` is
    then an error). Mean backup as the other policies. The action is drawn from the visit
    counts with ``temperature`` (default 0: the most visited, lowest index among ties);
    action_weights are the visit distribution. Rollout draws: Philox stream (5 << 56) | g,
    block sim * rollout_depth + step (docs/mcts.md). seed, stream, max_depth, chance_nodes,
    on_status: as :func:`muzero_policy`.
    """
    seed = resolve_seed(seed)
    on_status = check_on_status(on_status)
    chance_nodes = _check_chance(chance_nodes, recurrent_fn, max_depth)
    tree, back, sims = _prepare(root, recurrent_fn, num_simulations, tree, capacity, invalid_actions, chance_nodes)
    stream = _stream(stream, tree)
    xp = xp_of(tree.visits)
    if rollout_depth is None:
        depth = 100 if isinstance(recurrent_fn, TabularModel) else 0
    elif not isinstance(recurrent_fn, TabularModel):
        raise ValueError(
            "rollout_depth: random rollouts run on tabular models only (a callback returns the leaf value itself)"
        )
    else:
        depth = rollout_depth
    temps = val.per_batch(temperature, "temperature", tree.batch_size, tree.dtype, xp, lo=0.0)
    tree.gumbel[...] = 0
    params, table = _params(
        "uct", exploration=exploration, rollout_depth=depth, max_depth=max_depth, chance_nodes=chance_nodes
    )
    _run(tree, recurrent_fn, sims, params, table, seed, stream, on_status)
    return _visit_output(tree, temps, seed, stream, back)


def search(
    root: Root,
    recurrent_fn: Callable[..., Any] | TabularModel,
    num_simulations: int,
    *,
    policy: MctsPolicy = "muzero",
    **kwargs,
) -> PolicyOutput:
    """``muzero_policy`` (policy="muzero"), ``gumbel_muzero_policy`` ("gumbel") or
    ``uct_policy`` ("uct")."""
    val.choice(policy, "policy", ("muzero", "gumbel", "uct"))
    fn = {"muzero": muzero_policy, "gumbel": gumbel_muzero_policy, "uct": uct_policy}[policy]
    return fn(root, recurrent_fn, num_simulations, **kwargs)


__all__ = [
    "MAX_CAPACITY",
    "PolicyOutput",
    "RecurrentOutput",
    "Root",
    "TREE_FIELDS",
    "TabularModel",
    "Tree",
    "UCT_EXPLORATION",
    "advance",
    "backup",
    "expand",
    "gumbel_muzero_policy",
    "init_root",
    "mdp_model",
    "muzero_policy",
    "new_tree",
    "search",
    "select",
    "stochastic_tabular_model",
    "tabular_model",
    "uct_policy",
]
