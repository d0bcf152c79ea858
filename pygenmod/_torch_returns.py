"""PyTorch front-ends of :mod:`pygenmod.returns` (re-exported by :mod:`pygenmod.torch`):
``pygenmod::returns_gae`` and ``pygenmod::returns_discounted`` custom ops with fake kernels, so
they stay one node under ``torch.compile(fullgraph=True)``.

They are NOT differentiable: advantages and returns are regression targets, computed from
detached rewards and values (as in PPO). The wrappers detach their inputs, so the outputs do
not require grad; no autograd formula is registered (calling the op itself on tensors that
require grad and backpropagating through it raises torch's "no autograd formula" error).
"""

from __future__ import annotations

from typing import Optional, Union

import torch
from torch import Tensor

from . import returns as _R
from ._torch_common import native, number_or_native, on_torch_stream, scalar_tensor, tensor
from ._torch_eager import custom_op

__all__ = ["gae", "lambda_returns", "discounted_returns"]


_n = native


@custom_op("pygenmod::returns_gae", mutates_args=())
def _gae_op(
    rewards: Tensor,
    values: Optional[Tensor],
    gamma: Tensor,
    lam: Tensor,
    terminated: Optional[Tensor],
    truncated: Optional[Tensor],
    next_values: Optional[Tensor],
    bootstrap_value: Optional[Tensor],
    mask: Optional[Tensor],
    time_axis: int,
    compute_returns: bool,
    discounted: bool,
) -> tuple[Tensor, Tensor]:
    """(advantages, returns) of returns.gae; with ``discounted`` (values None, lam ignored) the
    discounted returns of returns.discounted_returns and an empty second output."""
    kw = dict(
        terminated=_n(terminated),
        truncated=_n(truncated),
        next_values=_n(next_values),
        bootstrap_value=_n(bootstrap_value),
        mask=_n(mask),
        time_axis=time_axis,
    )
    with on_torch_stream(rewards):
        if discounted:
            adv, ret = _R.discounted_returns(_n(rewards), gamma=number_or_native(gamma), **kw), None
        else:
            adv, ret = _R.gae(
                _n(rewards),
                _n(values),
                gamma=number_or_native(gamma),
                lam=number_or_native(lam),
                compute_returns=compute_returns,
                **kw,
            )
    none = rewards.new_empty((0,))
    return tensor(adv, rewards), (none if ret is None else tensor(ret, rewards))


@_gae_op.register_fake
def _(
    rewards,
    values,
    gamma,
    lam,
    terminated,
    truncated,
    next_values,
    bootstrap_value,
    mask,
    time_axis,
    compute_returns,
    discounted,
):
    want = compute_returns and not discounted
    return torch.empty_like(rewards), torch.empty_like(rewards) if want else rewards.new_empty((0,))


def _t(x, like: Tensor):
    """A number or tensor argument as a detached tensor (numbers in the rewards' dtype)."""
    if x is None:
        return None
    if isinstance(x, Tensor):
        return x.detach()
    return scalar_tensor(x, like.dtype, like.device)


def _call(
    rewards,
    values,
    gamma,
    lam,
    terminated,
    truncated,
    next_values,
    bootstrap_value,
    mask,
    time_axis,
    compute_returns,
    discounted,
):
    if not isinstance(rewards, Tensor):
        raise TypeError(f"rewards: expected a torch.Tensor, got {type(rewards).__name__}")
    r = rewards.detach()
    return _gae_op(
        r,
        _t(values, r),
        _t(gamma, r),
        _t(lam, r),
        _t(terminated, r),
        _t(truncated, r),
        _t(next_values, r),
        _t(bootstrap_value, r),
        _t(mask, r),
        int(time_axis),
        bool(compute_returns),
        discounted,
    )


def gae(
    rewards: Tensor,
    values: Tensor,
    *,
    gamma: Union[Tensor, float] = 0.99,
    lam: Union[Tensor, float] = 0.95,
    terminated: Optional[Tensor] = None,
    truncated: Optional[Tensor] = None,
    next_values: Optional[Tensor] = None,
    bootstrap_value: Optional[Tensor] = None,
    mask: Optional[Tensor] = None,
    time_axis: int = 0,
    compute_returns: bool = True,
) -> _R.GAE:
    """:func:`pygenmod.returns.gae` on tensors: ``GAE(advantages, returns)`` (returns None with
    ``compute_returns=False``). Not differentiable (the inputs are detached).
    Op ``pygenmod::returns_gae``."""
    adv, ret = _call(
        rewards,
        values,
        gamma,
        lam,
        terminated,
        truncated,
        next_values,
        bootstrap_value,
        mask,
        time_axis,
        compute_returns,
        False,
    )
    return _R.GAE(adv, ret if compute_returns else None)


def lambda_returns(
    rewards: Tensor,
    values: Tensor,
    *,
    gamma: Union[Tensor, float] = 0.99,
    lam: Union[Tensor, float] = 0.95,
    terminated: Optional[Tensor] = None,
    truncated: Optional[Tensor] = None,
    next_values: Optional[Tensor] = None,
    bootstrap_value: Optional[Tensor] = None,
    mask: Optional[Tensor] = None,
    time_axis: int = 0,
) -> Tensor:
    """TD(lambda) returns ``A_t + V_t`` on tensors (not differentiable). Op ``pygenmod::returns_gae``."""
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


def discounted_returns(
    rewards: Tensor,
    *,
    gamma: Union[Tensor, float] = 0.99,
    terminated: Optional[Tensor] = None,
    truncated: Optional[Tensor] = None,
    next_values: Optional[Tensor] = None,
    bootstrap_value: Optional[Tensor] = None,
    mask: Optional[Tensor] = None,
    time_axis: int = 0,
) -> Tensor:
    """:func:`pygenmod.returns.discounted_returns` on tensors (not differentiable).
    Op ``pygenmod::returns_gae`` with ``discounted=True``."""
    return _call(
        rewards, None, gamma, 1.0, terminated, truncated, next_values, bootstrap_value, mask, time_axis, False, True
    )[0]
