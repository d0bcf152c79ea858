"""Gaussian mixture regression: condition B joint mixtures over (input, output) dimensions on
many query inputs at once.

For component k with joint mean (mu_i, mu_o) and covariance [[S_ii, S_io], [S_oi, S_oo]]:
    h_k(x)  proportional to  w_k N(x | mu_i, S_ii)                 (conditional weights)
    m_k(x)  = mu_o + S_oi S_ii^+ (x - mu_i)                        (conditional means)
    C_k     = S_oo - S_oi S_ii^+ S_io                              (conditional covariances)
    mean(x) = sum_k h_k m_k
    cov(x)  = sum_k h_k (C_k + (m_k - mean)(m_k - mean)^T)         (PSD by construction)
Any covariance type (converted to full matrices). Numerically safe: S_ii is inverted through
its eigendecomposition with eigenvalues clipped at 1e-12 x the largest (a pseudo-inverse for
a near-singular input block), and C_k is symmetrised with negative eigenvalues clipped to 0.
Computed in float64, returned in the parameters' dtype.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from . import _validate as val
from ._arrays import is_device, returner, to_native, xp_of
from ._dispatch import kernel_if_any
from ._gmm_estimator import _Base
from ._typing import Array, ArrayLike, CovarianceType, GMMInit, SeedLike
from .gmm import GMMParams


class GMRResult(NamedTuple):
    weights: object  #: (B, Q, K) conditional mixture weights
    means: object  #: (B, Q, K, O) conditional component means
    covariances: object  #: (B, K, O, O) conditional component covariances (independent of x)
    mean: object  #: (B, Q, O) predictive mean
    covariance: object  #: (B, Q, O, O) predictive covariance of the conditional mixture


def _dims(in_dims, out_dims, D):
    ind = [int(i) for i in np.atleast_1d(np.asarray(in_dims)).ravel()]
    if not ind or len(set(ind)) != len(ind) or min(ind) < 0 or max(ind) >= D:
        raise ValueError(f"in_dims: expected distinct indices in [0, {D}), got {in_dims!r}")
    if out_dims is None:
        outd = [d for d in range(D) if d not in ind]
    else:
        outd = [int(i) for i in np.atleast_1d(np.asarray(out_dims)).ravel()]
        if not outd or len(set(outd)) != len(outd) or min(outd) < 0 or max(outd) >= D or set(outd) & set(ind):
            raise ValueError(f"out_dims: expected distinct indices in [0, {D}) not in in_dims, got {out_dims!r}")
    if not outd:
        raise ValueError("out_dims: no output dimension left")
    return ind, outd


class _Conditioning(NamedTuple):
    """The x-independent part of GMR for B mixtures, float64 and C-contiguous: what the query
    kernel (pygenmod/gmm/gmr.hpp) reads (see the module docstring)."""

    single: bool  #: the parameters had no batch axis
    dtype: object  #: the parameters' dtype (results are returned in it)
    mu_i: object  #: (B, K, I) the input part of the means
    mu_o: object  #: (B, K, O) the output part
    logc: object  #: (B, K) log w - log det(S_ii) / 2 - I log(2 pi) / 2
    V: object  #: (B, K, I, I) eigenvectors of S_ii (columns)
    rs: object  #: (B, K, I) 1 / sqrt of its eigenvalues, clipped
    A: object  #: (B, K, O, I) S_oi S_ii^+
    C: object  #: (B, K, O, O) conditional covariances


#: the compiled conditioning's Jacobi eigensolver is for small blocks; larger ones use LAPACK
MAX_KERNEL_DIMS = 32


def _condition(params, in_dims, out_dims) -> _Conditioning:
    from . import gmm as g

    w0 = to_native(params[0] if not isinstance(params, g.GMMParams) else params.weights)
    single = w0.ndim == 1
    xp = xp_of(w0)
    dtype = w0.dtype if w0.dtype in val.FLOAT_DTYPES else np.dtype(np.float64)
    means = to_native(params[1] if not isinstance(params, g.GMMParams) else params.means)
    D = means.shape[-1]
    B = 1 if single else w0.shape[0]
    p, K = g._params(params, B, D, dtype, xp, single)
    ind, outd = _dims(in_dims, out_dims, D)
    f64, c = xp.float64, xp.ascontiguousarray
    S = c(g._full_covariances(p, K, D), dtype=f64)
    mu, w = c(p.means, dtype=f64), c(p.weights, dtype=f64)
    ia, oa = xp.asarray(ind, dtype=xp.int64), xp.asarray(outd, dtype=xp.int64)
    _, k = kernel_if_any("gmm", "gmr_condition", is_device(S))
    if k is None or max(len(ind), len(outd)) > MAX_KERNEL_DIMS:
        return _condition_arrays(single, dtype, S, mu, w, ia, oa)
    I, O = len(ind), len(outd)
    out = _Conditioning(
        single,
        dtype,
        xp.empty((B, K, I)),
        xp.empty((B, K, O)),
        xp.empty((B, K)),
        xp.empty((B, K, I, I)),
        xp.empty((B, K, I)),
        xp.empty((B, K, O, I)),
        xp.empty((B, K, O, O)),
    )
    k(S, mu, w, ia, oa, *out[2:])
    return out


def _condition_arrays(single, dtype, S, mu, w, ia, oa) -> _Conditioning:
    """gmr_condition's math by array ops (NumPy/CuPy, LAPACK's eigh), on float64 S, mu, w."""
    xp = xp_of(S)
    Sii = S[:, :, ia][:, :, :, ia]
    Soi = S[:, :, oa][:, :, :, ia]
    Soo = S[:, :, oa][:, :, :, oa]
    Sii = 0.5 * (Sii + xp.swapaxes(Sii, -1, -2))
    lam, V = xp.linalg.eigh(Sii)  # (B, K, I), (B, K, I, I)
    top = xp.maximum(lam.max(-1, keepdims=True), np.finfo(np.float64).tiny)
    lam = xp.maximum(lam, 1e-12 * top)
    Sinv = (V / lam[..., None, :]) @ xp.swapaxes(V, -1, -2)
    A = Soi @ Sinv  # (B, K, O, I)
    C = Soo - A @ xp.swapaxes(Soi, -1, -2)
    C = 0.5 * (C + xp.swapaxes(C, -1, -2))
    lc, Vc = xp.linalg.eigh(C)
    C = (Vc * xp.maximum(lc, 0)[..., None, :]) @ xp.swapaxes(Vc, -1, -2)
    with np.errstate(divide="ignore"):
        logw = xp.log(w)
    logc = logw - 0.5 * (xp.log(lam).sum(-1) + ia.shape[0] * np.log(2 * np.pi))
    c = xp.ascontiguousarray
    return _Conditioning(single, dtype, c(mu[..., ia]), c(mu[..., oa]), c(logc), c(V), c(1 / xp.sqrt(lam)), c(A), c(C))


def _query(c: _Conditioning, x):
    """(h, m, C, mean, cov) of the conditioned mixtures at the queries x (float64): the gmm
    family's gmr_query kernel, or the same math as array ops where the backend has none (CUDA)."""
    xp = xp_of(c.V)
    B, K, O, I = *c.mu_o.shape, c.mu_i.shape[-1]
    xq = val.float_array(x, "x", dtype=c.dtype, xp=xp)
    if c.single:
        if xq.ndim == 1 and I == 1:
            xq = xq[:, None]
        val.check_shape(xq, "x", (None, I))
        xq = xq[None]
    else:
        val.check_shape(xq, "x", (B, None, I))
    xq = xp.ascontiguousarray(xq, dtype=xp.float64)
    Q = xq.shape[1]
    _, k = kernel_if_any("gmm", "gmr_query", is_device(xq))
    if k is None:
        return _query_arrays(c, xq)
    h, m = xp.empty((B, Q, K)), xp.empty((B, Q, K, O))
    mean, cov = xp.empty((B, Q, O)), xp.empty((B, Q, O, O))
    k(xq, c.mu_i, c.mu_o, c.logc, c.V, c.rs, c.A, c.C, h, m, mean, cov)
    return h, m, c.C, mean, cov


