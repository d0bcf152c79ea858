"""Cross-entropy method: batched top-k on every backend."""

import numpy as np
import pytest
import reference as oracle

from pygenmod import cem


@pytest.mark.parametrize("shape,k", [((1, 1), 1), ((3, 17), 5), ((2, 4, 31), 31), ((5, 8), 0), ((0, 6), 2)])
def test_top_k_matches_stable_argsort(backend, dtype, rng, shape, k):
    x = rng.standard_normal(shape).astype(dtype)
    got = backend.numpy(cem.top_k(backend.asarray(x), k))
    np.testing.assert_array_equal(got, oracle.top_k(x, k))


def test_top_k_ties_go_to_lower_index(backend):
    x = np.array([[1.0, 3.0, 3.0, 2.0, 3.0]])
    np.testing.assert_array_equal(backend.numpy(cem.top_k(backend.asarray(x), 4)), [[1, 2, 4, 3]])


# Row lengths on both sides of the CUDA kernel choice (32..4096: block per row, ranking; else a
# thread per row, insertion), with many ties: every backend gives the same indices.
@pytest.mark.parametrize("shape,k", [((3, 31), 7), ((4, 32), 8), ((2, 1000), 100), ((1, 4096), 5), ((2, 4097), 9)])
def test_top_k_ties_both_gpu_paths(backend, dtype, rng, shape, k):
    x = (rng.integers(-2, 3, shape) * 1e30).astype(dtype)  # five levels, extremes included
    got = backend.numpy(cem.top_k(backend.asarray(x), k))
    np.testing.assert_array_equal(got, oracle.top_k(x, k))


@pytest.mark.parametrize("n, k", [(33, 17), (1000, 100), (1000, 999), (5000, 1000), (257, 257)])
@pytest.mark.parametrize("pattern", ["random", "ascending", "descending", "equal", "few", "signed_zeros", "organ_pipe"])
def test_top_k_large_k_selection_patterns(backend, dtype, rng, n, k, pattern):
    """k above the insertion's range goes through the CPU's quickselect (branch-free three-way
    partitions): inputs that defeat a naive pivot or stall on ties give argsort's indices."""
    x = {
        "random": lambda: rng.standard_normal((3, n)),
        "ascending": lambda: np.tile(np.arange(n, dtype=float), (3, 1)),
        "descending": lambda: np.tile(np.arange(n, 0, -1, dtype=float), (3, 1)),
        "equal": lambda: np.full((3, n), 2.5),
        "few": lambda: rng.integers(-1, 2, (3, n)).astype(float),
        "signed_zeros": lambda: np.where(rng.random((3, n)) < 0.5, -0.0, 0.0) + (rng.random((3, n)) < 0.1),
        "organ_pipe": lambda: np.tile(np.minimum(np.arange(n), np.arange(n)[::-1]).astype(float), (3, 1)),
    }[pattern]().astype(dtype)
    got = backend.numpy(cem.top_k(backend.asarray(x), k))
    np.testing.assert_array_equal(got, oracle.top_k(x, k))


def test_top_k_bad_input():
    with pytest.raises(ValueError, match="k: must be <= N"):
        cem.top_k(np.zeros((2, 3)), 4)
    with pytest.raises(ValueError, match="NaN"):
        cem.top_k(np.array([[1.0, np.nan]]), 1)
    with pytest.raises(TypeError, match="k"):
        cem.top_k(np.zeros((2, 3)), 1.5)


# ------------------------------------------------------------------------------- CEM
def reference_cem_step(mean, std, X, R, k, alpha, min_std, reg, weights="uniform"):
    idx = oracle.top_k(R, k)
    if weights == "uniform":
        w = np.full(k, 1.0 / k)
    else:
        w = np.log(k + 0.5) - np.log(np.arange(1, k + 1))
        w /= w.sum()
    E = np.take_along_axis(X, idx[..., None], 1)  # (B, k, D)
    mu = np.einsum("k,bkd->bd", w, E)
    var = np.einsum("k,bkd->bd", w, (E - mu[:, None]) ** 2) + reg
    new_mean = alpha * mean + (1 - alpha) * mu
    new_std = np.maximum(alpha * std + (1 - alpha) * np.sqrt(var), min_std)
    return new_mean, new_std, mu, var, E, w


