"""Reliability (issue 18): GMM integer arguments validated once in Python (the same ValueError on
every backend), empty batches, and the scikit-learn drop-in's error wording and its optional
raise-on-degenerate-covariance behaviour."""

import re
import warnings

import numpy as np
import pytest

from pygenmod import gmm
from pygenmod.gmm import GaussianMixture

pytestmark = pytest.mark.reliability

COV = ("full", "tied", "diag", "spherical")


@pytest.fixture
def X(rng):
    return np.concatenate([rng.standard_normal((40, 2)), rng.standard_normal((40, 2)) + 6])


@pytest.mark.parametrize("name", ["max_iter", "n_init", "n_components"])
@pytest.mark.parametrize("value", [2**62 + 1, 2**63, 2**64])
def test_fit_counts_beyond_int64_name_the_argument(backend, X, name, value):
    kw = {"n_components": 2, name: value}
    with pytest.raises(ValueError, match=f"{name}: must be <= 2\\*\\*62"):
        gmm.fit(backend.asarray(X), **kw)


def test_fit_max_iter_at_the_limit_runs_to_convergence(backend, X):
    """2**62 (the count limit: loops count to max_iter + 1 in int64) is valid: numba used to wrap
    values past int64 to 0 iterations silently."""
    r = gmm.fit(backend.asarray(X), 2, max_iter=2**62, tol=1e-3, warn=False)
    assert r.converged and 1 <= int(r.n_iter) < 1000


@pytest.mark.parametrize(
    "name,value,err",
    [
        ("max_iter", 1.5, TypeError),
        ("max_iter", True, TypeError),
        ("max_iter", -1, ValueError),
        ("n_init", 0, ValueError),
        ("seed", -1, ValueError),
        ("seed", 2**64, ValueError),
        ("seed", 1.5, TypeError),
        ("random_state", -1, ValueError),
        ("random_state", 2**64, ValueError),
    ],
)
@pytest.mark.filterwarnings("ignore:gmm.fit.random_state:DeprecationWarning")
def test_fit_bad_integer_arguments(backend, X, name, value, err):
    with pytest.raises(err, match=name):
        gmm.fit(backend.asarray(X), 2, **{name: value})


@pytest.mark.parametrize("ct", COV)
@pytest.mark.parametrize("init", gmm.INITS)
def test_fit_empty_batch_same_on_every_backend(backend, ct, init):
    X0 = backend.asarray(np.zeros((0, 5, 2)))
    r = gmm.fit(X0, 2, covariance_type=ct, init=init, n_init=2)
    assert r.params.weights.shape == (0, 2) and r.params.means.shape == (0, 2, 2)
    assert r.params.covariances.shape == gmm.cov_shape(ct, 0, 2, 2)
    assert r.lower_bound.shape == (0,) and r.n_iter.shape == (0,) and r.flags.shape == (0, 2)
    x, lab = gmm.sample(r.params, 3)
    assert x.shape == (0, 3, 2) and lab.shape == (0, 3)
    assert gmm.predict(X0, r.params).shape == (0, 5)


# ----------------------------------------------------------------- scikit-learn's wording
def _gm(**kw):
    return GaussianMixture(n_components=2, **kw)


def test_sklearn_weights_messages(backend, X):
    w = np.full((2, 1), 0.5)
    with pytest.raises(
        ValueError, match=re.escape("The parameter 'weights' should have the shape of (2,), but got (2, 1)")
    ):
        _gm(weights_init=w).fit(X)
    w = np.array([1.2, 1.7])  # scikit-learn prints the min as "max value" (kept verbatim)
    with pytest.raises(
        ValueError,
        match=re.escape(
            "The parameter 'weights' should be in the range [0, 1], but got max value 1.20000, min value 1.70000"
        ),
    ):
        _gm(weights_init=w).fit(X)
    with pytest.raises(
        ValueError, match=re.escape("The parameter 'weights' should be normalized, but got sum(weights) = 0.80000")
    ):
        _gm(weights_init=np.array([0.3, 0.5])).fit(X)


def test_sklearn_means_message(backend, X):
    with pytest.raises(
        ValueError, match=re.escape("The parameter 'means' should have the shape of (2, 2), but got (3, 2)")
    ):
        _gm(means_init=np.zeros((3, 2))).fit(X)


@pytest.mark.parametrize(
    "ct,bad_shape,not_pos,what",
    [
        ("full", (3, 2, 2), np.array([[[-1.0, 0], [0, 1]], [[1, 0], [0, 1]]]), "symmetric, positive-definite"),
        ("tied", (3, 3), np.array([[-1.0, 0], [0, 1]]), "symmetric, positive-definite"),
        ("diag", (3, 2), -np.ones((2, 2)), "positive"),
        ("spherical", (3,), -np.ones(2), "positive"),
    ],
)
def test_sklearn_precisions_messages(backend, X, ct, bad_shape, not_pos, what):
    with pytest.raises(ValueError, match=f"The parameter '{ct} precision' should have the shape of"):
        _gm(covariance_type=ct, precisions_init=np.ones(bad_shape)).fit(X)
    with pytest.raises(ValueError, match=f"'{ct} precision' should be {what}"):
        _gm(covariance_type=ct, precisions_init=not_pos).fit(X)


def test_sklearn_sample_message(backend, X):
    g = _gm(random_state=0).fit(X)
    with pytest.raises(ValueError, match="Invalid value for 'n_samples'"):
        g.sample(0)


def test_sklearn_parameter_constraint_messages(backend, X):
    pytest.importorskip("sklearn")
    with pytest.raises(
        ValueError,
        match=re.escape(
            "The 'n_components' parameter of GaussianMixture must be an int in the range [1, inf). Got 0 instead."
        ),
    ):
        GaussianMixture(n_components=0).fit(X)
    with pytest.raises(ValueError, match="The 'tol' parameter of GaussianMixture must be"):
        GaussianMixture(tol=-1.0).fit(X)
    with pytest.raises(ValueError, match="max_iter: must be <= 2"):  # beyond sklearn's own checks
        GaussianMixture(max_iter=2**63).fit(X)


def _degenerate():
    return np.vstack((np.ones((5, 5)), np.zeros((5, 5))))


@pytest.mark.parametrize("ct", ["full", "tied"])
def test_on_degenerate_raise_is_sklearns_error(backend, ct):
    msg = re.escape(
        "Fitting the mixture model failed because some components have ill-defined empirical "
        "covariance (for instance caused by singleton or collapsed samples). Try to decrease the "
        "number of components, increase reg_covar, or scale the input data."
    )
    g = GaussianMixture(n_components=10, reg_covar=0, covariance_type=ct, random_state=0, on_degenerate="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match=msg):
            g.fit(_degenerate())
        g.set_params(reg_covar=1e-6).fit(_degenerate())  # regularised data: no error


def test_on_degenerate_default_regularises(backend):
    g = GaussianMixture(n_components=10, reg_covar=0, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g.fit(_degenerate())
    assert np.isfinite(g.precisions_cholesky_).all() and (g.flags_ & gmm.REGULARISED).any()


def test_on_degenerate_bad_value_named(X):
    with pytest.raises(ValueError, match="on_degenerate"):
        GaussianMixture(2, on_degenerate="ignore").fit(X)
