"""Demo section: spatial softmax keypoints recover bright blobs at known positions."""

import numpy as np

import pygenmod
from pygenmod import spatial

TITLE = "Spatial softmax keypoints (pygenmod.spatial)"


def _blobs(rng, B, C, H, W, sigma=2.0, gain=12.0):
    """Feature maps with one Gaussian blob per (b, c) at a random sub-pixel position (row, col)."""
    rows = rng.uniform(3, H - 4, (B, C))
    cols = rng.uniform(3, W - 4, (B, C))
    i = np.arange(H)[:, None]
    j = np.arange(W)[None, :]
    d2 = (i - rows[..., None, None]) ** 2 + (j - cols[..., None, None]) ** 2
    x = gain * np.exp(-d2 / (2 * sigma**2)) + 0.05 * rng.standard_normal((B, C, H, W))
    return x.astype(np.float32), rows, cols


def run(report) -> None:
    rng = np.random.default_rng(0)
    B, C, H, W = 8, 16, 48, 64  # H != W on purpose
    x, rows, cols = _blobs(rng, B, C, H, W)
    report.line(f"  {B} images x {C} channels of {H}x{W} (H != W), one bright blob per channel;")
    report.line("  keypoints in pixel coordinates (x = column, y = row), temperature 1")
    with report.timed("forward, pixel coordinates"):
        res = spatial.spatial_softmax(x, 1.0, coords="pixel", return_cov=True)
    kp = res.keypoints
    shown = [(b, c) for b, c in [(0, 0), (0, 1), (3, 7), (7, 15)]]
    report.table(
        ("image", "channel", "true (col, row)", "recovered (x, y)", "std (x, y)"),
        [
            (
                b,
                c,
                f"({cols[b, c]:6.2f}, {rows[b, c]:6.2f})",
                f"({kp[b, c, 0]:6.2f}, {kp[b, c, 1]:6.2f})",
                f"({np.sqrt(res.cov[b, c, 0, 0]):.2f}, {np.sqrt(res.cov[b, c, 1, 1]):.2f})",
            )
            for b, c in shown
        ],
    )
    err = np.hypot(kp[..., 0] - cols, kp[..., 1] - rows)
    report.line(f"  all {B * C} blobs: mean error {err.mean():.3f} px, max {err.max():.3f} px")
    norm = spatial.spatial_softmax(x, 1.0)  # default: pixel centres on linspace(-1, 1)
    back = np.stack([(norm[..., 0] + 1) * (W - 1) / 2, (norm[..., 1] + 1) * (H - 1) / 2], -1)
    report.line(f"  normalized [-1, 1] keypoints mapped back to pixels agree to {np.abs(back - kp).max():.1e} px")
    # one gradient step on the temperature through the fused VJP
    g = kp - np.stack([cols, rows], -1)
    _, g_t = spatial.spatial_softmax_backward(x, 1.0, grad_keypoints=g.astype(np.float32), coords="pixel")
    report.line(f"  d(0.5 * squared error)/d(temperature) = {float(g_t):.3f} (fused backward)")
    rows_b = []
    kp0 = None
    for name, info in pygenmod.backends().items():
        if not info["available"] or name == "cuda":
            continue
        with pygenmod.use_backend(name):
            k2 = spatial.spatial_softmax(x, 1.0, coords="pixel")
        kp0 = k2 if kp0 is None else kp0
        rows_b.append((name, f"{np.abs(k2 - kp0).max():.1e}"))
    report.table(("backend", "max |diff| vs first"), rows_b)
