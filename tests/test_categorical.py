"""pygenmod.categorical: log-prob, entropy, KL (masked), their VJPs, the SI-GARL target and GAIL's
policy-gradient surrogate, on every backend, against a float64 NumPy/SciPy reference (and
torch.distributions where installed)."""

import numpy as np
import pytest
import reference as oracle
from conftest import tol

from pygenmod import categorical as cat

# ------------------------------------------------------------------------------ float64 reference


SHAPES = [(1, 1), (5, 1), (4, 7), (3, 2, 5), (17, 33)]


def random_mask(rng, shape):
    m = rng.random(shape) < 0.7
    m[..., rng.integers(shape[-1], size=shape[:-1]) if len(shape) > 1 else 0] = True  # never all-masked
    flat = m.reshape(-1, shape[-1])
    flat[~flat.any(-1), 0] = True
    return flat.reshape(shape)


# ------------------------------------------------------------------------------ values
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("masked", [False, True])
def test_log_prob_entropy_match_reference(backend, dtype, rng, shape, masked):
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    m = random_mask(rng, shape) if masked else None
    lp = oracle.log_softmax_masked(x, m)
    # actions drawn from the allowed ones
    a = np.array([rng.choice(np.flatnonzero(row)) for row in np.isfinite(lp).reshape(-1, shape[-1])]).reshape(
        shape[:-1]
    )
    mm = None if m is None else backend.asarray(m)
    got = backend.numpy(cat.log_prob(backend.asarray(x), backend.asarray(a), mask=mm))
    assert got.dtype == dtype and got.shape == shape[:-1]
    np.testing.assert_allclose(got, np.take_along_axis(lp, a[..., None], -1)[..., 0], **tol(dtype))
    h = backend.numpy(cat.entropy(backend.asarray(x), mask=mm))
    assert h.dtype == dtype and h.shape == shape[:-1]
    np.testing.assert_allclose(h, oracle.categorical_entropy(x, m), **tol(dtype))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("masked", [False, True])
def test_kl_matches_reference(backend, dtype, rng, shape, masked):
    xp_, xq = (rng.standard_normal((2,) + shape) * 2).astype(dtype)
    m = random_mask(rng, shape) if masked else None
    mm = None if m is None else backend.asarray(m)
    got = backend.numpy(cat.kl(backend.asarray(xp_), backend.asarray(xq), mask=mm))
    assert got.dtype == dtype and got.shape == shape[:-1]
    np.testing.assert_allclose(
        got, oracle.categorical_kl(oracle.log_softmax_masked(xp_, m), oracle.log_softmax_masked(xq, m)), **tol(dtype)
    )
    np.testing.assert_allclose(
        backend.numpy(cat.kl(backend.asarray(xq), backend.asarray(xq), mask=mm)),
        0,
        atol=1e-5 if dtype == np.float32 else 1e-12,
    )


def test_kl_separate_masks_and_infinity(backend, dtype):
    p = np.zeros((3, 4), dtype)
    q = np.array([[1, 2, 3, 4]] * 3, dtype)
    pm = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 1]], bool)
    qm = np.array([[1, 1, 1, 0], [1, 1, 1, 0], [1, 1, 1, 1]], bool)
    got = backend.numpy(
        cat.kl(backend.asarray(p), backend.asarray(q), mask=backend.asarray(pm), q_mask=backend.asarray(qm))
    )
    want = oracle.categorical_kl(oracle.log_softmax_masked(p, pm), oracle.log_softmax_masked(q, qm))
    assert np.isinf(got[1]) and got[1] > 0  # p allows action 3, q masks it
    np.testing.assert_allclose(got, want, **tol(dtype))
    gp, gq = cat.kl_backward(
        backend.asarray(p),
        backend.asarray(q),
        grad_kl=backend.asarray(np.ones(3, dtype)),
        mask=backend.asarray(pm),
        q_mask=backend.asarray(qm),
    )
    gp, gq = backend.numpy(gp), backend.numpy(gq)
    assert np.isnan(gp[1]).all() and np.isnan(gq[1]).all()  # no derivative at +inf
    assert np.isfinite(gp[[0, 2]]).all() and np.isfinite(gq[[0, 2]]).all()


