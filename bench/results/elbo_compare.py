"""Time pygenmod.torch.elbo against the same ELBO written with torch.distributions, forward +
backward, on CPU tensors (the ELBO call only: encoder/decoder outputs are given leaf tensors).

    PYTHONPATH=. python bench/results/elbo_compare.py [--threads 2] [--pg-threads N] [--repeat 30]
"""

import argparse
import time

import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

import pygenmod.torch as pt


def ref(x, dec, mu, lv, lik, dlv):
    q = Normal(mu, torch.exp(0.5 * lv))
    kl = kl_divergence(q, Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(-1)
    if lik == "bernoulli":
        lp = Bernoulli(logits=dec, validate_args=False).log_prob(x)
    else:
        lp = Normal(dec, torch.exp(0.5 * dlv)).log_prob(x)
    return lp.sum(-1).mean(0) - kl


def ours(x, dec, mu, lv, lik, dlv):
    kw = {"dec_logvar": dlv} if lik == "gaussian" else {}
    return pt.elbo(x, dec, mu, lv, likelihood=lik, **kw)


def best(fn, args, repeat):
    ts = []
    for _ in range(repeat):
        leaves = (
            [a.detach().requires_grad_() if a.dtype.is_floating_point and i > 0 else a for i, a in enumerate(args[:4])]
            + list(args[4:5])
            + [args[5].detach().requires_grad_()]
        )
        t = time.perf_counter()
        fn(*leaves).sum().backward()
        ts.append(time.perf_counter() - t)
    ts.sort()
    return ts[len(ts) // 2] * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--pg-threads", type=int, default=None, help="pygenmod.set_num_threads (default: its own)")
    ap.add_argument("--repeat", type=int, default=30)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.pg_threads:
        import pygenmod

        pygenmod.set_num_threads(a.pg_threads)
    print("| likelihood | B | D | X | S | pygenmod ms | torch.distributions ms |\n|---|---|---|---|---|---|---|")
    for lik in ("bernoulli", "gaussian"):
        for B, D, X, S in ((256, 32, 784, 1), (1024, 16, 64, 4)):
            g = torch.Generator().manual_seed(0)
            x = torch.rand(B, X, generator=g)
            dec, dlv = torch.randn(S, B, X, generator=g), 0.1 * torch.randn(S, B, X, generator=g)
            mu, lv = torch.randn(B, D, generator=g), 0.1 * torch.randn(B, D, generator=g)
            args = (x, dec, mu, lv, lik, dlv)
            f_ours = lambda x, d, m, v, lk, dl: ours(x, d, m, v, lk, dl)  # noqa: E731
            f_ref = lambda x, d, m, v, lk, dl: ref(x, d, m, v, lk, dl)  # noqa: E731
            best(f_ours, args, 3)
            best(f_ref, args, 3)
            print(
                f"| {lik} | {B} | {D} | {X} | {S} | {best(f_ours, args, a.repeat):.3f} | "
                f"{best(f_ref, args, a.repeat):.3f} |"
            )


if __name__ == "__main__":
    main()
