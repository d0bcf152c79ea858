"""Reparameterized sampling, KL and log-densities against float64 NumPy and torch.distributions,
their VJPs against torch autograd, and the noise convention, on every backend."""

import math

import numpy as np
import pytest
from conftest import tol

from pygenmod import random as R
from pygenmod import sampling as S

torch = pytest.importorskip("torch")
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _t(a):
    return torch.tensor(np.asarray(a, np.float64), requires_grad=True)


def _sigma(p, kind):
    p = np.asarray(p, np.float64)
    return {"logvar": np.exp(0.5 * p), "log_std": np.exp(p), "std": p}[kind]


def _gauss(rng, B, D, dtype, kind="logvar"):
    mu = rng.standard_normal((B, D))
    p = rng.uniform(-1, 1, (B, D))
    if kind == "std":
        p = np.exp(p)
    return mu.astype(dtype), p.astype(dtype)


KW = {"logvar": lambda p: {"logvar": p}, "log_std": lambda p: {"log_std": p}, "std": lambda p: {"std": p}}


# ------------------------------------------------------------------ diagonal sampling
@pytest.mark.parametrize("kind", ["logvar", "log_std", "std"])
@pytest.mark.parametrize("B,D", [(1, 1), (3, 7), (5, 64), (0, 4), (2, 13)])
def test_rsample_normal_is_mu_plus_sigma_eps(backend, dtype, rng, kind, B, D):
    mu, p = _gauss(rng, B, D, dtype, kind)
    mu_, p_ = backend.asarray(mu), backend.asarray(p)
    z, eps = S.rsample_normal(mu_, seed=3, return_eps=True, **KW[kind](p_))
    z, eps = backend.numpy(z), backend.numpy(eps)
    assert z.dtype == dtype and z.shape == (B, D)
    np.testing.assert_allclose(z, mu + _sigma(p, kind) * eps.astype(np.float64), **tol(dtype))
    # eps is the package's normal stream: row b = stream b, elements 0..D-1
    np.testing.assert_allclose(eps, R.normal(3, (B, D), dtype=dtype), rtol=1e-5, atol=1e-6)


def test_rsample_samples_axis_and_offset(backend, dtype, rng):
    mu, lv = _gauss(rng, 4, 6, dtype)
    z, eps = S.rsample_normal(backend.asarray(mu), backend.asarray(lv), seed=9, n_samples=3, offset=2, return_eps=True)
    eps = backend.numpy(eps)
    assert eps.shape == (3, 4, 6)
    stream = R.normal(9, (4, 2 + 3 * 6), dtype=dtype)  # row b: elements offset + s * D + d
    for s in range(3):
        np.testing.assert_allclose(eps[s], stream[:, 2 + s * 6 : 2 + (s + 1) * 6], rtol=1e-5, atol=1e-6)


def test_row_sample_independent_of_batch(backend, dtype, rng):
    mu, lv = _gauss(rng, 33, 10, dtype)
    big = backend.numpy(S.rsample_normal(backend.asarray(mu), backend.asarray(lv), seed=1, n_samples=2))
    for B in (1, 5, 32):
        small = backend.numpy(S.rsample_normal(backend.asarray(mu[:B]), backend.asarray(lv[:B]), seed=1, n_samples=2))
        np.testing.assert_array_equal(small, big[:, :B])
    row = backend.numpy(S.rsample_normal(backend.asarray(mu[7]), backend.asarray(lv[7]), seed=1, stream=7))
    np.testing.assert_array_equal(row, big[0, 7])


def test_thread_count_invariance(rng):
    from pygenmod import _backend

    mu, lv = _gauss(rng, 700, 64, np.float32)  # large enough for the parallel path
    L = _tril(rng, 700, 16, np.float32)
    before = _backend.get_num_threads()
    try:
        _backend.set_num_threads(1)
        a = S.normal_head(mu, lv, seed=3, n_samples=2, log_q=True)
        m1 = S.mvn_head(mu[:, :16], L, seed=3, log_q=True)
        _backend.set_num_threads(2)
        b = S.normal_head(mu, lv, seed=3, n_samples=2, log_q=True)
        m2 = S.mvn_head(mu[:, :16], L, seed=3, log_q=True)
    finally:
        _backend.set_num_threads(before)
    for x, y in zip(a[:3] + m1[:3], b[:3] + m2[:3]):
        np.testing.assert_array_equal(x, y)


def test_backends_agree(backend, dtype, rng):
    mu, lv = _gauss(rng, 9, 11, dtype)
    ref = S.normal_head(mu, lv, seed=4, n_samples=2, log_q=True)
    got = S.normal_head(backend.asarray(mu), backend.asarray(lv), seed=4, n_samples=2, log_q=True)
    t = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    for a, b in zip(ref[:3], got[:3]):
        np.testing.assert_allclose(backend.numpy(b), a, **t)


def test_user_eps_and_clamp(backend, dtype, rng):
    mu, lv = _gauss(rng, 3, 5, dtype)
    lv[0, 0], lv[1, 1] = 40, -40
    eps = rng.standard_normal((3, 5)).astype(dtype)
    z = backend.numpy(
        S.rsample_normal(backend.asarray(mu), backend.asarray(lv), eps=backend.asarray(eps), clamp=(-6, 3))
    )
    want = mu + np.exp(0.5 * np.clip(lv.astype(np.float64), -6, 3)) * eps
    np.testing.assert_allclose(z, want, **tol(dtype))


