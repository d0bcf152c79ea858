"""Gaussian mixtures: batched EM over many data sets at once, and Gaussian mixture regression.

Layout: data ``X[b, n, d]`` (or ``X[n, d]`` for one set) with optional point weights
``weights[b, n]`` (0 = padding, so ragged batches need no Python loop; weights are also
scikit-learn's missing ``sample_weight``). Parameters follow scikit-learn's conventions, with a
leading batch axis:

=============  ==============  =================================================
covariance     covariances     precisions_cholesky (precision = P P^T, P upper)
=============  ==============  =================================================
``full``       (B, K, D, D)    (B, K, D, D)
``tied``       (B, D, D)       (B, D, D)
``diag``       (B, K, D)       (B, K, D)   (1 / sqrt(variance))
``spherical``  (B, K)          (B, K)
=============  ==============  =================================================

Degenerate data never produces NaN. Policy (status arrays carry the detail, at most one summary
:class:`GMMWarning` is issued per call, silenced with ``warn=False``):

- a component whose responsibility mass falls to <= 1e-12 of its set's total weight is
  *collapsed*: it is placed at the set mean with the set covariance (+ reg_covar) and keeps
  its ~0 weight, so it is inert but finite (``flags & COLLAPSED``);
- a covariance that is not positive definite (reg_covar=0, a constant dimension, fewer points
  than dimensions) gets diagonal jitter growing tenfold from 1e-10 x the set's mean variance
  until its Cholesky factor exists (``flags & REGULARISED``);
- a set with no point of positive weight gets uniform weights, zero means and identity
  covariances, ``lower_bound = -inf``, ``n_iter = 0``, ``converged = False``
  (``flags & EMPTY_SET``);
- with fewer points than components, initialisation repeats points (duplicate components).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from . import _fast
from . import _validate as val
from ._arrays import is_device, returner, to_native, xp_of
from ._dispatch import kernel
from ._seed import resolve_seed
from ._status import NumericalError, NumericalWarning, OnStatus, Status, check_on_status
from ._status import flags as _status_flags
from ._typing import Array, ArrayLike, CovarianceType, GMMInit, LogProbPer, SeedLike

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
_CODE = {"full": 0, "tied": 1, "diag": 2, "spherical": 3}  #: C++ gmm::CovType (tests/test_contracts.py)
INITS = ("kmeans", "k-means++", "random_from_data", "random")

#: flag bits of ``FitResult.flags`` (per set and component)
COLLAPSED, REGULARISED, EMPTY_SET = 1, 2, 4


class GMMWarning(NumericalWarning):
    """Summary of sets that did not converge or had collapsed / regularised components (a
    :class:`pygenmod.NumericalWarning`)."""


class GMMParams(NamedTuple):
    """Parameters of B mixtures (no batch axis for a single mixture)."""

    weights: object  #: (B, K)
    means: object  #: (B, K, D)
    covariances: object  #: shape by covariance_type (see module doc)
    precisions_cholesky: object  #: same shape as covariances
    covariance_type: str = "full"


class FitResult(NamedTuple):
    """Fitted parameters and per-set status of :func:`fit`."""

    params: GMMParams
    lower_bound: object  #: (B,) weighted mean log-likelihood at the last E-step
    n_iter: object  #: (B,) int64 EM iterations run (of the best init)
    converged: object  #: (B,) bool
    flags: object  #: (B, K) uint8: COLLAPSED | REGULARISED | EMPTY_SET
    #: (B, max n_iter) lower bound of every iteration of the kept init, NaN after a set's last
    #: iteration ((n_iter,) for one set); None unless fit(..., lower_bounds=True) or a callback
    lower_bounds: object = None

    @property
    def status(self) -> Any:
        """(B,) uint32 :class:`pygenmod.Status` per set (a ``Status`` for one set), from
        ``converged`` and ``flags``: NOT_CONVERGED (stopped at max_iter), DEGENERATE (a
        collapsed component, or no data), CLAMPED (a covariance needed diagonal jitter)."""
        return _fit_status(self.converged, self.flags)


class FitProgress(NamedTuple):
    """What :func:`fit` passes to its ``callback`` (host NumPy arrays).

    Initialisations run one after another in this mode (``init`` = 0 .. n_init-1). Each starts
    with one report at ``iteration == 0`` (before any EM step; ``lower_bound`` is the starting
    bound: -inf, or ``lower_bound_init``), then one report after every EM iteration for the
    sets still running.
    """

    init: int  #: which initialisation (0-based)
    iteration: int  #: 0 = start of this init, then 1, 2, ...
    sets: object  #: (A,) int64 indices of the data sets reported (those still running)
    lower_bound: object  #: (A,) bound of this iteration (under the parameters before its M-step)
    change: object  #: (A,) lower_bound minus the previous one (NaN at iteration 0)
    finished: object  #: (A,) bool: the set stops after this iteration
    converged: object  #: (A,) bool: ... because |change| < tol


class EStep(NamedTuple):
    log_resp: object  #: (B, N, K) log responsibilities
    log_prob_norm: object  #: (B, N) log mixture density of each point
    lower_bound: object  #: (B,) weighted mean of log_prob_norm


# ----------------------------------------------------------------------------- shapes
def cov_shape(covariance_type: CovarianceType, B: int | None, K: int, D: int) -> tuple[int, ...]:
    """Shape of the covariances / precisions_cholesky of B mixtures (B=None: no batch axis)."""
    base = {"full": (K, D, D), "tied": (D, D), "diag": (K, D), "spherical": (K,)}[covariance_type]
    return base if B is None else (B,) + base


def n_parameters(covariance_type: CovarianceType, n_components: int, n_features: int) -> int:
    """Free parameters of one mixture (scikit-learn's count)."""
    K, D = n_components, n_features
    cov = {"full": K * D * (D + 1) / 2, "diag": K * D, "tied": D * (D + 1) / 2, "spherical": K}[
        val.choice(covariance_type, "covariance_type", COVARIANCE_TYPES)
    ]
    return int(cov + D * K + K - 1)


def _data(X, sample_weight, name="X"):
    """(X3, W, single, back): X as (B, N, D), the point weights as (B, N) in X's dtype."""
    back = returner(X)
    X = val.float_array(X, name, ndim=(2, 3))
    xp = xp_of(X)
    single = X.ndim == 2
    X3 = X[None] if single else X
    B, N, D = X3.shape
    if D < 1:
        raise ValueError(f"{name}: need at least one dimension, got shape {tuple(X.shape)}")
    if sample_weight is None:
        W = xp.ones((B, N), X.dtype)
    else:
        W = val.float_array(sample_weight, "sample_weight", ndim=1 if single else 2, dtype=X.dtype, xp=xp)
        val.check_shape(W, "sample_weight", (N,) if single else (B, N))
        if bool((W < 0).any()):
            raise ValueError("sample_weight: must be >= 0 (0 marks padding)")
        W = xp.ascontiguousarray(W.reshape(B, N))
    return xp.ascontiguousarray(X3), W, single, back


def _params(params, B, D, dtype, xp, single, name="params"):
    """Validated, batched, C-contiguous GMMParams arrays in dtype; returns (GMMParams, K)."""
    if not isinstance(params, GMMParams):
        if isinstance(params, dict):
            params = GMMParams(**params)
        else:
            try:
                params = GMMParams(*params)
            except TypeError:
                raise TypeError(
                    f"{name}: expected GMMParams (weights, means, covariances, precisions_cholesky, covariance_type)"
                ) from None
    ct = val.choice(params.covariance_type, f"{name}.covariance_type", COVARIANCE_TYPES)
    lead = () if single else (B,)
    w = val.float_array(params.weights, f"{name}.weights", ndim=len(lead) + 1, dtype=dtype, xp=xp)
    K = w.shape[-1]
    if K < 1:
        raise ValueError(f"{name}.weights: need at least one component")
    val.check_shape(w, f"{name}.weights", lead + (K,))
    if bool((w < 0).any()):
        raise ValueError(f"{name}.weights: must be >= 0")
    if bool((w.sum(-1) <= 0).any()):
        raise ValueError(f"{name}.weights: every mixture needs a positive weight (all are 0)")
    mu = val.float_array(params.means, f"{name}.means", dtype=dtype, xp=xp)
    val.check_shape(mu, f"{name}.means", lead + (K, D))
    pc = params.precisions_cholesky
    cs = cov_shape(ct, None, K, D)
    cov = params.covariances
    if pc is None:
        if cov is None:
            raise ValueError(f"{name}: needs covariances or precisions_cholesky")
        cov = val.float_array(cov, f"{name}.covariances", dtype=dtype, xp=xp)
        val.check_shape(cov, f"{name}.covariances", lead + cs)
        pc = precisions_cholesky_from_covariances(cov, ct, f"{name}.covariances")
    pc = val.float_array(pc, f"{name}.precisions_cholesky", dtype=dtype, xp=xp)
    val.check_shape(pc, f"{name}.precisions_cholesky", lead + cs)
    if cov is None:
        cov = covariances_from_precisions_cholesky(pc, ct)
    cov = val.float_array(cov, f"{name}.covariances", dtype=dtype, xp=xp)
    val.check_shape(cov, f"{name}.covariances", lead + cs)
    if ct in ("full", "tied"):
        diag = xp.diagonal(pc, axis1=-2, axis2=-1)
    else:
        diag = pc
    if not bool((diag > 0).all()):
        raise ValueError(f"{name}.precisions_cholesky: diagonal must be positive")
    if single:
        w, mu, cov, pc = w[None], mu[None], cov[None], pc[None]
    c = xp.ascontiguousarray
    return GMMParams(c(w), c(mu), c(cov), c(pc), ct), K


def _unbatch(p: GMMParams, single: bool, back) -> GMMParams:
    f = (lambda a: back(a[0])) if single else back
    return GMMParams(f(p.weights), f(p.means), f(p.covariances), f(p.precisions_cholesky), p.covariance_type)


# ----------------------------------------------------------------------------- conversions
def precisions_cholesky_from_covariances(
    covariances: ArrayLike, covariance_type: CovarianceType, name: str = "covariances"
) -> Array:
    """Upper P with P P^T = inverse(covariance) (scikit-learn's precisions_cholesky_)."""
    xp = xp_of(to_native(covariances))
    cov = to_native(covariances)
    if covariance_type in ("full", "tied"):
        try:
            L = xp.linalg.cholesky(cov)
        except Exception as exc:  # numpy LinAlgError
            raise ValueError(f"{name}: must be symmetric positive definite") from exc
        if not bool(xp.isfinite(L).all()):
            raise ValueError(f"{name}: must be symmetric positive definite")
        eye = xp.broadcast_to(xp.eye(cov.shape[-1], dtype=cov.dtype), cov.shape)
        return xp.ascontiguousarray(xp.swapaxes(xp.linalg.solve(L, eye), -1, -2))
    if not bool((cov > 0).all()):
        raise ValueError(f"{name}: must be positive")
    return 1.0 / xp.sqrt(cov)


def precisions_cholesky_from_precisions(
    precisions: ArrayLike, covariance_type: CovarianceType, name: str = "precisions"
) -> Array:
    """Upper P with P P^T = precision (scikit-learn's precisions_init convention)."""
    xp = xp_of(to_native(precisions))
    prec = to_native(precisions)
    if covariance_type in ("full", "tied"):
        flip = prec[..., ::-1, ::-1]
        try:
            L = xp.linalg.cholesky(flip)
        except Exception as exc:
            raise ValueError(f"{name}: must be symmetric positive definite") from exc
        if not bool(xp.isfinite(L).all()):
            raise ValueError(f"{name}: must be symmetric positive definite")
        return xp.ascontiguousarray(L[..., ::-1, ::-1])
    if not bool((prec > 0).all()):
        raise ValueError(f"{name}: must be positive")
    return xp.sqrt(prec)


def covariances_from_precisions_cholesky(prec_chol: ArrayLike, covariance_type: CovarianceType) -> Array:
    xp = xp_of(to_native(prec_chol))
    P = to_native(prec_chol)
    if covariance_type in ("full", "tied"):
        eye = xp.broadcast_to(xp.eye(P.shape[-1], dtype=P.dtype), P.shape)
        Pinv = xp.linalg.solve(P, eye)  # P^{-1}; cov = P^{-T} P^{-1}
        return xp.ascontiguousarray(xp.swapaxes(Pinv, -1, -2) @ Pinv)
    return 1.0 / (P * P)


def precisions(params: GMMParams) -> Array:
    """Precision matrices (full/tied) or precisions (diag/spherical), like sklearn's precisions_."""
    P = to_native(params.precisions_cholesky)
    xp = xp_of(P)
    if params.covariance_type in ("full", "tied"):
        return P @ xp.swapaxes(P, -1, -2)
    return P * P


def _full_covariances(p: GMMParams, K: int, D: int):
    """(B, K, D, D) covariance matrices of batched params of any type."""
    xp = xp_of(p.means)
    cov, B = p.covariances, p.means.shape[0]
    if p.covariance_type == "full":
        return cov
    if p.covariance_type == "tied":
        return xp.broadcast_to(cov[:, None], (B, K, D, D))
    eye = xp.eye(D, dtype=cov.dtype)
    if p.covariance_type == "diag":
        return cov[..., None] * eye
    return cov[:, :, None, None] * eye


# ----------------------------------------------------------------------------- kernels
def _numpy_params(params) -> bool:
    """A GMMParams of plain NumPy arrays with a known covariance type (what the fast paths take)."""
    return (
        type(params) is GMMParams
        and all(type(a) is np.ndarray for a in params[:4])
        and type(params.covariance_type) is str
        and params.covariance_type in _CODE
    )


def _fast_call(name, X, params, *args):
    """The cpu backend's one-call fast path ``name`` (pygenmod._fast) for plain NumPy X and a
    GMMParams of NumPy arrays: its results, or None where the general path must run."""
    if type(X) is np.ndarray and _numpy_params(params):
        fast = _fast.cpu_kernel("gmm", name)
        if fast is not None:
            return fast(X, *params[:4], _CODE[params.covariance_type], *args)
    return None


def e_step(
    X: ArrayLike, params: GMMParams, sample_weight: ArrayLike | None = None, *, weights: Any = val.DEPRECATED
) -> EStep:
    """E-step: log responsibilities, per-point log mixture density, weighted mean bound."""
    if sample_weight is None and weights is val.DEPRECATED:
        res = _fast_call("e_step_fast", X, params)
        if res is not None:
            _, log_resp, log_norm = res
            lb = _lower_bound(log_norm, None)
            return EStep(log_resp, log_norm, float(lb) if X.ndim == 2 else lb)
    sample_weight = val.renamed(sample_weight, weights, "sample_weight", "weights", func="gmm.e_step")
    X3, W, single, back = _data(X, sample_weight)
    xp = xp_of(X3)
    B, N, D = X3.shape
    p, K = _params(params, B, D, X3.dtype, xp, single)
    lp, log_resp, log_norm = _e_step_arrays(X3, p, K)
    lb = _lower_bound(log_norm, W)
    if single:
        return EStep(back(log_resp[0]), back(log_norm[0]), float(lb[0]))
    return EStep(back(log_resp), back(log_norm), back(lb))


def _e_step_arrays(X3, p: GMMParams, K):
    xp = xp_of(X3)
    B, N, _ = X3.shape
    lp = xp.empty((B, N, K), X3.dtype)
    log_resp = xp.empty((B, N, K), X3.dtype)
    log_norm = xp.empty((B, N), X3.dtype)
    _, k = kernel("gmm", "e_step", is_device(X3))
    k(X3, p.weights, p.means, p.precisions_cholesky, _CODE[p.covariance_type], lp, log_resp, log_norm)
    return lp, log_resp, log_norm


def _log_likelihood(log_norm, W):
    """(sum of W log p(x), sum of W) per set in float64, over the last axis; W None: unit
    weights (the same sums: x * 1 is x)."""
    xp = xp_of(log_norm)
    if W is None:
        return log_norm.astype(xp.float64).sum(-1), xp.full(log_norm.shape[:-1], float(log_norm.shape[-1]))
    masked = xp.where(W > 0, log_norm, 0).astype(xp.float64)
    return (masked * W).sum(-1), W.sum(-1).astype(xp.float64)


def _lower_bound(log_norm, W):
    xp = xp_of(log_norm)
    N = log_norm.shape[-1]
    if W is None and N > 0:  # unit weights: the float64 mean, without the masks (tiny calls)
        return (log_norm.astype(xp.float64).sum(-1) / N).astype(log_norm.dtype)
    tot, ws = _log_likelihood(log_norm, W)
    with np.errstate(invalid="ignore", divide="ignore"):
        lb = xp.where(ws > 0, tot / xp.where(ws > 0, ws, 1), -xp.inf)
    return lb.astype(log_norm.dtype)


def m_step(
    X: ArrayLike,
    resp: ArrayLike,
    sample_weight: ArrayLike | None = None,
    *,
    covariance_type: CovarianceType = "full",
    reg_covar: float = 1e-6,
    weights: Any = val.DEPRECATED,
) -> GMMParams:
    """M-step from responsibilities resp[b, n, k] (times the point weights)."""
    if (
        sample_weight is None
        and weights is val.DEPRECATED
        and type(X) is np.ndarray
        and type(resp) is np.ndarray
        and type(covariance_type) is str
        and covariance_type in _CODE
        and type(reg_covar) is float
    ):
        fast = _fast.cpu_kernel("gmm", "m_step_fast")  # one compiled call (pygenmod._fast)
        if fast is not None:
            res = fast(X, resp, _CODE[covariance_type], reg_covar)
            if res is not None:
                return GMMParams(*res, covariance_type)
    sample_weight = val.renamed(sample_weight, weights, "sample_weight", "weights", func="gmm.m_step")
    X3, W, single, back = _data(X, sample_weight)
    xp = xp_of(X3)
    B, N, D = X3.shape
    ct = val.choice(covariance_type, "covariance_type", COVARIANCE_TYPES)
    R = val.float_array(resp, "resp", ndim=2 if single else 3, dtype=X3.dtype, xp=xp)
    if R.shape[:-1] != ((N,) if single else (B, N)):
        raise ValueError(f"resp: expected shape {('(N, K)' if single else '(B, N, K)')} matching X, got {R.shape}")
    if bool((R < 0).any()):
        raise ValueError("resp: must be >= 0")
    R = xp.ascontiguousarray(R.reshape(B, N, -1))
    reg = val.per_batch(reg_covar, "reg_covar", B, X3.dtype, xp, lo=0.0)
    p, _ = _m_step_arrays(X3, W, R, reg, ct, 1)
    return _unbatch(p, single, back)


def _m_step_arrays(X3, W, R, reg, ct, n_rep):
    xp = xp_of(X3)
    Bx, N, D = X3.shape
    B, K = Bx * n_rep, R.shape[-1]
    if K < 1:
        raise ValueError("resp: need at least one component")
    out = _empty_params(xp, X3.dtype, ct, B, K, D)
    flags = xp.zeros((B, K), xp.uint8)
    _, k = kernel("gmm", "m_step", is_device(X3))
    k(X3, W, R, reg, n_rep, _CODE[ct], out.weights, out.means, out.covariances, out.precisions_cholesky, flags)
    return out, flags


def _empty_params(xp, dtype, ct, B, K, D) -> GMMParams:
    return GMMParams(
        xp.empty((B, K), dtype),
        xp.empty((B, K, D), dtype),
        xp.empty(cov_shape(ct, B, K, D), dtype),
        xp.empty(cov_shape(ct, B, K, D), dtype),
        ct,
    )


def _copy_params(p: GMMParams) -> GMMParams:
    xp = xp_of(p.means)
    return GMMParams(*(xp.array(a, copy=True) for a in p[:4]), p.covariance_type)


def _run_fit(X3, W, p: GMMParams, reg, n_rep, max_iter, tol, lb0=None):
    """Runs the fit kernel on copies of p; returns (params, lb, n_iter, converged, flags)."""
    xp = xp_of(X3)
    B, K = p.weights.shape
    out = _copy_params(p)
    lb = xp.full((B,), -np.inf, X3.dtype) if lb0 is None else xp.array(lb0, dtype=X3.dtype, copy=True)
    n_iter = xp.zeros((B,), xp.int64)
    conv = xp.zeros((B,), xp.uint8)
    flags = xp.zeros((B, K), xp.uint8)
    _, k = kernel("gmm", "fit", is_device(X3))
    k(
        X3,
        W,
        reg,
        n_rep,
        _CODE[p.covariance_type],
        max_iter,
        float(tol),
        out.weights,
        out.means,
        out.covariances,
        out.precisions_cholesky,
        lb,
        n_iter,
        conv,
        flags,
    )
    return out, lb, n_iter, conv, flags


def _host(a):
    return xp_of(a).asnumpy(a) if is_device(a) else np.asarray(a)


def _run_fit_stepwise(X3, W, p: GMMParams, reg, n_rep, max_iter, tol, lb0=None, callback=None):
    """:func:`_run_fit` driven from Python, one EM iteration per kernel call, so that every
    iteration's lower bound is seen (recorded, and passed to ``callback``).

    Same arithmetic as the kernel's own loop (the fit kernel with max_iter=1 *is* one
    iteration of that loop). Initialisations (the n_rep axis) run one after another. A set that
    has stopped keeps its final parameters; it is masked out of later kernel calls by a zero
    weight row (an empty set costs the kernel one pass over its points for the centre, no EM).
    Returns (params, lb, n_iter, converged, flags, history (B, max n_iter) float64).
    """
    xp = xp_of(X3)
    Bx = X3.shape[0]
    B, K = p.weights.shape
    ct = p.covariance_type
    if max_iter == 0:  # no iteration to see: the kernel's own answer (empty sets included)
        out = _run_fit(X3, W, p, reg, n_rep, 0, tol, lb0)
        if callback is not None:
            lb = _host(out[1]).astype(np.float64)
            for r in range(n_rep):
                sel = np.arange(Bx) * n_rep + r
                callback(
                    FitProgress(
                        r, 0, np.arange(Bx), lb[sel], np.full(Bx, np.nan), np.ones(Bx, bool), np.zeros(Bx, bool)
                    )
                )
        return out + (xp.zeros((B, 0), xp.float64),)
    res = _copy_params(p)
    lb_all = xp.full((B,), -np.inf, X3.dtype) if lb0 is None else xp.array(lb0, dtype=X3.dtype, copy=True)
    n_iter = np.zeros(B, np.int64)
    conv = np.zeros(B, bool)
    flags = xp.zeros((B, K), xp.uint8)
    hist = []  # (iteration, set indices, bounds)
    _, k = kernel("gmm", "fit", is_device(X3))
    for r in range(n_rep):
        sel = np.arange(Bx) * n_rep + r  # this init's sets, one per data set
        work = GMMParams(*(xp.ascontiguousarray(a[sel]) for a in p[:4]), ct)
        regr = xp.ascontiguousarray(reg[sel])
        prev = _host(lb_all[sel]).astype(np.float64)
        prev[np.isnan(prev)] = -np.inf
        lbk = xp.empty((Bx,), X3.dtype)
        nik = xp.zeros((Bx,), xp.int64)
        cvk = xp.zeros((Bx,), xp.uint8)
        flk = xp.zeros((Bx, K), xp.uint8)
        active = np.ones(Bx, bool)
        Wk = W
        if callback is not None:
            callback(
                FitProgress(
                    r, 0, np.arange(Bx), prev.copy(), np.full(Bx, np.nan), np.zeros(Bx, bool), np.zeros(Bx, bool)
                )
            )
        for it in range(1, max_iter + 1):
            k(
                X3,
                Wk,
                regr,
                1,
                _CODE[ct],
                1,
                -1.0,
                work.weights,
                work.means,
                work.covariances,
                work.precisions_cholesky,
                lbk,
                nik,
                cvk,
                flk,
            )
            idx = np.flatnonzero(active)
            lb_it = _host(lbk)[idx].astype(np.float64)
            ran = _host(nik)[idx] > 0  # 0: the set has no data (EMPTY_SET), nothing was run
            with np.errstate(invalid="ignore"):  # -inf - -inf (a set with no data)
                change = lb_it - prev[idx]
                done = np.abs(change) < tol
            fin = done | ~ran | (it == max_iter)
            prev[idx] = lb_it
            n_iter[sel[idx[ran]]] = it
            conv[sel[idx]] = done
            hist.append((it, sel[idx[ran]], lb_it[ran]))
            if callback is not None:
                callback(FitProgress(r, it, idx, lb_it, change, fin, done))
            stop = idx[fin]
            if stop.size:
                s_stop = sel[stop]
                for dst, src in zip(res[:4], work[:4]):
                    dst[s_stop] = src[stop]
                flags[s_stop] = flk[stop]
                lb_all[s_stop] = lbk[stop]
                active[stop] = False
                if not active.any():
                    break
                if Wk is W:
                    Wk = xp.array(W, copy=True)
                Wk[stop] = 0
    width = int(n_iter.max()) if B else 0
    H = np.full((B, width), np.nan)
    for it, s_idx, vals in hist:
        H[s_idx, it - 1] = vals
    return (res, lb_all, xp.asarray(n_iter), xp.asarray(conv.astype(np.uint8)), flags, xp.asarray(H))


def em_step(
    X: ArrayLike,
    params: GMMParams,
    sample_weight: ArrayLike | None = None,
    *,
    reg_covar: float = 1e-6,
    weights: Any = val.DEPRECATED,
) -> tuple[GMMParams, Array | float]:
    """One EM iteration as a pure function: returns (new GMMParams, lower_bound).

    ``lower_bound`` is the weighted mean log-likelihood of X under the *input* parameters
    (scikit-learn's convention); the new parameters come from the M-step that follows.
    """
    if sample_weight is None and weights is val.DEPRECATED and type(reg_covar) is float:
        res = _fast_call("em_step_fast", X, params, reg_covar)
        if res is not None:
            return GMMParams(*res[:4], params.covariance_type), res[4]
    sample_weight = val.renamed(sample_weight, weights, "sample_weight", "weights", func="gmm.em_step")
    X3, W, single, back = _data(X, sample_weight)
    xp = xp_of(X3)
    B, N, D = X3.shape
    p, K = _params(params, B, D, X3.dtype, xp, single)
    reg = val.per_batch(reg_covar, "reg_covar", B, X3.dtype, xp, lo=0.0)
    out, lb, _, _, _ = _run_fit(X3, W, p, reg, 1, 1, -1.0)
    if single:
        return _unbatch(out, True, back), float(lb[0])
    return _unbatch(out, False, back), back(lb)


def log_prob(X: ArrayLike, params: GMMParams, *, per: LogProbPer = "mixture") -> Array:
    """Log-densities: per='mixture' (B, N), 'component' (B, N, K) log N(x | k) or
    'weighted' (B, N, K) log w_k + log N(x | k)."""
    val.choice(per, "per", ("mixture", "component", "weighted"))
    res = _fast_call("e_step_fast", X, params)
    if res is not None:
        lp, _, log_norm = res
        if per == "mixture":
            return log_norm
        if per == "component":
            return lp
        with np.errstate(divide="ignore"):
            return lp + np.log(params.weights)[..., None, :]
    X3, _, single, back = _data(X, None)
    xp = xp_of(X3)
    B, N, D = X3.shape
    p, K = _params(params, B, D, X3.dtype, xp, single)
    lp, log_resp, log_norm = _e_step_arrays(X3, p, K)
    if per == "mixture":
        res = log_norm
    elif per == "component":
        res = lp
    else:
        with np.errstate(divide="ignore"):
            res = lp + xp.log(p.weights)[:, None, :]
    return back(res[0] if single else res)


def _log_resp(X, params):
    res = _fast_call("e_step_fast", X, params)
    if res is not None:
        return res[1], False, lambda a: a  # already unbatched as X is
    X3, _, single, back = _data(X, None)
    p, K = _params(params, X3.shape[0], X3.shape[2], X3.dtype, xp_of(X3), single)
    return _e_step_arrays(X3, p, K)[1], single, back


def predict_proba(X: ArrayLike, params: GMMParams) -> Array:
    """Responsibilities (B, N, K)."""
    log_resp, single, back = _log_resp(X, params)
    r = xp_of(log_resp).exp(log_resp)
    return back(r[0] if single else r)


def predict(X: ArrayLike, params: GMMParams) -> Array:
    """Most probable component (B, N) int64."""
    log_resp, single, back = _log_resp(X, params)
    xp = xp_of(log_resp)
    lab = xp.argmax(log_resp, axis=-1).astype(xp.int64)
    return back(lab[0] if single else lab)


def sample(params: GMMParams, n_samples: int, *, seed: SeedLike = None, stream: int = 0) -> tuple[Array, Array]:
    """``n_samples`` draws from each mixture: (X (B, n, D), labels (B, n) int64).

    Draw i of mixture b is a pure function of (seed, stream + b, i) through the package's
    Philox-4x32-10 generator: identical on every backend and thread count. ``seed=None``
    (the default) takes a fresh key from the package generator (:mod:`pygenmod.random`).
    """
    n = val.positive_int(n_samples, "n_samples", minimum=0)
    seed = resolve_seed(seed)
    stream = val.seed_int(stream, "stream")
    fast = _fast.cpu_kernel("gmm", "sample_fast") if _numpy_params(params) else None
    res = None if fast is None else fast(*params[:4], _CODE[params.covariance_type], n, seed, stream)
    if res is not None:  # one compiled call (pygenmod._fast)
        return res
    w0 = to_native(params.weights if isinstance(params, GMMParams) else GMMParams(*params).weights)
    single = w0.ndim == 1
    back = returner(params.weights if isinstance(params, GMMParams) else w0)
    dtype = w0.dtype if w0.dtype in val.FLOAT_DTYPES else np.dtype(np.float64)
    xp = xp_of(w0)
    means = to_native(params[1])
    D = means.shape[-1]
    B = 1 if single else w0.shape[0]
    p, K = _params(params, B, D, dtype, xp, single)
    val.check_size("n_samples", (B, n, D))
    out = xp.empty((B, n, D), dtype)
    labels = xp.empty((B, n), xp.int64)
    _, k = kernel("gmm", "sample", is_device(p.weights))
    k(p.weights, p.means, p.precisions_cholesky, _CODE[p.covariance_type], seed, stream, out, labels)
    if single:
        return back(out[0]), back(labels[0])
    return back(out), back(labels)


def bic(
    X: ArrayLike, params: GMMParams, sample_weight: ArrayLike | None = None, *, weights: Any = val.DEPRECATED
) -> Array | float:
    """Bayesian information criterion per set: -2 log L + n_params log(n) (n = sum of weights)."""
    sample_weight = val.renamed(sample_weight, weights, "sample_weight", "weights", func="gmm.bic")
    return _ic(X, params, sample_weight, "bic")


def aic(
    X: ArrayLike, params: GMMParams, sample_weight: ArrayLike | None = None, *, weights: Any = val.DEPRECATED
) -> Array | float:
    """Akaike information criterion per set: -2 log L + 2 n_params."""
    sample_weight = val.renamed(sample_weight, weights, "sample_weight", "weights", func="gmm.aic")
    return _ic(X, params, sample_weight, "aic")


def _ic(X, params, sample_weight, kind):
    if sample_weight is None:
        res = _fast_call("e_step_fast", X, params)
        if res is not None:
            npar = n_parameters(params.covariance_type, params.weights.shape[-1], X.shape[-1])
            ic = _ic_value(np, *_log_likelihood(res[2].reshape(-1, X.shape[-2]), None), npar, kind)
            return float(ic[0]) if X.ndim == 2 else ic
    X3, W, single, back = _data(X, sample_weight)
    xp = xp_of(X3)
    B, N, D = X3.shape
    p, K = _params(params, B, D, X3.dtype, xp, single)
    _, _, log_norm = _e_step_arrays(X3, p, K)
    res = _ic_value(xp, *_log_likelihood(log_norm, W), n_parameters(p.covariance_type, K, D), kind)
    return float(res[0]) if single else back(res)


def _ic_value(xp, ll, ws, npar, kind):
    """-2 log L + the penalty: npar log(n) (BIC) or 2 npar (AIC), per set (float64)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        pen = npar * xp.log(ws) if kind == "bic" else 2.0 * npar
    return -2.0 * ll + pen


# ----------------------------------------------------------------------------- fitting
def _one_hot(xp, dtype, B, N, K, idx=None, labels=None):
    R = xp.zeros((B, N, K), dtype)
    if idx is not None:
        b, k = xp.nonzero(idx >= 0)
        R[b, idx[b, k], k] = 1
    else:
        b, n = xp.nonzero(labels >= 0)
        R[b, n, labels[b, n]] = 1
    return R


def _init_resp(X3, W, K, init, n_rep, seed, stream=0):
    """One-hot (or random) initial responsibilities (B, N, K), computed where X3 lives: the
    CUDA kernels take the same arguments and draw from the same Philox streams as the CPU's
    (gmm_init.cu; k-means++ seeds equal except at distance ties within rounding)."""
    xp = xp_of(X3)
    Bx, N, D = X3.shape
    B = Bx * n_rep
    if N == 0:
        return xp.zeros((B, 0, K), X3.dtype)
    dev = is_device(X3)
    if init == "random_from_data":
        idx = xp.empty((B, K), xp.int64)
        kernel("gmm", "random_from_data", dev)[1](W, n_rep, K, seed, stream, idx)
        return _one_hot(xp, X3.dtype, B, N, K, idx=idx)
    if init in ("k-means++", "kmeans"):
        idx = xp.empty((B, K), xp.int64)
        kernel("gmm", "kmeanspp", dev)[1](X3, W, n_rep, K, seed, stream, idx)
        if init == "k-means++":
            return _one_hot(xp, X3.dtype, B, N, K, idx=idx)
        sets = xp.arange(B)[:, None] // n_rep
        centers = xp.ascontiguousarray(X3[sets, xp.maximum(idx, 0)])
        labels = xp.empty((B, N), xp.int64)
        kernel("gmm", "kmeans", dev)[1](X3, W, n_rep, 100, centers, labels)
        return _one_hot(xp, X3.dtype, B, N, K, labels=labels)
    # 'random': uniform responsibilities (like scikit-learn), run r of set b from Philox stream
    # (r << 32) + b (init_stream in gmm/init_math.hpp), so a set's draws never depend on its neighbours.
    from . import random as _random

    dev = "cuda" if dev else "cpu"
    R = xp.stack(
        [
            _random.uniform(seed, (Bx, N * K), stream=stream + (r << 32), dtype=X3.dtype, device=dev)
            for r in range(n_rep)
        ],
        axis=1,
    ).reshape(B, N, K)
    R /= R.sum(-1, keepdims=True)
    return R


def fit(
    X: ArrayLike,
    n_components: int,
    sample_weight: ArrayLike | None = None,
    *,
    covariance_type: CovarianceType = "full",
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
    max_iter: int = 100,
    n_init: int = 1,
    init: GMMInit = "kmeans",
    weights_init: ArrayLike | None = None,
    means_init: ArrayLike | None = None,
    precisions_init: ArrayLike | None = None,
    resp_init: ArrayLike | None = None,
    lower_bound_init: ArrayLike | None = None,
    seed: SeedLike = None,
    stream: int = 0,
    warn: bool = True,
    on_status: OnStatus | None = None,
    lower_bounds: bool = False,
    callback: Callable[[FitProgress], object] | None = None,
    weights: Any = val.DEPRECATED,
    init_params: Any = val.DEPRECATED,
    random_state: Any = val.DEPRECATED,
) -> FitResult:
    """Batched EM: fits one K-component mixture to every set of X (B, N, D) (or (N, D)).

    Each set stops on its own when the change of its lower bound is < tol (``tol=0``: run
    max_iter iterations); a converged set costs no more work. ``n_init`` initialisations run as
    an extra batch axis; the best lower bound per set is kept (the first on ties).

    Initialisation: ``init`` in 'kmeans' (k-means++ seeding + Lloyd iterations, the
    default as in scikit-learn), 'k-means++' (seeding only), 'random_from_data' (K distinct
    points), 'random' (random responsibilities), all drawn from Philox streams keyed by
    ``seed`` (``None``, the default: a fresh key from the package generator; an integer:
    reproducible): initialisation r of set b uses stream ``stream + (r << 32) + b``, so a set's
    fit does not depend on the other sets in the batch, and run 0 draws what ``n_init=1`` draws;
    ``stream`` is the global index of the first set when a batch is split into chunks (a chunk
    starting at set g passes ``stream=g`` and fits exactly as in the whole batch).
    ``init`` may also be a :class:`GMMParams` (e.g. a previous fit: warm start). Given values
    override a string ``init``: any of ``weights_init`` / ``means_init`` / ``precisions_init``
    (the rest from ``init``, scikit-learn semantics), or ``resp_init`` (B, N, K) responsibilities.
    ``sample_weight`` (B, N) (or (N,)): point weights, 0 marks padding.
    Deprecated spellings (one release, DeprecationWarning): ``weights=`` (now ``sample_weight``),
    ``init_params=GMMParams`` (now ``init=``), ``random_state=`` (now ``seed``).
    ``lower_bound_init`` seeds the convergence test (warm start: the previous bound).

    Status (docs/conventions.md): ``FitResult.status`` holds a :class:`pygenmod.Status` per
    set (``flags`` the per-component detail). ``on_status`` "warn" (the default) issues one
    :class:`GMMWarning` (a :class:`pygenmod.NumericalWarning`) summarising the sets that did
    not converge or had collapsed / regularised components; "raise" raises
    :class:`pygenmod.NumericalError` instead; "ignore" neither. ``warn=False`` is
    ``on_status="ignore"``.

    ``lower_bounds=True`` records the bound of every iteration (``FitResult.lower_bounds``,
    scikit-learn's ``lower_bounds_``), and ``callback(FitProgress)`` is called at the start of
    every init and after every EM iteration. Either one drives the iterations from Python, one
    kernel call per iteration, initialisations one after another: same results (float64: the
    same arithmetic; float32: the bound is rounded to float32 between iterations, which can
    move a borderline stop by one iteration), slower by the per-call overhead (tens of
    microseconds per iteration; noticeable only for small problems).
    """
    sample_weight = val.renamed(sample_weight, weights, "sample_weight", "weights", func="gmm.fit")
    if init_params is not None:  # None meant "not given" before the rename
        init = val.renamed(init, init_params, "init", "init_params", func="gmm.fit", default="kmeans")
    seed = val.renamed(seed, random_state, "seed", "random_state", func="gmm.fit")
    on_status = check_on_status("warn" if on_status is None else on_status) if warn else "ignore"
    X3, W, single, back = _data(X, sample_weight)
    xp = xp_of(X3)
    Bx, N, D = X3.shape
    K = val.positive_int(n_components, "n_components")
    ct = val.choice(covariance_type, "covariance_type", COVARIANCE_TYPES)
    tol = float(tol)
    if not (tol >= 0 and math.isfinite(tol)):
        raise ValueError(f"tol: must be a finite number >= 0, got {tol}")
    max_iter = val.positive_int(max_iter, "max_iter", minimum=0)
    n_init = val.positive_int(n_init, "n_init")
    warm = not isinstance(init, str)
    if not warm:
        val.choice(init, "init", INITS)
    seed = resolve_seed(seed, "seed" if random_state is val.DEPRECATED else "random_state")
    stream = val.seed_int(stream, "stream")
    reg = val.per_batch(reg_covar, "reg_covar", Bx, X3.dtype, xp, lo=0.0)
    lead = () if single else (Bx,)

    def given(a, name, shape):
        a = val.float_array(a, name, dtype=X3.dtype, xp=xp)
        val.check_shape(a, name, lead + shape)
        return a if not single else a[None]

    if warm:
        p0, K0 = _params(init, Bx, D, X3.dtype, xp, single, "init")
        if K0 != K or p0.covariance_type != ct:
            raise ValueError("init: the GMMParams' n_components / covariance_type differ from the fit's")
        n_rep = 1
    elif resp_init is not None:
        R = given(resp_init, "resp_init", (N, K))
        if bool((R < 0).any()):
            raise ValueError("resp_init: must be >= 0")
        p0, _ = _m_step_arrays(X3, W, xp.ascontiguousarray(R), reg, ct, 1)
        n_rep = 1
    else:
        all_given = weights_init is not None and means_init is not None and precisions_init is not None
        n_rep = 1 if all_given else n_init
        if all_given:
            p0 = None
        else:
            R = _init_resp(X3, W, K, init, n_rep, seed, stream=stream)
            p0, _ = _m_step_arrays(X3, W, R, xp.repeat(reg, n_rep), ct, n_rep)
        wts, mus, covs, pcs = (None,) * 4 if p0 is None else p0[:4]

        def rep(a):
            return xp.repeat(a, n_rep, axis=0)

        if weights_init is not None:
            wi = given(weights_init, "weights_init", (K,))
            if bool((wi < 0).any()) or not bool(xp.allclose(wi.sum(-1), 1.0, atol=1e-5)):
                raise ValueError("weights_init: must be >= 0 and sum to 1")
            wts = rep(wi)
        if means_init is not None:
            mus = rep(given(means_init, "means_init", (K, D)))
        if precisions_init is not None:
            pi = given(precisions_init, "precisions_init", cov_shape(ct, None, K, D))
            pcs = rep(precisions_cholesky_from_precisions(pi, ct, "precisions_init"))
            covs = covariances_from_precisions_cholesky(pcs, ct)
        p0 = GMMParams(
            xp.ascontiguousarray(wts),
            xp.ascontiguousarray(mus),
            xp.ascontiguousarray(covs),
            xp.ascontiguousarray(pcs),
            ct,
        )
    if lower_bound_init is not None:
        lb0 = val.float_array(
            lower_bound_init, "lower_bound_init", ndim=(0, 1), finite=False, dtype=X3.dtype, xp=xp
        ).reshape(-1)
        lb0 = xp.repeat(xp.broadcast_to(lb0, (Bx,)), n_rep)
    else:
        lb0 = None
    if callback is not None and not callable(callback):
        raise TypeError(f"callback: expected a callable, got {type(callback).__name__}")
    if lower_bounds or callback is not None:
        out, lb, n_iter, conv, flags, hist = _run_fit_stepwise(
            X3, W, p0, xp.repeat(reg, n_rep), n_rep, max_iter, tol, lb0, callback
        )
    else:
        out, lb, n_iter, conv, flags = _run_fit(X3, W, p0, xp.repeat(reg, n_rep), n_rep, max_iter, tol, lb0)
        hist = None
    if n_rep > 1:
        lbr = lb.reshape(Bx, n_rep).astype(xp.float64)
        best = xp.argmax(xp.where(xp.isnan(lbr), -xp.inf, lbr), axis=1)
        pick = xp.arange(Bx) * n_rep + best
        out = GMMParams(*(a[pick] for a in out[:4]), ct)
        lb, n_iter, conv, flags = lb[pick], n_iter[pick], conv[pick], flags[pick]
        hist = None if hist is None else hist[pick]
    conv = conv.astype(bool)
    if hist is not None:  # columns up to the longest kept run
        hist = hist[:, : int(n_iter.max()) if Bx else 0]
    if on_status != "ignore":
        _summary_warning(conv, flags, max_iter, on_status)
    res_p = _unbatch(out, single, back)
    if single:
        return FitResult(
            res_p, float(lb[0]), int(n_iter[0]), bool(conv[0]), back(flags[0]), None if hist is None else back(hist[0])
        )
    return FitResult(res_p, back(lb), back(n_iter), back(conv), back(flags), None if hist is None else back(hist))


def _fit_status(converged, flags):
    """Status per set from FitResult's converged (B,) and flags (B, K) (any array type)."""
    if isinstance(converged, (bool, np.bool_)):  # one set: flags (K,)
        f = np.asarray(to_native(flags))
        empty = bool((f & EMPTY_SET).any())
        return _status_flags(
            None,
            (not converged and not empty, Status.NOT_CONVERGED),
            (bool((f & (COLLAPSED | EMPTY_SET)).any()), Status.DEGENERATE),
            (bool((f & REGULARISED).any()), Status.CLAMPED),
        )
    f = to_native(flags)
    empty = (f & EMPTY_SET).any(axis=-1)
    return _status_flags(
        converged,
        (~to_native(converged).astype(bool) & ~empty, Status.NOT_CONVERGED),
        ((f & (COLLAPSED | EMPTY_SET)).any(axis=-1), Status.DEGENERATE),
        ((f & REGULARISED).any(axis=-1), Status.CLAMPED),
    )


def _summary_warning(conv, flags, max_iter, on_status="warn"):
    B = conv.shape[0]
    empty = int(((flags & EMPTY_SET) != 0).any(axis=-1).sum())
    not_conv = int((~conv).sum()) - empty if max_iter > 0 else 0
    coll = int((((flags & COLLAPSED) != 0) & ((flags & EMPTY_SET) == 0)).sum())
    regd = int(((flags & REGULARISED) != 0).sum())
    parts = []
    if not_conv:
        parts.append(f"{not_conv} of {B} sets did not converge")
    if coll:
        parts.append(f"{coll} components collapsed (placed at their set's mean, ~0 weight)")
    if regd:
        parts.append(f"{regd} covariances needed extra diagonal jitter")
    if empty:
        parts.append(f"{empty} sets have no data (neutral parameters)")
    if parts and on_status == "raise":
        st = _fit_status(conv, flags)
        raise NumericalError(
            "pygenmod.gmm.fit: " + "; ".join(parts) + ".", _host(st), int(np.flatnonzero(_host(st))[0])
        )
    if parts:
        warnings.warn(
            "pygenmod.gmm.fit: "
            + "; ".join(parts)
            + ". See FitResult.status / .converged / .flags; pass on_status='ignore' to silence.",
            GMMWarning,
            stacklevel=3,
        )


# Estimators (scikit-learn API) live in their own module; importing them imports no sklearn.
from ._gmm_estimator import BatchGaussianMixture, GaussianMixture  # noqa: E402
from ._gmr import GMR, GMRResult, gmr, gmr_sample  # noqa: E402

__all__ = [
    "BatchGaussianMixture",
    "COLLAPSED",
    "COVARIANCE_TYPES",
    "EMPTY_SET",
    "EStep",
    "FitProgress",
    "FitResult",
    "GMMParams",
    "GMMWarning",
    "GMR",
    "GMRResult",
    "GaussianMixture",
    "INITS",
    "REGULARISED",
    "aic",
    "bic",
    "cov_shape",
    "covariances_from_precisions_cholesky",
    "e_step",
    "em_step",
    "fit",
    "gmr",
    "gmr_sample",
    "log_prob",
    "m_step",
    "n_parameters",
    "precisions",
    "precisions_cholesky_from_covariances",
    "precisions_cholesky_from_precisions",
    "predict",
    "predict_proba",
    "sample",
]
