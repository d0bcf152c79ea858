"""pygenmod.jax: the compiled kernels as XLA FFI targets, under jax.jit / vmap / grad.

Every result is compared with the NumPy API (bitwise: the handlers call the same kernel
bodies), vmap with a loop over the vmapped axis, gradients with jax's numerical check and an
independent float64 jnp reference.
"""

import pathlib
import re

import _jax_common  # first: skips this module without JAX or a compiled build
import jax.numpy as jnp
import numpy as np
import pytest
from _jax_common import jax
from conftest import run_python
from jax.test_util import check_grads

import pygenmod.jax as pj
from pygenmod import gmm, mdp, returns, sampling, spatial

dtype, x64 = _jax_common.dtype, _jax_common.x64  # the shared fixtures

ROOT = pathlib.Path(__file__).resolve().parents[1]


def same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype, (a.dtype, b.dtype)
    np.testing.assert_array_equal(a, b)


# ============================================================================ GAE
def _gae_inputs(rng, T, B, dtype):
    r = rng.normal(size=(T, B)).astype(dtype)
    v = rng.normal(size=(T, B)).astype(dtype)
    nv = rng.normal(size=(T, B)).astype(dtype)
    te = rng.random((T, B)) < 0.1
    tr = rng.random((T, B)) < 0.1
    mk = rng.random((T, B)) > 0.1
    boot = rng.normal(size=B).astype(dtype)
    g = rng.uniform(0.8, 0.99, B).astype(dtype)
    return r, v, nv, te, tr, mk, boot, g


def _gae_ref(r, v, nv, te, tr, mk, boot, g, lam):
    """Independent float64 loop of the module docstring's recursion."""
    r, v, nv, boot, g = (np.asarray(a, np.float64) for a in (r, v, nv, boot, g))
    T, B = r.shape
    adv = np.zeros((T, B))
    carry = np.zeros(B)
    for t in range(T - 1, -1, -1):
        vn = nv[t] if nv is not None else (v[t + 1] if t + 1 < T else boot)
        delta = r[t] + g * (1 - te[t]) * vn - v[t]
        carry = (delta + g * lam * (1 - te[t]) * (1 - tr[t]) * carry) * mk[t]
        adv[t] = carry
    return adv


@pytest.mark.parametrize("T,B", [(1, 1), (7, 5), (33, 19)])
def test_gae_jit_equals_numpy(dtype, T, B):
    rng = np.random.default_rng(T * 100 + B)
    r, v, nv, te, tr, mk, boot, g = _gae_inputs(rng, T, B, dtype)
    kw = dict(gamma=g, lam=0.9, terminated=te, truncated=tr, next_values=nv, mask=mk)
    f = jax.jit(
        lambda r, v, nv, te, tr, mk, g: pj.gae(
            r, v, gamma=g, lam=0.9, terminated=te, truncated=tr, next_values=nv, mask=mk
        )
    )
    got = f(r, v, nv, te, tr, mk, g)
    want = returns.gae(r, v, **kw)
    same(got.advantages, want.advantages)
    same(got.returns, want.returns)
    np.testing.assert_allclose(
        np.asarray(got.advantages),
        _gae_ref(r, v, nv, te, tr, mk, boot, g, 0.9),
        rtol=1e-4 if dtype == np.float32 else 1e-12,
        atol=1e-4 if dtype == np.float32 else 1e-12,
    )
    # bootstrap from values[t+1] / bootstrap_value, float flags, scalar gamma
    got = jax.jit(lambda r, v, b: pj.gae(r, v, terminated=te.astype(dtype), bootstrap_value=b))(r, v, boot)
    same(got.advantages, returns.gae(r, v, terminated=te.astype(dtype), bootstrap_value=boot).advantages)


def test_gae_options_equal_numpy(dtype):
    rng = np.random.default_rng(1)
    r, v, nv, te, tr, mk, boot, g = _gae_inputs(rng, 9, 4, dtype)
    got = pj.gae(r.T, v.T, terminated=te.T, time_axis=1, compute_returns=False)
    want = returns.gae(r.T, v.T, terminated=te.T, time_axis=1, compute_returns=False)
    assert got.returns is None
    same(got.advantages, want.advantages)
    same(pj.lambda_returns(r, v, gamma=0.9, lam=0.7), returns.lambda_returns(r, v, gamma=0.9, lam=0.7))
    empty = pj.gae(np.zeros((0, 3), dtype), np.zeros((0, 3), dtype))
    assert empty.advantages.shape == (0, 3)


def test_gae_vmap_folds_into_batch():
    rng = np.random.default_rng(2)
    N, T, B = 3, 6, 4
    rs = rng.normal(size=(N, T, B)).astype(np.float32)
    vs = rng.normal(size=(N, T, B)).astype(np.float32)
    te = rng.random((N, T, B)) < 0.2
    v0 = vs[0]
    f = jax.jit(jax.vmap(lambda r, v, t: pj.gae(r, v, terminated=t, gamma=0.9)))
    out = f(rs, vs, te)
    for i in range(N):
        want = returns.gae(rs[i], vs[i], terminated=te[i], gamma=0.9)
        same(out.advantages[i], want.advantages)
        same(out.returns[i], want.returns)
    # an unbatched operand (values shared by all) and a nested vmap
    out = jax.vmap(lambda r: pj.gae(r, v0).advantages)(rs)
    for i in range(N):
        same(out[i], returns.gae(rs[i], v0).advantages)
    rr = rng.normal(size=(2, N, T, B)).astype(np.float32)
    out = jax.vmap(jax.vmap(lambda r: pj.gae(r, v0).advantages))(rr)
    same(out[1, 2], returns.gae(rr[1, 2], v0).advantages)
    # one kernel call over N*B columns, not a loop
    jaxpr = str(jax.make_jaxpr(jax.vmap(lambda r, v: pj.gae(r, v).advantages))(rs, vs))
    assert jaxpr.count("pygenmod_gae") == 1 and f"f32[{T},{N * B}]" in jaxpr


