"""Demo section: Bellman backups (pygenmod.mdp) and returns (pygenmod.returns)."""

import time

import numpy as np

import pygenmod
from pygenmod import mdp, returns

TITLE = "Bellman backups and returns (pygenmod.mdp, pygenmod.returns)"


def _grid(values, cells, fmt):
    """Rows of the 4x3 gridworld, top row first; the wall is '#'."""
    lines = []
    for r in range(2, -1, -1):
        row = []
        for c in range(4):
            if (c, r) == (1, 1):
                row.append("#".center(7))
            else:
                row.append(fmt(values[cells.index((c, r))], (c, r)).center(7))
        lines.append("    " + "".join(row))
    return lines


def _gridworld(report):
    report.line("4x3 gridworld (Russell & Norvig): +1 top right, -1 below it, wall '#', moves slip 20%,")
    report.line("gamma = 0.999; solved by value iteration and by policy iteration for three step rewards.")
    terminal = {(3, 2): "+1", (3, 1): "-1"}
    for step in (-0.04, -0.5, -2.0):
        P, R, cells = mdp.gridworld(step)
        t = time.perf_counter()
        vi = mdp.value_iteration(P, R, 0.999, epsilon=1e-8)
        t_vi = time.perf_counter() - t
        t = time.perf_counter()
        pi = mdp.policy_iteration(P, R, 0.999, evaluation="exact")
        t_pi = time.perf_counter() - t
        same = bool((vi.policy == pi.policy).all())
        report.line()
        report.line(
            f"  step reward {step:+.2f}: VI {vi.iterations} sweeps in {t_vi * 1e3:.1f} ms, PI "
            f"{pi.iterations} improvements in {t_pi * 1e3:.1f} ms; same policy: {same}; "
            f"max |V_VI - V_PI| = {np.abs(vi.V - pi.V).max():.1e}"
        )
        arrows = _grid(vi.policy, cells, lambda a, c: terminal.get(c, mdp.GRID_ARROWS[int(a)]))
        vals = _grid(vi.V, cells, lambda v, c: f"{v:+.3f}")
        for a, v in zip(arrows, vals):
            report.line(f"{a}      {v}")


def _lecture_gridworld(report):
    report.line()
    report.line("The lecture's 4x3 gridworld: deterministic moves, +1/-1 received on entering the square")
    report.line("(mdp.gridworld(step, deterministic=True, reward_on='entry')), gamma = 0.999; policy iteration")
    report.line("from a random initial policy (the lecture's Algorithm 5), checked against value iteration.")
    terminal = {(3, 2): "+1", (3, 1): "-1"}
    for step in (-0.04, -0.5, -2.0):
        P, R, cells = mdp.gridworld(step, deterministic=True, reward_on="entry")
        pi = mdp.policy_iteration(P, R, 0.999, initial_policy="random", seed=0, epsilon=1e-10)
        vi = mdp.value_iteration(P, R, 0.999, epsilon=1e-10)
        # ties (two shortest paths) may pick different actions: compare the values of the choices
        q_pi = vi.Q[np.arange(len(cells)), pi.policy]
        optimal = bool(np.all(q_pi >= vi.V - 1e-8))
        report.line()
        report.line(
            f"  step reward {step:+.2f}: PI from a random policy, {pi.iterations} improvements; "
            f"its actions optimal under VI's Q: {optimal}; max |V_PI - V_VI| = "
            f"{np.abs(pi.V - vi.V).max():.1e}"
        )
        arrows = _grid(pi.policy, cells, lambda a, c: terminal.get(c, mdp.GRID_ARROWS[int(a)]))
        vals = _grid(pi.V, cells, lambda v, c: f"{v:+.3f}" if c not in terminal else "0")
        for a, v in zip(arrows, vals):
            report.line(f"{a}      {v}")
    report.line("  -0.04 and -0.5: shortest paths to +1 (no slipping, so no detour around -1); -2: the")
    report.line("  bottom row and the square left of -1 end the episode in -1 at once or soon.")


