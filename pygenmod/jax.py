"""pygenmod's compiled kernels inside ``jax.jit``, ``jax.vmap`` and ``jax.grad`` (XLA FFI).

The kernels (CPU, and CUDA where built) are registered as XLA FFI targets (``jax.ffi.register_ffi_target``) and called
with ``jax.ffi.ffi_call``, so they run inside compiled JAX programs; the handlers
(``pygenmod._jax_ffi``, sources in ``csrc/jax/``) call the same kernel bodies as the NumPy API,
so results equal it (bitwise: same code, same inputs). docs/jax.md has the details.

- **vmap**: the kernels are batch-first, so a vmapped axis is folded into the kernel's batch
  axis (``jax.custom_batching.custom_vmap``): one kernel call over ``N * B`` items, never a
  Python loop (sampling excepted: a row's noise depends on its index, so each vmapped element
  is its own call). Arguments without a batch axis (spatial softmax's per-channel temperature)
  that are themselves vmapped fall back to ``jax.lax.map`` (one call per vmapped element).
- **grad**: spatial softmax, the diagonal Gaussian head and its KL have ``jax.custom_vjp`` rules
  calling the fused backward kernels. GAE,
  lambda-returns and Bellman backups are not differentiable: differentiating them raises
  TypeError (apply ``jax.lax.stop_gradient`` to their inputs, as targets usually are).
- **more**: the MDP solvers (``solve``, ``policy_iteration``, ``policy_evaluation``) live in
  ``pygenmod/_jax_mdp.py``, the densities, ``kl_mvn`` and ``gumbel_softmax`` in
  ``pygenmod/_jax_dist.py``, ``gmm_fit`` in ``pygenmod/_jax_gmm.py`` (re-exported here).
- **checks**: shapes and dtypes are checked when the function is traced (ValueError /
  TypeError naming the argument); value checks (ranges, NaN/inf) run only on concrete
  (non-traced) inputs, since a traced value is unknown until the program runs.

Requires ``pip install "pygenmod[jax]"`` (jax >= 0.10.2, see ``_MIN_JAX``).
"""

from __future__ import annotations

import functools
import math
import numbers
import re
from typing import NamedTuple

import numpy as np

# The FFI handlers are compiled against the XLA FFI API headers vendored in
# third_party/xla_ffi (API 0.3, from jaxlib 0.10.2): a jaxlib older than those headers rejects
# them at run time, so the import refuses it up front. Raise together with the vendored copy.
_MIN_JAX = (0, 10, 2)
_INSTALL = 'pip install "pygenmod[jax]"'

try:
    import jax
    import jax.numpy as jnp
except ImportError as e:  # pragma: no cover - exercised where JAX is absent
    raise ImportError(f"pygenmod.jax needs JAX >= {'.'.join(map(str, _MIN_JAX))}: {_INSTALL}") from e


def _version(v: str) -> tuple:
    return tuple(int(x) for x in re.findall(r"\d+", v)[:3])


if _version(jax.__version__) < _MIN_JAX:
    raise ImportError(
        f"pygenmod.jax needs JAX >= {'.'.join(map(str, _MIN_JAX))} (the XLA FFI API its handlers "
        f"were built against), found jax {jax.__version__}: {_INSTALL}"
    )

try:
    from . import _jax_ffi
except ImportError as e:  # pragma: no cover - a build without compiled modules
    raise ImportError(
        "pygenmod.jax needs the compiled module pygenmod._jax_ffi, which this installation lacks "
        "(built without a C++ compiler?); reinstall pygenmod from a wheel or a source build"
    ) from e


from ._seed import check_int_seed, check_key_words  # noqa: E402  (after the version and build checks above)
from .gmm import EStep, GMMParams  # noqa: E402
from .mdp import Backup  # noqa: E402
from .returns import GAE  # noqa: E402
from .sampling import Head  # noqa: E402

for _name, _capsule in _jax_ffi.registrations().items():
    jax.ffi.register_ffi_target(_name, _capsule, platform="cpu")
try:  # the CUDA handlers, where the CUDA build exists (same target names, platform CUDA)
    from . import _jax_ffi_cuda
except ImportError:
    _jax_ffi_cuda = None
else:
    for _name, _capsule in _jax_ffi_cuda.registrations().items():
        jax.ffi.register_ffi_target(_name, _capsule, platform="CUDA")


# ============================================================================ helpers
def _concrete(x):
    """x as a NumPy array when it is a concrete value, None when it is traced (inside jit)."""
    try:
        return np.asarray(x)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


def _float(x, name, ndim=None, dtype=None):
    x = jnp.asarray(x)
    if dtype is None:
        if x.dtype not in (jnp.float32, jnp.float64):
            raise TypeError(f"{name}: expected a float32 or float64 array, got dtype {x.dtype}")
    elif x.dtype != dtype:
        if not (jnp.issubdtype(x.dtype, jnp.floating) or jnp.issubdtype(x.dtype, jnp.integer)):
            raise TypeError(f"{name}: expected a float array of dtype {np.dtype(dtype).name}, got {x.dtype}")
        if jnp.issubdtype(x.dtype, jnp.floating):
            raise TypeError(f"{name}: dtype {x.dtype} differs from {np.dtype(dtype).name} (cast it first)")
        x = x.astype(dtype)
    if ndim is not None and x.ndim not in ((ndim,) if isinstance(ndim, int) else ndim):
        raise ValueError(f"{name}: expected {ndim} dimensions, got shape {tuple(x.shape)}")
    return x


def _shape(x, name, shape):
    if tuple(x.shape) != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {tuple(x.shape)}")


def _per_batch(x, name, B, dtype, lo=None, hi=None, lo_closed=True, hi_closed=True):
    """A scalar or one value per batch item -> (B,) of dtype; range-checked when concrete."""
    a = jnp.asarray(x, dtype=dtype) if not hasattr(x, "dtype") or jnp.issubdtype(x.dtype, jnp.number) else x
    if a.ndim > 1 or (a.ndim == 1 and a.shape[0] != B):
        raise ValueError(f"{name}: expected a scalar or shape ({B},), got {tuple(a.shape)}")
    c = _concrete(a)
    if c is not None:
        bad = ~np.isfinite(c)
        if lo is not None:
            bad |= (c < lo) if lo_closed else (c <= lo)
        if hi is not None:
            bad |= (c > hi) if hi_closed else (c >= hi)
        if bad.any():
            lb, hb = "[("[not lo_closed], "])"[not hi_closed]
            raise ValueError(f"{name}: must lie in {lb}{lo}, {hi}{hb}, got {c[bad].flat[0]!r}")
    return jnp.broadcast_to(a.astype(dtype), (B,))


def _flag(x, name, shape, time_axis):
    """A bool / numeric flag array -> uint8 0/1 (nonzero = true), time-major."""
    if x is None:
        return None
    a = jnp.asarray(x)
    if not (a.dtype == jnp.bool_ or jnp.issubdtype(a.dtype, jnp.number)):
        raise TypeError(f"{name}: expected a bool or numeric array, got dtype {a.dtype}")
    if time_axis == 1:
        _shape(a, name, shape[::-1])
        a = a.T
    _shape(a, name, shape)
    return (a != 0).astype(jnp.uint8)


def _empty(dtype):
    return jnp.zeros((0,), dtype)  # "absent" for an optional FFI operand


def _int_dtype():
    return jnp.int64 if jax.config.jax_enable_x64 else jnp.int32


# ---------------------------------------------------------------------------- vmap folding
# A kernel operand's batch axis: 0 (batch-first), 1 (time-major (T, B)), "0|1" (batch axis 0 of
# extent B or 1, broadcast by the kernel: masks) or None (no batch axis, e.g. a per-channel
# temperature). The vmapped axis N is folded into the batch axis (N*B items in one call);
# a vmapped operand without a batch axis makes the call fall back to jax.lax.map.
def _fold(x, axis, batched, n):
    if x is None or axis is None:  # (a vmapped operand without a batch axis never gets here)
        return x
    if axis == "0|1":
        if not batched and x.shape[0] == 1:
            return x
        axis = 0
    if not batched:
        x = jnp.broadcast_to(x, (n,) + x.shape)
    if axis == 1:
        x = jnp.moveaxis(x, 0, 1)
        return x.reshape((x.shape[0], n * x.shape[2]) + x.shape[3:])
    return x.reshape((n * x.shape[1],) + x.shape[2:])