def test_gae_not_differentiable():
    r = np.ones((3, 2), np.float32)
    with pytest.raises(TypeError, match="not differentiable.*stop_gradient"):
        jax.grad(lambda v: pj.gae(r, v).advantages.sum())(r)
    # the usual use: targets are constants of the loss
    g = jax.grad(lambda v: (pj.gae(r, jax.lax.stop_gradient(v)).returns * v).sum())(r)
    same(g, returns.gae(r, r).returns)


def test_gae_bad_input():
    r = np.ones((3, 2), np.float32)
    with pytest.raises(TypeError, match="rewards"):
        pj.gae(np.ones((3, 2), np.int32), r)
    with pytest.raises(ValueError, match="values"):
        pj.gae(r, np.ones((3, 3), np.float32))
    with pytest.raises(ValueError, match="gamma"):
        pj.gae(r, r, gamma=1.5)
    with pytest.raises(ValueError, match="next_values"):
        pj.gae(r, r, truncated=r > 0)
    with pytest.raises(ValueError, match="time_axis"):
        pj.gae(r, r, time_axis=2)
    with pytest.raises(TypeError, match="values.*float32"):
        pj.gae(r, np.ones((3, 2), np.float16))


# ============================================================================ Bellman backup
def _mdp(rng, B, S, A, dtype):
    P = rng.random((B, S, A, S))
    P /= P.sum(-1, keepdims=True)
    return P.astype(dtype), rng.normal(size=(B, S, A)).astype(dtype), rng.normal(size=(B, S)).astype(dtype)


@pytest.mark.parametrize("kind", ["optimal", "policy", "stochastic", "soft"])
def test_backup_jit_equals_numpy(dtype, kind):
    rng = np.random.default_rng(3)
    B, S, A = 3, 7, 4
    P, R, V = _mdp(rng, B, S, A, dtype)
    kw = {}
    if kind == "policy":
        kw["policy"] = rng.integers(0, A, (B, S))
    elif kind == "stochastic":
        p = rng.random((B, S, A))
        kw["policy"] = (p / p.sum(-1, keepdims=True)).astype(dtype)
    elif kind == "soft":
        kw["temperature"] = np.array([0.5, 1.0, 2.0], dtype)
    got = jax.jit(lambda P, R, V: pj.bellman_backup(P, R, V, 0.9, **kw))(P, R, V)
    want = mdp.bellman_backup(P, R, V, 0.9, **kw)
    same(got.Q, want.Q)
    same(got.V, want.V)
    np.testing.assert_array_equal(np.asarray(got.policy), want.policy)
    assert got.policy.dtype == (np.int64 if dtype == np.float64 else np.int32)  # x64 on with float64 here
    # independent float64 reference of Q
    q = R.astype(np.float64) + 0.9 * np.einsum("bsat,bt->bsa", P.astype(np.float64), V.astype(np.float64))
    np.testing.assert_allclose(np.asarray(got.Q), q, rtol=1e-5, atol=1e-5)


def test_backup_single_and_vmap():
    rng = np.random.default_rng(4)
    P, R, V = _mdp(rng, 2, 5, 3, np.float32)
    got = pj.bellman_backup(P[0], R[0], V[0], 0.8)
    want = mdp.bellman_backup(P[0], R[0], V[0], 0.8)
    same(got.Q, want.Q)
    assert got.V.shape == (5,)
    Vs = rng.normal(size=(4, 2, 5)).astype(np.float32)
    out = jax.jit(jax.vmap(lambda V: pj.bellman_backup(P, R, V, 0.8)))(Vs)
    for i in range(4):
        same(out.V[i], mdp.bellman_backup(P, R, Vs[i], 0.8).V)
    jaxpr = str(jax.make_jaxpr(jax.vmap(lambda V: pj.bellman_backup(P, R, V, 0.8).V))(Vs))
    assert jaxpr.count("pygenmod_backup_dense") == 1 and "f32[8,5]" in jaxpr


def test_backup_not_differentiable_and_bad_input():
    rng = np.random.default_rng(5)
    P, R, V = _mdp(rng, 1, 3, 2, np.float32)
    with pytest.raises(TypeError, match="not differentiable"):
        jax.grad(lambda V: pj.bellman_backup(P, R, V, 0.9).V.sum())(V)
    with pytest.raises(ValueError, match="policy"):
        pj.bellman_backup(P, R, V, 0.9, policy=np.full((1, 3), 5))
    with pytest.raises(ValueError, match="gamma"):
        pj.bellman_backup(P, R, V, 1.0)
    with pytest.raises(ValueError, match="R"):
        pj.bellman_backup(P, R[:, :2], V, 0.9)
    with pytest.raises(ValueError, match="at most one"):
        pj.bellman_backup(P, R, V, 0.9, policy=np.zeros((1, 3), int), temperature=1.0)
    with pytest.raises(Exception, match="policy: action out of range"):
        # traced: only the handler sees the values, and refuses them
        jax.jit(lambda p: pj.bellman_backup(P, R, V, 0.9, policy=p))(np.full((1, 3), 7)).V.block_until_ready()


def test_value_iteration_agrees(x64):
    P, R = mdp.forest(n_states=6)
    V, pi, Q, it = jax.jit(lambda P, R: pj.value_iteration(P, R, 0.9, tol=1e-10))(P, R)
    want = mdp.value_iteration(P, R, 0.9, epsilon=1e-9, stop="sup")
    np.testing.assert_allclose(np.asarray(V), want.V, atol=1e-8)
    np.testing.assert_array_equal(np.asarray(pi), want.policy)
    assert 0 < int(it) < 10_000


