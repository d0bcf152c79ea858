"""numba fused ELBO (same contract as csrc/bind/elbo.cpp: inputs, then preallocated outputs;
optional arrays have size 0). Per-row sums in float64."""

import math

import numba as nb
import numpy as np

from .sampling import _o, _scale, kl_row_backward

GAUSSIAN, BERNOULLI, CATEGORICAL = 0, 1, 2
HALF_LOG_2PI = 0.91893853320467274178


@nb.njit(cache=True, inline="always", error_model="numpy")
def _fin(v):
    return math.isfinite(v)


@nb.njit(cache=True, error_model="numpy")
def _kl_row(mu, p, L, pm, pp, kind, lo, hi, b):
    """(KL, status) of row b: diagonal against N(pm, pp) (N(0, I) when absent) or N(0, I) with L."""
    D = mu.shape[1]
    kl = 0.0
    ok = True
    if L.shape[0] > 0:
        fro = 0.0
        logdet = 0.0
        tri = True
        for i in range(D):
            lii = np.float64(L[b, i, i])
            if not (lii > 0):
                tri = False
            for j in range(D):
                v = np.float64(L[b, i, j])
                if j > i:
                    if v != 0:
                        tri = False
                else:
                    if not _fin(v):
                        ok = False
                    fro += v * v
            if lii > 0:
                logdet += math.log(lii)
            m = np.float64(mu[b, i])
            if not _fin(m):
                ok = False
            kl += m * m
        if not tri:
            return 0.0, 2
        kl = 0.5 * (fro + kl - D) - logdet
    else:
        for d in range(D):
            s, ls, _ = _scale(kind, np.float64(p[b, d]), lo, hi)
            m2 = np.float64(pm[b, d]) if pm.shape[0] > 0 else 0.0
            s2, ls2 = 1.0, 0.0
            if pp.shape[0] > 0:
                s2, ls2, _ = _scale(kind, np.float64(pp[b, d]), lo, hi)
            diff = np.float64(mu[b, d]) - m2
            kl += ls2 - ls + 0.5 * (s * s + diff * diff) / (s2 * s2) - 0.5
            if not (_fin(diff) and _fin(ls) and _fin(ls2) and _fin(np.float64(mu[b, d]))):
                ok = False
    return kl, 0 if ok else 1


@nb.njit(cache=True, error_model="numpy")
def _ll_row(lik, x, xi, dec, dp, shared, dkind, s, b):
    """(log p(x_b | dec_{s,b}), finite?)."""
    X, K = dec.shape[2], dec.shape[3]
    unit = dp.shape[2] == 0  # no decoder scale: unit variance
    lp = 0.0
    ok = True
    for j in range(X):
        if lik == GAUSSIAN and unit:
            u = np.float64(x[b, j]) - np.float64(dec[s, b, j, 0])
            lp += -0.5 * u * u - HALF_LOG_2PI
            if not _fin(u):
                ok = False
        elif lik == GAUSSIAN:
            q = np.float64(dp[0, 0, j] if shared else dp[s, b, j])
            sg, ls, _ = _scale(dkind, q, -np.inf, np.inf)
            u = (np.float64(x[b, j]) - np.float64(dec[s, b, j, 0])) / sg
            lp += -0.5 * u * u - ls - HALF_LOG_2PI
            if not (_fin(u) and _fin(ls)):
                ok = False
        elif lik == BERNOULLI:
            v = np.float64(dec[s, b, j, 0])
            lp += np.float64(x[b, j]) * v - (max(v, 0.0) + math.log1p(math.exp(-abs(v))))
            if not _fin(v):
                ok = False
        else:
            mx = np.float64(dec[s, b, j, 0])
            for k in range(1, K):
                mx = max(mx, np.float64(dec[s, b, j, k]))
            se = 0.0
            for k in range(K):
                v = np.float64(dec[s, b, j, k])
                if not _fin(v):
                    ok = False
                se += math.exp(v - mx)
            c = xi[b, j]
            if c < 0 or c >= K:
                ok = False
                continue
            lp += np.float64(dec[s, b, j, c]) - mx - math.log(se)
    return lp, ok


@nb.njit(parallel=True, cache=True, error_model="numpy")
def _elbo(mu, p, L, pm, pp, kind, lo, hi, lik, x, xi, dec, dp, shared, dkind, beta, out, log_lik, kl, status):
    B = mu.shape[0]
    S = dec.shape[0]
    for b_u in nb.prange(B):
        b = np.int64(b_u)  # signed: one callee signature (see __init__.py)
        k, st = _kl_row(mu, p, L, pm, pp, kind, lo, hi, b)
        ll = 0.0
        dok = True
        for s in range(S):
            v, ok = _ll_row(lik, x, xi, dec, dp, shared, dkind, s, b)
            ll += v
            dok = dok and ok
        ll /= S
        if st == 0 and not dok:
            st = 3
        if out.shape[0] > 0:
            out[b] = ll - beta * k
        if log_lik.shape[0] > 0:
            log_lik[b] = ll
        if kl.shape[0] > 0:
            kl[b] = k
        status[b] = st


