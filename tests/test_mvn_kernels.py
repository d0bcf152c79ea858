"""The full-covariance row kernels (mahalanobis, mvn_log_prob, kl_mvn and their VJPs) and the
Gumbel-softmax row kernels, on every backend, against independent float64 references: SciPy
(solve_triangular, multivariate_normal.logpdf), NumPy, torch.distributions and torch autograd.
Sizes D = 1, 2, 7, 33; float32 and float64; per-row and shared factors; with and without a
sample axis. Also: the named codes crossing the binding, fixed-order (thread-count independent)
shared-factor gradients, and the errors for bad input."""

import numpy as np
import pytest
from scipy.linalg import solve_triangular
from scipy.stats import multivariate_normal

import pygenmod
from pygenmod import random as R
from pygenmod import sampling as S

torch = pytest.importorskip("torch")
td = torch.distributions

SIZES = [1, 2, 7, 33]


def _tol(dtype, D=1):
    # float32: the triangular solves lose ~D ulps on these well-conditioned factors
    return dict(rtol=1e-9, atol=1e-10) if dtype == np.float64 else dict(rtol=2e-4 * (1 + D / 8), atol=2e-4)


def _tril(rng, n, D, dtype):
    L = np.tril(rng.standard_normal((n, D, D))) * (0.5 / np.sqrt(D))
    i = np.arange(D)
    L[:, i, i] = rng.uniform(0.8, 1.6, (n, D))
    return L.astype(dtype)


def _t(a):
    return torch.tensor(np.asarray(a, np.float64), requires_grad=True)


def _np(backend, a):
    return None if a is None else backend.numpy(a).astype(np.float64)


def _case(rng, B, D, dtype, shared, S_):
    mu = rng.standard_normal((B, D)).astype(dtype)
    x = rng.standard_normal(((S_,) if S_ else ()) + (B, D)).astype(dtype)
    L = _tril(rng, 1 if shared else B, D, dtype)
    return x, mu, (L[0] if shared else L)


def _per_row(F, B):
    """The factor of each row, float64 (B, D, D)."""
    F = np.asarray(F, np.float64)
    return np.broadcast_to(F if F.ndim == 3 else F[None], (B,) + F.shape[-2:])


# ------------------------------------------------------------------ contracts
def test_codes_match_binding_and_numba():
    from pygenmod._numba import sampling_mvn as nbm

    assert {"nonfinite": nbm.TRIL_NONFINITE, "upper": nbm.TRIL_UPPER, "diag": nbm.TRIL_DIAG} == S._TRIL_FLAGS
    modes = {"scale_tril": nbm.MVN_SCALE, "precision_tril": nbm.MVN_PRECISION, "log_prob": nbm.MVN_LOG_PROB}
    assert modes == S._MVN_MODES
    assert {"x": nbm.BAD_X, "mu": nbm.BAD_MU} == S._ROW_STATUS
    assert {"bad_logit": nbm.GUMBEL_BAD_LOGIT, "all_masked": nbm.GUMBEL_ALL_MASKED} == S._GUMBEL_STATUS
    assert nbm.GUMBEL == R.GUMBEL
    try:
        from pygenmod import _cpu_sampling as m
    except ImportError as exc:
        pytest.skip(f"compiled module _cpu_sampling not built: {exc}")
    assert m.TRIL_FLAGS == S._TRIL_FLAGS
    assert m.MVN_MODES == S._MVN_MODES
    assert m.ROW_STATUS == S._ROW_STATUS
    assert m.GUMBEL_STATUS == S._GUMBEL_STATUS


