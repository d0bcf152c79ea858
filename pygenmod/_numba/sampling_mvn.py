"""numba mirror of pygenmod/mvn.hpp: Mahalanobis / full-covariance log-density / KL rows and
Gumbel-softmax rows, forward and backward (same contract as csrc/bind/sampling.cpp: inputs, then
preallocated outputs; optional arrays have size 0). A shared factor's gradient is summed over the
same fixed chunks of rows as the C++ launchers (shared_chunks), so it does not depend on the
thread count."""

import math

import numba as nb
import numpy as np

from .philox import fill_range

# the codes of mvn.hpp (checked against the binding's TRIL_FLAGS, MVN_MODES, ROW_STATUS,
# GUMBEL_STATUS in tests/test_mvn_kernels.py)
TRIL_NONFINITE, TRIL_UPPER, TRIL_DIAG = 1, 2, 4
MVN_SCALE, MVN_PRECISION, MVN_LOG_PROB = 0, 1, 2
BAD_X, BAD_MU = 1, 2
GUMBEL_BAD_LOGIT, GUMBEL_ALL_MASKED = 1, 2
HALF_LOG_2PI = 0.91893853320467274178
GUMBEL = 2  # pygenmod.random.GUMBEL


def shared_chunks(B, D):
    cap = (1 << 22) // max(D * D, 1)
    return 0 if B == 0 else max(1, min(B, 64, cap))


def _check_rows(R, B, LB):
    if (R != 0) if B == 0 else (R % B != 0):
        raise ValueError("x: rows must be a multiple of mu's rows")
    if LB not in (1, B):
        raise ValueError("L: expected 1 or B matrices")


@nb.njit(parallel=True, cache=True, error_model="numpy")
def _tril_check(L, flags):
    N, D = L.shape[0], L.shape[1]
    for n in nb.prange(N):
        f = 0
        for i in range(D):
            for j in range(D):
                if not math.isfinite(L[n, i, j]):
                    f |= TRIL_NONFINITE
                if j > i and L[n, i, j] != 0:
                    f |= TRIL_UPPER
            if not (L[n, i, i] > 0):
                f |= TRIL_DIAG
        flags[n] = f


def tril_check(L, flags):
    _tril_check(L, flags)


@nb.njit(cache=True, inline="always", error_model="numpy")
def _whiten(x, m, L, mode, y):
    """y = L^-1 (x - m) or U^T (x - m); returns (y.y, status bits)."""
    D = y.shape[0]
    st = 0
    for i in range(D):
        if not math.isfinite(x[i]):
            st |= BAD_X
        if not math.isfinite(m[i]):
            st |= BAD_MU
        y[i] = x[i] - m[i]
    if mode == MVN_PRECISION:
        for j in range(D):
            dj = y[j]
            y[j] = 0.0
            for i in range(j):
                y[i] += L[j, i] * dj
            y[j] += L[j, j] * dj
    else:
        for i in range(D):
            acc = y[i]
            for j in range(i):
                acc -= L[i, j] * y[j]
            y[i] = acc / L[i, i]
    sq = 0.0
    for i in range(D):
        sq += y[i] * y[i]
    return sq, st


@nb.njit(cache=True, inline="always", error_model="numpy")
def _t_solve_inplace(L, w):
    """w = L^-T w (right-looking back substitution)."""
    for i in range(w.shape[0] - 1, -1, -1):
        wi = w[i] / L[i, i]
        w[i] = wi
        for k in range(i):
            w[k] -= L[i, k] * wi


@nb.njit(parallel=True, cache=True, error_model="numpy")
def _mvn_rows(x, mu, L, mode, squared, out, status):
    R, D = x.shape
    B = mu.shape[0]
    shared = L.shape[0] == 1 and B != 1
    for r in nb.prange(R):
        b = r % B
        lb = b - b if shared else b
        y = np.empty(D, mu.dtype)
        sq, st = _whiten(x[r], mu[b], L[lb], mode, y)
        if mode == MVN_LOG_PROB:
            ld = 0.0
            for i in range(D):
                ld += math.log(L[lb, i, i])
            out[r] = -0.5 * sq - ld - D * HALF_LOG_2PI
        else:
            out[r] = sq if squared else math.sqrt(sq)
        status[r] = st


