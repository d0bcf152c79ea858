"""Reparameterized sampling, KL divergences and Gaussian log-densities, forward and backward.

Conventions (docs/sampling.md):

- Batched rows: ``mu`` is ``(B, D)`` (a single ``(D,)`` row is a batch of one). Samples are
  ``(B, D)``, or ``(S, B, D)`` when ``n_samples=S`` is given.
- A diagonal Gaussian's scale is given by exactly one of ``logvar`` (log sigma^2, the
  default positional argument), ``log_std`` or ``std``. ``clamp=(lo, hi)`` clamps that
  parameter (in its own units) before use; gradients are zero where the clamp is active.
- Noise: row ``b``, sample ``s``, dimension ``d`` is element ``offset + s * D + d`` of the
  Philox stream ``stream + b`` under ``seed`` (see :mod:`pygenmod.random`), so a row's
  sample does not depend on the batch it is in, the backend or the thread count.
  ``seed=None`` (the default) draws a fresh key from the package generator on every call
  (:func:`pygenmod.random.manual_seed` makes a sequence of calls reproducible); an explicit
  seed is stateless. The backward functions regenerate the same noise from
  ``(seed, stream, offset)``, so they need the forward's explicit seed (or its ``eps``):
  nothing has to be stored between forward and backward. Pass ``eps`` to use your own noise.
- float32 / float64 in, the same dtype out. float16 input is computed in float32; samples
  come back in float16, reductions (KL, log-densities) in float32 (they overflow float16).
- Full covariances are given by a lower-triangular Cholesky factor ``scale_tril`` with a
  positive diagonal, per row ``(B, D, D)`` or shared ``(D, D)``. :func:`scale_tril_from_cov`
  builds one from a covariance matrix, with jitter and an eigenvalue fallback.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from . import _fast, _grads
from . import _validate as val
from ._arrays import broadcast_contiguous, is_device, new_output, output_like, returner, xp_of
from ._dispatch import kernel
from ._seed import resolve_seed
from ._status import input_error
from ._typing import Array, ArrayLike, Clamp, SeedLike

KINDS = {"logvar": 0, "log_std": 1, "std": 2}
# The kernels' per-row status codes besides 0 (C++ sampling::RowCode; tests/test_contracts.py)
ROW_CODES = {"nonfinite": 1, "bad_tril": 2}
HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class Head(NamedTuple):
    """Output of the fused heads :func:`normal_head` / :func:`mvn_head`."""

    z: object  #: (B, D) or (S, B, D) samples
    kl: object  #: (B,) KL(q || N(0, I)) per row
    log_q: object  #: (B,) or (S, B) log q(z | x), or None when not requested
    eps: object  #: the standard-normal noise, or None when not requested


class Sample(NamedTuple):
    """``rsample_*(..., return_eps=True)``: the sample and the noise that made it."""

    z: object  #: (B, D) or (S, B, D) samples
    eps: object  #: the standard-normal noise, same shape


# ---------------------------------------------------------------------------------------
# argument handling
# ---------------------------------------------------------------------------------------
def _empty(xp, dtype):
    return xp.empty(0, dtype)


def _scale_arg(logvar, log_std, std):
    given = [(n, v) for n, v in (("logvar", logvar), ("log_std", log_std), ("std", std)) if v is not None]
    if len(given) != 1:
        raise TypeError("give exactly one of logvar, log_std or std")
    return given[0]


def _clamp(clamp):
    if clamp is None:
        return -math.inf, math.inf
    try:
        lo, hi = (float(c) if c is not None else None for c in clamp)
    except (TypeError, ValueError):
        raise TypeError(f"clamp: expected (lo, hi), got {clamp!r}") from None
    lo = -math.inf if lo is None else lo
    hi = math.inf if hi is None else hi
    if math.isnan(lo) or math.isnan(hi) or lo > hi:
        raise ValueError(f"clamp: expected lo <= hi, got {clamp!r}")
    return lo, hi


def _rows2d(a, name, D=None):
    """(B, D) view of a (B, D) or (D,) array; returns (array2d, was_1d)."""
    if a.ndim == 1:
        a = a.reshape(1, -1)
        one = True
    else:
        one = False
    if D is not None and a.shape[1] != D:
        raise ValueError(f"{name}: expected {D} columns, got shape {a.shape}")
    return a, one


def _main(mu, name="mu"):
    """mu as a (B, D) float array, plus (returner, the half dtype to return samples in or None,
    single-row flag). Half precision (float16, ml_dtypes' bfloat16) is computed in float32."""
    back = returner(mu)
    m, half = _widen(val.float_array(mu, name, ndim=(1, 2), finite=False, allow_half=True))
    m, one = _rows2d(m, name)
    return m, back, half, one


def _widen(a):
    """(a, None), or (a in float32, its half dtype) for float16 / bfloat16 input."""
    if val.is_half(a.dtype):
        return a.astype(val.compute_dtype(a.dtype)), a.dtype
    return a, None


def _like(x, name, ref, shape=None, finite=False):
    a = val.float_array(x, name, dtype=ref.dtype, xp=xp_of(ref), finite=finite, allow_half=True)
    if shape is not None:
        if a.shape != tuple(shape):
            if a.size == math.prod(shape) and a.ndim + 1 == len(shape) and shape[0] == 1:
                a = a.reshape(shape)
            else:
                val.check_shape(a, name, shape)
    return a


def _status(status, what, first_axis="row"):
    if status.size and bool(status.any()):
        bad = (
            int(xp_of(status).flatnonzero(status)[0])
            if hasattr(xp_of(status), "flatnonzero")
            else int(np.flatnonzero(np.asarray(status))[0])
        )
        code = int(status[bad])
        if code == ROW_CODES["bad_tril"]:
            raise ValueError(
                f"scale_tril: matrix {bad} is not lower triangular with a positive diagonal "
                "(use scale_tril_from_cov for a covariance)"
            )
        raise input_error(  # a ValueError carrying Status.NONFINITE_INPUT per row (.status)
            f"{what}: {first_axis} {bad} contains NaN or infinity"
            + (" or a non-positive std" if "std" in what else ""),
            status != 0,
        )


def _samples(n_samples):
    if n_samples is None:
        return 1, False
    return val.positive_int(n_samples, "n_samples", minimum=0), True


def _cast(x, half):
    """x back in the caller's half dtype (None: unchanged)."""
    if x is None or half is None:
        return x
    return x.astype(half)


def _out_z(z, S, multi, one):
    if not multi:
        z = z[0]
        return z[0] if one else z
    return z[:, 0] if one else z


def _out_row(v, one):
    return v[0] if (one and v is not None) else v


def _out_sb(v, multi, one):
    if v is None:
        return None
    if not multi:
        v = v[0]
        return v[0] if one else v
    return v[:, 0] if one else v


# ---------------------------------------------------------------------------------------
# diagonal Gaussians
# ---------------------------------------------------------------------------------------
def _eps_arg(eps, m, S, multi, one):
    xp = xp_of(m)
    if eps is None:
        return _empty(xp, m.dtype)
    B, D = m.shape
    e = _like(eps, "eps", m, finite=False)
    want = (S, B, D) if multi else (B, D)
    if one:
        want = (S, D) if multi else (D,)
    val.check_shape(e, "eps", want)
    return xp.ascontiguousarray(e.reshape(S, B, D))


class _Call(NamedTuple):
    """The common arguments of the sampling heads and their VJPs, validated."""

    m: object
    back: object
    half: object  #: the caller's half dtype, or None
    one: bool
    S: int
    multi: bool
    seed: int
    stream: int
    offset: int
    eps: object  #: (S, B, D) or size 0


def _call(mu, seed, n_samples, stream, offset, eps, backward=False):
    m, back, half, one = _main(mu)
    S, multi = _samples(n_samples)
    if backward and seed is None and eps is None:
        raise TypeError(
            "seed: a backward pass regenerates the forward's noise, so it needs the "
            "forward's explicit seed (or its eps=); seed=None would draw new noise"
        )
    # a call given eps draws no noise, so seed=None takes no key (the package generator stays
    # where it is); an explicit seed is still checked (and a Generator still advances)
    seed = 0 if seed is None and eps is not None else resolve_seed(seed)
    stream, offset = val.seed_int(stream, "stream"), val.seed_int(offset, "offset")
    return _Call(m, back, half, one, S, multi, seed, stream, offset, _eps_arg(eps, m, S, multi, one))


def _out_arg(out, c: _Call, inputs=()):
    """z's buffer: a fresh (S, B, D) array, or the caller's ``out`` (same dtype, C-contiguous,
    writable, sharing no memory with ``inputs``, the (name, array) pairs the kernel reads)."""
    xp, (B, D), dt = xp_of(c.m), c.m.shape, c.m.dtype
    if out is None:
        val.check_size("n_samples", (c.S, B, D))
        return new_output(xp, (c.S, B, D), dt)
    want = ((c.S,) if c.multi else ()) + ((D,) if c.one else (B, D))
    if c.half is not None or xp_of(out) is not xp or getattr(out, "dtype", None) != dt:
        raise TypeError(f"out: expected a {xp.__name__} array of dtype {dt}")
    val.check_shape(out, "out", want)
    # CuPy's flags have no 'writeable' (device arrays are always writable)
    if not out.flags.c_contiguous or not getattr(out.flags, "writeable", True):
        raise ValueError("out: must be C-contiguous and writeable")
    val.out_buffer(out, "out", (("mu", c.m), ("eps", c.eps)) + tuple(inputs))
    return out.reshape(c.S, B, D)


def _head_outputs(c: _Call, log_q, return_eps, out=None, want_kl=True, inputs=()):
    """Preallocated (z, eps_out, kl, log_q, status) for a head call (kl size 0 without want_kl)."""
    xp, (B, D), dt = xp_of(c.m), c.m.shape, c.m.dtype
    return (
        _out_arg(out, c, inputs),
        new_output(xp, (c.S, B, D), dt) if return_eps else _empty(xp, dt),
        xp.empty(B, dt) if want_kl else _empty(xp, dt),
        xp.empty((c.S, B), dt) if log_q else _empty(xp, dt),
        xp.empty(B, np.int32),
    )


def _head_result(c: _Call, z, e_out, kl, lq, log_q, return_eps):
    S, multi, one, half, back = c.S, c.multi, c.one, c.half, c.back
    return Head(
        back(_cast(_out_z(z, S, multi, one), half)),
        back(_out_row(kl, one)) if kl is not None else None,
        back(_out_sb(lq, multi, one)) if log_q else None,
        back(_cast(_out_z(e_out, S, multi, one), half)) if return_eps else None,
    )


def _head_grads(c: _Call, grad_z, grad_kl, grad_log_q):
    """The upstream gradients of a head as (S, B, D), (B,), (S, B) arrays (size 0 when None)."""
    m, S, multi, one = c.m, c.S, c.multi, c.one
    xp = xp_of(m)
    B, D = m.shape
    gz = gk = gq = _empty(xp, m.dtype)
    if grad_z is not None:
        gz = _like(grad_z, "grad_z", m, finite=True)
        val.check_shape(gz, "grad_z", ((S,) if multi else ()) + ((D,) if one else (B, D)))
        gz = xp.ascontiguousarray(gz.reshape(S, B, D))
    if grad_kl is not None:
        gk = _like(grad_kl, "grad_kl", m, finite=True)
        gk = broadcast_contiguous(xp, gk, (B,)) if gk.ndim == 0 else xp.ascontiguousarray(gk.reshape(-1))
        val.check_shape(gk, "grad_kl", (B,))
    if grad_log_q is not None:
        gq = _like(grad_log_q, "grad_log_q", m, finite=True)
        val.check_shape(gq, "grad_log_q", ((S,) if multi else ()) + (() if one else (B,)))
        gq = xp.ascontiguousarray(gq.reshape(S, B))
    return gz, gk, gq


def normal_head(
    mu: ArrayLike,
    logvar: ArrayLike | None = None,
    *,
    log_std: ArrayLike | None = None,
    std: ArrayLike | None = None,
    seed: SeedLike = None,
    n_samples: int | None = None,
    stream: int = 0,
    offset: int = 0,
    eps: ArrayLike | None = None,
    clamp: Clamp | None = None,
    log_q: bool = False,
    return_eps: bool = False,
    out: Array | None = None,
) -> Head:
    """Fused VAE head, one pass: ``z = mu + sigma * eps``, ``KL(N(mu, sigma^2) || N(0, I))`` per
    row and, with ``log_q=True``, ``log q(z | x)`` per sample. Returns :class:`Head`.
    ``out``: an optional NumPy/CuPy buffer for z (saves the page faults of a fresh array)."""
    if not log_q and not return_eps:
        res, seed = _normal_head_fast(mu, logvar, log_std, std, seed, n_samples, stream, offset, eps, clamp, out, True)
        if res is not None:
            return Head(res[0], res[1], None, None)
    return _normal_head(mu, logvar, log_std, std, seed, n_samples, stream, offset, eps, clamp, log_q, return_eps, out)


def _normal_head_fast(mu, logvar, log_std, std, seed, n_samples, stream, offset, eps, clamp, out, head):
    """The one-call path (pygenmod._fast) of normal_head ((z, kl) with head) and rsample_normal
    (z) for NumPy arrays, logvar and the default options: (result, seed), the result None where
    the general path must run, and then the seed it must use (a key the compiled call drew)."""
    if (
        type(mu) is np.ndarray
        and type(logvar) is np.ndarray
        and log_std is None
        and std is None
        and n_samples is None
        and eps is None
        and clamp is None
        and out is None
    ):
        fast = _fast.cpu_kernel("sampling", "normal_head_fast")
        if fast is not None:
            res, key = fast(mu, logvar, seed, resolve_seed, stream, offset, head)
            return res, (seed if key is None else key)
    return None, seed


def _normal_head(
    mu, logvar, log_std, std, seed, n_samples, stream, offset, eps, clamp, log_q, return_eps, out, want_kl=True
):
    """normal_head; without want_kl the kernel skips the KL (Head.kl is then None)."""
    c = _call(mu, seed, n_samples, stream, offset, eps)
    pname, p = _scale_arg(logvar, log_std, std)
    p = _like(p, pname, c.m, shape=c.m.shape)
    lo, hi = _clamp(clamp)
    outs = _head_outputs(c, log_q, return_eps, out, want_kl, inputs=((pname, p),))
    _, fn = kernel("sampling", "normal_head", is_device(c.m))
    fn(c.m, p, c.eps, KINDS[pname], lo, hi, c.seed, c.stream, c.offset, *outs)
    _status(outs[-1], f"mu or {pname}" + (" or eps" if eps is not None else ""))
    z, e_out, kl, lq = outs[:-1]
    return _head_result(c, z, e_out, kl if want_kl else None, lq, log_q, return_eps)


def rsample_normal(
    mu: ArrayLike,
    logvar: ArrayLike | None = None,
    *,
    log_std: ArrayLike | None = None,
    std: ArrayLike | None = None,
    seed: SeedLike = None,
    n_samples: int | None = None,
    stream: int = 0,
    offset: int = 0,
    eps: ArrayLike | None = None,
    clamp: Clamp | None = None,
    return_eps: bool = False,
    out: Array | None = None,
) -> Array | Sample:
    """Reparameterized sample ``z = mu + sigma * eps`` of a diagonal Gaussian.

    Returns z, or :class:`Sample` ``(z, eps)`` with ``return_eps=True``. See the module docstring for the noise
    convention, ``clamp`` and dtypes.
    """
    if not return_eps:
        z, seed = _normal_head_fast(mu, logvar, log_std, std, seed, n_samples, stream, offset, eps, clamp, out, False)
        if z is not None:
            return z
    h = _normal_head(
        mu, logvar, log_std, std, seed, n_samples, stream, offset, eps, clamp, False, return_eps, out, want_kl=False
    )
    return Sample(h.z, h.eps) if return_eps else h.z


def _head_backward_fast(name, mu, scale, seed, n_samples, stream, offset, eps, grad_z, grad_kl=None, grad_log_q=None):
    """The one-call path ``name`` of normal_head_backward / mvn_head_backward for plain arrays,
    one sample, and eps or a seed: (result, seed), or (None, the seed for the general path: a
    key drawn before a later check, else the caller's)."""
    if not (
        type(mu) is np.ndarray
        and type(scale) is np.ndarray
        and n_samples is None
        and (eps is None or type(eps) is np.ndarray)
        and (seed is not None or eps is not None)
        and (grad_z is None or type(grad_z) is np.ndarray)
        and (grad_kl is None or type(grad_kl) is np.ndarray)
        and (grad_log_q is None or type(grad_log_q) is np.ndarray)
        and (grad_z is not None or grad_kl is not None or grad_log_q is not None)
    ):
        return None, seed
    fast = _fast.cpu_kernel("sampling", name)  # one compiled call (pygenmod._fast)
    if fast is None:
        return None, seed
    res, key = fast(mu, scale, eps, seed, resolve_seed, stream, offset, grad_z, grad_kl, grad_log_q)
    return res, (seed if key is None else key)


@_grads.backward("grad_z", "grad_kl", "grad_log_q")
def normal_head_backward(
    mu: ArrayLike,
    logvar: ArrayLike | None = None,
    *,
    log_std: ArrayLike | None = None,
    std: ArrayLike | None = None,
    grad_z: ArrayLike | None = None,
    grad_kl: ArrayLike | None = None,
    grad_log_q: ArrayLike | None = None,
    seed: SeedLike = None,
    n_samples: int | None = None,
    stream: int = 0,
    offset: int = 0,
    eps: ArrayLike | None = None,
    clamp: Clamp | None = None,
) -> tuple[Array, Array]:
    """VJP of :func:`normal_head` (and of :func:`rsample_normal`, with only ``grad_z``): returns
    ``(grad_mu, grad_scale)`` with grad_scale w.r.t. the scale argument given. Pass the upstream
    gradients of the outputs you use (at least one; None or left out: zero). The noise is
    regenerated from ``(seed, stream, offset)`` unless ``eps`` is passed."""
    if log_std is None and std is None and clamp is None:
        res, seed = _head_backward_fast(
            "normal_head_backward_fast", mu, logvar, seed, n_samples, stream, offset, eps, grad_z, grad_kl, grad_log_q
        )
        if res is not None:
            return res
    c = _call(mu, seed, n_samples, stream, offset, eps, backward=True)
    pname, p = _scale_arg(logvar, log_std, std)
    p = _like(p, pname, c.m, shape=c.m.shape)
    lo, hi = _clamp(clamp)
    grads = _head_grads(c, grad_z, grad_kl, grad_log_q)
    dmu, dp = output_like(c.m), output_like(c.m)
    _, fn = kernel("sampling", "normal_head_backward", is_device(c.m))
    fn(c.m, p, c.eps, KINDS[pname], lo, hi, c.seed, c.stream, c.offset, c.S, *grads, dmu, dp)
    if c.one:
        dmu, dp = dmu[0], dp[0]
    return c.back(_cast(dmu, c.half)), c.back(_cast(dp, c.half))


@_grads.backward("grad_z", old=("grad_z", "mu", "logvar"))
def rsample_normal_backward(
    mu: ArrayLike,
    logvar: ArrayLike | None = None,
    *,
    grad_z: ArrayLike,
    log_std: ArrayLike | None = None,
    std: ArrayLike | None = None,
    seed: SeedLike = None,
    n_samples: int | None = None,
    stream: int = 0,
    offset: int = 0,
    eps: ArrayLike | None = None,
    clamp: Clamp | None = None,
) -> tuple[Array, Array]:
    """VJP of :func:`rsample_normal`: ``(grad_mu, grad_scale)``. The old grad-first form
    ``rsample_normal_backward(grad_z, mu, ...)`` is deprecated."""
    if log_std is None and std is None and clamp is None:
        res, seed = _head_backward_fast(
            "normal_head_backward_fast", mu, logvar, seed, n_samples, stream, offset, eps, grad_z
        )
        if res is not None:
            return res
    return normal_head_backward(
        mu,
        logvar,
        log_std=log_std,
        std=std,
        grad_z=grad_z,
        seed=seed,
        n_samples=n_samples,
        stream=stream,
        offset=offset,
        eps=eps,
        clamp=clamp,
    )


def _prior(prior, name, m):
    xp = xp_of(m)
    if prior is None:
        return _empty(xp, m.dtype)
    if isinstance(prior, (int, float)) and not isinstance(prior, bool):
        if prior == 0 and name.endswith("mu"):
            return _empty(xp, m.dtype)
        return xp.full(m.shape, float(prior), m.dtype)
    a = _like(prior, name, m)
    if a.ndim > 2:
        raise ValueError(f"{name}: expected a scalar, (D,) or (B, D), got shape {a.shape}")
    try:
        return broadcast_contiguous(xp, a, m.shape)
    except ValueError:
        raise ValueError(f"{name}: shape {a.shape} does not broadcast to {m.shape}") from None


def _kl_args(mu, logvar, log_std, std, prior_mu, prior_logvar, prior_log_std, prior_std, clamp):
    m, back, half, one = _main(mu)
    pname, p = _scale_arg(logvar, log_std, std)
    p = _like(p, pname, m, shape=m.shape)
    given = [
        (n, v)
        for n, v in (("prior_logvar", prior_logvar), ("prior_log_std", prior_log_std), ("prior_std", prior_std))
        if v is not None
    ]
    if len(given) > 1:
        raise TypeError("give at most one of prior_logvar, prior_log_std, prior_std")
    if given and given[0][0] != "prior_" + pname:
        raise TypeError(f"the prior's scale must use the same parametrisation as {pname} ({'prior_' + pname})")
    pm = _prior(prior_mu, "prior_mu", m)
    pp = _empty(xp_of(m), m.dtype)
    if given:
        pp = _prior(given[0][1], given[0][0], m)
    return m, back, half, one, pname, p, pm, pp, _clamp(clamp)


def kl_normal(
    mu: ArrayLike,
    logvar: ArrayLike | None = None,
    prior_mu: ArrayLike | None = None,
    prior_logvar: ArrayLike | None = None,
    *,
    log_std: ArrayLike | None = None,
    std: ArrayLike | None = None,
    prior_log_std: ArrayLike | None = None,
    prior_std: ArrayLike | None = None,
    clamp: Clamp | None = None,
) -> Array:
    """``KL(N(mu, sigma^2) || N(prior_mu, prior_sigma^2))`` summed over the last axis, per row
    (diagonal Gaussians; the prior defaults to N(0, I) and may be a scalar, (D,) or (B, D),
    in the same parametrisation as the posterior's scale)."""
    if (
        type(mu) is np.ndarray
        and type(logvar) is np.ndarray
        and prior_mu is None
        and prior_logvar is None
        and log_std is None
        and std is None
        and prior_log_std is None
        and prior_std is None
        and clamp is None
    ):
        fast = _fast.cpu_kernel("sampling", "kl_normal_fast")  # one compiled call (pygenmod._fast)
        if fast is not None:
            kl = fast(mu, logvar)
            if kl is not None:
                return kl
    m, back, half, one, pname, p, pm, pp, (lo, hi) = _kl_args(
        mu, logvar, log_std, std, prior_mu, prior_logvar, prior_log_std, prior_std, clamp
    )
    xp = xp_of(m)
    B = m.shape[0]
    kl = xp.empty(B, m.dtype)
    status = xp.empty(B, np.int32)
    _, fn = kernel("sampling", "kl_normal", is_device(m))
    fn(m, p, pm, pp, KINDS[pname], lo, hi, kl, status)
    _status(status, f"mu, {pname} or the prior")
    return back(_out_row(kl, one))


@_grads.backward("grad_kl", old=("grad", "mu", "logvar", "prior_mu", "prior_logvar"))
def kl_normal_backward(
    mu: ArrayLike,
    logvar: ArrayLike | None = None,
    prior_mu: ArrayLike | None = None,
    prior_logvar: ArrayLike | None = None,
    *,
    grad_kl: ArrayLike,
    log_std: ArrayLike | None = None,
    std: ArrayLike | None = None,
    prior_log_std: ArrayLike | None = None,
    prior_std: ArrayLike | None = None,
    clamp: Clamp | None = None,
) -> tuple[Array, Array, Array | None, Array | None]:
    """VJP of :func:`kl_normal`: ``(grad_mu, grad_scale, grad_prior_mu, grad_prior_scale)``; the
    prior gradients are (B, D) (sum them yourself for a broadcast prior), None without a prior.
    ``grad_kl``: (B,) or a scalar. The old grad-first form ``kl_normal_backward(grad, mu, ...)``
    is deprecated."""
    if (
        type(mu) is np.ndarray
        and type(logvar) is np.ndarray
        and type(grad_kl) is np.ndarray
        and prior_mu is None
        and prior_logvar is None
        and log_std is None
        and std is None
        and prior_log_std is None
        and prior_std is None
        and clamp is None
    ):
        fast = _fast.cpu_kernel("sampling", "kl_normal_backward_fast")  # one compiled call (pygenmod._fast)
        out = None if fast is None else fast(mu, logvar, grad_kl)
        if out is not None:
            return out
    m, back, half, one, pname, p, pm, pp, (lo, hi) = _kl_args(
        mu, logvar, log_std, std, prior_mu, prior_logvar, prior_log_std, prior_std, clamp
    )
    xp = xp_of(m)
    B = m.shape[0]
    g = _like(grad_kl, "grad_kl", m, finite=True)
    g = broadcast_contiguous(xp, g, (B,)) if g.ndim == 0 else xp.ascontiguousarray(g.reshape(-1))
    val.check_shape(g, "grad_kl", (B,))
    dmu, dp = output_like(m), output_like(m)
    dpm = output_like(m) if prior_mu is not None else _empty(xp, m.dtype)
    dpp = output_like(m) if pp.size else _empty(xp, m.dtype)
    _, fn = kernel("sampling", "kl_normal_backward", is_device(m))
    fn(m, p, pm, pp, KINDS[pname], lo, hi, g, dmu, dp, dpm, dpp)
    outs = [dmu, dp, dpm if prior_mu is not None else None, dpp if pp.size else None]
    return tuple(back(_cast(o[0] if one else o, half)) if o is not None else None for o in outs)


def _x_rows(x, m, one):
    """x as (R, D) rows with R = S * B, and the leading shape to restore."""
    a = _like(x, "x", m, finite=False)
    B, D = m.shape
    if a.ndim == 0 or a.shape[-1] != D:
        raise ValueError(f"x: expected a last axis of {D}, got shape {a.shape}")
    lead = a.shape[:-1]
    if not one and (len(lead) == 0 or lead[-1] != B):
        raise ValueError(f"x: expected shape (..., {B}, {D}) to match mu {m.shape}, got {a.shape}")
    return xp_of(m).ascontiguousarray(a.reshape(math.prod(lead), D)), lead


def _log_prob_args(x, mu, logvar, log_std, std, clamp):
    m, back, half, one = _main(mu)
    pname, p = _scale_arg(logvar, log_std, std)
    p = _like(p, pname, m, shape=m.shape)
    xr, lead = _x_rows(x, m, one)
    return m, back, half, one, pname, p, _clamp(clamp), xr, lead


def normal_log_prob(
    x: ArrayLike,
    mu: ArrayLike,
    logvar: ArrayLike | None = None,
    *,
    log_std: ArrayLike | None = None,
    std: ArrayLike | None = None,
    clamp: Clamp | None = None,
) -> Array:
    """``log N(x; mu, diag(sigma^2))`` summed over the last axis. x is (B, D) or (S, B, D)
    (samples of each row); returns (B,) or (S, B)."""
    if (
        type(x) is np.ndarray
        and type(mu) is np.ndarray
        and type(logvar) is np.ndarray
        and log_std is None
        and std is None
        and clamp is None
    ):
        fast = _fast.cpu_kernel("sampling", "normal_log_prob_fast")  # one compiled call (pygenmod._fast)
        if fast is not None:
            lp = fast(x, mu, logvar)
            if lp is not None:
                return lp
    m, back, half, one, pname, p, (lo, hi), xr, lead = _log_prob_args(x, mu, logvar, log_std, std, clamp)
    xp = xp_of(m)
    out = xp.empty(xr.shape[0], m.dtype)
    status = xp.empty(xr.shape[0], np.int32)
    _, fn = kernel("sampling", "normal_log_prob", is_device(m))
    fn(xr, m, p, KINDS[pname], lo, hi, out, status)
    _status(status, f"x, mu or {pname}", "row of x")
    return back(out.reshape(lead))


@_grads.backward("grad_log_prob", old=("grad", "x", "mu", "logvar"))
def normal_log_prob_backward(
    x: ArrayLike,
    mu: ArrayLike,
    logvar: ArrayLike | None = None,
    *,
    grad_log_prob: ArrayLike,
    log_std: ArrayLike | None = None,
    std: ArrayLike | None = None,
    clamp: Clamp | None = None,
) -> tuple[Array, Array, Array]:
    """VJP of :func:`normal_log_prob`: ``(grad_x, grad_mu, grad_scale)``; ``grad_log_prob`` has
    the forward's result shape. The old form ``normal_log_prob_backward(grad, x, ...)`` is deprecated."""
    if (
        type(x) is np.ndarray
        and type(mu) is np.ndarray
        and type(logvar) is np.ndarray
        and type(grad_log_prob) is np.ndarray
        and log_std is None
        and std is None
        and clamp is None
    ):
        fast = _fast.cpu_kernel("sampling", "normal_log_prob_backward_fast")  # one compiled call (pygenmod._fast)
        out = None if fast is None else fast(x, mu, logvar, grad_log_prob)
        if out is not None:
            return out
    m, back, half, one, pname, p, (lo, hi), xr, lead = _log_prob_args(x, mu, logvar, log_std, std, clamp)
    xp = xp_of(m)
    g = _like(grad_log_prob, "grad_log_prob", m, finite=True)
    val.check_shape(g, "grad_log_prob", lead)
    g = xp.ascontiguousarray(g.reshape(-1))
    dx, dmu, dp = output_like(xr), output_like(m), output_like(m)
    _, fn = kernel("sampling", "normal_log_prob_backward", is_device(m))
    fn(xr, m, p, KINDS[pname], lo, hi, g, dx, dmu, dp)
    dx = dx.reshape(lead + (m.shape[1],))
    if one:
        dmu, dp = dmu[0], dp[0]
    return back(_cast(dx, half)), back(_cast(dmu, half)), back(_cast(dp, half))


# ---------------------------------------------------------------------------------------
# full covariance (Cholesky factors)
# ---------------------------------------------------------------------------------------
def _tril_arg(L, name, m):
    """L as (LB, D, D) with LB in {1, B}; (D, D) is shared by every row."""
    a = _like(L, name, m, finite=False)
    B, D = m.shape
    if a.ndim == 2:
        a = a.reshape(1, *a.shape)
    if a.ndim != 3 or a.shape[1:] != (D, D) or a.shape[0] not in (1, B):
        raise ValueError(f"{name}: expected shape ({D}, {D}) or ({B}, {D}, {D}), got {tuple(L.shape)}")
    return xp_of(m).ascontiguousarray(a)


def check_scale_tril(L: ArrayLike, name: str = "scale_tril") -> None:
    """Raise ValueError unless every matrix of ``L`` is lower triangular with a positive,
    finite diagonal and finite entries."""
    L = _widen(val.float_array(L, name, finite=False, allow_half=True))[0]
    xp = xp_of(L)
    if not bool(xp.isfinite(L).all()):
        raise ValueError(f"{name}: contains NaN or infinity")
    if bool((xp.triu(L, 1) != 0).any()):
        raise ValueError(f"{name}: not lower triangular (entries above the diagonal are non-zero)")
    if not bool((xp.diagonal(L, axis1=-2, axis2=-1) > 0).all()):
        raise ValueError(f"{name}: the diagonal must be positive")


def mvn_head(
    mu: ArrayLike,
    scale_tril: ArrayLike,
    *,
    seed: SeedLike = None,
    n_samples: int | None = None,
    stream: int = 0,
    offset: int = 0,
    eps: ArrayLike | None = None,
    log_q: bool = False,
    return_eps: bool = False,
    check: bool = True,
    out: Array | None = None,
    validate: Any = val.DEPRECATED,
) -> Head:
    """Fused full-covariance head: ``z = mu + L eps``, ``KL(N(mu, L L^T) || N(0, I))`` per row and,
    with ``log_q=True``, ``log q(z | x)``. Returns :class:`Head`. ``check=False`` skips the
    check that the entries above the diagonal are zero (they are never read); ``validate=`` is
    its deprecated spelling."""
    plain = n_samples is None and eps is None and not log_q and not return_eps and out is None
    zk, seed = _mvn_head_fast("z, kl", mu, scale_tril, seed, stream, offset, plain, check, validate)
    if zk is not None:
        return Head(zk[0], zk[1], None, None)
    check = val.renamed(check, validate, "check", "validate", func="sampling.mvn_head", default=True)
    return _mvn(mu, scale_tril, seed, n_samples, stream, offset, eps, log_q, return_eps, check, out, True)


def _mvn_head_fast(what, mu, scale_tril, seed, stream, offset, plain, check=True, validate=val.DEPRECATED):
    """The one-call path of mvn_head, rsample_mvn and kl_mvn (``what``: _MVN_HEAD_OUT's key) for
    plain NumPy arguments and options: (its result or None, the seed for the general path: a key
    drawn there, or the caller's)."""
    if not (
        plain
        and type(mu) is np.ndarray
        and type(scale_tril) is np.ndarray
        and check is True
        and validate is val.DEPRECATED
    ):
        return None, seed
    fast = _fast.cpu_kernel("sampling", "mvn_head_fast")  # one compiled call (pygenmod._fast)
    if fast is None:
        return None, seed
    res, key = fast(mu, scale_tril, seed, resolve_seed, stream, offset, _MVN_HEAD_OUT[what])
    return res, (seed if key is None else key)


def _mvn(mu, scale_tril, seed, n_samples, stream, offset, eps, log_q, return_eps, check, out, want_kl):
    """mvn_head; without ``want_kl`` the KL output is size 0 (the kernel then skips it and the
    log-determinant) and the result's kl is None."""
    c = _call(mu, seed, n_samples, stream, offset, eps)
    L = _tril_arg(scale_tril, "scale_tril", c.m)
    outs = _head_outputs(c, log_q, return_eps, out, want_kl, inputs=(("scale_tril", L),))
    _, fn = kernel("sampling", "mvn_head", is_device(c.m))
    fn(c.m, L, c.eps, bool(check), c.seed, c.stream, c.offset, *outs)
    _status(outs[-1], "mu, scale_tril" + (" or eps" if eps is not None else ""))
    return _head_result(c, outs[0], outs[1], outs[2] if want_kl else None, outs[3], log_q, return_eps)


def rsample_mvn(
    mu: ArrayLike,
    scale_tril: ArrayLike,
    *,
    seed: SeedLike = None,
    n_samples: int | None = None,
    stream: int = 0,
    offset: int = 0,
    eps: ArrayLike | None = None,
    return_eps: bool = False,
    check: bool = True,
    out: Array | None = None,
    validate: Any = val.DEPRECATED,
) -> Array | Sample:
    """Reparameterized sample ``z = mu + L eps`` of ``N(mu, L L^T)``; L per row (B, D, D) or shared (D, D).
    Returns z, or :class:`Sample` ``(z, eps)`` with ``return_eps=True``; ``check`` as in :func:`mvn_head`."""
    plain = n_samples is None and eps is None and not return_eps and out is None
    z, seed = _mvn_head_fast("z", mu, scale_tril, seed, stream, offset, plain, check, validate)
    if z is not None:
        return z
    check = val.renamed(check, validate, "check", "validate", func="sampling.rsample_mvn", default=True)
    h = _mvn(mu, scale_tril, seed, n_samples, stream, offset, eps, False, return_eps, check, out, False)
    return Sample(h.z, h.eps) if return_eps else h.z


@_grads.backward("grad_z", "grad_kl", "grad_log_q")
def mvn_head_backward(
    mu: ArrayLike,
    scale_tril: ArrayLike,
    *,
    grad_z: ArrayLike | None = None,
    grad_kl: ArrayLike | None = None,
    grad_log_q: ArrayLike | None = None,
    seed: SeedLike = None,
    n_samples: int | None = None,
    stream: int = 0,
    offset: int = 0,
    eps: ArrayLike | None = None,
) -> tuple[Array, Array]:
    """VJP of :func:`mvn_head`: ``(grad_mu, grad_scale_tril)`` (grad_scale_tril is lower
    triangular, shaped like scale_tril; summed over rows for a shared L). Pass the upstream
    gradients of the outputs you use (at least one; None or left out: zero)."""
    res, seed = _head_backward_fast(
        "mvn_head_backward_fast", mu, scale_tril, seed, n_samples, stream, offset, eps, grad_z, grad_kl, grad_log_q
    )
    if res is not None:
        return res
    c = _call(mu, seed, n_samples, stream, offset, eps, backward=True)
    shared_in = getattr(scale_tril, "ndim", 3) == 2
    L = _tril_arg(scale_tril, "scale_tril", c.m)
    grads = _head_grads(c, grad_z, grad_kl, grad_log_q)
    dmu, dL = output_like(c.m), output_like(L)
    _, fn = kernel("sampling", "mvn_head_backward", is_device(c.m))
    fn(c.m, L, c.eps, c.seed, c.stream, c.offset, c.S, *grads, dmu, dL)
    if c.one:
        dmu = dmu[0]
    if shared_in or c.one:
        dL = dL[0]
    return c.back(_cast(dmu, c.half)), c.back(_cast(dL, c.half))


@_grads.backward("grad_z", old=("grad_z", "mu", "scale_tril"))
def rsample_mvn_backward(
    mu: ArrayLike,
    scale_tril: ArrayLike,
    *,
    grad_z: ArrayLike,
    seed: SeedLike = None,
    n_samples: int | None = None,
    stream: int = 0,
    offset: int = 0,
    eps: ArrayLike | None = None,
) -> tuple[Array, Array]:
    """VJP of :func:`rsample_mvn`: ``(grad_mu, grad_scale_tril)``. The old grad-first form
    ``rsample_mvn_backward(grad_z, mu, scale_tril, ...)`` is deprecated."""
    res, seed = _head_backward_fast(
        "mvn_head_backward_fast", mu, scale_tril, seed, n_samples, stream, offset, eps, grad_z
    )
    if res is not None:
        return res
    return mvn_head_backward(
        mu, scale_tril, grad_z=grad_z, seed=seed, n_samples=n_samples, stream=stream, offset=offset, eps=eps
    )


# Named codes of the kernels below (exported by the binding as TRIL_FLAGS, MVN_MODES, ROW_STATUS,
# GUMBEL_STATUS; tests/test_mvn_kernels.py checks that they match; the numba backend has its own copy).
_TRIL_FLAGS = {"nonfinite": 1, "upper": 2, "diag": 4}
_MVN_MODES = {"scale_tril": 0, "precision_tril": 1, "log_prob": 2}
_MVN_HEAD_OUT = {"kl": 0, "z": 1, "z, kl": 2}  # mvn_head_fast's outputs (bind/sampling.cpp MvnHeadOut)
_ROW_STATUS = {"x": 1, "mu": 2}
_GUMBEL_STATUS = {"bad_logit": 1, "all_masked": 2}


def _kern(name, like):
    return kernel("sampling", name, is_device(like))[1]


def _any_bit(status, bit):
    return bool((status & bit).any())


def _check_tril(L, name):
    """ValueError unless every factor of L (N, D, D) is lower triangular with a positive diagonal
    and finite entries (one pass of the tril_check kernel; the first problem in this order)."""
    flags = xp_of(L).empty(L.shape[0], np.int32)
    _kern("tril_check", L)(L, flags)
    if not (flags.size and bool(flags.any())):
        return
    if _any_bit(flags, _TRIL_FLAGS["nonfinite"]):
        raise ValueError(f"{name}: contains NaN or infinity")
    if _any_bit(flags, _TRIL_FLAGS["upper"]):
        raise ValueError(f"{name}: not lower triangular (entries above the diagonal are non-zero)")
    raise ValueError(f"{name}: the diagonal must be positive")


def _row_status(status, names):
    """ValueError for the first non-finite data argument a kernel flagged (names: code -> name)."""
    if not (status.size and bool(status.any())):
        return
    for key in ("x", "mu"):
        if key in names and _any_bit(status, _ROW_STATUS[key]):
            raise ValueError(f"{names[key]}: contains NaN or infinity")


def _maha_args(x, mu, scale_tril, precision_tril):
    if (scale_tril is None) == (precision_tril is None):
        raise TypeError("give exactly one of scale_tril or precision_tril")
    m, back, half, one = _main(mu)
    name = "scale_tril" if scale_tril is not None else "precision_tril"
    given = scale_tril if scale_tril is not None else precision_tril
    L = _tril_arg(given, name, m)
    _check_tril(L, name)
    xr, lead = _x_rows(x, m, one)
    return m, back, half, one, name, L, lead, xr, getattr(given, "ndim", 3)


def _fold_factor(dL, given_ndim, B):
    """A factor's gradient in the factor's own shape: (D, D) for a factor given as (D, D) (or one
    matrix for one row), else (1 or B, D, D) as given (the kernels sum a shared factor's rows)."""
    return dL[0] if dL.shape[0] == 1 and (given_ndim == 2 or B == 1) else dL


def _mvn_rows(x, mu, scale_tril, precision_tril, mode, squared):
    m, back, half, one, name, L, lead, xr, _ = _maha_args(x, mu, scale_tril, precision_tril)
    xp = xp_of(m)
    out, status = xp.empty(xr.shape[0], m.dtype), xp.empty(xr.shape[0], np.int32)
    _kern("mvn_rows", m)(xr, m, L, _MVN_MODES[mode or name], bool(squared), out, status)
    _row_status(status, {"x": "x", "mu": "mu"})
    return back(out.reshape(lead))


def _given_factor(scale_tril, precision_tril):
    """(the factor given, its _MVN_MODES key) for the one-call paths; the factor is None unless
    exactly one was given (the general path then raises)."""
    if precision_tril is None:
        return scale_tril, "scale_tril"
    return (precision_tril if scale_tril is None else None), "precision_tril"


def _mvn_rows_backward(x, mu, scale_tril, precision_tril, mode, squared, grad, gname):
    factor, name = _given_factor(scale_tril, precision_tril)
    if (
        type(x) is np.ndarray
        and type(mu) is np.ndarray
        and type(factor) is np.ndarray
        and type(grad) is np.ndarray
        and type(squared) is bool
    ):
        fast = _fast.cpu_kernel("sampling", "mvn_rows_backward_fast")  # one compiled call (pygenmod._fast)
        if fast is not None:
            res = fast(x, mu, factor, _MVN_MODES[mode or name], squared, grad)
            if res is not None:
                return res
    m, back, half, one, name, L, lead, xr, given_ndim = _maha_args(x, mu, scale_tril, precision_tril)
    xp = xp_of(m)
    g = _like(grad, gname, m, finite=True)
    if g.size != xr.shape[0]:
        raise ValueError(f"{gname}: expected shape {lead}, got {g.shape}")
    g = xp.ascontiguousarray(g.reshape(-1))
    dx, dmu, dL = output_like(xr), output_like(m), output_like(L)
    status = xp.empty(xr.shape[0], np.int32)
    _kern("mvn_rows_backward", m)(xr, m, L, _MVN_MODES[mode or name], bool(squared), g, dx, dmu, dL, status)
    _row_status(status, {"x": "x", "mu": "mu"})
    dL = _fold_factor(dL, given_ndim, m.shape[0])
    dx = dx.reshape(lead + (m.shape[1],))
    if one:
        dmu = dmu[0]
    return back(_cast(dx, half)), back(_cast(dmu, half)), back(_cast(dL, half))


def mahalanobis(
    x: ArrayLike,
    mu: ArrayLike,
    scale_tril: ArrayLike | None = None,
    *,
    precision_tril: ArrayLike | None = None,
    squared: bool = True,
) -> Array:
    """Squared Mahalanobis distance ``(x - mu)^T Sigma^{-1} (x - mu)`` per row, with either the
    covariance's Cholesky factor ``scale_tril`` (Sigma = L L^T) or a lower-triangular factor of
    the precision ``precision_tril`` (Sigma^{-1} = U U^T); per row (B, D, D) or shared (D, D).
    x is (B, D) or (S, B, D). ``squared=False`` returns the distance itself. One row kernel:
    a forward substitution (or a triangular mat-vec) per row."""
    factor, name = _given_factor(scale_tril, precision_tril)
    if type(x) is np.ndarray and type(mu) is np.ndarray and type(factor) is np.ndarray and type(squared) is bool:
        fast = _fast.cpu_kernel("sampling", "mvn_rows_fast")  # one compiled call (pygenmod._fast)
        if fast is not None:
            d = fast(x, mu, factor, _MVN_MODES[name], squared)
            if d is not None:
                return d
    return _mvn_rows(x, mu, scale_tril, precision_tril, None, squared)


@_grads.backward("grad_mahalanobis", old=("grad", "x", "mu", "scale_tril"))
def mahalanobis_backward(
    x: ArrayLike,
    mu: ArrayLike,
    scale_tril: ArrayLike | None = None,
    *,
    grad_mahalanobis: ArrayLike,
    precision_tril: ArrayLike | None = None,
    squared: bool = True,
) -> tuple[Array, Array, Array]:
    """VJP of :func:`mahalanobis`: ``(grad_x, grad_mu, grad_factor)``; grad_factor is lower
    triangular, shaped like the factor given (summed over rows for a shared factor, in a fixed
    order). ``grad_mahalanobis`` has the forward's result shape. One row kernel that redoes the
    row's O(D^2) substitution (the VJP's own cost) and no more. The old form
    ``mahalanobis_backward(grad, x, ...)`` is deprecated."""
    return _mvn_rows_backward(x, mu, scale_tril, precision_tril, None, squared, grad_mahalanobis, "grad_mahalanobis")


def mvn_log_prob(x: ArrayLike, mu: ArrayLike, scale_tril: ArrayLike) -> Array:
    """``log N(x; mu, L L^T)`` per row; x (B, D) or (S, B, D); L per row or shared."""
    if type(x) is np.ndarray and type(mu) is np.ndarray and type(scale_tril) is np.ndarray:
        fast = _fast.cpu_kernel("sampling", "mvn_rows_fast")  # one compiled call (pygenmod._fast)
        if fast is not None:
            lp = fast(x, mu, scale_tril, _MVN_MODES["log_prob"], True)
            if lp is not None:
                return lp
    return _mvn_rows(x, mu, scale_tril, None, "log_prob", True)


@_grads.backward("grad_log_prob", old=("grad", "x", "mu", "scale_tril"))
def mvn_log_prob_backward(
    x: ArrayLike, mu: ArrayLike, scale_tril: ArrayLike, *, grad_log_prob: ArrayLike
) -> tuple[Array, Array, Array]:
    """VJP of :func:`mvn_log_prob`: ``(grad_x, grad_mu, grad_scale_tril)``; ``grad_log_prob``
    has the forward's result shape. The old form ``mvn_log_prob_backward(grad, x, ...)`` is deprecated."""
    return _mvn_rows_backward(x, mu, scale_tril, None, "log_prob", True, grad_log_prob, "grad_log_prob")


def _kl_mvn_args(mu, scale_tril, prior_mu, prior_scale_tril):
    """(m, back, half, one, L1, m2 (B, D) or size 0, L2 (1 or B, D, D) or size 0)."""
    m, back, half, one = _main(mu)
    xp = xp_of(m)
    L1 = _tril_arg(scale_tril, "scale_tril", m)
    _check_tril(L1, "scale_tril")
    m2 = _empty(xp, m.dtype)
    if prior_mu is not None:
        pm = _like(prior_mu, "prior_mu", m)
        try:
            m2 = broadcast_contiguous(xp, pm, m.shape)
        except ValueError:
            raise ValueError(f"prior_mu: shape {pm.shape} does not broadcast to {m.shape}") from None
    L2 = _empty(xp, m.dtype)
    if prior_scale_tril is not None:
        L2 = _tril_arg(prior_scale_tril, "prior_scale_tril", m)
        _check_tril(L2, "prior_scale_tril")
    return m, back, half, one, L1, m2, L2


def kl_mvn(
    mu: ArrayLike, scale_tril: ArrayLike, prior_mu: ArrayLike | None = None, prior_scale_tril: ArrayLike | None = None
) -> Array:
    """``KL(N(mu, L L^T) || N(prior_mu, L2 L2^T))`` per row (Cholesky factors, per row or shared);
    the prior defaults to N(0, I), which takes the fused one-pass kernel. With a prior, one row
    kernel: the trace term ``||L2^-1 L||_F^2`` by column-wise triangular solves (O(D^3) per row)."""
    if prior_mu is None and prior_scale_tril is None:
        kl, _ = _mvn_head_fast("kl", mu, scale_tril, 0, 0, 0, True)  # no noise: no key
        if kl is not None:
            return kl
        # seed=0: no noise is drawn, so no key is taken from the package generator
        return mvn_head(mu, scale_tril, n_samples=0, seed=0, check=True).kl
    m, back, half, one, L1, m2, L2 = _kl_mvn_args(mu, scale_tril, prior_mu, prior_scale_tril)
    xp = xp_of(m)
    B = m.shape[0]
    kl, status = xp.empty(B, m.dtype), xp.empty(B, np.int32)
    _kern("kl_mvn", m)(m, L1, m2, L2, kl, status)
    _row_status(status, {"mu": "mu or prior_mu"})
    return back(_out_row(kl, one))


@_grads.backward("grad_kl", old=("grad", "mu", "scale_tril", "prior_mu", "prior_scale_tril"))
def kl_mvn_backward(
    mu: ArrayLike,
    scale_tril: ArrayLike,
    prior_mu: ArrayLike | None = None,
    prior_scale_tril: ArrayLike | None = None,
    *,
    grad_kl: ArrayLike,
) -> tuple[Array, Array, Array | None, Array | None]:
    """VJP of :func:`kl_mvn`: ``(grad_mu, grad_scale_tril, grad_prior_mu, grad_prior_scale_tril)``
    (prior gradients None when the prior was not given; factor gradients lower triangular and
    summed over rows for a shared factor, in a fixed order). ``grad_kl``: (B,) or a scalar. The
    old grad-first form ``kl_mvn_backward(grad, mu, ...)`` is deprecated."""
    if (
        prior_mu is None
        and prior_scale_tril is None
        and type(mu) is np.ndarray
        and type(scale_tril) is np.ndarray
        and type(grad_kl) is np.ndarray
    ):
        fast = _fast.cpu_kernel("sampling", "kl_mvn_backward_fast")  # one compiled call (pygenmod._fast)
        res = None if fast is None else fast(mu, scale_tril, grad_kl)
        if res is not None:
            return res
    m, back, half, one, L1, m2, L2 = _kl_mvn_args(mu, scale_tril, prior_mu, prior_scale_tril)
    xp = xp_of(m)
    B = m.shape[0]
    g = _like(grad_kl, "grad_kl", m, finite=True)
    g = xp.broadcast_to(g, (B,)) if g.ndim == 0 else g.reshape(-1)
    val.check_shape(g, "grad_kl", (B,))
    g = xp.ascontiguousarray(g)
    dm1, dL1 = output_like(m), output_like(L1)
    dm2 = output_like(m) if prior_mu is not None else _empty(xp, m.dtype)
    dL2 = output_like(L2)
    _kern("kl_mvn_backward", m)(m, L1, m2, L2, g, dm1, dL1, dm2, dL2)
    dL1 = _fold_factor(dL1, getattr(scale_tril, "ndim", 3), B)
    dL2 = None if prior_scale_tril is None else _fold_factor(dL2, getattr(prior_scale_tril, "ndim", 3), B)
    dm2 = None if prior_mu is None else dm2
    if one:
        dm1 = dm1[0]
        dm2 = None if dm2 is None else dm2[0]
    return tuple(None if o is None else back(_cast(o, half)) for o in (dm1, dL1, dm2, dL2))


def scale_tril_from_cov(
    cov: ArrayLike, *, jitter: float = 1e-6, max_tries: int = 6, eigen_fallback: bool = True
) -> Array:
    """Lower-triangular ``L`` with ``L L^T ~= cov`` for a batch (..., D, D) of symmetric covariances.

    Tries a plain Cholesky; for the matrices where it fails, retries with ``jitter * mean(diag)``
    added to the diagonal, growing 10x per try (``max_tries``); what still fails (indefinite or
    rank-deficient matrices) gets the eigenvalue fallback: eigenvalues clipped to
    ``jitter * max(eigenvalue)`` and ``L`` from a QR factorisation of ``sqrt(Lambda) V^T``.
    Without the fallback a matrix that never factors raises ValueError.
    """
    back = returner(cov)
    C = val.float_array(cov, "cov", finite=True)
    if C.ndim < 2 or C.shape[-1] != C.shape[-2]:
        raise ValueError(f"cov: expected (..., D, D), got shape {C.shape}")
    xp = xp_of(C)
    C = 0.5 * (C + xp.swapaxes(C, -1, -2))
    D = C.shape[-1]
    flat = C.reshape(-1, D, D)
    out = xp.zeros_like(flat)
    todo = xp.arange(flat.shape[0])
    scale = xp.abs(xp.diagonal(flat, axis1=-2, axis2=-1)).mean(-1)
    scale = xp.where(scale > 0, scale, 1.0)
    eye = xp.eye(D, dtype=C.dtype)
    tol = (1e-4 if C.dtype == np.float32 else 1e-9) * D
    for t in range(max_tries + 1):
        if todo.size == 0:
            break
        add = 0.0 if t == 0 else jitter * 10.0 ** (t - 1)
        A = flat[todo] + (add * scale[todo])[:, None, None] * eye
        Ls = _chol_each(A)
        # accept a factor only if it is finite, has a positive diagonal and reproduces A
        # (CuPy's batched Cholesky does not raise on failure)
        good = xp.isfinite(Ls).all((-1, -2)) & (xp.diagonal(Ls, axis1=-2, axis2=-1) > 0).all(-1)
        Lz = xp.where(good[:, None, None], Ls, 0)
        err = xp.abs(Lz @ xp.swapaxes(Lz, -1, -2) - A).max((-1, -2))
        ok = good & (err <= tol * scale[todo])
        out[todo[ok]] = Ls[ok]
        todo = todo[~ok]
    if todo.size:
        if not eigen_fallback:
            raise ValueError(
                f"cov: {int(todo.size)} matrices are not positive definite even with jitter "
                f"{jitter * 10.0 ** (max_tries - 1):g} x mean(diag)"
            )
        lam, V = xp.linalg.eigh(flat[todo])
        floor = jitter * xp.maximum(lam.max(-1, keepdims=True), 1e-300)
        lam = xp.maximum(lam, floor)
        A = xp.sqrt(lam)[:, :, None] * xp.swapaxes(V, -1, -2)  # cov = A^T A
        try:
            R = xp.linalg.qr(A)[1]
        except Exception:  # a backend without batched QR
            R = xp.stack([xp.linalg.qr(a)[1] for a in A])
        sign = xp.sign(xp.diagonal(R, axis1=-2, axis2=-1))
        R = R * xp.where(sign == 0, 1, sign)[:, :, None]
        out[todo] = xp.swapaxes(R, -1, -2)
    return back(out.reshape(C.shape))


def _chol_each(A):
    """Batched Cholesky; matrices that fail come back as NaN (NumPy raises for the whole batch)."""
    xp = xp_of(A)
    try:
        return xp.linalg.cholesky(A)  # CuPy does not raise: the caller checks the factors
    except np.linalg.LinAlgError:
        out = xp.full_like(A, np.nan)
        for i in range(A.shape[0]):
            try:
                out[i] = xp.linalg.cholesky(A[i])
            except np.linalg.LinAlgError:
                pass
        return out


# ---------------------------------------------------------------------------------------
# Gumbel-softmax / relaxed categorical
# ---------------------------------------------------------------------------------------
class GumbelSoftmax(NamedTuple):
    y: object  #: the sample: soft (relaxed one-hot) or, with hard=True, exactly one-hot
    y_soft: object  #: the relaxed sample (what gradients flow through)
    index: object  #: int64 argmax of the perturbed logits (the categorical sample)


def _fast_temperature(t) -> bool:
    """A temperature the one-call paths take: an exact float or int in (0, inf) that converts to a
    float (bool, NumPy scalars and an int too large for a float take the general path, which
    owns their conversions and errors)."""
    if type(t) is float:
        return 0 < t < math.inf
    return type(t) is int and 0 < t <= 2**1023


def _gumbel_temperature(tau):
    if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not (tau > 0 and math.isfinite(tau)):
        raise ValueError(f"temperature: expected a positive finite number, got {tau!r}")
    return tau


def _gumbel_rows(logits, tau, seed, stream, offset):
    """The arguments of the gumbel_softmax kernels: (logits widened, its caller's half dtype, the
    logits as contiguous (R, K) rows, temperature, seed, stream, offset)."""
    lg, half = _widen(val.float_array(logits, "logits", finite=False, allow_half=True))
    if lg.ndim == 0:
        raise ValueError("logits: expected at least one axis (the categories)")
    tau = _gumbel_temperature(tau)
    seed, stream, offset = resolve_seed(seed), val.seed_int(stream, "stream"), val.seed_int(offset, "offset")
    K = lg.shape[-1]
    if K == 0:
        raise ValueError(f"logits: the last axis (the categories) is empty, got shape {lg.shape}")
    rows = xp_of(lg).ascontiguousarray(lg.reshape(math.prod(lg.shape[:-1]), K))
    return lg, half, rows, tau, seed, stream, offset


def _gumbel_status(status):
    if not (status.size and bool(status.any())):
        return
    if _any_bit(status, _GUMBEL_STATUS["bad_logit"]):
        raise ValueError("logits: contains NaN or +infinity (-inf masks a category)")
    raise ValueError("logits: a row has every category masked (all -inf)")


def gumbel_softmax(
    logits: ArrayLike,
    temperature: float = 1.0,
    *,
    seed: SeedLike = None,
    hard: bool = False,
    stream: int = 0,
    offset: int = 0,
    tau: Any = val.DEPRECATED,
) -> GumbelSoftmax:
    """Relaxed categorical sample ``softmax((logits + g) / temperature)`` over the last axis, g
    standard Gumbel noise from the counter-based generator (row r of the flattened leading axes
    uses stream ``stream + r``). ``hard=True`` returns the one-hot argmax in ``y``
    (straight-through: :func:`gumbel_softmax_backward` gives the relaxed sample's gradient).
    Returns :class:`GumbelSoftmax`. One row kernel (noise, softmax, argmax, one-hot). ``tau=`` is
    the deprecated spelling of ``temperature=`` (the package's one name for it;
    ``pygenmod.torch.gumbel_softmax`` keeps torch's ``tau``)."""
    if (
        type(logits) is np.ndarray
        and _fast_temperature(temperature)
        and (hard is True or hard is False)
        and tau is val.DEPRECATED
    ):
        fast = _fast.cpu_kernel("sampling", "gumbel_softmax_fast")  # one compiled call (pygenmod._fast)
        if fast is not None:
            res, key = fast(logits, float(temperature), seed, resolve_seed, stream, offset, hard)
            if res is not None:
                return GumbelSoftmax(*res)
            seed = seed if key is None else key  # a key drawn there: the general path reuses it
    tau = val.renamed(temperature, tau, "temperature", "tau", func="sampling.gumbel_softmax", default=1.0)
    back = returner(logits)
    lg, half, rows, tau, seed, stream, offset = _gumbel_rows(logits, tau, seed, stream, offset)
    xp, (R, K), dt = xp_of(rows), rows.shape, rows.dtype
    y_soft, index, status = new_output(xp, (R, K), dt), xp.empty(R, np.int64), xp.empty(R, np.int32)
    y = new_output(xp, (R, K), dt) if hard else _empty(xp, dt)
    _kern("gumbel_softmax", rows)(rows, float(tau), seed, stream, offset, y_soft, y, index, status)
    _gumbel_status(status)
    shp = lg.shape
    y_soft = _cast(y_soft.reshape(shp), half)
    y = _cast(y.reshape(shp), half) if hard else y_soft
    return GumbelSoftmax(back(y), back(y_soft), back(index.reshape(shp[:-1])))


@_grads.backward("grad_y", old=("grad", "y_soft", "temperature"), fill={"logits": None})
def gumbel_softmax_backward(
    logits: ArrayLike | None,
    temperature: float = 1.0,
    *,
    grad_y: ArrayLike,
    seed: SeedLike = None,
    stream: int = 0,
    offset: int = 0,
    y_soft: ArrayLike | None = None,
    tau: Any = val.DEPRECATED,
) -> Array:
    """VJP of :func:`gumbel_softmax` w.r.t. the logits: ``y_soft * (g - sum(g * y_soft)) /
    temperature`` with ``g = grad_y`` (also the straight-through gradient for ``hard=True``).

    Like the other samplers' backward passes it regenerates the forward's relaxed sample from
    ``(seed, stream, offset)`` (the forward's explicit seed; the same row kernel as the forward,
    so bitwise its y_soft), or takes it as ``y_soft=`` (the forward's saved output: ``logits``
    may then be None, it is only checked against y_soft's shape). The old form
    ``gumbel_softmax_backward(grad, y_soft, temperature)`` is deprecated."""
    if (
        type(y_soft) is np.ndarray
        and type(grad_y) is np.ndarray
        and _fast_temperature(temperature)
        and tau is val.DEPRECATED
        and (logits is None or (type(logits) is np.ndarray and logits.shape == y_soft.shape))
    ):
        fast = _fast.cpu_kernel("sampling", "gumbel_softmax_backward_fast")  # one compiled call (pygenmod._fast)
        g = None if fast is None else fast(y_soft, float(temperature), grad_y)
        if g is not None:
            return g
    tau = val.renamed(temperature, tau, "temperature", "tau", func="sampling.gumbel_softmax_backward", default=1.0)
    if y_soft is None:
        if seed is None:
            raise TypeError(
                "seed: a backward pass regenerates the forward's noise, so it needs the "
                "forward's explicit seed (or its y_soft=); seed=None would draw new noise"
            )
        back = returner(logits)
        lg, half, rows, tau, seed, stream, offset = _gumbel_rows(logits, tau, seed, stream, offset)
        shape, ys, ref = lg.shape, _empty(xp_of(rows), rows.dtype), rows
    else:
        back = returner(y_soft)
        y, half = _widen(val.float_array(y_soft, "y_soft", allow_half=True))
        tau = _gumbel_temperature(tau)
        if logits is not None and tuple(np.shape(logits)) != tuple(y.shape):
            raise ValueError(f"logits: expected y_soft's shape {tuple(y.shape)}, got {tuple(np.shape(logits))}")
        if y.ndim == 0:
            raise ValueError("y_soft: expected at least one axis (the categories)")
        if y.shape[-1] == 0:
            raise ValueError(f"y_soft: the last axis (the categories) is empty, got shape {tuple(y.shape)}")
        shape, seed, stream, offset = y.shape, 0, 0, 0
        ys = xp_of(y).ascontiguousarray(y.reshape(math.prod(shape[:-1]), shape[-1]))
        rows, ref = _empty(xp_of(y), y.dtype), y
    xp, dt = xp_of(ref), ref.dtype
    g = val.float_array(grad_y, "grad_y", dtype=dt, xp=xp, allow_half=True)
    val.check_shape(g, "grad_y", shape)
    g = xp.ascontiguousarray(g.reshape(math.prod(shape[:-1]), shape[-1]))
    out, status = new_output(xp, g.shape, dt), xp.empty(g.shape[0], np.int32)
    if g.shape[0]:  # (no rows: an empty gradient; the kernels read an empty y_soft as "not given")
        _kern("gumbel_softmax_backward", g)(rows, ys, float(tau), seed, stream, offset, g, out, status)
        _gumbel_status(status)
    return back(_cast(out.reshape(shape), half))


__all__ = [
    "GumbelSoftmax",
    "HALF_LOG_2PI",
    "Head",
    "KINDS",
    "ROW_CODES",
    "Sample",
    "check_scale_tril",
    "gumbel_softmax",
    "gumbel_softmax_backward",
    "kl_mvn",
    "kl_mvn_backward",
    "kl_normal",
    "kl_normal_backward",
    "mahalanobis",
    "mahalanobis_backward",
    "mvn_head",
    "mvn_head_backward",
    "mvn_log_prob",
    "mvn_log_prob_backward",
    "normal_head",
    "normal_head_backward",
    "normal_log_prob",
    "normal_log_prob_backward",
    "rsample_mvn",
    "rsample_mvn_backward",
    "rsample_normal",
    "rsample_normal_backward",
    "scale_tril_from_cov",
]
