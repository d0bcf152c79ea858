"""numba Bellman backups (same contract as csrc/bind/mdp.cpp and the math of mdp.hpp).

Dense and CSR kernels share one body: a model is (dense, P, data, indices, indptr), the
unused half being empty arrays. The solver loops run per MDP in compiled code, in parallel
over the MDPs of a batch (each MDP's sweeps on one thread), or, when the batch has fewer MDPs
than threads and they are large, one MDP after the other with each sweep's states over threads.
"""

import numba as nb
import numpy as np

from .slices import budgets

# Columns of the solvers' check_stats (B, 4) record: C++ mdp::CheckStat, pygenmod.mdp._model._CHECK_STATS
# (tests/test_contracts.py checks all three agree).
_CS_DONE, _CS_ROW_SUM_ERR, _CS_MIN_ENTRY, _CS_NONFINITE_ROWS = 0, 1, 2, 3

K_OPTIMAL, K_POLICY, K_STOCHASTIC, K_SOFT = 0, 1, 2, 3


@nb.njit(cache=True, inline="always")
def _dot(dense, P, data, indices, indptr, b, s, a, v, S, A):
    acc = 0.0
    if dense:
        for j in range(S):
            acc += np.float64(P[b, s, a, j]) * v[j]
    else:
        r = (b * S + s) * A + a
        for k in range(indptr[r], indptr[r + 1]):
            acc += np.float64(data[k]) * v[indices[k]]
    return acc


@nb.njit(cache=True)
def _backup_state(dense, P, data, indices, indptr, b, s, r_s, v, gamma, kind, pi_det, pi_s, tau, q_s, S, A):
    """All Q[a] of state s; returns (value for kind, greedy action)."""
    qmax = -np.inf
    arg = 0
    expect = 0.0
    for a in range(A):
        q = q_s.dtype.type(r_s[a] + gamma * _dot(dense, P, data, indices, indptr, b, s, a, v, S, A))
        q_s[a] = q
        if q > qmax:
            qmax = q
            arg = a
        if kind == K_STOCHASTIC:
            expect += np.float64(pi_s[a]) * q
    if kind == K_POLICY:
        return q_s[pi_det], arg
    if kind == K_STOCHASTIC:
        return q_s.dtype.type(expect), arg
    if kind == K_SOFT:
        z = 0.0
        for a in range(A):
            z += np.exp(np.float64((q_s[a] - qmax) / tau))
        return q_s.dtype.type(qmax + tau * np.log(z)), arg
    return qmax, arg


@nb.njit(parallel=True, cache=True)
def _backup(dense, P, data, indices, indptr, S, A, R, V, gamma, kind, pi_det, pi_stoch, tau, Q, V_out, policy):
    B = R.shape[0]
    dummy = np.zeros(A, R.dtype)
    for bs_u in nb.prange(B * S):
        bs = np.int64(bs_u)  # signed: one callee signature (see __init__.py)
        b, s = bs // S, bs % S
        pd = pi_det[b, s] if kind == K_POLICY else 0
        ps = pi_stoch[b, s] if kind == K_STOCHASTIC else dummy
        t = tau[b] if kind == K_SOFT else R.dtype.type(1)
        x, arg = _backup_state(
            dense, P, data, indices, indptr, b, s, R[b, s], V[b], gamma[b], kind, pd, ps, t, Q[b, s], S, A
        )
        V_out[b, s] = x
        policy[b, s] = arg


def _opt(x, shape, dtype):
    return np.zeros(shape, dtype) if x is None else x


def _check_policy(pi_det, A):
    if pi_det is not None and pi_det.size and (pi_det.min() < 0 or pi_det.max() >= A):
        raise ValueError("policy: action out of range")


def backup_dense(P, R, V, gamma, kind, pi_det, pi_stoch, tau, Q, V_out, policy):
    B, S, A = R.shape
    _check_policy(pi_det, A)
    _backup(
        True,
        P,
        np.empty(0, P.dtype),
        np.empty(0, np.int32),
        np.zeros(1, np.int64),
        S,
        A,
        R,
        V,
        gamma,
        kind,
        _opt(pi_det, (1, 1), np.int64),
        _opt(pi_stoch, (1, 1, 1), R.dtype),
        _opt(tau, 1, R.dtype),
        Q,
        V_out,
        policy,
    )


