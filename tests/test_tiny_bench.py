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
