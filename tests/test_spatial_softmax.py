"""Spatial softmax keypoints: forward and VJP against a plain float64 NumPy reference, on every
backend; the written contract (order, grid, H != W, layouts, mask, temperature); bad input."""

import numpy as np
import pytest
import reference as oracle
from conftest import run_python, tol
from hypothesis import given, settings
from hypothesis import strategies as st

from pygenmod import spatial

# ----------------------------------------------------------------------------- reference


def to_nhwc(a):
    return np.ascontiguousarray(np.asarray(a).transpose(0, 2, 3, 1))


# ----------------------------------------------------------------------------- forward
@pytest.mark.parametrize(
    "shape",
    [
        (1, 1, 1, 1),
        (2, 3, 5, 7),
        (1, 2, 7, 3),
        (3, 1, 1, 13),
        (2, 4, 17, 1),
        (1, 3, 31, 37),
        (1, 2, 3, 1500),
        (0, 3, 4, 4),
        (2, 0, 4, 4),
    ],
)
def test_forward_matches_reference(backend, dtype, rng, shape):
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    t = rng.uniform(0.3, 3.0, shape[1])
    res = spatial.spatial_softmax(
        backend.asarray(x), backend.asarray(t.astype(dtype)), return_cov=True, return_maps=True
    )
    kp, cov, maps = oracle.spatial_softmax(x, t)
    for got, want in ((res.keypoints, kp), (res.cov, cov), (res.maps, maps)):
        got = backend.numpy(got)
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, **tol(dtype))


@pytest.mark.parametrize("coords", ["normalized", "pixel"])
@pytest.mark.parametrize("order", ["xy", "yx"])
def test_contract_order_and_grid(backend, coords, order):
    # One hot pixel at row 2, column 6 of a 5 x 9 map (H != W): the keypoint is its centre.
    H, W = 5, 9
    x = np.zeros((1, 1, H, W))
    x[0, 0, 2, 6] = 1e3
    kp = backend.numpy(spatial.spatial_softmax(backend.asarray(x), coords=coords, order=order))[0, 0]
    col, row = (-1 + 2 * 6 / (W - 1), -1 + 2 * 2 / (H - 1)) if coords == "normalized" else (6.0, 2.0)
    want = (col, row) if order == "xy" else (row, col)
    np.testing.assert_allclose(kp, want, atol=1e-12)


def test_contract_corners_and_uniform(backend):
    # First pixel centre at -1, last at +1 (a linspace); a uniform map averages to the centre 0.
    x = np.zeros((1, 3, 4, 6))
    x[0, 0, 0, 0] = 1e3
    x[0, 1, -1, -1] = 1e3
    res = spatial.spatial_softmax(backend.asarray(x), return_cov=True)
    kp, cov = backend.numpy(res.keypoints), backend.numpy(res.cov)
    np.testing.assert_allclose(kp[0, 0], [-1, -1], atol=1e-12)
    np.testing.assert_allclose(kp[0, 1], [1, 1], atol=1e-12)
    np.testing.assert_allclose(kp[0, 2], [0, 0], atol=1e-12)
    # uniform over a linspace(-1, 1, n): variance = mean(u^2)
    np.testing.assert_allclose(
        cov[0, 2], np.diag([np.mean(oracle.spatial_grid(6) ** 2), np.mean(oracle.spatial_grid(4) ** 2)]), atol=1e-12
    )


def test_single_pixel_map_is_centre(backend, dtype):
    x = np.full((2, 3, 1, 1), 5.0, dtype)
    kp = backend.numpy(spatial.spatial_softmax(backend.asarray(x)))
    np.testing.assert_array_equal(kp, 0)
    kp = backend.numpy(spatial.spatial_softmax(backend.asarray(x), coords="pixel"))
    np.testing.assert_array_equal(kp, 0)


