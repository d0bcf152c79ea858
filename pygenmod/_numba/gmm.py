"""numba Gaussian-mixture kernels (same contract as csrc/bind/gmm.cpp).

The covariance-shaped arrays are passed to the jitted cores as flat (B, cov_size) views so one
core serves every covariance type. Statistics are accumulated in float64, centred at each
set's weighted mean, with scikit-learn's M-step formulas and the same collapse / jitter policy
as the C++ kernels (csrc/include/pygenmod/gmm.hpp).
"""

import math

import numba as nb
import numpy as np

from .philox import block, uniform_f64
from .slices import budgets

FULL, TIED, DIAG, SPHERICAL = 0, 1, 2, 3
COLLAPSED, REGULARISED, EMPTY_SET = 1, 2, 4
LOG2PI = 1.8378770664093453
EPS = 2.220446049250313e-16


def _flat(a, B):
    # explicit extents: reshape(0, -1) is an error for an empty batch (B = 0)
    return a.reshape(B, a.size // B if B else math.prod(a.shape[1:]))


def _check_type(t):
    if t not in (0, 1, 2, 3):
        raise ValueError("cov_type: expected 0 (full), 1 (tied), 2 (diag) or 3 (spherical)")


@nb.njit(cache=True, inline="always")
def _pc_off(t, k, D):
    if t == FULL:
        return k * D * D
    if t == TIED:
        return 0
    if t == DIAG:
        return k * D
    return k


@nb.njit(cache=True)
def _mahal2(t, x, mu, pc, off, D):
    s = 0.0
    if t == FULL or t == TIED:
        for j in range(D):
            y = 0.0
            for i in range(j + 1):
                y += (x[i] - mu[i]) * pc[off + i * D + j]
            s += y * y
    elif t == DIAG:
        for d in range(D):
            y = (x[d] - mu[d]) * pc[off + d]
            s += y * y
    else:
        for d in range(D):
            y = x[d] - mu[d]
            s += y * y
        s *= pc[off] * pc[off]
    return s


@nb.njit(cache=True)
def _logdet(t, pc, off, D):
    s = 0.0
    if t == FULL or t == TIED:
        for j in range(D):
            s += math.log(pc[off + j * D + j])
    elif t == DIAG:
        for d in range(D):
            s += math.log(pc[off + d])
    else:
        s = D * math.log(pc[off])
    return s


@nb.njit(cache=True)
def _cholesky(a, D):
    for j in range(D):
        s = a[j, j]
        for p in range(j):
            s -= a[j, p] * a[j, p]
        if not (s > 0) or not math.isfinite(s):
            return False
        l = math.sqrt(s)
        a[j, j] = l
        for i in range(j + 1, D):
            t = a[i, j]
            for p in range(j):
                t -= a[i, p] * a[j, p]
            a[i, j] = t / l
        for i in range(j):
            a[i, j] = 0.0
    return True


@nb.njit(cache=True)
def _chol_jitter(C, L, D, scale):
    L[:, :] = C
    if _cholesky(L, D):
        return 0
    jit = 1e-10 * scale
    for _ in range(20):
        L[:, :] = C
        for d in range(D):
            L[d, d] += jit
        if _cholesky(L, D):
            for d in range(D):
                C[d, d] += jit
            return REGULARISED
        jit *= 10
    C[:, :] = 0.0
    for d in range(D):
        C[d, d] = scale
    L[:, :] = C
    _cholesky(L, D)
    return REGULARISED


@nb.njit(cache=True)
def _prec_factor(L, D, P):
    for c in range(D):
        for r in range(D):
            if r < c:
                P[c, r] = 0.0
                continue
            s = 1.0 if r == c else 0.0
            for p in range(c, r):
                s -= L[r, p] * P[c, p]
            P[c, r] = s / L[r, r]


@nb.njit(cache=True)
def _empty_params(t, K, D, w, mu, cov, pc, fl):
    for k in range(K):
        w[k] = 1.0 / K
        fl[k] = EMPTY_SET | COLLAPSED
    mu[:] = 0.0
    if t == FULL or t == TIED:
        cov[:] = 0.0
        pc[:] = 0.0
        nm = K if t == FULL else 1
        for q in range(nm):
            for d in range(D):
                cov[q * D * D + d * D + d] = 1.0
                pc[q * D * D + d * D + d] = 1.0
    else:
        cov[:] = 1.0
        pc[:] = 1.0


@nb.njit(cache=True)
def _centre(x, w, c):
    N, D = x.shape
    ws = 0.0
    c[:] = 0.0
    for n in range(N):
        wt = np.float64(w[n])
        if not (wt > 0):
            continue
        ws += wt
        for d in range(D):
            c[d] += wt * x[n, d]
    if ws > 0:
        for d in range(D):
            c[d] /= ws
    return ws


@nb.njit(cache=True)
def _stats(t, x, w, resp, use_resp, c, wk, mu, pc, K, Nk, S1, S2):
    """E-step (or given resp) and statistics of one set; returns sum of w * log_norm."""
    N, D = x.shape
    Nk[:] = 0.0
    S1[:] = 0.0
    S2[:] = 0.0
    ll = 0.0
    xc = np.empty(D)
    muc = np.empty((K, D))
    cst = np.empty(K)
    r = np.empty(K)
    for k in range(K):
        for d in range(D):
            muc[k, d] = mu[k, d] - c[d]
        cst[k] = math.log(wk[k]) + _logdet(t, pc, _pc_off(t, k, D), D) - 0.5 * D * LOG2PI if wk[k] > 0 else -np.inf
    for n in range(N):
        wt = np.float64(w[n])
        if not (wt > 0):
            continue
        for d in range(D):
            xc[d] = x[n, d] - c[d]
        if use_resp:
            for k in range(K):
                r[k] = wt * resp[n, k]
        else:
            m = -np.inf
            for k in range(K):
                r[k] = cst[k] - 0.5 * _mahal2(t, xc, muc[k], pc, _pc_off(t, k, D), D)
                if r[k] > m:
                    m = r[k]
            if not (m > -np.inf) or not math.isfinite(m):
                best = 0
                for k in range(1, K):
                    if r[k] > r[best]:
                        best = k
                for k in range(K):
                    r[k] = wt if k == best else 0.0
            else:
                s = 0.0
                for k in range(K):
                    s += math.exp(r[k] - m)
                lse = m + math.log(s)
                ll += wt * lse
                for k in range(K):
                    r[k] = wt * math.exp(r[k] - lse)
        for k in range(K):
            a = r[k]
            Nk[k] += a
            for d in range(D):
                S1[k, d] += a * xc[d]
            if t == FULL:
                for i in range(D):
                    ti = a * xc[i]
                    for j in range(i + 1):
                        S2[k * D * D + i * D + j] += ti * xc[j]
            elif t == DIAG or t == SPHERICAL:
                for d in range(D):
                    S2[k * D + d] += a * xc[d] * xc[d]
        if t == TIED:
            for i in range(D):
                ti = wt * xc[i]
                for j in range(i + 1):
                    S2[i * D + j] += ti * xc[j]
    return ll


@nb.njit(cache=True)
def _finalize(t, Nr, S1, S2, c, wsum, K, D, reg, w, mu, cov, pc, fl):
    if not (wsum > 0):
        _empty_params(t, K, D, w, mu, cov, pc, fl)
        return
    nk = Nr + 10 * EPS
    nsum = nk.sum()
    fl[:] = 0
    m0 = np.zeros(D)
    for d in range(D):
        m0[d] = S1[:, d].sum() / wsum
    fullish = t == FULL or t == TIED
    tot = np.zeros((D, D))
    vdiag = np.zeros(D)
    if fullish:
        for i in range(D):
            for j in range(i + 1):
                s = 0.0
                if t == TIED:
                    s = S2[i * D + j]
                else:
                    for k in range(K):
                        s += S2[k * D * D + i * D + j]
                tot[i, j] = s / wsum - m0[i] * m0[j]
                tot[j, i] = tot[i, j]
        for d in range(D):
            vdiag[d] = tot[d, d]
    else:
        for d in range(D):
            s = 0.0
            for k in range(K):
                s += S2[k * D + d]
            vdiag[d] = s / wsum - m0[d] * m0[d]
    sc = 0.0
    for d in range(D):
        v = vdiag[d]
        sc += v if (math.isfinite(v) and v > 0) else 0.0
    sc /= max(D, 1)
    scale = sc if sc > 0 else 1.0
    tiny = 1e-12 * wsum
    for k in range(K):
        w[k] = nk[k] / nsum
        col = not (Nr[k] > tiny)
        if col:
            fl[k] |= COLLAPSED
        for d in range(D):
            mk = m0[d] if col else S1[k, d] / nk[k]
            mu[k * D + d] = c[d] + mk
    C = np.empty((D, D))
    L = np.empty((D, D))
    P = np.empty((D, D))
    m = np.empty(D)
    if t == FULL:
        for k in range(K):
            col = (fl[k] & COLLAPSED) != 0
            f = 2 * nk[k] - Nr[k]
            for d in range(D):
                m[d] = S1[k, d] / nk[k]
            for i in range(D):
                for j in range(i + 1):
                    v = tot[i, j] if col else (S2[k * D * D + i * D + j] - f * m[i] * m[j]) / nk[k]
                    C[i, j] = v
                    C[j, i] = v
            for d in range(D):
                C[d, d] += reg
            fl[k] |= _chol_jitter(C, L, D, scale)
            _prec_factor(L, D, P)
            for i in range(D):
                for j in range(D):
                    cov[k * D * D + i * D + j] = C[i, j]
                    pc[k * D * D + i * D + j] = P[i, j]
    elif t == TIED:
        for i in range(D):
            for j in range(i + 1):
                s = S2[i * D + j]
                for k in range(K):
                    if fl[k] & COLLAPSED:
                        continue
                    s -= S1[k, i] * S1[k, j] / nk[k]
                C[i, j] = s / nsum
                C[j, i] = C[i, j]
        for d in range(D):
            C[d, d] += reg
        f = _chol_jitter(C, L, D, scale)
        for k in range(K):
            fl[k] |= f
        _prec_factor(L, D, P)
        for i in range(D):
            for j in range(D):
                cov[i * D + j] = C[i, j]
                pc[i * D + j] = P[i, j]
    else:
        floor = 1e-10 * scale
        for k in range(K):
            col = (fl[k] & COLLAPSED) != 0
            f = 2 * nk[k] - Nr[k]
            vs = 0.0
            for d in range(D):
                mk = S1[k, d] / nk[k]
                v = vdiag[d] if col else (S2[k * D + d] - f * mk * mk) / nk[k]
                v += reg
                if not (v > 0) or not math.isfinite(v):
                    v = floor
                    fl[k] |= REGULARISED
                if t == DIAG:
                    cov[k * D + d] = v
                    pc[k * D + d] = 1.0 / math.sqrt(v)
                vs += v
            if t == SPHERICAL:
                v = vs / D
                cov[k] = v
                pc[k] = 1.0 / math.sqrt(v)


def _s2_size(t, K, D):
    return K * D * D if t == FULL else D * D if t == TIED else K * D


@nb.njit(parallel=True, cache=True)
def _fit_core(t, X, W, reg, n_rep, max_iter, tol, wts, mus, cov, pc, lb, n_iter, conv, fl, s2n, done, budget):
    """Up to `budget` EM iterations of every set not `done`, resuming from its parameters, lb
    and n_iter (the loop's whole state), so a fit run in slices is the same fit (Ctrl-C
    between slices, see slices.py)."""
    B, K = wts.shape
    D = X.shape[2]
    for s in nb.prange(B):
        if done[s]:
            continue
        xb = s // n_rep
        x = X[xb]
        w = W[xb]
        c = np.empty(D)
        wsum = _centre(x, w, c)
        mu = mus[s].reshape(K * D)
        if not (wsum > 0):
            _empty_params(t, K, D, wts[s], mu, cov[s], pc[s], fl[s])
            lb[s] = -np.inf
            done[s] = 1
            continue
        Nk = np.zeros(K)
        S1 = np.zeros((K, D))
        S2 = np.zeros(s2n)
        dummy = np.zeros((1, 1), X.dtype)
        prev = np.float64(lb[s])
        if math.isnan(prev):
            prev = -np.inf
        cur = prev
        for it in range(n_iter[s] + 1, min(max_iter, n_iter[s] + budget) + 1):
            wk = wts[s].astype(np.float64)
            mk = mus[s].astype(np.float64)
            pk = pc[s].astype(X.dtype)
            ll = _stats(t, x, w, dummy, False, c, wk, mk, pk, K, Nk, S1, S2)
            cur = ll / wsum
            _finalize(t, Nk, S1, S2, c, wsum, K, D, np.float64(reg[s]), wts[s], mu, cov[s], pc[s], fl[s])
            n_iter[s] = it
            change = cur - prev
            prev = cur
            if abs(change) < tol:
                conv[s] = 1
                break
        lb[s] = cur
        done[s] = conv[s] or n_iter[s] >= max_iter


def fit(
    X,
    W,
    reg,
    n_rep,
    cov_type,
    max_iter,
    tol,
    weights,
    means,
    covariances,
    prec_chol,
    lower_bound,
    n_iter,
    converged,
    flags,
):
    _check_type(cov_type)
    B, K = weights.shape
    D = X.shape[2]
    n_iter[:] = 0
    converged[:] = 0
    done = np.zeros(B, np.uint8)
    work = B * X.shape[1] * K * D * (D + 1)  # multiply-adds of an iteration
    for budget in budgets(max(1, (1 << 25) // max(1, work))):
        _fit_core(
            cov_type,
            X,
            W,
            reg,
            n_rep,
            max_iter,
            tol,
            weights,
            means,
            _flat(covariances, B),
            _flat(prec_chol, B),
            lower_bound,
            n_iter,
            converged,
            flags,
            _s2_size(cov_type, K, D),
            done,
            budget,
        )
        if done.all():
            return


@nb.njit(parallel=True, cache=True)
def _m_step_core(t, X, W, R, reg, n_rep, wts, mus, cov, pc, fl, s2n):
    B, K = wts.shape
    D = X.shape[2]
    for s in nb.prange(B):
        xb = s // n_rep
        c = np.empty(D)
        wsum = _centre(X[xb], W[xb], c)
        Nk = np.zeros(K)
        S1 = np.zeros((K, D))
        S2 = np.zeros(s2n)
        wk = np.ones(K)
        mk = np.zeros((K, D))
        pk = np.ones(1, X.dtype)
        _stats(t, X[xb], W[xb], R[s], True, c, wk, mk, pk, K, Nk, S1, S2)
        _finalize(t, Nk, S1, S2, c, wsum, K, D, np.float64(reg[s]), wts[s], mus[s].reshape(K * D), cov[s], pc[s], fl[s])


def m_step(X, W, resp, reg, n_rep, cov_type, weights, means, covariances, prec_chol, flags):
    _check_type(cov_type)
    B, K = weights.shape
    D = X.shape[2]
    _m_step_core(
        cov_type,
        X,
        W,
        resp,
        reg,
        n_rep,
        weights,
        means,
        _flat(covariances, B),
        _flat(prec_chol, B),
        flags,
        _s2_size(cov_type, K, D),
    )


@nb.njit(parallel=True, cache=True)
def _e_step_core(t, X, wts, mus, pc, lp, log_resp, log_norm):
    B, N, D = X.shape
    K = wts.shape[1]
    for bn in nb.prange(B * N):
        b, n = bn // N, bn % N
        row = np.empty(K)
        m = -np.inf
        for k in range(K):
            off = _pc_off(t, k, D)
            l = _logdet(t, pc[b], off, D) - 0.5 * D * LOG2PI - 0.5 * _mahal2(t, X[b, n], mus[b, k], pc[b], off, D)
            lp[b, n, k] = l
            row[k] = l + (math.log(wts[b, k]) if wts[b, k] > 0 else -np.inf)
            if row[k] > m:
                m = row[k]
        if m > -np.inf and math.isfinite(m):
            s = 0.0
            for k in range(K):
                s += math.exp(row[k] - m)
            lse = m + math.log(s)
            log_norm[b, n] = lse
            for k in range(K):
                log_resp[b, n, k] = row[k] - lse
        else:
            log_norm[b, n] = m
            for k in range(K):
                log_resp[b, n, k] = 0.0 if k == 0 else -np.inf


def e_step(X, weights, means, prec_chol, cov_type, lp, log_resp, log_norm):
    _check_type(cov_type)
    _e_step_core(cov_type, X, weights, means, _flat(prec_chol, weights.shape[0]), lp, log_resp, log_norm)


@nb.njit(cache=True)
def _normal_pair(seed, stream, blk):
    w0, w1, w2, w3 = block(seed, stream, blk)
    u1 = uniform_f64(w0, w1)
    u2 = uniform_f64(w2, w3)
    r = math.sqrt(-2.0 * math.log(u1))
    th = 6.283185307179586 * u2
    return r * math.cos(th), r * math.sin(th)


@nb.njit(parallel=True, cache=True)
def _sample_core(t, wts, mus, pc, seed, stream0, out, labels):
    B, n, D = out.shape
    K = wts.shape[1]
    M = 1 + (D + 1) // 2
    for bn in nb.prange(B * n):
        b, i = bn // n, bn % n
        stream = stream0 + np.uint64(b)  # uint64 + int64 would be float64 in numba
        b0 = i * M
        w0, w1, _, _ = block(seed, stream, b0)
        u = uniform_f64(w0, w1)
        total = 0.0
        for k in range(K):
            total += np.float64(wts[b, k])
        acc = 0.0
        comp = K - 1
        for k in range(K):
            acc += np.float64(wts[b, k])
            if u * total < acc:
                comp = k
                break
        while comp > 0 and not (wts[b, comp] > 0):
            comp -= 1
        labels[b, i] = comp
        x = out[b, i]
        for j in range(0, D, 2):
            z0, z1 = _normal_pair(seed, stream, b0 + 1 + j // 2)
            x[j] = z0
            if j + 1 < D:
                x[j + 1] = z1
        off = _pc_off(t, comp, D)
        P = pc[b]
        if t == FULL or t == TIED:
            for r in range(D):
                s = np.float64(x[r])
                for p in range(r):
                    s -= np.float64(P[off + p * D + r]) * np.float64(x[p])
                x[r] = s / np.float64(P[off + r * D + r])
            for d in range(D):
                x[d] += mus[b, comp, d]
        elif t == DIAG:
            for d in range(D):
                x[d] = mus[b, comp, d] + np.float64(x[d]) / P[off + d]
        else:
            for d in range(D):
                x[d] = mus[b, comp, d] + np.float64(x[d]) / P[off]


def sample(weights, means, prec_chol, cov_type, seed, stream, out, labels):
    _check_type(cov_type)
    _sample_core(
        cov_type, weights, means, _flat(prec_chol, weights.shape[0]), np.uint64(seed), np.uint64(stream), out, labels
    )


@nb.njit(cache=True, inline="always")
def _init_u(seed, stream, j):
    w0, w1, _, _ = block(seed, stream, j)
    return uniform_f64(w0, w1)


@nb.njit(cache=True, inline="always")
def _init_stream(stream0, s, n_rep):
    # run r of set b: stream stream0 + (r << 32) + b (gmm.hpp init_stream)
    return stream0 + (np.uint64(s % n_rep) << np.uint64(32)) + np.uint64(s // n_rep)


@nb.njit(parallel=True, cache=True)
def _rfd_core(W, n_rep, K, seed, stream0, idx):
    B = idx.shape[0]
    N = W.shape[1]
    for s_u in nb.prange(B):
        s = np.int64(s_u)  # signed: one callee signature (see __init__.py)
        w = W[s // n_rep]
        valid = np.empty(N, np.int64)
        nv = 0
        for n in range(N):
            if w[n] > 0:
                valid[nv] = n
                nv += 1
        for j in range(K):
            if nv == 0:
                idx[s, j] = -1
                continue
            if j < nv:
                u = _init_u(seed, _init_stream(stream0, s, n_rep), j)
                r = j + np.int64(u * (nv - j))
                r = min(r, nv - 1)
                tmp = valid[j]
                valid[j] = valid[r]
                valid[r] = tmp
                idx[s, j] = valid[j]
            else:
                idx[s, j] = valid[j % nv]


def random_from_data(W, n_rep, K, seed, stream, idx):
    _rfd_core(W, n_rep, K, np.uint64(seed), np.uint64(stream), idx)


@nb.njit(parallel=True, cache=True)
def _kpp_core(X, W, n_rep, K, seed, stream0, idx):
    B = idx.shape[0]
    N, D = X.shape[1], X.shape[2]
    for s_u in nb.prange(B):
        s = np.int64(s_u)  # signed: one callee signature (see __init__.py)
        x = X[s // n_rep]
        w = W[s // n_rep]
        d2 = np.full(N, np.inf)
        for j in range(K):
            tot = 0.0
            totw = 0.0
            for n in range(N):
                if not (w[n] > 0):
                    continue
                totw += np.float64(w[n])
                if j > 0:
                    tot += np.float64(w[n]) * d2[n]
            if not (totw > 0):
                idx[s, j] = -1
                continue
            by_weight = (j == 0) or not (tot > 0)
            u = _init_u(seed, _init_stream(stream0, s, n_rep), j) * (totw if by_weight else tot)
            acc = 0.0
            pick = -1
            for n in range(N):
                if not (w[n] > 0):
                    continue
                acc += np.float64(w[n]) * (1.0 if by_weight else d2[n])
                pick = n
                if u < acc:
                    break
            idx[s, j] = pick
            for n in range(N):
                e = 0.0
                for d in range(D):
                    tt = np.float64(x[n, d]) - np.float64(x[pick, d])
                    e += tt * tt
                if e < d2[n]:
                    d2[n] = e


def kmeanspp(X, W, n_rep, K, seed, stream, idx):
    _kpp_core(X, W, n_rep, K, np.uint64(seed), np.uint64(stream), idx)


@nb.njit(parallel=True, cache=True)
def _kmeans_core(X, W, n_rep, max_iter, centers, labels):
    B, K, D = centers.shape
    N = X.shape[1]
    for s in nb.prange(B):
        x = X[s // n_rep]
        w = W[s // n_rep]
        c = centers[s]
        lab = labels[s]
        lab[:] = -1
        sm = np.zeros((K, D))
        cnt = np.zeros(K)
        for it in range(max_iter + 1):
            changed = False
            for n in range(N):
                best = np.inf
                arg = 0
                for k in range(K):
                    e = 0.0
                    for d in range(D):
                        tt = np.float64(x[n, d]) - np.float64(c[k, d])
                        e += tt * tt
                    if e < best:
                        best = e
                        arg = k
                if lab[n] != arg:
                    changed = True
                    lab[n] = arg
            if (not changed and it > 0) or it == max_iter:
                break
            sm[:, :] = 0.0
            cnt[:] = 0.0
            for n in range(N):
                wt = np.float64(w[n])
                if not (wt > 0):
                    continue
                cnt[lab[n]] += wt
                for d in range(D):
                    sm[lab[n], d] += wt * np.float64(x[n, d])
            for k in range(K):
                if cnt[k] > 0:
                    for d in range(D):
                        c[k, d] = sm[k, d] / cnt[k]


def kmeans(X, W, n_rep, max_iter, centers, labels):
    _kmeans_core(X, W, n_rep, max_iter, centers, labels)


@nb.njit(cache=True, inline="always")
def _gmr_row(r, x, mu_i, mu_o, logc, V, rs, A, C, h, m, mean, cov):
    """Query r (mixture r // Q, query r % Q) of gmr_query."""
    Q, I = x.shape[1], x.shape[2]
    K, O = logc.shape[1], mu_o.shape[2]
    b, q = r // Q, r % Q
    d = np.empty(I)
    top = -np.inf
    for k in range(K):
        for i in range(I):
            d[i] = x[b, q, i] - mu_i[b, k, i]
        ss = 0.0
        for j in range(I):
            z = 0.0
            for i in range(I):
                z += V[b, k, i, j] * d[i]
            z *= rs[b, k, j]
            ss += z * z
        h[b, q, k] = logc[b, k] - 0.5 * ss
        top = max(top, h[b, q, k])
        for o in range(O):
            s = mu_o[b, k, o]
            for i in range(I):
                s += A[b, k, o, i] * d[i]
            m[b, q, k, o] = s
    if not np.isfinite(top):
        top = 0.0
    tot = 0.0
    for k in range(K):
        h[b, q, k] = math.exp(h[b, q, k] - top)
        tot += h[b, q, k]
    for k in range(K):
        h[b, q, k] = h[b, q, k] / tot if tot > 0 else 1.0 / K
    for o in range(O):
        s = 0.0
        for k in range(K):
            s += h[b, q, k] * m[b, q, k, o]
        mean[b, q, o] = s
    cov[b, q] = 0.0
    for k in range(K):
        for o in range(O):
            for j in range(o + 1):
                dd = (m[b, q, k, o] - mean[b, q, o]) * (m[b, q, k, j] - mean[b, q, j])
                cov[b, q, o, j] += h[b, q, k] * (C[b, k, o, j] + dd)
    for o in range(O):
        for j in range(o):
            cov[b, q, j, o] = cov[b, q, o, j]


GMR_PAR_MIN_WORK = 1 << 14  # as csrc/include/pygenmod/gmm/gmr.hpp


@nb.njit(parallel=True, cache=True)
def _gmr_parallel(x, mu_i, mu_o, logc, V, rs, A, C, h, m, mean, cov):
    for r_u in nb.prange(x.shape[0] * x.shape[1]):
        r = np.int64(r_u)  # signed: one callee signature (see __init__.py)
        _gmr_row(r, x, mu_i, mu_o, logc, V, rs, A, C, h, m, mean, cov)


@nb.njit(cache=True)
def _gmr_serial(x, mu_i, mu_o, logc, V, rs, A, C, h, m, mean, cov):
    for r in range(x.shape[0] * x.shape[1]):
        _gmr_row(r, x, mu_i, mu_o, logc, V, rs, A, C, h, m, mean, cov)


def gmr_query(x, mu_i, mu_o, logc, V, rs, A, C, h, m, mean, cov):
    """GMR's per-query part (csrc/include/pygenmod/gmm/gmr.hpp), on numba's threads from the
    same amount of work as the C++ kernel."""
    B, Q, I = x.shape
    K, O = logc.shape[1], mu_o.shape[2]
    run = _gmr_parallel if B * Q > 1 and B * Q * K * (I * I + O * I + O * O + 8) > GMR_PAR_MIN_WORK else _gmr_serial
    run(x, mu_i, mu_o, logc, V, rs, A, C, h, m, mean, cov)
