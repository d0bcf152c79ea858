"""Per-call overhead of the pygenmod.torch custom ops at tiny sizes, against plain eager torch
and against the NumPy API call underneath (what the op layer costs on top of it).

    python -m pygenmod.benchmarks.torch_ops [--calls 3] [--repeats 300] [--out bench/results/torch_ops.md]

Each row times one call (microseconds, the best of ``repeats`` samples of ``calls`` calls: on a
shared machine the minimum is the least disturbed estimate of a fixed per-call cost):
forward only, and forward + backward (the eager torch reference differentiated by autograd).
Sizes: B=4 rows, D=8 (sampling), (2, 4, 8, 8) maps (spatial softmax), T=16 x B=4 (GAE).
"""

from __future__ import annotations

import argparse
import math
import platform
import time


def _time(fn, calls, repeats):
    fn()  # warm-up
    s = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        s.append((time.perf_counter() - t0) / calls)
    return min(s) * 1e6


def _cases():
    import numpy as np
    import torch
    import torch.nn.functional as F

    import pygenmod.torch as T
    from pygenmod import returns as R
    from pygenmod import sampling as S
    from pygenmod import spatial as SP

    g = torch.Generator().manual_seed(0)
    B, D = 4, 8
    mu, lv = torch.randn(B, D, generator=g), torch.randn(B, D, generator=g)
    L = torch.eye(D) + 0.1 * torch.tril(torch.randn(D, D, generator=g), -1)
    x = torch.randn(B, D, generator=g)
    logits = torch.randn(B, D, generator=g)
    img = torch.randn(2, 4, 8, 8, generator=g)
    rew, val = torch.randn(16, B, generator=g), torch.randn(16, B, generator=g)
    n = {k: v.numpy() for k, v in dict(mu=mu, lv=lv, L=L, x=x, logits=logits, img=img, rew=rew, val=val).items()}

    def grad(*t):
        return [a.clone().requires_grad_() for a in t]

    def tr_normal_head(m, v):
        eps = torch.randn(m.shape)
        s = torch.exp(0.5 * v)
        return m + s * eps, 0.5 * (m * m + v.exp() - 1 - v).sum(-1)

    def tr_mvn(m, L):
        eps = torch.randn(m.shape)
        z = m + eps @ L.T
        return z, 0.5 * ((L * L).sum() + (m * m).sum(-1) - D) - torch.log(torch.diagonal(L)).sum()

    def tr_mvn_lp(x, m, L):
        y = torch.linalg.solve_triangular(L, (x - m).unsqueeze(-1), upper=False).squeeze(-1)
        return -0.5 * y.square().sum(-1) - torch.log(torch.diagonal(L)).sum() - 0.5 * D * math.log(2 * math.pi)

    def tr_spatial(x):
        b, c, h, w = x.shape
        s = torch.softmax(x.reshape(b, c, h * w), -1).reshape(b, c, h, w)
        p = torch.linspace(-1, 1, w)
        return torch.stack([(s.sum(2) * p).sum(-1), (s.sum(3) * p).sum(-1)], -1)

    def tr_gae(r, v, gamma=0.99, lam=0.95):
        adv = torch.empty_like(r)
        a = torch.zeros(r.shape[1])
        for t in range(r.shape[0] - 1, -1, -1):
            nv = v[t + 1] if t + 1 < r.shape[0] else torch.zeros(r.shape[1])
            a = r[t] + gamma * nv - v[t] + gamma * lam * a
            adv[t] = a
        return adv

    rows = [
        (
            "normal_head (z, kl)",
            lambda m, v: T.normal_head(m, v, seed=1)[:2],
            tr_normal_head,
            (mu, lv),
            lambda: S.normal_head(n["mu"], n["lv"], seed=1),
        ),
        (
            "mvn_head (z, kl), shared L",
            lambda m, L: T.mvn_head(m, L, seed=1)[:2],
            tr_mvn,
            (mu, L),
            lambda: S.mvn_head(n["mu"], n["L"], seed=1),
        ),
        (
            "kl_normal",
            lambda m, v: T.kl_normal(m, v),
            lambda m, v: 0.5 * (m * m + v.exp() - 1 - v).sum(-1),
            (mu, lv),
            lambda: S.kl_normal(n["mu"], n["lv"]),
        ),
        (
            "normal_log_prob",
            lambda x, m, v: T.normal_log_prob(x, m, v),
            lambda x, m, v: torch.distributions.Normal(m, torch.exp(0.5 * v)).log_prob(x).sum(-1),
            (x, mu, lv),
            lambda: S.normal_log_prob(n["x"], n["mu"], n["lv"]),
        ),
        (
            "mvn_log_prob, shared L",
            lambda x, m, L: T.mvn_log_prob(x, m, L),
            tr_mvn_lp,
            (x, mu, L),
            lambda: S.mvn_log_prob(n["x"], n["mu"], n["L"]),
        ),
        (
            "gumbel_softmax",
            lambda lg: T.gumbel_softmax(lg, 0.5, seed=1),
            lambda lg: F.gumbel_softmax(lg, 0.5),
            (logits,),
            lambda: S.gumbel_softmax(n["logits"], 0.5, seed=1),
        ),
        ("spatial_softmax", lambda x: T.spatial_softmax(x), tr_spatial, (img,), lambda: SP.spatial_softmax(n["img"])),
        (
            "gae (T=16, no grad)",
            lambda r, v: T.gae(r, v).advantages,
            tr_gae,
            (rew, val),
            lambda: R.gae(n["rew"], n["val"]),
        ),
    ]

    def fwd_bwd(f, args, differentiable):
        if not differentiable:
            return lambda: f(*args)

        def run():
            o = f(*grad(*args))
            o = o if isinstance(o, tuple) else (o,)
            torch.autograd.backward(list(o), [torch.ones_like(t) for t in o])

        return run

    out = []
    for name, ours, ref, args, numpy_call in rows:
        diff = not name.startswith("gae")
        out.append(
            (
                name,
                (lambda f=ours, a=args: f(*a)),
                (lambda f=ref, a=args: f(*a)),
                fwd_bwd(ours, args, diff),
                fwd_bwd(ref, args, diff),
                numpy_call,
            )
        )
    del np
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=300)
    ap.add_argument("--out", default=None, help="also write the markdown table to this file")
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    lines = [
        "| op | NumPy API | op fwd | eager torch fwd | op fwd+bwd | eager torch fwd+bwd |",
        "|---|---|---|---|---|---|",
    ]
    for name, ours, ref, ours_fb, ref_fb, np_call in _cases():
        t = [_time(f, a.calls, a.repeats) for f in (np_call, ours, ref, ours_fb, ref_fb)]
        lines.append(f"| {name} | " + " | ".join(f"{v:.1f} us" for v in t) + " |")
        print(lines[-1], flush=True)
    head = (
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, torch threads 1; "
        f"best of {a.repeats} x {a.calls} calls"
    )
    print(head)
    if a.out:
        with open(a.out, "w") as f:
            f.write("\n".join(lines) + "\n\n" + head + "\n")


if __name__ == "__main__":
    main()