def test_nhwc_equals_nchw(backend, dtype, rng):
    x = (rng.standard_normal((2, 70, 6, 11)) * 2).astype(dtype)  # C > one channel tile
    t = rng.uniform(0.5, 2, 70).astype(dtype)
    a = spatial.spatial_softmax(backend.asarray(x), backend.asarray(t), return_cov=True, return_maps=True)
    b = spatial.spatial_softmax(
        backend.asarray(to_nhwc(x)), backend.asarray(t), layout="NHWC", return_cov=True, return_maps=True
    )
    np.testing.assert_allclose(backend.numpy(b.keypoints), backend.numpy(a.keypoints), **tol(dtype))
    np.testing.assert_allclose(backend.numpy(b.cov), backend.numpy(a.cov), **tol(dtype))
    np.testing.assert_allclose(backend.numpy(b.maps), to_nhwc(backend.numpy(a.maps)), **tol(dtype))


def test_stable_for_large_logits_and_small_temperature(backend, dtype, rng):
    x = (rng.standard_normal((2, 3, 8, 8)) * 1e4).astype(dtype)  # exp would overflow without max-subtraction
    kp = backend.numpy(spatial.spatial_softmax(backend.asarray(x), 1e-2))
    np.testing.assert_allclose(kp, oracle.spatial_softmax(x, 1e-2)[0], **tol(dtype))


@pytest.mark.parametrize("rise", [10.0, 1e3, 1e30])
def test_max_rising_late_in_the_map(backend, dtype, rng, rise):
    # The compiled forward streams a map in chunks of rows against a lagging reference max;
    # a maximum that appears late (and far above the first rows) must still be exact.
    x = rng.standard_normal((1, 2, 700, 8)).astype(dtype)
    x[0, 0, 650, 3] = rise
    x[0, 1, 300:, :] += np.asarray(rise, dtype) / 10
    res = spatial.spatial_softmax(backend.asarray(x), return_cov=True, return_maps=True)
    kp, cov, maps = oracle.spatial_softmax(x)
    np.testing.assert_allclose(backend.numpy(res.keypoints), kp, **tol(dtype))
    np.testing.assert_allclose(backend.numpy(res.cov), cov, **tol(dtype))
    np.testing.assert_allclose(backend.numpy(res.maps), maps, **tol(dtype))
    g = rng.standard_normal((1, 2, 2))
    gx, gt = spatial.spatial_softmax_backward(backend.asarray(x), 1.0, grad_keypoints=backend.asarray(g.astype(dtype)))
    gx_ref, gt_ref = oracle.spatial_softmax_vjp(x, 1.0, g)
    np.testing.assert_allclose(backend.numpy(gx), gx_ref, **tol(dtype))


