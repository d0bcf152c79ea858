"""The MDP model shared by every solver: result types, the CSR layout, and `_Model`, which
validates P and R once and hands the kernels their arguments."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .. import _validate as val
from .._arrays import returner, to_native, xp_of
from .._dispatch import kernel
from .._status import not_converged
from .._typing import ArrayLike, DTypeLike

#: Allowed |sum_s' P(s'|s,a) - 1| per dtype.
ROW_SUM_TOL = {np.dtype(np.float64): 1e-6, np.dtype(np.float32): 1e-4}

_KIND = {"optimal": 0, "policy": 1, "stochastic": 2, "soft": 3}  # C++ mdp::Kind (tests/test_contracts.py)
# Columns of the solvers' per-MDP input-check record, check_stats (B, 4): C++ mdp::CheckStat
# (tests/test_contracts.py); the numba backend writes the same columns.
_CHECK_STATS = {"done": 0, "row_sum_err": 1, "min_entry": 2, "nonfinite_rows": 3}


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
