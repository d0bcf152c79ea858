"""numba batched MCTS (same contract as csrc/bind/mcts.cpp; math of csrc/include/pygenmod/mcts.hpp).

``tree`` is the tuple of the arrays of pygenmod.mcts.TREE_FIELDS; the per-tree helpers take the
views of one tree (the same tuple order). Tuple entries, params entries and status codes are
indexed by the names of pygenmod/_mcts_fields.py (the C++ mcts_fields.hpp). Ties go to the
lowest action index, as in C++.
"""

import math

import numba as nb
import numpy as np

from .._mcts_fields import (
    ACTION,
    ALREADY_EXPANDED,
    BAD_ACTION,
    CAPACITY,
    CHILDREN,
    DISCOUNT,
    GUMBEL,
    INVALID,
    LOGITS,
    NOT_EXPANDED,
    NUM_NODES,
    OK,
    P_CHANCE,
    P_MAX_CONSIDERED,
    P_MAX_DEPTH,
    P_MAXVISIT_INIT,
    P_PB_C_BASE,
    P_PB_C_INIT,
    P_POLICY,
    P_Q_TREE,
    P_RESCALE_VALUES,
    P_ROLLOUT_DEPTH,
    P_UCT_C,
    P_USE_MIXED_VALUE,
    P_VALUE_SCALE,
    PARENT,
    POLICY_GUMBEL,
    POLICY_UCT,
    PRIOR,
    QBOUNDS,
    RAW_VALUE,
    REEVALUATE,
    REWARD,
    STATE,
    TERMINAL,
    VALUE_SUM,
    VISITS,
)
from .philox import block, gamma_f64, gumbel_f64, uniform_f64
from .slices import budgets

_K_DIRICHLET = np.uint64(1) << np.uint64(56)
_K_GUMBEL = np.uint64(2) << np.uint64(56)
_K_ACTION = np.uint64(3) << np.uint64(56)
_K_TRANSITION = np.uint64(4) << np.uint64(56)
_K_ROLLOUT = np.uint64(5) << np.uint64(56)
_K_CHANCE = np.uint64(6) << np.uint64(56)
_CHANCE_STATE = -1