def _exp_points(rng):
    """Scale arguments x over float64's whole exp range, in random order."""
    x = np.concatenate(
        [
            rng.uniform(-746, 710, 4000),
            rng.uniform(-1e-3, 1e-3, 500),  # n = 0
            rng.uniform(-745.2, -708, 1000),  # subnormal results
            rng.uniform(709, 709.8, 200),
            [0.0, -0.0, 5e-324, 709.782712893384, 709.7827128933841, -745.1332191019411, -708.3964185322641],
            [-1e5, 1e5],  # (infinite inputs are errors)
        ]
    )
    return rng.permutation(x)


def _exp_reference(x):
    """exp(x) per element by the C library (math.exp; inf past the overflow)."""

    def one(v):
        try:
            return math.exp(v)
        except OverflowError:
            return math.inf

    return np.array([one(v) for v in x.ravel()]).reshape(x.shape)


# rows of every length up to two AVX-512 vectors and past them: random points reach the
# vector body and the scalar tail alike
_EXP_ROW_LENGTHS = (1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 1000)


def test_float64_scale_exp_over_the_whole_range(backend, rng):
    """With eps = 1 and mu = 0 the sample is exp(logvar / 2) itself: within 1 ulp of the C
    library's exp (2 on CUDA, whose exp differs) from the subnormal results to the overflow, 0
    and inf exactly where exp gives them, at every position of a row."""
    x = _exp_points(rng)
    for D in _EXP_ROW_LENGTHS + (x.size,):
        xs = np.roll(x, D)[:D].reshape(1, D)
        want = _exp_reference(xs)
        z = backend.numpy(
            S.rsample_normal(
                backend.asarray(np.zeros_like(xs)), backend.asarray(2 * xs), eps=backend.asarray(np.ones_like(xs))
            )
        )
        edge = ~np.isfinite(want) | (want == 0)
        np.testing.assert_array_equal(z[edge], want[edge])
        ulp = np.abs(z[~edge] - want[~edge]) / np.spacing(want[~edge])
        assert ulp.max(initial=0) <= (2 if backend.name == "cuda" else 1)


def test_float64_scale_exp_drawn_noise_and_backward(backend, rng):
    """The same exp on the sampling path that draws its own noise (z = exp(x) eps) and in the
    backward pass (d z / d logvar = exp(x) eps / 2), over the range where the products stay
    normal floats."""
    x = rng.uniform(-700, 700, 2000)
    for D in _EXP_ROW_LENGTHS:
        xs = np.roll(x, D)[:D].reshape(1, D)
        mu, lv = backend.asarray(np.zeros_like(xs)), backend.asarray(2 * xs)
        z, eps = S.rsample_normal(mu, lv, seed=5, return_eps=True)
        z, eps = backend.numpy(z), backend.numpy(eps)
        want = _exp_reference(xs) * eps
        np.testing.assert_allclose(z, want, rtol=1e-15, atol=0)
        _, g = S.normal_head_backward(mu, lv, grad_z=backend.asarray(np.ones_like(xs)), seed=5)
        np.testing.assert_allclose(backend.numpy(g), 0.5 * want, rtol=1e-15, atol=0)


def test_kl_backward_zero_upstream_gradient_where_sigma_squared_overflows(backend):
    """A row whose KL gradient is 0 gets zero gradients even where sigma**2 (or the prior's
    ratio) overflows: no 0 * inf NaN, on every backend (kl_normal_backward and the ELBO's KL)."""
    mu = np.array([[0.5, -1.0, 2.0], [0.5, -1.0, 2.0]])
    lv = np.array([[800.0, 0.0, -1.0], [800.0, 0.0, -1.0]])  # exp(800) overflows
    plv = np.zeros_like(lv)
    g = np.array([0.0, 1.0])
    out = S.kl_normal_backward(
        backend.asarray(mu), backend.asarray(lv), None, backend.asarray(plv), grad_kl=backend.asarray(g)
    )
    dmu, dlv, _, dplv = (backend.numpy(o) for o in out)
    for a in (dmu, dlv, dplv):
        np.testing.assert_array_equal(a[0], 0.0)
    assert np.isfinite(dmu[1]).all() and np.isinf(dlv[1, 0])  # the asked-for row keeps its overflow
    from pygenmod import elbo

    x = np.zeros((2, 4))
    dec = np.zeros((1, 2, 4))
    grads = elbo.elbo_backward(
        backend.asarray(x), backend.asarray(dec), backend.asarray(mu), backend.asarray(lv), beta=0.0,
        grad_elbo=backend.asarray(np.ones(2)),
    )  # fmt: skip
    assert np.isfinite(backend.numpy(grads.mu)).all() and np.isfinite(backend.numpy(grads.scale)).all()


