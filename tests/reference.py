"""Shared float64 test oracles: each written from its textbook formula in plain NumPy/SciPy
(loops where a loop is the clearest statement), independent of pygenmod's kernels. Tests import
them (``import reference as ref``) instead of re-implementing them per file.

MCTS references live in ``tests/_mcts_ref.py``.
"""

import numpy as np
from scipy.special import log_softmax

# ============================================================================ MDPs
# Sutton & Barto, Reinforcement Learning (2nd ed.), ch. 3-4.


def bellman_q(P, R, V, gamma):
    """Q[b, s, a] = R[b, s, a] + gamma[b] * sum_t P[b, s, a, t] V[b, t] (one Bellman backup)."""
    P, R, V = (np.asarray(a, np.float64) for a in (P, R, V))
    return R + np.asarray(gamma, np.float64).reshape(-1, 1, 1) * np.einsum("bsat,bt->bsa", P, V)


def policy_value(P, R, gamma, pi):
    """Exact V^pi of one MDP, P (S, A, S), R (S, A): V = (I - gamma P_pi)^-1 r_pi, with pi a
    deterministic policy (S,) of action indices or a stochastic one (S, A)."""
    P, R, pi = np.asarray(P, np.float64), np.asarray(R, np.float64), np.asarray(pi)
    S = R.shape[0]
    if pi.ndim == 1:
        Ppi, rpi = P[np.arange(S), pi], R[np.arange(S), pi]
    else:
        pi = pi.astype(np.float64)
        Ppi, rpi = np.einsum("sa,sat->st", pi, P), (pi * R).sum(-1)
    return np.linalg.solve(np.eye(S) - gamma * Ppi, rpi)


def policy_iteration(P, R, gamma):
    """(V*, pi*, Q*) of one MDP by Howard's policy iteration with exact solves; ties keep the
    current action (so the result is deterministic)."""
    P, R = np.asarray(P, np.float64), np.asarray(R, np.float64)
    S, A = R.shape
    pi = R.argmax(1)
    for _ in range(200):
        V = policy_value(P, R, gamma, pi)
        Q = R + gamma * P @ V
        new = np.where(Q[np.arange(S), pi] >= Q.max(1) - 1e-12, pi, Q.argmax(1))
        if (new == pi).all():
            return V, pi, Q
        pi = new
    raise AssertionError("reference PI did not converge")


# ============================================================================ returns
def gae(r, v, term, trunc, nv, boot, mask, gamma, lam):
    """(advantages, returns) of generalized advantage estimation (Schulman et al. 2016, eq. 16),
    time-major (T, B), one step at a time backwards: delta_t = r_t + gamma V(s_{t+1}) [0 if
    terminated] - V(s_t); A_t = delta_t + gamma lam A_{t+1} [0 after a terminated or truncated
    step]. V(s_{t+1}) is nv[t] if given, else v[t + 1] (boot[b] after the last step, else 0).
    mask[t, b] False: padding, A = 0 and the carry resets."""
    Tn, B = r.shape
    adv = np.zeros((Tn, B))
    ret = np.zeros((Tn, B))
    for b in range(B):
        carry = 0.0
        for t in reversed(range(Tn)):
            if nv is not None:
                vn = nv[t, b]
            else:
                vn = v[t + 1, b] if t + 1 < Tn else (boot[b] if boot is not None else 0.0)
            if mask is not None and not mask[t, b]:
                carry = 0.0
                continue
            te, tr = bool(term[t, b]), bool(trunc[t, b])
            delta = r[t, b] + (0.0 if te else gamma[b] * vn) - v[t, b]
            carry = delta + (0.0 if (te or tr) else gamma[b] * lam[b] * carry)
            adv[t, b] = carry
            ret[t, b] = carry + v[t, b]
    return adv, ret


# ============================================================================ Gaussians
def sigma(p, kind):
    """The standard deviation a scale parameter stands for: logvar -> exp(p / 2), log_std ->
    exp(p), std -> p."""
    p = np.asarray(p, np.float64)
    return {"logvar": np.exp(0.5 * p), "log_std": np.exp(p), "std": p}[kind]


def kl_normal_diag(mu1, s1, mu2, s2):
    """KL(N(mu1, diag s1^2) || N(mu2, diag s2^2)) summed over the last axis:
    sum log(s2 / s1) + (s1^2 + (mu1 - mu2)^2) / (2 s2^2) - 1/2."""
    return (np.log(s2 / s1) + (s1**2 + (mu1 - mu2) ** 2) / (2 * s2**2) - 0.5).sum(-1)


