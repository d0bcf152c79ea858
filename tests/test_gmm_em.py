"""Batched EM kernels and fit: against scikit-learn, a plain float64 NumPy EM, every backend,
ragged batches, degenerate data and bad input."""

import warnings

import numpy as np
import pytest
import reference as oracle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pygenmod
from pygenmod import gmm

TYPES = gmm.COVARIANCE_TYPES


# ----------------------------------------------------------------------------- references


def blobs(rng, B, N, D, K, sep=6.0, dtype=np.float64):
    centres = rng.normal(scale=sep, size=(B, K, D))
    lab = rng.integers(0, K, size=(B, N))
    X = centres[np.arange(B)[:, None], lab] + rng.normal(size=(B, N, D)) * rng.uniform(0.5, 1.5, (B, 1, D))
    return X.astype(dtype)


def init_params(rng, X, K, ct):
    """Initial params from K random points per set (valid covariances of every type)."""
    B, N, D = X.shape
    idx = np.stack([rng.choice(N, K, replace=False) for _ in range(B)])
    means = np.asarray(X, np.float64)[np.arange(B)[:, None], idx]
    var = np.asarray(X, np.float64).var(1)  # (B, D)
    weights = np.full((B, K), 1.0 / K)
    if ct == "full":
        cov = np.broadcast_to(np.einsum("bd,de->bde", var, np.eye(D))[:, None], (B, K, D, D)).copy()
    elif ct == "tied":
        cov = np.einsum("bd,de->bde", var, np.eye(D))
    elif ct == "diag":
        cov = np.broadcast_to(var[:, None], (B, K, D)).copy()
    else:
        cov = np.broadcast_to(var.mean(1)[:, None], (B, K)).copy()
    return gmm.GMMParams(weights, means, cov, None, ct)


# ----------------------------------------------------------------------------- sklearn
@pytest.mark.parametrize("ct", TYPES)
def test_matches_sklearn_fixed_iterations(backend, ct, rng):
    sk_mixture = pytest.importorskip("sklearn.mixture")
    X = blobs(rng, 1, 150, 3, 3)[0]
    p0 = init_params(rng, X[None], 3, ct)
    prec = gmm.precisions(
        gmm.GMMParams(
            p0.weights[0],
            p0.means[0],
            p0.covariances[0],
            gmm.precisions_cholesky_from_covariances(p0.covariances[0], ct),
            ct,
        )
    )
    sk = sk_mixture.GaussianMixture(
        3,
        covariance_type=ct,
        max_iter=12,
        tol=0,
        weights_init=p0.weights[0],
        means_init=p0.means[0],
        precisions_init=prec,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk.fit(X)
    r = gmm.fit(
        backend.asarray(X),
        3,
        covariance_type=ct,
        max_iter=12,
        tol=0,
        init=gmm.GMMParams(p0.weights[0], p0.means[0], p0.covariances[0], None, ct),
        warn=False,
    )
    p = r.params
    for ours, ref in [
        (p.weights, sk.weights_),
        (p.means, sk.means_),
        (p.covariances, sk.covariances_),
        (p.precisions_cholesky, sk.precisions_cholesky_),
    ]:
        np.testing.assert_allclose(backend.numpy(ours), ref, rtol=1e-6, atol=1e-6)
    assert abs(r.lower_bound - sk.lower_bound_) < 1e-6
    assert r.n_iter == sk.n_iter_ == 12 and not r.converged
    # same per-point quantities
    np.testing.assert_allclose(
        backend.numpy(gmm.log_prob(backend.asarray(X), p)), sk.score_samples(X), rtol=1e-9, atol=1e-9
    )
    np.testing.assert_allclose(backend.numpy(gmm.predict_proba(backend.asarray(X), p)), sk.predict_proba(X), atol=1e-9)
    assert abs(gmm.bic(X, gmm.GMMParams(*(backend.numpy(a) for a in p[:4]), ct)) - sk.bic(X)) < 1e-6
    assert abs(gmm.aic(X, gmm.GMMParams(*(backend.numpy(a) for a in p[:4]), ct)) - sk.aic(X)) < 1e-6


@pytest.mark.parametrize("ct", TYPES)
def test_integer_weights_equal_repeated_points(ct, rng):
    X = blobs(rng, 1, 80, 2, 2)[0]
    reps = rng.integers(0, 3, size=80)
    p0 = init_params(rng, X[None], 2, ct)
    p0 = gmm.GMMParams(*(a[0] for a in p0[:3]), None, ct)
    a = gmm.fit(X, 2, reps.astype(float), covariance_type=ct, max_iter=8, tol=0, init=p0, warn=False)
    b = gmm.fit(np.repeat(X, reps, axis=0), 2, covariance_type=ct, max_iter=8, tol=0, init=p0, warn=False)
    for x, y in zip(a.params[:4], b.params[:4]):
        np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-10)
    assert abs(a.lower_bound - b.lower_bound) < 1e-10


