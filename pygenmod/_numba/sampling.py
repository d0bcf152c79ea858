"""numba RNG fills, reparameterized sampling, KL and log-densities (same contract as
csrc/bind/sampling.cpp: inputs, then preallocated outputs; optional arrays have size 0)."""

import math

import numba as nb
import numpy as np

from .philox import block, fill_range, philox4x32_10

# The per-row status codes (C++ sampling::RowCode, pygenmod.sampling.ROW_CODES; tests/test_contracts.py)
_ROW_OK, _ROW_NONFINITE, _ROW_BAD_TRIL = 0, 1, 2

LOGVAR, LOG_STD, STD = 0, 1, 2
HALF_LOG_2PI = 0.91893853320467274178


@nb.njit(cache=True, inline="always", error_model="numpy")
def _noise(eps_in, have_eps, seed, stream, offset, s_, b, D, e):
    """Row b's noise for sample s_ into e (the caller's eps, or the generator); False if the
    caller's eps holds a non-finite value."""
    ok = True
    if have_eps:
        for d in range(D):
            e[d] = eps_in[s_, b, d]
            if not math.isfinite(e[d]):
                ok = False
    else:
        fill_range(1, seed, stream + np.uint64(b), offset + np.uint64(s_ * D), D, e)
    return ok


@nb.njit(parallel=True, cache=True, error_model="numpy")
def _fill(seed, stream, offset, dist, out):
    R, N = out.shape
    for r in nb.prange(R):
        fill_range(dist, seed, stream + np.uint64(r), offset, N, out[r])  # uint64 + uint64 wraps as in C++


def fill(seed, stream, offset, dist, out):
    if dist not in (0, 1, 2):
        raise ValueError("dist: expected 0 (uniform), 1 (normal) or 2 (gumbel)")
    _fill(np.uint64(seed), np.uint64(stream), np.uint64(offset), dist, out)