# ------------------------------------------------------------------ forward vs SciPy
@pytest.mark.parametrize("D", SIZES)
@pytest.mark.parametrize("shared", [False, True], ids=["per_row", "shared"])
def test_mahalanobis_and_log_prob_vs_scipy(backend, dtype, rng, D, shared):
    B = 5
    for S_ in (None, 3):
        x, mu, L = _case(rng, B, D, dtype, shared, S_)
        Lr = _per_row(L, B)
        x64 = np.asarray(x, np.float64).reshape(-1, B, D)
        d = x64 - np.asarray(mu, np.float64)
        y = np.stack([[solve_triangular(Lr[b], d[s, b], lower=True) for b in range(B)] for s in range(len(d))])
        want = (y * y).sum(-1).reshape(x.shape[:-1])
        a = [backend.asarray(v) for v in (x, mu, L)]
        got = backend.numpy(S.mahalanobis(*a))
        assert got.dtype == dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, **_tol(dtype, D))
        np.testing.assert_allclose(backend.numpy(S.mahalanobis(*a, squared=False)), np.sqrt(want), **_tol(dtype, D))
        # a precision factor U with U U^T = Sigma^-1 gives the same distance
        U = np.linalg.cholesky(np.linalg.inv(Lr @ np.swapaxes(Lr, -1, -2)))
        Ua = (U[0] if shared else U).astype(dtype)
        got_p = backend.numpy(S.mahalanobis(a[0], a[1], precision_tril=backend.asarray(Ua)))
        np.testing.assert_allclose(got_p, want, **_tol(dtype, 4 * D))
        lp = np.stack(
            [
                [multivariate_normal.logpdf(x64[s, b], mu[b].astype(np.float64), Lr[b] @ Lr[b].T) for b in range(B)]
                for s in range(len(x64))
            ]
        ).reshape(x.shape[:-1])
        np.testing.assert_allclose(backend.numpy(S.mvn_log_prob(*a)), lp, **_tol(dtype, D))


def _kl_inputs(rng, B, D, dtype, shared):
    """mu, prior mu, and the posterior / prior factors: (D, D) where `shared` shares them, else (B, D, D)."""
    mu, m2 = (rng.standard_normal((B, D)).astype(dtype) for _ in range(2))
    L1 = _tril(rng, 1 if shared in ("posterior", "both") else B, D, dtype)
    L2 = _tril(rng, 1 if shared in ("prior", "both") else B, D, dtype)
    return mu, m2, (L1[0] if shared in ("posterior", "both") else L1), (L2[0] if shared in ("prior", "both") else L2)


@pytest.mark.parametrize("D", SIZES)
@pytest.mark.parametrize("shared", ["none", "posterior", "prior", "both"])
def test_kl_mvn_vs_torch(backend, dtype, rng, D, shared):
    B = 4
    mu, m2, L1a, L2a = _kl_inputs(rng, B, D, dtype, shared)
    p = td.MultivariateNormal(torch.tensor(mu, dtype=torch.float64), scale_tril=torch.tensor(_per_row(L1a, B)))
    for pm, pL in ((m2, L2a), (m2, None), (None, L2a)):
        q = td.MultivariateNormal(
            torch.zeros(B, D, dtype=torch.float64) if pm is None else torch.tensor(pm, dtype=torch.float64),
            scale_tril=torch.eye(D, dtype=torch.float64).expand(B, D, D)
            if pL is None
            else torch.tensor(_per_row(pL, B)),
        )
        want = td.kl_divergence(p, q).numpy()
        got = S.kl_mvn(
            backend.asarray(mu),
            backend.asarray(L1a),
            None if pm is None else backend.asarray(pm),
            None if pL is None else backend.asarray(pL),
        )
        np.testing.assert_allclose(backend.numpy(got), want, **_tol(dtype, D * D))


# ------------------------------------------------------------------ backward vs torch autograd
def _torch_maha(tx, tm, tF, kind, squared, B):
    Ft = torch.tril(tF).expand(*tx.shape[:-1], tx.shape[-1], tx.shape[-1])
    dd = tx - tm
    if kind == "log_prob":
        return td.MultivariateNormal(tm, scale_tril=torch.tril(tF).expand(B, *tF.shape[-2:])).log_prob(tx)
    if kind == "scale_tril":
        y = torch.linalg.solve_triangular(Ft, dd[..., None], upper=False)[..., 0]
    else:
        y = (Ft.transpose(-1, -2) @ dd[..., None])[..., 0]
    r = (y * y).sum(-1)
    return r if squared else r.sqrt()


