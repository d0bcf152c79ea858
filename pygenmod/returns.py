"""Returns over trajectories: GAE, lambda-returns and discounted returns.

Layout: time-major ``x[t, b]`` (T steps of B environments); ``time_axis=1`` accepts
batch-major ``(B, T)`` input (copied to time-major and back). Flags ``terminated``,
``truncated`` and ``mask`` are bool arrays or float arrays of the rewards' dtype (nonzero =
true). ``gamma`` and ``lam`` are scalars or one value per environment.

- terminated[t]: the episode ended at step t in a terminal state: no bootstrap
  (``V(s_{t+1}) = 0``) and the recursion is cut.
- truncated[t]: the episode was cut at step t by a time limit: the recursion is cut, but the
  target bootstraps from the value of the true next observation, which must be given in
  ``next_values`` (values of the observations *before* the environment reset).
- next values: ``next_values[t]`` if given, else ``values[t + 1]`` and, for the last step,
  ``bootstrap_value`` (0 if omitted).
- mask[t] false: padding; the step gets advantage and return 0 and the recursion restarts.

GAE (Schulman et al. 2015):
``delta_t = r_t + gamma (1 - terminated_t) V_next_t - V_t``,
``A_t = delta_t + gamma lam (1 - done_t) A_{t+1}`` with ``done = terminated | truncated``;
the lambda-return is ``A_t + V_t``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import _fast
from . import _validate as val
from ._arrays import broadcast_contiguous, is_device, new_output, returner, to_native
from ._dispatch import kernel
from ._typing import Array, ArrayLike


class GAE(NamedTuple):
    advantages: object  #: (T, B)
    returns: object  #: (T, B) lambda-returns A + V


def _flag(x, name, shape, dtype, xp, time_axis):
    if x is None:
        return None
    a = to_native(x, name)
    if xp is not np and not hasattr(a, "__cuda_array_interface__"):
        a = xp.asarray(a)
    if a.dtype == np.bool_:
        a = a.view(np.uint8)
    elif a.dtype.kind == "f" and a.dtype == dtype:
        pass
    elif a.dtype.kind in "iuf":
        a = (a != 0).view(np.uint8)
    else:
        raise TypeError(f"{name}: expected a bool or float array, got dtype {a.dtype}")
    if time_axis == 1:
        val.check_shape(a, name, shape[::-1])
        a = a.T
    val.check_shape(a, name, shape)
    return xp.ascontiguousarray(a)


def _run(
    rewards,
    values,
    *,
    gamma,
    lam,
    terminated,
    truncated,
    next_values,
    bootstrap_value,
    mask,
    time_axis,
    want_returns,
    need_values,
    out=None,
):
    back = returner(rewards)
    if time_axis not in (0, 1):
        raise ValueError(f"time_axis: expected 0 (time-major) or 1 (batch-major), got {time_axis!r}")
    # NaN/inf are not scanned for up front: the kernel reports whether any reached the scan
    # (every input does), and only then are the inputs checked to name the culprit.
    r = val.float_array(rewards, "rewards", ndim=2, finite=False)
    xp = np if not is_device(r) else __import__("cupy")
    if time_axis == 1:
        r = xp.ascontiguousarray(r.T)
    Tn, B = r.shape
    if B == 0:
        raise ValueError("rewards: empty batch (B = 0)")

    def arr(x, name):
        if x is None:
            return None
        a = val.float_array(x, name, ndim=2, dtype=r.dtype, xp=xp, finite=False)
        if time_axis == 1:
            val.check_shape(a, name, (B, Tn))
            a = xp.ascontiguousarray(a.T)
        val.check_shape(a, name, (Tn, B))
        return a

    v = arr(values, "values")
    if need_values and v is None:
        raise ValueError("values: required")
    nv = arr(next_values, "next_values")
    flags = [
        _flag(f, n, (Tn, B), r.dtype, xp, time_axis)
        for f, n in ((terminated, "terminated"), (truncated, "truncated"), (mask, "mask"))
    ]
    kinds = {f.dtype for f in flags if f is not None}
    if len(kinds) > 1:
        flags = [None if f is None else (f != 0).view(np.uint8) if f.dtype != np.uint8 else f for f in flags]
    if flags[1] is not None and nv is None:
        raise ValueError(
            "next_values: required when truncated is given (the value of the observation "
            "at which the episode was cut, before the reset)"
        )
    boot = None
    if bootstrap_value is not None:
        boot = val.float_array(bootstrap_value, "bootstrap_value", ndim=(0, 1), dtype=r.dtype, xp=xp, finite=False)
        boot = broadcast_contiguous(xp, boot, (B,))
    g = val.per_batch(gamma, "gamma", B, r.dtype, xp, lo=0.0, hi=1.0)
    lm = val.per_batch(lam, "lam", B, r.dtype, xp, lo=0.0, hi=1.0)
    adv, ret = _outputs(out, (Tn, B), r.dtype, xp, want_returns, time_axis)
    if out is not None:
        ins = [
            ("rewards", r),
            ("values", v),
            ("next_values", nv),
            ("bootstrap_value", boot),
            ("gamma", g),
            ("lam", lm),
        ] + [(n, f) for n, f in zip(("terminated", "truncated", "mask"), flags)]
        val.out_buffer(adv, "out[0]", ins)
        if ret is not None:
            val.out_buffer(ret, "out[1]", ins + [("out[0]", adv)])
    if Tn:
        status = xp.zeros(1, xp.uint8)
        kernel("returns", "gae", is_device(r))[1](r, v, nv, boot, *flags, g, lm, adv, ret, status)
        if int(status[0]):
            for x, name in ((r, "rewards"), (v, "values"), (nv, "next_values"), (boot, "bootstrap_value")):
                if x is not None and x.size and not val._all_finite(x):
                    raise ValueError(f"{name}: contains NaN or infinity")
            # otherwise finite inputs overflowed: the infinities are the honest result

    def out(x):
        if x is None:
            return None
        return back(xp.ascontiguousarray(x.T) if time_axis == 1 else x)

    return out(adv), out(ret)


def _outputs(out, shape, dtype, xp, want_returns, time_axis):
    """Fresh outputs, or the caller's ``out=(advantages, returns)`` buffers (time-major, C-contiguous,
    the rewards' dtype and array type; reusing them avoids page-faulting new memory every call)."""
    if out is None or time_axis == 1:
        if out is not None:
            raise ValueError("out: only supported for time-major input (time_axis=0)")
        return new_output(xp, shape, dtype), (new_output(xp, shape, dtype) if want_returns else None)
    bufs = tuple(out) if isinstance(out, (tuple, list)) else (out,)
    if len(bufs) != (2 if want_returns else 1):
        raise ValueError(f"out: expected {'(advantages, returns)' if want_returns else 'one array'}")
    for i, b in enumerate(bufs):
        name = f"out[{i}]"
        if not hasattr(b, "dtype") or b.dtype != dtype or type(b) is not type(xp.empty(0)):
            raise TypeError(f"{name}: expected a {xp.__name__} array of dtype {np.dtype(dtype)}")
        val.check_shape(b, name, shape)
        if not b.flags.c_contiguous:
            raise ValueError(f"{name}: must be C-contiguous")
    return bufs[0], (bufs[1] if want_returns else None)


