"""TRPO's machinery (pygenmod.trpo, pygenmod.torch.fisher_vector_product): conjugate gradient
against scipy's cg on explicit matrices, the step size and line search against plain loops,
the torch Fisher-vector product against the explicit Fisher of a linear-Gaussian policy, and a
whole TRPO step against a straightforward reference (explicit Fisher, solve, step size, line search)."""

import numpy as np
import pytest
import scipy.sparse.linalg as spla

from pygenmod import trpo


def spd(rng, B, n, cond=10.0, dtype=np.float64):
    """B random SPD matrices with eigenvalues log-spaced in [1, cond]."""
    Q, _ = np.linalg.qr(rng.standard_normal((B, n, n)))
    ev = np.logspace(0, np.log10(cond), n)
    ev = np.stack([rng.permutation(ev) for _ in range(B)])
    return np.einsum("bij,bj,bkj->bik", Q, ev, Q).astype(dtype)


def matvec(F):
    return lambda V: np.einsum("bij,bj->bi", F, V)


def scipy_cg(A, b, tol, maxiter):
    """scipy's cg and its number of iterations (callback calls)."""
    its = [0]
    x, _ = spla.cg(A, b, rtol=tol, atol=0.0, maxiter=maxiter, callback=lambda _: its.__setitem__(0, its[0] + 1))
    return x, its[0]


# ============================================================================ conjugate gradient
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n", [1, 5, 33, 100])
def test_cg_matches_scipy(n, dtype):
    rng = np.random.default_rng(n)
    B = 3
    F = spd(rng, B, n, cond=50.0)
    g = rng.standard_normal((B, n))
    tol = 1e-10 if dtype == np.float64 else 1e-5
    res = trpo.conjugate_gradient(matvec(F.astype(dtype)), g.astype(dtype), tol=tol, max_iter=10 * n)
    assert res.x.dtype == dtype and res.x.shape == (B, n)
    assert res.status.dtype == np.int64 and res.iterations.dtype == np.int64
    assert np.all(res.converged)
    for b in range(B):
        x_ref, its = scipy_cg(F[b], g[b], tol, 10 * n)
        exact = np.linalg.solve(F[b], g[b])
        rt = 1e-7 if dtype == np.float64 else 2e-3
        np.testing.assert_allclose(res.x[b], x_ref, rtol=rt, atol=rt * np.abs(exact).max())
        np.testing.assert_allclose(res.x[b], exact, rtol=rt, atol=rt * np.abs(exact).max())
        if dtype == np.float64:
            assert abs(int(res.iterations[b]) - its) <= 1
        true_res = np.linalg.norm(g[b] - F[b] @ res.x[b].astype(np.float64))
        assert true_res <= 10 * tol * np.linalg.norm(g[b]) + (1e-4 if dtype == np.float32 else 0)


def test_cg_damping_is_f_plus_lambda_i():
    rng = np.random.default_rng(1)
    F = spd(rng, 4, 12)
    g = rng.standard_normal((4, 12))
    lam = np.array([0.0, 0.1, 1.0, 10.0])
    res = trpo.conjugate_gradient(matvec(F), g, damping=lam, max_iter=100)
    for b in range(4):
        np.testing.assert_allclose(res.x[b], np.linalg.solve(F[b] + lam[b] * np.eye(12), g[b]), rtol=1e-8)
    res1 = trpo.conjugate_gradient(matvec(F), g, damping=0.1, max_iter=100)
    np.testing.assert_allclose(res1.x[1], res.x[1], rtol=1e-12)


