"""The fused ELBO (pygenmod.elbo) against a float64 NumPy/SciPy reference and against
torch.distributions + autograd, on every backend, both dtypes and odd shapes; bad input."""

import numpy as np
import pytest
import reference as oracle
from conftest import tol
from scipy import stats

from pygenmod import elbo as E

torch = pytest.importorskip("torch")
td = torch.distributions


# ------------------------------------------------------------------ float64 NumPy/SciPy reference
def ref_terms(
    x, dec, mu, kind, scale, *, lik="gaussian", dec_kind=None, dec_scale=None, prior_mu=None, prior_scale=None, beta=1.0
):
    """(elbo, log_lik, kl) per row in float64; dec with a leading sample axis."""
    mu = np.asarray(mu, np.float64)
    B, D = mu.shape
    if kind == "scale_tril":
        L = np.broadcast_to(np.asarray(scale, np.float64), (B, D, D))
        m2 = np.zeros((B, D)) if prior_mu is None else np.broadcast_to(np.asarray(prior_mu, np.float64), (B, D))
        L2 = np.broadcast_to(np.eye(D) if prior_scale is None else np.asarray(prior_scale, np.float64), (B, D, D))
        kl = np.empty(B)
        for b in range(B):  # KL between full Gaussians from the covariances
            kl[b] = oracle.kl_gauss(mu[b], L[b] @ L[b].T, m2[b], L2[b] @ L2[b].T)
    else:
        s1 = oracle.sigma(scale, kind)
        m2 = 0.0 if prior_mu is None else np.asarray(prior_mu, np.float64)
        s2 = 1.0 if prior_scale is None else oracle.sigma(prior_scale, kind)
        kl = oracle.kl_normal_diag(mu, s1, m2, s2)
    dec = np.asarray(dec, np.float64)
    S = dec.shape[0]
    if lik == "gaussian":
        sd = np.ones(()) if dec_scale is None else oracle.sigma(dec_scale, dec_kind)
        lp = stats.norm.logpdf(np.asarray(x, np.float64), dec, sd)
    elif lik == "bernoulli":
        xf = np.asarray(x, np.float64)
        lp = xf * dec - np.logaddexp(0, dec)
    else:
        ls = oracle.log_softmax_masked(dec)
        lp = np.take_along_axis(ls, np.broadcast_to(np.asarray(x)[None, ..., None], dec.shape[:-1] + (1,)), -1)[..., 0]
    ll = lp.reshape(S, B, int(np.prod(dec.shape[2 : len(dec.shape) - (lik == "categorical")]))).sum(-1).mean(0)
    return ll - beta * kl, ll, kl


def _inputs(rng, B, D, F, S, kind, lik, dtype, K=3, learned=True):
    mu = rng.standard_normal((B, D))
    if kind == "scale_tril":
        scale = np.tril(rng.standard_normal((B, D, D)) * 0.3, -1) + np.diag(rng.uniform(0.5, 1.5, D))
    else:
        scale = rng.uniform(-1, 1, (B, D))
        if kind == "std":
            scale = np.exp(scale)
    feat = (B,) + F
    if lik == "gaussian":
        x = rng.standard_normal(feat)
        dec = rng.standard_normal((S,) + feat)
    elif lik == "bernoulli":
        x = rng.uniform(size=feat).round()
        dec = 2 * rng.standard_normal((S,) + feat)
    else:
        x = rng.integers(0, K, feat)
        dec = rng.standard_normal((S,) + feat + (K,))
    dscale = rng.uniform(-1, 1, dec.shape) if (lik == "gaussian" and learned) else None
    cast = lambda a: None if a is None else (a if a.dtype.kind in "iu" else a.astype(dtype))  # noqa: E731
    return cast(x), cast(dec), cast(mu), cast(scale), cast(dscale)


SHAPES = [(1, 1, (1,), 1), (3, 5, (7,), 2), (4, 2, (3, 5), 3), (0, 3, (4,), 2), (2, 13, (17,), 1)]


