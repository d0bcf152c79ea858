"""Workload W8 (tiny calls, per-call latency) of WORKLOADS.md: a size sweep per family.

Each row is one family at one size: pygenmod's public function next to the plain NumPy code a
user would write in a few lines (and the peer where one is cheap to call). A timed call runs
the function CALLS times; the runner reports seconds per single call. The sweep shows where
pygenmod's fixed per-call cost stops mattering (the crossover); the rule is that pygenmod is never
slower than the plain NumPy version at any size.
"""

from __future__ import annotations

import numpy as np

from .runner import Candidate, Missing, Workload

CALLS = 50  # calls per timed sample: per-call times of a few microseconds need a batch


def _loop(f):
    def run():
        for _ in range(CALLS):
            f()

    return run


def _w(wid, title, cands):
    return Workload(wid, title, cands, calls=CALLS, repeats=7)


# ----------------------------------------------------------------------------- mdp
def _mdp(S):
    def data():
        from pygenmod import mdp

        P, R = mdp.random_mdp(S, 4, seed=0)
        return P, R, np.random.default_rng(1).standard_normal(S)

    def ours():
        from pygenmod import mdp

        P, R, V = data()
        return _loop(lambda: mdp.bellman_backup(P, R, V, 0.95))

    def plain():
        P, R, V = data()
        P2 = P.reshape(-1, S) if P.shape[0] == 4 else np.swapaxes(P, 0, 1).reshape(-1, S)
        return _loop(lambda: (R + 0.95 * (P2 @ V).reshape(R.shape)).max(1))

    return _w(
        f"W8-mdp-S{S}",
        f"bellman_backup, one MDP, S={S}, A=4",
        [Candidate("pygenmod bellman_backup", ours, is_ours=True), Candidate("numpy (R + g P V).max", plain)],
    )


def _pi_gridworld():
    def ours():
        from pygenmod import mdp

        P, R, _ = mdp.gridworld()
        return _loop(lambda: mdp.policy_iteration(P, R, 0.99, evaluation="exact"))

    def plain():
        from pygenmod import mdp

        P, R, _ = mdp.gridworld()
        return _loop(lambda: numpy_policy_iteration(P, R, 0.99))

    def qe():
        try:
            import quantecon as q
        except ImportError as exc:
            raise Missing("quantecon not installed") from exc
        from pygenmod import mdp

        P, R, _ = mdp.gridworld()
        R2, Q2 = mdp.to_quantecon(P, R)
        ddp = q.markov.DiscreteDP(R2, Q2, 0.99)
        return _loop(lambda: ddp.solve(method="policy_iteration"))

    return _w(
        "W8-pi-grid",
        "policy_iteration(evaluation='exact'), 4x3 gridworld",
        [
            Candidate("pygenmod policy_iteration", ours, is_ours=True),
            Candidate("numpy PI (linalg.solve)", plain),
            Candidate("quantecon DiscreteDP PI", qe),
        ],
    )


def numpy_policy_iteration(P, R, gamma):
    """Exact policy iteration in plain NumPy (P (A, S, S) or (S, A, S), R (S, A))."""
    S, A = R.shape
    Psa = P if P.shape == (S, A, S) else np.swapaxes(P, 0, 1)
    pi = np.zeros(S, np.int64)
    eye = np.eye(S)
    while True:
        Ppi = Psa[np.arange(S), pi]
        V = np.linalg.solve(eye - gamma * Ppi, R[np.arange(S), pi])
        new = (R + gamma * Psa @ V).argmax(1)
        if (new == pi).all():
            return V, pi
        pi = new


# ----------------------------------------------------------------------------- returns
def _gae(T):
    def data():
        rng = np.random.default_rng(0)
        return rng.standard_normal((T, 1)), rng.standard_normal((T, 1))

    def ours():
        from pygenmod import returns

        r, v = data()
        return _loop(lambda: returns.gae(r, v, gamma=0.99, lam=0.95))

    def plain():
        r, v = data()

        def gae():
            adv = np.empty_like(r)
            last = 0.0
            for t in range(T - 1, -1, -1):
                nv = v[t + 1] if t + 1 < T else 0.0
                last = r[t] + 0.99 * nv - v[t] + 0.99 * 0.95 * last
                adv[t] = last
            return adv, adv + v

        return _loop(gae)

    return _w(
        f"W8-gae-T{T}",
        f"gae, B=1, T={T}",
        [Candidate("pygenmod gae", ours, is_ours=True), Candidate("numpy loop over t", plain)],
    )


# ----------------------------------------------------------------------------- sampling
def _rsample(D):
    def data():
        rng = np.random.default_rng(0)
        return rng.standard_normal((1, D)), rng.standard_normal((1, D))

    def ours():
        from pygenmod import sampling

        mu, lv = data()
        return _loop(lambda: sampling.rsample_normal(mu, lv, seed=1))

    def plain():
        mu, lv = data()
        rng = np.random.default_rng(1)
        return _loop(lambda: mu + np.exp(0.5 * lv) * rng.standard_normal(mu.shape))

    def torch_():
        try:
            import torch
        except ImportError as exc:
            raise Missing("torch not installed") from exc
        mu, lv = (torch.from_numpy(a) for a in data())
        return _loop(lambda: mu + torch.exp(0.5 * lv) * torch.randn_like(mu))

    return _w(
        f"W8-rsample-D{D}",
        f"rsample_normal, B=1, D={D}",
        [
            Candidate("pygenmod rsample_normal", ours, is_ours=True),
            Candidate("numpy mu + exp(lv/2) * eps", plain),
            Candidate("torch eager one-liner", torch_),
        ],
    )