def test_cg_ill_conditioned():
    rng = np.random.default_rng(2)
    n = 40
    F = spd(rng, 2, n, cond=1e8)
    g = rng.standard_normal((2, n))
    res = trpo.conjugate_gradient(matvec(F), g, tol=1e-10, max_iter=2000)
    assert np.all(res.converged)
    for b in range(2):
        x_ref, its = scipy_cg(F[b], g[b], 1e-10, 2000)
        assert np.linalg.norm(g[b] - F[b] @ res.x[b]) <= 1e-8 * np.linalg.norm(g[b])
        np.testing.assert_allclose(res.x[b], x_ref, rtol=1e-4, atol=1e-4 * np.abs(x_ref).max())
        assert abs(int(res.iterations[b]) - its) <= max(2, its // 20)  # rounding moves late iterations


def test_cg_max_iter_status_matches_scipy_iterates():
    rng = np.random.default_rng(3)
    F = spd(rng, 2, 30, cond=1e3)
    g = rng.standard_normal((2, 30))
    res = trpo.conjugate_gradient(matvec(F), g, max_iter=4)
    assert list(res.status) == [trpo.CG_MAX_ITER] * 2 and list(res.iterations) == [4, 4]
    for b in range(2):
        x_ref, its = scipy_cg(F[b], g[b], 1e-10, 4)
        assert its == 4
        np.testing.assert_allclose(res.x[b], x_ref, rtol=1e-10)
        np.testing.assert_allclose(res.residual[b], np.linalg.norm(g[b] - F[b] @ res.x[b]), rtol=1e-8)
    zero = trpo.conjugate_gradient(matvec(F), g, max_iter=0)
    assert np.all(zero.x == 0) and list(zero.iterations) == [0, 0]


def test_cg_breakdown_on_non_pd_and_per_problem_status():
    rng = np.random.default_rng(4)
    n = 6
    F = np.stack([spd(rng, 1, n)[0], -np.eye(n), np.diag([1.0, 2.0, 3.0, -1.0, 1.0, 1.0]), spd(rng, 1, n)[0]])
    g = rng.standard_normal((4, n))
    g[3] = 0.0  # converged before any iteration
    res = trpo.conjugate_gradient(matvec(F), g, max_iter=50)
    assert [trpo.CG_STATUS[s] for s in res.status] == ["converged", "breakdown", "breakdown", "converged"]
    assert res.iterations[1] == 0 and np.all(res.x[1] == 0)  # -I: the first direction fails
    assert res.iterations[3] == 0 and np.all(res.x[3] == 0) and res.residual[3] == 0
    np.testing.assert_allclose(res.x[0], np.linalg.solve(F[0], g[0]), rtol=1e-8)
    assert list(res.converged) == [True, False, False, True]


def test_cg_converged_problems_stop_updating():
    """A problem that converged keeps its iterate while slower ones run on: the same floats as
    solving it alone."""
    rng = np.random.default_rng(5)
    n = 20
    F = spd(rng, 3, n, cond=1e4)
    F[0] = np.eye(n) * 2.0  # converges in one iteration
    g = rng.standard_normal((3, n))
    res = trpo.conjugate_gradient(matvec(F), g, max_iter=500)
    assert res.iterations[0] == 1 and res.iterations[1] > 5
    for b in range(3):
        alone = trpo.conjugate_gradient(matvec(F[b : b + 1]), g[b : b + 1], max_iter=500)
        np.testing.assert_array_equal(res.x[b], alone.x[0])
        assert res.iterations[b] == alone.iterations[0]


def test_cg_single_problem_and_x0():
    rng = np.random.default_rng(6)
    F = spd(rng, 1, 8)
    g = rng.standard_normal(8)
    res = trpo.conjugate_gradient(lambda V: V @ F[0].T, g, max_iter=50)
    assert res.x.shape == (8,) and res.status.shape == () and bool(res.converged)
    exact = np.linalg.solve(F[0], g)
    np.testing.assert_allclose(res.x, exact, rtol=1e-9)
    warm = trpo.conjugate_gradient(lambda V: V @ F[0].T, g, max_iter=50, x0=exact)
    assert int(warm.iterations) <= 1


def test_cg_torch_matches_numpy():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    F = spd(rng, 3, 15)
    g = rng.standard_normal((3, 15))
    ref = trpo.conjugate_gradient(matvec(F), g, damping=0.05, max_iter=30)
    Ft = torch.from_numpy(F)
    out = trpo.conjugate_gradient(
        lambda V: torch.einsum("bij,bj->bi", Ft, V), torch.from_numpy(g), damping=0.05, max_iter=30
    )
    assert isinstance(out.x, torch.Tensor) and out.x.dtype == torch.float64
    np.testing.assert_allclose(out.x.numpy(), ref.x, rtol=1e-12)
    np.testing.assert_array_equal(out.status.numpy(), ref.status)
    np.testing.assert_array_equal(out.iterations.numpy(), ref.iterations)


@pytest.mark.parametrize(
    "call, err, match",
    [
        (lambda mv, g: trpo.conjugate_gradient(mv, g.astype(np.int64)), TypeError, "g: expected a float32"),
        (lambda mv, g: trpo.conjugate_gradient(mv, g[None]), ValueError, "g: expected shape"),
        (lambda mv, g: trpo.conjugate_gradient(lambda V: V[:, :2], g), ValueError, "fvp: must return"),
        (lambda mv, g: trpo.conjugate_gradient(mv, g, damping=-1.0), ValueError, "damping"),
        (lambda mv, g: trpo.conjugate_gradient(mv, g, max_iter=-1), ValueError, "max_iter"),
        (lambda mv, g: trpo.conjugate_gradient(mv, g, tol=float("nan")), ValueError, "tol"),
        (lambda mv, g: trpo.conjugate_gradient(mv, np.full_like(g, np.nan)), ValueError, "g: contains NaN"),
        (lambda mv, g: trpo.conjugate_gradient(3, g), TypeError, "fvp: expected a callable"),
        (lambda mv, g: trpo.conjugate_gradient(lambda V: list(V), g), ValueError, "fvp: must return an array"),
    ],
)
def test_cg_errors(call, err, match):
    g = np.ones((2, 3))
    with pytest.raises(err, match=match):
        call(lambda V: V, g)


# ============================================================================ step size
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_natural_step_size(dtype):
    rng = np.random.default_rng(8)
    F = spd(rng, 5, 7)
    x = rng.standard_normal((5, 7))
    Fx = np.einsum("bij,bj->bi", F, x)
    delta = np.array([0.01, 0.02, 0.05, 0.1, 1.0])
    beta = trpo.natural_step_size(x.astype(dtype), Fx.astype(dtype), delta)
    assert beta.dtype == dtype
    ref = np.sqrt(2 * delta / np.einsum("bi,bi->b", x, Fx))
    np.testing.assert_allclose(beta, ref, rtol=1e-6 if dtype == np.float32 else 1e-14)
    # the quadratic KL of the step is max_kl
    step = beta[:, None] * x
    np.testing.assert_allclose(0.5 * np.einsum("bi,bij,bj->b", step, F, step), delta, rtol=1e-5)
    assert float(trpo.natural_step_size(x[0], Fx[0], 0.01)) == pytest.approx(ref[0] * np.sqrt(0.01 / delta[0]))


def test_natural_step_size_errors():
    x = np.ones((3, 2))
    Fx = np.ones((3, 2))
    Fx[1] = -1.0
    with pytest.raises(ValueError, match=r"problems \[1\] have x\^T F x <= 0"):
        trpo.natural_step_size(x, Fx, 0.01)
    with pytest.raises(ValueError, match=r"problems \[0, 1, 2\]"):
        trpo.natural_step_size(np.zeros((3, 2)), Fx, 0.01)
    with pytest.raises(ValueError, match="max_kl"):
        trpo.natural_step_size(x, np.ones((3, 2)), 0.0)
    with pytest.raises(ValueError, match="Fx: expected shape"):
        trpo.natural_step_size(x, np.ones((3, 3)), 0.01)


# ============================================================================ line search
def reference_line_search(f, kl, x0, full, max_kl, expected, accept_ratio=0.1, ratio=0.5, max_bt=10):
    f0 = f(x0)
    for k in range(max_bt):
        frac = ratio**k
        x = x0 + frac * full
        imp = f(x) - f0
        if imp > 0 and (expected is None or imp >= accept_ratio * frac * expected) and kl(x) <= max_kl:
            return x, True, frac, k
    return x0, False, 0.0, max_bt


def test_line_search_matches_plain_loop():
    """Quadratic surrogates with a cubic term (so the linear prediction overestimates) and a
    quadratic KL: some problems accept the full step, some backtrack, one never improves."""
    rng = np.random.default_rng(9)
    B, n = 6, 4
    H = spd(rng, B, n)
    c = rng.standard_normal((B, n))
    x0 = rng.standard_normal((B, n))

    def f_b(b, x):
        d = x - x0[b]
        return c[b] @ d - 0.5 * d @ H[b] @ d - 0.3 * (d**3).sum()

    def kl_b(b, x):
        d = x - x0[b]
        return 0.5 * d @ H[b] @ d

    f = lambda X: np.array([f_b(b, X[b]) for b in range(B)])
    kl = lambda X: np.array([kl_b(b, X[b]) for b in range(B)])
    full = np.linalg.solve(H, c[..., None])[..., 0] * np.array([0.5, 1, 2, 4, 8, 1])[:, None]
    full[5] = -full[5]  # uphill: never improves
    expected = np.einsum("bi,bi->b", c, full)
    res = trpo.line_search(f, kl, x0, full, max_kl=0.5, expected_improve=expected)
    fracs = []
    for b in range(B):
        xr, acc, frac, k = reference_line_search(
            lambda x, b=b: f_b(b, x), lambda x, b=b: kl_b(b, x), x0[b], full[b], 0.5, expected[b]
        )
        np.testing.assert_allclose(res.x[b], xr, rtol=1e-14)
        assert bool(res.accepted[b]) == acc and res.step_frac[b] == frac and res.backtracks[b] == k
        if acc:
            assert res.improvement[b] == pytest.approx(f_b(b, xr) - f_b(b, x0[b]))
            assert res.kl[b] == pytest.approx(kl_b(b, xr)) and res.kl[b] <= 0.5
        fracs.append(frac)
    assert len(set(fracs)) >= 3 and not res.accepted[5]  # full steps, backtracks and a failure


def test_line_search_kl_limit_alone_rejects():
    """A surrogate that improves everywhere along the step: only the KL limit backtracks."""
    x0 = np.zeros((1, 2))
    full = np.array([[4.0, 0.0]])
    res = trpo.line_search(lambda X: X[:, 0], lambda X: (X**2).sum(-1), x0, full, max_kl=1.0)
    assert res.step_frac[0] == 0.25 and res.backtracks[0] == 2 and res.kl[0] == 1.0
    res = trpo.line_search(lambda X: X[:, 0], lambda X: (X**2).sum(-1), x0, full, max_kl=1e-9, max_backtracks=3)
    assert not res.accepted[0] and res.backtracks[0] == 3 and np.all(res.x == 0)


@pytest.mark.parametrize(
    "kw, err, match",
    [
        (dict(backtrack_ratio=1.0), ValueError, "backtrack_ratio"),
        (dict(accept_ratio=-0.1), ValueError, "accept_ratio"),
        (dict(max_backtracks=0), ValueError, "max_backtracks"),
        (dict(max_kl=-1.0), ValueError, "max_kl"),
        (dict(expected_improve=np.ones(3)), ValueError, "expected_improve"),
    ],
)
def test_line_search_errors(kw, err, match):
    kw = {"max_kl": 0.1, **kw}
    with pytest.raises(err, match=match):
        trpo.line_search(lambda X: X.sum(-1), lambda X: X.sum(-1), np.zeros((2, 3)), np.ones((2, 3)), **kw)
    with pytest.raises(ValueError, match="surrogate: must return"):
        trpo.line_search(lambda X: X, lambda X: X.sum(-1), np.zeros((2, 3)), np.ones((2, 3)), max_kl=0.1)


# ============================================================================ linear-Gaussian policy
class LinearGaussian:
    """B linear-Gaussian policies a ~ N(W s + b, diag(exp(log_std))^2), parameters flattened
    as [W (k, d) row-major, b (k), log_std (k)]; batched NumPy float64 (the reference)."""

    def __init__(self, rng, B, N=64, d=3, k=2):
        self.B, self.N, self.d, self.k = B, N, d, k
        self.n = k * d + 2 * k
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
        self.adv = rng.standard_normal((B, N))
        self.logp0 = self.logp(self.theta0)

    def unpack(self, th):
        k, d = self.k, self.d
        return th[:, : k * d].reshape(-1, k, d), th[:, k * d : k * d + k], th[:, k * d + k :]

    def dist(self, th):
        W, b, ls = self.unpack(th)
        return np.einsum("bkd,bnd->bnk", W, self.S) + b[:, None], np.exp(ls)

    def logp(self, th):
        mu, std = self.dist(th)
        z = (self.A - mu) / std[:, None]
        return (-0.5 * z**2 - np.log(std)[:, None] - 0.5 * np.log(2 * np.pi)).sum(-1)

    def surrogate(self, th):
        return (np.exp(self.logp(th) - self.logp0) * self.adv).mean(-1)

    def kl(self, th):
        """Mean over states of KL(pi_theta0 || pi_theta)."""
        mu0, s0 = self.dist(self.theta0)
        mu, s = self.dist(th)
        t = np.log(s / s0)[:, None] + (s0[:, None] ** 2 + (mu0 - mu) ** 2) / (2 * s[:, None] ** 2) - 0.5
        return t.sum(-1).mean(-1)

    def grad(self):
        """Gradient of the surrogate at theta0: mean of grad log pi * advantage."""
        mu, std = self.dist(self.theta0)
        dmu = (self.A - mu) / std[:, None] ** 2 * self.adv[..., None] / self.N  # (B, N, k)
        dls = (((self.A - mu) / std[:, None]) ** 2 - 1) * self.adv[..., None] / self.N
        gW = np.einsum("bnk,bnd->bkd", dmu, self.S).reshape(self.B, -1)
        return np.concatenate([gW, dmu.sum(1), dls.sum(1)], 1)

    def fisher(self):
        """The Fisher matrix at theta0 (mean over states), explicitly."""
        B, k, d, n = self.B, self.k, self.d, self.n
        _, std = self.dist(self.theta0)
        F = np.zeros((B, n, n))
        s1 = np.concatenate([self.S, np.ones((B, self.N, 1))], -1)  # features of the mean: [s, 1]
        M = np.einsum("bni,bnj->bij", s1, s1) / self.N
        for b in range(B):
            for j in range(k):
                idx = [j * d + i for i in range(d)] + [k * d + j]
                F[b][np.ix_(idx, idx)] = M[b] / std[b, j] ** 2
            F[b, k * d + k :, k * d + k :] = 2 * np.eye(k)
        return F


def reference_trpo_step(pol, b, max_kl, damping, accept_ratio=0.1, ratio=0.5, max_bt=10):
    """A plain TRPO step on policy b: explicit Fisher, solve, step size, line search."""
    F = pol.fisher()[b] + damping * np.eye(pol.n)
    g = pol.grad()[b]
    x = np.linalg.solve(F, g)
    beta = np.sqrt(2 * max_kl / (x @ F @ x))
    full = beta * x

    def at(th):
        T = np.repeat(pol.theta0, 1, 0).copy()
        T[b] = th
        return T

    return reference_line_search(
        lambda th: pol.surrogate(at(th))[b],
        lambda th: pol.kl(at(th))[b],
        pol.theta0[b],
        full,
        max_kl,
        g @ full,
        accept_ratio,
        ratio,
        max_bt,
    ), beta


def test_linear_gaussian_reference_is_consistent():
    """The reference's analytic gradient and Fisher against finite differences."""
    pol = LinearGaussian(np.random.default_rng(10), 2)
    h = 1e-6
    E = np.eye(pol.n)
    fd = np.stack(
        [(pol.surrogate(pol.theta0 + h * E[i]) - pol.surrogate(pol.theta0 - h * E[i])) / (2 * h) for i in range(pol.n)],
        -1,
    )
    np.testing.assert_allclose(pol.grad(), fd, rtol=1e-6, atol=1e-8)
    h = 1e-4
    H = np.stack(
        [
            np.stack(
                [
                    (
                        pol.kl(pol.theta0 + h * (E[i] + E[j]))
                        - pol.kl(pol.theta0 + h * (E[i] - E[j]))
                        - pol.kl(pol.theta0 - h * (E[i] - E[j]))
                        + pol.kl(pol.theta0 - h * (E[i] + E[j]))
                    )
                    / (4 * h * h)
                    for j in range(pol.n)
                ],
                -1,
            )
            for i in range(pol.n)
        ],
        -2,
    )
    np.testing.assert_allclose(pol.fisher(), H, atol=1e-5)


@pytest.mark.parametrize("max_kl, accept_ratio", [(0.01, 0.1), (1.0, 0.8)])
def test_trpo_step_numpy_batched_matches_reference(max_kl, accept_ratio):
    pol = LinearGaussian(np.random.default_rng(11), 4)
    F = pol.fisher()
    out = trpo.trpo_step(
        pol.theta0,
        pol.grad(),
        matvec(F),
        pol.surrogate,
        pol.kl,
        max_kl=max_kl,
        damping=0.1,
        cg_iters=pol.n,
        accept_ratio=accept_ratio,
    )
    for b in range(pol.B):
        (x_ref, acc, frac, k), beta = reference_trpo_step(pol, b, max_kl, 0.1, accept_ratio)
        np.testing.assert_allclose(out.step_size[b], beta, rtol=1e-6)
        assert bool(out.search.accepted[b]) == acc and out.search.step_frac[b] == frac
        assert out.search.backtracks[b] == k
        np.testing.assert_allclose(out.x[b], x_ref, rtol=1e-6, atol=1e-9)
        if acc:
            assert out.search.improvement[b] > 0 and out.search.kl[b] <= max_kl
    if accept_ratio == 0.8:
        assert np.any(out.search.backtracks > 0)  # a demanding ratio makes a problem backtrack


# ============================================================================ torch
def _torch_policy(torch, pol, b):
    """Policy b of ``pol`` as a torch model; closures for the KL and the surrogate."""
    W0, b0, ls0 = (torch.from_numpy(a[b].copy()) for a in pol.unpack(pol.theta0[b : b + 1]))
    model = torch.nn.ParameterDict(
        {"W": torch.nn.Parameter(W0), "b": torch.nn.Parameter(b0), "log_std": torch.nn.Parameter(ls0)}
    )
    S, A = torch.from_numpy(pol.S[b]), torch.from_numpy(pol.A[b])
    adv, logp0 = torch.from_numpy(pol.adv[b]), torch.from_numpy(pol.logp0[b])

    def dist(W, bb, ls):
        return torch.distributions.Normal(S @ W.T + bb, ls.exp())

    old = dist(W0, b0, ls0)

    def kl():
        new = dist(model["W"], model["b"], model["log_std"])
        return torch.distributions.kl_divergence(old, new).sum(-1).mean()

    def unflat(th):
        k, d = pol.k, pol.d
        return th[: k * d].reshape(k, d), th[k * d : k * d + k], th[k * d + k :]

    def surrogate_at(th):  # (n,) -> scalar
        lp = dist(*unflat(th)).log_prob(A).sum(-1)
        return ((lp - logp0).exp() * adv).mean()

    def kl_at(th):
        return torch.distributions.kl_divergence(old, dist(*unflat(th))).sum(-1).mean()

    return model, kl, surrogate_at, kl_at


def test_torch_fvp_matches_explicit_fisher_and_kl_hessian():
    torch = pytest.importorskip("torch")
    from pygenmod.torch import fisher_vector_product

    pol = LinearGaussian(np.random.default_rng(12), 1)
    model, kl, _, kl_at = _torch_policy(torch, pol, 0)
    fvp = fisher_vector_product(kl, model, damping=0.0)
    V = torch.from_numpy(np.random.default_rng(13).standard_normal((5, pol.n)))
    F = pol.fisher()[0]
    np.testing.assert_allclose(fvp(V).numpy(), V.numpy() @ F.T, rtol=1e-10, atol=1e-12)
    H = torch.autograd.functional.hessian(kl_at, torch.from_numpy(pol.theta0[0])).numpy()
    np.testing.assert_allclose(H, F, atol=1e-12)
    one = fvp(V[0])
    assert one.shape == (pol.n,)
    np.testing.assert_allclose(one.numpy(), F @ V[0].numpy(), rtol=1e-10)
    damped = fisher_vector_product(kl, model.parameters(), damping=0.1)
    np.testing.assert_allclose(damped(V).numpy(), V.numpy() @ (F + 0.1 * np.eye(pol.n)).T, rtol=1e-10)
    with pytest.raises(ValueError, match="v: expected"):
        fvp(V[:, :3])
    with pytest.raises(ValueError, match="kl: must return a scalar"):
        fisher_vector_product(lambda: torch.ones(2, requires_grad=True) * 1, model)


def test_torch_trpo_step_matches_reference():
    """A whole TRPO step on a torch linear-Gaussian policy (torch FVP, torch surrogate and KL,
    float64) against the plain NumPy reference."""
    torch = pytest.importorskip("torch")
    from torch.nn.utils import parameters_to_vector

    from pygenmod.torch import fisher_vector_product

    pol = LinearGaussian(np.random.default_rng(14), 1)
    model, kl, surrogate_at, kl_at = _torch_policy(torch, pol, 0)
    theta0 = parameters_to_vector(model.parameters()).detach()
    np.testing.assert_array_equal(theta0.numpy(), pol.theta0[0])
    th = theta0.clone().requires_grad_(True)
    g = torch.autograd.grad(surrogate_at(th), th)[0]
    np.testing.assert_allclose(g.numpy(), pol.grad()[0], rtol=1e-10, atol=1e-13)
    fvp = fisher_vector_product(kl, model)
    with torch.no_grad():
        out = trpo.trpo_step(
            theta0,
            g,
            fvp,
            lambda T: torch.stack([surrogate_at(t) for t in T]),
            lambda T: torch.stack([kl_at(t) for t in T]),
            max_kl=0.01,
            damping=0.1,
            cg_iters=pol.n,
        )
    (x_ref, acc, frac, k), beta = reference_trpo_step(pol, 0, 0.01, 0.1)
    assert isinstance(out.x, torch.Tensor) and out.x.shape == (pol.n,)
    assert bool(out.search.accepted) == acc and float(out.search.step_frac) == frac
    np.testing.assert_allclose(float(out.step_size), beta, rtol=1e-8)
    np.testing.assert_allclose(out.x.numpy(), x_ref, rtol=1e-8, atol=1e-12)


def test_demo_section_agrees_with_its_reference():
    import io
    import re

    from pygenmod.demos import _report
    from pygenmod.demos import trpo as demo

    buf = io.StringIO()
    demo.run(_report.Report(buf))
    out = buf.getvalue()
    worst = float(re.search(r"worst \|theta - explicit reference\| = (\S+)", out).group(1))
    assert worst < 1e-9, out
    assert "converged" in out


def test_callables_must_return_the_inputs_array_type():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="fvp: must return the array type"):
        trpo.conjugate_gradient(lambda V: torch.from_numpy(V), np.ones((2, 3)))
    with pytest.raises(TypeError, match="fvp: must return the array type"):
        trpo.conjugate_gradient(lambda V: V.numpy(), torch.ones(2, 3, dtype=torch.float64))
