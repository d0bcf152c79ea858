"""numba categorical log-prob / entropy / KL (same contract as csrc/bind/categorical.cpp, math of
categorical.hpp: masked actions have probability 0, infinite values get NaN gradients)."""

import numba as nb
import numpy as np

from ..categorical import _STATUS

OK, P_ALL_MASKED, P_NONFINITE, Q_ALL_MASKED, Q_NONFINITE, BAD_ACTION = (
    _STATUS[k] for k in ("OK", "P_ALL_MASKED", "P_NONFINITE", "Q_ALL_MASKED", "Q_NONFINITE", "BAD_ACTION")
)


@nb.njit(cache=True, inline="always")
def _on(m, has_m, b, j):
    if not has_m:
        return True
    return m[b * (m.shape[0] != 1), j] != 0  # shared (1, K) mask: row 0 (no int/uint unification)


@nb.njit(cache=True)
def _logz(x, m, has_m, b, all_masked, nonfinite):
    """(status, row max, log of the shifted sum) of row b's allowed logits: log p_j =
    (x_j - max) - log_sum, as in categorical.hpp (no rounding of max + log_sum)."""
    K = x.shape[1]
    mx = -np.inf
    n = 0
    for j in range(K):
        if _on(m, has_m, b, j):
            if not np.isfinite(x[b, j]):
                return nonfinite, 0.0, 0.0
            mx = max(mx, x[b, j])
            n += 1
    if n == 0:
        return all_masked, 0.0, 0.0
    s = x.dtype.type(0)
    for j in range(K):
        if _on(m, has_m, b, j):
            s += np.exp(x[b, j] - mx)
    return OK, mx, np.log(s)


@nb.njit(parallel=True, cache=True)
def _log_prob(x, m, has_m, a, out, status):
    B, K = x.shape
    for b_u in nb.prange(B):
        b = np.int64(b_u)  # signed: one callee signature (see __init__.py)
        if a[b] < 0 or a[b] >= K:
            status[b] = BAD_ACTION
            continue
        st, mx, ls = _logz(x, m, has_m, b, P_ALL_MASKED, P_NONFINITE)
        status[b] = st
        if st == OK:
            out[b] = (x[b, a[b]] - mx) - ls if _on(m, has_m, b, a[b]) else -np.inf


@nb.njit(parallel=True, cache=True)
def _log_prob_backward(x, m, has_m, a, g, dx):
    B, K = x.shape
    for b_u in nb.prange(B):
        b = np.int64(b_u)  # signed: one callee signature (see __init__.py)
        ok = 0 <= a[b] < K
        mx, ls = 0.0, 0.0
        if ok:
            st, mx, ls = _logz(x, m, has_m, b, P_ALL_MASKED, P_NONFINITE)
            ok = st == OK and _on(m, has_m, b, a[b])
        for j in range(K):
            if not ok:
                dx[b, j] = np.nan
            elif _on(m, has_m, b, j):
                dx[b, j] = g[b] * ((1.0 if j == a[b] else 0.0) - np.exp((x[b, j] - mx) - ls))
            else:
                dx[b, j] = 0.0


@nb.njit(cache=True)
def _entropy_row(x, m, has_m, b, mx, ls):
    h = x.dtype.type(0)
    for j in range(x.shape[1]):
        if _on(m, has_m, b, j):
            lp = (x[b, j] - mx) - ls
            h -= np.exp(lp) * lp
    return h


@nb.njit(parallel=True, cache=True)
def _entropy(x, m, has_m, out, status):
    for b_u in nb.prange(x.shape[0]):
        b = np.int64(b_u)  # signed: one callee signature (see __init__.py)
        st, mx, ls = _logz(x, m, has_m, b, P_ALL_MASKED, P_NONFINITE)
        status[b] = st
        if st == OK:
            out[b] = _entropy_row(x, m, has_m, b, mx, ls)


@nb.njit(parallel=True, cache=True)
def _entropy_backward(x, m, has_m, g, dx):
    B, K = x.shape
    for b_u in nb.prange(B):
        b = np.int64(b_u)  # signed: one callee signature (see __init__.py)
        st, mx, ls = _logz(x, m, has_m, b, P_ALL_MASKED, P_NONFINITE)
        if st != OK:
            dx[b, :] = np.nan
            continue
        h = _entropy_row(x, m, has_m, b, mx, ls)
        for j in range(K):
            lp = (x[b, j] - mx) - ls
            dx[b, j] = -g[b] * np.exp(lp) * (lp + h) if _on(m, has_m, b, j) else 0.0