@pytest.mark.parametrize("lik", ["gaussian", "bernoulli", "categorical"])
@pytest.mark.parametrize("kind", ["logvar", "log_std", "std", "scale_tril"])
@pytest.mark.parametrize("B,D,F,S", SHAPES)
def test_elbo_terms_match_numpy_reference(backend, dtype, rng, lik, kind, B, D, F, S):
    x, dec, mu, scale, dscale = _inputs(rng, B, D, F, S, kind, lik, dtype)
    kw = {kind: backend.asarray(scale)}
    if dscale is not None:
        kw["dec_logvar"] = backend.asarray(dscale)
    t = E.elbo_terms(backend.asarray(x), backend.asarray(dec), backend.asarray(mu), likelihood=lik, beta=0.7, **kw)
    want = ref_terms(x, dec, mu, kind, scale, lik=lik, dec_kind="logvar", dec_scale=dscale, beta=0.7)
    for got, w in zip(t, want):
        got = backend.numpy(got)
        assert got.dtype == dtype and got.shape == (B,)
        np.testing.assert_allclose(got, w, **_tol(dtype, D * F[0] * S))
    np.testing.assert_allclose(
        backend.numpy(
            E.elbo(backend.asarray(x), backend.asarray(dec), backend.asarray(mu), likelihood=lik, beta=0.7, **kw)
        ),
        want[0],
        **_tol(dtype, D * F[0] * S),
    )


def _tol(dtype, n):
    t = tol(dtype)
    return dict(rtol=t["rtol"] * 5, atol=t["atol"] * max(n, 1) * 5)


@pytest.mark.parametrize("kind", ["logvar", "log_std", "std"])
def test_diag_prior_and_fixed_decoder_variance(backend, dtype, rng, kind):
    B, D, F, S = 5, 4, (6,), 3
    x, dec, mu, scale, _ = _inputs(rng, B, D, F, S, kind, "gaussian", dtype)
    pm = rng.standard_normal(D).astype(dtype)
    pp = (rng.uniform(0.5, 2, (B, D)) if kind == "std" else rng.uniform(-1, 1, (B, D))).astype(dtype)
    A = backend.asarray
    for dsc, dkind in ((0.3, "log_std"), (rng.uniform(0.5, 2, F).astype(dtype), "std")):
        t = E.elbo_terms(
            A(x),
            A(dec),
            A(mu),
            **{kind: A(scale), "prior_" + kind: A(pp), "dec_" + dkind: dsc},
            prior_mu=A(pm),
            beta=2.0,
        )
        want = ref_terms(x, dec, mu, kind, scale, dec_kind=dkind, dec_scale=dsc, prior_mu=pm, prior_scale=pp, beta=2.0)
        for got, w in zip(t, want):
            np.testing.assert_allclose(backend.numpy(got), w, **_tol(dtype, 30))


def test_single_row_without_batch_axis(backend, rng):
    x, dec, mu, scale, dscale = _inputs(rng, 1, 3, (4,), 2, "logvar", "gaussian", np.float64)
    A = backend.asarray
    t1 = E.elbo_terms(A(x[0]), A(dec[:, 0]), A(mu[0]), A(scale[0]), dec_logvar=A(dscale[:, 0]))
    tb = E.elbo_terms(A(x), A(dec), A(mu), A(scale), dec_logvar=A(dscale))
    for a, b in zip(t1, tb):
        assert backend.numpy(a).shape == ()
        np.testing.assert_allclose(backend.numpy(a), backend.numpy(b)[0], rtol=1e-12)
    # one sample of z: dec without the sample axis
    t = E.elbo_terms(A(x), A(dec[0]), A(mu), A(scale), dec_logvar=A(dscale[0]))
    np.testing.assert_allclose(
        backend.numpy(t.elbo),
        ref_terms(x, dec[:1], mu, "logvar", scale, dec_kind="logvar", dec_scale=dscale[:1])[0],
        rtol=1e-10,
    )


