"""PyTorch autograd wrappers of :mod:`pygenmod.sampling`, re-exported by :mod:`pygenmod.torch`.

Tensors go to the kernels zero-copy through DLPack (CPU tensors to the C++ kernels, CUDA
tensors to the CUDA kernels through CuPy); gradients come from the package's own VJPs, and
the backward passes regenerate the noise from ``(seed, stream, offset)`` instead of saving
it. ``seed=None`` (the default) takes one fresh key from the package generator per call
(:mod:`pygenmod.random`), used by both the forward and the backward pass. float16 / bfloat16 tensors are computed in float32: samples come back in the input
dtype, KL and log-densities in float32.

The ``pygenmod::normal_head`` and ``pygenmod::mvn_head`` custom ops (torch.library, with
fake kernels, so ``torch.compile`` can trace through them) are registered on import when
``torch.library.custom_op`` is available; :func:`normal_head` and :func:`mvn_head` here are
plain autograd Functions and work without them.
"""
from __future__ import annotations

import contextlib
import functools

import torch

from . import sampling as _sampling
from ._seed import resolve_seed


def on_torch_stream(*tensors):
    """For CUDA tensors: run the CuPy-launched kernels on torch's current stream of the first
    CUDA tensor's device, with that device current, so they are ordered with the surrounding
    torch work (and can be captured in a CUDA graph). A no-op context when no tensor is on CUDA."""
    t = next((x for x in tensors if isinstance(x, torch.Tensor) and x.is_cuda), None)
    if t is None:
        return contextlib.nullcontext()
    import cupy

    dev = t.device.index if t.device.index is not None else torch.cuda.current_device()
    stack = contextlib.ExitStack()
    stack.enter_context(cupy.cuda.Device(dev))
    stack.enter_context(cupy.cuda.ExternalStream(torch.cuda.current_stream(dev).cuda_stream, device_id=dev))
    return stack


class _OnTorchStream:
    """pygenmod.sampling with every function run under :func:`on_torch_stream` of its tensor
    arguments (the wrappers below call it as ``_S``)."""

    def __getattr__(self, name):
        fn = getattr(_sampling, name)
        if not callable(fn):
            return fn

        @functools.wraps(fn)
        def call(*args, **kwargs):
            with on_torch_stream(*args, *kwargs.values()):
                return fn(*args, **kwargs)

        setattr(self, name, call)  # cache: later lookups skip __getattr__
        return call


_S = _OnTorchStream()

__all__ = ["rsample_normal", "normal_head", "kl_normal", "normal_log_prob", "rsample_mvn", "mvn_head", "kl_mvn",
           "mvn_log_prob", "mahalanobis", "gumbel_softmax"]

_LOW = (torch.float16, torch.bfloat16)


def _f32(t):
    """float32 copy of a half tensor (the kernels compute half in float32)."""
    if t is None:
        return None
    if not isinstance(t, torch.Tensor):
        return t
    t = t.detach()
    return t.float() if t.dtype in _LOW else t


def _g(t):
    return None if t is None else t.contiguous()


def _scale_kw(logvar, log_std, std):
    given = [(n, v) for n, v in (("logvar", logvar), ("log_std", log_std), ("std", std)) if v is not None]
    if len(given) != 1:
        raise TypeError("give exactly one of logvar, log_std or std")
    return given[0]


