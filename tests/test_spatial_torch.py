"""pygenmod.torch spatial softmax: gradcheck (x and temperature, scalar and per channel) against
our fused VJP and against autograd of a plain torch implementation; kornia after mapping
conventions; nn.Module; torch.compile without graph breaks; half precision tensors."""

import pytest

torch = pytest.importorskip("torch")

from pygenmod.torch import SpatialSoftmax, spatial_softmax  # noqa: E402


def plain_torch(x, t, return_cov=False, return_maps=False):
    """The textbook implementation (robomimic-style), differentiated by torch autograd."""
    B, C, H, W = x.shape
    t = t.reshape(-1) if t.dim() else t.reshape(1)
    s = torch.softmax((x / t.reshape(1, -1, 1, 1)).reshape(B, C, H * W), -1).reshape(B, C, H, W)
    px = torch.linspace(-1, 1, W, dtype=x.dtype) if W > 1 else torch.zeros(1, dtype=x.dtype)
    py = torch.linspace(-1, 1, H, dtype=x.dtype) if H > 1 else torch.zeros(1, dtype=x.dtype)
    kp = torch.stack([(s.sum(2) * px).sum(-1), (s.sum(3) * py).sum(-1)], -1)
    out = (kp,)
    if return_cov:
        gy, gx = torch.meshgrid(py, px, indexing="ij")
        d = torch.stack([gx, gy], -1)[None, None] - kp[:, :, None, None, :]
        out += (torch.einsum("bchw,bchwi,bchwj->bcij", s, d, d),)
    if return_maps:
        out += (s,)
    return out[0] if len(out) == 1 else out


def _inputs(per_channel, shape=(2, 3, 4, 6), seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=g, dtype=torch.float64) * 2).requires_grad_()
    C = shape[1]
    t = (
        (torch.rand(C, generator=g, dtype=torch.float64) + 0.5)
        if per_channel
        else torch.tensor(1.3, dtype=torch.float64)
    )
    return x, t.requires_grad_()


@pytest.mark.parametrize("per_channel", [False, True], ids=["scalar_t", "per_channel_t"])
@pytest.mark.parametrize("outputs", ["kp", "kp+cov", "kp+cov+maps"])
def test_gradcheck(per_channel, outputs):
    x, t = _inputs(per_channel)
    kw = dict(return_cov="cov" in outputs, return_maps="maps" in outputs)
    assert torch.autograd.gradcheck(lambda x, t: spatial_softmax(x, t, **kw), (x, t))


@pytest.mark.parametrize("per_channel", [False, True], ids=["scalar_t", "per_channel_t"])
def test_gradcheck_nhwc_and_plain_reference(per_channel):
    x, t = _inputs(per_channel, shape=(2, 3, 5, 3))
    xn = x.detach().permute(0, 2, 3, 1).contiguous().requires_grad_()
    assert torch.autograd.gradcheck(lambda x, t: spatial_softmax(x, t, layout="NHWC", return_cov=True), (xn, t))
    assert torch.autograd.gradcheck(lambda x, t: plain_torch(x, t, return_cov=True), (x, t))


@pytest.mark.parametrize("per_channel", [False, True], ids=["scalar_t", "per_channel_t"])
@pytest.mark.parametrize("shape", [(2, 3, 4, 6), (1, 2, 7, 1), (2, 1, 1, 1), (1, 2, 9, 5)])
def test_matches_autograd_of_plain_torch(per_channel, shape):
    x, t = _inputs(per_channel, shape)
    x2, t2 = x.detach().clone().requires_grad_(), t.detach().clone().requires_grad_()
    kp, cov, maps = spatial_softmax(x, t, return_cov=True, return_maps=True)
    kp2, cov2, maps2 = plain_torch(x2, t2, return_cov=True, return_maps=True)
    g = torch.Generator().manual_seed(1)
    gk, gc, gm = (torch.randn(a.shape, generator=g, dtype=a.dtype) for a in (kp2, cov2, maps2))
    ((kp * gk).sum() + (cov * gc).sum() + (maps * gm).sum()).backward()
    ((kp2 * gk).sum() + (cov2 * gc).sum() + (maps2 * gm).sum()).backward()
    for a, b in ((kp, kp2), (cov, cov2), (maps, maps2), (x.grad, x2.grad), (t.grad, t2.grad)):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (1, 4, 5, 12), (3, 2, 17, 3)])
def test_matches_kornia(dtype, shape):
    kornia = pytest.importorskip("kornia")
    from kornia.geometry.subpix import spatial_expectation2d, spatial_softmax2d

    g = torch.Generator().manual_seed(2)
    x = torch.randn(shape, generator=g, dtype=dtype) * 3
    alpha = 0.7
    # kornia 0.9 divides the logits by its `temperature`, as we do.
    # Both put pixel centres on linspace(-1, 1, n) with x (column) first.
    want = spatial_expectation2d(spatial_softmax2d(x, torch.tensor(alpha, dtype=dtype)), True)
    got = spatial_softmax(x, alpha)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(got, want, **tol)
    # pixel coordinates: kornia's normalized_coordinates=False uses [0, W-1] x [0, H-1] too
    want_px = spatial_expectation2d(spatial_softmax2d(x, torch.tensor(alpha, dtype=dtype)), False)
    torch.testing.assert_close(spatial_softmax(x, alpha, coords="pixel"), want_px, **tol)
    del kornia


