"""Goal-GAN's labelling loop (Florensa et al. 2018; the thesis's eq. 4.4) on a 2-D point
environment written in NumPy.

Each iteration:
1. the goal generator G proposes goals (plus a few replayed from earlier iterations);
2. the current policy runs R rollouts per goal; ``pygenmod.goals.goal_labels`` turns them into
   the goal returns R^g(pi) (fraction of rollouts within epsilon of the goal at some step) and
   the labels y = 1{r_min <= R^g <= r_max} (goals of intermediate difficulty);
3. the policy "trains" on the goals it reached at least sometimes (a stand-in for an RL update:
   its competence grows around them);
4. the discriminator D and generator G take steps on the LSGAN losses of eq. 4.4
   (``pygenmod.adversarial.lsgan_discriminator_loss`` with ``labels=y``, ``lsgan_generator_loss``),
   which return their gradients with respect to D's outputs; the tiny MLPs backpropagate them
   by hand (no autograd framework).

The table shows the goal distribution moving outwards with the policy's competence: the
generated goals stay on the frontier (a large fraction labelled intermediate) while that
frontier grows. ``--plot out.png`` draws the goals of a few iterations (needs matplotlib).

    python examples/goal_gan_point.py [--iters 60] [--goals 64] [--seed 0] [--plot goals.png]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from pygenmod import adversarial, goals

ARENA = 4.0  # the point lives in [-ARENA, ARENA]^2 and starts at the origin


# ----------------------------------------------------------------------------- a tiny MLP
class MLP:
    """tanh hidden layers, linear output; manual backward and Adam."""

    def __init__(self, sizes, rng, out_scale=1.0, lr=1e-3):
        self.params = []
        for i, (m, n) in enumerate(zip(sizes[:-1], sizes[1:])):
            scale = out_scale / np.sqrt(m) if i == len(sizes) - 2 else 1.0 / np.sqrt(m)
            self.params += [rng.standard_normal((m, n)) * scale, np.zeros(n)]
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]
        self.t, self.lr = 0, lr

    def __call__(self, x):
        self.acts = [x]
        n = len(self.params) // 2
        for i in range(n):
            x = x @ self.params[2 * i] + self.params[2 * i + 1]
            if i < n - 1:
                x = np.tanh(x)
            self.acts.append(x)
        return x

    def backward(self, g):
        """Gradients of the parameters and of the input, for upstream gradient g of the output."""
        n = len(self.params) // 2
        grads = [None] * len(self.params)
        for i in reversed(range(n)):
            if i < n - 1:
                g = g * (1 - self.acts[i + 1] ** 2)  # tanh'
            grads[2 * i] = self.acts[i].T @ g
            grads[2 * i + 1] = g.sum(0)
            g = g @ self.params[2 * i].T
        return grads, g

    def step(self, grads, b1=0.5, b2=0.999):
        self.t += 1
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            m[:] = b1 * m + (1 - b1) * g
            v[:] = b2 * v + (1 - b2) * g * g
            p -= self.lr * (m / (1 - b1**self.t)) / (np.sqrt(v / (1 - b2**self.t)) + 1e-8)


# ----------------------------------------------------------------------------- environment and policy
class PointPolicy:
    """A goal-conditioned policy for a point mass, as competent as its practice: a rollout heads
    straight for the goal with probability c(g) = exp(-d(g, practised)^2 / (2 rho^2)) (d: distance
    to the nearest practised goal), and wanders randomly otherwise."""

    def __init__(self, rho=0.3, speed=0.5, noise=0.1):
        self.practised = np.zeros((1, 2))  # it can reach its start
        self.rho, self.speed, self.noise = rho, speed, noise

    def competence(self, g):
        d2 = ((g[:, None, :] - self.practised[None]) ** 2).sum(-1).min(1)
        return np.exp(-d2 / (2 * self.rho**2))

    def rollouts(self, g, n_rollouts, n_steps, rng):
        """States (G, R, T, 2) of R rollouts of T steps towards each of the G goals."""
        G = g.shape[0]
        knows = rng.random((G, n_rollouts)) < self.competence(g)[:, None]
        s = np.zeros((G, n_rollouts, 2))
        out = np.empty((G, n_rollouts, n_steps, 2))
        for t in range(n_steps):
            to_goal = g[:, None, :] - s
            dist = np.linalg.norm(to_goal, axis=-1, keepdims=True)
            step = np.where(
                knows[..., None],
                to_goal / np.maximum(dist, 1e-9) * np.minimum(dist, self.speed),
                rng.standard_normal(s.shape) * self.speed / 4,
            )
            s = np.clip(s + step + self.noise * rng.standard_normal(s.shape), -ARENA, ARENA)
            out[:, :, t] = s
        return out

    def train(self, g, returns, r_min):
        """Practice: the goals it reached at least sometimes join its repertoire."""
        self.practised = np.concatenate([self.practised, g[returns >= r_min]])[-2000:]


# ----------------------------------------------------------------------------- the loop
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=60)
    ap.add_argument("--goals", type=int, default=64, help="generated goals per iteration")
    ap.add_argument("--rollouts", type=int, default=4, help="rollouts per goal")
    ap.add_argument("--steps", type=int, default=20, help="steps per rollout")
    ap.add_argument("--gan-steps", type=int, default=10, help="discriminator/generator updates per iteration")
    ap.add_argument("--epsilon", type=float, default=0.3)
    ap.add_argument("--r-min", type=float, default=0.1)
    ap.add_argument("--r-max", type=float, default=0.9)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--plot", metavar="PNG", help="scatter of the goals of a few iterations (matplotlib)")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()

    nz = 4
    gen = MLP([nz, 32, 32, 2], rng, out_scale=0.8, lr=1e-3)  # starts around the origin
    disc = MLP([2, 32, 32, 1], rng, lr=1e-3)
    policy = PointPolicy()
    replay = np.zeros((0, 2))
    history = []

    def generate(n):
        z = rng.standard_normal((n, nz))
        return np.clip(gen(z), -ARENA, ARENA)

    print(f"{'iter':>4} {'|goal| mean':>11} {'|goal| p90':>10} {'R^g mean':>8} {'intermediate':>12} {'frontier':>8}")
    for it in range(args.iters):
        # 1. goals: new ones from G, a third as many replayed intermediate goals
        new = generate(args.goals)
        n_old = min(len(replay), args.goals // 3)
        old = replay[rng.choice(len(replay), n_old, replace=False)] if n_old else np.zeros((0, 2))
        g = np.concatenate([new, old])

        # 2. rollouts -> R^g(pi) and the labels of eq. 4.4
        states = policy.rollouts(g, args.rollouts, args.steps, rng)
        lab = goals.goal_labels(states, g, epsilon=args.epsilon, r_min=args.r_min, r_max=args.r_max)
        replay = np.concatenate([replay, g[lab.labels == 1]])[-500:]

        # 3. the policy improves on what it practised
        policy.train(g, lab.returns, args.r_min)

        # 4. LSGAN updates (eq. 4.4): D pulls labelled-good goals to b = 1, bad and generated ones
        #    to a = -1; G pushes D(G(z)) to c = 0
        for _ in range(args.gan_steps):
            fake = generate(args.goals)
            d_fake = disc(fake)[:, 0]
            d_real = disc(g)[:, 0]
            loss = adversarial.lsgan_discriminator_loss(d_real, d_fake, labels=lab.labels)
            gr, _ = disc.backward(loss.grad[:, None])  # through the last forward (real goals)
            disc(fake)
            gf, _ = disc.backward(loss.grad_other[:, None])
            disc.step([a + b for a, b in zip(gr, gf)])

            z = rng.standard_normal((args.goals, nz))
            x = gen(z)
            gl = adversarial.lsgan_generator_loss(disc(np.clip(x, -ARENA, ARENA))[:, 0])
            _, gx = disc.backward(gl.grad[:, None])
            gx = gx * (np.abs(x) < ARENA)  # the clip passes no gradient outside the arena
            gg, _ = gen.backward(gx)
            gen.step(gg)

        r = np.linalg.norm(new, axis=1)
        frontier = np.linalg.norm(policy.practised, axis=1).max()
        history.append(new)
        if it % max(1, args.iters // 12) == 0 or it == args.iters - 1:
            print(
                f"{it:>4} {r.mean():>11.2f} {np.quantile(r, 0.9):>10.2f} {lab.returns[: len(new)].mean():>8.2f} "
                f"{lab.labels[: len(new)].mean():>12.2f} {frontier:>8.2f}"
            )
    print(f"done in {time.perf_counter() - t0:.1f} s")

    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 5))
        n = len(history)
        picks = np.unique([0, n // 12, n // 6, n // 4, n - 1])  # the frontier moves early on
        for i in picks:
            ax.scatter(*history[i].T, s=8, label=f"iteration {i}")
        ax.set(xlim=(-ARENA, ARENA), ylim=(-ARENA, ARENA), aspect="equal", title="Goal-GAN: generated goals")
        ax.legend(loc="upper right", fontsize=8)
        fig.savefig(args.plot, dpi=120, bbox_inches="tight")
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
