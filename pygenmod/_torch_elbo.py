"""PyTorch front-end of :mod:`pygenmod.elbo`, re-exported by :mod:`pygenmod.torch`.

``pygenmod::elbo_terms`` is a ``torch.library`` custom op with a fake kernel (``torch.compile``
traces through it) and a registered autograd formula, the fused backward kernel
(``pygenmod::elbo_terms_backward``). Draw z with :func:`pygenmod.torch.rsample_normal` (or any
reparameterized sampler), run the decoder on it, then call :func:`elbo`: the gradient reaches
the encoder through both the closed-form KL (here) and z (the sampler's own backward).
"""

from __future__ import annotations

from typing import Any, Optional, Union

import torch
from torch import Tensor

from . import elbo as _E
from ._torch_common import on_torch_stream
from ._torch_eager import custom_op
from ._typing import Clamp, Likelihood

__all__ = ["elbo", "elbo_terms"]

_KINDS = ("logvar", "log_std", "std", "scale_tril")
_LIKS = tuple(_E.LIKELIHOODS)


def _kw(scale, dec_scale, prior_mu, prior_scale, kind, lik, dec_kind, beta, lo, hi):
    """The keyword arguments of the NumPy-level API for the op's flat arguments."""
    name = _KINDS[kind]
    kw = {name: scale, "likelihood": _LIKS[lik], "beta": beta, "prior_mu": prior_mu}
    if name != "scale_tril":
        kw["clamp"] = (lo, hi)
    if prior_scale is not None:
        kw["prior_scale_tril" if name == "scale_tril" else "prior_" + name] = prior_scale
    if dec_scale is not None:
        kw["dec_" + _KINDS[dec_kind]] = dec_scale
    return kw


@custom_op("pygenmod::elbo_terms", mutates_args=())
def _elbo_op(
    x: Tensor,
    dec: Tensor,
    mu: Tensor,
    scale: Tensor,
    dec_scale: Optional[Tensor],
    prior_mu: Optional[Tensor],
    prior_scale: Optional[Tensor],
    kind: int,
    lik: int,
    dec_kind: int,
    beta: float,
    lo: float,
    hi: float,
) -> tuple[Tensor, Tensor, Tensor]:
    with on_torch_stream(mu):
        t = _E.elbo_terms(x, dec, mu, **_kw(scale, dec_scale, prior_mu, prior_scale, kind, lik, dec_kind, beta, lo, hi))
    return t.elbo, t.log_lik, t.kl


@_elbo_op.register_fake
def _(x, dec, mu, scale, dec_scale, prior_mu, prior_scale, kind, lik, dec_kind, beta, lo, hi):
    shape = mu.shape[:-1]
    return mu.new_empty(shape), mu.new_empty(shape), mu.new_empty(shape)


