"""`pygenmod demo --plots DIR`: one PNG per demo section, on the same built-in data as the report.

Kept apart from the printed report: each ``<section>_figure(fig)`` runs the section's kernels at
a small size and draws them into a matplotlib Figure; :func:`render` writes the PNGs. matplotlib
(the ``plot`` extra) is imported only through :mod:`pygenmod._plot` (Agg canvas, no display).
"""

from __future__ import annotations

import os

import numpy as np

from .. import _plot


def _ellipse(ax, mean, cov, n_std=2.0, **kw):
    """The n_std contour of a 2-D Gaussian, in data coordinates."""
    from matplotlib.patches import Ellipse

    val, vec = np.linalg.eigh(cov)
    angle = np.degrees(np.arctan2(vec[1, 1], vec[0, 1]))
    w, h = 2 * n_std * np.sqrt(np.maximum(val[::-1], 0))
    ax.add_patch(Ellipse(mean, w, h, angle=angle, fill=False, **kw))


# ----------------------------------------------------------------------------- GMM / GMR
def gmm_figure(fig) -> None:
    from pygenmod import gmm

    from .gmm import demonstrations

    t, X, mean_demo = demonstrations(n_tasks=2, n_demos=5, T=100, seed=0)
    K = 8
    res = gmm.fit(X, K, max_iter=200, tol=1e-4, random_state=0, warn=False)  # both tasks in one call
    traj = gmm.gmr(res.params, np.broadcast_to(t[None, :, None], (2, len(t), 1)), [0])
    means, covs, wts = (np.asarray(a) for a in (res.params.means, res.params.covariances, res.params.weights))
    axes = fig.subplots(2, 2, sharex=True)
    for b in range(2):
        for o, name in enumerate("xy"):
            ax = axes[o, b]
            ax.scatter(X[b, :, 0], X[b, :, 1 + o], s=3, color="0.55", alpha=0.5, lw=0, label="demonstrations")
            dims = [0, 1 + o]
            for k in range(K):
                _ellipse(
                    ax,
                    means[b, k, dims],
                    covs[b, k][np.ix_(dims, dims)],
                    color="#3465a4",
                    lw=0.6 + 3 * wts[b, k],
                    alpha=0.9,
                    label="components (2σ)" if k == 0 else None,
                )
            m = traj.mean[b, :, o]
            sd = np.sqrt(traj.covariance[b, :, o, o])
            ax.fill_between(t, m - 2 * sd, m + 2 * sd, color="#f57900", alpha=0.3, lw=0, label="GMR ±2σ")
            ax.plot(t, m, color="#ce5c00", lw=1.8, label="GMR mean")
            ax.plot(t, mean_demo[b, :, o], "k--", lw=0.8, label="mean demonstration")
            ax.set_ylabel(f"{name}(t)")
            if o == 0:
                ax.set_title(f"task {b}: {K} components, {int(res.n_iter[b])} EM iterations", fontsize=10)
            else:
                ax.set_xlabel("time t")
    axes[0, 0].legend(fontsize=8, loc="lower left", ncols=2)
    fig.suptitle(
        "Gaussian mixture over (t, x, y) demonstrations, fitted for both tasks in one batched call; "
        "GMR conditions it on t",
        fontsize=10.5,
    )


