"""GaussianMixture / BatchGaussianMixture: scikit-learn's estimator contract and parity."""

import warnings

import numpy as np
import pytest
from conftest import run_python

from pygenmod import gmm
from pygenmod.gmm import BatchGaussianMixture, GaussianMixture

sklearn = pytest.importorskip("sklearn")
from sklearn import mixture  # noqa: E402

TYPES = gmm.COVARIANCE_TYPES

# Checks that cannot apply, with the reason (none fail today; these are skipped by sklearn itself).
INAPPLICABLE = {
    "check_sample_weights_pandas_series": "needs pandas (not a dependency)",
    "check_array_api_input": "needs SCIPY_ARRAY_API=1 and array-api-compat; pygenmod takes CuPy/DLPack arrays its own way",
}


def test_check_estimator():
    from sklearn.utils.estimator_checks import check_estimator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(GaussianMixture(), on_fail=None)
    bad = [
        (r["check_name"], str(r["exception"])[:200])
        for r in results
        if r["status"] == "failed" or (r["status"] == "skipped" and r["check_name"] not in INAPPLICABLE)
    ]
    assert not bad, bad
    assert len(results) > 40


def blobs(rng, N=200, D=3, K=3):
    c = rng.normal(scale=5, size=(K, D))
    return c[rng.integers(0, K, N)] + rng.normal(size=(N, D))


@pytest.mark.parametrize("ct", TYPES)
def test_parity_with_sklearn_same_init(ct, rng):
    X = blobs(rng)
    ref0 = mixture.GaussianMixture(3, covariance_type=ct, max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref0.fit(X)
    kw = dict(
        covariance_type=ct,
        max_iter=15,
        tol=0,
        weights_init=ref0.weights_,
        means_init=ref0.means_,
        precisions_init=ref0.precisions_,
    )
    sk = mixture.GaussianMixture(3, **kw)
    ours = GaussianMixture(3, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk.fit(X)
        labels = ours.fit_predict(X)
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        np.testing.assert_allclose(getattr(ours, name), getattr(sk, name), rtol=1e-6, atol=1e-6, err_msg=name)
    assert ours.n_iter_ == sk.n_iter_ and ours.converged_ == sk.converged_
    assert abs(ours.lower_bound_ - sk.lower_bound_) < 1e-8
    np.testing.assert_array_equal(labels, sk.predict(X))
    np.testing.assert_allclose(ours.score_samples(X), sk.score_samples(X), rtol=1e-8)
    np.testing.assert_allclose(ours.predict_proba(X), sk.predict_proba(X), atol=1e-8)
    assert abs(ours.score(X) - sk.score(X)) < 1e-8
    assert abs(ours.bic(X) - sk.bic(X)) < 1e-5 and abs(ours.aic(X) - sk.aic(X)) < 1e-5
    Xs, ys = ours.sample(50)
    assert Xs.shape == (50, 3) and ys.shape == (50,)


def test_default_fit_quality_and_float32(rng):
    X = blobs(rng, N=600)
    sk = mixture.GaussianMixture(3, random_state=0).fit(X)
    ours = GaussianMixture(3, random_state=0).fit(X)
    assert ours.converged_
    assert ours.score(X) > sk.score(X) - 0.05
    o32 = GaussianMixture(3, random_state=0).fit(X.astype(np.float32))
    assert o32.means_.dtype == np.float32
    assert abs(o32.score(X) - ours.score(X)) < 1e-3


def test_pipeline_and_clone(rng):
    from sklearn.base import clone
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = blobs(rng)
    pipe = make_pipeline(StandardScaler(), GaussianMixture(3, random_state=1)).fit(X)
    assert pipe.predict(X).shape == (200,)
    est = clone(GaussianMixture(4, covariance_type="diag", reg_covar=1e-3))
    assert est.get_params()["covariance_type"] == "diag" and est.n_components == 4
    assert "diag" in repr(est)


def test_warm_start(rng):
    X = blobs(rng)
    g = GaussianMixture(3, max_iter=3, tol=0, warm_start=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g.fit(X)
        m3 = g.means_.copy()
        g.fit(X)
    h = GaussianMixture(3, max_iter=6, tol=0, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        h.fit(X)
    assert not np.allclose(m3, g.means_)
    np.testing.assert_allclose(g.means_, h.means_, rtol=1e-10)


def test_sample_weight(rng):
    X = blobs(rng)
    w = rng.integers(0, 3, len(X))
    a = GaussianMixture(3, random_state=0, init_params="random_from_data", max_iter=5, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a.fit(X, sample_weight=w)
    assert np.isfinite(a.means_).all()
    with pytest.raises(ValueError, match="sample_weight"):
        GaussianMixture(2).fit(X, sample_weight=np.zeros(len(X)))


def test_batch_estimator_equals_single(rng):
    B = 3
    X = np.stack([blobs(rng, N=120) for _ in range(B)])
    ref = [GaussianMixture(3, max_iter=1, random_state=0).fit(X[b]) for b in range(B)]
    wi = np.stack([r.weights_ for r in ref])
    mi = np.stack([r.means_ for r in ref])
    pi = np.stack([r.precisions_ for r in ref])
    bat = BatchGaussianMixture(3, weights_init=wi, means_init=mi, precisions_init=pi, max_iter=20, warn=False).fit(X)
    for b in range(B):
        one = GaussianMixture(3, weights_init=wi[b], means_init=mi[b], precisions_init=pi[b], max_iter=20).fit(X[b])
        np.testing.assert_allclose(bat.means_[b], one.means_, rtol=1e-10)
        np.testing.assert_allclose(bat.score(X)[b], one.score(X[b]), rtol=1e-10)
        assert bat.n_iter_[b] == one.n_iter_
    assert bat.predict(X).shape == (B, 120)
    assert bat.predict_proba(X).shape == (B, 120, 3)
    assert bat.bic(X).shape == (B,) and bat.aic(X).shape == (B,)
    Xs, ys = bat.sample(7)
    assert Xs.shape == (B, 7, 3)
    with pytest.raises(ValueError, match="X"):
        bat.predict(X[:, :, :2])


def test_not_fitted_and_bad_params(rng):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        GaussianMixture(2).predict(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="covariance_type"):
        GaussianMixture(2, covariance_type="x").fit(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="init_params"):
        GaussianMixture(2, init_params="x").fit(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="Invalid parameter"):
        GaussianMixture().set_params(bogus=1)


def test_import_does_not_import_sklearn():
    code = "import sys, pygenmod.gmm; assert 'sklearn' not in sys.modules, 'sklearn imported'"
    run_python(["-c", code], check=True)
