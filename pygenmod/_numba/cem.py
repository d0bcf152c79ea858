"""numba batched top-k (same contract and tie-breaking as csrc/include/pygenmod/topk.hpp)."""
import numba as nb


@nb.njit(cache=True, inline="always")
def _before(va, ia, vb, ib):
    return va > vb or (va == vb and ia < ib)


@nb.njit(parallel=True, cache=True)
def top_k(x, idx):
    rows, n = x.shape
    k = idx.shape[1]
    if k > n:
        raise ValueError("idx: k exceeds the row length")
    if k == 0:
        return
    for r in nb.prange(rows):
        filled = 0
        for i in range(n):
            v = x[r, i]
            if filled == k and not _before(v, i, x[r, idx[r, k - 1]], idx[r, k - 1]):
                continue
            if filled < k:
                pos = filled
                filled += 1
            else:
                pos = k - 1
            while pos > 0 and _before(v, i, x[r, idx[r, pos - 1]], idx[r, pos - 1]):
                idx[r, pos] = idx[r, pos - 1]
                pos -= 1
            idx[r, pos] = i
