"""Train a small VAE on scikit-learn's 8x8 digits with pygenmod's fused ELBO, and the same
model written with torch.distributions; report both test ELBOs.

    python examples/vae_digits.py [--epochs 20] [--latent 4] [--samples 1] [--beta 1.0]

The data ship with scikit-learn (nothing is downloaded). Pixels are scaled to [0, 1] and
modelled as Bernoulli logits (the binary cross-entropy). Both models start from the same
initial weights and see the same minibatches and the same noise eps, so the two runs differ
only by float rounding: their test ELBOs should agree to a few decimals.

pygenmod's path:  z = pygenmod.torch.rsample_normal(mu, logvar, eps=eps); logits = decoder(z);
                  elbo = pygenmod.torch.elbo(x, logits, mu, logvar, likelihood="bernoulli")
reference path:   q = Normal(mu, exp(logvar / 2)); z = q.loc + q.scale * eps;
                  elbo = Bernoulli(logits=decoder(z)).log_prob(x).sum(-1) - kl(q, N(0, I)).sum(-1)
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.distributions import Bernoulli, Normal, kl_divergence

import pygenmod.torch as pt


class VAE(nn.Module):
    def __init__(self, n_in=64, hidden=64, latent=4):
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(n_in, hidden), nn.Tanh(), nn.Linear(hidden, 2 * latent))
        self.dec = nn.Sequential(nn.Linear(latent, hidden), nn.Tanh(), nn.Linear(hidden, n_in))

    def encode(self, x):
        mu, logvar = self.enc(x).chunk(2, dim=-1)
        return mu, logvar.clamp(-8, 8)


def elbo_pygenmod(model, x, eps, beta):
    """Per-row ELBO with pygenmod: its sampler and its fused ELBO op."""
    mu, logvar = model.encode(x)
    z = pt.rsample_normal(mu, logvar, eps=eps, n_samples=eps.shape[0])  # (S, B, latent)
    return pt.elbo(x, model.dec(z), mu, logvar, likelihood="bernoulli", beta=beta)


def elbo_torch(model, x, eps, beta):
    """The same ELBO written with torch.distributions."""
    mu, logvar = model.encode(x)
    q = Normal(mu, torch.exp(0.5 * logvar))
    z = q.loc + q.scale * eps  # the reparameterized sample with the same noise
    # (validate_args=False: grey levels in [0, 1], the binary cross-entropy, as pygenmod accepts)
    log_lik = Bernoulli(logits=model.dec(z), validate_args=False).log_prob(x).sum(-1).mean(0)
    kl = kl_divergence(q, Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(-1)
    return log_lik - beta * kl


def train(model, elbo_fn, x_train, args, latent):
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(args.seed)  # minibatches and noise: the same for both models
    n = x_train.shape[0]
    for _ in range(args.epochs):
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, args.batch):
            xb = x_train[perm[i : i + args.batch]]
            eps = torch.randn(args.samples, xb.shape[0], latent, generator=gen, dtype=xb.dtype)
            loss = -elbo_fn(model, xb, eps, args.beta).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model


@torch.no_grad()
def test_elbo(model, elbo_fn, x, latent, samples=16, seed=1):
    eps = torch.randn(samples, x.shape[0], latent, generator=torch.Generator().manual_seed(seed), dtype=x.dtype)
    return float(elbo_fn(model, x, eps, 1.0).mean())  # the plain ELBO (beta = 1) in nats per image


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--latent", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--samples", type=int, default=1, help="samples of z per image (the ELBO averages them)")
    ap.add_argument("--beta", type=float, default=1.0, help="weight of the KL term during training")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--n-train", type=int, default=1400, help="images to train on (the rest is the test set)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    # one thread: a 64-wide MLP gains nothing from more, and idle OpenMP workers (torch's) spinning on a
    # shared machine cost 10x (docs/threads.md)
    torch.set_num_threads(1)
    X = torch.tensor(load_digits().data / 16.0, dtype=torch.float32)
    perm = torch.randperm(X.shape[0], generator=torch.Generator().manual_seed(args.seed))
    x_train, x_test = X[perm[: args.n_train]], X[perm[args.n_train :]]

    torch.manual_seed(args.seed)
    init = VAE(X.shape[1], args.hidden, args.latent)
    results = {}
    for name, fn in (("pygenmod", elbo_pygenmod), ("torch.distributions", elbo_torch)):
        t0 = time.perf_counter()
        model = train(copy.deepcopy(init), fn, x_train, args, args.latent)
        secs = time.perf_counter() - t0
        # each trained model scored by both ELBO implementations (they must agree on the same model)
        results[name] = (
            test_elbo(model, elbo_pygenmod, x_test, args.latent),
            test_elbo(model, elbo_torch, x_test, args.latent),
            secs,
        )
    print(
        f"VAE on digits: {x_train.shape[0]} train / {x_test.shape[0]} test images, latent {args.latent}, "
        f"{args.epochs} epochs, {args.samples} sample(s) of z, beta {args.beta}"
    )
    print(f"{'trained with':<22}{'test ELBO (pygenmod)':>22}{'test ELBO (torch.dist)':>24}{'train s':>9}")
    for name, (a, b, s) in results.items():
        print(f"{name:<22}{a:>22.6f}{b:>24.6f}{s:>9.2f}")
    a, b = results["pygenmod"][0], results["torch.distributions"][1]
    print(f"difference between the two trained models' test ELBOs: {abs(a - b):.2e} nats/image")
    eps = torch.randn(4, x_test.shape[0], args.latent, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        d = (elbo_pygenmod(init, x_test, eps, 1.0) - elbo_torch(init, x_test, eps, 1.0)).abs().max()
    print(f"largest per-image difference of the two ELBO implementations on one model: {float(d):.2e}")
    return results


if __name__ == "__main__":
    main()
