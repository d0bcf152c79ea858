"""Reliability (issue 18): unusual inputs get the same answer or the same clear error on every
backend -- big-endian arrays, read-only or aliasing ``out=`` buffers (every function with out=),
torch bfloat16 / meta tensors through the NumPy API, zero-size inputs, and errors that must
name the real problem (spatial temperature underflow, all -inf maps, random_mdp's seed)."""

import numpy as np
import pytest

from pygenmod import cem, gmm, mdp, returns, sampling, spatial

pytestmark = pytest.mark.reliability


def _host_only(backend):
    if backend.name == "cuda":
        pytest.skip("NumPy-specific input (byte order / torch CPU tensors); the CUDA path takes CuPy arrays")


# ----------------------------------------------------------------- big-endian input (item 13)
@pytest.mark.parametrize("order", [">", "<"])
def test_byte_order_is_converted(backend, dtype, order, rng):
    _host_only(backend)
    a = rng.standard_normal((3, 4)).astype(dtype)
    b = rng.standard_normal((3, 4)).astype(dtype)
    x4 = rng.standard_normal((2, 3, 4, 5)).astype(dtype)
    X = rng.standard_normal((2, 20, 2)).astype(dtype)
    cases = [
        (lambda u, v: sampling.kl_normal(u, v), (a, b)),
        (lambda u, v: returns.gae(u, v).advantages, (a, b)),
        (lambda u: spatial.spatial_softmax(u), (x4,)),
        (lambda u: cem.top_k(u, 2), (a,)),
        (lambda u: gmm.fit(u, 2, max_iter=3, seed=0, warn=False).params.means, (X,)),
        (lambda u: spatial.spatial_softmax(x4, mask=u), (np.ones((4, 5), np.int32),)),
    ]
    for fn, args in cases:
        want = fn(*args)
        got = fn(*(np.asarray(x, x.dtype.newbyteorder(order)) for x in args))
        assert np.array_equal(np.asarray(got), np.asarray(want)), fn


# ----------------------------------------------------------------- out= (items 11, 13)
def _buffers(backend, shape, dtype=np.float64, n=1):
    return [backend.asarray(np.zeros(shape, dtype)) for _ in range(n)]


def _read_only(backend, a):
    if backend.name == "cuda":
        pytest.skip("CuPy arrays have no read-only flag")
    a.flags.writeable = False
    return a


def test_gae_out_read_only(backend):
    r, v, o = _buffers(backend, (4, 3), n=3)
    with pytest.raises(ValueError, match=r"out\[0\]: is read-only"):
        returns.gae(r, v, out=(_read_only(backend, o), backend.asarray(np.zeros((4, 3)))))


@pytest.mark.parametrize("which", ["rewards", "values", "next_values", "bootstrap"])
def test_gae_out_aliasing_an_input_is_rejected(backend, which, rng):
    T, B = 5, 3
    r = backend.asarray(rng.standard_normal((T, B)))
    v = backend.asarray(rng.standard_normal((T, B)))
    nv = backend.asarray(rng.standard_normal((T, B)))
    ret = backend.asarray(np.zeros((T, B)))
    kw = dict(next_values=nv, truncated=backend.asarray(np.zeros((T, B), bool)))
    target = {"rewards": r, "values": v, "next_values": nv}.get(which)
    if which == "bootstrap":  # out overlaps bootstrap_value through a shared base buffer
        base = backend.asarray(np.zeros((T + 1) * B))
        target, boot = base[: T * B].reshape(T, B), base[(T - 1) * B : T * B]
        kw = dict(bootstrap_value=boot)
        which = "bootstrap_value"
    with pytest.raises(ValueError, match=rf"out\[0\]: shares memory with {which}"):
        returns.gae(r, v, out=(target, ret), **kw)


def test_gae_out_buffers_alias_each_other(backend):
    r, v, o = _buffers(backend, (4, 3), n=3)
    with pytest.raises(ValueError, match=r"out\[1\]: shares memory with out\[0\]"):
        returns.gae(r, v, out=(o, o))


def test_gae_separate_out_buffers_still_work(backend, rng):
    r = backend.asarray(rng.standard_normal((6, 2)))
    v = backend.asarray(rng.standard_normal((6, 2)))
    want = returns.gae(r, v)
    a, b = _buffers(backend, (6, 2), n=2)
    got = returns.gae(r, v, out=(a, b))
    assert got.advantages is a and np.array_equal(backend.numpy(a), backend.numpy(want.advantages))