def test_masked_action_log_prob_is_minus_inf(backend, dtype):
    x = backend.asarray(np.array([[0.0, 1.0, 2.0]], dtype))
    m = backend.asarray(np.array([[True, False, True]]))
    assert backend.numpy(cat.log_prob(x, backend.asarray(np.array([1])), mask=m))[0] == -np.inf
    g = cat.log_prob_backward(
        x, backend.asarray(np.array([1])), grad_log_prob=backend.asarray(np.ones(1, dtype)), mask=m
    )
    assert np.isnan(backend.numpy(g)).all()


def test_masked_logits_are_never_read(backend, dtype):
    x = np.array([[0.5, np.nan, -1.0, np.inf], [-np.inf, 2.0, 1.0, 0.0]], dtype)
    m = np.isfinite(x)
    clean = np.where(m, x, 123.0).astype(dtype)
    for fn in (
        lambda z: cat.entropy(z, mask=backend.asarray(m)),
        lambda z: cat.log_prob(z, backend.asarray(np.array([2, 1])), mask=backend.asarray(m)),
        lambda z: cat.entropy_backward(z, grad_entropy=backend.asarray(np.ones(2, dtype)), mask=backend.asarray(m)),
    ):
        np.testing.assert_array_equal(backend.numpy(fn(backend.asarray(x))), backend.numpy(fn(backend.asarray(clean))))


def test_shared_mask(backend, dtype, rng):
    x = rng.standard_normal((6, 5)).astype(dtype)
    m = np.array([1, 0, 1, 1, 0], bool)
    got = backend.numpy(cat.entropy(backend.asarray(x), mask=backend.asarray(m)))
    np.testing.assert_allclose(got, oracle.categorical_entropy(x, np.broadcast_to(m, x.shape)), **tol(dtype))


@pytest.mark.parametrize("scale", [1e4, 1e6])
def test_large_logits_are_stable(backend, dtype, rng, scale):
    x = (rng.standard_normal((8, 9)) * scale).astype(dtype)
    x[:, 0] = scale  # ties at the maximum
    x[:, 1] = scale
    x[:, 2] = -scale
    a = np.arange(8) % 9
    h = backend.numpy(cat.entropy(backend.asarray(x)))
    lp = backend.numpy(cat.log_prob(backend.asarray(x), backend.asarray(a)))
    assert np.isfinite(h).all() and np.isfinite(lp).all()
    np.testing.assert_allclose(h, oracle.categorical_entropy(x.astype(np.float64)), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(
        lp, oracle.log_softmax_masked(x.astype(np.float64))[np.arange(8), a], rtol=1e-4, atol=1e-3
    )
    k = backend.numpy(cat.kl(backend.asarray(x), backend.asarray(x[::-1].copy())))
    assert np.isfinite(k).all() and (k >= -1e-3 * scale * 1e-4).all()
    g = cat.entropy_backward(backend.asarray(x), grad_entropy=backend.asarray(np.ones(8, dtype)))
    assert np.isfinite(backend.numpy(g)).all()


def test_single_row_without_batch_axis(backend, dtype):
    x = backend.asarray(np.array([0.1, 0.2, 0.7], dtype))
    h = backend.numpy(cat.entropy(x))
    assert np.ndim(h) == 0
    np.testing.assert_allclose(h, oracle.categorical_entropy(np.array([0.1, 0.2, 0.7])), **tol(dtype))
    assert np.ndim(backend.numpy(cat.log_prob(x, 2))) == 0


def test_k1_is_degenerate(backend, dtype):
    x = backend.asarray(np.array([[3.0], [-1e4]], dtype))
    np.testing.assert_array_equal(backend.numpy(cat.entropy(x)), 0)
    np.testing.assert_array_equal(backend.numpy(cat.log_prob(x, backend.asarray(np.zeros(2, np.int64)))), 0)
    np.testing.assert_array_equal(backend.numpy(cat.kl(x, x)), 0)


def test_empty_batch(backend, dtype):
    x = backend.asarray(np.zeros((0, 4), dtype))
    assert backend.numpy(cat.entropy(x)).shape == (0,)
    assert backend.numpy(cat.entropy_backward(x, grad_entropy=backend.asarray(np.zeros(0, dtype)))).shape == (0, 4)


# ------------------------------------------------------------------------------ gradients
@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (2, 2, 3)])
@pytest.mark.parametrize("masked", [False, True])
def test_gradients_match_finite_differences(backend, rng, shape, masked):
    x = rng.standard_normal(shape) * 2
    y = rng.standard_normal(shape) * 2
    m = random_mask(rng, shape) if masked else None
    a = np.array(
        [rng.choice(np.flatnonzero(r)) for r in np.isfinite(oracle.log_softmax_masked(x, m)).reshape(-1, shape[-1])]
    )
    a = a.reshape(shape[:-1])
    g = rng.standard_normal(shape[:-1])
    mm = None if m is None else backend.asarray(m)
    B = backend.asarray

    def lp_sum(z):
        return (np.take_along_axis(oracle.log_softmax_masked(z, m), a[..., None], -1)[..., 0] * g).sum()

    got = cat.log_prob_backward(B(x), B(a), grad_log_prob=B(g), mask=mm)
    np.testing.assert_allclose(backend.numpy(got), oracle.fd_grad(lp_sum, x), rtol=1e-6, atol=1e-7)
    got = cat.entropy_backward(B(x), grad_entropy=B(g), mask=mm)
    np.testing.assert_allclose(
        backend.numpy(got),
        oracle.fd_grad(lambda z: (oracle.categorical_entropy(z, m) * g).sum(), x),
        rtol=1e-6,
        atol=1e-7,
    )
    gp, gq = cat.kl_backward(B(x), B(y), grad_kl=B(g), mask=mm)
    np.testing.assert_allclose(
        backend.numpy(gp),
        oracle.fd_grad(
            lambda z: (
                oracle.categorical_kl(oracle.log_softmax_masked(z, m), oracle.log_softmax_masked(y, m)) * g
            ).sum(),
            x,
        ),
        rtol=1e-6,
        atol=1e-7,
    )
    np.testing.assert_allclose(
        backend.numpy(gq),
        oracle.fd_grad(
            lambda z: (
                oracle.categorical_kl(oracle.log_softmax_masked(x, m), oracle.log_softmax_masked(z, m)) * g
            ).sum(),
            y,
        ),
        rtol=1e-6,
        atol=1e-7,
    )
    if m is not None:  # masked actions get no gradient
        for arr in (gp, gq, got):
            assert (backend.numpy(arr)[~m] == 0).all()