class _NormalHead(torch.autograd.Function):
    @staticmethod
    def forward(ctx, mu, p, eps, pname, seed, n_samples, stream, offset, clamp, log_q):
        out_dtype = mu.dtype
        m32, p32, e32 = _f32(mu), _f32(p), _f32(eps)
        h = _S.normal_head(m32, seed=seed, n_samples=n_samples, stream=stream, offset=offset, eps=e32, clamp=clamp,
                           log_q=log_q, **{pname: p32})
        ctx.save_for_backward(m32, p32, e32 if eps is not None else None)
        ctx.args = (pname, seed, n_samples, stream, offset, clamp, log_q, out_dtype, p.dtype)
        z = h.z.to(out_dtype) if out_dtype in _LOW else h.z
        lq = h.log_q if log_q else h.kl.new_empty(0)
        ctx.mark_non_differentiable(*(() if log_q else (lq,)))
        return z, h.kl, lq

    @staticmethod
    def backward(ctx, gz, gkl, glq):
        m32, p32, e32 = ctx.saved_tensors
        pname, seed, n_samples, stream, offset, clamp, log_q, mdt, pdt = ctx.args
        dmu, dp = _S.normal_head_backward(
            m32, grad_z=_g(_f32(gz)), grad_kl=_g(_f32(gkl)), grad_log_q=_g(_f32(glq)) if log_q else None, seed=seed,
            n_samples=n_samples, stream=stream, offset=offset, eps=e32, clamp=clamp, **{pname: p32})
        return dmu.to(mdt), dp.to(pdt), None, None, None, None, None, None, None, None


def normal_head(mu, logvar=None, *, log_std=None, std=None, seed=None, n_samples=None, stream=0, offset=0, eps=None,
                clamp=None, log_q=False):
    """Fused VAE head (differentiable): returns ``(z, kl, log_q)`` (log_q None unless requested).
    See :func:`pygenmod.sampling.normal_head`."""
    pname, p = _scale_kw(logvar, log_std, std)
    seed = resolve_seed(seed)  # once: forward and backward must see the same key
    z, kl, lq = _NormalHead.apply(mu, p, eps, pname, seed, n_samples, stream, offset, clamp, bool(log_q))
    return z, kl, (lq if log_q else None)


def rsample_normal(mu, logvar=None, *, log_std=None, std=None, seed=None, n_samples=None, stream=0, offset=0, eps=None,
                   clamp=None):
    """Differentiable ``z = mu + sigma * eps`` (see :func:`pygenmod.sampling.rsample_normal`)."""
    return normal_head(mu, logvar, log_std=log_std, std=std, seed=seed, n_samples=n_samples, stream=stream,
                       offset=offset, eps=eps, clamp=clamp)[0]


class _KLNormal(torch.autograd.Function):
    @staticmethod
    def forward(ctx, mu, p, pm, pp, pname, clamp):
        a = [_f32(t) for t in (mu, p, pm, pp)]
        kw = {pname: a[1]}
        if a[3] is not None:
            kw["prior_" + pname] = a[3]
        ctx.save_for_backward(*a)
        ctx.args = (pname, clamp, [t.dtype if isinstance(t, torch.Tensor) else None for t in (mu, p, pm, pp)])
        return _S.kl_normal(a[0], prior_mu=a[2], clamp=clamp, **kw)

    @staticmethod
    def backward(ctx, g):
        mu, p, pm, pp = ctx.saved_tensors
        pname, clamp, dts = ctx.args
        kw = {pname: p}
        if pp is not None:
            kw["prior_" + pname] = pp
        grads = _S.kl_normal_backward(_f32(g).contiguous(), mu, prior_mu=pm, clamp=clamp, **kw)
        out = []
        for gr, t_dt, src in zip(grads, dts, (mu, p, pm, pp)):
            if gr is None or t_dt is None:
                out.append(None)
                continue
            gr = gr.to(t_dt)
            if src is not None and src.shape != gr.shape:  # a broadcast prior: sum to its shape
                gr = gr.sum_to_size(src.shape)
            out.append(gr)
        return (*out, None, None)


