"""Plain-Python float64 reference of mctx's muzero_policy / gumbel_muzero_policy semantics.

One tree at a time, written from the formulas of mctx (action_selection.py, qtransforms.py,
seq_halving.py, search.py) with dictionaries and NumPy vectors per node, independently of
the package's kernels. Differences from mctx, shared with pygenmod and documented there:
argmax ties go to the lowest index (mctx: 1e-7 uniform noise in PUCT), and a node without a
valid action is terminal (re-evaluated instead of expanded). Also: a 4x3 gridworld table.
"""

from __future__ import annotations

import math

import numpy as np

TINY = np.finfo(np.float64).tiny


def softmax_masked(logits, invalid):
    z = np.where(invalid, -np.inf, logits)
    if np.all(invalid):
        return np.zeros_like(logits)
    z = z - z.max()
    e = np.where(invalid, 0.0, np.exp(z))
    return e / e.sum()


class Node:
    def __init__(self, logits, value, invalid, state, reward=0.0, discount=1.0, player_changed=False):
        self.invalid = np.asarray(invalid, bool)
        logits = np.asarray(logits, np.float64)
        self.prior = softmax_masked(logits, self.invalid)
        m = np.max(np.where(self.invalid, -np.inf, logits)) if not self.invalid.all() else 0.0
        self.logits = np.where(self.invalid, -np.inf, logits - m)
        self.raw = float(value)
        self.visits = 1
        self.value_sum = float(value)
        self.reward, self.discount = float(reward), float(discount)
        # the player to move changed along the edge into this node: the node's value is seen
        # from the other player, so its sign flips when seen from the parent
        self.player_changed = bool(player_changed)
        self.children = {}
        self.state = state

    @property
    def signed_discount(self):
        return -abs(self.discount) if self.player_changed else self.discount

    @property
    def value(self):
        return self.value_sum / self.visits

    def child_counts(self):
        n = np.zeros(len(self.prior))
        for a, c in self.children.items():
            n[a] = c.visits
        return n

    def qvalues(self):
        q = np.zeros(len(self.prior))
        for a, c in self.children.items():
            q[a] = c.reward + c.signed_discount * c.value
        return q


def argmax_valid(score, invalid):
    best, bs = -1, -np.inf
    for a in range(len(score)):
        if invalid[a]:
            continue
        if best < 0 or score[a] > bs:
            best, bs = a, score[a]
    return best


def muzero_select(node, pb_c_init, pb_c_base, bounds=None):
    """bounds: None (mctx, per node) or the tree's [min, max] (MuZero MinMaxStats)."""
    n = node.child_counts()
    q = node.qvalues()
    visited = n > 0
    if bounds is None:
        safe = np.where(visited, q, node.value)
        lo, hi = min(node.value, safe.min()), max(node.value, safe.max())
        norm = np.where(visited, (q - lo) / max(hi - lo, 1e-8), 0.0)
    else:
        lo, hi = bounds
        norm = np.where(visited, (q - lo) / (hi - lo) if hi > lo else q, 0.0)
    N = node.visits
    pb_c = pb_c_init + math.log((N + pb_c_base + 1) / pb_c_base)
    score = norm + math.sqrt(N) * pb_c * node.prior / (n + 1)
    return argmax_valid(score, node.invalid)


def completed_q(node, value_scale=0.1, maxvisit_init=50.0, rescale=True, mixed=True):
    n = node.child_counts()
    q = node.qvalues()
    visited = n > 0
    prior = np.maximum(TINY, node.prior)
    if mixed and visited.any():
        sp = prior[visited].sum()
        wq = (prior[visited] * q[visited] / sp).sum()
        v = (node.raw + n.sum() * wq) / (n.sum() + 1)
    else:
        v = node.raw
    c = np.where(visited, q, v)
    if rescale:
        c = (c - c.min()) / max(c.max() - c.min(), 1e-8)
    return (maxvisit_init + n.max()) * value_scale * c


def considered_visits(m, L):
    """Sequential halving's schedule; the package's table is checked by hand in the tests."""
    from pygenmod.mcts import considered_visits_table

    return list(considered_visits_table(m, L)[m])


def gumbel_score(node, gumbel, cq):
    lg = node.logits - np.max(node.logits)
    with np.errstate(invalid="ignore"):
        return np.maximum(-1e9, gumbel + lg + cq)


def gumbel_root_select(node, gumbel, M, sims, qkw):
    n = node.child_counts()
    cq = completed_q(node, **qkw)
    k = min(M, int((~node.invalid).sum()))
    idx = min(int(n.sum()), sims - 1)
    considered = considered_visits(k, sims)[idx]
    s = gumbel_score(node, gumbel, cq)
    s = np.where(n == considered, s, -np.inf)
    return argmax_valid(s, node.invalid)


def gumbel_interior_select(node, qkw):
    n = node.child_counts()
    cq = completed_q(node, **qkw)
    probs = softmax_masked(node.logits + cq, node.invalid)
    return argmax_valid(probs - n / (1 + n.sum()), node.invalid)