@pytest.mark.parametrize("fn", ["rsample_normal", "normal_head", "rsample_mvn", "mvn_head"])
def test_sampler_out_read_only_and_aliasing(backend, fn, rng):
    B, D = 3, 4
    mu = backend.asarray(rng.standard_normal((B, D)))
    if "mvn" in fn:
        second = backend.asarray(np.broadcast_to(np.eye(D), (B, D, D)).copy())
    else:
        second = backend.asarray(np.zeros((B, D)))
    call = getattr(sampling, fn)
    with pytest.raises(ValueError, match="out: must be C-contiguous and writeable"):
        call(mu, second, out=_read_only(backend, backend.asarray(np.zeros((B, D)))))
    with pytest.raises(ValueError, match="out: shares memory with mu"):
        call(mu, second, out=mu)
    eps = backend.asarray(rng.standard_normal((B, D)))
    with pytest.raises(ValueError, match="out: shares memory with eps"):
        call(mu, second, eps=eps, out=eps)
    if "mvn" not in fn:
        with pytest.raises(ValueError, match="out: shares memory with logvar"):
            call(mu, second, out=second)
    else:
        flat = backend.asarray(np.zeros(B * D * D))  # out overlaps the first rows of scale_tril
        L = flat.reshape(B, D, D)
        L[:] = backend.asarray(np.eye(D))
        with pytest.raises(ValueError, match="out: shares memory with scale_tril"):
            call(mu, L, out=flat[: B * D].reshape(B, D))


def test_spatial_vjp_out_read_only_and_aliasing(backend, rng):
    x = backend.asarray(rng.standard_normal((2, 3, 4, 5)))
    g = backend.asarray(rng.standard_normal((2, 3, 2)))
    gm = backend.asarray(rng.standard_normal((2, 3, 4, 5)))
    with pytest.raises(ValueError, match="out: expected a writable"):
        spatial.spatial_softmax_backward(
            x, 1.0, grad_keypoints=g, out=_read_only(backend, backend.asarray(np.zeros((2, 3, 4, 5))))
        )
    with pytest.raises(ValueError, match="out: shares memory with x"):
        spatial.spatial_softmax_backward(x, 1.0, grad_keypoints=g, out=x)
    with pytest.raises(ValueError, match="out: shares memory with grad_maps"):
        spatial.spatial_softmax_backward(x, 1.0, grad_keypoints=g, grad_maps=gm, out=gm)


# ----------------------------------------------------------------- torch tensors (item 14)
@pytest.fixture
def torch():
    return pytest.importorskip("torch")


def test_torch_bfloat16_is_widened_to_float32(backend, torch, rng):
    _host_only(backend)
    a = torch.tensor(rng.standard_normal((3, 4)), dtype=torch.bfloat16)
    b = torch.tensor(rng.standard_normal((3, 4)), dtype=torch.bfloat16)
    x = torch.tensor(rng.standard_normal((1, 2, 3, 4)), dtype=torch.bfloat16)
    pairs = [
        (sampling.kl_normal(a, b), sampling.kl_normal(a.float(), b.float())),
        (returns.gae(a, b).advantages, returns.gae(a.float(), b.float()).advantages),
        (spatial.spatial_softmax(x), spatial.spatial_softmax(x.float())),
        (cem.top_k(a, 2), cem.top_k(a.float(), 2)),
    ]
    for got, want in pairs:
        assert isinstance(got, torch.Tensor) and got.dtype == want.dtype
        assert torch.equal(got, want)


def test_torch_bfloat16_with_grad_is_accepted(backend, torch):
    _host_only(backend)
    a = torch.zeros(2, 3, dtype=torch.bfloat16, requires_grad=True)
    assert sampling.kl_normal(a, a.detach()).shape == (2,)


@pytest.mark.parametrize("where", ["mu", "logvar"])
def test_torch_meta_tensor_names_the_argument(backend, torch, where):
    _host_only(backend)
    real, meta = torch.zeros(2, 3), torch.zeros(2, 3, device="meta")
    args = {"mu": (meta, real), "logvar": (real, meta)}[where]
    with pytest.raises(TypeError, match=f"{where}: expected a CPU or CUDA tensor, got one on device 'meta'"):
        sampling.kl_normal(*args)


def test_torch_meta_tensor_other_entry_points(backend, torch):
    _host_only(backend)
    meta = torch.zeros(4, 3, device="meta")
    with pytest.raises(TypeError, match="rewards: .*meta"):
        returns.gae(meta, torch.zeros(4, 3))
    with pytest.raises(TypeError, match="x: .*meta"):
        spatial.spatial_softmax(torch.zeros(1, 1, 2, 2, device="meta"))


