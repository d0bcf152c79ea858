"""JAX arrays through the NumPy API (outside jax.jit): taken through DLPack without a copy,
results back as JAX arrays, equal to the NumPy path."""

import numpy as np
import pytest

from pygenmod import _arrays, mdp, returns, sampling, spatial

jax = pytest.importorskip("jax", reason="JAX is not installed (a test extra)")
jnp = jax.numpy


def test_jax_input_is_taken_zero_copy():
    x = jnp.arange(12, dtype=jnp.float32).reshape(3, 4)
    view = _arrays.to_native(x)
    assert isinstance(view, np.ndarray)
    assert view.__array_interface__["data"][0] == x.unsafe_buffer_pointer()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_results_come_back_as_jax_arrays_equal_to_numpy(dtype):
    if dtype == np.float64 and not jax.config.jax_enable_x64:
        pytest.skip("JAX float64 needs jax_enable_x64")
    rng = np.random.default_rng(0)
    mu, lv = rng.standard_normal((6, 5)).astype(dtype), 0.1 * rng.standard_normal((6, 5)).astype(dtype)
    z = sampling.rsample_normal(jnp.asarray(mu), jnp.asarray(lv), seed=3)
    assert isinstance(z, jax.Array) and z.dtype == dtype
    np.testing.assert_array_equal(np.asarray(z), sampling.rsample_normal(mu, lv, seed=3))
    kl = sampling.kl_normal(jnp.asarray(mu), jnp.asarray(lv))
    np.testing.assert_array_equal(np.asarray(kl), sampling.kl_normal(mu, lv))

    r, v = rng.standard_normal((7, 3)).astype(dtype), rng.standard_normal((7, 3)).astype(dtype)
    a = returns.gae(jnp.asarray(r), jnp.asarray(v), gamma=0.9, lam=0.8)
    assert isinstance(a.advantages, jax.Array)
    np.testing.assert_array_equal(np.asarray(a.advantages), returns.gae(r, v, gamma=0.9, lam=0.8).advantages)

    x = rng.standard_normal((2, 3, 5, 4)).astype(dtype)
    k = spatial.spatial_softmax(jnp.asarray(x), temperature=1.0)
    assert isinstance(k, jax.Array)
    np.testing.assert_array_equal(np.asarray(k), spatial.spatial_softmax(x, temperature=1.0))


def test_mdp_solve_takes_jax_arrays():
    P, R, _ = mdp.gridworld(step_reward=-0.04)
    ref = mdp.solve(P, R, 0.99)
    sol = mdp.solve(jnp.asarray(P, dtype=jnp.float32), jnp.asarray(R, dtype=jnp.float32), 0.99)
    assert isinstance(sol.V, jax.Array)
    np.testing.assert_array_equal(np.asarray(sol.policy), ref.policy)
    np.testing.assert_allclose(np.asarray(sol.V), ref.V, rtol=1e-4, atol=1e-4)
