"""Categorical kernels vs torch.distributions (CPU, float32, one thread each); see categorical.md."""

import timeit

import numpy as np
import torch

from pygenmod import categorical as cat

D = torch.distributions


def best(f, n=20):
    return min(timeit.repeat(f, number=n, repeat=5)) / n * 1e3


def run(B, K):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((2, B, K)).astype(np.float32)
    a = rng.integers(0, K, B)
    tx, ty, ta = torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(a)
    g = np.ones(B, np.float32)
    rows = {
        "entropy": (lambda: cat.entropy(x), lambda: D.Categorical(logits=tx).entropy()),
        "log_prob": (lambda: cat.log_prob(x, a), lambda: D.Categorical(logits=tx).log_prob(ta)),
        "kl": (lambda: cat.kl(x, y), lambda: D.kl_divergence(D.Categorical(logits=tx), D.Categorical(logits=ty))),
        "entropy_backward": (lambda: cat.entropy_backward(x, grad_entropy=g), None),
    }
    for name, (ours, peer) in rows.items():
        t = f"{best(peer):8.3f}" if peer else "       -"
        print(f"| {B}x{K} | {name} | {best(ours):8.3f} | {t} |")


if __name__ == "__main__":
    torch.set_num_threads(1)
    for B, K in [(16384, 18), (1024, 512)]:
        run(B, K)