# ----------------------------------------------------------------------------- numpy reference
@pytest.mark.parametrize("ct", TYPES)
@pytest.mark.parametrize(
    "B,N,D,K", [(3, 61, 3, 2), (2, 37, 1, 3), (1, 97, 5, 4), (2, 131, 11, 3), (1, 2600, 9, 2), (1, 70, 16, 5)]
)
def test_matches_numpy_reference_weighted(backend, dtype, ct, B, N, D, K, rng):
    X = blobs(rng, B, N, D, K, dtype=dtype)
    w = rng.uniform(0.2, 2.0, (B, N)) * (rng.random((B, N)) > 0.15)
    w = w.astype(dtype)
    p0 = init_params(rng, X, K, ct)
    n_iter = 4
    r = gmm.fit(
        backend.asarray(X),
        K,
        backend.asarray(w),
        covariance_type=ct,
        max_iter=n_iter,
        tol=0,
        init=gmm.GMMParams(*(backend.asarray(a.astype(dtype)) for a in p0[:3]), None, ct),
        warn=False,
    )
    assert backend.numpy(r.params.means).dtype == dtype
    t = dict(rtol=1e-8, atol=1e-9) if dtype == np.float64 else dict(rtol=2e-3, atol=2e-3)
    for b in range(B):
        ref = oracle.gmm_em(X[b], w[b], p0.weights[b], p0.means[b], p0.covariances[b], ct, 1e-6, n_iter)
        np.testing.assert_allclose(backend.numpy(r.params.weights)[b], ref[0], **t)
        np.testing.assert_allclose(backend.numpy(r.params.means)[b], ref[1], **t)
        np.testing.assert_allclose(backend.numpy(r.params.covariances)[b], ref[2], **t)
        np.testing.assert_allclose(float(backend.numpy(r.lower_bound)[b]), ref[3], **t)


@pytest.mark.parametrize("ct", TYPES)
def test_e_step_m_step_compose_to_em_step(backend, ct, rng):
    X = blobs(rng, 2, 50, 3, 2)
    w = rng.uniform(0, 1, (2, 50))
    p0 = init_params(rng, X, 2, ct)
    Xd, wd = backend.asarray(X), backend.asarray(w)
    p0d = gmm.GMMParams(*(backend.asarray(a) for a in p0[:3]), None, ct)
    new, lb = gmm.em_step(Xd, p0d, wd)
    e = gmm.e_step(Xd, p0d, wd)
    np.testing.assert_allclose(backend.numpy(lb), backend.numpy(e.lower_bound), rtol=1e-12)
    m = gmm.m_step(Xd, np.exp(backend.numpy(e.log_resp)), wd, covariance_type=ct)
    for a, b in zip(new[:4], m[:4]):
        np.testing.assert_allclose(backend.numpy(a), backend.numpy(b), rtol=1e-10, atol=1e-12)
    # log_prob variants are consistent
    comp = backend.numpy(gmm.log_prob(Xd, p0d, per="component"))
    wtd = backend.numpy(gmm.log_prob(Xd, p0d, per="weighted"))
    np.testing.assert_allclose(wtd, comp + np.log(p0.weights)[:, None], rtol=1e-12)
    np.testing.assert_allclose(
        comp, [oracle.gmm_log_gauss(X[b], p0.means[b], p0.covariances[b], ct) for b in range(2)], rtol=1e-10
    )
    np.testing.assert_array_equal(
        backend.numpy(gmm.predict(Xd, p0d)), comp.__add__(np.log(p0.weights)[:, None]).argmax(-1)
    )


