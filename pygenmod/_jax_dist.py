"""pygenmod.jax's log-densities, Mahalanobis distance, full-covariance KL and Gumbel-softmax
(re-exported there), inside ``jax.jit`` / ``jax.vmap`` / ``jax.grad``.

The densities and the KL are written in ``jnp`` (``jax.scipy.linalg.solve_triangular``;
autodiff gives the gradients) with the conventions of :mod:`pygenmod.sampling`, so they agree
with it to rounding, not bitwise. Gumbel-softmax draws its noise with the NumPy API's kernel
(FFI target ``pygenmod_fill``, csrc/jax/mdp.cpp): the same noise for the same seed; the
softmax is ``jnp``. docs/jax.md has the details.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular

from .jax import _KINDS_SCALE, _batch_first, _clamp, _concrete, _float, _key_words, _scale_arg, _shape
from .sampling import HALF_LOG_2PI, GumbelSoftmax, check_scale_tril


def _finite(a, name):
    c = _concrete(a)
    if c is not None and c.size and not np.isfinite(c).all():
        raise ValueError(f"{name}: contains NaN or infinity")


def _mean(mu):
    m = _float(mu, "mu", ndim=(1, 2))
    _finite(m, "mu")
    one = m.ndim == 1
    return (m[None] if one else m), one


def _x_rows(x, m, one):
    """x as (..., B, D) against mu (B, D); returns it and the result's shape."""
    a = _float(x, "x", dtype=m.dtype)
    B, D = m.shape
    if a.ndim == 0 or a.shape[-1] != D:
        raise ValueError(f"x: expected a last axis of {D}, got shape {tuple(a.shape)}")
    lead = tuple(a.shape[:-1])
    if not one and (len(lead) == 0 or lead[-1] != B):
        raise ValueError(f"x: expected shape (..., {B}, {D}) to match mu {tuple(m.shape)}, got {tuple(a.shape)}")
    _finite(a, "x")
    return (a[..., None, :] if one else a), lead


def _tril(L, name, m, one):
    """A factor (D, D) shared or (B, D, D) per row, checked when concrete; as (B or 1, D, D)."""
    B, D = m.shape
    a = _float(L, name, dtype=m.dtype, ndim=(2, 3))
    if a.shape[-2:] != (D, D) or (a.ndim == 3 and a.shape[0] not in ((1,) if one else (1, B))):
        raise ValueError(f"{name}: expected shape ({D}, {D}) or ({B}, {D}, {D}), got {tuple(a.shape)}")
    c = _concrete(a)
    if c is not None:
        check_scale_tril(c, name)
    # tril: the upper triangle is not read, so its gradient is 0 (as the NumPy API's)
    return jnp.tril(a if a.ndim == 3 else a[None])


def _logdiag(L):
    return jnp.log(jnp.diagonal(L, axis1=-2, axis2=-1)).sum(-1)


# ============================================================================ diagonal Gaussian
def normal_log_prob(x, mu, logvar=None, *, log_std=None, std=None, clamp=None):
    """``log N(x; mu, diag(sigma^2))`` summed over the last axis (:func:`pygenmod.sampling.normal_log_prob`),
    inside ``jit`` / ``vmap`` / ``grad`` (differentiable in x, mu and the scale; a clamped scale
    passes no gradient outside the clamp). x (B, D) or (S, B, D); returns (B,) or (S, B).
    Computed in ``jnp``: equal to the NumPy API to rounding."""
    pname, p = _scale_arg(logvar, log_std, std)
    m, one = _mean(mu)
    q = _float(p, pname, dtype=m.dtype)
    _shape(q, pname, m.shape[1:] if one else m.shape)
    q = q.reshape(m.shape)
    _finite(q, pname)
    c = _concrete(q)
    if pname == "std" and c is not None and (c <= 0).any():
        raise ValueError("std: must be > 0")
    xr, lead = _x_rows(x, m, one)
    lo, hi = _clamp(clamp)
    pc = jnp.clip(q, lo, hi) if clamp is not None else q
    kind = _KINDS_SCALE[pname]
    if kind == 0:
        log_sigma = 0.5 * pc
        sigma = jnp.exp(log_sigma)
    elif kind == 1:
        log_sigma, sigma = pc, jnp.exp(pc)
    else:
        log_sigma, sigma = jnp.log(pc), pc
    u = (xr - m) / sigma
    lp = (-0.5 * u * u - log_sigma).sum(-1) - m.dtype.type(m.shape[1] * HALF_LOG_2PI)
    return lp.reshape(lead)


