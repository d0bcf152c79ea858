"""Workload W3 (spatial softmax keypoints, Finn et al. 2016). Data is built lazily, inside setups.

x: (B=32, C=64, H=64, W=64) float32 NCHW, scalar temperature 1, coordinates on linspace(-1, 1).
Forward alone, and forward + backward (grads w.r.t. x and the temperature) from a random
upstream gradient of the keypoints. Peers: kornia (spatial_softmax2d + spatial_expectation2d),
eager PyTorch (softmax + weighted sums, robomimic-style), and the same under torch.compile
(compiled once in the setup: compile time excluded).

Bytes moved (the floor): the forward reads x once (B*C*H*W*4 = 33.6 MB); the backward reads x
again and writes grad_x, so forward + backward moves 3 x 33.6 MB = 100.7 MB.
"""

from __future__ import annotations

import functools

import numpy as np

from .runner import Candidate, Missing, Workload


@functools.lru_cache(maxsize=2)
def _data(B, C, H, W, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, C, H, W), dtype=np.float32)
    g = rng.standard_normal((B, C, 2), dtype=np.float32)
    return x, g


def _torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise Missing("torch is not installed") from exc
    return torch


def _eager(torch):
    def keypoints(x, t):
        B, C, H, W = x.shape
        s = torch.softmax((x / t).reshape(B, C, H * W), -1).reshape(B, C, H, W)
        px = torch.linspace(-1, 1, W, dtype=x.dtype)
        py = torch.linspace(-1, 1, H, dtype=x.dtype)
        return torch.stack([(s.sum(2) * px).sum(-1), (s.sum(3) * py).sum(-1)], -1)

    return keypoints


def _kornia(torch):
    try:
        from kornia.geometry.subpix import spatial_expectation2d, spatial_softmax2d
    except ImportError as exc:  # pragma: no cover
        raise Missing("kornia is not installed") from exc
    return lambda x, t: spatial_expectation2d(spatial_softmax2d(x, t), True)


