"""The lecture's MDPs: the 4x3 gridworld with deterministic moves and rewards on entering the
+1/-1 squares at step rewards -0.04, -0.5 and -2 (the optimal policies checked against an
independent NumPy value iteration on a separately written transition table), the textbook's
stochastic world against Russell & Norvig's figures 17.2(a) / 17.3, and policy iteration from a
given or random initial policy."""

import numpy as np
import pytest

from pygenmod import mdp
from pygenmod import random as pgrandom

UP, RIGHT, DOWN, LEFT = range(4)
MOVES = ((0, 1), (1, 0), (0, -1), (-1, 0))
PLUS, MINUS, WALL = (3, 2), (3, 1), (1, 1)
CELLS = [(c, r) for r in range(3) for c in range(4) if (c, r) != WALL]


def lecture_table(step):
    """Deterministic moves, reward of the square entered: next-cell table and rewards."""
    nxt = {}
    for c, r in CELLS:
        for a, (dc, dr) in enumerate(MOVES):
            n = (c + dc, r + dr)
            nxt[(c, r), a] = n if n in CELLS else (c, r)
    rew = {k: {PLUS: 1.0, MINUS: -1.0}.get(n, step) for k, n in nxt.items()}
    return nxt, rew


def reference_q(step, gamma):
    """Plain float64 value iteration over the table (terminals have value 0: the episode ends)."""
    nxt, rew = lecture_table(step)
    V = {c: 0.0 for c in CELLS}
    for _ in range(5000):
        Q = {k: rew[k] + gamma * V[n] for k, n in nxt.items()}
        V = {c: 0.0 if c in (PLUS, MINUS) else max(Q[c, a] for a in range(4)) for c in CELLS}
    return Q, V


def optimal_actions(Q, cell):
    best = max(Q[cell, a] for a in range(4))
    return {a for a in range(4) if Q[cell, a] >= best - 1e-9}


def follow(policy, cells, start):
    """The cells visited by a deterministic policy from start until a terminal square."""
    nxt, _ = lecture_table(0.0)
    path = [start]
    while path[-1] not in (PLUS, MINUS) and len(path) < 20:
        path.append(nxt[path[-1], int(policy[cells.index(path[-1])])])
    return path


def test_lecture_builder_layout():
    P, R, cells = mdp.gridworld(-0.5, deterministic=True, reward_on="entry")
    assert P.shape == (12, 4, 12) and R.shape == (12, 4) and cells[:11] == CELLS and cells[11] is None
    nxt, rew = lecture_table(-0.5)
    for s, c in enumerate(CELLS):
        for a in range(4):
            if c in (PLUS, MINUS):  # absorbing: to the exit, no reward
                assert P[s, a, 11] == 1 and R[s, a] == 0
            else:
                assert P[s, a, CELLS.index(nxt[c, a])] == 1 and R[s, a] == rew[c, a]
    assert R[CELLS.index((2, 2)), RIGHT] == 1 and R[CELLS.index((2, 1)), RIGHT] == -1
    assert R[CELLS.index((3, 0)), UP] == -1 and R[CELLS.index((0, 0)), LEFT] == -0.5  # bump: stays, pays the step


def test_builder_options_agree():
    P0, R0, _ = mdp.gridworld(-0.04)  # the textbook defaults did not change
    P1, R1, _ = mdp.gridworld(-0.04, 0.2, reward_on="exit")
    np.testing.assert_array_equal(P0, P1)
    np.testing.assert_array_equal(R0, R1)
    Pd, Rd, _ = mdp.gridworld(-0.04, deterministic=True)
    np.testing.assert_array_equal(Pd, mdp.gridworld(-0.04, 0.0)[0])
    assert set(np.unique(Pd)) == {0.0, 1.0}
    # stochastic + entry: R is the expected reward of the square entered
    Ps, Rs, _ = mdp.gridworld(-0.04, reward_on="entry")
    s = CELLS.index((2, 2))
    assert Rs[s, RIGHT] == pytest.approx(0.8 * 1 + 0.1 * -0.04 + 0.1 * -0.04)
    assert Rs[CELLS.index((2, 1)), UP] == pytest.approx(0.8 * -0.04 + 0.1 * -0.04 + 0.1 * -1)
    np.testing.assert_allclose(Ps.sum(-1), 1.0)
    with pytest.raises(ValueError, match="reward_on"):
        mdp.gridworld(reward_on="enter")
    with pytest.raises(ValueError, match="noise"):
        mdp.gridworld(noise=0.1, deterministic=True)
    with pytest.raises(ValueError, match="noise"):
        mdp.gridworld(noise=1.5)


