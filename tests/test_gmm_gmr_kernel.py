"""GMR's kernels (csrc/include/pygenmod/gmm/gmr.hpp: the conditioning with its Jacobi
eigensolver, and the per-query part; numba has the query kernel, CuPy the array ops) against the
textbook conditioning and LAPACK, on both sides of the serial/parallel threshold, with
degenerate weights and covariances and odd sizes."""

import numpy as np
import pytest
from test_gmm_gmr import closed_form, random_mixture

from pygenmod import _gmr, gmm
from pygenmod._arrays import xp_of
from pygenmod._gmr import _condition, _condition_arrays, _query, _query_arrays

# (B, Q, K, D, in_dims): one query; odd sizes; Q * K * (I^2 + OI + O^2 + 8) above the kernel's
# GMR_PAR_MIN_WORK (2^14), so the queries run on the pool
SIZES = [
    (1, 1, 1, 2, [0]),
    (3, 5, 4, 5, [0, 3]),
    (2, 7, 3, 6, [5, 1, 2]),
    (2, 700, 3, 4, [1, 2]),
]


def to_backend(backend, p, x):
    return gmm.GMMParams(*(backend.asarray(a) for a in p[:3]), None, "full"), backend.asarray(x)


@pytest.mark.parametrize("B,Q,K,D,ind", SIZES, ids=["single", "odd", "3-inputs", "parallel"])
def test_kernel_matches_closed_form(backend, rng, B, Q, K, D, ind):
    p = random_mixture(rng, B, K, D)
    x = rng.normal(size=(B, Q, len(ind))) * 2
    outd = [d for d in range(D) if d not in ind]
    pb, xb = to_backend(backend, p, x)
    r = gmm.gmr(pb, xb, ind)
    got = [backend.numpy(a) for a in (r.weights, r.means, r.mean, r.covariance)]
    for b in range(B):
        for q in range(Q):
            h, ms, _, mean, cov = closed_form(p.weights[b], p.means[b], p.covariances[b], x[b, q], ind, outd)
            np.testing.assert_allclose(got[0][b, q], h, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(got[1][b, q], ms, rtol=1e-9, atol=1e-10)
            np.testing.assert_allclose(got[2][b, q], mean, rtol=1e-9, atol=1e-10)
            np.testing.assert_allclose(got[3][b, q], cov, rtol=1e-8, atol=1e-10)
            np.testing.assert_array_equal(got[3][b, q], got[3][b, q].T)  # symmetric exactly


def test_zero_weight_component_gets_no_weight(backend, rng):
    p = random_mixture(rng, 2, 3, 3)
    w = p.weights.copy()
    w[:, 1] = 0
    w /= w.sum(1, keepdims=True)
    p = p._replace(weights=w)
    x = rng.normal(size=(2, 4, 1))
    r = gmm.gmr(*to_backend(backend, p, x), [0])
    h = backend.numpy(r.weights)
    assert (h[:, :, 1] == 0).all()
    np.testing.assert_allclose(h.sum(-1), 1, rtol=1e-12)


def test_far_queries_stay_finite(backend, rng):
    """Queries far from every component: the log-weights are shifted by their max before exp."""
    p = random_mixture(rng, 1, 3, 2)
    x = np.array([[[1e6], [-1e6], [3e3]]])
    r = gmm.gmr(*to_backend(backend, p, x), [0])
    for a in (r.weights, r.mean, r.covariance):
        assert np.isfinite(backend.numpy(a)).all()
    np.testing.assert_allclose(backend.numpy(r.weights).sum(-1), 1, rtol=1e-12)


@pytest.mark.parametrize("Q", [0, 3])
def test_kernel_and_array_path_agree(backend, rng, Q):
    """The kernel and the array-op path (CuPy's) on the same conditioning, and an empty query set."""
    p = random_mixture(rng, 2, 4, 4)
    x = rng.normal(size=(2, Q, 2))
    pb, xb = to_backend(backend, p, x)
    c = _condition(pb, [0, 2], None)
    xq = xp_of(c.V).asarray(xb, dtype=np.float64)
    for a, b in zip(_query(c, xb), _query_arrays(c, xq)):
        assert a.shape == b.shape
        np.testing.assert_allclose(backend.numpy(a), backend.numpy(b), rtol=1e-11, atol=1e-12)


def test_kernel_rejects_bad_arrays():
    """The binding checks what it reads (the Python layer passes it float64, C-contiguous)."""
    k = pytest.importorskip("pygenmod._cpu_gmm").gmr_query
    B, Q, K, I, O = 1, 2, 3, 2, 1
    z = np.zeros
    ok = [z((B, Q, I)), z((B, K, I)), z((B, K, O)), z((B, K)), z((B, K, I, I)), z((B, K, I)), z((B, K, O, I))]
    ok += [z((B, K, O, O)), z((B, Q, K)), z((B, Q, K, O)), z((B, Q, O)), z((B, Q, O, O))]
    k(*ok)
    bad = list(ok)
    bad[0] = ok[0].astype(np.float32)
    with pytest.raises((TypeError, ValueError), match="x"):
        k(*bad)
    bad = list(ok)
    bad[4] = z((B, K, I, I + 1))
    with pytest.raises(ValueError, match="V"):
        k(*bad)
    bad = list(ok)
    bad[11] = np.asfortranarray(z((B, Q, O + 1, O + 1)))
    with pytest.raises(ValueError, match="cov"):
        k(*bad)
    bad = list(ok)
    bad[3] = z((B, 0))
    with pytest.raises(ValueError, match="component"):
        k(*bad)


def _invariants(c):
    """What a conditioning determines uniquely (V and rs are eigenvectors and scales: unique only
    up to order and sign): the means, log constants, A, C and S_ii^+ = V diag(rs^2) V^T."""
    pinv = (c.V * c.rs[..., None, :] ** 2) @ np.swapaxes(c.V, -1, -2)
    return c.mu_i, c.mu_o, c.logc, c.A, c.C, pinv


@pytest.mark.parametrize(
    "case",
    ["random", "near-singular inputs", "spherical", "zero weight", "1 in 1 out", "many components", "1e150", "1e-150"],
)
def test_compiled_conditioning_matches_lapack(rng, case):
    # many components: 1280 to condition, past GMR_CONDITION_PAR_MIN_WORK (on the pool)
    B, K, D = (32, 40, 4) if case == "many components" else (2, 3, 5)
    ind = [0] if case == "1 in 1 out" else [3, 0, 1]
    outd = [2] if case == "1 in 1 out" else None
    p = random_mixture(rng, B, K, D)
    cov = p.covariances.copy()
    if case == "near-singular inputs":
        v = rng.normal(size=(B, K, D))
        cov = 1e-9 * cov + np.einsum("bki,bkj->bkij", v, v)  # rank one plus a little: cond ~ 1e10
    elif case == "spherical":
        cov = np.broadcast_to(np.eye(D) * rng.uniform(0.5, 2, (B, K, 1, 1)), cov.shape).copy()
    elif case in ("1e150", "1e-150"):  # sums of squares of the entries leave float64's range
        cov = cov * float(case)
    w = p.weights.copy()
    if case == "zero weight":
        w[:, 1] = 0
        w /= w.sum(1, keepdims=True)
    p = gmm.GMMParams(w, p.means, cov, None, "full")
    got = _condition(p, ind, outd)
    assert got.V.shape == (B, K, len(ind), len(ind))
    S = np.ascontiguousarray(cov)
    oa = [d for d in range(D) if d not in ind] if outd is None else outd
    want = _condition_arrays(False, np.float64, S, p.means, w, np.array(ind), np.array(oa))
    # LAPACK's small eigenvalues are accurate to eps x the largest: ~1e-7 relative at cond 1e10
    rtol = 1e-6 if case == "near-singular inputs" else 1e-9
    for a, b in zip(_invariants(got), _invariants(want)):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * max(1.0, np.abs(b[np.isfinite(b)]).max()))


