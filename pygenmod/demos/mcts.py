"""Demo section: batched Monte Carlo tree search on the 4x3 gridworld and a random MDP."""

import time

import numpy as np

import pygenmod
from pygenmod import mcts, mdp

TITLE = "Batched Monte Carlo tree search (pygenmod.mcts)"

ACTIONS = "NSEW"


def gridworld(step_reward=-0.04):
    """Russell & Norvig's 4x3 world with deterministic moves (wall at (1, 1), +1 at (3, 2),
    -1 at (3, 1)); entering a terminal pays it, any other move pays step_reward."""
    cells = [(x, y) for y in range(3) for x in range(4) if (x, y) != (1, 1)]
    index = {c: i for i, c in enumerate(cells)}
    payoff = {(3, 2): 1.0, (3, 1): -1.0}
    S = len(cells)
    ns, R = np.zeros((S, 4), np.int64), np.zeros((S, 4))
    for (x, y), i in index.items():
        for a, (dx, dy) in enumerate(((0, 1), (0, -1), (1, 0), (-1, 0))):
            nxt = (x + dx, y + dy) if (x + dx, y + dy) in index else (x, y)
            ns[i, a], R[i, a] = index[nxt], payoff.get(nxt, step_reward)
    terminal = np.array([c in payoff for c in cells])
    return ns, R, terminal, cells


def optimal_q(ns, R, terminal, gamma):
    V = np.zeros(len(ns))
    for _ in range(200):
        Q = R + gamma * np.where(terminal[ns], 0.0, V[ns])
        V = np.where(terminal, 0.0, Q.max(-1))
    return V, Q


def run(report) -> None:
    gamma = 0.9
    ns, R, terminal, cells = gridworld()
    V, Q = optimal_q(ns, R, terminal, gamma)
    S = len(cells)
    V_hat = V + np.random.default_rng(0).normal(0, 0.05, S)  # a blurred value "network"
    model = mcts.tabular_model(ns, R, np.zeros((S, 4)), V_hat, gamma, terminal=terminal)
    starts = np.flatnonzero(~terminal)
    report.line("4x3 gridworld, every start state searched at once (one tree per state), uniform prior,")
    report.line("leaf value = V* + N(0, 0.05) noise, 1000 simulations; compared with value iteration:")
    with report.timed("muzero + gumbel searches, 9 trees x 1000 simulations each"):
        mz = mcts.muzero_policy(starts, model, 1000, dirichlet_fraction=0.0, temperature=0.0)
        gz = mcts.gumbel_muzero_policy(starts, model, 1000, gumbel_scale=0.0)
    rows = []
    for i, s in enumerate(starts):
        best = {ACTIONS[a] for a in np.flatnonzero(Q[s] >= Q[s].max() - 1e-9)}
        rows.append(
            (
                cells[s],
                "/".join(sorted(best)),
                ACTIONS[mz.action[i]],
                ACTIONS[gz.action[i]],
                " ".join(str(v) for v in mz.visit_counts[i]),
                f"{mz.value[i]:+.3f}",
                f"{V[s]:+.3f}",
            )
        )
    report.table(("cell", "VI best", "muzero", "gumbel", "muzero visits N S E W", "search V", "V*"), rows)
    ok = sum(ACTIONS[a] in r[1] for a, r in zip(mz.action, rows))
    okg = sum(ACTIONS[a] in r[1] for a, r in zip(gz.action, rows))
    report.line(f"  optimal action found from {ok}/{len(rows)} states (muzero), {okg}/{len(rows)} (gumbel)")

    report.line("")
    report.line("Playing an episode from (0, 0), keeping the subtree between moves (advance):")
    out = mcts.muzero_policy(
        np.array([cells.index((0, 0))]), model, 200, capacity=1200, dirichlet_fraction=0.0, temperature=0.0
    )
    path, s = [(0, 0)], cells.index((0, 0))
    for _ in range(10):
        a = int(out.action[0])
        s = int(ns[s, a])
        path.append(cells[s])
        if terminal[s]:
            break
        tree = mcts.advance(out.tree, out.action.astype(np.int32))
        kept = int(tree.num_nodes[0])
        out = mcts.muzero_policy(None, model, 200, tree=tree, dirichlet_fraction=0.0, temperature=0.0)
    report.line("  " + " -> ".join(map(str, path)) + f"   (last move reused {kept} nodes)")

    report.line("")
    _uct_gridworld(report)

    report.line("")
    report.line("Workload W5 shape: B=256 trees, A=16, S=1024 random tabular MDP, 64 simulations, float32:")
    rng = np.random.default_rng(0)
    Sr, A, B = 1024, 16, 256
    nsr = rng.integers(0, Sr, (Sr, A))
    Rr, Lr, Vr = (rng.standard_normal(sh).astype(np.float32) for sh in ((Sr, A), (Sr, A), (Sr,)))
    roots = rng.integers(0, Sr, B)
    big = mcts.tabular_model(nsr, Rr, Lr, Vr, 0.99)
    rows = []
    for name, b in pygenmod.backends().items():
        if not b["available"] or name == "cuda":
            continue
        with pygenmod.use_backend(name):
            mcts.muzero_policy(roots, big, 8, dirichlet_fraction=0.0)  # warm up (numba compiles)
            t = time.perf_counter()
            res = mcts.muzero_policy(roots, big, 64, dirichlet_fraction=0.0)
            dt = time.perf_counter() - t
        rows.append(
            (
                f"{name} (tabular, native loop)",
                f"{dt * 1e3:.1f} ms",
                f"{dt / (B * 64) * 1e9:.0f} ns",
                int(res.visit_counts.sum()),
            )
        )

    def recurrent_fn(emb, act):
        s2 = nsr[emb, act]
        return Rr[emb, act], np.full(len(emb), 0.99, np.float32), Lr[s2], Vr[s2], s2

    t = time.perf_counter()
    res = mcts.muzero_policy(mcts.Root(Lr[roots], Vr[roots], roots), recurrent_fn, 64, dirichlet_fraction=0.0)
    dt = time.perf_counter() - t
    rows.append(
        ("cpu (Python callback)", f"{dt * 1e3:.1f} ms", f"{dt / (B * 64) * 1e9:.0f} ns", int(res.visit_counts.sum()))
    )
    report.table(("path", "search", "per tree-simulation", "root visits"), rows)