@pytest.mark.parametrize("D", SIZES)
@pytest.mark.parametrize("shared", [False, True], ids=["per_row", "shared"])
@pytest.mark.parametrize("kind", ["scale_tril", "precision_tril", "log_prob"])
def test_mahalanobis_and_log_prob_backward_vs_autograd(backend, dtype, rng, D, shared, kind):
    B = 4
    for S_, squared in ((None, True), (3, True), (2, False)):
        if kind == "log_prob" and not squared:
            continue
        x, mu, F = _case(rng, B, D, dtype, shared, S_)
        tx, tm, tF = _t(x), _t(mu), _t(F)
        out = _torch_maha(tx, tm, tF, kind, squared, B)
        g = rng.standard_normal(out.shape)
        (out * torch.tensor(g)).sum().backward()
        a = [backend.asarray(v) for v in (x, mu)]
        ga = backend.asarray(g.astype(dtype))
        if kind == "log_prob":
            res = S.mvn_log_prob_backward(*a, backend.asarray(F), grad_log_prob=ga)
        else:
            res = S.mahalanobis_backward(*a, grad_mahalanobis=ga, squared=squared, **{kind: backend.asarray(F)})
        for got, want in zip(res, (tx, tm, tF)):
            got = backend.numpy(got)
            assert got.dtype == dtype and got.shape == tuple(want.shape)
            np.testing.assert_allclose(got, want.grad.numpy(), **_tol(dtype, 4 * D))


@pytest.mark.parametrize("D", SIZES)
@pytest.mark.parametrize("shared", ["none", "posterior", "prior", "both"])
def test_kl_mvn_backward_vs_autograd(backend, dtype, rng, D, shared):
    B = 4
    mu, m2, L1a, L2a = _kl_inputs(rng, B, D, dtype, shared)
    for with_m2, with_L2 in ((True, True), (True, False), (False, True), (False, False)):
        t = [_t(mu), _t(L1a), _t(m2) if with_m2 else None, _t(L2a) if with_L2 else None]
        p = td.MultivariateNormal(t[0], scale_tril=torch.tril(t[1]).expand(B, D, D))
        q = td.MultivariateNormal(
            t[2] if with_m2 else torch.zeros(B, D, dtype=torch.float64),
            scale_tril=torch.tril(t[3]).expand(B, D, D) if with_L2 else torch.eye(D, dtype=torch.float64),
        )
        kl = td.kl_divergence(p, q)
        g = rng.standard_normal(B)
        (kl * torch.tensor(g)).sum().backward()
        res = S.kl_mvn_backward(
            backend.asarray(mu),
            backend.asarray(L1a),
            backend.asarray(m2) if with_m2 else None,
            backend.asarray(L2a) if with_L2 else None,
            grad_kl=backend.asarray(g.astype(dtype)),
        )
        for got, want in zip(res, t):
            if want is None:
                assert got is None
                continue
            got = backend.numpy(got)
            assert got.dtype == dtype and got.shape == tuple(want.shape)
            np.testing.assert_allclose(got, want.grad.numpy(), **_tol(dtype, D * D))