# ----------------------------------------------------------------------------- spatial
def _spatial(H):
    def data():
        return np.random.default_rng(0).standard_normal((1, 4, H, H)).astype(np.float32)

    def ours():
        from pygenmod import spatial

        x = data()
        return _loop(lambda: spatial.spatial_softmax(x))

    def plain():
        x = data()
        lin = np.linspace(-1, 1, H, dtype=np.float32)

        def f():
            z = x.reshape(1, 4, H * H)
            p = np.exp(z - z.max(-1, keepdims=True))
            p = (p / p.sum(-1, keepdims=True)).reshape(1, 4, H, H)
            return np.stack([(p.sum(2) * lin).sum(-1), (p.sum(3) * lin).sum(-1)], -1)

        return _loop(f)

    return _w(
        f"W8-spatial-H{H}",
        f"spatial_softmax, B=1, C=4, H=W={H}",
        [Candidate("pygenmod spatial_softmax", ours, is_ours=True), Candidate("numpy softmax + expectation", plain)],
    )


# ----------------------------------------------------------------------------- gmm
def numpy_log_prob(X, w, mu, pc):
    """Mixture log-density of each point (full covariances, precisions_cholesky with
    inv(cov) = pc pc^T) in plain NumPy; also returns log w_k + log N(x | k)."""
    D = X.shape[1]
    y = np.einsum("nd,kde->nke", X, pc) - np.einsum("kd,kde->ke", mu, pc)[None]
    lp = np.log(w) + np.log(np.diagonal(pc, 0, 1, 2)).sum(1) - 0.5 * (D * np.log(2 * np.pi) + (y * y).sum(-1))
    m = lp.max(1, keepdims=True)
    return m[:, 0] + np.log(np.exp(lp - m).sum(1)), lp


def numpy_em_step(X, w, mu, pc, reg=1e-6):
    """One EM step of a full-covariance mixture in plain NumPy (scikit-learn's conventions:
    precisions_cholesky with inv(cov) = pc pc^T, weights nk / N, reg_covar on the diagonal);
    returns ((weights, means, covariances, precisions_cholesky), mean log-likelihood of p)."""
    N, D = X.shape
    ln, lp = numpy_log_prob(X, w, mu, pc)
    R = np.exp(lp - ln[:, None])
    nk = R.sum(0) + 10 * np.finfo(X.dtype).eps
    mu = R.T @ X / nk[:, None]
    d = X[None] - mu[:, None]
    cov = np.einsum("nk,knd,kne->kde", R, d, d) / nk[:, None, None] + reg * np.eye(D)
    pc = np.swapaxes(np.linalg.inv(np.linalg.cholesky(cov)), 1, 2)
    return (nk / N, mu, cov, pc), ln.mean()


def _gmm(N):
    def data():
        from pygenmod import gmm

        rng = np.random.default_rng(0)
        X = rng.standard_normal((N, 2))
        return X, gmm.m_step(X, rng.dirichlet(np.ones(3), N))

    def ours():
        from pygenmod import gmm

        X, p = data()
        return _loop(lambda: gmm.em_step(X, p))

    def plain():
        X, p = data()
        return _loop(lambda: numpy_em_step(X, p.weights, p.means, p.precisions_cholesky))

    return _w(
        f"W8-gmm-N{N}",
        f"gmm.em_step, one mixture, N={N}, D=2, K=3, full covariances",
        [Candidate("pygenmod em_step", ours, is_ours=True), Candidate("numpy EM step (einsum, cholesky)", plain)],
    )


# ----------------------------------------------------------------------------- cem
def _topk(N):
    def data():
        return np.random.default_rng(0).standard_normal((1, N))

    def ours():
        from pygenmod import cem

        x = data()
        return _loop(lambda: cem.top_k(x, 8))

    def plain():
        x = data()

        def f():
            p = np.argpartition(-x, 7, axis=1)[:, :8]
            return np.take_along_axis(p, np.argsort(-np.take_along_axis(x, p, 1), 1, kind="stable"), 1)

        return _loop(f)

    return _w(
        f"W8-topk-N{N}",
        f"top_k(k=8), one row of N={N}",
        [Candidate("pygenmod top_k", ours, is_ours=True), Candidate("numpy argpartition + argsort", plain)],
    )


# ----------------------------------------------------------------------------- densities, MVN, Gumbel, GAN
def numpy_kl_logprob(mu, lv, x):
    """KL(N(mu, e^lv) || N(0, I)) and log N(x; mu, e^lv) per row in plain NumPy."""
    c = mu.shape[-1] * 0.5 * np.log(2 * np.pi)
    kl = 0.5 * np.sum(np.exp(lv) + mu * mu - 1.0 - lv, -1)
    return kl, -0.5 * np.sum((x - mu) ** 2 * np.exp(-lv) + lv, -1) - c


