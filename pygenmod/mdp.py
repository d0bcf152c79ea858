"""Bellman backups over batches of MDPs.

Canonical layout: transitions ``P[b, s, a, s']`` (each (s, a) row contiguous), rewards
``R[b, s, a]``, values ``V[b, s]``. A single MDP may be given without the batch axis.
"""
from __future__ import annotations

from typing import NamedTuple

from . import _validate as val
from ._arrays import is_device, returner, xp_of
from ._dispatch import kernel


class Backup(NamedTuple):
    Q: object  #: (B, S, A) action values
    V: object  #: (B, S) backed-up values
    policy: object  #: (B, S) int64 greedy action (lowest index among ties)


def bellman_backup(P, R, V, gamma):
    """One optimality backup ``V'(s) = max_a R(s, a) + gamma * sum_s' P(s'|s, a) V(s')``.

    P: (B, S, A, S) or (S, A, S); R: (B, S, A) or (S, A); V: (B, S) or (S,);
    gamma: scalar or (B,) in [0, 1). Returns :class:`Backup` in P's dtype and array type.
    """
    back = returner(P)
    P = val.float_array(P, "P", ndim=(3, 4))
    single = P.ndim == 3
    xp = xp_of(P)
    if single:
        P = P[None]
    B, S, A, S2 = P.shape
    if S2 != S:
        raise ValueError(f"P: expected shape (B, S, A, S), got {P.shape}")
    R = val.float_array(R, "R", ndim=2 if single else 3, dtype=P.dtype, xp=xp)
    V = val.float_array(V, "V", ndim=1 if single else 2, dtype=P.dtype, xp=xp)
    val.check_shape(R, "R", (S, A) if single else (B, S, A))
    val.check_shape(V, "V", (S,) if single else (B, S))
    R, V = R.reshape(B, S, A), V.reshape(B, S)
    gamma = val.per_batch(gamma, "gamma", B, P.dtype, xp, lo=0.0, hi=1.0, hi_closed=False)
    Q = xp.empty((B, S, A), P.dtype)
    V_out = xp.empty((B, S), P.dtype)
    policy = xp.empty((B, S), xp.int64)
    _, sweep = kernel("mdp", "optimality_sweep_dense", is_device(P))
    sweep(P, R, V, gamma, Q, V_out, policy)
    if single:
        Q, V_out, policy = Q[0], V_out[0], policy[0]
    return Backup(back(Q), back(V_out), back(policy))
