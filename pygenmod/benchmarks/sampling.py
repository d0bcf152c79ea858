"""Workload W4: reparameterized sampling (VAE heads), diagonal and full covariance, and the
RNG throughput. Data is built lazily, inside setups; every candidate gets the same inputs.

Peers: the eager PyTorch one-liner, torch.distributions with autograd, NumPy. Torch runs with
its default thread count (the machine's cores), like pygenmod's pool.
"""

from __future__ import annotations

import functools

import numpy as np

from .runner import Candidate, Missing, Workload


def _torch():
    try:
        import torch
    except ImportError as exc:
        raise Missing("torch") from exc
    return torch


@functools.lru_cache(maxsize=4)
def _diag(B, D, seed=0):
    rng = np.random.default_rng(seed)
    mu = rng.standard_normal((B, D), dtype=np.float32)
    lv = (0.5 * rng.standard_normal((B, D), dtype=np.float32)).astype(np.float32)
    gz = rng.standard_normal((B, D), dtype=np.float32)
    return mu, lv, gz


@functools.lru_cache(maxsize=4)
def _full(B, D, seed=0):
    rng = np.random.default_rng(seed)
    mu = rng.standard_normal((B, D), dtype=np.float32)
    L = np.tril(0.1 * rng.standard_normal((B, D, D), dtype=np.float32))
    L[:, np.arange(D), np.arange(D)] = np.exp(0.3 * rng.standard_normal((B, D))).astype(np.float32)
    gz = rng.standard_normal((B, D), dtype=np.float32)
    return mu, np.ascontiguousarray(L, dtype=np.float32), gz