def backup_csr(data, indices, indptr, n_states, n_actions, R, V, gamma, kind, pi_det, pi_stoch, tau, Q, V_out, policy):
    _check_policy(pi_det, n_actions)
    _backup(
        False,
        np.empty((0, 0, 0, 0), data.dtype),
        data,
        indices,
        indptr,
        n_states,
        n_actions,
        R,
        V,
        gamma,
        kind,
        _opt(pi_det, (1, 1), np.int64),
        _opt(pi_stoch, (1, 1, 1), R.dtype),
        _opt(tau, 1, R.dtype),
        Q,
        V_out,
        policy,
    )


# ----------------------------------------------------------------------------- solvers
@nb.njit(cache=True)
def _row_sum_min(dense, P, data, indptr, b, s, a, S, A):
    sm = 0.0
    mn = np.inf
    if dense:
        for j in range(S):
            x = np.float64(P[b, s, a, j])
            sm += x
            mn = min(mn, x)
    else:
        r = (b * S + s) * A + a
        for k in range(indptr[r], indptr[r + 1]):
            x = np.float64(data[k])
            sm += x
            mn = min(mn, x)
    return sm, mn


@nb.njit(cache=True)
def _improve_state(dense, P, data, indices, indptr, b, s, r, v, zero_v, gamma, q, S, A, dummy):
    """Optimality backup of state s: (value, greedy action), Q[s] written."""
    if zero_v:  # P v = 0: Q = R, P not read
        best = -np.inf
        arg = 0
        for a in range(A):
            q[s, a] = r[s, a]
            if r[s, a] > best:
                best = r[s, a]
                arg = a
        return r.dtype.type(best), arg
    return _backup_state(
        dense, P, data, indices, indptr, b, s, r[s], v, gamma, K_OPTIMAL, 0, dummy, r.dtype.type(1), q[s], S, A
    )


@nb.njit(cache=True)
def _check_state(dense, P, data, indptr, b, s, S, A):
    """Row check of state s: (max |sum - 1| of its finite rows, their min entry, #non-finite rows)."""
    err, mn, bad = 0.0, np.inf, 0
    for a in range(A):
        sm, rmn = _row_sum_min(dense, P, data, indptr, b, s, a, S, A)
        if not np.isfinite(sm):
            bad += 1
        else:
            err = max(err, abs(sm - 1.0))
            mn = min(mn, rmn)
    return err, mn, bad


@nb.njit(cache=True)
def _improve(dense, P, data, indices, indptr, b, r, v, zero_v, gamma, u, q, pi, S, A, check, chk):
    lo, hi = np.inf, -np.inf
    dummy = np.zeros(1, r.dtype)
    for s in range(S):
        x, arg = _improve_state(dense, P, data, indices, indptr, b, s, r, v, zero_v, gamma, q, S, A, dummy)
        pi[s] = arg
        u[s] = x
        d = np.float64(x) - np.float64(v[s])
        lo = min(lo, d)
        hi = max(hi, d)
        if check:
            err, mn, bad = _check_state(dense, P, data, indptr, b, s, S, A)
            chk[0] = max(chk[0], err)
            chk[1] = min(chk[1], mn)
            chk[2] += bad
    return lo, hi


@nb.njit(parallel=True, cache=True)
def _improve_par(dense, P, data, indices, indptr, b, r, v, zero_v, gamma, u, q, pi, S, A, check, chk):
    """_improve with the states over threads (one large MDP); per-state results, then the
    min/max/count reductions in order (exact, so the same as the serial sweep)."""
    dummy = np.zeros(1, r.dtype)
    d = np.empty(S)
    err = np.zeros(S)
    mn = np.full(S, np.inf)
    bad = np.zeros(S, np.int64)
    for s_u in nb.prange(S):
        s = np.int64(s_u)  # signed: one callee signature (see __init__.py)
        x, arg = _improve_state(dense, P, data, indices, indptr, b, s, r, v, zero_v, gamma, q, S, A, dummy)
        pi[s] = arg
        u[s] = x
        d[s] = np.float64(x) - np.float64(v[s])
        if check:
            err[s], mn[s], bad[s] = _check_state(dense, P, data, indptr, b, s, S, A)
    if check:
        chk[0] = max(chk[0], err.max())
        chk[1] = min(chk[1], mn.min())
        chk[2] += bad.sum()
    return d.min(), d.max()


