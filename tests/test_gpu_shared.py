"""Issue 12, section 2: the bugs found by review of the CUDA half, one test each.

Tests take the ``backend`` fixture (cpu, numba, cuda): the CUDA case skips here without a GPU
(and fails under PYGENMOD_REQUIRE_CUDA=1); the host code shared with the device path runs on
the CPU. tools/gpu-check.sh runs the ``-k cuda`` cases of this file under compute-sanitizer.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run_python, tol

import pygenmod
from pygenmod import _backend, gmm, mdp, sampling, spatial


def _cupy_or_skip(backend):
    if backend.name != "cuda":
        pytest.skip("CUDA-only check")
    import cupy

    return cupy


# ----------------------------------------------------------------------------- sparse MDP rows
@pytest.mark.parametrize("counts", [[0, 2, 0, 0, 3, 1], [1], [0, 0], [4, 0, 0, 0, 0, 0, 0, 2]])
def test_csr_row_ids_match_repeat(counts):
    # the host helper the CuPy path uses instead of repeat(arange, diff(indptr))
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    got = mdp._model._csr_row_ids(np, indptr, int(indptr[-1]))
    want = np.repeat(np.arange(len(counts)), counts)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, want)


def test_sparse_mdp_validation_and_rewards(backend, rng):
    # rows of a sparse P are checked and (S, A, S) rewards contracted on every backend
    P, _ = mdp.random_mdp(12, 3, successors=4, seed=3)
    dense = np.zeros((12, 3, 12))
    c = mdp.as_csr(P) if not isinstance(P, mdp.CSR) else P
    data, ind, ptr = (np.asarray(backend.numpy(a)) for a in (c.data, c.indices, c.indptr))
    for r in range(36):
        dense.reshape(36, 12)[r, ind[ptr[r] : ptr[r + 1]]] = data[ptr[r] : ptr[r + 1]]
    R3 = rng.normal(size=(12, 3, 12))
    csr = mdp.CSR(backend.asarray(data), backend.asarray(ind), backend.asarray(ptr), (1, 12, 3))
    V = np.zeros(12)
    got = mdp.bellman_backup(csr, backend.asarray(R3), backend.asarray(V), 0.9)
    want_r = (dense * R3).sum(-1)
    np.testing.assert_allclose(backend.numpy(got.Q), want_r, rtol=1e-12, atol=1e-12)
    bad = data.copy()
    bad[0] += 0.5
    with pytest.raises(ValueError, match="sum to 1"):
        mdp.bellman_backup(
            mdp.CSR(backend.asarray(bad), backend.asarray(ind), backend.asarray(ptr), (1, 12, 3)),
            backend.asarray(R3[..., 0]),
            backend.asarray(V),
            0.9,
        )


# ----------------------------------------------------------------------------- out= on CuPy
def test_out_argument_on_device_arrays(backend, rng):
    mu = rng.normal(size=(6, 5)).astype(np.float32)
    lv = (0.2 * rng.normal(size=(6, 5))).astype(np.float32)
    out = backend.asarray(np.empty((6, 5), np.float32))
    sampling.normal_head(backend.asarray(mu), backend.asarray(lv), seed=2, out=out)
    with pygenmod.use_backend("cpu"):
        ref = sampling.normal_head(mu, lv, seed=2)
    np.testing.assert_allclose(backend.numpy(out), ref.z, **tol(np.float32))
    x = rng.normal(size=(2, 3, 5, 4)).astype(np.float32)
    g = rng.normal(size=(2, 3, 2)).astype(np.float32)
    gx = backend.asarray(np.empty_like(x))
    spatial.spatial_softmax_backward(backend.asarray(x), 1.0, grad_keypoints=backend.asarray(g), out=gx)
    with pygenmod.use_backend("cpu"):
        want = spatial.spatial_softmax_backward(x, 1.0, grad_keypoints=g)[0]
    np.testing.assert_allclose(backend.numpy(gx), want, **tol(np.float32))


# ----------------------------------------------------------------------------- GMM edge cases
def test_gmm_fit_with_no_points_gives_neutral_parameters(backend):
    X = backend.asarray(np.zeros((2, 0, 3)))
    means = backend.asarray(np.ones((2, 2, 3)))
    f = gmm.fit(X, 2, covariance_type="diag", max_iter=5, means_init=means, warn=False, init="random")
    np.testing.assert_allclose(backend.numpy(f.params.weights), 0.5)
    np.testing.assert_allclose(backend.numpy(f.params.means), 0.0)
    np.testing.assert_allclose(backend.numpy(f.params.covariances), 1.0)
    assert np.all(np.isneginf(backend.numpy(f.lower_bound)))
    assert np.all(backend.numpy(f.flags) & gmm.EMPTY_SET)


def test_gmm_max_iter_zero_with_nan_bound(backend, rng):
    X = rng.normal(size=(40, 2))
    means = X[:3].copy()
    f = gmm.fit(
        backend.asarray(X),
        3,
        covariance_type="full",
        max_iter=0,
        means_init=backend.asarray(means),
        lower_bound_init=np.nan,
        warn=False,
    )
    with pygenmod.use_backend("cpu"):
        ref = gmm.fit(X, 3, covariance_type="full", max_iter=0, means_init=means, lower_bound_init=np.nan, warn=False)
    assert int(backend.numpy(f.n_iter)) == 0
    lb = float(backend.numpy(f.lower_bound))
    assert lb == float(ref.lower_bound) and np.isneginf(lb)
    np.testing.assert_array_equal(backend.numpy(f.params.means), ref.params.means)


def test_gmm_e_step_float32_agrees_with_cpu(backend, rng):
    # far from every component (log-densities ~ -1e3): rounding them to float32 before the
    # log-sum-exp (the old CUDA path) moves the dominant log_resp (~0) by ~1e-4 > atol; the
    # CPU does not round there
    X = (rng.normal(size=(64, 3)) * 3 + 30).astype(np.float32)
    with pygenmod.use_backend("cpu"):
        p = gmm.fit(
            rng.normal(size=(200, 3)).astype(np.float32),
            3,
            covariance_type="full",
            max_iter=5,
            random_state=0,
            warn=False,
        ).params
        ref = gmm.e_step(X, p)
    dev = gmm.GMMParams(*(backend.asarray(a) if not isinstance(a, str) else a for a in p))
    got = gmm.e_step(backend.asarray(X), dev)
    np.testing.assert_allclose(backend.numpy(got.log_resp), ref.log_resp, **tol(np.float32))
    np.testing.assert_allclose(backend.numpy(got.log_prob_norm), ref.log_prob_norm, **tol(np.float32))


# ----------------------------------------------------------------------------- mvn backward
@pytest.mark.parametrize("B,D", [(1, 3), (7, 4), (300, 5)])
def test_mvn_backward_shared_scale_is_deterministic_and_sums_rows(backend, rng, dtype, B, D):
    mu = rng.normal(size=(B, D)).astype(dtype)
    L = (np.tril(rng.normal(size=(D, D)) * 0.3, -1) + np.eye(D) * 1.5).astype(dtype)
    gz = rng.normal(size=(2, B, D)).astype(dtype)
    gkl = rng.normal(size=B).astype(dtype)
    args = dict(grad_z=backend.asarray(gz), grad_kl=backend.asarray(gkl), seed=4, n_samples=2)
    a = sampling.mvn_head_backward(backend.asarray(mu), backend.asarray(L[None]), **args)
    b = sampling.mvn_head_backward(backend.asarray(mu), backend.asarray(L[None]), **args)
    assert backend.numpy(a[1]).tobytes() == backend.numpy(b[1]).tobytes()  # same call, same bits
    per_row = sampling.mvn_head_backward(
        backend.asarray(mu), backend.asarray(np.broadcast_to(L, (B, D, D)).copy()), **args
    )
    want = backend.numpy(per_row[1]).astype(np.float64).sum(0)
    t = tol(dtype)
    np.testing.assert_allclose(backend.numpy(a[1]).reshape(D, D), want, rtol=t["rtol"] * 10, atol=t["atol"] * B)
    np.testing.assert_allclose(backend.numpy(a[0]), backend.numpy(per_row[0]), **t)


# ----------------------------------------------------------------------------- device, stream, scratch
def test_array_on_another_device_is_rejected(backend):
    cupy = _cupy_or_skip(backend)
    if cupy.cuda.runtime.getDeviceCount() < 2:
        pytest.skip("needs two GPUs")
    with cupy.cuda.Device(1):
        x = cupy.ones((4, 3), cupy.float32)
    with cupy.cuda.Device(0), pytest.raises(ValueError, match="device 1"):
        sampling.normal_head(x, x, seed=0)
    with cupy.cuda.Device(1):
        sampling.normal_head(x, x, seed=0)  # fine on its own device


def test_torch_wrappers_run_on_torchs_current_stream(backend):
    torch = pytest.importorskip("torch")
    from pygenmod._torch_sampling import on_torch_stream

    t = torch.zeros(3)
    with on_torch_stream(t, 1, None):  # CPU tensors: nothing to switch
        pass
    if backend.name != "cuda":
        return
    cupy = _cupy_or_skip(backend)
    s = torch.cuda.Stream()
    mu = torch.randn(64, 8, device="cuda")
    with torch.cuda.stream(s):
        with on_torch_stream(mu):
            assert cupy.cuda.get_current_stream().ptr == s.cuda_stream
        from pygenmod.torch import normal_head

        z, _, _ = normal_head(mu, torch.zeros_like(mu), seed=3)
    s.synchronize()
    ref = sampling.normal_head(cupy.asarray(mu), cupy.zeros((64, 8), cupy.float32), seed=3)
    np.testing.assert_allclose(z.cpu().numpy(), ref.z.get(), rtol=1e-6)


def test_scratch_comes_from_cupys_allocator(backend, rng):
    cupy = _cupy_or_skip(backend)
    pool = cupy.cuda.MemoryPool()
    sizes = []

    def alloc(n):
        sizes.append(n)
        return pool.malloc(n)

    X = cupy.asarray(rng.normal(size=(500, 4)))
    cupy.cuda.set_allocator(alloc)
    try:
        gmm.fit(X, 3, covariance_type="full", max_iter=3, random_state=0, warn=False)
    finally:
        cupy.cuda.set_allocator(cupy.get_default_memory_pool().malloc)
    assert max(sizes) >= 500 * 3 * 8  # the responsibilities, among the EM scratch


def test_cuda_sync_debug_switch():
    try:
        from pygenmod import _cuda_runtime
    except ImportError:
        pytest.skip("built without CUDA")
    assert hasattr(_cuda_runtime, "sync_after_launch")
    code = "from pygenmod import _cuda_runtime as r; print(r.sync_after_launch())"
    import os

    for val, want in (("1", "True"), ("0", "False"), ("", "False")):
        env = dict(os.environ, PYGENMOD_CUDA_SYNC=val)
        out = run_python(["-c", code], env=env, capture_output=True, text=True, check=True).stdout.strip()
        assert out == want, (val, out)


def test_spatial_softmax_cuda_smoke(backend, rng):
    # small forward+backward through the shared-memory kernels (racecheck runs this one)
    x = rng.normal(size=(3, 5, 9, 7)).astype(np.float32)
    g = rng.normal(size=(3, 5, 2)).astype(np.float32)
    kp = spatial.spatial_softmax(backend.asarray(x), 0.8)
    with pygenmod.use_backend("cpu"):
        ref = spatial.spatial_softmax(x, 0.8)
    np.testing.assert_allclose(backend.numpy(kp), ref, **tol(np.float32))
    spatial.spatial_softmax_backward(backend.asarray(x), 0.8, grad_keypoints=backend.asarray(g))


# ----------------------------------------------------------------------------- small batches
# (issue 12, section 3: the split grids for B = 1, also run under compute-sanitizer)
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_spatial_softmax_cuda_small_batch(backend, rng, layout):
    # B = 1, 64 x 64 maps: on CUDA, pixel slices per map merged in slice order (forward, maps,
    # and the backward with a maps gradient: dots, gradients, temperature sums)
    if backend.name == "cuda":
        from pygenmod import _cuda_spatial

        assert _cuda_spatial.splits(1, 3, 64, 64, layout == "NHWC") > 1
    shape = (1, 3, 64, 64) if layout == "NCHW" else (1, 64, 64, 3)
    x = rng.normal(size=shape).astype(np.float32)
    g = rng.normal(size=(1, 3, 2)).astype(np.float32)
    gm = rng.normal(size=shape).astype(np.float32)

    def run(a, numpy):
        res = spatial.spatial_softmax(a(x), 0.8, layout=layout, return_cov=True, return_maps=True)
        gx, gt = spatial.spatial_softmax_backward(a(x), 0.8, layout=layout, grad_keypoints=a(g), grad_maps=a(gm))
        return [numpy(v) for v in (res.keypoints, res.cov, res.maps, gx, gt)]

    got = run(backend.asarray, backend.numpy)
    with pygenmod.use_backend("cpu"):
        want = run(np.asarray, np.asarray)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


def test_gmm_fit_cuda_one_set(backend, rng):
    # B = 1, N = 3000: on CUDA, one thread per (point group, tile, statistic) and a second
    # kernel adding the tiles in order
    X = rng.normal(size=(3000, 2)).astype(np.float32)
    kw = dict(covariance_type="diag", init="random_from_data", seed=1, max_iter=3, tol=0.0, warn=False)
    got = gmm.fit(backend.asarray(X), 3, **kw)
    with pygenmod.use_backend("cpu"):
        want = gmm.fit(X, 3, **kw)
    np.testing.assert_allclose(backend.numpy(got.params.means), want.params.means, **tol(np.float32))
    np.testing.assert_allclose(backend.numpy(got.lower_bound), want.lower_bound, **tol(np.float32))


# ----------------------------------------------------------------------------- the probe
class _FakeRuntime:
    def __init__(self, probe, cc=(9, 0)):
        self._p, self._cc = probe, cc

    def probe(self):
        return dict(self._p)

    def device_count(self):
        return self._p["count"]

    def device_info(self, i):
        return {"name": "Fake GPU", "compute_capability": self._cc, "multiprocessors": 1, "total_memory": 1}


@pytest.mark.parametrize(
    "probe,cc,ok,match",
    [
        (
            {
                "count": 0,
                "error": "cudaErrorInsufficientDriver",
                "message": "driver too old",
                "driver_version": 12020,
                "runtime_version": 13000,
            },
            (9, 0),
            False,
            "driver is missing or too old.*13.0.*12.2",
        ),
        ({"count": 0, "error": "cudaErrorNoDevice", "message": "no device"}, (9, 0), False, "no CUDA device"),
        (
            {"count": 0, "error": "cudaErrorInitializationError", "message": "init"},
            (9, 0),
            False,
            "cudaErrorInitializationError",
        ),
        ({"count": 1, "error": ""}, (7, 0), False, "sm_70.*sm_75"),
        ({"count": 1, "error": ""}, (9, 0), None, "sm_90"),
    ],
)
def test_cuda_probe_reports_the_real_error(monkeypatch, probe, cc, ok, match):
    import importlib

    real = importlib.import_module

    def fake(name, *a, **k):
        if name == "pygenmod._cuda_runtime":
            return _FakeRuntime(probe, cc)
        return real(name, *a, **k)

    monkeypatch.setattr(_backend.importlib, "import_module", fake)
    got_ok, why = _backend._probe_cuda()
    if ok is None:  # a good device: available iff cupy is installed
        import importlib.util

        ok = importlib.util.find_spec("cupy") is not None
        match = "sm_90" if ok else "cupy is not installed"
    assert got_ok is ok
    assert __import__("re").search(match, why), why


# ----------------------------------------------------------------------------- device solver loops
# The CUDA solvers run the batched loop of csrc/include/pygenmod/mdp_batched.hpp (all MDPs in
# lock step, each in its own phase, the loop's logic in LoopControl, shared with the CPU
# solvers). pygenmod._cpu_mdp_batched runs that same code on the host: it must give the CPU
# solvers' floats bitwise (the sweeps sum each row in one fixed order), whatever the number of
# sweeps between the host's checks.
def _loop_problem(dtype, sparse, S=17, A=3, B=4, seed=11):
    P, R = mdp.random_mdp(S, A, B, successors=5 if sparse else None, seed=seed)
    P = mdp.CSR(P.data.astype(dtype), P.indices, P.indptr, P.shape) if sparse else P.astype(dtype)
    m = mdp._model._Model(P, R.astype(dtype))
    return m, m.gamma(np.linspace(0.0, 0.97, B))


def _loop_outs(m, V0=None):
    B, S, A, dt = m.B, m.S, m.A, m.dtype
    V = np.zeros((B, S), dt) if V0 is None else V0.astype(dt).copy()
    return [V, np.empty((B, S, A), dt), np.empty((B, S), np.int64)] + [
        np.zeros(B, np.int64),
        np.zeros(B, np.int64),
        np.zeros(B),
        np.zeros(B, np.uint8),
    ]


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize(
    "eval_max,eval_rel,span,max_iter",
    [
        (0, -1.0, True, 5000),
        (500, 0.0, True, 5000),
        (1000, 0.01, True, 5000),
        (3, -1.0, False, 5000),
        (0, -1.0, False, 5000),
        (50, 0.0, True, 2),  # stopped by max_iter, with evaluation sweeps in between
        (0, -1.0, True, 7),
    ],
)
@pytest.mark.parametrize("every", [1, 16])
def test_batched_loop_matches_compiled_loop_bitwise(dtype, sparse, eval_max, eval_rel, span, max_iter, every, rng):
    from pygenmod import _cpu_mdp, _cpu_mdp_batched

    m, g = _loop_problem(dtype, sparse)
    th = mdp._solvers._threshold(m, g, 1e-3 if dtype == np.float32 else 1e-9, None, "span" if span else "sup", g)
    kind = "csr" if sparse else "dense"
    for V0 in (None, rng.normal(size=(m.B, m.S))):
        got = _loop_outs(m, V0)
        getattr(_cpu_mdp_batched, f"solve_loop_{kind}")(
            *m.args(), m.R, g, th, max_iter, span, eval_max, eval_rel, *got, every
        )
        for elim in (-1.0, 1e-6):  # action elimination changes no float
            ref = _loop_outs(m, V0)
            getattr(_cpu_mdp, f"solve_{kind}")(
                *m.args(), m.R, g, th, max_iter, span, eval_max, eval_rel, -1.0, elim, *ref, np.zeros((m.B, 4))
            )
            for x, y, name in zip(got, ref, ("V", "Q", "policy", "iterations", "eval_sweeps", "residual", "conv")):
                assert x.tobytes() == y.tobytes(), name


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("stochastic", [False, True])
@pytest.mark.parametrize("span", [False, True])
def test_batched_evaluate_loop_matches_compiled_loop_bitwise(dtype, sparse, stochastic, span, rng):
    from pygenmod import _cpu_mdp, _cpu_mdp_batched

    m, g = _loop_problem(dtype, sparse, S=13, B=3, seed=12)
    if stochastic:
        pi = rng.random((3, 13, 3)).astype(dtype)
        pi[..., 0] = 0  # actions of probability zero are skipped
        pi /= pi.sum(-1, keepdims=True)
        det, stoch = None, pi
    else:
        det, stoch = rng.integers(0, 3, (3, 13)), None
    th = mdp._solvers._threshold(m, g, 1e-3 if dtype == np.float32 else 1e-10, None, "span" if span else "sup", g)
    kind = "csr" if sparse else "dense"
    outs = [[np.zeros((3, 13), dtype), np.zeros(3, np.int64), np.zeros(3), np.zeros(3, np.uint8)] for _ in range(2)]
    getattr(_cpu_mdp_batched, f"evaluate_loop_{kind}")(*m.args(), m.R, g, th, 100_000, span, det, stoch, *outs[0], 5)
    getattr(_cpu_mdp, f"evaluate_{kind}")(*m.args(), m.R, g, th, 100_000, span, det, stoch, *outs[1])
    for x, y in zip(*outs):
        assert x.tobytes() == y.tobytes()
    exact = mdp.policy_evaluation(m.P if not sparse else m.csr, m.R, g, det if det is not None else stoch).V
    np.testing.assert_allclose(outs[0][0], exact, atol=1e-3 if dtype == np.float32 else 1e-8)  # (epsilon)
    assert outs[0][3].all() and (outs[0][1] > 0).all()


def test_batched_loop_bad_arguments():
    from pygenmod import _cpu_mdp_batched

    m, g = _loop_problem(np.float64, False)
    th = np.full(m.B, 1e-6)
    with pytest.raises(ValueError, match="max_iter"):
        _cpu_mdp_batched.solve_loop_dense(m.P, m.R, g, th, 0, True, 0, -1.0, *_loop_outs(m))
    with pytest.raises(ValueError, match="policy"):
        _cpu_mdp_batched.evaluate_loop_dense(
            m.P,
            m.R,
            g,
            th,
            10,
            True,
            None,
            None,
            *_loop_outs(m)[:1],
            np.zeros(4, np.int64),
            np.zeros(4),
            np.zeros(4, np.uint8),
        )


@pytest.mark.parametrize("S", [7, 40, 300])  # thread per state / warp per state; control blocks of 32..256
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("solver", ["vi", "mpi", "evaluate"])
def test_device_loop_matches_cpu(backend, dtype, sparse, solver, S):
    # the whole loop in one CUDA call against the CPU solver (the same LoopControl; sums
    # in a different order on the device, so to rounding)
    P, R = mdp.random_mdp(S, 3, 5, successors=6 if sparse else None, seed=14)
    P = mdp.CSR(P.data.astype(dtype), P.indices, P.indptr, P.shape) if sparse else P.astype(dtype)
    R = R.astype(dtype)
    g = np.array([0.0, 0.3, 0.9, 0.95, 0.99 if dtype == np.float64 else 0.97])  # (float32: a reachable threshold)
    eps = 1e-3 if dtype == np.float32 else 1e-8

    def run(P, R, g, xp):
        if solver == "vi":
            return mdp.value_iteration(P, R, xp.asarray(g), epsilon=eps)
        if solver == "mpi":
            return mdp.solve(P, R, xp.asarray(g), epsilon=eps)
        pol = xp.asarray(np.arange(5 * S).reshape(5, S) % 3)
        return mdp.policy_evaluation(P, R, xp.asarray(g), pol, evaluation="iterative", epsilon=eps)

    with pygenmod.use_backend("cpu"):
        ref = run(P, R, g, np)
    Pd = (
        mdp.CSR(*(backend.asarray(x) for x in (P.data, P.indices, P.indptr)), P.shape) if sparse else backend.asarray(P)
    )
    got = run(Pd, backend.asarray(R), g, backend)
    t = tol(dtype)
    np.testing.assert_allclose(backend.numpy(got.V), ref.V, rtol=t["rtol"], atol=max(t["atol"] * 100, 10 * eps))
    assert backend.numpy(got.converged).all() and ref.converged.all()
    if solver != "evaluate":
        np.testing.assert_allclose(backend.numpy(got.Q), ref.Q, rtol=t["rtol"], atol=max(t["atol"] * 100, 10 * eps))
        if dtype == np.float64:
            np.testing.assert_array_equal(backend.numpy(got.policy), ref.policy)


@pytest.mark.parametrize("stochastic", [False, True])
def test_exact_sparse_evaluation_shared_with_cuda(stochastic, rng):
    # the cupyx path of exact evaluation for sparse P, run with scipy.sparse on the CPU
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    P, R = mdp.random_mdp(11, 3, 2, successors=4, seed=13)
    m = mdp._model._Model(P, R)
    g = m.gamma([0.5, 0.95])
    if stochastic:
        pi = rng.random((2, 11, 3))
        pi /= pi.sum(-1, keepdims=True)
        det, stoch, r_pi = None, pi, (pi * m.R).sum(-1)
    else:
        det, stoch = rng.integers(0, 3, (2, 11)), None
        r_pi = np.take_along_axis(m.R, det[..., None], -1)[..., 0]
    got = mdp._solvers._exact_sparse(sp, spla, np, m, g, det, stoch, r_pi)
    want = mdp._solvers._exact_values(m, g, det, stoch)  # the CPU's scipy path
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("sparse", [False, True])
def test_device_branch_arguments_with_the_host_twin(monkeypatch, sparse):
    # The Python CUDA branch of the solvers, run with the host twin of the device loop
    # (_cpu_mdp_batched takes _cuda_mdp's arguments, stream excepted): checks what the
    # Python layer passes to the CUDA call; the results are the CPU solver's, bitwise.
    from pygenmod import _cpu_mdp_batched

    P, R = mdp.random_mdp(12, 3, 3, successors=4 if sparse else None, seed=15)
    g = [0.5, 0.9, 0.95]
    pol = np.arange(36).reshape(3, 12) % 3
    calls = []
    ref = (
        mdp.solve(P, R, g, epsilon=1e-9, check=False),
        mdp.value_iteration(P, R, g, stop="sup", V0=np.ones((3, 12)), check=False),
        mdp.policy_evaluation(P, R, g, pol, evaluation="iterative", check=False),
    )
    kernel = mdp._model._Model.kernel

    def twin(self, name):
        if not name.endswith("_loop"):
            return kernel(self, name)
        calls.append(name)
        return getattr(_cpu_mdp_batched, f"{name}_{'csr' if self.sparse else 'dense'}")

    monkeypatch.setattr(mdp._model._Model, "on_device", property(lambda self: True))
    monkeypatch.setattr(mdp._model._Model, "kernel", twin)
    got = (
        mdp.solve(P, R, g, epsilon=1e-9, check=False),
        mdp.value_iteration(P, R, g, stop="sup", V0=np.ones((3, 12)), check=False),
        mdp.policy_evaluation(P, R, g, pol, evaluation="iterative", check=False),
    )
    assert calls == ["solve_loop", "solve_loop", "evaluate_loop"]
    for a, b in zip(got, ref):
        for x, y in zip(a, b):
            assert np.asarray(x).tobytes() == np.asarray(y).tobytes()


def test_host_twin_takes_the_cuda_arguments():
    # the twin above stands for _cuda_mdp only while both take the same arguments
    import re

    from pygenmod import _cpu_mdp_batched

    try:
        from pygenmod import _cuda_mdp
    except ImportError:
        pytest.skip("CUDA modules not built")

    def names(f):
        return re.findall(r"(\w+): ", f.__doc__.splitlines()[0])

    for fn in ("solve_loop_dense", "solve_loop_csr", "evaluate_loop_dense", "evaluate_loop_csr"):
        cuda_args, host_args = names(getattr(_cuda_mdp, fn)), names(getattr(_cpu_mdp_batched, fn))
        assert cuda_args[-1] == "stream" and host_args[-1] == "every"
        assert cuda_args[:-1] == host_args[:-1], fn
