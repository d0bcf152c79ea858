"""Bellman backups and dynamic programming over batches of MDPs.

Layout (see docs/mdp.md):

- transitions ``P[b, s, a, s']`` dense (each (s, a) row contiguous), or sparse as a
  :class:`CSR` whose row ``(b*S + s)*A + a`` is ``P(. | s, a)`` of MDP ``b`` (a
  ``scipy.sparse`` matrix of shape ``(S*A, S)`` or ``(B*S*A, S)`` is accepted anywhere);
- rewards ``R[b, s, a]`` (expected reward) or ``R[b, s, a, s']`` (reduced to the expected
  reward ``sum_s' P R`` once, up front);
- values ``V[b, s]``; policies ``pi[b, s]`` (int64 action) or ``pi[b, s, a]`` (probabilities).

A single MDP may be given without the batch axis; results then come back without it.
Discount ``gamma`` is a scalar or one value per MDP, in [0, 1).

Input checks (``check=True``): every row of P sums to 1 within :data:`ROW_SUM_TOL` (1e-6 for
float64, 1e-4 for float32), has no negative entry and no NaN/inf.

Stopping rules of the solvers (``epsilon``: the wanted sup-norm error of V):

- ``stop="span"`` (default): stop when ``span(T v - v) < epsilon (1-g)/g`` and return
  ``V = T v + g/(1-g) * midrange(T v - v)`` (MacQueen's bounds): ``||V - V*|| <= epsilon/2`` and
  the greedy policy is epsilon-optimal. pymdptoolbox uses the same test but returns ``T v``
  uncorrected, whose error is a constant offset up to ``g/(1-g) * max|T v - v|``.
- ``stop="sup"``: stop when ``||T v - v||_inf < epsilon (1-g)/(2g)``; return ``V = T v``:
  ``||V - V*|| <= epsilon/2``, greedy policy epsilon-optimal (Puterman Thm 6.3.1).
- ``tol=``: a raw threshold on the chosen residual instead (e.g. ``tol=1e-8, stop="sup"`` is
  "stop when the sup-norm change is below 1e-8"); bounds then follow from the formulas above.

Per-MDP convergence: every MDP of a batch iterates until its own test passes (or max_iter);
a converged MDP costs no further work. The CPU and numba backends run the whole loop in
compiled code; the CUDA backend keeps the loop's state on the device and launches one sweep
kernel per step (the host checks for a running MDP every few sweeps).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from . import _validate as val
from ._arrays import returner, to_native, xp_of
from ._dispatch import kernel
from ._status import not_converged
from ._typing import ArrayLike, DTypeLike, EvaluationMethod, RewardOn, SeedLike, Stop

#: Allowed |sum_s' P(s'|s,a) - 1| per dtype.
ROW_SUM_TOL = {np.dtype(np.float64): 1e-6, np.dtype(np.float32): 1e-4}

# The compiled solvers skip the rows of actions that provably cannot be greedy in a sweep
# (action elimination, see docs/mdp.md); the results are the same floats as full sweeps.
# Tests switch it off to compare.
_ACTION_ELIMINATION = True

_KIND = {"optimal": 0, "policy": 1, "stochastic": 2, "soft": 3}  # C++ mdp::Kind (tests/test_contracts.py)


class Backup(NamedTuple):
    Q: object  #: (B, S, A) action values
    V: object  #: (B, S) backed-up values
    policy: object  #: (B, S) int64 greedy action (lowest index among ties)


class Solution(NamedTuple):
    V: object  #: (B, S) values (epsilon/2-accurate in sup norm, see the module doc)
    policy: object  #: (B, S) int64 greedy policy (epsilon-optimal)
    Q: object  #: (B, S, A) action values of the last improvement sweep (shifted like V)
    iterations: object  #: (B,) int64 improvement (full Bellman) sweeps
    residual: object  #: (B,) float64 final residual (span or sup of T v - v)
    converged: object  #: (B,) bool, residual below the threshold before max_iter
    eval_sweeps: object  #: (B,) int64 policy-evaluation sweeps (0 for value iteration)

    @property
    def status(self) -> Any:
        """(B,) uint32 :class:`pygenmod.Status` (NOT_CONVERGED where ``converged`` is False)."""
        return not_converged(self.converged)


class Evaluation(NamedTuple):
    V: object  #: (B, S) value of the policy
    iterations: object  #: (B,) int64 sweeps (0 for the exact solve)
    residual: object  #: (B,) float64 final residual (0 for the exact solve)
    converged: object  #: (B,) bool

    @property
    def status(self) -> Any:
        """(B,) uint32 :class:`pygenmod.Status` (NOT_CONVERGED where ``converged`` is False)."""
        return not_converged(self.converged)


class CSR(NamedTuple):
    """Sparse transitions of B MDPs: row ``(b*S + s)*A + a`` holds ``P(. | s, a)`` of MDP b.

    data: (nnz,) float32/float64; indices: (nnz,) int32 local next states in [0, S);
    indptr: (B*S*A + 1,) int64; shape: (B, S, A).
    """

    data: object
    indices: object
    indptr: object
    shape: tuple

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype


# ============================================================================ input handling
def _is_scipy_sparse(x) -> bool:
    mod = type(x).__module__
    return mod.startswith("scipy.sparse") or mod.startswith("cupyx.scipy.sparse")


def as_csr(P: ArrayLike | CSR | Any, n_actions: int | None = None, *, dtype: DTypeLike | None = None) -> CSR:
    """Sparse transitions as a :class:`CSR`.

    P: a :class:`CSR` (returned as is), a ``scipy.sparse`` matrix of shape ``(S*A, S)`` or
    ``(B*S*A, S)`` (needs ``n_actions``), or a dense ``(S, A, S)`` / ``(B, S, A, S)`` array.
    """
    if isinstance(P, CSR):
        return P
    if _is_scipy_sparse(P):
        if n_actions is None:
            raise ValueError("n_actions: required to read a scipy.sparse P of shape (B*S*A, S)")
        A = val.positive_int(n_actions, "n_actions")
        M = P.tocsr()
        rows, S = M.shape
        if S < 1 or rows % (S * A):
            raise ValueError(f"P: a sparse P must have shape (B*S*A, S) with A={A}, got {M.shape}")
        B = rows // (S * A)
        data = val.float_array(M.data, "P", ndim=1, dtype=dtype, finite=False)
        xp = xp_of(data)
        return CSR(data, _indices(M.indices, S, "P"), xp.ascontiguousarray(M.indptr, dtype=xp.int64), (B, S, A))
    P = val.float_array(P, "P", ndim=(3, 4), dtype=dtype, finite=False)
    xp = xp_of(P)
    if P.ndim == 3:
        P = P[None]
    B, S, A, S2 = P.shape
    if S2 != S:
        raise ValueError(f"P: expected shape (B, S, A, S), got {P.shape}")
    flat = P.reshape(B * S * A, S)
    nz = flat != 0
    counts = nz.sum(1)
    indptr = xp.zeros(B * S * A + 1, xp.int64)
    indptr[1:] = xp.cumsum(counts)
    cols = xp.nonzero(nz)[1].astype(xp.int32)
    return CSR(xp.ascontiguousarray(flat[nz]), xp.ascontiguousarray(cols), indptr, (B, S, A))


def _csr_row_ids(xp, indptr, nnz):
    """The row of every stored entry of a CSR matrix (int64, length nnz).

    searchsorted instead of ``repeat(arange, diff(indptr))``: CuPy < 14.1 rejects a device
    array of repeat counts, and this works the same on NumPy and CuPy (empty rows included).
    """
    return xp.searchsorted(indptr, xp.arange(nnz, dtype=xp.int64), side="right").astype(xp.int64) - 1


def _indices(indices, S, pname, xp=None):
    """CSR column indices as int32, range-checked before the cast (a cast would wrap)."""
    ix = val.int_array(indices, f"{pname}: CSR indices", ndim=1, xp=xp)
    if ix.size and (int(ix.min()) < 0 or int(ix.max()) >= S):
        raise ValueError(f"{pname}: CSR column indices must lie in [0, {S})")
    return xp_of(ix).ascontiguousarray(ix, dtype=xp_of(ix).int32)


class _Model:
    """Validated transitions and rewards of a batch of MDPs."""

    def __init__(self, P, R, *, check=True, names=("P", "R")):
        """check: verify P's rows (sums, signs, finiteness); CSR structure is always verified.
        check="defer": the caller verifies the rows later (fused into a solver's sweep)."""
        pname, rname = names
        self.back = returner(R if _is_scipy_sparse(P) or isinstance(P, CSR) else P)
        if isinstance(P, CSR) or _is_scipy_sparse(P):
            Rn = to_native(R)
            if isinstance(P, CSR):
                c = P
                B, S, A = (int(x) for x in c.shape)
                self.single = B == 1 and (Rn.shape == (S, A) or (Rn.shape == (S, A, S) and Rn.shape != (1, S, A)))
            else:
                rows, S = P.shape
                if Rn.ndim == 2:
                    A, self.single = Rn.shape[1], True
                elif Rn.ndim == 3 and Rn.shape[2] == S and rows == Rn.shape[0] * Rn.shape[1]:
                    A, self.single = Rn.shape[1], True
                elif Rn.ndim in (3, 4):
                    A, self.single = Rn.shape[2], False
                else:
                    raise ValueError(
                        f"{rname}: expected (S, A), (B, S, A) or with a trailing S' axis, got shape {Rn.shape}"
                    )
                c = as_csr(P, A)
            data = val.float_array(c.data, pname, ndim=1, finite=False)
            self.xp = xp_of(data)
            self.dtype = data.dtype
            self.csr = CSR(
                data,
                _indices(c.indices, int(c.shape[1]), pname, self.xp),
                self.xp.ascontiguousarray(c.indptr, dtype=self.xp.int64),
                tuple(int(x) for x in c.shape),
            )
            self.B, self.S, self.A = self.csr.shape
            self.P = None
            self._check_csr(pname, rows=check is True)
        else:
            P = val.float_array(P, pname, ndim=(3, 4), finite=False)
            self.single = P.ndim == 3
            if self.single:
                P = P[None]
            B, S, A, S2 = P.shape
            if S2 != S:
                raise ValueError(f"{pname}: expected shape (B, S, A, S) or (S, A, S), got {P.shape}")
            self.P, self.csr, self.xp, self.dtype = P, None, xp_of(P), P.dtype
            self.B, self.S, self.A = B, S, A
            if check is True:
                self._check_dense(pname)
        if self.B == 0:
            raise ValueError(f"{pname}: empty batch (B = 0)")
        if self.A == 0:
            raise ValueError(f"{pname}: the MDP has no actions (A = 0)")
        self.R = self._rewards(R, rname)
        self.pname = pname

    def check_rows(self):
        """The row checks of P (for a caller that deferred them)."""
        if self.sparse:
            self._check_csr(self.pname)
        else:
            self._check_dense(self.pname)

    @property
    def sparse(self) -> bool:
        return self.csr is not None

    @property
    def on_device(self) -> bool:
        return self.xp is not np

    def _stats_report(self, stats, pname):
        err, mn, bad = (float(x) for x in stats)
        if bad:
            raise ValueError(f"{pname}: contains NaN or infinity")
        if mn < 0:
            raise ValueError(f"{pname}: transition probabilities must be >= 0, found {mn:.3g}")
        tol = ROW_SUM_TOL[np.dtype(self.dtype)]
        if err > tol:
            raise ValueError(
                f"{pname}: every row P[b, s, a, :] must sum to 1 (tolerance {tol:g}); worst row is off by {err:.3g}"
            )

    def _check_dense(self, pname):
        if self.P.size == 0:
            return
        if self.on_device:
            xp = self.xp
            P = self.P
            stats = (
                float(xp.abs(P.sum(-1, dtype=xp.float64) - 1).max()),
                float(P.min()),
                float((~xp.isfinite(P)).sum()),
            )
        else:
            stats = np.empty(3)
            kernel("mdp", "row_stats_dense")[1](self.P, stats)
        self._stats_report(stats, pname)

    def _check_csr(self, pname, rows=True):
        xp, c = self.xp, self.csr
        B, S, A = c.shape
        if c.indptr.shape != (B * S * A + 1,) or int(c.indptr[0]) != 0 or int(c.indptr[-1]) != c.data.shape[0]:
            raise ValueError(f"{pname}: inconsistent CSR (indptr must have B*S*A+1 entries from 0 to nnz)")
        if c.indices.shape != c.data.shape:
            raise ValueError(f"{pname}: CSR indices and data differ in length")
        if c.data.size:
            if bool((xp.diff(c.indptr) < 0).any()):
                raise ValueError(f"{pname}: CSR indptr must be non-decreasing")
            if int(c.indices.min()) < 0 or int(c.indices.max()) >= S:
                raise ValueError(f"{pname}: CSR column indices must lie in [0, {S})")
        if not rows:
            return
        if self.on_device:
            rows = _csr_row_ids(xp, c.indptr, c.data.shape[0])
            sums = xp.bincount(rows, weights=c.data.astype(xp.float64), minlength=B * S * A)
            stats = (
                float(xp.abs(sums - 1).max()) if sums.size else 0.0,
                float(c.data.min()) if c.data.size else 0.0,
                float((~xp.isfinite(c.data)).sum()),
            )
        else:
            stats = np.empty(3)
            if B * S * A:
                kernel("mdp", "row_stats_csr")[1](c.data, c.indptr, stats)
            else:
                stats[:] = 0
        self._stats_report(stats, pname)

    def _rewards(self, R, rname):
        B, S, A, xp = self.B, self.S, self.A, self.xp
        lead = () if self.single else (B,)
        R = val.float_array(R, rname, dtype=self.dtype, xp=xp)
        if R.shape == lead + (S, A):
            return R.reshape(B, S, A)
        if R.shape == lead + (S, A, S):
            R4 = R.reshape(B, S, A, S)
            if not self.sparse:
                return xp.ascontiguousarray(xp.einsum("bsat,bsat->bsa", self.P, R4))
            c = self.csr
            rows = _csr_row_ids(xp, c.indptr, c.data.shape[0])
            vals = c.data * R4.reshape(B * S * A, S)[rows, c.indices]
            out = xp.bincount(rows, weights=vals.astype(xp.float64), minlength=B * S * A)
            return xp.ascontiguousarray(out.astype(self.dtype).reshape(B, S, A))
        want = ", ".join(str(x) for x in lead + (S, A))
        raise ValueError(f"{rname}: expected shape ({want}) or ({want}, {S}), got {tuple(R.shape)}")

    # -- helpers shared by the public functions
    def gamma(self, gamma, name="gamma"):
        return val.per_batch(gamma, name, self.B, self.dtype, self.xp, lo=0.0, hi=1.0, hi_closed=False)

    def values(self, V, name="V"):
        lead = () if self.single else (self.B,)
        V = val.float_array(V, name, dtype=self.dtype, xp=self.xp)
        val.check_shape(V, name, lead + (self.S,))
        return V.reshape(self.B, self.S)

    def policy(self, policy, name="policy"):
        """(B, S) int64 (deterministic) or (B, S, A) float (stochastic); returns (det, stoch)."""
        lead = () if self.single else (self.B,)
        p = to_native(policy)
        if p.dtype.kind in "iu":
            p = val.int_array(p, name, xp=self.xp)
            val.check_shape(p, name, lead + (self.S,))
            if p.size and (int(p.min()) < 0 or int(p.max()) >= self.A):
                raise ValueError(f"{name}: actions must lie in [0, {self.A})")
            return p.reshape(self.B, self.S), None
        p = val.float_array(p, name, dtype=self.dtype, xp=self.xp)
        val.check_shape(p, name, lead + (self.S, self.A))
        if p.size:
            if float(p.min()) < 0:
                raise ValueError(f"{name}: probabilities must be >= 0")
            err = float(self.xp.abs(p.sum(-1, dtype=self.xp.float64) - 1).max())
            if err > ROW_SUM_TOL[np.dtype(self.dtype)]:
                raise ValueError(f"{name}: each pi[b, s, :] must sum to 1, worst row off by {err:.3g}")
        return None, p.reshape(self.B, self.S, self.A)

    def args(self):
        """Leading kernel arguments for the dense or the CSR kernel."""
        if self.sparse:
            c = self.csr
            return (c.data, c.indices, c.indptr, self.S, self.A)
        return (self.P,)

    def kernel(self, name):
        return kernel("mdp", f"{name}_{'csr' if self.sparse else 'dense'}", self.on_device)[1]

    def out(self, x):
        """Drop the batch axis for a single MDP and convert to the caller's array type."""
        if self.single:
            x = x[0]
        return self.back(x)


# ============================================================================ backups
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
        _solve_host_loop(m, g, thresh, max_iter, stop == "span", eval_max, eval_rel, V, Q, pi, its, evs, res, conv)
    else:
        # The row checks run inside the first sweep that reads P (the rows are in cache then);
        # an MDP with bad rows stops there, and the error is raised below.
        stats = np.zeros((m.B, 4))
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
            if not stats[:, 0].all():
                m.check_rows()  # some MDP never read P (e.g. gamma = 0): check separately
            else:
                err = np.nan if stats[:, 3].any() else stats[:, 1].max()
                m._stats_report((err, stats[:, 2].min(), stats[:, 3].sum()), m.pname)
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
    evaluated by a linear solve (LAPACK; scipy / cupyx sparse for sparse P) and the loop stops when
    the greedy policy repeats; V is then the exact value of the returned policy.

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
    m = _Model(P, R, check=check)
    g = m.gamma(gamma)
    max_iter = val.positive_int(max_iter, "max_iter")
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


def _row_index(m):
    """(B, 1) and (1, S) index arrays: ``X[b_ix, s_ix, pi]`` picks X[b, s, pi[b, s]] (plain
    fancy indexing: take_along_axis costs ~25 us a call at gridworld size)."""
    xp = m.xp
    return xp.arange(m.B)[:, None], xp.arange(m.S)[None, :]


def _initial_policy(m, initial_policy, seed, stream):
    """The (B, S) int64 starting policy of policy_iteration on m's device."""
    if isinstance(initial_policy, str):
        val.choice(initial_policy, "initial_policy", ("random",))
        from . import random as _random
        from ._seed import resolve_seed

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
            _evaluate_host_loop(m, g, thresh, max_iter, stop == "span", det, stoch, V, its, res, conv)
        else:
            m.kernel("evaluate")(*m.args(), m.R, g, thresh, max_iter, stop == "span", det, stoch, V, its, res, conv)
        stats = (its, res, conv.astype(bool))
    if m.single:
        return Evaluation(m.out(V), int(stats[0][0]), float(stats[1][0]), bool(stats[2][0]))
    return Evaluation(m.out(V), *stats)


# ============================================================================ device loops
#: Sweeps between the host's checks of "is any MDP still running" in the device loops (the
#: only device-to-host synchronisation inside a solve; sweeps after the last MDP stopped are
#: no-ops, so k only trades launches for syncs).
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
def from_mdptoolbox(P: Any, R: Any) -> tuple[np.ndarray | CSR, np.ndarray]:
    """pymdptoolbox's ``P (A, S, S)`` (array or list of A matrices, dense or scipy.sparse) and
    ``R`` ((S,), (S, A) or (A, S, S)) -> ``(P, R)`` in pygenmod's single-MDP layout:
    dense ``P (S, A, S)`` or a :class:`CSR` (if any input matrix is sparse), ``R (S, A)``."""
    mats = list(P) if isinstance(P, (list, tuple)) or (hasattr(P, "ndim") and P.ndim == 3) else None
    if mats is None and hasattr(P, "shape") and len(P.shape) == 1:  # object array of matrices
        mats = list(P)
    if not mats:
        raise ValueError("P: expected (A, S, S) transitions")
    A = len(mats)
    S = mats[0].shape[0]
    for M in mats:
        if tuple(M.shape) != (S, S):
            raise ValueError(f"P: every action's matrix must have shape ({S}, {S}), got {M.shape}")
    if any(_is_scipy_sparse(M) for M in mats):
        import scipy.sparse as sp

        # row s*A + a of the result is P[a][s], i.e. row a*S + s of the stacked matrix
        stacked = sp.vstack([sp.csr_matrix(M) for M in mats]).tocsr()
        order = (np.arange(S)[:, None] + S * np.arange(A)[None, :]).reshape(-1)
        Pout = as_csr(stacked[order], A)
    else:
        Pout = np.ascontiguousarray(np.stack([np.asarray(M, np.float64) for M in mats], 1))
    if (
        isinstance(R, (list, tuple))
        or (hasattr(R, "ndim") and R.ndim == 3)
        or (hasattr(R, "shape") and len(R.shape) == 1 and R.shape[0] == A and S != A)
    ):
        # R[a] is (S, S): the expected reward of (s, a) is sum_s' P[a][s, s'] R[a][s, s']
        Rsa = np.empty((S, A))
        for a, (Pa, Ra) in enumerate(zip(mats, list(R))):
            prod = (
                Pa.multiply(Ra)
                if _is_scipy_sparse(Pa)
                else np.asarray(Pa) * np.asarray(Ra.toarray() if _is_scipy_sparse(Ra) else Ra)
            )
            Rsa[:, a] = np.asarray(prod.sum(1)).reshape(-1)
        return Pout, Rsa
    Rn = np.asarray(R, np.float64)
    if Rn.ndim == 1:
        Rn = np.repeat(Rn[:, None], A, 1)
    if Rn.shape != (S, A):
        raise ValueError(f"R: expected shape ({S},), ({S}, {A}) or ({A}, {S}, {S}), got {Rn.shape}")
    return Pout, np.ascontiguousarray(Rn)


def to_mdptoolbox(P: ArrayLike, R: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Single dense MDP ``P (S, A, S)``, ``R (S, A)`` -> pymdptoolbox's ``P (A, S, S)``, ``R (S, A)``."""
    P = np.asarray(P)
    return np.ascontiguousarray(P.transpose(1, 0, 2)), np.asarray(R)


def from_quantecon(R: ArrayLike, Q: Any) -> tuple[np.ndarray | CSR, np.ndarray]:
    """quantecon's ``DiscreteDP(R, Q, beta)`` product formulation, ``R (S, A)``, ``Q (S, A, S)``
    (dense or scipy.sparse ``(S*A, S)``) -> ``(P, R)``: the same layout, so a view for dense
    Q and a :class:`CSR` for sparse Q. (Infeasible actions, R = -inf, are not supported.)"""
    R = np.asarray(R, np.float64)
    if R.ndim != 2:
        raise ValueError(f"R: expected shape (S, A), got {R.shape}")
    if _is_scipy_sparse(Q):
        return as_csr(Q, R.shape[1]), R
    return np.asarray(Q), R


def to_quantecon(P: ArrayLike | CSR, R: ArrayLike) -> tuple[np.ndarray, Any]:
    """Single MDP -> quantecon's ``(R (S, A), Q (S, A, S))`` (CSR -> scipy.sparse ``(S*A, S)``)."""
    if isinstance(P, CSR):
        import scipy.sparse as sp

        B, S, A = P.shape
        return np.asarray(R), sp.csr_matrix((P.data, P.indices, P.indptr), shape=(B * S * A, S))
    return np.asarray(R), np.asarray(P)


# ============================================================================ example MDPs
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


__all__ = [
    "Backup",
    "CSR",
    "Evaluation",
    "GRID_ACTIONS",
    "GRID_ARROWS",
    "GRID_REWARD_ON",
    "ROW_SUM_TOL",
    "Solution",
    "as_csr",
    "bellman_backup",
    "forest",
    "from_mdptoolbox",
    "from_quantecon",
    "gridworld",
    "modified_policy_iteration",
    "policy_evaluation",
    "policy_iteration",
    "random_mdp",
    "solve",
    "to_mdptoolbox",
    "to_quantecon",
    "value_iteration",
]
