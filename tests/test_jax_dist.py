"""pygenmod.jax's log-densities, Mahalanobis distance, full-covariance KL (jnp, autodiff) and
Gumbel-softmax (the NumPy API's Philox noise through FFI) under jax.jit / vmap / grad.

Values and gradients are compared with the NumPy API (and its *_backward functions) to a
stated tolerance, with independent float64 references (scipy, torch.distributions) and JAX's
numerical gradient check; Gumbel noise and the categorical index bitwise.
"""

import _jax_common  # first: skips this module without JAX or a compiled build
import jax.numpy as jnp
import numpy as np
import pytest
from _jax_common import jax
from jax.test_util import check_grads

import pygenmod.jax as pj
from pygenmod import random as prandom
from pygenmod import sampling

dtype, x64 = _jax_common.dtype, _jax_common.x64  # the shared fixtures


# jnp against the NumPy API's kernels: a few ulp of the result's scale per term
TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}


def close(a, b, dtype, scale=1.0):
    a = np.asarray(a)
    assert a.dtype == dtype, (a.dtype, dtype)
    np.testing.assert_allclose(a, b, rtol=TOL[dtype]["rtol"], atol=TOL[dtype]["atol"] * scale)


def _tril(rng, B, D, dtype):
    A = rng.normal(size=(B, D, D))
    return np.linalg.cholesky(A @ A.transpose(0, 2, 1) + D * np.eye(D)).astype(dtype)


# ============================================================================ normal_log_prob
@pytest.mark.parametrize("scale", ["logvar", "log_std", "std"])
@pytest.mark.parametrize("xshape", ["BD", "SBD"])
def test_normal_log_prob(dtype, scale, xshape):
    rng = np.random.default_rng(0)
    B, D, S = 5, 3, 4
    mu = rng.normal(size=(B, D)).astype(dtype)
    p = (rng.uniform(0.3, 2.0, (B, D)) if scale == "std" else rng.normal(size=(B, D))).astype(dtype)
    x = rng.normal(size=(B, D) if xshape == "BD" else (S, B, D)).astype(dtype)
    ref = sampling.normal_log_prob(x, mu, **{scale: p})
    got = jax.jit(lambda x, m, p: pj.normal_log_prob(x, m, **{scale: p}))(x, mu, p)
    close(got, ref, dtype, scale=10)
    # independent float64 reference
    sig = {"logvar": np.exp(0.5 * p.astype(float)), "log_std": np.exp(p.astype(float)), "std": p.astype(float)}[scale]
    lp = (-0.5 * ((x - mu) / sig) ** 2 - np.log(sig) - 0.5 * np.log(2 * np.pi)).sum(-1)
    np.testing.assert_allclose(np.asarray(got), lp, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-4)
    # gradient vs the NumPy API's backward
    gw = rng.normal(size=ref.shape).astype(dtype)
    g = jax.grad(lambda x, m, p: (pj.normal_log_prob(x, m, **{scale: p}) * gw).sum(), argnums=(0, 1, 2))(x, mu, p)
    r = sampling.normal_log_prob_backward(x, mu, **{scale: p}, grad_log_prob=gw)
    for a, b in zip(g, r):
        close(a, b, dtype, scale=10)


def test_normal_log_prob_clamp_single_row_vmap(dtype):
    rng = np.random.default_rng(1)
    mu = rng.normal(size=(4, 3)).astype(dtype)
    lv = (3 * rng.normal(size=(4, 3))).astype(dtype)
    x = rng.normal(size=(2, 4, 3)).astype(dtype)
    clamp = (-1.0, 1.0)
    close(pj.normal_log_prob(x, mu, lv, clamp=clamp), sampling.normal_log_prob(x, mu, lv, clamp=clamp), dtype, 10)
    g = jax.grad(lambda lv: pj.normal_log_prob(x, mu, lv, clamp=clamp).sum())(lv)
    r = sampling.normal_log_prob_backward(x, mu, lv, clamp=clamp, grad_log_prob=np.ones((2, 4), dtype))[2]
    close(g, r, dtype, 10)  # (zero outside the clamp)
    close(pj.normal_log_prob(x[0, 0], mu[0], lv[0]), sampling.normal_log_prob(x[0, 0], mu[0], lv[0]), dtype, 10)
    v = jax.vmap(lambda x: pj.normal_log_prob(x, mu, lv))(x)
    close(v, sampling.normal_log_prob(x, mu, lv), dtype, 10)