def test_gradients_float32_close_to_float64(backend, rng):
    x = rng.standard_normal((6, 11)) * 3
    g = rng.standard_normal(6)
    d64 = cat.entropy_backward(backend.asarray(x), grad_entropy=backend.asarray(g))
    d32 = cat.entropy_backward(
        backend.asarray(x.astype(np.float32)), grad_entropy=backend.asarray(g.astype(np.float32))
    )
    assert backend.numpy(d32).dtype == np.float32
    np.testing.assert_allclose(backend.numpy(d32), backend.numpy(d64), **tol(np.float32))


# ------------------------------------------------------------------------------ SI-GARL target
@pytest.mark.parametrize("masked", [False, True])
def test_policy_target_kl(backend, dtype, rng, masked):
    shape = (7, 6)
    logits = (rng.standard_normal(shape) * 2).astype(dtype)
    m = random_mask(rng, shape) if masked else np.ones(shape, bool)
    counts = rng.integers(0, 5, shape).astype(dtype) * m  # visit counts, zero on masked actions
    counts[:, :][counts.sum(-1) == 0] = m[counts.sum(-1) == 0]
    w = counts / counts.sum(-1, keepdims=True)
    lw = np.log(np.where(w > 0, w, 1.0)).astype(np.float64)
    lw = np.where(w > 0, lw, -np.inf)
    want = oracle.categorical_kl(lw, oracle.log_softmax_masked(logits, m))
    B = backend.asarray
    got = backend.numpy(cat.policy_target_kl(B(counts), B(logits), mask=B(m) if masked else None))
    assert got.dtype == dtype
    np.testing.assert_allclose(got, want, **tol(dtype))
    g = rng.standard_normal(7).astype(dtype)
    dq = cat.policy_target_kl_backward(B(counts), B(logits), grad_kl=B(g), mask=B(m) if masked else None)
    pi = np.exp(oracle.log_softmax_masked(logits, m))
    np.testing.assert_allclose(backend.numpy(dq), g[:, None] * (pi - w), **tol(dtype))


