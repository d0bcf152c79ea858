"""PyTorch front-ends for the pygenmod kernels (optional: importing this module needs torch;
the rest of pygenmod never imports it). Guide: docs/torch.md.

Every differentiable operation is a ``torch.library`` custom op named
``pygenmod::<family>_<op>``; each family has the same shape:

1. ``torch.library.custom_op`` wrappers around the public NumPy/CuPy API, called through
   zero-copy views (CUDA tensors on torch's current stream); made by
   :func:`pygenmod._torch_eager.custom_op`, so that a plain eager call skips torch's
   dispatcher and runs the same kernel function (and autograd formula) directly;
2. a ``register_fake`` shape function per op, so ``torch.compile`` traces through without a
   graph break;
3. ``register_autograd`` wiring the backward, itself a custom op with a fake kernel (the
   family's VJP);
4. functional front-ends (seeds resolved once per call, then passed to the op as ints) and,
   where useful, an ``nn.Module``.

Spatial softmax lives below; every other family lives in a private module
``pygenmod/_torch_<topic>.py`` re-exported at the end of this file by one import line. The
shared helpers ``_native`` / ``_tensor`` / ``_on_torch_stream`` (and the op-argument seeds
``seed_arg`` / ``int_arg`` / ``key``) come from :mod:`pygenmod._torch_common`.
"""

from typing import Optional, Union

import torch
from torch import Tensor, nn

# The shared helpers (defined in _torch_common, so that the _torch_<topic> modules can import
# them from either place without an import cycle).
from ._torch_common import compute_dtype as _compute_dtype
from ._torch_common import empty as _empty
from ._torch_common import fresh_seed
from ._torch_common import native as _native
from ._torch_common import number_or_native as _number_or_native
from ._torch_common import on_torch_stream as _on_torch_stream
from ._torch_common import scalar_tensor as _scalar_tensor
from ._torch_common import tensor as _tensor
from ._torch_eager import custom_op
from ._typing import CoordOrder, Coords, Layout

__all__ = ["spatial_softmax", "SpatialSoftmax", "fresh_seed"]

# ============================================================================ spatial
from . import spatial as _spatial  # noqa: E402


def _spatial_opts(layout: str, coords: str, order: str) -> dict:
    return dict(layout=layout, coords=coords, order=order)


