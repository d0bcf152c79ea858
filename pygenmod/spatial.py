"""Spatial softmax keypoints (Finn et al. 2016, deep spatial autoencoders, eqs. 3.1-3.2).

For each map ``(b, c)`` of ``x``: a softmax over its H*W pixels of ``x / temperature``,
then the expected pixel coordinate (the keypoint) and optionally its covariance.

Contract (the same on every backend):

- **Layout**: ``layout="NCHW"`` (default, x is (B, C, H, W)) or ``"NHWC"`` (x is (B, H, W, C)).
- **Order**: keypoints are (B, C, 2) with ``order="xy"`` (default): ``[..., 0]`` is the
  horizontal coordinate (column j, along W), ``[..., 1]`` the vertical one (row i, along H).
  ``order="yx"`` swaps them (and the covariance axes) to (row, column).
- **Grid**: ``coords="normalized"`` (default): pixel centres on [-1, 1], the first pixel
  centre at -1 and the last at +1, i.e. ``px_j = -1 + 2 j / (W - 1)`` = ``linspace(-1, 1, W)``
  (and ``py_i`` likewise with H) -- the convention of robomimic and of kornia's
  ``spatial_expectation2d(normalized_coordinates=True)``. A map of width 1 (height 1) has its
  only pixel centre at 0, the middle of [-1, 1] (``linspace`` would put it at -1).
  ``coords="pixel"``: ``px_j = j`` in [0, W-1], ``py_i = i`` in [0, H-1]. H != W is fine:
  each axis uses its own extent.
- **Temperature**: a positive finite scalar or one per channel (shape (C,)); logits are
  ``x / temperature``. Non-positive, NaN or infinite temperatures raise ValueError.
- **Numerics**: max-subtracted softmax; sums accumulated in float64 per map (in the compute
  type over short column runs in the compiled kernels). float16 (and ml_dtypes' bfloat16 on
  the CPU) input is loaded as such and computed in float32; outputs and the temperature
  gradient are float32 (as torch autocast does for softmax), grad_x is returned in x's dtype.
- **Non-finite input**: NaN or +inf in a valid pixel (or a logit x / temperature that
  overflows) raises ValueError -- detected from the per-map statistics, without an extra pass
  over x. -inf is a pixel of probability 0 (like a masked one).
- **Mask**: optional bool (or 0/1) array of valid pixels, shape (H, W), (B, H, W) or x's
  shape (any of its B and C axes may be 1). Masked pixels get probability 0 and zero
  gradient; every map must keep at least one valid pixel.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np

from . import _fast, _grads
from . import _validate as val
from ._arrays import is_device, new_output, returner, to_native, xp_of
from ._dispatch import kernel
from ._status import input_error
from ._typing import Array, ArrayLike, CoordOrder, Coords, Layout

LAYOUTS = ("NCHW", "NHWC")
COORDS = ("normalized", "pixel")
ORDERS = ("xy", "yx")


class SpatialSoftmaxResult(NamedTuple):
    keypoints: object  #: (B, C, 2) expected coordinates, in ``order``
    cov: object  #: (B, C, 2, 2) keypoint covariance (same order), or None
    maps: object  #: softmax maps in x's layout, or None
    stats: object  #: (B, C, 2): max logit m and sum of exp(z - m) per map (for the backward)


class _Call(NamedTuple):
    x: object
    xp: object
    B: int
    C: int
    H: int
    W: int
    channels_last: bool
    swap: bool
    grid: tuple
    inv_temp: object
    scalar_temp: bool
    mask: object
    dtype: object  # compute/output dtype
    in_dtype: object  # x's own dtype (float16 possible)
    on_device: bool


def _grid(n: int, coords: str):
    if coords == "pixel":
        return 0.0, 1.0
    return (-1.0, 2.0 / (n - 1)) if n > 1 else (0.0, 0.0)


def _prepare(x, temperature, layout, coords, order, mask) -> _Call:
    layout = val.choice(layout, "layout", LAYOUTS)
    coords = val.choice(coords, "coords", COORDS)
    order = val.choice(order, "order", ORDERS)
    x = val.float_array(x, "x", ndim=4, finite=False, allow_half=True)
    xp = xp_of(x)
    channels_last = layout == "NHWC"
    if channels_last:
        B, H, W, C = x.shape
    else:
        B, C, H, W = x.shape
    if H < 1 or W < 1:
        raise ValueError(f"x: maps must have at least one pixel, got H={H}, W={W}")
    in_dtype = x.dtype
    dtype = val.compute_dtype(x.dtype)
    backend, _ = kernel("spatial", "forward", is_device(x))
    if backend == "numba" and x.dtype != dtype:
        x = x.astype(dtype)  # numba has no float16 loads: widen first
    scalar_temp = len(getattr(temperature, "shape", np.shape(temperature))) == 0
    # checked in float64: a tiny positive temperature must not round to 0 and read as "<= 0"
    temp = val.per_batch(temperature, "temperature", C, np.float64, xp, lo=0.0, lo_closed=False)
    with np.errstate(over="ignore", divide="ignore"):
        inv_temp = xp.ascontiguousarray((1.0 / temp).astype(dtype))
    if not bool(xp.isfinite(inv_temp).all()):
        t = float(temp[~xp.isfinite(inv_temp)][0])
        raise ValueError(f"temperature: too small, 1 / temperature overflows {np.dtype(dtype).name} (got {t:g})")
    m = None
    if mask is not None:
        m = _mask(mask, xp, B, C, H, W, channels_last)
    x0, dx = _grid(W, coords)
    y0, dy = _grid(H, coords)
    return _Call(
        x,
        xp,
        B,
        C,
        H,
        W,
        channels_last,
        order == "yx",
        (x0, dx, y0, dy),
        inv_temp,
        scalar_temp,
        m,
        dtype,
        in_dtype,
        is_device(x),
    )


def _mask(mask, xp, B, C, H, W, channels_last):
    m = val.bool_mask(mask, "mask", xp=xp)
    if m.ndim == 2:
        val.check_shape(m, "mask", (H, W))
        m = m.reshape(1, 1, H * W)
    elif m.ndim == 3:
        if m.shape[0] not in (1, B) or m.shape[1:] != (H, W):
            raise ValueError(f"mask: expected shape ({B}, {H}, {W}) (or (1, {H}, {W})), got {m.shape}")
        m = m.reshape(m.shape[0], 1, H * W)
    elif m.ndim == 4:
        if channels_last:
            ok = m.shape[1:3] == (H, W)
            m = xp.moveaxis(m, 3, 1) if ok else m
        ok = m.shape[0] in (1, B) and m.shape[1] in (1, C) and m.shape[2:] == (H, W)
        if not ok:
            raise ValueError(f"mask: expected x's shape with B and C axes of x's extent or 1, got {m.shape}")
        m = m.reshape(m.shape[0], m.shape[1], H * W)
    else:
        raise ValueError(f"mask: expected 2, 3 or 4 dimensions, got shape {m.shape}")
    if m.size and not bool(m.any(axis=-1).all()):
        raise ValueError("mask: every map needs at least one valid pixel")
    return xp.ascontiguousarray(m.astype(xp.uint8))


def _check_stats(stats, xp):
    if stats.size and not bool(xp.isfinite(stats).all()):
        s = stats.get() if hasattr(stats, "get") else stats
        bad = np.argwhere(~np.isfinite(s).all(-1))[0]
        where = f"map b={bad[0]}, c={bad[1]}"
        rows = ~np.isfinite(s).all(axis=(1, 2))  # Status.NONFINITE_INPUT per batch row (.status)
        if s[bad[0], bad[1], 0] == -np.inf:  # the max logit: every valid pixel is -inf
            raise input_error(f"x: every valid pixel of {where} is -infinity (the softmax is undefined)", rows)
        raise input_error(f"x: NaN or +infinity in x / temperature ({where})", rows)


def _forward(c: _Call, want_cov: bool, want_maps: bool):
    xp, dt = c.xp, c.dtype
    kp = xp.empty((c.B, c.C, 2), dt)
    stats = xp.empty((c.B, c.C, 2), dt)
    cov = xp.empty((c.B, c.C, 2, 2), dt) if want_cov else None
    maps = new_output(xp, c.x.shape, dt) if want_maps else None
    _, fwd = kernel("spatial", "forward", c.on_device)
    fwd(c.x, c.inv_temp, c.mask, *c.grid, c.channels_last, kp, cov, maps, stats)
    _check_stats(stats, xp)
    return kp, cov, maps, stats


def _to_order(kp, cov, swap):
    if not swap:
        return kp, cov
    kp = kp[..., ::-1].copy()
    return kp, (None if cov is None else cov[..., ::-1, ::-1].copy())


def _one_call_forward(x, temperature, layout, coords, order, mask, cov_or_maps, with_stats):
    """The forward as one compiled call (pygenmod._fast) where the arguments allow it: the
    keypoints, or (keypoints, stats) with with_stats; None when the general path must run."""
    if (
        type(x) is np.ndarray
        and type(temperature) is float
        and mask is None
        and not cov_or_maps
        and layout == "NCHW"
        and coords == "normalized"
        and order == "xy"
    ):
        fast = _fast.cpu_kernel("spatial", "forward_fast")
        if fast is not None:
            return fast(x, temperature, with_stats)
    return None


def spatial_softmax(
    x: ArrayLike,
    temperature: ArrayLike = 1.0,
    *,
    layout: Layout = "NCHW",
    coords: Coords = "normalized",
    order: CoordOrder = "xy",
    mask: ArrayLike | None = None,
    return_cov: bool = False,
    return_maps: bool = False,
) -> Array | SpatialSoftmaxResult:
    """Spatial softmax keypoints of every (b, c) map of ``x``.

    Returns the keypoints (B, C, 2); with ``return_cov`` or ``return_maps`` a
    :class:`SpatialSoftmaxResult` (keypoints, cov, maps, stats) instead. See the module
    docstring for the layout / order / grid / temperature / mask contract.
    """
    kp = _one_call_forward(x, temperature, layout, coords, order, mask, return_cov or return_maps, False)
    if kp is not None:
        return kp
    res = spatial_softmax_forward(
        x,
        temperature,
        layout=layout,
        coords=coords,
        order=order,
        mask=mask,
        return_cov=return_cov,
        return_maps=return_maps,
    )
    if return_cov or return_maps:
        return res
    return res.keypoints


def spatial_softmax_forward(
    x: ArrayLike,
    temperature: ArrayLike = 1.0,
    *,
    layout: Layout = "NCHW",
    coords: Coords = "normalized",
    order: CoordOrder = "xy",
    mask: ArrayLike | None = None,
    return_cov: bool = True,
    return_maps: bool = False,
) -> SpatialSoftmaxResult:
    """Like :func:`spatial_softmax` but always returns a :class:`SpatialSoftmaxResult`
    (pass it as ``saved=`` to :func:`spatial_softmax_backward` to skip recomputing the forward)."""
    res = _one_call_forward(x, temperature, layout, coords, order, mask, return_cov or return_maps, True)
    if res is not None:
        return SpatialSoftmaxResult(res[0], None, None, res[1])
    back = returner(x)
    c = _prepare(x, temperature, layout, coords, order, mask)
    kp, cov, maps, stats = _forward(c, return_cov, return_maps)
    kp, cov = _to_order(kp, cov, c.swap)
    return SpatialSoftmaxResult(back(kp), back(cov), back(maps), back(stats))


@_grads.backward("grad_keypoints", "grad_cov", "grad_maps")
def spatial_softmax_backward(
    x: ArrayLike,
    temperature: ArrayLike = 1.0,
    *,
    grad_keypoints: ArrayLike | None = None,
    grad_cov: ArrayLike | None = None,
    grad_maps: ArrayLike | None = None,
    layout: Layout = "NCHW",
    coords: Coords = "normalized",
    order: CoordOrder = "xy",
    mask: ArrayLike | None = None,
    saved: SpatialSoftmaxResult | None = None,
    out: Array | None = None,
) -> tuple[Array, Array]:
    """Vector-Jacobian product of :func:`spatial_softmax`.

    Given upstream gradients of the keypoints (B, C, 2), of the covariance (B, C, 2, 2) and of
    the softmax maps (x's layout) -- at least one; None or left out: zero -- returns
    ``(grad_x, grad_temperature)``:
    grad_x in x's shape and dtype, grad_temperature with the temperature's shape (a 0-d array
    for a scalar temperature). ``saved``: the :class:`SpatialSoftmaxResult` of the forward
    with the same arguments (must hold ``cov`` when ``grad_cov`` is given); without it the
    forward statistics are recomputed (one extra pass over x). ``out``: an optional
    preallocated grad_x buffer (C-contiguous, x's shape, float32/float64 as x) -- reusing it
    avoids the page faults of a fresh large allocation on every call.
    """
    if (
        type(x) is np.ndarray
        and type(temperature) is float
        and type(grad_keypoints) is np.ndarray
        and grad_cov is None
        and grad_maps is None
        and mask is None
        and (saved is None or (type(saved) is SpatialSoftmaxResult and saved.cov is None))
        and out is None
        and layout == "NCHW"
        and coords == "normalized"
        and order == "xy"
    ):
        fast = _fast.cpu_kernel("spatial", "backward_fast")  # one compiled call (pygenmod._fast)
        # saved: its keypoints and stats, which the binding takes only as finite NumPy arrays of
        # x's dtype and (B, C, 2) shape; without saved the binding recomputes them
        kp, stats = (None, None) if saved is None else (saved.keypoints, saved.stats)
        recompute_not_asked = saved is not None and kp is None  # the general path's TypeError
        res = None if fast is None or recompute_not_asked else fast(x, temperature, grad_keypoints, kp, stats)
        if res is not None:
            gx, g_temp = res
            return gx, np.asarray(g_temp.sum(axis=0, dtype=np.float64).sum(), dtype=x.dtype)
    back = returner(x)
    c = _prepare(x, temperature, layout, coords, order, mask)
    xp, dt = c.xp, c.dtype
    if grad_keypoints is None:
        g_kp = xp.zeros((c.B, c.C, 2), dt)
    else:
        g_kp = val.float_array(grad_keypoints, "grad_keypoints", ndim=3, dtype=dt, xp=xp)
        val.check_shape(g_kp, "grad_keypoints", (c.B, c.C, 2))
    g_cov = None
    if grad_cov is not None:
        g_cov = val.float_array(grad_cov, "grad_cov", ndim=4, dtype=dt, xp=xp)
        val.check_shape(g_cov, "grad_cov", (c.B, c.C, 2, 2))
    g_maps = None
    if grad_maps is not None:
        g_maps = val.float_array(grad_maps, "grad_maps", ndim=4, dtype=dt, xp=xp)
        val.check_shape(g_maps, "grad_maps", c.x.shape)
    if saved is None or (g_cov is not None and saved.cov is None):
        kp, cov, _, stats = _forward(c, g_cov is not None, False)
    else:
        kp = val.float_array(saved.keypoints, "saved.keypoints", ndim=3, dtype=dt, xp=xp)
        stats = val.float_array(saved.stats, "saved.stats", ndim=3, dtype=dt, xp=xp)
        cov = None if saved.cov is None else val.float_array(saved.cov, "saved.cov", ndim=4, dtype=dt, xp=xp)
        val.check_shape(kp, "saved.keypoints", (c.B, c.C, 2))
        val.check_shape(stats, "saved.stats", (c.B, c.C, 2))
        kp, cov = _to_order(kp, cov, c.swap)  # back to the kernels' (x, y) order
    if c.swap:
        g_kp = xp.ascontiguousarray(g_kp[..., ::-1])
        g_cov = None if g_cov is None else xp.ascontiguousarray(g_cov[..., ::-1, ::-1])
    if g_cov is None:
        cov = None
    if out is not None:
        gx = to_native(out)
        if (
            xp_of(gx) is not xp
            or gx.dtype != dt
            or tuple(gx.shape) != tuple(c.x.shape)
            or not gx.flags.c_contiguous
            or not getattr(gx.flags, "writeable", True)
        ):  # CuPy: no 'writeable'
            raise ValueError(
                f"out: expected a writable C-contiguous {np.dtype(dt).name} array of shape "
                f"{tuple(c.x.shape)} on x's device"
            )
        val.out_buffer(
            gx,
            "out",
            (
                ("x", c.x),
                ("grad_keypoints", g_kp),
                ("grad_cov", g_cov),
                ("grad_maps", g_maps),
                ("saved.stats", stats),
                ("saved.keypoints", kp),
                ("saved.cov", cov),
                ("mask", c.mask),
                ("temperature", c.inv_temp),
            ),
        )
    else:
        gx = new_output(xp, c.x.shape, dt)
    g_temp = xp.empty((c.B, c.C), dt)
    _, bwd = kernel("spatial", "backward", c.on_device)
    bwd(c.x, c.inv_temp, c.mask, *c.grid, c.channels_last, stats, kp, cov, g_kp, g_cov, g_maps, gx, g_temp)
    if c.in_dtype != dt:
        gx = gx.astype(c.in_dtype)
    g_t = g_temp.sum(axis=0, dtype=np.float64)
    g_t = g_t.sum() if c.scalar_temp else g_t
    return back(gx), back(xp.asarray(g_t, dtype=dt))


def spatial_softmax_vjp(
    x: ArrayLike,
    temperature: ArrayLike,
    grad_keypoints: ArrayLike | None,
    grad_cov: ArrayLike | None = None,
    grad_maps: ArrayLike | None = None,
    *,
    saved: SpatialSoftmaxResult | None = None,
    layout: Layout = "NCHW",
    coords: Coords = "normalized",
    order: CoordOrder = "xy",
    mask: ArrayLike | None = None,
    out: Array | None = None,
) -> tuple[Array, Array]:
    """Deprecated alias of :func:`spatial_softmax_backward`, whose upstream gradients are
    keyword-only (``grad_keypoints=``, ``grad_cov=``, ``grad_maps=``)."""
    warnings.warn(
        "spatial.spatial_softmax_vjp is deprecated: use spatial_softmax_backward(x, temperature, "
        "grad_keypoints=..., grad_cov=..., grad_maps=...)",
        DeprecationWarning,
        stacklevel=2,
    )
    if grad_keypoints is None:  # required in the old form (the new one reads None as zero)
        raise TypeError("grad_keypoints: expected an array, got None")
    return spatial_softmax_backward(
        x,
        temperature,
        grad_keypoints=grad_keypoints,
        grad_cov=grad_cov,
        grad_maps=grad_maps,
        saved=saved,
        layout=layout,
        coords=coords,
        order=order,
        mask=mask,
        out=out,
    )


__all__ = [
    "COORDS",
    "LAYOUTS",
    "ORDERS",
    "SpatialSoftmaxResult",
    "spatial_softmax",
    "spatial_softmax_backward",
    "spatial_softmax_forward",
    "spatial_softmax_vjp",
]