def kl_normal(mu, logvar=None, prior_mu=None, prior_logvar=None, *, log_std=None, std=None, prior_log_std=None,
              prior_std=None, clamp=None):
    """Differentiable per-row KL between diagonal Gaussians (prior default N(0, I))."""
    pname, p = _scale_kw(logvar, log_std, std)
    prior = {"logvar": prior_logvar, "log_std": prior_log_std, "std": prior_std}[pname]
    others = [v for k, v in (("logvar", prior_logvar), ("log_std", prior_log_std), ("std", prior_std)) if k != pname]
    if any(v is not None for v in others):
        raise TypeError(f"the prior's scale must use the same parametrisation as {pname}")
    if prior_mu is not None and not isinstance(prior_mu, torch.Tensor):
        prior_mu = torch.full_like(mu, float(prior_mu))
    if prior is not None and not isinstance(prior, torch.Tensor):
        prior = torch.full_like(mu, float(prior))
    return _KLNormal.apply(mu, p, prior_mu, prior, pname, clamp)


class _NormalLogProb(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, mu, p, pname, clamp):
        a = [_f32(t) for t in (x, mu, p)]
        ctx.save_for_backward(*a)
        ctx.args = (pname, clamp, x.dtype, mu.dtype, p.dtype)
        return _S.normal_log_prob(a[0], a[1], clamp=clamp, **{pname: a[2]})

    @staticmethod
    def backward(ctx, g):
        x, mu, p = ctx.saved_tensors
        pname, clamp, *dts = ctx.args
        grads = _S.normal_log_prob_backward(_f32(g).contiguous(), x, mu, clamp=clamp, **{pname: p})
        return (*(gr.to(dt) for gr, dt in zip(grads, dts)), None, None)


def normal_log_prob(x, mu, logvar=None, *, log_std=None, std=None, clamp=None):
    """Differentiable diagonal Gaussian log-density summed over the last axis."""
    pname, p = _scale_kw(logvar, log_std, std)
    return _NormalLogProb.apply(x, mu, p, pname, clamp)


class _MvnHead(torch.autograd.Function):
    @staticmethod
    def forward(ctx, mu, L, eps, seed, n_samples, stream, offset, log_q, validate):
        m32, L32, e32 = _f32(mu), _f32(L), _f32(eps)
        h = _S.mvn_head(m32, L32, seed=seed, n_samples=n_samples, stream=stream, offset=offset, eps=e32,
                        log_q=log_q, check=validate)
        ctx.save_for_backward(m32, L32, e32 if eps is not None else None)
        ctx.args = (seed, n_samples, stream, offset, log_q, mu.dtype, L.dtype)
        z = h.z.to(mu.dtype) if mu.dtype in _LOW else h.z
        lq = h.log_q if log_q else h.kl.new_empty(0)
        return z, h.kl, lq

    @staticmethod
    def backward(ctx, gz, gkl, glq):
        m32, L32, e32 = ctx.saved_tensors
        seed, n_samples, stream, offset, log_q, mdt, ldt = ctx.args
        dmu, dL = _S.mvn_head_backward(m32, L32, grad_z=_g(_f32(gz)), grad_kl=_g(_f32(gkl)),
                                       grad_log_q=_g(_f32(glq)) if log_q else None, seed=seed, n_samples=n_samples,
                                       stream=stream, offset=offset, eps=e32)
        return dmu.to(mdt), dL.to(ldt), None, None, None, None, None, None, None


def mvn_head(mu, scale_tril, *, seed=None, n_samples=None, stream=0, offset=0, eps=None, log_q=False, validate=True):
    """Differentiable full-covariance head: ``(z, kl, log_q)``; see :func:`pygenmod.sampling.mvn_head`."""
    seed = resolve_seed(seed)  # once: forward and backward must see the same key
    z, kl, lq = _MvnHead.apply(mu, scale_tril, eps, seed, n_samples, stream, offset, bool(log_q), validate)
    return z, kl, (lq if log_q else None)


def rsample_mvn(mu, scale_tril, *, seed=None, n_samples=None, stream=0, offset=0, eps=None, validate=True):
    """Differentiable ``z = mu + L eps``."""
    return mvn_head(mu, scale_tril, seed=seed, n_samples=n_samples, stream=stream, offset=offset, eps=eps,
                    validate=validate)[0]