def numpy_gan_discriminator_loss(r, f):
    """The discriminator's GAN loss (mean over the last axis) and its gradients in plain NumPy."""
    n_r, n_f = r.shape[-1], f.shape[-1]
    loss = np.mean(np.logaddexp(0, -r), -1) + np.mean(np.logaddexp(0, f), -1)
    return loss, -1 / (1 + np.exp(r)) / n_r, 1 / (1 + np.exp(-f)) / n_f


def _kl_logprob(D):
    """kl_normal then normal_log_prob of B=2 rows (a VAE's two per-step terms)."""

    def data():
        rng = np.random.default_rng(0)
        return rng.standard_normal((2, D)), 0.1 * rng.standard_normal((2, D)), rng.standard_normal((2, D))

    def ours():
        from pygenmod import sampling

        mu, lv, x = data()
        return _loop(lambda: (sampling.kl_normal(mu, lv), sampling.normal_log_prob(x, mu, lv)))

    def plain():
        mu, lv, x = data()
        return _loop(lambda: numpy_kl_logprob(mu, lv, x))

    return _w(
        f"W8-kl-D{D}",
        f"kl_normal + normal_log_prob, B=2, D={D}",
        [Candidate("pygenmod kl_normal + normal_log_prob", ours, is_ours=True), Candidate("numpy expressions", plain)],
    )


def _mvn(D):
    """rsample_mvn with a Cholesky factor per row, B=2."""

    def data():
        rng = np.random.default_rng(0)
        L = np.tril(0.3 * rng.standard_normal((2, D, D))) + np.eye(D)
        return rng.standard_normal((2, D)), L

    def ours():
        from pygenmod import sampling

        mu, L = data()
        return _loop(lambda: sampling.rsample_mvn(mu, L, seed=1))

    def plain():
        mu, L = data()
        rng = np.random.default_rng(1)
        return _loop(lambda: mu + (L @ rng.standard_normal((2, D, 1)))[..., 0])

    return _w(
        f"W8-mvn-D{D}",
        f"rsample_mvn, B=2, D={D}, scale_tril per row",
        [Candidate("pygenmod rsample_mvn", ours, is_ours=True), Candidate("numpy mu + L @ eps", plain)],
    )


def _gumbel(K):
    """gumbel_softmax over K categories, B=2 rows."""

    def data():
        return np.random.default_rng(0).standard_normal((2, K))

    def ours():
        from pygenmod import sampling

        x = data()
        return _loop(lambda: sampling.gumbel_softmax(x, 0.5, seed=1))

    def plain():
        x = data()
        rng = np.random.default_rng(1)

        def f():
            z = (x - np.log(-np.log(rng.random(x.shape)))) / 0.5
            e = np.exp(z - z.max(-1, keepdims=True))
            return e / e.sum(-1, keepdims=True)

        return _loop(f)

    return _w(
        f"W8-gumbel-K{K}",
        f"gumbel_softmax, B=2, K={K}",
        [Candidate("pygenmod gumbel_softmax", ours, is_ours=True), Candidate("numpy Gumbel-softmax", plain)],
    )


def _gan(N):
    """The discriminator's GAN loss and its gradients for B=2 batches of N real and N fake logits."""

    def data():
        rng = np.random.default_rng(0)
        return rng.standard_normal((2, N)), rng.standard_normal((2, N))

    def ours():
        from pygenmod import adversarial

        r, f = data()
        return _loop(lambda: adversarial.gan_discriminator_loss(r, f))

    def plain():
        r, f = data()
        return _loop(lambda: numpy_gan_discriminator_loss(r, f))

    return _w(
        f"W8-gan-N{N}",
        f"gan_discriminator_loss with gradients, B=2, N={N}",
        [Candidate("pygenmod gan_discriminator_loss", ours, is_ours=True), Candidate("numpy logaddexp", plain)],
    )


def workloads(quick: bool = False):
    ws = [_pi_gridworld()]
    ws += [_mdp(S) for S in ((4, 64) if quick else (4, 16, 64, 256))]
    ws += [_gae(T) for T in ((8, 256) if quick else (8, 64, 512))]
    ws += [_gmm(N) for N in ((16, 1024) if quick else (16, 256, 4096))]
    ws += [_rsample(D) for D in ((4, 1024) if quick else (4, 64, 1024))]
    ws += [_spatial(H) for H in ((4, 32) if quick else (4, 16, 64))]
    ws += [_topk(N) for N in ((16, 4096) if quick else (16, 256, 4096))]
    ws += [_kl_logprob(D) for D in ((4,) if quick else (4, 256))]
    ws += [_mvn(D) for D in ((4,) if quick else (4, 32))]
    ws += [_gumbel(K) for K in ((6,) if quick else (6, 1000))]
    ws += [_gan(N) for N in ((8,) if quick else (8, 4096))]
    return ws
