"""Demo section: a TRPO step on linear-Gaussian policies (pygenmod.trpo), checked against an
explicit reference (Fisher matrix formed, linear solve, step size, line search)."""

import time

import numpy as np

from pygenmod import trpo

TITLE = "TRPO's machinery: conjugate gradient, step size, line search (pygenmod.trpo)"


class LinearGaussian:
    """B policies a ~ N(W s + b, diag(exp(log_std))^2) with their rollout data, batched in
    NumPy; parameters flattened per policy as [W (k, d), b (k), log_std (k)]."""

    def __init__(self, B=8, N=256, d=4, k=2, seed=0):
        rng = np.random.default_rng(seed)
        self.B, self.N, self.d, self.k, self.n = B, N, d, k, k * d + 2 * k
        self.theta0 = np.concatenate(
            [
                0.5 * rng.standard_normal((B, k * d)),
                0.1 * rng.standard_normal((B, k)),
                np.log(rng.uniform(0.3, 1.0, (B, k))),
            ],
            1,
        )
        self.S = rng.standard_normal((B, N, d))
        mu, std = self.dist(self.theta0)
        self.A = mu + std[:, None] * rng.standard_normal((B, N, k))
        # advantages that favour actions above the mean on the first action dimension
        self.adv = (self.A[..., 0] - mu[..., 0]) / std[:, None, 0] + 0.5 * rng.standard_normal((B, N))
        self.logp0 = self.logp(self.theta0)

    def split(self, th):
        k, d = self.k, self.d
        return th[:, : k * d].reshape(-1, k, d), th[:, k * d : k * d + k], th[:, k * d + k :]

    def dist(self, th):
        W, b, ls = self.split(th)
        return np.einsum("bkd,bnd->bnk", W, self.S) + b[:, None], np.exp(ls)

    def logp(self, th):
        mu, std = self.dist(th)
        z = (self.A - mu) / std[:, None]
        return (-0.5 * z**2 - np.log(std)[:, None] - 0.5 * np.log(2 * np.pi)).sum(-1)

    def surrogate(self, th):
        """mean(pi_theta / pi_old * advantage) per policy."""
        return (np.exp(self.logp(th) - self.logp0) * self.adv).mean(-1)

    def kl(self, th):
        """mean over states of KL(pi_old || pi_theta) per policy."""
        mu0, s0 = self.dist(self.theta0)
        mu, s = self.dist(th)
        return (
            (np.log(s / s0)[:, None] + (s0[:, None] ** 2 + (mu0 - mu) ** 2) / (2 * s[:, None] ** 2) - 0.5)
            .sum(-1)
            .mean(-1)
        )

    def grad(self):
        mu, std = self.dist(self.theta0)
        dmu = (self.A - mu) / std[:, None] ** 2 * self.adv[..., None] / self.N
        dls = (((self.A - mu) / std[:, None]) ** 2 - 1) * self.adv[..., None] / self.N
        return np.concatenate([np.einsum("bnk,bnd->bkd", dmu, self.S).reshape(self.B, -1), dmu.sum(1), dls.sum(1)], 1)

    def fvp(self, V):
        """F v without forming F: the mean's Jacobian J v, weighted by 1/sigma^2, back through J^T;
        2 v for the log-stds."""
        _, std = self.dist(self.theta0)
        vW, vb, vls = self.split(V)
        dmu = (np.einsum("bkd,bnd->bnk", vW, self.S) + vb[:, None]) / std[:, None] ** 2 / self.N
        return np.concatenate([np.einsum("bnk,bnd->bkd", dmu, self.S).reshape(self.B, -1), dmu.sum(1), 2 * vls], 1)

    def fisher(self, b):
        """The Fisher matrix of policy b, formed explicitly (the reference)."""
        return np.stack([self.fvp(np.broadcast_to(e, (self.B, self.n)))[b] for e in np.eye(self.n)], 1)


def reference_step(pol, b, max_kl, damping, accept_ratio=0.1):
    """The plain TRPO step of policy b: explicit Fisher, solve, step size, line search."""
    F = pol.fisher(b) + damping * np.eye(pol.n)
    g = pol.grad()[b]
    x = np.linalg.solve(F, g)
    full = np.sqrt(2 * max_kl / (x @ F @ x)) * x
    expected = g @ full
    th = pol.theta0.copy()
    f0 = pol.surrogate(th)[b]
    for k in range(10):
        th[b] = pol.theta0[b] + 0.5**k * full
        imp = pol.surrogate(th)[b] - f0
        if imp > 0 and imp >= accept_ratio * 0.5**k * expected and pol.kl(th)[b] <= max_kl:
            return th[b], 0.5**k
    return pol.theta0[b], 0.0