# The lecture's resulting policies, derived by hand and checked below against the reference:
# at -0.04 and -0.5 a step costs less than the detour risks, so every cell takes a shortest
# path to +1 (the moves are deterministic: no risk next to -1); at -2 living costs more than
# falling in: the cells whose way to +1 is long (the bottom row, and (2, 1) next to -1) end
# the episode in -1, the top row and (0, 1) still go to +1.
ENDS_AT_MINUS = {-0.04: set(), -0.5: set(), -2.0: {(0, 0), (1, 0), (2, 0), (3, 0), (2, 1)}}
SHORTEST_TO_PLUS = {(0, 0): 5, (1, 0): 4, (2, 0): 3, (3, 0): 4, (0, 1): 4, (2, 1): 2, (0, 2): 3, (1, 2): 2, (2, 2): 1}


@pytest.mark.parametrize("gamma", [0.9, 0.999])
@pytest.mark.parametrize("step", [-0.04, -0.5, -2.0])
def test_lecture_policies(backend, step, gamma):
    P, R, cells = mdp.gridworld(step, deterministic=True, reward_on="entry")
    Q, Vref = reference_q(step, gamma)
    sols = {
        "vi": mdp.value_iteration(backend.asarray(P), backend.asarray(R), gamma, epsilon=1e-10),
        "pi-exact": mdp.policy_iteration(backend.asarray(P), backend.asarray(R), gamma, evaluation="exact"),
        "pi-random": mdp.policy_iteration(
            backend.asarray(P), backend.asarray(R), gamma, initial_policy="random", seed=5, epsilon=1e-10
        ),
    }
    for name, sol in sols.items():
        pol, V = backend.numpy(sol.policy), backend.numpy(sol.V)
        for s, c in enumerate(CELLS):
            assert int(pol[s]) in optimal_actions(Q, c), (name, c)
            assert V[s] == pytest.approx(Vref[c], abs=1e-8), (name, c)
        for c in CELLS:
            if c in (PLUS, MINUS):
                continue
            path = follow(pol, cells, c)
            if c in ENDS_AT_MINUS[step]:
                assert path[-1] == MINUS, (name, c, path)
            else:
                assert path[-1] == PLUS and len(path) - 1 == SHORTEST_TO_PLUS[c], (name, c, path)


def test_textbook_policy_and_utilities():
    """Russell & Norvig: stochastic moves (0.8/0.1/0.1), reward -0.04 per step, gamma = 1 (here
    1 - 1e-7): the policy of fig. 17.2(a) and the utilities of fig. 17.3 (to their 3 digits)."""
    P, R, cells = mdp.gridworld(-0.04)
    sol = mdp.policy_iteration(P, R, 1 - 1e-7, evaluation="exact")
    fig_17_2a = {
        (0, 0): UP,
        (0, 1): UP,
        (0, 2): RIGHT,
        (1, 0): LEFT,
        (1, 2): RIGHT,
        (2, 0): LEFT,
        (2, 1): UP,
        (2, 2): RIGHT,
        (3, 0): LEFT,
    }
    for c, a in fig_17_2a.items():
        assert sol.policy[cells.index(c)] == a, c
    fig_17_3 = {
        (0, 0): 0.705,
        (1, 0): 0.655,
        (2, 0): 0.611,
        (3, 0): 0.388,
        (0, 1): 0.762,
        (2, 1): 0.660,
        (0, 2): 0.812,
        (1, 2): 0.868,
        (2, 2): 0.918,
        (3, 2): 1.0,
        (3, 1): -1.0,
    }
    for c, u in fig_17_3.items():
        assert sol.V[cells.index(c)] == pytest.approx(u, abs=6e-4), c


