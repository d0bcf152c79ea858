"""Adversarial objectives: closed forms vs a float64 NumPy reference and torch autograd."""

import numpy as np
import pytest
import reference as oracle
from conftest import tol

from pygenmod import adversarial as adv


@pytest.mark.parametrize("shape_r,shape_f", [((7,), (5,)), ((3, 11), (3, 2)), ((2, 1, 1), (2, 1, 3))])
def test_gan_value_and_grads(dtype, rng, shape_r, shape_f):
    r = (3 * rng.standard_normal(shape_r)).astype(dtype)
    f = (3 * rng.standard_normal(shape_f)).astype(dtype)
    out = adv.gan_value(r, f)
    ref = oracle.log_sigmoid(r).mean(-1) + oracle.log_sigmoid(-f.astype(np.float64)).mean(-1)
    assert out.loss.dtype == dtype
    np.testing.assert_allclose(out.loss, ref, **tol(dtype))
    np.testing.assert_allclose(out.grad, (1 - oracle.sigmoid(r)) / r.shape[-1], **tol(dtype))
    np.testing.assert_allclose(out.grad_other, -oracle.sigmoid(f) / f.shape[-1], **tol(dtype))
    d = adv.gan_discriminator_loss(r, f)
    np.testing.assert_allclose(d.loss, -ref, **tol(dtype))


def test_reductions(rng):
    r, f = rng.standard_normal((2, 5)), rng.standard_normal((2, 4))
    none = adv.gan_value(r, f, reduction="none")
    assert none.loss.shape == (2, 5) and none.loss_other.shape == (2, 4)
    total = adv.gan_value(r, f, reduction="sum")
    np.testing.assert_allclose(total.loss, none.loss.sum(-1) + none.loss_other.sum(-1))
    with pytest.raises(ValueError, match="reduction"):
        adv.gan_value(r, f, reduction="avg")