# ============================================================================ spatial softmax
def _ss_ref(x, t, coords="normalized"):
    """Independent float64 jnp spatial softmax (NCHW, xy order) and covariance."""
    B, C, H, W = x.shape
    p = jax.nn.softmax((x / jnp.reshape(t, (-1, 1, 1))).reshape(B, C, H * W), axis=-1).reshape(B, C, H, W)
    gx = jnp.linspace(-1, 1, W) if coords == "normalized" else jnp.arange(W, dtype=x.dtype)
    gy = jnp.linspace(-1, 1, H) if coords == "normalized" else jnp.arange(H, dtype=x.dtype)
    ex = (p.sum(2) * gx).sum(-1)
    ey = (p.sum(3) * gy).sum(-1)
    return jnp.stack([ex, ey], -1)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("order,coords", [("xy", "normalized"), ("yx", "pixel")])
def test_spatial_forward_equals_numpy(dtype, layout, order, coords):
    rng = np.random.default_rng(6)
    x = rng.normal(size=(3, 4, 5, 7)).astype(dtype)
    if layout == "NHWC":
        x = np.ascontiguousarray(np.moveaxis(x, 1, 3))
    t = np.array([0.5, 1.0, 2.0, 4.0], dtype)
    kw = dict(layout=layout, order=order, coords=coords)
    kp, cov = jax.jit(lambda x, t: pj.spatial_softmax(x, t, return_cov=True, **kw))(x, t)
    want = spatial.spatial_softmax(x, t, return_cov=True, **kw)
    same(kp, want.keypoints)
    same(cov, want.cov)
    same(pj.spatial_softmax(x, 2.0, **kw), spatial.spatial_softmax(x, 2.0, **kw))


def test_spatial_mask_equals_numpy():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(2, 3, 4, 5)).astype(np.float32)
    for m in (rng.random((4, 5)) > 0.3, rng.random((2, 4, 5)) > 0.3, rng.random((2, 1, 4, 5)) > 0.3):
        m[..., 0, 0] = True
        same(jax.jit(lambda x, m: pj.spatial_softmax(x, mask=m))(x, m), spatial.spatial_softmax(x, mask=m))


def test_spatial_grad_equals_numpy_vjp(dtype):
    rng = np.random.default_rng(8)
    x = rng.normal(size=(2, 3, 4, 6)).astype(dtype)
    gk = rng.normal(size=(2, 3, 2)).astype(dtype)
    gc = rng.normal(size=(2, 3, 2, 2)).astype(dtype)
    t = np.array([0.5, 1.0, 2.0], dtype)

    def loss(x, t):
        kp, cov = pj.spatial_softmax(x, t, order="yx", return_cov=True)
        return (kp * gk).sum() + (cov * gc).sum()

    gx, gt = jax.jit(jax.grad(loss, argnums=(0, 1)))(x, t)
    wx, wt = spatial.spatial_softmax_vjp(x, t, gk, gc, order="yx")
    same(gx, wx)
    same(gt, wt)
    # scalar temperature: its gradient is the sum over channels
    gts = jax.grad(lambda t: (pj.spatial_softmax(x, t) * gk).sum())(dtype(0.7))
    np.testing.assert_allclose(gts, spatial.spatial_softmax_vjp(x, 0.7, gk)[1], rtol=1e-5)


def test_spatial_grad_vs_reference(x64):
    rng = np.random.default_rng(9)
    x = rng.normal(size=(2, 3, 4, 5))
    t = np.array([0.5, 1.0, 2.0])
    check_grads(lambda x, t: pj.spatial_softmax(x, t), (x, t), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)
    check_grads(lambda x, t: pj.spatial_softmax(x, t, return_cov=True)[1], (x, t), order=1, modes=["rev"])
    gk = rng.normal(size=(2, 3, 2))
    for coords in ("normalized", "pixel"):
        f = lambda x, t, coords=coords: (pj.spatial_softmax(x, t, coords=coords) * gk).sum()
        g = lambda x, t, coords=coords: (_ss_ref(x, t, coords) * gk).sum()
        np.testing.assert_allclose(f(x, t), g(x, t), rtol=1e-12)
        for a, b in zip(jax.grad(f, (0, 1))(x, t), jax.grad(g, (0, 1))(x, t)):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_spatial_vmap():
    rng = np.random.default_rng(10)
    xs = rng.normal(size=(3, 2, 3, 4, 5)).astype(np.float32)
    gk = rng.normal(size=(2, 3, 2)).astype(np.float32)
    kp = jax.jit(jax.vmap(lambda x: pj.spatial_softmax(x, 0.5)))(xs)
    g = jax.jit(jax.vmap(jax.grad(lambda x: (pj.spatial_softmax(x, 0.5) * gk).sum())))(xs)
    for i in range(3):
        same(kp[i], spatial.spatial_softmax(xs[i], 0.5))
        same(g[i], spatial.spatial_softmax_vjp(xs[i], 0.5, gk)[0])
    jaxpr = str(jax.make_jaxpr(jax.vmap(lambda x: pj.spatial_softmax(x, 0.5)))(xs))
    assert jaxpr.count("pygenmod_spatial_fwd") == 1 and "f32[6,3,4,5]" in jaxpr
    # a vmapped temperature has no batch axis in the kernel: one call per element (lax.map)
    ts = jnp.array([0.5, 1.0, 2.0], jnp.float32)
    kp = jax.vmap(lambda t: pj.spatial_softmax(xs[0], t))(ts)
    gt = jax.vmap(jax.grad(lambda t: (pj.spatial_softmax(xs[0], t) * gk).sum()))(ts)
    for i in range(3):
        same(kp[i], spatial.spatial_softmax(xs[0], float(ts[i])))
        np.testing.assert_allclose(gt[i], spatial.spatial_softmax_vjp(xs[0], float(ts[i]), gk)[1], rtol=1e-6)


