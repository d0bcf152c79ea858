"""Gaussian mixture regression: closed form, the `gmr` package, any covariance type, safety."""

import numpy as np
import pytest
import reference as oracle

import pygenmod
from pygenmod import gmm

TYPES = gmm.COVARIANCE_TYPES


def random_mixture(rng, B, K, D):
    A = rng.normal(size=(B, K, D, D))
    cov = A @ np.swapaxes(A, -1, -2) + 0.2 * np.eye(D)
    w = rng.random((B, K))
    w /= w.sum(1, keepdims=True)
    return gmm.GMMParams(w, rng.normal(size=(B, K, D)) * 2, cov, None, "full")


def closed_form(w, mu, cov, x, ind, outd):
    """Per query, per component: textbook conditioning of a Gaussian mixture (float64)."""
    K = len(w)
    logs, ms = [], []
    for k in range(K):
        Sii = cov[k][np.ix_(ind, ind)]
        Soi = cov[k][np.ix_(outd, ind)]
        diff = x - mu[k, ind]
        logs.append(np.log(w[k]) + oracle.gauss_log_density(x, mu[k, ind], Sii))
        ms.append(mu[k, outd] + Soi @ np.linalg.solve(Sii, diff))
    logs = np.array(logs)
    h = np.exp(logs - logs.max())
    h /= h.sum()
    Cs = [
        cov[k][np.ix_(outd, outd)]
        - cov[k][np.ix_(outd, ind)] @ np.linalg.solve(cov[k][np.ix_(ind, ind)], cov[k][np.ix_(ind, outd)])
        for k in range(K)
    ]
    mean = sum(h[k] * ms[k] for k in range(K))
    second = sum(h[k] * (Cs[k] + np.outer(ms[k], ms[k])) for k in range(K))
    return h, np.array(ms), np.array(Cs), mean, second - np.outer(mean, mean)


