"""Categorical kernels vs torch.distributions (CPU, float32, one thread each)."""
import timeit

import numpy as np
import torch

from pygenmod import categorical as cat

torch.set_num_threads(1)
D = torch.distributions
for B, K in [(16384, 18), (1024, 512)]:
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((2, B, K)).astype(np.float32)
    a = rng.integers(0, K, B)
    tx, ty, ta = torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(a)

    def best(f, n=20):
        return min(timeit.repeat(f, number=n, repeat=5)) / n * 1e3

    rows = {
        "entropy": (lambda: cat.entropy(x), lambda: D.Categorical(logits=tx).entropy()),
        "log_prob": (lambda: cat.log_prob(x, a), lambda: D.Categorical(logits=tx).log_prob(ta)),
        "kl": (lambda: cat.kl(x, y), lambda: D.kl_divergence(D.Categorical(logits=tx), D.Categorical(logits=ty))),
        "entropy_backward": (lambda: cat.entropy_backward(x, grad_entropy=np.ones(B, np.float32)), None),
    }
    for n, (f, g) in rows.items():
        t = f"{best(g):8.3f}" if g else "       -"
        print(f"| {B}x{K} | {n} | {best(f):8.3f} | {t} |")