def test_spatial_bad_input():
    x = np.zeros((1, 2, 3, 3), np.float32)
    with pytest.raises(ValueError, match="x"):
        pj.spatial_softmax(x[0])
    with pytest.raises(TypeError, match="x"):
        pj.spatial_softmax(x.astype(np.int32))
    with pytest.raises(ValueError, match="temperature"):
        pj.spatial_softmax(x, 0.0)
    with pytest.raises(ValueError, match="temperature"):
        pj.spatial_softmax(x, np.ones(3, np.float32))
    with pytest.raises(ValueError, match="layout"):
        pj.spatial_softmax(x, layout="CHW")
    with pytest.raises(ValueError, match="mask"):
        pj.spatial_softmax(x, mask=np.zeros((3, 3), bool))


# ============================================================================ diagonal Gaussian head, KL
def _gauss(rng, B, D, dtype):
    return rng.normal(size=(B, D)).astype(dtype), (0.3 * rng.normal(size=(B, D))).astype(dtype)


@pytest.mark.parametrize("scale", ["logvar", "log_std", "std"])
def test_normal_head_equals_numpy(dtype, scale):
    rng = np.random.default_rng(12)
    mu, p = _gauss(rng, 6, 5, dtype)
    if scale == "std":
        p = np.exp(p)
    key = jax.random.key(3)
    for seed in (key, jax.random.key_data(key), 2**40 + 5):
        for n in (None, 3):
            # a key may be a traced argument; an integer seed is a Python int (closed over)
            f = lambda mu, p, s, n=n: pj.normal_head(mu, seed=s, n_samples=n, log_q=True, stream=7, **{scale: p})
            h = (
                jax.jit(f)(mu, p, seed)
                if not isinstance(seed, int)
                else jax.jit(lambda mu, p, n=n, s=seed, f=f: f(mu, p, s, n))(mu, p)
            )
            w = sampling.normal_head(mu, seed=seed, n_samples=n, log_q=True, stream=7, **{scale: p})
            same(h.z, w.z)
            same(h.kl, w.kl)
            same(h.log_q, w.log_q)
    # one row, clamp
    same(
        pj.rsample_normal(mu[0], seed=1, clamp=(-0.5, 0.5), **{scale: p[0]}),
        sampling.rsample_normal(mu[0], seed=1, clamp=(-0.5, 0.5), **{scale: p[0]}),
    )


def test_normal_head_grad(dtype):
    rng = np.random.default_rng(13)
    mu, lv = _gauss(rng, 4, 3, dtype)
    gz = rng.normal(size=(2, 4, 3)).astype(dtype)
    gq = rng.normal(size=(2, 4)).astype(dtype)
    key = jax.random.key(9)

    def loss(mu, lv):
        h = pj.normal_head(mu, lv, seed=key, n_samples=2, log_q=True)
        return (h.z * gz).sum() + h.kl.sum() + (h.log_q * gq).sum()

    g = jax.jit(jax.grad(loss, argnums=(0, 1)))(mu, lv)
    want = sampling.normal_head_backward(
        mu, lv, grad_z=gz, grad_kl=np.ones(4, dtype), grad_log_q=gq, seed=key, n_samples=2
    )
    same(g[0], want[0])
    same(g[1], want[1])


def test_normal_head_grad_vs_reference(x64):
    rng = np.random.default_rng(14)
    mu, lv = _gauss(rng, 4, 3, np.float64)
    key = jax.random.key(2)
    check_grads(lambda mu, lv: pj.rsample_normal(mu, lv, seed=key), (mu, lv), order=1, modes=["rev"])
    check_grads(lambda mu, lv: pj.normal_head(mu, lv, seed=key, log_q=True).log_q, (mu, lv), order=1, modes=["rev"])
    # independent reference: z = mu + exp(lv / 2) eps with the head's own eps
    eps = (np.asarray(pj.rsample_normal(mu, lv, seed=key)) - mu) / np.exp(lv / 2)
    gz = rng.normal(size=mu.shape)
    ref = jax.grad(lambda mu, lv: ((mu + jnp.exp(lv / 2) * eps) * gz).sum(), (0, 1))(mu, lv)
    got = jax.grad(lambda mu, lv: (pj.rsample_normal(mu, lv, seed=key) * gz).sum(), (0, 1))(mu, lv)
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_kl_normal(dtype):
    rng = np.random.default_rng(15)
    mu, lv = _gauss(rng, 5, 4, dtype)
    pm, pl = rng.normal(size=4).astype(dtype), dtype(0.2)
    same(jax.jit(pj.kl_normal)(mu, lv), sampling.kl_normal(mu, lv))
    same(jax.jit(pj.kl_normal)(mu, lv, pm, pl), sampling.kl_normal(mu, lv, pm, pl))
    g = jax.grad(lambda *a: pj.kl_normal(*a).sum(), argnums=(0, 1, 2, 3))(mu, lv, pm, pl)
    want = sampling.kl_normal_backward(
        np.ones(5, dtype), mu, lv, np.broadcast_to(pm, mu.shape), np.full(mu.shape, pl, dtype)
    )
    same(g[0], want[0])
    same(g[1], want[1])
    np.testing.assert_allclose(g[2], want[2].sum(0), rtol=1e-5)
    np.testing.assert_allclose(g[3], want[3].sum(), rtol=1e-5)
    # independent float64 reference
    ref = lambda mu, lv: 0.5 * jnp.sum(jnp.exp(lv) + mu**2 - 1 - lv, -1)
    np.testing.assert_allclose(pj.kl_normal(mu, lv), ref(mu.astype(np.float64), lv.astype(np.float64)), rtol=1e-5)


