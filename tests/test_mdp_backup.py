"""Every backup kind (optimal, deterministic / stochastic policy, soft), dense and sparse,
against a plain float64 NumPy reference on every backend; input validation."""

import numpy as np
import pytest
import reference as oracle
from conftest import tol
from hypothesis import given, settings
from hypothesis import strategies as st

from pygenmod import mdp


def random_mdp(rng, B, S, A, dtype, zeros=0.0):
    P = rng.random((B, S, A, S))
    if zeros:
        P[rng.random(P.shape) < zeros] = 0
        P[..., 0] += 1e-3  # no empty row
    P /= P.sum(-1, keepdims=True)
    return P.astype(dtype), rng.standard_normal((B, S, A)).astype(dtype), rng.standard_normal((B, S)).astype(dtype)


def _as(backend, P, sparse):
    if not sparse:
        return backend.asarray(P)
    c = mdp.as_csr(P)
    return mdp.CSR(backend.asarray(c.data), backend.asarray(c.indices), backend.asarray(c.indptr), c.shape)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
# (2, 40, 3): S >= 32 and CSR rows of ~20 entries, the warp-per-state mappings on CUDA
@pytest.mark.parametrize("B,S,A", [(1, 1, 1), (3, 7, 2), (2, 13, 5), (2, 40, 3)])
def test_all_kinds_match_reference(backend, dtype, rng, sparse, B, S, A):
    P, R, V = random_mdp(rng, B, S, A, dtype, zeros=0.5)
    gamma = rng.uniform(0, 0.99, B)
    Pb, Rb, Vb = _as(backend, P, sparse), backend.asarray(R), backend.asarray(V)
    Q = oracle.bellman_q(P, R, V, gamma)
    t = tol(dtype)
    out = mdp.bellman_backup(Pb, Rb, Vb, gamma)
    np.testing.assert_allclose(backend.numpy(out.Q), Q, **t)
    np.testing.assert_allclose(backend.numpy(out.V), Q.max(-1), **t)
    assert backend.numpy(out.V).dtype == dtype
    pi = rng.integers(0, A, (B, S))
    out = mdp.bellman_backup(Pb, Rb, Vb, gamma, policy=backend.asarray(pi))
    np.testing.assert_allclose(backend.numpy(out.V), np.take_along_axis(Q, pi[..., None], -1)[..., 0], **t)
    probs = rng.random((B, S, A))
    probs[probs < 0.3] = 0
    probs[..., 0] += 0.1
    probs /= probs.sum(-1, keepdims=True)
    out = mdp.bellman_backup(Pb, Rb, Vb, gamma, policy=backend.asarray(probs.astype(dtype)))
    np.testing.assert_allclose(backend.numpy(out.V), (probs * Q).sum(-1), **t)
    tau = rng.uniform(0.1, 2.0, B)
    out = mdp.bellman_backup(Pb, Rb, Vb, gamma, temperature=tau)
    soft = tau[:, None] * np.log(np.exp(Q / tau[:, None, None]).sum(-1))
    np.testing.assert_allclose(backend.numpy(out.V), soft, **t)


def test_reward_with_next_state_axis(backend, rng):
    P, R, V = random_mdp(rng, 2, 6, 3, np.float64, zeros=0.3)
    R4 = rng.standard_normal((2, 6, 3, 6))
    expected = oracle.bellman_q(P, (P * R4).sum(-1), V, 0.9)
    for sparse in (False, True):
        out = mdp.bellman_backup(_as(backend, P, sparse), backend.asarray(R4), backend.asarray(V), 0.9)
        np.testing.assert_allclose(backend.numpy(out.Q), expected, rtol=1e-9, atol=1e-10)


def test_scipy_sparse_input(rng):
    sp = pytest.importorskip("scipy.sparse")
    P, R, V = random_mdp(rng, 1, 9, 3, np.float64, zeros=0.5)
    M = sp.csr_matrix(P[0].reshape(27, 9))
    out = mdp.bellman_backup(M, R[0], V[0], 0.8)
    np.testing.assert_allclose(out.Q, oracle.bellman_q(P, R, V, 0.8)[0], rtol=1e-12)
    # a batch of 2 stacked MDPs
    P2, R2, V2 = random_mdp(rng, 2, 5, 2, np.float64, zeros=0.5)
    M2 = sp.csr_matrix(P2.reshape(20, 5))
    out = mdp.bellman_backup(M2, R2, V2, 0.8)
    np.testing.assert_allclose(out.Q, oracle.bellman_q(P2, R2, V2, 0.8), rtol=1e-12)


def test_torch_tensor_in_torch_out(rng):
    torch = pytest.importorskip("torch")
    P, R, V = random_mdp(rng, 2, 5, 3, np.float64)
    out = mdp.bellman_backup(torch.from_numpy(P), torch.from_numpy(R), torch.from_numpy(V), 0.9)
    assert isinstance(out.V, torch.Tensor)
    np.testing.assert_allclose(out.V.numpy(), oracle.bellman_q(P, R, V, 0.9).max(-1), rtol=1e-12)