# ============================================================================ Mahalanobis, mvn_log_prob
def _check_mahalanobis(rng, x, mu, L, name, squared, dtype):
    ref = sampling.mahalanobis(x, mu, **{name: L}, squared=squared)
    got = jax.jit(lambda x, m: pj.mahalanobis(x, m, **{name: L}, squared=squared))(x, mu)
    close(got, ref, dtype, scale=10)
    gw = rng.normal(size=ref.shape).astype(dtype)
    g = jax.grad(lambda x, m, L: (pj.mahalanobis(x, m, **{name: L}, squared=squared) * gw).sum(), argnums=(0, 1, 2))(
        x, mu, L
    )
    r = sampling.mahalanobis_backward(x, mu, **{name: L}, squared=squared, grad_mahalanobis=gw)
    for a, b in zip(g, r):
        close(a, b, dtype, scale=100)


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("xshape", ["BD", "SBD"])
def test_mahalanobis_and_mvn_log_prob(dtype, shared, xshape):
    from scipy.stats import multivariate_normal

    rng = np.random.default_rng(2)
    B, D, S = 4, 3, 3
    mu = rng.normal(size=(B, D)).astype(dtype)
    L = _tril(rng, B, D, dtype)
    L = L[0] if shared else L
    x = rng.normal(size=(B, D) if xshape == "BD" else (S, B, D)).astype(dtype)
    for name in ("scale_tril", "precision_tril"):
        for squared in (True, False):
            _check_mahalanobis(rng, x, mu, L, name, squared, dtype)
    ref = sampling.mvn_log_prob(x, mu, L)
    got = jax.jit(pj.mvn_log_prob)(x, mu, L)
    close(got, ref, dtype, scale=10)
    Lf = np.broadcast_to(L, (B, D, D)).astype(np.float64)
    xs = x.reshape(-1, B, D).astype(np.float64)
    sp = np.stack(
        [[multivariate_normal(mu[b], Lf[b] @ Lf[b].T).logpdf(xs[s, b]) for b in range(B)] for s in range(len(xs))]
    )
    np.testing.assert_allclose(np.asarray(got).reshape(sp.shape), sp, rtol=1e-5 if dtype == np.float32 else 1e-11)
    gw = rng.normal(size=ref.shape).astype(dtype)
    g = jax.grad(lambda x, m, L: (pj.mvn_log_prob(x, m, L) * gw).sum(), argnums=(0, 1, 2))(x, mu, L)
    r = sampling.mvn_log_prob_backward(x, mu, L, grad_log_prob=gw)
    for a, b in zip(g, r):
        close(a, b, dtype, scale=100)


def test_mahalanobis_zero_distance_grad(x64):
    mu = np.ones((2, 3))
    L = np.broadcast_to(np.eye(3), (2, 3, 3)).copy()
    g = jax.grad(lambda x: pj.mahalanobis(x, mu, L, squared=False).sum())(mu.copy())
    assert np.isfinite(np.asarray(g)).all() and not np.asarray(g).any()