@pytest.mark.parametrize("N", [1, 16, 300])
def test_em_step_matches_the_benchmarks_numpy_step(backend, N, rng):
    """W8-gmm times em_step against benchmarks.tiny.numpy_em_step: the two compute the same step
    (single mixture, unweighted, full covariances; the fast path on the cpu backend)."""
    from pygenmod.benchmarks.tiny import numpy_em_step, numpy_log_prob

    X = rng.standard_normal((N, 2))
    p = gmm.m_step(X, rng.dirichlet(np.ones(3), N))
    new, lb = gmm.em_step(backend.asarray(X), gmm.GMMParams(*(backend.asarray(a) for a in p[:4]), "full"))
    ref, ref_lb = numpy_em_step(X, p.weights, p.means, p.precisions_cholesky)
    assert lb == pytest.approx(ref_lb, rel=1e-12, abs=1e-12)
    for a, b in zip(new[:4], ref):
        np.testing.assert_allclose(backend.numpy(a), b, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(backend.numpy(gmm.log_prob(backend.asarray(X), p)), numpy_log_prob(X, *p[:2], p[3])[0])


# ----------------------------------------------------------------------------- batching
@pytest.mark.parametrize("ct", TYPES)
def test_ragged_batch_equals_per_set_fits(backend, ct, rng):
    sizes = [17, 60, 5, 33]
    K, D, Nmax = 2, 2, 60
    X = rng.normal(size=(4, Nmax, D)) * 50  # padding values are garbage
    W = np.zeros((4, Nmax))
    sets = []
    for b, n in enumerate(sizes):
        xb = blobs(rng, 1, n, D, K)[0]
        X[b, :n] = xb
        W[b, :n] = 1
        sets.append(xb)
    p0 = init_params(rng, np.stack([np.pad(s, ((0, Nmax - len(s)), (0, 0)), mode="edge") for s in sets]), K, ct)
    r = gmm.fit(
        backend.asarray(X),
        K,
        backend.asarray(W),
        covariance_type=ct,
        max_iter=15,
        tol=1e-6,
        init=gmm.GMMParams(*(backend.asarray(a) for a in p0[:3]), None, ct),
        warn=False,
    )
    for b, xb in enumerate(sets):
        one = gmm.fit(
            backend.asarray(xb),
            K,
            covariance_type=ct,
            max_iter=15,
            tol=1e-6,
            init=gmm.GMMParams(*(backend.asarray(a[b]) for a in p0[:3]), None, ct),
            warn=False,
        )
        for a, c in zip(r.params[:4], one.params[:4]):
            np.testing.assert_allclose(backend.numpy(a)[b], backend.numpy(c), rtol=1e-12, atol=1e-12)
        assert int(backend.numpy(r.n_iter)[b]) == one.n_iter
        assert bool(backend.numpy(r.converged)[b]) == one.converged


def test_per_set_convergence(rng):
    X = blobs(rng, 6, 200, 2, 3)
    r = gmm.fit(X, 3, max_iter=300, tol=1e-4, seed=1, warn=False)
    assert r.converged.all()
    assert (r.n_iter < 300).all()
    # sets stop on their own
    assert len(set(r.n_iter.tolist())) > 1


def test_thread_count_does_not_change_results(rng):
    X = blobs(rng, 1, 9000, 4, 3)  # one set, several point groups: parallel over groups
    p0 = init_params(rng, X, 3, "full")
    n0 = pygenmod.get_num_threads()
    try:
        out = []
        for n in (1, 2):
            pygenmod.set_num_threads(n)
            out.append(gmm.fit(X, 3, max_iter=5, tol=0, init=p0, warn=False))
    finally:
        pygenmod.set_num_threads(n0)
    for a, b in zip(out[0].params[:4], out[1].params[:4]):
        np.testing.assert_array_equal(a, b)
    # and a set processed inside a batch equals the same set alone
    Xb = np.concatenate([X, X[:, ::-1]], 0)
    pb = gmm.GMMParams(*(np.concatenate([a, a]) for a in p0[:3]), None, "full")
    rb = gmm.fit(Xb, 3, max_iter=5, tol=0, init=pb, warn=False)
    np.testing.assert_array_equal(rb.params.means[0], out[0].params.means[0])


def test_n_init_keeps_best_and_inits_are_reproducible(backend, rng):
    X = blobs(rng, 4, 120, 2, 4, sep=3.0)
    Xd = backend.asarray(X)
    for init in gmm.INITS:
        a = gmm.fit(Xd, 4, init=init, max_iter=20, seed=5, warn=False)
        b = gmm.fit(Xd, 4, init=init, max_iter=20, seed=5, warn=False)
        np.testing.assert_array_equal(backend.numpy(a.params.means), backend.numpy(b.params.means))
        assert np.isfinite(backend.numpy(a.lower_bound)).all()
    one = gmm.fit(Xd, 4, n_init=1, max_iter=30, seed=3, warn=False)
    best = gmm.fit(Xd, 4, n_init=4, max_iter=30, seed=3, warn=False)
    assert (backend.numpy(best.lower_bound) >= backend.numpy(one.lower_bound) - 1e-12).all()


def test_init_identical_across_cpu_and_numba(rng):
    avail = [n for n, b in pygenmod.backends().items() if b["available"] and n != "cuda"]
    if len(avail) < 2:
        pytest.skip("needs both cpu and numba backends")
    X = blobs(rng, 3, 70, 3, 3)
    res = {}
    for name in avail:
        with pygenmod.use_backend(name):
            res[name] = [
                gmm.fit(X, 3, init=i, max_iter=0, seed=9, warn=False).params.means
                for i in ("kmeans", "k-means++", "random_from_data")
            ]
    for a, b in zip(res["cpu"], res["numba"]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_warm_start_continues(rng):
    X = blobs(rng, 2, 100, 2, 2)
    full = gmm.fit(X, 2, max_iter=10, tol=0, seed=0, warn=False)
    half = gmm.fit(X, 2, max_iter=5, tol=0, seed=0, warn=False)
    rest = gmm.fit(X, 2, max_iter=5, tol=0, init=half.params, lower_bound_init=half.lower_bound, warn=False)
    np.testing.assert_allclose(rest.params.means, full.params.means, rtol=1e-12)
    np.testing.assert_allclose(rest.lower_bound, full.lower_bound, rtol=1e-12)


@pytest.mark.parametrize("ct", TYPES)
def test_initial_params_are_consistent(ct, rng):
    X = blobs(rng, 2, 90, 3, 3)
    for init in gmm.INITS:
        p = gmm.fit(X, 3, covariance_type=ct, init=init, max_iter=0, warn=False).params
        np.testing.assert_allclose(
            gmm.covariances_from_precisions_cholesky(p.precisions_cholesky, ct), p.covariances, rtol=1e-8, atol=1e-12
        )
        np.testing.assert_allclose(p.weights.sum(1), 1.0, rtol=1e-6)


def test_partial_given_init_overrides(rng):
    X = blobs(rng, 1, 90, 2, 3)[0]
    means = X[:3].copy()
    r = gmm.fit(X, 3, max_iter=0, means_init=means, warn=False)
    np.testing.assert_array_equal(r.params.means, means)
    R = np.full((90, 3), 1 / 3)
    r2 = gmm.fit(X, 3, max_iter=0, resp_init=R, warn=False)
    np.testing.assert_allclose(r2.params.means, np.broadcast_to(X.mean(0), (3, 2)), rtol=1e-10)


# ----------------------------------------------------------------------------- sampling
@pytest.mark.parametrize("ct", TYPES)
def test_sample_moments_and_determinism(backend, ct, rng):
    p0 = init_params(rng, blobs(rng, 2, 40, 3, 2), 2, ct)
    pd_ = gmm.GMMParams(*(backend.asarray(a) for a in p0[:3]), None, ct)
    x1, l1 = gmm.sample(pd_, 20000, seed=7)
    x2, l2 = gmm.sample(pd_, 20000, seed=7)
    x1, l1 = backend.numpy(x1), backend.numpy(l1)
    np.testing.assert_array_equal(x1, backend.numpy(x2))
    x3, _ = gmm.sample(pd_, 100, seed=8)
    assert not np.allclose(x1[:, :100], backend.numpy(x3))
    C = oracle.mixture_covariances(p0.covariances[0], ct, 2, 3)
    for k in range(2):
        sel = x1[0][l1[0] == k]
        assert abs(len(sel) / 20000 - p0.weights[0, k]) < 0.02
        np.testing.assert_allclose(sel.mean(0), p0.means[0, k], atol=0.1 * np.sqrt(C[k].diagonal().max()))
        np.testing.assert_allclose(np.cov(sel.T), C[k], atol=0.1 * C[k].diagonal().max())


def test_sample_same_on_cpu_and_numba(rng):
    avail = [n for n, b in pygenmod.backends().items() if b["available"] and n != "cuda"]
    if len(avail) < 2:
        pytest.skip("needs both cpu and numba backends")
    for ct in TYPES:
        p0 = init_params(rng, blobs(rng, 2, 40, 3, 2), 2, ct)
        out = []
        for name in avail:
            with pygenmod.use_backend(name):
                out.append(gmm.sample(p0, 33, seed=11, stream=4))
        np.testing.assert_allclose(out[0][0], out[1][0], rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(out[0][1], out[1][1])


# ----------------------------------------------------------------------------- degenerate data
def _finite(r):
    for a in r.params[:4]:
        assert np.isfinite(np.asarray(a)).all()


@pytest.mark.parametrize("ct", TYPES)
def test_degenerate_data_is_handled(backend, ct, rng):
    D = 3
    dup = np.ones((1, 20, D)) * 2.5  # all points identical
    few = rng.normal(size=(1, 20, D))  # K > number of valid points
    const = rng.normal(size=(1, 20, D))
    const[..., 1] = 7.0  # a constant dimension
    empty = rng.normal(size=(1, 20, D))
    X = np.concatenate([dup, few, const, empty])
    W = np.ones((4, 20))
    W[1, 3:] = 0
    W[3] = 0
    for reg in (1e-6, 0.0):
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            r = gmm.fit(
                backend.asarray(X),
                5,
                backend.asarray(W),
                covariance_type=ct,
                reg_covar=reg,
                max_iter=30,
                init="random_from_data",
            )
        assert sum(issubclass(w.category, gmm.GMMWarning) for w in rec) == 1
        r = gmm.FitResult(
            gmm.GMMParams(*(backend.numpy(a) for a in r.params[:4]), ct), *(backend.numpy(a) for a in r[1:])
        )
        _finite(r)
        assert np.isfinite(r.lower_bound[:3]).all() and r.lower_bound[3] == -np.inf
        assert (r.flags[3] & gmm.EMPTY_SET).all() and r.n_iter[3] == 0 and not r.converged[3]
        np.testing.assert_allclose(r.params.weights[3], 0.2)
        np.testing.assert_allclose(r.params.means[0], 2.5, atol=1e-6)
        np.testing.assert_allclose(r.params.means[2][:, 1], 7.0, atol=1e-6)
        np.testing.assert_allclose(r.params.weights.sum(1), 1.0, rtol=1e-10)
        if reg == 0.0:
            assert (r.flags[0] & gmm.REGULARISED).any()
    # silenceable
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gmm.fit(backend.asarray(X), 5, backend.asarray(W), covariance_type=ct, max_iter=5, warn=False)


def test_collapsed_component_flag(rng):
    X = blobs(rng, 1, 60, 2, 1)[0]
    p0 = gmm.GMMParams(
        np.array([0.5, 0.5]), np.array([[0.0, 0.0], [1e6, 1e6]]), np.stack([np.eye(2), np.eye(2) * 1e-4]), None, "full"
    )
    r = gmm.fit(X, 2, init=p0, max_iter=3, tol=0, warn=False)
    assert r.flags[1] & gmm.COLLAPSED and not r.flags[0] & gmm.COLLAPSED
    _finite(r)
    np.testing.assert_allclose(r.params.means[1], X.mean(0), rtol=1e-8)
    assert r.params.weights[1] < 1e-12


def test_float32_large_offset_matches_float64(rng):
    X = blobs(rng, 1, 400, 3, 2) + 1e4
    p0 = init_params(rng, X, 2, "full")
    r64 = gmm.fit(X, 2, max_iter=10, tol=0, init=p0, warn=False)
    r32 = gmm.fit(
        X.astype(np.float32),
        2,
        max_iter=10,
        tol=0,
        init=gmm.GMMParams(*(a.astype(np.float32) for a in p0[:3]), None, "full"),
        warn=False,
    )
    np.testing.assert_allclose(r32.params.means, r64.params.means, rtol=1e-6)
    np.testing.assert_allclose(r32.params.covariances, r64.params.covariances, rtol=2e-3, atol=2e-3)


def test_empty_and_tiny_shapes():
    r = gmm.fit(np.zeros((0, 5, 2)), 2, warn=False)
    assert r.params.means.shape == (0, 2, 2)
    for init in gmm.INITS:  # sets without points: neutral parameters
        r = gmm.fit(np.zeros((2, 0, 3)), 2, init=init, warn=False)
        assert (r.lower_bound == -np.inf).all() and (r.flags & gmm.EMPTY_SET).all()
    with pytest.raises(ValueError, match="dimension"):
        gmm.fit(np.zeros((2, 5, 0)), 2)
    r = gmm.fit(np.array([[1.0, 2.0]]), 1, warn=False)  # one point, one component
    _finite(r)
    np.testing.assert_allclose(r.params.means, [[1.0, 2.0]])


# ----------------------------------------------------------------------------- bad input
def test_bad_input_raises_clear_errors(rng):
    X = rng.normal(size=(2, 10, 3))
    with pytest.raises(ValueError, match="X"):
        gmm.fit(X[0, 0], 2)
    with pytest.raises(ValueError, match="NaN"):
        gmm.fit(np.full((5, 2), np.nan), 2)
    with pytest.raises(TypeError, match="X"):
        gmm.fit(X.astype(np.int32), 2)
    with pytest.raises(ValueError, match="sample_weight"):
        gmm.fit(X, 2, -np.ones((2, 10)))
    with pytest.raises(ValueError, match="sample_weight"):
        gmm.fit(X, 2, np.ones((2, 9)))
    with pytest.raises(ValueError, match="covariance_type"):
        gmm.fit(X, 2, covariance_type="banana")
    with pytest.raises(ValueError, match="n_components"):
        gmm.fit(X, 0)
    with pytest.raises(TypeError, match="n_components"):
        gmm.fit(X, 2.5)
    with pytest.raises(ValueError, match="reg_covar"):
        gmm.fit(X, 2, reg_covar=-1)
    with pytest.raises(ValueError, match="reg_covar"):
        gmm.fit(X, 2, reg_covar=np.ones(3))
    with pytest.raises(ValueError, match="tol"):
        gmm.fit(X, 2, tol=-1)
    with pytest.raises(ValueError, match="init"):
        gmm.fit(X, 2, init="nope")
    with pytest.raises(ValueError, match="means_init"):
        gmm.fit(X, 2, means_init=np.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match="weights_init"):
        gmm.fit(X, 2, weights_init=np.full((2, 2), 0.7))
    with pytest.raises(ValueError, match="precisions_init"):
        gmm.fit(X, 2, precisions_init=-np.ones((2, 2, 3)), covariance_type="diag")
    p = init_params(rng, X, 2, "full")
    with pytest.raises(ValueError, match="params.means"):
        gmm.e_step(X, p._replace(means=np.zeros((2, 2, 4))))
    with pytest.raises(ValueError, match="covariances"):
        gmm.e_step(X, p._replace(covariances=-p.covariances))
    with pytest.raises(ValueError, match="resp"):
        gmm.m_step(X, np.ones((2, 9, 2)))
    with pytest.raises(ValueError, match="n_samples"):
        gmm.sample(p, -1)
    with pytest.raises(TypeError, match="seed"):
        gmm.sample(p, 3, seed=1.5)


def test_cpu_kernel_boundary_checks(rng):
    if not pygenmod.backends()["cpu"]["available"]:
        pytest.skip("no compiled extension")
    from pygenmod import _cpu_gmm as k

    X = rng.normal(size=(2, 10, 3))
    W = np.ones((2, 10))
    args = lambda: [
        np.ones((2, 2)) / 2,
        np.zeros((2, 2, 3)),
        np.ones((2, 2, 3)),
        np.ones((2, 2, 3)),  # noqa: E731
        np.zeros(2),
        np.zeros(2, np.int64),
        np.zeros(2, np.uint8),
        np.zeros((2, 2), np.uint8),
    ]
    k.fit(X, W, np.zeros(2), 1, 2, 1, 0.0, *args())
    with pytest.raises(ValueError, match="W"):
        k.fit(X, W[:, :5], np.zeros(2), 1, 2, 1, 0.0, *args())
    with pytest.raises(ValueError, match="cov_type"):
        k.fit(X, W, np.zeros(2), 1, 7, 1, 0.0, *args())
    with pytest.raises(ValueError, match="covariances"):
        a = args()
        a[2] = np.ones((2, 3, 3))
        k.fit(X, W, np.zeros(2), 1, 2, 1, 0.0, *a)
    with pytest.raises(ValueError, match="dtype"):
        k.fit(X.astype(np.float32), W, np.zeros(2), 1, 2, 1, 0.0, *args())
    with pytest.raises(ValueError, match="C-contiguous"):
        k.fit(np.asfortranarray(X), W, np.zeros(2), 1, 2, 1, 0.0, *args())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    B=st.integers(0, 3),
    N=st.integers(1, 40),
    D=st.integers(1, 4),
    K=st.integers(1, 5),
    ct=st.sampled_from(TYPES),
    f32=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
    zero_frac=st.floats(0, 1),
    scale=st.sampled_from([1e-3, 1.0, 1e3]),
)
def test_fuzz_fit_is_finite(B, N, D, K, ct, f32, seed, zero_frac, scale):
    r = np.random.default_rng(seed)
    dt = np.float32 if f32 else np.float64
    X = (r.normal(size=(B, N, D)) * scale).astype(dt)
    if N > 2:
        X[:, : N // 3] = X[:, :1]  # duplicates
    W = (r.random((B, N)) >= zero_frac).astype(dt)
    res = gmm.fit(X, K, W, covariance_type=ct, max_iter=5, init=r.choice(gmm.INITS), seed=seed, warn=False)
    for a in res.params[:4]:
        assert a.dtype == dt and np.isfinite(a).all()
    assert not np.isnan(res.lower_bound).any()
    if B:
        lp = gmm.log_prob(X, res.params)
        assert not np.isnan(lp).any()


def test_torch_tensors_in_and_out(rng):
    torch = pytest.importorskip("torch")
    X = torch.from_numpy(blobs(rng, 2, 60, 2, 2))
    r = gmm.fit(X, 2, max_iter=5, seed=0, warn=False)
    assert isinstance(r.params.means, torch.Tensor) and r.params.means.shape == (2, 2, 2)
    ref = gmm.fit(X.numpy(), 2, max_iter=5, seed=0, warn=False)
    np.testing.assert_array_equal(r.params.means.numpy(), ref.params.means)
    lp = gmm.log_prob(X, r.params)
    assert isinstance(lp, torch.Tensor) and lp.shape == (2, 60)