@nb.njit(parallel=True, cache=True, error_model="numpy")
def _bits(seed, stream, offset, out):
    R, N = out.shape
    b0 = offset // np.uint64(4)
    skip = np.int64(offset % np.uint64(4))
    for r in nb.prange(R):
        for i in range(N):
            # element offset + i without wrapping at 2**64 (block b0 + (skip + i) // 4), as C++
            n = skip + i
            w = block(seed, stream + np.uint64(r), b0 + np.uint64(n // 4))
            k = n % 4
            out[r, i] = w[0] if k == 0 else (w[1] if k == 1 else (w[2] if k == 2 else w[3]))


def bits(seed, stream, offset, out):
    _bits(np.uint64(seed), np.uint64(stream), np.uint64(offset), out)


def _o(a, ndim, dtype=None):
    """Optional arrays arrive with size 0 and any rank; numba needs the rank it indexes with."""
    if a.size == 0 and a.ndim != ndim:
        return np.empty((0,) * ndim, a.dtype if dtype is None else dtype)
    return a


@nb.njit(cache=True)
def philox(ctr, key, out):
    for i in range(ctr.shape[0]):
        r = philox4x32_10(ctr[i, 0], ctr[i, 1], ctr[i, 2], ctr[i, 3], key[i, 0], key[i, 1])
        for k in range(4):
            out[i, k] = r[k]


@nb.njit(cache=True, inline="always", error_model="numpy")
def _scale(kind, p, lo, hi):
    """(sigma, log sigma, d log sigma / dp) of a scale parameter (sampling.hpp scale_of)."""
    pc = lo if p < lo else p
    pc = hi if pc > hi else pc
    pas = 1.0 if (p >= lo and p <= hi) else 0.0
    if kind == LOGVAR:
        ls = 0.5 * pc
        return math.exp(ls), ls, 0.5 * pas
    if kind == LOG_STD:
        return math.exp(pc), pc, pas
    return pc, math.log(pc) if pc > 0 else (-np.inf if pc == 0 else np.nan), pas / pc


@nb.njit(parallel=True, cache=True, error_model="numpy")
def _normal_head(mu, p, eps_in, kind, lo, hi, seed, stream, offset, z, eps_out, kl, logq, status):
    S = z.shape[0]
    B, D = mu.shape
    have_eps, want_eps, want_kl, want_lq = eps_in.size > 0, eps_out.size > 0, kl.size > 0, logq.size > 0
    for b in nb.prange(B):
        sig = np.empty(D, mu.dtype)
        e = np.empty(D, mu.dtype)
        logsig = 0.0
        klsum = 0.0
        bad = False
        for d in range(D):
            s, ls, _ = _scale(kind, np.float64(p[b, d]), lo, hi)
            sig[d] = s
            logsig += ls
            klsum += 0.5 * (s * s + np.float64(mu[b, d]) ** 2 - 1.0) - ls
            if not (math.isfinite(mu[b, d]) and math.isfinite(p[b, d]) and math.isfinite(ls)):
                bad = True
        if want_kl:
            kl[b] = klsum
        for s_ in range(S):
            if not _noise(eps_in, have_eps, seed, stream, offset, s_, b, D, e):
                bad = True
            sq = 0.0
            for d in range(D):
                z[s_, b, d] = mu[b, d] + sig[d] * e[d]
                sq += np.float64(e[d]) * e[d]
                if want_eps:
                    eps_out[s_, b, d] = e[d]
            if want_lq:
                logq[s_, b] = -0.5 * sq - logsig - D * HALF_LOG_2PI
        status[b] = _ROW_NONFINITE if bad else _ROW_OK


def normal_head(mu, p, eps_in, kind, lo, hi, seed, stream, offset, z, eps_out, kl, logq, status):
    _normal_head(
        mu,
        p,
        _o(eps_in, 3),
        kind,
        float(lo),
        float(hi),
        np.uint64(seed),
        np.uint64(stream),
        np.uint64(offset),
        z,
        _o(eps_out, 3),
        _o(kl, 1),
        _o(logq, 2),
        status,
    )


@nb.njit(parallel=True, cache=True, error_model="numpy")
def _normal_head_backward(mu, p, eps_in, kind, lo, hi, seed, stream, offset, S, gz, gkl, glogq, dmu, dp):
    B, D = mu.shape
    have_eps, have_gz, have_gkl, have_glq = eps_in.size > 0, gz.size > 0, gkl.size > 0, glogq.size > 0
    for b_u in nb.prange(B):
        b = np.int64(b_u)  # signed: one callee signature (see __init__.py)
        e = np.empty(D, mu.dtype)
        acc_m = np.zeros(D)
        acc_p = np.zeros(D)
        gk = np.float64(gkl[b]) if have_gkl else 0.0
        glq = 0.0
        if have_glq:
            for s_ in range(S):
                glq += glogq[s_, b]
        if have_gz:
            for s_ in range(S):
                _noise(eps_in, have_eps, seed, stream, offset, s_, b, D, e)
                for d in range(D):
                    acc_m[d] += gz[s_, b, d]
                    acc_p[d] += np.float64(gz[s_, b, d]) * e[d]
        for d in range(D):
            s, ls, dl = _scale(kind, np.float64(p[b, d]), lo, hi)
            dmu[b, d] = acc_m[d] + gk * mu[b, d]
            kl_part = gk * (s * s - 1.0) if gk != 0.0 else 0.0  # (no 0 * inf: sampling.hpp's kl_dlog_sigma)
            dp[b, d] = (acc_p[d] * s + kl_part - glq) * dl


def normal_head_backward(mu, p, eps_in, kind, lo, hi, seed, stream, offset, n_samples, gz, gkl, glogq, dmu, dp):
    _normal_head_backward(
        mu,
        p,
        _o(eps_in, 3),
        kind,
        float(lo),
        float(hi),
        np.uint64(seed),
        np.uint64(stream),
        np.uint64(offset),
        int(n_samples),
        _o(gz, 3),
        _o(gkl, 1),
        _o(glogq, 2),
        dmu,
        dp,
    )


@nb.njit(parallel=True, cache=True, error_model="numpy")
def _kl_normal(mu, p, pm, pp, kind, lo, hi, kl, status):
    B, D = mu.shape
    have_pm, have_pp = pm.size > 0, pp.size > 0
    for b in nb.prange(B):
        acc = 0.0
        bad = False
        for d in range(D):
            s, ls, _ = _scale(kind, np.float64(p[b, d]), lo, hi)
            m2 = np.float64(pm[b, d]) if have_pm else 0.0
            s2, ls2 = 1.0, 0.0
            if have_pp:
                s2, ls2, _ = _scale(kind, np.float64(pp[b, d]), lo, hi)
            diff = mu[b, d] - m2
            acc += ls2 - ls + 0.5 * (s * s + diff * diff) / (s2 * s2) - 0.5
            if not (math.isfinite(diff) and math.isfinite(ls) and math.isfinite(ls2)):
                bad = True
        kl[b] = acc
        status[b] = _ROW_NONFINITE if bad else _ROW_OK


def kl_normal(mu, p, pm, pp, kind, lo, hi, kl, status):
    _kl_normal(mu, p, _o(pm, 2), _o(pp, 2), kind, float(lo), float(hi), kl, status)


@nb.njit(cache=True, error_model="numpy")
def kl_row_backward(mu, p, pm, pp, b, kind, lo, hi, g, dmu, dp, dpm, dpp):
    """Row b of the diagonal KL's backward with upstream gradient g (float64): the numba twin of
    sampling.hpp's kl_normal_row_backward, shared by kl_normal_backward and the ELBO's. pm / pp
    and dpm / dpp of no rows: absent / not wanted."""
    have_pm, have_pp, want_pm, want_pp = pm.shape[0] > 0, pp.shape[0] > 0, dpm.shape[0] > 0, dpp.shape[0] > 0
    if g == 0.0:  # no gradient asked of this row: zeros (below, 0 * inf where sigma**2 overflows)
        dmu[b, :] = 0.0
        dp[b, :] = 0.0
        if want_pm:
            dpm[b, :] = 0.0
        if want_pp:
            dpp[b, :] = 0.0
        return
    for d in range(mu.shape[1]):
        s, _, dl = _scale(kind, np.float64(p[b, d]), lo, hi)
        m2 = np.float64(pm[b, d]) if have_pm else 0.0
        s2, dl2 = 1.0, 0.0
        if have_pp:
            s2, _, dl2 = _scale(kind, np.float64(pp[b, d]), lo, hi)
        diff = np.float64(mu[b, d]) - m2
        ir2 = 1.0 / (s2 * s2)
        dmu[b, d] = g * diff * ir2
        dp[b, d] = g * (s * s * ir2 - 1.0) * dl
        if want_pm:
            dpm[b, d] = -g * diff * ir2
        if want_pp:
            dpp[b, d] = g * (1.0 - (s * s + diff * diff) * ir2) * dl2


@nb.njit(parallel=True, cache=True, error_model="numpy")
def _kl_normal_backward(mu, p, pm, pp, kind, lo, hi, g, dmu, dp, dpm, dpp):
    for b in nb.prange(mu.shape[0]):
        kl_row_backward(mu, p, pm, pp, b, kind, lo, hi, np.float64(g[b]), dmu, dp, dpm, dpp)


def kl_normal_backward(mu, p, pm, pp, kind, lo, hi, g, dmu, dp, dpm, dpp):
    _kl_normal_backward(mu, p, _o(pm, 2), _o(pp, 2), kind, float(lo), float(hi), g, dmu, dp, _o(dpm, 2), _o(dpp, 2))


@nb.njit(parallel=True, cache=True, error_model="numpy")
def _normal_log_prob(x, mu, p, kind, lo, hi, out, status):
    R, D = x.shape
    B = mu.shape[0]
    for r in nb.prange(R):
        b = r % B
        lp = 0.0
        bad = False
        for d in range(D):
            s, ls, _ = _scale(kind, np.float64(p[b, d]), lo, hi)
            u = (np.float64(x[r, d]) - mu[b, d]) / s
            lp += -0.5 * u * u - ls
            if not (math.isfinite(u) and math.isfinite(ls)):
                bad = True
        out[r] = lp - D * HALF_LOG_2PI
        status[r] = _ROW_NONFINITE if bad else _ROW_OK


def normal_log_prob(x, mu, p, kind, lo, hi, out, status):
    B, R = mu.shape[0], x.shape[0]
    if (R != 0) if B == 0 else (R % B != 0):
        raise ValueError("x: rows must be a multiple of mu's rows")
    _normal_log_prob(x, mu, p, kind, float(lo), float(hi), out, status)


@nb.njit(parallel=True, cache=True, error_model="numpy")
def _normal_log_prob_backward(x, mu, p, kind, lo, hi, g, dx, dmu, dp):
    R, D = x.shape
    B = mu.shape[0]
    for b in nb.prange(B):
        for d in range(D):
            dmu[b, d] = 0.0
            dp[b, d] = 0.0
        for r in range(b, R, B):
            for d in range(D):
                s, ls, dl = _scale(kind, np.float64(p[b, d]), lo, hi)
                u = (np.float64(x[r, d]) - mu[b, d]) / s
                gx = -g[r] * u / s
                dx[r, d] = gx
                dmu[b, d] += -gx
                dp[b, d] += g[r] * (u * u - 1.0) * dl


def normal_log_prob_backward(x, mu, p, kind, lo, hi, g, dx, dmu, dp):
    B, R = mu.shape[0], x.shape[0]
    if (R != 0) if B == 0 else (R % B != 0):
        raise ValueError("x: rows must be a multiple of mu's rows")
    _normal_log_prob_backward(x, mu, p, kind, float(lo), float(hi), g, dx, dmu, dp)


@nb.njit(parallel=True, cache=True, error_model="numpy")
def _mvn_head(mu, L, eps_in, check_upper, seed, stream, offset, z, eps_out, kl, logq, status):
    S = z.shape[0]
    B, D = mu.shape
    shared = L.shape[0] == 1 and B != 1
    have_eps, want_eps, want_kl, want_lq = eps_in.size > 0, eps_out.size > 0, kl.size > 0, logq.size > 0
    for b_u in nb.prange(B):
        b = np.int64(b_u)  # signed: one callee signature (see __init__.py)
        lb = b - b if shared else b
        e = np.empty(D, mu.dtype)
        bad = 0
        logdet = 0.0
        fro = 0.0
        mm = 0.0
        fin = True
        for i in range(D):
            lii = L[lb, i, i]
            if not (lii > 0):
                bad = _ROW_BAD_TRIL
            else:
                logdet += math.log(lii)
            for j in range(i + 1):
                fro += np.float64(L[lb, i, j]) ** 2
                if not math.isfinite(L[lb, i, j]):
                    fin = False
            if check_upper and (not shared or b == 0):
                for j in range(i + 1, D):
                    if L[lb, i, j] != 0:
                        bad = _ROW_BAD_TRIL
            mm += np.float64(mu[b, i]) ** 2
            if not math.isfinite(mu[b, i]):
                fin = False
        if want_kl:
            kl[b] = 0.5 * (fro + mm - D) - logdet
        for s_ in range(S):
            if not _noise(eps_in, have_eps, seed, stream, offset, s_, b, D, e):
                fin = False
            sq = 0.0
            for i in range(D):
                acc = np.float64(mu[b, i])
                for j in range(i + 1):
                    acc += np.float64(L[lb, i, j]) * e[j]
                z[s_, b, i] = acc
                sq += np.float64(e[i]) * e[i]
                if want_eps:
                    eps_out[s_, b, i] = e[i]
            if want_lq:
                logq[s_, b] = -0.5 * sq - logdet - D * HALF_LOG_2PI
        status[b] = bad if bad else (_ROW_OK if fin else _ROW_NONFINITE)


def mvn_head(mu, L, eps_in, check_upper, seed, stream, offset, z, eps_out, kl, logq, status):
    if L.shape[0] not in (1, mu.shape[0]):
        raise ValueError("scale_tril: expected 1 or B matrices")
    _mvn_head(
        mu,
        L,
        _o(eps_in, 3),
        bool(check_upper),
        np.uint64(seed),
        np.uint64(stream),
        np.uint64(offset),
        z,
        _o(eps_out, 3),
        _o(kl, 1),
        _o(logq, 2),
        status,
    )


@nb.njit(parallel=True, cache=True, error_model="numpy")
def _mvn_head_backward_rows(mu, L, eps_in, seed, stream, offset, S, gz, gkl, glogq, dmu, dL):
    """Per-row dL (dL has B matrices even when L is shared; the caller sums them)."""
    B, D = mu.shape
    shared = L.shape[0] == 1 and B != 1
    have_eps, have_gz, have_gkl, have_glq = eps_in.size > 0, gz.size > 0, gkl.size > 0, glogq.size > 0
    for b_u in nb.prange(B):
        b = np.int64(b_u)  # signed: one callee signature (see __init__.py)
        lb = b - b if shared else b
        e = np.empty(D, mu.dtype)
        gk = np.float64(gkl[b]) if have_gkl else 0.0
        glq = 0.0
        if have_glq:
            for s_ in range(S):
                glq += glogq[s_, b]
        for i in range(D):
            dmu[b, i] = gk * mu[b, i]
            for j in range(D):
                v = 0.0
                if j <= i:
                    v = gk * L[lb, i, j]
                    if i == j:
                        v -= (gk + glq) / L[lb, i, i]
                dL[b, i, j] = v
        if have_gz:
            for s_ in range(S):
                _noise(eps_in, have_eps, seed, stream, offset, s_, b, D, e)
                for i in range(D):
                    g = gz[s_, b, i]
                    dmu[b, i] += g
                    for j in range(i + 1):
                        dL[b, i, j] += g * e[j]


def mvn_head_backward(mu, L, eps_in, seed, stream, offset, n_samples, gz, gkl, glogq, dmu, dL):
    B = mu.shape[0]
    if L.shape[0] not in (1, B):
        raise ValueError("scale_tril: expected 1 or B matrices")
    shared = L.shape[0] == 1 and B != 1
    target = np.empty((B,) + dL.shape[1:], dL.dtype) if shared else dL
    _mvn_head_backward_rows(
        mu,
        L,
        _o(eps_in, 3),
        np.uint64(seed),
        np.uint64(stream),
        np.uint64(offset),
        int(n_samples),
        _o(gz, 3),
        _o(gkl, 1),
        _o(glogq, 2),
        dmu,
        target,
    )
    if shared:
        dL[0] = target.sum(0)


@nb.njit(parallel=True, cache=True, error_model="numpy")
def _tri_solve(L, R, trans, X):
    B, D, K = R.shape
    shared = L.shape[0] == 1 and B != 1
    for bk in nb.prange(B * K):
        b, k = bk // K, bk % K
        lb = b - b if shared else b
        if not trans:
            for i in range(D):
                acc = R[b, i, k]
                for j in range(i):
                    acc -= L[lb, i, j] * X[b, j, k]
                X[b, i, k] = acc / L[lb, i, i]
        else:
            for i in range(D - 1, -1, -1):
                acc = R[b, i, k]
                for j in range(i + 1, D):
                    acc -= L[lb, j, i] * X[b, j, k]
                X[b, i, k] = acc / L[lb, i, i]


def tri_solve(L, R, trans, X):
    if L.shape[0] not in (1, R.shape[0]):
        raise ValueError("L: expected 1 or B matrices")
    _tri_solve(L, R, bool(trans), X)


# the full-covariance and Gumbel-softmax rows live in their own file (mirror of pygenmod/mvn.hpp)
from .sampling_mvn import (  # noqa: E402, F401 (kernels of this family, found here by _dispatch)
    gumbel_softmax,
    gumbel_softmax_backward,
    kl_mvn,
    kl_mvn_backward,
    mvn_rows,
    mvn_rows_backward,
    tril_check,
)