@pytest.mark.parametrize(
    "bad, match",
    [
        ("rowsum", "sum to 1"),
        ("negative", ">= 0"),
        ("nan", "NaN"),
        ("gamma1", "gamma"),
        ("gammaneg", "gamma"),
        ("Rshape", "R"),
        ("Vshape", "V"),
        ("int", "float32 or float64"),
        ("policy_range", "policy"),
        ("policy_rows", "policy"),
        ("tau", "temperature"),
        ("both", "at most one"),
    ],
)
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
def test_bad_input_clear_errors(rng, bad, match, sparse):
    P, R, V = random_mdp(rng, 2, 4, 3, np.float64)
    kw = {}
    gamma = 0.9
    if bad == "rowsum":
        P[1, 2, 1] *= 1.01
    elif bad == "negative":
        P[0, 0, 0, 0] = -0.1
        P[0, 0, 0, 1] += 0.1
    elif bad == "nan":
        P[0, 1, 1, 1] = np.nan
    elif bad == "gamma1":
        gamma = 1.0
    elif bad == "gammaneg":
        gamma = [-0.1, 0.5]
    elif bad == "Rshape":
        R = R[:, :, :2]
    elif bad == "Vshape":
        V = V[:, :3]
    elif bad == "int":
        R = R.astype(np.int64)
    elif bad == "policy_range":
        kw = dict(policy=np.full((2, 4), 3))
    elif bad == "policy_rows":
        kw = dict(policy=np.full((2, 4, 3), 0.5))
    elif bad == "tau":
        kw = dict(temperature=0.0)
    elif bad == "both":
        kw = dict(policy=np.zeros((2, 4), np.int64), temperature=1.0)
    Pin = P
    if sparse and bad not in ("int",):
        Pin = mdp.CSR(
            P.reshape(-1), np.tile(np.arange(4, dtype=np.int32), 24), np.arange(25, dtype=np.int64) * 4, (2, 4, 3)
        )
    with pytest.raises((ValueError, TypeError), match=match):
        mdp.bellman_backup(Pin, R, V, gamma, **kw)


def test_csr_structure_checked():
    data = np.full(4, 1.0)
    with pytest.raises(ValueError, match="column indices"):
        mdp.bellman_backup(
            mdp.CSR(data, np.array([0, 1, 5, 0], np.int32), np.arange(5, dtype=np.int64), (1, 2, 2)),
            np.zeros((2, 2)),
            np.zeros(2),
            0.9,
        )
    with pytest.raises(ValueError, match="indptr"):
        mdp.bellman_backup(
            mdp.CSR(data, np.zeros(4, np.int32), np.array([0, 1, 2, 3, 9]), (1, 2, 2)),
            np.zeros((2, 2)),
            np.zeros(2),
            0.9,
        )


@settings(max_examples=30, deadline=None)
@given(
    B=st.integers(1, 3),
    S=st.integers(1, 9),
    A=st.integers(1, 4),
    seed=st.integers(0, 2**31),
    sparse=st.booleans(),
    kind=st.sampled_from(["opt", "det", "soft"]),
)
def test_fuzz_cpp_boundary(B, S, A, seed, sparse, kind):
    rng = np.random.default_rng(seed)
    P, R, V = random_mdp(rng, B, S, A, np.float64, zeros=0.5)
    kw = {"det": dict(policy=rng.integers(0, A, (B, S))), "soft": dict(temperature=0.5)}.get(kind, {})
    Pin = mdp.as_csr(P) if sparse else P
    out = mdp.bellman_backup(Pin, R, V, 0.7, **kw)
    Q = oracle.bellman_q(P, R, V, 0.7)
    np.testing.assert_allclose(out.Q, Q, rtol=1e-10, atol=1e-12)
    # the raw kernels reject inconsistent shapes instead of reading out of bounds
    from pygenmod import _cpu_mdp

    with pytest.raises(ValueError):
        _cpu_mdp.backup_dense(
            P,
            R[:, :, : max(A - 1, 0)] if A > 1 else R[:, :0],
            V,
            np.full(B, 0.7),
            0,
            None,
            None,
            None,
            np.empty((B, S, A)),
            np.empty((B, S)),
            np.empty((B, S), np.int64),
        )
    with pytest.raises(ValueError):
        _cpu_mdp.backup_dense(
            P,
            R,
            V,
            np.full(B, 0.7),
            1,
            np.full((B, S), A, np.int64),
            None,
            None,
            np.empty((B, S, A)),
            np.empty((B, S)),
            np.empty((B, S), np.int64),
        )


def test_single_mdp_without_batch_axis(backend, rng):
    P, R, V = random_mdp(rng, 1, 5, 3, np.float64)
    out = mdp.bellman_backup(backend.asarray(P[0]), backend.asarray(R[0]), backend.asarray(V[0]), 0.9)
    assert backend.numpy(out.V).shape == (5,)
    np.testing.assert_allclose(backend.numpy(out.Q), oracle.bellman_q(P, R, V, 0.9)[0], rtol=1e-12, atol=1e-12)


def test_empty_batch_rejected(rng):
    P, R, V = random_mdp(rng, 0, 4, 2, np.float64)
    with pytest.raises(ValueError, match="empty batch"):
        mdp.bellman_backup(P, R, V, 0.9)