@nb.njit(cache=True)
def _policy_state(dense, P, data, indices, indptr, b, s, r, u, gamma, pi, pi_stoch, stochastic, S, A):
    if stochastic:
        acc = 0.0
        for a in range(A):
            if pi_stoch[s, a] != 0:
                qa = r.dtype.type(r[s, a] + gamma * _dot(dense, P, data, indices, indptr, b, s, a, u, S, A))
                acc += np.float64(pi_stoch[s, a]) * qa
        return r.dtype.type(acc)
    a = pi[s]
    return r.dtype.type(r[s, a] + gamma * _dot(dense, P, data, indices, indptr, b, s, a, u, S, A))


@nb.njit(cache=True)
def _policy_sweep(dense, P, data, indices, indptr, b, r, u, gamma, pi, pi_stoch, stochastic, w, S, A):
    lo, hi = np.inf, -np.inf
    for s in range(S):
        x = _policy_state(dense, P, data, indices, indptr, b, s, r, u, gamma, pi, pi_stoch, stochastic, S, A)
        w[s] = x
        d = np.float64(x) - np.float64(u[s])
        lo = min(lo, d)
        hi = max(hi, d)
    return lo, hi


@nb.njit(parallel=True, cache=True)
def _policy_sweep_par(dense, P, data, indices, indptr, b, r, u, gamma, pi, pi_stoch, stochastic, w, S, A):
    d = np.empty(S)
    for s_u in nb.prange(S):
        s = np.int64(s_u)  # signed: one callee signature (see __init__.py)
        x = _policy_state(dense, P, data, indices, indptr, b, s, r, u, gamma, pi, pi_stoch, stochastic, S, A)
        w[s] = x
        d[s] = np.float64(x) - np.float64(u[s])
    return d.min(), d.max()


# The solver loops run as a series of calls (see slices.py: Ctrl-C between calls), each doing
# at most `budget` sweeps per MDP and resuming from a per-MDP state:
#   v, u (B, S): the input of the next improvement sweep and the latest iterate; prev (B, S):
#   the previous greedy policy; ist (B, 6) int64: iterations, eval sweeps, phase (0: an
#   improvement sweep is next, 1: evaluating, 2: done), eval sweeps of this policy, zero_v,
#   converged; fst (B, 6): residual, lo, hi (last improvement), elo, ehi (last evaluation),
#   target (adaptive evaluation). The state carries every value the loop carries, so the
#   result is the same floats as one uninterrupted loop (mdp.hpp solve_one).
_IT, _EV, _PHASE, _EJ, _ZERO, _CONV = range(6)
_RES, _LO, _HI, _ELO, _EHI, _TGT = range(6)


@nb.njit(cache=True)
def _finish(V, Q, u, fst, ist, span, k, S, A):
    c = k * 0.5 * (fst[_LO] + fst[_HI]) if (span and k > 0) else 0.0
    for s in range(S):
        V[s] = V.dtype.type(u[s] + c)
    if c != 0:
        for s in range(S):
            for a in range(A):
                Q[s, a] = Q.dtype.type(Q[s, a] + c)
    ist[_PHASE] = 2