def test_module_learns_temperature():
    torch.manual_seed(0)
    m = SpatialSoftmax(4, temperature=2.0, per_channel=True)
    assert isinstance(m.temperature, torch.nn.Parameter) and m.temperature.shape == (4,)
    opt = torch.optim.Adam(m.parameters(), lr=0.05)
    x = torch.randn(8, 4, 6, 6)
    target = plain_torch(x, torch.full((4,), 0.5)).detach()  # sharper maps: smaller temperature
    for _ in range(80):
        opt.zero_grad()
        loss = (m(x) - target).square().sum()
        loss.backward()
        opt.step()
    assert torch.all(m.temperature < 1.0)
    fixed = SpatialSoftmax(temperature=1.0, learnable=False, return_cov=True)
    kp, cov = fixed(x)
    assert kp.shape == (8, 4, 2) and cov.shape == (8, 4, 2, 2) and len(list(fixed.parameters())) == 0


def test_module_nhwc_mask_and_yx():
    x = torch.randn(2, 5, 7, 3)  # NHWC
    mask = torch.ones(5, 7, dtype=torch.bool)
    mask[0, 0] = False
    m = SpatialSoftmax(layout="NHWC", order="yx")
    kp = m(x, mask=mask)
    ref = spatial_softmax(x.permute(0, 3, 1, 2).contiguous(), mask=mask)
    torch.testing.assert_close(kp, ref.flip(-1))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_tensors(dtype):
    x = (torch.randn(2, 3, 6, 5) * 2).to(dtype).requires_grad_()
    t = torch.tensor(0.9, requires_grad=True)
    kp = spatial_softmax(x, t)
    assert kp.dtype == torch.float32  # computed and returned in float32, like autocast's softmax
    torch.testing.assert_close(kp, plain_torch(x.detach().double(), t.detach().double()).float(), rtol=1e-5, atol=1e-6)
    kp.sum().backward()
    assert x.grad.dtype == dtype and t.grad is not None


def test_bad_temperature_raises():
    with pytest.raises(ValueError, match="temperature"):
        spatial_softmax(torch.randn(1, 2, 3, 3), torch.tensor(-1.0))
    with pytest.raises(ValueError, match="temperature"):
        SpatialSoftmax(temperature=0.0)


def test_torch_compile_fullgraph_no_graph_break():
    # The custom op has a fake kernel: dynamo keeps it in one graph (fullgraph=True would raise
    # on a graph break), and the compiled forward+backward agrees with eager.
    fn = torch.compile(
        lambda x, t: spatial_softmax(x, t, return_cov=True)[1].sum() + spatial_softmax(x, t).square().sum(),
        fullgraph=True,
    )
    x = torch.randn(2, 3, 6, 7, requires_grad=True)
    t = torch.tensor([0.8, 1.0, 1.5], requires_grad=True)
    loss = fn(x, t)
    loss.backward()
    x2, t2 = x.detach().clone().requires_grad_(), t.detach().clone().requires_grad_()
    loss2 = spatial_softmax(x2, t2, return_cov=True)[1].sum() + spatial_softmax(x2, t2).square().sum()
    loss2.backward()
    torch.testing.assert_close(loss, loss2)
    torch.testing.assert_close(x.grad, x2.grad)
    torch.testing.assert_close(t.grad, t2.grad)


def test_opcheck():
    # torch.library's own consistency checks of schema, fake kernel and autograd registration
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    t = torch.tensor(1.1, dtype=torch.float64, requires_grad=True)
    torch.library.opcheck(
        torch.ops.pygenmod.spatial_softmax_fwd.default, (x, t, None, "NCHW", "normalized", "xy", True, True)
    )
    torch.library.opcheck(
        torch.ops.pygenmod.spatial_softmax_fwd.default, (x, t, None, "NHWC", "pixel", "yx", False, False)
    )


def test_large_cpu_gradient_buffer_is_reused_only_when_released():
    """A large grad_x comes from pygenmod._recycle: reused once the previous gradient is
    released (x.grad = None), never while a gradient still refers to it."""
    import numpy as np

    from pygenmod import _recycle

    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((1, 4, 32, 64), dtype=np.float32) * 3).requires_grad_()  # 32 KB
    g = torch.from_numpy(rng.standard_normal((1, 4, 2), dtype=np.float32))
    big = torch.from_numpy(rng.standard_normal((16, 16, 64, 64), dtype=np.float32)).requires_grad_()  # 4 MB
    gb = torch.from_numpy(rng.standard_normal((16, 16, 2), dtype=np.float32))
    assert big.numel() * 4 >= _recycle.OUTPUT_MIN_BYTES > x.numel() * 4
    _recycle.clear()

    def grad(inp, up, scale=1.0):
        inp.grad = None
        spatial_softmax(inp, torch.tensor(scale)).backward(up)
        return inp.grad

    want = grad(big.detach().clone().requires_grad_(), gb).clone()  # a fresh process-like first call
    first = grad(big, gb)
    ptr = first.data_ptr()
    torch.testing.assert_close(first, want, rtol=0, atol=0)
    held = first  # still referenced: the next backward must not write into it
    copy = held.clone()
    second = grad(big, gb, 1.5)
    assert second.data_ptr() != ptr and torch.equal(held, copy)
    ptr2, want2 = second.data_ptr(), second.clone()
    del held, first, copy, second
    third = grad(big, gb, 1.5)  # `second`'s buffer was released with big.grad (set to None): reused
    assert third.data_ptr() in (ptr, ptr2)
    torch.testing.assert_close(third, want2, rtol=0, atol=0)
    kept = _recycle._count
    small = grad(x, g)  # below the size bound: an ordinary fresh array, not remembered
    assert _recycle._count == kept
    assert small.shape == x.shape
