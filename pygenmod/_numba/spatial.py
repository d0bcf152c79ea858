"""numba spatial softmax keypoints (same contract as csrc/bind/spatial.cpp).

Two passes per (b, c) map (max, then max-subtracted exp sums accumulated in float64).
float16 input is widened to float32 by the Python layer before it gets here.
"""

import numba as nb
import numpy as np

from .optional import optional


@nb.njit(inline="always")
def _index(b, c, i, j, C, H, W, channels_last):
    if channels_last:
        return ((b * H + i) * W + j) * C + c
    return ((b * C + c) * H + i) * W + j


@nb.njit(inline="always")
def _valid(mask, has_mask, b, c, p):
    if not has_mask:
        return True
    mb = b if mask.shape[0] > 1 else 0
    mc = c if mask.shape[1] > 1 else 0
    return mask[mb, mc, p] != 0


@nb.njit(inline="always")
def _dims(x, channels_last):
    if channels_last:
        return x.shape[0], x.shape[3], x.shape[1], x.shape[2]
    return x.shape[0], x.shape[1], x.shape[2], x.shape[3]


def forward(x, inv_temp, mask, x0, dx, y0, dy, channels_last, kp, cov, maps, stats):
    """The kernel with its optional arrays as arrays (optional.py: one compile per dtype)."""
    _forward(
        x, inv_temp, *optional(mask, np.uint8, 3), x0, dx, y0, dy, channels_last, kp,
        *optional(cov, kp.dtype, 4), *optional(maps, kp.dtype, 4), stats,
    )  # fmt: skip


@nb.njit(parallel=True, cache=True)
def _forward(x, inv_temp, mask, has_mask, x0, dx, y0, dy, channels_last, kp, cov, has_cov, maps, has_maps, stats):
    B, C, H, W = _dims(x, channels_last)
    xf = x.reshape(-1)
    for bc in nb.prange(B * C):
        b, c = bc // C, bc % C
        inv = np.float64(inv_temp[c])
        m = -np.inf
        for i in range(H):
            for j in range(W):
                if _valid(mask, has_mask, b, c, i * W + j):
                    z = np.float64(xf[_index(b, c, i, j, C, H, W, channels_last)]) * inv
                    if not z <= m:  # NaN propagates into m
                        m = z
        s0 = sx = sy = sxx = syy = sxy = 0.0
        for i in range(H):
            py = y0 + i * dy
            for j in range(W):
                if _valid(mask, has_mask, b, c, i * W + j):
                    px = x0 + j * dx
                    e = np.exp(np.float64(xf[_index(b, c, i, j, C, H, W, channels_last)]) * inv - m)
                    s0 += e
                    sx += e * px
                    sy += e * py
                    sxx += e * px * px
                    syy += e * py * py
                    sxy += e * px * py
        mx, my = sx / s0, sy / s0
        kp[b, c, 0] = mx
        kp[b, c, 1] = my
        if has_cov:
            cov[b, c, 0, 0] = max(sxx / s0 - mx * mx, 0.0)
            cov[b, c, 1, 1] = max(syy / s0 - my * my, 0.0)
            cov[b, c, 0, 1] = cov[b, c, 1, 0] = sxy / s0 - mx * my
        stats[b, c, 0] = m
        stats[b, c, 1] = s0
        if has_maps:
            mf = maps.reshape(-1)
            for i in range(H):
                for j in range(W):
                    k = _index(b, c, i, j, C, H, W, channels_last)
                    if _valid(mask, has_mask, b, c, i * W + j):
                        mf[k] = np.exp(np.float64(xf[k]) * inv - m) / s0
                    else:
                        mf[k] = 0.0


def backward(x, inv_temp, mask, x0, dx, y0, dy, channels_last, stats, kp, cov, g_kp, g_cov, g_maps, gx, g_temp):
    """The kernel with its optional arrays as arrays (optional.py: one compile per dtype)."""
    _backward(
        x, inv_temp, *optional(mask, np.uint8, 3), x0, dx, y0, dy, channels_last, stats, kp,
        *optional(cov, kp.dtype, 4), g_kp, *optional(g_cov, kp.dtype, 4), *optional(g_maps, kp.dtype, 4), gx, g_temp,
    )  # fmt: skip


@nb.njit(parallel=True, cache=True)
def _backward(
    x, inv_temp, mask, has_mask, x0, dx, y0, dy, channels_last, stats, kp, cov, has_cov, g_kp, g_cov, has_g_cov,
    g_maps, has_g_maps, gx, g_temp,
):  # fmt: skip
    B, C, H, W = _dims(x, channels_last)
    xf = x.reshape(-1)
    gxf = gx.reshape(-1)
    for bc in nb.prange(B * C):
        b, c = bc // C, bc % C
        inv = np.float64(inv_temp[c])
        m = np.float64(stats[b, c, 0])
        inv_l = 1.0 / np.float64(stats[b, c, 1])
        mx, my = np.float64(kp[b, c, 0]), np.float64(kp[b, c, 1])
        gmx, gmy = np.float64(g_kp[b, c, 0]), np.float64(g_kp[b, c, 1])
        gxx = gyy = gxy = 0.0
        phibar = gmx * mx + gmy * my
        if has_g_cov:
            gxx = np.float64(g_cov[b, c, 0, 0])
            gyy = np.float64(g_cov[b, c, 1, 1])
            gxy = 0.5 * (np.float64(g_cov[b, c, 0, 1]) + np.float64(g_cov[b, c, 1, 0]))
            phibar += gxx * cov[b, c, 0, 0] + gyy * cov[b, c, 1, 1] + gxy * (cov[b, c, 0, 1] + cov[b, c, 1, 0])
            phibar -= gxx * mx * mx + gyy * my * my + 2.0 * gxy * mx * my
        ax = gmx - 2.0 * (gxx * mx + gxy * my)
        ay = gmy - 2.0 * (gxy * mx + gyy * my)
        gmf = g_maps.reshape(-1)  # (empty without g_maps)
        if has_g_maps:
            for i in range(H):
                for j in range(W):
                    if _valid(mask, has_mask, b, c, i * W + j):
                        k = _index(b, c, i, j, C, H, W, channels_last)
                        phibar += np.exp(np.float64(xf[k]) * inv - m) * inv_l * gmf[k]
        ga = 0.0
        for i in range(H):
            py = y0 + i * dy
            for j in range(W):
                k = _index(b, c, i, j, C, H, W, channels_last)
                if not _valid(mask, has_mask, b, c, i * W + j):
                    gxf[k] = 0.0
                    continue
                px = x0 + j * dx
                t = np.float64(xf[k]) * inv - m
                s = np.exp(t) * inv_l
                d = ax * px + ay * py + gxx * px * px + gyy * py * py + 2.0 * gxy * px * py - phibar
                if has_g_maps:
                    d += gmf[k]
                gz = s * d
                gxf[k] = gz * inv
                ga += gz * t
        g_temp[b, c] = -inv * ga