@custom_op("pygenmod::spatial_softmax_fwd", mutates_args=())
def _spatial_fwd(
    x: Tensor,
    temperature: Tensor,
    mask: Optional[Tensor],
    layout: str,
    coords: str,
    order: str,
    want_cov: bool,
    want_maps: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    with _on_torch_stream(x):
        res = _spatial.spatial_softmax_forward(
            _native(x),
            _number_or_native(temperature),
            mask=_native(mask),
            return_cov=want_cov,
            return_maps=want_maps,
            **_spatial_opts(layout, coords, order),
        )
    none = x.new_empty((0,), dtype=_compute_dtype(x.dtype))  # outputs not asked for are empty
    cov = _tensor(res.cov, x) if want_cov else none
    maps = _tensor(res.maps, x) if want_maps else none.clone()
    return _tensor(res.keypoints, x), cov, maps, _tensor(res.stats, x)


@_spatial_fwd.register_fake
def _(x, temperature, mask, layout, coords, order, want_cov, want_maps):
    B = x.shape[0]
    C = x.shape[3] if layout == "NHWC" else x.shape[1]
    dt = _compute_dtype(x.dtype)
    cov = x.new_empty((B, C, 2, 2) if want_cov else (0,), dtype=dt)
    maps = x.new_empty(x.shape if want_maps else (0,), dtype=dt)
    return x.new_empty((B, C, 2), dtype=dt), cov, maps, x.new_empty((B, C, 2), dtype=dt)


@custom_op("pygenmod::spatial_softmax_bwd", mutates_args=())
def _spatial_bwd(
    x: Tensor,
    temperature: Tensor,
    mask: Optional[Tensor],
    layout: str,
    coords: str,
    order: str,
    keypoints: Tensor,
    cov: Tensor,
    stats: Tensor,
    grad_keypoints: Tensor,
    grad_cov: Optional[Tensor],
    grad_maps: Optional[Tensor],
) -> tuple[Tensor, Tensor]:
    saved = _spatial.SpatialSoftmaxResult(
        _native(keypoints), None if _empty(cov) else _native(cov), None, _native(stats)
    )
    with _on_torch_stream(x):
        gx, gt = _spatial.spatial_softmax_backward(
            _native(x),
            _number_or_native(temperature),
            grad_keypoints=_native(grad_keypoints),
            grad_cov=_native(grad_cov),
            grad_maps=_native(grad_maps),
            saved=saved,
            mask=_native(mask),
            **_spatial_opts(layout, coords, order),
        )
    gx = _tensor(gx, x).to(x.dtype)
    gt = _tensor(gt, x).to(temperature.dtype).reshape(temperature.shape)
    return gx, gt


@_spatial_bwd.register_fake
def _(x, temperature, mask, layout, coords, order, keypoints, cov, stats, grad_keypoints, grad_cov, grad_maps):
    return torch.empty_like(x), torch.empty_like(temperature)


def _spatial_setup(ctx, inputs, output):
    x, temperature, mask, layout, coords, order, _want_cov, _want_maps = inputs
    keypoints, cov, _maps, stats = output
    ctx.save_for_backward(x, temperature, mask, keypoints, cov, stats)
    ctx.opts = (layout, coords, order)


def _spatial_backward(ctx, g_kp, g_cov, g_maps, _g_stats):
    x, temperature, mask, keypoints, cov, stats = ctx.saved_tensors
    layout, coords, order = ctx.opts
    if g_kp is None:
        g_kp = torch.zeros_like(keypoints)
    # Maps that were not requested are empty: no gradient pass for them. (Unused cov arrives
    # as zeros; it costs nothing extra in the fused kernel.)
    g_maps = None if _empty(g_maps) else g_maps
    gx, gt = _spatial_bwd(
        x,
        temperature,
        mask,
        layout,
        coords,
        order,
        keypoints,
        cov,
        stats,
        g_kp.contiguous(),
        None if _empty(g_cov) else g_cov.contiguous(),
        None if g_maps is None else g_maps.contiguous(),
    )
    return gx, gt, None, None, None, None, None, None


torch.library.register_autograd("pygenmod::spatial_softmax_fwd", _spatial_backward, setup_context=_spatial_setup)


def spatial_softmax(
    x: Tensor,
    temperature: Union[Tensor, float] = 1.0,
    *,
    layout: Layout = "NCHW",
    coords: Coords = "normalized",
    order: CoordOrder = "xy",
    mask: Optional[Tensor] = None,
    return_cov: bool = False,
    return_maps: bool = False,
) -> Union[Tensor, tuple[Tensor, ...]]:
    """Differentiable spatial softmax keypoints of a tensor (see :mod:`pygenmod.spatial` for
    the contract). Gradients flow to ``x`` and to ``temperature`` (a tensor, scalar or (C,)).

    Returns keypoints (B, C, 2), or ``(keypoints, cov)`` / ``(keypoints, maps)`` /
    ``(keypoints, cov, maps)`` when requested. Runs through a ``torch.library`` custom op, so
    ``torch.compile(fullgraph=True)`` keeps it as one node.
    """
    if not isinstance(temperature, Tensor):
        temperature = _scalar_tensor(float(temperature), _compute_dtype(x.dtype), x.device)
    if mask is not None:
        mask = mask.to(torch.bool)
    kp, cov, maps, _ = _spatial_fwd(x, temperature, mask, layout, coords, order, return_cov, return_maps)
    out = (kp,) + ((cov,) if return_cov else ()) + ((maps,) if return_maps else ())
    return out[0] if len(out) == 1 else out


class SpatialSoftmax(nn.Module):
    """Spatial softmax keypoints with a learnable temperature (Finn et al. 2016).

    num_channels: C; with ``per_channel=True`` one temperature per channel, else a scalar.
    ``learnable=False`` keeps the temperature as a buffer. The temperature is the parameter
    itself (as in robomimic): it must stay positive (a ValueError is raised otherwise).
    Returns keypoints (B, C, 2), or (keypoints, cov) with ``return_cov=True``.
    """

    def __init__(
        self,
        num_channels: Optional[int] = None,
        temperature: float = 1.0,
        *,
        learnable: bool = True,
        per_channel: bool = False,
        layout: Layout = "NCHW",
        coords: Coords = "normalized",
        order: CoordOrder = "xy",
        return_cov: bool = False,
    ) -> None:
        super().__init__()
        if per_channel and not num_channels:
            raise ValueError("num_channels: needed with per_channel=True")
        if not temperature > 0:
            raise ValueError(f"temperature: must be > 0, got {temperature}")
        shape = (num_channels,) if per_channel else ()
        t = torch.full(shape, float(temperature))
        if learnable:
            self.temperature = nn.Parameter(t)
        else:
            self.register_buffer("temperature", t)
        self.num_channels = num_channels
        self.layout, self.coords, self.order, self.return_cov = layout, coords, order, return_cov

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> Union[Tensor, tuple[Tensor, Tensor]]:
        t = self.temperature
        if t.dtype != _compute_dtype(x.dtype):
            t = t.to(_compute_dtype(x.dtype))
        return spatial_softmax(
            x, t, layout=self.layout, coords=self.coords, order=self.order, mask=mask, return_cov=self.return_cov
        )

    def extra_repr(self) -> str:
        return (
            f"num_channels={self.num_channels}, temperature_shape={tuple(self.temperature.shape)}, "
            f"layout={self.layout!r}, coords={self.coords!r}, order={self.order!r}"
        )


# ============================================================================ sampling
# Reparameterized samplers, KL, log-densities, Mahalanobis and Gumbel-softmax: the
# pygenmod::sampling_* custom ops live in _torch_sampling.
from . import _torch_sampling as _sampling  # noqa: E402
from ._torch_sampling import (  # noqa: E402,F401
    gumbel_softmax,
    kl_mvn,
    kl_normal,
    mahalanobis,
    mvn_head,
    mvn_log_prob,
    normal_head,
    normal_log_prob,
    rsample_mvn,
    rsample_normal,
)

HAVE_SAMPLING_CUSTOM_OPS = _sampling.HAVE_CUSTOM_OPS
__all__ += _sampling.__all__

# ============================================================================ returns
# GAE, lambda-returns, discounted returns: non-differentiable pygenmod::returns_* ops.
from . import _torch_returns as _returns  # noqa: E402
from ._torch_returns import discounted_returns, gae, lambda_returns  # noqa: E402,F401

__all__ += _returns.__all__

# ============================================================================ TRPO
# F v by double backprop for a policy's KL (pygenmod.trpo's machinery).
from ._torch_trpo import fisher_vector_product  # noqa: E402

__all__ += ["fisher_vector_product"]

# ============================================================================ categorical
# pygenmod::categorical_* custom ops (log-prob, entropy, KL, SI-GARL target) and pg_loss.
from ._torch_categorical import (  # noqa: E402,F401
    categorical_entropy,
    categorical_kl,
    categorical_log_prob,
    pg_loss,
    policy_target_kl,
)

__all__ += ["categorical_log_prob", "categorical_entropy", "categorical_kl", "policy_target_kl", "pg_loss"]

# ============================================================================ ELBO
# The VAE ELBO (pygenmod::elbo_terms and its fused backward) lives in _torch_elbo.
from ._torch_elbo import elbo, elbo_terms  # noqa: E402,F401  (pygenmod::elbo_terms)

__all__ += ["elbo", "elbo_terms"]