def _uct_gridworld(report) -> None:
    """Classic UCT (UCB1 + random rollouts) on pygenmod.mdp's stochastic 4x3 gridworld."""
    gamma, sims = 0.9, 20000
    P, R, cells = mdp.gridworld()  # moves slip sideways with probability 0.2; an exit state
    sol = mdp.value_iteration(P, R, gamma, tol=1e-10)
    Q = R + gamma * P @ sol.V
    exit_ = np.array([c is None for c in cells])
    model = mcts.mdp_model(P, R, gamma, terminal=exit_)  # value 0: plain random rollouts
    starts = np.array([i for i, c in enumerate(cells) if c is not None and c not in ((3, 2), (3, 1))])
    names = "NESW"  # mdp.gridworld's actions: up, right, down, left
    report.line(f"UCT on the stochastic 4x3 gridworld (pygenmod.mdp.gridworld, slip 0.2), {sims} simulations per")
    report.line("start state, UCB1 with c = 0.5, random rollouts of 50 steps (value 0), with and without chance nodes:")
    with report.timed(f"2 x {len(starts)} trees x {sims} simulations"):
        ch = mcts.uct_policy(starts, model, sims, seed=0, exploration=0.5, rollout_depth=50, chance_nodes=True)
        one = mcts.uct_policy(starts, model, sims, seed=0, exploration=0.5, rollout_depth=50)
    rows = []
    for i, s in enumerate(starts):
        best = "/".join(names[a] for a in np.flatnonzero(Q[s] >= Q[s].max() - 1e-9))
        rows.append(
            (
                cells[s],
                best,
                f"{names[ch.action[i]]} ({Q[s].max() - Q[s, ch.action[i]]:.3f})",
                f"{names[one.action[i]]} ({Q[s].max() - Q[s, one.action[i]]:.3f})",
                f"{ch.value[i]:+.3f}",
                f"{one.value[i]:+.3f}",
                f"{sol.V[s]:+.3f}",
            )
        )
    report.table(
        ("cell", "VI best", "UCT chance (Q* loss)", "UCT 1 outcome (Q* loss)", "V chance", "V 1 outcome", "V*"), rows
    )
    for name, out in (("chance nodes", ch), ("one outcome per edge", one)):
        loss = Q[starts].max(-1) - Q[starts, out.action]
        report.line(
            f"  {name}: optimal action from {int((loss < 1e-9).sum())}/{len(starts)} states, "
            f"within 0.01 of Q* from {int((loss < 0.01).sum())}/{len(starts)}"
        )
    report.line("  (mean backup of random-policy rollouts sits below V*; keeping only the first sampled outcome")
    report.line("  of each edge biases Q toward lucky draws, hence the values above V*)")