@nb.njit(cache=True)
def _solve_steps(
    dense,
    P,
    data,
    indices,
    indptr,
    b,
    r,
    gamma,
    thresh,
    max_iter,
    span,
    eval_max,
    eval_rel,
    row_tol,
    V,
    Q,
    pi,
    S,
    A,
    chk,
    par,
    v,
    u,
    prev,
    ist,
    fst,
    budget,
):
    """Up to `budget` sweeps of modified policy iteration on MDP b (mdp.hpp solve_one)."""
    w = np.empty(S, V.dtype)
    g = np.float64(gamma)
    k = g / (1 - g) if g < 1 else 0.0
    dummy = np.zeros((1, 1), V.dtype)
    sweeps = 0
    while ist[_PHASE] != 2 and sweeps < budget:
        sweeps += 1
        if ist[_PHASE] == 1:  # one evaluation sweep of the greedy policy
            if par:
                elo, ehi = _policy_sweep_par(dense, P, data, indices, indptr, b, r, u, gamma, pi, dummy, False, w, S, A)
            else:
                elo, ehi = _policy_sweep(dense, P, data, indices, indptr, b, r, u, gamma, pi, dummy, False, w, S, A)
            u[:] = w
            ist[_EV] += 1
            ist[_EJ] += 1
            fst[_ELO], fst[_EHI] = elo, ehi
            if (fst[_TGT] >= 0 and ehi - elo < fst[_TGT]) or ist[_EJ] >= eval_max:
                if k > 0:
                    c = k * 0.5 * (elo + ehi)
                    for s in range(S):
                        u[s] = u.dtype.type(u[s] + c)
                v[:] = u
                ist[_PHASE] = 0
            continue
        zero_v = ist[_ZERO] != 0
        do_check = row_tol >= 0 and chk[_CS_DONE] == 0 and not zero_v
        if do_check:
            chk[_CS_DONE] = 1.0
            chk[_CS_ROW_SUM_ERR], chk[_CS_MIN_ENTRY], chk[_CS_NONFINITE_ROWS] = 0.0, np.inf, 0.0
        # the sweeps update the last three columns in order: (row sum error, min entry, bad rows)
        if par:
            lo, hi = _improve_par(
                dense, P, data, indices, indptr, b, r, v, zero_v, gamma, u, Q, pi, S, A, do_check, chk[_CS_ROW_SUM_ERR:]
            )
        else:
            lo, hi = _improve(
                dense, P, data, indices, indptr, b, r, v, zero_v, gamma, u, Q, pi, S, A, do_check, chk[_CS_ROW_SUM_ERR:]
            )
        ist[_ZERO] = 0
        ist[_IT] += 1
        fst[_LO], fst[_HI] = lo, hi
        if do_check and (
            not (chk[_CS_ROW_SUM_ERR] <= row_tol) or chk[_CS_MIN_ENTRY] < 0 or chk[_CS_NONFINITE_ROWS] > 0
        ):
            _finish(V, Q, u, fst, ist, span, k, S, A)  # invalid P: reported by the caller
            break
        res = (hi - lo) if span else max(abs(lo), abs(hi))
        fst[_RES] = res
        if res < thresh or res == 0:
            ist[_CONV] = 1
            _finish(V, Q, u, fst, ist, span, k, S, A)
            break
        if ist[_IT] >= max_iter:
            _finish(V, Q, u, fst, ist, span, k, S, A)
            break
        if eval_max > 0:
            same = True
            for s in range(S):
                if prev[s] != pi[s]:
                    same = False
                prev[s] = pi[s]
            fst[_TGT] = -1.0
            if eval_rel >= 0:
                fst[_TGT] = max(0.5 * thresh, 0.0 if same else eval_rel * res)
            ist[_EJ] = 0
            ist[_PHASE] = 1
        else:
            v[:] = u


@nb.njit(cache=True)
def _solve_mdp(
    dense,
    P,
    data,
    indices,
    indptr,
    b,
    S,
    A,
    R,
    gamma,
    thresh,
    max_iter,
    span,
    eval_max,
    eval_rel,
    row_tol,
    V,
    Q,
    policy,
    iterations,
    eval_sweeps,
    residual,
    converged,
    check_stats,
    par,
    v,
    u,
    prev,
    ist,
    fst,
    budget,
):
    if ist[b, _PHASE] == 2:
        return
    _solve_steps(
        dense,
        P,
        data,
        indices,
        indptr,
        b,
        R[b],
        gamma[b],
        thresh[b],
        max_iter,
        span,
        eval_max,
        eval_rel,
        row_tol,
        V[b],
        Q[b],
        policy[b],
        S,
        A,
        check_stats[b],
        par,
        v[b],
        u[b],
        prev[b],
        ist[b],
        fst[b],
        budget,
    )
    iterations[b] = ist[b, _IT]
    eval_sweeps[b] = ist[b, _EV]
    residual[b] = fst[b, _RES]
    converged[b] = ist[b, _CONV]


