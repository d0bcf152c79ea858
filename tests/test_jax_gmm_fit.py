"""pygenmod.jax.gmm_fit: pygenmod.gmm.fit with its initialisations inside jax.jit / vmap.

The initialisation (k-means++, Lloyd k-means, random_from_data), M-step and EM kernels are the
NumPy API's behind FFI targets: the fit is compared bitwise with pygenmod.gmm.fit for the same
seed (init="random", normalised in jnp, to tolerance).
"""

import _jax_common  # first: skips this module without JAX or a compiled build
import numpy as np
import pytest
from _jax_common import jax

import pygenmod.jax as pj
from pygenmod import gmm

dtype, x64 = _jax_common.dtype, _jax_common.x64  # the shared fixtures


def _data(dtype, B=3, N=50, D=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(B, N, D))
    X[:, : N // 2] += 4
    return X.astype(dtype)


def check_fit(got, ref, bitwise=True, rtol=None):
    for a, b in zip(got.params[:4], ref.params[:4]):
        if bitwise:
            np.testing.assert_array_equal(np.asarray(a), b)
        else:
            np.testing.assert_allclose(np.asarray(a), b, rtol=rtol, atol=rtol)
    np.testing.assert_array_equal(np.asarray(got.n_iter).astype(np.int64), ref.n_iter)
    np.testing.assert_array_equal(np.asarray(got.converged), ref.converged)
    np.testing.assert_array_equal(np.asarray(got.flags), ref.flags)
    if bitwise:
        np.testing.assert_array_equal(np.asarray(got.lower_bound), ref.lower_bound)
    assert got.params.covariance_type == ref.params.covariance_type


@pytest.mark.parametrize("init", ["kmeans", "k-means++", "random_from_data"])
@pytest.mark.parametrize("ct", ["full", "tied", "diag", "spherical"])
def test_gmm_fit_bitwise(dtype, init, ct):
    X = _data(dtype)
    ref = gmm.fit(X, 3, covariance_type=ct, init=init, seed=5, stream=2, warn=False)
    got = jax.jit(lambda X: pj.gmm_fit(X, 3, covariance_type=ct, init=init, seed=5, stream=2))(X)
    check_fit(got, ref)


def test_gmm_fit_options_bitwise(dtype):
    """n_init, sample_weight (padding), a JAX key (traced), one set, max_iter=0, lower_bound_init."""
    X = _data(dtype, B=2, N=40, seed=1)
    W = (np.random.default_rng(2).random((2, 40)) > 0.2).astype(dtype)
    key = jax.random.key(7)
    ref = gmm.fit(X, 2, W, n_init=3, seed=key, tol=1e-5, reg_covar=1e-4, warn=False)
    got = jax.jit(lambda X, W, k: pj.gmm_fit(X, 2, W, n_init=3, seed=k, tol=1e-5, reg_covar=1e-4))(X, W, key)
    check_fit(got, ref)
    ref = gmm.fit(X[0], 2, seed=3, warn=False)
    got = pj.gmm_fit(X[0], 2, seed=3)
    assert np.asarray(got.params.means).shape == (2, 2) and np.asarray(got.n_iter).shape == ()
    np.testing.assert_array_equal(np.asarray(got.params.means), ref.params.means)
    assert int(got.n_iter) == ref.n_iter and float(got.lower_bound) == ref.lower_bound
    ref = gmm.fit(X, 2, seed=3, max_iter=0, warn=False)
    check_fit(pj.gmm_fit(X, 2, seed=3, max_iter=0), ref)
    ref = gmm.fit(X, 2, seed=3, lower_bound_init=-1.5, warn=False)
    check_fit(pj.gmm_fit(X, 2, seed=3, lower_bound_init=-1.5), ref)


def test_gmm_fit_random_init(dtype):
    X = _data(dtype, seed=3)
    ref = gmm.fit(X, 3, init="random", n_init=2, seed=4, warn=False)
    got = jax.jit(lambda X: pj.gmm_fit(X, 3, init="random", n_init=2, seed=4))(X)
    check_fit(got, ref, bitwise=False, rtol=1e-3 if dtype == np.float32 else 1e-8)


def test_gmm_fit_vmap_folds_sets():
    X = _data(np.float32, B=6, N=30, seed=4)
    f = jax.vmap(lambda X: pj.gmm_fit(X, 2, seed=9).params.means)
    Xn = X.reshape(2, 3, 30, 2)
    got = jax.jit(f)(Xn)
    ref = gmm.fit(X, 2, seed=9, warn=False)  # vmapped element n's set b is set n * 3 + b
    np.testing.assert_array_equal(np.asarray(got).reshape(6, 2, 2), ref.params.means)
    jaxpr = str(jax.make_jaxpr(f)(Xn))
    for target in ("pygenmod_gmm_init", "pygenmod_gmm_m_step", "pygenmod_gmm_fit"):
        assert jaxpr.count(target) == 1, target


def test_gmm_fit_empty_and_errors():
    X = _data(np.float32, B=2, N=10)
    r = pj.gmm_fit(np.zeros((2, 0, 2), np.float32), 2, seed=1)
    ref = gmm.fit(np.zeros((2, 0, 2), np.float32), 2, seed=1, warn=False)
    check_fit(r, ref)
    with pytest.raises(TypeError, match="explicit seed"):
        pj.gmm_fit(X, 2)
    with pytest.raises(ValueError, match="n_components"):
        pj.gmm_fit(X, 0, seed=1)
    with pytest.raises(ValueError, match="covariance_type"):
        pj.gmm_fit(X, 2, covariance_type="banded", seed=1)
    with pytest.raises(ValueError, match="init"):
        pj.gmm_fit(X, 2, init="kmeans||", seed=1)
    with pytest.raises(TypeError, match="gmm_em"):
        pj.gmm_fit(X, 2, init=gmm.fit(X, 2, seed=1, warn=False).params, seed=1)
    with pytest.raises(ValueError, match="n_init"):
        pj.gmm_fit(X, 2, n_init=0, seed=1)
    with pytest.raises(ValueError, match="tol"):
        pj.gmm_fit(X, 2, tol=-1, seed=1)
    with pytest.raises(ValueError, match="sample_weight"):
        pj.gmm_fit(X, 2, -np.ones((2, 10), np.float32), seed=1)
    with pytest.raises(ValueError, match="sample_weight"):
        pj.gmm_fit(X, 2, np.ones((2, 9), np.float32), seed=1)
    with pytest.raises(ValueError, match="X"):
        pj.gmm_fit(np.zeros((2, 10, 0), np.float32), 2, seed=1)
    with pytest.raises(TypeError, match="not differentiable"):
        jax.grad(lambda X: pj.gmm_fit(X, 2, seed=1).lower_bound.sum())(X)