def _query_arrays(c: _Conditioning, xq):
    """gmr_query's math by array ops (NumPy/CuPy), xq (B, Q, I) float64."""
    xp = xp_of(c.V)
    K = c.logc.shape[-1]
    diff = xq[:, :, None, :] - c.mu_i[:, None]  # (B, Q, K, I)
    z = xp.einsum("bkij,bqki->bqkj", c.V, diff) * c.rs[:, None]
    logh = c.logc[:, None, :] - 0.5 * (z * z).sum(-1)  # (B, Q, K)
    mx = logh.max(-1, keepdims=True)
    mx = xp.where(xp.isfinite(mx), mx, 0)
    h = xp.exp(logh - mx)
    hs = h.sum(-1, keepdims=True)
    h = xp.where(hs > 0, h / xp.where(hs > 0, hs, 1), 1.0 / K)
    m = c.mu_o[:, None] + xp.einsum("bkoi,bqki->bqko", c.A, diff)  # (B, Q, K, O)
    mean = (h[..., None] * m).sum(2)
    dm = m - mean[:, :, None, :]
    cov = xp.einsum("bqk,bkoj->bqoj", h, c.C) + xp.einsum("bqk,bqko,bqkj->bqoj", h, dm, dm)
    cov = 0.5 * (cov + xp.swapaxes(cov, -1, -2))
    return h, m, c.C, mean, cov


