"""GMM on CUDA (issue 12, section 3): initialisation on the device and the EM loop's per-set
early exit.

The CPU half runs here: the CPU initialisation (whose per-point math, init_math.hpp, the CUDA
kernels share) against an independent NumPy reference, and a NumPy model of the device's
k-means++ pick (thread slices, then a walk inside one slice) against the CPU's serial pick.
The CUDA half takes the ``backend`` fixture: it skips without a GPU (and fails under
PYGENMOD_REQUIRE_CUDA=1, tools/gpu-check.sh) and compares the device kernels with the CPU's.
"""

from __future__ import annotations

import numpy as np
import pytest

import pygenmod
from pygenmod import gmm
from pygenmod._dispatch import get_kernel

SEED_THREADS = 256  # gmm_init.cu kSeedThreads


def _cpu(name):
    from pygenmod._backend import is_available

    return get_kernel("gmm", name, "cpu" if is_available("cpu") else "numba")


def _data(rng, B, N, D, dtype, pad=0.2):
    X = rng.normal(size=(B, N, D)).astype(dtype)
    W = rng.uniform(0.5, 2.0, size=(B, N)).astype(dtype)
    W[rng.random((B, N)) < pad] = 0  # padding
    return np.ascontiguousarray(X), np.ascontiguousarray(W)


def _sq_dist_serial(x, c):
    """init_math.hpp sq_dist for every row of x: float64, summed over d in order."""
    e = np.zeros(x.shape[0])
    for d in range(x.shape[1]):
        t = x[:, d].astype(np.float64) - np.float64(c[d])
        e = e + t * t
    return e


def _uniforms(seed, stream, K):
    """init_uniform(seed, stream, j) for j < K: 53 bits of block j's first two Philox words."""
    from pygenmod import random as prandom

    w = np.asarray(prandom.bits(seed, (4 * K,), stream=stream)).astype(np.uint64).reshape(K, 4)
    bits = ((w[:, 0] << np.uint64(32)) | w[:, 1]) >> np.uint64(11)
    return np.minimum((bits.astype(np.float64) + 0.5) * 2.0**-53, np.nextafter(1.0, 0.0))


