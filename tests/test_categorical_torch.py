"""pygenmod.torch's categorical ops: values and autograd against torch.distributions, opcheck,
torch.compile(fullgraph=True), masks, half precision."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pygenmod.torch import (  # noqa: E402
    categorical_entropy,
    categorical_kl,
    categorical_log_prob,
    pg_loss,
    policy_target_kl,
)

D = torch.distributions


def _pair(shape=(5, 7), dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=g, dtype=dtype) * 2).requires_grad_()
    y = (torch.randn(shape, generator=g, dtype=dtype) * 2).requires_grad_()
    return x, y


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (2, 3, 4)])
def test_values_and_grads_match_torch_distributions(dtype, shape):
    x, y = _pair(shape, dtype)
    a = torch.randint(0, shape[-1], shape[:-1])
    w = torch.randn(shape[:-1], dtype=dtype)
    loss = ((categorical_log_prob(x, a) + categorical_entropy(x) + categorical_kl(x, y)) * w).sum()
    loss.backward()
    x2, y2 = x.detach().clone().requires_grad_(), y.detach().clone().requires_grad_()
    p, q = D.Categorical(logits=x2), D.Categorical(logits=y2)
    ref = ((p.log_prob(a) + p.entropy() + D.kl_divergence(p, q)) * w).sum()
    ref.backward()
    t = dict(rtol=1e-4, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(loss, ref, **t)
    torch.testing.assert_close(x.grad, x2.grad, **t)
    torch.testing.assert_close(y.grad, y2.grad, **t)


def test_masked_matches_torch_with_minus_inf_logits():
    x, _ = _pair((6, 5))
    m = torch.rand(6, 5, generator=torch.Generator().manual_seed(1)) < 0.6
    m[:, 2] = True
    a = torch.full((6,), 2)
    h = categorical_entropy(x, m) + categorical_log_prob(x, a, m)
    h.sum().backward()
    x2 = x.detach().clone().requires_grad_()
    lp = torch.log_softmax(x2.masked_fill(~m, -1e9), -1)  # (-inf logits give NaN gradients in torch)
    ref = -(lp.exp() * lp).sum(-1) + lp[:, 2]
    ref.sum().backward()
    torch.testing.assert_close(h, ref)
    torch.testing.assert_close(x.grad, x2.grad)
    assert (x.grad[~m] == 0).all()


def test_policy_target_kl_grad_is_pi_minus_w():
    _, y = _pair((4, 6))
    counts = torch.tensor(
        [[3.0, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 5], [1, 1, 1, 1, 1, 1], [0, 2, 2, 0, 0, 0]], dtype=torch.float64
    )
    k = policy_target_kl(counts, y)
    k.sum().backward()
    w = counts / counts.sum(-1, keepdim=True)
    torch.testing.assert_close(y.grad, torch.softmax(y.detach(), -1) - w)
    lq = torch.log_softmax(y.detach(), -1)
    ref = torch.where(w > 0, w * (torch.log(torch.where(w > 0, w, 1)) - lq), torch.zeros_like(w)).sum(-1)
    torch.testing.assert_close(k.detach(), ref)


def test_pg_loss_signs():
    lp = torch.randn(3, 8, requires_grad=True)
    q = torch.randn(3, 8)
    h = torch.randn(3, 8, requires_grad=True)
    pg_loss(lp, q, h, lam=0.5).sum().backward()
    torch.testing.assert_close(lp.grad, -q / 8)
    torch.testing.assert_close(h.grad, torch.full_like(h, -0.5 / 8))
    torch.testing.assert_close(pg_loss(lp, q, q_is="cost"), (lp * q).mean(-1))


def test_half_precision_computes_in_float32():
    x = torch.randn(3, 4).to(torch.bfloat16).requires_grad_()
    h = categorical_entropy(x)
    assert h.dtype == torch.float32
    h.sum().backward()
    assert x.grad.dtype == torch.bfloat16


def test_opcheck():
    x, y = _pair((3, 5))
    a = torch.tensor([0, 4, 2])
    m = torch.tensor([[1, 1, 0, 1, 1], [1, 0, 1, 1, 1], [1, 1, 1, 1, 0]], dtype=torch.bool)
    ops = torch.ops.pygenmod
    torch.library.opcheck(ops.categorical_log_prob.default, (x, a, None))
    torch.library.opcheck(ops.categorical_log_prob.default, (x, a, m))
    torch.library.opcheck(ops.categorical_entropy.default, (x, m))
    torch.library.opcheck(ops.categorical_kl.default, (x, y, m, None, False))
    w = torch.rand(3, 5, dtype=torch.float64) * m  # (weight on a masked action: +inf, NaN gradients)
    torch.library.opcheck(ops.categorical_kl.default, (w, y, None, m, True))


def test_torch_compile_fullgraph():
    def f(x, y, a):
        return (
            categorical_log_prob(x, a)
            - 0.1 * categorical_entropy(x)
            + categorical_kl(x, y)
            + policy_target_kl(torch.ones_like(y), y)
        ).sum()

    x, y = _pair((4, 6))
    a = torch.tensor([1, 0, 5, 3])
    out = torch.compile(f, fullgraph=True)(x, y, a)
    out.backward()
    x2, y2 = x.detach().clone().requires_grad_(), y.detach().clone().requires_grad_()
    ref = f(x2, y2, a)
    ref.backward()
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(x.grad, x2.grad)
    torch.testing.assert_close(y.grad, y2.grad)


def test_errors_reach_torch_users():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="mask: row 0 masks every action"):
        categorical_entropy(x, torch.zeros(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="actions"):
        categorical_log_prob(x, torch.tensor([0, 7]))
    with pytest.raises(ValueError, match="lam"):
        pg_loss(x, x, x, lam=-1.0)
    assert np.isinf(
        categorical_kl(
            x, x, torch.ones(2, 3, dtype=torch.bool), torch.tensor([[1, 1, 0], [1, 1, 1]], dtype=torch.bool)
        )[0].item()
    )


def test_numpy_api_accepts_tensors_and_returns_tensors():
    from pygenmod import categorical as cat

    x = torch.randn(4, 3, dtype=torch.float64)
    h = cat.entropy(x)
    assert isinstance(h, torch.Tensor)
    torch.testing.assert_close(h, D.Categorical(logits=x).entropy())