def search(
    step,
    root_logits,
    root_value,
    root_invalid,
    root_state,
    sims,
    *,
    policy="muzero",
    gumbel=None,
    M=16,
    pb_c_init=1.25,
    pb_c_base=19652.0,
    qkw=None,
    q_normalization="node",
    max_depth=None,
):
    """One tree. step(state, action) -> (reward, discount, logits, value, invalid, next_state
    [, player_changed])."""
    qkw = qkw or {}
    root = Node(root_logits, root_value, root_invalid, root_state)
    A = len(root.prior)
    gumbel = np.zeros(A) if gumbel is None else np.asarray(gumbel, np.float64)
    bounds = [np.inf, -np.inf]
    for _ in range(sims):
        node, path, depth = root, [root], 0
        while True:
            if node.invalid.all():
                a = -1
                break
            if policy == "muzero":
                a = muzero_select(node, pb_c_init, pb_c_base, bounds if q_normalization == "tree" else None)
            elif depth == 0:
                a = gumbel_root_select(node, gumbel, M, sims, qkw)
            else:
                a = gumbel_interior_select(node, qkw)
            if a not in node.children or (max_depth and depth + 1 >= max_depth):
                break
            node = node.children[a]
            path.append(node)
            depth += 1
        if a >= 0 and a in node.children:
            # mctx max_depth cutoff: the child is evaluated again (update_tree_node): one more
            # visit, mean value replaced by the new value, new logits / edge reward, discount
            r, d, lg, v, inv, s2, *pc = step(node.state, a)
            leaf = node.children[a]
            fresh = Node(lg, v, inv, s2, r, d, bool(pc and pc[0]))
            fresh.children, fresh.visits = leaf.children, leaf.visits + 1
            fresh.value_sum = v * fresh.visits
            node.children[a] = leaf = fresh
            path.append(leaf)
        elif a < 0:
            node.visits += 1
            node.value_sum += node.raw
            leaf = node
        else:
            r, d, lg, v, inv, s2, *pc = step(node.state, a)
            leaf = Node(lg, v, inv, s2, r, d, bool(pc and pc[0]))
            node.children[a] = leaf
            path.append(leaf)
        g = leaf.raw
        for child, parent in zip(path[::-1][:-1], path[::-1][1:]):
            g = child.reward + child.signed_discount * g
            parent.visits += 1
            parent.value_sum += g
        for n in path:  # MuZero: min_max_stats.update(reward + discount * value) on the path
            q = n.reward + n.signed_discount * n.value
            bounds[0], bounds[1] = min(bounds[0], q), max(bounds[1], q)
    counts = root.child_counts()
    out = dict(visit_counts=counts.astype(np.int64), value=root.value, root=root, bounds=tuple(bounds))
    if policy == "muzero":
        out["weights"] = counts / max(counts.sum(), 1) if counts.sum() else np.full(A, 1 / A)
    else:
        cq = completed_q(root, **qkw)
        s = np.where((counts == counts.max()) & ~root.invalid, gumbel_score(root, gumbel, cq), -np.inf)
        out["action"] = int(np.argmax(s))
        out["weights"] = softmax_masked(root.logits + cq, root.invalid)
    return out


def tabular_step(ns, R, D, L, V, terminal=None, invalid=None, player_changed=None):
    def step(s, a):
        s2 = int(ns[s, a])
        term = terminal is not None and bool(terminal[s2])
        inv = (
            np.ones(L.shape[1], bool)
            if term
            else (np.zeros(L.shape[1], bool) if invalid is None else np.asarray(invalid[s2], bool))
        )
        pc = player_changed is not None and bool(player_changed[s, a])
        return float(R[s, a]), float(D[s, a]), L[s2], 0.0 if term else float(V[s2]), inv, s2, pc

    return step


# ----------------------------------------------------------------------------- 4x3 gridworld
def gridworld_4x3(step_reward=-0.04):
    """Russell & Norvig's 4x3 world, deterministic moves. States: the 11 free cells, row-major
    from the bottom-left (x, y) with the wall at (1, 1); terminals +1 at (3, 2), -1 at (3, 1).
    Actions: 0 N, 1 S, 2 E, 3 W; bumping into the wall or the edge stays put. Entering a
    terminal pays its reward (+1 / -1), every other move pays step_reward.
    Returns (next_state [S, 4], reward [S, 4], terminal [S], cells)."""
    cells = [(x, y) for y in range(3) for x in range(4) if (x, y) != (1, 1)]
    idx = {c: i for i, c in enumerate(cells)}
    S = len(cells)
    term_reward = {(3, 2): 1.0, (3, 1): -1.0}
    ns = np.zeros((S, 4), np.int64)
    R = np.zeros((S, 4))
    terminal = np.zeros(S, bool)
    for c, i in idx.items():
        terminal[i] = c in term_reward
        for a, (dx, dy) in enumerate(((0, 1), (0, -1), (1, 0), (-1, 0))):
            nxt = (c[0] + dx, c[1] + dy)
            if nxt not in idx:
                nxt = c
            ns[i, a] = idx[nxt]
            R[i, a] = term_reward.get(nxt, step_reward)
    return ns, R, terminal, cells