def _kmeanspp_model(x, w, K, u_of, slices):
    """k-means++ seeding as gmm_init.cu's kmeanspp_kernel does it: per-slice sums in point
    order, slices added in order, the walk inside the slice where the mass passes u."""
    N = x.shape[0]
    chunk = -(-N // slices)
    d2 = np.full(N, np.inf)
    idx = []
    bounds = [(min(i * chunk, N), min(i * chunk + chunk, N)) for i in range(slices)]
    for j in range(K):
        pw, pm, last = [], [], []
        for a, b in bounds:
            sw = sm = 0.0
            lv = -1
            for n in range(a, b):
                if not w[n] > 0:
                    continue
                sw += float(w[n])
                if j > 0:
                    sm += float(w[n]) * d2[n]
                lv = n
            pw.append(sw), pm.append(sm), last.append(lv)
        totw, tot = 0.0, 0.0
        for i in range(slices):
            totw += pw[i]
            tot += pm[i]
        pick = -1
        if totw > 0:
            byw = j == 0 or not tot > 0
            u = u_of(j) * (totw if byw else tot)
            acc = 0.0
            for i, (a, b) in enumerate(bounds):
                if last[i] < 0:
                    continue
                pick = last[i]
                nxt = acc + (pw[i] if byw else pm[i])
                if u < nxt:
                    for n in range(a, b):
                        if not w[n] > 0:
                            continue
                        acc += float(w[n]) * (1.0 if byw else d2[n])
                        pick = n
                        if u < acc:
                            break
                    break
                acc = nxt
        idx.append(pick)
        if pick >= 0:
            d2 = np.minimum(d2, _sq_dist_serial(x, x[pick]))
    return np.array(idx)


# ----------------------------------------------------------------------------- CPU half
@pytest.mark.parametrize("N", [1, 7, 300, 1100])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_device_kmeanspp_model_picks_the_cpu_seeds(rng, N, dtype):
    # the device's two-level walk chooses the CPU's seeds (totals differ only by rounding)
    Bx, n_rep, D, K = 2, 2, 3, 5
    X, W = _data(rng, Bx, N, D, dtype)
    idx = np.empty((Bx * n_rep, K), np.int64)
    _cpu("kmeanspp")(X, W, n_rep, K, 11, 40, idx)
    for s in range(Bx * n_rep):
        b, r = divmod(s, n_rep)
        u = _uniforms(11, 40 + (r << 32) + b, K)
        got = _kmeanspp_model(X[b], W[b], K, u.__getitem__, SEED_THREADS)
        np.testing.assert_array_equal(got, idx[s])


def test_cpu_init_matches_numpy_reference(rng):
    # init_math.hpp's sq_dist / nearest_centre through the CPU's Lloyd: labels are the nearest
    # centres of the final centres, and the centres the weighted means of their points
    X, W = _data(rng, 3, 200, 4, np.float64, pad=0.1)
    K = 4
    centers = np.ascontiguousarray(X[:, :K].copy())
    labels = np.empty((3, 200), np.int64)
    _cpu("kmeans")(X, W, 1, 100, centers, labels)
    for b in range(3):
        d = np.stack([_sq_dist_serial(X[b], c) for c in centers[b]], 1)
        np.testing.assert_array_equal(labels[b], d.argmin(1))
        for k in range(K):
            m = (labels[b] == k) & (W[b] > 0)
            if m.any():
                want = (W[b][m, None] * X[b][m]).sum(0) / W[b][m].sum()
                np.testing.assert_allclose(centers[b, k], want, rtol=1e-12, atol=1e-12)


def test_cpu_random_from_data_matches_numpy_reference(rng):
    # init_math.hpp's random_from_data_one: partial Fisher-Yates over the positive-weight points
    X, W = _data(rng, 3, 20, 2, np.float64, pad=0.5)
    W[2] = 0
    W[1, 3:] = 0  # fewer valid points than K
    K = 6
    idx = np.empty((6, K), np.int64)
    _cpu("random_from_data")(W, 2, K, 7, 100, idx)
    for s in range(6):
        b, r = divmod(s, 2)
        valid = list(np.flatnonzero(W[b] > 0))
        nv = len(valid)
        u = _uniforms(7, 100 + (r << 32) + b, K)
        want = []
        for j in range(K):
            if nv == 0:
                want.append(-1)
            elif j < nv:
                p = min(j + int(u[j] * (nv - j)), nv - 1)
                valid[j], valid[p] = valid[p], valid[j]
                want.append(valid[j])
            else:
                want.append(valid[j % nv])
        np.testing.assert_array_equal(idx[s], want)


# ----------------------------------------------------------------------------- CUDA half
def _cupy_or_skip(backend):
    if backend.name != "cuda":
        pytest.skip("CUDA-only check")
    import cupy

    return cupy


def _dev(name):
    return get_kernel("gmm", name, "cuda")


@pytest.mark.parametrize("N", [1, 50, 700, 5000])
def test_cuda_init_kernels_match_cpu(backend, rng, dtype, N):
    cp = _cupy_or_skip(backend)
    Bx, n_rep, D, K = 3, 2, 3, 4
    X, W = _data(rng, Bx, N, D, dtype)
    W[1] = 0  # an empty set
    B = Bx * n_rep
    Xd, Wd = cp.asarray(X), cp.asarray(W)
    for name in ("random_from_data", "kmeanspp"):
        args = (W,) if name == "random_from_data" else (X, W)
        dargs = (Wd,) if name == "random_from_data" else (Xd, Wd)
        want = np.empty((B, K), np.int64)
        _cpu(name)(*args, n_rep, K, 5, 17, want)
        got = cp.full((B, K), -7, cp.int64)
        _dev(name)(*dargs, n_rep, K, 5, 17, got)
        np.testing.assert_array_equal(got.get(), want, err_msg=name)
    centers = np.ascontiguousarray(X[np.arange(B)[:, None] // n_rep, np.maximum(want, 0)])
    for max_iter in (0, 3, 100):
        c_cpu, lab_cpu = centers.copy(), np.empty((B, N), np.int64)
        _cpu("kmeans")(X, W, n_rep, max_iter, c_cpu, lab_cpu)
        c_dev, lab_dev = cp.asarray(centers), cp.empty((B, N), cp.int64)
        _dev("kmeans")(Xd, Wd, n_rep, max_iter, c_dev, lab_dev)
        np.testing.assert_array_equal(lab_dev.get(), lab_cpu)
        if N <= 2048:  # one point group: the CPU's order, bitwise (docs/gpu.md)
            np.testing.assert_array_equal(c_dev.get(), c_cpu)
        else:
            tol = dict(rtol=2e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(c_dev.get(), c_cpu, **tol)


@pytest.mark.parametrize("init", ["kmeans", "k-means++", "random_from_data"])
def test_cuda_fit_initialises_on_the_device(backend, rng, monkeypatch, init):
    # same seeds as the CPU, and X never copied to the host (the old path called asnumpy)
    cp = _cupy_or_skip(backend)
    from test_gmm_em import blobs

    X = blobs(rng, 4, 300, 2, 3)

    def no_host_copy(*a, **k):
        raise AssertionError("gmm.fit copied data to the host")

    with pygenmod.use_backend("cpu"):
        want = gmm.fit(X, 3, init=init, max_iter=0, seed=4, warn=False)
    monkeypatch.setattr(cp, "asnumpy", no_host_copy)
    got = gmm.fit(cp.asarray(X), 3, init=init, max_iter=0, seed=4, warn=False)
    np.testing.assert_allclose(got.params.means.get(), want.params.means, rtol=1e-9, atol=1e-9)


def test_cuda_em_early_exit_matches_cpu(backend, rng, dtype):
    # sets converge at different iterations (easy and hard blobs, an empty set); the device
    # loop stops them as the CPU does and ends when none runs
    cp = _cupy_or_skip(backend)
    from test_gmm_em import blobs

    X = np.concatenate([blobs(rng, 3, 400, 2, 3, sep=12.0), blobs(rng, 3, 400, 2, 3, sep=1.0)]).astype(dtype)
    W = np.ones(X.shape[:2], dtype)
    W[2] = 0
    # float32: only a fixed iteration count (a stop decided at |change| ~ tol within float32
    # rounding of the parameters may move by one iteration between backends)
    runs = ((7, 1e-3), (100, 1e-3), (9, 0.0)) if dtype == np.float64 else ((9, 0.0),)
    for max_iter, tol in runs:
        with pygenmod.use_backend("cpu"):
            want = gmm.fit(X, 3, W, init="random_from_data", seed=2, max_iter=max_iter, tol=tol, warn=False)
        got = gmm.fit(
            cp.asarray(X), 3, cp.asarray(W), init="random_from_data", seed=2, max_iter=max_iter, tol=tol, warn=False
        )
        np.testing.assert_array_equal(got.n_iter.get(), want.n_iter)
        np.testing.assert_array_equal(got.converged.get(), want.converged)
        t = dict(rtol=2e-4, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(got.lower_bound.get(), want.lower_bound, **t)
        np.testing.assert_allclose(got.params.means.get(), want.params.means, **t)


# ----------------------------------------------------------------------------- small batches
def _stats_split(n_sets, N, D, K, ct):
    """Partial sums per point group the CUDA statistics use for n_sets running sets here."""
    from pygenmod import _cuda_gmm

    return _cuda_gmm.stats_split(n_sets, N, D, K, gmm._CODE[ct])


@pytest.mark.parametrize("ct", ["full", "tied", "diag", "spherical"])
def test_cuda_one_large_set_matches_cpu(backend, rng, dtype, ct):
    # B = 1, N = 20000: one thread per (group, tile, statistic), the tiles added by a second
    # kernel (one per group would leave the GPU idle); EM and the M-step agree with the CPU
    cp = _cupy_or_skip(backend)
    from test_gmm_em import blobs

    N, D, K = 20000, 3, 4
    assert _stats_split(1, N, D, K, ct) > 1
    X = blobs(rng, 1, N, D, K, dtype=dtype)[0]
    W = rng.uniform(0.5, 2.0, N).astype(dtype)
    W[rng.random(N) < 0.1] = 0
    t = dict(rtol=2e-4, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-10)
    kw = dict(covariance_type=ct, init="random_from_data", seed=3, max_iter=3, tol=0.0, warn=False)
    with pygenmod.use_backend("cpu"):
        want = gmm.fit(X, K, W, **kw)
    got = gmm.fit(cp.asarray(X), K, cp.asarray(W), **kw)
    np.testing.assert_allclose(got.lower_bound.get(), want.lower_bound, **t)
    for name in ("weights", "means", "covariances", "precisions_cholesky"):
        np.testing.assert_allclose(getattr(got.params, name).get(), getattr(want.params, name), **t, err_msg=name)
    # the M-step from given responsibilities (one thread per element of resp)
    resp = rng.dirichlet(np.ones(K), N).astype(dtype)
    with pygenmod.use_backend("cpu"):
        want = gmm.m_step(X, resp, W, covariance_type=ct)
    got = gmm.m_step(cp.asarray(X), cp.asarray(resp), cp.asarray(W), covariance_type=ct)
    for name in ("weights", "means", "covariances"):
        np.testing.assert_allclose(getattr(got, name).get(), getattr(want, name), **t, err_msg=name)


def test_cuda_statistics_do_not_depend_on_the_grid(backend, rng, dtype):
    # one set fitted alone (one thread per tile) and as each of R copies in one call (enough
    # sets for one thread per group): the same sums in the same order, bitwise equal results
    cp = _cupy_or_skip(backend)
    N, D, K, ct = 5000, 3, 3, "full"
    R = 2
    while _stats_split(R, N, D, K, ct) > 1:
        R *= 2
    assert _stats_split(1, N, D, K, ct) > 1
    X, W = _data(rng, 1, N, D, dtype)
    resp = rng.dirichlet(np.ones(K), (1, N)).astype(dtype)
    with pygenmod.use_backend("cpu"):
        p0 = gmm.m_step(X, resp, W, covariance_type=ct)  # valid starting parameters
    Xd, Wd = cp.asarray(X), cp.asarray(W)

    def params(n):
        return gmm.GMMParams(*(cp.asarray(np.repeat(a, n, axis=0)) for a in p0[:4]), ct)

    one = gmm._run_fit(Xd, Wd, params(1), cp.full((1,), 1e-6, dtype), 1, 6, 0.0)
    many = gmm._run_fit(Xd, Wd, params(R), cp.full((R,), 1e-6, dtype), R, 6, 0.0)
    for a, b in zip([*one[0][:4], *one[1:]], [*many[0][:4], *many[1:]]):
        np.testing.assert_array_equal(b.get(), np.broadcast_to(a.get(), b.shape))