# ----------------------------------------------------------------------------- spatial softmax
def spatial_figure(fig) -> None:
    from pygenmod import spatial

    from .spatial import _blobs

    rng = np.random.default_rng(0)
    C, H, W = 6, 48, 64
    x, rows, cols = _blobs(rng, 1, C, H, W)  # the report's maps: one bright blob per channel
    x = x + _blobs(rng, 1, C, H, W, sigma=3.0, gain=5.0)[0]  # plus a wider, weaker distractor
    kp = spatial.spatial_softmax(x, 1.0, coords="pixel")
    axes = fig.subplots(2, 3)
    for c, ax in enumerate(axes.flat):
        ax.imshow(x[0, c], cmap="magma", origin="upper")
        ax.plot(cols[0, c], rows[0, c], "o", ms=11, mfc="none", mec="#8ae234", mew=2, label="true centre")
        ax.plot(kp[0, c, 0], kp[0, c, 1], "x", ms=9, color="#729fcf", mew=2.5, label="spatial softmax")
        err = np.hypot(kp[0, c, 0] - cols[0, c], kp[0, c, 1] - rows[0, c])
        ax.set_title(f"channel {c}: error {err:.2f} px", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].legend(fontsize=7, loc="lower left")
    fig.suptitle(
        f"Spatial softmax keypoints (temperature 1) on noisy {H}x{W} feature maps with a bright "
        "blob and a weaker distractor",
        fontsize=10.5,
    )


# ----------------------------------------------------------------------------- gridworld
_MOVES = ((0, 1), (1, 0), (0, -1), (-1, 0))  # mdp.gridworld's actions: up, right, down, left


def mdp_figure(fig) -> None:
    from matplotlib.patches import Rectangle

    from pygenmod import mdp

    terminal = {(3, 2): "+1", (3, 1): "−1"}
    axes = fig.subplots(1, 3)
    for ax, step in zip(axes, (-0.04, -0.5, -2.0)):
        P, R, cells = mdp.gridworld(step)
        vi = mdp.value_iteration(P, R, 0.999, epsilon=1e-8)
        pi = mdp.policy_iteration(P, R, 0.999, evaluation="exact")
        grid = np.full((3, 4), np.nan)
        for s, cell in enumerate(cells[:-1]):
            grid[cell[1], cell[0]] = vi.V[s]
        ax.imshow(grid, cmap="RdYlGn", vmin=min(np.nanmin(grid), -1.0), vmax=1.0, origin="lower")
        ax.add_patch(Rectangle((0.5, 0.5), 1, 1, color="0.3"))  # the wall
        for s, cell in enumerate(cells[:-1]):
            c, r = cell
            if cell in terminal:
                ax.text(c, r, terminal[cell], ha="center", va="center", fontsize=14, fontweight="bold")
                continue
            dc, dr = _MOVES[int(vi.policy[s])]
            ax.annotate(
                "",
                (c + 0.3 * dc, r + 0.3 * dr + 0.1),
                (c - 0.3 * dc, r - 0.3 * dr + 0.1),
                arrowprops=dict(arrowstyle="-|>", lw=2, color="k"),
            )
            ax.text(c, r - 0.3, f"{vi.V[s]:+.2f}", ha="center", va="center", fontsize=8)
        same = bool((vi.policy == pi.policy).all())
        dv = float(np.abs(vi.V - pi.V).max())
        ax.set_title(
            f"step reward {step:+.2f}\nVI and PI {'agree' if same else 'DIFFER'} (max |V_VI − V_PI| = {dv:.0e})",
            fontsize=9.5,
        )
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("4x3 gridworld, moves slip 20%, γ = 0.999: optimal policy (arrows) and values V*", fontsize=10.5)