def _unfold(y, axis, n):
    if y is None:
        return None
    if axis == 1:
        return jnp.moveaxis(y.reshape((y.shape[0], n, y.shape[1] // n) + y.shape[2:]), 1, 0)
    return y.reshape((n, y.shape[0] // n) + y.shape[1:])


def _batch_first(call, in_axes, out_axes):
    """``call`` (operands -> tuple of results) with a vmap rule folding the vmapped axis into the
    kernel's batch axis (axes as above). Returns the custom_vmap-wrapped function."""
    f = jax.custom_batching.custom_vmap(call)

    @f.def_vmap
    def rule(n, in_batched, *args):
        if any(b and ax is None for b, ax in zip(in_batched, in_axes)):
            # an operand without a batch axis varies: one call per vmapped element
            ins = [
                None if a is None else (a if b else jnp.broadcast_to(a, (n,) + a.shape))
                for a, b in zip(args, in_batched)
            ]
            out = jax.lax.map(lambda xs: f(*xs), ins)
        else:
            out = f(*[_fold(a, ax, b, n) for a, ax, b in zip(args, in_axes, in_batched)])
            out = tuple(_unfold(y, ax, n) for y, ax in zip(out, out_axes))
        return out, tuple(None if y is None else True for y in out)

    return f


def _not_differentiable(name, f):
    g = jax.custom_jvp(f)

    @g.defjvp
    def _jvp(primals, tangents):
        raise TypeError(
            f"pygenmod.jax.{name} is not differentiable; apply jax.lax.stop_gradient to its inputs "
            "(targets and advantages are constants of the loss)"
        )

    return g


# ============================================================================ GAE
@functools.lru_cache(maxsize=None)
def _gae_op(want_returns: bool):
    def call(r, v, nv, boot, te, tr, mk, g, l):
        dt = r.dtype
        ops = [r, v, nv, boot, te, tr, mk, g, l]
        ops = [(_empty(jnp.uint8 if i in (4, 5, 6) else dt) if a is None else a) for i, a in enumerate(ops)]
        shapes = (
            jax.ShapeDtypeStruct(r.shape, dt),
            jax.ShapeDtypeStruct(r.shape if want_returns else (0,), dt),
            jax.ShapeDtypeStruct((1,), jnp.uint8),
        )
        adv, ret, _status = jax.ffi.ffi_call("pygenmod_gae", shapes, vmap_method="sequential")(*ops)
        return adv, (ret if want_returns else None)

    return _not_differentiable("gae", _batch_first(call, (1, 1, 1, 0, 1, 1, 1, 0, 0), (1, 1)))


def gae(
    rewards,
    values,
    *,
    gamma=0.99,
    lam=0.95,
    terminated=None,
    truncated=None,
    next_values=None,
    bootstrap_value=None,
    mask=None,
    time_axis: int = 0,
    compute_returns: bool = True,
) -> GAE:
    """:func:`pygenmod.returns.gae` for JAX arrays, usable inside ``jit`` / ``vmap`` (not ``grad``).

    Same arguments and results (time-major (T, B) unless ``time_axis=1``); NaN/inf inputs are
    not reported (the NumPy API raises ValueError) but propagate into the results.
    """
    if time_axis not in (0, 1):
        raise ValueError(f"time_axis: expected 0 (time-major) or 1 (batch-major), got {time_axis!r}")
    r = _float(rewards, "rewards", ndim=2)
    if time_axis == 1:
        r = r.T
    Tn, B = r.shape
    if B == 0:
        raise ValueError("rewards: empty batch (B = 0)")

    def arr(x, name):
        if x is None:
            return None
        a = _float(x, name, ndim=2, dtype=r.dtype)
        a = a.T if time_axis == 1 else a
        _shape(a, name, (Tn, B))
        return a

    v = arr(values, "values")
    if v is None:
        raise ValueError("values: required")
    nv = arr(next_values, "next_values")
    te, tr, mk = (
        _flag(f, n, (Tn, B), time_axis)
        for f, n in ((terminated, "terminated"), (truncated, "truncated"), (mask, "mask"))
    )
    if tr is not None and nv is None:
        raise ValueError(
            "next_values: required when truncated is given (the value of the observation "
            "at which the episode was cut, before the reset)"
        )
    boot = None
    if bootstrap_value is not None:
        boot = _float(bootstrap_value, "bootstrap_value", ndim=(0, 1), dtype=r.dtype)
        boot = jnp.broadcast_to(boot, (B,))
    g = _per_batch(gamma, "gamma", B, r.dtype, lo=0.0, hi=1.0)
    lm = _per_batch(lam, "lam", B, r.dtype, lo=0.0, hi=1.0)
    if Tn == 0:
        adv = ret = jnp.zeros((0, B), r.dtype)
    else:
        adv, ret = _gae_op(bool(compute_returns))(r, v, nv, boot, te, tr, mk, g, lm)
    if not compute_returns:
        ret = None
    if time_axis == 1:
        adv, ret = adv.T, (None if ret is None else ret.T)
    return GAE(adv, ret)


def lambda_returns(
    rewards,
    values,
    *,
    gamma=0.99,
    lam=0.95,
    terminated=None,
    truncated=None,
    next_values=None,
    bootstrap_value=None,
    mask=None,
    time_axis: int = 0,
):
    """TD(lambda) returns ``A + V`` (:func:`pygenmod.returns.lambda_returns`); (T, B)."""
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


# ============================================================================ Bellman backup
_KIND = {"optimal": 0, "policy": 1, "stochastic": 2, "soft": 3}


@functools.lru_cache(maxsize=None)
def _backup_op(kind: int):
    def call(P, R, V, g, det, stoch, tau):
        B, S, A = R.shape
        dt = P.dtype
        ops = [
            P,
            R,
            V,
            g,
            _empty(_int_dtype()) if det is None else det,
            _empty(dt) if stoch is None else stoch,
            _empty(dt) if tau is None else tau,
        ]
        shapes = (
            jax.ShapeDtypeStruct((B, S, A), dt),
            jax.ShapeDtypeStruct((B, S), dt),
            jax.ShapeDtypeStruct((B, S), _int_dtype()),
        )
        return tuple(
            jax.ffi.ffi_call("pygenmod_backup_dense", shapes, vmap_method="sequential")(*ops, kind=np.int64(kind))
        )

    return _not_differentiable("bellman_backup", _batch_first(call, (0,) * 7, (0, 0, 0)))


def bellman_backup(P, R, V, gamma, *, policy=None, temperature=None) -> Backup:
    """:func:`pygenmod.mdp.bellman_backup` for JAX arrays (dense P), inside ``jit`` / ``vmap``.

    P (B, S, A, S) or (S, A, S) for one MDP; R (B, S, A) expected rewards; V (B, S); gamma a
    scalar or (B,) in [0, 1); ``policy`` int actions (B, S) or probabilities (B, S, A);
    ``temperature`` (> 0) for the soft backup. Returns :class:`pygenmod.mdp.Backup`
    (Q, V, greedy policy; the policy is int64 with ``jax_enable_x64``, else int32). Rows of P
    are not checked here (use :func:`pygenmod.mdp.bellman_backup` once to check a model).
    """
    P = _float(P, "P", ndim=(3, 4))
    single = P.ndim == 3
    if single:
        P = P[None]
    B, S, A, S2 = P.shape
    if S2 != S:
        raise ValueError(f"P: expected shape (B, S, A, S), got {tuple(P.shape)}")
    lead = () if single else (B,)
    R = _float(R, "R", dtype=P.dtype)
    _shape(R, "R", lead + (S, A))
    V = _float(V, "V", dtype=P.dtype)
    _shape(V, "V", lead + (S,))
    R, V = R.reshape(B, S, A), V.reshape(B, S)
    g = _per_batch(gamma, "gamma", B, P.dtype, lo=0.0, hi=1.0, hi_closed=False)
    det = stoch = tau = None
    kind = "optimal"
    if policy is not None and temperature is not None:
        raise ValueError("policy and temperature: give at most one")
    if policy is not None:
        p = jnp.asarray(policy)
        if jnp.issubdtype(p.dtype, jnp.integer):
            _shape(p, "policy", lead + (S,))
            c = _concrete(p)
            if c is not None and c.size and (c.min() < 0 or c.max() >= A):
                raise ValueError(f"policy: actions must lie in [0, {A})")
            det, kind = p.reshape(B, S).astype(_int_dtype()), "policy"
        else:
            p = _float(p, "policy", dtype=P.dtype)
            _shape(p, "policy", lead + (S, A))
            stoch, kind = p.reshape(B, S, A), "stochastic"
    if temperature is not None:
        tau, kind = _per_batch(temperature, "temperature", B, P.dtype, lo=0.0, lo_closed=False), "soft"
    Q, Vo, pi = _backup_op(_KIND[kind])(P, R, V, g, det, stoch, tau)
    if single:
        Q, Vo, pi = Q[0], Vo[0], pi[0]
    return Backup(Q, Vo, pi)


def value_iteration(P, R, gamma, *, tol: float = 1e-8, max_iter: int = 10_000, V0=None):
    """Value iteration ``V <- T V`` as a ``jax.lax.while_loop`` over the backup kernel, until
    ``max|T V - V| < tol`` for every MDP of the batch (or ``max_iter`` sweeps).

    Returns ``(V, policy, Q, iterations)``. Unlike :func:`pygenmod.mdp.value_iteration` (one
    compiled loop with per-MDP stopping, span rule and action elimination) every MDP sweeps
    until the slowest has converged, and ``tol`` is a raw sup-norm threshold; the result agrees
    with it to the tolerance, not bitwise.
    """
    P = _float(P, "P", ndim=(3, 4))
    single = P.ndim == 3
    Pb = P[None] if single else P
    B, S, A, _ = Pb.shape
    Rb = _float(R, "R", dtype=P.dtype).reshape(B, S, A)
    V = jnp.zeros((B, S), P.dtype) if V0 is None else _float(V0, "V0", dtype=P.dtype).reshape(B, S)
    g = _per_batch(gamma, "gamma", B, P.dtype, lo=0.0, hi=1.0, hi_closed=False)
    op = _backup_op(0)
    tol = jnp.asarray(tol, P.dtype)

    def cond(state):
        it, _, diff, _, _ = state
        return (it < max_iter) & (diff >= tol)

    def body(state):
        it, V, _, _, _ = state
        Q, Vn, pi = op(Pb, Rb, V, g, None, None, None)
        return it + 1, Vn, jnp.max(jnp.abs(Vn - V)), Q, pi

    init = (
        jnp.asarray(0, _int_dtype()),
        V,
        jnp.asarray(jnp.inf, P.dtype),
        jnp.zeros((B, S, A), P.dtype),
        jnp.zeros((B, S), _int_dtype()),
    )
    it, V, _, Q, pi = jax.lax.while_loop(cond, body, init)
    if single:
        V, pi, Q = V[0], pi[0], Q[0]
    return V, pi, Q, it


# ============================================================================ spatial softmax
class _SpatialConfig(NamedTuple):
    channels_last: bool
    grid: tuple  # x0, dx, y0, dy
    swap: bool
    want_cov: bool
    scalar_temp: bool


def _grid(n: int, coords: str):
    if coords == "pixel":
        return 0.0, 1.0
    return (-1.0, 2.0 / (n - 1)) if n > 1 else (0.0, 0.0)


def _attrs(cfg):
    x0, dx, y0, dy = cfg.grid
    return dict(
        channels_last=cfg.channels_last, x0=np.float64(x0), dx=np.float64(dx), y0=np.float64(y0), dy=np.float64(dy)
    )


@functools.lru_cache(maxsize=None)
def _spatial_fwd_op(cfg: _SpatialConfig):
    def call(x, inv, mask):
        B, C = x.shape[0], (x.shape[3] if cfg.channels_last else x.shape[1])
        dt = x.dtype
        shapes = (
            jax.ShapeDtypeStruct((B, C, 2), dt),
            jax.ShapeDtypeStruct((B, C, 2, 2) if cfg.want_cov else (0,), dt),
            jax.ShapeDtypeStruct((B, C, 2), dt),
        )
        kp, cov, stats = jax.ffi.ffi_call("pygenmod_spatial_fwd", shapes, vmap_method="sequential")(
            x, inv, _empty(jnp.uint8) if mask is None else mask, **_attrs(cfg)
        )
        return kp, (cov if cfg.want_cov else None), stats

    return _batch_first(call, (0, None, "0|1"), (0, 0, 0))


@functools.lru_cache(maxsize=None)
def _spatial_bwd_op(cfg: _SpatialConfig):
    def call(x, inv, mask, stats, kp, cov, g_kp, g_cov):
        B, C = kp.shape[:2]
        dt = x.dtype
        shapes = (jax.ShapeDtypeStruct(x.shape, dt), jax.ShapeDtypeStruct((B, C), dt))
        e = _empty(dt)
        gx, g_temp = jax.ffi.ffi_call("pygenmod_spatial_bwd", shapes, vmap_method="sequential")(
            x,
            inv,
            _empty(jnp.uint8) if mask is None else mask,
            stats,
            kp,
            e if cov is None else cov,
            g_kp,
            e if g_cov is None else g_cov,
            **_attrs(cfg),
        )
        return gx, g_temp

    return _batch_first(call, (0, None, "0|1", 0, 0, 0, 0, 0), (0, 0))


def _to_order(kp, cov, swap):
    if not swap:
        return kp, cov
    return kp[..., ::-1], (None if cov is None else cov[..., ::-1, ::-1])


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _spatial(cfg, x, temperature, mask):
    kp, cov, _ = _spatial_fwd_op(cfg)(x, _inv(temperature, x, cfg), mask)
    return _to_order(kp, cov, cfg.swap)


def _inv(temperature, x, cfg):
    C = x.shape[3] if cfg.channels_last else x.shape[1]
    return jnp.broadcast_to(1.0 / temperature, (C,)).astype(x.dtype)


def _spatial_fwd(cfg, x, temperature, mask):
    inv = _inv(temperature, x, cfg)
    kp, cov, stats = _spatial_fwd_op(cfg)(x, inv, mask)
    return _to_order(kp, cov, cfg.swap), (x, inv, mask, stats, kp, cov, temperature)


def _spatial_bwd(cfg, res, grads):
    x, inv, mask, stats, kp, cov, temperature = res
    g_kp, g_cov = grads
    if cfg.swap:
        g_kp = g_kp[..., ::-1]
        g_cov = None if g_cov is None else g_cov[..., ::-1, ::-1]
    if cov is None:
        g_cov = None
    gx, g_temp = _spatial_bwd_op(cfg)(x, inv, mask, stats, kp, cov, g_kp, g_cov)
    g_t = g_temp.sum(axis=0)
    g_t = (g_t.sum() if cfg.scalar_temp else g_t).astype(jnp.result_type(temperature))
    g_mask = None if mask is None else np.zeros(mask.shape, jax.dtypes.float0)
    return gx, g_t, g_mask


_spatial.defvjp(_spatial_fwd, _spatial_bwd)


def _mask(mask, B, C, H, W, channels_last):
    m = jnp.asarray(mask)
    if not (m.dtype == jnp.bool_ or jnp.issubdtype(m.dtype, jnp.number)):
        raise TypeError(f"mask: expected a bool or 0/1 array, got dtype {m.dtype}")
    m = m != 0
    if m.ndim == 2:
        _shape(m, "mask", (H, W))
        m = m.reshape(1, 1, H * W)
    elif m.ndim == 3:
        if m.shape[0] not in (1, B) or m.shape[1:] != (H, W):
            raise ValueError(f"mask: expected shape ({B}, {H}, {W}) (or (1, {H}, {W})), got {m.shape}")
        m = m.reshape(m.shape[0], 1, H * W)
    elif m.ndim == 4:
        if channels_last and m.shape[1:3] == (H, W):
            m = jnp.moveaxis(m, 3, 1)
        if not (m.shape[0] in (1, B) and m.shape[1] in (1, C) and m.shape[2:] == (H, W)):
            raise ValueError(f"mask: expected x's shape with B and C axes of x's extent or 1, got {m.shape}")
        m = m.reshape(m.shape[0], m.shape[1], H * W)
    else:
        raise ValueError(f"mask: expected 2, 3 or 4 dimensions, got shape {m.shape}")
    c = _concrete(m)
    if c is not None and c.size and not c.any(axis=-1).all():
        raise ValueError("mask: every map needs at least one valid pixel")
    return m.astype(jnp.uint8)


def spatial_softmax(x, temperature=1.0, *, layout="NCHW", coords="normalized", order="xy", mask=None, return_cov=False):
    """:func:`pygenmod.spatial.spatial_softmax` for JAX arrays: keypoints (B, C, 2) (and the
    covariance (B, C, 2, 2) with ``return_cov``), inside ``jit`` / ``vmap`` / ``grad``.

    Differentiable in ``x`` and ``temperature`` (a ``jax.custom_vjp`` calling the fused backward
    kernel). float32 / float64 input; ``return_maps`` is not offered here. NaN/+inf input is
    not reported (the NumPy API raises ValueError); it propagates into the keypoints.
    """
    if layout not in ("NCHW", "NHWC"):
        raise ValueError(f"layout: expected one of ('NCHW', 'NHWC'), got {layout!r}")
    if coords not in ("normalized", "pixel"):
        raise ValueError(f"coords: expected one of ('normalized', 'pixel'), got {coords!r}")
    if order not in ("xy", "yx"):
        raise ValueError(f"order: expected one of ('xy', 'yx'), got {order!r}")
    x = _float(x, "x", ndim=4)
    cl = layout == "NHWC"
    B, H, W, C = x.shape if cl else (x.shape[0], x.shape[2], x.shape[3], x.shape[1])
    if H < 1 or W < 1:
        raise ValueError(f"x: maps must have at least one pixel, got H={H}, W={W}")
    t = jnp.asarray(temperature)
    if not jnp.issubdtype(t.dtype, jnp.floating):
        t = t.astype(x.dtype)
    _per_batch(t, "temperature", C, x.dtype, lo=0.0, lo_closed=False)  # shape / range check
    m = None if mask is None else _mask(mask, B, C, H, W, cl)
    cfg = _SpatialConfig(cl, _grid(W, coords) + _grid(H, coords), order == "yx", bool(return_cov), t.ndim == 0)
    kp, cov = _spatial(cfg, x, t, m)
    return (kp, cov) if return_cov else kp


# ============================================================================ diagonal Gaussian head, KL
class _HeadConfig(NamedTuple):
    kind: int
    lo: float
    hi: float
    stream: int
    offset: int
    S: int
    want_logq: bool


def _key_words(seed, name="seed"):
    """The Philox key of a draw as a uint32[2] operand (high word first, as pygenmod._seed maps
    JAX keys): an integer seed, a typed JAX key or a raw uint32[2] key array (may be traced)."""
    if seed is None:
        raise TypeError(
            f"{name}: pygenmod.jax needs an explicit seed (a JAX PRNG key or an integer): inside jit a "
            "default key would be drawn once, when tracing, and repeat on every call"
        )
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        k = check_int_seed(seed, name)
        return jnp.asarray(np.array([k >> 32, k & 0xFFFFFFFF], np.uint32))
    a = seed
    if hasattr(a, "dtype") and jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
        a = jax.random.key_data(a)
    a = jnp.asarray(a)
    check_key_words(a.dtype, a.shape, name)
    return a


def _scale_arg(logvar, log_std, std):
    given = [(n, v) for n, v in (("logvar", logvar), ("log_std", log_std), ("std", std)) if v is not None]
    if len(given) != 1:
        raise TypeError("give exactly one of logvar, log_std or std")
    return given[0]


def _rows(mu, p, pname):
    m = _float(mu, "mu", ndim=(1, 2))
    one = m.ndim == 1
    m = m.reshape(1, -1) if one else m
    q = _float(p, pname, dtype=m.dtype)
    _shape(q, pname, m.shape[1:] if one else m.shape)
    return m, q.reshape(m.shape), one


def _head_call(cfg, mu, p, key):
    B, D = mu.shape
    dt = mu.dtype
    shapes = (
        jax.ShapeDtypeStruct((cfg.S, B, D), dt),
        jax.ShapeDtypeStruct((B,), dt),
        jax.ShapeDtypeStruct((cfg.S, B) if cfg.want_logq else (0,), dt),
        jax.ShapeDtypeStruct((B,), jnp.int32),
    )
    # vmap: "sequential" -- the noise of row b depends on the row index, so folding a vmapped
    # axis into B would change it; each vmapped element is its own call.
    z, kl, lq, _ = jax.ffi.ffi_call("pygenmod_normal_head", shapes, vmap_method="sequential")(
        mu, p, _empty(dt), key, **_head_attrs(cfg)
    )
    return z, kl, (lq if cfg.want_logq else None)


def _head_attrs(cfg):
    return dict(
        kind=np.int64(cfg.kind),
        lo=np.float64(cfg.lo),
        hi=np.float64(cfg.hi),
        stream=np.uint64(cfg.stream),
        offset=np.uint64(cfg.offset),
        n_samples=np.int64(cfg.S),
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _head(cfg, mu, p, key):
    return _head_call(cfg, mu, p, key)


def _head_fwd(cfg, mu, p, key):
    return _head_call(cfg, mu, p, key), (mu, p, key)


def _head_bwd(cfg, res, grads):
    mu, p, key = res
    gz, gkl, glq = grads
    dt = mu.dtype
    shapes = (jax.ShapeDtypeStruct(mu.shape, dt), jax.ShapeDtypeStruct(mu.shape, dt))
    dmu, dp = jax.ffi.ffi_call("pygenmod_normal_head_bwd", shapes, vmap_method="sequential")(
        mu, p, _empty(dt), key, gz, gkl, _empty(dt) if glq is None else glq, **_head_attrs(cfg)
    )
    return dmu, dp, np.zeros(key.shape, jax.dtypes.float0)


_head.defvjp(_head_fwd, _head_bwd)


def _clamp(clamp):
    if clamp is None:
        return -math.inf, math.inf
    lo, hi = (float(c) if c is not None else None for c in clamp)
    lo = -math.inf if lo is None else lo
    hi = math.inf if hi is None else hi
    if math.isnan(lo) or math.isnan(hi) or lo > hi:
        raise ValueError(f"clamp: expected lo <= hi, got {clamp!r}")
    return lo, hi


def normal_head(
    mu, logvar=None, *, log_std=None, std=None, seed=None, n_samples=None, stream=0, offset=0, clamp=None, log_q=False
) -> Head:
    """:func:`pygenmod.sampling.normal_head` for JAX arrays, inside ``jit`` / ``vmap`` / ``grad``:
    ``z = mu + sigma * eps`` on pygenmod's Philox noise, ``KL(q || N(0, I))`` per row and, with
    ``log_q``, ``log q(z)`` per sample; differentiable in ``mu`` and the scale (a
    ``jax.custom_vjp`` calling the fused backward kernel, which regenerates the noise).

    ``seed`` is required: a JAX PRNG key (typed, or a raw uint32[2]; may be traced) or an
    integer; the same key gives the same noise as the NumPy API. ``eps=`` / ``return_eps`` /
    ``out=`` and half precision are not offered here. Returns :class:`pygenmod.sampling.Head`
    (``eps`` None).
    """
    pname, p = _scale_arg(logvar, log_std, std)
    m, q, one = _rows(mu, p, pname)
    multi = n_samples is not None
    S = 1 if not multi else int(n_samples)
    if S < 0:
        raise ValueError(f"n_samples: must be >= 0, got {n_samples}")
    lo, hi = _clamp(clamp)
    cfg = _HeadConfig(
        _KINDS_SCALE[pname], lo, hi, check_int_seed(stream, "stream"), check_int_seed(offset, "offset"), S, bool(log_q)
    )
    z, kl, lq = _head(cfg, m, q, _key_words(seed))
    if not multi:
        z, lq = z[0], (None if lq is None else lq[0])
    if one:
        z, kl = (z[:, 0] if multi else z[0]), kl[0]
        lq = None if lq is None else (lq[:, 0] if multi else lq[0])
    return Head(z, kl, lq, None)


def rsample_normal(
    mu, logvar=None, *, log_std=None, std=None, seed=None, n_samples=None, stream=0, offset=0, clamp=None
):
    """Reparameterized sample ``z = mu + sigma * eps`` (:func:`pygenmod.sampling.rsample_normal`),
    differentiable; ``seed`` as in :func:`normal_head`."""
    return normal_head(
        mu, logvar, log_std=log_std, std=std, seed=seed, n_samples=n_samples, stream=stream, offset=offset, clamp=clamp
    ).z


_KINDS_SCALE = {"logvar": 0, "log_std": 1, "std": 2}


class _KlConfig(NamedTuple):
    kind: int
    lo: float
    hi: float


def _kl_call(cfg, mu, p, pm, pp):
    B = mu.shape[0]
    dt = mu.dtype
    e = _empty(dt)
    kl, _ = jax.ffi.ffi_call(
        "pygenmod_kl_normal",
        (jax.ShapeDtypeStruct((B,), dt), jax.ShapeDtypeStruct((B,), jnp.int32)),
        vmap_method="sequential",
    )(
        mu,
        p,
        e if pm is None else pm,
        e if pp is None else pp,
        kind=np.int64(cfg.kind),
        lo=np.float64(cfg.lo),
        hi=np.float64(cfg.hi),
    )
    return kl


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _kl(cfg, mu, p, pm, pp):
    return _kl_op(cfg)(mu, p, pm, pp)[0]


@functools.lru_cache(maxsize=None)
def _kl_op(cfg):
    return _batch_first(lambda mu, p, pm, pp: (_kl_call(cfg, mu, p, pm, pp),), (0, 0, 0, 0), (0,))


@functools.lru_cache(maxsize=None)
def _kl_bwd_op(cfg, has_pm, has_pp):
    def call(mu, p, pm, pp, g):
        dt = mu.dtype
        shapes = (
            jax.ShapeDtypeStruct(mu.shape, dt),
            jax.ShapeDtypeStruct(mu.shape, dt),
            jax.ShapeDtypeStruct(mu.shape if has_pm else (0,), dt),
            jax.ShapeDtypeStruct(mu.shape if has_pp else (0,), dt),
        )
        e = _empty(dt)
        dmu, dp, dpm, dpp = jax.ffi.ffi_call("pygenmod_kl_normal_bwd", shapes, vmap_method="sequential")(
            mu,
            p,
            e if pm is None else pm,
            e if pp is None else pp,
            g,
            kind=np.int64(cfg.kind),
            lo=np.float64(cfg.lo),
            hi=np.float64(cfg.hi),
        )
        return dmu, dp, (dpm if has_pm else None), (dpp if has_pp else None)

    return _batch_first(call, (0, 0, 0, 0, 0), (0, 0, 0, 0))


def _kl_fwd(cfg, mu, p, pm, pp):
    return _kl(cfg, mu, p, pm, pp), (mu, p, pm, pp)


def _kl_bwd(cfg, res, g):
    mu, p, pm, pp = res
    return _kl_bwd_op(cfg, pm is not None, pp is not None)(mu, p, pm, pp, g)


_kl.defvjp(_kl_fwd, _kl_bwd)


def kl_normal(
    mu,
    logvar=None,
    prior_mu=None,
    prior_logvar=None,
    *,
    log_std=None,
    std=None,
    prior_log_std=None,
    prior_std=None,
    clamp=None,
):
    """``KL(N(mu, sigma^2) || N(prior_mu, prior_sigma^2))`` per row (:func:`pygenmod.sampling.kl_normal`),
    inside ``jit`` / ``vmap`` / ``grad`` (differentiable in every argument; a broadcast prior's
    gradient is summed back by JAX)."""
    pname, p = _scale_arg(logvar, log_std, std)
    m, q, one = _rows(mu, p, pname)
    given = [
        (n, v)
        for n, v in (("prior_logvar", prior_logvar), ("prior_log_std", prior_log_std), ("prior_std", prior_std))
        if v is not None
    ]
    if len(given) > 1:
        raise TypeError("give at most one of prior_logvar, prior_log_std, prior_std")
    if given and given[0][0] != "prior_" + pname:
        raise TypeError(f"the prior's scale must use the same parametrisation as {pname} ({'prior_' + pname})")

    def prior(x, name):
        if x is None:
            return None
        a = _float(x, name, dtype=m.dtype)
        try:
            return jnp.broadcast_to(a, m.shape)
        except ValueError:
            raise ValueError(f"{name}: shape {tuple(a.shape)} does not broadcast to {tuple(m.shape)}") from None

    pm = prior(prior_mu, "prior_mu")
    pp = prior(given[0][1], given[0][0]) if given else None
    kl = _kl(_KlConfig(_KINDS_SCALE[pname], *_clamp(clamp)), m, q, pm, pp)
    return kl[0] if one else kl


# ============================================================================ GMM E-step
# GMMParams as a pytree whose covariance_type (a string) is static aux data, so parameters can
# be arguments and results of jitted / vmapped functions.
jax.tree_util.register_pytree_node(
    GMMParams, lambda p: (tuple(p[:4]), p.covariance_type), lambda ct, leaves: GMMParams(*leaves, ct)
)
_COV_CODE = {"full": 0, "tied": 1, "diag": 2, "spherical": 3}


@functools.lru_cache(maxsize=None)
def _e_step_op(cov_type: str):
    def call(X, w, mu, pc):
        B, N, _ = X.shape
        K = w.shape[1]
        dt = X.dtype
        shapes = (
            jax.ShapeDtypeStruct((B, N, K), dt),
            jax.ShapeDtypeStruct((B, N, K), dt),
            jax.ShapeDtypeStruct((B, N), dt),
        )
        _, lr, ln = jax.ffi.ffi_call("pygenmod_gmm_e_step", shapes, vmap_method="sequential")(
            X, w, mu, pc, cov_type=np.int64(_COV_CODE[cov_type])
        )
        return lr, ln

    return _not_differentiable("gmm_e_step", _batch_first(call, (0, 0, 0, 0), (0, 0)))


def gmm_e_step(X, params, weights=None) -> EStep:
    """:func:`pygenmod.gmm.e_step` for JAX arrays, inside ``jit`` / ``vmap`` (not ``grad``).

    X (B, N, D) or (N, D); ``params`` a :class:`pygenmod.gmm.GMMParams` (its
    ``precisions_cholesky`` and ``covariance_type`` are used; ``covariance_type`` is static);
    ``weights`` (B, N) per-point weights (0 = padding). Returns :class:`pygenmod.gmm.EStep`
    (log_resp, log_prob_norm bitwise equal to the NumPy API; the lower bound is reduced by XLA,
    in float64 under x64, so it agrees to rounding). Parameters are not validated for values
    (positive weights, a valid Cholesky factor): validate them once with the NumPy API.
    """
    X3, W, p, single, ct, B, K, D = _gmm_inputs(X, params, weights)
    if p.precisions_cholesky is None:
        raise ValueError("params.precisions_cholesky: needed")
    lr, ln = _e_step_op(ct)(X3, p.weights, p.means, p.precisions_cholesky)
    acc = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    ws = W.astype(acc).sum(1)
    tot = (jnp.where(W > 0, ln, 0).astype(acc) * W).sum(1)
    lb = jnp.where(ws > 0, tot / jnp.where(ws > 0, ws, 1), -jnp.inf).astype(X.dtype)
    if single:
        return EStep(lr[0], ln[0], lb[0])
    return EStep(lr, ln, lb)


# ============================================================================ full-covariance head
class _MvnConfig(NamedTuple):
    stream: int
    offset: int
    S: int
    want_kl: bool
    want_logq: bool


def _mvn_attrs(cfg):
    return dict(stream=np.uint64(cfg.stream), offset=np.uint64(cfg.offset), n_samples=np.int64(cfg.S))


def _mvn_call(cfg, mu, L, key):
    B, D = mu.shape
    dt = mu.dtype
    shapes = (
        jax.ShapeDtypeStruct((cfg.S, B, D), dt),
        jax.ShapeDtypeStruct((B,) if cfg.want_kl else (0,), dt),
        jax.ShapeDtypeStruct((cfg.S, B) if cfg.want_logq else (0,), dt),
        jax.ShapeDtypeStruct((B,), jnp.int32),
    )
    z, kl, lq, _ = jax.ffi.ffi_call("pygenmod_mvn_head", shapes, vmap_method="sequential")(
        mu, L, key, **_mvn_attrs(cfg)
    )
    return z, (kl if cfg.want_kl else None), (lq if cfg.want_logq else None)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _mvn(cfg, mu, L, key):
    return _mvn_call(cfg, mu, L, key)


def _mvn_fwd(cfg, mu, L, key):
    return _mvn_call(cfg, mu, L, key), (mu, L, key)


def _mvn_bwd(cfg, res, grads):
    mu, L, key = res
    gz, gkl, glq = grads
    dt = mu.dtype
    e = _empty(dt)
    dmu, dL = jax.ffi.ffi_call(
        "pygenmod_mvn_head_bwd",
        (jax.ShapeDtypeStruct(mu.shape, dt), jax.ShapeDtypeStruct(L.shape, dt)),
        vmap_method="sequential",
    )(mu, L, key, gz, e if gkl is None else gkl, e if glq is None else glq, **_mvn_attrs(cfg))
    return dmu, dL, np.zeros(key.shape, jax.dtypes.float0)


_mvn.defvjp(_mvn_fwd, _mvn_bwd)


def mvn_head(mu, scale_tril, *, seed=None, n_samples=None, stream=0, offset=0, log_q=False, _want_kl=True) -> Head:
    """:func:`pygenmod.sampling.mvn_head` for JAX arrays, inside ``jit`` / ``vmap`` / ``grad``:
    ``z = mu + L eps``, ``KL(N(mu, L L^T) || N(0, I))`` per row and, with ``log_q``, ``log q(z)``;
    differentiable in ``mu`` and ``scale_tril`` (L per row (B, D, D) or shared (D, D); its
    gradient is lower triangular, summed over rows for a shared L). ``seed`` as in
    :func:`normal_head`. A concrete L is checked (lower triangular, positive diagonal); a
    traced one is not (a bad one gives NaN).
    """
    m = _float(mu, "mu", ndim=(1, 2))
    one = m.ndim == 1
    m = m.reshape(1, -1) if one else m
    B, D = m.shape
    L = _float(scale_tril, "scale_tril", ndim=(2, 3), dtype=m.dtype)
    shared = L.ndim == 2
    if L.shape[-2:] != (D, D) or (not shared and L.shape[0] not in ((1,) if one else (B,))):
        raise ValueError(f"scale_tril: expected shape ({D}, {D}) or ({B}, {D}, {D}), got {tuple(L.shape)}")
    c = _concrete(L)
    if c is not None and c.size:
        if np.triu(c, 1).any() or not (np.diagonal(c, axis1=-2, axis2=-1) > 0).all():
            raise ValueError(
                "scale_tril: not lower triangular with a positive diagonal "
                "(use pygenmod.sampling.scale_tril_from_cov for a covariance)"
            )
    L3 = L[None] if shared else L
    multi = n_samples is not None
    S = 1 if not multi else int(n_samples)
    if S < 0:
        raise ValueError(f"n_samples: must be >= 0, got {n_samples}")
    cfg = _MvnConfig(check_int_seed(stream, "stream"), check_int_seed(offset, "offset"), S, bool(_want_kl), bool(log_q))
    z, kl, lq = _mvn(cfg, m, L3, _key_words(seed))
    if not multi:
        z, lq = z[0], (None if lq is None else lq[0])
    if one:
        z = z[:, 0] if multi else z[0]
        kl = None if kl is None else kl[0]
        lq = None if lq is None else (lq[:, 0] if multi else lq[0])
    return Head(z, kl, lq, None)


def rsample_mvn(mu, scale_tril, *, seed=None, n_samples=None, stream=0, offset=0):
    """Reparameterized sample ``z = mu + L eps`` of ``N(mu, L L^T)``
    (:func:`pygenmod.sampling.rsample_mvn`), differentiable; see :func:`mvn_head`."""
    return mvn_head(mu, scale_tril, seed=seed, n_samples=n_samples, stream=stream, offset=offset, _want_kl=False).z


class GMMEMResult(NamedTuple):
    """Result of :func:`gmm_em` (:class:`pygenmod.gmm.FitResult` without the history)."""

    params: GMMParams
    lower_bound: object  #: (B,) at the last E-step
    n_iter: object  #: (B,) EM iterations run (int64 under x64, else int32)
    converged: object  #: (B,) bool
    flags: object  #: (B, K) uint8: COLLAPSED | REGULARISED | EMPTY_SET (pygenmod.gmm)


def _gmm_inputs(X, params, weights):
    """(X3, W, params batched, single, ct, B, K, D), checked for shapes."""
    if not isinstance(params, GMMParams):
        params = GMMParams(**params) if isinstance(params, dict) else GMMParams(*params)
    ct = params.covariance_type
    if ct not in _COV_CODE:
        raise ValueError(f"params.covariance_type: expected one of {tuple(_COV_CODE)}, got {ct!r}")
    X = _float(X, "X", ndim=(2, 3))
    single = X.ndim == 2
    X3 = X[None] if single else X
    B, N, D = X3.shape
    if D < 1:
        raise ValueError(f"X: need at least one dimension, got shape {tuple(X.shape)}")
    lead = () if single else (B,)
    w = _float(params.weights, "params.weights", dtype=X.dtype)
    K = w.shape[-1] if w.ndim else 0
    if K < 1:
        raise ValueError("params.weights: need at least one component")
    _shape(w, "params.weights", lead + (K,))
    mu = _float(params.means, "params.means", dtype=X.dtype)
    _shape(mu, "params.means", lead + (K, D))
    cs = {"full": (K, D, D), "tied": (D, D), "diag": (K, D), "spherical": (K,)}[ct]
    arrs = []
    for name in ("covariances", "precisions_cholesky"):
        a = getattr(params, name)
        if a is None:
            arrs.append(None)
            continue
        a = _float(a, f"params.{name}", dtype=X.dtype)
        _shape(a, f"params.{name}", lead + cs)
        arrs.append(a.reshape((B,) + cs))
    if weights is None:
        W = jnp.ones((B, N), X.dtype)
    else:
        W = _float(weights, "weights", dtype=X.dtype)
        _shape(W, "weights", (N,) if single else (B, N))
        c = _concrete(W)
        if c is not None and (c < 0).any():
            raise ValueError("weights: must be >= 0 (0 marks padding)")
        W = W.reshape(B, N)
    p = GMMParams(w.reshape(B, K), mu.reshape(B, K, D), arrs[0], arrs[1], ct)
    return X3, W, p, single, ct, B, K, D


@functools.lru_cache(maxsize=None)
def _fit_op(ct: str, max_iter: int, tol: float):
    def call(X, W, reg, w, mu, cv, pc, lb0):
        dt = X.dtype
        shapes = tuple(jax.ShapeDtypeStruct(a.shape, dt) for a in (w, mu, cv, pc, lb0)) + (
            jax.ShapeDtypeStruct(lb0.shape, _int_dtype()),
            jax.ShapeDtypeStruct(lb0.shape, jnp.uint8),
            jax.ShapeDtypeStruct(w.shape, jnp.uint8),
        )
        return tuple(
            jax.ffi.ffi_call("pygenmod_gmm_fit", shapes, vmap_method="sequential")(
                X,
                W,
                reg,
                w,
                mu,
                cv,
                pc,
                lb0,
                cov_type=np.int64(_COV_CODE[ct]),
                max_iter=np.int64(max_iter),
                tol=np.float64(tol),
            )
        )

    return _not_differentiable("gmm_em", _batch_first(call, (0,) * 8, (0,) * 8))


def gmm_em(
    X, params, weights=None, *, reg_covar=1e-6, max_iter: int = 100, tol: float = 1e-3, lower_bound_init=None
) -> GMMEMResult:
    """EM from the given initial parameters, the whole loop in one kernel call (the loop of
    :func:`pygenmod.gmm.fit` after its initialisation), inside ``jit`` / ``vmap`` (not ``grad``).

    ``params`` a full :class:`pygenmod.gmm.GMMParams` (covariances and their Cholesky
    precisions); per-set stopping when the lower bound improves by less than ``tol``. Bitwise
    equal to the NumPy API's fit loop from the same initial parameters (``gmm.em_step`` is
    ``max_iter=1``). Initialisation (k-means, k-means++) is not offered here: run
    :func:`pygenmod.gmm.fit` or draw initial parameters outside the compiled function.
    """
    X3, W, p, single, ct, B, K, D = _gmm_inputs(X, params, weights)
    if p.covariances is None or p.precisions_cholesky is None:
        raise ValueError("params: covariances and precisions_cholesky are both needed")
    max_iter = int(max_iter)
    if max_iter < 0:
        raise ValueError(f"max_iter: must be >= 0, got {max_iter}")
    reg = _per_batch(reg_covar, "reg_covar", B, X3.dtype, lo=0.0)
    lb0 = (
        jnp.full((B,), -jnp.inf, X3.dtype)
        if lower_bound_init is None
        else jnp.broadcast_to(_float(lower_bound_init, "lower_bound_init", dtype=X3.dtype), (B,))
    )
    w, mu, cv, pc, lb, it, conv, flags = _fit_op(ct, max_iter, float(tol))(X3, W, reg, *p[:4], lb0)
    out = GMMParams(w, mu, cv, pc, ct)
    if single:
        out = GMMParams(*(a[0] for a in out[:4]), ct)
        lb, it, conv, flags = lb[0], it[0], conv[0], flags[0]
    return GMMEMResult(out, lb, it, conv.astype(bool), flags)


def gmm_em_step(X, params, weights=None, *, reg_covar=1e-6):
    """One EM iteration (:func:`pygenmod.gmm.em_step`): ``(new GMMParams, lower_bound)``, the bound
    of X under the *input* parameters; inside ``jit`` / ``vmap`` (not ``grad``)."""
    r = gmm_em(X, params, weights, reg_covar=reg_covar, max_iter=1, tol=-1.0)
    return r.params, r.lower_bound


# ============================================================================ MCTS (tabular)
class PolicyOutput(NamedTuple):
    """:class:`pygenmod.mcts.PolicyOutput` without the tree (the tree stays inside the kernel)."""

    action: object  #: [B] int64 (int32 without jax x64), the action to play
    action_weights: object  #: [B, A], the policy target
    visit_counts: object  #: [B, A] int32, visits of the root's children
    value: object  #: [B], the root's search value


def _mcts_model(model):
    """A :class:`pygenmod.mcts.TabularModel` (validated when built) as JAX arrays."""
    from . import mcts as _m

    if not isinstance(model, _m.TabularModel):
        raise TypeError(
            "recurrent_fn: pygenmod.jax searches a pygenmod.mcts.TabularModel only (build it with "
            "pygenmod.mcts.tabular_model); callbacks are not supported inside jit"
        )
    dt = np.dtype(np.asarray(model.logits).dtype)
    if dt == np.float64 and not jax.config.jax_enable_x64:
        raise TypeError("recurrent_fn: a float64 model needs jax_enable_x64 (or build the model in float32)")
    if model.cdf is not None and not jax.config.jax_enable_x64:  # the float64 transition CDF
        raise TypeError("recurrent_fn: a stochastic tabular model needs jax_enable_x64")
    f = lambda a: jnp.asarray(np.asarray(a), dt)  # noqa: E731
    u8 = lambda a: jnp.asarray(np.asarray(a), jnp.uint8)  # noqa: E731
    return (
        jnp.asarray(np.asarray(model.next_state), _int_dtype()),
        f(model.reward),
        f(model.discount),
        f(model.logits),
        f(model.prior),
        f(model.value),
        u8(model.invalid),
        _empty(jnp.float32) if model.cdf is None else jnp.asarray(np.asarray(model.cdf), jnp.float64),
    ), dt


@functools.lru_cache(maxsize=None)
def _mcts_search_op(params: tuple, sims: int, stream: int):
    def call(lg, pr, inv, v, st, g, table, *rest):
        B, A = lg.shape
        shapes = (
            jax.ShapeDtypeStruct((B, A), jnp.int32),
            jax.ShapeDtypeStruct((B, A), lg.dtype),
            jax.ShapeDtypeStruct((B,), lg.dtype),
            jax.ShapeDtypeStruct((B, A), lg.dtype),
        )
        return jax.ffi.ffi_call("pygenmod_mcts_search_tabular", shapes, vmap_method="sequential")(
            lg,
            pr,
            inv,
            v,
            st,
            g,
            table,
            *rest,
            params=np.array(params, np.float64),
            num_simulations=np.int64(sims),
            capacity=np.int64(sims + 1),
            stream=np.uint64(stream),
        )

    return _batch_first(call, (0, 0, 0, 0, 0, 0) + (None,) * 10, (0, 0, 0, 0))


@functools.lru_cache(maxsize=None)
def _mcts_noise_op(kind: int, alpha: float, stream: int, B: int, A: int, dtype):
    def call(key):
        shape = jax.ShapeDtypeStruct((B, A), dtype)
        return jax.ffi.ffi_call("pygenmod_mcts_noise", shape, vmap_method="sequential")(
            key, kind=np.int64(kind), alpha=np.float64(alpha), stream=np.uint64(stream)
        )

    return call


@functools.lru_cache(maxsize=None)
def _mcts_sample_op(stream: int):
    def call(w, temp, key):
        shape = (jax.ShapeDtypeStruct((w.shape[0],), _int_dtype()),)
        return jax.ffi.ffi_call("pygenmod_mcts_sample", shape, vmap_method="sequential")(
            w, temp, key, stream=np.uint64(stream)
        )

    return _batch_first(call, (0, 0, None), (0,))


def _mcts_roots(root, model_ops, num_simulations, stream, invalid_actions, tree, chance_nodes):
    from . import _validate as val
    from .mcts import MAX_CAPACITY

    if tree is not None or chance_nodes:
        raise ValueError("tree / chance_nodes: not supported by pygenmod.jax (use pygenmod.mcts)")
    if invalid_actions is not None:
        raise ValueError("invalid_actions: not supported by pygenmod.jax yet (mark them invalid in the model)")
    sims = val.positive_int(num_simulations, "num_simulations", minimum=0, maximum=MAX_CAPACITY - 1)
    states = jnp.asarray(root)
    if states.ndim != 1 or not jnp.issubdtype(states.dtype, jnp.integer):
        raise ValueError(f"root: expected the [B] integer root states, got {states.dtype} {tuple(states.shape)}")
    S, A = model_ops[3].shape
    inv = model_ops[6]
    c = _concrete(states)
    if c is not None:
        if ((c < 0) | (c >= S)).any():
            raise ValueError(f"root: root states must lie in [0, {S})")
        if (np.asarray(inv)[c].all(-1)).any():
            raise ValueError("root: a root state is terminal (all actions are invalid)")
    B = int(states.shape[0])
    s = val.seed_int(stream, "stream")
    if (s + B) * max(A, 1) >= 2**56:
        raise ValueError(f"stream: (stream + batch size) * num_actions must be below 2**56, got stream={s}")
    return states.astype(_int_dtype()), sims, s, B, A


def _mcts_search(root_ops, g, model_ops, params, table, sims, stream, key):
    st, lg, pr, inv, v = root_ops
    op = _mcts_search_op(tuple(float(x) for x in params), sims, stream)
    return op(lg, pr, inv, v, st, g, jnp.asarray(table), *model_ops, key)


def muzero_policy(
    root,
    recurrent_fn,
    num_simulations: int,
    *,
    seed,
    invalid_actions=None,
    tree=None,
    dirichlet_fraction: float = 0.25,
    dirichlet_alpha: float = 0.3,
    pb_c_init: float = 1.25,
    pb_c_base: float = 19652.0,
    temperature=1.0,
    q_normalization: str = "node",
    max_depth: int | None = None,
    stream: int = 0,
    chance_nodes: bool = False,
) -> PolicyOutput:
    """:func:`pygenmod.mcts.muzero_policy` over a :class:`pygenmod.mcts.TabularModel`,
    inside ``jit`` / ``vmap`` (not ``grad``): the same search, noise and action kernels, so visit
    counts, values and actions equal it for the same seed and stream (the Dirichlet-noised root
    prior is computed in ``jnp`` and may differ in the last bits; docs/jax.md).

    root: the [B] root states. Supported: the Dirichlet noise, PUCT, temperature,
    q_normalization, max_depth and stream options; stochastic models (sampled transitions,
    no chance nodes; jax_enable_x64 for their float64 CDF). Not supported: callbacks,
    ``invalid_actions``, ``tree`` (continuing a search), ``chance_nodes``. Returns
    :class:`PolicyOutput` (no tree). vmap over root (and temperature) folds the vmapped axis
    into one search over ``N * B`` trees: vmapped element n's tree b draws as tree
    ``stream + n * B + b``; a vmapped seed makes one call per element.
    """
    from . import mcts as _m

    key = _key_words(seed)
    model_ops, dt = _mcts_model(recurrent_fn)
    st, sims, s, B, A = _mcts_roots(root, model_ops, num_simulations, stream, invalid_actions, tree, chance_nodes)
    frac = float(dirichlet_fraction)
    if not 0 <= frac <= 1:
        raise ValueError(f"dirichlet_fraction: must be in [0, 1], got {dirichlet_fraction}")
    if not float(dirichlet_alpha) > 0:
        raise ValueError(f"dirichlet_alpha: must be > 0, got {dirichlet_alpha}")
    temps = _per_batch(temperature, "temperature", B, dt, lo=0.0)
    params, table = _m._params(
        "muzero", pb_c_init=pb_c_init, pb_c_base=pb_c_base, q_normalization=q_normalization, max_depth=max_depth
    )
    cfg = ("muzero", frac, float(dirichlet_alpha), tuple(float(x) for x in params), sims, s, dt)
    out = _mcts_op(cfg)(st, temps, key, jnp.asarray(table), *model_ops)
    return PolicyOutput(*out)


def _muzero_impl(cfg, st, temps, key, table, *model_ops):
    _, frac, alpha, params, sims, s, dt = cfg
    _, _, _, mlg, mpr, mv, minv, _ = model_ops
    lg, pr, inv, v = mlg[st], mpr[st], minv[st], mv[st]
    B, A = lg.shape
    if frac > 0 and B:  # as pygenmod.mcts: logits of the noisy probabilities, then _normalise
        noise = _mcts_noise_op(0, alpha, s, B, A, dt)(key)
        probs = (1 - frac) * pr + frac * noise
        noisy = jnp.log(jnp.maximum(probs, np.finfo(dt).tiny)).astype(dt)
        bad = (inv != 0) | (noisy == -jnp.inf)
        m = jnp.max(jnp.where(bad, -jnp.inf, noisy), axis=-1, keepdims=True)
        m = jnp.where(jnp.isfinite(m), m, 0)
        lg = jnp.where(bad, -jnp.inf, noisy - m).astype(dt)
        e = jnp.where(bad, 0, jnp.exp(lg))
        z = e.sum(-1, keepdims=True)
        pr = jnp.where(z > 0, e / jnp.where(z > 0, z, 1), 0).astype(dt)
        inv = bad.astype(jnp.uint8)
    g = jnp.zeros((B, A), dt)
    counts, _q, value, weights = _mcts_search((st, lg, pr, inv, v), g, model_ops, params, table, sims, s, key)
    (action,) = _mcts_sample_op(s)(weights, temps, key)
    return action, weights, counts, value


@functools.lru_cache(maxsize=None)
def _mcts_op(cfg):
    """The policy as one batch-first call: vmap over the roots (and temperature / gumbel) folds
    into one search over N * B trees (tree b of the fold draws as tree stream + b)."""
    impl = _muzero_impl if cfg[0] == "muzero" else _gumbel_impl
    call = functools.partial(impl, cfg)
    return _not_differentiable(cfg[0] + "_policy", _batch_first(call, (0, 0, None) + (None,) * 9, (0, 0, 0, 0)))


def gumbel_muzero_policy(
    root,
    recurrent_fn,
    num_simulations: int,
    *,
    seed,
    invalid_actions=None,
    tree=None,
    max_num_considered_actions: int = 16,
    gumbel_scale: float = 1.0,
    gumbel=None,
    value_scale: float = 0.1,
    maxvisit_init: float = 50.0,
    rescale_values: bool = True,
    use_mixed_value: bool = True,
    max_depth: int | None = None,
    stream: int = 0,
    chance_nodes: bool = False,
) -> PolicyOutput:
    """:func:`pygenmod.mcts.gumbel_muzero_policy` over a
    :class:`pygenmod.mcts.TabularModel`, inside ``jit`` / ``vmap`` (not ``grad``). Supported and
    not supported options, root, vmap: as :func:`muzero_policy`. The search (visit counts,
    action) runs in the kernel; the completed-Q weights are computed in ``jnp`` (equal to the
    NumPy API's up to the last bits of exp)."""
    from . import mcts as _m

    key = _key_words(seed)
    model_ops, dt = _mcts_model(recurrent_fn)
    st, sims, s, B, A = _mcts_roots(root, model_ops, num_simulations, stream, invalid_actions, tree, chance_nodes)
    draw = gumbel is None
    if not draw:
        g = _float(gumbel, "gumbel", 2, dt)
        _shape(g, "gumbel", (B, A))
    else:
        scale = float(gumbel_scale)
        if not math.isfinite(scale):
            raise ValueError(f"gumbel_scale: must be finite, got {gumbel_scale}")
        g = jnp.zeros((B, A), dt)
    params, table = _m._params(
        "gumbel",
        max_num_considered_actions=max_num_considered_actions,
        num_simulations=max(sims, 1),
        max_depth=max_depth,
        num_actions=A,
        value_scale=value_scale,
        maxvisit_init=maxvisit_init,
        rescale_values=rescale_values,
        use_mixed_value=use_mixed_value,
    )
    q_cfg = (float(value_scale), float(maxvisit_init), bool(rescale_values), bool(use_mixed_value))
    cfg = ("gumbel", draw, float(gumbel_scale), tuple(float(x) for x in params), sims, s, dt, q_cfg)
    out = _mcts_op(cfg)(st, g, key, jnp.asarray(table), *model_ops)
    return PolicyOutput(*out)


def _gumbel_impl(cfg, st, g, key, table, *model_ops):
    _, draw, scale, params, sims, s, dt, (value_scale, maxvisit_init, rescale_values, use_mixed_value) = cfg
    _, _, _, mlg, mpr, mv, minv, _ = model_ops
    lg, pr, inv, v = mlg[st], mpr[st], minv[st], mv[st]
    B, A = lg.shape
    if draw and B:
        g = _mcts_noise_op(1, 0.0, s, B, A, dt)(key) * jnp.asarray(scale, dt)
    counts, q, value, _ = _mcts_search((st, lg, pr, inv, v), g, model_ops, params, table, sims, s, key)
    # pygenmod.mcts._completed_q_root
    visited = counts > 0
    prior = jnp.maximum(pr, np.finfo(dt).tiny)
    if use_mixed_value:
        sum_n = counts.sum(-1).astype(dt)
        sum_p = jnp.where(visited, prior, 0).sum(-1)
        wq = jnp.where(visited, prior * q / jnp.where(sum_p > 0, sum_p, 1)[:, None], 0).sum(-1)
        mixed = (v + sum_n * wq) / (sum_n + 1)
    else:
        mixed = v
    cq = jnp.where(visited, q, mixed[:, None])
    if rescale_values:
        lo, hi = cq.min(-1, keepdims=True), cq.max(-1, keepdims=True)
        cq = (cq - lo) / jnp.maximum(hi - lo, 1e-8)
    cq = (((maxvisit_init + counts.max(-1)).astype(dt) * value_scale)[:, None] * cq).astype(dt)
    invalid = inv != 0
    considered = counts.max(-1, keepdims=True)
    lmax = jnp.max(jnp.where(invalid, -jnp.inf, lg), -1, keepdims=True)
    score = jnp.maximum(-1e9, g + (lg - lmax) + cq)
    score = jnp.where((counts == considered) & ~invalid, score, -jnp.inf)
    action = jnp.argmax(score, -1).astype(_int_dtype())
    z = jnp.where(invalid, -jnp.inf, lg + cq)
    z = z - z.max(-1, keepdims=True)
    e = jnp.where(invalid, 0, jnp.exp(z))
    weights = (e / e.sum(-1, keepdims=True)).astype(dt)
    return action, weights, counts, value


# The MDP solvers, densities and Gumbel-softmax live in their own modules (this one is long
# enough); re-exported here.
from ._jax_dist import gumbel_softmax, kl_mvn, mahalanobis, mvn_log_prob, normal_log_prob  # noqa: E402
from ._jax_gmm import gmm_fit  # noqa: E402
from ._jax_mdp import modified_policy_iteration, policy_evaluation, policy_iteration, solve  # noqa: E402

__all__ = [
    "bellman_backup",
    "GMMEMResult",
    "gae",
    "gmm_e_step",
    "gmm_em",
    "gmm_em_step",
    "gmm_fit",
    "gumbel_muzero_policy",
    "gumbel_softmax",
    "kl_mvn",
    "kl_normal",
    "lambda_returns",
    "mahalanobis",
    "modified_policy_iteration",
    "muzero_policy",
    "PolicyOutput",
    "mvn_head",
    "mvn_log_prob",
    "normal_head",
    "normal_log_prob",
    "policy_evaluation",
    "policy_iteration",
    "rsample_mvn",
    "rsample_normal",
    "solve",
    "spatial_softmax",
    "value_iteration",
]