def kl_gauss(m1, S1, m2, S2):
    """KL(N(m1, S1) || N(m2, S2)) of one pair from the covariances:
    (tr(S2^-1 S1) + d' S2^-1 d - D + log det S2 - log det S1) / 2, d = m2 - m1."""
    d = m2 - m1
    return 0.5 * (
        np.trace(np.linalg.solve(S2, S1))
        + d @ np.linalg.solve(S2, d)
        - len(m1)
        + np.linalg.slogdet(S2)[1]
        - np.linalg.slogdet(S1)[1]
    )


def gauss_log_density(X, mean, cov):
    """log N(x; mean, cov) per row of X (N, D): -(D log 2 pi + log det cov + d' cov^-1 d) / 2."""
    X, mean, cov = (np.asarray(a, np.float64) for a in (X, mean, cov))
    diff = np.atleast_2d(X) - mean
    sol = np.linalg.solve(cov, diff.T).T
    out = -0.5 * (mean.shape[-1] * np.log(2 * np.pi) + np.linalg.slogdet(cov)[1] + (diff * sol).sum(1))
    return out if np.ndim(X) == 2 else out[0]


# ============================================================================ Gaussian mixtures
def mixture_covariances(cov, ct, K, D):
    """The (K, D, D) covariances of a mixture stored as scikit-learn's covariance_type ct."""
    if ct == "full":
        return cov
    if ct == "tied":
        return np.broadcast_to(cov, (K, D, D))
    if ct == "diag":
        return cov[:, :, None] * np.eye(D)
    return cov[:, None, None] * np.eye(D)


def gmm_log_gauss(X, means, cov, ct):
    """(N, K) log N(x_n; mean_k, cov_k): the E-step's component log-densities."""
    K, D = means.shape
    C = mixture_covariances(cov, ct, K, D)
    out = np.empty((X.shape[0], K))
    for k in range(K):
        out[:, k] = gauss_log_density(X, means[k], C[k])
    return out


def gmm_em(X, w, weights, means, cov, ct, reg, n_iter):
    """n_iter steps of weighted EM with scikit-learn's formulas (point weights w multiply the
    responsibilities; reg added to the covariances' diagonal). Returns (weights, means, cov,
    the weighted mean log-likelihood of the last E-step)."""
    X, w = np.asarray(X, np.float64), np.asarray(w, np.float64)
    weights, means, cov = (np.array(a, np.float64) for a in (weights, means, cov))
    K, D = means.shape
    eps = np.finfo(np.float64).eps
    lb = None
    for _ in range(n_iter):
        wl = gmm_log_gauss(X, means, cov, ct) + np.log(weights)
        mx = wl.max(1, keepdims=True)
        lse = (mx + np.log(np.exp(wl - mx).sum(1, keepdims=True)))[:, 0]
        lb = (w * lse).sum() / w.sum()
        resp = np.exp(wl - lse[:, None]) * w[:, None]
        nk = resp.sum(0) + 10 * eps
        means = resp.T @ X / nk[:, None]
        if ct == "full":
            cov = np.stack(
                [(resp[:, k] * (X - means[k]).T) @ (X - means[k]) / nk[k] + reg * np.eye(D) for k in range(K)]
            )
        elif ct == "tied":
            cov = (X.T @ (w[:, None] * X) - (nk * means.T) @ means) / nk.sum() + reg * np.eye(D)
        else:
            diag = np.stack([(resp[:, k][:, None] * (X - means[k]) ** 2).sum(0) / nk[k] for k in range(K)]) + reg
            cov = diag if ct == "diag" else diag.mean(1)
        weights = nk / nk.sum()
    return weights, means, cov, lb


# ============================================================================ logistic, categorical
def log_sigmoid(x):
    """log(1 / (1 + exp(-x))) without overflow: -log1p(exp(-|x|)) + min(x, 0)."""
    x = np.asarray(x, np.float64)
    return np.where(x >= 0, -np.log1p(np.exp(-np.abs(x))), x - np.log1p(np.exp(-np.abs(x))))


def sigmoid(x):
    return np.exp(log_sigmoid(x))


def log_softmax_masked(x, m=None):
    """log-softmax over the last axis restricted to the allowed entries (m True), -inf at the
    masked ones."""
    x = np.asarray(x, np.float64)
    if m is None:
        return log_softmax(x, axis=-1)
    m = np.broadcast_to(np.asarray(m, bool), x.shape)
    return np.where(m, log_softmax(np.where(m, x, -np.inf), axis=-1), -np.inf)