@nb.njit(parallel=True, cache=True, error_model="numpy")
def _elbo_backward(
    mu,
    p,
    L,
    pm,
    pp,
    kind,
    lo,
    hi,
    lik,
    x,
    xi,
    dec,
    dp,
    shared,
    dkind,
    beta,
    ge,
    gl,
    gk_in,
    dmu,
    dsc,
    dL,
    dpm,
    dpp,
    ddec,
    ddp,
):
    B, D = mu.shape
    S, X, K = dec.shape[0], dec.shape[2], dec.shape[3]
    full = L.shape[0] > 0
    for b in nb.prange(B):
        g_e = np.float64(ge[b]) if ge.shape[0] > 0 else 0.0
        g_l = np.float64(gl[b]) if gl.shape[0] > 0 else 0.0
        gk = (np.float64(gk_in[b]) if gk_in.shape[0] > 0 else 0.0) - beta * g_e
        gr = (g_e + g_l) / S
        if full:
            for i in range(D):
                dmu[b, i] = gk * mu[b, i]
                for j in range(D):
                    v = 0.0
                    if j <= i:
                        v = gk * np.float64(L[b, i, j])
                        if i == j:
                            v -= gk / np.float64(L[b, i, i])
                    dL[b, i, j] = v
        else:
            kl_row_backward(mu, p, pm, pp, b, kind, lo, hi, gk, dmu, dsc, dpm, dpp)
        for s in range(S):
            for j in range(X):
                if lik == GAUSSIAN and dp.shape[2] == 0:  # unit variance
                    ddec[s, b, j, 0] = gr * (np.float64(x[b, j]) - np.float64(dec[s, b, j, 0]))
                elif lik == GAUSSIAN:
                    q = np.float64(dp[0, 0, j] if shared else dp[s, b, j])
                    sg, _, dl = _scale(dkind, q, -np.inf, np.inf)
                    u = (np.float64(x[b, j]) - np.float64(dec[s, b, j, 0])) / sg
                    ddec[s, b, j, 0] = gr * u / sg
                    if ddp.shape[0] > 0:
                        ddp[s, b, j] = gr * (u * u - 1.0) * dl
                elif lik == BERNOULLI:
                    v = np.float64(dec[s, b, j, 0])
                    e = math.exp(-abs(v))
                    sig = 1.0 / (1.0 + e) if v >= 0 else e / (1.0 + e)
                    ddec[s, b, j, 0] = gr * (np.float64(x[b, j]) - sig)
                else:
                    mx = np.float64(dec[s, b, j, 0])
                    for k in range(1, K):
                        mx = max(mx, np.float64(dec[s, b, j, k]))
                    se = 0.0
                    for k in range(K):
                        se += math.exp(np.float64(dec[s, b, j, k]) - mx)
                    for k in range(K):
                        ddec[s, b, j, k] = -gr * math.exp(np.float64(dec[s, b, j, k]) - mx) / se
                    c = xi[b, j]
                    if c >= 0 and c < K:
                        ddec[s, b, j, c] += gr


def _views(mu, p, L, pm, pp, lik, x, xi, dec, dp):
    B, D = mu.shape
    S, X = dec.shape[0], dec.shape[2]
    dec4 = dec if dec.ndim == 4 else dec.reshape(S, B, X, 1)
    shared = dp.ndim == 1
    dp3 = dp.reshape(1, 1, -1) if shared else _o(dp, 3)
    if lik != CATEGORICAL:
        xi = np.empty((0, 0), np.int32)
    else:
        x = np.empty((0, 0), mu.dtype)
    return (_o(p, 2), _o(L, 3), _o(pm, 2), _o(pp, 2), _o(x, 2), _o(xi, 2, np.int32), dec4, dp3, shared)


def elbo(mu, p, L, pm, pp, kind, lo, hi, lik, x, xi, dec, dp, dkind, beta, out, log_lik, kl, status):
    if dec.shape[0] < 1:
        raise ValueError("dec: expected at least one sample")
    p, L, pm, pp, x, xi, dec4, dp3, shared = _views(mu, p, L, pm, pp, lik, x, xi, dec, dp)
    _elbo(
        mu,
        p,
        L,
        pm,
        pp,
        kind,
        float(lo),
        float(hi),
        lik,
        x,
        xi,
        dec4,
        dp3,
        shared,
        dkind,
        float(beta),
        out,
        log_lik,
        kl,
        status,
    )


def elbo_backward(
    mu, p, L, pm, pp, kind, lo, hi, lik, x, xi, dec, dp, dkind, beta, ge, gl, gk, dmu, dsc, dL, dpm, dpp, ddec, ddp
):
    p, L, pm, pp, x, xi, dec4, dp3, shared = _views(mu, p, L, pm, pp, lik, x, xi, dec, dp)
    ddec4 = ddec.reshape(dec4.shape)
    _elbo_backward(
        mu,
        p,
        L,
        pm,
        pp,
        kind,
        float(lo),
        float(hi),
        lik,
        x,
        xi,
        dec4,
        dp3,
        shared,
        dkind,
        float(beta),
        ge,
        gl,
        gk,
        dmu,
        _o(dsc, 2),
        _o(dL, 3),
        _o(dpm, 2),
        _o(dpp, 2),
        ddec4,
        _o(ddp, 3),
    )