def test_sampling_vmap():
    rng = np.random.default_rng(16)
    mu, lv = _gauss(rng, 5, 3, np.float32)
    keys = jax.random.split(jax.random.key(1), 3)
    z = jax.jit(jax.vmap(lambda k: pj.rsample_normal(mu, lv, seed=k)))(keys)
    mus = rng.normal(size=(3, 5, 3)).astype(np.float32)
    z2 = jax.vmap(lambda m: pj.rsample_normal(m, lv, seed=keys[0]))(mus)
    kl = jax.vmap(lambda m: pj.kl_normal(m, lv))(mus)
    for i in range(3):
        same(z[i], sampling.rsample_normal(mu, lv, seed=keys[i]))
        same(z2[i], sampling.rsample_normal(mus[i], lv, seed=keys[0]))
        same(kl[i], sampling.kl_normal(mus[i], lv))


def test_sampling_bad_input():
    mu = np.zeros((2, 3), np.float32)
    with pytest.raises(TypeError, match="seed.*explicit"):
        pj.rsample_normal(mu, mu)
    with pytest.raises(TypeError, match="exactly one"):
        pj.rsample_normal(mu, mu, std=mu, seed=0)
    with pytest.raises(ValueError, match="seed.*two uint32"):
        pj.rsample_normal(mu, mu, seed=np.zeros(4, np.uint32))
    with pytest.raises(ValueError, match="seed"):
        pj.rsample_normal(mu, mu, seed=-1)
    with pytest.raises(ValueError, match="logvar"):
        pj.rsample_normal(mu, mu[:, :2], seed=0)
    with pytest.raises(TypeError, match="prior_logvar"):
        pj.kl_normal(mu, mu, prior_std=1.0)


def _tril(rng, B, D, dtype):
    A = rng.normal(size=(B, D, D))
    return np.linalg.cholesky(A @ A.transpose(0, 2, 1) + np.eye(D)).astype(dtype)


def test_mvn_head_equals_numpy(dtype):
    rng = np.random.default_rng(18)
    mu, L = rng.normal(size=(5, 3)).astype(dtype), _tril(rng, 5, 3, dtype)
    key = jax.random.key(5)
    for Lx in (L, L[0]):
        for n in (None, 2):
            h = jax.jit(lambda m, L, k, n=n: pj.mvn_head(m, L, seed=k, n_samples=n, log_q=True))(mu, Lx, key)
            w = sampling.mvn_head(mu, Lx, seed=key, n_samples=n, log_q=True)
            same(h.z, w.z)
            same(h.kl, w.kl)
            same(h.log_q, w.log_q)
        same(pj.rsample_mvn(mu, Lx, seed=11, stream=3), sampling.rsample_mvn(mu, Lx, seed=11, stream=3))
    same(pj.rsample_mvn(mu[0], L[0], seed=1), sampling.rsample_mvn(mu[0], L[0], seed=1))


def test_mvn_head_grad(dtype):
    rng = np.random.default_rng(19)
    mu, L = rng.normal(size=(4, 3)).astype(dtype), _tril(rng, 4, 3, dtype)
    gz = rng.normal(size=(4, 3)).astype(dtype)
    gq = rng.normal(size=4).astype(dtype)
    key = jax.random.key(6)
    for Lx in (L, L[1]):

        def loss(m, L):
            h = pj.mvn_head(m, L, seed=key, log_q=True)
            return (h.z * gz).sum() + h.kl.sum() + (h.log_q * gq).sum()

        g = jax.jit(jax.grad(loss, argnums=(0, 1)))(mu, Lx)
        want = sampling.mvn_head_backward(mu, Lx, grad_z=gz, grad_kl=np.ones(4, dtype), grad_log_q=gq, seed=key)
        same(g[0], want[0])
        same(g[1], want[1])


def test_mvn_grad_vs_reference(x64):
    rng = np.random.default_rng(20)
    mu, L = rng.normal(size=(3, 3)), _tril(rng, 3, 3, np.float64)
    key = jax.random.key(8)
    # (check_grads perturbs every entry: the tril keeps L valid; entries above it are never read)
    check_grads(lambda m, L: pj.mvn_head(m, jnp.tril(L), seed=key, log_q=True)[:3], (mu, L), order=1, modes=["rev"])
    # independent reference: KL(N(mu, L L^T) || N(0, I)) in jnp
    ref = lambda m, L: (
        0.5
        * (
            jnp.sum(L**2, (-1, -2))
            + jnp.sum(m**2, -1)
            - 3
            - 2 * jnp.sum(jnp.log(jnp.diagonal(L, axis1=-2, axis2=-1)), -1)
        )
    )
    np.testing.assert_allclose(pj.mvn_head(mu, L, seed=key).kl, ref(mu, L), rtol=1e-12)
    for a, b in zip(
        jax.grad(lambda m, L: pj.mvn_head(m, L, seed=key).kl.sum(), (0, 1))(mu, L),
        jax.grad(lambda m, L: ref(m, L).sum(), (0, 1))(mu, L),
    ):
        np.testing.assert_allclose(a, np.tril(b) if a.ndim == 3 else b, rtol=1e-10, atol=1e-12)


def test_mvn_bad_input():
    mu = np.zeros((2, 3), np.float32)
    L = np.eye(3, dtype=np.float32)
    with pytest.raises(ValueError, match="scale_tril"):
        pj.rsample_mvn(mu, np.ones((3, 3), np.float32), seed=0)
    with pytest.raises(ValueError, match="scale_tril"):
        pj.rsample_mvn(mu, np.eye(2, dtype=np.float32), seed=0)
    with pytest.raises(TypeError, match="seed"):
        pj.rsample_mvn(mu, L)
    z = jax.vmap(lambda k: pj.rsample_mvn(mu, L, seed=k))(jax.random.split(jax.random.key(0), 2))
    same(z[1], sampling.rsample_mvn(mu, L, seed=jax.random.split(jax.random.key(0), 2)[1]))