# ------------------------------------------------------------------ torch.distributions + autograd
def _torch_elbo(x, dec, mu, kind, scale, lik, dscale, prior_mu=None, prior_scale=None, beta=1.0):
    """ELBO terms written with torch.distributions (float64)."""
    B, D = mu.shape
    if kind == "scale_tril":
        q = td.MultivariateNormal(mu, scale_tril=scale)
        p = td.MultivariateNormal(
            torch.zeros(D, dtype=mu.dtype) if prior_mu is None else prior_mu,
            scale_tril=torch.eye(D, dtype=mu.dtype) if prior_scale is None else prior_scale,
        )
        kl = td.kl_divergence(q, p)
    else:
        sig = {"logvar": lambda p: torch.exp(0.5 * p), "log_std": torch.exp, "std": lambda p: p}[kind]
        p = td.Normal(0.0 if prior_mu is None else prior_mu, 1.0 if prior_scale is None else sig(prior_scale))
        kl = td.kl_divergence(td.Normal(mu, sig(scale)), p).sum(-1)
    S = dec.shape[0]
    if lik == "gaussian":
        lp = td.Normal(dec, torch.exp(0.5 * dscale)).log_prob(x)
    elif lik == "bernoulli":
        lp = td.Bernoulli(logits=dec).log_prob(x)
    else:
        lp = td.Categorical(logits=dec).log_prob(x)
    ll = lp.reshape(S, B, int(np.prod(dec.shape[2 : len(dec.shape) - (lik == "categorical")]))).sum(-1).mean(0)
    return ll - beta * kl, ll, kl


@pytest.mark.parametrize("lik", ["gaussian", "bernoulli", "categorical"])
@pytest.mark.parametrize("kind", ["logvar", "log_std", "std", "scale_tril"])
@pytest.mark.parametrize("prior", [False, True])
def test_forward_and_gradients_match_torch_distributions(backend, dtype, rng, lik, kind, prior):
    B, D, F, S = 4, 3, (2, 3), 2
    x, dec, mu, scale, dscale = _inputs(rng, B, D, F, S, kind, lik, dtype)
    pm = ps = None
    if prior:
        pm = rng.standard_normal((B, D)).astype(dtype)
        ps = (
            (np.tril(rng.standard_normal((D, D)) * 0.3, -1) + np.diag(rng.uniform(0.5, 1.5, D)))
            if kind == "scale_tril"
            else rng.uniform(0.5, 1.5, (B, D))
        ).astype(dtype)
    ge, gl, gk = (rng.standard_normal(B) for _ in range(3))
    T = lambda a: (
        None
        if a is None
        else torch.tensor(
            a if a.dtype.kind in "iu" else a.astype(np.float64),  # noqa
            requires_grad=a.dtype.kind == "f",
        )
    )
    tx, tdec, tmu, tsc, tds, tpm, tps = (T(a) for a in (x, dec, mu, scale, dscale, pm, ps))
    ref = _torch_elbo(tx.detach() if lik != "categorical" else tx, tdec, tmu, kind, tsc, lik, tds, tpm, tps, 0.6)
    A = backend.asarray
    kw = {kind: A(scale), "likelihood": lik, "beta": 0.6}
    if dscale is not None:
        kw["dec_logvar"] = A(dscale)
    if prior:
        kw["prior_mu"] = A(pm)
        kw["prior_scale_tril" if kind == "scale_tril" else "prior_" + kind] = A(ps)
    t = E.elbo_terms(A(x), A(dec), A(mu), **kw)
    for got, w in zip(t, ref):
        np.testing.assert_allclose(backend.numpy(got), w.detach().numpy(), **_tol(dtype, 40))
    loss = (ref[0] * torch.tensor(ge)).sum() + (ref[1] * torch.tensor(gl)).sum() + (ref[2] * torch.tensor(gk)).sum()
    wrt = [tdec, tmu, tsc, tds, tpm, tps]
    grads = torch.autograd.grad(loss, [w for w in wrt if w is not None])
    it = iter(grads)
    want = [None if w is None else next(it) for w in wrt]
    g = E.elbo_backward(
        A(x),
        A(dec),
        A(mu),
        grad_elbo=A(ge.astype(dtype)),
        grad_log_lik=A(gl.astype(dtype)),
        grad_kl=A(gk.astype(dtype)),
        **kw,
    )
    assert isinstance(g, E.ElboGrads)
    for name, got, w in zip(g._fields, g, want):
        if w is None:
            assert got is None, name
            continue
        w = w.numpy()
        if kind == "scale_tril" and name in ("scale", "prior_scale"):
            w = np.tril(w)  # the factor's gradient is lower triangular (torch's is not projected)
        got = backend.numpy(got)
        assert got.shape == w.shape and got.dtype == dtype, name
        np.testing.assert_allclose(got, w, err_msg=name, **_tol(dtype, 40))