def test_large_map_512(backend, rng):
    x = rng.standard_normal((1, 2, 512, 512)).astype(np.float32) * 4
    res = spatial.spatial_softmax(backend.asarray(x), 0.5, return_cov=True)
    kp, cov, _ = oracle.spatial_softmax(x, 0.5)
    np.testing.assert_allclose(backend.numpy(res.keypoints), kp, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(backend.numpy(res.cov), cov, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("C", [5, 40])
def test_small_batch_large_maps(backend, dtype, rng, layout, C):
    # B = 1, 96 x 100 maps: on CUDA each map (NHWC: each group of 32 channels) is split into
    # pixel slices, one block each, merged in slice order (docs/gpu.md); forward, maps, mask
    # and every gradient against the reference, and the same call twice is bitwise equal
    B, H, W = 1, 96, 100
    if backend.name == "cuda":
        from pygenmod import _cuda_spatial

        assert _cuda_spatial.splits(B, C, H, W, layout == "NHWC") > 1
    x = (rng.standard_normal((B, C, H, W)) * 3).astype(dtype)
    x[0, 0, -1, -1] = 40.0  # the max in the last slice: the merge rescales the earlier ones
    t = rng.uniform(0.5, 2.0, C)
    m = rng.random((B, C, H, W)) < 0.8
    m[..., 0, 0] = m[0, 0, -1, -1] = True
    g_kp, g_cov = rng.standard_normal((B, C, 2)), rng.standard_normal((B, C, 2, 2))
    g_maps = rng.standard_normal((B, C, H, W))
    lay = to_nhwc if layout == "NHWC" else np.ascontiguousarray
    A = backend.asarray
    args = (A(lay(x)), A(t.astype(dtype)))
    kw = dict(layout=layout, mask=A(lay(m)))

    def forward():
        return spatial.spatial_softmax(*args, **kw, return_cov=True, return_maps=True)

    res = forward()
    kp, cov, maps = oracle.spatial_softmax(x, t, mask=m)
    got_maps = backend.numpy(res.maps)
    got_maps = got_maps.transpose(0, 3, 1, 2) if layout == "NHWC" else got_maps
    for got, want in ((backend.numpy(res.keypoints), kp), (backend.numpy(res.cov), cov), (got_maps, maps)):
        np.testing.assert_allclose(got, want, **tol(dtype))
    np.testing.assert_array_equal(backend.numpy(forward().keypoints), backend.numpy(res.keypoints))
    gx, gt = spatial.spatial_softmax_backward(
        *args,
        **kw,
        grad_keypoints=A(g_kp.astype(dtype)),
        grad_cov=A(g_cov.astype(dtype)),
        grad_maps=A(lay(g_maps).astype(dtype)),
    )
    gx = backend.numpy(gx)
    gx = gx.transpose(0, 3, 1, 2) if layout == "NHWC" else gx
    gx_ref, gt_ref = oracle.spatial_softmax_vjp(x, t, g_kp, g_cov, g_maps, mask=m)
    t32 = dict(rtol=1e-3, atol=1e-4) if dtype == np.float32 else tol(dtype)
    np.testing.assert_allclose(gx, gx_ref, **t32)
    np.testing.assert_allclose(backend.numpy(gt), gt_ref, **t32)


@pytest.mark.parametrize("mask_kind", ["hw", "bhw", "bchw", "b1hw"])
def test_mask(backend, dtype, rng, mask_kind):
    B, C, H, W = 2, 3, 6, 5
    x = rng.standard_normal((B, C, H, W)).astype(dtype)
    shape = {"hw": (H, W), "bhw": (B, H, W), "bchw": (B, C, H, W), "b1hw": (B, 1, H, W)}[mask_kind]
    m = rng.random(shape) < 0.6
    m.reshape(-1, H * W)[:, 0] = True  # every map keeps a valid pixel
    full = m if m.ndim == 4 else (m[:, None] if m.ndim == 3 else m[None, None])
    res = spatial.spatial_softmax(backend.asarray(x), mask=backend.asarray(m), return_cov=True, return_maps=True)
    kp, cov, maps = oracle.spatial_softmax(x, 1.0, mask=full)
    np.testing.assert_allclose(backend.numpy(res.keypoints), kp, **tol(dtype))
    np.testing.assert_allclose(backend.numpy(res.cov), cov, **tol(dtype))
    np.testing.assert_allclose(backend.numpy(res.maps), maps, **tol(dtype))
    # the same mask through the NHWC path
    mn = m if m.ndim < 4 else to_nhwc(m)
    res2 = spatial.spatial_softmax(backend.asarray(to_nhwc(x)), layout="NHWC", mask=backend.asarray(mn))
    np.testing.assert_allclose(backend.numpy(res2), kp, **tol(dtype))


def test_float16_input_accumulates_in_float32(backend, rng):
    x = (rng.standard_normal((2, 3, 9, 7)) * 3).astype(np.float16)
    res = spatial.spatial_softmax(backend.asarray(x), 0.8, return_maps=True)
    assert backend.numpy(res.keypoints).dtype == np.float32
    kp, _, maps = oracle.spatial_softmax(x.astype(np.float64), 0.8)
    np.testing.assert_allclose(backend.numpy(res.keypoints), kp, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(backend.numpy(res.maps), maps, rtol=1e-5, atol=1e-6)
    gx, gt = spatial.spatial_softmax_backward(
        backend.asarray(x), 0.8, grad_keypoints=backend.asarray(np.ones((2, 3, 2), np.float32))
    )
    assert backend.numpy(gx).dtype == np.float16


def test_bfloat16_input_accumulates_in_float32(backend, rng):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    if backend.name == "cuda":
        pytest.skip("CuPy has no bfloat16 arrays (pygenmod.torch widens CUDA bfloat16 tensors)")
    x = (rng.standard_normal((2, 3, 9, 7)) * 3).astype(ml_dtypes.bfloat16)
    res = spatial.spatial_softmax(x, 0.8, return_maps=True)
    assert res.keypoints.dtype == np.float32
    kp, _, maps = oracle.spatial_softmax(x.astype(np.float64), 0.8)
    np.testing.assert_allclose(res.keypoints, kp, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(res.maps, maps, rtol=1e-5, atol=1e-6)
    gx, gt = spatial.spatial_softmax_backward(x, 0.8, grad_keypoints=np.ones((2, 3, 2), np.float32))
    assert gx.dtype == x.dtype
    gx_ref, _ = oracle.spatial_softmax_vjp(x.astype(np.float64), 0.8, np.ones((2, 3, 2)))
    np.testing.assert_allclose(gx.astype(np.float64), gx_ref, rtol=1e-2, atol=1e-3)  # rounded to bfloat16


def test_float16_special_values_in_loads(rng):
    # the C++ half loader: subnormals, large values (inf is rejected below)
    x = np.array([6e-8, 1e-5, 6.1e-5, 1.0, 65504.0, -65504.0], np.float16).reshape(1, 1, 2, 3)
    res = spatial.spatial_softmax(x, 1e5, return_maps=True)
    np.testing.assert_allclose(res.maps, oracle.spatial_softmax(x.astype(np.float64), 1e5)[2], rtol=1e-6)


# ----------------------------------------------------------------------------- backward
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("which", ["kp", "kp+cov", "kp+cov+maps"])
def test_vjp_matches_reference(backend, dtype, rng, layout, per_channel, which):
    B, C, H, W = 2, 3, 5, 8
    x = (rng.standard_normal((B, C, H, W)) * 2).astype(dtype)
    t = rng.uniform(0.5, 2.0, C) if per_channel else 1.3
    g_kp = rng.standard_normal((B, C, 2))
    g_cov = rng.standard_normal((B, C, 2, 2)) if "cov" in which else None
    g_maps = rng.standard_normal((B, C, H, W)) if "maps" in which else None
    gx_ref, gt_ref = oracle.spatial_softmax_vjp(x, t, g_kp, g_cov, g_maps)
    xin, gm = (x, g_maps) if layout == "NCHW" else (to_nhwc(x), None if g_maps is None else to_nhwc(g_maps))
    A = backend.asarray
    tin = A(np.asarray(t, dtype)) if per_channel else t
    gx, gt = spatial.spatial_softmax_backward(
        A(xin),
        tin,
        grad_keypoints=A(g_kp.astype(dtype)),
        grad_cov=None if g_cov is None else A(g_cov.astype(dtype)),
        grad_maps=None if gm is None else A(gm.astype(dtype)),
        layout=layout,
    )
    gx, gt = backend.numpy(gx), backend.numpy(gt)
    if layout == "NHWC":
        gx = gx.transpose(0, 3, 1, 2)
    assert gx.dtype == dtype and gt.shape == ((C,) if per_channel else ())
    t32 = dict(rtol=1e-3, atol=1e-4) if dtype == np.float32 else tol(dtype)
    np.testing.assert_allclose(gx, gx_ref, **t32)
    np.testing.assert_allclose(gt, gt_ref if per_channel else gt_ref.sum(), **t32)


def test_vjp_with_saved_forward_and_order_yx(backend, rng):
    x = rng.standard_normal((2, 2, 4, 6))
    g_kp = rng.standard_normal((2, 2, 2))
    g_cov = rng.standard_normal((2, 2, 2, 2))
    saved = spatial.spatial_softmax_forward(backend.asarray(x), 0.7, order="yx", return_cov=True)
    gx, gt = spatial.spatial_softmax_backward(
        backend.asarray(x),
        0.7,
        grad_keypoints=backend.asarray(g_kp),
        grad_cov=backend.asarray(g_cov),
        saved=saved,
        order="yx",
    )
    # the yx gradients are the xy gradients with the axes swapped
    gx_ref, gt_ref = oracle.spatial_softmax_vjp(x, 0.7, g_kp[..., ::-1], g_cov[..., ::-1, ::-1])
    np.testing.assert_allclose(backend.numpy(gx), gx_ref, **tol(np.float64))
    np.testing.assert_allclose(backend.numpy(gt), gt_ref.sum(), **tol(np.float64))


def test_vjp_out_buffer(backend, dtype, rng):
    x = rng.standard_normal((2, 3, 4, 5)).astype(dtype)
    g = rng.standard_normal((2, 3, 2)).astype(dtype)
    out = backend.asarray(np.full(x.shape, np.nan, dtype))
    gx, gt = spatial.spatial_softmax_backward(backend.asarray(x), 1.2, grad_keypoints=backend.asarray(g), out=out)
    assert gx is out
    np.testing.assert_allclose(backend.numpy(out), oracle.spatial_softmax_vjp(x, 1.2, g)[0], **tol(dtype))
    with pytest.raises(ValueError, match="out"):
        spatial.spatial_softmax_backward(
            backend.asarray(x),
            1.2,
            grad_keypoints=backend.asarray(g),
            out=backend.asarray(np.zeros((2, 3, 4, 4), dtype)),
        )
    with pytest.raises(ValueError, match="out"):
        spatial.spatial_softmax_backward(
            backend.asarray(x),
            1.2,
            grad_keypoints=backend.asarray(g),
            out=backend.asarray(np.zeros(x.shape, np.float16)),
        )


def test_vjp_masked_pixels_get_zero_gradient(backend, rng):
    x = rng.standard_normal((1, 2, 4, 4))
    m = np.ones((4, 4), bool)
    m[1:3, 1:3] = False
    gx, _ = spatial.spatial_softmax_backward(
        backend.asarray(x), 1.0, grad_keypoints=backend.asarray(rng.standard_normal((1, 2, 2))), mask=backend.asarray(m)
    )
    gx = backend.numpy(gx)
    assert np.all(gx[:, :, 1:3, 1:3] == 0)
    assert np.abs(gx).sum() > 0


def test_vjp_finite_differences(rng):
    # Independent of the analytic reference: central differences of a scalar loss.
    x = rng.standard_normal((1, 2, 3, 4))
    t = np.array([0.8, 1.7])
    g_kp, g_cov = rng.standard_normal((1, 2, 2)), rng.standard_normal((1, 2, 2, 2))

    def loss(x, t):
        r = spatial.spatial_softmax(x, t, return_cov=True)
        return (r.keypoints * g_kp).sum() + (r.cov * g_cov).sum()

    gx, gt = spatial.spatial_softmax_backward(x, t, grad_keypoints=g_kp, grad_cov=g_cov)
    h = 1e-6
    for idx in [(0, 0, 0, 0), (0, 1, 2, 3), (0, 0, 1, 2)]:
        e = np.zeros_like(x)
        e[idx] = h
        np.testing.assert_allclose(gx[idx], (loss(x + e, t) - loss(x - e, t)) / (2 * h), rtol=1e-5, atol=1e-8)
    for c in range(2):
        e = np.zeros(2)
        e[c] = h
        np.testing.assert_allclose(gt[c], (loss(x, t + e) - loss(x, t - e)) / (2 * h), rtol=1e-5, atol=1e-8)


# ----------------------------------------------------------------------------- bad input
def test_bad_input_rejected():
    x = np.zeros((2, 3, 4, 5))
    with pytest.raises(ValueError, match="temperature"):
        spatial.spatial_softmax(x, 0.0)
    with pytest.raises(ValueError, match="temperature"):
        spatial.spatial_softmax(x, -1.0)
    with pytest.raises(ValueError, match="temperature"):
        spatial.spatial_softmax(x, np.nan)
    with pytest.raises(ValueError, match="temperature"):
        spatial.spatial_softmax(x, np.ones(4))
    with pytest.raises(ValueError, match="x"):
        spatial.spatial_softmax(np.zeros((3, 4, 5)))
    with pytest.raises(ValueError, match="x"):
        spatial.spatial_softmax(np.zeros((1, 1, 0, 4)))
    with pytest.raises(TypeError, match="x"):
        spatial.spatial_softmax(np.zeros((1, 1, 2, 2), np.int32))
    with pytest.raises(TypeError, match="x"):
        spatial.spatial_softmax(np.zeros((1, 1, 2, 2), np.complex128))
    with pytest.raises(ValueError, match="layout"):
        spatial.spatial_softmax(x, layout="CHWN")
    with pytest.raises(ValueError, match="coords"):
        spatial.spatial_softmax(x, coords="edges")
    with pytest.raises(ValueError, match="order"):
        spatial.spatial_softmax(x, order="rc")
    with pytest.raises(ValueError, match="mask"):
        spatial.spatial_softmax(x, mask=np.ones((5, 4), bool))
    with pytest.raises(ValueError, match="mask"):
        spatial.spatial_softmax(x, mask=np.zeros((4, 5), bool))  # a map with no valid pixel
    with pytest.raises(TypeError, match="mask"):
        spatial.spatial_softmax(x, mask=np.ones((4, 5)))
    with pytest.raises(ValueError, match="grad_keypoints"):
        spatial.spatial_softmax_backward(x, 1.0, grad_keypoints=np.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match="grad_cov"):
        spatial.spatial_softmax_backward(x, 1.0, grad_keypoints=np.zeros((2, 3, 2)), grad_cov=np.zeros((2, 3, 2)))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_input_rejected(backend, dtype, bad):
    x = np.zeros((2, 3, 4, 5), dtype)
    x[1, 2, 3, 1] = bad
    with pytest.raises(ValueError, match=r"x: NaN or \+infinity.*b=1, c=2"):
        spatial.spatial_softmax(backend.asarray(x))


def test_minus_infinity_is_probability_zero(backend, dtype, rng):
    x = rng.standard_normal((2, 3, 4, 5)).astype(dtype)
    x[1, 2, 3, 1] = -np.inf
    m = np.ones(x.shape, bool)
    m[1, 2, 3, 1] = False
    res = spatial.spatial_softmax(backend.asarray(x), return_maps=True)
    assert backend.numpy(res.maps)[1, 2, 3, 1] == 0
    np.testing.assert_allclose(
        backend.numpy(res.keypoints), oracle.spatial_softmax(np.where(m, x, 0), mask=m)[0], **tol(dtype)
    )
    x[0, 1] = -np.inf  # a whole map of -inf has no softmax
    with pytest.raises(ValueError, match="b=0, c=1"):
        spatial.spatial_softmax(backend.asarray(x))


def test_overflowing_logits_rejected():
    x = np.full((1, 1, 2, 2), 3e38, np.float32)
    with pytest.raises(ValueError, match="x"):
        spatial.spatial_softmax(x, 1e-3)


# ----------------------------------------------------------------------------- CPU clones
_ISA_SCRIPT = """
import numpy as np, pygenmod
from pygenmod import spatial
rng = np.random.default_rng(5)
out = {}
for dt in (np.float32, np.float64):
    x = (rng.standard_normal((2, 70, 9, 37)) * 3).astype(dt)
    t = rng.uniform(0.5, 2, 70).astype(dt)
    m = rng.random((2, 1, 9, 37)) < 0.7
    m[..., 0, 0] = True
    g = rng.standard_normal((2, 70, 2)).astype(dt)
    for lay, xx, mm in (("NCHW", x, m), ("NHWC", np.ascontiguousarray(x.transpose(0, 2, 3, 1)),
                                          np.ascontiguousarray(m.transpose(0, 2, 3, 1)))):
        with pygenmod.use_backend("cpu"):
            r = spatial.spatial_softmax(xx, t, layout=lay, mask=mm, return_cov=True, return_maps=True)
            gx, gt = spatial.spatial_softmax_backward(xx, t, grad_keypoints=g, layout=lay, mask=mm)
        for k, v in dict(kp=r.keypoints, cov=r.cov, maps=r.maps, gx=gx, gt=gt).items():
            out[f"{dt.__name__}-{lay}-{k}"] = v
np.savez(OUT, **out)
"""


def test_cpu_isa_clones_agree(tmp_path):
    # The compiled CPU kernels pick an AVX-512, AVX2 or baseline clone at run time; run each
    # (capped through $PYGENMOD_CPU_ISA, in a fresh process) and compare.
    import os

    if not pygenmod_backend_available("cpu"):
        pytest.skip("compiled CPU backend unavailable")
    results = {}
    for isa in ("baseline", "avx2", "avx512"):
        out = tmp_path / f"{isa}.npz"
        env = dict(os.environ, PYGENMOD_CPU_ISA=isa)
        run_python(["-c", f"OUT = {str(out)!r}\n" + _ISA_SCRIPT], env=env, check=True)
        results[isa] = dict(np.load(out))
    for key, ref in results["baseline"].items():
        for isa in ("avx2", "avx512"):
            t = tol(np.float32) if key.startswith("float32") else tol(np.float64)
            np.testing.assert_allclose(results[isa][key], ref, err_msg=f"{isa} {key}", **t)


def pygenmod_backend_available(name):
    import pygenmod

    return pygenmod.backends()[name]["available"]


# ----------------------------------------------------------------------------- fuzz of the C++ boundary
@settings(max_examples=40, deadline=None)
@given(
    B=st.integers(0, 3),
    C=st.integers(0, 5),
    H=st.integers(1, 9),
    W=st.integers(1, 40),
    layout=st.sampled_from(["NCHW", "NHWC"]),
    f32=st.booleans(),
    scale=st.floats(0.01, 100),
    seed=st.integers(0, 2**31 - 1),
    masked=st.booleans(),
)
def test_fuzz_against_reference(B, C, H, W, layout, f32, scale, seed, masked):
    rng = np.random.default_rng(seed)
    dtype = np.float32 if f32 else np.float64
    x = (rng.standard_normal((B, C, H, W)) * scale).astype(dtype)
    t = rng.uniform(0.2, 5.0, C)
    m = None
    if masked:
        m = rng.random((B, C, H, W)) < 0.5
        m.reshape(-1, H * W)[:, -1] = True
    xin = x if layout == "NCHW" else to_nhwc(x)
    min_ = None if m is None else (m if layout == "NCHW" else to_nhwc(m))
    res = spatial.spatial_softmax(xin, t.astype(dtype), layout=layout, mask=min_, return_cov=True)
    kp, cov, _ = oracle.spatial_softmax(x, t, mask=m)
    loose = dict(rtol=1e-3, atol=1e-4) if f32 else dict(rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(res.keypoints, kp, **loose)
    np.testing.assert_allclose(res.cov, cov, **loose)
    g = rng.standard_normal((B, C, 2))
    gx, gt = spatial.spatial_softmax_backward(
        xin, t.astype(dtype), grad_keypoints=g.astype(dtype), layout=layout, mask=min_
    )
    gx_ref, gt_ref = oracle.spatial_softmax_vjp(x, t, g, mask=m)
    gx = gx if layout == "NCHW" else gx.transpose(0, 3, 1, 2)
    np.testing.assert_allclose(
        gx, gx_ref, rtol=1e-3 if f32 else 1e-7, atol=(1e-3 if f32 else 1e-9) * (1 + 1 / t.min(initial=1.0))
    )
