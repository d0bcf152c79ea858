"""PyTorch front-ends of :mod:`pygenmod.sampling` (re-exported by :mod:`pygenmod.torch`).

Every function here is a ``torch.library`` custom op named ``pygenmod::sampling_<op>``, with a
fake (meta) kernel, so ``torch.compile(fullgraph=True)`` keeps it as one graph node, and a
registered autograd formula whose backward is itself a custom op
(``pygenmod::sampling_<op>_backward``) calling the NumPy API's VJP:

- the heads and samplers (``normal_head``, ``rsample_normal``, ``mvn_head``, ``rsample_mvn``):
  the fused VJP kernels (``normal_head_backward`` / ``mvn_head_backward``), which regenerate the
  noise from ``(seed, stream, offset)`` instead of saving it;
- ``kl_normal``, ``normal_log_prob``: their fused VJP kernels;
- ``kl_mvn``, ``mvn_log_prob``, ``mahalanobis``: their VJP row kernels (``kl_mvn_backward``,
  ``mvn_log_prob_backward``, ``mahalanobis_backward``; pygenmod/mvn.hpp);
- ``gumbel_softmax``: ``gumbel_softmax_backward`` (the softmax VJP row kernel; also the straight-through
  gradient of ``hard=True``).

Tensors go to the kernels zero-copy through DLPack (CPU tensors to the C++ kernels, CUDA tensors
to the CUDA kernels on torch's current stream). float16 / bfloat16 tensors are computed in
float32: samples come back in the input dtype, KL and log-densities in float32. Seeds: see
:func:`pygenmod._torch_common.seed_arg` (resolved once per call; forward and backward share it).
"""

from __future__ import annotations

import math
from typing import Any, Optional, Union

import torch
from torch import Tensor

from . import _validate as val
from . import sampling as _S
from ._torch_common import (  # noqa: F401  (on_torch_stream: the older import path)
    compute_dtype,
    empty,
    f32,
    int_arg,
    key,
    native,
    on_torch_stream,
    seed_arg,
    tensor,
)
from ._torch_eager import custom_op
from ._typing import Clamp, SeedLike

__all__ = [
    "rsample_normal",
    "normal_head",
    "kl_normal",
    "normal_log_prob",
    "rsample_mvn",
    "mvn_head",
    "kl_mvn",
    "mvn_log_prob",
    "mahalanobis",
    "gumbel_softmax",
]

#: the custom ops are always registered (torch >= 2.4); kept for code that checked it
HAVE_CUSTOM_OPS = True

KINDS = ("logvar", "log_std", "std")  # a diagonal scale's parametrisation, as the ops' int ``kind``
_op = custom_op


def _n(t):
    """NumPy/CuPy view of ``t`` (half precision widened to float32 first)."""
    return native(f32(t))


def _clamp_arg(lo: float, hi: float):
    """An op's clamp bounds as the NumPy API's clamp: None when unbounded (its default), so the
    one-call paths that take only the default options run."""
    return None if lo == -math.inf and hi == math.inf else (lo, hi)


def _back(a, like: Tensor, dtype) -> Tensor:
    t = tensor(a, like)
    return t if t.dtype is dtype else t.to(dtype)  # (.to costs ~1 us even when it returns t)


def _nsamp(n_samples) -> int:
    """n_samples as an op argument: -1 for None (no sample axis)."""
    return -1 if n_samples is None else val.positive_int(n_samples, "n_samples", minimum=0)


def _s_kw(seed, n_samples, stream, offset):
    return dict(seed=key(seed), n_samples=None if n_samples < 0 else n_samples, stream=key(stream), offset=key(offset))


def _sample_shape(mu, n_samples):
    return ((n_samples,) if n_samples >= 0 else ()) + tuple(mu.shape)


def _kind(logvar, log_std, std):
    given = [(i, v) for i, v in enumerate((logvar, log_std, std)) if v is not None]
    if len(given) != 1:
        raise TypeError("give exactly one of logvar, log_std or std")
    return given[0]


def _none_if_empty(t):
    return None if empty(t) else t