# ============================================================================ initial policies
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("evaluation", ["iterative", "exact"])
def test_policy_iteration_initial_policy(backend, evaluation, sparse):
    B, S, A = 3, 15, 4
    P, R = mdp.random_mdp(S, A, B, seed=7)
    gam = np.array([0.5, 0.9, 0.95])
    Pin = mdp.as_csr(P) if sparse else P
    if sparse and backend.name == "cuda":
        Pin = mdp.CSR(*(backend.asarray(x) for x in Pin[:3]), Pin.shape)
    elif not sparse:
        Pin = backend.asarray(P)
    Rin = backend.asarray(R)
    ref = mdp.policy_iteration(P, R, gam, evaluation="exact")
    kw = dict(evaluation=evaluation, epsilon=1e-9)
    starts = {"given": np.zeros((B, S), np.int64), "optimal": np.asarray(ref.policy), "random": "random"}
    for name, pi0 in starts.items():
        sol = mdp.policy_iteration(
            Pin,
            Rin,
            gam,
            initial_policy=backend.asarray(pi0) if name != "random" else pi0,
            seed=3 if name == "random" else None,
            **kw,
        )
        np.testing.assert_array_equal(backend.numpy(sol.policy), ref.policy, err_msg=name)
        np.testing.assert_allclose(backend.numpy(sol.V), ref.V, atol=1e-7, err_msg=name)
        assert np.all(np.asarray(sol.converged))
        if name == "optimal":
            assert np.all(np.asarray(sol.iterations) == 1)  # evaluated once, nothing to improve
        if evaluation == "iterative":
            assert np.all(np.asarray(sol.eval_sweeps) > 0)


def test_random_initial_policy_is_the_documented_draw():
    """initial_policy="random": action floor(A u), u = pygenmod.random.uniform(seed, (B, S),
    float64) (row b keyed by stream b); one exact evaluation + improvement shows it."""
    B, S, A = 2, 9, 3
    P, R = mdp.random_mdp(S, A, B, seed=2)
    u = pgrandom.uniform(11, (B, S), dtype=np.float64)
    pi0 = (u * A).astype(np.int64)
    one = mdp.policy_iteration(P, R, 0.9, evaluation="exact", initial_policy="random", seed=11, max_iter=1)
    np.testing.assert_allclose(one.V, mdp.policy_evaluation(P, R, 0.9, pi0).V, rtol=1e-12)
    again = mdp.policy_iteration(P, R, 0.9, evaluation="exact", initial_policy="random", seed=11, max_iter=1)
    np.testing.assert_array_equal(one.V, again.V)
    # keyed per MDP (row b by stream b): MDP 0 alone draws what row 0 of the batch draws
    solo = mdp.policy_iteration(P[0], R[0], 0.9, evaluation="exact", initial_policy="random", seed=11, max_iter=1)
    np.testing.assert_allclose(solo.V, one.V[0], rtol=1e-12)
    chunk = mdp.policy_iteration(
        P[1:], R[1:], 0.9, evaluation="exact", initial_policy="random", seed=11, stream=1, max_iter=1
    )
    np.testing.assert_allclose(chunk.V[0], one.V[1], rtol=1e-12)
    gen = np.random.default_rng(0)
    mdp.policy_iteration(P, R, 0.9, initial_policy="random", seed=gen)  # a Generator is a seed too


@pytest.mark.parametrize(
    "kw, err, match",
    [
        (dict(initial_policy=np.zeros((2, 8), np.int64)), ValueError, "initial_policy"),
        (
            dict(initial_policy=np.full((2, 9), 3, np.int64)),
            ValueError,
            r"initial_policy: actions must lie in \[0, 3\)",
        ),
        (dict(initial_policy=np.zeros((2, 9))), TypeError, "initial_policy: expected int actions"),
        (dict(initial_policy="greedy"), ValueError, "initial_policy"),
        (dict(initial_policy=np.zeros((2, 9), np.int64), seed=1), ValueError, "seed, stream: only used"),
        (dict(seed=1), ValueError, "seed, stream: only used"),
        (dict(stream=2), ValueError, "seed, stream: only used"),
    ],
)
@pytest.mark.parametrize("evaluation", ["iterative", "exact"])
def test_policy_iteration_initial_policy_errors(kw, err, match, evaluation):
    P, R = mdp.random_mdp(9, 3, 2, seed=1)
    with pytest.raises(err, match=match):
        mdp.policy_iteration(P, R, 0.9, evaluation=evaluation, **kw)


def test_demo_lecture_gridworld():
    import io

    from pygenmod.demos import _report
    from pygenmod.demos import mdp as demo

    buf = io.StringIO()
    demo._lecture_gridworld(_report.Report(buf))
    assert buf.getvalue().count("optimal under VI's Q: True") == 3, buf.getvalue()