def _torch_check(report, pol, max_kl, damping, ref):
    """Policy 0 as a torch model: the Fisher-vector product by double backprop."""
    try:
        import torch
        from torch.nn.utils import parameters_to_vector

        from pygenmod.torch import fisher_vector_product
    except ImportError:
        report.line("  (torch not installed: the double-backprop Fisher-vector product is not shown)")
        return
    k, d = pol.k, pol.d
    W, bb, ls = (torch.tensor(a[0]) for a in pol.split(pol.theta0[:1]))
    params = [torch.nn.Parameter(W.clone()), torch.nn.Parameter(bb.clone()), torch.nn.Parameter(ls.clone())]
    S, A = torch.tensor(pol.S[0]), torch.tensor(pol.A[0])
    adv, logp0 = torch.tensor(pol.adv[0]), torch.tensor(pol.logp0[0])
    dist = lambda W, b, ls: torch.distributions.Normal(S @ W.T + b, ls.exp())
    old = dist(W, bb, ls)
    unflat = lambda th: (th[: k * d].reshape(k, d), th[k * d : k * d + k], th[k * d + k :])
    surr = lambda th: ((dist(*unflat(th)).log_prob(A).sum(-1) - logp0).exp() * adv).mean()
    kl_at = lambda th: torch.distributions.kl_divergence(old, dist(*unflat(th))).sum(-1).mean()
    fvp = fisher_vector_product(lambda: torch.distributions.kl_divergence(old, dist(*params)).sum(-1).mean(), params)
    theta = parameters_to_vector(params).detach()
    th = theta.clone().requires_grad_(True)
    g = torch.autograd.grad(surr(th), th)[0]
    t = time.perf_counter()
    with torch.no_grad():
        out = trpo.trpo_step(
            theta,
            g,
            fvp,
            lambda T: torch.stack([surr(x) for x in T]),
            lambda T: torch.stack([kl_at(x) for x in T]),
            max_kl=max_kl,
            damping=damping,
            cg_iters=pol.n,
        )
    dt = time.perf_counter() - t
    report.line(
        f"  torch (policy 0, F v by double backprop, {dt * 1e3:.1f} ms): step fraction "
        f"{float(out.search.step_frac):g}, max |theta - reference| = {np.abs(out.x.numpy() - ref).max():.1e}"
    )


def run(report) -> None:
    max_kl, damping = 0.01, 0.1
    pol = LinearGaussian()
    report.line(
        f"{pol.B} linear-Gaussian policies (state dim {pol.d}, action dim {pol.k}, {pol.n} parameters each), "
        f"{pol.N} samples each;"
    )
    report.line(f"one TRPO step each (KL limit {max_kl}, damping {damping}) in one batched call: conjugate gradient")
    report.line("on a matrix-free F v, step size sqrt(2 delta / x^T F x), backtracking line search.")
    t = time.perf_counter()
    step = trpo.trpo_step(
        pol.theta0, pol.grad(), pol.fvp, pol.surrogate, pol.kl, max_kl=max_kl, damping=damping, cg_iters=pol.n
    )
    dt = time.perf_counter() - t
    rows, worst = [], 0.0
    for b in range(pol.B):
        ref, frac = reference_step(pol, b, max_kl, damping)
        err = float(np.abs(step.x[b] - ref).max())
        worst = max(worst, err)
        rows.append(
            (
                b,
                f"{trpo.CG_STATUS[step.cg.status[b]]} ({step.cg.iterations[b]})",
                f"{step.step_size[b]:.3f}",
                f"{step.search.step_frac[b]:g}",
                f"{frac:g}",
                f"{step.search.improvement[b]:+.4f}",
                f"{step.search.kl[b]:.5f}",
                f"{err:.1e}",
            )
        )
    report.table(
        (
            "policy",
            "CG (iterations)",
            "step size",
            "accepted",
            "reference",
            "surrogate gain",
            "KL",
            "max |dtheta| vs reference",
        ),
        rows,
    )
    report.line(
        f"  all {pol.B} steps in {dt * 1e3:.1f} ms (one call); worst |theta - explicit reference| = {worst:.1e}"
    )
    _torch_check(report, pol, max_kl, damping, reference_step(pol, 0, max_kl, damping)[0])