@nb.njit(parallel=True, cache=True)
def _solve(
    dense,
    P,
    data,
    indices,
    indptr,
    S,
    A,
    R,
    gamma,
    thresh,
    max_iter,
    span,
    eval_max,
    eval_rel,
    row_tol,
    V,
    Q,
    policy,
    iterations,
    eval_sweeps,
    residual,
    converged,
    check_stats,
    v,
    u,
    prev,
    ist,
    fst,
    budget,
):
    for b_u in nb.prange(R.shape[0]):  # MDPs over threads, each MDP's sweeps in one thread
        b = np.int64(b_u)  # signed: one callee signature (see __init__.py)
        _solve_mdp(
            dense,
            P,
            data,
            indices,
            indptr,
            b,
            S,
            A,
            R,
            gamma,
            thresh,
            max_iter,
            span,
            eval_max,
            eval_rel,
            row_tol,
            V,
            Q,
            policy,
            iterations,
            eval_sweeps,
            residual,
            converged,
            check_stats,
            False,
            v,
            u,
            prev,
            ist,
            fst,
            budget,
        )


@nb.njit(cache=True)
def _solve_each(
    dense,
    P,
    data,
    indices,
    indptr,
    S,
    A,
    R,
    gamma,
    thresh,
    max_iter,
    span,
    eval_max,
    eval_rel,
    row_tol,
    V,
    Q,
    policy,
    iterations,
    eval_sweeps,
    residual,
    converged,
    check_stats,
    v,
    u,
    prev,
    ist,
    fst,
    budget,
):
    for b in range(R.shape[0]):  # one MDP after the other, the states of each sweep over threads
        _solve_mdp(
            dense,
            P,
            data,
            indices,
            indptr,
            b,
            S,
            A,
            R,
            gamma,
            thresh,
            max_iter,
            span,
            eval_max,
            eval_rel,
            row_tol,
            V,
            Q,
            policy,
            iterations,
            eval_sweeps,
            residual,
            converged,
            check_stats,
            True,
            v,
            u,
            prev,
            ist,
            fst,
            budget,
        )


def _solver(B, work):
    """Like the compiled solvers: over MDPs when the batch fills the threads, else over the states
    of each sweep when a sweep is long enough (`work` multiply-adds, about 2M) to pay for it."""
    return _solve_each if B < nb.get_num_threads() and work >= (1 << 21) else _solve


def _check_solve(max_iter, eval_max):
    if max_iter < 1:
        raise ValueError("max_iter: must be >= 1")
    if eval_max < 0:
        raise ValueError("eval_max: must be >= 0")


