"""Cross-entropy method, batched over B independent optimisations.

CEM keeps a Gaussian over parameters (or actions), samples a population, keeps the
elites with the highest returns and refits the Gaussian to them. The pieces are the
package's kernels: batched top-k for elite selection (this module's kernel), the
reparameterized samplers on the counter-based RNG, and the weighted GMM M-step with K=1.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from . import _fast
from . import _validate as val
from ._arrays import is_device, returner, xp_of
from ._dispatch import kernel
from ._seed import resolve_seed
from ._typing import Array, ArrayLike, CemCovariance, DTypeLike, EliteWeights, SeedLike


def top_k(x: ArrayLike, k: int) -> Array:
    """Indices (int64) of the k largest entries of each row of x (..., N), largest first.

    Ties go to the lower index, so the result is deterministic on every backend. NaN is
    rejected (a NaN return has no rank).
    """
    if type(x) is np.ndarray and type(k) is int:
        fast = _fast.cpu_kernel("cem", "top_k_fast")  # one compiled call (pygenmod._fast)
        if fast is not None:
            idx = fast(x, k)
            if idx is not None:
                return idx
    back = returner(x)
    x = val.float_array(x, "x")
    if x.ndim == 0:
        raise ValueError("x: expected shape (..., N), got a scalar")
    k = val.positive_int(k, "k", minimum=0)
    if k > x.shape[-1]:
        raise ValueError(f"k: must be <= N = {x.shape[-1]}, got {k}")
    xp = xp_of(x)
    rows = x.reshape(math.prod(x.shape[:-1]), x.shape[-1])  # explicit: N may be 0
    idx = xp.empty((rows.shape[0], k), xp.int64)
    _, fn = kernel("cem", "top_k", is_device(x))
    fn(rows, idx)
    return back(idx.reshape(x.shape[:-1] + (k,)))


# ----------------------------------------------------------------------------- CEM
COVARIANCES = ("diag", "full")
ELITE_WEIGHTS = ("uniform", "rank")


class CEMState(NamedTuple):
    mean: object  #: (B, D)
    scale: object  #: (B, D) standard deviations ("diag") or (B, D, D) Cholesky factors ("full")


class CEMResult(NamedTuple):
    mean: object  #: (B, D) final sampling mean
    scale: object  #: (B, D) std or (B, D, D) scale_tril
    best_x: object  #: (B, D) best sample seen over all iterations
    best_return: object  #: (B,) its return
    elite_mean_return: object  #: (n_iter, B) mean return of the elites per iteration


def _elite_weights(xp, dtype, idx, N, scheme):
    """(B, N) point weights: zero off the elites; uniform or CMA-ES rank weights on them."""
    B, k = idx.shape
    if scheme == "uniform":
        w_rank = xp.full(k, 1.0 / k, dtype=dtype)
    else:  # log-rank weights of CMA-ES: w_i ~ log(k + 1/2) - log(i), i = 1..k
        w_rank = xp.log(k + 0.5) - xp.log(xp.arange(1, k + 1, dtype=dtype))
        w_rank = (w_rank / w_rank.sum()).astype(dtype)
    w = xp.zeros((B, N), dtype)
    w[xp.arange(B)[:, None], idx] = w_rank
    return w


def _check_update_options(n_elite, N, alpha, min_std) -> int:
    """The elite count (checked against the population size N) after checking alpha and min_std."""
    k = val.positive_int(n_elite, "n_elite")
    if k > N:
        raise ValueError(f"n_elite: must be <= the population size N = {N}, got {k}")
    if not 0.0 <= alpha < 1.0:
        raise ValueError(f"alpha: must be in [0, 1), got {alpha}")
    if not 0.0 <= min_std < math.inf:
        raise ValueError(f"min_std: must be a finite number >= 0, got {min_std}")
    return k


def _mean(mean):
    m = val.float_array(mean, "mean", ndim=2)
    if 0 in m.shape:
        raise ValueError(f"mean: expected shape (B, D) with B >= 1 problems of D >= 1 dimensions, got {tuple(m.shape)}")
    return m


def cem_step(
    mean: ArrayLike,
    scale: ArrayLike,
    samples: ArrayLike,
    returns: ArrayLike,
    n_elite: int,
    *,
    covariance: CemCovariance = "diag",
    alpha: float = 0.0,
    min_std: float = 0.0,
    elite_weights: EliteWeights = "uniform",
    reg: float = 0.0,
) -> CEMState:
    """One CEM update for B independent optimisations (maximising the returns).

    mean (B, D); scale: std (B, D) for covariance="diag" or scale_tril (B, D, D) for "full";
    samples (B, N, D) and their returns (B, N). The n_elite best samples per row (batched
    top-k, ties to the lower index) are refitted by the weighted GMM M-step with K = 1;
    ``elite_weights`` "uniform" (1/n_elite) or "rank" (CMA-ES log-rank weights). Then
    smoothing: new = alpha * old + (1 - alpha) * fitted (for "full", on the covariance), and a
    floor: std >= min_std ("diag"), or min_std**2 added to the covariance diagonal ("full").
    ``reg`` is added to the fitted variances (the M-step's reg_covar).
    """
    if (
        type(covariance) is str
        and covariance == "diag"
        and type(elite_weights) is str
        and elite_weights == "uniform"
        and type(mean) is np.ndarray
        and type(scale) is np.ndarray
        and type(samples) is np.ndarray
        and type(returns) is np.ndarray
        and type(n_elite) is int
        and type(alpha) is float
        and type(min_std) is float
        and type(reg) is float
    ):
        fast = _fast.cpu_kernel("cem", "cem_step_fast")  # one compiled call (pygenmod._fast)
        if fast is not None:
            res = fast(mean, scale, samples, returns, n_elite, alpha, min_std, reg)
            if res is not None:
                return CEMState(*res)
    return _step(mean, scale, samples, returns, n_elite, covariance, alpha, min_std, elite_weights, reg)[0]


def _step(mean, scale, samples, returns, n_elite, covariance, alpha, min_std, elite_weights, reg):
    """cem_step, also returning the (B, n_elite) elite indices."""
    from . import gmm, sampling

    back = returner(mean)
    val.choice(covariance, "covariance", COVARIANCES)
    val.choice(elite_weights, "elite_weights", ELITE_WEIGHTS)
    m = _mean(mean)
    xp, dt = xp_of(m), m.dtype
    B, D = m.shape
    X = val.float_array(samples, "samples", ndim=3, dtype=dt, xp=xp)
    if X.shape[0] != B or X.shape[2] != D:
        raise ValueError(f"samples: expected shape ({B}, N, {D}), got {X.shape}")
    N = X.shape[1]
    R = val.float_array(returns, "returns", ndim=2, dtype=dt, xp=xp)
    val.check_shape(R, "returns", (B, N))
    k = _check_update_options(n_elite, N, alpha, min_std)
    if covariance == "diag":
        S = val.float_array(scale, "scale", ndim=2, dtype=dt, xp=xp)
        val.check_shape(S, "scale", (B, D))
        if bool((S < 0).any()):
            raise ValueError("scale: standard deviations must be >= 0")
    else:
        S = val.float_array(scale, "scale", ndim=3, dtype=dt, xp=xp)
        val.check_shape(S, "scale", (B, D, D))
        sampling.check_scale_tril(S, "scale")

    idx = xp.empty((B, k), xp.int64)
    kernel("cem", "top_k", is_device(m))[1](R, idx)
    w = _elite_weights(xp, dt, idx, N, elite_weights)
    # the weighted M-step with K = 1 on arrays checked above (gmm.m_step less its second checks)
    reg_b = val.per_batch(reg, "reg_covar", B, dt, xp, lo=0.0)
    fit, _ = gmm._m_step_arrays(xp.ascontiguousarray(X), w, xp.ones((B, N, 1), dt), reg_b, covariance, 1)
    new_mean = alpha * m + (1 - alpha) * fit.means[:, 0]
    if covariance == "diag":
        new_std = alpha * S + (1 - alpha) * xp.sqrt(fit.covariances[:, 0])
        new_scale = xp.maximum(new_std, dt.type(min_std))
    else:
        cov = alpha * (S @ xp.swapaxes(S, -1, -2)) + (1 - alpha) * fit.covariances[:, 0]
        cov = cov + (min_std**2) * xp.eye(D, dtype=dt)
        new_scale = xp.asarray(sampling.scale_tril_from_cov(cov))
    return CEMState(back(xp.ascontiguousarray(new_mean)), back(xp.ascontiguousarray(new_scale))), idx


def _rank_weights(xp, dtype, k, scheme):
    if scheme == "uniform":
        return xp.full(k, 1.0 / k, dtype=dtype)
    w = xp.log(k + 0.5) - xp.log(xp.arange(1, k + 1, dtype=dtype))  # CMA-ES log-rank weights
    return (w / w.sum()).astype(dtype)


def cem_optimize(
    objective: Callable[[Array], Any],
    mean: ArrayLike,
    scale: ArrayLike,
    *,
    n_samples: int,
    n_elite: int,
    n_iter: int,
    seed: SeedLike = None,
    stream: int = 0,
    covariance: CemCovariance = "diag",
    alpha: float = 0.0,
    min_std: float = 0.0,
    elite_weights: EliteWeights = "uniform",
    reg: float = 0.0,
    noise_dtype: DTypeLike | None = np.float32,
) -> CEMResult:
    """Maximise ``objective`` with CEM, batched over B independent problems.

    objective(samples) maps a (B, N, D) array to returns (B, N). Population t is
    ``mean + scale * eps`` (``scale @ eps`` for "full") with the standard-normal noise
    ``eps = pygenmod.random.normal(seed, (B, N * D), stream=stream, offset=t*N*D,
    dtype=noise_dtype)`` converted to the problem's dtype, so the same seed gives the same
    trajectory on every backend and for every batch size; ``seed=None`` (the default) takes one
    fresh key from the package generator per call. ``noise_dtype``: float32 (the default: the
    float32 noise layout, about 2.4x cheaper to draw on the CPU than float64's, whose draws were
    most of the time a float64 CEM spent outside the objective; the population itself is
    computed in the problem's dtype) or float64 (53-bit uniforms, the layout of a float64 ``rsample_normal``); None: the
    problem's dtype. On CUDA the float32 noise can differ from the CPU's by a rounding (nvcc
    fuses multiply-adds), float64 noise by at most ~1e-13.
    ``stream`` is the global index of row 0 (problem b draws from stream ``stream + b``): a
    chunk of a larger batch starting at problem g passes ``stream=g`` and runs exactly as there.
    With ``covariance="diag"`` on the CPU backends the whole loop runs in the backend (the
    compiled one calls the objective from C++: no Python step per iteration besides it); the
    samples array is reused for the next population unless the objective keeps a reference to it.
    """
    if (
        type(mean) is np.ndarray
        and type(scale) is np.ndarray
        and type(covariance) is str
        and covariance == "diag"
        and type(elite_weights) is str
        and elite_weights == "uniform"
        and (noise_dtype is np.float32 or noise_dtype is np.float64 or noise_dtype is None)
    ):
        fast = _fast.cpu_kernel("cem", "cem_optimize_fast")  # one compiled call (pygenmod._fast)
        if fast is not None:
            noise_bytes = 0 if noise_dtype is None else np.dtype(noise_dtype).itemsize
            coerce = lambda R: _coerce_returns(R, mean.shape[0], n_samples, mean.dtype)  # noqa: E731
            res = fast(
                objective, coerce, mean, scale, n_samples, n_elite, n_iter, seed, resolve_seed, stream, alpha, min_std,
                reg, noise_bytes,
            )  # fmt: skip
            if res is not None:
                _check_completed(res[0], n_iter)
                return CEMResult(*res[1:])
    back = returner(mean)
    val.choice(covariance, "covariance", COVARIANCES)
    val.choice(elite_weights, "elite_weights", ELITE_WEIGHTS)
    m0 = _mean(mean)
    N = val.positive_int(n_samples, "n_samples")
    T = val.positive_int(n_iter, "n_iter")
    val.check_size("n_iter", (T, m0.shape[0]))  # the (n_iter, B) history
    noise = m0.dtype if noise_dtype is None else val.float_dtype(noise_dtype, "noise_dtype")
    if np.ndim(reg) == 0 and not 0.0 <= reg < math.inf:  # (B,) arrays: the composed path's per_batch
        raise ValueError(f"reg: must be a finite number >= 0, got {reg}")
    seed, stream = resolve_seed(seed), val.seed_int(stream, "stream")  # last: a key is drawn only for a valid call
    if covariance == "diag" and not is_device(m0):
        backend, run = kernel("cem", "optimize_diag")
        res = _optimize_diag(
            objective, m0, scale, N, n_elite, T, seed, stream, alpha, min_std, elite_weights, reg, noise, run
        )
        return CEMResult(*(back(a) for a in res))
    return _optimize_composed(
        objective, m0, scale, N, n_elite, T, seed, stream, covariance, alpha, min_std, elite_weights, reg, noise, back
    )


def _optimize_diag(objective, m0, scale, N, n_elite, T, seed, stream, alpha, min_std, elite_weights, reg, noise, run):
    """cem_optimize for diagonal Gaussians on the CPU: all checks once, then the backend's
    loop (per iteration: sample the population, the objective, select the elites and refit)."""
    dt = m0.dtype
    B, D = m0.shape
    m = m0.copy()
    S = val.float_array(scale, "scale", ndim=2, dtype=dt).copy()
    val.check_shape(S, "scale", (B, D))
    if bool((S < 0).any()):
        raise ValueError("scale: standard deviations must be >= 0")
    k = _check_update_options(n_elite, N, alpha, min_std)
    if (T * N * D) >= 2**64 - 1:
        raise ValueError("n_iter * n_samples * D: the noise offsets exceed 2**64")
    w = _rank_weights(np, dt, k, elite_weights)
    best_x = np.zeros((B, D), dt)
    best_r = np.full((B,), -np.inf, dt)
    history = np.empty((T, B), dt)

    idx = np.empty((B, k), np.int64)
    X = np.empty((B, N, D), dt)
    done = run(
        objective,
        lambda R: _coerce_returns(R, B, N, dt),
        m,
        S,
        seed,
        stream,
        w,
        float(alpha),
        float(min_std),
        float(reg),
        best_x,
        best_r,
        history,
        idx,
        X,
        noise.itemsize == 4,
    )
    _check_completed(done, T)
    return m, S, best_x, best_r, history


def _coerce_returns(R, B, N, dt):
    """The objective's returns as a (B, N) array of dt (the loops take an exact array as it comes
    and call this for anything else; NaN/inf is the loops' own check)."""
    R = val.float_array(R, "objective(samples)", ndim=2, dtype=dt, xp=np, finite=False)
    val.check_shape(R, "objective(samples)", (B, N))
    return R


def _check_completed(done, T):
    """The loops stop at the first iteration whose returns hold NaN or infinity."""
    if done < T:
        raise ValueError("objective(samples): contains NaN or infinity")


def _optimize_composed(
    objective, m0, scale, N, n_elite, T, seed, stream, covariance, alpha, min_std, elite_weights, reg, noise, back
):
    """cem_optimize from the separate kernels (full covariance; CUDA arrays)."""
    from . import random, sampling

    state = CEMState(m0, val.float_array(scale, "scale", dtype=None))
    xp = xp_of(state.mean)
    B, D = state.mean.shape
    best_x = xp.zeros((B, D), state.mean.dtype)
    best_r = xp.full((B,), -xp.inf, state.mean.dtype)
    history = xp.empty((T, B), state.mean.dtype)
    dt = state.mean.dtype
    device = "cuda" if is_device(state.mean) else "cpu"
    for t in range(T):
        eps = None  # the samplers draw noise in the problem's dtype themselves
        if noise != dt:  # (S=N, B, D) noise of the samplers' layout, drawn in the other dtype
            e = random.normal(seed, (B, N * D), stream=stream, offset=t * N * D, dtype=noise, device=device)
            eps = xp.swapaxes(e.reshape(B, N, D), 0, 1).astype(dt, order="C")
        if covariance == "diag":
            z = sampling.rsample_normal(
                state.mean, std=state.scale, seed=seed, n_samples=N, stream=stream, offset=t * N * D, eps=eps
            )
        else:
            z = sampling.rsample_mvn(
                state.mean, state.scale, seed=seed, n_samples=N, stream=stream, offset=t * N * D, eps=eps
            )
        X = xp.ascontiguousarray(xp.swapaxes(xp.asarray(z), 0, 1))  # (B, N, D)
        R = val.float_array(objective(X), "objective(samples)", ndim=2, dtype=X.dtype, xp=xp)
        val.check_shape(R, "objective(samples)", (B, N))
        arg = R.argmax(1)
        r_top = xp.take_along_axis(R, arg[:, None], 1)[:, 0]
        better = r_top > best_r
        best_r = xp.where(better, r_top, best_r)
        best_x = xp.where(better[:, None], X[xp.arange(B), arg], best_x)
        state, elite = _step(state.mean, state.scale, X, R, n_elite, covariance, alpha, min_std, elite_weights, reg)
        history[t] = xp.take_along_axis(R, elite, 1).mean(1)
    return CEMResult(back(state.mean), back(state.scale), back(best_x), back(best_r), back(history))


__all__ = [
    "CEMResult",
    "CEMState",
    "COVARIANCES",
    "ELITE_WEIGHTS",
    "cem_optimize",
    "cem_step",
    "top_k",
]