def test_shared_scale_tril_gradient_is_summed(rng):
    B, D = 3, 2
    x, dec, mu, _, dscale = _inputs(rng, B, D, (3,), 1, "logvar", "gaussian", np.float64)
    L = np.array([[1.2, 0.0], [0.3, 0.7]])
    g = E.elbo_backward(x, dec, mu, scale_tril=L, dec_logvar=dscale, grad_elbo=np.ones(B))
    gb = E.elbo_backward(
        x, dec, mu, scale_tril=np.broadcast_to(L, (B, D, D)).copy(), dec_logvar=dscale, grad_elbo=np.ones(B)
    )
    assert g.scale.shape == (D, D)
    np.testing.assert_allclose(g.scale, gb.scale.sum(0), rtol=1e-12)


def test_mean_over_samples_and_beta(rng):
    x, dec, mu, scale, dscale = _inputs(rng, 3, 2, (4,), 5, "logvar", "gaussian", np.float64)
    t = E.elbo_terms(x, dec, mu, scale, dec_logvar=dscale, beta=0.0)
    each = [E.elbo_terms(x, dec[s], mu, scale, dec_logvar=dscale[s]).log_lik for s in range(5)]
    np.testing.assert_allclose(t.log_lik, np.mean(each, 0), rtol=1e-12)
    np.testing.assert_allclose(t.elbo, t.log_lik, rtol=1e-12)
    t3 = E.elbo_terms(x, dec, mu, scale, dec_logvar=dscale, beta=3.0)
    np.testing.assert_allclose(t3.elbo, t.log_lik - 3 * t.kl, rtol=1e-12)


def test_bernoulli_accepts_probabilities_as_cross_entropy(rng):
    x = rng.uniform(size=(2, 5))
    dec = rng.standard_normal((2, 5))
    mu, lv = np.zeros((2, 1)), np.zeros((2, 1))
    t = E.elbo_terms(x, dec, mu, lv, likelihood="bernoulli")
    bce = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor(dec), torch.tensor(x), reduction="none"
    ).sum(-1)
    np.testing.assert_allclose(t.log_lik, -bce.numpy(), rtol=1e-12)


def test_torch_tensors_in_torch_tensors_out(rng):
    x, dec, mu, scale, dscale = _inputs(rng, 3, 2, (4,), 2, "logvar", "gaussian", np.float32)
    out = E.elbo(
        torch.tensor(x), torch.tensor(dec), torch.tensor(mu), torch.tensor(scale), dec_logvar=torch.tensor(dscale)
    )
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32


# ------------------------------------------------------------------ bad input
def _ok(rng):
    return _inputs(rng, 3, 2, (4,), 2, "logvar", "gaussian", np.float64)


