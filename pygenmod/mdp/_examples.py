"""Example MDPs: the gridworld, pymdptoolbox's forest, and random MDPs (dense or CSR)."""

from __future__ import annotations

import math

import numpy as np

from .. import _validate as val
from .._typing import DTypeLike, RewardOn
from ._model import CSR

GRID_ACTIONS = ("up", "right", "down", "left")
GRID_ARROWS = ("^", ">", "v", "<")


#: Where the +1/-1 of the gridworld's terminal squares is received (see :func:`gridworld`).
GRID_REWARD_ON = ("exit", "entry")


def gridworld(
    step_reward: float = -0.04,
    noise: float | None = None,
    dtype: DTypeLike = np.float64,
    *,
    deterministic: bool = False,
    reward_on: RewardOn = "exit",
) -> tuple[np.ndarray, np.ndarray, list]:
    """The 4x3 gridworld of Russell & Norvig (and of the lecture): +1 at (col 3, row 2), -1 at
    (col 3, row 1), a wall at (col 1, row 1) (0-based, row 0 at the bottom). Bumping into the
    wall or the edge stays put.

    Moves: succeed with probability ``1 - noise`` and slip to either perpendicular direction
    with ``noise/2`` (``noise`` defaults to 0.2, the textbook's 0.8/0.1/0.1);
    ``deterministic=True`` is ``noise=0`` (every move succeeds).

    Rewards (``reward_on``):

    - ``"exit"`` (default, the textbook's R(s)): every move from a non-terminal cell earns
      ``step_reward``; any action in a terminal cell earns its +1/-1 and moves to an absorbing
      exit state (so V(+1 square) = 1);
    - ``"entry"`` (the lecture's convention): a move earns the reward of the cell it enters:
      +1/-1 on entering a terminal cell, ``step_reward`` otherwise (also when bumping and
      staying put); a terminal cell then moves to the exit state with reward 0 (V = 0 there).

    Returns ``(P (S, A, S), R (S, A), cells)`` with S = 12 (11 cells + exit), A = 4 actions
    (up, right, down, left; :data:`GRID_ACTIONS`); cells[s] = (col, row) of state s (the exit is
    ``None``). R is the expected reward ``sum_s' P(s'|s, a) r(s, a, s')``.
    """
    reward_on = val.choice(reward_on, "reward_on", GRID_REWARD_ON)
    if deterministic:
        if noise not in (None, 0, 0.0):
            raise ValueError(f"noise: deterministic=True means noise=0, got noise={noise}")
        noise = 0.0
    noise = 0.2 if noise is None else float(noise)
    if not 0.0 <= noise <= 1.0:
        raise ValueError(f"noise: must lie in [0, 1], got {noise}")
    step_reward = float(step_reward)
    if not math.isfinite(step_reward):
        raise ValueError(f"step_reward: must be finite, got {step_reward}")
    cols, rows = 4, 3
    wall = (1, 1)
    terminal = {(3, 2): 1.0, (3, 1): -1.0}
    cells = [(c, r) for r in range(rows) for c in range(cols) if (c, r) != wall]
    index = {cell: i for i, cell in enumerate(cells)}
    S, A = len(cells) + 1, 4
    exit_ = S - 1
    moves = ((0, 1), (1, 0), (0, -1), (-1, 0))
    P = np.zeros((S, A, S))
    R = np.zeros((S, A))
    for (c, r), s in index.items():
        if (c, r) in terminal:
            P[s, :, exit_] = 1.0
            R[s, :] = terminal[(c, r)] if reward_on == "exit" else 0.0
            continue
        for a in range(A):
            for da, p in ((a, 1 - noise), ((a + 1) % 4, noise / 2), ((a + 3) % 4, noise / 2)):
                dc, dr = moves[da]
                nxt = (c + dc, r + dr)
                if not (0 <= nxt[0] < cols and 0 <= nxt[1] < rows) or nxt == wall:
                    nxt = (c, r)
                P[s, a, index[nxt]] += p
                R[s, a] += p * (terminal.get(nxt, step_reward) if reward_on == "entry" else step_reward)
    P[exit_, :, exit_] = 1.0
    return P.astype(dtype), R.astype(dtype), cells + [None]