# ============================================================================ GMM E-step
@pytest.mark.parametrize("ct", ["full", "tied", "diag", "spherical"])
def test_gmm_e_step(dtype, ct):
    rng = np.random.default_rng(17)
    X = rng.normal(size=(3, 40, 2)).astype(dtype)
    p = gmm.fit(X, 3, covariance_type=ct, seed=0, max_iter=5, warn=False).params
    W = (rng.random((3, 40)) > 0.2).astype(dtype)
    got = jax.jit(lambda X, W: pj.gmm_e_step(X, p, W))(X, W)
    want = gmm.e_step(X, p, W)
    same(got.log_resp, want.log_resp)
    same(got.log_prob_norm, want.log_prob_norm)
    np.testing.assert_allclose(got.lower_bound, want.lower_bound, rtol=1e-6 if dtype == np.float32 else 1e-13)
    # independent reference: log_resp rows are normalised log-probabilities
    np.testing.assert_allclose(np.exp(np.asarray(got.log_resp, np.float64)).sum(-1), 1.0, rtol=1e-5)
    one = pj.gmm_e_step(X[0], gmm.GMMParams(*(a[0] for a in p[:4]), ct))
    same(one.log_resp, gmm.e_step(X[0], gmm.GMMParams(*(a[0] for a in p[:4]), ct)).log_resp)
    Xs = rng.normal(size=(4, 3, 40, 2)).astype(dtype)
    out = jax.vmap(lambda X: pj.gmm_e_step(X, p))(Xs)
    for i in range(4):
        same(out.log_resp[i], gmm.e_step(Xs[i], p).log_resp)


@pytest.mark.parametrize("ct", ["full", "tied", "diag", "spherical"])
def test_gmm_em_equals_numpy(dtype, ct):
    rng = np.random.default_rng(21)
    X = rng.normal(size=(3, 50, 2)).astype(dtype)
    W = (rng.random((3, 50)) > 0.1).astype(dtype)
    p = gmm.fit(X, 3, W, covariance_type=ct, seed=1, max_iter=2, warn=False).params
    new, lb = jax.jit(lambda X, W, p: pj.gmm_em_step(X, p, W))(X, W, p)
    want, wlb = gmm.em_step(X, p, W)
    for a, b in zip(new[:4], want[:4]):
        same(a, b)
    assert new.covariance_type == ct
    same(lb, wlb)
    # the whole loop in one call = the fit kernel's loop from the same start
    r = jax.jit(lambda X, p: pj.gmm_em(X, p, W, max_iter=40, tol=1e-4))(X, p)
    ref = gmm._run_fit(X, W, p, np.full(3, 1e-6, dtype), 1, 40, 1e-4)
    for a, b in zip(r.params[:4], ref[0][:4]):
        same(a, b)
    same(r.lower_bound, ref[1])
    np.testing.assert_array_equal(r.n_iter, ref[2])
    np.testing.assert_array_equal(r.converged, ref[3].astype(bool))
    same(r.flags, ref[4])
    # vmap folds into the batch of mixtures; a single mixture works without the batch axis
    Xs = rng.normal(size=(2, 3, 50, 2)).astype(dtype)
    out, lbs = jax.vmap(lambda X: pj.gmm_em_step(X, p))(Xs)
    for i in range(2):
        same(out.means[i], gmm.em_step(Xs[i], p)[0].means)
    p1 = gmm.GMMParams(*(a[0] for a in p[:4]), ct)
    same(pj.gmm_em_step(X[0], p1)[0].means, gmm.em_step(X[0], p1)[0].means)


def test_gmm_e_step_bad_input():
    X = np.zeros((2, 5, 2), np.float32)
    p = gmm.fit(np.random.default_rng(0).normal(size=(2, 20, 2)).astype(np.float32), 2, seed=0).params
    with pytest.raises(ValueError, match="X"):
        pj.gmm_e_step(X[:, :, :0], p)
    with pytest.raises(ValueError, match="means"):
        pj.gmm_e_step(np.zeros((2, 5, 3), np.float32), p)
    with pytest.raises(ValueError, match="covariance_type"):
        pj.gmm_e_step(X, p._replace(covariance_type="banded"))
    with pytest.raises(ValueError, match="weights"):
        pj.gmm_e_step(X, p, -np.ones((2, 5), np.float32))
    with pytest.raises(TypeError, match="not differentiable"):
        jax.grad(lambda X: pj.gmm_e_step(X, p).lower_bound.sum())(X)
    with pytest.raises(ValueError, match="max_iter"):
        pj.gmm_em(X, p, max_iter=-1)
    with pytest.raises(ValueError, match="covariances"):
        pj.gmm_em(X, p._replace(covariances=None))


# ============================================================================ packaging
def test_ffi_api_version_and_min_jax():
    from pygenmod import _jax_ffi

    assert _jax_ffi.FFI_API_VERSION == (0, 3)
    hdr = ROOT / "third_party/xla_ffi/xla/ffi/api/c_api.h"
    if hdr.exists():  # a source checkout: the vendored copy is what was built
        minor = re.search(r"#define XLA_FFI_API_MINOR (\d+)", hdr.read_text()).group(1)
        assert int(minor) == _jax_ffi.FFI_API_VERSION[1]
    pyproject = ROOT / "pyproject.toml"
    if pyproject.exists():
        want = ".".join(map(str, pj._MIN_JAX))
        assert f'jax = ["jax>={want}"]' in pyproject.read_text()


def test_old_jax_refused():
    code = (
        "import jax; jax.__version__ = '0.4.30'\n"
        "try:\n    import pygenmod.jax\nexcept ImportError as e:\n    print(e)\n"
    )
    out = run_python(["-c", code], capture_output=True, text=True, timeout=300)
    assert "needs JAX >= 0.10.2" in out.stdout and "found jax 0.4.30" in out.stdout, out.stdout + out.stderr


