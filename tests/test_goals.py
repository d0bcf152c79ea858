"""pygenmod.goals: Goal-GAN's indicator reward, per-goal returns and labels against a plain
NumPy reference; RIG's latent Mahalanobis reward against SciPy / NumPy."""

import numpy as np
import pytest

from pygenmod import adversarial, goals


def ref_hits(states, g, eps, dims):
    """Loop reference: hits[..., r, t] = ||s[..., r, t, dims] - g|| < eps."""
    out = np.zeros(states.shape[:-1], bool)
    for idx in np.ndindex(states.shape[:-1]):
        f = states[idx][dims] if dims is not None else states[idx]
        out[idx] = np.linalg.norm(f - g[idx[:-2]]) < eps
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dims", [None, [0, 2], slice(1, 3)])
def test_goal_reward_success_returns(rng, dtype, dims):
    G, R, T, S = 5, 4, 7, 3
    states = rng.uniform(-1, 1, (G, R, T, S)).astype(dtype)
    D = S if dims is None else 2
    g = rng.uniform(-1, 1, (G, D)).astype(dtype)
    eps = 0.6
    hits = ref_hits(states, g, eps, dims)
    r = goals.goal_reward(states, g, epsilon=eps, dims=dims)
    assert r.dtype == dtype and r.shape == (G, R, T)
    np.testing.assert_array_equal(r, hits)
    np.testing.assert_array_equal(goals.goal_success(states, g, epsilon=eps, dims=dims), hits.any(-1))
    ret = goals.goal_returns(states, g, epsilon=eps, dims=dims)
    np.testing.assert_allclose(ret, hits.any(-1).mean(-1))
    lab = goals.goal_labels(states, g, epsilon=eps, dims=dims, r_min=0.25, r_max=0.75)
    np.testing.assert_array_equal(lab.returns, ret)
    np.testing.assert_array_equal(lab.labels, adversarial.label_goals(ret, 0.25, 0.75))


def test_strict_threshold_mask_and_batch_axes():
    states = np.zeros((2, 3, 1, 2, 2))  # (2, 3) goals, 1 rollout, 2 steps
    states[..., 1, 0] = 1.0  # step 1 sits exactly at distance 1 from the goal at 0
    g = np.zeros((2, 3, 2))
    r = goals.goal_reward(states, g, epsilon=1.0)
    np.testing.assert_array_equal(r[..., 0, :], np.broadcast_to([1.0, 0.0], (2, 3, 2)))  # strict <
    mask = np.ones((2, 3, 1, 2), bool)
    mask[..., 0] = False
    np.testing.assert_array_equal(goals.goal_returns(states, g, epsilon=1.0, mask=mask), 0)
    np.testing.assert_array_equal(goals.goal_returns(states, g, epsilon=1.5, mask=mask), 1)


def test_labels_feed_the_lsgan_loss(rng):
    states = rng.uniform(-1, 1, (6, 8, 5, 2))
    g = rng.uniform(-1, 1, (6, 2))
    lab = goals.goal_labels(states, g, epsilon=0.5)
    d_real, d_fake = rng.standard_normal(6), rng.standard_normal(6)
    out = adversarial.lsgan_discriminator_loss(d_real, d_fake, labels=lab.labels)
    y = lab.labels
    want = (y * (d_real - 1) ** 2 + (1 - y) * (d_real + 1) ** 2).mean() + ((d_fake + 1) ** 2).mean()
    np.testing.assert_allclose(out.loss, want)


