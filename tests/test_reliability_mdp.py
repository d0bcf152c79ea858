"""Reliability of pygenmod.mdp on bad input (issue 18: items 8, 9, 15), on every backend."""

import numpy as np
import pytest

from pygenmod import mdp

pytestmark = pytest.mark.reliability


def small(S=4, A=3, seed=0):
    return mdp.random_mdp(S, A, seed=seed)


# -- item 9: an MDP without actions has no backup and no policy
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
def test_zero_actions_rejected(backend, sparse):
    S = 4
    P = np.zeros((S, 0, S))
    R = np.zeros((S, 0))
    if sparse:
        P = mdp.CSR(np.zeros(0), np.zeros(0, np.int32), np.zeros(1, np.int64), (1, S, 0))
    else:
        P = backend.asarray(P)
    R = backend.asarray(R)
    for call in (
        lambda: mdp.bellman_backup(P, R, np.zeros(S), 0.9),
        lambda: mdp.value_iteration(P, R, 0.9),
        lambda: mdp.modified_policy_iteration(P, R, 0.9, m=3),
        lambda: mdp.policy_iteration(P, R, 0.9),
    ):
        with pytest.raises(ValueError, match=r"P: the MDP has no actions \(A = 0\)"):
            call()


# -- item 8: CSR column indices are checked before the int32 cast (which would wrap)
def test_csr_indices_checked_before_the_cast(backend):
    if backend.name == "cuda":
        pytest.skip("host CSR arrays only")
    P, R = small()
    c = mdp.as_csr(P)
    wrapped = c.indices.astype(np.int64) + 2**32  # == the valid indices after an int32 cast
    bad = mdp.CSR(c.data, wrapped, c.indptr, c.shape)
    with pytest.raises(ValueError, match="P: CSR"):
        mdp.value_iteration(bad, R, 0.9)
    with pytest.raises(ValueError, match="P: CSR"):
        mdp.bellman_backup(bad, R, np.zeros(4), 0.9)
    big = mdp.CSR(c.data, c.indices.astype(np.uint64) + np.uint64(2**63), c.indptr, c.shape)
    with pytest.raises(ValueError, match="P: CSR"):
        mdp.value_iteration(big, R, 0.9)
    sp = pytest.importorskip("scipy.sparse")
    M = sp.csr_matrix((c.data, wrapped, c.indptr), shape=(12, 4))  # scipy keeps int64 indices
    with pytest.raises(ValueError, match="P: CSR column indices"):
        mdp.as_csr(M, 3)


# -- item 15: counts beyond int64 (or the kernels' loop range) are a ValueError naming them
@pytest.mark.parametrize("big", [2**63, 2**64, 2**70])
def test_huge_counts_rejected(backend, big):
    P, R = small()
    P, R = backend.asarray(P), backend.asarray(R)
    with pytest.raises(ValueError, match="max_iter: must be <="):
        mdp.value_iteration(P, R, 0.9, max_iter=big)
    with pytest.raises(ValueError, match="m: must be <="):
        mdp.modified_policy_iteration(P, R, 0.9, m=big)
    with pytest.raises(ValueError, match="max_eval: must be <="):
        mdp.modified_policy_iteration(P, R, 0.9, max_eval=big)
    with pytest.raises(ValueError, match="max_iter: must be <="):
        mdp.policy_evaluation(P, R, 0.9, np.zeros(4, np.int64), evaluation="iterative", max_iter=big)
    with pytest.raises(ValueError, match="max_iter: must be <="):
        mdp.policy_iteration(P, R, 0.9, max_iter=big)


def test_largest_count_accepted(backend):
    """2**62 (the limit) runs and converges like any other max_iter."""
    P, R = small()
    ref = mdp.value_iteration(P, R, 0.9)
    out = mdp.value_iteration(backend.asarray(P), backend.asarray(R), 0.9, max_iter=2**62)
    np.testing.assert_array_equal(backend.numpy(out.V), backend.numpy(ref.V))
    out = mdp.modified_policy_iteration(backend.asarray(P), backend.asarray(R), 0.9, max_eval=2**62, tol=1e-9)
    assert out.converged


# -- the numba solvers run in slices (Ctrl-C between them): the same floats as one call
@pytest.mark.parametrize(
    "kw",
    [dict(), dict(m=5), dict(m=None, eval_rel=0.1), dict(stop="sup", tol=1e-10)],
    ids=["mpi", "m5", "adaptive", "sup"],
)
def test_sliced_solver_same_as_one_call(backend, kw, rng, monkeypatch):
    if backend.name != "numba":
        pytest.skip("only the numba loops run in slices")
    import itertools

    from pygenmod._numba import mdp as nmdp

    P, R = mdp.random_mdp(30, 4, 3, seed=int(rng.integers(1 << 30)))
    V0 = rng.standard_normal((3, 30))
    pi = rng.integers(0, 4, (3, 30))
    runs = []
    for budget in (1 << 40, 1, 3):  # one call; a sweep per call; odd slices
        monkeypatch.setattr(nmdp, "budgets", lambda *_, b=budget, **__: itertools.repeat(b))
        runs.append(
            (
                mdp.modified_policy_iteration(P, R, 0.95, V0=V0, **kw),
                mdp.policy_evaluation(P, R, 0.95, pi, evaluation="iterative", epsilon=1e-9),
            )
        )
    (ref, ev_ref), *others = runs
    assert ref.converged.all() and ev_ref.converged.all()
    for out, ev in others:
        for a, b in zip(out, ref):
            np.testing.assert_array_equal(a, b)
        for a, b in zip(ev, ev_ref):
            np.testing.assert_array_equal(a, b)
