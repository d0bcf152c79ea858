"""PyTorch wrappers: torch.autograd.gradcheck (float64) of every differentiable op, agreement
with torch.distributions, half-precision inputs, and the torch.library custom ops."""

import pytest

torch = pytest.importorskip("torch")
T = pytest.importorskip("pygenmod.torch")
from pygenmod import sampling as S  # noqa: E402

gradcheck = torch.autograd.gradcheck


def _p(*shape, gen, scale=1.0, pos=False):
    x = torch.randn(*shape, generator=gen, dtype=torch.float64) * scale
    if pos:
        x = x.exp()
    return x.requires_grad_()


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(0)


@pytest.mark.parametrize("kind", ["logvar", "log_std", "std"])
def test_gradcheck_normal_head(gen, kind):
    mu, p = _p(3, 4, gen=gen), _p(3, 4, gen=gen, scale=0.5, pos=kind == "std")

    def f(mu, p):
        z, kl, lq = T.normal_head(mu, seed=5, n_samples=2, log_q=True, **{kind: p})
        return z, kl, lq

    assert gradcheck(f, (mu, p))


def test_gradcheck_clamp_and_eps(gen):
    mu, lv = _p(2, 5, gen=gen), _p(2, 5, gen=gen, scale=2)
    eps = torch.randn(2, 5, generator=gen, dtype=torch.float64)
    assert gradcheck(lambda m, l: T.rsample_normal(m, l, eps=eps, clamp=(-1.0, 1.0)), (mu, lv))


def test_gradcheck_kl_and_log_prob(gen):
    mu, lv, pm, plv = (_p(3, 4, gen=gen) for _ in range(4))
    assert gradcheck(lambda a, b, c, d: T.kl_normal(a, b, c, d), (mu, lv, pm, plv))
    assert gradcheck(lambda a, b: T.kl_normal(a, b), (mu, lv))
    x = _p(2, 3, 4, gen=gen)
    assert gradcheck(lambda x, a, b: T.normal_log_prob(x, a, b), (x, mu, lv))


def _L(B, D, gen):
    A = torch.randn(B, D, D, generator=gen, dtype=torch.float64) * 0.3
    L = torch.tril(A, -1) + torch.diag_embed(torch.rand(B, D, generator=gen, dtype=torch.float64) + 0.5)
    return L.requires_grad_()


@pytest.mark.parametrize("shared", [False, True])
def test_gradcheck_mvn(gen, shared):
    B, D = 3, 4
    mu = _p(B, D, gen=gen)
    L = _L(1 if shared else B, D, gen)
    Larg = L[0].detach().clone().requires_grad_() if shared else L
    # gradcheck perturbs the upper triangle too: the op reads only the lower one
    assert gradcheck(lambda m, l: T.mvn_head(m, torch.tril(l), seed=3, n_samples=2, log_q=True), (mu, Larg))
    x = _p(2, B, D, gen=gen)
    assert gradcheck(lambda x, m, l: T.mvn_log_prob(x, m, torch.tril(l)), (x, mu, Larg))
    assert gradcheck(lambda x, m, l: T.mahalanobis(x, m, torch.tril(l)), (x, mu, Larg))
    assert gradcheck(lambda x, m, l: T.mahalanobis(x, m, precision_tril=torch.tril(l), squared=False), (x, mu, Larg))
    m2, L2 = _p(B, D, gen=gen), _L(B, D, gen)
    assert gradcheck(lambda a, b, c, d: T.kl_mvn(a, torch.tril(b), c, torch.tril(d)), (mu, Larg, m2, L2))
    assert gradcheck(lambda a, b: T.kl_mvn(a, torch.tril(b)), (mu, Larg))


def test_gradcheck_gumbel_softmax(gen):
    logits = _p(4, 5, gen=gen)
    assert gradcheck(lambda l: T.gumbel_softmax(l, 0.7, seed=2), (logits,))
    y = T.gumbel_softmax(logits, 0.7, seed=2, hard=True)
    assert torch.all((y == 0) | (y == 1)) and torch.all(y.sum(-1) == 1)
    y.mul(torch.arange(5.0, dtype=torch.float64)).sum().backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_vae_step_matches_torch_distributions(gen):
    mu, lv = _p(16, 8, gen=gen), _p(16, 8, gen=gen)
    z, kl, lq = T.normal_head(mu, lv, seed=11, log_q=True)
    eps = torch.from_numpy(S.rsample_normal(mu.detach().numpy(), lv.detach().numpy(), seed=11, return_eps=True)[1])
    mu2, lv2 = mu.detach().clone().requires_grad_(), lv.detach().clone().requires_grad_()
    q = torch.distributions.Normal(mu2, torch.exp(0.5 * lv2))
    z2 = mu2 + torch.exp(0.5 * lv2) * eps
    kl2 = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(-1)
    lq2 = q.log_prob(z2).sum(-1)
    torch.testing.assert_close(z, z2)
    torch.testing.assert_close(kl, kl2)
    torch.testing.assert_close(lq, lq2)
    w = torch.randn(8, generator=gen, dtype=torch.float64)
    ((z @ w).sum() + kl.sum() + 0.3 * lq.sum()).backward()
    ((z2 @ w).sum() + kl2.sum() + 0.3 * lq2.sum()).backward()
    torch.testing.assert_close(mu.grad, mu2.grad)
    torch.testing.assert_close(lv.grad, lv2.grad)


@pytest.mark.parametrize("dt", [torch.float16, torch.bfloat16])
def test_half_inputs_computed_in_float32(gen, dt):
    mu = torch.randn(4, 6, generator=gen).to(dt).requires_grad_()
    lv = torch.full((4, 6), 12.0).to(dt).requires_grad_()  # KL terms overflow float16
    z, kl, _ = T.normal_head(mu, lv, seed=1)
    assert z.dtype == dt and kl.dtype == torch.float32 and torch.isfinite(kl).all()
    ref = T.normal_head(mu.detach().float(), lv.detach().float(), seed=1)[1]
    torch.testing.assert_close(kl, ref)
    (z.float().sum() + kl.sum()).backward()
    assert mu.grad.dtype == dt and lv.grad.dtype == dt


def test_custom_op_called_directly():
    # the wrappers are thin: the op itself (kind, eps, seed, n_samples, stream, offset, clamp, log_q)
    # gives the same draw and is differentiable (opcheck of every op: tests/test_torch_ops.py)
    mu = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    lv = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    inf = float("inf")
    z, kl, _ = torch.ops.pygenmod.sampling_normal_head(mu, lv, 0, None, 7, 2, 0, 0, -inf, inf, False)
    z2, kl2, _ = T.normal_head(mu, lv, seed=7, n_samples=2)
    torch.testing.assert_close(z, z2)
    torch.testing.assert_close(kl, kl2)
    assert gradcheck(
        lambda m, l: torch.ops.pygenmod.sampling_normal_head(m, l, 0, None, 7, 2, 0, 0, -inf, inf, True), (mu, lv)
    )