@pytest.mark.parametrize("in_dims", [[0], [0, 2], [3, 1]])
def test_gmr_matches_closed_form(rng, in_dims):
    B, K, D, Q = 2, 3, 4, 7
    p = random_mixture(rng, B, K, D)
    outd = [d for d in range(D) if d not in in_dims]
    x = rng.normal(size=(B, Q, len(in_dims)))
    r = gmm.gmr(p, x, in_dims)
    for b in range(B):
        for q in range(Q):
            h, ms, Cs, mean, cov = closed_form(p.weights[b], p.means[b], p.covariances[b], x[b, q], in_dims, outd)
            np.testing.assert_allclose(r.weights[b, q], h, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(r.means[b, q], ms, rtol=1e-9, atol=1e-10)
            np.testing.assert_allclose(r.covariances[b], Cs, rtol=1e-9, atol=1e-10)
            np.testing.assert_allclose(r.mean[b, q], mean, rtol=1e-9, atol=1e-10)
            np.testing.assert_allclose(r.covariance[b, q], cov, rtol=1e-8, atol=1e-10)


def test_gmr_matches_gmr_package(rng):
    G = pytest.importorskip("gmr")
    p = random_mixture(rng, 1, 3, 4)
    x = rng.normal(size=(6, 2))
    single = gmm.GMMParams(p.weights[0], p.means[0], p.covariances[0], None, "full")
    r = gmm.gmr(single, x, [0, 1])
    ref = G.GMM(n_components=3, priors=p.weights[0], means=p.means[0], covariances=p.covariances[0])
    np.testing.assert_allclose(r.mean, ref.predict(np.array([0, 1]), x), rtol=1e-9, atol=1e-10)
    for q in range(6):
        c = ref.condition([0, 1], x[q])
        np.testing.assert_allclose(r.weights[q], c.priors, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(r.means[q], c.means, rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(r.covariances, c.covariances, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("ct", TYPES)
def test_any_covariance_type(rng, ct):
    X = rng.normal(size=(2, 80, 3))
    X[..., 2] = np.sin(X[..., 0]) + 0.1 * X[..., 2]
    fit = gmm.fit(X, 3, covariance_type=ct, seed=0, warn=False)
    r = gmm.gmr(fit.params, X[:, :10, :2], [0, 1])
    assert r.mean.shape == (2, 10, 1) and r.covariance.shape == (2, 10, 1, 1)
    assert np.isfinite(r.mean).all() and (r.covariance[..., 0, 0] > 0).all()
    np.testing.assert_allclose(r.weights.sum(-1), 1.0)
    if ct in ("diag", "spherical"):  # no input-output covariance: component means are constant
        np.testing.assert_allclose(r.means[:, 0], r.means[:, 5])


def test_near_singular_is_safe(rng):
    D = 3
    mu = np.zeros((1, D))
    cov = np.ones((1, D, D))  # rank one: every block singular
    p = gmm.GMMParams(np.ones(1), mu, cov + 1e-300 * np.eye(D), np.full((1, D, D), np.nan), "full")
    with pytest.raises(ValueError):
        gmm.gmr(p, np.zeros((2, 2)), [0, 1])  # NaN factor rejected
    p = gmm.GMMParams(
        np.array([0.5, 0.5]), np.zeros((2, D)), np.stack([np.ones((D, D)) + 1e-14 * np.eye(D)] * 2), None, "full"
    )
    r = gmm.gmr(p, rng.normal(size=(4, 2)), [0, 1])
    for a in r:
        assert np.isfinite(a).all()
    assert (np.linalg.eigvalsh(r.covariance) >= -1e-12).all()
    s = gmm.gmr_sample(p, rng.normal(size=(4, 2)), [0, 1], 10)
    assert np.isfinite(s).all()


def test_sampling_moments_and_determinism(rng):
    p = random_mixture(rng, 2, 2, 3)
    x = rng.normal(size=(2, 3, 1))
    r = gmm.gmr(p, x, [1])
    s = gmm.gmr_sample(p, x, [1], 40000, seed=3)
    assert s.shape == (2, 3, 40000, 2)
    np.testing.assert_array_equal(s, gmm.gmr_sample(p, x, [1], 40000, seed=3))
    sd = np.sqrt(np.diagonal(r.covariance, axis1=-2, axis2=-1))
    assert (np.abs(s.mean(2) - r.mean) < 0.05 * sd + 1e-3).all()
    for b in range(2):
        for q in range(3):
            np.testing.assert_allclose(np.cov(s[b, q].T), r.covariance[b, q], atol=0.05 * sd[b, q].max() ** 2)


def test_float32_and_bad_dims(rng):
    p = random_mixture(rng, 1, 2, 3)
    p32 = gmm.GMMParams(*(a.astype(np.float32) for a in p[:3]), None, "full")
    r = gmm.gmr(p32, rng.normal(size=(1, 4, 1)).astype(np.float32), [0])
    assert r.mean.dtype == np.float32
    with pytest.raises(ValueError, match="in_dims"):
        gmm.gmr(p, np.zeros((1, 4, 1)), [5])
    with pytest.raises(ValueError, match="out_dims"):
        gmm.gmr(p, np.zeros((1, 4, 1)), [0], out_dims=[0])
    with pytest.raises(ValueError, match="x"):
        gmm.gmr(p, np.zeros((1, 4, 2)), [0])


def test_gmr_estimator_fits_a_curve(rng):
    t = np.linspace(0, 1, 400)
    y = np.sin(2 * np.pi * t) + 0.05 * rng.normal(size=t.shape)
    est = gmm.GMR(8, random_state=0).fit(t[:, None], y)
    pred = est.predict(t[:, None])
    assert pred.shape == (400,)
    assert np.abs(pred - np.sin(2 * np.pi * t)).max() < 0.15
    assert est.score(t[:, None], y) > 0.95
    d = est.predict_dist(t[:50, None])
    assert d.covariance.shape == (50, 1, 1)
    assert est.sample_y(t[:5, None], 3).shape == (5, 3, 1)


def test_backends_agree(rng):
    avail = [n for n, b in pygenmod.backends().items() if b["available"] and n != "cuda"]
    p = random_mixture(rng, 1, 2, 3)
    x = rng.normal(size=(1, 3, 2))
    out = []
    for name in avail:
        with pygenmod.use_backend(name):
            out.append(gmm.gmr_sample(p, x, [0, 1], 20, seed=1))
    for o in out[1:]:
        np.testing.assert_allclose(o, out[0], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("ct", ["full", "diag"])
def test_estimator_reuses_its_conditioning_and_matches_gmr(rng, ct):
    """GMR conditions the fitted mixture once: predictions equal gmm.gmr bitwise, the conditioning
    is reused between calls and recomputed after a refit or new parameter arrays."""
    X = rng.standard_normal((300, 2))
    y = np.c_[np.sin(X[:, 0]), X[:, 1] ** 2] + 0.1 * rng.standard_normal((300, 2))
    m = gmm.GMR(3, covariance_type=ct, random_state=0).fit(X, y)
    xq = rng.standard_normal((7, 2))
    for got, want in zip(m.predict_dist(xq), gmm.gmr(m._params(), xq, [0, 1])):
        np.testing.assert_array_equal(got, want)
    first = m._conditioning()
    m.predict(xq[:1])
    assert m._conditioning() is first
    m.gmm_.means_ = m.gmm_.means_ + 1.0  # new arrays: conditioned again
    assert m._conditioning() is not first
    np.testing.assert_array_equal(m.predict(xq), gmm.gmr(m._params(), xq, [0, 1]).mean)
    second = m._conditioning()
    m.fit(X[:200], y[:200])
    assert m._conditioning() is not second
    np.testing.assert_array_equal(m.predict(xq), gmm.gmr(m._params(), xq, [0, 1]).mean)
