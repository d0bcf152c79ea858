"""pygenmod.jax.gmm_fit (re-exported there): :func:`pygenmod.gmm.fit` with its initialisations
inside ``jax.jit`` / ``jax.vmap``.

Every step is a kernel of the NumPy API behind an FFI target: the initial responsibilities
(k-means++ seeding, Lloyd k-means, random_from_data; ``pygenmod_gmm_init``, csrc/jax/gmm_init.cpp),
the M-step that turns them into parameters (``pygenmod_gmm_m_step``) and the EM loop
(``pygenmod_gmm_fit``), so for the same integer seed (or JAX key) the fit equals
``pygenmod.gmm.fit`` bitwise. init="random" normalises its uniform draws in ``jnp`` (equal to
rounding). docs/jax.md has the details.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from ._seed import check_int_seed
from .gmm import COVARIANCE_TYPES, INITS, GMMParams
from .jax import (
    _COV_CODE,
    GMMEMResult,
    _batch_first,
    _concrete,
    _fit_op,
    _float,
    _key_words,
    _not_differentiable,
    _per_batch,
    _shape,
)

_INIT_CODE = {"kmeans": 0, "k-means++": 1, "random_from_data": 2}


def _cov_shape(ct, B, K, D):
    return {"full": (B, K, D, D), "tied": (B, D, D), "diag": (B, K, D), "spherical": (B, K)}[ct]


@functools.lru_cache(maxsize=None)
def _init_op(code: int, n_rep: int, stream: int, K: int):
    def call(X, W, key):
        Bx, N, _ = X.shape
        shape = jax.ShapeDtypeStruct((Bx * n_rep, N, K), X.dtype)
        out = jax.ffi.ffi_call("pygenmod_gmm_init", shape, vmap_method="sequential")(
            X, W, key, init=np.int64(code), n_rep=np.int64(n_rep), stream=np.uint64(stream)
        )
        return (out,)

    return _not_differentiable("gmm_fit", _batch_first(call, (0, 0, None), (0,)))


@functools.lru_cache(maxsize=None)
def _m_step_op(ct: str, n_rep: int):
    def call(X, W, R, reg):
        Bx, _, D = X.shape
        B, K = Bx * n_rep, R.shape[2]
        dt = X.dtype
        cs = _cov_shape(ct, B, K, D)
        shapes = (
            jax.ShapeDtypeStruct((B, K), dt),
            jax.ShapeDtypeStruct((B, K, D), dt),
            jax.ShapeDtypeStruct(cs, dt),
            jax.ShapeDtypeStruct(cs, dt),
            jax.ShapeDtypeStruct((B, K), jnp.uint8),
        )
        return tuple(
            jax.ffi.ffi_call("pygenmod_gmm_m_step", shapes, vmap_method="sequential")(
                X, W, R, reg, cov_type=np.int64(_COV_CODE[ct]), n_rep=np.int64(n_rep)
            )
        )

    return _not_differentiable("gmm_fit", _batch_first(call, (0, 0, 0, 0), (0,) * 5))


@functools.lru_cache(maxsize=None)
def _uniform_op(stream: int, cols: int):
    """key -> uniform (Bx, cols), row b from stream ``stream + b`` (pygenmod.random.uniform);
    the (Bx, 0) placeholder carries the row count (see _jax_dist._fill_op)."""

    def call(rows, key):
        shape = jax.ShapeDtypeStruct((rows.shape[0], cols), rows.dtype)
        return (
            jax.ffi.ffi_call("pygenmod_fill", shape, vmap_method="sequential")(
                key, dist=np.int64(0), stream=np.uint64(stream), offset=np.uint64(0)
            ),
        )

    return _batch_first(call, (0, None), (0,))


def _choice(x, name, options):
    if not isinstance(x, str) or x not in options:
        raise ValueError(f"{name}: expected one of {tuple(options)}, got {x!r}")
    return x


def _int(x, name, minimum):
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {x!r}")
    return int(x)


def gmm_fit(
    X,
    n_components: int,
    sample_weight=None,
    *,
    covariance_type: str = "full",
    tol: float = 1e-3,
    reg_covar=1e-6,
    max_iter: int = 100,
    n_init: int = 1,
    init: str = "kmeans",
    lower_bound_init=None,
    seed=None,
    stream: int = 0,
) -> GMMEMResult:
    """:func:`pygenmod.gmm.fit` for JAX arrays, initialisation included, inside ``jit`` /
    ``vmap`` (not ``grad``). X (B, N, D) or (N, D); ``sample_weight`` (B, N) (0 = padding).

    ``init`` in 'kmeans', 'k-means++', 'random_from_data' (the NumPy API's kernels: bitwise
    equal to ``pygenmod.gmm.fit`` for the same seed) or 'random' (equal to rounding);
    ``n_init`` initialisations, the best lower bound kept (the first on ties). ``seed`` is
    required (a JAX key, may be traced, or an int; mapped to the Philox key as everywhere in
    pygenmod.jax); init r of set b draws from stream ``stream + (r << 32) + b`` as in the NumPy
    API, and vmap folds a vmapped axis into the sets (vmapped element n's set b draws as set
    ``n * B + b``: one NumPy call over the stacked sets). Returns :class:`GMMEMResult`
    (no per-iteration history, no warnings; read ``converged`` / ``flags``). Warm starts
    (``init=GMMParams``): :func:`gmm_em`.
    """
    X = _float(X, "X", ndim=(2, 3))
    single = X.ndim == 2
    X3 = X[None] if single else X
    Bx, N, D = X3.shape
    if D < 1:
        raise ValueError(f"X: need at least one dimension, got shape {tuple(X.shape)}")
    K = _int(n_components, "n_components", 1)
    ct = _choice(covariance_type, "covariance_type", COVARIANCE_TYPES)
    tol = float(tol)
    if not (tol >= 0 and math.isfinite(tol)):
        raise ValueError(f"tol: must be a finite number >= 0, got {tol}")
    max_iter = _int(max_iter, "max_iter", 0)
    n_rep = _int(n_init, "n_init", 1)
    if isinstance(init, GMMParams) or not isinstance(init, str):
        raise TypeError("init: pygenmod.jax.gmm_fit takes a string init; warm starts from GMMParams: gmm_em")
    init = _choice(init, "init", INITS)
    stream = check_int_seed(stream, "stream")
    key = _key_words(seed)
    if sample_weight is None:
        W = jnp.ones((Bx, N), X.dtype)
    else:
        W = _float(sample_weight, "sample_weight", dtype=X.dtype)
        _shape(W, "sample_weight", (N,) if single else (Bx, N))
        c = _concrete(W)
        if c is not None and (c < 0).any():
            raise ValueError("sample_weight: must be >= 0 (0 marks padding)")
        W = W.reshape(Bx, N)
    reg = jnp.repeat(_per_batch(reg_covar, "reg_covar", Bx, X.dtype, lo=0.0), n_rep)
    if N == 0:
        R = jnp.zeros((Bx * n_rep, 0, K), X.dtype)
    elif init == "random":  # as gmm._init_resp: uniform responsibilities, normalised per point
        rows0 = jax.lax.stop_gradient(X3[:, :0, 0])
        R = jnp.stack([_uniform_op(stream + (r << 32), N * K)(rows0, key)[0] for r in range(n_rep)], axis=1)
        R = R.reshape(Bx * n_rep, N, K)
        R = R / R.sum(-1, keepdims=True)
    else:
        (R,) = _init_op(_INIT_CODE[init], n_rep, stream, K)(X3, W, key)
    w0, mu0, cv0, pc0, _ = _m_step_op(ct, n_rep)(X3, W, R, reg)
    if lower_bound_init is None:
        lb0 = jnp.full((Bx * n_rep,), -jnp.inf, X.dtype)
    else:
        lb0 = _float(lower_bound_init, "lower_bound_init", dtype=X.dtype, ndim=(0, 1)).reshape(-1)
        lb0 = jnp.repeat(jnp.broadcast_to(lb0, (Bx,)), n_rep)
    rep = (lambda a: jnp.repeat(a, n_rep, axis=0)) if n_rep > 1 else (lambda a: a)  # noqa: E731
    w, mu, cv, pc, lb, it, conv, flags = _fit_op(ct, max_iter, tol)(rep(X3), rep(W), reg, w0, mu0, cv0, pc0, lb0)
    if n_rep > 1:  # the best init per set (NaN counts as -inf; the first on ties)
        lbr = lb.reshape(Bx, n_rep)
        best = jnp.argmax(jnp.where(jnp.isnan(lbr), -jnp.inf, lbr), axis=1)
        pick = jnp.arange(Bx) * n_rep + best
        w, mu, cv, pc, lb, it, conv, flags = (a[pick] for a in (w, mu, cv, pc, lb, it, conv, flags))
    out = GMMParams(w, mu, cv, pc, ct)
    if single:
        out = GMMParams(*(a[0] for a in out[:4]), ct)
        lb, it, conv, flags = lb[0], it[0], conv[0], flags[0]
    return GMMEMResult(out, lb, it, conv.astype(bool), flags)


__all__ = ["gmm_fit"]
