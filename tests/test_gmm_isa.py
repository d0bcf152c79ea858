"""The CPU EM kernels' instruction-set entry points (AVX-512, AVX2+FMA, baseline) agree, and
float32 fits agree with float64 fits from the same start to what float32 allows."""

import numpy as np
import pytest
from test_gmm_em import blobs, init_params

import pygenmod
from pygenmod import gmm

_cpu = pytest.importorskip("pygenmod._cpu_gmm")
ISA_NAMES = {0: "baseline", 1: "avx2", 2: "avx512"}
DETECTED = _cpu._isa_cap(-1)[1]


def fit_with_cap(cap, X, K, p0, w=None, iters=8):
    prev = _cpu._isa_cap(cap)[0]
    try:
        return gmm.fit(X, K, w, covariance_type=p0.covariance_type, max_iter=iters, tol=0, init_params=p0, warn=False)
    finally:
        _cpu._isa_cap(prev)


def cases(rng, dtype):
    # small-D path (D <= 8, per-D template) and the large-D path; unit weights (the
    # per-chunk product of mixture scales) and general weights with padding points (w = 0)
    out = []
    for D, N, B in ((3, 300, 3), (1, 257, 2), (8, 140, 2), (12, 700, 2), (13, 300, 1)):
        X = blobs(rng, B, N, D, 4).astype(dtype)
        w = rng.uniform(0.2, 2.0, (B, N)).astype(dtype)
        w[:, ::7] = 0
        out.append((X, None))
        out.append((X, w))
    return out


@pytest.mark.parametrize("ct", gmm.COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_isa_paths_agree(ct, dtype, rng):
    if DETECTED == 0:
        pytest.skip("only the baseline path exists on this CPU")
    rtol = 1e-9 if dtype == np.float64 else 2e-4
    for X, w in cases(rng, dtype):
        K = 4
        p0 = init_params(rng, X, K, ct)
        p0 = gmm.GMMParams(*(None if a is None else np.asarray(a, dtype) for a in p0[:4]), ct)
        ref = fit_with_cap(DETECTED, X, K, p0, w)
        for cap in range(DETECTED):
            got = fit_with_cap(cap, X, K, p0, w)
            for name in ("weights", "means", "covariances"):
                a, b = getattr(got.params, name), getattr(ref.params, name)
                scale = np.abs(b).max()
                np.testing.assert_allclose(
                    a,
                    b,
                    rtol=rtol,
                    atol=rtol * scale,
                    err_msg=f"{name}: {ISA_NAMES[cap]} vs {ISA_NAMES[DETECTED]}, D={X.shape[2]}",
                )
            np.testing.assert_allclose(got.lower_bound, ref.lower_bound, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("cap", [0, 1, 2])
def test_each_isa_thread_count_independent(cap, rng):
    if cap > DETECTED:
        pytest.skip(f"CPU lacks {ISA_NAMES[cap]}")
    n0 = pygenmod.get_num_threads()
    for D in (3, 12):
        X = blobs(rng, 1, 5000, D, 3)  # one set, several point groups: parallel over groups
        p0 = init_params(rng, X, 3, "full")
        out = []
        try:
            for n in (1, 2):
                pygenmod.set_num_threads(n)
                out.append(fit_with_cap(cap, X, 3, p0, iters=4))
        finally:
            pygenmod.set_num_threads(n0)
        for a, b in zip(out[0].params[:4], out[1].params[:4]):
            np.testing.assert_array_equal(a, b)


def test_isa_cap_validates():
    with pytest.raises(ValueError, match="cap"):
        _cpu._isa_cap(3)


def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-300)


@pytest.mark.parametrize("shape", [(64, 256, 3, 4), (1, 20000, 16, 16)], ids=["W1-like", "W2-like"])
@pytest.mark.parametrize("ct", ["full", "diag"])
def test_float32_fit_matches_float64(shape, ct, rng):
    """float32 EM (float32 E-step, float64 statistics) from the float64 fit's start stays within
    float32 accuracy of the float64 fit: parameters to ~1e-4 relative after 10 iterations."""
    B, N, D, K = shape
    X = blobs(rng, B, N, D, K, sep=4.0)
    p0 = gmm.fit(X, K, covariance_type=ct, init="random_from_data", max_iter=0, seed=1, warn=False).params
    r64 = gmm.fit(X, K, covariance_type=ct, max_iter=10, tol=0, init_params=p0, warn=False)
    p32 = gmm.GMMParams(*(np.asarray(a, np.float32) for a in p0[:4]), ct)
    r32 = gmm.fit(X.astype(np.float32), K, covariance_type=ct, max_iter=10, tol=0, init_params=p32, warn=False)
    assert r32.params.means.dtype == np.float32
    assert _rel(r32.params.weights, r64.params.weights) < 1e-4
    assert _rel(r32.params.means, r64.params.means) < 1e-4
    assert _rel(r32.params.covariances, r64.params.covariances) < 1e-3
    np.testing.assert_allclose(r32.lower_bound, r64.lower_bound, rtol=1e-5)


@pytest.mark.parametrize("N", [127, 128, 129])
def test_padding_lanes_of_far_points_leave_no_nan(N):
    """float32, D=1: a chunk's padding lanes sit at the set centre, where every component's
    log-density overflows to -inf; they must not bring NaN into the statistics (found by
    review: N=127 gave NaN parameters on the vector paths, N=128 did not)."""
    X = np.zeros((N, 1), np.float32)
    X[: N // 2], X[N // 2 :] = 1e17, -1e17
    for cap in range(DETECTED + 1):
        prev = _cpu._isa_cap(cap)[0]
        try:
            r = gmm.fit(
                X, 2, covariance_type="diag", means_init=np.array([[1e17], [-1e17]]), max_iter=3, tol=0, warn=False
            )
        finally:
            _cpu._isa_cap(prev)
        for x in (r.params.weights, r.params.means, r.params.covariances, r.lower_bound):
            assert np.isfinite(x).all(), ISA_NAMES[cap]
        np.testing.assert_allclose(r.params.weights, [(N // 2) / N, 1 - (N // 2) / N], rtol=1e-6)


def test_all_zero_mixture_weights_rejected():
    X = np.random.default_rng(0).normal(size=(20, 2))
    P = gmm.GMMParams(np.zeros(2), X[:2].copy(), np.ones((2, 2)), None, "diag")
    with pytest.raises(ValueError, match="weights"):
        gmm.em_step(X, P)
