"""The CUDA solvers' loops: state stays on the device, one sweep kernel per step, and the host
looks for a running MDP only every few sweeps."""

from __future__ import annotations

_SYNC_EVERY = 8


def _ranges(xp, new, old):
    """Per MDP min and max of new - old (float64, on new's device; no synchronisation)."""
    d = new.astype(xp.float64) - old.astype(xp.float64)
    return d.min(-1), d.max(-1)


def _policy_sweep(m, g):
    """f(V, pi_det, pi_stoch, active_u8, V_out): an evaluation sweep reading only the policy's
    rows, MDPs with active == 0 copied. CUDA: one kernel; host arrays (the tests of these
    loops): a backup sweep and a select."""
    if m.on_device:
        k = m.kernel("policy_sweep")
        return lambda V, det, stoch, act, out: k(*m.args(), m.R, V, g, det, stoch, act, out)
    backup, xp = m.kernel("backup"), m.xp
    Qt = xp.empty((m.B, m.S, m.A), m.dtype)
    pit = xp.empty((m.B, m.S), xp.int64)

    def sweep(V, det, stoch, act, out):
        backup(*m.args(), m.R, V, g, 1 if det is not None else 2, det, stoch, None, Qt, out, pit)
        out[...] = xp.where(act.astype(bool)[:, None], out, V)

    return sweep


def _solve_host_loop(m, g, thresh, max_iter, span, eval_max, eval_rel, V, Q, pi, its, evs, res, conv):
    """The modified-policy-iteration loop of mdp.hpp's solve_one for CUDA arrays: the per-MDP
    state (running, iterations, residual, ...) lives on the device and is updated there with
    masks; the host only launches sweeps and asks "is any MDP still running" once per
    improvement sweep when evaluating (else every _SYNC_EVERY sweeps) and every _SYNC_EVERY
    evaluation sweeps. Same results and stopping rules as the compiled loop (to rounding);
    stopped MDPs are frozen (still swept, values unchanged). its/evs/res/conv: NumPy outputs."""
    xp = m.xp
    backup = m.kernel("backup")
    psweep = _policy_sweep(m, g)
    g64 = g.astype(xp.float64)
    k = xp.where(g64 < 1, g64 / xp.where(g64 < 1, 1 - g64, 1), 0.0)
    th = xp.asarray(thresh, dtype=xp.float64)
    active = xp.ones(m.B, bool)
    its_d, evs_d = xp.zeros(m.B, xp.int64), xp.zeros(m.B, xp.int64)
    res_d, conv_d, final_shift = xp.zeros(m.B), xp.zeros(m.B, bool), xp.zeros(m.B)
    u = xp.empty_like(V)
    ebuf = (xp.empty_like(V), xp.empty_like(V)) if eval_max > 0 else ()  # evaluation iterates
    Qt, pit = xp.empty_like(Q), xp.empty_like(pi)
    prev = xp.full_like(pi, -1)
    n = 0
    while True:
        backup(*m.args(), m.R, V, g, 0, None, None, None, Qt, u, pit)
        lo, hi = _ranges(xp, u, V)
        r = (hi - lo) if span else xp.maximum(xp.abs(lo), xp.abs(hi))
        a = active
        its_d += a
        res_d = xp.where(a, r, res_d)
        Q[...] = xp.where(a[:, None, None], Qt, Q)
        pi[...] = xp.where(a[:, None], pit, pi)
        stop_now = a & ((r < th) | (r == 0))
        conv_d |= stop_now
        if span:
            final_shift = xp.where(stop_now, k * 0.5 * (lo + hi), final_shift)
        finished = stop_now | (a & (its_d >= max_iter))
        V[...] = xp.where(finished[:, None], u, V)
        active = a & ~finished
        n += 1
        if (eval_max > 0 or n % _SYNC_EVERY == 0) and not bool(active.any()):
            break
        x = u
        if eval_max > 0:
            same = (pit == prev).all(-1)
            prev[...] = pit
            target = xp.where(same, 0.5 * th, xp.maximum(0.5 * th, eval_rel * r)) if eval_rel >= 0 else None
            ev = active.copy()
            elo, ehi = xp.zeros(m.B), xp.zeros(m.B)
            for j in range(eval_max):
                w = ebuf[j % 2]  # never x: a sweep does not run in place
                psweep(x, pit, None, ev.astype(xp.uint8), w)
                lo2, hi2 = _ranges(xp, w, x)
                evs_d += ev
                elo, ehi = xp.where(ev, lo2, elo), xp.where(ev, hi2, ehi)
                x = w
                if target is not None:
                    ev &= ~((hi2 - lo2) < target)
                    if (j + 1) % _SYNC_EVERY == 0 and not bool(ev.any()):
                        break
            x = x + (k * 0.5 * (elo + ehi)).astype(x.dtype)[:, None]
        V[...] = xp.where(active[:, None], x, V)
    sh = final_shift.astype(V.dtype)
    V += sh[:, None]
    Q += sh[:, None, None]
    _to_host(its_d, its), _to_host(evs_d, evs), _to_host(res_d, res), _to_host(conv_d, conv)


def _to_host(src, dst):
    dst[...] = src.get() if hasattr(src, "get") else src


def _evaluate_host_loop(m, g, thresh, max_iter, span, det, stoch, V, its, res, conv):
    """Iterative policy evaluation (mdp.hpp's evaluate_one) for CUDA arrays, state on the
    device as in :func:`_solve_host_loop`; the host checks every _SYNC_EVERY sweeps."""
    xp = m.xp
    psweep = _policy_sweep(m, g)
    g64 = g.astype(xp.float64)
    k = xp.where(g64 < 1, g64 / xp.where(g64 < 1, 1 - g64, 1), 0.0)
    th = xp.asarray(thresh, dtype=xp.float64)
    active = xp.ones(m.B, bool)
    its_d, res_d, conv_d, shift = xp.zeros(m.B, xp.int64), xp.zeros(m.B), xp.zeros(m.B, bool), xp.zeros(m.B)
    w = xp.empty_like(V)
    n = 0
    while True:
        psweep(V, det, stoch, active.astype(xp.uint8), w)  # stopped MDPs keep their values
        lo, hi = _ranges(xp, w, V)
        r = (hi - lo) if span else xp.maximum(xp.abs(lo), xp.abs(hi))
        a = active
        its_d += a
        res_d = xp.where(a, r, res_d)
        V[...] = w
        stop_now = a & ((r < th) | (r == 0))
        conv_d |= stop_now
        if span:
            shift = xp.where(stop_now, k * 0.5 * (lo + hi), shift)
        active = a & ~(stop_now | (its_d >= max_iter))
        n += 1
        if n % _SYNC_EVERY == 0 and not bool(active.any()):
            break
    V += shift.astype(V.dtype)[:, None]
    _to_host(its_d, its), _to_host(res_d, res), _to_host(conv_d, conv)


# ============================================================================ conversions