# ============================================================================ kl_mvn
@pytest.mark.parametrize("prior", ["none", "mu", "mu_L_shared", "L_rows"])
def test_kl_mvn(dtype, prior):
    rng = np.random.default_rng(3)
    B, D = 5, 3
    mu = rng.normal(size=(B, D)).astype(dtype)
    L = _tril(rng, B, D, dtype)
    pm = rng.normal(size=(B, D)).astype(dtype)
    L2 = _tril(rng, B, D, dtype)
    args = {"none": (), "mu": (pm,), "mu_L_shared": (pm, L2[0]), "L_rows": (None, L2)}[prior]
    ref = sampling.kl_mvn(mu, L, *args)
    got = jax.jit(lambda m, L: pj.kl_mvn(m, L, *args))(mu, L)
    close(got, ref, dtype, scale=10)
    # peer library: torch.distributions (float64)
    torch = pytest.importorskip("torch")
    td = torch.distributions
    q = td.MultivariateNormal(torch.tensor(mu, dtype=torch.float64), scale_tril=torch.tensor(L, dtype=torch.float64))
    m2 = np.zeros((B, D)) if not args or args[0] is None else args[0]
    L2f = np.broadcast_to(np.eye(D) if len(args) < 2 else args[1], (B, D, D))
    p = td.MultivariateNormal(torch.tensor(m2, dtype=torch.float64), scale_tril=torch.tensor(L2f, dtype=torch.float64))
    np.testing.assert_allclose(
        np.asarray(got), td.kl_divergence(q, p).numpy(), rtol=1e-5 if dtype == np.float32 else 1e-11
    )
    # gradients vs kl_mvn_backward (all four arguments)
    gw = rng.normal(size=B).astype(dtype)
    full = (args + (None, None))[:2]
    pm_a, L2_a = (pm if full[0] is None else full[0]), (L2 if full[1] is None else full[1])
    g = jax.grad(lambda m, L, a, b: (pj.kl_mvn(m, L, a, b) * gw).sum(), argnums=(0, 1, 2, 3))(mu, L, pm_a, L2_a)
    r = sampling.kl_mvn_backward(mu, L, pm_a, L2_a, grad_kl=gw)
    for a, b in zip(g, r):
        close(a, b, dtype, scale=100)
        assert not np.triu(np.asarray(a), 1).any() if np.asarray(a).ndim >= 2 and a.shape[-1] == a.shape[-2] else True


def test_kl_mvn_numerical_grad_and_vmap(x64):
    rng = np.random.default_rng(4)
    mu, pm = rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
    L, L2 = _tril(rng, 2, 3, np.float64), _tril(rng, 2, 3, np.float64)
    # (the perturbed factor is kept lower triangular: an upper entry is refused)
    check_grads(lambda m, a, b: pj.kl_mvn(m, L, a, jnp.tril(b)), (mu, pm, L2), order=1, modes=["rev"])
    v = jax.vmap(lambda m: pj.kl_mvn(m, L, pm, L2))(np.stack([mu, mu + 1]))
    np.testing.assert_allclose(np.asarray(v[1]), sampling.kl_mvn(mu + 1, L, pm, L2), rtol=1e-12)
    assert pj.kl_mvn(mu[0], L[0], pm[0], L2[0]).shape == ()


# ============================================================================ Gumbel-softmax
def test_gumbel_noise_is_the_numpy_apis(dtype):
    from pygenmod._jax_dist import _fill_op

    key = jax.random.key(9)
    rows = jnp.zeros((7, 0), dtype)
    (g,) = jax.jit(lambda r, k: _fill_op(2, 3, 5, 4, np.dtype(dtype))(r, k))(rows, key)
    np.testing.assert_array_equal(np.asarray(g), prandom.gumbel(key, (7, 4), stream=3, offset=5, dtype=dtype))


