"""numba GAE / lambda-return scan (same contract as csrc/bind/returns.cpp, math of returns.hpp)."""

import numba as nb
import numpy as np


@nb.njit(parallel=True, cache=True)
def _gae(
    r,
    values,
    has_v,
    next_values,
    has_next,
    bootstrap,
    has_boot,
    terminated,
    has_term,
    truncated,
    has_trunc,
    mask,
    has_mask,
    gamma,
    lam,
    adv,
    ret,
    has_ret,
    bad,
):
    Tn, B = r.shape
    zero = r.dtype.type(0)
    for b in nb.prange(B):
        nf = zero
        g = gamma[b]
        gl = gamma[b] * lam[b]
        carry = zero
        for t in range(Tn - 1, -1, -1):
            if has_next:
                vn = next_values[t, b]
            elif t + 1 < Tn:
                vn = values[t + 1, b] if has_v else zero
            else:
                vn = bootstrap[b] if has_boot else zero
            v = values[t, b] if has_v else zero
            # 0/1 factors as in returns.hpp (NaN/inf propagate and are reported, not hidden)
            kn = zero + (0 if (has_term and terminated[t, b] != 0) else 1)
            kc = kn * (0 if (has_trunc and truncated[t, b] != 0) else 1)
            valid = zero + (1 if ((not has_mask) or mask[t, b] != 0) else 0)
            delta = r[t, b] + g * kn * vn - v
            carry = (delta + gl * kc * carry) * valid
            adv[t, b] = carry
            if has_ret:
                ret[t, b] = (carry + v) * valid
            nf += carry * zero
        bad[b] = not (nf == 0)


def gae(rewards, values, next_values, bootstrap, terminated, truncated, mask, gamma, lam, advantages, returns, status):
    dt = rewards.dtype
    flags = [f for f in (terminated, truncated, mask) if f is not None]
    fdt = flags[0].dtype if flags else np.uint8
    if any(f.dtype != fdt for f in flags):
        raise ValueError("flags: terminated, truncated and mask must share a dtype")
    e2 = np.zeros((1, 1), dt)
    f2 = np.zeros((1, 1), fdt)
    _gae(
        rewards,
        e2 if values is None else values,
        values is not None,
        e2 if next_values is None else next_values,
        next_values is not None,
        np.zeros(1, dt) if bootstrap is None else bootstrap,
        bootstrap is not None,
        f2 if terminated is None else terminated,
        terminated is not None,
        f2 if truncated is None else truncated,
        truncated is not None,
        f2 if mask is None else mask,
        mask is not None,
        gamma,
        lam,
        advantages,
        e2 if returns is None else returns,
        returns is not None,
        bad := np.zeros(rewards.shape[1], np.bool_),
    )
    status[0] = bool(bad.any())