@pytest.mark.parametrize("weights", ["uniform", "rank"])
def test_cem_step_diag_matches_reference(backend, dtype, rng, weights):
    B, N, D, k = 3, 29, 4, 7
    mean, std = rng.standard_normal((B, D)), rng.random((B, D)) + 0.1
    X, R = rng.standard_normal((B, N, D)), rng.standard_normal((B, N))
    args = [backend.asarray(a.astype(dtype)) for a in (mean, std, X, R)]
    out = cem.cem_step(*args, k, alpha=0.3, min_std=0.05, reg=1e-3, elite_weights=weights)
    ref_mean, ref_std, *_ = reference_cem_step(
        *(a.astype(dtype).astype(np.float64) for a in (mean, std, X, R)), k, 0.3, 0.05, 1e-3, weights
    )
    t = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(backend.numpy(out.mean), ref_mean, **t)
    np.testing.assert_allclose(backend.numpy(out.scale), ref_std, **t)


def test_cem_step_full_matches_reference(backend, rng):
    B, N, D, k = 2, 40, 3, 13
    mean = rng.standard_normal((B, D))
    L = np.tril(rng.standard_normal((B, D, D)) * 0.2) + np.eye(D)
    X, R = rng.standard_normal((B, N, D)), rng.standard_normal((B, N))
    out = cem.cem_step(*(backend.asarray(a) for a in (mean, L, X, R)), k, covariance="full", alpha=0.25, min_std=0.1)
    idx = oracle.top_k(R, k)
    E = np.take_along_axis(X, idx[..., None], 1)
    mu = E.mean(1)
    C = np.einsum("bkd,bke->bde", E - mu[:, None], E - mu[:, None]) / k
    C = 0.25 * L @ np.swapaxes(L, -1, -2) + 0.75 * C + 0.01 * np.eye(D)
    Lo = backend.numpy(out.scale)
    np.testing.assert_allclose(backend.numpy(out.mean), 0.25 * mean + 0.75 * mu, rtol=1e-10)
    np.testing.assert_allclose(Lo @ np.swapaxes(Lo, -1, -2), C, rtol=1e-8, atol=1e-10)
    assert np.allclose(np.triu(Lo, 1), 0)


def sphere(opt):
    return lambda X: -((X - opt[:, None, :]) ** 2).sum(-1)


def rosenbrock(X):
    x, y = X[..., 0], X[..., 1]
    return -((1 - x) ** 2 + 100 * (y - x**2) ** 2)


@pytest.mark.parametrize("covariance", ["diag", "full"])
def test_cem_optimize_finds_batched_optima(covariance, rng):
    B, D = 4, 3
    opt = rng.uniform(-3, 3, (B, D))
    scale = np.full((B, D), 2.0) if covariance == "diag" else np.broadcast_to(2 * np.eye(D), (B, D, D)).copy()
    res = cem.cem_optimize(
        sphere(opt),
        np.zeros((B, D)),
        scale,
        n_samples=64,
        n_elite=8,
        n_iter=40,
        seed=1,
        min_std=0.01,
        covariance=covariance,
    )
    np.testing.assert_allclose(res.mean, opt, atol=1e-2)
    assert res.elite_mean_return.shape == (40, B)
    assert (np.diff(res.elite_mean_return[:, 0])[5:] > -1.0).all()  # no collapse late in the run


