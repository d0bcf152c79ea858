"""Per-call time of public functions against the NumPy expression a user would write for the
same result (issue 11's rule: never slower than plain NumPy at any size).

    python bench/tiny_sweep.py            # tiny size: function, pygenmod us, NumPy us, ratio
    python bench/tiny_sweep.py --sweep    # NumPy / pygenmod per function over four sizes

Best of 7 batches of calls (300 at the tiny size), one function after the other on the calling
thread. The tiny size is B=2 rows of D=4 or K=6 entries (T=8 steps for returns); --sweep grows
the rows' length n = D = K = T (the full-covariance rows to D = min(n, 128)) and marks ratios
below 1 with `!`: the crossovers. The W8 rows of `pygenmod bench` time the hot ones in the
runner's three modes.
"""

from __future__ import annotations

import sys
import timeit

import numpy as np

from pygenmod import adversarial, categorical, elbo, goals, random, returns, sampling, spatial

LOG_2PI = np.log(2 * np.pi)


def _log_softmax(x):
    z = x - x.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _masked_log_softmax(x, m):
    z = np.where(m, x, -np.inf)
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _masked_entropy(x, m):
    lp = _masked_log_softmax(x, m)
    return -(np.exp(lp) * np.where(m, lp, 0)).sum(-1)


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _normal_log_prob_backward(x, mu, lv, g):
    d = (x - mu) * np.exp(-lv)
    return -g[:, None] * d, g[:, None] * d, 0.5 * g[:, None] * ((x - mu) * d - 1)


def _log_prob_backward(x, a, g):
    d = -g[:, None] * _softmax(x)
    d[np.arange(len(a)), a] += g
    return d


def _masked_log_prob_backward(x, m, a, g):
    d = -g[:, None] * np.exp(_masked_log_softmax(x, m))
    d[np.arange(len(a)), a] += g
    return d


def _entropy_backward(x, g):
    lp = _log_softmax(x)
    p = np.exp(lp)
    h = -(p * lp).sum(-1, keepdims=True)
    return -g[:, None] * p * (lp + h)


def _policy_target_kl(w, x):
    p = w / w.sum(-1, keepdims=True)
    return (p * (np.log(np.where(p > 0, p, 1)) - _log_softmax(x))).sum(-1)


def _mahalanobis(x, mu, L):
    y = np.linalg.solve(L, (x - mu)[..., None])[..., 0]
    return (y * y).sum(-1)


def _mvn_log_prob_backward(x, mu, L, g):
    y = np.linalg.solve(L, (x - mu)[..., None])
    w = np.linalg.solve(np.swapaxes(L, -1, -2), y)[..., 0]
    eye = np.eye(L.shape[-1])
    dL = g[:, None, None] * (
        np.tril(w[:, :, None] * y[:, None, :, 0]) - eye / np.diagonal(L, axis1=-2, axis2=-1)[..., None]
    )
    return -g[:, None] * w, g[:, None] * w, dL


def _elbo(x, dec, mu, lv):
    ll = -0.5 * ((x - dec) ** 2 + LOG_2PI).sum(-1)
    return ll - 0.5 * (np.exp(lv) + mu**2 - 1 - lv).sum(-1)


def _keypoints(img, xs):
    p = _softmax(img.reshape(*img.shape[:2], -1)).reshape(img.shape)
    return np.stack([(p.sum(-2) * xs).sum(-1), (p.sum(-1) * xs).sum(-1)], -1)


def _keypoints_backward(img, xs, g):
    p = _softmax(img.reshape(*img.shape[:2], -1)).reshape(img.shape)
    kx, ky = (p.sum(-2) * xs).sum(-1), (p.sum(-1) * xs).sum(-1)
    gx = g[..., 0][..., None, None] * (xs[None, None, None, :] - kx[..., None, None])
    gy = g[..., 1][..., None, None] * (xs[None, None, :, None] - ky[..., None, None])
    return p * (gx + gy)


def _discounted_scan(r, gamma):
    out, run = np.empty_like(r), np.zeros(r.shape[1:])
    for t in range(len(r) - 1, -1, -1):
        run = r[t] + gamma * run
        out[t] = run
    return out


def _backward_scan(r, v, gamma, lam):
    adv, last = np.zeros_like(r), 0.0
    for t in range(len(r) - 1, -1, -1):
        nv = v[t + 1] if t + 1 < len(r) else 0.0
        last = r[t] + gamma * nv - v[t] + gamma * lam * last
        adv[t] = last
    return adv