def test_out_buffer(backend, rng):
    mu, lv = _gauss(rng, 5, 7, np.float32)
    buf = backend.asarray(np.empty((2, 5, 7), np.float32))
    z = S.rsample_normal(backend.asarray(mu), backend.asarray(lv), seed=3, n_samples=2, out=buf)
    np.testing.assert_array_equal(
        backend.numpy(buf),
        backend.numpy(S.rsample_normal(backend.asarray(mu), backend.asarray(lv), seed=3, n_samples=2)),
    )
    assert backend.numpy(z).shape == (2, 5, 7)
    with pytest.raises(ValueError, match="out"):
        S.rsample_normal(backend.asarray(mu), backend.asarray(lv), out=buf)
    with pytest.raises(TypeError, match="out"):
        S.rsample_normal(backend.asarray(mu), backend.asarray(lv), out=backend.asarray(np.empty((5, 7))))
    L = np.broadcast_to(np.eye(7, dtype=np.float32), (5, 7, 7)).copy()
    zb = backend.asarray(np.empty((5, 7), np.float32))
    S.rsample_mvn(backend.asarray(mu), backend.asarray(L), seed=2, out=zb)
    np.testing.assert_allclose(
        backend.numpy(zb), backend.numpy(S.rsample_mvn(backend.asarray(mu), backend.asarray(L), seed=2))
    )


def test_moments_and_ks_of_z(rng):
    from scipy import stats

    mu = np.array([[1.5, -2.0]])
    lv = np.log(np.array([[0.25, 4.0]]))
    z = S.rsample_normal(mu, lv, seed=12, n_samples=100_000)[:, 0]
    np.testing.assert_allclose(z.mean(0), mu[0], atol=5 * 2 / np.sqrt(1e5))
    np.testing.assert_allclose(z.std(0), [0.5, 2.0], rtol=0.02)
    assert stats.kstest((z[:, 0] - 1.5) / 0.5, "norm").pvalue > 1e-3
    assert stats.kstest((z[:, 1] + 2) / 2, "norm").pvalue > 1e-3


# ------------------------------------------------------------------ KL and log-densities
@pytest.mark.parametrize("kind", ["logvar", "log_std", "std"])
def test_kl_normal_vs_numpy_and_torch(backend, dtype, rng, kind):
    mu, p = _gauss(rng, 6, 9, dtype, kind)
    pm, pp = _gauss(rng, 6, 9, dtype, kind)
    s1, s2 = _sigma(p, kind), _sigma(pp, kind)
    m64, pm64 = mu.astype(np.float64), pm.astype(np.float64)
    ref_std = (0.5 * (s1**2 + m64**2 - 1) - np.log(s1)).sum(-1)
    ref = (np.log(s2 / s1) + (s1**2 + (m64 - pm64) ** 2) / (2 * s2**2) - 0.5).sum(-1)
    got_std = backend.numpy(S.kl_normal(backend.asarray(mu), **KW[kind](backend.asarray(p))))
    prior = {"prior_" + k: backend.asarray(v) for k, v in KW[kind](pp).items()}
    got = backend.numpy(
        S.kl_normal(backend.asarray(mu), prior_mu=backend.asarray(pm), **KW[kind](backend.asarray(p)), **prior)
    )
    np.testing.assert_allclose(got_std, ref_std, **tol(dtype))
    np.testing.assert_allclose(got, ref, **tol(dtype))
    td = torch.distributions
    tk = (
        td.kl_divergence(
            td.Normal(torch.tensor(m64), torch.tensor(s1)), td.Normal(torch.tensor(pm64), torch.tensor(s2))
        )
        .sum(-1)
        .numpy()
    )
    np.testing.assert_allclose(got, tk, **tol(dtype))


def test_kl_prior_broadcast(rng):
    mu, lv = _gauss(rng, 4, 3, np.float64)
    a = S.kl_normal(mu, lv, prior_mu=0.5, prior_logvar=np.array([0.1, 0.2, 0.3]))
    b = S.kl_normal(mu, lv, prior_mu=np.full((4, 3), 0.5), prior_logvar=np.tile([0.1, 0.2, 0.3], (4, 1)))
    np.testing.assert_allclose(a, b)


def test_normal_log_prob_vs_torch(backend, dtype, rng):
    mu, lv = _gauss(rng, 5, 8, dtype)
    x = rng.standard_normal((3, 5, 8)).astype(dtype)
    got = backend.numpy(S.normal_log_prob(backend.asarray(x), backend.asarray(mu), backend.asarray(lv)))
    ref = (
        torch.distributions.Normal(
            torch.tensor(mu, dtype=torch.float64), torch.tensor(np.exp(0.5 * lv.astype(np.float64)))
        )
        .log_prob(torch.tensor(x, dtype=torch.float64))
        .sum(-1)
        .numpy()
    )
    assert got.shape == (3, 5)
    np.testing.assert_allclose(got, ref, **tol(dtype))


@pytest.mark.parametrize("kind", ["logvar", "log_std", "std"])
@pytest.mark.parametrize("n_samples,use_out", [(None, False), (None, True), (3, False)])
def test_rsample_equals_head_z_bitwise(backend, dtype, rng, kind, n_samples, use_out):
    """rsample_normal's kernel pass skips the KL and log q sums; its z is normal_head's, bitwise
    (fast path, general path with out=, several samples)."""
    mu, lv = _gauss(rng, 37, 70, dtype)
    p = np.abs(lv) + 0.1 if kind == "std" else lv
    args = dict(seed=9, n_samples=n_samples, stream=2, offset=5, **KW[kind](backend.asarray(p)))
    h = S.normal_head(backend.asarray(mu), **args)
    out = backend.asarray(np.empty(np.shape(h.z), dtype)) if use_out else None
    z = S.rsample_normal(backend.asarray(mu), out=out, **args)
    assert backend.numpy(z).tobytes() == backend.numpy(h.z).tobytes()