def mvn_rows(x, mu, L, mode, squared, out, status):
    _check_rows(x.shape[0], mu.shape[0], L.shape[0])
    _mvn_rows(x, mu, L, int(mode), bool(squared), out, status)


@nb.njit(parallel=True, cache=True, error_model="numpy")
def _mvn_rows_backward(x, mu, L, mode, squared, g, G, dx, dmu, dL, part, status):
    R, D = x.shape
    B = mu.shape[0]
    S = R // B if B > 0 else 0
    shared = L.shape[0] == 1 and B != 1
    for grp in nb.prange(G):
        b0 = B * grp // G if shared else grp
        b1 = B * (grp + 1) // G if shared else grp + 1
        dst = part[grp] if shared else dL[grp]
        dst[:] = 0.0
        u = np.empty(D, mu.dtype)
        v = np.empty(D, mu.dtype)
        for b in range(b0, b1):
            lb = b - b if shared else b
            Lb = L[lb]
            dmu[b, :] = 0.0
            for s_ in range(S):
                r = s_ * B + b
                sq, st = _whiten(x[r], mu[b], Lb, mode, v)
                status[r] = st
                gs = g[r]
                c = 0.0
                if mode == MVN_LOG_PROB:
                    gs = -0.5 * g[r]
                    c = -g[r]
                elif not squared:
                    rr = math.sqrt(sq)
                    gs = g[r] / (2.0 * rr) if rr > 0 else 0.0
                two = 2.0 * gs
                if mode == MVN_PRECISION:
                    for i in range(D):
                        acc = 0.0
                        for j in range(i + 1):
                            acc += Lb[i, j] * v[j]
                        dx[r, i] = two * acc
                        u[i] = two * (x[r, i] - mu[b, i])
                else:
                    u[:] = v
                    _t_solve_inplace(Lb, u)
                    for i in range(D):
                        dx[r, i] = two * u[i]
                        u[i] = -dx[r, i]
                for i in range(D):
                    dmu[b, i] -= dx[r, i]
                    for j in range(i + 1):
                        dst[i, j] += u[i] * v[j]
                    dst[i, i] += c / Lb[i, i]


def mvn_rows_backward(x, mu, L, mode, squared, g, dx, dmu, dL, status):
    R, B, D = x.shape[0], mu.shape[0], mu.shape[1]
    _check_rows(R, B, L.shape[0])
    shared = L.shape[0] == 1 and B != 1
    G = shared_chunks(B, D) if shared else B
    part = np.empty((G if shared else 0, D, D), dL.dtype)
    _mvn_rows_backward(x, mu, L, int(mode), bool(squared), g, G, dx, dmu, dL, part, status)
    if shared:
        _sum_parts(part, dL[0])


@nb.njit(cache=True, error_model="numpy")
def _sum_parts(part, out):
    """out = sum of part[g] in chunk order."""
    out[:] = 0.0
    for g in range(part.shape[0]):
        out += part[g]


@nb.njit(cache=True, inline="always", error_model="numpy")
def _kl_column(L1, L2, have_L2, j, c):
    D = c.shape[0]
    for i in range(j, D):
        if have_L2:
            acc = L1[i, j]
            for k in range(j, i):
                acc -= L2[i, k] * c[k]
            c[i] = acc / L2[i, i]
        else:
            c[i] = L1[i, j]