def test_cem_optimize_rosenbrock_and_quadratic(rng):
    # full covariance follows the curved valley; the std floor keeps the search from stalling in it
    res = cem.cem_optimize(
        rosenbrock,
        np.array([[-1.0, 1.5]]),
        np.eye(2)[None],
        n_samples=200,
        n_elite=20,
        n_iter=150,
        seed=3,
        alpha=0.2,
        min_std=0.01,
        covariance="full",
    )
    np.testing.assert_allclose(res.best_x[0], [1.0, 1.0], atol=0.02)
    A = np.array([[3.0, 0.5], [0.5, 1.0]])
    x_star = np.array([0.7, -1.2])
    quad = lambda X: -np.einsum("bnd,de,bne->bn", X - x_star, A, X - x_star)
    q = cem.cem_optimize(quad, np.zeros((2, 2)), np.ones((2, 2)), n_samples=100, n_elite=10, n_iter=40, seed=5)
    np.testing.assert_allclose(q.mean, np.broadcast_to(x_star, (2, 2)), atol=1e-2)


def test_cem_same_seed_same_trajectory_on_every_backend(backend, rng):
    opt = rng.uniform(-1, 1, (3, 2))
    with __import__("pygenmod").use_backend("cpu" if backend.name == "numba" else "numba"):
        other = cem.cem_optimize(
            sphere(opt), np.zeros((3, 2)), np.ones((3, 2)), n_samples=32, n_elite=4, n_iter=5, seed=9
        )
    mine = cem.cem_optimize(sphere(opt), np.zeros((3, 2)), np.ones((3, 2)), n_samples=32, n_elite=4, n_iter=5, seed=9)
    np.testing.assert_allclose(mine.mean, other.mean, rtol=1e-9)
    np.testing.assert_allclose(mine.elite_mean_return, other.elite_mean_return, rtol=1e-9)
    # a row's trajectory does not depend on the other rows of the batch
    one = cem.cem_optimize(
        sphere(opt[:1]), np.zeros((1, 2)), np.ones((1, 2)), n_samples=32, n_elite=4, n_iter=5, seed=9
    )
    np.testing.assert_allclose(one.mean[0], mine.mean[0], rtol=1e-9)


def test_cem_bad_input(rng):
    m, s = np.zeros((2, 3)), np.ones((2, 3))
    X, R = rng.standard_normal((2, 10, 3)), rng.standard_normal((2, 10))
    with pytest.raises(ValueError, match="n_elite"):
        cem.cem_step(m, s, X, R, 11)
    with pytest.raises(ValueError, match="returns"):
        cem.cem_step(m, s, X, R[:, :9], 3)
    with pytest.raises(ValueError, match="alpha"):
        cem.cem_step(m, s, X, R, 3, alpha=1.0)
    with pytest.raises(ValueError, match="scale"):
        cem.cem_step(m, -s, X, R, 3)
    with pytest.raises(ValueError, match="covariance"):
        cem.cem_step(m, s, X, R, 3, covariance="tied")
    with pytest.raises(ValueError, match="NaN"):
        cem.cem_step(m, s, X, np.where(R > 0, np.nan, R), 3)
    with pytest.raises(ValueError, match="objective"):
        cem.cem_optimize(lambda X: np.zeros((2, 3)), m, s, n_samples=10, n_elite=2, n_iter=1)


