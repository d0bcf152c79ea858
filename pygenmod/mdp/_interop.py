"""Converters from and to pymdptoolbox's and quantecon's layouts."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._typing import ArrayLike
from ._model import CSR, _is_scipy_sparse, as_csr


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
