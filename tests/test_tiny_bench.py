"""The NumPy baselines of the W8 tiny-call rows compute what pygenmod computes (a row that
timed a different computation would say nothing), and every W8 row builds and runs."""

import numpy as np
import pytest

from pygenmod import adversarial, sampling
from pygenmod.benchmarks import tiny
from pygenmod.benchmarks.runner import Missing


def test_kl_logprob_baseline_matches(rng):
    mu, lv, x = rng.standard_normal((3, 7)), 0.3 * rng.standard_normal((3, 7)), rng.standard_normal((3, 7))
    kl, lp = tiny.numpy_kl_logprob(mu, lv, x)
    np.testing.assert_allclose(kl, sampling.kl_normal(mu, lv), rtol=1e-12)
    np.testing.assert_allclose(lp, sampling.normal_log_prob(x, mu, lv), rtol=1e-12)


def test_gan_baseline_matches(rng):
    r, f = 3 * rng.standard_normal((2, 9)), 3 * rng.standard_normal((2, 5))
    loss, g_r, g_f = tiny.numpy_gan_discriminator_loss(r, f)
    out = adversarial.gan_discriminator_loss(r, f)
    np.testing.assert_allclose(out.loss, loss, rtol=1e-12)
    np.testing.assert_allclose(out.grad, g_r, rtol=1e-12)
    np.testing.assert_allclose(out.grad_other, g_f, rtol=1e-12)


@pytest.mark.parametrize("w", tiny.workloads(quick=True), ids=lambda w: w.id)
def test_tiny_rows_run(w):
    for c in w.candidates:
        try:
            run = c.setup()
        except Missing:  # a peer that is not installed
            continue
        run()


# The size sweep (bench/tiny_sweep.py) compares each function with a NumPy expression: every
# deterministic pair must compute the same thing (the random draws differ by construction; a
# baseline may leave out trailing outputs that pygenmod also returns, e.g. the temperature's
# gradient of spatial_softmax_backward).
_SWEEP_RANDOM = {
    "sampling.rsample_normal",
    "sampling.normal_head",
    "sampling.rsample_mvn",
    "sampling.mvn_head",
    "sampling.gumbel_softmax",
    "random.normal",
}


def _sweep_module():
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[1] / "bench" / "tiny_sweep.py"
    if not path.exists():
        pytest.skip("bench/tiny_sweep.py is not in this checkout")
    spec = importlib.util.spec_from_file_location("tiny_sweep", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _leaves(r):
    if isinstance(r, tuple):
        return [x for v in r if v is not None for x in _leaves(v)]
    return [np.asarray(r, dtype=float)]


@pytest.mark.parametrize("n", [4, 64])
def test_size_sweep_baselines_match(n):
    sweep = _sweep_module()
    for name, (ours, plain) in sweep.cases(D=n, K=n, T=n, D_full=min(n, 128)).items():
        if name in _SWEEP_RANDOM:
            continue
        a, b = _leaves(ours()), _leaves(plain())
        assert 1 <= len(b) <= len(a), name
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-9, err_msg=name)