class _Generic(torch.autograd.Function):
    """forward = fn(*tensors, **kw); backward = bw(grad, *tensors, **kw) -> grads for the tensors."""

    @staticmethod
    def forward(ctx, fn, bw, kw, *tensors):
        a = [_f32(t) for t in tensors]
        ctx.save_for_backward(*a)
        ctx.args = (bw, kw, [t.dtype if isinstance(t, torch.Tensor) else None for t in tensors])
        return fn(*a, **kw)

    @staticmethod
    def backward(ctx, g):
        bw, kw, dts = ctx.args
        grads = bw(_f32(g).contiguous(), *ctx.saved_tensors, **kw)
        return (None, None, None, *(None if gr is None or dt is None else gr.to(dt) for gr, dt in zip(grads, dts)))


def kl_mvn(mu, scale_tril, prior_mu=None, prior_scale_tril=None):
    """Differentiable ``KL(N(mu, L L^T) || N(prior_mu, L2 L2^T))`` per row (prior default N(0, I))."""
    if prior_mu is None and prior_scale_tril is None:
        return mvn_head(mu, scale_tril, n_samples=0)[1]
    return _Generic.apply(_S.kl_mvn, _S.kl_mvn_backward, {}, mu, scale_tril, prior_mu, prior_scale_tril)


def mvn_log_prob(x, mu, scale_tril):
    """Differentiable ``log N(x; mu, L L^T)``."""
    return _Generic.apply(_S.mvn_log_prob, _S.mvn_log_prob_backward, {}, x, mu, scale_tril)


def mahalanobis(x, mu, scale_tril=None, *, precision_tril=None, squared=True):
    """Differentiable (squared) Mahalanobis distance with a scale or precision Cholesky factor."""
    if (scale_tril is None) == (precision_tril is None):
        raise TypeError("give exactly one of scale_tril or precision_tril")
    if scale_tril is not None:
        return _Generic.apply(_S.mahalanobis, _S.mahalanobis_backward, {"squared": squared}, x, mu, scale_tril)

    def fn(x, mu, U, **kw):
        return _S.mahalanobis(x, mu, precision_tril=U, **kw)

    def bw(g, x, mu, U, **kw):
        return _S.mahalanobis_backward(g, x, mu, precision_tril=U, **kw)

    return _Generic.apply(fn, bw, {"squared": squared}, x, mu, precision_tril)


class _GumbelSoftmax(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, tau, seed, hard, stream, offset):
        r = _S.gumbel_softmax(_f32(logits), tau, seed=seed, hard=hard, stream=stream, offset=offset)
        ctx.save_for_backward(r.y_soft)
        ctx.args = (tau, logits.dtype)
        return r.y.to(logits.dtype)

    @staticmethod
    def backward(ctx, g):
        (ys,) = ctx.saved_tensors
        tau, dt = ctx.args
        return _S.gumbel_softmax_backward(_f32(g).contiguous(), ys, tau).to(dt), None, None, None, None, None


def gumbel_softmax(logits, tau=1.0, *, seed=None, hard=False, stream=0, offset=0):
    """Differentiable Gumbel-softmax sample over the last axis; ``hard=True`` is straight-through
    (one-hot forward, the relaxed sample's gradient backward), like torch.nn.functional.gumbel_softmax
    but with the package's counter-based noise."""
    return _GumbelSoftmax.apply(logits, float(tau), resolve_seed(seed), bool(hard), stream, offset)