def test_backward_vs_finite_differences(backend, rng):
    """One float64 case per VJP against central differences of the forward (torch-independent)."""
    B, D, h = 3, 4, 1e-6
    x, mu, L = _case(rng, B, D, np.float64, True, 2)
    m2 = rng.standard_normal((B, D))
    L2 = _tril(rng, B, D, np.float64)
    a = backend.asarray
    checks = [
        (
            lambda x, mu, L: S.mahalanobis(a(x), a(mu), a(L)),
            "grad_mahalanobis",
            S.mahalanobis_backward,
            (x, mu, L),
            {2},
        ),
        (lambda x, mu, L: S.mvn_log_prob(a(x), a(mu), a(L)), "grad_log_prob", S.mvn_log_prob_backward, (x, mu, L), {2}),
        (
            lambda mu, L, m2, L2: S.kl_mvn(a(mu), a(L), a(m2), a(L2)),
            "grad_kl",
            S.kl_mvn_backward,
            (mu, L, m2, L2),
            {1, 3},
        ),
    ]
    for fwd, gname, bwd, args, factors in checks:
        out = backend.numpy(fwd(*args))
        g = rng.standard_normal(out.shape)
        grads = bwd(*(a(v) for v in args), **{gname: a(g)})
        for k, (arg, grad) in enumerate(zip(args, grads)):
            fd = np.zeros_like(arg)
            for idx in np.ndindex(arg.shape):
                if k in factors and idx[-1] > idx[-2]:
                    continue  # (entries above a factor's diagonal are not parameters)
                hi, lo = [v.copy() for v in args], [v.copy() for v in args]
                hi[k][idx] += h
                lo[k][idx] -= h
                fd[idx] = ((backend.numpy(fwd(*hi)) - backend.numpy(fwd(*lo))) * g).sum() / (2 * h)
            np.testing.assert_allclose(backend.numpy(grad), fd, rtol=1e-5, atol=1e-6)


def test_shared_factor_gradient_is_fixed_order(backend, rng):
    """A shared factor's gradient is a sum over rows in a fixed order: bitwise the same for any
    thread count and on every call."""
    B, D = 700, 16  # enough work for the parallel path
    x, mu, L = _case(rng, B, D, np.float32, True, 2)
    m2, L2 = rng.standard_normal((B, D)).astype(np.float32), _tril(rng, 1, D, np.float32)[0]
    g = rng.standard_normal((2, B)).astype(np.float32)
    a = backend.asarray

    def run():
        r1 = S.mahalanobis_backward(a(x), a(mu), a(L), grad_mahalanobis=a(g))[2]
        r2 = S.kl_mvn_backward(a(mu), a(L), a(m2), a(L2), grad_kl=a(g[0]))
        return [backend.numpy(v) for v in (r1, r2[1], r2[3])]

    before = pygenmod.get_num_threads()
    try:
        pygenmod.set_num_threads(1)
        one = run()
        pygenmod.set_num_threads(3)
        many, again = run(), run()
    finally:
        pygenmod.set_num_threads(before)
    for u, v, w in zip(one, many, again):
        np.testing.assert_array_equal(u, v)
        np.testing.assert_array_equal(v, w)


def test_half_precision_in_float32(rng):
    x, mu, L = _case(rng, 3, 5, np.float16, False, None)
    d = S.mahalanobis(x, mu, L)
    assert d.dtype == np.float32
    np.testing.assert_allclose(d, S.mahalanobis(*(v.astype(np.float32) for v in (x, mu, L))), rtol=1e-6)
    dx, dmu, dL = S.mahalanobis_backward(x, mu, L, grad_mahalanobis=np.ones(3, np.float32))
    assert dx.dtype == dmu.dtype == dL.dtype == np.float16