def test_fused_head_matches_parts(backend, dtype, rng):
    mu, lv = _gauss(rng, 7, 12, dtype)
    h = S.normal_head(backend.asarray(mu), backend.asarray(lv), seed=5, n_samples=2, log_q=True, return_eps=True)
    z = backend.numpy(h.z)
    np.testing.assert_allclose(backend.numpy(h.kl), S.kl_normal(mu, lv), **tol(dtype))
    np.testing.assert_allclose(
        backend.numpy(h.log_q), S.normal_log_prob(z, mu, lv), rtol=1e-4 if dtype == np.float32 else 1e-9, atol=1e-4
    )


# ------------------------------------------------------------------ gradients vs torch autograd
def _torch_head(mu, p, kind, eps, gz, gkl, glq, clamp=None):
    mu_t, p_t = _t(mu), _t(p)
    pc = p_t if clamp is None else p_t.clamp(*clamp)
    sig = {"logvar": lambda: torch.exp(0.5 * pc), "log_std": lambda: torch.exp(pc), "std": lambda: pc}[kind]()
    e = torch.tensor(np.asarray(eps, np.float64))
    z = mu_t + sig * e
    kl = (0.5 * (sig**2 + mu_t**2 - 1) - torch.log(sig)).sum(-1)
    lq = torch.distributions.Normal(mu_t, sig).log_prob(z).sum(-1)
    loss = (z * torch.tensor(gz)).sum() + (kl * torch.tensor(gkl)).sum() + (lq * torch.tensor(glq)).sum()
    loss.backward()
    return mu_t.grad.numpy(), p_t.grad.numpy()