# ---------------------------------------------------------------------------------------
# torch.library custom ops (for torch.compile): fake kernels give shapes without running.
# Seeds are int64 here (the schema's int); use the Functions above for seeds >= 2**63.
# ---------------------------------------------------------------------------------------
def _register_custom_ops():
    lib = getattr(torch, "library", None)
    if lib is None or not hasattr(lib, "custom_op"):
        return False
    kinds = ("logvar", "log_std", "std")

    @lib.custom_op("pygenmod::normal_head", mutates_args=())
    def normal_head_op(mu: torch.Tensor, scale: torch.Tensor, kind: int, seed: int, n_samples: int, stream: int,
                       offset: int) -> tuple[torch.Tensor, torch.Tensor]:
        h = _S.normal_head(mu, seed=seed, n_samples=n_samples, stream=stream, offset=offset,
                           **{kinds[kind]: scale})
        return h.z, h.kl

    @normal_head_op.register_fake
    def _(mu, scale, kind, seed, n_samples, stream, offset):
        return mu.new_empty((n_samples,) + tuple(mu.shape)), mu.new_empty(mu.shape[:-1])

    @lib.custom_op("pygenmod::normal_head_backward", mutates_args=())
    def normal_head_backward_op(mu: torch.Tensor, scale: torch.Tensor, kind: int, seed: int, n_samples: int,
                                stream: int, offset: int, grad_z: torch.Tensor,
                                grad_kl: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _S.normal_head_backward(mu, grad_z=grad_z.contiguous(), grad_kl=grad_kl.contiguous(), seed=seed,
                                       n_samples=n_samples, stream=stream, offset=offset, **{kinds[kind]: scale})

    @normal_head_backward_op.register_fake
    def _(mu, scale, kind, seed, n_samples, stream, offset, grad_z, grad_kl):
        return torch.empty_like(mu), torch.empty_like(scale)

    def setup(ctx, inputs, output):
        ctx.save_for_backward(inputs[0], inputs[1])
        ctx.args = inputs[2:]

    def backward(ctx, gz, gkl):
        mu, scale = ctx.saved_tensors
        dmu, ds = normal_head_backward_op(mu, scale, *ctx.args, gz, gkl)
        return dmu, ds, None, None, None, None, None

    normal_head_op.register_autograd(backward, setup_context=setup)

    @lib.custom_op("pygenmod::mvn_head", mutates_args=())
    def mvn_head_op(mu: torch.Tensor, scale_tril: torch.Tensor, seed: int, n_samples: int, stream: int,
                    offset: int) -> tuple[torch.Tensor, torch.Tensor]:
        h = _S.mvn_head(mu, scale_tril, seed=seed, n_samples=n_samples, stream=stream, offset=offset)
        return h.z, h.kl

    @mvn_head_op.register_fake
    def _(mu, scale_tril, seed, n_samples, stream, offset):
        return mu.new_empty((n_samples,) + tuple(mu.shape)), mu.new_empty(mu.shape[:-1])

    @lib.custom_op("pygenmod::mvn_head_backward", mutates_args=())
    def mvn_head_backward_op(mu: torch.Tensor, scale_tril: torch.Tensor, seed: int, n_samples: int, stream: int,
                             offset: int, grad_z: torch.Tensor,
                             grad_kl: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _S.mvn_head_backward(mu, scale_tril, grad_z=grad_z.contiguous(), grad_kl=grad_kl.contiguous(),
                                    seed=seed, n_samples=n_samples, stream=stream, offset=offset)

    @mvn_head_backward_op.register_fake
    def _(mu, scale_tril, seed, n_samples, stream, offset, grad_z, grad_kl):
        return torch.empty_like(mu), torch.empty_like(scale_tril)

    def setup_mvn(ctx, inputs, output):
        ctx.save_for_backward(inputs[0], inputs[1])
        ctx.args = inputs[2:]

    def backward_mvn(ctx, gz, gkl):
        mu, L = ctx.saved_tensors
        dmu, dL = mvn_head_backward_op(mu, L, *ctx.args, gz, gkl)
        return dmu, dL, None, None, None, None

    mvn_head_op.register_autograd(backward_mvn, setup_context=setup_mvn)
    return True


try:
    HAVE_CUSTOM_OPS = _register_custom_ops()
except Exception:  # pragma: no cover - an older torch without the custom_op API details
    HAVE_CUSTOM_OPS = False
