"""pygenmod.torch.elbo: the pygenmod::elbo_terms custom op against torch.distributions + autograd,
torch.library.opcheck, gradcheck and torch.compile(fullgraph=True)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pt = pytest.importorskip("pygenmod.torch")
td = torch.distributions


def _case(lik, kind, prior, dtype=torch.float64, B=3, D=2, F=(4,), S=2, K=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=dtype)  # noqa: E731
    mu = r(B, D)
    if kind == "scale_tril":
        scale = torch.tril(0.3 * r(B, D, D), -1) + torch.diag_embed(torch.rand(B, D, generator=g, dtype=dtype) + 0.5)
    elif kind == "std":
        scale = torch.rand(B, D, generator=g, dtype=dtype) + 0.5
    else:
        scale = 0.5 * r(B, D)
    kw = {kind: scale.requires_grad_()}
    if lik == "gaussian":
        x, dec = r(B, *F), r(S, B, *F)
        kw["dec_logvar"] = (0.3 * r(S, B, *F)).requires_grad_()
    elif lik == "bernoulli":
        x, dec = (torch.rand(B, *F, generator=g, dtype=dtype) > 0.5).to(dtype), r(S, B, *F)
    else:
        x, dec = torch.randint(0, K, (B, *F), generator=g), r(S, B, *F, K)
    if prior:
        kw["prior_mu"] = r(D).requires_grad_()
        if kind == "scale_tril":
            kw["prior_scale_tril"] = (torch.eye(D, dtype=dtype) * 1.3).requires_grad_()
        else:
            kw["prior_" + kind] = (
                torch.rand(B, D, generator=g, dtype=dtype) + 0.5 if kind == "std" else 0.2 * r(B, D)
            ).requires_grad_()
    return x, dec.requires_grad_(), mu.requires_grad_(), kw


def _reference(x, dec, mu, kw, lik, beta):
    kind = next(k for k in ("logvar", "log_std", "std", "scale_tril") if k in kw)
    D = mu.shape[-1]
    if kind == "scale_tril":
        q = td.MultivariateNormal(mu, scale_tril=kw[kind])
        p = td.MultivariateNormal(
            kw.get("prior_mu", torch.zeros(D, dtype=mu.dtype)),
            scale_tril=kw.get("prior_scale_tril", torch.eye(D, dtype=mu.dtype)),
        )
        kl = td.kl_divergence(q, p)
    else:
        sig = {"logvar": lambda p: torch.exp(0.5 * p), "log_std": torch.exp, "std": lambda p: p}[kind]
        pr = td.Normal(kw.get("prior_mu", 0.0), sig(kw["prior_" + kind]) if "prior_" + kind in kw else 1.0)
        kl = td.kl_divergence(td.Normal(mu, sig(kw[kind])), pr).sum(-1)
    if lik == "gaussian":
        lp = td.Normal(dec, torch.exp(0.5 * kw["dec_logvar"])).log_prob(x)
    elif lik == "bernoulli":
        lp = td.Bernoulli(logits=dec).log_prob(x)
    else:
        lp = td.Categorical(logits=dec).log_prob(x)
    ll = lp.reshape(dec.shape[0], mu.shape[0], -1).sum(-1).mean(0)
    return ll - beta * kl, ll, kl


@pytest.mark.parametrize("lik", ["gaussian", "bernoulli", "categorical"])
@pytest.mark.parametrize("kind", ["logvar", "log_std", "std", "scale_tril"])
@pytest.mark.parametrize("prior", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_matches_torch_distributions(lik, kind, prior, dtype):
    x, dec, mu, kw = _case(lik, kind, prior, dtype)
    got = pt.elbo_terms(x, dec, mu, likelihood=lik, beta=0.8, **kw)
    want = _reference(x, dec, mu, kw, lik, 0.8)
    rt = dict(rtol=1e-4, atol=1e-4) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-10)
    for a, b in zip(got, want):
        assert a.dtype == dtype
        torch.testing.assert_close(a, b.detach(), **rt)
    inputs = [dec, mu] + list(kw.values())
    w = torch.linspace(-1, 1, mu.shape[0], dtype=dtype)
    ga = torch.autograd.grad((got.elbo * w).sum() + got.kl.sum(), inputs)
    gb = torch.autograd.grad((want[0] * w).sum() + want[2].sum(), inputs)
    for name, a, b in zip(["dec", "mu"] + list(kw), ga, gb):
        if "scale_tril" in name:
            b = torch.tril(b)  # (the factor's gradient is lower triangular)
        torch.testing.assert_close(a, b, msg=name, **rt)


def test_fixed_decoder_scale_tensor_gets_a_gradient():
    x, dec, mu, kw = _case("gaussian", "logvar", False)
    kw["dec_logvar"] = torch.tensor(0.4, dtype=torch.float64, requires_grad=True)
    e = pt.elbo(x, dec, mu, **kw).sum()
    (g,) = torch.autograd.grad(e, [kw["dec_logvar"]])
    ref = td.Normal(dec, torch.exp(0.5 * kw["dec_logvar"])).log_prob(x).sum(-1).mean(0).sum()
    (gr,) = torch.autograd.grad(ref, [kw["dec_logvar"]])
    torch.testing.assert_close(g, gr)


@pytest.mark.parametrize(
    "lik,kind,prior",
    [
        ("gaussian", "logvar", True),
        ("bernoulli", "scale_tril", False),
        ("categorical", "std", True),
        ("gaussian", "scale_tril", True),
    ],
)
def test_opcheck_and_gradcheck(lik, kind, prior):
    x, dec, mu, kw = _case(lik, kind, prior, B=2, D=2, F=(3,), S=2)
    kinds = ("logvar", "log_std", "std", "scale_tril")
    k = next(i for i, n in enumerate(kinds) if n in kw)
    pscale = next((v for n, v in kw.items() if n.startswith("prior_") and n != "prior_mu"), None)
    args = (
        x,
        dec,
        mu,
        kw[kinds[k]],
        kw.get("dec_logvar"),
        kw.get("prior_mu"),
        pscale,
        k,
        ("gaussian", "bernoulli", "categorical").index(lik),
        0,
        0.7,
        float("-inf"),
        float("inf"),
    )
    torch.library.opcheck(torch.ops.pygenmod.elbo_terms.default, args)
    f = lambda dec, mu, s: pt.elbo(
        x,
        dec,
        mu,
        likelihood=lik,
        beta=0.7,  # noqa: E731
        **{**kw, kinds[k]: s},
    )
    s = kw[kinds[k]]
    if kind == "scale_tril":  # perturb the lower triangle only
        f0 = f
        f = lambda dec, mu, s: f0(dec, mu, torch.tril(s))  # noqa: E731
    torch.autograd.gradcheck(f, (dec, mu, s))


def test_torch_compile_fullgraph_forward_and_backward():
    x, dec, mu, kw = _case("gaussian", "logvar", True)
    lv = kw.pop("logvar")

    def loss(x, dec, mu, lv):
        return -pt.elbo(x, dec, mu, lv, beta=0.5, **kw).mean()

    comp = torch.compile(loss, fullgraph=True)
    a = comp(x, dec, mu, lv)
    b = loss(x, dec, mu, lv)
    torch.testing.assert_close(a, b)
    ga = torch.autograd.grad(a, [dec, mu, lv])
    gb = torch.autograd.grad(b, [dec, mu, lv])
    for u, v in zip(ga, gb):
        torch.testing.assert_close(u, v)


def test_bad_input_raises():
    x, dec, mu, kw = _case("gaussian", "logvar", False)
    with pytest.raises(ValueError, match="likelihood"):
        pt.elbo(x, dec, mu, likelihood="poisson", **kw)
    with pytest.raises(TypeError, match="exactly one"):
        pt.elbo(x, dec, mu)
    with pytest.raises(ValueError, match="dec: expected shape"):
        pt.elbo(x, dec[:, :, :2], mu, **kw)
    bad = mu.detach().clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="row 0"):
        pt.elbo(x, dec, bad, **kw)


def test_numpy_reference_agrees_through_torch():
    x, dec, mu, kw = _case("bernoulli", "log_std", False)
    from pygenmod import elbo as E

    a = pt.elbo(x, dec, mu, likelihood="bernoulli", **kw).detach().numpy()
    b = E.elbo(
        x.numpy(),
        dec.detach().numpy(),
        mu.detach().numpy(),
        likelihood="bernoulli",
        log_std=kw["log_std"].detach().numpy(),
    )
    np.testing.assert_allclose(a, b, rtol=1e-12)