@custom_op("pygenmod::elbo_terms_backward", mutates_args=())
def _elbo_backward_op(
    x: Tensor,
    dec: Tensor,
    mu: Tensor,
    scale: Tensor,
    dec_scale: Optional[Tensor],
    prior_mu: Optional[Tensor],
    prior_scale: Optional[Tensor],
    kind: int,
    lik: int,
    dec_kind: int,
    beta: float,
    lo: float,
    hi: float,
    grad_elbo: Tensor,
    grad_log_lik: Tensor,
    grad_kl: Tensor,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    with on_torch_stream(mu):
        g = _E.elbo_backward(
            x,
            dec,
            mu,
            grad_elbo=grad_elbo.contiguous(),
            grad_log_lik=grad_log_lik.contiguous(),
            grad_kl=grad_kl.contiguous(),
            **_kw(scale, dec_scale, prior_mu, prior_scale, kind, lik, dec_kind, beta, lo, hi),
        )
    return tuple(mu.new_empty(0) if t is None else t for t in g)  # (distinct tensors: no aliased outputs)


def _learned(dec_scale, dec):
    return dec_scale is not None and tuple(dec_scale.shape) == tuple(dec.shape)


@_elbo_backward_op.register_fake
def _(x, dec, mu, scale, dec_scale, prior_mu, prior_scale, kind, lik, dec_kind, beta, lo, hi, ge, gl, gk):
    e = mu.new_empty
    return (
        torch.empty_like(dec),
        torch.empty_like(mu),
        torch.empty_like(scale),
        torch.empty_like(dec_scale) if _learned(dec_scale, dec) else e(0),
        e(0) if prior_mu is None else torch.empty_like(prior_mu),
        e(0) if prior_scale is None else torch.empty_like(prior_scale),
    )


def _setup(ctx, inputs, output):
    ctx.save_for_backward(*(t for t in inputs[:7] if t is not None))
    ctx.present = tuple(t is not None for t in inputs[:7])
    ctx.args = inputs[7:]


def _backward(ctx, ge, gl, gk):
    it = iter(ctx.saved_tensors)
    x, dec, mu, scale, dsc, pm, ps = (next(it) if p else None for p in ctx.present)
    z = torch.zeros_like(mu[..., 0])
    ge, gl, gk = (z if g is None else g for g in (ge, gl, gk))
    ddec, dmu, dscale, ddsc, dpm, dps = _elbo_backward_op(x, dec, mu, scale, dsc, pm, ps, *ctx.args, ge, gl, gk)
    return (
        None,
        ddec,
        dmu,
        dscale,
        ddsc if _learned(dsc, dec) else None,
        None if pm is None else dpm,
        None if ps is None else dps,
    ) + (None,) * 6


_elbo_op.register_autograd(_backward, setup_context=_setup)


def _t(v, like):
    return v if v is None or isinstance(v, Tensor) else torch.as_tensor(v, dtype=like.dtype, device=like.device)


def elbo_terms(
    x: Tensor,
    dec: Tensor,
    mu: Tensor,
    logvar: Optional[Tensor] = None,
    *,
    log_std: Optional[Tensor] = None,
    std: Optional[Tensor] = None,
    scale_tril: Optional[Tensor] = None,
    prior_mu: Union[Tensor, float, None] = None,
    prior_logvar: Union[Tensor, float, None] = None,
    prior_log_std: Union[Tensor, float, None] = None,
    prior_std: Union[Tensor, float, None] = None,
    prior_scale_tril: Optional[Tensor] = None,
    likelihood: Likelihood = "gaussian",
    dec_logvar: Union[Tensor, float, None] = None,
    dec_log_std: Union[Tensor, float, None] = None,
    dec_std: Union[Tensor, float, None] = None,
    beta: float = 1.0,
    clamp: Optional[Clamp] = None,
) -> _E.Terms:
    """:func:`pygenmod.elbo.elbo_terms` for tensors, differentiable w.r.t. dec, mu, the scale, a
    decoder scale and the prior (a decoder scale that requires grad is treated as learned)."""
    scales = [(i, v) for i, v in enumerate((logvar, log_std, std, scale_tril)) if v is not None]
    if len(scales) != 1:
        raise TypeError("give exactly one of logvar, log_std, std or scale_tril (the posterior's scale)")
    kind, scale = scales[0]
    dsc = [(i, v) for i, v in enumerate((dec_logvar, dec_log_std, dec_std)) if v is not None]
    if len(dsc) > 1:
        raise TypeError("give at most one of dec_logvar, dec_log_std, dec_std (the decoder's scale)")
    dec_kind, dec_scale = dsc[0] if dsc else (0, None)
    dec_scale = _t(dec_scale, dec)
    if dec_scale is not None and dec_scale.requires_grad and not _learned(dec_scale, dec):
        try:
            dec_scale = dec_scale.expand_as(dec).contiguous()  # autograd sums the broadcast back
        except RuntimeError:
            pass  # a shape that does not fit: pygenmod.elbo's check names it
    pss = [v for v in (prior_logvar, prior_log_std, prior_std, prior_scale_tril) if v is not None]
    if len(pss) > 1:
        raise TypeError("give at most one prior scale")
    if pss and kind < 3 and [prior_logvar, prior_log_std, prior_std][kind] is None:
        raise TypeError(f"the prior's scale must use the same parametrisation as {_KINDS[kind]}")
    if kind == 3 and clamp is not None:
        raise TypeError("clamp: applies to a diagonal scale, not to scale_tril")
    lo, hi = _E._s._clamp(clamp)
    t = _elbo_op(
        x,
        dec,
        mu,
        scale,
        dec_scale,
        _t(prior_mu, mu),
        _t(pss[0] if pss else None, mu),
        kind,
        _E.LIKELIHOODS[_E.val.choice(likelihood, "likelihood", _LIKS)],
        dec_kind,
        float(beta),
        lo,
        hi,
    )
    return _E.Terms(*t)


def elbo(x: Tensor, dec: Tensor, mu: Tensor, logvar: Optional[Tensor] = None, **kwargs: Any) -> Tensor:
    """Per-row ELBO (B,) as a differentiable tensor; the arguments of :func:`elbo_terms`."""
    return elbo_terms(x, dec, mu, logvar, **kwargs).elbo