def test_against_torch_autograd(rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    r = torch.tensor(4 * rng.standard_normal((3, 6)), requires_grad=True)
    f = torch.tensor(4 * rng.standard_normal((3, 4)), requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(r, torch.ones_like(r), reduction="none").mean(
        -1
    ) + F.binary_cross_entropy_with_logits(f, torch.zeros_like(f), reduction="none").mean(-1)
    loss.sum().backward()
    out = adv.gan_discriminator_loss(r, f)
    assert isinstance(out.loss, torch.Tensor)
    np.testing.assert_allclose(out.loss.numpy(), loss.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(out.grad.numpy(), r.grad.numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(out.grad_other.numpy(), f.grad.numpy(), rtol=1e-12, atol=1e-15)

    f2 = f.detach().clone().requires_grad_(True)
    ns = F.binary_cross_entropy_with_logits(f2, torch.ones_like(f2), reduction="none").mean(-1)
    ns.sum().backward()
    g = adv.gan_generator_loss(f.detach(), non_saturating=True)
    np.testing.assert_allclose(g.loss.numpy(), ns.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(g.grad.numpy(), f2.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_minimax_generator(rng):
    f = rng.standard_normal((4, 9))
    g = adv.gan_generator_loss(f, non_saturating=False)
    np.testing.assert_allclose(g.loss, oracle.log_sigmoid(-f).mean(-1), rtol=1e-12)
    np.testing.assert_allclose(g.grad, -oracle.sigmoid(f) / 9, rtol=1e-12)


@pytest.mark.parametrize("fn", ["gan_value", "gan_discriminator_loss", "gail_discriminator_loss"])
def test_extreme_logits_stay_finite(dtype, fn):
    x = np.array([[-1e4, -50.0, 0.0, 50.0, 1e4]], dtype)
    out = getattr(adv, fn)(x, x)
    for t in (out.loss, out.grad, out.grad_other):
        assert np.isfinite(t).all()
    g = adv.gan_generator_loss(x)
    assert np.isfinite(g.loss).all() and np.isfinite(g.grad).all()
    np.testing.assert_allclose(adv.gail_reward(x, "log_d")[0, 0], -1e4, rtol=1e-6)
    np.testing.assert_allclose(adv.gail_reward(x, "neg_log_one_minus_d")[0, -1], 1e4, rtol=1e-6)


def test_lsgan_labelled_goal_gan(dtype, rng):
    g = rng.standard_normal((2, 8)).astype(dtype)
    z = rng.standard_normal((2, 5)).astype(dtype)
    y = (rng.random((2, 8)) > 0.5).astype(dtype)
    a, b, c = -1.0, 1.0, 0.0
    out = adv.lsgan_discriminator_loss(g, z, labels=y)
    g64, z64, y64 = (t.astype(np.float64) for t in (g, z, y))
    ref = (y64 * (g64 - b) ** 2 + (1 - y64) * (g64 - a) ** 2).mean(-1) + ((z64 - a) ** 2).mean(-1)
    np.testing.assert_allclose(out.loss, ref, **tol(dtype))
    np.testing.assert_allclose(out.grad, 2 * (y64 * (g64 - b) + (1 - y64) * (g64 - a)) / 8, **tol(dtype))
    np.testing.assert_allclose(out.grad_other, 2 * (z64 - a) / 5, **tol(dtype))
    gen = adv.lsgan_generator_loss(z, c=c)
    np.testing.assert_allclose(gen.loss, ((z64 - c) ** 2).mean(-1), **tol(dtype))
    np.testing.assert_allclose(gen.grad, 2 * (z64 - c) / 5, **tol(dtype))
    unl = adv.lsgan_discriminator_loss(g, z)
    np.testing.assert_allclose(unl.loss, ((g64 - b) ** 2).mean(-1) + ((z64 - a) ** 2).mean(-1), **tol(dtype))


def test_label_goals():
    r = np.array([0.0, 0.1, 0.5, 0.9, 0.95, 1.0])
    np.testing.assert_array_equal(adv.label_goals(r), [0, 1, 1, 1, 0, 0])
    np.testing.assert_array_equal(adv.label_goals(r, 0.0, 1.0), np.ones(6))
    with pytest.raises(ValueError, match="r_min"):
        adv.label_goals(r, 0.9, 0.1)
    with pytest.raises(ValueError, match="success_rates"):
        adv.label_goals(np.array([1.5]))


@pytest.mark.parametrize(
    "bad,err", [(np.array([1.0, np.nan]), ValueError), (np.arange(3), TypeError), (np.float64(1.0), ValueError)]
)
def test_bad_input(bad, err):
    with pytest.raises(err):
        adv.gan_generator_loss(bad)


def test_mismatched_batches_and_empty():
    with pytest.raises(ValueError, match="fake_logits: leading"):
        adv.gan_value(np.zeros((2, 3)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="empty"):
        adv.gan_value(np.zeros((2, 0)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="labels"):
        adv.lsgan_discriminator_loss(np.zeros(3), np.zeros(2), labels=np.full(3, 2.0))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", [(2, 5), (2, 16384), (3, 1, 9000)])  # float64 >= 16384 entries: einsum's sums
def test_lsgan_losses_against_numpy(dtype, rng, reduction, shape):
    r, f = (rng.standard_normal(shape) + 0.5).astype(dtype), rng.standard_normal(shape).astype(dtype)
    n = shape[-1]
    red = {"mean": lambda e: e.mean(-1), "sum": lambda e: e.sum(-1), "none": lambda e: e}[reduction]
    scale = {"mean": 1.0 / n, "sum": 1.0, "none": 1.0}[reduction]
    r64, f64 = r.astype(np.float64), f.astype(np.float64)
    g = adv.lsgan_generator_loss(f, c=0.3, reduction=reduction)
    np.testing.assert_allclose(g.loss, red((f64 - 0.3) ** 2), **tol(dtype))
    np.testing.assert_allclose(g.grad, 2 * (f64 - 0.3) * scale, **tol(dtype))
    assert g.grad.dtype == dtype and g.grad.shape == shape
    d = adv.lsgan_discriminator_loss(r, f, a=-1.0, b=1.0, reduction=reduction)
    lr, lf = red((r64 - 1.0) ** 2), red((f64 + 1.0) ** 2)
    if reduction == "none":
        np.testing.assert_allclose(d.loss, lr, **tol(dtype))
        np.testing.assert_allclose(d.loss_other, lf, **tol(dtype))
    else:
        np.testing.assert_allclose(d.loss, lr + lf, **tol(dtype))
    np.testing.assert_allclose(d.grad, 2 * (r64 - 1.0) * scale, **tol(dtype))
    np.testing.assert_allclose(d.grad_other, 2 * (f64 + 1.0) * scale, **tol(dtype))
