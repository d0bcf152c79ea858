"""Workloads W6 (Bellman backups) and W7 (GAE). Data is built lazily, inside setups."""
from __future__ import annotations

import functools

import numpy as np

from .runner import Candidate, Workload


@functools.lru_cache(maxsize=4)
def _random_mdp(B, S, A, seed=0):
    rng = np.random.default_rng(seed)
    P = rng.random((B, S, A, S))
    P /= P.sum(-1, keepdims=True)
    return P, rng.standard_normal((B, S, A))


def workloads(quick: bool = False):
    B, S, A = (64, 64, 4) if quick else (1024, 64, 4)

    def ours():
        from pygenmod import mdp

        P, R = _random_mdp(B, S, A)
        V = np.zeros((B, S))
        return lambda: mdp.bellman_backup(P, R, V, 0.95)

    def numpy_ref():
        P, R = _random_mdp(B, S, A)
        V = np.zeros((B, S))
        return lambda: (R + 0.95 * np.einsum("bsat,bt->bsa", P, V)).max(-1)

    return [
        Workload("W6b-sweep", f"one optimality sweep, B={B} MDPs, S={S}, A={A}, float64",
                 [Candidate("pygenmod", ours, is_ours=True), Candidate("numpy einsum", numpy_ref)],
                 bytes_moved=B * S * A * S * 8, unit="sweep"),
    ]