@nb.njit(cache=True)
def _kl_row(p, q, mp, has_mp, mq, has_mq, p_is_prob, b):
    """(status, KL, (max, log_sum) of p, (max, log_sum) of q) of row b."""
    mp_, lp_ = 0.0, 0.0
    if not p_is_prob:
        st, mp_, lp_ = _logz(p, mp, has_mp, b, P_ALL_MASKED, P_NONFINITE)
        if st != OK:
            return st, 0.0, 0.0, 0.0, 0.0, 0.0
    st, mq_, lq_ = _logz(q, mq, has_mq, b, Q_ALL_MASKED, Q_NONFINITE)
    if st != OK:
        return st, 0.0, 0.0, 0.0, 0.0, 0.0
    kl = 0.0
    for j in range(q.shape[1]):
        mass = p[b, j] > 0 if p_is_prob else _on(mp, has_mp, b, j)
        if not mass:
            continue
        if not _on(mq, has_mq, b, j):
            return OK, np.inf, mp_, lp_, mq_, lq_
        lp = np.log(p[b, j]) if p_is_prob else (p[b, j] - mp_) - lp_
        pj = p[b, j] if p_is_prob else np.exp(lp)
        kl += pj * (lp - ((q[b, j] - mq_) - lq_))
    return OK, kl, mp_, lp_, mq_, lq_


@nb.njit(parallel=True, cache=True)
def _kl(p, q, mp, has_mp, mq, has_mq, p_is_prob, out, status):
    for b_u in nb.prange(q.shape[0]):
        b = np.int64(b_u)  # signed: one callee signature (see __init__.py)
        st, kl, _, _, _, _ = _kl_row(p, q, mp, has_mp, mq, has_mq, p_is_prob, b)
        status[b] = st
        if st == OK:
            out[b] = kl


@nb.njit(parallel=True, cache=True)
def _kl_backward(p, q, mp, has_mp, mq, has_mq, p_is_prob, g, dp, has_dp, dq):
    B, K = q.shape
    for b_u in nb.prange(B):
        b = np.int64(b_u)  # signed: one callee signature (see __init__.py)
        st, kl, mp_, lp_, mq_, lq_ = _kl_row(p, q, mp, has_mp, mq, has_mq, p_is_prob, b)
        if st != OK or kl == np.inf:
            if has_dp:
                dp[b, :] = np.nan
            dq[b, :] = np.nan
            continue
        for j in range(K):
            mass = p[b, j] > 0 if p_is_prob else _on(mp, has_mp, b, j)
            lp = (np.log(p[b, j]) if p_is_prob else (p[b, j] - mp_) - lp_) if mass else 0.0
            pj = (p[b, j] if p_is_prob else np.exp(lp)) if mass else 0.0
            qon = _on(mq, has_mq, b, j)
            lq = (q[b, j] - mq_) - lq_ if qon else 0.0
            if has_dp:
                dp[b, j] = g[b] * pj * (lp - lq - kl) if (not p_is_prob and _on(mp, has_mp, b, j)) else 0.0
            dq[b, j] = g[b] * (np.exp(lq) - pj) if qon else 0.0


_NO_MASK = np.ones((1, 1), np.uint8)


def _m(mask):
    return (_NO_MASK, False) if mask is None else (mask, True)


def log_prob(logits, mask, actions, out, status):
    _log_prob(logits, *_m(mask), actions, out, status)


def log_prob_backward(logits, mask, actions, grad, grad_logits):
    _log_prob_backward(logits, *_m(mask), actions, grad, grad_logits)


def entropy(logits, mask, out, status):
    _entropy(logits, *_m(mask), out, status)


def entropy_backward(logits, mask, grad, grad_logits):
    _entropy_backward(logits, *_m(mask), grad, grad_logits)


def kl(p, q_logits, p_mask, q_mask, p_is_prob, out, status):
    _kl(p, q_logits, *_m(p_mask), *_m(q_mask), bool(p_is_prob), out, status)


def kl_backward(p, q_logits, p_mask, q_mask, p_is_prob, grad, grad_p, grad_q):
    dp = np.empty((1, 1), q_logits.dtype) if grad_p is None else grad_p
    _kl_backward(p, q_logits, *_m(p_mask), *_m(q_mask), bool(p_is_prob), grad, dp, grad_p is not None, grad_q)