def _result(c: _Conditioning, x, back) -> GMRResult:
    h, m, C, mean, cov = _query(c, x)
    dtype = c.dtype
    cast = (lambda a: back(a[0].astype(dtype))) if c.single else (lambda a: back(a.astype(dtype)))
    return GMRResult(cast(h), cast(m), cast(C), cast(mean), cast(cov))


def gmr(params: GMMParams, x: ArrayLike, in_dims: Sequence[int], out_dims: Sequence[int] | None = None) -> GMRResult:
    """Condition the mixture(s) on inputs x at dimensions ``in_dims``.

    params: GMMParams of B mixtures (or one, without batch axis); x: (B, Q, I) (or (Q, I)).
    out_dims: the output dimensions (default: all others). Returns :class:`GMRResult`.
    """
    return _result(_condition(params, in_dims, out_dims), x, returner(x))


def gmr_sample(
    params: GMMParams,
    x: ArrayLike,
    in_dims: Sequence[int],
    n_samples: int,
    *,
    out_dims: Sequence[int] | None = None,
    seed: SeedLike = None,
) -> Array:
    """Draws from the conditional mixture at each query: (B, Q, n_samples, O).

    Query q of mixture b draws from Philox stream b * Q + q (pygenmod.gmm.sample's convention),
    so results are identical on every backend. A singular conditional covariance gets 1e-12 x
    its trace (or 1e-300) of diagonal jitter so it can be factored.
    """
    from . import gmm as g

    back = returner(x)
    n = val.positive_int(n_samples, "n_samples", minimum=0)
    c = _condition(params, in_dims, out_dims)
    single, dtype, B = c.single, c.dtype, c.logc.shape[0]
    h, m, C, mean, cov = _query(c, x)
    xp = xp_of(h)
    Q, K, O = m.shape[1], m.shape[2], m.shape[3]
    tr = xp.trace(C, axis1=-2, axis2=-1)[..., None, None]
    Cj = C + (1e-12 * tr + 1e-300) * xp.eye(O)
    pc = g.precisions_cholesky_from_covariances(Cj, "full")  # (B, K, O, O)
    pc = xp.broadcast_to(pc[:, None], (B, Q, K, O, O)).reshape(B * Q, K, O, O)
    Cb = xp.broadcast_to(Cj[:, None], (B, Q, K, O, O)).reshape(B * Q, K, O, O)
    prm = g.GMMParams(
        h.reshape(B * Q, K).astype(dtype),
        m.reshape(B * Q, K, O).astype(dtype),
        Cb.astype(dtype),
        pc.astype(dtype),
        "full",
    )
    out, _ = g.sample(prm, n, seed=seed)
    out = out.reshape(B, Q, n, O)
    return back(out[0] if single else out)