def test_goal_errors():
    s, g = np.zeros((2, 3, 4, 2)), np.zeros((2, 2))
    with pytest.raises(ValueError, match="epsilon"):
        goals.goal_reward(s, g, epsilon=0)
    with pytest.raises(ValueError, match="epsilon"):
        goals.goal_reward(s, g, epsilon=np.inf)
    with pytest.raises(ValueError, match="goals: expected D = 2"):
        goals.goal_reward(s, np.zeros((2, 3)), epsilon=1)
    with pytest.raises(ValueError, match="goals: leading axes"):
        goals.goal_reward(s, np.zeros((3, 2)), epsilon=1)
    with pytest.raises(ValueError, match="states: expected shape"):
        goals.goal_reward(np.zeros((3, 2)), g, epsilon=1)
    with pytest.raises(ValueError, match="dims: indices"):
        goals.goal_reward(s, g, epsilon=1, dims=[0, 5])
    with pytest.raises(TypeError, match="dims"):
        goals.goal_reward(s, g, epsilon=1, dims=[0.5])
    with pytest.raises(ValueError, match="mask: expected shape"):
        goals.goal_reward(s, g, epsilon=1, mask=np.ones((2, 3), bool))
    with pytest.raises(ValueError, match="states: contains NaN"):
        goals.goal_reward(np.full((2, 3, 4, 2), np.nan), g, epsilon=1)
    with pytest.raises(ValueError, match="R = 0"):
        goals.goal_returns(np.zeros((2, 0, 4, 2)), g, epsilon=1)


# ------------------------------------------------------------------------------ RIG
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rig_reward(backend, rng, dtype):  # (the triangular solve behind it runs on every backend)
    B, D = 6, 4
    z, zg = rng.standard_normal((2, B, D)).astype(dtype)
    A = rng.standard_normal((B, D, D))
    cov = A @ A.transpose(0, 2, 1) + D * np.eye(D)
    L = np.linalg.cholesky(cov).astype(dtype)
    diff = (z - zg).astype(np.float64)
    want = -np.sqrt(np.einsum("bi,bij,bj->b", diff, np.linalg.inv(cov), diff))
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10)
    B_ = backend.asarray
    got = backend.numpy(goals.rig_reward(B_(z), B_(zg), B_(L)))
    assert got.dtype == dtype
    np.testing.assert_allclose(got, want, **tol)
    np.testing.assert_allclose(backend.numpy(goals.rig_reward(B_(z), B_(zg), B_(L), squared=True)), -(want**2), **tol)
    np.testing.assert_allclose(backend.numpy(goals.rig_reward(B_(z), B_(zg))), -np.linalg.norm(diff, axis=-1), **tol)
    P = np.linalg.cholesky(np.linalg.inv(cov)).astype(dtype)  # precision factor
    np.testing.assert_allclose(backend.numpy(goals.rig_reward(B_(z), B_(zg), precision_tril=B_(P))), want, **tol)
    np.testing.assert_array_equal(backend.numpy(goals.rig_reward(B_(zg), B_(zg), B_(L))), 0)


def test_rig_posterior_reward_is_goal_log_likelihood(rng):
    from scipy.stats import multivariate_normal

    B, D = 5, 3
    mu, zg = rng.standard_normal((2, B, D))
    logvar = rng.standard_normal((B, D))
    got = goals.rig_posterior_reward(mu, zg, logvar=logvar, squared=True)
    for b in range(B):
        cov = np.diag(np.exp(logvar[b]))
        lp = multivariate_normal(mu[b], cov).logpdf(zg[b])
        const = 0.5 * np.linalg.slogdet(2 * np.pi * cov)[1]
        np.testing.assert_allclose(got[b] / 2, lp + const, rtol=1e-10)
    L = np.linalg.cholesky(np.einsum("bi,ij->bij", np.exp(logvar), np.eye(D)))
    np.testing.assert_allclose(goals.rig_posterior_reward(mu, zg, L), goals.rig_posterior_reward(mu, zg, logvar=logvar))
    with pytest.raises(TypeError, match="exactly one"):
        goals.rig_posterior_reward(mu, zg)


def test_goal_gan_example_runs(tmp_path):
    import pathlib

    from conftest import run_python

    script = pathlib.Path(__file__).resolve().parents[1] / "examples" / "goal_gan_point.py"
    r = run_python(
        [str(script), "--iters", "3", "--goals", "8", "--rollouts", "2", "--gan-steps", "2"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert "intermediate" in r.stdout and r.stdout.count("\n") >= 4