def gae(
    rewards: ArrayLike,
    values: ArrayLike,
    *,
    gamma: ArrayLike = 0.99,
    lam: ArrayLike = 0.95,
    terminated: ArrayLike | None = None,
    truncated: ArrayLike | None = None,
    next_values: ArrayLike | None = None,
    bootstrap_value: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    time_axis: int = 0,
    out: Array | tuple[Array, Array] | None = None,
    compute_returns: bool = True,
) -> GAE:
    """Generalized advantage estimates and lambda-returns (module doc); (T, B) in, (T, B) out.

    out: optional ``(advantages, returns)`` buffers to write into (time-major only); one
    ``advantages`` buffer when ``compute_returns=False``.
    compute_returns=False: advantages only (``.returns`` is None); the scan then writes one
    array instead of two (it is memory bound, so this saves about a fifth of its time).
    """
    if (
        type(rewards) is np.ndarray
        and type(values) is np.ndarray
        and truncated is None
        and next_values is None
        and mask is None
        and time_axis == 0
        and out is None
        and (compute_returns is True or compute_returns is False)
    ):
        fast = _fast.cpu_kernel("returns", "gae_fast")  # one compiled call (pygenmod._fast)
        res = None if fast is None else fast(rewards, values, gamma, lam, terminated, bootstrap_value, compute_returns)
        if res is not None:
            return GAE(*res)
    adv, ret = _run(
        rewards,
        values,
        gamma=gamma,
        lam=lam,
        terminated=terminated,
        truncated=truncated,
        next_values=next_values,
        bootstrap_value=bootstrap_value,
        mask=mask,
        time_axis=time_axis,
        want_returns=bool(compute_returns),
        need_values=True,
        out=out,
    )
    return GAE(adv, ret)