@pytest.mark.parametrize("noise", [np.float32, np.float64])
@pytest.mark.parametrize("weights", ["uniform", "rank"])
@pytest.mark.parametrize("k, ties", [(6, False), (20, False), (20, True)])  # insertion / selection, with ties
def test_fused_diag_iteration_matches_the_composed_kernels(backend, dtype, rng, weights, k, ties, noise):
    """cem_optimize's fused diagonal path (sample; elites + refit) against the composition of
    random.normal / rsample_normal, top_k and the weighted M-step that cem_step uses, for
    noise drawn in either dtype."""
    if backend.name == "cuda":
        pytest.skip("the fused path is the CPU backends'")
    B, D, N = 3, 4, 40
    opt = rng.standard_normal((B, D))
    f = sphere(opt)
    if ties:
        f = (lambda g: lambda X: np.round(g(X), 0))(f)
    m0, s0 = np.zeros((B, D), dtype), np.full((B, D), 1.5, dtype)
    kw = dict(
        n_samples=N,
        n_elite=k,
        n_iter=8,
        seed=4,
        covariance="diag",
        alpha=0.2,
        min_std=0.05,
        elite_weights=weights,
        reg=1e-6,
    )
    t = dict(rtol=2e-4, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    for stream in (0, 5):  # stream: the global index of row 0 (chunked batches)
        got = cem.cem_optimize(f, m0, s0, stream=stream, noise_dtype=noise, **kw)
        ref = cem._optimize_composed(
            f, m0, s0, N, k, 8, 4, stream, "diag", 0.2, 0.05, weights, 1e-6, np.dtype(noise), lambda a: a
        )
        for a, b in zip(got, ref):
            assert a.dtype == dtype
            np.testing.assert_allclose(a, b, **t)


@pytest.mark.parametrize("B,N,D", [(2, 16, 3), (4, 512, 8)])  # both sides of the GIL threshold (B N D = 2**14)
def test_objective_that_keeps_the_samples_gets_fresh_arrays(rng, B, N, D):
    kept = []

    def f(X):
        kept.append(X)
        return -(X**2).sum(-1)

    kw = dict(n_samples=N, n_elite=4, n_iter=4, seed=0)
    cem.cem_optimize(f, np.zeros((B, D)), np.ones((B, D)), **kw)
    copies = []
    cem.cem_optimize(lambda X: (copies.append(X.copy()), -(X**2).sum(-1))[1], np.zeros((B, D)), np.ones((B, D)), **kw)
    assert len({id(x) for x in kept}) == 4
    for a, b in zip(kept, copies):
        np.testing.assert_array_equal(a, b)


@pytest.mark.reliability
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_fused_path_rejects_nonfinite_returns(bad):
    def f(X):
        r = -(X**2).sum(-1)
        r[1, 3] = bad
        return r

    with pytest.raises(ValueError, match="objective"):
        cem.cem_optimize(f, np.zeros((2, 3)), np.ones((2, 3)), n_samples=8, n_elite=2, n_iter=2)


@pytest.mark.reliability
@pytest.mark.parametrize("shape", [(0, 3), (2, 0)])
def test_cem_optimize_empty_batch_or_dimension_names_mean(shape):
    with pytest.raises(ValueError, match="mean"):
        cem.cem_optimize(lambda X: X.sum(-1), np.zeros(shape), np.ones(shape), n_samples=8, n_elite=2, n_iter=2)


@pytest.mark.parametrize("kind", ["float32", "strided", "list", "3-D"])
def test_returns_of_another_kind_are_converted_or_rejected(backend, rng, kind):
    """The backends' loops take exact returns as they come and pass anything else through the
    Python layer's conversion and checks (the same answer, or the same error)."""
    if backend.name == "cuda":
        pytest.skip("the fused path is the CPU backends'")
    f = sphere(rng.standard_normal((3, 2)))
    convert = {
        "float32": lambda r: r.astype(np.float32),
        "strided": lambda r: np.asfortranarray(np.stack([r, r]))[0],  # not C-contiguous
        "list": lambda r: r.tolist(),
        "3-D": lambda r: r[None],  # rejected
    }[kind]
    kw = dict(n_samples=24, n_elite=5, n_iter=6, seed=3)
    m0, s0 = np.zeros((3, 2)), np.ones((3, 2))
    if kind == "3-D":
        with pytest.raises(ValueError, match="objective"):
            cem.cem_optimize(lambda X: convert(f(X)), m0, s0, **kw)
        return
    same = (lambda X: f(X).astype(np.float32).astype(np.float64)) if kind == "float32" else f
    got, ref = cem.cem_optimize(lambda X: convert(f(X)), m0, s0, **kw), cem.cem_optimize(same, m0, s0, **kw)
    for a, b in zip(got, ref):
        np.testing.assert_array_equal(a, b)


def test_objective_errors_propagate_and_samples_are_reused(backend):
    if backend.name == "cuda":
        pytest.skip("the fused path is the CPU backends'")
    seen = []

    def f(X):
        seen.append(id(X))
        if len(seen) == 3:
            raise KeyError("from the objective")
        return -(X**2).sum(-1)

    with pytest.raises(KeyError, match="from the objective"):
        cem.cem_optimize(f, np.zeros((2, 3)), np.ones((2, 3)), n_samples=8, n_elite=2, n_iter=5, seed=0)
    assert len(seen) == 3 and len(set(seen)) == 1  # one samples array, reused while nobody keeps it


@pytest.mark.parametrize("noise", [np.float32, np.float64])
@pytest.mark.parametrize("B, N, D", [(2, 700, 3), (1, 300, 32), (2, 9, 2047), (2, 3, 4097), (1, 2, 9000), (3, 1, 1)])
def test_cem_population_is_the_noise_stream_exactly(backend, dtype, B, N, D, noise):
    """The fused sampler (sliced for the cache on the CPU: whole samples, or pieces of one
    long sample) draws exactly the noise of one random.normal call over each row's stream, in
    the noise dtype: mean + std * eps converted to the problem's dtype, bit for bit."""
    if backend.name == "cuda":
        pytest.skip("the fused path is the CPU backends'")
    from pygenmod import random
    from pygenmod._dispatch import get_kernel

    g = np.random.default_rng(B * N * D)
    m, s = g.standard_normal((B, D)).astype(dtype), g.uniform(0.1, 2, (B, D)).astype(dtype)
    X = np.empty((B, N, D), dtype)
    get_kernel("cem", "sample_diag", backend.name)(m, s, 11, 4, 37, X, noise == np.float32)
    for b in range(B):
        eps = random.normal(11, (N * D,), stream=4 + b, offset=37, dtype=noise).reshape(N, D).astype(dtype)
        np.testing.assert_array_equal(X[b], m[b] + s[b] * eps)


def test_noise_dtype_chooses_the_draws_and_is_checked(backend, rng):
    """float32 noise by default; None means the problem's dtype; anything but float32/float64
    is a TypeError that names the argument."""
    opt = rng.uniform(-1, 1, (2, 3))
    kw = dict(n_samples=16, n_elite=4, n_iter=3, seed=2)
    m, s = backend.asarray(np.zeros((2, 3))), backend.asarray(np.ones((2, 3)))
    f = sphere(backend.asarray(opt)) if backend.name == "cuda" else sphere(opt)
    run = lambda **o: backend.numpy(cem.cem_optimize(f, m, s, **kw, **o).mean)
    default, f32, f64, same = run(), run(noise_dtype="float32"), run(noise_dtype=np.float64), run(noise_dtype=None)
    np.testing.assert_array_equal(default, f32)
    np.testing.assert_array_equal(same, f64)
    assert not np.array_equal(f32, f64)
    for bad in ("float16", np.int32, "nope"):
        with pytest.raises(TypeError, match="noise_dtype"):
            cem.cem_optimize(f, m, s, noise_dtype=bad, **kw)


def test_cem_trajectory_on_cuda_matches_the_cpu(backend, rng):
    """The composed CUDA path draws the CPU's noise: with float64 noise the trajectory matches to
    rounding; with the default float32 noise to a float32 rounding of the noise (nvcc fuses the
    transform's multiply-adds), on a problem whose returns are far apart."""
    if backend.name != "cuda":
        pytest.skip("compares the CUDA path with the CPU's")
    opt = rng.uniform(-1, 1, (3, 2))
    kw = dict(n_samples=32, n_elite=4, n_iter=5, seed=9)
    for noise, rtol in ((np.float64, 1e-9), (np.float32, 1e-4)):
        cpu = cem.cem_optimize(sphere(opt), np.zeros((3, 2)), np.ones((3, 2)), noise_dtype=noise, **kw)
        dev = cem.cem_optimize(
            sphere(backend.asarray(opt)),
            backend.asarray(np.zeros((3, 2))),
            backend.asarray(np.ones((3, 2))),
            noise_dtype=noise,
            **kw,
        )
        np.testing.assert_allclose(backend.numpy(dev.mean), cpu.mean, rtol=rtol, atol=rtol)
        np.testing.assert_allclose(backend.numpy(dev.scale), cpu.scale, rtol=rtol, atol=rtol)
