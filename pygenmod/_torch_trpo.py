"""The Fisher-vector product of a torch policy by double backprop, for :mod:`pygenmod.trpo`
(re-exported by :mod:`pygenmod.torch`).

At the current parameters theta the mean KL(pi_old || pi_theta) has zero gradient and its
Hessian is the Fisher information matrix F, so ``F v = d/dtheta ((d KL / dtheta) . v)``
(Schulman et al. 2015, appendix C.1; as in the reference implementations). The gradient
of the KL is built once with ``create_graph=True``; each product is one more backward pass
through it, so F is never formed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

__all__ = ["fisher_vector_product"]


def fisher_vector_product(
    kl: Callable[[], torch.Tensor], params: torch.nn.Module | Iterable[torch.Tensor], *, damping: float = 0.0
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A callable ``fvp(v) = (F + damping I) v`` for a torch policy.

    kl: a closure returning the scalar mean KL(pi_old || pi_theta) over the batch of states,
    with pi_old detached (so at theta = theta_old it is 0 with zero gradient and Hessian F);
    params: an ``nn.Module`` (its parameters that require grad) or an iterable of tensors,
    flattened in order as ``torch.nn.utils.parameters_to_vector`` does (n entries in all).
    ``kl`` is called once here; build a new fvp after changing the parameters.

    fvp takes v of shape (n,) or (B, n) (one product per row, e.g. for
    :func:`pygenmod.trpo.conjugate_gradient`) and returns a detached tensor of v's shape.
    """
    if isinstance(params, torch.nn.Module):
        params = [p for p in params.parameters() if p.requires_grad]
    else:
        params = list(params)
    if not params or not all(isinstance(p, torch.Tensor) and p.requires_grad for p in params):
        raise ValueError("params: expected an nn.Module or a non-empty iterable of tensors that require grad")
    damping = float(damping)
    if not damping >= 0:
        raise ValueError(f"damping: must be >= 0, got {damping}")
    with torch.enable_grad():
        value = kl()
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            raise ValueError("kl: must return a scalar tensor (the mean KL over the states)")
        grads = torch.autograd.grad(value.reshape(()), params, create_graph=True, allow_unused=True)
    flat = torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)])
    n = flat.numel()
    if not flat.requires_grad:  # the KL does not depend on params at second order: F = 0
        return lambda v: damping * v.detach()

    def fvp(v):
        if not isinstance(v, torch.Tensor) or v.shape[-1:] != (n,) or v.ndim not in (1, 2):
            raise ValueError(
                f"v: expected a tensor of shape (n,) or (B, n) with n = {n}, got {tuple(getattr(v, 'shape', ()))}"
            )
        rows = v.detach().reshape(-1, n).to(dtype=flat.dtype, device=flat.device)
        out = torch.empty_like(rows)
        with torch.enable_grad():
            for b in range(rows.shape[0]):  # one Hessian-vector product per row
                hv = torch.autograd.grad(flat @ rows[b], params, retain_graph=True, allow_unused=True)
                out[b] = torch.cat(
                    [(h if h is not None else torch.zeros_like(p)).reshape(-1) for h, p in zip(hv, params)]
                )
        out = out + damping * rows
        return out.reshape(v.shape).to(v.dtype)

    return fvp