@pytest.mark.parametrize("hard", [False, True])
@pytest.mark.parametrize("shape", [(6,), (5, 7), (2, 3, 4)])
def test_gumbel_softmax(dtype, hard, shape):
    rng = np.random.default_rng(5)
    lg = rng.normal(size=shape).astype(dtype)
    lg[..., 0] = -np.inf  # a masked category
    for seed in (3, jax.random.key(3)):
        ref = sampling.gumbel_softmax(lg, 0.5, seed=seed, hard=hard, stream=4)
        if isinstance(seed, int):  # an int seed is a constant of the traced function
            got = jax.jit(lambda l, s=seed: pj.gumbel_softmax(l, 0.5, seed=s, hard=hard, stream=4))(lg)
        else:  # a key may be traced
            got = jax.jit(lambda l, k: pj.gumbel_softmax(l, 0.5, seed=k, hard=hard, stream=4))(lg, seed)
        close(got.y_soft, ref.y_soft, dtype)
        np.testing.assert_array_equal(np.asarray(got.index), ref.index)
        assert np.asarray(got.index).dtype == (np.int64 if dtype == np.float64 else np.int32)
        if hard:
            np.testing.assert_array_equal(np.asarray(got.y), ref.y)
        assert not np.asarray(got.y_soft)[..., 0].any()
    gw = rng.normal(size=shape).astype(dtype)
    g = jax.jit(jax.grad(lambda l: (pj.gumbel_softmax(l, 0.5, seed=3, hard=hard, stream=4).y * gw).sum()))(lg)
    r = sampling.gumbel_softmax_backward(lg, 0.5, grad_y=gw, seed=3, stream=4)
    close(g, r, dtype)


def test_gumbel_softmax_vmap(dtype):
    rng = np.random.default_rng(6)
    lg = rng.normal(size=(3, 4, 5)).astype(dtype)
    f = jax.vmap(lambda l: pj.gumbel_softmax(l, 1.0, seed=2).y_soft)
    # folded: one kernel call, the same draws as one NumPy call over the stacked logits
    close(jax.jit(f)(lg), sampling.gumbel_softmax(lg, 1.0, seed=2).y_soft, dtype)
    assert str(jax.make_jaxpr(f)(lg)).count("pygenmod_fill") == 1
    keys = jax.random.split(jax.random.key(1), 3)
    v = jax.vmap(lambda l, k: pj.gumbel_softmax(l, 1.0, seed=k).index)(lg, keys)
    for i in range(3):
        np.testing.assert_array_equal(np.asarray(v[i]), sampling.gumbel_softmax(lg[i], 1.0, seed=keys[i]).index)


# ============================================================================ errors
def test_bad_input():
    mu = np.zeros((2, 3), np.float32)
    L = np.broadcast_to(np.eye(3, dtype=np.float32), (2, 3, 3)).copy()
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(TypeError, match="exactly one"):
        pj.normal_log_prob(x, mu)
    with pytest.raises(ValueError, match="std"):
        pj.normal_log_prob(x, mu, std=np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="x: expected"):
        pj.normal_log_prob(np.zeros((3, 3), np.float32), mu, mu)
    with pytest.raises(ValueError, match="x: contains NaN"):
        pj.mvn_log_prob(np.full((2, 3), np.nan, np.float32), mu, L)
    with pytest.raises(TypeError, match="exactly one"):
        pj.mahalanobis(x, mu, L, precision_tril=L)
    up = L.copy()
    up[0, 0, 2] = 1
    with pytest.raises(ValueError, match="scale_tril"):
        pj.mvn_log_prob(x, mu, up)
    with pytest.raises(ValueError, match="prior_scale_tril"):
        pj.kl_mvn(mu, L, None, -L)
    with pytest.raises(ValueError, match="scale_tril: expected shape"):
        pj.kl_mvn(mu, L[:, :2, :2])
    with pytest.raises(ValueError, match="prior_mu"):
        pj.kl_mvn(mu, L, np.zeros(4, np.float32))
    lg = np.zeros((2, 3), np.float32)
    with pytest.raises(TypeError, match="explicit seed"):
        pj.gumbel_softmax(lg)
    with pytest.raises(ValueError, match="temperature"):
        pj.gumbel_softmax(lg, 0.0, seed=1)
    with pytest.raises(ValueError, match="NaN"):
        pj.gumbel_softmax(np.array([[0.0, np.nan]], np.float32), seed=1)
    with pytest.raises(ValueError, match="masked"):
        pj.gumbel_softmax(np.full((1, 2), -np.inf, np.float32), seed=1)
    with pytest.raises(ValueError, match="empty"):
        pj.gumbel_softmax(np.zeros((2, 0), np.float32), seed=1)
    with pytest.raises(ValueError, match="seed"):
        pj.gumbel_softmax(lg, seed=jnp.zeros(3, jnp.uint32))