def workloads(quick: bool = False):
    shape = (4, 16, 32, 32) if quick else (32, 64, 64, 64)
    B, C, H, W = shape
    nbytes = B * C * H * W * 4

    # ---------------------------------------------------------------- forward
    def ours():
        from pygenmod import spatial

        x, _ = _data(*shape)
        return lambda: spatial.spatial_softmax(x, 1.0)

    def ours_torch():
        torch = _torch()
        from pygenmod.torch import spatial_softmax

        x = torch.from_numpy(_data(*shape)[0])
        t = torch.tensor(1.0)
        return lambda: spatial_softmax(x, t)

    def torch_fwd(kind):
        def setup():
            torch = _torch()
            fn = {"eager": _eager, "kornia": _kornia}.get(kind, _eager)(torch)
            if kind == "compile":
                fn = torch.compile(fn)
            x = torch.from_numpy(_data(*shape)[0])
            t = torch.tensor(1.0)

            def run():
                with torch.no_grad():
                    return fn(x, t)

            run()  # compile / warm up outside the timing
            return run

        return setup

    # ---------------------------------------------------------------- forward + backward
    def ours_fb():
        from pygenmod import spatial

        x, g = _data(*shape)

        def run():
            saved = spatial.spatial_softmax_forward(x, 1.0, return_cov=False)
            return spatial.spatial_softmax_backward(x, 1.0, grad_keypoints=g, saved=saved)

        return run

    def ours_fb_out():
        from pygenmod import spatial

        x, g = _data(*shape)
        out = np.empty_like(x)

        def run():
            saved = spatial.spatial_softmax_forward(x, 1.0, return_cov=False)
            return spatial.spatial_softmax_backward(x, 1.0, grad_keypoints=g, saved=saved, out=out)

        return run

    def ours_torch_fb():
        torch = _torch()
        from pygenmod.torch import spatial_softmax

        x0, g0 = _data(*shape)
        x = torch.from_numpy(x0).requires_grad_()
        t = torch.tensor(1.0, requires_grad=True)
        g = torch.from_numpy(g0)

        def run():
            x.grad = t.grad = None
            spatial_softmax(x, t).backward(g)

        return run

    def torch_fb(kind):
        def setup():
            torch = _torch()
            fn = {"eager": _eager, "kornia": _kornia}.get(kind, _eager)(torch)
            if kind == "compile":
                fn = torch.compile(fn)
            x0, g0 = _data(*shape)
            x = torch.from_numpy(x0.copy()).requires_grad_()
            t = torch.tensor(1.0, requires_grad=True)
            g = torch.from_numpy(g0)

            def run():
                x.grad = t.grad = None
                fn(x, t).backward(g)

            run()
            run()  # the compiled backward is built on the first call
            return run

        return setup

    # ---------------------------------------------------------------- GPU rows (skip without one)
    def ours_cuda(backward):
        def setup():
            from pygenmod import _backend, spatial

            ok, why = _backend._probe("cuda")
            if not ok:
                raise Missing(why)
            import cupy

            x0, g0 = _data(*shape)
            x, g = cupy.asarray(x0), cupy.asarray(g0)

            def run():
                if backward:
                    saved = spatial.spatial_softmax_forward(x, 1.0, return_cov=False)
                    spatial.spatial_softmax_backward(x, 1.0, grad_keypoints=g, saved=saved)
                else:
                    spatial.spatial_softmax(x, 1.0)
                cupy.cuda.get_current_stream().synchronize()

            return run

        return setup

    def torch_cuda(kind, backward):
        def setup():
            torch = _torch()
            if not torch.cuda.is_available():
                raise Missing("no CUDA device for torch")
            fn = _eager(torch)
            if kind == "compile":
                fn = torch.compile(fn)
            x0, g0 = _data(*shape)
            x = torch.from_numpy(x0).cuda().requires_grad_(backward)
            t = torch.tensor(1.0, device="cuda", requires_grad=backward)
            g = torch.from_numpy(g0).cuda()

            def run():
                if backward:
                    x.grad = t.grad = None
                    fn(x, t).backward(g)
                else:
                    with torch.no_grad():
                        fn(x, t)
                torch.cuda.synchronize()

            run()
            run()
            return run

        return setup

    size = f"B={B}, C={C}, H={H}, W={W} float32 NCHW"
    return [
        Workload(
            "W3-fwd",
            f"spatial softmax keypoints, forward, {size}",
            [
                Candidate("pygenmod", ours, is_ours=True),
                Candidate("pygenmod (torch op)", ours_torch, is_ours=True),
                Candidate("kornia", torch_fwd("kornia")),
                Candidate("torch eager", torch_fwd("eager")),
                Candidate("torch.compile", torch_fwd("compile"), note="compile time excluded"),
                Candidate("pygenmod (cuda)", ours_cuda(False), is_ours=True),
                Candidate("torch eager (cuda)", torch_cuda("eager", False)),
                Candidate("torch.compile (cuda)", torch_cuda("compile", False)),
            ],
            bytes_moved=nbytes,
            unit="call",
            repeats=11,
        ),
        Workload(
            "W3-fb",
            f"spatial softmax keypoints, forward+backward (x, alpha), {size}",
            [
                Candidate("pygenmod (VJP)", ours_fb, is_ours=True),
                Candidate(
                    "pygenmod (VJP, out=)", ours_fb_out, is_ours=True, note="grad_x buffer reused: no page faults"
                ),
                Candidate("pygenmod (torch autograd)", ours_torch_fb, is_ours=True),
                Candidate("kornia autograd", torch_fb("kornia")),
                Candidate("torch eager autograd", torch_fb("eager")),
                Candidate("torch.compile autograd", torch_fb("compile"), note="compile time excluded"),
                Candidate("pygenmod (cuda, VJP)", ours_cuda(True), is_ours=True),
                Candidate("torch eager autograd (cuda)", torch_cuda("eager", True)),
                Candidate("torch.compile autograd (cuda)", torch_cuda("compile", True)),
            ],
            bytes_moved=3 * nbytes,
            unit="call",
            repeats=11,
        ),
    ]