# ------------------------------------------------------------------ Gumbel-softmax
@pytest.mark.parametrize("shape", [(1, 1), (5, 2), (3, 7), (2, 3, 33)])
def test_gumbel_softmax_vs_numpy(backend, dtype, rng, shape):
    logits = rng.standard_normal(shape).astype(dtype)
    if shape[-1] > 2:
        logits[..., 1] = -np.inf  # a masked category: exactly 0 in y_soft, never the sample
    temp, seed, stream, offset = 0.7, 11, 5, 9
    R_ = int(np.prod(shape[:-1]))
    rows = logits.reshape(R_, shape[-1])
    g = np.stack([R.gumbel(seed, shape[-1], stream=stream + r, offset=offset, dtype=dtype) for r in range(R_)])
    t = (rows.astype(np.float64) + g.astype(np.float64)) / temp
    e = np.exp(t - t.max(-1, keepdims=True))
    want = (e / e.sum(-1, keepdims=True)).reshape(shape)
    out = S.gumbel_softmax(backend.asarray(logits), temp, seed=seed, stream=stream, offset=offset, hard=True)
    y, ys, idx = (backend.numpy(v) for v in out)
    assert ys.dtype == dtype and y.dtype == dtype and idx.dtype == np.int64 and idx.shape == shape[:-1]
    np.testing.assert_allclose(ys, want, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-7)
    np.testing.assert_array_equal(idx.reshape(-1), ((rows + g) / dtype.type(temp)).argmax(-1))
    np.testing.assert_array_equal(y, np.eye(shape[-1], dtype=dtype)[idx])
    if shape[-1] > 2:
        assert (ys[..., 1] == 0).all() and (idx != 1).all()
    soft = S.gumbel_softmax(backend.asarray(logits), temp, seed=seed, stream=stream, offset=offset)
    np.testing.assert_array_equal(backend.numpy(soft.y), ys)
    np.testing.assert_array_equal(backend.numpy(soft.y_soft), ys)
    # backward: the softmax VJP, from the saved y_soft or regenerated (bitwise the same)
    gr = rng.standard_normal(shape)
    tl = _t(np.where(np.isinf(logits), -1e30, logits))
    torch.softmax((tl + torch.tensor(g.reshape(shape), dtype=torch.float64)) / temp, -1).mul(
        torch.tensor(gr)
    ).sum().backward()
    ga = backend.asarray(gr.astype(dtype))
    saved = backend.numpy(S.gumbel_softmax_backward(None, temp, grad_y=ga, y_soft=backend.asarray(ys)))
    np.testing.assert_allclose(saved, tl.grad.numpy(), rtol=1e-4 if dtype == np.float32 else 1e-9, atol=1e-6)
    regen = S.gumbel_softmax_backward(backend.asarray(logits), temp, grad_y=ga, seed=seed, stream=stream, offset=offset)
    np.testing.assert_array_equal(backend.numpy(regen), saved)


def test_gumbel_softmax_row_streams(backend, rng):
    """Row r draws from stream `stream + r`: a row's sample does not depend on its batch."""
    logits = rng.standard_normal((6, 4))
    full = backend.numpy(S.gumbel_softmax(backend.asarray(logits), seed=3, stream=2).y_soft)
    for r in range(6):
        one = S.gumbel_softmax(backend.asarray(logits[r : r + 1]), seed=3, stream=2 + r).y_soft
        np.testing.assert_array_equal(backend.numpy(one)[0], full[r])


# ------------------------------------------------------------------ bad input
def test_bad_factor(backend, dtype, rng):
    B, D = 3, 4
    x, mu, L = _case(rng, B, D, dtype, False, None)
    a = backend.asarray
    for shared in (False, True):
        for idx, value, msg in (
            ((1, 2, 1), np.nan, "contains NaN or infinity"),
            ((1, 0, 3), np.inf, "contains NaN or infinity"),
            ((1, 0, 3), 0.5, r"not lower triangular \(entries above the diagonal are non-zero\)"),
            ((1, 1, 1), 0.0, "the diagonal must be positive"),
            ((1, 3, 3), -1.0, "the diagonal must be positive"),
        ):
            Lb = L.copy()
            Lb[idx] = value
            F = Lb[1] if shared else Lb
            one = a(np.ones(B, dtype))
            for fn, args, kw in (
                (S.mahalanobis, (a(x), a(mu), a(F)), {}),
                (S.mahalanobis_backward, (a(x), a(mu), a(F)), {"grad_mahalanobis": one}),
                (S.mvn_log_prob, (a(x), a(mu), a(F)), {}),
                (S.mvn_log_prob_backward, (a(x), a(mu), a(F)), {"grad_log_prob": one}),
                (S.kl_mvn, (a(mu), a(F), a(mu), a(L)), {}),
            ):
                with pytest.raises(ValueError, match="scale_tril: " + msg):
                    fn(*args, **kw)
            with pytest.raises(ValueError, match="precision_tril: " + msg):
                S.mahalanobis(a(x), a(mu), precision_tril=a(F))
            with pytest.raises(ValueError, match="prior_scale_tril: " + msg):
                S.kl_mvn_backward(a(mu), a(L), a(mu), a(F), grad_kl=a(np.ones(B, dtype)))