def test_docs_examples_run(tmp_path, monkeypatch):
    """docs/jax.md's examples run as written (tests/test_docs.py skips JAX blocks)."""
    monkeypatch.chdir(tmp_path)
    prev = jax.config.jax_enable_x64
    ns = {"__name__": "__doc_example__"}
    try:
        for code in re.findall(r"```python\n(.*?)```", (ROOT / "docs/jax.md").read_text(), flags=re.S):
            exec(compile(code, "docs/jax.md", "exec"), ns)
    finally:
        jax.config.update("jax_enable_x64", prev)


# ============================================================================ CUDA handlers
def _cuda_built():
    try:
        from pygenmod import _build_info
    except ImportError:
        return False
    return bool(getattr(_build_info, "CUDA_BUILT", False))


@pytest.mark.skipif(not _cuda_built(), reason="CUDA modules not built (no nvcc at build time)")
def test_cuda_handlers_built():
    from pygenmod import _jax_ffi_cuda

    assert _jax_ffi_cuda.FFI_API_VERSION == (0, 3)
    assert {"pygenmod_gae", "pygenmod_backup_dense", "pygenmod_spatial_fwd", "pygenmod_spatial_bwd"} == set(
        _jax_ffi_cuda.registrations()
    )


def _jax_gpu():
    try:
        return jax.devices("gpu")[0]
    except RuntimeError:
        return None


@pytest.mark.gpu
@pytest.mark.skipif(
    _jax_gpu() is None or pj._jax_ffi_cuda is None,
    reason="needs a JAX CUDA device and the CUDA handlers (pygenmod built with CUDA)",
)
def test_cuda_handlers_match_cpu():
    rng = np.random.default_rng(11)
    dev = _jax_gpu()
    r, v, nv, te, tr, mk, boot, g = _gae_inputs(rng, 40, 33, np.float32)
    got = jax.jit(lambda r, v, t: pj.gae(r, v, terminated=t))(*jax.device_put((r, v, te), dev))
    np.testing.assert_allclose(
        np.asarray(got.advantages), returns.gae(r, v, terminated=te).advantages, rtol=1e-5, atol=1e-5
    )
    P, R, V = _mdp(rng, 3, 6, 4, np.float32)
    for kw in ({}, {"policy": rng.integers(0, 4, (3, 6)).astype(np.int32)}, {"temperature": 0.5}):
        got = jax.jit(lambda P, R, V, kw=kw: pj.bellman_backup(P, R, V, 0.9, **kw))(*jax.device_put((P, R, V), dev))
        want = mdp.bellman_backup(P, R, V, 0.9, **kw)
        np.testing.assert_allclose(np.asarray(got.Q), want.Q, rtol=1e-5, atol=1e-5)
    x = rng.normal(size=(2, 3, 5, 4)).astype(np.float32)
    gk = rng.normal(size=(2, 3, 2)).astype(np.float32)
    xd = jax.device_put(x, dev)
    np.testing.assert_allclose(
        np.asarray(jax.jit(pj.spatial_softmax)(xd)), spatial.spatial_softmax(x), rtol=1e-5, atol=1e-6
    )
    gx = jax.jit(jax.grad(lambda x: (pj.spatial_softmax(x) * gk).sum()))(xd)
    np.testing.assert_allclose(np.asarray(gx), spatial.spatial_softmax_vjp(x, 1.0, gk)[0], rtol=1e-4, atol=1e-6)


