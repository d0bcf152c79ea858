"""numba Bellman backups (same contract as csrc/bind/mdp.cpp)."""
import numba as nb
import numpy as np


@nb.njit(parallel=True, cache=True)
def optimality_sweep_dense(P, R, V, gamma, Q, V_out, policy):
    B, S, A = R.shape
    for bs in nb.prange(B * S):
        b, s = bs // S, bs % S
        vmax = -np.inf
        arg = 0
        for a in range(A):
            acc = 0.0  # float64 accumulation, as in C++
            for j in range(S):
                acc += np.float64(P[b, s, a, j]) * V[b, j]
            q = R[b, s, a] + gamma[b] * acc
            Q[b, s, a] = q
            if Q[b, s, a] > vmax:
                vmax = Q[b, s, a]
                arg = a
        V_out[b, s] = vmax
        policy[b, s] = arg