def test_large_blocks_use_lapack(rng, monkeypatch):
    """Above MAX_KERNEL_DIMS input or output dimensions the conditioning is LAPACK's."""
    p = random_mixture(rng, 2, 3, 5)
    x = rng.normal(size=(2, 4, 2))
    small = gmm.gmr(p, x, [0, 1])
    monkeypatch.setattr(_gmr, "MAX_KERNEL_DIMS", 1)
    large = gmm.gmr(p, x, [0, 1])
    for a, b in zip(small, large):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11)


def test_conditioning_kernel_rejects_bad_dims():
    k = pytest.importorskip("pygenmod._cpu_gmm").gmr_condition
    B, K, D, I, O = 1, 2, 3, 2, 1
    z = np.zeros
    outs = [z((B, K, I)), z((B, K, O)), z((B, K)), z((B, K, I, I)), z((B, K, I)), z((B, K, O, I)), z((B, K, O, O))]
    S, mu, w = np.broadcast_to(np.eye(D), (B, K, D, D)).copy(), z((B, K, D)), np.full((B, K), 0.5)
    k(S, mu, w, np.array([0, 1]), np.array([2]), *outs)
    for ia, oa in (([0, 3], [2]), ([0, 1], [-1]), ([0, 1], [2**40])):
        with pytest.raises(ValueError, match="must lie in"):
            k(S, mu, w, np.array(ia), np.array(oa), *outs)
    with pytest.raises((TypeError, ValueError), match="ia"):
        k(S, mu, w, np.array([0.0, 1.0]), np.array([2]), *outs)