def cases(D=4, K=6, T=8, D_full=None):
    """name -> (pygenmod call, NumPy call) on the same data: B=2 rows of D (Gaussians; D_full for
    full covariances, default D) or K (categorical, Gumbel, GAN) entries, T steps (returns)."""
    Df = D if D_full is None else D_full
    rng = np.random.default_rng(0)
    g = np.random.default_rng(1)
    mu, x = rng.standard_normal((2, D)), rng.standard_normal((2, D))
    lv = 0.1 * rng.standard_normal((2, D))
    muf, xf = np.ascontiguousarray(mu[:, :Df]), np.ascontiguousarray(x[:, :Df])  # (the fast paths' layout)
    L = np.tril(0.3 / np.sqrt(Df) * rng.standard_normal((2, Df, Df))) + np.eye(Df)
    lg, lq = rng.standard_normal((2, K)), rng.standard_normal((2, K))
    act = rng.integers(0, K, 2)
    mk = rng.random((2, K)) < 0.7  # an action mask (True: allowed), the taken actions allowed
    mk[np.arange(2), act] = True
    visits = rng.integers(0, 5, (2, K)).astype(float)  # MCTS visit counts, the policy target
    visits[:, 0] += 1
    gb = rng.standard_normal(2)
    gz, eps = rng.standard_normal((2, D)), rng.standard_normal((2, D))
    xo = rng.random((2, T))  # elbo: x and the decoder's means (the rewards' rows), latent size 8
    gzf, epsf = np.ascontiguousarray(gz[:, :Df]), np.ascontiguousarray(eps[:, :Df])
    H = max(2, int(np.sqrt(D)))  # spatial: 2 maps of H x H ~ D pixels
    img, gkp, grid = rng.standard_normal((2, 1, H, H)), rng.standard_normal((2, 1, 2)), np.linspace(-1, 1, H)
    rew, val = rng.standard_normal((T, 2)), rng.standard_normal((T, 2))
    n = lg.shape[-1]
    h = np.concatenate([mu, lv], 1)  # one encoder output: mu and logvar are strided views of it
    hm, hl = h[:, :D], h[:, D:]
    head = np.concatenate([lg, gb[:, None]], 1)  # an actor-critic head: logits are a strided view
    hlg = head[:, :K]

    def np_mvn_log_prob():
        y = np.linalg.solve(L, (xf - muf)[..., None])[..., 0]
        return -0.5 * (y * y).sum(-1) - np.log(np.diagonal(L, axis1=1, axis2=2)).sum(-1) - Df / 2 * LOG_2PI

    def np_gan_d():
        loss = np.mean(np.logaddexp(0, -lg), -1) + np.mean(np.logaddexp(0, lq), -1)
        return loss, -1 / (1 + np.exp(lg)) / n, 1 / (1 + np.exp(-lq)) / n

    return {
        "sampling.rsample_normal": (
            lambda: sampling.rsample_normal(mu, lv, seed=1),
            lambda: mu + np.exp(0.5 * lv) * g.standard_normal(mu.shape),
        ),
        "sampling.normal_head": (
            lambda: sampling.normal_head(mu, lv, seed=1),
            lambda: (
                mu + np.exp(0.5 * lv) * g.standard_normal(mu.shape),
                0.5 * (np.exp(lv) + mu * mu - 1 - lv).sum(-1),
            ),
        ),
        "sampling.kl_normal": (
            lambda: sampling.kl_normal(mu, lv),
            lambda: 0.5 * np.sum(np.exp(lv) + mu * mu - 1.0 - lv, -1),
        ),
        "sampling.kl_normal (mu, logvar sliced from h)": (
            lambda: sampling.kl_normal(hm, hl),
            lambda: 0.5 * np.sum(np.exp(hl) + hm * hm - 1.0 - hl, -1),
        ),
        "sampling.normal_log_prob": (
            lambda: sampling.normal_log_prob(x, mu, lv),
            lambda: -0.5 * np.sum((x - mu) ** 2 * np.exp(-lv) + lv + LOG_2PI, -1),
        ),
        "sampling.rsample_normal_backward": (
            lambda: sampling.rsample_normal_backward(mu, lv, grad_z=gz, eps=eps),
            lambda: (gz, gz * eps * 0.5 * np.exp(0.5 * lv)),
        ),
        "sampling.kl_normal_backward": (
            lambda: sampling.kl_normal_backward(mu, lv, grad_kl=gb),
            lambda: (gb[:, None] * mu, 0.5 * gb[:, None] * (np.exp(lv) - 1)),
        ),
        "sampling.normal_log_prob_backward": (
            lambda: sampling.normal_log_prob_backward(x, mu, lv, grad_log_prob=gb),
            lambda: _normal_log_prob_backward(x, mu, lv, gb),
        ),
        "sampling.rsample_mvn": (
            lambda: sampling.rsample_mvn(muf, L, seed=1),
            lambda: muf + (L @ g.standard_normal((2, Df, 1)))[..., 0],
        ),
        "sampling.mvn_log_prob": (lambda: sampling.mvn_log_prob(xf, muf, L), np_mvn_log_prob),
        "sampling.rsample_mvn_backward": (
            lambda: sampling.rsample_mvn_backward(muf, L, grad_z=gzf, eps=epsf),
            lambda: (gzf, np.tril(gzf[:, :, None] * epsf[:, None, :])),
        ),
        "sampling.mvn_log_prob_backward": (
            lambda: sampling.mvn_log_prob_backward(xf, muf, L, grad_log_prob=gb),
            lambda: _mvn_log_prob_backward(xf, muf, L, gb),
        ),
        "sampling.mvn_head": (
            lambda: sampling.mvn_head(muf, L, seed=1),
            lambda: (
                muf + (L @ g.standard_normal((2, Df, 1)))[..., 0],
                0.5 * ((L**2).sum((1, 2)) + (muf * muf).sum(-1) - Df)
                - np.log(np.diagonal(L, axis1=1, axis2=2)).sum(-1),
            ),
        ),
        "sampling.kl_mvn_backward": (
            lambda: sampling.kl_mvn_backward(muf, L, grad_kl=gb),
            lambda: (
                gb[:, None] * muf,
                gb[:, None, None] * (L - np.eye(Df) / np.diagonal(L, axis1=1, axis2=2)[:, None]),
            ),
        ),
        "sampling.mahalanobis": (lambda: sampling.mahalanobis(xf, muf, L), lambda: _mahalanobis(xf, muf, L)),
        "sampling.kl_mvn": (
            lambda: sampling.kl_mvn(muf, L),
            lambda: (
                0.5 * ((L**2).sum((1, 2)) + (muf * muf).sum(-1) - Df) - np.log(np.diagonal(L, axis1=1, axis2=2)).sum(-1)
            ),
        ),
        "sampling.gumbel_softmax": (
            lambda: sampling.gumbel_softmax(lg, seed=1),
            lambda: _softmax(lg - np.log(-np.log(g.random(lg.shape)))),
        ),
        "random.normal": (lambda: random.normal(1, (2, D), dtype=np.float64), lambda: g.standard_normal((2, D))),
        "categorical.entropy": (
            lambda: categorical.entropy(lg),
            lambda: -(np.exp(_log_softmax(lg)) * _log_softmax(lg)).sum(-1),
        ),
        "categorical.kl": (
            lambda: categorical.kl(lg, lq),
            lambda: (np.exp(_log_softmax(lg)) * (_log_softmax(lg) - _log_softmax(lq))).sum(-1),
        ),
        "categorical.log_prob": (
            lambda: categorical.log_prob(lg, act),
            lambda: np.take_along_axis(_log_softmax(lg), act[:, None], -1)[:, 0],
        ),
        "categorical.log_prob (logits sliced from a head)": (
            lambda: categorical.log_prob(hlg, act),
            lambda: np.take_along_axis(_log_softmax(hlg), act[:, None], -1)[:, 0],
        ),
        "categorical.log_prob (masked)": (
            lambda: categorical.log_prob(lg, act, mask=mk),
            lambda: np.take_along_axis(_masked_log_softmax(lg, mk), act[:, None], -1)[:, 0],
        ),
        "categorical.entropy (masked)": (
            lambda: categorical.entropy(lg, mask=mk),
            lambda: _masked_entropy(lg, mk),
        ),
        "categorical.log_prob_backward (masked)": (
            lambda: categorical.log_prob_backward(lg, act, grad_log_prob=gb, mask=mk),
            lambda: _masked_log_prob_backward(lg, mk, act, gb),
        ),
        "categorical.log_prob_backward": (
            lambda: categorical.log_prob_backward(lg, act, grad_log_prob=gb),
            lambda: _log_prob_backward(lg, act, gb),
        ),
        "categorical.entropy_backward": (
            lambda: categorical.entropy_backward(lg, grad_entropy=gb),
            lambda: _entropy_backward(lg, gb),
        ),
        "categorical.policy_target_kl": (
            lambda: categorical.policy_target_kl(visits, lg),
            lambda: _policy_target_kl(visits, lg),
        ),
        "categorical.policy_target_kl_backward": (
            lambda: categorical.policy_target_kl_backward(visits, lg, grad_kl=gb),
            lambda: gb[:, None] * (_softmax(lg) - visits / visits.sum(-1, keepdims=True)),
        ),
        "categorical.pg_loss": (
            lambda: categorical.pg_loss(-np.abs(lq), lg),
            lambda: (-(-np.abs(lq) * lg).mean(-1), -lg / n),
        ),
        "spatial.spatial_softmax": (lambda: spatial.spatial_softmax(img), lambda: _keypoints(img, grid)),
        "spatial.spatial_softmax_backward": (
            lambda: spatial.spatial_softmax_backward(img, grad_keypoints=gkp),
            lambda: _keypoints_backward(img, grid, gkp),
        ),
        "elbo.elbo": (
            lambda: elbo.elbo(xo, rew.T, mu[:, :8], lv[:, :8]),
            lambda: _elbo(xo, rew.T, mu[:, :8], lv[:, :8]),
        ),
        "returns.gae": (lambda: returns.gae(rew, val), lambda: _backward_scan(rew, val, 0.99, 0.95)),
        "returns.lambda_returns": (
            lambda: returns.lambda_returns(rew, val),
            lambda: _backward_scan(rew, val, 0.99, 0.95) + val,
        ),
        "returns.discounted_returns": (lambda: returns.discounted_returns(rew), lambda: _discounted_scan(rew, 0.99)),
        "adversarial.gan_discriminator_loss": (lambda: adversarial.gan_discriminator_loss(lg, lq), np_gan_d),
        "adversarial.gan_generator_loss": (
            lambda: adversarial.gan_generator_loss(lq),
            lambda: (np.mean(np.logaddexp(0, -lq), -1), -1 / (1 + np.exp(lq)) / n),
        ),
        "adversarial.lsgan_discriminator_loss": (
            lambda: adversarial.lsgan_discriminator_loss(lg, lq),
            lambda: (np.mean((lg - 1) ** 2, -1) + np.mean((lq + 1) ** 2, -1), 2 * (lg - 1) / n, 2 * (lq + 1) / n),
        ),
        "adversarial.lsgan_generator_loss": (
            lambda: adversarial.lsgan_generator_loss(lq),
            lambda: (np.mean(lq**2, -1), 2 * lq / n),
        ),
        "adversarial.gail_reward": (lambda: adversarial.gail_reward(lg), lambda: -np.logaddexp(0, -lg)),
        "goals.rig_reward": (lambda: goals.rig_reward(x, mu), lambda: -np.linalg.norm(x - mu, axis=-1)),
    }


