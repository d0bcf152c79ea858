"""Backups and the solvers: value iteration, modified and exact policy iteration, policy
evaluation. Each runs its loop in compiled code (CPU, numba) or on the device (CUDA)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import _fast
from .. import _validate as val
from .._arrays import to_native
from .._backend import choose
from .._dispatch import get_kernel
from .._typing import ArrayLike, EvaluationMethod, SeedLike, Stop
from ._model import _CHECK_STATS, _KIND, CSR, ROW_SUM_TOL, Backup, Evaluation, Solution, _Model

# The compiled solvers skip the rows of actions that provably cannot be greedy in a sweep
# (action elimination, see docs/mdp.md); the results are the same floats as full sweeps.
# Tests switch it off to compare.
_ACTION_ELIMINATION = True

# Exact policy iteration on the cpu backend runs its whole loop in compiled code (one dense LU
# solve per policy, single-threaded per MDP) up to this many states; larger MDPs are solved by
# LAPACK from Python. Measured on the 2-core test machine (bench/results/tiny_calls.md): the
# loop is several times faster than the LAPACK path up to 256 states, where LAPACK's threads
# and the backup's contend; above, a blocked solve is the better algorithm. Results agree to
# rounding on both sides (tests switch it to compare).
_EXACT_LOOP_MAX_S = 256


def _fast_tol(P, check):
    """The fast paths' row_tol argument: P's row-sum tolerance, or -1 for no row checks."""
    return ROW_SUM_TOL.get(P.dtype, 0.0) if check is True else -1.0


def bellman_backup(
    P: ArrayLike | CSR,
    R: ArrayLike,
    V: ArrayLike,
    gamma: ArrayLike,
    *,
    policy: ArrayLike | None = None,
    temperature: ArrayLike | None = None,
    check: bool = True,
) -> Backup:
    """One Bellman backup of V for every state of every MDP.

    - default: optimality backup ``V'(s) = max_a Q(s, a)``,
      ``Q(s, a) = R(s, a) + gamma * sum_s' P(s'|s, a) V(s')``;
    - ``policy`` (int actions (B, S) or probabilities (B, S, A)): expectation backup
      ``V'(s) = sum_a pi(a|s) Q(s, a)``;
    - ``temperature`` (> 0, scalar or (B,)): soft (entropy-regularised) backup
      ``V'(s) = tau * log sum_a exp(Q(s, a) / tau)``.

    Returns :class:`Backup` (Q, V, greedy policy), in R's dtype and P's array type.
    """
    if (
        policy is None
        and temperature is None
        and type(gamma) is float
        and type(P) is np.ndarray
        and type(R) is np.ndarray
        and type(V) is np.ndarray
    ):
        fast = _fast.cpu_kernel("mdp", "backup_fast")  # one compiled call (pygenmod._fast)
        if fast is not None:
            res = fast(P, R, V, gamma, _fast_tol(P, check))
            if res is not None:
                return tuple.__new__(Backup, res)
    m = _Model(P, R, check=check)
    gamma = m.gamma(gamma)
    V = m.values(V)
    xp = m.xp
    det = stoch = tau = None
    kind = "optimal"
    if policy is not None and temperature is not None:
        raise ValueError("policy and temperature: give at most one")
    if policy is not None:
        det, stoch = m.policy(policy)
        kind = "policy" if det is not None else "stochastic"
    if temperature is not None:
        tau = val.per_batch(temperature, "temperature", m.B, m.dtype, xp, lo=0.0, lo_closed=False)
        kind = "soft"
    Q = xp.empty((m.B, m.S, m.A), m.dtype)
    V_out = xp.empty((m.B, m.S), m.dtype)
    pi = xp.empty((m.B, m.S), xp.int64)
    m.kernel("backup")(*m.args(), m.R, V, gamma, _KIND[kind], det, stoch, tau, Q, V_out, pi)
    return Backup(m.out(Q), m.out(V_out), m.out(pi))


# ============================================================================ solvers
def _threshold(m, gamma, epsilon, tol, stop, xp_gamma):
    g = np.asarray(xp_gamma.get() if hasattr(xp_gamma, "get") else xp_gamma, np.float64)
    if tol is not None:
        t = float(tol)
        if not t >= 0:
            raise ValueError(f"tol: must be >= 0, got {tol}")
        return np.full(m.B, t)
    eps = float(epsilon)
    if not eps > 0 or not math.isfinite(eps):
        raise ValueError(f"epsilon: must be a finite number > 0, got {epsilon}")
    with np.errstate(divide="ignore"):
        th = eps * (1 - g) / g
    th = np.where(g > 0, th, np.inf)
    return th / 2 if stop == "sup" else th


def _solve(P, R, gamma, *, epsilon, tol, stop, max_iter, V0, check, eval_max, eval_rel):
    m = _Model(P, R, check="defer" if check else False)
    g = m.gamma(gamma)
    stop = val.choice(stop, "stop", ("span", "sup"))
    max_iter = val.positive_int(max_iter, "max_iter")
    thresh = _threshold(m, g, epsilon, tol, stop, g)
    xp = m.xp
    V = xp.zeros((m.B, m.S), m.dtype) if V0 is None else m.values(V0, "V0").copy()
    Q = xp.empty((m.B, m.S, m.A), m.dtype)
    pi = xp.empty((m.B, m.S), xp.int64)
    its, evs = np.zeros(m.B, np.int64), np.zeros(m.B, np.int64)
    res, conv = np.zeros(m.B), np.zeros(m.B, np.uint8)
    if m.on_device:
        if check:
            m.check_rows()
        # the whole loop on the device (one call; docs/gpu.md): per-MDP results into its..conv
        th = xp.asarray(thresh)
        m.kernel("solve_loop")(
            *m.args(), m.R, g, th, max_iter, stop == "span", eval_max, float(eval_rel), V, Q, pi, its, evs, res, conv
        )
    else:
        # The row checks run inside the first sweep that reads P (the rows are in cache then);
        # an MDP with bad rows stops there, and the error is raised below.
        stats = np.zeros((m.B, len(_CHECK_STATS)))
        row_tol = ROW_SUM_TOL[np.dtype(m.dtype)] if check else -1.0
        elim_tau = ROW_SUM_TOL[np.dtype(m.dtype)] if _ACTION_ELIMINATION else -1.0
        m.kernel("solve")(
            *m.args(),
            m.R,
            g,
            thresh,
            max_iter,
            stop == "span",
            eval_max,
            float(eval_rel),
            row_tol,
            elim_tau,
            V,
            Q,
            pi,
            its,
            evs,
            res,
            conv,
            stats,
        )
        if check:
            c = {k: stats[:, i] for k, i in _CHECK_STATS.items()}
            if not c["done"].all():
                m.check_rows()  # some MDP never read P (e.g. gamma = 0): check separately
            else:
                err = np.nan if c["nonfinite_rows"].any() else c["row_sum_err"].max()
                m._stats_report((err, c["min_entry"].min(), c["nonfinite_rows"].sum()), m.pname)
    stats = (
        m.out(its) if not m.single else int(its[0]),
        m.out(res) if not m.single else float(res[0]),
        m.out(conv.astype(bool)) if not m.single else bool(conv[0]),
        m.out(evs) if not m.single else int(evs[0]),
    )
    return Solution(m.out(V), m.out(pi), m.out(Q), *stats[:3], stats[3])


def value_iteration(
    P: ArrayLike | CSR,
    R: ArrayLike,
    gamma: ArrayLike,
    *,
    epsilon: float = 1e-6,
    tol: float | None = None,
    stop: Stop = "span",
    max_iter: int = 100_000,
    V0: ArrayLike | None = None,
    check: bool = True,
) -> Solution:
    """Value iteration ``v <- T v`` until the stopping rule (module doc) holds, per MDP.

    Returns :class:`Solution` (V, policy, Q, iterations, residual, converged, eval_sweeps).
    """
    return _solve(
        P,
        R,
        gamma,
        epsilon=epsilon,
        tol=tol,
        stop=stop,
        max_iter=max_iter,
        V0=V0,
        check=check,
        eval_max=0,
        eval_rel=-1.0,
    )


def modified_policy_iteration(
    P: ArrayLike | CSR,
    R: ArrayLike,
    gamma: ArrayLike,
    *,
    m: int | None = None,
    epsilon: float = 1e-6,
    tol: float | None = None,
    stop: Stop = "span",
    max_iter: int = 10_000,
    max_eval: int = 500,
    eval_rel: float = 0.0,
    V0: ArrayLike | None = None,
    check: bool = True,
) -> Solution:
    """Modified policy iteration (Puterman 6.5): improvement sweep, then partial evaluation.

    m: evaluation sweeps per improvement. ``None`` (default) adapts them: evaluate the greedy
    policy (sweeps that read only its rows, 1/A of an improvement sweep each) until an
    evaluation step changes V by less than ``eval_rel`` times the last improvement residual
    (or half the stopping threshold, whichever is larger; once the policy stopped changing,
    half the threshold), at most ``max_eval`` sweeps, then shift V by its MacQueen midpoint.
    The default ``eval_rel=0`` evaluates each policy fully (policy iteration with a bounded
    iterative evaluation), which needs the fewest full sweeps; ``m=k`` fixes k evaluation
    sweeps (Puterman's MPI); ``m=0`` is value iteration. This is the solver :func:`solve` uses.
    """
    if m is None:
        eval_max = val.positive_int(max_eval, "max_eval")
        eval_rel = float(eval_rel)
        if not eval_rel >= 0:
            raise ValueError(f"eval_rel: must be >= 0, got {eval_rel}")
    else:
        eval_max, eval_rel = val.positive_int(m, "m", minimum=0), -1.0
    return _solve(
        P,
        R,
        gamma,
        epsilon=epsilon,
        tol=tol,
        stop=stop,
        max_iter=max_iter,
        V0=V0,
        check=check,
        eval_max=eval_max,
        eval_rel=eval_rel,
    )


solve = modified_policy_iteration


def policy_iteration(
    P: ArrayLike | CSR,
    R: ArrayLike,
    gamma: ArrayLike,
    *,
    evaluation: EvaluationMethod = "iterative",
    epsilon: float = 1e-6,
    stop: Stop = "span",
    max_iter: int = 1000,
    max_eval: int = 100_000,
    initial_policy: ArrayLike | str | None = None,
    seed: SeedLike = None,
    stream: int = 0,
    check: bool = True,
) -> Solution:
    """Policy iteration: evaluate the policy, improve greedily, until the policy is optimal.

    evaluation="iterative" (default): each policy is evaluated by sweeps of its own rows
    until an evaluation step is below half the stopping threshold (compiled loop; the
    epsilon guarantees of the module doc hold). evaluation="exact": each policy is
    evaluated by a linear solve (on the cpu backend, dense MDPs of up to 256 states run the whole
    loop in compiled code with an LU solve per policy; else LAPACK, or scipy / cupyx sparse for
    sparse P) and the loop stops when the greedy policy repeats; V is then the exact value of the
    returned policy.

    initial_policy: the policy the iteration starts from. ``None`` (default): the greedy policy
    of V = 0 (the first improvement of value 0); int actions ``(B, S)`` (or ``(S,)`` for one
    MDP); or ``"random"``: one action per state drawn uniformly, keyed by ``seed`` under the
    package's randomness rule (docs/conventions.md; the same policy on every backend), MDP b
    by the global batch index ``stream + b`` (a chunk starting at MDP g passes ``stream=g``). With
    evaluation="iterative" the initial policy is evaluated by the same sweeps (counted in
    ``eval_sweeps``) and the loop starts from its value, so the first improvement sweep
    improves it; with "exact", ``iterations`` counts the evaluations, the initial one included.
    """
    evaluation = val.choice(evaluation, "evaluation", ("iterative", "exact"))
    if initial_policy is None and (seed is not None or stream != 0):
        raise ValueError("seed, stream: only used with initial_policy='random'")
    if evaluation == "iterative":
        max_eval = val.positive_int(max_eval, "max_eval")
        V0, sweeps0 = None, 0
        if initial_policy is not None:
            m = _Model(P, R, check=check)
            pi0 = _initial_policy(m, initial_policy, seed, stream)
            ev = policy_evaluation(
                P, R, gamma, m.out(pi0), method="iterative", epsilon=epsilon, stop=stop, max_iter=max_eval, check=False
            )
            V0, sweeps0 = ev.V, ev.iterations
        sol = _solve(
            P,
            R,
            gamma,
            epsilon=epsilon,
            tol=None,
            stop=stop,
            max_iter=max_iter,
            V0=V0,
            check=check and initial_policy is None,
            eval_max=max_eval,
            eval_rel=0.0,
        )
        return sol._replace(eval_sweeps=sol.eval_sweeps + sweeps0) if initial_policy is not None else sol
    if (
        initial_policy is None
        and type(gamma) is float
        and type(max_iter) is int
        and 1 <= max_iter <= val.MAX_COUNT
        and type(P) is np.ndarray
        and type(R) is np.ndarray
    ):
        fast = _fast.cpu_kernel("mdp", "policy_iteration_exact_fast")  # one compiled call (pygenmod._fast)
        if fast is not None:
            res = fast(P, R, gamma, max_iter, _fast_tol(P, check), _EXACT_LOOP_MAX_S)
            if res is not None:
                return _exact_solution(P.ndim == 3, *res)
    m = _Model(P, R, check=check)
    g = m.gamma(gamma)
    max_iter = val.positive_int(max_iter, "max_iter")
    if not m.sparse and not m.on_device and m.S <= _EXACT_LOOP_MAX_S and choose(False) == "cpu":
        pi = (
            np.empty((m.B, m.S), np.int64)
            if initial_policy is None
            else _initial_policy(m, initial_policy, seed, stream)
        )
        V, Q = np.empty((m.B, m.S), m.dtype), np.empty((m.B, m.S, m.A), m.dtype)
        its, done = np.empty(m.B, np.int64), np.empty(m.B, np.uint8)
        loop = get_kernel("mdp", "policy_iteration_exact_dense", "cpu")
        if loop(m.P, m.R, g, max_iter, initial_policy is not None, V, Q, pi, its, done) >= 0:
            raise np.linalg.LinAlgError("Singular matrix")  # what LAPACK's solve raises
        return _exact_solution(m.single, m.out(V), m.out(pi), m.out(Q), its, done.astype(bool))
    xp = m.xp
    backup = m.kernel("backup")
    Q = xp.empty((m.B, m.S, m.A), m.dtype)
    Vb = xp.empty((m.B, m.S), m.dtype)
    if initial_policy is None:
        pi = xp.empty((m.B, m.S), xp.int64)
        V = xp.zeros((m.B, m.S), m.dtype)
        backup(*m.args(), m.R, V, g, 0, None, None, None, Q, Vb, pi)
    else:
        pi = _initial_policy(m, initial_policy, seed, stream)
    its = np.zeros(m.B, np.int64)
    done = np.zeros(m.B, bool)
    for _ in range(max_iter):
        its[~done] += 1
        V = _exact_values(m, g, pi, None)
        new_pi = xp.empty_like(pi)
        backup(*m.args(), m.R, V, g, 0, None, None, None, Q, Vb, new_pi)
        # keep the current action where it is still greedy (ties), so the loop terminates
        b_ix, s_ix = _row_index(m)
        keep = Q[b_ix, s_ix, pi] >= Q[b_ix, s_ix, new_pi]
        new_pi = xp.where(keep, pi, new_pi)
        same = np.asarray((new_pi == pi).all(-1).get() if m.on_device else (new_pi == pi).all(-1))
        done |= same
        pi = new_pi
        if done.all():
            break
    res = np.zeros(m.B)
    return Solution(
        m.out(V),
        m.out(pi),
        m.out(Q),
        *(m.out(x) if not m.single else x[0].item() for x in (its, res, done, np.zeros(m.B, np.int64))),
    )


def _exact_solution(single, V, pi, Q, its, done):
    """The Solution of exact policy iteration from the compiled loop (NumPy arrays)."""
    if single:
        return Solution(V, pi, Q, int(its[0]), 0.0, bool(done[0]), 0)
    B = its.shape[0]
    return Solution(V, pi, Q, its, np.zeros(B), done, np.zeros(B, np.int64))


def _row_index(m):
    """(B, 1) and (1, S) index arrays: ``X[b_ix, s_ix, pi]`` picks X[b, s, pi[b, s]] (plain
    fancy indexing: take_along_axis costs ~25 us a call at gridworld size)."""
    xp = m.xp
    return xp.arange(m.B)[:, None], xp.arange(m.S)[None, :]


def _initial_policy(m, initial_policy, seed, stream):
    """The (B, S) int64 starting policy of policy_iteration on m's device."""
    if isinstance(initial_policy, str):
        val.choice(initial_policy, "initial_policy", ("random",))
        from .. import random as _random
        from .._seed import resolve_seed

        # uniform(0, 1) per (MDP, state), row b keyed by stream + b: the same policy on every backend
        u = _random.uniform(resolve_seed(seed), (m.B, m.S), stream=stream, dtype=np.float64)
        pi = np.minimum((u * m.A).astype(np.int64), m.A - 1)
        return m.xp.asarray(pi)
    if seed is not None or stream != 0:
        raise ValueError("seed, stream: only used with initial_policy='random'")
    if to_native(initial_policy).dtype.kind not in "iu":
        raise TypeError("initial_policy: expected int actions (B, S), 'random' or None")
    det, _ = m.policy(initial_policy, "initial_policy")
    return m.xp.ascontiguousarray(det.copy())


def _exact_values(m, g, det, stoch):
    """V^pi by a linear solve of (I - g P_pi) V = r_pi for every MDP."""
    xp, B, S, A = m.xp, m.B, m.S, m.A
    if det is not None:
        r_pi = m.R[(*_row_index(m), det)]
    else:
        r_pi = (stoch * m.R).sum(-1)
    if not m.sparse:
        if det is not None:
            P_pi = m.P[(*_row_index(m), det)]
        else:
            P_pi = xp.einsum("bsa,bsat->bst", stoch, m.P)
        M = xp.eye(S, dtype=xp.float64)[None] - g.astype(xp.float64)[:, None, None] * P_pi
        V = xp.linalg.solve(M, r_pi.astype(xp.float64)[..., None])[..., 0]
        return xp.ascontiguousarray(V.astype(m.dtype))
    if m.on_device:
        import cupyx.scipy.sparse as csp
        import cupyx.scipy.sparse.linalg as cspla

        return _exact_sparse(csp, cspla, xp, m, g, det, stoch, r_pi)
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    c = m.csr
    M = sp.csr_matrix((c.data.astype(np.float64), c.indices, c.indptr), shape=(B * S * A, S))
    out = np.empty((B, S), m.dtype)
    gg = np.asarray(g, np.float64)
    for b in range(B):
        blk = M[b * S * A : (b + 1) * S * A]
        if det is not None:
            Pp = blk[np.arange(S) * A + det[b]]
        else:
            W = sp.csr_matrix(
                (stoch[b].reshape(-1).astype(np.float64), (np.repeat(np.arange(S), A), np.arange(S * A))),
                shape=(S, S * A),
            )
            Pp = W @ blk
        lhs = (sp.identity(S, format="csc") - gg[b] * Pp).tocsc()
        out[b] = spla.spsolve(lhs, r_pi[b].astype(np.float64))
    return out


def _exact_sparse(sp, spla, xp, m, g, det, stoch, r_pi):
    """V^pi for sparse P with a scipy-like sparse module ``sp`` (cupyx.scipy.sparse on CUDA):
    P_pi = W @ P_b with W (S, S*A) the policy's weights (a one-hot row for a deterministic
    policy), then one sparse solve per MDP (cuSOLVER's QR on CUDA). Only the API subset that
    scipy and cupyx share, so the tests run this on the CPU with scipy."""
    B, S, A = m.B, m.S, m.A
    c = m.csr
    M = sp.csr_matrix((c.data.astype(xp.float64), c.indices, c.indptr), shape=(B * S * A, S))
    gg = g.astype(xp.float64)
    rows = xp.repeat(xp.arange(S), A) if det is None else xp.arange(S)
    out = xp.empty((B, S), m.dtype)
    for b in range(B):
        if det is None:
            W = sp.coo_matrix((stoch[b].reshape(-1).astype(xp.float64), (rows, xp.arange(S * A))), shape=(S, S * A))
        else:
            W = sp.coo_matrix((xp.ones(S), (rows, xp.arange(S) * A + det[b])), shape=(S, S * A))
        Pp = W.tocsr() @ M[b * S * A : (b + 1) * S * A]
        lhs = (sp.identity(S, format="csr") - float(gg[b]) * Pp).tocsr()
        out[b] = spla.spsolve(lhs, r_pi[b].astype(xp.float64))
    return out


def policy_evaluation(
    P: ArrayLike | CSR,
    R: ArrayLike,
    gamma: ArrayLike,
    policy: ArrayLike,
    *,
    evaluation: EvaluationMethod = "exact",
    epsilon: float = 1e-6,
    tol: float | None = None,
    stop: Stop = "span",
    max_iter: int = 100_000,
    V0: ArrayLike | None = None,
    check: bool = True,
    method: Any = val.DEPRECATED,
) -> Evaluation:
    """The value V^pi of a deterministic (B, S) or stochastic (B, S, A) policy.

    evaluation="exact": linear solve of ``(I - gamma P_pi) V = r_pi`` (float64 internally).
    evaluation="iterative": sweeps ``V <- T_pi V`` (compiled loop, only the policy's rows are
    read) with the stopping rules of the module doc (``||V - V^pi|| <= epsilon/2``).
    ``method=`` is the deprecated spelling of ``evaluation=`` (the name policy_iteration uses).
    """
    evaluation = val.renamed(evaluation, method, "evaluation", "method", func="mdp.policy_evaluation", default="exact")
    method = val.choice(evaluation, "evaluation", ("exact", "iterative"))
    m = _Model(P, R, check=check)
    g = m.gamma(gamma)
    det, stoch = m.policy(policy)
    xp = m.xp
    if method == "exact":
        V = _exact_values(m, g, det, stoch)
        z = np.zeros(m.B)
        stats = (z.astype(np.int64), z, np.ones(m.B, bool))
    else:
        stop = val.choice(stop, "stop", ("span", "sup"))
        max_iter = val.positive_int(max_iter, "max_iter")
        thresh = _threshold(m, g, epsilon, tol, stop, g)
        V = xp.zeros((m.B, m.S), m.dtype) if V0 is None else m.values(V0, "V0").copy()
        its, res, conv = np.zeros(m.B, np.int64), np.zeros(m.B), np.zeros(m.B, np.uint8)
        if m.on_device:
            th = xp.asarray(thresh)
            m.kernel("evaluate_loop")(*m.args(), m.R, g, th, max_iter, stop == "span", det, stoch, V, its, res, conv)
        else:
            m.kernel("evaluate")(*m.args(), m.R, g, thresh, max_iter, stop == "span", det, stoch, V, its, res, conv)
        stats = (its, res, conv.astype(bool))
    if m.single:
        return Evaluation(m.out(V), int(stats[0][0]), float(stats[1][0]), bool(stats[2][0]))
    return Evaluation(m.out(V), *stats)