def categorical_entropy(x, m=None):
    """H = -sum_k p_k log p_k of softmax(x) over the allowed entries (0 log 0 = 0)."""
    lp = log_softmax_masked(x, m)
    p = np.exp(lp)
    return -np.where(p > 0, p * np.where(p > 0, lp, 0), 0).sum(-1)


def categorical_kl(lp, lq):
    """KL(p || q) = sum_k p_k (log p_k - log q_k) from log-probabilities (0 where p_k = 0;
    +inf where q_k = 0 < p_k)."""
    p = np.exp(lp)
    with np.errstate(invalid="ignore"):
        t = np.where(p > 0, p * (lp - lq), 0.0)
    inf_rows = ((p > 0) & np.isneginf(lq)).any(-1)
    return np.where(inf_rows, np.inf, t.sum(-1))


def top_k(x, k):
    """Indices of the k largest per row, largest first; ties to the lower index (a stable sort
    on -x)."""
    return np.argsort(-x, axis=-1, kind="stable")[..., :k]


def fd_grad(f, x, eps=1e-6):
    """Central finite differences of a scalar function of x (float64)."""
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        g[i] = (f(xp) - f(xm)) / (2 * eps)
    return g


# ============================================================================ spatial softmax
# Levine et al., End-to-End Training of Deep Visuomotor Policies (2016), sec. 4.1.
def spatial_grid(n, coords="normalized"):
    """The coordinates of n pixels along one axis: [-1, 1] evenly (one pixel: 0) or 0..n-1."""
    if coords == "pixel":
        return np.arange(n, dtype=np.float64)
    return np.linspace(-1.0, 1.0, n) if n > 1 else np.zeros(1)


def spatial_softmax(x, temperature=1.0, *, layout="NCHW", coords="normalized", order="xy", mask=None):
    """(keypoints (B, C, 2), covariances (B, C, 2, 2), maps (B, C, H, W)) of s = softmax over
    the pixels of x / temperature: keypoint = E_s[u], cov = E_s[(u - kp)(u - kp)'], u the pixel's
    (x, y) coordinates; masked pixels get weight 0."""
    x = np.asarray(x, np.float64)
    if layout == "NHWC":
        x = x.transpose(0, 3, 1, 2)
    B, C, H, W = x.shape
    t = np.broadcast_to(np.asarray(temperature, np.float64), (C,))
    z = x / t[None, :, None, None]
    valid = np.ones_like(z, bool) if mask is None else np.broadcast_to(mask, z.shape)
    z = np.where(valid, z, -np.inf)
    e = np.exp(z - z.max(axis=(2, 3), keepdims=True))
    s = e / e.sum(axis=(2, 3), keepdims=True)
    u = np.stack(np.meshgrid(spatial_grid(W, coords), spatial_grid(H, coords), indexing="xy"), -1)  # (H, W, 2)
    kp = np.einsum("bchw,hwk->bck", s, u)
    d = u[None, None] - kp[:, :, None, None, :]
    cov = np.einsum("bchw,bchwi,bchwj->bcij", s, d, d)
    if order == "yx":
        kp, cov = kp[..., ::-1], cov[..., ::-1, ::-1]
    return kp, cov, s


def spatial_softmax_vjp(x, temperature, g_kp, g_cov=None, g_maps=None, eps=None, **kw):
    """(grad_x, grad_temperature) of <g_kp, kp> + <g_cov, cov> + <g_maps, maps>, analytic: with
    phi the pixel's cotangent, grad_z = s (phi - E_s[phi]), grad_x = grad_z / t and
    grad_t = -sum(grad_z z) / t (NCHW, normalized coordinates)."""
    x = np.asarray(x, np.float64)
    C = x.shape[1]
    t = np.broadcast_to(np.asarray(temperature, np.float64), (C,)).copy()
    kp, cov, s = spatial_softmax(x, t, **kw)
    B, C, H, W = x.shape
    u = np.stack(np.meshgrid(spatial_grid(W), spatial_grid(H), indexing="xy"), -1)
    mu = kp
    phi = np.einsum("bck,hwk->bchw", g_kp, u)
    if g_cov is not None:
        G = 0.5 * (g_cov + np.swapaxes(g_cov, -1, -2))
        d = u[None, None] - mu[:, :, None, None, :]
        phi = phi + np.einsum("bchwi,bcij,bchwj->bchw", d, G, d)
    if g_maps is not None:
        phi = phi + g_maps
    gz = s * (phi - (s * phi).sum(axis=(2, 3), keepdims=True))
    gx = gz / t[None, :, None, None]
    z = x / t[None, :, None, None]
    gt = -(gz * z).sum(axis=(0, 2, 3)) / t
    return gx, gt