def test_policy_target_kl_fd_and_infinity(backend, rng):
    w = np.array([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    x = rng.standard_normal((2, 3))
    m = np.array([[1, 1, 0], [1, 1, 1]], bool)
    B = backend.asarray
    got = cat.policy_target_kl_backward(B(w), B(x), grad_kl=B(np.ones(2)), mask=B(m))

    def f(z):
        return oracle.categorical_kl(
            np.log(np.where(w > 0, w, 1)) + np.where(w > 0, 0, -np.inf), oracle.log_softmax_masked(z, m)
        ).sum()

    np.testing.assert_allclose(backend.numpy(got), oracle.fd_grad(f, x), rtol=1e-6, atol=1e-7)
    k = backend.numpy(
        cat.policy_target_kl(B(np.array([[0.2, 0.8, 0.0]])), B(x[:1]), mask=B(np.array([[1, 0, 1]], bool)))
    )
    assert k[0] == np.inf


# ------------------------------------------------------------------------------ GAIL surrogate
@pytest.mark.parametrize("q_is, sign", [("reward", -1.0), ("cost", 1.0)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_pg_loss(rng, q_is, sign, reduction):
    lp, q, h = rng.standard_normal((3, 4, 9))
    lam = 0.3
    r = cat.pg_loss(lp, q, h, lam=lam, q_is=q_is, reduction=reduction)
    elem = sign * lp * q - lam * h
    red = {"mean": lambda e: e.mean(-1), "sum": lambda e: e.sum(-1), "none": lambda e: e}[reduction]
    np.testing.assert_allclose(r.loss, red(elem))
    s = 1 / 9 if reduction == "mean" else 1.0
    np.testing.assert_allclose(r.grad, sign * q * s)
    np.testing.assert_allclose(r.grad_other, np.full_like(h, -lam * s))


def test_pg_loss_errors():
    with pytest.raises(ValueError, match="entropy"):
        cat.pg_loss(np.zeros(3), np.zeros(3), lam=0.1)
    with pytest.raises(ValueError, match="lam"):
        cat.pg_loss(np.zeros(3), np.zeros(3), np.zeros(3), lam=-1)
    with pytest.raises(ValueError, match="q_values"):
        cat.pg_loss(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="q_is"):
        cat.pg_loss(np.zeros(3), np.zeros(3), q_is="advantage")


def test_pg_loss_from_kernels_matches_torch_autograd(backend, rng):
    torch = pytest.importorskip("torch")
    logits = rng.standard_normal((5, 4))
    a = rng.integers(0, 4, 5)
    q = rng.standard_normal(5)
    lam = 0.1
    B = backend.asarray
    lp = cat.log_prob(B(logits), B(a))
    h = cat.entropy(B(logits))
    r = cat.pg_loss(lp, B(q), h, lam=lam)
    g1 = cat.log_prob_backward(B(logits), B(a), grad_log_prob=r.grad)
    g2 = cat.entropy_backward(B(logits), grad_entropy=r.grad_other)
    t = torch.tensor(logits, requires_grad=True)
    d = torch.distributions.Categorical(logits=t)
    loss = -(d.log_prob(torch.tensor(a)) * torch.tensor(q)).mean() - lam * d.entropy().mean()
    loss.backward()
    np.testing.assert_allclose(float(backend.numpy(r.loss)), loss.item(), rtol=1e-10)
    np.testing.assert_allclose(backend.numpy(g1) + backend.numpy(g2), t.grad.numpy(), rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------------------ peer: torch.distributions
def test_matches_torch_distributions(rng):
    torch = pytest.importorskip("torch")
    x, y = rng.standard_normal((2, 9, 6)) * 2
    a = rng.integers(0, 6, 9)
    p = torch.distributions.Categorical(logits=torch.tensor(x))
    q = torch.distributions.Categorical(logits=torch.tensor(y))
    np.testing.assert_allclose(cat.log_prob(x, a), p.log_prob(torch.tensor(a)).numpy(), rtol=1e-12)
    np.testing.assert_allclose(cat.entropy(x), p.entropy().numpy(), rtol=1e-12)
    np.testing.assert_allclose(cat.kl(x, y), torch.distributions.kl_divergence(p, q).numpy(), rtol=1e-10)


# ------------------------------------------------------------------------------ errors
def test_errors(backend):
    B = backend.asarray
    x = B(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="mask: row 1 masks every action"):
        cat.entropy(x, mask=B(np.array([[1, 0, 0], [0, 0, 0]], bool)))
    with pytest.raises(ValueError, match="q_mask: row 0 masks every action"):
        cat.kl(x, x, q_mask=B(np.array([[0, 0, 0], [1, 1, 1]], bool)))
    with pytest.raises(ValueError, match="logits: row 1 has a NaN"):
        cat.entropy(B(np.array([[0.0, 1, 2], [0, np.nan, 1]])))
    with pytest.raises(ValueError, match="q_logits: row 0 has a NaN"):
        cat.kl(x, B(np.array([[np.inf, 1, 2], [0, 0, 1]])))
    with pytest.raises(ValueError, match="p_logits: row 0"):
        cat.kl(B(np.array([[np.inf, 1, 2], [0, 0, 1]])), x)
    with pytest.raises(ValueError, match=r"actions: row 1 selects action 3, outside \[0, 3\)"):
        cat.log_prob(x, B(np.array([0, 3])))
    with pytest.raises(ValueError, match="actions: row 0 selects action -1"):
        cat.log_prob(x, B(np.array([-1, 0])))
    with pytest.raises(TypeError, match="actions"):
        cat.log_prob(x, B(np.array([0.0, 1.0])))
    with pytest.raises(ValueError, match="actions: expected shape"):
        cat.log_prob(x, B(np.array([0, 1, 2])))
    with pytest.raises(ValueError, match="K = 0"):
        cat.entropy(B(np.zeros((2, 0))))
    with pytest.raises(ValueError, match="scalar"):
        cat.entropy(B(np.float64(1.0)))
    with pytest.raises(TypeError, match="logits"):
        cat.entropy(B(np.zeros((2, 3), np.int32)))
    with pytest.raises(ValueError, match="mask: expected shape"):
        cat.entropy(x, mask=B(np.ones((3, 3), bool)))
    with pytest.raises(TypeError, match="mask"):
        cat.entropy(x, mask=B(np.ones((2, 3))))
    with pytest.raises(ValueError, match="p_logits: expected shape"):
        cat.kl(B(np.zeros((2, 4))), x)
    with pytest.raises(ValueError, match="weights: must be >= 0"):
        cat.policy_target_kl(B(np.array([[1.0, -1, 1], [1, 1, 1]])), x)
    with pytest.raises(ValueError, match="weights: row 1 sums to 0"):
        cat.policy_target_kl(B(np.array([[1.0, 0, 0], [0, 0, 0]])), x)
    with pytest.raises(ValueError, match="weights: contains NaN"):
        cat.policy_target_kl(B(np.array([[1.0, np.nan, 0], [0, 0, 1]])), x)
    with pytest.raises(ValueError, match="grad_entropy: expected shape"):
        cat.entropy_backward(x, grad_entropy=B(np.ones(3)))


@pytest.mark.parametrize("B, K", [(4096, 24), (2, 4000), (2, 8500)])  # above, below, just above the threshold
def test_thread_count_and_layout_do_not_change_results(backend, rng, B, K):
    import pygenmod

    x = rng.standard_normal((B, K))  # B * K against the parallel threshold (categorical.hpp's CAT_PAR_MIN)
    y = rng.standard_normal((B, K))
    m = random_mask(rng, x.shape)
    acts = rng.integers(0, K, B)
    runs, n0 = [], pygenmod.get_num_threads()
    try:
        for n in (1, 2):
            pygenmod.set_num_threads(n)
            bx, by, g = backend.asarray(x), backend.asarray(y), backend.asarray(np.ones(B))
            runs.append(
                [
                    backend.numpy(cat.kl(bx, by, mask=backend.asarray(m))),
                    backend.numpy(cat.kl_backward(bx, by, grad_kl=g, mask=backend.asarray(m))[1]),
                    backend.numpy(cat.entropy(bx)),
                    backend.numpy(cat.log_prob_backward(bx, backend.asarray(acts), grad_log_prob=g)),
                ]
            )
    finally:
        pygenmod.set_num_threads(n0)
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
    # non-contiguous input is copied, not misread
    wide = np.repeat(x, 2, axis=1)
    np.testing.assert_array_equal(
        backend.numpy(cat.entropy(backend.asarray(wide)[:, ::2])), backend.numpy(cat.entropy(backend.asarray(x)))
    )


def test_kl_backward_of_an_infinite_kl_is_nan(backend):
    # float32 logits near the range's ends: in float32 arithmetic (the compiled kernels)
    # q_j - max q overflows to -inf and the KL is +inf, and that row's gradients are NaN (the
    # CPU's vector rows leave it to the serial row); numba sums in float64 and gets a finite KL
    # with finite gradients
    p = np.zeros((2, 20), np.float32)
    q = np.zeros((2, 20), np.float32)
    q[1, 3], q[1, 7] = 3e38, -3e38
    k = backend.numpy(cat.kl(backend.asarray(p), backend.asarray(q)))
    g = backend.asarray(np.ones(2, np.float32))
    dp, dq = (backend.numpy(a) for a in cat.kl_backward(backend.asarray(p), backend.asarray(q), grad_kl=g))
    assert np.isfinite(k[0]) and np.isfinite(dp[0]).all() and np.isfinite(dq[0]).all()
    if backend.name != "numba":
        assert k[1] == np.inf
    if k[1] == np.inf:
        assert np.isnan(dp[1]).all() and np.isnan(dq[1]).all()
    else:
        assert np.isfinite(dq[1]).all()


# ------------------------------------------------------------------------------ instruction sets
_ISA_SCRIPT = """
import numpy as np
from pygenmod import categorical as cat
out = {}
rng = np.random.default_rng(7)
for K in (1, 7, 16, 33, 1000):
    for dtype in (np.float64, np.float32):
        x = (rng.standard_normal((3, K)) * 4).astype(dtype)
        q = (rng.standard_normal((3, K)) * 4).astype(dtype)
        if K > 1:
            x[1, 0] = x[1, 1] + 599.0  # float64: a span just under the vector rows' bound
            x[2, 0] = x[2, 1] + 601.0  # and just over it (the serial row's)
        a = rng.integers(0, K, 3)
        g = rng.standard_normal(3).astype(dtype)
        key = f"{np.dtype(dtype).name}-{K}"
        out[key + "-log_prob"] = cat.log_prob(x, a)
        out[key + "-entropy"] = cat.entropy(x)
        out[key + "-kl"] = cat.kl(x, q)
        out[key + "-d_log_prob"] = cat.log_prob_backward(x, a, grad_log_prob=g)
        out[key + "-d_entropy"] = cat.entropy_backward(x, grad_entropy=g)
        out[key + "-dp_kl"], out[key + "-dq_kl"] = cat.kl_backward(x, q, grad_kl=g)
        out[key + "-x"], out[key + "-q"], out[key + "-a"], out[key + "-g"] = x, q, a, g
        # masked rows (the mask's allowed entries only; NaN and inf where it masks)
        m = rng.random((3, K)) < 0.6
        m[np.arange(3), a] = True
        xm, qm = np.where(m, x, np.nan).astype(dtype), np.where(m, q, -np.inf).astype(dtype)
        out[key + "-m-log_prob"] = cat.log_prob(xm, a, mask=m)
        out[key + "-m-entropy"] = cat.entropy(xm, mask=m)
        out[key + "-m-kl"] = cat.kl(xm, qm, mask=m)
        out[key + "-m-d_log_prob"] = cat.log_prob_backward(xm, a, grad_log_prob=g, mask=m)
        out[key + "-m-d_entropy"] = cat.entropy_backward(xm, grad_entropy=g, mask=m)
        out[key + "-m-dp_kl"], out[key + "-m-dq_kl"] = cat.kl_backward(xm, qm, grad_kl=g, mask=m)
        out[key + "-m-mask"] = m
        # policy_target_kl_backward: visit-count targets (its own vector rows), masked or not
        w = rng.integers(0, 4, (3, K)).astype(dtype)
        w[:, 0] += 1
        wm = np.where(m, w, 0).astype(dtype)
        wm[np.arange(3), a] += 1
        out[key + "-w"], out[key + "-m-w"] = w, wm
        out[key + "-d_target"] = cat.policy_target_kl_backward(w, x, grad_kl=g)
        out[key + "-m-d_target"] = cat.policy_target_kl_backward(wm, xm, grad_kl=g, mask=m)
np.savez(OUT, **out)
"""


def test_vector_rows_agree_on_every_isa(tmp_path):
    # Unmasked rows of log_prob, entropy and KL and their backward passes run in vector passes
    # with an AVX-512, AVX2 or baseline entry point picked at run time (categorical_rows.hpp):
    # run each (capped through $PYGENMOD_CPU_ISA, in a fresh process) against the float64
    # reference.
    import os

    from conftest import run_python

    import pygenmod

    if not pygenmod.backends()["cpu"]["available"]:
        pytest.skip("compiled CPU backend unavailable")
    for isa in ("baseline", "avx2", "avx512"):
        out = tmp_path / f"{isa}.npz"
        env = dict(os.environ, PYGENMOD_CPU_ISA=isa, PYGENMOD_BACKEND="cpu")
        run_python(["-c", f"OUT = {str(out)!r}\n" + _ISA_SCRIPT], env=env, check=True)
        got = dict(np.load(out))
        for key in [k[: -len("-x")] for k in got if k.endswith("-x")]:
            x, q, a = got[key + "-x"], got[key + "-q"], got[key + "-a"]
            t = tol(x.dtype)
            x64, q64 = x.astype(np.float64), q.astype(np.float64)
            lp = oracle.log_softmax_masked(x64)
            np.testing.assert_allclose(got[key + "-log_prob"], lp[np.arange(3), a], err_msg=f"{isa} {key}", **t)
            np.testing.assert_allclose(
                got[key + "-entropy"], oracle.categorical_entropy(x64), err_msg=f"{isa} {key}", **t
            )
            np.testing.assert_allclose(
                got[key + "-kl"], oracle.categorical_kl(lp, oracle.log_softmax_masked(q64)), err_msg=f"{isa} {key}", **t
            )
            g64, w = got[key + "-g"].astype(np.float64), got[key + "-w"].astype(np.float64)
            np.testing.assert_allclose(
                got[key + "-d_target"],
                g64[:, None] * (np.exp(lp) - w / w.sum(-1, keepdims=True)),
                err_msg=f"{isa} {key}",
                **t,
            )
            _check_masked_rows(got, key, x64, q64, a, g64, t, f"{isa} {key}")


def _check_masked_rows(got, key, x, q, a, g, t, msg):
    """The masked rows of _ISA_SCRIPT against the float64 reference: values and gradients, 0 at
    the masked entries."""
    m = got[key + "-m-mask"]
    lp, lq = oracle.log_softmax_masked(x, m), oracle.log_softmax_masked(q, m)
    p, pq = np.exp(lp), np.exp(lq)
    lp0, lq0 = np.where(m, lp, 0), np.where(m, lq, 0)
    h = oracle.categorical_entropy(x, m)
    kl = oracle.categorical_kl(lp, lq)
    onehot = np.eye(x.shape[1])[a]
    wm = got[key + "-m-w"].astype(np.float64)
    want = {
        "log_prob": lp[np.arange(3), a],
        "entropy": h,
        "kl": kl,
        "d_log_prob": g[:, None] * (onehot - p),
        "d_entropy": -g[:, None] * p * (lp0 + h[:, None]),
        "dp_kl": g[:, None] * p * (lp0 - lq0 - kl[:, None]),
        "dq_kl": g[:, None] * (pq - p),
        "d_target": g[:, None] * (p - wm / wm.sum(-1, keepdims=True)),
    }
    for name, w in want.items():
        np.testing.assert_allclose(got[key + "-m-" + name], w, err_msg=f"{msg} masked {name}", **t)
        if w.ndim == 2:
            assert (got[key + "-m-" + name][~m] == 0).all(), f"{msg} masked {name}: nonzero at masked entries"
