"""Dense optimality backup against a plain float64 NumPy reference, on every backend."""
import numpy as np
import pytest

from conftest import tol
from pygenmod import mdp


def reference_backup(P, R, V, gamma):
    P, R, V = (np.asarray(a, np.float64) for a in (P, R, V))
    Q = R + np.asarray(gamma, np.float64).reshape(-1, 1, 1) * np.einsum("bsat,bt->bsa", P, V)
    return Q, Q.max(-1), Q.argmax(-1)


def random_mdp(rng, B, S, A, dtype):
    P = rng.random((B, S, A, S))
    P /= P.sum(-1, keepdims=True)
    return P.astype(dtype), rng.standard_normal((B, S, A)).astype(dtype), rng.standard_normal((B, S)).astype(dtype)


@pytest.mark.parametrize("B,S,A", [(1, 1, 1), (3, 7, 2), (2, 31, 5)])
def test_backup_matches_reference(backend, dtype, rng, B, S, A):
    P, R, V = random_mdp(rng, B, S, A, dtype)
    gamma = rng.uniform(0, 0.99, B)
    out = mdp.bellman_backup(backend.asarray(P), backend.asarray(R), backend.asarray(V), gamma)
    Q_ref, V_ref, pi_ref = reference_backup(P, R, V, gamma)
    assert backend.numpy(out.Q).dtype == dtype
    np.testing.assert_allclose(backend.numpy(out.Q), Q_ref, **tol(dtype))
    np.testing.assert_allclose(backend.numpy(out.V), V_ref, **tol(dtype))
    if dtype == np.float64:
        np.testing.assert_array_equal(backend.numpy(out.policy), pi_ref)


def test_single_mdp_without_batch_axis(backend, rng):
    P, R, V = random_mdp(rng, 1, 5, 3, np.float64)
    out = mdp.bellman_backup(backend.asarray(P[0]), backend.asarray(R[0]), backend.asarray(V[0]), 0.9)
    assert backend.numpy(out.V).shape == (5,)


def test_bad_shapes_rejected(rng):
    P, R, V = random_mdp(rng, 2, 4, 3, np.float64)
    with pytest.raises(ValueError, match="R"):
        mdp.bellman_backup(P, R[:, :3], V, 0.9)
    with pytest.raises(ValueError, match="gamma"):
        mdp.bellman_backup(P, R, V, 1.5)


def test_empty_batch_rejected(rng):
    P, R, V = random_mdp(rng, 0, 4, 2, np.float64)
    with pytest.raises(ValueError, match="empty batch"):
        mdp.bellman_backup(P, R, V, 0.9)