def _first_budget(B, work):
    """Sweeps of a first call of about 2**25 multiply-adds (~20 ms; most solves: one or two
    calls, as each call wakes the thread pool, costly on a busy machine)."""
    return max(4, (1 << 25) // max(1, B * work))


def _run_solver(run, model, V, rest, work):
    """Runs a solver kernel in slices (Ctrl-C between them) until every MDP is done."""
    B, S = V.shape
    v = V.copy()
    u = np.empty_like(V)
    prev = np.full((B, S), -1, np.int64)
    ist = np.zeros((B, 6), np.int64)
    fst = np.zeros((B, 6))
    ist[:, _ZERO] = ~(V != 0).any(1)
    rest[-1][:] = 0.0  # check_stats
    for budget in budgets(_first_budget(B, work)):
        run(*model, *rest[:5], V, *rest[5:], v, u, prev, ist, fst, budget)
        if (ist[:, _PHASE] == 2).all():
            return


def solve_dense(
    P,
    R,
    gamma,
    thresh,
    max_iter,
    span,
    eval_max,
    eval_rel,
    row_tol,
    elim_tau,
    V,
    Q,
    policy,
    iterations,
    eval_sweeps,
    residual,
    converged,
    check_stats,
):
    # elim_tau: the compiled solvers' action elimination; it skips work, never changes the
    # result, so the numba solvers (full sweeps) take and ignore it.
    _check_solve(max_iter, eval_max)
    B, S, A = R.shape
    model = (True, P, np.empty(0, P.dtype), np.empty(0, np.int32), np.zeros(1, np.int64), S, A, R, gamma, thresh)
    _run_solver(
        _solver(B, S * S * A),
        model,
        V,
        (
            max_iter,
            span,
            eval_max,
            eval_rel,
            row_tol,
            Q,
            policy,
            iterations,
            eval_sweeps,
            residual,
            converged,
            check_stats,
        ),
        S * S * A,
    )


def solve_csr(
    data,
    indices,
    indptr,
    n_states,
    n_actions,
    R,
    gamma,
    thresh,
    max_iter,
    span,
    eval_max,
    eval_rel,
    row_tol,
    elim_tau,
    V,
    Q,
    policy,
    iterations,
    eval_sweeps,
    residual,
    converged,
    check_stats,
):
    _check_solve(max_iter, eval_max)
    nnz = int(indptr[n_states * n_actions] - indptr[0]) if len(indptr) > n_states * n_actions else 0
    model = (False, np.empty((0, 0, 0, 0), data.dtype), data, indices, indptr, n_states, n_actions, R, gamma, thresh)
    _run_solver(
        _solver(R.shape[0], 2 * nnz),
        model,
        V,
        (
            max_iter,
            span,
            eval_max,
            eval_rel,
            row_tol,
            Q,
            policy,
            iterations,
            eval_sweeps,
            residual,
            converged,
            check_stats,
        ),
        2 * nnz + n_states,
    )


# Iterative policy evaluation, in slices like the solver: x (B, S) the iterate, ist (B, 3)
# iterations, done, converged; fst (B, 3) residual, lo, hi.
@nb.njit(cache=True)
def _evaluate_mdp(
    dense,
    P,
    data,
    indices,
    indptr,
    b,
    S,
    A,
    R,
    gamma,
    thresh,
    max_iter,
    span,
    pi_det,
    pi_stoch,
    stochastic,
    V,
    iterations,
    residual,
    converged,
    par,
    x,
    ist,
    fst,
    budget,
):
    if ist[b, 1]:
        return
    xb = x[b]
    w = np.empty(S, V.dtype)
    g = np.float64(gamma[b])
    k = g / (1 - g) if g < 1 else 0.0
    pd = pi_det[b] if not stochastic else pi_det[0]
    ps = pi_stoch[b] if stochastic else pi_stoch[0]
    for _ in range(budget):
        if par:
            lo, hi = _policy_sweep_par(
                dense, P, data, indices, indptr, b, R[b], xb, gamma[b], pd, ps, stochastic, w, S, A
            )
        else:
            lo, hi = _policy_sweep(dense, P, data, indices, indptr, b, R[b], xb, gamma[b], pd, ps, stochastic, w, S, A)
        xb[:] = w
        ist[b, 0] += 1
        res = (hi - lo) if span else max(abs(lo), abs(hi))
        fst[b, 0], fst[b, 1], fst[b, 2] = res, lo, hi
        if res < thresh[b] or res == 0:
            ist[b, 2] = 1
            ist[b, 1] = 1
        elif ist[b, 0] >= max_iter:
            ist[b, 1] = 1
        if ist[b, 1]:
            c = k * 0.5 * (lo + hi) if (span and k > 0) else 0.0
            for s in range(S):
                V[b, s] = V.dtype.type(xb[s] + c)
            break
    iterations[b] = ist[b, 0]
    residual[b] = fst[b, 0]
    converged[b] = ist[b, 2]


@nb.njit(parallel=True, cache=True)
def _evaluate(
    dense,
    P,
    data,
    indices,
    indptr,
    S,
    A,
    R,
    gamma,
    thresh,
    max_iter,
    span,
    pi_det,
    pi_stoch,
    stochastic,
    V,
    iterations,
    residual,
    converged,
    x,
    ist,
    fst,
    budget,
):
    for b_u in nb.prange(R.shape[0]):
        b = np.int64(b_u)  # signed: one callee signature (see __init__.py)
        _evaluate_mdp(
            dense,
            P,
            data,
            indices,
            indptr,
            b,
            S,
            A,
            R,
            gamma,
            thresh,
            max_iter,
            span,
            pi_det,
            pi_stoch,
            stochastic,
            V,
            iterations,
            residual,
            converged,
            False,
            x,
            ist,
            fst,
            budget,
        )


@nb.njit(cache=True)
def _evaluate_each(
    dense,
    P,
    data,
    indices,
    indptr,
    S,
    A,
    R,
    gamma,
    thresh,
    max_iter,
    span,
    pi_det,
    pi_stoch,
    stochastic,
    V,
    iterations,
    residual,
    converged,
    x,
    ist,
    fst,
    budget,
):
    for b in range(R.shape[0]):
        _evaluate_mdp(
            dense,
            P,
            data,
            indices,
            indptr,
            b,
            S,
            A,
            R,
            gamma,
            thresh,
            max_iter,
            span,
            pi_det,
            pi_stoch,
            stochastic,
            V,
            iterations,
            residual,
            converged,
            True,
            x,
            ist,
            fst,
            budget,
        )


def _eval_args(pi_det, pi_stoch, A, dtype):
    if (pi_det is None) == (pi_stoch is None):
        raise ValueError("policy: give exactly one of a deterministic or stochastic policy")
    _check_policy(pi_det, A)
    return (_opt(pi_det, (1, 1), np.int64), _opt(pi_stoch, (1, 1, 1), dtype), pi_stoch is not None)


def _run_evaluate(run, args, V, work):
    x = V.copy()
    ist = np.zeros((V.shape[0], 3), np.int64)
    fst = np.zeros((V.shape[0], 3))
    for budget in budgets(_first_budget(V.shape[0], work)):
        run(*args, x, ist, fst, budget)
        if ist[:, 1].all():
            return


def evaluate_dense(P, R, gamma, thresh, max_iter, span, pi_det, pi_stoch, V, iterations, residual, converged):
    if max_iter < 1:
        raise ValueError("max_iter: must be >= 1")
    B, S, A = R.shape
    run = _evaluate_each if _solver(B, S * S * A) is _solve_each else _evaluate  # (the compiled rule)
    _run_evaluate(
        run,
        (
            True,
            P,
            np.empty(0, P.dtype),
            np.empty(0, np.int32),
            np.zeros(1, np.int64),
            S,
            A,
            R,
            gamma,
            thresh,
            max_iter,
            span,
            *_eval_args(pi_det, pi_stoch, A, R.dtype),
            V,
            iterations,
            residual,
            converged,
        ),
        V,
        S * S,
    )


def evaluate_csr(
    data,
    indices,
    indptr,
    n_states,
    n_actions,
    R,
    gamma,
    thresh,
    max_iter,
    span,
    pi_det,
    pi_stoch,
    V,
    iterations,
    residual,
    converged,
):
    if max_iter < 1:
        raise ValueError("max_iter: must be >= 1")
    nnz = int(indptr[n_states * n_actions] - indptr[0]) if len(indptr) > n_states * n_actions else 0
    run = _evaluate_each if _solver(R.shape[0], 2 * nnz) is _solve_each else _evaluate
    _run_evaluate(
        run,
        (
            False,
            np.empty((0, 0, 0, 0), data.dtype),
            data,
            indices,
            indptr,
            n_states,
            n_actions,
            R,
            gamma,
            thresh,
            max_iter,
            span,
            *_eval_args(pi_det, pi_stoch, n_actions, R.dtype),
            V,
            iterations,
            residual,
            converged,
        ),
        V,
        2 * nnz // max(1, n_actions) + n_states,
    )


# ----------------------------------------------------------------------------- input checks
@nb.njit(parallel=True, cache=True)
def _row_stats(data, indptr, out):
    rows = indptr.shape[0] - 1
    err = np.zeros(rows)
    mn = np.full(rows, np.inf)
    bad = np.zeros(rows, np.int64)
    for i in nb.prange(rows):
        sm = 0.0
        for k in range(indptr[i], indptr[i + 1]):
            x = np.float64(data[k])
            sm += x
            mn[i] = min(mn[i], x)
            if not np.isfinite(x):
                bad[i] += 1
        err[i] = abs(sm - 1.0)
    nb_bad = bad.sum()
    out[0] = np.nan if nb_bad else (err.max() if rows else 0.0)
    out[1] = mn.min() if rows else 0.0
    out[2] = nb_bad


def row_stats_dense(P, out):
    S = P.shape[-1]
    rows = P.size // S if S else 0
    _row_stats(P.reshape(-1), np.arange(rows + 1, dtype=np.int64) * S, out)


def row_stats_csr(data, indptr, out):
    _row_stats(data, indptr, out)