@pytest.mark.parametrize(
    "case,err,match",
    [
        ("nan_mu", ValueError, "mu, logvar or the prior: row 1"),
        ("nan_dec", ValueError, "dec: row 2"),
        ("nan_x", ValueError, "x: contains NaN"),
        ("nan_dec_unit_variance", ValueError, "dec: row 2"),
        ("overflowing_difference_unit_variance", ValueError, "dec: row 0"),
        ("std_nonpositive", ValueError, "non-positive std"),
        ("dec_std_nonpositive", ValueError, "dec: row 0"),
        ("dec_shape", ValueError, "dec: expected shape"),
        ("x_rows", ValueError, "x: expected 3 rows"),
        ("scale_shape", ValueError, "logvar"),
        ("no_scale", TypeError, "give one of logvar"),
        ("two_scales", TypeError, "at most one"),
        ("bernoulli_x", ValueError, r"x: the Bernoulli likelihood needs values in \[0, 1\]"),
        ("bernoulli_nan", ValueError, r"x: the Bernoulli"),
        ("cat_index", ValueError, r"x: category indices must lie in \[0, 3\)"),
        ("cat_float_x", TypeError, "x: expected an integer array"),
        ("tril_upper", ValueError, "scale_tril: matrix 0"),
        ("tril_diag", ValueError, "scale_tril: matrix 1"),
        ("beta", ValueError, "beta"),
        ("likelihood", ValueError, "likelihood"),
        ("dec_scale_cat", TypeError, "only the Gaussian"),
        ("dec_scale_shape", ValueError, "dec_logvar: expected a scalar"),
        ("int_mu", TypeError, "mu"),
        ("prior_mixed", TypeError, "same parametrisation"),
    ],
)
def test_bad_input(backend, rng, case, err, match):
    x, dec, mu, lv, dlv = _ok(rng)
    kw = dict(dec_logvar=dlv)
    args = [x, dec, mu, lv]
    if case == "nan_mu":
        mu[1, 0] = np.nan
    elif case == "nan_dec":
        dec[1, 2, 0] = np.nan
    elif case == "nan_x":
        x[0, 0] = np.inf
    elif case == "nan_dec_unit_variance":  # (the unit-variance row, no decoder scale)
        kw = {}
        dec[1, 2, 0] = np.nan
    elif case == "overflowing_difference_unit_variance":  # finite x and dec, x - dec = inf
        kw = {}
        x[0, 0], dec[0, 0, 0] = 1.5e308, -1.5e308
    elif case == "std_nonpositive":
        args[3] = None
        kw["std"] = np.abs(lv) * 0 + 1
        kw["std"][0, 1] = 0.0
    elif case == "dec_std_nonpositive":
        kw = dict(dec_std=np.abs(dlv) + 0.1)
        kw["dec_std"][1, 0, 0] = -1.0
    elif case == "dec_shape":
        args[1] = dec[:, :, :3]
    elif case == "x_rows":
        args[0] = x[:2]
    elif case == "scale_shape":
        args[3] = lv[:, :1]
    elif case == "no_scale":
        args[3] = None
    elif case == "two_scales":
        kw["std"] = lv
    elif case == "bernoulli_x":
        kw = dict(likelihood="bernoulli")
        args[0] = x
    elif case == "bernoulli_nan":
        kw = dict(likelihood="bernoulli")
        args[0] = np.full_like(x, np.nan)
    elif case == "cat_index":
        kw = dict(likelihood="categorical")
        args[0] = np.full((3, 4), 3)
        args[1] = np.zeros((2, 3, 4, 3))
    elif case == "cat_float_x":
        kw = dict(likelihood="categorical")
        args[1] = np.zeros((2, 3, 4, 3))
    elif case in ("tril_upper", "tril_diag"):
        L = np.broadcast_to(np.eye(2), (3, 2, 2)).copy()
        if case == "tril_upper":
            L[0, 0, 1] = 0.5
        else:
            L[1, 1, 1] = -1.0
        args[3] = None
        kw["scale_tril"] = L
    elif case == "beta":
        kw["beta"] = float("nan")
    elif case == "likelihood":
        kw["likelihood"] = "poisson"
    elif case == "dec_scale_cat":
        kw["likelihood"] = "categorical"
        args[0] = np.zeros((3, 4), np.int64)
        args[1] = np.zeros((2, 3, 4, 3))
    elif case == "dec_scale_shape":
        kw["dec_logvar"] = dlv[0, :, :2]
    elif case == "int_mu":
        args[2] = np.zeros((3, 2), np.int64)
    elif case == "prior_mixed":
        kw["prior_std"] = np.ones(2)
    A = backend.asarray
    args = [None if a is None else A(a) for a in args]
    kw = {k: (A(v) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
    with pytest.raises(err, match=match):
        E.elbo_terms(*args, **kw)
    if case in ("dec_shape", "x_rows", "scale_shape", "bernoulli_x", "cat_index", "dec_scale_shape", "no_scale"):
        with pytest.raises(err, match=match):  # the backward validates its inputs the same way
            E.elbo_backward(*args, grad_elbo=1.0, **kw)
