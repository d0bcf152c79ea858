"""PyTorch front-ends of :mod:`pygenmod.categorical`, re-exported by :mod:`pygenmod.torch`.

Each operation is a ``torch.library`` custom op (``pygenmod::categorical_*``) with a fake
kernel (so ``torch.compile(fullgraph=True)`` keeps it as one graph node) and a registered
autograd formula whose backward is the package's fused VJP kernel (itself a custom op).
Tensors reach the kernels zero-copy through DLPack (CPU tensors: C++ kernels; CUDA tensors:
CUDA kernels on torch's current stream). float16 / bfloat16 logits are computed in float32 and
the results are float32.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from . import categorical as _cat
from ._arrays import to_native
from ._torch_eager import custom_op
from ._torch_sampling import on_torch_stream
from ._typing import QIs, Reduction

__all__ = ["categorical_log_prob", "categorical_entropy", "categorical_kl", "policy_target_kl", "pg_loss"]

_LOW = (torch.float16, torch.bfloat16)


def _np(t: Optional[Tensor]):
    return None if t is None else to_native(t.detach().contiguous())


def _t(a, like: Tensor) -> Tensor:
    return torch.from_dlpack(a).to(like.device)


def _f32(t: Tensor) -> Tensor:
    return t.float() if t.dtype in _LOW else t


# ---------------------------------------------------------------------------- log-probability
@custom_op("pygenmod::categorical_log_prob", mutates_args=())
def _log_prob(logits: Tensor, actions: Tensor, mask: Optional[Tensor]) -> Tensor:
    with on_torch_stream(logits):
        return _t(_cat.log_prob(_np(logits), _np(actions), mask=_np(mask)), logits)


@_log_prob.register_fake
def _(logits, actions, mask):
    return logits.new_empty(logits.shape[:-1])


@custom_op("pygenmod::categorical_log_prob_backward", mutates_args=())
def _log_prob_bwd(logits: Tensor, actions: Tensor, mask: Optional[Tensor], grad: Tensor) -> Tensor:
    with on_torch_stream(logits):
        g = _cat.log_prob_backward(_np(logits), _np(actions), grad_log_prob=_np(grad), mask=_np(mask))
    return _t(g, logits)


@_log_prob_bwd.register_fake
def _(logits, actions, mask, grad):
    return torch.empty_like(logits)


def _save_all(ctx, inputs, output):
    ctx.save_for_backward(*(t for t in inputs if isinstance(t, Tensor) or t is None))
    ctx.extra = tuple(t for t in inputs if not (isinstance(t, Tensor) or t is None))


def _log_prob_grad(ctx, g):
    logits, actions, mask = ctx.saved_tensors
    return _log_prob_bwd(logits, actions, mask, g), None, None


_log_prob.register_autograd(_log_prob_grad, setup_context=_save_all)


# ---------------------------------------------------------------------------- entropy
@custom_op("pygenmod::categorical_entropy", mutates_args=())
def _entropy(logits: Tensor, mask: Optional[Tensor]) -> Tensor:
    with on_torch_stream(logits):
        return _t(_cat.entropy(_np(logits), mask=_np(mask)), logits)


@_entropy.register_fake
def _(logits, mask):
    return logits.new_empty(logits.shape[:-1])


@custom_op("pygenmod::categorical_entropy_backward", mutates_args=())
def _entropy_bwd(logits: Tensor, mask: Optional[Tensor], grad: Tensor) -> Tensor:
    with on_torch_stream(logits):
        g = _cat.entropy_backward(_np(logits), grad_entropy=_np(grad), mask=_np(mask))
    return _t(g, logits)


@_entropy_bwd.register_fake
def _(logits, mask, grad):
    return torch.empty_like(logits)


def _entropy_grad(ctx, g):
    logits, mask = ctx.saved_tensors
    return _entropy_bwd(logits, mask, g), None


_entropy.register_autograd(_entropy_grad, setup_context=_save_all)


# ---------------------------------------------------------------------------- KL(p || q)
# p_is_prob: p holds non-negative weights (the SI-GARL target), normalised per row by the kernel
# call; no gradient flows into them (grad_p comes back empty).
@custom_op("pygenmod::categorical_kl", mutates_args=())
def _kl(p: Tensor, q_logits: Tensor, mask: Optional[Tensor], q_mask: Optional[Tensor], p_is_prob: bool) -> Tensor:
    with on_torch_stream(q_logits):
        if p_is_prob:
            r = _cat.policy_target_kl(_np(p), _np(q_logits), mask=_np(q_mask))
        else:
            r = _cat.kl(_np(p), _np(q_logits), mask=_np(mask), q_mask=_np(q_mask))
    return _t(r, q_logits)


@_kl.register_fake
def _(p, q_logits, mask, q_mask, p_is_prob):
    return q_logits.new_empty(q_logits.shape[:-1])


@custom_op("pygenmod::categorical_kl_backward", mutates_args=())
def _kl_bwd(
    p: Tensor, q_logits: Tensor, mask: Optional[Tensor], q_mask: Optional[Tensor], p_is_prob: bool, grad: Tensor
) -> tuple[Tensor, Tensor]:
    with on_torch_stream(q_logits):
        if p_is_prob:
            dq = _cat.policy_target_kl_backward(_np(p), _np(q_logits), grad_kl=_np(grad), mask=_np(q_mask))
            return q_logits.new_empty((0,)), _t(dq, q_logits)
        dp, dq = _cat.kl_backward(_np(p), _np(q_logits), grad_kl=_np(grad), mask=_np(mask), q_mask=_np(q_mask))
    return _t(dp, q_logits), _t(dq, q_logits)


@_kl_bwd.register_fake
def _(p, q_logits, mask, q_mask, p_is_prob, grad):
    return (q_logits.new_empty((0,)) if p_is_prob else torch.empty_like(q_logits)), torch.empty_like(q_logits)


def _kl_grad(ctx, g):
    p, q, mask, q_mask = ctx.saved_tensors
    (p_is_prob,) = ctx.extra
    dp, dq = _kl_bwd(p, q, mask, q_mask, p_is_prob, g)
    return (None if p_is_prob else dp), dq, None, None, None


_kl.register_autograd(_kl_grad, setup_context=_save_all)


# ---------------------------------------------------------------------------- front-ends
def _mask(mask):
    return None if mask is None else mask.to(torch.bool)


def categorical_log_prob(logits: Tensor, actions: Tensor, mask: Optional[Tensor] = None) -> Tensor:
    """Differentiable ``log p(a)`` of categorical distributions from logits (..., K); actions
    (...) int64; mask True where an action is allowed (see :func:`pygenmod.categorical.log_prob`)."""
    return _log_prob(_f32(logits), actions.to(torch.int64), _mask(mask))


def categorical_entropy(logits: Tensor, mask: Optional[Tensor] = None) -> Tensor:
    """Differentiable entropy per row (see :func:`pygenmod.categorical.entropy`)."""
    return _entropy(_f32(logits), _mask(mask))


def categorical_kl(
    p_logits: Tensor, q_logits: Tensor, mask: Optional[Tensor] = None, q_mask: Optional[Tensor] = None
) -> Tensor:
    """Differentiable ``KL(p || q)`` per row from logits, gradients to both
    (see :func:`pygenmod.categorical.kl`)."""
    q = _f32(q_logits)
    return _kl(p_logits.to(q.dtype), q, _mask(mask), _mask(q_mask), False)


def policy_target_kl(weights: Tensor, logits: Tensor, mask: Optional[Tensor] = None) -> Tensor:
    """SI-GARL's target ``KL(pi_improved || pi_theta)`` per row; gradients to the logits only
    (see :func:`pygenmod.categorical.policy_target_kl`)."""
    q = _f32(logits)
    return _kl(weights.detach().to(q.dtype), q, None, _mask(mask), True)


def pg_loss(
    log_probs: Tensor,
    q_values: Tensor,
    entropy: Optional[Tensor] = None,
    *,
    lam: float = 0.0,
    q_is: QIs = "reward",
    reduction: Reduction = "mean",
) -> Tensor:
    """GAIL's entropy-regularised policy-gradient surrogate as a loss to minimise (plain torch
    ops; q_values are detached): ``-E[log pi Q] - lam E[H]`` for rewards / advantages,
    ``E[log pi Q] - lam E[H]`` for GAIL's costs (``q_is="cost"``); E over the last axis.
    See :func:`pygenmod.categorical.pg_loss`."""
    if q_is not in ("reward", "cost"):
        raise ValueError(f"q_is: expected 'reward' or 'cost', got {q_is!r}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction: expected one of ('mean', 'sum', 'none'), got {reduction!r}")
    if not 0 <= lam < float("inf"):
        raise ValueError(f"lam: must be a finite number >= 0, got {lam}")
    sign = -1.0 if q_is == "reward" else 1.0
    elem = sign * log_probs * q_values.detach()
    if entropy is not None:
        elem = elem - lam * entropy
    elif lam != 0:
        raise ValueError("entropy: required when lam != 0")
    return elem if reduction == "none" else (elem.sum(-1) if reduction == "sum" else elem.mean(-1))
