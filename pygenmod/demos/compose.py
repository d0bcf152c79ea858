"""Demo section: compositions of the kernels (CEM, adversarial goal labelling)."""

import numpy as np

from pygenmod import adversarial, cem

TITLE = "Compositions: cross-entropy method and LSGAN goal labelling (pygenmod.cem, pygenmod.adversarial)"


def _sphere(opt):
    return lambda X: -((X - opt[:, None, :]) ** 2).sum(-1)


def _rosenbrock(X):
    x, y = X[..., 0], X[..., 1]
    return -((1 - x) ** 2 + 100 * (y - x**2) ** 2)


def run(report) -> None:
    report.line("CEM, batched: 4 sphere problems with different optima (D=3), one call")
    opt = np.array([[1.0, -2.0, 0.5], [-1.5, 0.0, 2.0], [3.0, 1.0, -1.0], [0.0, 0.0, 0.0]])
    with report.timed("cem_optimize: B=4, 64 samples, 8 elites, 40 iterations"):
        res = cem.cem_optimize(
            _sphere(opt),
            np.zeros((4, 3)),
            np.full((4, 3), 2.0),
            n_samples=64,
            n_elite=8,
            n_iter=40,
            seed=1,
            min_std=0.01,
        )
    report.table(
        ("problem", "true optimum", "CEM mean", "max |err|"),
        [
            (
                b,
                np.array2string(opt[b], precision=3),
                np.array2string(res.mean[b], precision=3),
                f"{np.abs(res.mean[b] - opt[b]).max():.1e}",
            )
            for b in range(4)
        ],
    )
    with report.timed("cem_optimize on Rosenbrock (full covariance), 150 iterations"):
        r = cem.cem_optimize(
            _rosenbrock,
            np.array([[-1.0, 1.5]]),
            np.eye(2)[None],
            n_samples=200,
            n_elite=20,
            n_iter=150,
            seed=3,
            alpha=0.2,
            min_std=0.01,
            covariance="full",
        )
    report.line(
        f"  Rosenbrock: best x = {np.array2string(r.best_x[0], precision=4)} (optimum [1 1]), "
        f"f = {-r.best_return[0]:.2e}"
    )

    report.line()
    report.line("Goal GAN labelling: goals of intermediate difficulty on synthetic success rates")
    rng = np.random.default_rng(0)
    goals = rng.uniform(-1, 1, (256, 2))
    success = 1 / (1 + np.exp(6 * (np.linalg.norm(goals, axis=1) - 0.7)))  # easy near the start
    labels = adversarial.label_goals(success, r_min=0.1, r_max=0.9)
    d_real = 0.8 * labels - 0.4 + 0.1 * rng.standard_normal(256)  # a discriminator's outputs
    d_fake = -0.5 + 0.1 * rng.standard_normal(128)
    d_loss = adversarial.lsgan_discriminator_loss(d_real, d_fake, labels=labels)
    g_loss = adversarial.lsgan_generator_loss(d_fake)
    report.line(f"  {int(labels.sum())} of 256 goals labelled intermediate (0.1 <= success <= 0.9)")
    report.line(
        f"  LSGAN (a=-1, b=1, c=0): discriminator loss {float(d_loss.loss):.4f}, "
        f"generator loss {float(g_loss.loss):.4f}, |dL_D/dD| max {np.abs(d_loss.grad).max():.2e}"
    )