def value_iteration(ns, R, terminal, gamma, iters=200):
    S, A = ns.shape
    V = np.zeros(S)
    for _ in range(iters):
        Q = R + gamma * np.where(terminal[ns], 0.0, V[ns])
        V = np.where(terminal, 0.0, Q.max(-1))
    return V, R + gamma * np.where(terminal[ns], 0.0, V[ns])


# ----------------------------------------------------------------------------- UCT
_M32 = 0xFFFFFFFF


def philox_uniform_pair(seed, stream, blk):
    """The two float64 uniforms (words 0-1, 2-3) of Philox block ``blk`` of ``stream``, from
    the pure-Python Philox of pygenmod.random and random.hpp's uniform_f64 written again."""
    from pygenmod.random import philox4x32_10

    w = philox4x32_10([blk & _M32, blk >> 32, stream & _M32, stream >> 32], [seed & _M32, seed >> 32])

    def u(hi, lo):
        return min(((((hi << 32) | lo) >> 11) + 0.5) * 2.0**-53, float(np.nextafter(1.0, 0.0)))

    return u(w[0], w[1]), u(w[2], w[3])


class UNode:
    def __init__(self, state, value, reward=0.0, discount=1.0):
        self.state, self.reward, self.discount = state, float(reward), float(discount)
        self.raw = self.value_sum = float(value)
        self.visits = 1
        self.children = {}

    def q(self):
        return self.reward + self.discount * self.value_sum / self.visits


def uct_search(ns, R, D, V, invalid, root_state, sims, *, c=2**0.5, rollout_depth=0, seed=0, g=0, cdf=None):
    """One UCT tree (Browne et al. 2012, Algorithm 2-3, with the package's deterministic
    tie-breaks): UCB1 selection (an unexpanded valid action first, lowest index; else argmax
    Q + c sqrt(ln N / n)), one expansion, a uniformly random rollout of ``rollout_depth``
    steps bootstrapped with V (0 steps: V itself), mean backup. ``invalid`` [S, A] (terminal
    rows all True, V 0 there), D signed (negative: the player changed). Random draws as
    documented in docs/mcts.md: expansion transitions from stream (4 << 56) | g (element
    sim), rollout steps from stream (5 << 56) | g (block sim * rollout_depth + step).
    Returns (root visit counts [A], root mean value)."""
    S, A = ns.shape

    def nxt(s, a, u):
        if cdf is None:
            return int(ns[s, a])
        return min(int(np.searchsorted(cdf[s, a], u, side="right")), S - 1)

    def rollout(s, sim):
        ret, scale = 0.0, 1.0
        for k in range(rollout_depth):
            valid = np.flatnonzero(~invalid[s])
            if len(valid) == 0:
                return ret
            u0, u1 = philox_uniform_pair(seed, (5 << 56) | g, sim * rollout_depth + k)
            a = int(valid[min(int(u0 * len(valid)), len(valid) - 1)])
            ret += scale * float(R[s, a])
            scale *= float(D[s, a])
            s = nxt(s, a, u1)
        return ret + scale * float(V[s])

    root = UNode(root_state, V[root_state])
    for sim in range(sims):
        node, path = root, [root]
        while True:
            valid = np.flatnonzero(~invalid[node.state])
            if len(valid) == 0:
                a = -1
                break
            fresh = [a for a in valid if a not in node.children]
            if fresh:
                a = int(fresh[0])
                break
            ucb = [node.children[a].q() + c * math.sqrt(math.log(node.visits) / node.children[a].visits) for a in valid]
            node = node.children[int(valid[int(np.argmax(ucb))])]
            path.append(node)
        if a < 0:
            node.visits += 1
            node.value_sum += node.raw
            leaf = node
        else:
            u = philox_uniform_pair(seed, (4 << 56) | g, sim // 2)[sim % 2]
            s2 = nxt(node.state, a, u)
            leaf = UNode(s2, rollout(s2, sim), R[node.state, a], D[node.state, a])
            node.children[a] = leaf
            path.append(leaf)
        ret = leaf.raw
        for child, parent in zip(path[::-1][:-1], path[::-1][1:]):
            ret = child.reward + child.discount * ret
            parent.visits += 1
            parent.value_sum += ret
    counts = np.array([root.children[a].visits if a in root.children else 0 for a in range(A)])
    return counts, root.value_sum / root.visits


def expectimax(P, R, gamma, terminal, s, depth):
    """Finite-depth expectimax value of state s (float64, recursive): max over actions of
    R[s, a] + gamma * sum_s' P[s, a, s'] V(s'), 0 at terminal states and at depth 0."""
    if depth == 0 or terminal[s]:
        return 0.0
    return max(
        float(R[s, a])
        + gamma
        * sum(float(P[s, a, t]) * expectimax(P, R, gamma, terminal, t, depth - 1) for t in np.flatnonzero(P[s, a]))
        for a in range(P.shape[1])
    )