def forest(
    n_states: int = 3, r1: float = 4.0, r2: float = 2.0, p: float = 0.1, dtype: DTypeLike = np.float64
) -> tuple[np.ndarray, np.ndarray]:
    """pymdptoolbox's forest-management MDP in pygenmod's layout: ``P (S, 2, S)``, ``R (S, 2)``.

    Action 0 waits (the forest grows one age class, or burns to state 0 with probability p),
    action 1 cuts (back to state 0, reward 1, r2 in the oldest state); waiting in the oldest
    state earns r1.
    """
    S = val.positive_int(n_states, "n_states", minimum=2)
    if not 0 <= p <= 1:
        raise ValueError(f"p: must lie in [0, 1], got {p}")
    P = np.zeros((S, 2, S))
    P[np.arange(S - 1), 0, np.arange(1, S)] = 1 - p
    P[S - 1, 0, S - 1] = 1 - p
    P[:, 0, 0] += p
    P[:, 1, 0] = 1.0
    R = np.zeros((S, 2))
    R[S - 1, 0] = r1
    R[:, 1] = 1.0
    R[0, 1] = 0.0
    R[S - 1, 1] = r2
    return P.astype(dtype), R.astype(dtype)


def random_mdp(
    n_states: int,
    n_actions: int,
    batch: int | None = None,
    *,
    successors: int | None = None,
    seed: int = 0,
    dtype: DTypeLike = np.float64,
) -> tuple[np.ndarray | CSR, np.ndarray]:
    """A seeded random MDP (or a batch of ``batch``): rows of P uniform(0,1) weights normalised
    to 1 over all S next states (dense) or over ``successors`` next states drawn uniformly
    (sparse, returned as a :class:`CSR`; repeated draws merge); R standard normal.

    Returns ``(P, R)``: P (S, A, S) or (B, S, A, S) dense, else a CSR of shape (B or 1, S, A);
    R (S, A) or (B, S, A). Data come from NumPy's seeded PCG64 generator on the host.
    """
    S = val.positive_int(n_states, "n_states")
    A = val.positive_int(n_actions, "n_actions")
    B = 1 if batch is None else val.positive_int(batch, "batch")
    rng = np.random.default_rng(seed if seed is None else val.seed_int(seed))
    dtype = np.dtype(dtype)
    if successors is None:
        P = rng.random((B, S, A, S))
        P /= P.sum(-1, keepdims=True)
        R = rng.standard_normal((B, S, A))
        P, R = P.astype(dtype), R.astype(dtype)
        return (P[0], R[0]) if batch is None else (P, R)
    k = val.positive_int(successors, "successors")
    k = min(k, S)
    rows = B * S * A
    idx = np.sort(rng.integers(0, S, (rows, k), dtype=np.int64), axis=1)
    w = rng.random((rows, k)) + 1e-3
    # merge repeated successors of a row (sorted, so duplicates are adjacent)
    dup = np.zeros((rows, k), bool)
    dup[:, 1:] = idx[:, 1:] == idx[:, :-1]
    keep = ~dup
    grp = np.cumsum(keep.reshape(-1)) - 1
    data = np.bincount(grp, weights=w.reshape(-1))
    indices = idx.reshape(-1)[keep.reshape(-1)].astype(np.int32)
    counts = keep.sum(1)
    indptr = np.zeros(rows + 1, np.int64)
    indptr[1:] = np.cumsum(counts)
    row_of = np.repeat(np.arange(rows), counts)
    data /= np.bincount(row_of, weights=data, minlength=rows)[row_of]
    R = rng.standard_normal((B, S, A)).astype(dtype)
    return CSR(data.astype(dtype), indices, indptr, (B, S, A)), (R[0] if batch is None else R)