@pytest.mark.parametrize("kind", ["logvar", "log_std", "std"])
def test_normal_head_backward_vs_autograd(backend, dtype, rng, kind):
    B, D, Sn = 4, 5, 3
    mu, p = _gauss(rng, B, D, dtype, kind)
    clamp = (-0.5, 0.5) if kind == "logvar" else None
    gz = rng.standard_normal((Sn, B, D))
    gkl, glq = rng.standard_normal(B), rng.standard_normal((Sn, B))
    kw = KW[kind](backend.asarray(p))
    h = S.normal_head(backend.asarray(mu), seed=2, n_samples=Sn, return_eps=True, clamp=clamp, **kw)
    dmu, dp = S.normal_head_backward(
        backend.asarray(mu),
        grad_z=backend.asarray(gz.astype(dtype)),
        grad_kl=backend.asarray(gkl.astype(dtype)),
        grad_log_q=backend.asarray(glq.astype(dtype)),
        seed=2,
        n_samples=Sn,
        clamp=clamp,
        **kw,
    )
    rmu, rp = _torch_head(mu, p, kind, backend.numpy(h.eps), gz, gkl, glq, clamp)
    t = tol(dtype) if dtype == np.float64 else dict(rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(backend.numpy(dmu), rmu, **t)
    np.testing.assert_allclose(backend.numpy(dp), rp, **t)


def test_kl_and_log_prob_backward_vs_autograd(backend, rng):
    mu, lv = _gauss(rng, 4, 3, np.float64)
    pm, plv = _gauss(rng, 4, 3, np.float64)
    g = rng.standard_normal(4)
    xp = backend.asarray
    dmu, dlv, dpm, dplv = S.kl_normal_backward(xp(mu), xp(lv), xp(pm), xp(plv), grad_kl=xp(g))
    t = [_t(a) for a in (mu, lv, pm, plv)]
    td = torch.distributions
    kl = td.kl_divergence(td.Normal(t[0], torch.exp(0.5 * t[1])), td.Normal(t[2], torch.exp(0.5 * t[3]))).sum(-1)
    (kl * torch.tensor(g)).sum().backward()
    for a, b in zip((dmu, dlv, dpm, dplv), t):
        np.testing.assert_allclose(backend.numpy(a), b.grad.numpy(), rtol=1e-9, atol=1e-12)
    x = rng.standard_normal((2, 4, 3))
    gx = rng.standard_normal((2, 4))
    dx, dmu, dlv = S.normal_log_prob_backward(xp(x), xp(mu), xp(lv), grad_log_prob=xp(gx))
    tx, tm, tl = _t(x), _t(mu), _t(lv)
    lp = td.Normal(tm, torch.exp(0.5 * tl)).log_prob(tx).sum(-1)
    (lp * torch.tensor(gx)).sum().backward()
    for a, b in zip((dx, dmu, dlv), (tx, tm, tl)):
        np.testing.assert_allclose(backend.numpy(a), b.grad.numpy(), rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------ full covariance
def _std_mvn(D):
    return torch.distributions.MultivariateNormal(
        torch.zeros(D, dtype=torch.float64), scale_tril=torch.eye(D, dtype=torch.float64)
    )


def _tril(rng, B, D, dtype):
    A = rng.standard_normal((B, D, D)) * 0.3
    L = np.tril(A)
    L[:, np.arange(D), np.arange(D)] = np.exp(rng.uniform(-0.5, 0.5, (B, D)))
    return L.astype(dtype)


@pytest.mark.parametrize("shared", [False, True])
def test_mvn_head_vs_torch(backend, dtype, rng, shared):
    B, D = 6, 5
    mu = rng.standard_normal((B, D)).astype(dtype)
    L = _tril(rng, 1 if shared else B, D, dtype)
    Larg = L[0] if shared else L
    h = S.mvn_head(backend.asarray(mu), backend.asarray(Larg), seed=8, n_samples=2, log_q=True, return_eps=True)
    z, eps = backend.numpy(h.z), backend.numpy(h.eps).astype(np.float64)
    L64 = np.broadcast_to(L.astype(np.float64), (B, D, D))
    np.testing.assert_allclose(z, mu + np.einsum("bij,sbj->sbi", L64, eps), **tol(dtype))
    np.testing.assert_allclose(
        eps, R.normal(8, (B, 2 * D), dtype=dtype).reshape(B, 2, D).transpose(1, 0, 2), rtol=1e-5, atol=1e-6
    )
    td = torch.distributions
    q = td.MultivariateNormal(torch.tensor(mu, dtype=torch.float64), scale_tril=torch.tensor(L64))
    p0 = _std_mvn(D)
    np.testing.assert_allclose(backend.numpy(h.kl), td.kl_divergence(q, p0).numpy(), **tol(dtype))
    np.testing.assert_allclose(
        backend.numpy(h.log_q),
        q.log_prob(torch.tensor(z, dtype=torch.float64)).numpy(),
        rtol=1e-4 if dtype == np.float32 else 1e-9,
        atol=1e-4,
    )


@pytest.mark.parametrize("shared", [False, True])
def test_mvn_head_backward_vs_autograd(backend, rng, shared):
    B, D, Sn = 3, 4, 2
    mu = rng.standard_normal((B, D))
    L = _tril(rng, 1 if shared else B, D, np.float64)
    Larg = L[0] if shared else L
    gz, gkl, glq = rng.standard_normal((Sn, B, D)), rng.standard_normal(B), rng.standard_normal((Sn, B))
    h = S.mvn_head(backend.asarray(mu), backend.asarray(Larg), seed=1, n_samples=Sn, return_eps=True)
    dmu, dL = S.mvn_head_backward(
        backend.asarray(mu),
        backend.asarray(Larg),
        grad_z=backend.asarray(gz),
        grad_kl=backend.asarray(gkl),
        grad_log_q=backend.asarray(glq),
        seed=1,
        n_samples=Sn,
    )
    tm, tL = _t(mu), _t(Larg)
    e = torch.tensor(backend.numpy(h.eps))
    Lt = torch.tril(tL)
    z = tm + torch.einsum("ij,sbj->sbi" if shared else "bij,sbj->sbi", Lt, e)
    td = torch.distributions
    q = td.MultivariateNormal(tm, scale_tril=Lt)
    kl = td.kl_divergence(q, _std_mvn(D))
    lq = q.log_prob(z)
    ((z * torch.tensor(gz)).sum() + (kl * torch.tensor(gkl)).sum() + (lq * torch.tensor(glq)).sum()).backward()
    np.testing.assert_allclose(backend.numpy(dmu), tm.grad.numpy(), rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(backend.numpy(dL), tL.grad.numpy(), rtol=1e-9, atol=1e-10)
    assert backend.numpy(dL).shape == Larg.shape


@pytest.mark.parametrize("B", [5, 3000])  # the shared-L sum below / above the parallel threshold
def test_mvn_head_backward_shared_sum_is_fixed_order(backend, rng, B):
    # A shared L's gradient is a sum over rows: fixed chunks, then the chunks in order, so it is
    # the same for every thread count and run (and matches a float64 NumPy reference).
    import pygenmod

    D, Sn = 4, 2
    mu, L = rng.standard_normal((B, D)), _tril(rng, 1, D, np.float64)[0]
    eps = rng.standard_normal((Sn, B, D))
    gz, gkl, glq = rng.standard_normal((Sn, B, D)), rng.standard_normal(B), rng.standard_normal((Sn, B))
    grads = dict(grad_z=gz, grad_kl=gkl, grad_log_q=glq)
    args = {k: backend.asarray(v) for k, v in dict(eps=eps, **grads).items()}
    n0, runs = pygenmod.get_num_threads(), []
    try:
        for threads in (1, 2, 3, 3):
            pygenmod.set_num_threads(threads)
            dmu, dL = S.mvn_head_backward(backend.asarray(mu), backend.asarray(L), n_samples=Sn, **args)
            runs.append((backend.numpy(dmu), backend.numpy(dL)))
    finally:
        pygenmod.set_num_threads(n0)
    for dmu, dL in runs[1:]:
        np.testing.assert_array_equal(dmu, runs[0][0])
        np.testing.assert_array_equal(dL, runs[0][1])
    # d/dL of gkl * KL(N(mu, L L^T) || N(0, I)) + glq * log q + gz . (mu + L eps), q = N(mu, L L^T)
    gsum = glq.sum(0)
    ref = np.tril(gkl.sum() * L - np.diag((gkl.sum() + gsum.sum()) / np.diag(L)) + np.einsum("sbi,sbj->ij", gz, eps))
    np.testing.assert_allclose(runs[0][1], ref, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(runs[0][0], gkl[:, None] * mu + gz.sum(0), rtol=1e-12, atol=1e-12)


def test_kl_mvn_general_and_backward(rng):
    B, D = 4, 3
    m1, m2 = rng.standard_normal((B, D)), rng.standard_normal((B, D))
    L1, L2 = _tril(rng, B, D, np.float64), _tril(rng, B, D, np.float64)
    td = torch.distributions
    t = [_t(a) for a in (m1, L1, m2, L2)]
    kl_t = td.kl_divergence(td.MultivariateNormal(t[0], scale_tril=t[1]), td.MultivariateNormal(t[2], scale_tril=t[3]))
    np.testing.assert_allclose(S.kl_mvn(m1, L1, m2, L2), kl_t.detach().numpy(), rtol=1e-10)
    np.testing.assert_allclose(
        S.kl_mvn(m1, L1),
        td.kl_divergence(td.MultivariateNormal(t[0], scale_tril=t[1]), _std_mvn(D)).detach().numpy(),
        rtol=1e-10,
    )
    g = rng.standard_normal(B)
    (kl_t * torch.tensor(g)).sum().backward()
    for a, b in zip(S.kl_mvn_backward(m1, L1, m2, L2, grad_kl=g), t):
        np.testing.assert_allclose(a, np.tril(b.grad.numpy()) if a.ndim == 3 else b.grad.numpy(), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("shared", [False, True])
def test_mahalanobis_and_mvn_log_prob(backend, rng, shared):
    B, D = 5, 4
    mu = rng.standard_normal((B, D))
    x = rng.standard_normal((2, B, D))
    L = _tril(rng, 1 if shared else B, D, np.float64)
    Larg = L[0] if shared else L
    Sig = L @ np.swapaxes(L, -1, -2)
    d = x - mu
    ref = np.einsum("sbi,bij,sbj->sb", d, np.broadcast_to(np.linalg.inv(Sig), (B, D, D)), d)
    got = backend.numpy(S.mahalanobis(backend.asarray(x), backend.asarray(mu), backend.asarray(Larg)))
    np.testing.assert_allclose(got, ref, rtol=1e-10)
    # precision factor: Sigma^-1 = U U^T
    U = np.linalg.cholesky(np.linalg.inv(Sig))
    got_p = backend.numpy(
        S.mahalanobis(backend.asarray(x), backend.asarray(mu), precision_tril=backend.asarray(U[0] if shared else U))
    )
    np.testing.assert_allclose(got_p, ref, rtol=1e-9)
    q = torch.distributions.MultivariateNormal(torch.tensor(mu), scale_tril=torch.tensor(np.broadcast_to(L, (B, D, D))))
    np.testing.assert_allclose(
        backend.numpy(S.mvn_log_prob(backend.asarray(x), backend.asarray(mu), backend.asarray(Larg))),
        q.log_prob(torch.tensor(x)).numpy(),
        rtol=1e-10,
    )
    # VJPs
    g = rng.standard_normal((2, B))
    for fn, bw, kw in (
        (S.mahalanobis, S.mahalanobis_backward, "scale_tril"),
        (S.mahalanobis, S.mahalanobis_backward, "precision_tril"),
        (S.mvn_log_prob, S.mvn_log_prob_backward, "scale_tril"),
    ):
        F = Larg if kw == "scale_tril" else (U[0] if shared else U)
        tx, tm, tF = _t(x), _t(mu), _t(F)
        Ft = torch.tril(tF)
        dd = tx - tm
        if fn is S.mvn_log_prob:
            out = torch.distributions.MultivariateNormal(tm, scale_tril=Ft).log_prob(tx)
        elif kw == "scale_tril":
            y = torch.linalg.solve_triangular(Ft.expand(2, B, D, D), dd[..., None], upper=False)[..., 0]
            out = (y * y).sum(-1)
        else:
            y = torch.einsum("ji,sbj->sbi" if shared else "bji,sbj->sbi", Ft, dd)
            out = (y * y).sum(-1)
        (out * torch.tensor(g)).sum().backward()
        args = (
            {kw: backend.asarray(F), "grad_mahalanobis": backend.asarray(g)}
            if fn is S.mahalanobis
            else {"grad_log_prob": backend.asarray(g)}
        )
        res = bw(
            backend.asarray(x), backend.asarray(mu), *([backend.asarray(F)] if fn is S.mvn_log_prob else []), **args
        )
        for a, b in zip(res, (tx, tm, tF)):
            np.testing.assert_allclose(backend.numpy(a), b.grad.numpy(), rtol=1e-8, atol=1e-10)


def test_scale_tril_from_cov(rng):
    D = 6
    A = rng.standard_normal((3, D, D))
    cov = A @ np.swapaxes(A, -1, -2) + 0.1 * np.eye(D)
    L = S.scale_tril_from_cov(cov)
    np.testing.assert_allclose(L @ np.swapaxes(L, -1, -2), cov, rtol=1e-10, atol=1e-10)
    v = rng.standard_normal((D, 2))
    sing = np.stack([v @ v.T, -np.eye(D), np.eye(D)])  # rank 2, negative definite, fine
    L = S.scale_tril_from_cov(sing)
    assert np.isfinite(L).all() and (np.diagonal(L, axis1=-2, axis2=-1) > 0).all()
    np.testing.assert_allclose(L[0] @ L[0].T, sing[0], atol=1e-4)
    np.testing.assert_allclose(L[2], np.eye(D))
    S.check_scale_tril(L)
    with pytest.raises(ValueError, match="not positive definite"):
        S.scale_tril_from_cov(-np.eye(3), eigen_fallback=False)


# ------------------------------------------------------------------ gumbel-softmax
def test_gumbel_softmax(backend, dtype, rng):
    logits = np.log(np.array([[0.1, 0.2, 0.7]] * 20000)).astype(dtype)
    out = S.gumbel_softmax(backend.asarray(logits), temperature=0.5, seed=3, hard=True)
    y, ys, idx = (backend.numpy(a) for a in out)
    np.testing.assert_allclose(ys.sum(-1), 1, rtol=1e-5)
    assert set(np.unique(y)) <= {0, 1} and (y.sum(-1) == 1).all()
    np.testing.assert_array_equal(y.argmax(-1), idx)
    np.testing.assert_allclose(np.bincount(idx, minlength=3) / len(idx), [0.1, 0.2, 0.7], atol=0.015)
    g = R.gumbel(3, logits.shape, dtype=dtype)
    np.testing.assert_array_equal(idx, (logits + g).argmax(-1))
    gr = rng.standard_normal(ys.shape)
    t = _t(logits)
    torch.softmax((t + torch.tensor(g, dtype=torch.float64)) / 0.5, -1).mul(torch.tensor(gr)).sum().backward()
    got = S.gumbel_softmax_backward(None, 0.5, grad_y=backend.asarray(gr.astype(dtype)), y_soft=backend.asarray(ys))
    np.testing.assert_allclose(
        backend.numpy(got), t.grad.numpy(), rtol=1e-3 if dtype == np.float32 else 1e-8, atol=1e-5
    )
    # regenerated from the forward's seed: bitwise the same as from its saved y_soft
    regen = S.gumbel_softmax_backward(backend.asarray(logits), 0.5, grad_y=backend.asarray(gr.astype(dtype)), seed=3)
    np.testing.assert_array_equal(backend.numpy(regen), backend.numpy(got))
    with pytest.raises(TypeError, match="seed"):
        S.gumbel_softmax_backward(backend.asarray(logits), 0.5, grad_y=backend.asarray(gr.astype(dtype)))


def test_gumbel_softmax_backward_empty(backend, dtype):
    """No rows: an empty gradient from y_soft as from the seed; no categories: y_soft's own error."""
    a = backend.asarray
    for kw in ({"y_soft": a(np.ones((0, 4), dtype))}, {"seed": 1}):
        lg = None if "y_soft" in kw else a(np.ones((0, 4), dtype))
        g = S.gumbel_softmax_backward(lg, grad_y=a(np.ones((0, 4), dtype)), **kw)
        assert backend.numpy(g).shape == (0, 4) and backend.numpy(g).dtype == dtype
    with pytest.raises(ValueError, match=r"y_soft: the last axis \(the categories\) is empty"):
        S.gumbel_softmax_backward(None, grad_y=a(np.ones((3, 0), dtype)), y_soft=a(np.ones((3, 0), dtype)))


# ------------------------------------------------------------------ dtypes and bad input
def test_float16_computed_in_float32(rng):
    mu = rng.standard_normal((4, 8)).astype(np.float16)
    lv = np.full((4, 8), 11.0, np.float16)  # sigma^2 = e^11: the float16 KL terms overflow
    h = S.normal_head(mu, lv, seed=1, log_q=True)
    assert h.z.dtype == np.float16 and h.kl.dtype == np.float32
    ref = S.kl_normal(mu.astype(np.float32), lv.astype(np.float32))
    np.testing.assert_allclose(h.kl, ref, rtol=1e-6)
    assert np.isfinite(h.kl).all() and h.kl[0] > 6e4
    np.testing.assert_allclose(
        h.z, S.rsample_normal(mu.astype(np.float32), lv.astype(np.float32), seed=1), rtol=2e-3, atol=1e-3
    )


def test_bfloat16_numpy_input(rng):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    mu = rng.standard_normal((3, 8)).astype(ml_dtypes.bfloat16)
    lv = np.zeros((3, 8), ml_dtypes.bfloat16)
    h = S.normal_head(mu, lv, seed=2)
    assert h.z.dtype == ml_dtypes.bfloat16 and h.kl.dtype == np.float32
    np.testing.assert_allclose(
        h.z.astype(np.float32),
        S.rsample_normal(mu.astype(np.float32), lv.astype(np.float32), seed=2),
        rtol=1e-2,
        atol=1e-2,
    )


def test_bad_input(rng):
    mu, lv = _gauss(rng, 3, 4, np.float64)
    with pytest.raises(TypeError, match="exactly one"):
        S.rsample_normal(mu, lv, std=lv)
    with pytest.raises(TypeError, match="exactly one"):
        S.rsample_normal(mu)
    with pytest.raises(ValueError, match="std"):
        S.rsample_normal(mu, std=-np.abs(lv))
    with pytest.raises(ValueError, match="row 1"):
        bad = lv.copy()
        bad[1, 2] = np.nan
        S.rsample_normal(mu, bad)
    with pytest.raises(ValueError, match="mu"):
        m = mu.copy()
        m[0, 0] = np.inf
        S.kl_normal(m, lv)
    with pytest.raises(ValueError, match="logvar"):
        S.rsample_normal(mu, lv[:, :3])
    with pytest.raises(ValueError, match="eps"):
        S.rsample_normal(mu, lv, eps=np.zeros((3, 5)))
    with pytest.raises(TypeError, match="mu"):
        S.rsample_normal(mu.astype(np.int64), lv)
    with pytest.raises(ValueError, match="clamp"):
        S.rsample_normal(mu, lv, clamp=(1, -1))
    with pytest.raises(ValueError, match="n_samples"):
        S.rsample_normal(mu, lv, n_samples=-1)
    L = _tril(rng, 3, 4, np.float64)
    up = L.copy()
    up[1, 0, 3] = 0.5
    with pytest.raises(ValueError, match="lower triangular"):
        S.rsample_mvn(mu, up)
    neg = L.copy()
    neg[2, 1, 1] = -1
    with pytest.raises(ValueError, match="positive diagonal"):
        S.rsample_mvn(mu, neg)
    with pytest.raises(ValueError, match="positive"):
        S.mvn_log_prob(mu, mu, neg)
    with pytest.raises(ValueError, match="lower triangular"):
        S.kl_mvn(mu, up, mu, L)
    with pytest.raises(ValueError, match="scale_tril"):
        S.rsample_mvn(mu, L[:, :3, :3])
    nanL = L.copy()
    nanL[0, 2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        S.rsample_mvn(mu, nanL)
    with pytest.raises(ValueError, match="x"):
        S.normal_log_prob(np.zeros((3, 5)), mu, lv)
    with pytest.raises(ValueError, match="temperature"):
        S.gumbel_softmax(mu, temperature=0)


def test_fuzz_kernel_boundary():
    pytest.importorskip("hypothesis")
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=40, deadline=None)
    @given(
        B=st.integers(0, 6),
        D=st.integers(1, 9),
        S_=st.integers(0, 3),
        seed=st.integers(0, 2**64 - 1),
        off=st.integers(0, 2**40),
        kind=st.sampled_from(["logvar", "log_std", "std"]),
    )
    def run(B, D, S_, seed, off, kind):
        rng = np.random.default_rng(B * 100 + D)
        mu, p = _gauss(rng, B, D, np.float32, kind)
        h = S.normal_head(mu, seed=seed, n_samples=S_, offset=off, log_q=True, return_eps=True, **KW[kind](p))
        assert h.z.shape == (S_, B, D) and h.kl.shape == (B,) and h.log_q.shape == (S_, B)
        assert np.isfinite(h.z).all()
        if B:
            np.testing.assert_allclose(h.z, mu + _sigma(p, kind) * h.eps, rtol=1e-5, atol=1e-5)

    run()


@pytest.mark.parametrize("D", [8, 13, 32])
def test_rsample_mvn_wide_rows_garbage_above_diagonal(backend, dtype, rng, D):
    """The vectorised triangular mat-vec (float32, D % 8 == 0 on the CPU) never reads the entries
    above the diagonal with check=False, keeps the checks of the lower triangle, gives the same
    z as mvn_head, and does not depend on the thread count."""
    import pygenmod

    B = 37
    mu = rng.standard_normal((B, D)).astype(dtype)
    L = _tril(rng, B, D, dtype)
    junk = L.copy()
    iu = np.triu_indices(D, 1)
    junk[:, iu[0], iu[1]] = np.where(rng.uniform(size=(B, len(iu[0]))) < 0.5, np.nan, 1e30).astype(dtype)
    z, eps = S.rsample_mvn(backend.asarray(mu), backend.asarray(junk), seed=5, check=False, return_eps=True)
    z, eps = backend.numpy(z), backend.numpy(eps).astype(np.float64)
    np.testing.assert_allclose(z, mu + np.einsum("bij,bj->bi", L.astype(np.float64), eps), **tol(dtype))
    h = S.mvn_head(backend.asarray(mu), backend.asarray(L), seed=5, log_q=True)
    np.testing.assert_array_equal(
        backend.numpy(h.z), backend.numpy(S.rsample_mvn(backend.asarray(mu), backend.asarray(L), seed=5))
    )
    n0 = pygenmod.get_num_threads()
    try:
        pygenmod.set_num_threads(1)
        z1 = backend.numpy(S.rsample_mvn(backend.asarray(mu), backend.asarray(junk), seed=5, check=False))
    finally:
        pygenmod.set_num_threads(n0)
    np.testing.assert_array_equal(z1, z)
    bad = junk.copy()
    bad[B - 1, D - 1, D - 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        S.rsample_mvn(backend.asarray(mu), backend.asarray(bad), seed=5, check=False)
    bad = junk.copy()
    bad[3, D - 1, D - 1] = 0
    with pytest.raises(ValueError, match="positive diagonal"):
        S.rsample_mvn(backend.asarray(mu), backend.asarray(bad), seed=5, check=False)
    with pytest.raises(ValueError, match="lower triangular"):
        S.rsample_mvn(backend.asarray(mu), backend.asarray(junk), seed=5)