# ============================================================================ full covariance
def _maha_y(x, mu, scale_tril, precision_tril):
    if (scale_tril is None) == (precision_tril is None):
        raise TypeError("give exactly one of scale_tril or precision_tril")
    m, one = _mean(mu)
    name = "scale_tril" if scale_tril is not None else "precision_tril"
    L = _tril(scale_tril if scale_tril is not None else precision_tril, name, m, one)
    xr, lead = _x_rows(x, m, one)
    d = xr - m  # (..., B, D)
    if name == "precision_tril":  # y = U^T d
        y = jnp.einsum("...bi,bij->...bj", d, jnp.broadcast_to(L, (m.shape[0],) + L.shape[1:]))
    elif L.shape[0] == 1:  # one solve for every row
        D = m.shape[1]
        y = solve_triangular(L[0], d.reshape(-1, D).T, lower=True).T.reshape(d.shape)
    else:
        Lb = jnp.broadcast_to(L, d.shape[:-1] + L.shape[-2:])
        y = solve_triangular(Lb, d[..., None], lower=True)[..., 0]
    return y, L, m, lead


def _safe_sqrt(r):
    pos = r > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, r, 1)), 0)  # gradient 0 (not NaN) at r = 0


def mahalanobis(x, mu, scale_tril=None, *, precision_tril=None, squared=True):
    """Squared Mahalanobis distance per row (:func:`pygenmod.sampling.mahalanobis`): with the
    covariance's Cholesky factor ``scale_tril`` or a lower-triangular factor of the precision
    ``precision_tril``, per row (B, D, D) or shared (D, D); x (B, D) or (S, B, D).
    ``squared=False``: the distance (gradient 0 at distance 0, as the NumPy API).
    Differentiable in every argument; ``jnp`` (to rounding)."""
    y, _, _, lead = _maha_y(x, mu, scale_tril, precision_tril)
    r = (y * y).sum(-1)
    return (r if squared else _safe_sqrt(r)).reshape(lead)


def mvn_log_prob(x, mu, scale_tril):
    """``log N(x; mu, L L^T)`` per row (:func:`pygenmod.sampling.mvn_log_prob`); x (B, D) or
    (S, B, D); L per row or shared. Differentiable in every argument; ``jnp`` (to rounding)."""
    y, L, m, lead = _maha_y(x, mu, scale_tril, None)
    lp = -0.5 * (y * y).sum(-1) - _logdiag(L) - m.dtype.type(m.shape[1] * HALF_LOG_2PI)
    return lp.reshape(lead)


def kl_mvn(mu, scale_tril, prior_mu=None, prior_scale_tril=None):
    """``KL(N(mu, L L^T) || N(prior_mu, L2 L2^T))`` per row (:func:`pygenmod.sampling.kl_mvn`):
    Cholesky factors per row (B, D, D) or shared (D, D); the prior defaults to N(0, I).
    Differentiable in every argument (factor gradients lower triangular); ``jnp`` (to rounding)."""
    m, one = _mean(mu)
    B, D = m.shape
    L1 = _tril(scale_tril, "scale_tril", m, one)
    if prior_mu is None:
        m2 = jnp.zeros_like(m)
    else:
        m2 = _float(prior_mu, "prior_mu", dtype=m.dtype)
        _finite(m2, "prior_mu")
        try:
            m2 = jnp.broadcast_to(m2, m.shape)
        except ValueError:
            raise ValueError(f"prior_mu: shape {tuple(m2.shape)} does not broadcast to {tuple(m.shape)}") from None
    diff = m2 - m
    if prior_scale_tril is None:
        M, a, ld2 = L1, diff, 0
    else:
        L2 = _tril(prior_scale_tril, "prior_scale_tril", m, one)
        n = max(L1.shape[0], L2.shape[0])
        L2b = jnp.broadcast_to(L2, (n, D, D))
        M = solve_triangular(L2b, jnp.broadcast_to(L1, (n, D, D)), lower=True)  # L2^-1 L1
        if L2.shape[0] == 1:
            a = solve_triangular(L2[0], diff.T, lower=True).T
        else:
            a = solve_triangular(L2, diff[..., None], lower=True)[..., 0]
        ld2 = _logdiag(L2)
    kl = 0.5 * ((M * M).sum((-1, -2)) + (a * a).sum(-1) - D) + ld2 - _logdiag(L1)
    kl = jnp.broadcast_to(kl, (B,))
    return kl[0] if one else kl


