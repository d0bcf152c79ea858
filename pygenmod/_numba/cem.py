"""numba kernels of the cross-entropy method: batched top-k and one fused diagonal iteration
(same contracts and tie-breaking as csrc/include/pygenmod/topk.hpp and cem.hpp)."""

import math

import numba as nb
import numpy as np

from .philox import NORMAL, fill_range


@nb.njit(cache=True, inline="always")
def _before(va, ia, vb, ib):
    return va > vb or (va == vb and ia < ib)


@nb.njit(cache=True)
def _row_top_k(x, k, idx):
    """idx[:k] = the k largest of x, largest first, ties to the lower index."""
    filled = 0
    for i in range(x.shape[0]):
        v = x[i]
        if filled == k and not _before(v, i, x[idx[k - 1]], idx[k - 1]):
            continue
        if filled < k:
            pos = filled
            filled += 1
        else:
            pos = k - 1
        while pos > 0 and _before(v, i, x[idx[pos - 1]], idx[pos - 1]):
            idx[pos] = idx[pos - 1]
            pos -= 1
        idx[pos] = i


@nb.njit(parallel=True, cache=True)
def top_k(x, idx):
    rows, n = x.shape
    k = idx.shape[1]
    if k > n:
        raise ValueError("idx: k exceeds the row length")
    if k == 0:
        return
    for r in nb.prange(rows):
        _row_top_k(x[r], k, idx[r])


# ------------------------------------------------------------ one fused CEM iteration (diag)
# Same contract as csrc/include/pygenmod/cem.hpp: sample_diag fills the population on the
# samplers' noise layout (the noise drawn in noise's dtype: float32 or float64 layout, then
# converted); update_diag selects the elites and refits the moments in place.
@nb.njit(parallel=True, cache=True, error_model="numpy")
def _sample_diag(mean, std, seed, stream0, offset, X, noise):
    B, N, D = X.shape
    for b in nb.prange(B):
        if noise.itemsize == X.itemsize:  # the noise drawn into X itself
            fill_range(NORMAL, seed, stream0 + np.uint64(b), offset, N * D, X[b].reshape(N * D))
            for i in range(N):
                for d in range(D):
                    X[b, i, d] = mean[b, d] + std[b, d] * X[b, i, d]
        else:  # in the other dtype; each entry stored into X first: converted as static_cast<T> in C++
            e = np.empty(N * D, noise.dtype)
            fill_range(NORMAL, seed, stream0 + np.uint64(b), offset, N * D, e)
            for i in range(N):
                for d in range(D):
                    X[b, i, d] = e[i * D + d]
                    X[b, i, d] = mean[b, d] + std[b, d] * X[b, i, d]


def sample_diag(mean, std, seed, stream, offset, X, noise32):
    noise = np.empty(0, np.float32 if noise32 else np.float64)  # names the noise dtype for the jit
    _sample_diag(mean, std, np.uint64(seed), np.uint64(stream), np.uint64(offset), X, noise)


@nb.njit(cache=True, error_model="numpy")
def _update_row(X, R, w, alpha, min_std, reg, mean, std, best_x, best_r, hist, idx, b):
    N, D = X.shape[1], X.shape[2]
    k = idx.shape[1]
    arg = 0
    for i in range(N):
        if not math.isfinite(R[b, i]):
            return 1
        if R[b, i] > R[b, arg]:
            arg = i
    if R[b, arg] > best_r[b]:
        best_r[b] = R[b, arg]
        for d in range(D):
            best_x[b, d] = X[b, arg, d]
    _row_top_k(R[b], k, idx[b])
    dt = X.dtype.type
    mu = np.zeros(D, X.dtype)
    var = np.zeros(D, X.dtype)
    wsum = dt(0)
    rsum = dt(0)
    for j in range(k):
        wsum += w[j]
        rsum += R[b, idx[b, j]]
        for d in range(D):
            mu[d] += w[j] * X[b, idx[b, j], d]
    hist[b] = rsum / dt(k)
    for d in range(D):
        mu[d] /= wsum
    for j in range(k):
        for d in range(D):
            c = X[b, idx[b, j], d] - mu[d]
            var[d] += w[j] * c * c
    a, fl, rg = dt(alpha), dt(min_std), dt(reg)
    for d in range(D):
        sd = math.sqrt(var[d] / wsum + rg)
        mean[b, d] = a * mean[b, d] + (dt(1) - a) * mu[d]
        s = a * std[b, d] + (dt(1) - a) * sd
        std[b, d] = max(fl, s)
    return 0


@nb.njit(parallel=True, cache=True, error_model="numpy")
def update_diag(X, R, w, alpha, min_std, reg, mean, std, best_x, best_r, hist, idx):
    bad = 0
    for b_u in nb.prange(X.shape[0]):
        b = np.int64(b_u)  # signed: one callee signature (see __init__.py)
        bad += _update_row(X, R, w, alpha, min_std, reg, mean, std, best_x, best_r, hist, idx, b)
    return bad


def optimize_diag(
    objective, coerce, mean, std, seed, stream, w, alpha, min_std, reg, best_x, best_r, hist, idx, X, noise32
):
    """cem_optimize's loop on these kernels (the contract of cem::optimize_diag, cem.hpp):
    returns n_iter, or the first iteration whose returns hold NaN or infinity."""
    import sys

    B, N, D = X.shape
    free = sys.getrefcount(X)
    for t in range(hist.shape[0]):
        if sys.getrefcount(X) != free:  # the objective kept the last population: a fresh one
            X = np.empty((B, N, D), X.dtype)
            free = sys.getrefcount(X)
        sample_diag(mean, std, seed, stream, t * N * D, X, noise32)
        R = objective(X)
        if not (type(R) is np.ndarray and R.dtype == X.dtype and R.shape == (B, N) and R.flags.c_contiguous):
            R = coerce(R)
        if update_diag(X, R, w, alpha, min_std, reg, mean, std, best_x, best_r, hist[t], idx):
            return t
        del R
    return hist.shape[0]