# ----------------------------------------------------------------------------- MCTS
def mcts_figure(fig) -> None:
    from pygenmod import mcts

    from .mcts import ACTIONS, gridworld, optimal_q

    gamma = 0.9
    ns, R, terminal, cells = gridworld()
    V, Q = optimal_q(ns, R, terminal, gamma)
    S = len(cells)
    V_hat = V + np.random.default_rng(0).normal(0, 0.05, S)
    model = mcts.tabular_model(ns, R, np.zeros((S, 4)), V_hat, gamma, terminal=terminal)
    starts = np.flatnonzero(~terminal)
    n_sim = 400
    out = mcts.muzero_policy(starts, model, n_sim, dirichlet_fraction=0.0, temperature=0.0)
    visits = np.asarray(out.visit_counts, float)
    gs = fig.add_gridspec(3, 4)
    for (x, y), s in ((c, i) for i, c in enumerate(cells)):
        ax = fig.add_subplot(gs[2 - y, x])
        if terminal[s]:
            ax.text(
                0.5,
                0.5,
                f"terminal {'+1' if (x, y) == (3, 2) else '−1'}",
                ha="center",
                va="center",
                fontsize=11,
                transform=ax.transAxes,
            )
            ax.set_axis_off()
            continue
        i = int(np.flatnonzero(starts == s)[0])
        best = Q[s] >= Q[s].max() - 1e-9
        frac = visits[i] / visits[i].sum()
        ax.bar(range(4), frac, color=np.where(best, "#4e9a06", "#babdb6"))
        ax.set_ylim(0, 1)
        ax.set_xticks(range(4), list(ACTIONS), fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
        ax.set_title(f"cell {(x, y)}: search picks {ACTIONS[int(out.action[i])]}", fontsize=8.5)
    ax = fig.add_subplot(gs[1, 1])
    ax.text(0.5, 0.5, "wall", ha="center", va="center", fontsize=11, transform=ax.transAxes)
    ax.set_axis_off()
    fig.suptitle(
        f"MuZero search from every cell at once ({n_sim} simulations per tree, noisy leaf values): "
        "share of root visits per action;\ngreen = the optimal action(s) by value iteration",
        fontsize=10,
    )


# ----------------------------------------------------------------------------- sampling
def sampling_figure(fig) -> None:
    from pygenmod import sampling

    a1, a2, a3 = fig.subplots(1, 3)
    mu, sd, n = 1.0, 0.6, 100_000
    z = np.asarray(sampling.rsample_normal(np.array([[mu]]), std=np.array([[sd]]), seed=42, n_samples=n)).ravel()
    a1.hist(z, bins=80, density=True, color="#729fcf", label=f"{n:,} draws")
    g = np.linspace(mu - 4 * sd, mu + 4 * sd, 300)
    a1.plot(g, np.exp(-0.5 * ((g - mu) / sd) ** 2) / (sd * np.sqrt(2 * np.pi)), "k", lw=1.5, label="target density")
    a1.set_title("rsample_normal: N(1, 0.6²)", fontsize=9.5)
    a1.set_xlabel("z")
    a1.legend(fontsize=7)

    cov = np.array([[1.0, 0.8], [0.8, 1.0]])
    L = np.linalg.cholesky(cov)
    z2 = np.asarray(sampling.rsample_mvn(np.zeros((1, 2)), L[None], seed=3, n_samples=50_000))[:, 0]
    a2.hist2d(z2[:, 0], z2[:, 1], bins=70, range=[[-3.5, 3.5], [-3.5, 3.5]], cmap="Blues")
    gx, gy = np.meshgrid(np.linspace(-3.5, 3.5, 120), np.linspace(-3.5, 3.5, 120))
    pts = np.stack([gx, gy], -1)
    maha = np.einsum("...i,ij,...j->...", pts, np.linalg.inv(cov), pts)
    a2.contour(gx, gy, maha, levels=[1, 4, 9], colors="#a40000", linewidths=1)
    a2.set_title("rsample_mvn: draws vs target 1/2/3σ contours", fontsize=9.5)
    a2.set_aspect("equal")

    logits = np.array([1.0, 0.2, -0.5, 2.0, 0.0])
    idx = np.asarray(sampling.gumbel_softmax(np.broadcast_to(logits, (50_000, 5)), seed=7).index)
    freq = np.bincount(idx, minlength=5) / len(idx)
    p = np.exp(logits - logits.max())
    p /= p.sum()
    k = np.arange(5)
    a3.bar(k - 0.2, freq, 0.4, color="#729fcf", label="Gumbel-max draws")
    a3.bar(k + 0.2, p, 0.4, color="0.2", label="softmax(logits)")
    a3.set_xticks(k)
    a3.set_xlabel("category")
    a3.set_title("gumbel_softmax: category frequencies", fontsize=9.5)
    a3.legend(fontsize=7)
    fig.suptitle("Reparameterized sampling on the counter-based (Philox) RNG: draws against the target", fontsize=10.5)


# ----------------------------------------------------------------------------- CEM
def compose_figure(fig) -> None:
    from pygenmod import cem

    from .compose import _rosenbrock

    pops = []

    def objective(X):  # records each population (B=1, N, 2)
        pops.append(np.array(X[0]))
        return _rosenbrock(X)

    res = cem.cem_optimize(
        objective,
        np.array([[-1.0, 1.5]]),
        np.eye(2)[None],
        n_samples=200,
        n_elite=20,
        n_iter=80,
        seed=3,
        alpha=0.2,
        min_std=0.01,
        covariance="full",
    )
    path = np.array([p.mean(0) for p in pops])
    a1, a2 = fig.subplots(1, 2, width_ratios=[1.4, 1])
    gx, gy = np.meshgrid(np.linspace(-2, 2, 300), np.linspace(-1, 3, 300))
    f = -_rosenbrock(np.stack([gx, gy], -1))
    a1.contourf(gx, gy, np.log10(f + 1e-3), levels=30, cmap="Greys_r", alpha=0.8)
    for t, c in ((0, "#f57900"), (8, "#4e9a06"), (30, "#3465a4")):
        a1.scatter(pops[t][:, 0], pops[t][:, 1], s=7, color=c, alpha=0.8, lw=0, label=f"population {t}")
    a1.plot(path[:, 0], path[:, 1], "-o", color="#a40000", ms=2, lw=1.2, label="population mean")
    a1.plot(1, 1, "*", color="yellow", mec="k", ms=14, label="optimum (1, 1)")
    a1.set_xlim(-2, 2)
    a1.set_ylim(-1, 3)
    a1.set_xlabel("x")
    a1.set_ylabel("y")
    a1.legend(fontsize=7, loc="upper left")
    a1.set_title("path of the population mean on log10 Rosenbrock contours", fontsize=9.5)
    it = np.arange(1, len(pops) + 1)
    a2.semilogy(it, -np.asarray(res.elite_mean_return)[:, 0], color="#3465a4", label="elites' mean f")
    a2.semilogy(it, [-float(_rosenbrock(m)) + 1e-16 for m in path], color="#a40000", label="f(population mean)")
    a2.set_xlabel("iteration")
    a2.set_ylabel("Rosenbrock f (log scale)")
    a2.legend(fontsize=7)
    a2.set_title("convergence", fontsize=9.5)
    fig.suptitle(
        "Cross-entropy method, full covariance (200 samples, 20 elites, smoothing 0.2): "
        f"best f = {-float(res.best_return[0]):.1e}",
        fontsize=10.5,
    )


# ----------------------------------------------------------------------------- driver
#: section -> (file name, figure size in inches, drawing function); render() writes DIR/<file name>
FIGURES = {
    "mdp": ("gridworld.png", (10.5, 3.6), mdp_figure),
    "gmm": ("gmm_gmr.png", (10.0, 6.0), gmm_figure),
    "spatial": ("spatial_softmax.png", (10.0, 5.0), spatial_figure),
    "sampling": ("sampling.png", (11.0, 3.8), sampling_figure),
    "mcts": ("mcts.png", (10.0, 6.6), mcts_figure),
    "compose": ("cem.png", (10.0, 4.4), compose_figure),
}


def render(directory, sections=None, dpi: int = 100) -> list:
    """Write the figure of each section (default: all) into ``directory``; returns the paths."""
    _plot.require("pygenmod demo --plots")
    sections = list(sections or FIGURES)
    for name in sections:
        if name not in FIGURES:
            raise ValueError(f"sections: no figure for {name!r}; expected some of {', '.join(FIGURES)}")
    paths = []
    for name in sections:
        fname, size, draw = FIGURES[name]
        fig = _plot.figure(*size)
        draw(fig)
        paths.append(_plot.save(fig, os.path.join(os.fspath(directory), fname), dpi))
    return paths