def _random_mdp(report):
    B, S, A = 4, 300, 6
    P, R = mdp.random_mdp(S, A, B, seed=0)
    report.line()
    report.line(f"Random MDPs (B={B}, S={S}, A={A}, gamma=0.95, epsilon=1e-8), default solver on every backend:")
    rows, ref = [], None
    for name, b in pygenmod.backends().items():
        if not b["available"]:
            rows.append((name, "-", "-", "-", "-", b["reason"][:60]))
            continue
        if name == "cuda":
            import cupy

            Pi, Ri = cupy.asarray(P), cupy.asarray(R)
        else:
            Pi, Ri = P, R
        with pygenmod.use_backend(name):
            mdp.solve(Pi, Ri, 0.95, epsilon=1e-8)  # warm-up (numba compiles on first use)
            t = time.perf_counter()
            sol = mdp.solve(Pi, Ri, 0.95, epsilon=1e-8)
            dt = time.perf_counter() - t
        V = sol.V.get() if hasattr(sol.V, "get") else np.asarray(sol.V)
        pol = sol.policy.get() if hasattr(sol.policy, "get") else np.asarray(sol.policy)
        ref = (V, pol) if ref is None else ref
        rows.append(
            (
                name,
                f"{dt * 1e3:.2f} ms",
                " ".join(str(int(i)) for i in np.asarray(sol.iterations)),
                f"{np.abs(V - ref[0]).max():.1e}",
                str(bool((pol == ref[1]).all())),
                "",
            )
        )
    report.table(("backend", "time", "sweeps per MDP", "max |dV| vs first", "same policy", "note"), rows)
    exact = mdp.policy_evaluation(P, R, 0.95, ref[1]).V
    report.line(f"  max |V - V^pi (exact linear solve)| = {np.abs(ref[0] - exact).max():.1e}")


def _gae(report):
    Tn, B = 512, 1024
    rng = np.random.default_rng(0)
    r = rng.standard_normal((Tn, B)).astype(np.float32)
    v = rng.standard_normal((Tn, B)).astype(np.float32)
    term = rng.random((Tn, B)) < 0.01
    trunc = rng.random((Tn, B)) < 0.005
    nv = np.vstack([v[1:], rng.standard_normal((1, B)).astype(np.float32)])
    nv[trunc] = rng.standard_normal(int(trunc.sum())).astype(np.float32)  # value of the cut-off observation
    report.line()
    report.line(f"GAE on synthetic trajectories (T={Tn}, B={B}, float32, 1% terminations, 0.5% truncations):")
    rows, ref = [], None
    for name, b in pygenmod.backends().items():
        if not b["available"]:
            continue
        conv = (lambda x: __import__("cupy").asarray(x)) if name == "cuda" else (lambda x: x)
        with pygenmod.use_backend(name):
            kw = dict(gamma=0.99, lam=0.95, terminated=conv(term), truncated=conv(trunc), next_values=conv(nv))
            returns.gae(conv(r), conv(v), **kw)
            t = time.perf_counter()
            out = returns.gae(conv(r), conv(v), **kw)
            dt = time.perf_counter() - t
        adv = out.advantages.get() if hasattr(out.advantages, "get") else out.advantages
        ref = adv if ref is None else ref
        rows.append((name, f"{dt * 1e3:.2f} ms", f"{float(np.abs(adv).mean()):.4f}", f"{np.abs(adv - ref).max():.1e}"))
    # a plain loop over one environment as a check
    b = 7
    carry, loop = 0.0, np.zeros(Tn)
    for t in reversed(range(Tn)):
        delta = r[t, b] + (0.0 if term[t, b] else 0.99 * nv[t, b]) - v[t, b]
        carry = delta + (0.0 if term[t, b] or trunc[t, b] else 0.99 * 0.95 * carry)
        loop[t] = carry
    report.table(("backend", "time", "mean |A|", "max |dA| vs first"), rows)
    report.line(f"  max |A - plain Python loop| (env {b}) = {np.abs(ref[:, b] - loop).max():.1e}")


def run(report) -> None:
    _gridworld(report)
    _lecture_gridworld(report)
    _random_mdp(report)
    _gae(report)