def per_call_us(f, number=300, repeat=7):
    f()
    return min(timeit.repeat(f, number=number, repeat=repeat)) / number * 1e6


SWEEP = (4, 64, 1024, 16384)


def tiny():
    print("| function (tiny size) | pygenmod us | NumPy us | NumPy / pygenmod |")
    print("|---|--:|--:|--:|")
    for name, (ours, plain) in cases().items():
        a, b = per_call_us(ours), per_call_us(plain)
        flag = "" if a <= b else " (slower)"
        print(f"| {name} | {a:.1f} | {b:.1f} | {b / a:.2f}x{flag} |")


def sweep():
    ratios = {}
    for n in SWEEP:
        number = max(3, 300 * 64 // max(n, 64))  # about the same time per size
        for name, (ours, plain) in cases(D=n, K=n, T=n, D_full=min(n, 128)).items():
            ratios.setdefault(name, []).append(per_call_us(plain, number) / per_call_us(ours, number))
    print("| function (B=2 rows of n) | " + " | ".join(f"n={n}" for n in SWEEP) + " |")
    print("|---|" + "--:|" * len(SWEEP))
    for name, rs in ratios.items():
        print(f"| {name} | " + " | ".join(f"{r:.2f}x" + ("!" if r < 1 else "") for r in rs) + " |")


if __name__ == "__main__":
    sweep() if "--sweep" in sys.argv[1:] else tiny()