@nb.njit(parallel=True, cache=True, error_model="numpy")
def _kl_mvn(m1, L1, m2, L2, kl, status):
    B, D = m1.shape
    s1 = L1.shape[0] == 1 and B != 1
    have_m2, have_L2 = m2.size > 0, L2.size > 0
    s2 = have_L2 and L2.shape[0] == 1 and B != 1
    for b in nb.prange(B):
        a1 = L1[b - b if s1 else b]
        a2 = L2[b - b if (s2 or not have_L2) else b]
        w = np.empty(D, m1.dtype)
        fro = 0.0
        for j in range(D):
            _kl_column(a1, a2, have_L2, j, w)
            for i in range(j, D):
                fro += w[i] * w[i]
        st = 0
        for i in range(D):
            p = m2[b, i] if have_m2 else 0.0
            if not (math.isfinite(m1[b, i]) and math.isfinite(p)):
                st = BAD_MU
            w[i] = p - m1[b, i]
        ld2 = 0.0
        if have_L2:
            for i in range(D):
                acc = w[i]
                for k in range(i):
                    acc -= a2[i, k] * w[k]
                w[i] = acc / a2[i, i]
                ld2 += math.log(a2[i, i])
        aa = 0.0
        ld1 = 0.0
        for i in range(D):
            aa += w[i] * w[i]
            ld1 += math.log(a1[i, i])
        kl[b] = 0.5 * (fro + aa - D) + ld2 - ld1
        status[b] = st


def _o3(a, like):
    return a if a.size else np.empty((1, 0, 0), like.dtype)


def _o2(a, like):
    return a if a.size else np.empty((0, 0), like.dtype)


def kl_mvn(m1, L1, m2, L2, kl, status):
    B = m1.shape[0]
    _check_rows(B, B, L1.shape[0])
    if L2.size:
        _check_rows(B, B, L2.shape[0])
    _kl_mvn(m1, L1, _o2(m2, m1), _o3(L2, m1), kl, status)


@nb.njit(parallel=True, cache=True, error_model="numpy")
def _kl_mvn_backward(m1, L1, m2, L2, g, G, chunked, dm1, dL1, dm2, dL2, part1, part2):
    B, D = m1.shape
    s1 = L1.shape[0] == 1 and B != 1
    have_m2, have_L2, want_dm2 = m2.size > 0, L2.size > 0, dm2.size > 0
    s2 = have_L2 and L2.shape[0] == 1 and B != 1
    for grp in nb.prange(G):
        b0 = B * grp // G if chunked else grp
        b1 = B * (grp + 1) // G if chunked else grp + 1
        c = np.empty(D, m1.dtype)
        q = np.empty(D, m1.dtype)
        if s1:
            part1[grp] = 0.0
        if s2:
            part2[grp] = 0.0
        for b in range(b0, b1):
            a1 = L1[b - b if s1 else b]
            a2 = L2[b - b if (s2 or not have_L2) else b]
            d1 = part1[grp] if s1 else dL1[b]
            d2 = (part2[grp] if s2 else dL2[b]) if have_L2 else part2[0]
            if not s1:
                d1[:] = 0.0
            if have_L2 and not s2:
                d2[:] = 0.0
            gb = g[b]
            for j in range(D):
                _kl_column(a1, a2, have_L2, j, c)
                for i in range(j):
                    q[i] = 0.0
                for i in range(j, D):
                    q[i] = c[i]
                if have_L2:
                    _t_solve_inplace(a2, q)
                for i in range(j, D):
                    d1[i, j] += gb * q[i]
                if have_L2:
                    for i in range(j, D):
                        gq = gb * q[i]
                        for k in range(j, i + 1):
                            d2[i, k] -= gq * c[k]
            for i in range(D):
                d1[i, i] -= gb / a1[i, i]
                c[i] = (m2[b, i] if have_m2 else 0.0) - m1[b, i]
            if have_L2:
                for i in range(D):
                    acc = c[i]
                    for k in range(i):
                        acc -= a2[i, k] * c[k]
                    c[i] = acc / a2[i, i]
            q[:] = c
            if have_L2:
                _t_solve_inplace(a2, q)
            for i in range(D):
                dm1[b, i] = -gb * q[i]
                if want_dm2:
                    dm2[b, i] = gb * q[i]
            if have_L2:
                for i in range(D):
                    gq = gb * q[i]
                    for k in range(i + 1):
                        d2[i, k] -= gq * c[k]
                    d2[i, i] += gb / a2[i, i]