# ----------------------------------------------------------------- zero-size inputs (item 16)
def test_mvn_log_prob_zero_dimensions(backend, dtype):
    B = 3
    x = backend.asarray(np.zeros((B, 0), dtype))
    L = backend.asarray(np.zeros((0, 0), dtype))
    lp = backend.numpy(sampling.mvn_log_prob(x, x, L))
    assert lp.shape == (B,) and np.array_equal(lp, np.zeros(B))  # log N over an empty vector is 0
    assert backend.numpy(sampling.mahalanobis(x, x, L)).shape == (B,)
    xs = backend.asarray(np.zeros((2, B, 0), dtype))
    assert backend.numpy(sampling.mvn_log_prob(xs, x, L)).shape == (2, B)


def test_mvn_log_prob_zero_rows(backend, dtype):
    x = backend.asarray(np.zeros((0, 2), dtype))
    L = backend.asarray(np.eye(2, dtype=dtype))
    assert backend.numpy(sampling.mvn_log_prob(x, x, L)).shape == (0,)


@pytest.mark.parametrize(
    "shape,k,want", [((3, 0), 0, (3, 0)), ((0, 4), 2, (0, 2)), ((3, 4), 0, (3, 0)), ((2, 0, 5), 1, (2, 0, 1))]
)
def test_top_k_empty(backend, shape, k, want):
    got = backend.numpy(cem.top_k(backend.asarray(np.zeros(shape)), k))
    assert got.shape == want and got.dtype == np.int64


def test_top_k_k_larger_than_empty_row(backend):
    with pytest.raises(ValueError, match="k: must be <= N = 0"):
        cem.top_k(backend.asarray(np.zeros((3, 0))), 1)


@pytest.mark.parametrize("shape", [(0, 2), (2, 0), (0, 0)])
def test_cem_empty_problem_names_mean(backend, shape):
    mean = backend.asarray(np.zeros(shape))
    with pytest.raises(ValueError, match="mean: expected shape \\(B, D\\) with B >= 1"):
        cem.cem_optimize(lambda x: x.sum(-1), mean, mean + 1, n_samples=4, n_elite=2, n_iter=2)
    with pytest.raises(ValueError, match="mean: expected shape \\(B, D\\) with B >= 1"):
        cem.cem_step(
            mean,
            mean + 1,
            backend.asarray(np.zeros((shape[0], 4, shape[1]))),
            backend.asarray(np.zeros((shape[0], 4))),
            2,
        )


# ----------------------------------------------------------------- errors that name the problem (item 19)
@pytest.mark.parametrize("t", [1e-320, 1e-39])
def test_spatial_temperature_underflow_is_named(backend, dtype, t, rng):
    x = backend.asarray(rng.standard_normal((1, 2, 3, 3)).astype(dtype))
    if dtype == np.float64 and t == 1e-39:
        spatial.spatial_softmax(x, t)  # 1 / 1e-39 fits float64; the logits may still be finite
        return
    with pytest.raises(ValueError, match="temperature: too small"):
        spatial.spatial_softmax(x, t)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_spatial_all_minus_inf_map_is_named(backend, dtype, layout):
    x = np.zeros((2, 3, 4, 5), dtype)
    x[1, 2] = -np.inf
    if layout == "NHWC":
        x = np.ascontiguousarray(np.moveaxis(x, 1, 3))
    with pytest.raises(ValueError, match="every valid pixel of map b=1, c=2 is -infinity"):
        spatial.spatial_softmax(backend.asarray(x), layout=layout)


def test_spatial_nan_still_reported_as_nan(backend, dtype):
    x = np.zeros((1, 2, 3, 3), dtype)
    x[0, 1, 1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or \\+infinity in x / temperature \\(map b=0, c=1\\)"):
        spatial.spatial_softmax(backend.asarray(x))


@pytest.mark.parametrize("seed,err", [(-1, ValueError), (2**64, ValueError), (1.5, TypeError)])
def test_random_mdp_seed_named(seed, err):
    with pytest.raises(err, match="seed"):
        mdp.random_mdp(3, 2, seed=seed)


@pytest.mark.parametrize("n_iter,msg", [(2**63, "n_iter: must be <= 2"), (2**62, "n_iter: too large")])
def test_cem_n_iter_beyond_what_can_be_stored(backend, n_iter, msg):
    mean = backend.asarray(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=msg):
        cem.cem_optimize(lambda x: x.sum(-1), mean, mean + 1, n_samples=4, n_elite=2, n_iter=n_iter)