# ============================================================================ Gumbel-softmax
@functools.lru_cache(maxsize=None)
def _fill_op(dist: int, stream: int, offset: int, K: int, dtype):
    """key -> noise (R, K) of ``dtype``, row r from stream ``stream + r``. The first operand is a
    (R, 0) placeholder that carries the row count, so vmap folds a vmapped axis into the rows
    (vmapped element n's row r draws as row n*R + r: one NumPy call over the stacked logits);
    a vmapped key makes one call per element."""

    def call(rows, key):
        shape = jax.ShapeDtypeStruct((rows.shape[0], K), dtype)
        g = jax.ffi.ffi_call("pygenmod_fill", shape, vmap_method="sequential")(
            key, dist=np.int64(dist), stream=np.uint64(stream), offset=np.uint64(offset)
        )
        return (g,)

    return _batch_first(call, (0, None), (0,))


@jax.custom_jvp
def _straight_through(y_soft, y_hard):
    return y_hard


@_straight_through.defjvp
def _straight_through_jvp(primals, tangents):
    return primals[1], tangents[0]  # the value is one-hot, the gradient the relaxed sample's


def gumbel_softmax(logits, temperature=1.0, *, seed=None, hard=False, stream=0, offset=0) -> GumbelSoftmax:
    """:func:`pygenmod.sampling.gumbel_softmax` for JAX arrays, inside ``jit`` / ``vmap`` /
    ``grad``: ``softmax((logits + g) / temperature)`` over the last axis, g the NumPy API's
    Gumbel noise (row r of the flattened leading axes from stream ``stream + r``) for the same
    ``seed`` (required: a JAX key, may be traced, or an int; as :func:`normal_head`).
    ``hard=True``: ``y`` is the one-hot argmax with the relaxed sample's gradient
    (straight-through). Returns :class:`pygenmod.sampling.GumbelSoftmax`; ``index`` is int64
    under x64, else int32. The noise is bitwise the NumPy API's; the softmax is ``jnp``
    (equal to rounding). vmap folds a vmapped axis into the rows (as one NumPy call over the
    stacked logits)."""
    lg = _float(logits, "logits")
    if lg.ndim == 0:
        raise ValueError("logits: expected at least one axis (the categories)")
    t = temperature
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not (t > 0 and math.isfinite(t)):
        raise ValueError(f"temperature: expected a positive finite number, got {temperature!r}")
    K = lg.shape[-1]
    if K == 0:
        raise ValueError(f"logits: the last axis (the categories) is empty, got shape {tuple(lg.shape)}")
    from ._seed import check_int_seed

    stream, offset = check_int_seed(stream, "stream"), check_int_seed(offset, "offset")
    key = _key_words(seed)
    rows = lg.reshape(-1, K)
    c = _concrete(rows)
    if c is not None and c.size:
        if np.isnan(c).any() or np.isposinf(c).any():
            raise ValueError("logits: contains NaN or +infinity (-inf masks a category)")
        if np.isneginf(c).all(-1).any():
            raise ValueError("logits: a row has every category masked (all -inf)")
    # the placeholder is a (R, 0) slice of the logits, so it is batched exactly when they are
    # (a constant would not be, and vmap would repeat one draw); no gradient flows into it
    rows0 = jax.lax.stop_gradient(rows[:, :0])
    (g,) = _fill_op(2, stream, offset, K, np.dtype(lg.dtype))(rows0, key)
    z = (rows + g) / lg.dtype.type(t)
    idx = jnp.argmax(z, -1)
    y_soft = jax.nn.softmax(z, axis=-1)
    y = _straight_through(y_soft, jax.nn.one_hot(idx, K, dtype=lg.dtype)) if hard else y_soft
    it = jnp.int64 if jax.config.jax_enable_x64 else jnp.int32
    return GumbelSoftmax(y.reshape(lg.shape), y_soft.reshape(lg.shape), idx.astype(it).reshape(lg.shape[:-1]))


__all__ = ["gumbel_softmax", "kl_mvn", "mahalanobis", "mvn_log_prob", "normal_log_prob"]