def test_bad_data(backend, dtype, rng):
    B, D = 3, 4
    x, mu, L = _case(rng, B, D, dtype, False, 2)
    a = backend.asarray
    g = a(np.ones((2, B), dtype))
    for name in ("x", "mu"):
        for value in (np.nan, np.inf):
            xb, mb = x.copy(), mu.copy()
            (xb if name == "x" else mb)[(1, 2, 0) if name == "x" else (2, 0)] = value
            for fn, args, kw in (
                (S.mahalanobis, (a(xb), a(mb), a(L)), {}),
                (S.mahalanobis, (a(xb), a(mb)), {"precision_tril": a(L), "squared": False}),
                (S.mahalanobis_backward, (a(xb), a(mb), a(L)), {"grad_mahalanobis": g}),
                (S.mvn_log_prob, (a(xb), a(mb), a(L)), {}),
                (S.mvn_log_prob_backward, (a(xb), a(mb), a(L)), {"grad_log_prob": g}),
            ):
                with pytest.raises(ValueError, match=f"^{name}: contains NaN or infinity"):
                    fn(*args, **kw)
    mb = mu.copy()
    mb[1, 1] = np.nan
    with pytest.raises(ValueError, match="mu or prior_mu: contains NaN"):
        S.kl_mvn(a(mu), a(L), a(mb))
    with pytest.raises(ValueError, match="mu or prior_mu: contains NaN"):
        S.kl_mvn(a(mb), a(L), None, a(L))
    with pytest.raises(ValueError, match="logits: contains NaN"):
        S.gumbel_softmax(a(np.array([[0.0, np.nan]], dtype)), seed=0)
    with pytest.raises(ValueError, match="logits: contains NaN"):
        S.gumbel_softmax_backward(a(np.array([[0.0, np.inf]], dtype)), grad_y=a(np.ones((1, 2), dtype)), seed=0)


def test_bad_shapes(backend, rng):
    B, D = 3, 4
    x, mu, L = _case(rng, B, D, np.float64, False, None)
    a = backend.asarray
    with pytest.raises(ValueError, match="scale_tril: expected shape"):
        S.mahalanobis(a(x), a(mu), a(L[:, :3, :3]))
    with pytest.raises(ValueError, match="scale_tril: expected shape"):
        S.mvn_log_prob(a(x), a(mu), a(L[:2]))
    with pytest.raises(ValueError, match="prior_scale_tril: expected shape"):
        S.kl_mvn(a(mu), a(L), None, a(L[:2]))
    with pytest.raises(ValueError, match="x: expected"):
        S.mahalanobis(a(x[:, :3]), a(mu), a(L))
    with pytest.raises(ValueError, match="x: expected"):
        S.mahalanobis(a(x[:2]), a(mu), a(L))
    with pytest.raises(ValueError, match="grad_mahalanobis: expected shape"):
        S.mahalanobis_backward(a(x), a(mu), a(L), grad_mahalanobis=a(np.ones(B + 1)))
    with pytest.raises(ValueError, match="grad_log_prob: expected shape"):
        S.mvn_log_prob_backward(a(x), a(mu), a(L), grad_log_prob=a(np.ones(B + 1)))
    with pytest.raises(ValueError, match="grad_kl"):
        S.kl_mvn_backward(a(mu), a(L), a(mu), a(L), grad_kl=a(np.ones(B + 1)))
    with pytest.raises(ValueError, match="prior_mu"):
        S.kl_mvn(a(mu), a(L), a(np.ones((B, D + 1))))
    with pytest.raises(TypeError, match="exactly one of scale_tril or precision_tril"):
        S.mahalanobis(a(x), a(mu), a(L), precision_tril=a(L))
    with pytest.raises(ValueError, match="grad_y"):
        S.gumbel_softmax_backward(a(x), grad_y=a(np.ones((B, D + 1))), seed=0)