class GMR(_Base):
    """Regressor: a joint GaussianMixture over [X, Y]; predict(X) is the GMR mean.

    predict_dist(X) gives the full :class:`GMRResult`; sample_y(X, n) draws from the
    conditional. Parameters are GaussianMixture's.
    """

    def __init__(
        self,
        n_components: int = 1,
        *,
        covariance_type: CovarianceType = "full",
        tol: float = 1e-3,
        reg_covar: float = 1e-6,
        max_iter: int = 100,
        n_init: int = 1,
        init_params: GMMInit = "kmeans",
        random_state: SeedLike = None,
    ) -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.random_state = random_state

    def __sklearn_is_fitted__(self):
        return hasattr(self, "gmm_")

    def fit(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None) -> GMR:
        from ._gmm_estimator import GaussianMixture

        X = val.float_array(X, "X", ndim=(1, 2))
        y = val.float_array(y, "y", ndim=(1, 2), dtype=X.dtype)
        X2 = X.reshape(X.shape[0], -1)
        self._y1d = y.ndim == 1
        y2 = y.reshape(y.shape[0], -1)
        if y2.shape[0] != X2.shape[0]:
            raise ValueError(f"y: expected {X2.shape[0]} rows like X, got {y2.shape[0]}")
        self.n_features_in_ = X2.shape[1]
        self.gmm_ = GaussianMixture(**self.get_params()).fit(np.concatenate([X2, y2], 1), sample_weight=sample_weight)
        self.in_dims_ = list(range(X2.shape[1]))
        return self

    def _x(self, X):
        if not hasattr(self, "gmm_"):
            raise AttributeError("GMR is not fitted yet; call fit first")
        X = val.float_array(X, "X", ndim=(1, 2))
        return X.reshape(X.shape[0], -1) if X.ndim == 2 or self.n_features_in_ > 1 else X[:, None]

    def _params(self):
        return self.gmm_._params()

    def _conditioning(self) -> _Conditioning:
        """The fitted mixture conditioned on the input dimensions, computed once per fit: a
        prediction then only does the per-query part (x-independent eigendecompositions and
        conditional covariances are reused). A refit, or new parameter arrays, recompute it."""
        p = self._params()
        cached = getattr(self, "_conditioned", None)
        if cached is None or any(a is not b for a, b in zip(cached[0], p)):
            cached = (p, _condition(p, self.in_dims_, None))
            self._conditioned = cached
        return cached[1]

    def predict_dist(self, X: ArrayLike) -> GMRResult:
        x = self._x(X)
        return _result(self._conditioning(), x, returner(x))

    def predict(self, X: ArrayLike) -> Array:
        mean = self.predict_dist(X).mean
        return mean[:, 0] if self._y1d else mean

    def sample_y(self, X: ArrayLike, n_samples: int = 1, random_state: SeedLike = None) -> Array:
        from ._gmm_estimator import _seed

        return gmr_sample(self._params(), self._x(X), self.in_dims_, n_samples, seed=_seed(random_state))

    def score(self, X: ArrayLike, y: ArrayLike) -> float:
        y = np.asarray(y, dtype=np.float64)
        pred = self.predict(X)
        ss_res = ((y - pred) ** 2).sum()
        ss_tot = ((y - y.mean(0)) ** 2).sum()
        return float(1 - ss_res / ss_tot) if ss_tot > 0 else 0.0