def workloads(quick: bool = False):
    B, D = (4096, 64) if quick else (65536, 64)
    BF, DF = (1024, 32) if quick else (8192, 32)
    f4 = 4

    # ---------------------------------------------------------------- W4a diagonal sample
    def ours_sample():
        from pygenmod import sampling

        mu, lv, _ = _diag(B, D)
        return lambda: sampling.rsample_normal(mu, lv, seed=1)

    def ours_sample_out():
        from pygenmod import sampling

        mu, lv, _ = _diag(B, D)
        out = np.empty_like(mu)
        return lambda: sampling.rsample_normal(mu, lv, seed=1, out=out)

    def torch_sample():
        torch = _torch()
        mu, lv, _ = (torch.from_numpy(a) for a in _diag(B, D))
        return lambda: mu + torch.exp(0.5 * lv) * torch.randn_like(mu)

    def numpy_sample():
        mu, lv, _ = _diag(B, D)
        rng = np.random.default_rng(1)
        return lambda: mu + np.exp(0.5 * lv) * rng.standard_normal(mu.shape, dtype=np.float32)

    # ---------------------------------------------------------------- W4b sample + KL fwd+bwd
    def ours_vae():
        from pygenmod import sampling

        mu, lv, gz = _diag(B, D)
        gkl = np.ones(B, np.float32)

        def step():
            h = sampling.normal_head(mu, lv, seed=1)
            return sampling.normal_head_backward(mu, lv, grad_z=gz, grad_kl=gkl, seed=1), h

        return step

    def ours_vae_torch():
        torch = _torch()
        from pygenmod import torch as T

        mu0, lv0, gz0 = (torch.from_numpy(a) for a in _diag(B, D))

        def step():
            mu, lv = mu0.clone().requires_grad_(), lv0.clone().requires_grad_()
            z, kl, _ = T.normal_head(mu, lv, seed=1)
            torch.autograd.backward([z, kl], [gz0, torch.ones_like(kl)])
            return mu.grad, lv.grad

        return step

    def torch_autograd_vae():
        torch = _torch()
        mu0, lv0, gz0 = (torch.from_numpy(a) for a in _diag(B, D))

        def step():
            mu, lv = mu0.clone().requires_grad_(), lv0.clone().requires_grad_()
            z = mu + torch.exp(0.5 * lv) * torch.randn_like(mu)
            kl = 0.5 * (lv.exp() + mu * mu - 1 - lv).sum(-1)
            torch.autograd.backward([z, kl], [gz0, torch.ones_like(kl)])
            return mu.grad, lv.grad

        return step

    def torch_dist_vae():
        torch = _torch()
        td = torch.distributions
        mu0, lv0, gz0 = (torch.from_numpy(a) for a in _diag(B, D))
        prior = td.Normal(torch.zeros(()), torch.ones(()))

        def step():
            mu, lv = mu0.clone().requires_grad_(), lv0.clone().requires_grad_()
            q = td.Normal(mu, torch.exp(0.5 * lv))
            z = q.rsample()
            kl = td.kl_divergence(q, prior).sum(-1)
            torch.autograd.backward([z, kl], [gz0, torch.ones_like(kl)])
            return mu.grad, lv.grad

        return step

    # ---------------------------------------------------------------- W4c full-cov sample
    def ours_mvn():
        from pygenmod import sampling

        mu, L, _ = _full(BF, DF)
        return lambda: sampling.rsample_mvn(mu, L, seed=1)

    def ours_mvn_nocheck():
        from pygenmod import sampling

        mu, L, _ = _full(BF, DF)
        out = np.empty_like(mu)
        return lambda: sampling.rsample_mvn(mu, L, seed=1, check=False, out=out)

    def torch_mvn():
        torch = _torch()
        mu, L, _ = (torch.from_numpy(a) for a in _full(BF, DF))
        return lambda: torch.distributions.MultivariateNormal(mu, scale_tril=L).rsample()

    def torch_bmm():
        torch = _torch()
        mu, L, _ = (torch.from_numpy(a) for a in _full(BF, DF))
        return lambda: mu + (L @ torch.randn_like(mu)[..., None])[..., 0]

    def numpy_mvn():
        mu, L, _ = _full(BF, DF)
        rng = np.random.default_rng(1)
        return lambda: mu + np.einsum("bij,bj->bi", L, rng.standard_normal(mu.shape, dtype=np.float32))

    # ---------------------------------------------------------------- W4d full-cov sample + KL fwd+bwd
    def ours_mvn_vae():
        from pygenmod import sampling

        mu, L, gz = _full(BF, DF)
        gkl = np.ones(BF, np.float32)

        def step():
            h = sampling.mvn_head(mu, L, seed=1)
            return sampling.mvn_head_backward(mu, L, grad_z=gz, grad_kl=gkl, seed=1), h

        return step

    def torch_dist_mvn_vae():
        torch = _torch()
        td = torch.distributions
        mu0, L0, gz0 = (torch.from_numpy(a) for a in _full(BF, DF))
        prior = td.MultivariateNormal(torch.zeros(DF), scale_tril=torch.eye(DF))

        def step():
            mu, L = mu0.clone().requires_grad_(), L0.clone().requires_grad_()
            q = td.MultivariateNormal(mu, scale_tril=L)
            z = q.rsample()
            kl = td.kl_divergence(q, prior)
            torch.autograd.backward([z, kl], [gz0, torch.ones_like(kl)])
            return mu.grad, L.grad

        return step

    # ---------------------------------------------------------------- W4e RNG throughput
    def ours_rng(kind, dtype=np.float32):
        def setup():
            from pygenmod import random

            fn = getattr(random, kind)
            if kind == "bits":
                return lambda: fn(1, (B, D))
            return lambda: fn(1, (B, D), dtype=dtype)

        return setup

    def torch_randn():
        torch = _torch()
        out = torch.empty(B, D)
        return lambda: torch.randn(B, D, out=out)

    def numpy_normal():
        rng = np.random.default_rng(1)
        out = np.empty((B, D), np.float32)
        return lambda: rng.standard_normal(out=out, dtype=np.float32)

    n = B * D
    return [
        Workload(
            "W4a",
            f"diagonal rsample z = mu + exp(lv/2) eps, B={B}, D={D}, float32",
            [
                Candidate("pygenmod", ours_sample, is_ours=True),
                Candidate("pygenmod out=", ours_sample_out, is_ours=True, note="reused output buffer"),
                Candidate("torch eager one-liner", torch_sample),
                Candidate("numpy", numpy_sample),
            ],
            bytes_moved=3 * n * f4,
        ),
        Workload(
            "W4b",
            f"sample + KL, forward + backward, B={B}, D={D}, float32",
            [
                Candidate("pygenmod (arrays)", ours_vae, is_ours=True),
                Candidate("pygenmod.torch", ours_vae_torch, is_ours=True),
                Candidate("torch autograd one-liner", torch_autograd_vae),
                Candidate("torch.distributions", torch_dist_vae),
            ],
            bytes_moved=(3 + 5) * n * f4,
        ),
        Workload(
            "W4c",
            f"full-cov rsample z = mu + L eps, B={BF}, D={DF}, float32",
            [
                Candidate("pygenmod", ours_mvn, is_ours=True),
                Candidate("pygenmod check=False, out=", ours_mvn_nocheck, is_ours=True),
                Candidate("torch MultivariateNormal", torch_mvn),
                Candidate("torch bmm one-liner", torch_bmm),
                Candidate("numpy einsum", numpy_mvn),
            ],
            bytes_moved=(BF * DF * (DF + 1) // 2 + 2 * BF * DF) * f4,
        ),
        Workload(
            "W4d",
            f"full-cov sample + KL, forward + backward, B={BF}, D={DF}, float32",
            [Candidate("pygenmod", ours_mvn_vae, is_ours=True), Candidate("torch.distributions", torch_dist_mvn_vae)],
            bytes_moved=(2 * BF * DF * DF + 4 * BF * DF) * f4,
        ),
        Workload(
            "W4e",
            f"RNG: {n} standard normals / uniforms / words (written bytes)",
            [
                Candidate("pygenmod normal f32", ours_rng("normal"), is_ours=True),
                Candidate("pygenmod uniform f32", ours_rng("uniform"), is_ours=True),
                Candidate("pygenmod bits u32", ours_rng("bits"), is_ours=True),
                Candidate("pygenmod normal f64", ours_rng("normal", np.float64)),
                Candidate("torch.randn f32", torch_randn),
                Candidate("numpy standard_normal f32", numpy_normal),
            ],
            bytes_moved=n * f4,
        ),
    ]