def lambda_returns(
    rewards: ArrayLike,
    values: ArrayLike,
    *,
    gamma: ArrayLike = 0.99,
    lam: ArrayLike = 0.95,
    terminated: ArrayLike | None = None,
    truncated: ArrayLike | None = None,
    next_values: ArrayLike | None = None,
    bootstrap_value: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    time_axis: int = 0,
) -> Array:
    """TD(lambda) returns ``G_t = A_t + V_t`` (the GAE identity); (T, B)."""
    return gae(
        rewards,
        values,
        gamma=gamma,
        lam=lam,
        terminated=terminated,
        truncated=truncated,
        next_values=next_values,
        bootstrap_value=bootstrap_value,
        mask=mask,
        time_axis=time_axis,
    ).returns


def discounted_returns(
    rewards: ArrayLike,
    *,
    gamma: ArrayLike = 0.99,
    terminated: ArrayLike | None = None,
    truncated: ArrayLike | None = None,
    next_values: ArrayLike | None = None,
    bootstrap_value: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    time_axis: int = 0,
) -> Array:
    """Discounted returns ``G_t = r_t + gamma (1 - done_t) G_{t+1}``, bootstrapping from
    ``next_values`` at truncated steps (only read there) and from ``bootstrap_value`` after
    the last step."""
    if type(rewards) is np.ndarray and truncated is None and next_values is None and mask is None and time_axis == 0:
        fast = _fast.cpu_kernel("returns", "gae_fast")  # one compiled call (pygenmod._fast)
        res = None if fast is None else fast(rewards, None, gamma, 1.0, terminated, bootstrap_value, False)
        if res is not None:
            return res[0]
    if next_values is not None and truncated is not None:
        nv = val.float_array(next_values, "next_values", ndim=2)
        tr = to_native(truncated)
        xp = np if not is_device(nv) else __import__("cupy")
        tr = xp.asarray(tr) != 0
        if tr.shape != nv.shape:
            raise ValueError(f"next_values: shape {nv.shape} differs from truncated's {tr.shape}")
        next_values = xp.where(tr, nv, 0)
        rt = to_native(rewards)
        Tn = rt.shape[time_axis] if rt.ndim == 2 else 0
        if bootstrap_value is not None and Tn:
            # the last step's next value is the bootstrap unless the step was truncated
            last = (slice(None), -1) if time_axis == 1 else (-1, slice(None))
            bv = xp.broadcast_to(xp.asarray(bootstrap_value, dtype=next_values.dtype), next_values[last].shape)
            next_values[last] = xp.where(tr[last], next_values[last], bv)
    adv, _ = _run(
        rewards,
        None,
        gamma=gamma,
        lam=1.0,
        terminated=terminated,
        truncated=truncated,
        next_values=next_values,
        bootstrap_value=bootstrap_value,
        mask=mask,
        time_axis=time_axis,
        want_returns=False,
        need_values=False,
    )
    return adv


__all__ = [
    "GAE",
    "discounted_returns",
    "gae",
    "lambda_returns",
]