def kl_mvn_backward(m1, L1, m2, L2, g, dm1, dL1, dm2, dL2):
    B, D = m1.shape
    _check_rows(B, B, L1.shape[0])
    have_L2 = L2.size > 0
    if have_L2:
        _check_rows(B, B, L2.shape[0])
    s1 = L1.shape[0] == 1 and B != 1
    s2 = have_L2 and L2.shape[0] == 1 and B != 1
    chunked = s1 or s2
    G = shared_chunks(B, D) if chunked else B
    part1 = np.empty((G if s1 else 0, D, D), m1.dtype)
    part2 = np.empty((G if s2 else 1, D, D), m1.dtype)  # (one dummy matrix: numba indexes it)
    _kl_mvn_backward(m1, L1, _o2(m2, m1), _o3(L2, m1), g, G, chunked, dm1, dL1, _o2(dm2, m1), _o3(dL2, m1),
                     part1, part2)  # fmt: skip
    if s1:
        _sum_parts(part1, dL1[0])
    if s2:
        _sum_parts(part2, dL2[0])


@nb.njit(cache=True, inline="always", error_model="numpy")
def _fill(seed, stream, offset, n, out):
    fill_range(GUMBEL, seed, stream, offset, n, out)


@nb.njit(cache=True, inline="always", error_model="numpy")
def _gumbel_row(logits, tau, y):
    """y: the noise in, softmax((logits + noise) / tau) out; returns (argmax, status bits)."""
    K = y.shape[0]
    st = 0
    masked = True
    idx = 0
    mx = -np.inf
    for k in range(K):
        lk = logits[k]
        if lk != lk or lk == np.inf:
            st |= GUMBEL_BAD_LOGIT
        if lk != -np.inf:
            masked = False
        t = (lk + y[k]) / tau
        y[k] = t
        if t > mx:
            mx = t
            idx = k
    if masked and K > 0:
        st |= GUMBEL_ALL_MASKED
    s = 0.0
    for k in range(K):
        e = math.exp(y[k] - mx)
        y[k] = e
        s += y[k]
    for k in range(K):
        y[k] = y[k] / s
    return idx, st


@nb.njit(parallel=True, cache=True, error_model="numpy")
def _gumbel_softmax(logits, tau, seed, stream, offset, y_soft, y_hard, index, status):
    R, K = logits.shape
    hard = y_hard.size > 0
    for r in nb.prange(R):
        _fill(seed, stream + np.uint64(r), offset, K, y_soft[r])
        idx, st = _gumbel_row(logits[r], tau, y_soft[r])
        index[r] = idx
        status[r] = st
        if hard:
            y_hard[r, :] = 0.0
            y_hard[r, idx] = 1.0


def gumbel_softmax(logits, tau, seed, stream, offset, y_soft, y_hard, index, status):
    _gumbel_softmax(
        logits, y_soft.dtype.type(tau), np.uint64(seed), np.uint64(stream), np.uint64(offset), y_soft,
        _o2(y_hard, logits),
        index, status,
    )  # fmt: skip


@nb.njit(parallel=True, cache=True, error_model="numpy")
def _gumbel_softmax_backward(logits, y_soft, tau, seed, stream, offset, g, out, status):
    R, K = g.shape
    regen = y_soft.size == 0
    t = tau
    for r in nb.prange(R):
        st = 0
        if regen:
            _fill(seed, stream + np.uint64(r), offset, K, out[r])
            _, st = _gumbel_row(logits[r], t, out[r])
            y = out[r]
        else:
            y = y_soft[r]
        status[r] = st
        s = 0.0
        for k in range(K):
            s += g[r, k] * y[k]
        for k in range(K):
            out[r, k] = y[k] * (g[r, k] - s) / t


def gumbel_softmax_backward(logits, y_soft, tau, seed, stream, offset, g, out, status):
    _gumbel_softmax_backward(
        _o2(logits, g), _o2(y_soft, g), out.dtype.type(tau), np.uint64(seed), np.uint64(stream), np.uint64(offset), g, out,
        status,
    )  # fmt: skip
