"""PyTorch front-ends for the pygenmod kernels (optional: importing this module needs torch;
the rest of pygenmod never imports it).

Each family has one section below with the same shape:

1. ``torch.library.custom_op("pygenmod::<name>")`` wrappers around the public NumPy/CuPy API,
   called through zero-copy DLPack views (no copies for contiguous inputs);
2. a ``register_fake`` shape function per op, so ``torch.compile`` traces through without a
   graph break;
3. ``register_autograd`` wiring the backward op (the family's fused VJP kernel);
4. a functional front-end and an ``nn.Module``.

To add a family, add a section with its ops named ``pygenmod::<family>_<op>``; the helpers
``_native`` / ``_tensor`` are shared.
"""
from typing import Optional

import torch
from torch import Tensor, nn

from ._arrays import to_native

__all__ = ["spatial_softmax", "SpatialSoftmax"]


# ============================================================================ shared helpers
def _native(t: Optional[Tensor]):
    """A NumPy (CPU) or CuPy (CUDA) view of ``t`` through DLPack (contiguous first; no copy
    when it already is). bfloat16 has no DLPack/NumPy dtype: on the CPU it is handed over as
    ml_dtypes' bfloat16 (a zero-copy view of the same bits) when ml_dtypes is installed,
    otherwise (and on CUDA) it is widened to float32 here."""
    if t is None:
        return None
    t = t.detach().contiguous()
    if t.dtype == torch.bfloat16:
        bf16 = _ml_bfloat16()
        if bf16 is None or t.is_cuda:
            return to_native(t.float())
        return to_native(t.view(torch.int16)).view(bf16)
    return to_native(t)


def _ml_bfloat16():
    try:
        import ml_dtypes
    except ImportError:
        return None
    return ml_dtypes.bfloat16


def _tensor(a, like: Tensor) -> Tensor:
    """The NumPy/CuPy result ``a`` as a tensor on ``like``'s device (zero-copy DLPack)."""
    if a.dtype.itemsize == 2 and a.dtype.name == "bfloat16":
        return torch.from_dlpack(a.view("int16")).view(torch.bfloat16).to(like.device)
    return torch.from_dlpack(a).to(like.device)


def _on_torch_stream(t: Tensor):
    """For CUDA tensors: run pygenmod's CuPy-launched kernels on torch's current stream, so
    they are ordered with the surrounding torch work. A no-op context on the CPU."""
    from ._torch_sampling import on_torch_stream  # one implementation (device + stream)

    return on_torch_stream(t)


def _empty(t: Optional[Tensor]) -> bool:
    return t is None or t.numel() == 0


# ============================================================================ spatial
from . import spatial as _spatial  # noqa: E402


def _spatial_opts(layout: str, coords: str, order: str) -> dict:
    return dict(layout=layout, coords=coords, order=order)


def _compute_dtype(dtype):
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


@torch.library.custom_op("pygenmod::spatial_softmax_fwd", mutates_args=())
def _spatial_fwd(x: Tensor, temperature: Tensor, mask: Optional[Tensor], layout: str, coords: str,
                 order: str, want_cov: bool, want_maps: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    with _on_torch_stream(x):
        res = _spatial.spatial_softmax_forward(
            _native(x), _native(temperature), mask=_native(mask), return_cov=want_cov,
            return_maps=want_maps, **_spatial_opts(layout, coords, order))
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


@torch.library.custom_op("pygenmod::spatial_softmax_bwd", mutates_args=())
def _spatial_bwd(x: Tensor, temperature: Tensor, mask: Optional[Tensor], layout: str, coords: str,
                 order: str, keypoints: Tensor, cov: Tensor, stats: Tensor, grad_keypoints: Tensor,
                 grad_cov: Optional[Tensor], grad_maps: Optional[Tensor]) -> tuple[Tensor, Tensor]:
    saved = _spatial.SpatialSoftmaxResult(_native(keypoints), None if _empty(cov) else _native(cov),
                                          None, _native(stats))
    with _on_torch_stream(x):
        gx, gt = _spatial.spatial_softmax_vjp(
            _native(x), _native(temperature), _native(grad_keypoints), _native(grad_cov),
            _native(grad_maps), saved=saved, mask=_native(mask), **_spatial_opts(layout, coords, order))
    gx = _tensor(gx, x).to(x.dtype)
    gt = _tensor(gt, x).to(temperature.dtype).reshape(temperature.shape)
    return gx, gt


@_spatial_bwd.register_fake
def _(x, temperature, mask, layout, coords, order, keypoints, cov, stats, grad_keypoints, grad_cov,
      grad_maps):
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
    gx, gt = _spatial_bwd(x, temperature, mask, layout, coords, order, keypoints, cov, stats,
                          g_kp.contiguous(), None if _empty(g_cov) else g_cov.contiguous(),
                          None if g_maps is None else g_maps.contiguous())
    return gx, gt, None, None, None, None, None, None


torch.library.register_autograd("pygenmod::spatial_softmax_fwd", _spatial_backward,
                                setup_context=_spatial_setup)


def spatial_softmax(x: Tensor, temperature=1.0, *, layout: str = "NCHW", coords: str = "normalized",
                    order: str = "xy", mask: Optional[Tensor] = None, return_cov: bool = False,
                    return_maps: bool = False):
    """Differentiable spatial softmax keypoints of a tensor (see :mod:`pygenmod.spatial` for
    the contract). Gradients flow to ``x`` and to ``temperature`` (a tensor, scalar or (C,)).

    Returns keypoints (B, C, 2), or ``(keypoints, cov)`` / ``(keypoints, maps)`` /
    ``(keypoints, cov, maps)`` when requested. Runs through a ``torch.library`` custom op, so
    ``torch.compile(fullgraph=True)`` keeps it as one node.
    """
    if not isinstance(temperature, Tensor):
        temperature = torch.tensor(float(temperature), dtype=_compute_dtype(x.dtype), device=x.device)
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

    def __init__(self, num_channels: Optional[int] = None, temperature: float = 1.0, *,
                 learnable: bool = True, per_channel: bool = False, layout: str = "NCHW",
                 coords: str = "normalized", order: str = "xy", return_cov: bool = False):
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

    def forward(self, x: Tensor, mask: Optional[Tensor] = None):
        t = self.temperature
        if t.dtype != _compute_dtype(x.dtype):
            t = t.to(_compute_dtype(x.dtype))
        return spatial_softmax(x, t, layout=self.layout, coords=self.coords, order=self.order,
                               mask=mask, return_cov=self.return_cov)

    def extra_repr(self) -> str:
        return (f"num_channels={self.num_channels}, temperature_shape={tuple(self.temperature.shape)}, "
                f"layout={self.layout!r}, coords={self.coords!r}, order={self.order!r}")


# ============================================================================ sampling
# Reparameterized samplers, KL and log-densities (autograd Functions and the
# pygenmod::normal_head / pygenmod::mvn_head custom ops) live in _torch_sampling.
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
from ._torch_elbo import elbo, elbo_terms  # noqa: E402,F401  (the VAE ELBO, pygenmod::elbo; _torch_elbo)

__all__ += ["elbo", "elbo_terms"]