# ============================================================================ diagonal head
@_op("pygenmod::sampling_normal_head", mutates_args=())
def _normal_head_op(
    mu: Tensor,
    scale: Tensor,
    kind: int,
    eps: Optional[Tensor],
    seed: int,
    n_samples: int,
    stream: int,
    offset: int,
    clamp_lo: float,
    clamp_hi: float,
    log_q: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    with on_torch_stream(mu):
        h = _S.normal_head(
            _n(mu),
            eps=_n(eps),
            clamp=_clamp_arg(clamp_lo, clamp_hi),
            log_q=log_q,
            **_s_kw(seed, n_samples, stream, offset),
            **{KINDS[kind]: _n(scale)},
        )
    cdt = compute_dtype(mu.dtype)
    lq = _back(h.log_q, mu, cdt) if log_q else mu.new_empty((0,), dtype=cdt)
    return _back(h.z, mu, mu.dtype), _back(h.kl, mu, cdt), lq


@_normal_head_op.register_fake
def _(mu, scale, kind, eps, seed, n_samples, stream, offset, clamp_lo, clamp_hi, log_q):
    cdt = compute_dtype(mu.dtype)
    lead = ((n_samples,) if n_samples >= 0 else ()) + tuple(mu.shape[:-1])
    return (
        mu.new_empty(_sample_shape(mu, n_samples)),
        mu.new_empty(mu.shape[:-1], dtype=cdt),
        mu.new_empty(lead if log_q else (0,), dtype=cdt),
    )


@_op("pygenmod::sampling_normal_head_backward", mutates_args=())
def _normal_head_bwd(
    mu: Tensor,
    scale: Tensor,
    kind: int,
    eps: Optional[Tensor],
    seed: int,
    n_samples: int,
    stream: int,
    offset: int,
    clamp_lo: float,
    clamp_hi: float,
    grad_z: Optional[Tensor],
    grad_kl: Optional[Tensor],
    grad_log_q: Optional[Tensor],
) -> tuple[Tensor, Tensor]:
    with on_torch_stream(mu):
        dmu, dp = _S.normal_head_backward(
            _n(mu),
            eps=_n(eps),
            clamp=_clamp_arg(clamp_lo, clamp_hi),
            grad_z=_n(grad_z),
            grad_kl=_n(grad_kl),
            grad_log_q=_n(grad_log_q),
            **_s_kw(seed, n_samples, stream, offset),
            **{KINDS[kind]: _n(scale)},
        )
    return _back(dmu, mu, mu.dtype), _back(dp, mu, scale.dtype)


@_normal_head_bwd.register_fake
def _(mu, scale, kind, eps, seed, n_samples, stream, offset, clamp_lo, clamp_hi, grad_z, grad_kl, grad_log_q):
    return torch.empty_like(mu), torch.empty_like(scale)


def _normal_head_setup(ctx, inputs, output):
    mu, scale, _kind_, eps = inputs[:4]
    ctx.save_for_backward(mu, scale, eps)
    ctx.args = inputs[2:3] + inputs[4:10]  # kind, seed, n_samples, stream, offset, clamp_lo, clamp_hi


def _normal_head_backward(ctx, gz, gkl, glq):
    mu, scale, eps = ctx.saved_tensors
    kind, *rest = ctx.args
    dmu, dp = _normal_head_bwd(mu, scale, kind, eps, *rest, gz, gkl, _none_if_empty(glq))
    return dmu, dp, None, None, None, None, None, None, None, None, None


_normal_head_op.register_autograd(_normal_head_backward, setup_context=_normal_head_setup)


def normal_head(
    mu: Tensor,
    logvar: Optional[Tensor] = None,
    *,
    log_std: Optional[Tensor] = None,
    std: Optional[Tensor] = None,
    seed: SeedLike = None,
    n_samples: Optional[int] = None,
    stream: int = 0,
    offset: int = 0,
    eps: Optional[Tensor] = None,
    clamp: Optional[Clamp] = None,
    log_q: bool = False,
) -> tuple[Tensor, Tensor, Optional[Tensor]]:
    """Fused VAE head (differentiable w.r.t. ``mu`` and the scale; not w.r.t. ``eps``): returns
    ``(z, kl, log_q)`` (log_q None unless requested). See :func:`pygenmod.sampling.normal_head`.
    Op ``pygenmod::sampling_normal_head``."""
    kind, p = _kind(logvar, log_std, std)
    lo, hi = _S._clamp(clamp)
    z, kl, lq = _normal_head_op(
        mu,
        p,
        kind,
        eps,
        seed_arg(seed, eps=eps),
        _nsamp(n_samples),
        int_arg(stream, "stream"),
        int_arg(offset, "offset"),
        lo,
        hi,
        bool(log_q),
    )
    return z, kl, (lq if log_q else None)


def rsample_normal(
    mu: Tensor,
    logvar: Optional[Tensor] = None,
    *,
    log_std: Optional[Tensor] = None,
    std: Optional[Tensor] = None,
    seed: SeedLike = None,
    n_samples: Optional[int] = None,
    stream: int = 0,
    offset: int = 0,
    eps: Optional[Tensor] = None,
    clamp: Optional[Clamp] = None,
) -> Tensor:
    """Differentiable ``z = mu + sigma * eps`` (see :func:`pygenmod.sampling.rsample_normal`)."""
    return normal_head(
        mu,
        logvar,
        log_std=log_std,
        std=std,
        seed=seed,
        n_samples=n_samples,
        stream=stream,
        offset=offset,
        eps=eps,
        clamp=clamp,
    )[0]


# ============================================================================ full-covariance head
@_op("pygenmod::sampling_mvn_head", mutates_args=())
def _mvn_head_op(
    mu: Tensor,
    scale_tril: Tensor,
    eps: Optional[Tensor],
    seed: int,
    n_samples: int,
    stream: int,
    offset: int,
    log_q: bool,
    want_kl: bool,
    check: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    with on_torch_stream(mu):
        h = _S._mvn(
            _n(mu),
            _n(scale_tril),
            key(seed),
            None if n_samples < 0 else n_samples,
            key(stream),
            key(offset),
            _n(eps),
            log_q,
            False,
            check,
            None,
            want_kl,
        )
    cdt = compute_dtype(mu.dtype)
    kl = _back(h.kl, mu, cdt) if want_kl else mu.new_empty((0,), dtype=cdt)
    lq = _back(h.log_q, mu, cdt) if log_q else mu.new_empty((0,), dtype=cdt)
    return _back(h.z, mu, mu.dtype), kl, lq


@_mvn_head_op.register_fake
def _(mu, scale_tril, eps, seed, n_samples, stream, offset, log_q, want_kl, check):
    cdt = compute_dtype(mu.dtype)
    lead = ((n_samples,) if n_samples >= 0 else ()) + tuple(mu.shape[:-1])
    return (
        mu.new_empty(_sample_shape(mu, n_samples)),
        mu.new_empty(mu.shape[:-1] if want_kl else (0,), dtype=cdt),
        mu.new_empty(lead if log_q else (0,), dtype=cdt),
    )


@_op("pygenmod::sampling_mvn_head_backward", mutates_args=())
def _mvn_head_bwd(
    mu: Tensor,
    scale_tril: Tensor,
    eps: Optional[Tensor],
    seed: int,
    n_samples: int,
    stream: int,
    offset: int,
    grad_z: Optional[Tensor],
    grad_kl: Optional[Tensor],
    grad_log_q: Optional[Tensor],
) -> tuple[Tensor, Tensor]:
    with on_torch_stream(mu):
        dmu, dL = _S.mvn_head_backward(
            _n(mu),
            _n(scale_tril),
            eps=_n(eps),
            grad_z=_n(grad_z),
            grad_kl=_n(grad_kl),
            grad_log_q=_n(grad_log_q),
            **_s_kw(seed, n_samples, stream, offset),
        )
    return _back(dmu, mu, mu.dtype), _back(dL, mu, scale_tril.dtype)


@_mvn_head_bwd.register_fake
def _(mu, scale_tril, eps, seed, n_samples, stream, offset, grad_z, grad_kl, grad_log_q):
    return torch.empty_like(mu), torch.empty_like(scale_tril)


def _mvn_head_setup(ctx, inputs, output):
    mu, L, eps = inputs[:3]
    ctx.save_for_backward(mu, L, eps)
    ctx.args = inputs[3:7]  # seed, n_samples, stream, offset


def _mvn_head_backward(ctx, gz, gkl, glq):
    mu, L, eps = ctx.saved_tensors
    dmu, dL = _mvn_head_bwd(mu, L, eps, *ctx.args, gz, _none_if_empty(gkl), _none_if_empty(glq))
    return dmu, dL, None, None, None, None, None, None, None, None


_mvn_head_op.register_autograd(_mvn_head_backward, setup_context=_mvn_head_setup)


def _mvn_call(mu, scale_tril, seed, n_samples, stream, offset, eps, log_q, want_kl, check):
    return _mvn_head_op(
        mu,
        scale_tril,
        eps,
        seed_arg(seed, eps=eps),
        _nsamp(n_samples),
        int_arg(stream, "stream"),
        int_arg(offset, "offset"),
        bool(log_q),
        want_kl,
        bool(check),
    )


def mvn_head(
    mu: Tensor,
    scale_tril: Tensor,
    *,
    seed: SeedLike = None,
    n_samples: Optional[int] = None,
    stream: int = 0,
    offset: int = 0,
    eps: Optional[Tensor] = None,
    log_q: bool = False,
    check: bool = True,
    validate: Any = val.DEPRECATED,
) -> tuple[Tensor, Tensor, Optional[Tensor]]:
    """Differentiable full-covariance head: ``(z, kl, log_q)``; see :func:`pygenmod.sampling.mvn_head`.
    Op ``pygenmod::sampling_mvn_head``. ``validate=`` is the deprecated spelling of ``check=``."""
    check = val.renamed(check, validate, "check", "validate", func="pygenmod.torch.mvn_head", default=True)
    z, kl, lq = _mvn_call(mu, scale_tril, seed, n_samples, stream, offset, eps, log_q, True, check)
    return z, kl, (lq if log_q else None)


def rsample_mvn(
    mu: Tensor,
    scale_tril: Tensor,
    *,
    seed: SeedLike = None,
    n_samples: Optional[int] = None,
    stream: int = 0,
    offset: int = 0,
    eps: Optional[Tensor] = None,
    check: bool = True,
    validate: Any = val.DEPRECATED,
) -> Tensor:
    """Differentiable ``z = mu + L eps`` (the head without its KL pass)."""
    check = val.renamed(check, validate, "check", "validate", func="pygenmod.torch.rsample_mvn", default=True)
    return _mvn_call(mu, scale_tril, seed, n_samples, stream, offset, eps, False, False, check)[0]


# ============================================================================ diagonal KL, log-density
def _sum_to(g: Optional[Tensor], like: Optional[Tensor]):
    """A (B, D) prior gradient summed to the shape of the (broadcast) prior it belongs to."""
    if like is None or empty(g):
        return None
    return (g.sum_to_size(like.shape) if g.shape != like.shape else g).to(like.dtype)


@_op("pygenmod::sampling_kl_normal", mutates_args=())
def _kl_normal_op(
    mu: Tensor,
    scale: Tensor,
    kind: int,
    prior_mu: Optional[Tensor],
    prior_scale: Optional[Tensor],
    clamp_lo: float,
    clamp_hi: float,
) -> Tensor:
    name = KINDS[kind]
    prior = {} if prior_scale is None else {"prior_" + name: _n(prior_scale)}
    with on_torch_stream(mu):
        kl = _S.kl_normal(
            _n(mu), prior_mu=_n(prior_mu), clamp=_clamp_arg(clamp_lo, clamp_hi), **{name: _n(scale)}, **prior
        )
    return _back(kl, mu, compute_dtype(mu.dtype))


@_kl_normal_op.register_fake
def _(mu, scale, kind, prior_mu, prior_scale, clamp_lo, clamp_hi):
    return mu.new_empty(mu.shape[:-1], dtype=compute_dtype(mu.dtype))


@_op("pygenmod::sampling_kl_normal_backward", mutates_args=())
def _kl_normal_bwd(
    grad: Tensor,
    mu: Tensor,
    scale: Tensor,
    kind: int,
    prior_mu: Optional[Tensor],
    prior_scale: Optional[Tensor],
    clamp_lo: float,
    clamp_hi: float,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(grad_mu, grad_scale, grad_prior_mu, grad_prior_scale); the prior gradients are mu-shaped
    (summed to the prior's shape by the autograd formula), empty without that prior."""
    name = KINDS[kind]
    prior = {} if prior_scale is None else {"prior_" + name: _n(prior_scale)}
    with on_torch_stream(mu):
        grads = _S.kl_normal_backward(
            _n(mu),
            prior_mu=_n(prior_mu),
            grad_kl=_n(grad),
            clamp=_clamp_arg(clamp_lo, clamp_hi),
            **{name: _n(scale)},
            **prior,
        )
    return tuple(mu.new_empty((0,)) if g is None else _back(g, mu, mu.dtype) for g in grads)


@_kl_normal_bwd.register_fake
def _(grad, mu, scale, kind, prior_mu, prior_scale, clamp_lo, clamp_hi):
    return (
        torch.empty_like(mu),
        torch.empty_like(mu),
        torch.empty_like(mu) if prior_mu is not None else mu.new_empty((0,)),
        torch.empty_like(mu) if prior_scale is not None else mu.new_empty((0,)),
    )


def _kl_normal_setup(ctx, inputs, output):
    mu, scale, kind, pm, pp, lo, hi = inputs
    ctx.save_for_backward(mu, scale, pm, pp)
    ctx.args = (kind, lo, hi)


def _kl_normal_backward(ctx, g):
    mu, scale, pm, pp = ctx.saved_tensors
    kind, lo, hi = ctx.args
    dmu, dp, dpm, dpp = _kl_normal_bwd(g, mu, scale, kind, pm, pp, lo, hi)
    return dmu, dp.to(scale.dtype), None, _sum_to(dpm, pm), _sum_to(dpp, pp), None, None


_kl_normal_op.register_autograd(_kl_normal_backward, setup_context=_kl_normal_setup)


def _prior_tensor(v, mu):
    if v is None or isinstance(v, Tensor):
        return v
    return torch.tensor(float(v), dtype=mu.dtype, device=mu.device)


def kl_normal(
    mu: Tensor,
    logvar: Optional[Tensor] = None,
    prior_mu: Union[Tensor, float, None] = None,
    prior_logvar: Union[Tensor, float, None] = None,
    *,
    log_std: Optional[Tensor] = None,
    std: Optional[Tensor] = None,
    prior_log_std: Union[Tensor, float, None] = None,
    prior_std: Union[Tensor, float, None] = None,
    clamp: Optional[Clamp] = None,
) -> Tensor:
    """Differentiable per-row KL between diagonal Gaussians (prior default N(0, I); a prior may be
    a number, (D,) or (B, D), in the posterior's parametrisation). Op ``pygenmod::sampling_kl_normal``."""
    kind, p = _kind(logvar, log_std, std)
    priors = (prior_logvar, prior_log_std, prior_std)
    if any(v is not None for i, v in enumerate(priors) if i != kind):
        raise TypeError(f"the prior's scale must use the same parametrisation as {KINDS[kind]}")
    lo, hi = _S._clamp(clamp)
    return _kl_normal_op(mu, p, kind, _prior_tensor(prior_mu, mu), _prior_tensor(priors[kind], mu), lo, hi)


@_op("pygenmod::sampling_normal_log_prob", mutates_args=())
def _normal_log_prob_op(x: Tensor, mu: Tensor, scale: Tensor, kind: int, clamp_lo: float, clamp_hi: float) -> Tensor:
    with on_torch_stream(mu):
        lp = _S.normal_log_prob(_n(x), _n(mu), clamp=_clamp_arg(clamp_lo, clamp_hi), **{KINDS[kind]: _n(scale)})
    return _back(lp, mu, compute_dtype(mu.dtype))


@_normal_log_prob_op.register_fake
def _(x, mu, scale, kind, clamp_lo, clamp_hi):
    return mu.new_empty(x.shape[:-1], dtype=compute_dtype(mu.dtype))


@_op("pygenmod::sampling_normal_log_prob_backward", mutates_args=())
def _normal_log_prob_bwd(
    grad: Tensor, x: Tensor, mu: Tensor, scale: Tensor, kind: int, clamp_lo: float, clamp_hi: float
) -> tuple[Tensor, Tensor, Tensor]:
    with on_torch_stream(mu):
        dx, dmu, dp = _S.normal_log_prob_backward(
            _n(x), _n(mu), grad_log_prob=_n(grad), clamp=_clamp_arg(clamp_lo, clamp_hi), **{KINDS[kind]: _n(scale)}
        )
    return _back(dx, mu, x.dtype), _back(dmu, mu, mu.dtype), _back(dp, mu, scale.dtype)


@_normal_log_prob_bwd.register_fake
def _(grad, x, mu, scale, kind, clamp_lo, clamp_hi):
    return torch.empty_like(x), torch.empty_like(mu), torch.empty_like(scale)


def _log_prob_setup(ctx, inputs, output):
    ctx.save_for_backward(*inputs[:3])
    ctx.args = inputs[3:]


def _log_prob_backward(ctx, g):
    return (*_normal_log_prob_bwd(g, *ctx.saved_tensors, *ctx.args), None, None, None)


_normal_log_prob_op.register_autograd(_log_prob_backward, setup_context=_log_prob_setup)


def normal_log_prob(
    x: Tensor,
    mu: Tensor,
    logvar: Optional[Tensor] = None,
    *,
    log_std: Optional[Tensor] = None,
    std: Optional[Tensor] = None,
    clamp: Optional[Clamp] = None,
) -> Tensor:
    """Differentiable diagonal Gaussian log-density summed over the last axis.
    Op ``pygenmod::sampling_normal_log_prob``."""
    kind, p = _kind(logvar, log_std, std)
    lo, hi = _S._clamp(clamp)
    return _normal_log_prob_op(x, mu, p, kind, lo, hi)


# ============================================================================ full-covariance KL,
# log-density, Mahalanobis: backward from the NumPy API's VJP row kernels
@_op("pygenmod::sampling_kl_mvn", mutates_args=())
def _kl_mvn_op(
    mu: Tensor, scale_tril: Tensor, prior_mu: Optional[Tensor], prior_scale_tril: Optional[Tensor]
) -> Tensor:
    with on_torch_stream(mu):
        kl = _S.kl_mvn(_n(mu), _n(scale_tril), _n(prior_mu), _n(prior_scale_tril))
    return _back(kl, mu, compute_dtype(mu.dtype))


@_kl_mvn_op.register_fake
def _(mu, scale_tril, prior_mu, prior_scale_tril):
    return mu.new_empty(mu.shape[:-1], dtype=compute_dtype(mu.dtype))


@_op("pygenmod::sampling_kl_mvn_backward", mutates_args=())
def _kl_mvn_bwd(
    grad: Tensor, mu: Tensor, scale_tril: Tensor, prior_mu: Optional[Tensor], prior_scale_tril: Optional[Tensor]
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(grad_mu, grad_scale_tril, grad_prior_mu (mu-shaped), grad_prior_scale_tril); empty
    where that prior was not given."""
    with on_torch_stream(mu):
        dm, dL, dpm, dpL = _S.kl_mvn_backward(
            _n(mu), _n(scale_tril), _n(prior_mu), _n(prior_scale_tril), grad_kl=_n(grad)
        )
    return (
        _back(dm, mu, mu.dtype),
        _back(dL, mu, scale_tril.dtype),
        mu.new_empty((0,)) if dpm is None else _back(dpm, mu, mu.dtype),
        mu.new_empty((0,)) if dpL is None else _back(dpL, mu, prior_scale_tril.dtype),
    )


@_kl_mvn_bwd.register_fake
def _(grad, mu, scale_tril, prior_mu, prior_scale_tril):
    return (
        torch.empty_like(mu),
        torch.empty_like(scale_tril),
        torch.empty_like(mu) if prior_mu is not None else mu.new_empty((0,)),
        torch.empty_like(prior_scale_tril) if prior_scale_tril is not None else mu.new_empty((0,)),
    )


def _kl_mvn_setup(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _kl_mvn_backward(ctx, g):
    mu, L, pm, pL = ctx.saved_tensors
    dm, dL, dpm, dpL = _kl_mvn_bwd(g, mu, L, pm, pL)
    return dm, dL, _sum_to(dpm, pm), _sum_to(dpL, pL)


_kl_mvn_op.register_autograd(_kl_mvn_backward, setup_context=_kl_mvn_setup)


def kl_mvn(
    mu: Tensor,
    scale_tril: Tensor,
    prior_mu: Union[Tensor, float, None] = None,
    prior_scale_tril: Optional[Tensor] = None,
) -> Tensor:
    """Differentiable ``KL(N(mu, L L^T) || N(prior_mu, L2 L2^T))`` per row (prior default N(0, I),
    which takes the fused head kernel). Op ``pygenmod::sampling_kl_mvn``."""
    return _kl_mvn_op(mu, scale_tril, _prior_tensor(prior_mu, mu), prior_scale_tril)


@_op("pygenmod::sampling_mvn_log_prob", mutates_args=())
def _mvn_log_prob_op(x: Tensor, mu: Tensor, scale_tril: Tensor) -> Tensor:
    with on_torch_stream(mu):
        lp = _S.mvn_log_prob(_n(x), _n(mu), _n(scale_tril))
    return _back(lp, mu, compute_dtype(mu.dtype))


@_mvn_log_prob_op.register_fake
def _(x, mu, scale_tril):
    return mu.new_empty(x.shape[:-1], dtype=compute_dtype(mu.dtype))


@_op("pygenmod::sampling_mvn_log_prob_backward", mutates_args=())
def _mvn_log_prob_bwd(grad: Tensor, x: Tensor, mu: Tensor, scale_tril: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    with on_torch_stream(mu):
        dx, dmu, dL = _S.mvn_log_prob_backward(_n(x), _n(mu), _n(scale_tril), grad_log_prob=_n(grad))
    return _back(dx, mu, x.dtype), _back(dmu, mu, mu.dtype), _back(dL, mu, scale_tril.dtype)


@_mvn_log_prob_bwd.register_fake
def _(grad, x, mu, scale_tril):
    return torch.empty_like(x), torch.empty_like(mu), torch.empty_like(scale_tril)


def _save_all(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


_mvn_log_prob_op.register_autograd(lambda ctx, g: _mvn_log_prob_bwd(g, *ctx.saved_tensors), setup_context=_save_all)


def mvn_log_prob(x: Tensor, mu: Tensor, scale_tril: Tensor) -> Tensor:
    """Differentiable ``log N(x; mu, L L^T)``. Op ``pygenmod::sampling_mvn_log_prob``."""
    return _mvn_log_prob_op(x, mu, scale_tril)


def _maha_kw(factor, precision):
    return {"precision_tril" if precision else "scale_tril": _n(factor)}


@_op("pygenmod::sampling_mahalanobis", mutates_args=())
def _mahalanobis_op(x: Tensor, mu: Tensor, factor: Tensor, precision: bool, squared: bool) -> Tensor:
    with on_torch_stream(mu):
        r = _S.mahalanobis(_n(x), _n(mu), squared=squared, **_maha_kw(factor, precision))
    return _back(r, mu, compute_dtype(mu.dtype))


@_mahalanobis_op.register_fake
def _(x, mu, factor, precision, squared):
    return mu.new_empty(x.shape[:-1], dtype=compute_dtype(mu.dtype))


@_op("pygenmod::sampling_mahalanobis_backward", mutates_args=())
def _mahalanobis_bwd(
    grad: Tensor, x: Tensor, mu: Tensor, factor: Tensor, precision: bool, squared: bool
) -> tuple[Tensor, Tensor, Tensor]:
    with on_torch_stream(mu):
        dx, dmu, dL = _S.mahalanobis_backward(
            _n(x), _n(mu), grad_mahalanobis=_n(grad), squared=squared, **_maha_kw(factor, precision)
        )
    return _back(dx, mu, x.dtype), _back(dmu, mu, mu.dtype), _back(dL, mu, factor.dtype)


@_mahalanobis_bwd.register_fake
def _(grad, x, mu, factor, precision, squared):
    return torch.empty_like(x), torch.empty_like(mu), torch.empty_like(factor)


def _maha_setup(ctx, inputs, output):
    ctx.save_for_backward(*inputs[:3])
    ctx.args = inputs[3:]


def _maha_backward(ctx, g):
    return (*_mahalanobis_bwd(g, *ctx.saved_tensors, *ctx.args), None, None)


_mahalanobis_op.register_autograd(_maha_backward, setup_context=_maha_setup)


def mahalanobis(
    x: Tensor,
    mu: Tensor,
    scale_tril: Optional[Tensor] = None,
    *,
    precision_tril: Optional[Tensor] = None,
    squared: bool = True,
) -> Tensor:
    """Differentiable (squared) Mahalanobis distance with a scale or precision Cholesky factor.
    Op ``pygenmod::sampling_mahalanobis``."""
    if (scale_tril is None) == (precision_tril is None):
        raise TypeError("give exactly one of scale_tril or precision_tril")
    precision = scale_tril is None
    return _mahalanobis_op(x, mu, precision_tril if precision else scale_tril, precision, bool(squared))


# ============================================================================ Gumbel-softmax
@_op("pygenmod::sampling_gumbel_softmax", mutates_args=())
def _gumbel_op(logits: Tensor, tau: float, seed: int, stream: int, offset: int, hard: bool) -> tuple[Tensor, Tensor]:
    """(y, y_soft): with hard=False y is the relaxed sample and y_soft is empty (no second copy)."""
    with on_torch_stream(logits):
        r = _S.gumbel_softmax(_n(logits), tau, seed=key(seed), hard=hard, stream=key(stream), offset=key(offset))
    y = _back(r.y, logits, logits.dtype)
    return y, (_back(r.y_soft, logits, logits.dtype) if hard else logits.new_empty((0,)))


@_gumbel_op.register_fake
def _(logits, tau, seed, stream, offset, hard):
    return torch.empty_like(logits), torch.empty_like(logits) if hard else logits.new_empty((0,))


@_op("pygenmod::sampling_gumbel_softmax_backward", mutates_args=())
def _gumbel_bwd(grad: Tensor, y_soft: Tensor, tau: float) -> Tensor:
    with on_torch_stream(y_soft):
        g = _S.gumbel_softmax_backward(None, tau, grad_y=_n(grad), y_soft=_n(y_soft))
    return _back(g, y_soft, y_soft.dtype)


@_gumbel_bwd.register_fake
def _(grad, y_soft, tau):
    return torch.empty_like(y_soft)


def _gumbel_setup(ctx, inputs, output):
    y, y_soft = output
    ctx.save_for_backward(y_soft if inputs[5] else y)
    ctx.tau = inputs[1]


def _gumbel_backward(ctx, gy, g_soft):
    (y_soft,) = ctx.saved_tensors
    if gy is None:
        gy = torch.zeros_like(y_soft)
    if not empty(g_soft):  # straight-through: y's gradient and y_soft's both go to the relaxed sample
        gy = gy + g_soft
    return _gumbel_bwd(gy, y_soft, ctx.tau), None, None, None, None, None


_gumbel_op.register_autograd(_gumbel_backward, setup_context=_gumbel_setup)


def gumbel_softmax(
    logits: Tensor, tau: float = 1.0, *, seed: SeedLike = None, hard: bool = False, stream: int = 0, offset: int = 0
) -> Tensor:
    """Differentiable Gumbel-softmax sample over the last axis; ``hard=True`` is straight-through
    (one-hot forward, the relaxed sample's gradient backward), like torch.nn.functional.gumbel_softmax
    but with the package's counter-based noise. ``tau`` is a Python number (no gradient).
    Op ``pygenmod::sampling_gumbel_softmax``. (``tau`` is torch's name for what the NumPy API
    calls ``temperature``.)"""
    if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not (tau > 0 and math.isfinite(tau)):
        raise ValueError(f"tau: expected a positive finite number, got {tau!r}")
    return _gumbel_op(
        logits, float(tau), seed_arg(seed), int_arg(stream, "stream"), int_arg(offset, "offset"), bool(hard)
    )[0]