@nb.njit(cache=True, inline="always")
def _transition_uniform(seed, b, sim):
    """Element ``sim`` of the float64 uniform layout of stream (4 << 56) | b (mcts.hpp);
    b is the tree's global batch index (stream0 + index in the call)."""
    w = block(seed, _K_TRANSITION | np.uint64(b), sim // 2)
    if sim % 2 == 0:
        return uniform_f64(w[0], w[1])
    return uniform_f64(w[2], w[3])


@nb.njit(cache=True, inline="always")
def _inverse_cdf(row, u):
    lo, hi = 0, row.shape[0] - 1
    while lo < hi:
        mid = lo + (hi - lo) // 2
        if u < row[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo


@nb.njit(cache=True, inline="always")
def _view(tree, b):
    # one tree's views, in the tuple order of TREE_FIELDS (tests/test_contracts.py checks it)
    return (
        tree[VISITS][b],
        tree[VALUE_SUM][b],
        tree[RAW_VALUE][b],
        tree[REWARD][b],
        tree[DISCOUNT][b],
        tree[PARENT][b],
        tree[ACTION][b],
        tree[CHILDREN][b],
        tree[LOGITS][b],
        tree[PRIOR][b],
        tree[INVALID][b],
        tree[STATE][b],
        tree[NUM_NODES][b : b + 1],
        tree[GUMBEL][b],
        tree[QBOUNDS][b],
    )


@nb.njit(cache=True, inline="always")
def _child_q(t, c):
    return t[REWARD][c] + t[DISCOUNT][c] * (t[VALUE_SUM][c] / t[VISITS][c])


@nb.njit(cache=True, inline="always")
def _child_visits(t, n, a):
    c = t[CHILDREN][n, a]
    return t[VISITS][c] if c >= 0 else 0


@nb.njit(cache=True)
def _init_node(t, c, parent, action, reward, discount, logits, value, invalid, has_invalid, all_invalid, state):
    visits = t[VISITS]
    value_sum = t[VALUE_SUM]
    raw_value = t[RAW_VALUE]
    rew = t[REWARD]
    disc = t[DISCOUNT]
    par = t[PARENT]
    act = t[ACTION]
    children = t[CHILDREN]
    st = t[STATE]
    A = children.shape[1]
    visits[c] = 1
    value_sum[c] = value
    raw_value[c] = value
    rew[c] = reward
    disc[c] = discount
    par[c] = parent
    act[c] = action
    st[c] = state
    for a in range(A):
        children[c, a] = -1
    _set_logits(t, c, logits, invalid, has_invalid, all_invalid)


@nb.njit(cache=True)
def _set_logits(t, c, logits, invalid, has_invalid, all_invalid):
    lg, pr, inv = t[LOGITS], t[PRIOR], t[INVALID]
    A = lg.shape[1]
    m = -np.inf
    for a in range(A):
        bad = all_invalid or (has_invalid and invalid[a] != 0) or not (logits[a] > -np.inf)
        inv[c, a] = 1 if bad else 0
        if not bad and logits[a] > m:
            m = logits[a]
    z = lg.dtype.type(0)
    for a in range(A):
        if inv[c, a]:
            lg[c, a] = -np.inf
            pr[c, a] = 0
        else:
            lg[c, a] = logits[a] - m
            pr[c, a] = math.exp(lg[c, a])
            z += pr[c, a]
    for a in range(A):
        pr[c, a] = pr[c, a] / z if z > 0 else 0


@nb.njit(cache=True, inline="always")
def _select_muzero(t, n, pb_c_init, pb_c_base, q_tree):
    children, prior, invalid = t[CHILDREN], t[PRIOR], t[INVALID]
    A = children.shape[1]
    node_value = t[VALUE_SUM][n] / t[VISITS][n]
    lo = node_value
    hi = node_value
    for a in range(A):
        c = children[n, a]
        if c >= 0:
            q = _child_q(t, c)
            lo = min(lo, q)
            hi = max(hi, q)
    denom = max(hi - lo, 1e-8)
    tmin = t[QBOUNDS][0]
    tmax = t[QBOUNDS][1]
    N = float(t[VISITS][n])
    pb_c = pb_c_init + math.log((N + pb_c_base + 1.0) / pb_c_base)
    scale = math.sqrt(N) * pb_c
    best = -1
    best_score = -np.inf
    for a in range(A):
        if invalid[n, a]:
            continue
        c = children[n, a]
        if c < 0:
            vs = 0.0
        elif q_tree:
            q = _child_q(t, c)
            vs = (q - tmin) / (tmax - tmin) if tmax > tmin else q
        else:
            vs = (_child_q(t, c) - lo) / denom
        nv = float(t[VISITS][c]) if c >= 0 else 0.0
        score = vs + scale * prior[n, a] / (nv + 1.0)
        if best < 0 or score > best_score:
            best = a
            best_score = score
    return best


@nb.njit(cache=True)
def _completed(t, n, value_scale, maxvisit_init, rescale, use_mixed):
    """(mixed, lo, range, scale) of mctx qtransform_completed_by_mix_value at node n."""
    children, prior = t[CHILDREN], t[PRIOR]
    A = children.shape[1]
    tiny = np.finfo(prior.dtype).tiny
    sum_n = 0.0
    sum_p = 0.0
    maxvisit = 0
    for a in range(A):
        c = children[n, a]
        if c < 0:
            continue
        v = t[VISITS][c]
        sum_n += v
        maxvisit = max(maxvisit, v)
        sum_p += max(tiny, prior[n, a])
    raw = t[RAW_VALUE][n]
    if use_mixed:
        wq = 0.0
        for a in range(A):
            c = children[n, a]
            if c >= 0:
                wq += max(tiny, prior[n, a]) * _child_q(t, c) / sum_p
        mixed = (raw + sum_n * wq) / (sum_n + 1.0)
    else:
        mixed = float(raw)
    lo = 0.0
    rng_ = 1.0
    if rescale:
        lo = np.inf
        hi = -np.inf
        for a in range(A):
            c = children[n, a]
            q = _child_q(t, c) if c >= 0 else mixed
            lo = min(lo, q)
            hi = max(hi, q)
        rng_ = max(hi - lo, 1e-8)
    return mixed, lo, rng_, (maxvisit_init + maxvisit) * value_scale, rescale


@nb.njit(cache=True, inline="always")
def _cq(t, n, a, cq):
    mixed, lo, rng_, scale, rescale = cq
    c = t[CHILDREN][n, a]
    q = _child_q(t, c) if c >= 0 else mixed
    return scale * ((q - lo) / rng_ if rescale else q)


@nb.njit(cache=True)
def _select_gumbel_root(t, p, table):
    children, logits, invalid, gumbel = t[CHILDREN], t[LOGITS], t[INVALID], t[GUMBEL]
    A = children.shape[1]
    cq = _completed(t, 0, p[P_VALUE_SCALE], p[P_MAXVISIT_INIT], p[P_RESCALE_VALUES] != 0, p[P_USE_MIXED_VALUE] != 0)
    num_valid = 0
    sim = 0
    lmax = -np.inf
    for a in range(A):
        if not invalid[0, a]:
            num_valid += 1
        sim += _child_visits(t, 0, a)
        lmax = max(lmax, logits[0, a])
    M = int(p[P_MAX_CONSIDERED])
    k = min(num_valid, M)
    L = table.shape[1]
    if sim >= L:
        sim = L - 1
    considered = table[k, sim]
    best = -1
    fallback = -1
    best_score = -np.inf
    fb_score = -np.inf
    for a in range(A):
        if invalid[0, a]:
            continue
        s = max(-1e9, gumbel[a] + (logits[0, a] - lmax) + _cq(t, 0, a, cq))
        if _child_visits(t, 0, a) == considered and (best < 0 or s > best_score):
            best = a
            best_score = s
        if fallback < 0 or s > fb_score:
            fallback = a
            fb_score = s
    return best if best >= 0 else fallback


@nb.njit(cache=True)
def _select_gumbel_interior(t, n, p):
    children, logits, invalid = t[CHILDREN], t[LOGITS], t[INVALID]
    A = children.shape[1]
    cq = _completed(t, n, p[P_VALUE_SCALE], p[P_MAXVISIT_INIT], p[P_RESCALE_VALUES] != 0, p[P_USE_MIXED_VALUE] != 0)
    m = -np.inf
    total = 0
    for a in range(A):
        total += _child_visits(t, n, a)
        if not invalid[n, a]:
            m = max(m, logits[n, a] + _cq(t, n, a, cq))
    z = 0.0
    for a in range(A):
        if not invalid[n, a]:
            z += math.exp(logits[n, a] + _cq(t, n, a, cq) - m)
    best = -1
    best_score = -np.inf
    for a in range(A):
        if invalid[n, a]:
            continue
        prob = math.exp(logits[n, a] + _cq(t, n, a, cq) - m) / z
        s = prob - _child_visits(t, n, a) / (1.0 + total)
        if best < 0 or s > best_score:
            best = a
            best_score = s
    return best


@nb.njit(cache=True)
def _select_uct(t, n, c):
    """UCB1 (mcts.hpp select_uct): the first unexpanded valid action, else the argmax of
    Q + c * sqrt(ln N(n) / N(child))."""
    children, invalid = t[CHILDREN], t[INVALID]
    A = children.shape[1]
    log_n = math.log(t[VISITS][n])
    best = -1
    best_score = -np.inf
    for a in range(A):
        if invalid[n, a]:
            continue
        ch = children[n, a]
        if ch < 0:
            return a
        score = _child_q(t, ch) + c * math.sqrt(log_n / t[VISITS][ch])
        if best < 0 or score > best_score:
            best = a
            best_score = score
    return best


@nb.njit(cache=True, inline="always")
def _select_action(t, n, p, table):
    if p[P_POLICY] == POLICY_GUMBEL:
        if n == 0:
            return _select_gumbel_root(t, p, table)
        return _select_gumbel_interior(t, n, p)
    if p[P_POLICY] == POLICY_UCT:
        return _select_uct(t, n, p[P_UCT_C])
    return _select_muzero(t, n, p[P_PB_C_INIT], p[P_PB_C_BASE], p[P_Q_TREE] == 1)


@nb.njit(cache=True, inline="always")
def _select_one(t, p, table):
    n = 0
    depth = 0
    max_depth = int(p[P_MAX_DEPTH])
    while True:
        a = _select_action(t, n, p, table)
        if a < 0:
            return n, TERMINAL
        c = t[CHILDREN][n, a]
        depth += 1
        if c < 0 or (max_depth > 0 and depth >= max_depth):
            return n, a
        n = c


@nb.njit(cache=True, inline="always")
def _reevaluate_child(t, c, reward, discount, value):
    # mctx update_tree_node on an existing node: mean value replaced, one more visit
    t[VISITS][c] += 1
    t[VALUE_SUM][c] = value * t[VISITS][c]
    t[RAW_VALUE][c] = value
    t[REWARD][c] = reward
    t[DISCOUNT][c] = discount


@nb.njit(cache=True)
def _expand_one(t, node, action, reward, discount, logits, value, invalid, has_invalid, all_invalid, state):
    visits, value_sum, raw_value = t[VISITS], t[VALUE_SUM], t[RAW_VALUE]
    children, num_nodes = t[CHILDREN], t[NUM_NODES]
    N, A = children.shape
    if node < 0 or node >= num_nodes[0]:
        return BAD_ACTION
    if action <= REEVALUATE:  # max_depth cutoff: re-evaluate the existing child a
        a = REEVALUATE - action
        if a >= A:
            return BAD_ACTION
        c = children[node, a]
        if c < 0:
            return NOT_EXPANDED
        _reevaluate_child(t, c, reward, discount, value)
        _set_logits(t, c, logits, invalid, has_invalid, all_invalid)
        return c
    if action < 0:
        visits[node] += 1
        value_sum[node] += raw_value[node]
        return node
    if action >= A:
        return BAD_ACTION
    if children[node, action] >= 0:
        return ALREADY_EXPANDED
    c = num_nodes[0]
    if c >= N:
        return CAPACITY
    num_nodes[0] = c + 1
    _init_node(t, c, node, action, reward, discount, logits, value, invalid, has_invalid, all_invalid, state)
    children[node, action] = c
    return c


@nb.njit(cache=True, inline="always")
def _update_bounds(t, c):
    # MuZero's min_max_stats.update(reward + discount * value) for node c
    q = _child_q(t, c)
    qb = t[QBOUNDS]
    if q < qb[0]:
        qb[0] = q
    if q > qb[1]:
        qb[1] = q


@nb.njit(cache=True, inline="always")
def _backup_one(t, node):
    visits, value_sum, raw_value, reward, discount, parent = (
        t[VISITS],
        t[VALUE_SUM],
        t[RAW_VALUE],
        t[REWARD],
        t[DISCOUNT],
        t[PARENT],
    )
    g = raw_value[node]
    c = node
    _update_bounds(t, c)
    while parent[c] >= 0:
        p = parent[c]
        g = reward[c] + discount[c] * g
        visits[p] += 1
        value_sum[p] += g
        c = p
        _update_bounds(t, c)


@nb.njit(parallel=True, cache=True)
def _select(tree, params, table, node, action):
    for b in nb.prange(tree[CHILDREN].shape[0]):
        node[b], action[b] = _select_one(_view(tree, b), params, table)


def select(tree, params, table, node, action):
    # As in C++: threads only for large batches (one call per simulation on the callback
    # path). The parfor is kept even on one thread: numba compiles it ~4x faster than the
    # equivalent serial loop over the tuple of tree arrays.
    if node.shape[0] >= 1024:
        return _select(tree, params, table, node, action)
    n = nb.get_num_threads()
    nb.set_num_threads(1)
    try:
        _select(tree, params, table, node, action)
    finally:
        nb.set_num_threads(n)


@nb.njit(cache=True)
def _expand(tree, node, action, reward, discount, logits, value, invalid, has_invalid, state, out):
    B = tree[CHILDREN].shape[0]
    for b_u in nb.prange(B):
        b = np.int64(b_u)  # signed: one callee signature (see __init__.py)
        out[b] = _expand_one(
            _view(tree, b),
            node[b],
            action[b],
            reward[b],
            discount[b],
            logits[b],
            value[b],
            invalid[b],
            has_invalid,
            False,
            state[b],
        )


def expand(tree, node, action, reward, discount, logits, value, invalid, state, out):
    has = invalid is not None
    inv = invalid if has else np.zeros((1, 1), np.uint8)
    if not has and node.shape[0] > 1:
        inv = np.zeros((node.shape[0], 1), np.uint8)
    _expand(tree, node, action, reward, discount, logits, value, inv, has, state, out)


@nb.njit(cache=True)
def backup(tree, node):
    B = tree[CHILDREN].shape[0]
    for b_u in nb.prange(B):
        b = np.int64(b_u)  # signed: one callee signature (see __init__.py)
        t = _view(tree, b)
        if node[b] >= 0 and node[b] < t[NUM_NODES][0]:
            _backup_one(t, node[b])


@nb.njit(cache=True)
def _check_outputs(reward, discount, logits, value):
    """The bits of mcts.hpp's check_outputs: 1 logits NaN/+inf, 2/4/8 reward/discount/value."""
    bad = 0
    for i in range(logits.shape[0]):
        for a in range(logits.shape[1]):
            if math.isnan(logits[i, a]) or logits[i, a] == np.inf:
                bad |= 1
    for k, row in enumerate((reward, discount, value)):
        for b in range(row.shape[0]):
            if not math.isfinite(row[b]):
                bad |= 2 << k
    return bad


@nb.njit(parallel=True, cache=True)
def _step(
    tree, params, table, node, action, reward, discount, logits, value, invalid, has_invalid, leaf, nxt, nxt_a, sel
):
    max_depth = int(params[P_MAX_DEPTH])
    failed = 0
    for b_u in nb.prange(tree[CHILDREN].shape[0]):
        b = np.int64(b_u)  # signed: one callee signature (see __init__.py)
        t = _view(tree, b)
        children, num_nodes = t[CHILDREN], t[NUM_NODES]
        n, a = node[b], action[b]
        if max_depth > 0 and 0 <= a < children.shape[1] and 0 <= n < num_nodes[0] and children[n, a] >= 0:
            a = REEVALUATE - a
        state = np.int64(num_nodes[0])
        c = _expand_one(t, n, a, reward[b], discount[b], logits[b], value[b], invalid[b], has_invalid, False, state)
        leaf[b] = c
        if c >= 0:
            _backup_one(t, c)
        else:
            failed += 1
        if sel:
            nxt[b], nxt_a[b] = _select_one(t, params, table)
    return failed


@nb.njit(cache=True)
def _embedding_rows(tree8, next8, gathered8, action, leaf, next_node, store, gather):
    """mcts.hpp's EmbeddingRows copies on (B, N, row bytes) and (B, row bytes) uint8 views."""
    N = tree8.shape[1]
    for b in range(tree8.shape[0]):
        if store and action[b] >= 0 and leaf[b] >= 0:
            tree8[b, leaf[b]] = next8[b]
        if gather:
            n = next_node[b] + N if next_node[b] < 0 else next_node[b]
            gathered8[b] = tree8[b, n]


def _rows8(a, lead):
    """A C-contiguous array of a plain dtype as uint8 rows: (lead..., row bytes)."""
    if a.dtype.hasobject or not a.flags.c_contiguous:
        raise ValueError("embeddings: expected C-contiguous arrays of a plain dtype")
    return a.reshape(a.shape[:lead] + (-1,)).view(np.uint8).reshape(a.shape[:lead] + (-1,))


def step(
    tree,
    params,
    table,
    node,
    action,
    reward,
    discount,
    logits,
    value,
    invalid,
    leaf,
    next_node,
    next_action,
    embeddings=None,
    next_embedding=None,
    gathered=None,
):
    """The contract of mcts.hpp's step_cpu: returns (bad_outputs bits, failed expansions)."""
    bad = _check_outputs(reward, discount, logits, value)
    if bad:
        return bad, 0
    has = invalid is not None
    inv = invalid if has else np.zeros((node.shape[0], 1), np.uint8)
    sel = next_node is not None
    nxt, nxt_a = (next_node, next_action) if sel else (leaf, leaf)
    args = (tree, params, table, node, action, reward, discount, logits, value, inv, has, leaf, nxt, nxt_a, sel)
    if embeddings is not None:  # checked before any tree changes, as the C++ binding does
        if embeddings.shape[:2] != tree[CHILDREN].shape[:2]:
            raise ValueError("embeddings: expected (B, N, ...) rows, N the tree's capacity")
        rows_like = all(
            a is None or (a.dtype == embeddings.dtype and a.shape == embeddings.shape[:1] + embeddings.shape[2:])
            for a in (next_embedding, gathered)
        )
        if not rows_like:
            raise ValueError("embeddings: next_embedding and gathered must be (B, ...) rows of the tree's embeddings")
        t8 = _rows8(embeddings, 2)
        store, gather = next_embedding is not None, gathered is not None and sel
        n8 = _rows8(next_embedding, 1) if store else t8[:, 0]
        g8 = _rows8(gathered, 1) if gather else t8[:, 0]
    if node.shape[0] >= 1024:  # threads only for large batches, as select
        failed = _step(*args)
    else:
        n = nb.get_num_threads()
        nb.set_num_threads(1)
        try:
            failed = _step(*args)
        finally:
            nb.set_num_threads(n)
    if embeddings is not None:
        _embedding_rows(t8, n8, g8, action, leaf, nxt, store, gather)
    return 0, failed


def search_tabular(
    tree,
    params,
    table,
    num_simulations,
    next_state,
    reward,
    discount,
    logits,
    prior,
    value,
    invalid,
    cdf=None,
    seed=0,
    stream0=0,
):
    has = cdf is not None
    # in slices of simulations (Ctrl-C between them; a split search is the same search)
    sim = 0
    for budget in budgets(first=256):
        if sim >= num_simulations:
            return
        end = min(num_simulations, sim + budget)
        _search_tabular(
            tree,
            params,
            table,
            sim,
            end,
            next_state,
            reward,
            discount,
            logits,
            prior,
            value,
            invalid,
            cdf if has else np.ones((1, 1, 1)),
            has,
            np.uint64(seed),
            np.int64(stream0),
        )
        sim = end


@nb.njit(cache=True)
def _leaf_value(s, depth, next_state, reward, discount, value, invalid, cdf, has_cdf, seed, gi, sim):
    """mcts.hpp leaf_value: the table's value, or a random rollout's (float64) when depth > 0."""
    if depth <= 0:
        return value[s]
    A = invalid.shape[1]
    stream = _K_ROLLOUT | np.uint64(gi)
    ret = 0.0
    scale = 1.0
    for k in range(depth):
        n_valid = 0
        for a in range(A):
            if not invalid[s, a]:
                n_valid += 1
        if n_valid == 0:
            return ret
        w = block(seed, stream, np.uint64(sim) * np.uint64(depth) + np.uint64(k))
        j = min(int(uniform_f64(w[0], w[1]) * n_valid), n_valid - 1)
        act = 0
        for a in range(A):
            if not invalid[s, a]:
                if j == 0:
                    act = a
                    break
                j -= 1
        ret += scale * np.float64(reward[s, act])
        scale *= np.float64(discount[s, act])
        if has_cdf:
            s = _inverse_cdf(cdf[s, act], uniform_f64(w[2], w[3]))
        else:
            s = next_state[s, act]
    return ret + scale * np.float64(value[s])


@nb.njit(cache=True)
def _init_chance(t, c, parent, action, reward, discount):
    visits = t[VISITS]
    value_sum = t[VALUE_SUM]
    raw_value = t[RAW_VALUE]
    rew = t[REWARD]
    disc = t[DISCOUNT]
    par = t[PARENT]
    act = t[ACTION]
    children = t[CHILDREN]
    lg = t[LOGITS]
    pr = t[PRIOR]
    inv = t[INVALID]
    st = t[STATE]
    visits[c] = 0
    value_sum[c] = 0
    raw_value[c] = 0
    rew[c] = reward
    disc[c] = discount
    par[c] = parent
    act[c] = action
    st[c] = _CHANCE_STATE
    for a in range(children.shape[1]):
        children[c, a] = -1
        lg[c, a] = -np.inf
        pr[c, a] = 0
        inv[c, a] = 1


@nb.njit(cache=True)
def _simulate_chance(
    t, params, table, next_state, reward, discount, logits, prior, value, invalid, cdf, seed, gi, sim, depth
):
    """mcts.hpp simulate_chance: one simulation with chance nodes; returns the node to back up."""
    visits = t[VISITS]
    value_sum = t[VALUE_SUM]
    raw_value = t[RAW_VALUE]
    rew = t[REWARD]
    disc = t[DISCOUNT]
    par = t[PARENT]
    act = t[ACTION]
    children = t[CHILDREN]
    lg = t[LOGITS]
    pr = t[PRIOR]
    inv = t[INVALID]
    st = t[STATE]
    nn = t[NUM_NODES]
    A = children.shape[1]
    n = 0
    d = 0
    while True:
        a = _select_action(t, n, params, table)
        if a < 0:
            visits[n] += 1
            value_sum[n] += raw_value[n]
            return n
        s = st[n]
        host = children[n, a]
        if host < 0:
            host = nn[0]
            nn[0] = host + 1
            _init_chance(t, host, n, a, reward[s, a], discount[s, a])
            children[n, a] = host
        w = block(seed, _K_CHANCE | np.uint64(gi), (np.uint64(sim) << np.uint64(32)) | np.uint64(d))
        s2 = _inverse_cdf(cdf[s, a], uniform_f64(w[0], w[1]))
        d += 1
        slot = -1
        o = -1
        while True:
            for k in range(A - 1):
                ch = children[host, k]
                if ch < 0 or st[ch] == s2:
                    slot = k
                    o = ch
                    break
            if slot >= 0:
                break
            nxt = children[host, A - 1]
            if nxt >= 0:
                host = nxt
                continue
            link = nn[0]
            nn[0] = link + 1
            _init_chance(t, link, host, A - 1, 0.0, 1.0)
            children[host, A - 1] = link
            host = link
            slot = 0
            break
        if o >= 0:
            n = o
            continue
        o = nn[0]
        nn[0] = o + 1
        visits[o] = 1
        raw_value[o] = _leaf_value(s2, depth, next_state, reward, discount, value, invalid, cdf, True, seed, gi, sim)
        value_sum[o] = raw_value[o]
        rew[o] = 0
        disc[o] = 1
        par[o] = host
        act[o] = slot
        st[o] = s2
        for b in range(A):
            children[o, b] = -1
            lg[o, b] = logits[s2, b]
            pr[o, b] = prior[s2, b]
            inv[o, b] = invalid[s2, b]
        children[host, slot] = o
        return o


@nb.njit(parallel=True, cache=True)
def _search_tabular(
    tree,
    params,
    table,
    sim0,
    sim1,
    next_state,
    reward,
    discount,
    logits,
    prior,
    value,
    invalid,
    cdf,
    has_cdf,
    seed,
    stream0,
):
    B = tree[CHILDREN].shape[0]
    for b_u in nb.prange(B):
        b = np.int64(b_u)  # signed: one callee signature (see __init__.py)
        t = _view(tree, b)
        gi = stream0 + b  # the tree's global index: its random streams
        visits = t[VISITS]
        value_sum = t[VALUE_SUM]
        raw_value = t[RAW_VALUE]
        rew = t[REWARD]
        disc = t[DISCOUNT]
        par = t[PARENT]
        act = t[ACTION]
        children = t[CHILDREN]
        lg = t[LOGITS]
        pr = t[PRIOR]
        inv = t[INVALID]
        st = t[STATE]
        nn = t[NUM_NODES]
        A = children.shape[1]
        depth = int(params[P_ROLLOUT_DEPTH])
        chance = params[P_CHANCE] != 0 and has_cdf
        for sim in range(sim0, sim1):
            if chance:  # chance nodes (mcts.hpp simulate_chance)
                if nn[0] + 2 > children.shape[0]:
                    break
                _backup_one(
                    t,
                    _simulate_chance(
                        t,
                        params,
                        table,
                        next_state,
                        reward,
                        discount,
                        logits,
                        prior,
                        value,
                        invalid,
                        cdf,
                        seed,
                        gi,
                        sim,
                        depth,
                    ),
                )
                continue
            node, action = _select_one(t, params, table)
            leaf = node
            old = children[node, action] if action >= 0 else -1
            if old >= 0:  # max_depth cutoff: re-evaluate the existing child
                s = st[node]
                if has_cdf:
                    s2 = _inverse_cdf(cdf[s, action], _transition_uniform(seed, gi, sim))
                else:
                    s2 = next_state[s, action]
                # (through raw_value: the leaf value rounded to the tree's dtype, as in C++)
                raw_value[old] = _leaf_value(
                    s2, depth, next_state, reward, discount, value, invalid, cdf, has_cdf, seed, gi, sim
                )
                _reevaluate_child(t, old, reward[s, action], discount[s, action], raw_value[old])
                st[old] = s2
                for a in range(A):
                    lg[old, a] = logits[s2, a]
                    pr[old, a] = prior[s2, a]
                    inv[old, a] = invalid[s2, a]
                leaf = old
            elif action >= 0:
                c = nn[0]
                if c >= children.shape[0]:
                    break
                nn[0] = c + 1
                s = st[node]
                if has_cdf:
                    s2 = _inverse_cdf(cdf[s, action], _transition_uniform(seed, gi, sim))
                else:
                    s2 = next_state[s, action]
                visits[c] = 1
                raw_value[c] = _leaf_value(
                    s2, depth, next_state, reward, discount, value, invalid, cdf, has_cdf, seed, gi, sim
                )
                value_sum[c] = raw_value[c]
                rew[c] = reward[s, action]
                disc[c] = discount[s, action]
                par[c] = node
                act[c] = action
                st[c] = s2
                for a in range(A):
                    children[c, a] = -1
                    lg[c, a] = logits[s2, a]
                    pr[c, a] = prior[s2, a]
                    inv[c, a] = invalid[s2, a]
                children[node, action] = c
                leaf = c
            else:
                visits[node] += 1
                value_sum[node] += raw_value[node]
            _backup_one(t, leaf)


@nb.njit(cache=True)
def _advance_one(t, action, new_index, old_index):
    visits = t[VISITS]
    value_sum = t[VALUE_SUM]
    raw_value = t[RAW_VALUE]
    reward = t[REWARD]
    discount = t[DISCOUNT]
    parent = t[PARENT]
    act = t[ACTION]
    children = t[CHILDREN]
    lg = t[LOGITS]
    pr = t[PRIOR]
    inv = t[INVALID]
    st = t[STATE]
    nn = t[NUM_NODES]
    qb = t[QBOUNDS]
    N, A = children.shape
    if action < 0 or action >= A:
        return BAD_ACTION
    r = children[0, action]
    if r < 0:
        return NOT_EXPANDED
    n_old = nn[0]
    new_index[:] = -1
    old_index[:] = -1
    cnt = 0
    for i in range(r, n_old):
        if i == r or (parent[i] >= 0 and new_index[parent[i]] >= 0):
            new_index[i] = cnt
            cnt += 1
    for i in range(r, n_old):
        j = new_index[i]
        if j < 0:
            continue
        old_index[j] = i
        visits[j] = visits[i]
        value_sum[j] = value_sum[i]
        raw_value[j] = raw_value[i]
        reward[j] = reward[i]
        discount[j] = discount[i]
        parent[j] = -1 if i == r else new_index[parent[i]]
        act[j] = -1 if i == r else act[i]
        st[j] = st[i]
        for a in range(A):
            c = children[i, a]
            children[j, a] = new_index[c] if c >= 0 else -1
            lg[j, a] = lg[i, a]
            pr[j, a] = pr[i, a]
            inv[j, a] = inv[i, a]
    reward[0] = 0
    discount[0] = 1
    for j in range(cnt, n_old):
        visits[j] = 0
        value_sum[j] = 0
        raw_value[j] = 0
        reward[j] = 0
        discount[j] = 0
        parent[j] = -1
        act[j] = -1
        st[j] = 0
        for a in range(A):
            children[j, a] = -1
            lg[j, a] = 0
            pr[j, a] = 0
            inv[j, a] = 0
    nn[0] = cnt
    # bounds recomputed over the kept subtree (as the C++ advance_one)
    qb[0] = np.inf
    qb[1] = -np.inf
    for j in range(cnt):
        _update_bounds(t, j)
    return OK


@nb.njit(cache=True)
def advance(tree, action, new_index, old_index, status):
    B = tree[CHILDREN].shape[0]
    for b in nb.prange(B):
        status[b] = _advance_one(_view(tree, b), action[b], new_index[b], old_index[b])


@nb.njit(cache=True)
def _dirichlet(seed, stream0, alpha, out):
    B, A = out.shape
    for i in nb.prange(B):
        b = stream0 + i  # global tree index (streams); row i of out
        z = 0.0
        for a in range(A):
            g = gamma_f64(alpha, seed, _K_DIRICHLET | np.uint64(b * A + a))
            out[i, a] = g
            z += g
        if not z > 0:  # every variate underflowed (tiny alpha): one-hot, as mcts.hpp dirichlet_one
            best, u_best = 0, -1.0
            for a in range(A):
                w = block(seed, _K_DIRICHLET | np.uint64(b * A + a), 0)
                u = uniform_f64(w[0], w[1])
                if u > u_best:
                    best, u_best = a, u
            for a in range(A):
                out[i, a] = 1.0 if a == best else 0.0
            continue
        for a in range(A):
            out[i, a] = np.float64(out[i, a]) / z


def dirichlet_noise(seed, stream0, alpha, out):
    _dirichlet(np.uint64(seed), np.int64(stream0), float(alpha), out)


@nb.njit(cache=True)
def _gumbel(seed, stream0, out):
    B, A = out.shape
    for b in nb.prange(B):
        stream = _K_GUMBEL | np.uint64(stream0 + b)
        for a in range(0, A, 2):
            w = block(seed, stream, a // 2)
            out[b, a] = gumbel_f64(w[0], w[1])
            if a + 1 < A:
                out[b, a + 1] = gumbel_f64(w[2], w[3])


def gumbel_noise(seed, stream0, out):
    _gumbel(np.uint64(seed), np.int64(stream0), out)


@nb.njit(cache=True)
def _sample(w, temperature, seed, stream0, out):
    B, A = w.shape
    for b in nb.prange(B):
        arg = 0
        for a in range(1, A):
            if w[b, a] > w[b, arg]:
                arg = a
        temp = float(temperature[b])
        if temp <= 0.0 or not (w[b, arg] > 0):
            out[b] = arg
            continue
        lmax = math.log(float(w[b, arg]))
        total = 0.0
        for a in range(A):
            if w[b, a] > 0:
                total += math.exp((math.log(float(w[b, a])) - lmax) / temp)
        r = block(seed, _K_ACTION | np.uint64(stream0 + b), 0)
        u = uniform_f64(r[0], r[1]) * total
        acc = 0.0
        last = arg
        chosen = -1
        for a in range(A):
            if not (w[b, a] > 0):
                continue
            acc += math.exp((math.log(float(w[b, a])) - lmax) / temp)
            last = a
            if u < acc:
                chosen = a
                break
        out[b] = chosen if chosen >= 0 else last


def sample_action(weights, temperature, seed, stream0, out):
    _sample(weights, temperature, np.uint64(seed), np.int64(stream0), out)