def test_bench_runs_at_tiny_sizes():
    """python -m pygenmod.benchmarks.jax runs (and checks its results) at tiny sizes."""
    out = run_python(
        ["-m", "pygenmod.benchmarks.jax", "--T", "8", "--B", "4", "--mcts-B", "3", "--sims", "4", "--repeat", "1"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    assert "W7 GAE" in out.stdout and "pygenmod.jax.gae inside jit" in out.stdout


# ============================================================================ MCTS (tabular)
def _mcts_model(rng, S, A, dtype, n_terminal=2):
    from pygenmod import mcts

    terminal = np.zeros(S, bool)
    terminal[S - n_terminal :] = True
    inv = rng.random((S, A)) < 0.2
    inv[:, 0] = False
    return mcts.tabular_model(
        rng.integers(0, S, (S, A)),
        rng.normal(size=(S, A)).astype(dtype),
        rng.normal(size=(S, A)).astype(dtype),
        rng.normal(size=S).astype(dtype),
        discount=rng.uniform(0.8, 1.0, (S, A)).astype(dtype),
        terminal=terminal,
        invalid_actions=inv,
        dtype=dtype,
    )


def _same_policy(got, ref, weights=True):
    same(got.visit_counts, ref.visit_counts)
    same(got.value, ref.value)
    np.testing.assert_array_equal(np.asarray(got.action), np.asarray(ref.action))
    if weights:
        same(got.action_weights, ref.action_weights)
    else:  # completed-Q softmax computed in jnp: exp may differ in the last bits
        np.testing.assert_allclose(got.action_weights, ref.action_weights, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("S,A,B,sims", [(12, 3, 5, 16), (30, 7, 33, 40), (5, 1, 2, 3)])
@pytest.mark.parametrize("frac", [0.0, 0.25])
def test_mcts_muzero_bitwise(dtype, S, A, B, sims, frac):
    from pygenmod import mcts

    rng = np.random.default_rng(S * B + sims)
    m = _mcts_model(rng, S, A, dtype)
    roots = rng.integers(0, S - 2, B)
    kw = dict(seed=7, stream=3, dirichlet_fraction=frac, temperature=0.7)
    ref = mcts.muzero_policy(roots, m, sims, **kw)
    got = jax.jit(lambda r: pj.muzero_policy(r, m, sims, **kw))(jnp.asarray(roots))
    _same_policy(got, ref)
    q = dict(kw, q_normalization="tree", max_depth=3, temperature=0.0)
    _same_policy(pj.muzero_policy(roots, m, sims, **q), mcts.muzero_policy(roots, m, sims, **q))


@pytest.mark.parametrize("S,A,B,sims", [(12, 3, 5, 16), (30, 7, 33, 40), (9, 20, 4, 64)])
def test_mcts_gumbel_bitwise(dtype, S, A, B, sims):
    from pygenmod import mcts

    rng = np.random.default_rng(S + B + sims)
    m = _mcts_model(rng, S, A, dtype)
    roots = rng.integers(0, S - 2, B)
    for kw in (dict(seed=5, stream=2), dict(seed=5, max_num_considered_actions=4, use_mixed_value=False)):
        ref = mcts.gumbel_muzero_policy(roots, m, sims, **kw)
        got = jax.jit(lambda r, kw=kw: pj.gumbel_muzero_policy(r, m, sims, **kw))(jnp.asarray(roots))
        _same_policy(got, ref, weights=False)


def test_mcts_vmap_is_one_folded_call():
    from pygenmod import mcts

    rng = np.random.default_rng(1)
    m = _mcts_model(rng, 20, 5, np.float32)
    roots = rng.integers(0, 18, (3, 4))
    for f, ref_f in ((pj.muzero_policy, mcts.muzero_policy), (pj.gumbel_muzero_policy, mcts.gumbel_muzero_policy)):
        got = jax.jit(jax.vmap(lambda r, f=f: f(r, m, 24, seed=11, stream=5)))(jnp.asarray(roots))
        ref = ref_f(roots.reshape(-1), m, 24, seed=11, stream=5)
        same(np.asarray(got.visit_counts).reshape(12, 5), ref.visit_counts)
        np.testing.assert_array_equal(np.asarray(got.action).reshape(-1), ref.action)


def test_mcts_traced_key_and_errors():
    from pygenmod import mcts

    rng = np.random.default_rng(2)
    m = _mcts_model(rng, 10, 4, np.float32)
    roots = np.array([0, 3, 5])
    key = jax.random.key(42)
    words = np.asarray(jax.random.key_data(key))
    ref = mcts.muzero_policy(roots, m, 16, seed=key)
    got = jax.jit(lambda k: pj.muzero_policy(roots, m, 16, seed=k))(key)
    _same_policy(got, ref)
    same(pj.muzero_policy(roots, m, 16, seed=words).visit_counts, ref.visit_counts)
    with pytest.raises(TypeError, match="seed"):
        pj.muzero_policy(roots, m, 16, seed=None)
    with pytest.raises(TypeError, match="recurrent_fn"):
        pj.muzero_policy(roots, lambda *a: a, 16, seed=0)
    with pytest.raises(ValueError, match="root"):
        pj.muzero_policy(np.array([0, 10]), m, 16, seed=0)
    with pytest.raises(ValueError, match="terminal"):
        pj.gumbel_muzero_policy(np.array([9]), m, 16, seed=0)
    with pytest.raises(ValueError, match="invalid_actions"):
        pj.muzero_policy(roots, m, 16, seed=0, invalid_actions=np.zeros((3, 4), bool))
    with pytest.raises(ValueError, match="dirichlet_fraction"):
        pj.muzero_policy(roots, m, 16, seed=0, dirichlet_fraction=2.0)
    with pytest.raises(ValueError, match="q_normalization"):
        pj.muzero_policy(roots, m, 16, seed=0, q_normalization="x")
    with pytest.raises(Exception, match="root"):  # traced out-of-range roots: the handler checks
        jax.jit(lambda r: pj.muzero_policy(r, m, 16, seed=0))(jnp.array([0, 99]))
    with pytest.raises(TypeError, match="not differentiable"):
        jax.grad(lambda t: pj.muzero_policy(roots, m, 4, seed=0, temperature=t).action_weights.sum())(1.0)
    if not jax.config.jax_enable_x64:
        with pytest.raises(TypeError, match="x64"):
            pj.muzero_policy(roots, _mcts_model(rng, 10, 4, np.float64), 4, seed=0)


@pytest.mark.parametrize("mdtype", [np.float32, np.float64])
def test_mcts_stochastic_model(x64, mdtype):
    from pygenmod import mcts

    rng = np.random.default_rng(3)
    S, A, B = 15, 4, 9
    P = rng.random((S, A, S)) ** 4
    P /= P.sum(-1, keepdims=True)
    m = mcts.stochastic_tabular_model(
        P, rng.normal(size=(S, A)), rng.normal(size=(S, A)), rng.normal(size=S), 0.9, dtype=mdtype
    )
    roots = rng.integers(0, S, B)
    for f, ref_f in ((pj.muzero_policy, mcts.muzero_policy), (pj.gumbel_muzero_policy, mcts.gumbel_muzero_policy)):
        ref = ref_f(roots, m, 30, seed=4, stream=1)
        got = jax.jit(lambda r, f=f: f(r, m, 30, seed=4, stream=1))(jnp.asarray(roots))
        _same_policy(got, ref, weights=f is pj.muzero_policy)
    jax.config.update("jax_enable_x64", False)
    with pytest.raises(TypeError, match="x64"):
        pj.muzero_policy(roots, m, 4, seed=0)


def test_mcts_empty_batch_and_no_simulations():
    from pygenmod import mcts

    m = _mcts_model(np.random.default_rng(0), 10, 4, np.float32)
    for f, ref_f in ((pj.muzero_policy, mcts.muzero_policy), (pj.gumbel_muzero_policy, mcts.gumbel_muzero_policy)):
        for roots, sims in ((np.zeros(0, np.int64), 8), (np.array([1, 2]), 0)):
            _same_policy(f(roots, m, sims, seed=1), ref_f(roots, m, sims, seed=1), weights=f is pj.muzero_policy)
